"""Compiled functions and their cache: one function for value and all derivatives,
inspectable, cached by structure and never shared between different structures."""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad
import symgrad.nn
import symgrad.optim
import symgrad.nn.functional as F
from symgrad.symbolic import (ArrayVar, CompiledFunction, compile_cache_clear, compile_cache_info, compile_exprs,
                              gradient, last_compiled, set_compile_cache_size)
from symgrad.symbolic.core.symbols import shape_of


@pytest.fixture(autouse=True)
def fresh_cache():
    compile_cache_clear()
    yield
    set_compile_cache_size(256)
    compile_cache_clear()


def test_one_function_returns_value_and_gradients_with_names():
    w, x = ArrayVar("fc.weight", (2, 3)), ArrayVar("x", (3,))
    from symgrad.symbolic.forms.structural import Matmul, Sum

    loss = Sum.of(sp.tanh(Matmul.of(w, x)) ** 2)
    grads = gradient(loss, [w, x])
    f = compile_exprs([w, x], [loss] + grads, output_names=["loss", "grad_w", "grad_x"])
    assert f.backend == "auto" and isinstance(f.numpy, CompiledFunction)  # the default: NumPy, tiered up to C
    assert f.inputs == ["fc_weight", "x"] and f.outputs == ["loss", "grad_w", "grad_x"]
    assert f.source.startswith("def compiled(fc_weight, x):") and "matmul(fc_weight, x)" in f.source
    assert f.source.count("matmul(fc_weight, x)") == 1  # shared by value and gradients: computed once
    assert set(f.exprs) == {"loss", "grad_w", "grad_x"} and f.exprs["loss"] == loss
    W, X = np.arange(6.0).reshape(2, 3) / 10, np.array([1.0, -1.0, 0.5])
    out = f(W, X)
    np.testing.assert_allclose(f(x=X, fc_weight=W).grad_w, out.grad_w)
    t = np.tanh(W @ X)
    np.testing.assert_allclose(out.loss, np.sum(t ** 2))
    np.testing.assert_allclose(out.grad_w, np.outer(2 * t * (1 - t ** 2), X))
    np.testing.assert_allclose(out.grad_x, W.T @ (2 * t * (1 - t ** 2)))
    assert "\\tanh" in f._repr_latex_()
    with pytest.raises(TypeError, match="unknown input 'y'"):
        f(W, y=X)


def test_outputs_are_fresh_arrays_of_the_declared_shape_and_dtype():
    x = ArrayVar("x", (3,), "float32")
    f = compile_exprs([x], [x, sp.Integer(0), 2 * x], output_shapes=[(3,), (3,), (3,)],
                      output_dtypes=["float32", "float32", None], cache=False)
    data = np.ones(3, np.float32)
    same, zero, double = f(data)
    assert same is not data and same.flags.writeable and zero.shape == (3,) and zero.dtype == np.float32
    assert double.dtype == np.float32  # Python-number constants keep float32 (NumPy 2 promotion)


def test_cache_counts_hits_and_misses():
    x = ArrayVar("x", (3,))
    for _ in range(3):
        compile_exprs([x], [sp.exp(x) * 2])
    info = compile_cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 1, 1)


def test_cache_is_bounded_least_recently_used():
    set_compile_cache_size(2)
    xs = [ArrayVar("x", (n,)) for n in (1, 2, 3)]
    for x in xs:
        compile_exprs([x], [x + 1])
    assert compile_cache_info().currsize == 2
    compile_exprs([xs[2]], [xs[2] + 1])  # still cached
    compile_exprs([xs[0]], [xs[0] + 1])  # was evicted
    info = compile_cache_info()
    assert (info.hits, info.misses) == (1, 4)


