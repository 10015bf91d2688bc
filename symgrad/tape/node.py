"""Graph nodes: what ``grad_fn`` is, what it saved, and where gradients flow next.

A :class:`Node` records one op application: the op (or a custom ``Function``), its
attributes, one :class:`SavedInput` per tensor input (the value at record time, the
version it had, and the *edge* its gradient flows to), and the output array.  A leaf
that requires grad gets one :class:`AccumulateGrad` node, shared by every op that uses it,
as in PyTorch.  Edges are captured when the op runs, so a later in-place change of a
tensor's ``grad_fn`` never rewires an existing graph.
"""
from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from .dtypes import dtype_name


class VersionCounter:
    """Counts in-place changes of one buffer; shared by a tensor and its ``detach()``es.

    A fresh counter is at 0: the class attribute, until the first change sets its own
    (every tensor makes one, so making it runs no ``__init__``).

    >>> counter = VersionCounter(); counter.value += 1; counter.value, VersionCounter().value
    (1, 0)
    """

    value = 0


class SavedInput:
    """One tensor input of a node: value, version at record time, and gradient edge.

    ``index`` is which output of the edge's node the tensor was (PyTorch's
    ``output_nr``): 0 but for the outputs of a multi-output custom ``Function``.
    """

    __slots__ = ("tensor", "version", "edge", "index")

    def __init__(self, tensor, edge) -> None:
        self.tensor = tensor
        self.version = tensor._version.value
        self.edge = edge
        index = tensor._output_nr
        self.index = index if index == 0 or isinstance(edge, Node) else 0


class ReleasedValue:
    """What a freed node keeps of an intermediate input: its shape and dtype, no data."""

    __slots__ = ("shape", "dtype", "name", "_version", "_output_nr")
    _data = None
    _constant = None
    requires_grad = True

    def __init__(self, tensor) -> None:
        data = tensor._data
        self.shape = data.shape
        self.dtype = data.dtype
        self.name = tensor.name
        self._version = tensor._version
        self._output_nr = tensor._output_nr

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return int(np.prod(self.shape))


class RemovableHandle:
    """Returned by ``register_hook``; ``remove()`` takes the hook away."""

    def __init__(self, hooks: list, hook) -> None:
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


class AccumulateGrad:
    """The gradient sink of a leaf tensor that requires grad."""

    def __init__(self, variable) -> None:
        self.variable = variable

    @property
    def next_functions(self) -> tuple:
        return ()

    def name(self) -> str:
        return "torch::autograd::AccumulateGrad"

    def __repr__(self) -> str:
        return f"<AccumulateGrad object at {id(self):#x}>"


