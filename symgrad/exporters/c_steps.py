"""The ``"c"`` export target for programs one loop cannot compute: the ``c`` backend's plan, written out.

A program with slices, ``matmul``, reductions over some axes or inputs of several shapes
(the benchmark suite's W2 and W3) is planned by the in-process ``c`` backend
(:class:`~symgrad.symbolic.codegen.backends.c_plan.PlannedFunction`): a sequence of steps
whose C steps (:class:`~symgrad.symbolic.codegen.backends.c_fused.FusedFunction`, with the
stencil reads of :mod:`~symgrad.symbolic.codegen.backends.c_points` for slices) and loop
nests (:class:`~symgrad.symbolic.codegen.backends.c_axes.AxisReduction`) are already C.
This module writes each of those kernels into the exported file under a name of its own,
and the steps the backend leaves to NumPy as C too where they are ``matmul``\\ s of
arrays (or of their transposes, or transposed) -- a plain loop nest, see
:func:`matmul_source` -- or reshapes (``x[:, None]``: a copy).  A full sum inside an
expression is the backend's loop of its own, run first.  An exported function runs the
steps in order, keeping the values one step hands to the next in the caller's workspace
(``double *work`` of ``F_WORK`` doubles: no allocation).

What else the plan computes with NumPy -- a ``softmax``, a ``cumsum``, fancy indexing, a
linear solve, the adjoint of a strided slice -- raises
:class:`~symgrad.exporters.errors.ExportError` naming it.
"""
from __future__ import annotations

import re
import textwrap

import sympy as sp

from ..symbolic.codegen.backends import BackendError
from ..symbolic.codegen.backends.c_code import C_HEADER, op_name
from ..symbolic.codegen.backends.c_fused import BLOCK, PARALLEL_MIN
from ..symbolic.core.symbols import postorder, shape_of, size_of
from ..symbolic.forms.structural import (Getitem, IndexPut, Matmul, Permute, Reshape, Squeeze, Transpose,
                                          Unsqueeze)
from .errors import ExportError

__all__ = ["StepsFunction", "matmul_source", "comment", "MATMUL_ROWS"]

MATMUL_ROWS = 32
"""Rows of a ``matmul``'s result per OpenMP work item."""


_TITLES = {"c": "one loop over the points", "reduce": "a loop nest summing over axes"}
"""What a step of each kind is, in the comment above its call (a NumPy step: its operations' names)."""


def _shape(node: sp.Basic) -> tuple:
    return tuple(shape_of(node)) if isinstance(node, sp.Expr) else ()


def _strides(shape: tuple) -> list[int]:
    """The C-order strides (in elements) of a contiguous array of ``shape``."""
    strides, step = [], 1
    for n in reversed(shape):
        strides.insert(0, step)
        step *= n
    return strides


def _swaps_axes(node: sp.Basic) -> bool:
    """Whether ``node`` is the transpose of a 2-D array (``transpose`` or ``permute(1, 0)``)."""
    if len(_shape(node.arrays[0])) != 2:
        return False
    return isinstance(node, Transpose) or tuple(int(d) % 2 for d in node.attrs["dims"]) == (1, 0)


def _operand(node: sp.Basic) -> tuple[sp.Symbol, tuple, tuple] | None:
    """``(symbol, shape, strides)`` of a ``matmul`` operand the loop nest reads in place:
    an array (1-D or 2-D), or a 2-D one under transposes (``transpose``, ``permute``; ``x.T.T``
    is ``x``): its strides swapped once per transpose."""
    swaps = 0
    while isinstance(node, (Transpose, Permute)) and _swaps_axes(node):
        node, swaps = node.arrays[0], swaps + 1
    if not isinstance(node, sp.Symbol) or len(_shape(node)) not in (1, 2):
        return None
    shape, strides = _shape(node), tuple(_strides(_shape(node)))
    return (node, shape, strides) if swaps % 2 == 0 else (node, shape[::-1], strides[::-1])


