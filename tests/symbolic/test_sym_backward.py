"""``backward()`` on the symbolic engine: the same numbers as the tape engine, with hooks,
``retain_grad``, custom Functions, ``inputs=``, ``autograd.grad``; the ``"both"``
cross-check; and every example script printing the same on both engines."""
from __future__ import annotations

import contextlib
import io
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F
from symgrad.symbolic import (GradientMismatchError, compile_cache_clear, compile_cache_info, last_compiled,
                              set_cross_check_tolerances)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _leaves(rng, dtype=np.float64):
    return dict(
        x=symgrad.tensor(rng.normal(size=(4, 3)).astype(dtype), name="x"),
        w=symgrad.tensor(rng.normal(size=(3, 2)).astype(dtype), requires_grad=True, name="w"),
        b=symgrad.tensor(rng.normal(size=(2,)).astype(dtype), requires_grad=True, name="b"),
        y=symgrad.tensor((rng.uniform(size=(4, 2)) > 0.5).astype(dtype), name="y"),
        labels=symgrad.tensor(rng.integers(0, 2, size=4)),
    )


PROGRAMS = {
    "bce_logits": lambda t: F.binary_cross_entropy_with_logits(t["x"] @ t["w"] + t["b"], t["y"]),
    "mse_sigmoid": lambda t: ((symgrad.sigmoid(t["x"] @ t["w"] + t["b"]) - t["y"]) ** 2).mean(),
    "cross_entropy": lambda t: F.cross_entropy(t["x"] @ t["w"] + t["b"], t["labels"]),
    "softmax_max": lambda t: ((t["x"] @ t["w"]).softmax(dim=1) * t["y"]).sum() + (t["w"] * t["b"]).max(),
    "relu_norm_slices": lambda t: (t["x"] @ t["w"]).relu()[1:, :].norm() + t["w"][0].abs().sum() / t["b"].exp().sum(),
    "reshape_cat": lambda t: symgrad.cat([t["w"].reshape(6), t["b"] * 2], dim=0).logsumexp(dim=0),
    "where_clamp": lambda t: symgrad.where(t["y"] > 0, (t["x"] @ t["w"]).clamp(-0.5, 0.5), t["b"] ** 3).sum(),
    "shared_subgraph": lambda t: ((h := (t["x"] @ t["w"] + t["b"]).tanh()) * h + h.exp()).mean(),
}


