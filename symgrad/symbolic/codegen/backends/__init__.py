"""Backends for compiled functions: the registry, the common interface, and their errors.

``compile_exprs(..., backend=...)`` and every transform (``grad(f, backend="c")``, ...)
hand the closed forms to a *backend*, which turns them into a callable with the interface
of :class:`~symgrad.symbolic.codegen.compile.CompiledFunction`: call it with arrays (positionally
or by name), get a named tuple of arrays; ``.source``, ``.exprs``, ``.inputs``,
``.outputs`` and ``.backend`` are inspectable.

``auto``
    The default: the ``numpy`` backend's function, tiered up to the ``c`` backend's once its
    calls have taken as long as a C compile costs, when a working C compiler is found and C
    turns out faster (:mod:`.auto`).
``numpy``
    Everything: one generated NumPy function (no extra dependency).
``c``
    Generated C for every program: ``c_scalar`` when every input and output is a scalar,
    ``c_fused`` when one fused loop computes everything, else a plan of fused C loops, C
    loop nests for sums over axes (:mod:`.c_axes`) and NumPy steps for the operations C
    does not translate (``matmul``, ``softmax``, ...; :mod:`.c_plan`).
``c_fused``
    Elementwise expressions over arrays, their full sums and means, and basic slices of
    1-D arrays and their adjoints, as one fused, multithreaded, vectorised C loop
    (:mod:`.c_fused`, :mod:`.c_points`).
``c_scalar``
    Functions of many scalar symbols (a plain SymPy expression of ``x0 .. x999``) as one
    straight-line C function over a packed vector (:mod:`.c_scalar`).

The C backends need a C compiler at run time (``$CC``, else ``cc`` or ``gcc``; see
:mod:`.cbuild`) and compute in ``float64``: ``float32``/``float16`` inputs are widened,
and each output is rounded to the dtype NumPy would give it (or the requested
``output_dtypes``), so results agree with the NumPy backend to that dtype's precision.
Their inputs must have exactly the shapes the symbols declare (compiled code is
specialised to them).  Nothing is silently wrong: a missing compiler raises
:class:`CompilerNotFoundError`, an operation a backend cannot translate
:class:`UnsupportedExpressionError` (naming it), a wrong input :class:`BackendInputError`.

>>> import sympy as sp
>>> backend_names()
['auto', 'c', 'c_fused', 'c_scalar', 'numpy']
>>> get_backend("numpy").compile([sp.Symbol("x")], [sp.Symbol("x") + 1]).backend
'numpy'
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import sympy as sp

from ..compile import ClosedFormFunction

__all__ = [
    "Backend", "NativeFunction", "register_backend", "get_backend", "backend_names",
    "BackendError", "CompilerNotFoundError", "CCompileError", "UnsafeBuildDirError", "UnsupportedExpressionError",
    "BackendInputError",
]


# ============================================================================ errors
class BackendError(RuntimeError):
    """Base class of the errors a backend raises."""


class CompilerNotFoundError(BackendError):
    """A C backend was asked for, but no C compiler was found (the message says where it
    looked and how to set ``CC``)."""


class CCompileError(BackendError):
    """The C compiler rejected generated code (the message has its output)."""


class UnsafeBuildDirError(BackendError):
    """The C build directory is a symbolic link, not a directory, owned by another user or
    writable by the group or others (the message names it, the reason and what to do);
    compiled code is never loaded from it."""


class UnsupportedExpressionError(BackendError, NotImplementedError):
    """The expressions use an operation this backend does not translate (the message
    names it); ``backend="numpy"`` compiles everything."""


class BackendInputError(ValueError):
    """An input does not fit the compiled function (the message names its shape or dtype)."""


# ============================================================================ the interface
class Backend:
    """A way of compiling closed forms.  Subclasses set ``name`` and implement
    :meth:`compile`; :func:`register_backend` makes them available by name."""

    name: str = ""
    summary: str = ""

    def compile(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], *,
                input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                output_shapes: Sequence[Any] | None = None, output_dtypes: Sequence[Any] | None = None,
                name: str = "compiled") -> Any:
        """A callable with the interface of ``CompiledFunction`` for ``outputs`` over ``inputs``."""
        raise NotImplementedError(f"backend {self.name!r} does not implement compile()")

    def __repr__(self) -> str:
        return f"<symgrad backend {self.name!r}: {self.summary}>"


_BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Make ``backend`` available as ``backend=backend.name`` (replacing one of that name).

    >>> class Echo(Backend):
    ...     name, summary = "echo_doc", "for this example"
    >>> register_backend(Echo()).name in backend_names()
    True
    >>> _ = _BACKENDS.pop("echo_doc")
    """
    if not backend.name or not backend.name.isidentifier():
        raise ValueError(f"a backend needs an identifier for a name, got {backend.name!r}")
    _BACKENDS[backend.name] = backend
    return backend


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``.

    >>> get_backend("c_fused").name
    'c_fused'
    >>> get_backend("fortran")
    Traceback (most recent call last):
    ...
    ValueError: unknown backend 'fortran'; the backends are ['auto', 'c', 'c_fused', 'c_scalar', 'numpy']
    """
    try:
        return _BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backend {name!r}; the backends are {backend_names()}") from None


def backend_names() -> list[str]:
    """The names ``backend=`` accepts, sorted.

    >>> "numpy" in backend_names()
    True
    """
    return sorted(_BACKENDS)


# ============================================================================ native functions
class NativeFunction(ClosedFormFunction):
    """What a native (non-NumPy) backend returns: a :class:`ClosedFormFunction`, as
    ``CompiledFunction`` is.

    Subclasses generate ``source``, load it, and implement :meth:`_run` (validated input
    arrays in, one ``float64`` array per output out); this class checks every input
    against its symbol's shape and dtype (floating or bool), and shapes and casts the
    outputs: each gets the dtype NumPy would give it (the promotion of the inputs it
    depends on, ``cast`` targets included; a comparison gives ``bool``; a constant, the
    promotion of all inputs, as the tape would), unless ``output_dtypes`` says otherwise.
    """

    def __init__(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], *,
                 input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 output_shapes: Sequence[Any] | None = None, output_dtypes: Sequence[Any] | None = None,
                 name: str = "compiled") -> None:
        from ...core.symbols import shape_of

        outputs = [sp.sympify(o) for o in outputs]
        super().__init__(inputs, outputs, input_names=input_names, output_names=output_names,
                         output_dtypes=output_dtypes, name=name)
        shapes = list(output_shapes) if output_shapes is not None else [None] * len(outputs)
        self.output_shapes = [tuple(s) if s is not None else shape_of(e) for s, e in zip(shapes, outputs)]
        self.input_shapes = [tuple(shape_of(s)) for s in self.symbols]
        self.source = ""
        self.n_temporaries = 0
        self._dtype_rules = _dtype_rules(self.symbols, outputs)
        self._dtypes_for: dict = {}

    # ------------------------------------------------------------------ calling
    def outputs_of(self, values: Sequence[Any]) -> list:
        """The outputs, as a list, for every input in order: the call without argument
        binding or the named tuple (as ``CompiledFunction.outputs_of``)."""
        arrays = [self._check(i, v) for i, v in enumerate(values)]
        raw = self._run(arrays)
        dtypes = self._output_dtypes(arrays)
        return [self._finish(r, self.output_shapes[k], dtypes[k]) for k, r in enumerate(raw)]

    def _check(self, i: int, value: Any) -> np.ndarray:
        if type(value) is float or type(value) is int:
            array = np.float64(value)  # a NumPy scalar: shape (), dtype float64, cheaper than an array
        else:
            array = np.asarray(getattr(value, "_data", value))
            if not (array.dtype.kind == "b" or (array.dtype.kind == "f" and array.dtype.itemsize <= 8)):
                raise BackendInputError(
                    f"input {self.inputs[i]!r} of {self.name} has dtype {array.dtype}; the {self.backend} backend "
                    "computes in float64 and takes float16, float32, float64 or bool inputs: convert it, or use "
                    "backend='numpy'")
        if array.shape != self.input_shapes[i]:
            raise BackendInputError(
                f"input {self.inputs[i]!r} of {self.name} has shape {array.shape}, but the {self.backend} backend "
                f"compiled it for shape {self.input_shapes[i]} (the shape of its symbol); pass that shape, "
                "compile again for the new one, or use backend='numpy', which broadcasts")
        return array

    def _output_dtypes(self, arrays: list) -> list:
        key = tuple(a.dtype for a in arrays)
        dtypes = self._dtypes_for.get(key)
        if dtypes is None:
            dtypes = [fixed if fixed is not None else rule(key)
                      for fixed, rule in zip(self.output_dtypes, self._dtype_rules)]
            self._dtypes_for[key] = dtypes
        return dtypes

    @staticmethod
    def _finish(raw: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
        out = raw
        if out.shape != shape:
            out = np.array(np.broadcast_to(out, shape))
        if out.dtype != dtype:
            out = out.astype(dtype)
        return out

    def _run(self, arrays: list) -> list:
        """One ``float64`` array per output (its own shape), from the checked inputs."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name}({', '.join(self.inputs)}) -> ({', '.join(self.outputs)}), "
                f"backend={self.backend!r}>")


