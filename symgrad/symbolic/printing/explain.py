"""``symgrad.explain(y, x)``: the chain rule, step by step, for a tutorial reader.

For every node on a path from ``x`` to ``y`` it shows the forward value (named ``u_1``,
``u_2``, ... and ``y``'s own name), the node's local derivative (``d(tanh u)/du =
1 - tanh(u)**2``; for an array op such as ``@`` or ``sum``, the vector-Jacobian product
it sends back), then the backward pass: each adjoint ``ubar_k`` (``∂f/∂u_k``) as the sum
of what the nodes that use ``u_k`` send it, down to ``xbar``, the gradient.  With tensors
holding data, every line carries its value at the current values; the last line compares
the adjoint with the closed form of :func:`~symgrad.symbolic.diff`.

The local derivatives come from the engine's own rules (:mod:`..derive.reverse`: SymPy's
derivative of an elementwise node, the structural adjoint of an array op), written over
the names, and everything is printed in the display form (:mod:`.display`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from .display import defined_data, to_display
from .printers import latex as latex_of, text as text_of
from ..derive.reverse import _local_partials, _resolve, _topological, _is_tensor, diff
from ..forms.structural import StructuralFunction, exact, numpy_namespace, reduce_to
from ..core.symbols import ArrayValue, ArrayVar, replaced, shape_of

__all__ = ["explain", "Explanation"]


@dataclass
class ForwardStep:
    """``name = definition`` (over earlier names), with its value when known."""

    name: sp.Symbol
    definition: sp.Expr
    value: Any = None


@dataclass
class LocalDerivative:
    """How node ``of`` passes its adjoint to its operand ``wrt``: the elementwise partial
    derivative (``partial``), or, for an array op, the contribution itself (``vjp``)."""

    of: sp.Symbol
    wrt: sp.Symbol
    partial: sp.Expr | None
    contribution: sp.Expr


@dataclass
class BackwardStep:
    """``adjoint = sum of contributions``, with its value when known."""

    adjoint: sp.Symbol
    of: sp.Symbol
    contributions: list
    value: Any = None


@dataclass
class Explanation:
    """The chain rule for ``∂y/∂x``: forward steps, local derivatives, backward steps and
    the closed form; ``str`` gives text, :meth:`latex` LaTeX (notebooks render both)."""

    function: sp.Symbol
    wrt: sp.Symbol
    expr: sp.Expr
    forward: list = field(default_factory=list)
    locals: list = field(default_factory=list)
    backward: list = field(default_factory=list)
    gradient: sp.Expr = sp.S.Zero
    gradient_value: Any = None
    unnamed_data: list = field(default_factory=list)
    """``(symbol, value, definition)`` of each input the user did not name that the
    explanation shows (data, which the engine names ``t0``, ``t1``, ...; ``definition`` is
    what it was computed from, without recording, or None), so no printed name is
    undefined."""

    # ------------------------------------------------------------------ text
    def __str__(self) -> str:
        f, x = self.function.name, self.wrt.name
        lines = [f"Chain rule for d{f}/d{x}, where {f} = {text_of(self.expr)}"]
        lines += [f"  and {s.name} = {text_of(d)}, {_what(d)}, shape {_data_shape(s, v)}"
                  f"{_value_text(v)}" if d is not None else
                  f"  and {s.name} is data computed without recording (name the tensor to print its name), "
                  f"shape {_data_shape(s, v)}{_value_text(v)}" for s, v, d in self.unnamed_data]
        lines += ["",
                 f"Forward pass (each value on a path from {x} to {f}):"]
        lines += [f"  {s.name} = {text_of(s.definition)}{_value_text(s.value)}" for s in self.forward]
        lines += ["", "Local derivatives (what each node sends back to its operand):"]
        for d in self.locals:
            if d.partial is not None:
                lines.append(f"  d{d.of.name}/d{d.wrt.name} = {text_of(d.partial)}")
            else:
                lines.append(f"  {d.of.name} -> {d.wrt.name}: {text_of(d.contribution)}  (vector-Jacobian product)")
        lines += ["", f"Backward pass (the adjoint vbar of each value v is d{f}/dv):", f"  {f}bar = 1"]
        for s in self.backward:
            lines.append(f"  {s.adjoint.name} = {' + '.join(text_of(c) for c in s.contributions)}"
                         f"{_value_text(s.value)}")
        lines += ["", f"Result: d{f}/d{x} = {x}bar = {text_of(self.gradient)}{_value_text(self.gradient_value)}"]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    # ------------------------------------------------------------------ LaTeX
    def latex(self) -> str:
        """The explanation as one LaTeX ``aligned`` block (forward, local derivatives,
        backward, result)."""
        f, x = sp.latex(self.function), sp.latex(self.wrt)
        rows = [r"&\text{forward:} & %s &= %s" % (f, latex_of(self.expr))]
        rows += [r"&\text{data:} & %s &%s\quad (\text{shape } %s)" % (
            sp.latex(sp.Symbol(s.name)), "" if d is None else "= " + latex_of(d), r" \times ".join(map(str, _data_shape(s, v))) or "1")
            for s, v, d in self.unnamed_data]
        rows += [r"&& %s &= %s%s" % (sp.latex(s.name), latex_of(s.definition), _value_latex(s.value))
                 for s in self.forward]
        for d in self.locals:
            if d.partial is not None:
                rows.append(r"&\text{local:} & \frac{\partial %s}{\partial %s} &= %s" % (
                    sp.latex(d.of), sp.latex(d.wrt), latex_of(d.partial)))
            else:
                rows.append(r"&\text{local:} & %s \to %s &: %s" % (
                    sp.latex(d.of), sp.latex(d.wrt), latex_of(d.contribution)))
        rows.append(r"&\text{backward:} & \overline{%s} &= 1" % f)
        rows += [r"&& %s &= %s%s" % (sp.latex(s.adjoint), " + ".join(latex_of(c) for c in s.contributions),
                                      _value_latex(s.value)) for s in self.backward]
        rows.append(r"&\text{result:} & \frac{\partial %s}{\partial %s} &= %s%s" % (
            f, x, latex_of(self.gradient), _value_latex(self.gradient_value)))
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"

    def _repr_latex_(self) -> str:
        return f"$$\n{self.latex()}\n$$"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {"text/plain": str(self), "text/latex": self._repr_latex_()}


def _shown_value(value: Any) -> str:
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return np.format_float_positional(float(array), precision=4, unique=True, trim="-")
    return np.array2string(array, precision=4, threshold=8, edgeitems=2, separator=", ").replace("\n", "")


def _data_shape(symbol: Any, value: Any) -> tuple:
    """The shape of an unnamed input: its value's, or its symbol's where the value is unknown."""
    return tuple(np.shape(value)) if value is not None else tuple(symbol.array_shape)


def _value_text(value: Any) -> str:
    return "" if value is None else f"  = {_shown_value(value)}"


def _value_latex(value: Any) -> str:
    if value is None:
        return ""
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        return r" = %s" % _shown_value(array)
    return r" \quad (\text{shape } %s)" % " \\times ".join(map(str, array.shape))


class AdjointSymbol(ArrayVar):
    """The adjoint ``vbar`` of a value ``v`` (``∂f/∂v``): named ``vbar`` in text,
    ``\\overline{v}`` in LaTeX."""

    def _latex(self, printer, exp=None) -> str:
        shown = r"\overline{%s}" % sp.latex(sp.Symbol(self.name[: -len("bar")]))
        return shown if exp is None else r"%s^{%s}" % (shown, exp)


def _adjoint_symbol(name: str, shape: tuple) -> ArrayVar:
    return AdjointSymbol(f"{name}bar", shape)


def _evaluate(expr: sp.Expr, values: dict) -> np.ndarray:
    symbols = sorted({s for s in expr.free_symbols if isinstance(s, sp.Symbol)}, key=lambda s: s.name)
    missing = [s.name for s in symbols if s.name not in values]
    if missing:
        raise KeyError(missing)
    f = sp.lambdify(symbols, expr, modules=[numpy_namespace(), "numpy"])
    return np.asarray(f(*[values[s.name] for s in symbols]), dtype=float)


def _free_name(name: str, taken: set) -> str:
    """``name``, or ``name`` with a prime or more if the form already uses it."""
    while name in taken:
        name += "'"
    return name


def _total(contributions: list, values: dict, shape: tuple) -> np.ndarray:
    """The value of an adjoint: its contributions summed, at the shape of its value (a
    contribution may be smaller and broadcast)."""
    return np.array(np.broadcast_to(sum(_evaluate(c, values) for c in contributions), shape))


def explain(y: Any, x: Any) -> Explanation:
    """The chain rule for the derivative of the scalar ``y`` with respect to ``x`` (tensors,
    or a SymPy expression and one of its symbols), step by step.

    >>> import symgrad
    >>> w = symgrad.tensor(2.0, requires_grad=True, name="w")
    >>> x, b, t = symgrad.tensor(3.0, name="x"), symgrad.tensor(1.0, name="b"), symgrad.tensor(5.0, name="t")
    >>> print(explain((w * x + b - t) ** 2, w))
    Chain rule for df/dw, where f = (b - t + w*x)**2
    <BLANKLINE>
    Forward pass (each value on a path from w to f):
      u_1 = w*x  = 6
      u_2 = b - t + u_1  = 2
      f = u_2**2  = 4
    <BLANKLINE>
    Local derivatives (what each node sends back to its operand):
      df/du_2 = 2*u_2
      du_2/du_1 = 1
      du_1/dw = x
    <BLANKLINE>
    Backward pass (the adjoint vbar of each value v is df/dv):
      fbar = 1
      u_2bar = 2*fbar*u_2  = 4
      u_1bar = u_2bar  = 4
      wbar = u_1bar*x  = 12
    <BLANKLINE>
    Result: df/dw = wbar = 2*x*(b - t + w*x)  = 12
    """
    if isinstance(x, (list, tuple)):
        raise TypeError("explain(y, x) follows one x at a time; call it once per tensor or symbol")
    ((expr, symbol),) = _resolve(y, [x])
    expr, where = defined_data(expr)  # short data definitions in place, the others listed once
    definition_of = {d.name: definition for d, definition in where}
    if where:
        expr = replaced(expr, {d: ArrayVar(d.name, d.array_shape, d.array_dtype) for d, _ in where})
    if shape_of(expr) not in ((), (1,)) and int(np.prod(shape_of(expr))) != 1:
        raise ValueError(f"explain needs a scalar y; it has shape {shape_of(expr)}: sum it or pick an element")
    values = _known_values(y, x) if _is_tensor(y) else None
    taken = {s.name for s in expr.free_symbols if isinstance(s, sp.Symbol)}
    function = sp.Symbol(_free_name((getattr(y, "name", None) if _is_tensor(y) else None) or "f", taken))
    taken.add(function.name)
    order, kids = _topological([expr])
    on_path: set = set()
    for node in order:
        if node == symbol or any(c in on_path for c in kids[node]):
            on_path.add(node)
    if expr not in on_path:
        raise ValueError(f"y does not depend on {symbol}: its derivative is 0 and there is no chain to explain")
    steps = [n for n in order if n in on_path and n != symbol]
    names: dict = {symbol: symbol}
    for k, node in enumerate(steps[:-1], start=1):
        names[node] = ArrayVar(_free_name(f"u_{k}", taken), shape_of(node))
    names[expr] = ArrayVar(function.name, shape_of(expr))
    explanation = Explanation(function=names[expr], wrt=symbol, expr=expr)
    shown = {s.name for s in expr.free_symbols}
    if _is_tensor(y):
        explanation.unnamed_data = [(s, v, definition_of.get(s.name)) for s, v in _unnamed_data(y) if s.name in shown]
    else:  # a form's data symbols (a parsed formula's index arrays): their definitions, values unknown
        explanation.unnamed_data = [(d, None, definition) for d, definition in where if d.name in shown]
    definitions = {}
    for node in steps:
        definition = node.func(*[names.get(a, a) for a in node.args])
        definitions[node] = definition
        value = None
        if values is not None:
            value = values[names[node].name] = _evaluate(definition, values)
        explanation.forward.append(ForwardStep(names[node], definition, value))
    adjoints = {node: _adjoint_symbol(names[node].name, shape_of(node)) for node in [symbol, *steps]}
    if values is not None:
        values[adjoints[expr].name] = np.ones(shape_of(expr))
    received: dict = {}
    for node in reversed(steps):
        if node is not expr:
            contributions = received.pop(node)
            value = None
            if values is not None:
                value = values[adjoints[node].name] = _total(contributions, values, shape_of(node))
            shown = [to_display(c) for c in contributions]
            explanation.backward.append(BackwardStep(adjoints[node], names[node], shown, value))
        definition, g = definitions[node], adjoints[node]
        path_args = [i for i, a in enumerate(node.args) if a in on_path]
        if isinstance(node, StructuralFunction):
            usable = node.differentiable_args()
            path_args = [i for i in path_args if usable[i]]
            for i, contribution in zip(path_args, definition.adjoints(exact(g, shape_of(node)), path_args)):
                operand = node.args[i]
                explanation.locals.append(LocalDerivative(names[node], names[operand], None, to_display(contribution)))
                received.setdefault(operand, []).append(contribution)
            continue
        partials = _local_partials(definition, list(definition.args))
        for i in path_args:
            operand, partial = node.args[i], partials[i]
            contribution = reduce_to(g * partial, shape_of(operand), shape_of(node))
            explanation.locals.append(LocalDerivative(names[node], names[operand], to_display(partial), contribution))
            received.setdefault(operand, []).append(contribution)
    contributions = received.pop(symbol)
    value = None
    if values is not None:
        value = _total(contributions, values, shape_of(symbol))
    explanation.backward.append(BackwardStep(adjoints[symbol], symbol, [to_display(c) for c in contributions], value))
    explanation.gradient = to_display(diff(expr, symbol))
    explanation.gradient_value = value
    return explanation


def _what(definition: Any) -> str:
    """What an unnamed input shown with its definition is."""
    if isinstance(definition, ArrayValue):
        return "an array no one named (name the tensor to print its name)"
    return "data computed without recording"


def _unnamed_data(y: Any) -> list:
    """``(symbol, value)`` of the inputs of ``y``'s graph that are tensors without a name,
    and of its index arrays."""
    from ..derive.graph import tensor_graph

    return [(s, np.asarray(getattr(source, "_data", source))) for s, source in tensor_graph(y)[1].items()
            if isinstance(source, np.ndarray) or (hasattr(source, "_data") and not getattr(source, "name", None))]


def _known_values(y: Any, x: Any) -> dict:
    """The arrays of every input of ``y``'s graph, by symbol name (and ``x``'s)."""
    from ..derive.graph import tensor_graph

    values = {}
    for s, source in tensor_graph(y)[1].items():
        data = getattr(source, "_data", source)
        values[s.name] = np.asarray(data)
    if getattr(x, "name", None):
        values[x.name] = np.asarray(x._data)
    return values
