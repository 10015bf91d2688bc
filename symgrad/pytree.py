"""Pytrees: nested tuples, lists, dicts and namedtuples of leaves, as JAX and HIPS
autograd let a transform take and return them.

:func:`flatten` turns a tree into its leaves, in a fixed order, and a :class:`TreeDef`
(hashable, so it can be part of a trace key) that rebuilds a tree of the same structure
from new leaves.  The order is JAX's: tuple, list and namedtuple items in order, a dict's
items by sorted key (an ``OrderedDict`` keeps its own order).  Anything else -- arrays,
tensors, numbers, ``None``, and lists of numbers only (:func:`is_node`) -- is a leaf.

>>> leaves, tree = flatten({"b": (np.ones(2), None), "a": 3.0})
>>> leaves
[3.0, array([1., 1.]), None]
>>> tree.unflatten([30.0, "w", "v"])
{'a': 30.0, 'b': ('w', 'v')}
>>> leaf_names(tree, "params")
['params_a', 'params_b_0', 'params_b_1']
>>> leaf_paths(tree)
["['a']", "['b'][0]", "['b'][1]"]
"""
from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["TreeDef", "flatten", "is_node", "leaf_names", "leaf_paths", "parameter_names"]


def is_node(value: Any) -> bool:
    """Whether ``value`` is a container a pytree looks into: a dict, a namedtuple, or a
    tuple or list holding something other than numbers.  Nested lists and tuples of
    numbers only are leaves: NumPy reads them as one array (``[[1., 2.], [3., 4.]]`` is a
    matrix), and so does symgrad, where JAX would see four leaves.

    >>> is_node([np.ones(2), 3.0]), is_node([[1.0, 2.0], [3.0, 4.0]]), is_node({})
    (True, False, True)
    """
    if isinstance(value, dict):
        return True
    if not isinstance(value, (tuple, list)):
        return False
    return hasattr(type(value), "_fields") or not _numbers_only(value)


def _numbers_only(value: Any) -> bool:
    if isinstance(value, (tuple, list)) and not hasattr(type(value), "_fields"):
        return all(_numbers_only(v) for v in value)
    return isinstance(value, (int, float, complex, np.generic))


class TreeDef:
    """The structure of a pytree: what kind of node, its keys (dict keys, namedtuple
    fields) and its children's structures; a leaf has neither."""

    __slots__ = ("kind", "keys", "children", "n_leaves", "_hash")

    def __init__(self, kind: Any, keys: tuple, children: tuple) -> None:
        self.kind = kind  # None for a leaf, else the container's type
        self.keys = keys
        self.children = children
        self.n_leaves = 1 if kind is None else sum(c.n_leaves for c in children)
        self._hash = hash((kind, keys, children))

    @property
    def is_leaf(self) -> bool:
        return self.kind is None

    def unflatten(self, leaves: Sequence[Any]) -> Any:
        """A tree of this structure with ``leaves`` in :func:`flatten`'s order."""
        if len(leaves) != self.n_leaves:
            raise ValueError(f"this tree structure has {self.n_leaves} leaves, got {len(leaves)} values")
        return self._build(iter(leaves))

    def _build(self, leaves) -> Any:
        if self.kind is None:
            return next(leaves)
        items = [child._build(leaves) for child in self.children]
        if issubclass(self.kind, dict):
            return self.kind(zip(self.keys, items))
        if self.kind is tuple or self.kind is list:
            return self.kind(items)
        return self.kind(*items)  # a namedtuple

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, TreeDef) and self._hash == other._hash and self.kind is other.kind
                and self.keys == other.keys and self.children == other.children)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        if self.kind is None:
            return "*"
        inner = ", ".join(f"{k!r}: {c!r}" if self.keys else repr(c)
                          for k, c in zip(self.keys or [None] * len(self.children), self.children))
        return f"{self.kind.__name__}({inner})"


LEAF = TreeDef(None, (), ())


def flatten(tree: Any) -> tuple[list, TreeDef]:
    """``(leaves, structure)`` of ``tree``."""
    leaves: list = []
    return leaves, _flatten(tree, leaves)


def _flatten(node: Any, leaves: list) -> TreeDef:
    if not is_node(node):
        leaves.append(node)
        return LEAF
    if isinstance(node, dict):
        keys = tuple(node) if isinstance(node, OrderedDict) else tuple(_sorted_keys(node))
        return TreeDef(type(node), keys, tuple(_flatten(node[k], leaves) for k in keys))
    fields = getattr(type(node), "_fields", None)
    keys = tuple(fields) if isinstance(node, tuple) and fields is not None else ()
    return TreeDef(type(node), keys, tuple(_flatten(v, leaves) for v in node))


def _sorted_keys(mapping: dict) -> list:
    try:
        return sorted(mapping)
    except TypeError:  # keys of mixed types: by their repr, still a fixed order
        return sorted(mapping, key=repr)


def leaf_names(tree: TreeDef, prefix: str) -> list[str]:
    """A name for each leaf: ``prefix`` followed by the keys or positions leading to it."""
    if tree.kind is None:
        return [prefix]
    keys = tree.keys or tuple(range(len(tree.children)))
    return [name for key, child in zip(keys, tree.children) for name in leaf_names(child, f"{prefix}_{key}")]


def leaf_paths(tree: TreeDef) -> list[str]:
    """Where each leaf sits, written for a message as JAX's ``keystr`` writes it: ``['a']``
    for a dict key, ``[0]`` for a position, ``.weight`` for a namedtuple field; ``""`` for
    a tree that is one leaf."""
    if tree.kind is None:
        return [""]
    if tree.keys and not issubclass(tree.kind, dict):  # a namedtuple's fields
        steps = [f".{key}" for key in tree.keys]
    else:
        steps = [f"[{key!r}]" for key in (tree.keys or range(len(tree.children)))]
    return [step + rest for step, child in zip(steps, tree.children) for rest in leaf_paths(child)]


def parameter_names(f: Callable) -> list[str]:
    """The names of ``f``'s positional parameters, which name its arguments (and their
    leaves, with :func:`leaf_names`) in closed forms and messages; empty when ``f`` has
    no signature Python can read (a builtin).

    >>> parameter_names(lambda x, y=1, *rest, scale: x), parameter_names(print)
    (['x', 'y'], [])
    """
    try:
        return [p.name for p in inspect.signature(f).parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        return []
