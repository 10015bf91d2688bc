"""What every export target starts from: a function's value and gradient in closed form.

:func:`derive` traces ``f`` at example arguments with :func:`symgrad.value_and_grad` and
keeps what a writer needs (:class:`Program`): the inputs (names, shapes, dtypes), which
of them are differentiated, the SymPy closed forms of the value and of each gradient,
and two references for verification -- symgrad's compiled closed form and the eager
tape engine -- as functions of the inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp

from .errors import ExportError


@dataclass
class Program:
    """A traced function's value and gradient, ready to be written in another language."""

    name: str
    input_names: list[str]
    input_shapes: list[tuple]
    input_dtypes: list[np.dtype]
    wrt: list[int]                      # positions (in ``input_names``) of the differentiated inputs
    symbols: list[sp.Symbol]
    value: sp.Expr
    grads: list[sp.Expr]
    examples: list[np.ndarray]          # the example values of the inputs
    symbolic_reference: Callable = field(repr=False)   # inputs -> [value, *grads], symgrad's closed form
    tape_reference: Callable = field(repr=False)       # inputs -> [value, *grads], the eager tape engine

    @property
    def grad_names(self) -> list[str]:
        return [f"grad_{self.input_names[i]}" for i in self.wrt]

    @property
    def output_names(self) -> list[str]:
        return ["value"] + self.grad_names

    def closed_forms(self) -> dict[str, sp.Expr]:
        return dict(zip(self.output_names, [self.value] + self.grads))


def _is_dynamic(value: Any) -> bool:
    """Whether a transform traces ``value`` (an array, tensor or float) rather than keeping it static."""
    from ..tape import Tensor

    if isinstance(value, (bool, int, str, type(None), np.integer)):
        return False
    return isinstance(value, (float, np.floating, np.ndarray, Tensor))


def derive(f: Callable, example_args: Sequence[Any], argnums: Any, static_argnums: Any) -> Program:
    """Trace ``f`` at ``example_args`` and derive its value and gradient in closed form."""
    from ..symbolic.transforms import value_and_grad
    from ..tape import Tensor, backward_engine, tensor

    if not callable(f):
        raise ExportError(f"export needs a Python function, got {type(f).__name__}")
    static = {static_argnums} if isinstance(static_argnums, int) else set(static_argnums)
    argnum_list = [argnums] if isinstance(argnums, int) else list(argnums)
    args = list(example_args)
    positions = [i for i, a in enumerate(args) if i not in static and _is_dynamic(a)]
    for i in argnum_list:
        if i not in positions:
            raise ExportError(f"argnums names argument {i}, which is not a traced array among the example "
                              f"arguments (traced positions: {positions})")
    vg = value_and_grad(f, argnums=argnums, static_argnums=static_argnums)
    vg(*args)
    compiled = vg.compiled
    if len(compiled.symbols) != len(positions):
        raise ExportError(f"cannot export {getattr(f, '__name__', f)}: for its {len(positions)} array arguments "
                          f"its closed form reads the inputs {compiled.inputs}, some of which symgrad computes from the arguments "
                          "(or captures) at every call -- integer class labels used as indices, say; pass them as "
                          "floating arrays (one-hot targets) or as arguments")
    examples = [np.asarray(args[i].detach().numpy() if isinstance(args[i], Tensor) else args[i]) for i in positions]

    def with_inputs(values: Sequence[np.ndarray]) -> list:
        call = list(args)
        for i, v in zip(positions, values):
            call[i] = v
        return call

    single = isinstance(argnums, int)

    def symbolic_reference(values: Sequence[np.ndarray]) -> list:
        value, grads = vg(*with_inputs(values))
        return [np.asarray(value)] + ([np.asarray(grads)] if single else [np.asarray(g) for g in grads])

    def tape_reference(values: Sequence[np.ndarray]) -> list:
        call = with_inputs(values)
        leaves = {i: tensor(np.array(call[i]), requires_grad=True) for i in argnum_list}
        for i, leaf in leaves.items():
            call[i] = leaf
        with backward_engine("tape"):
            out = f(*call)
            out.backward()
        return [np.asarray(out.detach().numpy())] + [np.asarray(leaves[i].grad.numpy()) for i in argnum_list]

    exprs = compiled.exprs
    return Program(
        name=getattr(f, "__name__", "f").replace("<lambda>", "f"),
        input_names=list(compiled.inputs),
        input_shapes=[tuple(e.shape) for e in examples],
        input_dtypes=[e.dtype for e in examples],
        wrt=[positions.index(i) for i in argnum_list],
        symbols=list(compiled.symbols),
        value=exprs["value"],
        grads=[exprs[name] for name in compiled.outputs[1:1 + len(argnum_list)]],
        examples=examples,
        symbolic_reference=symbolic_reference,
        tape_reference=tape_reference,
    )
