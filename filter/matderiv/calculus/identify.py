"""Identification: from a differential that is linear in ``dX`` to the derivative itself.

Owns the two identification rules of the differential method:

* scalar ``f``: bring ``df`` to ``tr(G^T dX)`` (the trace trick).  Implemented as a walk from the
  root of each linear term down to ``dX`` that carries the cotangent ``G`` along, using
  ``tr(G^T P U Q) = tr((P^T G Q^T)^T U)``, ``tr(G^T (A \\odot U)) = tr((G \\odot A)^T U)`` and
  ``tr(g\\,tr(U)) = tr((g I)^T U)``; the gradient is the sum of what reaches ``dX``.
* vector or matrix ``F``: bring ``vec(dF)`` to ``J vec(dX)`` with
  ``vec(P U Q) = (Q^T \\otimes P) vec(U)``, ``vec(U^T) = K vec(U)`` and
  ``vec(A \\odot U) = diag(vec A) vec(U)``.
* scalar variable ``t``: ``dF = F' dt``, so ``F'`` is ``dF`` with ``dt`` set to 1.

It also splits a differential into its linear terms (distributing only over the sums that
contain ``dX``, so constant parts such as ``(A x - b)`` stay whole).
"""
from __future__ import annotations

from ..errors import UnsupportedError
from ..expr import (ONE, SCALAR, Add, Commutation, Const, Diag, DiagPart, Differential, Expr,
                    Hadamard, HadamardDiv, Identity, Inverse, Kron, Mul, Ones, Sum, Symbol, Trace,
                    Transpose, Vec, Zero, dim_mul)
from .build import add, c, hadamard, identity, mul, transpose


def has_d(e: Expr) -> bool:
    """Whether ``e`` contains a differential, kept on the node after the first computation
    (trees are immutable): later reads are attribute reads, with no hashing of the node as a
    dictionary key (and no deep equality test against an equal tree met before)."""
    hit = e._has_d  # (the class's None until the first computation)
    if hit is None:
        nodes = e._nodes
        if nodes is not None:
            # (a tree whose node list is kept, as the function's own subtrees are: one scan
            # of it, no call per node)
            hit = False
            for n in nodes:
                if type(n) is Differential:
                    hit = True
                    break
        else:
            hit = type(e) is Differential
            if not hit:
                for kid in e.children():
                    if has_d(kid):
                        hit = True
                        break
        object.__setattr__(e, "_has_d", hit)
    return hit


#: The builder of each product type, for the linear terms of a product.
_BUILDERS = {Mul: mul, Hadamard: hadamard, Kron: lambda *a: Kron(tuple(a))}


def _builds_back(e: Expr) -> bool:
    """Whether the builder of the product ``e`` (:data:`_BUILDERS`) gives back a node equal to
    ``e`` from its own factors: nothing for it to fold or flatten (a number after the first
    factor, a 1, 0 or zero matrix, a nested product it would splice in, a ones factor of an
    elementwise product).  Then a product whose varying factor is its own one linear term is
    that term itself, with no copy built."""
    t = type(e)
    if t is Kron:
        return True
    args = e.args
    if len(args) < 2:
        return False
    if t is Mul:
        all_scalar = True
        for f in args:
            if f.shape != SCALAR:
                all_scalar = False
                break
        first = True
        for f in args:
            tf = type(f)
            if tf is Const:
                if not first or f.value == 1 or f.value == 0:
                    return False
            elif tf is Zero or (tf is Mul and (all_scalar or f.shape != SCALAR)):
                return False
            first = False
        return True
    if args[0].is_scalar:
        return False  # (an elementwise product of scalars is built as a product)
    for f in args:
        tf = type(f)
        if tf is Hadamard or tf is Ones or tf is Zero or (tf is Const and f.value == 0):
            return False
    return True


