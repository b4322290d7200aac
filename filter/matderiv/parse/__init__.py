"""Expression text -> typed-later expression tree (see :mod:`.parser`)."""
from .parser import Parsed, normalize_name, parse

__all__ = ["Parsed", "parse", "normalize_name"]
