"""The safe expression parser: mathematics in, SymPy (and symgrad tensors) out.

This module owns every place where symgrad reads a formula, a shape or a value typed
by a user (the ``symgrad`` command, ``symgrad.viz``).  It never passes user text to
``eval``, ``exec``, ``compile`` or ``sympify``:

1. Python's own parser turns the text into a syntax tree (``ast.parse(mode="eval")``);
   parsing is not evaluation.  Syntax errors become :class:`ExpressionError` with the
   column where parsing failed.
2. A strict, iterative visitor accepts only numbers, names, ``+ - * / ** @ % //``, unary
   ``-``/``+``, parentheses and calls of the whitelisted functions in :data:`FUNCTIONS`
   (plus the constants ``pi`` and ``e``).  A function's options (a reduction's ``dim``,
   ``tril``'s diagonal, a norm's order) are number literals (``sum(x, -1)``), read when the
   formula is parsed, never expressions; index arrays, masks, pad amounts and repeat counts
   are list literals of whole numbers (``gather(x, 1, [[0], [1]])``, :data:`LIST_KINDS`) and
   ``einsum``'s equation a string literal (``einsum('ij,jk->ik', a, b)``), each accepted as
   that option only.  A function of several results (``sort``, ``slogdet``, ``unbind``...)
   is called with the result picked by a whole-number subscript, ``sort(x)[0]``: the one
   subscript a formula may hold; integer results (sort's indices) are refused by name.
   Anything else -- attribute access, other indexing, lambdas, comprehensions, other strings
   and lists, keyword arguments, starred arguments, comparisons, calls of anything that is
   not a whitelisted name -- is refused with an :class:`ExpressionError` that names the
   construct and its column.
3. The accepted tree is flattened into a post-order :class:`Instruction` program.  The
   program is folded (without recursion) into a SymPy expression over array-level
   symbols (:class:`symgrad.symbolic.core.symbols.ArrayVar`, one symbol per variable,
   whatever its shape) and, on request, replayed on symgrad tensors with the same ops
   (:meth:`ParsedExpression.to_tensor`), which is how ``symgrad check`` obtains the tape
   value of the very same formula.  The arrays a function's form holds besides the
   variables (the index arrays written out, a zero buffer, an ``arange`` grid) are the
   formula's constants, :attr:`ParsedExpression.constants` (symbol to NumPy array): whoever
   compiles or evaluates the form passes them after the variables, and the engine's
   printers show them (``where idx0 = array((2, 0))``).

Names must be ordinary identifiers: Python keywords, builtins (``eval``, ``open``,
``__import__``...), names starting with ``_``, module names that generated code uses
(``np``, ``numpy``, ``math``...) and names that would print like SymPy constants
(``I``, ``E``, ``oo``...) are refused, so no user name can shadow anything in generated
code.  Numbers are bounded (:data:`MAX_BITS`), so ``9**9**9**9`` is refused instead of
exhausting memory, and so is text longer than :data:`MAX_LENGTH` characters or nested
deeper than :data:`MAX_DEPTH` levels.

>>> p = parse("sin(x)*exp(-y**2)")
>>> p.expr
exp(-y**2)*sin(x)
>>> p.names
('x', 'y')
>>> parse("__import__('os').system('echo hi')")
Traceback (most recent call last):
    ...
symgrad.parsing.ExpressionError: attribute access ('.system') is not allowed in an expression (column 18)
"""
from __future__ import annotations

import ast
import builtins
import json
import keyword
import math
import unicodedata
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import sympy as sp

from .symbolic import ArrayVar, shape_of, structural_class

__all__ = [
    "ExpressionError", "ParsedExpression", "Instruction", "FunctionSpec", "FormWithConstants", "FUNCTIONS", "CONSTANTS",
    "parse", "parse_shapes", "parse_values", "parse_names", "check_name",
    "MAX_LENGTH", "MAX_DEPTH", "MAX_BITS", "MAX_ELEMENTS",
]

MAX_LENGTH = 10_000
"""Longest expression text accepted, in characters."""

MAX_DEPTH = 100
"""Deepest nesting accepted.  A chain of the same associative operator (``a+b-c+d``,
``a*b/c``) counts as one level, because SymPy flattens it."""

MAX_BITS = 1_000
"""Largest exact number (numerator or denominator, in bits; about 300 digits) that a
literal or a constant sub-expression such as ``2**999`` may produce."""


MAX_ELEMENTS = 1_000_000
"""Largest number of elements of one declared array input."""

Shape = tuple[int, ...]


# ============================================================================ errors
class ExpressionError(ValueError):
    """A formula, shape or value that symgrad refuses, with the column to blame.

    ``column`` is 1-based (None when the problem has no single position); ``construct``
    names what was refused (``"attribute access"``, ``"syntax"``, ...).

    >>> err = ExpressionError("unknown function 'foo'", text="foo(x)", column=1, construct="call")
    >>> print(err)
    unknown function 'foo' (column 1)
    >>> print(err.pointer())
      foo(x)
      ^
    """

    def __init__(self, message: str, *, text: str = "", column: int | None = None,
                 construct: str = "expression") -> None:
        super().__init__(message)
        self.message = message
        self.text = text
        self.column = column
        self.construct = construct

    def __str__(self) -> str:
        if self.column is None:
            return self.message
        return f"{self.message} (column {self.column})"

    def pointer(self) -> str:
        """The offending text with a caret under the column ('' when there is none)."""
        if self.column is None or not self.text:
            return ""
        shown = "".join(ch if ch.isprintable() else "?" for ch in self.text)
        caret = self.column - 1
        if len(shown) > 72:  # a window of the text around the column
            start = max(0, min(caret - 36, len(shown) - 72))
            prefix = "..." if start else ""
            suffix = "..." if start + 72 < len(shown) else ""
            shown = prefix + shown[start:start + 72] + suffix
            caret = caret - start + len(prefix)
        return f"  {shown}\n  {' ' * caret}^"


# ============================================================================ functions
def _op_sympy(op_name: str) -> Callable[..., sp.Expr]:
    """The SymPy form the symbolic engine gives an elementwise op: the op table's."""
    def build(*args: sp.Expr) -> sp.Expr:
        from .ops import OPS

        return OPS[op_name].sympy(sp, *args)

    return build


def _structural(op_name: str, **attrs: Any) -> Callable[..., sp.Expr]:
    def build(*args: sp.Expr) -> sp.Expr:
        return structural_class(op_name).of(*args, **attrs)

    return build


def _matrix_transpose_sympy(x: sp.Expr) -> sp.Expr:
    n = len(shape_of(x))
    if n < 2:
        raise ValueError(f"transpose needs an array with at least 2 dimensions, got shape {shape_of(x)}")
    return structural_class("transpose").of(x, dim0=n - 2, dim1=n - 1)


def _matrix_transpose_tensor(t: Any) -> Any:
    if t.ndim < 2:
        raise ValueError(f"transpose needs an array with at least 2 dimensions, got shape {tuple(t.shape)}")
    return t.transpose(t.ndim - 2, t.ndim - 1)


def _tril_sympy(x: sp.Expr, k: int = 0) -> sp.Expr:
    return structural_class("tril").of(x, diagonal=k)


def _diagonal_part(x: sp.Expr) -> sp.Expr:
    """The diagonal of the last two dims kept in place, the rest 0, without a mask:
    ``tril(tril(x).mT)`` (transposed)."""
    if len(shape_of(x)) < 2:
        raise ValueError(f"needs a matrix or a batch of them (at least 2 dims), got shape {shape_of(x)}")
    return structural_class("tril").of(_matrix_transpose_sympy(structural_class("tril").of(x)))


def _trace_sympy(x: sp.Expr) -> sp.Expr:
    if len(shape_of(x)) != 2:
        raise ValueError(f"trace needs a matrix, got shape {shape_of(x)}")
    return structural_class("sum").of(_diagonal_part(x), dim=None, keepdim=False)


