"""The values of ``sort`` and ``topk`` inside transforms, against ``torch.func``.

Their values are the op ``sort_values`` (its adjoint the op ``sort_by``), which sorts at
every call, so a traced function follows each call's order instead of freezing the first.
Each function below is compared with PyTorch's on two inputs ordered differently, through
``grad``, ``jacobian``, ``jvp`` and (smooth away from ties) ``hessian``; at ties the
gradient is the one of ``torch.sort(stable=True)``'s order.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

torch = pytest.importorskip("torch")
func = pytest.importorskip("torch.func")

WEIGHTS = np.linspace(0.5, 2.0, 12).reshape(3, 4)


def _weights(lib, shape):
    return lib.tensor(WEIGHTS[tuple(slice(n) for n in shape)], dtype=lib.float64)


FUNCTIONS = {  # name -> (lib, x) -> a tensor; x has shape (3, 4)
    "sort of sin, descending": lambda L, x: L.sort(L.sin(x), dim=-1, descending=True).values ** 2 * _weights(L, (3, 4)),
    "sort along dim 0, stable": lambda L, x: L.sort(x * x, dim=0, stable=True).values * _weights(L, (3, 4)),
    "topk largest": lambda L, x: L.topk(L.tanh(x), 2, dim=1).values ** 3 * _weights(L, (3, 2)),
    "topk smallest along dim 0": lambda L, x: L.exp(L.topk(x, 1, dim=0, largest=False).values) * _weights(L, (1, 4)),
}


def _symgrad_f(name):
    return lambda x: FUNCTIONS[name](symgrad, x)


def _torch_f(name):
    return lambda x: FUNCTIONS[name](torch, x)


def _points(rng):
    x = rng.standard_normal((3, 4))
    return [x, x[::-1, ::-1].copy() * 1.5]  # the second orders every slice differently


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_grad_jacobian_jvp_and_hessian_match_torch_func(name, rng):
    f, g = _symgrad_f(name), _torch_f(name)
    grad = symgrad.grad(lambda x: f(x).sum())
    jacobian = symgrad.jacobian(f)
    hessian = symgrad.hessian(lambda x: f(x).sum())
    for x in _points(rng):  # one transform, two calls: the order is not frozen
        t = torch.tensor(x)
        np.testing.assert_allclose(grad(x), func.grad(lambda t: g(t).sum())(t).numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jacobian(x), func.jacrev(g)(t).numpy(), rtol=1e-12, atol=1e-12)
        tangent = rng.standard_normal(x.shape)
        value, out_tangent = symgrad.jvp(f, (x,), (tangent,))
        expected_value, expected_tangent = func.jvp(g, (t,), (torch.tensor(tangent),))
        np.testing.assert_allclose(value, expected_value.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out_tangent, expected_tangent.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(hessian(x), func.hessian(lambda t: g(t).sum())(t).numpy(), rtol=1e-10,
                                   atol=1e-12)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dim", [0, 1])
def test_gradient_at_ties_is_torchs_stable_sort(dim, descending):
    x = np.array([[2.0, 1.0, 2.0, 1.0], [0.0, 0.0, 0.0, 3.0], [1.0, 2.0, 2.0, 1.0]])
    weights = np.arange(1.0, 13.0).reshape(3, 4)

    def f(L, x):
        return (L.sort(x, dim=dim, descending=descending, stable=True).values * L.tensor(weights)).sum()

    expected = func.grad(lambda t: f(torch, t))(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(symgrad.grad(lambda x: f(symgrad, x))(x), expected)
    for engine in ["tape", "symbolic"]:
        with symgrad.backward_engine(engine):
            t = symgrad.tensor(x, requires_grad=True)
            f(symgrad, t).backward()
        np.testing.assert_array_equal(t.grad.numpy(), expected, err_msg=engine)


def test_closed_form_names_the_sort_and_its_adjoint():
    x = symgrad.tensor(np.array([3.0, 1.0, 2.0]), requires_grad=True, name="x")
    with symgrad.backward_engine("symbolic"):
        y = (symgrad.sort(x).values * symgrad.tensor([1.0, 2.0, 3.0])).sum()
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 1.0, 2.0])
    assert str(y.expr) == "sum(array((1.0, 2.0, 3.0))*sort_values(x, dim=0))"
    assert str(symgrad.symbolic.diff(y, x)) == "sort_by(array((1.0, 2.0, 3.0)), x, dim=0, inverse=True)"


def test_indices_are_still_refused_inside_a_transform():
    f = symgrad.grad(lambda x: (x * symgrad.sort(x).indices).sum())
    with pytest.raises(symgrad.UntraceableError, match="sort"):
        f(np.array([3.0, 1.0, 2.0]))


@pytest.mark.parametrize("values", [[1.0, float("nan"), 2.0, 2.0, 1.0], [[3, 1, 3], [2, 2, 0]], [True, False, True]])
@pytest.mark.parametrize("descending", [False, True])
def test_order_of_nan_integers_and_booleans_is_torchs(values, descending):
    """Descending sorts without negating: NaN first (as PyTorch), booleans and integers sort."""
    got = symgrad.sort(symgrad.tensor(values), descending=descending, stable=True)
    expected = torch.sort(torch.tensor(values), descending=descending, stable=True)
    np.testing.assert_array_equal(got.values.numpy(), expected.values.numpy())
    np.testing.assert_array_equal(got.indices.numpy(), expected.indices.numpy())
