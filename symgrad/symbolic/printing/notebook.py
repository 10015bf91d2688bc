"""Closed forms in notebooks: bounded mime bundles, and the notebook display of SymPy forms.

A notebook keeps what a cell displays, and a browser renders it with MathJax: a closed
form of a few thousand ops can print to megabytes of LaTeX (the derivative of a 2,000-op
``sin`` chain: 40 MB), which breaks the page, and MathJax fails on LaTeX nested more than
about 500 levels deep.  So every notebook display of a closed form is a *bounded* bundle
(:func:`form_bundle`): the whole form where it fits in :data:`DISPLAY_BUDGET` characters
(and :data:`LATEX_NESTING` levels), otherwise the form in named parts, top-down
(``p_1 = ...`` as :func:`~symgrad.symbolic.printing.printers.pretty` names them; a long sum keeps
its leading terms; a matrix is shown entry by entry) up to the budget, then one line that
says what is not shown (ops, depth, free symbols) and how to get all of it.  Both
``text/plain`` and ``text/latex`` are always there and bounded alike.

SymPy's own objects (``diff`` returns one, ``t.expr`` is one) are displayed through the
same bundle by formatters registered with IPython for ``sympy.Basic``, matrices and
N-d arrays (:func:`install_ipython_display`, which ``symgrad.symbolic`` runs when it
loads; outside IPython it does nothing): IPython asks a type's registered formatter before the object's ``_repr_*_``
methods, and by the most specific class first, so ``sympy.init_printing()`` -- which
registers its printers for SymPy's base class ``Printable`` and rewrites
``Printable._repr_latex_`` -- changes nothing here, whichever runs first.  What those
printers give (SymPy's text, or ``init_printing``'s pretty form and LaTeX settings) is
still what a small form shows; only where they fail (``RecursionError``) or would be over
the budget is the bounded bundle shown instead.
"""
from __future__ import annotations

import functools
import io
import re
import sys
from typing import Any, Callable, Iterable, Sequence

import sympy as sp

from .printers import deep_pieces, latex, text
from ..core.symbols import free_symbols, postorder_by_identity

__all__ = ["DISPLAY_BUDGET", "LATEX_NESTING", "form_bundle", "sympy_bundle", "install_ipython_display"]

DISPLAY_BUDGET = 20_000
"""Characters of LaTeX, and of text, in one notebook output of a closed form."""

LATEX_NESTING = 200
"""Levels of LaTeX groups (``{...}``, ``\\left(...\\right)``) one displayed part may nest:
MathJax 3 stops rendering at about 500."""

_SUMMARY_ROOM = 600
"""Characters kept free for the closing summary lines."""

_LEAST_ROOM = 1_000
"""Characters at least that one equation gets of the budget, if so much is left."""

Equation = tuple  # (label or None, form): a form is a SymPy expression, matrix, N-d array or number


# ============================================================================ measuring a form
class FormFacts:
    """What the summary line says about forms: distinct operations, depth and free symbols."""

    def __init__(self, forms: Iterable[Any]) -> None:
        roots = [f for f in _entries(forms) if isinstance(f, sp.Basic)]
        height: dict = {}
        for node in postorder_by_identity(roots):
            height[id(node)] = 1 + max((height[id(a)] for a in node.args), default=0)
        self.ops = sum(1 for node in postorder_by_identity(roots) if node.args)
        self.depth = max((height[id(r)] for r in roots), default=0)
        symbols: set = set()
        for root in roots:
            symbols |= free_symbols(root)
        self.free_symbols = sorted(str(s) for s in symbols)

    def describe(self) -> str:
        names = ", ".join(self.free_symbols[:12]) + (", ..." if len(self.free_symbols) > 12 else "")
        return f"{self.ops:,} ops, depth {self.depth:,}, free symbols: {names or 'none'}"