def _diagonal_sympy(x: sp.Expr) -> sp.Expr:
    """The diagonal as the sums of the diagonal part over the longer of the two dims."""
    rows, cols = shape_of(x)[-2:] if len(shape_of(x)) >= 2 else (0, 0)
    part = _diagonal_part(x)  # transposed: (..., cols, rows)
    return structural_class("sum").of(part, dim=(-1 if cols <= rows else -2,), keepdim=False)


def _triu_sympy(x: sp.Expr, k: int = 0) -> sp.Expr:
    """The upper triangle as what the lower one leaves: ``x - tril(x, k - 1)`` (no mask)."""
    return x - structural_class("tril").of(x, diagonal=k - 1)


def _tril_tensor(x: Any, k: int = 0) -> Any:
    import symgrad

    return symgrad.tril(x, k)


def _tensor_function(name: str) -> Callable[..., Any]:
    def build(*args: Any) -> Any:
        import symgrad

        return getattr(symgrad, name)(*args)

    return build


ARRAY_PARAMETERS = frozenset({"x", "a", "b", "c", "src"})
"""Parameters that take an array (any expression); the others are options written as literals."""

VARIADIC = "*operands"
"""A last parameter that takes any number (one or more) of arrays (``einsum``'s operands)."""

NUMBER_OPTIONS = frozenset({"ord", "value"})
"""Options that take any number; the others (dims, offsets, counts) take whole numbers."""

LIST_KINDS = {
    "positions": "a list of whole numbers 0 or more written out, such as [0, 2] or [[0], [1]]",
    "mask": "a list of 0 and 1 (or True and False) written out, such as [[1, 0], [0, 1]]",
    "whole numbers": "a list of whole numbers written out, such as [1, 1]",
    "counts": "a whole number or a list of whole numbers written out, such as 2 or [1, 2]",
}
"""Options a function may take as list literals (``FunctionSpec.lists``), by what their
elements are, and how they are written: ``positions`` and ``mask`` lists are rectangular, of
any number of dims; the others are flat."""

STRING_OPTIONS = frozenset({"equation"})
"""Options written as a string literal (``einsum``'s equation), the only place a formula has text."""

INTEGER_RESULTS = {"indices": "integer positions, which have no formula form (no derivative)"}
"""Results of a several-result function that a formula cannot pick, with the reason."""


@dataclass(frozen=True)
class FunctionSpec:
    """One whitelisted function: its positional ``parameters`` in the order they are written
    (arrays, named as in :data:`ARRAY_PARAMETERS` or :data:`VARIADIC`, and options), of which
    the first ``required`` must be given, its SymPy face and its tensor face.  Both faces take
    the arguments in written order: arrays as they are, options as Python values (numbers,
    NumPy arrays for list literals, text for the equation).

    ``lists`` gives the options written as list literals, each with its kind of
    :data:`LIST_KINDS` (``(("index", "positions"),)``).

    A function of several results (``sort``, ``unbind``) names them in ``several``; a call
    is subscripted with a whole-number literal (``sort(x)[0]``), and both faces take the
    index as the keyword ``result``.  ``results`` names them when their number is fixed."""

    name: str
    parameters: tuple[str, ...]
    required: int
    sympy: Callable[..., sp.Expr]
    tensor: Callable[..., Any]
    doc: str
    several: str = ""
    results: tuple[str, ...] = ()
    lists: tuple[tuple[str, str], ...] = ()

    @property
    def arity(self) -> int:
        """How many array parameters the function has (its variadic one counted once)."""
        return sum(1 for p in self.parameters if self.kind(p) == "array")

    @property
    def signature(self) -> str:
        """How the arguments are written: ``x``, ``a, b``, ``x, dim``, ``x[, dim]``, ``equation, a, ...``.

        >>> FUNCTIONS["sum"].signature, FUNCTIONS["cumsum"].signature, FUNCTIONS["hypot"].signature
        ('x[, dim]', 'x, dim', 'a, b')
        >>> FUNCTIONS["einsum"].signature
        'equation, a, ...'
        """
        shown = ["a, ..." if p == VARIADIC else p for p in self.parameters]
        text = ", ".join(shown[:self.required])
        for parameter in shown[self.required:]:
            text += f"[, {parameter}" if text else f"[{parameter}"
        return text + "]" * (len(shown) - self.required)

    @property
    def usage(self) -> str:
        """How a call is written: ``sum(x[, dim])``; ``sort(x[, dim])[i]`` for several results.

        >>> FUNCTIONS["sort"].usage
        'sort(x[, dim])[i]'
        """
        return f"{self.name}({self.signature})" + ("[i]" if self.several else "")

    def kind(self, parameter: str) -> str:
        """``array``, ``number``, ``whole``, ``equation`` or a kind of :data:`LIST_KINDS`."""
        if parameter in ARRAY_PARAMETERS or parameter == VARIADIC:
            return "array"
        if parameter in NUMBER_OPTIONS:
            return "number"
        if parameter in STRING_OPTIONS:
            return "equation"
        return dict(self.lists).get(parameter, "whole")

    def parameter(self, position: int) -> str:
        """The parameter the argument at ``position`` (0-based) is given to."""
        if self.parameters and self.parameters[-1] == VARIADIC and position >= len(self.parameters) - 1:
            return VARIADIC
        return self.parameters[position]

    def accepts(self, count: int) -> bool:
        """Whether ``count`` arguments is a valid call."""
        if self.parameters and self.parameters[-1] == VARIADIC:
            return count >= self.required
        return self.required <= count <= len(self.parameters)


def _spec(name: str, doc: str, arity: int = 1, sympy_form=None, tensor_form=None, options: tuple = (),
          required: int = 0) -> FunctionSpec:
    """``arity`` arrays (``x``, or ``a, b, c``), then ``options``, the first ``required`` of them required."""
    arrays = ("x",) if arity == 1 else tuple("abc"[:arity])
    return FunctionSpec(name, arrays + tuple(options), arity + required, sympy_form or _op_sympy(name),
                        tensor_form or _tensor_function(name), doc)


def _reduction(op_name: str) -> Callable[..., sp.Expr]:
    """A reduction op over all elements, or over ``dim``."""
    def build(x: sp.Expr, dim: int | None = None) -> sp.Expr:
        return structural_class(op_name).of(x, dim=None if dim is None else (dim,), keepdim=False)

    return build


def _along(op_name: str) -> Callable[..., sp.Expr]:
    """An op along one ``dim`` (cumsum, cumprod, logcumsumexp)."""
    def build(x: sp.Expr, dim: int) -> sp.Expr:
        return structural_class(op_name).of(x, dim=dim)

    return build


def _reduction_tensor(method: str) -> Callable[..., Any]:
    def build(x: Any, dim: int | None = None) -> Any:
        return getattr(x, method)() if dim is None else getattr(x, method)(dim=dim)

    return build


def _composite(name: str) -> Callable[..., Any]:
    """The tensor face of a composite of ``tape/composites.py`` or of ``symgrad.linalg``."""
    def build(*args: Any) -> Any:
        from . import linalg
        from .tape import composites

        return (getattr(composites, name, None) or getattr(linalg, name))(*args)

    return build


@dataclass(frozen=True)
class FormWithConstants:
    """A SymPy face's form that holds constant arrays (a zero buffer, an index grid, the
    index array or mask a formula wrote out): the form, and the value of each constant
    symbol in it (:class:`~symgrad.symbolic.core.symbols.DataArray`, printed as the engine
    prints one: ``where idx0 = ...``)."""

    expr: sp.Expr
    constants: dict


