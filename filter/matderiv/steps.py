"""Derivation steps: the differential method as the engine performed it, typeset line by line.

Owns the staging of a differential (one layer of nonlinear rules per line, deeper differentials
shown as ``d(U)``), the trace-trick / vec identification lines, the rule annotations in English
or Chinese, and the list of expression trees behind the lines (each must equal the
differential; :func:`matderiv.verify.verify_lines` checks them numerically).  Knows nothing of
documents.
"""
from __future__ import annotations

from dataclasses import dataclass

from .calculus.build import add, mul, transpose
from .calculus.differential import Differentiator
from .calculus.identify import gradient, jacobian, linear_terms
from .calculus.simplify import simplify
from .expr import (ONE, SCALAR, Differential, DifferentialOf, Expr, Hadamard, Symbol, Trace, Vec)

MAX_STAGES = 12

WORDS = {
    "en": {
        "product": "product rule", "hadamard": r"product rule for $\odot$",
        "kronecker": r"product rule for $\otimes$", "inverse": r"$\mathrm{d}(U^{-1}) = -U^{-1}\,\mathrm{d}U\,U^{-1}$",
        "determinant": r"$\mathrm{d}\lvert U\rvert = \lvert U\rvert\operatorname{tr}(U^{-1}\mathrm{d}U)$",
        "log-determinant": r"$\mathrm{d}\log\lvert U\rvert = \operatorname{tr}(U^{-1}\mathrm{d}U)$",
        "determinant-power": r"$\mathrm{d}\lvert U^k\rvert = k\lvert U^k\rvert\operatorname{tr}(U^{-1}\mathrm{d}U)$",
        "log-determinant-power": r"$\mathrm{d}\log\lvert U^k\rvert = k\operatorname{tr}(U^{-1}\mathrm{d}U)$",
        "trace-power": r"$\mathrm{d}\operatorname{tr}(U^k) = k\operatorname{tr}(U^{k-1}\mathrm{d}U)$",
        "trace-kronecker": r"$\operatorname{tr}(A \otimes B) = \operatorname{tr}(A)\operatorname{tr}(B)$",
        "logistic": r"the logistic function: $1/(1 + e^{-u}) = \sigma(u)$",
        "sum-kronecker": r"$\operatorname{sum}(A \otimes B) = \operatorname{sum}(A)\operatorname{sum}(B)$",
        "norm-kronecker": r"$\lVert A \otimes B\rVert = \lVert A\rVert\,\lVert B\rVert$",
        "power": "power rule", "scalar-power": "power rule", "norm-power": "norm rule",
        "norm": "norm rule", "softmax": r"$\mathrm{d}s = (\operatorname{diag}(s) - s s^\top)\,\mathrm{d}u$",
        "elementwise": r"elementwise: $\mathrm{d}f(U) = f'(U) \odot \mathrm{d}U$",
        "chain": r"chain rule: $\mathrm{d}f(u) = f'(u)\,\mathrm{d}u$",
        "differential": "differential", "trace": r"trace trick: $\operatorname{tr}(AB) = \operatorname{tr}(BA)$",
        "trace_hadamard": r"trace trick: $\operatorname{tr}(AB) = \operatorname{tr}(BA)$, $\operatorname{tr}(A^\top (B \odot C)) = \operatorname{tr}((A \odot B)^\top C)$; simplify",
        "scalar_transpose": r"trace trick for a scalar: $a = \operatorname{tr}(a) = \operatorname{tr}(a^\top)$; simplify",
        "collect": "collect terms", "simplify": "simplify", "vec": r"vectorise: $\operatorname{vec}(AXB) = (B^\top \otimes A)\operatorname{vec}(X)$",
        "identify": "identify the derivative", "layout": "numerator layout",
        "scalar": r"$\mathrm{d}F = F'\,\mathrm{d}t$",
    },
    "zh": {
        "product": "乘积法则", "hadamard": "逐元素乘积法则", "kronecker": "克罗内克积法则",
        "inverse": r"逆矩阵的微分 $\mathrm{d}(U^{-1}) = -U^{-1}\,\mathrm{d}U\,U^{-1}$",
        "determinant": r"行列式的微分 $\mathrm{d}\lvert U\rvert = \lvert U\rvert\operatorname{tr}(U^{-1}\mathrm{d}U)$",
        "log-determinant": r"对数行列式的微分 $\mathrm{d}\log\lvert U\rvert = \operatorname{tr}(U^{-1}\mathrm{d}U)$",
        "log-determinant-power": r"矩阵幂的对数行列式的微分 $\mathrm{d}\log\lvert U^k\rvert = k\operatorname{tr}(U^{-1}\mathrm{d}U)$",
        "determinant-power": r"矩阵幂的行列式的微分 $\mathrm{d}\lvert U^k\rvert = k\lvert U^k\rvert\operatorname{tr}(U^{-1}\mathrm{d}U)$",
        "trace-power": r"$\mathrm{d}\operatorname{tr}(U^k) = k\operatorname{tr}(U^{k-1}\mathrm{d}U)$",
        "logistic": r"逻辑斯谛函数 $1/(1 + e^{-u}) = \sigma(u)$",
        "trace-kronecker": r"克罗内克积的迹 $\operatorname{tr}(A \otimes B) = \operatorname{tr}(A)\operatorname{tr}(B)$",
        "sum-kronecker": r"克罗内克积的元素和 $\operatorname{sum}(A \otimes B) = \operatorname{sum}(A)\operatorname{sum}(B)$",
        "norm-kronecker": r"克罗内克积的范数 $\lVert A \otimes B\rVert = \lVert A\rVert\,\lVert B\rVert$",
        "power": "幂的微分", "scalar-power": "幂的微分", "norm-power": "范数的微分", "norm": "范数的微分",
        "softmax": r"softmax 的微分 $\mathrm{d}s = (\operatorname{diag}(s) - s s^\top)\,\mathrm{d}u$",
        "elementwise": r"逐元素函数 $\mathrm{d}f(U) = f'(U) \odot \mathrm{d}U$",
        "chain": r"链式法则 $\mathrm{d}f(u) = f'(u)\,\mathrm{d}u$",
        "differential": "微分", "trace": r"迹技巧 $\operatorname{tr}(AB) = \operatorname{tr}(BA)$",
        "trace_hadamard": r"迹技巧 $\operatorname{tr}(AB) = \operatorname{tr}(BA)$, $\operatorname{tr}(A^\top (B \odot C)) = \operatorname{tr}((A \odot B)^\top C)$，化简",
        "scalar_transpose": r"迹技巧：标量 $a = \operatorname{tr}(a) = \operatorname{tr}(a^\top)$，化简",
        "collect": "合并同类项", "simplify": "化简", "vec": r"向量化 $\operatorname{vec}(AXB) = (B^\top \otimes A)\operatorname{vec}(X)$",
        "identify": "对照定义得导数", "layout": "分子布局",
        "scalar": r"$\mathrm{d}F = F'\,\mathrm{d}t$",
    },
}


