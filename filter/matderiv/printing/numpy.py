"""Expression trees to readable NumPy source.

Owns :class:`NumpyPrinter` (one ``_print_<Node>`` method per node type, as in SymPy's
printers) and :func:`numpy_source`, which wraps a printed expression into a complete,
self-contained Python function.  Imports nothing heavy: it only writes text.

Conventions of the generated code: vectors are ``n x 1`` columns, matrices 2-D arrays, scalars
(static shape 1 x 1) Python/NumPy floats; 1 x 1 matrix products become floats with
``.item()``; sizes needed by ``I``, ``1`` and ``K`` are read off the parameters' shapes.
"""
from __future__ import annotations

import keyword
from fractions import Fraction
from typing import Mapping, Sequence

from ..errors import MatDerivError
from ..expr import (
    ONE, SCALAR, UNKNOWN, Add, Commutation, Const, Det, Diag, DiagPart, Differential, Dim, Expr,
    Func, Hadamard, HadamardDiv, Identity, Inverse, Kron, Mul, Norm, Ones, Power, Softmax, Sum,
    Symbol, Trace, Transpose, Vec, Zero,
)

__all__ = ["NumpyPrinter", "numpy_source", "HELPERS"]

# Python precedence levels (higher binds tighter).
PREC_ADD = 10
PREC_MUL = 20       # *, /, @ (left-associative, one level)
PREC_NEG = 25       # unary minus
PREC_POW = 30       # ** (right-associative)
PREC_ATOM = 100     # names, calls, attribute access, parenthesised code

#: Helper functions the generated source may define (name -> source), in dependency order.
HELPERS: dict[str, str] = {
    "_sigmoid": (
        "def _sigmoid(z):\n"
        "    \"\"\"Logistic function 1 / (1 + exp(-z)), elementwise, accurate in both tails.\"\"\"\n"
        "    e = np.exp(-np.abs(z))\n"
        "    return np.where(np.asarray(z) >= 0, 1.0 / (1.0 + e), e / (1.0 + e))\n"
    ),
    "_dsigmoid": (
        "def _dsigmoid(z):\n"
        "    \"\"\"Derivative of the logistic function, sigmoid(z) * (1 - sigmoid(z)).\"\"\"\n"
        "    e = np.exp(-np.abs(z))\n"
        "    return e / (1.0 + e) ** 2\n"
    ),
    "_softmax": (
        "def _softmax(z):\n"
        "    \"\"\"Softmax of a column vector (shifted by its maximum for stability).\"\"\"\n"
        "    e = np.exp(z - np.max(z))\n"
        "    return e / np.sum(e)\n"
    ),
    "_commutation": (
        "def _commutation(m, n):\n"
        "    \"\"\"Commutation matrix K (mn x mn): K @ vec(A) == vec(A.T) for an m x n A.\"\"\"\n"
        "    K = np.zeros((m * n, m * n))\n"
        "    for i in range(m):\n"
        "        for j in range(n):\n"
        "            K[j + i * n, i + j * m] = 1.0\n"
        "    return K\n"
    ),
}
_HELPER_DEPS = {"_dsigmoid": ("_sigmoid",)}

_NP_FUNCS = {
    "exp": "np.exp", "log": "np.log", "sin": "np.sin", "cos": "np.cos", "tanh": "np.tanh",
    "sinh": "np.sinh", "cosh": "np.cosh", "tan": "np.tan", "arctan": "np.arctan",
    "sqrt": "np.sqrt", "abs": "np.abs", "sign": "np.sign",
    "sigmoid": "_sigmoid", "dsigmoid": "_dsigmoid",
}


def _fraction_code(v: Fraction) -> tuple[str, int]:
    """A rational as Python code: ``2``, ``-3``, ``0.5``, ``1 / 3``."""
    if v.denominator == 1:
        return str(v.numerator), (PREC_ATOM if v >= 0 else PREC_NEG)
    q = v.denominator
    if q & (q - 1) == 0:                     # power of two: an exact, short decimal
        s = repr(float(v))
        if len(s) <= 10:
            return s, (PREC_ATOM if v >= 0 else PREC_NEG)
    return f"{v.numerator} / {v.denominator}", PREC_MUL