def _traced(tensor_form: Callable[..., Any]) -> Callable[..., sp.Expr | FormWithConstants]:
    """The SymPy face of a function made of ops (a composite): the closed form of the
    tensor face run on placeholders of the array arguments' shapes (the SymPy ones; the
    options are Python values), the arguments put in for the placeholders.  The arrays
    the form holds besides (zero buffers, index grids, the index arrays written in the
    formula) are its constants; one computed from the placeholders' values (an order, a
    count) would be frozen at them, and is refused."""
    def build(*args: Any, **keywords: Any) -> sp.Expr | FormWithConstants:
        import symgrad
        from .symbolic import tensor_graph
        from .tape import tracing

        placeholders = {i: symgrad.zeros(*shape_of(a), requires_grad=True) for i, a in enumerate(args)
                        if isinstance(a, sp.Basic)}
        given = {id(t): args[i] for i, t in placeholders.items()}
        # recorded also where the caller turned grad off; a trace of the placeholders marks
        # what is computed from their values outside the graph
        with symgrad.enable_grad(), tracing.tracing(placeholders.values()):
            out = tensor_form(*[placeholders.get(i, a) for i, a in enumerate(args)], **keywords)
        expr, symbols = tensor_graph(out)
        constants = {}
        for symbol, source in symbols.items():
            if id(source) in given:
                continue
            made_by = getattr(source, "_made_outside_graph", None)
            if made_by is not None:
                raise TypeError(f"the function's form holds an array made by {made_by} from the arguments' values, "
                                "which a formula cannot hold (it would be frozen at one point)")
            constants[symbol] = np.array(source._data if isinstance(source, symgrad.Tensor) else source)
        expr = expr.xreplace({symbol: given[id(t)] for symbol, t in symbols.items() if id(t) in given})
        return FormWithConstants(expr, constants) if constants else expr

    return build


def _composite_spec(name: str, doc: str, arity: int = 1, options: tuple = (), required: int = 0,
                    tensor_form: Callable[..., Any] | None = None) -> FunctionSpec:
    """A function made of ops: its tensor face (the composite of that name by default) and
    the closed form of it as its SymPy face."""
    tensor_form = tensor_form or _composite(name)
    return _spec(name, doc, arity, _traced(tensor_form), tensor_form, options, required)


def _pick(name: str, results: tuple, result: int) -> Any:
    """Result ``result`` of a function of several results, or a clear refusal."""
    if not -len(results) <= result < len(results):
        raise ValueError(f"{name} gives {len(results)} results here; [{result}] is out of range "
                         f"(from [0] to [{len(results) - 1}])")
    return results[result]


def _several_spec(name: str, doc: str, parameters: tuple, required: int, several: str, results: tuple = (),
                  lists: tuple = (), tensor_form: Callable[..., Any] | None = None) -> FunctionSpec:
    """A function of several results (``sort``, ``unbind``): both faces take the index of
    the result a formula picks as the keyword ``result``."""
    everything = tensor_form or _composite(name)

    def picked(*args: Any, result: int) -> Any:
        return _pick(name, tuple(everything(*args)), result)

    return FunctionSpec(name, parameters, required, _traced(picked), picked, doc, several, tuple(results),
                        tuple(lists))


def _composite_in_order(name: str, doc: str, parameters: tuple, required: int, lists: tuple = (),
                        tensor_form: Callable[..., Any] | None = None) -> FunctionSpec:
    """A composite with list options, or whose arrays and options interleave
    (``scatter_add(x, dim, index, src)``, ``einsum(equation, a, ...)``): its parameters as
    written, the first ``required`` required."""
    tensor_form = tensor_form or _composite(name)
    return FunctionSpec(name, parameters, required, _traced(tensor_form), tensor_form, doc, lists=tuple(lists))


SIZES = ("r0", "r1", "r2", "r3")
"""The options of ``tile``, ``repeat`` and ``expand``: one size per dim."""


def _whitelist() -> dict[str, FunctionSpec]:
    """Every op the op table marks ``in_formulas`` (with its arity and summary), and the
    formula language's whole-array helpers, in alphabetical order."""
    from .ops import OPS

    specs = [_spec(op.name, op.summary, op.arity) for op in OPS.values() if op.in_formulas]
    specs += [
        *[_spec(name, f"{doc} of all elements, or along dim", sympy_form=_reduction(name),
                tensor_form=_reduction_tensor(name), options=("dim",))
          for name, doc in [("sum", "sum"), ("mean", "mean"), ("prod", "product"), ("amax", "largest"),
                            ("amin", "smallest"), ("logsumexp", "log of the sum of exp"), ("norm", "2-norm")]],
        *[_spec(name, doc, sympy_form=_along(name), tensor_form=lambda x, dim, name=name: getattr(x, name)(dim),
                options=("dim",), required=1)
          for name, doc in [("cumsum", "running sum along dim"), ("cumprod", "running product along dim"),
                            ("logcumsumexp", "log of the running sum of exp along dim")]],
        *[_composite_spec(name, doc, options=("dim",))
          for name, doc in [("var", "variance (n - 1) of all elements, or along dim"),
                            ("std", "standard deviation (n - 1) of all elements, or along dim")]],
        *[_composite_spec(name, doc, options=("dim",), tensor_form=_reduction_tensor(name))
          for name, doc in [("argmax", "position of the first largest element (flattened), or along dim; no derivative"),
                            ("argmin", "position of the first smallest element (flattened), or along dim; no derivative")]],
        _composite_spec("count_nonzero", "number of non-zero elements, or along dim; no derivative", options=("dim",)),
        _composite_spec("vector_norm", "ord-norm of all elements, or along dim", options=("ord", "dim"),
                        required=1),
        _composite_spec("matrix_norm", "matrix norm ('fro' without ord; 1, -1, 2, -2) of the last two dims",
                        options=("ord",)),
        *[_spec(name, doc, sympy_form=_structural(op_name), tensor_form=_composite(name) if linalg else None)
          for name, op_name, linalg, doc in [
              ("det", "det", False, "determinant of a square matrix (or of each of a batch)"),
              ("logdet", "logdet", False, "log of the determinant of a square matrix"),
              ("inverse", "inverse", False, "inverse of a square matrix"),
              ("cholesky", "cholesky", True, "lower Cholesky factor of a symmetric positive definite matrix"),
              ("svdvals", "svdvals", True, "singular values of a matrix, descending")]],
        _spec("solve", "X with a @ X = b, a square", arity=2, sympy_form=_structural("solve"),
              tensor_form=_composite("solve")),
        _spec("tril", "lower triangle (on and below diagonal k)", sympy_form=_tril_sympy, tensor_form=_tril_tensor,
              options=("k",)),
        _spec("trace", "sum of the diagonal of a matrix", sympy_form=_trace_sympy, tensor_form=_composite("trace")),
        _spec("diagonal", "the diagonal of the last two dims", sympy_form=_diagonal_sympy,
              tensor_form=lambda x: _composite("diagonal")(x, 0, -2, -1)),
        *[_composite_spec(name, doc, options=SIZES, required=1, tensor_form=tensor_form) for name, doc, tensor_form in [
            ("tile", "repeated r0, r1, ... times along the dims (as many as there are from the right)",
             lambda x, *sizes: _composite("tile")(x, sizes)),
            ("repeat", "repeated r0, r1, ... times along the dims (Tensor.repeat)",
             lambda x, *sizes: _composite("repeat")(x, *sizes)),
            ("expand", "broadcast to the shape (r0, r1, ...), -1 keeping a dim",
             lambda x, *sizes: x.expand(*sizes))]],
        _spec("triu", "upper triangle (on and above diagonal k)", sympy_form=_triu_sympy,
              tensor_form=_composite("triu"), options=("k",)),
        *[_composite_spec(name, doc, arity=2) for name, doc in [
            ("outer", "outer product of two vectors"), ("inner", "inner product (over the last dims)"),
            ("kron", "Kronecker product")]],
        _composite_spec("tensordot", "sum of products over the last dims of a and the first of b (2 without dims)",
                        arity=2, options=("dims",)),
        *[_composite_spec(name, doc, options=options, required=len(options)) for name, doc, options in [
            ("flip", "reversed along dim", ("dim",)), ("roll", "rolled by shift along dim", ("shift", "dim")),
            ("movedim", "dim source moved to destination", ("source", "destination")),
            ("select", "the slice at index along dim (dim removed)", ("dim", "index")),
            ("narrow", "length elements from start along dim", ("dim", "start", "length")),
            ("ravel", "flattened to one dimension", ()), ("atleast_1d", "at least one dimension", ()),
            ("atleast_2d", "at least two dimensions", ())]],
        _spec("transpose", "swap the last two axes", sympy_form=_matrix_transpose_sympy,
              tensor_form=_matrix_transpose_tensor),
    ]
    specs += _several_result_specs() + _written_out_specs()
    return {spec.name: spec for spec in sorted(specs, key=lambda spec: spec.name)}


