"""Checking a claimed derivative (``expect=``, SPEC 1.5) and saying why a wrong one is wrong.

Owns the numerical comparison of a claim with the computed (already verified) result on random
instances that honour the declarations, and the diagnoses, most specific first:

1. the claim is the transpose of the result: the other layout's answer;
2. it holds only when some matrix is symmetric (named), or only for square factors;
3. it is off by a constant factor or by its sign (the factor is named);
4. otherwise it is wrong, and the correct formula is given.

Knows nothing of documents; the document layers typeset :attr:`Verdict.latex`.
"""
from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from .errors import MatDerivError, NestedTooDeeplyError
from .expr import (ONE, SCALAR, Add, Commutation, Const, Det, Diag, DiagPart, Expr, Func,
                   Hadamard, Identity, Inverse, Kron, Mul, Norm, Ones, Power, Softmax, Sum, Symbol,
                   Trace, Transpose, Vec, Zero, symbols as symbols_of)
from .parse import identity_size_letters, parse
from .parse.parser import MAX_DEPTH
from .printing.latex import latex, printed_size
from .shapes import infer
from .numeric import commutation_matrix
from .verify import STRATEGIES, draw, size_maps, whole_number_symbols

DRAWS = 3
RTOL = 1e-7


@dataclass(frozen=True)
class Verdict:
    """``ok``: the claim equals the result; ``diagnosis``: equal, transpose, symmetric, square,
    factor or wrong; ``message``: one sentence for a human; ``latex``: what to typeset after
    the result (a check mark, or a cross with the reason)."""

    ok: bool
    diagnosis: str
    message: str
    claim: str
    latex: str


LAYOUT_WORDS = {"mixed": "mixed", "numerator": "numerator", "denominator": "denominator"}


def _other_layout(kind: str, layout: str) -> str:
    if kind in ("gradient",):
        return "numerator" if layout in ("mixed", "denominator") else "denominator"
    return "denominator" if layout in ("mixed", "numerator") else "numerator"


#: What marks the left-hand side of a claim copied with its equation, ``\nabla_x f = 2 A x``,
#: ``\frac{\partial f}{\partial x} = ...``, ``\frac{\mathrm{d} y}{\mathrm{d} t} = ...``.
_DERIVATIVE_LHS_RE = re.compile(r"\\(?:partial|nabla)(?![A-Za-z])"
                                r"|\\frac\s*\{\s*(?:d|\\mathrm\s*\{?\s*d)|\bd\s*/\s*d")


def _right_side_offset(claim: str) -> int:
    """Where the formula of a claim starts: after the last ``=`` outside brackets when what
    stands before it is a derivative symbol (the claim was copied with its left-hand side),
    else 0 (an ``=`` elsewhere is then reported by the reader)."""
    depth, last = 0, None
    for i, ch in enumerate(claim):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
        elif ch == "=" and depth == 0:
            last = i
    if last is None or not _DERIVATIVE_LHS_RE.search(claim[:last]):
        return 0
    return last + 1


