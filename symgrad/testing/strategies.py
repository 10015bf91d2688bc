"""Hypothesis strategies: random differentiable programs and valid inputs for them.

* :func:`programs` -- a :class:`~symgrad.testing.generator.Program` over ops of the op table
  (and your own functions), with inputs inside every op's domain.  The program's structure
  (which ops, which arguments, which attributes) is drawn by Hypothesis and shrinks to a
  small failing example; input values come from a generator seeded by a drawn integer.
* :func:`op_programs` -- programs that apply one given op (plus the steps that move its
  arguments into its domain), for fuzzing a single op.
* :func:`arrays_in` -- arrays of a shape drawn from a :class:`~symgrad.ops.Domain`.

>>> from hypothesis import given, settings
>>> import symgrad, symgrad.check
>>> @settings(max_examples=5, deadline=None)
... @given(programs(ops=["sin", "mul", "sum"]))
... def test_tape_matches_finite_differences(program):
...     symgrad.check.gradcheck(program, program.tensors(), engines=("tape",))
>>> test_tape_matches_finite_differences()
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st

from ..ops import Domain
from .generator import Chooser, ProgramBuilder, Reject, default_ops

__all__ = ["programs", "op_programs", "arrays_in", "HypothesisChooser"]


class HypothesisChooser(Chooser):
    """Choices drawn by Hypothesis (so they shrink); values from a seeded NumPy generator."""

    def __init__(self, draw, seed: int) -> None:
        self.draw = draw
        self.rng = np.random.default_rng(seed)

    def draw_integer(self, low: int, high: int) -> int:
        return self.draw(st.integers(low, high))

    def boolean(self) -> bool:
        return self.draw(st.booleans())


@st.composite
def programs(draw, ops: Sequence[str] | None = None, *, max_steps: int = 4, max_leaves: int = 3,
             dtype=np.float64, functions: dict[str, tuple[Callable, tuple[Domain, ...]]] | None = None,
             require: str | None = None):
    """Random programs over ``ops`` (default: every op and composite random programs can
    call, :func:`~symgrad.testing.generator.default_ops`).

    ``functions`` adds your own differentiable functions, ``{"name": (function, domains)}``
    with one :class:`~symgrad.ops.Domain` per tensor argument; ``require`` names an op (or
    function) every program applies at least once.
    """
    functions = functions or {}
    ops = list(ops) if ops is not None else default_ops()
    ops += [name for name in functions if name not in ops]
    if not ops and require is None:
        raise ValueError("programs() needs at least one op")
    seed = draw(st.integers(0, 2 ** 32 - 1))
    builder = ProgramBuilder(HypothesisChooser(draw, seed), max_leaves=max_leaves, dtype=dtype,
                             functions=functions)
    steps = draw(st.integers(1, max_steps))
    try:
        if require is not None:
            before = draw(st.integers(0, steps - 1))
            for _ in range(before):
                builder.apply(builder.choose.element(ops))
            builder.apply(require)
            return builder.build(ops or [require], steps - before - 1)
        return builder.build(ops, steps)
    except Reject:
        reject()


def op_programs(op: str, *, max_leaves: int = 3, dtype=np.float64, functions=None):
    """Programs that apply ``op`` once to valid arguments (plus domain-fixing steps)."""
    return programs(ops=[op], max_steps=1, max_leaves=max_leaves, dtype=dtype, functions=functions)


def arrays_in(domain: Domain = Domain(), shape: tuple[int, ...] = (), dtype=np.float64):
    """Arrays of ``shape`` with values drawn (and shrunk) by Hypothesis inside ``domain``,
    at least ``domain.margin`` away from the points it avoids.

    >>> from hypothesis import given, settings
    >>> @settings(max_examples=10)
    ... @given(arrays_in(Domain(0.1, 3.0), (2,)))
    ... def test_positive(x):
    ...     assert x.shape == (2,) and (x >= 0.1).all()
    >>> test_positive()
    """
    if domain.integer:
        element = st.integers(int(domain.low), int(domain.high)).map(float)
    else:
        element = st.floats(domain.low, domain.high, allow_nan=False, allow_infinity=False).filter(
            lambda v: all(abs(v - p) >= domain.margin for p in domain.avoid))
    size = int(np.prod(shape, dtype=np.int64))
    return st.lists(element, min_size=size, max_size=size).map(
        lambda values: np.array(values, dtype=dtype).reshape(shape))