def _several_result_specs() -> list[FunctionSpec]:
    """The functions of several results: a formula picks one, ``sort(x)[0]``."""
    return [
        _several_spec("sort", "sorted ascending along dim (the last without dim): [0] the values",
                      ("x", "dim"), 1, "values, indices", ("values", "indices")),
        _several_spec("topk", "the k largest along dim (the last without dim), descending: [0] the values",
                      ("x", "k", "dim"), 2, "values, indices", ("values", "indices")),
        _several_spec("slogdet", "sign and log of the absolute value of the determinant: [0] the sign, [1] the log",
                      ("x",), 1, "sign, logabsdet", ("sign", "logabsdet")),
        _several_spec("unbind", "the slices along dim (0 without dim), each without dim", ("x", "dim"), 1,
                      "one slice per index along dim"),
        _several_spec("chunk", "chunks pieces along dim (0 without dim), the last maybe smaller",
                      ("x", "chunks", "dim"), 2, "the pieces"),
        _several_spec("split", "pieces of split_size (or of the sizes listed) along dim (0 without dim)",
                      ("x", "split_size", "dim"), 2, "the pieces", lists=(("split_size", "counts"),)),
    ]


def _written_out_specs() -> list[FunctionSpec]:
    """The functions that take an equation or list literals (index arrays, masks, pad
    amounts), or whose forms hold constant arrays (zero buffers, index grids)."""
    positions = (("index", "positions"),)
    return [
        _composite_in_order("einsum", "Einstein summation: einsum('ij,jk->ik', a, b)", ("equation", VARIADIC), 2),
        _composite_in_order("diag", "a vector's square matrix with it on diagonal k, or a matrix's diagonal k",
                            ("x", "k"), 1),
        _composite_in_order("pad", "padded with zeros: [before, after] amounts from the last dim backwards",
                            ("x", "pad"), 2, (("pad", "whole numbers"),)),
        _composite_in_order("repeat_interleave", "each element (each slice along dim) repeated in place",
                            ("x", "repeats", "dim"), 2, (("repeats", "counts"),)),
        _composite_in_order("masked_fill", "value where mask is 1, x elsewhere", ("x", "mask", "value"), 3,
                            (("mask", "mask"),)),
        _composite_in_order("gather", "the elements at index along dim (torch.gather)", ("x", "dim", "index"), 3,
                            positions),
        _composite_in_order("scatter_add", "x with src added at index along dim (torch.scatter_add)",
                            ("x", "dim", "index", "src"), 4, positions),
        _composite_in_order("index_select", "the slices at the positions index along dim", ("x", "dim", "index"), 3,
                            positions),
        _composite_in_order("take_along_dim", "the elements at indices along dim (of the flattened x without dim)",
                            ("x", "indices", "dim"), 2, (("indices", "positions"),)),
    ]


FUNCTIONS: dict[str, FunctionSpec] = _whitelist()
"""The whitelist of callable names, with their faces."""

CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "e": sp.E}
"""Named constants."""

_RESERVED = (
    set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))
    | {"np", "numpy", "math", "cmath", "sympy", "sp", "scipy", "mpmath", "symgrad", "torch", "jax",
       "os", "sys", "builtins", "array", "I", "E", "S", "oo", "zoo", "nan", "inf", "infinity",
       "Inf", "NaN", "lambda"}
)
_SYMPY_LOOKALIKES = {"I", "E", "S", "oo", "zoo", "nan", "inf", "infinity", "Inf", "NaN"}


def _generated_code_names() -> frozenset:
    """Names that compiled code binds (``matmul``, ``reshape``...): a variable of that
    name would shadow them."""
    if not _CODE_NAMES:
        from .symbolic import numpy_namespace

        _CODE_NAMES.append(frozenset(numpy_namespace()) | {"functools", "compiled"})
    return _CODE_NAMES[0]


_CODE_NAMES: list = []


def check_name(name: str, *, text: str = "", column: int | None = None) -> None:
    """Refuse a variable name that could shadow anything; return None when it is fine.

    >>> check_name("theta")
    >>> check_name("open")
    Traceback (most recent call last):
        ...
    symgrad.parsing.ExpressionError: the name 'open' is a Python builtin and cannot be a variable; rename it
    """
    def refuse(why: str) -> ExpressionError:
        return ExpressionError(f"the name {name!r} {why}", text=text, column=column, construct="name")

    if not isinstance(name, str) or not name.isidentifier():
        raise refuse("is not a valid identifier; use letters, digits and '_' and start with a letter")
    if unicodedata.normalize("NFKC", name) != name:
        raise refuse("is not in Unicode normal form NFKC; type it plainly")
    if name.startswith("_"):
        raise refuse("starts with '_'; such names are reserved, start it with a letter")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise refuse("is a Python keyword and cannot be a variable; rename it")
    if name in FUNCTIONS:
        raise refuse(f"is a function; call it as {name}(...) or rename the variable")
    if name in CONSTANTS:
        raise refuse("is a constant and cannot be a variable; rename the variable")
    if name in _SYMPY_LOOKALIKES:
        raise refuse("would print like a SymPy constant; rename it")
    if name in dir(builtins):
        raise refuse("is a Python builtin and cannot be a variable; rename it")
    if name in _RESERVED or name in _generated_code_names():
        raise refuse("is reserved for generated code; rename it")


# ============================================================================ program
@dataclass(frozen=True)
class Instruction:
    """One step of a parsed formula, in post-order.

    ``kind`` is ``"number"`` (``value`` an int or float), ``"name"`` (a variable),
    ``"constant"`` (``pi``, ``e``), ``"op"`` (``value`` is ``add``, ``sub``, ``mul``,
    ``div``, ``pow``, ``matmul``, ``mod``, ``floordiv`` or ``neg``), ``"literal"`` (an
    option written as a list literal, as nested tuples, or ``einsum``'s equation, as text;
    and the index of the result a formula picks of a function of several results, as an
    int: folding passes it on as it is) or ``"call"`` (``value`` a name from
    :data:`FUNCTIONS`; a call of a function of several results has the index of the
    result it picks as its last argument).  ``nargs`` operands are popped from the value
    stack.  ``column`` is the 1-based column of the construct in the text.
    """

    kind: str
    value: Any
    nargs: int
    column: int


_BINARY = {ast.Add: ("add", "+"), ast.Sub: ("sub", "-"), ast.Mult: ("mul", "*"), ast.Div: ("div", "/"),
           ast.Pow: ("pow", "**"), ast.MatMult: ("matmul", "@"), ast.Mod: ("mod", "%"),
           ast.FloorDiv: ("floordiv", "//")}
_BINARY_REFUSED = {
    ast.LShift: "'<<'", ast.RShift: "'>>'",
    ast.BitAnd: "'&'", ast.BitOr: "'|'", ast.BitXor: "'^' (in Python this is bitwise xor; write x**2 for a power)",
}
_GROUP = {"add": "sum", "sub": "sum", "mul": "product", "div": "product"}

_CONSTRUCTS = {
    "Attribute": "attribute access", "Slice": "a slice",
    "Lambda": "lambda", "ListComp": "a list comprehension", "SetComp": "a set comprehension",
    "DictComp": "a dict comprehension", "GeneratorExp": "a generator expression",
    "List": "a list literal", "Tuple": "a tuple (a comma outside a function call)", "Dict": "a dict literal",
    "Set": "a set literal", "Compare": "a comparison", "BoolOp": "'and'/'or'", "IfExp": "a conditional expression",
    "NamedExpr": "assignment (':=')", "JoinedStr": "an f-string", "FormattedValue": "an f-string",
    "Await": "await", "Yield": "yield", "YieldFrom": "yield", "Starred": "a starred expression",
}


