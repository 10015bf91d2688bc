"""Anomaly mode: a NaN or inf produced in backward raises, naming the forward op and the
line of user code that created it.

While :class:`detect_anomaly` is active, every graph node records a short creation stack
(the innermost few frames outside symgrad), and every node's VJP output is checked for
non-finite values.  Outside it nothing is recorded, so normal runs pay nothing.

Two hooks run: ``record(node)`` when a node is created and ``check(node, grads)`` after
a node's VJP.  The tape has no hook list, so for the duration of the block this module
wraps ``Node.__init__`` and ``symgrad.tape.engine.node_vjp`` and restores them on exit.
By default the block also selects the tape engine, whose per-node VJPs are what is checked.

>>> import numpy as np, symgrad
>>> x = symgrad.tensor([0.0, 1.0], requires_grad=True)
>>> with detect_anomaly(), np.errstate(divide="ignore"):
...     y = x.sqrt().sum()
...     y.backward()
Traceback (most recent call last):
...
symgrad.check.anomaly.AnomalyError: backward of sqrt (SqrtBackward0) produced inf in the gradient of its input 0 ...
"""
from __future__ import annotations

import os
import sys
import threading
import traceback

import numpy as np

from ..tape import engine as _engine
from ..tape import node as _node
from ..tape.engine import backward_engine
from ..tape.grad_mode import decorate
from ..tape.tensor import Tensor

__all__ = ["detect_anomaly", "is_anomaly_enabled", "AnomalyError"]

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STACK_FRAMES = 4
_lock = threading.Lock()
_state = {"depth": 0, "undo": None}


class AnomalyError(RuntimeError):
    """A backward pass produced NaN or inf; the message names the op and where it was created.

    ``node`` is the graph node whose VJP produced it, ``input`` the position of the forward
    input whose gradient is non-finite.
    """

    def __init__(self, message: str, node=None, input: int | None = None) -> None:  # noqa: A002
        super().__init__(message)
        self.node = node
        self.input = input


def is_anomaly_enabled() -> bool:
    """True inside a :class:`detect_anomaly` block.

    >>> is_anomaly_enabled()
    False
    """
    return _state["depth"] > 0


class detect_anomaly:
    """Context manager (and decorator) turning NaN/inf in backward into an :class:`AnomalyError`.

    ``engine`` is the backward engine selected inside the block (default ``"tape"``, whose
    per-node VJPs are checked); ``None`` leaves the switch alone.  ``check_nan=False``
    records creation stacks only.
    """

    def __init__(self, check_nan: bool = True, engine: str | None = "tape") -> None:
        self.check_nan = check_nan
        self.engine = engine

    def __enter__(self) -> "detect_anomaly":
        self._engine_block = backward_engine(self.engine) if self.engine is not None else None
        if self._engine_block is not None:
            self._engine_block.__enter__()
        with _lock:
            self._previous_check = _Hooks.check_nan
            _Hooks.check_nan = self.check_nan
            _state["depth"] += 1
            if _state["depth"] == 1:
                _state["undo"] = _install()
        return self

    def __exit__(self, *exc) -> None:
        with _lock:
            _state["depth"] -= 1
            _Hooks.check_nan = self._previous_check
            if _state["depth"] == 0 and _state["undo"] is not None:
                _state["undo"]()
                _state["undo"] = None
        if self._engine_block is not None:
            self._engine_block.__exit__(*exc)

    def __call__(self, func):
        return decorate(func, lambda: detect_anomaly(self.check_nan, self.engine))


# --------------------------------------------------------------------------- the hooks
class _Hooks:
    """What the tape calls in anomaly mode (one shared instance)."""

    check_nan = True

    @staticmethod
    def record(node) -> None:
        node.creation_stack = _user_stack()

    @staticmethod
    def check(node, grads) -> None:
        if not _Hooks.check_nan:
            return
        inputs = getattr(node, "inputs", ())
        for position, g in enumerate(grads):
            if g is None or not hasattr(g, "shape"):
                continue
            if position < len(inputs) and inputs[position].edge is None:
                continue  # a constant's gradient is thrown away, whatever it is
            values = np.asarray(g._data if isinstance(g, Tensor) else g)
            if values.dtype.kind != "f" or np.isfinite(values).all():
                continue
            raise AnomalyError(_message(node, position, values), node=node, input=position)


def _install():
    """Wrap ``Node.__init__`` and ``node_vjp`` with the hooks; return the function that
    restores them."""
    original_init = _node.Node.__init__
    original_vjp = _engine.node_vjp

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        _Hooks.record(self)

    def node_vjp(node, grads, create_graph):
        out = original_vjp(node, grads, create_graph)
        _Hooks.check(node, out)
        return out

    _node.Node.__init__ = init
    _engine.node_vjp = node_vjp

    def undo():
        _node.Node.__init__ = original_init
        _engine.node_vjp = original_vjp
    return undo


def _user_stack() -> traceback.StackSummary:
    """The innermost frames outside the symgrad package (not formatted until needed)."""
    frames = []
    for frame, lineno in traceback.walk_stack(sys._getframe(2)):
        if not os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
            frames.append((frame, lineno))
            if len(frames) == _STACK_FRAMES:
                break
    return traceback.StackSummary.extract(reversed(frames), lookup_lines=False, capture_locals=False)


def _message(node, position: int, values: np.ndarray) -> str:
    kinds = "nan" if np.isnan(values).any() else "inf"
    if kinds == "nan" and np.isinf(values).any():
        kinds = "nan and inf"
    bad = ~np.isfinite(values)
    first = np.unravel_index(int(np.argmax(bad)), values.shape) if values.shape else ()
    where = f", first at {list(int(i) for i in first)}" if values.shape else ""
    op = node.op.name if getattr(node, "op", None) is not None else getattr(node.function, "__name__", "?")
    lines = [f"backward of {op} ({node.name()}) produced {kinds} in the gradient of its input {position} "
             f"(shape {list(values.shape)}; {int(bad.sum())} of {values.size} element(s){where})."]
    for i, saved in enumerate(getattr(node, "inputs", ())):
        data = np.asarray(saved.tensor._data)
        if data.size and data.dtype.kind in "fiub":
            lines.append(f"  forward input {i}: shape {list(data.shape)}, values in [{data.min():.6g}, {data.max():.6g}]")
    stack = getattr(node, "creation_stack", None)
    if stack:
        lines.append(f"The {op} op was created at (most recent call last):")
        lines.append("".join(stack.format()).rstrip())
    else:
        lines.append(f"The {op} op was created before anomaly mode was turned on, so its creation point was not "
                     "recorded; run the forward pass inside detect_anomaly() too.")
    return "\n".join(lines)
