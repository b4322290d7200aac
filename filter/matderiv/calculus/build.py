"""Smart constructors: build nodes with the trivial cases folded away.

Owns the small algebra that every calculus stage needs while it builds trees (a product with a
zero is zero, a sum of one term is that term, coefficients multiply).  The full textbook
simplification lives in :mod:`matderiv.calculus.simplify`.
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

from ..expr import (ONE, SCALAR, Add, Const, Diag, Expr, Hadamard, Identity, Mul, Transpose, Zero,
                    Ones, Shape, ShapeError, chain_shape)


def is_zero(e: Expr | None) -> bool:
    return e is None or isinstance(e, Zero) or (isinstance(e, Const) and e.value == 0)


def zero(shape: Shape) -> Expr:
    return c(0) if shape == SCALAR else Zero(*shape)


def ones(shape: Shape) -> Expr:
    """The all-ones value of a shape: 1, a column 1, a row 1^T, or the matrix 1 1^T."""
    r, col = shape
    if r == ONE and col == ONE:
        return c(1)
    if r == ONE:
        return Transpose(Ones(col))
    return Ones(r) if col == ONE else Mul((Ones(r), Transpose(Ones(col))))


@lru_cache(maxsize=4096)
def c(v) -> Const:
    """The constant ``v`` (shared: nodes are immutable, and rules build 1, -1, 2 ... often)."""
    return Const(Fraction(v))


def mul(*factors: Expr) -> Expr:
    """Matrix product of the factors, flattening nested products and folding constants."""
    flat: list[Expr] = []
    coef = None  # (a Fraction once a constant is met: Fraction arithmetic is slow)
    all_scalar = True
    for f in factors:  # (None factors are skipped where met, with no filtered copy)
        if f is not None and f.shape != SCALAR:
            all_scalar = False
            break
    has_zero = False
    for f in factors:
        if f is None:
            continue
        t = type(f)  # (the node types have no subclasses: type tests, not isinstance)
        # a 1x1 product inside a matrix product is a scalar group: splicing it into the
        # chain would break the chain's sizes
        if t is not Mul or not (all_scalar or f.shape != SCALAR):
            if t is Const:
                coef = f.value if coef is None else coef * f.value
            else:  # (a single factor, the usual case: no one-element tuple to loop over)
                flat.append(f)
                if t is Zero:
                    has_zero = True
            continue
        for p in f.args:
            t = type(p)
            if t is Const:
                coef = p.value if coef is None else coef * p.value
            else:
                flat.append(p)
                if t is Zero:
                    has_zero = True
    shape = chain_shape(flat)  # (raises ShapeError on a broken chain)
    if coef is not None and coef == 0 or has_zero:
        return zero(shape)
    if coef is not None and coef != 1:
        flat.insert(0, Const(coef))
    elif not flat:
        return c(1)
    if len(flat) == 1:
        return flat[0]
    m = Mul(tuple(flat))
    object.__setattr__(m, "shape", shape)  # (what Mul._shape_ would compute again)
    return m


def neg(e: Expr) -> Expr:
    return mul(c(-1), e)


def add(*terms: Expr) -> Expr:
    """Sum of the terms, dropping zeros and flattening nested sums.  ``None`` terms are zeros."""
    flat: list[Expr] = []
    shape: Shape | None = None
    for t in terms:
        if t is None:
            continue
        shape = t.shape if shape is None else shape
        if is_zero(t):
            continue
        flat.extend(t.args if isinstance(t, Add) else (t,))
    if not flat:
        if shape is None:
            raise ShapeError("empty sum")
        return zero(shape)
    if len(flat) == 1:
        return flat[0]
    return Add(tuple(flat))


def hadamard(*factors: Expr) -> Expr:
    flat: list[Expr] = []
    for f in factors:
        flat.extend(f.args if isinstance(f, Hadamard) else (f,))
    if any(is_zero(f) for f in flat):
        return zero(flat[0].shape)
    if flat[0].is_scalar:
        return mul(*flat)
    flat = [f for f in flat if not isinstance(f, Ones)] or flat[:1]
    if len(flat) == 1:
        return flat[0]
    return Hadamard(tuple(flat))


def transpose(e: Expr) -> Expr:
    if e.shape == SCALAR:
        return e
    if isinstance(e, Transpose):
        return e.arg
    if isinstance(e, Identity) or isinstance(e, Diag) and e.arg.shape[1] == ONE:
        return e  # (a diagonal matrix built from a vector is its own transpose)
    if isinstance(e, Zero):
        return Zero(e.cols, e.rows)
    return Transpose(e)


def identity(n) -> Expr:
    return c(1) if n == ONE else Identity(n)
