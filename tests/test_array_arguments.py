"""Every op or function that takes an optional array or tensor argument (bounds, weights,
targets, exponents, the other operand), given it as a NumPy array, a list and a tensor, on
the tape, symbolic and ``"both"`` engines: the same gradients everywhere.

Issue 13: ``clamp(min=<array>)`` (and ``max=``) ran on the tape but the symbolic engine
raised ``TypeError: cannot determine truth value of Relational`` (the array was an
attribute of a SymPy form), and tensor bounds failed on both engines.  Such bounds are
now inputs of ``clamp_tensor``.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F

X = np.array([[0.2, -0.5, 1.0], [0.3, 0.9, -1.2]])
ROW = np.array([0.5, 0.0, 1.0])
TARGET = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])

KINDS = {
    "array": lambda a: np.asarray(a),
    "list": lambda a: np.asarray(a).tolist(),
    "tensor": lambda a: symgrad.tensor(a),
    "tensor_with_grad": lambda a: symgrad.tensor(a, requires_grad=True),
}

# name: (program of x and the argument made by a KINDS entry, the argument's value)
PROGRAMS = {
    "clamp_min": (lambda x, a: x.clamp(min=a), ROW),
    "clamp_max": (lambda x, a: x.clamp(max=a), ROW),
    "clamp_both": (lambda x, a: x.clamp(min=a, max=symgrad.tensor(ROW) + 0.5), ROW - 0.6),
    "clamp_min_above_max": (lambda x, a: x.clamp(min=a, max=symgrad.tensor([0.3])) * x, ROW + 0.4),
    "clamp_in_place": (lambda x, a: (x * 1.0).clamp_(min=a), ROW),
    "clamp_function": (lambda x, a: symgrad.clamp(x, max=a), ROW),
    "clip": (lambda x, a: x.clip(min=a), ROW),
    "maximum": (lambda x, a: x.maximum(symgrad.as_tensor(a)), ROW),
    "minimum": (lambda x, a: x.minimum(symgrad.as_tensor(a)), ROW),
    "where": (lambda x, a: symgrad.where(x > 0, x, a), ROW),
    "add": (lambda x, a: x + a, ROW),
    "pow_exponent": (lambda x, a: x.abs() ** a, ROW),
    "mse_loss_target": (lambda x, a: F.mse_loss(x, a), TARGET),
    "l1_loss_target": (lambda x, a: F.l1_loss(x, a), TARGET),
    "bce_logits_weight": (lambda x, a: F.binary_cross_entropy_with_logits(x, TARGET, weight=a), ROW),
    "bce_logits_pos_weight": (lambda x, a: F.binary_cross_entropy_with_logits(x, TARGET, pos_weight=a), ROW + 1),
    "bce_logits_target": (lambda x, a: F.binary_cross_entropy_with_logits(x, a), TARGET),
    "bce_weight": (lambda x, a: F.binary_cross_entropy(x.sigmoid(), TARGET, weight=a), ROW),
    "cross_entropy_weight": (lambda x, a: F.cross_entropy(x, np.array([0, 2]), weight=a), ROW + 0.5),
    "nll_loss_weight": (lambda x, a: F.nll_loss(x, [0, 2], weight=a), ROW + 0.5),
}
CLASS_WEIGHTS = {"cross_entropy_weight", "nll_loss_weight"}  # constants: PyTorch takes no gradient there


def _grads(name: str, kind: str, engine: str):
    program, value = PROGRAMS[name]
    x = symgrad.tensor(X, requires_grad=True)
    argument = KINDS[kind](value)
    with symgrad.backward_engine(engine):
        program(x, argument).sum().backward()
    other = argument.grad.numpy() if isinstance(argument, symgrad.Tensor) and argument.grad is not None else None
    return x.grad.numpy(), other


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_array_arguments_on_every_engine(name, kind):
    if kind == "tensor_with_grad" and name in CLASS_WEIGHTS:
        pytest.skip("class weights are constants")
    tape = _grads(name, kind, "tape")
    assert np.any(tape[0] != 0)
    assert (tape[1] is not None) == (kind == "tensor_with_grad")
    for engine in ("symbolic", "both"):
        for got, want in zip(_grads(name, kind, engine), tape):
            if want is None:
                assert got is None, engine
            else:
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=engine)


@pytest.mark.parametrize("name", sorted(n for n in PROGRAMS if n.startswith(("clamp", "clip"))))
def test_clamp_with_tensor_bounds_is_pytorchs(name):
    torch = pytest.importorskip("torch")
    program, value = PROGRAMS[name]
    ours = _grads(name, "tensor_with_grad", "symbolic")
    x = torch.tensor(X, requires_grad=True)
    bound = torch.tensor(value, requires_grad=True)
    with_torch = {"clamp_in_place": lambda: (x * 1.0).clamp_(min=bound),
                  "clamp_function": lambda: torch.clamp(x, max=bound),
                  "clamp_both": lambda: x.clamp(min=bound, max=torch.tensor(ROW) + 0.5),
                  "clamp_min_above_max": lambda: x.clamp(min=bound, max=torch.tensor([0.3], dtype=torch.float64)) * x}
    out = with_torch[name]() if name in with_torch else program(x, bound)
    out.sum().backward()
    np.testing.assert_array_equal(ours[0], x.grad.numpy())
    np.testing.assert_array_equal(ours[1], bound.grad.numpy())
