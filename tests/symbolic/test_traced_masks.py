"""Comparisons a trace follows: masks inside ``grad``, ``value_and_grad`` and ``jacobian``.

A comparison (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``) and the logical combinations of
masks (``&``, ``|``, ``~``) are mask ops of the table; while a transform traces a
function, the tape records them when an operand is part of the trace, so the compiled
function recomputes each mask from each call's values.  Each case of the table is one
transform called in turn on values on both sides of the threshold (ties included), with
one trace, and compared with an eager run of the same function on the tape engine; under
the ``"both"`` engine every call is also cross-checked by the transform itself.  A mask
used where the result's shape would depend on values (``x[mask]``) still raises.
"""
from __future__ import annotations

import operator

import numpy as np
import pytest

import symgrad
from symgrad import UntraceableError
from symgrad.symbolic import grad, jacobian, value_and_grad

# values on both sides of every threshold below, with ties (x[0] == y[0], y[3] == 0)
X = np.array([1.25, -0.5, 0.7, 0.0])
Y = np.array([1.25, 0.3, -0.2, 0.0])
CALLS = [(X, Y), (-X, -Y), (Y, X), (X, -Y)]

COMPARISONS = [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]

# name -> f(x, y), an array of X's shape
MASKED = {
    **{f"where(x {op.__name__} y)": (lambda op: lambda x, y: symgrad.where(op(x, y), x * y, x - y))(op)
       for op in COMPARISONS},
    **{f"where(x {op.__name__} 0.5)": (lambda op: lambda x, y: symgrad.where(op(x, 0.5), x ** 2, 3 * y))(op)
       for op in COMPARISONS},
    "where(0 < x) (reflected)": lambda x, y: symgrad.where(0 < x, x, -x),
    "(x > 0) & (y < 1)": lambda x, y: symgrad.where((x > 0) & (y < 1), x, y * x),
    "(x > 0) | (y < 0)": lambda x, y: symgrad.where((x > 0) | (y < 0), x, y * x),
    "~(x > y)": lambda x, y: symgrad.where(~(x > y), x * x, y),
    "(x > 0) & ~(y >= x)": lambda x, y: symgrad.where((x > 0) & ~(y >= x), x, y - x),
    "(x > 0) == (y > 0)": lambda x, y: symgrad.where((x > 0) == (y > 0), x, y * x),
    "(x > 0) != (y > 0)": lambda x, y: symgrad.where((x > 0) != (y > 0), x, y * x),
    "symgrad.logical_and(gt, lt)": lambda x, y: symgrad.where(symgrad.logical_and(symgrad.gt(x, 0), y.lt(1)), x, y),
    "symgrad.logical_or(ge, le)": lambda x, y: symgrad.where(symgrad.logical_or(x.ge(y), symgrad.le(y, 0)), x, y),
    "x.logical_not() of ne": lambda x, y: symgrad.where(symgrad.ne(x, y).logical_not(), x * y, x),
    "where(mask, x, 0)": lambda x, y: symgrad.where(x > y, x, 0.0),
    "where(mask, 1.0, 0.0) * x": lambda x, y: symgrad.where(x > y, 1.0, 0.0) * x,
    "mask.float() * x": lambda x, y: (x > 0).float() * x,
    "mask.double() * y": lambda x, y: (x > 0).double() * y,
    "-mask.double() * x": lambda x, y: -(x > 0).double() * x,
    "mask.to(float64) * x": lambda x, y: (y <= 0).to(symgrad.float64) * x,
    "mask.long() * x": lambda x, y: (x >= 0).long() * x,
    "x * mask (promoted)": lambda x, y: x * (y > 0),
    "mask * 2.0 * x": lambda x, y: (y > 0) * 2.0 * x,
    "(1 - mask.double()) * x": lambda x, y: (1 - (x > 0).double()) * x,
    "mask.reshape": lambda x, y: symgrad.where((x > y).reshape(2, 2), x.reshape(2, 2), 0.0).reshape(-1),
    "mask[1:] (getitem)": lambda x, y: symgrad.where((x > 0)[1:], x[:-1], y[1:]),
    "cat of masks": lambda x, y: symgrad.where(symgrad.cat([x[:2] > 0, y[2:] < 0]), x, 2 * y),
    "mask written into a float tensor": lambda x, y: _written(x > y) * x,
    "count of a mask": lambda x, y: (x > 0).float().sum() * x,
    "mean of a mask": lambda x, y: (y > 0).double().mean() * x * y,
}


def _written(mask):
    out = symgrad.zeros(*mask.shape, dtype=symgrad.float64)
    out[:] = mask
    return out


