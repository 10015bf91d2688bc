"""Finite differences: the reference every gradient check compares against.

Central differences ``(f(x + h d) - f(x - h d)) / 2h`` along a direction ``d`` (one input
element, or a random direction in fast mode), always in float64: the inputs being
perturbed are copied to float64 before the function sees them, so a float32 function is
checked against an accurate reference.  The one-sided quotients ``(f(x + h d) - f(x)) / h``
and ``(f(x) - f(x - h d)) / h`` come for free and tell a kink from a wrong gradient.

>>> import symgrad
>>> x = symgrad.tensor([1.0, 2.0], requires_grad=True)
>>> numerical_jacobian(lambda x: x ** 2, (x,))[0][0].round(6)
array([[2., 0.],
       [0., 4.]])
"""
from __future__ import annotations

import numpy as np

from ..tape.tensor import Tensor
from .engines import as_outputs

__all__ = ["FiniteDifferences", "numerical_jacobian", "differentiable_positions"]


def differentiable_positions(args: tuple) -> list[int]:
    """Positions of the arguments a check differentiates: Tensors that require grad, each
    tensor once (its first position) when it is passed several times."""
    positions, seen = [], set()
    for i, a in enumerate(args):
        if isinstance(a, Tensor) and a.requires_grad and id(a) not in seen:
            seen.add(id(a))
            positions.append(i)
    return positions


class FiniteDifferences:
    """Evaluates ``func`` around the point ``args``, perturbing the inputs at ``diff``.

    ``upcast=True`` evaluates in float64; if the function refuses float64 inputs (it raises),
    the inputs' own dtype is used and :attr:`upcast` becomes False.  :attr:`f0` holds the
    flattened outputs at the point itself.
    """

    def __init__(self, func, args: tuple, diff: list[int], upcast: bool = True) -> None:
        self.func = func
        self.args = args
        self.diff = diff
        self.upcast = upcast
        self.evaluations = 0
        try:
            self.base = [self._copy(args[i]) for i in diff]
            self.f0 = self.evaluate(self.base)
        except Exception:  # noqa: BLE001  (retry in the inputs' own dtype)
            if not upcast:
                raise
            self.upcast = False
            self.base = [self._copy(args[i]) for i in diff]
            self.f0 = self.evaluate(self.base)

    def _copy(self, tensor: Tensor) -> np.ndarray:
        return np.array(tensor._data, dtype=np.float64 if self.upcast else tensor.dtype)

    def evaluate(self, values: list[np.ndarray]) -> list[np.ndarray]:
        """The function's floating outputs, flattened to float64, with the perturbed inputs
        replaced by ``values`` (fresh leaves that require grad, as the originals do)."""
        call = list(self.args)
        for k, i in enumerate(self.diff):
            fresh = Tensor(np.array(values[k]), requires_grad=True, name=getattr(self.args[i], "name", None))
            for j, arg in enumerate(self.args):  # a tensor passed twice is perturbed everywhere at once
                if arg is self.args[i]:
                    call[j] = fresh
        self.evaluations += 1
        return [np.asarray(out._data, np.float64).ravel() for _, out in as_outputs(self.func(*call))]

    def difference(self, k: int, direction: np.ndarray, h: float) -> tuple[list, list]:
        """Outputs at ``x + h d`` and ``x - h d``, where ``d`` moves the ``k``-th perturbed input."""
        results = []
        for sign in (1.0, -1.0):
            values = list(self.base)
            values[k] = (self.base[k] + sign * h * direction.reshape(self.base[k].shape)).astype(self.base[k].dtype)
            results.append(self.evaluate(values))
        return results[0], results[1]


def numerical_jacobian(func, inputs, eps: float = 1e-6) -> list[list[np.ndarray]]:
    """The Jacobian of ``func`` by central differences in float64, as
    ``[output][input]`` blocks of shape ``(output.numel(), input.numel())``; only inputs
    that require grad are perturbed (and listed)."""
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    diff = differentiable_positions(args)
    fd = FiniteDifferences(func, args, diff)
    blocks = [[np.zeros((f.size, fd.base[k].size)) for k in range(len(diff))] for f in fd.f0]
    for k in range(len(diff)):
        for j in range(fd.base[k].size):
            direction = np.zeros(fd.base[k].size)
            direction[j] = 1.0
            plus, minus = fd.difference(k, direction, eps)
            for o in range(len(fd.f0)):
                blocks[o][k][:, j] = (plus[o] - minus[o]) / (2 * eps)
    return blocks
