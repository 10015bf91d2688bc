"""Sums and means over some axes of an elementwise closed form, as one C loop nest.

``sum(body, dim=d)``, ``mean(body, dim=d)`` (``keepdim`` or not) and ``sum_to(body,
shape)`` (the adjoint of broadcasting), when the reduced axes are one axis or a run of
neighbouring axes: the body's shape is seen as ``(O, R, I)`` -- the axes before the run,
the run, the axes after it -- and

* for ``I > 1`` (a reduction over leading or middle axes: the column sums of a matrix)
  each output row ``out[o, :]`` starts at 0.0 and adds the body's rows ``r = 0, 1, ...``
  in order, vectorised along ``I``: NumPy's own order for such a reduction, so the
  result has the same bits;
* for ``I == 1`` (a reduction over the last axes: the row sums of a matrix) each output
  element is a vectorised sum over ``r`` (partial sums in another order than NumPy's
  pairwise summation: equal to rounding).

The body is evaluated point by point inside the loops (never stored), every input of
another shape broadcast to the body's shape first (a copy per call, as in
:mod:`.c_fused`); the outputs ``(o, i)`` are shared among the cores by the threads of
:mod:`.c_threads` (in tasks of whole output rows, or of :data:`BLOCK` elements along ``I``).  A mean
divides the sum by ``R`` at the end, as NumPy does.  Accumulators start at 0.0, as
NumPy's do (a sum of ``-0.0`` is ``0.0``).
"""
from __future__ import annotations

import ctypes
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ...core.symbols import postorder, shape_of, size_of
from ...forms.structural import Mean, Sum, SumTo
from . import NativeFunction, UnsupportedExpressionError
from .c_code import C_HEADER, CPrinter, check_translatable, plan
from .c_fused import FLAGS, PARALLEL_MIN, input_arguments, task_context, unpack_context
from .c_threads import runner
from .cbuild import load_c

__all__ = ["axis_run", "AxisReduction"]

BLOCK = 512
"""Output elements per task along ``I``."""


def axis_run(node: sp.Basic) -> tuple[int, int] | None:
    """``(first, stop)``: the run of neighbouring axes ``node`` sums over, if it is a
    ``sum``/``mean`` over some but not all axes of its argument or a ``sum_to``, and those
    axes are neighbours; else None.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x = ArrayVar("x", (2, 3, 4))
    >>> axis_run(Sum.of(x, dim=(1,), keepdim=False)), axis_run(SumTo.of(x, shape=(1, 4))), axis_run(Sum.of(x, dim=(0, 2), keepdim=True))
    ((1, 2), (0, 2), None)
    """
    if isinstance(node, (Sum, Mean)):
        shape = shape_of(node.arrays[0])
        axes = sorted(node.dims())
        if not axes or len(axes) == len(shape):
            return None
    elif isinstance(node, SumTo):
        shape = shape_of(node.arrays[0])
        target = tuple(node.attrs["shape"])
        lead = len(shape) - len(target)
        if lead < 0 or size_of(target) == 1:
            return None
        axes = list(range(lead)) + [lead + i for i, n in enumerate(target) if n == 1 and shape[lead + i] != 1]
        if not axes:
            return None
    else:
        return None
    if axes != list(range(axes[0], axes[-1] + 1)) or size_of(tuple(shape[a] for a in axes)) == 0:
        return None  # (an empty sum is NumPy's)
    return axes[0], axes[-1] + 1


