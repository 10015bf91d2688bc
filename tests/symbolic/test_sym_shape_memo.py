"""The shape memo of ``shape_of`` is keyed by identity: an expression built anew but
equal to one met before (after ``clear_cache()``, or rebuilt by SymPy's evaluation) is
never compared with it, so a rebuilt DAG with shared subexpressions costs work linear in
its nodes, and a program derived a second time costs what the first derivation did.

Work is counted in function calls (``work_counter``, ``symgrad.testing.work``), never in seconds."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.core.cache import clear_cache
from sympy.core.parameters import evaluate

import symgrad
from symgrad.testing.generator import elementwise_dag
from symgrad.symbolic.codegen.compile import CompiledFunction
from symgrad.symbolic.derive.graph import Segment
from symgrad.symbolic.derive.reverse import adjoints
from symgrad.symbolic.forms.structural import Sum, exact
from symgrad.symbolic.core.symbols import ArrayVar, _SHAPES_LIMIT, shape_of


def _shared_chain(x, depth: int):
    """``e = e*e + 1`` ``depth`` times: ``depth`` distinct nodes, a tree of 2**depth."""
    e = x
    with evaluate(False):
        for _ in range(depth):
            e = sp.Add(sp.Mul(e, e), sp.S.One)
    return e


@pytest.mark.parametrize("shape", [(3,), (2, 4), ()])
def test_a_rebuilt_shared_dag_is_not_compared_with_the_first(shape, work_counter):
    x = ArrayVar("x", shape)
    first = _shared_chain(x, 40)
    assert shape_of(first) == shape
    clear_cache()
    again = _shared_chain(x, 40)
    assert again is not first and hash(again) == hash(first)
    # a comparison with the stored expression would walk its tree: 2**40 steps (stopped at the limit)
    calls, found = work_counter.count(lambda: shape_of(again), limit=20_000)
    assert found == shape
    assert calls < 200 * 40  # a handful of calls per distinct node


def test_structural_shapes_through_the_identity_memo():
    rng = np.random.default_rng(3)
    x = ArrayVar("x", (3, 4))
    w = ArrayVar("w", (4, 2))
    cases = [
        (Sum.of(x, dim=(0,)), (4,)),
        (Sum.of(x * ArrayVar("b", (4,)), dim=(1,), keepdim=True), (3, 1)),
        (sp.exp(x) + float(rng.uniform()), (3, 4)),
    ]
    for expr, expected in cases:
        assert shape_of(expr) == expected
        clear_cache()
        assert shape_of(expr) == expected  # the same object again: from the memo
    assert _SHAPES_LIMIT > 0 and shape_of(w) == (4, 2)


def _program(xs, n_ops: int, seed: int):
    """W5's program (``benchmarks/w5_scaling.py``), summed."""
    return elementwise_dag(symgrad, xs, n_ops, seed).sum()


def test_deriving_a_program_again_compares_no_trees(monkeypatch):
    """W5's program derived and compiled three times, SymPy's cache cleared before each
    (as its bounded cache does piecemeal in a long session): the later runs build
    expressions equal to the earlier runs' but new, which an equality-keyed memo
    compared node by node (some 300,000 ``Basic.__eq__`` calls for these 99 ops)."""
    rng = np.random.default_rng(5)
    data = [rng.uniform(-1, 1, 10) for _ in range(3)]

    def derive():
        clear_cache()
        xs = [symgrad.tensor(a, requires_grad=True, name=f"x{i}") for i, a in enumerate(data)]
        segment = Segment([_program(xs, 99, seed=0)])
        symbols, (expr,) = segment.build()
        grads = [exact(g, s.array_shape) for g, s in zip(adjoints([(expr, sp.S.One)], symbols), symbols)]
        CompiledFunction(symbols, grads)  # compiling reads (and memoises) the gradients' shapes too
        return grads

    first = derive()
    derive()
    comparisons = []
    original = sp.Basic.__eq__

    def counting(self, other):
        comparisons.append(1)
        return original(self, other)

    monkeypatch.setattr(sp.Basic, "__eq__", counting)
    again = derive()
    monkeypatch.undo()
    assert len(comparisons) < 100 * 99, len(comparisons)
    assert [hash(g) for g in first] == [hash(g) for g in again]  # the same closed forms
