"""The display layer: the form a closed form is *shown* in, separate from the engine's.

The engine computes with helpers a reader never wrote: ``sum_to`` (undoing
broadcasting), ``broadcast_to``, ``index_put`` (the adjoint of indexing), ``setitem``,
``tie_step`` (where ``maximum`` sends its gradient), ``extremum_mask``, reshapes that
only add a unit axis, and ``where(c, 0, 1)`` selectors.  :func:`to_display` rewrites an
engine expression into an equal expression in standard notation, and every printer
(:func:`~symgrad.symbolic.printing.printers.text`, ``pretty``, ``latex``, ``ClosedForm``, the
``symgrad`` command) prints that; compiled code still runs the engine's form.

=====================================  =================================  ===========================================
engine                                 text                               LaTeX
=====================================  =================================  ===========================================
``sum_to(e, shape=())``                ``sum(e)``                         ``\\sum_{i} e``
``sum_to(e, shape=(1, 3))``            ``sum(e, dim=0, keepdim=...)``     ``\\sum_{i} e``
``broadcast_to(e, S)`` in ``a + ...``  ``e`` (broadcasting shows)         ``e``
``broadcast_to(e, S)`` elsewhere       ``e*ones(S)``, ``zeros(S)``        ``e \\mathbf{1}_{S}``, ``\\mathbf{0}_{S}``
``reshape(x, shape=(6, 1))``           ``x[:, None]``                     ``x`` (a column), ``x[None, :]``: ``x^{T}``
``index_put(g, shape=S, index=k)``     ``scatter(g, S, s_[k])``           ``\\mathbf{0}_{S}[k \\mathrel{+}= g]``
``setitem(x, v, index=k)``             ``assign(x, s_[k], v)``            ``x\\left[k \\leftarrow v\\right]``
``tie_step(a, b)``                     ``[a > b] + [a == b]/2``           ``\\left[a > b\\right] + ...`` (Iverson)
``where(x <= 0, 0, 1)``                ``[x > 0]``                        ``\\left[x > 0\\right]``
``extremum_mask(x)``                   ``[x == max(x)]/sum(...)``         ``[x = \\max x]/\\sum_{i}[...]``
``extremum_mask(x, dim=1)``            ``[arange(n) == argmax(x, ...)]``  ``[j = \\operatorname{argmax}_{j} x]``
``sum(x, dim=1)``                      ``sum(x, dim=1)``                  ``\\sum_{j} x`` (axes ``i, j, k, l, ...``)
``is_equal(a, b)``                     ``[a == b]``                       ``\\left[a = b\\right]``
``cast(a > b, dtype)`` (a mask)        ``[a > b]``                        ``\\left[a > b\\right]``
``x[:, None]*v`` (vectors)             ``v*x[:, None]``                   ``x {v}^{T}`` (an outer product)
``exp(log_softmax(x, dim=1))``         ``softmax(x, dim=1)``              ``\\operatorname{softmax}_{j}(x)``
=====================================  =================================  ===========================================

At ties the display says what the engine computes, as PyTorch does: ``maximum(a, b)``
gives half of the gradient to each side (``[a == b]/2``), ``max(x)`` over all elements
an equal share to each tied maximum, and ``max(x, dim)`` all of it to the first maximal
index (``argmax``).  (At a NaN, ``maximum`` gives all of the gradient to both sides,
which ``[a > b]`` does not show.)

Every text form is a NumPy expression:
:func:`symgrad.symbolic.codegen.read_text.evaluate_text` computes it from arrays (``[c]`` is
1 where ``c`` holds), which is how the tests check that each displayed form equals the
engine's value.

>>> from symgrad.symbolic.core.symbols import ArrayVar
>>> from symgrad.symbolic.forms.structural import Matmul
>>> X, w = ArrayVar("X", (5, 3)), ArrayVar("w", (3,))
>>> to_display(SumTo.of(Matmul.of(X, w), shape=()))
sum(X @ w)
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE

from ..forms.selections import Cast, Compare, Equal, Greater, GreaterEqual, Less, LessEqual, NotEqual, Select, TieStep
from ..forms.structural import (BroadcastTo, DataThenIndexArrays, ExtremumMask, Getitem, IndexPut, Logsumexp, LogSoftmax,
                         Max, Mean, Min, Norm, Permute, Reshape, Setitem, Softmax, Squeeze, StructuralFunction, Sum, SumTo,
                         Transpose, Unsqueeze, _index_text, _norm_dims, is_equal, pretty_call, subscript_code)
from ..core.symbols import (SIZE_STAND_INS, ArrayValue, ArrayVar, Attrs, DataArray, Slot, SizedArray, broadcast_shapes, postorder,
                            postorder_by_identity, replaced, shape_of, size_of)

__all__ = ["to_display", "shown_node", "with_sizes", "sizes_in", "defined_data", "ENGINE_HELPERS", "AXIS_LETTERS",
           "INLINE_LENGTH"]

ENGINE_HELPERS = ("sum_to", "broadcast_to", "index_put", "setitem", "tie_step", "extremum_mask", "is_equal", "Slot",
                  "index=", "shape=")
"""Names and internals of the engine that no displayed form contains."""

AXIS_LETTERS = "ijklmnpqrs"
"""The index letter LaTeX gives each axis of an array (``\\sum_{j}`` sums over axis 1)."""


def _axes_latex(axes: tuple) -> str:
    return ",".join(AXIS_LETTERS[a] if a < len(AXIS_LETTERS) else f"a_{{{a}}}" for a in axes)


def _shape_latex(shape: tuple) -> str:
    return r" \times ".join(str(n) for n in shape) if shape else "1"


# ============================================================================ display nodes
class _Shown:
    """Mixin of the display subclasses of engine nodes: same arguments, same meaning,
    shown in standard notation."""


class ShownSum(_Shown, Sum):
    """``sum(x, dim)``, in LaTeX ``\\sum_{i,j} x`` over the summed axes."""

    def _latex_body(self, printer) -> str:
        x = self.arrays[0]
        body = printer.parenthesize(x, PRECEDENCE["Mul"], strict=True)
        axes = _axes_latex(self.dims())
        return r"\sum_{%s} %s" % (axes, body) if axes else body


class _ShownAxisFunction(_Shown):
    """A reduction or softmax-like function with its axes as a LaTeX subscript."""

    latex_operator = ""

    def _latex_body(self, printer) -> str:
        x = self.arrays[0]
        axes = _axes_latex(_norm_dims(self.attrs.get("dim"), len(shape_of(x))))
        return r"%s%s\left(%s\right)" % (self.latex_operator, "_{%s}" % axes if axes else "", printer._print(x))


class ShownMean(_ShownAxisFunction, Mean):
    latex_operator = r"\operatorname{mean}"


class ShownMax(_ShownAxisFunction, Max):
    latex_operator = r"\max"


class ShownMin(_ShownAxisFunction, Min):
    latex_operator = r"\min"


class ShownLogsumexp(_ShownAxisFunction, Logsumexp):
    latex_operator = r"\operatorname{logsumexp}"


class ShownNorm(_ShownAxisFunction, Norm):
    latex_operator = r"\operatorname{norm}"


class ShownSoftmax(_ShownAxisFunction, Softmax):
    latex_operator = r"\operatorname{softmax}"


class ShownLogSoftmax(_ShownAxisFunction, LogSoftmax):
    latex_operator = r"\operatorname{log\_softmax}"


_SHOWN_AXIS_CLASSES = {Sum: ShownSum, Mean: ShownMean, Max: ShownMax, Min: ShownMin, Logsumexp: ShownLogsumexp,
                       Norm: ShownNorm, Softmax: ShownSoftmax, LogSoftmax: ShownLogSoftmax}


class ShownIndex(_Shown, Getitem):
    """``x[k]`` with a LaTeX subscript: a vector made a column (``x[:, None]``) is ``x``,
    made a row (``x[None, :]``) is ``x^{T}``; other indices are subscripts ``x_{1:}``."""

    def _latex_body(self, printer) -> str:
        x = self.data[0]
        index = self.attrs["index"]
        base = printer.parenthesize(x, PRECEDENCE["Func"], strict=True)
        if len(shape_of(x)) == 1 and not self.index_arrays:
            if index == (slice(None), None):
                return base
            if index == (None, slice(None)):
                return r"{%s}^{T}" % base
        key = _index_text(index, self._names(printer)).replace("None", r"\text{new}")
        return r"{%s}_{%s}" % (base, key)


class ShownReshape(_Shown, Reshape):
    r"""``reshape(x, (2, 2))``; in LaTeX ``\operatorname{reshape}_{2 \times 2}(x)``."""

    def _sympystr(self, printer) -> str:
        return f"reshape({printer._print(self.arrays[0])}, {tuple(shape_of(self))!r})"

    def _latex_body(self, printer) -> str:
        return r"\operatorname{reshape}_{%s}\left(%s\right)" % (_shape_latex(shape_of(self)),
                                                                 printer._print(self.arrays[0]))

    def _pretty(self, printer):
        return pretty_call(printer, "reshape", self.arrays, [repr(tuple(shape_of(self)))])


class Outer(StructuralFunction):
    """The outer product of two vectors, ``v*x[:, None]`` in text (NumPy broadcasting),
    ``x v^{T}`` in LaTeX."""

    op_name = "outer"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return (shapes[0][0], shapes[1][0])

    def _sympystr(self, printer) -> str:
        x, v = self.arrays
        factors = printer._print(v) if v.is_Mul else printer.parenthesize(v, PRECEDENCE["Mul"], strict=False)
        return f"{factors}*{printer.parenthesize(x, PRECEDENCE['Func'], strict=True)}[:, None]"

    def _latex_body(self, printer) -> str:
        x, v = (printer.parenthesize(a, PRECEDENCE["Mul"], strict=True) for a in self.arrays)
        return r"%s {%s}^{T}" % (x, v)

    def _pretty(self, printer):  # as the text: v⋅x[:, None]
        x, v = self.arrays
        return printer._print(sp.Mul(v, ShownIndex.of(x, index=(slice(None), None)), evaluate=False))

    @property
    def precedence(self) -> int:
        return PRECEDENCE["Mul"]


def _outer(factors: list) -> sp.Expr | None:
    """A product of a vector made a column (``x[:, None]``) and 1-D factors, as
    :class:`Outer`; None for other products."""
    columns = [f for f in factors if isinstance(f, ShownIndex) and not f.index_arrays
               and len(shape_of(f.data[0])) == 1 and f.attrs["index"] == (slice(None), None)]
    if len(columns) != 1:
        return None
    rest = sp.Mul(*[f for f in factors if f is not columns[0]])
    if len(shape_of(rest)) != 1:
        return None
    return Outer.of(columns[0].data[0], rest)


class Ones(StructuralFunction):
    """``ones(S)``: broadcasting made visible, as a factor ``e*ones(S)`` wherever a form's
    shape does not show it (its only argument is an
    :class:`~symgrad.symbolic.core.symbols.Attrs` atom holding the shape)."""

    op_name = "ones"
    is_commutative = False  # printed after the factors it broadcasts: x[:, None]*ones((2, 3))

    @classmethod
    def of(cls, shape: tuple) -> sp.Expr:  # type: ignore[override]
        return cls(Attrs({"shape": tuple(int(n) for n in shape)}))

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return tuple(attrs["shape"])

    @property
    def shape(self) -> tuple:
        return self.attrs["shape"]

    def _sympystr(self, printer) -> str:
        return f"ones({self.shape!r})"

    def _latex_body(self, printer) -> str:
        return r"\mathbf{1}_{%s}" % _shape_latex(self.shape)

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm

        return prettyForm(f"ones{self.shape!r}")

    def _eval_is_real(self):
        return True

    def _eval_is_positive(self):
        return True


class Zeros(Ones):
    """``zeros(S)``: a zero gradient of shape ``S``."""

    op_name = "zeros"

    def _sympystr(self, printer) -> str:
        return f"zeros({self.shape!r})"

    def _latex_body(self, printer) -> str:
        return r"\mathbf{0}_{%s}" % _shape_latex(self.shape)

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm

        return prettyForm(f"zeros{self.shape!r}")

    def _eval_is_positive(self):
        return False

    def _eval_is_zero(self):
        return True


class Indicator(sp.Function):
    """Iverson's bracket ``[c]``: 1 where the comparison ``c`` holds, else 0."""

    nargs = 1

    def _sympystr(self, printer) -> str:
        return f"[{printer._print(self.args[0])}]"

    def _latex(self, printer, exp=None) -> str:
        text = r"\left[%s\right]" % printer._print(self.args[0])
        return text if exp is None else r"%s^{%s}" % (text, exp)

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm

        return prettyForm(*printer._print(self.args[0]).parens("[", "]"))

    def _eval_is_real(self):
        return True

    def _eval_is_nonnegative(self):
        return True

    @property
    def precedence(self) -> int:
        return PRECEDENCE["Atom"]


