"""Code generation: closed forms to one compiled function (CSE, the NumPy printer, the compile cache
in ``compile``) and the other backends (C) in ``backends``."""
