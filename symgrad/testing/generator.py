"""Random differentiable programs over the op table, with inputs they are valid at.

A :class:`Program` is a straight-line sequence of op applications (``apply_op(name, *args,
**attrs)``) over a few input tensors.  It is generated together with its inputs: every
value is computed while the program grows, so each op's arguments can be kept inside the
op's sampling :class:`~symgrad.ops.Domain` (``log`` of positive numbers, ``relu`` away
from 0, ``tan`` away from its poles).  Fresh inputs are drawn from the domain of the op
that first uses them; an intermediate value outside the domain gets an affine step
``a * v + b`` (two ``mul``/``add`` ops) that moves it inside.

How an op is called -- its attributes (``dim``, ``shape``, ``index`` ...) and the shapes
of its arguments -- comes from a *recipe*.  Elementwise ops without attributes need none
(they broadcast their ``arity`` arguments); :data:`RECIPES` holds the others, and
:func:`register_recipe` adds one for an op you register yourself.  A mask op (a
comparison, ``logical_and`` ...) has no derivative, so its boolean result is always used
as the condition of a ``where`` that follows it; comparisons are made against 0 with
values kept away from 0, so finite differences never cross the threshold.  An op with an
integer result (:data:`INTEGER_VALUED`: ``argmax``, ``argmin``, the composite
``count_nonzero``) has no derivative either: its result is converted to numbers and
multiplied into a value that follows it, and its argument keeps the extreme of each slice
apart from the rest (no zeros near the threshold, for the count), so finite differences
never move a position or a count.

The composites of ``symgrad/tape/composites.py`` and ``symgrad/linalg.py`` (``flip``,
``gather``, ``scatter_add``, ``var``, ``matrix_norm`` ...) are drawn too, by name, each
with a recipe in :data:`COMPOSITES` (:func:`register_composite`): their faces all come
from the table's ops, and random programs check that the composition holds together.
:func:`default_ops` lists everything a program draws from by default.

The generator only *chooses*; a :class:`Chooser` decides how: :class:`RandomChooser` uses a
NumPy generator (:func:`random_program`), ``symgrad.testing.strategies`` uses Hypothesis.

>>> import numpy as np
>>> program = random_program(np.random.default_rng(0), ops=["sin", "mul", "sum"], max_steps=3)
>>> value = program(*program.tensors())
>>> value.shape == program.output_shape
True
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .. import linalg
from ..ops import OPS, Domain
from ..tape import composites
from ..tape.tensor import Tensor, apply_op

__all__ = [
    "Program", "Step", "Chooser", "RandomChooser", "Reject", "RecipeError", "ProgramBuilder", "RECIPES",
    "register_recipe", "random_program", "covered_ops", "uncovered_ops", "NONSMOOTH_OPS", "INTEGER_VALUED",
    "LEAF_SHAPES",
    "elementwise_dag", "COMPOSITES", "register_composite", "default_ops", "rounding_jump", "ROUNDING_JUMP",
    "ROUNDED_IDENTITIES", "JUMPS", "PATH_ONLY_COMPOSITES", "EXACTLY_REPEATED_OPS",
]

LEAF_SHAPES: tuple[tuple[int, ...], ...] = ((), (3,), (2, 3), (1, 3), (3, 1), (2, 1, 2))
"""Shapes fresh inputs are drawn with (small, so a full Jacobian stays cheap)."""

MAX_NUMEL = 24
"""No intermediate value has more elements than this."""

MAX_MAGNITUDE = 50.0
"""Arguments larger than this are scaled back into the op's domain (no exp(exp(x)))."""

COMPARISON_OPS = ("lt", "le", "gt", "ge", "eq", "ne")
LOGICAL_OPS = ("logical_and", "logical_or", "logical_not")
POSITION_OPS = ("argmax", "argmin")
INTEGER_VALUED = frozenset({*POSITION_OPS, "count_nonzero"})
"""Ops and composites with an int64 result and no derivative (see the module docstring)."""

NONSMOOTH_OPS = frozenset({"relu", "abs", "sign", "clamp", "clamp_tensor", "maximum", "minimum", "max", "min",
                           "amax", "amin", "matrix_norm", "vector_norm", "rounding_jump",
                           "sort_values", "sort", "topk",
                           "extremum_mask", "elu", "leaky_relu", "softsign", "floor", "ceil", "round", "trunc",
                           "frac", "remainder", "fmod", "copysign", *COMPARISON_OPS, *LOGICAL_OPS,
                           *INTEGER_VALUED})
"""Ops with kinks or jumps (a mask selects between branches); second-derivative checks
leave them out."""

AWAY_FROM_ZERO = Domain(avoid=(0.0,), margin=0.1)
"""Where the values compared with 0 are kept (a mask must not flip under finite differences)."""


class Reject(Exception):
    """The choices so far cannot make a valid program; start again (Hypothesis: reject)."""


class RecipeError(RuntimeError):
    """A recipe produced a call its op refuses: the recipe (or the op) is wrong."""


# ----------------------------------------------------------------------------- programs
@dataclass(frozen=True)
class Ref:
    """A value of the program: an input (``index < n_inputs``) or a step's result."""

    index: int


@dataclass(frozen=True)
class Step:
    """``values.append(apply_op(op, *args, **attrs))``; args are :class:`Ref` or constants
    (Python numbers, NumPy arrays).  ``function`` replaces ``apply_op`` for a user function
    or a composite; ``source`` is how the program's source calls it (its name by default,
    ``symgrad.flip`` for a composite)."""

    op: str
    args: tuple
    attrs: dict = field(default_factory=dict)
    function: Callable | None = None
    source: str | None = None


