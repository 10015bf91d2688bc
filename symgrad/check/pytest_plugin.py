"""The symgrad pytest plugin: fixtures for checking gradients in your own test suite.

Installed with symgrad, it is found through the ``pytest11`` entry point, whose name is
this module's name, so ``pytest -p symgrad.check.pytest_plugin`` (needed when symgrad is
not installed) never registers it twice, and ``-p no:symgrad.check.pytest_plugin`` turns
it off.  It offers:

* ``gradcheck`` -- a :class:`GradChecker`: ``gradcheck(func, inputs)`` asserts that every
  engine's gradient matches finite differences, and ``gradcheck.gradgrad``,
  ``gradcheck.function`` and ``gradcheck.numpy`` do the same for second derivatives, a
  custom ``Function`` and a NumPy gradient function; a failure shows the full report;
* ``rng`` -- a ``numpy.random.Generator`` seeded per test (from ``--symgrad-seed`` and the
  test's id), so random inputs are reproducible; a failing test's report names the seed;
* ``backward_engines`` -- the backward engines that can run here (``["symbolic", "tape"]``
  once the symbolic engine is installed);
* ``work_counter`` -- machine-independent measures of work for tests of how a cost grows
  (:mod:`symgrad.testing.work`): ``work_counter.count(fn, limit=None)`` returns
  ``(function calls, result)``, ``work_counter.linear(label, sizes, calls)`` asserts linear
  growth. Never assert seconds in a test.

The header of a pytest run shows the seed and the engines the backward switch knows.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from ..testing import assert_check_grad, assert_function_backward, assert_gradcheck, assert_gradgradcheck
from ..testing.work import assert_linear, count_calls
from .engines import available_engines, engine_names

__all__ = ["GradChecker", "WorkCounter", "gradcheck", "rng", "backward_engines", "work_counter"]

DEFAULT_SEED = 0


def pytest_addoption(parser) -> None:
    group = parser.getgroup("symgrad", "symgrad gradient checks")
    group.addoption("--symgrad-seed", type=int, default=None,
                    help=f"base seed of the rng fixture (default {DEFAULT_SEED}); each test mixes in its id")


def pytest_report_header(config) -> str:
    # names only: loading the symbolic engine would import SymPy in every pytest run
    engines = ", ".join(name for name in engine_names() if name != "both")
    return f"symgrad: rng seed {_base_seed(config)} (--symgrad-seed); backward engines {engines} (fixture backward_engines)"


def _base_seed(config) -> int:
    seed = config.getoption("symgrad_seed", default=None)
    return DEFAULT_SEED if seed is None else seed


class GradChecker:
    """What the ``gradcheck`` fixture gives a test: assertion forms of the checks.

    Keyword arguments of the calls are those of :func:`symgrad.gradcheck` (``eps``,
    ``atol``, ``rtol``, ``engines``, ``fast_mode`` ...); ``defaults`` apply to every call.
    """

    def __init__(self, **defaults) -> None:
        self.defaults = defaults

    def __call__(self, func, inputs, **kwargs) -> None:
        __tracebackhide__ = True
        assert_gradcheck(func, inputs, **{**self.defaults, **kwargs})

    def gradgrad(self, func, inputs, **kwargs) -> None:
        """Second derivatives (:func:`symgrad.gradgradcheck`)."""
        __tracebackhide__ = True
        assert_gradgradcheck(func, inputs, **{**self.defaults, **kwargs})

    def function(self, function, inputs, **kwargs) -> None:
        """A custom ``Function``'s backward (:func:`symgrad.check_function`)."""
        __tracebackhide__ = True
        options = {k: v for k, v in {**self.defaults, **kwargs}.items() if k != "engines"}
        assert_function_backward(function, inputs, **options)

    def numpy(self, f, grad_f, *args, **kwargs) -> None:
        """A NumPy gradient function (:func:`symgrad.check_grad`)."""
        __tracebackhide__ = True
        options = {k: v for k, v in {**self.defaults, **kwargs}.items() if k not in ("fast_mode", "seed")}
        assert_check_grad(f, grad_f, *args, **options)


@pytest.fixture
def gradcheck() -> GradChecker:
    """Assert gradients: ``gradcheck(func, (x, w))``, ``gradcheck.function(MyRelu, (x,))``."""
    return GradChecker()


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A NumPy generator seeded from ``--symgrad-seed`` and this test's id."""
    seed = (_base_seed(request.config) * 1_000_003 + zlib.crc32(request.node.nodeid.encode())) % 2 ** 32
    request.node.stash[_SEED] = seed
    return np.random.default_rng(seed)


@pytest.fixture
def backward_engines() -> list[str]:
    """The backward engines that can run here."""
    return available_engines()


class WorkCounter:
    """What the ``work_counter`` fixture gives a test (see :mod:`symgrad.testing.work`)."""

    count = staticmethod(count_calls)
    linear = staticmethod(assert_linear)


@pytest.fixture
def work_counter() -> WorkCounter:
    """Count function calls instead of timing: ``work_counter.count(fn)``, ``work_counter.linear(...)``."""
    return WorkCounter()


_SEED = pytest.StashKey[int]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    seed = item.stash.get(_SEED, None)
    if report.failed and seed is not None:
        report.sections.append(("symgrad", f"the rng fixture was seeded with {seed} "
                                           f"(base seed {_base_seed(item.config)}; change it with --symgrad-seed)"))
