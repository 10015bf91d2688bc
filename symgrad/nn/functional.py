"""``symgrad.nn.functional``: losses and activations as functions, PyTorch's signatures.

Everything here is built from primitive ops of the op table (no derivative of its own),
so both backward engines differentiate it.  The exception for stability is
``binary_cross_entropy_with_logits``, which is a primitive op (``max(z,0) - z*y +
log1p(exp(-|z|))`` never overflows).  Where PyTorch records one node for a whole loss
(``MseLossBackward0``, ``NllLossBackward0``, ``BinaryCrossEntropyWithLogitsBackward0``,
...), the last node of symgrad's composition carries that name, so ``loss.grad_fn``
prints as in PyTorch; its ``next_functions`` are symgrad's own intermediate nodes.

``dropout`` draws its mask from the generator ``symgrad.manual_seed`` seeds (so a seeded
run is repeatable, though its masks are not PyTorch's: the generators differ).
``batch_norm`` updates its running statistics in place, outside the graph, as PyTorch does.

Reductions are ``"none"``, ``"mean"`` (default) and ``"sum"``.  Unlike PyTorch, which
only warns and then broadcasts, ``mse_loss`` and ``l1_loss`` raise a ``ValueError`` when
input and target shapes differ: a silently broadcast loss is almost always a bug.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..tape import dtypes, tracing
from ..tape.composites import pad
from ..tape.creation import generator
from ..tape.grad_mode import no_grad
from ..tape.tensor import Tensor, apply_op, as_tensor
from .convolution import avg_pool2d, conv1d, conv2d, max_pool2d

__all__ = [
    "linear", "relu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax",
    "dropout", "layer_norm", "batch_norm", "embedding",
    "mse_loss", "l1_loss", "huber_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "nll_loss",
    "cross_entropy", "pad", "conv1d", "conv2d", "max_pool2d", "avg_pool2d",
]

_REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------------- helpers
def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction!r} is not a valid value for reduction; use 'none', 'mean' or 'sum'")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _named(out: Tensor, grad_fn_name: str) -> Tensor:
    """Give the last node of a composed loss PyTorch's node name for the whole loss."""
    if out.grad_fn is not None:
        out.grad_fn.rename(grad_fn_name)
    return out


def _same_shape(function: str, input: Tensor, target: Tensor) -> None:
    if input.shape != target.shape:
        raise ValueError(
            f"{function}: target shape {list(target.shape)} differs from input shape {list(input.shape)}; "
            "symgrad does not broadcast a loss's target (PyTorch warns and broadcasts, which is almost always "
            f"a bug): reshape the target to {list(input.shape)}, e.g. target.view_as(input)"
        )


def _float_target(input: Tensor, target) -> Tensor:
    """The target as a tensor; integer or boolean targets take the input's float dtype."""
    target = as_tensor(target)
    if not dtypes.is_floating(target.dtype) and dtypes.is_floating(input.dtype):
        target = target.to(input.dtype)
    return target


def _require_float_target(function: str, input: Tensor, target: Tensor, same_dtype: bool) -> None:
    if not dtypes.is_floating(target.dtype) or (same_dtype and target.dtype != input.dtype):
        raise TypeError(
            f"{function}: target has dtype {dtypes.dtype_name(target.dtype)} but the input is "
            f"{dtypes.dtype_name(input.dtype)}; pass a float target of the input's dtype, e.g. "
            "target.to(input.dtype)"
        )


# ---------------------------------------------------------------------- activations
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``, the affine map of :class:`~symgrad.nn.Linear`.

    >>> import symgrad
    >>> linear(symgrad.tensor([[1.0, 2.0]]), symgrad.tensor([[3.0, 4.0]]), symgrad.tensor([0.5]))
    tensor([[11.5000]])
    """
    input, weight = as_tensor(input), as_tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {list(weight.shape)}")
    if input.ndim == 0 or input.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input shape {list(input.shape)} does not end in in_features={weight.shape[1]} "
            f"(weight shape {list(weight.shape)})"
        )
    out = input.matmul(weight.t())
    return out if bias is None else out + bias


def relu(input: Tensor) -> Tensor:
    """``max(x, 0)``; the gradient at 0 is 0, like PyTorch's.

    >>> import symgrad
    >>> relu(symgrad.tensor([-1.0, 0.0, 2.0]))
    tensor([0., 0., 2.])
    """
    return apply_op("relu", input)


def sigmoid(input: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``.

    >>> import symgrad
    >>> sigmoid(symgrad.tensor([0.0]))
    tensor([0.5000])
    """
    return apply_op("sigmoid", input)


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent.

    >>> import symgrad
    >>> tanh(symgrad.tensor([0.0]))
    tensor([0.])
    """
    return apply_op("tanh", input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``, linear above ``threshold`` like PyTorch's."""
    return apply_op("softplus", input, beta=beta, threshold=threshold)


