"""Tests of the render-check helpers themselves: they must accept good LaTeX and reject bad
LaTeX, so that a test using them cannot pass by checking nothing."""
import pytest

from renderers import katex_errors, pandoc_errors

GOOD = [
    r"\frac{\partial f}{\partial X} = X^{-\top}",
    r"\left(A + A^\top\right) x",
    r"\operatorname{tr}(X) + \mathbf{x}^\top \boldsymbol{\theta} + \bm{x}",
    r"B^\top \otimes A + K_{mn} + A \odot B + A \oslash B",
    r"\begin{aligned} a &= b \\ &= c \end{aligned}",
    r"\lVert X w - y \rVert^2 + \|x\|_2 + \tfrac12 \sigma'(x)",
]
BAD = r"\foo{x}"


def test_katex_accepts_good_formulas():
    assert katex_errors(GOOD) == {}
    assert katex_errors(GOOD, display=False) == {}


def test_katex_rejects_unknown_macro_and_reports_its_index():
    errs = katex_errors(GOOD + [BAD] + GOOD[:1])
    assert list(errs) == [len(GOOD)]
    assert r"\foo" in errs[len(GOOD)]


def test_katex_strict_mode_rejects_latex_incompatible_input():
    # KaTeX renders Unicode text in math mode, LaTeX does not; strict="error" reports it
    assert list(katex_errors(["x + é"])) == [0]


def test_katex_empty_list():
    assert katex_errors([]) == {}


def test_pandoc_accepts_good_formulas():
    assert pandoc_errors(GOOD) == {}


@pytest.mark.parametrize("where", [0, 3, 6])
def test_pandoc_finds_the_bad_formula_by_bisection(where):
    formulas = list(GOOD)
    formulas.insert(where, BAD)
    errs = pandoc_errors(formulas)
    assert list(errs) == [where]
    assert "Could not convert TeX math" in errs[where]


def test_pandoc_reports_several_bad_formulas():
    formulas = [BAD, GOOD[0], r"\textcolor{red}{x}", GOOD[1], r"\bar"]
    assert sorted(pandoc_errors(formulas)) == [0, 2, 4]


def test_pandoc_empty_list():
    assert pandoc_errors([]) == {}
