"""The symbolic engine's base layer: array-level SymPy symbols, the ``Attrs`` atom, interning
(one object per structure), DAG walks and shape inference. It imports nothing above it."""