@dataclass
class Program:
    """A straight-line program over ``len(inputs)`` tensors, with the inputs it was made for.

    ``layout`` lists the program's values in creation order: an ``int`` k is input k, a
    :class:`Step` an op applied to earlier values.  Call the program with tensors
    (:meth:`tensors` makes them from :attr:`inputs`); ``str(program)`` is its Python source.
    """

    names: list[str]
    inputs: list[np.ndarray]
    layout: list
    output_shape: tuple[int, ...] = ()

    @property
    def steps(self) -> list[Step]:
        return [item for item in self.layout if isinstance(item, Step)]

    def __call__(self, *tensors):
        if len(tensors) != len(self.inputs):
            raise TypeError(f"this program takes {len(self.inputs)} tensors, got {len(tensors)}")
        values = []
        for item in self.layout:
            if not isinstance(item, Step):
                values.append(tensors[item])
                continue
            args = [values[a.index] if isinstance(a, Ref) else a for a in item.args]
            if item.function is not None:
                values.append(item.function(*args, **item.attrs))
            else:
                values.append(apply_op(item.op, *args, **item.attrs))
        return values[-1]

    def tensors(self, requires_grad: bool = True, dtype=None) -> tuple[Tensor, ...]:
        """Fresh input tensors holding copies of :attr:`inputs`."""
        return tuple(Tensor(np.array(x, dtype=dtype or x.dtype), requires_grad=requires_grad, name=name)
                     for x, name in zip(self.inputs, self.names))

    @property
    def ops(self) -> list[str]:
        """The ops the program applies, in order."""
        return [step.op for step in self.steps]

    def __str__(self) -> str:
        modules = sorted({step.source.rpartition(".")[0] for step in self.steps if step.source})
        lines = [f"import {module}" for module in modules]
        lines.append(f"def program({', '.join(self.names)}):")
        for name, x in zip(self.names, self.inputs):
            values = np.array2string(x.ravel(), precision=4, separator=", ", max_line_width=sys.maxsize)
            lines.append(f"    # {name}: shape {list(x.shape)}, {x.dtype.name}, values {values}")
        names = []
        for index, item in enumerate(self.layout):
            if not isinstance(item, Step):
                names.append(self.names[item])
                continue
            names.append(f"v{index}")
            args = [names[a.index] if isinstance(a, Ref) else _literal(a) for a in item.args]
            attrs = [f"{k}={_literal(v)}" for k, v in item.attrs.items()]
            call = f"{item.source or item.op}({', '.join(args + attrs)})" if item.function is not None else \
                f"apply_op({', '.join([repr(item.op)] + args + attrs)})"
            lines.append(f"    {names[-1]} = {call}")
        lines.append(f"    return {names[-1]}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Program {' -> '.join(self.ops)} over {len(self.inputs)} input(s)>"


def _literal(value) -> str:
    """Python source that evaluates to ``value`` (an attr or a constant of a step)."""
    if isinstance(value, np.ndarray):
        dtype = "bool" if value.dtype == bool else f"np.{value.dtype.name}"
        return f"np.array({_literal(value.tolist())}, dtype={dtype})"
    if isinstance(value, list):
        return f"[{', '.join(_literal(v) for v in value)}]"
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):  # repr() gives the undefined name inf
        return 'float("nan")' if math.isnan(value) else ('float("inf")' if value > 0 else '-float("inf")')
    if isinstance(value, tuple):
        inner = ", ".join(_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, slice):
        return f"slice({value.start!r}, {value.stop!r}, {value.step!r})"
    if value is Ellipsis:
        return "..."
    if isinstance(value, np.dtype):
        return f"np.{value.name}"
    return repr(value)


# ----------------------------------------------------------------------------- choosing
class Chooser:
    """Makes the generator's choices; subclasses decide how (random, Hypothesis)."""

    rng: np.random.Generator

    def integer(self, low: int, high: int) -> int:
        """An int in ``[low, high]``; an empty range (an index into an empty dimension, an
        element of no options) rejects the program, whatever recipe asked."""
        if high < low:
            raise Reject(f"no integer in [{low}, {high}] to choose")
        return self.draw_integer(low, high)

    def draw_integer(self, low: int, high: int) -> int:
        """An int in the non-empty range ``[low, high]``: what a subclass decides."""
        raise NotImplementedError

    def element(self, options: Sequence):
        return options[self.integer(0, len(options) - 1)]

    def boolean(self) -> bool:
        return bool(self.integer(0, 1))