def _softmax_dim(name: str, ndim: int, dim: int | None) -> int:
    if dim is not None:
        return dim
    dim = 0 if ndim in (0, 1, 3) else 1
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. Change the call to include "
        f"dim={dim} as an argument.",
        UserWarning,
        stacklevel=3,
    )
    return dim


def _with_dtype(input: Tensor, dtype) -> Tensor:
    input = as_tensor(input)
    return input if dtype is None else input.to(dtype)


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim`` (computed stably).

    >>> import symgrad
    >>> softmax(symgrad.tensor([[0.0, 0.0]]), dim=1)
    tensor([[0.5000, 0.5000]])
    """
    input = _with_dtype(input, dtype)
    return apply_op("softmax", input, dim=_softmax_dim("softmax", input.ndim, dim))


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """``x - logsumexp(x)`` along ``dim`` (computed stably).

    >>> import symgrad
    >>> log_softmax(symgrad.tensor([0.0, 0.0]), dim=0).exp()
    tensor([0.5000, 0.5000])
    """
    input = _with_dtype(input, dtype)
    return apply_op("log_softmax", input, dim=_softmax_dim("log_softmax", input.ndim, dim))


# ---------------------------------------------------------------------- dropout, normalization, embedding
def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``
    (in training; with ``training=False`` the input itself is returned).

    The mask comes from the generator ``symgrad.manual_seed`` seeds.  Inside a traced
    function (``symgrad.grad``...) training-mode dropout raises: the mask would be drawn
    once and frozen; pass the mask in as an argument instead.

    >>> import symgrad
    >>> symgrad.manual_seed(0)
    >>> dropout(symgrad.ones(6), p=0.5)
    tensor([2., 0., 0., 0., 2., 2.])
    >>> dropout(symgrad.ones(2), p=0.5, training=False)
    tensor([1., 1.])
    >>> dropout(symgrad.ones(2), p=1.5)
    Traceback (most recent call last):
    ...
    ValueError: dropout probability has to be between 0 and 1, but got 1.5
    """
    check_dropout(p, inplace)
    input = as_tensor(input)
    if not training:
        return input
    tracing.refuse_random("dropout in training mode")
    keep = generator().random(input.shape) >= p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    return _named(input * Tensor((keep * scale).astype(input.dtype)), "NativeDropoutBackward0")