def check_claim(claim: str, f: Expr, result: Expr, kind: str, layout: str, all_syms,
                declarations: dict, seed_text: str = "", variable: str = "") -> Verdict:
    """Compare the claim (LaTeX) with ``result`` (the computed derivative of ``f`` by the
    symbol named ``variable``, in ``layout``)."""
    declarations = _with_expression_kinds(declarations, all_syms)
    by_name = {s.name: s for s in all_syms}
    size_names = {n for s in all_syms for d in (s.rows, s.cols) for n in d}
    # sizes the claim may write as numbers: the symbols' and those only constants carry (the m
    # of tr(X \otimes I_m)), as the result prints them
    size_scalars = _sizes_as_scalars(sorted(size_names | {
        n for t in (f, result) for node in t.walk() for d in node.shape for n in d}), by_name)
    rhs_at = _right_side_offset(claim)
    try:
        typed = infer(parse(claim[rhs_at:]), (), **_declare_scalars(declarations, size_scalars))
    except MatDerivError as err:
        hint = err.hint or "write the claim as an expression in the same symbols"
        if err.message.startswith("unexpected `=`"):
            hint = ("give the claimed derivative alone (2 A x), or after a derivative symbol "
                    "(\\nabla f = 2 A x, \\frac{\\partial f}{\\partial x} = 2 A x)")
        bad = MatDerivError(f"the claim `{claim}` cannot be read: {err.message}", None, hint)
        # offset inside the claim text, for carets
        bad.claim_position = None if err.position is None else err.position + rhs_at
        raise bad from None
    claim_tree = typed.tree
    commutations = {}  # K_{mn} as the engine prints it: the commutation matrix of those sizes
    used_sizes = []  # size letters the claim uses as numbers (n for tr(I_n))
    for s in symbols_of(claim_tree):
        if s.name in size_scalars:
            used_sizes.append(s.name)
            continue
        m = re.fullmatch(r"K_([a-z])([a-z])", s.name)
        if s.name not in by_name and m and set(m.groups()) <= size_names:
            commutations[s.name] = m.groups()
            continue
        if s.name not in by_name:
            raise MatDerivError(f"the claim uses `{s.latex or s.name}`, which does not occur in the expression",
                                None, "write the claim in the symbols of the expression (no where-clauses)")
        if (s.rows == ONE) != (by_name[s.name].rows == ONE) or (s.cols == ONE) != (by_name[s.name].cols == ONE):
            raise MatDerivError(f"`{s.latex or s.name}` is a different kind of object in the claim and in the expression",
                                None, "declare it once for both, e.g. vector={...}")
    res_latex = latex(result)
    rng = np.random.default_rng(zlib.crc32(("claim:" + seed_text + claim).encode("utf-8")))
    matrices = [s for s in all_syms if s.rows != ONE and s.cols != ONE]

    def compare(sym_names=(), square=False):
        """Per draw: (claim value or None, result value), at the first size assignment where
        the expression is finite (all sizes equal when ``square``)."""
        maps = size_maps(all_syms, f)
        for sizes in ([maps[-1]] if square else maps[:-1] or maps):
            out = compare_at(sizes, sym_names)
            if out is not None:
                # and at sizes one larger: a claim that writes 3 for the size n, or 2 where
                # n is meant, agrees at one size only (or by a factor that is no constant)
                return out + (compare_at(_one_larger(sizes), sym_names) or [])
        return None

    def compare_at(sizes, sym_names):
        out = []
        whole = whole_number_symbols(f)
        try:
            written = _written_sizes(typed, claim, sizes)
        except MatDerivError:
            written = None  # sizes that contradict each other: the claim is not evaluated
        for i in range(DRAWS):
            for attempt in range(8):
                strategy = STRATEGIES[attempt % len(STRATEGIES)]
                env = draw(all_syms, sizes, rng, strategy, whole)
                for n in sym_names:
                    env[n] = (env[n] + env[n].T) / 2
                for name, (a, b) in commutations.items():
                    env[name] = commutation_matrix(sizes[a], sizes[b]).copy()
                for name in used_sizes:
                    env[name] = float(sizes[name])
                try:
                    R = _value(result, env, sizes)
                    F0 = _value(f, env, sizes)
                except MatDerivError:
                    continue
                if np.all(np.isfinite(R)) and np.all(np.isfinite(F0)):
                    break
            else:
                return None
            try:
                C = None if written is None else _claim_value(claim_tree, env, R, written)
            except (MatDerivError, ValueError, np.linalg.LinAlgError, FloatingPointError):
                C = None
            out.append((C, R))
        return out

    def all_equal(pairs, transform=lambda c: c):
        return bool(pairs) and all(C is not None and _close(transform(C), R) for C, R in pairs)

    general = compare()
    if general is None:
        raise MatDerivError("the claim could not be checked: the expression is not finite at random points",
                            None, "pass check=false to skip")
    if all_equal(general):
        return _verdict(True, "equal", "the claim matches the computed result", claim, res_latex)
    if _constants_of_open_size(typed, claim):
        raise MatDerivError(
            "the claim could not be checked: the size of a ones or zero vector or of an "
            "identity in it (as in \\mathbf{1}^\\top \\mathbf{1}) is not fixed by the text", None,
            "write the size on it (I_n), or compare that form by eye")
    other = _other_layout(kind, layout)
    transposed = f"the claim is the transpose of the computed result: this is the {other}-layout result; " \
                 f"this document uses {layout} layout"
    if all_equal(general, lambda c: c.T):
        return _verdict(False, "transpose", transposed, claim, res_latex)

    candidates = [s for s in matrices if s.rows == s.cols and not s.symmetric]
    groups = [(s,) for s in candidates] + ([tuple(candidates)] if len(candidates) > 1 else [])
    rect = [s for s in matrices if s.rows != s.cols]
    if len(rect) > 1:  # the variable is square once the others are (A X B square)
        rect = [s for s in rect if s.name != variable] or rect
    square = compare(square=True) if rect else None
    for flip, prefix in ((False, ""), (True, "the claim is transposed (the " + other + "-layout form), and it ")):
        tf = (lambda c: c.T) if flip else (lambda c: c)
        for group in groups:
            if all_equal(compare(tuple(s.name for s in group)), tf):
                names = _and([s.latex or s.name for s in group])
                verb = "is" if len(group) == 1 else "are"
                msg = (prefix or "") + f"holds only when {names} {verb} symmetric"
                return _verdict(False, "symmetric", msg, claim, res_latex, who=names, transposed=flip)
        if square and all_equal(square, tf):
            names = _and([s.latex or s.name for s in rect])
            msg = (prefix or "") + f"holds only when {names} {'is' if len(rect) == 1 else 'are'} square"
            return _verdict(False, "square", msg, claim, res_latex, who=names, transposed=flip)
        factor = _common_factor(general, tf)
        if factor is not None:
            if factor == -1:
                msg = (prefix or "the claim ") + "has the wrong sign" if not flip else prefix + "has the wrong sign"
            else:
                msg = (prefix + "is " if flip else "the claim is ") + f"{_fmt_times(factor)} the correct result"
            return _verdict(False, "factor", msg, claim, res_latex, factor=factor, transposed=flip)
    var_sym = by_name.get(variable)
    if var_sym is not None and var_sym.symmetric and kind == "gradient" and general and all(
            C is not None and C.shape == R.shape and R.shape[0] == R.shape[1]
            and _close(C, R + R.T - np.diag(np.diag(R))) for C, R in general):
        name = var_sym.latex or var_sym.name
        msg = (f"the claim is the gradient with respect to the free entries of a symmetric {name} "
               f"(G + G^T - diag(G), the Matrix Cookbook's rule for structured matrices); this tool gives the "
               f"unconstrained gradient at a symmetric {name}, G = " + res_latex)
        return _verdict(False, "symmetric-entries", msg, claim, res_latex, who=name)
    if var_sym is not None and var_sym.symmetric and kind in ("hessian", "matrix-by-matrix") \
            and _agree_on_symmetric_directions(general):
        name = var_sym.latex or var_sym.name
        msg = (f"the claim agrees with the computed result only for symmetric d{name} (it is the "
               f"derivative restricted to symmetric matrices); the unconstrained derivative at a "
               f"symmetric {name}, which this tool computes, is " + res_latex)
        return _verdict(False, "symmetric-directions", msg, claim, res_latex, who=name)
    if all(C is None for C, _ in general) and (commutations or _ENGINE_SIZE_RE.search(claim)):
        # sizes written in the engine's notation (K_{mn}, I_{mn}) that the claim's own typing
        # could not line up with the expression's (a Kronecker product of three factors): say
        # so rather than call a formula wrong that was never evaluated
        raise _unmatched_sizes()
    msg = "the claim is wrong; the correct result is " + res_latex
    if all(C is None for C, _ in general) and square and all(C is not None for C, _ in square):
        names = _and([s.latex or s.name for s in rect])
        msg = f"the claim is wrong (it is only defined when {names} {'is' if len(rect) == 1 else 'are'} square); " \
              "the correct result is " + res_latex
    return _verdict(False, "wrong", msg, claim, res_latex)



