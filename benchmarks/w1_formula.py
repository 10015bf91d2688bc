"""W1: value and gradient of a 3-input elementwise formula at 10^6 points.

    f(x, y, z) = sin(x y) exp(-z) + log(1 + x^2) tanh(y) + cos(z) (y^2 + z^2 + 1)^1.5
    L = sum_i f(x_i, y_i, z_i);   outputs: L, dL/dx, dL/dy, dL/dz  (three arrays of 10^6)

Uses sin, exp, log, tanh, cos and a non-integer power.  The physical floor is one
``np.sin`` pass over one input array: any tool reads 3 arrays, writes 3, and evaluates
about ten transcendental functions per point.  The hand-written NumPy gradient
(:func:`hand_value_and_grad`) is the reference of the peak-memory column.
"""
from __future__ import annotations

import numpy as np

from bench_common import (UNTRACED, as_numpy, block, export_cases, fresh_build_dir, jax_modules, settle_default,
                          stopwatch, symgrad_functional)
from bench_harness import Case, Group, Prepared, Skip

N_POINTS = 1_000_000
HAND = "hand-written NumPy gradient"


def formula(m, x, y, z):
    """The formula over any namespace ``m`` with sin, exp, log, tanh, cos."""
    return m.sin(x * y) * m.exp(-z) + m.log(1 + x * x) * m.tanh(y) + m.cos(z) * (y * y + z * z + 1) ** 1.5


def w1(x, y, z):
    """L over symgrad tensors: what symgrad's cases differentiate, compile and export."""
    import symgrad

    return formula(symgrad, x, y, z).sum()


def hand_value_and_grad(x, y, z):
    """L and its gradient written by hand in NumPy, naming each shared factor once, as
    one would without a tool (the peak-memory reference)."""
    xy = x * y
    e = np.exp(-z)
    s = np.sin(xy) * e
    c = np.cos(xy) * e
    x2 = 1 + x * x
    lg = np.log(x2)
    th = np.tanh(y)
    cz = np.cos(z)
    r2 = y * y + z * z + 1
    r = np.sqrt(r2)
    r3 = r2 * r
    value = (s + lg * th + cz * r3).sum()
    k = 3 * cz * r  # d/dr2 of cos(z) r2**1.5, times 2
    return value, (y * c + 2 * x / x2 * th, x * c + lg * (1 - th * th) + k * y, k * z - s - np.sin(z) * r3)


def inputs(n: int):
    rng = np.random.default_rng(1)
    return [np.ascontiguousarray(a) for a in rng.uniform(-1.0, 1.0, (3, n))]


