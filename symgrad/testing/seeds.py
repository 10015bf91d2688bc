"""Seeds that change over time, for tests that explore random programs and inputs.

A fixed seed explores nothing new: a random-program test seeded with one number runs the
same programs on every run, however often it runs.  So a test session draws from a
*session seed* that changes every day -- the UTC date as a number, ``20261206`` -- unless
the environment variable ``SYMGRAD_TEST_SEED`` gives one.  Each test derives its own seed
from the session seed and its id (:func:`derive_seed`), so tests do not share draws and a
test draws the same numbers however many other tests run.  Replaying a failure is one
variable: ``SYMGRAD_TEST_SEED=20261206 python -m pytest ...``.

symgrad's pytest plugin (:mod:`symgrad.check.pytest_plugin`) is the one user of this
module: it prints the session seed in the header of every run, seeds its ``rng`` and
``test_seed`` fixtures and every Hypothesis test with it, and names it in the report of
every failing test that drew from it.
"""
from __future__ import annotations

import datetime
import os
import zlib
from typing import Mapping

__all__ = ["SEED_ENV", "session_seed", "derive_seed", "parse_seed"]

SEED_ENV = "SYMGRAD_TEST_SEED"
"""The environment variable that fixes the session seed (to replay a run)."""


def parse_seed(text: str, source: str = SEED_ENV) -> int:
    """A seed written as text: a whole number from 0 to 2**32 - 1.

    >>> parse_seed("20261206")
    20261206
    >>> parse_seed("-3")
    Traceback (most recent call last):
    ...
    ValueError: SYMGRAD_TEST_SEED must be a whole number from 0 to 4294967295 (the seed a failure report names), got '-3'
    """
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value < 2 ** 32:
        raise ValueError(f"{source} must be a whole number from 0 to {2 ** 32 - 1} "
                         f"(the seed a failure report names), got {text!r}")
    return value


def session_seed(environ: Mapping[str, str] | None = None, today: datetime.date | None = None) -> int:
    """The seed of a test session: ``SYMGRAD_TEST_SEED`` when it is set (and not empty),
    else today's UTC date as ``YYYYMMDD``.

    >>> session_seed({}, datetime.date(2026, 12, 6))
    20261206
    >>> session_seed({"SYMGRAD_TEST_SEED": "42"}, datetime.date(2026, 12, 6))
    42
    """
    environ = os.environ if environ is None else environ
    text = environ.get(SEED_ENV, "")
    if text.strip():
        return parse_seed(text)
    today = datetime.datetime.now(datetime.timezone.utc).date() if today is None else today
    return int(today.strftime("%Y%m%d"))


def derive_seed(session: int, key: str) -> int:
    """The seed of one test (``key`` is its id) in the session seeded with ``session``: a
    32-bit number that depends on both, the same in every process.

    >>> derive_seed(20261206, "tests/test_x.py::test_a") == derive_seed(20261206, "tests/test_x.py::test_a")
    True
    >>> derive_seed(20261206, "tests/test_x.py::test_a") != derive_seed(20261207, "tests/test_x.py::test_a")
    True
    """
    return zlib.crc32(f"{session}\0{key}".encode())
