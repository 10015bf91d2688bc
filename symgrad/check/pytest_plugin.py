"""The symgrad pytest plugin: fixtures for checking gradients in your own test suite.

Installed with symgrad, it is found through the ``pytest11`` entry point, whose name is
this module's name, so ``pytest -p symgrad.check.pytest_plugin`` (needed when symgrad is
not installed) never registers it twice, and ``-p no:symgrad.check.pytest_plugin`` turns
it off.  It offers:

* ``gradcheck`` -- a :class:`GradChecker`: ``gradcheck(func, inputs)`` asserts that every
  engine's gradient matches finite differences, and ``gradcheck.gradgrad``,
  ``gradcheck.function``, ``gradcheck.numpy``, ``gradcheck.hvp`` and ``gradcheck.hessian``
  do the same for second derivatives, a custom ``Function``, a NumPy gradient function, a
  Hessian-vector product and a Hessian; a failure shows the full report.  It is
  session-scoped (it holds no state), so a Hypothesis ``@given`` test can use it;
* ``rng`` -- a ``numpy.random.Generator`` seeded per test from the session seed and the
  test's id, and ``test_seed``, the same seed as an int.  The session seed changes every
  day (the UTC date, ``20261206``: see :mod:`symgrad.testing.seeds`) unless
  ``SYMGRAD_TEST_SEED`` (or ``--symgrad-seed``) gives it, so random tests explore new
  inputs over time, and a failing test's report says how to replay it
  (``replay with SYMGRAD_TEST_SEED=...``);
* ``backward_engines`` -- the backward engines that can run here (``["symbolic", "tape"]``
  once the symbolic engine is installed);
* ``work_counter`` -- machine-independent measures of work for tests of how a cost grows
  (:mod:`symgrad.testing.work`): ``work_counter.count(fn, limit=None)`` returns
  ``(function calls, result)``, ``work_counter.linear(label, sizes, calls)`` asserts linear
  growth. Never assert seconds in a test.

Every Hypothesis test draws from the session seed too (its own seed derived from the
session seed and its id), unless it has an explicit ``@seed``, ``derandomize=True``, or the
run gives ``--hypothesis-seed``; a failure names the session seed in the same way.

The header of a pytest run shows the session seed and the engines the backward switch knows.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import pytest

from ..testing import (assert_check_grad, assert_check_hessian, assert_check_hvp, assert_function_backward,
                       assert_gradcheck, assert_gradgradcheck)
from ..testing.seeds import SEED_ENV, derive_seed, parse_seed, session_seed
from ..testing.work import assert_linear, count_calls
from .engines import available_engines, engine_names

__all__ = ["GradChecker", "WorkCounter", "gradcheck", "rng", "test_seed", "backward_engines", "work_counter"]

_SESSION_SEED = pytest.StashKey[tuple]()  # config -> (seed, where it came from)
_SEED = pytest.StashKey[int]()  # item -> the seed this test drew from


def _seed_option(text: str) -> int:
    """``--symgrad-seed``: what ``SYMGRAD_TEST_SEED`` accepts (so the replay line works).

    >>> _seed_option("7")
    7
    """
    try:
        return parse_seed(text, "--symgrad-seed")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def pytest_addoption(parser) -> None:
    group = parser.getgroup("symgrad", "symgrad gradient checks")
    group.addoption("--symgrad-seed", type=_seed_option, default=None,
                    help=f"session seed of the rng and test_seed fixtures and of Hypothesis tests (default: "
                         f"${SEED_ENV}, else the UTC date as YYYYMMDD); each test mixes in its id")


def pytest_configure(config) -> None:
    # once per session, so a run that crosses midnight keeps one seed
    seed = config.getoption("symgrad_seed", default=None)
    if seed is not None:
        config.stash[_SESSION_SEED] = (seed, "--symgrad-seed")
    elif os.environ.get(SEED_ENV, "").strip():
        try:
            config.stash[_SESSION_SEED] = (session_seed(), SEED_ENV)
        except ValueError as err:
            raise pytest.UsageError(str(err)) from None
    else:
        config.stash[_SESSION_SEED] = (session_seed(), "the UTC date")


def pytest_report_header(config) -> str:
    # names only: loading the symbolic engine would import SymPy in every pytest run
    engines = ", ".join(name for name in engine_names() if name != "both")
    seed, source = config.stash[_SESSION_SEED]
    return (f"symgrad: session seed {seed} (from {source}; replay with {SEED_ENV}={seed}); "
            f"backward engines {engines} (fixture backward_engines)")


def _test_seed(item) -> int:
    """This test's seed (derived from the session seed and its id), noted for its report."""
    seed = derive_seed(item.config.stash[_SESSION_SEED][0], item.nodeid)
    item.stash[_SEED] = seed
    return seed


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
        assert_check_grad(f, grad_f, *args, **self._numpy_options(kwargs))

    def hvp(self, f_or_grad, hvp, x, p, *args, **kwargs) -> None:
        """A Hessian-vector product (:func:`symgrad.check_hvp`)."""
        __tracebackhide__ = True
        assert_check_hvp(f_or_grad, hvp, x, p, *args, **self._numpy_options(kwargs))

    def hessian(self, f_or_grad, hessian, x, *args, **kwargs) -> None:
        """A Hessian (:func:`symgrad.check_hessian`)."""
        __tracebackhide__ = True
        assert_check_hessian(f_or_grad, hessian, x, *args, **self._numpy_options(kwargs))

    def _numpy_options(self, kwargs: dict) -> dict:
        return {k: v for k, v in {**self.defaults, **kwargs}.items() if k not in ("fast_mode", "seed")}


@pytest.fixture(scope="session")
def gradcheck() -> GradChecker:
    """Assert gradients: ``gradcheck(func, (x, w))``, ``gradcheck.function(MyRelu, (x,))``.

    Session-scoped (a :class:`GradChecker` holds no state), so Hypothesis' ``@given`` tests
    can use it without a ``function_scoped_fixture`` health check."""
    return GradChecker()


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A NumPy generator seeded from the session seed and this test's id."""
    return np.random.default_rng(_test_seed(request.node))


@pytest.fixture
def test_seed(request) -> int:
    """This test's seed: a 32-bit int derived from the session seed and this test's id."""
    return _test_seed(request.node)


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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    """Seed a Hypothesis test from the session seed (unless it fixes its own seed)."""
    test = getattr(getattr(item, "obj", None), "__func__", getattr(item, "obj", None))
    if not getattr(test, "is_hypothesis_test", False) or item.config.getoption("hypothesis_seed", default=None):
        return
    if not hasattr(test, "_symgrad_own_seed"):  # what @seed gave it, remembered before we set ours
        test._symgrad_own_seed = getattr(test, "_hypothesis_internal_use_seed", None)
    settings = getattr(test, "_hypothesis_internal_use_settings", None)
    if test._symgrad_own_seed is None and not getattr(settings, "derandomize", False):
        test._hypothesis_internal_use_seed = _test_seed(item)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    seed = item.stash.get(_SEED, None)
    if report.failed and seed is not None:
        session, source = item.config.stash[_SESSION_SEED]
        report.sections.append(("symgrad seed", f"this test drew from session seed {session} (from {source}; "
                                                f"its own seed {seed}); replay with {SEED_ENV}={session}"))