def groups(quick: bool) -> list[Group]:
    n = N_POINTS
    data = inputs(n)
    state: dict = {}
    cases = [
        Case("np.sin pass (floor)", lambda: _floor(data), role="floor", requires=("numpy",)),
        Case(HAND, lambda: _hand(data), requires=("numpy",),
             note="hand_value_and_grad: the gradient derived by hand, each shared factor named once"),
        Case("symgrad value_and_grad (default)", lambda: _symgrad_default(data), role="symgrad",
             requires=("symgrad",), note="no backend= given: 'auto', warmed up until it settled on NumPy or C"),
        Case("symgrad value_and_grad (NumPy)", lambda: _symgrad_functional(data, state), role="symgrad",
             requires=("symgrad",)),
        Case("symgrad value_and_grad (C backend)", lambda: _symgrad_functional(data, {}, backend="c"),
             role="symgrad", requires=("symgrad", "cc"),
             note="backend='c': generated C, one fused multithreaded loop, glibc libmvec (symgrad.symbolic.codegen.backends)"),
        Case("symgrad C backend, compiled function only", lambda: _symgrad_compiled_only(data, state), role="symgrad",
             requires=("symgrad", "cc"), note="value_and_grad(..., backend='c').compiled called directly"),
        *export_cases(w1, data, (0, 1, 2)),
        Case("symgrad -> numba (prototype)", lambda: _symgrad_backend(data, state, "numba"), role="symgrad",
             requires=("symgrad", "numba"), untraced=UNTRACED["numba"]),
        Case("symgrad -> numexpr (prototype)", lambda: _symgrad_backend(data, state, "numexpr"), role="symgrad",
             requires=("symgrad", "numexpr")),
        Case("symgrad eager, symbolic backward", lambda: _symgrad_eager(data, "symbolic"), role="symgrad",
             requires=("symgrad",)),
        Case("symgrad eager, tape backward", lambda: _symgrad_eager(data, "tape"), role="symgrad",
             requires=("symgrad",)),
        Case("SymPy diff + lambdify(cse)", lambda: _sympy_lambdify(data), requires=("sympy",)),
        Case("numexpr over SymPy cse", lambda: _numexpr_sympy(data), requires=("sympy", "numexpr")),
        Case("symengine LLVM", lambda: _symengine(data), requires=("symengine",),
             note="inputs pre-stacked as an (n, 3) array outside the timed call"),
        Case("torch eager", lambda: _torch_eager(data), requires=("torch",), untraced=UNTRACED["torch"]),
        Case("torch.compile", lambda: _torch_compile(data), requires=("torch",), quick=False,
             untraced=UNTRACED["torch"]),
        Case("JAX jit", lambda: _jax(data), requires=("jax",), untraced=UNTRACED["jax"]),
        Case("HIPS autograd", lambda: _autograd(data), requires=("autograd",)),
    ]
    return [Group("W1", f"{n:.0e} points".replace("e+0", "e"), cases, reference="symgrad value_and_grad (NumPy)",
                  rtol=1e-8, atol=1e-10, params={"n": n}, memory=True, memory_reference=HAND)]


# ---------------------------------------------------------------------------- cases
def _floor(data):
    x = data[0]
    return Prepared(lambda: np.sin(x))


def _hand(data):
    return Prepared(lambda: hand_value_and_grad(*data), lambda: list(hand_value_and_grad(*data)[1]))


def _symgrad_functional(data, state, backend="numpy"):
    F = symgrad_functional()
    if backend != "numpy":
        fresh_build_dir()
    setup: dict = {}
    vg = F.value_and_grad(w1, argnums=(0, 1, 2), backend=backend)
    with stopwatch(setup, "trace+derive+compile+first call"):
        vg(*data)
    state["compiled"] = vg.compiled
    state["setup"] = setup

    def grads():
        return vg(*data)[1]

    return Prepared(lambda: vg(*data), grads, setup)


def _symgrad_default(data):
    F = symgrad_functional()
    fresh_build_dir()
    setup: dict = {}
    vg = F.value_and_grad(w1, argnums=(0, 1, 2))
    with stopwatch(setup, "trace+derive+compile+first call"):
        vg(*data)
    note = settle_default(vg, lambda: vg(*data), setup)
    return Prepared(lambda: vg(*data), lambda: vg(*data)[1], setup, note=note)


def _symgrad_compiled_only(data, state):
    compiled = state.get("compiled")
    if compiled is None:
        raise Skip("needs the symgrad value_and_grad case (its closed forms)")
    fresh_build_dir()
    setup: dict = {}
    with stopwatch(setup, "compile (C backend)"):
        import symgrad.symbolic as S

        native = S.compile_exprs(compiled.symbols, list(compiled.exprs.values()), output_names=compiled.outputs,
                                 backend="c")
    return Prepared(lambda: native(*data), lambda: list(native(*data)[1:]), setup)


def _symgrad_backend(data, state, kind):
    import proto_backends as pb

    compiled = state.get("compiled")
    if compiled is None:
        raise Skip("needs the symgrad value_and_grad case (its closed forms)")
    setup = {"derive (symgrad)": next(iter(state["setup"].values()))}
    outputs = list(compiled.exprs.values())
    with stopwatch(setup, "backend compile"):
        if kind == "numba":
            backend = pb.numba_elementwise(compiled.symbols, outputs, data)
        else:
            backend = pb.numexpr_elementwise(compiled.symbols, outputs)
    return Prepared(lambda: backend(*data), lambda: backend(*data)[1:], setup)