def eager(f, x, y):
    """``(value, df/dx, df/dy)`` of ``sum(f)`` and the Jacobians, run eagerly on the tape."""
    with symgrad.backward_engine("tape"):
        tx, ty = symgrad.tensor(x, requires_grad=True), symgrad.tensor(y, requires_grad=True)
        out = f(tx, ty)
        rows = []
        for k in range(out.numel()):
            grads = symgrad.autograd.grad(out.reshape(-1)[k], [tx, ty], retain_graph=True, allow_unused=True)
            rows.append([np.zeros(x.shape) if g is None else g.numpy() for g in grads])
    jac_x, jac_y = (np.stack([row[i] for row in rows]) for i in (0, 1))
    return out.detach().numpy(), jac_x, jac_y


@pytest.mark.parametrize("engine", ["symbolic", "both"])
@pytest.mark.parametrize("kind", ["grad", "value_and_grad", "jacobian"])
@pytest.mark.parametrize("name", list(MASKED))
def test_a_mask_is_recomputed_at_every_call(name, kind, engine, traces):
    f = MASKED[name]
    if kind == "jacobian":
        transform = jacobian(f, argnums=(0, 1))
    else:
        transform = {"grad": grad, "value_and_grad": value_and_grad}[kind](
            lambda x, y: f(x, y).sum(), argnums=(0, 1))
    with symgrad.backward_engine(engine):
        for x, y in CALLS:
            value, jac_x, jac_y = eager(f, x, y)
            got = transform(x, y)
            if kind == "jacobian":
                expected = (jac_x, jac_y)
            elif kind == "grad":
                expected = (jac_x.sum(0), jac_y.sum(0))
            else:
                got, expected = (got[0], *got[1]), (value.sum(), jac_x.sum(0), jac_y.sum(0))
            for g, e in zip(got, expected, strict=True):
                np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12, err_msg=f"{name} at x={x}, y={y}")
    assert len(traces) == 1, "the mask must be read at every call, without tracing again"


def _mask_set(x, y):
    m = x > 0
    m[0] = True
    return symgrad.where(m, x, y)


def _mask_scaled(x, y):
    m = (y > 0).double()
    m *= 3
    return m * x


def _mask_combined_in_place(x, y):
    m = (x > 0).double()
    m += (y > 0).double()
    return m * x * y


# in-place changes of a mask while tracing are followed like their out-of-place forms
IN_PLACE = {"m[0] = True": _mask_set, "m *= 3": _mask_scaled, "m += mask": _mask_combined_in_place}


@pytest.mark.parametrize("name", list(IN_PLACE))
def test_a_mask_changed_in_place_is_followed(name):
    f = IN_PLACE[name]
    transform = grad(lambda x, y: f(x, y).sum(), argnums=(0, 1))
    for x, y in CALLS:
        _, jac_x, jac_y = eager(f, x, y)
        for g, e in zip(transform(x, y), (jac_x.sum(0), jac_y.sum(0)), strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12, err_msg=f"{name} at x={x}, y={y}")


def _argument_set(x, k):
    k[0] = 5
    return (x * k).sum()


def _changed_under_no_grad(x, k):
    y = x * 2
    with symgrad.no_grad():
        y += 1
    return (y * x).sum()


def _detached_in_place(x, k):
    y = x * 2
    y.detach_()
    return (x * y).sum()


@pytest.mark.parametrize("f", [_argument_set, _changed_under_no_grad, _detached_in_place], ids=lambda f: f.__name__)
def test_a_traced_tensor_changed_in_place_without_a_record_raises(f):
    with pytest.raises(UntraceableError, match="made by (an in-place (setitem|add) the trace cannot record|detach_)"):
        grad(f)(np.ones(2), np.array([1, 2]))


def test_a_mask_detached_in_place_is_still_followed():
    def f(x):
        m = x > 0
        m.detach_()  # a mask has no gradient to cut: nothing changes
        return symgrad.where(m, x, -x).sum()

    df = grad(f)
    np.testing.assert_allclose(df(np.array([1.0, 2.0])), [1.0, 1.0])
    np.testing.assert_allclose(df(np.array([3.0, -4.0])), [1.0, -1.0])


# masks of integer and boolean arguments, compared with a static Python int
LABELLED = {
    "labels == k": lambda x, labels, k: symgrad.where(labels == k, x, 2 * x),
    "labels != k": lambda x, labels, k: symgrad.where(labels != k, x * x, x),
    "(labels == k).double() * x": lambda x, labels, k: (labels == k).double() * x,
    "x * labels (promoted)": lambda x, labels, k: x * labels,
    "labels.double() * x": lambda x, labels, k: labels.double() * x,
    "(labels >= k) & (x > 0)": lambda x, labels, k: symgrad.where((labels >= k) & (x > 0), x, -x),
}
LABELS = [np.array([0, 1, 2, 1]), np.array([2, 2, 0, 1]), np.array([1, 0, 1, 0])]