class Node:
    """A recorded op application; it is the ``grad_fn`` of the tensor the op produced.

    ``op`` is the op-table entry, or None for a custom ``Function`` (then ``function`` and
    ``ctx`` are set).  Per output ``k``: ``hooks[k]`` are the tensor hooks registered on
    it, ``retained[k]`` a weak reference to it once it called ``retain_grad()`` (else
    None).
    """

    # The state of a fresh node of one op, as class attributes: a node sets only what
    # differs (every recorded op makes one node, so this is on the hot path).
    function = None
    ctx = None
    n_outputs = 1
    freed = False
    _name: str | None = None  # worked out when first asked for (see name())

    def __init__(self, op, attrs: dict, inputs: list[SavedInput], *, function=None, ctx=None, n_outputs: int = 1) -> None:
        self.op = op
        self.attrs = attrs
        self.inputs = tuple(inputs)
        if function is not None:
            self.function = function
        if ctx is not None:
            self.ctx = ctx
        if n_outputs != 1:
            self.n_outputs = n_outputs
        if n_outputs == 1:  # (list displays: cheaper than repeating a list, on every recorded op)
            self.outputs: list[np.ndarray | None] = [None]
            self.output_versions: list[tuple[Any, int] | None] = [None]
            self.hooks: list[list] = [[]]
            self.retained: list[weakref.ref | None] = [None]
        else:
            self.outputs = [None] * n_outputs
            self.output_versions = [None] * n_outputs
            self.hooks = [[] for _ in range(n_outputs)]
            self.retained = [None] * n_outputs

    def name(self) -> str:
        """PyTorch's name for this node, e.g. ``AddBackward0`` (from the op and the input
        shapes it was recorded with, which a freed node still knows)."""
        if self._name is None:
            if self.function is not None:
                self._name = f"{self.function.__name__}Backward"
            else:
                self._name = self.op.node_name(*(saved.tensor.shape for saved in self.inputs), **self.attrs)
        return self._name

    def rename(self, name: str) -> None:
        """Show this node under another PyTorch name (``t()`` is ``TBackward0`` though it
        records a transpose; a composed loss shows the loss's name).  Display only: no
        engine reads the name."""
        self._name = name

    @property
    def next_functions(self) -> tuple:
        """PyTorch-style ``((node_or_None, output_nr), ...)``, one pair per tensor input."""
        return tuple((saved.edge, saved.index) for saved in self.inputs)

    def has_hooks(self) -> bool:
        """True when an output has tensor hooks or retains its gradient.

        >>> import symgrad
        >>> y = symgrad.tensor([1.0], requires_grad=True) * 2
        >>> y.grad_fn.has_hooks(), y.register_hook(print) is not None, y.grad_fn.has_hooks()
        (False, True, True)
        """
        for hooks, ref in zip(self.hooks, self.retained):
            if hooks or (ref is not None and ref() is not None):
                return True
        return False

    def output_spec(self, index: int) -> tuple[tuple, np.dtype]:
        """Shape and dtype of output ``index`` (a custom Function's as its ``ctx`` recorded
        them, so they are known after the node was freed).

        >>> import symgrad
        >>> (symgrad.tensor([1.0, 2.0], requires_grad=True) * 2).grad_fn.output_spec(0)
        ((2,), dtype('float64'))
        """
        if self.function is not None:
            return tuple(self.ctx.output_shapes[index]), np.dtype(self.ctx.output_dtypes[index])
        out = self.outputs[index]
        return out.shape, out.dtype

    def set_output(self, index: int, tensor) -> None:
        """Remember output ``index`` (its buffer and version) for VJPs that read it."""
        self.outputs[index] = tensor._data
        self.output_versions[index] = (tensor._version, tensor._version.value)

    def check_versions(self) -> None:
        """Raise if a tensor this node's VJP reads for a gradient that an input needs
        (``Op.reads``) was modified in place after recording."""
        op = self.op
        if op is None or not op.saves:
            return
        for saved in self.inputs:  # the common case, nothing modified, in one cheap pass
            if saved.tensor._version.value != saved.version:
                break
        else:
            for versions in self.output_versions:
                if versions is not None and versions[0].value != versions[1]:
                    break
            else:
                return
        needs_grad = [saved.edge is not None for saved in self.inputs]
        for position, saved in enumerate(self.inputs):
            if op.reads(position, needs_grad):
                _check_version(self, saved.tensor._version.value, saved.version, saved.tensor._data)
        if op.reads("output", needs_grad):
            for array, versions in zip(self.outputs, self.output_versions):
                counter, expected = versions
                _check_version(self, counter.value, expected, array)

    def free(self) -> None:
        """Drop saved values after a backward without ``retain_graph``; edges stay.

        Of an intermediate input (one produced by a recorded op) only what the graph's
        structure needs stays: shape, dtype and the edge.  Leaves, constants and data
        tensors stay: they are the user's, and printing the graph reads them."""
        self.freed = True
        self.outputs = [None] * self.n_outputs
        for saved in self.inputs:
            if isinstance(saved.edge, Node) and not isinstance(saved.tensor, ReleasedValue):
                saved.tensor = ReleasedValue(saved.tensor)
        if self.ctx is not None:
            self.ctx.free()

    def __repr__(self) -> str:
        return f"<{self.name()} object at {id(self):#x}>"


