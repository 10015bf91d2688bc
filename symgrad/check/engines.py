"""The engines' side of a gradient check: which backward engines can run, and the
Jacobian blocks they compute.

An engine is whatever the backward switch (:func:`symgrad.set_backward_engine`) can
select: ``"tape"``, ``"symbolic"`` (loaded on first use) or ``"both"``.  A check runs the
function once per engine inside ``backward_engine(name)`` and asks
:func:`symgrad.autograd.grad` for one vector-Jacobian product per row: a one-hot
cotangent per output element, or one random cotangent in fast mode.  Nothing here knows
how an engine differentiates, so a new engine is checked as soon as the switch knows it.

>>> engine_status("tape")
(True, '')
>>> "tape" in available_engines()
True
"""
from __future__ import annotations

import numpy as np

from ..tape.engine import backward_engine, backward_engine_names, load_backward_engine
from ..tape.grad_mode import enable_grad
from ..tape.tensor import Tensor
from ..autograd import grad as autograd_grad

__all__ = ["engine_status", "available_engines", "engine_names", "engine_rows"]


def engine_names() -> list[str]:
    """Every engine the backward switch knows, available or not."""
    return backward_engine_names()


def engine_status(name: str) -> tuple[bool, str]:
    """``(True, "")`` when ``name`` can run; ``(False, why)`` when it cannot be loaded.

    An unknown name is a ``ValueError`` (a typo should not pass as "unavailable").
    """
    if name not in engine_names():
        raise ValueError(f"unknown backward engine {name!r}; choose from {engine_names()}")
    try:
        load_backward_engine(name)
    except Exception as err:  # noqa: BLE001  (any import failure means: cannot run)
        return False, f"{type(err).__name__}: {err}"
    return True, ""


def available_engines() -> list[str]:
    """The engines that load, in the switch's order (``"both"`` excluded: it is a cross-check
    of the other two, not an opinion of its own)."""
    return [name for name in engine_names() if name != "both" and engine_status(name)[0]]


def engine_rows(func, args: tuple, diff: list[int], engine: str, cotangents) -> list[list[np.ndarray]]:
    """Run ``func(*args)`` under ``engine`` and return vector-Jacobian products.

    ``cotangents(o, shape)`` yields the cotangents of output ``o``: ``None`` means every
    one-hot vector (the full Jacobian, row by row).  The result is indexed
    ``[output][input position in diff]`` and holds arrays of shape (rows, numel(input)):
    row ``r`` is ``c_r^T J``, flattened, in float64.  An output with no elements has no
    one-hot rows (its Jacobian is empty, so trivially right), but one product with its
    empty cotangent still runs, so a gradient of the wrong shape is caught there too.
    """
    with backward_engine(engine), enable_grad():
        outputs = [out for _, out in as_outputs(func(*args))]
        inputs = [args[i] for i in diff]
        blocks = []
        for out in outputs:
            vectors = cotangents(len(blocks), out.shape)
            if vectors is None:
                if out.numel() == 0:
                    _vjp(out, inputs, np.zeros(out.shape, out.dtype), engine, diff)
                vectors = _one_hots(out.shape, out.dtype)
            rows = [_vjp(out, inputs, vector, engine, diff) for vector in vectors]
            blocks.append([np.array([row[k] for row in rows], np.float64).reshape(len(rows), x.numel())
                           for k, x in enumerate(inputs)])
        return blocks


def _vjp(out: Tensor, inputs: list, vector, engine: str, diff: list[int]) -> list[np.ndarray]:
    """``vector^T J`` of ``out`` for each input, flattened float64 (zeros where the input is
    unused); a gradient whose shape is not its input's raises, naming both."""
    if not out.requires_grad:
        return [np.zeros(x.numel()) for x in inputs]
    grads = autograd_grad([out], inputs, grad_outputs=[Tensor(np.asarray(vector, out.dtype))],
                          retain_graph=True, allow_unused=True)
    rows = []
    for k, (g, x) in enumerate(zip(grads, inputs)):
        if g is not None and tuple(g.shape) != tuple(x.shape):
            raise RuntimeError(
                f"engine {engine!r} returned a gradient of shape {list(g.shape)} for input {diff[k]} "
                f"of shape {list(x.shape)}"
            )
        rows.append(np.zeros(x.numel()) if g is None else np.asarray(g._data, np.float64).ravel())
    return rows


def _one_hots(shape: tuple, dtype):
    size = int(np.prod(shape, dtype=np.int64))
    for r in range(size):
        vector = np.zeros(size, dtype)
        vector[r] = 1
        yield vector.reshape(shape)


def as_outputs(returned) -> list[tuple[int, Tensor]]:
    """The differentiable outputs of a checked function as ``(position, tensor)`` pairs:
    its Tensor, or the floating Tensors of the tuple/list it returns."""
    items = list(returned) if isinstance(returned, (tuple, list)) else [returned]
    outputs = []
    for position, item in enumerate(items):
        if not isinstance(item, Tensor):
            raise TypeError(
                f"the checked function returned a {type(item).__name__} at output {position}; it must return "
                "a symgrad Tensor or a tuple of Tensors (wrap NumPy code with symgrad.check_grad instead)"
            )
        if np.issubdtype(item.dtype, np.floating):
            outputs.append((position, item))
    if not outputs:
        raise TypeError("the checked function returned no floating-point Tensor, so there is no gradient to check")
    return outputs
