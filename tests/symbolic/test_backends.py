"""The compiled-function backends (``symgrad.symbolic.codegen.backends``): every C backend agrees
with the NumPy backend -- on random elementwise programs, the W1 formula and the plain-SymPy
Rosenbrock gradient, in float64 and float32, with NaN and infinity -- compiles safely from
many threads, keeps backends apart in the cache, and fails with specific errors.

Tests that need a C compiler skip, with the reason, when none is found.
"""
from __future__ import annotations

import math
import os
import pickle
import threading

import numpy as np
import pytest
import sympy as sp

import symgrad
import symgrad.symbolic as S
from symgrad.ops import OPS
from symgrad.symbolic.codegen.backends import (BackendInputError, CCompileError, CompilerNotFoundError,
                                       UnsupportedExpressionError, backend_names)
from symgrad.symbolic.forms.selections import Cast, Greater, Maximum, Select
from symgrad.symbolic.derive.graph import tensor_graph
from symgrad.symbolic.derive.reverse import adjoints
from symgrad.symbolic.forms.structural import Sum
from symgrad.symbolic.core.symbols import ArrayVar, shape_of
from symgrad.tape.tensor import apply_op
from symgrad.testing.generator import Program, ProgramBuilder, RandomChooser, Reject, random_program

ARRAY_BACKENDS = ["c", "c_fused"]
SCALAR_BACKENDS = ["c", "c_scalar"]


def _in_c(name: str) -> bool:
    """Whether the C backends translate an elementwise op's SymPy form and its derivatives
    (the special functions but lgamma have no libm function, and lgamma's derivative,
    digamma, has none either).  An op whose form needs attributes is one of symgrad's own,
    which C translates."""
    from symgrad.symbolic.codegen.backends.c_code import check_translatable
    from symgrad.symbolic.forms.selections import dummies, elementwise_form

    op = OPS[name]
    us = dummies(op.arity)
    try:
        form = elementwise_form(name, op.sympy, us)
    except TypeError:
        return True
    try:
        check_translatable([form, *(sp.diff(form, u) for u in us)], ["form"] + [f"d{u}" for u in us], "c")
    except UnsupportedExpressionError:
        return False
    return True


