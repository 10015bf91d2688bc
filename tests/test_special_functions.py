"""The special functions' NumPy forwards (``symgrad/ops/special.py``) against mpmath, their
values at poles and bounds against PyTorch, and their faces beyond the op table: the C
backends (``lgamma``, ``erf``, ``erfc`` from libm, the others refused by name), the formula language and
``create_graph``.

Forwards, VJPs, SymPy forms, float32 and PyTorch at random points are the op table's
tests (``tests/test_ops_table.py``), which these ops go through like every op.
"""
from __future__ import annotations

import mpmath
import numpy as np
import pytest

import symgrad
from symgrad.ops import special

# (function, reference from mpmath, points): far into the tails, near poles and bounds
REFERENCES = [
    ("lgamma", special.lgamma, lambda v: mpmath.log(abs(mpmath.gamma(v))),
     [-7.5, -2.9, -0.5, 1e-8, 0.5, 1.0, 2.0, 3.7, 20.0, 171.5, 1e5]),
    ("digamma", special.digamma, mpmath.digamma, [-7.5, -2.9, -0.01, 1e-8, 0.5, 1.0, 7.3, 9.99, 10.0, 1e5]),
    *[(f"polygamma{n}", lambda x, n=n: special.polygamma(n, x), lambda v, n=n: mpmath.polygamma(n, v),
       [-3.5, -0.2, 1e-3, 0.5, 1.0, 7.3, 40.0, 1e4]) for n in (1, 2, 3, 5)],
    ("erfinv", special.erfinv, mpmath.erfinv, [-0.999999999, -0.9, -0.5, -1e-9, 0.0, 0.3, 0.7, 0.99, 1 - 1e-12]),
    ("erf", special.erf, mpmath.erf, [-6.0, -2.0, -0.5, -1e-9, 0.0, 1e-300, 0.3, 1.0, 3.5, 6.0, 30.0]),
    ("erfc", special.erfc, mpmath.erfc, [-6.0, -1.0, -1e-9, 0.0, 0.5, 2.0, 5.0, 10.0, 26.0, 27.0]),
    *[(f"i{nu}{'e' if scaled else ''}", lambda x, nu=nu, scaled=scaled: special.bessel_i(nu, x, scaled=scaled),
       lambda v, nu=nu, scaled=scaled: mpmath.besseli(nu, v) * (mpmath.exp(-abs(v)) if scaled else 1),
       [-40.0, -29.9, -30.1, -1.0, -1e-6, 0.0, 0.5, 3.0, 29.99, 30.0, 100.0] + ([700.0, 1e4] if scaled else []))
      for nu in (0, 1, 2) for scaled in (False, True)],
]


@pytest.mark.parametrize("name, forward, reference, points", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_forward_matches_mpmath(name, forward, reference, points):
    x = np.array(points)
    with mpmath.workdps(40):
        expected = np.array([float(reference(mpmath.mpf(v))) for v in points])
    np.testing.assert_allclose(forward(x), expected, rtol=2e-14, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_points_match_mpmath(dtype, rng):
    x = rng.uniform(0.05, 8.0, 50).astype(dtype)
    tolerance = 2e-14 if dtype == np.float64 else 1e-6
    for forward, reference in [(special.lgamma, mpmath.loggamma), (special.digamma, mpmath.digamma),
                               (lambda v: special.bessel_i(1, v), lambda v: mpmath.besseli(1, v))]:
        out = forward(x)
        assert out.dtype == dtype
        expected = np.array([float(reference(mpmath.mpf(float(v)))) for v in x])
        np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)


# values at poles, bounds and infinities, as PyTorch gives them
EDGES = [
    ("lgamma", [0.0, -1.0, -2.0, np.inf, -np.inf, np.nan]),
    ("digamma", [0.0, -1.0, -3.0, np.inf, np.nan]),
    ("erfinv", [-1.0, 1.0, 1.5, -2.0, np.nan]),
    ("erf", [np.inf, -np.inf, np.nan, -0.0]),
    ("erfc", [np.inf, -np.inf, np.nan, 30.0]),
    ("i0", [np.inf, -np.inf, np.nan, 0.0]),
    ("i0e", [np.inf, np.nan, 0.0]),
    ("i1e", [-np.inf, np.nan, 0.0, -0.0]),
]


@pytest.mark.parametrize("name, values", EDGES, ids=[e[0] for e in EDGES])
def test_edge_values_match_torch(name, values):
    torch = pytest.importorskip("torch")
    x = np.array(values)
    function = getattr(torch, name, None) or getattr(torch.special, name)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(getattr(symgrad, name)(symgrad.tensor(x)).numpy(),
                                      function(torch.from_numpy(x)).numpy())


def test_polygamma_refuses_orders_that_are_not_natural_numbers():
    with pytest.raises(ValueError, match=r"polygamma needs non-negative integer orders n, got array\(1\.5\)"):
        symgrad.polygamma(1.5, symgrad.tensor([1.0]))
    with pytest.raises(ValueError, match="non-negative integer orders"):
        symgrad.polygamma(-1, symgrad.tensor([1.0]))


def test_polygamma_orders_follow_the_method(rng):
    x = symgrad.tensor(rng.uniform(0.5, 3.0, 4), requires_grad=True)
    y = x.polygamma(2).sum()
    (grad,) = symgrad.autograd.grad(y, [x])
    np.testing.assert_allclose(grad.numpy(), special.polygamma(3, x.detach().numpy()), rtol=1e-12)
    assert symgrad.polygamma(2, x).grad_fn.name() == "PolygammaBackward0"


def test_lgamma_compiles_to_libm_in_the_c_backend(rng):
    from symgrad.symbolic import compile_exprs
    from symgrad.symbolic.codegen.backends import CompilerNotFoundError
    from symgrad.symbolic.core.symbols import ArrayVar
    import sympy as sp

    x = ArrayVar("x", (50,))
    values = rng.uniform(-3.5, 6.0, 50)
    try:
        compiled = compile_exprs([x], [sp.loggamma(x) * 2 + 1], backend="c")
    except CompilerNotFoundError as err:
        pytest.skip(str(err))
    assert "sg_lgamma(" in compiled.source
    np.testing.assert_allclose(compiled(values).out0, special.lgamma(values) * 2 + 1, rtol=1e-13)


@pytest.mark.parametrize("name", ["digamma", "erfinv", "i0", "i0e", "i1", "i1e"])
def test_one_c_loop_refuses_functions_libm_does_not_have_and_c_plans_them(name):
    """``c_fused`` refuses them, naming the op; ``"c"`` computes them in a NumPy step of a
    plan, with the NumPy backend's result."""
    from symgrad.symbolic.codegen.backends import CompilerNotFoundError, UnsupportedExpressionError

    function = lambda a: getattr(symgrad, name)(a / 8).sum()  # noqa: E731
    x = symgrad.tensor([0.5, 1.5])
    f = symgrad.value_and_grad(function, backend="c_fused")
    try:
        with pytest.raises(UnsupportedExpressionError, match="cannot translate") as info:
            f(x)
    except CompilerNotFoundError as err:
        pytest.skip(str(err))
    assert "backend='numpy'" in str(info.value)
    planned = symgrad.value_and_grad(function, backend="c")
    (value, grad), (want_value, want_grad) = planned(x), symgrad.value_and_grad(function)(x)
    assert "numpy" in [step.kind for step in planned.compiled.steps]
    np.testing.assert_allclose(value, want_value, rtol=1e-14)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-14)


