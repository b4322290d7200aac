r"""A size used as a number is printed as its letter, as textbooks and SymPy write it:
``\frac{n \det(\tau A)}{\tau}``, not ``\frac{\det(\tau A) \operatorname{tr}(I_n)}{\tau}`` or
``(\mathbf{1}^\top \mathbf{1})``.  The letter is read back as that size by the printed-result
guard and by claims, so ``expect=`` may use it.  Every printed form here is also checked
against numbers."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import fd_gradient
from matderiv import MatDerivError, derive
from matderiv.claims import printed_matches
from matderiv.expr import Identity, Trace
from matderiv.printing.latex import latex


def _numbers_agree(d, f, values, wrt):
    """The printed derivative's value against central differences of ``f`` at ``values``."""
    got = np.asarray(d.evaluate(values), dtype=float)
    want = fd_gradient(lambda v: f({**values, wrt: v}), values[wrt])
    assert np.allclose(got.reshape(np.shape(want)), want, rtol=1e-6, atol=1e-8), (got, want)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_det_of_a_scaled_matrix(n):
    d = derive(r"\det(\tau A)", "tau")
    assert d.latex == r"\frac{n \det(\tau A)}{\tau}"
    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, n)) + 2 * np.eye(n)
    values = {"A": A, "tau": 0.7}
    _numbers_agree(d, lambda v: np.linalg.det(v["tau"] * v["A"]), values, "tau")
    # the size is n whatever n is: n tau^(n-1) det(A)
    assert np.isclose(float(d.evaluate(values)), n * 0.7 ** (n - 1) * np.linalg.det(A))


def test_second_derivative_puts_the_size_polynomial_first():
    d = derive(r"\det(\tau A)", ["tau", "tau"])
    assert d.latex == r"\frac{(n^2 - n) \det(\tau A)}{\tau^2}"
    A = np.diag([1.5, 2.0, -0.5])
    assert np.isclose(float(d.evaluate({"A": A, "tau": 0.9})),
                      3 * 2 * 0.9 * np.linalg.det(A))  # n (n-1) tau^(n-2) det(A), n = 3


def test_sum_of_log_softmax_and_ones_inner_products():
    d = derive(r"\operatorname{sum}(\log \operatorname{softmax}(x))", "x")
    assert d.latex == r"\mathbf{1} - n \operatorname{softmax}(x)"
    x = np.array([0.3, -1.0, 2.0, 0.5])
    _numbers_agree(d, lambda v: np.sum(v["x"] - np.log(np.sum(np.exp(v["x"])))), {"x": x}, "x")
    # 1^T 1 (the rows of C, m) in a chain becomes the number m
    d = derive(r"\mathbf{1}^\top \log\operatorname{softmax}(C x)", "x")
    assert d.latex == r"C^\top (\mathbf{1} - m \operatorname{softmax}(C x))"
    C = np.arange(12.0).reshape(4, 3) / 10
    _numbers_agree(d, lambda v: np.sum(np.log(np.exp(C @ v["x"]) / np.sum(np.exp(C @ v["x"])))),
                   {"C": C, "x": x[:3]}, "x")


def test_trace_of_a_kronecker_product_with_an_identity():
    from matderiv.numeric import evaluate

    d = derive(r"\operatorname{tr}(X \otimes I)", "X")
    assert d.latex == r"m I_n"  # the identity's size m; no thin space after a letter
    X = np.arange(9.0).reshape(3, 3) / 4
    for m in (2, 4):  # the identity's size is not fixed by X: the result holds for each
        got = evaluate(d.result_tree, {"X": X}, {"n": 3, "m": m})
        want = fd_gradient(lambda v: np.trace(np.kron(v, np.eye(m))), X)
        assert np.allclose(got, want, atol=1e-6)


def test_powers_and_products_of_sizes_print_unambiguously():
    mn = Trace(Identity(("m", "n")))
    assert latex(mn) == "mn"
    from matderiv.expr import Const, Power

    assert latex(Power(mn, Const(2))) == "(mn)^2"  # not m n^2
    assert latex(Power(Trace(Identity(("n",))), Const(2))) == "n^2"
    assert latex(Trace(Identity(("n1",)))) == r"\operatorname{tr}(I_{n1})"  # not a letter


def test_the_guard_reads_the_letter_back_as_the_size(monkeypatch):
    d = derive(r"\det(\tau A)", "tau")
    args = (d.expr_tree, d.result_tree, d.symbols, {})
    assert printed_matches(d.latex, *args) is True  # checked, not "cannot say"
    assert printed_matches(r"\frac{(n - 1) \det(\tau A)}{\tau}", *args) is False
    assert printed_matches(r"\frac{3 \det(\tau A)}{\tau}", *args) is False  # right only at n = 3
    # a printer that writes the size's value at the first sizes checked (3) is caught
    from matderiv.printing import latex as printer

    monkeypatch.setattr(printer, "_size_text", lambda e: "3" if printer.printed_size(e) else None)
    with pytest.raises(MatDerivError, match="does not read back"):
        derive(r"\det(\tau A)", "tau")


@pytest.mark.parametrize("expr, wrt, claim, diagnosis", [
    (r"\det(\tau A)", "tau", r"n \det(\tau A) / \tau", "equal"),
    (r"\det(\tau A)", "tau", r"\frac{\det(\tau A) \operatorname{tr}(I_n)}{\tau}", "equal"),
    # 2 where n is meant: at n = 3 that is 2/3 of the result, at n = 4 half: no constant factor
    (r"\det(\tau A)", "tau", r"2 \det(\tau A) / \tau", "wrong"),
    (r"\det(\tau A)", "tau", r"-n \det(\tau A) / \tau", "factor"),
    (r"\det(\tau A)", "tau", r"3 \det(\tau A) / \tau", "wrong"),  # right at n = 3 only
    (r"\operatorname{tr}(X \otimes I)", "X", r"m I_n", "equal"),
    (r"\operatorname{tr}(X \otimes I)", "X", r"n I_n", "wrong"),
    (r"\mathbf{1}^\top \log\operatorname{softmax}(C x)", "x",
     r"C^\top (\mathbf{1} - m \operatorname{softmax}(C x))", "equal"),
    # n (the columns of C) for m (its rows) is right exactly when C is square
    (r"\mathbf{1}^\top \log\operatorname{softmax}(C x)", "x",
     r"C^\top (\mathbf{1} - n \operatorname{softmax}(C x))", "square"),
])
def test_claims_may_write_a_size_as_a_number(expr, wrt, claim, diagnosis):
    v = derive(expr, wrt, expect=claim).verdict
    assert v.diagnosis == diagnosis, v.message


def test_a_letter_that_is_no_size_of_the_expression_is_still_refused():
    with pytest.raises(MatDerivError, match="does not occur in the expression"):
        derive(r"\det(\tau A)", "tau", expect=r"m \det(\tau A) / \tau")


@pytest.mark.parametrize("decl", [{"vector": ["n"]}, {"scalar": ["n"]}])
def test_a_declared_letter_is_never_a_size(decl):
    # n declared (for another formula of the document, say) is that symbol, so the size is m
    d = derive(r"\det(\tau A)", "tau", **decl)
    assert d.latex == r"\frac{m \det(\tau A)}{\tau}"
    A = np.diag([2.0, -1.5, 0.5, 3.0])
    assert np.isclose(float(d.evaluate({"A": A, "tau": 1.3})), 4 * 1.3 ** 3 * np.linalg.det(A))
    with pytest.raises(MatDerivError, match="does not occur in the expression"):
        derive(r"\det(\tau A)", "tau", expect=r"n \det(\tau A) / \tau", **decl)