def _same_elements(node: sp.Basic) -> bool:
    """Whether ``node`` is an array's elements in their C order under another shape: a
    reshape, ``unsqueeze``/``squeeze``, an index of ``None``, ``...`` and ``:`` only
    (``x[:, None]``) or its adjoint (the ``index_put`` that drops those axes again), of an
    array a step has (a symbol)."""
    if isinstance(node, (Reshape, Unsqueeze, Squeeze)):
        return isinstance(node.arrays[0], sp.Symbol)
    if isinstance(node, (Getitem, IndexPut)) and not node.index_arrays and isinstance(node.data[0], sp.Symbol):
        parts = node.attrs["index"] if isinstance(node.attrs["index"], tuple) else (node.attrs["index"],)
        return all(p is None or p is Ellipsis or (type(p) is slice and p == slice(None)) for p in parts)
    return False


def matmul_source(name: str, a_shape: tuple, a_strides: tuple, b_shape: tuple, b_strides: tuple,
                  clones: str) -> str:
    """C of ``void name(const double *a, const double *b, double *c)``: ``c = a @ b`` for
    ``a`` of ``a_shape`` (1-D or 2-D) and ``b`` of ``b_shape`` read with the given strides
    (so a transpose is read in place), ``c`` contiguous.

    Each element of ``c`` is ``0.0`` plus ``a[i, k] * b[k, j]`` for ``k = 0, 1, ...`` in
    order, whatever the number of threads: the rows of ``c`` are shared among OpenMP
    threads in blocks of :data:`MATMUL_ROWS`, and a block function (``clones``: the
    target-clones attribute) keeps a row of ``c`` in cache and adds rows of ``b`` into it
    (``i-k-j`` order, the inner loop along ``b``'s row); when ``a`` is a transpose (its
    column index is the contiguous one) the block runs ``k-i-j``, reading a row of the
    stored ``a`` and of ``b`` per ``k``, so neither is read across its rows.
    """
    (m, k), (as0, as1) = ((1,) + a_shape, (0,) + a_strides) if len(a_shape) == 1 else (a_shape, a_strides)
    (k2, n), (bs0, bs1) = (b_shape + (1,), b_strides + (0,)) if len(b_shape) == 1 else (b_shape, b_strides)
    assert k == k2, (a_shape, b_shape)

    def at(base: str, s0: int, s1: int, i: str, j: str) -> str:
        terms = [f"{i}*{s0}" if s0 != 1 else i] if s0 else []
        terms += [f"{j}*{s1}" if s1 != 1 else j] if s1 else []
        return f"{base}[{' + '.join(terms) or '0'}]"

    if as1 == 1 or m == 1:  # i-k-j: a's rows are contiguous
        body = ["    for (long i = lo; i < hi; i++) {",
                f"        for (long j = 0; j < {n}; j++) c[i*{n} + j] = 0.0;",
                f"        for (long k = 0; k < {k}; k++) {{",
                f"            const double aik = {at('a', as0, as1, 'i', 'k')};",
                "            #pragma omp simd",
                f"            for (long j = 0; j < {n}; j++) c[i*{n} + j] += aik*{at('b', bs0, bs1, 'k', 'j')};",
                "        }", "    }"]
    else:  # k-i-j: a is stored by columns (a transpose)
        body = [f"    for (long p = lo*{n}; p < hi*{n}; p++) c[p] = 0.0;",
                f"    for (long k = 0; k < {k}; k++) {{",
                "        for (long i = lo; i < hi; i++) {",
                f"            const double aik = {at('a', as0, as1, 'i', 'k')};",
                "            #pragma omp simd",
                f"            for (long j = 0; j < {n}; j++) c[i*{n} + j] += aik*{at('b', bs0, bs1, 'k', 'j')};",
                "        }", "    }"]
    rows = "const double *restrict a, const double *restrict b, double *restrict c"
    return "\n".join([
        f"{clones} static void {name}_rows(long lo, long hi, {rows}) {{", *body, "}", "",
        f"static void {name}({rows}) {{",
        f"    #pragma omp parallel for schedule(static) if({m * n * k}L >= {PARALLEL_MIN}L)",
        f"    for (long lo = 0; lo < {m}; lo += {MATMUL_ROWS}) {{",
        f"        {name}_rows(lo, lo + {MATMUL_ROWS} < {m} ? lo + {MATMUL_ROWS} : {m}, a, b, c);",
        "    }", "}"])


def comment(text: str, indent: str) -> list[str]:
    """``text`` as C comment lines of at most 90 characters of text each."""
    return [f"{indent}/* {line} */" for line in textwrap.wrap(text, 90, break_long_words=False)]


