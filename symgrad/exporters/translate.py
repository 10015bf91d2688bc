"""Translating symgrad's generated NumPy code into another array library, name by name.

The ``torch`` and ``jax`` targets write symgrad's generated NumPy code with every
``numpy.<name>`` replaced by the library's function (:class:`NumPyNames`) and every
helper of :func:`symgrad.symbolic.forms.structural.numpy_namespace` replaced by a translation of
the same name and arguments, kept as real Python in a helpers file that is read (never
imported) when writing (:func:`helper_sources`).  A name with no translation raises
:class:`~symgrad.exporters.errors.ExportError` naming it.
"""
from __future__ import annotations

import ast
from pathlib import Path

from .errors import ExportError

NUMPY_AS_HELPERS = ("asarray", "zeros", "result_type")
"""NumPy functions generated code calls that a target translates as helpers (dtype handling differs)."""


class NumPyNames(ast.NodeTransformer):
    """``numpy.<name>`` -> ``<module>.<names[name]>``, or the helper of that name for :data:`NUMPY_AS_HELPERS`
    and the target's own ``as_helpers``."""

    def __init__(self, target: str, module: str, names: dict[str, str], as_helpers: tuple = ()) -> None:
        self.target, self.module, self.names = target, module, names
        self.as_helpers = NUMPY_AS_HELPERS + tuple(as_helpers)

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.value, ast.Name) and node.value.id == "numpy":
            if node.attr in self.as_helpers:
                return ast.copy_location(ast.Name(node.attr, ast.Load()), node)
            if node.attr not in self.names:
                raise ExportError(f"the {self.target} target has no translation of numpy.{node.attr}, which the "
                                  "closed form uses")
            return ast.copy_location(ast.Attribute(ast.Name(self.module, ast.Load()), self.names[node.attr],
                                                   ast.Load()), node)
        return node


def _definitions(helpers_file: Path) -> dict[str, ast.FunctionDef]:
    return {node.name: node for node in ast.parse(helpers_file.read_text()).body if isinstance(node, ast.FunctionDef)}


def helper_sources(target: str, helpers_file: Path, called: set[str], defined: set[str]) -> list[str]:
    """The source of every helper ``called`` names (and of the helpers those call), in the
    helpers file's order; a called name neither there nor ``defined`` raises ExportError."""
    definitions = _definitions(helpers_file)
    missing = sorted(called - set(definitions) - defined)
    if missing:
        raise ExportError(f"the {target} target has no translation of {missing[0]!r}, which the closed form uses")
    needed, todo = set(), sorted(called & set(definitions))
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += [n.id for n in ast.walk(definitions[name]) if isinstance(n, ast.Name) and n.id in definitions]
    return [ast.unparse(definitions[name]) for name in definitions if name in needed]
