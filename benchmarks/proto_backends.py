"""Prototype evaluation backends for symgrad's closed forms (measured in the benchmarks).

symgrad's compiler (``symgrad.symbolic.compile``) turns closed forms into one NumPy
function.  These prototypes take the *same* closed forms (SymPy expressions over
array or scalar symbols, with symgrad's own CSE, ``common_subexpressions``) and emit
other code, to measure what a backend hook in ``compile_exprs`` would gain:

``c_elementwise``
    Generated C, one fused loop over all points: every temporary lives in a register,
    each input is read once and each output written once.  Transcendental functions
    are declared ``#pragma omp declare simd`` under their glibc names, so GCC calls
    glibc's vector math library (libmvec, AVX2/AVX-512) *without* ``-ffast-math``
    (IEEE semantics are kept: no reassociation, no finite-math assumption); the loop
    is split over threads with OpenMP.  Full ``sum`` reductions at the root are
    accumulated in the same pass.  Needs a C compiler at run time; loads with ctypes.
``c_scalar``
    Generated C for many scalar symbols (the plain-SymPy form of a problem, e.g. the
    Rosenbrock function of 1,000 symbols): one straight-line function reading a
    packed input vector and writing a packed output vector.
``numba_elementwise``
    The fused loop as a ``numba.njit(parallel=True)`` kernel (scalar libm calls).
``numexpr_elementwise``
    Each CSE temporary evaluated by ``numexpr.evaluate`` (multi-threaded, blocked).
``symengine_scalar``
    The closed forms handed to symengine's LLVM ``Lambdify``.

Each returns a :class:`Backend` whose ``__call__`` takes the inputs in symbol order
and returns the outputs in order, and which records ``compile_seconds`` and
``source``.  Unsupported expressions raise :class:`Unsupported`.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import tempfile
import time
from typing import Any, Sequence

import numpy as np
import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.pycode import PythonCodePrinter

# ---------------------------------------------------------------------------- helpers


class Unsupported(Exception):
    """The expressions use something this backend does not translate."""


def _cse(outputs: Sequence[sp.Expr]):
    """symgrad's own CSE (shared nodes get one temporary each), in evaluation order."""
    from symgrad.symbolic.compile import common_subexpressions

    return common_subexpressions(list(outputs))


def _structural():
    from symgrad.symbolic.structural import StructuralFunction

    return StructuralFunction


def _is_full_sum(expr: sp.Expr) -> bool:
    from symgrad.symbolic.structural import Sum

    return isinstance(expr, Sum) and expr.attrs.get("dim") is None


def _strip(expr: sp.Expr) -> sp.Expr:
    """Drop shape-only wrappers (``broadcast_to`` of an already full-shape elementwise
    expression) that the compiler adds for exact output shapes."""
    from symgrad.symbolic.structural import BroadcastTo

    while isinstance(expr, BroadcastTo):
        expr = expr.arrays[0]
    return expr


def _check_elementwise(exprs: Sequence[sp.Expr]) -> None:
    Structural = _structural()
    for e in exprs:
        for node in sp.preorder_traversal(e):
            if isinstance(node, Structural):
                raise Unsupported(f"structural op {node.func.__name__} is not elementwise")


# ---------------------------------------------------------------------------- C printers
_SIMD_FUNCS = {  # SymPy name -> (C name, arity); glibc 2.35+ has vector variants of all
    "sin": ("sin", 1), "cos": ("cos", 1), "tan": ("tan", 1), "exp": ("exp", 1), "log": ("log", 1),
    "tanh": ("tanh", 1), "sinh": ("sinh", 1), "cosh": ("cosh", 1), "asin": ("asin", 1), "acos": ("acos", 1),
    "atan": ("atan", 1), "asinh": ("asinh", 1), "acosh": ("acosh", 1), "atanh": ("atanh", 1),
    "erf": ("erf", 1), "erfc": ("erfc", 1), "atan2": ("atan2", 2),
}


