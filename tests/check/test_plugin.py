"""The pytest plugin, run in separate temporary projects with pytester: its fixtures work,
failures read well and name the seed, and pytest finds it through the ``pytest11`` entry
point of an installed symgrad."""
from __future__ import annotations

import importlib.metadata
import os
import textwrap
from pathlib import Path

import pytest

import symgrad


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
    subprocess runs)."""
    pytester.makepyfile(test_user=USER_TESTS)
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    return pytester


def test_fixtures_and_failure_reports_with_the_plugin_loaded_by_hand(project):
    result = project.runpytest("-p", "symgrad.check.pytest_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([
        "symgrad: rng seed 0 (--symgrad-seed); backward engines *tape*",
        "*check_function(LeakyBug) failed.",
        "*Worst mismatch: Jacobian element d output0[[]1[]] / d x[[]1[]]*",
        "*LeakyBug.backward*1*MISMATCH",
        "*the rng fixture was seeded with *",
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
    result.stdout.fnmatch_lines(["symgrad: rng seed 0*", "plugins: *symgrad*"])
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