class _Placement(DataThenIndexArrays, StructuralFunction):
    """A display node with an index, printed ``name(a, ..., s_[k])`` (``s_[k]`` is NumPy's
    index builder); the index arrays are the arguments after the data."""

    def _key(self, printer) -> str:
        names = [str(printer._print(a)) for a in self.index_arrays]  # as the printer writes the name elsewhere
        return _index_text(self.attrs["index"], names)

    def _key_code(self, printer) -> str:
        names = [printer._print(a) for a in self.index_arrays]
        index = self.attrs["index"]
        parts = index if isinstance(index, tuple) else (index,)
        if any(type(p).__name__ == "Slot" for p in parts):
            return _index_text(index, names)
        return subscript_code(index)


class Scatter(_Placement):
    """``scatter(g, S, s_[k])``: zeros of shape ``S`` with ``g`` added at ``k`` (repeated
    indices add up), the gradient of indexing."""

    op_name = "scatter"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return tuple(attrs["shape"])

    def _sympystr(self, printer) -> str:
        return f"scatter({printer._print(self.data[0])}, {tuple(self.attrs['shape'])!r}, s_[{self._key_code(printer)}])"

    def _latex_body(self, printer) -> str:
        return r"\mathbf{0}_{%s}\left[%s \mathrel{+}= %s\right]" % (
            _shape_latex(tuple(self.attrs["shape"])), self._key(printer), printer._print(self.data[0]))

    def _pretty(self, printer):
        return pretty_call(printer, "scatter", self.data, [repr(tuple(self.attrs["shape"])), f"[{self._key(printer)}]"])


