"""Printing closed forms: compact matrix formulas in text, pretty and LaTeX; the
per-element view agrees with the array-level form."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import sympy as sp

import symgrad
import symgrad.nn.functional as F
from symgrad.symbolic import (ArrayVar, ClosedForm, compile_exprs, diff, latex, per_element, pretty, tensor_graph,
                              text)
from symgrad.symbolic.printing.display import defined_data, to_display
from symgrad.symbolic.forms.selections import Maximum
from symgrad.symbolic.printing.notebook import sympy_bundle
from symgrad.symbolic.forms.structural import Matmul, Sum, Transpose, structural_class
from symgrad.symbolic.core.symbols import postorder
from symgrad.symbolic.printing.printers import PRINT_DEPTH
from symgrad.testing import random_program


def _tutorial():
    x = symgrad.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], name="x")
    y = symgrad.tensor([[1.0], [0.0], [1.0]], name="y")
    w = symgrad.tensor([[0.1], [0.2]], requires_grad=True, name="w")
    b = symgrad.tensor([0.3], requires_grad=True, name="b")
    loss = F.binary_cross_entropy_with_logits(x @ w + b, y)
    return loss, w, b


def test_tutorial_gradient_prints_as_a_matrix_formula():
    loss, w, b = _tutorial()
    assert str(tensor_graph(loss)[0]) == "mean(-y*(b + x @ w) + softplus(b + x @ w))"
    grad_w = diff(loss, w)
    assert text(grad_w) == "x.T @ (-y/3 + sigmoid(b + x @ w)/3)"
    assert text(grad_w, simplify=True) == "x.T @ ((-y + sigmoid(b + x @ w))/3)"
    assert latex(grad_w, simplify=True) == (
        r"{x}^{T} \cdot \left(\frac{- y + \sigma\left(b + x \cdot w\right)}{3}\right)")
    assert pretty(grad_w, simplify=True).count("\n") >= 2 and "σ" not in pretty(grad_w)
    form = ClosedForm(grad_w, name="grad_w")
    assert form._repr_latex_().startswith(r"$\displaystyle \mathrm{grad\_w} = {x}^{T}")
    # and it is the right formula
    expr, symbols = tensor_graph(loss)
    inputs = list(symbols)
    values = [symbols[s].detach().numpy() for s in inputs]
    X, Y, W, B = (symbols_by_name := {s.name: v for s, v in zip(inputs, values)})["x"], symbols_by_name["y"], \
        symbols_by_name["w"], symbols_by_name["b"]
    got = compile_exprs(inputs, [grad_w], cache=False)(*values)[0]
    np.testing.assert_allclose(got, X.T @ (1 / (1 + np.exp(-(X @ W + B))) - Y) / 3)


def test_gradient_of_bias_sums_the_broadcast():
    loss, w, b = _tutorial()
    assert text(diff(loss, b), simplify=True) == "sum((-y + sigmoid(b + x @ w))/3)"


def test_pretty_uses_operators_and_superscript_transpose():
    X, Y = ArrayVar("X", (3, 2)), ArrayVar("Y", (3, 1))
    shown = pretty(Matmul.of(Transpose.of(X, dim0=0, dim1=1), -Y + 1))
    assert shown.splitlines()[0].strip() == "T" and "X  @ (1 - Y)" in shown


XV, YV = ArrayVar("x", (3,)), ArrayVar("y", (3,))
LOOKALIKES = {  # symgrad's node -> a plain SymPy expression that prints alike
    "structural-call": (Sum.of(XV), sp.Function("sum")(sp.Symbol("x"))),
    "elementwise-call": (Maximum(XV, YV), sp.Function("maximum")(sp.Symbol("x"), sp.Symbol("y"))),
    "index": (structural_class("getitem").of(XV, index=(0,)), sp.Symbol("x[0]")),
}
CONTEXTS = {
    "square": lambda node: node ** 2,
    "power-of-a-sum": lambda node: node ** (sp.Symbol("t") + 1),
    "reciprocal": lambda node: 1 / node,
    "negated-square": lambda node: -node ** 2,
    "times-3-square": lambda node: 3 * node ** 2,
}


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("kind", LOOKALIKES)
def test_pretty_powers_of_symgrads_nodes_print_as_sympys_do(kind, context):
    """A call is raised to a power as SymPy raises ``sin``: ``sum²(x)`` (a power of one once
    raised AttributeError), an index as a symbol: ``x[0]²``."""
    node, lookalike = LOOKALIKES[kind]
    shape = CONTEXTS[context]
    assert pretty(shape(node)) == sp.pretty(shape(lookalike))


def _depth(expr: sp.Basic) -> int:
    """Levels of ``expr``'s tree."""
    levels: dict = {}
    for node in postorder([expr]):
        levels[id(node)] = 1 + max((levels.get(id(a), 1) for a in node.args), default=0)
    return levels[id(expr)]


