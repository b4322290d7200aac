r"""Typeset expression trees as textbook LaTeX.

The printer prints the tree as given (the simplifier decides order and form); it only chooses
notation, spacing and parentheses.  The output uses nothing but constructs that LaTeX (amsmath),
MathJax, KaTeX and pandoc's texmath all accept: ``\frac``, ``\sqrt``, ``\operatorname``,
``\mathrm``, ``\mathbf``, ``\left( \right)``, ``\top``, ``\odot``, ``\otimes``, ``\oslash``,
``\|``, ``\,``.  No ``\tag``, no ``align``, no custom macros, no ``\bm``.

Precedence, loosest first (an operand is parenthesised when it binds more loosely than its
context needs):

1. ``Add`` -- terms joined by `` + `` / `` - ``; a term whose leading coefficient is negative
   prints as `` - ...``.
2. ``Hadamard`` (``\odot``), ``Kron`` (``\otimes``), ``HadamardDiv`` (``\oslash``) -- as in the
   Matrix Cookbook, products bind *tighter* than these, so ``A x \odot b`` means
   ``(A x) \odot b``.  An operand that is an ``Add``, another ``\odot``/``\otimes``/``\oslash``
   node, or a negative term other than the first operand is parenthesised.
3. ``Mul`` -- juxtaposition with one space (``A x``).  All ``Const`` factors become one leading
   coefficient (``2 A x``, ``-A x``, ``\frac{1}{2} x^\top x``); scalar factors
   ``s^{-k}`` (``Power`` of a 1 x 1 base with a negative constant exponent, or ``Inverse`` of a
   1 x 1) go to a denominator, giving ``\frac{x}{\|x\|_2}`` or ``-\frac{2 x}{\tau}``.  Factors
   that are sums or ``\odot``/``\otimes`` nodes are parenthesised; a 1 x 1 sub-product of
   non-scalars is parenthesised unless it is the whole product (``(x^\top A x) I_n``); a thin
   space ``\,`` follows a function-like scalar factor (``\det``, ``\operatorname{tr}``, an
   elementwise function, a norm) that precedes a non-scalar (``\det(X)\, X^{-\top}``).
4. Postfix ``^\top``, ``^{-1}``, ``^{-\top}``, powers: the base is parenthesised unless it is
   an atom (symbol, function application, norm, identity, ...): ``(A x + b)^\top``,
   ``(X^2)^\top``, ``(A + \tau B)^{-1}``.

Parentheses are ``( )``, or ``\left( \right)`` when the content holds a ``\frac``.
"""
from __future__ import annotations

import re
from contextvars import ContextVar
from fractions import Fraction

from ..deadline import tick
from ..expr import (
    COEF_ONE,
    DifferentialOf,
    ONE,
    SCALAR,
    UNKNOWN,
    Add,
    Commutation,
    Const,
    Det,
    Diag,
    DiagPart,
    Differential,
    Expr,
    Func,
    Hadamard,
    HadamardDiv,
    Identity,
    Inverse,
    Kron,
    Mul,
    Norm,
    Ones,
    Power,
    ShapeError,
    Softmax,
    Sum,
    Symbol,
    Trace,
    Transpose,
    Vec,
    Zero,
    chain_shape,
)

__all__ = ["LatexPrinter", "latex", "latex_derivative_symbol"]

#: Elementwise function name -> (LaTeX head, written as head^n(x) when raised to a power n).
_FUNC_HEADS = {
    "exp": (r"\exp", False),
    "log": (r"\log", True),
    "sin": (r"\sin", True),
    "cos": (r"\cos", True),
    "tanh": (r"\tanh", True),
    "sinh": (r"\sinh", True),
    "cosh": (r"\cosh", True),
    "tan": (r"\tan", True),
    "arctan": (r"\arctan", True),
    "sigmoid": (r"\sigma", False),  # \sigma^2(t) would read back as the symbol sigma
    "dsigmoid": (r"\sigma'", False),
    "sech2": (r"\operatorname{sech}^2", False),
    "sign": (r"\operatorname{sign}", False),
    # "sqrt" and "abs" are special-cased (\sqrt{x}, |x|)
}

#: Nodes printed as one unit that a postfix ``^...`` may follow directly.
_ATOMS = (Symbol, Identity, Ones, Commutation, Zero, Differential, DifferentialOf, Trace, Det,
          Softmax, Diag, DiagPart, Vec, Sum, Norm)


def _shape(e: Expr):
    try:
        return e.shape
    except (ShapeError, ValueError, KeyError, AttributeError, TypeError):
        return None


def _is_scalar(e: Expr) -> bool:
    """Whether ``e`` is 1 x 1 (False when its shape cannot be computed, as :func:`_shape`
    gives None then).  Read through the node's kept ``is_scalar`` (``shape == SCALAR``, a
    plain attribute after the first read), not a call of :func:`_shape` each time."""
    try:
        return e.is_scalar
    except (ShapeError, ValueError, KeyError, AttributeError, TypeError):
        return False


def _fmt_dim(d) -> str:
    return "".join(d)


def _fmt_size(d) -> str:
    """A size as a product with powers: ``mn``, ``n^2`` (not ``nn``), ``mn^2``."""
    out = []
    for name in dict.fromkeys(d):
        k = d.count(name)
        out.append(name if k == 1 else "%s^%d" % (name, k))
    return "".join(out)


def size_letter(name: str) -> bool:
    """Whether a size's name is one letter, which the printer writes bare where the size is
    used as a number (:func:`printed_size`), and which a text may use so."""
    return len(name) == 1 and "a" <= name <= "z"


def printed_size(e: Expr):
    r"""The size ``d`` when ``e`` is ``tr(I_d)`` and is printed as the letters of ``d`` (a size
    as a number, as textbooks and SymPy write it: ``n``, ``mn``, ``n^2``); else None.  Shape
    inference never gives a size the letter of a symbol of the expression, so the letters
    are unambiguous; sizes named otherwise (``n1``) keep ``\operatorname{tr}(I_{...})``."""
    if not (isinstance(e, Trace) and isinstance(e.arg, Identity)):
        return None
    d = e.arg.n
    if d == ONE or d == UNKNOWN or not all(size_letter(n) for n in d):
        return None
    return d


def _size_text(e: Expr) -> str | None:
    """``n`` for ``tr(I_n)``, ``mn``, ``n^2`` (see :func:`printed_size`), or None."""
    d = printed_size(e)
    return None if d is None else _fmt_size(d)