def _program(variant: str):
    """Tape graphs that differ from the base in exactly one structural detail."""
    dtype = symgrad.float32 if variant == "dtype" else symgrad.float64
    n = 5 if variant == "shape" else 4
    x = symgrad.tensor(np.linspace(0.1, 0.9, 3 * n).reshape(3, n), dtype=dtype, requires_grad=True, name="x")
    constant = 3.0 if variant == "constant" else 2.0
    dim = 0 if variant == "axis" else 1
    index = (slice(0, 2),) if variant == "slice" else (slice(1, 3),)
    return x, ((x * constant).exp().sum(dim=dim)[index] ** 2).sum()


VARIANTS = ["constant", "dtype", "shape", "axis", "slice"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_graphs_differing_in_one_detail_never_share_code(variant):
    with symgrad.backward_engine("symbolic"):
        x, loss = _program("base")
        loss.backward()
        base = last_compiled()[0]
        x2, loss2 = _program("base")
        loss2.backward()
        assert last_compiled()[0] is base  # same structure, new values: cache hit
        x3, loss3 = _program(variant)
        loss3.backward()
        other = last_compiled()[0]
    assert other is not base
    info = compile_cache_info()
    assert (info.hits, info.misses) == (1, 2)
    with symgrad.backward_engine("tape"):
        x4, loss4 = _program(variant)
        loss4.backward()
    np.testing.assert_allclose(x3.grad.numpy(), x4.grad.numpy(), rtol=1e-5)


def test_constants_of_different_python_types_are_different_keys():
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    with symgrad.backward_engine("symbolic"):
        (x * 2).sum().backward()
        (x * 2.5).sum().backward()
        (x * 2.0).sum().backward()
    assert compile_cache_info().misses == 3
    np.testing.assert_allclose(x.grad.numpy(), [6.5, 6.5])


def test_training_loop_compiles_once():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(20, 1))
    target = 3 * data + 1 + rng.normal(scale=0.01, size=(20, 1))
    model = symgrad.nn.Linear(1, 1)
    optimizer = symgrad.optim.SGD(model.parameters(), lr=0.1)
    with symgrad.backward_engine("symbolic"):
        for _ in range(100):
            optimizer.zero_grad()
            loss = ((model(symgrad.tensor(data)) - symgrad.tensor(target)) ** 2).mean()
            loss.backward()
            optimizer.step()
    info = compile_cache_info()
    assert (info.misses, info.hits) == (1, 99)
    np.testing.assert_allclose(model.weight.detach().numpy(), [[3.0]], atol=0.05)


def test_the_tutorials_linear_regression_compiles_once_in_100_epochs():
    """The tutorial's loop as written (issue 3: 1 miss, 99 hits): x = 1..5, y = 2x + 1,
    a = b = 1, lr = 0.01, ``.grad.zero_()`` then ``backward()`` then an update under
    ``no_grad``."""
    x = symgrad.tensor([1, 2, 3, 4, 5], dtype=symgrad.float)
    y = symgrad.tensor([3, 5, 7, 9, 11], dtype=symgrad.float)
    a = symgrad.tensor([1], dtype=symgrad.float, requires_grad=True)
    b = symgrad.tensor([1], dtype=symgrad.float, requires_grad=True)
    with symgrad.backward_engine("symbolic"):
        for _ in range(100):
            loss = ((a * x + b - y) ** 2).mean()
            if a.grad is not None:
                a.grad.zero_()
                b.grad.zero_()
            loss.backward()
            with symgrad.no_grad():
                a -= 0.01 * a.grad
                b -= 0.01 * b.grad
    info = compile_cache_info()
    assert (info.misses, info.hits) == (1, 99)
    assert (a.item(), b.item()) == (pytest.approx(1.949, abs=1e-3), pytest.approx(1.183, abs=1e-3))