@pytest.mark.parametrize("engine", ["symbolic", "both"])
@pytest.mark.parametrize("name", list(LABELLED))
def test_a_mask_of_an_integer_argument_follows_each_call(name, engine):
    f = LABELLED[name]
    transform = value_and_grad(lambda x, labels, k: f(x, labels, k).sum())
    with symgrad.backward_engine(engine):
        for labels in LABELS:
            for k in (1, 2):
                value, g = transform(X, labels, k)
                with symgrad.backward_engine("tape"):
                    tx = symgrad.tensor(X, requires_grad=True)
                    out = f(tx, symgrad.tensor(labels), k).sum()
                    (expected,) = symgrad.autograd.grad(out, [tx])
                np.testing.assert_allclose(value, out.item(), rtol=1e-12)
                np.testing.assert_allclose(g, expected.numpy(), rtol=1e-12, err_msg=f"{name}, labels {labels}")


def test_a_boolean_argument_multiplied_in_is_read_at_every_call():
    df = grad(lambda x, m: (x * m).sum())
    for m in ([True, False, True], [False, True, False]):
        np.testing.assert_allclose(df(np.ones(3), np.array(m)), np.array(m, dtype=float))


def test_the_closed_form_selects_on_the_comparison():
    df = grad(lambda x: symgrad.where(x > 0, x, -x).sum())
    np.testing.assert_allclose(df(np.array([2.0, -3.0])), [1.0, -1.0])
    closed_form = str(df.closed_forms["grad_x"])
    assert "where(x > 0, 1, 0)" in closed_form and "!=" not in closed_form  # the comparison, not (x > 0) != 0


def test_a_mask_returned_as_aux_is_computed_at_every_call():
    df = grad(lambda x: ((x ** 2).sum(), x > 0), has_aux=True)
    for x in (X, -X):
        g, mask = df(x)
        np.testing.assert_array_equal(mask, x > 0)
        np.testing.assert_allclose(g, 2 * x)


def test_a_derivative_of_a_selection_composes():
    """The inner transform's closed form holds a comparison; the outer trace follows it."""
    inner = grad(lambda z: symgrad.where(z > 0, z ** 3, -z).sum())
    outer = grad(lambda x: inner(x).sum())
    for x in (np.array([1.5, -2.0]), np.array([-1.5, 2.0])):
        np.testing.assert_allclose(outer(x), np.where(x > 0, 6 * x, 0.0), rtol=1e-12)


def test_the_tape_engine_runs_a_graph_holding_a_traced_mask():
    """autograd.grad inside a traced function: the tape engine meets the comparison node
    (its inputs get no gradient) and the symbolic engine recomputes the mask per call."""
    def f(x):
        y = symgrad.where(x > 0, x ** 3, -x).sum()
        (g,) = symgrad.autograd.grad(y, [x], create_graph=True)
        return (g * x).sum()

    for engine in ("tape", "symbolic"):
        with symgrad.backward_engine(engine):
            df = grad(f)
            for x in (np.array([1.5, -2.0]), np.array([-1.5, 2.0])):
                np.testing.assert_allclose(df(x), np.where(x > 0, 9 * x ** 2, -1.0), rtol=1e-12, err_msg=engine)


def test_eager_comparisons_record_nothing():
    x = symgrad.tensor([1.0, -1.0], requires_grad=True)
    for mask in (x > 0, x == 1.0, ~(x < 0), (x > 0) & (x < 2), (x > 0) | (x < 0), (x > 0).float()):
        assert mask.grad_fn is None and not mask.requires_grad and mask._edge() is None
    y = symgrad.where(x > 0, x, -x)
    assert [edge for edge, _ in y.grad_fn.next_functions][0] is None  # as PyTorch: no node for the condition


def test_a_float_compared_with_a_python_number_keeps_its_dtype():
    """Eager and compiled code compare a float32 tensor with a Python float in float32
    (NumPy's weak scalars, PyTorch's rule), so both select the same branch."""
    x32 = np.array([0.1], dtype=np.float32)
    eager_mask = symgrad.tensor(x32) > 0.1
    assert not eager_mask.numpy()[0]
    df = grad(lambda x: symgrad.where(x > 0.1, 2 * x, x).sum())
    np.testing.assert_allclose(df(x32), [1.0])


def test_an_output_that_is_not_floating_is_refused():
    with pytest.raises(TypeError, match="dtype int64 .* convert it"):
        grad(lambda x: (x > 0).sum())(X)


