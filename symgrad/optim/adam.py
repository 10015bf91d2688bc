"""``Adam`` (and AMSGrad) and ``AdamW``: adaptive moment estimation with PyTorch's exact update.

Per step ``t`` (``torch.optim.Adam``, single-tensor path, the one PyTorch uses on CPU)::

    g = grad + weight_decay * param           (AdamW, decoupled: param = param * (1 - lr * weight_decay))
    m = lerp(m, g, 1 - beta1)                 # m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    vmax = max(vmax, v)                       (amsgrad only; then vmax replaces v below)
    denom = sqrt(v) / sqrt(1 - beta2**t) + eps
    param = param - (lr / (1 - beta1**t)) * m / denom
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from ..tape.tensor import Tensor
from .optimizer import Optimizer, as_dtype, check_nonnegative, lerp_


class Adam(Optimizer):
    """Adam with bias correction; ``amsgrad=True`` keeps the running maximum of ``v``.

    >>> import symgrad
    >>> w = symgrad.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> w  # the first Adam step moves each coordinate by lr
    tensor([ 0.9000, -0.9000], requires_grad=True)
    >>> Adam([w], betas=(0.9, 1.0))
    Traceback (most recent call last):
    ...
    ValueError: Invalid beta parameter at index 1: 1.0 (betas must be in [0, 1))
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0, amsgrad: bool = False, *,
                 maximize: bool = False, decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        super()._check_group(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        group["betas"] = tuple(float(beta) for beta in betas)
        if not group["eps"] >= 0.0:
            raise ValueError(f"Invalid epsilon value: {group['eps']} (it must be >= 0)")
        for index, beta in enumerate(group["betas"]):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {index}: {beta} (betas must be in [0, 1))")
        check_nonnegative(group, "weight_decay")

    def _update(self, group: dict[str, Any], param: np.ndarray, grad: np.ndarray, state: dict) -> np.ndarray:
        beta1, beta2 = group["betas"]
        if not state:
            state["step"] = Tensor(np.zeros((), np.float32))
            state["exp_avg"] = Tensor(np.zeros_like(param))
            state["exp_avg_sq"] = Tensor(np.zeros_like(param))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor(np.zeros_like(param))
        step_data = state["step"].numpy()
        step_data += 1
        step = float(step_data)
        if group["weight_decay"] != 0:
            if group["decoupled_weight_decay"]:
                param *= as_dtype(1 - group["lr"] * group["weight_decay"], param)
            else:
                grad = grad + as_dtype(group["weight_decay"], param) * param
        exp_avg, exp_avg_sq = state["exp_avg"].numpy(), state["exp_avg_sq"].numpy()
        lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq *= as_dtype(beta2, exp_avg_sq)
        exp_avg_sq += (as_dtype(1 - beta2, grad) * grad) * grad
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = group["lr"] / bias_correction1
        bias_correction2_sqrt = math.sqrt(bias_correction2)
        second = exp_avg_sq
        if group["amsgrad"]:
            second = state["max_exp_avg_sq"].numpy()
            np.maximum(second, exp_avg_sq, out=second)
        denom = np.sqrt(second) / as_dtype(bias_correction2_sqrt, second) + as_dtype(group["eps"], second)
        return (as_dtype(-step_size, exp_avg) * exp_avg) / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter): each step first scales the
    parameter by ``1 - lr * weight_decay``, instead of adding ``weight_decay * param`` to the
    gradient.  ``Adam(..., decoupled_weight_decay=True)`` with PyTorch's default
    ``weight_decay=0.01``.

    >>> import symgrad
    >>> w = symgrad.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> (w * w).sum().backward(); opt.step()
    >>> w  # 1 * (1 - 0.1 * 0.5) - 0.1
    tensor([ 0.8500, -0.8500], requires_grad=True)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
