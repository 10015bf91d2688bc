"""The pytest plugin, run in separate temporary projects with pytester: its fixtures work,
failures read well and name the seed, the session seed changes with the date and is
replayed by one environment variable (also for Hypothesis tests), and pytest finds the
plugin through the ``pytest11`` entry point of an installed symgrad."""
from __future__ import annotations

import datetime
import re
import importlib.metadata
import os
import textwrap
from pathlib import Path

import pytest

import symgrad
from symgrad.testing.seeds import SEED_ENV, derive_seed, session_seed


REPO = Path(symgrad.__file__).resolve().parent.parent
ENTRY_POINT = "symgrad.check.pytest_plugin"  # the entry point's name is the module's: see below

USER_TESTS = textwrap.dedent('''
    import numpy as np
    import symgrad


    class MyRelu(symgrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * (x > 0)


    class LeakyBug(MyRelu):
        @staticmethod
        def backward(ctx, g):
            return g  # forgets to zero the negative part


    def test_function(gradcheck, rng):
        x = symgrad.tensor(rng.uniform(0.1, 1, 4) * np.array([1, -1, 1, -1]), requires_grad=True, name="x")
        gradcheck.function(MyRelu, (x,))
        gradcheck(lambda x: (x.exp() * x).sum(), (x,), engines=("tape",))


    def test_rng_is_seeded_per_test(rng):
        assert isinstance(rng, np.random.Generator)
        with open("draws.txt", "a") as draws:
            draws.write(f"{rng.integers(1_000_000)}\\n")


    def test_engines_fixture(backward_engines):
        assert "tape" in backward_engines


    def test_buggy(gradcheck):
        x = symgrad.tensor([1.5, -0.5, 2.0], requires_grad=True, name="x")
        gradcheck.function(LeakyBug, (x,))


    def test_buggy_with_rng(gradcheck, rng):
        x = symgrad.tensor([1.5, -0.5], requires_grad=True, name="x")
        gradcheck.function(LeakyBug, (x,))
''')


@pytest.fixture
def project(pytester, monkeypatch):
    """A temporary project whose only symgrad is the one under test (on PYTHONPATH for
    subprocess runs), with no session seed in the environment (this suite's own may be
    set, to replay it)."""
    pytester.makepyfile(test_user=USER_TESTS)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.delenv(SEED_ENV, raising=False)
    return pytester


def test_fixtures_and_failure_reports_with_the_plugin_loaded_by_hand(project):
    result = project.runpytest("-p", "symgrad.check.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([
        "symgrad: session seed * (from the UTC date; replay with SYMGRAD_TEST_SEED=*); backward engines *tape*",
        "*check_function(LeakyBug) failed.",
        "*Worst mismatch: Jacobian element d output0[[]1[]] / d x[[]1[]]*",
        "*LeakyBug.backward*1*MISMATCH",
        "*this test drew from session seed * (from the UTC date; its own seed *); replay with SYMGRAD_TEST_SEED=*",
    ])
    assert "GradcheckError" not in result.stdout.str()  # a plain assertion failure, not a crash


def test_rng_depends_on_the_seed_option_and_is_reproducible(project):
    for args in [(), (), ("--symgrad-seed=7",)]:
        project.runpytest("-p", "symgrad.check.pytest_plugin", "-p", "no:cacheprovider", "-k", "seeded",
                          *args).assert_outcomes(passed=1)
    default, again, seven = (project.path / "draws.txt").read_text().split()
    assert default == again != seven