ELEMENTWISE_OPS = sorted(name for name, op in OPS.items() if op.kind == "elementwise" and _in_c(name))
"""The elementwise ops the C backends translate, derived from the op table."""
TOLERANCES = {np.float64: dict(rtol=1e-9, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


@pytest.fixture
def build_dir(tmp_path, monkeypatch) -> str:
    """A fresh, empty build directory (nothing compiled before)."""
    path = str(tmp_path / "build")
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", path)
    return path


def assert_agree(native, reference, tolerances: dict, dtypes: bool = True) -> None:
    """Same output names, shapes, floating dtypes (unless ``dtypes`` is False); values
    equal to ``tolerances``, NaN and infinities in the same places."""
    assert native._fields == reference._fields
    for name, got, want in zip(reference._fields, native, reference):
        want = np.asarray(want)
        assert got.shape == want.shape, name
        if dtypes and want.dtype.kind == "f":
            assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        np.testing.assert_allclose(got, want, equal_nan=True, err_msg=name, **tolerances)


def compile_both(backend: str, symbols: list, outputs: list):
    return (S.compile_exprs(symbols, outputs, backend=backend, cache=False),
            S.compile_exprs(symbols, outputs, backend="numpy", cache=False))


# ============================================================================ random programs
def elementwise_program(seed: int, dtype) -> Program:
    """A random chain of elementwise ops (broadcasting inputs), without the generator's
    final sums of unused results (a sum inside an expression is not elementwise)."""
    rng = np.random.default_rng(seed)
    for _ in range(100):
        builder = ProgramBuilder(RandomChooser(rng), dtype=dtype)
        try:
            for _ in range(int(rng.integers(2, 8))):
                builder.apply(builder.choose.element(ELEMENTWISE_OPS))
        except Reject:
            continue
        return Program(builder.names, builder.inputs, builder.layout, builder.values[-1].shape)
    raise AssertionError(f"no program for seed {seed}")


PROGRAM_CASES = [(backend, dtype, case) for backend in ARRAY_BACKENDS for dtype in (np.float64, np.float32)
                 for case in range(10)]


@pytest.mark.parametrize("backend, dtype, case", PROGRAM_CASES)
def test_random_elementwise_program_agrees_with_numpy(cc, backend, dtype, case, test_seed):
    """Value, its sum and gradients; the dtypes of the value and the sum are the tape's
    (the NumPy backend can widen float32 through ``where`` of two Python numbers)."""
    program = elementwise_program(test_seed, dtype)  # each case its own program, new every day
    tape_value = program(*program.tensors())
    value, refs = tensor_graph(tape_value)
    symbols = list(refs)
    values = [refs[s].detach().numpy() for s in symbols]
    total = Sum.of(value, dim=None, keepdim=False)
    full = [s for s in symbols if shape_of(s) == shape_of(value) and getattr(s, "array_dtype", "") != "bool"]
    grads = adjoints([(total, sp.S.One)], full) if full else []
    native, reference = compile_both(backend, symbols, [value, total, *grads])
    got = native(*values)
    assert got[0].dtype == got[1].dtype == tape_value.dtype
    assert_agree(got, reference(*values), TOLERANCES[dtype], dtypes=False)


@pytest.mark.parametrize("backend, dtype, case", [(b, d, c) for b in ARRAY_BACKENDS for d in (np.float64, np.float32)
                                                  for c in range(6)])
def test_random_program_with_inner_sums_agrees_with_numpy(cc, backend, dtype, case, rng):
    """The generator's own programs: it adds the sums of unused results to the output, so
    full sums sit inside the expressions.  The value's dtype is the tape's (the NumPy
    backend can widen float32 through ``where`` of two Python numbers).  A gradient can
    hold a reduction over some axes (``sum_to`` of a broadcast operand of an inner sum),
    which the C backends refuse by design (docs/backends.md); then the value alone is
    compared.  (Found when the programs stopped being the same six every run.)"""
    program = random_program(rng, ELEMENTWISE_OPS, max_steps=6, dtype=dtype)
    tape_value = program(*program.tensors())
    value, refs = tensor_graph(tape_value)
    symbols = list(refs)
    values = [refs[s].detach().numpy() for s in symbols]
    full = [s for s in symbols if shape_of(s) == shape_of(value) and getattr(s, "array_dtype", "") != "bool"]
    outputs = [value, *(adjoints([(Sum.of(value, dim=None, keepdim=False), sp.S.One)], full) if full else [])]
    try:
        native, reference = compile_both(backend, symbols, outputs)
    except UnsupportedExpressionError as refusal:
        assert "cannot translate sum_to" in str(refusal), str(refusal)
        native, reference = compile_both(backend, symbols, outputs[:1])
    got = native(*values)
    assert got[0].dtype == tape_value.dtype
    assert_agree(got, reference(*values), TOLERANCES[dtype], dtypes=False)


_V = ArrayVar("v", (2, 3))
_TOTAL = Sum.of(_V, dim=None, keepdim=False)
INNER_SUMS = {  # (expression, how many loops the backend runs)
    "normalise": (_V / _TOTAL, 2),
    "variance": (Sum.of((_V - S.structural_class("mean").of(_V, dim=None, keepdim=False)) ** 2, dim=None,
                        keepdim=False), 2),
    "two levels": (sp.exp(Sum.of(_V * _TOTAL, dim=None, keepdim=False) / 100) * _V, 3),
    "shared": (sp.sin(_TOTAL) * _V + _TOTAL ** 2, 2),
}


@pytest.mark.parametrize("case", sorted(INNER_SUMS))
def test_full_sums_inside_expressions(cc, case):
    expr, loops = INNER_SUMS[case]
    values = np.random.default_rng(7).uniform(-1, 1, (2, 3))
    native, reference = compile_both("c_fused", [_V], [expr])
    assert_agree(native(values), reference(values), TOLERANCES[np.float64])
    def depth(f) -> int:
        return 1 + max((depth(inner) for inner in f.inner), default=0)

    assert depth(native) == loops


_ROW = ArrayVar("w", (3,))
_DIVISOR = ArrayVar("s", ())
_ROW_CENTRED = sp.Add(_ROW, -S.structural_class("mean").of(_ROW, dim=None, keepdim=True), evaluate=False)
_DIVISORD = sp.Mul(_ROW_CENTRED, sp.Pow(_DIVISOR, -1, evaluate=False), evaluate=False)  # NaN or inf where s = 0
CANCELLING = {  # forms SymPy's evaluation would simplify, unlike IEEE arithmetic where t is NaN or inf
    "-t + t": sp.Add(sp.Mul(-1, _DIVISORD, evaluate=False), _DIVISORD, evaluate=False),
    "t - t plus a sum": sp.Add(_DIVISORD, sp.Mul(-1, _DIVISORD, evaluate=False), Sum.of(_ROW, dim=None, keepdim=False),
                               evaluate=False),
    "0 * t": sp.Mul(sp.Integer(0), _DIVISORD, evaluate=False),
    "t / t": sp.Mul(_DIVISORD, sp.Pow(_DIVISORD, -1, evaluate=False), evaluate=False),
    "t ** 0": sp.Pow(_DIVISORD, 0, evaluate=False),
}


@pytest.mark.parametrize("backend", ARRAY_BACKENDS)
@pytest.mark.parametrize("case", sorted(CANCELLING))
def test_forms_are_computed_as_given_not_as_sympy_would_simplify_them(cc, backend, case):
    """The C backends rebuild a form when they cut its full reductions out into loops of
    their own; rebuilt with SymPy's evaluation, ``-t + t`` became 0 where NumPy's is NaN
    (the gradient of the variance of one element)."""
    native, reference = compile_both(backend, [_ROW, _DIVISOR], [CANCELLING[case]])
    for scale in (0.0, np.inf, 2.0):
        values = (np.array([0.5, 0.5, 2.0]), np.array(scale))
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(native(*values)[0], reference(*values)[0])


_GROUPED_A, _GROUPED_B, _GROUPED_C = ArrayVar("a", ()), ArrayVar("b", ()), ArrayVar("c", (3,))
_GROUPED_SUM = sp.Add(_GROUPED_A, _GROUPED_B, evaluate=False)
_GROUPED_BROADCAST = S.structural_class("broadcast_to").of(_GROUPED_SUM, shape=(3,))
GROUPED = {  # nodes the C printer prints as their argument alone, inside operators that bind tighter
    "broadcast_to(a + b) * c": sp.Mul(_GROUPED_BROADCAST, _GROUPED_C, evaluate=False),
    "c / broadcast_to(a + b)": sp.Mul(_GROUPED_C, sp.Pow(_GROUPED_BROADCAST, -1, evaluate=False), evaluate=False),
    "broadcast_to(a + b) ** 3": sp.Pow(_GROUPED_BROADCAST, 3, evaluate=False),
    "-broadcast_to(a - b)": sp.Mul(-1, S.structural_class("broadcast_to").of(
        sp.Add(_GROUPED_A, sp.Mul(-1, _GROUPED_B, evaluate=False), evaluate=False), shape=(3,)), evaluate=False),
    "cast(a + b, float64) * c": sp.Mul(Cast.of(_GROUPED_SUM, "float64"), _GROUPED_C, evaluate=False),
    "cast(a + b, float32) * c": sp.Mul(Cast.of(_GROUPED_SUM, "float32"), _GROUPED_C, evaluate=False),
}


@pytest.mark.parametrize("backend", ARRAY_BACKENDS)
@pytest.mark.parametrize("case", sorted(GROUPED))
def test_a_node_printed_as_its_argument_keeps_its_grouping(cc, backend, case):
    """At one point of a C loop ``broadcast_to(e)`` is ``e``, and a cast to ``float64`` is
    ``e`` too; printed bare inside a product, ``(a + b)*c`` became ``a + b*c`` (found by the
    warm-cache fuzz with the C tier forced: the gradient of ``sum(exp(x)[0:1])**2``)."""
    native, reference = compile_both(backend, [_GROUPED_A, _GROUPED_B, _GROUPED_C], [GROUPED[case]])
    values = (np.array(0.75), np.array(-2.5), np.array([1.0, 2.0, -3.0]))
    np.testing.assert_array_equal(native(*values)[0], reference(*values)[0])


# ============================================================================ W1 and Rosenbrock
def w1_formula(m, x, y, z):
    return m.sin(x * y) * m.exp(-z) + m.log(1 + x * x) * m.tanh(y) + m.cos(z) * (y * y + z * z + 1) ** 1.5


@pytest.mark.parametrize("backend, dtype, n", [(b, d, n) for b in ARRAY_BACKENDS for d in (np.float64, np.float32)
                                               for n in (1, 2049, 10_001)])
def test_w1_formula_agrees_with_numpy(cc, backend, dtype, n):
    data = [a.astype(dtype) for a in np.random.default_rng(n).uniform(-1.0, 1.0, (3, n))]
    f = lambda x, y, z: w1_formula(symgrad, x, y, z).sum()  # noqa: E731
    native = S.value_and_grad(f, argnums=(0, 1, 2), backend=backend)
    value, grads = native(*data)
    ref_value, ref_grads = S.value_and_grad(f, argnums=(0, 1, 2))(*data)
    assert native.compiled.backend == "c_fused"
    tol = dict(TOLERANCES[dtype], rtol=TOLERANCES[dtype]["rtol"] * 10)  # sums: another summation order
    np.testing.assert_allclose(value, ref_value, **tol)
    assert value.dtype == ref_value.dtype
    for got, want in zip(grads, ref_grads):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_allclose(got, want, **TOLERANCES[dtype])


def rosen_der(x: np.ndarray) -> np.ndarray:
    """The hand-written Rosenbrock gradient (scipy.optimize.rosen_der's formula)."""
    der = np.zeros_like(x)
    xm, xm_m1, xm_p1 = x[1:-1], x[:-2], x[2:]
    der[1:-1] = 200 * (xm - xm_m1 ** 2) - 400 * (xm_p1 - xm ** 2) * xm - 2 * (1 - xm)
    der[0] = -400 * x[0] * (x[1] - x[0] ** 2) - 2 * (1 - x[0])
    der[-1] = 200 * (x[-1] - x[-2] ** 2)
    return der


@pytest.mark.parametrize("backend, n", [(b, n) for b in SCALAR_BACKENDS for n in (2, 3, 60)])
def test_plain_sympy_rosenbrock_gradient(cc, backend, n):
    xs = sp.symbols(f"x0:{n}", real=True)
    f = sp.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(n - 1)])
    x = np.random.default_rng(n).uniform(-1.5, 1.5, n)
    native = S.grad(f, list(xs), args=list(xs), backend=backend)
    got = np.array(native(*x))
    assert native.compiled.backend == "c_scalar"
    np.testing.assert_allclose(got, np.array(S.grad(f, list(xs), args=list(xs))(*x)), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(got, rosen_der(x), rtol=1e-12, atol=1e-10)
    np.testing.assert_array_equal(native.compiled.call_packed(x), got)


def rosen(x):
    """The vectorised Rosenbrock function (benchmark W2)."""
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


@pytest.mark.parametrize("backend, n", [(b, n) for b in ARRAY_BACKENDS for n in (1, 2, 3, 60, 2049, 4097, 10_001, 300_001)])
def test_vectorised_rosenbrock_is_one_stencil_loop(cc, backend, n):
    """W2's program: slices and their adjoints in one C loop, value and gradient equal to
    the NumPy backend's (the gradient bit for bit; the value to rounding, another summation
    order) and to the hand-written gradient, across block boundaries and for the shortest
    arrays (n = 1: empty slices), on one thread and on several (n = 300,001)."""
    x = np.random.default_rng(n).uniform(-1.5, 1.5, n)
    native = S.value_and_grad(rosen, backend=backend)
    value, grad = native(x)
    ref_value, ref_grad = S.value_and_grad(rosen)(x)
    assert native.compiled.backend == "c_fused" and native.source.count("sg_kernel") == 1
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_array_equal(grad, ref_grad)
    np.testing.assert_allclose(grad, rosen_der(x) if n > 1 else np.zeros(1), rtol=1e-12, atol=1e-10)


PARALLEL_PROGRAMS = {
    # (value_and_grad of a full sum, inputs): enough points for the loops' worker threads
    "W1 formula": (lambda x, y, z: w1_formula(symgrad, x, y, z).sum(),
                   lambda rng: list(rng.uniform(-1.0, 1.0, (3, 300_001)))),
    "W2 stencil": (rosen, lambda rng: [rng.uniform(-1.5, 1.5, 300_001)]),
    "column and row sums": (lambda m: (m.sum(0) ** 2).sum() + (symgrad.exp(m).sum(1) * m.mean(1)).sum(),
                            lambda rng: [rng.uniform(-1.0, 1.0, (600, 500))]),
}


def _loops(compiled) -> list:
    """The C loops of a compiled function: a plan's loops, the loops of full sums inside."""
    loops = [step.function for step in compiled.steps if step.kind != "numpy"] if hasattr(compiled, "steps") else [compiled]
    for loop in loops:
        loops.extend(getattr(loop, "inner", ()))
    return loops


@pytest.mark.parametrize("case", sorted(PARALLEL_PROGRAMS))
def test_loops_on_many_threads_equal_one_thread_and_numpy(cc, case):
    """Loops long enough to share their blocks among worker threads (:mod:`.c_threads`)
    give the same bits as the same loops on the calling thread alone (full sums added in
    block order, whichever thread ran a block), on every call, also when four Python
    threads call them at once (one of them gets the workers, the others run alone); and
    agree with the NumPy backend."""
    from symgrad.symbolic.codegen.backends.c_threads import forget_slow_calls, thread_count

    f, make = PARALLEL_PROGRAMS[case]
    forget_slow_calls()  # (the workers share the first call even if earlier ones were slow with them)
    data = make(np.random.default_rng(7))
    argnums = tuple(range(len(data)))
    native = S.value_and_grad(f, argnums=argnums, backend="c")
    value, grads = native(*data)
    ref_value, ref_grads = S.value_and_grad(f, argnums=argnums)(*data)
    np.testing.assert_allclose(value, ref_value, rtol=1e-11)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    if case == "W2 stencil":
        np.testing.assert_array_equal(grads[0], ref_grads[0])
    loops = _loops(native.compiled)
    assert loops and all(loop.parallel for loop in loops) and thread_count() >= 1
    results: list = []
    errors: list = []
    start = threading.Barrier(4)

    def work() -> None:
        try:
            start.wait()
            for _ in range(3):
                forget_slow_calls()
                results.append(native(*data))
        except Exception as err:  # noqa: BLE001  (reported below)
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for loop in loops:
        loop.parallel = False
    try:
        alone = native(*data)
    finally:
        for loop in loops:
            loop.parallel = True
    for got_value, got_grads in results + [(value, grads)]:
        assert got_value.tobytes() == alone[0].tobytes()
        for got, want in zip(got_grads, alone[1]):
            assert got.tobytes() == want.tobytes()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_loops_run_in_a_forked_child(cc):
    """A child process forked after the worker threads started (fork copies no threads)
    starts its own and computes the same bits."""
    x = np.random.default_rng(8).uniform(-1.5, 1.5, 300_001)
    native = S.value_and_grad(rosen, backend="c")
    value, grad = native(x)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the bits, never return into pytest
        try:
            child_value, child_grad = native(x)
            os.write(write, b"same" if (child_value.tobytes() == value.tobytes()
                                        and child_grad.tobytes() == grad.tobytes()) else b"diff")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == b"same"


def test_broadcast_inputs_read_from_one_repetition(cc):
    """An input whose shape is the last axes of the loop's (a bias) is read from its
    repetition over one block and one period, not from a copy broadcast to the loop's
    shape; other broadcasts are copied.  Across many blocks (periods 7 and 21 do not
    divide the block), the same bits as the NumPy backend."""
    shapes = {"x": (700, 3, 7), "b": (7,), "c": (3, 7), "d": (1, 1, 7), "e": (700, 1, 1)}
    symbols = {name: ArrayVar(name, shape) for name, shape in shapes.items()}
    x, b, c, d, e = symbols.values()
    rng = np.random.default_rng(9)
    values = [rng.uniform(-2, 2, shape) for shape in shapes.values()]
    native, reference = compile_both("c_fused", list(symbols.values()), [x * b + c / d - e, b * c])
    tiled = {native.inputs[i] for i in native.tiles}
    assert tiled == {"b", "c", "d"}
    for got, want in zip(native(*values), reference(*values)):
        np.testing.assert_array_equal(got, want)


def w3_loss(W, b, X, Y):
    """Benchmark W3's program: logistic regression, mean(BCEWithLogits(X @ W + b, Y))."""
    import symgrad.nn.functional as Fn

    return Fn.binary_cross_entropy_with_logits(X @ W + b, Y)


def test_logistic_regression_plans_matmuls_around_loops(cc):
    """W3's program (smaller): NumPy computes the matmuls, C the loss and the gradient of
    the logits in one loop, and the bias gradient (its column sums) in a loop nest;
    values equal to the NumPy backend's."""
    rng = np.random.default_rng(3)
    X, W, b = rng.standard_normal((300, 20)), rng.standard_normal((20, 4)) * 0.1, rng.standard_normal(4) * 0.1
    Y = (rng.uniform(size=(300, 4)) < 0.5).astype(np.float64)
    Xt, Yt = symgrad.tensor(X, name="X"), symgrad.tensor(Y, name="Y")
    native = S.value_and_grad(lambda W, b: w3_loss(W, b, Xt, Yt), argnums=(0, 1), backend="c")
    value, grads = native(W, b)
    ref_value, ref_grads = S.value_and_grad(lambda W, b: w3_loss(W, b, Xt, Yt), argnums=(0, 1))(W, b)
    assert [step.kind for step in native.compiled.steps] == ["numpy", "c", "numpy", "reduce"]
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for got, want in zip(grads, ref_grads):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", ARRAY_BACKENDS)
def test_transforms_take_a_backend(cc, backend):
    x = np.random.default_rng(3).uniform(0.5, 1.5, 4)
    f = lambda x: (symgrad.sin(x) * x).sum()  # noqa: E731
    cases = [
        (S.grad(f, backend=backend)(x), S.grad(f)(x)),
        (S.jacobian(lambda x: symgrad.exp(x) * x, backend=backend)(x), S.jacobian(lambda x: symgrad.exp(x) * x)(x)),
        (S.hessian(f, backend=backend)(x), S.hessian(f)(x)),
        (S.vjp(lambda x: x ** 3, x, backend=backend)[1](np.ones(4)), S.vjp(lambda x: x ** 3, x)[1](np.ones(4))),
        (S.jvp(lambda x: x ** 3, (x,), (x,), backend=backend), S.jvp(lambda x: x ** 3, (x,), (x,))),
    ]
    for got, want in cases:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12)


