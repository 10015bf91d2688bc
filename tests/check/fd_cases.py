"""Hard cases for finite differences, shared by the test of symgrad's error estimates
(tests/check/test_finite_differences.py) and the comparison with numdifftools
(benchmarks/fd_hard_cases.py, whose table is in docs/testing.md).

Each case: a NumPy function of ``x`` (a scalar, or ``elementwise`` per element), its exact
gradient, and the point.  ``float32_only`` functions refuse float64 inputs, as some
library code does, so finite differences must run in float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def _float32_only(f):
    def wrapped(x):
        if np.asarray(x).dtype != np.float32:
            raise TypeError(f"float32 only, got {np.asarray(x).dtype}")
        return f(x)
    return wrapped


@dataclass(frozen=True)
class Case:
    name: str
    f: Callable
    gradient: Callable
    x: tuple
    dtype: type = np.float64
    elementwise: bool = False

    def point(self) -> np.ndarray:
        return np.array(self.x, dtype=self.dtype)


CASES = [
    Case("one large term in a sum", lambda x: np.exp(-x).sum(), lambda x: -np.exp(-x), (0.0, 0.0, -17.0)),
    Case("float32-only x**2", _float32_only(lambda x: (x * x).sum()), lambda x: 2 * x, (1.0, -2.5, 3.0),
         np.float32),
    Case("float32-only sin", _float32_only(lambda x: np.sin(x).sum()), np.cos, (0.3, -1.2, 2.0), np.float32),
    Case("tiny x", lambda x: np.log1p(x).sum(), lambda x: 1 / (1 + x), (1e-9, -3e-12)),
    Case("huge x, log", lambda x: np.log(x).sum(), lambda x: 1 / x, (1e8, 3e10)),
    Case("huge x, x**2", lambda x: (x * x).sum(), lambda x: 2 * x, (1e6, -4e7)),
    Case("steep: 1/x near 0", lambda x: (1 / x).sum(), lambda x: -1 / x ** 2, (0.01, -0.003)),
    Case("exp(x) at 30", lambda x: np.exp(x).sum(), np.exp, (30.0, 1.0)),
    Case("near a kink: abs(x)", lambda x: np.abs(x).sum(), np.sign, (1e-3, -2e-3)),
    Case("elementwise exp(-x), large terms", lambda x: np.exp(-x), lambda x: -np.exp(-x), (0.0, -17.0, 5.0),
         elementwise=True),
    Case("elementwise tanh", lambda x: np.tanh(x), lambda x: 1 - np.tanh(x) ** 2, (0.1, -3.0, 8.0),
         elementwise=True),
]
"""Hard cases where the rounding and truncation model holds (see also :data:`HIDDEN_CANCELLATION`)."""

HIDDEN_CANCELLATION = Case("hidden cancellation: (x + 1e8) - 1e8", lambda x: ((x + 1e8) - 1e8).sum(),
                           lambda x: np.ones_like(x), (0.5, -0.25))
"""Rounding inside the function that its value does not show: symgrad's rounding estimate
only sees ``|f|`` (the benchmark reports it; the test of stated errors leaves it out)."""
