"""JAX-style transforms over Python functions (traced once per shapes and dtypes) and
over SymPy expressions, checked against central differences and against each other."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.symbolic import grad, hessian, jacobian, jvp, value_and_grad, vjp


def _loss(w, x):
    return (symgrad.sigmoid(x @ w) ** 2).sum() + (w * w).mean()


def _loss_np(w, x):
    return np.sum((1 / (1 + np.exp(-(x @ w)))) ** 2) + np.mean(w * w)


def _central(f, args, i, eps=1e-6):
    x = np.array(args[i], dtype=float)
    out = np.zeros(np.shape(f(*args)) + x.shape)
    for k in np.ndindex(*x.shape):
        plus, minus = list(args), list(args)
        xp, xm = x.copy(), x.copy()
        xp[k] += eps
        xm[k] -= eps
        plus[i], minus[i] = xp, xm
        out[(...,) + k] = (np.asarray(f(*plus)) - np.asarray(f(*minus))) / (2 * eps)
    return out


def test_grad_of_a_python_function_traces_once_per_shape(rng):
    calls = []

    def loss(w, x):
        calls.append(1)
        return _loss(w, x)

    df = grad(loss)
    w, x = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(df(w, x), _central(_loss_np, [w, x], 0), rtol=1e-6, atol=1e-8)
    df(w + 1, x * 2)
    assert len(calls) == 1
    df(rng.normal(size=(3, 5)), x)  # new shape: traced again
    df(w.astype(np.float32), x.astype(np.float32))  # new dtype: traced again
    assert len(calls) == 3
    assert df(w.astype(np.float32), x.astype(np.float32)).dtype == np.float32
    assert "grad_w" in df.closed_forms and "def grad(w, x):" in df.source


def test_value_and_grad_with_several_argnums(rng):
    w, x = rng.normal(size=(3, 2)), rng.normal(size=(4, 3))
    value, (gw, gx) = value_and_grad(_loss, argnums=(0, 1))(w, x)
    np.testing.assert_allclose(value, _loss_np(w, x))
    np.testing.assert_allclose(gw, _central(_loss_np, [w, x], 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gx, _central(_loss_np, [w, x], 1), rtol=1e-6, atol=1e-8)


def test_jacobian_hessian_vjp_jvp_of_a_python_function(rng):
    def f(v):
        return (v * v).exp() * v.sum()

    def f_np(v):
        return np.exp(v * v) * v.sum()

    def scalar_np(v):
        return np.sum(f_np(v) ** 2)

    v, t, g = rng.uniform(-0.5, 0.5, size=(3, 3))
    J = jacobian(f)(v)
    np.testing.assert_allclose(J, _central(f_np, [v], 0), rtol=1e-6, atol=1e-8)
    H = hessian(lambda v: (f(v) ** 2).sum())(v)
    np.testing.assert_allclose(H, _central(lambda u: _central(scalar_np, [u], 0, 1e-5), [v], 0, 1e-5),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(H, H.T, rtol=1e-10)
    value, back = vjp(f, v)
    np.testing.assert_allclose(value, f_np(v))
    np.testing.assert_allclose(back(g)[0], g @ J, rtol=1e-10)
    value, tangent = jvp(f, (v,), (t,))
    np.testing.assert_allclose(tangent, J @ t, rtol=1e-10)


def test_transforms_of_sympy_expressions():
    x, y = sp.symbols("x y", real=True)
    expr = sp.exp(x * y) + x ** 3
    dfdx = grad(expr, x)  # inputs: x, then y
    np.testing.assert_allclose(dfdx(1.0, 2.0), 2 * np.exp(2) + 3)
    assert dfdx.closed_forms == {"grad_x": y * sp.exp(x * y) + 3 * x ** 2}
    points = np.linspace(0, 1, 5)
    np.testing.assert_allclose(dfdx(points, 2.0), 2 * np.exp(2 * points) + 3 * points ** 2)  # vectorised
    H = hessian(expr, (0, 1), args=(x, y))(1.0, 2.0)
    expected = sp.hessian(expr, (x, y)).subs({x: 1.0, y: 2.0})
    np.testing.assert_allclose(np.array(H, dtype=float), np.array(expected, dtype=float))
    assert r"\mathrm{hvp\_x} &= 6 v_{x} x + v_{y} e^{x y}" in hessian(expr, (0, 1), args=(x, y))._repr_latex_()


def test_unused_argument_has_zero_gradient_and_errors_are_clear(rng):
    df = grad(lambda a, b: (a ** 2).sum(), argnums=1)
    np.testing.assert_array_equal(df(np.ones(3), np.ones(2)), np.zeros(2))
    with pytest.raises(ValueError, match="one output element"):
        grad(lambda a: a * 2)(np.ones(3))
    with pytest.raises(RuntimeError, match="call it once first"):
        grad(lambda a: a.sum()).source
