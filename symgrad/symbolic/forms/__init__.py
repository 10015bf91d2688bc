"""The SymPy forms of the ops: structural functions (reductions, matmul, indexing, ...) with their
shape rules and adjoints, the selections (``where``, ``maximum``, comparisons), the numerically
stable functions (``sigmoid``, ``softplus``, ...) and the standard-notation mixin they print with."""
