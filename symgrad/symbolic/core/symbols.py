"""Array-level symbols, op attributes as SymPy atoms, and shape inference.

A tensor of any shape is *one* SymPy symbol, an :class:`ArrayVar`, whose shape and
dtype are part of its identity (two symbols named ``x`` with different shapes are
different symbols, so they never share compiled code).  SymPy arithmetic on array
symbols means elementwise arithmetic with NumPy broadcasting; everything that is not
elementwise is a structural function (an :class:`ArrayFunction`, see ``forms/structural.py``).

Two kinds of array symbol carry something for the printers only: a :class:`DataArray`
(data computed from named tensors without recording, or an array no one named) its
definition -- a closed form, or an :class:`ArrayValue` -- and a :class:`SizedArray` the
names of its axes (sizes printed by name).

Op attributes (``dim``, ``shape``, an index ...) ride along as one :class:`Attrs` atom,
the last argument of a structural function: hashable, immutable, printable, and free of
symbols, so SymPy traversals, ``cse`` and ``xreplace`` pass it through untouched.

:func:`shape_of` infers the shape of any expression iteratively (no recursion limit):
array symbols carry theirs, numbers and plain symbols are scalars, structural functions
apply their shape rule, everything else broadcasts its operands.
"""
from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import operator
import threading
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
import sympy as sp

from ...tape.creation import dim_names
from ...tape.structure import freeze as _freeze
from ._compat import Application, AssocOp, Relational, cacheit, clear_cache, evaluate, symbol_xnew

Shape = tuple[int, ...]

__all__ = ["ArrayVar", "EngineArray", "DataArray", "ArrayValue", "SizedArray", "size_stand_in", "Attrs", "Slot", "array_symbol",
           "shape_of", "broadcast_shapes", "operands", "postorder", "intern", "unevaluated", "replaced",
           "collection_paused"]


class ArrayVar(sp.Symbol):
    """A whole array as one SymPy symbol; ``array_shape`` and ``array_dtype`` are part of
    its identity.

    >>> w = ArrayVar("w", (3, 2))
    >>> w, w.array_shape, w.array_dtype
    (w, (3, 2), 'float64')
    >>> w == ArrayVar("w", (2, 3))
    False
    >>> shape_of(2 * w + 1)
    (3, 2)
    """

    __slots__ = ("array_shape", "array_dtype")

    array_shape: Shape
    array_dtype: str

    def __new__(cls, name: str, shape: Iterable[int] = (), dtype: Any = "float64", **assumptions: Any) -> "ArrayVar":
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype).name
        if np.dtype(dtype).kind in "fiub":
            assumptions.setdefault("real", True)
        return cls.__xnew_cached_(cls, name, shape, dtype, **assumptions)

    @staticmethod
    def __xnew__(cls, name, shape, dtype, **assumptions):  # type: ignore[override]
        obj = symbol_xnew(cls, name, **assumptions)
        obj.array_shape = shape
        obj.array_dtype = dtype
        return obj

    __xnew_cached_ = staticmethod(cacheit(__xnew__))

    def _hashable_content(self):
        return (self.name, self.array_shape, self.array_dtype) + sp.Symbol._hashable_content(self)[1:]

    def __getnewargs_ex__(self):
        return ((self.name, self.array_shape, self.array_dtype), self._assumptions_orig)

    def __getstate__(self):
        return {"array_shape": self.array_shape, "array_dtype": self.array_dtype}

    @property
    def ndim(self) -> int:
        return len(self.array_shape)

    def _sympyrepr(self, printer) -> str:
        return f"ArrayVar({self.name!r}, {self.array_shape!r}, {self.array_dtype!r})"

    def _latex(self, printer) -> str:
        """A module parameter's dotted path (``0.weight``, which LaTeX would read as a
        decimal) as a symbol with the path as subscript (see :func:`parameter_latex`);
        any other name as SymPy prints a symbol."""
        return parameter_latex(self.name) if "." in self.name else printer._print_Symbol(self)


PARAMETER_LETTERS = {"weight": "W", "bias": "b"}
"""The letters a module parameter's LaTeX uses for its attribute name."""


def parameter_latex(path: str) -> str:
    """The LaTeX of a module parameter's dotted path: ``weight`` as ``W`` and ``bias``
    as ``b``, with the modules' path as subscript (text keeps PyTorch's ``0.weight``).

    >>> parameter_latex("0.weight"), parameter_latex("2.bias"), parameter_latex("encoder.fc.scale")
    ('W_{0}', 'b_{2}', '\\\\mathrm{scale}_{\\\\mathrm{encoder.fc}}')
    """
    modules, _, attribute = path.rpartition(".")
    letter = PARAMETER_LETTERS.get(attribute, r"\mathrm{%s}" % attribute.replace("_", r"\_"))
    where = modules if modules.replace(".", "").isdigit() else r"\mathrm{%s}" % modules.replace("_", r"\_")
    return f"{letter}_{{{where}}}"


