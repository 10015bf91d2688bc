"""W5: derivation + compile time against graph size (10 to 10,000 recorded ops).

A seeded random program over three arrays of 100 elements: each op is tanh, sin, cos,
a product or a sum of two recent values, or a scaling by a constant, so that the graph
is a DAG with shared subexpressions (like real models) and a depth that grows with its
size.  The loss is the sum of the last value.  For each size, each tool's one-off cost of
turning the program into a callable gradient is measured, each time in a fresh Python
process (cold caches; median of repeats):

* symgrad, by phase: graph -> SymPy (``Segment.build``), reverse-mode derivation
  (``adjoints``), compilation (CSE + printing + ``exec``), and end to end through
  ``symgrad.grad`` (trace + all of the above, first call);
* JAX: ``jit(grad(f))`` lowered and compiled;
* CasADi: the program on MX symbols, ``gradient`` and ``Function``;
* SymPy: ``diff`` and ``lambdify(cse=True)`` on scalar symbols (elementwise), given up
  on after a time limit.

Linear growth shows as a slope of 1 on the log-log plot.
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

from bench_harness import Row, TimedOut, compare

SIZES_FULL = [10, 100, 1_000, 10_000]
SIZES_QUICK = [10, 100, 1_000]
WIDTH = 100
LIMIT = 120.0  # seconds per measurement before a tool is given up on at this size


def program(m, xs, n_ops: int, seed: int = 0):
    """``n_ops`` random elementwise ops over the inputs ``xs`` with namespace ``m``
    (``symgrad.testing.generator.elementwise_dag``, shared with the growth tests)."""
    from symgrad.testing.generator import elementwise_dag

    return elementwise_dag(m, xs, n_ops, seed)


def inputs():
    rng = np.random.default_rng(5)
    return [rng.uniform(-1, 1, WIDTH) for _ in range(3)]


def _clear():
    from sympy.core.cache import clear_cache

    clear_cache()
    try:
        from symgrad.symbolic import compile_cache_clear

        compile_cache_clear()
    except ImportError:
        pass


# ---------------------------------------------------------------------------- one size, one tool
def symgrad_phases(size: int, data) -> tuple[dict, list]:
    import sympy as sp

    import symgrad
    from symgrad.symbolic.codegen.compile import CompiledFunction
    from symgrad.symbolic.derive.graph import Segment
    from symgrad.symbolic.derive.reverse import adjoints
    from symgrad.symbolic.forms.structural import exact

    _clear()
    xs = [symgrad.tensor(a, requires_grad=True, name=f"x{i}") for i, a in enumerate(data)]
    out = program(symgrad, xs, size - 1).sum()
    t0 = time.perf_counter()
    segment = Segment([out])
    symbols, (expr,) = segment.build()
    t1 = time.perf_counter()
    grads = adjoints([(expr, sp.S.One)], symbols)
    grads = [exact(g, s.array_shape) for g, s in zip(grads, symbols)]
    t2 = time.perf_counter()
    compiled = CompiledFunction(symbols, grads)
    t3 = time.perf_counter()
    values = compiled(*segment.values())
    grads_out = []
    for x in xs:  # an input the program never reads has a zero gradient
        i = next((i for i, r in enumerate(segment.inputs) if r.tensor is x), None)
        grads_out.append(np.zeros(WIDTH) if i is None else np.broadcast_to(np.asarray(values[i]), (WIDTH,)))
    return {"graph -> SymPy": t1 - t0, "derive": t2 - t1, "compile": t3 - t2}, grads_out


def symgrad_end_to_end(size: int, data) -> tuple[float, list]:
    import symgrad
    from bench_common import symgrad_functional

    F = symgrad_functional()
    _clear()
    g = F.grad(lambda x0, x1, x2: program(symgrad, [x0, x1, x2], size - 1).sum(), argnums=(0, 1, 2))
    t0 = time.perf_counter()
    out = g(*data)
    return time.perf_counter() - t0, [np.asarray(o) for o in out]


def jax_compile(size: int, data) -> tuple[float, list]:
    from bench_common import jax_modules

    jax, jnp = jax_modules()
    f = jax.grad(lambda x0, x1, x2: program(jnp, [x0, x1, x2], size - 1).sum(), argnums=(0, 1, 2))
    args = [jnp.asarray(a) for a in data]
    t0 = time.perf_counter()
    compiled = jax.jit(f).lower(*args).compile()
    dt = time.perf_counter() - t0
    return dt, [np.asarray(o) for o in compiled(*args)]


def casadi_compile(size: int, data) -> tuple[float, list]:
    import casadi as ca

    t0 = time.perf_counter()
    xs = [ca.MX.sym(f"x{i}", WIDTH) for i in range(3)]
    loss = ca.sum1(program(_CasadiNS, xs, size - 1))
    fn = ca.Function("g", xs, [ca.gradient(loss, x) for x in xs])
    dt = time.perf_counter() - t0
    return dt, [np.asarray(o.full()).ravel() for o in fn(*data)]


class _CasadiNS:
    """The namespace ``program`` needs, on CasADi symbols."""

    @staticmethod
    def tanh(a):
        import casadi

        return casadi.tanh(a)

    @staticmethod
    def sin(a):
        import casadi

        return casadi.sin(a)

    @staticmethod
    def cos(a):
        import casadi

        return casadi.cos(a)


def sympy_compile(size: int, data) -> tuple[float, list]:
    import sympy as sp

    _clear()
    xs = sp.symbols("x0 x1 x2", real=True)
    t0 = time.perf_counter()
    f = program(sp, list(xs), size - 1)
    grads = [sp.diff(f, x) for x in xs]
    fn = sp.lambdify(list(xs), grads, "numpy", cse=True)
    dt = time.perf_counter() - t0
    return dt, [np.broadcast_to(np.asarray(o, dtype=float), (WIDTH,)) for o in fn(*data)]


# ---------------------------------------------------------------------------- the workload
MEASURES = {
    "symgrad phases": ("symgrad", symgrad_phases),
    "symgrad: grad() end to end": ("symgrad", symgrad_end_to_end),
    "JAX: jit(grad) trace + compile": ("jax", jax_compile),
    "CasADi MX: gradient + Function": ("casadi", casadi_compile),
    "SymPy: diff + lambdify(cse)": ("sympy", sympy_compile),
}


def _measure_in_child(name: str, size: int, limit: float) -> tuple[Any, list]:
    """Run one measurement in a fresh interpreter (cold caches, nothing left over from
    other tools or sizes); returns ``(seconds or phase dict, gradients)``."""
    here = os.path.dirname(os.path.abspath(__file__))
    cmd = [sys.executable, os.path.join(here, "w5_scaling.py"), "--one", name, str(size)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), env.get("PYTHONPATH", "")])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        raise TimedOut(f"over {limit:.0f} s") from None
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(tail[:200])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["time"], [np.asarray(g) for g in out["grads"]]


def run(*, quick: bool, check: bool, log, available) -> tuple[list, dict]:
    sizes = SIZES_QUICK if quick else SIZES_FULL
    limit = 60.0 if quick else LIMIT
    sympy_limit = min(limit, 60.0)
    series: dict = {}
    rows: list = []
    notes: list = [f"each measurement runs in a fresh Python process (cold caches); a tool is given up on "
                   f"after {limit:.0f} s (SymPy: {sympy_limit:.0f} s) and not run at larger sizes"]

    def record(name, size_index, value):
        s = series.setdefault(name, {"times": [None] * len(sizes)})
        s["times"][size_index] = value

    for name, (key, _fn) in MEASURES.items():
        reason = available((key,))
        if reason:
            notes.append(f"{name} not measured: {reason}")
    given_up: set = set()
    for si, size in enumerate(sizes):
        repeats = 1 if quick or size > 1_000 else 3
        reference = None
        for name, (key, _fn) in MEASURES.items():
            if available((key,)) or name in given_up:
                continue
            if quick and key == "sympy" and size > 100:
                if "quick-sympy" not in given_up:
                    given_up.add("quick-sympy")
                    notes.append("SymPy: not run above 100 nodes with --quick")
                continue
            log(f"  W5 {size:,} nodes: {name}")
            times: list = []
            grads = None
            try:
                for _ in range(repeats):
                    value, grads = _measure_in_child(name, size, sympy_limit if key == "sympy" else limit)
                    times.append(value)
            except TimedOut as exc:
                given_up.add(name)
                notes.append(f"{name}: gave up at {size:,} nodes ({exc})")
                continue
            except Exception as exc:  # noqa: BLE001
                given_up.add(name)
                notes.append(f"{name}: failed at {size:,} nodes ({type(exc).__name__}: {str(exc)[:150]})")
                continue
            if name == "symgrad phases":
                for phase in times[0]:
                    record(f"symgrad: {phase}", si, statistics.median(t[phase] for t in times))
                record("symgrad: sum of phases", si, statistics.median(sum(t.values()) for t in times))
                reference = grads
            else:
                record(name, si, statistics.median(times))
            if check and grads is not None and name != "symgrad phases":
                row = Row("W5", f"{size} nodes", name, "tool")
                mismatch = compare(reference, grads, 1e-7, 1e-9) if reference is not None else "no reference"
                row.check = mismatch or "agrees"
                rows.append(row)
    for name, s in series.items():
        pts = [(size, t) for size, t in zip(sizes, s["times"]) if t]
        if len(pts) >= 2 and pts[-1][0] >= 1000:
            (n1, t1), (n2, t2) = pts[-2], pts[-1]
            s["slope"] = math.log(t2 / t1) / math.log(n2 / n1)
        else:
            s["slope"] = None
    return rows, {"sizes": sizes, "series": series, "notes": notes}


if __name__ == "__main__":  # one measurement, in a child process (see _measure_in_child)
    import warnings

    warnings.filterwarnings("ignore")
    if sys.argv[1:2] == ["--one"]:
        _name, _size = sys.argv[2], int(sys.argv[3])
        _value, _grads = MEASURES[_name][1](_size, inputs())
        print(json.dumps({"time": _value, "grads": [np.asarray(g, dtype=float).tolist() for g in _grads]}))