def _same_text(sympys: str, ours: str, form: sp.Basic) -> None:
    """``text`` is SymPy's ``str`` for a form SymPy prints in one piece; deeper, printed in
    pieces, the terms of a sum may come in another order (``deep_text``'s docstring), and a
    negated product may lose parentheses that do not change its value (``-A @ B`` for
    ``-(A @ B)``), never other terms: the same tokens but parentheses (seed 20261207 found
    such gradients, 26 levels deep)."""
    if _depth(form) <= PRINT_DEPTH:
        assert ours == sympys
    else:
        tokens = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|\d+\.?\d*(?:e[-+]?\d+)?|\*\*|[-+*/@\[\],.:]")
        assert sorted(tokens.findall(ours)) == sorted(tokens.findall(sympys)), (ours, sympys)


def test_every_printer_prints_random_programs_and_their_gradients(rng):
    """The closed forms of random programs over every op (drawn from the session seed),
    and their gradients, print in every printer: symgrad's, SymPy's own and the notebook's."""
    printers = {"repr": repr, "pretty": pretty, "latex": latex, "sympy.pretty": sp.pretty, "sympy.latex": sp.latex,
                "notebook": lambda form: sympy_bundle(form)["text/latex"]}
    for _ in range(300):
        program = random_program(rng, max_steps=6)
        tensors = program.tensors()
        y = program(*tensors)
        y = y if y.shape == () else y.sum()
        for form in [y.expr, *diff(y, list(tensors), allow_unused=True)]:
            shown, _ = defined_data(form)  # data computed from named tensors: in place, or listed below
            _same_text(str(to_display(shown)), text(form).split("\nwhere ")[0], to_display(shown))
            for name, printer in printers.items():
                try:
                    assert printer(form)
                except Exception as error:  # noqa: BLE001 (reported with the program)
                    pytest.fail(f"{name} of {text(form)} raised {error!r}; the program:\n{program}")


def test_per_element_view_matches_the_array_form(rng):
    A, v = ArrayVar("A", (2, 3)), ArrayVar("v", (3,))
    expr = Sum.of(sp.tanh(Matmul.of(A, v)) ** 2)
    grad = diff(expr, A)
    elements = per_element(grad)
    assert isinstance(elements, sp.Matrix) and elements.shape == (2, 3)
    values = {A: rng.normal(size=(2, 3)), v: rng.normal(size=3)}
    scalars = {sp.Symbol(f"A[{i}, {j}]", real=True): values[A][i, j] for i in range(2) for j in range(3)}
    scalars.update({sp.Symbol(f"v[{j}]", real=True): values[v][j] for j in range(3)})
    per = np.array(elements.subs(scalars).evalf(), dtype=float)
    whole = compile_exprs([A, v], [grad], cache=False)(values[A], values[v])[0]
    np.testing.assert_allclose(per, whole, rtol=1e-12)


# ---------------------------------------------------------------------------- deep forms
# One level of a deep form: (id, exact, child -> node), built unevaluated as the engine builds
# deep chains.  "exact" levels have one non-constant operand and no long runs of products,
# powers and exp (where a piece must end inside such a run, the text may differ from SymPy's),
# so SymPy's printer, which can still print these forms whole, is an exact reference for them.
X = sp.Symbol("x")
LEVELS = [
    ("plus-number", True, lambda c: sp.Add(c, sp.Float(0.25), evaluate=False)),
    ("one-over", True, lambda c: sp.Pow(sp.Add(1, sp.Pow(c, 2, evaluate=False), evaluate=False), -1, evaluate=False)),
    ("sine", True, lambda c: sp.sin(c, evaluate=False)),
    ("exp-of-minus-square", False, lambda c: sp.exp(sp.Mul(-1, sp.Pow(c, 2, evaluate=False), evaluate=False),
                                                   evaluate=False)),
    ("number-times", False, lambda c: sp.Mul(sp.Float(0.5), c, evaluate=False)),
    ("minus", False, lambda c: sp.Mul(-1, c, evaluate=False)),
    ("minus-number-times", False, lambda c: sp.Mul(sp.Float(-0.75), c, evaluate=False)),
    ("x-minus", False, lambda c: sp.Add(X, sp.Mul(-1, c, evaluate=False), evaluate=False)),
    ("minus-x-plus", False, lambda c: sp.Add(sp.Mul(-1, X, evaluate=False), c, evaluate=False)),
    ("times-x", False, lambda c: sp.Mul(c, X, evaluate=False)),
    ("over-x-plus-2", False, lambda c: sp.Mul(c, sp.Pow(sp.Add(X, 2, evaluate=False), -1, evaluate=False),
                                              evaluate=False)),
]
FUNCTIONS = {"sin": math.sin, "exp": math.exp}


