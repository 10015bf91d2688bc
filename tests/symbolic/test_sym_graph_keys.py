"""Structure keys of recorded graphs (``Segment.key``, from the one walk the symbolic
engine makes of a graph) and the engine's use of them: a graph recorded again finds its
compiled backward without being translated to SymPy again, and still gets the right
numbers.

* keys separate graphs that differ in a constant, a dtype, a shape, an axis, a slice,
  a name, an op, a custom Function, an index array's shape or a mask's count, or their
  wiring, and agree for the same program recorded twice (with other data and labels);
* a training loop compiles once (1 miss, 99 hits) and, after the first step, never
  builds SymPy; its parameters end where the tape engine's do;
* a key shared by two graphs reading their leaves in another order routes each
  gradient to its own leaf; an evicted compiled function is rebuilt from the graph.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.nn as nn
import symgrad.nn.functional as F
from symgrad.symbolic import compile_cache_clear, compile_cache_info
from symgrad.symbolic.derive.graph import Segment
from symgrad.tape.engine import graph_order
from symgrad.tape.structure import freeze

RNG_SEED = 7


def _leaf(shape, dtype=np.float64, name=None, seed=0):
    rng = np.random.default_rng(RNG_SEED + seed)
    return symgrad.tensor(rng.uniform(0.5, 1.5, size=shape).astype(dtype), requires_grad=True, name=name)


def _data(shape, dtype=np.float64, seed=1):
    rng = np.random.default_rng(RNG_SEED + 100 + seed)
    return symgrad.tensor(rng.uniform(0.5, 1.5, size=shape).astype(dtype))


def _key(loss):
    return Segment([loss]).key


class Twice(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


class Thrice(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 3

    @staticmethod
    def backward(ctx, g):
        return g * 3


def _labels(*values):
    return symgrad.tensor(np.array(values))


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
    ("custom Function", lambda: Twice.apply(_leaf((3,))).sum(), lambda: Thrice.apply(_leaf((3,))).sum()),
    ("index array shape", lambda: _leaf((3,))[_labels(0, 1)].exp().sum(),
     lambda: _leaf((3,))[_labels(0, 1, 2)].exp().sum()),
    ("mask count", lambda: _leaf((3,))[np.array([True, False, True])].exp().sum(),
     lambda: _leaf((3,))[np.array([True, True, True])].exp().sum()),
]

# (id, program a, program b): the same structure over other data, labels or mask positions
SAME = [
    ("data values", lambda: (_leaf((3,)) * _data((3,), seed=1)).sum(), lambda: (_leaf((3,)) * _data((3,), seed=2)).sum()),
    ("labels", lambda: F.cross_entropy(_leaf((4, 3)), _labels(0, 2, 1, 0)),
     lambda: F.cross_entropy(_leaf((4, 3)), _labels(2, 2, 0, 1))),
    ("mask positions", lambda: _leaf((3,))[np.array([True, False, True])].exp().sum(),
     lambda: _leaf((3,))[np.array([False, True, True])].exp().sum()),
    ("custom Function", lambda: Twice.apply(_leaf((3,), seed=1)).sum(), lambda: Twice.apply(_leaf((3,), seed=2)).sum()),
]


@pytest.mark.parametrize("name,a,b", DIFFERENT, ids=[case[0] for case in DIFFERENT])
def test_keys_separate_graphs_that_differ(name, a, b):
    key_a, key_b = _key(a()), _key(b())
    assert key_a != key_b
    assert _key(a()) == key_a  # the same program recorded again has the same key


@pytest.mark.parametrize("name,a,b", SAME, ids=[case[0] for case in SAME])
def test_keys_agree_for_one_structure_over_other_values(name, a, b):
    assert _key(a()) == _key(b())


@pytest.mark.parametrize("name,program", [(case[0], case[1]) for case in DIFFERENT + SAME],
                         ids=[case[0] for case in DIFFERENT + SAME])
def test_backward_reusing_its_node_order_walks_to_the_same_key(name, program):
    """backward hands a whole-graph segment the node order it computed; the segment then
    takes its nodes from it instead of walking again, and must reach the walk's key."""
    loss = program()
    root = loss.grad_fn
    order = graph_order([root])
    walked = Segment([(root, None)], boundary=frozenset([root]), keep=set(order), own=root)
    reused = Segment([(root, None)], boundary=frozenset([root]), keep=set(order), own=root, order=order)
    assert reused.key == walked.key
    assert reused.nodes == walked.nodes


def _wiring_pairs():
    p, q = _leaf((3,), seed=1), _leaf((3,), seed=2)
    return [
        ("p*q vs p*p", (p * q).sum(), (p * p).sum()),
        ("p*2+q vs p*2+p", (p * 2 + q).sum(), (p * 2 + p).sum()),
        ("(p+q)*p vs (p+q)*q", ((p + q) * p).sum(), ((p + q) * q).sum()),
    ]


def test_keys_separate_wiring():
    for name, a, b in _wiring_pairs():
        assert _key(a) != _key(b), name


def test_freeze_tags_types():
    values = [True, 1, 1.0, -0.0, 0.0, None, (1, 2), [1, 2], slice(1, 2), np.float32(1.0), "1"]
    frozen = [freeze(v) for v in values]
    assert len({f for f in frozen}) == len(values) - 1  # np.float32(1.0) is the number 1.0
    assert freeze(np.float32(1.0)) == freeze(1.0)
    with pytest.raises(TypeError, match="cannot be part of a symbolic graph"):
        freeze(object())


def _count_builds(monkeypatch) -> list:
    """A list that grows by one each time a segment is translated to SymPy."""
    built = []
    original = Segment.build

    def counting(self, *args, **kwargs):
        built.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Segment, "build", counting)
    return built


def _fit(engine: str, steps: int, built: list | None = None):
    """A small model trained with SGD; returns its parameters and, per step, how many
    segments the symbolic engine translated to SymPy."""
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
    built = _count_builds(monkeypatch)
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


def test_training_through_labels_compiles_once_and_skips_the_translation(monkeypatch):
    """Index arrays (the labels cross_entropy picks with) are inputs of the one compiled
    function: new labels every step reuse it."""
    rng = np.random.default_rng(RNG_SEED)
    w = symgrad.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    x = symgrad.tensor(rng.normal(size=(6, 3)))
    labels = [symgrad.tensor(rng.integers(0, 4, size=6)) for _ in range(5)]
    compile_cache_clear()
    built = _count_builds(monkeypatch)
    for y in labels:
        w.grad = None
        with symgrad.backward_engine("symbolic"):
            F.cross_entropy(x @ w, y).backward()
        got = w.grad.numpy().copy()
        w.grad = None
        with symgrad.backward_engine("tape"):
            F.cross_entropy(x @ w, y).backward()
        np.testing.assert_allclose(got, w.grad.numpy(), rtol=1e-12)
    assert len(built) == 1
    assert (compile_cache_info().misses, compile_cache_info().hits) == (1, 4)


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
    built = _count_builds(monkeypatch)
    for step in range(3):
        x.grad = None
        with symgrad.backward_engine("symbolic"):
            program(x).backward()
        np.testing.assert_allclose(x.grad.numpy(), reference, rtol=1e-12, equal_nan=True)
    assert len(built) == 1
