"""The ``"c"`` export target: a ``.c`` and ``.h`` pair with a plain C ABI.

For ``f`` with float64 inputs ``x, y`` the header declares::

    int f_value(long n, const double *x, const double *y, double *value);
    int f_grad(long n, const double *x, const double *y, double *grad_x, ...);
    int f_value_and_grad(long n, const double *x, const double *y, double *value, double *grad_x, ...);

Every input and output is a pointer to contiguous float64 data in C (row-major) order:
an array input of the derived shape holds ``n`` elements (``n`` must equal ``F_N``, the
number of elements the code was derived for), a scalar input or output one element, a
gradient as many as its input.  Each function returns 0, or -1 (writing nothing) when
``n`` is not ``F_N``.  No Python, no allocation, no globals: the functions are
reentrant.  The file builds with ``cc -O2 -c f.c`` (and links with ``-lm``).

The code is one loop over the ``n`` points written with the C backends' printer and
planner (:mod:`symgrad.symbolic.codegen.backends.c_code`: the same CSE, the same evaluation order
as NumPy, the same helpers), so the target expresses what ``c_fused`` expresses:
elementwise operations over inputs of one shape (or scalars) and full sums and means at
the root of an output.  Anything else -- ``matmul``, slicing, a reduction over some axes,
a sum inside an expression, inputs of different array shapes -- raises
:class:`~symgrad.exporters.errors.ExportError` naming it.
"""
from __future__ import annotations

import ctypes
import subprocess
import textwrap
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import sympy as sp

from ..symbolic.codegen.backends import BackendError, UnsupportedExpressionError
from ..symbolic.codegen.backends.c_code import C_HEADER, CPrinter, check_translatable, cut_reductions, plan, split_reduction
from ..symbolic.codegen.backends.cbuild import find_compiler
from ..symbolic.core.symbols import shape_of, size_of
from .errors import ExportError
from .numpy_target import closed_form_lines, describe_inputs
from .program import Program

SUFFIXES = (".c", ".h")

BUILD_FLAGS = ["-O2", "-shared", "-fPIC"]
"""How verification builds the written file (plus ``-include`` of the header, so the
declarations are checked against the definitions)."""


class _Layout:
    """The loop shape and the element count of a program, or an ExportError saying why C cannot take it."""

    def __init__(self, program: Program) -> None:
        for name, dtype in zip(program.input_names, program.input_dtypes):
            if dtype != np.float64:
                raise ExportError(f"the c target takes float64 inputs; {name} is {dtype}")
        shapes = {s for s in program.input_shapes if s != ()}
        if len(shapes) > 1:
            raise ExportError(f"the c target loops over one shape, but the array inputs have the shapes "
                              f"{sorted(shapes)}; export a function whose array inputs share one shape")
        self.shape = shapes.pop() if shapes else ()
        self.n = size_of(self.shape)


def _c_name(program: Program) -> str:
    if not program.name.isidentifier():
        raise ExportError(f"the c target names its functions after the exported one, and {program.name!r} is not "
                          "an identifier; export a function defined with def")
    return program.name


def _signature(prefix: str, function: str, program: Program, outputs: list[str]) -> str:
    params = ["long n"] + [f"const double *{n}" for n in program.input_names] + [f"double *{o}" for o in outputs]
    return f"int {prefix}_{function}({', '.join(params)})"


def _function(prefix: str, function: str, program: Program, layout: _Layout, outputs: list[str],
              exprs: list[sp.Expr]) -> str:
    plans = [split_reduction(e) for e in exprs]
    bodies, inner = cut_reductions([body for _, body in plans])
    if inner:
        raise ExportError(f"the c target cannot express a full sum inside an expression ({next(iter(inner))}); "
                          "it loops once over the points")
    try:
        check_translatable(bodies, outputs, "c", "the c target translates elementwise operations and full sums; ")
    except UnsupportedExpressionError as err:
        raise ExportError(str(err).replace("backend", "target")) from None  # "...; use target='numpy', which ..."
    for output, body in zip(outputs, bodies):
        if tuple(shape_of(body)) not in ((), layout.shape):
            raise ExportError(f"the c target loops over the shape {layout.shape}, but {output} is computed over "
                              f"the shape {tuple(shape_of(body))}")
    names = {s: f"{n}[i]" if shape else f"{n}[0]"
             for s, n, shape in zip(program.symbols, program.input_names, program.input_shapes)}
    order, temps, constants = plan(bodies)
    taken = set(program.input_names) | set(outputs)
    temps = {node: name.lstrip("_") if name.lstrip("_") not in taken else name for node, name in temps.items()}
    printer = CPrinter(names, temps, constants)
    lines = [_signature(prefix, function, program, outputs) + " {",
             f"    if (n != {prefix.upper()}_N) return -1;"]
    sums = {o: f"{o}_sum" for o, (kind, _) in zip(outputs, plans) if kind != "elementwise"}
    lines += [f"    double {s} = 0.0;" for s in sums.values()]
    lines += ["    for (long i = 0; i < n; i++) {"]
    lines += [f"        const double {temps[node]} = {printer.define(node)};" for node in order]
    for output, expr, body, (kind, _) in zip(outputs, exprs, bodies, plans):
        lines += [f"        /* {line} */" for line in textwrap.wrap(f"{output} = {sp.sstr(expr)}", 90,
                                                                      break_long_words=False)]
        if kind == "elementwise":
            lines.append(f"        {output}[{'i' if shape_of(body) else '0'}] = {printer.print(body)};")
        else:
            lines.append(f"        {sums[output]} += {printer.print(body)};")
    lines.append("    }")
    for output, body, (kind, _) in zip(outputs, bodies, plans):
        if kind != "elementwise":
            count = layout.n if kind == "mean" else layout.n // max(size_of(tuple(shape_of(body))), 1)
            lines.append(f"    {output}[0] = {sums[output]}" + (f" / {float(count)!r};" if count != 1 else ";"))
    lines += ["    return 0;", "}"]
    return "\n".join(lines)


