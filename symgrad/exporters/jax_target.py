"""The ``"jax"`` export target: a module whose only import is JAX, with a ``jax.custom_vjp``.

It holds ``value``, ``grad`` and ``value_and_grad`` in ``jax.numpy`` -- symgrad's generated
NumPy code translated by :mod:`.translate` (``numpy.<name>`` as ``jnp.<name>``, helpers from
:mod:`.jax_helpers`, and the in-place ``t[index] += v`` as ``t = t.at[index].add(v)``) --
and a function named after the exported one, a ``jax.custom_vjp`` whose backward is the
closed-form gradient times the cotangent.  Inputs that were not differentiated get a NaN
cotangent, so differentiating with respect to them fails loudly instead of giving zeros.
The code computes in float64 only with ``jax_enable_x64`` on (JAX's default is float32);
verification turns it on.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import ExportError
from .numpy_target import exported_functions, import_fresh, labelled_outputs, module_docstring
from .program import Program
from .translate import NUMPY_AS_HELPERS, NumPyNames, helper_sources
from .torch_target import TENSORS_ONLY, TORCH_NAMES

SUFFIXES = (".py",)

JAX_NAMES = {name: name for name in (*TORCH_NAMES, *TENSORS_ONLY) if name not in NUMPY_AS_HELPERS}
"""``numpy.<name>`` -> ``jnp.<name>``: ``jax.numpy`` spells every name the torch target translates as NumPy does."""

HELPERS_FILE = Path(__file__).with_name("jax_helpers.py")

_CHECK_INPUT = '''
def _checked(name, array, shape):
    """``array`` as a JAX array, if it has the shape this module was derived for."""
    array = jnp.asarray(array)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, the shape this module was derived for; got {array.shape}")
    return array
'''.strip()


class _ToJax(NumPyNames):
    """:class:`NumPyNames` for ``jnp``, and ``t[index] += v`` as ``t = t.at[index].add(v)`` (JAX arrays are immutable)."""

    def __init__(self) -> None:
        super().__init__("jax", "jnp", JAX_NAMES)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        target = node.target
        if not (isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name)
                and isinstance(node.op, ast.Add)):
            raise ExportError(f"the jax target cannot translate the in-place statement {ast.unparse(node)!r}")
        at = ast.Subscript(ast.Attribute(ast.Name(target.value.id, ast.Load()), "at", ast.Load()), target.slice,
                           ast.Load())
        call = ast.Call(ast.Attribute(at, "add", ast.Load()), [node.value], [])
        return ast.copy_location(ast.Assign([ast.Name(target.value.id, ast.Store())], call, lineno=node.lineno), node)


def _custom_vjp(program: Program) -> str:
    name, names = program.name, program.input_names
    args = ", ".join(names)
    wrt = [names[i] for i in program.wrt]
    grads = program.grad_names
    cotangents = ", ".join(f"g * {grads[program.wrt.index(i)]}" if i in program.wrt
                           else f"jnp.full_like({n}, jnp.nan)" for i, n in enumerate(names))
    return "\n".join([
        "@jax.custom_vjp",
        f"def {name}({args}):",
        f'    """{name}({args}), differentiable in {", ".join(wrt)} by its closed-form gradient (a jax.custom_vjp;',
        '    the cotangent of any other input is NaN: it was not differentiated at export)."""',
        f"    return value({args})",
        "", "",
        f"def _{name}_forward({args}):",
        f"    return value({args}), ({args}{',' if len(names) == 1 else ''})",
        "", "",
        f"def _{name}_backward(saved, g):",
        f"    {args}{',' if len(names) == 1 else ''} = saved",
        f"    {', '.join(grads)} = grad({args})",
        f"    return ({cotangents}{',' if len(names) == 1 else ''})",
        "", "",
        f"{name}.defvjp(_{name}_forward, _{name}_backward)",
    ])


def write(program: Program) -> dict[str, str]:
    """The module's source, under its suffix."""
    if not program.name.isidentifier() or program.name in {"value", "grad", "value_and_grad", "jax", "jnp"}:
        raise ExportError(f"the jax target names a function after the exported one, and {program.name!r} cannot "
                          "be that name; export a function defined with def")
    functions = exported_functions(program, _ToJax())
    called = set().union(*(names for _, names in functions))
    helpers = helper_sources("jax", HELPERS_FILE, called, {"jnp", "_checked"})
    doc = module_docstring(program, "JAX", [
        f"{program.name}({', '.join(program.input_names)}): a jax.custom_vjp with the closed-form gradient.",
        "Float64 results need jax.config.update('jax_enable_x64', True) (JAX computes in float32 by default)."])
    parts = [doc, "import jax\nimport jax.numpy as jnp", _CHECK_INPUT] + [source for source, _ in functions]
    parts += [_custom_vjp(program), "# JAX translations of symgrad's helpers."] + helpers
    return {".py": "\n\n\n".join(parts) + "\n"}


def load(paths: Sequence[Path], program: Program) -> Callable[[Sequence[np.ndarray]], list]:
    """Import the written module in a fresh namespace: ``inputs -> [(label, output index,
    array)]`` for ``value``, ``grad``, ``value_and_grad`` and ``jax.value_and_grad`` through
    the custom VJP, computed with ``jax_enable_x64`` on."""
    try:
        import jax
    except ImportError:
        raise ExportError("the jax target verifies the written code with JAX, which is not installed: "
                          "pip install jax") from None
    module = import_fresh(paths[0])

    def as_numpy(value):
        return tuple(as_numpy(v) for v in value) if isinstance(value, tuple) else np.asarray(value)

    def outputs(values: Sequence[np.ndarray]) -> list:
        with jax.enable_x64(True):
            results = labelled_outputs(lambda *v: as_numpy(module.value(*v)), lambda *v: as_numpy(module.grad(*v)),
                                       lambda *v: as_numpy(module.value_and_grad(*v)), values, program)
            value, grads = jax.value_and_grad(getattr(module, program.name), argnums=tuple(program.wrt))(*values)
            results.append((f"jax.value_and_grad({program.name}) value", 0, np.asarray(value)))
            results += [(f"jax.value_and_grad({program.name}) {name}", k + 1, np.asarray(g))
                        for k, (name, g) in enumerate(zip(program.grad_names, grads))]
        return results

    return outputs
