"""What a gradient check found, and how it reads: tolerances, records, the result, the error.

A check compares *blocks*: for one output and one input, a matrix whose rows are output
elements (or one random projection of them, in fast mode) and whose columns are input
elements (or one random direction).  The reference is always the central finite difference;
every engine (or hand-written gradient) is compared with it, and with the first engine.

* :class:`Mismatch` -- one element that disagrees, with every value needed to see why;
* :class:`Kink` -- an element where the finite-difference stencil straddles a point at
  which the one-sided derivatives differ (relu, abs, clamp, max): not a failure, a note;
* :class:`GradcheckResult` -- everything a check found; truthy when all agree, and
  ``str(result)`` is the report;
* :class:`GradcheckError` -- raised with that report when ``raise_exception=True``.

>>> default_tolerances(np.float64)
Tolerances(eps=None, atol=1e-05, rtol=0.001)
>>> default_tolerances(np.float32)
Tolerances(eps=None, atol=0.0001, rtol=0.01)
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Tolerances", "default_tolerances", "Mismatch", "Kink", "Block", "GradcheckResult", "GradcheckError",
    "KinkWarning", "Float32Warning", "SympyFormWarning", "EngineUnavailableWarning", "EngineUnavailableError",
]


class GradcheckError(RuntimeError):
    """A gradient disagrees with finite differences (or with another engine).

    The message is the full report (see :class:`GradcheckResult`); ``error.result`` holds
    the same details as data.
    """

    def __init__(self, result: "GradcheckResult") -> None:
        super().__init__(result.report())
        self.result = result


class KinkWarning(UserWarning):
    """A finite difference straddled a kink (relu, abs, clamp, max); the element was not
    counted as a mismatch because the gradient is one of the one-sided derivatives."""


class Float32Warning(UserWarning):
    """A gradient check of float32 (or float16) tensors: rounding makes the check loose."""


class SympyFormWarning(UserWarning):
    """A custom Function's ``sympy`` form could not be compiled, so it was not checked (the
    Function's ``backward`` still was): not a failure of the check."""


class EngineUnavailableWarning(UserWarning):
    """A default engine (normally ``"symbolic"``) could not be loaded and was skipped."""


class EngineUnavailableError(RuntimeError):
    """An engine asked for by name could not be loaded."""


@dataclass(frozen=True)
class Tolerances:
    """Step and tolerances of a check: an element passes when
    ``|value - reference| <= atol + rtol * |reference| + fd_error``, where ``fd_error`` is
    the finite difference's own estimated error.  ``eps=None`` chooses the step per element
    (:func:`symgrad.check.numerical.step_for`); a number fixes it."""

    eps: float | None
    atol: float
    rtol: float

    def bound(self, reference):
        """The largest allowed absolute error for ``reference`` (elementwise)."""
        return self.atol + self.rtol * np.abs(reference)


_DEFAULTS = {
    np.dtype(np.float64): Tolerances(None, 1e-5, 1e-3),
    np.dtype(np.float32): Tolerances(None, 1e-4, 1e-2),
    np.dtype(np.float16): Tolerances(None, 1e-2, 1e-1),
}


def default_tolerances(dtype) -> Tolerances:
    """The default step and tolerances for gradients computed in ``dtype``.

    The step is chosen per element by the finite differences (``eps=None``); ``atol`` and
    ``rtol`` grow with the rounding error of the engines' arithmetic.
    """
    return _DEFAULTS.get(np.dtype(dtype), _DEFAULTS[np.dtype(np.float64)])


# --------------------------------------------------------------------------- records
def element_name(name: str, index: tuple, shape: tuple) -> str:
    """``x[1, 2]`` for an element, ``x`` for a 0-d tensor, ``x·u`` for a projection."""
    if index is None:
        return f"{name}·u"
    if len(shape) == 0 or not len(index):
        return name
    return f"{name}[{', '.join(str(int(i)) for i in index)}]"


