"""Numeric evaluation of expression trees with NumPy.

Owns the tree-walking evaluator used by verification and :meth:`Derivation.evaluate`, and the
normalisation of user-supplied values.  No ``exec``/``eval``: every node type has one method.

Conventions
-----------
* ``env`` maps :attr:`Symbol.name` to a value: scalars are Python floats, vectors and matrices
  2-D float arrays (vectors are ``n x 1`` columns).  ``Differential(X)`` reads ``env["d:X"]``.
  :func:`normalize_value` / :func:`normalize_env` turn user input into this form.
* ``sizes`` maps size names (``"n"``, ``"m"``) to ints; a :data:`~matderiv.expr.Dim` is the
  product of its names.  :func:`sizes_from_env` infers them from the values.
* Every node whose static shape is ``SCALAR`` evaluates to a Python float, every other node to a
  2-D array of its static shape.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable, Mapping

import numpy as np

from .deadline import tick
from .errors import MatDerivError
from .expr import (
    ONE, SCALAR, UNKNOWN, Add, Commutation, Const, Det, Diag, DiagPart, Differential, Dim, Expr,
    Func, Hadamard, HadamardDiv, Identity, Inverse, Kron, Mul, Norm, Ones, Power, Softmax, Sum,
    Symbol, Trace, Transpose, Vec, Zero, fmt_dim, symbols,
)

__all__ = [
    "evaluate", "Evaluator", "NumericDomainError", "normalize_value", "normalize_env",
    "sizes_from_env", "dim_size", "commutation_matrix", "DIFF_PREFIX",
]

#: ``env`` key prefix of differentials: ``Differential(X)`` reads ``env["d:" + X.name]``.
DIFF_PREFIX = "d:"


class NumericDomainError(MatDerivError):
    """The values lie outside the domain of the expression (a singular matrix to invert, ...).
    Verification may catch it and draw another random instance."""


# --------------------------------------------------------------------------------------------
# Small cached constants (read-only arrays)
# --------------------------------------------------------------------------------------------
def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@lru_cache(maxsize=256)
def _eye(n: int) -> np.ndarray:
    return _frozen(np.eye(n))


@lru_cache(maxsize=256)
def _ones(n: int) -> np.ndarray:
    return _frozen(np.ones((n, 1)))


@lru_cache(maxsize=256)
def _zeros(r: int, c: int) -> np.ndarray:
    return _frozen(np.zeros((r, c)))


@lru_cache(maxsize=256)
def commutation_matrix(m: int, n: int) -> np.ndarray:
    """The mn x mn matrix K with ``K @ vec(A) == vec(A.T)`` for an m x n ``A`` (column-major
    vec).  Read-only; copy before modifying."""
    k = np.zeros((m * n, m * n))
    i = np.arange(m).repeat(n)          # i-major, j-minor pairs (i, j)
    j = np.tile(np.arange(n), m)
    k[j + i * n, i + j * m] = 1.0       # vec(A)[i + j m] = A[i, j] = vec(A^T)[j + i n]
    return _frozen(k)


# --------------------------------------------------------------------------------------------
# Elementwise functions (work on floats and arrays alike; callers convert floats back)
# --------------------------------------------------------------------------------------------
def _sigmoid(z):
    """1 / (1 + e^-z), accurate in both tails (e^-|z| never overflows, nothing cancels: the
    far tail matters to log sigma(z) and to finite differences)."""
    e = np.exp(-np.abs(z))
    out = np.where(np.asarray(z) >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return float(out) if np.ndim(out) == 0 else out


def _dsigmoid(z):
    """sigma(z) (1 - sigma(z)) = e^-|z| / (1 + e^-|z|)^2 (even in z; no cancellation)."""
    e = np.exp(-np.abs(z))
    return e / (1.0 + e) ** 2


def _sech2(z):
    return 1.0 / np.cosh(z) ** 2


_FUNCS = {
    "exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "sinh": np.sinh, "cosh": np.cosh, "tan": np.tan, "arctan": np.arctan,
    "sqrt": np.sqrt, "sigmoid": _sigmoid, "dsigmoid": _dsigmoid, "sech2": _sech2,
    "abs": np.abs, "sign": np.sign,
}


def _div(a: float, b: float) -> float:
    """Scalar division with IEEE results (inf/nan) instead of ZeroDivisionError."""
    try:
        return a / b
    except ZeroDivisionError:
        return float(np.float64(a) / np.float64(b))


def const_float(v) -> float:
    """The float of the rational ``v``; +-inf beyond the float range (10^{400}) and NaN for a
    number too small for it (10^{-400}, which would be 0 and make any check pass), which the
    check then reports as a value that is not finite, naming the number."""
    try:
        f = float(v.numerator) if v.denominator == 1 else v.numerator / v.denominator
    except OverflowError:
        return math.inf if v > 0 else -math.inf
    return math.nan if f == 0.0 and v != 0 else f


def _as_float(v) -> float:
    """A float from a float or a one-element array."""
    if type(v) is float:
        return v
    if isinstance(v, np.ndarray):
        return float(v.reshape(-1)[0])
    return float(v)


# --------------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------------
#: Matrices whose condition number (infinity norm) exceeds this count as singular.
SINGULAR_CONDITION = 1e12


class MemoWalk:
    """The walk both evaluators share (:class:`Evaluator`, and
    :class:`matderiv.batch.BatchEvaluator`, which implements the node rules independently):
    each node evaluated once per walk (memoised on identity) by the ``_eval_<NodeType>`` method
    that the class's table names (:func:`install_dispatch`; a subclass of a node type uses its
    nearest base's method)."""

    __slots__ = ()
    _table: dict = {}

    def ev(self, node: Expr):
        tick()
        key = id(node)
        memo = self.memo
        if key in memo:
            return memo[key]
        fn = self._table.get(type(node))
        if fn is None:
            fn = self._resolve(type(node))
        v = fn(self, node)
        memo[key] = v
        return v

    @classmethod
    def _resolve(cls, t: type):
        fn = dispatch_for_subclass(cls._table, t)
        if fn is None:
            raise cls._no_rule(t)
        return fn

    @classmethod
    def _no_rule(cls, t: type) -> MatDerivError:
        return MatDerivError(f"cannot evaluate a {t.__name__} node numerically")