@pytest.mark.parametrize("backend", ["c", "auto"])
def test_sort_runs_as_a_numpy_step_of_the_c_plan(cc, backend):
    """``sort_values`` and its adjoint ``sort_by`` have no C translation: ``"c"`` (and ``"auto"``)
    compute them in NumPy steps of the plan, with the same values as the NumPy backend."""
    x = np.random.default_rng(5).standard_normal((3, 4))

    def f(x):
        return ((symgrad.sort(symgrad.sin(x), dim=-1, descending=True).values * symgrad.arange(4.0)).sum()
                + (symgrad.topk(x * x, 2, dim=0).values ** 2).sum())

    for got, want in zip(S.value_and_grad(f, backend=backend)(x), S.value_and_grad(f, backend="numpy")(x)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    sort_only = lambda x: (symgrad.sort(symgrad.sin(x), descending=True).values * symgrad.arange(4.0)).sum()  # noqa: E731
    with pytest.raises(UnsupportedExpressionError, match="sort_by"):
        S.grad(sort_only, backend="c_fused")(x[0])


@pytest.mark.parametrize("backend", ["c", "auto"])
def test_argmax_runs_as_a_numpy_step_of_the_c_plan(cc, backend):
    """``argmax``, ``argmin`` and ``count_nonzero``'s cast of a mask have no C translation:
    ``"c"`` (and ``"auto"``) compute them in NumPy steps of the plan, with the NumPy backend's
    values at every point (the positions recomputed), and ``c_fused`` refuses them by name."""
    rng = np.random.default_rng(6)

    def f(x):
        return ((symgrad.sin(x) * x.argmax(1, keepdim=True)).sum() + x.argmin().double() * x.sum()
                + (symgrad.count_nonzero(symgrad.relu(x), 0) * x).sum())

    def with_positions(x):  # the positions themselves as outputs: int64, as NumPy's
        return f(x), (x.argmax(), x.argmin(0), x.argmax(1, keepdim=True))

    compiled, reference = S.value_and_grad(f, backend=backend), S.value_and_grad(f, backend="numpy")
    aux = S.value_and_grad(with_positions, backend=backend, has_aux=True)
    aux_reference = S.value_and_grad(with_positions, backend="numpy", has_aux=True)
    for x in [rng.standard_normal((3, 4)) for _ in range(3)]:
        for got, want in zip(compiled(x), reference(x)):
            np.testing.assert_allclose(got, want, rtol=1e-12)
        for got, want in zip(aux(x)[0][1], aux_reference(x)[0][1]):
            assert got.dtype == want.dtype == np.int64
            np.testing.assert_array_equal(got, want)
    with pytest.raises(UnsupportedExpressionError, match="argmax|argmin|Cast"):
        S.grad(f, backend="c_fused")(x)


def test_a_position_times_a_constant_is_a_float_on_c(cc):
    """A gradient folds a float constant into a position (``sum(4.9443*argmin(a))``); its
    dtype is float64, as NumPy's, where a rule giving positions' int64 to whatever they
    reach truncated it to 9.0 (the C-tier transform fuzz, seed 7805); a position itself
    stays int64."""
    from symgrad.symbolic.forms.structural import Argmin

    a = ArrayVar("a", (1, 3))
    position = Argmin.of(a, dim=-1, keepdim=False)
    outputs = [Sum.of(sp.Float(4.9443) * position, dim=None, keepdim=False), position]
    native, reference = compile_both("c", [a], outputs)
    values = np.array([[-1.0, 0.5, -2.0]])
    for got, want in zip(native(values), reference(values)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ARRAY_BACKENDS)
def test_transforms_of_pytree_outputs_take_a_backend(cc, backend):
    # several seeds (jacobian, vjp), several tangent outputs (jvp), one-hot output weights (hessian)
    from symgrad import pytree

    rng = np.random.default_rng(4)
    x, y = rng.uniform(0.5, 1.5, 3), rng.uniform(-1.0, 1.0, 3)
    f = lambda x, y: {"s": (symgrad.sin(x) * y).sum(), "v": (x * y, None)}  # noqa: E731
    losses = lambda x: {"a": (symgrad.sin(x) * y).sum(), "b": [(x ** 3).sum()]}  # noqa: E731
    cotangent = {"s": np.array(0.5), "v": (rng.standard_normal(3), None)}
    tangents = (rng.standard_normal(3), rng.standard_normal(3))
    results = {}
    for b in (backend, "numpy"):
        results[b] = [S.jacobian(f, argnums=(0, 1), backend=b)(x, y), S.vjp(f, x, y, backend=b)[1](cotangent),
                      S.jvp(f, (x, y), tangents, backend=b), S.hessian(losses, backend=b)(x)]
    got, got_tree = pytree.flatten(results[backend])
    want, want_tree = pytree.flatten(results["numpy"])
    assert got_tree == want_tree
    for a, b in zip(got, want):
        assert (a is None) == (b is None)
        if b is not None:
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-14)


