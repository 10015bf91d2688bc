"""The ``"c"`` export target: a ``.c`` and ``.h`` pair with a plain C ABI.

For ``f`` with float64 inputs ``x, y`` the header declares::

    int f_value(long n, const double *x, const double *y, double *value);
    int f_grad(long n, const double *x, const double *y, double *grad_x, ...);
    int f_value_and_grad(long n, const double *x, const double *y, double *value, double *grad_x, ...);

Every input and output is a pointer to contiguous float64 data in C (row-major) order:
an array input of the derived shape holds ``n`` elements (``n`` must equal ``F_N``, the
number of elements the code was derived for), a scalar input or output one element, a
gradient as many as its input.  Outputs must not overlap the inputs or each other (the
definitions declare them ``restrict``).  Each function returns 0, or -1 (writing nothing)
when ``n`` is not ``F_N``.  No Python, no allocation, no globals: the functions are
reentrant.

A program that one loop computes has the ``c_fused`` backend's loop structure (:mod:`symgrad.symbolic.codegen.backends.c_fused`),
printed by the C backends' printer and planner (:mod:`symgrad.symbolic.codegen.backends.c_code`: the same
CSE, the same evaluation order as NumPy, the same helpers): each function is **one pass**
over the points computing all its outputs, in blocks of (at least) :data:`BLOCK` points.  A block is
a ``#pragma omp simd`` loop whose CSE temporaries are locals and whose full sums are
accumulated in the pass; the blocks are a ``#pragma omp parallel for schedule(static)``
loop, and each block's sums go to its own slot of a stack array that is added up in
block order after the loop, so a sum depends on the build, never on the number of
threads or on which thread finished first.  A compiler without OpenMP ignores the
pragmas: ``cc -O2 -c f.c`` builds the same code single-threaded and scalar, equal to the
OpenMP build to rounding (vectorised ``libmvec`` functions and the simd sums round
differently).  :data:`RECOMMENDED_FLAGS` add threads and vectorised math, and with GCC on
x86-64 the block functions are compiled for AVX2 and AVX-512 too (:data:`TARGET_CLONES`):
one build runs the widest vectors of the CPU it runs on, as the in-process backend's
``-march=native`` does.

A program one loop cannot compute -- slices, ``matmul``, sums over some axes, inputs of
several shapes -- is written in steps, as the in-process ``c`` backend plans it
(:mod:`.c_steps`): its kernels, a loop nest for each ``matmul``, and values handed from
step to step in a workspace the caller provides.  The ABI then has a length per array
input (when they have several shapes) and a trailing ``double *work`` of ``F_WORK``
doubles (:class:`Abi`, :func:`abi`).  What neither can express raises
:class:`~symgrad.exporters.errors.ExportError` naming it.
"""
from __future__ import annotations

import ctypes
import re
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import sympy as sp

from ..symbolic.codegen.backends import BackendError, UnsupportedExpressionError
from ..symbolic.codegen.backends.c_code import C_HEADER, CPrinter, check_translatable, cut_reductions, plan, split_reduction
from ..symbolic.codegen.backends.c_fused import BLOCK
from ..symbolic.codegen.backends.cbuild import find_compiler
from ..symbolic.core.symbols import shape_of, size_of
from .c_steps import RUNNER, StepsFunction, comment
from .errors import ExportError
from .numpy_target import closed_form_lines, describe_inputs
from .program import Program

SUFFIXES = (".c", ".h")

PLAIN_FLAGS = ["-O2"]
"""The build the target promises for any C compiler: single-threaded, scalar."""

RECOMMENDED_FLAGS = ["-O2", "-fopenmp", "-fno-math-errno", "-ffp-contract=off"]
"""The build the header recommends: ``-fopenmp`` runs the blocks on all cores and lets the
compiler vectorise the block loops (calling glibc's vector math, ``libmvec``, and, with GCC
on x86-64, picking the widest vectors the CPU has: :data:`TARGET_CLONES`);
``-fno-math-errno`` lets ``sqrt`` be one instruction; ``-ffp-contract=off`` keeps ``a*b + c``
two roundings, as NumPy computes it, where the vectors have fused multiply-add.  No
``-ffast-math``: it would assume no NaN or infinity (the NaN tests of ``maximum``, ``sign``,
``softplus`` would be dropped), reorder sums, and, linked into a program, flush subnormal
numbers to zero for the whole process."""

