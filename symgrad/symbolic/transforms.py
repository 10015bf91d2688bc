"""JAX-style transforms with closed forms: ``grad``, ``value_and_grad``, ``jacobian``
(also under JAX's names ``jacrev`` and ``jacfwd``), ``hessian``, ``vjp``, ``jvp``.

Each transform accepts either

* a **Python function** written with symgrad ops (``lambda w: (x @ w).sigmoid().sum()``).
  It is *traced* -- called on leaf tensors (tracers) named after its parameters, its
  recorded graph translated to SymPy (``graph.py``) -- once per **trace key**, and the
  compiled closed form is reused for every call with that key.  The key holds everything
  that can change the program (``docs/transforms.md`` gives the argument):

  - the function itself: its code, and the values of its closure cells, defaults and the
    globals it reads (:func:`fingerprint`: numbers by value, arrays and tensors by
    identity, shape and dtype, other objects by identity and their attributes);
  - every **static** argument's value: those in ``static_argnums`` / ``static_argnames``
    and, automatically, Python ``int``, ``bool``, ``str``, ``None`` (and tuples of them):
    such values decide shapes, axes and Python control flow, so a new value retraces;
  - the shape and dtype of every **dynamic** argument (arrays, tensors, Python floats,
    integer and boolean arrays): their values are read at every call.

  While tracing, every way of turning a traced value into a Python or NumPy value
  raises :class:`~symgrad.tape.tracing.UntraceableError` (see :mod:`symgrad.tape.tracing`),
  so nothing the function computes from its arguments can be frozen at the first call.
  Python control flow on static values and on shapes is fine.
* a **SymPy expression**, with the symbols to call it with (``args``; by default the
  differentiated symbols first, then the other free symbols by name).  Plain symbols are
  scalars evaluated elementwise (pass arrays to evaluate on many points); array symbols
  (``ArrayVar``) are whole arrays.

Arguments and outputs may be pytrees (:mod:`symgrad.pytree`).  An output pytree
(``jacobian``, ``vjp``, ``jvp``; ``hessian`` of one-element leaves) is traced as one
graph with one output per leaf (:class:`_OutputTree`; ``None`` leaves stay ``None``), its
structure part of the trace key; results nest as JAX's do, the output's structure outside
and the arguments' inside.  ``grad`` and ``value_and_grad`` need one scalar output.

It returns a :class:`Transformed` callable, which exposes the closed forms it compiled
(``closed_forms``), the generated ``source`` and a notebook rendering.  Results are NumPy
arrays -- unless an argument, or a tensor the function captures, requires grad (with grad
mode on) or is being traced by an enclosing transform: then the closed forms are
evaluated with tensor ops and the results are tensors recorded in the graph, so
transforms compose (``grad(grad(f))``, a ``grad`` inside a loss that is ``.backward()``-ed).
With ``set_backward_engine("both")`` every call is also run eagerly on the tape and
compared (:class:`~symgrad.symbolic.backward.GradientMismatchError` on a difference).

Derivatives come from :mod:`.derive.reverse`; code from :mod:`.codegen.compile` (the global cache is
shared with ``backward()``), by the ``backend=`` each transform takes (``"auto"`` by
default: NumPy, tiered up to generated C when that pays, see :mod:`.codegen.backends.auto`;
``"numpy"`` or ``"c"`` to choose one).  ``jacobian`` and ``hessian``
compile one vector-Jacobian product with a symbolic upstream gradient (one per output
leaf) and evaluate it once per output element (no re-derivation).
"""
from __future__ import annotations

import types
import weakref
from collections import OrderedDict
from typing import Any, Callable, Sequence

import numpy as np
import sympy as sp

from .. import pytree, tape
from ..tape import tracing
from ..tape.grad_mode import is_grad_enabled
from ..tape.structure import freeze
from ..tape.tensor import Tensor, apply_op
from .codegen.compile import ClosedFormFunction, cached
from .derive.reverse import adjoints, jvp_exprs
from .forms.structural import exact
from .core._compat import evaluate
from .core.symbols import EngineArray, free_symbols, intern, shape_of, size_of

__all__ = ["grad", "value_and_grad", "jacobian", "jacfwd", "jacrev", "hessian", "vjp", "jvp", "Transformed",
           "fingerprint"]

TRACES_PER_TRANSFORM = 32
"""How many traces one :class:`Transformed` keeps (least recently used go first); the
compiled functions themselves live in the global compile cache."""


# ============================================================================ the trace key
_STATIC_TYPES = (bool, int, str, type(None))
_ATOMS = frozenset({bool, int, str, bytes, type(None)})
_FINGERPRINT_BUDGET = 4096


def _is_static_value(value: Any) -> bool:
    """Python ``int``, ``bool``, ``str``, ``None`` or a tuple of them: static automatically."""
    if type(value) in _STATIC_TYPES:
        return True
    return type(value) is tuple and all(_is_static_value(v) for v in value)


def fingerprint(obj: Any) -> Any:
    """A hashable value that changes whenever ``obj`` could make a traced function
    record another program: a function by its code and the fingerprints of its closure
    cells, defaults and the globals its code reads (helper functions included); numbers
    and strings by value; arrays and tensors by identity, shape and dtype (their values
    are read at each call); containers by their items; other objects by identity and
    their attributes.  Past a budget of items it falls back to identity.

    >>> c = 2.0
    >>> f = lambda x: x * c
    >>> a = fingerprint(f); c = 3.0
    >>> a == fingerprint(f)
    False
    """
    return _Fingerprinter().of(obj, 0)


class _Fingerprinter:
    """One fingerprint walk.  With ``guard=True`` it also records a :class:`_Guard`:
    every binding the walk read (code objects, closure cells, defaults, globals) with the
    object it found, and every array and tensor with the state the fingerprint took from
    it -- or gives up on the guard (``guard = None``) when it meets an object whose
    fingerprint depends on contents that can change in place (containers, objects'
    attributes) or when the budget runs out."""

    def __init__(self, guard: bool = False) -> None:
        self.seen: dict = {}
        self.budget = _FINGERPRINT_BUDGET
        self.guard: _Guard | None = _Guard() if guard else None
        self.random_sources: list = []  # generators met, checked around a trace

    def _unguardable(self) -> None:
        self.guard = None

    def of(self, obj: Any, depth: int) -> Any:
        self.budget -= 1
        kind = type(obj)
        if kind in _ATOMS:
            return (kind.__name__, obj)
        if kind is float or kind is complex:
            return freeze(obj)  # -0.0 is not 0.0
        if kind is types.ModuleType or isinstance(obj, type):
            return ("id", id(obj))
        if isinstance(obj, np.ndarray):
            if self.guard is not None:
                self.guard.arrays.append((obj, obj.shape, obj.dtype))
            return ("ndarray", id(obj), obj.shape, obj.dtype.str)
        if isinstance(obj, np.generic):
            return ("np", obj.dtype.str, obj.tobytes())
        marker = id(obj)
        if marker in self.seen:
            return ("seen", marker)
        self.seen[marker] = True
        if isinstance(obj, Tensor):
            state = _tensor_state(obj)
            if self.guard is not None:
                self.guard.tensors.append((obj, state))
            return ("tensor", marker) + state
        if self.budget <= 0 or depth > 6:
            self._unguardable()
            return ("id", marker)
        if isinstance(obj, types.FunctionType):
            return self.function(obj, depth)
        if isinstance(obj, (types.BuiltinFunctionType, np.ufunc)):
            return ("id", marker)
        self._unguardable()  # what follows reads contents that can change in place
        if isinstance(obj, tracing.RANDOM_SOURCE_TYPES):
            self.random_sources.append(obj)
            return ("id", marker)
        if isinstance(obj, types.MethodType):
            return ("method", self.of(obj.__func__, depth + 1), self.of(obj.__self__, depth + 1))
        if isinstance(obj, (tuple, list, set, frozenset)):
            items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
            return (kind.__name__,) + tuple(self.of(v, depth + 1) for v in items)
        if isinstance(obj, dict):  # OrderedDict of parameters included
            return (kind.__name__,) + tuple((repr(k), self.of(v, depth + 1)) for k, v in obj.items())
        if isinstance(obj, Transformed):  # its caches change as it runs; what it computes is its function's
            return ("transformed", obj.kind, tuple(obj.argnums), self.of(obj.f, depth + 1))
        if isinstance(obj, ClosedFormFunction):
            return ("id", marker)
        partial = getattr(obj, "func", None)
        if callable(partial) and hasattr(obj, "keywords") and hasattr(obj, "args"):  # functools.partial
            return ("partial", self.of(partial, depth + 1), self.of(obj.args, depth + 1),
                    self.of(obj.keywords, depth + 1))
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict):
            return ("object", marker, self.of(attributes, depth + 1))
        return ("id", marker)

    def function(self, f: types.FunctionType, depth: int) -> tuple:
        code, closure, defaults, kwdefaults = f.__code__, f.__closure__, f.__defaults__, f.__kwdefaults__
        contents = tuple(_cell_value(c) for c in (closure or ()))
        names = _global_names(code)
        namespace = f.__globals__
        found = tuple(namespace.get(n, _EMPTY) for n in names)
        if self.guard is not None:
            if any(v is _EMPTY for v in contents):  # a cell not yet assigned: not worth guarding
                self._unguardable()
            else:
                self.guard.functions.append((f, code, closure, contents, defaults, kwdefaults, namespace, names, found))
        cells = tuple(self.of(v, depth + 1) for v in contents)
        fixed = self.of(defaults, depth + 1), self.of(kwdefaults, depth + 1)
        read = tuple((n, self.of(v, depth + 1)) for n, v in zip(names, found) if v is not _EMPTY)
        return ("function", id(code), cells, fixed, read)