def _element(pointer: str, index: str) -> str:
    """C of ``pointer[index]``, for a parameter or a place in the workspace (``work + 120``).

    >>> _element("x", "i"), _element("work", "0"), _element("work + 120", "0"), _element("work + 120", "i")
    ('x[i]', 'work[0]', 'work[120]', 'work[120 + i]')
    """
    at = re.fullmatch(r"work \+ (\d+)", pointer)
    if at is None:
        return f"{pointer}[{index}]"
    return f"work[{at.group(1)}]" if index == "0" else f"work[{at.group(1)} + {index}]"


RUNNER = "\n".join([
    "/* how the steps' loops run their blocks: in block order, shared among OpenMP's threads in a build",
    "   with -fopenmp (partial sums are added in block order, so every thread count gives the same bits) */",
    "typedef void (*sg_task)(void*, long);",
    "typedef void (*sg_runner)(long, sg_task, void*);",
    "__attribute__((unused)) static void sg_run_blocks(long blocks, sg_task task, void* context) {",
    "    #pragma omp parallel for schedule(static)",
    "    for (long b = 0; b < blocks; b++) task(context, b);",
    "}",
])
"""The C every file written in steps defines once: the task types of the backend's kernels
(:mod:`~symgrad.symbolic.codegen.backends.c_threads` runs them in process) and the runner
the exported kernels are called with."""


def _kernel_source(function, name: str, clones: str) -> str:
    """A backend kernel's C without the shared header and the task types (:data:`RUNNER`),
    its names made its own after ``name`` (``sg_kernel`` is ``name``, static; ``sg_block``,
    ``sg_blocks``, ``sg_task_rows``, ``sg_piece3`` and ``struct sg_context`` are
    ``name_block``...), the block functions marked with ``clones``; called with the runner
    ``sg_run_blocks``."""
    source = function.source
    if not source.startswith(C_HEADER):
        raise AssertionError(f"a C kernel without the shared header: {source[:80]!r}")
    body = source[len(C_HEADER):].strip("\n")
    body = re.sub(r"^typedef void \(\*sg_(task|runner)\)\(.*\);\n", "", body, flags=re.M)
    body = re.sub(r"\bsg_(blocks|block|task_rows|piece\d+|context)\b", lambda m: f"{name}_{m.group(1)}", body)
    body = re.sub(r"^static void (\w+_(block|piece\d+))\(", rf"{clones} static void \1(", body, flags=re.M)
    body, found = re.subn(r"^void sg_kernel\((.*sg_runner run)\) \{$", rf"static void {name}(\1) {{", body, flags=re.M)
    if found != 1:
        raise AssertionError(f"a C kernel without one sg_kernel(..., sg_runner run): {source[-400:]!r}")
    return body


