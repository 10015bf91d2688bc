"""The parts of a structure key -- what a recorded graph *is* (ops, attributes, shapes,
dtypes, names, constants), never what its arrays hold -- as hashable values.

:func:`freeze` turns an op attribute or a constant into a hashable, type-tagged value
(``True``, ``1`` and ``1.0`` stay different; slices and index arrays by value);
:func:`number_value` reads a constant operand as a Python number.  The symbolic engine's
walk of a recorded graph (``Segment`` in ``symgrad.symbolic.derive.graph``) builds the
one structure key from them, under which backward finds the compiled function of a graph
it has seen before without translating the graph to SymPy again.

This module imports neither SymPy nor the symbolic engine.
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["freeze", "number_value"]


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
