"""``gradcheck`` and ``gradgradcheck``: every engine's Jacobian against central finite
differences and against each other, with kinks told apart from wrong gradients.

How a check runs (:class:`Check`):

1. the inputs that require grad are the ones checked; default tolerances follow their
   dtype (float32 gets a :class:`~symgrad.check.report.Float32Warning`);
2. finite differences in float64 give the reference, one column per input element (fast
   mode: one random direction per input, and one random projection per output), each with
   its estimated error (:mod:`symgrad.check.numerical`), which widens that element's
   tolerance;
3. each engine runs the function under ``backward_engine(name)`` and computes one
   vector-Jacobian product per output element with ``symgrad.autograd.grad``;
4. an element that disagrees is re-examined: when the one-sided differences differ by
   more than the tolerance at the smallest step ``s`` *and* at ``s / 10``, the stencil
   straddles a kink, and a gradient lying between the one-sided derivatives is a
   :class:`Kink`, not a :class:`Mismatch`; when the central difference at ``s / 10``
   agrees, the kink was inside the stencil but away from the point;
5. engines are also compared with each other (the first engine listed is the reference),
   strictly, also at kinks; a hand-written gradient is compared with them strictly except
   at a kink where its value lies between the one-sided derivatives (any such value is a
   derivative there: ``np.where(x >= 0, 1, -1)`` for ``abs`` at 0 is as right as 0).

>>> import symgrad
>>> x = symgrad.tensor([0.5, -1.5], requires_grad=True)
>>> bool(gradcheck(lambda x: (x * x.sin()).sum(), (x,), engines=("tape",)))
True
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..autograd import grad as autograd_grad
from ..progress import progress
from ..tape.engine import backward_engine, graph_order
from ..tape.grad_mode import enable_grad
from ..tape.tensor import Tensor
from .engines import as_outputs, engine_rows, engine_status
from .numerical import FiniteDifferences, differentiable_positions
from .report import (Block, EngineUnavailableError, EngineUnavailableWarning, Float32Warning, GradcheckError,
                     GradcheckResult, Kink, KinkWarning, Mismatch, Tolerances, default_tolerances, warn)

__all__ = ["gradcheck", "gradgradcheck", "DEFAULT_ENGINES", "Check"]

DEFAULT_ENGINES: tuple[str, ...] = ("symbolic", "tape")
"""The engines a check runs unless told otherwise.  With this default an engine that cannot
be loaded is skipped with an :class:`EngineUnavailableWarning`; naming engines explicitly
makes a missing one an :class:`EngineUnavailableError`."""

FULL_JACOBIAN_LIMIT = 20_000
"""Fast mode re-runs a failing check on the full Jacobian to locate the mismatch when the
Jacobian has at most this many elements."""


def gradcheck(func: Callable, inputs, *, eps: float | None = None, atol: float | None = None,
              rtol: float | None = None, engines: Sequence[str] = DEFAULT_ENGINES, raise_exception: bool = True,
              fast_mode: bool = False, seed: int = 0) -> GradcheckResult:
    """Check every engine's gradient of ``func`` at ``inputs`` against finite differences.

    ``func`` takes the ``inputs`` (a Tensor or a tuple; the Tensors with
    ``requires_grad=True`` are checked, anything else is passed through) and returns a
    Tensor or a tuple of Tensors.  Defaults for ``atol`` and ``rtol`` follow the dtype
    (float64: 1e-5, 1e-3); the finite-difference step is chosen per element unless ``eps``
    fixes it.  ``fast_mode`` compares ``v^T J u`` for random
    ``u``, ``v`` (seeded by ``seed``) instead of the whole Jacobian.

    Returns a :class:`GradcheckResult`, truthy when all agree; raises
    :class:`GradcheckError` with the report on disagreement unless ``raise_exception=False``.

    >>> import symgrad
    >>> x = symgrad.tensor([[1.0, -2.0], [0.5, 3.0]], requires_grad=True)
    >>> gradcheck(lambda x: x.exp() * x, (x,), engines=("tape",))
    <GradcheckResult gradcheck order 1: ok; checked ['tape']>
    """
    check = Check(func, inputs, eps=eps, atol=atol, rtol=rtol, engines=engines, fast_mode=fast_mode, seed=seed)
    return finish(check.run(), raise_exception)


def gradgradcheck(func: Callable, inputs, grad_outputs=None, *, eps: float | None = None,
                  atol: float | None = None, rtol: float | None = None,
                  engines: Sequence[str] = DEFAULT_ENGINES, raise_exception: bool = True,
                  fast_mode: bool = False, seed: int = 0) -> GradcheckResult:
    """Check second derivatives: the gradient of ``func`` (computed with
    ``create_graph=True`` by each engine) is itself checked against finite differences of
    that gradient, with respect to the inputs and to the upstream gradients
    ``grad_outputs`` (random, seeded by ``seed``, when not given).  Engines' second
    derivatives are also compared with each other.

    >>> import symgrad
    >>> x = symgrad.tensor([0.3, 1.2], requires_grad=True)
    >>> bool(gradgradcheck(lambda x: x.sin() * x, (x,), engines=("tape",)))
    True
    """
    args = _as_args(inputs)
    outputs = as_outputs(func(*args))
    rng = np.random.default_rng(seed)
    if grad_outputs is None:
        grad_outputs = [Tensor(rng.standard_normal(out.shape).astype(out.dtype), requires_grad=True,
                               name=f"v{position}") for position, out in outputs]
    else:
        grad_outputs = [g if isinstance(g, Tensor) else Tensor(np.asarray(g)) for g in _as_args(grad_outputs)]
        if len(grad_outputs) != len(outputs):
            raise ValueError(f"gradgradcheck got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    labels, skipped = resolve_engines(engines)
    labels, repeated = without_repeated_opinions(labels, outputs)
    skipped.update(repeated)
    diff = differentiable_positions(args)
    names = [_input_name(args[i], i) for i in diff]
    n_args = len(args)

    def first_derivative(engine: str):
        def gradient(*all_args):
            xs, vs = all_args[:n_args], all_args[n_args:]
            with backward_engine(engine), enable_grad():
                outs = [out for _, out in as_outputs(func(*xs))]
                pairs = [(out, v) for out, v in zip(outs, vs) if out.requires_grad]
                wrt = [xs[i] for i in diff]
                if not pairs:
                    return tuple(Tensor(np.zeros(x.shape, x.dtype)) for x in wrt)
                grads = autograd_grad([p[0] for p in pairs], wrt, grad_outputs=[p[1] for p in pairs],
                                      create_graph=True, allow_unused=True)
            return tuple(Tensor(np.zeros(x.shape, x.dtype)) if g is None else g for g, x in zip(grads, wrt))
        return gradient

    results = []
    for engine, label in labels:
        check = Check(first_derivative(engine), (*args, *grad_outputs), eps=eps, atol=atol, rtol=rtol,
                      engines=[(engine, label)], fast_mode=fast_mode, seed=seed, what="gradgradcheck",
                      out_names=[f"grad_{name}" for name in names])
        results.append(check.run())
    merged = merge(results, skipped)
    merged.order = 2
    return finish(merged, raise_exception)


# ----------------------------------------------------------------------------- helpers
def finish(result: GradcheckResult, raise_exception: bool) -> GradcheckResult:
    """Raise or warn as the result demands, then return it."""
    if not result.ok and raise_exception:
        raise GradcheckError(result)
    if result.ok and result.kinks:
        warn(KinkWarning(
            f"{result.what}: {len(result.kinks)} element(s) straddle a kink and were not counted as mismatches; "
            f"first: {result.kinks[0]}"
        ))
    return result


def merge(results: list[GradcheckResult], skipped: dict[str, str]) -> GradcheckResult:
    """One result from per-engine results, plus the engine-vs-engine comparison."""
    first = results[0]
    merged = GradcheckResult(first.what, first.order, tuple(label for r in results for label in r.labels),
                             first.tolerances, first.dtype, fast_mode=first.fast_mode, skipped=dict(skipped))
    for r in results:
        merged.blocks += r.blocks
        merged.mismatches += r.mismatches
        merged.kinks += r.kinks
        merged.errors.update(r.errors)
        merged.notes += [n for n in r.notes if n not in merged.notes]
    reference = first.labels[0]
    for r in results[1:]:
        label = r.labels[0]
        for ref_block, block in zip(first.blocks, r.blocks):
            if reference not in ref_block.analytic or label not in block.analytic:
                continue
            _compare_engines(merged, block, label, reference, ref_block.analytic[reference],
                             ref_block.bad.get(reference), first.tolerances)
    return merged


def resolve_engines(engines) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``[(engine, label), ...]`` that can run, and ``{engine: why}`` for skipped defaults."""
    explicit = engines is not DEFAULT_ENGINES
    if isinstance(engines, str):
        engines = (engines,)
    labels, skipped = [], {}
    for entry in engines:
        name, label = entry if isinstance(entry, tuple) else (entry, entry)
        ok, why = engine_status(name)
        if ok:
            labels.append((name, label))
        elif explicit:
            raise EngineUnavailableError(
                f"the {name!r} backward engine cannot be loaded ({why}); check with the engines that exist, "
                f"e.g. engines=('tape',), or leave engines at its default to skip unavailable ones"
            )
        else:
            skipped[name] = f"it cannot be loaded ({why})"
            warn(EngineUnavailableWarning(
                f"gradient check skips the {name!r} engine: it cannot be loaded ({why})"))
    if not labels:
        raise EngineUnavailableError(f"none of the engines {list(engines)} can be loaded: {skipped}")
    return labels, skipped


