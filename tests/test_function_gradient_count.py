"""How many gradients a custom ``Function.backward`` may return (issue 13).

One per forward argument; beyond them PyTorch accepts trailing Nones and refuses
anything else, with a message naming the counts.  Forward here takes ``(x, factor)``.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
from symgrad.tape.engine import backward_engine

RETURNS = {  # name: (backward's return given g and x, error message or None)
    "one per argument": (lambda g, x: (g * 2, None), None),
    "one trailing None": (lambda g, x: (g * 2, None, None), None),
    "three trailing Nones": (lambda g, x: (g * 2, None, None, None, None), None),
    "too few": (lambda g, x: (g * 2,), r"incorrect number of gradients \(expected 2, got 1\)$"),
    "extra tensor": (lambda g, x: (g * 2, None, g),
                     r"\(expected 2, got 3\); gradient 2 is a Tensor, but forward took only 2 argument"),
    "extra number after a None": (lambda g, x: (g * 2, None, None, 0.0),
                                  r"\(expected 2, got 4\); gradient 3 is a float, .*only None after them"),
}


def function(base, returns):
    class Scale(base):
        @staticmethod
        def forward(ctx, x, factor):
            ctx.save_for_backward(x)
            return x * factor

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return returns(g, x)

    return Scale


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("engine", ["tape", "symbolic", "both"])
@pytest.mark.parametrize("name", list(RETURNS))
def test_gradient_count(name, engine, create_graph):
    returns, message = RETURNS[name]
    x = symgrad.tensor([1.0, -2.0], requires_grad=True)
    scale = function(symgrad.autograd.Function, returns)
    with backward_engine(engine):
        if message is None:
            (g,) = symgrad.autograd.grad(scale.apply(x, 2.0).sum(), [x], create_graph=create_graph)
            assert g.tolist() == [2.0, 2.0]
        else:
            with pytest.raises(RuntimeError, match=message):
                symgrad.autograd.grad(scale.apply(x, 2.0).sum(), [x], create_graph=create_graph)


@pytest.mark.parametrize("name", list(RETURNS))
def test_gradient_count_as_in_torch(name):
    torch = pytest.importorskip("torch")
    returns, message = RETURNS[name]
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    try:
        (g,) = torch.autograd.grad(function(torch.autograd.Function, returns).apply(x, 2.0).sum(), [x])
    except RuntimeError as err:
        assert message is not None and "incorrect number of gradients" in str(err)
    else:
        assert message is None and np.array_equal(g.numpy(), [2.0, 2.0])