@dataclass(frozen=True)
class Line:
    """One line of a derivation: ``lhs = rhs`` with a note; ``tree`` (when not None) is an
    expression that must equal the line's left-hand quantity (df, vec dF) numerically."""

    lhs: str
    rhs: str
    note: str
    tree: Expr | None
    kind: str = "d"   # "d": equals d f;  "vec": equals vec(d F);  "result": the derivative


def _words(lang: str) -> dict:
    return WORDS["zh"] if (lang or "").lower().startswith("zh") else WORDS["en"]


def _note(text: str) -> str:
    r"""A note as LaTeX: ``\text{...}`` pieces with inline math kept as math."""
    parts = text.split("$")
    out = []
    for i, p in enumerate(parts):
        if not p:
            continue
        out.append(p if i % 2 else r"\text{" + p + "}")
    return r"\quad " + "".join(out) if out else ""


def _tidy_note(w: dict, parts: list, natural: Expr) -> str:
    """The note of the line that brings the identified parts to the result: collecting terms,
    or (one part) simplifying, naming the symmetric matrices (their transposes are dropped)."""
    if len(parts) > 1:
        return w["collect"]
    note = w["simplify"]
    sym = sorted({n.latex or n.name for n in natural.walk()
                  if isinstance(n, Symbol) and n.symmetric})
    if sym:
        note += ", " + ", ".join(f"${m} = {m}^\\top$" for m in sym)
    return note