@pytest.mark.parametrize("name", ["erf", "erfc"])
def test_erf_compiles_to_libm_in_the_c_backend_and_agrees_with_numpy(name, rng):
    from symgrad.symbolic.codegen.backends import CompilerNotFoundError

    values = symgrad.tensor(rng.uniform(-3.0, 3.0, 40))
    results = {}
    for backend in ("c", "numpy"):
        f = symgrad.value_and_grad(lambda a: (getattr(symgrad, name)(a) * a).sum(), backend=backend)
        try:
            results[backend] = f(values)
        except CompilerNotFoundError as err:
            pytest.skip(str(err))
    for c, numpy_ in zip(results["c"], results["numpy"]):
        np.testing.assert_allclose(np.asarray(c), np.asarray(numpy_), rtol=1e-13)


def test_formulas_call_the_special_functions():
    from symgrad.parsing import parse

    parsed = parse("lgamma(x) + betaln(x, y) * erfinv(z) + xlog1py(x, y) + xlogy(x, y) * erf(z) - erfc(y)")
    tensors = {"x": symgrad.tensor(1.5), "y": symgrad.tensor(0.5), "z": symgrad.tensor(0.25)}
    expected = (special.lgamma(1.5) + (special.lgamma(1.5) + special.lgamma(0.5) - special.lgamma(2.0))
                * special.erfinv(0.25) + 1.5 * np.log1p(0.5) + 1.5 * np.log(0.5) * special.erf(0.25)
                - special.erfc(0.5))
    np.testing.assert_allclose(parsed.to_tensor(tensors)[0].detach().numpy(), expected, rtol=1e-13)


@pytest.mark.parametrize("name", ["i0", "i0e", "i1", "i1e"])
def test_second_derivatives_of_bessel_functions_agree_between_the_engines(name, rng):
    # d/dx I1 = (I0 + I2)/2: I2 is the op bessel_i, so the symbolic engine records it too
    values = rng.uniform(-3.0, 3.0, 4)
    second = {}
    for engine in ("symbolic", "tape"):
        x = symgrad.tensor(values, requires_grad=True)
        with symgrad.backward_engine(engine):
            (grad,) = symgrad.autograd.grad(getattr(x, name)().sum(), [x], create_graph=True)
            (second[engine],) = symgrad.autograd.grad(grad.sum(), [x])
    np.testing.assert_allclose(second["symbolic"].numpy(), second["tape"].numpy(), rtol=1e-12)
    order = 1 if name.startswith("i1") else 0
    if not name.endswith("e"):  # I_nu'' = (I_{nu-2} + 2 I_nu + I_{nu+2})/4
        expected = (special.bessel_i(order - 2, values) + 2 * special.bessel_i(order, values)
                    + special.bessel_i(order + 2, values)) / 4
        np.testing.assert_allclose(second["tape"].numpy(), expected, rtol=1e-12)
