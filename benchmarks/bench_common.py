"""Small helpers the workloads share: a stopwatch, and tool imports set up alike.

Every tool computes in float64 (JAX with ``jax_enable_x64``), except W4, which follows
the tutorial's float32.  Thread counts are each tool's default on this machine (printed
in the report's environment table).
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np


@contextmanager
def stopwatch(into: dict, key: str):
    """``with stopwatch(setup, "derive"): ...`` stores the elapsed seconds."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - t0


def jax_modules():
    """``(jax, jax.numpy)`` with 64-bit floats on the CPU."""
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platforms", "cpu")
    import jax.numpy as jnp

    return jax, jnp


def symgrad_functional():
    """symgrad's JAX-style transforms (``grad``, ``value_and_grad``)."""
    import symgrad

    for name in ("value_and_grad", "grad"):
        if not hasattr(symgrad, name):
            from symgrad.symbolic import transforms

            return transforms
    return symgrad


def fresh_build_dir() -> str:
    """Point symgrad's C backends at a new, empty build directory, so that the setup time
    measured next includes running the C compiler (not a library compiled by an earlier run)."""
    import atexit
    import os
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="symgrad-bench-build-")
    atexit.register(shutil.rmtree, path, True)
    os.environ["SYMGRAD_BUILD_DIR"] = path
    return path


def as_numpy(values) -> list:
    """Tool outputs (torch tensors, JAX arrays, DMs, scalars) as NumPy arrays."""
    out = []
    for v in values:
        if hasattr(v, "_data") and hasattr(v, "grad_fn"):  # symgrad tensor
            v = v._data
        elif hasattr(v, "detach"):  # torch tensor
            v = v.detach().cpu().numpy()
        elif hasattr(v, "full"):  # casadi DM
            v = np.asarray(v.full())
        out.append(np.asarray(v, dtype=np.float64))
    return out


def block(value):
    """Wait for asynchronous results (JAX dispatches asynchronously)."""
    if hasattr(value, "block_until_ready"):
        value.block_until_ready()
    elif isinstance(value, (tuple, list)):
        for v in value:
            block(v)
    return value