def _agree_on_symmetric_directions(pairs) -> bool:
    """Whether claim and result are equal once applied to vec of a symmetric matrix: C S = R S
    with S = (I + K_nn) / 2 the projection onto symmetric matrices (on whichever side has n^2
    entries)."""
    if not pairs or any(C is None for C, _ in pairs):
        return False
    for C, R in pairs:
        C, R = np.atleast_2d(np.asarray(C, dtype=float)), np.atleast_2d(np.asarray(R, dtype=float))
        if C.shape != R.shape:
            return False
        side = 1 if round(np.sqrt(R.shape[1])) ** 2 == R.shape[1] else 0
        n = int(round(np.sqrt(R.shape[side])))
        if n * n != R.shape[side] or n < 2:
            return False
        S = (np.eye(n * n) + commutation_matrix(n, n)) / 2
        if side == 1 and not _close(C @ S, R @ S):
            return False
        if side == 0 and not _close(S @ C, S @ R):
            return False
    return True


def _with_expression_kinds(declarations: dict, all_syms) -> dict:
    r"""The declarations, plus every symbol's kind as inferred from the expression, so that a
    claim (or a printed result) reads its symbols as the expression does (``k`` a scalar in
    ``\operatorname{tr}(X^k)``)."""
    out = {k: list(declarations.get(k, ())) for k in ("scalar", "vector", "matrix", "symmetric")}
    declared = {n for v in out.values() for n in v}
    for s in all_syms:
        if s.name in declared:
            continue
        if s.symmetric:
            out["symmetric"].append(s.name)
        elif s.rows == ONE and s.cols == ONE:
            out["scalar"].append(s.name)
        elif s.cols == ONE:
            out["vector"].append(s.name)
        else:
            out["matrix"].append(s.name)
    return out