def check_dropout(p, inplace: bool) -> None:
    """Refuse a dropout probability outside [0, 1] and ``inplace=True``."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout probability must be a number, got {type(p).__name__} {p!r:.60}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if inplace:
        raise NotImplementedError("dropout(inplace=True) is not supported by symgrad; use inplace=False")


def _normalized(centred: Tensor, var: Tensor, eps: float) -> Tensor:
    return centred / (var + eps).sqrt()


def _check_affine(function: str, label: str, value, shape: tuple[int, ...]):
    if value is None:
        return None
    value = as_tensor(value)
    if value.shape != shape:
        raise ValueError(f"{function}: {label} must have shape {list(shape)}, got {list(value.shape)}")
    return value


def layer_norm(input: Tensor, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalize over the last ``len(normalized_shape)`` dimensions: ``(x - mean) /
    sqrt(var + eps) * weight + bias``, with the biased variance, as PyTorch.

    >>> import symgrad
    >>> layer_norm(symgrad.tensor([[1.0, 3.0]]), (2,))
    tensor([[-1.0000,  1.0000]])
    """
    input = as_tensor(input)
    shape = (int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    count = len(shape)
    if count == 0 or input.ndim < count or input.shape[input.ndim - count:] != shape:
        raise ValueError(
            f"layer_norm: input shape {list(input.shape)} does not end in normalized_shape {list(shape)}; "
            "normalized_shape names the trailing dimensions to normalize over"
        )
    dims = tuple(range(input.ndim - count, input.ndim))
    centred = input - input.mean(dim=dims, keepdim=True)
    out = _normalized(centred, (centred * centred).mean(dim=dims, keepdim=True), eps)
    weight = _check_affine("layer_norm", "weight", weight, shape)
    bias = _check_affine("layer_norm", "bias", bias, shape)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return _named(out, "NativeLayerNormBackward0")


def batch_norm(input: Tensor, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel (dim 1 of ``(N, C)`` or ``(N, C, L, ...)``) over the batch.

    In training the batch's mean and biased variance normalize, and the running statistics
    (when given) move in place: ``running = (1 - momentum) * running + momentum * batch``,
    with the unbiased batch variance, outside the graph, as PyTorch.  Otherwise the running
    statistics normalize.

    >>> import symgrad
    >>> mean, var = symgrad.zeros(1), symgrad.ones(1)
    >>> batch_norm(symgrad.tensor([[1.0], [3.0]]), mean, var, training=True)
    tensor([[-1.0000],
            [ 1.0000]])
    >>> mean, var
    (tensor([0.2000]), tensor([1.1000]))
    """
    input = as_tensor(input)
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected an input of shape (N, C) or (N, C, L, ...), got {list(input.shape)}")
    channels = input.shape[1]
    view = (1, channels) + (1,) * (input.ndim - 2)
    stats = [_check_affine("batch_norm", label, value, (channels,))
             for label, value in (("running_mean", running_mean), ("running_var", running_var))]
    weight = _check_affine("batch_norm", "weight", weight, (channels,))
    bias = _check_affine("batch_norm", "bias", bias, (channels,))
    if training:
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.integer, np.floating)):
            raise TypeError(f"batch_norm: momentum must be a number, got {type(momentum).__name__} {momentum!r:.60}")
        count = input.numel() // channels if channels else 0
        if count <= 1:
            raise ValueError(
                f"Expected more than 1 value per channel when training, got input size {list(input.shape)}"
            )
        dims = (0,) + tuple(range(2, input.ndim))
        mean = input.mean(dim=dims, keepdim=True)
        centred = input - mean
        var = (centred * centred).mean(dim=dims, keepdim=True)
        if stats[0] is not None or stats[1] is not None:
            _update_running_stats(input, stats, mean, var, count, float(momentum))
    else:
        if stats[0] is None or stats[1] is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
        centred = input - stats[0].reshape(view)
        var = stats[1].reshape(view)
    out = _normalized(centred, var, eps)
    if weight is not None:
        out = out * weight.reshape(view)
    if bias is not None:
        out = out + bias.reshape(view)
    return _named(out, "NativeBatchNormBackward0")


def _update_running_stats(input: Tensor, stats: list, mean: Tensor, var: Tensor, count: int,
                          momentum: float) -> None:
    """``running = (1 - momentum) * running + momentum * batch`` in place (unbiased batch variance)."""
    tracing.refuse(input, "BatchNorm's update of its running statistics in training mode",
                   "call the module in eval() mode inside the transform, or update the statistics outside it")
    batch_mean = mean.detach()._data.reshape(-1)
    batch_var = var.detach()._data.reshape(-1) * (count / (count - 1))
    with no_grad():
        for running, batch in zip(stats, (batch_mean, batch_var)):
            if running is not None:
                running.mul_(1 - momentum).add_(Tensor(batch.astype(running.dtype)), alpha=momentum)


def embedding(input, weight: Tensor, padding_idx: int | None = None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` picked by the integer tensor ``input``: shape ``input.shape +
    (embedding_dim,)``.  The row ``padding_idx`` receives no gradient, as in PyTorch.

    >>> import symgrad
    >>> w = symgrad.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> out = embedding(symgrad.tensor([[1, 2, 1]]), w)
    >>> out.shape
    (1, 3, 2)
    >>> out.sum().backward(); w.grad
    tensor([[0., 0.],
            [2., 2.],
            [1., 1.]])
    """
    check_embedding_options(max_norm, scale_grad_by_freq, sparse)
    input, weight = as_tensor(input), as_tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {list(weight.shape)}")
    if input.dtype.kind not in "iu":
        raise TypeError(
            f"embedding: indices must have an integer dtype, got {dtypes.dtype_name(input.dtype)}; use input.long()"
        )
    count = weight.shape[0]
    padding_idx = padding_index(padding_idx, count)

    def checked(indices: np.ndarray) -> np.ndarray:
        bad = (indices < 0) | (indices >= count)
        if np.any(bad):
            raise IndexError(f"embedding: index {int(indices[bad].flat[0])} is out of range for {count} embeddings "
                             f"(valid: 0..{count - 1})")
        return indices.astype(np.intp)

    out = weight[(tracing.derived_array(input, checked),)]
    if padding_idx is not None:
        # the padding row keeps its value but gets no gradient: a detach(), which a trace cannot record
        tracing.refuse(weight, f"embedding(padding_idx={padding_idx}) (no gradient for the padding row)",
                       "differentiate with eager backward(), or leave padding_idx out inside the transform")
        keep = Tensor(tracing.derived_array(input, lambda indices: (indices != padding_idx)[..., None]))
        out = apply_op("where", keep, out, out.detach())
    return _named(out, "EmbeddingBackward0")


def check_embedding_options(max_norm, scale_grad_by_freq: bool, sparse: bool) -> None:
    """Refuse PyTorch's embedding options symgrad does not have (a renorm, frequency scaling, sparse grads)."""
    for label, value, default in (("max_norm", max_norm, None), ("scale_grad_by_freq", scale_grad_by_freq, False),
                                  ("sparse", sparse, False)):
        if value != default:
            raise NotImplementedError(f"embedding({label}={value!r}) is not supported by symgrad; leave it out")


def padding_index(padding_idx, count: int) -> int | None:
    """``padding_idx`` as a row number (negative counts from the end), checked against ``count`` rows."""
    if padding_idx is None:
        return None
    if not -count <= padding_idx < count:
        raise ValueError(f"padding_idx must be within num_embeddings ({count}), got {padding_idx}")
    return int(padding_idx) % count


# ---------------------------------------------------------------------- regression losses
def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Squared error ``(input - target)**2``, reduced; ``grad_fn`` is ``MseLossBackward0``.

    Shapes must match (symgrad raises where PyTorch warns and broadcasts).

    >>> import symgrad
    >>> x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    >>> loss = mse_loss(x, symgrad.tensor([0.0, 0.0]))
    >>> loss
    tensor(2.5000, grad_fn=<MseLossBackward0>)
    >>> loss.backward(); x.grad
    tensor([1., 2.])
    >>> mse_loss(x, symgrad.zeros(3))
    Traceback (most recent call last):
    ...
    ValueError: mse_loss: target shape [3] differs from input shape [2]; ...
    """
    _check_reduction(reduction)
    input = as_tensor(input)
    target = _float_target(input, target)
    _same_shape("mse_loss", input, target)
    return _named(_reduce((input - target) ** 2, reduction), "MseLossBackward0")


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Absolute error ``|input - target|``, reduced (gradient 0 where they are equal).

    >>> import symgrad
    >>> l1_loss(symgrad.tensor([1.0, -3.0]), symgrad.tensor([0.0, 0.0]), reduction="sum")
    tensor(4.)
    """
    _check_reduction(reduction)
    input = as_tensor(input)
    target = _float_target(input, target)
    _same_shape("l1_loss", input, target)
    return _reduce((input - target).abs(), reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """``0.5 d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 delta)``, for ``d = input - target``.

    >>> import symgrad
    >>> huber_loss(symgrad.tensor([0.5, 3.0]), symgrad.zeros(2), reduction="none")
    tensor([0.1250, 2.5000])
    """
    _check_reduction(reduction)
    if not delta > 0:
        raise ValueError(f"huber_loss does not support non-positive values for delta, got {delta}")
    input = as_tensor(input)
    target = _float_target(input, target)
    _same_shape("huber_loss", input, target)
    diff = input - target
    size = diff.abs()
    loss = apply_op("where", size < delta, 0.5 * diff * diff, delta * (size - 0.5 * delta))
    return _named(_reduce(loss, reduction), "HuberLossBackward0")


# ---------------------------------------------------------------------- binary classification
def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction: str = "mean",
                                     pos_weight=None) -> Tensor:
    """``-[pos_weight * y * log(sigmoid(z)) + (1 - y) * log(1 - sigmoid(z))]``, stable for any ``z``.

    ``weight`` rescales each element (broadcast to the input's shape); ``pos_weight``
    rescales the positive term (broadcast along the last dimension, one per class).
    ``grad_fn`` is ``BinaryCrossEntropyWithLogitsBackward0`` for every reduction.

    >>> import symgrad
    >>> z = symgrad.tensor([1000.0, -1000.0, 0.0], requires_grad=True)
    >>> loss = binary_cross_entropy_with_logits(z, symgrad.tensor([1.0, 0.0, 1.0]), reduction="sum")
    >>> loss
    tensor(0.6931, grad_fn=<BinaryCrossEntropyWithLogitsBackward0>)
    >>> loss.backward(); z.grad
    tensor([ 0.0000,  0.0000, -0.5000])
    """
    _check_reduction(reduction)
    input = as_tensor(input)
    target = as_tensor(target)
    if input.shape != target.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: target size {list(target.shape)} must be the same as "
            f"input size {list(input.shape)}"
        )
    _require_float_target("binary_cross_entropy_with_logits", input, target, same_dtype=False)
    loss = apply_op("binary_cross_entropy_with_logits", input, target)
    if pos_weight is not None:
        # (1 + (p - 1) y) * log(1 + exp(-z)) + (1 - y) z  ==  bce(z, y) + (p - 1) y * bce(z, 1)
        pos_weight = _broadcastable("binary_cross_entropy_with_logits", "pos_weight", pos_weight, input)
        softplus_neg = apply_op("binary_cross_entropy_with_logits", input, 1.0)
        loss = loss + (pos_weight - 1) * target * softplus_neg
    if weight is not None:
        loss = loss * _broadcastable("binary_cross_entropy_with_logits", "weight", weight, input)
    return _named(_reduce(loss, reduction), "BinaryCrossEntropyWithLogitsBackward0")


def _broadcastable(function: str, label: str, value, input: Tensor) -> Tensor:
    value = as_tensor(value)
    try:
        shape = np.broadcast_shapes(value.shape, input.shape)
    except ValueError:
        shape = None
    if shape != input.shape:
        raise ValueError(
            f"{function}: {label} of shape {list(value.shape)} does not broadcast to the input's shape "
            f"{list(input.shape)}"
        )
    return value


def _clamped_log(x: Tensor) -> Tensor:
    """``max(log(x), -100)`` for ``x`` in [0, 1] whose gradient is finite everywhere.

    ``log`` is taken of ``where(x > 0, x, 1)``, so that ``x = 0`` (value -100, gradient 0)
    never sends ``0 * inf`` through the graph.
    """
    positive = x > 0
    safe = apply_op("where", positive, x, 1.0)
    return apply_op("where", positive, safe.log().clamp(min=-100.0), -100.0)


def binary_cross_entropy(input: Tensor, target, weight=None, reduction: str = "mean") -> Tensor:
    """``-[y log(x) + (1 - y) log(1 - x)]`` for probabilities ``x`` in [0, 1].

    Each log is clamped at -100, like PyTorch, so ``x = 0`` or ``1`` gives a finite loss.
    Inputs outside [0, 1] raise.  (At ``x`` exactly 0 or 1 the gradient is that of the
    clamped loss, 0, where PyTorch's hand-written rule gives ``(x - y) / 1e-12``.)

    >>> import symgrad
    >>> binary_cross_entropy(symgrad.tensor([0.0, 0.5]), symgrad.tensor([1.0, 1.0]), reduction="none")
    tensor([100.0000,   0.6931])
    """
    _check_reduction(reduction)
    input = as_tensor(input)
    target = as_tensor(target)
    if input.shape != target.shape:
        raise ValueError(
            f"binary_cross_entropy: target size {list(target.shape)} must be the same as input size "
            f"{list(input.shape)}"
        )
    _require_float_target("binary_cross_entropy", input, target, same_dtype=True)
    values = input._data  # checked at the call that records the loss (under a transform: its first call)
    if values.size and not (np.all(values >= 0) and np.all(values <= 1)):
        raise ValueError(
            f"binary_cross_entropy: all elements of input should be between 0 and 1, got values from "
            f"{np.nanmin(values):.6g} to {np.nanmax(values):.6g} (nan counts as out of range); apply sigmoid "
            "first or use binary_cross_entropy_with_logits"
        )
    loss = -(target * _clamped_log(input) + (1 - target) * _clamped_log(1 - input))
    if weight is not None:
        loss = loss * _broadcastable("binary_cross_entropy", "weight", weight, input)
    return _named(_reduce(loss, reduction), "BinaryCrossEntropyBackward0")


# ---------------------------------------------------------------------- multi-class losses
def _class_targets(function: str, input: Tensor, target) -> Tensor:
    """Check class-index targets against ``input`` of shape (C,), (N, C) or (N, C, d1, ...).
    Arrays computed from their values go through ``tracing.derived_array``, so a traced
    loss recomputes them from each call's targets."""
    target = as_tensor(target)
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"{function}: expected class indices of an integer dtype as target, got "
            f"{dtypes.dtype_name(target.dtype)}; use target.long()"
        )
    if input.ndim == 0:
        raise ValueError(f"{function}: input must have at least one dimension (the classes), got a 0-d tensor")
    expected = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(
            f"{function}: target shape {list(target.shape)} does not fit input shape {list(input.shape)}; "
            f"expected a target of shape {list(expected)} (input is (N, C, ...) with the classes in dim "
            f"{0 if input.ndim == 1 else 1})"
        )
    return target