# ============================================================================ IEEE special values
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 1e300, -1e-300, 710.0])
SPECIAL_CASES = {
    "sin": lambda x, y: symgrad.sin(x), "exp": lambda x, y: symgrad.exp(x), "log": lambda x, y: symgrad.log(x),
    "tanh": lambda x, y: symgrad.tanh(x), "sqrt": lambda x, y: symgrad.sqrt(x), "pow1.5": lambda x, y: x ** 1.5,
    "pow2": lambda x, y: x ** 2, "pow_xy": lambda x, y: x ** y, "div": lambda x, y: x / y,
    "maximum": lambda x, y: symgrad.maximum(x, y), "minimum": lambda x, y: symgrad.minimum(x, y),
    "sign": lambda x, y: apply_op("sign", x), "abs": lambda x, y: symgrad.abs(x), "relu": lambda x, y: symgrad.relu(x),
    "sigmoid": lambda x, y: symgrad.sigmoid(x), "softplus": lambda x, y: symgrad.softplus(x),
    "where": lambda x, y: symgrad.where(x > y, x, y), "clamp": lambda x, y: symgrad.clamp(x, -1.0, 1.0),
    "mul_add": lambda x, y: x * y + x,
}


@pytest.mark.parametrize("backend", ARRAY_BACKENDS)
@pytest.mark.parametrize("case", sorted(SPECIAL_CASES))
def test_nan_and_inf_propagate_as_in_numpy(cc, backend, case):
    x, y = np.meshgrid(SPECIAL, SPECIAL)
    tx, ty = (symgrad.tensor(a.ravel(), requires_grad=True, name=n) for a, n in ((x, "x"), (y, "y")))
    with np.errstate(all="ignore"):
        value, refs = tensor_graph(SPECIAL_CASES[case](tx, ty))
    symbols = list(refs)
    values = [refs[s].detach().numpy() for s in symbols]
    outputs = [value, Sum.of(value, dim=None, keepdim=False)]
    native, reference = compile_both(backend, symbols, outputs)
    with np.errstate(all="ignore"):
        assert_agree(native(*values), reference(*values), dict(rtol=1e-12, atol=0))


