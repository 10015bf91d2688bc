"""``symgrad.nn.utils``: helpers on parameters' gradients (``clip_grad_norm_``), as in PyTorch."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from ..tape import dtypes
from ..tape.grad_mode import no_grad
from ..tape.tensor import Tensor

__all__ = ["clip_grad_norm_"]


def clip_grad_norm_(parameters: "Tensor | Iterable[Tensor]", max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Scale every ``.grad`` in place so that their joint ``norm_type``-norm is at most
    ``max_norm``; returns the norm before clipping (a 0-d tensor), as PyTorch.

    The scale is ``max_norm / (total + 1e-6)``, applied only when it is below 1.
    Parameters without a gradient are skipped.

    >>> import symgrad
    >>> w = symgrad.tensor([3.0, 4.0], requires_grad=True)
    >>> (w * w).sum().backward()         # grad [6, 8], norm 10
    >>> clip_grad_norm_([w], max_norm=5.0)
    tensor(10.)
    >>> w.grad
    tensor([3.0000, 4.0000])
    """
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for index, param in enumerate(params):
        if not isinstance(param, Tensor):
            raise TypeError(f"clip_grad_norm_: parameter {index} is a {type(param).__name__}, not a Tensor")
    norm_type = float(norm_type)
    if not (norm_type > 0 or norm_type == math.inf):
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf, got {norm_type}")
    max_norm = float(max_norm)
    grads = [param.grad.detach()._data for param in params if param.grad is not None]
    if not grads:
        return Tensor(np.zeros((), dtypes.get_default_dtype()))
    dtype = np.result_type(*grads)
    if norm_type == math.inf:
        per_grad = [np.max(np.abs(g)) if g.size else np.zeros((), g.dtype) for g in grads]
        total = np.max(np.asarray(per_grad, dtype))
    else:
        per_grad = [np.sum(np.abs(g) ** norm_type) ** (1.0 / norm_type) for g in grads]
        total = np.sum(np.asarray(per_grad, dtype) ** norm_type) ** (1.0 / norm_type)
    total = np.asarray(total, dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, so it cannot be "
            "clipped. To disable this error and scale the gradients by the non-finite norm anyway, set "
            "`error_if_nonfinite=False`"
        )
    scale = np.minimum(np.asarray(max_norm / (total + 1e-6), dtype), np.asarray(1.0, dtype))
    with no_grad():
        for param in params:
            if param.grad is not None:
                param.grad.mul_(Tensor(scale.astype(param.grad.dtype)))
    return Tensor(total)
