"""Deep and wide graphs: backward on both engines without ``RecursionError``, with work
linear in the graph's size, at the default recursion limit.

The symbolic engine walks the tape, builds SymPy (hash-consed, unevaluated past a depth),
derives, eliminates common subexpressions and compiles, all iteratively. Growth is
measured in function calls (the ``work_counter`` fixture of symgrad's pytest plugin,
``symgrad.testing.work``), never in seconds.
"""
from __future__ import annotations

import sys

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


def _backward(engine: str, build, n: int, counter=None):
    """``(function calls made by backward, or None without a counter; the leaves' grads)``."""
    leaves, y = build(n)
    leaves = leaves if isinstance(leaves, tuple) else (leaves,)
    with symgrad.backward_engine(engine):
        calls = counter(y.backward)[0] if counter else y.backward()
    return calls, [t.grad.numpy() for t in leaves]


@pytest.mark.parametrize("build", [scalar_chain, mixed_chain, shared_uses], ids=lambda b: b.__name__)
def test_symbolic_backward_work_is_linear(build, work_counter):
    _backward("symbolic", build, 300)  # warm up imports and per-op templates
    sizes = (1000, 4000)
    (small, grads_small), (large, grads_large) = (_backward("symbolic", build, n, work_counter.count)
                                                  for n in sizes)
    work_counter.linear(f"symbolic backward of {build.__name__}", sizes, (small, large))
    for engine_grads, n in zip((grads_small, grads_large), sizes):
        _, tape = _backward("tape", build, n)
        for s, t in zip(engine_grads, tape):
            np.testing.assert_allclose(s, t, rtol=1e-9, atol=1e-12)


def test_rebuilding_a_longer_chain_reuses_the_shorter_ones_nodes(work_counter):
    """Chains of 2,000, 4,000 and 12,000 nodes, each starting with the nodes of the one
    before: SymPy compares distinct equal trees recursively (work that grows with the
    depth at every lookup), so the engine hash-conses every node it builds and the work
    stays linear.  (A factor no other test uses, so no chain is a cache hit.)"""
    def chain(n):
        return scalar_chain(n, factor=1.0000003)

    _backward("symbolic", chain, 2000)
    sizes, calls = (4000, 12000), []
    for n in sizes:
        count, (grad,) = _backward("symbolic", chain, n, work_counter.count)
        calls.append(count)
        assert float(grad) == pytest.approx(1.0000003 ** n, rel=1e-12)
    work_counter.linear("a longer chain rebuilt after a shorter one", sizes, tuple(calls))


@pytest.mark.parametrize("engine", ["symbolic", "tape"])
def test_a_100000_op_chain_and_100000_shared_uses(engine):
    limit = sys.getrecursionlimit()
    assert limit <= 3000  # the default (pytest may raise it a little); nothing here needs more
    _, (grad,) = _backward(engine, scalar_chain, 100_000)
    assert float(grad) == pytest.approx(1.0000001 ** 100_000, rel=1e-9)
    _, (grad,) = _backward(engine, shared_uses, 100_000)
    np.testing.assert_allclose(grad, [100_000.0, 100_000.0])


def test_a_cache_hit_on_a_deep_graph_builds_no_sympy():
    _backward("symbolic", scalar_chain, 20_000)
    hits, misses = compile_cache_info().hits, compile_cache_info().misses
    _, (grad,) = _backward("symbolic", scalar_chain, 20_000)
    assert (compile_cache_info().hits, compile_cache_info().misses) == (hits + 1, misses)
    assert float(grad) == pytest.approx(1.0000001 ** 20_000, rel=1e-12)


def test_interning_a_tree_over_new_leaves_equal_to_canonical_ones(monkeypatch):
    """Leaves that are new objects equal to canonical ones (a symbol made again after
    SymPy's cache let the first go) make interning rebuild every node above them over the
    canonical leaves: the rebuilt tree is what interning returns (it once returned the
    tree as given, so equal trees stayed distinct objects), and SymPy's own node types are
    rebuilt under one switch of SymPy's global evaluate flag for the whole walk, which
    clears SymPy's whole cache at each switch (it switched twice a node: the Rosenbrock
    derivation measured 52x the work for 8x the size after other tests)."""
    import sympy as sp
    from sympy.core import parameters

    from symgrad.symbolic.core.symbols import intern

    def form(leaves):
        return sp.Add(*[sp.sin(a) * b ** 2 + sp.Max(a, b) for a, b in zip(leaves, leaves[1:])])

    first = [intern(leaf) for leaf in sp.symbols("leaf0:40", real=True)]  # canonical leaves, no tree yet
    sp.core.cache.clear_cache()
    again = sp.symbols("leaf0:40", real=True)
    assert again[0] == first[0] and again[0] is not first[0]
    clears = []
    monkeypatch.setattr(parameters, "clear_cache", lambda: clears.append(1))  # the global flag's switch
    monkeypatch.setattr(sp.core.cache, "clear_cache", lambda: clears.append(1))
    canonical = intern(form(again))
    assert len(clears) == 2  # off and back on, once: not per node (79 nodes rebuilt)
    assert {id(leaf) for leaf in canonical.free_symbols} == {id(leaf) for leaf in first}
    assert intern(form(first)) is canonical and intern(form(again)) is canonical