class EngineArray(ArrayVar):
    """An array symbol the engine makes for itself (a seed, a tangent), which no user
    symbol can ever equal: its class is its own (SymPy's equality and hash compare the
    class) and a serial number, new for every one made, is part of its identity, so an
    ``ArrayVar`` (or an engine symbol made elsewhere) of the same name, shape and dtype
    is another symbol.

    >>> seed = EngineArray("seed", (2,))
    >>> seed == ArrayVar("seed", (2,)), seed == EngineArray("seed", (2,)), seed == seed
    (False, False, True)
    >>> str(seed), shape_of(seed * 2)
    ('seed', (2,))
    """

    __slots__ = ("serial",)

    serial: int
    _serials = itertools.count()

    def __new__(cls, name: str, shape: Iterable[int] = (), dtype: Any = "float64",  # type: ignore[override]
                serial: int | None = None) -> "EngineArray":
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype).name
        real = {"real": True} if np.dtype(dtype).kind in "fiub" else {}
        obj = ArrayVar.__xnew__(cls, name, shape, dtype, **real)
        obj.serial = next(cls._serials) if serial is None else int(serial)
        return obj

    def _hashable_content(self):
        return super()._hashable_content() + (self.serial,)

    def __getnewargs_ex__(self):
        return (self.name, self.array_shape, self.array_dtype, self.serial), {}

    def __getstate__(self):
        return {**super().__getstate__(), "serial": self.serial}

    def _sympyrepr(self, printer) -> str:
        return f"EngineArray({self.name!r}, {self.array_shape!r}, {self.array_dtype!r}, serial={self.serial})"


class DataArray(ArrayVar):
    """An array input whose name the engine made (``t0``, ``idx0``), with what it stands
    for: computed from named tensors by ops that were not recorded (``1 - y`` for data
    ``y``), or an array no one named (an index array, data given without a name: its
    :class:`ArrayValue`).  The engine computes with it as with any data symbol (its value
    is read at call time; ``free_symbols`` is itself); ``definition`` is part of its
    identity, for the printers to show (inline when short, else ``where t0 = ...``: see
    ``symgrad.symbolic.printing.display.defined_data``).

    Python's ``str`` of a form cannot add a ``where`` line, so under ``str`` (and SymPy's
    ``latex`` and ``pretty``) such a symbol prints as its definition, in parentheses: a
    plain SymPy form never shows a name it does not define.

    >>> y = ArrayVar("y", (2,))
    >>> t = DataArray("t0", (2,), "float64", 1 - y)
    >>> t.name, t.definition, t == ArrayVar("t0", (2,)), t.free_symbols == {t}
    ('t0', 1 - y, False, True)
    >>> 2 * t
    2*(1 - y)
    """

    __slots__ = ("definition",)

    definition: sp.Expr

    def __new__(cls, name: str, shape: Iterable[int], dtype: Any,  # type: ignore[override]
                definition: sp.Expr) -> "DataArray":
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype).name
        real = {"real": True} if np.dtype(dtype).kind in "fiub" else {}
        obj = ArrayVar.__xnew__(cls, name, shape, dtype, **real)
        obj.definition = definition
        return obj

    def _hashable_content(self):
        return super()._hashable_content() + (self.definition,)

    def __getnewargs_ex__(self):
        return (self.name, self.array_shape, self.array_dtype, self.definition), {}

    def __getstate__(self):
        return {**super().__getstate__(), "definition": self.definition}

    def _sympyrepr(self, printer) -> str:
        return (f"DataArray({self.name!r}, {self.array_shape!r}, {self.array_dtype!r}, "
                f"{printer._print(self.definition)})")

    def _sympystr(self, printer) -> str:
        return _in_parentheses(printer._print(self.definition), self.definition)

    def _latex(self, printer) -> str:
        shown = printer._print(self.definition)
        return shown if _bare(self.definition) else r"\left(%s\right)" % shown

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm

        shown = printer._print(self.definition)
        return shown if _bare(self.definition) else prettyForm(*shown.parens())


def _bare(expr: Any) -> bool:
    """Whether ``expr`` prints as one operand needing no parentheses: a symbol, a number,
    an array value, a function call."""
    return isinstance(expr, (sp.Atom, sp.Function)) and not (isinstance(expr, sp.Number) and expr < 0)


def _in_parentheses(shown: str, expr: Any) -> str:
    return shown if _bare(expr) else f"({shown})"


