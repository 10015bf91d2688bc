"""``SGD``: stochastic gradient descent with momentum, dampening, weight decay and Nesterov.

The update is PyTorch's, step for step (``torch.optim.SGD``, single-tensor path)::

    g = grad + weight_decay * param
    buf = g                                         (first step)
    buf = momentum * buf + (1 - dampening) * g      (later steps)
    g = g + momentum * buf  if nesterov  else  buf  (when momentum != 0)
    param = param - lr * g
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..tape.tensor import Tensor
from .optimizer import Optimizer, as_dtype, check_nonnegative


class SGD(Optimizer):
    """Gradient descent: ``param -= lr * grad`` (plus momentum and weight decay if asked).

    >>> import symgrad
    >>> w = symgrad.tensor([1.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> w
    tensor([0.4600], requires_grad=True)
    >>> SGD([w], lr=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: Invalid learning rate: -1.0 (it must be >= 0)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_nonnegative(group, "momentum", "weight_decay")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                "Nesterov momentum requires a momentum and zero dampening, got "
                f"momentum={group['momentum']}, dampening={group['dampening']}"
            )

    def _update(self, group: dict[str, Any], param: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + as_dtype(weight_decay, param) * param
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = Tensor(grad.copy())
            else:
                data = buf.numpy()
                data *= as_dtype(momentum, data)
                data += as_dtype(1 - group["dampening"], data) * grad
            if group["nesterov"]:
                grad = grad + as_dtype(momentum, grad) * buf.numpy()
            else:
                grad = buf.numpy()
        return as_dtype(-lr, param) * grad
