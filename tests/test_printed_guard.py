"""The typeset result is checked too: the printed LaTeX, read back with the same declarations,
must evaluate to the verified derivative.  A printer bug therefore becomes an internal error,
never a wrong formula on the page."""
from __future__ import annotations

import pytest

from matderiv import derive
from matderiv.printing import latex as latex_printer
from matderiv.verify import VerificationError


@pytest.mark.parametrize("expr", [r"x^T (A + B) x", r"\|A x - b\|^2", r"\frac{t^2}{3(1 + t^2)}"])
def test_a_printer_that_drops_parentheses_is_caught(monkeypatch, expr):
    good = derive(expr, "t" if "t" in expr else "x", scalar=["t"]).latex
    original = latex_printer.LatexPrinter._print_Mul
    monkeypatch.setattr(latex_printer.LatexPrinter, "_print_Mul",
                        lambda self, e: original(self, e).replace("(", "").replace(")", ""))
    with pytest.raises(VerificationError):
        derive(expr, "t" if "t" in expr else "x", scalar=["t"])
    assert "(" in good  # the correct form needed its parentheses


def test_correct_output_passes_the_guard():
    assert derive(r"\frac{t^2}{3(1 + t^2)}", "t", scalar=["t"]).latex == \
        r"\frac{2 t}{3 (1 + t^2)^2}"


@pytest.mark.parametrize("expr, wrong_head", [
    (r"\operatorname{sum}(\sigma(X w))", r"\sigma"),            # sigma'(u) printed as sigma(u)
    (r"\operatorname{sum}(\tanh(x))", r"\operatorname{sech}"),  # sech^2(u) printed as sech(u)^1
])
def test_derivative_heads_are_read_back_too(monkeypatch, expr, wrong_head):
    """sigma'(u) and sech^2(u) are read back as the functions they name, so a printer that
    loses the prime or the square is caught rather than trusted."""
    wrt = "w" if "w" in expr else "x"
    good = derive(expr, wrt)
    assert "'" in good.latex or "sech}^2" in good.latex
    heads = dict(latex_printer._FUNC_HEADS)
    name = "dsigmoid" if wrong_head == r"\sigma" else "sech2"
    heads[name] = (r"\sigma" if name == "dsigmoid" else r"\tanh", False)
    monkeypatch.setattr(latex_printer, "_FUNC_HEADS", heads)
    with pytest.raises(VerificationError):
        derive(expr, wrt)
