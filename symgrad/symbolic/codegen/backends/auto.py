"""``backend="auto"``, the default of every transform: NumPy first, C once it pays.

A compiled C function is 3x to 10x faster than the NumPy backend's over large arrays, but
generating and compiling it costs 0.1 to 0.8 s (:data:`PAYBACK_SECONDS`), which pays back
only over many calls, and below about 0.2 ms per call (:data:`MIN_CALL_SECONDS`) C's fixed
cost per call (ctypes, argument checks, a plan's steps) eats the gain.  Compiling C for
every function would make a script that calls a transform twice, or a test suite that
traces thousands of small programs, many times slower.  So :class:`AutoFunction` is
*tiered*, like a JIT:

1. It compiles the NumPy backend's function (milliseconds) and runs every call on it,
   adding up the time those calls take.
2. A call faster than :data:`MIN_CALL_SECONDS` settles it on NumPy (its shapes are fixed,
   so no later call is much slower).  When the NumPy calls have taken
   :data:`PAYBACK_SECONDS` in all -- the time spent so far equals what a compile costs,
   the rule that is never worse than twice the best choice made in hindsight (the "ski
   rental" argument) -- it checks once per process that a C compiler works
   (:func:`compiler_status`: :func:`~.cbuild.find_compiler`, the build directory's safety
   checks, a probe compiled with the backend's flags) and compiles the ``"c"`` backend's
   function, which computes with NumPy whatever C does not translate.
3. It *tries* the C function: on the call that triggered the compile (whose NumPy result
   is returned), then C and NumPy take turns for :data:`TRIAL_ROUNDS` calls each.  C
   stays only if its results on that first call have NumPy's value classes (NaN,
   infinities and finite numbers in the same places, finite values equal to a relative
   1e-6: sums are added in another order, so equal to rounding) and its fastest call in
   the trial takes at most :data:`TRIAL_MARGIN` of NumPy's fastest; otherwise every later
   call runs on NumPy.

Nothing breaks a call: no compiler, an unsafe build directory, a compile error or any
other failure of the C backend leaves the function on NumPy (with a :class:`RuntimeWarning`
for a failure that is a bug or a setting to fix: a compile error, an unsafe build
directory, an unexpected exception); so does an input the C function does not take.  And
nothing changes a value's class: only calls whose inputs are all ``float64`` run on C
(C computes ``float32`` in ``float64`` and integers as ``float64``, which could overflow
or round where NumPy does not).

``tier`` says which backend the next call uses (``"numpy"`` or ``"c"``), ``settled``
whether that is final, ``reason`` why, ``last_backend`` which backend computed the last
call (``"numpy"``, or ``"c_fused"``, ``"c_scalar"``, ``"c"`` for a plan).  The environment
variable ``SYMGRAD_AUTO`` forces a tier for functions compiled after it is set:
``numpy`` (never C), ``c`` (C from the first call, no trial), ``tiered`` (the default).

>>> import sympy as sp
>>> from symgrad.symbolic.core.symbols import ArrayVar
>>> x = ArrayVar("x", (3,))
>>> f = AutoFunction([x], [2 * x + 1])
>>> f(np.arange(3.0)).out0, f.last_backend
(array([1., 3., 5.]), 'numpy')
"""
from __future__ import annotations

import functools
import os
import threading
import warnings
from time import perf_counter
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ..compile import ClosedFormFunction, CompiledFunction
from . import Backend, BackendError, BackendInputError, CCompileError, UnsafeBuildDirError, get_backend

__all__ = ["AutoBackend", "AutoFunction", "compiler_status", "PAYBACK_SECONDS", "MIN_CALL_SECONDS", "TRIAL_ROUNDS",
           "TRIAL_MARGIN", "MODE_VARIABLE"]

PAYBACK_SECONDS = 0.4
"""NumPy time after which a function is compiled to C: what one C compile costs.  Measured
on the 2-core development machine (two runs, load average 3 and 7, a fresh build directory,
so including ``gcc``): the ``"c"`` backend's compile of the W1 formula's value and gradient
took 0.23 to 0.40 s, of the Rosenbrock gradient 0.10 to 0.35 s, of a plan (W3, a loop
around a full sum) 0.33 to 0.82 s; the NumPy backend's code generation of the same closed
forms 1 to 16 ms (``benchmarks/auto_threshold.py``; docs/backends.md, "backend='auto'")."""

