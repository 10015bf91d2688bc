"""Prototype: symgrad's shape memo keyed by object identity instead of SymPy equality.

``symgrad.symbolic.symbols._SHAPES`` is a global dict keyed by SymPy expressions.  A
lookup with an expression that is *equal but not identical* to a stored key (SymPy's
hash-consing cache is an LRU of 1,000 entries, and ``clear_cache()`` empties it, so
rebuilt subexpressions are new objects) falls back to ``Basic.__eq__``, a recursive
structural comparison that is exponential on a DAG with shared subexpressions.  This
module swaps in an identity-keyed memo (holding a reference to each key, so ids stay
unique) to measure what the change gains: ``python benchmarks/proto_identity_memo.py``.
"""
from __future__ import annotations


class IdentityMemo(dict):
    """``dict`` interface used by ``shape_of``, keyed by ``id(key)``."""

    def get(self, key, default=None):
        entry = dict.get(self, id(key))
        return entry[1] if entry is not None and entry[0] is key else default

    def __contains__(self, key):
        entry = dict.get(self, id(key))
        return entry is not None and entry[0] is key

    def __getitem__(self, key):
        entry = dict.__getitem__(self, id(key))
        if entry[0] is not key:
            raise KeyError(key)
        return entry[1]

    def __setitem__(self, key, value):
        dict.__setitem__(self, id(key), (key, value))


def install() -> None:
    import symgrad.symbolic.symbols as symbols

    symbols._SHAPES = IdentityMemo()


if __name__ == "__main__":
    # python benchmarks/proto_identity_memo.py [as-is|identity] [size ...]
    # Three derivations of the same W5 program in one process, SymPy's cache cleared
    # before each (as a long session's LRU evictions do piecemeal).
    import os
    import sys
    import time

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, os.path.dirname(here)]
    import w5_scaling as W

    variant = sys.argv[1] if len(sys.argv) > 1 else "identity"
    sizes = [int(a) for a in sys.argv[2:]] or [100, 300]
    if variant == "identity":
        install()
    data = W.inputs()
    for size in sizes:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            phases, _grads = W.symgrad_phases(size, data)
            times.append(time.perf_counter() - t0)
        print(f"{variant:9s} {size:5d} nodes: " + ", ".join(f"{t:.3f} s" for t in times)
              + f"  (last: {', '.join(f'{k} {v:.3f}' for k, v in phases.items())})", flush=True)