class Evaluator(MemoWalk):
    """Evaluates trees for one ``env``/``sizes`` pair, memoising on node identity.

    One method ``_eval_<NodeType>`` per node type; dispatch goes through a per-class table
    built once (see :func:`install_dispatch`)."""

    __slots__ = ("env", "sizes", "memo", "_dims")

    def __init__(self, env: Mapping[str, object], sizes: Mapping[str, int]):
        self.env = env
        self.sizes = sizes
        self.memo: dict[int, object] = {}
        self._dims: dict[Dim, int] = {}

    def size(self, d: Dim) -> int:
        n = self._dims.get(d)
        if n is None:
            n = dim_size(d, self.sizes)
            self._dims[d] = n
        return n

    # --- leaves ----------------------------------------------------------------------------
    def _eval_Symbol(self, e: Symbol):
        try:
            v = self.env[e.name]
        except KeyError:
            raise MatDerivError(f"no value given for {e.name}",
                                hint=f"add a value for {e.name!r} to the mapping") from None
        return _fix_value(e, v)

    def _eval_Differential(self, e: Differential):
        key = DIFF_PREFIX + e.of.name
        try:
            v = self.env[key]
        except KeyError:
            raise MatDerivError(f"no value given for the differential d{e.of.name}",
                                hint=f"add a value for {key!r} to the mapping") from None
        return _fix_value(e.of, v)

    def _eval_Const(self, e: Const):
        return const_float(e.value)

    def _eval_Identity(self, e: Identity):
        if e.n == ONE:
            return 1.0
        return _eye(self.size(e.n))

    def _eval_Zero(self, e: Zero):
        if e.rows == ONE and e.cols == ONE:
            return 0.0
        return _zeros(self.size(e.rows), self.size(e.cols))

    def _eval_Ones(self, e: Ones):
        if e.n == ONE:
            return 1.0
        return _ones(self.size(e.n))

    def _eval_Commutation(self, e: Commutation):
        if e.m == ONE and e.n == ONE:
            return 1.0
        return commutation_matrix(self.size(e.m), self.size(e.n))

    # --- n-ary -----------------------------------------------------------------------------
    def _eval_Add(self, e: Add):
        ev = self.ev
        args = e.args
        acc = ev(args[0])
        for a in args[1:]:
            acc = acc + ev(a)
        return acc

    def _eval_Mul(self, e: Mul):
        ev = self.ev
        coef = 1.0
        mat = None
        for a in e.args:
            v = ev(a)
            if type(v) is float:
                coef *= v
            elif mat is None:
                mat = v
            else:
                mat = mat @ v
        if mat is None:
            return coef
        if mat.shape == (1, 1) and e.shape == SCALAR:
            return coef * float(mat[0, 0])
        return mat if coef == 1.0 else coef * mat

    def _eval_Hadamard(self, e: Hadamard):
        ev = self.ev
        args = e.args
        acc = ev(args[0])
        for a in args[1:]:
            acc = acc * ev(a)
        return acc

    def _eval_Kron(self, e: Kron):
        ev = self.ev
        acc = None
        for a in e.args:
            v = ev(a)
            if acc is None:
                acc = v
            elif type(v) is float or type(acc) is float:
                acc = acc * v
            else:
                acc = np.kron(acc, v)
        return acc

    # --- unary / binary --------------------------------------------------------------------
    def _eval_Transpose(self, e: Transpose):
        v = self.ev(e.arg)
        return v if type(v) is float else v.T

    def _eval_Inverse(self, e: Inverse):
        v = self.ev(e.arg)
        if type(v) is float:
            if v == 0.0:
                raise NumericDomainError("division by zero (inverse of 0)")
            return 1.0 / v
        try:
            inv = np.linalg.inv(v)
        except np.linalg.LinAlgError:
            inv = None
        # LAPACK inverts a rank-deficient floating-point matrix without complaint (C C^T for a
        # tall C): the infinity-norm condition estimate catches it
        if inv is None or not (np.abs(v).sum(axis=1).max() * np.abs(inv).sum(axis=1).max()
                               < SINGULAR_CONDITION):
            raise NumericDomainError("the matrix to invert is singular at these values",
                                     hint="choose values where the matrix is invertible")
        return inv

    def _eval_Trace(self, e: Trace):
        v = self.ev(e.arg)
        return v if type(v) is float else float(v.trace())  # (np.trace wraps the method)

    def _eval_Det(self, e: Det):
        v = self.ev(e.arg)
        return v if type(v) is float else float(np.linalg.det(v))

    def _eval_Sum(self, e: Sum):
        v = self.ev(e.arg)
        return v if type(v) is float else float(v.sum())

    def _eval_Softmax(self, e: Softmax):
        v = self.ev(e.arg)
        if type(v) is float:
            return 1.0 if math.isfinite(v) else math.nan
        z = np.exp(v - v.max(axis=0, keepdims=True))
        return z / z.sum(axis=0, keepdims=True)

    def _eval_Diag(self, e: Diag):
        v = self.ev(e.arg)
        return v if type(v) is float else np.diagflat(v)

    def _eval_DiagPart(self, e: DiagPart):
        v = self.ev(e.arg)
        if type(v) is float:
            return v
        return v.diagonal().reshape(-1, 1).copy()  # (np.diagonal wraps the method)

    def _eval_Vec(self, e: Vec):
        v = self.ev(e.arg)
        if type(v) is float:
            return v
        return v.reshape(-1, 1, order="F")

    def _eval_Norm(self, e: Norm):
        v = self.ev(e.arg)
        if type(v) is float:
            return abs(v)
        if e.kind == "1":
            return float(np.abs(v).sum())
        if e.kind == "2" and v.shape[1] != 1 and v.shape[0] != 1:
            return float(np.linalg.norm(v, 2))       # spectral norm of a matrix
        return float(math.sqrt(float(np.vdot(v, v))))

    def _eval_Func(self, e: Func):
        try:
            fn = _FUNCS[e.name]
        except KeyError:
            raise MatDerivError(f"unknown elementwise function {e.name!r}") from None
        v = self.ev(e.arg)
        if type(v) is float:
            return float(fn(np.float64(v)))
        return fn(v)

    def _eval_Power(self, e: Power):
        b = self.ev(e.base)
        p = self.ev(e.exponent)
        p = _as_float(p)
        if type(b) is float:
            return float(np.float64(b) ** p)
        if not math.isfinite(p) or p != int(p):
            raise MatDerivError(f"matrix power with exponent {p:g}, which is not a whole number",
                                hint="a matrix power needs a whole-number exponent")
        try:
            return np.linalg.matrix_power(b, int(p))
        except np.linalg.LinAlgError:
            raise NumericDomainError("negative power of a singular matrix at these values") from None

    def _eval_HadamardDiv(self, e: HadamardDiv):
        a = self.ev(e.num)
        b = self.ev(e.den)
        if type(a) is float and type(b) is float:
            return _div(a, b)
        return a / b