def _tensor_state(t: Tensor) -> tuple:
    """What a tensor's fingerprint takes from it besides its identity."""
    return (t.shape, t.dtype.str, t._requires_grad, id(t.grad_fn))


class _Guard:
    """A cheap test that a function's :func:`fingerprint` is unchanged, without walking
    it again: every binding the walk read still holds the very object it held, and every
    array and tensor it met still has the shape, dtype (and grad state) it had.  Built
    only for functions whose fingerprint depends on nothing else (see
    :class:`_Fingerprinter`); it keeps the objects alive, so identity is never confused
    with a recycled ``id``."""

    __slots__ = ("functions", "arrays", "tensors")

    def __init__(self) -> None:
        self.functions: list = []
        self.arrays: list = []
        self.tensors: list = []

    def holds(self) -> bool:
        for f, code, closure, contents, defaults, kwdefaults, namespace, names, found in self.functions:
            if (f.__code__ is not code or f.__closure__ is not closure or f.__defaults__ is not defaults
                    or f.__kwdefaults__ is not kwdefaults):
                return False
            if closure:
                for cell, value in zip(closure, contents):
                    if cell.cell_contents is not value:
                        return False
            get = namespace.get
            for name, value in zip(names, found):
                if get(name, _EMPTY) is not value:
                    return False
        for array, shape, dtype in self.arrays:
            if array.shape != shape or array.dtype is not dtype:
                return False
        for t, state in self.tensors:
            if _tensor_state(t) != state:
                return False
        return True


def _cell_value(cell) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a name not yet assigned)
        return _EMPTY


_EMPTY = object()


def _global_names(code: types.CodeType) -> tuple:
    """The global names ``code`` and the functions defined in it may read, sorted
    (remembered per code object)."""
    known = _GLOBAL_NAMES.get(id(code))
    if known is not None and known[0] is code:
        return known[1]
    names: set = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    if len(_GLOBAL_NAMES) > 4096:
        _GLOBAL_NAMES.clear()
    _GLOBAL_NAMES[id(code)] = (code, tuple(sorted(names)))
    return _GLOBAL_NAMES[id(code)][1]


_GLOBAL_NAMES: dict = {}


# ============================================================================ one call's arguments
class _Arguments:
    """One call's arguments sorted into *static* values (part of the trace key) and
    *dynamic* arrays (read at every call), with the tensors the caller passed.

    An argument that is a pytree (tuples, lists, dicts, namedtuples: :mod:`symgrad.pytree`)
    is sorted leaf by leaf, its structure part of the key; a differentiated one gets its
    results in the same structure (``None`` leaves stay ``None``), as in JAX."""

    __slots__ = ("key", "arrays", "paths", "names", "given", "positional", "keywords", "argnums", "trees",
                 "diff", "groups")

    def __init__(self, transform: "Transformed", args: tuple, kwargs: dict) -> None:
        n = len(args)
        self.argnums = [i + n if i < 0 else i for i in transform.argnums]  # negative: from the end, as in JAX
        statics = {i + n if i < 0 else i for i in transform.static_argnums}
        static_names = transform.static_argnames
        names = transform.parameter_names
        self.arrays: list[np.ndarray] = []
        self.paths: list = []  # argument position (int) or keyword (str) of each array
        self.names: list[str] = []  # the traced leaf's name of each array
        self.given: list = []  # the Tensor the caller passed for each array, or None
        self.positional: list = list(args)  # static values in place; dynamic ones replaced by leaves
        self.keywords: dict = dict(kwargs)
        self.trees: dict = {}  # path -> (structure, slots) of a pytree argument
        key = []
        for i, given in zip(self.argnums, transform.argnums):
            if not 0 <= i < n:
                raise TypeError(f"argnums={given} but {transform.__name__} was called with {n} positional arguments")
        for i, value in enumerate(args):
            static = i in statics or (static_names and i < len(names) and names[i] in static_names)
            name = names[i] if i < len(names) else f"arg{i}"
            key.append(self._sort(i, name, value, static, i in self.argnums, transform))
        for name in sorted(kwargs):
            static = name in static_names or (name in names and names.index(name) in statics)
            key.append((name, self._sort(name, name, kwargs[name], static, False, transform)))
        self.key = tuple(key)
        self.names = _distinct(self.names)
        # the differentiated arrays, and how their results regroup into each argument's structure
        self.diff: list[int] = []
        self.groups: list = []
        for i in self.argnums:
            if i in self.trees:
                structure, slots = self.trees[i]
                self.diff += [s for s in slots if isinstance(s, int)]
                self.groups.append((structure, [isinstance(s, int) for s in slots]))
            else:
                self.diff.append(self.paths.index(i))
                self.groups.append((None, [True]))

    def _sort(self, path: Any, name: str, value: Any, static: bool, differentiated: bool,
              transform: "Transformed") -> tuple:
        """This argument's entry of the trace key; a dynamic one's array is kept."""
        what = _ArgumentName(path)
        if differentiated and static:
            raise ValueError(f"{what} is both differentiated (argnums) and static (static_argnums/static_argnames)")
        if static or (not differentiated and not isinstance(value, Tensor) and _is_static_value(value)):
            return _static_entry(value, what, transform)
        if pytree.is_node(value):
            leaves, structure = pytree.flatten(value)
            slots, entries = [], []
            for leaf, leaf_name in zip(leaves, pytree.leaf_names(structure, name)):
                if leaf is None or (not differentiated and not isinstance(leaf, Tensor) and _is_static_value(leaf)):
                    slots.append(("static", leaf))
                    entries.append(_static_entry(leaf, what, transform))
                else:
                    slots.append(len(self.arrays))
                    entries.append(self._keep(path, leaf_name, leaf, differentiated, what, transform))
            self.trees[path] = (structure, slots)
            return ("tree", structure, tuple(entries))
        return self._keep(path, name, value, differentiated, what, transform)

    def _keep(self, path: Any, name: str, value: Any, differentiated: bool, what: "_ArgumentName",
              transform: "Transformed") -> tuple:
        """Keep one dynamic array (of an argument, or a leaf of one); its key entry."""
        if isinstance(value, Tensor):
            array, given = value._data, value
        else:
            try:
                array = np.asarray(value)
            except Exception as err:  # noqa: BLE001  (anything NumPy refuses)
                raise TypeError(f"{what} of {transform.__name__} is not an array, a number or a tensor "
                                f"({type(value).__name__}: {err}); pass it with static_argnums or through a "
                                "closure") from None
            given = None
        if array.dtype.kind not in "fciub":
            raise TypeError(f"{what} of {transform.__name__} has dtype {array.dtype}, which is not numeric; pass a "
                            "non-array value with static_argnums (or static_argnames)")
        if differentiated and array.dtype.kind not in "fc":
            if array.dtype.kind == "b":
                raise TypeError(f"{what} is differentiated (argnums) but is boolean; differentiate float arguments")
            array = array.astype(np.float64)  # grad(f)(3): an integer point of a real function
        self.arrays.append(array)
        self.paths.append(path)
        self.names.append(name)
        self.given.append(given)
        return ("dynamic", array.shape, array.dtype.str)

    def plain_signature(self, args: tuple, kwargs: dict) -> tuple | None:
        """``(shape, dtype)`` of each argument when every argument is a NumPy array taken
        as it is (dynamic, no keywords, nothing converted), else None: the calls
        :meth:`Transformed._prepare` can answer from its last trace without sorting."""
        if kwargs or len(self.arrays) != len(args) or any(a is not b for a, b in zip(self.arrays, args)):
            return None
        if any(type(a) is not np.ndarray for a in args):
            return None
        return tuple((a.shape, a.dtype) for a in args)

    def again(self, args: tuple) -> "_Arguments":
        """This sorting for another call whose arguments have :meth:`plain_signature`'s
        signature: the same key, paths and argument numbers, the new arrays."""
        other = object.__new__(_Arguments)
        other.key, other.paths, other.names, other.argnums = self.key, self.paths, self.names, self.argnums
        other.trees, other.diff, other.groups = self.trees, self.diff, self.groups
        other.arrays, other.positional, other.keywords = list(args), list(args), {}
        other.given = [None] * len(args)
        return other

    def call(self, leaves: list) -> tuple[list, dict]:
        """The arguments to call the traced function with: ``leaves`` in the dynamic places."""
        positional, keywords = list(self.positional), dict(self.keywords)
        for path, leaf in zip(self.paths, leaves):
            if path in self.trees:
                continue
            if isinstance(path, int):
                positional[path] = leaf
            else:
                keywords[path] = leaf
        for path, (structure, slots) in self.trees.items():
            tree = structure.unflatten([leaves[s] if isinstance(s, int) else s[1] for s in slots])
            if isinstance(path, int):
                positional[path] = tree
            else:
                keywords[path] = tree
        return positional, keywords

    def regroup(self, results: Sequence[Any]) -> list:
        """One result per differentiated argument from one per differentiated array: a
        pytree argument's results in its structure (``None`` where it held ``None``)."""
        if not self.trees:  # plain arguments: one result each already
            return list(results)
        out, pending = [], iter(results)
        for structure, dynamic in self.groups:
            values = [next(pending) if d else None for d in dynamic]
            out.append(values[0] if structure is None else structure.unflatten(values))
        return out

    def flat_like(self, values: Sequence[Any], what: str) -> list:
        """The inverse of :meth:`regroup`: one value per differentiated argument (a pytree
        of its argument's structure) to one per differentiated array.  Where the argument
        holds ``None`` the value must be ``None`` too (JAX's empty subtree)."""
        flat = []
        for (structure, dynamic), value, i in zip(self.groups, values, self.argnums):
            if structure is None:
                flat.append(value)
                continue
            leaves, given = pytree.flatten(value)
            if given != structure:
                raise ValueError(f"the {what} for argument {i} has the structure {given}, but the argument has "
                                 f"{structure}")
            for leaf, d, path in zip(leaves, dynamic, pytree.leaf_paths(structure)):
                if d:
                    flat.append(leaf)
                elif leaf is not None:
                    raise ValueError(f"the {what} for argument {i}{path} must be None, as the argument holds None "
                                     f"there, got {type(leaf).__name__}")
        return flat

    def where(self, k: int) -> str:
        """Dynamic array ``k`` for a message: ``argument 0 (x)``, or for a pytree's leaf
        ``argument 0['w'] (params_w)`` (the path as :func:`symgrad.pytree.leaf_paths` writes it)."""
        path = self.paths[k]
        label = str(_ArgumentName(path))
        if path in self.trees:
            structure, slots = self.trees[path]
            label += pytree.leaf_paths(structure)[slots.index(k)]
        return f"{label} ({self.names[k]})"