class Assign(_Placement):
    """``assign(x, s_[k], v)``: ``x`` with ``x[k]`` replaced by ``v``."""

    op_name = "assign"
    n_data = 2

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return shapes[0]

    def _sympystr(self, printer) -> str:
        x, v = (printer._print(a) for a in self.data)
        return f"assign({x}, s_[{self._key_code(printer)}], {v})"

    def _latex_body(self, printer) -> str:
        x = printer.parenthesize(self.data[0], PRECEDENCE["Func"], strict=True)
        return r"%s\left[%s \leftarrow %s\right]" % (x, self._key(printer), printer._print(self.data[1]))

    def _pretty(self, printer):
        return pretty_call(printer, "assign", self.data, [f"[{self._key(printer)}]"])


class AxisIndex(StructuralFunction):
    """The index along one axis of an array of shape ``S``, broadcast along the others:
    ``arange(4)[:, None]`` in text (axis 0 of a 2-D array), the axis letter (``i``) in
    LaTeX (its only argument is an :class:`~symgrad.symbolic.core.symbols.Attrs` atom)."""

    op_name = "axis_index"

    @classmethod
    def of(cls, shape: tuple, axis: int) -> sp.Expr:  # type: ignore[override]
        return cls(Attrs({"shape": tuple(int(n) for n in shape), "axis": int(axis)}))

    @classmethod
    def shape_rule(cls, shapes, attrs):
        shape, axis = attrs["shape"], attrs["axis"]
        return tuple(n if k == axis else 1 for k, n in enumerate(shape))

    def _sympystr(self, printer) -> str:
        shape, axis = self.attrs["shape"], self.attrs["axis"]
        after = len(shape) - axis - 1
        return f"arange({shape[axis]})" + (f"[:{', None' * after}]" if after else "")

    def _latex_body(self, printer) -> str:
        return _axes_latex((self.attrs["axis"],))

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm

        return prettyForm(self._sympystr(printer))

    def _eval_is_real(self):
        return True