def install_dispatch(cls) -> None:
    """Give an evaluator class its table: node type -> its ``_eval_<NodeType>`` method."""
    cls._table = {t: getattr(cls, "_eval_" + t.__name__) for t in (
        Symbol, Differential, Const, Identity, Zero, Ones, Commutation, Add, Mul, Hadamard, Kron,
        Transpose, Inverse, Trace, Det, Sum, Softmax, Diag, DiagPart, Vec, Norm, Func, Power,
        HadamardDiv)}


install_dispatch(Evaluator)


def dispatch_for_subclass(table: dict, t: type):
    """The entry of ``table`` for the nearest base class of ``t`` (cached in ``table``), or
    ``None``: dispatch for a subclass of a known node type."""
    for base in t.__mro__[1:]:
        fn = table.get(base)
        if fn is not None:
            table[t] = fn
            return fn
    return None


def evaluate(expr: Expr, env: Mapping[str, object], sizes: Mapping[str, int] | None = None):
    """Evaluate ``expr``: a float when its static shape is 1 x 1, otherwise a 2-D array.

    ``env`` holds normalised values (see :func:`normalize_env`); ``sizes`` the size of every
    dimension name (inferred with :func:`sizes_from_env` when ``None``).  Invalid domains give
    ``nan``/``inf``; a singular matrix to invert raises :class:`NumericDomainError`."""
    if sizes is None:
        sizes = sizes_from_env(symbols(expr), env)
    with np.errstate(all="ignore"):
        v = Evaluator(env, sizes).ev(expr)
    if type(v) is not float:
        if isinstance(v, np.ndarray):
            if not v.flags.writeable:
                v = v.copy()
        else:
            v = float(v)
    return v


