"""JAX-style transforms with closed forms: ``grad``, ``value_and_grad``, ``jacobian``,
``hessian``, ``vjp``, ``jvp``.

Each transform accepts either

* a **Python function** written with symgrad ops (``lambda w: (x @ w).sigmoid().sum()``):
  it is *traced* once per input shapes and dtypes -- called on leaf tensors named after
  its parameters, its recorded graph translated to SymPy (``graph.py``) -- so, as with
  ``jax.jit``, Python control flow is frozen at trace time. Every floating argument is
  recorded (differentiated or not) and integer arguments used as indices are read at
  each call; tensors it creates from Python data become inputs whose values are read at
  each call. A value it computes from its arguments *outside* the recorded graph (a
  comparison mask, ``argmax``, ``detach()``, integer arithmetic, work under ``no_grad``)
  raises :class:`~symgrad.tape.tracing.UntraceableError` when the graph uses it, rather
  than being frozen at its first value; or
* a **SymPy expression**, with the symbols to call it with (``args``; by default the
  differentiated symbols first, then the other free symbols by name).  Plain symbols are
  scalars evaluated elementwise (pass arrays to evaluate on many points); array symbols
  (``ArrayVar``) are whole arrays.

and returns a :class:`Transformed` callable on NumPy arrays and Python numbers, which
exposes the closed forms it compiled (``closed_forms``), the generated ``source`` and a
notebook rendering.  Derivatives come from :mod:`.reverse`; code from :mod:`.compile`
(the global cache is shared with ``backward()``), by the ``backend=`` each transform
takes (``"numpy"`` by default; ``"c"`` for generated C, see :mod:`.backends`).

``jacobian`` and ``hessian`` compile one vector-Jacobian product with a symbolic
upstream gradient and evaluate it once per output element (NumPy, no re-derivation).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp
from sympy.core.parameters import evaluate

from ..ops import normalize_index
from .compile import CompiledFunction, cached
from .reverse import adjoints, jvp_expr
from .structural import exact
from .symbols import ArrayVar, free_symbols, intern, shape_of, size_of

__all__ = ["grad", "value_and_grad", "jacobian", "hessian", "vjp", "jvp", "Transformed"]


# ============================================================================ traced problems
class _Problem:
    """A function (or expression) fixed for one set of input shapes and dtypes: its input
    symbols, the positions of the caller's arguments among them, the value expression and
    how to read the remaining (captured) inputs."""

    def __init__(self, symbols: list, arg_positions: list, value: sp.Expr, value_shape: tuple,
                 extra_values: Callable[[], list], key: Any, arg_shapes: list, arg_dtypes: list,
                 index_positions: Sequence[tuple[int, int]] = (), as_recorded: bool = False) -> None:
        self.symbols = symbols
        self.arg_positions = arg_positions
        self.index_positions = list(index_positions)  # (argument, input) for arguments used as indices
        self.value = value
        self.value_shape = value_shape
        self.as_recorded = as_recorded  # a traced function's form, unsimplified (Segment.build)
        self.extra_values = extra_values
        self.key = key
        self.arg_shapes = arg_shapes
        self.arg_dtypes = arg_dtypes
        # the usual case: the inputs are the arguments themselves, in order
        self._arguments_only = list(arg_positions) == list(range(len(symbols))) and not self.index_positions

    def inputs(self, args: Sequence[np.ndarray]) -> list:
        if self._arguments_only:
            return list(args)
        values = self.extra_values()
        for position, array in zip(self.arg_positions, args):
            if position is not None:
                values[position] = array
        for argument, position in self.index_positions:
            values[position] = normalize_index(args[argument])[0]
        return values

    def wrt(self, argnums: Sequence[int]) -> list:
        out = []
        for i in argnums:
            position = self.arg_positions[i]
            if position is None:  # the function does not use this argument
                out.append(ArrayVar(f"_unused{i}", self.arg_shapes[i], self.arg_dtypes[i]))
            else:
                out.append(self.symbols[position])
        return out


def _arrays(args: Sequence[Any], argnums: Sequence[int]) -> list[np.ndarray]:
    out = []
    for i, a in enumerate(args):
        if type(a) is not np.ndarray:
            a = np.asarray(getattr(a, "_data", a))
        if a.dtype.kind not in "fc" and i in argnums:
            a = a.astype(np.float64)
        out.append(a)
    return out


def _trace(f: Callable, arrays: list[np.ndarray], argnums: Sequence[int], kwargs: dict) -> _Problem:
    from .. import tape
    from ..tape.tracing import check_use, tracing
    from .graph import Segment

    names = _parameter_names(f, len(arrays))
    # Every floating argument requires grad while tracing, differentiated or not, so that
    # what f computes from it is recorded (and recomputed at each call); the tracing guard
    # refuses what f computes from its inputs outside the graph (masks, argmax, ...).
    leaves = [tape.tensor(a, requires_grad=(i in argnums or a.dtype.kind == "f"), name=names[i])
              for i, a in enumerate(arrays)]
    with tape.enable_grad(), tracing(leaves) as trace:
        out = f(*leaves, **kwargs)
        if not isinstance(out, tape.Tensor):
            out = tape.as_tensor(out)
        check_use([out])
    segment = Segment([out])
    positions = [segment.input_position(t) for t in leaves]
    index_inputs = [(i, segment.index_position(array)) for i, leaf in enumerate(leaves)
                    for array in trace.index_arrays(leaf)]
    symbols, (value,) = segment.build(as_recorded=True)
    value = exact(value, tuple(out.shape)) if tuple(out.shape) else value
    # the function's own arguments first, in order, then what it captured
    first = [p for p in positions if p is not None]
    order = first + [i for i in range(len(symbols)) if i not in first]
    symbols = [symbols[i] for i in order]
    refs = [segment.inputs[i] for i in order]
    positions = [None if p is None else order.index(p) for p in positions]
    index_positions = [(i, order.index(p)) for i, p in index_inputs if p is not None]
    return _Problem(symbols, positions, value, tuple(out.shape), lambda: [r.value() for r in refs],
                    segment.key, [a.shape for a in arrays], [a.dtype for a in arrays], index_positions,
                    as_recorded=True)


def _parameter_names(f: Callable, n: int) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(f).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) < n:
        params += [f"arg{i}" for i in range(len(params), n)]
    return params[:n]


def _expression_problem(expr: sp.Expr, args: Sequence[sp.Symbol]) -> _Problem:
    symbols = list(args)
    missing = sorted(free_symbols(expr) - set(symbols), key=str)
    if missing:
        raise ValueError(f"the expression also depends on {missing}; list them in args=")
    expr = intern(expr)  # one object per structure, as the derivatives built from it (no deep comparisons)
    return _Problem(symbols, list(range(len(symbols))), expr, shape_of(expr), lambda: [None] * len(symbols),
                    ("sympy", expr, tuple(symbols)), [shape_of(s) for s in symbols],
                    [np.dtype(getattr(s, "array_dtype", "float64")) for s in symbols])


# ============================================================================ the callable
class Transformed:
    """A compiled derivative transform; call it like the original function.

    ``closed_forms`` maps output names to SymPy closed forms of the most recent input
    shapes; ``source`` is the generated code (NumPy, or C for a C ``backend``);
    ``compiled`` the :class:`~symgrad.symbolic.compile.CompiledFunction` (or the
    backend's equivalent).
    """

    def __init__(self, kind: str, f: Any, argnums: Any, args: Sequence[sp.Symbol] | None, simplify: bool,
                 backend: str = "numpy") -> None:
        from .backends import get_backend

        self.kind = kind
        self.f = f
        self.simplify = simplify
        self.backend = get_backend(backend).name
        self._single = isinstance(argnums, (int, np.integer, sp.Symbol))
        self.is_expression = isinstance(f, sp.Basic)
        if self.is_expression:
            wrt = [argnums] if self._single else list(argnums)
            if all(isinstance(w, (int, np.integer)) for w in wrt):
                if args is None:
                    args = sorted(free_symbols(f), key=str)
                wrt = [args[i] for i in wrt]
            if args is None:
                args = list(wrt) + sorted(free_symbols(f) - set(wrt), key=str)
            self.args = list(args)
            self.argnums = [self.args.index(w) for w in wrt]
            self._problem = _expression_problem(f, self.args)
        else:
            self.args = None
            self.argnums = [int(argnums)] if self._single else [int(a) for a in argnums]
            self._problem = None
        self._compiled: dict = {}
        self.compiled: CompiledFunction | None = None
        functools_name = getattr(f, "__name__", "expr")
        self.__name__ = f"{kind}_{functools_name}"

    # ------------------------------------------------------------------ compile
    def _prepare(self, args: Sequence[Any], kwargs: dict) -> tuple[_Problem, CompiledFunction, list]:
        if self.is_expression:
            if kwargs:
                raise TypeError("a transformed SymPy expression takes its inputs positionally")
            if len(args) != len(self.args):
                raise TypeError(f"expected {len(self.args)} inputs {self.args}, got {len(args)}")
            arrays = [np.asarray(getattr(a, "_data", a)) for a in args]
            if self.compiled is not None:  # one expression, one compiled function: no cache lookup per call
                return self._problem, self.compiled, arrays
            problem = self._problem
            signature: Any = None
        else:
            arrays = _arrays(args, self.argnums)
            signature = (tuple([(a.shape, a.dtype) for a in arrays]), tuple(sorted(kwargs.items())) if kwargs else ())
            entry = self._compiled.get(signature)
            if entry is not None:  # traced before with as many arguments, so argnums fit
                self.compiled = entry[1]
                return entry[0], entry[1], arrays
            for i in self.argnums:
                if i >= len(arrays):
                    raise TypeError(f"argnums={i} but the function was called with {len(arrays)} arguments")
            problem = _trace(self.f, arrays, self.argnums, kwargs)
        key = (self.kind, problem.key, tuple(self.argnums), self.simplify, self.backend)
        compiled = cached(key, lambda: self._build(problem))
        if signature is not None:
            self._compiled[signature] = (problem, compiled)
        self.compiled = compiled
        return problem, compiled, arrays

    def _build(self, problem: _Problem) -> CompiledFunction:
        wrt = problem.wrt(self.argnums)
        value = problem.value
        names = [str(w) for w in wrt]
        outputs: list = []
        out_names: list = []
        shapes: list = []
        dtypes: list = []
        if self.kind in ("grad", "value_and_grad", "hessian"):
            if size_of(problem.value_shape) != 1:
                raise ValueError(
                    f"{self.kind} needs a function with one output element, got shape {problem.value_shape}: "
                    "use jacobian() or vjp()"
                )
            grads = adjoints([(value, sp.S.One)], wrt, as_recorded=problem.as_recorded)
            grads = [exact(g, shape_of(w)) if shape_of(w) else g for g, w in zip(grads, wrt)]
            if self.kind == "hessian":
                seeds = [ArrayVar(f"v_{n}", shape_of(w), getattr(w, "array_dtype", "float64"))
                         for n, w in zip(names, wrt)]
                # one VJP of the gradient: row i of the Hessian is its value at e_i
                from .structural import Sum

                with evaluate(not problem.as_recorded):
                    inner = sp.Add(*[Sum.of(g * s) if shape_of(w) else g * s for g, s, w in zip(grads, seeds, wrt)])
                rows = adjoints([(inner, sp.S.One)], wrt, as_recorded=problem.as_recorded)
                outputs = [exact(r, shape_of(w)) if shape_of(w) else r for r, w in zip(rows, wrt)]
                out_names = [f"hvp_{n}" for n in names]
                extra = seeds
            else:
                outputs = ([value] if self.kind == "value_and_grad" else []) + grads
                out_names = (["value"] if self.kind == "value_and_grad" else []) + [f"grad_{n}" for n in names]
                extra = []
        elif self.kind in ("jacobian", "vjp"):
            seed = ArrayVar("g", problem.value_shape, "float64")
            top = exact(value, problem.value_shape) if problem.value_shape else value
            grads = adjoints([(top, seed)], wrt, as_recorded=problem.as_recorded)
            outputs = ([value] if self.kind == "vjp" else []) + [
                exact(g, shape_of(w)) if shape_of(w) else g for g, w in zip(grads, wrt)]
            out_names = (["value"] if self.kind == "vjp" else []) + [f"vjp_{n}" for n in names]
            extra = [seed]
        elif self.kind == "jvp":
            tangents = [ArrayVar(f"d{n}", shape_of(w), getattr(w, "array_dtype", "float64"))
                        for n, w in zip(names, wrt)]
            with evaluate(not problem.as_recorded):
                total = sp.Add(*[jvp_expr(value, w, t, as_recorded=problem.as_recorded)
                                 for w, t in zip(wrt, tangents)])
            if problem.value_shape:
                total = exact(total, problem.value_shape)
            outputs, out_names, extra = [value, total], ["value", "tangent"], tangents
        else:  # pragma: no cover
            raise ValueError(f"unknown transform {self.kind}")
        if self.simplify:
            from .printing import tidy

            outputs = [tidy(o) for o in outputs]
        inputs = problem.symbols + extra
        from .backends import get_backend

        return get_backend(self.backend).compile(inputs, outputs, input_names=[str(s) for s in inputs],
                                                 output_names=out_names, output_shapes=[None] * len(outputs),
                                                 name=self.kind)

    # ------------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any):
        if self.kind in ("vjp", "jvp"):
            raise TypeError(f"call symgrad's {self.kind}(f, ...) directly; it returns values, not a function")
        problem, compiled, arrays = self._prepare(args, kwargs)
        inputs = problem.inputs(arrays)
        if self.kind == "grad":
            return self._pick(_evaluate(compiled, inputs), arrays)
        if self.kind == "value_and_grad":
            out = _evaluate(compiled, inputs)
            return out[0], self._pick(out[1:], arrays)
        if self.kind == "jacobian":
            return self._pick(_jacobian_rows(compiled, inputs, problem.value_shape, len(self.argnums), 0), arrays,
                              cast=False)
        if self.kind == "hessian":
            return self._pick(_hessian(compiled, inputs, problem, self.argnums), arrays, cast=False)
        raise AssertionError(self.kind)  # pragma: no cover

    def _pick(self, grads: Sequence[np.ndarray], arrays: list, cast: bool = True):
        """The gradients of ``argnums``, each (with ``cast``) of its argument's shape and
        dtype.  The compiled function's outputs are already fresh, writeable arrays that
        share no memory with an input, so one is copied only to broadcast or cast it."""
        out = []
        for g, i in zip(grads, self.argnums):
            if not isinstance(g, tuple):
                g = g if type(g) is np.ndarray else np.asarray(g)
                like = arrays[i]
                if cast and like.dtype.kind in "fc":
                    if g.shape != like.shape:
                        g = np.broadcast_to(g, like.shape).astype(like.dtype)  # a new, writeable array
                    elif g.dtype != like.dtype:
                        g = g.astype(like.dtype)
            out.append(g)
        return out[0] if self._single else tuple(out)

    # ------------------------------------------------------------------ inspection
    @property
    def closed_forms(self) -> dict:
        """Output name -> SymPy closed form, of the most recent compilation."""
        self._need_compiled()
        return dict(self.compiled.exprs)

    @property
    def source(self) -> str:
        """The generated NumPy source of the most recent compilation."""
        self._need_compiled()
        return self.compiled.source

    def _need_compiled(self) -> None:
        if self.compiled is None:
            if self.is_expression:
                self._prepare([np.zeros(shape_of(s)) for s in self.args], {})
            else:
                raise RuntimeError(f"{self.__name__} has not been called yet: its closed forms depend on the input "
                                   "shapes, so call it once first")

    def _repr_latex_(self) -> str:
        self._need_compiled()
        return self.compiled._repr_latex_()

    def __repr__(self) -> str:
        target = f"expression {self.f}" if self.is_expression else getattr(self.f, "__name__", repr(self.f))
        return f"<symgrad {self.kind} of {target}, argnums={self.argnums}>"


def _evaluate(compiled: Any, inputs: list) -> Sequence:
    """The outputs of ``compiled`` for ``inputs`` in order: the thin path of a
    ``CompiledFunction`` (no argument binding, no named tuple), else the backend's call."""
    return compiled.outputs_of(inputs) if isinstance(compiled, CompiledFunction) else compiled(*inputs)


def _jacobian_rows(compiled: CompiledFunction, inputs: list, out_shape: tuple, n_wrt: int, skip: int) -> list:
    """Evaluate a compiled VJP (last input: the seed ``g``) at every one-hot seed."""
    rows: list[list] = [[] for _ in range(n_wrt)]
    size = size_of(out_shape)
    for k in range(size):
        seed = np.zeros(size)
        seed[k] = 1.0
        out = compiled(*inputs, seed.reshape(out_shape))
        for i in range(n_wrt):
            rows[i].append(np.asarray(out[skip + i]))
    result = []
    for i in range(n_wrt):
        stacked = np.stack(rows[i]) if rows[i] else np.zeros((0,))
        result.append(stacked.reshape(tuple(out_shape) + stacked.shape[1:]))
    return result


def _hessian(compiled: CompiledFunction, inputs: list, problem: _Problem, argnums: list) -> list:
    """Block rows of the Hessian from the compiled Hessian-vector product."""
    shapes = [problem.arg_shapes[i] for i in argnums]
    blocks: list = []
    for j, shape_j in enumerate(shapes):
        rows: list = [[] for _ in shapes]
        for k in range(size_of(shape_j)):
            seeds = [np.zeros(s) for s in shapes]
            seeds[j].reshape(-1)[k] = 1.0
            out = compiled(*inputs, *seeds)
            for i in range(len(shapes)):
                rows[i].append(np.broadcast_to(out[i], shapes[i]))
        blocks.append([np.stack(r).reshape(tuple(shape_j) + tuple(shapes[i])) for i, r in enumerate(rows)])
    if len(shapes) == 1:
        return [blocks[0][0]]
    return [tuple(blocks[i][j] for j in range(len(shapes))) for i in range(len(shapes))]


# ============================================================================ public transforms
def grad(f: Any, argnums: Any = 0, *, args: Sequence[sp.Symbol] | None = None, simplify: bool = False,
         backend: str = "numpy") -> Transformed:
    """The gradient of a scalar function, as a compiled callable.

    >>> import symgrad
    >>> df = grad(lambda x: (x ** 3).sum())
    >>> df(np.array([1.0, 2.0]))
    array([ 3., 12.])
    >>> df.closed_forms
    {'grad_x': 3*x**2}
    >>> x, y = sp.symbols("x y", real=True)
    >>> grad(x ** 2 * y, y)(3.0, 5.0)        # inputs: y, then x
    array(25.)
    """
    return Transformed("grad", f, argnums, args, simplify, backend)


def value_and_grad(f: Any, argnums: Any = 0, *, args: Sequence[sp.Symbol] | None = None,
                   simplify: bool = False, backend: str = "numpy") -> Transformed:
    """``(value, gradient)`` from one compiled function.

    >>> x = sp.Symbol("x", real=True)
    >>> value_and_grad(sp.sin(x))(0.0)
    (array(0.), array(1.))
    """
    return Transformed("value_and_grad", f, argnums, args, simplify, backend)


def jacobian(f: Any, argnums: Any = 0, *, args: Sequence[sp.Symbol] | None = None,
             simplify: bool = False, backend: str = "numpy") -> Transformed:
    """The Jacobian, shaped ``output.shape + input.shape``.

    >>> jacobian(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """
    return Transformed("jacobian", f, argnums, args, simplify, backend)


def hessian(f: Any, argnums: Any = 0, *, args: Sequence[sp.Symbol] | None = None,
            simplify: bool = False, backend: str = "numpy") -> Transformed:
    """The Hessian of a scalar function, shaped ``input.shape + input.shape``.

    >>> x, y = sp.symbols("x y", real=True)
    >>> hessian(x ** 2 * y, (0, 1), args=(x, y))(1.0, 2.0)
    ((array(4.), array(2.)), (array(2.), array(0.)))
    """
    return Transformed("hessian", f, argnums, args, simplify, backend)


def vjp(f: Any, *primals: Any, argnums: Any = None, args: Sequence[sp.Symbol] | None = None,
        backend: str = "numpy"):
    """``(value, vjp_fn)``: ``vjp_fn(g)`` gives ``g``'s pull-back to every primal (a tuple).
    The compiled function is ``vjp_fn.compiled``.

    >>> value, back = vjp(lambda x: x ** 2, np.array([1.0, 3.0]))
    >>> value, back(np.ones(2))
    (array([1., 9.]), (array([2., 6.]),))
    """
    argnums = tuple(range(len(primals))) if argnums is None else argnums
    t = Transformed("vjp", f, argnums, args, False, backend)
    problem, compiled, arrays = t._prepare(primals, {})
    inputs = problem.inputs(arrays)
    value = compiled(*inputs, np.zeros(problem.value_shape))[0]

    def vjp_fn(g: Any) -> tuple:
        g = np.broadcast_to(np.asarray(getattr(g, "_data", g), dtype=np.float64), problem.value_shape)
        out = compiled(*inputs, g)[1:]
        return tuple(np.broadcast_to(o, arrays[i].shape).astype(arrays[i].dtype, copy=True)
                     for o, i in zip(out, t.argnums))

    vjp_fn.compiled = compiled  # type: ignore[attr-defined]
    vjp_fn.closed_forms = dict(compiled.exprs)  # type: ignore[attr-defined]
    return value, vjp_fn


def jvp(f: Any, primals: Sequence[Any], tangents: Sequence[Any], *, args: Sequence[sp.Symbol] | None = None,
        backend: str = "numpy"):
    """``(value, tangent_out)``: the Jacobian-vector product in forward direction.

    >>> jvp(lambda x: x ** 2, (np.array([1.0, 3.0]),), (np.array([1.0, 0.5]),))
    (array([1., 9.]), array([2., 3.]))
    """
    t = Transformed("jvp", f, tuple(range(len(primals))), args, False, backend)
    problem, compiled, arrays = t._prepare(primals, {})
    inputs = problem.inputs(arrays)
    tangents = [np.broadcast_to(np.asarray(getattr(v, "_data", v), dtype=np.float64), a.shape)
                for v, a in zip(tangents, arrays)]
    out = compiled(*inputs, *tangents)
    return out[0], out[1]
