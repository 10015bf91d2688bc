"""Compile closed forms into one NumPy function, and cache compiled functions by structure.

:func:`compile_exprs` turns SymPy expressions over array symbols into **one** Python
function of NumPy arrays that returns every requested output (typically the value and
all derivatives), like ``sympy.lambdify`` with ``cse``:

* **CSE** is a linear pass over the expression DAG (:func:`common_subexpressions`): every
  non-atomic node used more than once, and every node deeper than a bound, gets one
  temporary.  Because SymPy expressions are hash-consed, a subexpression shared by the
  value and the gradients is computed once.  (``sympy.cse`` also searches for common
  sub-products, which is superlinear; the derivation already shares what matters.)
* **Printing** uses SymPy's NumPy printer (``numpy.exp(x)``); structural ops print as
  function calls bound to the op table's NumPy forwards (``matmul(a, b)``), so no operator
  precedence can be lost.  Inputs and outputs keep readable names (``fc.weight`` becomes
  the argument ``fc_weight``).
* The result is a :class:`CompiledFunction`: call it with arrays (positionally or by
  name); ``.source``, ``.exprs``, ``.inputs`` and ``.outputs`` are inspectable.

Compiled functions live in a bounded LRU cache keyed by graph *structure* -- the
expressions themselves, whose array symbols carry shape and dtype, whose constants are
SymPy numbers and whose attributes are atoms -- never by input values.  Two graphs that
differ in a constant, a dtype, a shape, an axis or a slice have different keys.
:func:`compile_cache_info` reports hits and misses.
"""
from __future__ import annotations

import keyword
import re
import threading
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import sympy as sp
from sympy.functions.elementary.piecewise import ExprCondPair
from sympy.printing.numpy import NumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from .structural import numpy_namespace
from .symbols import shape_of

__all__ = [
    "CompiledFunction", "compile_exprs", "cached", "compile_cache_info", "compile_cache_clear",
    "set_compile_cache_size", "common_subexpressions", "operation_count", "CacheInfo",
]

MAX_DEPTH = 40
"""Nodes deeper than this get a temporary, so printing never recurses deeply."""


# ============================================================================ printer
class SymgradNumPyPrinter(NumPyPrinter):
    """SymPy's NumPy printer with symgrad's conventions: symbols print as their Python
    argument names, temporaries by name, floats exactly, and n-ary ``Max``/``Min``/
    ``And``/``Or`` as nested binary calls (which broadcast, unlike ``reduce``)."""

    def __init__(self, names: dict | None = None, temps: dict | None = None) -> None:
        super().__init__({"fully_qualified_modules": True, "allow_unknown_functions": False, "order": "none"})
        self._names = names or {}
        self._temps = temps or {}
        self._defining: Any = None

    def _print(self, expr, **kwargs) -> str:
        temp = self._temps.get(expr) if isinstance(expr, sp.Basic) and expr.args else None
        if temp is not None and expr is not self._defining:
            return temp
        return super()._print(expr, **kwargs)

    def define(self, expr) -> str:
        """Print ``expr`` itself (not the name of its temporary)."""
        self._defining = expr
        try:
            return self._print(expr)
        finally:
            self._defining = None

    def _print_Symbol(self, expr) -> str:
        name = self._names.get(expr)
        if name is None:
            raise NameError(
                f"the expression uses the symbol {expr} that is not among the inputs "
                f"{list(self._names.values())}; pass it in `inputs`"
            )
        return name

    _print_ArrayVar = _print_Symbol
    _print_Dummy = _print_Symbol

    def _print_Float(self, expr) -> str:
        return repr(float(expr)) if expr._prec <= 53 else super()._print_Float(expr)

    def _print_DiracDelta(self, expr) -> str:
        return f"(0*{self._print(expr.args[0])})"

    def _print_Add(self, expr, order=None) -> str:
        if len(expr.args) <= CHUNK:
            return super()._print_Add(expr, order=order)
        return _balanced([self._print(a) for a in expr.args], " + ")

    def _print_Mul(self, expr) -> str:
        if len(expr.args) <= CHUNK:
            return super()._print_Mul(expr)
        return _balanced([self.parenthesize(a, PRECEDENCE["Mul"], strict=False) for a in expr.args], "*")

    def _nested(self, func: str, args) -> str:
        out = self._print(args[0])
        for arg in args[1:]:
            out = f"{self._module_format('numpy.' + func)}({out}, {self._print(arg)})"
        return out

    def _print_Max(self, expr) -> str:
        return self._nested("maximum", expr.args)

    def _print_Min(self, expr) -> str:
        return self._nested("minimum", expr.args)

    def _print_And(self, expr) -> str:
        return self._nested("logical_and", expr.args)

    def _print_Or(self, expr) -> str:
        return self._nested("logical_or", expr.args)


