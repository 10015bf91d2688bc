"""Convolution and pooling (``symgrad/nn/convolution.py``) against PyTorch.

Each row runs the same call through ``symgrad.nn.functional`` and ``torch.nn.functional``:
values, and the gradients of a random weighted sum with respect to every input, on the tape
engine and on the symbolic engine; then the traced transform against a fresh eager run at
two inputs; then the modules, and the bad arguments.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F
from symgrad import nn

torch = pytest.importorskip("torch")

ROWS = {
    "conv2d": ([(2, 3, 7, 6), (4, 3, 3, 2), (4,)], {}),
    "conv2d_stride_padding": ([(1, 2, 6, 6), (3, 2, 3, 3), (3,)], {"stride": 2, "padding": 1}),
    "conv2d_dilation": ([(2, 1, 7, 5), (2, 1, 2, 2)], {"dilation": (2, 1), "padding": (1, 0)}),
    "conv1d": ([(2, 3, 9), (4, 3, 3), (4,)], {"stride": 2, "padding": 1}),
    "max_pool2d": ([(2, 3, 6, 6)], {"kernel_size": 2}),
    "max_pool2d_padding": ([(1, 2, 5, 7)], {"kernel_size": 3, "stride": 2, "padding": 1}),
    "avg_pool2d": ([(2, 2, 6, 4)], {"kernel_size": (3, 2), "stride": (1, 2)}),
}


def _call(lib_F, row, tensors):
    name = row.split("_")[0] if row.startswith("conv") else row.replace("_padding", "")
    _, kwargs = ROWS[row]
    return getattr(lib_F, name)(*tensors, **kwargs)


def _gradients(lib, lib_F, row, arrays, weights):
    tensors = [lib.tensor(a, requires_grad=True) for a in arrays]
    out = _call(lib_F, row, tensors)
    (out * lib.tensor(weights)).sum().backward()
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


@pytest.mark.parametrize("engine", ["tape", "symbolic"])
@pytest.mark.parametrize("row", sorted(ROWS))
def test_values_and_gradients_match_torch(row, engine, rng):
    shapes, _ = ROWS[row]
    arrays = [rng.standard_normal(s) for s in shapes]
    out = _call(torch.nn.functional, row, [torch.tensor(a) for a in arrays])
    weights = rng.standard_normal(tuple(out.shape))
    expected, expected_grads = _gradients(torch, torch.nn.functional, row, arrays, weights)
    with symgrad.backward_engine(engine):
        got, got_grads = _gradients(symgrad, F, row, arrays, weights)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    for a, b in zip(got_grads, expected_grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("row", sorted(ROWS))
def test_traced_gradient_matches_a_fresh_eager_run(row, rng):
    shapes, _ = ROWS[row]
    out_shape = _call(F, row, [symgrad.tensor(rng.standard_normal(s)) for s in shapes]).shape
    weights = rng.standard_normal(out_shape)
    loss = lambda *ts: (_call(F, row, ts) * symgrad.tensor(weights)).sum()  # noqa: E731
    traced = symgrad.value_and_grad(loss, argnums=tuple(range(len(shapes))))
    for _ in range(2):
        arrays = [rng.standard_normal(s) for s in shapes]
        value, grads = traced(*arrays)
        with symgrad.backward_engine("tape"):
            tensors = [symgrad.tensor(a, requires_grad=True) for a in arrays]
            eager = loss(*tensors)
            eager.backward()
        np.testing.assert_allclose(value, eager.item(), rtol=1e-12)
        for g, t in zip(grads, tensors):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_modules_match_torch_given_the_same_parameters(rng):
    symgrad.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 2, (2, 3)),
                          nn.AvgPool2d(2, stride=1))
    reference = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                    torch.nn.Conv2d(4, 2, (2, 3)), torch.nn.AvgPool2d(2, stride=1)).double()
    reference.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    x = rng.standard_normal((3, 1, 8, 9))
    got, expected = model(symgrad.tensor(x)), reference(torch.tensor(x))
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert repr(model[0]) == "Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    bound = 1 / np.sqrt(1 * 3 * 3)  # PyTorch's initialisation bound
    assert np.abs(model[0].weight.detach().numpy()).max() <= bound


def test_conv1d_module_matches_torch(rng):
    symgrad.manual_seed(1)
    layer = nn.Conv1d(2, 3, 4, stride=2, bias=False)
    reference = torch.nn.Conv1d(2, 3, 4, stride=2, bias=False).double()
    reference.load_state_dict({k: torch.tensor(v.numpy()) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((2, 2, 11))
    np.testing.assert_allclose(layer(symgrad.tensor(x)).detach().numpy(),
                               reference(torch.tensor(x)).detach().numpy(), rtol=1e-12)


BAD = [
    (lambda: F.conv2d(symgrad.ones(1, 2, 5, 5), symgrad.ones(3, 1, 2, 2)), ValueError, "2 channels"),
    (lambda: F.conv2d(symgrad.ones(5, 5), symgrad.ones(3, 2, 2, 2)), ValueError, "4-D input"),
    (lambda: F.conv2d(symgrad.ones(1, 1, 2, 2), symgrad.ones(1, 1, 3, 3)), ValueError, "larger than"),
    (lambda: F.conv2d(symgrad.ones(1, 1, 5, 5), symgrad.ones(1, 1, 3, 3), stride=0), ValueError, "stride"),
    (lambda: F.conv2d(symgrad.ones(1, 2, 5, 5), symgrad.ones(3, 1, 3, 3), groups=2), ValueError, "groups=2"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "divisible by groups"),
    (lambda: F.conv1d(symgrad.ones(5), symgrad.ones(1, 1, 3)), ValueError, "3-D input"),
    (lambda: F.max_pool2d(symgrad.ones(1, 1, 4, 4), 2, padding=2), ValueError, "half the kernel"),
    (lambda: nn.Conv2d(1, 0, 3), ValueError, "positive integer"),
    (lambda: nn.MaxPool2d((2, 2, 2)), ValueError, "kernel_size"),
    (lambda: nn.Conv2d(1, 1, 3, device="cuda"), RuntimeError, "cuda"),
]


@pytest.mark.parametrize("call, error, words", BAD)
def test_bad_arguments_raise_naming_the_problem(call, error, words):
    with pytest.raises(error, match=words):
        call()
