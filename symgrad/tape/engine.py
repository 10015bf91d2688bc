"""Backward: the public entry points, the engine switch, and the tape engine itself.

``backward()`` and ``autograd.grad()`` validate their arguments here and hand the graph to
the selected engine through one switch (:func:`set_backward_engine`):

* ``"tape"`` -- this module: replays the recorded nodes in reverse topological order,
  calling each op's hand-written VJP (NumPy arrays, or tensors under ``create_graph``);
* ``"symbolic"`` -- the compiled closed forms of ``symgrad.symbolic`` (loaded on first
  use, so the tape never imports SymPy);
* ``"both"`` -- runs both and raises when they disagree.

The steps every engine shares live here too: :func:`graph_order` (nodes in reverse
topological order), :func:`deliver` (hooks, ``retain_grad``, ``.grad`` accumulation) and
:func:`release_graph` (freeing saved values unless ``retain_graph``).
"""
from __future__ import annotations

import importlib
import threading
from typing import Callable, Sequence

import numpy as np

from ..ops import NOT_IMPLEMENTED, UNDEFINED, numpy_ops, sum_to_shape
from . import dtypes
from .grad_mode import set_grad_enabled
from .node import AccumulateGrad, Node
from .dispatch import tensor_ops
from .tensor import Tensor, as_tensor

# ------------------------------------------------------------------ engine switch
_ENGINES: dict[str, Callable | str] = {
    "tape": "symgrad.tape.engine:tape_backward",
    "symbolic": "symgrad.symbolic.backward:symbolic_backward",
    "both": "symgrad.symbolic.backward:cross_checked_backward",
}
_selected = ["symbolic"]  # the process-wide choice
class _BlockChoice(threading.local):
    """A ``backward_engine`` block's choice, per thread (like grad mode); None outside blocks."""

    name: str | None = None


_block = _BlockChoice()


def _check_engine(name: str) -> None:
    if name not in _ENGINES:
        raise ValueError(f"unknown backward engine {name!r}; choose one of {backward_engine_names()}")


def set_backward_engine(name: str) -> None:
    """Choose what ``backward()`` and ``autograd.grad()`` run: "tape", "symbolic" or "both".

    The choice is process-wide (inside a ``backward_engine`` block it also replaces the
    block's choice for the rest of the block).

    >>> previous = get_backward_engine()
    >>> set_backward_engine("tape"); get_backward_engine()
    'tape'
    >>> set_backward_engine(previous)
    """
    _check_engine(name)
    _selected[0] = name
    if _block.name is not None:
        _block.name = name


def get_backward_engine() -> str:
    """The name of the engine ``backward()`` uses now (in this thread)."""
    return _block.name or _selected[0]


class backward_engine:
    """Context manager selecting an engine for a block: ``with backward_engine("both"):``.

    The block's choice holds in the thread that entered it, so blocks in concurrent
    threads cannot undo each other's choice (threads started inside the block use the
    process-wide choice of :func:`set_backward_engine`).
    """

    def __init__(self, name: str) -> None:
        _check_engine(name)
        self.name = name

    def __enter__(self) -> None:
        self.previous = _block.name
        _block.name = self.name

    def __exit__(self, *exc) -> None:
        _block.name = self.previous


def backward_engine_names() -> list[str]:
    """Every engine the switch can select, sorted, loaded or not.

    >>> backward_engine_names()
    ['both', 'symbolic', 'tape']
    """
    return sorted(_ENGINES)


def load_backward_engine(name: str) -> Callable:
    """The backward function of engine ``name``, imported on first use (an engine that
    cannot load raises its import's error; an unknown name is a ``ValueError``)."""
    entry = _ENGINES.get(name)
    if entry is None:
        _check_engine(name)
    if isinstance(entry, str):
        module, attr = entry.split(":")
        entry = _ENGINES[name] = getattr(importlib.import_module(module), attr)
    return entry