def test_new_labels_and_index_arrays_reuse_the_compiled_function():
    rng = np.random.default_rng(3)
    w = symgrad.tensor(rng.normal(size=(4, 3)), requires_grad=True, name="w")
    grads = {}
    for engine in ("symbolic", "tape"):
        compile_cache_clear()
        out = []
        for step in range(5):
            batch = np.random.default_rng(step)
            x = symgrad.tensor(batch.normal(size=(6, 4)), name="x")
            labels = symgrad.tensor(batch.integers(0, 3, size=6))
            w.grad = None
            with symgrad.backward_engine(engine):
                loss = F.cross_entropy(x @ w, labels) + (x @ w)[batch.integers(0, 6, size=2), 1].sum()
                loss.backward()
            out.append(w.grad.numpy())
        grads[engine] = out
        if engine == "symbolic":
            assert (compile_cache_info().misses, compile_cache_info().hits) == (1, 4)
            assert "idx0" in last_compiled()[0].source
    for s, t in zip(grads["symbolic"], grads["tape"]):
        np.testing.assert_allclose(s, t, rtol=1e-12)


def test_boolean_masks_are_inputs_and_only_their_count_is_structure():
    x = symgrad.tensor(np.linspace(-1, 1, 8), requires_grad=True, name="x")
    masks = [np.arange(8) % 2 == 0, np.arange(8) < 4, np.arange(8) < 3]  # 4, 4 and 3 true elements
    results = []
    with symgrad.backward_engine("symbolic"):
        for mask in masks:
            x.grad = None
            (x[symgrad.tensor(mask)] ** 3).sum().backward()
            results.append(x.grad.numpy())
    assert (compile_cache_info().misses, compile_cache_info().hits) == (2, 1)
    for mask, got in zip(masks, results):
        np.testing.assert_allclose(got, np.where(mask, 3 * x.detach().numpy() ** 2, 0.0))


# ============================================================================ lean generated NumPy
# Each case: input shapes, the expression over them, the same computation written in NumPy
# (the independent reference), and a fragment the generated source must contain (the new
# printing, so the test fails if the compiler falls back to the copying forwards).
def _lean_cases():
    from symgrad.symbolic.forms.stable import sigmoid, softplus
    from symgrad.symbolic.forms.structural import Getitem, IndexPut, Matmul, Permute, Reshape, Squeeze, Transpose, Unsqueeze

    def put_sum(u, v, w):
        out = np.zeros((4, 3), np.result_type(u, v, w))
        out[1:] += u
        out[:, 0] += v
        return out + w

    return {
        "matmul-transposed-elementwise": (
            [(3, 2), (3, 1), (3, 1), (3, 1)],
            lambda X, Y, a, b: Matmul.of(Transpose.of(X, dim0=0, dim1=1), -Y + a / b),
            lambda X, Y, a, b: X.T @ (-Y + a / b), "matmul(numpy.swapaxes(X, 0, 1), a/b - Y)"),
        "transpose-of-elementwise": (
            [(3, 2), (3, 2)], lambda X, Y: Transpose.of(X ** 2 - Y, dim0=1, dim1=0),
            lambda X, Y: (X ** 2 - Y).T, "numpy.swapaxes("),
        "getitem-slices-of-elementwise": (
            [(4, 3), (4, 3)], lambda X, Y: Getitem.of(-X + Y / 2, index=(slice(1, None), None, slice(None, None, 2))),
            lambda X, Y: (-X + Y / 2)[1:, None, ::2], "[1:, None, ::2]"),
        "getitem-int-ellipsis-times": (
            [(4, 3), (4,)], lambda X, Y: Getitem.of(X, index=(Ellipsis, -1)) * Y,
            lambda X, Y: X[..., -1] * Y, "X[..., -1]"),
        "permute-of-elementwise": (
            [(2, 3, 4)], lambda X: Permute.of(X * 2 + 1, dims=(2, 0, 1)),
            lambda X: np.transpose(X * 2 + 1, (2, 0, 1)), "numpy.transpose(1 + 2*X, (2, 0, 1))"),
        "reshape-unsqueeze-squeeze": (
            [(2, 3), (2, 1, 3)],
            lambda A, B: Reshape.of(A - 1, shape=(3, 2)) + Reshape.of(Unsqueeze.of(A, dim=0), shape=(3, 2))
            + Reshape.of(Squeeze.of(B, dim=1) * A, shape=(3, 2)),
            lambda A, B: (A - 1).reshape(3, 2) + A[None].reshape(3, 2) + (B.squeeze(1) * A).reshape(3, 2),
            "numpy.reshape("),
        "index-put-sum": (
            [(3, 3), (4,), (4, 3)],
            lambda u, v, w: IndexPut.of(u * u, shape=(4, 3), index=(slice(1, None),))
            + IndexPut.of(v - 1, shape=(4, 3), index=(slice(None), 0)) + w,
            lambda u, v, w: put_sum(u * u, v - 1, w), "[:, 0] += "),
        "half-integer-powers": (
            [(5,)], lambda a: (a ** 2 + 1) ** sp.Rational(3, 2) + (a ** 2 + 1) ** sp.Float(0.5)
            - (a ** 2 + 1) ** sp.Rational(-5, 2),
            lambda a: (a ** 2 + 1) ** 1.5 + (a ** 2 + 1) ** 0.5 - (a ** 2 + 1) ** -2.5, "numpy.sqrt("),
        "sigmoid-softplus-shared": (
            [(6,), (6,)], lambda z, y: sigmoid(z * y) - softplus(z * y) * y,
            lambda z, y: 1 / (1 + np.exp(-z * y)) - np.log1p(np.exp(z * y)) * y, "numpy.log1p(_t"),
    }


