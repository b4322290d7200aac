"""Printers: expression trees to LaTeX (:mod:`.latex`) and to NumPy source."""