def _sizes_as_scalars(names, by_name: dict) -> dict:
    r"""The size letters among ``names`` that a text may use as numbers (``n \det(X)``, as
    the engine prints ``tr(I_n)``), each as a scalar Symbol; a letter that names a symbol of
    the expression is that symbol, not a size."""
    from .printing.latex import size_letter

    return {n: Symbol(n, ONE, ONE, "scalar", n) for n in names
            if size_letter(n) and n not in by_name}


def _one_larger(sizes: dict) -> dict:
    """Every size one larger: the second set of sizes at which a text that writes a size as
    a number must still hold (3 for n agrees at n = 3 only)."""
    return {k: v + 1 for k, v in sizes.items()}


def _declare_scalars(declarations: dict, names) -> dict:
    """The declarations with ``names`` added as scalars, except names declared already."""
    out = dict(declarations)
    declared = {n for v in out.values() for n in v}
    out["scalar"] = list(out.get("scalar", ())) + [n for n in names if n not in declared]
    return out


def _and(names) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _value(e: Expr, env, sizes):
    from .numeric import evaluate

    return np.atleast_2d(np.asarray(evaluate(e, env, sizes), dtype=float))


_SIZED_ZERO_RE = re.compile(r"(?<![A-Za-z0-9_{])0_\{")  # 0_{m \times n}: read back as a plain 0
_ENGINE_SIZE_RE = re.compile(r"(?:I|\\mathbf\{I\})_")


def _written_sizes(typed, text: str, sizes: dict) -> dict:
    """The sizes a claim writes on its identities, ``I_n``, ``I_{mn}``, ``I_{n^2}`` (the engine's
    size letters, so a printed result pasted back as a claim means what it meant): the claim's
    own size name of each such identity -> its value under ``sizes``."""
    out = {}
    for n, letters in _identity_subscripts(typed, text):
        if len(n.n) != 1:
            continue
        if not letters or any(a not in sizes for a in letters):
            continue
        value = math.prod(sizes[a] for a in letters)
        if out.setdefault(n.n[0], value) != value:
            raise _unmatched_sizes()  # (the caller counts the claim as not evaluated)
    return out


def _constants_of_open_size(typed, text: str) -> bool:
    """Whether the claim holds a ones vector, identity or zero whose size neither a symbol, nor
    what the claim writes (``I_n``), nor the claim's own shape fixes (``\\mathbf{1}^\\top
    \\mathbf{1}``, ``\\operatorname{tr}(I)``, ``\\operatorname{softmax}(\\mathbf{0})``):
    :func:`_claim_value` then has to guess it, and a mismatch says nothing about the claim."""
    if r"\mathbf{0}" in text:
        return True  # a zero vector: the reader takes it for the number 0 where it stands alone
    tree = typed.tree
    fixed = {n for s in symbols_of(tree) for d in (s.rows, s.cols) for n in d}
    fixed |= {n for d in tree.shape for n in d if len(d) == 1}
    sized = {id(n) for n, letters in _identity_subscripts(typed, text) if letters}
    for n in tree.walk():
        if id(n) in sized:
            continue
        if isinstance(n, (Identity, Ones, Zero)) and any(
                name not in fixed for d in n.shape for name in d):
            return True
    return False


def _identity_subscripts(typed, text: str):
    """Each identity of the typed claim (or of a parsed text) with the size letters written on
    it in ``text`` (``I_{mn}`` -> ``("m", "n")``; ``()`` for a bare ``I``)."""
    for n in typed.tree.walk():
        if isinstance(n, Identity):
            sp = typed.spans.get(id(n))
            yield n, (identity_size_letters(text[sp.start:sp.end]) if sp is not None else ())


def _unmatched_sizes() -> MatDerivError:
    return MatDerivError("the claim could not be checked: its sizes (the commutation and "
                         "identity matrices) cannot be matched to the expression's", None,
                         "this tool reads K_{mn} and I_{mn} in a claim, but not yet inside a "
                         "Kronecker product of three factors; compare that form by eye")


def _claim_value(tree: Expr, env, R, written=None):
    """Evaluate the claim with the expression's values; sizes no symbol fixes come from what the
    claim writes (``I_n``), else from the result's shape (a lone ``I``)."""
    from .numeric import evaluate, sizes_from_env

    syms = symbols_of(tree)
    sizes = sizes_from_env(syms, {s.name: env[s.name] for s in syms})
    for name, value in (written or {}).items():
        sizes.setdefault(name, value)
    r, c = tree.shape
    for d, got in ((r, R.shape[0]), (c, R.shape[1])):
        if len(d) == 1 and d[0] not in sizes:
            sizes[d[0]] = got
    for n in tree.walk():
        for d in getattr(n, "shape", ((), ())):
            for name in d:
                if name not in sizes:
                    sizes[name] = R.shape[0]
    with np.errstate(all="raise"):
        return np.atleast_2d(np.asarray(evaluate(tree, {s.name: env[s.name] for s in syms}, sizes), dtype=float))