def linear_terms(e: Expr) -> list[Expr]:
    """Terms whose sum is ``e``, each containing exactly one ``dX``."""
    if isinstance(e, Differential):
        return [e]
    if isinstance(e, Add):
        out = []
        for t in e.args:
            if has_d(t):
                out.extend(linear_terms(t))
        return out
    if isinstance(e, (Mul, Hadamard, Kron)):
        idx = [i for i, f in enumerate(e.args) if has_d(f)]
        if len(idx) != 1:
            raise AssertionError("a differential must be linear in dX")
        i = idx[0]
        terms = linear_terms(e.args[i])
        if len(terms) == 1 and terms[0] is e.args[i] and _builds_back(e):
            return [e]  # (one term, the factor itself: e is its own term, built again)
        build = _BUILDERS[type(e)]
        return [build(*e.args[:i], t, *e.args[i + 1:]) for t in terms]
    if isinstance(e, HadamardDiv):
        terms = linear_terms(e.num)
        if len(terms) == 1 and terms[0] is e.num:
            return [e]
        return [HadamardDiv(t, e.den) for t in terms]
    if isinstance(e, (Transpose, Trace, Diag, DiagPart, Vec, Sum)):
        terms = linear_terms(e.arg)
        if len(terms) == 1 and terms[0] is e.arg:
            return [e]
        return [type(e)(t) for t in terms]
    if not has_d(e):
        return []
    raise AssertionError(f"unexpected node {type(e).__name__} in a differential")


def _split_mul(e: Mul):
    """(scalar factors, chain before, the factor holding dX, chain after)."""
    scalars, chain = [], []
    for f in e.args:
        (scalars if f.is_scalar and not has_d(f) else chain).append(f)
    i = next(i for i, f in enumerate(chain) if has_d(f))
    return scalars, chain[:i], chain[i], chain[i + 1:]


# --------------------------------------------------------------------------------------------
# scalar f: the trace trick
# --------------------------------------------------------------------------------------------
def gradient(term: Expr, cot: Expr | None = None) -> Expr:
    """The G with ``<cot, term> = tr(G^T dX)``; ``cot`` defaults to 1 for a scalar term."""
    if cot is None:
        cot = c(1)
    e = term
    if isinstance(e, Differential):
        return cot
    if isinstance(e, Transpose):
        return gradient(e.arg, transpose(cot))
    if isinstance(e, Add):
        return add(*[gradient(t, cot) for t in e.args if has_d(t)])
    if isinstance(e, Mul):
        scalars, before, u, after = _split_mul(e)
        if u.is_scalar:
            # <G, s R> = s <G, R>: the cotangent of s is <G, R> (R the rest, scalars included)
            rest = mul(*scalars, *before, *after)
            return gradient(u, _inner(cot, rest))
        # (P^T and Q^T written with the transposes on the factors, B^T A^T for (A B)^T, as
        # simplify would write them: it then rewrites each product once, not twice)
        g = mul(*scalars, *_transposed_chain(before), cot, *_transposed_chain(after))
        return gradient(u, g)
    if isinstance(e, Hadamard):
        idx = next(i for i, f in enumerate(e.args) if has_d(f))
        others = e.args[:idx] + e.args[idx + 1:]
        return gradient(e.args[idx], hadamard(cot, *others))
    if isinstance(e, HadamardDiv):
        return gradient(e.num, HadamardDiv(cot, e.den))
    if isinstance(e, Trace):
        return gradient(e.arg, mul(cot, Identity(e.arg.shape[0])))
    if isinstance(e, Sum):
        r, col = e.arg.shape
        ones = Ones(r) if col == ONE else mul(Ones(r), Transpose(Ones(col)))
        return gradient(e.arg, mul(cot, ones))
    if isinstance(e, Diag):
        return gradient(e.arg, DiagPart(cot))
    if isinstance(e, DiagPart):
        return gradient(e.arg, Diag(cot))
    if isinstance(e, Vec) and e.arg.shape[1] == ONE:
        return gradient(e.arg, cot)
    if isinstance(e, Vec):
        from .simplify import simplify

        back = _unvec(simplify(cot), e.arg.shape)
        if back is not None:  # <c, vec(dM)> = tr(unvec(c)^T dM)
            return gradient(e.arg, back)
    if isinstance(e, (Vec, Kron)):
        through = "vec" if isinstance(e, Vec) else "a Kronecker product"
        raise UnsupportedError(
            f"a gradient through vec^{{-1}} is not supported: the variable appears only through "
            f"{through}, and matderiv does not write vec^{{-1}}",
            hint="write it with a trace (\\operatorname{vec}(A)^\\top \\operatorname{vec}(X) is "
                 "\\operatorname{tr}(A^\\top X)), or ask for the Jacobian of the vector inside")
    raise UnsupportedError(f"identifying a gradient through {type(e).__name__} is not supported yet")


