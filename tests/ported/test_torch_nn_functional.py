"""``symgrad.nn.functional`` against ``torch.nn.functional``, ported from PyTorch's own tests.

Origin: the argument spaces PyTorch's tests sample for ``nn.functional.*``
(``sample_inputs_*`` / ``reference_inputs_*`` in
torch/testing/_internal/common_methods_invocations.py, test/nn/test_convolution.py,
test/nn/test_pooling.py, test/test_nn.py's loss and BatchNorm tests).  The cases are our
own; each is run through symgrad (both backward engines, and ``symgrad.value_and_grad``)
and through torch 2.x on the same float64 inputs, and value, shape, dtype and every input
gradient must agree.

Deliberate differences (not compared; each has its own test of symgrad's behaviour):

- ``return_indices`` of ``max_pool2d``: not accepted (``TypeError`` naming it).
- ``pad`` modes other than ``"constant"``: ``NotImplementedError`` naming the mode.
- ``embedding``'s ``max_norm``, ``scale_grad_by_freq``, ``sparse``: ``NotImplementedError``.
- ``mse_loss``/``l1_loss``/``huber_loss`` with a target of another shape: symgrad raises where
  torch warns and broadcasts.
- A per-class ``weight`` (nll_loss, cross_entropy, binary_cross_entropy*) that requires grad:
  torch refuses it; symgrad differentiates it (checked against torch's written-out formula).
- ``binary_cross_entropy`` where ``log`` is clamped (input 0, 1, or below ``exp(-100)``):
  symgrad's gradient is the clamped loss's (0), torch's hand rule gives ``(x - y) / 1e-12``.
- Not offered by symgrad.nn.functional, so not compared: ``smooth_l1_loss`` (``huber_loss``
  is; ``smooth_l1(beta) = huber(delta=beta) / beta``), ``hardtanh``, ``relu6``, ``selu``,
  ``celu``, ``instance_norm``, ``group_norm``, ``conv3d``, ``conv_transpose*``, ``max_pool1d``,
  ``avg_pool1d``, adaptive pooling, ``interpolate``.
- Mixed float32/float64 arguments: symgrad promotes (NumPy's rule) where torch refuses, and
  ``huber_loss(float32, float64)`` is float64 where torch keeps float32.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
from symgrad import nn
from symgrad.nn import functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RTOL, ATOL = 1e-10, 1e-12
ENGINES = ("tape", "symbolic")


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(sum(map(ord, name)))


class Call:
    """One call compared with torch: ``function(*args, **options)`` in both libraries.

    ``args`` are NumPy arrays; those flagged in ``differentiable`` get ``requires_grad``.
    ``function`` names the function of both libraries, or is a pair (symgrad's, torch's)
    of callables taking the same arguments.
    """

    def __init__(self, name, function, args, differentiable, **options):
        self.name, self.args, self.differentiable, self.options = name, args, differentiable, options
        if isinstance(function, str):
            self.function, self.torch_function = getattr(F, function), getattr(TF, function)
        else:
            self.function, self.torch_function = function

    def __repr__(self) -> str:
        return self.name


def _torch_result(call: Call):
    tensors = [torch.tensor(a, requires_grad=d) for a, d in zip(call.args, call.differentiable)]
    out = call.torch_function(*tensors, **call.options)
    seed = _rng(call.name + "seed").standard_normal(tuple(out.shape))
    wrt = [t for t in tensors if t.requires_grad]
    grads = torch.autograd.grad(out, wrt, torch.tensor(seed), allow_unused=True) if wrt else ()
    grads = [np.zeros(t.shape) if g is None else g.numpy() for t, g in zip(wrt, grads)]
    return out.detach().numpy(), str(out.dtype).replace("torch.", ""), seed, grads


def _check_call(call: Call, engine: str) -> None:
    expected, dtype, seed, expected_grads = _torch_result(call)
    tensors = [symgrad.tensor(a, requires_grad=d) for a, d in zip(call.args, call.differentiable)]
    with symgrad.backward_engine(engine):
        out = call.function(*tensors, **call.options)
        assert out.shape == expected.shape, call.name
        assert str(out.dtype).replace("symgrad.", "") == dtype, call.name
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=RTOL, atol=ATOL, err_msg=call.name)
        if expected_grads:
            out.backward(symgrad.tensor(seed))
    for i, (t, g) in enumerate(zip([t for t in tensors if t.requires_grad], expected_grads)):
        got = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
        np.testing.assert_allclose(got, g, rtol=1e-9, atol=1e-11, err_msg=f"{call.name} grad {i} ({engine})")


def _check_transform(call: Call) -> None:
    """``symgrad.value_and_grad`` of ``sum(out * seed)`` against torch."""
    expected, _, seed, expected_grads = _torch_result(call)
    argnums = tuple(i for i, d in enumerate(call.differentiable) if d)
    def scalar(*tensors):
        return (call.function(*tensors, **call.options) * symgrad.tensor(seed)).sum()

    value, grads = symgrad.value_and_grad(scalar, argnums=argnums)(*[symgrad.tensor(a) for a in call.args])
    np.testing.assert_allclose(float(value), float((expected * seed).sum()), rtol=RTOL, atol=ATOL)
    for got, g in zip(grads, expected_grads):
        np.testing.assert_allclose(np.asarray(got), g, rtol=1e-9, atol=1e-11, err_msg=call.name)


# ---------------------------------------------------------------------- case tables
def _loss_calls():
    calls = []
    rng = _rng("losses")
    x, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    probs, bits = rng.uniform(0.05, 0.95, (4, 3)), (rng.uniform(size=(4, 3)) > 0.5).astype(float)
    logits, classes = rng.standard_normal((5, 4)) * 2, np.array([0, 3, -100, 1, 3])
    logits4, classes4 = rng.standard_normal((2, 4, 3, 2)), rng.integers(0, 4, (2, 3, 2))
    classes4[0, 1, 1] = -100
    soft = rng.uniform(size=(5, 4))
    soft /= soft.sum(1, keepdims=True)
    class_weight = rng.uniform(0.3, 2.0, 4)
    T, F_ = True, False
    for red in ("none", "mean", "sum"):
        calls += [
            Call(f"mse-{red}", "mse_loss", [x, t], [T, T], reduction=red),
            Call(f"mse-0d-{red}", "mse_loss", [np.array(1.5), np.array(0.25)], [T, T], reduction=red),
            Call(f"l1-ties-{red}", "l1_loss", [x, np.where(x > 0, x, t)], [T, T], reduction=red),
            # huber at, inside and beyond delta (test_nn's HuberLoss cases sample deltas)
            *[Call(f"huber-d{d}-{red}", "huber_loss", [x, x + np.array([[0.5, -0.5, 1.0]]) * d + t * 0.1 * d],
                   [T, T], reduction=red, delta=d) for d in (0.5, 1.0, 2.5)],
            Call(f"bce-{red}", "binary_cross_entropy", [probs, rng.uniform(size=(4, 3))], [T, T], reduction=red),
            Call(f"bce-weight-row-{red}", "binary_cross_entropy", [probs, bits, rng.uniform(0.2, 2, (3,))],
                 [T, T, F_], reduction=red),
            Call(f"bce-logits-{red}", "binary_cross_entropy_with_logits", [x * 3, rng.uniform(size=(4, 3))], [T, T],
                 reduction=red),
            Call(f"bce-logits-weight-col-{red}", "binary_cross_entropy_with_logits",
                 [x * 3, bits, rng.uniform(0.2, 2, (4, 1))], [T, T, F_], reduction=red),
            Call(f"bce-logits-huge-{red}", "binary_cross_entropy_with_logits",
                 [np.array([[-800.0, 800.0, 0.0]]), np.array([[1.0, 0.0, 0.5]])], [T, T], reduction=red),
            Call(f"nll-weight-ignore-{red}", "nll_loss", [logits, classes, class_weight], [T, F_, F_], reduction=red),
            Call(f"nll-ignore-index-2-{red}", "nll_loss", [logits, np.array([2, 3, 2, 1, 0])], [T, F_],
                 reduction=red, ignore_index=2),
            Call(f"nll-all-ignored-{red}", "nll_loss", [logits, np.full(5, -100)], [T, F_], reduction=red),
            Call(f"nll-4d-weight-{red}", "nll_loss", [logits4, classes4, class_weight], [T, F_, F_], reduction=red),
            Call(f"ce-1d-{red}", "cross_entropy", [logits[0], np.array(2)], [T, F_], reduction=red,
                 label_smoothing=0.1),
            Call(f"ce-weight-ignore-smooth-{red}", "cross_entropy", [logits, classes, class_weight], [T, F_, F_],
                 reduction=red, label_smoothing=0.25),
            Call(f"ce-ignore-1-smooth-{red}", "cross_entropy", [logits, np.array([1, 0, 1, 3, 2]), class_weight],
                 [T, F_, F_], reduction=red, ignore_index=1, label_smoothing=0.25),
            Call(f"ce-negative-ignore-{red}", "cross_entropy", [logits, np.array([0, -1, 2, 3, -1])], [T, F_],
                 reduction=red, ignore_index=-1),
            Call(f"ce-all-ignored-smooth-{red}", "cross_entropy", [logits, np.full(5, -100)], [T, F_],
                 reduction=red, label_smoothing=0.3),
            Call(f"ce-4d-weight-smooth-{red}", "cross_entropy", [logits4, classes4, class_weight], [T, F_, F_],
                 reduction=red, label_smoothing=0.1),
            Call(f"ce-probabilities-weight-smooth-{red}", "cross_entropy", [logits, soft, class_weight], [T, T, F_],
                 reduction=red, label_smoothing=0.4),
            Call(f"ce-4d-probabilities-{red}", "cross_entropy", [logits4, rng.uniform(size=logits4.shape)], [T, T],
                 reduction=red),
            Call(f"ce-minus-inf-logit-{red}", "cross_entropy", [np.array([[0.0, -np.inf, 1.0]]), np.array([0])],
                 [T, F_], reduction=red),
        ]
    pos_weighted = (lambda z, y, p, **kw: F.binary_cross_entropy_with_logits(z, y, pos_weight=p, **kw),
                    lambda z, y, p, **kw: TF.binary_cross_entropy_with_logits(z, y, pos_weight=p, **kw))
    calls += [Call(f"bce-logits-pos-weight-{shape}-{red}", pos_weighted,
                   [x * 3, rng.uniform(size=(4, 3)), rng.uniform(0.1, 3, shape)], [T, T, F_], reduction=red)
              for shape in ((3,), (4, 3)) for red in ("none", "mean", "sum")]
    return calls


def _conv_pool_calls():
    rng = _rng("conv")
    x2, w2, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    x1, w1 = rng.standard_normal((2, 3, 9)), rng.standard_normal((4, 3, 3))
    xp = rng.standard_normal((2, 2, 7, 8))
    ties = np.array([[[[1.0, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0], [0, 0, 0, 0]]]])
    with_nan = xp.copy()
    with_nan[0, 0, 0, 0] = np.nan
    T = True
    calls = []
    for kw in (dict(stride=2), dict(padding=(1, 2)), dict(dilation=(2, 1)), dict(stride=(2, 3), padding=1, dilation=2),
               dict(padding="same"), dict(padding="same", dilation=(2, 3)), dict(padding="valid")):
        calls.append(Call(f"conv2d-{kw}", "conv2d", [x2, w2, b], [T, T, T], **kw))
    # test_convolution's grouped and depthwise cases
    xg = rng.standard_normal((2, 6, 7, 6))
    for groups, shape, kw in ((3, (6, 2, 3, 2), dict(stride=2, padding=1)), (6, (6, 1, 3, 3), dict(padding="same")),
                              (6, (12, 1, 3, 3), dict(dilation=2)), (2, (4, 3, 2, 2), dict())):
        calls.append(Call(f"conv2d-groups-{groups}-{shape}-{kw}", "conv2d",
                          [xg, rng.standard_normal(shape), rng.standard_normal(shape[0])], [T, T, T],
                          groups=groups, **kw))
    calls += [Call("conv1d-groups-2", "conv1d", [rng.standard_normal((2, 4, 9)), rng.standard_normal((6, 2, 3))],
                   [T, T], groups=2, padding="same"),
              Call("conv2d-no-bias", "conv2d", [x2, w2], [T, T]),
              Call("conv2d-unbatched", "conv2d", [x2[0], w2, b], [T, T, T], padding=1)]
    for kw in (dict(stride=2), dict(padding=2), dict(dilation=3), dict(padding="same"),
               dict(padding="same", dilation=2), dict(padding="valid"), dict(stride=(2,))):
        calls.append(Call(f"conv1d-{kw}", "conv1d", [x1, w1, b], [T, T, T], **kw))
    calls += [Call("conv1d-unbatched", "conv1d", [x1[0], w1], [T, T], padding="same")]
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2),
               dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1)), dict(kernel_size=3, dilation=2),
               dict(kernel_size=2, stride=(1, 2), padding=1)):
        calls.append(Call(f"max_pool2d-{kw}", "max_pool2d", [xp], [T], **kw))
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2),
               dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 1))):
        calls.append(Call(f"avg_pool2d-{kw}", "avg_pool2d", [xp], [T], **kw))
    # test_pooling's ceil_mode / count_include_pad / divisor_override cases: a last partial
    # window, windows over the padding, and a span larger than the input (kept by ceil_mode)
    for kw in (dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
               dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0), dilation=2, ceil_mode=True)):
        calls.append(Call(f"max_pool2d-{kw}", "max_pool2d", [xp], [T], **kw))
    calls.append(Call("max_pool2d-span-past-input-ceil", "max_pool2d", [xp[:, :, :4, :4]], [T], kernel_size=3,
                      stride=2, dilation=2, ceil_mode=True))
    for kw in (dict(kernel_size=3, stride=2, ceil_mode=True), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
               dict(kernel_size=3, padding=1, count_include_pad=False),
               dict(kernel_size=(3, 2), stride=(2, 3), padding=1, ceil_mode=True, count_include_pad=False),
               dict(kernel_size=2, divisor_override=3), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                                             divisor_override=5)):
        calls.append(Call(f"avg_pool2d-{kw}", "avg_pool2d", [xp], [T], **kw))
    calls += [Call("max_pool2d-ties", "max_pool2d", [ties], [T], kernel_size=2),
              Call("max_pool2d-ties-overlapping", "max_pool2d", [ties], [T], kernel_size=2, stride=1),
              Call("max_pool2d-nan", "max_pool2d", [with_nan], [T], kernel_size=2),
              Call("max_pool2d-unbatched", "max_pool2d", [xp[0]], [T], kernel_size=3, stride=2, padding=1),
              Call("avg_pool2d-unbatched", "avg_pool2d", [xp[0]], [T], kernel_size=2, padding=1)]
    return calls


def _other_calls():
    rng = _rng("other")
    x3 = rng.standard_normal((4, 3, 5))
    kinks = np.array([-30.0, -2.0, -0.5, 0.0, 0.5, 1.0, 2.0, 25.0])
    T, F_ = True, False
    calls = [Call(f"elu-{a}", "elu", [kinks], [T], alpha=a) for a in (1.0, 0.3, -0.5)]
    calls += [Call(f"leaky_relu-{s}", "leaky_relu", [kinks], [T], negative_slope=s) for s in (0.01, 0.2, -0.3, 2.0)]
    calls += [Call(f"gelu-{a}", "gelu", [kinks], [T], approximate=a) for a in ("none", "tanh")]
    calls += [Call(f"softplus-{kw}", "softplus", [kinks], [T], **kw)
              for kw in (dict(), dict(beta=2.0), dict(beta=0.5, threshold=1.0), dict(threshold=0.0))]
    calls += [Call(name, name, [x3], [T]) for name in ("relu", "sigmoid", "tanh", "silu", "softsign")]
    for dim in (0, 1, -1):
        calls += [Call(f"softmax-{dim}", "softmax", [x3], [T], dim=dim),
                  Call(f"log_softmax-{dim}", "log_softmax", [x3], [T], dim=dim)]
    calls += [Call("log_softmax-minus-inf", "log_softmax", [np.array([[1.0, -np.inf], [0.0, 2.0]])], [T], dim=1)]
    for shape in ((5,), (3, 5)):
        for affine in range(3):
            extra = [rng.standard_normal(shape) for _ in range(affine)]
            layer_norm = (lambda a, *wb, shape=shape: F.layer_norm(a, shape, *wb, eps=1e-3),
                          lambda a, *wb, shape=shape: TF.layer_norm(a, shape, *wb, eps=1e-3))
            calls.append(Call(f"layer_norm-{shape}-{affine}", layer_norm, [x3, *extra], [T] * (1 + affine)))
    calls += [Call("layer_norm-constant-rows", "layer_norm", [np.ones((2, 5))], [T], normalized_shape=(5,))]
    batch_norm_training = (lambda a, w, b: F.batch_norm(a, None, None, w, b, training=True, eps=1e-4),
                           lambda a, w, b: TF.batch_norm(a, None, None, w, b, training=True, eps=1e-4))
    for shape in ((6, 3), (4, 3, 5), (2, 3, 2, 2)):
        calls.append(Call(f"batch_norm-train-no-running-stats-{shape}", batch_norm_training,
                          [rng.standard_normal(shape), rng.standard_normal(3), rng.standard_normal(3)], [T, T, T]))
        calls.append(Call(f"batch_norm-eval-{shape}", "batch_norm",
                          [rng.standard_normal(shape), rng.standard_normal(3), rng.uniform(0.5, 2, 3),
                           rng.standard_normal(3), rng.standard_normal(3)], [T, F_, F_, T, T], eps=1e-3))
    calls += [Call("linear", "linear", [x3, rng.standard_normal((2, 5)), rng.standard_normal(2)], [T, T, T]),
              Call("linear-1d-input", "linear", [rng.standard_normal(5), rng.standard_normal((2, 5))], [T, T]),
              Call("pad-constant", "pad", [x3], [T], pad=(1, 2, 0, 1), value=0.5),
              Call("pad-negative", "pad", [x3], [T], pad=(-1, 2)),
              Call("dropout-eval", "dropout", [x3], [T], p=0.3, training=False),
              Call("dropout-p0", "dropout", [x3], [T], p=0.0)]
    weight = rng.standard_normal((5, 3))
    indices = np.array([[0, 2, 4], [2, 2, 1]])
    calls += [Call(f"embedding-padding-{p}", "embedding", [indices, weight], [F_, T], padding_idx=p)
              for p in (None, 2, -1, 0)]
    calls += [Call("embedding-0d", "embedding", [np.array(3), weight], [F_, T])]
    return calls


CALLS = _loss_calls() + _conv_pool_calls() + _other_calls()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("call", CALLS, ids=repr)
def test_matches_torch(call, engine):
    _check_call(call, engine)


TRANSFORMED = [c for c in CALLS if c.name in {
    "nll-weight-ignore-mean", "ce-weight-ignore-smooth-mean", "ce-probabilities-weight-smooth-sum",
    "bce-logits-weight-col-mean", "huber-d0.5-sum", "conv2d-{'padding': 'same'}",
    "conv1d-{'stride': 2}", "max_pool2d-ties-overlapping", "conv1d-groups-2",
    "avg_pool2d-{'kernel_size': (3, 2), 'stride': (2, 3), 'padding': 1, 'ceil_mode': True, 'count_include_pad': False}",
    "layer_norm-(5,)-2", "embedding-padding-None", "softplus-{'beta': 0.5, 'threshold': 1.0}"}]


def test_transform_table_is_complete():
    assert len(TRANSFORMED) == 13


@pytest.mark.parametrize("call", TRANSFORMED, ids=repr)
def test_value_and_grad_matches_torch(call):
    _check_transform(call)


# ---------------------------------------------------------------------- class weights in the graph
# Found by this port: nll_loss and cross_entropy detached their class weight, so a weight
# that required grad silently kept .grad None, and one traced by a transform raised.
def _weighted_nll_by_hand(logp, target, weight, ignore_index=-100):
    """torch's documented weighted mean, written out so torch can differentiate the weight."""
    counted = target != ignore_index
    safe = torch.where(counted, target, torch.zeros_like(target))
    picked = logp.gather(1, safe[:, None])[:, 0]
    scale = weight[safe] * counted
    return -(picked * scale).sum() / scale.sum()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("function", ["nll_loss", "cross_entropy"])
