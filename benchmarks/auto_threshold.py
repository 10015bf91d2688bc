"""Measure what ``backend="auto"``'s thresholds rest on: the C backend's compile time and
the per-call gain of C over NumPy, for the benchmarked programs at several sizes.

    python benchmarks/auto_threshold.py

For each program: the ``"c"`` backend's compile of the closed forms (code generation and
``gcc``, in a fresh build directory), the NumPy backend's code generation of the same
forms, the fastest and median call on each backend, and what a compile pays back after:
calls, and the NumPy time those calls take (what ``PAYBACK_SECONDS`` compares with).
The results set ``PAYBACK_SECONDS`` and ``MIN_CALL_SECONDS`` in
``symgrad/symbolic/codegen/backends/auto.py`` (see ``docs/backends.md``).
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

import numpy as np

import symgrad
from symgrad.symbolic import compile_cache_clear
from symgrad.symbolic.codegen.backends import get_backend
from w1_formula import inputs as w1_inputs, w1
from w2_rosenbrock import point, rosen
from w3_logreg import data as w3_data, w3


def _times(call, k: int) -> tuple[float, float]:
    out = []
    for _ in range(k):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return min(out), statistics.median(out)


def _compile_time(backend: str, compiled) -> float:
    build = tempfile.mkdtemp(prefix="symgrad-auto-threshold-")
    os.environ["SYMGRAD_BUILD_DIR"] = build
    try:
        t0 = time.perf_counter()
        get_backend(backend).compile(compiled.symbols, list(compiled.exprs.values()), output_names=compiled.outputs)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(build, ignore_errors=True)


def measure(name: str, make, args: list, k: int) -> None:
    compile_cache_clear()
    on_numpy, on_c = make("numpy"), make("c")
    on_numpy(*args)
    on_c(*args)
    c_compile = _compile_time("c", on_numpy.compiled)
    numpy_codegen = _compile_time("numpy", on_numpy.compiled)
    numpy_best, numpy_median = _times(lambda: on_numpy(*args), k)
    c_best, c_median = _times(lambda: on_c(*args), k)
    gain = numpy_best - c_best
    pays = (f"after {c_compile / gain:,.0f} calls = {c_compile / gain * numpy_best:.2f} s of NumPy calls"
            if gain > 0 else "never (C is slower)")
    print(f"| {name} | {on_c.compiled.backend} | {c_compile * 1e3:.0f} ms | {numpy_codegen * 1e3:.1f} ms | "
          f"{numpy_best * 1e6:,.1f} us ({numpy_median * 1e6:,.1f}) | {c_best * 1e6:,.1f} us ({c_median * 1e6:,.1f}) | "
          f"{pays} |", flush=True)


def _inner(a, c):
    """A sum inside an elementwise expression: a plan of two C loops."""
    return (symgrad.tanh(a * c) + symgrad.exp(-a) * c.sum()).sum()


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| program | C backend | C compile | NumPy codegen | NumPy call: best (median) | C call: best (median) "
          "| a compile pays back |")
    print("|---|---|---:|---:|---:|---:|---|")
    for n in (10, 1_000, 10_000, 100_000, 1_000_000):
        data = w1_inputs(n)
        measure(f"W1, n = {n:,}", lambda b: symgrad.value_and_grad(w1, argnums=(0, 1, 2), backend=b), data,
                30 if n < 10 ** 6 else 8)
    for n in (10, 1_000, 10_000, 100_000, 1_000_000):
        measure(f"W2 vectorised, n = {n:,}", lambda b: symgrad.grad(rosen, backend=b), [point(n)], 30)
    X, W, b, Y = w3_data()
    Xt, Yt = symgrad.tensor(X), symgrad.tensor(Y)
    measure("W3", lambda be: symgrad.value_and_grad(lambda W, b: w3(W, b, Xt, Yt), argnums=(0, 1), backend=be),
            [W, b], 20)
    for n in (5, 1_000, 100_000):
        measure(f"a sum inside, n = {n:,}", lambda be: symgrad.value_and_grad(_inner, argnums=(0, 1), backend=be),
                [np.linspace(0, 1, n), np.linspace(1, 2, n)], 30)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