@dataclass
class Mismatch:
    """One Jacobian element on which ``label`` disagrees with ``reference``.

    ``output``/``input`` are positions in the function's outputs and arguments;
    ``out_index``/``in_index`` the element (``None`` in fast mode, where the element is a
    random projection).  ``values`` holds every opinion about the element, the numerical
    one included under ``"numerical"``.
    """

    output: int
    input: int
    out_index: tuple | None
    in_index: tuple | None
    label: str
    reference: str
    value: float
    expected: float
    values: dict[str, float]
    tolerances: Tolerances
    out_name: str = "output"
    in_name: str = "input"
    out_shape: tuple = ()
    in_shape: tuple = ()
    fd_error: float = 0.0
    step: float = 0.0

    @property
    def abs_err(self) -> float:
        return _abs_err(self.value, self.expected)

    @property
    def rel_err(self) -> float:
        return _rel_err(self.value, self.expected)

    @property
    def severity(self) -> float:
        """How many times over the allowed error this element is (inf for NaN/inf)."""
        err = self.abs_err
        if not np.isfinite(err):
            return float("inf")
        return err / (float(self.tolerances.bound(self.expected)) + self.fd_error)

    def where(self) -> str:
        """``d out[1] / d x[0, 2]``."""
        return (f"d {element_name(self.out_name, self.out_index, self.out_shape)} / "
                f"d {element_name(self.in_name, self.in_index, self.in_shape)}")

    def pair(self) -> str:
        """``out[1]/x[0, 2]``: the element, briefly."""
        return (f"{element_name(self.out_name, self.out_index, self.out_shape)}/"
                f"{element_name(self.in_name, self.in_index, self.in_shape)}")

    def __str__(self) -> str:
        return (f"{self.where()}: {self.label} {_num(self.value)} vs {self.reference} {_num(self.expected)} "
                f"(abs err {_err(self.abs_err)}, rel err {_err(self.rel_err)})")


@dataclass
class Kink:
    """An element whose finite difference straddles a kink; not counted as a mismatch.

    ``left``/``right`` are the one-sided difference quotients, ``values`` every opinion.
    ``at_point`` is True when the kink is at the test point itself (within ``eps / 10``),
    False when it lies inside the stencil but away from the point.
    """

    output: int
    input: int
    out_index: tuple | None
    in_index: tuple | None
    numerical: float
    left: float
    right: float
    values: dict[str, float]
    at_point: bool
    out_name: str = "output"
    in_name: str = "input"
    out_shape: tuple = ()
    in_shape: tuple = ()

    def where(self) -> str:
        return (f"d {element_name(self.out_name, self.out_index, self.out_shape)} / "
                f"d {element_name(self.in_name, self.in_index, self.in_shape)}")

    def __str__(self) -> str:
        engines = ", ".join(f"{k} {_num(v)}" for k, v in self.values.items() if k != "numerical")
        place = "at the test point" if self.at_point else "inside the finite-difference stencil"
        return (f"{self.where()}: kink {place}; one-sided differences {_num(self.left)} (left) and "
                f"{_num(self.right)} (right), central {_num(self.numerical)}; {engines}")


@dataclass
class Block:
    """The Jacobian of one output with respect to one input, by every opinion.

    ``numerical`` and every array in ``analytic`` have shape (rows, columns); ``bad`` maps
    a label to the boolean mask of its mismatching elements, ``kinks`` marks kink elements.
    ``projected`` is True in fast mode (one row, one column: ``v^T J u``).  ``fd_error`` is
    the estimated error of each finite-difference element, ``steps`` the first step of each.
    ``columns`` says what a column is: one input element (``"elements"``), the input element
    of the same row (``"diagonal"``: an elementwise check), or one given direction
    (``"direction"``: a Hessian-vector product, whose input is named ``x·p``);
    ``column_elements`` lists the flat input element of each column when only a sample of
    the elements was checked.
    """

    output: int
    input: int
    out_name: str
    in_name: str
    out_shape: tuple
    in_shape: tuple
    numerical: np.ndarray
    analytic: dict[str, np.ndarray] = field(default_factory=dict)
    bad: dict[str, np.ndarray] = field(default_factory=dict)
    kinks: np.ndarray | None = None
    projected: bool = False
    fd_error: np.ndarray | float = 0.0
    steps: np.ndarray | float = 0.0
    columns: str = "elements"
    column_elements: np.ndarray | None = None

    def row_index(self, r: int) -> tuple | None:
        return None if self.projected else np.unravel_index(r, self.out_shape) if self.out_shape else ()

    def col_index(self, c: int, r: int = 0) -> tuple | None:
        """The input element of column ``c`` (of row ``r``, in an elementwise check)."""
        if self.projected:
            return None
        if self.columns == "direction":
            return ()
        if self.columns == "diagonal":
            return self.row_index(r)
        if self.column_elements is not None:
            c = int(self.column_elements[c])
        return np.unravel_index(c, self.in_shape) if self.in_shape else ()