def _class_weight(function: str, weight, n_classes: int, dtype) -> Tensor | None:
    """The per-class weight as a tensor of the input's dtype, kept in the graph (so a weight
    that requires grad, or one a transform traces, is differentiated rather than frozen)."""
    if weight is None:
        return None
    weight = as_tensor(weight)
    if weight.shape != (n_classes,):
        raise ValueError(
            f"{function}: weight should have one entry per class ({n_classes}), got shape {list(weight.shape)}"
        )
    return weight if weight.dtype == dtype else weight.to(dtype)


def _counted_classes(target: Tensor, ignore_index: int) -> np.ndarray:
    """The target's class indices with ignored entries replaced by class 0 (recomputed per traced call)."""
    return tracing.derived_array(target, lambda c: np.where(c != ignore_index, c, 0).astype(np.intp))


def _counted_mask(target: Tensor, ignore_index: int, dtype) -> Tensor:
    """1 where the target counts, 0 where it equals ``ignore_index``."""
    return Tensor(tracing.derived_array(target, lambda c: (c != ignore_index).astype(dtype)))


def _weights_of(classes: np.ndarray, ignore_index: int, weights: np.ndarray | None, dtype) -> np.ndarray:
    """Each label's class weight (1 without weights), 0 where it is ``ignore_index``."""
    counted = classes != ignore_index
    if weights is None:
        return counted.astype(dtype)
    return (weights[np.where(counted, classes, 0)] * counted).astype(dtype)


