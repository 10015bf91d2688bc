"""The two printing functions the forms call, which the printing layer above supplies.

A helper node of the engine prints as its display form (:mod:`..forms.notation`), and a
structural function's ``repr`` is symgrad's abbreviated text; both are made by
:mod:`symgrad.symbolic.printing`, which sits above the forms.  The forms call
:func:`shown_node` and :func:`short_text` here, and the printing layer installs its
functions when it loads (:func:`install`, from ``printing/printers.py``).  Until then a
node shows as itself and ``repr`` is SymPy's ``sstr``.
"""
from __future__ import annotations

from typing import Any, Callable

import sympy as sp

_INSTALLED: dict[str, Callable] = {}


def shown_node(node: sp.Basic) -> sp.Basic:
    """The display form of ``node`` alone (its operands untouched)."""
    show = _INSTALLED.get("shown_node")
    return node if show is None else show(node)


def short_text(expr: sp.Basic) -> str:
    """The text of ``expr``, abbreviated for a ``repr``."""
    shorten = _INSTALLED.get("short_text")
    return sp.sstr(expr) if shorten is None else shorten(expr)


def install(*, shown_node: Callable[[sp.Basic], sp.Basic], short_text: Callable[[Any], str]) -> None:
    """Make :func:`shown_node` and :func:`short_text` call these functions."""
    for name, function in (("shown_node", shown_node), ("short_text", short_text)):
        if not callable(function):
            raise TypeError(f"print_hooks.install: {name} must be callable, got {type(function).__name__}")
    _INSTALLED.update(shown_node=shown_node, short_text=short_text)