def _dtype_rules(symbols: list, outputs: list) -> list:
    """Per output, a function of the input dtypes giving the output's NumPy dtype (NumPy's
    promotion of the inputs it depends on and of casts' targets; int64 for a position)."""
    from ...forms.selections import Cast, Compare, LogicalAnd, LogicalNot, LogicalOr
    from ...forms.structural import Argmax, Argmin
    from ...core.symbols import postorder

    boolean = (Compare, LogicalAnd, LogicalOr, LogicalNot, sp.logic.boolalg.BooleanFunction, sp.core.relational.Relational)
    index = {s: i for i, s in enumerate(symbols)}
    none: frozenset = frozenset()
    flows: dict = {}  # node -> (bit mask of input positions, fixed dtypes) its dtype comes from
    for node in postorder(outputs):
        if node in index:
            flows[node] = (1 << index[node], none)
        elif not node.args or isinstance(node, boolean):
            flows[node] = (0, none)
        elif isinstance(node, Cast):
            flows[node] = (0, frozenset((node.dtype,)))
        else:
            mask, fixed = 0, none
            for arg in node.args:
                part = flows.get(arg)
                if part is not None:
                    mask |= part[0]
                    if part[1]:
                        fixed = fixed | part[1]
            flows[node] = (mask, fixed)
    rules = []
    for out in outputs:
        mask, fixed = flows.get(out, (0, none))
        positions = []
        while mask:
            low = mask & -mask
            positions.append(low.bit_length() - 1)
            mask ^= low
        if not positions and not fixed:  # a constant (``x/x`` is 1): the dtype of the whole function
            positions = list(range(len(symbols)))
        if isinstance(out, (Argmax, Argmin)):  # a position itself: int64, as NumPy's
            rules.append(lambda dtypes: np.dtype(np.int64))
        else:  # (arithmetic on positions is float, as the tape casts them before it)
            rules.append(_rule(positions, sorted(fixed), isinstance(out, boolean)))
    return rules


