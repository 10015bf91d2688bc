"""W5's promise: translating, deriving and compiling a graph cost work linear in its
size.  Work is counted in function calls (``work_counter``, ``symgrad.testing.work``), never in seconds; the
cyclic garbage collector, whose full collections walk every live object, is held back
while a graph is built or derived (``symbols.collection_paused``) and restored after.
"""
from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.testing.generator import elementwise_dag
from symgrad.symbolic.codegen.compile import CompiledFunction
from symgrad.symbolic.derive.graph import Segment
from symgrad.symbolic.derive.reverse import adjoints
from symgrad.symbolic.forms.structural import exact
from symgrad.symbolic.core.symbols import collection_paused


def _program(xs, n_ops: int, seed: int):
    """W5's program (``benchmarks/w5_scaling.py``), summed."""
    return elementwise_dag(symgrad, xs, n_ops, seed).sum()


def _phases(n_ops: int, work_counter) -> dict:
    rng = np.random.default_rng(11)
    xs = [symgrad.tensor(rng.uniform(-1, 1, 5), requires_grad=True, name=f"x{i}") for i in range(3)]
    loss = _program(xs, n_ops, seed=4)
    calls = {}
    calls["build"], (segment, (symbols, (expr,))) = work_counter.count(
        lambda: (lambda s: (s, s.build()))(Segment([loss])))
    calls["derive"], grads = work_counter.count(
        lambda: [exact(g, s.array_shape) for g, s in zip(adjoints([(expr, sp.S.One)], symbols), symbols)])
    calls["compile"], compiled = work_counter.count(lambda: CompiledFunction(symbols, grads))
    return calls


def test_build_derive_and_compile_grow_linearly(work_counter):
    _phases(50, work_counter)  # templates of tanh, sin, cos are derived once per process
    small, large = _phases(400, work_counter), _phases(1600, work_counter)
    for phase in small:
        work_counter.linear(phase, (400, 1600), (small[phase], large[phase]))


def test_collection_paused_restores_the_collector():
    assert gc.isenabled()
    with collection_paused():
        with collection_paused():  # nested: still paused inside
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError):
        with collection_paused():
            1 / 0
    assert gc.isenabled()


def test_collection_stays_off_when_the_user_turned_it_off():
    gc.disable()
    try:
        with collection_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_threads_building_at_once_leave_the_collector_on():
    barrier = threading.Barrier(4)
    errors = []

    def work(seed):
        try:
            rng = np.random.default_rng(seed)
            for _ in range(5):
                barrier.wait()
                x = symgrad.tensor(rng.uniform(-1, 1, 3), requires_grad=True, name="x")
                with symgrad.backward_engine("symbolic"):
                    (x.tanh() * float(rng.uniform(1, 2))).sum().backward()
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert gc.isenabled()
