"""Recorded tensor graphs -> SymPy expressions over array symbols.

A :class:`Segment` is the part of a recorded graph below some *top* values, walked once,
iteratively, down to its inputs:

* a leaf that requires grad (an ``AccumulateGrad`` edge) becomes an input symbol named
  by ``tensor.name`` (``nn.Module`` parameters carry their attribute path, e.g.
  ``fc.weight``) or, unnamed, ``t0``, ``t1``, ... in the order the walk meets them;
* a Python number used as an operand (``x * 2``: ``tensor._constant``) becomes a SymPy
  number -- unless SymPy would fold it into something NumPy does not compute (NaN and
  the infinities, ``x + oo -> oo``; a zero factor or divisor, ``x*0 -> 0``, ``x/0 ->
  zoo``): such a constant is an input (a ``ConstantInput``, named ``inf``, ``nan``,
  ``zero``, ...) whose value is part of the structure key;
* every other tensor that is not recorded (data, targets, anything computed without
  grad) becomes an input symbol too, whose value is read at call time, so a training
  loop over new batches reuses one compiled function;
* a node in ``boundary`` (a custom ``Function`` without a SymPy form, a node with hooks
  or ``retain_grad``, a tensor ``symgrad.diff`` differentiates with respect to) is *cut*:
  its output becomes an input symbol whose value is the node's recorded output;
* every other node becomes its op's SymPy form: the op table's elementwise form (or the
  stable replacement from ``stable.py``), the structural function of ``structural.py``,
  or a custom Function's own ``sympy(sp, *exprs)``.

The walk also produces a hashable **structure key** -- ops, attributes, shapes, dtypes,
names and constants, never values -- so a cache lookup needs no SymPy at all; the
SymPy expressions are built only on a cache miss (:meth:`Segment.build`).

:func:`tensor_expr` is the user-facing face: the closed form of a tensor over its leaves
(``Tensor.expr`` delegates to it); :func:`graphs_at` gives ``symgrad.diff`` the closed
form in which each tensor it differentiates with respect to is a symbol.

The user-facing builds (``tensor_graph``, ``graphs_at``; never the engine's) also read
what printing needs: a data input computed without recording from named tensors (its
``Origin``, ``symgrad.tape.node``) becomes a ``DataArray`` carrying its definition, an array
no one named (an index array, unnamed data, an unnamed leaf not differentiated by) a
``DataArray`` defined by its ``ArrayValue``, and an input whose tensor names its axes
(``dims``) a ``SizedArray``.

Input symbols are named after what users named (a tensor's ``name``, a module
parameter's path); the names the engine makes (``t0``, ``idx0``, ``zero``, ``mul_out``)
yield to them: a user's tensor named ``t0`` keeps its name and the engine's becomes
``t0_1``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import sympy as sp

from ...ops import sympy_number
from ...tape.node import AccumulateGrad, Node, index_source
from ...tape.structure import number_value
from ..forms.selections import Cast, elementwise_form, lower
from ..forms.structural import exact, structural_class
from ..core._compat import evaluate
from ..core.symbols import (DEEP, ArrayValue, ArrayVar, DataArray, SizedArray, Slot, _freeze, collection_paused, intern,
                            postorder_by_identity, replaced, start_building)

__all__ = ["Segment", "InputRef", "LeafInput", "ArrayInput", "ConstantInput", "CutInput", "IndexInput",
           "tensor_expr", "tensor_graph", "graphs_at", "evaluated"]

class InputRef:
    """One input of a segment (a symbol of its closed form).  Each kind is a subclass that
    knows its own value, how it enters the structure key and a tensor evaluation, where
    its gradient goes and what it stands for: :class:`LeafInput`, :class:`ArrayInput`,
    :class:`ConstantInput`, :class:`CutInput`, :class:`IndexInput`.

    ``identity`` tells two inputs of one segment apart (a tensor's ``id``, a cut node's
    output, a constant's value); ``key`` is its part of the structure key (what it is,
    its name, shape and dtype; never its value, but for a constant's); ``user_named``:
    ``name`` is one a user gave (else the engine made it, or makes one from :attr:`prefix`).
    """

    __slots__ = ("identity", "name", "shape", "dtype", "user_named", "key")
    prefix = "t"  # engine-made names of unnamed inputs: t0, t1, ...
    tensor = None  # the tensor it reads, for the kinds that read one

    def __init__(self, identity: tuple, name: str | None, shape: tuple, dtype: np.dtype, user_named: bool) -> None:
        self.identity, self.name, self.shape, self.dtype, self.user_named = identity, name, shape, dtype, user_named
        self.key = (identity[0], name, shape, dtype)

    def value(self) -> np.ndarray:
        """The array this input stands for, now."""
        return self.tensor._data

    def source(self) -> Any:
        """What its symbol stands for: a tensor, a cut node, an index array."""
        return self.tensor

    def as_tensor(self, array: np.ndarray) -> Any:
        """Its value in a closed form evaluated with tensor ops (``create_graph=True``),
        ``array`` being its value for this evaluation."""
        return self.tensor

    def gradient_sink(self) -> tuple | None:
        """``(node, output slot)`` that receives this input's gradient, None if none does."""
        return None

    def recorded_tensor(self) -> Any:
        """The tensor whose recording (``requires_grad``, a ``grad_fn``) makes a function
        that captured it record its result, None for an input that is no such tensor."""
        return None

    def holds(self, array: np.ndarray) -> bool:
        """Whether it is the non-recorded tensor holding exactly ``array``."""
        return False

    def expr_in(self, segment: "Segment", symbols: list) -> Any:
        """The expression it stands for in ``segment``, another segment built (``symbols``)
        over the same recorded graph; None if ``segment`` does not read it."""
        position = segment._input_ids.get(self.identity)
        return None if position is None else symbols[position]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.shape} {self.dtype}>"