class RandomChooser(Chooser):
    """Choices from a NumPy generator, which also draws the input values."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def draw_integer(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))


# ----------------------------------------------------------------------------- building
class ProgramBuilder:
    """Grows one program; recipes call :meth:`value`, :meth:`constant` and the chooser."""

    def __init__(self, choose: Chooser, max_leaves: int = 3, dtype=np.float64,
                 functions: dict[str, tuple[Callable, tuple[Domain, ...]]] | None = None) -> None:
        self.choose = choose
        self.max_leaves = max_leaves
        self.dtype = np.dtype(dtype)
        self.functions = functions or {}
        self.names: list[str] = []
        self.inputs: list[np.ndarray] = []
        self.layout: list = []  # input numbers and steps, in creation order
        self.values: list[np.ndarray] = []  # the value of each layout entry
        self.without_derivative: set[int] = set()  # integer results made numbers: no argument takes them

    # ------------------------------------------------------------ values for recipes
    def shape(self, ref: Ref) -> tuple[int, ...]:
        return self.values[ref.index].shape

    def value(self, *, shape: tuple | None = None, broadcast_with: tuple | None = None, min_ndim: int = 0,
              max_ndim: int = 3, domain: Domain | None = None, fresh_shapes: Sequence[tuple] | None = None,
              nonempty: bool = False) -> Ref:
        """A value for an argument: an existing one that fits, or a fresh input.

        ``shape`` demands an exact shape; ``broadcast_with`` one that broadcasts with it
        (without growing past :data:`MAX_NUMEL`); ``domain`` keeps the values inside it;
        ``nonempty`` one without a dimension of size 0 (to index along any of them).
        """
        def fits(s):
            if shape is not None:
                return s == tuple(shape)
            if not (min_ndim <= len(s) <= max_ndim) or (nonempty and 0 in s):
                return False
            if broadcast_with is not None:
                try:
                    return int(np.prod(np.broadcast_shapes(s, broadcast_with))) <= MAX_NUMEL
                except ValueError:
                    return False
            return True

        # newest first: Hypothesis shrinks towards index 0, so programs shrink to chains
        candidates = [i for i, v in enumerate(self.values)
                      if fits(v.shape) and v.dtype.kind == "f" and i not in self.without_derivative][::-1]
        fresh = not candidates or (len(self.inputs) < self.max_leaves and self.choose.integer(0, 2) == 2)
        if fresh:
            if len(self.inputs) >= self.max_leaves + 2:
                raise Reject("too many inputs")
            if shape is not None:
                options = [tuple(shape)]
            elif fresh_shapes is not None:
                options = [tuple(s) for s in fresh_shapes]
            elif broadcast_with is not None:
                options = _broadcastable_shapes(tuple(broadcast_with))
            else:
                options = [s for s in LEAF_SHAPES if min_ndim <= len(s) <= max_ndim] or [(2,) * min_ndim]
            return self._leaf(self.choose.element(options), domain or Domain())
        ref = Ref(self.choose.element(candidates))
        return self.into_domain(ref, domain or Domain())

    def constant(self, value) -> Any:
        """A constant argument (a mask, an index array): passed as is."""
        return value

    def into_domain(self, ref: Ref, domain: Domain) -> Ref:
        """``ref``, or ``a * ref + b`` when its values leave ``domain`` (or are huge)."""
        v = self.values[ref.index]
        if _inside(v, domain):
            return ref
        a, b = _affine_into(v, domain)
        scaled = self._append(Step("mul", (ref, a)))
        return self._append(Step("add", (scaled, b)))

    def _leaf(self, shape: tuple, domain: Domain) -> Ref:
        array = domain.sample(self.choose.rng, shape, dtype=self.dtype) if not domain.integer else \
            Domain().sample(self.choose.rng, shape, dtype=self.dtype)
        self.names.append(f"x{len(self.inputs)}")
        self.layout.append(len(self.inputs))
        self.inputs.append(array)
        self.values.append(array)
        return Ref(len(self.values) - 1)

    def _append(self, step: Step) -> Ref:
        args = [self.values[a.index] if isinstance(a, Ref) else a for a in step.args]
        try:
            if step.function is not None:  # values as tensors, constants as they are
                args = [Tensor(np.asarray(x)) if isinstance(a, Ref) else x for a, x in zip(step.args, args)]
                out = step.function(*args, **step.attrs)
                out = np.asarray(out._data if isinstance(out, Tensor) else out)
            else:
                out = np.asarray(OPS[step.op].forward(*args, **step.attrs))
        except Exception as err:
            shapes = [np.shape(x) for x in args]
            raise RecipeError(f"{step.op} refused the call its recipe made (argument shapes {shapes}, attrs "
                              f"{step.attrs}): {type(err).__name__}: {err}") from err
        mask = step.function is None and OPS[step.op].kind == "mask"
        expected = bool if mask else np.int64 if step.op in INTEGER_VALUED else None
        if out.size > MAX_NUMEL or (out.dtype.kind != "f" and out.dtype != expected):
            raise Reject(f"{step.op} gave {out.size} elements of dtype {out.dtype}")
        if not np.isfinite(out).all():
            raise Reject(f"{step.op} gave non-finite values")
        self.layout.append(step)
        self.values.append(out)
        return Ref(len(self.values) - 1)

    # ------------------------------------------------------------ one op
    def apply(self, op: str) -> Ref:
        """Append one application of ``op`` (arguments and attributes from its recipe)."""
        if op in self.functions:
            function, domains = self.functions[op]
            return self._append(Step(op, tuple(self.broadcasting(domains)), {}, function))
        if op in COMPOSITES or op in PATH_ONLY_COMPOSITES:
            function, recipe, source = COMPOSITES[op] if op in COMPOSITES else PATH_ONLY_COMPOSITES[op]
            args, attrs = recipe(self)
            out = self._append(Step(op, tuple(args), attrs, function, source))
            return self._weigh(out) if op in INTEGER_VALUED else out
        recipe = RECIPES.get(op, elementwise_recipe if OPS[op].kind == "elementwise" else None)
        if recipe is None:
            raise RecipeError(f"op {op!r} has no recipe: add one with symgrad.testing.register_recipe")
        args, attrs = recipe(self, OPS[op])
        out = self._append(Step(op, tuple(args), attrs))
        if OPS[op].kind == "mask":
            return self._select(out)
        return self._weigh(out) if op in INTEGER_VALUED else out

    def broadcasting(self, domains: Sequence) -> list[Ref]:
        """One value inside each of ``domains``, all of which broadcast together (each
        with the shape the ones before it broadcast to)."""
        args = [self.value(domain=domains[0])]
        shape = self.shape(args[0])
        for domain in domains[1:]:
            args.append(self.value(broadcast_with=shape, domain=domain))
            shape = np.broadcast_shapes(shape, self.shape(args[-1]))
        return args

    def mask(self, broadcast_with: tuple | None = None) -> Ref:
        """A boolean mask: a value (that broadcasts with ``broadcast_with``) compared with 0,
        kept away from 0."""
        op = self.choose.element(list(COMPARISON_OPS))
        x = self.value(domain=AWAY_FROM_ZERO, broadcast_with=broadcast_with)
        return self._append(Step(op, (x, self.constant(0.0))))

    def _select(self, mask: Ref) -> Ref:
        """``where(mask, a, b)`` with values ``a`` and ``b`` that broadcast with the mask."""
        a = self.value(broadcast_with=self.shape(mask))
        b = self.value(broadcast_with=np.broadcast_shapes(self.shape(mask), self.shape(a)))
        return self._append(Step("where", (mask, a, b)))

    def _weigh(self, integers: Ref) -> Ref:
        """``cast(integers) * a``: an integer result (a position, a count) converted to
        numbers and multiplied into a value ``a`` that broadcasts with it (never the numbers
        themselves, or a program could have no derivative at all)."""
        numbers = self._append(Step("cast", (integers,), {"dtype": self.dtype}))
        self.without_derivative.add(numbers.index)
        return self._append(Step("mul", (numbers, self.value(broadcast_with=self.shape(numbers)))))

    def build(self, ops: Sequence[str], steps: int) -> Program:
        """Apply ``steps`` ops drawn from ``ops``, then package the program.  Results no
        later step uses are summed into the output, so every op affects it."""
        for _ in range(steps):
            self.apply(self.choose.element(list(ops)))
        if not any(isinstance(item, Step) for item in self.layout):
            raise Reject("empty program")
        used = {a.index for item in self.layout if isinstance(item, Step) for a in item.args if isinstance(a, Ref)}
        last = len(self.layout) - 1
        sinks = [i for i, item in enumerate(self.layout) if isinstance(item, Step) and i not in used and i != last]
        out = Ref(last)
        for sink in sinks:
            total = self._append(Step("sum", (Ref(sink),), {"dim": None, "keepdim": False}))
            out = self._append(Step("add", (out, total)))
        return Program(self.names, self.inputs, self.layout, self.values[-1].shape)


def _inside(v: np.ndarray, domain: Domain) -> bool:
    if domain.integer:
        return True
    if v.size and np.abs(v).max() > MAX_MAGNITUDE:
        return False
    if domain != Domain() and v.size and (v.min() < domain.low or v.max() > domain.high):
        return False
    return all(np.all(np.abs(v - p) >= domain.margin) for p in domain.avoid)


def _affine_into(v: np.ndarray, domain: Domain) -> tuple[float, float]:
    """``(a, b)`` with ``a * v + b`` inside ``domain``, away from its avoided points."""
    low, high = domain.low, domain.high
    width = high - low
    lo, hi = low + 0.1 * width, high - 0.1 * width
    vmin, vmax = float(v.min()), float(v.max())
    spread = vmax - vmin
    a = 1.0 if spread < 1e-9 else min(1.0, (hi - lo) / spread)
    for _ in range(6):
        centre = (lo + hi) / 2 - a * (vmin + vmax) / 2
        offsets = np.linspace(-0.4, 0.4, 17) * (hi - lo - a * spread)
        for offset in sorted(offsets, key=abs):
            b = round(float(centre + offset), 6)
            if _inside(a * v + b, domain):
                return a, b
        a /= 3
    raise Reject(f"no affine map moves values into {domain}")


def _broadcastable_shapes(shape: tuple) -> list[tuple]:
    """Shapes that broadcast with ``shape`` without enlarging it: itself, trailing parts,
    and versions with size-1 dims."""
    options = {shape, ()}
    for start in range(len(shape)):
        options.add(shape[start:])
    for i in range(len(shape)):
        options.add(shape[:i] + (1,) + shape[i + 1:])
    return sorted(options, key=lambda s: (len(s), s))


# ----------------------------------------------------------------------------- recipes
Recipe = Callable[[ProgramBuilder, Any], tuple[list, dict]]
RECIPES: dict[str, Recipe] = {}


def register_recipe(name: str, recipe: Recipe | None = None):
    """Declare how random programs call op ``name``: ``recipe(builder, op)`` returns
    ``(args, attrs)``.  Usable as a decorator.

    >>> @register_recipe("my_op_for_the_doctest")
    ... def _(b, op):
    ...     return [b.value()], {}
    >>> "my_op_for_the_doctest" in RECIPES
    True
    >>> del RECIPES["my_op_for_the_doctest"]
    """
    def add(recipe: Recipe) -> Recipe:
        RECIPES[name] = recipe
        return recipe
    return add(recipe) if recipe is not None else add


def elementwise_recipe(b: ProgramBuilder, op) -> tuple[list, dict]:
    """An elementwise op without attributes: ``arity`` arguments that broadcast together,
    each inside its domain."""
    domains = op.domains if len(op.domains) == (op.arity or 1) else (op.domains[0],) * (op.arity or 1)
    return b.broadcasting(domains), {}


def _dim_choice(b: ProgramBuilder, ndim: int, allow_none: bool = True, allow_tuple: bool = True):
    options = ([None] if allow_none else []) + list(range(-ndim, ndim))
    if allow_tuple and ndim >= 2:
        options.append((0, ndim - 1))
    return b.choose.element(options) if options else None


@register_recipe("pow_scalar")
def _pow_scalar(b, op):
    return [b.value(domain=op.domains[0])], {"exponent": b.choose.element([2, 3, 0.5, -1, 1.5, -0.5])}


@register_recipe("clamp")
def _clamp(b, op):
    bounds = b.choose.element([(-0.5, None), (None, 0.5), (-1.0, 1.0), (0.0, 0.5)])
    return [b.value(domain=op.domains[0])], {"min": bounds[0], "max": bounds[1]}


@register_recipe("softplus")
def _softplus(b, op):
    return [b.value(domain=op.domains[0])], {"beta": b.choose.element([1.0, 2.0])}


@register_recipe("cast")
def _cast(b, op):
    return [b.value()], {"dtype": b.dtype}


def _order_first(b, op):
    """``polygamma(n, x)``, ``bessel_i(nu, x)``: the order is a Python int (as in
    ``torch.polygamma(n, x)``), a constant of the program."""
    return [b.constant(b.choose.element([1, 2, 3])), b.value(domain=op.domains[1])], {}


for _name in ("polygamma", "bessel_i", "bessel_ie"):
    register_recipe(_name, _order_first)


@register_recipe("where")
def _where(b, op):
    a = b.value(domain=op.domains[1])
    other = b.value(broadcast_with=b.shape(a), domain=op.domains[2])
    shape = np.broadcast_shapes(b.shape(a), b.shape(other))
    condition = b.choose.rng.random(shape) < 0.5
    return [b.constant(condition), a, other], {}


def _comparison(b, op):
    return [b.value(domain=AWAY_FROM_ZERO), b.constant(0.0)], {}


def _logical(b, op):
    first = b.mask()
    return [first] + [b.mask(broadcast_with=b.shape(first)) for _ in range(op.arity - 1)], {}


for _name in COMPARISON_OPS:
    register_recipe(_name, _comparison)
for _name in LOGICAL_OPS:
    register_recipe(_name, _logical)


@register_recipe("sum")
@register_recipe("mean")
@register_recipe("logsumexp")
def _reduce(b, op):
    x = b.value()
    return [x], {"dim": _dim_choice(b, len(b.shape(x))), "keepdim": b.choose.boolean()}


@register_recipe("norm")
def _norm(b, op):
    # the 2-norm has a kink where it is 0: keep its argument away from 0
    x = b.value(domain=Domain(0.2, 2.0))
    return [x], {"dim": _dim_choice(b, len(b.shape(x))), "keepdim": b.choose.boolean()}


@register_recipe("max")
@register_recipe("min")
@register_recipe("prod")
def _extremum(b, op):
    x = b.value(nonempty=op.name != "prod")  # the largest of nothing is undefined (PyTorch refuses it too)
    dim = _dim_choice(b, len(b.shape(x)), allow_tuple=False)
    return [x], {"dim": dim, "keepdim": b.choose.boolean() if dim is not None else False}


POSITION_GAP = 0.2
"""How far the extreme of each slice an ``argmax``/``argmin`` reads stays from the others'
values (as :data:`AWAY_FROM_ZERO` keeps compared values 0.1 from 0)."""


def _extreme_gap(values: np.ndarray, dim, largest: bool) -> float:
    """The smallest distance between the extreme of a slice (along ``dim``; all of
    ``values`` when None) and the slice's next value; inf for slices of one element."""
    slices = values.reshape(1, -1) if dim is None else np.moveaxis(values, dim, -1).reshape(-1, values.shape[dim])
    if slices.shape[-1] < 2 or not slices.size:
        return math.inf
    ordered = np.sort(slices, axis=-1)
    gaps = ordered[:, -1] - ordered[:, -2] if largest else ordered[:, 1] - ordered[:, 0]
    return float(gaps.min())