# --------------------------------------------------------------------------------------------
# Sizes and values
# --------------------------------------------------------------------------------------------
def dim_size(d: Dim, sizes: Mapping[str, int]) -> int:
    """The integer size of a dimension (product of its names)."""
    n = 1
    for name in d:
        if name == UNKNOWN[0]:
            raise MatDerivError("a size could not be inferred (an I, 1 or 0 of unknown size)",
                                hint="use the constant next to something of known size")
        try:
            n *= sizes[name]
        except KeyError:
            raise MatDerivError(f"the size {name} is not known",
                                hint=f"give a value to a symbol that has size {name}") from None
    return n


def _fix_value(sym: Symbol, v):
    """Cheap fast path for already-normalised values, fallback to :func:`normalize_value`."""
    if sym.rows == ONE and sym.cols == ONE:
        return v if type(v) is float else normalize_value(sym, v)
    if isinstance(v, np.ndarray) and v.ndim == 2 and v.dtype == np.float64:
        return v
    return normalize_value(sym, v)


def _describe(sym: Symbol) -> str:
    r, c = sym.rows, sym.cols
    if r == ONE and c == ONE:
        return "a scalar"
    if c == ONE:
        return f"a vector of length {fmt_dim(r)}"
    return f"a {fmt_dim(r)}\u00d7{fmt_dim(c)} matrix"


