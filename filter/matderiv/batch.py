"""Evaluation of one tree at several points at once (a leading batch axis).

Owns :func:`evaluate_batch`, used by verification for its finite-difference stencils: the
expression is walked once for all the points ``X + t_k V`` instead of once per point, which
is most of the cost of checking a derivative.  It is an independent implementation of the
semantics of :mod:`matderiv.numeric` (the closed form is still evaluated there), and the
property tests compare the two on random trees.

Conventions: every value is an ``ndarray`` whose last two axes are the matrix (a scalar is
``(..., 1, 1)``) and whose leading axis, when present, is the batch.  Values that do not
depend on the batched variable stay unbatched and broadcast.  Static shapes decide between
scalar multiplication and matrix products, as in :mod:`matderiv.numeric`.  Anything that
cannot be done for the whole batch at once (a singular matrix in one point, a matrix power
whose exponent varies) raises :class:`~matderiv.numeric.NumericDomainError` or
:class:`BatchUnsupported`, and the caller evaluates point by point instead.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .errors import MatDerivError
from .expr import (
    ONE, SCALAR, Add, Commutation, Const, Det, Diag, DiagPart, Differential, Dim, Expr, Func,
    Hadamard, HadamardDiv, Identity, Inverse, Kron, Mul, Norm, Ones, Power, Softmax, Sum,
    Symbol, Trace, Transpose, Vec, Zero,
)
from .numeric import (
    _FUNCS, DIFF_PREFIX, SINGULAR_CONDITION, MemoWalk, NumericDomainError, _eye,
    commutation_matrix, const_float, dim_size, install_dispatch,
)

__all__ = ["evaluate_batch", "BatchUnsupported"]


class BatchUnsupported(MatDerivError):
    """This tree cannot be evaluated for the whole batch at once; evaluate point by point."""


try:
    # the generalized ufuncs behind np.linalg.inv and np.linalg.det: the wrappers' checks (and
    # inv's errstate) cost more than the LAPACK calls on a check's small float stacks, which
    # are square by their static shapes; callers hold np.errstate(all="ignore")
    from numpy.linalg._umath_linalg import det as _determinant, inv as _inverse
except ImportError:  # pragma: no cover - a NumPy that moved them: through the wrappers
    _determinant = _inverse = None

_ONE_BY_ONE = np.ones((1, 1))
_FLOAT64 = np.dtype(np.float64)
#: The most entries a Kronecker product may have over a whole batch (400 MB of floats; the
#: derivative of X \otimes A \otimes B needs 25 million): the factors of the derivative of
#: X \otimes X \otimes X \otimes X took 430 million, 3.5 GB at the check's sizes, and six factors
#: failed to allocate 65 TiB (a MemoryError here is the check's "too large to check").
MAX_KRON_ENTRIES = 50_000_000


#: The ufuncs' own reductions, called directly (as np.logical_and.reduce and
#: np.logical_or.reduce are for all and any): the ndarray methods sum, max, all and any pass
#: through Python code in numpy._core._methods that costs more than the work on these small
#: arrays, as the np.trace and np.diagonal wrappers do around the methods used below.
_sum, _max = np.add.reduce, np.maximum.reduce


def _scalar(v: float) -> np.ndarray:
    return np.array([[v]], dtype=np.float64)  # (np.full's wrapper costs twice as much)


class BatchEvaluator(MemoWalk):
    """One method ``_eval_<NodeType>`` per node type, memoised on node identity (the walk is
    :class:`~matderiv.numeric.MemoWalk`, shared with the point evaluator; the rules are not)."""

    __slots__ = ("env", "sizes", "memo")

    def __init__(self, env: Mapping[str, object], sizes: Mapping[str, int]):
        self.env = env
        self.sizes = sizes
        self.memo: dict[int, np.ndarray] = {}

    @classmethod
    def _no_rule(cls, t: type) -> MatDerivError:
        return BatchUnsupported(f"no batched evaluation of a {t.__name__} node")

    def size(self, d: Dim) -> int:
        return dim_size(d, self.sizes)

    # --- leaves ----------------------------------------------------------------------------
    def _value(self, key: str) -> np.ndarray:
        try:
            v = self.env[key]
        except KeyError:
            raise MatDerivError(f"no value given for {key}") from None
        if type(v) is float:
            return _scalar(v)
        if type(v) is not np.ndarray or v.dtype != _FLOAT64:  # (verification's draws are)
            v = np.asarray(v, dtype=np.float64)
        if v.ndim == 1:  # a batch of scalars
            return v.reshape(-1, 1, 1)
        return v

    def _eval_Symbol(self, e: Symbol):
        return self._value(e.name)

    def _eval_Differential(self, e: Differential):
        return self._value(DIFF_PREFIX + e.of.name)

    def _eval_Const(self, e: Const):
        return _scalar(const_float(e.value))

    def _eval_Identity(self, e: Identity):
        # (the point evaluator's read-only identity, made once per size: no rule writes into
        # a value, each makes a new array)
        return _ONE_BY_ONE if e.n == ONE else _eye(self.size(e.n))

    def _eval_Zero(self, e: Zero):
        return np.zeros((self.size(e.rows), self.size(e.cols)))

    def _eval_Ones(self, e: Ones):
        return _ONE_BY_ONE if e.n == ONE else np.ones((self.size(e.n), 1))

    def _eval_Commutation(self, e: Commutation):
        if e.m == ONE and e.n == ONE:
            return _ONE_BY_ONE
        return commutation_matrix(self.size(e.m), self.size(e.n))

    # --- n-ary -----------------------------------------------------------------------------
    def _eval_Add(self, e: Add):
        ev = self.ev
        acc = ev(e.args[0])
        for a in e.args[1:]:
            acc = acc + ev(a)
        return acc

    def _eval_Mul(self, e: Mul):
        ev = self.ev
        coef = None
        mat = None
        for a in e.args:
            v = ev(a)
            if a.shape == SCALAR:
                coef = v if coef is None else coef * v
            elif mat is None:
                mat = v
            else:
                mat = mat @ v
        if mat is None:
            return coef
        return mat if coef is None else coef * mat

    def _eval_Hadamard(self, e: Hadamard):
        ev = self.ev
        acc = ev(e.args[0])
        for a in e.args[1:]:
            acc = acc * ev(a)
        return acc

    def _eval_Kron(self, e: Kron):
        ev = self.ev
        acc = None
        for a in e.args:
            v = ev(a)
            if acc is None:
                acc = v
                continue
            p, q = acc.shape[-2:]
            r, s = v.shape[-2:]
            if p * q * r * s * max(acc[..., 0, 0].size, v[..., 0, 0].size) > MAX_KRON_ENTRIES:
                raise MemoryError("a Kronecker product too large to evaluate")
            prod = acc[..., :, None, :, None] * v[..., None, :, None, :]
            acc = prod.reshape(prod.shape[:-4] + (p * r, q * s))
        return acc

    # --- unary / binary --------------------------------------------------------------------
    def _eval_Transpose(self, e: Transpose):
        return self.ev(e.arg).swapaxes(-1, -2)

    def _eval_Inverse(self, e: Inverse):
        v = self.ev(e.arg)
        if v.shape[-2:] == (1, 1):
            if np.logical_or.reduce(v == 0.0, axis=None):
                raise NumericDomainError("division by zero (inverse of 0)")
            return 1.0 / v
        if _inverse is None:
            try:
                inv = np.linalg.inv(v)
            except np.linalg.LinAlgError:
                raise NumericDomainError(
                    "the matrix to invert is singular at these values") from None
        else:
            # a singular matrix gives NaN here, where np.linalg.inv raises: the condition test
            # below refuses it with the same words
            inv = _inverse(v, signature="d->d")
        cond = _max(_sum(np.abs(v), axis=-1), axis=-1) * _max(_sum(np.abs(inv), axis=-1), axis=-1)
        if not np.logical_and.reduce(cond < SINGULAR_CONDITION, axis=None):
            raise NumericDomainError("the matrix to invert is singular at these values")
        return inv

    def _eval_Trace(self, e: Trace):
        v = self.ev(e.arg)
        return v.trace(axis1=-2, axis2=-1)[..., None, None]

    def _eval_Det(self, e: Det):
        v = self.ev(e.arg)
        if v.shape[-2:] == (1, 1):
            return v
        if _determinant is None:
            return np.linalg.det(v)[..., None, None]
        return _determinant(v, signature="d->d")[..., None, None]

    def _eval_Sum(self, e: Sum):
        return _sum(self.ev(e.arg), axis=(-2, -1), keepdims=True)

    def _eval_Softmax(self, e: Softmax):
        v = self.ev(e.arg)
        if v.shape[-2:] == (1, 1):
            return np.where(np.isfinite(v), 1.0, math.nan)
        z = np.exp(v - _max(v, axis=-2, keepdims=True))
        return z / _sum(z, axis=-2, keepdims=True)

    def _eval_Diag(self, e: Diag):
        v = self.ev(e.arg)
        n = v.shape[-2]
        if v.shape[-1] != 1:  # a row vector
            v = v.swapaxes(-1, -2)
            n = v.shape[-2]
        return v * np.eye(n)

    def _eval_DiagPart(self, e: DiagPart):
        return self.ev(e.arg).diagonal(axis1=-2, axis2=-1)[..., None]

    def _eval_Vec(self, e: Vec):
        v = self.ev(e.arg)
        t = v.swapaxes(-1, -2)
        return t.reshape(t.shape[:-2] + (-1, 1))

    def _eval_Norm(self, e: Norm):
        v = self.ev(e.arg)
        if e.kind == "1":
            return _sum(np.abs(v), axis=(-2, -1), keepdims=True)
        if e.kind == "2" and v.shape[-1] != 1 and v.shape[-2] != 1:
            return np.linalg.norm(v, 2, axis=(-2, -1))[..., None, None]  # spectral norm
        return np.sqrt(_sum(v * v, axis=(-2, -1), keepdims=True))

    def _eval_Func(self, e: Func):
        try:
            fn = _FUNCS[e.name]
        except KeyError:
            raise MatDerivError(f"unknown elementwise function {e.name!r}") from None
        return np.asarray(fn(self.ev(e.arg)), dtype=np.float64)

    def _eval_Power(self, e: Power):
        b = self.ev(e.base)
        p = self.ev(e.exponent)
        if e.base.shape == SCALAR:
            return b ** p
        # (not np.unique: its first call imports numpy.ma, some 8 ms)
        ps = np.ravel(p)
        if ps.size == 0 or np.logical_or.reduce(ps != ps[0], axis=None):
            raise BatchUnsupported("a matrix power whose exponent varies across the batch")
        k = float(ps[0])
        if not math.isfinite(k) or k != int(k):
            raise MatDerivError(f"matrix power with exponent {k:g}, which is not a whole number",
                                hint="a matrix power needs a whole-number exponent")
        try:
            return np.linalg.matrix_power(b, int(k))
        except np.linalg.LinAlgError:
            raise NumericDomainError("negative power of a singular matrix at these values") from None

    def _eval_HadamardDiv(self, e: HadamardDiv):
        return self.ev(e.num) / self.ev(e.den)


install_dispatch(BatchEvaluator)


def evaluate_batch(expr: Expr, env: Mapping[str, object], sizes: Mapping[str, int],
                   batch: int) -> np.ndarray:
    """``expr`` at ``batch`` points: a ``(batch, rows, cols)`` array.  ``env`` holds the usual
    values (floats, 2-D arrays), except that batched symbols hold a ``(batch,)`` array
    (scalars) or a ``(batch, rows, cols)`` array.  Callers hold ``np.errstate``."""
    v = BatchEvaluator(env, sizes).ev(expr)
    if v.ndim == 3 and len(v) == batch:
        return v  # (already one value per point, the usual case: no broadcast_to wrapper)
    r, c = v.shape[-2:]
    out = np.empty((batch, r, c))  # (the same values as np.broadcast_to, without its wrapper)
    out[...] = v
    return out
