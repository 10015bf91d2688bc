"""Printing closed forms: text, pretty unicode, LaTeX, notebooks, and per-element views.

Array-level closed forms print as matrix formulas (``x.T @ (sigmoid(b + x @ w) - y)/3``),
never as expanded scalars: every structural function prints itself (``structural.py``),
and SymPy prints the elementwise rest.  What is printed is the *display form*
(``display.py``): the engine's helpers (``sum_to``, ``index_put``, ``tie_step`` ...)
rewritten in standard notation.  ``simplify=True`` runs SymPy's ``simplify`` within a time
budget and checks the result by values (``simplifying.py``); it is off by default.
:func:`tidy` (``sympy.factor_terms``) is the cheap tidying compiled transforms use.

:class:`ClosedForm` wraps an expression for display: ``str`` gives text, ``repr`` the
pretty form, and ``_repr_latex_`` renders it in notebooks.

Forms of any depth print completely (SymPy's printers recurse): text and LaTeX are
printed bottom-up in pieces by SymPy's printers and spliced (:func:`deep_text`,
:func:`deep_latex`); the pretty form names the pieces and defines each below the form
(:func:`deep_pieces`), since 2-D pictures do not splice; notebooks display closed forms
through :mod:`symgrad.symbolic.printing.notebook`, bounded.  Importing this module changes
no SymPy class: Python's ``str`` and ``repr`` of a SymPy expression stay SymPy's unless a
program opts in to deep printing for every SymPy object (:func:`print_sympy_at_any_depth`).

:func:`per_element` is the *view* for small arrays: it evaluates an array-level form on
arrays of scalar symbols (``w[0, 1]``), giving one scalar closed form per element.  The
engine never computes with it.
"""
from __future__ import annotations

import functools
import itertools
import os
import re
from typing import Any, Iterator, Mapping

import numpy as np
import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.str import StrPrinter

from .display import defined_data, shown_node, sizes_in, to_display, with_sizes
from ..derive.reverse import _is_tensor, as_expr
from ..derive.simplifying import simplified
from ..forms.structural import StructuralFunction, _Indexed, fill_index, is_equal
from ..core import print_hooks
from ..core._compat import Printable, matrix_simplification
from ..core.symbols import ArrayVar, operands, postorder, shape_of, size_of, unevaluated

__all__ = ["text", "pretty", "latex", "tidy", "ClosedForm", "per_element", "print_sympy_at_any_depth"]


def tidy(expr: Any) -> Any:
    """A tidier equal form: common factors and signs pulled out of sums.

    >>> x, y = sp.symbols("x y")
    >>> tidy(-y / 3 + x / 3)
    (x - y)/3
    """
    if isinstance(expr, (list, tuple)):
        return type(expr)(tidy(e) for e in expr)
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(tidy)
    return sp.factor_terms(as_expr(expr))


def shown_form(expr: Any, simplify: bool = False, sizes: Mapping[str, int] | None = None) -> tuple[Any, list]:
    """What the printers print: the display form (:func:`~symgrad.symbolic.printing.display.to_display`)
    of ``expr`` with short data definitions written in place
    (:func:`~symgrad.symbolic.printing.display.defined_data`), simplified first with
    ``simplify=True`` (see :func:`~symgrad.symbolic.derive.simplifying.simplified`), with
    fractions over the ``sizes`` written over their names
    (:func:`~symgrad.symbolic.printing.display.with_sizes`); and the ``(name, definition)``
    pairs of the data it names, shown the same way, which the printers list after it."""
    sizes = sizes_in(expr, sizes)
    expr, where = defined_data(expr)

    def shown(form: Any) -> Any:
        return with_sizes(to_display(simplified(as_expr(form)) if simplify else form), sizes)

    return shown(expr), [(name, shown(definition)) for name, definition in where]


def text(expr: Any, simplify: bool = False, max_length: int | None = None,
         sizes: Mapping[str, int] | None = None) -> str:
    """Plain text (``str``) of a closed form, complete however deep it is (see
    :func:`deep_text`); with ``max_length``, abbreviated to about that many characters
    (see :func:`abbreviate`).  ``simplify=True`` simplifies within a time budget
    (:func:`~symgrad.symbolic.derive.simplifying.simplified`); ``sizes={"n": 50}`` writes a
    fraction over 50 as over ``n`` (:func:`~symgrad.symbolic.printing.display.with_sizes`).
    Every printer prints the display form (:func:`~symgrad.symbolic.printing.display.to_display`).

    >>> from symgrad.symbolic.forms.structural import Matmul, Transpose
    >>> x, y = ArrayVar("x", (3, 2)), ArrayVar("y", (3, 1))
    >>> text(Matmul.of(Transpose.of(x, dim0=0, dim1=1), 1 - y / 3))
    'x.T @ (1 - y/3)'
    >>> text(sum(sp.sin(k * sp.Symbol("t")) for k in range(1, 200)), max_length=80)
    'sin(t) + sin(2*t) + sin(3*t) + ...[2,474 characters in all]... + sin(199*t)'
    """
    form, where = shown_form(expr, simplify, sizes)
    shown = _deep_text_of(form) + "".join(f"\n{'where' if k == 0 else '     '} {name} = {_deep_text_of(definition)}"
                                          for k, (name, definition) in enumerate(where))
    return shown if max_length is None else abbreviate(shown, max_length)