def _weight_in_graph(class_weight: Tensor | None) -> bool:
    return class_weight is not None and (class_weight.requires_grad or tracing.is_traced(class_weight))


def _target_weights(target: Tensor, ignore_index: int, class_weight: Tensor | None, dtype) -> Tensor:
    """Each target's class weight (1 without weights), 0 where the target is ignored.
    Through the graph where the weight is in it (it requires grad, or a trace follows it);
    else computed from the labels by :func:`tracing.derived_array`, so a traced call
    recomputes it from its own labels (ops on tensors made of labels and constants alone
    are not recorded: they would be frozen at the first call's values)."""
    if _weight_in_graph(class_weight):
        return class_weight[(_counted_classes(target, ignore_index),)] * _counted_mask(target, ignore_index, dtype)
    weights = None if class_weight is None else class_weight.detach().numpy()
    return Tensor(tracing.derived_array(target, lambda classes: _weights_of(classes, ignore_index, weights, dtype)))


def _counted_total(target: Tensor, ignore_index: int, class_weight: Tensor | None, dtype) -> Tensor:
    """A mean's denominator, the sum of :func:`_target_weights`, recomputed from each traced
    call's labels where the weight is not in the graph."""
    if _weight_in_graph(class_weight):
        return _target_weights(target, ignore_index, class_weight, dtype).sum()
    weights = None if class_weight is None else class_weight.detach().numpy()
    return Tensor(tracing.derived_array(
        target, lambda classes: np.asarray(_weights_of(classes, ignore_index, weights, dtype).sum(), dtype=dtype)))


