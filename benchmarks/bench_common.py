"""Small helpers the workloads share: a stopwatch, and tool imports set up alike.

Every tool computes in float64 (JAX with ``jax_enable_x64``), except W4, which follows
the tutorial's float32.  Thread counts are each tool's default on this machine (printed
in the report's environment table).
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np


UNTRACED = {
    "torch": "torch's CPU allocator does not report to tracemalloc",
    "jax": "XLA's allocator does not report to tracemalloc",
    "numba": "numba allocates its arrays outside NumPy, unseen by tracemalloc",
    "casadi": "CasADi's buffers are allocated in C++, unseen by tracemalloc",
}
"""Why a tool's peak memory is not measured (``Case.untraced``): tracemalloc sees only
Python objects and the data of NumPy arrays."""


@contextmanager
def stopwatch(into: dict, key: str):
    """``with stopwatch(setup, "derive"): ...`` stores the elapsed seconds."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - t0


def settle_default(transform, call, setup: dict, limit: float = 30.0) -> str:
    """Warm up symgrad's default backend (``"auto"``) as a program calling ``transform`` in a
    loop would: call ``call`` until ``transform.compiled`` has settled on NumPy or C (the
    NumPy calls that pay for a compile, the C compile, C's trial calls; at most ``limit``
    seconds), timed as setup.  Returns a note saying which backend runs and why."""
    t0 = time.perf_counter()
    with stopwatch(setup, "tier-up (NumPy calls, C compile, trial)"):
        while not transform.compiled.settled and time.perf_counter() - t0 < limit:
            call()
    compiled = transform.compiled
    runs = compiled.native.backend if compiled.tier == "c" else "numpy"
    return f"backend='auto' runs on {runs}: {compiled.reason}"


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



def export_cases(f, args, argnums) -> list:
    """The cases timing what ``symgrad.export`` writes for ``f`` (:func:`exported_case`):
    the NumPy module, and the C file built plain (``cc -O2``), with the flags its header
    recommends, and with those for this machine (the in-process C backend's flags)."""
    from bench_harness import Case
    from symgrad.exporters.c_target import NATIVE_FLAGS, PLAIN_FLAGS, RECOMMENDED_FLAGS

    c_builds = [(PLAIN_FLAGS, "cc -O2"), (RECOMMENDED_FLAGS, "cc " + " ".join(RECOMMENDED_FLAGS)),
                (NATIVE_FLAGS, "+ " + " ".join(NATIVE_FLAGS[len(RECOMMENDED_FLAGS):]))]
    return [
        Case("symgrad export -> NumPy module", lambda: exported_case(f, args, argnums, "numpy"), role="symgrad",
             requires=("symgrad",), note="symgrad.export(target='numpy'): the written module's value_and_grad"),
        *[Case(f"symgrad export -> C ({label})", lambda flags=flags: exported_case(f, args, argnums, "c", flags),
               role="symgrad", requires=("symgrad", "cc"),
               note=f"symgrad.export(target='c') built with cc {' '.join(flags)}, called through ctypes")
          for flags, label in c_builds],
    ]


def exported_case(f, args, argnums, target: str, flags: list | None = None):
    """A case timing the code ``symgrad.export(f, *args, argnums=argnums, target=target)``
    writes, called on ``args``: the NumPy module's ``value_and_grad``, or the C file built
    with ``flags`` (here as a shared library) and called through ctypes.
    The export (derive, write, verify) and the build are its setup; a program the C target
    refuses is a :class:`~bench_harness.Skip` with the exporter's reason."""
    import tempfile
    from pathlib import Path

    import symgrad
    from bench_harness import Prepared, Skip

    wrt = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    path = Path(tempfile.mkdtemp(prefix="symgrad-bench-export-")) / f"{f.__name__}.{'py' if target == 'numpy' else 'c'}"
    setup: dict = {}
    with stopwatch(setup, "export (derive+write+verify)"):
        try:
            exported = symgrad.export(f, *args, argnums=argnums, target=target, path=path)
        except symgrad.ExportError as err:
            raise Skip(f"the {target} target refuses: {err}") from None
    if target == "numpy":
        from symgrad.exporters.numpy_target import import_fresh

        value_and_grad = import_fresh(path).value_and_grad

        def grads():
            out = value_and_grad(*args)[1]
            return list(out) if isinstance(argnums, tuple) else [out]

        return Prepared(lambda: value_and_grad(*args), grads, setup)
    with stopwatch(setup, "cc"):
        call = _built_c(exported, f.__name__, args, wrt, flags)
    return Prepared(call, lambda: call()[1:], setup)


def _built_c(exported, name: str, args, wrt: tuple, flags: list):
    """``name_value_and_grad`` of the exported C files, built with ``flags`` and bound to
    ``args`` (with the lengths and the workspace its ABI asks for): a call returning
    ``[value, *grads]`` in new arrays."""
    import ctypes
    import subprocess

    from bench_tools import c_compiler
    from symgrad.exporters.c_target import abi

    source, header = exported.paths
    library = source.with_name(f"lib{name}.so")
    subprocess.run([c_compiler(), *flags, "-shared", "-fPIC", "-o", str(library), str(source), "-lm"], check=True)
    function = getattr(ctypes.CDLL(str(library)), f"{name}_value_and_grad")
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in args]
    pointers = [ctypes.c_void_p(a.ctypes.data) for a in arrays]
    shape = abi(exported.program, header.read_text())
    lengths = [ctypes.c_long(value) for _, _, value in shape.lengths]

    def call():  # new outputs and workspace per call, as the in-process backend allocates its intermediates
        outs = [np.empty(())] + [np.empty(arrays[i].shape) for i in wrt]
        work = [np.empty(shape.work)] if shape.work else []
        status = function(*lengths, *pointers, *[ctypes.c_void_p(o.ctypes.data) for o in outs + work])
        if status != 0:
            raise RuntimeError(f"{name}_value_and_grad returned {status}")
        return outs

    return call