class ArrayInput(InputRef):
    """A tensor no recorded op made (data, targets, anything computed without grad): its
    value is read at call time, so a loop over new batches reuses one compiled function."""

    __slots__ = ("tensor",)

    def __init__(self, identity: tuple, tensor) -> None:  # InputRef's fields, set here: one per leaf per backward
        data, name = tensor._data, tensor.name
        self.identity, self.name, self.shape, self.dtype, self.user_named = identity, name, data.shape, data.dtype, \
            bool(name)
        self.key = (identity[0], name, data.shape, data.dtype)
        self.tensor = tensor

    def recorded_tensor(self) -> Any:
        return self.tensor

    def holds(self, array: np.ndarray) -> bool:
        return self.tensor._data is array


class LeafInput(ArrayInput):
    """A leaf that requires grad; its gradient goes to its ``AccumulateGrad``."""

    __slots__ = ()

    def gradient_sink(self) -> tuple | None:
        return self.tensor._edge(), 0

    def holds(self, array: np.ndarray) -> bool:
        return False


class ConstantInput(InputRef):
    """A constant operand SymPy cannot hold (an infinity, NaN, a zero factor: see
    :func:`_sympy_holds`), named ``inf``, ``nan``, ``zero``, ...; its value is part of
    the key."""

    __slots__ = ("tensor",)

    def __init__(self, identity: tuple, tensor, value: Any) -> None:
        super().__init__(identity, _constant_name(value), tensor.shape, tensor.dtype, False)
        self.tensor = tensor
        self.key += (identity[1],)  # the value is part of the structure


class CutInput(InputRef):
    """Output ``index`` of a cut (boundary) node: its value is the node's recorded output,
    and its gradient goes to that node."""

    __slots__ = ("node", "index")

    def __init__(self, identity: tuple, node, index: int, tensor) -> None:
        name, user_named = _cut_name(node, index, tensor)
        shape, dtype = (tensor.shape, tensor.dtype) if tensor is not None else node.output_spec(index)
        super().__init__(identity, name, tuple(shape), np.dtype(dtype), user_named)
        self.node, self.index = node, index

    def value(self) -> np.ndarray:
        out = self.node.outputs[self.index]
        if out is None:
            raise RuntimeError(
                f"the output of {self.node.name()} was freed by an earlier backward(); pass "
                "retain_graph=True to the first backward() to run backward twice"
            )
        return out

    def source(self) -> Any:
        return self.node

    def as_tensor(self, array: np.ndarray) -> Any:
        from ...tape.tensor import Tensor

        value = Tensor(array)
        value.grad_fn, value._output_nr = self.node, self.index
        return value

    def gradient_sink(self) -> tuple | None:
        return self.node, self.index

    def expr_in(self, segment: "Segment", symbols: list) -> Any:
        position = segment.node_position(self.node)
        if position is None:
            return super().expr_in(segment, symbols)
        return segment.node_expr(position, self.index)


