"""The ``c`` backend for whole programs: a plan of fused C loops and NumPy pieces.

A closed form that one fused loop cannot evaluate (a ``matmul``, a ``cumsum``, a
reduction over some axes, fancy indexing, ...) is cut into **steps**, run in order:

* a **C step** is a :class:`~.c_fused.FusedFunction`: the largest pieces of the program the
  C printer translates -- elementwise operations, full sums and means, and slices of 1-D
  arrays and their adjoints read at shifted points (:mod:`.c_points`) -- each evaluated in
  one pass; outputs of one shape (or all 1-D outputs of a loop with slices) share a loop;
* a **loop nest** (:class:`~.c_axes.AxisReduction`) sums or averages an elementwise
  argument over some neighbouring axes, or takes its ``max``, ``min``, ``logsumexp`` or
  ``softmax`` along them, evaluating it inside (or reading it, when a C step stores it
  anyway);
* a **NumPy step** is the NumPy backend's code (:class:`~symgrad.symbolic.codegen.compile.CompiledFunction`)
  for the operations C does not translate, chained as far as they chain (``matmul(x.T, r)``
  is one step).

When a NumPy step calls BLAS or LAPACK (``matmul``, ``solve``, ...), the plan's C steps
run on one thread: NumPy's BLAS threads and the loops' would contend for the cores (on the
2-core development machine the plan for W3 took twice the NumPy backend's time with
both pools, the same time with one).

A value a later step needs -- the argument of a ``matmul`` computed by a loop, a
``matmul`` a loop reads -- is *materialised*: an array output of its step, an input of the
next.  Each node goes into the earliest step whose inputs are ready: an elementwise node
into the C step after its last NumPy input, a NumPy node into the NumPy step after the C
step of its last elementwise argument.  So ``backend="c"`` compiles every program the
NumPy backend compiles, and falls back to NumPy for those pieces only.  The plan is
inspectable: ``.steps`` lists each step (``"c"``, ``"reduce"`` or ``"numpy"``, its
compiled function and what it computes), ``.source`` the generated code of all of them in
order.

A boolean value (a comparison) that a NumPy operation reads is computed by NumPy as well
(C computes 0.0 or 1.0, which NumPy indexing would read as numbers).  A slice a loop
turns out not to read point by point (a strided slice of an adjoint) is moved to a NumPy
step, and the plan made again.  Integer inputs (index arrays) are taken: NumPy steps read
them as they are, C steps as float64.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import sympy as sp

from ...core.symbols import ArrayVar, operands, postorder, shape_of, unevaluated
from ...forms.selections import Compare, LogicalAnd, LogicalNot, LogicalOr
from ...forms.structural import Getitem, IndexPut
from . import NativeFunction, UnsupportedExpressionError
from .c_axes import AxisReduction, axis_run
from .c_code import _translatable, full_reduction
from .c_points import shift_supported

__all__ = ["PlannedFunction", "plan_steps", "Step"]

_BOOLEAN = (Compare, LogicalAnd, LogicalOr, LogicalNot, sp.logic.boolalg.BooleanFunction,
            sp.core.relational.Relational)


def _blas_types() -> tuple:
    from ...forms import linalg
    from ...forms.structural import Matmul

    return (Matmul,) + tuple(v for v in vars(linalg).values()
                             if isinstance(v, type) and issubclass(v, sp.Basic) and v.__module__ == linalg.__name__)


_BLAS = _blas_types()
"""Node types whose NumPy forward calls BLAS or LAPACK (multithreaded)."""

_TITLES = {"c": "C loop", "reduce": "C loop nest, a sum over axes", "numpy": "NumPy"}


class Step:
    """One step of a plan: ``kind`` (``"c"``, ``"reduce"`` or ``"numpy"``), the compiled ``function``,
    the positions of its inputs in the plan's list of values, and the nodes it computes
    (appended to that list, in order)."""

    def __init__(self, kind: str, function: Any, reads: list[int], computes: list) -> None:
        self.kind, self.function, self.reads, self.computes = kind, function, reads, computes

    def __repr__(self) -> str:
        return f"<Step {self.kind}: {len(self.reads)} inputs -> {len(self.computes)} values>"


def _kinds(outputs: list, forced: frozenset = frozenset()) -> dict:
    """``node -> "c" | "reduce" | "numpy"`` for every non-atomic node: what the C loops
    translate, what a C loop nest sums over some axes (:mod:`.c_axes`), and the rest;
    decided from the users down (a slice is translated except inside the argument of a
    loop nest; a boolean a NumPy node reads stays NumPy)."""
    nodes = postorder(outputs)
    users: dict = {}
    for node in nodes:
        for arg in operands(node):
            users.setdefault(arg, []).append(node)
    kinds: dict = {}
    under_sum: dict = {}  # whether a loop nest evaluates this node (through C nodes, no step between)
    for node in reversed(nodes):  # users before their operands
        if not node.args:
            continue
        inside = False
        for user in users.get(node, ()):
            if kinds.get(user) == "c":
                inside = inside or under_sum.get(user, False)
            elif kinds.get(user) == "reduce":  # its body is evaluated inside a loop nest, without slices
                inside = True
        under_sum[node] = inside
        if node in forced:
            fits = False
        elif axis_run(node) is not None:
            kinds[node] = "reduce"
            continue
        elif shift_supported(node):
            fits = not inside
        else:
            fits = (_translatable(node) or full_reduction(node) is not None) and not (
                isinstance(node, _BOOLEAN) and any(kinds.get(u) == "numpy" for u in users.get(node, ())))
        kinds[node] = "c" if fits else "numpy"
    return kinds


def _shape(node: sp.Basic) -> tuple:
    return tuple(shape_of(node)) if isinstance(node, sp.Expr) else ()


def plan_steps(outputs: list, forced: frozenset = frozenset()) -> tuple[dict, dict, set]:
    """``(kinds, levels, materialised)``: each non-atomic node's kind (:func:`_kinds`; the
    nodes ``forced`` are NumPy's), its step number (C step ``k`` runs after NumPy step
    ``k``; NumPy steps start at 1), and the nodes that are values of their own (outputs,
    and operands computed by another kind of step)."""
    kinds = _kinds(outputs, forced)
    nodes = [n for n in postorder(outputs) if n.args]
    materialised = {n for n in outputs if n.args} | {n for n in nodes if kinds[n] == "reduce"}
    for node in nodes:
        for arg in operands(node):
            if arg.args and kinds[arg] != kinds[node] and not (kinds[node] == "reduce" and kinds[arg] == "c"):
                materialised.add(arg)
    levels: dict = {}
    for node in nodes:
        args = [a for a in operands(node) if a.args]
        if kinds[node] == "c":
            levels[node] = max((levels[a] for a in args), default=0)
        elif kinds[node] == "reduce":  # after the NumPy step of its level, its elementwise body inside it
            # (or read, when a loop computes it anyway)
            levels[node] = max([1] + [levels[a] + (kinds[a] == "c" and a in materialised) for a in args])
        else:
            levels[node] = max([1] + [levels[a] + (kinds[a] != "numpy") for a in args])
    return kinds, levels, materialised


class PlannedFunction(NativeFunction):
    """A compiled plan (see the module docstring); call it like ``CompiledFunction``.

    >>> from symgrad.symbolic.core.symbols import ArrayVar
    >>> from symgrad.symbolic.forms.structural import Matmul
    >>> a, x = ArrayVar("a", (2, 2)), ArrayVar("x", (2,))
    >>> f = PlannedFunction([a, x], [sp.exp(Matmul.of(a, sp.sin(x)))])
    >>> [step.kind for step in f.steps]
    ['c', 'numpy', 'c']
    >>> np.allclose(f(np.eye(2), np.ones(2)).out0, np.exp(np.sin(np.ones(2))))
    True
    """

    backend = "c"

    def __init__(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], **options: Any) -> None:
        super().__init__(inputs, outputs, **options)
        forced: frozenset = frozenset()
        while True:
            try:
                self._build(forced)
                break
            except _Refused as refused:  # what C could not translate after all: NumPy's, and plan again
                forced = forced | refused.nodes
        self.source = "\n\n".join(
            f"/* step {i}: {_TITLES[s.kind]} -> {len(s.computes)} value(s) */\n"
            f"{s.function.source}" for i, s in enumerate(self.steps))
        self.n_temporaries = sum(s.function.n_temporaries for s in self.steps)

    def _build(self, forced: frozenset) -> None:
        from ..compile import CompiledFunction
        from .c_fused import FusedFunction

        roots = list(self.exprs.values())
        kinds, levels, materialised = plan_steps(roots, forced)
        slot = {s: i for i, s in enumerate(self.symbols)}
        taken = {str(s) for s in self.symbols}
        names: dict = {}

        def symbol_for(node) -> ArrayVar:
            name = f"_piece{len(names)}"
            while name in taken:
                name += "_"
            names[node] = ArrayVar(name, _shape(node))
            return names[node]

        self.steps: list[Step] = []
        top = max(levels.values(), default=0)
        for level in range(top + 1):
            for kind in (("numpy", "reduce", "c") if level else ("c",)):
                chosen = [n for n in levels if levels[n] == level and kinds[n] == kind and n in materialised]
                if not chosen:
                    continue
                bodies = _cut(chosen, names)
                if kind == "c":
                    groups = _groups(chosen, bodies)
                elif kind == "reduce":  # one loop nest each, in order (one may read another)
                    groups = [[i] for i in range(len(chosen))]
                else:
                    groups = [list(range(len(chosen)))]
                for group in groups:
                    nodes = [chosen[i] for i in group]
                    # (a loop nest reads the loop nests before it: cut again)
                    exprs = _cut(nodes, names) if kind == "reduce" else [bodies[i] for i in group]
                    free = sorted({s for e in exprs for s in _symbols(e)}, key=lambda s: (s not in slot, str(s)))
                    number = len(self.steps)
                    if kind == "c":
                        try:
                            function = FusedFunction(free, exprs, name=f"{self.name}_step{number}")
                        except UnsupportedExpressionError:
                            shifts = frozenset(n for n in postorder(nodes) if isinstance(n, (Getitem, IndexPut)))
                            if not shifts - forced:
                                raise
                            raise _Refused(shifts) from None
                    elif kind == "reduce":
                        try:
                            function = AxisReduction(free, exprs, name=f"{self.name}_step{number}")
                        except UnsupportedExpressionError:  # a body C does not translate: NumPy's
                            raise _Refused(frozenset(nodes)) from None
                    else:
                        function = CompiledFunction(free, exprs, name=f"{self.name}_step{number}")
                    reads = [slot[s] for s in free]
                    for node in nodes:
                        slot[symbol_for(node)] = len(slot)
                    self.steps.append(Step(kind, function, reads, nodes))
        blas = any(isinstance(n, _BLAS) for step in self.steps if step.kind == "numpy" for n in postorder(step.computes))
        for step in self.steps:  # a multithreaded BLAS and the loops' threads would contend for the cores
            loops = [step.function] if step.kind != "numpy" and blas else []
            while loops:
                loop = loops.pop()
                loop.parallel = False
                loops.extend(getattr(loop, "inner", ()))  # the loops of full sums inside
        self.results = [slot[names[o]] if o in names else slot.get(o) for o in roots]
        self.constants = [None if o.args or o in slot else o for o in roots]

    def _check(self, i: int, value: Any) -> np.ndarray:
        """As for every native function, but integer arrays are taken too (indices, which
        NumPy steps read; a C step reads them as float64)."""
        array = getattr(value, "_data", value)
        if isinstance(array, np.ndarray) and array.dtype.kind in "iu":
            if array.shape != self.input_shapes[i]:
                return super()._check(i, array.astype(np.float64))  # the shape error
            return array
        return super()._check(i, value)

    def _run(self, arrays: list) -> list:
        values = list(arrays)
        for step in self.steps:
            reads = [values[i] for i in step.reads]
            if step.kind != "numpy":
                reads = [r.astype(np.float64) if r.dtype.kind in "iu" else r for r in reads]
            values.extend(step.function.outputs_of(reads))
        out: list = []
        seen: set = set()
        for position, constant in zip(self.results, self.constants):
            if constant is not None:
                out.append(np.asarray(float(constant)))
            elif position < len(arrays) or position in seen:  # an input, or an output twice: a copy
                out.append(np.array(values[position], dtype=np.float64))
            else:
                out.append(values[position])
            seen.add(position)
        return out


class _Refused(Exception):
    """A C step could not read these slices point by point (a slice of an adjoint, say)."""

    def __init__(self, nodes: frozenset) -> None:
        super().__init__(f"{len(nodes)} slices")
        self.nodes = nodes


def _symbols(expr: sp.Basic) -> set:
    return {n for n in postorder([expr]) if isinstance(n, sp.Symbol)}


def _cut(nodes: list, names: dict) -> list:
    """Each of ``nodes`` with the values earlier steps computed (``names``: node -> symbol)
    replaced by their symbols, rebuilt without evaluation."""
    built: dict = dict(names)
    for root in nodes:
        stack = [root]
        while stack:
            node = stack[-1]
            if node in built:
                stack.pop()
                continue
            pending = [a for a in node.args if a not in built]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            args = [built[a] for a in node.args]
            built[node] = node if all(a is b for a, b in zip(args, node.args)) else unevaluated(node, args)
    return [built[root] for root in nodes]


def _groups(nodes: list, bodies: list) -> list[list[int]]:
    """Which of one C step's values share a loop: all those with slices (each over its own
    length), and the others by shape (of what a full sum sums)."""
    from .c_code import split_reduction
    from .c_points import has_shifts

    groups: dict = {}
    for i, body in enumerate(bodies):
        key = "slices" if has_shifts([body]) else tuple(shape_of(split_reduction(body)[1]))
        groups.setdefault(key, []).append(i)
    return list(groups.values())
