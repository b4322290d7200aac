r"""Claims (``expect=``, SPEC 1.5) as users meet them: one test per diagnosis of the engine's
verdict (equal, transpose with the layouts named, symmetric naming the matrix, square, factor,
sign, wrong with the correct formula), the four wrong formulas of seed 001 (the Matrix Reference
Manual list, see the corpus README "Formulas in the seeds that are wrong") and correct ones from
the same list, unreadable claims as errors, the verdict typeset by ``render_macro`` (after the
result, after the last line of steps, without ``\color``/``\checkmark`` where a LaTeX preamble
lacks them), and the verdict LaTeX rendering in KaTeX and pandoc's texmath."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from matderiv import MatDerivError, derive
from matderiv.locate import find_macros
from matderiv.render import expect_span, render_macro, verdict_latex

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from renderers import katex_errors, pandoc_errors  # noqa: E402

TR = r"\operatorname{tr}"


def verdict(expr, wrt, claim, **opts):
    d = derive(expr, wrt, expect=claim, **opts)
    assert d.verdict is not None
    return d, d.verdict


# ------------------------------------------------------------------------------------------
# one test per diagnosis
# ------------------------------------------------------------------------------------------
def test_equal():
    d, v = verdict("x^T A x", "x", "(A + A^T) x")
    assert v.ok and v.diagnosis == "equal"
    assert v.claim == "(A + A^T) x"
    assert r"\checkmark" in v.latex and "as claimed" in v.latex


def test_equal_honours_declarations():
    d, v = verdict("x^T A x", "x", "2 A x", symmetric=["A"])
    assert v.ok and v.diagnosis == "equal"


def test_transpose_names_both_layouts():
    _, v = verdict("a^T X b", "X", "b a^T")
    assert not v.ok and v.diagnosis == "transpose"
    assert v.message == "the claim is the transpose of the computed result: this is the numerator-layout result; this document uses mixed layout"
    _, v = verdict("a^T X b", "X", "a b^T", layout="numerator")
    assert v.diagnosis == "transpose"
    assert "denominator-layout result" in v.message and "uses numerator layout" in v.message
    _, v = verdict("x^T C x", "x", "x^T (C + C^T)")
    assert v.diagnosis == "transpose" and "numerator-layout" in v.message


def test_symmetric_names_the_matrix():
    _, v = verdict("x^T C x", "x", "2 C x")
    assert not v.ok and v.diagnosis == "symmetric"
    assert v.message == "holds only when C is symmetric"
    assert r"\text{ holds only when }C\text{ is symmetric}" in v.latex


def test_square_names_the_factors():
    _, v = verdict(r"\ln\det(A X B)", "X", "X^{-T}")
    assert not v.ok and v.diagnosis == "square"
    assert v.message == "holds only when A and B are square"


def test_factor_is_named():
    _, v = verdict(r"\|X w - y\|^2", "w", "X^T (X w - y)")
    assert not v.ok and v.diagnosis == "factor"
    assert v.message == "the claim is half the correct result"
    _, v = verdict("x^T x", "x", "4 x")
    assert v.diagnosis == "factor" and v.message == "the claim is twice the correct result"
    _, v = verdict("x^T x", "x", "6 x")
    assert v.message == "the claim is 3 times the correct result"


def test_sign():
    _, v = verdict(TR + "(A X^{-1})", "X", "X^{-T} A^T X^{-T}")
    assert not v.ok and v.diagnosis == "factor"
    assert v.message == "the claim has the wrong sign"


def test_wrong_gives_the_correct_formula():
    d, v = verdict(TR + "(A X^T X)", "X", "(A + A^T) X")
    assert not v.ok and v.diagnosis == "wrong"
    assert v.message == ("the claim is wrong (it is only defined when X is square); "
                         "the correct result is " + d.latex)
    assert d.latex == r"X (A + A^\top)"


# ------------------------------------------------------------------------------------------
# seed 001 (Matrix Reference Manual list)
# ------------------------------------------------------------------------------------------
SEED_WRONG = [
    # d/dX tr(X^T A X) = X^T (A + A^T): the transpose (pub-043)
    (TR + "(X^T A X)", "X", "X^T (A + A^T)", "transpose",
     "the claim is the transpose of the computed result: this is the numerator-layout result; this document uses mixed layout"),
    # d/dX tr(A X^T X) = (A + A^T) X: undefined for rectangular X (hid-039)
    (TR + "(A X^T X)", "X", "(A + A^T) X", "wrong",
     r"the claim is wrong (it is only defined when X is square); the correct result is X (A + A^\top)"),
    # [Real] d/dX det(X^T C X) = det(X^T C X)(C + C^T) X (X^T C X)^{-1}: symmetric C only (hid-046)
    (r"\det(X^T C X)", "X", r"\det(X^T C X) (C + C^T) X (X^T C X)^{-1}", "symmetric",
     "holds only when C is symmetric"),
    # d/dX det(AXB) = det(AXB) X^{-T}: square A and B only (hid-044)
    (r"\det(A X B)", "X", r"\det(A X B) X^{-T}", "square", "holds only when A and B are square"),
]

SEED_RIGHT = [
    ("a^T X b", "X", "a b^T", {}),
    ("a^T X^T b", "X", "b a^T", {}),
    ("x^T C x", "x", "(C + C^T) x", {}),
    (r"\log\det X", "X", "X^{-T}", {}),
    (TR + "(A X B)", "X", "A^T B^T", {}),
    (TR + "(A^T X B^T)", "X", "A B", {}),
    (TR + "(X A X^T)", "X", "X (A + A^T)", {}),
    (TR + "(A X B X^T)", "X", "A^T X B^T + A X B", {}),
    (TR + "(A X^{-1})", "X", "-X^{-T} A^T X^{-T}", {}),
    ("(A x + b)^T C (D x + e)", "x", "A^T C (D x + e) + D^T C^T (A x + b)", {}),
    (r"\det(X^T C X)", "X", r"2 \det(X^T C X) C X (X^T C X)^{-1}", {"symmetric": ["C"]}),
    # the corrected forms of the seed's wrong formulas (corpus README)
    (TR + "(X^T A X)", "X", "(A + A^T) X", {}),
    (TR + "(A X^T X)", "X", "X (A + A^T)", {}),
    (r"\det(X^T C X)", "X", r"\det(X^T C X) (C X (X^T C X)^{-1} + C^T X (X^T C X)^{-T})", {}),
    (r"\det(A X B)", "X", r"\det(A X B) A^T (A X B)^{-T} B^T", {}),
]


@pytest.mark.parametrize("expr,wrt,claim,diagnosis,message", SEED_WRONG,
                         ids=["tr-XtAX", "tr-AXtX", "det-XtCX", "det-AXB"])
def test_seed_001_wrong_formulas(expr, wrt, claim, diagnosis, message):
    _, v = verdict(expr, wrt, claim)
    assert not v.ok
    assert (v.diagnosis, v.message) == (diagnosis, message)


@pytest.mark.parametrize("expr,wrt,claim,opts", SEED_RIGHT, ids=lambda x: None)
def test_seed_001_right_formulas(expr, wrt, claim, opts):
    _, v = verdict(expr, wrt, claim, **opts)
    assert v.ok, v.message


# ------------------------------------------------------------------------------------------
# claims that cannot be read are errors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("claim,words", [
    ("2 A x +", "cannot be read"),
    (r"\foo x", "cannot be read"),
    ("B x", "`B`, which does not occur in the expression"),
])
def test_unreadable_claim_is_an_error(claim, words):
    with pytest.raises(MatDerivError) as exc:
        derive("x^T A x", "x", expect=claim)
    assert words in exc.value.message and exc.value.hint


@pytest.mark.parametrize("claim,ok,diagnosis", [
    (r"\nabla_x f = (A + A^T) x", True, "equal"),
    (r"\frac{\partial f}{\partial x} = 2 A x", False, "symmetric"),
    (r"\frac{\partial\, x^T A x}{\partial x^T} = x^T (A + A^T)", False, "transpose"),
    (r"\nabla f(x) = A x + A^\top x", True, "equal"),
])
def test_a_claim_copied_with_its_left_hand_side(claim, ok, diagnosis):
    """A claim pasted from a paper with its derivative symbol on the left is judged by its
    right-hand side (it was "cannot be read: \\partial is not supported")."""
    d, v = verdict("x^T A x", "x", claim)
    assert (v.ok, v.diagnosis) == (ok, diagnosis) and v.claim == claim


def test_an_equation_without_a_derivative_on_the_left_is_not_a_claim():
    with pytest.raises(MatDerivError) as exc:
        derive("x^T A x", "x", expect="f = 2 A x")
    assert "unexpected `=`" in exc.value.message and r"\nabla f = 2 A x" in exc.value.hint


def test_unreadable_claim_in_a_document_points_at_expect():
    text = r"$\matderiv[steps, expect={2 A x +}]<x^T A x, x>$"
    (mac,) = find_macros(text)
    r = render_macro(mac, {}, math="inline")
    assert r.error is not None and "cannot be read" in r.error.message
    assert r.claim_ok is None and "matderiv error" in r.latex
    assert text[r.error_offset:r.error_end] == "expect={2 A x +}"


# ------------------------------------------------------------------------------------------
# the verdict typeset in documents
# ------------------------------------------------------------------------------------------
def _render(text, math="display", **kw):
    (mac,) = find_macros(text)
    return render_macro(mac, {}, math=math, **kw)


def test_rendered_carries_the_verdict():
    r = _render(r"\matderiv[expect={2 A x}]<x^T A x, x>")
    assert r.error is None and r.claim_ok is False and r.wrong
    assert r.claim_diagnosis == "symmetric" and r.claim_message == "holds only when A is symmetric"
    assert r.claim == "2 A x" and r.computed == r"(A + A^\top) x"
    d = derive("x^T A x", "x", expect="2 A x")
    assert r.latex == d.equation + d.verdict.latex
    ok = _render(r"\matderiv[show=result, expect={(A + A^T) x}]<x^T A x, x>", math="inline")
    assert ok.claim_ok is True and not ok.wrong
    assert ok.latex.startswith(r"(A + A^\top) x\quad") and ok.latex.endswith(r"\text{as claimed}")
    plain = _render(r"\matderiv<x^T A x, x>")
    assert plain.claim_ok is None and plain.claim is None and plain.computed == r"(A + A^\top) x"


def test_verdict_after_the_last_line_of_steps():
    r = _render(r"\matderiv[steps, expect={2 A x}]<x^T A x, x>")
    assert r.display and r.latex.startswith(r"\begin{aligned}")
    body = r.latex[len(r"\begin{aligned}"):-len(r"\end{aligned}")]
    lines = body.split(r"\\")
    assert len(lines) > 2
    assert r"\color{red}" in lines[-1] and all(r"\color" not in ln for ln in lines[:-1])
    assert lines[-1].rstrip().endswith(r"\text{ is symmetric}")


def test_long_verdict_in_display_math_gets_its_own_line():
    src = r"\matderiv[expect={\det(A X B) X^{-T}}]<\det(A X B), X>"
    d = derive(r"\det(A X B)", "X", expect=r"\det(A X B) X^{-T}")
    r = _render(src, math="display")
    assert r.display and r.wrong
    lhs, rhs = d.equation.split(" = ", 1)
    assert r.latex == (r"\begin{aligned} " + lhs + " &= " + rhs + r" \\ &"
                       + d.verdict.latex.strip() + r" \end{aligned}")
    inline = _render(src, math="inline")
    assert not inline.display and inline.latex == d.equation + d.verdict.latex
    short = _render(r"\matderiv[expect={2 A x}]<x^T A x, x>", math="display")
    assert not short.display and r"\begin{aligned}" not in short.latex


def test_verdict_without_color_or_checkmark():
    r = _render(r"\matderiv[expect={2 A x}]<x^T A x, x>", color=False)
    assert r"\color" not in r.latex and r"{\times}" in r.latex
    r = _render(r"\matderiv[expect={2 x}]<x^T x, x>", color=False, checkmark=False)
    assert r.latex.endswith(r"= 2 x\quad \text{as claimed}")
    assert verdict_latex(r"{\color{green}{\checkmark}}") == r"{\color{green}{\checkmark}}"


def test_expect_span():
    text = r"x \matderiv[steps, expect={f(a, b)}, layout=numerator]<y, x>"
    (mac,) = find_macros(text)
    a, b = expect_span(mac)
    assert text[a:b] == "expect={f(a, b)}"
    (mac,) = find_macros(r"\matderiv[expect = {2 x} ]<x^T x, x>")
    assert mac.raw[slice(*expect_span(mac))] == "expect = {2 x}"
    (mac,) = find_macros(r"\matderiv[steps]<x^T x, x>")
    assert expect_span(mac) is None


# ------------------------------------------------------------------------------------------
# the verdict LaTeX renders (SPEC 2)
# ------------------------------------------------------------------------------------------
def _verdict_formulas():
    cases = [("x^T A x", "x", "(A + A^T) x", {}), ("a^T X b", "X", "b a^T", {}),
             (r"\|X w - y\|^2", "w", "X^T (X w - y)", {}),
             (TR + "(A X^{-1})", "X", "X^{-T} A^T X^{-T}", {})]
    cases += [(e, w, c, {}) for e, w, c, _, _ in SEED_WRONG]
    out = []
    for e, w, c, o in cases:
        d = derive(e, w, expect=c, **o)
        out += [d.verdict.latex, d.equation + d.verdict.latex]
    for src in (r"\matderiv[steps, expect={2 A x}]<x^T A x, x>",
                r"\matderiv[steps, expect={(A + A^T) x}]<x^T A x, x>",
                r"\matderiv[expect={\det(A X B) X^{-T}}]<\det(A X B), X>"):
        out.append(_render(src, sep="\n").latex)
    # several names: "holds only when A and B are symmetric" / "for square A and B"
    out.append(verdict_latex(r"\quad {\color{red}{\times}}\ \text{claimed } 2 A x"
                             r"\text{ holds only when }A\text{ and }B\text{ are symmetric}"))
    out.append(verdict_latex(_render(r"\matderiv[expect={2 x}]<x^T x, x>").latex, False, False))
    return out


@pytest.fixture(scope="module")
def verdict_formulas():
    return _verdict_formulas()


def test_verdicts_render_in_katex(verdict_formulas):
    assert katex_errors(verdict_formulas) == {}


def test_verdicts_convert_in_texmath(verdict_formulas):
    assert pandoc_errors(verdict_formulas) == {}


def test_symmetric_directions_only():
    # the Hessian of log det X restricted to symmetric X (no K_nn) is a common published form:
    # it agrees with the unconstrained Hessian only on symmetric dX, and the verdict says so
    d, v = verdict(r"\log\det X", ["X", "X"], r"-X^{-1} \otimes X^{-1}", symmetric=["X"])
    assert not v.ok and v.diagnosis == "symmetric-directions"
    assert "only for symmetric dX" in v.message and r"K_{nn}" in v.message
    assert r"\text{ holds only for symmetric }\mathrm{d}X" in v.latex
    assert not katex_errors([v.latex]) and not pandoc_errors([v.latex])
    # without the declaration it is plainly wrong
    d, v = verdict(r"\log\det X", ["X", "X"], r"-X^{-1} \otimes X^{-1}")
    assert not v.ok and v.diagnosis == "wrong"


@pytest.mark.parametrize("expr, wrt, claim, decl", [
    # the engine's own notation reads back as a claim: K_{mn} and I_{n^2}
    (r"\log\det X", ["X", "X"], r"-(X^{-1} \otimes X^{-1}) K_{nn}", {"symmetric": ["X"]}),
    (r"\log\det X", ["X", "X"], r"-K_{nn} (X^{-\top} \otimes X^{-1})", {}),
    ("X^T", "X", r"K_{mn}", {}),
    (r"\operatorname{tr}(X^\top X)", ["X", "X"], r"2 I_{mn}", {}),
    (r"\operatorname{tr}(X^2)", ["X", "X"], r"2 K_{nn}", {}),
    # sized identities in Kronecker products, sized zeros (were "wrong" and "cannot be read")
    ("A X", "X", r"I_n \otimes A", {}),
    (r"\operatorname{tr}(X^\top A X)", ["X", "X"], r"I_n \otimes (A + A^\top)", {}),
    (r"a^\top X^\top X a", ["X", "X"], r"2 (a a^\top \otimes I_m)", {}),
    (r"a^\top X b", ["X", "X"], r"0_{mn \times mn}", {}),
    (r"a^\top x", ["x", "x"], r"0_{n \times n}", {}),
])
def test_claims_in_the_engines_notation(expr, wrt, claim, decl):
    d, v = verdict(expr, wrt, claim, **decl)
    assert v.ok, v.message


def test_a_sized_identity_claim_of_the_wrong_size_is_wrong():
    # I_m \otimes A is not the Jacobian of A X (X is m x n): the written size is honoured
    d, v = verdict("A X", "X", r"I_m \otimes A")
    assert not v.ok


def test_a_claim_whose_kronecker_sizes_cannot_be_matched_is_not_called_wrong():
    d = derive(r"X \otimes A", "X")
    with pytest.raises(MatDerivError) as info:
        derive(r"X \otimes A", "X", expect=d.latex)
    assert "could not be checked" in info.value.message


def test_a_transposed_commutation_claim_is_the_other_layout():
    d, v = verdict("X^T", "X", r"K_{nm}")
    assert not v.ok and v.diagnosis == "transpose"


@pytest.mark.parametrize("expr, claim", [
    (r"\log\det X", r"2 X^{-1} - X^{-1} \odot I"),
    (r"\operatorname{tr}(A X)", r"A + A^T - A \odot I"),
])
def test_gradient_in_the_free_entries_of_a_symmetric_matrix(expr, claim):
    # G + G^T - diag(G): the structured-matrix convention, not this tool's (the unconstrained
    # gradient at a symmetric point): named as such rather than "wrong"
    d, v = verdict(expr, "X", claim, symmetric=["X"])
    assert not v.ok and v.diagnosis == "symmetric-entries"
    assert "free entries of a symmetric X" in v.message
    assert not katex_errors([v.latex]) and not pandoc_errors([v.latex])


def test_ones_of_a_size_the_claim_leaves_open_are_not_guessed():
    # the engine printed 1^T 1 for m (the rows of C); pasted back as a claim, the claim's own
    # typing cannot tell that size from n, and the verdict was "holds only when C is square".
    # The engine now prints m (test_sizes_as_numbers); a claim that writes 1^T 1 is not guessed
    expr = r"\mathbf{1}^\top \log\operatorname{softmax}(C x)"
    with pytest.raises(MatDerivError, match="could not be checked: the size of a ones or zero vector"):
        derive(expr, "x", expect=r"C^\top (\mathbf{1} - (\mathbf{1}^\top \mathbf{1}) \operatorname{softmax}(C x))")
    # a claim whose ones the text ties to a symbol is still judged
    d, v = verdict(expr, "x", r"C^\top (\mathbf{1} - 2 \operatorname{softmax}(C x))")
    assert v.diagnosis == "wrong"
    d, v = verdict(r"\mathbf{1}^\top \log\operatorname{softmax}(x)", "x",
                   r"\mathbf{1} - (\mathbf{1}^\top \mathbf{1}) \operatorname{softmax}(x)")
    assert v.ok


def test_a_zero_vector_in_a_claim_is_not_guessed():
    # the engine prints softmax(0) (a uniform vector) for softmax((X - X) x); pasted back as a
    # claim, \mathbf{0} was read as the number 0 and a random sweep's claim was called wrong
    expr = r"a^\top \operatorname{softmax}((X - X) x) t"
    d = derive(expr, "t", scalar=["t"])
    printed = d.latex
    assert printed == r"\operatorname{softmax}(\mathbf{0})^\top a"
    a = np.array([0.3, -1.2, 2.0])  # d/dt (t a^T softmax(0)) = mean(a)
    assert abs(float(d.evaluate({"a": a, "X": np.eye(3), "x": a, "t": 0.7})) - a.mean()) < 1e-12
    with pytest.raises(MatDerivError, match="could not be checked: the size of a ones or zero"):
        derive(expr, "t", scalar=["t"], expect=printed)
    d, v = verdict(expr, "t", r"2 \operatorname{softmax}(a)^\top a", scalar=["t"])  # still judged
    assert not v.ok