CHUNK = 32
"""Sums and products with more terms print as balanced groups, so that Python's compiler
never meets one left-deep chain of thousands of operators."""


def _balanced(parts: list[str], op: str) -> str:
    while len(parts) > CHUNK:
        parts = ["(" + op.join(parts[i:i + CHUNK]) + ")" for i in range(0, len(parts), CHUNK)]
    return "(" + op.join(parts) + ")"


# ============================================================================ CSE
def common_subexpressions(outputs: Sequence[sp.Basic]) -> tuple[list, dict]:
    """The nodes that get a temporary, in evaluation order, and ``node -> name``.

    A node gets one when it is not atomic and is used twice or more (by the DAG or as
    an output), or when it sits deeper than :data:`MAX_DEPTH` below its last temporary.
    Linear in the size of the DAG.

    >>> x = sp.Symbol("x")
    >>> order, names = common_subexpressions([sp.exp(x) + 1, sp.exp(x) * 2])
    >>> order, names[sp.exp(x)]
    ([exp(x)], '_t0')
    """
    uses: dict = {}
    order: list = []
    kids: dict = {}
    for out in outputs:
        uses[out] = uses.get(out, 0) + 1
    for root in outputs:
        if root in kids:
            continue
        kids[root] = _args(root)
        stack = [(root, iter(kids[root]))]
        while stack:
            node, it = stack[-1]
            for child in it:
                uses[child] = uses.get(child, 0) + 1
                if child not in kids:
                    kids[child] = _args(child)
                    stack.append((child, iter(kids[child])))
                    break
            else:
                stack.pop()
                order.append(node)
    temps: dict = {}
    chosen: list = []
    depth: dict = {}
    for node in order:  # operands first
        if not node.args:
            depth[node] = 0
            continue
        d = 1 + max((depth.get(c, 0) for c in kids[node]), default=0)
        if (uses.get(node, 0) > 1 or d > MAX_DEPTH) and _nameable(node):
            temps[node] = f"_t{len(chosen)}"
            chosen.append(node)
            d = 0
        depth[node] = d
    return chosen, temps


def _nameable(node: sp.Basic) -> bool:
    return isinstance(node, (sp.Expr, sp.logic.boolalg.Boolean)) and not isinstance(node, ExprCondPair)


def _args(node: sp.Basic) -> tuple:
    return tuple(a for a in node.args if a.args) if node.args else ()


# ============================================================================ compiled function
def python_name(name: str, taken: set) -> str:
    """A valid, unused Python identifier for a display name (``fc.weight`` -> ``fc_weight``).

    >>> python_name("fc.weight", set()), python_name("lambda", set()), python_name("x", {"x"})
    ('fc_weight', 'lambda_', 'x_1')
    """
    base = re.sub(r"\W", "_", name) or "_"
    if base[0].isdigit():
        base = "_" + base
    if keyword.iskeyword(base) or base in _RESERVED:
        base += "_"
    candidate, i = base, 0
    while candidate in taken or candidate.startswith("_t") and candidate[2:].isdigit():
        i += 1
        candidate = f"{base}_{i}"
    taken.add(candidate)
    return candidate


_RESERVED = {"numpy", "array", "equal", "sigmoid", "softplus", "functools"}