NATIVE_FLAGS = RECOMMENDED_FLAGS + ["-march=native"]
"""The flags of the in-process ``c_fused`` backend: all of the building machine's instructions
in all of the code (the :data:`TARGET_CLONES` already give the block loops its vectors)."""

TARGET_CLONES = """\
/* With OpenMP, GCC on x86-64 with glibc compiles each block function for any x86-64, for AVX2
   and for AVX-512, and the loader runs the widest this CPU has (glibc's vector math has each). */
#if defined(_OPENMP) && defined(__GNUC__) && __GNUC__ >= 6 && !defined(__clang__) && defined(__x86_64__) \\
    && defined(__GLIBC__)
#define SG_TARGET_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define SG_TARGET_CLONES
#endif"""
"""Put before every block function of the written file: one binary, the vectors of the CPU it runs on."""

SHARED_FLAGS = ["-shared", "-fPIC"]
"""Added to the build flags to make a shared library (verification loads it with ctypes)."""

MAX_BLOCKS = 1024
"""At most this many blocks (one stack slot per block and sum): above ``MAX_BLOCKS *
BLOCK`` points the blocks grow instead."""

_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while "
    "bool true false nullptr alignas alignof constexpr static_assert thread_local typeof typeof_unqual".split())
_PRINTED_NAMES = frozenset({"sqrt", "fabs", "floor", "ceil", "NAN", "INFINITY"})  # what CPrinter calls unprefixed
_LOOP_NAMES = ("n", "i", "block", "start", "stop", "partial")
"""The names the generated functions use for their own variables."""