def test_plugin_is_discovered_through_the_pytest11_entry_point(project, monkeypatch):
    """No -p flag: pytest finds the plugin from installed metadata.  The metadata is a
    minimal dist-info next to the project declaring the entry point symgrad's pyproject
    declares, so this runs before (and without) installing symgrad."""
    site = project.path / "site"
    info = site / "symgrad_entry_point-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: symgrad-entry-point\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{ENTRY_POINT} = {ENTRY_POINT}\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(REPO)]))
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-k", "function or engines")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["symgrad: session seed *", "plugins: *symgrad*"])
    # naming the plugin with -p as well must not register it twice (the entry point's name
    # is the module's name for exactly this reason), and -p no: turns it off
    project.runpytest_subprocess("-p", ENTRY_POINT, "-p", "no:cacheprovider", "-k", "seeded").assert_outcomes(passed=1)
    off = project.runpytest_subprocess("-p", f"no:{ENTRY_POINT}", "-p", "no:cacheprovider", "-k", "seeded")
    off.assert_outcomes(errors=1)
    off.stdout.fnmatch_lines(["*fixture 'rng' not found*"])


def test_installed_symgrad_declares_the_entry_point():
    try:
        distribution = importlib.metadata.distribution("symgrad")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("symgrad is not installed (pip install -e .), so there is no entry point metadata to check")
    plugins = [(ep.name, ep.value) for ep in distribution.entry_points if ep.group == "pytest11"]
    assert plugins == [(ENTRY_POINT, ENTRY_POINT)], (
        f'pyproject.toml needs [project.entry-points.pytest11] "{ENTRY_POINT}" = "{ENTRY_POINT}"'
    )