def _is_size(e: Expr) -> bool:
    """A size printed as a number, a power of one, or a sum or product of those and
    constants (``n``, ``m^2``, ``n^2 - n``): it goes first in a product, as a coefficient
    does."""
    if isinstance(e, Power) and isinstance(e.exponent, Const):
        return _is_size(e.base)
    if isinstance(e, (Add, Mul)):
        # every term a size or a number, one at least a size (one pass, stopping at the first
        # that is neither)
        found = False
        for a in e.args:
            if isinstance(a, Const):
                continue  # (a number is never a size)
            if not _is_size(a):
                return False
            found = True
        return found
    return isinstance(e, Trace) and printed_size(e) is not None  # (only tr(I_d) is a size)


def _sub(d) -> str:
    """Subscript for a size: ``_n``, ``_{mn}``, ``_{n^2}`` (not ``_{nn}``)."""
    s = _fmt_size(d)
    return "_" + s if len(s) == 1 else "_{" + s + "}"


#: Whether numbers that are finite decimals print as decimals (``0.02 w``) rather than as
#: fractions (``\frac{1}{50} w``): on while a formula whose author wrote a decimal is printed
#: (see :func:`decimal_numbers`), so the result keeps the author's notation.
_DECIMALS: ContextVar[bool] = ContextVar("matderiv_decimal_numbers", default=False)

#: The most digits after the point a number prints with in decimal mode (1/1024 has 10: it is
#: a fraction still); numbers that do not end (1/3) are always fractions.
MAX_DECIMAL_DIGITS = 6


class decimal_numbers:
    """Print finite decimals as decimals (``0.5``, ``1.25``) in this context.  (A class rather
    than a ``@contextmanager`` generator, whose machinery costs more than the switch.)"""

    __slots__ = ("_on", "_token")

    def __init__(self, on: bool = True):
        self._on = on

    def __enter__(self) -> None:
        # (the mode already as asked, most often off: nothing set, nothing to reset)
        self._token = _DECIMALS.set(self._on) if _DECIMALS.get() != self._on else None

    def __exit__(self, *exc) -> None:
        if self._token is not None:
            _DECIMALS.reset(self._token)


def _decimal(v: Fraction) -> str | None:
    """``v`` (not a whole number) as a decimal when decimal mode is on and it ends within
    :data:`MAX_DECIMAL_DIGITS` digits (``0.02``, ``-1.5``); else None."""
    if v.denominator == 1 or not _DECIMALS.get():
        return None
    scaled = v * 10 ** MAX_DECIMAL_DIGITS
    if scaled.denominator != 1:
        return None
    digits = f"{abs(scaled.numerator):0{MAX_DECIMAL_DIGITS + 1}d}"
    whole, frac = digits[:-MAX_DECIMAL_DIGITS], digits[-MAX_DECIMAL_DIGITS:].rstrip("0")
    return ("-" if v < 0 else "") + whole + "." + frac


def _scientific(v: Fraction) -> str | None:
    r"""``v`` in scientific notation when it is a short number times a power of ten at least
    six away (``2 \cdot 10^{-10}``, ``10^{7}``, ``-2.5 \cdot 10^{-8}``), as a reader writes it
    rather than ``\frac{1}{5000000000}``; else None."""
    if v.denominator == 1 and -10**6 < v.numerator < 10**6:
        return None  # (0, and a whole number of at most six digits: its exponent is below 6)
    rest = v.denominator
    for p in (2, 5):
        while rest % p == 0:
            rest //= p
    if rest != 1:
        return None  # (1/3 never ends)
    m, k = abs(v), 0
    while m.denominator != 1:
        m, k = m * 10, k - 1
    m = m.numerator
    while m % 10 == 0:
        m, k = m // 10, k + 1
    digits = str(m)
    exponent = k + len(digits) - 1
    if len(digits) > 3 or abs(exponent) < 6:
        return None
    head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    power = "10^{" + str(exponent) + "}"
    return ("-" if v < 0 else "") + (power if head == "1" else head + r" \cdot " + power)


def _fmt_fraction(v: Fraction) -> str:
    """An unsigned or signed rational as LaTeX: ``2``, ``-3``, ``\\frac{1}{2}``, ``-\\frac{3}{4}``
    (``0.5``, ``-0.75`` in decimal mode)."""
    sci = _scientific(v)
    if sci is not None:
        return sci
    if v.denominator == 1:
        return str(v.numerator)
    dec = _decimal(v)
    if dec is not None:
        return dec
    sign = "-" if v < 0 else ""
    return rf"{sign}\frac{{{abs(v.numerator)}}}{{{v.denominator}}}"


def _hadamard_runs(e: Hadamard, text) -> list[list]:
    r"""The factors of an elementwise product with the count of each, in the order they first
    appear (the product commutes): u \odot v \odot u is u^{\circ 2} \odot v.  Factors are
    the same when they print the same (``text``: the printer), so that the printed formula,
    read back, prints as itself; at most 8 of one factor to a run, the elementwise powers the
    reader takes."""
    runs: list[list] = []
    for a in _hadamard_factors(e):
        key = text(a)
        for run in runs:
            if run[2] == key and run[1] < 8:
                run[1] += 1
                break
        else:
            runs.append([a, 1, key])
    return runs


def _hadamard_factors(e: Hadamard) -> list[Expr]:
    """The factors of an elementwise product, nested products opened (it is associative)."""
    out: list[Expr] = []
    for a in e.args:
        out.extend(_hadamard_factors(a) if isinstance(a, Hadamard) else (a,))
    return out


def _beside(head: str, tail: str) -> str:
    r"""``head`` and ``tail`` side by side: a ``\cdot`` between them when ``tail`` starts with a
    digit (``2 \cdot 3``, not ``2 3``, which reads as 23), else a space."""
    return head + (r" \cdot " if _starts_with_digit(tail) else " ") + tail


def _starts_with_digit(s: str) -> bool:
    """Whether ``s`` starts with an ASCII digit (what ``re.match(r"[0-9]", s)`` tells, without
    the pattern cache's look-up: asked once per factor printed)."""
    return "0" <= s[:1] <= "9"


