"""Numerical stability: logits swept from -1e3 to 1e3 through the functions that overflow
when written naively (sigmoid, softplus, logsumexp, log_softmax, softmax, BCE with logits,
cross entropy), in float32 and float64, on both engines.  Values and gradients must be
finite, keep the input's dtype, and match a 40-digit mpmath reference.

The reference is computed at the input *as rounded to the tested dtype*, so the test
measures the computation, not the rounding of the input.  An element passes when

    |got - ref| <= 64 * eps(dtype) * (|ref| + scale)

where ``scale`` is the magnitude of the terms the result is a difference of, below which
no floating-point formula can resolve it: 0 for sigmoid and softplus values (relative
accuracy all the way into the tails), ``max |logit| + 1`` for the log-sum-exp family and the
losses (``z - z*y``, ``x - logsumexp(x)``), and the upstream weight ``|w|`` for gradients
(``sigmoid(z) - y``, ``w - p*sum(w)``).  Softmax values get ``|ref| * (max |logit| + 1)``
(``exp(x - max)`` inherits the rounding of ``x - max``).  Subnormal results are compared
absolutely, to the smallest normal number.  One documented allowance: above PyTorch's
softplus threshold (20) the tape's gradient is exactly 1 and the symbolic engine's is
``sigmoid(z)`` (``symbolic/forms/stable.py``: the switch changes slopes by at most
``exp(-20) ~ 2e-9``), so there the softplus gradient may differ by ``2.1e-9 * |w|``.
"""
from __future__ import annotations

import functools

import mpmath
import numpy as np
import pytest

import symgrad
import symgrad.nn.functional as F

SPECIAL = [0.0, 1e-7, 0.5, 1.0, 15.0, 20.0, 20.5, 30.0, 36.0, 40.0, 87.0, 88.7, 89.0, 100.0, 700.0, 709.7, 710.0,
           745.0, 746.0, 999.9, 1000.0]
LOGITS = np.unique(np.concatenate([
    np.linspace(-1000.0, 1000.0, 401),
    np.logspace(-4, 3, 150), -np.logspace(-4, 3, 150),
    SPECIAL, np.negative(SPECIAL),
]))
TARGETS = np.array([0.0, 1.0, 0.25, 0.5, 0.9])
DTYPES = {"float32": np.float32, "float64": np.float64}
mpmath.mp.dps = 40


def _rows(z: np.ndarray) -> np.ndarray:
    """Three logits per sample: z, z/2 + 1, -z (exact in both dtypes for the grid's z)."""
    return np.stack([z, 0.5 * z + 1.0, -z], axis=1)


@functools.lru_cache(maxsize=None)
def reference(dtype_name: str) -> dict:
    """mpmath values and derivatives at the logits rounded to ``dtype_name``."""
    dtype = DTYPES[dtype_name]
    z = LOGITS.astype(dtype)
    rows = _rows(z).astype(dtype)
    y = np.resize(TARGETS, len(z)).astype(dtype)
    mp = mpmath.mpf
    sig = [1 / (1 + mpmath.exp(-mp(float(v)))) for v in z]
    out = {
        "sigmoid": [float(s) for s in sig],
        "sigmoid'": [float(s * (1 - s)) for s in sig],
        "softplus": [float(v) if v > 20 else float(mpmath.log1p(mpmath.exp(mp(float(v))))) for v in z],
        "softplus'": [1.0 if v > 20 else float(s) for v, s in zip(z, sig)],
        "bce": [float(mpmath.log1p(mpmath.exp(mp(float(v)))) - mp(float(v)) * mp(float(t))) for v, t in zip(z, y)],
        "bce'": [float(s - mp(float(t))) for s, t in zip(sig, y)],
    }
    lse, p = [], []
    for row in rows:
        values = [mp(float(v)) for v in row]
        total = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in values))
        lse.append(total)
        p.append([mpmath.exp(v - total) for v in values])
    out["logsumexp"] = [float(v) for v in lse]
    out["log_softmax"] = [[float(v - total) for v in row] for row, total in zip(rows.astype(float), lse)]
    out["softmax"] = [[float(q) for q in qs] for qs in p]
    out["p"] = p
    return {k: (v if k == "p" else np.array(v, dtype=np.float64)) for k, v in out.items()}


