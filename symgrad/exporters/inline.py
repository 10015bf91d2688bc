"""Copy the source of the NumPy helpers generated code calls into an exported module.

Code compiled by :mod:`symgrad.symbolic.codegen.compile` calls helpers from
:func:`symgrad.symbolic.forms.structural.numpy_namespace` (``sum_to``, ``mean``, ``matmul``,
``getitem``, ...).  An exported module must import nothing but NumPy, so
:func:`inline_helpers` writes the source of each helper it uses -- and of the functions
those call, transitively -- into the module.  Lambdas become ``def`` statements, a
closure's captured values become constants (or ``numpy.<name>``), and every reference
to NumPy is spelled ``numpy``.  A helper that needs anything else raises
:class:`~symgrad.exporters.errors.ExportError` naming it.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
import types
from typing import Any, Callable

import numpy as np

from .errors import ExportError

_CONSTANT_TYPES = (int, float, str, bool, type(None))


def numpy_spelling(value: Any) -> str | None:
    """``"numpy.<name>"`` if ``value`` is NumPy itself or one of NumPy's top-level names, else None."""
    if value is np:
        return "numpy"
    name = getattr(value, "__name__", None)
    if isinstance(name, str) and getattr(np, name, None) is value:
        return f"numpy.{name}"
    return None


def _function_node(fn: types.FunctionType) -> ast.FunctionDef:
    """The ``def`` of ``fn`` as an AST, a lambda turned into ``def <lambda>(...): return ...``."""
    if fn.__name__ != "<lambda>":
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        node = tree.body[0]
        node.decorator_list = []
        return node
    module_tree = ast.parse(inspect.getsource(inspect.getmodule(fn)))
    code = fn.__code__
    arg_names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 4)]
    found = []
    for node in ast.walk(module_tree):
        if isinstance(node, ast.Lambda) and node.lineno == code.co_firstlineno:
            args = node.args
            names = [a.arg for a in args.args] + [a.arg for a in args.kwonlyargs] + (
                [args.vararg.arg] if args.vararg else [])
            if sorted(names) == sorted(arg_names):
                found.append(node)
    if len(found) != 1:
        raise ExportError(f"cannot find the source of the helper lambda at {code.co_filename}:{code.co_firstlineno}")
    lam = found[0]
    return ast.FunctionDef(name="<lambda>", args=lam.args, body=[ast.Return(lam.body)], decorator_list=[],
                           returns=None, type_params=[], lineno=lam.lineno)


def _bound_names(node: ast.AST) -> set[str]:
    """Every name a function binds locally (arguments, assignments, loop targets, comprehensions)."""
    bound = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.arg):
            bound.add(sub.arg)
        elif isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
            bound.add(sub.id)
    return bound


class _Inliner:
    """Collects helper definitions, in an order where each is defined before the module runs."""

    def __init__(self, taken: set[str], aliases: set[str]) -> None:
        self.taken = set(taken) | set(aliases)  # names the generated code and the module already use
        self.aliases = aliases                  # names the generated code calls helpers by
        self.definitions: list[str] = []
        self.names: dict[int, str] = {}         # id(function) -> the name it is defined under
        self.saved_builtins: set[str] = set()   # builtins a helper uses that an alias shadows

    def define(self, fn: Callable, preferred: str) -> str:
        """Define ``fn`` (and what it calls) in the module; return the name it is defined under."""
        spelled = numpy_spelling(fn)
        if spelled is not None:
            return spelled
        if id(fn) in self.names:
            return self.names[id(fn)]
        if not isinstance(fn, types.FunctionType):
            raise ExportError(f"the helper {preferred!r} is a {type(fn).__name__}, not a Python function or a "
                              "NumPy name, so it cannot be copied into an exported module")
        node = _function_node(fn)
        private = node.name.startswith("_") or node.name in ("<lambda>", "forward")
        name = preferred if private or node.name in self.taken else node.name  # `mean`, not `_mean_forward`
        self.names[id(fn)] = name
        self.taken.add(name)
        node.name = name
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            node.body = node.body[1:] or [ast.Pass()]  # the helper's docstring names symgrad's tests
        bound = _bound_names(node)
        free = dict(zip(fn.__code__.co_freevars, (c.cell_contents for c in fn.__closure__ or ())))
        renames: dict[str, ast.expr] = {}
        for sub in ast.walk(node):
            if not (isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)) or sub.id in bound:
                continue
            if sub.id in free:
                renames[sub.id] = self._expression(free[sub.id], sub.id, name)
            elif sub.id in fn.__globals__:
                renames[sub.id] = self._expression(fn.__globals__[sub.id], sub.id, name)
            elif hasattr(builtins, sub.id):
                if sub.id in self.aliases:  # the module's `max` is a helper: read the builtin saved before it
                    self.saved_builtins.add(sub.id)
                    renames[sub.id] = ast.Name(f"builtin_{sub.id}", ast.Load())
            else:
                raise ExportError(f"the helper {name!r} uses the name {sub.id!r}, which is not defined")
        node = _Rename(renames).visit(node)
        self.definitions.append(ast.unparse(ast.fix_missing_locations(node)))
        return name

    def _expression(self, value: Any, name: str, user: str) -> ast.expr:
        """How the module spells a value a helper reads from its module or closure."""
        spelled = numpy_spelling(value)
        if spelled is not None:
            return ast.parse(spelled, mode="eval").body
        if isinstance(value, _CONSTANT_TYPES) or (isinstance(value, tuple) and all(
                isinstance(v, _CONSTANT_TYPES) for v in value)):
            return ast.Constant(value) if not isinstance(value, tuple) else ast.parse(repr(value), mode="eval").body
        if isinstance(value, types.FunctionType):
            return ast.Name(self.define(value, name), ast.Load())
        raise ExportError(f"the helper {user!r} reads {name!r} = {value!r}, which an exported module cannot "
                          "reproduce with NumPy alone")


class _Rename(ast.NodeTransformer):
    def __init__(self, renames: dict[str, ast.expr]) -> None:
        self.renames = renames

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and node.id in self.renames:
            return ast.copy_location(self.renames[node.id], node)
        return node


def inline_helpers(used: set[str], namespace: dict[str, Any], taken: set[str]) -> list[str]:
    """Source lines that define every name of ``used`` (names the generated code calls)
    as ``namespace`` binds it, with NumPy as the only import.  ``taken`` are names the
    module uses otherwise (function and argument names)."""
    inliner = _Inliner(taken, used)
    aliases = []
    for alias in sorted(used):
        defined = inliner.define(namespace[alias], alias)
        if defined != alias:
            aliases.append(f"{alias} = {defined}")
    saved = [f"builtin_{b} = {b}" for b in sorted(inliner.saved_builtins)]
    return saved + inliner.definitions + aliases