class ShownArgExtreme(StructuralFunction):
    r"""``argmax(x, dim=d, keepdim=True)`` (or ``argmin``): the first extreme index along
    ``d``, as NumPy and PyTorch give it; in LaTeX ``\operatorname{argmax}_{j} x``."""

    op_name = "argmax"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return tuple(1 if k == attrs["dim"] else n for k, n in enumerate(shapes[0]))

    def _name(self) -> str:
        return "argmax" if self.attrs["mode"] == "max" else "argmin"

    def _sympystr(self, printer) -> str:
        return f"{self._name()}({printer._print(self.arrays[0])}, dim={self.attrs['dim']}, keepdim=True)"

    def _latex_body(self, printer) -> str:
        return r"\operatorname{%s}_{%s} %s" % (self._name(), _axes_latex((self.attrs["dim"],)),
                                               printer.parenthesize(self.arrays[0], PRECEDENCE["Mul"], strict=True))

    def _pretty(self, printer):
        return pretty_call(printer, self._name(), self.arrays, [f"dim={self.attrs['dim']}", "keepdim=True"])

    def _eval_is_real(self):
        return True


def _extremum_share(x: sp.Expr, dim: Any, mode: str) -> sp.Expr:
    """Where ``max``/``min`` send their gradient, as the engine's ``extremum_mask`` does:
    over all elements, an equal share to each tied extreme (``[x == max(x)]/sum([x ==
    max(x)])``); along an axis, all of it to the first extreme index (``[arange(n) ==
    argmax(x, dim=0, keepdim=True)]``)."""
    if dim is None:
        hit = Indicator(Equal(x, (ShownMax if mode == "max" else ShownMin).of(x)))
        return hit / ShownSum.of(hit) if size_of(shape_of(x)) > 1 else sp.S.One
    (axis,) = _norm_dims(dim, len(shape_of(x)))
    if not shape_of(x):
        return sp.S.One
    return Indicator(Equal(AxisIndex.of(shape_of(x), axis), ShownArgExtreme.of(x, dim=axis, mode=mode)))


_DISPLAY_CLASSES = (_Shown, Ones, Outer, Scatter, Assign, Indicator, AxisIndex, ShownArgExtreme)


# ============================================================================ the rewrite
_NEGATED = {Greater: LessEqual, GreaterEqual: Less, Less: GreaterEqual, LessEqual: Greater, Equal: NotEqual,
            NotEqual: Equal}


def _negated(condition: sp.Expr) -> sp.Expr | None:
    kind = _NEGATED.get(type(condition))
    return kind(*condition.args) if kind else None


def _is_zero(expr: sp.Expr) -> bool:
    return expr.is_Number and expr == 0


