"""Tracing guard: a traced function must not freeze values computed from its arguments.

The transforms (``symgrad.grad(f)`` and friends) call ``f`` once per cache key on leaf
tensors (*tracers*) and compile the recorded graph; at every later call with the same key
the compiled code reads the new arguments. Anything ``f`` learns about its arguments'
*values* outside the recorded graph would be frozen at the first call. This module
refuses all of it while a trace runs:

* **ways out of the graph** -- ``float(t)``, ``int(t)``, ``bool(t)`` (so ``if x > 0:``),
  ``complex(t)``, ``t.item()``, ``t.numpy()``, ``t.tolist()``, ``np.asarray(t)``
  (``__array__``), ``operator.index(t)`` (``range(t)``, ``x[:t]``), ``format(t, spec)``
  and ``symgrad.tensor(t)`` of a traced tensor raise :class:`UntraceableError`
  (:func:`refuse`), naming the operation, the line of the user's function that did it
  and the fix;
* **masks are followed** -- a comparison (``a > 0``), ``&``, ``|`` and ``~`` of masks
  (the table's mask ops), a ``cast`` of a mask or of an integer argument
  (``mask.float()``, and the conversion in ``mask * x``), and any op on what those made,
  are recorded when an input is part of the trace although nothing requires grad
  (:func:`follows`): the node is the output's ``_trace_node``, not its ``grad_fn`` (a
  mask never requires grad, as in PyTorch), so ``symgrad.where(a > 0, a, -a)`` is
  recomputed from each call's values.  Eager code never records a mask;
* **positions are followed** as masks are: ``argmax`` and ``argmin`` are ops without
  derivative (int64 results), recorded for the trace and recomputed at every call;
* **tensors made outside the graph** from a traced tensor -- ``all()``,
  ``any()``, ``detach()``, ``detach_()``, integer arithmetic on an argument, anything
  under ``no_grad``, an in-place change of an argument or of a value under ``no_grad``
  (a mask changed in place is followed) -- are marked with how they were made (:func:`mark`); a recorded op
  that uses one, or a traced function that returns one, raises (:func:`check_use`);
* **gradient hooks** registered on a traced tensor would never run: refused
  (:func:`refuse_hook`);
* **random numbers** drawn inside a traced function would be drawn once: refused too --
  symgrad's own (``randn``, ``Dropout``) as they are drawn, and NumPy's or Python's
  (``np.random.normal``, a captured ``np.random.Generator``, the ``random`` module) when
  the trace ends and their generator's state has moved (:func:`refusing_random_draws`);
* **index arrays** taken from an integer argument (``x[i]``, labels in ``nll_loss``)
  are remembered with how they were computed from it (:func:`derived_array`), so the
  compiled function recomputes them from each call's argument.  A traced boolean mask
  used as an index (``x[a > 0]``) raises: the result's shape would depend on the values.

Shapes and dtypes are static (part of the cache key), so ``x.shape``, ``len(x)`` and
iterating over the first dimension work while tracing.  Outside a trace the cost is
one test of a module-level counter per op.

>>> import symgrad
>>> t = symgrad.grad(lambda a: symgrad.where(a > 0, a, -a).sum())
>>> t([1.0, -2.0]), t([-1.0, 2.0])
(array([ 1., -1.]), array([-1.,  1.]))
>>> symgrad.grad(lambda a: a[a > 0].sum())([1.0, -2.0])
Traceback (most recent call last):
    ...
symgrad.tape.tracing.UntraceableError: the traced function indexes with a boolean mask of shape (2,) from its inputs (at ...): ...
"""
from __future__ import annotations

import contextlib
import linecache
import os
import pickle
import random
import sys
import threading
from typing import Any, Callable, Iterable

import numpy as np

from .node import note_index_source

ACTIVE_TRACES = 0
"""How many traces run now, in any thread: a cheap test before the per-thread one."""

_state = threading.local()
_lock = threading.Lock()
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class UntraceableError(RuntimeError):
    """A traced function depends on a value the trace cannot follow (see the module)."""


