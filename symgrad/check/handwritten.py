"""Checking gradients people write by hand: a custom ``Function``'s ``backward`` and a
NumPy gradient function.

* :func:`check_function` runs ``MyFunction.apply`` on the tape (which calls the hand-written
  ``backward``) and, when the class defines ``sympy``, on the symbolic engine (which
  differentiates that SymPy form instead); both are compared with finite differences and
  with each other.
* :func:`check_grad` is SciPy's ``check_grad`` with per-element reports: ``grad_f(*args)``
  against finite differences of ``f(*args)``; when ``f`` also runs on symgrad tensors (it
  uses operators and tensor methods only), its traced derivative is a third opinion.
"""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

import numpy as np

from ..tape.tensor import Tensor
from .engines import engine_status
from .gradcheck import DEFAULT_ENGINES, Check, finish, resolve_engines
from .report import EngineUnavailableWarning, GradcheckResult, warn

__all__ = ["check_function", "check_grad"]


def check_function(function: type, inputs, *, eps: float | None = None, atol: float | None = None,
                   rtol: float | None = None, raise_exception: bool = True, fast_mode: bool = False,
                   seed: int = 0) -> GradcheckResult:
    """Check a custom ``symgrad.autograd.Function``'s ``backward`` (and ``sympy`` form).

    ``inputs`` are the arguments of ``function.apply``; Tensors with ``requires_grad=True``
    are checked.  Raises :class:`~symgrad.check.GradcheckError` naming the wrong elements.

    >>> import symgrad
    >>> class Cube(symgrad.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x ** 3
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         x, = ctx.saved_tensors
    ...         return 3 * x ** 2 * g
    >>> check_function(Cube, (symgrad.tensor([0.5, -1.0], requires_grad=True),))
    <GradcheckResult check_function(Cube) order 1: ok; checked ['Cube.backward']>
    """
    name = getattr(function, "__name__", repr(function))
    if not hasattr(function, "apply"):
        raise TypeError(f"check_function expects a symgrad.autograd.Function subclass, got {name!r}; "
                        "for a plain function use symgrad.gradcheck, for NumPy code symgrad.check_grad")
    engines = [("tape", f"{name}.backward")]
    skipped = {}
    if getattr(function, "sympy", None) is not None:
        ok, why = engine_status("symbolic")
        if ok:
            engines.append(("symbolic", f"{name}.sympy"))
        else:
            skipped["symbolic"] = f"{name} defines sympy, but the symbolic engine cannot be loaded ({why})"
            warn(EngineUnavailableWarning(f"check_function({name}) skips the symbolic check: "
                                                   f"{skipped['symbolic']}"))
    check = Check(function.apply, inputs, eps=eps, atol=atol, rtol=rtol, engines=engines, fast_mode=fast_mode,
                  seed=seed, what=f"check_function({name})")
    result = check.run()
    result.skipped.update(skipped)
    return finish(result, raise_exception)