class _CPrinter(C99CodePrinter):
    """C99 printer naming temporaries and symbols, calling simd-declared math aliases,
    and writing small integer and half-integer powers without ``pow``."""

    def __init__(self, names: dict, temps: dict) -> None:
        super().__init__()
        self._names = names
        self._temps = temps
        self._defining = None
        self.used: set = set()
        for sym_name, (c_name, _) in _SIMD_FUNCS.items():
            self.known_functions[sym_name] = f"sg_{c_name}"

    def _print(self, expr, **kwargs) -> str:
        temp = self._temps.get(expr) if isinstance(expr, sp.Basic) and expr.args else None
        if temp is not None and expr is not self._defining:
            return temp
        return super()._print(expr, **kwargs)

    def define(self, expr) -> str:
        self._defining = expr
        try:
            return self._print(expr)
        finally:
            self._defining = None

    def _print_Symbol(self, expr) -> str:
        try:
            return self._names[expr]
        except KeyError:
            raise Unsupported(f"unknown symbol {expr}") from None

    _print_ArrayVar = _print_Symbol
    _print_Dummy = _print_Symbol

    def _print_Function(self, expr) -> str:
        name = type(expr).__name__
        if name in _SIMD_FUNCS:
            self.used.add(name)
            return f"sg_{_SIMD_FUNCS[name][0]}({', '.join(self._print(a) for a in expr.args)})"
        if name == "sigmoid":
            (a,) = expr.args
            self.used.add("exp")
            return f"sg_sigmoid({self._print(a)})"
        if name == "softplus":
            (a,) = expr.args
            self.used.add("exp")
            self.used.add("log1p")
            return f"sg_softplus({self._print(a)})"
        if isinstance(expr, _structural()):
            raise Unsupported(f"structural op {name}")
        return super()._print_Function(expr)

    def _print_Pow(self, expr) -> str:
        base, exp = expr.args
        b = self.parenthesize(base, 100)
        if exp.is_Integer and 1 <= int(exp) <= 4:
            return "(" + "*".join([b] * int(exp)) + ")"
        if exp.is_Integer and -4 <= int(exp) <= -1:
            return "(1.0/(" + "*".join([b] * -int(exp)) + "))"
        if exp == sp.Rational(1, 2) or exp == sp.Float(0.5):
            return f"sqrt({self._print(base)})"
        if exp == -sp.Rational(1, 2) or exp == sp.Float(-0.5):
            return f"(1.0/sqrt({self._print(base)}))"
        if exp == sp.Rational(3, 2) or exp == sp.Float(1.5):
            return f"({b}*sqrt({self._print(base)}))"
        self.used.add("pow")
        return f"sg_pow({self._print(base)}, {self._print(exp)})"

    def _print_Float(self, expr) -> str:
        return repr(float(expr))

    def _print_Rational(self, expr) -> str:
        return f"({expr.p}.0/{expr.q}.0)"


def _c_header(used: set) -> str:
    """Declarations of every math function the printer may call (unused ones cost nothing)."""
    lines = ["#include <math.h>", "#include <stddef.h>"]
    for c_name, arity in sorted(set(_SIMD_FUNCS.values()) | {("pow", 2), ("log1p", 1), ("expm1", 1)}):
        args = ", ".join(["double"] * arity)
        lines.append("#pragma omp declare simd notinbranch")
        lines.append(f'__attribute__((const, nothrow)) double sg_{c_name}({args}) __asm__("{c_name}");')
    lines.append("static inline double sg_sigmoid(double z) {"
                 " double e = sg_exp(-fabs(z)); return z >= 0 ? 1.0/(1.0+e) : e/(1.0+e); }")
    lines.append("static inline double sg_softplus(double z) { return fmax(z, 0.0) + sg_log1p(sg_exp(-fabs(z))); }")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- compiling C