def _deep_text_of(form: Any) -> str:
    return deep_text(form) if isinstance(form, sp.Basic) else str(form)


def pretty(expr: Any, simplify: bool = False, use_unicode: bool = True, wrap_line: bool = True,
           sizes: Mapping[str, int] | None = None) -> str:
    """SymPy's 2-D pretty form (with ``wrap_line``, lines wider than the terminal are
    broken as SymPy breaks them).  A form too deep for SymPy's printer prints as its top
    piece, naming the pieces below it, then one line (or block) per piece, top-down, each
    naming the pieces below it in turn (see :func:`deep_pieces`)::

        sin(sin(sin(sin(p₁))))
        where  p₁ = sin(sin(sin(...(p₂)...)))
               p₂ = sin(sin(sin(...(x)...)))

    >>> print(pretty(sp.Symbol("x") ** 2 / 2))
     2
    x
    ──
    2
    >>> chain = sp.Symbol("x")
    >>> for _ in range(50):
    ...     chain = sp.sin(chain)
    >>> shown = pretty(chain)
    >>> shown.splitlines()[0], shown.count("where  p₁ = sin(sin("), shown.count("       p₂ = sin(sin(")
    ('sin(sin(sin(sin(p₁))))', 1, 1)
    """
    from sympy.printing.pretty.pretty import PrettyPrinter, pretty_use_unicode
    from sympy.printing.pretty.stringpict import prettyForm, stringPict

    form, where = shown_form(expr, simplify, sizes)
    top, definitions = deep_pieces(form) if isinstance(form, sp.Basic) else (form, [])
    definitions = where + definitions
    if not definitions:
        return sp.pretty(top, use_unicode=use_unicode, wrap_line=wrap_line)
    printer = PrettyPrinter({"use_unicode": use_unicode, "wrap_line": wrap_line})
    unicode_was = pretty_use_unicode(printer._settings["use_unicode"])  # as sympy.pretty does
    try:
        blocks = [printer.doprint(top)]
        for k, (name, piece) in enumerate(definitions):
            label = prettyForm("where  " if k == 0 else " " * 7)
            line = prettyForm(*stringPict.next(label, printer._print(name), " = ", printer._print(piece)))
            blocks.append(line.render(**printer._settings))
    finally:
        pretty_use_unicode(unicode_was)
    return "\n".join(blocks)


def latex(expr: Any, simplify: bool = False, sizes: Mapping[str, int] | None = None) -> str:
    """LaTeX source, complete however deep the form is (see :func:`deep_latex`).

    >>> from symgrad.symbolic.forms.stable import sigmoid
    >>> latex(sigmoid(sp.Symbol("z")))
    '\\\\sigma\\\\left(z\\\\right)'
    """
    form, where = shown_form(expr, simplify, sizes)
    shown = deep_latex(form) if isinstance(form, sp.Basic) else sp.latex(form)
    if where:
        shown += r" \quad \text{where } " + r", \; ".join(
            f"{sp.latex(name)} = {deep_latex(definition)}" for name, definition in where)
    return shown


class ClosedForm:
    """A closed form for display: text by ``str``, pretty by ``repr``, LaTeX in notebooks
    (bounded there: see :mod:`symgrad.symbolic.printing.notebook`; ``text()``, ``latex()`` and
    ``save()`` give all of it).

    >>> f = ClosedForm(sp.Symbol("x") ** 2, name="f")
    >>> str(f), f.latex()
    ('x**2', 'x^{2}')
    """

    def __init__(self, expr: Any, name: str | None = None, simplify: bool = False,
                 sizes: Mapping[str, int] | None = None) -> None:
        self.expr = simplified(as_expr(expr)) if simplify else expr
        self.name = name
        self.sizes = sizes

    def __str__(self) -> str:
        return text(self.expr, sizes=self.sizes)

    def __repr__(self) -> str:
        return pretty(self.expr, sizes=self.sizes)

    def text(self) -> str:
        """The whole form as text."""
        return text(self.expr, sizes=self.sizes)

    def latex(self) -> str:
        """The whole form as LaTeX."""
        return latex(self.expr, sizes=self.sizes)

    def save(self, path: str | os.PathLike) -> None:
        """Write the whole form to ``path``: LaTeX for a ``.tex`` file, text otherwise."""
        shown = self.latex() if os.fspath(path).endswith(".tex") else self.text()
        with open(path, "w", encoding="utf-8") as out:
            out.write(shown + "\n")

    def _whole_latex(self) -> str:
        body = self.latex()
        if self.name:
            body = r"\mathrm{%s} = %s" % (self.name.replace("_", r"\_"), body)
        return f"$\\displaystyle {body}$"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        from .notebook import form_bundle

        return form_bundle([(self.name, self.expr)], whole_latex=self._whole_latex, whole_text=self.__repr__,
                           rest=".text(), .latex() or .save('form.tex')")

    def _repr_latex_(self) -> str:
        return self._repr_mimebundle_()["text/latex"]

    def per_element(self, indices: Mapping | None = None):
        """The per-element view (small arrays only), see :func:`per_element`."""
        return per_element(self.expr, indices)