class IndexInput(InputRef):
    """An integer index array or mask of a recorded op's ``index`` attribute: it stays an
    array inside the index (of a mask, the number of true elements is in the key)."""

    __slots__ = ("array",)
    prefix = "idx"

    def __init__(self, identity: tuple, array: np.ndarray) -> None:
        super().__init__(identity, None, array.shape, array.dtype, False)
        self.array = array

    def value(self) -> np.ndarray:
        return self.array

    def source(self) -> Any:
        return self.array

    def as_tensor(self, array: np.ndarray) -> Any:
        return array


_PLAIN = (type(None), bool, int, str)
_FROZEN_ATTRS: dict = {}


def _frozen_attrs(attrs: dict) -> tuple:
    """``freeze(attrs)``, remembered for attributes that are all ``None``, bools, ints or
    strings (a reduction's ``dim`` and ``keepdim``, an integer exponent: the same few in
    every step of a loop).  The key holds each value's type, so ``True`` and ``1`` stay
    apart; a float is never remembered (``0.0 == -0.0``, ``nan != nan``).

    >>> _frozen_attrs({"dim": None, "keepdim": False}) == _freeze({"dim": None, "keepdim": False})
    True
    """
    key = []
    for name, value in attrs.items():
        if type(value) not in _PLAIN:
            return _freeze(attrs)
        key.append((name, type(value), value))
    key = tuple(key)
    frozen = _FROZEN_ATTRS.get(key)
    if frozen is None:
        if len(_FROZEN_ATTRS) >= 1024:
            _FROZEN_ATTRS.clear()
        frozen = _FROZEN_ATTRS[key] = _freeze(attrs)
    return frozen


def _output_index(tensor) -> int:
    """Which output of its ``grad_fn`` a top tensor is (a multi-output Function's ``k``)."""
    return getattr(tensor, "_output_nr", 0)


def _in_product(node) -> bool:
    """Whether ``node`` multiplies or divides its operands (where a zero constant folds)."""
    return node.op is not None and node.op.name in ("mul", "div")


def _sympy_holds(value: Any, in_product: bool) -> bool:
    """Whether the constant operand ``value`` can be a SymPy number without changing
    what NumPy computes: not NaN or an infinity (SymPy's ``nan``/``oo`` absorb what they
    meet, ``x + oo -> oo``, so the gradient would be 0) and not a zero factor or divisor
    (SymPy folds ``x*0 -> 0`` and ``0/x -> 0`` where NumPy's ``inf*0`` and ``0/0`` are
    NaN, makes ``x/0`` its ``zoo``, and ``-0.0`` loses its sign).  Other constants
    become inputs.

    >>> _sympy_holds(2.5, True), _sympy_holds(float("inf"), False), _sympy_holds(0.0, True), _sympy_holds(0, False)
    (True, False, False, True)
    """
    if isinstance(value, (float, complex)) and not np.isfinite(value):
        return False
    return not (in_product and value == 0)


def _constant_name(value: Any) -> str:
    """The symbol name of a constant that is an input: ``inf``, ``minus_inf``, ``nan``,
    ``zero``, ``minus_zero`` (``nonfinite`` for a complex value).

    >>> _constant_name(float("-inf")), _constant_name(-0.0), _constant_name(0)
    ('minus_inf', 'minus_zero', 'zero')
    """
    if isinstance(value, complex):
        return "nonfinite"
    if value != value:
        return "nan"
    word = "inf" if value else "zero"
    return f"minus_{word}" if np.signbit(value) else word


