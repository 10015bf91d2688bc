"""gradcheck of a custom Function without a SymPy form (issue 13).

The symbolic engine can only run such a Function's own ``backward``, so its line was the
tape's verdict printed twice, presented as a second opinion.  The report says instead
that there is no closed form and that only the tape and finite differences checked it;
a Function with a SymPy form, or none at all, keeps the symbolic engine.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad
from symgrad.check import gradcheck, gradgradcheck
from symgrad.testing import skip_unless_engine


def make(right: bool, with_sympy: bool = False):
    class Cube(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * (3 if right else 2) * x * x

    if with_sympy:
        Cube.sympy = staticmethod(lambda sp, x: x ** 3)
    return Cube


PROGRAMS = {  # name: (program of the Function class, its names in the report)
    "alone": (lambda f: f.apply, "Cube defines no sympy form, so the symbolic engine would run Cube.backward"),
    "inside other ops": (lambda f: lambda x: f.apply(x.sin()).exp() * x,
                         "Cube defines no sympy form, so the symbolic engine would run Cube.backward"),
    "with another Function": (lambda f: lambda x: f.apply(Twice.apply(x)),
                              "Cube, Twice define no sympy form, so the symbolic engine would run "
                              "Cube.backward, Twice.backward"),
}


class Twice(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


@pytest.mark.parametrize("checker", [gradcheck, gradgradcheck])
@pytest.mark.parametrize("right", [True, False])
@pytest.mark.parametrize("name", list(PROGRAMS))
def test_no_closed_form_is_said_not_repeated(name, right, checker):
    skip_unless_engine("symbolic")
    program, names = PROGRAMS[name]
    x = symgrad.tensor([0.5, -1.25], requires_grad=True, name="x")
    result = checker(program(make(right)), (x,), raise_exception=False)
    assert result.labels == ("tape",)
    report = result.report()
    assert (f"engine 'symbolic' was not checked: no closed form: {names} again; "
            "only the tape and finite differences checked") in report
    if checker is gradcheck:  # gradgradcheck checks the derivative of the backward given, right or not
        assert bool(result) == right
    assert all(m.label == "tape" for m in result.mismatches)


@pytest.mark.parametrize("checker", [gradcheck, gradgradcheck])
@pytest.mark.parametrize("program", [lambda f: f.apply, lambda f: lambda x: x.sin() * x])
def test_a_closed_form_keeps_the_symbolic_engine(program, checker):
    skip_unless_engine("symbolic")
    x = symgrad.tensor([0.5, -1.25], requires_grad=True)
    result = checker(program(make(True, with_sympy=True)), (x,))
    assert result.labels == ("symbolic", "tape") and not result.skipped
    assert "no closed form" not in result.report()


def test_the_symbolic_engine_alone_is_kept():
    """Asked for on its own, the symbolic engine is the only analytic opinion there is."""
    skip_unless_engine("symbolic")
    x = symgrad.tensor([0.5, -1.25], requires_grad=True)
    result = gradcheck(make(True).apply, (x,), engines=("symbolic",))
    assert result.labels == ("symbolic",) and not result.skipped
    np.testing.assert_allclose(result.jacobian("symbolic"), np.diag(3 * np.square(x.tolist())))