class AxisReduction(NativeFunction):
    """One ``sum``/``mean``/``sum_to`` over a run of axes (:func:`axis_run`) of an
    elementwise body, compiled as a C loop nest (see the module docstring).

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x = ArrayVar("x", (2, 3))
    >>> f = AxisReduction([x], [Sum.of(sp.exp(x) * 0 + x, dim=(0,), keepdim=False)])
    >>> f(np.arange(6.0).reshape(2, 3)).out0
    array([3., 5., 7.])
    """

    backend = "c"
    parallel = True
    """Whether the outputs are shared among threads (see ``FusedFunction.parallel``)."""

    def __init__(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], **options: Any) -> None:
        super().__init__(inputs, outputs, **options)
        (node,) = self.exprs.values()
        run = axis_run(node)
        if run is None:
            raise UnsupportedExpressionError(f"not a reduction over neighbouring axes: {node}")
        body = node.arrays[0]
        check_translatable([body], self.outputs, "c", "a reduction over axes compiles an elementwise body; ")
        self.mean = isinstance(node, Mean)
        self.body_shape = tuple(shape_of(body))
        first, stop = run
        self.sizes = (size_of(self.body_shape[:first]), size_of(self.body_shape[first:stop]),
                      size_of(self.body_shape[stop:]))
        free = {n for n in postorder([body]) if isinstance(n, sp.Symbol)}
        self.used = [i for i, s in enumerate(self.symbols) if s in free]
        self.is_array = {i: self.input_shapes[i] != () for i in self.used}
        self.source = self._generate(body)
        library, self.library_path = load_c(self.source, FLAGS)
        self.fn = library.sg_kernel
        self.fn.restype = None
        self.fn.argtypes = [ctypes.c_void_p if self.is_array[i] else ctypes.c_double for i in self.used] + [
            ctypes.c_void_p, ctypes.c_void_p]

    def _generate(self, body: sp.Basic) -> str:
        O, R, I = self.sizes
        names = {self.symbols[i]: f"v{i}" for i in self.used}
        order, temps, constants = plan([body])
        self.n_temporaries = len(order)
        printer = CPrinter(names, temps, constants)
        point = [f"            const double v{i} = in{i}[p];" for i in self.used if self.is_array[i]]
        point += [f"            const double {temps[n]} = {printer.define(n)};" for n in order]
        value = printer.print(body)
        params = [f"const double* restrict in{i}" if self.is_array[i] else f"const double v{i}" for i in self.used]
        scale = f" / {float(R)!r}" if self.mean else ""
        if I == 1:  # sums along the last axes: one vectorised sum per output element (a task: `tasks` of them)
            rows = max(1, 4096 // R)
            tasks, work = -(-O // rows), O * R
            nest = [
                f"    for (long o = t * {rows}; o < {O} && o < (t + 1) * {rows}; o++) {{",
                "        double acc = 0.0;",
                "        #pragma omp simd reduction(+:acc)",
                f"        for (long r = 0; r < {R}; r++) {{",
                f"            const long p = o * {R} + r;",
                *point,
                f"            acc += {value};",
                "        }",
                f"        out[o] = acc{scale};",
                "    }",
            ]
        else:  # sums over leading or middle axes: rows added in order, vectorised along I (a task per o and block)
            per_o = -(-I // BLOCK)
            tasks, work = O * per_o, O * R * I
            nest = [
                f"    const long o = t / {per_o}, b = (t % {per_o}) * {BLOCK};",
                f"    const long e = b + {BLOCK} < {I} ? b + {BLOCK} : {I};",
                f"    double* restrict acc = out + o * {I};",
                "    for (long i = b; i < e; i++) acc[i] = 0.0;",
                f"    for (long r = 0; r < {R}; r++) {{",
                "        #pragma omp simd",
                "        for (long i = b; i < e; i++) {",
                f"        const long p = (o * {R} + r) * {I} + i;",
                *point,
                f"        acc[i] += {value};",
                "        }",
                "    }",
                *([f"    for (long i = b; i < e; i++) acc[i] = acc[i]{scale};"] if scale else []),
            ]
        params += ["double* restrict out"]
        return "\n".join([C_HEADER, "", *task_context(params),
                          "static void sg_task_rows(void* context, long t) {", *unpack_context(params), *nest, "}", "",
                          f"void sg_kernel({', '.join(params + ['sg_runner run'])}) {{",
                          f"    struct sg_context context = {{{', '.join(p.split()[-1] for p in params)}}};",
                          f"    if (run && {work} >= {PARALLEL_MIN}) run({tasks}, sg_task_rows, &context);",
                          f"    else for (long t = 0; t < {tasks}; t++) sg_task_rows(&context, t);",
                          "}", ""])

    def _run(self, arrays: list) -> list:
        args, keep = input_arguments(arrays, self.used, self.is_array, self.body_shape)  # keep: alive past the call
        O, _, I = self.sizes
        out = np.empty(O * I)
        args.append(out.ctypes.data)
        self.fn(*args, runner() if self.parallel else None)
        return [out.reshape(self.output_shapes[0])]
