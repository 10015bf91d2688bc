"""``prod``'s gradient where the product has zeros, as PyTorch's: ``ans/x`` in a slice
without zeros, the product of the others at a lone zero (0 at the rest of its slice), and 0
in a slice with two zeros or more; on both engines, through a transform, and to second
order (``create_graph``) against torch."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

torch = pytest.importorskip("torch")

SLICES = {  # each row a slice of a different kind along dim=1
    "no, one and two zeros": np.array([[1.5, -2.0, 3.0], [0.0, 2.0, 4.0], [0.0, 0.0, 5.0]]),
    "all zeros and a lone zero at the end": np.array([[0.0, 0.0, 0.0], [2.0, -1.5, 0.0], [0.5, 0.25, 4.0]]),
}


@pytest.mark.parametrize("dim", [None, 0, 1])
@pytest.mark.parametrize("engine", ["tape", "symbolic"])
@pytest.mark.parametrize("data", sorted(SLICES))
def test_gradient_at_zeros_matches_torch(data, engine, dim):
    values = SLICES[data]
    with symgrad.backward_engine(engine):
        x = symgrad.tensor(values, requires_grad=True)
        y = x.prod() if dim is None else x.prod(dim)
        (y * symgrad.tensor(np.arange(1.0, 1 + y.numel()).reshape(y.shape))).sum().backward()
    tx = torch.tensor(values, requires_grad=True)
    ty = tx.prod() if dim is None else tx.prod(dim)
    (ty * torch.arange(1.0, 1 + ty.numel(), dtype=torch.float64).reshape(ty.shape)).sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), ty.detach().numpy())
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-15, atol=0)


@pytest.mark.parametrize("data", sorted(SLICES))
def test_traced_gradient_at_zeros_matches_eager(data):
    g = symgrad.grad(lambda x: (x.prod(1) * symgrad.tensor([1.0, 2.0, 3.0])).sum())
    for values in (SLICES[data], SLICES[data][::-1].copy()):  # the second call has its zeros elsewhere
        with symgrad.backward_engine("tape"):  # a fresh eager tape run is the reference
            x = symgrad.tensor(values, requires_grad=True)
            (x.prod(1) * symgrad.tensor([1.0, 2.0, 3.0])).sum().backward()
        np.testing.assert_array_equal(g(values), x.grad.numpy())


@pytest.mark.parametrize("engine", ["tape", "symbolic"])
def test_second_derivative_matches_torch(engine, rng):
    values = rng.uniform(0.5, 2.0, size=(3, 4))
    direction = rng.standard_normal((3, 4))
    with symgrad.backward_engine(engine):
        x = symgrad.tensor(values, requires_grad=True)
        (g,) = symgrad.autograd.grad(x.prod(1).sum(), x, create_graph=True)
        (h,) = symgrad.autograd.grad((g * symgrad.tensor(direction)).sum(), x)
    tx = torch.tensor(values, requires_grad=True)
    (tg,) = torch.autograd.grad(tx.prod(1).sum(), tx, create_graph=True)
    (th,) = torch.autograd.grad((tg * torch.tensor(direction)).sum(), tx)
    np.testing.assert_allclose(h.numpy(), th.numpy(), rtol=1e-12)


def test_prod_takes_one_dim():
    with pytest.raises(TypeError, match="one int dim"):
        symgrad.ones(2, 3).prod((0, 1))
