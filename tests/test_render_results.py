"""Every LaTeX string the engine produces for the public corpus (results and equations) renders
in KaTeX (strict, throwOnError) and converts with pandoc's texmath to docx and MathML without a
warning (SPEC 2)."""
from __future__ import annotations

import pytest

from conftest import corpus_cases
from matderiv import derive
from renderers import katex_errors, pandoc_errors


#: Beyond the corpus: notation the corpus does not reach (indexed symbols, which print in
#: braces so that a transpose is not a double superscript; the functions added later).
EXTRA = [
    {"id": "extra-layer-indices", "wrt": ["W^{(1)}"],
     "expr": r"-y^\top \log\operatorname{softmax}(W^{(2)} \sigma(W^{(1)} x + b^{(1)}) + b^{(2)})"},
    {"id": "extra-sample-index", "wrt": ["x^{[i]}"], "expr": r"x^{[i]\top} A x^{[i]}"},
    {"id": "extra-tan-arctan", "wrt": [r"\tau", r"\tau"], "expr": r"\tan\tau + \arctan(\tau^2)"},
    {"id": "extra-log-cosh", "wrt": ["x"], "expr": r"\mathbf{1}^\top \log\cosh(A x - b)"},
    {"id": "extra-hadamard-power", "wrt": ["x"], "expr": r"(A x - b)^{\circ 3}"},
    {"id": "extra-subscripts", "wrt": ["h_{t-1}"],
     "expr": r"\mathbf{1}^\top \tanh(W_{\text{hh}} h_{t-1} + W_{\rm xh} x_{k+1}) + \lambda_{\max}"
             r" h_{t-1}^\top W_{\mathit{a}} W_{\mathsf{b}} h_{t-1}"},
    {"id": "extra-accents", "wrt": [r"\hat{\mathbf{y}}"],
     "expr": r"\|\hat{\mathbf{y}} - \bar{y}\|^2 + \tilde{x}^\top \hat{\mathbf{y}}"
             r" + \vec{v}^\top \hat{W}^{(1)} \hat{\mathbf{y}} + \dot{a}^\top \overline{A}_1 \hat{\mathbf{y}}"},
    {"id": "extra-fraction-before-a-sum", "wrt": ["x"], "expr": r"\frac{x^\top y}{\|x\| \|y\|}"},
    {"id": "extra-fraction-before-a-sum-2", "wrt": ["x", "x"], "expr": r"\sqrt{1 + x^\top x}"},
]


def _outputs():
    out = []
    for case in corpus_cases() + EXTRA:
        wrt = case["wrt"][0] if len(case["wrt"]) == 1 else tuple(case["wrt"])
        d = derive(case["expr"], wrt, **(case.get("options") or {}))
        out.append((case["id"] + ":latex", d.latex))
        out.append((case["id"] + ":equation", d.equation))
    return out


@pytest.fixture(scope="module")
def outputs():
    return _outputs()


def test_outputs_render_in_katex(outputs):
    errs = katex_errors([s for _, s in outputs])
    assert not errs, {outputs[i][0]: (outputs[i][1], m) for i, m in errs.items()}


def test_outputs_convert_with_pandoc_without_warnings(outputs):
    errs = pandoc_errors([s for _, s in outputs])
    assert not errs, {outputs[i][0]: (outputs[i][1], m) for i, m in errs.items()}


# ------------------------------------------------------------------------------------------
# KaTeX's limit of 1000 macro expansions per formula (maxExpand)
# ------------------------------------------------------------------------------------------
LONG_STEPS = r"\|\operatorname{softmax}(\log(\mathbf{1} + C x \odot C x))\|_2"


def test_the_expansion_count_is_katexs_own():
    # each \operatorname costs KaTeX 3 expansions, \, 3 and \quad 1: the estimate is exact, so a
    # formula at the limit renders and one past it does not
    from matderiv.printing.latex import KATEX_MAX_EXPAND, katex_expansions

    at = r"\operatorname{tr}(X) + " * 333 + r"a \quad b"          # 3 * 333 + 1 = 1000
    past = at + r" \, c"
    assert katex_expansions(at) == KATEX_MAX_EXPAND and katex_expansions(past) > KATEX_MAX_EXPAND
    errs = katex_errors([at, past])
    assert 0 not in errs and "Too many expansions" in errs[1]


def test_steps_past_katexs_limit_are_dropped_with_a_note():
    from matderiv.locate import find_macros
    from matderiv.printing.latex import KATEX_MAX_EXPAND, katex_expansions
    from matderiv.render import render_macro

    d = derive(LONG_STEPS, ("x", "x"), steps=True)
    assert katex_expansions(" ".join(d.steps)) > KATEX_MAX_EXPAND  # a Hessian's long derivation
    macro = find_macros(r"\matderiv[steps]<" + LONG_STEPS + ", x, x>")[0]
    r = render_macro(macro, math="display", cache={})
    assert r.error is None and r.latex == d.equation
    assert any("too long to typeset: KaTeX would need" in n for n in r.notes)
    assert not katex_errors([r.latex])
    short = render_macro(find_macros(r"\matderiv[steps]<x^\top A x, x>")[0], math="display",
                         cache={})
    assert short.latex.startswith(r"\begin{aligned}") and not short.notes


def test_a_result_past_katexs_limit_is_refused(monkeypatch):
    import matderiv.printing.latex as printer
    from matderiv import MatDerivError

    d = derive(r"\operatorname{tr}(\operatorname{diag}(x) A)", "x")  # diag(A): one \operatorname
    assert printer.katex_expansions(d.latex) == 3
    monkeypatch.setattr(printer, "KATEX_MAX_EXPAND", 2)
    with pytest.raises(MatDerivError, match="too long to typeset: KaTeX would need 3 macro"):
        derive(r"\operatorname{tr}(\operatorname{diag}(x) A)", "x")
