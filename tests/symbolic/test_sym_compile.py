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


@pytest.fixture(autouse=True)
def fresh_cache():
    compile_cache_clear()
    yield
    set_compile_cache_size(256)
    compile_cache_clear()


def test_one_function_returns_value_and_gradients_with_names():
    w, x = ArrayVar("fc.weight", (2, 3)), ArrayVar("x", (3,))
    from symgrad.symbolic.structural import Matmul, Sum

    loss = Sum.of(sp.tanh(Matmul.of(w, x)) ** 2)
    grads = gradient(loss, [w, x])
    f = compile_exprs([w, x], [loss] + grads, output_names=["loss", "grad_w", "grad_x"])
    assert isinstance(f, CompiledFunction)
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
