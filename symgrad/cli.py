"""The ``symgrad`` command: closed-form derivatives, gradient checks and graph pictures.

This module owns the command line (``symgrad ...`` and ``python -m symgrad ...``):

* ``symgrad diff EXPR... [--wrt x,y]`` prints every partial derivative in closed form
  (``--order N``, ``--hessian``, ``--jacobian``; ``--pretty``, ``--latex``,
  ``--simplify``; ``--code`` for the generated NumPy source; ``--at x=1.5,y=-2`` to
  evaluate beside a central finite difference; ``--json`` for scripts);
* ``symgrad check EXPR [--at ...]`` compares the symbolic gradient, the tape engine's
  gradient of the same formula built from symgrad tensors, and finite differences;
* ``symgrad graph EXPR [-o graph.svg]`` draws the expression (or, with ``--tape``, the
  recorded tape graph) as DOT/SVG/PNG (see :mod:`symgrad.viz`);
* ``symgrad explain EXPR --wrt x [--at ...] [--latex]`` shows the chain rule step by
  step (see :func:`symgrad.explain`).

Formulas, shapes and values are read by :mod:`symgrad.parsing`, which never evaluates
Python.  Results go to stdout; errors go to stderr as ``symgrad: error: ...``.  Exit
status: 0 success, 1 a failed check (or a failure outside the user's input, such as a
missing ``dot`` program), 2 a bad expression or bad usage.

>>> main(["diff", "x**3*y", "--wrt", "x,y"])
df/dx = 3*x**2*y
df/dy = x**3
0
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .parsing import (ExpressionError, ParsedExpression, parse, parse_names, parse_shapes, parse_values)

__all__ = ["main", "build_parser", "UsageError", "CheckFailed"]

MAX_ORDER = 10
"""Highest ``--order`` accepted."""

MAX_TABLE_ELEMENTS = 50
"""Arrays with more elements are summarised in value tables (largest error only)."""

FD_SAMPLE = 50
"""``symgrad check`` takes finite differences at every element of a variable with at most
this many, else at this many: the :data:`FD_WORST` elements where the two engines differ
most, then elements drawn with ``--seed``.  The engines themselves (vectorised) are
compared on every element.  (Each finite difference evaluates the whole formula four times or more, so
differences at all 1,000,000 elements of the largest array took hours.)"""

FD_WORST = 10
"""How many of the :data:`FD_SAMPLE` elements are those where the engines differ most."""

EXAMPLES = """\
examples:
  symgrad diff "sin(x)*exp(-y**2)" --wrt x,y
  symgrad diff "x**3*y" --order 2
  symgrad diff "x*y*z" --hessian --pretty
  symgrad diff "x*y" "x+y" --jacobian
  symgrad diff "sum(sigmoid(x @ w))" --shape x=2,w=2x3 --wrt w
  symgrad diff "sum((x @ w)**2)" --shape x=2,w=2x2 --wrt w --elements
  symgrad diff "log(1+exp(x))" --at x=1.5 --simplify
  symgrad diff "sin(x)*y" --code
  symgrad check "tanh(x)*y**2" --at x=0.3,y=-2
  symgrad graph "sin(x)*exp(-y**2)" -o graph.svg --adjoints
  symgrad explain "(w*x + b - t)**2" --wrt w --at w=2,x=3,b=1,t=5

{functions}
exit status: 0 ok, 1 check failed, 2 bad expression or usage
"""


def _functions_help() -> str:
    """The help's paragraph on the formula language, listing the parser's whitelist."""
    from .parsing import FUNCTIONS

    text = (f"Expressions use numbers, names, + - * / ** @ % // and the functions {' '.join(FUNCTIONS)}, "
            "with the constants pi and e; a function's options (sum(x, dim)) are numbers written out, its "
            "index arrays and masks lists (gather(x, 1, [[0], [1]])), einsum's equation a string; a function "
            "of several results is picked with [i] (sort(x)[0]).  Nothing else is evaluated.")
    return textwrap.fill(text, width=80)


EXAMPLES = EXAMPLES.format(functions=_functions_help())


class UsageError(Exception):
    """A request the command cannot serve as asked (exit status 2)."""


class CheckFailed(Exception):
    """Gradients disagree (exit status 1)."""


# ============================================================================ engine
def _engine():
    """The symbolic engine's public API used here: closed forms (``diff``, ``gradient``,
    ``hessian_expr``, ``jacobian_expr``), ``compile_exprs`` and the printers."""
    from . import symbolic

    return symbolic


def _render(expr: Any, style: str) -> str:
    """A closed form as text, pretty text or LaTeX, by the engine's printers."""
    engine = _engine()
    if style == "latex":
        return engine.latex(expr)
    if style == "pretty":
        encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
        try:
            return engine.pretty(expr, use_unicode=encoding in ("utf8", "utf16", "utf32"))
        except Exception:  # noqa: BLE001  (a form the 2-D printer cannot draw is shown as text)
            return engine.text(expr)
    return engine.text(expr)


# ============================================================================ derivatives
@dataclass
class Derivative:
    """One printed derivative: its label, closed form, and the expression one order lower
    (``parent``) whose finite difference along ``var`` checks it."""

    label: str
    of: int
    wrt: tuple
    expr: Any
    parent: Any
    var: str
    position: tuple = ()
    value: Any = None
    fd: Any = None
    fd_error: Any = None
    error: float | None = None


@dataclass
class Problem:
    """What ``symgrad diff`` was asked: the parsed expressions and the variables."""

    parsed: list
    wrt: list
    symbols: dict
    shapes: dict
    names: list = field(default_factory=list)
    constants: dict = field(default_factory=dict)
    """The constant arrays the formulas' forms hold (index arrays, masks, zero buffers), by
    symbol: compiled functions take them after the variables (see :func:`_compiled`)."""


