"""Finite differences that know their error: the one reference every gradient check
(``gradcheck``, ``check_grad``, ``check_hvp``, the ``symgrad`` command) compares against.

A derivative along a direction ``d`` is estimated from central differences
``D(h) = (f(x + h d) - f(x - h d)) / 2h`` at two steps, ``h`` and ``h/2``, combined by one
Richardson extrapolation ``R = (4 D(h/2) - D(h)) / 3``, which cancels the ``h**2`` term of
the error.  Every estimate carries its own error, per output element:

* **truncation** -- ``|D(h) - D(h/2)| / 3``, the error left in ``D(h/2)``, a bound on the
  (smaller) error of ``R`` for smooth functions; it is large where the stencil straddles a
  kink or the function is rough on the scale of ``h``;
* **rounding** -- ``3 u M / h``, where ``u`` is the unit roundoff of the dtype the function
  computed in and ``M`` the largest ``|f|`` seen on the stencil: the noise a difference of
  two values of size ``M`` has, carried through the extrapolation.  One huge term of a sum
  makes ``M`` huge, and this is what says so.

The step is chosen per dtype and per element: ``h = u**(1/5) * max(|x_j|, 1)`` (``u**(1/5)``
balances the extrapolated truncation error, of order ``h**4``, with the rounding error, of
order ``u/h``: 7.4e-4 in float64, 0.041 in float32).  When the estimated error of an
element is above its target, the step adapts to the function: 8 times smaller when
truncation dominates, 8 times larger when rounding does (twice at most), and each output
element keeps the estimate with the smaller error.  The inputs are copied to float64 when
the function accepts it; a function that refuses float64 is evaluated in its inputs' own
dtype, and then the steps and the rounding estimate are that dtype's.

The one-sided quotients at step ``h/2`` come for free and tell a kink from a wrong gradient.

>>> import symgrad
>>> x = symgrad.tensor([1.0, 2.0], requires_grad=True)
>>> numerical_jacobian(lambda x: x ** 2, (x,))[0][0].round(10)
array([[2., 0.],
       [0., 4.]])
>>> estimate = derivative(lambda t: [np.exp(np.array([1.0 + t]))], [np.exp(np.array([1.0]))], step_for(1.0))
>>> bool(abs(estimate.value[0][0] - np.e) <= estimate.error[0][0] < 1e-8)
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..tape.tensor import Tensor
from .engines import as_outputs

__all__ = ["FiniteDifferences", "Estimate", "derivative", "step_for", "unit_roundoff", "numerical_jacobian",
           "differentiable_positions", "ADAPTATIONS", "STEP_FACTOR"]

ADAPTATIONS = 2
"""How many times the step may grow or shrink (by :data:`STEP_FACTOR`) for an element whose
estimated error is above its target."""

STEP_FACTOR = 8.0
"""By how much an adapted step grows (rounding dominates) or shrinks (truncation dominates)."""


def unit_roundoff(dtype) -> float:
    """The machine epsilon of a floating dtype (of float64 for anything else).

    >>> unit_roundoff(np.float32)
    1.1920928955078125e-07
    """
    dtype = np.dtype(dtype)
    return float(np.finfo(dtype if dtype.kind == "f" else np.float64).eps)


def step_for(value: float, dtype=np.float64) -> float:
    """The first step of a central difference at ``value`` in ``dtype``:
    ``u**(1/5) * max(|value|, 1)``.

    >>> round(step_for(0.5), 6), round(step_for(100.0), 4), round(step_for(1.0, np.float32), 4)
    (0.00074, 0.074, 0.0412)
    """
    return unit_roundoff(dtype) ** 0.2 * max(abs(float(value)), 1.0)


@dataclass
class Estimate:
    """A directional derivative by central differences, per output (a list of flat arrays).

    ``value`` is the Richardson-extrapolated derivative, ``error`` = ``truncation`` +
    ``rounding`` its estimated error, ``step`` the first step used for each element of each
    output, ``plus``/``minus`` the one-sided quotients ``(f(x + s d) - f(x)) / s`` and
    ``(f(x) - f(x - s d)) / s`` at ``s = step / 2``.
    """

    value: list
    truncation: list
    rounding: list
    step: list
    plus: list
    minus: list

    @property
    def error(self) -> list:
        return [t + r for t, r in zip(self.truncation, self.rounding)]


def _extrapolate(evaluate: Callable, f0: list, step: float, roundoff: float) -> Estimate:
    """Central differences at ``step`` and ``step / 2``, one Richardson step, and its error."""
    half = step / 2
    far_plus, far_minus, near_plus, near_minus = evaluate(step), evaluate(-step), evaluate(half), evaluate(-half)
    parts: dict = {name: [] for name in ("value", "truncation", "rounding", "step", "plus", "minus")}
    with np.errstate(all="ignore"):
        for o, base in enumerate(f0):
            coarse = (far_plus[o] - far_minus[o]) / (2 * step)
            fine = (near_plus[o] - near_minus[o]) / (2 * half)
            magnitude = np.max(np.abs([base, far_plus[o], far_minus[o], near_plus[o], near_minus[o]]), axis=0)
            parts["value"].append((4 * fine - coarse) / 3)
            parts["truncation"].append(np.abs(coarse - fine) / 3)
            parts["rounding"].append(3 * roundoff * magnitude / step)
            parts["step"].append(np.full(base.shape, step))
            parts["plus"].append((near_plus[o] - base) / half)
            parts["minus"].append((base - near_minus[o]) / half)
    return Estimate(**parts)


def derivative(evaluate: Callable, f0: list, step: float, roundoff: float = unit_roundoff(np.float64),
               target: Callable | None = None, adapt: bool = True) -> Estimate:
    """The derivative of ``t -> evaluate(t)`` at ``t = 0``, with its error, per output element.

    ``evaluate(t)`` returns the function's outputs at ``x + t d`` as a list of flat float64
    arrays, ``f0`` those at ``x``; ``roundoff`` is the unit roundoff of the arithmetic the
    function ran in.  ``target(value)`` is the error each element should stay below
    (default: ``1e-8 * (1 + |value|)``); with ``adapt``, an element above it is estimated
    again with a step :data:`STEP_FACTOR` times smaller (when truncation dominates) or larger
    (when rounding does), at most :data:`ADAPTATIONS` times, keeping the better estimate.
    """
    target = target or (lambda value: 1e-8 * (1 + np.abs(value)))
    best = _extrapolate(evaluate, f0, step, roundoff)
    if not adapt:
        return best
    for direction in (1 / STEP_FACTOR, STEP_FACTOR):
        current = step
        for _ in range(ADAPTATIONS):
            errors = best.error
            wanting = [(e > target(v)) & ((t > r) if direction < 1 else (r >= t))
                       for e, v, t, r in zip(errors, best.value, best.truncation, best.rounding)]
            if not any(w.any() for w in wanting):
                break
            current *= direction
            trial = _extrapolate(evaluate, f0, current, roundoff)
            for o, better in enumerate(wanting):
                better = better & (trial.error[o] < errors[o])
                for name in ("value", "truncation", "rounding", "step", "plus", "minus"):
                    getattr(best, name)[o] = np.where(better, getattr(trial, name)[o], getattr(best, name)[o])
    return best


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
    flattened outputs at the point itself, :attr:`roundoff` the unit roundoff of the least
    precise of the dtypes the function computed in (its inputs' and its outputs').
    """

    def __init__(self, func, args: tuple, diff: list[int], upcast: bool = True) -> None:
        self.func = func
        self.args = args
        self.diff = diff
        self.upcast = upcast
        self.evaluations = 0
        self.roundoff = 0.0
        try:
            self.base = [self._copy(args[i]) for i in diff]
            self.f0 = self.evaluate(self.base)
        except Exception:  # noqa: BLE001  (retry in the inputs' own dtype)
            if not upcast:
                raise
            self.upcast = False
            self.base = [self._copy(args[i]) for i in diff]
            self.f0 = self.evaluate(self.base)
        self.roundoff = max([self.roundoff, *(unit_roundoff(b.dtype) for b in self.base)])

    @property
    def dtype(self) -> np.dtype:
        """The least precise dtype the perturbed inputs are evaluated in."""
        return max((b.dtype for b in self.base), key=unit_roundoff, default=np.dtype(np.float64))

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
        outputs = [out for _, out in as_outputs(self.func(*call))]
        self.roundoff = max([self.roundoff, *(unit_roundoff(out.dtype) for out in outputs)])
        return [np.asarray(out._data, np.float64).ravel() for out in outputs]

    def moved(self, k: int, direction: np.ndarray) -> Callable:
        """``t -> outputs at x + t d``, where ``d`` moves the ``k``-th perturbed input."""
        def evaluate(t: float) -> list[np.ndarray]:
            values = list(self.base)
            values[k] = (self.base[k] + t * direction.reshape(self.base[k].shape)).astype(self.base[k].dtype)
            return self.evaluate(values)
        return evaluate

    def step(self, k: int, direction: np.ndarray) -> float:
        """The first step along ``direction`` (see :func:`step_for`): scaled to the largest
        ``|x_j|`` it moves, per unit of the direction's largest entry."""
        moving = np.abs(direction) > 0
        scale = float(np.max(np.abs(self.base[k].ravel()[moving]), initial=0.0))
        return step_for(scale, self.dtype) / float(np.max(np.abs(direction), initial=1.0))

    def derivative(self, k: int, direction: np.ndarray, step: float | None = None, target=None,
                   project: Callable | None = None) -> Estimate:
        """The derivative of every output along ``direction`` in the ``k``-th perturbed input.

        ``step=None`` chooses and adapts it (:func:`derivative`); a given step is used as is.
        ``project(o, values)`` maps the flat values of output ``o`` to what is compared (a
        random projection in fast mode)."""
        moved = self.moved(k, direction)
        f0 = self.f0
        if project is not None:
            f0 = [project(o, f) for o, f in enumerate(f0)]
            evaluate = lambda t: [project(o, f) for o, f in enumerate(moved(t))]  # noqa: E731
        else:
            evaluate = moved
        return derivative(evaluate, f0, self.step(k, direction) if step is None else step, self.roundoff,
                          target, adapt=step is None)


def numerical_jacobian(func, inputs, eps: float | None = None) -> list[list[np.ndarray]]:
    """The Jacobian of ``func`` by extrapolated central differences in float64, as
    ``[output][input]`` blocks of shape ``(output.numel(), input.numel())``; only inputs
    that require grad are perturbed (and listed).  ``eps`` fixes the step (default: chosen
    per element, see :func:`step_for`)."""
    args = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    diff = differentiable_positions(args)
    fd = FiniteDifferences(func, args, diff)
    blocks = [[np.zeros((f.size, fd.base[k].size)) for k in range(len(diff))] for f in fd.f0]
    for k in range(len(diff)):
        for j in range(fd.base[k].size):
            estimate = fd.derivative(k, np.eye(1, fd.base[k].size, j).ravel(), eps)
            for o in range(len(fd.f0)):
                blocks[o][k][:, j] = estimate.value[o]
    return blocks