# ------------------------------------------------------------------ public entry points
def _root_gradients(roots: Sequence[Tensor], grad_roots, create_graph: bool) -> list:
    """Check roots and their upstream gradients; default 1 for single-element roots."""
    if grad_roots is None:
        grad_roots = [None] * len(roots)
    if len(grad_roots) != len(roots):
        raise RuntimeError(f"got {len(grad_roots)} gradients for {len(roots)} outputs")
    out = []
    for i, (root, g) in enumerate(zip(roots, grad_roots)):
        if not isinstance(root, Tensor):
            raise TypeError(f"output {i} is a {type(root).__name__}, not a Tensor")
        if not root.requires_grad:
            raise RuntimeError(
                f"element {i} of tensors does not require grad and does not have a grad_fn: "
                "nothing it depends on was created with requires_grad=True (or it was computed under no_grad)"
            )
        if g is None:
            if root.numel() != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; output {i} has shape "
                    f"{list(root.shape)}: pass gradient= of that shape to backward()"
                )
            ones = np.ones(root.shape, root.dtype)
            out.append(Tensor(ones) if create_graph else ones)
            continue
        g = as_tensor(g)
        if g.shape != root.shape:
            raise RuntimeError(
                f"Mismatch in shape: gradient {i} has shape {list(g.shape)} and output {i} has shape {list(root.shape)}"
            )
        if not dtypes.is_floating(g.dtype):
            raise TypeError(f"gradient {i} has dtype {dtypes.dtype_name(g.dtype)}; it must be floating point")
        if g.dtype != root.dtype:
            g = g.to(root.dtype)
        out.append(g if create_graph else g._data)
    return out


