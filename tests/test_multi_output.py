"""Nodes with more than one output (custom ``Function``s returning tuples), on every engine.

The gradient of output ``k`` must reach slot ``k`` of the node's backward, whichever
outputs a program uses, in whatever order, as the root, through hooks, ``retain_grad``,
``autograd.grad`` and in-place changes (issue 13: the tape sent every output's gradient
to output 0).  The oracle is the same program with the Function replaced by ordinary
ops; PyTorch, where installed, is a second one.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
from symgrad.tape.engine import backward_engine

ENGINES = ["tape", "symbolic", "both"]


def functions(base):
    """The table's custom Functions, written once for symgrad's and torch's base class,
    each with the same maths as ordinary ops (``plain``)."""

    class Two(base):
        @staticmethod
        def forward(ctx, a, b):
            return a * 1.0, a * 10.0

        @staticmethod
        def backward(ctx, ga, gb):
            return ga + 10 * gb, None

    class Three(base):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b, a + b, a * 2.0

        @staticmethod
        def backward(ctx, g0, g1, g2):
            a, b = ctx.saved_tensors
            return g0 * b + g1 + 2 * g2, g0 * a + g1

    class Same(base):  # one array returned twice
        @staticmethod
        def forward(ctx, a, b):
            y = a * 3.0
            return y, y

        @staticmethod
        def backward(ctx, g0, g1):
            return 3 * (g0 + g1), None

    return {"two": Two.apply, "three": Three.apply, "same": Same.apply}


PLAIN = {
    "two": lambda a, b: (a * 1.0, a * 10.0),
    "three": lambda a, b: (a * b, a + b, a * 2.0),
    "same": lambda a, b: (a * 3.0, a * 3.0),
}

PROGRAMS = {  # name: (function, program of its outputs q, returning a scalar)
    "two, output 1 only": ("two", lambda q: q[1].sum()),
    "two, output 0 only": ("two", lambda q: q[0].sum()),
    "two, both outputs": ("two", lambda q: (q[1] * 2 + q[0]).sum()),
    "two, output 1 twice": ("two", lambda q: (q[1] * q[1]).sum()),
    "three, output 2 only": ("three", lambda q: q[2].sum()),
    "three, output 1 only": ("three", lambda q: q[1].sum()),
    "three, outputs 2 and 0": ("three", lambda q: (q[2] * 5 + q[0]).sum()),
    "three, reversed order": ("three", lambda q: (q[2] + q[1] * 2 + q[0] * 3).sum()),
    "three, outputs multiplied": ("three", lambda q: (q[1] * q[2] - q[0]).sum()),
    "three, output 1 reduced first": ("three", lambda q: q[1].sum() * q[0].sum()),
    "same array twice, output 1": ("same", lambda q: q[1].sum()),
    "same array twice, weighted": ("same", lambda q: (q[1] * 5 + q[0]).sum()),
}


def _leaves(lib=symgrad):
    a = lib.tensor([0.5, -1.0, 2.0], requires_grad=True)
    b = lib.tensor([1.5, 0.25, -3.0], requires_grad=True)
    return a, b


def _grads(lib, function, program, engine):
    a, b = _leaves(lib)
    with backward_engine(engine):
        program(function(a, b)).backward()
    return [None if t.grad is None else np.asarray(t.grad.tolist()) for t in (a, b)]


def _assert_same(got, expected):
    for g, e in zip(got, expected):
        if e is None:
            assert g is None or not np.any(g)
        else:
            np.testing.assert_allclose(g, e, rtol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_output_k_gradient_reaches_slot_k(name, engine):
    kind, program = PROGRAMS[name]
    got = _grads(symgrad, functions(symgrad.autograd.Function)[kind], program, engine)
    _assert_same(got, _grads(symgrad, PLAIN[kind], program, "tape"))


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_output_k_gradient_as_in_torch(name):
    torch = pytest.importorskip("torch")
    kind, program = PROGRAMS[name]
    expected = _grads_torch(torch, functions(torch.autograd.Function)[kind], program)
    for engine in ENGINES:
        _assert_same(_grads(symgrad, functions(symgrad.autograd.Function)[kind], program, engine), expected)


def _grads_torch(torch, function, program):
    a, b = (torch.tensor(t.tolist(), dtype=torch.float64, requires_grad=True) for t in _leaves())
    program(function(a, b)).backward()
    return [None if t.grad is None else t.grad.numpy() for t in (a, b)]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("k", [0, 1, 2])
def test_output_k_as_root(k, engine):
    """The root itself is output k (``q[k].backward(gradient=...)``)."""
    three = functions(symgrad.autograd.Function)["three"]
    a, b = _leaves()
    weights = symgrad.tensor([1.0, 2.0, 3.0])
    with backward_engine(engine):
        three(a, b)[k].backward(weights)
    a2, b2 = _leaves()
    PLAIN["three"](a2, b2)[k].backward(weights)
    _assert_same([None if t.grad is None else np.asarray(t.grad.tolist()) for t in (a, b)],
                 [None if t.grad is None else np.asarray(t.grad.tolist()) for t in (a2, b2)])


@pytest.mark.parametrize("engine", ENGINES)
def test_hooks_and_retain_grad_are_per_output(engine):
    """A hook or ``retain_grad`` on output k sees output k's gradient; a hook's return
    value replaces that output's gradient only; an unused output's hook is not called
    (PyTorch calls it with None) and its ``.grad`` stays None, as in PyTorch."""
    three = functions(symgrad.autograd.Function)["three"]
    a, b = _leaves()
    q = three(a, b)
    seen = {}
    for k in (0, 2):
        q[k].register_hook(lambda g, k=k: seen.setdefault(k, g.tolist()))
    q[1].register_hook(lambda g: seen.setdefault(1, g.tolist()))
    q[2].register_hook(lambda g: g * 100)  # replaces output 2's gradient only
    q[1].retain_grad()
    q[2].retain_grad()
    with backward_engine(engine):
        (q[1] * 2 + q[2] * 3).sum().backward()
    assert seen == {1: [2.0] * 3, 2: [3.0] * 3}
    assert q[1].grad.tolist() == [2.0] * 3 and q[2].grad.tolist() == [300.0] * 3
    with pytest.warns(UserWarning, match="not a leaf"):
        assert q[0].grad is None
    np.testing.assert_allclose(a.grad.tolist(), [2 + 2 * 300.0] * 3)
    np.testing.assert_allclose(b.grad.tolist(), [2.0] * 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_autograd_grad_with_respect_to_two_outputs_of_one_node(engine):
    three = functions(symgrad.autograd.Function)["three"]
    a, b = _leaves()
    q = three(a, b)
    with backward_engine(engine):
        g2, g0, g1 = symgrad.autograd.grad((q[0] * 2 + q[1] * 3 + q[2] * 4).sum(), [q[2], q[0], q[1]])
    assert (g0.tolist(), g1.tolist(), g2.tolist()) == ([2.0] * 3, [3.0] * 3, [4.0] * 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_in_place_change_of_output_k(engine):
    """``z = q[1] + 1; q[1].add_(1)``: z still flows to output 1 (the edge and its output
    number are captured when ``+`` runs), and so does the changed ``q[1]``."""
    two = functions(symgrad.autograd.Function)["two"]
    a, b = _leaves()
    q = two(a, b)
    z = q[1] + 1
    q[1].add_(1)
    with backward_engine(engine):
        (z * 2 + q[1]).sum().backward()
    np.testing.assert_allclose(a.grad.tolist(), [30.0] * 3)


def test_next_functions_name_the_output():
    three = functions(symgrad.autograd.Function)["three"]
    a, b = _leaves()
    q = three(a, b)
    assert [(q[2] * 2).grad_fn.next_functions[0][1], (q[1] + q[0]).grad_fn.next_functions[1][1]] == [2, 0]
    assert (q[1] + q[0]).grad_fn.next_functions[0] == (q[1].grad_fn, 1)


@pytest.mark.parametrize("engine", ["tape", "symbolic"])
@pytest.mark.parametrize("k", [0, 1, 2])
def test_create_graph_through_output_k(k, engine):
    """A second derivative through output k: the first gradient's graph must lead back to
    output k too (the symbolic engine's recorded closed forms and the tape's)."""
    def second(function, engine):
        a, b = _leaves()
        with backward_engine(engine):
            (g,) = symgrad.autograd.grad((function(a, b)[k] ** 2 * b).sum(), [a], create_graph=True)
        with backward_engine("tape"):
            g.sum().backward()
        return [np.asarray(t) for t in (g.tolist(), a.grad.tolist(), b.grad.tolist())]

    got = second(functions(symgrad.autograd.Function)["three"], engine)
    for g, e in zip(got, second(PLAIN["three"], "tape")):
        np.testing.assert_allclose(g, e, rtol=1e-12)


def _with_index_output(base, lib):
    """``(2a, a > 0 as integers, 3a)``: output 1 carries no gradient."""

    class WithIndex(base):
        @staticmethod
        def forward(ctx, a):
            index = (a > 0).to(lib.int64)
            ctx.mark_non_differentiable(index)
            return a * 2.0, index, a * 3.0

        @staticmethod
        def backward(ctx, g0, g1, g2):
            return 2 * g0 + 3 * g2

    return WithIndex.apply


@pytest.mark.parametrize("engine", ENGINES)
def test_output_after_a_non_differentiable_one(engine):
    """Output 2 keeps its number when output 1 is marked non-differentiable."""
    x = symgrad.tensor([1.0, -2.0], requires_grad=True)
    q = _with_index_output(symgrad.autograd.Function, symgrad)(x)
    with backward_engine(engine):
        (q[2] * 5).sum().backward()
    assert x.grad.tolist() == [15.0, 15.0] and not q[1].requires_grad
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.0, -2.0], requires_grad=True)
    (_with_index_output(torch.autograd.Function, torch)(t)[2] * 5).sum().backward()
    assert t.grad.tolist() == x.grad.tolist()