def differential_stages(f: Expr, var: Symbol):
    """[(stage tree, rule names)], one per layer of nonlinear rules, ending with the full
    differential.  Empty when ``f`` does not depend on ``var``."""
    from .calculus.differential import with_logistic

    stages = []
    written_out = f
    f = with_logistic(f)
    for k in range(1, MAX_STAGES + 1):
        d = Differentiator(var, levels=k)
        tree = d(f)
        if tree is None:
            return []
        names = ["logistic"] if k == 1 and f is not written_out else []
        for rule, _node, level in d.rules:
            base = rule.split(":")[0]
            if level == k and base not in names and base not in ("transpose", "trace"):
                names.append(base)
        stages.append((tree, names))
        if not any(isinstance(n, DifferentialOf) for n in tree.walk()):
            return stages
    full = Differentiator(var)(f)
    stages.append((full, []))
    return stages


def derivation(f: Expr, var: Symbol, kind: str, natural: Expr, arranged: Expr, layout: str,
               lhs_symbol: str, f_latex: str, lang: str = "en") -> list[Line]:
    """The lines of the derivation of the first derivative."""
    from .printing.latex import latex

    w = _words(lang)
    lines: list[Line] = []
    d_lhs = r"\mathrm{d}" + (f_latex if _is_name(f_latex) else r"\left(" + f_latex + r"\right)")
    stages = differential_stages(f, var)
    if not stages:
        from .calculus.build import zero

        lines.append(Line(d_lhs, "0", _note(w["differential"]), zero(f.shape)))
        lines.append(Line(r"\Rightarrow\quad " + lhs_symbol, latex(arranged), _note(w["identify"]), None, "result"))
        return lines
    for i, (tree, names) in enumerate(stages):
        note = ", ".join(w.get(n, n) for n in names) or w["differential"]
        lines.append(Line(d_lhs if i == 0 else "", latex(tree), _note(note), tree))
    full = stages[-1][0]
    terms = linear_terms(full)
    if not terms:  # the differential came to 0 (0 x^\top x): nothing to identify
        lines.append(Line(r"\Rightarrow\quad " + lhs_symbol, latex(arranged), _note(w["identify"]),
                          None, "result"))
        return _without_repeats(lines)
    dX = Differential(var)
    if var.shape == SCALAR:
        tree = mul(natural, dX)
        lines.append(Line("", _latex_product(natural, dX), _note(w["scalar"]), tree))
    elif f.shape == SCALAR:
        grads = [simplify(gradient(t)) for t in terms]
        pieces = [_trace_form(g, dX) for g in grads]
        tree = add(*pieces) if pieces else None
        nodes = full.nodes()
        if any(isinstance(n, Hadamard) for n in nodes):
            note = w["trace_hadamard"]
        elif var.shape[1] == ONE and not any(isinstance(n, Trace) for n in nodes):
            note = w["scalar_transpose"]  # a vector variable, no trace: a^T b = b^T a does it
        else:
            note = w["trace"]
        lines.append(Line("", _join(_latex_trace(g, dX) for g in grads), _note(note), tree))
        if len(grads) > 1 or grads[0] != natural:
            lines.append(Line("", _latex_trace(natural, dX), _note(_tidy_note(w, grads, natural)),
                              _trace_form(natural, dX)))
    else:
        jacs = [simplify(jacobian(t, var)) for t in terms]
        vec_dx = dX if var.shape[1] == ONE else Vec(dX)
        vec_lhs = "" if (f.shape[1] == ONE and var.shape[1] == ONE) else \
            r"\operatorname{vec}(\mathrm{d}" + (f_latex if _is_name(f_latex) else r"\left(" + f_latex + r"\right)") + ")"
        kind_line = "d" if not vec_lhs else "vec"
        rhs = _join(_latex_product(j, vec_dx) for j in jacs)
        lines.append(Line(vec_lhs, rhs, _note(w["vec"]), add(*[mul(j, vec_dx) for j in jacs]), kind_line))
        if len(jacs) > 1 or jacs[0] != natural:
            lines.append(Line("", _latex_product(natural, vec_dx), _note(_tidy_note(w, jacs, natural)),
                              mul(natural, vec_dx), kind_line))
    note = w["identify"] + ("; " + w["layout"] if layout == "numerator" and kind == "gradient" else "")
    lines.append(Line(r"\Rightarrow\quad " + lhs_symbol, latex(arranged), _note(note), None, "result"))
    return _without_repeats(lines)