# ============================================================================ deep forms
PRINT_DEPTH = 24
"""Levels of a tree that SymPy's (recursive) printers print at a time; deeper forms are
printed in pieces of at most this depth."""

REPR_LENGTH = 1_000
"""Characters of an abbreviated ``repr`` (``text()`` and ``str()`` stay complete)."""

KEY_DEPTH = 60
"""Levels of nested tuples of a subtree's sort key that its stand-in keeps: SymPy orders
the terms of a sum and the factors of a product by comparing such keys, and compares
two subtrees like their stand-ins unless their keys agree so far."""

REAL_ENDS = 16
"""Characters of a piece's own text that its marker keeps at each end, so that a printer
looking at an operand's text (a leading minus sign, two numbers side by side) sees them."""


def abbreviate(shown: str, max_length: int) -> str:
    """``shown`` in at most ``max_length`` characters: its beginning and end (cut at a
    ``' + '`` or ``', '`` where one is near) around the number of characters in all.

    >>> abbreviate("x" * 30, 29)
    'x...[30 characters in all]...'
    >>> abbreviate("short", 20)
    'short'
    """
    if len(shown) <= max_length:
        return shown
    marker = f"...[{len(shown):,} characters in all]..."
    room = max_length - len(marker)
    if room < 1:
        raise ValueError(f"max_length={max_length} leaves no room for an abbreviation of {len(shown):,} "
                         f"characters; use {len(marker) + 1} or more")
    tail_room = room // 4
    slack = 2 if tail_room > 2 else 0  # lets the end start at a " + "
    head, start = shown[: room - tail_room - slack], len(shown) - tail_room - slack
    tail = shown[start:]
    for sep in (" + ", ", "):
        cut = head.rfind(sep)
        if cut >= len(head) // 2:
            head = head[: cut + len(sep)]
            break
    for sep in (" + ", ", "):
        cut = shown.find(sep, start)
        if cut >= 0:
            tail = shown[cut:]
            break
    return f"{head}{marker}{tail}"


class _Piece(ArrayVar):
    """Stands for a subtree printed already, one *piece* of a deep form: prints as a marker
    that the final text replaces with the piece's text, and answers what a printer asks
    about an operand (its precedence, whether a minus sign can be taken out, its negation,
    the LaTeX of a function raised to a power) by asking the piece (the subtree's top
    levels, with stand-ins further down), so SymPy's printer treats it like the subtree
    without looking deeper."""

    is_Symbol = False  # a subtree, not a name (SymPy's printers and assumptions ask)

    def _sympystr(self, printer) -> str:
        return self.shown

    _sympyrepr = _sympystr

    def _latex(self, printer, exp=None) -> str:
        return self.shown if exp is None else printer._print(self.piece, exp=exp)

    def could_extract_minus_sign(self) -> bool:
        return self.piece.could_extract_minus_sign()

    def sort_key(self, order=None):
        return self.key

    def __neg__(self) -> sp.Expr:
        if self.negated is None:
            self.negated = self.printing.stand_in(-self.piece, self.array_shape)
            if isinstance(self.negated, _Piece) and self.negated.negated is None:
                self.negated.negated = self
        return self.negated


class _FunctionPiece(_Piece):
    """The stand-in of a function call (a power of it prints as ``\\sin^{2}`` in LaTeX)."""

    is_Function = True


class _DeepPrinting:
    """One printing of a deep form by ``printer``: every piece is printed once, bottom-up,
    its text kept under a numbered marker that the stand-ins print; ``precedence_of(piece,
    shown)`` is the precedence a stand-in gives the printer."""

    def __init__(self, printer, precedence_of) -> None:
        self.printer, self.precedence_of = printer, precedence_of
        self.token = f"\x00{os.urandom(8).hex()}:"  # no name can contain it by chance
        self.bodies: list[str] = []
        self.stand_ins: list[_Piece] = []

    def doprint(self, expr: sp.Basic) -> str:
        try:
            top = _split(expr, _cut_points(expr), lambda piece, node, _: self.stand_in(piece, shape_of(node)))
            return _expand(self.printer.doprint(top), self.bodies, self.token)
        finally:  # SymPy's caches may keep stand-ins; they must not keep the form
            for stand_in in self.stand_ins:
                stand_in.piece = stand_in.printing = stand_in.negated = None

    def stand_in(self, piece: sp.Expr, shape) -> sp.Expr:
        """A stand-in for ``piece`` (printed now); its marker keeps the piece's first and
        last :data:`REAL_ENDS` characters, between markers of the pieces below, except a
        sum's leading minus sign (SymPy's text printer takes it for the sign of the term)."""
        if isinstance(piece, _Piece):
            return piece
        shown = self.printer.doprint(piece)
        first, last = shown.find(self.token), shown.rfind(self.token)
        head = "" if piece.is_Add else shown[:min(REAL_ENDS, len(shown) if first < 0 else first)]
        tail_from = max(len(head), len(shown) - REAL_ENDS,
                        0 if last < 0 else shown.index("\x00", last + len(self.token)) + 1)
        self.bodies.append(shown[len(head):tail_from])
        stand_in = (_FunctionPiece if piece.is_Function else _Piece)(f"_piece{next(_PIECES)}", shape)
        stand_in.shown = f"{head}{self.token}{len(self.bodies) - 1}\x00{shown[tail_from:]}"
        stand_in.precedence = self.precedence_of(piece, shown)
        stand_in.piece, stand_in.printing, stand_in.negated = piece, self, None
        stand_in.key = _truncated(piece.sort_key(), KEY_DEPTH)
        self.stand_ins.append(stand_in)
        return stand_in