def _transposed_chain(chain: list) -> list:
    """The factors of ``P^T`` for the product P of the non-scalar factors ``chain``, as
    simplify's rule for a transposed product writes them: P's scalar factors, then the others
    transposed in reverse order (``P^T`` itself when P is 1 x 1 or not a product)."""
    if not chain:
        return []
    # (one factor that mul would give back as it is, the usual case: no product built)
    p = chain[0] if len(chain) == 1 and type(chain[0]) not in _REBUILT_ALONE else mul(*chain)
    if type(p) is not Mul or p.shape == SCALAR:
        return [transpose(p)]
    args = p.args
    return [f for f in args if f.is_scalar] + \
        [transpose(f) for f in reversed(args) if not f.is_scalar]


#: The single factors that :func:`build.mul` does not give back as they are (it splices in a
#: product's factors, makes a number a Const of its value, a zero matrix a new zero).
_REBUILT_ALONE = frozenset((Mul, Const, Zero))


def _unvec(v: Expr, shape):
    """The matrix M of the given shape with vec(M) = v, when v is written through vec (a scaled
    vec, a sum of them); None otherwise."""
    if isinstance(v, Vec) and v.arg.shape == shape:
        return v.arg
    if isinstance(v, Transpose) and v.arg.shape[0] == ONE:
        return _unvec(v.arg, shape) if isinstance(v.arg, Vec) else None
    if isinstance(v, Add):
        parts = [_unvec(t, shape) for t in v.args]
        return None if any(p is None for p in parts) else add(*parts)
    if isinstance(v, Mul):
        vecs = [a for a in v.args if not a.is_scalar]
        if len(vecs) == 2 and isinstance(vecs[1], Vec):
            k = vecs[0]
            if isinstance(k, Transpose) and isinstance(k.arg, Kron):
                k = Kron(tuple(transpose(a) for a in k.arg.args))
            if isinstance(k, Kron) and len(k.args) == 2:  # (B (x) A) vec(M) = vec(A M B^T)
                B, A = k.args
                inner = mul(A, vecs[1].arg, transpose(B))
                if inner.shape == shape:
                    return mul(*[a for a in v.args if a.is_scalar], inner)
        if len(vecs) == 1:
            inner = _unvec(vecs[0], shape)
            if inner is not None:
                return mul(*[a for a in v.args if a.is_scalar], inner)
    return None


def _inner(g: Expr, r: Expr) -> Expr:
    """The scalar <g, r> = tr(g^T r), written the way a textbook would."""
    if g.is_scalar and r.is_scalar:
        return mul(g, r)
    if g.shape[1] == ONE:  # vectors: g^T r
        return mul(transpose(g), r)
    return Trace(mul(transpose(g), r))


