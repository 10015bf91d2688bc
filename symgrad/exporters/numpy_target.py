"""The ``"numpy"`` export target: one ``.py`` module whose only import is NumPy.

The module defines ``value(...)``, ``grad(...)`` and ``value_and_grad(...)`` of the
exported function's array inputs.  Each is the code :func:`~symgrad.symbolic.codegen.compile.compile_exprs`
generates, rewritten for reading: temporaries ``t0, t1, ...``, one named assignment per
output preceded by its closed form as a comment, and the inputs' shapes checked.  The
helpers the code calls are copied in by :mod:`.inline`.  The module docstring holds the
closed forms and the shapes and dtypes they were derived for.
"""
from __future__ import annotations

import ast
import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import sympy as sp

from ..symbolic.codegen.compile import compile_exprs
from ..symbolic.forms.structural import numpy_namespace
from .inline import inline_helpers
from .program import Program

SUFFIXES = (".py",)
FUNCTIONS = ("value", "grad", "value_and_grad")

_CHECK_INPUT = '''
def _checked(name, array, shape):
    """``array`` as a NumPy array, if it has the shape this module was derived for."""
    array = numpy.asarray(array)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, the shape this module was derived for; got {array.shape}")
    return array
'''.strip()


def describe_inputs(program: Program) -> list[str]:
    """One line per input: its name, shape and dtype, and whether it is differentiated."""
    return [f"{n}: shape {s}, {d}" + (" (differentiated)" if i in program.wrt else "")
            for i, (n, s, d) in enumerate(zip(program.input_names, program.input_shapes, program.input_dtypes))]


def closed_form_lines(program: Program) -> list[str]:
    """``name = closed form`` for the value and each gradient, wrapped at 96 characters."""
    lines = []
    for name, expr in program.closed_forms().items():
        lines += textwrap.wrap(f"{name} = {sp.sstr(expr)}", 96, subsequent_indent="    ", break_long_words=False)
    return lines


class _Temporaries(ast.NodeTransformer):
    """Renames the compiler's temporaries ``_t0`` to ``t0`` (when that name is free)."""

    def __init__(self, taken: set[str]) -> None:
        self.taken = taken

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if re.fullmatch(r"_t\d+", node.id) and node.id[1:] not in self.taken:
            node.id = node.id[1:]
        return node


def generated_function(program: Program, name: str, outputs: list[str], exprs: list[sp.Expr], result: str,
                       summary: str, rewrite: ast.NodeTransformer | None = None) -> tuple[str, set[str]]:
    """One exported function's source from the NumPy code symgrad generates for ``exprs``
    (``rewrite`` translates it for another target), and the global names it reads."""
    compiled = compile_exprs(program.symbols, exprs, input_names=program.input_names, output_names=outputs,
                             name=name, cache=False, backend="numpy")
    tree = ast.parse(compiled.source)
    function = tree.body[0]
    taken = set(program.input_names) | set(outputs) | set(FUNCTIONS)
    function = _Temporaries(taken).visit(function)
    if rewrite is not None:
        function = rewrite.visit(function)
    *steps, returned = function.body
    lines = [f"def {name}({', '.join(program.input_names)}):", f'    """{summary}"""']
    for input_name, shape in zip(program.input_names, program.input_shapes):
        lines.append(f"    {input_name} = _checked({input_name!r}, {input_name}, {shape!r})")
    lines += [f"    {ast.unparse(step)}" for step in steps]
    for output, expr, node in zip(outputs, exprs, returned.value.elts):
        lines += [f"    # {line}" for line in textwrap.wrap(f"{output} = {sp.sstr(expr)}", 92, break_long_words=False)]
        lines.append(f"    {output} = {ast.unparse(node)}")
    lines.append(f"    return {result}")
    names = [n for n in ast.walk(function) if isinstance(n, ast.Name)]
    assigned = {n.id for n in names if isinstance(n.ctx, ast.Store)} | set(program.input_names)
    called = {n.id for n in names if isinstance(n.ctx, ast.Load)} - assigned
    return "\n".join(lines), called


