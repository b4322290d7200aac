"""From a typed expression and a variable to the derivative tree, in the layout asked for.

Owns the kinds of SPEC 1.4 (gradient, jacobian, hessian, ...), the choice of identification
rule for each, and the arrangement of the result in mixed, numerator or denominator layout.
Composes :mod:`matderiv.calculus`; knows nothing of text.
"""
from __future__ import annotations

from dataclasses import dataclass

from .calculus.build import add, c, mul, transpose, zero
from .calculus.differential import Differentiator, with_logistic
from .calculus.identify import by_scalar, gradient, jacobian, linear_terms
from .calculus.simplify import prettify, simplify
from .errors import MatDerivError, UnsupportedError
from .expr import ONE, SCALAR, Expr, Symbol, dim_mul

LAYOUTS = ("mixed", "numerator", "denominator")


@dataclass(frozen=True)
class Result:
    """``natural``: the derivative in its natural orientation (gradient shaped like X, J in
    numerator layout, F' for a scalar variable); ``arranged``: in the layout asked for;
    ``arrangement``: how ``arranged`` relates to the numerator Jacobian (see verify.Check);
    ``differential``: dF as computed; ``rules``: the differentiation rules that fired."""

    kind: str
    natural: Expr
    arranged: Expr
    arrangement: str
    differential: Expr | None
    rules: tuple
    #: for a symmetric variable, the unconstrained derivative (before X^T was written X): what
    #: a second derivative differentiates and what its check compares against
    raw: Expr | None = None


def _kind(f: Expr, var: Symbol) -> str:
    fs, vs = f.shape, var.shape
    if fs == SCALAR:
        return "derivative" if vs == SCALAR else "gradient"
    if vs == SCALAR:
        return "vector-by-scalar" if fs[1] == ONE else "matrix-by-scalar"
    if fs[1] == ONE and vs[1] == ONE:
        return "jacobian"
    return "matrix-by-matrix"


def first_derivative(f: Expr, var: Symbol, layout: str = "mixed", pretty: bool = True) -> Result:
    """The first derivative of ``f`` by ``var``.  With ``pretty`` off its ``arranged`` is left
    as arranged, not prettified: for the first derivative under a second one, of which only
    ``natural`` is read (prettifying it was a pass over the tree for nothing)."""
    f = with_logistic(f)  # 1/(1 + e^{-u}) differentiates as sigma(u): sigma'(u), not a quotient
    kind = _kind(f, var)
    d = Differentiator(var)
    df = d(f)
    natural = _identify(f, var, df, kind)
    natural = simplify(natural)
    arranged, arrangement = arrange(natural, kind, layout)
    return Result(kind, natural, prettify(arranged) if pretty else arranged, arrangement, df,
                  tuple(d.rules))


def _substitute(e: Expr, old: Symbol, new: Symbol) -> Expr:
    return e.map(lambda n: new if n == old else n)


def unconstrained(f: Expr, var: Symbol) -> tuple[Expr, Symbol]:
    """``f`` and ``var`` with the variable no longer declared symmetric: what the derivatives of
    a symmetric variable are computed from (its transposes are not dropped)."""
    from dataclasses import replace

    var_u = replace(var, symmetric=False)
    return _substitute(f, var, var_u), var_u


def _resymmetrized(r: Result, var_u: Symbol, var: Symbol, pretty: bool = True) -> Result:
    """``r`` (computed for the unconstrained ``var_u``) at a symmetric point: ``var`` put back
    and the symmetric simplifications applied (with ``pretty`` off, ``arranged`` is
    ``natural``, as :func:`first_derivative` leaves it for a derivative whose ``natural`` alone
    is read)."""
    natural = simplify(_substitute(r.natural, var_u, var))
    arranged = prettify(simplify(_substitute(r.arranged, var_u, var))) if pretty else natural
    return Result(r.kind, natural, arranged, r.arrangement, r.differential, r.rules)


def _natural_shape(f: Expr, var: Symbol, kind: str):
    if kind in ("derivative", "vector-by-scalar", "matrix-by-scalar"):
        return f.shape
    if kind == "gradient":
        return var.shape
    return (dim_mul(*f.shape), dim_mul(*var.shape))


