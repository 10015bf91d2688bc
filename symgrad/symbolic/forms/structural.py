"""SymPy ``Function`` subclasses for the op table's structural ops.

Every op whose SymPy face is ``STRUCTURAL`` (reductions, matmul, transposes, reshapes,
indexing, concatenation, broadcasting, softmax-like ops) is a subclass of
:class:`StructuralFunction` here.  An instance holds its array arguments followed by one
:class:`~symgrad.symbolic.core.symbols.Attrs` atom, and knows

* its **shape rule** (``shape_rule``), so shapes are known without touching data;
* its **NumPy printing**: generated code calls the op by name with keyword attributes,
  ``matmul(a, b)`` or ``sum(x, dim=(0,), keepdim=False)``, bound to the op table's own
  NumPy forward (:func:`numpy_namespace`).  Function-call syntax cannot be
  mis-parenthesised.  Ops whose result can be a view print as one, without the forward's
  copy: ``getitem`` with a basic index as a subscript (:func:`subscripted`: the operand
  in parentheses unless it is a name), ``transpose``/``permute`` as
  ``numpy.swapaxes``/``numpy.transpose``, ``reshape``/``unsqueeze``/``squeeze`` as
  ``numpy.reshape``; generated code never writes into them;
* its **symbolic adjoint rule** (``adjoint(g, i)``): the gradient of argument ``i`` given
  the upstream gradient ``g``, written with other structural functions and SymPy
  arithmetic.  No rule here ever calls a tape VJP;
* readable text and LaTeX printing (``x.T @ (y - z)``, ``x^{T} \\cdot (...)``).

Conventions of the adjoints: ``g`` arrives with exactly the node's shape; a returned
gradient may have any shape that *broadcasts* to the argument's shape (for example the
gradient of ``sum(x)`` is the scalar ``g``), which keeps printed formulas compact.  The
reverse pass materialises shapes only where a structural op needs them.
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
import sympy as sp
from sympy.printing.precedence import PRECEDENCE, precedence

from ...ops.structural import cat_skipped
from .notation import PrintedInStandardNotation
from ..core._compat import float_product, global_parameters
from ..core.print_hooks import short_text
from ..core.symbols import ArrayFunction, Attrs, Shape, Slot, _attr_text, broadcast_shapes, shape_of, size_of

__all__ = [
    "StructuralFunction", "structural_class", "STRUCTURAL_FUNCTIONS", "numpy_namespace",
    "exact", "reduce_to", "expand_reduced", "is_equal", "attr_code", "scale",
]

MATMUL_PRECEDENCE = PRECEDENCE["Mul"] - 1
"""``@`` binds tighter than ``+`` and looser than elementwise ``*`` (so that ``x*(a @ b)``
keeps its parentheses)."""


class StructuralFunction(ArrayFunction):
    """Base class: array arguments, then one ``Attrs`` atom (see the module docstring)."""

    op_name: ClassVar[str] = ""
    latex_name: ClassVar[str | None] = None
    hidden_defaults: ClassVar[dict] = {}

    @classmethod
    def of(cls, *arrays: Any, **attrs: Any) -> sp.Expr:
        """Build the node from array expressions and keyword attributes."""
        return cls(*[sp.sympify(a) for a in arrays], Attrs(attrs))

    @classmethod
    def eval(cls, *args):  # noqa: D102  (simplifications live in subclasses' ``simplify_node``)
        if not args or not isinstance(args[-1], Attrs):
            raise TypeError(
                f"{cls.__name__} takes array arguments followed by one Attrs atom; "
                f"build it with {cls.__name__}.of(*arrays, **attrs)"
            )
        return cls.simplify_node(args[:-1], args[-1].values)

    @classmethod
    def simplify_node(cls, arrays: tuple, attrs: dict) -> sp.Expr | None:
        """Return a simpler equal expression, or None to keep the node."""
        return None

    # ------------------------------------------------------------------ structure
    @classmethod
    def shape_rule(cls, shapes: Sequence[Shape], attrs: dict) -> Shape:
        """The output shape from the argument shapes; by default evaluate the forward on
        zero-stride placeholders (no memory is touched for basic ops)."""
        dummies = [np.broadcast_to(np.zeros((), np.float64), s) for s in shapes]
        return tuple(np.shape(cls.numpy_forward()(*dummies, **attrs)))

    @classmethod
    def numpy_forward(cls):
        """The NumPy function generated code calls for this node."""
        from ...ops import OPS

        return OPS[cls.op_name].forward

    def adjoint(self, g: sp.Expr, index: int) -> sp.Expr:
        """The gradient of argument ``index`` given the upstream gradient ``g``."""
        raise NotImplementedError(
            f"the symbolic engine has no adjoint rule for the structural op {self.op_name!r}; "
            "use the tape engine (symgrad.set_backward_engine('tape')) for graphs containing it"
        )

    def differentiable_args(self) -> tuple[bool, ...]:
        """Which array arguments carry a gradient (indices and masks do not)."""
        return (True,) * (len(self.args) - 1)

    def adjoints(self, g: sp.Expr, wanted: Sequence[int]) -> list:
        """``[adjoint(g, i) for i in wanted]``; ops with many arguments (``cat``,
        ``stack``) override it to share the work between arguments."""
        return [self.adjoint(g, i) for i in wanted]

    def _eval_derivative(self, s):
        raise TypeError(
            f"SymPy's diff cannot differentiate the array op {self.op_name}; use "
            "symgrad.symbolic.diff(expr, wrt), which applies its symbolic adjoint rule"
        )

    def _eval_evalf(self, prec):
        return None

    def _eval_is_real(self):
        return True if all(a.is_real for a in self.arrays) else None

    # ------------------------------------------------------------------ printing
    def _shown_attrs(self) -> list[str]:
        return [f"{k}={_attr_text(v)}" for k, v in self.attrs.items()
                if not (k in self.hidden_defaults and _same(self.hidden_defaults[k], v))]

    def _numpycode(self, printer) -> str:
        parts = [printer._print(a) for a in self.arrays]
        parts += [f"{k}={attr_code(v)}" for k, v in self.attrs.items()]
        return f"{self.op_name}({', '.join(parts)})"

    _pythoncode = _numpycode

    def _sympystr(self, printer) -> str:
        parts = [printer._print(a) for a in self.arrays] + self._shown_attrs()
        return f"{self.op_name}({', '.join(parts)})"

    def _latex(self, printer, exp=None) -> str:
        text = self._latex_body(printer)
        return text if exp is None else r"\left(%s\right)^{%s}" % (text, exp)

    def _latex_body(self, printer) -> str:
        parts = [printer._print(a) for a in self.arrays] + [
            r"\text{%s}" % t.replace("_", r"\_") for t in self._shown_attrs()]
        name = self.latex_name or r"\operatorname{%s}" % self.op_name.replace("_", r"\_")
        return r"%s\left(%s\right)" % (name, ", ".join(parts))

    def _pretty(self, printer):
        return pretty_call(printer, self.op_name, self.arrays, self._shown_attrs())

    def _sympyrepr(self, printer) -> str:
        parts = [printer._print(a) for a in self.arrays]
        parts += [f"{k}={v!r}" for k, v in self.attrs.items()]
        return f"{type(self).__name__}.of({', '.join(parts)})"

    def __repr__(self) -> str:  # long forms abbreviated; str() and text() give them whole
        return short_text(self)


def pretty_call(printer, name: str, arrays, attrs: list[str]):
    """A pretty (unicode) ``name(a, b, k=v)``."""
    from sympy.printing.pretty.stringpict import prettyForm, stringPict

    items = [printer._print(a) for a in arrays] + [prettyForm(t) for t in attrs]
    body = items[0]
    for item in items[1:]:
        body = prettyForm(*stringPict.next(body, ", ", item))
    body = prettyForm(*body.parens())
    call = prettyForm(*stringPict.next(prettyForm(name), body), binding=prettyForm.FUNC)
    call.prettyFunc, call.prettyArgs = prettyForm(name), body  # a power prints as name²(...), as sin²(x)
    return call


def pretty_operand(printer, expr, level: int, strict: bool):
    """The pretty form of ``expr``, in parentheses when it binds looser than ``level``."""
    from sympy.printing.pretty.stringpict import prettyForm

    form = printer._print(expr)
    prec = precedence(expr)
    if prec < level or (strict and prec <= level):
        form = prettyForm(*form.parens())
    return form


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001  (arrays compare elementwise)
        return False


def attr_code(value: Any) -> str:
    """Python source for an attribute value, evaluated in :func:`numpy_namespace`: only
    literals (numbers, strings, ``None``, ``...``), tuples, slices, dtypes and arrays of
    numbers; anything else is refused, so no ``repr`` of an arbitrary object ever reaches
    generated code.

    >>> attr_code((slice(1, None), None, Ellipsis, -2.5, "max", np.dtype("float32")))
    "(slice(1, None, None), None, Ellipsis, -2.5, 'max', 'float32')"
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"an array attribute of dtype {value.dtype} cannot be compiled; use numbers")
        return f"array({value.tolist()!r}, dtype={value.dtype.name!r})"
    if value is None or value is Ellipsis or isinstance(value, (bool, np.bool_)):
        return repr(value if not isinstance(value, np.bool_) else bool(value))
    if isinstance(value, (int, np.integer)):
        return repr(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return repr(value) if np.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, complex):
        return f"complex({attr_code(value.real)}, {attr_code(value.imag)})"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return repr(np.dtype(value).name)
    if isinstance(value, list):
        return "[" + ", ".join(attr_code(v) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(attr_code(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, slice):
        return f"slice({attr_code(value.start)}, {attr_code(value.stop)}, {attr_code(value.step)})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{attr_code(k)}: {attr_code(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"the attribute value {value!r} of type {type(value).__name__} cannot be compiled")


STRUCTURAL_FUNCTIONS: dict[str, type[StructuralFunction]] = {}


def _register(cls: type[StructuralFunction]) -> type[StructuralFunction]:
    STRUCTURAL_FUNCTIONS[cls.op_name] = cls
    return cls


def structural_class(op_name: str) -> type[StructuralFunction]:
    """The SymPy function class of a structural op (a generic one, which evaluates and
    prints but has no adjoint, for ops this module does not know).

    >>> structural_class("matmul").__name__
    'Matmul'
    """
    cls = STRUCTURAL_FUNCTIONS.get(op_name)
    if cls is None:
        name = "".join(part.capitalize() for part in op_name.split("_"))
        cls = STRUCTURAL_FUNCTIONS[op_name] = type(name, (StructuralFunction,), {"op_name": op_name})
    return cls


# ====================================================================== helpers
def _norm_dims(dim: Any, ndim: int) -> tuple[int, ...]:
    """Sorted non-negative dims of a reduction (all of them for ``dim=None``), by the op
    table's own rule."""
    from ...ops.reductions import normalize_dims

    dims = normalize_dims(dim, ndim)
    return tuple(range(ndim)) if dims is None else dims


def scale(c: Any, expr: sp.Expr) -> sp.Expr:
    """``c * expr`` for a number ``c``, without distributing it over a sum (SymPy's default
    turns ``2*(x + y)`` into ``2*x + 2*y``, which breaks shared subexpressions apart).

    >>> x, y = sp.symbols("x y")
    >>> scale(2, x + y), scale(sp.Rational(1, 2), scale(4, x + y)), scale(1, x)
    (2*(x + y), 2*(x + y), x)
    """
    c = sp.sympify(c)
    if c is sp.S.One:
        return expr
    if c.is_zero:
        return sp.S.Zero
    if expr.is_Number and c.is_Number:
        return _number_product(c, expr)
    if expr.is_Mul and expr.args[0].is_Number and c.is_Number:
        coeff, rest = _number_product(c, expr.args[0]), expr.args[1:]
        if coeff is sp.S.One:
            return sp.Mul._from_args(rest, is_commutative=True) if len(rest) > 1 else rest[0]
        if coeff.is_zero:
            return sp.S.Zero
        return sp.Mul._from_args((coeff,) + rest, is_commutative=True)
    if expr.is_Add and c.is_Number:
        return sp.Mul._from_args((c, expr), is_commutative=True)
    return c * expr


def _number_product(a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """``a*b`` of two numbers as one number, also while SymPy's evaluation is off
    (without switching it on: every switch clears SymPy's cache)."""
    if global_parameters.evaluate:
        return a * b
    if a.is_Rational and b.is_Rational:
        return sp.Rational(a.p * b.p, a.q * b.q)
    if a.is_Float or b.is_Float:
        if a.is_finite and b.is_finite:
            return float_product(a, b)
    return sp.Mul(a, b)


def exact(expr: sp.Expr, shape: Shape) -> sp.Expr:
    """``expr`` with exactly ``shape`` (wrapping it in ``broadcast_to`` if it merely
    broadcasts to it).

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> sp.srepr(exact(ArrayVar("b", (3,)), (2, 3)))  # (printed b*ones((2, 3)))
    "BroadcastTo.of(ArrayVar('b', (3,), 'float64'), shape=(2, 3))"
    """
    shape = tuple(shape)
    if shape_of(expr) == shape:
        return expr
    return BroadcastTo.of(expr, shape=shape)


def reduce_to(expr: sp.Expr, shape: Shape, full: Shape | None = None) -> sp.Expr:
    """Undo broadcasting: ``expr`` stands for an array of shape ``full`` (it may be
    smaller and broadcast to it; by default ``full`` is its own shape), and the result
    stands for that array summed down to ``shape``.  Axes ``expr`` really has are summed
    by one symbolic ``sum_to`` node; axes it only broadcasts along become a factor.  The
    result may itself be smaller than ``shape`` (it broadcasts).  This is the one place
    where the symbolic engine undoes broadcasting.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> sp.srepr(reduce_to(ArrayVar("g", (2, 3)), (3,)))  # (printed sum(g, dim=0))
    "SumTo.of(ArrayVar('g', (2, 3), 'float64'), shape=(3,))"
    >>> reduce_to(sp.Integer(1), (3,), full=(2, 3))
    2
    >>> sp.srepr(reduce_to(ArrayVar("g", (3,)), (2, 1), full=(2, 3)))  # (printed sum(g))
    "SumTo.of(ArrayVar('g', (3,), 'float64'), shape=(1,))"
    >>> reduce_to(sp.Integer(1), (3,), full=(2, 3))
    2
    """
    shape = tuple(shape)
    have = shape_of(expr)
    full = have if full is None else tuple(full)
    if full == shape:
        return expr
    pad = len(full) - len(have)
    lead = len(full) - len(shape)
    if pad < 0:
        raise ValueError(f"an expression of shape {have} cannot stand for a smaller array of shape {full}")
    if lead < 0:  # nothing to sum: it broadcasts up to ``shape``
        return expr
    have_p = (1,) * pad + have
    shape_p = (1,) * lead + shape
    reduced = [i for i in range(len(full)) if shape_p[i] == 1 and full[i] != 1]
    factor = size_of(tuple(full[i] for i in reduced if have_p[i] == 1))
    summed = {i for i in reduced if have_p[i] != 1}
    out = expr
    if summed or lead > pad:  # sum axes, or drop leading axes the target does not have
        start = max(lead, pad)
        target = tuple(1 if i in summed else have_p[i] for i in range(start, len(full)))
        out = SumTo.of(expr, shape=target)
    return scale(factor, out)


def expand_reduced(g: sp.Expr, in_shape: Shape, dims: tuple[int, ...], keepdim: bool) -> sp.Expr:
    """The upstream gradient ``g`` of a reduction over ``dims`` reshaped so it broadcasts
    back to ``in_shape`` (a reshape is needed only when a reduced axis is not leading)."""
    if keepdim or not shape_of(g):  # a scalar g broadcasts back as it is
        return g
    kept = tuple(1 if i in dims else n for i, n in enumerate(in_shape))
    leading = all(d == i for i, d in enumerate(dims))
    if leading:
        return g
    return Reshape.of(g, shape=kept)


# ====================================================================== broadcasting
@_register
class BroadcastTo(PrintedInStandardNotation, StructuralFunction):
    """``broadcast_to(x, shape)``: NumPy broadcasting made explicit."""

    op_name = "broadcast_to"

    @classmethod
    def simplify_node(cls, arrays, attrs):
        (x,) = arrays
        if shape_of(x) == tuple(attrs["shape"]):
            return x
        if isinstance(x, BroadcastTo):
            return cls.of(x.arrays[0], shape=attrs["shape"])
        return None

    @classmethod
    def shape_rule(cls, shapes, attrs):
        shape = tuple(attrs["shape"])
        broadcast_shapes(shapes[0], shape)
        return shape

    def adjoint(self, g, index):
        return reduce_to(g, shape_of(self.arrays[0]))


@_register
class SumTo(PrintedInStandardNotation, StructuralFunction):
    """``sum_to(x, shape)``: sum ``x`` down to ``shape``, undoing broadcasting."""

    op_name = "sum_to"

    @classmethod
    def simplify_node(cls, arrays, attrs):
        (x,) = arrays
        if shape_of(x) == tuple(attrs["shape"]):
            return x
        return None

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return tuple(attrs["shape"])

    def adjoint(self, g, index):
        return g  # broadcasts to the argument's shape


# ====================================================================== reductions
class _Reduction(StructuralFunction):
    hidden_defaults = {"keepdim": False, "dim": None}

    def dims(self) -> tuple[int, ...]:
        return _norm_dims(self.attrs.get("dim"), len(shape_of(self.arrays[0])))

    @classmethod
    def shape_rule(cls, shapes, attrs):
        shape = shapes[0]
        dims = _norm_dims(attrs.get("dim"), len(shape))
        if attrs.get("keepdim", False):
            return tuple(1 if i in dims else n for i, n in enumerate(shape))
        return tuple(n for i, n in enumerate(shape) if i not in dims)

    def kept_self(self) -> sp.Expr:
        """This reduction with ``keepdim=True`` (broadcasts against the argument)."""
        if self.attrs.get("keepdim", False):
            return self
        return expand_reduced(self, shape_of(self.arrays[0]), self.dims(), False)

    def _upstream(self, g):
        return expand_reduced(g, shape_of(self.arrays[0]), self.dims(), self.attrs.get("keepdim", False))


@_register
class Sum(PrintedInStandardNotation, _Reduction):
    """``sum(x, dim, keepdim)``."""

    op_name = "sum"
    latex_name = r"\operatorname{sum}"

    def adjoint(self, g, index):
        return self._upstream(g)


@_register
class Prod(_Reduction):
    """``prod(x, dim, keepdim)``; at a zero its adjoint is the product of the others, written
    without a division (so it is right at zeros to every order)."""

    op_name = "prod"

    def adjoint(self, g, index):
        from .selections import Equal, Select

        x = self.arrays[0]
        dims = self.attrs.get("dim")  # as given: a 0-d argument has no dims to name
        g = self._upstream(g)
        shape = shape_of(x)
        if not shape:
            return g
        zero = Equal(x, 0)
        nonzero = Select(zero, 1, x)
        zeros = Sum.of(exact(Select(zero, 1, 0), shape), dim=dims, keepdim=True)
        others = Prod.of(nonzero, dim=dims, keepdim=True)
        return Select(Equal(zeros, 0), g * others / nonzero, g * _product_of_the_others(x, dims))


def _product_of_the_others(x: sp.Expr, dim: Any) -> sp.Expr:
    """For each element of ``x``, the product of the others of its slice along ``dim`` (all
    of ``x`` when None) with no division: the running products before and after it (as the
    tape's ``_product_of_the_others`` in ``ops/reductions.py``)."""
    from ...ops.reductions import reversed_along

    shape = shape_of(x)
    if dim is None:
        return Reshape.of(_product_of_the_others(Reshape.of(x, shape=(size_of(shape),)), 0), shape=shape)
    axis = _norm_dims(dim, len(shape))[0]
    if shape[axis] <= 1:
        return exact(sp.Integer(1), shape)
    flip = reversed_along(axis, len(shape))
    return _product_before(x, axis) * Getitem.of(_product_before(Getitem.of(x, index=flip), axis), index=flip)


def _product_before(x: sp.Expr, axis: int) -> sp.Expr:
    """The running product along ``axis`` of the elements strictly before each one (1 first)."""
    shape = shape_of(x)
    ones = exact(sp.Integer(1), tuple(1 if d == axis else n for d, n in enumerate(shape)))
    before = Getitem.of(Cumprod.of(x, dim=axis), index=(slice(None),) * axis + (slice(None, -1),))
    return Cat.of(ones, before, dim=axis)


@_register
class Mean(PrintedInStandardNotation, _Reduction):
    """``mean(x, dim, keepdim)``."""

    op_name = "mean"
    latex_name = r"\operatorname{mean}"

    def adjoint(self, g, index):
        shape = shape_of(self.arrays[0])
        count = size_of(tuple(shape[d] for d in self.dims()))
        return scale(sp.Rational(1, count), self._upstream(g))


class _Extreme(_Reduction):
    mode: ClassVar[str] = "max"

    def adjoint(self, g, index):
        (x,) = self.arrays
        return self._upstream(g) * ExtremumMask.of(x, dim=self.attrs.get("dim"), mode=self.mode)


@_register
class Max(PrintedInStandardNotation, _Extreme):
    """``max(x, dim, keepdim)``; the gradient goes where ``extremum_mask`` says (ties
    share it over all elements, the first extreme index wins along one ``dim``)."""

    op_name = "max"
    mode = "max"


@_register
class Min(PrintedInStandardNotation, _Extreme):
    """``min(x, dim, keepdim)``; the gradient goes where ``extremum_mask`` says."""

    op_name = "min"
    mode = "min"


class _EvenExtreme(_Reduction):
    """``amax``/``amin``: the tied extremes of each reduced slice share the gradient evenly,
    ``[x == amax(x)] / sum([x == amax(x)])``."""

    def adjoint(self, g, index):
        (x,) = self.arrays
        hit = exact(is_equal(x, self.kept_self()), shape_of(x))
        return self._upstream(g) * hit / Sum.of(hit, dim=self.attrs.get("dim"), keepdim=True)


@_register
class Amax(_EvenExtreme):
    """``amax(x, dim, keepdim)``."""

    op_name = "amax"


@_register
class Amin(_EvenExtreme):
    """``amin(x, dim, keepdim)``."""

    op_name = "amin"


@_register
class ExtremumMask(PrintedInStandardNotation, StructuralFunction):
    """``extremum_mask(x, dim, mode)``: where ``max``/``min`` send their gradient, shaped
    like ``x``.  Piecewise constant, so its own derivative is zero."""

    op_name = "extremum_mask"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return shapes[0]

    def differentiable_args(self):
        return (False,)

    def adjoint(self, g, index):
        return sp.Integer(0)


class _Position(_Reduction):
    """``argmax``/``argmin(x, dim, keepdim)``: an int64 position, piecewise constant in
    ``x``, so ``x`` carries no gradient through it (the adjoint is 0, as ``extremum_mask``'s)."""

    def differentiable_args(self):
        return (False,)

    def adjoint(self, g, index):
        return sp.Integer(0)

    def _eval_is_integer(self):
        return True

    def _eval_is_nonnegative(self):
        return True


@_register
class Argmax(_Position):
    """``argmax(x, dim, keepdim)``: the first maximal position (a NaN's, if any)."""

    op_name = "argmax"


@_register
class Argmin(_Position):
    """``argmin(x, dim, keepdim)``: the first minimal position (a NaN's, if any)."""

    op_name = "argmin"


@_register
class Logsumexp(PrintedInStandardNotation, _Reduction):
    """``logsumexp(x, dim, keepdim)``, evaluated stably by the op's NumPy forward."""

    op_name = "logsumexp"
    latex_name = r"\operatorname{logsumexp}"

    def adjoint(self, g, index):
        (x,) = self.arrays
        return self._upstream(g) * sp.exp(x - self.kept_self())


@_register
class Norm(PrintedInStandardNotation, _Reduction):
    """``norm(x, dim, keepdim)``: the 2-norm."""

    op_name = "norm"
    latex_name = r"\operatorname{norm}"

    def adjoint(self, g, index):
        (x,) = self.arrays
        norm = self.kept_self()
        # 0 where the norm is 0 (then x is all zeros), as PyTorch
        return self._upstream(g) * x / (norm + is_equal(norm, 0))


class _SameShape(StructuralFunction):
    """An op whose output has its (first) input's shape."""

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return shapes[0]


@_register
class Softmax(PrintedInStandardNotation, _SameShape):
    """``softmax(x, dim)``."""

    op_name = "softmax"

    def adjoint(self, g, index):
        dim = self.attrs["dim"]
        # exact: g * self may cancel to a scalar (g = 1/softmax under a log), which has no axis dim
        return self * (g - Sum.of(exact(g * self, shape_of(self)), dim=dim, keepdim=True))


@_register
class Cumsum(_SameShape):
    """``cumsum(x, dim)``: running sums along ``dim``."""

    op_name = "cumsum"

    def adjoint(self, g, index):
        shape = shape_of(self)
        return _from_end(Cumsum, exact(g, shape), self.attrs["dim"]) if shape else g


def _from_end(running: type, y: sp.Expr, dim: int) -> sp.Expr:
    """``running`` (``Cumsum``, ``Logcumsumexp``) of ``y`` from the end of ``dim``."""
    from ...ops.reductions import reversed_along

    flip = reversed_along(dim, len(shape_of(y)))
    return Getitem.of(running.of(Getitem.of(y, index=flip), dim=dim), index=flip)


@_register
class Cumprod(_SameShape):
    """``cumprod(x, dim)``: running products along ``dim``; its adjoint treats zeros as
    the tape's VJP does, right to second order (see ``ops/reductions.py``)."""

    op_name = "cumprod"

    def adjoint(self, g, index):
        from .selections import Equal, Greater, LogicalAnd, Select

        shape = shape_of(self)
        if not shape:
            return g
        (x,) = self.arrays
        dim = self.attrs["dim"]
        g = exact(g, shape)
        zero = exact(Select(Equal(x, 0), 1, 0), shape)
        earlier_zeros = Cumsum.of(zero, dim=dim) - zero  # zeros strictly before each position
        first = LogicalAnd(Equal(x, 0), Equal(earlier_zeros, 0))  # the first zero of the slice
        first_as_one = Select(first, 1, x)
        at_the_first_zero = Sum.of(exact(Select(first, x, 0), shape), dim=dim, keepdim=True)
        after_first = at_the_first_zero * _cumprod_rule(g, Cumprod.of(first_as_one, dim=dim), first_as_one, dim)
        return Select(Greater(earlier_zeros, 0), after_first, _cumprod_rule(g, self, x, dim))


def _cumprod_rule(g: sp.Expr, out: sp.Expr, x: sp.Expr, dim: int) -> sp.Expr:
    """The adjoint of ``out = cumprod(x)`` up to and at the first zero of each slice (0 after it)."""
    from .selections import Equal, Select

    shape = shape_of(out)
    zero = exact(Select(Equal(x, 0), 1, 0), shape)
    seen = Cumsum.of(zero, dim=dim)
    before, up_to_first = Equal(seen, 0), Equal(seen - zero, 0)
    first_as_one = Select(before, x, Select(up_to_first, 1, x))
    at_first = _from_end(Cumsum, g * Cumprod.of(first_as_one, dim=dim), dim)
    earlier = _from_end(Cumsum, g * out, dim) / Select(before, x, 1)
    return Select(before, earlier, Select(up_to_first, at_first, 0))


@_register
class Logcumsumexp(_SameShape):
    """``logcumsumexp(x, dim)``: ``log(cumsum(exp(x)))`` along ``dim``, evaluated stably."""

    op_name = "logcumsumexp"

    def adjoint(self, g, index):
        from ...ops.reductions import LOG_OF_ZERO
        from .selections import Greater, Less, Select

        shape = shape_of(self)
        if not shape:
            return g
        (x,) = self.arrays
        dim = self.attrs["dim"]
        g = exact(g, shape)
        lowest = sp.Float(LOG_OF_ZERO)
        # the positive and negative parts of g in log space, as the tape's VJP (stable)
        log_positive = Select(Greater(g, 0), sp.log(Select(Greater(g, 0), g, 1)), lowest)
        log_negative = Select(Less(g, 0), sp.log(Select(Less(g, 0), -g, 1)), lowest)
        positive = sp.exp(_from_end(Logcumsumexp, log_positive - self, dim) + x)
        negative = sp.exp(_from_end(Logcumsumexp, log_negative - self, dim) + x)
        return positive - negative


@_register
class SortValues(_SameShape):
    """``sort_values(x, dim, descending)``: ``x`` sorted along ``dim`` (stable); its adjoint
    puts ``g`` back where ``x``'s own order took each value (``sort_by(g, x, inverse=True)``)."""

    op_name = "sort_values"
    hidden_defaults = {"descending": False}

    def adjoint(self, g, index):
        shape = shape_of(self)
        if not shape:
            return g
        return SortBy.of(exact(g, shape), self.arrays[0], dim=self.attrs["dim"],
                         descending=self.attrs.get("descending", False), inverse=True)


@_register
class SortBy(_SameShape):
    """``sort_by(x, key, dim, descending, inverse)``: ``x`` gathered along ``dim`` in the
    stable order of ``key`` (inverse: put back where that order took it). A permutation
    fixed by ``key``, so its adjoint in ``x`` is the inverse permutation and ``key`` carries
    no gradient."""

    op_name = "sort_by"
    hidden_defaults = {"descending": False, "inverse": False}

    def differentiable_args(self):
        return (True, False)

    def adjoint(self, g, index):
        if index == 1:
            return sp.Integer(0)
        shape = shape_of(self)
        if not shape:
            return g
        attrs = self.attrs
        return SortBy.of(exact(g, shape), self.arrays[1], dim=attrs["dim"],
                         descending=attrs.get("descending", False), inverse=not attrs.get("inverse", False))


@_register
class LogSoftmax(PrintedInStandardNotation, _SameShape):
    """``log_softmax(x, dim)``."""

    op_name = "log_softmax"

    def adjoint(self, g, index):
        dim = self.attrs["dim"]
        g = exact(g, shape_of(self))  # an upstream that merely broadcasts (a scalar) has no axis dim to sum
        return g - sp.exp(self) * Sum.of(g, dim=dim, keepdim=True)


# ====================================================================== linear algebra
def _matrix_transpose(x: sp.Expr) -> sp.Expr:
    n = len(shape_of(x))
    return Transpose.of(x, dim0=n - 2, dim1=n - 1)


def _new_axis(x: sp.Expr, position: int) -> sp.Expr:
    """``x[:, None]`` (``position=-1``) or ``x[None, :]`` (``-2``) for a vector, with an
    ellipsis in front for more axes: a new axis of length 1 that broadcasts."""
    n = len(shape_of(x))
    tail = (None,) if position == -1 else (None, slice(None))
    if n == 1 and position == -1:
        return Getitem.of(x, index=(slice(None), None))
    return Getitem.of(x, index=(Ellipsis,) + tail)


def _insert_axis(x: sp.Expr, position: int) -> sp.Expr:
    shape = list(shape_of(x))
    shape.insert(position if position >= 0 else len(shape) + 1 + position, 1)
    return Reshape.of(x, shape=tuple(shape))


@_register
class Matmul(StructuralFunction):
    """``matmul(a, b)`` with NumPy's rules (1-D promotion, batch broadcasting)."""

    op_name = "matmul"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        a, b = shapes
        if not a or not b:
            raise ValueError(f"matmul needs arrays with at least one dimension, got shapes {a} and {b}")
        a2 = (1,) + a if len(a) == 1 else a
        b2 = b + (1,) if len(b) == 1 else b
        if a2[-1] != b2[-2]:
            raise ValueError(f"matmul: shapes {a} and {b} do not align ({a2[-1]} != {b2[-2]})")
        batch = broadcast_shapes(a2[:-2], b2[:-2])
        out = batch + (a2[-2], b2[-1])
        if len(a) == 1:
            out = out[:-2] + out[-1:]
        if len(b) == 1:
            out = out[:-1]
        return out

    def adjoint(self, g, index):
        a, b = self.arrays
        sa, sb = shape_of(a), shape_of(b)
        if len(sa) == 1 and len(sb) == 1:
            return g * (b if index == 0 else a)
        if len(sa) == 1:  # vector @ matrix (or a batch of matrices): g has b's batch axes
            g_row = g if len(sb) == 2 else _new_axis(g, -2)
            if index == 1:
                return _new_axis(a, -1) * g_row  # an outer product, a[:, None]*g
            if len(sb) == 2:
                return Matmul.of(b, g)
            return Sum.of(b * g_row, dim=tuple(range(len(sb) - 2)) + (len(sb) - 1,))
        if len(sb) == 1:  # matrix (or a batch of matrices) @ vector: g has a's leading axes
            if index == 0:
                return _new_axis(g, -1) * b  # an outer product, g[:, None]*b
            if len(sa) == 2:
                return Matmul.of(_matrix_transpose(a), g)
            return Sum.of(a * _new_axis(g, -1), dim=tuple(range(len(sa) - 1)))
        a2 = _insert_axis(a, 0) if len(sa) == 1 else a
        b2 = _insert_axis(b, -1) if len(sb) == 1 else b
        g2 = g
        if len(sa) == 1:
            g2 = _insert_axis(g2, -2 if len(sb) > 1 else -1)
        if len(sb) == 1:
            g2 = _insert_axis(g2, -1)
        if index == 0:
            grad = Matmul.of(g2, _matrix_transpose(b2))
            grad = reduce_to(grad, shape_of(a2))
            return Reshape.of(exact(grad, shape_of(a2)), shape=sa) if len(sa) == 1 else grad
        grad = Matmul.of(_matrix_transpose(a2), g2)
        grad = reduce_to(grad, shape_of(b2))
        return Reshape.of(exact(grad, shape_of(b2)), shape=sb) if len(sb) == 1 else grad

    def _sympystr(self, printer) -> str:
        a, b = self.arrays
        left = printer.parenthesize(a, MATMUL_PRECEDENCE, strict=True)
        right = printer.parenthesize(b, PRECEDENCE["Mul"], strict=False)
        return f"{left} @ {right}"

    def _latex_body(self, printer) -> str:
        a, b = self.arrays
        left = printer.parenthesize(a, MATMUL_PRECEDENCE, strict=True)
        right = printer.parenthesize(b, PRECEDENCE["Mul"], strict=False)
        return rf"{left} \cdot {right}"

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm, stringPict

        a, b = self.arrays
        left = pretty_operand(printer, a, MATMUL_PRECEDENCE, strict=False)
        right = pretty_operand(printer, b, PRECEDENCE["Mul"], strict=True)
        return prettyForm(*stringPict.next(left, " @ ", right), binding=prettyForm.MUL)

    @property
    def precedence(self) -> int:
        return MATMUL_PRECEDENCE


def _pretty_T(printer, x):
    """``x`` with a superscript ``T`` (built directly: ``prettyForm.__pow__`` expects the
    base of a function call to come from SymPy's own function printer)."""
    from sympy.printing.pretty.stringpict import prettyForm, stringPict

    base = pretty_operand(printer, x, PRECEDENCE["Func"], strict=False)
    top = stringPict(*stringPict("T").left(" " * base.width()))
    bottom = stringPict(*base.right(" "))
    return prettyForm(*bottom.above(top), binding=prettyForm.POW)


class _AxesOp(StructuralFunction):
    def _postfix_arg(self, printer) -> str:
        (x,) = self.arrays
        return printer.parenthesize(x, PRECEDENCE["Func"], strict=True)


@_register
class Transpose(_AxesOp):
    """``transpose(x, dim0, dim1)``: swap two axes (``x.T`` when 2-D)."""

    op_name = "transpose"

    def _dims(self) -> tuple[int, int]:
        n = len(shape_of(self.arrays[0]))
        return tuple(sorted(int(d) % n for d in (self.attrs["dim0"], self.attrs["dim1"])))  # type: ignore[return-value]

    @classmethod
    def simplify_node(cls, arrays, attrs):
        (x,) = arrays
        n = len(shape_of(x))
        d0, d1 = (int(attrs["dim0"]) % max(n, 1), int(attrs["dim1"]) % max(n, 1))
        if d0 == d1:
            return x
        if isinstance(x, Transpose) and x._dims() == tuple(sorted((d0, d1))):
            return x.arrays[0]
        return None

    @classmethod
    def shape_rule(cls, shapes, attrs):
        shape = list(shapes[0])
        n = len(shape)
        d0, d1 = int(attrs["dim0"]) % n, int(attrs["dim1"]) % n
        shape[d0], shape[d1] = shape[d1], shape[d0]
        return tuple(shape)

    def adjoint(self, g, index):
        return Transpose.of(g, **self.attrs)

    def _numpycode(self, printer) -> str:  # a view (generated code never writes into one)
        return f"numpy.swapaxes({printer._print(self.arrays[0])}, {', '.join(map(str, self._dims()))})"

    _pythoncode = _numpycode

    def _is_matrix_T(self) -> bool:
        return len(shape_of(self.arrays[0])) == 2

    def _sympystr(self, printer) -> str:
        if self._is_matrix_T():
            return f"{self._postfix_arg(printer)}.T"
        return super()._sympystr(printer)

    def _latex_body(self, printer) -> str:
        if self._is_matrix_T():
            inner = self.arrays[0]
            if getattr(inner, "op_name", "") == "inverse":  # (A^{-1})^T is A^{-T}
                return inner._latex_body(printer).replace("^{-1}", "^{-T}")
            return "{%s}^{T}" % self._postfix_arg(printer)
        return super()._latex_body(printer)

    def _pretty(self, printer):
        if self._is_matrix_T():
            return _pretty_T(printer, self.arrays[0])
        return super()._pretty(printer)

    @property
    def precedence(self) -> int:
        return PRECEDENCE["Func"] if self._is_matrix_T() else PRECEDENCE["Atom"]


@_register
class Permute(_AxesOp):
    """``permute(x, dims)``."""

    op_name = "permute"

    @classmethod
    def simplify_node(cls, arrays, attrs):
        (x,) = arrays
        dims = tuple(int(d) % max(len(shape_of(x)), 1) for d in attrs["dims"])
        if dims == tuple(range(len(dims))):
            return x
        return None

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return tuple(shapes[0][int(d)] for d in attrs["dims"])

    def adjoint(self, g, index):
        n = len(self.attrs["dims"])
        dims = [int(d) % n for d in self.attrs["dims"]]
        return Permute.of(g, dims=tuple(int(i) for i in np.argsort(dims)))

    def _numpycode(self, printer) -> str:  # a view
        dims = attr_code(tuple(int(d) for d in self.attrs["dims"]))
        return f"numpy.transpose({printer._print(self.arrays[0])}, {dims})"

    _pythoncode = _numpycode

    def _sympystr(self, printer) -> str:
        dims = tuple(int(d) for d in self.attrs["dims"])
        if dims == tuple(reversed(range(len(dims)))):
            return f"{self._postfix_arg(printer)}.T"
        return super()._sympystr(printer)

    def _latex_body(self, printer) -> str:
        dims = tuple(int(d) for d in self.attrs["dims"])
        if dims == tuple(reversed(range(len(dims)))):
            return "{%s}^{T}" % self._postfix_arg(printer)
        return super()._latex_body(printer)

    def _pretty(self, printer):
        dims = tuple(int(d) for d in self.attrs["dims"])
        if dims == tuple(reversed(range(len(dims)))):
            return _pretty_T(printer, self.arrays[0])
        return super()._pretty(printer)

    @property
    def precedence(self) -> int:
        dims = tuple(int(d) for d in self.attrs["dims"])
        return PRECEDENCE["Func"] if dims == tuple(reversed(range(len(dims)))) else PRECEDENCE["Atom"]


class _ShapeOnly(StructuralFunction):
    """Ops that only reinterpret the shape: the adjoint reshapes back."""

    def adjoint(self, g, index):
        return Reshape.of(g, shape=shape_of(self.arrays[0]))

    def _numpycode(self, printer) -> str:  # a view where NumPy can make one
        return f"numpy.reshape({printer._print(self.arrays[0])}, {attr_code(shape_of(self))})"

    _pythoncode = _numpycode


@_register
class Reshape(PrintedInStandardNotation, _ShapeOnly):
    """``reshape(x, shape)``."""

    op_name = "reshape"

    @classmethod
    def simplify_node(cls, arrays, attrs):
        (x,) = arrays
        shape = tuple(int(s) for s in attrs["shape"])
        if shape_of(x) == shape:
            return x
        if isinstance(x, (Reshape, Unsqueeze, Squeeze)):
            return cls.of(x.arrays[0], shape=shape)
        return None

    @classmethod
    def shape_rule(cls, shapes, attrs):
        shape = tuple(int(s) for s in attrs["shape"])
        total = size_of(shapes[0])
        if shape.count(-1) == 1:
            known = size_of(tuple(s for s in shape if s != -1))
            shape = tuple(total // known if s == -1 else s for s in shape) if known else shape
        if size_of(shape) != total:
            raise ValueError(f"cannot reshape an array of shape {shapes[0]} to {shape}")
        return shape



@_register
class Unsqueeze(PrintedInStandardNotation, _ShapeOnly):
    """``unsqueeze(x, dim)``."""

    op_name = "unsqueeze"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        shape = list(shapes[0])
        dim = int(attrs["dim"])
        shape.insert(dim if dim >= 0 else len(shape) + 1 + dim, 1)
        return tuple(shape)


@_register
class Squeeze(PrintedInStandardNotation, _ShapeOnly):
    """``squeeze(x, dim)``."""

    op_name = "squeeze"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        shape = shapes[0]
        dim = attrs.get("dim")
        if dim is None:
            return tuple(n for n in shape if n != 1)
        dims = _norm_dims(dim, len(shape))
        return tuple(n for i, n in enumerate(shape) if not (i in dims and n == 1))


# ====================================================================== indexing
def _index_parts(index: Any) -> tuple:
    return index if isinstance(index, tuple) else (index,)


def _index_text(index: Any, names: Sequence[str] = ()) -> str:
    parts = []
    for part in _index_parts(index):
        if part is Ellipsis:
            parts.append("...")
        elif part is None:
            parts.append("None")
        elif isinstance(part, Slot):
            parts.append(names[part.k] if part.k < len(names) else f"#{part.k}")
        else:
            parts.append(_attr_text(part))
    return ", ".join(parts) if parts else "()"


def _index_code(index: Any, names: Sequence[str]) -> str:
    parts = [names[p.k] if isinstance(p, Slot) else attr_code(p) for p in _index_parts(index)]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def fill_index(index: Any, arrays: Sequence[Any]) -> tuple:
    """The concrete index: each :class:`Slot` of the template replaced by its array."""
    return tuple(arrays[p.k] if isinstance(p, Slot) else p for p in _index_parts(index))


def is_basic_index(index: Any) -> bool:
    """Whether ``index`` is made of ints, slices, ``None`` and ``...`` only (NumPy's basic
    indexing: the result is a view, each element is selected at most once).

    >>> is_basic_index((slice(1, None), None, Ellipsis, -1)), is_basic_index((np.array([0, 0]),))
    (True, False)
    """
    return all(p is None or p is Ellipsis or type(p) is int or type(p) is slice for p in _index_parts(index))


def subscript_code(index: Any) -> str:
    """Python source of a basic index inside ``[...]``: ``1:, None`` for ``(slice(1, None), None)``.

    >>> subscript_code((slice(None, -1), None, Ellipsis, 2)), subscript_code(()), subscript_code((slice(0, 9, 2),))
    (':-1, None, ..., 2', '()', '0:9:2')
    """
    def item(p: Any) -> str:
        if type(p) is slice:
            bounds = ["" if v is None else str(int(v)) for v in (p.start, p.stop)]
            return ":".join(bounds) + ("" if p.step is None else f":{int(p.step)}")
        return "..." if p is Ellipsis else attr_code(p)

    parts = _index_parts(index)
    return ", ".join(item(p) for p in parts) if parts else "()"


def subscripted(printer, x: sp.Expr) -> str:
    """``x`` printed so that a subscript applies to all of it: a name as it is (an input
    through ``numpy.asarray`` unless the printer promises array inputs, so that a list
    passed to ``lambdify`` is not sliced as a list), anything else in parentheses."""
    text = printer._print(x)
    if not text.isidentifier():
        return f"({text})"
    if isinstance(x, sp.Symbol) and not getattr(printer, "array_inputs", False):
        return f"numpy.asarray({text})"
    return text


class DataThenIndexArrays:
    """Arguments that are ``n_data`` data arrays followed by integer index arrays (an
    engine op with an index, or its display node)."""

    n_data: ClassVar[int] = 1

    @property
    def data(self) -> tuple:
        return self.arrays[: self.n_data]

    @property
    def index_arrays(self) -> tuple:
        return self.arrays[self.n_data:]


class _Indexed(DataThenIndexArrays, StructuralFunction):
    """Ops with an ``index`` attribute.  Integer index arrays may be *arguments* (after
    the data arrays), referred to from the index by :class:`Slot` placeholders: then the
    index values are inputs read at call time, not part of the structure, so a training
    loop over batches of new labels compiles once."""

    def differentiable_args(self):
        return (True,) * self.n_data + (False,) * len(self.index_arrays)

    @classmethod
    def _placeholder_index(cls, shapes, attrs) -> tuple:
        """The index with each slot filled by a stand-in of the right shape (zeros, or a
        mask with the right number of true elements)."""
        counts = {p.k: p.count for p in _index_parts(attrs["index"]) if isinstance(p, Slot)}
        slots = []
        for k, shape in enumerate(shapes[cls.n_data:]):
            if counts.get(k) is None:
                slots.append(np.zeros(shape, np.intp))
            else:
                mask = np.zeros(shape, bool)
                mask.reshape(-1)[: counts[k]] = True
                slots.append(mask)
        return fill_index(attrs["index"], slots)

    def _names(self, printer) -> list[str]:
        return [printer._print(a) for a in self.index_arrays]

    def _numpycode(self, printer) -> str:
        parts = [printer._print(a) for a in self.data]
        for key, value in self.attrs.items():
            code = _index_code(value, self._names(printer)) if key == "index" else attr_code(value)
            parts.append(f"{key}={code}")
        return f"{self.op_name}({', '.join(parts)})"

    _pythoncode = _numpycode


@_register
class Getitem(PrintedInStandardNotation, _Indexed):
    """``getitem(x, index)``: ``x[index]`` (basic or advanced indexing)."""

    op_name = "getitem"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        placeholder = np.broadcast_to(np.zeros((), np.int8), shapes[0])
        return tuple(placeholder[cls._placeholder_index(shapes, attrs)].shape)

    def adjoint(self, g, index):
        x = self.data[0]
        return IndexPut.of(g, *self.index_arrays, shape=shape_of(x), index=self.attrs["index"])

    def _numpycode(self, printer) -> str:
        index = self.attrs["index"]
        if is_basic_index(index) and shape_of(self.data[0]):
            # a subscript, a view: generated code never writes into one
            return f"{subscripted(printer, self.data[0])}[{subscript_code(index)}]"
        return super()._numpycode(printer)

    _pythoncode = _numpycode

    def _text(self, printer) -> str:
        arg = printer.parenthesize(self.data[0], PRECEDENCE["Func"], strict=True)
        return arg, _index_text(self.attrs["index"], self._names(printer))

    def _sympystr(self, printer) -> str:
        arg, key = self._text(printer)
        return f"{arg}[{key}]"

    def _latex_body(self, printer) -> str:
        arg, key = self._text(printer)
        return r"{%s}_{\left[%s\right]}" % (arg, key)

    def _pretty(self, printer):
        from sympy.printing.pretty.stringpict import prettyForm, stringPict

        base = pretty_operand(printer, self.data[0], PRECEDENCE["Func"], strict=False)
        names = [str(a) for a in self.index_arrays]
        key = prettyForm("[" + _index_text(self.attrs["index"], names) + "]")
        return prettyForm(*stringPict.next(base, key))  # binds as an atom: x[0]² needs no brackets

    @property
    def precedence(self) -> int:
        return PRECEDENCE["Func"]


@_register
class IndexPut(PrintedInStandardNotation, _Indexed):
    """``index_put(g, shape, index)``: zeros of ``shape`` with ``g`` added at ``index``
    (repeated indices accumulate) -- the adjoint of ``getitem``."""

    op_name = "index_put"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return tuple(attrs["shape"])

    def adjoint(self, g, index):
        return Getitem.of(g, *self.index_arrays, index=self.attrs["index"])



def is_basic_index_put(expr: Any) -> bool:
    """Whether ``expr`` is an ``index_put`` at a basic index (ints, slices, ``None``, ``...``)."""
    return isinstance(expr, IndexPut) and not expr.index_arrays and is_basic_index(expr.attrs["index"])


@_register
class Setitem(PrintedInStandardNotation, _Indexed):
    """``setitem(x, value, index)``: ``x`` with ``x[index]`` replaced by ``value``."""

    op_name = "setitem"
    n_data = 2

    @classmethod
    def shape_rule(cls, shapes, attrs):
        return shapes[0]

    def adjoint(self, g, index):
        x, value = self.data
        if index == 0:
            return Setitem.of(g, sp.Integer(0), *self.index_arrays, index=self.attrs["index"])
        picked = Getitem.of(g, *self.index_arrays, index=self.attrs["index"])
        return reduce_to(picked, shape_of(value))


# ====================================================================== joining
@_register
class Cat(StructuralFunction):
    """``cat(x1, x2, ..., dim)``."""

    op_name = "cat"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        kept = [s for s, skip in zip(shapes, cat_skipped(shapes)) if not skip]
        dim = _norm_dims(attrs.get("dim", 0), len(kept[0]))[0]
        out = list(kept[0])
        out[dim] = sum(s[dim] for s in kept)
        return tuple(out)

    def adjoint(self, g, index):
        return self.adjoints(g, [index])[0]

    def adjoints(self, g, wanted):
        shapes = [shape_of(a) for a in self.arrays]
        kept = [not skip for skip in cat_skipped(shapes)]
        dim = _norm_dims(self.attrs.get("dim", 0), len(next(s for s, k in zip(shapes, kept) if k)))[0]
        starts, start = [], 0
        for shape, keep in zip(shapes, kept):
            starts.append(start)
            start += shape[dim] if keep else 0
        out = []
        for index in wanted:
            if not kept[index]:
                out.append(sp.Integer(0))
                continue
            key = (slice(None),) * dim + (slice(starts[index], starts[index] + shapes[index][dim]),)
            out.append(Getitem.of(g, index=key))
        return out


@_register
class Stack(StructuralFunction):
    """``stack(x1, x2, ..., dim)``."""

    op_name = "stack"

    @classmethod
    def shape_rule(cls, shapes, attrs):
        n = len(shapes[0]) + 1
        dim = int(attrs.get("dim", 0)) % n
        out = list(shapes[0])
        out.insert(dim, len(shapes))
        return tuple(out)

    def adjoint(self, g, index):
        return self.adjoints(g, [index])[0]

    def adjoints(self, g, wanted):
        n = len(shape_of(self.args[0])) + 1
        dim = int(self.attrs.get("dim", 0)) % n
        return [Getitem.of(g, index=(slice(None),) * dim + (index,)) for index in wanted]


# ====================================================================== elementwise helpers
class is_equal(PrintedInStandardNotation, sp.Function):
    """Elementwise ``a == b`` as 0/1 (its derivative is zero almost everywhere)."""

    nargs = 2

    def fdiff(self, argindex=1):
        return sp.Integer(0)

    def _numpycode(self, printer) -> str:
        a, b = (printer._print(arg) for arg in self.args)
        return f"equal({a}, {b})"

    _pythoncode = _numpycode

    def _eval_is_real(self):
        return True


def numpy_namespace() -> dict[str, Any]:
    """Names generated code may call: every structural op's NumPy forward (bound to the op
    table), the stable elementwise helpers, and ``array``/``equal`` from NumPy.

    >>> import sympy as sp
    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> a, b = ArrayVar("a", (2, 2)), ArrayVar("b", (2, 2))
    >>> f = sp.lambdify([a, b], Matmul.of(a, -b + 1), modules=[numpy_namespace(), "numpy"])
    >>> f(np.eye(2), np.ones((2, 2)))
    array([[0., 0.],
           [0., 0.]])
    """
    from ...ops import OPS
    from . import selections as elementwise
    from . import stable

    space: dict[str, Any] = {"array": np.array, "equal": np.equal}
    for name, op in OPS.items():
        if op.kind != "elementwise" and name not in space:
            space[name] = op.forward
    for name, cls in STRUCTURAL_FUNCTIONS.items():
        if name not in space:
            try:
                space[name] = cls.numpy_forward()
            except KeyError:
                pass
    space.update(stable.NUMPY_HELPERS)
    space.update(elementwise.NUMPY_HELPERS)
    return space