LEAN_CASES = _lean_cases()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(LEAN_CASES))
def test_lean_printing_agrees_with_numpy_and_keeps_float32(case, dtype):
    shapes, build, reference, fragment = LEAN_CASES[case]
    rng = np.random.default_rng(11)
    symbols = [ArrayVar(n, s, np.dtype(dtype).name) for n, s in zip(["X", "Y", "a", "b"], shapes)]
    arrays = [rng.uniform(0.5, 2.0, s).astype(dtype) for s in shapes]
    expr = build(*symbols)
    f = compile_exprs(symbols, [expr], cache=False)
    assert fragment in f.source, f.source
    got = f(*arrays).out0
    assert got.dtype == dtype
    tolerance = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got, reference(*[a.astype(np.float64) for a in arrays]), rtol=tolerance)


def test_half_integer_powers_share_one_square_root():
    a = ArrayVar("a", (5,))
    b = a ** 2 + 1
    source = compile_exprs([a], [b ** sp.Rational(3, 2), b ** sp.Float(0.5), b ** sp.Rational(-1, 2)],
                           cache=False).source
    assert source.count("numpy.sqrt(") == 1 and "**1.5" not in source and "**(3/2)" not in source, source


# views the generated code may return for an input: each output must come back a fresh,
# writeable array that shares no memory with any input or other output
def _view_cases():
    from symgrad.symbolic.forms.structural import Getitem, Permute, Reshape, Transpose

    x, X = ArrayVar("x", (6,)), ArrayVar("X", (2, 3))
    return {
        "input-itself": ([x], [x]),
        "slice": ([x], [Getitem.of(x, index=(slice(1, None),))]),
        "whole-subscript": ([x], [Getitem.of(x, index=(Ellipsis,))]),
        "transpose": ([X], [Transpose.of(X, dim0=0, dim1=1)]),
        "permute": ([X], [Permute.of(X, dims=(1, 0))]),
        "reshape": ([X], [Reshape.of(X, shape=(6,))]),
        "same-output-twice": ([x], [2 * x, 2 * x]),
        "view-and-its-base": ([x], [Getitem.of(x + 1, index=(slice(2, None),)), x + 1]),
    }


VIEW_CASES = _view_cases()


@pytest.mark.parametrize("case", sorted(VIEW_CASES))
def test_outputs_never_alias_inputs_or_each_other_and_are_writeable(case):
    symbols, outputs = VIEW_CASES[case]
    rng = np.random.default_rng(5)
    arrays = [rng.normal(size=shape_of(s)) for s in symbols]
    kept = [a.copy() for a in arrays]
    out = compile_exprs(symbols, outputs, cache=False)(*arrays)
    for i, o in enumerate(out):
        assert o.flags.writeable
        assert not any(np.shares_memory(o, a) for a in arrays), (case, i)
        assert not any(np.shares_memory(o, p) for p in out[:i]), (case, i)
        o[...] = 1e9  # changing a result changes no caller's input
    for a, k in zip(arrays, kept):
        np.testing.assert_array_equal(a, k)