_U = ArrayVar("u", (50,))
MATH_CASES = {  # SymPy functions the op table does not use, each on values inside its domain
    "tan": sp.tan(_U), "asin": sp.asin(_U / 2), "acos": sp.acos(_U / 2), "atan": sp.atan(_U * 3),
    "sinh": sp.sinh(_U), "cosh": sp.cosh(_U), "asinh": sp.asinh(_U * 4), "acosh": sp.acosh(2 + _U),
    "atanh": sp.atanh(_U / 2), "atan2": sp.atan2(_U, 1 - _U),
    "floor": sp.floor(_U * 3), "ceiling": sp.ceiling(_U * 3), "Abs": sp.Abs(_U), "pow_-1.5": (2 + _U) ** -1.5,
    "pow_cbrt": (2 + _U) ** sp.Rational(1, 3), "pi": sp.pi * _U, "log(2)": sp.log(2) * _U,
}


def test_every_elementwise_op_is_a_vectorised_loop(cc, tmp_path):
    """The loop of each op the C backends translate, with its derivatives, is vectorised
    (read from GCC's own report): a call inside a condition (``where``, ``Piecewise``, the
    NaN test of ``softplus``) or a short-circuit ``&&`` keeps GCC from it, and a scalar
    loop of ``exp``/``log`` is several times slower."""
    import subprocess

    from symgrad.symbolic.codegen.backends.c_fused import FLAGS, FusedFunction
    from symgrad.symbolic.forms.selections import elementwise_form

    version = subprocess.run([*cc, "--version"], capture_output=True, text=True).stdout
    if "gcc" not in version.lower() and "free software foundation" not in version.lower():
        pytest.skip("reads GCC's vectorisation report")
    scalar = []
    for name in ELEMENTWISE_OPS:
        op = OPS[name]
        xs = [ArrayVar(f"x{i}", (4096,)) for i in range(op.arity)]
        try:
            form = elementwise_form(name, op.sympy, xs)
        except TypeError:  # (an op of symgrad's own whose form needs its attributes)
            continue
        source = FusedFunction(xs, [form, *(sp.diff(form, u) for u in xs)]).source
        (tmp_path / "loop.c").write_text(source)
        report = subprocess.run([*cc, *FLAGS, "-fopt-info-vec-optimized", str(tmp_path / "loop.c"),
                                 "-o", str(tmp_path / "loop.so")], capture_output=True, text=True).stderr
        if "loop vectorized" not in report:
            scalar.append(name)
    assert not scalar


@pytest.mark.parametrize("case", sorted(MATH_CASES))
def test_math_functions_agree_with_numpy(cc, case):
    values = np.linspace(-0.99, 0.99, 50)
    native, reference = compile_both("c", [_U], [MATH_CASES[case]])
    assert_agree(native(values), reference(values), dict(rtol=1e-13, atol=1e-15))


@pytest.mark.parametrize("function, reference", [(sp.erf, math.erf), (sp.erfc, math.erfc)])
def test_error_functions_agree_with_the_math_module(cc, function, reference):
    """NumPy has no erf (the NumPy backend cannot compile it); Python's math module can."""
    values = np.linspace(-3, 3, 50)
    got = S.compile_exprs([_U], [function(_U)], backend="c", cache=False)(values).out0
    np.testing.assert_allclose(got, [reference(v) for v in values], rtol=1e-14, atol=1e-16)


# ============================================================================ float32
@pytest.mark.parametrize("backend", ARRAY_BACKENDS)
def test_float32_computes_in_float64_and_rounds_once(cc, backend):
    """The documented choice: float32 inputs are widened, the result rounded to float32 once."""
    x = ArrayVar("x", (1000,), "float32")
    expr = sp.exp(sp.sin(x) * 3) / (1 + x ** 2)
    values = np.random.default_rng(5).uniform(-3, 3, 1000).astype(np.float32)
    got = S.compile_exprs([x], [expr], backend=backend, cache=False)(values).out0
    x64 = ArrayVar("x", (1000,), "float64")
    exact = S.compile_exprs([x64], [expr.xreplace({x: x64})])(values.astype(np.float64)).out0
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, exact.astype(np.float32))


_X32, _X64 = ArrayVar("a", (4,), "float32"), ArrayVar("b", (4,), "float64")
DTYPE_CASES = [  # outputs whose dtype NumPy decides differently
    lambda: Cast.of(_X64 * 3, "float32") + _X32,   # a cast target flows on
    lambda: Greater(_X32, _X64),                     # a comparison is bool
    lambda: Select(Greater(_X64, 0), _X32, 2),      # a condition does not promote
    lambda: _X32 * _X64,                             # float32 * float64 -> float64
    lambda: sp.sin(_X32) * 2.5,                      # numbers are weak: stays float32
]


@pytest.mark.parametrize("backend", ARRAY_BACKENDS)
@pytest.mark.parametrize("case", range(len(DTYPE_CASES)))
def test_output_dtypes_follow_numpy(cc, backend, case):
    values = [np.linspace(-1, 1, 4).astype(np.float32), np.linspace(1, -2, 4)]
    native, reference = compile_both(backend, [_X32, _X64], [DTYPE_CASES[case]()])
    got, want = native(*values).out0, reference(*values).out0
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)