class CompiledFunction:
    """One generated NumPy function returning several named outputs.

    Call it with NumPy arrays or Python numbers, positionally in the order of
    ``inputs`` or by name; it returns a named tuple of arrays (``.value``,
    ``.grad_w`` ...).  ``source`` is the generated code, ``exprs`` maps each output name
    to its SymPy closed form, ``latex()`` renders them.

    >>> x = sp.Symbol("x", real=True)
    >>> f = compile_exprs([x], [sp.sin(x), sp.cos(x)], output_names=["value", "grad_x"])
    >>> f(0.0)
    Outputs(value=array(0.), grad_x=array(1.))
    >>> print(f.source)
    def compiled(x):
        return (numpy.sin(x), numpy.cos(x))
    """

    def __init__(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], *,
                 input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 output_shapes: Sequence[tuple | None] | None = None,
                 output_dtypes: Sequence[Any] | None = None, name: str = "compiled") -> None:
        self.symbols = list(inputs)
        taken: set = set()
        self.inputs = [python_name(n, taken) for n in (input_names or [str(s) for s in inputs])]
        out_taken: set = set()
        self.outputs = [python_name(n, out_taken) for n in (output_names or [f"out{i}" for i in range(len(outputs))])]
        if len(self.outputs) != len(outputs):
            raise ValueError(f"got {len(self.outputs)} output names for {len(outputs)} outputs")
        self.exprs: dict[str, sp.Expr] = dict(zip(self.outputs, outputs))
        self.output_shapes = list(output_shapes) if output_shapes is not None else [
            _maybe_shape(e) for e in outputs]
        self.output_dtypes = [None if d is None else np.dtype(d) for d in (output_dtypes or [None] * len(outputs))]
        self.name = name
        self.source, self.n_temporaries = _generate(self.symbols, self.inputs, list(outputs), name)
        namespace = {"numpy": np, "functools": __import__("functools")}
        namespace.update(numpy_namespace())
        code = compile(self.source, f"<symgrad compiled {name}>", "exec")
        exec(code, namespace)
        self.fn: Callable = namespace[name]
        self._result = namedtuple("Outputs", self.outputs, rename=True)

    def __call__(self, *args: Any, **kwargs: Any):
        values = list(args)
        if kwargs:
            lookup = dict(zip(self.inputs, range(len(self.inputs))))
            values += [None] * (len(self.inputs) - len(values))
            for key, value in kwargs.items():
                if key not in lookup:
                    raise TypeError(f"unknown input {key!r}; the inputs are {self.inputs}")
                values[lookup[key]] = value
        if len(values) != len(self.inputs) or any(v is None for v in values):
            raise TypeError(f"{self.name} takes the inputs {self.inputs}, got {len(args)} positional "
                            f"and {sorted(kwargs)} named values")
        arrays = [np.asarray(v) for v in values]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # every branch of a Piecewise is evaluated; the unused ones may warn
            raw = self.fn(*arrays)
        return self._result(*(self._finish(r, i, arrays) for i, r in enumerate(raw)))

    def _finish(self, value: Any, i: int, inputs: list) -> np.ndarray:
        out = np.asarray(value)
        shape, dtype = self.output_shapes[i], self.output_dtypes[i]
        copied = False
        if shape is not None and out.shape != tuple(shape):
            out = np.broadcast_to(out, shape)
        if dtype is not None and out.dtype != dtype:
            out, copied = out.astype(dtype), True
        if not copied and (not out.flags.writeable or not out.flags.owndata or any(out is a for a in inputs)):
            out = np.array(out)
        return out

    def latex(self) -> str:
        """The outputs as LaTeX equations."""
        from .printing import latex

        lines = [rf"\mathrm{{{n.replace('_', chr(92) + '_')}}} &= {latex(e)}" for n, e in self.exprs.items()]
        return r"\begin{aligned}" + r"\\ ".join(lines) + r"\end{aligned}"

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"

    def __repr__(self) -> str:
        return f"<CompiledFunction {self.name}({', '.join(self.inputs)}) -> ({', '.join(self.outputs)})>"


def _maybe_shape(expr: sp.Expr):
    try:
        return shape_of(expr)
    except Exception:  # noqa: BLE001  (unknown functions: leave the shape to NumPy)
        return None


def operation_count(outputs: Sequence[sp.Expr]) -> int:
    """Operations after common-subexpression elimination: every distinct node of the
    DAG counted once -- ``n - 1`` for a sum or product of ``n`` terms, 1 for anything
    else that is not atomic.  Linear in the size of the DAG.

    >>> x = sp.Symbol("x")
    >>> operation_count([sp.exp(x) + 1, sp.exp(x) * 2])   # exp once, + once, * once
    3
    """
    from .symbols import postorder

    total = 0
    for node in postorder(list(outputs)):
        if not node.args or isinstance(node, ExprCondPair):
            continue
        if isinstance(node, (sp.Add, sp.Mul)):
            total += len(node.args) - 1
        else:
            total += 1
    return total