# ---------------------------------------------------------------------------- seeds that change over time
def _utc_days() -> set[int]:
    """Today's seed by the UTC date, and the one a moment later (a run may cross midnight)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {session_seed({}, (now + datetime.timedelta(seconds=s)).date()) for s in (0, 120)}


def test_two_dates_give_two_session_seeds_and_the_variable_overrides_the_date():
    days = [datetime.date(2026, 12, 6) + datetime.timedelta(days=k) for k in range(400)]
    assert len({session_seed({}, day) for day in days}) == 400
    assert session_seed({SEED_ENV: "20261206"}, days[7]) == 20261206
    assert session_seed({SEED_ENV: "  "}, days[7]) == session_seed({}, days[7])  # empty: as if unset
    assert len({derive_seed(20261206, f"test_x.py::test_{k}") for k in range(1000)}) == 1000


@pytest.mark.parametrize("value", ["-1", "x", "1.5", str(2 ** 32), "nan"])
def test_a_bad_session_seed_is_a_usage_error_naming_it(project, monkeypatch, value):
    monkeypatch.setenv(SEED_ENV, value)
    result = project.runpytest("-p", "symgrad.check.pytest_plugin", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {SEED_ENV} must be a whole number from 0 to 4294967295*got {value!r}"])


SEEDED_TESTS = textwrap.dedent('''
    from hypothesis import given, seed, settings, strategies as st


    def test_draw(rng, test_seed):
        with open("draws.txt", "a") as draws:
            draws.write(f"rng {rng.integers(2 ** 62)} {test_seed}\\n")


    @settings(max_examples=5, database=None)
    @given(st.integers(0, 2 ** 62))
    def test_hypothesis_draw(n):
        with open("draws.txt", "a") as draws:
            draws.write(f"hypothesis {n}\\n")


    @seed(12345)
    @settings(max_examples=5, database=None)
    @given(st.integers(0, 2 ** 62))
    def test_hypothesis_own_seed(n):
        with open("draws.txt", "a") as draws:
            draws.write(f"own {n}\\n")


    @settings(max_examples=5, database=None, derandomize=True)
    @given(st.integers(0, 2 ** 62))
    def test_hypothesis_derandomized(n):
        with open("draws.txt", "a") as draws:
            draws.write(f"derandomized {n}\\n")
''')


def _draws(project, *args, env: str | None = None) -> dict:
    """One run of SEEDED_TESTS: what each test drew, by test."""
    draws = project.path / "draws.txt"
    draws.unlink(missing_ok=True)
    result = project.runpytest("-p", "symgrad.check.pytest_plugin", "-p", "no:cacheprovider", "test_seeded.py",
                               *args)
    result.assert_outcomes(passed=4)
    drawn: dict = {"header": [line for line in result.outlines if line.startswith("symgrad: session seed")]}
    for line in draws.read_text().splitlines():
        test, value = line.split(" ", 1)
        drawn[test] = drawn.get(test, "") + value + ";"
    return drawn


def test_the_variable_replays_a_session_and_another_seed_explores_new_draws(project, monkeypatch):
    project.makepyfile(test_seeded=SEEDED_TESTS)
    today = _draws(project)
    assert int(today["header"][0].split()[3]) in _utc_days()  # no variable: the UTC date
    seed = today["header"][0].split()[3]
    monkeypatch.setenv(SEED_ENV, seed)
    replay = _draws(project)
    assert replay["header"] == [f"symgrad: session seed {seed} (from {SEED_ENV}; replay with {SEED_ENV}={seed}); "
                                f"backward engines symbolic, tape (fixture backward_engines)"]
    assert {k: v for k, v in replay.items() if k != "header"} == {k: v for k, v in today.items() if k != "header"}
    monkeypatch.setenv(SEED_ENV, str(int(seed) + 1))  # tomorrow's seed
    other = _draws(project)
    assert other["rng"] != today["rng"] and other["hypothesis"] != today["hypothesis"]
    # a seed the test fixes itself (@seed, derandomize=True) is left alone
    assert other["own"] == today["own"] and other["derandomized"] == today["derandomized"]
    # --symgrad-seed gives the session seed too, and --hypothesis-seed leaves Hypothesis to its own
    monkeypatch.delenv(SEED_ENV)
    assert _draws(project, f"--symgrad-seed={seed}")["rng"] == today["rng"]
    assert _draws(project, "--hypothesis-seed=1")["hypothesis"] == _draws(project, "--hypothesis-seed=1")["hypothesis"]


FAILING_TESTS = textwrap.dedent('''
    from hypothesis import given, settings, strategies as st


    def test_fails_with_rng(rng):
        assert rng.uniform() > 2


    @settings(max_examples=5, database=None)
    @given(st.integers())
    def test_fails_in_hypothesis(n):
        assert n != n


    def test_fails_without_a_seed():
        assert False
''')


def test_every_failure_that_drew_from_the_seed_names_it_and_how_to_replay(project, monkeypatch):
    project.makepyfile(test_failing=FAILING_TESTS)
    monkeypatch.setenv(SEED_ENV, "4242")
    result = project.runpytest("-p", "symgrad.check.pytest_plugin", "-p", "no:cacheprovider", "test_failing.py")
    result.assert_outcomes(failed=3)
    parts = re.split(r"(?m)^_+ (test_\w+) _+$", result.stdout.str().split("short test summary")[0])
    reports = dict(zip(parts[1::2], parts[2::2]))
    for name in ("test_fails_with_rng", "test_fails_in_hypothesis"):
        own = derive_seed(4242, f"test_failing.py::{name}")
        assert (f"this test drew from session seed 4242 (from {SEED_ENV}; its own seed {own}); "
                f"replay with {SEED_ENV}=4242") in reports[name], reports[name]
    assert "replay with" not in reports["test_fails_without_a_seed"]


HYPOTHESIS_TESTS = textwrap.dedent('''
    import numpy as np
    from hypothesis import given, settings, strategies as st


    @settings(max_examples=5, deadline=None)
    @given(st.floats(0.5, 2.0))
    def test_gradcheck_fixture_inside_given(gradcheck, scale):
        gradcheck.numpy(lambda x: (scale * x ** 2).sum(), lambda x: 2 * scale * x, np.array([0.3, -1.0]), engines=())
''')


def test_the_gradcheck_fixture_works_inside_hypothesis_given(project):
    """A session-scoped fixture: no function_scoped_fixture health check to suppress."""
    pytest.importorskip("hypothesis")
    project.makepyfile(test_given=HYPOTHESIS_TESTS)
    result = project.runpytest("-p", "symgrad.check.pytest_plugin", "-p", "no:cacheprovider", "test_given.py")
    result.assert_outcomes(passed=1)