def _close(C, R) -> bool:
    if C.size == 1 and R.size == 1:
        C, R = C.reshape(1, 1), R.reshape(1, 1)
    if C.size == 1 and R.size > 1 and float(C.reshape(-1)[0]) == 0.0:
        C = np.zeros_like(R)  # a claimed 0 is the zero of the needed shape
    if C.shape != R.shape:
        return False
    # relative to the larger side, with a floor: values at the random points are of order 1,
    # and a result that is zero by cancellation (1/|t| - t^2/|t|^3) leaves rounding noise
    scale = max(float(np.max(np.abs(R), initial=0.0)), float(np.max(np.abs(C), initial=0.0)),
                1e-6)
    return float(np.max(np.abs(C - R), initial=0.0)) <= RTOL * 1e3 * scale


def _common_factor(pairs, transform=lambda c: c):
    ratios = []
    for C, R in pairs:
        if C is None:
            return None
        C = transform(C)
        if C.shape != R.shape:
            return None
        rr = float(np.sum(R * R))
        if rr == 0:
            return None
        k = float(np.sum(C * R)) / rr
        if not _close(C, k * R):
            return None
        ratios.append(k)
    if not ratios or max(ratios) - min(ratios) > 1e-6 * (1 + abs(ratios[0])) or abs(ratios[0] - 1) < 1e-9:
        return None
    frac = Fraction(ratios[0]).limit_denominator(100)
    return frac if abs(float(frac) - ratios[0]) < 1e-9 * (1 + abs(ratios[0])) else ratios[0]


def _fmt_times(k) -> str:
    if k == Fraction(1, 2):
        return "half"
    if k == 2:
        return "twice"
    return f"{_fmt(k)} times"


def _fmt(k) -> str:
    if isinstance(k, Fraction):
        return str(k.numerator) if k.denominator == 1 else f"{k.numerator}/{k.denominator}"
    return f"{k:.6g}"


def _text(s: str) -> str:
    return s.replace("\\", r"\textbackslash{}").replace("{", r"\{").replace("}", r"\}").replace("_", r"\_") \
        .replace("^", r"\^{}").replace("&", r"\&").replace("%", r"\%").replace("#", r"\#").replace("$", r"\$")


def _tex_list(who: str) -> str:
    return who.replace(", ", r"\text{, }").replace(" and ", r"\text{ and }")


def _verdict(ok: bool, diagnosis: str, message: str, claim: str, res_latex: str, who: str = "",
             factor=None, transposed: bool = False) -> Verdict:
    if ok:
        tex = r"\quad {\color{green}{\checkmark}}\ \text{as claimed}"
        return Verdict(ok, diagnosis, message, claim, tex)
    lead = r"\text{ is transposed and}" if transposed else ""
    if diagnosis == "transpose":
        reason = r"\text{ is the transpose (the other layout's result)}"
    elif diagnosis == "symmetric":
        reason = lead + r"\text{ holds only when }" + _tex_list(who) + \
            (r"\text{ is symmetric}" if " and " not in who else r"\text{ are symmetric}")
    elif diagnosis == "square":
        reason = lead + r"\text{ holds only for square }" + _tex_list(who)
    elif diagnosis == "symmetric-entries":
        reason = r"\text{ is the gradient in the free entries of a symmetric }" + who
    elif diagnosis == "symmetric-directions":
        reason = r"\text{ holds only for symmetric }\mathrm{d}" + who
    elif diagnosis == "factor" and factor == -1:
        reason = lead + r"\text{ has the wrong sign}"
    elif diagnosis == "factor":
        reason = lead + r"\text{ is " + _fmt_times(factor) + r" the correct result}"
    else:
        reason = r"\text{ is wrong}"
    tex = r"\quad {\color{red}{\times}}\ \text{claimed } " + claim + reason
    return Verdict(ok, diagnosis, message, claim, tex)


def _same_as_parsed(parsed, result: Expr) -> bool:
    """Whether ``parsed.tree``, the tree the parser made of the printed text before any typing,
    has the structure of the verified ``result``: same node types, names, numbers and
    operators.  Sizes and letter kinds are left out (typing the same structure with the same
    declarations gives the same function); nodes whose meaning typing decides differ in type
    (``|.|``, a norm without subscript), except ``diag``, which typing decides by its
    argument's shape alone (:func:`_diag_as_typed`), and ``|.|`` of what the result has as a
    scalar (typing makes it ``abs``).  An identity matches when the size letters written on it
    (``I_n``, ``I_{mn}``) are its size; other sized constants never match, so those go the
    long way.  Products are compared as :func:`_product_factors` splits them, so that
    ``\\frac{x}{\\|x\\|}`` matches the result's ``\\|x\\|^{-1} x``, and powers of powers of a
    norm as one power (:func:`_collapsed_power`)."""
    return _same_pair(parsed, parsed.tree, result)


