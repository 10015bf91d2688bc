"""Views: every function PyTorch answers with a view behaves as one, or refuses.

symgrad's results are copies (``symgrad/tape/views.py``); where PyTorch returns a view,
an in-place change of the result must change the tensor it was taken from, as in
PyTorch, and a later read of a result whose origin changed in place raises rather than
showing old values.  The table runs every view-making function (and the copies made of
view ops, which must stay copies) against torch 2.13 where it is installed, and against
the values PyTorch's semantics give where it is not.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

torch = pytest.importorskip("torch") if False else None
try:
    import torch
except ImportError:  # pragma: no cover - torch is a test extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

# name -> (function of a 3x4 tensor, torch returns a view)
TAKEN = {
    "x[1]": (lambda x: x[1], True),
    "x[1:, ::2]": (lambda x: x[1:, ::2], True),
    "x[..., None, 0]": (lambda x: x[..., None, 0], True),
    "x[[0, 2]] (advanced)": (lambda x: x[[0, 2]], False),
    "x.T": (lambda x: x.T, True),
    "x.t()": (lambda x: x.t(), True),
    "x.mT": (lambda x: x.mT, True),
    "x.transpose(0, 1)": (lambda x: x.transpose(0, 1), True),
    "x.permute(1, 0)": (lambda x: x.permute(1, 0), True),
    "x.reshape(12)": (lambda x: x.reshape(12), True),
    "x.view(2, 6)": (lambda x: x.view(2, 6), True),
    "x.flatten()": (lambda x: x.flatten(), True),
    "x.unsqueeze(0)": (lambda x: x.unsqueeze(0), True),
    "x.unsqueeze(0).squeeze(0)": (lambda x: x.unsqueeze(0).squeeze(0), True),
    "x.select(1, 2)": (lambda x: x.select(1, 2), True),
    "x.narrow(1, 1, 2)": (lambda x: x.narrow(1, 1, 2), True),
    "x.unbind(0)[1]": (lambda x: x.unbind(0)[1], True),
    "x.split(2, dim=1)[1]": (lambda x: x.split(2, dim=1)[1], True),
    "x.chunk(3)[2]": (lambda x: x.chunk(3)[2], True),
    "x.movedim(0, 1)": (lambda x: x.movedim(0, 1), True),
    "x.diagonal()": (lambda x: x.diagonal(), True),
    "x.diagonal(1)": (lambda x: x.diagonal(1), True),
    "x[1:].T[0]": (lambda x: x[1:].T[0], True),
    "x.detach()[0]": (lambda x: x.detach()[0], True),
    "x[0].detach()": (lambda x: x[0].detach(), True),
    "x.flip(0)": (lambda x: x.flip(0), False),
    "x.roll(1, 0)": (lambda x: x.roll(1, 0), False),
    "x.clone()": (lambda x: x.clone(), False),
    "x.tile((2, 1))": (lambda x: x.tile((2, 1)), False),
    "x.repeat(2, 1)": (lambda x: x.repeat(2, 1), False),
    "x.diag()": (lambda x: x.diag(), False),
    "x.tril()": (lambda x: x.tril(), False),
    "x * 1": (lambda x: x * 1, False),
}


def _start(lib):
    return lib.arange(12.0).reshape(3, 4).clone()


def _inplace_then_origin(lib, take):
    x = _start(lib)
    taken = take(x)
    taken.mul_(-1)
    taken.add_(0.5)
    return x.numpy().copy(), taken.numpy().copy()


@needs_torch
@pytest.mark.parametrize("name", list(TAKEN))
def test_an_inplace_change_of_a_result_changes_its_origin_as_in_pytorch(name):
    take, _ = TAKEN[name]
    expected_origin, expected_taken = _inplace_then_origin(torch, take)
    origin, taken = _inplace_then_origin(symgrad, take)
    np.testing.assert_array_equal(taken, expected_taken)
    np.testing.assert_array_equal(origin, expected_origin)


@pytest.mark.parametrize("name", list(TAKEN))
def test_a_result_read_after_its_origin_changed_shows_the_change_or_raises(name):
    take, is_view = TAKEN[name]
    x = _start(symgrad)
    taken = take(x)
    before = taken.numpy().copy()
    x.add_(100)
    if is_view:
        with pytest.raises(RuntimeError, match="changed in place"):
            taken + 1
        with pytest.raises(RuntimeError, match="changed in place"):
            taken.numpy()
        np.testing.assert_array_equal(take(x).numpy(), before + 100)  # taken again: fresh
    else:  # a copy in PyTorch too: keeps its values
        np.testing.assert_array_equal((taken + 0).numpy(), before)


def _write_into_numpy(lib, take, hand_out):
    x = _start(lib)
    values = hand_out(take(x))
    values.reshape(-1)[0] = -7.0  # reshape(-1): a view of any array but a non-contiguous one
    return x.numpy().copy()


HANDED_OUT = {"numpy()": lambda t: t.numpy(), "numpy.asarray": np.asarray}


@pytest.mark.parametrize("hand_out", list(HANDED_OUT))
@pytest.mark.parametrize("name", list(TAKEN))
def test_a_write_into_a_results_array_changes_its_origin_as_in_pytorch_or_raises(name, hand_out):
    """PyTorch's ``x[0].numpy()`` is ``x``'s memory: a write into it changes ``x``.
    symgrad's is a copy's, so the array of a result PyTorch makes a view is read-only: the
    write raises instead of being lost."""
    take, is_view = TAKEN[name]
    x = _start(symgrad)
    values = HANDED_OUT[hand_out](take(x))
    if is_view:
        with pytest.raises(ValueError, match="read-only"):
            values[...] = 0.0
        np.testing.assert_array_equal(x.numpy(), np.arange(12.0).reshape(3, 4))
        assert np.array(take(x)).flags.writeable  # an explicit copy is anyone's to write
    elif torch is not None:  # a copy in PyTorch too: the write changes nothing else
        np.testing.assert_array_equal(_write_into_numpy(symgrad, take, HANDED_OUT[hand_out]),
                                      _write_into_numpy(torch, take, HANDED_OUT[hand_out]))


def test_a_detached_tensors_array_is_its_origins_memory_as_in_pytorch():
    x = _start(symgrad)
    x.detach().numpy()[0, 0] = -1.0
    np.asarray(x.detach())[0, 1] = -2.0
    np.testing.assert_array_equal(x.numpy()[0, :2], [-1.0, -2.0])


def test_a_result_whose_origin_is_gone_is_an_ordinary_tensor():
    row = _start(symgrad)[1]  # the 3x4 tensor is freed at once
    row.mul_(2)
    np.testing.assert_array_equal(row.numpy(), [8.0, 10.0, 12.0, 14.0])


def test_augmented_assignment_into_a_slice_changes_the_origin_once():
    x = _start(symgrad)
    x[:, 0] *= 2  # Python: t = x[:, 0]; t *= 2; x[:, 0] = t
    x[1] += 1
    np.testing.assert_array_equal(x.numpy()[:, 0], [0.0, 9.0, 16.0])
    np.testing.assert_array_equal(x.numpy()[1], [9.0, 6.0, 7.0, 8.0])


@needs_torch
@pytest.mark.parametrize("engine", ["tape", "symbolic"])
def test_gradients_through_a_write_through_are_pytorchs(engine):
    def run(lib):
        a = lib.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
        y = a * 1
        y[1:].mul_(a[:3])  # each element times its left neighbour
        y.view(2, 2)[0].add_(a[2:] ** 2)
        y.T.mul_(2)
        (y * y).sum().backward()
        return y.detach().numpy().copy(), a.grad.numpy().copy()

    with symgrad.backward_engine(engine):
        got = run(symgrad)
    expected = run(torch)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12)


def test_a_transform_sees_the_write_through():
    def f(x):
        y = x * 1
        y[1:].mul_(2)
        return (y * y).sum()

    x = np.array([1.0, 2.0, 3.0])
    value, grad = symgrad.value_and_grad(f)(x)
    assert value == 1 + 16 + 36
    np.testing.assert_array_equal(grad, [2.0, 16.0, 24.0])


REFUSED = {
    "an expanded tensor": (lambda x: x[0].expand(2, 4).mul_(2), "expanded"),
    "a view of a leaf that requires grad": (
        lambda x: symgrad.tensor([1.0, 2.0], requires_grad=True)[0:1].mul_(2), "leaf Variable"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_what_pytorch_refuses_is_refused_and_changes_nothing(name):
    change, message = REFUSED[name]
    x = _start(symgrad)
    with pytest.raises(RuntimeError, match=message):
        change(x)
    np.testing.assert_array_equal(x.numpy(), np.arange(12.0).reshape(3, 4))
