"""Choose sites by name, glob or regular expression."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Union

from relujax.analysis._capture import Site

#: A site selector: a name, a glob (``"MLP/*"``), a compiled regex, or a sequence of these.
Selector = Union[str, "re.Pattern[str]", Sequence[Union[str, "re.Pattern[str]"]]]

_GLOB = set("*?[")


def _patterns(selector: Selector, param: str) -> list[str | re.Pattern[str]]:
    if isinstance(selector, (str, re.Pattern)):
        return [selector]
    try:
        items = list(selector)
    except TypeError:
        raise TypeError(
            f"{param} must be a site name, a glob, a re.Pattern or a sequence of these; "
            f"got {selector!r}."
        ) from None
    for item in items:
        if not isinstance(item, (str, re.Pattern)):
            raise TypeError(f"{param}: each entry must be a str or a re.Pattern, got {item!r}.")
    return items


def _matches(pattern: str | re.Pattern[str], name: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.search(name) is not None
    if pattern == name:  # names of per-iteration sites hold brackets: "layers[3]/relu_0"
        return True
    if _GLOB & set(pattern):
        return fnmatch.fnmatchcase(name, pattern)
    return name == pattern


def _check_known(patterns: list, names: list[str], param: str) -> None:
    for pattern in patterns:
        plain = isinstance(pattern, str) and not (_GLOB & set(pattern))
        if plain and pattern not in names:
            raise ValueError(f"{param}: no site named {pattern!r}; the sites are {names}.")


def select(sites: Sequence[Site], include: Selector | None, exclude: Selector | None) -> list[Site]:
    """The sites matching ``include`` (all when None) and not matching ``exclude``.

    Plain names must exist (a typo is an error); a string equal to a site's name selects it
    (even with brackets, as in ``"layers[3]/relu_0"``); other strings with ``*?[`` are globs
    (:func:`fnmatch.fnmatchcase`); compiled regular expressions match with ``search``.

    Raises:
      ValueError: for an unknown plain name, or when nothing is left.
    """
    names = [s.name for s in sites]
    chosen = list(sites)
    if include is not None:
        pats = _patterns(include, "sites")
        _check_known(pats, names, "sites")
        chosen = [s for s in chosen if any(_matches(p, s.name) for p in pats)]
    if exclude is not None:
        pats = _patterns(exclude, "exclude")
        _check_known(pats, names, "exclude")
        chosen = [s for s in chosen if not any(_matches(p, s.name) for p in pats)]
    if not chosen:
        raise ValueError(
            f"no site left after sites={include!r}, exclude={exclude!r}; the sites are {names}."
        )
    return chosen