def _function_names(count: int) -> list[str]:
    return ["f"] if count == 1 else [f"f{i + 1}" for i in range(count)]


def _label(function: str, wrt: Sequence[str]) -> str:
    """``df/dx``, ``d2f/dx2``, ``d3f/dx2dy``."""
    order = len(wrt)
    parts = []
    for name, group in itertools.groupby(wrt):
        power = len(list(group))
        parts.append(f"d{name}{power if power > 1 else ''}")
    return f"d{order if order > 1 else ''}{function}/{''.join(parts)}"


def _problem(expressions: Sequence[str], shape_specs: Sequence[str], wrt_spec: str | None) -> Problem:
    shapes = parse_shapes(shape_specs) if shape_specs else {}
    parsed = [parse(text, shapes) for text in expressions]
    names: list[str] = []
    for p in parsed:
        names += [n for n in p.names if n not in names]
    wrt = parse_names(wrt_spec) if wrt_spec else list(names)
    if not wrt:
        raise UsageError("the expression has no variables to differentiate with respect to")
    if len(set(wrt)) != len(wrt):
        raise UsageError(f"--wrt names a variable twice: {','.join(wrt)}")
    symbols: dict = {}
    for p in parsed:
        symbols.update(p.symbols)
    from .symbolic import ArrayVar

    for name in wrt:  # a variable the expressions do not use: its derivative is 0
        symbols.setdefault(name, ArrayVar(name, shapes.get(name, ())))
    all_names = names + [n for n in wrt if n not in names]
    constants: dict = {}
    for i, p in enumerate(parsed):  # one compiled function takes them all: names kept apart
        parsed[i] = p = p.with_constants_apart(set(all_names) | {c.name for c in constants})
        constants.update(p.constants)
    return Problem(parsed, wrt, symbols, {n: tuple(getattr(symbols[n], "array_shape", ())) for n in all_names},
                   all_names, constants)


def _require_scalar_output(parsed: ParsedExpression, what: str) -> None:
    if parsed.shape != ():
        raise UsageError(f"{what} needs a scalar expression, but {parsed.text!r} has shape {parsed.shape}; "
                         "wrap it in sum(...) or mean(...)")


def _require_scalar_wrt(problem: Problem, what: str) -> None:
    arrays = [n for n in problem.wrt if problem.shapes.get(n, ())]
    if arrays:
        raise UsageError(f"{what} needs scalar variables, but {', '.join(arrays)} "
                         f"{'is an array' if len(arrays) == 1 else 'are arrays'}; use --wrt to pick scalars")


def _derivatives(problem: Problem, mode: str, order: int) -> list[Derivative]:
    engine = _engine()
    functions = _function_names(len(problem.parsed))
    syms = [problem.symbols[n] for n in problem.wrt]
    out: list[Derivative] = []
    if mode == "jacobian":
        for p in problem.parsed:
            _require_scalar_output(p, "--jacobian")
        _require_scalar_wrt(problem, "--jacobian")
        matrix = engine.jacobian_expr([p.expr for p in problem.parsed], syms)
        for i, p in enumerate(problem.parsed):
            for j, name in enumerate(problem.wrt):
                out.append(Derivative(_label(functions[i], [name]), i, (name,), matrix[i, j], p.expr, name, (i, j)))
        return out
    for i, p in enumerate(problem.parsed):
        _require_scalar_output(p, "differentiation")
        if mode == "hessian":
            _require_scalar_wrt(problem, "--hessian")
            gradient = engine.gradient(p.expr, syms)
            matrix = engine.hessian_expr(p.expr, syms)
            for r, first in enumerate(problem.wrt):
                for c, second in enumerate(problem.wrt):
                    out.append(Derivative(_label(functions[i], [first, second]), i, (first, second),
                                          matrix[r, c], gradient[r], second, (r, c)))
        elif order == 1:
            for name, grad in zip(problem.wrt, engine.gradient(p.expr, syms)):
                out.append(Derivative(_label(functions[i], [name]), i, (name,), grad, p.expr, name))
        else:
            _require_scalar_wrt(problem, f"--order {order}")
            memo: dict = {(): p.expr}
            for combo in itertools.combinations_with_replacement(problem.wrt, order):
                for k in range(1, order + 1):
                    prefix = combo[:k]
                    if prefix not in memo:
                        memo[prefix] = engine.diff(memo[prefix[:-1]], problem.symbols[prefix[-1]])
                out.append(Derivative(_label(functions[i], combo), i, combo, memo[combo], memo[combo[:-1]], combo[-1]))
    return out


def _simplify(expr: Any) -> Any:
    """SymPy's ``simplify`` within the engine's time budget, checked by values; the tidy
    form (common factors pulled out) when it runs out (see ``symgrad.symbolic.derive.simplifying``)."""
    from .symbolic.derive.simplifying import simplified

    return simplified(expr)


# ============================================================================ evaluation
def _point(problem_names: Sequence[str], shapes: dict, at: dict, *, fill_missing: bool, seed: int = 0) -> dict:
    """Values for every variable: from ``--at`` (a number fills a declared array), or
    (``fill_missing``) drawn from a seeded generator in [0.5, 1.5]."""
    rng = np.random.default_rng(seed)
    unknown = [n for n in at if n not in problem_names]
    if unknown:
        raise UsageError(f"--at gives {', '.join(unknown)}, which the expression does not use "
                         f"(its variables: {', '.join(problem_names) or 'none'})")
    values: dict = {}
    for name in problem_names:
        shape = shapes.get(name, ())
        if name in at:
            value = np.asarray(at[name], dtype=np.float64)
            if value.shape != shape:
                if value.ndim == 0:
                    value = np.full(shape, float(value))
                else:
                    raise UsageError(f"--at gives {name} the shape {value.shape}, but its shape is {shape}"
                                     + ("" if shape else f"; declare it with --shape {name}="
                                        + "x".join(str(n) for n in value.shape)))
            values[name] = value
        elif fill_missing:
            values[name] = rng.uniform(0.5, 1.5, size=shape)
        else:
            raise UsageError(f"--at gives no value for {name}")
    return values


