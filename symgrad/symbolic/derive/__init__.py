"""Differentiation: a recorded tape graph translated to a SymPy DAG (``graph``), reverse mode over
it (``reverse``), closed forms evaluated with tensor ops for ``create_graph`` (``as_tensors``) and
simplification within a time budget (``simplifying``)."""