def _truncated(key, depth: int):
    """A sort key (nested tuples) with the tuples ``depth`` levels down emptied."""
    if not isinstance(key, tuple):
        return key
    return () if depth == 0 else tuple(_truncated(k, depth - 1) for k in key)


class _Name(ArrayVar):
    """The name of a piece of a deep form in its printed definition (``p_1``)."""


def deep_pieces(expr: sp.Basic) -> tuple[sp.Basic, list[tuple[sp.Symbol, sp.Basic]]]:
    """``expr`` in pieces that SymPy's printers can print whole: its top piece, and the
    definitions ``(name, piece)`` of the names in it, top-down, each piece naming the
    pieces below it in turn (pieces as :func:`deep_text` cuts them).  The names are
    ``p_1, p_2, ...`` (``q_1, ...`` if the form has a symbol that prints like those);
    a form SymPy can print whole is its own top piece, with no definitions.

    >>> x = sp.Symbol("x")
    >>> chain = x
    >>> for _ in range(50):
    ...     chain = sp.sin(chain)
    >>> top, definitions = deep_pieces(chain)
    >>> top, [(name, str(piece).count("sin")) for name, piece in definitions]
    (sin(sin(sin(sin(p_1)))), [(p_1, 23), (p_2, 23)])
    >>> deep_pieces(sp.sin(x))
    (sin(x), [])
    """
    cuts = _cut_points(expr)
    count = len(cuts) - (1 if cuts and cuts[-1] is expr else 0)
    letter = _free_letter(expr)
    definitions: list = [None] * count

    def name(piece: sp.Expr, node: sp.Expr, k: int) -> _Name:
        stand_in = _Name(f"{letter}_{count - k}", shape_of(node))
        definitions[count - k - 1] = (stand_in, piece)
        return stand_in

    return _split(expr, cuts, name), definitions


def _free_letter(expr: sp.Basic) -> str:
    """A letter ``L`` such that no symbol of ``expr`` prints like ``L_1`` (SymPy prints
    ``p1``, ``p_1`` and ``p₁`` alike)."""
    names = {node.name for node in postorder([expr]) if isinstance(node, sp.Symbol)}
    letters = itertools.chain("pqrsuvw", (f"p{chr(0x2032) * n}" for n in itertools.count(1)))  # then p′, p″...
    return next(letter for letter in letters if not any(
        re.fullmatch(re.escape(letter) + r"_?([0-9]+|[\u2080-\u2089]+)", name) for name in names))


def deep_text(expr: sp.Basic) -> str:
    """The text SymPy's printer gives, for trees of any depth: printed bottom-up in pieces
    of :data:`PRINT_DEPTH` levels or so, each by SymPy's printer, the pieces below standing
    in for their subtrees (SymPy's own printer recurses, and orders the terms of a sum by
    comparing whole subtrees).  A stand-in answers the printer's questions about its
    subtree (precedence, sign, negation, sort key) from the piece.  Where SymPy would look
    further down -- comparing two subtrees that agree for :data:`KEY_DEPTH` key levels,
    multiplying the numbers of a long run of products, collecting the terms of a sum it
    negates -- the text can differ from SymPy's, never in what it means.

    >>> x = sp.Symbol("x")
    >>> chain = x
    >>> for _ in range(3000):
    ...     chain = sp.Mul(2, sp.Add(chain, 1, evaluate=False), evaluate=False)
    >>> shown = deep_text(chain)
    >>> shown.count("2*("), shown[:12], shown[-12:]
    (3000, '2*(2*(2*(2*(', '1) + 1) + 1)')
    >>> deep_text(sp.sin(x) + 1) == str(sp.sin(x) + 1)
    True
    """
    return _DeepPrinting(StrPrinter(), _precedence_of).doprint(expr)


def deep_latex(expr: sp.Basic) -> str:
    """The LaTeX SymPy's printer gives, for trees of any depth, printed in pieces as
    :func:`deep_text` prints text; a stand-in also answers the LaTeX printer's questions
    about brackets (and a function's power) as its subtree would.  Where SymPy would look
    further down (as for text, and where it prints a product that is a numerator, a
    denominator or what is left after its minus sign factor by factor), the LaTeX can
    differ from SymPy's, never in what it means.

    >>> x = sp.Symbol("x")
    >>> chain = x
    >>> for _ in range(3000):
    ...     chain = sp.Mul(2, sp.Add(chain, 1, evaluate=False), evaluate=False)
    >>> shown = deep_latex(chain)
    >>> shown.count("2 \\\\left("), shown[:18], shown[-22:]
    (3000, '2 \\\\left(2 \\\\left(2 ', ' + 1\\\\right) + 1\\\\right)')
    >>> deep_latex(sp.sin(x) ** 2 + 1) == sp.latex(sp.sin(x) ** 2 + 1)
    True
    """
    from sympy.printing.precedence import precedence_traditional

    return _DeepPrinting(_DeepLatexPrinter(), lambda piece, shown: precedence_traditional(piece)).doprint(expr)