def _selection(c: sp.Expr, a: sp.Expr, b: sp.Expr) -> sp.Expr | None:
    """``where(c, a, 0)`` as ``[c]*a`` and ``where(c, 0, b)`` as ``[not c]*b`` (equal off
    NaNs); other selections stay ``where``."""
    if not isinstance(c, Compare) or any(branch.has(sp.nan, sp.oo, -sp.oo, sp.zoo) for branch in (a, b)):
        return None  # 0*nan is nan: a selection of a non-finite branch stays a selection
    if _is_zero(b):
        return Indicator(c) * a
    if _is_zero(a):
        negated = _negated(c)
        return None if negated is None else Indicator(negated) * b
    return None


def _unit_axes_index(before: tuple, after: tuple) -> tuple | None:
    """The basic index that turns shape ``before`` into ``after`` by adding or removing
    unit axes only (``(slice(None), None)`` for ``(n,) -> (n, 1)``), or None."""
    index: list = []
    i = j = 0
    while i < len(before) or j < len(after):
        if i < len(before) and j < len(after) and before[i] == after[j]:
            index.append(slice(None))
            i, j = i + 1, j + 1
        elif j < len(after) and after[j] == 1:
            index.append(None)
            j += 1
        elif i < len(before) and before[i] == 1:
            index.append(0)
            i += 1
        else:
            return None
    return tuple(index)


def _permutation(node: sp.Expr) -> list:
    """The axes of its operand that a ``transpose`` or ``permute`` node puts in each place."""
    if isinstance(node, Permute):
        n = len(shape_of(node))
        return [d % n for d in node.attrs["dims"]]
    order = list(range(len(shape_of(node))))
    i, j = (d % len(order) for d in (node.attrs["dim0"], node.attrs["dim1"]))
    order[i], order[j] = order[j], order[i]
    return order


def _indexed(x: sp.Expr, index: tuple) -> sp.Expr:
    """``x[index]`` for an index that adds or removes unit axes; a sum that kept exactly
    the axes the index removes is that sum without ``keepdim``."""
    coefficient, summed = x.as_coeff_Mul() if isinstance(x, sp.Mul) else (sp.S.One, x)
    if isinstance(summed, ShownSum) and summed.attrs.get("keepdim"):
        removed = tuple(i for i, part in enumerate(index) if part == 0 and type(part) is int)
        if removed and removed == summed.dims() and None not in index:
            dim = removed[0] if len(removed) == 1 else removed
            return coefficient * ShownSum.of(summed.arrays[0], dim=dim, keepdim=False)
    return ShownIndex.of(x, index=index)


def _reshapes_only(node: IndexPut) -> bool:
    """Whether ``index_put(g, shape=S, index=k)`` only undoes an index ``k`` that adds or
    removes unit axes (every element of ``g`` lands in ``S``, in order)."""
    shape, g_shape = tuple(node.attrs["shape"]), shape_of(node.args[0])
    return not node.index_arrays and size_of(shape) == size_of(g_shape) and \
        node.attrs["index"] == _unit_axes_index(shape, g_shape)


def _summed_to(x: sp.Expr, shape: tuple) -> sp.Expr:
    """``sum_to(x, shape)`` as sums: the leading axes ``x`` has beyond ``shape``, then the
    unit axes of ``shape`` that ``x`` broadcasts along, kept."""
    have = shape_of(x)
    if all(n == 1 for n in shape):
        total = ShownSum.of(_unindexed(x))
        if isinstance(x, Ones):
            total = sp.Integer(size_of(x.shape))
        elif x.is_Mul and any(isinstance(f, Ones) for f in x.args) and size_of(shape_of(
                sp.Mul(*[f for f in x.args if not isinstance(f, Ones)]))) == 1:
            ones = next(f for f in x.args if isinstance(f, Ones))
            total = x / ones * size_of(ones.shape)
        return _Broadcast(total, shape) if shape else total
    lead = len(have) - len(shape)
    out = x
    if lead:
        leading = 0 if lead == 1 else tuple(range(lead))
        out = ShownSum.of(out, dim=leading if lead < len(have) else None, keepdim=False)
    unit = tuple(i for i, n in enumerate(shape) if n == 1 and have[lead + i] != 1)
    if unit:
        out = ShownSum.of(out, dim=unit if len(unit) > 1 else unit[0], keepdim=True)
    return out


def _unindexed(x: sp.Expr) -> sp.Expr:
    """``x`` without indexing that only adds or removes unit axes (the same elements)."""
    while isinstance(x, ShownIndex) and not x.index_arrays and _unit_axes_index(
            shape_of(x.data[0]), shape_of(x)) == x.attrs["index"]:
        x = x.data[0]
    return x


class _Broadcast:
    """A displayed form that broadcasts to a larger shape than it has: kept apart until
    its parent is known (an elementwise parent shows the broadcast itself)."""

    def __init__(self, shown: sp.Expr, shape: tuple) -> None:
        self.shown = shown
        self.shape = shape

    def standing_alone(self) -> sp.Expr:
        if _is_zero(self.shown):
            return Zeros.of(self.shape)
        return self.shown * Ones.of(self.shape)


def _alone(item: Any) -> sp.Expr:
    return item.standing_alone() if isinstance(item, _Broadcast) else item


