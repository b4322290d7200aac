"""The matrix calculus: differentials, identification of derivatives, simplification.

Knows nothing of LaTeX text, documents or pandoc; works on :mod:`matderiv.expr` trees only.
"""