def without_repeated_opinions(engines: list, outputs) -> tuple[list, dict]:
    """``engines`` without the symbolic engine when the graph of ``outputs`` has a custom
    Function with no SymPy form and the tape is checked too: the symbolic engine would run
    that Function's own ``backward`` again, which is no second opinion.  Returns the
    engines left and ``{label: why}`` for the one dropped.

    >>> import symgrad
    >>> class Twice(symgrad.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x): return x * 2
    ...     @staticmethod
    ...     def backward(ctx, g): return g * 2
    >>> out = Twice.apply(symgrad.tensor([1.0], requires_grad=True))
    >>> without_repeated_opinions([("symbolic", "symbolic"), ("tape", "tape")], [(0, out)])[1]["symbolic"]
    'no closed form: Twice defines no sympy form, so the symbolic engine would run Twice.backward again; only the tape and finite differences checked'
    """
    names = [name for name, _ in engines]
    if "symbolic" not in names or "tape" not in names:
        return engines, {}
    roots = [out.grad_fn for _, out in outputs if out.grad_fn is not None]
    custom = []
    for node in graph_order(roots):
        function = getattr(node, "function", None)
        if function is not None and getattr(function, "sympy", None) is None and function.__name__ not in custom:
            custom.append(function.__name__)
    if not custom:
        return engines, {}
    which = ", ".join(custom)
    backwards = ", ".join(f"{name}.backward" for name in custom)
    verb = "defines" if len(custom) == 1 else "define"
    dropped = {label: (f"no closed form: {which} {verb} no sympy form, so the symbolic engine would run {backwards} "
                       "again; only the tape and finite differences checked")
               for name, label in engines if name == "symbolic"}
    return [(name, label) for name, label in engines if name != "symbolic"], dropped