class Segment:
    """The recorded graph below ``tops`` (pairs ``(edge, tensor)`` like ``SavedInput``,
    or tensors), stopping at ``boundary`` nodes and at nodes outside ``keep``.

    ``own`` lets a boundary node be a top itself (its expression is built from its
    inputs).  ``key`` identifies the structure; ``inputs`` lists the :class:`InputRef`
    in a deterministic order; :meth:`build` makes the SymPy expressions.

    ``order`` is for a caller that has walked the graph already (backward's
    ``graph_order``: each node before the nodes that feed it) and knows that every node in
    it is interior and below the one top: the segment then takes its nodes from it
    instead of walking the graph again (the same nodes in the same order, so the same key).
    """

    def __init__(self, tops: Sequence[Any], *, boundary: frozenset | set = frozenset(),
                 keep: set | None = None, own: Any = None, order: Sequence[Any] | None = None) -> None:
        self.boundary = boundary
        self.keep = keep
        self.inputs: list[InputRef] = []
        self._input_ids: dict = {}
        self.nodes: list = []  # interior nodes, operands first
        self._node_ids: dict = {}  # interior node -> its position (nodes hash by identity)
        self.entries: list = []  # per interior node: (op or Function, frozen attrs, child refs, input shapes)
        self._slotted: dict = {}  # node position -> its attrs with index arrays replaced by slots
        self.top_refs: list = []
        tops = [self._as_pair(t) for t in tops]
        self._tops = {own} if own is not None else set()
        self._order = order
        for edge, tensor in tops:
            self.top_refs.append(self._walk(edge, tensor))
        self.key = ("segment", tuple(self.entries), tuple([i.key for i in self.inputs]), tuple(self.top_refs))

    # ------------------------------------------------------------------ walking
    def _as_pair(self, top: Any) -> tuple:
        if isinstance(top, tuple):
            return top
        if hasattr(top, "edge") and hasattr(top, "tensor"):
            return top.edge, top.tensor
        return top._edge(), top

    def _interior(self, edge) -> bool:
        """Whether ``edge`` is a node of this segment (else it is an input)."""
        if not isinstance(edge, Node):
            return False
        if edge in self._tops:
            return True
        if edge in self.boundary:
            return False
        return self.keep is None or edge in self.keep

    def _walk(self, edge, tensor) -> tuple:
        """The reference of one top value, entering the interior nodes below it that are
        not entered yet, operands first."""
        k = _output_index(tensor)
        if not self._interior(edge):
            return self._leaf_ref(edge, tensor, None, k)
        if edge not in self._node_ids:
            for node in self._postorder(edge):
                self._enter(node)
        return ("n", self._node_ids[edge], k)

    def _postorder(self, edge) -> list:
        """The interior nodes below ``edge`` not entered yet, each after its operands
        (iteratively: deep graphs cannot hit the recursion limit)."""
        if self._order is not None:
            return [node for node in reversed(self._order) if isinstance(node, Node)]
        entered, interior = self._node_ids, self._interior
        seen = {edge}
        stack = [(edge, iter(edge.inputs))]
        out = []
        while stack:
            node, inputs = stack[-1]
            for saved in inputs:
                child = saved.edge
                if child not in seen:
                    seen.add(child)
                    if child not in entered and interior(child):
                        stack.append((child, iter(child.inputs)))
                        break
            else:
                stack.pop()
                out.append(node)
        return out

    def _enter(self, node) -> None:
        """Record one interior node whose interior operands are entered: its references,
        attributes and part of the structure key."""
        entered, leaf_ref = self._node_ids, self._leaf_ref
        refs, shapes = [], []
        for saved in node.inputs:
            edge, tensor = saved.edge, saved.tensor
            position = entered.get(edge)
            refs.append(("n", position, saved.index) if position is not None else
                        leaf_ref(edge, tensor, node, saved.index))
            data = tensor._data  # (a released or stand-in value has no data, only its shape)
            shapes.append(data.shape if data is not None else tensor.shape)
        position = entered[node] = len(self.nodes)
        self.nodes.append(node)
        op, attrs = node.op, node.attrs
        if attrs and op is not None and "index" in attrs:
            attrs = self._slotted[position] = self._index_inputs(attrs, refs, shapes)
        self.entries.append((op if op is not None else node.function,  # (an op or a Function class, by identity)
                             _frozen_attrs(attrs) if attrs else (), tuple(refs), tuple(shapes)))

    def _index_inputs(self, attrs: dict, refs: list, shapes: list) -> dict:
        """The attributes of a node whose ``index`` attribute holds index arrays: those
        become inputs (values read at call time, appended to ``refs`` and ``shapes``)
        referred to by :class:`Slot` placeholders; of a boolean mask, the number of true
        elements (which decides the result's shape) is part of the structure."""
        index = attrs["index"]
        if not isinstance(index, tuple) or not any(_is_index_array(p) for p in index):
            return attrs
        template, n_slots = [], 0
        for part in index:
            if _is_index_array(part):
                count = int(np.count_nonzero(part)) if part.dtype == bool else None
                template.append(Slot(n_slots, count))
                n_slots += 1
                refs.append(self._input(("index", id(part)), IndexInput, part))
                shapes.append(part.shape)
            else:
                template.append(part)
        return {**attrs, "index": tuple(template)}

    def _leaf_ref(self, edge, tensor, user=None, k: int = 0) -> tuple:
        """The reference of a value that is no interior node, read by the node ``user``."""
        if isinstance(edge, AccumulateGrad):
            leaf = edge.variable
            return self._input(("leaf", id(leaf)), LeafInput, leaf)
        if isinstance(edge, Node):
            return self._input(("cut", id(edge), k), CutInput, edge, k, tensor)
        constant = getattr(tensor, "_constant", None)
        if constant is not None:
            value = number_value(constant)
            if _sympy_holds(value, user is not None and _in_product(user)):
                return ("c", _freeze(value), tensor.dtype.str)
            return self._input(("const", _freeze(value), tensor.dtype.str), ConstantInput, tensor, value)
        return self._input(("array", id(tensor)), ArrayInput, tensor)

    def _input(self, identity: tuple, cls: type, *args: Any) -> tuple:
        """The reference of the input ``identity``, made (``cls(identity, *args)``) when new."""
        position = self._input_ids.get(identity)
        if position is None:
            position = self._input_ids[identity] = len(self.inputs)
            self.inputs.append(cls(identity, *args))
        return ("in", position)

    # ------------------------------------------------------------------ queries
    def input_position(self, tensor) -> int | None:
        """Where a leaf or array tensor is among :attr:`inputs` (None if absent)."""
        for kind in ("leaf", "array"):
            position = self._input_ids.get((kind, id(tensor)))
            if position is not None:
                return position
        return None

    def cut_position(self, node, k: int = 0) -> int | None:
        """Where output ``k`` of a cut (boundary) node is among :attr:`inputs` (None if absent)."""
        return self._input_ids.get(("cut", id(node), k))

    def index_position(self, array) -> int | None:
        """Where an index array (an attribute of a recorded op) is among :attr:`inputs`
        (None if absent)."""
        return self._input_ids.get(("index", id(array)))

    def data_position(self, array) -> int | None:
        """Where the tensor holding exactly ``array`` (a non-recorded array input) is among
        :attr:`inputs` (None if absent)."""
        for position, ref in enumerate(self.inputs):
            if ref.holds(array):
                return position
        return None

    def node_position(self, node) -> int | None:
        """Where an interior node is among :attr:`nodes` (None if absent)."""
        return self._node_ids.get(node)

    def values(self) -> list:
        """The current arrays of every input, in order."""
        return [ref.value() for ref in self.inputs]

    # ------------------------------------------------------------------ SymPy
    @collection_paused()
    def build(self, as_recorded: bool = False) -> tuple[list, list]:
        """``(input symbols, top expressions)``; node expressions are kept in ``self.exprs``.

        ``as_recorded=True`` builds every node unevaluated, as the tape recorded it: SymPy
        simplifies nothing across nodes (``x/x`` stays a quotient, ``log(exp(x))`` a log),
        so the chain rule over these forms meets the same 0/0, inf/inf and inf*0 as the
        tape's (the engines differentiate and compile these; what users print is the
        simplified form)."""
        start_building()
        bases = []
        unnamed: dict = {}  # per prefix, how many unnamed inputs it has named
        for ref in self.inputs:
            count = unnamed.get(ref.prefix, 0)
            bases.append(ref.name or f"{ref.prefix}{count}")
            unnamed[ref.prefix] = count + (not ref.name)
        names = _distinct_names(bases, [ref.user_named for ref in self.inputs])
        symbols = [ArrayVar(name, ref.shape, ref.dtype) for ref, name in zip(self.inputs, names)]
        exprs: list = []
        depth: list = []
        for entry in self.entries:
            depth.append(1 + max((depth[r[1]] for r in entry[2] if r[0] == "n"), default=0))
        deep = max(depth, default=0) > DEEP
        with evaluate(not (deep or as_recorded)):
            # deep chains are built unevaluated too: SymPy's automatic simplification asks
            # assumptions of whole subtrees, which is superlinear (and recursive) in depth
            for position, (node, entry) in enumerate(zip(self.nodes, self.entries)):
                attrs = self._slotted.get(position, node.attrs)
                args = [self._expr(r, exprs, symbols) for r in entry[2]]
                out = _node_expr(node, args, entry[3], attrs)
                if (deep or as_recorded) and isinstance(out, sp.Pow):
                    out = reciprocal_as_recorded(out)
                # one object per structure: a rebuilt graph shares the previous build's nodes
                exprs.append(tuple(intern(o) for o in out) if isinstance(out, tuple) else intern(out))
        self.exprs = exprs
        self.symbols = symbols
        return symbols, [self._expr(r, exprs, symbols) for r in self.top_refs]

    def _expr(self, ref: tuple, exprs: list, symbols: list) -> sp.Expr:
        if ref[0] == "n":
            out = exprs[ref[1]]
            return out[ref[2]] if isinstance(out, tuple) else out
        if ref[0] == "in":
            return symbols[ref[1]]
        return intern(sympy_number(sp, eval_constant(ref)))  # finite: the others are inputs (_sympy_holds)

    def node_expr(self, position: int, k: int = 0) -> sp.Expr:
        out = self.exprs[position]
        return out[k] if isinstance(out, tuple) else out