def _shape_str(a: np.ndarray) -> str:
    if a.ndim == 1:
        return f"a 1-D array of length {a.shape[0]}"
    if a.ndim == 0:
        return "a single number"
    return "an array of shape " + "\u00d7".join(map(str, a.shape))


def normalize_value(sym: Symbol, value, sizes: Mapping[str, int] | None = None):
    """User input for ``sym`` in internal form: a float for a scalar, a 2-D float array
    otherwise (a vector as an n x 1 column; a 1-D array is accepted for it).

    Raises :class:`MatDerivError` when the value does not fit the symbol's shape (and, when
    ``sizes`` is given, its known sizes), or a symmetric matrix is given a non-symmetric
    value."""
    name = sym.name
    try:
        a = np.asarray(value)
    except Exception:  # pragma: no cover - very exotic input
        raise MatDerivError(f"the value of {name} is not a number or array") from None
    if a.dtype == object or a.dtype.kind not in "biuf":
        if a.dtype.kind == "c":
            raise MatDerivError(f"the value of {name} is complex; only real values are supported")
        raise MatDerivError(f"the value of {name} is not a real number or array of numbers")
    a = a.astype(np.float64, copy=False)
    r, c = sym.rows, sym.cols
    if r == ONE and c == ONE:
        if a.size != 1:
            raise MatDerivError(f"{name} is a scalar but the value given is {_shape_str(a)}",
                                hint=f"give {name} as a single number")
        return float(a.reshape(-1)[0])
    if a.ndim == 1:
        if c == ONE:
            a = a.reshape(-1, 1)
        elif r == ONE:
            a = a.reshape(1, -1)
        else:
            raise MatDerivError(f"{name} is {_describe(sym)} but the value given is "
                                f"{_shape_str(a)}", hint=f"give {name} as a 2-D array")
    elif a.ndim != 2:
        raise MatDerivError(f"{name} is {_describe(sym)} but the value given is {_shape_str(a)}",
                            hint=f"give {name} as a 2-D array")
    rows, cols = a.shape
    if c == ONE and cols != 1:
        raise MatDerivError(f"{name} is {_describe(sym)} but the value given is "
                            f"{_shape_str(a)}",
                            hint=f"give {name} as a 1-D array or an n\u00d71 column")
    if r == ONE and rows != 1:
        raise MatDerivError(f"{name} is a row (1\u00d7{fmt_dim(c)}) but the value given is "
                            f"{_shape_str(a)}", hint=f"give {name} as a 1-D array or a 1\u00d7n row")
    if r == c and rows != cols:
        raise MatDerivError(f"{name} is a square matrix ({fmt_dim(r)}\u00d7{fmt_dim(c)}) but the "
                            f"value given is {rows}\u00d7{cols}",
                            hint=f"give {name} as a square array")
    if sizes is not None:
        for d, got, what in ((r, rows, "rows"), (c, cols, "columns")):
            if d and all(n in sizes for n in d):
                want = dim_size(d, sizes)
                if want != got:
                    raise MatDerivError(
                        f"{name} should have {want} {what} ({fmt_dim(d)} = {want}) but the value "
                        f"given has {got}", hint="give values of matching sizes")
    if getattr(sym, "symmetric", False) and not np.allclose(a, a.T, rtol=1e-8, atol=1e-10):
        raise MatDerivError(f"{name} is declared symmetric but the value given is not symmetric",
                            hint=f"give a symmetric {name} or drop the declaration")
    return a.copy()                     # never alias (or freeze) the caller's array


