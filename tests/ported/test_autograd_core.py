"""Port of HIPS autograd's ``tests/test_core.py`` (gradients of Python's binary operators
in each argument) and ``tests/test_graphs.py`` (graph shapes: fan-out, constants,
identity, Hessian-vector products through a nested ``grad``, closures over an outer
traced value, repeated uses of one intermediate, indexing, third derivatives, size-1
outputs, assignment into an input).

Every expected value is a closed form derived by hand in NumPy (checked against central
differences where it is not obvious); autograd's ``check_grads`` is replaced by those
comparisons.  Deliberate differences from autograd, each said at its test:

* comparisons (``test_eq`` ... ``test_gt``): autograd differentiates ``x == y`` itself
  (a 0 gradient and a warning); symgrad's comparisons give boolean tensors that carry no
  gradient, so the port uses them the way symgrad programs do, through ``symgrad.where``,
  and checks that the branch taken follows the values of each call;
* ``test_assignment_raises_error``: autograd raises ``TypeError`` for ``A[1] = b`` on an
  input; symgrad follows PyTorch (an in-place change of a leaf that requires grad raises
  ``RuntimeError``), and an assignment into a ``clone()`` is differentiated.

Skipped: the complex-number tests of
``test_graphs.py`` (``test_complex_mutating_outgrad_from_indexing``,
``test_complex_separate_real_and_imaginary``: symgrad's transforms are real-valued).
"""
from __future__ import annotations

import operator

import numpy as np
import pytest

import symgrad

from .conftest import central_grad

# ==================================================================== test_core.py
# name, f(x, y), (df/dx, df/dy) by hand
BINARY_OPERATORS = [
    ("add", operator.add, (lambda x, y: 1.0, lambda x, y: 1.0)),
    ("sub", operator.sub, (lambda x, y: 1.0, lambda x, y: -1.0)),
    ("div", operator.truediv, (lambda x, y: 1 / y, lambda x, y: -x / y ** 2)),
    ("mul", operator.mul, (lambda x, y: y, lambda x, y: x)),
    ("pow", operator.pow, (lambda x, y: y * x ** (y - 1), lambda x, y: x ** y * np.log(x))),
    # x % y = x - floor(x / y) * y: 1 and -floor(x / y) away from the jumps (PyTorch's rule)
    ("mod", operator.mod, (lambda x, y: 1.0, lambda x, y: -np.floor(x / y))),
]
CORE_POINTS = [(0.7, 1.8), (1.8, 0.7), (1.3, 2.5)]  # (0.7, 1.8) is autograd's


@pytest.mark.parametrize("point", CORE_POINTS)
@pytest.mark.parametrize("argnum", [0, 1])
@pytest.mark.parametrize("name,f,df", BINARY_OPERATORS, ids=[r[0] for r in BINARY_OPERATORS])
def test_binary_operator_gradient(name, f, df, argnum, point):
    got = symgrad.grad(f, argnum)(*point)
    np.testing.assert_allclose(got, df[argnum](*point), rtol=1e-12)
    np.testing.assert_allclose(central_grad(f, list(point), argnum), df[argnum](*point), rtol=1e-6)


# autograd's eq/ne/le/ge/lt/gt, used through where: f = where(x OP y, x * y, x - y), so
# df/dx is y where the comparison holds and 1 elsewhere, df/dy is x there and -1 elsewhere.
COMPARISONS = [operator.eq, operator.ne, operator.le, operator.ge, operator.lt, operator.gt]
COMPARISON_POINTS = [(0.7, 1.8), (1.8, 0.7), (1.25, 1.25)]


@pytest.mark.parametrize("compare", COMPARISONS, ids=[c.__name__ for c in COMPARISONS])
def test_comparison_selects_the_branch_of_each_call(compare):
    g = symgrad.grad(lambda x, y: symgrad.where(compare(x, y), x * y, x - y), argnums=(0, 1))
    for x, y in COMPARISON_POINTS + COMPARISON_POINTS[::-1]:  # one transform, values in turn
        holds = compare(x, y)
        gx, gy = g(x, y)
        assert (float(gx), float(gy)) == ((y, x) if holds else (1.0, -1.0)), (x, y)