def reciprocal_as_recorded(form: sp.Pow) -> sp.Expr:
    """An op whose whole form is a negative power (``reciprocal``, ``x ** -1``, ``rsqrt``),
    built unevaluated, as the quotient ``1/x`` of its own: so a product with it stays the
    product the tape computed, ``y * (1/x)``, which the compiled code and the tensor ops
    (:mod:`.as_tensors`) would otherwise read as the division ``div(y, x)``, ``y/x`` (as
    ``x * (1/x)`` can be ``1 - 2**-53``, the two differ by a whole step under ``floor``).
    Any other form is returned as it is.

    >>> x = sp.Symbol("x", real=True)
    >>> with evaluate(False):
    ...     sp.srepr(reciprocal_as_recorded(x ** -1))
    "Mul(Integer(1), Pow(Symbol('x', real=True), Integer(-1)))"
    """
    if form.exp.is_Number and form.exp.is_negative:
        return sp.Mul._from_args((sp.S.One, form), is_commutative=True)
    return form


def eval_constant(ref: tuple) -> Any:
    """The Python number of a constant reference ``("c", frozen value, dtype)`` (read
    from the type-tagged value, never parsed from a ``repr``).

    >>> eval_constant(("c", _freeze(0.1), "<f8")), eval_constant(("c", _freeze(np.float64(2.5)), "<f8"))
    (0.1, 2.5)
    """
    kind, *parts = ref[1]
    if kind == "bool":
        return bool(parts[0])
    if kind == "int":
        return int(parts[0])
    if kind == "float":
        return float.fromhex(parts[0])
    if kind == "complex":
        return complex(float.fromhex(parts[0]), float.fromhex(parts[1]))
    raise ValueError(f"unknown constant reference {ref!r}")