def _static_entry(value: Any, what: "_ArgumentName", transform: "Transformed") -> tuple:
    """A static value's entry of the trace key."""
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"static {what} of {transform.__name__} must be hashable, got {type(value).__name__} "
                        f"{value!r}; pass arrays as dynamic arguments (not in static_argnums)") from None
    try:  # numbers, strings and tuples of them by their exact value (-0.0 is not 0.0)
        return ("static", type(value).__name__, freeze(value))
    except TypeError:  # other objects by their own hash and equality, as jax.jit does
        return ("static", type(value).__name__, value)


def _distinct(names: list[str]) -> list[str]:
    """``names`` with a suffix added where one repeats (a pytree leaf ``p_w`` beside a
    parameter called ``p_w``): two traced leaves never share a name."""
    taken: set = set()
    out = []
    for name in names:
        unique, k = name, 1
        while unique in taken:
            unique, k = f"{name}_{k}", k + 1
        taken.add(unique)
        out.append(unique)
    return out


class _PlainCall:
    """The last call of a transform whose key can be re-checked cheaply: the guard of its
    function's fingerprint, its arguments' shapes and dtypes, and what it ran."""

    __slots__ = ("guard", "signature", "call", "problem", "compiled")

    def __init__(self, guard: _Guard, signature: tuple, call: _Arguments, problem: "_Problem",
                 compiled: Any) -> None:
        self.guard, self.signature, self.call, self.problem, self.compiled = guard, signature, call, problem, compiled


class _ArgumentName:
    """``argument 1`` or ``keyword argument 'k'``, formatted only into an error message."""

    __slots__ = ("path",)

    def __init__(self, path: Any) -> None:
        self.path = path

    def __str__(self) -> str:
        return f"argument {self.path}" if isinstance(self.path, int) else f"keyword argument {self.path!r}"


# ============================================================================ traced problems
class _Problem:
    """A traced function (or an expression) fixed for one trace key: where each dynamic
    argument enters the compiled function's inputs, how to read the captured inputs, and
    -- built only when a compiled function has to be made (:meth:`materialize`) -- the
    input symbols and the value (and aux) expressions."""

    def __init__(self, refs: list, arg_positions: list, outputs: "_OutputTree", key: Any, arg_shapes: list,
                 arg_dtypes: list, build: Callable[[], tuple], *, derived: Sequence[tuple] = (), n_aux: int = 0,
                 aux_rebuild: Callable | None = None, as_recorded: bool = False, diff: Sequence[int] = ()) -> None:
        self.refs = refs  # per compiled input: the InputRef of a captured input, None for an argument
        self.arg_positions = arg_positions
        self.derived = list(derived)  # (argument, input position, compute) for arrays computed from an argument
        self.outputs = outputs
        self.n_aux = n_aux
        self.aux_rebuild = aux_rebuild
        self.as_recorded = as_recorded  # a traced function's form, unsimplified (Segment.build)
        self.key = key
        self.arg_shapes = arg_shapes
        self.arg_dtypes = arg_dtypes
        self.diff = list(diff)  # the differentiated arguments, as indices of the dynamic ones
        self._build = build
        self._built: tuple | None = None
        self.captured = [t for t in (ref.recorded_tensor() for ref in refs if ref is not None) if t is not None]
        # the usual case: the inputs are the arguments themselves, in order
        self._arguments_only = list(arg_positions) == list(range(len(refs))) and not self.derived

    def materialize(self) -> tuple[list, list, list]:
        """``(input symbols, value expressions, aux expressions)``, built once: one value
        expression per computed leaf of :attr:`outputs`."""
        if self._built is None:
            if self._build is None:
                raise RuntimeError("internal error: this trace was released before its closed form was built")
            self._built = self._build()
        return self._built

    def release(self) -> None:
        """Forget the recorded graph (its arrays) once the compiled function exists."""
        self._build = None

    def inputs(self, arrays: Sequence[np.ndarray]) -> list:
        """The compiled function's input arrays for one call's dynamic ``arrays``."""
        if self._arguments_only:
            return list(arrays)
        values = [None if ref is None else ref.value() for ref in self.refs]
        for position, array in zip(self.arg_positions, arrays):
            if position is not None:
                values[position] = array
        for argument, position, compute in self.derived:
            values[position] = compute(arrays[argument])
        return values

    def wrt(self) -> list:
        """The symbols of the differentiated arguments."""
        symbols = self.materialize()[0]
        out = []
        for i in self.diff:
            position = self.arg_positions[i]
            if position is None:  # the function does not use this argument
                out.append(EngineArray(f"unused{i}", self.arg_shapes[i], self.arg_dtypes[i]))
            else:
                out.append(symbols[position])
        return out


def _trace(f: Callable, call: _Arguments, has_aux: bool, random_sources: Sequence = ()) -> _Problem:
    from .derive.graph import Segment

    # Every floating argument requires grad while tracing, differentiated or not, so that
    # what f computes from it is recorded (and recomputed at each call).
    diff = call.diff
    leaves = [tape.tensor(a, requires_grad=(k in diff or a.dtype.kind == "f"), name=name)
              for k, (a, name) in enumerate(zip(call.arrays, call.names))]
    positional, keywords = call.call(leaves)
    with tape.enable_grad(), tracing.tracing(leaves) as trace, tracing.refusing_random_draws(f, random_sources):
        result = f(*positional, **keywords)
        aux_tensors: list = []
        rebuild = None
        if has_aux:
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                raise TypeError(f"has_aux=True needs the function to return a pair (output, aux), got "
                                f"{type(result).__name__}")
            result, aux = result
            aux_tensors, rebuild = _flatten_aux(aux)
        outs, out_tree = _output_tensors(result)
        tracing.check_use(outs + aux_tensors)
    segment = Segment(outs + aux_tensors)
    positions = [segment.input_position(t) for t in leaves]
    derived = []
    for k, leaf in enumerate(leaves):
        for array, compute in trace.derived_from(leaf):
            position = segment.index_position(array)
            if position is None:
                position = segment.data_position(array)
            if position is not None:
                derived.append((k, position, compute))
    # the key: the graph, the output's structure (which of the graph's outputs are the value's
    # leaves, the rest being aux), and where each argument (and each array computed from one) enters it
    key = (segment.key, out_tree.key, tuple(positions), tuple((k, p) for k, p, _ in derived),
           tuple((a.shape, a.dtype.str) for a in call.arrays))
    # the compiled function's inputs: the function's own arguments first, in order, then what it captured
    first = [p for p in positions if p is not None]
    order = first + [i for i in range(len(segment.inputs)) if i not in first]
    refs = [None if i in first else segment.inputs[i] for i in order]
    shapes = out_tree.shapes + [tuple(t.shape) for t in aux_tensors]

    def build() -> tuple:
        symbols, exprs = segment.build(as_recorded=True)
        exprs = [exact(e, shape) if shape else e for e, shape in zip(exprs, shapes)]
        return [symbols[i] for i in order], exprs[:len(outs)], exprs[len(outs):]

    return _Problem(refs, [None if p is None else order.index(p) for p in positions], out_tree, key,
                    [a.shape for a in call.arrays], [a.dtype for a in call.arrays], build,
                    derived=[(k, order.index(p), compute) for k, p, compute in derived], n_aux=len(aux_tensors),
                    aux_rebuild=rebuild, as_recorded=True, diff=diff)