class _Layout:
    """The loop shape, element count and blocking of a program, or an ExportError saying why one loop cannot take it."""

    def __init__(self, program: Program) -> None:
        shapes = {s for s in program.input_shapes if s != ()}
        if len(shapes) > 1:
            raise ExportError(f"the c target loops over one shape, but the array inputs have the shapes "
                              f"{sorted(shapes)}; export a function whose array inputs share one shape")
        self.shape = shapes.pop() if shapes else ()
        self.n = size_of(self.shape)
        self.block = max(BLOCK, -(-self.n // MAX_BLOCKS))
        self.blocks = max(1, -(-self.n // self.block))


def _c_name(program: Program) -> str:
    if not program.name.isidentifier():
        raise ExportError(f"the c target names its functions after the exported one, and {program.name!r} is not "
                          "an identifier; export a function defined with def")
    return program.name


@dataclass
class Abi:
    """What the exported functions take besides the inputs and outputs: ``lengths``, the
    leading ``long`` parameters as ``(parameter, macro, value)`` -- one ``n`` when the array
    inputs share one shape, else one ``<input>_n`` per array input -- and ``work``, the
    doubles of the trailing workspace ``double *work`` (0: no such parameter)."""

    lengths: list[tuple[str, str, int]]
    work: int = 0


def abi(program: Program, header: str | None = None) -> Abi:
    """The :class:`Abi` of ``program``'s exported functions (the workspace as ``header``, the
    written ``.h``, declares it: its size is known once the code is written)."""
    prefix = _c_name(program).upper()
    arrays = [(name, shape) for name, shape in zip(program.input_names, program.input_shapes) if shape != ()]
    if len({shape for _, shape in arrays}) <= 1:
        lengths = [("n", f"{prefix}_N", size_of(arrays[0][1]) if arrays else 1)]
    else:
        lengths = [(f"{name}_n", f"{prefix}_{name}_N", size_of(shape)) for name, shape in arrays]
    found = re.search(rf"^#define {prefix}_WORK (\d+)L", header or "", flags=re.M)
    return Abi(lengths, int(found.group(1)) if found else 0)


def _check_names(program: Program, prefix: str) -> None:
    """Raise ExportError for an argument whose name the C code cannot take as a parameter's."""
    outputs = program.output_names
    own = {**{p: "a length parameter" for p, _, _ in abi(program).lengths}, "work": "the workspace parameter",
           **{n: "a C keyword" for n in _C_KEYWORDS}, **{n: "a C function or macro the code calls"
                                                         for n in _PRINTED_NAMES},
           **{n: "a variable of the generated loops" for n in _LOOP_NAMES},
           **{o: "the name of an output" for o in outputs}, **{f"{o}_sum": "an accumulator" for o in outputs},
           **{f"{prefix.upper()}_{m}": "a macro of the file" for m in ("N", "BLOCK", "BLOCKS")}}
    for name in program.input_names:
        reason = own.get(name) or ("the prefix of the file's helpers" if name.lower().startswith("sg_") else None)
        if reason:
            raise ExportError(f"the c target names each C parameter after its argument, and the argument "
                              f"{name!r} is {reason} in the written code; rename the argument")


def _signature(prefix: str, function: str, program: Program, outputs: list[str], abi: Abi) -> str:
    params = [f"long {p}" for p, _, _ in abi.lengths] + [f"const double *{n}" for n in program.input_names]
    params += [f"double *{o}" for o in outputs] + (["double *work"] if abi.work else [])
    return f"int {prefix}_{function}({', '.join(params)})"


def _length_check(abi: Abi) -> str:
    return f"    if ({' || '.join(f'{p} != {m}' for p, m, _ in abi.lengths)}) return -1;"


def _wrapped_comment(output: str, expr: sp.Expr, indent: str) -> list[str]:
    return comment(f"{output} = {sp.sstr(expr)}", indent)


def _print_outputs(names: dict, taken: set, indent: str, targets: list[str], bodies: list,
                   exprs: list[sp.Expr], outputs: list[str]) -> list[str]:
    """The CSE temporaries of ``bodies`` as locals, then ``<target> <body>;`` for each, under its closed form."""
    order, temps, constants = plan(bodies)
    temps = {node: name.lstrip("_") if name.lstrip("_") not in taken else name for node, name in temps.items()}
    printer = CPrinter(names, temps, constants)
    lines = [f"{indent}const double {temps[node]} = {printer.define(node)};" for node in order]
    for target, body, expr, output in zip(targets, bodies, exprs, outputs):
        lines += _wrapped_comment(output, expr, indent)
        lines.append(f"{indent}{target} {printer.print(body)};")
    return lines


def _function(prefix: str, function: str, program: Program, layout: _Layout, outputs: list[str],
              exprs: list[sp.Expr]) -> str:
    """One exported function: the block function of its loop (if it has one) and the function itself."""
    plans = [split_reduction(e) for e in exprs]
    bodies, inner = cut_reductions([body for _, body in plans])
    if inner:
        raise ExportError(f"the c target cannot express a full sum inside an expression ({next(iter(inner))}); "
                          "it loops once over the points")
    try:
        check_translatable(bodies, outputs, "c", "the c target translates elementwise operations and full sums; ")
    except UnsupportedExpressionError as err:
        raise ExportError(str(err).replace("backend", "target")) from None  # "...; use target='numpy', which ..."
    # the shape each output is computed over: an elementwise output's own (its body may be a
    # scalar broadcast to it, as ``ones((40,))`` is 1), a sum's or mean's argument's
    computed = [tuple(shape_of(expr if kind == "elementwise" else body))
                for (kind, _), expr, body in zip(plans, exprs, bodies)]
    for output, body, shape in zip(outputs, bodies, computed):
        for over in (shape, tuple(shape_of(body))):
            if over not in ((), layout.shape):
                raise ExportError(f"the c target loops over the shape {layout.shape}, but {output} is computed "
                                  f"over the shape {over}")
    taken = set(program.input_names) | set(outputs) | set(_LOOP_NAMES)
    # an output computed over one element (a gradient of a scalar parameter that needs no
    # sum, the sum of a scalar) is computed once, outside the loop; the others in one pass
    looped = [k for k, shape in enumerate(computed) if shape and shape == layout.shape]
    once = [k for k in range(len(bodies)) if k not in looped]
    sums = [k for k in looped if plans[k][0] != "elementwise"]
    macro = prefix.upper()
    lines = []
    if looped:
        block_params = ["long start", "long stop"] + [
            f"const double *restrict {n}" if shape else f"double {n}"
            for n, shape in zip(program.input_names, program.input_shapes)]
        block_params += [f"double *restrict {outputs[k]}" for k in looped if k not in sums]
        block_params += ["double *restrict partial"] if sums else []
        accumulators = [f"{outputs[k]}_sum" for k in sums]
        names = {s: f"{n}[i]" if shape else n
                 for s, n, shape in zip(program.symbols, program.input_names, program.input_shapes)}
        lines += [f"SG_TARGET_CLONES static void {prefix}_{function}_block({', '.join(block_params)}) {{"]
        lines += [f"    double {a} = 0.0;" for a in accumulators]
        lines += ["    #pragma omp simd" + (f" reduction(+:{', '.join(accumulators)})" if accumulators else ""),
                  "    for (long i = start; i < stop; i++) {"]
        targets = [f"{outputs[k]}_sum +=" if k in sums else f"{outputs[k]}[i] =" for k in looped]
        lines += _print_outputs(names, taken, "        ", targets, [bodies[k] for k in looped],
                                [exprs[k] for k in looped], [outputs[k] for k in looped])
        lines += ["    }"] + [f"    partial[{j}] = {a};" for j, a in enumerate(accumulators)] + ["}", ""]
    lines += [_signature(prefix, function, program, outputs, Abi([("n", f"{macro}_N", layout.n)])) + " {",
              f"    if (n != {macro}_N) return -1;"]
    if looped:
        args = ["start", "stop"]
        args += [n if shape else f"{n}[0]" for n, shape in zip(program.input_names, program.input_shapes)]
        args += [outputs[k] for k in looped if k not in sums] + (["partial[block]"] if sums else [])
        lines += [f"    double partial[{macro}_BLOCKS][{len(sums)}];"] if sums else []
        lines += [f"    #pragma omp parallel for schedule(static) if({macro}_BLOCKS > 2)",
                  f"    for (long block = 0; block < {macro}_BLOCKS; block++) {{",
                  f"        const long start = block * {macro}_BLOCK, stop = start + {macro}_BLOCK < n ? start + "
                  f"{macro}_BLOCK : n;",
                  f"        {prefix}_{function}_block({', '.join(args)});",
                  "    }"]
        for j, k in enumerate(sums):
            total = f"{outputs[k]}_sum"
            lines += [f"    double {total} = 0.0;",
                      f"    for (long block = 0; block < {macro}_BLOCKS; block++) {total} += partial[block][{j}];",
                      f"    {outputs[k]}[0] = {total}" + (f" / {float(layout.n)!r};" if plans[k][0] == "mean"
                                                          else ";")]
    if once:
        names = {s: f"{n}[0]" for s, n, shape in zip(program.symbols, program.input_names, program.input_shapes)
                 if not shape}
        lines += _print_outputs(names, taken, "    ", [f"{outputs[k]}[0] =" for k in once], [bodies[k] for k in once],
                                [exprs[k] for k in once], [outputs[k] for k in once])
    lines += ["    return 0;", "}"]
    return "\n".join(lines)


def _functions(program: Program) -> list[tuple[str, list[str], list[sp.Expr]]]:
    return [("value", ["value"], [program.value]),
            ("grad", program.grad_names, program.grads),
            ("value_and_grad", ["value"] + program.grad_names, [program.value] + program.grads)]


def _about(program: Program, prefix: str, abi: Abi) -> list[str]:
    """The comment both files start with: what the code computes, its ABI and how to build it."""
    macro = prefix.upper()
    about = [f"Value and gradient of {program.name}, exported by symgrad and verified against its engines.", "",
             "Derived for the inputs (float64, C order):"]
    about += [f"    {line}" for line in describe_inputs(program)]
    about += ["", "Closed forms:"] + [f"    {line}" for line in closed_form_lines(program)]
    if [p for p, _, _ in abi.lengths] == ["n"]:
        lengths = f"n = {macro}_N, the number of elements of each array input,"
    else:
        lengths = ("the number of elements of each array input (" + ", ".join(f"{p} = {m}" for p, m, _ in abi.lengths)
                   + "),")
    work = (f" The last argument, work, points to {macro}_WORK doubles of scratch space that the function "
            "overwrites (one per concurrent call)." if abi.work else "")
    paragraphs = [
        (f"ABI: every function takes {lengths} and pointers to contiguous float64 data in C order: an array holds "
         "as many elements as its shape, a scalar or the value one, a gradient as many as its input. Outputs must "
         f"not overlap the inputs or each other.{work} A function returns 0, or -1 (writing nothing) if a length "
         "is wrong. No allocation, no globals: reentrant.", ""),
        (f"Build: cc {' '.join(RECOMMENDED_FLAGS)} -c {prefix}.c (link with -fopenmp -lm).", ""),
        ("-fopenmp runs the blocks of points on all cores and vectorises each block's loop with glibc's vector "
         "math (with GCC on x86-64, in the widest vectors this CPU has); the sums are added up block by block in a "
         "fixed order, so results do not depend on the number of threads. -fno-math-errno makes sqrt one "
         "instruction; -ffp-contract=off keeps a*b + c two roundings, as NumPy computes it. Do not use "
         "-ffast-math: it assumes no NaN or infinity, reorders sums and flushes subnormals to zero.", "  "),
        (f"Any C compiler: cc -O2 -c {prefix}.c (link with -lm) ignores the OpenMP pragmas and computes the same "
         "values on one thread, equal to rounding.", "  "),
    ]
    for text, indent in paragraphs:
        about += [""] if not indent else []
        about += textwrap.wrap(text, 92, initial_indent=indent, subsequent_indent=indent, break_long_words=False)
    return about


def _one_pass(program: Program, prefix: str) -> tuple[Abi, list[str], list[tuple[str, str]]]:
    """``(abi, macros, [(function, C)])``: the program as one pass over the points; an
    ExportError when one loop cannot compute it."""
    layout = _Layout(program)
    macro = prefix.upper()
    functions = [(function, _function(prefix, function, program, layout, outputs, exprs))
                 for function, outputs, exprs in _functions(program)]
    macros = [f"#define {macro}_BLOCK {layout.block}L  /* points per block: one OpenMP work item */",
              f"#define {macro}_BLOCKS {layout.blocks}L"]
    return Abi([("n", f"{macro}_N", layout.n)]), macros, functions


def _in_steps(program: Program, prefix: str) -> tuple[Abi, list[str], list[tuple[str, str]]]:
    """``(abi, macros, [(function, C)])``: the program as the c backend plans it, in steps
    (:mod:`.c_steps`); an ExportError naming what C cannot compute."""
    planned = []
    for function, outputs, exprs in _functions(program):
        comments = [_wrapped_comment(o, e, "    ") for o, e in zip(outputs, exprs)]
        planned.append((function, outputs, StepsFunction(f"{prefix}_{function}", program.symbols, program.input_names,
                                                         exprs, outputs, comments, "SG_TARGET_CLONES")))
    shape = Abi(abi(program).lengths, max(steps.work for _, _, steps in planned))
    functions = []
    for function, outputs, steps in planned:
        unused = ["    (void)work;  /* this function needs no workspace */"] if shape.work and not steps.work else []
        body = [_signature(prefix, function, program, outputs, shape) + " {", _length_check(shape), *unused,
                *steps.lines, "    return 0;", "}"]
        functions.append((function, "\n\n".join(steps.definitions + ["\n".join(body)])))
    work = [f"#define {prefix.upper()}_WORK {shape.work}L  /* doubles of workspace each call needs */"]
    return shape, (work if shape.work else []) + ["", RUNNER], functions


def write(program: Program) -> dict[str, str]:
    """The ``.c`` and ``.h`` sources: one pass over the points when one loop computes the
    program, else the c backend's plan written out in steps."""
    for name, dtype in zip(program.input_names, program.input_dtypes):
        if dtype != np.float64:
            raise ExportError(f"the c target takes float64 inputs; {name} is {dtype}")
    prefix = _c_name(program)
    _check_names(program, prefix)
    try:
        shape, macros, functions = _one_pass(program, prefix)
    except ExportError:
        shape, macros, functions = _in_steps(program, prefix)
    macro = prefix.upper()
    guard = f"{macro}_EXPORT_H"
    comment = "/*\n" + "\n".join(f" * {line}".rstrip() for line in _about(program, prefix, shape)) + "\n */"
    sizes = [f"#define {m} {value}L" for _, m, value in shape.lengths]
    work = [m for m in macros if m.startswith(f"#define {macro}_WORK ")]
    header = [comment, f"#ifndef {guard}", f"#define {guard}", "", *sizes, *work, "",
              "#ifdef __cplusplus", 'extern "C" {', "#endif", ""]
    source = [comment, C_HEADER, TARGET_CLONES, "", *sizes, *macros, ""]
    for (function, outputs, _), (_, text) in zip(_functions(program), functions):
        header.append(_signature(prefix, function, program, outputs, shape) + ";")
        source += [text, ""]
    header += ["", "#ifdef __cplusplus", "}", "#endif", "", f"#endif  /* {guard} */"]
    return {".c": "\n".join(source), ".h": "\n".join(header) + "\n"}


def _build(compiler: list[str], flags: list[str], source: Path, header: Path, library: Path) -> str | None:
    """Build ``source`` (with ``header`` included first) into ``library``; the compiler's errors, or None."""
    built = subprocess.run(compiler + flags + SHARED_FLAGS + ["-include", str(header), "-o", str(library),
                                                              str(source), "-lm"], capture_output=True, text=True)
    return None if built.returncode == 0 else built.stderr[-2000:]


def has_openmp(compiler: list[str], directory: Path) -> bool:
    """Whether ``compiler`` builds an empty file with ``-fopenmp`` (Apple's clang, for one, does not)."""
    probe = directory / "openmp_probe.c"
    probe.write_text("int sg_openmp_probe;\n")
    return subprocess.run(compiler + ["-fopenmp", "-c", "-o", str(probe.with_suffix(".o")), str(probe)],
                          capture_output=True).returncode == 0


def load(paths: Sequence[Path], program: Program) -> Callable[[Sequence[np.ndarray]], list]:
    """Build the written ``.c`` (with its ``.h`` included first) with :data:`PLAIN_FLAGS` and,
    when the compiler has OpenMP, with :data:`RECOMMENDED_FLAGS`, into libraries beside it,
    and call both through ctypes: ``inputs -> [(label, output index, array)]``."""
    source, header = paths
    try:
        compiler = find_compiler()
    except BackendError as err:
        raise ExportError(f"the c target builds the written code to verify it: {err}") from None
    libraries = []
    for flags, label in ((PLAIN_FLAGS, ""), (RECOMMENDED_FLAGS, f" (built with {' '.join(RECOMMENDED_FLAGS)})")):
        library = source.with_name(f"{source.stem}{'_openmp' if label else ''}.so")
        errors = _build(compiler, flags, source, header, library)
        if errors is not None and label and not has_openmp(compiler, source.parent):
            continue  # the plain build is the promise; the OpenMP one is verified where it can be built
        if errors is not None:
            raise ExportError(f"the written C code does not build with {' '.join(compiler + flags)}:\n{errors}")
        libraries.append((ctypes.CDLL(str(library)), label))
    prefix = _c_name(program)
    shape = abi(program, header.read_text())
    lengths = [ctypes.c_long(value) for _, _, value in shape.lengths]
    shapes = [program.input_shapes[i] for i in program.wrt]

    def call(lib: ctypes.CDLL, label: str, function: str, names: list[str], out_shapes: list[tuple],
             values: Sequence[np.ndarray]) -> list:
        inputs = [np.ascontiguousarray(v, dtype=np.float64) for v in values]
        outs = [np.zeros(s) for s in out_shapes]
        work = [np.full(shape.work, np.nan)] if shape.work else []  # (garbage in: the code must not read it)
        status = getattr(lib, f"{prefix}_{function}")(
            *lengths, *[ctypes.c_void_p(a.ctypes.data) for a in inputs + outs + work])
        if status != 0:
            raise ExportError(f"{prefix}_{function}{label} returned {status}")
        return [(f"{prefix}_{function} {name}{label}", program.output_names.index(name), out)
                for name, out in zip(names, outs)]

    def outputs(values: Sequence[np.ndarray]) -> list:
        grads = program.grad_names
        return [result for lib, label in libraries for result in
                call(lib, label, "value", ["value"], [()], values) + call(lib, label, "grad", grads, shapes, values)
                + call(lib, label, "value_and_grad", ["value"] + grads, [()] + shapes, values)]

    return outputs
