"""W3: logistic-regression loss and gradient, mean(BCEWithLogits(X @ W + b, Y)).

X is 10,000 x 100, W 100 x 10, b 10, Y 10,000 x 10 of 0/1 labels.  Every tool returns
the loss and its gradient with respect to W and b.  The floor is the hand-written NumPy
closed form (one matmul forward, one backward, one exp shared by loss and gradient).
"""
from __future__ import annotations

import numpy as np

from bench_common import (as_numpy, block, export_cases, fresh_build_dir, jax_modules, settle_default, stopwatch,
                          symgrad_functional)
from bench_harness import Case, Group, Prepared

N, D, K = 10_000, 100, 10


def data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((N, D))
    W = rng.standard_normal((D, K)) * 0.1
    b = rng.standard_normal(K) * 0.1
    Y = (rng.uniform(size=(N, K)) < 0.5).astype(np.float64)
    return X, W, b, Y


def w3(W, b, X, Y):
    """The loss over symgrad tensors: what symgrad's cases differentiate, compile and export."""
    import symgrad.nn.functional as Fn

    return Fn.binary_cross_entropy_with_logits(X @ W + b, Y)


def hand(X, W, b, Y):
    """Loss and (dW, db), written out: z = XW + b, loss = mean(max(z,0) - z y + log1p(exp(-|z|)))."""
    z = X @ W
    z += b
    e = np.exp(-np.abs(z))
    loss = (np.maximum(z, 0) - z * Y + np.log1p(e)).mean()
    s = np.where(z >= 0, 1.0, e) / (1.0 + e)  # sigmoid(z), stable
    s -= Y
    s *= 1.0 / z.size
    return loss, (X.T @ s, s.sum(axis=0))


def groups(quick: bool) -> list[Group]:
    X, W, b, Y = data()
    state: dict = {}
    cases = [
        Case("hand-written NumPy (floor)", lambda: _hand(X, W, b, Y), role="floor", requires=("numpy",)),
        Case("symgrad value_and_grad (default)", lambda: _symgrad(X, W, b, Y, {}, backend="auto"), role="symgrad",
             requires=("symgrad",), note="no backend= given: 'auto', warmed up until it settled on NumPy or C"),
        Case("symgrad value_and_grad (NumPy)", lambda: _symgrad(X, W, b, Y, state), role="symgrad",
             requires=("symgrad",)),
        Case("symgrad value_and_grad (C backend)", lambda: _symgrad_c(X, W, b, Y), role="symgrad",
             requires=("symgrad", "cc"), note="backend='c': NumPy's matmuls around one C loop and a loop nest"),
        *export_cases(w3, (W, b, X, Y), (0, 1)),
        Case("symgrad eager, symbolic backward", lambda: _symgrad_eager(X, W, b, Y, "symbolic"), role="symgrad",
             requires=("symgrad",)),
        Case("symgrad eager, tape backward", lambda: _symgrad_eager(X, W, b, Y, "tape"), role="symgrad",
             requires=("symgrad",)),
        Case("torch eager", lambda: _torch(X, W, b, Y), requires=("torch",)),
        Case("torch.compile", lambda: _torch_compile(X, W, b, Y), requires=("torch",), quick=False),
        Case("JAX jit", lambda: _jax(X, W, b, Y), requires=("jax",)),
        Case("HIPS autograd", lambda: _autograd(X, W, b, Y), requires=("autograd",)),
    ]
    return [Group("W3", "X 10,000x100, W 100x10", cases, reference="symgrad value_and_grad (NumPy)",
                  rtol=1e-8, atol=1e-12)]


def _hand(X, W, b, Y):
    return Prepared(lambda: hand(X, W, b, Y), lambda: list(hand(X, W, b, Y)[1]))


def _symgrad(X, W, b, Y, state, backend="numpy"):
    """``value_and_grad`` on ``backend``; "auto" (the default, so no ``backend=`` given) is
    warmed up until it has settled on NumPy or C."""
    F = symgrad_functional()
    import symgrad

    Xt, Yt = symgrad.tensor(X, name="X"), symgrad.tensor(Y, name="Y")
    if backend == "auto":
        fresh_build_dir()
        vg = F.value_and_grad(lambda W, b: w3(W, b, Xt, Yt), argnums=(0, 1))
    else:
        vg = F.value_and_grad(lambda W, b: w3(W, b, Xt, Yt), argnums=(0, 1), backend=backend)
    setup: dict = {}
    with stopwatch(setup, "trace+derive+compile+first call"):
        vg(W, b)
    note = settle_default(vg, lambda: vg(W, b), setup) if backend == "auto" else ""
    state["vg"] = vg
    return Prepared(lambda: vg(W, b), lambda: list(vg(W, b)[1]), setup, note=note)


