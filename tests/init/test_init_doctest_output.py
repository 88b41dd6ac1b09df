"""Doctest output of relujax.init / nn / linen does not depend on the CPU.

The orthogonal doctest once printed ``jnp.round(w.T @ w, 5)``: the off-diagonal zeros came
out as ``0.`` or ``-0.`` depending on the CPU's rounding of the last bit. No example of these
packages may print a rounded array (whose near-zero entries carry such signs): print
``allclose`` booleans or rounded scalars instead. (``tests/test_portable_outputs.py`` checks
that no output of relujax shows a negative zero.)
"""

import doctest
import importlib
import pkgutil

import pytest

import relujax

PACKAGES = ("relujax.init", "relujax.nn", "relujax.linen")


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
def test_no_rounded_array_output(name, example):
    rounds_an_array = "round(" in example.source and example.want.lstrip().startswith("Array(")
    assert not rounds_an_array, f"{name}: {example.source!r}"
