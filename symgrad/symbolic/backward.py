"""``backward()`` on the symbolic engine, and the cross-checking ``"both"`` engine.

:func:`symbolic_backward` is what ``symgrad.set_backward_engine("symbolic")`` runs.  It
reuses the tape engine's shared steps (``graph_order``, ``deliver``, ``release_graph``,
``check_not_freed``) and replaces only the middle: instead of replaying hand-written
VJPs node by node, it differentiates closed forms.

**Segments.**  The recorded graph is split at *boundary* nodes: the roots, custom
``Function`` nodes without a SymPy form, nodes carrying tensor hooks, nodes whose output
called ``retain_grad()``, and non-leaf ``inputs=`` of ``autograd.grad``.  Usually there
is none but the root, and the whole backward is **one** compiled function (NumPy code,
tiered up to C when a segment is reused often enough on large enough arrays to pay for
the compile: ``backend="auto"``, :mod:`.codegen.backends.auto`).  Each
segment (the graph below one boundary node down to leaves and further boundaries) is
translated to SymPy, differentiated by :mod:`.derive.reverse` with respect to its leaves and
the boundary outputs it reaches, compiled, and cached by structure (:mod:`.codegen.compile`)
under the key the segment's walk of the tape gives (``Segment.key``): a cache hit builds
no SymPy at all.

Boundary nodes are processed in reverse topological order, as the tape engine does:
when a boundary node's gradient is complete, its hooks run and ``retain_grad`` stores
it (``deliver``), and a hook's returned gradient is what flows on.  Then

* an op node (or a custom Function with a SymPy form) continues symbolically: its own
  segment is differentiated with that gradient as the seed;
* a custom Function without a SymPy form calls its own ``backward`` (the user's code;
  the symbolic engine never reads an op's VJP), and the gradients it returns seed the
  segments of its inputs.

Leaves receive the sum of their contributions through ``deliver`` (leaf hooks, ``.grad``
accumulation).  With ``create_graph=True`` the closed forms are evaluated with tensor ops
instead of compiled NumPy code (:mod:`.as_tensors`), so the gradients have a graph of
their own; index arrays and masks stay arrays inside the index.  Graphs whose input
tensors were modified in place after being recorded are handed to the tape engine.

:func:`cross_checked_backward` (engine ``"both"``) runs both engines with hooks held
back, compares every gradient, and raises :class:`GradientMismatchError` naming the
input, the position, both values and the tolerances; then it runs the symbolic engine
for real.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .codegen.backends.auto import AutoFunction
from .codegen.compile import cache_transaction, cached
from .derive.graph import InputRef, Segment
from .derive.reverse import adjoints
from .forms.structural import exact
from .core.symbols import ArrayVar

__all__ = ["symbolic_backward", "cross_checked_backward", "GradientMismatchError", "set_cross_check_tolerances",
           "last_compiled"]

_LAST: list = []


def last_compiled() -> list[AutoFunction]:
    """The compiled functions the most recent symbolic backward ran (one per segment),
    to read their ``.source`` and ``.exprs``: the chain rule over the graph as recorded
    (grouped as it multiplies, not simplified; see ``Segment.build``).

    >>> import symgrad
    >>> w = symgrad.tensor([1.0, 2.0], requires_grad=True, name="w")
    >>> with symgrad.backward_engine("symbolic"):
    ...     (w.sin() * 3).sum().backward()
    >>> last_compiled()[0].exprs
    {'grad_w': 3*(g*cos(w))}
    """
    return list(_LAST)


_ENGINE: list = []


def _engine():
    """``symgrad.tape.engine``, imported on first use (it loads this module lazily too)."""
    if not _ENGINE:
        from ..tape import engine

        _ENGINE.append(engine)
    return _ENGINE[0]


def symbolic_backward(roots: Sequence[Any], grad_roots: Sequence[Any], *, inputs=None, retain_graph: bool = False,
                      create_graph: bool = False, accumulate: bool = True):
    """Run backward with compiled closed forms (see the module docstring).

    >>> import symgrad
    >>> x = symgrad.tensor([1.0, 2.0], requires_grad=True, name="x")
    >>> y = (x ** 3).sum()
    >>> symbolic_backward([y], [np.ones(())], inputs=None, retain_graph=False, create_graph=False,
    ...                   accumulate=True)
    >>> x.grad
    tensor([ 3., 12.])
    """
    engine = _engine()
    targets = engine.input_targets(inputs) if inputs is not None else None
    root_edges = [root._edge() for root in roots]
    order = engine.graph_order(root_edges, None if targets is None else set(targets))
    unmodified, boundary = _scan(order, root_edges, targets)
    if not unmodified:
        return engine.tape_backward(roots, grad_roots, inputs=inputs, retain_graph=retain_graph,
                                    create_graph=create_graph, accumulate=accumulate)
    with engine.set_grad_enabled(create_graph), cache_transaction():  # a failure caches nothing
        results = _backward(roots, grad_roots, order, root_edges, targets, inputs, create_graph, accumulate,
                            boundary)
    if not retain_graph:
        engine.release_graph(order)
    return None if accumulate else results


def _scan(order, root_edges, targets) -> tuple[bool, frozenset]:
    """One pass over the graph: raise if a node was freed or a tensor its VJP reads was
    modified in place; say whether every input tensor still has the version it was
    recorded with (if not, a recomputation from current values would differ from what
    was recorded, and the tape engine answers); and find the *boundary* nodes (roots,
    nodes with hooks or ``retain_grad``, custom Functions without a SymPy form, non-leaf
    ``inputs``)."""
    engine = _engine()
    Node = engine.Node
    unmodified = True
    boundary = set(e for e in root_edges if isinstance(e, Node))
    for node in order:
        if type(node) is not Node and not isinstance(node, Node):
            continue
        if node.freed:
            engine.check_not_freed(node)
        node.check_versions()
        if unmodified:
            for saved in node.inputs:
                if saved.tensor._version.value != saved.version and not isinstance(saved.edge, Node):
                    unmodified = False
        if (((node.hooks[0] or node.retained[0] is not None or node.n_outputs > 1) and node.has_hooks())
                or (node.function is not None and getattr(node.function, "sympy", None) is None)
                or (targets is not None and node in targets)):
            boundary.add(node)
    return unmodified, frozenset(boundary)


def _backward(roots, grad_roots, order, root_edges, targets, inputs, create_graph: bool, accumulate: bool,
              boundary: frozenset):
    engine = _engine()
    Node, AccumulateGrad = engine.Node, engine.AccumulateGrad
    in_order = set(order)
    pending: dict = {}
    for root, edge, g in zip(roots, root_edges, grad_roots):
        if edge is not None:
            g = g if create_graph else np.asarray(g)
            engine.add_pending(pending, edge, root._output_nr, g)
    results = [None] * (len(inputs) if inputs is not None else 0)
    _LAST.clear()
    for node in order:
        grads = pending.pop(node, None)
        if grads is None:
            continue
        deliver_to_leaf = accumulate and (targets is None or node in targets)
        if not isinstance(node, AccumulateGrad) and node not in boundary:  # pragma: no cover
            raise RuntimeError(f"internal error: {node.name()} received a gradient outside a boundary")
        engine.deliver_outputs(node, grads, create_graph, deliver_to_leaf, targets, results)
        if isinstance(node, AccumulateGrad):
            continue
        if not create_graph:
            grads[:] = [None if g is None else np.asarray(g) for g in grads]
        if node.function is not None and getattr(node.function, "sympy", None) is None:
            in_grads = engine.node_vjp(node, grads, create_graph)
            tops, seeds = [], []
            for saved, g_in in zip(node.inputs, in_grads):
                if saved.edge is not None and g_in is not None and saved.edge in in_order:
                    tops.append((saved.edge, saved.index if isinstance(saved.edge, Node) else saved.tensor))
                    seeds.append(g_in if create_graph else np.asarray(g_in))
            if tops:
                _run_segment(tops, seeds, boundary, in_order, pending, None, create_graph)
            continue
        tops = [(node, None)] if node.n_outputs == 1 else [(node, k) for k in range(node.n_outputs)]
        seeds = [(g if create_graph else np.asarray(g)) if g is not None else _zeros(node, k, create_graph)
                 for k, g in enumerate(grads)]
        whole = order if boundary == {node} else None  # then every node of order is in its segment
        _run_segment(tops, seeds, boundary, in_order, pending, node, create_graph, whole)
    return results


def _zeros(node, k: int, create_graph: bool):
    zeros = np.zeros(*node.output_spec(k))
    if create_graph:
        from ..tape.tensor import Tensor

        return Tensor(zeros)
    return zeros


class _TopTensor:
    """Stand-in for output ``k`` of a top node: its value, shape, dtype and number."""

    def __init__(self, node, k: int) -> None:
        self._data = node.outputs[k]
        self.shape, self.dtype = node.output_spec(k)
        self._output_nr = k


def _run_segment(tops, seeds, boundary, in_order, pending, own, create_graph: bool = False,
                 order: list | None = None) -> None:
    """Differentiate ``sum(seed * top)`` over one segment and route the gradients.

    The segment's walk gives its structure key; a structure compiled before runs its
    compiled function on this graph's inputs without building any SymPy.  ``order`` is
    the graph's node order when the segment is all of the graph (the walk reuses it).
    """
    arrays = [getattr(s, "_data", s) for s in seeds]
    seed_specs = tuple([(a.shape, a.dtype.str) if type(a) is np.ndarray else (np.shape(a), np.asarray(a).dtype.str)
                        for a in arrays])
    pairs = []
    for edge, extra in tops:
        if isinstance(extra, int):  # output k of a multi-output node
            pairs.append((edge, _TopTensor(edge, extra)))
        else:
            pairs.append((edge, extra))
    segment = Segment(pairs, boundary=boundary, keep=in_order, own=own, order=order)
    sinks = _sinks(segment, in_order)
    if not sinks:
        return
    positions = [p for p, _, _ in sinks]
    key = (segment.key, seed_specs, tuple(positions))
    if create_graph:
        grads = _tensor_gradients(segment, key, arrays, seeds, positions)
    else:
        compiled = cached(("backward",) + key, lambda: _compile_segment(segment, arrays, positions))
        _LAST.append(compiled)
        grads = compiled.outputs_of(segment.values() + [np.asarray(a) for a in arrays])
    add = _engine().add_pending
    for (position, node, slot), g in zip(sinks, grads):
        add(pending, node, slot, g)


def _sinks(segment: Segment, in_order) -> list:
    """``(input position, destination node, slot)`` for each input of ``segment`` that
    takes a gradient whose sink is in the graph (leaves, cut nodes)."""
    sinks = []
    for position, ref in enumerate(segment.inputs):
        sink = ref.gradient_sink()
        if sink is not None and sink[0] in in_order:
            sinks.append((position,) + sink)
    return sinks


def _derive_segment(segment: Segment, seeds, sink_positions: list[int]) -> tuple[list, list, list]:
    """Input symbols, seed symbols and the closed-form gradients of the sinks (as
    recorded: see ``Segment.build``)."""
    symbols, top_exprs = segment.build(as_recorded=True)
    seed_symbols = []
    taken = {s.name for s in symbols}
    for i, seed in enumerate(seeds):
        name = "g" if len(seeds) == 1 else f"g{i}"
        while name in taken:
            name = "_" + name
        taken.add(name)
        seed_symbols.append(ArrayVar(name, np.shape(seed), np.asarray(seed).dtype))
    wrt = [symbols[p] for p in sink_positions]
    pairs = [(exact(top, np.shape(seed)), g) for top, seed, g in zip(top_exprs, seeds, seed_symbols)]
    grads = adjoints(pairs, wrt, as_recorded=True)
    shapes = [segment.inputs[p].shape for p in sink_positions]
    return symbols, seed_symbols, [exact(g, shape) for g, shape in zip(grads, shapes)]


def _compile_segment(segment: Segment, seeds, sink_positions: list[int]) -> AutoFunction:
    """The segment's gradients as a ``backend="auto"`` function: NumPy, tiered up to C when
    a segment is reused often enough on large enough arrays to pay for the compile."""
    symbols, seed_symbols, grads = _derive_segment(segment, seeds, sink_positions)
    refs: list[InputRef] = segment.inputs
    names = [f"grad_{symbols[p].name}" for p in sink_positions]
    return AutoFunction(
        symbols + seed_symbols, grads,
        input_names=[s.name for s in symbols + seed_symbols], output_names=names,
        output_shapes=[refs[p].shape for p in sink_positions],
        output_dtypes=[refs[p].dtype for p in sink_positions], name="backward",
    )


def _tensor_gradients(segment: Segment, key, arrays, seeds, positions) -> list:
    """``create_graph=True``: evaluate the closed forms with tensor ops (recorded)."""
    from ..tape.tensor import Tensor
    from .derive.as_tensors import NotTensorizable, evaluate_as_tensors

    symbols, seed_symbols, grads = cached(("backward-exprs",) + key,
                                          lambda: _derive_segment(segment, arrays, positions))
    env = {symbol: ref.as_tensor(ref.value()) for symbol, ref in zip(symbols, segment.inputs)}
    for symbol, seed in zip(seed_symbols, seeds):
        env[symbol] = seed if isinstance(seed, Tensor) else Tensor(np.asarray(seed))
    try:
        values = evaluate_as_tensors(grads, env)
    except NotTensorizable as err:
        raise NotImplementedError(
            f"create_graph=True on the symbolic engine: {err}; use set_backward_engine('tape') for this graph"
        ) from None
    from ..tape import apply_op

    out = []
    for value, p in zip(values, positions):
        ref = segment.inputs[p]
        if not isinstance(value, Tensor):
            value = Tensor(np.full(ref.shape, value, dtype=ref.dtype))
        elif value.dtype != ref.dtype and ref.dtype.kind == "f":
            value = apply_op("cast", value, dtype=ref.dtype)  # gradients have their input's dtype
        out.append(value)
    return out


# ============================================================================ "both"
class GradientMismatchError(RuntimeError):
    """The symbolic and tape engines disagree about a gradient."""


_TOLERANCES: dict = {}


def set_cross_check_tolerances(rtol: float | None = None, atol: float | None = None) -> None:
    """Override the tolerances of the ``"both"`` engine (None restores the defaults:
    ``rtol=1e-6, atol=1e-9`` for float64 and ``rtol=1e-3, atol=1e-5`` below).

    >>> set_cross_check_tolerances(rtol=1e-4); _tolerances(np.float64)
    (0.0001, 1e-09)
    >>> set_cross_check_tolerances(); _tolerances(np.float32)
    (0.001, 1e-05)
    """
    _TOLERANCES.clear()
    if rtol is not None:
        _TOLERANCES["rtol"] = float(rtol)
    if atol is not None:
        _TOLERANCES["atol"] = float(atol)


def _tolerances(dtype) -> tuple[float, float]:
    wide = np.dtype(dtype).itemsize >= 8
    rtol = _TOLERANCES.get("rtol", 1e-6 if wide else 1e-3)
    atol = _TOLERANCES.get("atol", 1e-9 if wide else 1e-5)
    return rtol, atol


class _HooksHeld:
    """Temporarily take tensor hooks and retain_grad off the graph (restored on exit)."""

    def __init__(self, order) -> None:
        self.order = order

    def __enter__(self):
        engine = _engine()
        self.saved = []
        for node in self.order:
            if isinstance(node, engine.AccumulateGrad):
                self.saved.append((node.variable, "_leaf_hooks", node.variable._leaf_hooks))
                node.variable._leaf_hooks = []
            else:
                self.saved.append((node, "hooks", node.hooks))
                self.saved.append((node, "retained", node.retained))
                node.hooks = [[] for _ in range(node.n_outputs)]
                node.retained = [None] * node.n_outputs
        return self

    def __exit__(self, *exc) -> None:
        for owner, attr, value in self.saved:
            setattr(owner, attr, value)


def cross_checked_backward(roots, grad_roots, *, inputs=None, retain_graph: bool = False, create_graph: bool = False,
                           accumulate: bool = True):
    """Engine ``"both"``: compare the symbolic and tape gradients, then run backward.

    >>> import symgrad
    >>> x = symgrad.tensor([0.5, 2.0], requires_grad=True)
    >>> with symgrad.backward_engine("both"):
    ...     (x.exp() * x).sum().backward()
    >>> x.grad
    tensor([ 2.4731, 22.1672])
    """
    engine = _engine()
    root_edges = [root._edge() for root in roots]
    targets = engine.input_targets(inputs) if inputs is not None else None
    order = engine.graph_order(root_edges, None if targets is None else set(targets))
    if inputs is not None:
        checked = list(inputs)
    else:
        checked = [node.variable for node in order if isinstance(node, engine.AccumulateGrad)]
    with cache_transaction():  # a mismatch leaves the compile cache as it was
        if checked:
            with _HooksHeld(order):
                symbolic = symbolic_backward(roots, grad_roots, inputs=checked, retain_graph=True,
                                             create_graph=False, accumulate=False)
                tape = engine.tape_backward(roots, grad_roots, inputs=checked, retain_graph=True,
                                            create_graph=False, accumulate=False)
            for i, (tensor, s, t) in enumerate(zip(checked, symbolic, tape)):
                _compare(i, tensor, s, t)
        return symbolic_backward(roots, grad_roots, inputs=inputs, retain_graph=retain_graph,
                                 create_graph=create_graph, accumulate=accumulate)


def _compare(i: int, tensor, symbolic, tape) -> None:
    name = tensor.name or f"input {i}"
    if symbolic is None or tape is None:
        if (symbolic is None) != (tape is None):
            raise GradientMismatchError(
                f"gradient of {name} (shape {list(tensor.shape)}): the symbolic engine gives "
                f"{'no gradient' if symbolic is None else 'a gradient'}, the tape engine "
                f"{'no gradient' if tape is None else 'a gradient'}"
            )
        return
    s = np.asarray(getattr(symbolic, "_data", symbolic), dtype=np.float64)
    t = np.asarray(getattr(tape, "_data", tape), dtype=np.float64)
    rtol, atol = _tolerances(tensor.dtype)
    if s.shape != t.shape:
        raise GradientMismatchError(
            f"gradient of {name}: the symbolic engine gives shape {s.shape}, the tape engine {t.shape}")
    bad = ~np.isclose(s, t, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        err = np.where(bad, np.abs(s - t), -1.0)
        flat = int(np.argmax(err))
        position = tuple(int(p) for p in np.unravel_index(flat, s.shape)) if s.shape else ()
        raise GradientMismatchError(
            f"gradient of {name} (shape {list(tensor.shape)}, dtype {tensor.dtype}) differs between the "
            f"engines at position {list(position)}: symbolic {float(s.flat[flat])!r}, tape {float(t.flat[flat])!r} "
            f"(|difference| {abs(s.flat[flat] - t.flat[flat]):.3g} > atol + rtol*|tape| with rtol={rtol}, "
            f"atol={atol}); {int(bad.sum())} of {bad.size} elements differ. Check the op's SymPy form and "
            "its VJP, or loosen the tolerances with symgrad.symbolic.set_cross_check_tolerances()"
        )