def check_grad(f: Callable, grad_f: Callable, *args, eps: float | None = None, atol: float | None = None,
               rtol: float | None = None, engines: Sequence[str] = DEFAULT_ENGINES,
               raise_exception: bool = True) -> GradcheckResult:
    """Check a NumPy gradient ``grad_f`` of ``f`` at ``args``, element by element.

    ``f(*args)`` returns a scalar (then ``grad_f`` returns one array per argument, each of
    the argument's shape; a single array for a single argument) or an array (then each
    returned array is a Jacobian of shape ``f.shape + arg.shape``).  When ``f`` also runs on
    symgrad tensors, the ``engines`` differentiate it as extra opinions.

    >>> import numpy as np
    >>> def f(x):
    ...     return (x ** 2).sum()
    >>> def grad_f(x):
    ...     return 2 * x
    >>> check_grad(f, grad_f, np.array([1.0, -2.0, 0.5]), engines=("tape",))
    <GradcheckResult check_grad(f) order 1: ok; checked ['tape (traced f)', 'grad_f']>
    """
    if not args:
        raise TypeError("check_grad needs at least one argument to evaluate f and grad_f at")
    arrays = [_float_array(a, i) for i, a in enumerate(args)]
    names = _parameter_names(f, len(arrays))
    f_name = getattr(f, "__name__", "f")
    grad_name = getattr(grad_f, "__name__", "grad_f")
    if grad_name == "<lambda>":
        grad_name = "grad_f"
    if f_name == "<lambda>":
        f_name = "f"
    value = np.asarray(f(*[a.copy() for a in arrays]), np.float64)
    given = _given_jacobian(grad_f, arrays, names, value.shape, grad_name)
    tensors = tuple(Tensor(a, requires_grad=True, name=n) for a, n in zip(arrays, names))

    def fd_func(*ts):
        return Tensor(np.asarray(f(*[t._data for t in ts]), np.float64))

    traced, note = _traceable(f, arrays, names, value)
    labels = []
    skipped = {}
    if traced:
        labels, skipped = resolve_engines(engines)
        labels = [(engine, f"{label} (traced {f_name})") for engine, label in labels]
    check = Check(traced, tensors, eps=eps, atol=atol, rtol=rtol, engines=labels, what=f"check_grad({f_name})",
                  given={grad_name: given}, fd_func=fd_func, out_names=[f_name])
    result = check.run()
    result.skipped.update(skipped)
    if note:
        result.notes.append(note)
    return finish(result, raise_exception)


def _float_array(value, position: int) -> np.ndarray:
    array = np.array(value, dtype=None if isinstance(value, np.ndarray) and value.dtype.kind == "f" else np.float64)
    if array.dtype.kind != "f":
        raise TypeError(f"check_grad argument {position} has dtype {array.dtype}; pass floating-point arrays")
    return array


def _parameter_names(f, count: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(f).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) >= count:
        return params[:count]
    return ["x"] if count == 1 else [f"arg{i}" for i in range(count)]


def _given_jacobian(grad_f, arrays, names, out_shape, grad_name) -> list[list[np.ndarray]]:
    returned = grad_f(*[a.copy() for a in arrays])
    grads = list(returned) if isinstance(returned, (tuple, list)) else [returned]
    if len(grads) != len(arrays):
        raise ValueError(f"{grad_name} returned {len(grads)} gradient(s) for {len(arrays)} argument(s); "
                         "return one array per argument (a tuple when there are several)")
    blocks = []
    out_size = int(np.prod(out_shape, dtype=np.int64))
    for grad, array, name in zip(grads, arrays, names):
        grad = np.asarray(grad, np.float64)
        expected = tuple(out_shape) + array.shape
        if grad.shape != expected:
            what = "the argument's shape" if not out_shape else "f's shape followed by the argument's shape"
            raise ValueError(f"{grad_name} returned a gradient of shape {list(grad.shape)} for {name} of shape "
                             f"{list(array.shape)}; expected {list(expected)} ({what})")
        blocks.append(grad.reshape(out_size, array.size))
    return [blocks]


def _traceable(f, arrays, names, value):
    """``(f, "")`` when ``f`` runs on symgrad tensors and gives the same value, else
    ``(None, why)``."""
    try:
        out = f(*[Tensor(a.copy(), requires_grad=True, name=n) for a, n in zip(arrays, names)])
    except Exception as err:  # noqa: BLE001  (NumPy-only code is the common case)
        return None, (f"note: f was not traced (calling it on symgrad tensors raised {type(err).__name__}: "
                      f"{err}); only finite differences checked the gradient")
    if not isinstance(out, Tensor):
        return None, f"note: f was not traced (on symgrad tensors it returned a {type(out).__name__}, not a Tensor)"
    if out.shape != value.shape or not np.allclose(np.asarray(out._data, np.float64), value, rtol=1e-10, atol=1e-12,
                                                   equal_nan=True):
        return None, "note: f was not traced (on symgrad tensors it computes a different value)"
    return f, ""