@register_recipe("argmax")
@register_recipe("argmin")
def _position(b, op):
    x = b.value(nonempty=True)
    ndim = len(b.shape(x))
    dim = _dim_choice(b, ndim, allow_tuple=False)
    if _extreme_gap(b.values[x.index], dim, op.name == "argmax") < POSITION_GAP:
        raise Reject(f"{op.name}: the extreme of a slice is within {POSITION_GAP} of another value")
    return [x], {"dim": dim, "keepdim": b.choose.boolean()}


@register_recipe("extremum_mask")
def _extremum_mask(b, op):
    x = b.value(nonempty=True)
    return [x], {"dim": _dim_choice(b, len(b.shape(x)), allow_tuple=False), "mode": b.choose.element(["max", "min"])}


@register_recipe("softmax")
@register_recipe("log_softmax")
def _softmax(b, op):
    x = b.value(min_ndim=1)
    return [x], {"dim": b.choose.integer(-len(b.shape(x)), len(b.shape(x)) - 1)}


@register_recipe("amax")
@register_recipe("amin")
def _even_extremum(b, op):
    x = b.value(nonempty=True)
    return [x], {"dim": _dim_choice(b, len(b.shape(x))), "keepdim": b.choose.boolean()}


@register_recipe("cumsum")
@register_recipe("cumprod")
@register_recipe("logcumsumexp")
def _cumsum(b, op):
    x = b.value(min_ndim=1)
    return [x], {"dim": b.choose.integer(-len(b.shape(x)), len(b.shape(x)) - 1)}


@register_recipe("sort_values")
def _sort_values(b, op):
    x = b.value(min_ndim=1)
    return [x], {"dim": _axis(b, x), "descending": b.choose.boolean()}


@register_recipe("sort_by")
def _sort_by(b, op):
    # the key is a constant of distinct values: a key computed by the program could hold
    # ties, where a finite-difference step would reorder it (a jump, not a derivative)
    x = b.value(min_ndim=1)
    shape = b.shape(x)
    key = b.constant(b.choose.rng.permutation(int(np.prod(shape))).reshape(shape).astype(b.dtype))
    return [x, key], {"dim": _axis(b, x), "descending": b.choose.boolean(), "inverse": b.choose.boolean()}


def _well_conditioned(b: ProgramBuilder, n: int) -> Ref:
    """An ``n x n`` matrix made from any value as ``2 I + tanh(M)/n``: diagonally dominant, so
    invertible with a positive determinant whatever ``M`` holds."""
    squashed = b._append(Step("tanh", (b.value(shape=(n, n)),)))
    scaled = b._append(Step("mul", (squashed, 1.0 / n)))
    return b._append(Step("add", (scaled, b.constant(2 * np.eye(n, dtype=b.dtype)))))


def _separated_singular_values(b: ProgramBuilder, m: int, n: int) -> Ref:
    """An ``m x n`` matrix made from any value as ``D + tanh(M) / (5 max(m, n))`` with ``D``
    diagonal, ``D_ii = k - i`` (``k = min(m, n)``): the perturbation's 2-norm is at most 0.2
    (Weyl), so the singular values stay at least 0.6 apart and at least 0.8, where
    ``svdvals``, ``svd_u`` and ``svd_v`` are smooth."""
    k = min(m, n)
    diagonal = np.zeros((m, n), dtype=b.dtype)
    diagonal[np.arange(k), np.arange(k)] = np.arange(k, 0, -1)
    squashed = b._append(Step("tanh", (b.value(shape=(m, n)),)))
    scaled = b._append(Step("mul", (squashed, 1.0 / (5 * max(m, n)))))
    return b._append(Step("add", (scaled, b.constant(diagonal))))