def _elementwise(node: sp.Basic) -> bool:
    return isinstance(node, sp.Expr) and not isinstance(node, (StructuralFunction, Select, TieStep)) and bool(node.args)


def _shown_node(node: sp.Basic, args: list) -> Any:
    """The display form of one engine node over its arguments' display forms, broadcast
    to the node's shape where a rewrite made it smaller (``tie_step(a, a)`` is ``1/2``)."""
    shown = _rewritten(node, args)
    if isinstance(shown, _Broadcast) or shown is node:
        return shown
    shape = shape_of(node)
    return shown if shape_of(shown) == shape else _Broadcast(shown, shape)


def _rewritten(node: sp.Basic, args: list) -> Any:
    if isinstance(node, _DISPLAY_CLASSES) and all(new is old for new, old in zip(args, node.args)):
        return node  # a display node already
    if isinstance(node, SumTo):
        return _summed_to(_alone(args[0]), tuple(node.attrs["shape"]))
    if isinstance(node, BroadcastTo):
        inner = args[0].shown if isinstance(args[0], _Broadcast) else args[0]
        return _Broadcast(inner, tuple(node.attrs["shape"]))
    if isinstance(node, is_equal):
        return Indicator(Equal(*[_alone(a) for a in args]))
    if isinstance(node, Cast) and isinstance(_alone(args[0]), Compare):  # a mask made numbers
        return Indicator(_alone(args[0]))
    if isinstance(node, TieStep):  # at a tie, half of the gradient goes to each side
        a, b = [_alone(a) for a in args]
        return sp.S.Half if a == b else Indicator(Greater(a, b)) + Indicator(Equal(a, b)) / 2
    if isinstance(node, Select):
        plain = [_alone(a) for a in args]
        return _selection(*plain) or node.func(*plain)
    if isinstance(node, ExtremumMask):
        return _extremum_share(_alone(args[0]), node.attrs.get("dim"), node.attrs.get("mode", "max"))
    if isinstance(node, (Reshape, Unsqueeze, Squeeze, Getitem)) and isinstance(args[0], _Broadcast) \
            and size_of(shape_of(args[0].shown)) == 1 and not (isinstance(node, Getitem) and node.index_arrays):
        return _Broadcast(args[0].shown, shape_of(node))  # one number, arranged: the same number
    if isinstance(node, (Reshape, Unsqueeze, Squeeze)):
        x = _alone(args[0])
        if isinstance(x, sp.Number):
            return _Broadcast(x, shape_of(node))
        index = _unit_axes_index(shape_of(x), shape_of(node))
        if index is not None:
            return _indexed(x, index)
        return ShownReshape.of(x, shape=shape_of(node))
    if isinstance(node, IndexPut) and _reshapes_only(node):
        if isinstance(args[0], _Broadcast) and size_of(shape_of(args[0].shown)) == 1:
            return _Broadcast(_unindexed(args[0].shown), shape_of(node))
        g = _alone(args[0])
        if isinstance(g, sp.Number):  # one number arranged in unit axes: the same number (never 1[None])
            return _Broadcast(g, shape_of(node))
        return _indexed(g, _unit_axes_index(shape_of(g), shape_of(node)))
    if isinstance(node, IndexPut):
        return Scatter.of(*[_alone(a) for a in args[:-1]], shape=node.attrs["shape"], index=node.attrs["index"])
    if isinstance(node, Setitem):
        return Assign.of(*[_alone(a) for a in args[:-1]], index=node.attrs["index"])
    if isinstance(node, Getitem):
        x = _alone(args[0])
        if not node.index_arrays and _unit_axes_index(shape_of(x), shape_of(node)) == node.attrs["index"]:
            if isinstance(x, sp.Number):  # as for reshapes: never 1[None]
                return _Broadcast(x, shape_of(node))
            return _indexed(x, node.attrs["index"])
        return ShownIndex(x, *[_alone(a) for a in args[1:-1]], node.args[-1])
    if type(node) in _SHOWN_AXIS_CLASSES:
        return _SHOWN_AXIS_CLASSES[type(node)](*[_alone(a) for a in args[:-1]], node.args[-1])
    if _elementwise(node) and any(isinstance(a, _Broadcast) for a in args):
        inner = [a.shown if isinstance(a, _Broadcast) else a for a in args]
        try:
            reached = broadcast_shapes(*[shape_of(a) for a in inner])
        except ValueError:
            return node.func(*[_alone(a) for a in args])
        shown = node.func(*inner)
        return shown if reached == shape_of(node) else _Broadcast(shown, shape_of(node))
    if isinstance(node, (Transpose, Permute)) and isinstance(args[0], (Transpose, Permute)):
        inner, outer = _permutation(args[0]), _permutation(node)
        if [inner[k] for k in outer] == list(range(len(inner))):
            return args[0].arrays[0]  # (x.T).T is x
    if isinstance(node, sp.exp) and isinstance(args[0], LogSoftmax):
        return ShownSoftmax(*args[0].args)  # exp(log_softmax(x)) is softmax(x)
    if isinstance(node, sp.Mul):
        factors = [_alone(a) for a in args]
        outer = _outer(factors)
        if outer is not None:
            return outer
        return node if all(new is old for new, old in zip(factors, node.args)) else node.func(*factors)
    if all(new is old for new, old in zip(args, node.args)):
        return node
    return node.func(*[_alone(a) for a in args])


