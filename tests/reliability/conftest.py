"""Shared fixtures of the reliability suite: both engines, a clean compile cache, an empty
working directory, and the figures the suite reports (random inputs come from the ``rng``
fixture of symgrad's plugin, seeded from the session seed).

Every test that measures something (strings tried, programs fuzzed, sizes, timings) records
it with the ``figures`` fixture; the figures are printed at the end of the run under
"symgrad reliability figures", and ``docs/reliability.md`` quotes them.
"""
from __future__ import annotations

import pytest

import symgrad

ENGINES = ("tape", "symbolic")

FIGURES: dict[str, object] = {}


class Figures:
    """Records one figure per name (the last value wins; ``add`` sums counts)."""

    def set(self, name: str, value) -> None:
        FIGURES[name] = value

    def add(self, name: str, count: int) -> None:
        FIGURES[name] = FIGURES.get(name, 0) + count


@pytest.fixture
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    terminalreporter.section("symgrad reliability figures")
    for name in sorted(FIGURES):
        value = FIGURES[name]
        text = f"{value:.3g}" if isinstance(value, float) else str(value)
        terminalreporter.write_line(f"{name}: {text}")


@pytest.fixture(params=ENGINES)
def engine(request):
    """Run the test once per backward engine (selected for this thread)."""
    with symgrad.backward_engine(request.param):
        yield request.param


@pytest.fixture
def fresh_cache():
    """An empty compile cache of the default size, restored afterwards."""
    from symgrad.symbolic import compile_cache_clear, compile_cache_info, set_compile_cache_size

    size = compile_cache_info().maxsize
    compile_cache_clear()
    yield
    set_compile_cache_size(size)
    compile_cache_clear()


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    """A fresh, empty working directory; tests assert it stays empty."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