def _rule(positions: list, fixed: list, boolean: bool):
    def rule(dtypes: tuple) -> np.dtype:
        if boolean:
            return np.dtype(bool)
        found = [dtypes[p] for p in positions] + [np.dtype(f) for f in fixed]
        dtype = np.result_type(*found) if found else np.dtype(np.float64)
        return dtype if dtype.kind == "f" else np.dtype(np.float64)
    return rule


# ============================================================================ the registered backends
class NumPyBackend(Backend):
    """One generated NumPy function (``CompiledFunction``)."""

    name = "numpy"
    summary = "every operation, as one generated NumPy function"

    def compile(self, inputs, outputs, **options):  # noqa: D102
        from ..compile import CompiledFunction

        return CompiledFunction(inputs, outputs, **options)


class CBackend(Backend):
    """``c``: ``c_scalar`` when every input and output is a scalar, ``c_fused`` when one
    loop computes everything, else a plan of C loops and NumPy steps (:mod:`.c_plan`)."""

    name = "c"
    summary = "generated C for every program: c_scalar, c_fused, or C loops around NumPy steps"

    def compile(self, inputs, outputs, **options):  # noqa: D102
        from ...core.symbols import shape_of

        shapes = options.get("output_shapes") or [None] * len(outputs)
        scalar = all(shape_of(s) == () for s in inputs) and all(
            (tuple(s) if s is not None else shape_of(sp.sympify(o))) == () for s, o in zip(shapes, outputs))
        from .c_plan import PlannedFunction, plan_steps

        if scalar:
            try:
                return get_backend("c_scalar").compile(inputs, outputs, **options)
            except UnsupportedExpressionError:  # an op C does not translate: a plan, NumPy for it
                return PlannedFunction(inputs, outputs, **options)
        kinds, _, _ = plan_steps([sp.sympify(o) for o in outputs])
        if all(kind == "c" for kind in kinds.values()):
            try:
                return get_backend("c_fused").compile(inputs, outputs, **options)  # one loop, no plan
            except UnsupportedExpressionError:  # slices one loop cannot read after all: a plan
                pass
        return PlannedFunction(inputs, outputs, **options)


def _register_builtin() -> None:
    from .auto import AutoBackend
    from .c_fused import CFusedBackend
    from .c_scalar import CScalarBackend

    for backend in (AutoBackend(), NumPyBackend(), CBackend(), CFusedBackend(), CScalarBackend()):
        register_backend(backend)


_register_builtin()