def printed_length_bound(forms: Iterable[Any], cap: int) -> int:
    """A lower bound of the length of the text (and the LaTeX) of ``forms`` written out as
    trees -- shared subtrees count at every use -- capped at ``cap + 1``: a name its
    length, a number, a product's or a power's operator one character, a function its
    name, a sum three per ``' + '``.  A form whose bound passes a budget is not printed
    whole to learn that it does not fit.

    >>> x = sp.Symbol("x")
    >>> printed_length_bound([sp.sin(x) + x ** 2], cap=100), len(str(sp.sin(x) + x ** 2))
    (10, 13)
    """
    roots = [f for f in _entries(forms) if isinstance(f, sp.Basic)]
    length: dict = {}
    for node in postorder_by_identity(roots):
        if isinstance(node, sp.Symbol):
            own = len(node.name)
        elif isinstance(node, sp.Function):
            own = len(type(node).__name__)
        elif node.is_Add:
            own = 3 * (len(node.args) - 1)
        else:
            own = 1
        length[id(node)] = min(cap + 1, own + sum(length[id(a)] for a in node.args))
    return min(cap + 1, sum(length[id(r)] for r in roots))


def _entries(forms: Iterable[Any]) -> Iterable[Any]:
    """The forms, with matrices and N-d arrays replaced by their entries."""
    for form in forms:
        if _is_array(form):
            yield from _flat_entries(form)
        else:
            yield form


def _is_array(form: Any) -> bool:
    return isinstance(form, (sp.MatrixBase, sp.NDimArray))


def _flat_entries(form: Any) -> list:
    return list(form) if isinstance(form, sp.MatrixBase) else list(sp.flatten(form.tolist()))


def latex_nesting(shown: str) -> int:
    """How deeply the groups of LaTeX ``shown`` nest (braces and ``\\left``/``\\right``).

    >>> latex_nesting(r"\\sin{\\left(x^{2} \\right)}")
    3
    """
    deepest = level = 0
    for token in re.finditer(r"\\left|\\right|\\[{}]|[{}]", shown):
        word = token.group()
        if word in ("\\left", "{"):
            level += 1
            deepest = max(deepest, level)
        elif word in ("\\right", "}"):
            level -= 1
    return deepest


# ============================================================================ the bundle
class _Style:
    """How one mime type writes a part: the whole form, a name, a line and the ellipsis."""

    def __init__(self, show: Callable[[Any], str], label: Callable[[Any], str], line: Callable[[str, str], str],
                 more_terms: str, fits: Callable[[str], bool]) -> None:
        self.show, self.label, self.line, self.more_terms, self.fits = show, label, line, more_terms, fits


def _latex_label(name: Any) -> str:
    if name is None:
        return ""
    if isinstance(name, str):
        return r"\mathrm{%s}" % name.replace("_", r"\_")
    return latex(name)


def _text_label(name: Any) -> str:
    return "" if name is None else str(name)


def _latex_line(label: str, shown: str) -> str:
    return f"{label} &= {shown}" if label else f"& {shown}"


def _text_line(label: str, shown: str) -> str:
    return f"{label} = {shown}" if label else shown


_LATEX = _Style(latex, _latex_label, _latex_line, r"\dots", lambda shown: latex_nesting(shown) <= LATEX_NESTING)
_TEXT = _Style(text, _text_label, _text_line, "...", lambda shown: True)


def _shown_within(form: Any, room: int, style: _Style) -> tuple[str | None, str]:
    """``form`` written in at most ``room`` characters, and a note of what was left out:
    the whole form, else (a sum) its leading terms, else ``None``."""
    if room <= 0:
        return None, ""
    if printed_length_bound([form], cap=room) <= room:
        shown = style.show(form)
        if len(shown) <= room and style.fits(shown):
            return shown, ""
    if not (isinstance(form, sp.Basic) and form.is_Add):
        return None, ""
    terms = list(form.args)
    shown = ""
    for k, term in enumerate(terms):
        piece, _ = _shown_within(term, room - len(shown) - 40, style) if not term.is_Add else (None, "")
        if piece is None:
            break
        shown = piece if k == 0 else (f"{shown} - {piece[1:].lstrip()}" if piece.startswith("-")
                                      else f"{shown} + {piece}")
    else:
        return shown, ""
    if not shown:
        return None, ""
    return f"{shown} + {style.more_terms}", f"{k} of {len(terms)} terms"


def _parts(equations: Sequence[Equation]) -> tuple[list[Equation], int]:
    """The equations as named parts, top-down: each equation's top piece (matrices entry by
    entry), then the definitions of the pieces they name; and how many are equations."""
    rows: list[Equation] = []
    for label, form in equations:
        if _is_array(form):
            shape = form.shape
            for k, entry in enumerate(_flat_entries(form)):
                index = ", ".join(map(str, _unravel(k, shape)))
                rows.append((f"{label or ''}[{index}]", entry))
        else:
            rows.append((label, form))
    deep = [k for k, (_, form) in enumerate(rows) if isinstance(form, sp.Expr)]
    if not deep:
        return rows, len(rows)
    top, definitions = deep_pieces(sp.Tuple(*(rows[k][1] for k in deep)))
    for k, piece in zip(deep, top.args):
        rows[k] = (rows[k][0], piece)
    return rows + definitions, len(rows)