class _DeepLatexPrinter(LatexPrinter):
    """SymPy's LaTeX printer, asking whether an operand needs brackets of the piece its
    stand-in stands for."""

    def _needs_brackets(self, expr) -> bool:
        return super()._needs_brackets(_piece_of(expr))

    def _needs_function_brackets(self, expr) -> bool:
        return super()._needs_function_brackets(_piece_of(expr))

    def _needs_mul_brackets(self, expr, first=False, last=False) -> bool:
        """As SymPy's; a displayed sum (``\\sum_{i} x``) takes brackets unless it is the
        last factor, as SymPy's own ``Sum`` does."""
        from .display import ShownSum

        if isinstance(_piece_of(expr), ShownSum) and not last:
            return True
        return super()._needs_mul_brackets(_piece_of(expr), first=first, last=last)

    def _needs_add_brackets(self, expr) -> bool:
        return super()._needs_add_brackets(_piece_of(expr))

    def _print_Mul(self, expr) -> str:
        """As SymPy's, where a product whose minus sign SymPy takes out leaves a sum's
        stand-in (SymPy then prints ``- (a + b)``, asking the rest whether it is a sum)."""
        args = expr.args
        evaluated = isinstance(expr, sp.Mul) and not (
            args[0] is sp.S.One or any(isinstance(a, sp.Number) for a in args[1:]))  # SymPy prints those factor by factor
        if evaluated and expr.could_extract_minus_sign():
            rest = -expr
            if isinstance(rest, _Piece) and rest.piece.is_Add:
                return "- (%s)" % self._print(rest)
        return super()._print_Mul(expr)


def _piece_of(expr: sp.Basic) -> sp.Basic:
    return expr.piece if isinstance(expr, _Piece) else expr


_PIECES = itertools.count()


def _cut_points(expr: sp.Basic) -> list:
    """The nodes (in postorder) at which ``expr`` is cut into pieces: an expression node
    whose subtree, counting cut nodes below it as one level, is :data:`PRINT_DEPTH` deep --
    not a product, a power or an ``exp``, unless twice that deep (SymPy's printer looks
    into those: a product into the products and powers among its factors, a sum into the
    exponent of each term to order them)."""
    height: dict = {}  # id -> levels below and including the node (None while its children are visited)
    cuts = []
    stack = [expr]
    while stack:
        node = stack[-1]
        key = id(node)
        if key not in height:
            height[key] = None
            children = [a for a in node.args if id(a) not in height]
            if children:
                stack.extend(children)
                continue
        elif height[key] is not None:
            stack.pop()
            continue
        stack.pop()
        levels = 1 + max((height[id(a)] for a in node.args), default=0)
        if levels >= PRINT_DEPTH and isinstance(node, sp.Expr) and (
                levels >= 2 * PRINT_DEPTH or not (node.is_Mul or node.is_Pow or isinstance(node, sp.exp))):
            cuts.append(node)
            levels = 1
        height[key] = levels
    return cuts


def _split(expr: sp.Basic, cuts: list, stand_in_for) -> sp.Basic:
    """The top piece of ``expr``: ``expr`` with every node of ``cuts`` (in postorder, see
    :func:`_cut_points`) but ``expr`` itself replaced by ``stand_in_for(piece, node, k)``,
    bottom-up, where ``piece`` is the ``k``-th cut node with the cut nodes below it replaced
    in turn."""
    stand_ins: dict = {}  # id(original node) -> its stand-in
    rebuilt: dict = {}
    for k, node in enumerate(cuts):
        if node is not expr:
            stand_ins[id(node)] = stand_in_for(_with_stand_ins(node, stand_ins, rebuilt), node, k)
    return _with_stand_ins(expr, stand_ins, rebuilt)


def _with_stand_ins(node: sp.Basic, stand_ins: dict, rebuilt: dict) -> sp.Basic:
    """``node`` with every cut node below it replaced by its stand-in, rebuilt without
    evaluation (SymPy would otherwise simplify, distribute and reorder)."""
    done = rebuilt.get(id(node))
    if done is not None:
        return done
    args = [stand_ins[id(a)] if id(a) in stand_ins else _with_stand_ins(a, stand_ins, rebuilt) for a in node.args]
    out = node if all(new is old for new, old in zip(args, node.args)) else unevaluated(node, args)
    rebuilt[id(node)] = out
    return out


def _precedence_of(node: sp.Basic, shown: str) -> int:
    """The precedence SymPy's printer gives ``node``, from its printed text where SymPy
    would look inside (a product with a minus sign binds like a sum; a sum inside a sum
    keeps its parentheses)."""
    from sympy.printing.precedence import PRECEDENCE, precedence

    if node.is_Add:
        return PRECEDENCE["Add"] - 1
    if shown.startswith("-"):
        return PRECEDENCE["Add"]
    if node.is_Mul:
        return PRECEDENCE["Mul"]
    return precedence(node)


