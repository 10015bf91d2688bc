"""How the engine's helper nodes print: in standard notation, by any printer.

The engine's helpers (``sum_to``, ``broadcast_to``, ``index_put``, ``setitem``,
``extremum_mask``, ``is_equal``, ``tie_step``), and the structural functions whose
display differs (reductions with an axis, indexing, reshapes), are ordinary SymPy functions inside the
forms users print, also with Python's ``str``/``repr`` (``print(symgrad.diff(loss, b))``),
SymPy's own ``pretty``/``latex`` and notebooks.  :class:`PrintedInStandardNotation` makes
each of them print as its display form (:func:`symgrad.symbolic.printing.display.shown_node`: the
node alone rewritten, its operands printing themselves), with that form's precedence, so
no printer shows a helper.  The printers of :mod:`..printing.printers` rewrite the whole form first
(:func:`~symgrad.symbolic.printing.display.to_display`), which also drops broadcasts its
context makes implicit.  ``sympy.srepr`` still shows the engine's nodes.
"""
from __future__ import annotations

__all__ = ["PrintedInStandardNotation"]


def _standard(node):
    from ..printing.display import shown_node

    return shown_node(node)


class PrintedInStandardNotation:
    """Mixin (listed first among the bases) of the engine's functions whose display form
    differs from their own; a display subclass (``ShownSum``, ...) is its own display
    form and prints by the next class's methods."""

    def _sympystr(self, printer) -> str:
        shown = _standard(self)
        return super()._sympystr(printer) if shown is self else printer._print(shown)

    def _latex(self, printer, exp=None) -> str:
        shown = _standard(self)
        if shown is self:
            return super()._latex(printer, exp)
        text = printer._print(shown)
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)

    def _pretty(self, printer):
        shown = _standard(self)
        return super()._pretty(printer) if shown is self else printer._print(shown)

    @property
    def precedence(self) -> int:
        from sympy.printing.precedence import PRECEDENCE, precedence

        shown = _standard(self)
        if shown is self:
            return getattr(super(), "precedence", PRECEDENCE["Func"])
        return precedence(shown)
