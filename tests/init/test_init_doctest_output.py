"""Doctest output of relujax.init / nn / linen does not depend on the CPU.

The orthogonal doctest once printed ``jnp.round(w.T @ w, 5)``: the off-diagonal zeros came
out as ``0.`` or ``-0.`` depending on the CPU's rounding of the last bit. No expected output
may show a signed zero, and no example may print a rounded array: print ``allclose``
booleans or rounded scalars instead.
"""

import doctest
import importlib
import pkgutil
import re

import pytest

import relujax

PACKAGES = ("relujax.init", "relujax.nn", "relujax.linen")
# A negative zero as NumPy/JAX print it: "-0." or "-0.000", not followed by another digit.
SIGNED_ZERO = re.compile(r"-0\.0*(?![0-9])")


def _examples():
    finder = doctest.DocTestFinder()
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        modules = [pkg] + [
            importlib.import_module(f"{package}.{m.name}")
            for m in pkgutil.iter_modules(pkg.__path__)
        ]
        for module in modules:
            for test in finder.find(module):
                for example in test.examples:
                    yield test.name, example


EXAMPLES = list(_examples())


def test_there_are_examples_to_check():
    assert len(EXAMPLES) > 20
    assert relujax.init.orthogonal.__doc__ is not None


@pytest.mark.parametrize(("name", "example"), EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_no_signed_zero_and_no_rounded_array_output(name, example):
    assert not SIGNED_ZERO.search(example.want), f"{name}: {example.want!r}"
    rounds_an_array = "round(" in example.source and example.want.lstrip().startswith("Array(")
    assert not rounds_an_array, f"{name}: {example.source!r}"
