"""The ``c_fused`` backend: elementwise closed forms over arrays as one fused C loop.

Every output is evaluated in **one** pass over the points: each input is read once,
every temporary of symgrad's CSE lives in a register, each output is written once, and a
full ``sum``/``mean`` at the root of an output (the value of ``value_and_grad``) is
accumulated in the same pass.  The loop runs in blocks of 2,048 points shared among the
cores as threads come free (:mod:`.c_threads`; below :data:`PARALLEL_MIN` points it stays
on one thread); each
block's partial sums are kept and added in block order, so sums are the same from run to
run and for any number of threads.  GCC vectorises the loop, calling glibc's vector math
library for ``sin``, ``exp``, ``log``, ``tanh`` ... (see :mod:`.c_code`).  Flags:
``-O2 -march=native -fopenmp-simd -fno-math-errno -ffp-contract=off``; no ``-ffast-math``, so
NaN and infinity behave as in NumPy.  Sums are accumulated in vector partial sums (a
different order than NumPy's pairwise sum: equal to rounding).

The loop runs over the broadcast shape of all outputs; an input of a smaller shape is
broadcast to it (a copy per call; an input whose shape is the loop's last axes, a bias,
is read from its repetition over one block and one period instead: :func:`_tiles`), an
output of a smaller shape is read back from the loop's result.  A full ``sum``/``mean`` *inside* an expression (``x / x.sum()``) is
computed first, by a fused loop of its own, and read as a scalar: one more pass over the
data per level of nesting.

Over 1-D arrays the loop also reads basic slices and single elements at shifted indices,
and writes their adjoints (``index_put`` at a slice of step 1): each output over its own
length, the range of the loop cut into segments without conditions (:mod:`.c_points`).
So the vectorised Rosenbrock value and gradient is one stencil loop.  Anything else that
is not elementwise -- ``matmul``, slices of n-D arrays, fancy indexing, a reduction over
some axes, ``softmax``, ... -- raises
:class:`~symgrad.symbolic.codegen.backends.UnsupportedExpressionError` naming it
(``backend="c"`` computes those pieces with NumPy: :mod:`.c_plan`).
"""
from __future__ import annotations

import ctypes
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ...core.symbols import broadcast_shapes, postorder, shape_of, size_of
from . import Backend, BackendInputError, NativeFunction, UnsupportedExpressionError
from ...forms.structural import Getitem, IndexPut
from .c_code import C_HEADER, CPrinter, check_translatable, cut_reductions, op_name, plan, split_reduction
from .c_points import Read, has_shifts, pointwise, resolve, segments, shift_supported
from .c_threads import runner
from .cbuild import load_c

__all__ = ["CFusedBackend", "FusedFunction", "FLAGS", "BLOCK", "PARALLEL_MIN"]

