"""Port of karpathy/micrograd's ``test/test_engine.py`` (``test_sanity_check``,
``test_more_ops``) to symgrad's eager API.

Micrograd runs a small scalar program on its ``Value`` engine and on PyTorch and compares
the value and the gradients. Here the same programs run on ``symgrad.tensor(...,
requires_grad=True)`` and ``.backward()`` with each eager engine (the compiled closed
forms, "symbolic", and the hand-written VJPs, "tape"), and on ``symgrad.value_and_grad``;
the results are compared with the closed-form derivatives worked out by hand below (the
hand derivation is itself checked against central differences of the same program).
Micrograd's ``c += ...`` rebinds a Python name; on symgrad tensors ``+=`` is an in-place
op (PyTorch semantics), so both spellings are run and must agree.  Nothing is skipped.
"""
from __future__ import annotations

import numpy as np
import pytest

import symgrad

from .conftest import central_grad


def _heaviside(v):
    return 1.0 if v > 0 else 0.0


# ---------------------------------------------------------------- test_sanity_check
def sanity_program(x):
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    return h + q + q * x


def sanity_closed_form(x):
    """(y, dy/dx) of :func:`sanity_program`, derived by hand: z = 3x + 2."""
    z = 3 * x + 2
    q = max(z, 0.0) + z * x
    h = max(z * z, 0.0)
    dq = 3 * _heaviside(z) + 3 * x + z
    dh = 2 * z * 3 * _heaviside(z * z)
    return h + q + q * x, dh + dq + dq * x + q


SANITY_POINTS = [-4.0, 2.5, -0.3, 0.1, *np.random.default_rng(7).uniform(-5, 5, size=3).round(3)]


@pytest.mark.parametrize("x0", SANITY_POINTS)
def test_sanity_check_eager(engine, x0):
    x = symgrad.tensor(x0, dtype=symgrad.float64, requires_grad=True)
    y = sanity_program(x)
    y.backward()
    value, slope = sanity_closed_form(x0)
    assert y.item() == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert x.grad.item() == pytest.approx(slope, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("x0", SANITY_POINTS)
def test_sanity_check_closed_form_matches_finite_differences(x0):
    slope = sanity_closed_form(x0)[1]
    assert central_grad(sanity_program, [x0])[()] == pytest.approx(slope, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("x0", SANITY_POINTS)
def test_sanity_check_value_and_grad(x0):
    value, slope = symgrad.value_and_grad(sanity_program)(x0)
    expected_value, expected_slope = sanity_closed_form(x0)
    np.testing.assert_allclose(value, expected_value, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(slope, expected_slope, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- test_more_ops
def more_ops_rebinding(a, b):
    c = a + b
    d = a * b + b ** 3
    c = c + (c + 1)
    c = c + (1 + c + (-a))
    d = d + (d * 2 + (b + a).relu())
    d = d + (3 * d + (b - a).relu())
    e = c - d
    f = e ** 2
    g = f / 2.0
    g = g + 10.0 / f
    return g


def more_ops_inplace(a, b):
    c = a + b
    d = a * b + b ** 3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e ** 2
    g = f / 2.0
    g += 10.0 / f
    return g


def more_ops_closed_form(a, b):
    """(g, dg/da, dg/db), derived by hand: c = 3a + 4b + 3,
    d = 12(ab + b^3) + 4 relu(a + b) + relu(b - a), g = e^2/2 + 10/e^2 with e = c - d."""
    c = 3 * a + 4 * b + 3
    d = 12 * (a * b + b ** 3) + 4 * max(a + b, 0.0) + max(b - a, 0.0)
    e = c - d
    dg_de = e - 20 / e ** 3
    de_da = 3 - (12 * b + 4 * _heaviside(a + b) - _heaviside(b - a))
    de_db = 4 - (12 * (a + 3 * b ** 2) + 4 * _heaviside(a + b) + _heaviside(b - a))
    return e ** 2 / 2 + 10 / e ** 2, dg_de * de_da, dg_de * de_db


MORE_OPS_POINTS = [(-4.0, 2.0), (1.5, -0.5), (0.3, 0.2), (-0.7, -1.1),
                   *[tuple(p) for p in np.random.default_rng(11).uniform(-2, 2, size=(3, 2)).round(3)]]


@pytest.mark.parametrize("program", [more_ops_rebinding, more_ops_inplace], ids=["rebinding", "inplace"])
@pytest.mark.parametrize("a0,b0", MORE_OPS_POINTS)
def test_more_ops_eager(engine, program, a0, b0):
    a = symgrad.tensor(a0, dtype=symgrad.float64, requires_grad=True)
    b = symgrad.tensor(b0, dtype=symgrad.float64, requires_grad=True)
    g = program(a, b)
    g.backward()
    value, da, db = more_ops_closed_form(a0, b0)
    assert g.item() == pytest.approx(value, rel=1e-10)
    assert a.grad.item() == pytest.approx(da, rel=1e-9, abs=1e-9)
    assert b.grad.item() == pytest.approx(db, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("a0,b0", MORE_OPS_POINTS)
def test_more_ops_closed_form_matches_finite_differences(a0, b0):
    _, da, db = more_ops_closed_form(a0, b0)
    assert central_grad(more_ops_rebinding, [a0, b0], 0)[()] == pytest.approx(da, rel=1e-5, abs=1e-5)
    assert central_grad(more_ops_rebinding, [a0, b0], 1)[()] == pytest.approx(db, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("a0,b0", MORE_OPS_POINTS)
def test_more_ops_value_and_grad(a0, b0):
    value, (da, db) = symgrad.value_and_grad(more_ops_rebinding, argnums=(0, 1))(a0, b0)
    expected = more_ops_closed_form(a0, b0)
    np.testing.assert_allclose([value, da, db], expected, rtol=1e-9, atol=1e-9)