def _unravel(k: int, shape: tuple) -> tuple:
    index = []
    for size in reversed(shape):
        k, r = divmod(k, size)
        index.append(r)
    return tuple(reversed(index))


def _piecewise(rows: list[Equation], equation_count: int, style: _Style, facts: FormFacts, rest: str) -> list[str]:
    """Lines of the parts (``rows``, see :func:`_parts`) that fit the budget, then two
    summary lines: what is shown and what the form is, and how to get all of it.  The
    equations share the budget (a long sum gets its share and keeps its leading terms);
    the definitions of the pieces get what is left, top-down."""
    lines: list[str] = []
    notes: list[str] = []
    left = DISPLAY_BUDGET - _SUMMARY_ROOM
    for k, (name, form) in enumerate(rows):
        label = style.label(name)
        share = left // (equation_count - k) if k < equation_count else left
        shown, note = _shown_within(form, max(share, _LEAST_ROOM) - len(label) - 10, style)
        if shown is None or len(shown) > left:
            break
        line = style.line(label, shown)
        lines.append(line)
        left -= len(line) + 4
        if note:
            notes.append(f"{_text_label(name) or 'the form'}: {note} shown")
    parts = [] if len(rows) == 1 else [f"{len(lines)} of {len(rows)} parts shown"]
    return lines + ["; ".join([*parts, *notes, facts.describe()]), f"All of it: {rest}"]


def form_bundle(equations: Sequence[Equation], *, whole_latex: Callable[[], str] | None = None,
                whole_text: Callable[[], str] | None = None, rest: str = "symgrad.symbolic.text(form), "
                "symgrad.symbolic.latex(form)") -> dict[str, str]:
    """A notebook's mime bundle (``text/plain`` and ``text/latex``) of ``equations``
    (``(label, form)`` pairs; ``label`` a name, or ``None``), each at most
    :data:`DISPLAY_BUDGET` characters.  Where the forms fit, ``whole_latex()`` and
    ``whole_text()`` (defaults: the equations one per line) are shown; otherwise named
    parts up to the budget and a summary line ending with ``rest``, which says how to get
    all of it.

    >>> x = sp.Symbol("x")
    >>> form_bundle([("f", x ** 2)])["text/latex"]
    '$\\\\displaystyle \\\\begin{aligned}\\\\mathrm{f} &= x^{2}\\\\end{aligned}$'
    >>> long = sp.Add(*[sp.sin(k * x) for k in range(1, 2001)])
    >>> shown = form_bundle([("f", long)])
    >>> [len(s) <= DISPLAY_BUDGET for s in shown.values()], shown["text/plain"].splitlines()[-2]
    ([True, True], 'f: 1461 of 2000 terms shown; 4,000 ops, depth 4, free symbols: x')
    """
    forms = [form for _, form in equations]
    small = printed_length_bound(forms, cap=DISPLAY_BUDGET) <= DISPLAY_BUDGET
    facts = rows = None
    bundle: dict[str, str] = {}
    for mime, style, whole in (("text/latex", _LATEX, whole_latex), ("text/plain", _TEXT, whole_text)):
        if small:
            try:
                shown = whole() if whole is not None else _joined(equations, style)
            except RecursionError:  # a printer that recurses (SymPy's, a user's): the parts are shallow
                shown = None
            if shown is not None and len(shown) <= DISPLAY_BUDGET and style.fits(shown):
                bundle[mime] = shown
                continue
        facts, rows = facts or FormFacts(forms), rows or _parts(equations)
        lines = _piecewise(*rows, style, facts, rest)
        if style is _LATEX:
            lines[-2:] = [r"& \text{%s}" % _latex_text(line) for line in lines[-2:]]
            bundle[mime] = r"$\displaystyle \begin{aligned}%s\end{aligned}$" % r"\\ ".join(lines)
        else:
            bundle[mime] = "\n".join(lines)
    return bundle