@register_recipe("svdvals")
@register_recipe("svd_u")
@register_recipe("svd_v")
def _any_matrix_with_separated_singular_values(b, op):
    return [_separated_singular_values(b, b.choose.integer(1, 3), b.choose.integer(1, 3))], {}


@register_recipe("det")
@register_recipe("logdet")
@register_recipe("inverse")
def _square_matrix(b, op):
    return [_well_conditioned(b, b.choose.integer(1, 3))], {}


@register_recipe("det_sign")
@register_recipe("logabsdet")
def _any_sign_matrix(b, op):
    """A well-conditioned matrix, its first two rows swapped half the time (a negative
    determinant)."""
    n = b.choose.integer(1, 3)
    matrix = _well_conditioned(b, n)
    if n > 1 and b.choose.boolean():
        order = np.array([1, 0] + list(range(2, n)), dtype=np.intp)
        matrix = b._append(Step("getitem", (matrix,), {"index": (order,)}))
    return [matrix], {}


@register_recipe("cholesky")
def _positive_definite(b, op):
    """An ``n x n`` symmetric positive definite matrix made from any value as
    ``I + T T^T / n`` with ``T = tanh(M)``."""
    n = b.choose.integer(1, 3)
    squashed = b._append(Step("tanh", (b.value(shape=(n, n)),)))
    transposed = b._append(Step("transpose", (squashed,), {"dim0": 0, "dim1": 1}))
    gram = b._append(Step("matmul", (squashed, transposed)))
    scaled = b._append(Step("mul", (gram, 1.0 / n)))
    return [b._append(Step("add", (scaled, b.constant(np.eye(n, dtype=b.dtype)))))], {}


@register_recipe("solve")
def _solve(b, op):
    n = b.choose.integer(1, 3)
    right = b.choose.element([(n,), (n, 1), (n, 2)])
    return [_well_conditioned(b, n), b.value(shape=right)], {}


@register_recipe("matmul")
def _matmul(b, op):
    a = b.value(min_ndim=1)
    shape = b.shape(a)
    k = shape[-1]
    m = b.choose.element([None, 1, 2])
    other = b.value(shape=(k,) if m is None else (k, m))
    return [a, other], {}


@register_recipe("transpose")
def _transpose(b, op):
    x = b.value(min_ndim=2)
    ndim = len(b.shape(x))
    dim0 = b.choose.integer(-ndim, ndim - 1)
    dim1 = b.choose.element([d for d in range(-ndim, ndim) if d % ndim != dim0 % ndim])
    return [x], {"dim0": dim0, "dim1": dim1}


@register_recipe("permute")
def _permute(b, op):
    x = b.value(min_ndim=2)
    dims = list(range(len(b.shape(x))))
    order = []
    while dims:
        order.append(dims.pop(b.choose.integer(0, len(dims) - 1)))
    return [x], {"dims": tuple(order)}


