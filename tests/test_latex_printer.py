r"""Golden tests of the LaTeX printer: hand-built trees and the exact textbook LaTeX they print,
plus a check that every golden string renders in KaTeX and converts through pandoc/texmath."""
from __future__ import annotations

from fractions import Fraction as F

import pytest

from matderiv.expr import (
    MINUS_ONE,
    Add,
    Commutation,
    Const,
    Det,
    Diag,
    DiagPart,
    Differential,
    Func,
    Hadamard,
    HadamardDiv,
    Identity,
    Inverse,
    Kron,
    Mul,
    Norm,
    Ones,
    Power,
    Softmax,
    Sum,
    Symbol,
    Trace,
    Transpose,
    Vec,
    Zero,
)
from matderiv.printing.latex import LatexPrinter, latex, latex_derivative_symbol


def vec(name, latex_=None, n="n"):
    return Symbol(name, (n,), (), "vector", latex_ or name)


def mat(name, latex_=None, r="n", c="n"):
    return Symbol(name, (r,), (c,), "matrix", latex_ or name)


def sca(name, latex_=None):
    return Symbol(name, (), (), "scalar", latex_ or name)


def c(v):
    return Const(F(v))


def T(e):
    return Transpose(e)


def M(*a):
    return Mul(tuple(a))


def S(*a):
    return Add(tuple(a))


def neg(e):
    return Mul((MINUS_ONE, e))


def inv(e):
    return Power(e, MINUS_ONE)


x, y, a, b, u, s, w = (vec(n) for n in "xyabusw")
xb = vec("x", r"\mathbf{x}")
A, B, C, D, W, X = (mat(n) for n in "ABCDWX")
Xr = mat("X", r="m", c="n")
Cm = mat("C", r="m", c="m")
Sigma = mat("Sigma", r"\Sigma")
W1 = mat("W_1", "W_1")
tau, alpha, k, t = sca("tau", r"\tau"), sca("alpha", r"\alpha"), sca("k"), sca("t")
I_n = Identity(("n",))
Ax = M(A, x)
Ax_b = S(Ax, neg(b))
Ax_pb = S(Ax, b)

