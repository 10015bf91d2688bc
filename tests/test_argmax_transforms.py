"""``argmax``, ``argmin`` (ops without derivative) and ``count_nonzero`` inside transforms.

They are recorded by a trace like masks and recomputed at every call, so each transform
below is called at several points where the positions (and counts) differ, and compared
with a fresh eager tape run at each point: a position frozen at the first call would pass
at the first point only.  Ties give the first position, a NaN is the extremum (its first
position), as in PyTorch; the eager values are compared with PyTorch's (skipped without it).
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

SHAPE = (3, 4)
TIES = np.array([[1.0, 3.0, 3.0, -1.0], [2.0, 2.0, -1.0, -1.0], [0.5, 0.5, 0.5, 0.5]])
NAN = np.array([[1.0, np.nan, 3.0, np.nan], [np.nan, 2.0, -1.0, 1.0], [0.5, -0.5, 0.25, 2.0]])

PROGRAMS = {  # name -> (lib, x) -> a tensor, written so that symgrad and torch both run it
    "x times its flat argmax": lambda L, x: x * x.argmax(),
    "sin(x) times argmin along dim 0, kept": lambda L, x: L.sin(x) * x.argmin(0, keepdim=True),
    "x times the flat argmax, all dims kept": lambda L, x: x * x.argmax(keepdim=True),
    "row sums times argmax of tanh along dim 1": lambda L, x: x.sum(1) * L.tanh(x).argmax(1),
    "argmin along -1 weighs exp": lambda L, x: L.exp(x) * x.argmin(-1, keepdim=True) + x * x,
    "free functions and count_nonzero": lambda L, x: (x * L.argmax(x * x, 1).unsqueeze(1)
                                                     + x * L.count_nonzero(L.relu(x), 0)),
}
SPECIAL_POINTS = {"ties": TIES, "NaN": NAN}


def _points(rng) -> list[np.ndarray]:
    """Points where the positions differ: random ones, and one with every slice reversed."""
    x = rng.standard_normal(SHAPE)
    return [x, x[::-1, ::-1].copy() * 1.5, rng.standard_normal(SHAPE) * 2.0, TIES, NAN]


def _eager(program, x):
    """The value, the Jacobian and the Hessian of the sum by a fresh eager run of the tape."""
    t = symgrad.tensor(x, requires_grad=True)
    with symgrad.backward_engine("tape"):
        out = program(symgrad, t)
        rows = []
        for k in range(out.numel()):
            seed = np.zeros(out.numel())
            seed[k] = 1.0
            (g,) = symgrad.autograd.grad(out, [t], grad_outputs=symgrad.tensor(seed.reshape(out.shape)),
                                         retain_graph=True, allow_unused=True)
            rows.append(np.zeros(x.shape) if g is None else g.numpy())
        (gradient,) = symgrad.autograd.grad(out.sum(), [t], create_graph=True)
        flat = gradient.reshape(-1)
        hessian = []
        for k in range(flat.numel()):
            (h,) = symgrad.autograd.grad(flat[k], [t], retain_graph=True, allow_unused=True) \
                if flat.requires_grad else (None,)
            hessian.append(np.zeros(x.shape) if h is None else h.numpy())
    jacobian = np.stack(rows).reshape(out.shape + x.shape)
    return out.detach().numpy(), jacobian, np.stack(hessian).reshape(x.shape + x.shape)


def _close(got, expected, what):
    np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(expected, dtype=float), rtol=1e-12,
                               atol=1e-12, equal_nan=True, err_msg=what)


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_every_transform_recomputes_the_positions_at_every_call(name, rng):
    def f(x):
        return PROGRAMS[name](symgrad, x)

    grad = symgrad.grad(lambda x: f(x).sum())
    value_and_grad = symgrad.value_and_grad(lambda x: f(x).sum())
    jacobian = symgrad.jacobian(f)
    hessian = symgrad.hessian(lambda x: f(x).sum())
    points = _points(rng)
    for x in points:  # one transform of each kind, called at every point
        value, jac, hess = _eager(PROGRAMS[name], x)
        gradient = jac.reshape((-1,) + x.shape).sum(0)
        _close(grad(x), gradient, f"grad at\n{x}")
        got_value, got_gradient = value_and_grad(x)
        _close(got_value, value.sum(), f"value_and_grad's value at\n{x}")
        _close(got_gradient, gradient, f"value_and_grad at\n{x}")
        _close(jacobian(x), jac, f"jacobian at\n{x}")
        if np.isnan(x).any():
            # at a NaN, 0 * NaN terms make the Jacobian's rows NaN (reverse mode) where forward
            # mode (jvp) and the Hessian's zero blocks give numbers: nothing to compare there
            continue
        tangent = rng.standard_normal(x.shape)
        got_value, got_tangent = symgrad.jvp(f, (x,), (tangent,))
        _close(got_value, value, f"jvp's value at\n{x}")
        _close(got_tangent, np.tensordot(jac, tangent, axes=x.ndim), f"jvp at\n{x}")
        _close(hessian(x), hess, f"hessian at\n{x}")
    # the positions differ between the points: a transform that froze the first point's fails
    assert len({_positions(x) for x in points}) == len(points)


def _positions(x) -> tuple:
    """Positions at ``x``, computed eagerly (flat argmax, argmin along 0, argmax along 1)."""
    t = symgrad.tensor(x)
    return (t.argmax().item(), *t.argmin(0).tolist(), *t.argmax(1).tolist())


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_values_and_gradients_are_torchs(name, rng):
    torch = pytest.importorskip("torch")
    f = symgrad.value_and_grad(lambda x: PROGRAMS[name](symgrad, x).sum())
    for x in _points(rng):
        t = torch.tensor(x, requires_grad=True)
        out = PROGRAMS[name](torch, t).sum()
        out.backward()
        value, gradient = f(x)
        _close(value, out.item(), f"value at\n{x}")
        _close(gradient, t.grad.numpy(), f"gradient at\n{x}")


@pytest.mark.parametrize("attrs", [{}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"dim": -1, "keepdim": True},
                                   {"keepdim": True}])
@pytest.mark.parametrize("method", ["argmax", "argmin"])
@pytest.mark.parametrize("point", list(SPECIAL_POINTS))
def test_positions_at_ties_and_nan_are_torchs(method, attrs, point):
    """The first of tied extremes; a NaN is the extremum (the first NaN); int64; torch's
    shapes, also ``keepdim=True`` without a dim (every dim kept with size 1)."""
    torch = pytest.importorskip("torch")
    x = SPECIAL_POINTS[point]
    expected = getattr(torch.tensor(x), method)(**attrs).numpy()
    eager = getattr(symgrad.tensor(x), method)(**attrs)
    assert eager.dtype == np.int64 and eager.shape == expected.shape
    np.testing.assert_array_equal(eager.numpy(), expected)
    # traced: the positions as the aux output of a transform (computed by its compiled code)
    (_, traced), _ = symgrad.value_and_grad(lambda x: ((x * x).sum(), getattr(x, method)(**attrs)), has_aux=True)(x)
    assert traced.dtype == np.int64 and traced.shape == expected.shape
    np.testing.assert_array_equal(traced, expected)


def test_accuracy_as_aux_follows_each_call(rng):
    """The pattern ``(logits.argmax(1) == y).float().mean()`` as the aux output of a training
    step, at several points where the predictions differ."""
    def loss_and_accuracy(logits, y):
        loss = symgrad.nn.functional.cross_entropy(logits, y)
        return loss, (logits.argmax(1) == y).float().mean()

    step = symgrad.value_and_grad(loss_and_accuracy, has_aux=True)
    y = np.array([0, 2, 1, 3, 2])
    accuracies = set()
    for logits in [rng.standard_normal((5, 4)) for _ in range(4)] + [np.eye(5, 4)[[0, 2, 1, 3, 2]] * 3.0]:
        (loss, accuracy), gradient = step(logits, y)
        t = symgrad.tensor(logits, requires_grad=True)
        expected_loss, expected_accuracy = loss_and_accuracy(t, symgrad.tensor(y))
        expected_loss.backward()
        _close(loss, expected_loss.item(), "loss")
        assert accuracy.dtype == np.float32 and accuracy == expected_accuracy.item()
        _close(gradient, t.grad.numpy(), "gradient")
        accuracies.add(float(accuracy))
    assert len(accuracies) > 1 and 1.0 in accuracies  # the last point predicts every label


def test_numpy_argmax_on_a_tensor_is_the_op_inside_a_transform():
    f = symgrad.grad(lambda x: (x * np.argmax(x, axis=1, keepdims=True)).sum())
    for x in [np.array([[1.0, 3.0, 2.0], [4.0, 0.0, 1.0]]), np.array([[3.0, 1.0, 2.0], [0.0, 0.0, 5.0]])]:
        np.testing.assert_array_equal(f(x), np.broadcast_to(np.argmax(x, axis=1, keepdims=True), x.shape))


def test_closed_form_names_the_position_and_its_derivative_is_the_weight():
    x = symgrad.tensor(np.array([3.0, 1.0, 2.0]), requires_grad=True, name="x")
    grad = symgrad.grad(lambda x: (x * x.argmin()).sum())
    np.testing.assert_array_equal(grad(x.detach().numpy()), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(grad(np.array([3.0, 2.0, 1.0])), [2.0, 2.0, 2.0])
    with symgrad.backward_engine("symbolic"):  # eagerly, the position is a number of this graph
        (x * x.argmin()).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])
    from symgrad.symbolic.forms.structural import structural_class
    from symgrad.symbolic.core.symbols import ArrayVar
    from symgrad.symbolic import vjp_expr

    v = ArrayVar("v", (3,))
    position = structural_class("argmin").of(v, dim=None, keepdim=False)
    assert str(position) == "argmin(v)"
    assert vjp_expr(position * v, v, ArrayVar("g", (3,))) == ArrayVar("g", (3,)) * position


@pytest.mark.parametrize("call, error, words", [
    (lambda x: x.argmax(dim=(0, 1)), TypeError, "one int dim"),
    (lambda x: x.argmax(5), IndexError, "out of range"),
    (lambda x: symgrad.zeros(0).argmax(), ValueError, "empty"),
    (lambda x: symgrad.zeros(2, 0).argmin(1), ValueError, "size 0"),
    (lambda x: (x > 0).argmax(), TypeError, "boolean"),
])
def test_bad_calls_are_refused_naming_the_problem(call, error, words):
    with pytest.raises(error, match=words):
        call(symgrad.tensor(TIES))