def _distinct_names(bases: Sequence[str], user_named: Sequence[bool]) -> list[str]:
    """One name per input, all different: the names users gave first, in order (a
    repeated one gets ``_1``, ``_2``, ...), then the engine's, which never take a user's.

    >>> _distinct_names(["t0", "x", "t0", "x"], [False, True, True, True])
    ['t0_1', 'x', 't0', 'x_1']
    """
    taken: dict = {}
    names: list = [None] * len(bases)
    for users in (True, False):
        for i, (base, user) in enumerate(zip(bases, user_named)):
            if user is not users:
                continue
            name = base
            while name in taken:
                taken[base] = taken.get(base, 0) + 1
                name = f"{base}_{taken[base]}"
            taken.setdefault(name, 0)
            names[i] = name
    return names


def _cut_name(node, k: int, tensor=None) -> tuple[str, bool]:
    """The name of output ``k`` of a cut node and whether a user gave it (the name of the
    tensor that was used, or of one that called ``retain_grad()``), else the engine's
    (``mul_out``)."""
    if tensor is not None and tensor.name:
        return tensor.name, True
    retained = node.retained[k]() if node.retained[k] is not None else None
    if retained is not None and retained.name:
        return retained.name, True
    if node.function is not None:
        base = node.function.__name__
    else:
        base = node.op.name
    return (f"{base}_out{k}" if node.n_outputs > 1 else f"{base}_out"), False


def _is_index_array(part: Any) -> bool:
    return isinstance(part, np.ndarray) and part.dtype.kind in "iub"