CASES = [
    # --- leaves
    (x, "x"),
    (xb, r"\mathbf{x}"),
    (Symbol("theta", (), (), "scalar", ""), "theta"),
    (Sigma, r"\Sigma"),
    (c(2), "2"),
    (c(-3), "-3"),
    (c(F(1, 2)), r"\frac{1}{2}"),
    (c(F(-3, 4)), r"-\frac{3}{4}"),
    (I_n, "I_n"),
    (Identity(("m", "n")), "I_{mn}"),
    (Identity(("n", "n")), "I_{n^2}"),
    (Identity(()), "1"),
    (Zero((), ()), "0"),
    (Zero(("n",), ()), r"\mathbf{0}"),
    (Zero((), ("n",)), r"\mathbf{0}^\top"),
    (Zero(("m",), ("n",)), r"0_{m \times n}"),
    (Zero(("n",), ("n",)), r"0_{n \times n}"),
    (Ones(("n",)), r"\mathbf{1}"),
    (Commutation(("m",), ("n",)), "K_{mn}"),
    (Commutation(("n",), ("n",)), "K_{nn}"),
    (Differential(X), r"\mathrm{d}X"),
    (Differential(xb), r"\mathrm{d}\mathbf{x}"),
    (T(Differential(X)), r"\mathrm{d}X^\top"),
    (T(Differential(xb)), r"\mathrm{d}\mathbf{x}^\top"),
    # --- products and coefficients
    (Ax, "A x"),
    (M(a, T(b)), r"a b^\top"),
    (M(c(2), A, x), "2 A x"),
    (M(MINUS_ONE, A, x), "-A x"),
    (M(c(1), A, x), "A x"),
    (M(A, c(2), x), "2 A x"),
    (M(c(F(1, 2)), T(x), x), r"\frac{1}{2} x^\top x"),
    (M(c(F(-1, 2)), T(x), x), r"-\frac{1}{2} x^\top x"),
    (M(c(2), M(c(3), X)), "6 X"),
    (M(S(A, T(A)), x), r"(A + A^\top) x"),
    (M(c(2), T(A), Ax_b), r"2 A^\top (A x - b)"),
    (M(c(2), S(M(X, u), neg(vec("v"))), T(u)), r"2 (X u - v) u^\top"),
    (M(M(T(x), A, x), I_n), r"(x^\top A x) I_n"),
    (M(T(x), A, x, I_n), r"(x^\top A x) I_n"),
    (M(x, M(T(a), b)), r"x (a^\top b)"),
    (M(c(2), M(T(x), A, x)), r"2 x^\top A x"),
    (M(tau, M(T(x), A, x)), r"\tau x^\top A x"),
    (M(M(T(x), A, x), M(T(a), b)), r"(x^\top A x) (a^\top b)"),
    (Hadamard((tau, alpha)), r"\tau \alpha"),
    (M(T(a), b, T(x)), r"(a^\top b) x^\top"),
    (M(tau, T(a), b, T(x)), r"\tau (a^\top b) x^\top"),
    (M(T(x), A, x), r"x^\top A x"),
    (M(Inverse(T(X)), T(A), Inverse(T(X))), r"X^{-\top} A^\top X^{-\top}"),
    (M(Det(X), Inverse(T(X))), r"\det(X)\, X^{-\top}"),
    (M(c(2), Det(M(T(Xr), Cm, Xr)), Cm, Xr, Inverse(M(T(Xr), Cm, Xr))),
     r"2 \det(X^\top C X)\, C X (X^\top C X)^{-1}"),
    (M(Func("dsigmoid", M(T(x), w)), x, T(x)), r"\sigma'(x^\top w)\, x x^\top"),
    (M(tau, Func("cos", tau)), r"\tau \cos(\tau)"),
    (M(Func("cos", tau), D), r"\cos(\tau)\, D"),
    (M(Norm(x), x), r"\|x\|_2\, x"),
    (M(Diag(x), W), r"\operatorname{diag}(x) W"),
    (M(c(2), Power(c(3), t)), r"2 \cdot 3^{t}"),
    (M(A, S(M(c(2), tau, C), M(Func("cos", tau), D)), B),
     r"A (2 \tau C + \cos(\tau)\, D) B"),
    # --- fractions
    (M(x, inv(Norm(x))), r"\frac{x}{\|x\|_2}"),
    (M(T(A), Ax_b, inv(Norm(Ax_b))), r"\frac{A^\top (A x - b)}{\|A x - b\|_2}"),
    (M(inv(tau),), r"\frac{1}{\tau}"),
    (inv(tau), r"\frac{1}{\tau}"),
    (Power(tau, c(-2)), r"\frac{1}{\tau^2}"),
    (M(c(-2), x, inv(tau)), r"-\frac{2 x}{\tau}"),
    (M(c(F(1, 2)), x, inv(tau)), r"\frac{x}{2 \tau}"),
    (M(c(F(3, 2)), inv(tau)), r"\frac{3}{2 \tau}"),
    (M(S(x, y), inv(tau)), r"\frac{x + y}{\tau}"),
    (M(x, inv(S(c(1), M(T(x), x)))), r"\frac{x}{1 + x^\top x}"),
    (M(x, inv(tau), inv(alpha)), r"\frac{x}{\tau \alpha}"),
    (M(x, Power(M(T(x), x), c(F(-1, 2)))), r"\frac{x}{\sqrt{x^\top x}}"),
    (M(x, Inverse(M(T(x), x))), r"\frac{x}{x^\top x}"),
    (M(neg(x), inv(tau)), r"-\frac{x}{\tau}"),
    (M(c(-1), x, T(x), Power(Norm(x), c(-3))), r"-\frac{x x^\top}{\|x\|_2^3}"),
    # --- sums and signs
    (Ax_b, "A x - b"),
    (Ax_pb, "A x + b"),
    (S(a, M(c(-2), B)), "a - 2 B"),
    (S(neg(Ax), b), "-A x + b"),
    (S(tau, c(-3)), r"\tau - 3"),
    (S(tau, c(F(-1, 2))), r"\tau - \frac{1}{2}"),
    (S(x, M(c(F(-1, 2)), y)), r"x - \frac{1}{2} y"),
    (S(x, M(c(-1), y, inv(tau))), r"x - \frac{y}{\tau}"),
    (S(A, S(B, C)), "A + B + C"),
    (S(A, neg(S(B, C))), "A - (B + C)"),
    (neg(S(B, C)), "-(B + C)"),
    (M(c(-2), S(B, C)), "-2 (B + C)"),
    (neg(Hadamard((x, y))), r"-(x \odot y)"),
    (Hadamard((neg(y), b)), r"-(y \odot b)"),  # -y \odot b would read as -(y \odot b)
    (S(x, neg(Kron((a, b)))), r"x - a \otimes b"),
    (neg(c(2)), "-2"),
    (M(c(0), x), "0"),
    (S(c(1), neg(Power(Func("tanh", tau), c(2)))), r"1 - \tanh^2(\tau)"),
    (S(Diag(s), neg(M(s, T(s)))), r"\operatorname{diag}(s) - s s^\top"),
    (S(M(c(-2), C, X), M(c(2), B, X)), "-2 C X + 2 B X"),
    (S(x, Hadamard((neg(y), b))), r"x - y \odot b"),
    (S(M(T(A), C, S(M(D, x), u)), M(T(D), T(C), Ax_pb)),
     r"A^\top C (D x + u) + D^\top C^\top (A x + b)"),
    # --- transpose / inverse / powers
    (T(x), r"x^\top"),
    (T(W1), r"W_1^\top"),
    (T(xb), r"\mathbf{x}^\top"),
    (T(Ax_pb), r"(A x + b)^\top"),
    (T(Power(X, c(2))), r"(X^2)^\top"),
    (T(T(X)), r"(X^\top)^\top"),
    (T(M(A, B)), r"(A B)^\top"),
    (T(Func("exp", x)), r"\exp(x)^\top"),
    (T(Vec(X)), r"\operatorname{vec}(X)^\top"),
    (T(Ones(("n",))), r"\mathbf{1}^\top"),
    (T(Kron((b, a))), r"(b \otimes a)^\top"),
    (T(Inverse(X)), r"X^{-\top}"),
    (Inverse(T(X)), r"X^{-\top}"),
    (Inverse(X), "X^{-1}"),
    (Inverse(Sigma), r"\Sigma^{-1}"),
    (Inverse(S(A, M(tau, B))), r"(A + \tau B)^{-1}"),
    (T(Inverse(S(A, B))), r"(A + B)^{-\top}"),
    (Inverse(Inverse(X)), r"(X^{-1})^{-1}"),
    (T(Inverse(M(T(Xr), Cm, Xr))), r"(X^\top C X)^{-\top}"),
    (Power(X, c(2)), "X^2"),
    (Power(X, c(10)), "X^{10}"),
    (Power(X, c(-2)), "X^{-2}"),
    (Power(X, k), "X^{k}"),
    (Power(X, S(k, MINUS_ONE)), "X^{k - 1}"),
    (Power(tau, c(2)), r"\tau^2"),
    (Power(M(T(x), x), c(2)), r"(x^\top x)^2"),
    (Power(T(X), c(2)), r"(X^\top)^2"),
    (Power(tau, c(F(1, 2))), r"\sqrt{\tau}"),
    (Power(M(T(x), x), c(F(1, 2))), r"\sqrt{x^\top x}"),
    (Power(tau, c(F(1, 3))), r"\tau^{1/3}"),
    (Power(sca("a"), t), "a^{t}"),
    (Power(Func("tanh", tau), c(2)), r"\tanh^2(\tau)"),
    (Power(Func("sin", tau), c(3)), r"\sin^3(\tau)"),
    (Power(Func("exp", tau), c(2)), r"\exp(\tau)^2"),
    (Power(Func("tanh", X), c(2)), r"\tanh(X)^2"),
    (Power(Func("log", Det(X)), c(2)), r"(\log\det(X))^2"),
    (Power(Func("sqrt", tau), c(3)), r"(\sqrt{\tau})^3"),
    (Power(Func("dsigmoid", tau), c(2)), r"(\sigma'(\tau))^2"),
    (Power(Det(X), c(2)), r"\det(X)^2"),
    (Power(Trace(X), c(2)), r"\operatorname{tr}(X)^2"),
    (Power(Norm(x), c(2)), r"\|x\|_2^2"),
    (Power(Norm(X, "F"), c(2)), r"\|X\|_F^2"),
    (Power(c(2), t), "2^{t}"),
    (Power(c(-2), t), "(-2)^{t}"),
    (Power(c(F(1, 2)), t), r"\left(\frac{1}{2}\right)^{t}"),
    # --- elementwise / Kronecker
    (Hadamard((x, Func("exp", x))), r"x \odot \exp(x)"),
    (Hadamard((Ax, b)), r"A x \odot b"),
    (Hadamard((Ax_b, y)), r"(A x - b) \odot y"),
    (Hadamard((x, neg(y))), r"x \odot (-y)"),
    (Hadamard((Kron((a, b)), Kron((a, b)))), r"(a \otimes b)^{\circ 2}"),
    (T(Hadamard((A, Func("exp", M(tau, A))))), r"(A \odot \exp(\tau A))^\top"),
    (Kron((T(B), A)), r"B^\top \otimes A"),
    (Kron((I_n, a)), r"I_n \otimes a"),
    (Kron((A, S(B, C))), r"A \otimes (B + C)"),
    (S(Kron((T(B), A)), Kron((B, T(A)))), r"B^\top \otimes A + B \otimes A^\top"),
    (M(Kron((Inverse(X), Inverse(T(X)))), Commutation(("n",), ("n",))),
     r"(X^{-1} \otimes X^{-\top}) K_{nn}"),
    (M(c(2), Hadamard((x, y))), r"2 (x \odot y)"),
    (neg(T(Kron((Inverse(T(X)), Inverse(X))))), r"-(X^{-\top} \otimes X^{-1})^\top"),
    (HadamardDiv(x, y), r"x \oslash y"),
    (HadamardDiv(S(x, y), y), r"(x + y) \oslash y"),
    (HadamardDiv(tau, alpha), r"\frac{\tau}{\alpha}"),
    (M(A, HadamardDiv(x, y)), r"A (x \oslash y)"),
    # --- functions
    (Trace(X), r"\operatorname{tr}(X)"),
    (Trace(M(A, X, B)), r"\operatorname{tr}(A X B)"),
    (Det(X), r"\det(X)"),
    (Func("log", Det(X)), r"\log\det(X)"),
    (Func("log", Det(M(T(Xr), Xr))), r"\log\det(X^\top X)"),
    (Func("exp", x), r"\exp(x)"),
    (Func("log", x), r"\log(x)"),
    (Func("sin", x), r"\sin(x)"),
    (Func("cos", x), r"\cos(x)"),
    (Func("tanh", M(W, x)), r"\tanh(W x)"),
    (Func("sqrt", x), r"\sqrt{x}"),
    (Func("sigmoid", M(X, w)), r"\sigma(X w)"),
    (Func("dsigmoid", x), r"\sigma'(x)"),
    (Func("sech2", x), r"\operatorname{sech}^2(x)"),
    (Func("abs", tau), r"|\tau|"),
    (Func("sign", x), r"\operatorname{sign}(x)"),
    (Softmax(x), r"\operatorname{softmax}(x)"),
    (Diag(x), r"\operatorname{diag}(x)"),
    (DiagPart(A), r"\operatorname{diag}(A)"),
    (Vec(X), r"\operatorname{vec}(X)"),
    (Sum(x), r"\operatorname{sum}(x)"),
    (Norm(x), r"\|x\|_2"),
    (Norm(Ax_b), r"\|A x - b\|_2"),
    (Norm(X, "F"), r"\|X\|_F"),
    (M(c(2), Diag(x)), r"2 \operatorname{diag}(x)"),
    (Diag(Vec(Hadamard((Func("sigmoid", X), S(c(1), neg(Func("sigmoid", X))))))),
     r"\operatorname{diag}(\operatorname{vec}(\sigma(X) \odot (1 - \sigma(X))))"),
    (M(S(Softmax(vec("a_2", "a_2")), neg(y)), T(Func("sigmoid", S(M(W1, x), vec("b_1", "b_1"))))),
     r"(\operatorname{softmax}(a_2) - y) \sigma(W_1 x + b_1)^\top"),
    (S(M(Vec(Xr), T(Kron((b, a)))), M(M(T(a), Xr, b), Identity(("m", "n")))),
     r"\operatorname{vec}(X) (b \otimes a)^\top + (a^\top X b) I_{mn}"),
    (M(Trace(X), I_n), r"\operatorname{tr}(X)\, I_n"),
    (M(c(-1), Power(X, c(-2))), "-X^{-2}"),
    (M(MINUS_ONE, Inverse(S(A, M(tau, B))), B, Inverse(S(A, M(tau, B))), vec("c")),
     r"-(A + \tau B)^{-1} B (A + \tau B)^{-1} c"),
    (M(c(-2), Inverse(Sigma), S(x, neg(vec("mu", r"\mu")))), r"-2 \Sigma^{-1} (x - \mu)"),
]