def _expand(top: str, pieces: list[str], token: str) -> str:
    """``top`` with every marker ``token<k>\\x00`` replaced by piece ``k`` (whose own
    markers are replaced in turn), without recursion."""
    out: list[str] = []
    stack = [_segments(top, token)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, int):
            stack.append(_segments(pieces[item], token))
        else:
            out.append(item)
    return "".join(out)


def _segments(shown: str, token: str) -> Iterator[str | int]:
    """The text of ``shown`` between markers, and the piece number of each marker."""
    parts = shown.split(token)
    yield parts[0]
    for part in parts[1:]:
        index, _, rest = part.partition("\x00")
        yield int(index)
        yield rest


# ============================================================================ str and repr of any SymPy form
def _printing_at_any_depth(sympy_method, fallback):
    """``sympy_method`` (a printing method of SymPy's ``Printable``), unchanged wherever it
    returns; where it raises :class:`RecursionError` on an expression (a tree too deep for
    SymPy's recursive printer), ``fallback(expr)`` instead.  A recursion that is not about
    depth recurses again in the fallback and raises."""

    @functools.wraps(sympy_method)
    def method(self):
        try:
            return sympy_method(self)
        except RecursionError:
            if not isinstance(self, sp.Basic):  # a mutable matrix: no tree to print in pieces
                raise
        return fallback(self)

    method.prints_at_any_depth = True
    return method


def print_sympy_at_any_depth(enable: bool = True) -> None:
    """Opt in (or, with ``enable=False``, back out): let Python's ``str`` and ``repr`` of
    *every* SymPy expression print however deep it is.

    ``t.expr`` is a plain SymPy expression, and so is every node in it, so Python's
    ``str``/``repr`` go straight to SymPy's ``Printable`` methods, which raise
    ``RecursionError`` on a form deeper than about a thousand levels.  symgrad's own
    printers (:func:`text`, :func:`pretty`, :func:`latex`, :class:`ClosedForm`, the notebook
    displays) print any depth without this.  Opting in wraps SymPy's two methods for the
    whole process (``import symgrad`` never does): SymPy's method runs first and its text
    is the answer whenever it returns; only where it raises ``RecursionError`` does the
    form print in pieces, ``str`` completely (:func:`deep_text`), ``repr`` abbreviated past
    :data:`REPR_LENGTH` characters as symgrad's own forms are.  Calling it twice wraps once;
    ``enable=False`` puts SymPy's methods back.

    >>> chain = sp.Symbol("x")
    >>> for _ in range(3000):
    ...     chain = sp.Add(sp.sin(chain, evaluate=False), 1, evaluate=False)
    >>> print_sympy_at_any_depth()
    >>> shown = str(chain)
    >>> shown.count("sin("), shown[:16], len(repr(chain)) <= REPR_LENGTH < len(shown)
    (3000, 'sin(sin(sin(sin(', True)
    >>> str(sp.sin(sp.Symbol("x")) + 1)  # what SymPy prints, wherever it can
    'sin(x) + 1'
    >>> print_sympy_at_any_depth(enable=False)
    """
    fallbacks = {
        "__str__": deep_text,
        "__repr__": lambda expr: text(expr, max_length=REPR_LENGTH),
    }
    for name, fallback in fallbacks.items():
        current = Printable.__dict__[name]
        wrapped = getattr(current, "prints_at_any_depth", False)
        if enable and not wrapped:
            setattr(Printable, name, _printing_at_any_depth(current, fallback))
        elif wrapped and not enable:
            setattr(Printable, name, current.__wrapped__)


print_hooks.install(shown_node=shown_node, short_text=lambda expr: text(expr, max_length=REPR_LENGTH))


# ============================================================================ per-element view
MAX_ELEMENTS = 400


def _element_symbols(symbol: sp.Symbol) -> np.ndarray:
    shape = shape_of(symbol)
    if not shape:
        return np.array(sp.Symbol(symbol.name, real=True), dtype=object)
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = sp.Symbol(f"{symbol.name}[{', '.join(map(str, index))}]", real=True)
    return out


def _indicator(a: Any, b: Any) -> sp.Expr:
    """1 where ``a == b``, else 0, as a scalar closed form."""
    return sp.Piecewise((1, sp.Eq(a, b)), (0, True))


def _extremum_mask_elements(x: np.ndarray, dim: Any, mode: str) -> np.ndarray:
    """Where ``max``/``min`` send their gradient, per element: ``1/k`` at each of the ``k``
    tied extremes (``dim=None``), or 1 at the first extreme along ``dim``."""
    from ..forms.structural import _norm_dims

    pick = sp.Max if mode == "max" else sp.Min
    indicator = np.frompyfunc(_indicator, 2, 1)
    if x.ndim == 0:
        return np.array(sp.S.One, dtype=object)
    if dim is None:
        hits = indicator(x, pick(*x.reshape(-1)))
        return np.asarray(hits / sp.Add(*hits.reshape(-1)), dtype=object)
    (axis,) = _norm_dims(dim, x.ndim)
    extreme = np.frompyfunc(lambda *v: pick(*v), x.shape[axis], 1)(*np.moveaxis(x, axis, 0))
    hits = np.moveaxis(indicator(np.moveaxis(x, axis, 0), extreme), 0, axis)
    out = np.empty(x.shape, dtype=object)
    for k in np.ndindex(*x.shape):
        earlier = [hits[k[:axis] + (j,) + k[axis + 1:]] for j in range(k[axis])]
        out[k] = hits[k] * sp.Mul(*[1 - e for e in earlier])
    return out