def _identify(f: Expr, var: Symbol, df: Expr | None, kind: str) -> Expr:
    shape = _natural_shape(f, var, kind)
    if df is None:
        return zero(shape)
    terms = linear_terms(df)
    if not terms:
        return zero(shape)
    if var.shape == SCALAR:
        return _add_collecting_equal([by_scalar(t, var) for t in terms])
    if f.shape == SCALAR:
        return _add_collecting_equal([gradient(t) for t in terms])
    return _add_collecting_equal([jacobian(t, var) for t in terms])


def _add_collecting_equal(parts: list) -> Expr:
    """The sum of the identified parts, equal parts counted first: the two halves of
    ``d((x - a)^T (x - a))`` give ``2 (x - a)``, not the flattened ``2x - 2a``."""
    counted: list = []
    for p in parts:
        for item in counted:
            if item[0] == p:
                item[1] += 1
                break
        else:
            counted.append([p, 1])
    return add(*[p if k == 1 else mul(c(k), p) for p, k in counted])


def arrange(natural: Expr, kind: str, layout: str):
    """The result in ``layout`` and its arrangement tag for verification."""
    if layout not in LAYOUTS:
        raise MatDerivError(f"unknown layout {layout!r}", hint="use mixed, numerator or denominator")
    if kind == "derivative":
        return natural, "J"
    if kind == "gradient":
        if layout == "numerator":
            return simplify(transpose(natural)), "gradT"
        return natural, "grad"
    if kind in ("vector-by-scalar", "matrix-by-scalar"):
        if layout == "denominator":
            return simplify(transpose(natural)), "dT"
        return natural, "J"
    # jacobian, matrix-by-matrix
    if layout == "denominator":
        return simplify(transpose(natural)), "JT"
    return natural, "J"


def second_derivative(f: Expr, var: Symbol, layout: str = "mixed") -> tuple[Result, Result]:
    """(first derivative in mixed layout, second derivative) of a scalar ``f``.  The second
    derivative is d vec(G) / d (vec X)^T of the gradient G: the n x n (or mn x mn) Hessian.
    By a scalar ``t`` the function may be a vector or a matrix: its second derivative is the
    derivative of dF/dt, arranged in ``layout`` as a first derivative by a scalar is.

    For a symmetric variable both are the unconstrained derivatives evaluated at a symmetric
    point (the convention of the gradient): the Hessian differentiates the unconstrained
    gradient (``X^{-T}`` for ``log det X``), not its symmetric spelling (``X^{-1}``), whose
    derivative differs off the symmetric matrices (``-(X^{-1} (x) X^{-1}) K_nn``, not
    ``-(X^{-1} (x) X^{-1})``)."""
    if var.symmetric:
        from dataclasses import replace

        f_u, var_u = unconstrained(f, var)
        first_u, res_u = second_derivative(f_u, var_u)
        return (replace(_resymmetrized(first_u, var_u, var, pretty=False), raw=first_u.natural),
                _resymmetrized(res_u, var_u, var))
    if f.shape != SCALAR and var.shape == SCALAR:
        first = first_derivative(f, var, "mixed", pretty=False)  # (its natural alone is read)
        return first, first_derivative(first.natural, var, layout)
    if f.shape != SCALAR:
        raise UnsupportedError("second derivatives of functions that are not scalars are not "
                               "supported (SPEC 1.4: the Hessian of a scalar function)")
    first = first_derivative(f, var, "mixed", pretty=False)  # (its natural alone is read)
    g = first.natural
    d = Differentiator(var)
    dg = d(g)
    if var.shape == SCALAR:
        kind = "second-derivative"
        natural = _identify(g, var, dg, "derivative")
    else:
        kind = "hessian"
        n = dim_mul(*var.shape)
        terms = linear_terms(dg) if dg is not None else []  # (split once: a walk of dg)
        if not terms:
            natural = zero((n, n))
        else:
            natural = add(*[jacobian(t, var) for t in terms])
    natural = simplify(natural)
    return first, Result(kind, natural, prettify(natural), "J", dg, tuple(d.rules))