MIN_CALL_SECONDS = 2e-4
"""The fastest NumPy call must take this long before C is tried: below it, C's fixed cost
per call (10 to 20 us for one loop, some tens more for several loops or a plan's steps)
takes most of the gain.  Measured as above: W1 at 1,000 points took 77 us on NumPy and
49 us on C, at 10,000 points 539 us and 120 us; the Rosenbrock gradient at 1,000 points
16 us and 14 us, at 100,000 points 501 us and 53 us; a program with a sum inside (two
loops) at 1,000 points 35 us on NumPy and 57 us on C, at 100,000 points 1.4 ms and 0.8 ms."""

TRIAL_ROUNDS = 3
"""Calls on C and on NumPy, in turn, after the compile (the first C call on the inputs of
the NumPy call that triggered it): C stays if its fastest beats NumPy's fastest.  Taking
turns times both under the same load: on the busy development machine, NumPy's fastest
call before the compile (W3: 19 ms) was slower than C's during the trial (12 ms), which
then took 1.4x NumPy's time in the benchmark's rounds."""

TRIAL_MARGIN = 0.9
"""C stays only if its fastest trial call took at most this fraction of NumPy's: a tie is
noise, and NumPy keeps the NumPy backend's bits.  In the benchmark run of W3 (load average
6.5), C's fastest trial call took 29.7 ms and NumPy's 30.0 ms; in the timed rounds that
followed, their medians were 34.2 ms on C and 33.6 ms on NumPy."""

MODE_VARIABLE = "SYMGRAD_AUTO"
"""The environment variable that forces ``"auto"``'s tier: ``numpy``, ``c`` or ``tiered``."""

_MODES = ("tiered", "numpy", "c")
_WARNED: set = set()


@functools.lru_cache(maxsize=None)
def compiler_status() -> str | None:
    """``None`` when C can be compiled and loaded here, else why not (checked once per
    process: the compiler, the build directory, a probe built with ``c_fused``'s flags;
    ``compiler_status.cache_clear()`` checks again).

    >>> compiler_status() is None or isinstance(compiler_status(), str)
    True
    """
    from .c_fused import FLAGS
    from .cbuild import load_c

    try:
        load_c("int sg_auto_probe(void) { return 17; }\n", FLAGS)
    except UnsafeBuildDirError as err:
        _warn_once(err)
        return str(err)
    except BackendError as err:  # no compiler (quiet: NumPy is what "auto" means then), a failing one
        if isinstance(err, CCompileError):
            _warn_once(err)
        return str(err)
    except OSError as err:  # a library that does not load
        return f"the probe library did not load: {err}"
    return None


def _warn_once(err: BaseException) -> None:
    """One :class:`RuntimeWarning` per kind of failure and process."""
    kind = type(err).__name__
    if kind not in _WARNED:
        _WARNED.add(kind)
        warnings.warn(f"backend='auto' runs on NumPy: {kind}: {err}", RuntimeWarning, stacklevel=4)


def _float64_only(values: Sequence[Any]) -> bool:
    """Whether every input is a float64 array or number (the inputs C computes exactly as NumPy)."""
    for v in values:
        if type(v) is np.ndarray or isinstance(v, np.generic):
            if v.dtype != np.float64:
                return False
        elif type(v) is not float:
            return False
    return True