class ArrayValue(sp.Atom):
    """The value of an array no one named -- an index array (``x[labels]``, the windows
    of a convolution), data given without a name -- as the definition of the symbol the
    engine calls it by (``where idx0 = ...``; see :class:`DataArray`).  It prints as
    what the array is: an index grid (an integer array that grows by a fixed step along
    each axis: ``arange``, the row numbers of a gather, the windows of a convolution) as
    its formula over NumPy's ``arange`` and ``indices``; a small array as its values
    (``array((0, 2, 2))``); both compute the array again.  A larger one prints as its
    first and last values, its dtype and its shape, which describe it but compute nothing
    (the array is not kept, only what is printed).

    >>> ArrayValue.of(np.array([0, 2])), ArrayValue.of(np.arange(64)), ArrayValue.of(2 * np.arange(20) + 1)
    (array((0, 2)), arange(64), 2*arange(20) + 1)
    >>> windows = np.arange(6)[:, None] + np.arange(4)  # rows of 4-wide windows
    >>> ArrayValue.of(windows)
    indices((6, 4))[0] + indices((6, 4))[1]
    >>> print(sp.latex(ArrayValue.of(windows)))
    \\left(i + j\\right)_{i j} \\in \\mathbb{Z}^{6 \\times 4}
    >>> ArrayValue.of(np.arange(40.0) ** 2)
    array((0.0, 1.0, 4.0, ..., 1444.0, 1521.0), dtype=float64, size=(40,))
    """

    __slots__ = ("shape", "dtype", "kind", "payload")
    is_commutative = True

    SMALL = 10
    """Elements an array may have to print as all its values."""

    shape: tuple
    dtype: str
    kind: str  # "grid" (payload: offset, then the step along each axis), "values" (all), "summary" (3 first, 2 last)
    payload: tuple

    def __new__(cls, shape: tuple, dtype: Any, kind: str, payload: tuple) -> "ArrayValue":
        if kind not in ("grid", "values", "summary"):
            raise ValueError(f"an ArrayValue is a grid, values or a summary, not {kind!r}")
        obj = sp.Atom.__new__(cls)
        obj.shape, obj.dtype, obj.kind, obj.payload = tuple(shape), np.dtype(dtype).name, kind, tuple(payload)
        return obj

    @classmethod
    def of(cls, array: Any) -> "ArrayValue":
        """What ``array`` prints as (it keeps no reference to ``array``)."""
        array = np.asarray(array)
        steps = _grid_steps(array)
        flat = array.reshape(-1)
        if steps is not None and (array.size > cls.SMALL or array.ndim > 1 or steps == (0, 1)):
            return cls(array.shape, array.dtype, "grid", steps)  # short values only for a short vector
        if array.size <= cls.SMALL:
            return cls(array.shape, array.dtype, "values", tuple(flat.tolist()))
        ends = flat[:3].tolist() + flat[-2:].tolist()  # a description: floats to 4 digits
        return cls(array.shape, array.dtype, "summary", tuple(float(f"{v:.4g}") if isinstance(v, float) else v
                                                              for v in ends))

    def _hashable_content(self):
        return (self.shape, self.dtype, self.kind, self.payload)

    def __getnewargs__(self):
        return (self.shape, self.dtype, self.kind, self.payload)

    def __getstate__(self):
        return None

    @property
    def free_symbols(self) -> set:
        return set()

    def _eval_subs(self, old, new):
        return self

    def _terms(self, axis_name) -> list[str]:
        """The terms of a grid's formula, ``axis_name(k)`` standing for axis ``k``."""
        offset, *steps = self.payload
        terms = [("" if step == 1 else "-" if step == -1 else f"{step}*") + axis_name(k)
                 for k, step in enumerate(steps) if step]
        return terms + ([str(offset)] if offset else [])

    def _sympystr(self, printer) -> str:
        if self.kind == "grid":
            if len(self.shape) == 1:
                return " + ".join(self._terms(lambda k: f"arange({self.shape[0]})")).replace("+ -", "- ")
            return " + ".join(self._terms(lambda k: f"indices({self.shape})[{k}]")).replace("+ -", "- ")
        if self.kind == "values":
            return f"array({_nested(self.payload, self.shape)!r})"
        shown = ", ".join(repr(v) for v in self.payload[:3]) + ", ..., " + ", ".join(repr(v) for v in self.payload[3:])
        return f"array(({shown}), dtype={self.dtype}, size={self.shape})"  # not "shape=", an engine word

    def _sympyrepr(self, printer) -> str:
        return f"ArrayValue({self.shape!r}, {self.dtype!r}, {self.kind!r}, {self.payload!r})"

    def _latex(self, printer) -> str:
        sizes = r" \times ".join(map(str, self.shape))
        if self.kind == "grid":
            if len(self.shape) == 1 and self.payload == (0, 1):
                return r"\left(0, 1, \ldots, %d\right)" % (self.shape[0] - 1)
            letters = "ijklmnpqrs"[:len(self.shape)]
            formula = " + ".join(self._terms(lambda k: letters[k])).replace("*", " ").replace("+ -", "- ")
            return r"\left(%s\right)_{%s} \in \mathbb{Z}^{%s}" % (formula, " ".join(letters), sizes)
        if self.kind == "values":
            return _latex_nested(_nested(self.payload, self.shape))
        shown = ", ".join(map(str, self.payload[:3])) + r", \ldots, " + ", ".join(map(str, self.payload[3:]))
        return r"\left(%s\right) \; (\text{%s, shape } %s)" % (shown, self.dtype, sizes)


def _grid_steps(array: np.ndarray) -> tuple | None:
    """``(offset, step along axis 0, step along axis 1, ...)`` when the integer ``array``
    is ``offset + sum(step_k * np.indices(array.shape)[k])`` with some step nonzero (an
    ``arange``, the row numbers of a gather, the windows of a convolution), else None."""
    if array.dtype.kind not in "iu" or array.ndim == 0 or array.size < 2 or array.size > 10 ** 6:
        return None
    offset = int(array.ravel()[0])
    steps = []
    for axis, n in enumerate(array.shape):
        corner = (0,) * axis + (1,) + (0,) * (array.ndim - axis - 1)
        steps.append(int(array[corner]) - offset if n > 1 else 0)
    if not any(steps):
        return None
    grid = offset + sum(step * np.arange(n).reshape([n if k == axis else 1 for k in range(array.ndim)])
                        for axis, (step, n) in enumerate(zip(steps, array.shape)))
    return (offset, *steps) if np.array_equal(array, np.broadcast_to(grid, array.shape)) else None