def _generate(symbols: list, names: list[str], outputs: list, name: str) -> tuple[str, int]:
    order, temps = common_subexpressions(outputs)
    printer = SymgradNumPyPrinter(dict(zip(symbols, names)), temps)
    lines = [f"def {name}({', '.join(names)}):"]
    for node in order:
        lines.append(f"    {temps[node]} = {printer.define(node)}")
    results = [printer._print(out) for out in outputs]
    body = ", ".join(results) + ("," if len(results) == 1 else "")
    lines.append(f"    return ({body})")
    return "\n".join(lines), len(order)


def compile_exprs(inputs: Sequence[sp.Symbol], outputs: Sequence[Any], *,
                  output_names: Sequence[str] | None = None, input_names: Sequence[str] | None = None,
                  output_shapes: Sequence[Any] | None = None, output_dtypes: Sequence[Any] | None = None,
                  cache: bool = True, name: str = "compiled") -> CompiledFunction:
    """Compile ``outputs`` (SymPy expressions over ``inputs``) into one NumPy function,
    cached by the expressions' structure.

    >>> from symgrad.symbolic.symbols import ArrayVar
    >>> x = ArrayVar("x", (3,))
    >>> f = compile_exprs([x], [2 * x + 1])
    >>> f(np.arange(3.0)).out0
    array([1., 3., 5.])
    """
    outputs = [sp.sympify(o) for o in outputs]
    key = ("exprs", tuple(inputs), tuple(outputs), tuple(output_names or ()), tuple(input_names or ()),
           _hashable(output_shapes), _hashable(output_dtypes), name)

    def build() -> CompiledFunction:
        return CompiledFunction(inputs, outputs, input_names=input_names, output_names=output_names,
                                output_shapes=output_shapes, output_dtypes=output_dtypes, name=name)

    return cached(key, build) if cache else build()


def _hashable(value: Any) -> Any:
    if value is None:
        return None
    return tuple(None if v is None else (tuple(v) if isinstance(v, (tuple, list)) else str(np.dtype(v)))
                 for v in value)


# ============================================================================ the cache
CacheInfo = namedtuple("CacheInfo", "hits misses maxsize currsize")


class _Cache:
    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.entries: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.lock = threading.RLock()


_CACHE = _Cache(256)


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """The cached value for ``key``, building (and counting a miss) when absent.

    Keys describe graph structure only -- ops, shapes, dtypes, attributes, constants --
    never input values.

    >>> before = compile_cache_info().misses
    >>> cached(("doc", 1), lambda: "built"), cached(("doc", 1), lambda: "again")
    ('built', 'built')
    >>> compile_cache_info().misses - before
    1
    """
    with _CACHE.lock:
        try:
            value = _CACHE.entries[key]
        except KeyError:
            pass
        else:
            _CACHE.entries.move_to_end(key)
            _CACHE.hits += 1
            return value
    value = build()
    with _CACHE.lock:
        _CACHE.misses += 1
        _CACHE.entries[key] = value
        _CACHE.entries.move_to_end(key)
        while len(_CACHE.entries) > _CACHE.maxsize:
            _CACHE.entries.popitem(last=False)
    return value


def compile_cache_info() -> CacheInfo:
    """Hits, misses, capacity and current size of the compiled-function cache.

    >>> info = compile_cache_info()
    >>> info.maxsize >= info.currsize
    True
    """
    with _CACHE.lock:
        return CacheInfo(_CACHE.hits, _CACHE.misses, _CACHE.maxsize, len(_CACHE.entries))


def compile_cache_clear() -> None:
    """Drop every compiled function and reset the hit/miss counts.

    >>> compile_cache_clear(); compile_cache_info()
    CacheInfo(hits=0, misses=0, maxsize=256, currsize=0)
    """
    with _CACHE.lock:
        _CACHE.entries.clear()
        _CACHE.hits = _CACHE.misses = 0


def set_compile_cache_size(maxsize: int) -> None:
    """Bound the cache to ``maxsize`` compiled functions (least recently used go first).

    >>> set_compile_cache_size(512); compile_cache_info().maxsize
    512
    >>> set_compile_cache_size(256)
    """
    if maxsize < 1:
        raise ValueError(f"the compile cache needs room for at least one function, got maxsize={maxsize}")
    with _CACHE.lock:
        _CACHE.maxsize = int(maxsize)
        while len(_CACHE.entries) > _CACHE.maxsize:
            _CACHE.entries.popitem(last=False)