def test_class_weight_gradient(function, engine):
    rng = _rng(function)
    inputs, weight = rng.standard_normal((6, 4)), rng.uniform(0.3, 2.0, 4)
    target = np.array([0, 3, -100, 1, 3, 2])
    ti, tw = torch.tensor(inputs, requires_grad=True), torch.tensor(weight, requires_grad=True)
    logp = ti if function == "nll_loss" else TF.log_softmax(ti, 1)
    expected = _weighted_nll_by_hand(logp, torch.tensor(target), tw)
    expected.backward()
    si, sw = symgrad.tensor(inputs, requires_grad=True), symgrad.tensor(weight, requires_grad=True)
    with symgrad.backward_engine(engine):
        loss = getattr(F, function)(si, symgrad.tensor(target), sw)
        loss.backward()
    np.testing.assert_allclose(float(loss), expected.item(), rtol=RTOL)
    np.testing.assert_allclose(si.grad.numpy(), ti.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sw.grad.numpy(), tw.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("function", ["nll_loss", "cross_entropy"])
def test_class_weight_through_a_transform_follows_each_call(function):
    rng = _rng(function + "traced")
    inputs, target = rng.standard_normal((5, 4)), np.array([0, 3, -100, 1, 3])
    transformed = symgrad.value_and_grad(lambda a, w: getattr(F, function)(a, symgrad.tensor(target), w),
                                         argnums=(0, 1))
    for _ in range(2):  # a second weight must not reuse the first call's
        weight = rng.uniform(0.3, 2.0, 4)
        value, (grad_input, grad_weight) = transformed(symgrad.tensor(inputs), symgrad.tensor(weight))
        ti, tw = torch.tensor(inputs, requires_grad=True), torch.tensor(weight, requires_grad=True)
        logp = ti if function == "nll_loss" else TF.log_softmax(ti, 1)
        expected = _weighted_nll_by_hand(logp, torch.tensor(target), tw)
        expected.backward()
        np.testing.assert_allclose(float(value), expected.item(), rtol=RTOL)
        np.testing.assert_allclose(np.asarray(grad_input), ti.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(np.asarray(grad_weight), tw.grad.numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------- batch norm state
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("momentum", [0.1, 0.7])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 2, 2)])
def test_batch_norm_running_statistics(shape, momentum, training):
    rng = _rng(f"{shape}{momentum}{training}")
    inputs, mean, var = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    weight, bias = rng.standard_normal(3), rng.standard_normal(3)
    s_mean, s_var = symgrad.tensor(mean.copy()), symgrad.tensor(var.copy())
    t_mean, t_var = torch.tensor(mean.copy()), torch.tensor(var.copy())
    for _ in range(3):
        out = F.batch_norm(symgrad.tensor(inputs), s_mean, s_var, symgrad.tensor(weight), symgrad.tensor(bias),
                           training=training, momentum=momentum, eps=1e-4)
        expected = TF.batch_norm(torch.tensor(inputs), t_mean, t_var, torch.tensor(weight), torch.tensor(bias),
                                 training=training, momentum=momentum, eps=1e-4)
        np.testing.assert_allclose(out.numpy(), expected.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(s_mean.numpy(), t_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(s_var.numpy(), t_var.numpy(), rtol=1e-12)


def test_batch_norm_takes_a_numpy_momentum():
    inputs = _rng("numpy momentum").standard_normal((6, 3))
    ours, theirs = symgrad.zeros(3), torch.zeros(3, dtype=torch.float64)
    F.batch_norm(symgrad.tensor(inputs), ours, symgrad.ones(3), training=True, momentum=np.float32(0.25))
    TF.batch_norm(torch.tensor(inputs), theirs, torch.ones(3, dtype=torch.float64), training=True,
                  momentum=np.float32(0.25))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None, 0.5])
