"""Threads: grad mode and the ``backward_engine`` block are per thread; independent graphs
run backward concurrently with correct results on every engine; threads whose graphs share
a leaf add into one ``.grad`` without losing updates; a leaf gets one gradient sink however
many threads first use it at once; and the compile cache, used by many threads compiling
the same and different structures, gives correct results and consistent counts.

Races are made likely, not left to luck: threads start together at a barrier, the
interpreter switches threads every microsecond, and where a race window is a single
statement it is widened by a slowed-down constructor (monkeypatched for the test).
"""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F
from symgrad.symbolic import compile_cache_info

THREADS = 4


@pytest.fixture(autouse=True)
def fast_switching():
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def run_threads(target, n: int = THREADS) -> list:
    """Run ``target(i, barrier)`` in ``n`` threads; return their results, re-raising errors."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def body(i):
        try:
            results[i] = target(i, barrier)
        except BaseException as err:  # noqa: BLE001  (re-raised in the main thread)
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return results


# ---------------------------------------------------------------------------- per-thread modes
def test_grad_mode_is_per_thread():
    def work(i, barrier):
        x = symgrad.tensor([1.0, 2.0], requires_grad=True)
        if i % 2:
            with symgrad.no_grad():
                barrier.wait()  # every thread is inside its block now
                y = x * 2
                barrier.wait()
        else:
            barrier.wait()
            y = x * 2
            barrier.wait()
        return y.requires_grad, symgrad.is_grad_enabled()

    results = run_threads(work)
    assert results == [(i % 2 == 0, True) for i in range(THREADS)]


def test_backward_engine_blocks_are_per_thread_and_cannot_undo_each_other():
    """Before: the block saved and restored one process-wide setting, so two threads'
    blocks interleaving left the engine of whichever exited last."""
    before = symgrad.get_backward_engine()
    names = ["tape", "symbolic", "both", "tape"]

    def work(i, barrier):
        seen = []
        with symgrad.backward_engine(names[i]):
            barrier.wait()
            seen.append(symgrad.get_backward_engine())
            time.sleep(0.001 * (THREADS - i))  # exit in the reverse order of entry
        barrier.wait()
        seen.append(symgrad.get_backward_engine())
        return seen

    results = run_threads(work)
    assert results == [[names[i], before] for i in range(THREADS)]
    assert symgrad.get_backward_engine() == before


def test_set_backward_engine_is_process_wide():
    before = symgrad.get_backward_engine()
    try:
        symgrad.set_backward_engine("tape")
        assert run_threads(lambda i, barrier: symgrad.get_backward_engine(), 2) == ["tape", "tape"]
        with symgrad.backward_engine("both"):
            symgrad.set_backward_engine("symbolic")  # what you set is what you get, in the block too
            assert symgrad.get_backward_engine() == "symbolic"
        assert symgrad.get_backward_engine() == "symbolic"
    finally:
        symgrad.set_backward_engine(before)


# ---------------------------------------------------------------------------- independent graphs
def _problem(seed: int):
    rng = np.random.default_rng(seed)
    w = symgrad.tensor(rng.normal(size=(4, 3)), requires_grad=True, name="w")
    b = symgrad.tensor(rng.normal(size=3), requires_grad=True, name="b")
    x = symgrad.tensor(rng.normal(size=(8, 4)), name="x")
    labels = symgrad.tensor(rng.integers(0, 3, size=8))
    loss = F.cross_entropy((x @ w + b).tanh() * 2.0, labels) + (w ** 2).sum() * 0.01
    return (w, b), loss


def _expected(seed: int):
    with symgrad.backward_engine("tape"):
        leaves, loss = _problem(seed)
        loss.backward()
    return [t.grad.numpy().copy() for t in leaves]


@pytest.mark.parametrize("engine_name", ["tape", "symbolic", "both"])
def test_independent_graphs_run_backward_concurrently(engine_name, fresh_cache, figures):
    rounds = 15
    expected = {seed: _expected(seed) for seed in range(THREADS * rounds)}

    def work(i, barrier):
        out = {}
        with symgrad.backward_engine(engine_name):
            barrier.wait()
            for r in range(rounds):
                seed = i * rounds + r
                leaves, loss = _problem(seed)
                loss.backward()
                out[seed] = [t.grad.numpy() for t in leaves]
        return out

    for result in run_threads(work):
        for seed, grads in result.items():
            for got, want in zip(grads, expected[seed]):
                np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    figures.add("threads: concurrent backward calls checked", THREADS * rounds)


@pytest.mark.parametrize("engine_name", ["tape", "symbolic"])
def test_threads_sharing_a_leaf_add_every_gradient_into_it(engine_name, fresh_cache):
    """Hogwild-style: every thread backpropagates into the same ``w``; no update is lost."""
    rounds = 25
    w = symgrad.tensor([1.0, -2.0, 0.5], requires_grad=True, name="w")

    def work(i, barrier):
        with symgrad.backward_engine(engine_name):
            barrier.wait()
            for r in range(rounds):
                (w * float(i * rounds + r + 1)).sum().backward()

    run_threads(work)
    total = sum(range(1, THREADS * rounds + 1))
    np.testing.assert_array_equal(w.grad.numpy(), np.full(3, float(total)))


def test_a_leaf_gets_one_gradient_sink_when_threads_first_use_it_together(monkeypatch):
    """``Tensor._edge`` made the leaf's AccumulateGrad lazily; two threads could each make
    one, and a graph holding the other sink then looked unused to ``autograd.grad``.  The
    constructor is slowed down here to widen the window."""
    tensor_module = sys.modules["symgrad.tape.tensor"]
    original = tensor_module.AccumulateGrad

    class SlowAccumulateGrad(original):
        def __init__(self, variable):
            time.sleep(0.002)
            super().__init__(variable)

    monkeypatch.setattr(tensor_module, "AccumulateGrad", SlowAccumulateGrad)
    for _ in range(5):
        x = symgrad.tensor([1.0, 2.0], requires_grad=True)

        def work(i, barrier):
            barrier.wait()
            return (x * float(i + 1)).sum()

        outputs = run_threads(work)
        sinks = {id(out.grad_fn.next_functions[0][0].next_functions[0][0]) for out in outputs}
        assert len(sinks) == 1
        for i, out in enumerate(outputs):
            (g,) = symgrad.autograd.grad(out, x)
            np.testing.assert_array_equal(g.numpy(), [i + 1.0, i + 1.0])


# ---------------------------------------------------------------------------- the compile cache
def test_compile_cache_under_concurrent_use(fresh_cache, figures):
    """8 threads x 12 backward calls over 4 structures (the constant differs) and new
    values each time: every result is right, every lookup is counted once, and the cache
    holds exactly the 4 structures."""
    threads, rounds, structures = 8, 12, 4
    before = compile_cache_info()

    def work(i, barrier):
        rng = np.random.default_rng(i)
        with symgrad.backward_engine("symbolic"):
            barrier.wait()
            for r in range(rounds):
                k = float((i + r) % structures + 2)
                x = symgrad.tensor(rng.normal(size=5), requires_grad=True, name="x")
                ((x * k).sin() * x).sum().backward()
                a = x.detach().numpy()
                np.testing.assert_allclose(x.grad.numpy(), k * np.cos(k * a) * a + np.sin(k * a), rtol=1e-12)

    run_threads(work, threads)
    after = compile_cache_info()
    lookups = (after.hits - before.hits) + (after.misses - before.misses)
    assert lookups == threads * rounds
    assert after.currsize == structures
    assert after.misses - before.misses >= structures
    figures.add("threads: concurrent compile-cache lookups checked", threads * rounds)


def test_threads_missing_the_same_structure_compile_it_once(fresh_cache, monkeypatch):
    import symgrad.symbolic.backward as backward_module

    original = backward_module._compile_segment

    def slow_compile(*args, **kwargs):
        time.sleep(0.05)  # compiling takes a while: the other threads arrive meanwhile
        return original(*args, **kwargs)

    monkeypatch.setattr(backward_module, "_compile_segment", slow_compile)

    def work(i, barrier):
        x = symgrad.tensor([0.5, 1.5], requires_grad=True, name="x")
        with symgrad.backward_engine("symbolic"):
            barrier.wait()
            (x.tanh() * 3.0).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), 3 * (1 - np.tanh([0.5, 1.5]) ** 2), rtol=1e-12)

    run_threads(work, 8)
    info = compile_cache_info()
    assert (info.misses, info.hits, info.currsize) == (1, 7, 1)


def test_a_failed_build_raises_in_every_waiter_and_frees_the_key(fresh_cache, monkeypatch):
    """One thread builds while the others wait on its claim; its exception reaches them all,
    nothing is cached or counted, and the next lookup builds afresh."""
    import symgrad.symbolic.codegen.compile as compile_module

    threads, key = 8, ("test", "a build that fails")
    waiting, builds = threading.Semaphore(0), []
    result = compile_module._Claim.result

    def counted_result(claim):
        waiting.release()
        return result(claim)

    monkeypatch.setattr(compile_module._Claim, "result", counted_result)

    def failing_build():
        builds.append(threading.get_ident())
        for _ in range(threads - 1):  # every other thread is waiting for this build
            assert waiting.acquire(timeout=30), "a thread never came to wait for the build"
        raise ValueError("the build failed")

    def work(i, barrier):
        barrier.wait()
        try:
            compile_module.cached(key, failing_build)
        except ValueError as err:
            return str(err)
        return "no error"

    assert run_threads(work, threads) == ["the build failed"] * threads
    assert len(builds) == 1
    assert compile_cache_info()[:2] == (0, 0) and compile_cache_info().currsize == 0
    assert compile_module.cached(key, lambda: "built") == "built"
    assert compile_cache_info().misses == 1


def test_shape_memo_survives_concurrent_clearing(monkeypatch, fresh_cache):
    import symgrad.symbolic.core.symbols as symbols

    monkeypatch.setattr(symbols, "_SHAPES_LIMIT", 5)

    def work(i, barrier):
        with symgrad.backward_engine("symbolic"), np.errstate(over="ignore"):
            barrier.wait()
            for r in range(30):
                x = symgrad.tensor(np.ones((3, 2)), requires_grad=True)
                w = symgrad.tensor(np.full((2, 4), 0.1), requires_grad=True)
                ((x @ w).tanh() * float(i * 100 + r)).sum(dim=1).exp().mean().backward()

    run_threads(work)