def exported_functions(program: Program, rewrite: ast.NodeTransformer | None = None) -> list[tuple[str, set[str]]]:
    """``value``, ``grad`` and ``value_and_grad``: each one's source and the names it calls."""
    grads = program.grad_names
    grad_result = grads[0] if len(grads) == 1 else f"({', '.join(grads)})"
    wrt = ", ".join(program.input_names[i] for i in program.wrt)
    return [
        generated_function(program, "value", ["value"], [program.value], "value", f"The value of {program.name}.",
                           rewrite),
        generated_function(program, "grad", grads, program.grads, grad_result,
                           f"The gradient of {program.name} with respect to {wrt}.", rewrite),
        generated_function(program, "value_and_grad", ["value"] + grads, [program.value] + program.grads,
                           f"value, {grad_result}",
                           f"The value of {program.name} and its gradient with respect to {wrt}.", rewrite),
    ]


def module_docstring(program: Program, imports: str, extra: Sequence[str] = ()) -> str:
    """The docstring of an exported Python module: its functions, inputs and closed forms."""
    args = ", ".join(program.input_names)
    doc = [f"Value and gradient of {program.name}, exported by symgrad and verified against its engines.", "",
           "Functions: value({0}), grad({0}), value_and_grad({0}).".format(args), *extra,
           f"The only import is {imports}.", "", "Derived for the inputs:"]
    doc += [f"    {line}" for line in describe_inputs(program)]
    doc += ["", "Closed forms:"] + [f"    {line}" for line in closed_form_lines(program)]
    return '"""' + "\n".join(doc) + '\n"""'


def write(program: Program) -> dict[str, str]:
    """The module's source, under its suffix."""
    functions = exported_functions(program)
    namespace = numpy_namespace()
    used = set().union(*(called for _, called in functions)) & set(namespace)
    helpers = inline_helpers(used, namespace, set(program.input_names) | set(FUNCTIONS))
    parts = [module_docstring(program, "NumPy"), "import numpy", _CHECK_INPUT]
    parts += [source for source, _ in functions]
    parts += ["# Helpers copied from symgrad's NumPy namespace, so that this module needs only NumPy."] + helpers
    return {".py": "\n\n\n".join(parts) + "\n"}


_LOADED = iter(range(sys.maxsize))


def import_fresh(path: Path):
    """The Python module written at ``path``, imported in a fresh namespace (a module of
    its own, under a new name, not in ``sys.modules``): how every Python target's draft is
    loaded to be verified."""
    spec = importlib.util.spec_from_file_location(f"symgrad_export_check_{next(_LOADED)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(paths: Sequence[Path], program: Program) -> Callable[[Sequence[np.ndarray]], list]:
    """Import the written module in a fresh namespace (a module of its own, not in
    ``sys.modules``): ``inputs -> [(label, output index, array), ...]`` for every output
    of ``value``, ``grad`` and ``value_and_grad``."""
    module = import_fresh(paths[0])
    return lambda values: labelled_outputs(module.value, module.grad, module.value_and_grad, values, program)


def labelled_outputs(value: Callable, grad: Callable, value_and_grad: Callable, values: Sequence,
                     program: Program) -> list:
    """Every output of an exported ``value``, ``grad`` and ``value_and_grad``, labelled."""
    several = len(program.wrt) > 1
    value_of_both, grads_of_both = value_and_grad(*values)
    grads_alone = grad(*values)
    results = [("value_and_grad(...)[0]", 0, value_of_both), ("value(...)", 0, value(*values))]
    for k, name in enumerate(program.grad_names):
        results.append((f"value_and_grad(...) {name}", k + 1, grads_of_both[k] if several else grads_of_both))
        results.append((f"grad(...) {name}", k + 1, grads_alone[k] if several else grads_alone))
    return results