def _node_expr(node, args: list, shapes: tuple, attrs: dict | None = None):
    attrs = node.attrs if attrs is None else attrs
    op = node.op
    if op is None:
        form = getattr(node.function, "sympy", None)
        if form is None:
            raise NotImplementedError(
                f"the custom Function {node.function.__name__} has no SymPy form; define "
                "`sympy(sp, *exprs)` on it, or differentiate it with its own backward (backward() does)"
            )
        out = form(sp, *args)
        stop = set(args)
        if isinstance(out, (tuple, list)):
            return tuple(lower(sp.sympify(o), stop) for o in out)
        return lower(sp.sympify(out), stop)
    from ...ops import STRUCTURAL

    if op.sympy is STRUCTURAL:
        cls = structural_class(op.name)
        exact_args = [exact(a, s) for a, s in zip(args, shapes)]
        return cls.of(*exact_args, **attrs)
    if op.name == "cast" and node.inputs[0].tensor.dtype == bool:
        # a mask converted to numbers (mask.float(), mask * x): NumPy refuses -mask, so the
        # conversion is kept even where the dtype is float64 (elementwise_form drops it there)
        return Cast.of(args[0], attrs["dtype"])
    return elementwise_form(op.name, op.sympy, args, attrs)


# ============================================================================ user-facing
def _with_data_defined(tops: Sequence[Any], boundary: frozenset = frozenset(),
                       held: Sequence[Any] = ()) -> tuple[Segment, list, list, int]:
    """``(segment, input symbols, top expressions, read)`` of the graph below ``tops``, for
    users to read (the tops read the first ``read`` inputs; the others are read by
    definitions only): an input whose tensor names its axes (``dims``) is a
    :class:`~symgrad.symbolic.core.symbols.SizedArray`, and every unnamed input that was
    computed without recording from named tensors (its :class:`~symgrad.tape.node.Origin`
    still holds, and it is not one of ``held``) is a
    :class:`~symgrad.symbolic.core.symbols.DataArray`: the same input, carrying the
    closed form it was computed from.  The definitions are built in the same segment as
    the tops (an extra top per defined input), so the named tensors they read have the
    same symbols as everywhere else in the form."""
    segment = Segment(tops, boundary=boundary)
    read = len(segment.inputs)  # a definition's inputs come after these
    held_ids = {id(t) for t in held}
    defined = [ref.tensor for ref in segment.inputs
               if type(ref) is ArrayInput and ref.tensor.name is None and id(ref.tensor) not in held_ids
               and ref.tensor._origin is not None and ref.tensor._origin.holds(ref.tensor)]
    if defined:
        segment = Segment(list(tops) + [(t._origin, t) for t in defined], boundary=boundary)
    symbols, exprs = segment.build()
    sized = {s: SizedArray(s.name, s.array_shape, s.array_dtype, ref.tensor.dims)
             for s, ref in zip(symbols, segment.inputs) if getattr(ref.tensor, "dims", None) is not None}
    defined_ids = {id(t) for t in defined}
    valued = {s: DataArray(s.name, s.array_shape, s.array_dtype, _value_definition(ref))
              for s, ref in zip(symbols, segment.inputs) if _stands_for_its_value(ref, held_ids | defined_ids)}
    if not (defined or sized or valued):
        return segment, symbols, exprs, read
    inner = {**sized, **valued}  # what a definition reads: named tensors and unnamed arrays
    swaps = dict(inner)
    for t, definition in zip(defined, exprs[len(tops):]):
        symbol = symbols[segment.input_position(t)]
        definition = exact(definition, tuple(t.shape)) if t.shape else definition
        swaps[symbol] = DataArray(symbol.name, symbol.array_shape, symbol.array_dtype,
                                  replaced(definition, inner) if inner else definition)
    return segment, [swaps.get(s, s) for s in symbols], [replaced(e, swaps) for e in exprs[:len(tops)]], read


def _value_definition(ref: InputRef) -> Any:
    """What an input no one named stands for: the named tensor whose values an index
    array holds (``labels``: see ``symgrad.tape.node.index_source``), else its value."""
    source = index_source(ref.array) if isinstance(ref, IndexInput) else None
    return ArrayVar(source, ref.shape, ref.dtype) if source else ArrayValue.of(ref.value())


def _stands_for_its_value(ref: InputRef, skipped: set) -> bool:
    """Whether the input ``ref`` is printed as its value (:class:`ArrayValue`): an index
    array, or a tensor no one named that has no definition of its own (data given
    without a name, an unnamed leaf other than those differentiated by), so that no
    printed name is undefined.  Constants (``inf``, ``zero``) and cut nodes name
    themselves."""
    if isinstance(ref, IndexInput):
        return True
    return isinstance(ref, ArrayInput) and ref.tensor.name is None and id(ref.tensor) not in skipped


