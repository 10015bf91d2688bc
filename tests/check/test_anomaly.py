"""detect_anomaly: NaN/inf produced in backward raises, naming the op and where it was made."""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
from symgrad.check import AnomalyError, detect_anomaly, is_anomaly_enabled
from symgrad.tape import engine as engine_module
from symgrad.tape import node as node_module


def model(x):
    hidden = x * 2
    return hidden.sqrt().sum()  # the line the error must point at


def test_inf_in_backward_names_the_op_and_the_line_that_created_it():
    x = symgrad.tensor([0.0, 1.0], requires_grad=True)
    with pytest.raises(AnomalyError) as caught, detect_anomaly(), np.errstate(divide="ignore"):
        model(x).backward()
    message = str(caught.value)
    assert message.startswith("backward of sqrt (SqrtBackward0) produced inf in the gradient of its input 0")
    assert "first at [0]" in message and "values in [0, 2]" in message
    assert "test_anomaly.py" in message and "in model" in message
    assert "return hidden.sqrt().sum()  # the line the error must point at" in message
    assert caught.value.node.name() == "SqrtBackward0" and caught.value.input == 0


def test_nan_from_a_custom_function_is_caught():
    class Bad(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g * float("nan")

    x = symgrad.tensor([1.0], requires_grad=True)
    with pytest.raises(AnomalyError, match=r"backward of Bad \(BadBackward\) produced nan"), detect_anomaly():
        Bad.apply(x).sum().backward()


def test_forward_outside_the_block_says_the_creation_point_is_unknown():
    x = symgrad.tensor([0.0], requires_grad=True)
    y = x.sqrt().sum()
    with pytest.raises(AnomalyError, match="created before anomaly mode was turned on"), detect_anomaly(), \
            np.errstate(divide="ignore"):
        y.backward()


def test_outside_the_block_nothing_is_checked_or_recorded():
    init, vjp = node_module.Node.__init__, engine_module.node_vjp
    x = symgrad.tensor([0.0], requires_grad=True)
    with detect_anomaly():
        assert is_anomaly_enabled()
        with detect_anomaly():  # nesting
            pass
        assert is_anomaly_enabled()
    assert not is_anomaly_enabled()
    assert (node_module.Node.__init__, engine_module.node_vjp) == (init, vjp)
    y = x.sqrt()
    assert not hasattr(y.grad_fn, "creation_stack")
    with np.errstate(divide="ignore"):
        y.sum().backward()  # no error outside anomaly mode
    assert np.isinf(x.grad.item())


def test_finite_backward_passes_and_the_engine_switch_is_restored():
    before = symgrad.get_backward_engine()
    x = symgrad.tensor([1.0, 4.0], requires_grad=True)
    with detect_anomaly():
        assert symgrad.get_backward_engine() == "tape"
        model(x).backward()
    assert symgrad.get_backward_engine() == before
    np.testing.assert_allclose(x.grad._data, 1 / np.sqrt(2 * x._data))


def test_gradients_of_constants_are_not_checked():
    x = symgrad.tensor([np.inf], requires_grad=True)
    with detect_anomaly(), np.errstate(invalid="ignore"):
        # the constant's gradient would be g * x = inf, but nobody asked for it; x's is g * 0
        (symgrad.tensor([0.0]) * x).sum().backward()
    assert x.grad.item() == 0


def test_decorator_form():
    @detect_anomaly()
    def step(x):
        (x.log() * 2).sum().backward()

    with pytest.raises(AnomalyError, match="backward of log"), np.errstate(divide="ignore", invalid="ignore"):
        step(symgrad.tensor([0.0], requires_grad=True))
