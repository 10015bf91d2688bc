"""Structure keys of recorded graphs (``symgrad.tape.structure.graph_key``) and the
symbolic engine's use of them: a graph recorded again finds its compiled backward
without being translated again, and still gets the right numbers.

* keys separate graphs that differ in a constant, a dtype, a shape, an axis, a slice,
  a name or their wiring, and agree for the same program recorded twice;
* a training loop compiles once (1 miss, 99 hits) and, after the first step, never
  builds a ``Segment``; its parameters end where the tape engine's do;
* a key shared by two graphs reading their leaves in another order routes each
  gradient to its own leaf; an evicted compiled function is rebuilt from the graph;
* graphs the key does not describe (custom Functions, index arrays) take the walk.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.nn as nn
import symgrad.nn.functional as F
import symgrad.symbolic.backward as sym_backward
from symgrad.symbolic import compile_cache_clear, compile_cache_info
from symgrad.tape.engine import graph_order
from symgrad.tape.node import AccumulateGrad
from symgrad.tape.structure import freeze, graph_key

RNG_SEED = 7


def _leaf(shape, dtype=np.float64, name=None, seed=0):
    rng = np.random.default_rng(RNG_SEED + seed)
    return symgrad.tensor(rng.uniform(0.5, 1.5, size=shape).astype(dtype), requires_grad=True, name=name)


def _data(shape, dtype=np.float64, seed=1):
    rng = np.random.default_rng(RNG_SEED + 100 + seed)
    return symgrad.tensor(rng.uniform(0.5, 1.5, size=shape).astype(dtype))


def _key(loss):
    return graph_key(graph_order([loss.grad_fn]), AccumulateGrad)


# (id, program a, program b): each builds fresh tensors and returns a scalar loss; a and b differ
DIFFERENT = [
    ("constant", lambda: (_leaf((3,)) * 2.0).sum(), lambda: (_leaf((3,)) * 2.5).sum()),
    ("constant int vs float", lambda: (_leaf((3,)) ** 2).sum(), lambda: (_leaf((3,)) ** 2.0).sum()),
    ("constant 1 ulp", lambda: (_leaf((3,)) * 0.1).sum(), lambda: (_leaf((3,)) * float(np.nextafter(0.1, 1))).sum()),
    ("leaf dtype", lambda: _leaf((3,), np.float32).exp().sum(), lambda: _leaf((3,), np.float64).exp().sum()),
    ("data dtype", lambda: (_leaf((3,), np.float32) * _data((3,), np.float32)).sum(),
     lambda: (_leaf((3,), np.float32) * _data((3,), np.float64)).sum()),
    ("leaf shape", lambda: _leaf((2, 3)).sin().sum(), lambda: _leaf((3, 2)).sin().sum()),
    ("broadcast shape", lambda: (_leaf((3, 4)) * _data((1, 4))).sum(), lambda: (_leaf((3, 4)) * _data((3, 1))).sum()),
    ("axis", lambda: _leaf((3, 4)).sum(dim=0).exp().sum(), lambda: _leaf((3, 4)).sum(dim=1).exp().sum()),
    ("keepdim bool vs int", lambda: _leaf((3, 4)).sum(dim=0, keepdim=True).exp().sum(),
     lambda: _leaf((3, 4)).sum(dim=0, keepdim=1).exp().sum()),
    ("slice", lambda: _leaf((5,))[1:3].exp().sum(), lambda: _leaf((5,))[1:4].exp().sum()),
    ("slice step", lambda: _leaf((6,))[::2].exp().sum(), lambda: _leaf((6,))[0:6:3].exp().sum()),
    ("reshape", lambda: (_leaf((2, 6)).reshape(3, 4) @ _data((4, 1))).sum(),
     lambda: (_leaf((2, 6)).reshape(4, 3) @ _data((3, 1))).sum()),
    ("name", lambda: _leaf((3,), name="w").tanh().sum(), lambda: _leaf((3,), name="v").tanh().sum()),
    ("op", lambda: _leaf((3,)).sin().sum(), lambda: _leaf((3,)).cos().sum()),
]


@pytest.mark.parametrize("name,a,b", DIFFERENT, ids=[case[0] for case in DIFFERENT])
def test_keys_separate_graphs_that_differ(name, a, b):
    key_a, key_b = _key(a()), _key(b())
    assert key_a is not None and key_b is not None
    assert key_a[0] != key_b[0]
    assert _key(a())[0] == key_a[0]  # the same program recorded again has the same key


def _wiring_pairs():
    p, q = _leaf((3,), seed=1), _leaf((3,), seed=2)
    return [
        ("p*q vs p*p", (p * q).sum(), (p * p).sum()),
        ("p*2+q vs p*2+p", (p * 2 + q).sum(), (p * 2 + p).sum()),
        ("(p+q)*p vs (p+q)*q", ((p + q) * p).sum(), ((p + q) * q).sum()),
    ]


def test_keys_separate_wiring():
    for name, a, b in _wiring_pairs():
        assert _key(a)[0] != _key(b)[0], name


def test_freeze_tags_types():
    values = [True, 1, 1.0, -0.0, 0.0, None, (1, 2), [1, 2], slice(1, 2), np.float32(1.0), "1"]
    frozen = [freeze(v) for v in values]
    assert len({f for f in frozen}) == len(values) - 1  # np.float32(1.0) is the number 1.0
    assert freeze(np.float32(1.0)) == freeze(1.0)
    with pytest.raises(TypeError, match="cannot be part of a symbolic graph"):
        freeze(object())


def _count_segments(monkeypatch) -> list:
    built = []
    original = sym_backward.Segment

    def counting(*args, **kwargs):
        built.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(sym_backward, "Segment", counting)
    return built


def _fit(engine: str, steps: int, built: list | None = None):
    """A small model trained with SGD; returns its parameters and, per step, how many
    segments the symbolic engine built."""
    rng = np.random.default_rng(RNG_SEED)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    with symgrad.no_grad():
        for p in model.parameters():
            p.copy_(symgrad.tensor(rng.normal(scale=0.5, size=p.shape)))
    opt = symgrad.optim.SGD(model.parameters(), lr=0.05)
    x = symgrad.tensor(rng.normal(size=(8, 3)))
    y = symgrad.tensor(rng.normal(size=(8, 1)))
    per_step = []
    with symgrad.backward_engine(engine):
        for _ in range(steps):
            before = len(built) if built is not None else 0
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            opt.step()
            per_step.append(len(built) - before if built is not None else 0)
    return [p.detach().numpy().copy() for p in model.parameters()], per_step


def test_training_compiles_once_and_skips_the_translation(monkeypatch):
    reference, _ = _fit("tape", 100)
    compile_cache_clear()
    built = _count_segments(monkeypatch)
    params, per_step = _fit("symbolic", 100, built)
    info = compile_cache_info()
    assert (info.misses, info.hits) == (1, 99)
    assert per_step[0] == 1 and per_step[1:] == [0] * 99
    for p, r in zip(params, reference):
        np.testing.assert_allclose(p, r, rtol=1e-10, atol=1e-12)


def test_shared_key_routes_gradients_to_their_own_leaves():
    a, b = _leaf((3,), seed=1), _leaf((3,), seed=2)

    def loss(p, q):
        return (p * p * 2 + q.sin()).sum()

    compile_cache_clear()
    for p, q in [(a, b), (b, a), (a, b)]:
        for t in (a, b):
            t.grad = None
        with symgrad.backward_engine("symbolic"):
            loss(p, q).backward()
        np.testing.assert_allclose(p.grad.numpy(), 4 * p.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(q.grad.numpy(), np.cos(q.detach().numpy()), rtol=1e-12)
    assert compile_cache_info().misses == 1


def test_evicted_function_is_rebuilt_from_the_graph():
    x = _leaf((4,), name="x")
    d = _data((4,))
    with symgrad.backward_engine("symbolic"):
        (x * d).exp().sum().backward()
        first = x.grad.numpy().copy()
        compile_cache_clear()  # the structure is known, its compiled function is gone
        x.grad = None
        (x * d).exp().sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), first, rtol=1e-12)
    np.testing.assert_allclose(first, d.numpy() * np.exp(x.detach().numpy() * d.numpy()), rtol=1e-12)
    assert compile_cache_info().misses == 1


class Twice(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


UNDESCRIBED = [
    ("custom Function", lambda: Twice.apply(_leaf((3,))).sum()),
    ("index array", lambda: F.cross_entropy(_leaf((4, 3)), symgrad.tensor(np.array([0, 2, 1, 0])))),
]


@pytest.mark.parametrize("name,program", UNDESCRIBED, ids=[case[0] for case in UNDESCRIBED])
def test_graphs_the_key_does_not_describe_take_the_walk(name, program):
    assert _key(program()) is None


NONFINITE = [  # constants the symbolic engine makes inputs of the compiled function
    ("zero factor", lambda x: (x * 0.0 + x.sin()).sum()),
    ("infinite bound", lambda x: x.clamp(max=float("inf")).exp().sum()),
    ("nan constant", lambda x: (x * 2 + float("nan")).sum()),
]


@pytest.mark.parametrize("name,program", NONFINITE, ids=[case[0] for case in NONFINITE])
def test_constants_made_inputs_are_passed_on_the_known_path(name, program, monkeypatch):
    x = _leaf((4,), name="x")
    with symgrad.backward_engine("tape"):
        program(x).backward()
    reference = x.grad.numpy().copy()
    built = _count_segments(monkeypatch)
    for step in range(3):
        x.grad = None
        with symgrad.backward_engine("symbolic"):
            program(x).backward()
        np.testing.assert_allclose(x.grad.numpy(), reference, rtol=1e-12, equal_nan=True)
    assert len(built) == 1