def _nll_name(ndim: int, reduction: str) -> str:
    """PyTorch's node name: 1-D/2-D inputs use nll_loss, 4-D nll_loss2d, and other ranks are
    reshaped into nll_loss2d (then an unreduced result is a view)."""
    if ndim <= 2:
        return "NllLossBackward0"
    if ndim != 4 and reduction == "none":
        return "ViewBackward0"
    return "NllLoss2DBackward0"


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class ``target`` under log-probabilities ``input``.

    ``input`` is (C,), (N, C) or (N, C, d1, ...); ``target`` holds class indices of shape
    (), (N,) or (N, d1, ...).  ``weight`` (one per class) scales each term and the mean
    divides by the summed weights of the counted targets; targets equal to
    ``ignore_index`` count for nothing.

    >>> import symgrad
    >>> logp = symgrad.tensor([[-1.0, -2.0], [-3.0, -4.0]], requires_grad=True)
    >>> loss = nll_loss(logp, symgrad.tensor([1, 0]))
    >>> loss
    tensor(2.5000, grad_fn=<NllLossBackward0>)
    >>> loss.backward(); logp.grad
    tensor([[ 0.0000, -0.5000],
            [-0.5000,  0.0000]])
    """
    _check_reduction(reduction)
    input = as_tensor(input)
    target = _class_targets("nll_loss", input, target)
    n_classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    class_weight = _class_weight("nll_loss", weight, n_classes, input.dtype)

    def safe_classes(classes: np.ndarray) -> np.ndarray:
        counted = classes != ignore_index
        bad = counted & ((classes < 0) | (classes >= n_classes))
        if np.any(bad):
            raise IndexError(
                f"nll_loss: target {int(classes[bad].flat[0])} is out of bounds for {n_classes} classes "
                f"(valid: 0..{n_classes - 1}, or ignore_index={ignore_index})"
            )
        return np.where(counted, classes, 0).astype(np.intp)

    safe = tracing.derived_array(target, safe_classes)
    if input.ndim == 1:
        picked = input[(safe,)]
    else:
        # move the class dim last, then pick input[n, ..., target[n, ...]]
        moved = input if input.ndim == 2 else input.permute(0, *range(2, input.ndim), 1)
        picked = moved[tuple(np.indices(target.shape)) + (safe,)]
    # a traced loss takes the general path: which targets are ignored changes from call to call
    all_counted = not tracing.is_traced(target) and bool(np.all(target._data != ignore_index))
    if not all_counted:
        picked = apply_op("where", Tensor(tracing.derived_array(target, lambda c: c != ignore_index)), picked, 0.0)
    name = _nll_name(input.ndim, reduction)
    if class_weight is None and all_counted:
        return _named(_reduce(-picked, reduction), name)
    loss = -(picked * _target_weights(target, ignore_index, class_weight, input.dtype))
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):  # all ignored: nan, like PyTorch
            return _named(loss.sum() / _counted_total(target, ignore_index, class_weight, input.dtype), name)
    return _named(_reduce(loss, reduction), name)


def cross_entropy(input: Tensor, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """``nll_loss(log_softmax(input, class dim), target)``, or soft (probability) targets.

    ``target`` is either class indices (as for :func:`nll_loss`) or, with a float target
    of the input's shape, class probabilities.  ``label_smoothing`` mixes the target with
    the uniform distribution, as in PyTorch.

    >>> import symgrad
    >>> logits = symgrad.tensor([[2.0, 0.0, 0.0]], requires_grad=True)
    >>> loss = cross_entropy(logits, symgrad.tensor([0]))
    >>> loss
    tensor(0.2395, grad_fn=<NllLossBackward0>)
    >>> loss.backward(); logits.grad
    tensor([[-0.2130,  0.1065,  0.1065]])
    """
    _check_reduction(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    input = as_tensor(input)
    target = as_tensor(target)
    if input.ndim == 0:
        raise ValueError("cross_entropy: input must have at least one dimension (the classes), got a 0-d tensor")
    class_dim = 0 if input.ndim == 1 else 1
    n_classes = input.shape[class_dim]
    logp = apply_op("log_softmax", input, dim=class_dim)
    class_weight = _class_weight("cross_entropy", weight, n_classes, input.dtype)
    weight_view = None
    if class_weight is not None:
        shape = [1] * input.ndim
        shape[class_dim] = n_classes
        weight_view = class_weight.reshape(shape)

    if dtypes.is_floating(target.dtype):
        # probability targets: -(sum over classes of target * log p), mean over the rest
        if target.shape != input.shape:
            raise ValueError(
                f"cross_entropy: a float (probability) target must have the input's shape {list(input.shape)}, "
                f"got {list(target.shape)}; for class indices pass an integer target"
            )
        if label_smoothing > 0:
            target = target * (1 - label_smoothing) + label_smoothing / n_classes
        terms = logp * target if weight_view is None else logp * target * weight_view
        if reduction == "none":
            return -terms.sum(dim=class_dim)
        if reduction == "sum":
            return -terms.sum()
        return -terms.sum() / (input.numel() // n_classes)

    loss = nll_loss(logp, target, weight=weight, ignore_index=ignore_index, reduction=reduction)
    if label_smoothing == 0:
        return loss
    # PyTorch's smoothing term: -sum over classes of (weighted) log p, uniform target
    smooth = -(logp if weight_view is None else logp * weight_view).sum(dim=class_dim)
    if tracing.is_traced(target) or not np.all(target._data != ignore_index):
        smooth = apply_op("where", Tensor(tracing.derived_array(target, lambda c: c != ignore_index)), smooth, 0.0)
    if reduction == "sum":
        smooth = smooth.sum()
    elif reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            smooth = smooth.sum() / _counted_total(target, ignore_index, class_weight, input.dtype)
    return (1 - label_smoothing) * loss + smooth * (label_smoothing / n_classes)


# ---------------------------------------------------------------------- activations that are ops of the table
# (thin calls: the op's record in symgrad/ops/elementwise.py has the forward, the
# derivative and PyTorch's value at the kinks)
def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x * Phi(x)`` with the normal CDF ``Phi``, or PyTorch's tanh approximation
    (``approximate="tanh"``).

    >>> import symgrad
    >>> gelu(symgrad.tensor([0.0, 1.0]))
    tensor([0.0000, 0.8413])
    """
    return apply_op("gelu", input, approximate=approximate)


def silu(input: Tensor) -> Tensor:
    """``x * sigmoid(x)``.

    >>> import symgrad
    >>> silu(symgrad.tensor([0.0, 1.0]))
    tensor([0.0000, 0.7311])
    """
    return apply_op("silu", input)


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``; the gradient at 0 is
    ``alpha``, like PyTorch's.

    >>> import symgrad
    >>> elu(symgrad.tensor([-1.0, 2.0]), alpha=0.5)
    tensor([-0.3161,  2.0000])
    """
    return apply_op("elu", input, alpha=alpha)


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` where ``x > 0``, else ``negative_slope * x``; the gradient at 0 is
    ``negative_slope``, like PyTorch's.

    >>> import symgrad
    >>> leaky_relu(symgrad.tensor([-1.0, 2.0]), negative_slope=0.1)
    tensor([-0.1000,  2.0000])
    """
    return apply_op("leaky_relu", input, negative_slope=negative_slope)


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``.

    >>> import symgrad
    >>> softsign(symgrad.tensor([-1.0, 3.0]))
    tensor([-0.5000,  0.7500])
    """
    return apply_op("softsign", input)


__all__ += ["gelu", "silu", "elu", "leaky_relu", "softsign"]