def _compiled(problem: Problem, outputs: list, output_names: list[str] | None = None) -> "_WithConstants":
    """``outputs`` compiled as a function of the problem's variables (in ``problem.names``
    order); the formulas' constant arrays are further inputs, passed by the result."""
    constants = list(problem.constants)
    compiled = _engine().compile_exprs([problem.symbols[n] for n in problem.names] + constants, outputs,
                                       input_names=list(problem.names) + [c.name for c in constants],
                                       output_names=output_names, backend="numpy")
    return _WithConstants(compiled, tuple(problem.constants.values()))


@dataclass(frozen=True)
class _WithConstants:
    """A compiled function called with the variables' values: it passes the constants after them."""

    compiled: Any
    constants: tuple

    def __call__(self, *values: Any) -> Any:
        return self.compiled(*values, *self.constants)

    @property
    def source(self) -> str:
        return self.compiled.source

    @property
    def outputs(self) -> tuple:
        return self.compiled.outputs


def _finite_difference(parent_fn, names: list[str], values: dict, var: str) -> tuple[np.ndarray, np.ndarray]:
    """The derivative of the scalar compiled ``parent_fn`` along each element of ``var``,
    and its estimated error, by symgrad.check's finite differences
    (:func:`symgrad.check.numerical.derivative`, the steps and target of a check)."""
    from .check.numerical import derivative, step_for

    tol = _tolerance()
    base = np.asarray(values[var], dtype=np.float64)
    result, error = np.zeros(base.shape), np.zeros(base.shape)
    for index in np.ndindex(base.shape) if base.shape else [()]:
        def evaluate(t: float, index: tuple = index) -> list[np.ndarray]:
            changed = np.array(base, copy=True)
            changed[index] = changed[index] + t
            moved = {**values, var: changed}
            return [np.atleast_1d(np.asarray(parent_fn(*(moved[n] for n in names))[0], np.float64)).ravel()]

        estimate = derivative(evaluate, evaluate(0.0), step_for(float(base[index])),
                              target=lambda value: tol.bound(value) / 10)
        result[index], error[index] = estimate.value[0][0], estimate.error[0][0]
    return result, error


def _evaluate(problem: Problem, derivatives: list[Derivative], values: dict) -> list:
    """Fill value/fd/error of each derivative; returns the values of the expressions."""
    names = list(problem.names)
    arrays = [values[n] for n in names]
    with np.errstate(all="ignore"):
        main = _compiled(problem, [p.expr for p in problem.parsed] + [d.expr for d in derivatives])
        results = main(*arrays)
        f_values = [np.asarray(v) for v in results[: len(problem.parsed)]]
        parents: dict = {}
        for d, value in zip(derivatives, results[len(problem.parsed):]):
            d.value = np.asarray(value, dtype=np.float64)
            if d.parent not in parents:
                parents[d.parent] = _compiled(problem, [d.parent])
            d.fd, d.fd_error = _finite_difference(parents[d.parent], names, values, d.var)
            difference = np.abs(np.broadcast_to(d.value, d.fd.shape) - d.fd)
            d.error = float(np.max(difference)) if difference.size else 0.0
    return f_values


def _point_text(values: dict) -> str:
    parts = []
    for name, value in values.items():
        value = np.asarray(value)
        if value.ndim == 0:
            parts.append(f"{name}={_number(value)}")
        elif value.size <= 12:
            text = np.array2string(value, separator=", ", max_line_width=10**6)
            parts.append(f"{name}={' '.join(text.split())}")
        else:
            parts.append(f"{name}=<array of shape {value.shape}>")
    return ", ".join(parts)


def _number(value: Any) -> str:
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.10g}"


def _elements(label: str, array: np.ndarray) -> list[tuple[str, tuple]]:
    array = np.asarray(array)
    if array.ndim == 0:
        return [(label, ())]
    return [(f"{label}[{', '.join(map(str, index))}]", index) for index in np.ndindex(array.shape)]


def _fd_elements(symbolic: np.ndarray, tape: np.ndarray, shape: tuple, seed: int) -> list[tuple]:
    """The elements of a variable that ``check`` takes finite differences at (see
    :data:`FD_SAMPLE`), in order.

    >>> _fd_elements(np.zeros(3), np.zeros(3), (3,), 0)
    [(0,), (1,), (2,)]
    >>> picked = _fd_elements(np.zeros(1000), np.eye(1, 1000, 7).ravel(), (1000,), 0)
    >>> len(picked), (7,) in picked
    (50, True)
    """
    size = math.prod(shape)
    if size <= FD_SAMPLE:
        return list(np.ndindex(shape)) if shape else [()]
    s = np.broadcast_to(symbolic, shape).ravel()
    t = np.broadcast_to(tape, shape).ravel()
    with np.errstate(all="ignore"):
        gap = np.where(np.isfinite(s) & np.isfinite(t), np.abs(s - t), np.inf)
    worst = np.argpartition(-gap, FD_WORST)[:FD_WORST]
    worst = worst[gap[worst] > 0]
    drawn = np.random.default_rng([seed, 1]).choice(size, size=FD_SAMPLE, replace=False)
    flat = list(dict.fromkeys(int(i) for i in (*worst, *drawn)))[:FD_SAMPLE]
    return sorted(tuple(int(k) for k in np.unravel_index(i, shape)) for i in flat)


def _element_label(name: str, index: tuple) -> str:
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return "\n".join(lines)