def _position_elements(x: np.ndarray, dim: Any, keepdim: bool, mode: str) -> np.ndarray:
    """``argmax``/``argmin`` per element: ``sum_j j [x_j is the first extreme]`` along ``dim``
    (over the flattened ``x`` for ``dim=None``)."""
    from ..forms.structural import _norm_dims

    if x.ndim == 0:
        return np.array(sp.S.Zero, dtype=object)
    along, axis = (x.reshape(-1), 0) if dim is None else (x, _norm_dims(dim, x.ndim)[0])
    first = _extremum_mask_elements(along, axis, mode)
    positions = np.arange(along.shape[axis]).reshape([-1 if d == axis else 1 for d in range(along.ndim)])
    out = np.sum(first * positions, axis=axis, keepdims=keepdim)
    return np.asarray(out.reshape((1,) * x.ndim) if dim is None and keepdim else out, dtype=object)


NO_ELEMENTWISE_FORM = {
    "svdvals": "singular values are square roots of the roots of A^T A's characteristic polynomial",
    "svd_u": "singular vectors are null vectors of A A^T - s^2 I, for roots s^2 of its characteristic polynomial",
    "svd_v": "as svd_u's, of A^T A - s^2 I",
    "sort_values": "which element lands where depends on the values (its form per element is a network of Min and Max)",
    "sort_by": "the order is the stable sort of key, which depends on key's values",
}
"""The structural ops :func:`per_element` refuses, and why."""


PER_MATRIX = ("det", "logdet", "logabsdet", "det_sign", "inverse", "solve", "cholesky")
"""The linear-algebra ops :func:`per_element` evaluates one SymPy ``Matrix`` at a time."""


def _per_matrix(name: str, args: list) -> np.ndarray:
    """The linear-algebra ops on object arrays of scalar forms, one SymPy ``Matrix`` per
    matrix of the batch: ``det`` (and ``log det``, ``log |det|``, ``sign det``), the inverse
    as ``adj(A)/det(A)``, ``cholesky`` of the symmetric part, ``LUsolve``.  Determinants are
    Berkowitz's (division-free) and SymPy's intermediate simplification is off: SymPy's own
    ``inv`` and its simplifying steps expand nested entries (a Cholesky factor's square
    roots) for minutes, and a view shows the formula, not a simplified one."""
    a = np.asarray(args[0], dtype=object)
    batch = a.shape[:-2]
    out = None
    with matrix_simplification(False):
        for index in np.ndindex(*batch):
            matrix = sp.Matrix(a[index].tolist())
            if name == "inverse":
                value = np.array((matrix.adjugate(method="berkowitz") / matrix.det(method="berkowitz")).tolist(),
                                 dtype=object)
            elif name == "cholesky":  # the op reads the symmetric part, as JAX's
                value = np.array(((matrix + matrix.T) / 2).cholesky(hermitian=False).tolist(), dtype=object)
            elif name == "solve":
                b = np.asarray(args[1], dtype=object)
                right = b if b.ndim == 1 else np.broadcast_to(b, batch + b.shape[-2:])[index]
                solved = matrix.LUsolve(sp.Matrix(right.tolist()))
                value = np.array(solved.tolist(), dtype=object).reshape(right.shape)
            else:
                det = matrix.det(method="berkowitz")
                value = {"det": det, "logdet": sp.log(det), "logabsdet": sp.log(sp.Abs(det)),
                         "det_sign": sp.sign(det)}[name]
            if out is None:
                out = np.empty(batch + np.shape(value), dtype=object)
            out[index] = value
    return out