#: The node classes whose one field is their argument, and those whose one field is the tuple
#: of their children (products other than ``Mul``): alike when their children are, compared
#: with no look at the other fields (they have none).
_ARG_ONLY = frozenset((Transpose, Inverse, Trace, Det, Diag, DiagPart, Vec, Softmax, Sum))
_ARGS_ONLY = frozenset((Add, Hadamard, Kron))


def _same_pair(parsed, tree: Expr, result: Expr) -> bool:
    """:func:`_same_as_parsed` for the subtree ``tree`` of ``parsed.tree`` against ``result``."""
    stack = [(tree, result)]
    pop, push = stack.pop, stack.extend
    while stack:
        a, b = pop()
        cls = type(a)
        if cls is not type(b):
            if cls is Func and _diag_as_typed(a, b):
                push(((a.arg, b.arg),))
                continue
            return False
        if isinstance(a, Symbol):  # (the commonest node first: the classes are disjoint)
            if a.name != b.name or a.latex != b.latex:
                return False
            continue
        # (the commonest others next, compared in place: the general case below reads their
        # fields through a look-up and a loop, to the same verdict)
        if cls in _ARG_ONLY:
            push(((a.arg, b.arg),))
            continue
        if cls in _ARGS_ONLY:
            ka, kb = a.args, b.args
            if len(ka) != len(kb):
                return False
            push(zip(ka, kb))
            continue
        if cls is Mul:
            ka, kb = a.args, b.args
            if len(ka) == len(kb) and list(map(type, ka)) == list(map(type, kb)):
                # (the usual case, node types alike place by place: compared in place; like
                # factors in another order then go the long way, as before)
                push(zip(ka, kb))
                continue
            scalars_a, others_a = _product_factors(a)
            scalars_b, others_b = _product_factors(b)
            if len(others_a) != len(others_b) or len(scalars_a) != len(scalars_b):
                return False
            if len(scalars_a) < 2:  # (one coefficient, or none: no order to find)
                push(zip(scalars_a, scalars_b))
            elif not _same_scalars(parsed, scalars_a, scalars_b):
                return False
            push(zip(others_a, others_b))
            continue
        if cls is Const:
            # (a number's value is a Fraction, kept in lowest terms: two are equal when their
            # numerators and denominators are, read without Fraction's comparison, which asks
            # numbers.Rational first)
            va, vb = a.value, b.value
            if va.numerator != vb.numerator or va.denominator != vb.denominator:
                return False
            continue
        if cls is Power and type(a.exponent) is Const and type(b.exponent) is Const:
            base_a, exponent_a = _collapsed_power(a)
            base_b, exponent_b = _collapsed_power(b)
            if exponent_a.numerator != exponent_b.numerator or \
                    exponent_a.denominator != exponent_b.denominator:  # (as for a number)
                return False
            push(((base_a, base_b),))
            continue
        if cls is Func and a.name == "bars" and b.name == "abs" and b.arg.shape == SCALAR:
            push(((a.arg, b.arg),))  # |t| of a scalar: typing makes it abs
            continue
        if isinstance(a, Identity):
            if identity_size_letters(parsed.text(a)) != tuple(b.n):
                return False
            continue
        if isinstance(a, (Ones, Zero, Commutation)):
            return False
        ka, kb = a.children(), b.children()
        if len(ka) != len(kb):
            return False
        for name in _data_fields(cls):
            v = getattr(a, name)
            if isinstance(v, Expr) or (isinstance(v, tuple) and v and isinstance(v[0], Expr)):
                continue
            if v != getattr(b, name):
                return False
        push(zip(ka, kb))
    return True


def _product_factors(product: Mul) -> tuple[list, list]:
    """``(scalars, others)``: the factors of ``product`` that are scalars whatever typing
    decides (a number, a norm, a power of one of them with a numeric exponent), which may stand
    anywhere in it, and the others in their order; a factor that is itself a product beside
    nothing but scalars is opened (``s (A B)`` is ``s A B``; no other grouping changes)."""
    scalars, others = [], []
    for arg in product.args:
        node = _under_numeric_powers(arg)
        (scalars if type(node) is Const or type(node) is Norm else others).append(arg)
    if len(others) == 1 and type(others[0]) is Mul:
        inner_scalars, others = _product_factors(others[0])
        scalars += inner_scalars
    return scalars, others


