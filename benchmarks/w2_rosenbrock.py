"""W2: gradient of the Rosenbrock function, n = 1,000 (one point), and vectorised against n.

    f(x) = sum_{i<n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2

(the chained form of ``scipy.optimize.rosen``).  Two ways of writing it for symgrad:

* a **vectorised program** over one array ``x`` (slices, powers, a sum), traced once and
  compiled to NumPy by ``symgrad.grad``;
* a **plain SymPy expression of n scalar symbols** ``x0 .. x{n-1}`` (what SymPy users
  have), differentiated by symgrad's reverse mode -- SymPy's own
  ``[diff(f, xi) for xi in xs]`` is quadratic in n.

The floor is the hand-written NumPy gradient (``scipy.optimize.rosen_der``'s formula);
it is also the reference of the peak memory measured at n = 10^6 (:data:`MEMORY_N`).
"""
from __future__ import annotations

import numpy as np

from bench_common import (UNTRACED, as_numpy, block, export_cases, fresh_build_dir, jax_modules, settle_default,
                          stopwatch, symgrad_functional)
from bench_harness import Case, Group, Prepared, Skip

N_POINT = 1000
SWEEP_FULL = [10, 100, 1_000, 10_000, 100_000, 1_000_000]
SWEEP_QUICK = [10, 1_000, 100_000, 1_000_000]
MEMORY_N = 1_000_000  # the sweep's size where each tool's peak memory is measured too
HAND = "hand-written NumPy (floor)"
PLAIN_SMALL = 200  # where SymPy's own diff + lambdify still finishes in seconds


def rosen(x):
    """The vectorised Rosenbrock function over any array library with slicing."""
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def rosen_der(x):
    """The hand-written NumPy gradient (the floor)."""
    xm, xm_m1, xm_p1 = x[1:-1], x[:-2], x[2:]
    der = np.zeros_like(x)
    der[1:-1] = 200 * (xm - xm_m1 ** 2) - 400 * (xm_p1 - xm ** 2) * xm - 2 * (1 - xm)
    der[0] = -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])
    der[-1] = 200 * (x[-1] - x[-2] ** 2)
    return der


def point(n: int) -> np.ndarray:
    return np.random.default_rng(2).uniform(-1.5, 1.5, n)


