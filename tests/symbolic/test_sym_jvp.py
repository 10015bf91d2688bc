"""Forward-mode products: ``jvp`` equals J v computed on the tape, does work linear in the
size of the program however often each value is reused, and its engine-made upstream
gradient cannot collide with a user's symbol."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.symbolic import compile_cache_clear, compile_exprs, jvp_expr
from symgrad.symbolic.forms.structural import Sum
from symgrad.symbolic.core.symbols import ArrayVar


def _residual(x, levels: int = 6):
    """Each level uses its input twice: a tree walk of the closed form doubles per level."""
    for _ in range(levels):
        x = x + symgrad.sin(x) * x
    return x


PROGRAMS = {
    # name: (function, shapes of the primals)
    "residual chain": (_residual, [(3,)]),
    "square and tanh reused": (lambda x: (x * x - symgrad.tanh(x)) * (x * x), [(4,)]),
    "matmul of two primals": (lambda a, x: symgrad.tanh(a @ x) * x.sum(), [(2, 3), (3,)]),
    "matrix product": (lambda a, b: (a @ b).exp(), [(2, 3), (3, 2)]),
    "log_softmax": (lambda x: symgrad.log_softmax(x, dim=-1) * x, [(2, 3)]),
    "softmax and logsumexp": (lambda x: symgrad.softmax(x, dim=0) + symgrad.logsumexp(x, dim=0), [(3, 2)]),
    "reductions": (lambda x: (x * x).sum(dim=0) / x.mean(), [(3, 2)]),
    "slices and cat": (lambda x: symgrad.cat([x[1:], x[:1] * 2]) * x, [(4,)]),
    "broadcast outer product": (lambda x, y: x.unsqueeze(1) * y.unsqueeze(0), [(3,), (2,)]),
    "maximum, relu, clamp": (lambda x, y: symgrad.maximum(x, y) + x.relu() * y.clamp(-0.2, 0.3), [(4,), (4,)]),
    "scalar output": (lambda x: (x ** 3).sum() + x.norm(), [(2, 2)]),
    "transpose and reshape": (lambda x: (x.t().reshape(6) * symgrad.sigmoid(x.reshape(6))), [(2, 3)]),
}


def _tape_jvp(f, primals: list, tangents: list) -> np.ndarray:
    """J v on the tape engine: one vector-Jacobian product per output element."""
    leaves = [symgrad.tensor(p, requires_grad=True) for p in primals]
    with symgrad.backward_engine("tape"):
        out = f(*leaves)
        flat = np.zeros(out.numel())
        for k in range(out.numel()):
            seed = np.zeros(out.numel())
            seed[k] = 1.0
            grads = symgrad.autograd.grad(out, leaves, grad_outputs=[symgrad.tensor(seed.reshape(out.shape))],
                                          retain_graph=True, allow_unused=True)
            flat[k] = sum(np.sum(g.numpy() * t) for g, t in zip(grads, tangents) if g is not None)
    return flat.reshape(out.shape)


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_jvp_is_the_jacobian_times_the_tangent_on_the_tape(name, rng):
    f, shapes = PROGRAMS[name]
    primals = [rng.uniform(-0.9, 0.9, size=s) for s in shapes]
    tangents = [rng.normal(size=s) for s in shapes]
    value, tangent = symgrad.jvp(f, tuple(primals), tuple(tangents))
    np.testing.assert_allclose(value, f(*[symgrad.tensor(p) for p in primals]).numpy(), rtol=1e-12)
    np.testing.assert_allclose(tangent, _tape_jvp(f, primals, tangents), rtol=1e-9, atol=1e-12)


def _residual_expression(levels: int) -> tuple:
    x = ArrayVar("x", (2,))
    y = x
    for _ in range(levels):
        y = y + sp.sin(y) * y
    return y, x


def _traced_jvp(levels: int):
    compile_cache_clear()  # derive and compile again: that is the work being measured
    return symgrad.jvp(lambda x: _residual(x, levels), (np.array([0.1, 0.2]),), (np.array([1.0, -0.5]),))


def _expression_jvp(levels: int):
    y, x = _residual_expression(levels)
    return jvp_expr(y, x, ArrayVar("v", (2,)))


@pytest.mark.parametrize("how, sizes", [
    ("symgrad.jvp of a traced function", (6, 24)),  # as recorded (unevaluated)
    ("jvp_expr of a SymPy expression", (4, 16)),  # SymPy's evaluation on: sorted sums, n log n
])
def test_jvp_does_linear_work_when_every_level_reuses_its_input(how, sizes, work_counter):
    """It was exponential in depth (a tree walk of the closed form, ``Basic.has``, checked
    that the seed was gone): 16 levels took 2.4 s, 20 levels 44 s."""
    run = _traced_jvp if how.startswith("symgrad.jvp") else _expression_jvp
    run(3)  # warm up imports and per-op templates
    small = work_counter.count(lambda: run(sizes[0]))[0]
    large = work_counter.count(lambda: run(sizes[1]), limit=20 * small)[0]
    work_counter.linear(how, sizes, (small, large), slack=1.5 if how.startswith("symgrad.jvp") else 2)


def test_jvp_of_a_deep_residual_chain_is_right(work_counter):
    levels = 60
    x0, v = np.array([0.1, -0.2]), np.array([1.0, 0.5])
    _, (_, tangent) = work_counter.count(lambda: symgrad.jvp(lambda x: _residual(x, levels), (x0,), (v,)),
                                         limit=3_000_000)  # 2**60 before, when the work doubled per level
    x, dx = x0.copy(), v.copy()
    for _ in range(levels):  # forward mode by hand: d(x + sin(x) x) = dx + (cos(x) x + sin(x)) dx
        x, dx = x + np.sin(x) * x, dx + (np.cos(x) * x + np.sin(x)) * dx
    np.testing.assert_allclose(tangent, dx, rtol=1e-9)


@pytest.mark.parametrize("name", ["_jvp_seed", "g"])
def test_a_user_symbol_named_like_the_engines_seed_is_another_symbol(name):
    """``jvp_expr`` named its upstream gradient ``_jvp_seed``: a user's array symbol of that
    name and shape *was* the seed, so d/dseed also differentiated the user's symbol."""
    x, v, user = ArrayVar("x", (2,)), ArrayVar("v", (2,)), ArrayVar(name, (2,))
    y = x * user + Sum.of(x * x) * user
    tangent = jvp_expr(y, x, v)
    f = compile_exprs([x, v, user], [tangent], cache=False)
    X, V, U = np.array([0.5, -1.0]), np.array([2.0, 3.0]), np.array([0.25, 4.0])
    np.testing.assert_allclose(f(X, V, U)[0], V * U + np.sum(2 * X * V) * U, rtol=1e-12)
    assert tangent.free_symbols == {x, v, user}