def _tolerance(dtype, ref, scale, rel=1.0, extra=0.0):
    info = np.finfo(dtype)
    return 64 * info.eps * (np.abs(ref) * rel + scale) + extra + info.tiny


def _check(name, got, ref, dtype, scale, rel=1.0, extra=0.0) -> None:
    got = np.asarray(got)
    assert got.dtype == dtype, f"{name}: dtype {got.dtype}, expected {np.dtype(dtype)}"
    assert np.isfinite(got).all(), f"{name}: non-finite at logits {LOGITS[~np.isfinite(got).reshape(len(LOGITS), -1).all(1)][:5]}"
    error = np.abs(got.astype(np.float64) - ref)
    allowed = _tolerance(dtype, ref, scale, rel, extra)
    bad = error > allowed
    if bad.any():
        i = np.unravel_index(int(np.argmax(error - allowed)), error.shape)
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {bad.size} elements off; worst at logit {LOGITS[i[0]]!r}: "
            f"got {got[i]!r}, reference {ref[i]!r}, |error| {error[i]:.3g} > {allowed[i]:.3g}"
        )


# Each case: (build the output from the leaf and the data; the leaf's array; the
# upstream-gradient shape; reference value and reference gradient from the weights)
def _elementwise(fn):
    return lambda leaf, data: fn(leaf)


def _reference_sigmoid(ref, w, rows):
    return ref["sigmoid"], 0.0, w * ref["sigmoid'"]


def _reference_softplus(ref, w, rows):
    return ref["softplus"], 0.0, w * ref["softplus'"]


def _row_scale(rows):
    return np.max(np.abs(rows), axis=1) + 1.0


def _reference_logsumexp(ref, w, rows):
    p = np.array([[float(q) for q in qs] for qs in ref["p"]])
    return ref["logsumexp"], _row_scale(rows), w[:, None] * p


def _reference_log_softmax(ref, W, rows):
    p = np.array([[float(q) for q in qs] for qs in ref["p"]])
    grad = [[float(mpmath.mpf(float(W[i, j])) - qs[j] * mpmath.fsum(mpmath.mpf(float(v)) for v in W[i]))
             for j in range(3)] for i, qs in enumerate(ref["p"])]
    return ref["log_softmax"], _row_scale(rows)[:, None], np.array(grad)


def _reference_softmax(ref, W, rows):
    grad = []
    for i, qs in enumerate(ref["p"]):
        dot = mpmath.fsum(mpmath.mpf(float(W[i, j])) * qs[j] for j in range(3))
        grad.append([float(qs[j] * (mpmath.mpf(float(W[i, j])) - dot)) for j in range(3)])
    return ref["softmax"], 0.0, np.array(grad)


def _reference_bce(ref, w, rows):
    z = rows[:, 0]
    return ref["bce"], np.abs(z) + 1.0, w * ref["bce'"]


def _reference_cross_entropy(ref, w, rows):
    labels = np.arange(len(rows)) % 3
    logp = ref["log_softmax"]
    grad = []
    for i, qs in enumerate(ref["p"]):
        grad.append([float(mpmath.mpf(float(w[i])) * (qs[j] - (1 if j == labels[i] else 0))) for j in range(3)])
    return -logp[np.arange(len(rows)), labels], _row_scale(rows), np.array(grad)


