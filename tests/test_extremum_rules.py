"""Ties and NaN of every max/min-like op, one table, on the tape, symbolic and "both"
engines, and the table itself against PyTorch 2.13 where torch is installed.

The rules (PyTorch's; ``docs/reliability.md`` and the op table's docstrings say them):

* ``maximum``/``minimum``: the losing argument gets 0, a tie splits the gradient half/half,
  and where either argument is NaN both get all of it (``maximum(x, x)`` has gradient 2 at
  NaN and 1 elsewhere);
* ``max()``/``min()`` over all elements: the gradient is split evenly between the tied
  extreme elements, or between the NaN elements when there is a NaN;
* ``max(dim)``/``min(dim)``: all of it goes to the first extreme index (the first NaN);
* ``clamp``: the gradient passes where ``min <= x <= max``, bounds included, never at a
  NaN, and nowhere when ``min > max``; with tensor bounds, ``min`` takes it where
  ``x < min < max`` and ``max`` where ``x > max`` or ``max < min`` (two degenerate points
  differ from PyTorch: ``DEVIATIONS``); ``relu`` zeroes it where ``x <= 0`` (so passes it
  at NaN).

Issue 13: ``x.minimum(x)`` at NaN was 1 on the symbolic engine (``minimum(x, x)``
simplified to ``x``) and 0 on the tape, so ``"both"`` raised; PyTorch gives 2.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

NAN, INF = float("nan"), float("inf")

# name: (function of the inputs, written with names torch and symgrad share; inputs;
#        expected gradient of each input for the upstream gradient UPSTREAM)
RULES = {
    "maximum_ties": (lambda a, b: a.maximum(b), [[1.0, 2.0, 3.0, INF], [1.0, 3.0, 2.0, INF]],
                     [[0.5, 0.0, 1.0, 0.5], [0.5, 1.0, 0.0, 0.5]]),
    "minimum_ties": (lambda a, b: a.minimum(b), [[1.0, 2.0, 3.0, -INF], [1.0, 3.0, 2.0, -INF]],
                     [[0.5, 1.0, 0.0, 0.5], [0.5, 0.0, 1.0, 0.5]]),
    "maximum_nan": (lambda a, b: a.maximum(b), [[NAN, 1.0, NAN, 5.0], [1.0, NAN, NAN, -5.0]],
                    [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]]),
    "minimum_nan": (lambda a, b: a.minimum(b), [[NAN, 1.0, NAN, 5.0], [1.0, NAN, NAN, -5.0]],
                    [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]]),
    "maximum_self": (lambda a: a.maximum(a), [[NAN, 1.0, -INF]], [[2.0, 1.0, 1.0]]),
    "minimum_self": (lambda a: a.minimum(a), [[NAN, 1.0, INF]], [[2.0, 1.0, 1.0]]),
    "minimum_self_scaled": (lambda a: (a * 2).minimum(a * 2), [[NAN, 1.0]], [[4.0, 2.0]]),
    "maximum_broadcast_tie": (lambda a, b: a.maximum(b), [[1.0, 2.0, 3.0, NAN], [2.0]],
                              [[0.0, 0.5, 1.0, 1.0], [2.5]]),
    "max_as_maximum": (lambda a, b: a.max(b), [[NAN, 2.0, 2.0], [1.0, 2.0, 3.0]],
                       [[1.0, 0.5, 0.0], [1.0, 0.5, 1.0]]),
    "min_as_minimum": (lambda a, b: a.min(b), [[NAN, 2.0, 2.0], [1.0, 2.0, 3.0]],
                       [[1.0, 0.5, 1.0], [1.0, 0.5, 0.0]]),
    "max_all_ties": (lambda a: a.max(), [[1.0, 3.0, 3.0, 3.0]], [[0.0, 1 / 3, 1 / 3, 1 / 3]]),
    "min_all_ties": (lambda a: a.min(), [[[1.0, 3.0], [1.0, 2.0]]], [[[0.5, 0.0], [0.5, 0.0]]]),
    "max_all_nan": (lambda a: a.max(), [[1.0, NAN, 3.0]], [[0.0, 1.0, 0.0]]),
    "max_all_two_nans": (lambda a: a.max(), [[NAN, 3.0, NAN, INF]], [[0.5, 0.0, 0.5, 0.0]]),
    "min_all_nan": (lambda a: a.min(), [[NAN, -INF, 0.0]], [[1.0, 0.0, 0.0]]),
    "max_all_inf_ties": (lambda a: a.max(), [[INF, INF, 0.0]], [[0.5, 0.5, 0.0]]),
    "max_dim_ties": (lambda a: a.max(dim=1)[0], [[[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]],
                     [[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]]),
    "min_dim_ties_keepdim": (lambda a: a.min(dim=0, keepdim=True)[0], [[[1.0, 3.0], [1.0, 2.0]]],
                             [[[1.0, 0.0], [0.0, 1.0]]]),
    "max_dim_nan": (lambda a: a.max(dim=1)[0], [[[1.0, NAN, NAN], [NAN, 5.0, 1.0]]],
                    [[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]]),
    "min_dim_nan": (lambda a: a.min(dim=-1)[0], [[[-1.0, NAN, NAN], [0.0, 0.0, NAN]]],
                    [[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]),
    "clamp_bounds": (lambda a: a.clamp(min=-1.0, max=1.0), [[-2.0, -1.0, 0.0, 1.0, 2.0, NAN, INF, -INF]],
                     [[0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]]),
    "clamp_min_only": (lambda a: a.clamp(min=0.0), [[-1.0, 0.0, 1.0, NAN, INF]], [[0.0, 1.0, 1.0, 0.0, 1.0]]),
    "clamp_max_only": (lambda a: a.clamp(max=0.0), [[-1.0, 0.0, 1.0, NAN, -INF]], [[1.0, 1.0, 0.0, 0.0, 1.0]]),
    "clamp_min_above_max": (lambda a: a.clamp(min=2.0, max=1.0), [[0.0, 1.0, 1.5, 2.0, 3.0, NAN]],
                            [[0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]),
    "clamp_equal_bounds": (lambda a: a.clamp(min=1.0, max=1.0), [[0.0, 1.0, 2.0]], [[0.0, 1.0, 0.0]]),
    # tensor bounds (clamp_tensor): they are inputs and take gradients, min where x < min < max,
    # max where x > max or max < min (even at a NaN x)
    "clamp_tensor_bounds": (lambda a, lo, hi: a.clamp(min=lo, max=hi),
                            [[-2.0, -1.0, 0.0, 1.0, 2.0, NAN, 0.0, 3.0, 0.0], [-1.0] * 8 + [2.0], [1.0] * 9],
                            [[0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [1.0] + [0.0] * 8,
                             [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0]]),
    "clamp_tensor_min_above_max": (lambda a, lo, hi: a.clamp(min=lo, max=hi), [[0.0, 1.5, 3.0, NAN], [2.0] * 4,
                                                                               [1.0] * 4],
                                   [[0.0] * 4, [0.0] * 4, [1.0] * 4]),
    "clamp_tensor_nan_bounds": (lambda a, lo, hi: a.clamp(min=lo, max=hi), [[0.5, 2.0, 0.5, 2.0],
                                                                            [NAN, NAN, 0.0, 0.0],
                                                                            [1.0, 1.0, NAN, NAN]],
                                [[0.0] * 4, [0.0] * 4, [0.0, 1.0, 0.0, 0.0]]),
    "clamp_tensor_min_only": (lambda a, lo: a.clamp(min=lo), [[-1.0, 0.0, 1.0, NAN, 0.0, INF], [0.0, 0.0, 0.0, 0.0,
                                                                                                NAN, INF]],
                              [[0.0, 1.0, 1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]),
    "clamp_tensor_max_only": (lambda a, hi: a.clamp(max=hi), [[-1.0, 0.0, 1.0, NAN, 0.0, -INF],
                                                              [0.0, 0.0, 0.0, 0.0, NAN, -INF]],
                              [[1.0, 1.0, 0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]),
    "clamp_tensor_broadcast": (lambda a, lo, hi: a.clamp(min=lo, max=hi), [[[-1.0, 0.5], [0.0, 2.0]], [0.0, 0.8],
                                                                           [1.0]],
                               [[[0.0, 0.0], [1.0, 0.0]], [1.0, 1.0], [1.0]]),
    "relu_kink": (lambda a: a.relu(), [[-1.0, 0.0, -0.0, 1.0, NAN]], [[0.0, 0.0, 0.0, 1.0, 1.0]]),
}

UPSTREAM = 1.0  # the gradients above are for sum(output) (a broadcast input's sum over the broadcast)


def _symgrad_grads(name: str, engine: str):
    function, inputs, _ = RULES[name]
    leaves = [symgrad.tensor(np.array(v, dtype=np.float64), requires_grad=True) for v in inputs]
    with symgrad.backward_engine(engine):
        (function(*leaves) * UPSTREAM).sum().backward()
    return [leaf.grad.numpy() for leaf in leaves]


@pytest.mark.parametrize("engine", ["tape", "symbolic", "both"])
@pytest.mark.parametrize("name", sorted(RULES))
def test_tie_and_nan_rules(name, engine):
    for got, want in zip(_symgrad_grads(name, engine), RULES[name][2]):
        np.testing.assert_array_equal(got, np.array(want))


@pytest.mark.parametrize("upstream", [INF, NAN])
@pytest.mark.parametrize("engine", ["tape", "symbolic"])
def test_a_losing_argument_gets_an_exact_zero_for_any_upstream(engine, upstream):
    a = symgrad.tensor([1.0, 2.0, NAN, 2.0], requires_grad=True)
    b = symgrad.tensor([2.0, 1.0, 0.0, 2.0], requires_grad=True)
    with symgrad.backward_engine(engine):
        a.maximum(b).backward(symgrad.tensor([upstream] * 4))
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, upstream, upstream, upstream * 0.5])
    np.testing.assert_array_equal(b.grad.numpy(), [upstream, 0.0, upstream, upstream * 0.5])


# Where PyTorch's clamp with tensor bounds gives no gradient at all, its rule is not the
# derivative of any one closed form (the value is min, yet min takes no gradient), so the
# engines, which must agree with SymPy's derivative of the op's form, give it to min.
# name: (function, inputs, symgrad's gradients, PyTorch's gradients)
DEVIATIONS = {
    "clamp_tensor_below_equal_bounds": (lambda a, lo, hi: a.clamp(min=lo, max=hi), [[0.0, 1.0], [1.0, 1.0],
                                                                                    [1.0, 1.0]],
                                        [[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0]]),
    "clamp_tensor_below_min_nan_max": (lambda a, lo, hi: a.clamp(min=lo, max=hi), [[0.0], [1.0], [NAN]],
                                       [[0.0], [1.0], [0.0]], [[0.0], [0.0], [0.0]]),
}


@pytest.mark.parametrize("engine", ["tape", "symbolic", "both"])
@pytest.mark.parametrize("name", sorted(DEVIATIONS))
def test_documented_deviations(name, engine):
    function, inputs, want, _ = DEVIATIONS[name]
    leaves = [symgrad.tensor(np.array(v, dtype=np.float64), requires_grad=True) for v in inputs]
    with symgrad.backward_engine(engine):
        function(*leaves).sum().backward()
    for leaf, expected in zip(leaves, want):
        np.testing.assert_array_equal(leaf.grad.numpy(), np.array(expected))


def _torch_grads(function, inputs):
    torch = pytest.importorskip("torch")
    leaves = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in inputs]
    (function(*leaves) * UPSTREAM).sum().backward()
    return [leaf.grad.numpy() for leaf in leaves]


@pytest.mark.parametrize("name", sorted(RULES) + sorted(DEVIATIONS))
def test_the_rules_are_pytorchs(name):
    function, inputs, want = RULES[name] if name in RULES else (DEVIATIONS[name][:2] + (DEVIATIONS[name][3],))
    for got, expected in zip(_torch_grads(function, inputs), want):
        np.testing.assert_array_equal(got, np.array(expected))
