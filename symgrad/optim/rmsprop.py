"""``RMSprop``: gradients divided by a running root mean square, with PyTorch's exact update.

Per step (``torch.optim.RMSprop``, single-tensor path)::

    g = grad + weight_decay * param
    square_avg = alpha * square_avg + (1 - alpha) * g * g
    avg = sqrt(square_avg) + eps                          (centered: grad_avg = lerp(grad_avg, g, 1 - alpha),
                                                            avg = sqrt(square_avg - grad_avg**2) + eps)
    buf = momentum * buf + g / avg; param = param - lr * buf    (momentum > 0)
    param = param - lr * g / avg                                (otherwise)
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..tape.tensor import Tensor
from .optimizer import Optimizer, as_dtype, check_nonnegative, lerp_


class RMSprop(Optimizer):
    """RMSprop (Hinton's), optionally centered and with momentum.

    >>> import symgrad
    >>> w = symgrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = RMSprop([w], lr=0.01, alpha=0.9)
    >>> (w * w).sum().backward(); opt.step()
    >>> w  # the first step is lr / sqrt(1 - alpha) times the gradient's sign
    tensor([ 0.9684, -1.9684], requires_grad=True)
    >>> RMSprop([w], alpha=-0.5)
    Traceback (most recent call last):
    ...
    ValueError: Invalid alpha value: -0.5 (it must be >= 0)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_nonnegative(group, "eps", "momentum", "weight_decay", "alpha")

    def _update(self, group: dict[str, Any], param: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        if not state:
            state["step"] = Tensor(np.zeros((), np.float32))
            state["square_avg"] = Tensor(np.zeros_like(param))
            if group["momentum"] > 0:
                state["momentum_buffer"] = Tensor(np.zeros_like(param))
            if group["centered"]:
                state["grad_avg"] = Tensor(np.zeros_like(param))
        state["step"].numpy()[...] += 1
        alpha = group["alpha"]
        if group["weight_decay"] != 0:
            grad = grad + as_dtype(group["weight_decay"], param) * param
        square_avg = state["square_avg"].numpy()
        square_avg *= as_dtype(alpha, square_avg)
        square_avg += (as_dtype(1 - alpha, grad) * grad) * grad
        if group["centered"]:
            grad_avg = state["grad_avg"].numpy()
            lerp_(grad_avg, grad, 1 - alpha)
            avg = np.sqrt(square_avg + (as_dtype(-1, grad_avg) * grad_avg) * grad_avg)
        else:
            avg = np.sqrt(square_avg)
        avg += as_dtype(group["eps"], avg)
        if group["momentum"] > 0:
            buf = state["momentum_buffer"].numpy()
            buf *= as_dtype(group["momentum"], buf)
            buf += grad / avg
            return as_dtype(-group["lr"], buf) * buf
        return as_dtype(-group["lr"], grad) * (grad / avg)