CASES = {
    "sigmoid": ("z", lambda x, d: x.sigmoid(), _reference_sigmoid),
    "softplus": ("z", lambda x, d: F.softplus(x), _reference_softplus),
    "logsumexp": ("rows", lambda x, d: x.logsumexp(dim=1), _reference_logsumexp),
    "log_softmax": ("rows", lambda x, d: F.log_softmax(x, dim=1), _reference_log_softmax),
    "softmax": ("rows", lambda x, d: F.softmax(x, dim=1), _reference_softmax),
    "bce_with_logits": ("z", lambda x, d: F.binary_cross_entropy_with_logits(x, d["targets"], reduction="none"),
                        _reference_bce),
    "cross_entropy": ("rows", lambda x, d: F.cross_entropy(x, d["labels"], reduction="none"),
                      _reference_cross_entropy),
}


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("function", list(CASES))
def test_logit_sweep_gives_finite_correct_values_and_gradients(engine, function, dtype_name, figures):
    dtype = DTYPES[dtype_name]
    kind, build, expected = CASES[function]
    ref = reference(dtype_name)
    z = LOGITS.astype(dtype)
    rows = _rows(z).astype(dtype)
    data = {"targets": symgrad.tensor(np.resize(TARGETS, len(z)).astype(dtype)),
            "labels": symgrad.tensor(np.arange(len(z)) % 3)}
    leaf = symgrad.tensor(z if kind == "z" else rows, requires_grad=True)
    out = build(leaf, data)
    rng = np.random.default_rng(7)
    w = (rng.uniform(0.5, 1.5, out.shape) * rng.choice([-1.0, 1.0], out.shape)).astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        out.backward(gradient=symgrad.tensor(w))
    value, scale, grad = expected(ref, w.astype(np.float64), rows.astype(np.float64))
    rel = _row_scale(rows.astype(np.float64))[:, None] if function == "softmax" else 1.0
    _check(f"{function} value", out.detach().numpy(), np.asarray(value), dtype, scale, rel)
    extra = np.where(z.astype(np.float64) > 20, 2.1e-9 * np.abs(w), 0.0) if function == "softplus" else 0.0
    grad_scale = np.abs(w).astype(np.float64) if np.ndim(w) == np.ndim(grad) else np.abs(w)[:, None].astype(float)
    if function in ("log_softmax", "softmax"):
        grad_scale = np.sum(np.abs(w), axis=1, keepdims=True).astype(float)
    _check(f"{function} gradient", leaf.grad.numpy(), grad, dtype, grad_scale, extra=extra)
    figures.set("stability sweep: logits per function", len(LOGITS))
    figures.add("stability sweep: cases (function x dtype x engine)", 1)
    figures.add("stability sweep: values and gradients checked", out.numel() + leaf.numel())


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_reduced_losses_over_the_sweep_are_finite_and_correct(engine, reduction, dtype_name, figures):
    """The usual training path: one scalar loss over the whole sweep."""
    dtype = DTYPES[dtype_name]
    ref = reference(dtype_name)
    z = LOGITS.astype(dtype)
    rows = _rows(z).astype(dtype)
    n = len(z)
    factor = 1.0 / n if reduction == "mean" else 1.0
    cases = [
        (symgrad.tensor(z, requires_grad=True), _reference_bce,
         lambda x: F.binary_cross_entropy_with_logits(x, symgrad.tensor(np.resize(TARGETS, n).astype(dtype)),
                                                       reduction=reduction)),
        (symgrad.tensor(rows, requires_grad=True), _reference_cross_entropy,
         lambda x: F.cross_entropy(x, symgrad.tensor(np.arange(n) % 3), reduction=reduction)),
    ]
    for leaf, expected, build in cases:
        loss = build(leaf)
        with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
            loss.backward()
        values, scale, grad = expected(ref, np.ones(n), rows.astype(np.float64))
        total = float(mpmath.fsum(mpmath.mpf(float(v)) for v in values)) * factor
        bound = 64 * np.finfo(dtype).eps * (np.sum(np.abs(values)) + np.sum(scale)) * factor * 4
        assert loss.dtype == dtype and np.isfinite(loss.item())
        assert abs(loss.item() - total) <= bound, (loss.item(), total, bound)
        _check(f"{reduction} loss gradient", leaf.grad.numpy(), grad * factor, dtype, factor)
        figures.add("stability sweep: cases (function x dtype x engine)", 1)