def _nested(flat: tuple, shape: tuple) -> Any:
    """The values ``flat`` as nested tuples of ``shape`` (a number for shape ``()``)."""
    if not shape:
        return flat[0]
    step = len(flat) // shape[0] if shape[0] else 0
    return tuple(_nested(flat[k * step:(k + 1) * step], shape[1:]) for k in range(shape[0]))


def _latex_nested(values: Any) -> str:
    if not isinstance(values, tuple):
        return str(values)
    return r"\left(%s\right)" % ", ".join(_latex_nested(v) for v in values)


SIZE_STAND_INS: dict[str, int] = {}
"""The number the engine computes with for each size given by name only
(``array_symbol("X", ("n", 3))``): distinct primes above a million, one per name, so a
printed number is a size's exactly when it is a multiple of its stand-in."""


def size_stand_in(name: str) -> int:
    """The stand-in number of the size ``name`` (the same for every symbol that uses it).

    >>> size_stand_in("n") == size_stand_in("n") != size_stand_in("m")
    True
    """
    if name not in SIZE_STAND_INS:
        SIZE_STAND_INS[name] = int(sp.nextprime(max(SIZE_STAND_INS.values(), default=10 ** 6)))
    return SIZE_STAND_INS[name]


class SizedArray(ArrayVar):
    """An array symbol whose axes have names (``array_dims``, e.g. ``("n", None)``), part
    of its identity: printers write a size by its name (a mean over ``n`` rows divides by
    ``n``), the engine computes with the number.  A size given by name only has a stand-in
    number (:func:`size_stand_in`): such a formula prints, but compiled code, which
    computes with numbers, refuses it.

    >>> X = array_symbol("X", ("n", 3))
    >>> X.array_dims, X.sizes() == {"n": size_stand_in("n")}, X == ArrayVar("X", X.array_shape)
    (('n', None), True, False)
    """

    __slots__ = ("array_dims",)

    array_dims: tuple

    def __new__(cls, name: str, shape: Iterable[int], dtype: Any,  # type: ignore[override]
                dims: tuple) -> "SizedArray":
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype).name
        real = {"real": True} if np.dtype(dtype).kind in "fiub" else {}
        obj = ArrayVar.__xnew__(cls, name, shape, dtype, **real)
        obj.array_dims = tuple(dims)
        return obj

    def _hashable_content(self):
        return super()._hashable_content() + (self.array_dims,)

    def __getnewargs_ex__(self):
        return (self.name, self.array_shape, self.array_dtype, self.array_dims), {}

    def __getstate__(self):
        return {**super().__getstate__(), "array_dims": self.array_dims}

    def _sympyrepr(self, printer) -> str:
        return f"SizedArray({self.name!r}, {self.array_shape!r}, {self.array_dtype!r}, {self.array_dims!r})"

    def sizes(self) -> dict:
        """``{size name: number}`` of its named axes."""
        return {d: n for d, n in zip(self.array_dims, self.array_shape) if d is not None}

    def _code(self, printer, *args: Any, **kwargs: Any) -> str:
        """What code printers print: the name, unless a size has only a stand-in number."""
        unknown = [d for d, n in self.sizes().items() if SIZE_STAND_INS.get(d) == n]
        if unknown:
            raise TypeError(
                f"{self.name} has the size {unknown[0]!r} by name only: compiled code computes with numbers, so "
                f"give the number too, array_symbol({self.name!r}, {tuple(self.array_shape)!r}, "
                f"dims={self.array_dims!r}) with the size in place of the stand-in {self.sizes()[unknown[0]]}")
        return printer._print_Symbol(self)

    _numpycode = _pythoncode = _lambdacode = _symgrad_c = _code


def array_symbol(name: str, shape: Iterable[Any] = (), dtype: Any = "float64", dims: Any = None) -> ArrayVar:
    """One SymPy symbol standing for a whole array of ``shape`` and ``dtype``.

    >>> x = array_symbol("x", (4,))
    >>> shape_of(x * 2), x.array_dtype
    ((4,), 'float64')

    A size may be a name (``("n", 3)``): the formula prints for any size (a mean over the
    rows divides by ``n``), and the engine computes with a stand-in number, so it cannot
    be compiled; ``dims=("n", None)`` names the axes of a shape given in numbers, which
    prints the same and compiles (see :class:`SizedArray`).

    >>> from symgrad.symbolic.forms.structural import Mean
    >>> from symgrad.symbolic.printing.printers import text
    >>> text(Mean.of(array_symbol("X", ("n", 3)), dim=0)), text(Mean.of(array_symbol("X", (50, 3), dims=("n", None))))
    ('mean(X, dim=0)', 'mean(X)')
    """
    shape = tuple(shape)
    named = [s.name if isinstance(s, sp.Symbol) else s if isinstance(s, str) else None for s in shape]
    if any(n is not None for n in named):
        if dims is not None:
            raise ValueError(f"give the sizes of {name!r} by name in its shape {shape} or in dims={dims!r}, not both")
        dims = dim_names(named, len(shape), repr(name))
        shape = tuple(size_stand_in(n) if n is not None else s for n, s in zip(named, shape))
    dims = dim_names(dims, len(shape), repr(name))
    return ArrayVar(name, shape, dtype) if dims is None else SizedArray(name, shape, dtype, dims)