def _structural_elements(node: StructuralFunction, args: list, index_arrays: list) -> np.ndarray:
    name = node.op_name
    attrs = node.attrs
    if isinstance(node, _Indexed):  # index arrays and masks fill the index, they are not operands
        index = fill_index(attrs["index"], index_arrays)
        return np.asarray(node.numpy_forward()(*args, **{**attrs, "index": index}), dtype=object)
    if name in PER_MATRIX:
        return _per_matrix(name, args)
    if name in ("max", "min", "amax", "amin"):
        func = np.frompyfunc(sp.Max if name in ("max", "amax") else sp.Min, 2, 1)
        dims = node.dims()
        out = args[0]
        for d in sorted(dims, reverse=True):
            out = func.reduce(out, axis=d, keepdims=bool(attrs.get("keepdim")))
        return np.asarray(out, dtype=object)
    exp = np.frompyfunc(sp.exp, 1, 1)
    log = np.frompyfunc(sp.log, 1, 1)
    if name in ("logsumexp", "softmax", "log_softmax", "norm"):
        x = args[0]
        dims = node.dims() if name in ("logsumexp", "norm") else _norm_dims_single(node)
        if name == "norm":
            sq = np.frompyfunc(sp.sqrt, 1, 1)
            return np.asarray(sq(np.sum(x * x, axis=dims, keepdims=bool(attrs.get("keepdim")))), dtype=object)
        total = np.sum(exp(x), axis=dims, keepdims=True)
        if name == "softmax":
            return exp(x) / total
        if name == "log_softmax":
            return x - log(total)
        out = log(total)
        return out if attrs.get("keepdim") else np.squeeze(out, axis=dims)
    if name == "logcumsumexp":  # log(cumsum(exp(x))) along dim
        x = args[0]
        if x.ndim == 0:
            return x
        (axis,) = _norm_dims_single(node)
        return np.asarray(log(np.cumsum(exp(x), axis=axis)), dtype=object)
    if name == "extremum_mask":
        return _extremum_mask_elements(args[0], attrs.get("dim"), attrs.get("mode", "max"))
    if name in ("argmax", "argmin"):
        return _position_elements(args[0], attrs.get("dim"), bool(attrs.get("keepdim")), name[3:])
    if name in NO_ELEMENTWISE_FORM:
        raise NotImplementedError(f"per_element: {name} has no closed form per element ({NO_ELEMENTWISE_FORM[name]}); "
                                  "print the array-level form (symgrad.symbolic.text) instead")
    return np.asarray(node.numpy_forward()(*args, **attrs), dtype=object)


def _index_value(symbol: Any, known: dict, by_name: dict) -> np.ndarray:
    """The array an index symbol stands for, from ``per_element``'s ``indices``."""
    value = known.get(symbol, by_name.get(getattr(symbol, "name", None)))
    if value is None:
        raise ValueError(
            f"the form indexes with {symbol.name} (an integer array or mask of shape {shape_of(symbol)}), whose "
            f"values it does not hold: pass per_element(form, indices={{{symbol.name!r}: array}}) "
            "(symgrad.symbolic.tensor_graph(tensor)[1] maps a tensor's index symbols to their arrays), or pass "
            "the tensor itself"
        )
    return np.asarray(getattr(value, "_data", value))


def _norm_dims_single(node) -> tuple:
    from ..forms.structural import _norm_dims

    return _norm_dims(node.attrs["dim"], len(shape_of(node.arrays[0])))


def per_element(expr: Any, indices: Mapping | None = None) -> Any:
    """One scalar closed form per element of an array-level form (small arrays only):
    a ``Matrix`` for 2-D results, a SymPy N-d array otherwise, the expression for scalars.

    Which elements an integer-array or mask index picks depends on its values, which a
    form does not hold (they are inputs, like data): a tensor's own graph gives them, and
    for a form (a gradient from :func:`~symgrad.symbolic.diff`, say) ``indices`` maps each
    index symbol (or its name) to its array -- ``tensor_graph(loss)[1]`` is such a map.

    >>> from symgrad.symbolic.forms.structural import Matmul
    >>> a, v = ArrayVar("a", (2, 2)), ArrayVar("v", (2,))
    >>> per_element(Matmul.of(a, v))
    [a[0, 0]*v[0] + a[0, 1]*v[1], a[1, 0]*v[0] + a[1, 1]*v[1]]
    >>> import symgrad
    >>> x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True, name="x")
    >>> per_element(x[[2, 0, 2]] ** 2)
    [x[2]**2, x[0]**2, x[2]**2]
    """
    known: dict = {}
    if _is_tensor(expr):
        from ..derive.graph import tensor_graph

        expr, known = tensor_graph(expr)
    expr = as_expr(expr)
    for key, value in (indices or {}).items():
        known[key] = value
    by_name = {getattr(k, "name", k): v for k, v in known.items()}
    if size_of(shape_of(expr)) > MAX_ELEMENTS:
        raise ValueError(
            f"the per-element view is for small arrays; this form has shape {shape_of(expr)} "
            f"({size_of(shape_of(expr))} elements > {MAX_ELEMENTS})"
        )
    values: dict = {}
    for node in postorder([expr]):
        if isinstance(node, sp.Symbol):
            values[node] = _element_symbols(node) if isinstance(node, ArrayVar) else np.array(node, dtype=object)
        elif isinstance(node, _Indexed):
            arrays = [_index_value(a, known, by_name) for a in node.index_arrays]
            values[node] = _structural_elements(node, [values[a] for a in node.data], arrays)
        elif isinstance(node, StructuralFunction):
            values[node] = _structural_elements(node, [values[a] for a in node.arrays], [])
        elif not node.args:
            values[node] = np.array(node, dtype=object)
        else:
            kids = operands(node)
            if isinstance(node, is_equal):
                func = np.frompyfunc(lambda a, b: sp.Piecewise((1, sp.Eq(a, b)), (0, True)), 2, 1)
            else:
                func = np.frompyfunc(lambda *vals, node=node, kids=kids: node.xreplace(dict(zip(kids, vals))),
                                     len(kids), 1)
            values[node] = np.asarray(func(*[values[k] for k in kids]), dtype=object)
    out = values[expr]
    if out.ndim == 0:
        return sp.sympify(out.item())
    if out.ndim == 2:
        return sp.Matrix(out.tolist())
    return sp.ImmutableDenseNDimArray(out.tolist(), out.shape)
