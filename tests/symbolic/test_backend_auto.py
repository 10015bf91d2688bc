"""``backend="auto"`` (the default): NumPy first, tiered up to the C backend when that pays.

The tier-up is decided by the time the calls take, so these tests replace the module's
timing of a call by a script (:func:`script`: each NumPy call lasts one time, each C call
another) and never depend on how fast this machine is.  Values are compared with the NumPy backend's
(equal to rounding: C adds sums in another order), gradients with central differences.
Tests that need a C compiler skip where there is none (the ``cc`` fixture)."""
from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import sympy as sp

import symgrad
from symgrad.symbolic import compile_cache_clear, compile_exprs
from symgrad.symbolic.codegen.backends import (CCompileError, UnsupportedExpressionError, auto, backend_names,
                                               get_backend)
from symgrad.symbolic.core.symbols import ArrayVar

N = 1000
MS = 1e-3


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """Each test: an empty compile cache (so each builds its own AutoFunction), no mode
    forced, the compiler checked again, every warning kind not yet given."""
    monkeypatch.delenv(auto.MODE_VARIABLE, raising=False)
    monkeypatch.setattr(auto, "_WARNED", set())
    compile_cache_clear()
    auto.compiler_status.cache_clear()
    yield
    compile_cache_clear()
    auto.compiler_status.cache_clear()


def script(monkeypatch, numpy_calls: int, numpy_ms: float, c_ms: float) -> None:
    """NumPy calls of ``numpy_ms`` each, which pay for a compile after ``numpy_calls`` of
    them, and C calls of ``c_ms`` each."""
    monkeypatch.setattr(auto, "PAYBACK_SECONDS", numpy_calls * numpy_ms * MS * 0.999)
    monkeypatch.setattr(auto, "MIN_CALL_SECONDS", 0.1 * MS)
    timed = auto._timed

    def scripted(function, values):
        out, _ = timed(function, values)
        return out, (numpy_ms if function.backend == "numpy" else c_ms) * MS

    monkeypatch.setattr(auto, "_timed", scripted)


def formula(x, y):
    return (symgrad.sin(x * y) * symgrad.exp(-y) + symgrad.log1p(x * x)).sum()


def points(rng):
    return rng.uniform(-1, 1, N), rng.uniform(-1, 1, N)


def test_auto_is_registered_and_the_default_of_the_transforms():
    assert "auto" in backend_names() and get_backend("auto").name == "auto"
    assert symgrad.grad(formula).backend == "auto"
    x = ArrayVar("x", (3,))
    assert compile_exprs([x], [x + 1]).backend == "auto"