# ---------------------------------------------------------------------------- attributes
class Slot:
    """A placeholder inside an ``index`` attribute for the ``k``-th index-array argument
    of the node (see ``structural._Indexed``).  For a boolean mask, ``count`` is its
    number of true elements, which decides the result's shape and so is structure.

    >>> Slot(0) == Slot(0), Slot(1, count=3)
    (True, Slot(1, count=3))
    """

    __slots__ = ("k", "count")

    def __init__(self, k: int, count: int | None = None) -> None:
        self.k = int(k)
        self.count = None if count is None else int(count)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Slot) and (other.k, other.count) == (self.k, self.count)

    def __hash__(self) -> int:
        return hash(("Slot", self.k, self.count))

    def frozen(self) -> tuple:
        """This placeholder's part of a structure key (see ``symgrad.tape.structure.freeze``)."""
        return ("slot", self.k, self.count)

    def __repr__(self) -> str:
        return f"Slot({self.k})" if self.count is None else f"Slot({self.k}, count={self.count})"


def _own(value: Any) -> Any:
    """A private copy of an attribute value (arrays are copied and frozen, NumPy scalars
    become Python numbers)."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        value = value.copy()
        value.flags.writeable = False
        return value
    if isinstance(value, list):
        return tuple(_own(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_own(v) for v in value)
    return value


class Attrs(sp.Atom):
    """The attributes of one op application as a SymPy atom (not a mathematical object).

    >>> a = Attrs({"dim": 0, "keepdim": True})
    >>> a.get("dim"), a == Attrs({"keepdim": True, "dim": 0}), a == Attrs({"dim": 0, "keepdim": 1})
    (0, True, False)
    """

    __slots__ = ("values", "key")
    is_commutative = True

    values: dict
    key: tuple

    def __new__(cls, values: dict | None = None) -> "Attrs":
        obj = sp.Atom.__new__(cls)
        values = dict(values or {})
        obj.values = {k: _own(v) for k, v in sorted(values.items())}
        obj.key = tuple((k, _freeze(v)) for k, v in obj.values.items())
        return obj

    def _hashable_content(self):
        return self.key

    def __getnewargs__(self):
        return (self.values,)

    def __getstate__(self):
        return None

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def _sympystr(self, printer) -> str:
        return ", ".join(f"{k}={_attr_text(v)}" for k, v in self.values.items())

    def _sympyrepr(self, printer) -> str:
        return f"Attrs({self.values!r})"

    def _eval_subs(self, old, new):
        return self

    @property
    def free_symbols(self) -> set:
        return set()


class ArrayFunction(sp.Function):
    """Base of the functions whose arguments are arrays followed by one :class:`Attrs`
    atom -- the structural functions of :mod:`symgrad.symbolic.forms.structural` --
    holding what this layer reads of them (their arrays, attributes and shape rule), so
    that walking and shaping a form needs nothing from the layers above."""

    @property
    def arrays(self) -> tuple:
        """The array arguments (everything but the attributes)."""
        return self.args[:-1]

    @property
    def attrs(self) -> dict:
        """The op attributes as a dict."""
        return self.args[-1].values

    @classmethod
    def shape_rule(cls, shapes: Any, attrs: dict) -> Any:
        """The output shape from the argument shapes and the attributes."""
        raise NotImplementedError(f"{cls.__name__} has no shape rule")


def _attr_text(value: Any) -> str:
    """Readable (and, for everything but integer arrays, valid Python) text of a value."""
    if isinstance(value, np.ndarray):
        return f"array({value.tolist()!r})"
    if isinstance(value, slice):
        parts = ["" if v is None else str(v) for v in (value.start, value.stop)]
        text = ":".join(parts)
        return text + (f":{value.step}" if value.step is not None else "")
    if isinstance(value, np.dtype):
        return repr(value.name)
    return repr(value)


# ---------------------------------------------------------------------------- traversal
def operands(node: sp.Basic) -> tuple:
    """The array-valued operands of ``node``: its arguments, looking through non-Expr
    wrappers (``Piecewise`` pairs, relations, booleans) and skipping :class:`Attrs`.

    >>> x, y = sp.symbols("x y")
    >>> operands(sp.Piecewise((x, y > 0), (0, True)))
    (x, y, 0)
    """
    args = node.args
    if all(isinstance(a, sp.Expr) for a in args):
        return args if len(set(args)) == len(args) else tuple(dict.fromkeys(args))
    out: list = []
    seen: set = set()
    stack = list(reversed(args))
    while stack:
        arg = stack.pop()
        if isinstance(arg, Attrs):
            continue
        if isinstance(arg, sp.Expr) or not arg.args:
            if isinstance(arg, sp.Expr) and arg not in seen:
                seen.add(arg)
                out.append(arg)
            continue
        stack.extend(reversed(arg.args))
    return tuple(out)


def postorder_by_identity(roots: Iterable[sp.Basic]) -> Iterator[sp.Basic]:
    """Every distinct node (by identity) reachable from ``roots`` through ``args``, each
    after its arguments: no recursion, and no hashing or comparison of trees (which costs
    time proportional to their size on deep forms), unlike :func:`postorder`.

    >>> x = sp.Symbol("x")
    >>> [str(n) for n in postorder_by_identity([sp.exp(x) + x])]
    ['x', 'exp(x)', 'x + exp(x)']
    """
    done: set = set()
    stack = list(roots)
    while stack:
        node = stack[-1]
        if id(node) in done:
            stack.pop()
            continue
        pending = [a for a in node.args if id(a) not in done]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        done.add(id(node))
        yield node


def postorder(roots: Iterable[sp.Basic]) -> list:
    """Every distinct node reachable from ``roots``, each after all of its operands,
    iteratively (no recursion limit).  Shared subexpressions appear once.

    >>> x = sp.Symbol("x")
    >>> postorder([sp.exp(x) * sp.sin(x)])
    [x, exp(x), sin(x), exp(x)*sin(x)]
    """
    order: list = []
    seen: set = set()
    for root in roots:
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(operands(root)))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(operands(child))))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


# ---------------------------------------------------------------------------- shapes
def broadcast_shapes(*shapes: Shape) -> Shape:
    """NumPy's broadcasting rule, with an error that names the shapes.

    >>> broadcast_shapes((3, 1), (2,))
    (3, 2)
    """
    first = shapes[0] if shapes else ()
    if all(s == first for s in shapes):
        return first
    if sum(1 for s in shapes if s) == 1:
        return next(s for s in shapes if s)
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ValueError(f"shapes {', '.join(map(str, shapes))} do not broadcast together") from None


_SHAPES: dict = {}
_OLD_SHAPES: dict = {}
_SHAPES_LIMIT = 500_000
"""The shape memo keeps two generations of at most this many entries each: when the
current one is full it becomes the old one (whose entries move back when used), so a
graph larger than the limit never makes every lookup start over.