def _same_classes(native: Sequence[Any], reference: Sequence[Any]) -> str | None:
    """``None`` if each native output has the shape, dtype and value classes of its NumPy
    output (NaN, +-infinity, finite at the same places; finite values equal to 1e-6
    relative), else the first difference."""
    for k, (a, b) in enumerate(zip(native, reference)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"output {k}: shape/dtype {a.shape} {a.dtype} on C, {b.shape} {b.dtype} on NumPy"
        if b.dtype.kind != "f":
            if not np.array_equal(a, b):
                return f"output {k} differs"
            continue
        if not (np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(np.isposinf(a), np.isposinf(b))
                and np.array_equal(np.isneginf(a), np.isneginf(b))):
            return f"output {k}: NaN or infinity at other places"
        finite = np.isfinite(b)
        if not np.allclose(a[finite], b[finite], rtol=1e-6, atol=0.0):
            return f"output {k}: values differ beyond rounding"
    return None


class AutoFunction(ClosedFormFunction):
    """A compiled function that runs on the NumPy backend and tiers up to the C backend
    when that pays (see the module docstring); call it like ``CompiledFunction``.

    ``numpy`` is the NumPy backend's function, ``native`` the C one once compiled (else
    ``None``); ``source`` is the source of the tier in use.
    """

    backend = "auto"

    def __init__(self, inputs: Sequence[sp.Symbol], outputs: Sequence[sp.Expr], *,
                 input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
                 output_shapes: Sequence[Any] | None = None, output_dtypes: Sequence[Any] | None = None,
                 name: str = "compiled") -> None:
        mode = os.environ.get(MODE_VARIABLE, "tiered").strip().lower() or "tiered"
        if mode not in _MODES:
            raise ValueError(f"{MODE_VARIABLE}={os.environ[MODE_VARIABLE]!r} is not one of {list(_MODES)}; "
                             "unset it for the default, 'tiered'")
        super().__init__(inputs, outputs, input_names=input_names, output_names=output_names,
                         output_dtypes=output_dtypes, name=name)
        self._options = {"input_names": self.inputs, "output_names": self.outputs, "output_shapes": output_shapes,
                         "output_dtypes": output_dtypes, "name": name}
        self.numpy = CompiledFunction(inputs, list(outputs), **self._options)
        self.output_shapes = self.numpy.output_shapes
        self.native: Any = None
        self.tier = "numpy"
        self.settled = mode == "numpy"
        self.reason = f"{MODE_VARIABLE}=numpy" if self.settled else "tiered: NumPy until its calls pay for a compile"
        self.last_backend = ""
        self._forced_c = mode == "c"
        self._numpy_seconds = 0.0
        self._numpy_fastest = float("inf")
        self._trial: dict[str, list[float]] = {"c": [], "numpy": []}  # the times of the trial's calls
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"<AutoFunction {self.name}({', '.join(self.inputs)}) -> ({', '.join(self.outputs)}), "
                f"tier={self.tier!r}>")

    @property
    def source(self) -> str:  # type: ignore[override]
        """The generated code of the tier in use (NumPy's, or the C backend's)."""
        return (self.native if self.tier == "c" else self.numpy).source

    @property
    def n_temporaries(self) -> int:
        """The generated code's temporaries, of the tier in use."""
        return (self.native if self.tier == "c" else self.numpy).n_temporaries

    # ------------------------------------------------------------------ calling
    def outputs_of(self, values: Sequence[Any]) -> list:
        """The outputs, as a list, for every input in order (see ``CompiledFunction.outputs_of``),
        computed by the tier in use."""
        self.last_backend = "numpy"
        if self.settled and self.tier == "numpy":
            return self.numpy.outputs_of(values)
        if not _float64_only(values):
            if self.tier == "numpy":  # shapes and dtypes are fixed per compiled function: never C
                self.settled, self.reason = True, "inputs other than float64 (C would compute them in float64)"
            return self.numpy.outputs_of(values)
        if self.tier == "c" and (self.settled or len(self._trial["c"]) <= len(self._trial["numpy"])):
            out = self._on_c(values)
            if out is not None:
                return out
        if self.settled:
            return self.numpy.outputs_of(values)
        if self._forced_c:
            return self.outputs_of(values) if self._tier_up(values, None) else self.numpy.outputs_of(values)
        out, elapsed = _timed(self.numpy, values)
        if self.tier == "c":  # on trial: NumPy's turn
            self._judge("numpy", elapsed)
            return out
        self._numpy_seconds += elapsed
        self._numpy_fastest = min(self._numpy_fastest, elapsed)
        if self._numpy_fastest < MIN_CALL_SECONDS:  # the fastest call only gets faster: C cannot pay
            self.settled = True
            self.reason = (f"calls too short for C to pay: the fastest took {self._numpy_fastest * 1e6:.4g} us, "
                           f"under {MIN_CALL_SECONDS * 1e6:.4g} us")
        elif self._numpy_seconds >= PAYBACK_SECONDS:
            self._tier_up(values, out)
        return out

    def _on_c(self, values: Sequence[Any]) -> list | None:
        """The C function's outputs (timed while on trial); None when NumPy must compute them."""
        native = self.native
        try:
            if self.settled:
                out = native.outputs_of(values)
            else:
                out, elapsed = _timed(native, values)
                self._judge("c", elapsed)
        except BackendInputError:  # an input this compiled C function does not take: this call on NumPy
            return None
        except Exception as err:  # noqa: BLE001 (a bug of the C backend must not break the call)
            self._stay_on_numpy(f"the C function failed: {type(err).__name__}: {err}", warn=err)
            return None
        self.last_backend = native.backend
        return out

    def _tier_up(self, values: Sequence[Any], reference: list | None) -> bool:
        """Compile the C function and start its trial on ``values`` (whose NumPy outputs
        are ``reference``; ``None`` when ``SYMGRAD_AUTO=c`` skips the trial).  Whether C
        is the tier now; one thread compiles, the others go on with NumPy meanwhile."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self.settled or self.tier == "c":
                return self.tier == "c"
            problem = compiler_status()
            if problem is not None:
                self._stay_on_numpy(f"no working C compiler: {problem}")
                return False
            try:
                native = get_backend("c").compile(self.symbols, list(self.exprs.values()), **self._options)
            except Exception as err:  # noqa: BLE001 (NumPy computes it; only C failed)
                quiet = isinstance(err, BackendError) and not isinstance(err, (CCompileError, UnsafeBuildDirError))
                self._stay_on_numpy(f"the C backend did not compile it: {type(err).__name__}: {err}",
                                    warn=None if quiet else err)
                return False
            self.native = native
            if reference is None:
                self.tier, self.settled, self.reason = "c", True, f"{MODE_VARIABLE}=c"
                return True
            try:
                out, elapsed = _timed(native, values)
            except BackendInputError as err:
                self._stay_on_numpy(f"the C function does not take these inputs: {err}")
                return False
            except Exception as err:  # noqa: BLE001
                self._stay_on_numpy(f"the C function failed: {type(err).__name__}: {err}", warn=err)
                return False
            differs = _same_classes(out, reference)
            if differs is not None:
                self._stay_on_numpy(f"C's results differ from NumPy's: {differs}")
                return False
            self.tier, self.reason = "c", "on trial: C's calls are timed against NumPy's, in turn"
            self._judge("c", elapsed)
            return True
        finally:
            self._lock.release()

    def _judge(self, backend: str, elapsed: float) -> None:
        """Record one timed call of the trial (C and NumPy take turns, so both are timed
        under the same load); after :data:`TRIAL_ROUNDS` calls of each, C stays if its
        fastest took at most :data:`TRIAL_MARGIN` of NumPy's fastest."""
        self._trial[backend].append(elapsed)
        if self.settled or min(len(times) for times in self._trial.values()) < TRIAL_ROUNDS:
            return
        c_best, numpy_best = min(self._trial["c"]), min(self._trial["numpy"])
        timing = f"fastest call {c_best * 1e6:.4g} us on C, {numpy_best * 1e6:.4g} us on NumPy, in turn"
        if c_best <= TRIAL_MARGIN * numpy_best:
            self.settled, self.reason = True, f"C: {timing}"
        else:
            self._stay_on_numpy(f"C was not faster by {1 - TRIAL_MARGIN:.0%}: {timing}")

    def _stay_on_numpy(self, reason: str, warn: BaseException | None = None) -> None:
        """Settle on NumPy for good, saying why (and warning once about a failure to fix)."""
        self.tier, self.settled, self.reason, self.native = "numpy", True, reason, None
        if warn is not None:
            _warn_once(warn)


def _timed(function: Any, values: Sequence[Any]) -> tuple[list, float]:
    """``function``'s outputs at ``values``, and the seconds the call took."""
    start = perf_counter()
    out = function.outputs_of(values)
    return out, perf_counter() - start


class AutoBackend(Backend):
    """``auto``: the NumPy backend's function, tiered up to the ``c`` backend's when its
    calls pay for the compile (:class:`AutoFunction`)."""

    name = "auto"
    summary = "NumPy, then C once the calls pay for a compile and a C compiler works (default)"

    def compile(self, inputs, outputs, **options):  # noqa: D102
        return AutoFunction(inputs, outputs, **options)