def _same_scalars(parsed, scalars_a: list, scalars_b: list) -> bool:
    """Whether the scalar factors of two products (as many on each side) are the same, in any
    order."""
    rest = list(scalars_b)
    for a in scalars_a:
        for i, b in enumerate(rest):
            if _same_pair(parsed, a, b):
                del rest[i]
                break
        else:
            return False
    return True


def _collapsed_power(power: Power) -> tuple:
    """``(base, exponent)`` of ``power`` (whose exponent is a number), with powers of a norm
    taken as one: ``(\\|x\\|^3)^{-1}`` is ``(\\|x\\|, -3)`` (a norm is never negative, so
    ``(N^a)^b = N^{ab}``)."""
    base, exponent = power.base, power.exponent.value
    while type(base) is Power and type(base.exponent) is Const and _norm_power(base.base):
        exponent *= base.exponent.value
        base = base.base
    return base, exponent


def _norm_power(node: Expr) -> bool:
    """Whether ``node`` is a norm or a power of one with a numeric exponent (never negative)."""
    return type(_under_numeric_powers(node)) is Norm


def _under_numeric_powers(node: Expr) -> Expr:
    """``node`` without the powers with a numeric exponent around it (``\\|x\\|`` of
    ``(\\|x\\|^3)^{-1}``)."""
    while type(node) is Power and type(node.exponent) is Const:
        node = node.base
    return node


def _diag_as_typed(a: Func, b: Expr) -> bool:
    """Whether the parser's ``diag`` ``a`` types as ``b``: typing makes it :class:`Diag` of a
    column vector and :class:`DiagPart` of a square matrix (and refuses anything else), so a
    ``diag`` whose argument matches ``b``'s, of the same shape, is ``b``."""
    if a.name != "diag" or type(b) not in (Diag, DiagPart):
        return False
    rows, cols = b.arg.shape
    return rows != ONE and ((cols == ONE) if type(b) is Diag else (cols != ONE))


@lru_cache(maxsize=None)
def _data_fields(cls) -> tuple:
    """The fields of the node class ``cls`` that can hold something other than a child node:
    all but those declared a node (``arg: Expr``, ``of: Symbol``), which are children, compared
    as such (the tuple of an n-ary node's children is kept: tested by its value)."""
    from dataclasses import fields

    return tuple(fd.name for fd in fields(cls) if fd.type not in ("Expr", "Symbol", Expr, Symbol))


def _same_tree_up_to_size_names(tree: Expr, result: Expr, by_name: dict) -> bool:
    """Whether ``tree`` (read back from the printed text) is ``result`` once its size names,
    which inference on the text chose afresh, are renamed after the original symbols' sizes.
    False when the renaming is not one-to-one, or when anything else differs."""
    from dataclasses import replace

    rename: dict = {}
    for s in symbols_of(tree):
        o = by_name[s.name]
        for mine, theirs in ((s.rows, o.rows), (s.cols, o.cols)):
            if rename.setdefault(mine, theirs) != theirs:
                return False
    if len(set(rename.values())) != len(rename):
        return False

    def rn(d):
        return rename.get(d, d)

    def leaf(node: Expr) -> Expr:
        if isinstance(node, Symbol):
            renamed = replace(node, rows=rn(node.rows), cols=rn(node.cols))
            return by_name[node.name] if renamed == by_name[node.name] else renamed
        if isinstance(node, Ones):
            return Ones(rn(node.n))
        if isinstance(node, Identity):
            return Identity(rn(node.n))
        if isinstance(node, Zero):
            return Zero(rn(node.rows), rn(node.cols))
        if isinstance(node, Commutation):
            return Commutation(rn(node.m), rn(node.n))
        return node

    try:
        return tree.map(leaf) == result
    except Exception:  # noqa: BLE001  (a rebuilt node that does not type: not the same tree)
        return False


#: ``K_{ns,p}``: the commutation matrix of composite sizes, which the reader does not take.
_COMPOSITE_COMMUTATION_RE = re.compile(r"K_\{[^{}]*,")


