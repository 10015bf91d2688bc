"""Printing closed forms for people: the text/pretty/LaTeX API (``printers``), the display rewrite
from engine form to standard notation (``display``), bounded notebook reprs (``notebook``) and the
step-by-step chain rule (``explain``)."""