FLAGS = ["-O2", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-ffp-contract=off", "-shared", "-fPIC"]
"""``-fopenmp-simd`` reads the ``omp simd`` pragmas (vectorised loops calling libmvec)
and nothing else of OpenMP (the threads are :mod:`.c_threads`'); ``-fno-math-errno``
makes ``sqrt`` one instruction; ``-ffp-contract=off`` keeps ``a*b + c`` two roundings, as
in NumPy; no ``-ffast-math``."""

BLOCK = 2048
"""Points per block (one task of :mod:`.c_threads`)."""

PARALLEL_MIN = 1 << 18
"""Loops over fewer points run on the calling thread: waking a worker costs a system call
and, on a busy machine, helps little for a loop this short (with OpenMP's threads, on the
2-core development machine at load 5, the W2 gradient at n = 100,000 took 0.13 ms at best
and 1.3 ms as median with two threads, 0.15 ms and 0.19 ms with one)."""


class CFusedBackend(Backend):
    """Elementwise expressions over arrays (and their full sums) as one fused C loop."""

    name = "c_fused"
    summary = "elementwise array expressions and their full sums/means as fused, multithreaded C loops"

    def compile(self, inputs, outputs, **options) -> "FusedFunction":  # noqa: D102
        return FusedFunction(inputs, outputs, **options)


class FusedFunction(NativeFunction):
    """A compiled fused loop (see the module docstring); call it like ``CompiledFunction``.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> from symgrad.symbolic.forms.structural import Sum
    >>> x = ArrayVar("x", (4,))
    >>> f = FusedFunction([x], [Sum.of(x ** 2, dim=None, keepdim=False), 2 * x], output_names=["value", "grad_x"])
    >>> f(np.arange(4.0))
    Outputs(value=array(14.), grad_x=array([0., 2., 4., 6.]))
    >>> f.backend
    'c_fused'
    """

    backend = "c_fused"
    parallel = True
    """Whether the loop shares its blocks among threads (a plan turns it off when
    NumPy steps call a multithreaded BLAS: the two thread pools would contend)."""

    def __init__(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], **options: Any) -> None:
        super().__init__(inputs, outputs, **options)
        plans = [split_reduction(e) for e in self.exprs.values()]
        self.kinds = [kind for kind, _ in plans]
        self.n_reductions = sum(kind != "elementwise" for kind in self.kinds)
        bodies, reductions = cut_reductions([body for _, body in plans])
        # full sums inside the expressions: computed first, by loops of their own (one per
        # shape of what they sum), then read by this loop as scalars
        by_shape: dict = {}
        for reduction in reductions:
            by_shape.setdefault(tuple(shape_of(reduction.arrays[0])), []).append(reduction)
        self.inner = [FusedFunction(self.symbols, group, input_names=self.inputs, name=f"{self.name}_sums")
                      for group in by_shape.values()]
        symbols = self.symbols + [reductions[r] for group in by_shape.values() for r in group]
        self.body_shapes = [tuple(shape_of(b)) for b in bodies]
        self.points = has_shifts(bodies)
        if self.points:
            self._init_points(bodies, symbols)
            return
        check_translatable(bodies, self.outputs, self.backend,
                           "it compiles elementwise expressions, full sums or means, and 1-D slices; ")
        try:
            self.shape = broadcast_shapes(*self.body_shapes) if self.body_shapes else ()
        except ValueError:
            raise UnsupportedExpressionError(
                f"the c_fused backend evaluates all outputs in one loop, but their shapes {self.body_shapes} "
                "do not broadcast together; compile them separately, or use backend='numpy'") from None
        free = {node for node in postorder(bodies) if isinstance(node, sp.Symbol)}
        self.used = [i for i, s in enumerate(symbols) if s in free]
        self.is_array = {i: i < len(self.symbols) and self.input_shapes[i] != () for i in self.used}
        self.tiles = {i: size_of(self.input_shapes[i]) for i in self.used
                      if self.is_array[i] and _tiles(self.input_shapes[i], self.shape)}
        self._kernel_symbols = symbols
        self.source = self._generate(bodies)
        self._load()

    def _init_points(self, bodies: list, symbols: list) -> None:
        """A loop with slices (see :mod:`.c_points`): reads at shifted flat indices, each
        output written over its own length, in segments without guards."""
        for node in postorder(bodies):
            if isinstance(node, (Getitem, IndexPut)) and not shift_supported(node):
                name = next(n for out, n in zip(bodies, self.outputs) if node in postorder([out]))
                raise UnsupportedExpressionError(
                    f"the {self.backend} backend cannot translate {op_name(node)} (in output {name!r}: "
                    f"{str(node)[:80]}): it reads slices and elements along the first axis (any step for 1-D "
                    "arrays, step 1 otherwise); backend='c' computes the rest with NumPy, and backend='numpy' "
                    "compiles every operation")
        positions = {s: i for i, s in enumerate(symbols)}
        try:
            forms, self.lengths, self._grouped = pointwise(bodies, positions)
            self.shape = (max(self.lengths, default=1),)
            self.pieces = [(lo, hi, resolve(forms, lo, hi)) for lo, hi in segments(forms, self.lengths)]
        except RecursionError:  # (the rewriting recurses over the expression)
            raise UnsupportedExpressionError(
                f"the {self.backend} backend reads slices point by point in expressions of moderate depth, and "
                "these are deeper; backend='c' computes the slices with NumPy, backend='numpy' compiles "
                "everything") from None
        for _, _, resolved in self.pieces:
            check_translatable(resolved, self.outputs, self.backend,
                               "it compiles elementwise expressions, full sums or means, and 1-D slices; ")
        free = {node for _, _, resolved in self.pieces for node in postorder(resolved) if isinstance(node, sp.Symbol)}
        used = {node.position for node in free if isinstance(node, Read)}
        used |= {positions[node] for node in free if node in positions}
        self.used = sorted(used)
        self.is_array = {i: i < len(self.symbols) and self.input_shapes[i] != () for i in self.used}
        self.tiles: dict = {}  # (a loop with slices reads operands of one shape)
        self._kernel_symbols = symbols
        self.source = self._generate_points()
        self._load()

    def _load(self) -> None:
        library, self.library_path = load_c(self.source, FLAGS)
        self.fn = library.sg_kernel
        self.fn.restype = None
        self.fn.argtypes = ([ctypes.c_long] + [ctypes.c_void_p if self.is_array[i] else ctypes.c_double
                                               for i in self.used]
                            + [ctypes.c_void_p] * (len(self.kinds) - self.n_reductions)
                            + ([ctypes.c_void_p] if self.n_reductions else []) + [ctypes.c_void_p])

    def _generate_points(self) -> str:
        params = [f"const double* restrict in{i}" if self.is_array[i] else f"const double v{i}" for i in self.used]
        outs = [f"double* restrict out{k}" for k, kind in enumerate(self.kinds) if kind == "elementwise"]
        n_red = self.n_reductions
        reduced = [k for k, kind in enumerate(self.kinds) if kind != "elementwise"]
        signature = ", ".join(["long a", "long b"] + params + outs + (["double* restrict part"] if n_red else []))
        lines = [C_HEADER, ""]
        self.n_temporaries = 0
        for number, (lo, hi, resolved) in enumerate(self.pieces):
            live = [k for k in range(len(resolved)) if hi <= self.lengths[k]]
            names = {}
            for node in postorder([resolved[k] for k in live]):
                if isinstance(node, Read):
                    names[node] = f"in{node.position}[{_affine(node.k, node.c)}]"
                elif isinstance(node, sp.Symbol) and node in self._kernel_symbols:
                    names[node] = f"v{self._kernel_symbols.index(node)}"
            order, temps, constants = plan([resolved[k] for k in live])
            nodes = postorder([resolved[k] for k in live])
            grouped = [n for n in nodes if isinstance(n, sp.Add) and n in self._grouped and n not in temps]
            if grouped:  # sums computed first (see .c_points.pointwise): temporaries too
                temps.update({n: f"_g{j}" for j, n in enumerate(grouped)})
                order = [n for n in nodes if n in temps]
            self.n_temporaries += len(order)
            printer = CPrinter(names, temps, constants)
            accs = [f"acc{k}" for k in reduced if k in live]
            loop = [f"        const double {temps[node]} = {printer.define(node)};" for node in order]
            for k in live:
                target = f"out{k}[i] =" if self.kinds[k] == "elementwise" else f"acc{k} +="
                loop.append(f"        {target} {printer.print(resolved[k])};")
            simd = f"#pragma omp simd reduction(+:{', '.join(accs)})" if accs else "#pragma omp simd"
            lines += [
                f"/* points {lo} <= i < {hi} */",
                f"static void sg_piece{number}({signature}) {{",
                *[f"    double acc{k} = 0.0;" for k in reduced],
                f"    {simd}",
                "    for (long i = a; i < b; i++) {",
                *loop,
                "    }",
                *[f"    part[{j}] += acc{k};" for j, k in enumerate(reduced)],
                "}", "",
            ]
        args = ["lo", "hi"] + [f"in{i}" if self.is_array[i] else f"v{i}" for i in self.used]
        args += [f"out{k}" for k, kind in enumerate(self.kinds) if kind == "elementwise"]
        calls = ["        long lo, hi;"] + [f"        part[{j}] = 0.0;" for j in range(n_red)]
        for number, (lo, hi, _) in enumerate(self.pieces):
            calls += [f"        lo = s > {lo} ? s : {lo}; hi = s + {BLOCK} < {hi} ? s + {BLOCK} : {hi};",
                      f"        if (lo < hi) sg_piece{number}({', '.join(args + (['part'] if n_red else []))});"]
        return "\n".join(lines + _kernel(params + outs, n_red, calls))

    def _run_points(self, arrays: list) -> list:
        lengths = [length for kind, length in zip(self.kinds, self.lengths) if kind == "elementwise"]
        results, red = self._call(self.shape[0], arrays, None, lengths)
        outs, sums = iter(results), iter(red)
        final = []
        for kind, shape, length in zip(self.kinds, self.body_shapes, self.lengths):
            if kind == "elementwise":
                final.append(next(outs).reshape(shape))
            else:
                total = float(next(sums))
                final.append(np.asarray(total / length if kind == "mean" else total))
        return final

    def _call(self, n: int, arrays: list, shape: tuple | None, out_shapes: list) -> tuple[list, np.ndarray]:
        """Run the kernel over ``n`` points: the inputs as :func:`input_arguments` passes
        them, a fresh array of each of ``out_shapes`` per elementwise output; returns
        those and the partial sums (the totals first: see :func:`_kernel`)."""
        args, keep = input_arguments(arrays, self.used, self.is_array, shape, self.tiles)
        results = [np.empty(out_shape) for out_shape in out_shapes]
        args += [out.ctypes.data for out in results]
        red = np.empty(max(-(-n // BLOCK), 1) * self.n_reductions)  # a partial sum per block
        if self.n_reductions:
            args.append(red.ctypes.data)
        self.fn(n, *args, runner() if self.parallel else None)
        del keep  # (alive until the kernel has read them)
        return results, red

    def _generate(self, bodies: list) -> str:
        names = {self._kernel_symbols[i]: f"v{i}" for i in self.used}
        order, temps, constants = plan(bodies)
        self.n_temporaries = len(order)
        printer = CPrinter(names, temps, constants)
        params = [f"const double* restrict in{i}" if self.is_array[i] else f"const double v{i}" for i in self.used]
        outs = [f"double* restrict out{k}" for k, kind in enumerate(self.kinds) if kind == "elementwise"]
        accs = [f"acc{k}" for k, kind in enumerate(self.kinds) if kind != "elementwise"]
        loop = [f"        const double v{i} = in{i}[i];" for i in self.used if self.is_array[i]]
        loop += [f"        const double {temps[node]} = {printer.define(node)};" for node in order]
        for k, (body, kind) in enumerate(zip(bodies, self.kinds)):
            target = f"out{k}[i] =" if kind == "elementwise" else f"acc{k} +="
            loop.append(f"        {target} {printer.print(body)};")
        simd = f"#pragma omp simd reduction(+:{', '.join(accs)})" if accs else "#pragma omp simd"
        args = ["m"] + [(f"in{i} + s % {self.tiles[i]}" if i in self.tiles else f"in{i} + s") if self.is_array[i]
                        else f"v{i}" for i in self.used]
        args += [f"out{k} + s" for k, kind in enumerate(self.kinds) if kind == "elementwise"]
        n_red = len(accs)
        lines = [
            C_HEADER, "",
            f"static void sg_block({', '.join(['long m'] + params + outs + (['double* restrict part'] if n_red else []))}) {{",
            *[f"    double {a} = 0.0;" for a in accs],
            f"    {simd}",
            "    for (long i = 0; i < m; i++) {",
            *loop,
            "    }",
            *[f"    part[{j}] = {a};" for j, a in enumerate(accs)],
            "}", "",
        ]
        calls = [f"        const long m = n - s < {BLOCK} ? n - s : {BLOCK};",
                 f"        sg_block({', '.join(args + (['part'] if n_red else []))});"]
        return "\n".join(lines + _kernel(params + outs, n_red, calls))

    def _nothing_computed(self, k: int, body_shape: tuple) -> np.ndarray:
        """Output ``k``, whose body has points, of a call whose loop had none (another output
        is empty): an empty output needs no values; a non-empty one (a scalar, or a sum of
        a scalar body) cannot be read off the loop."""
        if size_of(self.output_shapes[k]) == 0:
            return np.zeros(body_shape)
        raise BackendInputError(
            f"output {self.outputs[k]!r} of {self.name} has shape {self.output_shapes[k]}, but the {self.backend} "
            f"backend computes all outputs in one loop over shape {self.shape}, which is empty at these inputs: "
            "compile the outputs separately, or use backend='numpy'")

    def _run(self, arrays: list) -> list:
        arrays = arrays + [float(v) for inner in self.inner for v in inner._run(arrays)]
        if self.points:
            return self._run_points(arrays)
        shape = self.shape
        n = size_of(shape)
        results, red = self._call(n, arrays, shape, [shape for kind in self.kinds if kind == "elementwise"])
        outs, sums = iter(results), iter(red)
        final = []
        for k, (kind, body_shape) in enumerate(zip(self.kinds, self.body_shapes)):
            result = next(outs) if kind == "elementwise" else next(sums)
            if n == 0 and body_shape != shape and size_of(body_shape):  # the loop visited no point of the body
                final.append(self._nothing_computed(k, body_shape))
            elif kind == "elementwise":
                final.append(result if body_shape == shape else np.array(result[_read_back(body_shape, shape)]))
            else:
                total = float(result)
                # the loop visits each element of the body size(shape)/size(body) times
                count = n if kind == "mean" else n / max(size_of(body_shape), 1)
                final.append(np.asarray(total / count if count else (np.nan if kind == "mean" else 0.0)))
        return final


def input_arguments(arrays: list, used: list, is_array: list, shape: tuple | None,
                    tiles: dict | None = None) -> tuple[list, list]:
    """The kernel's input arguments, in ``used`` order: a scalar input as a double, an
    array input as a pointer to contiguous float64 data (broadcast to ``shape`` first when
    given), or, for the inputs ``tiles`` maps to their sizes (see :func:`_tiles`), to the
    input repeated over ``size + BLOCK`` elements, which a block starting at point ``s``
    reads from ``s % size`` on; and the arrays behind those pointers, which the caller
    keeps until the call returns."""
    args: list = []
    keep = []
    for i in used:
        a = arrays[i]
        if not is_array[i]:
            args.append(float(a))
            continue
        if tiles and i in tiles:
            a = np.resize(np.asarray(a, dtype=np.float64).ravel(), tiles[i] + BLOCK)
        elif shape is not None and a.shape != shape:
            a = np.broadcast_to(a, shape)
        a = np.ascontiguousarray(a, dtype=np.float64)
        keep.append(a)
        args.append(a.ctypes.data)
    return args, keep


def _tiles(small: tuple, full: tuple) -> bool:
    """Whether an input of shape ``small`` broadcast to the loop's shape ``full`` repeats
    itself along the flat points (its shape, without leading 1s, the last axes of
    ``full``), in periods of at most :data:`BLOCK` points: then the loop reads it from a
    repetition of ``BLOCK`` points more than one period instead of a copy broadcast to
    ``full`` (a bias of 10 added to 10,000 x 10 logits: 2,058 numbers, not 100,000).

    >>> _tiles((10,), (10000, 10)), _tiles((1, 10), (5, 10)), _tiles((5, 1), (5, 10)), _tiles((7,), (7,))
    (True, True, False, False)
    """
    small, full = tuple(small), tuple(full)
    while small and small[0] == 1:
        small = small[1:]
    suffix = len(small) <= len(full) and full[len(full) - len(small):] == small
    return suffix and small != full and 0 < size_of(small) <= BLOCK


def _kernel(params: list, n_red: int, block: list) -> list:
    """The lines of ``sg_kernel``: ``block`` (C lines for the points ``s`` to ``s + BLOCK``,
    writing its ``n_red`` partial sums to ``part``) as the task ``sg_blocks`` of one block,
    run for every block by ``sg_run`` (:mod:`.c_threads`: shared among the threads as they
    come free; ``run`` is NULL for one thread, and below :data:`PARALLEL_MIN` points the
    kernel runs the blocks itself); then each sum is the sum of its blocks' partial sums,
    in block order, so it does not depend on the schedule or the number of threads.
    ``red`` has room for every block's partial sums; the totals come first."""
    params = params + (["double* restrict red"] if n_red else [])
    partial = [f"    double* restrict part = red + b * {n_red};"] if n_red else []
    lines = [*task_context(["long n"] + params),
             "static void sg_blocks(void* context, long b) {",
             *unpack_context(["long n"] + params),
             f"    const long s = b * {BLOCK};",
             *partial,
             *[line[4:] for line in block],
             "}", "",
             f"void sg_kernel({', '.join(['long n'] + params + ['sg_runner run'])}) {{",
             f"    struct sg_context context = {{{', '.join(['n'] + [_name(p) for p in params])}}};",
             f"    const long blocks = (n + {BLOCK - 1}) / {BLOCK};",
             f"    if (run && n >= {PARALLEL_MIN}) run(blocks, sg_blocks, &context);",
             "    else for (long b = 0; b < blocks; b++) sg_blocks(&context, b);"]
    for j in range(n_red):
        lines += [f"    double total{j} = 0.0;",
                  f"    for (long b = 0; b < blocks; b++) total{j} += red[b * {n_red} + {j}];"]
    lines += [f"    red[{j}] = total{j};" for j in range(n_red)]
    return lines + ["}", ""]


def _name(param: str) -> str:
    """The name a C parameter declares (``"const double* restrict in0"``: ``in0``)."""
    return param.split()[-1]


def task_context(params: list) -> list:
    """C lines declaring the task type of :mod:`.c_threads` and ``struct sg_context``, a
    field for each of the kernel's ``params`` (the task's one argument)."""
    return ["typedef void (*sg_task)(void*, long);",
            "typedef void (*sg_runner)(long, sg_task, void*);",
            "struct sg_context {",
            *[f"    {p.replace(' restrict', '')};" for p in params],
            "};", ""]


def unpack_context(params: list) -> list:
    """C lines of a task reading its ``params`` back from the ``context`` argument (each
    marked used: a task need not read all of them, and exported C builds with -Werror)."""
    return ["    const struct sg_context* restrict ctx = context;",
            *[f"    {p} = ctx->{_name(p)}; (void){_name(p)};" for p in params]]


def _read_back(small: tuple, full: tuple) -> tuple:
    """The index that reads an array of shape ``small`` out of its broadcast to ``full``.

    >>> _read_back((3,), (2, 3)), _read_back((2, 1), (2, 3))
    ((0, slice(None, None, None)), (slice(None, None, None), slice(0, 1, None)))
    """
    lead = len(full) - len(small)
    return (0,) * lead + tuple(slice(None) if s == f else slice(0, 1) for s, f in zip(small, full[lead:]))


def _affine(k: int, c: int) -> str:
    """C text of the index ``k*i + c``.

    >>> _affine(1, 0), _affine(1, -1), _affine(2, 3), _affine(0, 4)
    ('i', 'i - 1', '2*i + 3', '4')
    """
    if k == 0:
        return str(c)
    text = "i" if k == 1 else f"{k}*i"
    return text if c == 0 else f"{text} + {c}" if c > 0 else f"{text} - {-c}"