def tensor_graph(tensor) -> tuple[sp.Expr, dict]:
    """The closed form of ``tensor`` and a map from its symbols to the tensors they stand
    for (leaves and other inputs; the arrays, for integer-array and mask indices).

    >>> import symgrad
    >>> w = symgrad.tensor([1.0, 2.0], requires_grad=True, name="w")
    >>> expr, symbols = tensor_graph((w * 3).sum())
    >>> expr, symbols
    (sum(3*w), {w: tensor([1., 2.], requires_grad=True, name='w')})
    """
    segment, symbols, (expr,), _ = _with_data_defined([tensor])
    expr = exact(expr, tuple(tensor.shape)) if tuple(tensor.shape) else expr
    return expr, {s: ref.source() for s, ref in zip(symbols, segment.inputs)}


def evaluated(expr: Any) -> Any:
    """``expr`` (a form built unevaluated, as a transform's closed forms are: see
    ``Segment.build(as_recorded=True)``) with SymPy's evaluation applied node by node,
    bottom-up: the form an evaluated build gives, as ``diff`` and ``t.expr`` show it
    (``-2*a*exp(-a**2)`` for ``-a*exp((-a)*a) - a*exp((-a)*a)``).  A form deeper than
    :data:`DEEP` levels is returned as it is, as ``Segment.build`` keeps deep graphs
    unevaluated.

    >>> a = sp.Symbol("a")
    >>> with evaluate(False):
    ...     raw = -a * sp.exp(-a * a) - a * sp.exp(-a * a)
    >>> raw, evaluated(raw)
    ((-a)*exp((-a)*a) - a*exp((-a)*a), -2*a*exp(-a**2))
    """
    if not isinstance(expr, sp.Basic):
        return expr
    height: dict = {}
    order = list(postorder_by_identity([expr]))  # every argument: conditions and attributes too
    for node in order:
        height[id(node)] = 1 + max((height[id(a)] for a in node.args), default=0)
    if height[id(expr)] > DEEP:
        return expr
    built: dict = {}
    with evaluate(True):
        for node in order:
            built[id(node)] = node.func(*[built[id(a)] for a in node.args]) if node.args else node
    return built[id(expr)]


def tensor_expr(tensor) -> sp.Expr:
    """The SymPy closed form of a tensor over the leaves it depends on (what
    ``Tensor.expr`` returns).

    >>> import symgrad
    >>> x = symgrad.tensor([[1.0, 2.0]], name="x")
    >>> w = symgrad.tensor([[0.5], [0.25]], requires_grad=True, name="w")
    >>> tensor_expr(symgrad.sigmoid(x @ w) * 2)
    2*sigmoid(x @ w)
    """
    return tensor_graph(tensor)[0]


def graphs_at(y, xs: Sequence[Any]) -> list[tuple[sp.Expr, Any]]:
    """For each tensor ``x`` of ``xs``: ``(closed form of y, symbol of x in it)``, the
    symbol ``None`` where ``y``'s recorded graph does not use ``x``.

    A leaf, or a tensor no recorded op made (data, or computed from tensors that do not
    require grad), is an input of ``y``'s graph.  A tensor a recorded op made is *cut*:
    its node's outputs become input symbols (named after the tensors' names, else after
    the op, ``mul_out``), so a derivative holds fixed what ``x`` was computed from -- the
    gradient ``autograd.grad(y, x)`` computes -- while everything above ``x`` still
    flows.  The leaves share one graph; each cut node has its own, cut there only.

    >>> import symgrad
    >>> w = symgrad.tensor([1.0, 2.0], requires_grad=True, name="w")
    >>> h = w * 2
    >>> h.name = "h"
    >>> y = (h * h).sum() + w.sum()
    >>> graphs_at(y, [w, h])
    [(sum(w) + sum(4*w**2), w), (sum(h**2) + sum(w), h)]
    """
    graphs: dict = {}
    out = []
    for x in xs:
        node = x.grad_fn
        key = None if node is None else id(node)
        if key not in graphs:
            segment, symbols, (expr,), read = _with_data_defined(
                [y], boundary=frozenset() if node is None else frozenset([node]), held=xs)
            graphs[key] = (segment, symbols, exact(expr, tuple(y.shape)) if tuple(y.shape) else expr, read)
        segment, symbols, expr, read = graphs[key]
        position = segment.input_position(x) if node is None else segment.cut_position(node, _output_index(x))
        position = None if position is None or position >= read else position  # read by a data definition only
        out.append((expr, None if position is None else symbols[position]))
    return out