def _joined(equations: Sequence[Equation], style: _Style) -> str:
    lines = [style.line(style.label(name), style.show(form)) for name, form in equations]
    if style is _LATEX:
        return r"$\displaystyle \begin{aligned}%s\end{aligned}$" % r"\\ ".join(lines)
    return "\n".join(lines)


def _latex_text(note: str) -> str:
    """``note`` as the argument of ``\\text{}``."""
    return re.sub(r"([_{}#%&$^\\])", lambda m: {"\\": r"\textbackslash{}", "^": r"\^{}"}.get(
        m.group(1), "\\" + m.group(1)), note)


# ============================================================================ SymPy's objects
def sympy_bundle(form: Any, plain: Callable[[Any], str] | None = None,
                 latex_of: Callable[[Any], str | None] | None = None) -> dict[str, str]:
    """The bounded bundle of a SymPy object: ``plain(form)`` and ``latex_of(form)`` (by
    default ``repr`` and its ``_repr_latex_``: what SymPy, or ``init_printing``, shows)
    where they work and fit, else named parts (see :func:`form_bundle`).  A ``latex_of``
    that returns ``None`` (LaTeX turned off by ``init_printing``) leaves LaTeX out.

    >>> sympy_bundle(sp.Symbol("x") ** 2)
    {'text/latex': '$\\\\displaystyle x^{2}$', 'text/plain': 'x**2'}
    """
    plain = plain or repr
    latex_of = latex_of or (lambda f: f._repr_latex_())
    wanted_latex: list = []

    def whole_latex() -> str:
        shown = latex_of(form)
        wanted_latex.append(shown is not None)
        return "" if shown is None else shown

    bundle = form_bundle([(None, form)], whole_latex=whole_latex, whole_text=lambda: plain(form))
    if wanted_latex == [False]:
        del bundle["text/latex"]
    return bundle


def _sympy_types() -> tuple:
    return (sp.Basic, sp.MatrixBase, sp.NDimArray)


def install_ipython_display(shell: Any = None) -> bool:
    """Register the bounded display of SymPy objects with IPython's formatters (``shell``,
    or the running one); ``False`` if there is none.  Idempotent.

    Registered by type for ``sympy.Basic``, matrices and N-d arrays, so they are asked
    before anything ``sympy.init_printing()`` registers for ``Printable`` or puts in
    ``Printable._repr_latex_``; a small form still shows what those give."""
    if shell is None:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "display_formatter"):
        return False
    formatters = shell.display_formatter.formatters
    plain_formatter, latex_formatter = formatters["text/plain"], formatters["text/latex"]

    def plain_of(form: Any) -> str:
        from sympy.printing.defaults import Printable

        registered = plain_formatter.type_printers.get(Printable)  # init_printing's, if it ran
        if registered is None:
            return repr(form)
        from IPython.lib.pretty import RepresentationPrinter

        out = io.StringIO()
        printer = RepresentationPrinter(out)
        registered(form, printer, False)
        printer.flush()
        return out.getvalue()

    last: list = [None, None]  # IPython asks for text and LaTeX in turn: one bundle for both

    def bundle_of(form: Any) -> dict:
        if last[0] is not form or not isinstance(form, sp.Basic):  # a mutable matrix may have changed
            last[:] = [form, sympy_bundle(form, plain=plain_of)]
        return last[1]

    def show_plain(form: Any, printer: Any, cycle: bool) -> None:
        printer.text(bundle_of(form)["text/plain"])

    def show_latex(form: Any) -> str | None:
        return bundle_of(form).get("text/latex")

    for cls in _sympy_types():
        plain_formatter.for_type(cls, show_plain)
        latex_formatter.for_type(cls, show_latex)
        for mime, method in (("image/png", "_repr_png_"), ("image/svg+xml", "_repr_svg_")):
            formatters[mime].for_type(cls, functools.partial(_picture_if_small, method=method))
    return True


def _picture_if_small(form: Any, method: str) -> Any:
    """What ``form.<method>()`` draws (``init_printing`` may make SymPy draw its LaTeX as
    a picture), for a form whose text fits the budget; nothing for a larger one, or where
    SymPy's printer runs out of depth."""
    if printed_length_bound([form], cap=DISPLAY_BUDGET) > DISPLAY_BUDGET:
        return None
    draw = getattr(form, method, None)
    try:
        return draw() if draw is not None else None
    except RecursionError:
        return None