def _functions(program: Program) -> list[tuple[str, list[str], list[sp.Expr]]]:
    return [("value", ["value"], [program.value]),
            ("grad", program.grad_names, program.grads),
            ("value_and_grad", ["value"] + program.grad_names, [program.value] + program.grads)]


def write(program: Program) -> dict[str, str]:
    """The ``.c`` and ``.h`` sources."""
    layout = _Layout(program)
    prefix = _c_name(program)
    guard = f"{prefix.upper()}_EXPORT_H"
    about = [f"Value and gradient of {program.name}, exported by symgrad and verified against its engines.", "",
             "Derived for the inputs (float64, C order):"]
    about += [f"    {line}" for line in describe_inputs(program)]
    about += ["", "Closed forms:"] + [f"    {line}" for line in closed_form_lines(program)]
    about += ["", f"Every function takes n = {prefix.upper()}_N, the number of elements of each array input, and "
              "pointers", "to contiguous float64 data: an array holds n elements, a scalar or the value one, a",
              "gradient as many as its input. It returns 0, or -1 (writing nothing) if n is wrong.",
              "Build: cc -O2 -c " + f"{prefix}.c (link with -lm)."]
    comment = "/*\n" + "\n".join(f" * {line}".rstrip() for line in about) + "\n */"
    header = [comment, f"#ifndef {guard}", f"#define {guard}", "",
              f"#define {prefix.upper()}_N {layout.n}L", ""]
    source = [comment, C_HEADER, f"#define {prefix.upper()}_N {layout.n}L\n"]
    for function, outputs, exprs in _functions(program):
        header.append(_signature(prefix, function, program, outputs) + ";")
        source += [_function(prefix, function, program, layout, outputs, exprs), ""]
    header += ["", f"#endif  /* {guard} */"]
    return {".c": "\n".join(source), ".h": "\n".join(header) + "\n"}


def load(paths: Sequence[Path], program: Program) -> Callable[[Sequence[np.ndarray]], list]:
    """Build the written ``.c`` (with its ``.h`` included first) into a library beside it and
    call it through ctypes: ``inputs -> [(label, output index, array)]``."""
    source, header = paths
    try:
        compiler = find_compiler()
    except BackendError as err:
        raise ExportError(f"the c target builds the written code to verify it: {err}") from None
    library = source.with_suffix(".so")
    built = subprocess.run(compiler + BUILD_FLAGS + ["-include", str(header), "-o", str(library), str(source), "-lm"],
                           capture_output=True, text=True)
    if built.returncode != 0:
        raise ExportError(f"the written C code does not build with {' '.join(compiler)}:\n{built.stderr[-2000:]}")
    lib = ctypes.CDLL(str(library))
    prefix = _c_name(program)
    n = _Layout(program).n
    shapes = [program.input_shapes[i] for i in program.wrt]

    def call(function: str, names: list[str], out_shapes: list[tuple], values: Sequence[np.ndarray]) -> list:
        inputs = [np.ascontiguousarray(v, dtype=np.float64) for v in values]
        outs = [np.zeros(s) for s in out_shapes]
        status = getattr(lib, f"{prefix}_{function}")(
            ctypes.c_long(n), *[ctypes.c_void_p(a.ctypes.data) for a in inputs + outs])
        if status != 0:
            raise ExportError(f"{prefix}_{function} returned {status}")
        return [(f"{prefix}_{function} {name}", program.output_names.index(name), out)
                for name, out in zip(names, outs)]

    def outputs(values: Sequence[np.ndarray]) -> list:
        grads = program.grad_names
        return (call("value", ["value"], [()], values) + call("grad", grads, shapes, values)
                + call("value_and_grad", ["value"] + grads, [()] + shapes, values))

    return outputs
