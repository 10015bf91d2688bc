"""JAX-style transforms over Python functions (traced once per shapes and dtypes) and
over SymPy expressions, checked against central differences and against each other."""
from __future__ import annotations

import re

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


def test_grad_of_a_python_function_traces_once_per_shape(rng, traces):
    calls = traces  # counted at the tracer (a counter the function kept would be part of its key)
    loss = _loss
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


# What a traced function computes from its arguments is recomputed at every call (the
# arguments it does not differentiate, and the ones it indexes with, included); what it
# computes outside the recorded graph (integer arithmetic, detach, no_grad) is refused with a
# clear error instead of being frozen at its value from the first call. Masks and positions
# (argmax) are ops without derivative, recomputed at every call too.
RECOMPUTED = [
    ("op_on_the_other_argument", lambda a, x: (a * (x * 2.0).sin()).sum(), lambda a, x: (a * np.sin(2 * x)).sum()),
    ("clamped_other_argument", lambda a, x: (a ** 2 * x.clamp(-0.5, 0.5)).sum(),
     lambda a, x: (a ** 2 * np.clip(x, -0.5, 0.5)).sum()),
    ("relu_instead_of_a_mask", lambda a, x: (a.relu() * x).sum(), lambda a, x: (np.maximum(a, 0) * x).sum()),
    ("position_of_the_other_argument", lambda a, x: (a * x.argmax()).sum(), lambda a, x: (a * np.argmax(x)).sum()),
    ("mask_of_argmax", lambda a, x: symgrad.where(a.argmin() == 0, a, -a).sum() * x.argmax(),
     lambda a, x: np.where(np.argmin(a) == 0, a, -a).sum() * np.argmax(x)),
]


@pytest.mark.parametrize("case", RECOMPUTED, ids=lambda c: c[0])
def test_values_computed_from_the_arguments_are_recomputed_at_every_call(case, rng):
    _, program, reference = case
    transform = value_and_grad(program)
    for _ in range(4):  # one trace for this shape, then calls with new signs everywhere
        a, x = rng.uniform(-1, 1, size=5), rng.uniform(-1, 1, size=5)
        value, gradient = transform(a, x)
        assert value == pytest.approx(reference(a, x), rel=1e-12)
        np.testing.assert_allclose(gradient, _central(reference, [a, x], 0), rtol=1e-6, atol=1e-8)


def test_index_arguments_are_read_at_every_call(rng):
    transform = grad(lambda a, idx, rows: (a[idx] ** 2).sum() + a[rows].sum())
    for _ in range(4):
        a, idx, rows = rng.uniform(-1, 1, size=6), rng.integers(0, 6, size=3), rng.integers(0, 6, size=2)
        expected = np.zeros(6)
        np.add.at(expected, idx, 2 * a[idx])
        np.add.at(expected, rows, 1.0)
        np.testing.assert_allclose(transform(a, idx, rows), expected, rtol=1e-12)


def test_a_boolean_mask_argument_is_refused_as_an_index():
    from symgrad.tape.tracing import UntraceableError

    with pytest.raises(UntraceableError, match="boolean mask of shape \\(3,\\)"):
        grad(lambda a, mask: a[mask].sum())(np.ones(3), np.array([True, False, True]))


FROZEN = [  # a comparison mask is traced, not refused: tests/symbolic/test_traced_masks.py
    ("detached_inside", lambda a: (a * a.detach()).sum(), "detach()"),
    # a chain of such tensors is named by its last op and by where it began
    ("under_no_grad", lambda a: a.sum() * _no_grad(lambda: (a * 2).sum()),
     "the unrecorded op sum (from a tensor made by the unrecorded op mul)"),
    ("mask_of_a_detached_tensor", lambda a: symgrad.where(a.detach() > 0, a, -a).sum(),
     "the unrecorded op gt (from a tensor made by detach())"),
]


def test_indexing_with_a_position_is_refused():
    """``x[x.argmax()]``: the position is traced, but an index is read from arguments only."""
    from symgrad.tape.tracing import UntraceableError

    with pytest.raises(UntraceableError, match=re.escape("computed from a mask or a position (argmax, argmin)")):
        grad(lambda a: a[a.argmax()] * 2)(np.array([0.5, -1.0, 2.0]))


def test_integer_arithmetic_on_an_index_argument_is_refused():
    from symgrad.tape.tracing import UntraceableError

    with pytest.raises(UntraceableError, match="made by the unrecorded op add from its inputs"):
        grad(lambda a, idx: a[idx + 1].sum())(np.arange(4.0), np.array([0, 2]))


def test_tensors_the_function_makes_from_constants_are_not_refused():
    """Integer arithmetic on a tensor of the function's own (not from its inputs) is a
    constant, read at each call like any captured tensor."""
    transform = grad(lambda a: a[symgrad.tensor([0, 1]) + 2].sum())
    for n in (4, 6):
        np.testing.assert_allclose(transform(np.arange(float(n))), [0, 0, 1, 1] + [0] * (n - 4))


def _no_grad(make):
    with symgrad.no_grad():
        return make()


@pytest.mark.parametrize("case", FROZEN, ids=lambda c: c[0])
def test_values_made_outside_the_graph_are_refused_not_frozen(case):
    _, program, how = case
    from symgrad.tape.tracing import UntraceableError

    with pytest.raises(UntraceableError, match=re.escape(f"made by {how} from its inputs")):
        grad(program)(np.array([0.5, -1.0, 2.0]))
