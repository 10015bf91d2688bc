"""Semantics tests ported from the tools symgrad's users come from: JAX's
``tests/api_test.py``, HIPS autograd's ``tests/test_core.py``, ``test_graphs.py`` and
``test_scalar_ops.py``, and micrograd's ``test/test_engine.py``.  Each module names its
origin; the code is our own, checked against hand-derived closed forms, central finite
differences and the eager tape engine."""
