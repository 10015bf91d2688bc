"""The whole suite's set-up: symgrad's own pytest plugin, and Hypothesis seeded by it.

The plugin (``symgrad.check.pytest_plugin``) is loaded here too, so the suite runs the
same whether or not symgrad is installed with its ``pytest11`` entry point (the entry
point's name is the module's, so it is never registered twice).  It gives every test that
draws random numbers (the ``rng`` and ``test_seed`` fixtures, every Hypothesis test) a seed
derived from the session seed, which changes every day unless ``SYMGRAD_TEST_SEED`` fixes
it, and names that seed in every such test's failure report (``docs/testing.md``).

The Hypothesis profile ``symgrad-tests`` has no example database, so what a run explores
is decided by the session seed alone, and replaying the seed replays the run.

The ``traces`` fixture counts the traces of symgrad's transforms, at the tracer: a counter
the traced function kept itself would be part of its closure, and so of its trace key.
"""
import pytest
from hypothesis import settings

pytest_plugins = ["symgrad.check.pytest_plugin"]

settings.register_profile("symgrad-tests", database=None, derandomize=False)
settings.load_profile("symgrad-tests")


@pytest.fixture
def traces(monkeypatch) -> list:
    """A list that grows by one at every trace of any transform (``grad``, ``jacobian``...)."""
    from symgrad.symbolic import transforms

    seen: list = []
    trace = transforms._trace
    monkeypatch.setattr(transforms, "_trace", lambda *a: seen.append(None) or trace(*a))
    return seen