def groups(quick: bool) -> list[Group]:
    n = N_POINT
    x = point(n)
    state: dict = {}
    main = [
        Case(HAND, lambda: _hand(x), role="floor", requires=("numpy",)),
        Case("symgrad grad (default)", lambda: _symgrad(x, {}, backend="auto"), role="symgrad", requires=("symgrad",),
             note="no backend= given: 'auto', warmed up until it settled on NumPy or C"),
        Case("symgrad grad (NumPy)", lambda: _symgrad(x, state), role="symgrad", requires=("symgrad",)),
        Case("symgrad grad (C backend)", lambda: _symgrad_c(x), role="symgrad", requires=("symgrad", "cc"),
             note="backend='c': the value and gradient as one stencil loop over x"),
        Case("symgrad compiled code, no wrapper", lambda: _symgrad_raw(x, state), role="symgrad",
             requires=("symgrad",), note="the generated NumPy function called directly (CompiledFunction.fn)"),
        Case("symgrad eager, symbolic backward", lambda: _symgrad_eager(x, "symbolic"), role="symgrad",
             requires=("symgrad",)),
        Case("symgrad eager, tape backward", lambda: _symgrad_eager(x, "tape"), role="symgrad", requires=("symgrad",)),
        *export_cases(rosen, (x,), 0),
        Case("symgrad SymPy form (NumPy)", lambda: _plain_symgrad(x), role="symgrad", requires=("symgrad",),
             note="symgrad.grad(expr, xs) on the expression of n scalar symbols, called with n floats"),
        Case("symgrad SymPy form (C backend)", lambda: _plain_c(x, packed=False), role="symgrad",
             requires=("symgrad", "cc"), note="symgrad.grad(expr, xs, backend='c'), called with n floats"),
        Case("symgrad SymPy form (C backend), call_packed", lambda: _plain_c(x, packed=True), role="symgrad",
             requires=("symgrad", "cc"), note="the same compiled function's call_packed(x): vector in, vector out"),
        Case("symgrad SymPy form -> symengine LLVM (prototype)", lambda: _plain_symengine(x),
             role="symgrad", requires=("symgrad", "symengine"), quick=False),
        Case("symengine diff + LLVM", lambda: _symengine(x), requires=("symengine",), quick=False, timeout=120),
        Case("SymPy diff + lambdify(cse)", lambda: _sympy(x), requires=("sympy",), quick=False, heavy=True,
             timeout=300, note="SymPy's own gradient is checked at n=200 below"),
        Case("CasADi (SX)", lambda: _casadi(x), requires=("casadi",), untraced=UNTRACED["casadi"]),
        Case("JAX jit", lambda: _jax(x), requires=("jax",), untraced=UNTRACED["jax"]),
        Case("torch eager", lambda: _torch(x), requires=("torch",), untraced=UNTRACED["torch"]),
        Case("torch.compile", lambda: _torch_compile(x), requires=("torch",), quick=False,
             untraced=UNTRACED["torch"]),
        Case("HIPS autograd", lambda: _autograd(x), requires=("autograd",)),
    ]
    out = [Group("W2", f"n={n:,}, one point", main, reference="symgrad grad (NumPy)", rtol=1e-9, atol=1e-9,
                 params={"n": n})]
    xs = point(PLAIN_SMALL)
    plain = [
        Case("symgrad SymPy form (NumPy)", lambda: _plain_symgrad(xs), role="symgrad", requires=("symgrad",)),
        Case("symgrad SymPy form (C backend)", lambda: _plain_c(xs, packed=False), role="symgrad",
             requires=("symgrad", "cc")),
        Case("symgrad SymPy form (C backend), call_packed", lambda: _plain_c(xs, packed=True), role="symgrad",
             requires=("symgrad", "cc")),
        Case("SymPy diff + lambdify(cse)", lambda: _sympy(xs), requires=("sympy",), timeout=300, quick=False),
        Case("symengine diff + LLVM", lambda: _symengine(xs), requires=("symengine",), timeout=120),
        Case("CasADi (SX)", lambda: _casadi(xs), requires=("casadi",)),
    ]
    out.append(Group("W2", f"plain SymPy form, n={PLAIN_SMALL}", plain, reference="symgrad SymPy form (NumPy)",
                     rtol=1e-9, atol=1e-9, params={"n": PLAIN_SMALL}))
    for m in (SWEEP_QUICK if quick else SWEEP_FULL):
        xm = point(m)
        st: dict = {}
        sweep = [
            Case(HAND, lambda xm=xm: _hand(xm), role="floor", requires=("numpy",)),
            Case("symgrad grad (default)", lambda xm=xm: _symgrad(xm, {}, backend="auto"), role="symgrad",
                 requires=("symgrad",)),
            Case("symgrad grad (NumPy)", lambda xm=xm, st=st: _symgrad(xm, st), role="symgrad", requires=("symgrad",)),
            Case("symgrad grad (C backend)", lambda xm=xm: _symgrad_c(xm), role="symgrad", requires=("symgrad", "cc")),
            Case("symgrad eager, symbolic backward", lambda xm=xm: _symgrad_eager(xm, "symbolic"), role="symgrad",
                 requires=("symgrad",)),
            Case("symgrad eager, tape backward", lambda xm=xm: _symgrad_eager(xm, "tape"), role="symgrad",
                 requires=("symgrad",)),
            Case("JAX jit", lambda xm=xm: _jax(xm), requires=("jax",), untraced=UNTRACED["jax"]),
            Case("torch eager", lambda xm=xm: _torch(xm), requires=("torch",), untraced=UNTRACED["torch"]),
            # the exported code at the largest n, where the loop rather than the call is timed
            *(export_cases(rosen, (xm,), 0) if m == MEMORY_N else []),
        ]
        out.append(Group("W2", f"vectorised, n={m:,}", sweep, reference="symgrad grad (NumPy)", rtol=1e-9,
                         atol=1e-8, params={"n": m}, memory=m == MEMORY_N, memory_reference=HAND))
    return out


# ---------------------------------------------------------------------------- cases
def _hand(x):
    return Prepared(lambda: rosen_der(x), lambda: [rosen_der(x)])


def _clear_sympy_cache():
    from sympy.core.cache import clear_cache

    clear_cache()


def _symgrad(x, state, backend="numpy"):
    """``grad`` on ``backend``; "auto" (the default, so no ``backend=`` given) is warmed up
    until it has settled on NumPy or C."""
    F = symgrad_functional()
    _clear_sympy_cache()
    if backend == "auto":
        fresh_build_dir()
        g = F.grad(rosen)
    else:
        g = F.grad(rosen, backend=backend)
    setup: dict = {}
    with stopwatch(setup, "trace+derive+compile"):
        g(x)
    note = settle_default(g, lambda: g(x), setup) if backend == "auto" else ""
    state["g"] = g
    return Prepared(lambda: g(x), lambda: [g(x)], setup, note=note)


def _symgrad_c(x):
    from symgrad.symbolic import compile_cache_clear

    F = symgrad_functional()
    _clear_sympy_cache()
    compile_cache_clear()
    fresh_build_dir()
    g = F.grad(rosen, backend="c")
    setup: dict = {}
    with stopwatch(setup, "trace+derive+compile+first call"):
        g(x)
    return Prepared(lambda: g(x), lambda: [g(x)], setup)


def _symgrad_raw(x, state):
    g = state.get("g")
    if g is None:
        raise Skip("needs the symgrad grad case")
    fn = g.compiled.fn
    return Prepared(lambda: fn(x), lambda: [fn(x)[0]])


