"""Notebook reprs of closed forms stay within the display budget and stay useful: a deep
chain's derivative and a wide per-element view show named parts, leading terms and a
summary line, with text/plain and text/latex both present; small forms show as before."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.symbolic import ArrayVar, ClosedForm, compile_exprs, diff, grad, latex, per_element, text
from symgrad.symbolic.printing.notebook import DISPLAY_BUDGET, LATEX_NESTING, latex_nesting, sympy_bundle
from symgrad.symbolic.printing.printers import deep_pieces
from symgrad.symbolic.core.symbols import free_symbols, postorder


@pytest.fixture(scope="module")
def chain_derivative():
    """The derivative of a 2,000-op ``sin`` chain: 40 MB of LaTeX written out whole."""
    x = symgrad.tensor(0.5, requires_grad=True, name="x")
    y = x
    for _ in range(2_000):
        y = y.sin()
    return diff(y, x)


@pytest.fixture(scope="module")
def wide_per_element():
    """The per-element gradient of a loss over 500 rows: two sums of 500 terms."""
    data = np.random.default_rng(20).normal(size=(500, 2))
    x = symgrad.tensor(data, name="x")
    w = symgrad.tensor([0.1, -0.2], requires_grad=True, name="w")
    return per_element(diff((x @ w).sigmoid().sum(), w))


def _assert_bounded(bundle: dict) -> None:
    assert set(bundle) == {"text/plain", "text/latex"}
    assert all(len(shown) <= DISPLAY_BUDGET for shown in bundle.values())
    assert latex_nesting(bundle["text/latex"]) <= LATEX_NESTING
    assert bundle["text/latex"].startswith("$") and bundle["text/latex"].endswith("$")


def test_a_deep_chains_derivative_shows_its_top_parts_and_a_summary(chain_derivative):
    bundle = sympy_bundle(chain_derivative)
    _assert_bounded(bundle)
    top, definitions = deep_pieces(chain_derivative)
    lines = bundle["text/plain"].splitlines()
    shown = [line for line in lines if line.startswith("p_")]
    assert lines[0] == text(top) and len(definitions) > len(shown) >= 2
    for line, (name, piece) in zip(shown, definitions):  # the parts shown are the form's, top-down
        assert line == f"{name} = {text(piece)}"
    summary = lines[-2]
    ops = sum(1 for node in postorder([chain_derivative]) if node.args)  # sin, cos and the products
    assert summary == f"{len(shown) + 1} of {len(definitions) + 1} parts shown; {ops:,} ops, depth 4,000, free symbols: x"
    assert lines[-1].startswith("All of it: symgrad.symbolic.text(form)")
    assert r"p_{1} &= " in bundle["text/latex"] and r"\text{All of it" in bundle["text/latex"]


def test_a_named_closed_form_says_how_to_get_all_of_it(chain_derivative, tmp_path):
    form = ClosedForm(chain_derivative, name="dy_dx")
    bundle = form._repr_mimebundle_()
    _assert_bounded(bundle)
    assert bundle["text/plain"].startswith("dy_dx = ") and r"\mathrm{dy\_dx} &= " in bundle["text/latex"]
    assert ".save('form.tex')" in bundle["text/plain"] and form._repr_latex_() == bundle["text/latex"]
    form.save(tmp_path / "form.txt")
    assert (tmp_path / "form.txt").read_text() == form.text() + "\n"
    assert len(form.text()) > 100 * DISPLAY_BUDGET


def test_a_wide_per_element_view_shows_leading_terms_of_every_entry(wide_per_element):
    bundle = sympy_bundle(wide_per_element)
    _assert_bounded(bundle)
    lines = bundle["text/plain"].splitlines()
    assert lines[0].startswith("[0] = ") and lines[1].startswith("[1] = ")
    for k, (line, entry) in enumerate(zip(lines, wide_per_element)):
        assert line.endswith(" + ...")
        shown = line[len(f"[{k}] = "):-len(" + ...")]
        terms = [str(term) for term in entry.args]  # every term has a plus sign here
        leading = [" + ".join(terms[:n]) for n in range(1, 500)]
        assert shown in leading  # leading terms, each whole
        assert f"[{k}]: {leading.index(shown) + 1} of 500 terms shown" in lines[-2]
    assert r"& \text{2 of 2 parts shown; [0]: " in bundle["text/latex"]  # the same summary in LaTeX


def test_a_compiled_functions_closed_forms_are_bounded(chain_derivative):
    (x,) = free_symbols(chain_derivative)
    compiled = compile_exprs([x], [chain_derivative], output_names=["dy_dx"])
    bundle = compiled._repr_mimebundle_()
    _assert_bounded(bundle)
    assert bundle["text/plain"].startswith("dy_dx = ") and "All of it: .latex()" in bundle["text/plain"]


@pytest.mark.parametrize("form", [sp.Symbol("x") ** 2 / 2, sp.Matrix([[sp.Symbol("x"), 1]])], ids=["scalar", "matrix"])
def test_a_small_form_shows_what_sympy_shows(form):
    assert sympy_bundle(form) == {"text/plain": repr(form), "text/latex": form._repr_latex_()}
    assert ClosedForm(form, name="f")._repr_mimebundle_() == {
        "text/plain": sp.pretty(form), "text/latex": f"$\\displaystyle \\mathrm{{f}} = {sp.latex(form)}$"}


def test_a_form_too_deep_for_sympy_but_short_shows_in_parts():
    x = sp.Symbol("x")
    chain = x
    for _ in range(1_500):
        chain = sp.sin(chain, evaluate=False)
    bundle = sympy_bundle(chain, plain=sp.sstr)  # SymPy's own printer: RecursionError
    _assert_bounded(bundle)
    assert bundle["text/plain"].count("sin(") == 1_500 and "parts shown" in bundle["text/plain"]


def test_a_transform_shows_its_closed_forms_as_diff_does():
    a = symgrad.tensor([0.5, -0.3], requires_grad=True, name="a")

    def f(a):
        return (a.sin() * symgrad.exp(-a * a)).sum()

    df = grad(f)
    df(np.array([0.5, -0.3]))
    tidy = diff(f(a), a)
    assert text(tidy) == "-2*a*exp(-a**2)*sin(a) + exp(-a**2)*cos(a)"
    bundle = df._repr_mimebundle_()
    assert bundle["text/plain"] == f"grad_a = {text(tidy)}"
    assert bundle["text/latex"] == f"$\\displaystyle \\begin{{aligned}}\\mathrm{{grad\\_a}} &= {latex(tidy)}\\end{{aligned}}$"
    assert df._repr_latex_() == bundle["text/latex"]
    assert "exp((-a)*a)" in text(df.closed_forms["grad_a"])  # the engine's form is kept as it was built


def test_module_parameters_are_symbols_in_latex_and_keep_their_path_in_text():
    model = symgrad.nn.Sequential(symgrad.nn.Linear(2, 3), symgrad.nn.Tanh(), symgrad.nn.Linear(3, 1))
    x = symgrad.tensor(np.ones((4, 2)), name="x")
    loss = model(x).sum()
    first_weight = model[0].weight
    shown = latex(diff(loss, first_weight))
    assert "{W_{0}}^{T}" in shown and "b_{0} + " in shown and "W_{2}" in shown and ".weight" not in shown
    assert "0.weight.T" in text(diff(loss, first_weight))
    deep = ArrayVar("encoder.fc.scale", (3,))
    assert latex(deep ** 2) == r"\mathrm{scale}_{\mathrm{encoder.fc}}^{2}" and latex(ArrayVar("x_1")) == "x_{1}"