It is keyed by object *identity* (``id(node) -> (node, shape)``, the reference keeping
the id unique): a lookup never compares expressions.  Keyed by the expressions
themselves, a lookup with an expression *equal* to a stored one but built anew (SymPy's
evaluation rebuilds products and sums, and after ``clear_cache()`` nothing it builds is
the object of an earlier derivation) fell back to ``Basic.__eq__``, a tree comparison
that is exponential on a DAG with shared subexpressions: deriving a 100-op program a
second time took 8x the first."""


def _known_shape(node: sp.Basic) -> Shape | None:
    entry = _SHAPES.get(id(node))
    if entry is None:
        entry = _OLD_SHAPES.get(id(node))
        if entry is None or entry[0] is not node:
            return None
        _SHAPES[id(node)] = entry
    return entry[1] if entry[0] is node else None


def _shape_operands(node: sp.Basic) -> tuple:
    """The operands whose shapes decide ``node``'s (the same objects on every call)."""
    return node.arrays if isinstance(node, ArrayFunction) else operands(node)


def shape_of(expr: Any) -> Shape:
    """The array shape of ``expr`` (``()`` for scalars).

    >>> x = ArrayVar("x", (2, 3))
    >>> shape_of(sp.exp(x) + ArrayVar("b", (3,)))
    (2, 3)
    >>> shape_of(sp.Integer(2))
    ()
    """
    global _SHAPES, _OLD_SHAPES
    if not isinstance(expr, sp.Basic):
        return tuple(np.shape(expr))
    known = _known_shape(expr)
    if known is not None:
        return known
    if len(_SHAPES) > _SHAPES_LIMIT:
        _OLD_SHAPES, _SHAPES = _SHAPES, {}
    # every shape this call reads, by identity (the expression keeps its nodes alive):
    # another thread may swap or clear the memo meanwhile
    found: dict = {}
    stack = [(expr, None)]
    while stack:
        node, children = stack[-1]
        if children is None:
            children = []
            for child in _shape_operands(node):
                shape = found.get(id(child))
                if shape is None:
                    shape = _known_shape(child)
                if shape is None:
                    children.append(child)
                else:
                    found[id(child)] = shape
            stack[-1] = (node, children)
            if children:
                stack.extend((c, None) for c in children)
                continue
        stack.pop()
        if id(node) in found:
            continue
        if isinstance(node, ArrayVar):
            shape = node.array_shape
        elif isinstance(node, ArrayFunction):
            shape = node.shape_rule([found[id(a)] for a in node.arrays], node.attrs)
        elif not node.args:
            shape = ()
        else:
            shape = broadcast_shapes(*(found[id(a)] for a in operands(node)))
        found[id(node)] = shape
        _SHAPES[id(node)] = (node, shape)
    return found[id(expr)]


def size_of(shape: Shape) -> int:
    """The number of elements of ``shape``."""
    return int(np.prod(shape, dtype=np.int64))


def free_symbols(expr: sp.Basic) -> set:
    """``expr.free_symbols``, found without recursion (SymPy's property recurses, and
    raises ``RecursionError`` on a form about 1,000 levels deep): every node whose class
    keeps SymPy's generic rule (the union over its arguments) is looked through; any other
    node -- a symbol, or one that binds or hides symbols, such as ``Lambda`` or
    ``Integral`` -- answers for itself.

    >>> x, t = sp.symbols("x t")
    >>> deep = x
    >>> for _ in range(3000):
    ...     deep = sp.Add(sp.sin(deep, evaluate=False), t, evaluate=False)
    >>> sorted(free_symbols(deep), key=str), free_symbols(sp.Integral(x * t, (t, 0, 1)))
    ([t, x], {x})
    """
    found: set = set()
    seen: set = set()
    stack = [expr]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if _keeps_the_generic_rule(type(node)):
            stack.extend(node.args)
        else:
            found |= node.free_symbols
    return found


