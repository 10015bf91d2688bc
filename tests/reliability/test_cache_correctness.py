"""The compile cache is never wrong.  ``tests/symbolic/test_sym_compile.py`` checks one
program varied in a constant, a dtype, a shape, an axis and a slice; this extends it to a
table of pairs across ops and attributes, run in both orders through one warm cache, and
to a hypothesis fuzz of random programs, every result compared with the tape engine.

Pairs that differ in an index array's *values* (or a mask with the same count, or new
labels) are expected to share code -- those values are inputs of the compiled function --
and still give the right numbers.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad
import symgrad.nn.functional as F
from symgrad.symbolic import compile_cache_info, last_compiled

D = np.linspace(0.25, 2.0, 12)


def data(shape, dtype=np.float64, offset=0.0):
    return symgrad.tensor((np.resize(D, int(np.prod(shape))) + offset).reshape(shape).astype(dtype))


def leaf(shape, dtype=np.float64):
    return symgrad.tensor(np.resize(D[::-1], int(np.prod(shape))).reshape(shape).astype(dtype) - 1.0,
                          requires_grad=True, name="x")


# (id, program a, program b, shared): a program returns (leaves, scalar loss)
def unary(shape, fn, dtype=np.float64):
    def program():
        x = leaf(shape, dtype)
        return [x], fn(x)
    return program


def with_data(shape, dshape, fn, dtype=np.float64, ddtype=np.float64):
    def program():
        x = leaf(shape, dtype)
        d = data(dshape, ddtype).requires_grad_()
        return [x, d], fn(x, d)
    return program


PAIRS = [
    # constants
    ("x*2 vs x*3", unary((3, 4), lambda x: (x * 2.0).exp().sum()), unary((3, 4), lambda x: (x * 3.0).exp().sum()), False),
    ("x*2 vs x*2.5", unary((3, 4), lambda x: (x * 2).sin().sum()), unary((3, 4), lambda x: (x * 2.5).sin().sum()), False),
    ("c=0.1 vs next float", unary((4,), lambda x: ((x * 0.1 - x * 0.1) * 2.0 ** 56).sum()),  # 1 ulp, scaled to 1
     unary((4,), lambda x: ((x * float(np.nextafter(0.1, 1)) - x * 0.1) * 2.0 ** 56).sum()), False),
    ("x+1 vs x+1e-300", unary((4,), lambda x: ((x + 1.0) ** 2).sum()), unary((4,), lambda x: ((x + 1e-300) ** 2).sum()),
     False),
    ("x**2 vs x**3", unary((4,), lambda x: (x ** 2).sum()), unary((4,), lambda x: (x ** 3).sum()), False),
    ("x**2 vs x**2.0001", unary((4,), lambda x: (x.abs() ** 2).sum()), unary((4,), lambda x: (x.abs() ** 2.0001).sum()),
     False),
    ("clamp bounds", unary((3, 4), lambda x: (x.clamp(-0.5, 0.5) * x).sum()),
     unary((3, 4), lambda x: (x.clamp(-0.25, 0.75) * x).sum()), False),
    ("softplus beta", unary((4,), lambda x: F.softplus(x, beta=1.0).sum()), unary((4,), lambda x: F.softplus(x, beta=2.0).sum()),
     False),
    ("leaky relu slope", unary((4,), lambda x: symgrad.where(x > 0, x, x * 0.01).sum()),
     unary((4,), lambda x: symgrad.where(x > 0, x, x * 0.2).sum()), False),
    # dtypes
    ("leaf float32 vs float64", unary((3, 4), lambda x: x.tanh().sum(), np.float32),
     unary((3, 4), lambda x: x.tanh().sum(), np.float64), False),
    ("data float32 vs float64", with_data((3, 4), (3, 4), lambda x, d: (x * d).sin().sum(), np.float64, np.float32),
     with_data((3, 4), (3, 4), lambda x, d: (x * d).sin().sum(), np.float64, np.float64), False),
    # shapes
    ("(3,4) vs (4,3)", unary((3, 4), lambda x: (x @ data((4, 2))).exp().sum()),
     unary((4, 3), lambda x: (x @ data((3, 2))).exp().sum()), False),
    ("broadcast (3,1) vs (1,4)", with_data((3, 4), (3, 1), lambda x, d: (x * d).sum()),
     with_data((3, 4), (1, 4), lambda x, d: (x * d).sum()), False),
    ("broadcast (4,) vs (3,4)", with_data((3, 4), (4,), lambda x, d: (x * d).exp().sum()),
     with_data((3, 4), (3, 4), lambda x, d: (x * d).exp().sum()), False),
    ("reshape (2,6) vs (6,2)", unary((3, 4), lambda x: (x.reshape(2, 6) @ data((6, 1))).sum()),
     unary((3, 4), lambda x: (x.reshape(6, 2) @ data((2, 1))).sum()), False),
    ("expand (2,3,4) vs (3,3,4)", unary((3, 4), lambda x: (x.expand(2, 3, 4) * data((2, 3, 4))).sum()),
     unary((3, 4), lambda x: (x.expand(3, 3, 4) * data((3, 3, 4))).sum()), False),
    # axes
    ("sum dim 0 vs 1", unary((3, 4), lambda x: (x.sum(dim=0) ** 2).sum()), unary((3, 4), lambda x: (x.sum(dim=1) ** 2).sum()),
     False),
    ("keepdim", unary((3, 4), lambda x: (x * x.sum(dim=1, keepdim=True)).sum()),
     unary((3, 4), lambda x: (x.T * x.sum(dim=1)).sum()), False),
    ("mean dim 0 vs 1", unary((4, 4), lambda x: (x.mean(dim=0) * data((4,))).sum()),
     unary((4, 4), lambda x: (x.mean(dim=1) * data((4,))).sum()), False),
    ("max dim 0 vs 1", unary((3, 4), lambda x: (x.max(dim=0).values ** 2).sum()),
     unary((3, 4), lambda x: (x.max(dim=1).values ** 2).sum()), False),
    ("softmax dim 0 vs 1", unary((4, 4), lambda x: (x.softmax(dim=0) * data((4, 4))).sum()),
     unary((4, 4), lambda x: (x.softmax(dim=1) * data((4, 4))).sum()), False),
    ("log_softmax dim 1 vs -1 of 3-d", unary((2, 3, 2), lambda x: (x.log_softmax(dim=1) * data((2, 3, 2))).sum()),
     unary((2, 3, 2), lambda x: (x.log_softmax(dim=-1) * data((2, 3, 2))).sum()), False),
    ("logsumexp dim 0 vs 1", unary((4, 4), lambda x: (x.logsumexp(dim=0) * data((4,))).sum()),
     unary((4, 4), lambda x: (x.logsumexp(dim=1) * data((4,))).sum()), False),
    ("transpose vs permute identity", unary((4, 4), lambda x: (x.transpose(0, 1) * data((4, 4))).sum()),
     unary((4, 4), lambda x: (x.permute(0, 1) * data((4, 4))).sum()), False),
    ("cat dim 0 vs 1", unary((2, 2), lambda x: (symgrad.cat([x, x * 2], dim=0).reshape(8) * data((8,))).sum()),
     unary((2, 2), lambda x: (symgrad.cat([x, x * 2], dim=1).reshape(8) * data((8,))).sum()), False),
    ("stack dim 0 vs 1", unary((2, 2), lambda x: (symgrad.stack([x, x.exp()], dim=0).reshape(8) * data((8,))).sum()),
     unary((2, 2), lambda x: (symgrad.stack([x, x.exp()], dim=1).reshape(8) * data((8,))).sum()), False),
    ("unsqueeze 0 vs 1", unary((3,), lambda x: (x.unsqueeze(0) * data((3, 3))).sum() + (x.unsqueeze(0) ** 2).sum()),
     unary((3,), lambda x: (x.unsqueeze(1) * data((3, 3))).sum() + (x.unsqueeze(1) ** 2).sum()), False),
    # slices and indices
    ("slice 1:3 vs 0:2", unary((4, 3), lambda x: (x[1:3] * data((2, 3))).sum()),
     unary((4, 3), lambda x: (x[0:2] * data((2, 3))).sum()), False),
    ("step 1 vs 2", unary((6,), lambda x: (x[0:4:2] * data((2,))).sum() + (x ** 2).sum()),
     unary((6,), lambda x: (x[1:5:2] * data((2,))).sum() + (x ** 2).sum()), False),
    ("index 0 vs -1", unary((3, 4), lambda x: (x[0] * data((4,))).sum()), unary((3, 4), lambda x: (x[-1] * data((4,))).sum()),
     False),
    ("column vs row", unary((4, 4), lambda x: (x[:, 1] * data((4,))).sum()), unary((4, 4), lambda x: (x[1] * data((4,))).sum()),
     False),
    ("ellipsis vs full", unary((2, 3, 2), lambda x: (x[..., 0] ** 2).sum()), unary((2, 3, 2), lambda x: (x[0, ...] ** 2).sum()),
     False),
    ("None position", unary((3,), lambda x: (x[None, :] * data((3, 3))).sum()),
     unary((3,), lambda x: (x[:, None] * data((3, 3))).sum()), False),
    ("setitem slot", unary((4,), lambda x: _setitem(x, 1).sum()), unary((4,), lambda x: _setitem(x, 2).sum()), False),
    # values that are inputs of the code: shared, and still right
    ("index array values", unary((5, 2), lambda x: (x[symgrad.tensor([0, 2, 2])] ** 2).sum()),
     unary((5, 2), lambda x: (x[symgrad.tensor([4, 1, 3])] ** 2).sum()), True),
    ("mask positions, same count", unary((6,), lambda x: (x[symgrad.tensor(np.arange(6) % 2 == 0)] ** 3).sum()),
     unary((6,), lambda x: (x[symgrad.tensor(np.arange(6) < 3)] ** 3).sum()), True),
    ("labels", unary((4, 3), lambda x: F.cross_entropy(x, symgrad.tensor([0, 1, 2, 0]))),
     unary((4, 3), lambda x: F.cross_entropy(x, symgrad.tensor([2, 2, 1, 0]))), True),
    ("data values", with_data((3,), (3,), lambda x, d: (x * d).sum()),
     with_data((3,), (3,), lambda x, d: (x * (d + 0.0)).sum()), False),
]


def _setitem(x, position):
    y = x * 1.0
    y[position] = 7.0
    return y * y


def _gradients(program, engine: str) -> list:
    leaves, loss = program()
    with symgrad.backward_engine(engine):
        loss.backward()
    return [t.grad.numpy() for t in leaves]


def _close(got: list, want: list) -> None:
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        tol = 1e-5 if g.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("order", ["a-then-b", "b-then-a"])
@pytest.mark.parametrize("first, second, shared", [p[1:] for p in PAIRS], ids=[p[0] for p in PAIRS])
def test_programs_differing_in_one_detail_never_share_code(first, second, shared, order, fresh_cache, figures):
    if order == "b-then-a":
        first, second = second, first
    want_first, want_second = _gradients(first, "tape"), _gradients(second, "tape")
    _close(_gradients(first, "symbolic"), want_first)
    code_first = last_compiled()[0]
    misses = compile_cache_info().misses
    _close(_gradients(second, "symbolic"), want_second)
    code_second = last_compiled()[0]
    assert (code_second is code_first) == shared
    assert compile_cache_info().misses == misses + (0 if shared else 1)
    _close(_gradients(first, "symbolic"), want_first)  # the first entry was not overwritten
    assert last_compiled()[0] is code_first
    figures.add("cache: program pairs checked (both orders)", 1)


# ---------------------------------------------------------------------------- fuzz
SHAPES = [(3, 4), (4, 3), (2, 6), (12,), (2, 3, 2)]
CONSTANTS = [2, 3, 2.0, 0.5, -1.5, 1e-3, 7]
UNARY = {
    "exp": lambda t: (t * 0.1).exp(), "sin": lambda t: t.sin(), "tanh": lambda t: t.tanh(),
    "sigmoid": lambda t: t.sigmoid(), "square": lambda t: t ** 2, "softplus": lambda t: F.softplus(t),
}


@st.composite
def programs(draw):
    shape = draw(st.sampled_from(SHAPES))
    ndim = len(shape)
    return {
        "shape": shape,
        "dtype": draw(st.sampled_from([np.float32, np.float64])),
        "constant": draw(st.sampled_from(CONSTANTS)),
        "op": draw(st.sampled_from(sorted(UNARY))),
        "axis": draw(st.sampled_from([None] + list(range(-ndim, ndim)))),
        "reduce": draw(st.sampled_from(["sum", "mean", "logsumexp", "softmax"])),
        "slice": draw(st.sampled_from([None, slice(0, 1), slice(1, None), slice(None, None, 2), -1])),
    }


def _build(spec):
    x = symgrad.tensor(np.resize(D, int(np.prod(spec["shape"]))).reshape(spec["shape"]).astype(spec["dtype"]) - 1.0,
                       requires_grad=True, name="x")
    y = UNARY[spec["op"]](x * spec["constant"])
    if spec["slice"] is not None:
        y = y[spec["slice"]]
    axis = spec["axis"] if spec["axis"] is None or spec["axis"] < y.ndim and spec["axis"] >= -y.ndim else None
    if spec["reduce"] == "sum":
        y = y.sum(dim=axis)
    elif spec["reduce"] == "mean":
        y = y.mean(dim=axis)
    elif spec["reduce"] == "logsumexp":
        y = y.logsumexp(dim=axis if axis is not None else 0)
    else:
        y = y.softmax(dim=axis if axis is not None else 0) * y
    return x, (y * y).sum()


def _symbolic_matches_the_tape(spec) -> None:
    grads = {}
    for engine in ("tape", "symbolic"):
        x, loss = _build(spec)
        with symgrad.backward_engine(engine), np.errstate(over="ignore", under="ignore"):
            loss.backward()
        grads[engine] = x.grad.numpy()
    _close([grads["symbolic"]], [grads["tape"]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=programs())
def test_fuzzed_programs_through_one_warm_cache_match_the_tape(spec, figures):
    """Random programs share one cache (nothing is cleared between examples): whatever
    is a hit must be the right code."""
    _symbolic_matches_the_tape(spec)
    figures.add("cache: random programs fuzzed through one warm cache", 1)


@pytest.fixture
def c_tier(monkeypatch):
    """``backend="auto"`` on C for every function compiled in the test (a C compiler is
    needed; the cache starts empty, so nothing compiled before on NumPy answers)."""
    from symgrad.symbolic.codegen.backends import CompilerNotFoundError
    from symgrad.symbolic.codegen.backends.cbuild import find_compiler

    try:
        find_compiler()
    except CompilerNotFoundError as err:
        pytest.skip(f"no C compiler: {err}")
    monkeypatch.setenv("SYMGRAD_AUTO", "c")
    symgrad.symbolic.compile_cache_clear()
    yield
    symgrad.symbolic.compile_cache_clear()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=programs())
def test_fuzzed_programs_on_the_c_tier_match_the_tape(spec, c_tier, figures):
    """The same fuzz with ``"auto"`` on its C tier, which small programs never reach by
    themselves: with it forced, this fuzz found ``broadcast_to(a + b) * c`` printed as
    ``a + b*c`` in C (the gradient of ``sum(exp(x)[0:1])**2``)."""
    _symbolic_matches_the_tape(spec)
    figures.add("cache: random programs fuzzed through the C tier", 1)