def _as_args(inputs) -> tuple:
    return tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)


def _input_name(tensor, position: int) -> str:
    return getattr(tensor, "name", None) or f"input{position}"


def _working_dtype(tensors) -> np.dtype:
    """The least precise floating dtype among ``tensors``."""
    return max((np.dtype(t.dtype) for t in tensors), key=lambda d: np.finfo(d).eps)


# ----------------------------------------------------------------------------- the check
class Check:
    """One gradient check; :meth:`run` returns the :class:`GradcheckResult`.

    Besides ``gradcheck``'s arguments: ``engines`` entries may be ``(engine, label)``
    pairs (``check_function`` labels the tape as ``"MyRelu.backward"``); ``given`` maps a
    label to precomputed full Jacobian blocks ``[output][input]`` (``check_grad``'s
    hand-written gradient); ``fd_func`` evaluates the function for finite differences when
    it differs from the traced one (a NumPy function).  ``columns="diagonal"`` checks an
    elementwise function (every output of each input's shape, output element ``i``
    depending on input element ``i`` only): one column per input, the derivative of each
    element, from one perturbation of all elements at once; ``along=[p, ...]`` checks the
    Jacobian times one direction per input (a Hessian-vector product, when the function is
    a gradient).  In both, ``given`` blocks are those columns, of the outputs' size.
    ``sample=[elements, ...]`` takes finite differences at those (flat) elements of each
    input only, and compares every opinion there (the ``symgrad check`` command, on large
    arrays).
    """

    def __init__(self, func, inputs, *, eps=None, atol=None, rtol=None, engines=DEFAULT_ENGINES,
                 fast_mode=False, seed=0, what="gradcheck", given=None, fd_func=None, out_names=None,
                 columns: str = "elements", along: list | None = None, sample: list | None = None) -> None:
        self.func = func
        self.fd_func = fd_func or func
        self.args = _as_args(inputs)
        self.diff = differentiable_positions(self.args)
        if not self.diff:
            kinds = ", ".join(type(a).__name__ for a in self.args)
            raise ValueError(
                f"{what} needs at least one input Tensor with requires_grad=True, got ({kinds}); "
                "create inputs with symgrad.tensor(..., requires_grad=True, dtype=symgrad.float64)"
            )
        diff_tensors = [self.args[i] for i in self.diff]
        self.dtype = _working_dtype(diff_tensors)
        defaults = default_tolerances(self.dtype)
        self.tol = Tolerances(eps if eps is not None else defaults.eps, atol if atol is not None else defaults.atol,
                              rtol if rtol is not None else defaults.rtol)
        if self.dtype != np.float64:
            warn(Float32Warning(
                f"{what} of {self.dtype.name} inputs: rounding in {self.dtype.name} makes the check loose "
                f"(atol={self.tol.atol:g}, rtol={self.tol.rtol:g}); check in float64 (x.double()) for a strict check"
            ))
        self.engines, self.skipped = (resolve_engines(engines) if engines else ([], {}))
        self.given = given or {}
        self.fast_mode = fast_mode
        self.seed = seed
        self.what = what
        self.in_names = {i: _input_name(self.args[i], i) for i in self.diff}
        self.out_names = out_names
        self.columns = "direction" if along is not None else columns
        self.along = [np.asarray(p, np.float64).ravel() for p in along] if along is not None else None
        self.sample = [np.asarray(s, np.int64) for s in sample] if sample is not None else None

    def run(self) -> GradcheckResult:
        outputs = as_outputs(self.fd_func(*self.args))
        self.engines, repeated = without_repeated_opinions(self.engines, outputs)
        labels = tuple(label for _, label in self.engines) + tuple(self.given)
        result = GradcheckResult(self.what, 1, labels, self.tol, self.dtype, fast_mode=self.fast_mode,
                                 skipped={**self.skipped, **repeated})
        fd = FiniteDifferences(self.fd_func, self.args, self.diff)
        if not fd.upcast and self.dtype != np.float64:
            result.notes.append(f"note: the function refused float64 inputs, so finite differences ran in "
                                f"{self.dtype.name} and are only roughly accurate")
        self.positions = [p for p, _ in outputs]
        self.out_shapes = [tuple(out.shape) for _, out in outputs]
        self.in_shapes = [tuple(self.args[i].shape) for i in self.diff]
        if self.columns == "diagonal" and any(o != i for o in self.out_shapes for i in self.in_shapes):
            raise ValueError(f"{self.what} with elementwise=True needs outputs of the inputs' shape (output element i "
                             f"depends on input element i only); got outputs of shapes "
                             f"{[list(o) for o in self.out_shapes]} and inputs of shapes "
                             f"{[list(i) for i in self.in_shapes]}")
        self.fd = fd
        self._plan()
        numerical, fd_error, plus, minus = self._numerical()
        analytic = {}
        for engine, label in self.engines:
            try:
                rows = engine_rows(self.func, self.args, self.diff, engine, self._cotangents)
            except Exception as err:  # noqa: BLE001  (reported, with the engine's name)
                result.errors[label] = err
                continue
            analytic[label] = [[self._project_columns(rows[o][k], k) for k in range(len(self.diff))]
                               for o in range(len(rows))]
        for label, blocks in self.given.items():
            analytic[label] = [[self._project(blocks[o][k], o, k) for k in range(len(self.diff))]
                               for o in range(len(blocks))]
        self._refined: dict = {}
        self._kinks: dict = {}
        for o in range(len(self.out_shapes)):
            for k in range(len(self.diff)):
                block = self._block(o, k, numerical[o][k], fd_error[o][k])
                result.blocks.append(block)
                block.analytic = {label: blocks[o][k] for label, blocks in analytic.items()}
                for label, value in block.analytic.items():
                    self._compare_numerical(result, block, label, value, plus[o][k], minus[o][k])
                labels_here = list(block.analytic)
                for label in labels_here[1:]:
                    _compare_engines(result, block, label, labels_here[0], block.analytic[labels_here[0]],
                                     block.bad.get(labels_here[0]), self.tol,
                                     exempt=self._accepted_kinks(o, k, label, block) if label in self.given else None)
        result.mismatches.sort(key=lambda m: -m.severity)
        if self.fast_mode and not result.ok and result.mismatches:
            size = sum(int(np.prod(s, dtype=np.int64)) for s in self.out_shapes) * sum(
                int(np.prod(s, dtype=np.int64)) for s in self.in_shapes)
            if size <= FULL_JACOBIAN_LIMIT:
                full = Check(self.func, self.args, eps=self.tol.eps, atol=self.tol.atol, rtol=self.tol.rtol,
                             engines=self.engines, what=self.what, given=self.given, fd_func=self.fd_func,
                             out_names=self.out_names)
                result.full = full.run()
            else:
                result.notes.append(f"the Jacobian has {size} elements; run with fast_mode=False to locate the mismatch")
        return result

    # ---------------------------------------------------------------- directions
    def _plan(self) -> None:
        rng = np.random.default_rng(self.seed)
        if self.fast_mode:
            self.v = [rng.standard_normal(shape) for shape in self.out_shapes]
            self.u = [rng.standard_normal(shape).ravel() for shape in self.in_shapes]

    def _cotangents(self, o: int, shape: tuple):
        if self.columns == "diagonal":
            return [np.ones(shape)]
        return [self.v[o]] if self.fast_mode else None

    def _directions(self, k: int) -> list[np.ndarray]:
        if self.fast_mode:
            return [self.u[k]]
        if self.columns == "direction":
            return [self.along[k]]
        if self.columns == "diagonal":  # every element at once, each by its own step
            return [self._scales(k)]
        size = int(np.prod(self.in_shapes[k], dtype=np.int64))
        elements = self.sample[k] if self.sample is not None else range(size)
        return [np.eye(1, size, j).ravel() for j in elements]

    def _scales(self, k: int) -> np.ndarray:
        """Elementwise checks move element j by ``t * max(|x_j|, 1)``: each its own step."""
        return np.maximum(np.abs(self.fd.base[k].ravel().astype(np.float64)), 1.0)

    def _project_rows(self, o: int, values: np.ndarray) -> np.ndarray:
        """Output values (flattened, one column per direction) -> block rows."""
        return self.v[o].reshape(1, -1) @ values if self.fast_mode else values

    def _project_columns(self, rows: np.ndarray, k: int) -> np.ndarray:
        """Engine VJP rows (rows x numel(input)) -> block columns."""
        if self.columns == "diagonal":  # ones^T J of an elementwise function is its diagonal
            return rows.reshape(-1, 1)
        if self.columns == "direction":
            return rows @ self.along[k].reshape(-1, 1)
        if self.sample is not None:
            return rows[:, self.sample[k]]
        return rows @ self.u[k].reshape(-1, 1) if self.fast_mode else rows

    def _project(self, jacobian: np.ndarray, o: int, k: int) -> np.ndarray:
        if self.columns != "elements":  # given as the columns themselves
            return np.asarray(jacobian, np.float64).reshape(-1, 1)
        jacobian = np.asarray(jacobian, np.float64).reshape(int(np.prod(self.out_shapes[o], dtype=np.int64)),
                                                            int(np.prod(self.in_shapes[k], dtype=np.int64)))
        return self._project_columns(self._project_rows(o, jacobian), k)

    # ---------------------------------------------------------------- numerical side
    def _numerical(self):
        """Per output and input: the estimated Jacobian block, its error, the first step of
        each column, and the one-sided quotients (blocks of shape rows x columns)."""
        n_out = len(self.fd.f0)
        fields = ("value", "error", "step", "plus", "minus")
        found = {name: [[None] * len(self.diff) for _ in range(n_out)] for name in fields}
        project = self._project_rows_flat if self.fast_mode else None
        for k in range(len(self.diff)):
            steps = progress(self._directions(k), desc=f"{self.what}: finite differences of "
                             f"{self.in_names[self.diff[k]]}", unit="direction")
            estimates = [self.fd.derivative(k, direction, self.tol.eps, self._target, project) for direction in steps]
            for o in range(n_out):
                rows = 1 if self.fast_mode else self.fd.f0[o].size
                for name in fields:
                    columns = [getattr(e, name)[o] for e in estimates]
                    found[name][o][k] = np.stack(columns, axis=1) if columns else np.zeros((rows, 0))
        if self.columns == "diagonal":  # derivative along the scaled direction -> per element
            for k in range(len(self.diff)):
                for o in range(n_out):
                    for name in fields:
                        scale = 1 / self._scales(k) if name != "step" else self._scales(k)
                        found[name][o][k] = found[name][o][k] * scale.reshape(-1, 1)
        self._steps = found["step"]
        return found["value"], found["error"], found["plus"], found["minus"]

    def _target(self, value):
        """The error a finite difference should stay below: a tenth of the tolerance."""
        return self.tol.bound(value) / 10

    def _project_rows_flat(self, o: int, values: np.ndarray) -> np.ndarray:
        return self.v[o].reshape(1, -1) @ values

    def _refine(self, o: int, k: int, r: int, c: int):
        """Central and one-sided quotients of element (r, c) at a tenth of its smallest step."""
        scale = self._scales(k)[r] if self.columns == "diagonal" else 1.0
        key = (k, c, float(self._steps[o][k][r, c] / scale))
        if key not in self._refined:
            h = key[2] / 20
            moved = self.fd.moved(k, self._directions(k)[c])
            self._refined[key] = (moved(h), moved(-h), h)
        plus, minus, h = self._refined[key]
        project = (lambda values: self._project_rows_flat(o, values)) if self.fast_mode else (lambda values: values)
        p, m, f0 = project(plus[o])[r], project(minus[o])[r], project(self.fd.f0[o])[r]
        h = h * scale
        return (p - m) / (2 * h), (p - f0) / h, (f0 - m) / h

    # ---------------------------------------------------------------- comparison
    def _block(self, o: int, k: int, numerical: np.ndarray, fd_error: np.ndarray) -> Block:
        position = self.positions[o]
        out_name = self.out_names[o] if self.out_names else f"output{position}"
        return Block(position, self.diff[k], out_name, self.in_names[self.diff[k]], self.out_shapes[o],
                     self.in_shapes[k], numerical, projected=self.fast_mode,
                     kinks=np.zeros(numerical.shape, bool), fd_error=fd_error, steps=self._steps[o][k],
                     columns=self.columns, column_elements=None if self.sample is None else self.sample[k])

    def _compare_numerical(self, result, block: Block, label: str, value: np.ndarray, plus, minus) -> None:
        tol = self.tol
        numerical = block.numerical
        bad = ~_close(value, numerical, tol, block.fd_error)
        o = self.positions.index(block.output)
        k = self.diff.index(block.input)
        for r, c in zip(*np.nonzero(bad)):
            verdict = self._kink(o, k, r, c, value[r, c], plus[r, c], minus[r, c])
            if verdict is None:
                continue
            bad[r, c] = False
            key = (o, k, r, c)
            if key not in self._kinks:
                block.kinks[r, c] = True
                left, right, at_point = verdict
                self._kinks[key] = Kink(block.output, block.input, block.row_index(r), block.col_index(c, r),
                                        float(numerical[r, c]), left, right, {"numerical": float(numerical[r, c])},
                                        at_point, block.out_name, block.in_name, block.out_shape, block.in_shape)
                result.kinks.append(self._kinks[key])
            self._kinks[key].values[label] = float(value[r, c])
        block.bad[label] = bad
        for r, c in zip(*np.nonzero(bad)):
            values = {"numerical": float(numerical[r, c])}
            values.update({lab: float(arr[r, c]) for lab, arr in block.analytic.items()})
            result.mismatches.append(Mismatch(block.output, block.input, block.row_index(r), block.col_index(c, r),
                                              label, "numerical", float(value[r, c]), float(numerical[r, c]),
                                              values, tol, block.out_name, block.in_name, block.out_shape,
                                              block.in_shape, fd_error=float(block.fd_error[r, c]),
                                              step=float(block.steps[r, c])))

    def _accepted_kinks(self, o: int, k: int, label: str, block: Block) -> np.ndarray:
        """The elements of block (o, k) where ``label``'s value lies between the one-sided
        derivatives of a kink: any such value is a valid derivative there, so a hand-written
        gradient that picks another one than the engines is not a mismatch."""
        accepted = np.zeros(block.numerical.shape, bool)
        for (ko, kk, r, c), kink in self._kinks.items():
            if (ko, kk) == (o, k) and label in kink.values:
                accepted[r, c] = True
        return accepted

    def _kink(self, o, k, r, c, value, plus, minus):
        """``(left, right, at_point)`` when element (r, c) straddles a kink that explains
        ``value``; None when it is a genuine mismatch."""
        tol = self.tol
        if not (np.isfinite(value) and np.isfinite(plus) and np.isfinite(minus)):
            return None
        if abs(plus - minus) <= tol.atol + tol.rtol * max(abs(plus), abs(minus)):
            return None  # the one-sided differences agree: no kink, the gradient is wrong
        central, plus_fine, minus_fine = self._refine(o, k, r, c)
        if abs(value - central) <= float(tol.bound(central)):
            return float(minus), float(plus), False  # the kink lies inside the stencil, away from the point
        jump = abs(plus_fine - minus_fine)
        if jump <= tol.atol + tol.rtol * max(abs(plus_fine), abs(minus_fine)):
            return None  # the jump shrank with the step: curvature, not a kink
        low, high = min(plus_fine, minus_fine), max(plus_fine, minus_fine)
        slack = float(tol.bound(max(abs(low), abs(high))))
        if low - slack <= value <= high + slack:
            return float(minus_fine), float(plus_fine), True
        return None