def _tolerance(atol: float | None = None, rtol: float | None = None):
    """symgrad.check's float64 tolerances, with ``--atol``/``--rtol`` when given."""
    from .check import Tolerances, default_tolerances

    tol = default_tolerances(np.float64)
    return Tolerances(tol.eps, tol.atol if atol is None else atol, tol.rtol if rtol is None else rtol)


def _value_rows(problem: Problem, derivatives: list[Derivative], f_values: list) -> list[list[str]]:
    tol = _tolerance()
    rows: list[list[str]] = []
    for label, value in zip(_function_names(len(problem.parsed)), f_values):
        for name, index in _elements(label, value)[:MAX_TABLE_ELEMENTS]:
            rows.append([name, _number(np.asarray(value)[index]), "", "", ""])
    for d in derivatives:
        value = np.broadcast_to(d.value, d.fd.shape)
        elements = _elements(d.label, d.fd)
        if len(elements) > MAX_TABLE_ELEMENTS:
            bad = bool(np.any(np.abs(value - d.fd) > tol.bound(d.fd) + d.fd_error))
            rows.append([f"{d.label} {d.fd.shape}", "(array)", "(array)", f"{d.error:.2g}", "MISMATCH" if bad else "ok"])
            continue
        for name, index in elements:
            v, f = float(value[index]), float(d.fd[index])
            error = abs(v - f)
            if not (math.isfinite(v) and math.isfinite(f)):
                status = "not finite"
            else:
                status = "ok" if error <= float(tol.bound(f)) + float(d.fd_error[index]) else "MISMATCH"
            rows.append([name, _number(v), _number(f), f"{error:.2g}", status])
    return rows


# ============================================================================ commands
def _write(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    return [None if not math.isfinite(v) else v for v in array.ravel().tolist()] if array.ndim else (
        float(array) if math.isfinite(float(array)) else None)


def _json_shaped(value: Any) -> Any:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.float64)
    flat = _json_value(array)
    if array.ndim == 0:
        return flat
    return np.asarray(flat, dtype=object).reshape(array.shape).tolist()


def cmd_diff(args: argparse.Namespace) -> int:
    """``symgrad diff``: print closed-form derivatives (and check them at a point)."""
    if sum([args.hessian, args.jacobian, args.order != 1]) > 1:
        raise UsageError("choose one of --order, --hessian and --jacobian")
    mode = "jacobian" if args.jacobian else "hessian" if args.hessian else "order"
    problem = _problem(args.expressions, args.shape, args.wrt)
    at = parse_values(args.at) if args.at else None
    values = _point(problem.names, problem.shapes, at, fill_missing=False) if at is not None else None
    derivatives = _derivatives(problem, mode, args.order)
    if args.simplify:
        for d in derivatives:
            d.expr = _simplify(d.expr)
    f_values = _evaluate(problem, derivatives, values) if values is not None else None
    code = None
    if args.code:
        output_names = [n for n in _function_names(len(problem.parsed))] + [
            d.label.replace("/", "_") + (f"_{d.position[0]}_{d.position[1]}" if d.position and mode == "hessian" else "")
            for d in derivatives]
        compiled = _compiled(problem, [p.expr for p in problem.parsed] + [d.expr for d in derivatives], output_names)
        code = f"# returns ({', '.join(compiled.outputs)})\n{compiled.source}"
        if problem.constants:
            code = (f"# {', '.join(c.name for c in problem.constants)}: the constant arrays of the closed forms "
                    f"(their 'where' lines)\n{code}")

    if args.json:
        document = {
            "expressions": [p.text for p in problem.parsed],
            "closed_forms": [str(p.expr) for p in problem.parsed],
            "variables": {n: list(problem.shapes.get(n, ())) for n in problem.names},
            "wrt": problem.wrt,
            "mode": "jacobian" if args.jacobian else "hessian" if args.hessian else f"order {args.order}",
            "derivatives": [{
                "label": d.label, "of": d.of, "wrt": list(d.wrt), "expr": str(d.expr),
                "latex": _render(d.expr, "latex"),
                **({"elements": {label: str(e) for label, e in _element_view(d)}} if args.elements else {}),
                **({"value": _json_shaped(d.value), "finite_difference": _json_shaped(d.fd),
                    "finite_difference_error": _json_shaped(d.fd_error), "abs_error": d.error}
                   if values is not None else {}),
            } for d in derivatives],
        }
        if values is not None:
            document["at"] = {n: _json_shaped(v) for n, v in values.items()}
            document["values"] = [_json_shaped(v) for v in f_values]
        if code is not None:
            document["code"] = code
        _write(json.dumps(document, indent=2, allow_nan=False))
        return 0

    style = "latex" if args.latex else "pretty" if args.pretty else "text"
    functions = _function_names(len(problem.parsed))
    if len(problem.parsed) > 1 or args.pretty or args.latex:
        for name, p in zip(functions, problem.parsed):
            _emit(name, p.expr, style, _latex_label(name, ()))
        _write()
    if mode in ("jacobian", "hessian") and (args.pretty or args.latex):
        import sympy as sp

        for i in range(len(problem.parsed) if mode == "hessian" else 1):
            block = [d for d in derivatives if d.of == i] if mode == "hessian" else derivatives
            rows = len(problem.parsed) if mode == "jacobian" else len(problem.wrt)
            matrix = sp.Matrix(rows, len(problem.wrt), [d.expr for d in block])
            title = "jacobian" if mode == "jacobian" else f"hessian of {functions[i]}"
            _emit(f"{title} with respect to ({', '.join(problem.wrt)})", matrix, style)
    else:
        for d in derivatives:
            _emit(d.label, d.expr, style, _latex_label(functions[d.of], d.wrt))
            if args.elements:
                for label, element in _element_view(d):
                    _emit(label, element, style)
    if values is not None:
        _write()
        _write(f"at {_point_text(values)}:")
        _write(_table(_value_rows(problem, derivatives, f_values),
                      ["", "closed form", "finite difference", "abs error", ""]))
    if code is not None:
        _write()
        _write(code)
    return 0