def _symgrad_eager(data, engine):
    import symgrad

    xs = [symgrad.tensor(a, requires_grad=True) for a in data]

    def step():
        with symgrad.backward_engine(engine):
            value = formula(symgrad, *xs).sum()
            grads = symgrad.autograd.grad(value, xs)
        return value, grads

    setup: dict = {}
    with stopwatch(setup, "first call"):
        step()
    return Prepared(step, lambda: as_numpy(step()[1]), setup)


def _sympy_symbols():
    import sympy as sp

    return sp.symbols("x y z", real=True)


def _sympy_lambdify(data):
    import sympy as sp

    x, y, z = _sympy_symbols()
    setup: dict = {}
    with stopwatch(setup, "derive"):
        f = formula(sp, x, y, z)
        grads = [sp.diff(f, v) for v in (x, y, z)]
    with stopwatch(setup, "compile"):
        fn = sp.lambdify([x, y, z], [f, *grads], "numpy", cse=True)

    def call():
        out = fn(*data)
        return out[0].sum(), out[1:]

    return Prepared(call, lambda: call()[1], setup)


def _numexpr_sympy(data):
    import sympy as sp

    import proto_backends as pb

    x, y, z = _sympy_symbols()
    setup: dict = {}
    with stopwatch(setup, "derive"):
        f = formula(sp, x, y, z)
        grads = [sp.diff(f, v) for v in (x, y, z)]
    with stopwatch(setup, "compile"):
        backend = pb.numexpr_elementwise([x, y, z], [f, *grads], cse="sympy")

    def call():
        out = backend(*data)
        return out[0].sum(), out[1:]

    return Prepared(call, lambda: call()[1], setup)


def _symengine(data):
    import symengine as se

    x, y, z = se.symbols("x y z")
    setup: dict = {}
    with stopwatch(setup, "derive"):
        f = formula(se, x, y, z)
        grads = [f.diff(v) for v in (x, y, z)]
    with stopwatch(setup, "compile"):
        fn = se.Lambdify([x, y, z], [f, *grads], backend="llvm", cse=True, opt_level=3)
    stacked = np.ascontiguousarray(np.stack(data, axis=1))

    def call():
        out = fn(stacked)
        return out[:, 0].sum(), [out[:, 1], out[:, 2], out[:, 3]]

    return Prepared(call, lambda: call()[1], setup)


def _torch_eager(data):
    import torch

    xs = [torch.from_numpy(a).requires_grad_() for a in data]

    def call():
        value = formula(torch, *xs).sum()
        return value, torch.autograd.grad(value, xs)

    return Prepared(call, lambda: as_numpy(call()[1]), {})


def _torch_compile(data):
    import torch

    xs = [torch.from_numpy(a) for a in data]

    def value_and_grad(x, y, z):
        return torch.func.grad_and_value(lambda x, y, z: formula(torch, x, y, z).sum(), argnums=(0, 1, 2))(x, y, z)

    compiled = torch.compile(value_and_grad)
    setup: dict = {}
    with stopwatch(setup, "compile+first call"):
        compiled(*xs)

    def call():
        grads, value = compiled(*xs)
        return value, grads

    return Prepared(call, lambda: as_numpy(call()[1]), setup)


def _jax(data):
    jax, jnp = jax_modules()
    xs = [jnp.asarray(a) for a in data]
    fn = jax.jit(jax.value_and_grad(lambda x, y, z: formula(jnp, x, y, z).sum(), argnums=(0, 1, 2)))
    setup: dict = {}
    with stopwatch(setup, "trace+compile+first call"):
        block(fn(*xs))

    def call():
        return block(fn(*xs))

    return Prepared(call, lambda: as_numpy(call()[1]), setup)


def _autograd(data):
    import autograd
    import autograd.numpy as anp

    fn = autograd.value_and_grad(lambda t: formula(anp, *t).sum())
    args = tuple(data)

    def call():
        return fn(args)

    return Prepared(call, lambda: as_numpy(call()[1]), {})
