"""Port of HIPS autograd's ``tests/test_scalar_ops.py``: first and second derivatives of
scalar elementwise functions (autograd writes each as ``3.0 * np.op(x)`` and runs
``check_grads`` to order 2).

Here every row gives the function written with symgrad ops and its first and second
derivative derived by hand in NumPy. Each row is checked four ways: ``symgrad.grad`` and
``symgrad.grad(symgrad.grad(f))`` against the hand-derived closed forms, eager
``.backward()`` with each engine against the first derivative, and the hand-derived
first derivative against central differences of the function (so a slip in a formula
below fails too).  Binary rows (``power``, ``divide``, ``multiply``) check both
arguments and the full Hessian from ``symgrad.hessian(f, argnums=(0, 1))``.

Every op autograd's file tests is an op of symgrad's table now (``log2``, ``log10``,
``log1p``, ``expm1``, ``exp2``, ``cosh``, ``sinh``, the inverse trigonometric and
hyperbolic functions, ``reciprocal``, ``rad2deg``, ``deg2rad``, ``sign``, ``sinc``,
``remainder``); each row calls it by its own name.  ``absolute`` is ``abs`` and
``true_divide`` is ``divide`` (the binary rows).
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

from .conftest import central_grad

_R = np.random.default_rng(20240601)
RANDN = float(_R.standard_normal())
ABS_RANDN = float(abs(_R.standard_normal())) + 0.05
RAND = float(_R.uniform(0.05, 1.0))
TEN_RAND = float(10 * _R.uniform(0.05, 1.0))
POW_Y = float(_R.standard_normal() ** 2 + 1.0)
POW_X = float(_R.uniform(0, 1) ** 2 + 1.0)
BASE = float(_R.standard_normal() ** 2 + 0.1)
LN2, LN10, RAD = np.log(2.0), np.log(10.0), 180.0 / np.pi

# name, f (symgrad ops), f' and f'' (hand-derived NumPy), points
UNARY = [
    ("abs", lambda x: 3.0 * symgrad.abs(x), lambda x: 3.0 * np.sign(x), lambda x: 0.0 * x, [1.1, -1.1]),
    ("sin", lambda x: 3.0 * symgrad.sin(x), lambda x: 3.0 * np.cos(x), lambda x: -3.0 * np.sin(x), [RANDN]),
    ("exp", lambda x: 3.0 * symgrad.exp(x), lambda x: 3.0 * np.exp(x), lambda x: 3.0 * np.exp(x), [RANDN]),
    ("log", lambda x: 3.0 * symgrad.log(x), lambda x: 3.0 / x, lambda x: -3.0 / x ** 2, [ABS_RANDN]),
    ("log2", lambda x: 3.0 * symgrad.log2(x), lambda x: 3.0 / (x * LN2), lambda x: -3.0 / (x ** 2 * LN2),
     [ABS_RANDN]),
    ("log10", lambda x: 3.0 * symgrad.log10(x), lambda x: 3.0 / (x * LN10),
     lambda x: -3.0 / (x ** 2 * LN10), [ABS_RANDN]),
    ("log1p", lambda x: 3.0 * symgrad.log1p(x), lambda x: 3.0 / (1 + x), lambda x: -3.0 / (1 + x) ** 2,
     [ABS_RANDN]),
    ("expm1", lambda x: 3.0 * symgrad.expm1(x), lambda x: 3.0 * np.exp(x), lambda x: 3.0 * np.exp(x),
     [ABS_RANDN]),
    ("exp2", lambda x: 3.0 * symgrad.exp2(x), lambda x: 3.0 * LN2 * 2.0 ** x, lambda x: 3.0 * LN2 ** 2 * 2.0 ** x,
     [ABS_RANDN]),
    ("neg", lambda x: 3.0 * -x, lambda x: -3.0 + 0 * x, lambda x: 0.0 * x, [RANDN]),
    ("cos", lambda x: 3.0 * symgrad.cos(x), lambda x: -3.0 * np.sin(x), lambda x: -3.0 * np.cos(x), [RANDN]),
    ("tan", lambda x: 3.0 * symgrad.tan(x), lambda x: 3.0 / np.cos(x) ** 2,
     lambda x: 6.0 * np.tan(x) / np.cos(x) ** 2, [RANDN]),
    ("cosh", lambda x: 3.0 * symgrad.cosh(x), lambda x: 3.0 * np.sinh(x),
     lambda x: 3.0 * np.cosh(x), [RANDN]),
    ("sinh", lambda x: 3.0 * symgrad.sinh(x), lambda x: 3.0 * np.cosh(x),
     lambda x: 3.0 * np.sinh(x), [RANDN]),
    ("tanh", lambda x: 3.0 * symgrad.tanh(x), lambda x: 3.0 / np.cosh(x) ** 2,
     lambda x: -6.0 * np.tanh(x) / np.cosh(x) ** 2, [RANDN]),
    ("sqrt", lambda x: 3.0 * symgrad.sqrt(x), lambda x: 1.5 / np.sqrt(x), lambda x: -0.75 * x ** -1.5,
     [TEN_RAND]),
    ("power_arg0", lambda x: x ** POW_Y, lambda x: POW_Y * x ** (POW_Y - 1),
     lambda x: POW_Y * (POW_Y - 1) * x ** (POW_Y - 2), [POW_X]),
    ("power_arg1", lambda y: BASE ** y, lambda y: BASE ** y * np.log(BASE),
     lambda y: BASE ** y * np.log(BASE) ** 2, [RAND]),
    ("reciprocal", lambda x: symgrad.reciprocal(x), lambda x: -1.0 / x ** 2, lambda x: 2.0 / x ** 3, [RAND]),
    ("negative", lambda x: -x, lambda x: -1.0 + 0 * x, lambda x: 0.0 * x, [RAND]),
    ("rad2deg", lambda x: 3.0 * symgrad.rad2deg(x), lambda x: 3.0 * RAD + 0 * x, lambda x: 0.0 * x, [TEN_RAND]),
    ("deg2rad", lambda x: 3.0 * symgrad.deg2rad(x), lambda x: 3.0 / RAD + 0 * x, lambda x: 0.0 * x, [TEN_RAND]),
]
UNARY += [  # the inverse functions, sign and sinc (autograd: arcsin, ..., sinc)
    ("arcsin", lambda x: 3.0 * symgrad.asin(x), lambda x: 3.0 / np.sqrt(1 - x ** 2),
     lambda x: 3.0 * x / (1 - x ** 2) ** 1.5, [RAND * 0.9]),
    ("arccos", lambda x: 3.0 * symgrad.acos(x), lambda x: -3.0 / np.sqrt(1 - x ** 2),
     lambda x: -3.0 * x / (1 - x ** 2) ** 1.5, [RAND * 0.9]),
    ("arctan", lambda x: 3.0 * symgrad.atan(x), lambda x: 3.0 / (1 + x ** 2),
     lambda x: -6.0 * x / (1 + x ** 2) ** 2, [RANDN]),
    ("arcsinh", lambda x: 3.0 * symgrad.asinh(x), lambda x: 3.0 / np.sqrt(1 + x ** 2),
     lambda x: -3.0 * x / (1 + x ** 2) ** 1.5, [RANDN]),
    ("arccosh", lambda x: 3.0 * symgrad.acosh(x), lambda x: 3.0 / np.sqrt(x ** 2 - 1),
     lambda x: -3.0 * x / (x ** 2 - 1) ** 1.5, [TEN_RAND + 1.5]),
    ("arctanh", lambda x: 3.0 * symgrad.atanh(x), lambda x: 3.0 / (1 - x ** 2),
     lambda x: 6.0 * x / (1 - x ** 2) ** 2, [RAND * 0.9]),
    ("sign", lambda x: 3.0 * symgrad.sign(x), lambda x: 0.0 * x, lambda x: 0.0 * x, [RANDN]),
    ("sinc", lambda x: 3.0 * symgrad.sinc(x),  # numpy's (and PyTorch's) sinc(x) = sin(pi x)/(pi x)
     lambda x: 3.0 * (np.cos(np.pi * x) / x - np.sin(np.pi * x) / (np.pi * x ** 2)),
     lambda x: 3.0 * (-np.pi * np.sin(np.pi * x) / x - 2 * np.cos(np.pi * x) / x ** 2
                      + 2 * np.sin(np.pi * x) / (np.pi * x ** 3)), [RANDN]),
    ("mod_arg0", lambda x: 3.0 * symgrad.remainder(x, 0.7), lambda x: 3.0 + 0 * x, lambda x: 0.0 * x, [TEN_RAND]),
]
UNARY_CASES = [pytest.param(f, d1, d2, x, id=f"{name}-{x:.3f}") for name, f, d1, d2, xs in UNARY for x in xs]


@pytest.mark.parametrize("f,d1,d2,x", UNARY_CASES)
def test_grad_matches_closed_form(f, d1, d2, x):
    np.testing.assert_allclose(symgrad.grad(f)(x), d1(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("f,d1,d2,x", UNARY_CASES)
def test_second_derivative_matches_closed_form(f, d1, d2, x):
    np.testing.assert_allclose(symgrad.grad(symgrad.grad(f))(x), d2(x), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("f,d1,d2,x", UNARY_CASES)
def test_eager_backward_matches_closed_form(engine, f, d1, d2, x):
    t = symgrad.tensor(x, dtype=symgrad.float64, requires_grad=True)
    f(t).backward()
    np.testing.assert_allclose(t.grad.numpy(), d1(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("f,d1,d2,x", UNARY_CASES)
def test_closed_forms_match_finite_differences(f, d1, d2, x):
    np.testing.assert_allclose(central_grad(f, [x]), d1(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose((d1(x + 1e-6) - d1(x - 1e-6)) / 2e-6, d2(x), rtol=1e-5, atol=1e-6)


# abs at its kink: autograd checks order 1 only, and both it and PyTorch give 0 there
# (the central difference agrees); symgrad must not give NaN or +-3.
@pytest.mark.parametrize("transform", ["grad", "eager-tape", "eager-symbolic"])
def test_abs_gradient_at_zero_is_zero(transform):
    f = lambda x: 3.0 * symgrad.abs(x)  # noqa: E731
    if transform == "grad":
        got = symgrad.grad(f)(0.0)
    else:
        previous = symgrad.get_backward_engine()
        symgrad.set_backward_engine(transform.split("-")[1])
        try:
            t = symgrad.tensor(0.0, dtype=symgrad.float64, requires_grad=True)
            f(t).backward()
            got = t.grad.numpy()
        finally:
            symgrad.set_backward_engine(previous)
    assert central_grad(f, [0.0])[()] == 0.0
    np.testing.assert_array_equal(got, 0.0)


# test_power_arg0's special case (autograd issue #116): d/dx x**0 at x = 0 is 0, and so is
# the second derivative, not 0 * 0**-1 = NaN.  test_power_arg1_zero: 0**y is 0 for y > 0,
# so d/dy 0**y is 0 there (central differences agree), not 0 * log(0) = NaN.
POWER_EDGE = [
    pytest.param(lambda x: x ** 0.0, 0.0, 1, id="x**0-at-0-first"),
    pytest.param(lambda x: x ** 0.0, 0.0, 2, id="x**0-at-0-second"),
    pytest.param(lambda y: 0.0 ** y, RAND + 0.5, 1, id="0**y-first"),
]


@pytest.mark.parametrize("f,x,order", POWER_EDGE)
def test_power_special_cases_have_zero_derivative(f, x, order):
    g = symgrad.grad(f)
    if order == 2:
        g = symgrad.grad(g)
    np.testing.assert_array_equal(g(x), 0.0)
    if order == 1 and x > 0:
        assert central_grad(f, [x])[()] == 0.0


@pytest.mark.parametrize("f,x,order", [p for p in POWER_EDGE if p.values[2] == 1])
def test_power_special_cases_eager(engine, f, x, order):
    t = symgrad.tensor(x, dtype=symgrad.float64, requires_grad=True)
    f(t).backward()
    np.testing.assert_array_equal(t.grad.numpy(), 0.0)


# ---------------------------------------------------------------- binary rows
# name, f(x, y), (f_x, f_y), ((f_xx, f_xy), (f_yx, f_yy)), point
BINARY = [
    ("power", lambda x, y: x ** y,
     (lambda x, y: y * x ** (y - 1), lambda x, y: x ** y * np.log(x)),
     ((lambda x, y: y * (y - 1) * x ** (y - 2), lambda x, y: x ** (y - 1) * (1 + y * np.log(x))),
      (lambda x, y: x ** (y - 1) * (1 + y * np.log(x)), lambda x, y: x ** y * np.log(x) ** 2)),
     (POW_X, RAND)),
    ("divide", lambda x, y: x / y,
     (lambda x, y: 1 / y, lambda x, y: -x / y ** 2),
     ((lambda x, y: 0.0 * x, lambda x, y: -1 / y ** 2), (lambda x, y: -1 / y ** 2, lambda x, y: 2 * x / y ** 3)),
     (RAND, TEN_RAND / 10 + 0.1)),
    ("multiply", lambda x, y: x * y,
     (lambda x, y: y, lambda x, y: x),
     ((lambda x, y: 0.0 * x, lambda x, y: 1.0 + 0 * x), (lambda x, y: 1.0 + 0 * x, lambda x, y: 0.0 * x)),
     (RAND, TEN_RAND)),
]
BINARY_CASES = [pytest.param(f, d1, d2, p, id=name) for name, f, d1, d2, p in BINARY]


@pytest.mark.parametrize("argnum", [0, 1])
@pytest.mark.parametrize("f,d1,d2,point", BINARY_CASES)
def test_binary_grad_each_argument(f, d1, d2, point, argnum):
    np.testing.assert_allclose(symgrad.grad(f, argnum)(*point), d1[argnum](*point), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(central_grad(f, list(point), argnum), d1[argnum](*point), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("f,d1,d2,point", BINARY_CASES)
def test_binary_hessian(f, d1, d2, point):
    got = symgrad.hessian(f, argnums=(0, 1))(*point)
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(got[i][j], d2[i][j](*point), rtol=1e-9, atol=1e-10)
            # the hand-derived second derivatives against differences of the first ones
            shifted = [list(point), list(point)]
            shifted[0][j] += 1e-6
            shifted[1][j] -= 1e-6
            fd = (d1[i](*shifted[0]) - d1[i](*shifted[1])) / 2e-6
            np.testing.assert_allclose(fd, d2[i][j](*point), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("f,d1,d2,point", BINARY_CASES)
def test_binary_eager_backward(engine, f, d1, d2, point):
    x, y = (symgrad.tensor(v, dtype=symgrad.float64, requires_grad=True) for v in point)
    f(x, y).backward()
    np.testing.assert_allclose(x.grad.numpy(), d1[0](*point), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), d1[1](*point), rtol=1e-10, atol=1e-12)
