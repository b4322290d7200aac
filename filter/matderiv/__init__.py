"""matderiv: symbolic matrix derivatives from LaTeX, verified numerically before they are printed.

Public API (SPEC 4)::

    from matderiv import derive, MatDerivError
    d = derive(r"x^\\top A x", "x")
    d.latex, d.equation, d.steps, d.kind, d.shape, d.numpy_source, d.evaluate({...})

Heavy modules (numpy) are imported only when a derivative is really computed.
"""
from .errors import MatDerivError

__version__ = "0.1.0"
__all__ = ["derive", "MatDerivError", "__version__"]


def derive(expr, wrt, **options):
    """Differentiate ``expr`` with respect to ``wrt`` (one name, or a sequence of two for a
    second derivative).  See :func:`matderiv.api.derive`."""
    from .api import derive as _derive

    return _derive(expr, wrt, **options)