# ============================================================================ the interface and the cache
def test_native_function_interface(cc):
    x, y = ArrayVar("x", (3,)), ArrayVar("w.b", (3,))
    f = S.compile_exprs([x, y], [Sum.of(x * y, dim=None, keepdim=False), y, x], output_names=["value", "grad_x", "grad_y"],
                        backend="c")
    a, b = np.arange(3.0), np.ones(3)
    out = f(a, w_b=b)
    assert (f.inputs, f.outputs, f.backend) == (["x", "w_b"], ["value", "grad_x", "grad_y"], "c_fused")
    assert out.value == 3.0 and out.grad_x is not b and np.array_equal(out.grad_y, a)
    assert [np.array_equal(o, p) for o, p in zip(f.outputs_of([a, b]), out)] == [True] * 3
    assert "void sg_kernel" in f.source and set(f.exprs) == {"value", "grad_x", "grad_y"}
    assert "sum" in f.latex() and "c_fused" in repr(f)


@pytest.mark.parametrize("backend, symbols, output", [
    ("c_fused", [ArrayVar("x", (3,))], lambda x: Sum.of(sp.exp(x) * x, dim=None, keepdim=False)),
    ("c_scalar", [sp.Symbol("x", real=True)], lambda x: sp.atan(x) / (1 + x ** 2)),
    ("c", [ArrayVar("x", (3,))], lambda x: sp.exp(S.structural_class("softmax").of(x, dim=0)) * x),  # a plan
])
def test_native_functions_pickle_as_closed_forms(cc, backend, symbols, output):
    f = S.compile_exprs(symbols, [output(*symbols), symbols[0] * 2], output_names=["value", "twice"], backend=backend)
    g = pickle.loads(pickle.dumps(f))
    value = 0.75 if backend == "c_scalar" else np.linspace(0.5, 1.5, 3)
    assert type(g) is type(f) and g.source == f.source and g.outputs == f.outputs
    for got, want in zip(g(value), f(value)):
        np.testing.assert_array_equal(got, want)


def test_backends_never_share_a_cache_entry(cc):
    x = ArrayVar("x", (5,))
    expr = sp.cos(x) * 7 + 1
    native, numpy_f = (S.compile_exprs([x], [expr], backend=b) for b in ("c", "numpy"))
    assert native is not numpy_f and (native.backend, numpy_f.backend) == ("c_fused", "numpy")
    assert S.compile_exprs([x], [expr], backend="c") is native
    assert S.compile_exprs([x], [expr], backend="c_fused") is not native  # another name, another entry
    f = lambda v: (symgrad.cos(v) * 7).sum()  # noqa: E731
    assert S.grad(f, backend="c")._prepare([np.ones(5)], {})[1].backend == "c_fused"
    assert S.grad(f)._prepare([np.ones(5)], {})[1].backend == "auto"  # the default
    assert S.grad(f, backend="numpy")._prepare([np.ones(5)], {})[1].backend == "numpy"


def test_compiling_from_many_threads(cc, build_dir):
    x = ArrayVar("x", (64,))
    exprs = [sp.sin(x) * k + sp.exp(-x) for k in range(4)]  # 4 sources, each wanted by 3 threads at once
    values = np.linspace(-2, 2, 64)
    results: dict = {}
    errors: list = []
    start = threading.Barrier(12)

    def work(i: int) -> None:
        try:
            start.wait()
            results[i] = S.compile_exprs([x], [exprs[i % 4]], backend="c", cache=False)(values).out0
        except Exception as err:  # noqa: BLE001  (reported below)
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, got in results.items():
        np.testing.assert_allclose(got, np.sin(values) * (i % 4) + np.exp(-values), rtol=1e-14)
    assert len(results) == 12
    names = os.listdir(build_dir)  # 4 libraries, each with its hash; no leftover of a compilation
    assert sorted(n.split(".", 1)[1] for n in names) == ["so"] * 4 + ["so.sha256"] * 4


# ============================================================================ errors
def _no_compiler(monkeypatch, tmp_path):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))


def _missing_cc(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))


def _failing_cc(monkeypatch, tmp_path):
    script = tmp_path / "failing-cc"
    script.write_text("#!/bin/sh\necho 'fake-cc: error: no' >&2\nexit 1\n")
    script.chmod(0o755)
    monkeypatch.setenv("CC", str(script))


def _silent_cc(monkeypatch, tmp_path):
    script = tmp_path / "silent-cc"
    script.write_text("#!/bin/sh\nexit 0\n")  # succeeds, writes no library
    script.chmod(0o755)
    monkeypatch.setenv("CC", str(script))


def _cc(value):
    """A breakage that sets ``CC`` to ``value`` (``{tmp}`` is the test's temporary directory)."""
    def breakage(monkeypatch, tmp_path):
        (tmp_path / "not-executable").write_text("int main;\n")
        monkeypatch.setenv("CC", value.format(tmp=tmp_path))
    breakage.__name__ = f"CC={value!r}"
    return breakage


COMPILER_ERRORS = [  # (how the compiler is broken, error, words the message must contain)
    (_no_compiler, CompilerNotFoundError, ["CC", "cc", "gcc", "backend='numpy'"]),
    (_missing_cc, CompilerNotFoundError, ["no-such-cc", "CC"]),
    (_failing_cc, CCompileError, ["exit 1", "fake-cc: error: no", "backend='numpy'"]),
    (_silent_cc, CCompileError, ["silent-cc", "no library", "backend='numpy'"]),
    (_cc('gcc "'), CompilerNotFoundError, ["CC='gcc \"'", "quotation", "unset it", "backend='numpy'"]),
    (_cc("gcc -O2 \\"), CompilerNotFoundError, ["CC='gcc -O2 \\\\'", "escaped", "unset it"]),
    (_cc(""), CompilerNotFoundError, ["CC=''", "names no program", "unset it"]),
    (_cc("   "), CompilerNotFoundError, ["CC='   '", "names no program", "unset it"]),
    (_cc('""'), CompilerNotFoundError, ["CC='\"\"'", "executable", "unset it"]),
    (_cc("{tmp}"), CompilerNotFoundError, ["CC='/", "executable", "unset it"]),
    (_cc("{tmp}/not-executable -O2"), CompilerNotFoundError, ["not-executable -O2'", "executable", "unset it"]),
]


@pytest.mark.parametrize("breakage, error, words", COMPILER_ERRORS, ids=lambda v: getattr(v, "__name__", None))
def test_compiler_errors(breakage, error, words, monkeypatch, tmp_path):
    breakage(monkeypatch, tmp_path)
    monkeypatch.setenv("SYMGRAD_BUILD_DIR", str(tmp_path / "build"))
    x = ArrayVar("x", (3,))
    with pytest.raises(error) as info:
        S.compile_exprs([x], [sp.sin(x) + 17], backend="c", cache=False)
    for word in words:
        assert word in str(info.value)