class _OutputTree:
    """What a traced function returns: one tensor (:attr:`single`), or a pytree (tuples,
    lists, dicts, namedtuples) whose leaves are tensors, arrays or numbers -- each one value
    output of the compiled function, a *computed* leaf -- and ``None``, which stays ``None``
    in every result (JAX's empty subtree)."""

    __slots__ = ("structure", "present", "shapes", "paths")

    def __init__(self, structure: pytree.TreeDef, present: Sequence[bool], shapes: Sequence[tuple]) -> None:
        self.structure = structure
        self.present = tuple(present)  # per leaf: computed (True) or None (False)
        self.shapes = [tuple(s) for s in shapes]  # per computed leaf
        self.paths = [p for p, kept in zip(pytree.leaf_paths(structure), self.present) if kept]

    @property
    def single(self) -> bool:
        return self.structure.is_leaf

    @property
    def key(self) -> tuple:
        """This structure's part of the trace key."""
        return self.structure, self.present

    def where(self, k: int) -> str:
        """Computed leaf ``k`` for a message: ``the output`` or ``the output['a'][0]``."""
        return f"the output{self.paths[k]}"

    def names(self, prefix: str) -> list[str]:
        """A name for each computed leaf: ``prefix`` alone for one tensor, else ``prefix``
        followed by the keys leading to the leaf (:func:`symgrad.pytree.leaf_names`)."""
        if self.single:
            return [prefix]
        return [n for n, kept in zip(pytree.leaf_names(self.structure, prefix), self.present) if kept]

    def rebuild(self, values: Sequence[Any]) -> Any:
        """The output's structure holding ``values``, one per computed leaf."""
        pending = iter(values)
        return self.structure.unflatten([next(pending) if kept else None for kept in self.present])

    def cotangents(self, cotangent: Any) -> list:
        """The upstream gradients of a VJP, one per computed leaf, from a ``cotangent`` of
        the output's structure, each leaf of its output's shape (``None`` where the output
        holds ``None``), as JAX's ``vjp`` takes them."""
        leaves, structure = pytree.flatten(cotangent)
        if structure != self.structure:
            raise ValueError(f"vjp_fn needs a cotangent with the structure of the function's output, {self.structure}, "
                             f"got {structure}")
        seeds, shapes, paths = [], iter(self.shapes), pytree.leaf_paths(structure)
        for leaf, kept, path in zip(leaves, self.present, paths):
            if not kept:
                if leaf is not None:
                    raise ValueError(f"the output{path} is None, so its cotangent must be None too, got "
                                     f"{type(leaf).__name__}")
                continue
            shape = next(shapes)
            seed = leaf if isinstance(leaf, Tensor) else np.asarray(leaf)
            if seed.dtype.kind not in "fiu":
                raise TypeError(f"the cotangent for the output{path} has dtype {seed.dtype}; a cotangent holds real "
                                f"numbers (a float array of shape {shape})")
            if tuple(seed.shape) != shape:
                raise ValueError(f"vjp_fn needs a cotangent of the value's shape {shape} for the output{path}, got "
                                 f"shape {tuple(seed.shape)}")
            seeds.append(seed if isinstance(seed, Tensor) else seed.astype(np.float64, copy=False))
        return seeds


def _output_tensors(result: Any) -> tuple[list, _OutputTree]:
    """The tensors a traced (or eagerly run) function returned, one per computed leaf of
    its output, and the output's :class:`_OutputTree`; a leaf that is an array or a
    number becomes a constant tensor (its derivative is zero)."""
    leaves, structure = pytree.flatten(result)
    paths = pytree.leaf_paths(structure)
    tensors, present = [], []
    for leaf, path in zip(leaves, paths):
        present.append(leaf is not None)
        if leaf is None:
            continue
        if not isinstance(leaf, Tensor):
            try:
                leaf = tape.as_tensor(leaf)
            except Exception:  # noqa: BLE001  (anything NumPy refuses)
                raise TypeError(f"the output{path} of the function is of type {type(leaf).__name__}; a transform's output "
                                "is a tensor (or an array or a number), or a tuple, list, dict or namedtuple of them; "
                                "return other values as aux with has_aux=True") from None
        if leaf.dtype.kind != "f":
            where = "the function returns" if structure.is_leaf else f"the output{path} of the function is"
            raise TypeError(f"{where} a tensor of dtype {leaf.dtype} (shape {tuple(leaf.shape)}), but a transform "
                            "differentiates floating-point outputs; convert it (.float(), .double()), or return it as "
                            "aux with has_aux=True")
        tensors.append(leaf)
    if not tensors:
        raise TypeError(f"the function returns {result!r}, which holds no tensor: a transform needs an output to "
                        "differentiate")
    return tensors, _OutputTree(structure, present, [tuple(t.shape) for t in tensors])


def _flatten_aux(aux: Any) -> tuple[list, Callable]:
    """The tensors in ``aux`` (a pytree of tensors and other values) and a function
    rebuilding ``aux`` from their values (the other leaves kept as they are)."""
    leaves, structure = pytree.flatten(aux)
    tensors = [v for v in leaves if isinstance(v, Tensor)]
    kept = [None if isinstance(v, Tensor) else v for v in leaves]
    computed = [isinstance(v, Tensor) for v in leaves]

    def rebuild(values: list) -> Any:
        pending = iter(values)
        return structure.unflatten([next(pending) if c else v for c, v in zip(computed, kept)])

    return tensors, rebuild


def _expression_problem(expr: sp.Expr, args: Sequence[sp.Symbol], diff: Sequence[int]) -> _Problem:
    symbols = list(args)
    missing = sorted(free_symbols(expr) - set(symbols), key=str)
    if missing:
        raise ValueError(f"the expression also depends on {missing}; list them in args=")
    expr = intern(expr)  # one object per structure, as the derivatives built from it (no deep comparisons)
    outputs = _OutputTree(pytree.LEAF, (True,), [shape_of(expr)])
    return _Problem([None] * len(symbols), list(range(len(symbols))), outputs, ("sympy", expr, tuple(symbols)),
                    [shape_of(s) for s in symbols], [np.dtype(getattr(s, "array_dtype", "float64")) for s in symbols],
                    lambda: (symbols, [expr], []), diff=diff)