def printed_matches(printed: str, f: Expr, result: Expr, all_syms, declarations: dict,
                    seed_text: str = "") -> bool | None:
    """Whether the LaTeX ``printed`` for ``result`` reads back as the same function: parsed
    with the same declarations and evaluated at random points, it must equal ``result``.
    ``None`` when the text leaves something open that the check needs (the size of a zero, of
    a vec or Kronecker factor, of a bare ``I``), so nothing can be said; ``False``, as for a
    mismatch, when the text does not parse at all."""
    if r"\mathbf{0}" in printed or _SIZED_ZERO_RE.search(printed):
        return None  # a zero vector or matrix whose size the text does not fix: cannot say
    try:
        parsed = parse(printed)
    except NestedTooDeeplyError:
        # a result deeper than the reader takes (the Hessian of 148 nested square roots): not
        # a printer bug, and not a formula anyone reads; refused in words
        raise MatDerivError("the derivative is nested too deeply to typeset: it nests more than "
                            f"{MAX_DEPTH} functions or operators one inside another; it is not "
                            "printed", hint="split the expression, or name its parts and "
                            "differentiate them one by one") from None
    except MatDerivError:
        # the printer's notation reads (of 3 896 random derivations none failed) except a
        # commutation matrix of composite sizes, K_{ns,p}: other text that does not read is a
        # printer bug, not notation to let through unchecked
        return None if _COMPOSITE_COMMUTATION_RE.search(printed) else False
    if _same_as_parsed(parsed, result):
        return True  # the text parses to the very tree that was verified (before typing)
    identity_letters = [letters for _, letters in _identity_subscripts(parsed, printed)]
    if any(isinstance(n, (Zero, Kron, Vec)) for n in parsed.tree.walk()) or \
            not all(identity_letters):
        return None  # sizes of 0, (x), vec and a bare I are not fixed by the text: cannot say
    # a size written as one letter on an identity is the result's size of that name, also
    # where no symbol fixes it (the m of \log\det(10^{8} I_m)\, x)
    written = {ls[0] for ls in identity_letters if len(ls) == 1}
    by_name = {s.name: s for s in all_syms}
    # sizes printed as numbers (tr(I_n) as n) read back as scalars valued at the size
    size_scalars = _sizes_as_scalars(
        sorted({n for node in result.walk() for n in (printed_size(node) or ())}), by_name)
    try:
        tree = infer(parsed, (), **_declare_scalars(_with_expression_kinds(declarations, all_syms),
                                                   size_scalars)).tree
    except MatDerivError:
        return False  # it reads as an ill-typed formula
    by_name.update(size_scalars)
    for s in symbols_of(tree):
        o = by_name.get(s.name)
        if o is None or (s.rows == ONE) != (o.rows == ONE) or (s.cols == ONE) != (o.cols == ONE):
            return None
    if _same_tree_up_to_size_names(tree, result, by_name):
        return True  # the text reads back as the very tree that was verified
    sized = {n for s in symbols_of(tree) for d in (s.rows, s.cols) for n in d}
    if any(isinstance(n, Ones) and not set(n.n) <= sized for n in tree.walk()):
        return None  # a ones vector whose size the text leaves open (1^T 1): cannot say
    rng = np.random.default_rng(zlib.crc32(("printed:" + seed_text).encode("utf-8")))
    whole = whole_number_symbols(f)
    maps = size_maps(all_syms, f)
    if size_scalars:  # a size written as a number must be the size at two sizes (3 is not n)
        maps = [maps[0], _one_larger(maps[0])]
    checked = 0
    with np.errstate(all="ignore"):
        for i, sizes in enumerate(maps):
            written_sizes = {k: sizes[k] for k in written if k in sizes}
            for attempt in range(4):
                env = draw(all_syms, sizes, rng, STRATEGIES[attempt % len(STRATEGIES)], whole)
                for name in size_scalars:
                    if name not in sizes:
                        return None  # a printed size that no symbol has: cannot say
                    env[name] = float(sizes[name])
                try:
                    R = _value(result, env, sizes)
                except MatDerivError:
                    continue
                if not np.all(np.isfinite(R)):
                    continue
                try:
                    C = _claim_value(tree, env, R, written_sizes)
                except MatDerivError:
                    return False  # its sizes do not fit the symbols' values
                except (ValueError, np.linalg.LinAlgError, FloatingPointError):
                    return None
                if not _close(C, R):
                    # large values (exponentials of exponentials) can make two orders of the
                    # same arithmetic differ by rounding: ask again at the same point scaled
                    # down; a printer bug differs there too
                    env = {k: (v if np.ndim(v) == 0 or k in whole else 0.25 * v)
                           for k, v in env.items()}
                    try:
                        R = _value(result, env, sizes)
                        C = _claim_value(tree, env, R, written_sizes)
                    except (MatDerivError, ValueError, np.linalg.LinAlgError, FloatingPointError):
                        return False
                    if not (np.all(np.isfinite(R)) and _close(C, R)):
                        return False
                checked += 1
                if checked == 2 and not size_scalars:
                    return True
                if size_scalars:
                    break  # one point at each of the two sizes
            if size_scalars and checked <= i:
                return None  # no finite point at these sizes: cannot say
    return None if checked == 0 else True