# --------------------------------------------------------------------------- the result
@dataclass
class GradcheckResult:
    """Everything a gradient check found.  Truthy when every opinion agrees.

    >>> import symgrad
    >>> x = symgrad.tensor([1.0, 2.0], requires_grad=True)
    >>> result = symgrad.check.gradcheck(lambda x: x * x, (x,), engines=("tape",))
    >>> bool(result), result.mismatches
    (True, [])
    """

    what: str
    order: int
    labels: tuple[str, ...]
    tolerances: Tolerances
    dtype: Any
    blocks: list[Block] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    kinks: list[Kink] = field(default_factory=list)
    errors: dict[str, BaseException] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    fast_mode: bool = False
    notes: list[str] = field(default_factory=list)
    full: "GradcheckResult | None" = None

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.errors

    def __bool__(self) -> bool:
        return self.ok

    @property
    def worst(self) -> Mismatch | None:
        """The mismatch furthest outside its tolerance."""
        return max(self.mismatches, key=lambda m: m.severity) if self.mismatches else None

    def jacobian(self, label: str = "numerical", output: int = 0, input: int = 0) -> np.ndarray:  # noqa: A002
        """One block of the Jacobian as ``label`` computed it (rows: output elements)."""
        for block in self.blocks:
            if block.output == output and block.input == input:
                return block.numerical if label == "numerical" else block.analytic[label]
        raise KeyError(f"no Jacobian block for output {output} and input {input}")

    def __repr__(self) -> str:
        state = "ok" if self.ok else f"{len(self.mismatches)} mismatches, {len(self.errors)} errors"
        skipped = f", skipped {sorted(self.skipped)}" if self.skipped else ""
        kinks = f", {len(self.kinks)} kinks" if self.kinks else ""
        return f"<GradcheckResult {self.what} order {self.order}: {state}{kinks}; checked {list(self.labels)}{skipped}>"

    def __str__(self) -> str:
        return self.report()

    def report(self) -> str:
        """The human-readable report (what :class:`GradcheckError` says)."""
        lines = []
        order = "" if self.order == 1 else " (second derivatives)"
        if self.ok:
            verb = "agrees" if len(self.labels) == 1 else "agree"
            lines.append(f"{self.what}{order} passed: {' and '.join(self.labels)} {verb} with finite differences "
                         f"({_tolerance_text(self.tolerances)}).")
        else:
            lines.append(f"{self.what}{order} failed.")
        for label, error in self.errors.items():
            lines.append(f"{label} raised {type(error).__name__}: {error}")
        if self.mismatches:
            lines.extend(self._mismatch_report())
        if self.kinks:
            lines.append(f"{len(self.kinks)} element(s) straddle a kink and were not counted as mismatches:")
            lines.extend(f"  {kink}" for kink in self.kinks[:5])
            if len(self.kinks) > 5:
                lines.append(f"  ... and {len(self.kinks) - 5} more")
        for label, reason in self.skipped.items():
            lines.append(f"engine {label!r} was not checked: {reason}")
        lines.extend(self.notes)
        if self.full is not None:
            lines.append("")
            lines.append("The full Jacobian check locates the mismatch:")
            lines.append(self.full.report())
        return "\n".join(lines)

    def _mismatch_report(self) -> list[str]:
        worst = self.worst
        block = self._block_of(worst)
        if block.projected:
            what = f"the random projection v^T (d {worst.out_name}/d {worst.in_name}) u"
        else:
            what = f"Jacobian element {worst.where()}"
        lines = [f"Worst mismatch: {what}  (output {worst.output} of shape {list(worst.out_shape)}, "
                 f"input {worst.input} '{worst.in_name}' of shape {list(worst.in_shape)})"]
        width = max(len(k) for k in worst.values)
        reference = worst.values["numerical"]
        for label, value in worst.values.items():
            if label == "numerical":
                lines.append(f"  {label.ljust(width)}  {_num(value, 14)}   (extrapolated central difference, step "
                             f"{worst.step:.2g}, estimated error {_err(worst.fd_error)})")
                continue
            failed = any(m.label == label and (m.output, m.input, m.out_index, m.in_index)
                         == (worst.output, worst.input, worst.out_index, worst.in_index) for m in self.mismatches)
            lines.append(f"  {label.ljust(width)}  {_num(value, 14)}   abs err {_err(_abs_err(value, reference))}"
                         f"  rel err {_err(_rel_err(value, reference))}   {'MISMATCH' if failed else 'ok'}")
        lines.append(f"  tolerances: {_tolerance_text(self.tolerances)}; allowed error here "
                     f"{_err(float(self.tolerances.bound(worst.expected)) + worst.fd_error)}")
        lines.append(f"  finite-difference error here is ~{_err(worst.fd_error)}, the disagreement is {_err(worst.abs_err)}")
        by_pair: dict[tuple, list[Mismatch]] = {}
        for m in self.mismatches:
            by_pair.setdefault((m.output, m.input, m.label, m.reference), []).append(m)
        for found in by_pair.values():
            found = sorted(found, key=lambda m: (m.out_index or (), m.in_index or ()))
            first = found[0]
            against = "finite differences" if first.reference == "numerical" else first.reference
            places = ", ".join(m.pair() for m in found[:8])
            more = f", ... ({len(found) - 8} more)" if len(found) > 8 else ""
            lines.append(f"{first.label} disagrees with {against} on {len(found)} of {self._block_of(first).numerical.size}"
                         f" element(s) of d {first.out_name}/d {first.in_name}: {places}{more}")
            hint = _hint(self._block_of(first), first.label)
            if hint:
                lines.append(f"  hint: {hint}")
        for b in self.blocks:
            if not any(mask.any() for mask in b.bad.values()):
                continue
            if b.numerical.size <= 64 and b.numerical.shape[1] <= 8:
                lines.extend(_table(b))
            elif b is block and not b.projected and b.columns == "elements" and b.column_elements is None \
                    and b.numerical.shape[1] <= 64:
                lines.extend(_gradient_view(b, worst))
        return lines

    def _block_of(self, m: Mismatch) -> Block:
        return next(b for b in self.blocks if (b.output, b.input) == (m.output, m.input) and m.label in b.analytic)