def paren(s: str) -> str:
    r"""``s`` in round brackets, sized (``\left( \right)``) when it holds a fraction."""
    if r"\frac" in s:
        return r"\left(" + s + r"\right)"
    return "(" + s + ")"


def _is_plain_scalar(e: Expr) -> bool:
    r"""A scalar symbol or its whole positive power (``n``, ``\lambda^2``): what textbooks put
    over a fraction's bar with the number (``\frac{n}{2}``)."""
    if isinstance(e, Power) and isinstance(e.exponent, Const):
        v = e.exponent.value
        return v.denominator == 1 and v > 0 and isinstance(e.base, Symbol) and _is_scalar(e.base)
    return isinstance(e, Symbol) and _is_scalar(e)


def _is_reciprocal_of_a_symbol(e: Expr) -> bool:
    """``n^{-1}`` of a scalar symbol n: an exponent written inline as ``1/n``."""
    return isinstance(e, Power) and isinstance(e.exponent, Const) and e.exponent.value == -1 \
        and isinstance(e.base, Symbol) and _is_scalar(e.base)


def _is_power_of_a_number(e: Expr) -> bool:
    """Whether ``e`` is a whole number's whole power (``10^{-4}``, ``2^{-k}`` with k a
    number): it prints as written, in front, not below a bar."""
    return isinstance(e, Power) and isinstance(e.base, Const) and isinstance(e.exponent, Const) \
        and e.base.value.denominator == 1 and e.base.value > 1 \
        and e.exponent.value.denominator == 1


def _sup(s: str) -> str:
    """Superscript: a single digit without braces, anything else braced."""
    if re.fullmatch(r"[0-9]", s):
        return "^" + s
    return "^{" + s + "}"


def _scalar_flags(factors) -> list:
    """:func:`_is_scalar` of each factor, read as the nodes' kept attributes in one go (a
    call per factor otherwise); a factor whose shape cannot be computed is asked alone."""
    try:
        return [f.is_scalar for f in factors]
    except (ShapeError, ValueError, KeyError, AttributeError, TypeError):
        return [_is_scalar(f) for f in factors]


#: The node types :func:`_is_size` can hold true of (a size, a power, sum or product of sizes).
_SIZE_TYPES = (Trace, Power, Add, Mul)

#: The node types :meth:`LatexPrinter._mul_factor` may bracket.
_BRACKETABLE_TYPES = (Hadamard, Add, Kron, HadamardDiv, Mul, Const)

#: The node types :meth:`LatexPrinter._is_function_like` can hold true of.
_FUNCTION_LIKE_TYPES = (Power, Det, Trace, Func, Norm, Sum)

#: (printer class, node class) -> the name of the method that prints it (found once)
_METHOD_OF: dict = {}


def _chain_shape(factors):
    """The shape of the matrix product of ``factors`` (None when it is not defined)."""
    try:
        return chain_shape(factors)
    except ShapeError:
        return None


