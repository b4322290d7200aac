"""The differential of an expression with respect to one variable (the differential method).

Owns the rules ``d(AB) = dA B + A dB``, ``d(X^{-1}) = -X^{-1} dX X^{-1}``,
``d|X| = |X| tr(X^{-1} dX)``, ``d tr(X^k) = k tr(X^{k-1} dX)``, the elementwise chain rule
``d f(U) = f'(U) \\odot dU`` and the rest.  The result is a tree that is linear in the single
:class:`~matderiv.expr.Differential` leaf ``dX``; constant subtrees are shared, not copied.

Every rule that fires is recorded (name and the node it applied to), so the ``steps`` output
can typeset the derivation the engine actually performed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from ..errors import UnsupportedError
from ..deadline import tick
from ..expr import (ONE, Add, Commutation, Const, Det, Diag, DiagPart, Differential,
                    DifferentialOf, Expr, Func, Hadamard, HadamardDiv, Identity, Inverse, Kron,
                    Mul, Norm, Ones, Power, Softmax, Sum, Symbol, Trace, Transpose, Vec, Zero)
from .build import add, c, hadamard, mul, neg, transpose

def logistic_argument(e: Expr) -> Expr | None:
    r"""``u`` when ``e`` is the logistic function of ``u`` written out: ``1/(1 + e^{-u})`` or
    ``e^{u}/(1 + e^{u})`` for a scalar, ``\mathbf{1} \oslash (\mathbf{1} + \exp(-u))`` or
    ``\exp(u) \oslash (\mathbf{1} + \exp(u))`` elementwise; else None."""
    if isinstance(e, Power) and e.base.is_scalar and e.exponent == c(-1):
        num, den = None, e.base
    elif isinstance(e, HadamardDiv):
        num, den = e.num, e.den
    elif isinstance(e, Mul) and len(e.args) == 2 and e.is_scalar:
        a, b = e.args
        if isinstance(a, Power):
            a, b = b, a
        if not (isinstance(b, Power) and b.exponent == c(-1)):
            return None
        num, den = a, b.base
    else:
        return None
    if not (isinstance(den, Add) and len(den.args) == 2):
        return None
    one = c(1) if den.is_scalar else Ones(den.shape[0])
    if den.shape[1] != ONE and not den.is_scalar:
        return None
    exps = [a for a in den.args if isinstance(a, Func) and a.name == "exp"]
    if len(exps) != 1 or one not in den.args:
        return None
    w = exps[0].arg
    if num is None or num == one:  # 1 / (1 + e^{-u})
        if isinstance(w, Mul) and isinstance(w.args[0], Const) and w.args[0].value < 0:
            return neg(w)
        return None
    return w if num == exps[0] else None  # e^{u} / (1 + e^{u})


def with_logistic(e: Expr) -> Expr:
    """``e`` with every written-out logistic function replaced by ``sigma(u)`` (the same
    function), so that derivatives come out in terms of ``sigma`` and ``sigma'`` as textbooks
    write them; ``e`` itself when there is none."""
    if not _has_exp(e):
        return e  # (every written-out logistic function holds an exp: none to replace)

    def sub(n: Expr) -> Expr:
        u = logistic_argument(n)
        return n if u is None else Func("sigmoid", u)
    return e.map(sub)


def _has_exp(e: Expr) -> bool:
    """Whether ``e`` holds an exponential ``exp(u)`` (``e^{u}`` is parsed as one): the
    denominator of every form :func:`logistic_argument` recognises does, so a tree without
    one is its own :func:`with_logistic` (the rewrite would rebuild nothing)."""
    for n in e.walk():
        if type(n) is Func and n.name == "exp":
            return True
    return False


#: Largest whole exponent of a matrix power expanded by the product rule outside a trace.
MAX_EXPANDED_POWER = 12


def _inner(u: Expr, du: Expr, frobenius: bool = False) -> Expr:
    """The inner product of ``u`` and its differential ``du`` (1 x 1): ``u^T du`` for a column,
    ``du u^T`` for a row (``u^T du`` would be a matrix), ``tr(U^T dU)`` for a matrix."""
    if frobenius:
        return Trace(mul(Transpose(u), du))
    if u.shape[0] == ONE and u.shape[1] != ONE:
        return mul(du, Transpose(u))
    return mul(Transpose(u), du)


@dataclass
class Differentiator:
    """Computes ``d(e)`` for one variable; ``rules`` logs (rule name, node, level) as they fire.

    ``levels`` limits how many nested nonlinear rules are applied: deeper differentials stay
    unexpanded as ``DifferentialOf(U)``.  Running with levels 1, 2, ... gives the stages of a
    derivation, one rule layer per line; linear operations (sums, transposes, traces, products
    with one varying factor) never use up a level.
    """

    var: Symbol
    levels: int | None = None
    rules: list = field(default_factory=list)
    _memo: dict = field(default_factory=dict)
    _depth: int = 0
    #: id(node) -> (node, whether it contains the variable): :meth:`_depends`'s memo
    _dep: dict = field(default_factory=dict)

    def __call__(self, e: Expr) -> Expr | None:
        """``d(e)``, or ``None`` when ``e`` does not depend on the variable."""
        tick()
        # (without levels the depth plays no part: the node's id alone, no tuple made)
        key = id(e) if self.levels is None else (id(e), self._depth)
        hit = self._memo.get(key)
        if hit is not None:
            return hit[1]
        out = self._d(e)
        self._memo[key] = (e, out)  # keep e alive so its id stays unique
        return out

    def _log(self, rule: str, node: Expr):
        self.rules.append((rule, node, self._depth))

    def _is_var(self, s: Symbol) -> bool:
        """``s == self.var``, another symbol told apart by its name first (the dataclass
        equality builds and compares the tuples of all six fields)."""
        var = self.var
        return s is var or (s.name == var.name and s == var)

    def _depends(self, e: Expr) -> bool:
        """Whether ``e`` contains the variable (memoised: trees share subtrees)."""
        memo = self._dep
        hit = memo.get(id(e))
        if hit is not None:
            return hit[1]
        if isinstance(e, Symbol):
            out = self._is_var(e)
        elif isinstance(e, Func) and e.name == "sign":
            out = False  # piecewise constant: d sign(u) = 0 wherever the derivative exists
        else:
            out = False
            for kid in e.children():
                if self._depends(kid):
                    out = True
                    break
        memo[id(e)] = (e, out)
        return out

    def _consumes(self, e: Expr) -> bool:
        if isinstance(e, (Mul, Hadamard, Kron)):
            varying = 0  # (more than one varying factor: the count stops at two)
            for f in e.args:
                if self._depends(f):
                    varying += 1
                    if varying > 1:
                        return True
            return False
        if isinstance(e, Trace):
            return isinstance(e.arg, Power) and not e.arg.base.is_scalar
        return isinstance(e, (Inverse, Det, Softmax, Norm, Power, HadamardDiv, Func))

    def _d(self, e: Expr) -> Expr | None:
        if isinstance(e, Symbol):
            return Differential(e) if self._is_var(e) else None
        if isinstance(e, (Const, Identity, Zero, Ones, Commutation)):
            return None
        if not self._depends(e):
            return None
        rule = _RULES.get(type(e))
        if rule is None:  # pragma: no cover - every node type has a rule
            raise UnsupportedError(f"differentiating {type(e).__name__} is not supported yet")
        if self._consumes(e):
            if self.levels is not None and self._depth >= self.levels:
                return DifferentialOf(e)
            self._depth += 1
            try:
                return rule(self, e)
            finally:
                self._depth -= 1
        return rule(self, e)

    # --- linear and multilinear operators ------------------------------------------------------
    def _d_Add(self, e: Add):
        parts = [self(t) for t in e.args]
        return add(*parts) if any(p is not None for p in parts) else None

    def _product_rule(self, e, build, rule):
        terms = []
        for i, f in enumerate(e.args):
            df = self(f)
            if df is None:
                continue
            terms.append(build(*e.args[:i], df, *e.args[i + 1:]))
        if len(terms) > 1:
            self._log(rule, e)
        return add(*terms) if terms else None  # every factor constant (sign(u) has d = 0)

    def _d_Mul(self, e: Mul):
        return self._product_rule(e, mul, "product")

    def _d_Hadamard(self, e: Hadamard):
        return self._product_rule(e, hadamard, "hadamard")

    def _split_kron(self, e: Expr, kron: Kron, part, rule: str):
        """``d e`` where ``e`` is ``part`` of the Kronecker product ``kron`` and ``part`` is
        multiplicative over it (``tr(A (x) B) = tr(A) tr(B)``, likewise sum and norms): the
        differential of the product of the parts of its factors."""
        self._log(rule, e)
        return self(mul(*[part(a) for a in kron.args]))

    def _d_Kron(self, e: Kron):
        return self._product_rule(e, lambda *a: Kron(tuple(a)), "kronecker")

    def _d_Transpose(self, e: Transpose):
        self._log("transpose", e)
        return transpose(self(e.arg))

    def _d_Trace(self, e: Trace):
        u = e.arg
        if isinstance(u, Power) and not u.base.is_scalar and not self._depends(u.exponent):
            # d tr(U^k) = k tr(U^{k-1} dU): holds for every whole k, symbolic or not.
            du = self(u.base)
            self._log("trace-power", e)
            k = u.exponent
            km1 = c(k.value - 1) if isinstance(k, Const) else add(k, c(-1))
            return mul(k, Trace(mul(_power(u.base, km1), du)))
        if isinstance(u, Kron) and all(a.is_square for a in u.args):
            return self._split_kron(e, u, Trace, "trace-kronecker")  # square factors only
        self._log("trace", e)
        return Trace(self(u))

    def _d_Diag(self, e: Diag):
        return Diag(self(e.arg))

    def _d_DiagPart(self, e: DiagPart):
        return DiagPart(self(e.arg))

    def _d_Vec(self, e: Vec):
        return Vec(self(e.arg))

    def _d_Sum(self, e: Sum):
        if isinstance(e.arg, Kron):
            return self._split_kron(e, e.arg, Sum, "sum-kronecker")
        return Sum(self(e.arg))

    # --- nonlinear matrix functions -------------------------------------------------------------
    def _d_Inverse(self, e: Inverse):
        self._log("inverse", e)
        return neg(mul(e, self(e.arg), e))

    def _d_Det(self, e: Det):
        u = e.arg
        if isinstance(u, Power) and not u.base.is_scalar and not self._depends(u.exponent):
            # d det(U^k) = d det(U)^k = k det(U^k) tr(U^{-1} dU): for every whole k, symbolic
            # or not (the Matrix Reference Manual's d/dX det(X^k) = k det(X^k) X^{-T})
            self._log("determinant-power", e)
            return mul(u.exponent, e, Trace(mul(Inverse(u.base), self(u.base))))
        self._log("determinant", e)
        return mul(e, Trace(mul(Inverse(u), self(u))))

    def _d_Softmax(self, e: Softmax):
        self._log("softmax", e)
        s = e
        return mul(add(Diag(s), neg(mul(s, Transpose(s)))), self(e.arg))

    def _d_Norm(self, e: Norm):
        u = e.arg
        if isinstance(u, Kron):  # (Frobenius, Euclidean, spectral and 1-norms alike)
            return self._split_kron(e, u, lambda a: Norm(a, e.kind), "norm-kronecker")
        du = self(u)
        self._log("norm", e)
        if e.kind == "1":  # d ||u||_1 = sign(u)^T du (where no entry of u is 0)
            return _inner(Func("sign", u), du)
        return mul(Power(e, c(-1)), _inner(u, du, e.kind == "F"))  # d ||u|| = u^T du / ||u||

    def _d_Power(self, e: Power):
        b, k = e.base, e.exponent
        if b.is_scalar:
            return self._d_scalar_power(e)
        if self._depends(k):
            raise UnsupportedError("a matrix power whose exponent depends on the variable is not supported")
        if isinstance(k, Const) and k.value.denominator != 1:
            raise UnsupportedError(
                "fractional powers and roots of a vector or matrix are not supported",
                hint=r"a matrix power needs a whole-number exponent; \sqrt{X} (elementwise square "
                     "root) is the one root of a matrix that is supported")
        if not isinstance(k, Const):
            raise UnsupportedError(
                "the derivative of a matrix power with a symbolic exponent is not supported "
                "except in tr(X^k), det(X^k) and log det(X^k)")
        n = int(k.value)
        if n < 0:
            return self(Power(Inverse(b), c(-n)))
        if n == 0:
            return None
        if n > MAX_EXPANDED_POWER:
            raise UnsupportedError(
                f"the derivative of X^{n} outside a trace has {n} terms; powers above "
                f"{MAX_EXPANDED_POWER} are not supported (tr(X^k) is)")
        db = self(b)
        self._log("power", e)
        return add(*[mul(_power_or_none(b, i), db, _power_or_none(b, n - 1 - i)) for i in range(n)])

    def _d_scalar_power(self, e: Power):
        b, k = e.base, e.exponent
        if isinstance(b, Norm) and isinstance(b.arg, Kron) and not self._depends(k):
            # ||A (x) B||^k = ||A||^k ||B||^k: each factor keeps its own norm rule
            return self._split_kron(e, b.arg, lambda a: Power(Norm(a, b.kind), k),
                                    "norm-kronecker")
        if isinstance(b, Norm) and b.kind != "1" and not isinstance(b.arg, Kron) \
                and isinstance(k, Const) and self._depends(b):
            # d ||u||^c = c ||u||^{c-2} u^T du (and tr(U^T dU) for Frobenius): no ||u||/||u||
            # (and no norm rule taken on the way: the steps named it a second time)
            self._log("norm-power", e)
            u, du = b.arg, self(b.arg)
            return mul(k, _power(b, c(k.value - 2)), _inner(u, du, b.kind == "F"))
        db, dk = self(b), self(k)
        terms = []
        self._log("scalar-power", e)
        if db is not None:
            if isinstance(k, Const):
                terms.append(mul(k, _power(b, c(k.value - 1)), db))
            else:
                terms.append(mul(k, _power(b, add(k, c(-1))), db))
        if dk is not None:
            terms.append(mul(e, Func("log", b), dk))
        return add(*terms)

    def _d_Func(self, e: Func):
        u = e.arg
        if e.name == "log" and isinstance(u, Det):
            w = u.arg
            if isinstance(w, Power) and not w.base.is_scalar and not self._depends(w.exponent):
                # d log|U^k| = k tr(U^{-1} dU), for every whole k
                self._log("log-determinant-power", e)
                return mul(w.exponent, Trace(mul(Inverse(w.base), self(w.base))))
            # d log|U| = tr(U^{-1} dU)
            self._log("log-determinant", e)
            return Trace(mul(Inverse(w), self(w)))
        du = self(u)
        scalar = u.is_scalar
        self._log(("chain:" if scalar else "elementwise:") + e.name, e)
        name = e.name
        if name == "log":
            return mul(Power(u, c(-1)), du) if scalar else HadamardDiv(du, u)
        if name == "sqrt":
            return (mul(c(Fraction(1, 2)), Power(e, c(-1)), du) if scalar
                    else mul(c(Fraction(1, 2)), HadamardDiv(du, e)))
        deriv = _elementwise_derivative(name, u)
        if deriv is None:
            return None
        return mul(deriv, du) if scalar else hadamard(deriv, du)

    def _d_HadamardDiv(self, e: HadamardDiv):
        dn, dd = self(e.num), self(e.den)
        terms = []
        if dn is not None:
            terms.append(HadamardDiv(dn, e.den))
        if dd is not None:
            terms.append(neg(HadamardDiv(hadamard(e.num, dd), hadamard(e.den, e.den))))
        return add(*terms)


#: node type -> its rule, the method ``Differentiator._d_<type name>`` (a table: the name is
#: not built and looked up again for every node)
_RULES: dict = {cls: getattr(Differentiator, "_d_" + cls.__name__)
                for cls in (Add, Mul, Hadamard, Kron, Transpose, Trace, Diag, DiagPart, Vec, Sum,
                            Inverse, Det, Softmax, Norm, Power, Func, HadamardDiv)}


def _power(b: Expr, k: Expr) -> Expr:
    if isinstance(k, Const):
        if k.value == 0:
            return c(1) if b.is_scalar else Identity(b.shape[0])
        if k.value == 1:
            return b
    return Power(b, k)


def _power_or_none(b: Expr, k: int) -> Expr | None:
    """``b^k`` as a factor of a product; ``None`` (no factor) for k = 0."""
    return None if k == 0 else _power(b, c(k))


def _ones_like(u: Expr) -> Expr:
    r, col = u.shape
    if u.is_scalar:
        return c(1)
    if col == ONE:
        return Ones(r)
    return mul(Ones(r), Transpose(Ones(col)))


def _elementwise_derivative(name: str, u: Expr) -> Expr | None:
    """f'(u) for the elementwise function ``name`` (None when f' is zero almost everywhere)."""
    if name == "exp":
        return Func("exp", u)
    if name == "sin":
        return Func("cos", u)
    if name == "cos":
        return neg(Func("sin", u))
    if name == "tanh":
        return Func("sech2", u)
    if name == "sinh":
        return Func("cosh", u)
    if name == "cosh":
        return Func("sinh", u)
    if name == "tan":  # 1 / cos^2(u)
        cos = Func("cos", u)
        return Power(cos, c(-2)) if u.is_scalar else HadamardDiv(_ones_like(u), hadamard(cos, cos))
    if name == "arctan":  # 1 / (1 + u^2)
        if u.is_scalar:
            return Power(add(c(1), Power(u, c(2))), c(-1))
        ones = _ones_like(u)
        return HadamardDiv(ones, add(ones, hadamard(u, u)))
    if name == "sigmoid":
        return Func("dsigmoid", u)
    if name == "dsigmoid":  # sigma'' = sigma' (1 - 2 sigma)
        return hadamard(Func("dsigmoid", u), add(_ones_like(u), mul(c(-2), Func("sigmoid", u))))
    if name == "sech2":  # (sech^2)' = -2 sech^2 tanh
        return mul(c(-2), hadamard(Func("sech2", u), Func("tanh", u)))
    if name == "abs":
        return Func("sign", u)
    if name == "sign":
        return None
    raise UnsupportedError(f"the derivative of the function {name} is not supported")