def shown_node(node: sp.Basic) -> sp.Expr:
    """One engine node in standard notation, its operands left as they are (they print
    themselves): how the engine's helpers print wherever they are printed (see
    :mod:`~symgrad.symbolic.forms.notation`).

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x = ArrayVar("x", (4, 1))
    >>> shown_node(SumTo.of(x, shape=(1,)))
    sum(x)
    """
    return _top(_shown_node(node, list(node.args)))


def _top(shown: Any) -> sp.Expr:
    """A displayed form standing alone; one number broadcast needs no ``ones``."""
    if isinstance(shown, _Broadcast) and size_of(shown.shape) == 1:
        return shown.shown
    return _alone(shown)


def with_sizes(expr: Any, sizes: Mapping[str, int] | None) -> Any:
    """``expr`` with each fraction whose denominator is a multiple of one of ``sizes``, or of
    half of one, written over that size's name (for ``sizes={"n": 50}``, ``g/50`` is ``g/n`` and
    ``g/25`` is ``2*g/n``, the 2 of a square's derivative): the same value, read as the
    size it is.  Only denominators change (an exponent 2 is never a size).

    >>> x = sp.Symbol("x")
    >>> with_sizes(x / 50 - sp.Rational(3, 50), {"n": 50}), with_sizes(x / 25, {"n": 50})
    (x/n - 3/n, 2*x/n)
    """
    if not sizes:
        return expr
    by_value: dict = {}
    for name, value in sizes.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"a size name must be an identifier, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise ValueError(f"the size {name!r} must be an integer of at least 2, got {value!r}")
        if int(value) in by_value:
            raise ValueError(f"the sizes {by_value[int(value)]} and {name} are both {value}; a printed 1/{value} "
                             "could be either: give one of them")
        by_value[int(value)] = sp.Symbol(name, positive=True, integer=True)
    if isinstance(expr, (list, tuple)):
        return type(expr)(with_sizes(e, sizes) for e in expr)
    if not isinstance(expr, sp.Basic):
        return expr
    stand_ins = {v: name for v, name in by_value.items() if SIZE_STAND_INS.get(name.name) == v}
    swaps = {}
    for r in expr.atoms(sp.Rational):
        swap = _over_size(r, by_value)
        if swap is None:  # a stand-in is a size wherever it is a factor: N*x is n*x
            swap = next((sp.Mul(r.p // v, name, evaluate=False) for v, name in stand_ins.items()
                         if r.q == 1 and r.p % v == 0), None)
        if swap is not None:
            swaps[r] = swap
    return expr.xreplace(swaps) if swaps else expr


def _over_size(r: sp.Rational, by_value: dict) -> sp.Expr | None:
    """The fraction ``r`` written over a size: its denominator a multiple of a size, or of
    half of one (``1/150`` is ``1/(3*n)`` and ``1/25`` is ``2/n`` for ``n = 50``); None if
    it is neither."""
    for k in (1, 2):  # the 2 of a square's derivative
        for value, name in by_value.items():
            if (r.q * k) % value == 0:
                rest = r.q * k // value
                below = [sp.Pow(rest, -1, evaluate=False)] if rest != 1 else []
                return sp.Mul(r.p * k, *below, sp.Pow(name, -1, evaluate=False), evaluate=False)
    return None


def sizes_in(expr: Any, sizes: Mapping[str, int] | None = None) -> dict:
    """``sizes`` and the sizes the named axes of ``expr``'s array symbols give
    (:class:`~symgrad.symbolic.core.symbols.SizedArray`, data definitions included), as
    one ``{name: number}``; a name with two numbers raises.

    >>> from symgrad.symbolic.core.symbols import array_symbol
    >>> sizes_in(array_symbol("X", (50, 3), dims=("n", None)) + 1, {"m": 4})
    {'m': 4, 'n': 50}
    """
    found = dict(sizes or {})
    roots = [f for f in (expr if isinstance(expr, (list, tuple)) else [expr]) if isinstance(f, sp.Basic)]
    defined: set = set()
    while roots:
        definitions = []
        for node in postorder_by_identity(roots):
            if isinstance(node, DataArray) and node not in defined:
                defined.add(node)
                definitions.append(node.definition)
            for name, number in (node.sizes().items() if isinstance(node, SizedArray) else ()):
                if found.setdefault(name, number) != number:
                    raise ValueError(f"the size {name!r} is {found[name]} in one place and {number} in another: "
                                     "name different sizes differently")
        roots = definitions
    return found


INLINE_LENGTH = 24
"""Characters a data definition may take in a printed form, counted at every place it
appears, to be written in place (``1 - y``) rather than named (``where t0 = ...``)."""


def defined_data(expr: Any) -> tuple[Any, list]:
    """``expr`` with each data input that carries its definition (a
    :class:`~symgrad.symbolic.core.symbols.DataArray`: ``1 - y``, computed from named data
    without recording) written in place where it is short -- its text, times the number of
    places it appears, at most :data:`INLINE_LENGTH` characters -- and the
    ``(symbol, definition)`` pairs of the others, which a printer lists after the form
    (``where t0 = ...``), so nothing printed is undefined.  An array no one named (an
    index array, unnamed data: its definition an
    :class:`~symgrad.symbolic.core.symbols.ArrayValue`) is always listed, as are the data
    inputs a listed definition reads (after it).  The symbols of the listed ones are plain
    array symbols of the same names, in the form and in the definitions, since a
    ``DataArray`` prints as its definition (see its docstring).

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> y, X = ArrayVar("y", (4,)), ArrayVar("X", (4, 3))
    >>> short = DataArray("t0", (4,), "float64", 1 - y)
    >>> defined_data(2 * short)
    (2*(1 - y), [])
    >>> long = DataArray("t1", (4,), "float64", Mean.of(X, dim=1) * y + Sum.of(X, dim=1))
    >>> defined_data(y * long)
    (t1*y, [(t1, y*mean(X, dim=1) + sum(X, dim=1))])
    >>> index = DataArray("idx0", (3,), "int64", ArrayValue.of(np.array([0, 2, 2])))
    >>> defined_data(Getitem.of(y, index, index=(Slot(0),)))
    (y[idx0], [(idx0, array((0, 2, 2)))])
    """
    if isinstance(expr, sp.MatrixBase):
        return expr, []
    forms = list(expr) if isinstance(expr, (list, tuple)) else [expr]
    places: dict = {}
    for node in postorder_by_identity([f for f in forms if isinstance(f, sp.Basic)]):
        for arg in node.args:
            if isinstance(arg, DataArray):
                places[arg] = places.get(arg, 0) + 1
    for form in forms:
        if isinstance(form, DataArray):
            places[form] = places.get(form, 0) + 1
    inline, named = {}, []
    for data, count in places.items():
        if (not isinstance(data.definition, ArrayValue)
                and len(sp.sstr(to_display(data.definition))) * count <= INLINE_LENGTH):
            inline[data] = data.definition
        else:
            named.append(data)
    listed = set(named)
    for data in list(inline) + named:  # grows: the data a definition reads are listed after it
        for node in postorder_by_identity([data.definition]):
            if isinstance(node, DataArray) and node not in listed:
                listed.add(node)
                named.append(node)
    named.sort(key=_name_order)
    plain = {data: ArrayVar(data.name, data.array_shape, data.array_dtype) for data in named}
    inline = {data: replaced(definition, plain) if plain else definition for data, definition in inline.items()}
    swaps = {**inline, **plain}
    if swaps:
        forms = [replaced(f, swaps) if isinstance(f, sp.Basic) else f for f in forms]
    where = [(plain[data], replaced(data.definition, plain)) for data in named]
    return (type(expr)(forms) if isinstance(expr, (list, tuple)) else forms[0]), where


def _name_order(symbol: sp.Symbol) -> tuple:
    """``idx2`` before ``idx10``, each prefix together: the order of a ``where`` list."""
    stem = symbol.name.rstrip("0123456789")
    number = symbol.name[len(stem):]
    return stem, int(number) if number else -1, symbol.name


def to_display(expr: Any) -> Any:
    """``expr`` (a closed form of the engine) rewritten for a reader: the same values, in
    standard notation, with no engine helper left (see the module docstring's table).
    Lists, tuples and matrices are rewritten element by element; anything that is not a
    SymPy expression is returned as it is.

    This is the one function every printer calls before printing (``text``, ``pretty``,
    ``latex``, ``ClosedForm``, the ``symgrad`` command, notebook reprs); compiled code
    never sees its result.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> from symgrad.symbolic.forms.selections import TieStep
    >>> x, y = ArrayVar("x", (3,)), ArrayVar("y", (3,))
    >>> to_display(2 * TieStep(x, y))  # at a tie, half of the gradient each way
    [x == y] + 2*[x > y]
    """
    if isinstance(expr, (list, tuple)):
        return type(expr)(to_display(e) for e in expr)
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(to_display)
    if not isinstance(expr, sp.Basic) or not expr.args:
        return expr
    shown: dict = {}
    for node in postorder([expr]):
        if not node.args or isinstance(node, Attrs):
            shown[id(node)] = node
            continue
        shown[id(node)] = _shown_node(node, [shown.get(id(a), a) for a in node.args])
    return _top(shown[id(expr)])
