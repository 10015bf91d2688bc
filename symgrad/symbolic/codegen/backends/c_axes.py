"""Sums, means, maxima, ``logsumexp`` and ``softmax`` over some axes of an elementwise
closed form, as one C loop nest.

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

``max``/``min``/``amax``/``amin`` (the value: their gradients' masks are NumPy's),
``logsumexp`` and ``softmax`` over such a run of axes (all of them too) take the same
``(O, R, I)`` view: the extreme of each output element in order along ``r`` (NaN if any
is NaN; at a tie of ``-0.0`` and ``0.0`` the later, as NumPy's reduction gives at the
tested points), and then NumPy's forwards (``ops/reductions.py``) in C: the maximum made
0 where it is not finite, the sum of ``exp(body - m)`` (rows in order for ``I > 1``),
``log(s) + m`` or ``exp(body - m) / s``.  The body is evaluated two or three times and
never stored; ``exp`` and ``log`` are libmvec's (within 4 ulp of NumPy's).
"""
from __future__ import annotations

import ctypes
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ...core.symbols import postorder, shape_of, size_of
from ...forms.selections import Compare, LogicalAnd, LogicalNot, LogicalOr
from ...forms.structural import Amax, Amin, Logsumexp, Max, Mean, Min, Softmax, Sum, SumTo, _norm_dims
from . import NativeFunction, UnsupportedExpressionError
from .c_code import C_HEADER, CPrinter, check_translatable, plan
from .c_fused import FLAGS, PARALLEL_MIN, input_arguments, task_context, unpack_context
from .c_threads import runner
from .cbuild import load_c

__all__ = ["axis_run", "AxisReduction"]

BLOCK = 512
"""Output elements per task along ``I``."""


_MODES = {Sum: "sum", Mean: "sum", SumTo: "sum", Max: "max", Amax: "max", Min: "min", Amin: "min",
          Logsumexp: "logsumexp", Softmax: "softmax"}
"""What each node type computes along its axes (see :class:`AxisReduction`)."""

_BOOLEAN = (Compare, LogicalAnd, LogicalOr, LogicalNot, sp.logic.boolalg.BooleanFunction,
            sp.core.relational.Relational)


def axis_run(node: sp.Basic) -> tuple[int, int] | None:
    """``(first, stop)``: the run of neighbouring axes ``node`` reduces over, if it is a
    ``sum``/``mean`` over some but not all axes of its argument (a full one is a fused
    loop's), a ``sum_to``, or a ``max``/``min``/``amax``/``amin``/``logsumexp``/``softmax``
    over some or all axes of a numeric argument, and those axes are neighbours; else None.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> x = ArrayVar("x", (2, 3, 4))
    >>> axis_run(Sum.of(x, dim=(1,), keepdim=False)), axis_run(SumTo.of(x, shape=(1, 4))), axis_run(Sum.of(x, dim=(0, 2), keepdim=True))
    ((1, 2), (0, 2), None)
    >>> axis_run(Softmax.of(x, dim=-1)), axis_run(Logsumexp.of(x, dim=None, keepdim=False))
    ((2, 3), (0, 3))
    """
    mode = _MODES.get(type(node))
    if mode is None:
        return None
    body = node.arrays[0]
    shape = shape_of(body)
    if isinstance(node, SumTo):
        target = tuple(node.attrs["shape"])
        lead = len(shape) - len(target)
        if lead < 0 or size_of(target) == 1:
            return None
        axes = list(range(lead)) + [lead + i for i, n in enumerate(target) if n == 1 and shape[lead + i] != 1]
    elif isinstance(node, Softmax):
        axes = sorted(_norm_dims(node.attrs["dim"], len(shape))) if shape else []
    else:
        axes = sorted(node.dims())
        if mode == "sum" and len(axes) == len(shape):
            return None
    if not axes or (mode != "sum" and isinstance(body, _BOOLEAN)):
        return None
    if axes != list(range(axes[0], axes[-1] + 1)) or size_of(tuple(shape[a] for a in axes)) == 0:
        return None  # (an empty reduction is NumPy's)
    return axes[0], axes[-1] + 1


