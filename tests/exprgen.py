r"""Random well-typed expression *strings* (LaTeX and ASCII spellings) with an independent NumPy
meaning, for the property tests in ``test_properties.py``.

Every generated expression is a :class:`Gen`: its source text, a NumPy function computing its
value from an environment of concrete values (written here, independently of the engine), its
concrete shape and the symbols it uses.  Generation is by target shape through a typed grammar
(:func:`scalar`, :func:`vector`, :func:`rowvec`, :func:`matrix`), so every string is well typed
by construction.

Vocabulary (the :class:`Vocab` drawn per example)
-------------------------------------------------
* ``t``: a scalar (declared ``scalar=["t"]``); positive values in [0.5, 1.5].
* ``x``, ``a``, ``b``: vectors of length n = 3.
* ``A``, ``B``: n x n, ``C``: p x n (p = 2).  ``A`` is sometimes declared symmetric.
* ``X``: the matrix variable, n x n or n x p (drawn per example).
* ``I``, ``\mathbf{1}``: identity and ones (only where another operand fixes their size).

Square matrices ``A``, ``B`` and a square ``X`` get values ``2I + 0.3 N`` with a positive
definite symmetric part, so that every "well-conditioned" matrix the grammar builds
(:func:`wellcond`: sums and positive multiples of such matrices, transposes, inverses,
products of them, ``I + M^\top M``) has a positive determinant and may stand under ``\det``,
``\log\det`` and an inverse.  ``\log`` and ``\sqrt`` only ever see positive arguments
(``pos_*``).

Left out on purpose (each marked where it happens): a bare ``C C^\top`` under an inverse or
determinant (``I + C C^\top`` instead: the test's own values may make it singular), ``\sigma`` followed by ``[`` (that is the symbol sigma times a
bracket, as SPEC 1.1 says), and ``\log\det(M)`` directly before a postfix operator (that is
``\log(\det(M)^k)``).

Precedence levels of the generated text follow the parser's (loosest first): ``+ -``; unary
minus; ``\odot``; products (juxtaposition, ``\cdot``, ``*``, ``/``); postfix; atoms.  An
operand is bracketed (``()``, ``\left( \right)``, ``[]``, ``\big( \big)``, ``\{ \}``) when it
binds more loosely than its context needs, and a 1 x 1 product used as a factor is always
bracketed (``(x^\top a) A``), as a person would write it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st

N, P = 3, 2
SIZES = {"1": 1, "n": N, "p": P}

ADD, NEG, HAD, MUL, POST, ATOM = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class Gen:
    text: str
    fn: Callable[[dict], object] = field(compare=False, repr=False)
    shape: tuple            # (rows, cols), each "1", "n" or "p"
    prec: int
    syms: frozenset = frozenset()
    flags: frozenset = frozenset()   # "pd": symmetric part positive definite; "detpos":
    #                                  det > 0; "pos": every entry positive; "bars": the text
    #                                  holds a | or \| (must be bracketed inside a norm/bar);
    #                                  "lead": the text starts with a number (never put a
    #                                  number right before it); "chain": a plain product of
    #                                  non-scalars (may stand unbracketed right of a product);
    #                                  "div": the text ends with `/ s` (a factor written
    #                                  right after it would make the division ambiguous)

    @property
    def is_scalar(self) -> bool:
        return self.shape == ("1", "1")


@dataclass(frozen=True)
class Vocab:
    var: str                 # "x", "X" or "t"
    xshape: tuple            # shape of X: ("n", "n") or ("n", "p")
    spell: dict              # symbol -> spelling in the text (bold variants)
    sym_a: bool              # A declared symmetric


def _flags(*gs, keep=()):
    out = set()
    for g in gs:
        if "bars" in g.flags:
            out.add("bars")
    out.update(keep)
    return frozenset(out)


def _syms(*gs):
    s = set()
    for g in gs:
        s |= g.syms
    return frozenset(s)


# ---------------------------------------------------------------------------------------------
# NumPy meaning (independent of the engine)
# ---------------------------------------------------------------------------------------------
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softmax(v):
    e = np.exp(v - np.max(v))
    return e / np.sum(e)


def _s(v) -> float:
    """A Python float from a 1 x 1 array or a float."""
    return float(np.asarray(v).reshape(-1)[0])


ELEMENTWISE = {"exp": np.exp, "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "sigmoid": _sigmoid,
               "log": np.log, "sqrt": np.sqrt, "sinh": np.sinh, "cosh": np.cosh,
               "arctan": np.arctan}


# ---------------------------------------------------------------------------------------------
# Spelling helpers
# ---------------------------------------------------------------------------------------------
BRACKETS = [("(", ")"), (r"\left(", r"\right)"), ("[", "]"), (r"\big(", r"\big)"),
            (r"\{", r"\}"), (r"\left[", r"\right]"), (r"\Big(", r"\Big)")]
TRANSPOSES = [r"^\top", "^T", "^{T}", r"^{\top}", "'", r"^{\mathsf T}", r"^\intercal",
              r"^{\prime}"]
PRODUCTS = [" ", " ", " ", r" \cdot ", " * "]
HADAMARDS = [r" \odot ", r" \odot ", r" \circ ", " .* "]
TRACES = [r"\operatorname{tr}", r"\mathrm{tr}", r"\text{tr}", r"\operatorname{Tr}", "tr"]
#: The functions the generators apply (tan is left out: its poles would make the test's own
#: finite differences flaky).
ELEMENTWISE_DRAWN = ["exp", "sin", "cos", "tanh", "sigmoid", "sinh", "cosh", "arctan"]
FUNC_SPELL = {
    "exp": [r"\exp", "exp"], "sin": [r"\sin", "sin"], "cos": [r"\cos"], "tanh": [r"\tanh", "tanh"],
    "sigmoid": [r"\sigma", r"\operatorname{sigmoid}", "sigmoid"], "log": [r"\log", r"\ln", "log"],
    "sinh": [r"\sinh", "sinh"], "cosh": [r"\cosh"], "arctan": [r"\arctan", "arctan"],
}
COEFS = [("2", 2.0), ("3", 3.0), ("0.5", 0.5), (r"\frac{1}{2}", 0.5), (r"\tfrac12", 0.5),
         (r"\frac{3}{2}", 1.5)]


def bracket(draw, g: Gen) -> Gen:
    o, c = draw(st.sampled_from(BRACKETS))
    return Gen(f"{o}{g.text}{c}", g.fn, g.shape, ATOM, g.syms, g.flags - {"lead", "chain", "div"})


def need(draw, g: Gen, prec: int) -> Gen:
    return g if g.prec >= prec else bracket(draw, g)


def call_args(draw, g: Gen, round_only: bool = False) -> str:
    """``(g)`` in one of the accepted bracket spellings (sigma takes round ones only)."""
    o, c = draw(st.sampled_from([BRACKETS[i] for i in ((0, 1, 3) if round_only else range(4))]))
    return f"{o}{g.text}{c}"


def in_norm(draw, g: Gen) -> Gen:
    """An operand that may stand inside ``\\|...\\|`` or ``|...|`` without ambiguity."""
    return bracket(draw, g) if "bars" in g.flags else g


# ---------------------------------------------------------------------------------------------
# Generic constructors
# ---------------------------------------------------------------------------------------------
def transpose(draw, g: Gen) -> Gen:
    base = need(draw, g, ATOM)
    r, c = g.shape
    fn = base.fn
    return Gen(base.text + draw(st.sampled_from(TRANSPOSES)),
               lambda e: fn(e).T, (c, r), POST, g.syms,
               _flags(g, keep={"pd", "detpos", "pos"} & g.flags))


def product(draw, f: Gen, g: Gen) -> Gen:
    """The matrix product f g (f: r x k, g: k x c), or a scaling when one side is 1 x 1."""
    assert f.shape[1] == g.shape[0] or f.is_scalar or g.is_scalar, (f, g)
    # a scalar factor that is not an atom is bracketed: (x^T a) A, A (x^T a)
    if f.is_scalar and not g.is_scalar:
        lf = need(draw, f, POST)
    else:
        lf = need(draw, f, MUL)
        if lf.is_scalar and lf.prec == MUL:
            lf = bracket(draw, lf)
    if g.prec >= POST or ("chain" in g.flags and not f.is_scalar and not g.is_scalar
                          and draw(st.booleans())):
        rg = g
    else:
        rg = bracket(draw, g)
    if "lead" in rg.flags:
        rg = bracket(draw, rg)
    op = draw(st.sampled_from(PRODUCTS))
    if "div" in lf.flags and not op.strip():
        # `g / s h` is refused as ambiguous (by s alone, or by s h?): an explicit operator
        op = draw(st.sampled_from([r" \cdot ", " * "]))
    ff, gf = lf.fn, rg.fn
    if f.is_scalar and g.is_scalar:
        fn, shape = (lambda e: _s(ff(e)) * _s(gf(e))), ("1", "1")
    elif f.is_scalar:
        fn, shape = (lambda e: _s(ff(e)) * gf(e)), g.shape
    elif g.is_scalar:
        fn, shape = (lambda e: ff(e) * _s(gf(e))), f.shape
    else:
        fn, shape = (lambda e: ff(e) @ gf(e)), (f.shape[0], g.shape[1])
        if shape == ("1", "1"):
            fn = (lambda e, h=fn: _s(h(e)))
    flags = set() if f.is_scalar or g.is_scalar else {"chain"}
    if "detpos" in f.flags and "detpos" in g.flags and shape[0] == shape[1]:
        flags.add("detpos")
    if "lead" in lf.flags:
        flags.add("lead")
    if "div" in rg.flags:  # the product's text ends as its right factor's does
        flags.add("div")
    return Gen(f"{lf.text}{op}{rg.text}", fn, shape, MUL, _syms(f, g), _flags(f, g, keep=flags))


def coef(draw, g: Gen) -> Gen:
    ctext, cval = draw(st.sampled_from(COEFS))
    base = need(draw, g, MUL)
    if "lead" in base.flags or (base.is_scalar and base.prec == MUL and draw(st.booleans())):
        base = bracket(draw, base)
    op = draw(st.sampled_from([" ", " ", r" \cdot ", " * "]))
    fn = base.fn
    flags = {"pd", "detpos", "pos"} & g.flags | {"lead"} | ({"div"} & base.flags)
    return Gen(f"{ctext}{op}{base.text}", lambda e: cval * fn(e), g.shape, MUL, g.syms,
               _flags(g, keep=flags))


def add(draw, f: Gen, g: Gen, minus: bool = False) -> Gen:
    lf = need(draw, f, NEG)
    rg = need(draw, g, HAD)
    ff, gf = lf.fn, rg.fn
    if minus:
        fn = lambda e: ff(e) - gf(e)  # noqa: E731
        keep = set()
    else:
        fn = lambda e: ff(e) + gf(e)  # noqa: E731
        keep = {"pd", "pos"} & f.flags & g.flags
        if "pd" in keep:
            keep.add("detpos")
    return Gen(f"{lf.text} {'-' if minus else '+'} {rg.text}", fn, f.shape, ADD,
               _syms(f, g), _flags(f, g, keep=keep))


def neg(draw, g: Gen) -> Gen:
    base = need(draw, g, HAD)
    fn = base.fn
    return Gen(f"-{base.text}", lambda e: -fn(e), g.shape, NEG, g.syms, _flags(g))


def hadamard(draw, f: Gen, g: Gen) -> Gen:
    lf, rg = need(draw, f, MUL), need(draw, g, MUL)
    ff, gf = lf.fn, rg.fn
    keep = {"pos"} & f.flags & g.flags
    return Gen(f"{lf.text}{draw(st.sampled_from(HADAMARDS))}{rg.text}",
               lambda e: ff(e) * gf(e), f.shape, HAD, _syms(f, g), _flags(f, g, keep=keep))


def kron(draw, f: Gen, g: Gen) -> Gen:
    r"""``F \otimes G`` (same precedence level as the Hadamard product).  Its shape is a product
    of sizes, which the other builders do not take: it is only used inside a trace or a sum."""
    lf, rg = need(draw, f, MUL), need(draw, g, MUL)
    ff, gf = lf.fn, rg.fn
    return Gen(f"{lf.text} \\otimes {rg.text}", lambda e: np.kron(ff(e), gf(e)), ("?", "?"),
               HAD, _syms(f, g), _flags(f, g))


def divide(draw, g: Gen, s: Gen) -> Gen:
    """g / s with s a positive scalar."""
    gf, sf = g.fn, s.fn
    # (a NumPy float: a divisor that underflows to 0, sigma of a large negative number, gives
    # inf, which the properties skip as a huge value, not a ZeroDivisionError in the reference)
    fn = lambda e: gf(e) / np.float64(_s(sf(e)))  # noqa: E731
    keep = {"pos"} & g.flags
    if draw(st.booleans()):
        return Gen(rf"\frac{{{g.text}}}{{{s.text}}}", fn, g.shape, ATOM, _syms(g, s),
                   _flags(g, s, keep=keep))
    lg = need(draw, g, MUL)
    if lg.is_scalar and lg.prec == MUL:
        lg = bracket(draw, lg)
    rs = need(draw, s, POST)
    return Gen(f"{lg.text} / {rs.text}", fn, g.shape, MUL, _syms(g, s),
               _flags(g, s, keep=keep | ({"lead"} & lg.flags) | {"div"}))


def func(draw, name: str, g: Gen) -> Gen:
    f = ELEMENTWISE[name]
    gf = g.fn
    spell = draw(st.sampled_from(FUNC_SPELL.get(name, [])))
    if g.is_scalar:
        fn = lambda e: float(f(_s(gf(e))))  # noqa: E731
    else:
        fn = lambda e: f(gf(e))  # noqa: E731
    keep = {"pos"} if name in ("exp", "sigmoid") or (name == "sqrt") else set()
    if name == "exp" and g.is_scalar and draw(st.integers(0, 3)) == 0:
        e_ = draw(st.sampled_from(["e", r"\mathrm{e}"]))
        return Gen(f"{e_}^{{{g.text}}}", fn, g.shape, POST, g.syms, _flags(g, keep=keep))
    args = call_args(draw, g, round_only=spell == r"\sigma")
    return Gen(spell + args, fn, g.shape, ATOM, g.syms, _flags(g, keep=keep))


def sqrt(draw, g: Gen) -> Gen:
    gf = g.fn
    fn = (lambda e: float(np.sqrt(_s(gf(e))))) if g.is_scalar else (lambda e: np.sqrt(gf(e)))
    text = rf"\sqrt{{{g.text}}}" if draw(st.integers(0, 3)) else f"sqrt{call_args(draw, g)}"
    return Gen(text, fn, g.shape, ATOM, g.syms, _flags(g, keep={"pos"}))


def power(draw, g: Gen, k: int) -> Gen:
    base = need(draw, g, ATOM)
    gf = base.fn
    if g.is_scalar:
        fn = lambda e: _s(gf(e)) ** k  # noqa: E731
        keep = {"pos"} & g.flags
    else:
        fn = lambda e: np.linalg.matrix_power(gf(e), k)  # noqa: E731
        keep = {"detpos"} & g.flags
    text = f"{base.text}^{k}" if draw(st.booleans()) else f"{base.text}^{{{k}}}"
    return Gen(text, fn, g.shape, POST, g.syms, _flags(g, keep=keep))


# ---------------------------------------------------------------------------------------------
# The typed grammar
# ---------------------------------------------------------------------------------------------
def sym(v: Vocab, name: str, shape: tuple, flags=()) -> Gen:
    return Gen(v.spell.get(name, name), lambda e, k=name: e[k], shape, ATOM,
               frozenset({name}), frozenset(flags))


def _weights(draw, options):
    """Pick among ``[(weight, thunk)]``."""
    total = sum(w for w, _ in options)
    i = draw(st.integers(0, total - 1))
    for w, f in options:
        if i < w:
            return f()
        i -= w
    raise AssertionError  # pragma: no cover


def vec_atom(draw, v: Vocab, k: str) -> Gen:
    if k == "n":
        names = ["x", "x", "a", "b"] if v.var == "x" else ["x", "a", "b"]
        return sym(v, draw(st.sampled_from(names)), ("n", "1"))
    # length p: C applied to an n-vector
    return product(draw, sym(v, "C", ("p", "n")), vec_atom(draw, v, "n"))


def mat_atoms(v: Vocab, r: str, c: str) -> list:
    out = []
    if (r, c) == ("n", "n"):
        out += [sym(v, "A", ("n", "n"), ("pd", "detpos")), sym(v, "B", ("n", "n"), ("pd", "detpos"))]
    if (r, c) == ("p", "n"):
        out.append(sym(v, "C", ("p", "n")))
    if (r, c) == v.xshape:
        flags = ("pd", "detpos") if r == c else ()
        out += [sym(v, "X", v.xshape, flags)] * (3 if v.var == "X" else 1)
    return out


def mat_base(draw, v: Vocab, r: str, c: str) -> Gen:
    atoms = mat_atoms(v, r, c)
    if atoms and draw(st.integers(0, 4)):
        return draw(st.sampled_from(atoms))
    tatoms = mat_atoms(v, c, r)
    if tatoms and draw(st.booleans()):
        return transpose(draw, draw(st.sampled_from(tatoms)))
    if atoms:
        return draw(st.sampled_from(atoms))
    if tatoms:
        return transpose(draw, draw(st.sampled_from(tatoms)))
    # no atom of this shape: a short product through n
    return product(draw, mat_base(draw, v, r, "n"), mat_base(draw, v, "n", c))


def wellcond(draw, v: Vocab, k: str, d: int) -> Gen:
    """A k x k matrix with positive determinant, well conditioned at the drawn values."""
    def gram():
        # I + M^T M or M M^T + I: symmetric positive definite for any M
        j = draw(st.sampled_from(["n", "p"]))
        m = matrix(draw, v, j, k, max(d - 1, 0))
        g = product(draw, transpose(draw, m), m)
        eye = Gen("I", lambda e: np.eye(SIZES[k]), (k, k), ATOM, frozenset(), frozenset())
        s = add(draw, eye, g) if draw(st.booleans()) else add(draw, g, eye)
        return Gen(s.text, s.fn, s.shape, s.prec, s.syms, s.flags | {"pd", "detpos"})

    atoms = [a for a in mat_atoms(v, k, k) if "pd" in a.flags]
    if d <= 0 or not atoms:
        if atoms and (k == "n" or draw(st.booleans())):
            return draw(st.sampled_from(atoms))
        if k == "p" and not atoms:
            # I + C C^T rather than C C^T: with more rows than columns C C^T is singular, and
            # the reference values need not avoid that (the engine's verifier does, BUG 6)
            cc = product(draw, sym(v, "C", ("p", "n")), transpose(draw, sym(v, "C", ("p", "n"))))
            eye = Gen("I", lambda e: np.eye(P), ("p", "p"), ATOM, frozenset(), frozenset())
            cc = add(draw, eye, cc)
            return Gen(cc.text, cc.fn, cc.shape, cc.prec, cc.syms, cc.flags | {"pd", "detpos"})
        return gram()

    def pd_sum():
        f, g = wellcond(draw, v, k, d - 1), wellcond(draw, v, k, d - 1)
        if "pd" in f.flags and "pd" in g.flags:
            return add(draw, f, g)
        return product(draw, f, g)

    return _weights(draw, [
        (4, lambda: draw(st.sampled_from(atoms))),
        (2, lambda: transpose(draw, wellcond(draw, v, k, d - 1))),
        (2, lambda: inverse(draw, wellcond(draw, v, k, d - 1))),
        (2, lambda: product(draw, wellcond(draw, v, k, d - 1), wellcond(draw, v, k, d - 1))),
        (2, pd_sum),
        (1, lambda: coef(draw, wellcond(draw, v, k, d - 1))),
        (1, gram),
    ])


def inverse(draw, w: Gen) -> Gen:
    wf = w.fn
    keep = {"pd", "detpos"} & w.flags
    i = draw(st.integers(0, 5))
    if i <= 2:
        base = need(draw, w, ATOM)
        return Gen(base.text + draw(st.sampled_from(["^{-1}", "^{-1}", "^-1"])),
                   lambda e: np.linalg.inv(wf(e)), w.shape, POST, w.syms, _flags(w, keep=keep))
    if i == 3:
        base = need(draw, w, ATOM)
        return Gen(base.text + draw(st.sampled_from(["^{-T}", r"^{-\top}"])),
                   lambda e: np.linalg.inv(wf(e)).T, w.shape, POST, w.syms, _flags(w, keep=keep))
    spell = draw(st.sampled_from([r"\operatorname{inv}", "inv"]))
    return Gen(spell + call_args(draw, w), lambda e: np.linalg.inv(wf(e)), w.shape, ATOM,
               w.syms, _flags(w, keep=keep))


def pos_scalar(draw, v: Vocab, d: int) -> Gen:
    t = sym(v, "t", ("1", "1"), ("pos",))
    if d <= 0:
        return t

    def one_plus_sq():
        s = scalar(draw, v, d - 1)
        one = Gen("1", lambda e: 1.0, ("1", "1"), ATOM, frozenset(), frozenset({"lead"}))
        return _pos(add(draw, one, power(draw, s, 2)))

    def one_plus_norm():
        vv = vector(draw, v, draw(st.sampled_from(["n", "p"])), d - 1)
        one = Gen("1", lambda e: 1.0, ("1", "1"), ATOM, frozenset(), frozenset({"lead"}))
        nrm = norm_sq(draw, vv)
        return _pos(add(draw, one, nrm) if draw(st.booleans()) else add(draw, nrm, one))

    def sum_exp():
        # 1^T exp(u) (its log is log-sum-exp, whose gradient the engine writes softmax(u))
        j = draw(st.sampled_from(["n", "p"]))
        u = vector(draw, v, j, d - 1)
        uf = u.fn
        ones = Gen(r"\mathbf{1}", lambda e: np.ones((SIZES[j], 1)), (j, "1"), ATOM, frozenset(),
                   frozenset())
        ex = Gen(r"\exp" + call_args(draw, u), lambda e: np.exp(uf(e)), (j, "1"), ATOM, u.syms,
                 _flags(u))
        return _pos(product(draw, transpose(draw, ones), ex))

    return _weights(draw, [
        (3, lambda: t),
        (2, one_plus_sq),
        (2, one_plus_norm),
        (1, sum_exp),
        (1, lambda: func(draw, "exp", scalar(draw, v, d - 1))),
        (1, lambda: func(draw, "sigmoid", scalar(draw, v, d - 1))),
        (1, lambda: _pos(det(draw, v, d - 1))),
    ])


def _pos(g: Gen) -> Gen:
    return Gen(g.text, g.fn, g.shape, g.prec, g.syms, g.flags | {"pos"})


def pos_vector(draw, v: Vocab, k: str, d: int) -> Gen:
    def one_plus_sq():
        u = vector(draw, v, k, d - 1)
        ones = Gen(r"\mathbf{1}", lambda e: np.ones((SIZES[k], 1)), (k, "1"), ATOM, frozenset(),
                   frozenset())
        return _pos(add(draw, ones, hadamard(draw, u, u)))

    return _weights(draw, [
        (2, lambda: func(draw, "exp", vector(draw, v, k, d - 1))),
        (2, lambda: func(draw, "sigmoid", vector(draw, v, k, d - 1))),
        (1, lambda: _pos(softmax(draw, vector(draw, v, k, d - 1)))),
        (1, one_plus_sq),
    ])


def pos_matrix(draw, v: Vocab, r: str, c: str, d: int) -> Gen:
    name = draw(st.sampled_from(["exp", "sigmoid"]))
    return func(draw, name, matrix(draw, v, r, c, d - 1))


def softmax(draw, g: Gen) -> Gen:
    gf = g.fn
    spell = draw(st.sampled_from([r"\operatorname{softmax}", "softmax"]))
    return Gen(spell + call_args(draw, g), lambda e: _softmax(gf(e)), g.shape, ATOM, g.syms,
               _flags(g, keep={"pos"}))


def norm_sq(draw, g: Gen) -> Gen:
    inner = in_norm(draw, g)
    gf = inner.fn
    if g.shape[1] == "1":
        text = draw(st.sampled_from([r"\|{}\|^2", r"\|{}\|_2^2", r"\lVert {} \rVert^2"]))
    else:
        text = draw(st.sampled_from([r"\|{}\|_F^2", r"\|{}\|_F^{{2}}"]))
    return Gen(text.format(inner.text), lambda e: float(np.sum(gf(e) ** 2)), ("1", "1"), POST,
               g.syms, frozenset({"bars", "pos"}))


def norm(draw, g: Gen) -> Gen:
    inner = in_norm(draw, g)
    gf = inner.fn
    if g.shape[1] == "1":
        text = draw(st.sampled_from([r"\|{}\|", r"\|{}\|_2", r"\lVert {} \rVert", r"\|{}\|_1"]))
    else:
        text = draw(st.sampled_from([r"\|{}\|_F", r"\|{}\|_{{F}}"]))
    if text.endswith("_1"):  # the 1-norm: entries near 0 raise NearKink, as for |s|
        return Gen(text.format(inner.text),
                   lambda e: float(sum(_abs_away_from_kink(float(v)) for v in np.ravel(gf(e)))),
                   ("1", "1"), ATOM, g.syms, frozenset({"bars", "pos"}))
    return Gen(text.format(inner.text), lambda e: float(np.sqrt(np.sum(gf(e) ** 2))),
               ("1", "1"), ATOM, g.syms, frozenset({"bars", "pos"}))


def det(draw, v: Vocab, d: int) -> Gen:
    k = draw(st.sampled_from(["n", "n", "p"]))
    w = wellcond(draw, v, k, d - 1)
    wf = w.fn
    fn = lambda e: float(np.linalg.det(wf(e)))  # noqa: E731
    if w.prec == ATOM and len(w.syms) == 1 and w.text in set(v.spell.values()) | {"A", "B", "X"} \
            and draw(st.booleans()):
        # \det X and |X| (bracketed wherever they are an operand: see the module docstring)
        text = draw(st.sampled_from([r"\det " + w.text, f"|{w.text}|"]))
        return Gen(text, fn, ("1", "1"), ADD, w.syms, frozenset({"bars", "pos"}))
    return Gen(r"\det" + call_args(draw, w), fn, ("1", "1"), ATOM, w.syms,
               _flags(w, keep={"pos"}))


def logdet(draw, v: Vocab, d: int) -> Gen:
    k = draw(st.sampled_from(["n", "n", "p"]))
    w = wellcond(draw, v, k, d - 1)
    wf = w.fn
    fn = lambda e: float(np.log(np.linalg.det(wf(e))))  # noqa: E731
    if w.prec == ATOM and len(w.syms) == 1 and w.text in set(v.spell.values()) | {"A", "B", "X"} \
            and draw(st.booleans()):
        text = draw(st.sampled_from([r"\log\det " + w.text, r"\ln\det " + w.text,
                                     f"\\log|{w.text}|"]))
        return Gen(text, fn, ("1", "1"), ADD, w.syms, frozenset({"bars"}))
    spell = draw(st.sampled_from([r"\log\det", r"\ln\det", r"\operatorname{logdet}", "logdet"]))
    # \log\det(X)^2 is \log(\det(X)^2) (a bracketless function takes the next atom with its
    # postfix operators): \log\det(...) is bracketed before a postfix operator
    prec = MUL if spell.endswith(r"\det") else ATOM
    return Gen(spell + call_args(draw, w), fn, ("1", "1"), prec, w.syms, _flags(w))


class NearKink(Exception):
    """The value of s in |s| is too close to 0 for finite differences (they would straddle
    the kink, where |s| has no derivative): the property tests skip such a case."""


KINK_MARGIN = 0.05


def _abs_away_from_kink(v: float) -> float:
    if abs(v) < KINK_MARGIN:
        raise NearKink(v)
    return abs(v)


def absval(draw, g: Gen) -> Gen:
    """|s| of a scalar; values of s near 0 raise :class:`NearKink` (see there)."""
    inner = in_norm(draw, g)
    gf = inner.fn
    o, c = draw(st.sampled_from([("|", "|"), (r"\left|", r"\right|"), (r"\lvert ", r" \rvert")]))
    return Gen(f"{o}{inner.text}{c}", lambda e: _abs_away_from_kink(_s(gf(e))), ("1", "1"), ATOM,
               g.syms, frozenset({"bars", "pos"}))


def root(draw, g: Gen) -> Gen:
    r"""\sqrt[n]{s} of a positive scalar."""
    n = draw(st.sampled_from([3, 4]))
    gf = g.fn
    return Gen(rf"\sqrt[{n}]{{{g.text}}}", lambda e: _s(gf(e)) ** (1.0 / n), ("1", "1"), ATOM,
               g.syms, _flags(g, keep={"pos"}))


def trace(draw, m: Gen) -> Gen:
    mf = m.fn
    return Gen(draw(st.sampled_from(TRACES)) + call_args(draw, m),
               lambda e: float(np.trace(mf(e))), ("1", "1"), ATOM, m.syms, _flags(m))


def scalar(draw, v: Vocab, d: int) -> Gen:
    t = sym(v, "t", ("1", "1"), ("pos",))
    if d <= 0:
        def small_inner():
            k = draw(st.sampled_from(["n", "n", "p"]))
            return product(draw, transpose(draw, vec_atom(draw, v, k)), vec_atom(draw, v, k))
        return _weights(draw, [(1, lambda: t), (2, small_inner)])
    k = lambda: draw(st.sampled_from(["n", "n", "p"]))  # noqa: E731
    sub = lambda: scalar(draw, v, d - 1)  # noqa: E731

    def square_matrix(j):
        return matrix(draw, v, j, j, d - 1)

    def inner():
        j = k()
        return product(draw, transpose(draw, vector(draw, v, j, d - 1)), vector(draw, v, j, d - 1))

    def bilinear():
        i, j = k(), k()
        left = product(draw, transpose(draw, vector(draw, v, i, d - 1)), matrix(draw, v, i, j, d - 1))
        return product(draw, left, vector(draw, v, j, d - 1))

    def row_times_vec():
        j = k()
        return product(draw, rowvec(draw, v, j, d - 1), vector(draw, v, j, d - 1))

    def ones_dot():
        j = k()
        u = vector(draw, v, j, d - 1)
        if draw(st.booleans()):
            ones = Gen(r"\mathbf{1}", lambda e: np.ones((SIZES[j], 1)), (j, "1"), ATOM,
                       frozenset(), frozenset())
            return product(draw, transpose(draw, ones), u)
        uf = u.fn
        spell = draw(st.sampled_from([r"\operatorname{sum}", "sum"]))
        return Gen(spell + call_args(draw, u), lambda e: float(np.sum(uf(e))), ("1", "1"), ATOM,
                   u.syms, _flags(u))

    def elementwise():
        name = draw(st.sampled_from(ELEMENTWISE_DRAWN))
        return func(draw, name, sub())

    def vnorm():
        u = vector(draw, v, k(), d - 1)
        return norm_sq(draw, u) if draw(st.booleans()) else norm(draw, u)

    def mnorm():
        i, j = k(), k()
        m = matrix(draw, v, i, j, d - 1)
        return norm_sq(draw, m) if draw(st.booleans()) else norm(draw, m)

    def kron_scalar():
        # tr(P (x) Q) of square factors, or sum(P (x) Q) of any
        if draw(st.booleans()):
            kp = kron(draw, square_matrix(k()), square_matrix(k()))
            return trace(draw, kp)
        kp = kron(draw, matrix(draw, v, k(), k(), d - 1), matrix(draw, v, k(), k(), d - 1))
        kf = kp.fn
        return Gen(r"\operatorname{sum}" + call_args(draw, kp), lambda e: float(np.sum(kf(e))),
                   ("1", "1"), ATOM, kp.syms, _flags(kp))

    return _weights(draw, [
        (2, lambda: t),
        (1, kron_scalar),
        (3, inner),
        (3, bilinear),
        (1, row_times_vec),
        (3, lambda: trace(draw, square_matrix(k()))),
        (2, lambda: det(draw, v, d)),
        (3, lambda: logdet(draw, v, d)),
        (2, vnorm),
        (1, mnorm),
        (2, elementwise),
        (1, lambda: func(draw, "log", pos_scalar(draw, v, d - 1))),
        (1, lambda: sqrt(draw, pos_scalar(draw, v, d - 1))),
        (1, lambda: root(draw, pos_scalar(draw, v, d - 1))),
        (1, lambda: absval(draw, sub())),
        (3, lambda: add(draw, sub(), sub(), minus=draw(st.booleans()))),
        (2, lambda: product(draw, sub(), sub())),
        (2, lambda: coef(draw, sub())),
        (1, lambda: neg(draw, sub())),
        (1, lambda: divide(draw, sub(), pos_scalar(draw, v, d - 1))),
        (1, lambda: power(draw, sub(), draw(st.sampled_from([2, 3])))),
        (1, ones_dot),
    ])


def vector(draw, v: Vocab, k: str, d: int) -> Gen:
    if d <= 0:
        return vec_atom(draw, v, k)
    sub = lambda: vector(draw, v, k, d - 1)  # noqa: E731
    j = lambda: draw(st.sampled_from(["n", "n", "p"]))  # noqa: E731

    def matvec():
        i = j()
        return product(draw, matrix(draw, v, k, i, d - 1), vector(draw, v, i, d - 1))

    def elementwise():
        name = draw(st.sampled_from(ELEMENTWISE_DRAWN))
        return func(draw, name, sub())

    def diagpart():
        m = matrix(draw, v, k, k, d - 1)
        mf = m.fn
        spell = draw(st.sampled_from([r"\operatorname{diag}", "diag"]))
        return Gen(spell + call_args(draw, m), lambda e: np.diag(mf(e)).reshape(-1, 1), (k, "1"),
                   ATOM, m.syms, _flags(m))

    def plus_ones():
        ones = Gen(r"\mathbf{1}", lambda e: np.ones((SIZES[k], 1)), (k, "1"), ATOM, frozenset(),
                   frozenset())
        u = sub()
        return add(draw, u, ones) if draw(st.booleans()) else add(draw, ones, u)

    def scaled_by_inner():
        return product(draw, scalar(draw, v, d - 1), sub())

    return _weights(draw, [
        (3, lambda: vec_atom(draw, v, k)),
        (5, matvec),
        (3, lambda: add(draw, sub(), sub(), minus=draw(st.booleans()))),
        (2, lambda: hadamard(draw, sub(), sub())),
        (3, elementwise),
        (1, lambda: func(draw, "log", pos_vector(draw, v, k, d - 1))),
        (1, lambda: sqrt(draw, pos_vector(draw, v, k, d - 1))),
        (2, lambda: softmax(draw, sub())),
        (1, diagpart),
        (2, lambda: coef(draw, sub())),
        (2, scaled_by_inner),
        (1, lambda: product(draw, sub(), sym(v, "t", ("1", "1")))),
        (1, lambda: divide(draw, sub(), pos_scalar(draw, v, d - 1))),
        (1, lambda: neg(draw, sub())),
        (1, plus_ones),
        (1, lambda: transpose(draw, rowvec(draw, v, k, d - 1))),
    ])


def rowvec(draw, v: Vocab, k: str, d: int) -> Gen:
    if d <= 0 or draw(st.booleans()):
        return transpose(draw, vector(draw, v, k, max(d - 1, 0)))
    i = draw(st.sampled_from(["n", "n", "p"]))
    return product(draw, rowvec(draw, v, i, d - 1), matrix(draw, v, i, k, d - 1))


def matrix(draw, v: Vocab, r: str, c: str, d: int) -> Gen:
    if d <= 0:
        return mat_base(draw, v, r, c)
    sub = lambda: matrix(draw, v, r, c, d - 1)  # noqa: E731
    square = r == c
    j = lambda: draw(st.sampled_from(["n", "n", "p"]))  # noqa: E731

    def matmul():
        i = j()
        return product(draw, matrix(draw, v, r, i, d - 1), matrix(draw, v, i, c, d - 1))

    def outer():
        return product(draw, vector(draw, v, r, d - 1), transpose(draw, vector(draw, v, c, d - 1)))

    def elementwise():
        name = draw(st.sampled_from(ELEMENTWISE_DRAWN))
        return func(draw, name, sub())

    def plus_identity():
        eye = Gen("I", lambda e: np.eye(SIZES[r]), (r, r), ATOM, frozenset(), frozenset())
        m = sub()
        return add(draw, eye, m) if draw(st.booleans()) else add(draw, m, eye)

    def diag():
        u = vector(draw, v, r, d - 1)
        uf = u.fn
        spell = draw(st.sampled_from([r"\operatorname{diag}", "diag"]))
        return Gen(spell + call_args(draw, u), lambda e: np.diagflat(uf(e)), (r, r), ATOM,
                   u.syms, _flags(u))

    options = [
        (3, lambda: mat_base(draw, v, r, c)),
        (4, matmul),
        (2, outer),
        (2, lambda: transpose(draw, matrix(draw, v, c, r, d - 1))),
        (3, lambda: add(draw, sub(), sub(), minus=draw(st.booleans()))),
        (2, lambda: hadamard(draw, sub(), sub())),
        (2, elementwise),
        (1, lambda: func(draw, "log", pos_matrix(draw, v, r, c, d - 1))),
        (1, lambda: sqrt(draw, pos_matrix(draw, v, r, c, d - 1))),
        (2, lambda: coef(draw, sub())),
        (2, lambda: product(draw, scalar(draw, v, d - 1), sub())),
        (1, lambda: divide(draw, sub(), pos_scalar(draw, v, d - 1))),
        (1, lambda: neg(draw, sub())),
    ]
    if square:
        options += [
            (1, plus_identity),
            (1, diag),
            (2, lambda: inverse(draw, wellcond(draw, v, r, d - 1))),
            (1, lambda: power(draw, sub(), 2)),
        ]
    return _weights(draw, options)


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------
BOLD = {"x": [r"\mathbf{x}", r"\bm{x}", r"\boldsymbol{x}"], "a": [r"\mathbf{a}"],
        "A": [r"\mathbf{A}"], "X": [r"\mathbf{X}"]}

TARGETS = [("1", "1")] * 4 + [("n", "1")] * 2 + [("p", "1"), ("n", "n"), ("p", "n"), ("n", "p"),
                                                  ("1", "n")]


@dataclass(frozen=True)
class Case:
    gen: Gen
    vocab: Vocab
    layout: str
    seed: int

    @property
    def text(self) -> str:
        return self.gen.text

    def decl(self) -> dict:
        out = {"scalar": ["t"]}
        if self.vocab.sym_a:
            out["symmetric"] = ["A"]
        return out

    def values(self) -> dict:
        """Concrete values (vectors as n x 1 columns) honouring the assumptions above."""
        rng = np.random.default_rng(self.seed)

        def square():
            while True:
                m = 2.0 * np.eye(N) + 0.3 * rng.standard_normal((N, N))
                if np.min(np.linalg.eigvalsh((m + m.T) / 2)) > 0.5:
                    return m

        vals = {"t": float(rng.uniform(0.5, 1.5))}
        for name in "xab":
            vals[name] = 0.7 * rng.standard_normal((N, 1))
        vals["A"], vals["B"] = square(), square()
        if self.vocab.sym_a:
            vals["A"] = (vals["A"] + vals["A"].T) / 2
        vals["C"] = 0.7 * rng.standard_normal((P, N))
        if self.vocab.xshape == ("n", "n"):
            vals["X"] = square()
        else:
            vals["X"] = 0.7 * rng.standard_normal((N, P))
        return vals


@st.composite
def vocabs(draw, var=None) -> Vocab:
    var = var or draw(st.sampled_from(["x", "x", "X", "X", "t"]))
    xshape = draw(st.sampled_from([("n", "n"), ("n", "p")]))
    spell = {}
    for name, opts in BOLD.items():
        if draw(st.integers(0, 5)) == 0:
            spell[name] = draw(st.sampled_from(opts))
    return Vocab(var, xshape, spell, draw(st.integers(0, 3)) == 0)


@st.composite
def exprs(draw, vocab: Vocab, max_depth: int = 3) -> Gen:
    shape = draw(st.sampled_from(TARGETS))
    d = draw(st.integers(1, max_depth))
    if shape == ("1", "1"):
        return scalar(draw, vocab, d)
    if shape[1] == "1":
        return vector(draw, vocab, shape[0], d)
    if shape[0] == "1":
        return rowvec(draw, vocab, shape[1], d)
    return matrix(draw, vocab, shape[0], shape[1], d)


@st.composite
def cases(draw, max_depth: int = 3, max_len: int = 160, scalar_only: bool = False) -> Case:
    v = draw(vocabs())
    g = scalar(draw, v, draw(st.integers(1, max_depth))) if scalar_only \
        else draw(exprs(v, max_depth))
    # the variable must occur (a derivative of a constant is a dull zero), and monsters are
    # uninformative: keep strings short enough to read in a failure report
    from hypothesis import assume
    assume(v.var in g.syms and len(g.text) <= max_len)
    layout = draw(st.sampled_from(["mixed", "numerator", "denominator"]))
    seed = draw(st.integers(0, 2**32 - 1))
    return Case(g, v, layout, seed)


@st.composite
def log_sum_exp_cases(draw, max_depth: int = 2) -> Case:
    r"""``\log(\mathbf{1}^\top \exp(u))`` of a random vector expression u: the engine writes its
    gradient and Hessian with softmax(u), a rewrite worth a property of its own."""
    from hypothesis import assume

    v = draw(vocabs())
    j = draw(st.sampled_from(["n", "p"]))
    u = vector(draw, v, j, draw(st.integers(1, max_depth)))
    uf = u.fn
    text = rf"\log(\mathbf{{1}}^\top \exp{call_args(draw, u)})"

    def fn(e):
        z = uf(e)
        m = float(np.max(z))
        return float(m + np.log(np.sum(np.exp(z - m))))
    assume(v.var in u.syms and len(text) <= 160)
    g = Gen(text, fn, ("1", "1"), ATOM, u.syms, _flags(u))
    return Case(g, v, draw(st.sampled_from(["mixed", "numerator", "denominator"])),
                draw(st.integers(0, 2**32 - 1)))
