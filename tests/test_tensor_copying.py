"""``copy.deepcopy``, ``copy.copy`` and pickle of tensors (issue 13).

As in PyTorch: a leaf (or a tensor that needs no grad) deep-copies with its values,
``requires_grad`` and ``.grad``; a tensor computed by a recorded op refuses deepcopy
(deep-copying its graph recursed: ``RecursionError`` at 3,000 ops); pickling and
``copy.copy`` keep values and ``requires_grad`` but never the graph or ``.grad``.
"""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import symgrad

KINDS = {  # name: make(lib) -> tensor
    "leaf": lambda lib: lib.tensor([1.0, 2.0], requires_grad=True),
    "leaf with grad": lambda lib: _with_grad(lib.tensor([1.0, 2.0], requires_grad=True)),
    "non-leaf": lambda lib: lib.tensor([1.0, 2.0], requires_grad=True) * 2,
    "non-leaf, 3,000 ops": lambda lib: _chain(lib.tensor([1.0, 2.0], requires_grad=True), 3000),
    "detached": lambda lib: (lib.tensor([1.0, 2.0], requires_grad=True) * 2).detach(),
    "no grad": lambda lib: lib.tensor([1.0, 2.0]),
    "integers": lambda lib: lib.tensor([1, 2]),
}
COPIES = {
    "deepcopy": copy.deepcopy,
    "copy": copy.copy,
    "pickle": lambda t: pickle.loads(pickle.dumps(t)),
}


def _with_grad(t):
    (t * t).sum().backward()
    return t


def _chain(t, n):
    for _ in range(n):
        t = t * 1.0001
    return t


def outcome(lib, kind, how):
    """What copying gives: the error's type, or the copy's facts."""
    original = KINDS[kind](lib)
    try:
        made = COPIES[how](original)
    except RuntimeError as err:  # RecursionError is a RuntimeError too: the name tells them apart
        return type(err).__name__, None, None
    grad = None if made.grad is None else made.grad.tolist()
    facts = (made.requires_grad, made.grad_fn is None, grad, made.dtype == original.dtype)
    return facts, np.asarray(made.tolist()), original


@pytest.mark.parametrize("how", list(COPIES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_copies_are_independent_leaves(kind, how):
    facts, values, original = outcome(symgrad, kind, how)
    if facts == "RuntimeError":
        assert how == "deepcopy" and original is None and KINDS[kind](symgrad).grad_fn is not None
        return
    requires_grad, is_leaf, grad, same_dtype = facts
    assert is_leaf and same_dtype and requires_grad == original.requires_grad
    np.testing.assert_array_equal(values, original.tolist())
    expected_grad = original.grad.tolist() if how == "deepcopy" and original.grad is not None else None
    assert grad == expected_grad


@pytest.mark.parametrize("how", list(COPIES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_copies_as_in_torch(kind, how):
    torch = pytest.importorskip("torch")
    got, values, _ = outcome(symgrad, kind, how)
    expected, torch_values, _ = outcome(torch, kind, how)
    assert got == expected
    if values is not None:
        np.testing.assert_allclose(values, torch_values, rtol=1e-4)  # torch computes in float32


def test_deepcopy_refuses_a_non_leaf_by_name_and_says_what_to_do():
    t = _chain(symgrad.tensor([1.0, 2.0], requires_grad=True), 3000)
    with pytest.raises(RuntimeError, match=r"output of MulBackward0.*t\.detach\(\)"):
        copy.deepcopy(t)
    assert copy.deepcopy(t.detach()).tolist() == t.tolist()


def test_a_deep_copy_owns_its_values_grad_and_version():
    w = _with_grad(symgrad.tensor([1.0, 2.0], requires_grad=True, name="w"))
    w.register_hook(lambda g: g * 100)
    c = copy.deepcopy(w)
    assert c.name == "w" and c.grad is not w.grad
    with symgrad.no_grad():
        c.add_(1.0)
    c.grad.zero_()
    assert w.tolist() == [1.0, 2.0] and w.grad.tolist() == [2.0, 4.0] and w._version.value == 0
    c.sum().backward()  # the copy records its own graph; the original's hook is not copied
    assert c.grad.tolist() == [1.0, 1.0] and w.grad.tolist() == [2.0, 4.0]


def test_deepcopy_keeps_shared_references_shared():
    w = symgrad.tensor([1.0], requires_grad=True)
    first, second = copy.deepcopy([w, w])
    assert first is second and first is not w


def test_parameters_deepcopy_without_grad_as_in_torch():
    p = symgrad.nn.Parameter(symgrad.tensor([1.0, 2.0]))
    _with_grad(p)
    c = copy.deepcopy(p)
    assert isinstance(c, symgrad.nn.Parameter) and c.grad is None and c.tolist() == [1.0, 2.0]