def _char_column(text: str, byte_offset: int | None) -> int | None:
    """Turn the parser's UTF-8 byte offset into a 1-based character column."""
    if byte_offset is None:
        return None
    return len(text.encode("utf-8")[:byte_offset].decode("utf-8", errors="ignore")) + 1


def _refuse_characters(text: str) -> None:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is {len(text)} characters long; the limit is {MAX_LENGTH}",
                              construct="length")
    if not text.strip():
        raise ExpressionError("the expression is empty", text=text, construct="syntax")
    for index, ch in enumerate(text):
        if ch in " \t":
            continue
        category = unicodedata.category(ch)
        if category[0] in "CZ" and category != "Zs" or ch == "\\":
            raise ExpressionError(f"the character {ch!r} (U+{ord(ch):04X}) is not allowed in an expression",
                                  text=text, column=index + 1, construct="character")


def _python_tree(text: str) -> ast.Expression:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text, mode="eval")
    except SyntaxError as err:
        column = err.offset if err.offset and err.offset > 0 else None
        if column is not None:
            column = min(column, len(text) + 1)
        reason = (err.msg or "invalid syntax").replace(" (<unknown>, line 1)", "")
        if "Exceeds the limit" in reason:
            reason = "a number literal is too long"
        raise ExpressionError(f"syntax error: {reason}", text=text, column=column, construct="syntax") from None
    except (RecursionError, MemoryError):
        raise ExpressionError("the expression is nested too deeply for Python's parser", text=text,
                              construct="depth") from None
    except ValueError as err:  # e.g. null bytes, over-long integer literals
        raise ExpressionError(f"syntax error: {err}", text=text, construct="syntax") from None


def _whole_literal(node: ast.AST) -> int | None:
    """The whole number a literal such as ``2`` or ``-1`` writes, or None."""
    literal = node.operand if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) else node
    value = literal.value if isinstance(literal, ast.Constant) else None
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return -value if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) else value


def _check_option(spec: FunctionSpec, option: str, arg: ast.AST, refuse: Callable[..., ExpressionError]) -> None:
    """A number option is a number literal (a whole one but for ``ord`` and ``value``), maybe negated."""
    literal = arg.operand if isinstance(arg, ast.UnaryOp) and isinstance(arg.op, (ast.USub, ast.UAdd)) else arg
    value = literal.value if isinstance(literal, ast.Constant) else None
    whole = _whole_literal(arg) is not None
    if not (whole or option in NUMBER_OPTIONS and isinstance(value, float) and math.isfinite(value)):
        kind = "a number" if option in NUMBER_OPTIONS else "a whole number"
        raise refuse(arg, f"{spec.name}'s {option} must be {kind} written out (such as 1 or -1), not an expression",
                     "option")


EINSUM_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ, ->")
"""What an einsum equation is written with: letters, commas, spaces and one ``->``."""


def _literal_option(spec: FunctionSpec, option: str, arg: ast.AST, refuse: Callable[..., ExpressionError]) -> Any:
    """An option written as a literal: ``einsum``'s equation (text), or a list of whole
    numbers (or of 0/1/True/False for a mask) of the kind ``spec`` gives it, as nested
    tuples; anything else is refused naming the function and the option."""
    kind = spec.kind(option)
    if kind == "equation":
        equation = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
        if equation is None or not set(equation) <= EINSUM_CHARACTERS or equation.count("->") > 1 \
                or equation.replace("->", "").count("-") + equation.replace("->", "").count(">"):
            raise refuse(arg, f"{spec.name}'s {option} must be a string literal of letters, commas and one '->', "
                         "such as 'ij,jk->ik' ('...' is not supported)", "option")
        return equation
    why = f"{spec.name}'s {option} must be {LIST_KINDS[kind]}"
    if kind == "counts" and _whole_literal(arg) is not None:
        return _whole_literal(arg)
    if not isinstance(arg, ast.List):
        raise refuse(arg, why, "option")
    nested = kind in ("positions", "mask")
    values: list = []  # the elements, depth first; lists as their nested tuples
    pending: list[tuple[ast.AST, list]] = [(arg, values)]
    while pending:
        node, into = pending.pop()
        if isinstance(node, ast.List) and (nested or node is arg):
            inner: list = []
            into.append(inner)
            pending.extend((element, inner) for element in reversed(node.elts))
            continue
        number = _whole_literal(node)
        if kind == "mask" and isinstance(node, ast.Constant) and isinstance(node.value, bool):
            number = int(node.value)
        if number is None or kind == "positions" and number < 0 or kind == "mask" and number not in (0, 1):
            raise refuse(node, why, "option")
        into.append(number)

    def frozen(value: Any) -> Any:
        return tuple(frozen(v) for v in value) if isinstance(value, list) else value

    try:
        np.asarray(values[0], dtype=np.int64)
    except (ValueError, OverflowError):  # ragged, more dims than NumPy has, a number too large
        raise refuse(arg, f"{why} (rectangular, of numbers below 2**63)", "option") from None
    return frozen(values[0])


def _arguments(spec: FunctionSpec, args: list) -> tuple[list, dict]:
    """The arguments as the faces take them: arrays as they are, numbers as Python numbers
    (folding gives SymPy numbers or floats; ints, and ``ord`` an int where it is whole), list
    literals as NumPy arrays (int64; bool for a mask; a list of ints for pad amounts and
    counts), the equation as text; and the keywords: ``result``, the index of the result a
    call of a function of several results picks (its last argument)."""
    keywords = {}
    if spec.several:
        *args, keywords["result"] = args
    values = []
    for position, value in enumerate(args):
        kind = spec.kind(spec.parameter(position))
        if kind in ("array", "equation"):
            values.append(value)
        elif kind in ("whole", "number"):
            number = float(value)
            values.append(int(number) if kind == "whole" or number.is_integer() else number)
        elif kind in ("positions", "mask"):
            values.append(np.array(value, dtype=bool if kind == "mask" else np.int64))
        else:  # "whole numbers", "counts"
            values.append(list(value) if isinstance(value, tuple) else value)
    return values, keywords


@dataclass(frozen=True)
class _Literal:
    """An option written as a literal, or the result a subscript picks, on the visitor's stack."""

    value: Any
    column: int