_BUILD_DIR = None


def _build_dir() -> str:
    global _BUILD_DIR
    if _BUILD_DIR is None:
        _BUILD_DIR = tempfile.mkdtemp(prefix="symgrad-bench-c-")
    return _BUILD_DIR


C_FLAGS = ["-O2", "-march=native", "-fopenmp", "-fno-math-errno", "-shared", "-fPIC"]
"""``-fno-math-errno`` lets ``sqrt`` be one instruction; no ``-ffast-math``."""


def compile_c(source: str, flags: Sequence[str] | None = None) -> ctypes.CDLL:
    """Compile ``source`` to a shared library with the system C compiler and load it."""
    from bench_tools import c_compiler

    cc = c_compiler()
    if cc is None:
        raise Unsupported("no C compiler")
    flags = list(flags or C_FLAGS)
    digest = hashlib.sha1((source + " ".join(flags)).encode()).hexdigest()[:16]
    base = os.path.join(_build_dir(), f"k{digest}")
    with open(base + ".c", "w") as f:
        f.write(source)
    proc = subprocess.run([cc, *flags, base + ".c", "-o", base + ".so", "-lm"], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"C compilation failed: {proc.stderr[:2000]}")
    return ctypes.CDLL(base + ".so")


class Backend:
    """A compiled evaluator: ``backend(*inputs) -> list of outputs``."""

    source: str = ""
    compile_seconds: float = 0.0
    name: str = ""


class CElementwise(Backend):
    """See :func:`c_elementwise`."""

    name = "C (fused, OpenMP, libmvec)"

    def __init__(self, symbols: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], *, block: int = 2048) -> None:
        t0 = time.perf_counter()
        outputs = [_strip(o) for o in outputs]
        self.reduce = [_is_full_sum(o) for o in outputs]
        bodies = [o.arrays[0] if r else o for o, r in zip(outputs, self.reduce)]
        _check_elementwise(bodies)
        shapes = [tuple(getattr(s, "array_shape", ())) for s in symbols]
        full = [s for s in shapes if s]
        if full and any(s != full[0] for s in full):
            raise Unsupported(f"inputs of different shapes {shapes}")
        self.shape = full[0] if full else ()
        self.is_array = [bool(s) for s in shapes]
        names = {}
        params = ["long n"]
        loads = []
        for i, (sym, arr) in enumerate(zip(symbols, self.is_array)):
            if arr:
                params.append(f"const double* restrict in{i}")
                loads.append(f"            const double v{i} = in{i}[i];")
            else:
                params.append(f"const double v{i}")
            names[sym] = f"v{i}"
        order, temps = _cse(bodies)
        printer = _CPrinter(names, temps)
        lines = []
        for node in order:
            lines.append(f"            const double {temps[node]} = {printer.define(node)};")
        stores = []
        accs = []
        for k, (body, red) in enumerate(zip(bodies, self.reduce)):
            text = printer._print(body)
            if red:
                accs.append(f"acc{k}")
                stores.append(f"            acc{k} += {text};")
            else:
                params.append(f"double* restrict out{k}")
                stores.append(f"            out{k}[i] = {text};")
        n_red = len(accs)
        if n_red:
            params.append("double* restrict red")
        body_params = ", ".join(params)
        call_args = ["m"] + [f"in{i} + s" if a else f"v{i}" for i, a in enumerate(self.is_array)]
        call_args += [f"out{k} + s" for k, r in enumerate(self.reduce) if not r]
        acc_decl = "".join(f"    double acc{k} = 0.0;\n" for k in range(len(bodies)) if self.reduce[k])
        simd = f"#pragma omp simd reduction(+:{','.join(accs)})" if accs else "#pragma omp simd"
        src = [_c_header(printer.used), "",
               f"static void block({body_params.replace('double* restrict red', 'double* restrict part')}) {{",
               acc_decl,
               "    {",
               f"        {simd}",
               "        for (long i = 0; i < n; i++) {",
               *loads, *lines, *stores,
               "        }",
               "    }",
               *[f"    part[{j}] = {a};" for j, a in enumerate(accs)],
               "}", "",
               f"void kernel({body_params}) {{",
               f"    const long B = {block};",
               *[f"    double tot{j} = 0.0;" for j in range(n_red)],
               f"    #pragma omp parallel for schedule(static){' reduction(+:' + ','.join(f'tot{j}' for j in range(n_red)) + ')' if n_red else ''}",
               "    for (long s = 0; s < n; s += B) {",
               "        long m = n - s < B ? n - s : B;",
               f"        double part[{max(n_red, 1)}];",
               f"        block({', '.join(call_args + (['part'] if n_red else []))});",
               *[f"        tot{j} += part[{j}];" for j in range(n_red)],
               "    }",
               *[f"    red[{j}] = tot{j};" for j in range(n_red)],
               "}", ""]
        self.source = "\n".join(src)
        self.lib = compile_c(self.source)
        self.fn = self.lib.kernel
        self.fn.restype = None
        self.n_red = n_red
        self.compile_seconds = time.perf_counter() - t0

    def __call__(self, *inputs: Any) -> list:
        n = int(np.prod(self.shape)) if self.shape else 1
        args: list = [ctypes.c_long(n)]
        keep = []
        for x, arr in zip(inputs, self.is_array):
            if arr:
                a = np.ascontiguousarray(x, dtype=np.float64)
                keep.append(a)
                args.append(ctypes.c_void_p(a.ctypes.data))
            else:
                args.append(ctypes.c_double(float(x)))
        outs: list = []
        for red in self.reduce:
            if not red:
                o = np.empty(self.shape)
                outs.append(o)
                args.append(ctypes.c_void_p(o.ctypes.data))
            else:
                outs.append(None)
        if self.n_red:
            red_buf = np.empty(self.n_red)
            args.append(ctypes.c_void_p(red_buf.ctypes.data))
        self.fn(*args)
        j = 0
        for k, red in enumerate(self.reduce):
            if red:
                outs[k] = red_buf[j]
                j += 1
        return outs