TRANSFORM_CASES = {
    # grad of x*y with respect to x is y itself, an input of the compiled function
    "grad-is-an-input": (lambda x, y: (x * y).sum(), (0,)),
    "grad-is-a-slice": (lambda x, y: (x[1:] * y[1:]).sum() + (y[0] * x[0]).sum(), (0, 1)),
    "grad-is-a-transpose": (lambda x, y: (x * y.T.T).sum(), (0, 1)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(TRANSFORM_CASES))
def test_transform_results_never_change_the_callers_inputs(case, dtype):
    f, argnums = TRANSFORM_CASES[case]
    rng = np.random.default_rng(9)
    x, y = (rng.normal(size=(3, 4)).astype(dtype) for _ in range(2))
    kept = [x.copy(), y.copy()]
    value, grads = symgrad.value_and_grad(f, argnums)(x, y)
    np.testing.assert_allclose(grads[0], y, rtol=1e-6)  # d/dx of sum(x*y) is y in every case
    for g in grads:
        assert g.dtype == dtype and g.flags.writeable
        assert not np.shares_memory(g, x) and not np.shares_memory(g, y)
        g += 100
    np.testing.assert_array_equal(x, kept[0])
    np.testing.assert_array_equal(y, kept[1])


def test_backward_gradients_never_alias_other_inputs():
    y = np.random.default_rng(2).normal(size=5)
    x = symgrad.tensor(np.ones(5), requires_grad=True, name="x")
    with symgrad.backward_engine("symbolic"):
        (x * symgrad.tensor(y)).sum().backward()
    assert not np.shares_memory(x.grad.numpy(), y)
    np.testing.assert_array_equal(x.grad.numpy(), y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_shared_sigmoid_softplus_are_stable_on_a_wide_sweep(dtype):
    """BCE with logits: loss and gradient use sigmoid(z) and softplus(z) of one z, which
    share one exp(-|z|); finite and accurate for |z| up to 1e3 (reference: logaddexp)."""
    z = np.concatenate([np.linspace(-1e3, 1e3, 2001), np.linspace(-30, 30, 601)]).astype(dtype)
    y = (np.random.default_rng(4).uniform(size=z.shape) < 0.5).astype(dtype)
    vg = symgrad.value_and_grad(lambda z, y: F.binary_cross_entropy_with_logits(z, y, reduction="sum"))
    loss, grad = vg(z, y)
    assert vg.source.count("numpy.exp(-numpy.abs(") == 1, vg.source
    assert "sigmoid(" not in vg.source and "softplus(" not in vg.source  # both computed from it
    assert loss.dtype == dtype and grad.dtype == dtype
    z64, y64 = z.astype(np.float64), y.astype(np.float64)
    want_grad = np.exp(-np.logaddexp(0, -z64)) - y64
    want_loss = np.sum(np.logaddexp(0, z64) - z64 * y64)
    assert np.all(np.isfinite(grad)) and np.isfinite(loss)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(grad, want_grad, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(loss, want_loss, rtol=rtol)


QUIET_CASES = {  # expression of x, a point where NumPy warns (divide, invalid, overflow)
    "log-at-zero": (lambda x: sp.log(x), 0.0),
    "sqrt-below-zero": (lambda x: sp.sqrt(x), -1.0),
    "exp-overflow": (lambda x: sp.exp(x), 1000.0),
    "unused-branch": (lambda x: sp.Piecewise((sp.log(x), x > 0), (x, True)), -2.0),
}


@pytest.mark.parametrize("outer", [None, "raise"])
@pytest.mark.parametrize("case", sorted(QUIET_CASES))
def test_compiled_code_does_not_warn_and_restores_the_callers_error_state(case, outer):
    import warnings

    build, point = QUIET_CASES[case]
    x = ArrayVar("x", (2,))
    f = compile_exprs([x], [build(x)], cache=False)
    before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all=outer) if outer else np.errstate():
            inside = np.geterr()
            f(np.full(2, point))
            assert np.geterr() == inside  # the caller's own settings are back
    assert np.geterr() == before


def test_an_error_inside_compiled_code_shows_the_generated_line():
    """The generated source is registered in ``linecache`` for as long as its function
    lives, so a traceback through it shows the failing line (issue 15)."""
    import gc
    import linecache
    import traceback

    from symgrad.symbolic.core.symbols import ArrayVar

    x, y = ArrayVar("x", (2,)), ArrayVar("y", (2,))
    compiled = compile_exprs([x, y], [x * y + 1])
    with pytest.raises(ValueError) as caught:
        compiled.outputs_of([np.ones(2), np.ones(3)])  # shapes the generated code cannot broadcast
    shown = "".join(traceback.format_exception(caught.value))
    frame = [f for f in traceback.extract_tb(caught.value.__traceback__) if f.filename.startswith("<symgrad compiled")]
    assert frame and frame[-1].line and "x*y" in frame[-1].line.replace(" ", ""), shown
    filename = frame[-1].filename
    del compiled, caught, frame
    compile_cache_clear()  # the cache's reference was the last one
    gc.collect()
    assert filename not in linecache.cache  # forgotten with its function


def _w1_like(m, x, y, z):
    """The benchmarks' W1 formula: many shared factors, several of them dead before return."""
    return (m.sin(x * y) * m.exp(-z) + m.log(1 + x * x) * m.tanh(y) + m.cos(z) * (y * y + z * z + 1) ** 1.5).sum()


def _rosenbrock(x):
    """Slices and an in-place accumulated adjoint (``_t[1:] += ...``)."""
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def _without_dels(compiled: CompiledFunction):
    """The generated function with its ``del`` statements removed, loaded like the original."""
    import ast

    from symgrad.symbolic.forms.structural import numpy_namespace

    tree = ast.parse(compiled.source)
    tree.body[0].body = [s for s in tree.body[0].body if not isinstance(s, ast.Delete)]
    namespace = {"numpy": np, "functools": __import__("functools"), **numpy_namespace()}
    exec(compile(ast.unparse(tree), "<no dels>", "exec"), namespace)
    return namespace[compiled.name]


@pytest.mark.parametrize("program, arity", [(lambda x, y, z: _w1_like(symgrad, x, y, z), 3), (_rosenbrock, 1)],
                         ids=["w1_formula", "rosenbrock"])
def test_generated_code_frees_each_temporary_after_its_last_read(program, arity):
    import ast

    rng = np.random.default_rng(5)
    args = [rng.uniform(-1.0, 1.0, 50) for _ in range(arity)]
    value_and_grad = symgrad.value_and_grad(program, argnums=tuple(range(arity)))
    value, grads = value_and_grad(*args)
    compiled = value_and_grad.compiled
    *steps, returned = ast.parse(compiled.source).body[0].body

    def read(node):
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
                and n.id.startswith("_t")}

    deleted: dict = {}
    for i, step in enumerate(steps):
        if isinstance(step, ast.Delete):
            for target in step.targets:
                assert target.id not in deleted, f"{target.id} deleted twice"
                deleted[target.id] = i
    assert deleted, compiled.source  # both programs have temporaries that die before the return
    for name, at in deleted.items():
        later = [ast.unparse(s) for s in steps[at + 1:] + [returned] if name in read(s)]
        assert not later, f"{name} is read after its del: {later}"
        assert name in read(steps[at - 1]), f"{name} is not deleted right after its last read"
    kept = read(returned)
    for name in set().union(*(read(s) for s in steps if not isinstance(s, ast.Delete))) - kept:
        assert name in deleted, f"{name} is never read by the return, yet it is not freed"
    assert not kept & set(deleted)
    # the values are those of the same code without its dels, to the last bit
    reference = _without_dels(compiled)(*args)
    for got, expected in zip([value, *grads], reference):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