class Origin(Node):
    """How a tensor that no op recorded was computed from named tensors: ``1 - y`` for
    ``y`` named ``"y"`` that does not require grad.  Printing reads it to show such a
    tensor as what it is (``symgrad.symbolic.derive.graph``); no engine and no backward
    pass ever sees it.  It is a :class:`Node` so the graph walk reads it as one, but keeps
    only what that walk reads: the op, its attributes and its operands.

    ``size`` counts the origins it was built from (itself included): a chain longer than
    :data:`MAX_ORIGIN_SIZE` is not recorded, so an origin keeps a bounded number of arrays
    alive (``x = x * 0.9`` in a loop keeps no history).

    >>> import symgrad
    >>> y = symgrad.tensor([1.0, 0.0], name="y")
    >>> t = 1 - y
    >>> t._origin.op.name, t._origin.holds(t), symgrad.tensor([1.0])._origin
    ('sub', True, None)
    """

    function = None
    n_outputs = 1

    def __init__(self, op, attrs: dict, operands: list) -> None:  # noqa: D107  (no Node state: never a grad_fn)
        self.op = op
        self.attrs = attrs
        self.operands = operands
        self.versions = [t._version.value for t in operands]
        size = 1
        for t in operands:
            if t._origin is not None:
                size += t._origin.size
        self.size = size

    @property
    def inputs(self) -> tuple:  # type: ignore[override]  (made when a graph walk asks: creation stays cheap)
        """The operands as the graph walk reads them: each edge is the operand's origin, or
        its gradient edge (a tensor that requires grad: ``x > 0`` of a parameter ``x``)."""
        return tuple(SavedInput(t, t._origin if t._origin is not None else t._edge()) for t in self.operands)

    def holds(self, tensor) -> bool:
        """Whether ``tensor`` (the tensor this origin made) still holds what the origin
        computes: neither it nor anything it was computed from changed in place since."""
        if tensor._version.value != 0:  # a fresh tensor's counter starts at 0; in-place changes bump it
            return False
        for operand, version in zip(self.operands, self.versions):
            if operand._version.value != version:
                return False
            if operand._origin is not None and not operand._origin.holds(operand):
                return False
        return True


MAX_ORIGIN_SIZE = 16
"""The most origins one tensor's :class:`Origin` is built from."""


_INDEX_SOURCES: dict[int, tuple] = {}  # id(array) -> (weak reference to it, source name)


def note_index_source(array: Any, source: Any) -> None:
    """Remember that the index array ``array`` holds the values of the named tensor
    ``source`` (``x[labels]``, the labels ``cross_entropy`` picks with), for printing to
    define it as ``idx0 = labels`` (see :func:`index_source`); ``source`` may also be an
    array noted so (a copy of it made by normalizing an index keeps the note).  Like
    :class:`Origin`, a note no engine reads; it lives as long as ``array`` does, and
    nothing is noted for an unnamed tensor or an array that differs from the source's values.

    >>> import numpy as np, symgrad
    >>> labels = symgrad.tensor([2, 0], name="labels")
    >>> picked = labels.numpy().astype(np.intp)
    >>> note_index_source(picked, labels); index_source(picked), index_source(np.array([2, 0]))
    ('labels', None)
    """
    if isinstance(source, np.ndarray):
        name, values = index_source(source), source
    else:
        name, values = getattr(source, "name", None), getattr(source, "_data", None)
    if not (name and isinstance(array, np.ndarray) and np.array_equal(array, values)):
        return
    key = id(array)
    _INDEX_SOURCES[key] = (weakref.ref(array, lambda _, key=key: _INDEX_SOURCES.pop(key, None)), name)


def index_source(array: Any) -> str | None:
    """The name of the tensor whose values the index array ``array`` holds, if noted."""
    noted = _INDEX_SOURCES.get(id(array))
    return noted[1] if noted is not None and noted[0]() is array else None


def _check_version(node: Node, actual: int, expected: int, array) -> None:
    if actual != expected:
        raise RuntimeError(
            "one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: [{dtype_name(array.dtype)} {list(np.shape(array))}], which is "
            f"output or input of {node.name()}, is at version {actual}; expected version "
            f"{expected} instead. Compute the in-place change on a clone() or after backward()."
        )
