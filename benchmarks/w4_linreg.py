"""W4: the tutorial's linear regression, 100 epochs in eager mode, time per epoch.

x = 1..5, y = 2x + 1, a = b = 1, float32, loss = mean((a x + b - y)^2), plain gradient
descent with lr = 0.01 (the tutorial's lr = 0.1 diverges, see examples/linear_regression.py);
each epoch: forward, zero the gradients, backward, update under no_grad -- the
tutorial's loop, line for line, for symgrad and torch.  The floor is the same loop
written out in NumPy (loss and gradient by hand); JAX jit's row runs one jitted step per
epoch, HIPS autograd one ``grad`` call per epoch.
"""
from __future__ import annotations

import numpy as np

from bench_common import jax_modules, stopwatch
from bench_harness import Case, Group, Prepared

EPOCHS = 100
LR = 0.01


def fit_eager(lib, engine_context=None):
    """The tutorial's loop for symgrad or torch (``lib``); returns final (a, b)."""
    x = lib.tensor([1, 2, 3, 4, 5], dtype=lib.float)
    y = lib.tensor([3, 5, 7, 9, 11], dtype=lib.float)
    a = lib.tensor([1], dtype=lib.float, requires_grad=True)
    b = lib.tensor([1], dtype=lib.float, requires_grad=True)
    for epoch in range(EPOCHS):
        y_pred = a * x + b
        loss = ((y_pred - y) ** 2).mean()
        if a.grad is not None and b.grad is not None:
            a.grad.zero_()
            b.grad.zero_()
        loss.backward()
        with lib.no_grad():
            a -= LR * a.grad
            b -= LR * b.grad
    return [a.item(), b.item()]


def fit_numpy():
    x = np.arange(1, 6, dtype=np.float32)
    y = 2 * x + 1
    a = np.float32(1.0)
    b = np.float32(1.0)
    lr = np.float32(LR)
    losses = []
    for _ in range(EPOCHS):
        r = a * x + b - y
        losses.append(np.mean(r * r))  # computed, as every tool does
        ga = np.mean(2 * r * x)
        gb = np.mean(2 * r)
        a = a - lr * ga
        b = b - lr * gb
    return [float(a), float(b)]


def groups(quick: bool) -> list[Group]:
    cases = [
        Case("hand-written NumPy loop (floor)", _numpy, role="floor", requires=("numpy",)),
        Case("symgrad eager, symbolic backward", lambda: _symgrad("symbolic"), role="symgrad", requires=("symgrad",)),
        Case("symgrad eager, tape backward", lambda: _symgrad("tape"), role="symgrad", requires=("symgrad",)),
        Case("symgrad value_and_grad(loss) per step", _symgrad_functional, role="symgrad", requires=("symgrad",),
             note="not eager: the loss compiled once by symgrad.value_and_grad, called each epoch (like JAX's row)"),
        Case("torch eager", _torch, requires=("torch",)),
        Case("JAX jit(step)", _jax, requires=("jax",)),
        Case("HIPS autograd", _autograd, requires=("autograd",)),
    ]
    return [Group("W4", "x = 1..5, 100 epochs", cases, reference="symgrad eager, symbolic backward",
                  rtol=1e-5, atol=1e-6, divisor=EPOCHS)]


def _prepared(fit, setup=None):
    return Prepared(lambda: fit(), lambda: [np.asarray(fit())], setup or {})


def _numpy():
    return _prepared(fit_numpy)


def _symgrad(engine):
    import symgrad

    def fit():
        with symgrad.backward_engine(engine):
            return fit_eager(symgrad)

    setup: dict = {}
    with stopwatch(setup, "first fit"):
        fit()
    return _prepared(fit, setup)


def _symgrad_functional():
    from bench_common import symgrad_functional

    F = symgrad_functional()
    x = np.arange(1, 6, dtype=np.float32)
    y = 2 * x + 1
    vg = F.value_and_grad(lambda a, b: ((a * x + b - y) ** 2).mean(), argnums=(0, 1))
    lr = np.float32(LR)

    def fit():
        a = np.ones(1, dtype=np.float32)
        b = np.ones(1, dtype=np.float32)
        for _ in range(EPOCHS):
            _value, (ga, gb) = vg(a, b)
            a = a - lr * ga
            b = b - lr * gb
        return [float(a[0]), float(b[0])]

    setup: dict = {}
    with stopwatch(setup, "trace+derive+compile+first fit"):
        fit()
    return _prepared(fit, setup)


def _torch():
    import torch

    return _prepared(lambda: fit_eager(torch))


def _jax():
    jax, jnp = jax_modules()
    x = jnp.arange(1, 6, dtype=jnp.float32)
    y = 2 * x + 1

    def loss(p):
        return jnp.mean((p[0] * x + p[1] - y) ** 2)

    @jax.jit
    def step(p):
        value, g = jax.value_and_grad(loss)(p)
        return p - LR * g, value

    def fit():
        p = jnp.array([1.0, 1.0], dtype=jnp.float32)
        for _ in range(EPOCHS):
            p, _value = step(p)
        p.block_until_ready()
        return [float(p[0]), float(p[1])]

    setup: dict = {}
    with stopwatch(setup, "trace+compile+first fit"):
        fit()
    return _prepared(fit, setup)


def _autograd():
    import autograd
    import autograd.numpy as anp

    x = np.arange(1, 6, dtype=np.float32)
    y = 2 * x + 1

    def loss(p):
        return anp.mean((p[0] * x + p[1] - y) ** 2)

    vg = autograd.value_and_grad(loss)

    def fit():
        p = np.array([1.0, 1.0], dtype=np.float32)
        for _ in range(EPOCHS):
            _value, g = vg(p)
            p = p - np.float32(LR) * g
        return [float(p[0]), float(p[1])]

    return _prepared(fit)