def _compile_program(text: str, tree: ast.Expression) -> tuple[Instruction, ...]:
    """Validate the Python tree and flatten it into post-order, without recursion."""
    program: list[Instruction] = []
    # (node, depth, group of the parent operator, expanded?)
    stack: list[tuple[ast.AST, int, str | None, bool]] = [(tree.body, 1, None, False)]

    def column_of(node: ast.AST) -> int | None:
        return _char_column(text, getattr(node, "col_offset", None))

    def operator_column(node: ast.BinOp) -> int:
        """The column of a binary operator's symbol (between its operands)."""
        start = (_char_column(text, node.left.end_col_offset) or 1) - 1
        stop = (_char_column(text, node.right.col_offset) or 1) - 1
        gap = text[start:stop]
        stripped = gap.lstrip(" \t)")
        return start + len(gap) - len(stripped) + 1

    def refuse(node: ast.AST, message: str, construct: str, column: int | None = None) -> ExpressionError:
        return ExpressionError(message, text=text, column=column or column_of(node), construct=construct)

    def attribute_error(node: ast.Attribute) -> ExpressionError:
        column = _char_column(text, node.end_col_offset - len(node.attr.encode("utf-8")))
        return refuse(node, f"attribute access ('.{node.attr}') is not allowed in an expression",
                      "attribute access", column)

    picked: dict[int, int] = {}  # id of a call of a function of several results -> the result its subscript picks
    while stack:
        node, depth, group, expanded = stack.pop()
        if isinstance(node, _Literal):
            program.append(Instruction("literal", node.value, 0, node.column))
            continue
        col = column_of(node) or 1
        if expanded:
            if isinstance(node, ast.BinOp):
                program.append(Instruction("op", _BINARY[type(node.op)][0], 2, operator_column(node)))
            elif isinstance(node, ast.UnaryOp):
                program.append(Instruction("op", "neg", 1, col))
            else:  # ast.Call
                several = FUNCTIONS[node.func.id].several
                program.append(Instruction("call", node.func.id, len(node.args) + bool(several), col))
            continue
        own_group = None
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            own_group = _GROUP.get(_BINARY[type(node.op)][0])
            if own_group is not None and own_group == group:
                depth -= 1  # a + b - c is one flat sum for SymPy: one level
        if depth > MAX_DEPTH:
            raise refuse(node, f"the expression nests more than {MAX_DEPTH} levels deep", "depth")

        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or value is None or value is Ellipsis:
                raise refuse(node, f"{value!r} is not a number", "constant")
            if isinstance(value, complex):
                raise refuse(node, "imaginary numbers are not supported", "complex number")
            if isinstance(value, (str, bytes)):
                raise refuse(node, "a string literal is not allowed in an expression", "string")
            if isinstance(value, float) and not math.isfinite(value):
                raise refuse(node, "the number literal is too large (it overflows to infinity)", "number")
            if isinstance(value, int) and value.bit_length() > MAX_BITS:
                raise refuse(node, f"the number literal is too long (more than {MAX_BITS} bits)", "number")
            if not isinstance(value, (int, float)):
                raise refuse(node, f"the literal {type(value).__name__} is not allowed", "constant")
            program.append(Instruction("number", value, 0, col))
        elif isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                program.append(Instruction("constant", node.id, 0, col))
            else:
                check_name(node.id, text=text, column=col)
                program.append(Instruction("name", node.id, 0, col))
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                refused = _BINARY_REFUSED.get(type(node.op), type(node.op).__name__)
                raise refuse(node, f"the operator {refused} is not allowed", "operator", operator_column(node))
            stack.append((node, depth, group, True))
            stack.append((node.right, depth + 1, own_group, False))
            stack.append((node.left, depth + 1, own_group, False))
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.UAdd):
                stack.append((node.operand, depth + 1, None, False))
            elif isinstance(node.op, ast.USub):
                stack.append((node, depth, group, True))
                stack.append((node.operand, depth + 1, None, False))
            else:
                what = {ast.Not: "'not'", ast.Invert: "'~'"}.get(type(node.op), type(node.op).__name__)
                raise refuse(node, f"the operator {what} is not allowed", "operator")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                raise attribute_error(func)
            if not isinstance(func, ast.Name):
                raise refuse(func, "only whitelisted function names can be called; "
                             "write a*(b) for a product", "call")
            if func.id not in FUNCTIONS:
                allowed = ", ".join(sorted(FUNCTIONS))
                if func.id in dir(builtins) or func.id.startswith("_") or keyword.iskeyword(func.id):
                    message = f"calling {func.id!r} is not allowed; the functions are: {allowed}"
                else:
                    message = f"unknown function {func.id!r}; the functions are: {allowed}"
                raise refuse(func, message, "call")
            for keyword_arg in node.keywords:
                if keyword_arg.arg is None:
                    raise refuse(keyword_arg, "'**' unpacking is not allowed", "keyword argument")
                raise refuse(keyword_arg, f"keyword argument '{keyword_arg.arg}=' is not allowed", "keyword argument")
            for arg in node.args:
                if isinstance(arg, ast.Starred):
                    raise refuse(arg, "a starred argument ('*') is not allowed", "starred argument")
            spec = FUNCTIONS[func.id]
            if not spec.accepts(len(node.args)):
                raise refuse(func, f"{spec.name} is called as {spec.usage}, got {len(node.args)} "
                             f"argument{'s' if len(node.args) != 1 else ''}", "call")
            if spec.several and id(node) not in picked:
                raise refuse(func, f"{spec.name} gives several results ({spec.several}): pick one with [i], as in "
                             f"{spec.name}(...)[0]", "call")
            stack.append((node, depth, group, True))
            if spec.several:
                stack.append((_Literal(picked.pop(id(node)), col), depth, None, False))
            for position, arg in reversed(list(enumerate(node.args))):
                option = spec.parameter(position)
                kind = spec.kind(option)
                if kind in ("whole", "number"):
                    _check_option(spec, option, arg, refuse)
                elif kind != "array":
                    arg = _Literal(_literal_option(spec, option, arg, refuse), column_of(arg) or col)
                stack.append((arg, depth + 1, None, False))
        elif isinstance(node, ast.Subscript):
            call = node.value
            spec = FUNCTIONS.get(call.func.id) if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) \
                else None
            if spec is None or not spec.several:
                raise refuse(node, "indexing (subscript) is not allowed in an expression; only a function of several "
                             "results (" + ", ".join(n for n, s in FUNCTIONS.items() if s.several) + ") is "
                             "subscripted, to pick one: sort(x)[0]", "Subscript")
            result = _whole_literal(node.slice)
            if result is None:
                raise refuse(node.slice, f"{spec.name}(...)[i] picks a result by a whole number written out, such as "
                             "[0] or [-1]; not a slice or an expression", "subscript")
            if spec.results:
                if not -len(spec.results) <= result < len(spec.results):
                    raise refuse(node.slice, f"{spec.name} gives {len(spec.results)} results ({spec.several}); "
                                 f"[{result}] is out of range", "subscript")
                name = spec.results[result]
                if name in INTEGER_RESULTS:
                    raise refuse(node.slice, f"{spec.name}(...)[{result}] is its {name}: {INTEGER_RESULTS[name]}; "
                                 f"[0] is its {spec.results[0]}", "subscript")
            picked[id(call)] = result
            stack.append((call, depth, group, False))
        elif isinstance(node, ast.Attribute):
            raise attribute_error(node)
        else:
            kind = type(node).__name__
            what = _CONSTRUCTS.get(kind, f"the Python construct {kind!r}")
            raise refuse(node, f"{what} is not allowed in an expression", kind)
    return tuple(program)


# ============================================================================ folding
def _log2(number: sp.Expr) -> float:
    """Bits of the larger of numerator and denominator of a rational number (0 otherwise)."""
    if isinstance(number, sp.Rational) and number != 0:
        return max(math.log2(abs(int(number.p))), math.log2(int(number.q)))
    return 0.0


def _coefficient_bits(expr: sp.Expr) -> float:
    """Bits of the exact number SymPy would multiply out of ``expr`` (a product's
    coefficient; for a sum, the largest coefficient of its terms, since a number times a
    sum is distributed)."""
    if isinstance(expr, sp.Add):
        return max(_coefficient_bits(term) for term in expr.args)
    if isinstance(expr, sp.Mul):
        return _log2(expr.as_coeff_Mul()[0])
    return _log2(expr)


def _check_size(name: str, args: list) -> None:
    """Refuse arithmetic whose exact numeric result would exceed :data:`MAX_BITS`
    (checked *before* SymPy computes it)."""
    if name in ("mul", "div"):
        if sum(_coefficient_bits(a) for a in args) > MAX_BITS:
            raise ValueError(f"the numbers in this product are too large (more than {MAX_BITS} bits)")
    elif name == "pow":
        base, exponent = args
        bits = _coefficient_bits(base)
        if isinstance(base, sp.Pow) and isinstance(base.base, sp.Rational):
            bits = _log2(base.base)  # (2**k)**n is evaluated as 2**(k*n)
            if isinstance(base.exp, sp.Rational):
                exponent = exponent * base.exp
        if isinstance(exponent, sp.Rational) and bits * abs(float(exponent)) > MAX_BITS:
            raise ValueError(f"this power is too large (more than {MAX_BITS} bits)")


def _sympy_operator(name: str) -> Callable[..., sp.Expr]:
    from .ops import OPS

    return {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "neg": lambda a: -a,
        "matmul": lambda a, b: structural_class("matmul").of(a, b),
        "mod": lambda a, b: OPS["remainder"].sympy(sp, a, b),
        "floordiv": lambda a, b: OPS["floor_divide"].sympy(sp, a, b),
    }[name]


def _tensor_operator(name: str) -> Callable[..., Any]:
    return {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "neg": lambda a: -a,
        "matmul": lambda a, b: a @ b, "mod": lambda a, b: a % b, "floordiv": lambda a, b: a // b,
    }[name]