def _close(value: np.ndarray, reference: np.ndarray, tol: Tolerances, fd_error=0.0) -> np.ndarray:
    """Where ``value`` is within ``atol + rtol * |reference|`` of ``reference``, plus the
    reference's own estimated error when it is a finite difference."""
    with np.errstate(invalid="ignore"):
        close = np.abs(value - reference) <= tol.bound(reference) + fd_error
    return close | (np.isnan(value) & np.isnan(reference)) | (value == reference)


def _compare_engines(result, block: Block, label: str, reference: str, ref_value: np.ndarray,
                     ref_bad, tol: Tolerances, exempt: np.ndarray | None = None) -> None:
    """Strict comparison of two engines on the elements where neither already failed
    against finite differences (so each wrong element is reported once), except the
    ``exempt`` ones (a hand-written gradient's accepted kinks)."""
    value = block.analytic[label]
    bad = ~_close(value, ref_value, tol)
    already = block.bad.get(label, np.zeros(bad.shape, bool))
    if ref_bad is not None:
        already = already | ref_bad
    if exempt is not None:
        already = already | exempt
    bad &= ~already
    if not bad.any():
        return
    block.bad[label] = block.bad.get(label, np.zeros(bad.shape, bool)) | bad
    for r, c in zip(*np.nonzero(bad)):
        values = {"numerical": float(block.numerical[r, c])}
        values.update({lab: float(arr[r, c]) for lab, arr in block.analytic.items()})
        result.mismatches.append(Mismatch(block.output, block.input, block.row_index(r), block.col_index(c, r),
                                          label, reference, float(value[r, c]), float(ref_value[r, c]), values,
                                          tol, block.out_name, block.in_name, block.out_shape, block.in_shape))
