"""Deep and wide graphs: backward on both engines without ``RecursionError``, in time
roughly linear in the graph's size, at the default recursion limit.

The symbolic engine walks the tape, builds SymPy (hash-consed, unevaluated past a depth),
derives, eliminates common subexpressions and compiles, all iteratively; timing tests use
generous bounds (they catch quadratic behaviour, not noise).
"""
from __future__ import annotations

import sys
import time

import numpy as np
import pytest

import symgrad
from symgrad.symbolic import compile_cache_info


def scalar_chain(n: int, factor: float = 1.0000001):
    x = symgrad.tensor(1.0, requires_grad=True, name="x")
    y = x
    for _ in range(n):
        y = y * factor
    return x, y


def shared_uses(n: int):
    x = symgrad.tensor(np.array([0.5, -1.0]), requires_grad=True, name="x")
    y = x * 0
    for _ in range(n):
        y = y + x
    return x, y.sum()


def mixed_chain(n: int):
    """About ``n`` recorded nodes of elementwise, selection and structural ops."""
    x = symgrad.tensor(np.array([[0.3, -0.2, 0.5], [0.1, 0.2, -0.3]]), requires_grad=True, name="x")
    w = symgrad.tensor(np.eye(3) * 0.9 + 0.01, requires_grad=True, name="w")
    h = x
    for _ in range(max(1, n // 13)):
        h = (h @ w).relu() + symgrad.maximum(h, x * 0.5)
        h = symgrad.sigmoid(h).clamp(0.1, 0.9) * h.sum(dim=0, keepdim=True) / 3
        h = symgrad.where(h > 0.2, h, h * 0.5)
    return (x, w), h.sum()


def _timed_backward(engine: str, build, n: int):
    leaves, y = build(n)
    leaves = leaves if isinstance(leaves, tuple) else (leaves,)
    start = time.perf_counter()
    with symgrad.backward_engine(engine):
        y.backward()
    return time.perf_counter() - start, [t.grad.numpy() for t in leaves]


@pytest.mark.parametrize("build", [scalar_chain, mixed_chain, shared_uses], ids=lambda b: b.__name__)
def test_symbolic_backward_time_is_roughly_linear(build):
    _timed_backward("symbolic", build, 300)  # warm up imports and per-op templates
    small, grads_small = _timed_backward("symbolic", build, 2000)
    large, grads_large = _timed_backward("symbolic", build, 8000)
    # 4x the nodes: linear is ~4x the time, quadratic ~16x; allow 10x plus noise
    assert large < 10 * small + 1.0, (small, large)
    for engine_grads, n in ((grads_small, 2000), (grads_large, 8000)):
        _, tape = _timed_backward("tape", build, n)
        for s, t in zip(engine_grads, tape):
            np.testing.assert_allclose(s, t, rtol=1e-9, atol=1e-12)


def test_rebuilding_a_longer_chain_reuses_the_shorter_ones_nodes():
    """A chain of 8,000 whose first 4,000 nodes equal an earlier chain's: SymPy compares
    distinct equal trees recursively, so the engine hash-conses every node it builds."""
    for n in (4000, 8000, 12000):
        elapsed, (grad,) = _timed_backward("symbolic", scalar_chain, n)
        assert elapsed < 30, (n, elapsed)
        assert float(grad) == pytest.approx(1.0000001 ** n, rel=1e-12)


@pytest.mark.parametrize("engine", ["symbolic", "tape"])
def test_a_100000_op_chain_and_100000_shared_uses(engine):
    limit = sys.getrecursionlimit()
    assert limit <= 3000  # the default (pytest may raise it a little); nothing here needs more
    elapsed, (grad,) = _timed_backward(engine, scalar_chain, 100_000)
    assert float(grad) == pytest.approx(1.0000001 ** 100_000, rel=1e-9)
    assert elapsed < 120, elapsed
    elapsed, (grad,) = _timed_backward(engine, shared_uses, 100_000)
    np.testing.assert_allclose(grad, [100_000.0, 100_000.0])
    assert elapsed < 60, elapsed


def test_a_cache_hit_on_a_deep_graph_builds_no_sympy():
    _timed_backward("symbolic", scalar_chain, 20_000)
    hits = compile_cache_info().hits
    elapsed, (grad,) = _timed_backward("symbolic", scalar_chain, 20_000)
    assert compile_cache_info().hits == hits + 1
    assert float(grad) == pytest.approx(1.0000001 ** 20_000, rel=1e-12)
    assert elapsed < 10, elapsed
