"""Checking gradients people write by hand: a custom ``Function``'s ``backward`` and a
NumPy gradient function.

* :func:`check_function` runs ``MyFunction.apply`` on the tape (which calls the hand-written
  ``backward``) and, when the class defines ``sympy``, on the symbolic engine (which
  differentiates that SymPy form instead); both are compared with finite differences and
  with each other.
* :func:`check_grad` is SciPy's ``check_grad(f, grad_f, x, *args)`` with per-element
  reports: ``grad_f(x, *args)`` against finite differences of ``f(x, *args)``, the extra
  arguments being fixed data unless ``argnums`` says otherwise; ``elementwise=True`` checks
  a function of n inputs to n outputs per element, ``value_and_grad=True`` a function
  returning ``(value, gradient)``.  When ``f`` also runs on symgrad tensors (it uses
  operators and tensor methods only), its traced derivative is a third opinion.
* :func:`check_hvp` and :func:`check_hessian` check Hessian-vector products and Hessians
  against finite differences of the gradient (given, or traced from a scalar ``f``).

Reports name the user's functions by qualified name and source line; a lambda by its
source text.
"""
from __future__ import annotations

import ast
import linecache
import os
from typing import Callable, Sequence

import numpy as np

from ..autograd import grad as autograd_grad
from ..pytree import parameter_names
from ..tape.engine import backward_engine
from ..tape.grad_mode import enable_grad
from ..tape.tensor import Tensor
from .engines import engine_status
from .gradcheck import DEFAULT_ENGINES, Check, finish, resolve_engines
from .report import EngineUnavailableWarning, GradcheckResult, SympyFormWarning, warn

__all__ = ["check_function", "check_grad", "check_hvp", "check_hessian", "function_name"]


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
    form = f"{name}.sympy"
    if form in result.errors:  # the form could not be compiled: not checked, which is not a failure
        error = result.errors.pop(form)
        result.skipped[form] = (f"its SymPy form could not be compiled ({type(error).__name__}: {error}); only "
                                f"{name}.backward and finite differences checked")
        result.labels = tuple(label for label in result.labels if label != form)
        warn(SympyFormWarning(f"check_function({name}) did not check {form}: {result.skipped[form]}"))
    return finish(result, raise_exception)


def check_grad(f: Callable, grad_f: Callable | None, x, *args, argnums: int | Sequence[int] = 0,
               elementwise: bool = False, value_and_grad: bool = False, eps: float | None = None,
               atol: float | None = None, rtol: float | None = None, engines: Sequence[str] = DEFAULT_ENGINES,
               raise_exception: bool = True) -> GradcheckResult:
    """Check a NumPy gradient ``grad_f`` of ``f`` at ``x``, element by element.

    As in SciPy, ``f(x, *args)`` and ``grad_f(x, *args)`` get the extra ``args`` as fixed
    data; ``argnums`` picks the arguments that are differentiated (default ``0``, ``x``; a
    tuple of positions, and ``grad_f`` returns one array per position).  ``f`` returns a
    scalar (then each gradient has its argument's shape) or an array (then each is a Jacobian
    of shape ``f.shape + arg.shape``).  ``elementwise=True``: ``f`` maps n inputs to n
    outputs, output ``i`` depending on input ``i`` only, and ``grad_f`` returns the n
    derivatives, checked per element from one perturbation of all of them.
    ``value_and_grad=True``: ``f`` returns ``(value, gradient)`` and ``grad_f`` is None.
    When ``f`` also runs on symgrad tensors, the ``engines`` differentiate it as extra
    opinions; ``engines=()`` never calls ``f`` on symgrad tensors.

    >>> import numpy as np
    >>> def f(x):
    ...     return (x ** 2).sum()
    >>> def grad_f(x):
    ...     return 2 * x
    >>> check_grad(f, grad_f, np.array([1.0, -2.0, 0.5]), engines=("tape",))
    <GradcheckResult check_grad(f) order 1: ok; checked ['tape (traced f)', 'grad_f']>
    >>> def loss(w, X, y):
    ...     return ((X @ w - y) ** 2).sum()
    >>> def loss_grad(w, X, y):
    ...     return 2 * X.T @ (X @ w - y)
    >>> X, y = np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([0.5, 1.0])
    >>> bool(check_grad(loss, loss_grad, np.array([0.1, -0.2]), X, y, engines=()))
    True
    """
    f_name, f_where = function_name(f, "f")
    if not callable(f):
        raise TypeError(f"check_grad expects a function f, got {type(f).__name__} {f!r}")
    if value_and_grad:
        if grad_f is not None:
            raise TypeError("with value_and_grad=True, f returns (value, gradient): pass grad_f=None")
        grad_name, grad_where = f"{f_name} (its gradient)", f_where
        value_f, grad_f = _split_value_and_grad(f, f_name)
    else:
        if not callable(grad_f):
            raise TypeError(f"check_grad expects a gradient function grad_f, got {type(grad_f).__name__} "
                            f"{grad_f!r}" + ("; if f returns (value, gradient), pass grad_f=None and "
                                             "value_and_grad=True" if grad_f is None else ""))
        grad_name, grad_where = function_name(grad_f, "grad_f")
        value_f = f
    call, positions, single = _arguments(x, args, argnums, "check_grad")
    names = _parameter_names(f, call, positions)
    value = _value(value_f, call, f_name, value_and_grad)
    out_shape = () if elementwise else value.shape
    given = _given_jacobian(grad_f, call, positions, names, out_shape, grad_name, single, elementwise)
    result = _run(value_f, call, positions, names, value, f_name, given, grad_name, "check_grad",
                  engines=engines, eps=eps, atol=atol, rtol=rtol, columns="diagonal" if elementwise else "elements")
    _say_where(result, [("f", f_name, f_where), ("grad_f", grad_name, grad_where)])
    return finish(result, raise_exception)


