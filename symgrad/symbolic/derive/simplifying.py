"""``simplify=True``: SymPy's ``simplify`` within a time budget, checked by values.

SymPy's ``simplify`` can turn a long gradient into the textbook one (a hand-written
binary cross-entropy's gradient becomes ``X.T @ (sigmoid(X @ w) - y)/5``), but it has
no time limit of its own and can run for minutes.  :func:`simplified` runs it in a
forked child process that stops after :data:`SIMPLIFY_SECONDS` of processor time (so a
busy machine gives the same answer, only later) and is stopped after
:data:`SIMPLIFY_WALL_SECONDS` of wall time whatever happens, compares the values
of the result with the original's at random points, and keeps the shorter of that and the
cheap tidy form (``sympy.factor_terms``).  When the budget runs out, the child fails, or
the values differ, the tidy form is returned and a :class:`SimplifyWarning` says why.
"""
from __future__ import annotations

import multiprocessing
import pickle
import signal
import warnings
from typing import Any

import numpy as np
import sympy as sp

from ..core.symbols import ArrayVar, free_symbols, intern

__all__ = ["simplified", "same_values", "SimplifyWarning", "SIMPLIFY_SECONDS", "SIMPLIFY_WALL_SECONDS"]

SIMPLIFY_SECONDS = 2.0
"""Processor time SymPy's ``simplify`` may take for one form before the tidy form is shown."""

SIMPLIFY_WALL_SECONDS = 6.0
"""Wall time after which the child is stopped however little processor time it had."""


class SimplifyWarning(UserWarning):
    """``simplify=True`` fell back to the tidy form (``factor_terms``); the message says why."""


def _simplify_in_child(expr: sp.Expr, connection, seconds: float) -> None:
    def out_of_time(signum, frame):
        raise TimeoutError(f"SymPy's simplify took longer than {seconds:g} s")

    signal.signal(signal.SIGPROF, out_of_time)
    signal.setitimer(signal.ITIMER_PROF, max(seconds, 1e-6))
    try:
        connection.send_bytes(pickle.dumps(sp.simplify(expr)))
    except BaseException as error:  # noqa: BLE001  (reported to the parent, which falls back)
        connection.send_bytes(pickle.dumps(f"{type(error).__name__}: {error}"))
    finally:
        connection.close()


def _simplify_within(expr: sp.Expr, seconds: float) -> sp.Expr | str:
    """SymPy's ``simplify(expr)``, or a sentence saying why there is none."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return "this platform cannot fork a process to bound SymPy's simplify in time"
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_simplify_in_child, args=(expr, sender, seconds), daemon=True)
    child.start()
    sender.close()
    try:
        if not receiver.poll(max(SIMPLIFY_WALL_SECONDS, seconds)):
            return f"SymPy's simplify was stopped after {max(SIMPLIFY_WALL_SECONDS, seconds):g} s of wall time"
        answer = pickle.loads(receiver.recv_bytes())
    except EOFError:
        return "SymPy's simplify stopped without an answer"
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()
    if isinstance(answer, sp.Basic):
        return answer
    return answer.partition(": ")[2] if answer.startswith("TimeoutError: ") else f"SymPy's simplify failed ({answer})"


def _sample(symbol: sp.Symbol, rng: np.random.Generator) -> np.ndarray:
    shape = symbol.array_shape if isinstance(symbol, ArrayVar) else ()
    dtype = np.dtype(symbol.array_dtype) if isinstance(symbol, ArrayVar) else np.dtype("float64")
    if dtype.kind in "iu":
        return np.zeros(shape, dtype)
    if dtype.kind == "b":
        return np.ones(shape, bool)
    return rng.uniform(0.2, 0.8, size=shape)


def same_values(a: sp.Expr, b: sp.Expr, points: int = 3) -> bool:
    """Whether ``a`` and ``b`` compute the same values at a few random points (inputs
    drawn in ``[0.2, 0.8]``, where logs, square roots and divisions are defined).

    >>> x = sp.Symbol("x")
    >>> same_values(sp.sin(x) ** 2 + sp.cos(x) ** 2, sp.Integer(1)), same_values(x, 2 * x)
    (True, False)
    """
    from ..forms.structural import numpy_namespace

    symbols = sorted(free_symbols(a) | free_symbols(b), key=lambda s: s.name)
    f = sp.lambdify(symbols, [a, b], modules=[numpy_namespace(), "numpy"])
    rng = np.random.default_rng(0)
    with np.errstate(all="ignore"):
        for _ in range(points):
            left, right = f(*[_sample(s, rng) for s in symbols])
            left, right = np.broadcast_arrays(np.asarray(left, float), np.asarray(right, float))
            if not np.allclose(left, right, rtol=1e-9, atol=1e-12, equal_nan=True):
                return False
    return True


def simplified(expr: Any, seconds: float = SIMPLIFY_SECONDS) -> Any:
    """A simpler equal form of ``expr``: SymPy's ``simplify`` within ``seconds`` of
    processor time, checked by values, or the tidy form (``factor_terms``) when it is not shorter; on a timeout, a
    failure or a value mismatch, the tidy form with a :class:`SimplifyWarning`.  Lists,
    tuples and matrices are simplified element by element.

    >>> x = sp.Symbol("x")
    >>> simplified(sp.sin(x) ** 2 + sp.cos(x) ** 2 + x / 3 - x / 3)
    1
    """
    if isinstance(expr, (list, tuple)):
        return type(expr)(simplified(e, seconds) for e in expr)
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(lambda e: simplified(e, seconds))
    if not isinstance(expr, sp.Basic):
        return expr
    tidy = sp.factor_terms(expr)
    candidate = _simplify_within(expr, seconds)
    if isinstance(candidate, str):
        warnings.warn(f"simplify=True: {candidate}; showing the tidied form", SimplifyWarning, stacklevel=3)
        return tidy
    candidate = intern(candidate)
    try:
        agrees = same_values(expr, candidate)
    except Exception as error:  # noqa: BLE001  (an unverifiable form is not shown)
        warnings.warn(f"simplify=True: the simplified form could not be checked ({type(error).__name__}: {error}); "
                      "showing the tidied form", SimplifyWarning, stacklevel=3)
        return tidy
    if not agrees:
        warnings.warn("simplify=True: SymPy's simplified form computes other values; showing the tidied form",
                      SimplifyWarning, stacklevel=3)
        return tidy
    return candidate if sp.count_ops(candidate) <= sp.count_ops(tidy) else tidy