def _element_view(d: Derivative) -> list[tuple[str, Any]]:
    """``[(label[i, j], scalar closed form), ...]`` for an array-valued derivative (the
    engine's per-element view, for small arrays); empty for scalars."""
    engine = _engine()
    shape = tuple(engine.shape_of(d.expr))
    if not shape:
        return []
    try:
        view = engine.per_element(d.expr)
    except ValueError as err:
        raise UsageError(f"--elements: {err}") from None
    return [(f"{d.label}[{', '.join(map(str, index))}]", view[index if len(index) > 1 else index[0]])
            for index in np.ndindex(shape)]


def _emit(label: str, expr: Any, style: str, latex_label: str | None = None) -> None:
    """Print one closed form under its label (in LaTeX, ``latex_label = ...`` when given)."""
    text = _render(expr, style)
    if style == "latex":
        _write(f"{latex_label} = {text}" if latex_label else f"{label}: {text}")
    elif "\n" in text or style == "pretty":
        _write(f"{label} =")
        _write(textwrap.indent(text, "    "))
    else:
        _write(f"{label} = {text}")


def _latex_label(function: str, wrt: Sequence[str]) -> str:
    r"""The LaTeX of the derivative of ``function`` with respect to the variables ``wrt``
    (one per order; none: the function itself), each name as SymPy prints the symbol
    (``x1`` is ``x_{1}``, ``theta_1`` is ``\theta_{1}``).

    >>> print(_latex_label("f", ("x1", "x1")))
    \frac{\partial^{2} f}{\partial x_{1}^{2}}
    >>> print(_latex_label("f", ("theta_1",)))
    \frac{\partial f}{\partial \theta_{1}}
    """
    import sympy as sp

    parts = []
    for name, group in itertools.groupby(wrt):
        power = len(list(group))
        parts.append(rf"\partial {sp.latex(sp.Symbol(name))}" + (f"^{{{power}}}" if power > 1 else ""))
    top = sp.latex(sp.Symbol(function))
    if not wrt:
        return top
    numerator = rf"\partial^{{{len(wrt)}}} {top}" if len(wrt) > 1 else rf"\partial {top}"
    return rf"\frac{{{numerator}}}{{{' '.join(parts)}}}"