# ==================================================================== test_graphs.py
def _fanout(x):
    return symgrad.sin(symgrad.sin(x) + symgrad.sin(x))


def _fanout_d1(x):
    return 2 * np.cos(x) * np.cos(2 * np.sin(x))


def _fanout_d2(x):
    s, c, u = np.sin(x), np.cos(x), 2 * np.sin(x)
    return -2 * s * np.cos(u) - 4 * c ** 2 * np.sin(u)


def _fanout_d3(x):
    s, c, u = np.sin(x), np.cos(x), 2 * np.sin(x)
    return -2 * c * np.cos(u) + 12 * s * c * np.sin(u) - 8 * c ** 3 * np.cos(u)


FANOUT_POINTS = list(np.random.default_rng(1).standard_normal(3))


@pytest.mark.parametrize("x", FANOUT_POINTS)
@pytest.mark.parametrize("order,expected", [(1, _fanout_d1), (2, _fanout_d2), (3, _fanout_d3)])
def test_fanout_and_third_derivative(order, expected, x):
    g = _fanout
    for _ in range(order):
        g = symgrad.grad(g)
    np.testing.assert_allclose(g(x), expected(x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("x", FANOUT_POINTS)
def test_fanout_hand_derivatives_match_finite_differences(x):
    np.testing.assert_allclose(central_grad(_fanout, [x]), _fanout_d1(x), rtol=1e-6, atol=1e-8)
    for lower, higher in [(_fanout_d1, _fanout_d2), (_fanout_d2, _fanout_d3)]:
        np.testing.assert_allclose((lower(x + 1e-6) - lower(x - 1e-6)) / 2e-6, higher(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("f,x,first,second", [
    pytest.param(lambda x: 1.0, 2.0, 0.0, 0.0, id="const"),          # test_grad_const
    pytest.param(lambda x: x, 2.0, 1.0, 0.0, id="identity"),         # test_grad_identity
    pytest.param(lambda x: x * 0.0 + 5.0, -3.0, 0.0, 0.0, id="const-from-x"),
])
def test_constant_and_identity(f, x, first, second):
    assert float(symgrad.grad(f)(x)) == first
    assert float(symgrad.grad(symgrad.grad(f))(x)) == second


# test_grad_const, extended to the other transforms: a derivative that is zero because the
# output does not depend on the input is a float array of zeros of the right shape.
ZERO_DERIVATIVES = [
    pytest.param(lambda: symgrad.grad(lambda x: 1.0)(np.ones(2)), (2,), id="grad-constant"),
    pytest.param(lambda: symgrad.grad(lambda x, y: (y ** 2).sum())(np.ones(2), 2.0), (2,), id="grad-unused"),
    pytest.param(lambda: symgrad.jacobian(lambda x, y: y * 2.0)(np.ones(2), np.ones(3)), (3, 2), id="jacobian-unused"),
    pytest.param(lambda: symgrad.jacobian(lambda x: symgrad.tensor([1.0, 2.0, 3.0]))(np.ones(2)), (3, 2),
                 id="jacobian-constant"),
    pytest.param(lambda: symgrad.hessian(lambda x: (x * 2.0).sum())(np.ones(2)), (2, 2), id="hessian-linear"),
    pytest.param(lambda: symgrad.hessian(lambda x: 1.0)(np.ones(2)), (2, 2), id="hessian-constant"),
    pytest.param(lambda: symgrad.vjp(lambda x, y: y * 2.0, np.ones(2), np.ones(3))[1](np.ones(3))[0], (2,),
                 id="vjp-unused"),
]


@pytest.mark.parametrize("call,shape", ZERO_DERIVATIVES)
def test_zero_derivatives_are_float_zeros(call, shape):
    got = np.asarray(call())
    assert got.shape == shape
    assert got.dtype.kind == "f", got.dtype
    assert not got.any()


# test_third_derivative_other_args(2): f = sin(sin x + sin y), chains of grad over argnums
def _s(x, y):
    return np.sin(x) + np.sin(y)


MIXED = {  # partial derivatives of sin(sin x + sin y) by hand, keyed by the argnums chain
    (0,): lambda x, y: np.cos(_s(x, y)) * np.cos(x),
    (1,): lambda x, y: np.cos(_s(x, y)) * np.cos(y),
    (0, 0): lambda x, y: -np.sin(_s(x, y)) * np.cos(x) ** 2 - np.cos(_s(x, y)) * np.sin(x),
    (0, 1): lambda x, y: -np.sin(_s(x, y)) * np.cos(x) * np.cos(y),
    (1, 0): lambda x, y: -np.sin(_s(x, y)) * np.cos(x) * np.cos(y),
    (1, 1): lambda x, y: -np.sin(_s(x, y)) * np.cos(y) ** 2 - np.cos(_s(x, y)) * np.sin(y),
    (0, 1, 0): lambda x, y: -np.cos(_s(x, y)) * np.cos(x) ** 2 * np.cos(y) + np.sin(_s(x, y)) * np.sin(x) * np.cos(y),
    (1, 0, 1): lambda x, y: -np.cos(_s(x, y)) * np.cos(x) * np.cos(y) ** 2 + np.sin(_s(x, y)) * np.cos(x) * np.sin(y),
}
XY = tuple(np.random.default_rng(2).standard_normal(2))


@pytest.mark.parametrize("chain", list(MIXED), ids=lambda c: "d" + "".join("xy"[i] for i in c))
def test_third_derivative_other_args(chain):
    g = lambda x, y: symgrad.sin(symgrad.sin(x) + symgrad.sin(y))  # noqa: E731
    for argnum in chain:
        g = symgrad.grad(g, argnum)
    np.testing.assert_allclose(g(*XY), MIXED[chain](*XY), rtol=1e-9, atol=1e-12)
    if len(chain) > 1:  # the hand formula against differences of the one below it
        parent, last = MIXED[chain[:-1]], chain[-1]
        plus, minus = list(XY), list(XY)
        plus[last] += 1e-6
        minus[last] -= 1e-6
        np.testing.assert_allclose((parent(*plus) - parent(*minus)) / 2e-6, MIXED[chain](*XY), rtol=1e-5, atol=1e-6)


def test_hess_vector_prod():
    """grad of a function that itself calls grad(fun) on its traced argument."""
    rng = np.random.default_rng(1)
    v, x, w = rng.standard_normal((3, 10))
    fun = lambda x: symgrad.sin((x * v).sum())  # noqa: E731
    df = symgrad.grad(fun)
    vector_product = lambda x, w: symgrad.sin((w * df(x)).sum())  # noqa: E731
    gx, gw = symgrad.grad(vector_product, argnums=(0, 1))(x, w)
    xv, wv = x @ v, w @ v
    outer = np.cos(np.cos(xv) * wv)
    np.testing.assert_allclose(gw, outer * np.cos(xv) * v, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gx, outer * wv * -np.sin(xv) * v, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(df(x), np.cos(xv) * v, rtol=1e-12)


# test_enclosing_scope_ref(_2): fun(x) = x * grad(lambda y: x*y)(2.0) = x**2, so 2x
ENCLOSING = [
    pytest.param(lambda x: x * symgrad.grad(lambda y: x * y)(2.0), id="x*y"),
    pytest.param(lambda x: x * symgrad.grad(lambda y: y * x)(2.0), id="y*x"),
]


@pytest.mark.parametrize("x", [1.0, -0.6, 2.5])
@pytest.mark.parametrize("fun", ENCLOSING)
def test_enclosing_scope_ref(fun, x):
    np.testing.assert_allclose(symgrad.grad(fun)(x), 2 * x, rtol=1e-12)


@pytest.mark.parametrize("x", [1.0, -0.6, 2.5])
@pytest.mark.parametrize("fun", ENCLOSING)
def test_enclosing_scope_ref_eager(engine, fun, x):
    t = symgrad.tensor(x, dtype=symgrad.float64, requires_grad=True)
    fun(t).backward()
    np.testing.assert_allclose(t.grad.numpy(), 2 * x, rtol=1e-12)


# test_mutating_outgrad(_from_indexing): one intermediate used several times; the
# functions return vectors, so the Jacobian is compared (autograd's check_grads takes a
# VJP with a random cotangent, which is compared too).
def _outgrad(a):
    b = a + 1.0
    c = b + 1.5
    d = a + b
    return d + c  # 3a + 3.5


def _outgrad_indexing(a):
    b = a + 1.0
    c = b[0] + 1.5
    d = a + b
    return d + c  # 2a + 1 + a[0] + 2.5


OUTGRAD = [
    pytest.param(_outgrad, lambda n: 3 * np.eye(n), id="mutating_outgrad"),
    pytest.param(_outgrad_indexing, lambda n: 2 * np.eye(n) + np.eye(n)[[0] * n], id="from_indexing"),
]


@pytest.mark.parametrize("fun,jac", OUTGRAD)
def test_mutating_outgrad(fun, jac):
    rng = np.random.default_rng(3)
    a, g = rng.standard_normal((2, 5))
    np.testing.assert_allclose(symgrad.jacobian(fun)(a), jac(5), rtol=1e-12)
    value, back = symgrad.vjp(fun, a)
    np.testing.assert_allclose(back(g)[0], g @ jac(5), rtol=1e-12)


# test_singleton_array_output*: sum(sin(x)) with keepdims / over an axis of length 1 has
# one element but not shape (); autograd (and PyTorch's backward) accept that as a scalar
# output, JAX does not (see test_jax_api.py, test_grad_nonscalar_output).
SINGLETON = [
    pytest.param(lambda x: symgrad.sin(x).sum(dim=(0, 1), keepdim=True), (3, 3), id="keepdims"),
    pytest.param(lambda x: symgrad.sin(x).sum(dim=0), (3, 1), id="axis0"),
    pytest.param(lambda x: symgrad.sin(x).sum(dim=1), (1, 3), id="axis1"),
    pytest.param(lambda x: symgrad.sin(x).sum(dim=0, keepdim=True), (3, 1), id="axis0-keepdims"),
    pytest.param(lambda x: symgrad.sin(x).sum(dim=1, keepdim=True), (1, 3), id="axis1-keepdims"),
]


@pytest.mark.parametrize("fun,shape", SINGLETON)
def test_singleton_array_output(fun, shape):
    x = np.random.default_rng(4).standard_normal(shape)
    np.testing.assert_allclose(symgrad.grad(fun)(x), np.cos(x), rtol=1e-12)
    second = symgrad.grad(lambda x: symgrad.grad(fun)(x).sum())
    np.testing.assert_allclose(second(x), -np.sin(x), rtol=1e-12)


def test_assignment_into_an_input_raises():
    """autograd: TypeError; symgrad (PyTorch semantics): RuntimeError, an in-place change
    of a leaf that requires grad."""
    def fun(a, b):
        a[1] = b
        return a

    with pytest.raises(RuntimeError, match="in-place"):
        symgrad.jacobian(fun)(np.random.default_rng(5).standard_normal(5), 3.0)


def test_assignment_into_a_clone_is_differentiated():
    def fun(a, b):
        c = a.clone()
        c[1] = b
        return (c ** 2).sum()

    a = np.random.default_rng(6).standard_normal(5)
    ga, gb = symgrad.grad(fun, argnums=(0, 1))(a, 3.0)
    expected = 2 * a
    expected[1] = 0.0
    np.testing.assert_allclose(ga, expected, rtol=1e-12)
    np.testing.assert_allclose(gb, 6.0, rtol=1e-12)
