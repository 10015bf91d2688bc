"""Shared helpers of the symbolic engine's tests: central differences.  (Random inputs
come from the ``rng`` fixture of symgrad's plugin, seeded from the session seed.)"""
from __future__ import annotations

import numpy as np
import pytest


def central_vjp(forward, arrays: list, g: np.ndarray, index: int, eps: float = 1e-6) -> np.ndarray:
    """d/dx_index of sum(g * forward(*arrays)) by central differences, element by element."""
    x = np.array(arrays[index], dtype=np.float64)
    out = np.zeros_like(x)
    for k in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[k] += eps
        minus[k] -= eps
        args_p = list(arrays)
        args_m = list(arrays)
        args_p[index], args_m[index] = plus, minus
        out[k] = (np.sum(g * forward(*args_p)) - np.sum(g * forward(*args_m))) / (2 * eps)
    return out


@pytest.fixture
def fd():
    return central_vjp
