"""The ``"torch"`` export target: a module whose only import is torch.

It holds ``value``, ``grad`` and ``value_and_grad`` in torch ops -- symgrad's generated
NumPy code translated by :mod:`.translate`: every ``numpy.<name>`` replaced by its torch
function (:data:`TORCH_NAMES`) and every helper by its translation in :mod:`.torch_helpers` --
and a ``torch.autograd.Function`` subclass whose ``forward`` is ``value`` and whose
``backward`` is the closed-form ``grad`` times the upstream gradient, with a function of
the program's name that applies it.  A NumPy function or helper with no translation
raises :class:`~symgrad.exporters.errors.ExportError` naming it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .errors import ExportError
from .numpy_target import exported_functions, import_fresh, labelled_outputs, module_docstring
from .program import Program
from .translate import NumPyNames, helper_sources

SUFFIXES = (".py",)

TORCH_NAMES = {
    **{name: name for name in (
        "exp", "log", "sin", "cos", "tan", "tanh", "sinh", "cosh", "sqrt", "abs", "sign", "floor", "ceil", "where",
        "expm1", "log1p", "log2", "log10", "exp2", "swapaxes", "reshape", "pi",
        "e", "inf", "nan", "logical_not", "logical_and", "logical_or")},
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "arcsinh": "asinh",
    "arccosh": "acosh", "arctanh": "atanh", "power": "pow", "transpose": "permute", "greater": "gt",
    "greater_equal": "ge", "less": "lt", "less_equal": "le", "not_equal": "ne",
}
"""``numpy.<name>`` in generated code -> ``torch.<name>`` (same arguments)."""

TENSORS_ONLY = ("maximum", "minimum", "logaddexp", "arctan2")
"""NumPy functions whose torch counterparts take no Python number (``maximum(z, 0)``):
``numpy.<name>`` becomes the helper of that name in :mod:`.torch_helpers`, which makes
numbers tensors first."""

HELPERS_FILE = Path(__file__).with_name("torch_helpers.py")

_CHECK_INPUT = '''
def _checked(name, array, shape):
    """``array`` as a tensor, if it has the shape this module was derived for."""
    array = torch.as_tensor(array)
    if tuple(array.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, the shape this module was derived for; "
                         f"got {tuple(array.shape)}")
    return array
'''.strip()


def _class_name(program: Program) -> str:
    return "".join(part[:1].upper() + part[1:] for part in program.name.split("_") if part) + "Function"


def _autograd_function(program: Program) -> str:
    names = program.input_names
    args = ", ".join(names)
    grads = program.grad_names
    wrt = [names[i] for i in program.wrt]
    returned = ", ".join(f"g * {grads[program.wrt.index(i)]}" if i in program.wrt else "None"
                         for i in range(len(names)))
    fixed = [(i, n) for i, n in enumerate(names) if i not in program.wrt]
    lines = [
        f"class {_class_name(program)}(torch.autograd.Function):",
        f'    """{program.name} whose backward is its closed-form gradient with respect to {", ".join(wrt)}."""',
        "",
        "    @staticmethod",
        f"    def forward(ctx, {args}):",
        f"        ctx.save_for_backward({args}{',' if len(names) == 1 else ''})",
        f"        return value({args})",
        "",
        "    @staticmethod",
        "    @torch.autograd.function.once_differentiable",
        "    def backward(ctx, g):",
        f"        {args}{',' if len(names) == 1 else ''} = ctx.saved_tensors",
    ]
    for i, name in fixed:
        lines += [f"        if ctx.needs_input_grad[{i}]:",
                  f'            raise RuntimeError("this export differentiates {", ".join(wrt)} only, not {name}")']
    lines += [f"        {', '.join(grads)}{',' if len(grads) == 1 and len(wrt) > 1 else ''} = grad({args})",
              f"        return {returned}",
              "", "",
              f"def {program.name}({args}):",
              f'    """{program.name}({args}) as a differentiable torch function (through '
              f'{_class_name(program)})."""',
              f"    return {_class_name(program)}.apply({args})"]
    return "\n".join(lines)


def write(program: Program) -> dict[str, str]:
    """The module's source, under its suffix."""
    if not program.name.isidentifier() or program.name in {"value", "grad", "value_and_grad", "torch"}:
        raise ExportError(f"the torch target names a function after the exported one, and {program.name!r} cannot "
                          "be that name; export a function defined with def")
    functions = exported_functions(program, NumPyNames("torch", "torch", TORCH_NAMES, TENSORS_ONLY))
    called = set().union(*(names for _, names in functions))
    helpers = helper_sources("torch", HELPERS_FILE, called, {"torch", "_checked"})
    doc = module_docstring(program, "torch", [f"{program.name}({', '.join(program.input_names)}): through "
                                              f"{_class_name(program)}, a torch.autograd.Function."])
    parts = [doc, "import torch", _CHECK_INPUT] + [source for source, _ in functions]
    parts += [_autograd_function(program)]
    parts += ["# Torch translations of symgrad's helpers."] + helpers
    return {".py": "\n\n\n".join(parts) + "\n"}


def load(paths: Sequence[Path], program: Program) -> Callable[[Sequence[np.ndarray]], list]:
    """Import the written module in a fresh namespace: ``inputs -> [(label, output index,
    array)]`` for ``value``, ``grad``, ``value_and_grad`` and the Function's backward."""
    try:
        import torch
    except ImportError:
        raise ExportError("the torch target verifies the written code with torch, which is not installed: "
                          "pip install torch") from None
    module = import_fresh(paths[0])

    def as_numpy(value):
        if isinstance(value, tuple):
            return tuple(as_numpy(v) for v in value)
        return value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)

    def on_numpy(fn: Callable) -> Callable:
        return lambda *values: as_numpy(fn(*[torch.from_numpy(np.array(v)) for v in values]))

    def outputs(values: Sequence[np.ndarray]) -> list:
        results = labelled_outputs(on_numpy(module.value), on_numpy(module.grad), on_numpy(module.value_and_grad),
                                   values, program)
        leaves = [torch.from_numpy(np.array(v)).requires_grad_(i in program.wrt) for i, v in enumerate(values)]
        out = getattr(module, program.name)(*leaves)
        out.backward()
        results.append((f"{_class_name(program)} forward", 0, as_numpy(out)))
        results += [(f"{_class_name(program)} backward {name}", k + 1, leaves[i].grad.numpy())
                    for k, (i, name) in enumerate(zip(program.wrt, program.grad_names))]
        return results

    return outputs
