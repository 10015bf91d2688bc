"""Test helpers for gradients: assertions whose failures read well, and random programs.

Assertions (plain ``AssertionError``, so pytest shows the message as the failure):

* :func:`assert_grads_close` -- two sets of gradients agree, element by element;
* :func:`assert_gradcheck` / :func:`assert_gradgradcheck` -- ``symgrad.gradcheck`` passes;
* :func:`assert_function_backward` -- a custom ``Function``'s backward is right;
* :func:`assert_check_grad` -- a NumPy gradient function is right (:func:`assert_check_hvp`,
  :func:`assert_check_hessian`: a Hessian-vector product, a Hessian);
* :func:`skip_unless_engine` -- skip a test where a backward engine cannot load;
* :func:`count_calls` / :func:`assert_linear` -- work measured in function calls, for
  tests of how a cost grows (:mod:`symgrad.testing.work`; never assert seconds).

Random programs over the op table (see :mod:`symgrad.testing.generator`):
:func:`random_program` with a NumPy generator, and the Hypothesis strategies
``programs``, ``op_programs`` and ``arrays_in`` (imported from
:mod:`symgrad.testing.strategies` on first use, so Hypothesis is only needed for them).

>>> import symgrad
>>> x = symgrad.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> assert_grads_close(x.grad, [2.0, 4.0])
>>> assert_grads_close({"x": x.grad}, {"x": [2.0, 4.1]})
Traceback (most recent call last):
...
AssertionError: gradients differ: x: 1 of 2 element(s) outside tolerance (rtol=1e-07, atol=1e-07)
  x[1]: actual 4, expected 4.1, abs err 1.00e-01, rel err 2.44e-02
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from ..check import check_function, check_grad, check_hessian, check_hvp, gradcheck, gradgradcheck
from ..tape.tensor import Tensor
from .generator import NONSMOOTH_OPS, Program, random_program, register_recipe
from .work import WorkLimitExceeded, assert_linear, count_calls

__all__ = [
    "assert_grads_close", "assert_gradcheck", "assert_gradgradcheck", "assert_function_backward",
    "assert_check_grad", "assert_check_hvp", "assert_check_hessian", "close_tolerances", "skip_unless_engine", "Program", "random_program", "register_recipe", "NONSMOOTH_OPS",
    "programs", "op_programs", "arrays_in", "count_calls", "assert_linear", "WorkLimitExceeded",
]

_STRATEGIES = ("programs", "op_programs", "arrays_in")

_CLOSE = {  # torch.testing.assert_close's defaults
    np.dtype(np.float64): (1e-7, 1e-7),
    np.dtype(np.float32): (1.3e-6, 1e-5),
    np.dtype(np.float16): (1e-3, 1e-5),
}


def __getattr__(name: str) -> Any:
    if name in _STRATEGIES:
        from . import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'symgrad.testing' has no attribute {name!r}")


def close_tolerances(dtype) -> tuple[float, float]:
    """Default ``(rtol, atol)`` for comparing values of ``dtype`` (torch.testing's).

    >>> close_tolerances(np.float32)
    (1.3e-06, 1e-05)
    """
    return _CLOSE.get(np.dtype(dtype), _CLOSE[np.dtype(np.float64)])


def skip_unless_engine(name: str) -> None:
    """Skip the calling pytest test, with the reason, when backward engine ``name``
    (``"symbolic"``, ``"tape"``) cannot be loaded here."""
    from ..check import engine_status

    ok, why = engine_status(name)
    if not ok:
        import pytest

        pytest.skip(f"the {name!r} backward engine is not available ({why})")


def _as_array(value, what: str) -> np.ndarray:
    if value is None:
        return None
    if isinstance(value, Tensor):
        return np.asarray(value._data)
    try:
        return np.asarray(value, dtype=np.float64 if not isinstance(value, np.ndarray) else None)
    except (TypeError, ValueError):
        raise TypeError(f"{what} is a {type(value).__name__}; expected a Tensor, an array or numbers") from None


def _named(values, names) -> dict[str, Any]:
    if isinstance(values, Mapping):
        return dict(values)
    if isinstance(values, (list, tuple)) and not (values and isinstance(values[0], (int, float))):
        items = list(values)
        labels = list(names) if names is not None else [f"grad[{i}]" for i in range(len(items))]
        return dict(zip(labels, items))
    return {names[0] if names else "grad": values}


def assert_grads_close(actual, expected, *, rtol: float | None = None, atol: float | None = None,
                       names=None, max_report: int = 10) -> None:
    """Assert that gradients agree: ``|actual - expected| <= atol + rtol * |expected|``.

    ``actual``/``expected`` are a Tensor or array, a list/tuple of them (``names`` labels
    them), or dicts by name.  The message lists each differing element with both values;
    ``None`` must match ``None`` (an unused input).  Default tolerances follow the dtype.
    """
    __tracebackhide__ = True
    actual_map, expected_map = _named(actual, names), _named(expected, names)
    if set(actual_map) != set(expected_map):
        raise AssertionError(f"gradients are for different things: actual has {sorted(actual_map)}, "
                             f"expected has {sorted(expected_map)}")
    problems = []
    for name in actual_map:
        a, e = _as_array(actual_map[name], f"actual {name}"), _as_array(expected_map[name], f"expected {name}")
        if a is None or e is None:
            if a is not None or e is not None:
                problems.append(f"{name}: actual is {'None' if a is None else 'a gradient'}, expected "
                                f"{'None' if e is None else 'a gradient'}")
            continue
        if a.shape != e.shape:
            problems.append(f"{name}: shape {list(a.shape)} differs from the expected {list(e.shape)}")
            continue
        dtype = a.dtype if a.dtype.kind == "f" else np.dtype(np.float64)
        default_rtol, default_atol = close_tolerances(dtype)
        r = default_rtol if rtol is None else rtol
        t = default_atol if atol is None else atol
        a64, e64 = a.astype(np.float64), e.astype(np.float64)
        with np.errstate(invalid="ignore"):
            err = np.abs(a64 - e64)
            bad = ~((err <= t + r * np.abs(e64)) | (np.isnan(a64) & np.isnan(e64)) | (a64 == e64))
        if not bad.any():
            continue
        lines = [f"{name}: {int(bad.sum())} of {a.size} element(s) outside tolerance (rtol={r:g}, atol={t:g})"]
        for index in list(zip(*np.nonzero(bad)))[:max_report]:
            position = f"{name}[{', '.join(str(int(i)) for i in index)}]" if a.ndim else name
            ae, ee = float(a64[index]), float(e64[index])
            rel = err[index] / abs(ee) if ee != 0 else float("inf")
            lines.append(f"  {position}: actual {ae:.8g}, expected {ee:.8g}, abs err {err[index]:.2e}, "
                         f"rel err {rel:.2e}")
        if bad.sum() > max_report:
            lines.append(f"  ... and {int(bad.sum()) - max_report} more")
        problems.append("\n".join(lines))
    if problems:
        raise AssertionError("gradients differ: " + "\n".join(problems))


def _assert_result(result) -> None:
    __tracebackhide__ = True
    if not result:
        raise AssertionError(result.report())


def assert_gradcheck(func: Callable, inputs, **kwargs) -> None:
    """Assert that :func:`symgrad.gradcheck` passes; the failure message is its report."""
    __tracebackhide__ = True
    _assert_result(gradcheck(func, inputs, raise_exception=False, **kwargs))


def assert_gradgradcheck(func: Callable, inputs, **kwargs) -> None:
    """Assert that :func:`symgrad.gradgradcheck` passes."""
    __tracebackhide__ = True
    _assert_result(gradgradcheck(func, inputs, raise_exception=False, **kwargs))


def assert_function_backward(function: type, inputs, **kwargs) -> None:
    """Assert that a custom Function's ``backward`` (and ``sympy``) pass :func:`symgrad.check_function`."""
    __tracebackhide__ = True
    _assert_result(check_function(function, inputs, raise_exception=False, **kwargs))


def assert_check_grad(f: Callable, grad_f: Callable, *args, **kwargs) -> None:
    """Assert that the NumPy gradient ``grad_f`` of ``f`` passes :func:`symgrad.check_grad`."""
    __tracebackhide__ = True
    _assert_result(check_grad(f, grad_f, *args, raise_exception=False, **kwargs))


def assert_check_hvp(f_or_grad: Callable, hvp: Callable, x, p, *args, **kwargs) -> None:
    """Assert that the Hessian-vector product ``hvp`` passes :func:`symgrad.check_hvp`."""
    __tracebackhide__ = True
    _assert_result(check_hvp(f_or_grad, hvp, x, p, *args, raise_exception=False, **kwargs))


def assert_check_hessian(f_or_grad: Callable, hessian: Callable, x, *args, **kwargs) -> None:
    """Assert that the Hessian function ``hessian`` passes :func:`symgrad.check_hessian`."""
    __tracebackhide__ = True
    _assert_result(check_hessian(f_or_grad, hessian, x, *args, raise_exception=False, **kwargs))