@pytest.mark.parametrize("tree,expected", CASES, ids=[e for _, e in CASES])
def test_golden(tree, expected):
    assert latex(tree) == expected
    assert LatexPrinter().doprint(tree) == expected


def test_never_one_cdot_or_plus_minus():
    for tree, _ in CASES:
        out = latex(tree)
        assert r"1 \cdot" not in out and "+ -" not in out and "--" not in out, out
        assert r"\bm" not in out


def test_unknown_func_raises():
    with pytest.raises(ValueError):
        latex(Func("coth", x))


DERIV_CASES = [
    # (f, var, kind, layout, second, kwargs, expected)
    ("f", "t", "derivative", "mixed", False, {}, r"\frac{\partial f}{\partial t}"),
    ("f", "x", "gradient", "mixed", False, {}, r"\frac{\partial f}{\partial x}"),
    ("f", "x", "gradient", "denominator", False, {}, r"\frac{\partial f}{\partial x}"),
    ("f", "x", "gradient", "numerator", False, {}, r"\frac{\partial f}{\partial x^\top}"),
    ("f", "X", "gradient", "numerator", False, {}, r"\frac{\partial f}{\partial X^\top}"),
    ("f", "x", "jacobian", "mixed", False, {}, r"\frac{\partial f}{\partial x^\top}"),
    ("f", "x", "jacobian", "numerator", False, {}, r"\frac{\partial f}{\partial x^\top}"),
    ("f", "x", "jacobian", "denominator", False, {}, r"\frac{\partial f^\top}{\partial x}"),
    ("f", r"\tau", "vector-by-scalar", "mixed", False, {}, r"\frac{\partial f}{\partial \tau}"),
    ("f", r"\tau", "vector-by-scalar", "denominator", False, {},
     r"\frac{\partial f^\top}{\partial \tau}"),
    ("F", r"\tau", "matrix-by-scalar", "numerator", False, {}, r"\frac{\partial F}{\partial \tau}"),
    ("F", r"\tau", "matrix-by-scalar", "denominator", False, {},
     r"\frac{\partial F^\top}{\partial \tau}"),
    ("F", "X", "matrix-by-matrix", "mixed", False, {},
     r"\frac{\partial \operatorname{vec} F}{\partial (\operatorname{vec} X)^\top}"),
    ("F", "X", "matrix-by-matrix", "denominator", False, {},
     r"\frac{\partial (\operatorname{vec} F)^\top}{\partial \operatorname{vec} X}"),
    ("f", "x", "hessian", "mixed", True, {}, r"\frac{\partial^2 f}{\partial x\,\partial x^\top}"),
    ("f", "x", "hessian", "denominator", True, {},
     r"\frac{\partial^2 f}{\partial x\,\partial x^\top}"),
    ("f", r"\mathbf{x}", "hessian", "numerator", True, {},
     r"\frac{\partial^2 f}{\partial \mathbf{x}\,\partial \mathbf{x}^\top}"),
    ("f", "X", "hessian", "mixed", True, {},
     r"\frac{\partial^2 f}{\partial \operatorname{vec} X\,\partial (\operatorname{vec} X)^\top}"),
    ("f", r"\Sigma", "hessian", "mixed", True, {},
     r"\frac{\partial^2 f}{\partial \operatorname{vec} \Sigma\,\partial (\operatorname{vec} \Sigma)^\top}"),
    ("f", "w", "hessian", "mixed", True, {"var_kind": "matrix"},
     r"\frac{\partial^2 f}{\partial \operatorname{vec} w\,\partial (\operatorname{vec} w)^\top}"),
    ("f", ("x", "y"), "hessian", "mixed", True, {},
     r"\frac{\partial^2 f}{\partial x\,\partial y^\top}"),
    ("f", "t", "derivative", "mixed", True, {}, r"\frac{\partial^2 f}{\partial t^2}"),
    (None, "X", "gradient", "mixed", False, {"expr_latex": r"\det(X)"},
     r"\frac{\partial}{\partial X}\left(\det(X)\right)"),
    (None, "x", "gradient", "mixed", False, {}, r"\frac{\partial}{\partial x}"),
    (None, "x", "jacobian", "denominator", False, {"expr_latex": "A x"},
     r"\frac{\partial}{\partial x}\left(A x\right)^\top"),
    (None, "X", "matrix-by-matrix", "mixed", False, {"expr_latex": "A X B"},
     r"\frac{\partial}{\partial (\operatorname{vec} X)^\top}\operatorname{vec}\left(A X B\right)"),
    (None, "x", "hessian", "mixed", True, {"expr_latex": r"x^\top A x"},
     r"\frac{\partial^2}{\partial x\,\partial x^\top}\left(x^\top A x\right)"),
    ("f(x)", "x", "jacobian", "denominator", False, {}, r"\frac{\partial f(x)^\top}{\partial x}"),
]