def _deep_form(kinds: list, depth: int, rng) -> sp.Expr:
    expr = sp.sin(X)
    for k in rng.integers(0, len(kinds), size=depth):
        expr = kinds[k][2](expr)
    return expr


def _value(expr: sp.Expr, x: float) -> float:
    """The form's value at ``x``, evaluated from the tree (never from printed text)."""
    values: dict = {}
    for node in postorder([expr]):
        args = [values[a] for a in node.args]
        if node is X:
            values[node] = x
        elif node.is_Number:
            values[node] = float(node)
        elif node.is_Add:
            values[node] = math.fsum(args)
        elif node.is_Mul:
            values[node] = math.prod(args)
        elif node.is_Pow:
            values[node] = args[0] ** args[1]
        else:
            values[node] = FUNCTIONS[type(node).__name__](*args)
    return values[expr]


@pytest.mark.parametrize("kinds", [[level] for level in LEVELS] + [[lv for lv in LEVELS if lv[1]], LEVELS],
                         ids=[level[0] for level in LEVELS] + ["exact-mixed", "all-mixed"])
def test_deep_text_is_what_sympy_prints_and_means_the_same(kinds, rng, monkeypatch):
    """Cut into pieces of 5 levels (not 24), a form 60 levels deep is printed in a dozen
    pieces, while SymPy's own printer can still print it whole."""
    import symgrad.symbolic.printing.printers as printing

    monkeypatch.setattr(printing, "PRINT_DEPTH", 5)
    expr = _deep_form(kinds, 60, rng)
    shown = text(expr)
    if all(exact for _, exact, _ in kinds):
        assert shown == sp.sstr(to_display(expr))
    x = float(rng.uniform(0.2, 0.8))
    assert math.isclose(eval(shown, {"__builtins__": {}, "x": x, **FUNCTIONS}), _value(expr, x), rel_tol=1e-9)


def test_deep_text_of_a_very_deep_form_is_complete(rng):
    """3,000 levels of the kinds SymPy prints literally: every level is in the text."""
    kinds = [level for level in LEVELS if level[0] in ("plus-number", "one-over", "sine")]
    picks = rng.integers(0, len(kinds), size=3_000)
    expr = sp.sin(X)
    for k in picks:
        expr = kinds[k][2](expr)
    shown = text(expr)
    made = {name: int(np.sum(picks == k)) for k, (name, _, _) in enumerate(kinds)}
    assert shown.count(" + 0.25") + shown.count("0.25 + ") == made["plus-number"]
    assert shown.count("1/(") == shown.count("**2 + 1)") == made["one-over"]
    assert shown.count("sin(") == made["sine"] + 1 and len(re.findall(r"\bx\b", shown)) == 1
    assert shown.count("(") == shown.count(")")


def test_str_is_complete_and_repr_abbreviated_past_the_repr_length():
    from symgrad.symbolic.printing.printers import REPR_LENGTH

    x = ArrayVar("x", (3,))
    for terms, long in [(3, False), (400, True)]:
        expr = Sum.of(sum(sp.sin(k * x) for k in range(1, terms + 1)))
        assert str(expr).count("sin(") == terms
        assert (repr(expr) == str(expr)) is not long
        assert len(repr(expr)) <= REPR_LENGTH
        assert long is (f"[{len(str(expr)):,} characters in all]" in repr(expr))


@pytest.mark.parametrize("max_length", [40, 61, 200, 1_000])
def test_text_with_max_length_keeps_both_ends_within_the_length(max_length):
    expr = sum(sp.sin(k * X) for k in range(1, 300))
    full, short = text(expr), text(expr, max_length=max_length)
    assert len(short) <= max_length < len(full)
    head, _, tail = short.partition("...[")
    assert full.startswith(head) and full.endswith(tail.partition("]...")[2])


def test_names_that_look_like_the_printers_markers_print_as_they_are():
    """Pieces of a deep form are joined through markers with a random token; names with
    NUL bytes and digits cannot clash with them."""
    name = "\x00a1:2\x00"
    y = sp.Symbol(name)
    expr = y
    for _ in range(200):
        expr = sp.Mul(2, sp.Add(expr, y, evaluate=False), evaluate=False)
    assert text(expr).count(name) == 201