_SYMBOLS_NOT_REAL = (sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I)


@dataclass
class ParsedExpression:
    """A formula that passed the whitelist: its text, program, variables and SymPy form.

    ``names`` lists the variables in order of first appearance; ``symbols`` maps each
    to its :class:`~symgrad.symbolic.core.symbols.ArrayVar` (shape ``()`` for scalars);
    ``shape`` is the shape of the result; ``constants`` maps each constant array of the form
    (a :class:`~symgrad.symbolic.core.symbols.DataArray`, named apart from the variables) to
    its value, which a compiled form takes after the variables.

    >>> p = parse("x @ w + b", shapes={"x": (2,), "w": (2, 3), "b": (3,)})
    >>> p.expr, p.shape, p.shapes["w"]
    (b + x @ w, (3,), (2, 3))
    >>> from symgrad.symbolic import compile_exprs, text
    >>> p = parse("index_select(x, 0, [2, 0]) * 10", shapes={"x": (3,)})
    >>> print(text(p.expr))
    10*x[idx0]
    where idx0 = array((2, 0))
    >>> f = compile_exprs([p.symbols["x"], *p.constants], [p.expr])
    >>> f(np.array([1.0, 2.0, 3.0]), *p.constants.values()).out0
    array([30., 10.])
    """

    text: str
    program: tuple[Instruction, ...]
    names: tuple[str, ...]
    shapes: dict[str, Shape]
    symbols: dict[str, sp.Symbol]
    expr: sp.Expr = field(repr=False)
    shape: Shape = ()
    constants: dict[sp.Symbol, np.ndarray] = field(default_factory=dict, repr=False, compare=False)  # in expr

    def with_constants_apart(self, taken: Iterable[str]) -> "ParsedExpression":
        """This formula with each constant named in ``taken`` (the variables and constants
        of other formulas compiled with it) renamed apart; itself when none is.

        >>> first = parse("sum(index_select(x, 0, [1, 0]))", {"x": (2,)})
        >>> second = first.with_constants_apart(first.names + tuple(c.name for c in first.constants))
        >>> [c.name for c in first.constants], [c.name for c in second.constants]
        (['idx0'], ['idx1'])
        """
        taken = set(taken)
        if not any(c.name in taken for c in self.constants):
            return self
        table = _Constants(taken | set(self.names) | {c.name for c in self.constants})
        renamed = {c: table.named(c, v) if c.name in taken else c for c, v in self.constants.items()}
        return replace(self, expr=self.expr.xreplace(renamed),
                                   constants={renamed[c]: v for c, v in self.constants.items()})

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        """Notebook display: the formula in LaTeX, bounded (see :mod:`symgrad.symbolic.printing.notebook`)."""
        from .symbolic import latex
        from .symbolic.printing.notebook import form_bundle

        return form_bundle([(None, self.expr)], whole_latex=lambda: f"$\\displaystyle {latex(self.expr)}$",
                           whole_text=lambda: repr(self), rest="symgrad.symbolic.text(p.expr), symgrad.symbolic.latex(p.expr)")

    def _repr_latex_(self) -> str:
        return self._repr_mimebundle_()["text/latex"]

    def fold(self, name: Callable[[str], Any], number: Callable[[Any], Any], constant: Callable[[str], Any],
             op: Callable[[str, list], Any], call: Callable[[str, list], Any]) -> Any:
        """Evaluate the program with one callback per kind of instruction (no recursion).

        >>> parse("2*x + 1").fold(name=lambda n: 10, number=float, constant=None,
        ...     op=lambda o, a: {"add": a[0] + a[1], "mul": a[0] * a[1]}[o], call=None)
        21.0
        """
        return _fold(self.text, self.program, name, number, constant, op, call)

    def to_tensor(self, values: Mapping[str, Any], *, requires_grad: bool = True,
                  dtype: Any = np.float64) -> tuple[Any, dict[str, Any]]:
        """Replay the formula on symgrad tensors built from ``values``: returns the output
        tensor and the input tensors by name (``requires_grad`` leaves named after the
        variables, so ``backward()`` fills their ``.grad``).  A value that is a tensor
        already is used as it is.

        >>> out, inputs = parse("x*y + sin(x)").to_tensor({"x": 2.0, "y": 3.0})
        >>> out.backward(); float(inputs["x"].grad)  # y + cos(x)
        2.5838531634528574
        """
        import symgrad

        missing = [n for n in self.names if n not in values]
        if missing:
            raise ExpressionError(f"no value given for {', '.join(missing)}", text=self.text, construct="value")
        inputs: dict[str, Any] = {}
        for variable in self.names:
            if isinstance(values[variable], symgrad.Tensor):  # used as given
                inputs[variable] = values[variable]
                continue
            array = np.asarray(values[variable], dtype=dtype)
            expected = self.shapes.get(variable, ())
            if array.shape != expected:
                if array.ndim == 0:
                    array = np.full(expected, array, dtype=dtype)
                else:
                    raise ExpressionError(f"the value of {variable} has shape {array.shape}, but its declared "
                                          f"shape is {expected}", text=self.text, construct="value")
            inputs[variable] = symgrad.tensor(array, requires_grad=requires_grad)
            inputs[variable].name = variable

        # constants stay Python numbers, as a user would write them next to tensors (x**2
        # records PowBackward0 with exponent 2.0); arithmetic between constants alone is
        # done by NumPy, so it overflows to inf instead of raising
        def op(name: str, args: list) -> Any:
            if any(isinstance(a, symgrad.Tensor) for a in args):
                return _tensor_operator(name)(*args)
            return float(_tensor_operator(name)(*(np.float64(a) for a in args)))

        def call(name: str, args: list) -> Any:
            spec = FUNCTIONS[name]
            values, keywords = _arguments(spec, args)
            values = [symgrad.tensor(v, dtype=dtype) if spec.kind(spec.parameter(i)) == "array"
                      and not isinstance(v, symgrad.Tensor) else v for i, v in enumerate(values)]
            return spec.tensor(*values, **keywords)

        with np.errstate(all="ignore"):
            out = self.fold(name=inputs.__getitem__, number=float, constant=lambda c: float(CONSTANTS[c]),
                            op=op, call=call)
        if not isinstance(out, symgrad.Tensor):
            out = symgrad.tensor(np.asarray(out, dtype=dtype))
        return out, inputs


def _fold(text: str, program: Iterable[Instruction], name, number, constant, op, call) -> Any:
    values: list[Any] = []
    for step in program:
        try:
            if step.kind == "number":
                values.append(number(step.value))
                continue
            if step.kind == "name":
                values.append(name(step.value))
                continue
            if step.kind == "constant":
                values.append(constant(step.value))
                continue
            if step.kind == "literal":
                values.append(step.value)
                continue
            args = values[len(values) - step.nargs:]
            del values[len(values) - step.nargs:]
            values.append((op if step.kind == "op" else call)(step.value, args))
        except ExpressionError:
            raise
        except Exception as err:  # noqa: BLE001  (SymPy or NumPy refusing a construct: report, never crash)
            what = step.value if step.kind == "call" else {"add": "+", "sub": "-", "mul": "*", "div": "/",
                                                            "pow": "**", "matmul": "@", "neg": "-", "mod": "%",
                                                            "floordiv": "//"}.get(step.value)
            reason = str(err) if isinstance(err, (ValueError, TypeError, ArithmeticError)) and str(err) else (
                f"{type(err).__name__}: {err}")
            raise ExpressionError(f"cannot apply {what!r}: {reason}", text=text, column=step.column,
                                  construct=str(step.value)) from None
    (result,) = values
    return result


_FOLDED = ("sigmoid", "softplus")
"""Functions whose SymPy form (the engine's stable functions) has no numeric evaluation:
SymPy cannot compare ``softplus(3)`` with a number and can loop for minutes trying (in a
``Piecewise`` of ``maximum``), so a call on constants becomes its float value."""