class LatexPrinter:
    """``LatexPrinter().doprint(expr)``: one ``_print_<Node>`` method per node type."""

    #: the texts printed so far in this formula, by (node, inside bars) (:meth:`_print`); and
    #: whether the node being printed is inside bars (bars inside bars print apart)
    _texts = None
    _sided_bars = False

    def doprint(self, expr: Expr) -> str:
        self._root, self._sigma_taken, self._texts = expr, None, {}
        return self._print(expr)

    def _sigma_is_a_symbol(self) -> bool:
        """Whether the formula being printed holds a symbol sigma: then the logistic function
        is spelled out, as \\sigma (x) would be that symbol times x (found once, and only for a
        formula that holds the function)."""
        if getattr(self, "_sigma_taken", None) is None:
            root = getattr(self, "_root", None)
            self._sigma_taken = root is not None and any(
                isinstance(n, Symbol) and n.name == "sigma" for n in root.walk())
        return self._sigma_taken

    # ------------------------------------------------------------------ dispatch
    def _print(self, expr: Expr) -> str:
        """The text of ``expr``, each node printed once per formula: an elementwise product
        prints its factors to find repeats (u \\odot u is u^{\\circ 2}), and nested products
        would print them again at every level (exponential in the depth)."""
        if type(expr) is Symbol:
            return self._print_Symbol(expr)  # (no memo look-up, no dispatch)
        texts = self._texts
        # (keyed by the node's id, the node kept in the value so that the id stays its own: an
        # int hashes in C, a node's kept hash is a Python call, and an equal node met apart is
        # printed again, to the same text; bars inside bars print apart, under (id, True))
        key = (id(expr), True) if self._sided_bars else id(expr)
        if texts is not None:
            hit = texts.get(key)
            if hit is not None:
                return hit[1]
        tick()  # (after the look-up: a text already printed takes no time worth polling)
        name = _METHOD_OF.get((type(self), type(expr)))
        if name is None:
            name = _METHOD_OF[type(self), type(expr)] = self._method_name(type(expr))
        out = getattr(self, name)(expr)
        if texts is not None:
            texts[key] = (expr, out)
        return out

    def _method_name(self, node_type) -> str:
        """The ``_print_<Class>`` method for ``node_type``: its own, else its nearest base's."""
        for cls in node_type.__mro__:
            if cls is not Expr and cls is not object and hasattr(self, "_print_" + cls.__name__):
                return "_print_" + cls.__name__
        raise ValueError(f"LatexPrinter: no rule for node {node_type.__name__}")

    # ------------------------------------------------------------------ leaves
    def _print_Symbol(self, e: Symbol) -> str:
        return e.latex or e.name  # W^{(1)} as written; braced only before a superscript

    def _print_Const(self, e: Const) -> str:
        return _fmt_fraction(e.value)

    def _print_Identity(self, e: Identity) -> str:
        if e.n == ONE:
            return "1"
        if e.n == UNKNOWN:
            return "I"
        return "I" + _sub(e.n)

    def _print_Zero(self, e: Zero) -> str:
        r, c = e.rows, e.cols
        if (r, c) == SCALAR:
            return "0"
        if UNKNOWN in (r, c):
            return "0"
        if c == ONE:
            return r"\mathbf{0}"
        if r == ONE:
            return r"\mathbf{0}^\top"
        return "0_{" + _fmt_size(r) + r" \times " + _fmt_size(c) + "}"

    def _print_Ones(self, e: Ones) -> str:
        return r"\mathbf{1}"

    def _print_Commutation(self, e: Commutation) -> str:
        m, n = _fmt_dim(e.m) or "1", _fmt_dim(e.n) or "1"
        if len(m) == 1 and len(n) == 1:
            return "K_{" + m + n + "}"
        return "K_{" + m + "," + n + "}"

    def _print_Differential(self, e: Differential) -> str:
        return r"\mathrm{d}" + self._print(e.of)

    def _print_DifferentialOf(self, e: DifferentialOf) -> str:
        return r"\mathrm{d}\left(" + self._print(e.arg) + r"\right)" if "\\frac" in self._print(e.arg) \
            else r"\mathrm{d}(" + self._print(e.arg) + ")"

    # ------------------------------------------------------------------ helpers
    def _postfix_base(self, e: Expr) -> str:
        """``e`` ready to take a postfix superscript (parenthesised unless atomic)."""
        if type(e) is Symbol:  # (the commonest base, x^\top: asked first)
            s = self._print_Symbol(e)
            # an indexed symbol: {W^{(1)}}^\top, not a second superscript
            return "{" + s + "}" if "^" in s else s
        if isinstance(e, Mul):
            coeff, rest = self._flatten_mul(e.args)
            if coeff == 1 and len(rest) == 1:
                return self._postfix_base(rest[0])  # 1/2 (2 x) prints as x: no brackets
        size = _size_text(e) if isinstance(e, Trace) else None  # (only tr(I_d) is a size)
        if size is not None:
            return size if len(size) == 1 else paren(size)  # (mn)^2, not m n^2
        if isinstance(e, _ATOMS):
            s = self._print(e)
            if isinstance(e, Zero) and "^" in s:
                return paren(s)
            return s
        if isinstance(e, Func):
            if e.name in ("sqrt",):
                return paren(self._print(e))
            return self._print(e)
        if isinstance(e, Const) and e.value >= 0 and e.value.denominator == 1:
            return self._print(e)
        return paren(self._print(e))

    @staticmethod
    def _const_factor(args):
        coeff = COEF_ONE
        rest = []
        for a in args:
            if isinstance(a, Const):
                coeff = a.value if coeff is COEF_ONE else coeff * a.value
            else:
                rest.append(a)
        return coeff, rest

    def _negated(self, e: Expr):
        """If ``e`` prints with a leading minus, the expression without it; else None."""
        if isinstance(e, Const):
            return Const(-e.value) if e.value.numerator < 0 else None  # (see _print_Mul)
        if isinstance(e, Mul):
            coeff, rest = self._flatten_mul(e.args)
            if coeff.numerator < 0:
                if not rest:
                    return Const(-coeff)
                if coeff == -1 and len(rest) == 1:
                    return rest[0]
                return Mul(((Const(-coeff),) if coeff != -1 else ()) + tuple(rest))
            return None
        if isinstance(e, (Hadamard, Kron)) and e.args:
            n = self._negated(e.args[0])
            return type(e)((n,) + tuple(e.args[1:])) if n is not None else None
        if isinstance(e, HadamardDiv):
            n = self._negated(e.num)
            return HadamardDiv(n, e.den) if n is not None else None
        return None

    # ------------------------------------------------------------------ Add
    def _print_Add(self, e: Add) -> str:
        out = []
        for i, t in enumerate(self._flatten_add(e.args)):
            neg = self._negated(t)
            if neg is not None:
                body = self._print(neg)
                if isinstance(neg, Add):
                    body = paren(body)
                out.append(("-" if i == 0 else " - ") + body)
            else:
                body = self._print(t)
                out.append(("" if i == 0 else " + ") + body)
        return "".join(out) if out else "0"

    def _flatten_add(self, args):
        res = []
        for a in args:
            if isinstance(a, Add):
                res.extend(self._flatten_add(a.args))
            else:
                res.append(a)
        return res

    # ------------------------------------------------------------------ Mul
    def _flatten_mul(self, args):
        """(coefficient, factors): nested products spliced in and constants collected.

        A nested 1 x 1 product of non-scalars stays one factor (it is printed in parentheses),
        but its constants and scalar factors are lifted out (they commute)."""
        coeff = COEF_ONE
        out = []
        for a in args:
            if isinstance(a, Const):
                coeff = a.value if coeff is COEF_ONE else coeff * a.value
            elif isinstance(a, Mul):
                c, sub = self._flatten_mul(a.args)
                coeff = c if coeff is COEF_ONE else coeff * c
                if _is_scalar(a) and any(not _is_scalar(f) for f in sub):
                    sub = self._group_scalar_runs(sub)  # (a leading 1 x 1 run is a scalar too)
                    scal = [f for f in sub if _is_scalar(f)]
                    nons = [f for f in sub if not _is_scalar(f)]
                    out.extend(scal)
                    out.append(Mul(tuple(nons)) if len(nons) > 1 else nons[0])
                else:
                    out.extend(sub)
            else:
                n = self._negated(a) if isinstance(a, (Hadamard, Kron, HadamardDiv)) else None
                if n is not None:  # (-x \odot y) z prints -(x \odot y) z, as that reads back
                    coeff = -coeff
                    a = n
                out.append(a)
        return coeff, out

    @staticmethod
    def _group_scalar_runs(factors):
        r"""In a flat product, a leading run of non-scalars whose product is 1 x 1 and that is
        followed by more non-scalars becomes one (parenthesised) group, the scalars met inside
        it put before it: ``(a^\top b) c^\top``, ``t (a^\top b) c^\top``."""
        scalar = _scalar_flags(factors)
        nons_total = len(factors) - sum(scalar)
        if nons_total < 2:
            return factors  # (no run of two non-scalars: nothing to group, the order kept)
        out, run, cur = [], [], None
        seen = 0
        for f, f_scalar in zip(factors, scalar):
            if f_scalar:
                (run if cur is not None else out).append(f)
                continue
            run.append(f)
            seen += 1
            try:  # (_shape, inline: once per factor)
                s = f.shape
            except (ShapeError, ValueError, KeyError, AttributeError, TypeError):
                return factors
            cur = s if cur is None else (cur[0], s[1])
            if cur == SCALAR and seen < nons_total and sum(1 for g in run if not _is_scalar(g)) > 1:
                # scalars met inside the run go before the group, as a nested 1 x 1 product
                # prints (_flatten_mul): t (a^T b) c^T, not (t a^T b) c^T
                out.extend(g for g in run if _is_scalar(g))
                out.append(Mul(tuple(g for g in run if not _is_scalar(g))))
                run, cur = [], None
        return out + run

    @staticmethod
    def _denominator_part(f: Expr):
        """If ``f`` is a scalar ``s^{-k}``, the positive-power form that goes below the bar."""
        if isinstance(f, Power) and isinstance(f.exponent, Const) and f.exponent.value < 0 \
                and _is_scalar(f.base) and not _is_power_of_a_number(f):
            k = -f.exponent.value
            return f.base if k == 1 else Power(f.base, Const(k))
        if isinstance(f, Inverse) and _is_scalar(f.arg):
            return f.arg
        if isinstance(f, Power) and isinstance(f.exponent, Mul) and _is_scalar(f.base):
            # (2\pi)^{-n/2} goes below the bar as (2\pi)^{n/2}
            ex = f.exponent.args
            if isinstance(ex[0], Const) and ex[0].value < 0:
                rest = ex[1:] if ex[0].value == -1 else (Const(-ex[0].value),) + ex[1:]
                return Power(f.base, rest[0] if len(rest) == 1 else Mul(rest))
        return None

    @staticmethod
    def _is_function_like(f: Expr) -> bool:
        if isinstance(f, Power) and isinstance(f.exponent, Const):
            if f.exponent.value == Fraction(1, 2) and _is_scalar(f.base):
                return True  # printed \sqrt{...}, as the function sqrt is
            f = f.base
        return (isinstance(f, (Det, Trace, Func, Norm, Sum)) and _is_scalar(f)
                and printed_size(f) is None)

    def _prints_as_power(self, e: Expr) -> bool:
        """Whether ``e`` prints as one elementwise power, ``u^{\\circ k}`` (no brackets)."""
        return isinstance(e, Hadamard) and not _is_scalar(e) and \
            len(_hadamard_runs(e, self._print)) == 1

    def _mul_factor(self, f: Expr, alone: bool) -> str:
        s = self._print(f)
        if alone:
            return s
        if isinstance(f, Hadamard):
            return s if self._prints_as_power(f) else paren(s)  # u^{\circ 2} needs no brackets
        if isinstance(f, (Add, Kron)):
            return paren(s)
        if isinstance(f, HadamardDiv) and not _is_scalar(f):
            return paren(s)
        if isinstance(f, Mul):
            return paren(s)
        if isinstance(f, Const) and f.value.numerator < 0:
            return paren(s)
        return s

    def _join_factors(self, factors, alone_ok: bool = True) -> str:
        """Juxtapose factors (no constants in ``factors``)."""
        parts = []
        alone = alone_ok and len(factors) == 1
        for i, f in enumerate(factors):
            # (only these can take brackets as a factor: the rest print as themselves)
            s = self._mul_factor(f, alone) if isinstance(f, _BRACKETABLE_TYPES) else self._print(f)
            if parts:
                prev = factors[i - 1]
                if "0" <= s[:1] <= "9":  # (_starts_with_digit, inline: once per factor)
                    sep = r" \cdot "
                elif parts[-1] == r"\sigma" and s.startswith(("(", r"\left(")):
                    sep = r" \cdot "  # \sigma (u) reads as the logistic function of u
                elif isinstance(prev, _FUNCTION_LIKE_TYPES) and self._is_function_like(prev) \
                        and not _is_scalar(f):
                    sep = r"\, "
                elif isinstance(prev, Differential) or (
                        isinstance(prev, Transpose) and isinstance(prev.arg, Differential)):
                    sep = r"\, "  # d X X^{-1} would read as "dXX"
                else:
                    sep = " "
                parts.append(sep)
            parts.append(s)
        return "".join(parts)

    def _splice_lone_group(self, factors):
        """A 1 x 1 sub-product that is the whole product up to scalars loses its parentheses,
        with the scalars first (t x^T a) and grouped as a flat product is, so the text reads
        back as itself however the product was nested."""
        groups = [f for f in factors if isinstance(f, Mul)]
        if not groups and len(factors) < 2:
            return factors  # (one factor or none: nothing to splice or reorder)
        if len(groups) == 1 and all(_is_scalar(f) for f in factors if f is not groups[0]) \
                and any(not _is_scalar(f) for f in groups[0].args):
            factors = self._group_scalar_runs([f for f in factors if f is not groups[0]]
                                              + list(groups[0].args))
        nons = [f for f, f_scalar in zip(factors, _scalar_flags(factors)) if not f_scalar]
        if len(nons) > 1 and _chain_shape(nons) == SCALAR:
            # a flat 1 x 1 chain with scalars among it: the scalars first (s^T b t -> t s^T b);
            # where a 1 x 1 group stands among it, the rest of the chain becomes a group of its
            # own, (x^T b) (e^T C x), as a nested 1 x 1 product prints (_flatten_mul)
            scalars = [f for f in factors if _is_scalar(f)]
            if any(isinstance(f, Mul) for f in scalars):
                return scalars + [Mul(tuple(nons))]
            return scalars + nons
        return factors

    def _denominator(self, den, number: int) -> str:
        """The text under a fraction bar: the number (when not 1) before the factors."""
        bottom = self._join_factors(den, alone_ok=(number == 1))
        if number == 1:
            return bottom
        if not bottom:
            return str(number)
        return _beside(str(number), bottom)

    def _print_Mul(self, e: Mul) -> str:
        coeff, factors = self._flatten_mul(e.args)
        num, den = [], []
        for f in factors:
            # (only a power or an inverse can go below the bar: the rest are not asked)
            d = self._denominator_part(f) if isinstance(f, (Power, Inverse)) else None
            (den if d is not None else num).append(d if d is not None else f)
        if coeff is not COEF_ONE and coeff == 0:  # (the shared 1: no Fraction comparison)
            return "0"
        # a size goes first, as a coefficient does: n \det(X), not \det(X) n
        if len(num) > 1:  # (stable: the rest keep their order; one factor stays as it is)
            for f in num:
                if isinstance(f, _SIZE_TYPES):  # (no other factor can be a size: no sort)
                    num = sorted(num, key=lambda f: not _is_size(f))
                    break
        num = self._splice_lone_group(self._group_scalar_runs(num))
        # and under the bar the plain letters: n \det(X)^{1/n}, k t^{1/k + 1}
        if den:
            den = self._splice_lone_group(sorted(den, key=lambda f: not _is_plain_scalar(f)))
        if coeff is COEF_ONE:  # (the shared 1, most products': no Fraction asked)
            sign, c, c_top, c_bottom = "", coeff, "1", 1
        else:
            # (the coefficient is a Fraction, as a Const's value always is: its sign is its
            # numerator's, read without Fraction's comparison, which asks numbers.Rational first)
            negative = coeff.numerator < 0
            sign = "-" if negative else ""
            c = -coeff if negative else coeff
            # the number over the bar and under it: 0.3 and 1 in decimal mode (\frac{0.3 x}{\tau})
            dec = None if c is COEF_ONE else _scientific(c) or _decimal(c)
            c_top, c_bottom = (dec, 1) if dec is not None else (str(c.numerator), c.denominator)
        if den and len(num) == 1 and isinstance(num[0], Add):
            # a sum of fractions over a denominator, \frac{\frac{y}{a} - \frac{x}{b}}{c}, is
            # written \frac{1}{c} \left(\frac{y}{a} - \frac{x}{b}\right), as textbooks do
            summed = self._print(num[0])
            if r"\frac" in summed:
                bottom = self._denominator(den, c_bottom)
                return sign + r"\frac{" + c_top + "}{" + bottom + "} " + paren(summed)
        if den or (num == [] and c_bottom != 1):
            # a lone sum keeps its parentheses once a coefficient stands beside it
            top = self._join_factors(num, alone_ok=(c_top == "1")) if num else ""
            if c_top != "1":
                top = _beside(c_top, top) if top else c_top
            elif not top:
                top = "1"
            return sign + r"\frac{" + top + "}{" + self._denominator(den, c_bottom) + "}"
        if not num:
            return sign + _fmt_fraction(c)
        if c_bottom != 1:
            # \frac{n}{2} \Sigma^{-1}, \frac{3 \lambda}{2} x, not \frac{1}{2} n \Sigma^{-1}:
            # the scalar symbols in front go over the fraction bar, as textbooks write them
            k = 0
            while k < len(num) and _is_plain_scalar(num[k]):
                k += 1
            if k:
                top = self._join_factors(num[:k])
                if c_top != "1":
                    top = c_top + " " + top
                head = r"\frac{" + top + "}{" + str(c_bottom) + "}"
                if k == len(num):
                    return sign + head
                rest = self._join_factors(num[k:], alone_ok=False)
                return sign + _beside(head, rest)
        body = self._join_factors(num, alone_ok=(coeff is COEF_ONE or coeff == 1))
        if c is COEF_ONE or c == 1:
            return sign + body
        return sign + _beside(_fmt_fraction(c), body)

    # ------------------------------------------------------------------ elementwise / Kronecker
    def _binop_operand(self, a: Expr, first: bool) -> str:
        s = self._print(a)
        if self._prints_as_power(a):
            return s  # u^{\circ 2}
        if isinstance(a, (Add, Hadamard, Kron)):
            return paren(s)
        if isinstance(a, HadamardDiv) and not _is_scalar(a):
            return paren(s)
        if not first and self._negated(a) is not None:
            return paren(s)
        return s

    def _nary(self, args, op: str) -> str:
        return f" {op} ".join(self._binop_operand(a, i == 0) for i, a in enumerate(args))

    def _minus_out_front(self, e: Expr) -> str | None:
        r"""``(-x) \odot y`` as ``-(x \odot y)``: a bare ``-x \odot y`` would read back as that
        (unary minus binds more loosely than the elementwise and Kronecker products), which
        prints with brackets, so the printed text would not be a fixed point of reading back."""
        n = self._negated(e)
        if n is None:
            return None
        if self._prints_as_power(n):
            return "-" + self._print(n)  # -x^{\circ 2}: the power binds first
        return "-" + paren(self._print(n))

    def _print_Hadamard(self, e: Hadamard) -> str:
        if all(_is_scalar(a) for a in e.args):  # elementwise product of 1 x 1 terms
            return self._print_Mul(Mul(tuple(e.args)))
        minus = self._minus_out_front(e)
        if minus:
            return minus
        runs = _hadamard_runs(e, self._print)
        if len(runs) == len(_hadamard_factors(e)):  # nothing repeats: as written
            return self._nary(e.args, r"\odot")
        parts = [self._binop_operand(a, i == 0) if k == 1 else
                 self._postfix_base(a) + r"^{\circ " + str(k) + "}"
                 for i, (a, k, _) in enumerate(runs)]
        return r" \odot ".join(parts)

    def _print_Kron(self, e: Kron) -> str:
        return self._minus_out_front(e) or self._nary(e.args, r"\otimes")

    def _print_HadamardDiv(self, e: HadamardDiv) -> str:
        if _is_scalar(e.num) and _is_scalar(e.den):
            return r"\frac{" + self._print(e.num) + "}{" + self._print(e.den) + "}"
        return self._minus_out_front(e) or self._nary((e.num, e.den), r"\oslash")

    # ------------------------------------------------------------------ postfix
    def _print_Transpose(self, e: Transpose) -> str:
        a = e.arg
        if isinstance(a, Inverse) and not isinstance(a.arg, Transpose):
            # (Y^{-1})^T is Y^{-T}, as (Y^T)^{-1} is; ((Y^T)^{-1})^T keeps its outer ^T, so that
            # the text reads back as the same tree
            return self._postfix_base(a.arg) + r"^{-\top}"
        if isinstance(a, Differential):
            return r"\mathrm{d}" + self._postfix_base(a.of) + r"^\top"
        return self._postfix_base(a) + r"^\top"

    def _print_Inverse(self, e: Inverse) -> str:
        a = e.arg
        if isinstance(a, Transpose):
            return self._postfix_base(a.arg) + r"^{-\top}"
        return self._postfix_base(a) + "^{-1}"

    def _exponent(self, x: Expr) -> str:
        if isinstance(x, Const):
            v = x.value
            if v.denominator == 1:
                return str(v.numerator)
            return _decimal(v) or f"{v.numerator}/{v.denominator}"
        over = self._over_a_symbol(x)
        if over is not None:
            return over  # \det(X)^{1/n}, not ^{\frac{1}{n}}
        if isinstance(x, Add):
            plain = self._print(x)
            if r"\frac" not in plain:
                return plain
            texts = [self._exponent(t) for t in x.args]
            if any(r"\frac" in t for t in texts):
                return plain
            return "".join(t if i == 0 else (" - " + t[1:] if t.startswith("-") else " + " + t)
                           for i, t in enumerate(texts))  # t^{1/k - 1}, t^{k/2 - 1}
        if isinstance(x, Mul):
            # n/2, -n/2, 3 t/2: a fraction of scalar symbols inline, as a number's is
            coeff, factors = self._flatten_mul(x.args)
            if coeff.denominator != 1 and factors and all(_is_plain_scalar(f) for f in factors):
                top = self._join_factors(factors)
                if abs(coeff.numerator) != 1:
                    top = f"{abs(coeff.numerator)} {top}"
                return ("-" if coeff < 0 else "") + top + "/" + str(coeff.denominator)
        return self._print(x)

    def _over_a_symbol(self, x: Expr) -> str | None:
        """An exponent that is a whole number over a scalar symbol, inline: ``1/n``, ``-2/n``
        (None for any other)."""
        if _is_reciprocal_of_a_symbol(x):
            return "1/" + self._print(x.base)
        if isinstance(x, Mul) and len(x.args) == 2 and isinstance(x.args[0], Const) and \
                x.args[0].value.denominator == 1 and _is_reciprocal_of_a_symbol(x.args[1]):
            return f"{x.args[0].value.numerator}/" + self._print(x.args[1].base)
        return None

    def _print_Power(self, e: Power) -> str:
        b, x = e.base, e.exponent
        scalar = _is_scalar(b)
        if _is_power_of_a_number(e):  # 10^{-4}, as written: not \frac{1}{10^4}
            return str(b.value.numerator) + _sup(str(x.value.numerator))
        if isinstance(x, Const):
            v = x.value
            if scalar and v == Fraction(1, 2):
                return r"\sqrt{" + self._print(b) + "}"
            if scalar and v < 0:
                return self._print_Mul(Mul((e,)))
            if isinstance(b, Norm) and v.denominator == 1 and v > 0:
                return self._print(b) + _sup(str(v.numerator))
            if (scalar and isinstance(b, Func) and v.denominator == 1 and v > 0
                    and _FUNC_HEADS.get(b.name, ("", False))[1]
                    and not (b.name == "log" and isinstance(b.arg, Det))):
                head = _FUNC_HEADS[b.name][0]
                return self._call(head + _sup(str(v.numerator)), b.arg)
        base = self._postfix_base(b)
        if isinstance(b, Func) and b.name == "log" and isinstance(b.arg, Det):
            base = paren(self._print(b))
        if isinstance(b, Func) and b.name in ("dsigmoid", "sech2"):
            base = paren(self._print(b))
        return base + _sup(self._exponent(x))

    # ------------------------------------------------------------------ functions
    def _print_Trace(self, e: Trace) -> str:
        size = _size_text(e)
        if size is not None:
            return size
        return self._call(r"\operatorname{tr}", e.arg)

    def _print_Det(self, e: Det) -> str:
        return self._call(r"\det", e.arg)

    def _print_Func(self, e: Func) -> str:
        if e.name == "sqrt":
            return r"\sqrt{" + self._print(e.arg) + "}"
        if e.name == "abs":
            if getattr(self, "_sided_bars", False):
                return r"\lvert " + self._print(e.arg) + r" \rvert"
            inner = self._print(e.arg)
            if "|" in inner.replace(r"\|", ""):
                # bars inside bars (|\|x\| |t||) cannot be read back: every pair inside says
                # which side it is on
                self._sided_bars = True
                try:
                    return r"\lvert " + self._print(e.arg) + r" \rvert"
                finally:
                    self._sided_bars = False
            return "|" + inner + "|"
        if e.name == "log" and isinstance(e.arg, Det):
            return r"\log" + self._print(e.arg)
        if e.name not in _FUNC_HEADS:
            raise ValueError(f"LatexPrinter: unknown elementwise function {e.name!r}")
        head = _FUNC_HEADS[e.name][0]
        if e.name in ("sigmoid", "dsigmoid") and self._sigma_is_a_symbol():
            head = r"\operatorname{sigmoid}" + ("'" if e.name == "dsigmoid" else "")
        return self._call(head, e.arg)

    def _call(self, head: str, arg: Expr) -> str:
        r"""A function applied to ``arg``: ``\det(X)``, ``\log\left(\frac{a}{b}\right)`` (the
        bracket sized around a fraction)."""
        return head + paren(self._print(arg))

    def _print_Softmax(self, e: Softmax) -> str:
        return self._call(r"\operatorname{softmax}", e.arg)

    def _print_Diag(self, e: Diag) -> str:
        return self._call(r"\operatorname{diag}", e.arg)

    def _print_DiagPart(self, e: DiagPart) -> str:
        return self._call(r"\operatorname{diag}", e.arg)

    def _print_Vec(self, e: Vec) -> str:
        return self._call(r"\operatorname{vec}", e.arg)

    def _print_Sum(self, e: Sum) -> str:
        return self._call(r"\operatorname{sum}", e.arg)

    def _print_Norm(self, e: Norm) -> str:
        k = str(e.kind)
        sub = "_" + k if len(k) == 1 else "_{" + k + "}"
        if getattr(self, "_sided_bars", False):
            return r"\lVert " + self._print(e.arg) + r" \rVert" + sub
        inner = self._print(e.arg)
        if "|" in inner:
            # a norm or bars inside a norm (\|A \|x\| b\|) cannot be read back: every pair
            # inside says which side it is on
            self._sided_bars = True
            try:
                return r"\lVert " + self._print(e.arg) + r" \rVert" + sub
            finally:
                self._sided_bars = False
        return r"\|" + inner + r"\|" + sub