class tracing:
    """Context manager: this thread runs a trace; ``leaves`` are its inputs.  Traces
    nest (a transform called inside a traced function traces its own function)."""

    def __init__(self, leaves: Iterable[Any]) -> None:
        self.leaves = list(leaves)

    def __enter__(self) -> "tracing":
        global ACTIVE_TRACES
        self.previous = (getattr(_state, "leaves", None), getattr(_state, "derived", None))
        _state.leaves = {id(t) for t in self.leaves}
        _state.derived = self.derived = []
        with _lock:
            ACTIVE_TRACES += 1
        return self

    def __exit__(self, *exc) -> None:
        global ACTIVE_TRACES
        _state.leaves, _state.derived = self.previous
        with _lock:
            ACTIVE_TRACES -= 1

    def derived_from(self, leaf: Any) -> list:
        """``(array, compute)`` for each array computed from ``leaf``'s values while
        tracing (see :func:`derived_array`): ``compute(values of leaf)`` recomputes it."""
        return [(array, compute) for array, tensor, compute in self.derived if tensor is leaf]


def _running() -> bool:
    """A trace runs in this thread (the counter first: it is what the hot path reads)."""
    return bool(ACTIVE_TRACES) and getattr(_state, "leaves", None) is not None


def _live(tensor: Any) -> bool:
    """Part of the trace: an input, in the recorded graph, or made from the trace."""
    return (tensor.grad_fn is not None or tensor._requires_grad or tensor._trace_node is not None
            or tensor._made_outside_graph is not None or id(tensor) in _state.leaves)


def is_traced(tensor: Any) -> bool:
    """Whether ``tensor`` is part of a trace running in this thread."""
    return _running() and _live(tensor)


def user_line() -> str:
    """``' (at file:line, in function: source)'`` for the innermost frame outside the
    symgrad package -- the line of the user's code that is running -- or ``''``."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not filename.startswith(_PACKAGE_DIR + os.sep):
            source = linecache.getline(filename, frame.f_lineno).strip()
            where = f"{frame.f_code.co_filename}:{frame.f_lineno}, in {frame.f_code.co_name}"
            return f" (at {where}: {source})" if source else f" (at {where})"
        frame = frame.f_back
    return ""


_FIXES = {
    "bool": "for a branch on a value use symgrad.where(condition, a, b), which is recorded; for a Python "
            "value that decides the program, pass it as a static argument (static_argnums=...)",
    "index": "index with the integer tensor itself (x[i]), which is read at every call, or pass the "
             "number as a static argument (static_argnums=...)",
    "random": "draw the random numbers outside the function and pass them as an argument",
}
_DEFAULT_FIX = ("keep the computation in symgrad ops on the tensor (they are recorded), or pass the Python "
                "value as a static argument (static_argnums=...); for a result you want to print or store, "
                "call the transform and use what it returns")


def refuse(tensor: Any, operation: str, fix: str | None = None) -> None:
    """Raise :class:`UntraceableError` if ``tensor`` is traced: ``operation`` (``"float()"``,
    ``"item()"``, ...) would turn it into a Python or NumPy value that the compiled
    function would reuse at every later call."""
    if not (_running() and _live(tensor)):
        return
    kind = "bool" if operation.startswith("bool") else "index" if operation.startswith("index") else None
    raise UntraceableError(
        f"{operation} of a traced tensor of shape {tuple(tensor.shape)} and dtype {tensor.dtype}{user_line()}: "
        "while symgrad.grad (or another transform) traces a function, its tensors have no fixed value -- the "
        "compiled function is reused with new arguments, so a value read now would be frozen at this call's. "
        f"Instead, {fix or _FIXES.get(kind, _DEFAULT_FIX)}")


def refuse_hook(tensor: Any) -> None:
    """Raise :class:`UntraceableError` when a gradient hook is registered on a traced tensor:
    a transform differentiates the recorded ops in closed form, so the hook, which would
    change the gradient in an eager backward, would never run."""
    if _running() and _live(tensor):
        raise UntraceableError(
            f"register_hook() on a traced tensor of shape {tuple(tensor.shape)}{user_line()}: symgrad.grad (and "
            "every transform) derives the gradient in closed form from the recorded ops, so a hook, which changes "
            "the gradient during an eager backward, would not run and the result would silently differ from "
            "backward()'s. Instead, call backward() or symgrad.autograd.grad() on the eager graph, or write the "
            "change of gradient as a custom Function with a SymPy form")


def refuse_random(what: str) -> None:
    """Raise :class:`UntraceableError` when random numbers are drawn inside a trace."""
    if _running():
        raise UntraceableError(
            f"{what} inside a traced function{user_line()}: the numbers would be drawn once, when the function is "
            f"traced, and reused at every call. Instead, {_FIXES['random']}")


RANDOM_SOURCE_TYPES = (np.random.Generator, np.random.RandomState, np.random.BitGenerator)
"""Random number generators whose state a transform checks around a trace."""


def _random_states(sources: Iterable[Any], with_globals: bool) -> list[bytes]:
    """The state of each of ``sources`` and, ``with_globals``, of NumPy's global generator and
    Python's ``random`` module."""
    states = [pickle.dumps(np.random.get_state(legacy=False)), pickle.dumps(random.getstate())] if with_globals else []
    for source in sources:
        state = source.bit_generator.state if isinstance(source, np.random.Generator) else (
            source.get_state(legacy=False) if isinstance(source, np.random.RandomState) else source.state)
        states.append(pickle.dumps(state))
    return states