def cmd_explain(args: argparse.Namespace) -> int:
    """``symgrad explain``: the chain rule for one derivative, step by step."""
    from .symbolic.printing.explain import explain

    problem = _problem([args.expression], args.shape, args.wrt)
    if len(problem.wrt) != 1:
        raise UsageError(f"explain follows one variable at a time; choose one with --wrt (the expression uses "
                         f"{', '.join(problem.names)})")
    (wrt,) = problem.wrt
    parsed = problem.parsed[0]
    if args.at:
        values = _point(problem.names, problem.shapes, parse_values(args.at), fill_missing=False)
        out, inputs = parsed.to_tensor(values)
        explanation = explain(out, inputs[wrt])
    else:
        explanation = explain(parsed.expr, problem.symbols[wrt])
    _write(explanation.latex() if args.latex else str(explanation))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """``symgrad check``: symbolic vs tape vs finite differences, as a table rendered from
    one :mod:`symgrad.check` result (its finite differences, tolerances and kink rule)."""
    import symgrad
    from .check.gradcheck import Check
    from .tape.engine import backward_engine

    problem = _problem([args.expression], args.shape, args.wrt)
    parsed = problem.parsed[0]
    _require_scalar_output(parsed, "check")
    at = parse_values(args.at) if args.at else {}
    values = _point(problem.names, problem.shapes, at, fill_missing=True, seed=args.seed)
    tol = _tolerance(args.atol, args.rtol)

    # 1. symbolic: the closed form `symgrad diff` prints, compiled
    engine = _engine()
    names = list(problem.names)
    syms = [problem.symbols[n] for n in problem.wrt]
    grads = engine.gradient(parsed.expr, syms)
    with np.errstate(all="ignore"):
        compiled = _compiled(problem, [parsed.expr] + list(grads))
        results = compiled(*(values[n] for n in names))
    value = float(np.asarray(results[0]))
    shape_of = {n: tuple(problem.shapes.get(n, ())) for n in problem.wrt}
    symbolic = {n: np.broadcast_to(np.asarray(g, dtype=np.float64), shape_of[n]) for n, g in zip(problem.wrt, results[1:])}

    # 2. tape, on every element: the same formula on symgrad tensors, backward through the hand-written VJPs
    with np.errstate(all="ignore"), backward_engine("tape"):
        out, inputs = parsed.to_tensor({n: values[n] for n in parsed.names})
        if out.requires_grad:
            out.backward()
    tape = {}
    for n in problem.wrt:
        grad = inputs[n].grad if n in inputs else None
        tape[n] = np.zeros(shape_of[n]) if grad is None else np.asarray(grad.numpy(), dtype=np.float64)

    # 3. one symgrad.check run: finite differences at every element of small variables and a
    #    sample of large ones (FD_SAMPLE), compared with the tape and with the closed form
    order = [n for n in problem.wrt if n in parsed.names]
    checked = {n: _fd_elements(symbolic[n], tape[n], shape_of[n], args.seed) for n in problem.wrt}
    fd = {n: np.full(shape_of[n], np.nan if len(checked[n]) < math.prod(shape_of[n]) else 0.0) for n in problem.wrt}
    fd_error = {n: np.zeros(shape_of[n]) for n in problem.wrt}
    verdicts: dict = {}
    if order:
        def forward(*tensors):
            bound = dict(zip(order, tensors))
            return parsed.to_tensor({n: bound.get(n, values[n]) for n in parsed.names}, requires_grad=False)[0]

        leaves = tuple(symgrad.tensor(values[n], requires_grad=True, name=n) for n in order)
        flat = [[int(np.ravel_multi_index(i, shape_of[n])) if i else 0 for i in checked[n]] for n in order]
        with np.errstate(all="ignore"):
            result = Check(forward, leaves, atol=tol.atol, rtol=tol.rtol, engines=[("tape", "tape")],
                           what=f"symgrad check {parsed.text!r}", given={"symbolic": [[
                               symbolic[n].reshape(1, -1) for n in order]]}, sample=flat).run()
        for block in result.blocks:
            name = order[block.input]
            for c, element in enumerate(checked[name]):
                fd[name][element] = block.numerical[0, c]
                fd_error[name][element] = block.fd_error[0, c]
                if block.kinks[0, c]:
                    verdicts[(name, element)] = {"kink"}
        for m in result.mismatches:
            verdicts.setdefault((order[m.input], tuple(m.in_index)), set()).add((m.label, m.reference))

    rows, failures, kinks, notes = [], [], [], []
    for name in problem.wrt:
        size = math.prod(shape_of[name])
        if len(checked[name]) < size:
            with np.errstate(all="ignore"):
                differ = int(np.count_nonzero(~((np.abs(symbolic[name] - tape[name]) <= tol.bound(tape[name]))
                                                | (np.isnan(symbolic[name]) & np.isnan(tape[name])))))
            notes.append(f"{name} has {size} elements: finite differences at {len(checked[name])} of them "
                         f"(where the engines differ most, and drawn with --seed {args.seed}); symbolic and tape "
                         + (f"agree on all {size}" if not differ else f"DISAGREE on {differ} of {size}"))
        for index in checked[name]:
            label = _element_label(name, index)
            s, t, f = float(symbolic[name][index]), float(tape[name][index]), float(fd[name][index])
            status = _check_status(verdicts.get((name, index), set()), (s, t, f))
            if status == "kink":
                kinks.append(label)
            elif status != "ok":
                failures.append((label, s, t, f))
            rows.append([label, _number(s), _number(t), _number(f), f"{fd_error[name][index]:.2g}",
                         f"{max(abs(s - f), abs(t - f)):.2g}", status])

    if args.json:
        document = {
            "expression": parsed.text, "closed_form": str(parsed.expr), "value": _json_value(value),
            "at": {n: _json_shaped(values[n]) for n in problem.names},
            "tolerances": {"eps": tol.eps, "atol": tol.atol, "rtol": tol.rtol},
            "gradients": [{"wrt": n, "closed_form": str(g), "symbolic": _json_shaped(symbolic[n]),
                           "tape": _json_shaped(tape[n]), "finite_difference": _json_shaped(fd[n]),
                           "finite_difference_error": _json_shaped(np.where(np.isnan(fd[n]), np.nan, fd_error[n]))}
                          for n, g in zip(problem.wrt, grads)],
            "kinks": kinks, "passed": not failures,
            "failures": [{"element": label, "symbolic": _json_value(s), "tape": _json_value(t),
                          "finite_difference": _json_value(f)} for label, s, t, f in failures],
        }
        _write(json.dumps(document, indent=2, allow_nan=False))
    else:
        # the engine's text lists the constant arrays in 'where' lines; str writes them in place
        _write(f"f = {_render(parsed.expr, 'text') if parsed.constants else parsed.expr}")
        _write(f"at {_point_text(values)}: f = {_number(value)}")
        _write()
        _write(_table(rows, ["", "symbolic", "tape", "finite difference", "fd error", "abs error", ""]))
        _write()
        verdict = "FAILED" if failures else "passed"
        _write(f"check {verdict}: {len(rows) - len(failures)}/{len(rows)} gradient elements agree "
               f"(|error| <= {tol.atol:g} + {tol.rtol:g}*|value| + the finite difference's estimated error)")
        if kinks:
            _write(f"note: at {', '.join(kinks)} the function has a kink (the one-sided differences "
                   "disagree); both engines' value lies between them, which counts as agreement")
        for note in notes:
            _write(f"note: {note}")
    if failures:
        label, s, t, f = failures[0]
        raise CheckFailed(f"gradient check failed for {parsed.text!r} at {label}: symbolic {_number(s)}, "
                          f"tape {_number(t)}, finite difference {_number(f)}")
    return 0


def _check_status(verdict: set, values: tuple) -> str:
    """The status column of one element, from what symgrad.check found there.

    >>> _check_status({("tape", "numerical")}, (1.0, 2.0, 1.0))
    'MISMATCH (tape vs finite differences)'
    >>> _check_status({("symbolic", "tape")}, (1.0, 1.1, 1.05))
    'MISMATCH (symbolic vs tape)'
    """
    if not all(math.isfinite(v) for v in values):
        return "NOT FINITE"
    against_fd = sorted(entry[0] for entry in verdict - {"kink"} if entry[1] == "numerical")
    if len(against_fd) == 2:
        return "MISMATCH (vs finite differences)"
    if against_fd:
        return f"MISMATCH ({against_fd[0]} vs finite differences)"
    if verdict - {"kink"}:
        return "MISMATCH (symbolic vs tape)"
    return "kink" if "kink" in verdict else "ok"