class NumpyPrinter:
    """Prints one expression as a Python/NumPy expression string.

    ``size_vars`` maps size names to the variable holding them in the generated code (a name
    missing from it is used as is); ``names`` maps symbol names to parameter names (identity by
    default).  After :meth:`doprint`, :attr:`helpers` holds the helper functions used and
    :attr:`sizes_used` the size names needed."""

    def __init__(self, size_vars: Mapping[str, str] | None = None,
                 names: Mapping[str, str] | None = None):
        self.size_vars = dict(size_vars or {})
        self.names = dict(names or {})
        self.helpers: set[str] = set()
        self.sizes_used: set[str] = set()

    # --- driver ----------------------------------------------------------------------------
    def doprint(self, expr: Expr) -> str:
        return self._print(expr)[0]

    def _print(self, e: Expr) -> tuple[str, int]:
        """``(code, precedence)`` of ``e``."""
        for cls in type(e).__mro__:
            meth = getattr(self, "_print_" + cls.__name__, None)
            if meth is not None:
                return meth(e)
        raise MatDerivError(f"cannot print a {type(e).__name__} node as NumPy code")

    def paren(self, e: Expr, min_prec: int, strict: bool = False) -> str:
        """Code of ``e``, parenthesised when it binds looser than ``min_prec`` (or equally,
        with ``strict``)."""
        code, prec = self._print(e)
        if prec < min_prec or (strict and prec == min_prec):
            return f"({code})"
        return code

    def size(self, d: Dim) -> str:
        """Code of the integer size of a dimension: ``n``, ``m * n``."""
        if not d:
            return "1"
        parts = []
        for name in d:
            if name == UNKNOWN[0]:
                raise MatDerivError("a size could not be inferred (an I, 1 or 0 of unknown size)")
            self.sizes_used.add(name)
            parts.append(self.size_vars.get(name, name))
        return " * ".join(parts)

    def use(self, helper: str) -> str:
        self.helpers.add(helper)
        for dep in _HELPER_DEPS.get(helper, ()):
            self.helpers.add(dep)
        return helper

    # --- leaves ----------------------------------------------------------------------------
    def _print_Symbol(self, e: Symbol):
        return self.names.get(e.name, e.name), PREC_ATOM

    def _print_Differential(self, e: Differential):
        n = "d" + e.of.name
        return self.names.get(n, n), PREC_ATOM

    def _print_Const(self, e: Const):
        return _fraction_code(e.value)

    def _print_Identity(self, e: Identity):
        if e.n == ONE:
            return "1.0", PREC_ATOM
        return f"np.eye({self.size(e.n)})", PREC_ATOM

    def _print_Zero(self, e: Zero):
        if e.rows == ONE and e.cols == ONE:
            return "0.0", PREC_ATOM
        return f"np.zeros(({self.size(e.rows)}, {self.size(e.cols)}))", PREC_ATOM

    def _print_Ones(self, e: Ones):
        if e.n == ONE:
            return "1.0", PREC_ATOM
        return f"np.ones(({self.size(e.n)}, 1))", PREC_ATOM

    def _print_Commutation(self, e: Commutation):
        if e.m == ONE and e.n == ONE:
            return "1.0", PREC_ATOM
        return f"{self.use('_commutation')}({self.size(e.m)}, {self.size(e.n)})", PREC_ATOM

    # --- sums and products -----------------------------------------------------------------
    def _print_Add(self, e: Add):
        out = []
        for i, t in enumerate(e.args):
            neg = self._negated(t)
            if i == 0:
                out.append(self.paren(t, PREC_ADD))
            elif neg is not None:
                code, prec = neg
                out.append(" - " + (f"({code})" if prec <= PREC_ADD else code))
            else:
                out.append(" + " + self.paren(t, PREC_ADD))
        return "".join(out), PREC_ADD

    def _negated(self, t: Expr):
        """``(code, prec)`` of ``-t`` when ``t`` prints with a leading minus, else ``None``."""
        if isinstance(t, Const) and t.value < 0:
            return _fraction_code(-t.value)
        if isinstance(t, Mul):
            coef = Fraction(1)
            for a in t.args:
                if isinstance(a, Const):
                    coef *= a.value
            if coef < 0:
                return self._mul(t, negate=True)
        return None

    def _print_Mul(self, e: Mul):
        return self._mul(e, negate=False)

    def _mul(self, e: Mul, negate: bool):
        coef = Fraction(-1 if negate else 1)
        scalars: list[Expr] = []
        mats: list[Expr] = []
        for a in e.args:
            if isinstance(a, Const):
                coef *= a.value
            elif a.shape == SCALAR:
                scalars.append(a)
            else:
                mats.append(a)
        is_scalar = e.shape == SCALAR
        if coef == 0:
            if is_scalar:
                return "0.0", PREC_ATOM
            r, c = e.shape
            return f"np.zeros(({self.size(r)}, {self.size(c)}))", PREC_ATOM
        parts: list[tuple[str, int]] = []
        for s in scalars:
            parts.append(self._print(s))
        if mats:
            if len(mats) == 1 and not is_scalar:
                parts.append(self._print(mats[0]))
            else:
                code = " @ ".join(self.paren(m, PREC_MUL, strict=i > 0)
                                  for i, m in enumerate(mats))
                parts.append((f"({code}).item()", PREC_ATOM) if is_scalar else (code, PREC_MUL))
        sign = ""
        if coef == -1:
            sign = "-"
        elif coef != 1:
            parts.insert(0, _fraction_code(coef))
        if not parts:
            code, prec = _fraction_code(coef)
            return code, prec
        if len(parts) == 1 and not sign:
            return parts[0]
        out = []
        for i, (code, prec) in enumerate(parts):
            if i == 0:
                wrap = prec < PREC_MUL or (sign and prec <= PREC_NEG)
            else:
                wrap = prec <= PREC_NEG
            out.append(f"({code})" if wrap else code)
        text = sign + " * ".join(out)
        return text, (PREC_NEG if len(parts) == 1 else PREC_MUL)

    def _print_Hadamard(self, e: Hadamard):
        codes = [self.paren(a, PREC_MUL) if i == 0 else self.paren(a, PREC_NEG, strict=True)
                 for i, a in enumerate(e.args)]
        return " * ".join(codes), PREC_MUL

    def _print_Kron(self, e: Kron):
        if e.shape == SCALAR:
            codes = [self.paren(a, PREC_MUL) if i == 0 else self.paren(a, PREC_NEG, strict=True)
                     for i, a in enumerate(e.args)]
            return " * ".join(codes), PREC_MUL
        code = self.doprint(e.args[0])
        for a in e.args[1:]:
            code = f"np.kron({code}, {self.doprint(a)})"
        return code, PREC_ATOM

    def _print_HadamardDiv(self, e: HadamardDiv):
        return (f"{self.paren(e.num, PREC_MUL)} / {self.paren(e.den, PREC_NEG, strict=True)}",
                PREC_MUL)

    # --- unary -----------------------------------------------------------------------------
    def _print_Transpose(self, e: Transpose):
        if e.arg.shape == SCALAR:
            return self._print(e.arg)
        return f"{self.paren(e.arg, PREC_ATOM)}.T", PREC_ATOM

    def _print_Inverse(self, e: Inverse):
        if e.arg.shape == SCALAR:
            return f"1 / {self.paren(e.arg, PREC_NEG, strict=True)}", PREC_MUL
        return f"np.linalg.inv({self.doprint(e.arg)})", PREC_ATOM

    def _scalar_or(self, e, template: str):
        if e.arg.shape == SCALAR:
            return self._print(e.arg)
        return template.format(self.doprint(e.arg)), PREC_ATOM

    def _print_Trace(self, e: Trace):
        return self._scalar_or(e, "np.trace({})")

    def _print_Det(self, e: Det):
        return self._scalar_or(e, "np.linalg.det({})")

    def _print_Sum(self, e: Sum):
        return self._scalar_or(e, "np.sum({})")

    def _print_Diag(self, e: Diag):
        return self._scalar_or(e, "np.diagflat({})")

    def _print_DiagPart(self, e: DiagPart):
        return self._scalar_or(e, "np.diag({}).reshape(-1, 1)")

    def _print_Softmax(self, e: Softmax):
        if e.arg.shape == SCALAR:
            return "1.0", PREC_ATOM
        return f"{self.use('_softmax')}({self.doprint(e.arg)})", PREC_ATOM

    def _print_Vec(self, e: Vec):
        if e.arg.shape == SCALAR:
            return self._print(e.arg)
        return f'{self.paren(e.arg, PREC_ATOM)}.reshape(-1, 1, order="F")', PREC_ATOM

    def _print_Norm(self, e: Norm):
        if e.arg.shape == SCALAR:
            return f"abs({self.doprint(e.arg)})", PREC_ATOM
        r, c = e.arg.shape
        if e.kind == "1":
            return f"np.abs({self.doprint(e.arg)}).sum()", PREC_ATOM
        if e.kind == "2" and r != ONE and c != ONE:
            return f"np.linalg.norm({self.doprint(e.arg)}, 2)", PREC_ATOM   # spectral norm
        return f"np.linalg.norm({self.doprint(e.arg)})", PREC_ATOM

    def _print_Func(self, e: Func):
        if e.name == "sech2":
            return f"1 / np.cosh({self.doprint(e.arg)}) ** 2", PREC_MUL
        try:
            fn = _NP_FUNCS[e.name]
        except KeyError:
            raise MatDerivError(f"unknown elementwise function {e.name!r}") from None
        if fn.startswith("_"):
            self.use(fn)
        return f"{fn}({self.doprint(e.arg)})", PREC_ATOM

    def _print_Power(self, e: Power):
        x = e.exponent
        whole = isinstance(x, Const) and x.value.denominator == 1
        if e.base.shape == SCALAR:
            if whole:
                return f"{self.paren(e.base, PREC_POW, strict=True)} ** {x.value.numerator}", \
                    PREC_POW
            return f"np.power({self.doprint(e.base)}, {self.doprint(x)})", PREC_ATOM
        if isinstance(x, Const):
            if not whole:
                raise MatDerivError(f"matrix power with exponent {x.value}, which is not a "
                                    "whole number")
            k = str(x.value.numerator)
        else:
            k = f"int({self.doprint(x)})"
        return f"np.linalg.matrix_power({self.doprint(e.base)}, {k})", PREC_ATOM