# ============================================================================ the callable
class Transformed:
    """A compiled derivative transform; call it like the original function.

    ``closed_forms`` maps output names to SymPy closed forms of the most recent trace;
    ``source`` is the generated code (NumPy, or C for a C ``backend``); ``compiled`` the
    :class:`~symgrad.symbolic.codegen.compile.ClosedFormFunction` its backend made (by
    default an :class:`~symgrad.symbolic.codegen.backends.auto.AutoFunction`).
    """

    def __init__(self, kind: str, f: Any, argnums: Any, args: Sequence[sp.Symbol] | None, simplify: bool,
                 backend: str = "auto", *, has_aux: bool = False, static_argnums: Any = (),
                 static_argnames: Any = ()) -> None:
        from .codegen.backends import get_backend

        self.kind = kind
        self.f = f
        self.simplify = simplify
        self.backend = get_backend(backend).name
        self.has_aux = bool(has_aux)
        self._single = isinstance(argnums, (int, np.integer, sp.Symbol))
        self.is_expression = isinstance(f, sp.Basic)
        self.static_argnums = _int_tuple(static_argnums, "static_argnums")
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        if self.is_expression:
            if self.has_aux or self.static_argnums or self.static_argnames:
                raise TypeError("has_aux, static_argnums and static_argnames apply to Python functions, not to a "
                                "SymPy expression")
            wrt = [argnums] if self._single else list(argnums)
            if all(isinstance(w, (int, np.integer)) for w in wrt):
                if args is None:
                    args = sorted(free_symbols(f), key=str)
                wrt = [args[i] for i in wrt]
            if args is None:
                args = list(wrt) + sorted(free_symbols(f) - set(wrt), key=str)
            self.args = list(args)
            self.argnums = [self.args.index(w) for w in wrt]
            self._problem = _expression_problem(f, self.args, self.argnums)
            self.parameter_names: list[str] = []
        else:
            if not callable(f):
                raise TypeError(f"{kind} needs a Python function or a SymPy expression, got {type(f).__name__}")
            self.args = None
            self.argnums = list(_int_tuple(argnums, "argnums"))
            self._problem = None
            self.parameter_names = pytree.parameter_names(f)
        if not self.is_expression and not self.argnums:
            raise ValueError(f"{kind} needs at least one argument to differentiate (argnums is empty)")
        self._traces: OrderedDict = OrderedDict()
        self._last_plain_call: _PlainCall | None = None
        self.compiled: ClosedFormFunction | None = None
        self.__name__ = f"{kind}_{getattr(f, '__name__', 'expr')}"

    def __getstate__(self) -> dict:
        """Pickled (to Dask workers) without its traces: each process traces anew."""
        state = dict(self.__dict__)
        state["_traces"] = OrderedDict()
        state["_last_plain_call"] = None
        return state

    # ------------------------------------------------------------------ compile
    def _prepare(self, args: Sequence[Any], kwargs: dict):
        """``(problem, compiled, arguments)`` for one call, tracing and compiling on a new key."""
        if self.is_expression:
            if kwargs:
                raise TypeError("a transformed SymPy expression takes its inputs positionally")
            if len(args) != len(self.args):
                raise TypeError(f"expected {len(self.args)} inputs {self.args}, got {len(args)}")
            call = _ExpressionArguments(args)
            if self.compiled is not None:  # one expression, one compiled function: no cache lookup per call
                return self._problem, self.compiled, call
            problem = self._problem
        else:
            last = self._repeated_plain_call(args, kwargs)
            if last is not None:  # the last call's key, without sorting the arguments or walking the function again
                self.compiled = last.compiled
                return last.problem, last.compiled, last.call.again(args)
            call = _Arguments(self, args, kwargs)
            walk = _Fingerprinter(guard=True)
            trace_key = (call.key, walk.of(self.f, 0))
            entry = self._traces.get(trace_key)
            compiled = entry[1]() if entry is not None else None
            if compiled is not None:  # traced and compiled before (and not evicted from the global cache since)
                self._traces.move_to_end(trace_key)
                self.compiled = compiled
                self._remember_plain_call(walk.guard, call, args, kwargs, entry[0], compiled)
                return entry[0], compiled, call
            problem = _trace(self.f, call, self.has_aux, walk.random_sources)
        key = (self.kind, problem.key, tuple(problem.diff), self.simplify, self.backend)
        compiled = cached(key, lambda: self._build(problem))
        if not self.is_expression:
            problem.release()
            self._traces[trace_key] = (problem, weakref.ref(compiled))
            while len(self._traces) > TRACES_PER_TRANSFORM:
                self._traces.popitem(last=False)
            self._remember_plain_call(walk.guard, call, args, kwargs, problem, compiled)
        self.compiled = compiled
        return problem, compiled, call

    def _repeated_plain_call(self, args: tuple, kwargs: dict) -> "_PlainCall | None":
        """The last call when this one has its key for sure: plain NumPy arrays of the same
        shapes and dtypes, and a function whose guarded bindings all hold."""
        last = self._last_plain_call
        if last is None or kwargs or len(args) != len(last.signature) or not last.guard.holds():
            return None
        for a, (shape, dtype) in zip(args, last.signature):
            if type(a) is not np.ndarray or a.shape != shape or a.dtype is not dtype:
                return None
        return last

    def _remember_plain_call(self, guard: "_Guard | None", call: _Arguments, args: tuple, kwargs: dict,
                             problem: _Problem, compiled: Any) -> None:
        """Keep this call for :meth:`_prepare`'s shortcut when its key can be re-checked
        cheaply: the function's fingerprint has a :class:`_Guard` and the arguments are
        plain NumPy arrays (the usual training step); otherwise forget the last one."""
        signature = call.plain_signature(args, kwargs) if guard is not None else None
        self._last_plain_call = None if signature is None else _PlainCall(guard, signature, call, problem, compiled)

    def _check_outputs(self, tree: _OutputTree) -> None:
        """Refuse an output ``grad``, ``value_and_grad`` or ``hessian`` cannot differentiate:
        the first two need one tensor of one element (JAX's "scalar output"), ``hessian``
        one element in every output leaf."""
        if self.kind in ("grad", "value_and_grad") and not tree.single:
            raise TypeError(f"{self.kind} is only defined for a function with one scalar output, but the function "
                            f"returns a {tree.structure.kind.__name__} of outputs ({tree.structure}): use jacobian() or "
                            "vjp() for several outputs, or return (output, aux) with has_aux=True")
        if self.kind in ("grad", "value_and_grad", "hessian"):
            for k, shape in enumerate(tree.shapes):
                if size_of(shape) != 1:
                    where = "" if tree.single else f" in {tree.where(k)}"
                    raise ValueError(f"{self.kind} needs a function with one output element{where}, got shape "
                                     f"{shape}: use jacobian() or vjp() (or .sum() the output)")

    def _build(self, problem: _Problem) -> ClosedFormFunction:
        symbols, values, aux = problem.materialize()
        tree = problem.outputs
        self._check_outputs(tree)
        wrt = problem.wrt()
        names = [str(w) for w in wrt]
        if self.kind in ("grad", "value_and_grad", "hessian"):
            # one tensor: the gradient of its one element; a pytree (hessian only): the gradient
            # of sum_l u_l * output_l, each output's Hessian at the one-hot weights u
            out_seeds = [sp.S.One] if tree.single else [
                EngineArray(n, shape, "float64") for n, shape in zip(tree.names("u"), tree.shapes)]
            grads = adjoints(list(zip(values, out_seeds)), wrt, as_recorded=problem.as_recorded)
            grads = [exact(g, shape_of(w)) if shape_of(w) else g for g, w in zip(grads, wrt)]
            if self.kind == "hessian":
                seeds = [EngineArray(f"v_{n}", shape_of(w), getattr(w, "array_dtype", "float64"))
                         for n, w in zip(names, wrt)]
                # one VJP of the gradient: row i of the Hessian is its value at e_i
                from .forms.structural import Sum

                with evaluate(not problem.as_recorded):
                    inner = sp.Add(*[Sum.of(g * s) if shape_of(w) else g * s for g, s, w in zip(grads, seeds, wrt)])
                rows = adjoints([(inner, sp.S.One)], wrt, as_recorded=problem.as_recorded)
                outputs = [exact(r, shape_of(w)) if shape_of(w) else r for r, w in zip(rows, wrt)]
                out_names = [f"hvp_{n}" for n in names]
                extra = ([] if tree.single else out_seeds) + seeds
            else:
                outputs = (values if self.kind == "value_and_grad" else []) + grads
                out_names = (["value"] if self.kind == "value_and_grad" else []) + [f"grad_{n}" for n in names]
                extra = []
        elif self.kind in ("jacobian", "vjp"):
            seeds = [EngineArray(n, shape, "float64") for n, shape in zip(tree.names("g"), tree.shapes)]
            tops = [exact(v, shape) if shape else v for v, shape in zip(values, tree.shapes)]
            grads = adjoints(list(zip(tops, seeds)), wrt, as_recorded=problem.as_recorded)
            outputs = (values if self.kind == "vjp" else []) + [
                exact(g, shape_of(w)) if shape_of(w) else g for g, w in zip(grads, wrt)]
            out_names = (tree.names("value") if self.kind == "vjp" else []) + [f"vjp_{n}" for n in names]
            extra = seeds
        elif self.kind == "jvp":
            tangents = [EngineArray(f"d{n}", shape_of(w), getattr(w, "array_dtype", "float64"))
                        for n, w in zip(names, wrt)]
            totals = jvp_exprs(values, wrt, tangents, as_recorded=problem.as_recorded)
            outputs, out_names, extra = values + totals, tree.names("value") + tree.names("tangent"), tangents
        else:  # pragma: no cover
            raise ValueError(f"unknown transform {self.kind}")
        if self.simplify:
            from .printing.printers import tidy

            outputs = [tidy(o) for o in outputs]
        outputs += aux
        out_names += [f"aux{k}" for k in range(len(aux))]
        inputs = symbols + extra
        from .codegen.backends import get_backend

        return get_backend(self.backend).compile(inputs, outputs, input_names=[str(s) for s in inputs],
                                                 output_names=out_names, output_shapes=[None] * len(outputs),
                                                 name=self.kind)

    # ------------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any):
        if self.kind in ("vjp", "jvp"):
            raise TypeError(f"call symgrad's {self.kind}(f, ...) directly; it returns values, not a function")
        if self.kind in ("grad", "value_and_grad") and not self.has_aux:
            out = self._training_step(args, kwargs)
            if out is not None:
                return out
        run = self._run(args, kwargs)
        n = len(run.diff)
        if self.kind == "grad":
            out = run.grads(run.evaluate()[:n])
        elif self.kind == "value_and_grad":
            values = run.evaluate()
            out = (values[0], run.grads(values[1:1 + n]))
        elif self.kind == "jacobian":  # the output's structure outside, the arguments' inside, as in JAX
            out = run.problem.outputs.rebuild([run.grads(blocks, cast=False) for blocks in run.jacobian()])
        else:
            out = run.problem.outputs.rebuild([run.grads([run.grads(row, cast=False) for row in blocks], cast=False,
                                                         shaped=True) for blocks in run.hessian()])
        if self.has_aux:
            aux = run.aux()
            out = ((out[0], aux), out[1]) if self.kind == "value_and_grad" else (out, aux)
        run.cross_check(out)
        return out

    def _training_step(self, args: tuple, kwargs: dict) -> Any:
        """``grad``/``value_and_grad`` of a repeated plain call (the training step of a
        loop over NumPy arrays) straight through the compiled function -- what
        :class:`_Run` does for it, without building one -- or None when the call needs
        more: another key, tensors to record (a captured tensor requires grad, or a trace
        is running), or the ``"both"`` engine's cross-check."""
        last = self._repeated_plain_call(args, kwargs)
        if last is None or not isinstance(last.compiled, ClosedFormFunction) or tape.get_backward_engine() == "both":
            return None
        problem = last.problem
        if problem.captured and (tracing.ACTIVE_TRACES or any(
                t._requires_grad or t.grad_fn is not None for t in problem.captured)):
            return None
        self.compiled = last.compiled
        outputs = last.compiled.outputs_of(problem.inputs(args))
        first = 1 if self.kind == "value_and_grad" else 0
        grads = [_shaped_array(g, args[i], True) for g, i in zip(outputs[first:], problem.diff)]
        grads = grads[0] if self._single else tuple(grads)
        return (outputs[0], grads) if first else grads

    def _run(self, args: Sequence[Any], kwargs: dict) -> "_Run":
        problem, compiled, call = self._prepare(args, kwargs)
        return _Run(self, problem, compiled, call)

    # ------------------------------------------------------------------ inspection
    @property
    def closed_forms(self) -> dict:
        """Output name -> SymPy closed form, of the most recent compilation."""
        self._need_compiled()
        return dict(self.compiled.exprs)

    @property
    def source(self) -> str:
        """The generated source of the most recent compilation: NumPy code, or C (a C backend, or
        ``"auto"`` once it has moved the function to C)."""
        self._need_compiled()
        return self.compiled.source

    def _need_compiled(self) -> None:
        if self.compiled is None:
            if self.is_expression:
                self._prepare([np.zeros(shape_of(s)) for s in self.args], {})
            else:
                raise RuntimeError(f"{self.__name__} has not been called yet: its closed forms depend on the input "
                                   "shapes, so call it once first")

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        """The closed forms in a notebook as ``diff`` shows them (:func:`~.graph.evaluated`:
        the engine's forms are built unevaluated), bounded (see :mod:`.notebook`)."""
        from .derive.graph import evaluated
        from .printing.notebook import form_bundle

        self._need_compiled()
        shown = [(name, evaluated(expr)) for name, expr in self.compiled.exprs.items()]
        return form_bundle(shown, rest=".closed_forms (the engine's forms), .source")

    def _repr_latex_(self) -> str:
        return self._repr_mimebundle_()["text/latex"]

    def __repr__(self) -> str:
        target = f"expression {self.f}" if self.is_expression else getattr(self.f, "__name__", repr(self.f))
        return f"<symgrad {self.kind} of {target}, argnums={self.argnums}>"


