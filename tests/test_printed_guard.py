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
        r"\frac{2 t}{3 (1 + t^2)} - \frac{2 t^3}{3 (1 + t^2)^2}"
