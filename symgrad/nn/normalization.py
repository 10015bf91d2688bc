"""Normalization layers: ``LayerNorm`` and ``BatchNorm1d``, over :mod:`symgrad.nn.functional`.

Both start with ``weight`` ones and ``bias`` zeros, as PyTorch's.  ``BatchNorm1d`` keeps
``running_mean``, ``running_var`` and ``num_batches_tracked`` as buffers (so they are in
``state_dict``); it normalizes with the batch's statistics in ``train()`` mode and with the
running ones in ``eval()`` mode.
"""
from __future__ import annotations

import numpy as np

from ..tape import devices, dtypes
from ..tape.tensor import Tensor
from . import functional as F
from .layers import check_size
from .module import Module
from .parameter import Parameter


def _affine(module: Module, shape: tuple[int, ...], weight: bool, bias: bool, dtype) -> None:
    """Register ``weight`` (ones) and ``bias`` (zeros) of ``shape``, or None for each one switched off."""
    if weight:
        module.weight = Parameter(Tensor(np.ones(shape, dtype)))
    else:
        module.register_parameter("weight", None)
    if bias:
        module.bias = Parameter(Tensor(np.zeros(shape, dtype)))
    else:
        module.register_parameter("bias", None)


def _float_dtype(dtype):
    return dtypes.get_default_dtype() if dtype is None else dtypes.to_dtype(dtype)


class LayerNorm(Module):
    """Normalize over the trailing ``normalized_shape`` dimensions, then scale and shift.

    >>> import symgrad
    >>> from symgrad import nn
    >>> norm = nn.LayerNorm(2)
    >>> norm
    LayerNorm((2,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> norm(symgrad.tensor([[1.0, 3.0], [0.0, -4.0]]))
    tensor([[-1.0000,  1.0000],
            [ 1.0000, -1.0000]], grad_fn=<NativeLayerNormBackward0>)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        devices.check_cpu(device, "LayerNorm")
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        self.normalized_shape = tuple(check_size("LayerNorm", "normalized_shape entry", size) for size in shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _affine(self, self.normalized_shape, elementwise_affine, elementwise_affine and bias, _float_dtype(dtype))

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


class BatchNorm1d(Module):
    """Batch normalization of ``(N, C)`` or ``(N, C, L)`` inputs over ``num_features = C`` channels.

    ``momentum=None`` makes the running statistics a cumulative average (factor
    ``1 / num_batches_tracked``), as in PyTorch; ``track_running_stats=False`` keeps none
    and always normalizes with the batch's statistics.

    >>> import symgrad
    >>> from symgrad import nn
    >>> bn = nn.BatchNorm1d(1)
    >>> bn(symgrad.tensor([[1.0], [3.0]]))
    tensor([[-1.0000],
            [ 1.0000]], grad_fn=<NativeBatchNormBackward0>)
    >>> bn.running_mean, bn.running_var, bn.num_batches_tracked
    (tensor([0.2000]), tensor([1.1000]), tensor(1))
    >>> bn.eval()(symgrad.tensor([[0.2]]))
    tensor([[0.]], grad_fn=<NativeBatchNormBackward0>)
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True) -> None:
        super().__init__()
        devices.check_cpu(device, "BatchNorm1d")
        self.num_features = check_size("BatchNorm1d", "num_features", num_features)
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"BatchNorm1d: momentum must be in [0, 1] or None, got {momentum}")
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dtype = _float_dtype(dtype)
        _affine(self, (self.num_features,), affine, affine and bias, dtype)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches tracked."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim not in (2, 3):
            raise ValueError(f"BatchNorm1d: expected 2D or 3D input (got {input.ndim}D input of shape "
                             f"{list(input.shape)})")
        if input.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d: input has {input.shape[1]} channels (dim 1 of {list(input.shape)}), "
                             f"the layer was built for num_features={self.num_features}")
        counting = self.training and self.track_running_stats
        momentum = self.momentum
        if momentum is None:  # cumulative average over the batches seen, this one included
            momentum = 1.0 / (int(self.num_batches_tracked) + 1) if counting else 0.0
        tracked = not self.training or self.track_running_stats
        out = F.batch_norm(input, self.running_mean if tracked else None, self.running_var if tracked else None,
                           self.weight, self.bias, self.training or self.running_mean is None, momentum, self.eps)
        if counting:  # after the call, which raises before changing anything for a bad input
            self.num_batches_tracked.add_(1)
        return out

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")