def _without_repeats(lines: list[Line]) -> list[Line]:
    """Drop a line that repeats the line before it (same left and right side)."""
    import re

    def norm(t: str) -> str:
        return re.sub(r"\\[,;:!]|\s", "", t)

    out: list[Line] = []
    for ln in lines:
        if out and norm(ln.rhs) == norm(out[-1].rhs) and (not ln.lhs or ln.lhs == out[-1].lhs):
            continue
        out.append(ln)
    return out


def _is_name(s: str) -> bool:
    import re

    return bool(re.fullmatch(r"\\?[A-Za-z]+(_\{?[A-Za-z0-9]+\}?)?", s or ""))


def _trace_form(g: Expr, dX: Differential) -> Expr:
    if dX.shape[1] == ONE:
        return mul(transpose(g), dX)
    return Trace(mul(transpose(g), dX))


def _paren_t(g: Expr) -> str:
    from .printing.latex import latex, paren

    s = latex(g)
    if isinstance(g, Symbol):
        return s + r"^\top"
    return paren(s) + r"^\top"


def _join(pieces) -> str:
    out = ""
    for p in pieces:
        if not out:
            out = p
        elif p.startswith("-"):
            out += " - " + p[1:].lstrip()
        else:
            out += " + " + p
    return out


def _latex_trace(g: Expr, dX: Differential) -> str:
    r"""``tr(G^T dX)`` as a textbook writes it: ``\operatorname{tr}(b a^\top \mathrm{d}X)``,
    ``x^\top A^\top \mathrm{d}x``, a minus sign outside."""
    from .calculus.simplify import split, build_product
    from .printing.latex import latex, paren

    coef, scalars, chain = split(g)
    sign = ""
    if coef < 0:
        sign, g = "-", build_product(-coef, scalars, chain)
    from .calculus.simplify import prettify

    gt = prettify(simplify(transpose(g)))
    body = latex(mul(gt, dX))
    if dX.shape[1] == ONE:
        return sign + body
    return sign + r"\operatorname{tr}" + paren(body)


def _latex_product(j: Expr, v: Expr) -> str:
    from .expr import Add, Hadamard, Kron
    from .printing.latex import latex, paren

    s = latex(j)
    if isinstance(j, (Add, Kron, Hadamard)):
        s = paren(s)
    return s + r"\," + latex(v)


def to_latex(lines: list[Line]) -> list[str]:
    """Each line as ``lhs &= rhs \\quad \\text{note}`` for an ``aligned`` block."""
    return [f"{ln.lhs} &= {ln.rhs}{ln.note}" for ln in lines]