_A, _B = ArrayVar("a", (2, 2)), ArrayVar("b", (2, 2))
UNSUPPORTED = [  # (backend, inputs, output, the op the message names); backend="c" plans them (below)
    ("c_fused", [_A, _B], S.structural_class("matmul").of(_A, _B), "matmul"),
    ("c_fused", [_A], S.structural_class("getitem").of(_A, index=(slice(None), 0)), "getitem"),
    ("c_fused", [_A], Sum.of(_A, dim=(0,), keepdim=False), "sum"),
    ("c_fused", [_A], S.structural_class("softmax").of(_A, dim=1), "softmax"),
    ("c_fused", [_A], sp.besselj(0, _A), "besselj"),
    ("c_scalar", [_A], sp.sin(_A), "shape (2, 2)"),
]


@pytest.mark.parametrize("backend, inputs, output, op", UNSUPPORTED)
def test_untranslatable_expressions_name_the_op(cc, backend, inputs, output, op):
    with pytest.raises(UnsupportedExpressionError) as info:
        S.compile_exprs(inputs, [output], backend=backend, cache=False)
    assert op in str(info.value) and "backend='numpy'" in str(info.value)


@pytest.mark.parametrize("inputs, output, op", [case[1:] for case in UNSUPPORTED if case[0] == "c_fused"
                                                and case[3] != "besselj"])
def test_c_backend_plans_what_one_loop_cannot(cc, inputs, output, op):
    """``backend="c"`` compiles what ``c_fused`` refuses, as a plan whose NumPy step
    computes the op; its result equals the NumPy backend's."""
    values = [np.random.default_rng(1).uniform(-1, 1, shape_of(s)) for s in inputs]
    native, reference = compile_both("c", inputs, [sp.exp(output) * 2])
    in_c = op in ("sum", "softmax")  # (C loop nests: sums, softmax, ... over axes)
    assert native.backend == "c" and [step.kind for step in native.steps] == ["reduce" if in_c else "numpy", "c"]
    assert ("NumPy" in native.source or in_c) and "sg_kernel" in native.source
    assert_agree(native(*values), reference(*values), TOLERANCES[np.float64])


# ============================================================================ plans: C loops around NumPy pieces
_M, _W, _V7 = ArrayVar("m", (4, 5)), ArrayVar("w", (5,)), ArrayVar("v", (7,))
_IDX = np.array([0, 2, 2, 6])
PLANNED = {  # name -> (function of tensors, argument values); value and gradient against the NumPy backend
    "matmul": (lambda a, w: symgrad.tanh(a @ w).sum(), ((4, 5), (5,))),
    "matmul, slice of the result": (lambda a, w: (symgrad.sigmoid(a @ w)[1:] - (a @ w)[:-1]).sum(), ((4, 5), (5,))),
    "softmax": (lambda a: (symgrad.softmax(a, dim=1) * a).sum(), ((4, 5),)),
    "logsumexp": (lambda a: symgrad.logsumexp(a, dim=0).sum() * 2, ((4, 5),)),
    "sum over an axis, keepdim": (lambda a: (a / a.sum(dim=1, keepdim=True)).sum(), ((4, 5),)),
    "mean over an axis": (lambda a: (symgrad.exp(a.mean(dim=0)) ** 2).sum(), ((4, 5),)),
    "fancy indexing": (lambda v: (v[_IDX] ** 2).sum() + symgrad.sin(v).sum(), ((7,),)),
    "2-D slices": (lambda a: (a[1:, :-1] * a[:-1, 1:]).sum(), ((4, 5),)),
    "slices of the first axis": (lambda a: ((a[1:] - a[:-1]) ** 2).sum() + (a[0] * a[-1]).sum(), ((4, 5),)),
    "a row times every row": (lambda a: (a[0] * a).sum(), ((4, 5),)),
    "Rosenbrock over rows": (lambda a: (100.0 * (a[1:] - a[:-1] ** 2) ** 2 + (1 - a[:-1]) ** 2).sum(), ((6, 3),)),
    "strided and reversed slices": (lambda v: (v[::2][:3] * v[1::2] + v[::-1][2:5]).sum(), ((7,),)),
    "where of matmuls": (lambda a, b: symgrad.where(a @ b > 0, a @ b, -a @ b).sum(), ((4, 5), (5, 3))),
    "cumsum": (lambda v: (v.cumsum(0) * v).sum(), ((7,),)),
    "sums over axes of sums over axes": (lambda a: (a / a.sum(dim=1, keepdim=True)).sum(dim=0).sum()
                                         + (symgrad.exp(a) * a.mean(dim=0)).sum(dim=1).sum(), ((4, 5),)),
    "reshape": (lambda a: (a.reshape(5, 4) ** 3).sum(), ((4, 5),)),
    "one element": (lambda v: (v * v[3] + v[-1]).sum(), ((7,),)),
    "second difference": (lambda v: ((v[2:] - 2 * v[1:-1] + v[:-2]) ** 2).sum(), ((7,),)),
}


@pytest.mark.parametrize("case", sorted(PLANNED))
def test_planned_programs_agree_with_numpy(cc, case):
    """Every program the NumPy backend compiles, ``backend="c"`` compiles: value and
    gradients equal to rounding (the C loops add sums in another order)."""
    function, shapes = PLANNED[case]
    rng = np.random.default_rng(5)
    values = [rng.uniform(-1.5, 1.5, shape) for shape in shapes]
    argnums = tuple(range(len(values)))
    native = S.value_and_grad(function, argnums=argnums, backend="c")
    value, grads = native(*values)
    ref_value, ref_grads = S.value_and_grad(function, argnums=argnums)(*values)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12, atol=1e-13)
    for got, want in zip(grads, ref_grads):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", range(8))
def test_random_programs_over_every_op_compile_on_c(cc, case, rng):
    """The generator's programs over every op it covers (matmul, softmax, reductions,
    indexing, linear algebra, the special functions ...): ``backend="c"`` compiles each,
    as one loop, one scalar function or a plan, and agrees with the NumPy backend on the
    value, its sum and the gradients (rtol 1e-9: sums in another order, math libraries
    within a few ulp)."""
    while True:
        program = random_program(rng, max_steps=6)
        with np.errstate(all="ignore"):
            tape_value = program(*program.tensors())
        value, refs = tensor_graph(tape_value)
        symbols = list(refs)
        wrt = [s for s in symbols if getattr(s, "array_dtype", "float64").startswith("float")]
        total = Sum.of(value, dim=None, keepdim=False)
        try:
            grads = adjoints([(total, sp.S.One)], wrt)
        except NotImplementedError:  # an op without a symbolic adjoint
            continue
        break
    values = [refs[s].detach().numpy() if hasattr(refs[s], "detach") else np.asarray(refs[s]) for s in symbols]
    native, reference = compile_both("c", symbols, [value, total, *grads])
    with np.errstate(all="ignore"):
        got, want = native(*values), reference(*values)
    for name, g, w in zip(want._fields, got, want):  # (the NumPy backend gives a constant 1 as int64)
        w = np.asarray(w)
        assert g.shape == w.shape and (g.dtype == w.dtype or w.dtype.kind in "iu"), name
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=f"{name} of {value}")