def c_elementwise(symbols, outputs, **kw) -> CElementwise:
    """Fused, threaded, vectorised C for elementwise closed forms (plus full sums)."""
    return CElementwise(symbols, outputs, **kw)


SCALAR_FLAGS = ["-O0", "-march=native", "-fno-math-errno", "-shared", "-fPIC"]
"""Straight-line code of thousands of statements: GCC's optimiser is superlinear in the
size of one basic block (about 7 s at -O1 for the 1,000-variable Rosenbrock gradient,
0.45 s at -O0), and the code gains little from it."""


class CScalar(Backend):
    """See :func:`c_scalar`."""

    name = "C (straight-line scalar)"

    def __init__(self, symbols: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], *, flags=None) -> None:
        t0 = time.perf_counter()
        flags = flags or SCALAR_FLAGS
        names = {s: f"x[{i}]" for i, s in enumerate(symbols)}
        order, temps = _cse(outputs)
        printer = _CPrinter(names, temps)
        body = [f"    const double {temps[node]} = {printer.define(node)};" for node in order]
        body += [f"    out[{k}] = {printer._print(o)};" for k, o in enumerate(outputs)]
        self.source = "\n".join([_c_header(printer.used), "",
                                 "void kernel(const double* restrict x, double* restrict out) {",
                                 *body, "}", ""])
        self.t_generate = time.perf_counter() - t0
        self.lib = compile_c(self.source, flags)
        self.fn = self.lib.kernel
        self.fn.restype = None
        self.fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.n_out = len(outputs)
        self.compile_seconds = time.perf_counter() - t0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x`` is the packed input vector; returns the packed outputs."""
        out = np.empty(self.n_out)
        self.fn(x.ctypes.data, out.ctypes.data)
        return out


def c_scalar(symbols, outputs, **kw) -> CScalar:
    """Straight-line C for scalar closed forms (packed vector in, packed vector out)."""
    return CScalar(symbols, outputs, **kw)


# ---------------------------------------------------------------------------- numba
class _NumbaPrinter(PythonCodePrinter):
    def __init__(self, names: dict, temps: dict) -> None:
        super().__init__({"fully_qualified_modules": True})
        self._names = names
        self._temps = temps
        self._defining = None

    def _print(self, expr, **kwargs) -> str:
        temp = self._temps.get(expr) if isinstance(expr, sp.Basic) and expr.args else None
        if temp is not None and expr is not self._defining:
            return temp
        return super()._print(expr, **kwargs)

    def define(self, expr) -> str:
        self._defining = expr
        try:
            return self._print(expr)
        finally:
            self._defining = None

    def _print_Symbol(self, expr) -> str:
        return self._names[expr]

    _print_ArrayVar = _print_Symbol

    def _print_Function(self, expr):
        name = type(expr).__name__
        if name == "sigmoid":
            return f"_sigmoid({self._print(expr.args[0])})"
        if name == "softplus":
            return f"_softplus({self._print(expr.args[0])})"
        if isinstance(expr, _structural()):
            raise Unsupported(f"structural op {name}")
        return super()._print_Function(expr)


class NumbaElementwise(Backend):
    """See :func:`numba_elementwise`."""

    name = "numba (fused, parallel)"

    def __init__(self, symbols, outputs, example_inputs: Sequence[Any]) -> None:
        import math

        import numba

        t0 = time.perf_counter()
        outputs = [_strip(o) for o in outputs]
        self.reduce = [_is_full_sum(o) for o in outputs]
        bodies = [o.arrays[0] if r else o for o, r in zip(outputs, self.reduce)]
        _check_elementwise(bodies)
        self.is_array = [bool(getattr(s, "array_shape", ())) for s in symbols]
        names = {s: (f"a{i}[i]" if arr else f"a{i}") for i, (s, arr) in enumerate(zip(symbols, self.is_array))}
        order, temps = _cse(bodies)
        p = _NumbaPrinter(names, temps)
        args = [f"a{i}" for i in range(len(symbols))]
        outs = [f"o{k}" for k, r in enumerate(self.reduce) if not r]
        lines = [f"def kernel(n, {', '.join(args + outs)}):"]
        accs = [f"acc{k}" for k, r in enumerate(self.reduce) if r]
        for a in accs:
            lines.append(f"    {a} = 0.0")
        lines.append("    for i in numba.prange(n):")
        for node in order:
            lines.append(f"        {temps[node]} = {p.define(node)}")
        for k, (b, r) in enumerate(zip(bodies, self.reduce)):
            lines.append(f"        {'acc%d +=' % k if r else 'o%d[i] =' % k} {p._print(b)}")
        lines.append(f"    return ({', '.join(accs)}{',' if accs else ''})")
        self.source = "\n".join(lines)
        ns: dict = {"numba": numba, "math": math,
                    "_sigmoid": numba.njit(lambda z: 1.0 / (1.0 + math.exp(-z)) if z >= 0 else
                                           math.exp(z) / (1.0 + math.exp(z))),
                    "_softplus": numba.njit(lambda z: max(z, 0.0) + math.log1p(math.exp(-abs(z))))}
        exec(compile(self.source, "<numba kernel>", "exec"), ns)
        self.fn = numba.njit(parallel=True, error_model="numpy")(ns["kernel"])
        self.shape = next((np.shape(x) for x, a in zip(example_inputs, self.is_array) if a), ())
        self(*example_inputs)  # compile now
        self.compile_seconds = time.perf_counter() - t0

    def __call__(self, *inputs):
        n = int(np.prod(self.shape)) if self.shape else 1
        outs = [np.empty(self.shape) for r in self.reduce if not r]
        sums = self.fn(n, *inputs, *outs)
        res, it_o, it_s = [], iter(outs), iter(sums)
        for r in self.reduce:
            res.append(next(it_s) if r else next(it_o))
        return res


def numba_elementwise(symbols, outputs, example_inputs) -> NumbaElementwise:
    """A fused ``numba.njit(parallel=True)`` loop for elementwise closed forms."""
    return NumbaElementwise(symbols, outputs, example_inputs)


# ---------------------------------------------------------------------------- numexpr
def _numexpr_printer(names: dict, temps: dict):
    from sympy.printing.lambdarepr import NumExprPrinter

    class P(NumExprPrinter):
        _defining = None

        def _print(self, expr, **kwargs):
            temp = temps.get(expr) if isinstance(expr, sp.Basic) and expr.args else None
            if temp is not None and expr is not self._defining:
                return temp
            return super()._print(expr, **kwargs)

        def _print_Symbol(self, expr):
            return names.get(expr, expr.name)

        _print_ArrayVar = _print_Symbol

        def _print_Function(self, expr):
            if isinstance(expr, _structural()):
                raise Unsupported(f"structural op {type(expr).__name__}")
            return super()._print_Function(expr)

    return P()


class NumexprElementwise(Backend):
    """See :func:`numexpr_elementwise`."""

    name = "numexpr (per temporary)"

    def __init__(self, symbols, outputs, *, cse: str = "symgrad") -> None:
        import numexpr

        t0 = time.perf_counter()
        outputs = [_strip(o) for o in outputs]
        self.reduce = [_is_full_sum(o) for o in outputs]
        bodies = [o.arrays[0] if r else o for o, r in zip(outputs, self.reduce)]
        _check_elementwise(bodies)
        names = {s: f"a{i}" for i, s in enumerate(symbols)}
        if cse == "sympy":
            replacements, reduced = sp.cse(bodies)
            order = [e for _, e in replacements]
            temps = {}
            steps = []
            p = _numexpr_printer(names, {})
            for sym, e in replacements:
                names[sym] = sym.name
                steps.append((sym.name, p._print(e)))
            finals = [p._print(e) for e in reduced]
        else:
            order, temps = _cse(bodies)
            p = _numexpr_printer(names, temps)
            steps = []
            for node in order:
                p._defining = node
                steps.append((temps[node], p._print(node)))
                p._defining = None
            finals = [p._print(b) for b in bodies]
        self.steps = steps
        self.finals = finals
        self.n_in = len(symbols)
        self.source = "\n".join(f"{n} = evaluate({t!r})" for n, t in steps) + "\n" + "\n".join(
            f"out{k} = {'sum' if r else ''}(evaluate({t!r}))" for k, (t, r) in enumerate(zip(finals, self.reduce)))
        self._ne = numexpr
        self.compile_seconds = time.perf_counter() - t0

    def __call__(self, *inputs):
        ne = self._ne
        env = {f"a{i}": x for i, x in enumerate(inputs)}
        for name, text in self.steps:
            env[name] = ne.evaluate(text, local_dict=env)
        outs = []
        for text, red in zip(self.finals, self.reduce):
            if red:
                outs.append(float(ne.evaluate(f"sum({text})", local_dict=env)))
            else:
                outs.append(ne.evaluate(text, local_dict=env))
        return outs


def numexpr_elementwise(symbols, outputs, **kw) -> NumexprElementwise:
    """numexpr evaluation of the CSE temporaries and outputs."""
    return NumexprElementwise(symbols, outputs, **kw)


# ---------------------------------------------------------------------------- symengine
class SymengineScalar(Backend):
    """See :func:`symengine_scalar`."""

    name = "symengine LLVM"

    def __init__(self, symbols, outputs, *, opt_level: int = 2) -> None:
        import symengine as se

        t0 = time.perf_counter()
        plain = [sp.Symbol(f"s{i}", real=True) for i in range(len(symbols))]
        subs = dict(zip(symbols, plain))
        outs = [se.sympify(sp.sympify(o).xreplace(subs)) for o in outputs]
        self.fn = se.Lambdify([se.sympify(s) for s in plain], outs, backend="llvm", cse=True, opt_level=opt_level)
        self.compile_seconds = time.perf_counter() - t0

    def __call__(self, x):
        return self.fn(x)


def symengine_scalar(symbols, outputs, **kw) -> SymengineScalar:
    """symengine's LLVM JIT over symgrad's closed forms."""
    return SymengineScalar(symbols, outputs, **kw)


# ---------------------------------------------------------------------------- leaner NumPy code
def _basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


class _ExpNegAbs(sp.Function):
    """``exp(-|z|)``, shared by the stable sigmoid and softplus of the same ``z``."""

    nargs = 1

    def _numpycode(self, printer):
        return f"numpy.exp(-numpy.abs({printer._print(self.args[0])}))"


class _SigmoidFrom(sp.Function):
    nargs = 2

    def _numpycode(self, printer):
        z, e = (printer._print(a) for a in self.args)
        return f"(numpy.where({z} >= 0, 1.0, {e})/(1.0 + {e}))"


class _SoftplusFrom(sp.Function):
    nargs = 2

    def _numpycode(self, printer):
        z, e = (printer._print(a) for a in self.args)
        return f"(numpy.maximum({z}, 0) + numpy.log1p({e}))"


class _Sqrt(sp.Function):
    """``sqrt`` as its own node, so that ``b**1.5`` and ``b**0.5`` share one square root."""

    nargs = 1

    def _numpycode(self, printer):
        return f"numpy.sqrt({printer._print(self.args[0])})"


def _half_powers(exprs):
    """``b**0.5 -> sqrt(b)``, ``b**1.5 -> b*sqrt(b)``, ``b**-0.5 -> 1/sqrt(b)``: NumPy's
    ``power`` with a fractional exponent costs an exp and a log per element."""
    half = {sp.Float(0.5), sp.Rational(1, 2)}

    def rule(e):
        base, expo = e.args
        for k in (-1, 0, 1, 2):
            if expo - k in half or (expo.is_Float and float(expo) == k + 0.5):
                root = _Sqrt(base)
                return sp.Mul(base ** k, root) if k else root
        return e

    return [e.replace(lambda x: isinstance(x, sp.Pow) and x.args[1].is_Number and not x.args[1].is_Integer, rule)
            for e in exprs]


def _share_exponentials(exprs):
    """sigmoid(z) and softplus(z) from one ``exp(-|z|)`` per ``z`` (1 exp + 1 log1p
    instead of ``exp(-logaddexp(0, -z))`` and ``logaddexp(0, z)``: 5 transcendentals)."""
    from symgrad.symbolic.stable import sigmoid, softplus

    def rewrite(e):
        return e.replace(sigmoid, lambda z: _SigmoidFrom(z, _ExpNegAbs(z))).replace(
            softplus, lambda z: _SoftplusFrom(z, _ExpNegAbs(z)))

    return [rewrite(e) for e in exprs]


class LeanNumPy(Backend):
    """symgrad's NumPy code generation with four changes, to measure them:

    0. half-integer powers become square roots (``b**1.5 -> b*sqrt(b)``, sharing the root);
    1. basic indexing prints as a subscript (a view), not ``getitem(...)`` (a copy);
    2. a 2-D transpose prints as ``.T`` (a view), not ``transpose(...)`` (a copy);
    3. a sum of ``index_put`` terms of one shape (the adjoint of several slices of one
       array) is accumulated in place into one zeros array;
    4. stable sigmoid/softplus of the same argument share one ``exp(-|z|)``;

    and a thin call path (the generated function, no argument conversion or output
    post-processing).  Everything else is symgrad's printer and CSE.
    """

    name = "lean NumPy printer"

    def __init__(self, symbols, outputs, name: str = "lean") -> None:
        from symgrad.symbolic.compile import SymgradNumPyPrinter, python_name
        from symgrad.symbolic.structural import Getitem, IndexPut, Transpose, attr_code, numpy_namespace

        t0 = time.perf_counter()
        outputs = _share_exponentials(_half_powers(list(outputs)))

        class Printer(SymgradNumPyPrinter):
            def _print(self, expr, **kwargs):
                temp = self._temps.get(expr) if isinstance(expr, sp.Basic) and expr.args else None
                if temp is not None and expr is not self._defining:
                    return temp
                if isinstance(expr, Getitem) and _basic_index(expr.attrs["index"]):
                    index = expr.attrs["index"]
                    inner = ", ".join(attr_code(i) for i in (index if isinstance(index, tuple) else (index,)))
                    return f"({self._print(expr.arrays[0])})[{inner or '()'}]"
                if isinstance(expr, Transpose):
                    return f"numpy.swapaxes({self._print(expr.arrays[0])}, {expr.attrs['dim0']}, {expr.attrs['dim1']})"
                return super()._print(expr, **kwargs)

            def define_temp(self, expr) -> str:
                """``expr`` itself, not the name of its temporary."""
                self._defining = expr
                try:
                    return self._print(expr)
                finally:
                    self._defining = None

        taken: set = set()
        names = [python_name(str(s), taken) for s in symbols]
        # find outputs that are sums of index_put terms
        scatter: dict = {}
        for k, out in enumerate(outputs):
            if isinstance(out, sp.Add):
                puts = [a for a in out.args if isinstance(a, IndexPut) and _basic_index(a.attrs["index"])]
                if len(puts) >= 2 and len({tuple(p.attrs["shape"]) for p in puts}) == 1:
                    rest = [a for a in out.args if a not in puts]
                    scatter[k] = (puts, rest)
        roots = []
        for k, out in enumerate(outputs):
            if k in scatter:
                puts, rest = scatter[k]
                roots += [p.arrays[0] for p in puts] + rest
            else:
                roots.append(out)
        order, temps = _cse(roots)
        printer = Printer(names=dict(zip(symbols, names)), temps=temps)
        lines = [f"def {name}({', '.join(names)}):"]
        for node in order:
            lines.append(f"    {temps[node]} = {printer.define_temp(node)}")
        results = []
        for k, out in enumerate(outputs):
            if k in scatter:
                puts, rest = scatter[k]
                var = f"_out{k}"
                lines.append(f"    {var} = numpy.zeros({tuple(puts[0].attrs['shape'])!r})")
                for p in puts:
                    index = p.attrs["index"]
                    inner = ", ".join(attr_code(i) for i in (index if isinstance(index, tuple) else (index,)))
                    lines.append(f"    {var}[{inner}] += {printer._print(p.arrays[0])}")
                for r in rest:
                    lines.append(f"    {var} += {printer._print(r)}")
                results.append(var)
            else:
                text = printer._print(out)
                if isinstance(out, (Getitem, Transpose)) or out in symbols:
                    text = f"numpy.array({text})"
                results.append(text)
        lines.append(f"    return ({', '.join(results)}{',' if len(results) == 1 else ''})")
        self.source = "\n".join(lines)
        ns = {"numpy": np}
        ns.update(numpy_namespace())
        exec(compile(self.source, "<lean numpy>", "exec"), ns)
        self.fn = ns[name]
        self.compile_seconds = time.perf_counter() - t0

    def __call__(self, *inputs):
        return self.fn(*inputs)


def lean_numpy(symbols, outputs, **kw) -> LeanNumPy:
    """symgrad's closed forms printed as leaner NumPy (see :class:`LeanNumPy`)."""
    return LeanNumPy(symbols, outputs, **kw)