def check_hvp(f_or_grad: Callable, hvp: Callable, x, p, *args, eps: float | None = None,
              atol: float | None = None, rtol: float | None = None, engines: Sequence[str] = DEFAULT_ENGINES,
              raise_exception: bool = True) -> GradcheckResult:
    """Check a Hessian-vector product ``hvp(x, p, *args)`` (SciPy's ``hessp``) at ``x``
    along ``p``, against finite differences of the gradient along ``p``.

    ``f_or_grad(x, *args)`` is the gradient (an array of ``x``'s shape) or the scalar
    function itself, whose gradient symgrad then traces (it must run on symgrad tensors).

    >>> import numpy as np
    >>> def grad(x):
    ...     return np.array([2 * x[0] * x[1], x[0] ** 2])
    >>> def hessp(x, p):
    ...     return np.array([2 * x[1] * p[0] + 2 * x[0] * p[1], 2 * x[0] * p[0]])
    >>> bool(check_hvp(grad, hessp, np.array([1.0, 2.0]), np.array([0.5, -1.0])))
    True
    """
    hvp_name, hvp_where = function_name(hvp, "hvp")
    if not callable(hvp):
        raise TypeError(f"check_hvp expects a Hessian-vector product function hvp, got {type(hvp).__name__}")
    call, positions, _ = _arguments(x, args, 0, "check_hvp")
    direction = _float_array(p, "p", "check_hvp")
    if direction.shape != call[0].shape:
        raise ValueError(f"check_hvp: p has shape {list(direction.shape)} but x has shape {list(call[0].shape)}; "
                         "p is a direction in x's space")
    grad, grad_name, grad_where = _gradient_of(f_or_grad, call, "check_hvp")
    names = _parameter_names(f_or_grad, call, positions)
    value = _value(grad, call, grad_name, False)
    returned = np.asarray(hvp(call[0].copy(), direction.copy(), *call[1:]), np.float64)
    if returned.shape != call[0].shape:
        raise ValueError(f"{hvp_name} returned shape {list(returned.shape)} for x of shape {list(call[0].shape)}; "
                         "a Hessian-vector product has x's shape")
    result = _run(grad, call, positions, names, value, grad_name, [[returned.ravel()]], hvp_name,
                  "check_hvp", engines=engines, eps=eps, atol=atol, rtol=rtol, along=[direction],
                  in_name=f"{names[0]}·p")
    _say_where(result, [("f_or_grad", grad_name, grad_where), ("hvp", hvp_name, hvp_where)])
    return finish(result, raise_exception)