def _grads(engine, program, dtype=np.float64, **backward):
    t = _leaves(np.random.default_rng(7), dtype)
    with symgrad.backward_engine(engine):
        loss = PROGRAMS[program](t)
        loss.backward(**backward)
    return {k: t[k].grad.numpy() for k in ("w", "b") if t[k].grad is not None}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_symbolic_equals_tape(program):
    tape, symbolic = _grads("tape", program), _grads("symbolic", program)
    assert tape.keys() == symbolic.keys() == {"w", "b"}
    for name in tape:
        np.testing.assert_allclose(symbolic[name], tape[name], rtol=1e-10, atol=1e-12, err_msg=name)
    both = _grads("both", program)
    for name in tape:
        np.testing.assert_allclose(both[name], tape[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("program", ["bce_logits", "softmax_max"])
def test_float32_stays_float32(program):
    tape, symbolic = _grads("tape", program, np.float32), _grads("symbolic", program, np.float32)
    for name in tape:
        assert symbolic[name].dtype == np.float32
        np.testing.assert_allclose(symbolic[name], tape[name], rtol=1e-5, atol=1e-6)


def test_hooks_retain_grad_and_accumulation_match_the_tape():
    def run(engine):
        seen = []
        x = symgrad.tensor([0.5, -1.0, 2.0], requires_grad=True, name="x")
        x.register_hook(lambda g: seen.append(("leaf", g.numpy().copy())))
        h = x * x
        h.retain_grad()
        u = h.sin()
        u.register_hook(lambda g: seen.append(("u", g.numpy().copy())))
        u.register_hook(lambda g: g * 10)  # changes the gradient that flows on
        loss = (u * x).sum()
        with symgrad.backward_engine(engine):
            loss.backward(retain_graph=True)
            loss.backward()
        return x.grad.numpy(), h.grad.numpy(), seen

    gx_t, gh_t, seen_t = run("tape")
    for engine in ("symbolic", "both"):  # "both" checks with hooks held back: each runs once
        gx_s, gh_s, seen_s = run(engine)
        np.testing.assert_allclose(gx_s, gx_t, rtol=1e-12)
        np.testing.assert_allclose(gh_s, gh_t, rtol=1e-12)
        assert [name for name, _ in seen_s] == [name for name, _ in seen_t] == ["u", "leaf", "u", "leaf"]
        for (_, a), (_, b) in zip(seen_s, seen_t):
            np.testing.assert_allclose(a, b, rtol=1e-12)


class Cube(symgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


class CubeWithSympy(Cube):
    @staticmethod
    def sympy(sp, x):
        return x ** 3


class WrongBackward(CubeWithSympy):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * x * g  # disagrees with the SymPy form


@pytest.mark.parametrize("function", [Cube, CubeWithSympy])
def test_custom_functions(function):
    def run(engine):
        x = symgrad.tensor([0.5, -1.0, 2.0], requires_grad=True, name="x")
        with symgrad.backward_engine(engine):
            (function.apply(x.sin()) * x).sum().backward()
        return x.grad.numpy()

    np.testing.assert_allclose(run("symbolic"), run("tape"), rtol=1e-12)
    compiled = last_compiled()
    # without a SymPy form the node is a boundary: its backward runs between two segments
    assert len(compiled) == (2 if function is Cube else 1)


def test_both_engine_reports_a_mismatch_with_input_position_values_and_tolerances():
    x = symgrad.tensor([0.5, -1.0, 2.0], requires_grad=True, name="x")
    with symgrad.backward_engine("both"), pytest.raises(GradientMismatchError) as err:
        WrongBackward.apply(x).sum().backward()
    message = str(err.value)
    for part in ("gradient of x", "position [2]", "symbolic 12.0", "tape 8.0", "rtol=1e-06", "atol=1e-09"):
        assert part in message, message
    set_cross_check_tolerances(rtol=10.0)
    try:
        with symgrad.backward_engine("both"):
            WrongBackward.apply(x).sum().backward()
    finally:
        set_cross_check_tolerances()


def test_inputs_and_autograd_grad_on_intermediate_tensors():
    def run(engine):
        a = symgrad.tensor([1.0, 2.0], requires_grad=True, name="a")
        b = symgrad.tensor([3.0, -1.0], requires_grad=True, name="b")
        h = (a * b).exp()
        loss = (h * a).sum() + b.sum()
        with symgrad.backward_engine(engine):
            ga, gh = symgrad.autograd.grad(loss, [a, h], retain_graph=True)
            loss.backward(inputs=[b])
        return ga.numpy(), gh.numpy(), b.grad.numpy(), a.grad

    tape, symbolic = run("tape"), run("symbolic")
    for t, s in zip(tape[:3], symbolic[:3]):
        np.testing.assert_allclose(s, t, rtol=1e-12)
    assert tape[3] is None and symbolic[3] is None


def test_multiple_roots_and_a_leaf_root():
    def run(engine):
        x = symgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
        y = x ** 2
        z = (y * 3).sum()
        with symgrad.backward_engine(engine):
            symgrad.autograd.backward([y, z, x], [symgrad.ones(3), symgrad.tensor(2.0), symgrad.ones(3)])
        return x.grad.numpy()

    np.testing.assert_allclose(run("symbolic"), run("tape"))


def test_second_backward_without_retain_graph_raises_and_create_graph_works():
    x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    loss = (x.exp() * x).sum()
    with symgrad.backward_engine("symbolic"):
        loss.backward()
        with pytest.raises(RuntimeError, match="retain_graph=True"):
            loss.backward()
        y = (x ** 3).sum()
        (g,) = symgrad.autograd.grad(y, x, create_graph=True)
        (gg,) = symgrad.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.detach().numpy())


def test_closed_form_of_the_last_backward_is_readable():
    t = _leaves(np.random.default_rng(1))
    with symgrad.backward_engine("symbolic"):
        F.binary_cross_entropy_with_logits(t["x"] @ t["w"] + t["b"], t["y"]).backward()
    (compiled,) = last_compiled()
    assert compiled.outputs == ["grad_w", "grad_b"]
    assert str(compiled.exprs["grad_w"]) == "x.T @ (-g*y/8 + (g*sigmoid(b + x @ w))/8)"


def _run_example(path: Path, engine: str, out_dir: Path, monkeypatch) -> str:
    """Run an example script in-process; scripts that write files write into ``out_dir``."""
    out = io.StringIO()
    symgrad.manual_seed(0)
    monkeypatch.setattr(sys, "argv", [str(path), str(out_dir)])
    with symgrad.backward_engine(engine), contextlib.redirect_stdout(out):
        runpy.run_path(str(path), run_name="__main__")
    return out.getvalue()


NUMBER = re.compile(r"-?\d+\.\d*(?:e[-+]?\d+)?|-?\d+(?:e[-+]?\d+)?")


TIMING = re.compile(r"\d+(?:\.\d*)?(?:e[-+]?\d+)? ?(?:ms|ns|µs|us|s)\b")


def _same_output(symbolic: str, tape: str) -> None:
    """Same text; numbers equal up to float32 rounding (a diverging fit amplifies it);
    timings (``2.1 ms``) vary from run to run and are left out."""
    symbolic, tape = TIMING.sub("<time>", symbolic), TIMING.sub("<time>", tape)
    assert NUMBER.sub("#", symbolic) == NUMBER.sub("#", tape)
    for s, t in zip(NUMBER.findall(symbolic), NUMBER.findall(tape)):
        assert float(s) == pytest.approx(float(t), rel=1e-3, abs=1e-4), (s, t)


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_print_the_same_on_both_engines(script, tmp_path, monkeypatch):
    from tests.test_examples import skip_without_what_it_needs

    skip_without_what_it_needs(script)
    tape = _run_example(EXAMPLES / script, "tape", tmp_path, monkeypatch)
    compile_cache_clear()
    symbolic = _run_example(EXAMPLES / script, "symbolic", tmp_path, monkeypatch)
    _same_output(symbolic.replace(str(tmp_path), "OUT"), tape.replace(str(tmp_path), "OUT"))
    if script == "linear_regression.py":  # two fits of 100 epochs, one structure
        info = compile_cache_info()
        assert (info.misses, info.hits) == (1, 199)


SECOND_ORDER = {
    "sigmoid_square": lambda x, w: (symgrad.sigmoid(x) * x ** 2).sum() + (w.tanh().sum()) ** 2,
    "softmax_matmul": lambda x, w: ((x.reshape(1, 3) @ w).softmax(dim=1) * symgrad.tensor([[1.0, -2.0]])).sum(),
    "relu_norm_where": lambda x, w: (x.relu() * w[:, 0]).norm() + symgrad.where(x > 0, x ** 3, x.exp()).sum(),
    "logsumexp_slices": lambda x, w: (x[1:] * w[:2, 1]).logsumexp(dim=0) + (x * x)[0],
}


@pytest.mark.parametrize("program", sorted(SECOND_ORDER))
def test_create_graph_gives_differentiable_gradients(program):
    def run(first, second):
        x = symgrad.tensor([0.5, -1.0, 2.0], requires_grad=True, name="x")
        w = symgrad.tensor([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]], requires_grad=True, name="w")
        with symgrad.backward_engine(first):
            gx, gw = symgrad.autograd.grad(SECOND_ORDER[program](x, w), [x, w], create_graph=True)
        assert gx.grad_fn is not None
        with symgrad.backward_engine(second):
            ((gx * symgrad.tensor([1.0, 2.0, 3.0])).sum() + (gw ** 2).sum()).backward()
        return gx.detach().numpy(), x.grad.numpy(), w.grad.numpy()

    reference = run("tape", "tape")
    for engines in [("symbolic", "tape"), ("symbolic", "symbolic"), ("tape", "symbolic")]:
        for got, want in zip(run(*engines), reference):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=str(engines))


def test_the_symbolic_engine_never_reads_a_vjp():
    from symgrad.ops import OPS

    def refuse(*args, **kwargs):
        raise AssertionError("the symbolic engine called a hand-written VJP")

    saved = {name: op.vjp for name, op in OPS.items()}
    compile_cache_clear()  # derive everything under the trap
    try:
        for op in OPS.values():
            object.__setattr__(op, "vjp", refuse)  # Op is a frozen dataclass
        for program in sorted(PROGRAMS):
            assert set(_grads("symbolic", program)) == {"w", "b"}
        with pytest.raises(AssertionError, match="hand-written VJP"):
            _grads("tape", "bce_logits")  # the trap works
    finally:
        for name, vjp in saved.items():
            object.__setattr__(OPS[name], "vjp", vjp)
