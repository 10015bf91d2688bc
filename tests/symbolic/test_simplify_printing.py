"""``simplify=True`` (``symgrad/symbolic/derive/simplifying.py``): SymPy's simplify within a time
budget, checked by values, falling back to the tidy form with a warning that says why."""
from __future__ import annotations

import pytest
import sympy as sp

import symgrad
from symgrad.symbolic import diff, text
from symgrad.symbolic.derive import simplifying
from symgrad.symbolic.derive.simplifying import SimplifyWarning, same_values, simplified

x = sp.Symbol("x", real=True)


def _hand_written_bce(rng):
    X = symgrad.tensor(rng.normal(size=(5, 3)), name="X")
    y = symgrad.tensor(rng.integers(0, 2, size=5).astype(float), name="y")
    w = symgrad.tensor(rng.normal(size=3), requires_grad=True, name="w")
    p = symgrad.sigmoid(X @ w)
    return -(y * symgrad.log(p) + (1 - y) * symgrad.log(1 - p)).mean(), w


def test_simplify_shortens_a_gradient_and_keeps_its_values(rng):
    loss, w = _hand_written_bce(rng)
    long, short = diff(loss, w), diff(loss, w, simplify=True)
    assert sp.count_ops(short) < sp.count_ops(long)
    assert same_values(long, short)
    assert len(text(long, simplify=True)) < len(text(long))


def test_simplify_finds_identities_that_factor_terms_cannot():
    assert simplified(sp.sin(x) ** 2 + sp.cos(x) ** 2 + x) == x + 1
    assert sp.factor_terms(sp.sin(x) ** 2 + sp.cos(x) ** 2 + x) != x + 1


def test_out_of_time_shows_the_tidy_form_and_says_so():
    form = x / 3 - sp.Symbol("y") / 3
    with pytest.warns(SimplifyWarning, match="longer than 0 s"):
        assert simplified(form, seconds=0.0) == sp.factor_terms(form)


def test_a_simplified_form_with_other_values_is_refused(monkeypatch):
    monkeypatch.setattr(simplifying.sp, "simplify", lambda e: 2 * e)  # the forked child inherits it
    with pytest.warns(SimplifyWarning, match="other values"):
        assert simplified(sp.exp(x) + x) == sp.exp(x) + x


def test_a_failing_simplify_shows_the_tidy_form_and_says_why(monkeypatch):
    def fail(e):
        raise RuntimeError("no luck")

    monkeypatch.setattr(simplifying.sp, "simplify", fail)
    with pytest.warns(SimplifyWarning, match="RuntimeError: no luck"):
        assert simplified(sp.exp(x) + x) == sp.exp(x) + x


def test_same_values_tells_equal_forms_from_different_ones():
    a = symgrad.symbolic.array_symbol("a", (3,))
    assert same_values(sp.exp(sp.log(a)), a)
    assert not same_values(a ** 2, a)


def test_a_child_that_gets_no_processor_time_is_stopped_by_the_wall_clock(monkeypatch):
    import time

    monkeypatch.setattr(simplifying.sp, "simplify", lambda e: time.sleep(60))
    monkeypatch.setattr(simplifying, "SIMPLIFY_WALL_SECONDS", 0.5)
    started = time.monotonic()
    with pytest.warns(SimplifyWarning, match="wall time"):
        assert simplified(sp.exp(x) + x, seconds=0.2) == sp.exp(x) + x
    assert time.monotonic() - started < 30
