"""Symbolic reverse mode: closed forms, their agreement with SymPy's own ``diff``, and
the complexity promises (linear derivation; derivation + compile independent of array
sizes).  Timing tests use generous bounds: they catch quadratic behaviour, not noise."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import sympy as sp

from symgrad.symbolic import (ArrayVar, adjoints, compile_exprs, diff, gradient, hessian_expr, jacobian_expr,
                              jvp_expr, vjp_expr)
from symgrad.symbolic.derive import reverse
from symgrad.symbolic.codegen.compile import operation_count
from symgrad.symbolic.forms.selections import Equal
from symgrad.symbolic.forms.structural import Getitem, Matmul, Sum

x, y, z = sp.symbols("x y z", real=True)

SCALAR_CASES = [
    x * sp.sin(y) + sp.exp(x * y),
    sp.log(x ** 2 + 1) / (y ** 2 + 2),
    sp.tanh(x - y) * sp.sqrt(z ** 2 + 1),
    (x + y) ** 3 * (x - z) ** -2,
    sp.Abs(x) * y + sp.atan(z),
    x ** y,
    sp.Piecewise((x ** 2, x > y), (x * y, True)),
    sp.exp(sp.exp(sp.exp(x))) * sp.exp(x),
]


@pytest.mark.parametrize("expr", SCALAR_CASES, ids=[str(e)[:30] for e in SCALAR_CASES])
def test_gradient_equals_sympy_diff(expr, rng):
    symbols = [x, y, z]
    ours = gradient(expr, symbols)
    theirs = [sp.diff(expr, s) for s in symbols]
    f_ours = sp.lambdify(symbols, ours, "numpy")
    f_theirs = sp.lambdify(symbols, theirs, "numpy")
    for _ in range(3):
        point = rng.uniform(0.5, 1.5, size=3)
        np.testing.assert_allclose(f_ours(*point), f_theirs(*point), rtol=1e-10)


@pytest.mark.parametrize("expr", SCALAR_CASES[:4], ids=[str(e)[:30] for e in SCALAR_CASES[:4]])
def test_hessian_and_higher_orders_equal_sympy(expr, rng):
    symbols = [x, y, z]
    ours = sp.lambdify(symbols, hessian_expr(expr, symbols), "numpy")
    theirs = sp.lambdify(symbols, sp.hessian(expr, symbols), "numpy")
    third_ours = sp.lambdify(symbols, diff(expr, x, n=3), "numpy")
    third_theirs = sp.lambdify(symbols, sp.diff(expr, x, 3), "numpy")
    point = rng.uniform(0.5, 1.5, size=3)
    np.testing.assert_allclose(ours(*point), theirs(*point), rtol=1e-9)
    np.testing.assert_allclose(third_ours(*point), third_theirs(*point), rtol=1e-9)


def test_jacobian_vjp_jvp_agree(rng):
    outputs = [x * y, sp.sin(x + z), y ** 2 * z]
    J = jacobian_expr(outputs, [x, y, z])
    assert J == sp.Matrix(outputs).jacobian([x, y, z])
    X, V, G = ArrayVar("X", (4,)), ArrayVar("V", (4,)), ArrayVar("G", (4,))
    f = sp.sin(X) * X
    compiled = compile_exprs([X, V, G], [jvp_expr(f, X, V), vjp_expr(f, X, G)], cache=False)
    xs, vs, gs = rng.normal(size=(3, 4))
    slope = np.cos(xs) * xs + np.sin(xs)
    jvp_value, vjp_value = compiled(xs, vs, gs)
    np.testing.assert_allclose(jvp_value, slope * vs)
    np.testing.assert_allclose(vjp_value, slope * gs)


def test_diff_of_array_expression_has_the_input_shape():
    w = ArrayVar("w", (3, 2))
    a = ArrayVar("a", (2,))
    expr = Sum.of(Matmul.of(w, a) ** 2)
    g = diff(expr, w)
    assert str(g) == "a*(2*(w @ a))[:, None]"  # an outer product, no reshape or transpose
    values = {w: np.arange(6.0).reshape(3, 2), a: np.array([1.0, -1.0])}
    got = compile_exprs([w, a], [g], cache=False)(values[w], values[a])[0]
    np.testing.assert_allclose(got, 2 * np.outer(values[w] @ values[a], values[a]))
    with pytest.raises(ValueError, match="scalar x"):
        diff(expr, w, n=2)
    with pytest.raises(ValueError, match="one-element"):
        diff(Matmul.of(w, a), w)


def test_unused_symbols_get_zero_and_shared_nodes_are_differentiated_once():
    shared = sp.exp(x * y)
    assert adjoints([(shared + shared ** 2, 1)], [z]) == [0]
    order_calls = []
    original = reverse._local_partials

    def counting(node, children, *rest):
        order_calls.append(node)
        return original(node, children, *rest)

    reverse._local_partials = counting
    try:
        (gx,) = adjoints([(sp.sin(shared) + sp.cos(shared) + sp.tan(shared), 1)], [x])
    finally:
        reverse._local_partials = original
    expected = sp.diff(sp.sin(shared) + sp.cos(shared) + sp.tan(shared), x)
    assert sp.simplify(gx - expected) == 0
    # exp(x*y) is one node: its partial is taken once, not once per use
    assert sum(1 for e in order_calls if e.func == sp.exp) == 1


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def test_deep_graph_needs_no_recursion():
    import symgrad

    x = symgrad.tensor(np.array([0.3, -0.2, 0.5]), requires_grad=True, name="x")
    h = x
    for _ in range(250):  # 1000 recorded nodes in one chain
        h = (h * 0.9).tanh() + x * 0.01
    loss = h.sum()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 250)  # far less than the chain is deep
    try:
        with symgrad.backward_engine("symbolic"):
            loss.backward(retain_graph=True)
    finally:
        sys.setrecursionlimit(limit)
    symbolic = x.grad.numpy().copy()
    x.grad = None
    with symgrad.backward_engine("tape"):
        loss.backward()
    np.testing.assert_allclose(symbolic, x.grad.numpy(), rtol=1e-12)


# ---------------------------------------------------------------------------- Rosenbrock
def _rosenbrock_scalar(n):
    xs = sp.symbols(f"x0:{n}", real=True)
    return xs, sp.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1)])


def _rosenbrock_gradient(v):
    g = np.zeros_like(v)
    g[:-1] += -400 * v[:-1] * (v[1:] - v[:-1] ** 2) - 2 * (1 - v[:-1])
    g[1:] += 200 * (v[1:] - v[:-1] ** 2)
    return g


def test_rosenbrock_1000_scalar_symbols_is_linear(rng):
    xs, f = _rosenbrock_scalar(1000)
    grads = gradient(f, xs)
    compiled = compile_exprs(xs, [f] + grads, output_shapes=[()] * 1001, cache=False)
    point = rng.uniform(-1, 1, size=1000)
    out = compiled(*point)
    np.testing.assert_allclose(np.array(out[1:]), _rosenbrock_gradient(point), rtol=1e-10, atol=1e-10)
    assert operation_count(grads) <= 5 * operation_count([f])
    assert operation_count([f] + grads) <= 5 * operation_count([f])


def test_rosenbrock_derivation_work_is_linear_in_variables(work_counter):
    """SymPy's ``[diff(f, x) for x in xs]`` walks ``f`` once per variable (quadratic);
    reverse mode walks it once.  (Slack 2: SymPy keeps the terms of a sum in canonical
    order, an ``n log n`` sort; 8x the variables measured 12.9x the calls, quadratic
    would be 64x.)"""
    def derive(n):
        xs, f = _rosenbrock_scalar(n)
        return work_counter.count(lambda: gradient(f, xs))[0]

    derive(50)  # warm up imports and caches
    sizes = (100, 800)
    work_counter.linear("deriving the Rosenbrock gradient", sizes, tuple(derive(n) for n in sizes), slack=2.0)


def _vectorised_rosenbrock(n):
    X = ArrayVar("x", (n,))
    a, b = Getitem.of(X, index=(slice(1, None),)), Getitem.of(X, index=(slice(None, -1),))
    return X, Sum.of(100 * (a - b ** 2) ** 2 + (1 - b) ** 2)


def _derive_and_compile(n):
    X, f = _vectorised_rosenbrock(n)
    (g,) = gradient(f, [X])
    return compile_exprs([X], [f, g], output_names=["value", "grad_x"], cache=False)


def test_vectorised_rosenbrock_cost_does_not_depend_on_n(rng, work_counter):
    """The same derivation and the same code at n = 7 and n = 10**6 (the size appears in
    the code only as a shape), for the same work."""
    _derive_and_compile(5)  # warm up
    small, small_compiled = work_counter.count(lambda: _derive_and_compile(7))
    large, compiled = work_counter.count(lambda: _derive_and_compile(1_000_000))
    assert compiled.source.replace("1000000", "7") == small_compiled.source
    assert large <= 1.5 * small, (small, large)
    point = rng.uniform(-1, 1, size=1_000_000)
    value, grad = compiled(point)
    np.testing.assert_allclose(grad, _rosenbrock_gradient(point), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(value, np.sum(100 * (point[1:] - point[:-1] ** 2) ** 2 + (1 - point[:-1]) ** 2))


def test_printed_derivatives_of_a_power_keep_the_plain_rules():
    """The engines compute ``a**b``'s derivatives with PyTorch's selections at ``b == 0``
    and ``a == 0`` (tests/reliability/test_nonfinite.py); the printed ones stay the
    textbook rules."""
    a, b = sp.symbols("a b", real=True)
    assert gradient(a ** b, [a, b]) == [b * a ** (b - 1), a ** b * sp.log(a)]
    (computed_da, computed_db) = adjoints([(a ** b, 1)], [a, b], as_recorded=True)
    assert computed_da.has(Equal) and computed_db.has(Equal)
