"""Tests of ``Dropout``, ``LayerNorm``, ``BatchNorm1d``, ``Embedding``, ``HuberLoss`` and
``nn.utils.clip_grad_norm_``: values, gradients, running statistics and ``state_dict``
against torch (skipped without it), dropout's statistics and seeding, both backward
engines, and the errors for bad arguments."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import symgrad
from symgrad import nn
from symgrad.nn import functional as F

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}
DTYPES = [np.float32, np.float64]


def _torch():
    return pytest.importorskip("torch")


def _copy_params(ours: nn.Module, theirs) -> None:
    """Give torch's module our module's parameter values."""
    torch = _torch()
    with torch.no_grad():
        for (name, mine), (their_name, param) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert name == their_name
            param.copy_(torch.tensor(mine.detach().numpy()))


def _compare_step(ours, theirs, x_data, upstream, dtype):
    """One forward and backward of both modules on the same input; compare output and gradients."""
    torch = _torch()
    x = symgrad.tensor(x_data, requires_grad=True)
    t = torch.tensor(x_data, requires_grad=True)
    out, t_out = ours(x), theirs(t)
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), **TOL[dtype])
    assert out.grad_fn.name() == t_out.grad_fn.name()
    out.backward(symgrad.tensor(upstream))
    t_out.backward(torch.tensor(upstream))
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), **TOL[dtype])
    for (name, param), t_param in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(param.grad.numpy(), t_param.grad.numpy(), **TOL[dtype], err_msg=name)


# ---------------------------------------------------------------------- LayerNorm
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape, normalized, kwargs", [
    ((4, 5), 5, {}), ((2, 3, 4), (3, 4), {}), ((3, 6), [6], dict(eps=1e-2)),
    ((2, 3), 3, dict(elementwise_affine=False)), ((2, 3), 3, dict(bias=False)),
])
def test_layer_norm_matches_torch(shape, normalized, kwargs, dtype, rng):
    torch = _torch()
    ours = nn.LayerNorm(normalized, dtype=dtype, **kwargs)
    theirs = torch.nn.LayerNorm(normalized, dtype=getattr(torch, np.dtype(dtype).name), **kwargs)
    for param in ours.parameters():  # away from the ones/zeros start, so that the affine part shows
        with symgrad.no_grad():
            param.copy_(symgrad.tensor(rng.standard_normal(param.shape).astype(dtype)))
    _copy_params(ours, theirs)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    _compare_step(ours, theirs, x, rng.standard_normal(shape).astype(dtype), dtype)


# ---------------------------------------------------------------------- BatchNorm1d
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("shape, kwargs", [
    ((8, 3), {}), ((4, 3, 5), {}), ((6, 3), dict(momentum=0.3, eps=1e-3)), ((6, 3), dict(momentum=None)),
    ((6, 3), dict(affine=False)), ((6, 3), dict(track_running_stats=False)),
])
def test_batch_norm_matches_torch_over_train_and_eval_steps(shape, kwargs, dtype, rng):
    torch = _torch()
    ours = nn.BatchNorm1d(shape[1], dtype=dtype, **kwargs)
    theirs = torch.nn.BatchNorm1d(shape[1], dtype=getattr(torch, np.dtype(dtype).name), **kwargs)
    for param in ours.parameters():
        with symgrad.no_grad():
            param.copy_(symgrad.tensor(rng.uniform(0.5, 2.0, param.shape).astype(dtype)))
    _copy_params(ours, theirs)
    assert repr(ours) == repr(theirs)
    for step in range(4):
        if step == 3:
            ours.eval(), theirs.eval()
        x = (rng.standard_normal(shape) * 2 + step).astype(dtype)
        _compare_step(ours, theirs, x, rng.standard_normal(shape).astype(dtype), dtype)
        state, t_state = ours.state_dict(), theirs.state_dict()
        assert list(state) == list(t_state)
        for key in state:
            np.testing.assert_allclose(state[key].detach().numpy(), t_state[key].detach().numpy(), **TOL[dtype],
                                       err_msg=f"{key} after step {step}")


def test_batch_norm_state_dict_round_trip_and_torch_loads_it(rng):
    torch = _torch()
    ours = nn.BatchNorm1d(3)
    for _ in range(2):
        ours(symgrad.tensor(rng.standard_normal((5, 3))))
    fresh = nn.BatchNorm1d(3)
    fresh.load_state_dict(ours.state_dict())
    x = symgrad.tensor(rng.standard_normal((4, 3)))
    np.testing.assert_array_equal(fresh.eval()(x).detach().numpy(), ours.eval()(x).detach().numpy())
    assert int(fresh.num_batches_tracked) == 2
    theirs = torch.nn.BatchNorm1d(3, dtype=torch.float64)
    theirs.load_state_dict({key: torch.tensor(value.detach().numpy()) for key, value in ours.state_dict().items()})
    np.testing.assert_allclose(theirs.eval()(torch.tensor(x.numpy())).detach().numpy(),
                               ours(x).detach().numpy(), rtol=1e-12)


def test_batch_norm_eval_uses_running_stats_and_has_no_side_effects(rng):
    bn = nn.BatchNorm1d(2).eval()
    x = symgrad.tensor(rng.standard_normal((3, 2)))
    out = bn(x)
    eps = 1e-5
    np.testing.assert_allclose(out.detach().numpy(), x.numpy() / math.sqrt(1 + eps), rtol=1e-12)
    assert bn.running_mean.tolist() == [0.0, 0.0] and int(bn.num_batches_tracked) == 0


@pytest.mark.parametrize("call, error, message", [
    (lambda bn: bn(symgrad.ones(1, 3)), ValueError, r"more than 1 value per channel when training, got input size \[1, 3\]"),
    (lambda bn: bn(symgrad.ones(4, 2)), ValueError, "input has 2 channels"),
    (lambda bn: bn(symgrad.ones(2, 3, 4, 5)), ValueError, "expected 2D or 3D input"),
])
def test_batch_norm_bad_input_raises_and_changes_no_statistic(call, error, message):
    bn = nn.BatchNorm1d(3)
    with pytest.raises(error, match=message):
        call(bn)
    assert bn.running_mean.tolist() == [0.0] * 3 and bn.running_var.tolist() == [1.0] * 3
    assert int(bn.num_batches_tracked) == 0


@pytest.mark.parametrize("call, error, message", [
    (lambda: nn.BatchNorm1d(3, momentum=1.5), ValueError, "momentum must be in"),
    (lambda: nn.BatchNorm1d(-1), ValueError, "non-negative integer num_features"),
    (lambda: nn.LayerNorm((2, 2.5)), ValueError, "non-negative integer normalized_shape"),
    (lambda: nn.LayerNorm(3)(symgrad.ones(2, 4)), ValueError, r"does not end in normalized_shape \[3\]"),
    (lambda: F.layer_norm(symgrad.ones(2, 3), 3, weight=symgrad.ones(2)), ValueError,
     r"weight must have shape \[3\], got \[2\]"),
    (lambda: F.batch_norm(symgrad.ones(2, 3), None, None), ValueError, "needed when training=False"),
    (lambda: F.batch_norm(symgrad.ones(3), None, None, training=True), ValueError, r"shape \(N, C\)"),
    (lambda: F.batch_norm(symgrad.ones(4, 3), symgrad.zeros(3), symgrad.ones(3), training=True, momentum=None),
     TypeError, "momentum must be a number, got NoneType"),
    (lambda: F.layer_norm(symgrad.ones(3), (2, 3)), ValueError, r"does not end in normalized_shape \[2, 3\]"),
])
def test_normalization_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------------- Embedding
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(padding_idx, rng):
    torch = _torch()
    ours = nn.Embedding(6, 3, padding_idx=padding_idx)
    theirs = torch.nn.Embedding(6, 3, padding_idx=padding_idx, dtype=torch.float64)
    _copy_params(ours, theirs)
    assert repr(ours) == repr(theirs)
    indices = np.array([[0, 2, 5, 2], [5, 1, 1, 3]])
    upstream = rng.standard_normal((2, 4, 3))
    out, t_out = ours(symgrad.tensor(indices)), theirs(torch.tensor(indices))
    np.testing.assert_array_equal(out.detach().numpy(), t_out.detach().numpy())
    assert out.grad_fn.name() == t_out.grad_fn.name()
    out.backward(symgrad.tensor(upstream))
    t_out.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-14)


def test_embedding_init_padding_row_and_seed():
    symgrad.manual_seed(3)
    first = nn.Embedding(50, 4, padding_idx=1)
    symgrad.manual_seed(3)
    second = nn.Embedding(50, 4, padding_idx=1)
    np.testing.assert_array_equal(first.weight.detach().numpy(), second.weight.detach().numpy())
    assert first.weight[1].tolist() == [0.0] * 4
    values = np.delete(first.weight.detach().numpy(), 1, axis=0)
    assert abs(values.mean()) < 0.3 and 0.7 < values.std() < 1.3  # standard normal, as torch's


def test_embedding_from_pretrained_shares_and_freezes():
    torch = _torch()
    table = symgrad.tensor([[1.0, 2.0], [3.0, 4.0]])
    emb = nn.Embedding.from_pretrained(table)
    t_emb = torch.nn.Embedding.from_pretrained(torch.tensor(table.numpy()))
    assert emb.weight.requires_grad == t_emb.weight.requires_grad is False
    table[0, 0] = 9.0
    assert emb(symgrad.tensor([0])).tolist() == [[9.0, 2.0]]
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


@pytest.mark.parametrize("call, error, message", [
    (lambda emb: emb(symgrad.tensor([0, 4])), IndexError, "index 4 is out of range for 4 embeddings"),
    (lambda emb: emb(symgrad.tensor([0.0])), TypeError, "indices must have an integer dtype"),
    (lambda emb: nn.Embedding(4, 2, padding_idx=4), ValueError, "padding_idx must be within num_embeddings"),
    (lambda emb: nn.Embedding(4, 2, max_norm=1.0), NotImplementedError, "max_norm=1.0"),
    (lambda emb: nn.Embedding.from_pretrained(symgrad.ones(3)), ValueError, "expected to be 2-dimensional"),
])
def test_embedding_errors(call, error, message):
    emb = nn.Embedding(4, 2)
    with pytest.raises(error, match=message):
        call(emb)


# ---------------------------------------------------------------------- Dropout
def test_dropout_zeroes_about_p_and_scales_the_rest():
    symgrad.manual_seed(0)
    p = 0.3
    x = symgrad.full((200, 100), 2.0, requires_grad=True)
    out = nn.Dropout(p)(x)
    kept = out.detach().numpy() != 0
    assert abs(1 - kept.mean() - p) < 0.01  # 20000 draws: the standard error is 0.003
    np.testing.assert_allclose(out.detach().numpy()[kept], 2.0 / (1 - p), rtol=1e-15)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / (1 - p), rtol=1e-15)
    assert out.grad_fn.name() == "NativeDropoutBackward0"


def test_dropout_is_repeatable_under_manual_seed_and_differs_without():
    symgrad.manual_seed(5)
    first = F.dropout(symgrad.ones(100))
    second = F.dropout(symgrad.ones(100))
    symgrad.manual_seed(5)
    assert F.dropout(symgrad.ones(100)).equal(first)
    assert not first.equal(second)


def test_dropout_identity_in_eval_and_edge_probabilities():
    x = symgrad.randn(10)
    drop = nn.Dropout(0.9)
    assert drop.eval()(x) is x and drop.train()(x) is not x
    assert F.dropout(x, p=1.0).tolist() == [0.0] * 10
    assert F.dropout(x, p=0.0).equal(x)


@pytest.mark.parametrize("call, error, message", [
    (lambda: nn.Dropout(-0.1), ValueError, "between 0 and 1, but got -0.1"),
    (lambda: nn.Dropout("0.5"), TypeError, "must be a number, got str"),
    (lambda: nn.Dropout(0.5, inplace=True), NotImplementedError, "inplace=True"),
    (lambda: F.dropout(symgrad.ones(2), 1.5, training=False), ValueError, "but got 1.5"),
])
def test_dropout_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_dropout_in_a_traced_function_raises_and_eval_traces():
    pytest.importorskip("sympy")
    drop = nn.Dropout(0.5)
    with pytest.raises(symgrad.UntraceableError, match="dropout in training mode inside a traced function"):
        symgrad.grad(lambda x: drop(x).sum())(np.ones(3))
    drop.eval()
    np.testing.assert_array_equal(symgrad.grad(lambda x: (drop(x) * x).sum())(np.arange(3.0)), [0.0, 2.0, 4.0])


# ---------------------------------------------------------------------- HuberLoss
def test_huber_loss_module_and_torch_agree_at_the_delta_boundary():
    torch = _torch()
    x_data = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    x, t = symgrad.tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    loss, t_loss = nn.HuberLoss(reduction="sum")(x, symgrad.zeros(7)), torch.nn.HuberLoss(reduction="sum")(
        t, torch.zeros(7, dtype=torch.float64))
    loss.backward(), t_loss.backward()
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-15)
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize("call, message", [
    (lambda: nn.HuberLoss(delta=0.0), "delta must be positive"),
    (lambda: F.huber_loss(symgrad.ones(2), symgrad.ones(2), delta=-1.0), "non-positive values for delta"),
    (lambda: F.huber_loss(symgrad.ones(2), symgrad.ones(3)), r"target shape \[3\] differs"),
])
def test_huber_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------------- both engines
def test_new_layers_differentiate_the_same_under_both_engines(rng):
    pytest.importorskip("sympy")
    symgrad.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))
    emb = nn.Embedding(5, 3, padding_idx=0)
    x = symgrad.tensor(rng.standard_normal((6, 3)))
    indices = symgrad.tensor([[0, 1], [2, 0], [4, 4], [3, 1], [0, 0], [2, 2]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with symgrad.backward_engine("both"):
            out = model(x + emb(indices).sum(dim=1))
            F.huber_loss(out, symgrad.zeros(6, 2), delta=0.5).backward()
    assert emb.weight.grad[0].tolist() == [0.0] * 3
    assert all(param.grad is not None for param in model.parameters())


# ---------------------------------------------------------------------- clip_grad_norm_
@pytest.mark.parametrize("max_norm, norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, 1.0), (0.2, math.inf), (1.0, 3.0)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type, rng):
    torch = _torch()
    grads = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    ours = [symgrad.zeros(g.shape, requires_grad=True) for g in grads] + [symgrad.zeros(2, requires_grad=True)]
    theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads] + [
        torch.zeros(2, dtype=torch.float64, requires_grad=True)]
    for mine, their, g in zip(ours, theirs, grads):
        mine.grad, their.grad = symgrad.tensor(g), torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert total.item() == pytest.approx(t_total.item(), rel=1e-12)
    for mine, their in zip(ours[:2], theirs[:2]):
        np.testing.assert_allclose(mine.grad.numpy(), their.grad.numpy(), rtol=1e-12)
    assert ours[2].grad is None


def test_clip_grad_norm_nonfinite_and_bad_arguments():
    w = symgrad.zeros(2, requires_grad=True)
    w.grad = symgrad.tensor([math.inf, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(w, 1.0, error_if_nonfinite=True)
    assert w.grad.tolist() == [math.inf, 1.0]
    with pytest.raises(ValueError, match="norm_type must be positive"):
        nn.utils.clip_grad_norm_(w, 1.0, norm_type=0)
    with pytest.raises(TypeError, match="parameter 0 is a ndarray"):
        nn.utils.clip_grad_norm_([np.ones(2)], 1.0)
    assert nn.utils.clip_grad_norm_([symgrad.zeros(2, requires_grad=True)], 1.0).item() == 0.0


def test_batch_norm_in_training_refuses_a_trace_and_traces_in_eval(rng):
    pytest.importorskip("sympy")
    bn = nn.BatchNorm1d(2, affine=False)
    with pytest.raises(symgrad.UntraceableError, match="BatchNorm's update of its running statistics"):
        symgrad.grad(lambda x: bn(x).sum())(rng.standard_normal((4, 2)))
    assert int(bn.num_batches_tracked) == 0
    bn.eval()
    x = rng.standard_normal((4, 2))
    np.testing.assert_allclose(symgrad.grad(lambda x: (bn(x) ** 2).sum())(x), 2 * x / (1 + 1e-5), rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: nn.Linear(2, 3, device="cuda"), lambda: nn.LayerNorm(3, device="cuda"),
    lambda: nn.BatchNorm1d(3, device="cuda:0"), lambda: nn.Embedding(3, 2, device="mps"),
])
def test_layers_refuse_other_devices(make):
    with pytest.raises(RuntimeError, match="symgrad computes on the CPU only"):
        make()
    nn.Linear(2, 3, device="cpu")