@contextlib.contextmanager
def refusing_random_draws(function: Callable, sources: Iterable[Any] = ()):
    """Raise :class:`UntraceableError` if the body (a trace of ``function``) draws random
    numbers from NumPy's global generator, from Python's ``random`` module (while no other
    Python thread runs) or from one of ``sources`` (generators the function captured): the compiled function would replay
    this trace's numbers at every call, where the function itself draws new ones."""
    sources = list(sources)
    # the global generators are the process's: with other Python threads running (a dask
    # pool tracing blocks), their draws would be taken for the function's, so not checked
    with_globals = threading.active_count() == 1
    before = _random_states(sources, with_globals)
    yield
    after = _random_states(sources, with_globals)
    names = (["NumPy's global random generator (np.random.*)", "Python's random module"] if with_globals else []) + [
        f"the captured {type(s).__name__} {s!r}" for s in sources]
    moved = [name for name, b, a in zip(names, before, after) if b != a]
    if moved:
        code = getattr(function, "__code__", None)
        where = f" (the function {code.co_name}, defined at {code.co_filename}:{code.co_firstlineno})" if code else ""
        raise UntraceableError(
            f"the traced function{where} drew random numbers from {' and '.join(moved)}: they were drawn once, when the "
            f"function was traced, and the compiled function would reuse them at every call. Instead, "
            f"{_FIXES['random']}")


def derived_array(source: Any, compute: Callable[[Any], Any]) -> Any:
    """``compute(values of source)``; while ``source`` is traced, remembered so the
    compiled function recomputes it from each call's argument (labels and index arrays
    that a function computes from an integer argument).  A ``source`` that is traced but
    not an argument of the trace (it was itself computed outside the graph) is refused."""
    array = compute(source._data)
    note_index_source(array, source)  # for printing: idx0 = labels
    if _running() and _live(source):
        if id(source) not in _state.leaves:
            raise UntraceableError(
                f"the traced function computes an index from a tensor of shape {tuple(source.shape)} and dtype "
                f"{source.dtype} made {source._made_outside_graph or 'by recorded ops'} from its inputs"
                f"{user_line()}: only an argument's own values can be read again at each call. Pass the index "
                "tensor to the function as an argument")
        _state.derived.append((array, source, compute))
    return array