def cmd_graph(args: argparse.Namespace) -> int:
    """``symgrad graph``: draw the expression DAG (or the tape graph) as DOT/SVG/PNG."""
    from . import viz

    fmt = None
    if args.output:
        fmt = os.path.splitext(args.output)[1].lower().lstrip(".")
        if fmt not in viz.FORMATS:
            raise UsageError(f"cannot tell the graph format from {args.output!r}; end it in "
                             + ", ".join("." + f for f in viz.FORMATS))
    problem = _problem([args.expression], args.shape, None)
    parsed = problem.parsed[0]
    if args.adjoints:
        _require_scalar_output(parsed, "--adjoints")
    if args.tape:
        at = parse_values(args.at) if args.at else {}
        values = _point(problem.names, problem.shapes, at, fill_missing=True, seed=args.seed)
        out, _ = parsed.to_tensor(values)
        graph = viz.tensor_graph(out, adjoints=args.adjoints)
    else:
        if args.at:
            raise UsageError("--at only applies with --tape (the expression graph has no values)")
        graph = viz.expression_graph(parsed.expr, adjoints=args.adjoints)
    if not args.output:
        sys.stdout.write(graph.source)
        return 0
    if fmt not in ("dot", "gv") and not viz.has_dot():
        raise viz.GraphvizNotFound(
            f"writing {args.output} needs the Graphviz 'dot' program, which is not on PATH; install Graphviz "
            "(e.g. 'apt install graphviz') or write a .dot file")
    path = graph.save(args.output)
    _write(f"wrote {path}")
    return 0


# ============================================================================ parser
def cmd_export(args: argparse.Namespace) -> int:
    """``symgrad export``: write the expression's value and gradient as verified standalone code."""
    import inspect

    import symgrad
    from .exporters import ExportError, ExportVerificationError

    problem = _problem([args.expression], args.shape, args.wrt)
    parsed = problem.parsed[0]
    _require_scalar_output(parsed, "export")
    at = parse_values(args.at) if args.at else {}
    values = _point(problem.names, problem.shapes, at, fill_missing=True, seed=args.seed)
    names = list(problem.names)

    def f(*arrays):
        return parsed.to_tensor(dict(zip(names, arrays)), requires_grad=False)[0]

    f.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    argnums = tuple(names.index(n) for n in problem.wrt)
    try:
        exported = symgrad.export(f, *(values[n] for n in names), target=args.target, path=args.output,
                                  argnums=argnums[0] if len(argnums) == 1 else argnums, overwrite=args.overwrite)
    except ExportVerificationError as err:
        raise CheckFailed(str(err)) from None
    except ExportError as err:
        raise UsageError(str(err)) from None
    if args.output is None:
        _write(exported.source.rstrip("\n"))
    else:
        written = ", ".join(str(p) for p in exported.paths)
        _write(f"wrote {written}: the value of {parsed.text} and its gradient with respect to "
               f"{', '.join(problem.wrt)} ({args.target}), verified at {exported.points_checked} points")
    return 0


def _add_export_parser(commands: Any, formatter: type, shape_help: str, at_help: str) -> None:
    from .exporters import TARGETS

    export = commands.add_parser("export", help="write the value and gradient as verified standalone code",
                                 formatter_class=formatter, description="Write the expression's value and "
                                 "gradient as a NumPy module, a torch.autograd.Function or C, checked against "
                                 "symgrad's engines before the file is written.")
    export.add_argument("expression", metavar="EXPR")
    export.add_argument("--wrt", help="comma-separated variables (default: all)")
    export.add_argument("--target", choices=sorted(TARGETS), default="numpy", help="the language (default numpy)")
    export.add_argument("-o", "--output", metavar="FILE", help="write FILE (default: print the source)")
    export.add_argument("--overwrite", action="store_true", help="replace FILE if it exists")
    export.add_argument("--shape", action="append", default=[], metavar="SHAPES", help=shape_help)
    export.add_argument("--at", action="append", metavar="VALUES",
                        help=at_help + "; the example point, also checked (default: drawn from [0.5, 1.5])")
    export.add_argument("--seed", type=_seed, default=0, help="seed for values not given with --at (default 0)")
    export.set_defaults(run=cmd_export)


def _order(text: str) -> int:
    """``--order``: a whole number from 1 to :data:`MAX_ORDER`.

    >>> _order("2")
    2
    >>> _order("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number from 1 to 10, got '0'
    """
    text = text.strip()  # a leading minus arrives as " -1" (see _protect_leading_minus)
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 1 <= value <= MAX_ORDER:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_ORDER}, got {text!r}")
    return value


def _seed(text: str) -> int:
    """``--seed``: a whole number >= 0 (what ``numpy.random.default_rng`` accepts).

    >>> _seed("7")
    7
    >>> _seed("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number >= 0, got '-1'
    """
    text = text.strip()  # a leading minus arrives as " -1" (see _protect_leading_minus)
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