# --------------------------------------------------------------------------------------------
# Whole functions
# --------------------------------------------------------------------------------------------
_RESERVED = {"np", "float", "int", "abs", "range"} | set(HELPERS)


def _dim_text(d: Dim) -> str:
    return " * ".join(d) if d else "1"


def numpy_source(expr: Expr, params: Sequence[Symbol], func_name: str = "f") -> str:
    """Complete Python source of ``def func_name(<params>)`` computing ``expr`` in closed form.

    Parameters come in the given order, named by :attr:`Symbol.name`; vectors may be passed
    as 1-D arrays or n x 1 columns, scalars as floats.  The function returns a float for a
    1 x 1 result and a 2-D array otherwise.  Differentials ``dX`` in ``expr`` become extra
    parameters ``dX`` after the given ones."""
    params = list(params)
    for d in expr.walk():
        if isinstance(d, Differential) and d not in params:
            params.append(d)
    names = []
    renamed: dict[str, str] = {}
    for p in params:
        orig = ("d" + p.of.name) if isinstance(p, Differential) else p.name
        n = orig
        if not n.isidentifier():
            raise MatDerivError(f"{n!r} is not a valid Python parameter name")
        # symbol names such as \lambda are Python keywords: the parameter becomes lambda_
        while keyword.iskeyword(n) or n in _RESERVED or n == func_name:
            n += "_"
        if n in names:
            raise MatDerivError(f"parameter {n!r} is given twice")
        if n != orig:
            renamed[orig] = n
        names.append(n)
    given = {(p.of.name if isinstance(p, Differential) else p.name) for p in params}
    for node in expr.walk():
        if isinstance(node, Symbol) and node.name not in given:
            raise MatDerivError(f"{node.name} appears in the expression but is not a parameter")
    if not func_name.isidentifier() or keyword.iskeyword(func_name):
        raise MatDerivError(f"{func_name!r} is not a valid Python function name")

    # Where each size name can be read from: the first parameter with that dimension.
    providers: dict[str, str] = {}
    for p, n in zip(params, names):
        r, c = p.shape
        for axis, d in ((0, r), (1, c)):
            if len(d) == 1 and d[0] not in providers:
                providers[d[0]] = f"{n}.shape[{axis}]"

    # Variable names of sizes: the size name itself unless it clashes.
    taken = set(names) | _RESERVED | {func_name}
    all_sizes = sorted({s for node in expr.walk() for s in _node_sizes(node)})
    size_vars: dict[str, str] = {}
    for s in all_sizes:
        v = s if s.isidentifier() and not keyword.iskeyword(s) else \
            "size_" + "".join(ch if ch.isalnum() else "_" for ch in s)
        if v in taken:
            v = "size_" + v
        while v in taken:
            v += "_"
        taken.add(v)
        size_vars[s] = v

    pr = NumpyPrinter(size_vars=size_vars, names=renamed)
    body, prec = pr._print(expr)
    scalar = expr.shape == SCALAR
    if scalar and not (prec == PREC_ATOM and body.endswith(".item()")):
        ret = f"float({body})"
    else:
        ret = body

    missing = [s for s in sorted(pr.sizes_used) if s not in providers]
    sig = ", ".join(names)
    if missing:
        sig += (", *, " if names else "*, ") + ", ".join(size_vars[s] for s in missing)

    lines = ["import numpy as np", ""]
    for h in HELPERS:                                  # dependency order
        if h in pr.helpers:
            lines += ["", HELPERS[h].rstrip("\n"), ""]
    lines += ["", f"def {func_name}({sig}):"]
    r, c = expr.shape
    doc = ("Returns a float." if scalar else
           f"Returns an array of shape ({_dim_text(r)}, {_dim_text(c)}).")
    lines.append(f'    """{doc}"""')
    for p, n in zip(params, names):
        pr_, pc = p.shape
        if pr_ == ONE and pc == ONE:
            lines.append(f"    {n} = float({n})")
        elif pc == ONE:
            lines.append(f"    {n} = np.asarray({n}, dtype=float).reshape(-1, 1)")
        elif pr_ == ONE:
            lines.append(f"    {n} = np.asarray({n}, dtype=float).reshape(1, -1)")
        else:
            lines.append(f"    {n} = np.asarray({n}, dtype=float)")
    for s in sorted(pr.sizes_used):
        if s in providers:
            lines.append(f"    {size_vars[s]} = {providers[s]}")
    lines.append(f"    return {ret}")
    return "\n".join(lines) + "\n"


def _node_sizes(node: Expr):
    if isinstance(node, (Identity, Ones)):
        return node.n
    if isinstance(node, Zero):
        return node.rows + node.cols
    if isinstance(node, Commutation):
        return node.m + node.n
    if isinstance(node, Mul):
        r, c = node.shape
        return r + c
    return ()