def test_tiers_up_after_the_payback_and_keeps_the_numpy_backends_values(cc, monkeypatch, rng):
    script(monkeypatch, numpy_calls=4, numpy_ms=5.0, c_ms=0.5)
    x, y = points(rng)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    reference = symgrad.value_and_grad(formula, argnums=(0, 1), backend="numpy")(x, y)
    ran = []
    for _ in range(10):
        value, (gx, gy) = vg(x, y)
        ran.append(vg.compiled.last_backend)
        np.testing.assert_allclose(value, reference[0], rtol=1e-12)
        np.testing.assert_allclose(gx, reference[1][0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gy, reference[1][1], rtol=1e-12, atol=1e-15)
    # four NumPy calls, the fourth triggering the compile and C's first trial call on its inputs
    # (its NumPy result returned), then NumPy and C in turn until each has had three, then C
    assert ran == ["numpy"] * 5 + ["c_fused", "numpy", "c_fused", "numpy", "c_fused"]
    f = vg.compiled
    assert (f.tier, f.settled) == ("c", True) and f.reason.startswith("C: ") and f.native.backend == "c_fused"
    assert "500 us on C, 5000 us on NumPy, in turn" in f.reason
    assert "sg_kernel" in f.source and "def " in f.numpy.source
    eps = 1e-6
    x1 = x.copy()
    x1[3] += eps
    x0 = x.copy()
    x0[3] -= eps
    fd = (vg(x1, y)[0] - vg(x0, y)[0]) / (2 * eps)
    np.testing.assert_allclose(gx[3], fd, rtol=1e-6)


def test_stays_on_numpy_below_the_payback_or_for_calls_too_short(cc, monkeypatch, rng):
    x, y = points(rng)
    script(monkeypatch, numpy_calls=10, numpy_ms=5.0, c_ms=0.5)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    for _ in range(9):
        vg(x, y)
    assert (vg.compiled.tier, vg.compiled.settled, vg.compiled.native) == ("numpy", False, None)
    compile_cache_clear()
    script(monkeypatch, numpy_calls=10, numpy_ms=0.05, c_ms=0.01)  # 50 us a call: below MIN_CALL_SECONDS
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    for _ in range(20):
        vg(x, y)
    f = vg.compiled
    assert (f.tier, f.settled, f.last_backend) == ("numpy", True, "numpy") and "too short" in f.reason


@pytest.mark.parametrize("c_ms", [2.0, 0.95])  # slower; faster by less than the margin (a tie)
def test_c_that_is_not_faster_goes_back_to_numpy_for_good(cc, monkeypatch, rng, c_ms):
    script(monkeypatch, numpy_calls=2, numpy_ms=1.0, c_ms=c_ms)
    x, y = points(rng)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    ran = []
    for _ in range(8):
        vg(x, y)
        ran.append(vg.compiled.last_backend)
    assert ran == ["numpy", "numpy", "numpy", "c_fused", "numpy", "c_fused", "numpy", "numpy"]
    f = vg.compiled
    assert (f.tier, f.settled, f.native) == ("numpy", True, None) and "not faster" in f.reason


def test_c_results_of_another_value_class_keep_numpy(cc, monkeypatch, rng):
    """The trial's first call compares C's outputs with NumPy's: any other NaN, infinity or
    value beyond rounding keeps NumPy (here a C function made to return NaN)."""
    script(monkeypatch, numpy_calls=1, numpy_ms=1.0, c_ms=0.1)
    c_backend = get_backend("c")
    real = c_backend.compile

    def wrong(inputs, outputs, **options):
        native = real(inputs, outputs, **options)
        honest = native.outputs_of
        native.outputs_of = lambda values: [np.full_like(o, np.nan) for o in honest(values)]
        return native

    monkeypatch.setattr(c_backend, "compile", wrong)
    x, y = points(rng)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    for _ in range(3):
        value, _ = vg(x, y)
        assert np.isfinite(value) and vg.compiled.last_backend == "numpy"
    assert vg.compiled.settled and "differ" in vg.compiled.reason


def test_no_compiler_means_numpy_without_error_or_warning(monkeypatch, rng):
    monkeypatch.setenv("CC", os.path.join(os.sep, "nonexistent", "cc"))
    script(monkeypatch, numpy_calls=1, numpy_ms=1.0, c_ms=0.1)
    x, y = points(rng)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            vg(x, y)
    assert auto.compiler_status() is not None and "CC=" in auto.compiler_status()
    f = vg.compiled
    assert (f.tier, f.settled, f.last_backend) == ("numpy", True, "numpy") and "no working C compiler" in f.reason
    np.testing.assert_allclose(vg(x, y)[0], symgrad.value_and_grad(formula, backend="numpy")(x, y)[0], rtol=0)


def test_an_unsafe_build_directory_means_numpy_with_one_warning(cc, monkeypatch, tmp_path, rng):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(shared))
    script(monkeypatch, numpy_calls=1, numpy_ms=1.0, c_ms=0.1)
    x, y = points(rng)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    with pytest.warns(RuntimeWarning, match="UnsafeBuildDirError"):
        vg(x, y)
    assert vg.compiled.tier == "numpy" and "build directory" in vg.compiled.reason
    assert list(shared.iterdir()) == []  # nothing was compiled into it


@pytest.mark.parametrize("failure, warns", [
    (CCompileError("the C compiler failed (exit 1) on generated code"), True),
    (KeyError("a bug in the C generator"), True),
    (UnsupportedExpressionError("cannot translate this op"), False),
])
def test_a_failing_compile_falls_back_to_numpy(cc, monkeypatch, rng, failure, warns):
    script(monkeypatch, numpy_calls=1, numpy_ms=1.0, c_ms=0.1)

    def fail(*args, **options):
        raise failure

    monkeypatch.setattr(get_backend("c"), "compile", fail)
    x, y = points(rng)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values = [vg(x, y)[0] for _ in range(3)]
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == (
        [f"backend='auto' runs on NumPy: {type(failure).__name__}: {failure}"] if warns else [])
    assert vg.compiled.settled and vg.compiled.tier == "numpy" and type(failure).__name__ in vg.compiled.reason
    assert values[0] == values[1] == values[2]


def test_a_c_function_failing_at_a_call_falls_back_for_that_call_and_after(cc, monkeypatch, rng):
    monkeypatch.setenv(auto.MODE_VARIABLE, "c")
    x, y = points(rng)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    vg(x, y)
    assert vg.compiled.last_backend == "c_fused"

    def broken(values):
        raise MemoryError("out of memory in the C function")

    vg.compiled.native.outputs_of = broken
    with pytest.warns(RuntimeWarning, match="MemoryError"):
        value, _ = vg(x, y)
    assert vg.compiled.last_backend == "numpy" and vg.compiled.tier == "numpy" and np.isfinite(value)