class AxisReduction(NativeFunction):
    """One ``sum``/``mean``/``sum_to``/``max``/``min``/``amax``/``amin``/``logsumexp``/``softmax``
    over a run of axes (:func:`axis_run`) of an elementwise body, compiled as a C loop nest
    (see the module docstring).

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
        self.mode = _MODES[type(node)]
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
        if self.mode != "sum":
            nest, tasks = self._extremes(point, value)
            work = O * R * I
        elif I == 1:  # sums along the last axes: one vectorised sum per output element (a task: `tasks` of them)
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

    def _extremes(self, point: list, value: str) -> tuple[list, int]:
        """The C lines of one task of a max, min, logsumexp or softmax along ``R`` and the
        number of tasks: per output element (vectorised along ``I``, in blocks, when
        ``I > 1``) the extreme ``m`` of the body (NaN if any is NaN, as NumPy's); then, as
        NumPy's ``logsumexp``/``softmax`` forwards (``ops/reductions.py``), ``m`` made 0
        where it is not finite, ``s`` the sum of ``exp(body - m)`` (rows in order along
        ``I > 1``: NumPy's order; a vectorised sum along the last axes: equal to
        rounding), and ``log(s) + m`` or each ``exp(body - m) / s``."""
        O, R, I = self.sizes
        pick = "sg_maximum" if self.mode != "min" else "sg_minimum"
        start = "-INFINITY" if self.mode != "min" else "INFINITY"
        shift = self.mode in ("logsumexp", "softmax")
        if I == 1:  # along the last axes: one output row per task
            lines = [f"    const long o = t;", f"    double m = {start};",
                     f"    for (long r = 0; r < {R}; r++) {{", f"        const long p = o * {R} + r;", *point,
                     f"        m = {pick}(m, {value});", "    }"]
            if shift:
                lines += ["    m = sg_select(isfinite(m), m, 0.0);", "    double s = 0.0;",
                          "    #pragma omp simd reduction(+:s)", f"    for (long r = 0; r < {R}; r++) {{",
                          f"        const long p = o * {R} + r;", *point, f"        s += sg_exp({value} - m);", "    }"]
            if self.mode == "softmax":
                lines += ["    #pragma omp simd", f"    for (long r = 0; r < {R}; r++) {{",
                          f"        const long p = o * {R} + r;", *point, f"        out[p] = sg_exp({value} - m) / s;", "    }"]
            else:
                lines.append("    out[o] = sg_log(s) + m;" if shift else "    out[o] = m;")
            return lines, O
        per_o = -(-I // BLOCK)

        def rows(statement: str) -> list:
            return [f"    for (long r = 0; r < {R}; r++) {{", "        #pragma omp simd",
                    "        for (long i = b; i < e; i++) {", f"        const long p = (o * {R} + r) * {I} + i;",
                    *point, f"        {statement}", "        }", "    }"]

        lines = [f"    const long o = t / {per_o}, b = (t % {per_o}) * {BLOCK};",
                 f"    const long e = b + {BLOCK} < {I} ? b + {BLOCK} : {I};",
                 f"    double m[{BLOCK}], s[{BLOCK}];",
                 f"    for (long i = b; i < e; i++) m[i - b] = {start};",
                 *rows(f"m[i - b] = {pick}(m[i - b], {value});")]
        if shift:
            lines += ["    for (long i = b; i < e; i++) { m[i - b] = sg_select(isfinite(m[i - b]), m[i - b], 0.0); "
                      "s[i - b] = 0.0; }",
                      *rows(f"s[i - b] += sg_exp({value} - m[i - b]);")]
        if self.mode == "softmax":
            lines += rows(f"out[p] = sg_exp({value} - m[i - b]) / s[i - b];")
        else:
            target = "sg_log(s[i - b]) + m[i - b]" if shift else "m[i - b]"
            lines.append(f"    for (long i = b; i < e; i++) out[o * {I} + i] = {target};")
        return lines, O * per_o

    def _run(self, arrays: list) -> list:
        args, keep = input_arguments(arrays, self.used, self.is_array, self.body_shape)  # keep: alive past the call
        O, R, I = self.sizes
        out = np.empty(O * R * I if self.mode == "softmax" else O * I)
        args.append(out.ctypes.data)
        self.fn(*args, runner() if self.parallel else None)
        return [out.reshape(self.output_shapes[0])]
