"""Which comparison tools are installed here, their versions, and the machine's settings.

Every tool is optional: a case lists the keys it needs (``requires=("jax",)``) and is
skipped, with the reason, when one is missing.  ``TOOLS`` maps a key to the module
whose import proves it is there.
"""
from __future__ import annotations

import importlib
import os
import platform
import subprocess
from functools import lru_cache

TOOLS = {
    "numpy": "numpy",
    "sympy": "sympy",
    "symgrad": "symgrad",
    "torch": "torch",
    "jax": "jax",
    "autograd": "autograd",
    "casadi": "casadi",
    "numexpr": "numexpr",
    "symengine": "symengine",
    "numba": "numba",
    "matplotlib": "matplotlib",
    "threadpoolctl": "threadpoolctl",
    "cc": None,  # the C compiler symgrad's C backends use (backend="c")
}

INSTALL_HINT = "pip install 'symgrad[bench]'"


@lru_cache(maxsize=None)
def status(key: str) -> str:
    """'' if the tool ``key`` can be used, else why not."""
    if key == "cc":
        return "" if c_compiler() else "no C compiler ($CC, cc or gcc on PATH) for symgrad's C backends"
    module = TOOLS[key]
    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001  (an installed but broken tool counts as missing)
        return f"{module} not importable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); {INSTALL_HINT}"
    if key == "symengine":
        import symengine

        try:
            x = symengine.Symbol("x")
            symengine.Lambdify([x], [x], backend="llvm")
        except Exception as exc:  # noqa: BLE001
            return f"symengine has no LLVM backend ({exc})"
    return ""


def missing(keys: tuple) -> str:
    """The reason the first unavailable tool of ``keys`` cannot run, or ''."""
    for key in keys:
        reason = status(key)
        if reason:
            return reason
    return ""


@lru_cache(maxsize=None)
def c_compiler() -> str | None:
    """The compiler symgrad's C backends would run (``$CC``, else ``cc``, else ``gcc``), or None."""
    from symgrad.symbolic.codegen.backends import CompilerNotFoundError
    from symgrad.symbolic.codegen.backends.cbuild import find_compiler

    try:
        return find_compiler()[0]
    except CompilerNotFoundError:
        return None


def version(key: str) -> str:
    if key == "cc":
        cc = c_compiler()
        if not cc:
            return "--"
        try:
            out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=10).stdout
            return out.splitlines()[0]
        except Exception:  # noqa: BLE001
            return cc
    if status(key):
        return "not installed"
    try:
        from importlib.metadata import version as dist_version

        return dist_version({"symgrad": "symgrad"}.get(key, key))
    except Exception:  # noqa: BLE001  (not installed as a distribution: read the module)
        module = importlib.import_module(TOOLS[key])
        return str(getattr(module, "__version__", "?"))


def environment() -> dict:
    """Machine facts worth printing beside the numbers."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE", "(unset)"),
    }
    if os.environ.get("SYMGRAD_BENCH_THREADS"):
        info["threads cap (--threads)"] = os.environ["SYMGRAD_BENCH_THREADS"]
    try:
        info["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    if not status("threadpoolctl"):
        from threadpoolctl import threadpool_info

        info["blas"] = "; ".join(
            f"{p.get('internal_api')} {p.get('version')} {p.get('architecture', '')} x{p.get('num_threads')}"
            for p in threadpool_info() if p.get("user_api") == "blas")
    if not status("torch"):
        import torch

        info["torch threads"] = torch.get_num_threads()
    if not status("numexpr"):
        import numexpr

        info["numexpr threads"] = numexpr.nthreads
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"
