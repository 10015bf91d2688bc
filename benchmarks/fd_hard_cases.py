"""Finite differences on hard cases: symgrad's estimate and its stated error, beside
numdifftools' (``pip install numdifftools``; without it, only symgrad's columns).

Run ``python benchmarks/fd_hard_cases.py`` from the repository root; it prints the
Markdown table shown in docs/testing.md ("How accurate are the finite differences?").
For each case of ``tests/check/fd_cases.py``: the largest relative error of the estimated
gradient against the exact one, whether the error stays within the stated error estimate
(symgrad: its ``fd_error``; numdifftools: the error estimate ``full_output=True`` returns), and
how many times the function was called.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from symgrad.check import check_grad  # noqa: E402
from tests.check.fd_cases import CASES, HIDDEN_CANCELLATION  # noqa: E402


def counted(f):
    def wrapped(x):
        wrapped.calls += 1
        return f(x)
    wrapped.calls = 0
    return wrapped


def relative(error: np.ndarray, exact: np.ndarray) -> float:
    return float(np.max(error / np.maximum(np.abs(exact), 1e-300)))


def symgrad_row(case) -> str:
    x = case.point()
    f = counted(case.f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = check_grad(f, case.gradient, x, elementwise=case.elementwise, engines=(), raise_exception=False)
    block = result.blocks[0]
    exact = np.asarray(case.gradient(x.astype(np.float64)), np.float64).reshape(block.numerical.shape)
    error = np.abs(block.numerical - exact)
    within = "yes" if np.all(error <= block.fd_error) else "**no**"
    return f"{relative(error, exact):.1e} | {within} | {'pass' if result else '**fail**'} | {f.calls}"


def numdifftools_row(case) -> str:
    try:
        import numdifftools as nd
    except ImportError:
        return "not installed | | "
    x = case.point()
    f = counted(case.f)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            estimator = nd.Derivative if case.elementwise else nd.Gradient
            value, estimate = estimator(f, full_output=True)(x)[:2]
    except Exception as err:  # noqa: BLE001  (reported in the table)
        return f"raises {type(err).__name__} | | {f.calls}"
    exact = np.asarray(case.gradient(x.astype(np.float64)), np.float64).ravel()
    error = np.abs(np.asarray(value, np.float64).ravel() - exact)
    estimate = np.asarray(estimate, np.float64).ravel()
    within = "yes" if np.all(error <= estimate) else "**no**"
    return f"{relative(error, exact):.1e} | {within} | {f.calls}"


def main() -> None:
    print("| case | symgrad rel. error | within its stated error | check_grad of the exact gradient | calls "
          "| numdifftools rel. error | within its error estimate | calls |")
    print("|---|---|---|---|---|---|---|---|")
    for case in [*CASES, HIDDEN_CANCELLATION]:
        print(f"| {case.name} | {symgrad_row(case)} | {numdifftools_row(case)} |")


if __name__ == "__main__":
    main()