_GENERIC_FREE_SYMBOLS = sp.Basic.__dict__["free_symbols"]


@functools.lru_cache(maxsize=None)
def _keeps_the_generic_rule(cls: type) -> bool:
    """Whether ``cls`` takes ``free_symbols`` from ``Basic`` (looked up along the MRO: a
    SymPy function class's metaclass has a ``free_symbols`` of its own)."""
    owner = next(k for k in cls.__mro__ if "free_symbols" in k.__dict__)
    return owner.__dict__["free_symbols"] is _GENERIC_FREE_SYMBOLS


# ---------------------------------------------------------------------------- hash-consing
_CANONICAL: dict = {}  # (type, ids of canonical args) or ("atom", atom) -> canonical object
_INTERN_LOCK = threading.RLock()  # threads building at once agree on one canonical object
_KNOWN: dict = {}  # id -> canonical object
_ALIASES: dict = {}  # id -> (a node equal to a canonical object but not it, that object); keeps the node alive
ALIAS_LIMIT = 100_000
"""Past this many aliases (nodes found equal to a canonical object, kept so that meeting
them again costs O(1)) they are forgotten, which costs only walking them again."""
INTERN_LIMIT = 500_000
"""Past this many canonical nodes the table starts afresh before the next build (and so
do the caches keyed by expressions: see :func:`start_building`)."""
INTERN_GENERATION = 1_000
"""After this many builds the table starts afresh too, however small it is: the tables are
bounded by age as well as by size.  A training loop whose structure changes every step
(an annealed coefficient: a new constant, so a new graph, each step) builds every step,
and without this bound kept every step's nodes (and their shapes, aliases and templates)
until :data:`INTERN_LIMIT`, about 9 KiB a step.  A loop that does not change structure
does not build at all (its compiled backward is found by the graph's structure), so it
never pays for walking its graph again."""
_BUILDS = [0]  # builds since the tables last started afresh
_EXPRESSION_CACHES: list = []


def expression_cache() -> dict:
    """A new dictionary for a cache keyed by expressions or constants (templates, partial
    derivatives), emptied with the canonical table by :func:`reset_interned`, so that it
    is bounded by the same size and age.

    >>> table = expression_cache()
    >>> table["key"] = 1
    >>> reset_interned(); table
    {}
    """
    table: dict = {}
    _EXPRESSION_CACHES.append(table)
    return table


DEEP = 48
"""Past this depth a form counts as deep: SymPy's automatic evaluation, and its canonical
ordering of the operands of products and sums, compare operands recursively, which costs
time proportional to the depth for every node built.  So a graph deeper than this is
translated to unevaluated SymPy (``derive/graph.py``, ``Segment.build``) and its adjoints
are combined without re-sorting (``derive/reverse.py``: ``Mul``/``Add`` built from their
arguments as they are)."""

_TAKE_EVALUATE = (AssocOp, sp.Pow, Application, Relational)
"""SymPy's node types whose constructors take ``evaluate=False``."""


def unevaluated(node: sp.Basic, args: Iterable) -> sp.Basic:
    """A node of ``node``'s type over ``args`` themselves, built as given (evaluation would
    simplify, distribute and reorder).  Types whose constructors take ``evaluate=False``
    get it; the rest are built under SymPy's global ``evaluate(False)``, which clears
    SymPy's whole cache each time it switches, so it is the exception.  SymPy's cache
    can answer with an equal node built earlier over *other* (equal) objects; then the
    cache is cleared and the node built afresh, so the node's arguments are ``args``.

    >>> x = sp.Symbol("x")
    >>> unevaluated(x + 1, (x, x))
    x + x
    """
    args = tuple(args)
    built = _build_unevaluated(node, args)
    kept = built.args
    if not (len(kept) == len(args) and all(map(operator.is_, kept, args))) and \
            {id(a) for a in kept} != {id(a) for a in args}:  # (Max and And order their arguments)
        clear_cache()
        built = _build_unevaluated(node, args)
    return built


def _build_unevaluated(node: sp.Basic, args: tuple) -> sp.Basic:
    if isinstance(node, _TAKE_EVALUATE):
        return node.func(*args, evaluate=False)
    with evaluate(False):
        return node.func(*args)


def replaced(expr: sp.Basic, swaps: Mapping) -> sp.Basic:
    """``expr`` with the symbols of ``swaps`` replaced, rebuilt as it was built (no
    evaluation: see :func:`unevaluated`) and without recursion, however deep it is.

    >>> x, y = sp.symbols("x y")
    >>> replaced(sp.sin(x) * x, {x: y + 1})
    (y + 1)*sin(y + 1)
    """
    built: dict = {}
    for node in postorder_by_identity([expr]):
        if isinstance(node, sp.Symbol) and node in swaps:
            built[id(node)] = swaps[node]
        elif node.args:
            args = [built[id(a)] for a in node.args]
            built[id(node)] = node if all(map(operator.is_, args, node.args)) else unevaluated(node, args)
        else:
            built[id(node)] = node
    return built[id(expr)]