class StepsFunction:
    """One exported function (``value``, ``grad`` or ``value_and_grad``) of a program as
    the ``c`` backend plans it: ``.definitions`` (the C of its steps' kernels), ``.lines``
    (the lines of the exported function after its length check) and ``.work`` (the doubles
    of workspace it needs).

    ``names``: the C expression of each program input (its parameter); ``outputs``: the
    output parameters, one per expression of ``exprs``, with ``comments`` above their code.
    """

    def __init__(self, prefix: str, symbols: list, names: list[str], exprs: list[sp.Expr], outputs: list[str],
                 comments: list[list[str]], clones: str) -> None:
        from ..symbolic.codegen.backends.c_plan import PlannedFunction

        try:
            plan = PlannedFunction(symbols, exprs, output_names=outputs, name=prefix)
        except BackendError as err:
            raise ExportError(f"the c target plans the program as the c backend does, which failed: {err}") from None
        self.clones = clones
        self.definitions: list[str] = []
        self.work = 0
        self.lines: list[str] = []
        # each value of the plan: (C pointer expression, shape); inputs first, then what each step computes
        self.values: list[tuple[str, tuple]] = [(n, _shape(s)) for n, s in zip(names, symbols)]
        first_use = {}
        for k, (position, constant) in enumerate(zip(plan.results, plan.constants)):
            if constant is None and position >= len(symbols) and position not in first_use:
                first_use[position] = k
        position = len(symbols)
        for number, step in enumerate(plan.steps):
            destinations = []
            title = _TITLES.get(step.kind) or ", ".join(dict.fromkeys(op_name(e) for e in step.function.exprs.values()))
            self.lines.append(f"    /* step {number}: {title} */")
            for node in step.computes:
                k = first_use.get(position)
                if k is not None and size_of(_shape(node)) == size_of(_shape(exprs[k])):
                    destinations.append((outputs[k], _shape(node)))
                    self.lines += comments[k]
                else:
                    destinations.append((self._allocate(size_of(_shape(node))), _shape(node)))
                    self.lines += comment(f"at {destinations[-1][0]}: {sp.sstr(node)}", "    ")
                position += 1
            reads = [self.values[i] for i in step.reads]
            getattr(self, f"_{step.kind}_step")(f"{prefix}_step{number}", step, reads, destinations)
            self.values += destinations
        for k, (position, constant, out) in enumerate(zip(plan.results, plan.constants, outputs)):
            size = size_of(_shape(exprs[k]))
            if constant is not None:
                self.lines += comments[k]
                self.lines.append(f"    for (long i = 0; i < {size}; i++) {out}[i] = {float(constant)!r};")
                continue
            source, shape = self.values[position]
            if source == out:
                continue  # computed in place
            if size_of(shape) not in (1, size):
                raise ExportError(f"the c target cannot broadcast {self._what(exprs[k])} of shape {shape} to {out}")
            self.lines += comments[k]
            read = _element(source, "0" if size_of(shape) == 1 else "i")
            self.lines.append(f"    for (long i = 0; i < {size}; i++) {out}[i] = {read};")

    @staticmethod
    def _what(node: sp.Basic) -> str:
        text = sp.sstr(node)
        return text if len(text) <= 70 else text[:67] + "..."

    def _allocate(self, size: int) -> str:
        at = self.work
        self.work += max(size, 1)
        return f"work + {at}" if at else "work"

    def _broadcast(self, value: tuple[str, tuple], shape: tuple) -> str:
        """``value`` (pointer, shape) as a contiguous array of ``shape``: itself, or a copy
        in the workspace broadcast to ``shape``."""
        source, own = value
        if own == shape:
            return source
        target = self._allocate(size_of(shape))
        lead = len(shape) - len(own)
        strides = [0] * lead + [s if n == m else 0 for s, n, m in zip(_strides(own), own, shape[lead:])]
        # (sg_ names: an argument cannot have them, so no input is shadowed)
        loops = "".join(f"for (long sg_i{d} = 0; sg_i{d} < {n}; sg_i{d}++) " for d, n in enumerate(shape))
        index = " + ".join(f"sg_i{d}*{s}" if s != 1 else f"sg_i{d}" for d, s in enumerate(strides) if s) or "0"
        self.lines.append(f"    {{ double *sg_to = {target}; {loops}*sg_to++ = {_element(source, index)}; }}"
                          "  /* broadcast */")
        return target

    @staticmethod
    def _scalar(value: tuple[str, tuple]) -> str:
        return _element(value[0], "0")

    def _c_step(self, name: str, step, reads: list, destinations: list) -> None:
        self._fused(name, step.function, reads, destinations)

    def _fused(self, name: str, fused, reads: list, destinations: list) -> None:
        """Call the fused loop ``fused`` (its kernel defined as ``name``) on ``reads``, its
        outputs into ``destinations``; the full sums inside its expressions first, by the
        loops of their own the backend made for them (``fused.inner``), read as scalars."""
        for j, inner in enumerate(fused.inner):
            sums = [(self._allocate(1), ()) for _ in inner.kinds]
            self._fused(f"{name}_sums{j}", inner, reads[:len(inner.symbols)], sums)
            reads = reads + sums
        self.definitions.append(_kernel_source(fused, name, self.clones))
        shape = None if fused.points else fused.shape
        args = [self._broadcast(reads[i], shape) if fused.is_array[i] and shape is not None
                else reads[i][0] if fused.is_array[i] else self._scalar(reads[i]) for i in fused.used]
        n = fused.shape[0] if fused.points else size_of(fused.shape)
        fills = []  # (an output computed as one element, the destination it fills)
        for k, (kind, body_shape, (target, target_shape)) in enumerate(zip(fused.kinds, fused.body_shapes,
                                                                        destinations)):
            if kind != "elementwise":
                continue
            if shape is not None and body_shape != shape:
                raise ExportError(f"the c target cannot read an output of shape {body_shape} back from a loop "
                                  f"over {shape}")
            written = fused.lengths[k] if fused.points else size_of(shape)
            if written != size_of(target_shape):  # a constant (ones((4,)) is 1): one element, then filled
                if written != 1:
                    raise ExportError(f"the c target cannot broadcast a loop's output of {written} elements to "
                                      f"the shape {target_shape}")
                fills.append((self._allocate(1), target, size_of(target_shape)))
                target = fills[-1][0]
            args.append(target)
        red = self._allocate(max(-(-n // BLOCK), 1) * fused.n_reductions) if fused.n_reductions else None
        self.lines.append(f"    {name}({', '.join([f'{n}L'] + args + ([red] if red else []) + ['sg_run_blocks'])});")
        for one, target, size in fills:
            self.lines.append(f"    for (long i = 0; i < {size}; i++) {_element(target, 'i')} = {_element(one, '0')};")
        j = 0
        for k, (kind, body_shape, (target, _)) in enumerate(zip(fused.kinds, fused.body_shapes, destinations)):
            if kind == "elementwise":
                continue
            if fused.points:
                count = fused.lengths[k] if kind == "mean" else 1
            else:  # the loop visits each element of the body size(shape)/size(body) times
                count = n if kind == "mean" else n / max(size_of(body_shape), 1)
            total = _element(red, str(j))
            divided = f" / {float(count)!r}" if count != 1 else ""
            self.lines.append(f"    {_element(target, '0')} = {total}{divided};")
            j += 1

    def _reduce_step(self, name: str, step, reads: list, destinations: list) -> None:
        nest = step.function
        self.definitions.append(_kernel_source(nest, name, self.clones))
        args = [self._broadcast(reads[i], nest.body_shape) if nest.is_array[i] else self._scalar(reads[i])
                for i in nest.used]
        self.lines.append(f"    {name}({', '.join(args + [destinations[0][0], 'sg_run_blocks'])});")

    def _numpy_step(self, name: str, step, reads: list, destinations: list) -> None:
        compiled = step.function
        where = dict(zip(compiled.symbols, reads))
        for number, (expr, node, (target, _)) in enumerate(zip(compiled.exprs.values(), step.computes, destinations)):
            if _same_elements(expr):  # x[:, None], reshape, ...: the elements of x in their order
                size = size_of(_shape(expr))
                source = _element(where[expr.arrays[0]][0], "i")
                self.lines.append(f"    for (long i = 0; i < {size}; i++) {_element(target, 'i')} = {source};"
                                  "  /* a new shape */")
                continue
            product, swaps = expr, 0  # (a @ b).T is b.T @ a.T
            while isinstance(product, (Transpose, Permute)) and _swaps_axes(product):
                product, swaps = product.arrays[0], swaps + 1
            operands = [_operand(a) for a in product.arrays] if isinstance(product, Matmul) else [None]
            if swaps % 2 and None not in operands and all(len(shape) == 2 for _, shape, _ in operands):
                operands = [(x, shape[::-1], strides[::-1]) for x, shape, strides in operands[::-1]]
            elif swaps % 2:
                operands = [None]
            if None in operands:
                culprit = next((n for n in postorder([expr]) if n.args and not _same_elements(n)
                                and not isinstance(n, (Matmul, Transpose, Permute))), expr)
                raise ExportError(f"the c target cannot translate {op_name(culprit)} (in {self._what(node)}): it "
                                  "writes elementwise operations, sums, slices along the first axis, reshapes and "
                                  "matmuls of arrays or their transposes in C; use target='numpy', which writes every "
                                  "operation")
            (a, a_shape, a_strides), (b, b_shape, b_strides) = operands
            function = f"{name}_matmul{number}" if len(step.computes) > 1 else f"{name}_matmul"
            self.definitions.append(matmul_source(function, a_shape, a_strides, b_shape, b_strides, self.clones))
            self.lines.append(f"    {function}({where[a][0]}, {where[b][0]}, {target});")

