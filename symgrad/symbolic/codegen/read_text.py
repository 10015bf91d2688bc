"""Reading a displayed text form back: :func:`evaluate_text` computes the value of a form
printed by :func:`symgrad.symbolic.printing.printers.text` (its display form, see
:mod:`symgrad.symbolic.printing.display`) from arrays, which is how the tests check that
each displayed form equals the engine's value.  It sits above the printers because the
op table's functions that NumPy lacks evaluate through the engine's own compiled code.
"""
from __future__ import annotations

import ast
from typing import Any, Callable, Mapping

import numpy as np
import sympy as sp

from ..forms.selections import function_ops
from ..forms.structural import numpy_namespace
from .compile import compile_exprs

__all__ = ["evaluate_text"]


def _indicator_value(condition: Any) -> np.ndarray:
    return np.asarray(condition, dtype=np.float64)


def _scatter_value(g: Any, shape: tuple, at: Any) -> np.ndarray:
    g = np.asarray(g, dtype=np.float64)
    out = np.zeros(shape, dtype=np.float64)
    target = out[at]
    np.add.at(out, at, np.broadcast_to(g, target.shape))
    return out


def _assign_value(x: Any, at: Any, v: Any) -> np.ndarray:
    out = np.array(x, dtype=np.float64)
    out[at] = v
    return out


def _text_namespace() -> dict:
    space = dict(numpy_namespace())
    for name in ("exp", "log", "sin", "cos", "tan", "tanh", "sqrt", "sign", "sinh", "cosh", "arcsin", "arccos",
                 "arctan", "where", "pi"):
        space.setdefault(name, getattr(np, name))
    space.update({
        "Abs": np.abs, "E": np.e, "nan": np.nan, "oo": np.inf, "zoo": np.nan,
        "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
        "ones": lambda shape: np.ones(shape), "zeros": lambda shape: np.zeros(shape),
        "scatter": _scatter_value, "assign": _assign_value, "s_": np.s_, "_iverson": _indicator_value,
        "reshape": lambda x, shape: np.reshape(x, shape), "maximum": np.maximum, "minimum": np.minimum,
        "Rational": lambda p, q: p / q, "arange": np.arange, "indices": np.indices, "array": np.array,
    })
    for function, uses in function_ops().items():  # the op table's other functions (log1p, atan2, polygamma...)
        general = [form for _, form in uses if all(isinstance(a, sp.Dummy) for a in form)]
        if general and str(function) not in space:
            space[str(function)] = _compiled_function(function, general[0])
    return space


def _compiled_function(function: type, arguments: tuple) -> Callable:
    """``function`` evaluated as the compiled code evaluates it (the engine's own NumPy
    translation), elementwise over NumPy arrays."""
    compiled = compile_exprs(list(arguments), [function(*arguments)], output_shapes=[None], backend="numpy")
    return lambda *values: compiled.outputs_of([np.asarray(v, dtype=float) for v in values])[0]


_READABLE = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.Subscript, ast.Slice,
             ast.Tuple, ast.List, ast.Compare, ast.Attribute, ast.keyword, ast.Load, ast.operator, ast.unaryop,
             ast.cmpop, ast.BoolOp, ast.boolop)


class _Iverson(ast.NodeTransformer):
    """``[c]`` (a one-element list) becomes ``_iverson(c)``."""

    def visit_List(self, node: ast.List) -> ast.AST:
        self.generic_visit(node)
        if len(node.elts) != 1:
            raise ValueError("a bracket [c] holds exactly one condition")
        return ast.copy_location(ast.Call(ast.Name("_iverson", ast.Load()), node.elts, []), node)


def evaluate_text(shown: str, values: Mapping[str, Any]) -> np.ndarray:
    """The value of a displayed text form (``text(expr)``) at ``values`` (arrays by
    name): ``[c]`` is 1 where ``c`` holds, ``scatter``, ``assign``, ``ones`` and ``zeros``
    are as in the module docstring, everything else NumPy.  Only expressions are read:
    names, numbers, operators, calls of known functions, subscripts and ``.T``.

    A form that names data lists the definitions below it (``where t0 = ...``, one per
    line, as :func:`~symgrad.symbolic.printing.printers.text` prints them); each is
    computed first (after the ones it reads) and read by its name, unless ``values`` gives
    that name (a large array is defined by a summary, which describes it but computes
    nothing).

    >>> float(evaluate_text("sum(2*[x > 0]*x)", {"x": np.array([-1.0, 2.0, 3.0])}))
    10.0
    >>> evaluate_text("2*t0\\nwhere t0 = 1 - x", {"x": np.array([1.0, 3.0])})
    array([ 0., -4.])
    """
    form, *definitions = shown.split("\n")
    values = dict(values)
    pending = {}
    for k, line in enumerate(definitions):
        label, _, definition = line.partition(" = ")
        name = label.removeprefix("where" if k == 0 else "").strip()
        if not (label.startswith("where " if k == 0 else "      ") and name.isidentifier() and definition):
            raise ValueError(f"line {k + 2} of a displayed form is no definition 'where name = ...': {line!r}")
        pending[name] = definition
    while pending:  # a definition may read one listed after it (where t0 = x[idx0], idx0 = ...)
        ready = [name for name, definition in pending.items() if not (_names_read(definition) & set(pending))]
        if not ready:
            raise ValueError(f"the definitions of {sorted(pending)} read each other: {shown!r}")
        for name in ready:
            definition = pending.pop(name)
            if name not in values:  # a given value wins: a large array's definition only describes it
                values[name] = _evaluated(definition, values)
    return _evaluated(form, values)


def _names_read(line: str) -> set:
    """Every name one line of a displayed form mentions."""
    return {node.id for node in ast.walk(ast.parse(line, mode="eval")) if isinstance(node, ast.Name)}


def _evaluated(shown: str, values: Mapping[str, Any]) -> np.ndarray:
    """The value of one line of a displayed text form (see :func:`evaluate_text`)."""
    tree = _Iverson().visit(ast.parse(shown, mode="eval"))
    ast.fix_missing_locations(tree)
    space = _text_namespace()
    for node in ast.walk(tree):
        if not isinstance(node, _READABLE):
            raise ValueError(f"a displayed form holds no {type(node).__name__}: {shown!r}")
        if isinstance(node, ast.Attribute) and node.attr not in ("T", "mT"):
            raise ValueError(f"a displayed form reads no attribute but .T, got .{node.attr}")
        if isinstance(node, ast.Name) and node.id not in values and node.id not in space:
            raise ValueError(f"the displayed form {shown!r} uses {node.id!r}, which has no value")
    scope = {**space, **{name: np.asarray(v) for name, v in values.items()}}
    return eval(compile(tree, "<displayed form>", "eval"), {"__builtins__": {}}, scope)  # noqa: S307