def test_plan_steps_run_in_order_and_say_where(cc):
    """A matmul between elementwise work: a C loop for its argument, NumPy for the matmul,
    a C loop for the rest; ``.steps`` and ``.source`` show which ran where, and an
    elementwise value a NumPy step needs is computed once, by the loop before it."""
    a, x = ArrayVar("a", (3, 4)), ArrayVar("x", (4,))
    inner = sp.sin(x) * 2
    product = S.structural_class("matmul").of(a, inner)
    f = S.compile_exprs([a, x], [sp.exp(product) + 1, inner], backend="c", cache=False)
    assert [step.kind for step in f.steps] == ["c", "numpy", "c"]
    assert f.steps[0].computes == [inner] and f.steps[1].computes == [product]
    assert f.source.index("step 0: C loop") < f.source.index("step 1: NumPy") < f.source.index("step 2: C loop")
    values = [np.random.default_rng(2).uniform(-1, 1, (3, 4)), np.linspace(-1, 1, 4)]
    assert_agree(f(*values), S.compile_exprs([a, x], [sp.exp(product) + 1, inner], cache=False)(*values),
                 TOLERANCES[np.float64])


def test_slices_one_loop_cannot_read_go_to_numpy(cc):
    """A strided slice of an adjoint (zeros with values at 1:, then every second element) is
    not read point by point: ``c_fused`` refuses it naming the op, ``"c"`` plans again with
    those slices in NumPy steps."""
    from symgrad.symbolic.forms.structural import Getitem, IndexPut

    v = ArrayVar("v", (5,))
    put = IndexPut.of(sp.sin(v), shape=(6,), index=(slice(1, None),))
    out = Getitem.of(put, index=(slice(None, None, 2),)) * 2
    with pytest.raises(UnsupportedExpressionError, match="index_put"):
        S.compile_exprs([v], [out], backend="c_fused", cache=False)
    native, reference = compile_both("c", [v], [out])
    assert native.backend == "c" and "numpy" in [step.kind for step in native.steps]
    values = np.linspace(-1, 1, 5)
    assert_agree(native(values), reference(values), TOLERANCES[np.float64])


_T = ArrayVar("t", (3, 4, 5))
AXIS_SUMS = {  # name -> (the reduction of an IEEE-exact body, whether NumPy adds in the C loop's order)
    "sum over axis 0": (lambda t: Sum.of((t - 1) * t, dim=(0,), keepdim=False), True),
    "sum over axis 1, keepdim": (lambda t: Sum.of(t * t + 1, dim=(1,), keepdim=True), True),
    "sum over axes 0 and 1": (lambda t: Sum.of(t / 3 + 1, dim=(0, 1), keepdim=False), True),
    "mean over axis 1": (lambda t: S.structural_class("mean").of(sp.Abs(t) * t, dim=(1,), keepdim=False), True),
    "sum over the last axis": (lambda t: Sum.of(t * 2, dim=(2,), keepdim=False), False),
    "mean over the last axes": (lambda t: S.structural_class("mean").of(t / 3, dim=(1, 2), keepdim=True), False),
    "sum_to a row": (lambda t: S.structural_class("sum_to").of(t / 2 - t * t, shape=(5,)), True),
    "sum_to (1, 5)": (lambda t: S.structural_class("sum_to").of(Maximum(t, 0.5), shape=(1, 5)), True),
}


@pytest.mark.parametrize("case", sorted(AXIS_SUMS))
def test_sums_over_axes_are_c_loop_nests(cc, case):
    """A sum or mean over neighbouring axes of an elementwise body is one C loop nest that
    never stores the body; over leading or middle axes it adds rows in NumPy's order (the
    same bits, at special values too), over the last axes in another (equal to rounding)."""
    build, same_order = AXIS_SUMS[case]
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1e308, -1e308, 1.0, -2.5])
    for values in (np.random.default_rng(4).uniform(-2, 2, (3, 4, 5)),
                   np.resize(special, 60).reshape(3, 4, 5), -np.zeros((3, 4, 5))):
        native, reference = compile_both("c", [_T], [build(_T)])
        assert [step.kind for step in native.steps] == ["reduce"]
        with np.errstate(all="ignore"):
            got, want = native(values).out0, reference(values).out0
        assert got.shape == want.shape
        if same_order:
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-300)


def test_slices_in_deep_programs_go_to_numpy(cc):
    """Reading slices point by point recurses over the expression: a program deeper than
    Python's recursion allows is planned with its slices in NumPy steps, not refused."""
    def f(x):
        y = x[1:] * x[:-1]
        for _ in range(700):
            y = symgrad.sin(y) * 0.5 + y
        return y.sum()

    x = np.linspace(0, 1, 50)
    native = S.grad(f, backend="c")
    got = native(x)
    assert native.compiled.backend == "c" and "numpy" in [step.kind for step in native.compiled.steps]
    np.testing.assert_allclose(got, S.grad(f)(x), rtol=1e-12)


def test_plan_takes_integer_index_inputs(cc):
    """Index arrays are inputs of integer dtype, read by NumPy steps; a C step reads an
    integer input as float64."""
    from symgrad.symbolic.core.symbols import Slot

    v, i = ArrayVar("v", (5,)), ArrayVar("i", (3,), "int64")
    picked = S.structural_class("getitem").of(v, i, index=(Slot(0),))
    f = S.compile_exprs([v, i], [sp.exp(picked) * i], backend="c", cache=False)
    values = [np.linspace(0, 1, 5), np.array([4, 0, 4])]
    assert_agree(f(*values), S.compile_exprs([v, i], [sp.exp(picked) * i], cache=False)(*values),
                 TOLERANCES[np.float64])


BAD_INPUTS = [  # (value for x of shape (3,) float64, words the message must contain)
    (np.ones(4), ["'x'", "(4,)", "(3,)"]),
    (np.ones((3, 1)), ["(3, 1)"]),
    (np.arange(3), ["int64"]),
    (np.ones(3, dtype=complex), ["complex128"]),
    (np.ones(3, dtype=np.longdouble), ["float128"]),
]


@pytest.mark.parametrize("value, words", BAD_INPUTS)
def test_wrong_inputs_are_named(cc, value, words):
    x = ArrayVar("x", (3,))
    f = S.compile_exprs([x], [sp.sin(x)], backend="c")
    with pytest.raises(BackendInputError) as info:
        f(value)
    for word in words:
        assert word in str(info.value)


def test_scalar_backend_refuses_arrays_for_scalar_symbols(cc):
    x = sp.Symbol("x", real=True)
    f = S.compile_exprs([x], [sp.sin(x)], backend="c")
    assert f.backend == "c_scalar" and float(f(0.5).out0) == np.sin(0.5)
    with pytest.raises(BackendInputError, match=r"shape \(3,\)"):
        f(np.ones(3))
    with pytest.raises(BackendInputError, match="call_packed"):
        f.call_packed(np.ones(2))


@pytest.mark.parametrize("call", [lambda: S.compile_exprs([sp.Symbol("x")], [sp.Symbol("x")], backend="fortran"),
                                  lambda: S.grad(lambda x: x.sum(), backend="fortran")])
def test_unknown_backend_lists_the_known_ones(call):
    with pytest.raises(ValueError) as info:
        call()
    assert "'fortran'" in str(info.value) and str(backend_names()) in str(info.value)