def _tolerance_option(text: str) -> float:
    """``--atol``/``--rtol``: a finite number >= 0.

    >>> _tolerance_option("1e-4")
    0.0001
    >>> _tolerance_option("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a finite number >= 0, got 'nan'
    """
    text = text.strip()  # a leading minus arrives as " -1" (see _protect_leading_minus)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of exiting (so ``main`` decides)."""

    def error(self, message: str):  # noqa: D102
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``symgrad`` command.

    >>> build_parser().parse_args(["diff", "x*y", "--wrt", "x"]).wrt
    'x'
    """
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(prog="symgrad", formatter_class=formatter, epilog=EXAMPLES,
                     description="Closed-form derivatives, gradient checks and graph pictures.")
    parser.add_argument("--version", action="version", version=f"symgrad {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    shape_help = "declare array inputs, e.g. w=3x2,b=2 (repeatable; undeclared names are scalars)"
    at_help = "the point, e.g. x=1.5,y=-2 or w=[[1,2],[3,4]] (a number fills a whole array)"

    diff = commands.add_parser("diff", help="print partial derivatives in closed form", formatter_class=formatter,
                               epilog=EXAMPLES, description="Print every partial derivative in closed form.")
    diff.add_argument("expressions", nargs="+", metavar="EXPR", help="the expression(s) to differentiate")
    diff.add_argument("--wrt", help="comma-separated variables (default: every variable, in order of appearance)")
    diff.add_argument("--order", type=_order, default=1, metavar="N", help="all mixed partials of order N (scalars)")
    diff.add_argument("--hessian", action="store_true", help="the matrix of second derivatives")
    diff.add_argument("--jacobian", action="store_true", help="the Jacobian of several scalar expressions")
    style = diff.add_mutually_exclusive_group()
    style.add_argument("--latex", action="store_true", help="print LaTeX")
    style.add_argument("--pretty", action="store_true", help="print 2-D pretty text")
    diff.add_argument("--simplify", action="store_true", help="simplify each derivative (slower)")
    diff.add_argument("--elements", action="store_true",
                      help="also print one scalar closed form per element of array derivatives (small arrays)")
    diff.add_argument("--code", action="store_true", help="also print the generated NumPy source")
    diff.add_argument("--at", action="append", metavar="VALUES", help=at_help)
    diff.add_argument("--shape", action="append", default=[], metavar="SHAPES", help=shape_help)
    diff.add_argument("--json", action="store_true", help="print one JSON document")
    diff.set_defaults(run=cmd_diff)

    explain = commands.add_parser("explain", help="the chain rule for one derivative, step by step",
                                  formatter_class=formatter, epilog=EXAMPLES,
                                  description="Show the chain rule for one derivative: the forward values, each "
                                              "node's local derivative and the backward pass of adjoints.")
    explain.add_argument("expression", metavar="EXPR", help="the scalar expression to differentiate")
    explain.add_argument("--wrt", help="the variable (needed when the expression has several)")
    explain.add_argument("--at", action="append", metavar="VALUES", help=at_help + "; every line gets its value")
    explain.add_argument("--shape", action="append", default=[], metavar="SHAPES", help=shape_help)
    explain.add_argument("--latex", action="store_true", help="print one LaTeX aligned block")
    explain.set_defaults(run=cmd_explain)

    check = commands.add_parser("check", help="symbolic vs tape vs finite differences", formatter_class=formatter,
                                epilog=EXAMPLES, description="Check the gradient three ways: the symbolic closed "
                                "form, the tape engine, and central finite differences. Exit status 1 when they "
                                "disagree.")
    check.add_argument("expression", metavar="EXPR")
    check.add_argument("--wrt", help="comma-separated variables (default: all)")
    check.add_argument("--at", action="append", metavar="VALUES",
                       help=at_help + "; variables not given are drawn from [0.5, 1.5] (--seed)")
    check.add_argument("--shape", action="append", default=[], metavar="SHAPES", help=shape_help)
    check.add_argument("--seed", type=_seed, default=0, help="seed for values not given with --at (default 0)")
    check.add_argument("--atol", type=_tolerance_option, help="absolute tolerance against finite differences")
    check.add_argument("--rtol", type=_tolerance_option, help="relative tolerance against finite differences")
    check.add_argument("--json", action="store_true", help="print one JSON document")
    check.set_defaults(run=cmd_check)

    graph = commands.add_parser("graph", help="draw the computation graph", formatter_class=formatter,
                                epilog=EXAMPLES, description="Draw the expression as a graph: DOT on stdout, "
                                "or a .dot/.gv/.svg/.png/.pdf file (all but DOT need Graphviz's 'dot').")
    graph.add_argument("expression", metavar="EXPR")
    graph.add_argument("-o", "--output", metavar="FILE", help="write FILE (.dot .gv .svg .png .pdf)")
    graph.add_argument("--adjoints", action="store_true", help="label nodes with their closed-form adjoint")
    graph.add_argument("--tape", action="store_true", help="draw the tape graph of symgrad tensors instead")
    graph.add_argument("--at", action="append", metavar="VALUES", help=at_help + " (with --tape)")
    graph.add_argument("--shape", action="append", default=[], metavar="SHAPES", help=shape_help)
    graph.add_argument("--seed", type=_seed, default=0, help="seed for values not given with --at")
    graph.set_defaults(run=cmd_graph)
    _add_export_parser(commands, formatter, shape_help, at_help)
    return parser


def _version() -> str:
    try:
        from . import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    found: set[str] = set()
    stack = [parser]
    while stack:
        current = stack.pop()
        for action in current._actions:
            found.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
    return found


def _protect_leading_minus(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Let ``symgrad diff "-x**2"`` work: a word that starts with a single '-' and is no
    option gets a leading space, so argparse reads it as a value (the expression parser
    ignores the space).  After ``--`` nothing is changed."""
    options = _option_strings(parser)
    out = []
    for position, word in enumerate(argv):
        if word == "--":
            return out + argv[position:]
        if (word.startswith("-") and not word.startswith("--") and len(word) > 1
                and word.split("=", 1)[0] not in options):
            word = " " + word
        out.append(word)
    return out


def _error(message: str, detail: str = "") -> None:
    sys.stderr.write(f"symgrad: error: {message}\n")
    if detail:
        sys.stderr.write(detail + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``symgrad`` command with ``argv`` (default ``sys.argv[1:]``); return the
    exit status (0 ok, 1 check failed, 2 bad expression or usage).

    >>> main(["diff", "x.real"])
    2
    """
    parser = build_parser()
    argv = _protect_leading_minus(parser, list(sys.argv[1:] if argv is None else argv))
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # --help and --version print and stop
            return int(stop.code or 0)
        if getattr(args, "run", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return args.run(args)
    except ExpressionError as err:
        _error(str(err), err.pointer())
        return 2
    except UsageError as err:
        _error(str(err))
        return 2
    except CheckFailed as err:
        _error(str(err))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:  # stdout closed early (`symgrad ... | head`): stop quietly
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file (captured output)
            pass
        return 1
    except Exception as err:  # noqa: BLE001  (report, never a traceback, unless debugging)
        if os.environ.get("SYMGRAD_DEBUG"):
            raise
        _error(f"{type(err).__name__}: {err}")
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