def normalize_env(syms: Iterable[Symbol], env: Mapping[str, object],
                  sizes: Mapping[str, int] | None = None) -> dict:
    """A new env with every given symbol's value (and any ``"d:<name>"`` differential value)
    normalised; keys of ``env`` that name no symbol are dropped.  Missing symbols raise
    :class:`MatDerivError`."""
    out: dict[str, object] = {}
    for s in syms:
        if s.name not in env:
            raise MatDerivError(f"no value given for {s.name}",
                                hint=f"add a value for {s.name!r} to the mapping")
        out[s.name] = normalize_value(s, env[s.name], sizes)
        dk = DIFF_PREFIX + s.name
        if dk in env:
            out[dk] = normalize_value(s, env[dk], sizes)
    return out


def _fmt_val(sym: Symbol, a) -> str:
    if isinstance(a, np.ndarray):
        if sym.cols == ONE:
            return f"{sym.name} has length {a.shape[0]}"
        return f"{sym.name} is {a.shape[0]}\u00d7{a.shape[1]}"
    return f"{sym.name} is a scalar"


def sizes_from_env(syms: Iterable[Symbol], env: Mapping[str, object]) -> dict[str, int]:
    """The size of every dimension name, read off the values of the given symbols.

    Symbols without a value in ``env`` are skipped.  Raises :class:`MatDerivError` when two
    values disagree on a size (naming both), e.g. "size n is 4 from A (A is 3×4) but 5 from
    x (x has length 5)"."""
    sizes: dict[str, int] = {}
    source: dict[str, tuple[Symbol, object]] = {}
    pending: list[tuple[Dim, int, Symbol, object]] = []
    for s in syms:
        if s.name not in env or (s.rows == ONE and s.cols == ONE):
            if s.name in env:
                normalize_value(s, env[s.name])
            continue
        a = normalize_value(s, env[s.name])
        for d, got in ((s.rows, a.shape[0]), (s.cols, a.shape[1])):
            if d == ONE:
                continue
            if len(d) == 1:
                name = d[0]
                if name in sizes:
                    if sizes[name] != got:
                        other, ov = source[name]
                        raise MatDerivError(
                            f"size {name} is {sizes[name]} from {other.name} "
                            f"({_fmt_val(other, ov)}) but {got} from {s.name} "
                            f"({_fmt_val(s, a)})",
                            hint="give values whose sizes match")
                else:
                    sizes[name] = got
                    source[name] = (s, a)
            else:
                pending.append((d, got, s, a))
    # products of several names (rare for symbols): solve for one unknown at a time
    progress = True
    while pending and progress:
        progress = False
        for item in list(pending):
            d, got, s, a = item
            unknown = [n for n in d if n not in sizes]
            known = 1
            for n in d:
                if n in sizes:
                    known *= sizes[n]
            if not unknown:
                if known != got:
                    raise MatDerivError(
                        f"size {fmt_dim(d)} should be {known} but {s.name} gives {got} "
                        f"({_fmt_val(s, a)})", hint="give values whose sizes match")
                pending.remove(item)
                progress = True
            elif len(set(unknown)) == 1 and len(unknown) == 1:
                if got % known:
                    raise MatDerivError(
                        f"{s.name} gives {got} for size {fmt_dim(d)}, not a multiple of {known}",
                        hint="give values whose sizes match")
                sizes[unknown[0]] = got // known
                source[unknown[0]] = (s, a)
                pending.remove(item)
                progress = True
    return sizes