def latex(expr: Expr) -> str:
    """The textbook LaTeX of ``expr`` (no math delimiters)."""
    return LatexPrinter().doprint(expr)


#: KaTeX stops a formula after this many macro expansions (its ``maxExpand`` default), and
#: Markdown editors seldom change it.
KATEX_MAX_EXPAND = 1000

#: What each macro of ours costs KaTeX in expansions (measured with katex 0.16 by searching
#: the least ``maxExpand`` that renders it); everything else we print is a KaTeX function.
_KATEX_COST = re.compile(r"\\operatorname\b|\\[,;:!]|\\quad\b")


def katex_expansions(tex: str) -> int:
    """How many macro expansions KaTeX needs for ``tex``: 3 per ``\\operatorname`` and per
    spacing command (``\\,``, ``\\;``, ``\\:``, ``\\!``), 1 per ``\\quad``."""
    costly = _KATEX_COST.findall(tex)  # (the matches' texts in one call: no generator)
    return 3 * len(costly) - 2 * costly.count(r"\quad")


# ---------------------------------------------------------------------------------------------
# The left-hand side of ``derivative = result``
# ---------------------------------------------------------------------------------------------
_UPPER = re.compile(r"^(?:\\(?:mathbf|boldsymbol|bm|mathrm|mathit)\{)?\s*(?:[A-Z]|\\[A-Z][a-z]+)")