def check_hessian(f_or_grad: Callable, hessian: Callable, x, *args, eps: float | None = None,
                  atol: float | None = None, rtol: float | None = None, engines: Sequence[str] = DEFAULT_ENGINES,
                  raise_exception: bool = True) -> GradcheckResult:
    """Check a Hessian ``hessian(x, *args)`` (shape ``x.shape + x.shape``) against finite
    differences of the gradient ``f_or_grad`` (or of the gradient symgrad traces from a
    scalar ``f_or_grad``).

    >>> import numpy as np
    >>> def f(x):
    ...     return (x[0] ** 2 * x[1]).sum()
    >>> def hess(x):
    ...     return np.array([[2 * x[1], 2 * x[0]], [2 * x[0], 0.0]])
    >>> bool(check_hessian(f, hess, np.array([1.0, 2.0]), engines=()))
    True
    """
    hess_name, hess_where = function_name(hessian, "hessian")
    if not callable(hessian):
        raise TypeError(f"check_hessian expects a Hessian function, got {type(hessian).__name__}")
    call, positions, _ = _arguments(x, args, 0, "check_hessian")
    grad, grad_name, grad_where = _gradient_of(f_or_grad, call, "check_hessian")
    names = _parameter_names(f_or_grad, call, positions)
    value = _value(grad, call, grad_name, False)
    given = _given_jacobian(hessian, call, positions, names, value.shape, hess_name, True, False)
    result = _run(grad, call, positions, names, value, grad_name, given, hess_name, "check_hessian",
                  engines=engines, eps=eps, atol=atol, rtol=rtol)
    _say_where(result, [("f_or_grad", grad_name, grad_where), ("hessian", hess_name, hess_where)])
    return finish(result, raise_exception)


# ----------------------------------------------------------------------------- naming
def function_name(func, fallback: str) -> tuple[str, str]:
    """``(name, "file.py:line")`` of a user's function, for reports: its qualified name
    (without ``<locals>`` parts), or a lambda's own source text.

    >>> square = lambda x: x * x  # noqa: E731
    >>> function_name(square, "f")[0]
    'lambda x: x * x'
    >>> function_name(function_name, "f")[0]
    'function_name'
    """
    code = getattr(func, "__code__", None)
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or fallback
    name = name.rpartition("<locals>.")[2]
    if code is None:
        return name, ""
    where = f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}"
    if getattr(func, "__name__", "") == "<lambda>":
        name = _lambda_source(code) or f"lambda at {where}"
    return name, where


def _lambda_source(code) -> str | None:
    """The source text of the lambda compiled to ``code``, when its file can be read."""
    source = "".join(linecache.getlines(code.co_filename))
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    found = [node for node in ast.walk(tree) if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno]
    if len(found) > 1:  # several lambdas on the line: the one whose body holds the code's first column
        columns = [pos[2] for pos in code.co_positions()
                   if pos[0] == code.co_firstlineno and pos[2] is not None and pos[3] and pos[3] > pos[2]]
        column = min(columns, default=-1)
        found = [node for node in found if node.body.col_offset <= column <= (node.body.end_col_offset or 0)
                 and node.body.lineno == code.co_firstlineno] or found[:0]
    if len(found) != 1:
        return None
    text = ast.get_source_segment(source, found[0])
    return " ".join(text.split()) if text else None


def _say_where(result: GradcheckResult, functions: list[tuple[str, str, str]]) -> None:
    """On failure, say where each of the user's functions is defined."""
    if result.ok:
        return
    places = [f"{role} is {name} ({where})" for role, name, where in functions if where]
    if places:
        result.notes.append("where: " + "; ".join(places))


