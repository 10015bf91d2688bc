"""Printing closed forms: compact matrix formulas in text, pretty and LaTeX; the
per-element view agrees with the array-level form."""
from __future__ import annotations

import numpy as np
import sympy as sp

import symgrad
import symgrad.nn.functional as F
from symgrad.symbolic import (ArrayVar, ClosedForm, compile_exprs, diff, latex, per_element, pretty, tensor_graph,
                              text)
from symgrad.symbolic.structural import Matmul, Sum, Transpose


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
    assert text(diff(loss, b), simplify=True) == "sum_to((-y + sigmoid(b + x @ w))/3, shape=(1,))"


def test_pretty_uses_operators_and_superscript_transpose():
    X, Y = ArrayVar("X", (3, 2)), ArrayVar("Y", (3, 1))
    shown = pretty(Matmul.of(Transpose.of(X, dim0=0, dim1=1), -Y + 1))
    assert shown.splitlines()[0].strip() == "T" and "X  @ (1 - Y)" in shown


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