def _fold_constant(name: str, args: list) -> sp.Expr:
    from .ops import OPS

    values = [float(sp.N(a)) for a in args]  # TypeError for a non-real constant: reported
    result = float(OPS[name].forward(*(np.float64(v) for v in values)))
    if not math.isfinite(result):
        raise ValueError(f"{name} of {', '.join(map(str, values))} is not finite")
    return sp.Float(result)


def _sympy_number(value: Any) -> sp.Expr:
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Float(repr(value))


def parse(text: str, shapes: Mapping[str, Iterable[int]] | None = None) -> ParsedExpression:
    """Parse a formula into a :class:`ParsedExpression`, or raise :class:`ExpressionError`.

    ``shapes`` declares array inputs (``{"w": (3, 2)}``); undeclared variables are scalars.

    >>> parse("x**2 + pi").expr
    x**2 + pi
    >>> parse("x +* 2")
    Traceback (most recent call last):
        ...
    symgrad.parsing.ExpressionError: syntax error: invalid syntax (column 4)
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, got {type(text).__name__}", construct="type")
    _refuse_characters(text)
    text = text.strip(" \t")
    program = _compile_program(text, _python_tree(text))
    declared = {name: tuple(int(n) for n in shape) for name, shape in (shapes or {}).items()}
    names: list[str] = []
    for step in program:
        if step.kind == "name" and step.value not in names:
            names.append(step.value)
    symbols = {n: ArrayVar(n, declared.get(n, ())) for n in names}
    constants = _Constants(names)

    def op(name: str, args: list) -> sp.Expr:
        _check_size(name, args)
        result = _sympy_operator(name)(*args)
        shape_of(result)  # raises ValueError (naming the shapes) when they do not fit
        return result

    def call(name: str, args: list) -> sp.Expr:
        values, keywords = _arguments(FUNCTIONS[name], args)
        result = FUNCTIONS[name].sympy(*values, **keywords)
        if isinstance(result, FormWithConstants):
            result = constants.add(result)
        if type(result).__name__ in _FOLDED and not result.free_symbols:
            result = _fold_constant(name, args)
        shape_of(result)
        return result

    expr = _fold(text, program, symbols.__getitem__, _sympy_number, CONSTANTS.__getitem__, op, call)
    if expr.has(*_SYMBOLS_NOT_REAL):
        raise ExpressionError(f"the expression is not a finite real formula: it simplifies to {expr} "
                              "(a division by zero, or the logarithm or root of a negative number?)",
                              text=text, construct="value")
    return ParsedExpression(text=text, program=program, names=tuple(names),
                            shapes={n: declared.get(n, ()) for n in names}, symbols=symbols, expr=expr,
                            shape=shape_of(expr), constants=constants.values)


class _Constants:
    """The constant arrays of a formula's form, each under a name that no variable (``taken``)
    and no other constant has; equal arrays share one symbol."""

    def __init__(self, taken: Iterable[str]) -> None:
        self.taken = set(taken)
        self.values: dict[sp.Symbol, np.ndarray] = {}

    def add(self, form: FormWithConstants) -> sp.Expr:
        """``form``'s expression, its constants renamed to the formula's."""
        renamed = {}
        for symbol, value in form.constants.items():
            same = next((s for s, v in self.values.items()
                         if v.dtype == value.dtype and v.shape == value.shape and np.array_equal(v, value)), None)
            renamed[symbol] = same if same is not None else self.named(symbol, value)
        return form.expr.xreplace(renamed)

    def named(self, symbol: Any, value: np.ndarray) -> sp.Symbol:
        """A new constant like ``symbol`` (``idx0``, ``t0``: the engine's kind of name) with a free name."""
        prefix = symbol.name.rstrip("0123456789") or "c"
        number = 0
        while f"{prefix}{number}" in self.taken:
            number += 1
        constant = type(symbol)(f"{prefix}{number}", symbol.array_shape, symbol.array_dtype, symbol.definition)
        self.taken.add(constant.name)
        self.values[constant] = value
        return constant


# ============================================================================ specs
def _split_top_level(text: str) -> list[str]:
    """Split at commas that are not inside brackets."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _assignments(specs: str | Iterable[str], what: str) -> list[tuple[str, str]]:
    if isinstance(specs, str):
        specs = [specs]
    out = []
    for spec in specs:
        if len(spec) > MAX_LENGTH:
            raise ExpressionError(f"the {what} list is longer than {MAX_LENGTH} characters", construct=what)
        for part in _split_top_level(spec):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep:
                raise ExpressionError(f"expected NAME=VALUE in the {what} list, got {part!r}", construct=what)
            check_name(name)
            out.append((name, value.strip()))
    return out


def parse_shapes(specs: str | Iterable[str]) -> dict[str, Shape]:
    """Parse shape declarations such as ``"w=3x2,b=2"`` (``x=scalar`` or ``x=()`` for a scalar).

    >>> parse_shapes(["w=3x2,b=2", "s=scalar"])
    {'w': (3, 2), 'b': (2,), 's': ()}
    >>> parse_shapes("w=3xq")
    Traceback (most recent call last):
        ...
    symgrad.parsing.ExpressionError: the shape of w must look like 3x2 (positive integers joined by 'x'), got '3xq'
    """
    shapes: dict[str, Shape] = {}
    for name, value in _assignments(specs, "shape"):
        if value in ("scalar", "()", ""):
            shapes[name] = ()
            continue
        dims = value.lower().replace("*", "x").replace("×", "x").split("x")
        if not all(d.strip().isdigit() and d.strip().isascii() and len(d.strip()) <= 9 for d in dims) \
                or any(int(d) == 0 for d in dims):
            raise ExpressionError(f"the shape of {name} must look like 3x2 (positive integers joined by 'x'), "
                                  f"got {value!r}", construct="shape")
        shape = tuple(int(d) for d in dims)
        if math.prod(shape) > MAX_ELEMENTS:
            raise ExpressionError(f"the shape {value} of {name} has {math.prod(shape)} elements; the limit is "
                                  f"{MAX_ELEMENTS}", construct="shape")
        shapes[name] = shape
    return shapes


def _number_value(name: str, text: str) -> float:
    try:
        value = float(text) if text.strip().lower() not in ("pi", "e") else float(CONSTANTS[text.strip().lower()])
    except ValueError:
        raise ExpressionError(f"the value of {name} must be a number or a list of numbers such as "
                              f"[[1, 2], [3, 4]], got {text!r}", construct="value") from None
    if not math.isfinite(value):
        raise ExpressionError(f"the value of {name} must be finite, got {text!r}", construct="value")
    return value


def parse_values(specs: str | Iterable[str]) -> dict[str, np.ndarray]:
    """Parse point values such as ``"x=1.5,y=-2,w=[[1,2],[3,4]]"`` into float64 arrays.

    Lists are read as JSON (never evaluated).

    >>> v = parse_values("x=1.5,w=[[1,2],[3,4]]")
    >>> v["x"], v["w"].shape
    (array(1.5), (2, 2))
    """
    values: dict[str, np.ndarray] = {}
    for name, text in _assignments(specs, "value"):
        if text.startswith("["):
            try:
                data = json.loads(text)
                array = np.asarray(data, dtype=np.float64)
            except (ValueError, TypeError, RecursionError, OverflowError):
                raise ExpressionError(f"the value of {name} must be a number or a rectangular list of numbers, "
                                      f"got {text!r}", construct="value") from None
            if array.size > MAX_ELEMENTS or not np.all(np.isfinite(array)):
                raise ExpressionError(f"the value of {name} must hold at most {MAX_ELEMENTS} finite numbers",
                                      construct="value")
            values[name] = array
        else:
            values[name] = np.asarray(_number_value(name, text))
    return values


def parse_names(spec: str | Iterable[str]) -> list[str]:
    """Parse a comma-separated list of variable names (``--wrt x,y``).

    >>> parse_names("x, y")
    ['x', 'y']
    """
    parts = _split_top_level(spec) if isinstance(spec, str) else [p for s in spec for p in _split_top_level(s)]
    for name in parts:
        check_name(name)
    return parts