def _as_list(tensors) -> list:
    if tensors is None:
        return None
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def backward(tensors, grad_tensors=None, *, retain_graph: bool | None = None,
             create_graph: bool = False, inputs=None) -> None:
    """Accumulate the gradients of ``tensors`` into the ``.grad`` of the leaves (or of
    ``inputs`` only; a non-leaf among them calls ``retain_grad()``, as in PyTorch).  The
    graph is freed unless ``retain_graph=True``."""
    roots = _as_list(tensors)
    grads = _root_gradients(roots, _as_list(grad_tensors), create_graph)
    inputs = _as_list(inputs)
    if inputs is not None:
        _check_inputs(inputs)
        for t in inputs:
            t.retain_grad()  # a non-leaf input keeps its gradient from now on, as in PyTorch (a no-op on leaves)
    with _GradWrites():
        load_backward_engine(get_backward_engine())(
            roots, grads, inputs=inputs, retain_graph=create_graph if retain_graph is None else retain_graph,
            create_graph=create_graph, accumulate=True,
        )


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs``, returned, not accumulated.

    >>> import symgrad
    >>> x = symgrad.tensor(3.0, requires_grad=True)
    >>> symgrad.autograd.grad(x ** 2, x)
    (tensor(6.),)
    """
    roots = _as_list(outputs)
    grads = _root_gradients(roots, _as_list(grad_outputs), create_graph)
    inputs = _as_list(inputs)
    _check_inputs(inputs)
    results = load_backward_engine(get_backward_engine())(
        roots, grads, inputs=inputs, retain_graph=create_graph if retain_graph is None else retain_graph,
        create_graph=create_graph, accumulate=False,
    )
    out = []
    for i, (tensor, g) in enumerate(zip(inputs, results)):
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"input {i} (shape {list(tensor.shape)}) was not used to compute the outputs; "
                    "pass allow_unused=True if that is expected"
                )
            out.append(None)
        else:
            out.append(g if isinstance(g, Tensor) else Tensor(np.asarray(g, dtype=tensor.dtype)))
    return tuple(out)


def _check_inputs(inputs: list) -> None:
    if not inputs:
        raise RuntimeError("inputs must not be empty; pass the tensors to differentiate with respect to")
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"input {i} is a {type(t).__name__}, not a Tensor")
        if not t.requires_grad:
            raise RuntimeError(f"input {i} (shape {list(t.shape)}) does not require grad")


# ------------------------------------------------------------------ shared steps
def graph_order(root_edges, targets=None) -> list:
    """Nodes reachable from ``root_edges``, each after every node that feeds it a gradient
    (reverse topological order), iteratively so deep graphs cannot hit a recursion limit.

    With ``targets`` (a set of nodes), only nodes on a path to a target are kept.
    """
    postorder, seen = [], set()
    for root in root_edges:
        if root is None or root in seen:
            continue
        stack = [(root, iter(root.inputs if isinstance(root, Node) else ()))]  # (an AccumulateGrad has none)
        seen.add(root)
        while stack:
            node, inputs = stack[-1]
            for saved in inputs:
                child = saved.edge
                if child is not None and child not in seen:
                    seen.add(child)
                    stack.append((child, iter(child.inputs if isinstance(child, Node) else ())))
                    break
            else:
                stack.pop()
                postorder.append(node)
    order = postorder[::-1]
    if targets is None:
        return order
    useful = set()
    for node in postorder:  # children before parents
        if node in targets or any(e in useful for e in _edges(node)):
            useful.add(node)
    return [node for node in order if node in useful]


def _edges(node) -> list:
    return [saved.edge for saved in node.inputs] if isinstance(node, Node) else []


def input_targets(inputs) -> dict:
    """Map each requested input's gradient sink (AccumulateGrad or grad_fn) to the
    ``(output index, position)`` pairs of the inputs it produced (two outputs of one
    multi-output Function are one sink with two pairs).

    >>> import symgrad
    >>> x = symgrad.tensor(1.0, requires_grad=True)
    >>> input_targets([x, x * 2]).values()
    dict_values([[(0, 0)], [(0, 1)]])
    """
    targets: dict = {}
    for i, t in enumerate(inputs):
        targets.setdefault(t._edge(), []).append((t._output_nr, i))
    return targets


def deliver_outputs(node, grads: list, create_graph: bool, accumulate: bool, targets, results: list) -> None:
    """:func:`deliver` every output gradient of ``node`` that is known (in place in
    ``grads``), and put the ones ``autograd.grad`` asked for into ``results``.

    >>> import symgrad
    >>> y = symgrad.tensor([1.0], requires_grad=True) * 2
    >>> y.retain_grad()
    >>> grads, results = [np.array([5.0])], [None]
    >>> deliver_outputs(y.grad_fn, grads, False, True, input_targets([y]), results)
    >>> y.grad, results
    (tensor([5.]), [array([5.])])
    """
    for k, g in enumerate(grads):
        if g is not None:
            grads[k] = deliver(node, g, create_graph, accumulate, k)
    if targets is not None:
        for k, position in targets.get(node, ()):
            results[position] = grads[k]


def run_hooks(hooks: list, g, create_graph: bool):
    """Call tensor hooks in order; a returned value replaces the gradient."""
    for hook in list(hooks):
        wrapped = g if isinstance(g, Tensor) else Tensor(g)
        replaced = hook(wrapped)
        if replaced is not None:
            replaced = as_tensor(replaced)
            if replaced.shape != wrapped.shape:
                raise RuntimeError(
                    f"hook {getattr(hook, '__name__', hook)!r} returned a gradient of shape {list(replaced.shape)}, "
                    f"expected {list(wrapped.shape)}"
                )
            g = replaced if create_graph else replaced._data
    return g


def deliver(node, g, create_graph: bool, accumulate: bool, index: int = 0):
    """What happens when the total gradient ``g`` of output ``index`` of ``node`` is
    known: tensor hooks run, a retained non-leaf stores it, a leaf accumulates it.
    Returns the (hooked) gradient."""
    if isinstance(node, AccumulateGrad):
        if node.variable._leaf_hooks:
            g = run_hooks(node.variable._leaf_hooks, g, create_graph)
        if accumulate:
            accumulate_grad(node.variable, g, create_graph)
        return g
    if node.hooks[index]:
        g = run_hooks(node.hooks[index], g, create_graph)
    retained = node.retained[index]() if node.retained[index] is not None else None
    if retained is not None and accumulate:
        accumulate_grad(retained, g, create_graph)
    return g


class _PendingWrites(threading.local):
    """The ``.grad`` writes the running ``backward()`` call holds back, per thread (None
    outside such a call: writes are made at once)."""

    pending: list | None = None


_writes = _PendingWrites()
_GRAD_LOCK = threading.RLock()


class _GradWrites:
    """The ``.grad`` writes of one ``backward()`` call, made only when the whole call
    succeeds: a backward that fails half-way (a custom backward's bad return, a hook, a
    freed or modified graph) leaves every ``.grad`` and its version as they were."""

    def __enter__(self) -> None:
        self.outer = _writes.pending
        _writes.pending = []

    def __exit__(self, exc_type, *exc) -> None:
        pending, _writes.pending = _writes.pending, self.outer
        if exc_type is None:
            for tensor, g, create_graph in pending:
                _write_grad(tensor, g, create_graph)


def accumulate_grad(tensor: Tensor, g, create_graph: bool) -> None:
    """Add ``g`` into ``tensor.grad`` (in place unless ``create_graph``); inside
    ``backward()`` the write waits until the call has succeeded."""
    if isinstance(g, Tensor) and not create_graph:
        g = g._data
    if not isinstance(g, Tensor):
        data = tensor._data
        g = np.asarray(g, dtype=data.dtype)
        if g.shape != data.shape:
            raise RuntimeError(f"gradient of shape {list(g.shape)} does not match the tensor's shape {list(data.shape)}")
    pending = _writes.pending
    if pending is None:
        _write_grad(tensor, g, create_graph)
    else:
        pending.append((tensor, g, create_graph))


def _write_grad(tensor: Tensor, g, create_graph: bool) -> None:
    with _GRAD_LOCK:  # threads whose graphs share a leaf add into one .grad
        if tensor._grad is None:
            tensor._grad = g if isinstance(g, Tensor) else Tensor(g.copy())
        elif create_graph or tensor._grad.grad_fn is not None:
            tensor._grad = tensor._grad + g
        else:
            tensor._grad._data += g
            tensor._grad._version.value += 1


def release_graph(nodes) -> None:
    """Free the saved values of ``nodes`` (after a backward without ``retain_graph``)."""
    for node in nodes:
        if isinstance(node, Node):
            node.free()


def check_not_freed(node: Node) -> None:
    if node.freed:
        raise RuntimeError(
            "Trying to backward through the graph a second time (or directly access saved tensors "
            f"after they have already been freed): {node.name()} already released its saved values. "
            "Specify retain_graph=True in the first backward() or autograd.grad() call if you need "
            "to backward through the graph a second time."
        )


# ------------------------------------------------------------------ the tape engine
def tape_backward(roots, grad_roots, *, inputs, retain_graph: bool, create_graph: bool, accumulate: bool):
    """Reverse-mode over the recorded nodes with the op table's hand-written VJPs.

    Returns the gradients of ``inputs`` when ``accumulate`` is False.
    """
    targets = input_targets(inputs) if inputs is not None else None
    root_edges = [root._edge() for root in roots]
    order = graph_order(root_edges, None if targets is None else set(targets))
    pending: dict = {}
    for root, edge, g in zip(roots, root_edges, grad_roots):
        add_pending(pending, edge, root._output_nr, g)
    reachable = set(order)
    results = [None] * (len(inputs) if inputs is not None else 0)
    with set_grad_enabled(create_graph):
        for node in order:
            grads = pending.pop(node, None)
            if grads is None:
                continue
            if type(node) is AccumulateGrad or isinstance(node, AccumulateGrad):
                deliver_outputs(node, grads, create_graph, accumulate and (targets is None or node in targets),
                                targets, results)
                continue
            if targets is not None or node.hooks[0] or node.retained[0] is not None or node.n_outputs > 1:
                deliver_outputs(node, grads, create_graph, accumulate and (targets is None or node in targets),
                                targets, results)  # (an op node without hooks or retain_grad delivers nothing)
            if node.freed:
                check_not_freed(node)
            node.check_versions()
            for saved, g_in in zip(node.inputs, node_vjp(node, grads, create_graph)):
                if saved.edge in reachable and g_in is not None and g_in is not UNDEFINED:
                    add_pending(pending, saved.edge, saved.index, g_in)
    if not retain_graph:
        release_graph(order)
    return None if accumulate else results


def _sums_down_to(shape, target) -> bool:
    """True when ``target`` broadcasts to ``shape``, so a gradient of ``shape`` can be
    summed down to ``target`` (PyTorch accepts such gradients from custom backwards)."""
    try:
        return np.broadcast_shapes(shape, target) == tuple(shape)
    except ValueError:
        return False


def add_pending(pending: dict, node, index: int, g) -> None:
    """Add ``g`` to the gradient of output ``index`` of ``node`` waiting in ``pending``
    (node -> one slot per output, None until a gradient arrives).

    >>> pending = {}
    >>> add_pending(pending, "leaf", 0, 1.0); add_pending(pending, "leaf", 0, 2.0); pending
    {'leaf': [3.0]}
    """
    slots = pending.get(node)
    if slots is None:
        slots = pending[node] = [None] * (node.n_outputs if isinstance(node, Node) else 1)
    slots[index] = g if slots[index] is None else slots[index] + g


def node_vjp(node: Node, grads: list, create_graph: bool) -> list:
    """Gradients for each input of ``node`` from its output gradients (hand-written VJPs)."""
    if node.function is not None:
        return _function_vjp(node, grads, create_graph)
    op = node.op
    if op.vjp is None:
        raise NotImplementedError(f"{op.name} ({node.name()}): {NOT_IMPLEMENTED.meaning}")
    if create_graph:
        answer = Tensor(node.outputs[0])
        answer.grad_fn = node
        values = [saved.tensor for saved in node.inputs]
        g = grads[0] if isinstance(grads[0], Tensor) else Tensor(grads[0])
        return list(op.vjp(tensor_ops, g, answer, *values, **node.attrs))
    values = [saved.tensor._data for saved in node.inputs]
    g = grads[0]
    return list(op.vjp(numpy_ops, g if type(g) is np.ndarray else np.asarray(g), node.outputs[0], *values,
                       **node.attrs))


def _function_vjp(node: Node, grads: list, create_graph: bool) -> list:
    """Call a custom Function's backward and check what it returns."""
    ctx = node.ctx
    wrapped = []
    for i, g in enumerate(grads):
        if g is None:
            g = np.zeros(*node.output_spec(i))
        wrapped.append(g if isinstance(g, Tensor) else Tensor(g))
    returned = node.function.backward(ctx, *wrapped)
    if not isinstance(returned, tuple):
        returned = (returned,)
    expected = len(ctx.arg_is_tensor)
    if len(returned) > expected and all(g is None for g in returned[expected:]):
        returned = returned[:expected]  # trailing Nones beyond the inputs: accepted, as in PyTorch
    if len(returned) != expected:
        extra = next((i for i in range(expected, len(returned)) if returned[i] is not None), None)
        beyond = "" if extra is None else (
            f"; gradient {extra} is a {type(returned[extra]).__name__}, but forward took only {expected} "
            "argument(s): return one gradient per forward argument (None where there is none), "
            "and only None after them")
        raise RuntimeError(
            f"function {node.name()} returned an incorrect number of gradients "
            f"(expected {expected}, got {len(returned)}){beyond}"
        )
    out = []
    tensor_args = [g for g, is_tensor in zip(returned, ctx.arg_is_tensor) if is_tensor]
    for position, (saved, g) in enumerate(zip(node.inputs, tensor_args)):
        if g is None:
            out.append(None)
            continue
        g = as_tensor(g)
        expected = saved.tensor.shape
        if g.shape != expected:
            if not _sums_down_to(g.shape, expected):
                raise RuntimeError(
                    f"function {node.name()} returned an invalid gradient at index {position}: "
                    f"got shape {list(g.shape)} but expected shape compatible with {list(expected)}"
                )
            g = tensor_ops.sum_to(g, expected) if create_graph else Tensor(sum_to_shape(g._data, expected))
        out.append(g if create_graph else g._data)
    return out