def _int_tuple(value: Any, what: str) -> tuple:
    """Argument positions as a tuple of ints (negative ones count from the end)."""
    values = (value,) if isinstance(value, (int, np.integer)) else tuple(value) if isinstance(value, (
        tuple, list)) else None
    if values is None or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
        raise TypeError(f"{what} takes argument positions (whole numbers), got {value!r}")
    return tuple(int(v) for v in values)


class _ExpressionArguments:
    """The arguments of a transformed SymPy expression: all dynamic, in order."""

    def __init__(self, args: Sequence[Any]) -> None:
        self.given = [a if isinstance(a, Tensor) else None for a in args]
        self.arrays = [np.asarray(a._data if g is not None else a) for a, g in zip(args, self.given)]
        self.paths = list(range(len(args)))

    @staticmethod
    def regroup(results: Sequence[Any]) -> list:
        return list(results)

    @staticmethod
    def flat_like(values: Sequence[Any], what: str) -> list:
        return list(values)

    @staticmethod
    def where(k: int) -> str:
        return f"argument {k}"


# ============================================================================ one evaluation
class _Run:
    """One call of a transform: its inputs, evaluated by the compiled NumPy (or C)
    function, or -- when an input requires grad or is traced -- by tensor ops that record
    the closed forms in the graph (see the module)."""

    def __init__(self, transform: Transformed, problem: _Problem, compiled: Any, call: Any) -> None:
        self.transform = transform
        self.problem = problem
        self.compiled = compiled
        self.call = call
        self.diff = problem.diff
        self.inputs = problem.inputs(call.arrays)
        self.tensor_env = self._tensor_env()
        self.outputs: list | None = None

    # -------------------------------------------------------------- which evaluation
    def _tensor_env(self) -> dict | None:
        """Symbol -> tensor when the results must be recorded, else None."""

        if not is_grad_enabled():
            return None
        traced = tracing.ACTIVE_TRACES
        for t in (*self.call.given, *self.problem.captured):
            if t is not None and (t._requires_grad or t.grad_fn is not None or (traced and tracing.is_traced(t))):
                break
        else:
            return None
        env = {}
        symbols = self.compiled.symbols  # those its closed forms use (the key fixes their order)
        for symbol, ref, array in zip(symbols, self.problem.refs, self.inputs):
            env[symbol] = Tensor(np.asarray(array)) if ref is None else ref.as_tensor(array)
        for position, given in zip(self.problem.arg_positions, self.call.given):
            if position is not None and given is not None:
                env[symbols[position]] = given if given.dtype.kind in "fc" else Tensor(
                    self.inputs[position])
        return env

    def _outputs(self, extra: Sequence[Any] = ()) -> list:
        """The compiled function's outputs at this call's inputs (plus ``extra`` inputs:
        seeds, tangents), as arrays or as recorded tensors."""
        if self.tensor_env is None:
            if isinstance(self.compiled, ClosedFormFunction):
                return list(self.compiled.outputs_of(list(self.inputs) + list(extra)))
            return list(self.compiled(*self.inputs, *extra))
        from .derive.as_tensors import NotTensorizable, evaluate_as_tensors

        env = dict(self.tensor_env)
        for symbol, value in zip(self.compiled.symbols[len(self.inputs):], extra):
            env[symbol] = value if isinstance(value, Tensor) else Tensor(np.asarray(value, dtype=np.float64))
        try:
            values = evaluate_as_tensors(list(self.compiled.exprs.values()), env)
        except NotTensorizable as err:
            raise NotImplementedError(
                f"{self.transform.kind} on tensors that require grad records its closed form as tensor ops: {err}"
            ) from None
        return values

    def evaluate(self) -> list:
        if self.outputs is None:
            self.outputs = self._outputs()
        return self.outputs

    # -------------------------------------------------------------- results
    def grads(self, grads: Sequence[Any], cast: bool = True, shaped: bool = False):
        """The results of ``argnums`` from one result per differentiated array: each (with
        ``cast``; unless already ``shaped``) of its array's shape and dtype, a pytree
        argument's in its structure, one result or a tuple as ``argnums`` was one or many.
        The compiled function's outputs are fresh, writeable arrays, so one is copied only
        to broadcast or cast it."""
        if not shaped:
            grads = [self._shaped(g, self.call.arrays[i], cast) for g, i in zip(grads, self.diff)]
        out = self.call.regroup(grads)
        return out[0] if self.transform._single else tuple(out)

    def _shaped(self, g: Any, like: np.ndarray, cast: bool) -> Any:
        if self.tensor_env is not None:
            return _tensor_like(g, like.shape if cast else None, like.dtype)
        return _shaped_array(g, like, cast)

    def aux(self) -> Any:
        """The ``aux`` the function returned (``has_aux=True``), from this call's values."""
        n = self.problem.n_aux
        if not n:
            return self.problem.aux_rebuild([])
        # a jacobian's compiled VJP also takes the upstream gradients, and a hessian's HVP the
        # one-hot weights of a pytree output and the direction: aux reads none of them
        kind, shapes = self.transform.kind, self.problem.outputs.shapes
        if kind == "jacobian":
            outputs = self._outputs([np.zeros(s) for s in shapes])
        elif kind == "hessian":
            weights = [] if self.problem.outputs.single else [np.zeros(s) for s in shapes]
            outputs = self._outputs(weights + [np.zeros(self.call.arrays[i].shape) for i in self.diff])
        else:
            outputs = self.evaluate()
        return self.problem.aux_rebuild(outputs[len(outputs) - n:])

    def jacobian(self) -> list:
        """Per computed output leaf, the Jacobian of each differentiated array (shaped
        ``output.shape + array.shape``): the compiled VJP, whose last inputs are one seed
        per output leaf, evaluated at every one-hot seed."""
        shapes = self.problem.outputs.shapes
        zeros = [np.zeros(shape) for shape in shapes]
        blocks = []
        for l, shape in enumerate(shapes):
            rows: list[list] = [[] for _ in self.diff]
            for k in range(size_of(shape)):
                seed = np.zeros(size_of(shape))
                seed[k] = 1.0
                out = self._outputs(zeros[:l] + [seed.reshape(shape)] + zeros[l + 1:])
                for i in range(len(self.diff)):
                    rows[i].append(out[i])
            result = []
            for i, position in enumerate(self.diff):
                like = self.call.arrays[position]
                parts = [self._shaped(r, like, True) for r in rows[i]]
                result.append(_stack(parts, tuple(shape) + tuple(like.shape), like.dtype))
            blocks.append(result)
        return blocks

    def hessian(self) -> list:
        """Per computed output leaf, the Hessian's blocks from the compiled
        Hessian-vector product: row ``i``, column ``j`` for differentiated arrays ``i``
        and ``j``, of shape ``shape_i + shape_j``.  A pytree output's leaf is picked by
        one-hot weights, the compiled function's first inputs after the arguments."""
        tree = self.problem.outputs
        if tree.single:
            return [self._hessian_blocks([])]
        return [self._hessian_blocks([np.full(s, 1.0 if m == l else 0.0) for m, s in enumerate(tree.shapes)])
                for l in range(len(tree.shapes))]

    def _hessian_blocks(self, weights: list) -> list:
        likes = [self.call.arrays[p] for p in self.diff]
        blocks: list = []
        for j, like_j in enumerate(likes):
            rows: list = [[] for _ in likes]
            for k in range(like_j.size):
                seeds = [np.zeros(like.shape) for like in likes]
                seeds[j].reshape(-1)[k] = 1.0
                out = self._outputs(weights + seeds)
                for i, like in enumerate(likes):
                    rows[i].append(self._shaped(out[i], like, True))
            blocks.append([_stack(r, like_j.shape + likes[i].shape, likes[i].dtype) for i, r in enumerate(rows)])
        return blocks

    # -------------------------------------------------------------- "both"
    def cross_check(self, out: Any) -> None:
        """With ``set_backward_engine("both")``: run the function eagerly on the tape and
        compare (see :func:`_eager_results`)."""

        if tape.get_backward_engine() != "both" or self.transform.is_expression or self.tensor_env is not None:
            return
        _cross_check(self.transform, self.call, out)