# the mask ops' output decides a shape, or is turned into positions: still refused
REFUSED = {
    "x[mask]": (lambda x: x[x > 0].sum(), "boolean mask of shape \\(4,\\)"),
    "x[mask & mask]": (lambda x: x[(x > 0) & (x < 1)].sum(), "boolean mask"),
    "x[mask.long()]": (lambda x: x[(x > 0).long()].sum(), "computed from a mask"),
    "bool(mask.any())": (lambda x: x.sum() if (x > 0).any() else -x.sum(), "bool\\(\\)"),
    "if mask": (lambda x: x.sum() if (x.sum() > 0) else -x.sum(), "bool\\(\\)"),
    "float(mask.sum())": (lambda x: x.sum() * float((x > 0).sum()), "float\\(\\)"),
    "mask.numpy()": (lambda x: (x * (x > 0).numpy()).sum(), "numpy\\(\\)"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_mask_used_where_values_decide_the_program_raises(name):
    f, message = REFUSED[name]
    with pytest.raises(UntraceableError, match=message) as info:
        grad(f)(X)
    assert "test_traced_masks.py" in str(info.value)  # the user's line


def test_an_unused_argument_under_the_both_engine():
    """The eager cross-check of an argument the function does not use gives zeros."""
    with symgrad.backward_engine("both"):
        gx, gy = grad(lambda x, y: (x * 2).sum(), argnums=(0, 1))(X, Y)
    np.testing.assert_allclose(gx, 2.0)
    np.testing.assert_allclose(gy, 0.0)


@pytest.mark.parametrize("name", ["where(x gt y)", "(x > 0) & ~(y >= x)", "-mask.double() * x", "x * mask (promoted)"])
def test_the_c_backend_recomputes_a_mask(name):
    from symgrad.symbolic.codegen.backends import CompilerNotFoundError
    from symgrad.symbolic.codegen.backends.cbuild import find_compiler

    try:
        find_compiler()
    except CompilerNotFoundError as err:
        pytest.skip(f"no C compiler: {err}")
    f = MASKED[name]
    transform = grad(lambda x, y: f(x, y).sum(), argnums=(0, 1), backend="c")
    for x, y in CALLS:
        _, jac_x, jac_y = eager(f, x, y)
        for g, e in zip(transform(x, y), (jac_x.sum(0), jac_y.sum(0)), strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12, err_msg=f"{name} at x={x}, y={y}")


# Robust losses written with a comparison (issue 19 item 8: they were refused inside
# ``grad``/``hessian``, so Huber and pinball losses had to be rewritten with clamp/relu).
def _huber(r, delta=1.0):
    a = abs(r)
    return symgrad.where(a < delta, 0.5 * r ** 2, delta * (a - 0.5 * delta)).sum()


def _pinball(r, tau=0.3):
    return symgrad.where(r >= 0, tau * r, (tau - 1) * r).sum()


def _smooth_l1(r, beta=0.5):
    a = abs(r)
    return symgrad.where(a < beta, 0.5 * r ** 2 / beta, a - 0.5 * beta).sum()


ROBUST_LOSSES = {  # name -> (loss, its gradient, the diagonal of its Hessian), by hand
    "huber": (_huber, lambda r: np.where(abs(r) < 1.0, r, np.sign(r)), lambda r: (abs(r) < 1.0) * 1.0),
    "pinball": (_pinball, lambda r: np.where(r >= 0, 0.3, -0.7), lambda r: 0.0 * r),
    "smooth_l1": (_smooth_l1, lambda r: np.where(abs(r) < 0.5, r / 0.5, np.sign(r)),
                  lambda r: (abs(r) < 0.5) / 0.5),
}


@pytest.mark.parametrize("name", ROBUST_LOSSES)
def test_robust_losses_with_a_comparison_in_grad_and_hessian(name, rng, traces):
    loss, gradient, curvature = ROBUST_LOSSES[name]
    dloss, d2loss = grad(loss), symgrad.hessian(loss)
    for scale in (0.3, 3.0):  # residuals mostly inside, then mostly outside the threshold
        r = rng.normal(size=6) * scale
        np.testing.assert_allclose(dloss(r), gradient(r), rtol=1e-12)
        np.testing.assert_allclose(d2loss(r), np.diag(curvature(r)), atol=1e-12)
        rt = symgrad.tensor(r, requires_grad=True)
        loss(rt).backward()
        np.testing.assert_allclose(rt.grad.numpy(), gradient(r), rtol=1e-12)
    assert len(traces) == 2  # one per transform, whatever side of the threshold the values fall on
