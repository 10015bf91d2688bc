"""The ``c_scalar`` backend: functions of many scalar symbols as straight-line C.

For the plain-SymPy form of a problem -- an expression of ``x0 .. x999``, the gradient a
list of 1,000 scalar closed forms -- the NumPy backend pays a NumPy scalar operation per
node and an array per output.  Here every output is one C statement of one function
``sg_kernel(const double* x, double* out)`` over a packed input vector, after symgrad's
CSE.  :meth:`ScalarFunction.call_packed` calls it with a float64 vector and returns the
vector of outputs with no per-argument Python work; calling the function like any
``CompiledFunction`` (one argument per symbol) works too, at Python's cost per argument.

Compiled at ``-O0``: GCC's optimiser is superlinear in the size of one basic block (7 s at
``-O1`` for the 1,000-variable Rosenbrock gradient, 0.5 s at ``-O0``, measured in
``benchmarks/``), and straight-line code with no loops gains little from it.  Every input
and output must be a scalar (shape ``()``); arrays go to ``c_fused``.
"""
from __future__ import annotations

import ctypes
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ...core.symbols import shape_of
from . import Backend, BackendInputError, NativeFunction, UnsupportedExpressionError
from .c_code import C_HEADER, CPrinter, check_translatable, cut_reductions, plan, split_reduction
from .cbuild import load_c

__all__ = ["CScalarBackend", "ScalarFunction", "FLAGS"]

FLAGS = ["-O0", "-fno-math-errno", "-ffp-contract=off", "-shared", "-fPIC"]
"""No optimisation: see the module docstring."""


class CScalarBackend(Backend):
    """Functions of scalar symbols as one straight-line C function over a packed vector."""

    name = "c_scalar"
    summary = "functions of many scalar symbols as straight-line C over a packed vector"

    def compile(self, inputs, outputs, **options) -> "ScalarFunction":  # noqa: D102
        return ScalarFunction(inputs, outputs, **options)


class ScalarFunction(NativeFunction):
    """Straight-line C over scalar inputs and outputs (see the module docstring).

    >>> x, y = sp.symbols("x y", real=True)
    >>> f = ScalarFunction([x, y], [x * sp.sin(y), x * sp.cos(y)], output_names=["dy", "dx"])
    >>> f(2.0, 0.0)
    Outputs(dy=array(0.), dx=array(2.))
    >>> f.call_packed(np.array([2.0, 0.0]))
    array([0., 2.])
    """

    backend = "c_scalar"

    def __init__(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], **options: Any) -> None:
        super().__init__(inputs, outputs, **options)
        for name, shape in zip(self.inputs, self.input_shapes):
            if shape != ():
                raise UnsupportedExpressionError(
                    f"the c_scalar backend compiles functions of scalar symbols, but input {name!r} has shape "
                    f"{shape}; use backend='c_fused' (or 'c') for arrays, or backend='numpy'")
        bodies, _ = cut_reductions([body for _, body in (split_reduction(e) for e in self.exprs.values())])
        for name, body, shape in zip(self.outputs, bodies, self.output_shapes):
            if shape_of(body) != () or shape != ():
                raise UnsupportedExpressionError(
                    f"the c_scalar backend computes scalar outputs, but output {name!r} has shape {shape}; "
                    "use backend='c_fused' (or 'c'), or backend='numpy'")
        check_translatable(bodies, self.outputs, self.backend)
        order, temps, constants = plan(bodies)
        self.n_temporaries = len(order)
        printer = CPrinter({s: f"x[{i}]" for i, s in enumerate(self.symbols)}, temps, constants)
        self.source = "\n".join([
            C_HEADER, "",
            "void sg_kernel(const double* restrict x, double* restrict out) {",
            *[f"    const double {temps[node]} = {printer.define(node)};" for node in order],
            *[f"    out[{k}] = {printer.print(body)};" for k, body in enumerate(bodies)],
            "}", ""])
        library, self.library_path = load_c(self.source, FLAGS)
        self.fn = library.sg_kernel
        self.fn.restype = None
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

    def call_packed(self, x: np.ndarray) -> np.ndarray:
        """All outputs as one float64 vector, from all inputs as one vector (in the order
        of ``inputs``): the fast way to call a function of many scalars."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (len(self.inputs),):
            raise BackendInputError(f"{self.name}.call_packed takes a vector of its {len(self.inputs)} inputs, "
                                    f"got shape {x.shape}")
        out = np.empty(len(self.outputs))
        self.fn(x.ctypes.data, out.ctypes.data)
        return out

    def _run(self, arrays: list) -> list:
        out = self.call_packed(np.array([float(a) for a in arrays]))
        return [np.asarray(v) for v in out]