def note_index(parts: Iterable[Any], normalized: Iterable[Any]) -> None:
    """Remember which tensor each index array of an op came from, so that a traced
    function's index arguments are read at every call."""
    if not _running():
        return
    from ..ops import normalize_index

    for part, array in zip(parts, normalized):
        if not hasattr(part, "_made_outside_graph"):  # an array: maybe computed from an argument
            for known, source, compute in list(_state.derived):
                if known is part and array is not part:  # normalizing made a new array: recompute it too
                    _state.derived.append((array, source, lambda values, compute=compute: normalize_index(
                        (compute(values),))[0]))
            continue
        if not _live(part):
            continue
        if part._trace_node is not None and array.dtype != bool:
            raise UntraceableError(
                f"the traced function indexes with an array of shape {tuple(part.shape)} and dtype {part.dtype} "
                f"computed from a mask or a position (argmax, argmin) of its inputs{user_line()}: only an "
                "argument's own values can be read again at each call. Select with symgrad.where(mask, x, 0) "
                "(x.max() for x[x.argmax()]) instead, or pass the index tensor to the function as an argument")
        if array.dtype == bool:
            raise UntraceableError(
                f"the traced function indexes with a boolean mask of shape {tuple(part.shape)} from its inputs"
                f"{user_line()}: the shape of the result depends on the mask's values, which change from call to "
                "call. Index with integer positions instead (numpy.flatnonzero(mask)), or use "
                "symgrad.where(mask, x, 0)")
        _state.derived.append((array, part, lambda values: normalize_index((values,))[0]))


def follows(op: Any, inputs: Iterable[Any]) -> bool:
    """Whether the running trace records ``op`` applied to ``inputs`` although none of
    them requires grad: ``op`` has no derivative in any input (a mask op: a comparison,
    ``&``, ``|``, ``~``; ``argmax``, ``argmin``), is a ``cast``, or has an input the trace
    recorded that way (``mask.float() * 2``, ``x * x.argmax()``), and
    some input is part of the trace and none was made outside the graph.  The tape then
    records the op as the output's ``_trace_node`` (not its ``grad_fn``: a mask never
    requires grad), so the compiled function recomputes it from each call's values.

    >>> import symgrad
    >>> from symgrad.ops import OPS
    >>> x = symgrad.tensor([1.0], requires_grad=True)
    >>> follows(OPS["gt"], [x])  # no trace runs here: eager masks are never recorded
    False
    >>> with tracing([x]):
    ...     follows(OPS["gt"], [x]), follows(OPS["gt"], [x.detach()]), follows(OPS["sin"], [x])
    (True, False, False)
    """
    if not _running():
        return False
    live = [t for t in inputs if _live(t)]
    if not live or any(t._made_outside_graph is not None for t in live):
        return False
    without_derivative = op.differentiable is not None and not any(op.differentiable)  # masks, argmax
    return without_derivative or op.name == "cast" or any(t._trace_node is not None for t in live)


_FROM = " (from a tensor made by "


def mark(out: Any, how: str, *inputs: Any) -> Any:
    """Mark ``out`` as made by ``how`` outside the graph when an input is part of the
    running trace, naming also where a chain of such tensors began (``the unrecorded op
    sum (from a tensor made by sort())``); returns ``out``."""
    if out.grad_fn is None and _running():
        tensors = [t for t in inputs if hasattr(t, "_made_outside_graph")]
        if any(_live(t) for t in tensors):
            earlier = next((t._made_outside_graph for t in tensors if t._made_outside_graph), None)
            if earlier is not None:
                root = earlier.split(_FROM, 1)[1][:-1] if _FROM in earlier else earlier
                how = f"{how}{_FROM}{root})"
            out._made_outside_graph = how
        elif any(_holds_derived(t) for t in tensors):  # computed from labels, as if by numpy: frozen
            out._made_outside_graph = f"{how}{_FROM}derived_array() from an argument's values)"
    return out


def _holds_derived(tensor: Any) -> bool:
    """Whether ``tensor``'s values are an array :func:`derived_array` computed from an
    argument (recomputed at each call only where the array itself is used)."""
    return any(tensor._data is array for array, _, _ in _state.derived)


def check_use(tensors: Iterable[Any]) -> None:
    """Raise :class:`UntraceableError` if a running trace uses a marked tensor."""
    if not _running():
        return
    for t in tensors:
        how = getattr(t, "_made_outside_graph", None)
        if how is not None:
            raise UntraceableError(
                f"the traced function uses a tensor of shape {tuple(t.shape)} and dtype {t.dtype} made by {how} "
                f"from its inputs, outside the recorded graph{user_line()}: the compiled function would reuse its "
                "value from the first call at every later call. Compute it from the function's inputs at each "
                "step with eager backward() instead, or pass it to the function as an argument")