# --------------------------------------------------------------------------------------------
# vector / matrix F: vec and Kronecker
# --------------------------------------------------------------------------------------------
def jacobian(term: Expr, var: Symbol) -> Expr:
    """The J with ``vec(term) = J vec(dX)`` (numerator layout)."""
    e = term
    if isinstance(e, Differential):
        return identity(dim_mul(*var.shape))
    if e.is_scalar:
        return transpose(_vec(gradient(e)))
    if isinstance(e, Transpose):
        r, col = e.arg.shape
        inner = jacobian(e.arg, var)
        if r == ONE or col == ONE:
            return inner
        return mul(Commutation(r, col), inner)
    if isinstance(e, Add):
        return add(*[jacobian(t, var) for t in e.args if has_d(t)])
    if isinstance(e, Mul):
        scalars, before, u, after = _split_mul(e)
        if u.is_scalar:
            rest = mul(*scalars, *before, *after)
            return mul(_vec(rest), jacobian(u, var))
        P = mul(*before) if before else None
        Q = mul(*after) if after else None
        if isinstance(u, Diag) and Q is not None and Q.shape[1] == ONE:
            # P diag(L) q = P diag(q) L
            return mul(*scalars, P, Diag(Q), jacobian(u.arg, var))
        return mul(*scalars, _kron(transpose(Q) if Q is not None else identity(u.shape[1]),
                                   P if P is not None else identity(u.shape[0])),
                   jacobian(u, var))
    if isinstance(e, Hadamard):
        idx = next(i for i, f in enumerate(e.args) if has_d(f))
        others = e.args[:idx] + e.args[idx + 1:]
        return mul(Diag(_vec(hadamard(*others))), jacobian(e.args[idx], var))
    if isinstance(e, HadamardDiv):
        return mul(Inverse(Diag(_vec(e.den))), jacobian(e.num, var))
    if isinstance(e, Vec):
        return jacobian(e.arg, var)
    if isinstance(e, Diag):
        # vec(diag(du)) = diag(vec I_n) (1 (x) I_n) du: the copies of du, masked to the diagonal
        n = e.arg.shape[0]
        return mul(Diag(Vec(Identity(n))), Kron((Ones(n), Identity(n))), jacobian(e.arg, var))
    if isinstance(e, DiagPart):
        # diag(dM) = (1^T (x) I_n) diag(vec I_n) vec(dM): the diagonal of I o dM, summed by rows
        n = e.arg.shape[0]
        return mul(Kron((Transpose(Ones(n)), Identity(n))), Diag(Vec(Identity(n))),
                   jacobian(e.arg, var))
    if isinstance(e, Kron) and all(a.shape[1] == ONE for a in e.args):
        # of column vectors: L (x) du (x) R = (L (x) I_m (x) R) du
        idx = next(i for i, f in enumerate(e.args) if has_d(f))
        u = e.args[idx]
        parts = e.args[:idx] + (identity(u.shape[0]),) + e.args[idx + 1:]
        core = parts[0] if len(parts) == 1 else Kron(tuple(parts))
        return mul(core, jacobian(u, var))
    if isinstance(e, Kron):
        # vec(P (x) Q) = (I_{q1} (x) K_{q2 p1} (x) I_{p2}) (vec P (x) vec Q) for P p1 x q1 and
        # Q p2 x q2 (Magnus & Neudecker, Thm 3.10); the differential is in P or in Q
        P = e.args[0]
        Q = e.args[1] if len(e.args) == 2 else Kron(e.args[1:])
        (p1, q1), (p2, q2) = P.shape, Q.shape
        if has_d(P):
            inner = _kron(jacobian(P, var), _vec(Q))
        else:
            inner = _kron(_vec(P), jacobian(Q, var))
        if q2 == ONE or p1 == ONE:  # K_{1 p} = I_p: the whole permutation is an identity
            return inner
        parts = [f for f, trivial in ((Identity(q1), q1 == ONE), (Commutation(q2, p1), False),
                                      (Identity(p2), p2 == ONE)) if not trivial]
        return mul(parts[0] if len(parts) == 1 else Kron(tuple(parts)), inner)
    raise UnsupportedError(f"identifying a Jacobian through {type(e).__name__} is not supported yet")


def _vec(e: Expr) -> Expr:
    return e if e.shape[1] == ONE else Vec(e)


def _kron(a: Expr, b: Expr) -> Expr:
    if a.is_scalar:
        return mul(a, b)
    if b.is_scalar:
        return mul(b, a)
    if a.shape[1] == ONE and b.shape[0] == ONE:  # column (x) row = column row
        return mul(a, b)
    if a.shape[0] == ONE and b.shape[1] == ONE:  # row (x) column = column row
        return mul(b, a)
    return Kron((a, b))


# --------------------------------------------------------------------------------------------
# scalar variable
# --------------------------------------------------------------------------------------------
def by_scalar(term: Expr, var: Symbol) -> Expr:
    """F' from ``dF = F' dt``: every ``dt`` replaced by 1."""
    d = Differential(var)
    return term.map(lambda n: c(1) if n == d else n)
