"""Seeds for the symbolic tests' fuzzers: they change every day, and one environment
variable replays a failure (``SYMGRAD_TEST_SEED``)."""
from __future__ import annotations

import datetime
import os
import zlib


def base_seed() -> int:
    """``SYMGRAD_TEST_SEED`` when set, else today's date (UTC) as ``YYYYMMDD``."""
    given = os.environ.get("SYMGRAD_TEST_SEED")
    if given is not None:
        return int(given)
    return int(datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d"))


def session_seed(*parts) -> list[int]:
    """A seed for ``numpy.random.default_rng`` from the base seed and ``parts`` (a test's
    name and case), so each case draws its own programs."""
    return [base_seed()] + [zlib.crc32(str(p).encode()) for p in parts]


def replay_hint(seed: list[int]) -> str:
    return f"seed {seed}: replay with SYMGRAD_TEST_SEED={seed[0]}"
