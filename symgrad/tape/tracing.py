"""Tracing guard: a traced function must not freeze values computed from its arguments.

The transforms (``symgrad.grad(f)`` and friends) call ``f`` once per input shapes on leaf
tensors and compile the recorded graph; at every later call the compiled code reads the
new arguments. A tensor that ``f`` computes from its arguments *without* recording it --
a comparison (``a > 0``), ``argmax``, ``detach()``, integer arithmetic, anything under
``no_grad`` -- would enter the compiled code as a constant holding its value from the
first call, and every later call would silently reuse it. This module notices that:

* while a trace runs (:func:`tracing`), every tensor made outside the graph from a tensor
  of the trace is marked with how it was made (:func:`mark`);
* a recorded op that uses a marked tensor, or a traced function that returns one, raises
  :class:`UntraceableError` naming it (:func:`check_use`).

Outside a trace the cost is one test of a module-level counter per op.

>>> import symgrad
>>> t = symgrad.grad(lambda a: symgrad.where(a > 0, a, -a).sum())
>>> t([1.0, -2.0])
Traceback (most recent call last):
    ...
symgrad.tape.tracing.UntraceableError: the traced function uses a tensor of shape (2,) and dtype bool made by a comparison (>) from its inputs, outside the recorded graph: the compiled function would reuse its value from the first call at every later call. Compute it from the function's inputs at each step with eager backward() instead, or pass it to the function as an argument
"""
from __future__ import annotations

import threading
from typing import Any, Iterable

ACTIVE_TRACES = 0
"""How many traces run now, in any thread: a cheap test before the per-thread one."""

_state = threading.local()
_lock = threading.Lock()


class UntraceableError(RuntimeError):
    """A traced function depends on a value the trace cannot follow (see the module)."""


class tracing:
    """Context manager: this thread runs a trace; ``leaves`` are its inputs."""

    def __init__(self, leaves: Iterable[Any]) -> None:
        self.leaves = list(leaves)

    def __enter__(self) -> "tracing":
        global ACTIVE_TRACES
        self.previous = (getattr(_state, "leaves", None), getattr(_state, "indices", None))
        _state.leaves = {id(t) for t in self.leaves}
        _state.indices = self.indices = []
        with _lock:
            ACTIVE_TRACES += 1
        return self

    def __exit__(self, *exc) -> None:
        global ACTIVE_TRACES
        _state.leaves, _state.indices = self.previous
        with _lock:
            ACTIVE_TRACES -= 1

    def index_arrays(self, leaf: Any) -> list:
        """The index arrays recorded ops took from ``leaf`` (see :func:`note_index`)."""
        return [array for array, tensor in self.indices if tensor is leaf]


def note_index(parts: Iterable[Any], normalized: Iterable[Any]) -> None:
    """Remember which tensor each index array of an op came from, so that a traced
    function's index arguments are read at every call."""
    if not _running():
        return
    for part, array in zip(parts, normalized):
        if not hasattr(part, "_made_outside_graph"):
            continue
        if array.dtype == bool and _live(part):
            raise UntraceableError(
                f"the traced function indexes with a boolean mask of shape {tuple(part.shape)} from its inputs: the "
                "shape of the result depends on the mask's values, which change from call to call. Index with "
                "integer positions instead (numpy.flatnonzero(mask)), or use symgrad.where(mask, x, 0)")
        _state.indices.append((array, part))


def _running() -> bool:
    """A trace runs in this thread (the counter first: it is what the hot path reads)."""
    return bool(ACTIVE_TRACES) and getattr(_state, "leaves", None) is not None


def _live(tensor: Any) -> bool:
    """Part of the trace: an input, in the recorded graph, or made from the trace."""
    return (tensor.grad_fn is not None or tensor._requires_grad or tensor._made_outside_graph is not None
            or id(tensor) in _state.leaves)


def mark(out: Any, how: str, *inputs: Any) -> Any:
    """Mark ``out`` as made by ``how`` outside the graph when an input is part of the
    running trace; returns ``out``."""
    if out.grad_fn is None and _running():
        if any(_live(t) for t in inputs if hasattr(t, "_made_outside_graph")):
            out._made_outside_graph = how
    return out


def check_use(tensors: Iterable[Any]) -> None:
    """Raise :class:`UntraceableError` if a running trace uses a marked tensor."""
    if not _running():
        return
    for t in tensors:
        how = getattr(t, "_made_outside_graph", None)
        if how is not None:
            raise UntraceableError(
                f"the traced function uses a tensor of shape {tuple(t.shape)} and dtype {t.dtype} made by {how} "
                "from its inputs, outside the recorded graph: the compiled function would reuse its value from "
                "the first call at every later call. Compute it from the function's inputs at each step with "
                "eager backward() instead, or pass it to the function as an argument")
