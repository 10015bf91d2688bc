"""``check_function`` and ``gradcheck`` on custom Functions with several outputs.

A right backward passes and a backward wrong in the slot of output ``k`` fails on output
``k`` only, on every engine, in full and fast mode (issue 13: the tape sent output k's
gradient to slot 0, so a right two-output backward was reported wrong on output 1).
"""
from __future__ import annotations

import pytest

import symgrad
from symgrad.tape.engine import backward_engine


def three_outputs(wrong_slot: int | None):
    """``(a*b, a+b, 2a)`` whose backward is right, or off by a factor 3 in one slot."""

    def factor(k):
        return 3.0 if k == wrong_slot else 1.0

    class Three(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b, a + b, a * 2.0

        @staticmethod
        def backward(ctx, g0, g1, g2):
            a, b = ctx.saved_tensors
            g0, g1, g2 = g0 * factor(0), g1 * factor(1), g2 * factor(2)
            return g0 * b + g1 + 2 * g2, g0 * a + g1

    return Three


def two_outputs(wrong_slot: int | None):
    """``(a, 10a)`` whose backward is right, or off by a factor 3 in one slot."""

    class Two(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1.0, a * 10.0

        @staticmethod
        def backward(ctx, ga, gb):
            return ga * (3.0 if wrong_slot == 0 else 1.0) + 10 * gb * (3.0 if wrong_slot == 1 else 1.0)

    return Two


def _inputs(n):
    values = ([0.5, -1.0, 2.0], [1.5, 0.25, -3.0])[:n]
    return tuple(symgrad.tensor(v, requires_grad=True) for v in values)


CASES = [(two_outputs, 1, slot) for slot in (None, 0, 1)] + [(three_outputs, 2, slot) for slot in (None, 0, 1, 2)]


@pytest.mark.parametrize("fast_mode", [False, True])
@pytest.mark.parametrize("engine", ["tape", "symbolic", "both"])
@pytest.mark.parametrize("make, n_inputs, wrong_slot", CASES)
@pytest.mark.parametrize("checker", ["check_function", "gradcheck"])
def test_multi_output_backward_is_judged_per_output(checker, make, n_inputs, wrong_slot, engine, fast_mode):
    function = make(wrong_slot)
    with backward_engine(engine):
        if checker == "check_function":
            result = symgrad.check.check_function(function, _inputs(n_inputs), fast_mode=fast_mode,
                                                  raise_exception=False)
        else:
            result = symgrad.check.gradcheck(function.apply, _inputs(n_inputs), fast_mode=fast_mode,
                                             engines=("tape",), raise_exception=False)
    if wrong_slot is None:
        assert result, result.report()
    else:
        assert not result
        located = result.full if fast_mode else result
        assert {m.output for m in located.mismatches} == {wrong_slot}, located.report()