def test_forcing_each_tier_by_the_environment(cc, monkeypatch, rng):
    x, y = points(rng)
    reference = symgrad.value_and_grad(formula, argnums=(0, 1), backend="numpy")(x, y)
    monkeypatch.setenv(auto.MODE_VARIABLE, "c")
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    value, grads = vg(x, y)  # the first call already on C
    assert vg.compiled.last_backend == "c_fused" and vg.compiled.reason == "SYMGRAD_AUTO=c"
    np.testing.assert_allclose(value, reference[0], rtol=1e-12)
    np.testing.assert_allclose(grads[0], reference[1][0], rtol=1e-12, atol=1e-15)
    compile_cache_clear()
    monkeypatch.setenv(auto.MODE_VARIABLE, "numpy")
    script(monkeypatch, numpy_calls=1, numpy_ms=100.0, c_ms=0.1)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    for _ in range(3):
        vg(x, y)
    assert (vg.compiled.tier, vg.compiled.settled, vg.compiled.last_backend) == ("numpy", True, "numpy")
    compile_cache_clear()
    monkeypatch.setenv(auto.MODE_VARIABLE, "fast")
    with pytest.raises(ValueError, match="SYMGRAD_AUTO='fast' is not one of"):
        symgrad.value_and_grad(formula, argnums=(0, 1))(x, y)


def test_inputs_c_would_compute_otherwise_stay_on_numpy(cc, monkeypatch, rng):
    """float32 inputs (C computes in float64) run on NumPy even on the C tier; a plain
    SymPy symbol called with an array (C compiles scalars) keeps NumPy."""
    monkeypatch.setenv(auto.MODE_VARIABLE, "c")
    x, y = points(rng)
    vg = symgrad.value_and_grad(formula, argnums=(0, 1))
    vg(x, y)
    assert vg.compiled.tier == "c"
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    value, (gx, _) = vg(x32, y32)
    assert vg.compiled.last_backend == "numpy" and gx.dtype == np.float32
    expected = symgrad.value_and_grad(formula, argnums=(0, 1), backend="numpy")(x32, y32)
    np.testing.assert_array_equal(gx, expected[1][0])
    monkeypatch.setenv(auto.MODE_VARIABLE, "tiered")
    script(monkeypatch, numpy_calls=1, numpy_ms=1.0, c_ms=0.1)
    vg32 = symgrad.value_and_grad(formula, argnums=(0, 1))
    for _ in range(3):
        vg32(x32, y32)
    assert (vg32.compiled.tier, vg32.compiled.settled) == ("numpy", True) and "float64" in vg32.compiled.reason
    s = sp.Symbol("s", real=True)
    g = symgrad.grad(sp.sin(s) * s, s)
    out = [g(x) for _ in range(3)]
    assert g.compiled.tier == "numpy" and "does not take these inputs" in g.compiled.reason
    np.testing.assert_allclose(out[-1], np.cos(x) * x + np.sin(x), rtol=1e-13)


def test_the_training_step_shortcut_and_pickling_keep_the_tier(cc, monkeypatch, rng):
    script(monkeypatch, numpy_calls=2, numpy_ms=1.0, c_ms=0.1)
    x, y = points(rng)
    g = symgrad.grad(formula, argnums=(0, 1))
    for _ in range(8):
        g(x, y)
    f = g.compiled
    assert f.last_backend == "c_fused"
    copy = pickle.loads(pickle.dumps(f))
    assert type(copy) is auto.AutoFunction and copy.tier == "numpy"  # a new process starts on NumPy again
    np.testing.assert_allclose(copy(x, y)[0], f(x, y)[0], rtol=1e-12, atol=1e-15)


def test_a_backward_segment_reused_often_enough_tiers_up(cc, monkeypatch, rng):
    """The eager ``backward()`` on the symbolic engine: a segment's compiled function runs
    on NumPy until its calls pay for a compile, then on C; gradients as the tape engine's."""
    from symgrad.symbolic import last_compiled

    script(monkeypatch, numpy_calls=3, numpy_ms=2.0, c_ms=0.2)
    x0, y0 = points(rng)
    ran = []
    for _ in range(9):
        grads = {}
        for engine in ("tape", "symbolic"):
            x, y = symgrad.tensor(x0, requires_grad=True), symgrad.tensor(y0, requires_grad=True)
            with symgrad.backward_engine(engine):
                formula(x, y).backward()
            grads[engine] = (x.grad.numpy(), y.grad.numpy())
        ran.append(last_compiled()[0].last_backend)
        for mine, tape in zip(grads["symbolic"], grads["tape"]):
            np.testing.assert_allclose(mine, tape, rtol=1e-12, atol=1e-15)
    assert ran == ["numpy"] * 4 + ["c_fused", "numpy", "c_fused", "numpy", "c_fused"]
