"""``Adagrad``: per-coordinate steps shrinking with the sum of squared gradients, PyTorch's update.

Per step ``t`` (``torch.optim.Adagrad``, single-tensor path)::

    g = grad + weight_decay * param
    clr = lr / (1 + (t - 1) * lr_decay)
    sum = sum + g * g                       (starts at initial_accumulator_value)
    param = param - clr * g / (sqrt(sum) + eps)

PyTorch makes every parameter's state when the optimizer is built; symgrad makes it at a
parameter's first step, like its other optimizers (``state_dict`` agrees once every
parameter has taken a step).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..tape.tensor import Tensor
from .optimizer import Optimizer, as_dtype, check_nonnegative


class Adagrad(Optimizer):
    """Adagrad with PyTorch's learning-rate decay and initial accumulator.

    >>> import symgrad
    >>> w = symgrad.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = Adagrad([w], lr=0.5)
    >>> (w * w).sum().backward(); opt.step()
    >>> w  # the first step moves each coordinate by lr
    tensor([ 0.5000, -1.5000], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0, weight_decay: float = 0,
                 initial_accumulator_value: float = 0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        check_nonnegative(group, "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    def _update(self, group: dict[str, Any], param: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        if not state:
            state["step"] = Tensor(np.zeros((), np.float32))
            state["sum"] = Tensor(np.full_like(param, group["initial_accumulator_value"]))
        step_data = state["step"].numpy()
        step_data += 1
        if group["weight_decay"] != 0:
            grad = grad + as_dtype(group["weight_decay"], param) * param
        clr = group["lr"] / (1 + (float(step_data) - 1) * group["lr_decay"])
        total = state["sum"].numpy()
        total += grad * grad
        std = np.sqrt(total) + as_dtype(group["eps"], total)
        return as_dtype(-clr, grad) * (grad / std)