def test_batchnorm1d_module_over_steps(momentum, track, affine):
    """test_nn's BatchNorm tests: train several steps, then eval; outputs, gradients and buffers."""
    rng = _rng(f"bn{momentum}{track}{affine}")
    ours = nn.BatchNorm1d(3, momentum=momentum, affine=affine, track_running_stats=track, dtype=symgrad.float64)
    theirs = torch.nn.BatchNorm1d(3, momentum=momentum, affine=affine, track_running_stats=track).double()
    for step in range(4):
        inputs = rng.standard_normal((5, 3, 2)) * (step + 1) + step
        si, ti = symgrad.tensor(inputs, requires_grad=True), torch.tensor(inputs, requires_grad=True)
        out, expected = ours(si), theirs(ti)
        np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=RTOL, atol=ATOL)
        seed = rng.standard_normal(inputs.shape)
        out.backward(symgrad.tensor(seed))
        expected.backward(torch.tensor(seed))
        np.testing.assert_allclose(si.grad.numpy(), ti.grad.numpy(), rtol=1e-9, atol=1e-11)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-12, err_msg=name)
    ours.eval()
    theirs.eval()
    inputs = rng.standard_normal((2, 3))
    np.testing.assert_allclose(ours(symgrad.tensor(inputs)).detach().numpy(),
                               theirs(torch.tensor(inputs)).detach().numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_pooling_modules_match_torch(ceil_mode):
    x = _rng("modules").standard_normal((2, 3, 7, 6))
    pairs = [(nn.MaxPool2d(3, 2, 1, ceil_mode=ceil_mode), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=ceil_mode)),
             (nn.AvgPool2d(3, 2, 1, ceil_mode=ceil_mode, count_include_pad=False),
              torch.nn.AvgPool2d(3, 2, 1, ceil_mode=ceil_mode, count_include_pad=False)),
             (nn.AvgPool2d(2, divisor_override=3), torch.nn.AvgPool2d(2, divisor_override=3))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(symgrad.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), rtol=RTOL)
    assert repr(pairs[0][0]) == repr(pairs[0][1])


