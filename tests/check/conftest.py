"""Fixtures for the verification toolkit's tests.

The symgrad pytest plugin's fixtures (``rng``, ``gradcheck``, ``backward_engines``) come
from the plugin, which ``tests/conftest.py`` loads.  pytester (used to run the plugin in a
separate project) is enabled here if nothing enabled it.
"""
from __future__ import annotations

import pytest

from symgrad.testing import skip_unless_engine

def pytest_configure(config) -> None:
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")


ENGINES = ["tape", "symbolic"]
"""The engines every engine-parametrized test runs on; unavailable ones skip with the reason."""


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    """Each backward engine in turn (skipped, with the reason, where it cannot load)."""
    skip_unless_engine(request.param)
    return request.param
