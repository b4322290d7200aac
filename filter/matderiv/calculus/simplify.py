r"""Simplification to textbook form.

Owns the canonical form of results: transposes pushed to symbols (``(AB)^T = B^T A^T``), a
symmetric ``A^T`` written ``A``, exact rational coefficients in front, scalar factors gathered
before the matrix chain (``(x^T A x) x``, ``\det(X) X^{-T}``), like terms collected, common left
and right factors pulled out of sums (``A x + A^T x -> (A + A^T) x``), identities, ones and zeros
removed, ``X^{-1} X`` cancelled.

Every rewrite is an identity that holds for all values where both sides are defined; the
verifier checks the final result numerically anyway.
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

from ..expr import (COEF_ONE, ONE, SCALAR, Add, Commutation, Const, Det, Diag, DiagPart, Differential,
                    Expr, Func, Hadamard, HadamardDiv, Identity, Inverse, Kron, Mul, Norm, Ones,
                    Power, Softmax, Sum, Symbol, Trace, Transpose, Vec, Zero, dim_mul)
from ..deadline import tick
from .build import c, is_zero, ones, zero

MAX_PASSES = 12


def simplify(e: Expr) -> Expr:
    """The textbook form of ``e`` (a fixpoint of the rewrite rules)."""
    for _ in range(MAX_PASSES):
        new = _rewrite_pass(e)
        if new is e or new == e:
            return new
        e = new
    return e


#: The node attribute that marks a subtree as a fixpoint of :func:`_rewrite_pass`, one per value
#: of ``_DISTRIBUTING`` (the rules differ while a distribution trial runs).  A fixpoint outside
#: trials is one inside them too, and a node left unchanged outside them is left unchanged inside:
#: a trial only drops rules (the nested trials of _distribute_if_smaller, _expand_hadamards and
#: _hadamard_distribute), and where such a trial finds nothing smaller the rest of its rule runs
#: alike; where it finds something, what it gives back is smaller than the node (its size tests),
#: so not the node itself (barring a rule that grows it back, which none was seen to do on the
#: corpus, the variants and the random set).
_FIXED_ATTR = ("_fixed_plain", "_fixed_trial")


def _rewrite_pass(e: Expr) -> Expr:
    """One bottom-up pass of :func:`_rewrite` (``e.map(_rewrite)``), skipping subtrees known to
    come back unchanged.  A subtree that a pass returned as the very same object is a fixpoint
    (the rewrite is a pure, memoised function of the node), so it is marked and never walked
    again: later passes, and later simplifications of trees that contain it, skip it."""
    attr = _FIXED_ATTR[_DISTRIBUTING]
    d = e.__dict__
    if attr in d or (_DISTRIBUTING and "_fixed_plain" in d):
        # (a fixpoint outside trials is one inside them too: see _FIXED_ATTR)
        return e
    kids = e.children()
    node = e
    if kids:
        # (a symbol or a number, a leaf without a rule, is its own rewrite, and a transposed
        # symbol is answered as below: no call for the commonest children)
        new = []
        for k in kids:
            t = type(k)
            if t is Symbol or t is Const:
                new.append(k)
            elif t is Transpose and type(k.arg) is Symbol:
                new.append(k if _stays_transposed(k.arg) else k.arg)
            else:
                new.append(_rewrite_pass(k))
        for a, b in zip(new, kids):
            if a is not b:
                node = e.with_children(new)
                break
    # (a node type without a rule, a symbol or a number, is its own rewrite, and a transposed
    # symbol is answered as _rewrite_transpose would: no memo lookup for the commonest nodes)
    t = type(node)
    if t is Transpose and type(node.arg) is Symbol:
        out = node if _stays_transposed(node.arg) else node.arg
    else:
        out = _rewrite(node) if t in _RULES else node
    if out is e:
        object.__setattr__(e, attr, True)
    return out


def _stays_transposed(a: Symbol) -> bool:
    """Whether the transpose of the symbol ``a`` is not ``a`` itself (a is neither 1 x 1 nor
    symmetric): what :func:`_rewrite_transpose` gives for a transposed symbol, which the
    shortcuts of :func:`_rewrite_pass` and :func:`_t` answer without the memo."""
    return not (a.shape == SCALAR or a.symmetric)


# --------------------------------------------------------------------------------------------
# keys
# --------------------------------------------------------------------------------------------
@lru_cache(maxsize=65536)
def skey(e: Expr) -> str:
    """A deterministic total-order key (a compact s-expression)."""
    if isinstance(e, Symbol):
        return e.name
    if isinstance(e, Const):
        return f"#{e.value}"
    if isinstance(e, (Identity, Ones)):
        return f"{type(e).__name__}[{''.join(e.n)}]"
    if isinstance(e, Zero):
        return "0"
    if isinstance(e, Commutation):
        return f"K[{''.join(e.m)},{''.join(e.n)}]"
    if isinstance(e, Differential):
        return "d" + e.of.name
    name = e.name if isinstance(e, Func) else type(e).__name__
    if isinstance(e, Norm):
        name += e.kind
    return f"{name}({','.join(skey(k) for k in e.children())})"


def ckey(e: Expr) -> str:
    """:func:`skey` up to the equalities of a trace, tr(A B) = tr(B A) = tr(A^T B^T)... (the
    argument's chain taken at its least rotation, of it or of its transpose): the key under
    which like terms and equal scalar factors are found, so that tr(A X) tr(X A) is
    tr(A X)^2.  Display order still follows :func:`skey`."""
    k = skey(e)
    return k if "Trace(" not in k else _ckey(e)


def _ckey(e: Expr) -> str:
    if isinstance(e, Trace) and isinstance(e.arg, Mul) and \
            not any(a.is_scalar for a in e.arg.args):
        chain = list(e.arg.args)
        back = [_t(f) for f in reversed(chain)]
        n = len(chain)
        return "Trace(Mul(" + min(",".join(_ckey(f) for f in r[i:] + r[:i])
                                  for r in (chain, back) for i in range(n)) + "))"
    if "Trace(" not in skey(e):
        return skey(e)
    name = e.name if isinstance(e, Func) else type(e).__name__
    if isinstance(e, Norm):
        name += e.kind
    return f"{name}({','.join(_ckey(k) for k in e.children())})"


def _n_transposes(e: Expr) -> int:
    count = 0
    for n in e.nodes():  # (a loop with type tests, not sum() over a generator)
        if type(n) is Transpose:
            count += 1
    return count


# --------------------------------------------------------------------------------------------
# products
# --------------------------------------------------------------------------------------------
def split(e: Expr):
    """(coefficient, scalar factors, chain of non-scalar factors) of a product."""
    t = type(e)  # (the node types have no subclasses: type tests, not isinstance)
    if t is Const:
        return e.value, [], []
    if t is not Mul:
        return (COEF_ONE, [e], []) if e.is_scalar else (COEF_ONE, [], [e])
    coef, scalars, chain = COEF_ONE, [], []
    for f in e.args:
        t = type(f)
        if t is Const:
            coef = f.value if coef is COEF_ONE else coef * f.value
        elif t is Mul:
            fc, fs, fch = split(f)
            coef = fc if coef is COEF_ONE else coef * fc
            scalars.extend(fs)
            if f.is_scalar and fch:
                scalars.append(_chain(fch))
            else:
                chain.extend(fch)
        elif f.is_scalar:
            scalars.append(f)
        else:
            chain.append(f)
    return coef, scalars, chain


def _chain(fs):
    return fs[0] if len(fs) == 1 else Mul(tuple(fs))


_CATEGORY = {Symbol: 1, Power: 2, Trace: 4, Det: 4, Norm: 4, Func: 5, Sum: 5}


def _scalar_order(e: Expr):
    if isinstance(e, Power) and isinstance(e.exponent, Const) and e.exponent.value < 0:
        # denominators after the numerator, in the numerator's order (2 t \sqrt{t})
        return (9,) + _scalar_order(e.base)
    if isinstance(e, Power) and isinstance(e.base, Symbol):
        return (1, skey(e.base), skey(e))
    cat = _CATEGORY.get(type(e), 6)
    return (cat, skey(e))


def _power_parts(e: Expr):
    r"""(base, exponent) of a scalar factor; ``(a^k)^m`` with a whole m is ``a^{k m}``, so that
    ``a^k (a^k)^{-1}`` cancels (it printed ``\frac{a^{k} X^{-\top}}{a^{k}}``)."""
    if isinstance(e, Power) and e.base.is_scalar:
        b, k = e.base, e.exponent
        if isinstance(b, Power) and b.base.is_scalar and _whole(k) is not None:
            m = b.exponent
            km = c(m.value * k.value) if isinstance(m, Const) else simplify(Mul((k, m)))
            return b.base, km
        return b, k
    return e, c(1)


#: f(u) / g(u) = h(u): f -> (g, h).
_QUOTIENTS = {"sin": ("cos", "tan"), "sinh": ("cosh", "tanh")}


def _quotient_parts(num: Expr):
    """``(g(u), h(u))`` when ``num`` is f(u) with f / g = h (:data:`_QUOTIENTS`), else None."""
    if isinstance(num, Func) and num.name in _QUOTIENTS:
        g, h = _QUOTIENTS[num.name]
        return Func(g, num.arg), Func(h, num.arg)
    return None


def _quotient(num: Expr, den: Expr):
    """tan(u) for sin(u) / cos(u), tanh(u) for sinh(u) / cosh(u); else None."""
    parts = _quotient_parts(num)
    return parts[1] if parts and parts[0] == den else None


def _merge_scalars(scalars):
    """Combine equal bases: s s -> s^2, s s^{-1} -> 1; sort into display order."""
    if not scalars:
        return []  # (a product of matrices only: most products)
    if len(scalars) == 1 and not isinstance(scalars[0], (Power, Func)):
        return [scalars[0]]  # (one factor, not a power or a function: nothing merges)
    for s in scalars:
        if isinstance(s, (Power, Func, Trace)):
            break
    else:
        if len(set(scalars)) == len(scalars):
            # (distinct bases, none a power, a function or a trace: nothing merges, the
            # factors are only sorted)
            return sorted(scalars, key=_scalar_order)
    order, expo, traces = [], {}, {}
    for s in scalars:
        b, k = _power_parts(s)
        if isinstance(b, Trace):  # tr(A X) and tr(X A) are one base: the first spelling
            b = traces.setdefault(ckey(b), b)
        if b in expo:
            expo[b] = _add_exponents(expo[b], k)
        else:
            order.append(b)
            expo[b] = k
    for b in list(order):  # exp(u) (1 + exp(u))^{-1} = sigma(u)
        if isinstance(b, Func) and b.name == "exp" and expo[b] == c(1):
            den = next((k for k in expo if isinstance(k, Add) and len(k.args) == 2
                        and set(k.args) == {c(1), b}), None)
            if den is not None and expo[den] == c(-1):
                order.remove(den)
                del expo[den]
                i = order.index(b)
                order[i] = Func("sigmoid", b.arg)
                expo[order[i]] = expo.pop(b)
    for b in list(order):  # sigma'(u) / sigma(u) = 1 - sigma(u); sigma'(u) / (1 - sigma(u)) = sigma(u)
        if isinstance(b, Func) and b.name == "dsigmoid" and b.arg.is_scalar and expo[b] == c(1):
            sig = Func("sigmoid", b.arg)
            one_minus = Add((c(1), Mul((c(-1), sig))))
            for den, repl in ((sig, one_minus), (one_minus, sig)):
                if expo.get(den) == c(-1):
                    order.remove(den)
                    del expo[den]
                    i = order.index(b)
                    order[i] = repl
                    expo[repl] = expo.pop(b)
                    break
    for b in list(order):  # sin(u) / cos(u) = tan(u), sinh^k(u) / cosh^k(u) = tanh^k(u)
        parts = _quotient_parts(b)
        if parts:
            den = parts[0]
            k = expo[b]
            if den in expo and isinstance(k, Const) and k.value > 0 and \
                    _add_exponents(expo[den], k) == c(0):
                order.remove(den)
                del expo[den]
                i = order.index(b)
                order[i] = parts[1]
                expo[order[i]] = expo.pop(b)
    _merge_signs(order, expo)
    _merge_roots(order, expo)
    out = []
    for b in order:
        k = expo[b]
        if isinstance(k, Const) and k.value == 0:
            continue
        out.append(b if (isinstance(k, Const) and k.value == 1) else Power(b, k))
    return sorted(out, key=_scalar_order)


def _merge_roots(order, expo):
    r"""``t^k \sqrt{t}^j`` with whole k and j in one form, ``t^q \sqrt{t}^s`` with s = -1, 0 or 1
    of the sign of ``2k + j`` (the same value where ``\sqrt{t}`` is real): ``t / \sqrt{t} =
    \sqrt{t}``, ``\sqrt{t} / t^2 = 1 / (t \sqrt{t})``, so that like terms are seen:
    ``\sqrt{t} + \frac{t}{2 \sqrt{t}} = \frac{3}{2} \sqrt{t}``.  In place, on the bases and
    exponents of :func:`_merge_scalars`.  Only for a symbol, a product, a determinant, a trace or
    a norm under the root (``\sqrt{x^\top x}``, ``\sqrt{\det X}``): ``\frac{(6 u^2 + 3) b b^\top}{\sqrt{1 + u^2}}`` keeps its denominator."""
    for r in list(order):
        if not (isinstance(r, Func) and r.name == "sqrt" and r.arg in expo
                and isinstance(r.arg, (Symbol, Mul, Det, Trace, Norm))):
            continue  # (a sum or a function under the root: left to the common denominator)
        k, j = _whole(expo[r.arg]), _whole(expo[r])
        if k is None or j is None:
            continue
        half = 2 * k + j
        s = (half > 0) - (half < 0) if half % 2 else 0
        expo[r.arg], expo[r] = c((half - s) // 2), c(s)


def _whole(k) -> int | None:
    return int(k.value) if isinstance(k, Const) and k.value.denominator == 1 else None


def _merge_signs(order: list, expo: dict) -> None:
    r"""s^a |s|^b sign(s)^c with whole a, b, c: since |s| = s sign(s) and sign(s)^2 = 1 (s != 0,
    where the derivative exists), it is s^p sign(s)^q with p = a + b, q = (b + c) mod 2, written
    s^p (q = 0), |s|^p (q = 1, p odd) or s^p sign(s) (q = 1, p even): sign(t)/|t| = 1/t,
    t sign(t) = |t|, 6 sign(t)^2 |t| = 6 |t|, |det X|^{-1} det(X) sign(det X) = 1."""
    bases = []
    for b in order:
        if isinstance(b, Func) and b.name in ("sign", "abs") and b.arg not in bases:
            bases.append(b.arg)
    for s in bases:
        ab, sg = Func("abs", s), Func("sign", s)
        parts = [x for x in (s, ab, sg) if x in expo]
        ks = [_whole(expo[x]) for x in parts]
        if not parts or any(k is None for k in ks) or (len(parts) == 1 and parts[0] == ab):
            continue
        a, b, c_ = (_whole(expo[x]) if x in expo else 0 for x in (s, ab, sg))
        p, q = a + b, (b + c_) % 2
        if q == 0:
            new = [(s, p)]
        elif p % 2:
            new = [(ab, p)]
        else:
            new = [(s, p), (sg, 1)]
        at = min(order.index(x) for x in parts)
        for x in parts:
            order.remove(x)
            del expo[x]
        for off, (x, k) in enumerate(new):
            order.insert(at + off, x)
            expo[x] = Const(Fraction(k))


def _add_exponents(a, b):
    r"""``a + b`` as an exponent, in one order whatever the order of the factors was (the
    constant last: ``\tau^{\tau^2 + 1}``), so that equal powers are recognised as equal."""
    if isinstance(a, Const) and isinstance(b, Const):
        return Const(a.value + b.value)
    k = simplify(Add((a, b)))
    if isinstance(k, Add):
        k = Add(tuple(sorted(k.args, key=lambda t: (isinstance(t, Const), skey(t)))))
    return k


def _orient(chain: list[Expr]) -> list[Expr]:
    """A 1x1 chain and its transpose are equal: keep the one with fewer transposes."""
    flipped = [_t(f) for f in reversed(chain)]
    k1 = (sum(map(_n_transposes, chain)), ",".join(map(skey, chain)))
    k2 = (sum(map(_n_transposes, flipped)), ",".join(map(skey, flipped)))
    return flipped if k2 < k1 else chain


def _t(e: Expr) -> Expr:
    """``e^T`` rewritten.  A symbol and a transposed matrix, most of the factors transposed,
    are answered as :func:`_rewrite_transpose` would (no node to hash and look up)."""
    t = type(e)
    if t is Symbol:
        return Transpose(e) if _stays_transposed(e) else e
    if t is Transpose and e.shape != SCALAR:
        return e.arg
    return _rewrite(Transpose(e))


def _extract_scalar_groups(chain: list[Expr]):
    """Pull contiguous 1x1 sub-chains (other than the whole chain) out as scalar groups."""
    for f in chain:
        if f.shape[0] == ONE:
            break
    else:
        return [], chain  # (no factor is a row, which every 1x1 sub-chain starts with)
    groups, rest = [], []
    i, n = 0, len(chain)
    while i < n:
        found = None
        if chain[i].shape[0] == ONE:
            for j in range(i + 1, n):
                if chain[j].shape[1] == ONE:
                    if not (i == 0 and j == n - 1) or groups:
                        found = j
                    break
        if found is not None:
            groups.append(_chain(_orient(chain[i:found + 1])))
            i = found + 1
        else:
            rest.append(chain[i])
            i += 1
    return groups, rest


def _diag_parts(f: Expr):
    """(a, inverted?) for diag(a) and diag(a)^{-1} of a column a; None otherwise."""
    if isinstance(f, Diag) and f.arg.shape[1] == ONE:
        return f.arg, False
    if isinstance(f, Inverse) and isinstance(f.arg, Diag) and f.arg.arg.shape[1] == ONE:
        return f.arg.arg, True
    return None


def _plain_factor(f: Expr):
    """``(name, transposed?)`` of a factor that is a symbol or a transposed symbol, else None:
    see :func:`_cancel_chain`."""
    t = type(f)
    if t is Symbol:
        return f.name, False
    if t is Transpose and type(f.arg) is Symbol:
        return f.arg.name, True
    return None


def _cancel_chain(chain: list[Expr]) -> list[Expr]:
    out: list[Expr] = []
    plain_prev = None  # (_plain_factor of out[-1])
    for f in chain:
        plain = _plain_factor(f)
        if plain is not None and plain_prev is not None and plain != plain_prev:
            # two (transposed) symbols that are not the same one transposed alike (X X is
            # X^2, X^T X^T is (X^2)^T): none of the rules below applies to them (each needs
            # an identity, inverse, diag, ones, Kronecker, commutation, quotient or power, or
            # equal bases for _merge_powers); the most common pair, settled in one test
            out.append(f)
            plain_prev = plain
            continue
        plain_prev = None  # (set again below when f is appended as it is)
        if isinstance(f, Identity) and (out or len(chain) > 1):
            plain_prev = _plain_factor(out[-1]) if out else None
            continue
        if out:
            prev = out[-1]
            # diag(a) (b / a) = b;  a^T (b / a) = 1^T b
            if isinstance(f, HadamardDiv) and isinstance(prev, Diag) and prev.arg == f.den:
                out[-1] = f.num
                continue
            if isinstance(f, HadamardDiv) and isinstance(prev, Transpose) and prev.arg == f.den:
                out[-1] = Transpose(Ones(f.den.shape[0]))
                out.append(f.num)
                continue
            # K_{pm} (A \otimes B) K_{nq} = B \otimes A  for A m x n and B p x q
            if (isinstance(f, Commutation) and isinstance(prev, Kron) and len(prev.args) == 2
                    and len(out) >= 2 and isinstance(out[-2], Commutation)):
                (ar, ac), (br, bc) = prev.args[0].shape, prev.args[1].shape
                left = out[-2]
                if (left.m, left.n, f.m, f.n) == (br, ar, ac, bc):
                    out[-2:] = [Kron((prev.args[1], prev.args[0]))]
                    continue
            # the same with K_{pm} = I (A or B a row): (A \otimes B) K_{nq} = B \otimes A,
            # (y^T \otimes I_n) K_{mn} = I_n \otimes y^T
            if (isinstance(f, Commutation) and isinstance(prev, Kron) and len(prev.args) == 2
                    and ONE in (prev.args[0].shape[0], prev.args[1].shape[0])
                    and (f.m, f.n) == (prev.args[0].shape[1], prev.args[1].shape[1])):
                out[-1] = Kron((prev.args[1], prev.args[0]))
                continue
            # and with K_{nq} = I (A or B a column): K_{pm} (A \otimes B) = B \otimes A
            if (isinstance(prev, Commutation) and isinstance(f, Kron) and len(f.args) == 2
                    and ONE in (f.args[0].shape[1], f.args[1].shape[1])
                    and (prev.m, prev.n) == (f.args[1].shape[0], f.args[0].shape[0])):
                out[-1] = Kron((f.args[1], f.args[0]))
                continue
            if _are_inverses(prev, f):
                out.pop()
                continue
            # diag(u) 1 = u,  1^T diag(u) = u^T
            if isinstance(prev, Diag) and isinstance(f, Ones) and prev.arg.shape[1] == ONE \
                    and prev.arg.shape[0] == f.n:
                out[-1] = prev.arg
                continue
            if isinstance(f, Diag) and isinstance(prev, Transpose) and isinstance(prev.arg, Ones) \
                    and f.arg.shape[1] == ONE and f.arg.shape[0] == prev.arg.n:
                out[-1] = _t(f.arg)
                continue
            # diag(u)^{-1} u = 1,  u^T diag(u)^{-1} = 1^T
            if (isinstance(prev, Inverse) and isinstance(prev.arg, Diag) and prev.arg.arg == f
                    and f.shape[1] == ONE):
                out[-1] = Ones(f.shape[0])
                continue
            if (isinstance(f, Inverse) and isinstance(f.arg, Diag) and isinstance(prev, Transpose)
                    and prev.arg == f.arg.arg and prev.arg.shape[1] == ONE):
                out[-1] = Transpose(Ones(prev.arg.shape[0]))
                continue
            # diag(u)^{-1} v = v / u for a column v (elementwise division, as diag(u) v = u o v)
            if (isinstance(prev, Inverse) and isinstance(prev.arg, Diag) and f.shape[1] == ONE
                    and f.shape[0] != ONE and prev.arg.arg.shape[1] == ONE
                    and not isinstance(f, (Diag, Inverse))):
                out[-1] = _rewrite(HadamardDiv(f, prev.arg.arg))
                continue
            # diagonal matrices commute and multiply entrywise: diag(a) diag(b) = diag(a o b),
            # diag(a)^{-1} diag(b) = diag(b / a)
            da, db = _diag_parts(prev), _diag_parts(f)
            if da is not None and db is not None and da[0].shape == db[0].shape:
                (a, inv_a), (b, inv_b) = da, db
                if inv_a and inv_b:
                    out[-1] = Inverse(Diag(Hadamard((a, b))))
                elif inv_a or inv_b:
                    num, den = (b, a) if inv_a else (a, b)
                    out[-1] = Diag(HadamardDiv(num, den))
                else:
                    out[-1] = Diag(Hadamard((a, b)))
                continue
            merged = _merge_powers(prev, f)
            if merged is not None:
                out[-1] = merged
                continue
            if isinstance(prev, Diag) and f.shape[1] == ONE and isinstance(f, (Symbol, Func, Softmax)):
                out[-1] = _rewrite(Hadamard((prev.arg, f)))
                continue
        out.append(f)
        plain_prev = plain
    return out


def _square_product_inverse(f: Expr) -> bool:
    a = f.arg if isinstance(f, Inverse) else None
    if isinstance(a, Transpose):
        a = a.arg
    return isinstance(a, Mul) and all(g.is_square and not g.is_scalar for g in a.args)


def _expand_inverse(f: Expr):
    """(A B C)^{-1} = C^{-1} B^{-1} A^{-1} for square factors (None when not applicable)."""
    if not _square_product_inverse(f):
        return None
    a = f.arg
    if isinstance(a, Transpose):
        a = _t(a.arg)
        if not isinstance(a, Mul):
            return None
    return [_rewrite_inverse(Inverse(g)) for g in reversed(a.args)]


def _are_inverses(a: Expr, b: Expr) -> bool:
    return (isinstance(a, Inverse) and a.arg == b) or (isinstance(b, Inverse) and b.arg == a)


def _matpow_parts(e: Expr):
    r"""(base, whole exponent, transposed?) of X, X^k, X^{-1}, X^\top, X^{-\top}, (X^k)^\top,
    where the base is a square symbol, or a square sum or product in brackets (B^{-1} B^{-1}
    is B^{-2} for B = X^\top X)."""
    if isinstance(e, Transpose):
        b, k, t = _matpow_parts(e.arg)
        return (b, k, not t) if b is not None else (None, None, None)
    if isinstance(e, Power) and isinstance(e.exponent, Const) and not e.base.is_scalar and \
            isinstance(e.base, (Symbol, Mul, Add)):
        return e.base, e.exponent.value, False
    if isinstance(e, Inverse):
        b, k, t = _matpow_parts(e.arg)
        return (b, -k, t) if b is not None and k == 1 else (None, None, None)
    if isinstance(e, (Symbol, Mul, Add)) and e.shape[0] == e.shape[1] and not e.is_scalar:
        return e, COEF_ONE, False  # (a product or sum only as a factor of a chain)
    return None, None, None


def _merge_powers(a: Expr, b: Expr):
    ba, ka, ta = _matpow_parts(a)
    bb, kb, tb = _matpow_parts(b)
    if ba is None or ba != bb or ta != tb:
        return None
    k = ka + kb
    if k == 0:
        return Identity(ba.shape[0])
    if k == 1:
        core = ba
    elif k == -1:
        core = Inverse(ba)
    else:
        core = Power(ba, Const(k))
    return _t(core) if ta else core


def build_product(coef: Fraction, scalars, chain) -> Expr:
    # (``coef is COEF_ONE``: the shared 1 of split, the usual coefficient, is not compared as a
    # Fraction, whose comparisons are Python calls)
    if coef is not COEF_ONE and coef == 0:
        return None
    if scalars:
        scalars = _merge_scalars(scalars)
    parts: list[Expr] = []
    if (coef is not COEF_ONE and coef != 1) or (not scalars and not chain):
        parts.append(Const(coef))
    parts.extend(scalars)
    parts.extend(chain)
    return parts[0] if len(parts) == 1 else Mul(tuple(parts))


def size(e: Expr) -> int:
    return len(e.nodes())  # (the node list is kept on the node)


def _distribute_if_smaller(chain: list[Expr]) -> list[Expr]:
    r"""Multiply a sum factor out against a neighbour when the result is smaller, e.g.
    ``(diag(s) - s s^T)(y \oslash s) -> y - s (1^T y)``; textbook factored forms stay."""
    global _DISTRIBUTING
    if _DISTRIBUTING:  # no nested trials: factoring inside a trial would undo it
        return chain
    _DISTRIBUTING = True
    try:
        return _distribute_trial(chain)
    finally:
        _DISTRIBUTING = False


_DISTRIBUTING = False


def _distribute_trial(chain: list[Expr]) -> list[Expr]:
    for i, f in enumerate(chain):
        if not isinstance(f, Add):
            continue
        for j in (i + 1, i - 1):
            if not 0 <= j < len(chain) or isinstance(chain[j], Add):
                continue
            dist = _distributed_pair(f, chain[j], j > i)
            if dist is not None:
                lo = min(i, j)
                return chain[:lo] + [dist] + chain[lo + 2:]
    return chain


#: The first element of the :data:`_REWRITTEN` keys of :func:`_distributed_pair`.
_PAIR = object()


def _distributed_pair(f: Add, g: Expr, g_right: bool):
    """The sum ``f`` multiplied out against its neighbour ``g`` (on the right when ``g_right``)
    and simplified, when that is smaller than the pair; else None.  Memoised in
    :data:`_REWRITTEN` (a pure function of the pair, always computed in a trial): the same pair
    is tried again in the later passes and in the products that hold it."""
    key = (_PAIR, f, g, g_right)
    hit = _REWRITTEN.get(key)
    if hit is not None:
        return None if hit is _UNCHANGED else hit
    out = None
    if _inert_products(f, g, g_right):
        _REWRITTEN[key] = _UNCHANGED
        return None
    terms = [simplify(Mul((t, g)) if g_right else Mul((g, t))) for t in f.args]
    # (when no term got simpler, the sum of the products would factor back)
    if not all(term == _spelled_out(t, g, g_right) for term, t in zip(terms, f.args)):
        dist = simplify(Add(tuple(terms)))
        if size(dist) < size(Mul((f, g) if g_right else (g, f))) - 1:
            out = dist
    _REWRITTEN[key] = _UNCHANGED if out is None else out
    return out


def _inert_products(f: Add, g: Expr, g_right: bool) -> bool:
    """Whether every term of ``f`` times ``g`` is known, without simplifying it, to simplify to
    its :func:`_spelled_out` form, so that the trial of :func:`_distributed_pair` finds nothing
    (most trials: ``(A + A^T) x``, ``A^T (A x - b)``).  So when ``g`` and every term's chain are
    symbols and transposed symbols that stay transposed (fixpoints), no term has a scalar factor,
    no two neighbours are one symbol transposed alike (the only plain pair :func:`_cancel_chain`
    merges), and no part of a chain is 1 x 1 (no scalar group, no reorientation): the rules of
    :func:`_rewrite_mul` then only gather the coefficient in front, as :func:`_spelled_out` does."""
    g_plain = _fixed_plain_factor(g)
    if g_plain is None:
        return False
    for t in f.args:
        chain = []
        tt = type(t)
        if tt is Mul:
            for a in t.args:
                if type(a) is Const:
                    if a.value == 0:
                        return False
                else:
                    chain.append(a)
        else:
            chain.append(t)
        if not chain:
            return False
        chain = chain + [g] if g_right else [g] + chain
        prev = None
        row_seen = False
        for a in chain:
            plain = g_plain if a is g else _fixed_plain_factor(a)
            if plain is None or plain == prev:
                return False
            prev = plain
            rows, cols = a.shape
            if row_seen and cols == ONE:
                return False  # (a 1 x 1 part: a scalar group, or the whole product 1 x 1)
            if rows == ONE:
                if cols == ONE:
                    return False
                row_seen = True
    return True


def _fixed_plain_factor(f: Expr):
    """:func:`_plain_factor` of a symbol, or of a transposed symbol that stays transposed (one
    that :func:`_rewrite_pass` leaves as it is); None for any other factor."""
    t = type(f)
    if t is Symbol:
        return f.name, False
    if t is Transpose and type(f.arg) is Symbol and _stays_transposed(f.arg):
        return f.arg.name, True
    return None


def _spelled_out(t: Expr, g: Expr, g_right: bool) -> Expr:
    """The product of a term ``t`` and ``g`` written out flat, nothing simplified: what
    :func:`_distribute_trial` compares each simplified product with.  When every term of a
    simplified sum ``f`` times ``g`` is just that, the distributed sum ``t_1 g + t_2 g + ...``
    holds nothing that cancels or merges which ``f`` did not already have, so simplifying it
    can only pull ``g`` out again (or leave it larger): the trial is skipped, and with it the
    most costly step of simplification (measured on the corpus and ~500 variants: 93% of the
    trials, none of which multiplied out)."""
    coef, scalars, chain = split(t)
    return build_product(coef, scalars, chain + [g] if g_right else [g] + chain)


#: The factors that the rarer rules of :func:`_rewrite_mul` look for in a chain: diag and ones
#: (and a transposed ones vector or softmax) for the chain rules below, an inverse (of a
#: product, expanded), a sum (multiplied out).
_RARE_IN_CHAIN = (Diag, Ones, Inverse, Add)


def _has_rare_factor(chain: list[Expr]) -> bool:
    """Whether one of the rarer rules of :func:`_rewrite_mul` may apply to ``chain`` (one scan
    where most chains, of symbols and their transposes, would take three)."""
    for f in chain:
        if isinstance(f, _RARE_IN_CHAIN) or (type(f) is Transpose and isinstance(f.arg, (Ones, Softmax))):
            return True
    return False


def _rewrite_mul(e: Mul) -> Expr:
    coef, scalars, chain = split(e)
    shape = e.shape
    if coef is not COEF_ONE and coef == 0:
        return zero(shape)
    for f in chain:  # (loops, not any() over generators: this runs for every product)
        if isinstance(f, Zero):
            return zero(shape)
    for f in scalars:
        if isinstance(f, Const) and f.value == 0:
            return zero(shape)
    chain = _cancel_chain(chain)
    if len(chain) > 1 and _has_rare_factor(chain):
        if any(isinstance(f, _SPECIAL_IN_CHAIN) or (
                type(f) is Transpose and isinstance(f.arg, (Ones, Softmax))) for f in chain):
            chain = _diag_times_column(chain)
            chain, sizes = _size_products(_softmax_sums(chain))
            scalars = scalars + sizes
        if len(chain) > 1 and any(_square_product_inverse(f) for f in chain):
            trial = _cancel_chain([g for f in chain for g in (_expand_inverse(f) or [f])])
            if sum(map(size, trial)) < sum(map(size, chain)):
                chain = trial
        if len(chain) > 1 and any(isinstance(f, Add) for f in chain):
            new_chain = _distribute_if_smaller(chain)
            if new_chain is not chain:
                return _rewrite(Mul(tuple([Const(coef)] + scalars + new_chain)))
    if not chain and shape != SCALAR:
        chain = [Identity(shape[0])]
    groups, chain = _extract_scalar_groups(chain)
    if not chain and shape == SCALAR and len(groups) == 1 and isinstance(groups[0], Mul):
        chain, groups = list(groups[0].args), []
    elif chain and shape == SCALAR:
        chain = _orient(chain)
    scalars = scalars + groups
    if scalars:  # (the ratio needs a scalar denominator)
        scalars, chain = _softmax_from_ratio(scalars, chain)
    coef, scalars = _coefficients_out_of_sums(coef, scalars)
    coef, chain = _coefficients_out_of_sums(coef, chain)
    return build_product(coef, scalars, chain)


def _coefficients_out_of_sums(coef, factors):
    """A sum that is a factor of a product gives the coefficient its terms share to the
    product, whose parentheses it has anyway: ``X^T (2 X w - 2 y)`` is ``2 X^T (X w - y)``.
    Returns the new coefficient and factors (the same list when nothing moves)."""
    for f in factors:
        if type(f) is Add:
            break
    else:
        return coef, factors  # (no sum among the factors: most products)
    out = None
    for i, f in enumerate(factors):
        if not isinstance(f, Add):
            continue
        parts = [split(t) for t in f.args]
        k = _shared_coefficient([cf for cf, _, _ in parts], True)
        if k == 1:
            continue
        if out is None:
            out = list(factors)
        out[i] = _rewrite(Add(tuple(build_product(cf / k, sc, ch) for cf, sc, ch in parts)))
        coef *= k
    return coef, (factors if out is None else out)


def _sum_of_exp(e: Expr):
    """``u`` when ``e`` is ``1^T exp(u)``, ``exp(u)^T 1`` or ``sum(exp(u))`` for a vector u."""
    if isinstance(e, Sum) and isinstance(e.arg, Func) and e.arg.name == "exp":
        u = e.arg.arg
    elif isinstance(e, Mul) and len(e.args) == 2:
        a, b = e.args
        if isinstance(a, Transpose) and isinstance(a.arg, Ones) and isinstance(b, Func) \
                and b.name == "exp":
            u = b.arg
        elif isinstance(b, Ones) and isinstance(a, Transpose) and isinstance(a.arg, Func) \
                and a.arg.name == "exp":
            u = a.arg.arg
        else:
            return None
    else:
        return None
    return u if u.shape[1] == ONE and u.shape[0] != ONE else None


def _softmax_from_ratio(scalars, chain):
    """``exp(u) / (1^T exp(u))`` is ``softmax(u)`` (and ``diag(exp(u))``, ``exp(u)^T`` likewise):
    as many factors of the chain as the power of the denominator allows."""
    for i, s in enumerate(scalars):
        base, k = _power_parts(s)
        if not (isinstance(k, Const) and k.value < 0 and k.value.denominator == 1):
            continue
        u = _sum_of_exp(base)
        if u is None:
            continue
        left = -k.value
        e = Func("exp", u)
        new_chain = []
        for f in chain:
            if left and f == e:
                f, left = Softmax(u), left - 1
            elif left and isinstance(f, Transpose) and f.arg == e:
                f, left = Transpose(Softmax(u)), left - 1
            elif left and isinstance(f, Diag) and f.arg == e:
                f, left = Diag(Softmax(u)), left - 1
            new_chain.append(f)
        if left == -k.value:
            continue
        rest = scalars[:i] + scalars[i + 1:]
        if left:
            rest.append(Power(base, c(-left)))
        return _softmax_from_ratio(rest, new_chain)
    return scalars, chain


# --------------------------------------------------------------------------------------------
# sums
# --------------------------------------------------------------------------------------------
def _term_key(scalars, chain):
    """The key under which :func:`_rewrite_add` collects like terms: the scalar factors up to
    the equalities of a trace (:func:`ckey`), the chain as its nodes (equal chains are equal
    trees, whose kept hashes spare building their :func:`skey` strings; checked to group the
    terms of the corpus, the variants and the random set as the strings did)."""
    return (tuple(sorted([ckey(s) for s in scalars])) if scalars else (), tuple(chain))


def _rewrite_add(e: Add) -> Expr:
    shape = e.shape
    collected: dict = {}
    for t in _flatten_add(e):
        coef, scalars, chain = split(t)
        if coef is not COEF_ONE and coef == 0:
            continue
        scalars = _merge_scalars(scalars)
        k = _term_key(scalars, chain)
        if k in collected:
            collected[k][0] += coef
        else:
            collected[k] = [coef, scalars, chain]
    terms = [(cf, s, ch) for cf, s, ch in collected.values() if cf is COEF_ONE or cf != 0]
    if not terms:
        return zero(shape)
    terms = _merge_diagonals(terms)
    if len(terms) > 1 and _shared_matrix_parts(terms):
        terms = _collect_scalar_coefficients(terms)
        if len(terms) > 1:
            terms = _over_common_denominator(terms)
        if len(terms) > 1:
            terms = _collect_like_terms(terms)
        if not terms:
            return zero(shape)
    if len(terms) > 1 and not _DISTRIBUTING and any(
            len(ch) == 1 and isinstance(ch[0], Hadamard) and any(isinstance(a, Add) for a in ch[0].args)
            for _, _, ch in terms):
        trial = _expand_hadamards(terms)
        if trial is not None:
            return trial
    if len(terms) == 1:
        return build_product(*terms[0])
    factored = _factor(terms, shape)
    if factored is not None:
        return factored
    # A + A^T rather than A^T + A: among single matrices fewer transposes first; otherwise
    # the order of derivation (so A x + b stays A x + b)
    if all(len(t[2]) == 1 and not t[1] for t in terms):
        terms.sort(key=lambda t: _n_transposes(t[2][0]))
    return Add(tuple(build_product(*t) for t in terms))


MAX_MONOMIALS = 16


def _monomials(coef, scalars):
    """The scalar coef * prod(scalars) expanded over the sums among them, as (coef, factors)
    pairs; None when that would make more than MAX_MONOMIALS."""
    def parts(t):
        # a 1 x 1 chain (x^T x) is one more scalar factor, kept whole
        cf, sc, ch = split(t)
        return cf, list(sc) + ([ch[0] if len(ch) == 1 else Mul(tuple(ch))] if ch else [])

    out = [(coef, [])]
    for s in scalars:
        alts = [parts(t) for t in s.args] if isinstance(s, Add) else [(Fraction(1), [s])]
        out = [(c0 * c1, f0 + f1) for c0, f0 in out for c1, f1 in alts]
        if len(out) > MAX_MONOMIALS:
            return None
    return out


def _expanded_sum(products):
    """The sum of the scalar products ``(coef, factors)``, each expanded over the sums among its
    factors (:func:`_monomials`), like monomials added: ``(coef, factors)`` pairs with nonzero
    coefficients, in order of first appearance; None when an expansion is too large."""
    monos: dict = {}
    for cf, factors in products:
        ms = _monomials(cf, factors)
        if ms is None:
            return None
        for c0, fs in ms:
            fs = _merge_scalars(fs)
            key = tuple(sorted(ckey(f) for f in fs))
            if key in monos:
                monos[key][0] += c0
            else:
                monos[key] = [c0, fs]
    return [(c0, fs) for c0, fs in monos.values() if c0 != 0]


def _shared_matrix_parts(terms) -> bool:
    """Whether two of the terms have the same matrix part: else each step of
    :func:`_per_matrix_part` returns the terms as they are (each group is one term), and the
    three of :func:`_rewrite_add` are skipped."""
    seen = set()
    for t in terms:
        k = tuple(t[2])  # (the chain's nodes, as in _term_key: no skey strings for most sums)
        if k in seen:
            return True
        seen.add(k)
    return False


def _per_matrix_part(terms, combine):
    """Terms grouped by their matrix part, in order of first appearance: ``combine(group)``
    returns what replaces a group of two or more terms, or None to keep it.  When no group
    changes, the terms come back as they were, in their order."""
    groups: dict = {}
    for t in terms:
        groups.setdefault(tuple(skey(f) for f in t[2]), []).append(t)
    if all(len(g) == 1 for g in groups.values()):
        return terms
    out, changed = [], False
    for g in groups.values():
        new = combine(g) if len(g) > 1 else None
        if new is None:
            out.extend(g)
        else:
            out.extend(new)
            changed = True
    return out if changed else terms


def _collect_scalar_coefficients(terms):
    r"""Terms with the same matrix part and scalar coefficients that cancel once expanded are
    combined: ``y (1 - s) x + s (y - 1) x -> (y - s) x``.  Only when the result is smaller."""
    return _per_matrix_part(terms, _expanded_coefficients)


def _expanded_coefficients(g):
    """:func:`_collect_scalar_coefficients` for one group (None: keep it)."""
    if not any(isinstance(s, Add) for _, sc, _ in g for s in sc):
        return None
    kept = _expanded_sum((cf, sc) for cf, sc, _ in g)
    if kept is None:
        return None
    chain = g[0][2]
    if not kept:
        return []  # the group cancels
    if len(kept) == 1:
        new = [(kept[0][0], kept[0][1], chain)]
    else:
        coef_sum = Add(tuple(build_product(c0, fs, []) for c0, fs in _bare_last(kept)))
        new = [(Fraction(1), [coef_sum], chain)]
    before = sum(size(build_product(*t)) for t in g)
    after = sum(size(build_product(*t)) for t in new)
    return new if after < before else None


def _bare_last(parts):
    """Coefficient terms ``(coef, scalar factors, ...)`` with a bare number moved last (``a^T x
    + 1``), unless every other term is negative (``1 - s`` stays)."""
    if all(p[0] < 0 for p in parts if p[1]):
        return list(parts)
    return sorted(parts, key=lambda p: not p[1])


def _collect_like_terms(terms):
    r"""Terms with the same matrix part are like terms, whose scalar coefficients add up:
    ``\cos(u) a - \sin(u) a -> (\cos(u) - \sin(u)) a``, ``(a^T x) a + a -> (a^T x + 1) a``
    (a bare number last, unless the others are negative: ``(1 - s) a``), ``2 t x - 2 x ->
    2 (t - 1) x``.  Scalar terms (no matrix part) are left to the sum they are in."""
    return _per_matrix_part(terms, _like_terms)


def _like_terms(g):
    """:func:`_collect_like_terms` for one group (None: keep it)."""
    if not g[0][2]:
        return None
    g = _bare_last(g)
    k = _shared_coefficient([cf for cf, _, _ in g], True)  # 2 t x - 2 x is 2 (t - 1) x
    return [(k, [Add(tuple(build_product(cf / k, sc, []) for cf, sc, _ in g))], g[0][2])]


def _shared_coefficient(coefs, both_signs: bool) -> Fraction:
    """What the coefficients of a sum's terms share, to go in front of it: their one magnitude,
    negative when all are negative (``-2 s - 2 t -> -2 (s + t)``), else -1 when all are negative;
    one magnitude with both signs only when ``both_signs`` (``2 t - 2 -> 2 (t - 1)``); else 1."""
    if coefs and all(cf is COEF_ONE for cf in coefs):
        return COEF_ONE  # (terms without a number in front, the usual case: they share 1)
    magnitudes = {abs(cf) for cf in coefs}
    negative = all(cf < 0 for cf in coefs)
    if len(magnitudes) == 1 and (negative or both_signs or all(cf > 0 for cf in coefs)):
        k = magnitudes.pop()
        return -k if negative else k
    return _shared_sign(coefs)


def _shared_sign(coefs) -> Fraction:
    """-1 when all the coefficients are negative, else 1."""
    return _MINUS_ONE if all(cf < 0 for cf in coefs) else COEF_ONE


_MINUS_ONE = Fraction(-1)


def _over_common_denominator(terms):
    r"""Terms with the same matrix part whose scalar coefficients are fractions with powers of
    the same denominators are put over one denominator when that is shorter:
    ``\frac{1}{1 + t^2} - \frac{2 t^2}{(1 + t^2)^2} -> \frac{1 - t^2}{(1 + t^2)^2}``."""
    return _per_matrix_part(terms, _common_denominator_group)


def _common_denominator_group(g):
    split_terms = []
    lcd: dict = {}
    for cf, sc, ch in g:
        num, den = [], {}
        for f in sc:
            b, k = _power_parts(f)
            w = _whole(k)
            if w is not None and w < 0:
                den[b] = den.get(b, 0) - w
            else:
                num.append(f)
        split_terms.append((cf, num, den))
        for b, e in den.items():
            lcd[b] = max(lcd.get(b, 0), e)
    if not lcd or all(den == lcd for _, _, den in split_terms):
        return None
    kept = _expanded_sum((cf, list(num) + [b for b, e in lcd.items()
                                           for _ in range(e - den.get(b, 0))])
                         for cf, num, den in split_terms)
    if kept is None:
        return None
    chain = g[0][2]
    if not kept:
        return []
    inverse = [Power(b, Const(Fraction(-e))) for b, e in lcd.items()]
    if len(kept) == 1:
        new = [(kept[0][0], list(kept[0][1]) + inverse, chain)]
    else:
        new = [(Fraction(1), [Add(tuple(build_product(c0, fs, []) for c0, fs in kept))] + inverse,
                chain)]
    before = sum(size(build_product(*t)) for t in g)
    after = sum(size(build_product(*t)) for t in new)
    return new if after < before else None


def _merge_diagonals(terms):
    r"""``diag(u) + c diag(v) -> diag(u + c v)`` (one diagonal matrix, as a textbook writes
    the Jacobian of ``\exp(x) \odot \sin(x)``), and likewise ``vec(A) + c vec(B) ->
    vec(A + c B)``; other terms are left as they are."""
    for _, _, ch in terms:
        if len(ch) == 1 and type(ch[0]) in (Diag, Vec):
            break
    else:
        return terms  # (no term is a multiple of one diag or vec: most sums, in one scan)
    terms = _merge_linear(terms, Diag, _rewrite_diag)
    return _merge_linear(terms, Vec, _rewrite_vec)


def _merge_linear(terms, cls, rewrite):
    """The terms that are multiples of one ``cls`` node each (a linear map: diag, vec), with
    arguments of one shape, merged into that map of their sum."""
    idx = [i for i, (_, _, ch) in enumerate(terms) if len(ch) == 1 and isinstance(ch[0], cls)]
    if idx:
        first = terms[idx[0]][2][0].arg.shape
        idx = [i for i in idx if terms[i][2][0].arg.shape == first]
    if len(idx) < 2:
        return terms
    inner = _rewrite(Add(tuple(build_product(terms[i][0], terms[i][1], [terms[i][2][0].arg])
                                   for i in idx)))
    merged = split(rewrite(cls(inner)))
    out = [t for i, t in enumerate(terms) if i not in idx]
    if not is_zero(inner):
        out.insert(idx[0], merged)
    return out


def _flatten_add(e: Add):
    for t in e.args:
        if isinstance(t, Add):
            yield from _flatten_add(t)
        elif not (isinstance(t, Zero) or (isinstance(t, Const) and t.value == 0)):
            yield t


def _shared_run(chains, side) -> int:
    """How many factors all ``chains`` share from the right (``side`` -1) or the left (0)."""
    n = 0
    shortest = min([len(ch) for ch in chains])
    first, others = chains[0], chains[1:]
    while n < shortest:
        k = -1 - n if side == -1 else n
        f = first[k]
        for ch in others:
            g = ch[k]
            # (the same node, or a test of the kept hashes first: most factors differ, and
            # the deep comparison of two frozen dataclasses builds their field tuples)
            if g is not f and (hash(g) != hash(f) or g != f):
                return n
        n += 1
    return n


def _factor_sandwich(terms):
    r"""``P M_1 Q + P M_2 Q -> P (M_1 + M_2) Q`` when all terms share a prefix and a suffix and
    the middles are short, e.g. ``C X M^{-1} (A + A^\top) M^{-1}``."""
    chains = [ch for _, _, ch in terms]
    if len(terms) < 2 or any(len(ch) < 2 for ch in chains):
        return None
    left = _shared_run(chains, 0)
    right = min(_shared_run(chains, -1), min(map(len, chains)) - left)
    if left == 0 and right == 0:
        return None
    middles = [ch[left:len(ch) - right] for ch in chains]
    if any(not m or len(m) > 2 for m in middles):
        return None
    if left + right == 1:
        return None  # one shared factor: the grouping below decides
    inner = _rewrite(Add(tuple(build_product(cf, s, m) for (cf, s, _), m in zip(terms, middles))))
    return _rewrite(Mul(tuple(chains[0][:left] + [inner] + chains[0][len(chains[0]) - right:])))


def _factor_hadamard(terms):
    r"""``P \odot s + Q \odot s -> (P + Q) \odot s`` for terms that are elementwise products."""
    counts: dict = {}
    for i, (cf, sc, ch) in enumerate(terms):
        if len(ch) == 1 and isinstance(ch[0], Hadamard):
            for a in dict.fromkeys(ch[0].args):  # (in order: a set would vary per run)
                counts.setdefault(a, []).append(i)
    best = max(counts.items(), key=lambda kv: len(kv[1]), default=None)
    if best is None or len(best[1]) < 2:
        return None
    f, idx = best
    inner = []
    for i in idx:
        cf, sc, ch = terms[i]
        rest = list(ch[0].args)
        rest.remove(f)
        inner.append(build_product(cf, sc, [rest[0] if len(rest) == 1 else Hadamard(tuple(rest))]))
    group = Hadamard((f, _rewrite(Add(tuple(inner)))))
    out, first = [], min(idx)
    for i in range(len(terms)):
        if i == first:
            out.append(group)
        elif i not in idx:
            out.append(build_product(*terms[i]))
    return out[0] if len(out) == 1 else Add(tuple(out))


def _worth_factoring(chains, bare=None) -> bool:
    r"""Textbook factoring, ``(A + A^T) x`` and ``(A^T C + C^T A) x``: what stays inside the
    parentheses is short; an identity appears only beside single matrices and for a bare
    term (``A x + x -> (A + I) x``, but ``2\lambda W - 2\mu W M`` stays as it is)."""
    rests = [len(ch) - 1 for ch in chains]
    if bare is not None and any(r == 0 and not b for r, b in zip(rests, bare)):
        return False
    if max(rests) > 2:
        return False
    if min(rests) == 0:
        return max(rests) == 1 and sum(r == 0 for r in rests) == 1
    return True


def _factor(terms, shape):
    """Pull out what all terms share (scalars, sign, a left or right factor); else factor the
    largest group sharing a right or left factor.  ``None`` when nothing can be pulled out."""
    # common scalar factors and common coefficient
    common = [s for s in terms[0][1] if all(s in t[1] for t in terms[1:])]
    # one magnitude with both signs only for short terms: 2 W - 2 M is 2 (W - M); longer terms
    # stay as the Cookbook writes them, 2 B X (X^T C X)^{-1} - 2 C X (X^T C X)^{-1} X^T B X ...
    # and a whole number not out of two terms that hold a sum in parentheses themselves:
    # 2 X^T (X w - y) + 2 \lambda w, not 2 (X^T (X w - y) + \lambda w)
    coefs = [t[0] for t in terms]
    common_coef = COEF_ONE
    for cf in coefs:
        if cf is not COEF_ONE:  # (terms without a number in front, the usual case, share 1)
            common_coef = _shared_coefficient(
                coefs, all(len(ch) <= 1 and len(sc) <= 1 for _, sc, ch in terms))
            break
    if common_coef is not COEF_ONE and abs(common_coef) != 1 and len(terms) == 2 and \
            common_coef.denominator == 1 and any(
            isinstance(f, Add) for _, sc, ch in terms for f in (*sc, *ch)):
        common_coef = _shared_sign(coefs)
    if common or (common_coef is not COEF_ONE and common_coef != 1):
        inner = []
        for cf, s, ch in terms:
            rest = list(s)
            for x in common:
                rest.remove(x)
            inner.append(build_product(cf / common_coef, rest, ch))
        return build_product(common_coef, common, [_rewrite(Add(tuple(inner)))])
    if shape == SCALAR:
        return None
    sandwich = _factor_sandwich(terms)
    if sandwich is not None:
        return sandwich
    for _, _, ch in terms:  # (_factor_hadamard needs a term that is an elementwise product)
        if len(ch) == 1 and type(ch[0]) is Hadamard:
            had = _factor_hadamard(terms)
            if had is not None:
                return had
            break
    best = None
    for side in (-1, 0):
        counts: dict = {}
        for i, (_, _, ch) in enumerate(terms):
            if ch and not isinstance(ch[side], Identity):
                counts.setdefault(ch[side], []).append(i)
        for f, idx in counts.items():
            if len(idx) < 2 or (best is not None and len(idx) <= len(best[2])):
                continue  # (every group below is a part of idx: none could be taken)
            # the whole group sharing f, else its parts with the same scalar factors
            # (A x / (x^T x) + A^T x / (x^T x) - 2 (x^T A x) x / (x^T x)^2)
            by_scalars: dict = {}
            for i in idx:
                by_scalars.setdefault(tuple(skey(x) for x in terms[i][1]), []).append(i)
            for group in [idx] + [g for g in by_scalars.values() if len(by_scalars) > 1]:
                if len(group) < 2 or (best is not None and len(group) <= len(best[2])):
                    continue
                bare = [terms[i][0] == 1 and not terms[i][1] for i in group]
                chains = [terms[i][2] for i in group]
                if _worth_factoring(chains, bare):
                    best = (side, f, group, 1)
                    continue
                # a longer shared run whose leftovers are short: (A + A^T) x x^T A^T +
                # (A + A^T) x x^T A is (A + A^T) x x^T (A^T + A)
                run = _shared_run(chains, side)
                if run > 1 and _worth_factoring(
                        [[f] + (ch[:-run] if side == -1 else ch[run:]) for ch in chains], bare):
                    best = (side, f, group, run)
    if best is None:
        return _factor_shared_scalars(terms)
    side, f, idx, run = best
    ch0 = terms[idx[0]][2]
    shared = ch0[-run:] if side == -1 else ch0[:run]
    inner = []
    for i in idx:
        cf, s, ch = terms[i]
        rest = ch[:-run] if side == -1 else ch[run:]
        if not rest:
            n = shared[0].shape[0] if side == -1 else shared[-1].shape[1]
            rest = [] if n == ONE else [Identity(n)]
        if len(rest) == 1 and isinstance(rest[0], Add):
            # a lone sum left over joins the others' terms: I - (I - A) collects to A
            inner.extend(build_product(cf, s, [t]) for t in rest[0].args)
            continue
        inner.append(build_product(cf, s, rest))
    group = _rewrite(Add(tuple(inner)))
    chain = [group] + list(shared) if side == -1 else list(shared) + [group]
    factored = Mul(tuple(chain))
    others = [build_product(*terms[i]) for i in range(len(terms)) if i not in idx]
    if not others:
        return factored
    first = min(idx)
    out = []
    for i in range(len(terms)):
        if i == first:
            out.append(factored)
        elif i not in idx:
            out.append(build_product(*terms[i]))
    return Add(tuple(out))


def _factor_shared_scalars(terms):
    r"""Terms with the same scalar factors share them:
    ``\frac{A}{s} + \frac{A^T}{s} - \frac{c B}{s^2} - \frac{c B^T}{s^2}`` is
    ``\frac{A + A^T}{s} - \frac{c (B + B^T)}{s^2}``.  ``None`` when no two terms share theirs."""
    groups: dict = {}
    for i, (_, sc, _) in enumerate(terms):
        if sc:
            groups.setdefault(tuple(skey(x) for x in sc), []).append(i)
    if all(len(g) == 1 for g in groups.values()):
        return None
    out, done = [], set()
    for i, (cf, sc, ch) in enumerate(terms):
        if i in done:
            continue
        group = groups.get(tuple(skey(x) for x in sc), [i]) if sc else [i]
        if len(group) == 1:
            out.append(build_product(cf, sc, ch))
            continue
        done.update(group)
        inner = _rewrite(Add(tuple(build_product(terms[j][0], [], terms[j][2])
                                       for j in group)))
        out.append(build_product(Fraction(1), list(sc), [inner]))
    return Add(tuple(out))


# --------------------------------------------------------------------------------------------
# the other nodes
# --------------------------------------------------------------------------------------------
def _rewrite_transpose(e: Transpose) -> Expr:
    a = e.arg
    if a.shape == SCALAR:
        return a
    # (the product, the commonest case and so tested first, and the sum below are rewritten
    # through the memo, and a product with no number in front is built without a 1: the next
    # pass meets the result, often the very node built here, and finds it known unchanged
    # instead of rewriting it again)
    if type(a) is Mul:
        coef, scalars, chain = split(a)
        head = [] if coef is COEF_ONE else [Const(coef)]
        return _rewrite(Mul(tuple(head + scalars + [_t(f) for f in reversed(chain)])))
    if isinstance(a, (Identity, Diag)):
        return a
    if isinstance(a, Symbol) and a.symmetric:
        return a
    if isinstance(a, Transpose):
        return a.arg
    if isinstance(a, Zero):
        return Zero(a.cols, a.rows)
    if isinstance(a, Commutation):
        return Commutation(a.n, a.m)
    if isinstance(a, Add):
        return _rewrite(Add(tuple(_t(t) for t in a.args)))
    if isinstance(a, Hadamard):
        return _rewrite_hadamard(Hadamard(tuple(_t(t) for t in a.args)))
    if isinstance(a, HadamardDiv):  # (u / v)^T = u^T / v^T, when that saves more than the
        pushed = _rewrite_hdiv(HadamardDiv(_t(a.num), _t(a.den)))  # outer transpose:
        if _n_transposes(pushed) < _n_transposes(e) - 1:  # (x^T / y^T)^T = x / y
            return pushed
    if isinstance(a, Kron):
        return Kron(tuple(_t(t) for t in a.args))
    if isinstance(a, Inverse):
        return _rewrite_inverse(Inverse(_t(a.arg)))
    if isinstance(a, Power) and not a.base.is_scalar and \
            _rewrite_transpose(Transpose(a.base)) == a.base:
        return a  # the power of a symmetric matrix ((X^T X)^2) is symmetric
    return e


def _rewrite_inverse(e: Inverse) -> Expr:
    a = e.arg
    if isinstance(a, Inverse):
        return a.arg
    if isinstance(a, Identity):
        return a
    if isinstance(a, Const):
        return Const(1 / a.value)
    if a.shape == SCALAR:
        return Power(a, c(-1))
    if isinstance(a, Mul):
        coef, scalars, chain = split(a)
        if coef != 1 or scalars:
            inv_s = [Power(s, c(-1)) for s in scalars]
            return build_product(1 / coef, inv_s, [_rewrite_inverse(Inverse(_chain(chain)))])
    if isinstance(a, Power) and isinstance(a.base, Symbol) and isinstance(a.exponent, Const):
        return _rewrite_power(Power(a.base, Const(-a.exponent.value)))
    if isinstance(a, Transpose) and isinstance(a.arg, Mul):
        pushed = _t(a.arg)
        if pushed == a.arg:
            return Inverse(a.arg)
    return e


def _small_power(base: Fraction, k: Fraction) -> bool:
    """Whether ``base ** k`` has at most about 400 digits above and below (computed exactly
    then, and printed; a larger one is past the floats the check computes in)."""
    bits = max(base.numerator.bit_length(), base.denominator.bit_length())
    return abs(k) * bits <= 1400


def _rewrite_power(e: Power) -> Expr:
    b, k = e.base, e.exponent
    if isinstance(k, Const):
        if k.value == 1:
            return b
        if k.value == 0:
            return c(1) if b.is_scalar else Identity(b.shape[0])
        if isinstance(b, Const) and k.value.denominator == 1:
            if b.value == 0 and k.value < 0 or not _small_power(b.value, k.value):
                return e  # (10^{8080} stays a power: it is past the floats anyway)
            return Const(b.value ** int(k.value))
        if not b.is_scalar and k.value == -1:
            return Inverse(b)
        if isinstance(b, Inverse) and k.value.denominator == 1:
            return Power(b.arg, Const(-k.value))
        if isinstance(b, Power) and isinstance(b.exponent, Const) and b.base.is_scalar and k.value.denominator == 1:
            return Power(b.base, Const(b.exponent.value * k.value))
        if isinstance(b, Func) and b.name == "abs" and k.value.denominator == 1 and \
                k.value % 2 == 0:
            return Power(b.arg, k)  # |s|^2 = s^2
        if isinstance(b, Func) and b.name == "sqrt" and b.is_scalar and \
                k.value.denominator == 1 and abs(k.value) >= 2:
            # (sqrt u)^n = u^(n div 2) (sqrt u)^(n mod 2), true wherever sqrt u is real
            whole, odd = divmod(int(k.value), 2)
            return build_product(Fraction(1), [Power(b.arg, Const(whole))] + ([b] if odd else []), [])
    if b.is_scalar and isinstance(b, Mul):
        # (c u v)^k = c^k u^k v^k for a whole k, a 1 x 1 chain (x^T A x) being one factor
        coef, scalars, chain = split(b)
        factors = scalars + ([_chain(chain)] if chain else [])
        if isinstance(k, Const) and k.value.denominator == 1 and (coef != 1 or len(factors) > 1) \
                and _small_power(coef, k.value):
            return build_product(coef ** int(k.value), [Power(s, k) for s in factors], [])
    return e


def _rewrite_trace(e: Trace) -> Expr:
    a = e.arg
    if a.shape == SCALAR:
        return a
    if isinstance(a, Transpose):
        return Trace(a.arg)
    if isinstance(a, Zero):
        return c(0)
    if isinstance(a, Mul):
        coef, scalars, chain = split(a)
        if coef != 1 or scalars:
            return build_product(coef, scalars, [_rewrite_trace(Trace(_chain(chain)))])
        if chain[0].shape[1] == ONE and chain[-1].shape[0] == ONE:  # tr(x ... y^T) = y^T x ...
            return _rewrite(Mul(tuple(chain[1:] + chain[:1])))
    return e


def _rewrite_hadamard(e: Hadamard) -> Expr:
    coef, scalars, parts = Fraction(1), [], []
    for f in e.args:
        for g in (f.args if isinstance(f, Hadamard) else (f,)):
            if isinstance(g, Ones) or g == ones(e.shape):
                continue
            if isinstance(g, Zero):
                return zero(e.shape)
            gc, gs, gch = split(g)
            if gch and (gc != 1 or gs):
                coef *= gc
                scalars.extend(gs)
                g = _chain(gch)
            parts.append(g)
    parts = _logistic_cancel(parts)
    if not parts:
        return build_product(coef, scalars, [Ones(e.shape[0])]) if e.shape[1] == ONE else e
    if len(parts) > 1 and not _DISTRIBUTING and any(isinstance(p, Add) for p in parts):
        i = next(i for i, p in enumerate(parts) if isinstance(p, Add))
        others = parts[:i] + parts[i + 1:]
        global_trial = _hadamard_distribute(parts[i], others)
        if global_trial is not None:
            return build_product(coef, scalars, [global_trial])
    core = parts[0] if len(parts) == 1 else Hadamard(tuple(parts))
    if coef != 1 or scalars:
        return build_product(coef, scalars, [core])
    return core


def _one_minus(u: Expr):
    """``v`` when ``u`` is ``1 - v`` (ones vector minus v), else None."""
    if isinstance(u, Add) and len(u.args) == 2 and u.args[0] == ones(u.shape):
        cf, sc, ch = split(u.args[1])
        if cf == -1 and not sc and len(ch) == 1:
            return ch[0]
    return None


def _logistic_of(num: Expr, den: Expr):
    """sigma(v) when num / den is exp(v) / (1 + exp(v)), else None."""
    if not (isinstance(num, Func) and num.name == "exp" and isinstance(den, Add)
            and len(den.args) == 2 and num in den.args):
        return None
    other = den.args[0] if den.args[1] == num else den.args[1]
    return Func("sigmoid", num.arg) if other == ones(num.shape) else None


def _logistic_cancel(parts):
    """sigma'(u) / sigma(u) = 1 - sigma(u), sigma'(u) / (1 - sigma(u)) = sigma(u), and
    exp(v) / (1 + exp(v)) = sigma(v) (written (1 / (1 + exp(v))) * exp(v) too); and
    (u / w) o w = u (where w is not zero, as the division says), (u / sqrt(w)) o w = u o sqrt(w)."""
    for i, p in enumerate(parts):
        if isinstance(p, HadamardDiv):
            root = p.den.arg if isinstance(p.den, Func) and p.den.name == "sqrt" else None
            for j, q in enumerate(parts):
                if j != i and q == p.den:
                    rest = [x for k, x in enumerate(parts) if k not in (i, j)]
                    return _logistic_cancel(rest + [p.num])
                if j != i and root is not None and q == root:  # (u / sqrt(w)) o w = u o sqrt(w)
                    rest = [x for k, x in enumerate(parts) if k not in (i, j)]
                    return _logistic_cancel(rest + [p.num, p.den])
    for i, p in enumerate(parts):
        if isinstance(p, HadamardDiv) and p.num == ones(p.shape):
            for j, q in enumerate(parts):  # sinh(u) o (1 / cosh(u)) = tanh(u)
                quotient = _quotient(q, p.den) if j != i else None
                if quotient is not None:
                    rest = [x for k, x in enumerate(parts) if k not in (i, j)]
                    return _logistic_cancel(rest + [quotient])
            for j, q in enumerate(parts):
                sig = _logistic_of(q, p.den) if j != i else None
                if sig is not None:
                    rest = [x for k, x in enumerate(parts) if k not in (i, j)]
                    return _logistic_cancel(rest + [sig])
    for i, p in enumerate(parts):
        if not (isinstance(p, Func) and p.name == "dsigmoid"):
            continue
        sig = Func("sigmoid", p.arg)
        for j, q in enumerate(parts):
            if isinstance(q, HadamardDiv):
                if q.den == sig:
                    other = _rewrite(Add((ones(sig.shape), Mul((Const(-1), sig)))))
                elif _one_minus(q.den) == sig:
                    other = sig
                else:
                    continue
                rest = [x for k, x in enumerate(parts) if k not in (i, j)]
                return _logistic_cancel(rest + [q.num, other])
    return parts


def _expand_hadamards(terms):
    r"""Expand every elementwise product of sums in a sum when that makes it smaller, e.g.
    ``(1 - y) \odot s - y \odot (1 - s) -> s - y``."""
    global _DISTRIBUTING
    before = Add(tuple(build_product(*t) for t in terms))
    expanded = []
    for cf, sc, ch in terms:
        pieces = [build_product(cf, sc, ch)]
        if len(ch) == 1 and isinstance(ch[0], Hadamard):
            pieces = [Const(1)]
            for a in ch[0].args:
                alts = a.args if isinstance(a, Add) else (a,)
                pieces = [Hadamard((p, x)) if not isinstance(p, Const) else x for p in pieces for x in alts]
            pieces = [build_product(cf, sc, [p]) for p in pieces]
        expanded.extend(pieces)
    _DISTRIBUTING = True
    try:
        after = simplify(Add(tuple(expanded)))
    finally:
        _DISTRIBUTING = False
    return after if size(after) < size(before) else None


def _hadamard_distribute(s: Add, others):
    global _DISTRIBUTING
    _DISTRIBUTING = True
    try:
        dist = simplify(Add(tuple(Hadamard(tuple([t] + others)) for t in s.args)))
    finally:
        _DISTRIBUTING = False
    before = size(s) + sum(map(size, others)) + 1
    return dist if size(dist) < before else None


def _rewrite_hdiv(e: HadamardDiv) -> Expr:
    n, d = e.num, e.den
    if isinstance(n, Zero):
        return zero(e.shape)
    if n.is_scalar:
        return _rewrite(Mul((n, Power(d, c(-1)))))
    if n == d:
        return ones(e.shape)
    sig = _logistic_of(n, d)
    if sig is not None:
        return sig
    if isinstance(d, Hadamard) and n in d.args:  # a / (a o b) = 1 / b
        rest = list(d.args)
        rest.remove(n)
        return HadamardDiv(ones(e.shape), rest[0] if len(rest) == 1 else Hadamard(tuple(rest)))
    if isinstance(d, Func) and d.name == "sqrt" and d.arg == n:  # u / sqrt(u) = sqrt(u)
        return d
    if isinstance(n, Func) and n.name == "sqrt" and n.arg == d:  # sqrt(u) / u = 1 / sqrt(u)
        return HadamardDiv(ones(e.shape), n)
    quotient = _quotient(n, d)  # sinh(u) / cosh(u) = tanh(u)
    if quotient is not None:
        return quotient
    if isinstance(n, Vec) and isinstance(d, Vec) and n.arg.shape == d.arg.shape:
        # vec(P) / vec(Q) = vec(P / Q), where P / Q may cancel
        inner = _rewrite_hdiv(HadamardDiv(n.arg, d.arg))
        if not isinstance(inner, HadamardDiv):
            return _rewrite_vec(Vec(inner))
    factors = n.args if isinstance(n, Hadamard) else (n,)
    if any(isinstance(f, Func) and f.name == "dsigmoid" for f in factors):
        # sigma'(u) / sigma(u) = 1 - sigma(u), sigma'(u) / (1 - sigma(u)) = sigma(u), also
        # inside an elementwise product: (sigma'(u) o v) / sigma(u) = (1 - sigma(u)) o v
        parts = list(factors) + [HadamardDiv(ones(e.shape), d)]
        got = _logistic_cancel(parts)
        if got != parts:
            return _rewrite_hadamard(Hadamard(tuple(got))) if len(got) > 1 else got[0]
    if isinstance(n, Hadamard) and d in n.args:
        rest = list(n.args)
        rest.remove(d)
        return rest[0] if len(rest) == 1 else Hadamard(tuple(rest))
    if isinstance(n, HadamardDiv):  # (a / b) / c = a / (b o c)
        return _rewrite_hdiv(HadamardDiv(n.num, _rewrite_hadamard(Hadamard((n.den, d)))))
    coef, scalars, chain = split(n)
    if chain and (coef != 1 or scalars):
        return build_product(coef, scalars, [HadamardDiv(_chain(chain), d)])
    return e


def _rewrite_kron(e: Kron) -> Expr:
    args = []
    for a in e.args:
        args.extend(a.args if isinstance(a, Kron) else (a,))
    if any(is_zero(a) for a in args):  # 0 (x) B = 0, of the product's shape
        return zero(e.shape)
    coef, scalars, core = Fraction(1), [], []
    for a in args:
        ac, as_, ach = split(a)
        coef *= ac
        scalars.extend(as_)
        if ach:
            core.append(_chain(ach))
    merged: list[Expr] = []
    for a in core:
        if merged and isinstance(a, Identity) and isinstance(merged[-1], Identity):
            merged[-1] = Identity(dim_mul(merged[-1].n, a.n))
        elif merged and isinstance(a, Ones) and isinstance(merged[-1], Ones):
            merged[-1] = Ones(dim_mul(merged[-1].n, a.n))  # 1_m (x) 1_n = 1_{mn}
        elif merged and _ones_row(a) and _ones_row(merged[-1]):
            merged[-1] = Transpose(Ones(dim_mul(merged[-1].arg.n, a.arg.n)))
        elif merged and merged[-1].shape[1] == ONE and a.shape[0] == ONE:
            merged[-1] = _rewrite(Mul((merged[-1], a)))
        elif merged and merged[-1].shape[0] == ONE and a.shape[1] == ONE:
            merged[-1] = _rewrite(Mul((a, merged[-1])))
        else:
            merged.append(a)
    body = merged[0] if len(merged) == 1 else (Kron(tuple(merged)) if merged else None)
    return build_product(coef, scalars, [body] if body is not None else [])


def _ones_row(e: Expr) -> bool:
    return isinstance(e, Transpose) and isinstance(e.arg, Ones)


def _rewrite_sum(e: Sum) -> Expr:
    """sum(0) = 0, sum(A^T) = sum(A), and sum(I_n) = sum(1_n) = tr(I_n) (the size n, the one
    form of a size as a number: see :func:`_size_products`)."""
    a = e.arg
    if isinstance(a, Zero):
        return c(0)
    if isinstance(a, Transpose):
        return Sum(a.arg)
    if isinstance(a, Identity) and a.n != ONE:
        return Trace(a)
    if isinstance(a, Ones) and a.n != ONE:
        return Trace(Identity(a.n))
    if isinstance(a, Softmax):
        return c(1)  # the entries of a softmax sum to one
    return e


#: Factors that the chain rules below look for (and 1^T, softmax(u)^T).
_SPECIAL_IN_CHAIN = (Diag, Ones)


def _diag_times_column(chain: list[Expr]) -> list[Expr]:
    """``diag(u) v = u o v`` where ``v``, the rest of the chain, is a column (``W^T (u o A x)``
    as backpropagation writes it; ``diag(u) W`` with a matrix W stays)."""
    for i in range(len(chain) - 1):
        f = chain[i]
        if isinstance(f, Diag) and f.arg.shape[1] == ONE:
            tail = chain[i + 1:]
            rest = tail[0] if len(tail) == 1 else _rewrite(Mul(tuple(tail)))
            if rest.shape[1] == ONE and rest.shape[0] != ONE:
                return chain[:i] + [_rewrite(Hadamard((f.arg, rest)))]
    return chain


def _softmax_sums(chain: list[Expr]) -> list[Expr]:
    """``1^T softmax(u) = softmax(u)^T 1 = 1``: the entries of a softmax sum to one, so each
    such inner product in the chain is dropped."""
    if not any(isinstance(f, Ones) or isinstance(getattr(f, "arg", None), Ones) for f in chain):
        return chain
    out: list[Expr] = []
    for f in chain:
        prev = out[-1] if out else None
        if prev is not None and (
                (isinstance(prev, Transpose) and isinstance(prev.arg, Ones) and isinstance(f, Softmax))
                or (isinstance(f, Ones) and isinstance(prev, Transpose)
                    and isinstance(prev.arg, Softmax))) and f.shape[0] != ONE:
            out.pop()
            continue
        out.append(f)
    return out


def _size_products(chain: list[Expr]) -> tuple[list[Expr], list[Expr]]:
    """``1_n^T 1_n = tr(I_n)``: each inner product of two ones vectors in the chain becomes the
    scalar ``tr(I_n)`` (the one form of the size n as a number, printed ``n``); returns the
    chain without them and those scalars."""
    if not any(isinstance(f, Ones) for f in chain):
        return chain, []
    out: list[Expr] = []
    sizes: list[Expr] = []
    for f in chain:
        prev = out[-1] if out else None
        if (isinstance(f, Ones) and isinstance(prev, Transpose) and isinstance(prev.arg, Ones)
                and prev.arg.n == f.n and f.n != ONE):
            out.pop()
            sizes.append(Trace(Identity(f.n)))
            continue
        out.append(f)
    return out, sizes


#: The memo of :func:`_rewrite`: a node outside distribution trials (the node itself is the key:
#: no tuple to build and hash per lookup), ``(True, node)`` in a trial, and the pairs of
#: :func:`_distributed_pair`; no two kinds of key are ever equal.
_REWRITTEN: dict = {}

#: What :data:`_REWRITTEN` holds for a node that its rewrite leaves as it is (equal to it).
_UNCHANGED = object()


def _rewrite(e: Expr) -> Expr:
    """One rewrite of a node whose children are already rewritten (memoised: it is a pure
    function of the node and of whether a distribution trial is running; the rules rewrite the
    sums and products they build through it too, so that the next pass, meeting such a node
    again, finds it known).  A node that the rules leave equal to itself comes back as the
    very object ``e``, never an equal copy (a rule rebuilding the same product, or the memo's
    entry for an equal node met earlier), so that :func:`_rewrite_pass` sees it unchanged and
    marks it a fixpoint: equal trees are the same value, and every rule reads only values."""
    if _DISTRIBUTING:
        if _REWRITTEN.get(e) is _UNCHANGED:
            return e  # (unchanged outside trials, so inside them too: see _FIXED_ATTR)
        key = (True, e)
    else:
        key = e
    hit = _REWRITTEN.get(key)
    if hit is not None:
        return e if hit is _UNCHANGED else hit
    tick()
    rule = _RULES.get(type(e))
    out = rule(e) if rule is not None else e
    if len(_REWRITTEN) > 200_000:
        _REWRITTEN.clear()
    # (nodes of two classes are never equal: the type test spares the dataclass's __eq__,
    # which answers NotImplemented both ways before Python falls back to identity)
    if out is e or (type(out) is type(e) and out == e):
        _REWRITTEN[key] = _UNCHANGED
        return e
    _REWRITTEN[key] = out
    return out


def _rewrite_det(e: Det) -> Expr:
    a = e.arg
    if isinstance(a, Transpose):
        return Det(a.arg)
    if isinstance(a, Identity):
        return c(1)
    if a.is_scalar:
        return a  # a 1 x 1 matrix is its own determinant: \det(x^\top x) is x^\top x
    if isinstance(a, Inverse):
        return Power(Det(a.arg), c(-1))
    return e


#: Elementwise functions at 0: f(0) = value * 1 (values for a zero vector or matrix argument).
_AT_ZERO = {"exp": 1, "cos": 1, "sin": 0, "tanh": 0, "sinh": 0, "cosh": 1, "tan": 0, "arctan": 0,
            "sqrt": 0, "abs": 0, "sigmoid": Fraction(1, 2), "dsigmoid": Fraction(1, 4), "sech2": 1}


def _rewrite_func(e: Func) -> Expr:
    a = e.arg
    if isinstance(a, Zero) and e.name in _AT_ZERO:
        v = _AT_ZERO[e.name]
        return zero(e.shape) if v == 0 else build_product(Fraction(v), [], [ones(e.shape)])
    if e.name == "log" and isinstance(a, Func) and a.name == "exp":
        return a.arg
    if e.name == "exp" and isinstance(a, Func) and a.name == "log":
        return a.arg  # exp(log u) = u wherever log u is defined
    if e.name == "exp" and isinstance(a, Mul):
        power = _exp_of_a_multiple_of_log(a) if e.is_scalar else _exp_of_k_log(a)
        if power is not None:
            return power
    if e.name in ("abs", "sign") and _nonnegative(a):
        # |u| = u and sign(u) = 1 for u >= 0 (u != 0 where a derivative exists)
        return a if e.name == "abs" else (c(1) if e.is_scalar else ones(e.shape))
    if e.name in ("abs", "sign") and isinstance(a, Func) and a.name == e.name:
        return a  # ||u|| = |u|, sign(sign(u)) = sign(u)
    if e.name in ("abs", "sign") and e.is_scalar and isinstance(a, Mul):
        coef, scalars, chain = split(a)
        if coef != 1 and coef != 0:  # |c u| = |c| |u|, sign(c u) = sign(c) sign(u)
            rest = build_product(Fraction(1), scalars, chain)
            k = abs(coef) if e.name == "abs" else Fraction(1 if coef > 0 else -1)
            return build_product(k, [Func(e.name, rest)], [])
        factors = list(scalars) + ([_chain(chain)] if chain else [])
        if e.name == "sign" and len(factors) > 1 and any(_nonnegative(f) for f in factors):
            # sign(u v) = sign(u) sign(v), and sign(v) = 1 for v >= 0
            kept = [f for f in factors if not _nonnegative(f)]
            return build_product(Fraction(1), [Func("sign", f) for f in kept], [])
    if isinstance(a, Transpose):
        return _t(Func(e.name, a.arg))
    return e


def _exp_of_a_multiple_of_log(a: Mul):
    """``exp(k log u)`` of a scalar is ``u^k`` wherever log u is defined (``a`` is ``k log u``,
    k a product of scalars); None when ``a`` holds no one factor log u."""
    coef, scalars, chain = split(a)
    logs = [f for f in scalars if isinstance(f, Func) and f.name == "log"]
    if chain or len(logs) != 1:
        return None
    rest = [f for f in scalars if f is not logs[0]]
    return _rewrite_power(Power(logs[0].arg, build_product(coef, rest, [])))


def _exp_of_k_log(a: Mul):
    r"""``exp(k log u)`` of a vector or matrix, k a whole number from 2 to 8, is the elementwise
    power ``u^{\circ k}``, and ``exp(log(u) / 2)`` is ``\sqrt{u}`` (None otherwise)."""
    coef, scalars, chain = split(a)
    if scalars or len(chain) != 1 or not (isinstance(chain[0], Func) and chain[0].name == "log"):
        return None
    u = chain[0].arg
    if coef == Fraction(1, 2):
        return Func("sqrt", u)
    if coef.denominator != 1 or not 2 <= coef <= 8:
        return None
    return _rewrite_hadamard(Hadamard((u,) * int(coef)))


def _nonnegative(a: Expr) -> bool:
    """Whether ``a`` is >= 0 wherever it is defined: |u|, a norm, exp, sqrt, sigma, and
    products, powers and positive multiples of those."""
    if isinstance(a, Func):
        return a.name in ("abs", "exp", "sqrt", "sigmoid", "sech2", "cosh")
    if isinstance(a, Norm):
        return True
    if isinstance(a, Const):
        return a.value >= 0
    if isinstance(a, Power):
        k = _whole(a.exponent)
        return (k is not None and k % 2 == 0) or _nonnegative(a.base)
    if isinstance(a, Mul):
        args = [f for f in a.args if not (isinstance(f, Const) and f.value > 0)]
        if len(args) == 2 and isinstance(args[0], Transpose) and args[0].arg == args[1]:
            return True  # u^T u
        return all(_nonnegative(f) for f in args)
    return False


def _rewrite_diag(e: Diag) -> Expr:
    a = e.arg
    if isinstance(a, Ones):
        return Identity(a.n)
    if isinstance(a, Zero):
        return Zero(a.rows, a.rows)
    if isinstance(a, HadamardDiv) and a.num == ones(a.shape) and a.shape[1] == ONE:
        return Inverse(Diag(a.den))  # diag(1 / x) = diag(x)^{-1}
    coef, scalars, chain = split(a)
    if chain and (coef != 1 or scalars):
        return build_product(coef, scalars, [Diag(_chain(chain))])
    return e


def _rewrite_diagpart(e: DiagPart) -> Expr:
    if isinstance(e.arg, Diag):
        return e.arg.arg
    if isinstance(e.arg, Zero):
        return Zero(e.arg.rows, ONE)
    if isinstance(e.arg, Inverse) and isinstance(e.arg.arg, Diag):
        x = e.arg.arg.arg  # the diagonal of diag(x)^{-1} is 1 / x
        return _rewrite_hdiv(HadamardDiv(ones(x.shape), x))
    if isinstance(e.arg, Add) and any(_diagonal_known(t) for t in e.arg.args):
        # diag(diag(x) - A) = x - diag(A): the diagonal of a sum, where a term's is known
        return _rewrite(Add(tuple(_rewrite_diagpart(DiagPart(t)) for t in e.arg.args)))
    coef, scalars, chain = split(e.arg)
    if chain and (coef != 1 or scalars):  # diag(2 M) = 2 diag(M)
        return build_product(coef, scalars, [_rewrite_diagpart(DiagPart(_chain(chain)))])
    for k in range(1, len(chain)):  # diag(u v^T) = u o v, for any column u and row v^T
        u, v = _chain(chain[:k]), _chain(chain[k:])
        if u.shape[1] == ONE and v.shape[0] == ONE and u.shape[0] != ONE:
            return build_product(coef, scalars, [_rewrite_hadamard(Hadamard((u, _t(v))))])
    # diag(diag(u) M) = u o diag(M) and diag(M diag(u)) = diag(M) o u; diag(u)^{-1} is
    # diag(1 / u) there: diag(diag(u)^{-1} M) = diag(M) / u
    if len(chain) > 1 and _diagonal_of(chain[0]) is not None:
        rest = _rewrite_diagpart(DiagPart(_chain(chain[1:])))
        return build_product(coef, scalars, [_times_diagonal(rest, chain[0])])
    if len(chain) > 1 and _diagonal_of(chain[-1]) is not None:
        rest = _rewrite_diagpart(DiagPart(_chain(chain[:-1])))
        return build_product(coef, scalars, [_times_diagonal(rest, chain[-1])])
    if isinstance(e.arg, Identity):
        return Ones(e.arg.n)  # the diagonal of I is the ones vector
    if isinstance(e.arg, Transpose):
        return DiagPart(e.arg.arg)
    return e


def _diagonal_of(f: Expr):
    """The vector u of a diagonal factor ``diag(u)`` or ``diag(u)^{-1}`` (None otherwise)."""
    if isinstance(f, Inverse):
        f = f.arg
    return f.arg if isinstance(f, Diag) and f.arg.shape[1] == ONE else None


def _times_diagonal(v: Expr, f: Expr) -> Expr:
    """The column ``v`` multiplied entrywise by the diagonal of ``f``: ``u o v`` for
    ``diag(u)``, ``v / u`` for ``diag(u)^{-1}``."""
    u = _diagonal_of(f)
    if isinstance(f, Inverse):
        return _rewrite_hdiv(HadamardDiv(v, u))
    return _rewrite_hadamard(Hadamard((u, v)))


def _diagonal_known(t: Expr) -> bool:
    """Whether the diagonal of the term ``t`` simplifies (``diag(x)``, ``I``, ``c diag(x)``)."""
    _, _, chain = split(t)
    return len(chain) == 1 and isinstance(chain[0], (Diag, Identity))


def _rewrite_vec(e: Vec) -> Expr:
    a = e.arg
    if isinstance(a, Zero):
        return zero(e.shape)
    if a.shape[1] == ONE:
        return a
    if a.shape[0] == ONE:  # vec of a row is its transpose
        return _t(a)
    if isinstance(a, Mul) and len(a.args) == 2 and a.args[0].shape[1] == ONE and a.args[1].shape[0] == ONE:
        return _rewrite_kron(Kron((_t(a.args[1]), a.args[0])))  # vec(a b^T) = b (x) a
    coef, scalars, chain = split(a)
    if chain and (coef != 1 or scalars):
        return build_product(coef, scalars, [Vec(_chain(chain))])
    return e


def _rewrite_unit(e: Expr) -> Expr:
    """The 1 x 1 ones vector, identity and zero are the numbers 1, 1 and 0."""
    if isinstance(e, (Ones, Identity)) and e.n == ONE:
        return c(1)
    if isinstance(e, Zero) and e.rows == ONE and e.cols == ONE:
        return c(0)
    return e


#: One rewrite rule per node type; node types without an entry are already canonical.
_RULES = {
    Ones: _rewrite_unit, Identity: _rewrite_unit, Zero: _rewrite_unit,
    Mul: _rewrite_mul, Add: _rewrite_add, Transpose: _rewrite_transpose, Inverse: _rewrite_inverse,
    Power: _rewrite_power, Trace: _rewrite_trace, Hadamard: _rewrite_hadamard,
    HadamardDiv: _rewrite_hdiv, Kron: _rewrite_kron, Det: _rewrite_det, Func: _rewrite_func,
    Diag: _rewrite_diag, DiagPart: _rewrite_diagpart, Vec: _rewrite_vec, Sum: _rewrite_sum,
}


# --------------------------------------------------------------------------------------------
# display form
# --------------------------------------------------------------------------------------------
def prettify(e: Expr) -> Expr:
    r"""Last touches for display, applied after :func:`simplify` (and not undone by it):
    a sum of transposed terms is written as the transpose of a sum (``(s - y)^\top``), and a
    negative coefficient in front of a sum with negative terms flips the sum (``x (s - y)^\top``
    rather than ``-x (y^\top - s^\top)``)."""
    return e.map(_pretty)


def _outer_products(e: Expr) -> bool:
    """Whether ``e`` holds an outer product: a row vector ``a^T`` as a factor of a product
    that is not a scalar (``b a^T``, ``X b a^T``)."""
    return any(isinstance(n, Mul) and n.shape != SCALAR and any(
        isinstance(a, Transpose) and a.arg.shape[1] == ONE and a.arg.shape[0] != ONE
        for a in n.args) for n in e.walk())


def _has_kron(e: Expr) -> bool:
    """Whether ``e`` holds a Kronecker product or a commutation matrix (a loop over the kept
    node list, with type tests: this runs for every sum prettified)."""
    for n in e.nodes():
        t = type(n)
        if t is Kron or t is Commutation:
            return True
    return False


#: The node types :func:`_pretty` rewrites (it returns any other node as it is): a set, looked
#: up by a node's type (the node types have no subclasses).
_PRETTIFIED = frozenset((Add, Inverse, Power, Transpose, Hadamard, Kron, Mul))


def _pretty(e: Expr) -> Expr:
    if type(e) not in _PRETTIFIED:
        return e  # (a symbol, a constant, a function...: most nodes)
    if isinstance(e, Add):
        # (not for Kronecker forms: I_n \otimes X^T + (X^T \otimes I_n) K_{mn} is the textbook
        # Jacobian, the transpose of a sum of Kronecker products is not)
        if e.shape != SCALAR and not _has_kron(e) and _flip_may_save(e):
            flipped = simplify(Add(tuple(_t(t) for t in e.args)))
            # flip when that saves transposes: (s - y)^T, (XA + AX)^T; but an outer product
            # keeps its natural a b^T unless flipping saves two: X^T a b^T + a b^T X^T
            # (the Cookbook's), not (X b a^T + b a^T X)^T
            if is_zero(flipped):
                return zero(e.shape)  # the sum is zero, as its transpose shows
            saved = _n_transposes(e) - (_n_transposes(flipped) + 1)
            # (the walk for an outer product only when it decides: one saved transpose)
            if saved >= 2 or (saved == 1 and not _outer_products(flipped)):
                return Transpose(_positive_first(flipped))
        return _positive_first(e)
    if isinstance(e, Inverse) and isinstance(e.arg, Mul):
        # (B^T X^T A^T)^{-1} reads better as (A X B)^{-T}
        coef, scalars, chain = split(e.arg)
        if coef == 1 and not scalars and sum(isinstance(f, Transpose) for f in chain) > len(chain) / 2:
            back = simplify(Transpose(e.arg))
            return Inverse(Transpose(back))
    if isinstance(e, Inverse) and isinstance(e.arg, Add):
        # (X^T + \lambda I)^{-1} reads better as (X + \lambda I)^{-T}, as the Cookbook writes it
        back = _transposed_if_fewer(e.arg)
        if back is not None:
            return Inverse(Transpose(_positive_first(back)))
    if isinstance(e, Power) and isinstance(e.base, Transpose) and isinstance(e.base.arg, Add) \
            and isinstance(e.exponent, Const) and not e.base.is_scalar:
        # ((X + A)^T)^{-2} (a flipped sum, above) reads as ((X + A)^{-2})^T, as (X^{-2})^T does
        return Transpose(Power(e.base.arg, e.exponent))
    if isinstance(e, Transpose) and isinstance(e.arg, Power) and isinstance(e.arg.base, Mul) \
            and not e.arg.base.is_scalar:
        # ((X^T C^T X)^{-2})^T is (X^T C X)^{-2}: the transpose goes inside when that saves some
        back = _transposed_if_fewer(e.arg.base)
        if back is not None:
            return Power(back, e.arg.exponent)
    if isinstance(e, Transpose) and isinstance(e.arg, Transpose):
        return e.arg.arg
    if isinstance(e, Hadamard) and not all(isinstance(a, Transpose) for a in e.args):
        return _divided(e)
    if (isinstance(e, Hadamard) or (isinstance(e, Kron) and all(a.shape[0] == ONE for a in e.args))) \
            and all(isinstance(a, Transpose) for a in e.args):
        return Transpose(_divided(type(e)(tuple(a.arg for a in e.args))))
    if isinstance(e, Mul):
        for f in e.args:
            if type(f) is Const or type(f) is Mul:
                break
        else:
            return e  # (no number in it, so no negative coefficient: most products, no split)
        coef, scalars, chain = split(e)
        if coef is COEF_ONE or not coef < 0:
            return e  # (both flips below need a negative coefficient)
        adds = [i for i, f in enumerate(chain + scalars) if isinstance(f, Add)]
        if coef < 0 and len(adds) == 1 and not _mentioned_elsewhere(
                (chain + scalars)[adds[0]], [f for f in chain + scalars if not isinstance(f, Add)]):
            items = chain + scalars
            i = adds[0]
            s = items[i]
            neg_terms = sum(1 for t in s.args if split(t)[0] < 0)
            if 2 * neg_terms >= len(s.args):
                flipped = Add(tuple(_negate(t) for t in s.args))
                ordered = tuple(sorted(flipped.args, key=lambda t: split(t)[0] < 0))
                items[i] = Add(ordered)
                new_chain, new_scalars = items[:len(chain)], items[len(chain):]
                return build_product(-coef, new_scalars, new_chain)
        for i, f in enumerate(chain):
            if isinstance(f, Transpose) and isinstance(f.arg, Add) and coef < 0 and not \
                    _mentioned_elsewhere(f.arg, [o for j, o in enumerate(chain + scalars) if j != i]):
                inner = f.arg
                neg_terms = sum(1 for t in inner.args if split(t)[0] < 0)
                if 2 * neg_terms >= len(inner.args):
                    flipped = Add(tuple(sorted((_negate(t) for t in inner.args), key=lambda t: split(t)[0] < 0)))
                    chain = chain[:i] + [Transpose(flipped)] + chain[i + 1:]
                    return build_product(-coef, scalars, chain)
    return e


def _flip_may_save(e: Add) -> bool:
    r"""False when the flipped sum of :func:`_pretty` is known, without simplifying it, to save
    no transpose: every term of ``e`` a (transposed) symbol or a nonzero multiple of one, no two
    of them flipping to the same symbol alike.  The flipped terms are then distinct single
    symbols, which simplify neither collects, cancels nor factors (a shared coefficient moves out
    whole): the flipped sum is nonzero and has one transpose per term on a symbol that stays
    transposed, ``x - \mu`` and ``C + C^\top`` keep theirs.  Likewise a sum with at most one
    transpose: its flipped form costs one transpose more than it has, the outer one, so it saves
    none (a zero flipped sum, the other outcome, would mean ``e^T`` collects to zero where the
    simplified ``e`` did not: checked not to happen on the corpus, the variants and the random
    set).  True otherwise (it is computed)."""
    if _n_transposes(e) <= 1:
        return False  # (20 of the 32 sums the loop below would leave to the flipped copy)
    n_before = n_after = 0
    seen = set()
    for t in e.args:
        if type(t) is Mul:
            if len(t.args) != 2 or type(t.args[0]) is not Const or t.args[0].value == 0:
                return True
            t = t.args[1]
        if type(t) is Symbol:
            name, flipped_t = t.name, _stays_transposed(t)
        elif type(t) is Transpose and type(t.arg) is Symbol:
            name, flipped_t = t.arg.name, False
            n_before += 1
        else:
            return True
        if (name, flipped_t) in seen:
            return True  # (two terms flip to like terms, which the flipped sum collects)
        seen.add((name, flipped_t))
        n_after += flipped_t
    return n_before - (n_after + 1) >= 1


def _transposed_if_fewer(e: Expr) -> Expr | None:
    """``e^T`` simplified, when it has fewer transposes than ``e``; else None."""
    back = simplify(Transpose(e))
    return back if _n_transposes(back) < _n_transposes(e) else None


def _divided(e: Expr) -> Expr:
    """``(1 / w) o y`` reads as ``y / w`` (the two are kept apart while simplifying, where
    ``1 / w`` cancels); anything else as it is."""
    if not isinstance(e, Hadamard):
        return e
    divs = [a for a in e.args if isinstance(a, HadamardDiv) and a.num == ones(a.shape)]
    if len(divs) != 1:
        return e
    rest = tuple(a for a in e.args if a is not divs[0])
    return HadamardDiv(rest[0] if len(rest) == 1 else Hadamard(rest), divs[0].den)


def _negate(t: Expr) -> Expr:
    coef, scalars, chain = split(t)
    return build_product(-coef, scalars, chain)


def _positive_first(e: Expr) -> Expr:
    if not isinstance(e, Add):
        return e
    terms = sorted(e.args, key=_negative)
    if all(a is b for a, b in zip(terms, e.args)):
        return e  # (in order already: the node itself, whose kept shape and hash later stages reuse)
    return Add(tuple(terms))


def _negative(t: Expr) -> bool:
    """Whether the term ``t`` has a negative coefficient."""
    coef = split(t)[0]
    return coef is not COEF_ONE and coef < 0  # (the shared 1 is not compared as a Fraction)


def _mentioned_elsewhere(s: Add, others) -> bool:
    """Whether one of the factors ``others`` contains the sum ``s`` or its transpose (flipping
    one copy of a sum that appears twice, as in (x - mu)(x - mu)^T, would make the two read
    differently)."""
    if not others:
        return False
    st = simplify(Transpose(s))
    return any(n == s or n == st or (isinstance(n, Transpose) and n.arg == s)
               for e in others for n in e.walk())