def _symgrad_c(X, W, b, Y):
    import symgrad
    from symgrad.symbolic import compile_cache_clear

    F = symgrad_functional()
    compile_cache_clear()
    fresh_build_dir()
    Xt, Yt = symgrad.tensor(X, name="X"), symgrad.tensor(Y, name="Y")
    vg = F.value_and_grad(lambda W, b: w3(W, b, Xt, Yt), argnums=(0, 1), backend="c")
    setup: dict = {}
    with stopwatch(setup, "trace+derive+compile+first call"):
        vg(W, b)
    return Prepared(lambda: vg(W, b), lambda: list(vg(W, b)[1]), setup)


def _symgrad_eager(X, W, b, Y, engine):
    import symgrad
    import symgrad.nn.functional as Fn

    Xt, Yt = symgrad.tensor(X), symgrad.tensor(Y)
    Wt, bt = symgrad.tensor(W, requires_grad=True), symgrad.tensor(b, requires_grad=True)

    def call():
        with symgrad.backward_engine(engine):
            loss = Fn.binary_cross_entropy_with_logits(Xt @ Wt + bt, Yt)
            return loss, symgrad.autograd.grad(loss, [Wt, bt])

    setup: dict = {}
    with stopwatch(setup, "first call"):
        call()
    return Prepared(call, lambda: as_numpy(call()[1]), setup)


def _torch(X, W, b, Y):
    import torch
    import torch.nn.functional as Fn

    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    Wt, bt = torch.from_numpy(W.copy()).requires_grad_(), torch.from_numpy(b.copy()).requires_grad_()

    def call():
        loss = Fn.binary_cross_entropy_with_logits(Xt @ Wt + bt, Yt)
        return loss, torch.autograd.grad(loss, [Wt, bt])

    return Prepared(call, lambda: as_numpy(call()[1]))


def _torch_compile(X, W, b, Y):
    import torch
    import torch.nn.functional as Fn

    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    Wt, bt = torch.from_numpy(W.copy()), torch.from_numpy(b.copy())

    def loss(W, b, X, Y):
        return Fn.binary_cross_entropy_with_logits(X @ W + b, Y)

    fn = torch.compile(torch.func.grad_and_value(loss, argnums=(0, 1)))
    setup: dict = {}
    with stopwatch(setup, "compile+first call"):
        fn(Wt, bt, Xt, Yt)
    return Prepared(lambda: fn(Wt, bt, Xt, Yt), lambda: as_numpy(fn(Wt, bt, Xt, Yt)[0]), setup)


def _jax(X, W, b, Y):
    jax, jnp = jax_modules()
    Xj, Yj, Wj, bj = (jnp.asarray(a) for a in (X, Y, W, b))

    def loss(W, b, X, Y):
        z = X @ W + b
        return jnp.mean(jnp.maximum(z, 0) - z * Y + jnp.log1p(jnp.exp(-jnp.abs(z))))

    fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    setup: dict = {}
    with stopwatch(setup, "trace+compile+first call"):
        block(fn(Wj, bj, Xj, Yj))
    return Prepared(lambda: block(fn(Wj, bj, Xj, Yj)), lambda: as_numpy(fn(Wj, bj, Xj, Yj)[1]), setup)


def _autograd(X, W, b, Y):
    import autograd
    import autograd.numpy as anp

    def loss(W, b):
        z = anp.dot(X, W) + b
        return anp.mean(anp.maximum(z, 0) - z * Y + anp.log1p(anp.exp(-anp.abs(z))))

    fn = autograd.value_and_grad(loss, argnum=(0, 1)) if _multi_argnum(autograd) else None
    if fn is None:
        g = autograd.value_and_grad(lambda t: loss(*t))
        return Prepared(lambda: g((W, b)), lambda: list(g((W, b))[1]))
    return Prepared(lambda: fn(W, b), lambda: list(fn(W, b)[1]))


def _multi_argnum(autograd) -> bool:
    try:
        autograd.value_and_grad(lambda a, b: a * b, argnum=(0, 1))(1.0, 2.0)
        return True
    except Exception:  # noqa: BLE001
        return False
