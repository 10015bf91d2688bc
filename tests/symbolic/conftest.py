"""Shared helpers of the symbolic engine's tests: central differences, the C compiler and
the backends.  (Random inputs come from the ``rng`` fixture of symgrad's plugin, seeded
from the session seed.)"""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def cc() -> list[str]:
    """The C compiler command the C backends use; the test skips where there is none."""
    from symgrad.symbolic.codegen.backends import CompilerNotFoundError
    from symgrad.symbolic.codegen.backends.cbuild import find_compiler

    try:
        return find_compiler()
    except CompilerNotFoundError as err:
        pytest.skip(f"no C compiler: {err}")


@pytest.fixture(params=["numpy", "c"])
def backend(request) -> str:
    """Each compiled-code backend by name (the C one skips without a compiler)."""
    if request.param != "numpy":
        request.getfixturevalue("cc")
    return request.param


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
