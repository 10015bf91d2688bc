"""Structure keys: what a recorded graph *is* (ops, attributes, shapes, dtypes, names,
constants and which tensor feeds which op), never what its arrays hold, as hashable
values.

:func:`freeze` turns an op attribute into a hashable, type-tagged value (``True``, ``1``
and ``1.0`` stay different; slices and index arrays by value).  :func:`graph_key` gives
a whole recorded graph, from the node order ``backward()`` computes anyway, one flat key
and the list of *sources* it reads (leaves and other tensors that were not recorded):
per node its op, frozen attributes, output shape and, per input, the position of the
node it comes from, the position and description (kind, name, shape, dtype) of a
source, or a constant's type-tagged value and dtype.  Equal keys mean equal graphs up
to which tensors are read, so two graphs that differ in a constant, a dtype, a shape,
an axis, a slice, a name or in their wiring (``a * b`` against ``a * a``) never share a
key.  The symbolic engine uses it to find the compiled backward of a graph it has seen
before without translating the graph again (``symgrad.symbolic.backward``).

This module imports neither SymPy nor the symbolic engine.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["freeze", "number_value", "graph_key"]


def freeze(value: Any) -> Any:
    """A hashable, type-tagged form of an attribute value (``True`` and ``1`` stay different).

    >>> freeze(True), freeze(1), freeze(1.0)
    (('bool', True), ('int', 1), ('float', '0x1.0000000000000p+0'))
    >>> freeze((slice(None, 2), Ellipsis))
    ('tuple', ('slice', ('None',), ('int', 2), ('None',)), ('Ellipsis',))
    """
    kind = type(value)  # the common exact types first: this runs for every attribute of every node
    if value is None:
        return ("None",)
    if kind is bool:
        return ("bool", value)
    if kind is int:
        return ("int", value)
    if kind is float:
        return ("float", value.hex())
    if kind is dict:
        return ("dict",) + tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if value is Ellipsis:
        return ("Ellipsis",)
    if isinstance(value, (bool, np.bool_)):
        return ("bool", bool(value))
    if isinstance(value, (int, np.integer)):
        return ("int", int(value))
    if isinstance(value, (float, np.floating)):
        return ("float", float(value).hex())
    if isinstance(value, complex):
        return ("complex", value.real.hex(), value.imag.hex())
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, slice):
        return ("slice", freeze(value.start), freeze(value.stop), freeze(value.step))
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return ("dtype", np.dtype(value).name)
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.name, value.shape, tuple(value.ravel().tolist()))
    if isinstance(value, (tuple, list)):
        return (type(value).__name__,) + tuple(freeze(v) for v in value)
    if isinstance(value, dict):
        return ("dict",) + tuple(sorted((k, freeze(v)) for k, v in value.items()))
    frozen = getattr(value, "frozen", None)  # a placeholder that knows its own key (symbols.Slot)
    if callable(frozen):
        return frozen()
    raise TypeError(
        f"op attribute {value!r} of type {type(value).__name__} cannot be part of a symbolic graph; "
        "use numbers, strings, tuples, slices, None, Ellipsis, dtypes or integer arrays"
    )


def number_value(value: Any) -> Any:
    """A Python number for a constant operand (NumPy scalars and 0-d arrays included).

    >>> number_value(np.float32(0.5)), number_value(np.asarray(3))
    (0.5, 3)
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (complex, np.complexfloating)):
        return complex(value)
    raise TypeError(f"the constant operand {value!r} of type {type(value).__name__} is not a number")


def graph_key(order: list, leaf_type: type) -> tuple[tuple, list] | None:
    """``(key, sources)`` of the graph whose nodes are ``order`` (as ``graph_order``
    gives them: each node before the nodes that feed it), ``sources`` being the
    ``(kind, tensor)`` pairs it reads in the order met (``kind`` is ``"leaf"`` for a leaf
    that requires grad, ``"array"`` for any other tensor that was not recorded).  None
    for graphs the key does not describe: custom ``Function`` nodes, multi-output
    nodes, index attributes holding integer arrays (the symbolic engine makes those
    inputs) and attributes that cannot be frozen.  ``leaf_type`` is ``AccumulateGrad``.

    >>> import symgrad
    >>> from symgrad.tape.engine import graph_order
    >>> from symgrad.tape.node import AccumulateGrad
    >>> a = symgrad.tensor([1.0], requires_grad=True)
    >>> b = symgrad.tensor([1.0], requires_grad=True)
    >>> def key(t):
    ...     return graph_key(graph_order([t.grad_fn]), AccumulateGrad)[0]
    >>> key(a * 2 + b) == key(b * 2 + a), key(a * 2 + b) == key(a * 2 + a), key(a * 2 + b) == key(a * 3 + b)
    (True, False, False)
    """
    positions = {node: i for i, node in enumerate(order)}
    sources: list = []
    known: dict = {}
    entries = []
    for node in order:
        if isinstance(node, leaf_type):
            entries.append(None)
            continue
        if node.op is None or node.n_outputs != 1:
            return None
        refs = []
        for saved in node.inputs:
            edge, tensor = saved.edge, saved.tensor
            if edge is None:
                constant = tensor._constant
                if constant is not None:
                    refs.append(("c", freeze(number_value(constant)), tensor.dtype.str))
                    continue
                kind = "array"
            elif isinstance(edge, leaf_type):
                kind, tensor = "leaf", edge.variable
            else:
                refs.append(positions[edge])
                continue
            identity = (kind, id(tensor))
            position = known.get(identity)
            if position is None:
                position = known[identity] = len(sources)
                sources.append((kind, tensor))
            refs.append((position, kind, tensor.name, tensor.shape, tensor.dtype.str))
        attrs = node.attrs
        if attrs:
            index = attrs.get("index")
            if isinstance(index, tuple) and any(isinstance(p, np.ndarray) and p.dtype.kind in "iub" for p in index):
                return None
            try:
                frozen = freeze(attrs)
            except TypeError:
                return None  # the symbolic engine's translation reports the attribute
        else:
            frozen = ()
        entries.append((node.op.name, frozen, tuple(refs), node.outputs[0].shape))
    return tuple(entries), sources