def _hint(block: Block, label: str) -> str:
    """A guess at what is wrong with a hand-written gradient, when the pattern is clear."""
    value, numerical = block.analytic[label], block.numerical
    tol = 1e-6 + 1e-4 * np.abs(numerical)
    if block.projected or not np.isfinite(value).all():
        return ""
    if block.columns == "elements" and block.column_elements is None and len(block.in_shape) == 2 \
            and block.in_shape[0] == block.in_shape[1]:
        flipped = value.reshape((-1, *block.in_shape)).transpose(0, 2, 1).reshape(value.shape)
        if np.all(np.abs(flipped - numerical) <= tol):
            return f"{label}'s gradient is the transpose of the right one (in the shape of {block.in_name})"
    if np.all(np.abs(value + numerical) <= tol):
        return f"{label}'s gradient has the wrong sign"
    bad = block.bad[label]
    if np.all(numerical[bad] == 0) and bad.sum():
        return (f"{label} gives a non-zero gradient where changing {block.in_name} does not change "
                f"{block.out_name} at all (a missing mask, e.g. for the negative part?)")
    if bad.sum() and np.all(value[bad] == 0):
        return (f"{label} gives 0 where {block.out_name} does change with {block.in_name} (was something "
                "detached, or computed outside the graph, e.g. with NumPy or under no_grad?)")
    ratios = value[bad] / np.where(numerical[bad] == 0, np.nan, numerical[bad])
    if ratios.size and np.isfinite(ratios).all() and np.allclose(ratios, ratios[0], rtol=1e-4) and \
            np.all(np.abs(value[~bad] - ratios[0] * numerical[~bad]) <= tol[~bad] * max(1.0, abs(ratios[0]))):
        return f"{label}'s gradient is {ratios[0]:.6g} times the right one"
    return ""


