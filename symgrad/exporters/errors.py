"""The exceptions of :mod:`symgrad.exporters`."""
from __future__ import annotations


class ExportError(Exception):
    """A function cannot be exported to a target, or an export's arguments are wrong."""


class ExportVerificationError(ExportError):
    """The written code disagrees with symgrad's engines: nothing was written.

    ``target``, ``output``, ``point`` (a description of the inputs) and ``difference``
    (the largest absolute difference) say where.
    """

    def __init__(self, target: str, output: str, point: str, difference: float, detail: str = "") -> None:
        self.target, self.output, self.point, self.difference = target, output, point, difference
        super().__init__(f"the exported {target} code's {output} differs from symgrad's at {point}: largest "
                         f"difference {difference:.3g}{detail}; nothing was written")