def _guess_var_kind(var_latex: str) -> str:
    return "matrix" if _UPPER.match(var_latex.strip()) else "vector"


def _wrap_name(f: str) -> str:
    """A function name as an operand of ``^\\top`` / ``\\operatorname{vec}``."""
    if not re.search(r"[\s+\-=,^]", f):
        return f
    return r"\left(" + f + r"\right)"


def latex_derivative_symbol(f_latex: str | None, var_latex, kind: str, layout: str = "mixed",
                            second: bool = False, *, expr_latex: str | None = None,
                            var_kind: str | None = None) -> str:
    r"""The derivative symbol (left-hand side of the equation) for SPEC 1.4's kinds.

    ``f_latex`` is the function's name (option ``name=``), e.g. ``f``.  When it is None the
    unnamed form is produced: the operator applied to ``expr_latex``
    (``\frac{\partial}{\partial x}\left(EXPR\right)``), or the bare operator when
    ``expr_latex`` is None too.  ``var_latex`` is the variable's LaTeX, or a pair of them for
    a mixed second derivative.  ``var_kind`` ("scalar"/"vector"/"matrix") is only needed for
    second derivatives; if omitted it is guessed from the kind and the variable's first letter
    (uppercase: matrix).  With a name ``f`` and variable ``x`` (``X`` for a matrix, ``t`` for
    a scalar):

    =================  ========================================  ====================================
    kind               mixed / numerator                         denominator
    =================  ========================================  ====================================
    derivative         ``\frac{\partial f}{\partial t}``          same
    gradient           mixed: ``\frac{\partial f}{\partial x}``;  ``\frac{\partial f}{\partial x}``
                       numerator: ``\frac{\partial f}{\partial
                       x^\top}`` (1 x n row, n x m for X)
    jacobian           ``\frac{\partial f}{\partial x^\top}``     ``\frac{\partial f^\top}{\partial x}``
    vector-by-scalar   ``\frac{\partial f}{\partial t}``          ``\frac{\partial f^\top}{\partial t}``
    matrix-by-scalar   ``\frac{\partial F}{\partial t}``          ``\frac{\partial F^\top}{\partial t}``
    matrix-by-matrix   ``\frac{\partial \operatorname{vec} F}     ``\frac{\partial (\operatorname{vec}
                       {\partial (\operatorname{vec} X)^\top}``   F)^\top}{\partial \operatorname{vec} X}``
    hessian (vector)   ``\frac{\partial^2 f}{\partial x\,\partial x^\top}`` in every layout
    hessian (matrix)   ``\frac{\partial^2 f}{\partial \operatorname{vec} X\,\partial
                       (\operatorname{vec} X)^\top}`` in every layout
    second, scalar     ``\frac{\partial^2 f}{\partial t^2}``
    =================  ========================================  ====================================
    """
    if isinstance(var_latex, (tuple, list)):
        v1, v2 = var_latex[0], var_latex[-1]
    else:
        v1 = v2 = var_latex
    second = second or kind == "hessian"
    denom = layout == "denominator"
    numer = layout == "numerator"

    if second:
        vk = var_kind or ("scalar" if kind == "derivative" else _guess_var_kind(v1))
        if vk == "scalar":
            below = rf"\partial {v1}^2" if v1 == v2 else rf"\partial {v1}\,\partial {v2}"
        elif vk == "matrix":
            below = (rf"\partial \operatorname{{vec}} {v1}\,"
                     rf"\partial (\operatorname{{vec}} {v2})^\top")
        else:
            below = rf"\partial {v1}\,\partial {v2}^\top"
        if f_latex is not None:
            return rf"\frac{{\partial^2 {f_latex}}}{{{below}}}"
        op = rf"\frac{{\partial^2}}{{{below}}}"
        return op + (r"\left(" + expr_latex + r"\right)" if expr_latex is not None else "")

    # first derivatives: (what is written below, how f is decorated above)
    if kind == "gradient":
        below, deco = (rf"\partial {v1}^\top" if numer else rf"\partial {v1}"), "plain"
    elif kind == "jacobian":
        below, deco = (rf"\partial {v1}", "T") if denom else (rf"\partial {v1}^\top", "plain")
    elif kind in ("vector-by-scalar", "matrix-by-scalar"):
        below, deco = rf"\partial {v1}", ("T" if denom else "plain")
    elif kind == "matrix-by-matrix":
        if denom:
            below, deco = rf"\partial \operatorname{{vec}} {v1}", "vecT"
        else:
            below, deco = rf"\partial (\operatorname{{vec}} {v1})^\top", "vec"
    elif kind == "derivative":
        below, deco = rf"\partial {v1}", "plain"
    else:
        raise ValueError(f"latex_derivative_symbol: unknown kind {kind!r}")

    # (only the decoration asked for is made: a table of all four ran _wrap_name's pattern
    # three times a call)
    if f_latex is not None:
        f = f_latex
        if deco == "plain":
            top = f
        elif deco == "T":
            top = _wrap_name(f) + r"^\top"
        elif deco == "vec":
            top = r"\operatorname{vec} " + _wrap_name(f)
        else:  # vecT
            top = r"(\operatorname{vec} " + _wrap_name(f) + r")^\top"
        return rf"\frac{{\partial {top}}}{{{below}}}"
    op = rf"\frac{{\partial}}{{{below}}}"
    if expr_latex is None:
        return op
    arg = r"\left(" + expr_latex + r"\right)"
    if deco == "plain":
        return op + arg
    if deco == "T":
        return op + arg + r"^\top"
    if deco == "vec":
        return op + r"\operatorname{vec}" + arg
    return op + r"\operatorname{vec}" + arg + r"^\top"  # vecT