def _shaped_array(g: Any, like: np.ndarray, cast: bool) -> np.ndarray:
    """A result array of ``like``'s dtype (and, with ``cast``, its shape)."""
    g = g if type(g) is np.ndarray else np.asarray(g)
    if like.dtype.kind in "fc":
        if cast and g.shape != like.shape:
            return np.broadcast_to(g, like.shape).astype(like.dtype)  # a new, writeable array
        if g.dtype != like.dtype:
            return g.astype(like.dtype)
    return g


def _tensor_like(value: Any, shape: tuple | None, dtype: np.dtype) -> Any:
    """A recorded tensor of ``shape`` (broadcast) and ``dtype`` (cast between floats)."""

    if not isinstance(value, Tensor):
        value = np.asarray(value, dtype=dtype)
        return Tensor(np.broadcast_to(value, shape).copy() if shape is not None else value)
    if shape is not None and value.shape != tuple(shape):
        value = value + Tensor(np.zeros(shape, dtype=value.dtype))
    if value.dtype != dtype and dtype.kind == "f":
        value = apply_op("cast", value, dtype=dtype)
    return value


def _stack(parts: list, shape: tuple, dtype: np.dtype) -> Any:

    if any(isinstance(p, Tensor) for p in parts):
        from ..tape.functions import stack

        return stack(parts).reshape(shape) if parts else Tensor(np.zeros(shape, dtype))
    stacked = np.stack(parts) if parts else np.zeros((0,), dtype)
    return stacked.reshape(shape).astype(dtype if dtype.kind in "fc" else np.float64, copy=False)


# ============================================================================ eager cross-check
def _cross_check(transform: Transformed, call: _Arguments, out: Any) -> None:
    """Compare a transform's results with the tape engine's on a fresh eager run."""
    from .backward import GradientMismatchError, _compare

    with tape.backward_engine("tape"):
        expected, tree = _eager_results(transform, call)
    got = _flat_results(transform, out)
    if len(got) != len(expected):  # pragma: no cover  (both come from the same transform)
        raise GradientMismatchError(f"{transform.__name__}: {len(got)} results against {len(expected)} on the tape")
    for k, (label, g, e) in enumerate(zip(_result_labels(transform, call, tree), got, expected)):
        g = np.asarray(g)
        _compare(k, _Labelled(label, g), g, np.asarray(e))


class _Labelled:
    """What ``_compare`` reads of a tensor: a name, a shape and a dtype."""

    def __init__(self, name: str, like: np.ndarray) -> None:
        self.name, self.shape, self.dtype = name, like.shape, like.dtype


def _result_labels(transform: Transformed, call: _Arguments, tree: _OutputTree) -> list[str]:
    """What each of :func:`_flat_results` is, for a mismatch report."""
    names = [f"{_ArgumentName(call.paths[i])} ({call.names[i]})" for i in call.diff]
    of = [f"{transform.__name__}" + ("" if tree.single else f" ({tree.where(k)})") for k in range(len(tree.shapes))]
    if transform.kind == "hessian":
        return [f"the hessian of {o} for {a}, {b}" for o in of for a in names for b in names]
    labels = [f"the value of {transform.__name__}"] if transform.kind == "value_and_grad" else []
    return labels + [f"the {transform.kind} of {o} for {n}" for o in of for n in names]


def _flat_results(transform: Transformed, out: Any) -> list:
    """A transform's results (aux left out) as one flat list, in :func:`_eager_results`'
    order: the value first, then per computed output leaf one result per differentiated
    array (per pair of them for a Hessian, row by row)."""
    if transform.has_aux:
        out = (out[0][0], out[1]) if transform.kind == "value_and_grad" else out[0]
    return [v for v in pytree.flatten(out)[0] if v is not None]


def _eager_results(transform: Transformed, call: _Arguments) -> tuple[list, _OutputTree]:
    """The transform's results computed by running the function eagerly on the tape, in
    :func:`_flat_results`' order, and the structure of the function's output."""
    from .. import autograd

    leaves = [tape.tensor(a, requires_grad=(a.dtype.kind == "f")) for a in call.arrays]
    positional, keywords = call.call(leaves)
    diff = [leaves[i] for i in call.diff]
    with tape.enable_grad():
        result = transform.f(*positional, **keywords)
        if transform.has_aux:
            result = result[0]
        outs, tree = _output_tensors(result)

        def pull(out, seed, create_graph=False):
            if not out.requires_grad:  # computed from masks only: the derivative is zero, as the transform's
                return [np.zeros(t.shape, t.dtype) for t in diff]
            grads = autograd.grad([out], diff, grad_outputs=[tape.tensor(seed, dtype=out.dtype)],
                                  retain_graph=True, allow_unused=True, create_graph=create_graph)
            return [np.zeros(t.shape, t.dtype) if g is None else g for g, t in zip(grads, diff)]

        kind = transform.kind
        if kind in ("grad", "value_and_grad"):
            (out,) = outs
            grads = [np.asarray(getattr(g, "_data", g)) for g in pull(out, np.ones(out.shape))]  # zeros if unused
            return ([out._data] if kind == "value_and_grad" else []) + grads, tree
        results = []
        for out in outs:
            results += _eager_jacobian(out, diff, pull) if kind == "jacobian" else _eager_hessian(out, diff, pull)
        return results, tree


def _eager_jacobian(out: Tensor, diff: list, pull: Callable) -> list:
    """The Jacobian of ``out`` for each of ``diff``, one tape pull-back per element of ``out``."""
    rows: list = [[] for _ in diff]
    for k in range(out.numel()):
        seed = np.zeros(out.numel())
        seed[k] = 1.0
        for i, g in enumerate(pull(out, seed.reshape(out.shape))):
            rows[i].append(np.asarray(getattr(g, "_data", g)))
    return [np.stack(r).reshape(out.shape + t.shape) if r else np.zeros(out.shape + t.shape) for r, t in zip(rows, diff)]


def _eager_hessian(out: Tensor, diff: list, pull: Callable) -> list:
    """The Hessian blocks of ``out`` (one element), row by row: the tape's gradient with
    ``create_graph``, differentiated once per element."""
    from .. import autograd

    grads = pull(out, np.ones(out.shape), create_graph=True)
    blocks = []
    for gj, tj in zip(grads, diff):
        for ti in diff:
            entries = []
            for k in range(tj.numel()):
                if not isinstance(gj, tape.Tensor) or gj.grad_fn is None:
                    entries.append(np.zeros(ti.shape))
                    continue
                (h,) = autograd.grad([gj.reshape(-1)[k]], [ti], retain_graph=True, allow_unused=True)
                entries.append(np.zeros(ti.shape) if h is None else h._data)
            blocks.append(np.stack(entries).reshape(tj.shape + ti.shape) if entries else np.zeros(tj.shape + ti.shape))
    return blocks


# ============================================================================ public transforms
def grad(f: Any, argnums: Any = 0, *, has_aux: bool = False, static_argnums: Any = (), static_argnames: Any = (),
         args: Sequence[sp.Symbol] | None = None, simplify: bool = False, backend: str = "auto") -> Transformed:
    """The gradient of a scalar function, as a compiled callable.

    >>> import symgrad
    >>> df = grad(lambda x: (x ** 3).sum())
    >>> df(np.array([1.0, 2.0]))
    array([ 3., 12.])
    >>> df.closed_forms
    {'grad_x': 3*x**2}
    >>> grad(lambda x, k: (x ** k).sum())(np.array([1.0, 2.0]), 2)   # k: a Python int, static
    array([2., 4.])
    >>> x, y = sp.symbols("x y", real=True)
    >>> grad(x ** 2 * y, y)(3.0, 5.0)        # inputs: y, then x
    array(25.)
    """
    return Transformed("grad", f, argnums, args, simplify, backend, has_aux=has_aux, static_argnums=static_argnums,
                       static_argnames=static_argnames)


