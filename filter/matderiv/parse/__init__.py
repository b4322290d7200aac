"""Expression text -> typed-later expression tree (see :mod:`.parser`)."""
from .parser import (Parsed, identity_size_letters, is_bold_lowercase_greek, normalize_name,
                     parse, symbol_latex)

__all__ = ["Parsed", "parse", "normalize_name", "identity_size_letters", "is_bold_lowercase_greek",
           "symbol_latex"]
