"""Prototype evaluation backends for symgrad's closed forms (measured in the benchmarks).

symgrad's compiler (``symgrad.symbolic.codegen.compile``) turns closed forms into one NumPy
function.  These prototypes take the *same* closed forms (SymPy expressions over
array or scalar symbols, with symgrad's own CSE, ``common_subexpressions``) and emit
other code, to measure what a backend hook in ``compile_exprs`` would gain:

``numba_elementwise``
    The fused loop as a ``numba.njit(parallel=True)`` kernel (scalar libm calls).
``numexpr_elementwise``
    Each CSE temporary evaluated by ``numexpr.evaluate`` (multi-threaded, blocked).
``symengine_scalar``
    The closed forms handed to symengine's LLVM ``Lambdify``.

Each returns a :class:`Backend` whose ``__call__`` takes the inputs in symbol order
and returns the outputs in order, and which records ``compile_seconds`` and
``source``.  Unsupported expressions raise :class:`Unsupported`.

The generated-C prototypes once measured here are now symgrad's ``c_fused`` and
``c_scalar`` backends (``symgrad.symbolic.codegen.backends``); the benchmarks call them through
``backend="c"``.
"""
from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

# ---------------------------------------------------------------------------- helpers


class Unsupported(Exception):
    """The expressions use something this backend does not translate."""


def _cse(outputs: Sequence[sp.Expr]):
    """symgrad's own CSE (shared nodes get one temporary each), in evaluation order."""
    from symgrad.symbolic.codegen.compile import common_subexpressions

    return common_subexpressions(list(outputs))


def _structural():
    from symgrad.symbolic.forms.structural import StructuralFunction

    return StructuralFunction


def _is_full_sum(expr: sp.Expr) -> bool:
    from symgrad.symbolic.forms.structural import Sum

    return isinstance(expr, Sum) and expr.attrs.get("dim") is None


def _strip(expr: sp.Expr) -> sp.Expr:
    """Drop shape-only wrappers (``broadcast_to`` of an already full-shape elementwise
    expression) that the compiler adds for exact output shapes."""
    from symgrad.symbolic.forms.structural import BroadcastTo

    while isinstance(expr, BroadcastTo):
        expr = expr.arrays[0]
    return expr


def _check_elementwise(exprs: Sequence[sp.Expr]) -> None:
    Structural = _structural()
    for e in exprs:
        for node in sp.preorder_traversal(e):
            if isinstance(node, Structural):
                raise Unsupported(f"structural op {node.func.__name__} is not elementwise")


# ---------------------------------------------------------------------------- the interface
class Backend:
    """A compiled evaluator: ``backend(*inputs) -> list of outputs``."""

    source: str = ""
    compile_seconds: float = 0.0
    name: str = ""


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