@pytest.mark.parametrize("f,var,kind,layout,second,kw,expected", DERIV_CASES,
                         ids=[d[-1] for d in DERIV_CASES])
def test_derivative_symbol(f, var, kind, layout, second, kw, expected):
    assert latex_derivative_symbol(f, var, kind, layout, second, **kw) == expected


def test_derivative_symbol_unknown_kind():
    with pytest.raises(ValueError):
        latex_derivative_symbol("f", "x", "nonsense", "mixed", False)


def _all_strings():
    out = [e for _, e in CASES] + [d[-1] for d in DERIV_CASES]
    # as used in an equation, and a printed tree inside a derivative symbol
    out.append(DERIV_CASES[1][-1] + " = " + latex(M(T(A), Ax_b, inv(Norm(Ax_b)))))
    return out


def test_renders_in_katex_and_pandoc():
    try:
        import renderers  # tests/renderers.py (on sys.path via pytest's rootdir insertion)
    except ImportError:
        try:
            from tests import renderers  # type: ignore
        except ImportError:
            pytest.skip("tests/renderers.py is not there yet")
    strings = _all_strings()
    try:
        kerr = renderers.katex_errors(strings)
        perr = renderers.pandoc_errors(strings)
    except renderers.RenderToolMissing as exc:  # a missing tool must not look like a pass
        pytest.fail(f"render tool missing: {exc}")
    assert not kerr, {strings[i]: m for i, m in kerr.items()}
    assert not perr, {strings[i]: m for i, m in perr.items()}


def test_nested_elementwise_products_print_in_linear_time():
    """An elementwise product prints its factors to find repeats (u \\odot u is
    u^{\\circ 2}); nested in one another, they printed the inner ones again at every level
    (depth 10 took 0.8 s, three times longer per level). Each node now prints once."""
    import time

    from matderiv.parse import parse
    from matderiv.shapes import infer

    text = "x"
    for _ in range(40):
        text = r"x \odot (A (" + text + r") \odot x)"
    tree = infer(parse(text), ("x",)).tree
    t0 = time.perf_counter()
    out = latex(tree)
    assert time.perf_counter() - t0 < 1.0
    assert out.count(r"x^{\circ 2} \odot A") == 40  # x \odot (A (...) \odot x), each level