def value_and_grad(f: Any, argnums: Any = 0, *, has_aux: bool = False, static_argnums: Any = (),
                   static_argnames: Any = (), args: Sequence[sp.Symbol] | None = None, simplify: bool = False,
                   backend: str = "auto") -> Transformed:
    """``(value, gradient)`` from one compiled function (``((value, aux), gradient)``
    with ``has_aux=True``).

    >>> x = sp.Symbol("x", real=True)
    >>> value_and_grad(sp.sin(x))(0.0)
    (array(0.), array(1.))
    """
    return Transformed("value_and_grad", f, argnums, args, simplify, backend, has_aux=has_aux,
                       static_argnums=static_argnums, static_argnames=static_argnames)


def jacobian(f: Any, argnums: Any = 0, *, has_aux: bool = False, static_argnums: Any = (),
             static_argnames: Any = (), args: Sequence[sp.Symbol] | None = None, simplify: bool = False,
             backend: str = "auto") -> Transformed:
    """The Jacobian, shaped ``output.shape + input.shape``; of a function returning a
    pytree, that pytree with each leaf's Jacobian (JAX's ``jacrev``).

    >>> jacobian(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    >>> jacobian(lambda x, y: {"xy": x * y, "x": x}, argnums=(0, 1))(2.0, 3.0)
    {'x': (array(1.), array(0.)), 'xy': (array(3.), array(2.))}
    """
    return Transformed("jacobian", f, argnums, args, simplify, backend, has_aux=has_aux,
                       static_argnums=static_argnums, static_argnames=static_argnames)


jacrev = jacobian
"""JAX's name for :func:`jacobian` (the same function): a reverse-mode Jacobian."""

jacfwd = jacobian
"""JAX's forward-mode Jacobian, here the same function as :func:`jacobian`: the result is
the evaluated closed form, which does not depend on the direction it was derived in, so
``jacfwd`` and ``jacrev`` are exact aliases with identical results (JAX's two agree up to
rounding).  Only the cost differs from JAX's forward mode: the compiled VJP is evaluated
once per *output* element, so a function with many outputs and few inputs is not faster
through ``jacfwd``."""


def hessian(f: Any, argnums: Any = 0, *, has_aux: bool = False, static_argnums: Any = (),
            static_argnames: Any = (), args: Sequence[sp.Symbol] | None = None, simplify: bool = False,
            backend: str = "auto") -> Transformed:
    """The Hessian of a scalar function, shaped ``input.shape + input.shape``; of a function
    returning a pytree of one-element leaves (several losses), one Hessian per leaf.  With
    ``has_aux=True`` the function returns ``(output, aux)`` and the result is
    ``(hessian, aux)``, as JAX's.

    >>> x, y = sp.symbols("x y", real=True)
    >>> hessian(x ** 2 * y, (0, 1), args=(x, y))(1.0, 2.0)
    ((array(4.), array(2.)), (array(2.), array(0.)))
    >>> hessian(lambda v: ((v ** 3).sum(), v * 2), has_aux=True)(np.array([1.0, 2.0]))
    (array([[ 6.,  0.],
           [ 0., 12.]]), array([2., 4.]))
    """
    return Transformed("hessian", f, argnums, args, simplify, backend, has_aux=has_aux,
                       static_argnums=static_argnums, static_argnames=static_argnames)


def vjp(f: Any, *primals: Any, argnums: Any = None, has_aux: bool = False, args: Sequence[sp.Symbol] | None = None,
        backend: str = "auto"):
    """``(value, vjp_fn)``: ``vjp_fn(g)`` gives ``g``'s pull-back to every primal (a tuple).
    ``g`` has the value's structure (a pytree for a function returning one) and each leaf
    its value's shape.  The compiled function is ``vjp_fn.compiled``.  With
    ``has_aux=True`` the function returns ``(output, aux)`` and ``vjp`` returns
    ``(value, vjp_fn, aux)``, as JAX's.

    >>> value, back = vjp(lambda x: x ** 2, np.array([1.0, 3.0]))
    >>> value, back(np.ones(2))
    (array([1., 9.]), (array([2., 6.]),))
    >>> value, back = vjp(lambda x: (x * 2, x ** 2), 3.0)
    >>> value, back((np.array(1.0), np.array(1.0)))
    ((array(6.), array(9.)), (array(8.),))
    """
    argnums = tuple(range(len(primals))) if argnums is None else argnums
    t = Transformed("vjp", f, argnums, args, False, backend, has_aux=has_aux)
    run = t._run(primals, {})
    tree = run.problem.outputs
    n = len(tree.shapes)
    outputs = run._outputs([np.zeros(shape) for shape in tree.shapes])
    value = tree.rebuild(outputs[:n])

    def vjp_fn(cotangent: Any) -> tuple:
        out = run._outputs(tree.cotangents(cotangent))[n:n + len(run.diff)]
        return tuple(run.call.regroup([run._shaped(o, run.call.arrays[i], True) for o, i in zip(out, run.diff)]))

    vjp_fn.compiled = run.compiled  # type: ignore[attr-defined]
    vjp_fn.closed_forms = dict(run.compiled.exprs)  # type: ignore[attr-defined]
    if has_aux:
        return value, vjp_fn, run.problem.aux_rebuild(outputs[len(outputs) - run.problem.n_aux:])
    return value, vjp_fn


def jvp(f: Any, primals: Sequence[Any], tangents: Sequence[Any], *, has_aux: bool = False,
        args: Sequence[sp.Symbol] | None = None, backend: str = "auto"):
    """``(value, tangent_out)``: the Jacobian-vector product in forward direction; both of
    the output's structure for a function returning a pytree.  ``primals`` and
    ``tangents`` are tuples or lists, one entry per argument; each tangent (each leaf of a
    pytree argument's) is a float array of exactly its primal's shape, as JAX requires
    (a mismatch raises, naming the argument or leaf and both shapes).  With
    ``has_aux=True`` the function returns ``(output, aux)`` and ``jvp`` returns
    ``(value, tangent_out, aux)``, as JAX's.

    >>> jvp(lambda x: x ** 2, (np.array([1.0, 3.0]),), (np.array([1.0, 0.5]),))
    (array([1., 9.]), array([2., 3.]))
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError(f"jvp takes the primals and the tangents as tuples or lists, one entry per argument of the "
                        f"function, got {type(primals).__name__} and {type(tangents).__name__}")
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp needs one tangent per primal, got {len(primals)} primals and {len(tangents)} tangents")
    t = Transformed("jvp", f, tuple(range(len(primals))), args, False, backend, has_aux=has_aux)
    run = t._run(primals, {})
    seeds = [_tangent_seed(v, run.call.arrays[i], run.call.where(i))
             for v, i in zip(run.call.flat_like(tangents, "tangent"), run.diff)]
    tree = run.problem.outputs
    out = run._outputs(seeds)
    n = len(tree.shapes)
    if has_aux:
        return tree.rebuild(out[:n]), tree.rebuild(out[n:2 * n]), run.problem.aux_rebuild(out[2 * n:])
    return tree.rebuild(out[:n]), tree.rebuild(out[n:2 * n])


def _tangent_seed(tangent: Any, primal: np.ndarray, where: str) -> Any:
    """One leaf of ``jvp``'s tangents checked against its primal leaf, as JAX's ``jvp``
    checks them: floating point (any width; a Python float is one; complex only for a
    complex primal) and exactly the primal's shape -- never broadcast, so a tangent of the
    wrong shape cannot silently become another direction.  Returned as a float64 array
    (complex128 for a complex one; a tensor stays a tensor)."""
    if isinstance(tangent, Tensor):
        seed = tangent
    else:
        try:
            seed = np.asarray(tangent)
        except Exception as err:  # noqa: BLE001  (anything NumPy refuses)
            raise TypeError(f"jvp: the tangent for {where} is not an array ({type(tangent).__name__}: {err})") from None
    kinds = "fc" if primal.dtype.kind == "c" else "f"
    if seed.dtype.kind not in kinds:
        number = "a complex or float" if kinds == "fc" else "a float"
        raise TypeError(f"jvp: the tangent for {where} has dtype {seed.dtype}, but the tangent of a {primal.dtype} "
                        f"primal is {number} array of the primal's shape {tuple(primal.shape)}")
    if tuple(seed.shape) != tuple(primal.shape):
        raise ValueError(f"jvp: the tangent for {where} has shape {tuple(seed.shape)}, but its primal has shape "
                         f"{tuple(primal.shape)}; a tangent has exactly its primal's shape (it is not broadcast)")
    if isinstance(seed, Tensor):
        return seed
    return seed.astype(np.complex128 if seed.dtype.kind == "c" else np.float64, copy=False)
