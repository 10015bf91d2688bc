"""Printing closed forms: text, pretty unicode, LaTeX, notebooks, and per-element views.

Array-level closed forms print as matrix formulas (``x.T @ (sigmoid(b + x @ w) - y)/3``),
never as expanded scalars: every structural function prints itself (``structural.py``),
and SymPy prints the elementwise rest.  ``simplify=True`` tidies a form first with
``sympy.factor_terms`` (pulling common numeric factors and signs out of sums), which is
cheap; it is off by default.

:class:`ClosedForm` wraps an expression for display: ``str`` gives text, ``repr`` the
pretty form, and ``_repr_latex_`` renders it in notebooks.

:func:`per_element` is the *view* for small arrays: it evaluates an array-level form on
arrays of scalar symbols (``w[0, 1]``), giving one scalar closed form per element.  The
engine never computes with it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from .reverse import as_expr
from .structural import StructuralFunction, is_equal
from .symbols import ArrayVar, operands, postorder, shape_of, size_of

__all__ = ["text", "pretty", "latex", "tidy", "ClosedForm", "per_element"]


def tidy(expr: Any) -> Any:
    """A tidier equal form: common factors and signs pulled out of sums.

    >>> x, y = sp.symbols("x y")
    >>> tidy(-y / 3 + x / 3)
    (x - y)/3
    """
    if isinstance(expr, (list, tuple)):
        return type(expr)(tidy(e) for e in expr)
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(tidy)
    return sp.factor_terms(as_expr(expr))


def text(expr: Any, simplify: bool = False) -> str:
    """Plain text (``str``) of a closed form.

    >>> from symgrad.symbolic.structural import Matmul, Transpose
    >>> x, y = ArrayVar("x", (3, 2)), ArrayVar("y", (3, 1))
    >>> text(Matmul.of(Transpose.of(x, dim0=0, dim1=1), 1 - y / 3))
    'x.T @ (1 - y/3)'
    """
    return str(tidy(expr) if simplify else expr)


def pretty(expr: Any, simplify: bool = False, use_unicode: bool = True) -> str:
    """SymPy's 2-D pretty form.

    >>> print(pretty(sp.Symbol("x") ** 2 / 2))
     2
    x
    ──
    2
    """
    return sp.pretty(tidy(expr) if simplify else expr, use_unicode=use_unicode)


def latex(expr: Any, simplify: bool = False) -> str:
    """LaTeX source.

    >>> from symgrad.symbolic.stable import sigmoid
    >>> latex(sigmoid(sp.Symbol("z")))
    '\\\\sigma\\\\left(z\\\\right)'
    """
    return sp.latex(tidy(expr) if simplify else expr)


class ClosedForm:
    """A closed form for display: text by ``str``, pretty by ``repr``, LaTeX in notebooks.

    >>> f = ClosedForm(sp.Symbol("x") ** 2, name="f")
    >>> str(f), f.latex()
    ('x**2', 'x^{2}')
    """

    def __init__(self, expr: Any, name: str | None = None, simplify: bool = False) -> None:
        self.expr = tidy(expr) if simplify else expr
        self.name = name

    def __str__(self) -> str:
        return text(self.expr)

    def __repr__(self) -> str:
        return pretty(self.expr)

    def latex(self) -> str:
        return latex(self.expr)

    def _repr_latex_(self) -> str:
        body = self.latex()
        if self.name:
            body = r"\mathrm{%s} = %s" % (self.name.replace("_", r"\_"), body)
        return f"$\\displaystyle {body}$"

    def per_element(self):
        """The per-element view (small arrays only), see :func:`per_element`."""
        return per_element(self.expr)


# ============================================================================ per-element view
MAX_ELEMENTS = 400


def _element_symbols(symbol: sp.Symbol) -> np.ndarray:
    shape = shape_of(symbol)
    if not shape:
        return np.array(sp.Symbol(symbol.name, real=True), dtype=object)
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = sp.Symbol(f"{symbol.name}[{', '.join(map(str, index))}]", real=True)
    return out


def _reduce_dims(node) -> tuple | None:
    from .structural import _norm_dims

    dims = _norm_dims(node.attrs.get("dim"), len(shape_of(node.arrays[0])))
    return dims


def _structural_elements(node: StructuralFunction, args: list) -> np.ndarray:
    name = node.op_name
    attrs = node.attrs
    if name in ("max", "min"):
        func = np.frompyfunc(sp.Max if name == "max" else sp.Min, 2, 1)
        dims = _reduce_dims(node)
        out = args[0]
        for d in sorted(dims, reverse=True):
            out = func.reduce(out, axis=d, keepdims=bool(attrs.get("keepdim")))
        return np.asarray(out, dtype=object)
    exp = np.frompyfunc(sp.exp, 1, 1)
    log = np.frompyfunc(sp.log, 1, 1)
    if name in ("logsumexp", "softmax", "log_softmax", "norm"):
        x = args[0]
        dims = _reduce_dims(node) if name in ("logsumexp", "norm") else _norm_dims_single(node)
        if name == "norm":
            sq = np.frompyfunc(sp.sqrt, 1, 1)
            return np.asarray(sq(np.sum(x * x, axis=dims, keepdims=bool(attrs.get("keepdim")))), dtype=object)
        total = np.sum(exp(x), axis=dims, keepdims=True)
        if name == "softmax":
            return exp(x) / total
        if name == "log_softmax":
            return x - log(total)
        out = log(total)
        return out if attrs.get("keepdim") else np.squeeze(out, axis=dims)
    if name == "extremum_mask":
        raise NotImplementedError("extremum_mask has no per-element closed form (it picks indices)")
    return np.asarray(node.numpy_forward()(*args, **attrs), dtype=object)


def _norm_dims_single(node) -> tuple:
    from .structural import _norm_dims

    return _norm_dims(node.attrs["dim"], len(shape_of(node.arrays[0])))


def per_element(expr: Any) -> Any:
    """One scalar closed form per element of an array-level form (small arrays only):
    a ``Matrix`` for 2-D results, a SymPy N-d array otherwise, the expression for scalars.

    >>> from symgrad.symbolic.structural import Matmul
    >>> a, v = ArrayVar("a", (2, 2)), ArrayVar("v", (2,))
    >>> per_element(Matmul.of(a, v))
    [a[0, 0]*v[0] + a[0, 1]*v[1], a[1, 0]*v[0] + a[1, 1]*v[1]]
    """
    expr = as_expr(expr)
    if size_of(shape_of(expr)) > MAX_ELEMENTS:
        raise ValueError(
            f"the per-element view is for small arrays; this form has shape {shape_of(expr)} "
            f"({size_of(shape_of(expr))} elements > {MAX_ELEMENTS})"
        )
    values: dict = {}
    for node in postorder([expr]):
        if isinstance(node, sp.Symbol):
            values[node] = _element_symbols(node) if isinstance(node, ArrayVar) else np.array(node, dtype=object)
        elif isinstance(node, StructuralFunction):
            values[node] = _structural_elements(node, [values[a] for a in node.arrays])
        elif not node.args:
            values[node] = np.array(node, dtype=object)
        else:
            kids = operands(node)
            if isinstance(node, is_equal):
                func = np.frompyfunc(lambda a, b: sp.Piecewise((1, sp.Eq(a, b)), (0, True)), 2, 1)
            else:
                func = np.frompyfunc(lambda *vals, node=node, kids=kids: node.xreplace(dict(zip(kids, vals))),
                                     len(kids), 1)
            values[node] = np.asarray(func(*[values[k] for k in kids]), dtype=object)
    out = values[expr]
    if out.ndim == 0:
        return sp.sympify(out.item())
    if out.ndim == 2:
        return sp.Matrix(out.tolist())
    return sp.ImmutableDenseNDimArray(out.tolist(), out.shape)