def intern(expr: Any) -> Any:
    """The canonical object structurally equal to ``expr`` (hash-consing).

    SymPy compares two *distinct* but equal expressions by walking both trees, which for
    deep graphs is slow and recursive (a ``RecursionError`` past ~1,000 levels), and it
    happens whenever a rebuilt graph meets the previous build in a dictionary (SymPy's
    own cache, the shape memo, CSE tables).  The engine therefore interns every node it
    builds, bottom-up: a node is looked up by its type and the *identities* of its
    (canonical) arguments, so equal expressions become the same object and no lookup
    ever compares trees.  Linear in the number of new nodes; canonical nodes are
    skipped in O(1), and so are nodes interned before that were equal to a canonical
    object (a user's tree over a new ``Float(0.5)`` each time): the table keeps the last
    :data:`ALIAS_LIMIT` or so of them as aliases of their canonical objects.

    >>> x = sp.Symbol("x")
    >>> a, b = intern(sp.sin(x) + 1), intern(sp.sin(x) + 1)
    >>> a is b
    True
    """
    if not isinstance(expr, sp.Basic):
        return expr
    settled = _interned_before(expr)
    if settled is not None:
        return settled
    with _INTERN_LOCK:
        return _intern(expr)


def _interned_before(node: sp.Basic) -> sp.Basic | None:
    """``node``'s canonical object if ``node`` was interned before (it is canonical, or an
    alias of a canonical object), else None."""
    if _KNOWN.get(id(node)) is node:
        return node
    alias = _ALIASES.get(id(node))
    return alias[1] if alias is not None and alias[0] is node else None


def _intern(expr: Any) -> Any:
    if len(_ALIASES) > ALIAS_LIMIT:
        _ALIASES.clear()
    known = _KNOWN
    switched = False
    done: dict = {}  # id -> canonical object, for the nodes of expr that are not canonical
    with contextlib.ExitStack() as unevaluating:  # entered at the first rebuild, see below
        stack = [(expr, False)]
        while stack:
            node, ready = stack.pop()
            if id(node) in done:
                continue
            args = node.args
            if not ready and args:
                stack.append((node, True))
                for arg in args:  # canonical ones are skipped, aliases resolved, in O(1)
                    if id(arg) not in done:
                        settled = _interned_before(arg)
                        if settled is None:
                            stack.append((arg, False))
                        elif settled is not arg:
                            done[id(arg)] = settled
                continue
            if args:
                canon = tuple(done.get(id(a), a) for a in args)
                key = (type(node), tuple(map(id, canon)))
                found = _CANONICAL.get(key)
                if found is None:
                    found = node
                    if any(c is not a for c, a in zip(canon, args)):
                        if not switched:  # one switch of SymPy's global flag for the whole walk: it
                            unevaluating.enter_context(evaluate(False))  # clears SymPy's cache, so no
                            switched = True  # entry over equal but other deep trees is compared
                        found = unevaluated(node, canon)
                    _CANONICAL[key] = known[id(found)] = found
                    # assumptions are computed lazily and recursively: ask the one every
                    # product asks while the arguments' answers are cached (O(1) here)
                    found.is_commutative
            else:
                key = ("atom", node)
                found = _CANONICAL.get(key)
                if found is None:
                    found = _CANONICAL[key] = node
                    known[id(node)] = node
            if found is not node and args:  # an equal node was canonical first: next time, found
                _ALIASES[id(node)] = (node, found)  # in O(1), not by walking it again (an atom is O(1))
            done[id(node)] = found
    return done[id(expr)]


_PAUSES = [0, False]  # [builds running, whether the collector was on before the first]
_PAUSE_LOCK = threading.Lock()


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Hold Python's cyclic garbage collector back while a graph is built or derived.

    Building and deriving allocate millions of SymPy objects, all of them live; every
    full collection of the cyclic collector walks every live object, so on large graphs
    it took a share of the time that grew with the graph (W5's derivation: 1.7x at
    12,000 ops, the slope 1.16 instead of 1.0).  Expressions are acyclic, so nothing is
    lost: the collector runs again, as it was, when the last build in any thread ends
    (reference counting frees everything meanwhile).

    >>> import gc
    >>> with collection_paused():
    ...     gc.isenabled()
    False
    >>> gc.isenabled()
    True
    """
    with _PAUSE_LOCK:
        if _PAUSES[0] == 0:
            _PAUSES[1] = gc.isenabled()
            gc.disable()
        _PAUSES[0] += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSES[0] -= 1
            if _PAUSES[0] == 0 and _PAUSES[1]:
                gc.enable()


def start_building() -> None:
    """Called before the engine builds or derives a graph: past :data:`INTERN_LIMIT`
    canonical nodes, or :data:`INTERN_GENERATION` builds, the table starts afresh -- only
    here, between two builds, never in the middle of one (where it would let equal trees
    be built twice)."""
    _BUILDS[0] += 1
    if len(_CANONICAL) > INTERN_LIMIT or _BUILDS[0] > INTERN_GENERATION:
        with _INTERN_LOCK:
            reset_interned()


def reset_interned() -> None:
    """Forget the canonical table, and with it every cache keyed by expressions (SymPy's
    own cache, the shape memo and every :func:`expression_cache`), so that no two
    independently built equal trees can meet later."""
    _CANONICAL.clear()
    _KNOWN.clear()
    _ALIASES.clear()
    _SHAPES.clear()
    _OLD_SHAPES.clear()
    for table in _EXPRESSION_CACHES:
        table.clear()
    _BUILDS[0] = 0
    clear_cache()
