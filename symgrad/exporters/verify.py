"""Verification of written code against symgrad's engines, before anything is moved into place.

:func:`verify` evaluates the written code (already imported or built) at the example
arguments and at random points near them, and compares every output with two references:
symgrad's compiled closed form and the eager tape engine.  The random points multiply
each floating entry of the examples by ``exp(0.25 z)``, ``z`` standard normal: every entry
keeps its sign (and zeros stay zero), so a point stays in the domain the example was in
(``log`` of positive inputs, ``sqrt`` of non-negative ones).  Integer inputs (class labels)
keep their example values.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import ExportVerificationError
from .program import Program

RANDOM_POINTS = 3
"""How many random points verification checks besides the example arguments."""


def verification_points(program: Program, seed: int = 0) -> list[tuple[str, list[np.ndarray]]]:
    """``(description, inputs)``: the example arguments, then :data:`RANDOM_POINTS` random points near them."""
    rng = np.random.default_rng(seed)
    points = [("the example arguments", list(program.examples))]
    for k in range(RANDOM_POINTS):
        values = [e * np.exp(0.25 * rng.standard_normal(e.shape)).astype(e.dtype)
                  if np.issubdtype(e.dtype, np.floating) else e.copy() for e in program.examples]
        points.append((f"random point {k + 1} (seed {seed})", values))
    return points


def _describe(point: str, program: Program, values: Sequence[np.ndarray]) -> str:
    shown = ", ".join(f"{n}={np.array2string(np.asarray(v), threshold=6, precision=4, separator=', ')}"
                      for n, v in zip(program.input_names, values))
    return f"{point} ({shown})"


def verify(target: str, program: Program, written: Callable[[Sequence[np.ndarray]], list]) -> int:
    """Raise :class:`ExportVerificationError` where ``written`` (``inputs -> [(label, output
    index, array)]``) disagrees with symgrad's references; return the number of points checked."""
    from ..testing import close_tolerances

    points = verification_points(program)
    for point, values in points:
        references = {"symgrad's closed form": program.symbolic_reference(values),
                      "the tape engine": program.tape_reference(values)}
        for label, index, got in written(values):
            got = np.asarray(got)
            for engine, outputs in references.items():
                expected = outputs[index]
                where = _describe(point, program, values)
                if got.shape != expected.shape:
                    raise ExportVerificationError(target, label, where, float("nan"),
                                                  f" (shape {got.shape}, {engine} gives {expected.shape})")
                rtol, atol = close_tolerances(np.result_type(*program.input_dtypes))
                if not np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True):
                    difference = float(np.max(np.abs(got.astype(float) - expected.astype(float))))
                    raise ExportVerificationError(target, label, where, difference, f" (against {engine})")
    return len(points)