@pytest.mark.parametrize("padding", ["same", 1])
def test_grouped_conv_modules_match_torch(padding):
    pairs = ((nn.Conv2d(6, 4, 3, padding=padding, groups=2), torch.nn.Conv2d(6, 4, 3, padding=padding, groups=2),
              (2, 6, 5, 5)),
             (nn.Conv1d(4, 8, 3, padding=padding, groups=4), torch.nn.Conv1d(4, 8, 3, padding=padding, groups=4),
              (2, 4, 7)))
    for ours, theirs, shape in pairs:
        theirs = theirs.double()
        assert repr(ours) == repr(theirs)
        assert [tuple(v.shape) for v in ours.state_dict().values()] == [tuple(v.shape) for v in
                                                                        theirs.state_dict().values()]
        theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
        x = _rng("grouped").standard_normal(shape)
        np.testing.assert_allclose(ours(symgrad.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(),
                                   rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------- refused arguments
def _x(*shape):
    return symgrad.tensor(np.ones(shape))


REFUSED = [
    ("conv2d groups not dividing out", lambda: F.conv2d(_x(1, 4, 3, 3), _x(3, 2, 1, 1), groups=2), ValueError,
     "groups=2"),
    ("conv1d groups channels", lambda: F.conv1d(_x(1, 4, 3), _x(2, 1, 1), groups=2), ValueError, "2 group"),
    ("conv2d groups 0", lambda: F.conv2d(_x(1, 4, 3, 3), _x(2, 2, 1, 1), groups=0), ValueError, "groups"),
    ("Conv2d groups not dividing in", lambda: nn.Conv2d(5, 4, 3, groups=2), ValueError, "divisible by groups"),
    ("conv2d bias size", lambda: F.conv2d(_x(1, 3, 3, 3), _x(4, 3, 1, 1), _x(3)), ValueError, "bias"),
    ("conv1d bias size", lambda: F.conv1d(_x(1, 3, 3), _x(4, 3, 1), _x(3)), ValueError, "bias"),
    ("conv2d padding word", lambda: F.conv2d(_x(1, 1, 3, 3), _x(1, 1, 1, 1), padding="full"), ValueError, "padding"),
    ("conv2d same strided", lambda: F.conv2d(_x(1, 1, 3, 3), _x(1, 1, 1, 1), stride=2, padding="same"), ValueError,
     "same"),
    ("max_pool2d return_indices", lambda: F.max_pool2d(_x(1, 1, 4, 4), 2, return_indices=True), TypeError,
     "return_indices"),
    ("avg_pool2d divisor_override 0", lambda: F.avg_pool2d(_x(1, 1, 4, 4), 2, divisor_override=0), ValueError,
     "divisor_override"),
    ("max_pool2d window past the input", lambda: F.max_pool2d(_x(1, 1, 4, 4), 3, stride=1, dilation=2), ValueError,
     "larger than the padded input"),
    ("avg_pool2d padding beyond half", lambda: F.avg_pool2d(_x(1, 1, 4, 4), 3, padding=2), ValueError, "padding"),
    ("max_pool2d padding beyond half", lambda: F.max_pool2d(_x(1, 1, 4, 4), 3, padding=2), ValueError, "padding"),
    ("MaxPool2d stride 0", lambda: nn.MaxPool2d(2, stride=0), ValueError, "stride"),
    ("AvgPool2d stride 0", lambda: nn.AvgPool2d(2, stride=0), ValueError, "stride"),
    ("pad reflect", lambda: F.pad(_x(2, 3), (1, 1), mode="reflect"), NotImplementedError, "reflect"),
    ("embedding max_norm", lambda: F.embedding(symgrad.tensor([0]), _x(2, 2), max_norm=1.0), NotImplementedError,
     "max_norm"),
    ("gelu approximate", lambda: F.gelu(_x(2), approximate="erf"), ValueError, "approximate"),
    ("mse broadcast target", lambda: F.mse_loss(_x(2, 3), _x(3)), ValueError, "target shape"),
    ("nll weight shape", lambda: F.nll_loss(_x(2, 3), symgrad.tensor([0, 1]), _x(1, 3)), ValueError, "weight"),
    ("cross_entropy label_smoothing", lambda: F.cross_entropy(_x(2, 3), symgrad.tensor([0, 1]), label_smoothing=1.5),
     ValueError, "label_smoothing"),
    ("embedding padding_idx in a transform",
     lambda: symgrad.grad(lambda w: F.embedding(symgrad.tensor([0, 1]), w, padding_idx=0).sum())(_x(2, 2)),
     symgrad.UntraceableError, "padding_idx"),
    ("batch_norm one value per channel", lambda: F.batch_norm(_x(1, 3), None, None, training=True), ValueError,
     "more than 1 value per channel"),
]


@pytest.mark.parametrize("name, make, error, words", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_with_a_clear_error(name, make, error, words):
    with pytest.raises(error, match=words):
        make()


# ---------------------------------------------------------------------- second order (OpInfo's gradgrad checks)
def _second_order_cases():
    rng = _rng("second order")
    y, classes, weight = rng.uniform(size=(3, 4)), np.array([0, 3, -100]), rng.uniform(0.5, 2.0, 4)

    def both(make):
        return make(symgrad, F), make(torch, TF)

    return {
        "softplus": both(lambda lib, f: lambda a: f.softplus(a, beta=2.0, threshold=1.5).sum()),
        "gelu-tanh": both(lambda lib, f: lambda a: f.gelu(a, approximate="tanh").sum()),
        "elu-squared": both(lambda lib, f: lambda a: (f.elu(a, 0.7) ** 2).sum()),
        "log_softmax": both(lambda lib, f: lambda a: (f.log_softmax(a, 1) * lib.tensor(y)).sum()),
        "cross_entropy": both(lambda lib, f: lambda a: f.cross_entropy(a, lib.tensor(classes), lib.tensor(weight),
                                                                          label_smoothing=0.2)),
        "bce_with_logits": both(lambda lib, f: lambda a: f.binary_cross_entropy_with_logits(
            a, lib.tensor(y), pos_weight=lib.tensor(weight))),
        "bce-of-sigmoid": both(lambda lib, f: lambda a: f.binary_cross_entropy(lib.sigmoid(a), lib.tensor(y))),
        "batch_norm-training": both(lambda lib, f: lambda a: (f.batch_norm(a, None, None, training=True)
                                                              * lib.tensor(y)).sum()),
        "layer_norm": both(lambda lib, f: lambda a: (f.layer_norm(a, (4,)) * lib.tensor(y)).sum()),
        "avg_pool2d-ceil-no-pad-count": both(lambda lib, f: lambda a: (f.avg_pool2d(
            a.reshape(1, 1, 3, 4), 2, 1, padding=1, ceil_mode=True, count_include_pad=False) ** 2).sum()),
    }


SECOND_ORDER = _second_order_cases()


@pytest.mark.parametrize("name", sorted(SECOND_ORDER))
def test_hessian_and_double_backward_match_torch(name):
    ours, theirs = SECOND_ORDER[name]
    x, direction = _rng(name).standard_normal((3, 4)), _rng(name + "v").standard_normal((3, 4))
    expected = torch.autograd.functional.hessian(theirs, torch.tensor(x)).numpy()
    np.testing.assert_allclose(np.asarray(symgrad.hessian(ours)(symgrad.tensor(x))), expected, rtol=1e-8, atol=1e-10)
    for engine in ENGINES:
        with symgrad.backward_engine(engine):
            a = symgrad.tensor(x, requires_grad=True)
            (grad,) = symgrad.autograd.grad(ours(a), [a], create_graph=True)
            (grad * symgrad.tensor(direction)).sum().backward()
        hessian_times_direction = (expected.reshape(12, 12) @ direction.reshape(12)).reshape(3, 4)
        np.testing.assert_allclose(a.grad.numpy(), hessian_times_direction, rtol=1e-8, atol=1e-10, err_msg=engine)