def _symgrad_eager(x, engine):
    import symgrad

    t = symgrad.tensor(x, requires_grad=True)

    def call():
        with symgrad.backward_engine(engine):
            return symgrad.autograd.grad(rosen(t), [t])[0]

    setup: dict = {}
    with stopwatch(setup, "first call"):
        call()
    return Prepared(call, lambda: as_numpy([call()]), setup)


def _plain_expression(n):
    import sympy as sp

    xs = sp.symbols(f"x0:{n}", real=True)
    f = sp.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1)])
    return xs, f


def _plain_symgrad(x):
    F = symgrad_functional()
    setup: dict = {}
    with stopwatch(setup, "build expression"):
        xs, f = _plain_expression(len(x))
    _clear_sympy_cache()
    g = F.grad(f, list(xs), args=list(xs), backend="numpy")
    values = [float(v) for v in x]
    with stopwatch(setup, "derive+compile"):
        g(*values)
    setup.pop("build expression")

    def grads():
        return [np.array([float(v) for v in g(*values)])]

    return Prepared(lambda: g(*values), grads, setup)


def _plain_c(x, packed):
    from symgrad.symbolic import compile_cache_clear

    F = symgrad_functional()
    xs, f = _plain_expression(len(x))
    _clear_sympy_cache()
    compile_cache_clear()
    fresh_build_dir()
    g = F.grad(f, list(xs), args=list(xs), backend="c")
    values = [float(v) for v in x]
    setup: dict = {}
    with stopwatch(setup, "derive+compile"):
        g(*values)
    if packed:
        call = g.compiled.call_packed
        return Prepared(lambda: call(x), lambda: [call(x)], setup)
    return Prepared(lambda: g(*values), lambda: [np.array([float(v) for v in g(*values)])], setup)


def _plain_symengine(x):
    import symgrad.symbolic as S

    import proto_backends as pb

    setup: dict = {}
    xs, f = _plain_expression(len(x))
    _clear_sympy_cache()
    with stopwatch(setup, "derive"):
        grads = S.gradient(f, list(xs))
    with stopwatch(setup, "backend compile"):
        backend = pb.symengine_scalar(list(xs), grads)
    return Prepared(lambda: backend(x), lambda: [np.asarray(backend(x)).ravel()], setup)


def _sympy(x):
    import sympy as sp

    xs, f = _plain_expression(len(x))
    _clear_sympy_cache()
    setup: dict = {}
    with stopwatch(setup, "derive"):
        grads = [sp.diff(f, xi) for xi in xs]
    with stopwatch(setup, "compile"):
        fn = sp.lambdify([list(xs)], grads, "numpy", cse=True)
    return Prepared(lambda: fn(x), lambda: [np.asarray(fn(x), dtype=float)], setup)


def _symengine(x):
    import symengine as se

    n = len(x)
    xs = se.symbols(f"x0:{n}")
    setup: dict = {}
    f = se.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1)])
    with stopwatch(setup, "derive"):
        grads = [f.diff(xi) for xi in xs]
    with stopwatch(setup, "compile"):
        fn = se.Lambdify(list(xs), grads, backend="llvm", cse=True, opt_level=2)
    return Prepared(lambda: fn(x), lambda: [np.asarray(fn(x)).ravel()], setup)


def _casadi(x):
    import casadi as ca

    n = len(x)
    setup: dict = {}
    with stopwatch(setup, "derive+compile"):
        v = ca.SX.sym("x", n)
        f = ca.sum1(100 * (v[1:] - v[:-1] ** 2) ** 2 + (1 - v[:-1]) ** 2)
        fn = ca.Function("g", [v], [ca.gradient(f, v)])

    def call():
        return fn(x)

    return Prepared(call, lambda: [np.asarray(call().full()).ravel()], setup)


def _jax(x):
    jax, jnp = jax_modules()
    xj = jnp.asarray(x)
    fn = jax.jit(jax.grad(rosen))
    setup: dict = {}
    with stopwatch(setup, "trace+compile+first call"):
        block(fn(xj))
    return Prepared(lambda: block(fn(xj)), lambda: as_numpy([fn(xj)]), setup)


def _torch(x):
    import torch

    t = torch.from_numpy(x).requires_grad_()

    def call():
        return torch.autograd.grad(rosen(t), [t])[0]

    return Prepared(call, lambda: as_numpy([call()]))


def _torch_compile(x):
    import torch

    t = torch.from_numpy(x)
    fn = torch.compile(torch.func.grad(rosen))
    setup: dict = {}
    with stopwatch(setup, "compile+first call"):
        fn(t)
    return Prepared(lambda: fn(t), lambda: as_numpy([fn(t)]), setup)


def _autograd(x):
    import autograd

    fn = autograd.grad(rosen)
    return Prepared(lambda: fn(x), lambda: [fn(x)])
