"""LaTeX and pretty printing of closed forms too deep for SymPy's (recursive) printers,
and SymPy's own ``str``/``repr``, which symgrad wraps to print such forms in pieces.

Cut into pieces of 5 levels (not 24), forms 40 levels deep are printed in pieces while
SymPy's own printers can still print them whole, so SymPy is the reference: the spliced
LaTeX is SymPy's LaTeX for every kind of level where SymPy does not compute from the
subtree below an operand, and means the same for every kind (read back by a small
evaluator of the LaTeX these forms print as, independent of the printers).  Pretty
printing names the pieces; the definitions, substituted back, rebuild the form.
"""
from __future__ import annotations

import cmath
import re

import numpy as np
import pytest
import sympy as sp

import symgrad.symbolic.printing.printers as printing
from symgrad.symbolic import ArrayVar, latex, pretty
from symgrad.symbolic.printing.display import to_display
from symgrad.symbolic.forms.selections import Greater, Maximum, Select
from symgrad.symbolic.forms.stable import sigmoid
from symgrad.symbolic.forms.structural import Matmul, Sum, Transpose
from symgrad.symbolic.core.symbols import operands, postorder

DEPTH = 40
PIECE_DEPTH = 5


@pytest.fixture
def small_pieces(monkeypatch):
    monkeypatch.setattr(printing, "PRINT_DEPTH", PIECE_DEPTH)


def _u(func, *args):
    return func(*args, evaluate=False)  # as the engine builds deep chains


# ---------------------------------------------------------------------------- levels
# (id, child -> node).  Array levels act on a (3, 3) array x; scalar levels on a real x.
A = ArrayVar("A", (3, 3))
XA = ArrayVar("x", (3, 3))
X, Y = sp.symbols("x y", real=True)

SCALAR_LEVELS = {
    "plus-number": lambda c: _u(sp.Add, c, sp.Float(0.25)),
    "plus-y": lambda c: _u(sp.Add, c, Y),
    "x-minus": lambda c: _u(sp.Add, X, _u(sp.Mul, -1, c)),
    "times-number": lambda c: _u(sp.Mul, sp.Float(0.5), c),
    "times-3": lambda c: _u(sp.Mul, 3, c),
    "times-x": lambda c: _u(sp.Mul, c, X),
    "square": lambda c: _u(sp.Pow, c, 2),
    "sqrt": lambda c: _u(sp.Pow, _u(sp.Add, _u(sp.Pow, c, 2), sp.Float(0.5)), sp.Rational(1, 2)),  # of a real
    "one-over": lambda c: _u(sp.Pow, _u(sp.Add, 1, _u(sp.Pow, c, 2)), -1),
    "sin": lambda c: sp.sin(c, evaluate=False),
    "exp": lambda c: sp.exp(c, evaluate=False),
    "exp-of-minus-square": lambda c: sp.exp(_u(sp.Mul, -1, _u(sp.Pow, c, 2)), evaluate=False),
    "sin-squared": lambda c: _u(sp.Pow, sp.sin(c, evaluate=False), 2),
    # SymPy computes from the subtree below for these: it collects the terms of a sum it
    # negates, and prints a product that is a numerator, a denominator or the rest after
    # its minus sign factor by factor
    "minus-x": lambda c: _u(sp.Add, c, _u(sp.Mul, -1, X)),
    "minus": lambda c: _u(sp.Mul, -1, c),
    "x-over": lambda c: _u(sp.Mul, X, _u(sp.Pow, c, -1)),
    "over-y-plus-2": lambda c: _u(sp.Mul, c, _u(sp.Pow, _u(sp.Add, Y, 2), -1)),
}
ARRAY_LEVELS = {
    "array-plus-number": lambda c: _u(sp.Add, c, sp.Float(0.25)),
    "array-times-x": lambda c: _u(sp.Mul, c, XA),
    "array-sin-squared": lambda c: _u(sp.Pow, sp.sin(c, evaluate=False), 2),
    "where": lambda c: Select(Greater(XA, 0), c, XA),
    "maximum": lambda c: Maximum(c, XA),
    "sigmoid": lambda c: sigmoid(c),
    "sum": lambda c: Sum.of(c),
    "matmul": lambda c: Matmul.of(A, _u(sp.Add, c, XA)),
    "transpose": lambda c: Transpose.of(_u(sp.Add, c, XA), dim0=0, dim1=1),
}
LEVELS = {**SCALAR_LEVELS, **ARRAY_LEVELS}
LOOKS_BELOW = {"minus-x", "minus", "x-over", "over-y-plus-2"}
EXACT = [name for name in LEVELS if name not in LOOKS_BELOW]