def test_unevaluated_builds_over_the_objects_given_even_past_an_equal_node_in_sympys_cache():
    """SymPy's cache compares arguments by equality, so it can answer a build over one
    symbol with an equal node over another equal symbol: a canonical node would then
    hold a leaf that is not canonical."""
    import sympy as sp

    from symgrad.symbolic.core.symbols import intern, unevaluated

    canonical = [intern(leaf) for leaf in sp.symbols("v0:2", real=True)]
    sp.core.cache.clear_cache()
    again = sp.symbols("v0:2", real=True)
    users = sp.Add(sp.sin(again[0], evaluate=False), again[1], evaluate=False)  # now in SymPy's cache
    inner = unevaluated(sp.sin(again[0]), (canonical[0],))
    outer = unevaluated(users, (inner, canonical[1]))
    assert inner.args[0] is canonical[0] and outer.args[0] is inner and outer.args[1] is canonical[1]
    assert {id(leaf) for leaf in intern(users).free_symbols} == {id(leaf) for leaf in canonical}


def _sympy_chain(n: int):
    """``n`` levels of a plain SymPy expression built unevaluated, alternately ``sin`` and
    ``1.0001*(...) + 0.001`` with a new ``Float`` object at every level (equal numbers,
    other objects)."""
    import sympy as sp

    s = sp.Symbol("s", real=True)
    form = s
    for i in range(n):
        if i % 2:
            form = sp.Add(sp.Mul(sp.Float(1.0001), form, evaluate=False), sp.Float(0.001), evaluate=False)
        else:
            form = sp.sin(form, evaluate=False)
    return s, form


def _sympy_chain_value_and_gradient(n: int, at: float) -> tuple[float, float]:
    value, slope = at, 1.0
    for i in range(n):
        if i % 2:
            value, slope = 1.0001 * value + 0.001, 1.0001 * slope
        else:
            value, slope = np.sin(value), np.cos(value) * slope
    return value, slope


def test_transforms_of_a_deep_plain_sympy_expression():
    """A form 3,000 levels deep: SymPy's own ``free_symbols`` recurses past the limit (the
    transforms called it to order their arguments)."""
    _, form = _sympy_chain(3000)
    value, gradient = symgrad.value_and_grad(form)(0.5)
    np.testing.assert_allclose((value, gradient), _sympy_chain_value_and_gradient(3000, 0.5), rtol=1e-9)
    np.testing.assert_allclose(symgrad.grad(form)(0.5), gradient, rtol=1e-12)


def test_transforms_of_a_deep_tensors_closed_form():
    x = symgrad.tensor([0.5, 1.0], requires_grad=True, name="x")
    y = x
    for i in range(2000):
        y = y * 1.0001 if i % 2 else y + 0.001
    np.testing.assert_allclose(symgrad.grad(y.sum().expr)(np.array([0.5, 1.0])), np.full(2, 1.0001 ** 1000),
                               rtol=1e-9)


def test_deriving_a_plain_sympy_chain_does_linear_work(work_counter):
    """Each level's new ``Float`` makes interning rebuild the levels above it over the
    canonical number; the original nodes are kept as aliases, so interning the next
    level up does not walk them again (it did: quadratic, 13 s for 3,000 levels)."""
    from symgrad.symbolic import diff

    def derive(n):
        s, form = _sympy_chain(n)
        return work_counter.count(lambda: diff(form, s))[0]

    derive(100)  # warm up imports and SymPy's caches
    sizes = (300, 1200)
    work_counter.linear("deriving a plain SymPy chain", sizes, tuple(derive(n) for n in sizes))


def test_aliases_are_bounded_and_forgetting_them_changes_no_answer(monkeypatch):
    import symgrad.symbolic.core.symbols as symbols

    import sympy as sp

    monkeypatch.setattr(symbols, "ALIAS_LIMIT", 50)
    canonical = symbols.intern(_sympy_chain(40)[1])
    for _ in range(20):
        sp.core.cache.clear_cache()  # SymPy's cache lets go: the next chain is 101 new objects
        assert symbols.intern(_sympy_chain(40)[1]) is canonical
        assert len(symbols._ALIASES) <= 50 + 101  # the limit, and what one call adds past it


def test_transforms_of_a_deep_expression_that_extends_one_transformed_before():
    """The longer chain's first 750 levels are the shorter one's objects, its user-built
    levels above them sit in SymPy's cache: rebuilding over canonical numbers must not
    meet those entries (SymPy compares equal but other deep trees recursively)."""
    for n in (750, 1500):
        _, form = _sympy_chain(n)
        np.testing.assert_allclose(symgrad.grad(form)(0.5), _sympy_chain_value_and_gradient(n, 0.5)[1], rtol=1e-9)