@register_recipe("reshape")
def _reshape(b, op):
    x = b.value()
    n = int(np.prod(b.shape(x)))
    options = [(n,), (1, n)] + [(d, n // d) for d in range(2, n) if n % d == 0]
    if n == 1:
        options.append(())
    shape = b.choose.element(options)
    if len(shape) == 2 and b.choose.boolean():
        shape = (shape[0], -1)
    return [x], {"shape": shape}


@register_recipe("unsqueeze")
def _unsqueeze(b, op):
    x = b.value(max_ndim=2)
    ndim = len(b.shape(x))
    return [x], {"dim": b.choose.integer(-ndim - 1, ndim)}


@register_recipe("squeeze")
def _squeeze(b, op):
    x = b.value(min_ndim=1, fresh_shapes=[(1, 3), (3, 1), (2, 1, 2)])
    shape = b.shape(x)
    ones = [i for i, s in enumerate(shape) if s == 1]
    return [x], {"dim": b.choose.element([None, *ones, *range(len(shape))])}


@register_recipe("broadcast_to")
def _broadcast_to(b, op):
    x = b.value(max_ndim=2)
    shape = b.shape(x)
    options = [(2,) + shape] + [shape[:i] + (2,) + shape[i + 1:] for i, s in enumerate(shape) if s == 1]
    options = [s for s in options if int(np.prod(s)) <= MAX_NUMEL]
    return [x], {"shape": b.choose.element(options or [shape])}


@register_recipe("sum_to")
def _sum_to(b, op):
    x = b.value(min_ndim=1)
    return [x], {"shape": b.choose.element([s for s in _broadcastable_shapes(b.shape(x))])}


def _index_for(b: ProgramBuilder, shape: tuple) -> tuple:
    """An indexing key for an array of ``shape``: ints, slices, None, Ellipsis, integer
    arrays (with repeats) or a boolean mask."""
    n = shape[0]
    kind = b.choose.element(["int", "slice", "none", "ellipsis", "array", "mask"])
    if kind == "int":
        return (b.choose.integer(-n, n - 1),)
    if kind == "slice":
        start = b.choose.integer(0, n - 1)
        return (slice(start, None, b.choose.element([None, 2])),)
    if kind == "none":
        return (None, slice(None, None, None))
    if kind == "ellipsis":
        return (Ellipsis, b.choose.integer(0, shape[-1] - 1))
    if kind == "array":
        return (np.array([b.choose.integer(0, n - 1) for _ in range(b.choose.integer(1, 3))], dtype=np.intp),)
    mask = b.choose.rng.random(n) < 0.5
    mask[b.choose.integer(0, n - 1)] = True
    return (mask,)


@register_recipe("getitem")
def _getitem(b, op):
    x = b.value(min_ndim=1)
    return [x], {"index": _index_for(b, b.shape(x))}


@register_recipe("index_put")
def _index_put(b, op):
    shape = b.choose.element([s for s in LEAF_SHAPES if s])
    index = _index_for(b, shape)
    selected = np.zeros(shape)[index].shape
    return [b.value(shape=selected)], {"shape": shape, "index": index}


@register_recipe("setitem")
def _setitem(b, op):
    x = b.value(min_ndim=1)
    index = _index_for(b, b.shape(x))
    if any(isinstance(i, np.ndarray) and i.dtype != bool and len(set(i.tolist())) < i.size for i in index):
        index = (slice(0, 1, None),)  # repeated indices make assignment order matter
    selected = np.zeros(b.shape(x))[index].shape
    value = b.value(shape=selected) if b.choose.boolean() else b.value(shape=())
    return [x, value], {"index": index}


@register_recipe("cat")
def _cat(b, op):
    x = b.value(min_ndim=1)
    shape = b.shape(x)
    dim = b.choose.integer(-len(shape), len(shape) - 1)
    axis = dim % len(shape)
    others = []
    for _ in range(b.choose.integer(1, 2)):
        size = b.choose.integer(1, 2)
        others.append(b.value(shape=shape[:axis] + (size,) + shape[axis + 1:]))
    return [x, *others], {"dim": dim}


@register_recipe("stack")
def _stack(b, op):
    x = b.value(max_ndim=2)
    shape = b.shape(x)
    others = [b.value(shape=shape) for _ in range(b.choose.integer(1, 2))]
    return [x, *others], {"dim": b.choose.integer(-len(shape) - 1, len(shape))}


# ----------------------------------------------------------------------------- composites
CompositeRecipe = Callable[[ProgramBuilder], tuple[list, dict]]
COMPOSITES: dict[str, tuple[Callable, CompositeRecipe, str]] = {}
"""``name: (function, recipe, source)``; ``source`` is the function's public dotted name."""


def register_composite(name: str, function: Callable, source: str | None = None):
    """Declare how random programs call the composite ``function``: ``recipe(builder)``
    returns ``(args, attrs)``, args the values (:meth:`ProgramBuilder.value`) and constants
    in ``function``'s order, attrs by keyword. ``source`` is the name the program's source
    calls it by (``symgrad.<name>`` by default). A decorator.

    >>> from symgrad.tape.composites import ravel
    >>> @register_composite("ravel_for_the_doctest", ravel, "symgrad.ravel")
    ... def _(b):
    ...     return [b.value()], {}
    >>> "ravel_for_the_doctest" in default_ops()
    True
    >>> del COMPOSITES["ravel_for_the_doctest"]
    """
    def add(recipe: CompositeRecipe) -> CompositeRecipe:
        COMPOSITES[name] = (function, recipe, source or f"symgrad.{name}")
        return recipe
    return add


def _axis(b: ProgramBuilder, x: Ref) -> int:
    """A dim of ``x`` (negative half the time)."""
    ndim = len(b.shape(x))
    return b.choose.integer(-ndim, ndim - 1)


@register_composite("flip", composites.flip)
def _flip(b):
    x = b.value(min_ndim=1)
    return [x], {"dims": (_axis(b, x),)}


@register_composite("roll", composites.roll)
def _roll(b):
    x = b.value(min_ndim=1)
    return [x], {"shifts": b.choose.integer(-3, 3), "dims": _axis(b, x)}


@register_composite("movedim", composites.movedim)
def _movedim(b):
    x = b.value(min_ndim=2)
    return [x], {"source": _axis(b, x), "destination": _axis(b, x)}


def unbind_piece(x, dim: int, k: int):
    """Tensor ``k`` of ``unbind(x, dim)``: a program's step takes one output."""
    return composites.unbind(x, dim)[k]


def chunk_piece(x, chunks: int, dim: int, k: int):
    """Tensor ``k`` of ``chunk(x, chunks, dim)``."""
    return composites.chunk(x, chunks, dim)[k]


def split_piece(x, split_size: int, dim: int, k: int):
    """Tensor ``k`` of ``split(x, split_size, dim)``."""
    return composites.split(x, split_size, dim)[k]


@register_composite("unbind", unbind_piece, "symgrad.testing.generator.unbind_piece")
def _unbind(b):
    x = b.value(min_ndim=1, nonempty=True)
    dim = _axis(b, x)
    return [x], {"dim": dim, "k": b.choose.integer(0, b.shape(x)[dim] - 1)}


def _pieces(b: ProgramBuilder, count_name: str, length_of: Callable[[int, int], int]):
    """``chunk``'s and ``split``'s recipe: a count (chunks, or a piece's length) drawn from
    1 to the size ``n`` of a dim, each piece ``length_of(n, count)`` long but the last, and
    one of the pieces."""
    x = b.value(min_ndim=1, nonempty=True)
    dim = _axis(b, x)
    n = b.shape(x)[dim]
    count = b.choose.integer(1, n)
    length = length_of(n, count)
    return [x], {count_name: count, "dim": dim, "k": b.choose.integer(0, -(-n // length) - 1)}


@register_composite("chunk", chunk_piece, "symgrad.testing.generator.chunk_piece")
def _chunk(b):
    return _pieces(b, "chunks", lambda n, chunks: -(-n // chunks))


@register_composite("split", split_piece, "symgrad.testing.generator.split_piece")
def _split(b):
    return _pieces(b, "split_size", lambda n, size: size)


def sorted_values(x, dim: int, descending: bool):
    """The values of ``sort(x, dim, descending)``: a program's step takes one output."""
    return composites.sort(x, dim, descending).values


def topk_values(x, k: int, dim: int, largest: bool):
    """The values of ``topk(x, k, dim, largest)``."""
    return composites.topk(x, k, dim, largest).values


@register_composite("sort", sorted_values, "symgrad.testing.generator.sorted_values")
def _sort(b):
    x = b.value(min_ndim=1)
    return [x], {"dim": _axis(b, x), "descending": b.choose.boolean()}


@register_composite("topk", topk_values, "symgrad.testing.generator.topk_values")
def _topk(b):
    x = b.value(min_ndim=1, nonempty=True)
    dim = _axis(b, x)
    return [x], {"k": b.choose.integer(1, b.shape(x)[dim]), "dim": dim, "largest": b.choose.boolean()}


@register_composite("count_nonzero", composites.count_nonzero)
def _count_nonzero(b):
    # zeros that stay zeros (a value away from 0 times a constant 0/1 array): a small step
    # of the inputs changes no element's being zero, so the count has no jump there
    x = b.value(domain=AWAY_FROM_ZERO)
    keep = (b.choose.rng.random(b.shape(x)) < 0.6).astype(b.dtype)
    masked = b._append(Step("mul", (x, b.constant(keep))))
    return [masked], {"dim": _dim_choice(b, len(b.shape(x)))}


@register_composite("narrow", composites.narrow)
def _narrow(b):
    x = b.value(min_ndim=1, nonempty=True)  # an index along any dim
    dim = _axis(b, x)
    n = b.shape(x)[dim]
    start = b.choose.integer(0, n - 1)
    return [x], {"dim": dim, "start": start, "length": b.choose.integer(1, n - start)}


@register_composite("select", composites.select)
def _select(b):
    x = b.value(min_ndim=1, nonempty=True)  # an index along any dim
    dim = _axis(b, x)
    n = b.shape(x)[dim]
    return [x], {"dim": dim, "index": b.choose.integer(-n, n - 1)}


def _indices(b: ProgramBuilder, n: int, shape: tuple) -> np.ndarray:
    """An int64 array of ``shape`` with values in ``[0, n)`` (repeats allowed)."""
    return np.array([b.choose.integer(0, n - 1) for _ in range(int(np.prod(shape)))], dtype=np.int64).reshape(shape)


@register_composite("index_select", composites.index_select)
def _index_select(b):
    x = b.value(min_ndim=1, nonempty=True)  # an index along any dim
    dim = _axis(b, x)
    return [x], {"dim": dim, "index": _indices(b, b.shape(x)[dim], (b.choose.integer(1, 3),))}


def _gather_index(b: ProgramBuilder, shape: tuple, dim: int) -> np.ndarray:
    """An index for ``gather``/``scatter_add`` along ``dim`` of an array of ``shape``: no
    larger than it in the other dims."""
    index_shape = tuple(b.choose.integer(1, 2) if d == dim % len(shape) else b.choose.integer(1, n)
                        for d, n in enumerate(shape))
    return _indices(b, shape[dim], index_shape)


@register_composite("gather", composites.gather)
def _gather(b):
    x = b.value(min_ndim=1, nonempty=True)  # an index along any dim
    dim = _axis(b, x)
    return [x], {"dim": dim, "index": _gather_index(b, b.shape(x), dim)}


@register_composite("take_along_dim", composites.take_along_dim)
def _take_along_dim(b):
    x = b.value(min_ndim=1, nonempty=True)  # an index along any dim
    shape = b.shape(x)
    dim = _axis(b, x) % len(shape)
    # indices broadcast against x outside dim: each of those sizes is x's or 1
    index_shape = tuple(b.choose.integer(1, 2) if d == dim else b.choose.element([n, 1]) for d, n in enumerate(shape))
    return [x], {"indices": _indices(b, shape[dim], index_shape), "dim": dim}


@register_composite("scatter_add", composites.scatter_add)
def _scatter_add(b):
    x = b.value(min_ndim=1, nonempty=True)  # an index along any dim
    dim = _axis(b, x)
    index = _gather_index(b, b.shape(x), dim)
    return [x, dim, index, b.value(shape=index.shape)], {}


@register_composite("masked_fill", composites.masked_fill)
def _masked_fill(b):
    x = b.value()
    mask = b.choose.rng.random(b.choose.element(_broadcastable_shapes(b.shape(x)))) < 0.5
    return [x], {"mask": mask, "value": b.choose.element([0.0, -1.5, 2.0])}


@register_composite("diagonal", composites.diagonal)
def _diagonal(b):
    x = b.value(min_ndim=2)
    dim1 = _axis(b, x)
    dim2 = b.choose.element([d for d in range(len(b.shape(x))) if d != dim1 % len(b.shape(x))])
    return [x], {"offset": b.choose.integer(-1, 1), "dim1": dim1, "dim2": dim2}


@register_composite("trace", composites.trace)
def _trace(b):
    return [b.value(min_ndim=2, max_ndim=2)], {}


@register_composite("triu", composites.triu)
def _triangle(b):
    return [b.value(min_ndim=2)], {"diagonal": b.choose.integer(-1, 1)}


@register_recipe("tril")
def _tril(b, op):
    return [b.value(min_ndim=2)], {"diagonal": b.choose.integer(-1, 1)}


@register_composite("var", composites.var)
@register_composite("std", composites.std)
def _spread(b):
    x = b.value(min_ndim=1, domain=Domain(-2.0, 2.0))
    dim = b.choose.element([None, _axis(b, x)])
    if (b.shape(x)[dim] if dim is not None else int(np.prod(b.shape(x)))) < 2:
        raise Reject("var/std need two elements (correction 1)")
    return [x], {"dim": dim, "keepdim": b.choose.boolean()}


@register_composite("tile", composites.tile)
def _tile(b):
    x = b.value(max_ndim=2)
    return [x], {"dims": tuple(b.choose.integer(1, 2) for _ in range(b.choose.integer(1, 2)))}


@register_composite("repeat_interleave", composites.repeat_interleave)
def _repeat_interleave(b):
    x = b.value(min_ndim=1)
    return [x], {"repeats": 2, "dim": _axis(b, x)}


@register_composite("outer", composites.outer)
def _outer(b):
    return [b.value(min_ndim=1, max_ndim=1), b.value(min_ndim=1, max_ndim=1)], {}


@register_composite("inner", composites.inner)
def _inner(b):
    x = b.value(min_ndim=1)
    return [x, b.value(shape=b.shape(x)[-1:])], {}


@register_composite("kron", composites.kron)
def _kron(b):
    return [b.value(max_ndim=2), b.value(max_ndim=2)], {}


@register_composite("ravel", composites.ravel)
@register_composite("atleast_1d", composites.atleast_1d)
@register_composite("atleast_2d", composites.atleast_2d)
def _any_value(b):
    return [b.value()], {}


@register_composite("diag", composites.diag)
def _diag(b):
    return [b.value(min_ndim=1, max_ndim=2)], {"diagonal": b.choose.integer(-1, 1)}


@register_composite("repeat", composites.repeat)
def _repeat(b):
    x = b.value(max_ndim=2)
    sizes = [b.choose.integer(1, 2) for _ in range(len(b.shape(x)) + b.choose.integer(0, 1))]
    return [x, *sizes], {}


@register_composite("tensordot", composites.tensordot)
def _tensordot(b):
    a = b.value(min_ndim=1, max_ndim=2)
    return [a, b.value(shape=b.shape(a)[-1:] + (b.choose.integer(1, 3),))], {"dims": 1}


@register_composite("einsum", composites.einsum)
def _einsum(b):
    """A matrix product, a trace-free transpose with a sum, or an inner product."""
    m, n = b.choose.integer(1, 3), b.choose.integer(1, 3)
    a = b.value(shape=(m, n))
    equation = b.choose.element(["ij,jk->ik", "ij->j", "ij,ij->i"])
    if equation == "ij,jk->ik":
        return [equation, a, b.value(shape=(n, b.choose.integer(1, 3)))], {}
    if equation == "ij->j":
        return [equation, a], {}
    return [equation, a, b.value(shape=(m, n))], {}


@register_composite("pad", composites.pad, "symgrad.nn.functional.pad")
def _pad(b):
    x = b.value(min_ndim=1)
    return [x], {"pad": (b.choose.integer(0, 1), b.choose.integer(0, 1)), "value": b.choose.element([0.0, 0.5])}


@register_composite("matrix_norm", linalg.matrix_norm, "symgrad.linalg.matrix_norm")
def _matrix_norm(b):
    # abs has a kink at 0, the Frobenius norm where the matrix is 0: values kept away from 0;
    # the orders of the singular values have kinks where two meet or one is 0: a matrix
    # whose singular values are apart
    order = b.choose.element(list(linalg.MATRIX_ORDERS))
    if order in ("nuc", 2, -2):
        x = _separated_singular_values(b, b.choose.integer(1, 3), b.choose.integer(1, 3))
    else:
        x = b.value(min_ndim=2, domain=AWAY_FROM_ZERO, nonempty=True)  # (the 1-norm is a largest column sum)
    return [x], {"ord": order, "keepdim": b.choose.boolean()}


@register_composite("vector_norm", composites.vector_norm, "symgrad.linalg.vector_norm")
def _vector_norm(b):
    x = b.value(domain=AWAY_FROM_ZERO, nonempty=True)  # (the inf-norm is a largest element)
    order = b.choose.element([1, 3, float("inf")])
    # the inf-norm is not implemented over several dims but all of them: one dim, or all
    return [x], {"ord": order, "dim": _dim_choice(b, len(b.shape(x)), allow_tuple=order != float("inf"))}


# ----------------------------------------------------------------------------- rounding jumps
ROUNDED_IDENTITIES: dict[str, Callable] = {  # name -> (x, c) -> x, computed with roundings in between
    "itself": lambda x, c: x,
    "scaled back": lambda x, c: (x * c) / c,
    "divided back": lambda x, c: (x / c) * c,
    "shifted back": lambda x, c: (x + c) - c,
    "squared back": lambda x, c: (x * x) / x,
    "times a reciprocal": lambda x, c: x * (x * apply_op("reciprocal", x)),
}
"""Ways to compute a value ``q`` equal to ``x`` in exact arithmetic but not always in floating
point: ``(x*3)/3`` differs from ``x`` in the last bit for some ``x``, ``x*(1/x)`` from 1."""

JUMPS: dict[str, Callable] = {  # name -> (q, x) -> a value with a jump where q meets x
    "floor of the ratio": lambda q, x: apply_op("floor", q / x),
    "ceil of the ratio": lambda q, x: apply_op("ceil", q / x),
    "trunc of the ratio": lambda q, x: apply_op("trunc", q / x),
    "round of the ratio": lambda q, x: apply_op("round", (q / x) * 1.5),
    "remainder": lambda q, x: apply_op("remainder", q, x),
    "fmod": lambda q, x: apply_op("fmod", q, x),
    "floor_divide": lambda q, x: apply_op("floor_divide", q, x),
    "maximum": lambda q, x: apply_op("maximum", q, x),
    "minimum": lambda q, x: apply_op("minimum", x, q),
    "sign of the difference": lambda q, x: apply_op("sign", q - x),
    "where equal": lambda q, x: apply_op("where", apply_op("eq", q, x), q, x * 2.0),
    "where at least": lambda q, x: apply_op("where", apply_op("ge", q, x), x * 3.0, q),
}
"""Jump functions at the point where ``q`` meets ``x`` (``floor(q/x)`` is 1 or 0, ``q % x`` 0 or
about ``x``, ``maximum(q, x)`` a tie or not): one rounding decides a whole step there."""

ROUNDING_CONSTANTS = (3.0, 0.1, 7.0, 10.0, 1.0 / 3.0, 0.7)


def rounding_jump(x: Tensor, *, identity: str, jump: str, c: float) -> Tensor:
    """``jump(q, x) * x`` for ``q = identity(x, c)`` (:data:`ROUNDED_IDENTITIES`,
    :data:`JUMPS`): a value with a jump exactly where a rounding of the forward decides it.
    Every way of evaluating a program (the eager tape, the symbolic backward, compiled
    transforms, ``create_graph=True``) must give the eager forward's answer there, which
    it does only if it computes each op as recorded (``(x*3)/3`` is not ``x``).  Finite
    differences cannot check these (they cross the jump): compare paths with each other.

    >>> import numpy as np
    >>> x = Tensor(np.array([1.9, 7.0]))
    >>> rounding_jump(x, identity="scaled back", jump="floor of the ratio", c=3.0)
    tensor([0., 7.])
    """
    if identity not in ROUNDED_IDENTITIES or jump not in JUMPS:
        raise ValueError(f"unknown identity {identity!r} or jump {jump!r}: choose from {sorted(ROUNDED_IDENTITIES)} "
                         f"and {sorted(JUMPS)}")
    return JUMPS[jump](ROUNDED_IDENTITIES[identity](x, c), x) * x


ROUNDING_JUMP = "rounding_jump"
"""The name random programs draw :func:`rounding_jump` by, when asked: ``ops=default_ops() +
[ROUNDING_JUMP]``."""

EXACTLY_REPEATED_OPS = frozenset({"add", "sub", "mul", "div", "neg", "reshape", "transpose", "permute", "unsqueeze",
                                  "squeeze", "broadcast_to", "getitem", "where", ROUNDING_JUMP})
"""Ops every evaluation path computes bit for bit as the eager forward does (one IEEE
operation, or no arithmetic).  :func:`rounding_jump` takes its argument from inputs and
these only: an op whose closed form rounds differently from its NumPy forward in the last
bit (``lgamma``, ``logsumexp``) would move the jump by itself, which is not what it tests."""


def _exactly_repeated(b: ProgramBuilder) -> list[int]:
    """The values of ``b`` computed from inputs by :data:`EXACTLY_REPEATED_OPS` only."""
    exact: set = set()
    for index, item in enumerate(b.layout):
        if not isinstance(item, Step):
            exact.add(index)
        elif item.op in EXACTLY_REPEATED_OPS and all(a.index in exact for a in item.args if isinstance(a, Ref)):
            exact.add(index)
    return [i for i in sorted(exact) if b.values[i].dtype.kind == "f"]


def _rounding_jump(b: ProgramBuilder) -> tuple[list, dict]:
    candidates = _exactly_repeated(b)
    if not candidates or (len(b.inputs) < b.max_leaves and b.choose.boolean()):
        x = b._leaf(b.choose.element(list(LEAF_SHAPES)), AWAY_FROM_ZERO)
    else:
        x = b.into_domain(Ref(b.choose.element(candidates)), AWAY_FROM_ZERO)  # divided by: away from 0
    return [x], {"identity": b.choose.element(sorted(ROUNDED_IDENTITIES)), "jump": b.choose.element(sorted(JUMPS)),
                 "c": b.choose.element(list(ROUNDING_CONSTANTS))}


PATH_ONLY_COMPOSITES: dict[str, tuple[Callable, CompositeRecipe, str]] = {
    ROUNDING_JUMP: (rounding_jump, _rounding_jump, "symgrad.testing.generator.rounding_jump"),
}
"""Composites as in :data:`COMPOSITES`, drawn only when ``ops`` names them: finite
differences cannot check them (they sit on jumps), so they are for comparing the ways of
evaluating a program with each other, never among :func:`default_ops`."""


def default_ops() -> list[str]:
    """What random programs draw from by default: every covered op of the table and
    every composite of :data:`COMPOSITES`."""
    return covered_ops() + sorted(COMPOSITES)


def covered_ops() -> list[str]:
    """Ops of the table that random programs can use."""
    return sorted(name for name, op in OPS.items() if name in RECIPES or op.kind == "elementwise")


def uncovered_ops() -> list[str]:
    """Ops of the table without a recipe (random programs never use them)."""
    return sorted(set(OPS) - set(covered_ops()))


def random_program(rng: np.random.Generator, ops: Sequence[str] | None = None, *, max_steps: int = 4,
                   max_leaves: int = 3, dtype=np.float64, tries: int = 100) -> Program:
    """A random program (and inputs) over ``ops`` (default: :func:`default_ops`).

    Unlike :func:`symgrad.testing.strategies.programs` this needs no Hypothesis.
    """
    ops = list(ops) if ops is not None else default_ops()
    for _ in range(tries):
        builder = ProgramBuilder(RandomChooser(rng), max_leaves=max_leaves, dtype=dtype)
        try:
            return builder.build(ops, builder.choose.integer(1, max_steps))
        except Reject:
            continue
    raise RuntimeError(f"could not build a valid program over {ops} in {tries} tries")


def elementwise_dag(m: Any, xs: Sequence[Any], n_ops: int, seed: int = 0) -> Any:
    """A seeded random DAG of ``n_ops`` elementwise ops (``tanh``, ``sin``, ``cos``, ``+``,
    ``*``, scaling by a constant) over ``xs`` and the last eight values, with shared
    subexpressions; ``m`` is the namespace that provides ``tanh``/``sin``/``cos``
    (``symgrad``, ``numpy``, ``sympy``, ``jax.numpy`` ...), so the same program runs in
    every tool (the benchmark suite's W5 workload and the growth tests).

    >>> import numpy as np
    >>> float(np.round(elementwise_dag(np, [np.float64(0.5)], 3, seed=1), 6))
    0.479426
    """
    rng = np.random.default_rng(seed)
    values = list(xs)
    for _ in range(n_ops):
        k = int(rng.integers(6))
        a = values[-1 - int(rng.integers(min(8, len(values))))]
        b = values[-1 - int(rng.integers(min(8, len(values))))]
        c = float(np.round(rng.uniform(0.5, 1.5), 3))
        values.append((lambda: m.tanh(a), lambda: m.sin(a), lambda: a * b, lambda: a + b, lambda: a * c,
                       lambda: m.cos(a))[k]())
    return values[-1]