def _size(blocks: list[Block], m: Mismatch) -> int:
    return next(b.numerical.size for b in blocks if (b.output, b.input) == (m.output, m.input) and m.label in b.analytic)


def warn(warning: Warning) -> None:
    """Issue ``warning`` at the first caller outside the symgrad package (the user's line,
    also through ``symgrad.testing`` and the pytest plugin's fixtures)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(warning, stacklevel=level)


def _tolerance_text(tol: Tolerances) -> str:
    return (f"atol={tol.atol:g}, rtol={tol.rtol:g}, pass when |value - reference| <= atol + rtol * |reference| "
            "+ the finite-difference error")


def _table(block: Block) -> list[str]:
    """Side-by-side Jacobian matrices; ``*`` marks a mismatch, ``~`` a kink."""
    out_elems = "the projection" if block.projected else f"{block.out_name} elements"
    in_elems = "the direction" if block.projected else f"{block.in_name} elements"
    header = (f"Jacobian d {block.out_name}/d {block.in_name} (rows: {out_elems}, columns: {in_elems}; "
              f"* mismatch, ~ kink):")
    shape = block.numerical.shape
    marks = [np.zeros(shape, bool), *(block.bad.get(k, np.zeros(shape, bool)) for k in block.analytic)]
    kinks = block.kinks if block.kinks is not None else np.zeros(shape, bool)
    return [header, *_matrices(["numerical", *block.analytic], [block.numerical, *block.analytic.values()],
                               marks, kinks)]


def _gradient_view(block: Block, worst: Mismatch) -> list[str]:
    """The worst output element's gradient, laid out in the input's shape."""
    r = int(np.ravel_multi_index(worst.out_index, block.out_shape)) if block.out_shape else 0
    grid = block.in_shape if len(block.in_shape) == 2 else (1, -1) if len(block.in_shape) < 2 else (-1, block.in_shape[-1])
    rows = [block.numerical[r], *(a[r] for a in block.analytic.values())]
    marks = [np.zeros(block.numerical.shape[1], bool),
             *(block.bad.get(k, np.zeros(block.numerical.shape, bool))[r] for k in block.analytic)]
    kinks = block.kinks[r] if block.kinks is not None else np.zeros(block.numerical.shape[1], bool)
    header = (f"Gradient of {element_name(block.out_name, worst.out_index, block.out_shape)} with respect to "
              f"{block.in_name}, in {block.in_name}'s layout (* mismatch, ~ kink):")
    return [header, *_matrices(["numerical", *block.analytic], [v.reshape(grid) for v in rows],
                               [m.reshape(grid) for m in marks], kinks.reshape(grid))]


def _matrices(labels, matrices, marks, kinks) -> list[str]:
    rows, cols = matrices[0].shape
    cell = max(len(_short(v)) for matrix in matrices for v in matrix.ravel())
    rendered = []
    for matrix, mark in zip(matrices, marks):
        lines = []
        for r in range(rows):
            cells = "".join(f" {_short(matrix[r, c]):>{cell}}{'*' if mark[r, c] else '~' if kinks[r, c] else ' '}"
                            for c in range(cols))
            lines.append(f"[{cells}]")
        rendered.append(lines)
    width = max(max(len(line) for lines in rendered for line in lines), *(len(label) for label in labels))
    out = ["    " + "   ".join(label.ljust(width) for label in labels).rstrip()]
    for r in range(rows):
        out.append("    " + "   ".join(m[r].ljust(width) for m in rendered).rstrip())
    return out


def _abs_err(value: float, expected: float) -> float:
    if np.isnan(value) and np.isnan(expected):
        return 0.0
    with np.errstate(invalid="ignore"):
        err = abs(value - expected)
    return float("inf") if np.isnan(err) else float(err)


def _rel_err(value: float, expected: float) -> float:
    err = _abs_err(value, expected)
    if err == 0:
        return 0.0
    return err / abs(expected) if expected != 0 and np.isfinite(expected) else float("inf")


def _num(value: float, width: int = 0) -> str:
    return f"{value:.8g}".rjust(width) if np.isfinite(value) else str(value).rjust(width)


def _short(value: float) -> str:
    if not np.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    return f"{value:.4g}"


def _err(value: float) -> str:
    return f"{value:.2e}" if np.isfinite(value) else str(value)