def _deep_form(kinds: list[str], rng, depth: int = DEPTH) -> sp.Expr:
    expr = sp.sin(XA if kinds[0] in ARRAY_LEVELS else X)
    for k in rng.integers(0, len(kinds), size=depth):
        expr = LEVELS[kinds[k]](expr)
    return expr


# ---------------------------------------------------------------------------- LaTeX
# (mixed with sums of y, "x - ..." sometimes meets SymPy breaking a tie of minus signs by
# comparing a sum with its negation whole, which a stand-in cannot answer exactly)
@pytest.mark.parametrize("kinds", [[name] for name in EXACT] + [
    [n for n in EXACT if n in SCALAR_LEVELS and n != "x-minus"], [n for n in EXACT if n in ARRAY_LEVELS]],
    ids=EXACT + ["scalar-mix", "array-mix"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deep_latex_is_sympys_latex(kinds, seed, small_pieces):
    # Known mixes, not the session's: the reference, SymPy's own latex(), orders a sum's
    # terms by evaluating them, which is exponential in the depth for some mixes of exp,
    # powers and products (a mix drawn on 2026-12-07 ran for over 15 minutes). The printing
    # fuzz (test_sym_printing.py) explores new programs every day.
    expr = _deep_form(kinds, np.random.default_rng(seed))
    assert latex(expr) == sp.latex(to_display(expr))


def _product_run(n: int, last: float) -> sp.Expr:
    """``last * 0.5 * 0.5 * ... * sin(x)``, ``n`` products deep."""
    expr = sp.sin(X)
    for k in range(n):
        expr = _u(sp.Mul, sp.Float(last if k == n - 1 else 0.5), expr)
    return expr


@pytest.mark.parametrize("outer", ["in-a-sum", "in-a-negated-sum"])
def test_a_negative_product_cut_below_a_sum_gives_the_sum_its_sign(outer, small_pieces):
    """SymPy asks a sum's terms whether a minus sign can be taken out and prints
    ``y - 0.75 ...``; a stand-in answers for its product (and negates it)."""
    wrap = {"in-a-sum": lambda p: _u(sp.Add, p, Y),
            "in-a-negated-sum": lambda p: _u(sp.Add, Y, _u(sp.Mul, -1, _u(sp.Add, p, X)))}[outer]
    cut_there = 0
    for n in range(2 * PIECE_DEPTH - 4, 2 * PIECE_DEPTH + 4):
        form = wrap(_product_run(n, -0.75))
        assert latex(form) == sp.latex(to_display(form))
        values = {"x": 0.3, "y": 0.7}  # (SymPy's text multiplies numbers of the run that the stand-in hides)
        assert cmath.isclose(eval(printing.text(form), {"__builtins__": {}, "sin": cmath.sin, **values}),
                             _value(form, values), rel_tol=1e-12)
        cut_there += any(piece.is_Mul and piece.could_extract_minus_sign() for _, piece in printing.deep_pieces(form)[1])
    assert cut_there  # some n cuts the form at the negative product


def _maxima(n: int) -> sp.Expr:
    expr = sp.sin(X)
    for _ in range(n):
        expr = Maximum(expr, X)
    return expr


@pytest.mark.parametrize("outer", [lambda m: _u(sp.Add, m, sp.exp(Y)), lambda m: _u(sp.Mul, sp.cos(Y), m)],
                         ids=["term-of-a-sum", "factor-of-a-product"])
def test_a_cut_operand_is_ordered_as_its_subtree(outer, small_pieces):
    """SymPy orders terms and factors by comparing whole subtrees (sort keys); a stand-in
    compares by its subtree's key, cut a few levels down (not by its own name)."""
    for n in range(PIECE_DEPTH - 2, 2 * PIECE_DEPTH + 2):
        form = outer(_maxima(n))
        assert latex(form) == sp.latex(to_display(form)) and printing.text(form) == sp.sstr(to_display(form))


def test_a_sum_of_two_deep_chains_equal_but_for_their_leaves_prints_whole():
    """Ordering the sum compares the chains' sort keys: a stand-in's key is cut
    ``KEY_DEPTH`` levels down, so no comparison recurses through 2,000 levels."""
    def chain(leaf):
        expr = leaf
        for _ in range(1_000):
            expr = _u(sp.Add, sp.sin(expr, evaluate=False), sp.Float(0.25))
        return expr

    form = _u(sp.Add, chain(X), chain(Y))
    for shown in (printing.text(form), latex(form), pretty(form, wrap_line=False)):
        assert shown.count("sin") == 2_000 and shown.count("0.25") == 2_000


TOKEN = re.compile(r"\\left\(|\\right\)|[()]|\\frac|\\sqrt|\\sin|\\cdot|[0-9]+(?:\.[0-9]+)?|[a-z]|[{}^+\-]|\s+|.")


class _ReadLatex:
    """The value of the LaTeX that SymPy prints for the scalar forms above: sums, products
    (side by side or ``\\cdot``), powers ``^{}``, ``\\frac``, ``\\sqrt``, ``\\sin``,
    ``e^{}``, parentheses (``\\left(`` or plain), numbers and the symbols ``x``, ``y``."""

    def __init__(self, tex: str, values: dict) -> None:
        self.tokens = [t for t in TOKEN.findall(tex) if not t.isspace()]
        self.at, self.values = 0, values

    def value(self) -> complex:
        out = self.sum()
        if self.at != len(self.tokens):
            raise ValueError(f"unread LaTeX from token {self.at}: {self.tokens[self.at:self.at + 5]}")
        return out

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ValueError(f"expected {expected or 'more'} at token {self.at}, got {token!r}")
        self.at += 1
        return token

    def sum(self) -> complex:
        out = self.product()
        while self.peek() in ("+", "-"):
            out = out + self.product() if self.take() == "+" else out - self.product()
        return out

    def product(self) -> complex:
        out = self.power()
        while self.peek() not in (None, "+", "-", "}", r"\right)", ")"):
            if self.peek() == r"\cdot":
                self.take()
            out = out * self.power()
        return out

    def power(self) -> complex:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            return base ** self.group()
        return base

    def group(self) -> complex:
        self.take("{")
        out = self.sum()
        self.take("}")
        return out

    def atom(self) -> complex:
        token = self.take()
        if token == "-":
            return -self.power()
        if token in (r"\left(", "("):  # SymPy prints "- (a + b)" for a product -1*(a + b)
            out = self.sum()
            self.take(r"\right)" if token == r"\left(" else ")")
            return out
        if token == "{":
            self.at -= 1
            return self.group()
        if token == r"\frac":
            return self.group() / self.group()
        if token == r"\sqrt":
            return cmath.sqrt(self.group())
        if token == r"\sin":
            exponent = 1
            if self.peek() == "^":  # \sin^{2}{\left(x \right)}
                self.take()
                exponent = self.group()
            return cmath.sin(self.group()) ** exponent
        if token == "e":
            return cmath.e
        if token in self.values:
            return self.values[token]
        return complex(float(token))


def _value(expr: sp.Expr, values: dict) -> complex:
    """The form's value, from the tree (never from printed text)."""
    out: dict = {}
    for node in postorder([expr]):
        args = [out[a] for a in node.args]
        if node.is_Symbol:
            out[node] = values[node.name]
        elif node.is_Number:
            out[node] = complex(node)
        elif node.is_Add:
            out[node] = sum(args)
        elif node.is_Mul:
            out[node] = np.prod(args)
        elif node.is_Pow:
            out[node] = cmath.sqrt(args[0]) if node.exp == sp.Rational(1, 2) else args[0] ** args[1]
        else:
            out[node] = {"sin": cmath.sin, "exp": cmath.exp}[type(node).__name__](*args)
    return out[expr]


BOUNDED = [name for name in SCALAR_LEVELS if name != "exp"]  # exp of exp of ... overflows


@pytest.mark.parametrize("kinds", [[name] for name in BOUNDED] + [BOUNDED], ids=BOUNDED + ["scalar-mix"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_deep_latex_means_what_the_form_means(kinds, seed, small_pieces):
    rng = np.random.default_rng(seed)  # fixed, as in test_deep_latex_is_sympys_latex (forms known to finish)
    expr = _deep_form(kinds, rng)
    values = {"x": complex(rng.uniform(0.2, 0.8)), "y": complex(rng.uniform(0.2, 0.8))}
    expected = _value(expr, values)
    assert cmath.isfinite(expected)
    assert cmath.isclose(_ReadLatex(latex(expr), values).value(), expected, rel_tol=1e-9)
    assert cmath.isclose(_ReadLatex(sp.latex(expr), values).value(), expected, rel_tol=1e-9)  # the reader


def test_latex_marks_no_piece_boundary_in_the_text(small_pieces, rng):
    """No marker is left over and numbers side by side stay apart (``3 \\cdot 0.5``)."""
    expr = _deep_form(["times-3", "times-number", "plus-number"], rng)
    shown = latex(expr)
    assert "\x00" not in shown and shown == sp.latex(expr) and r"3 \cdot 0.5" in shown


# ---------------------------------------------------------------------------- pretty
def _rebuilt(top: sp.Basic, definitions: list) -> sp.Basic:
    """``top`` with every name replaced by its definition, deepest first, unevaluated."""
    resolved: dict = {}
    with sp.evaluate(False):
        for name, piece in reversed(definitions):
            resolved[name] = piece.xreplace(resolved)
        return top.xreplace(resolved)


@pytest.mark.parametrize("kinds", [[name] for name in LEVELS] + [list(SCALAR_LEVELS), list(ARRAY_LEVELS)],
                         ids=list(LEVELS) + ["scalar-mix", "array-mix"])
def test_deep_pieces_rebuild_the_form_and_are_shallow(kinds, small_pieces, rng):
    expr = _deep_form(kinds, rng)
    top, definitions = printing.deep_pieces(expr)
    assert definitions and _rebuilt(top, definitions) == expr
    names = [name for name, _ in definitions]
    assert [name.name for name in names] == [f"p_{k}" for k in range(1, len(names) + 1)]
    for form in [top] + [piece for _, piece in definitions]:
        assert _height(form) <= 2 * PIECE_DEPTH + 1
    named_in = [set(n for n in postorder([form]) if n in names) for form in [top] + [p for _, p in definitions]]
    assert all(names[k] in set().union(*named_in[:k + 1]) for k in range(len(names)))  # named above its line


def _height(expr: sp.Basic) -> int:
    height: dict = {}
    for node in postorder([expr]):
        height[node] = 1 + max((height[a] for a in operands(node)), default=0)
    return height[expr]


def test_deep_pieces_of_a_chain_are_the_chain_cut_every_print_depth():
    """A chain of 50 sines: cut every 24 levels (``x`` is the first), top-down."""
    nested = lambda inner, n: inner if n == 0 else sp.sin(nested(inner, n - 1))  # noqa: E731
    top, definitions = printing.deep_pieces(nested(X, 50))
    (p1, piece1), (p2, piece2) = definitions
    assert (str(p1), str(p2)) == ("p_1", "p_2")
    assert top == nested(p1, 4) and piece1 == nested(p2, 23) and piece2 == nested(X, 23)


def _expected_pretty(top: sp.Basic, definitions: list, use_unicode: bool) -> str:
    """The layout built from SymPy's own pretty forms: the top piece, then ``p = piece``
    for each definition, with ``where`` (or its width in spaces) on the row of its ``=``."""
    blocks = [sp.pretty(top, use_unicode=use_unicode, wrap_line=False)]
    for k, (name, piece) in enumerate(definitions):
        rows = sp.pretty(sp.Eq(name, piece, evaluate=False), use_unicode=use_unicode, wrap_line=False).splitlines()
        (equals,) = [i for i, row in enumerate(rows) if " = " in row]
        label = "where  " if k == 0 else " " * 7
        blocks.append("\n".join((label if i == equals else " " * 7) + row for i, row in enumerate(rows)))
    return "\n".join(blocks)


@pytest.mark.parametrize("use_unicode", [True, False], ids=["unicode", "ascii"])
@pytest.mark.parametrize("kinds", [["plus-number"], ["one-over"], ["x-over"], ["matmul"], ["transpose"],
                                   list(SCALAR_LEVELS)], ids=["line", "fractions", "x-over", "matmul", "transpose",
                                                             "scalar-mix"])
def test_pretty_of_a_deep_form_is_its_pieces_pretty_printed_and_named(kinds, use_unicode, small_pieces, rng):
    expr = _deep_form(kinds, rng)
    top, definitions = printing.deep_pieces(expr)
    shown = pretty(expr, use_unicode=use_unicode, wrap_line=False)
    assert shown == _expected_pretty(top, definitions, use_unicode)
    assert ("p₁" if use_unicode else "p_1") in shown.partition("where")[0]


@pytest.mark.parametrize("form", [X ** 2 / 2, sp.sin(X) + Y, Matmul.of(Transpose.of(A, dim0=0, dim1=1), XA - 1)],
                         ids=["quotient", "sum", "matmul"])
def test_pretty_and_latex_of_a_shallow_form_are_sympys(form):
    assert pretty(form) == sp.pretty(to_display(form)) and latex(form) == sp.latex(to_display(form))
    assert printing.deep_pieces(form) == (form, [])


@pytest.mark.parametrize("form", [X ** 2 / 2, sp.sin(X) + Y, -X - Y, Matmul.of(Transpose.of(A, dim0=0, dim1=1), XA - 1),
                                  sp.Matrix([[X, Y]])], ids=["quotient", "sum", "negated-sum", "matmul", "matrix"])
def test_str_repr_and_notebook_latex_of_a_shallow_form_are_sympys(form):
    """symgrad's wrapping of SymPy's ``Printable`` changes nothing SymPy can print."""
    from sympy.printing.str import sstr

    assert str(form) == repr(form) == sstr(form, order=None)
    assert form._repr_latex_() == f"$\\displaystyle {sp.latex(form, mode='plain')}$"


class _PrintsItself(sp.Expr):
    """An expression whose text is its own text: its printing never ends, at any depth."""

    def _sympystr(self, printer) -> str:
        return printer._print(self)


@pytest.mark.parametrize("printer", [str, repr], ids=["str", "repr"])
def test_a_recursion_that_is_not_about_depth_still_raises(printer):
    with pytest.raises(RecursionError):
        printer(_PrintsItself())


def test_sympys_str_and_repr_are_wrapped_once_and_nothing_else():
    """Notebooks display through IPython formatters (symgrad.symbolic.printing.notebook), so SymPy's
    ``_repr_latex_`` -- which ``sympy.init_printing`` overwrites -- is left as it is."""
    from sympy.printing.defaults import Printable

    wrapped = Printable.__str__, Printable.__repr__
    printing._print_every_sympy_form_at_any_depth()  # as a second import would
    assert (Printable.__str__, Printable.__repr__) == wrapped
    assert all(method.prints_at_any_depth for method in wrapped)
    assert not hasattr(Printable._repr_latex_, "prints_at_any_depth")


@pytest.mark.parametrize("taken, letter", [(["p_1"], "q"), (["p1", "q_2"], "r"), (["p₃"], "q"), (["p", "p_x"], "p")])
def test_piece_names_differ_from_the_forms_symbols(taken, letter, small_pieces, rng):
    expr = _deep_form(["plus-number"], rng)
    for name in taken:
        expr = _u(sp.Add, expr, sp.Symbol(name))
    _, definitions = printing.deep_pieces(expr)
    assert definitions and all(re.fullmatch(f"{letter}_[0-9]+", name.name) for name, _ in definitions)