# ----------------------------------------------------------------------------- arguments
def _arguments(x, args: tuple, argnums, what: str) -> tuple[list, list[int], bool]:
    """``(call arguments, differentiated positions, single)``: the differentiated ones
    copied to floating arrays, the others passed as they are (data)."""
    call = [x, *args]
    single = isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool)
    if single:
        positions = [int(argnums)]
    elif isinstance(argnums, (tuple, list)) and argnums and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in argnums):
        positions = [int(a) for a in argnums]
    else:
        raise TypeError(f"{what}: argnums must be an int or a non-empty tuple of ints, got {argnums!r}")
    for position in positions:
        if not -len(call) <= position < len(call):
            raise ValueError(f"{what}: argnums {position} is out of range: f gets {len(call)} argument(s) "
                             f"(x and {len(args)} more)")
    positions = [position % len(call) for position in positions]
    if len(set(positions)) != len(positions):
        raise ValueError(f"{what}: argnums {argnums!r} names an argument twice")
    for position in positions:
        call[position] = _float_array(call[position], f"argument {position}", what)
    return call, positions, single


def _float_array(value, label: str, what: str = "check_grad") -> np.ndarray:
    if callable(value) and not isinstance(value, np.ndarray):
        raise TypeError(f"{what}: {label} is a function ({value!r}); pass the point as an array")
    try:
        array = np.array(value, dtype=None if isinstance(value, np.ndarray) and value.dtype.kind == "f"
                         else np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{what}: {label} cannot be made a floating-point array ({err})") from None
    if array.dtype.kind != "f":
        raise TypeError(f"{what}: {label} has dtype {array.dtype}; pass floating-point arrays")
    return array


def _parameter_names(f, call: list, positions: list[int]) -> list[str]:
    params = parameter_names(f)
    if len(params) >= len(call):
        return [params[i] for i in positions]
    return ["x" if i == 0 else f"arg{i}" for i in positions]


def _split_value_and_grad(f, f_name: str):
    def pair(*call):
        returned = f(*call)
        if not (isinstance(returned, tuple) and len(returned) == 2):
            raise TypeError(f"with value_and_grad=True, {f_name} must return (value, gradient); it returned "
                            f"{type(returned).__name__}" + (f" of length {len(returned)}"
                                                            if isinstance(returned, tuple) else ""))
        return returned

    return (lambda *call: pair(*call)[0]), (lambda *call: pair(*call)[1])


def _value(f, call: list, f_name: str, value_and_grad: bool) -> np.ndarray:
    returned = f(*_copies(call))
    if isinstance(returned, tuple):
        hint = ("; if it returns (value, gradient), pass grad_f=None and value_and_grad=True"
                if len(returned) == 2 and not value_and_grad else "")
        raise TypeError(f"{f_name} returned a tuple of {len(returned)} items; it must return one value "
                        f"(a number or an array){hint}")
    return np.asarray(returned, np.float64)


def _copies(call: list) -> list:
    return [a.copy() if isinstance(a, np.ndarray) else a for a in call]


def _given_jacobian(grad_f, call, positions, names, out_shape, grad_name, single, elementwise):
    returned = grad_f(*_copies(call))
    several = (f"; it returned a tuple of {len(returned)}: to check several arguments, pass argnums=(0, 1, ...)"
               if single and isinstance(returned, tuple) else "")
    if single:
        grads = [returned]
    else:
        grads = list(returned) if isinstance(returned, (tuple, list)) else [returned]
        if len(grads) != len(positions):
            raise ValueError(f"{grad_name} returned {len(grads)} gradient(s) for {len(positions)} differentiated "
                             "argument(s); return one array per argument of argnums (a tuple)")
    blocks = []
    out_size = int(np.prod(out_shape, dtype=np.int64))
    for grad, position, name in zip(grads, positions, names):
        array = call[position]
        try:
            grad = np.asarray(grad, np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{grad_name} returned a gradient for {name} that is not an array of numbers "
                             f"({err}){several}") from None
        expected = tuple(out_shape) + array.shape
        if grad.shape != expected:
            what = ("the argument's shape" if not out_shape else "f's shape followed by the argument's shape")
            if elementwise:
                what = "elementwise: one derivative per element"
            raise ValueError(f"{grad_name} returned a gradient of shape {list(grad.shape)} for {name} of shape "
                             f"{list(array.shape)}; expected {list(expected)} ({what}){several}")
        blocks.append(grad.reshape(-1, 1) if elementwise else grad.reshape(out_size, array.size))
    return [blocks]


def _gradient_of(f_or_grad, call: list, what: str):
    """``(gradient function, name, where)``: ``f_or_grad`` itself when it returns an array
    of x's shape, else the gradient symgrad's tape traces from the scalar it returns."""
    name, where = function_name(f_or_grad, "f")
    if not callable(f_or_grad):
        raise TypeError(f"{what} expects a function (the gradient, or the scalar function), got "
                        f"{type(f_or_grad).__name__}")
    value = np.asarray(f_or_grad(*_copies(call)), np.float64)
    if value.shape == call[0].shape and value.ndim:
        return f_or_grad, name, where
    if value.ndim:
        raise ValueError(f"{what}: {name} returned shape {list(value.shape)}; give the gradient (x's shape "
                         f"{list(call[0].shape)}) or the scalar function")

    def traced_gradient(x, *rest):
        leaf = Tensor(np.array(x, np.float64), requires_grad=True)
        with backward_engine("tape"), enable_grad():
            out = f_or_grad(leaf, *rest)
            gradient, = autograd_grad([out], [leaf], allow_unused=True)
        return np.zeros(leaf.shape) if gradient is None else np.asarray(gradient._data, np.float64)

    try:
        traced_gradient(*_copies(call))
    except Exception as err:  # noqa: BLE001  (NumPy-only code cannot be traced)
        raise TypeError(f"{what}: {name} returns a scalar, and its gradient cannot be traced (calling it on "
                        f"symgrad tensors raised {type(err).__name__}: {err}); pass the gradient function "
                        "instead") from None
    label = f"grad_{name}" if name.isidentifier() else "grad_f"
    traced_gradient.__qualname__ = label
    return traced_gradient, label, where


def _run(f, call, positions, names, value, f_name, given, given_name, what, *, engines, eps, atol, rtol,
         columns="elements", along=None, in_name=None) -> GradcheckResult:
    """One :class:`Check` of NumPy functions: finite differences of ``f`` against ``given``,
    and ``f`` traced on symgrad tensors as extra opinions when ``engines`` and it runs."""
    tensors = list(call)
    for position, name in zip(positions, names):
        tensors[position] = Tensor(call[position], requires_grad=True, name=in_name or name)

    def fd_func(*ts):
        return Tensor(np.asarray(f(*[t._data if isinstance(t, Tensor) else t for t in ts]), np.float64))

    traced, note = _traceable(f, call, positions, names, value) if engines else (None, "")
    labels, skipped = [], {}
    if traced:
        labels, skipped = resolve_engines(engines)
        labels = [(engine, f"{label} (traced {f_name})") for engine, label in labels]
    check = Check(traced, tuple(tensors), eps=eps, atol=atol, rtol=rtol, engines=labels, what=f"{what}({f_name})",
                  given={given_name: given}, fd_func=fd_func, out_names=[_output_name(f_name)], columns=columns,
                  along=along)
    result = check.run()
    result.skipped.update(skipped)
    if note:
        result.notes.append(note)
    return result


def _output_name(f_name: str) -> str:
    """How Jacobian elements name the output: the function's name, or ``f`` for a lambda's text."""
    return f_name if f_name.replace(".", "").replace("_", "").isalnum() else "f"


def _traceable(f, call, positions, names, value):
    """``(f, "")`` when ``f`` runs on symgrad tensors and gives the same value, else
    ``(None, why)``."""
    tensors = _copies(call)
    for position, name in zip(positions, names):
        tensors[position] = Tensor(call[position].copy(), requires_grad=True, name=name)
    try:
        out = f(*tensors)
    except Exception as err:  # noqa: BLE001  (NumPy-only code is the common case)
        return None, (f"note: f was not traced (calling it on symgrad tensors raised {type(err).__name__}: "
                      f"{err}); only finite differences checked the gradient")
    if not isinstance(out, Tensor):
        return None, f"note: f was not traced (on symgrad tensors it returned a {type(out).__name__}, not a Tensor)"
    if out.shape != value.shape or not np.allclose(np.asarray(out._data, np.float64), value, rtol=1e-10, atol=1e-12,
                                                   equal_nan=True):
        return None, "note: f was not traced (on symgrad tensors it computes a different value)"
    return f, ""
