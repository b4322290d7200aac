"""Parser: every spelling of SPEC 1.1 gives the expected tree; errors are MatDerivErrors with
positions; long input is fast."""
from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest

from conftest import corpus_cases
from matderiv.errors import MatDerivError, Span
from matderiv.expr import (UNKNOWN, Add, Const, Det, Expr, Func, Hadamard, Identity, Inverse,
                           Kron, Mul, Norm, Ones, Power, Softmax, Sum, Symbol, Trace, Transpose,
                           Vec)
from matderiv.parse import Parsed, normalize_name, parse


# --- tree builders --------------------------------------------------------------------------
def S(name, kind=None, latex=None):
    base = name.split("_")[0]
    if kind is None:
        kind = "matrix" if base[0].isupper() else "vector"
    if latex is None:
        latex = name
    return Symbol(name, UNKNOWN, UNKNOWN, kind, latex)


def G(name, kind=None):
    """A plain Greek symbol."""
    if kind is None:
        kind = "matrix" if name[0].isupper() else "scalar"
    return Symbol(name, UNKNOWN, UNKNOWN, kind, "\\" + name)


def C(v):
    return Const(Fraction(v))


def T(e):
    return Transpose(e)


def M(*a):
    return Mul(tuple(a))


def A(*a):
    return Add(tuple(a))


def neg(e):
    return M(C(-1), e)


x, y, z, a, b, c, u, v = (S(n) for n in "xyzabcuv")
X, Y, Aa, B, W = S("X"), S("Y"), S("A"), S("B"), S("W")
tau = G("tau")
ONES = Ones(UNKNOWN)
EYE = Identity(UNKNOWN)

SPELLINGS = [
    # symbols
    ("x", x), ("W_1", S("W_1")), ("W_{2}", S("W_2", latex="W_2")),
    ("b_{1}", S("b_1", latex="b_1")), ("W_{12}", S("W_12", latex="W_{12}")),
    (r"\theta", G("theta")), (r"\Sigma", G("Sigma")), (r"\theta_1", Symbol("theta_1", UNKNOWN, UNKNOWN, "scalar", r"\theta_1")),
    (r"\mathbf{x}", S("x", latex=r"\mathbf{x}")), (r"\mathbf x", S("x", latex=r"\mathbf{x}")),
    (r"\bm{x}", S("x", latex=r"\mathbf{x}")),
    (r"\boldsymbol{\theta}", S("theta", "vector", r"\boldsymbol{\theta}")),
    (r"\boldsymbol\theta", S("theta", "vector", r"\boldsymbol{\theta}")),
    (r"\mathbf{W}_1", S("W_1", latex=r"\mathbf{W}_1")),
    (r"\mathbf{W_1}", S("W_1", latex=r"\mathbf{W}_1")),
    ("α", G("alpha")),
    # numbers and fractions
    ("2", C(2)), ("0.5", Const(Fraction("0.5"))), (r"\frac{1}{2}", C(Fraction(1, 2))),
    (r"\tfrac12", C(Fraction(1, 2))), (r"\dfrac{3}{4}", C(Fraction(3, 4))),
    (r"\dfrac{a}{b}", M(a, Power(b, C(-1)))), (r"\frac{a}{\tau}", M(a, Power(tau, C(-1)))),
    ("x/2", M(C(Fraction(1, 2)), x)), (r"x / \tau", M(x, Power(tau, C(-1)))),
    (r"\frac{1}{2} x^T x", M(C(Fraction(1, 2)), T(x), x)),
    # products
    ("A x", M(Aa, x)), ("Ax", M(Aa, x)), (r"A \cdot x", M(Aa, x)), ("A * x", M(Aa, x)),
    ("A B x", M(Aa, B, x)), ("(A B) x", M(M(Aa, B), x)),
    (r"x \odot y", Hadamard((x, y))), (r"x \circ y", Hadamard((x, y))),
    ("x .* y", Hadamard((x, y))), (r"x \odot y \odot z", Hadamard((x, y, z))),
    (r"A x \odot B y", Hadamard((M(Aa, x), M(B, y)))),
    (r"A \otimes B", Kron((Aa, B))),
    ("-x", neg(x)), ("-2x", M(C(-2), x)), ("-y^T x", M(C(-1), T(y), x)),
    ("a - b", A(a, neg(b))), ("a + b + c", A(a, b, c)), ("a - b - c", A(a, neg(b), neg(c))),
    ("(a + b) + c", A(A(a, b), c)), ("x - 1", A(x, C(-1))),
    (r"a \cdot -b", M(C(-1), a, b)), ("x / -2", M(C(Fraction(-1, 2)), x)),
    (r"x \odot -y", Hadamard((x, neg(y)))),
    # transpose
    ("X^T", T(X)), ("X^{T}", T(X)), (r"X^\top", T(X)), (r"X^{\top}", T(X)),
    (r"X^{\mathsf T}", T(X)), (r"X^{\mathsf{T}}", T(X)), (r"X^\intercal", T(X)),
    ("X'", T(X)), (r"X^{\prime}", T(X)), ("x^Tx", M(T(x), x)),
    ("(Xu - v)'(Xu - v)", M(T(A(M(X, u), neg(v))), A(M(X, u), neg(v)))),
    # inverse
    ("X^{-1}", Inverse(X)), ("X^-1", Inverse(X)), ("X^{-T}", Inverse(T(X))),
    (r"X^{-\top}", Inverse(T(X))), (r"\operatorname{inv}(X)", Inverse(X)), ("inv(X)", Inverse(X)),
    # powers
    ("X^2", Power(X, C(2))), ("X^{k}", Power(X, S("k"))), ("a^x", Power(a, x)),
    ("x^2", Power(x, C(2))), (r"\tau^\tau", Power(tau, tau)), ("X^{1000}", Power(X, C(1000))),
    ("x^{-2}", Power(x, C(-2))), ("x^10", Power(x, C(10))),
    ("e^{x}", Func("exp", x)), (r"\mathrm{e}^{x}", Func("exp", x)),
    (r"e^{-\tau}", Func("exp", neg(tau))), ("e", S("e")), ("e^T x", M(T(S("e")), x)),
    (r"\sin^2(x)", Power(Func("sin", x), C(2))), (r"\tanh^2(x)", Power(Func("tanh", x), C(2))),
    # trace, det
    (r"\operatorname{tr}(X)", Trace(X)), (r"\mathrm{tr}(X)", Trace(X)), (r"\text{tr}(X)", Trace(X)),
    (r"\operatorname{Tr}(X)", Trace(X)), ("tr(X)", Trace(X)), (r"\operatorname{tr} X", Trace(X)),
    (r"\det(X)", Det(X)), (r"\det X", Det(X)), ("det(X)", Det(X)),
    (r"\det X^\top", Det(T(X))), (r"\det(X)^{-1}", Inverse(Det(X))),
    ("|X|", Func("bars", X)), (r"\left| X \right|", Func("bars", X)),
    (r"\tau\,|\tau|", M(tau, Func("bars", tau))),
    (r"|a|\,|b|", M(Func("bars", a), Func("bars", b))),
    # log-determinant
    (r"\log\det X", Func("log", Det(X))), (r"\ln\det X", Func("log", Det(X))),
    (r"\log|X|", Func("log", Func("bars", X))), (r"\operatorname{logdet}(X)", Func("log", Det(X))),
    ("logdet(X)", Func("log", Det(X))),
    # norms
    (r"\|x\|", Norm(x, "2")), (r"\|x\|_2", Norm(x, "2")), (r"\|x\|^2", Power(Norm(x, "2"), C(2))),
    (r"\|X\|_F", Norm(X, "F")), (r"\|X\|_F^2", Power(Norm(X, "F"), C(2))),
    (r"\|X\|_{F}", Norm(X, "F")), (r"\lVert x \rVert", Norm(x, "2")),
    (r"\left\| x \right\|", Norm(x, "2")), (r"\left\| x \right\|_2^2", Power(Norm(x, "2"), C(2))),
    # elementwise functions
    (r"\exp(x)", Func("exp", x)), (r"\log(x)", Func("log", x)), (r"\ln(x)", Func("log", x)),
    (r"\sin(x)", Func("sin", x)), (r"\cos(x)", Func("cos", x)), (r"\tanh(x)", Func("tanh", x)),
    (r"\sqrt{x}", Func("sqrt", x)), (r"\sqrt(x)", Func("sqrt", x)),
    (r"\sigma(x)", Func("sigmoid", x)), (r"\operatorname{sigmoid}(x)", Func("sigmoid", x)),
    (r"\sigma\left(x\right)", Func("sigmoid", x)), (r"\sigma\big(x\big)", Func("sigmoid", x)),
    (r"\sigma x", M(G("sigma"), x)), (r"\sigma^2 I", M(Power(G("sigma"), C(2)), EYE)),
    (r"\log x", Func("log", x)), (r"\log x^2", Func("log", Power(x, C(2)))),
    (r"\exp(x)^T", T(Func("exp", x))),
    # vector functions and constants
    (r"\operatorname{softmax}(x)", Softmax(x)), (r"\operatorname{diag}(x)", Func("diag", x)),
    (r"\operatorname{vec}(X)", Vec(X)), (r"\operatorname{sum}(x)", Sum(x)),
    (r"\mathbf{1}", ONES), (r"\mathbf 1", ONES), (r"\boldsymbol{1}", ONES),
    ("I", EYE), (r"\mathbf{I}", EYE), ("I_n", EYE), ("x + 0", A(x, C(0))),
    (r"A + I", A(Aa, EYE)),
    # ASCII function words
    ("exp(x)", Func("exp", x)), ("log(x)", Func("log", x)), ("ln(x)", Func("log", x)),
    ("sin(x)", Func("sin", x)), ("cos(x)", Func("cos", x)), ("tanh(x)", Func("tanh", x)),
    ("sqrt(x)", Func("sqrt", x)), ("sigmoid(x)", Func("sigmoid", x)),
    ("softmax(x)", Softmax(x)), ("diag(x)", Func("diag", x)), ("vec(X)", Vec(X)),
    ("sum(x)", Sum(x)),
    # grouping and spacing
    ("(x)", x), ("[x]", x), (r"\{x\}", x), (r"\left( x \right)", x), (r"\left[ x \right]", x),
    (r"\big( x \big)", x), (r"\Big( x \Big)", x), (r"\bigl( x \bigr)", x),
    (r"\Bigl( x \Bigr)", x), (r"\bigg( x \bigg)", x), (r"\Bigg( x \Bigg)", x), ("{x}", x),
    (r"x\,\;\:\!\quad\qquad~y", M(x, y)),
]


@pytest.mark.parametrize("text,expected", [s for s in SPELLINGS if s[1] is not None],
                         ids=[s[0] for s in SPELLINGS if s[1] is not None])
def test_spelling(text, expected):
    assert parse(text).tree == expected


def test_parsed_dataclass_and_spans():
    p = parse("A x + b")
    assert isinstance(p, Parsed) and p.source == "A x + b"
    t = p.tree
    assert isinstance(t, Add)
    assert p.spans[id(t)] == Span(0, 7)
    assert p.spans[id(t.args[0])] == Span(0, 3)
    assert p.spans[id(t.args[1])] == Span(6, 7)
    assert p.text(t.args[0]) == "A x"
    # every node has a span
    for n in t.walk():
        assert id(n) in p.spans


def test_same_symbol_bold_and_plain():
    t = parse(r"\mathbf{x}^\top x").tree
    assert t.args[0].arg == t.args[1]
    assert t.args[1].latex == r"\mathbf{x}"


def test_bold_greek_is_vector():
    assert parse(r"\boldsymbol{\theta}").tree.kind == "vector"
    assert parse(r"\theta").tree.kind == "scalar"
    assert parse(r"\Theta").tree.kind == "matrix"


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda c: c["id"])
def test_corpus_parses(case):
    p = parse(case["expr"])
    assert isinstance(p.tree, Expr)


# --- normalize_name --------------------------------------------------------------------------
@pytest.mark.parametrize("text,name", [
    (r"\Sigma", "Sigma"), ("Sigma", "Sigma"), (r"\mathbf{x}", "x"), ("W_{1}", "W_1"),
    ("W_1", "W_1"), (r"\boldsymbol{\theta}", "theta"), ("x", "x"), (r"\theta", "theta"),
    ("theta", "theta"), (r"\bm{x}", "x"), (" x ", "x"), (r"\mathbf{W}_1", "W_1"), ("I", "I"),
])
def test_normalize_name(text, name):
    assert normalize_name(text) == name


@pytest.mark.parametrize("text", ["x y", "", "x^T", r"\foo", "2", "A x"])
def test_normalize_name_rejects(text):
    with pytest.raises(MatDerivError):
        normalize_name(text)


# --- errors ---------------------------------------------------------------------------------
def err(text) -> MatDerivError:
    with pytest.raises(MatDerivError) as ei:
        parse(text)
    e = ei.value
    assert e.source == text
    return e


def test_unclosed_paren_points_at_opener():
    e = err("x^T (A x + b")
    assert e.position == 4 and "(" in e.message


def test_unmatched_closer():
    e = err("x + y)")
    assert e.position == 5


def test_mismatched_brackets_point_at_opener():
    e = err(r"x + \left( y \right]")
    assert e.position == 4


def test_unclosed_bars_and_norm():
    assert err("|x").position == 0
    assert err(r"x + \|y").position == 4


def test_unknown_command_named_with_hint():
    e = err(r"\foo(x)")
    assert "\\foo" in e.message and e.position == 0 and e.end == 4
    assert e.hint
    e = err(r"\sigm(x)")
    assert "\\sigma" in e.hint
    e = err(r"\operatorname{foo}(x)")
    assert "foo" in e.message


@pytest.mark.parametrize("text, name, latex", [
    # an accented letter is a symbol of its own: \hat{y} (a prediction), \bar{x} (a mean),
    # never an operation on y or x (were refused)
    (r"\hat{y}", "y__hat", r"\hat{y}"),
    (r"\hat y", "y__hat", r"\hat{y}"),
    (r"\bar{x}", "x__bar", r"\bar{x}"),
    (r"\tilde{\Sigma}", "Sigma__tilde", r"\tilde{\Sigma}"),
    (r"\vec{x}", "x__vec", r"\vec{x}"),
    (r"\hat{\mathbf{y}}", "y__hat", r"\hat{\mathbf{y}}"),
    (r"\mathbf{\hat{y}}", "y__hat", r"\hat{\mathbf{y}}"),
    (r"\hat{\boldsymbol\beta}", "beta__hat", r"\hat{\boldsymbol{\beta}}"),
    (r"\hat{y}_i", "y_i__hat", r"\hat{y}_i"),
    (r"\hat{y_i}", "y_i__hat", r"\hat{y}_i"),
    (r"\hat{W}^{(1)}", "W__hat__1", r"\hat{W}^{(1)}"),
    # subscripts as ML texts write them: words in text or roman type, \max/\min, steps (were
    # "unexpected `_`")
    (r"W_{\text{out}}", "W_out", r"W_{\text{out}}"),
    (r"W_\text{out}", "W_out", r"W_{\text{out}}"),
    (r"b_{\mathrm{o}}", "b_o", r"b_{\mathrm{o}}"),
    (r"W_{\rm in}", "W_in", r"W_{\mathrm{in}}"),
    (r"W_{\textrm{in}}", "W_in", r"W_{\text{in}}"),
    (r"\lambda_{\max}", "lambda_max", r"\lambda_{\max}"),
    (r"\sigma_\min", "sigma_min", r"\sigma_{\min}"),
    (r"h_{t-1}", "h_tm1", r"h_{t-1}"),
    (r"x_{k + 1}", "x_kp1", r"x_{k+1}"),
    (r"\hat{y}_{\text{test}}", "y_test__hat", r"\hat{y}_{\text{test}}"),
])
def test_accented_and_subscripted_symbols(text, name, latex):
    tree = parse(text).tree
    assert isinstance(tree, Symbol) and tree.name == name and tree.latex == latex
    assert normalize_name(text) == name and normalize_name(name) == name


@pytest.mark.parametrize("text, pos, end", [(r"x_{i,j}", 1, 7), (r"x_{\alpha\beta}", 1, 15),
                                            (r"W_{\text{out layer}} h", 1, 20)])
def test_an_unsupported_subscript_is_named(text, pos, end):
    e = err(text)
    assert e.message == f"the subscript `{text[pos:end]}` is not supported"
    assert (e.position, e.end) == (pos, end) and "h_{t-1}" in e.hint


@pytest.mark.parametrize("text, pos", [(r"-y^\top \log \hat{y + z}", 13), (r"\hat{}", 0),
                                       (r"x + \bar{2}", 4), (r"\mathbf{\hat{y} z}", 0)])
def test_an_accent_on_more_than_a_letter_is_refused_at_the_accent(text, pos):
    e = err(text)
    assert "is not a symbol" in e.message and e.position == pos
    assert "one Latin or Greek letter" in e.hint


@pytest.mark.parametrize("text, start, end, sym, idx", [
    (r"W^(2) \sigma(W^(1) x)", 1, 5, "W", "2"), (r"x^\top A^(2) x", 8, 12, "A", "2"),
    (r"a^( l )", 1, 7, "a", "l"),
])
def test_an_index_written_without_braces_is_ambiguous(text, start, end, sym, idx):
    r"""``W^(1)``: TeX sets only the bracket as the superscript; it was read as the power W^1 = W
    (``W^(2) \sigma(W^(1) x)`` as W^2 \sigma(W x)), the layer index W^{(1)} being meant."""
    e = err(text)
    assert e.message.endswith("is ambiguous") and (e.position, e.end) == (start, end)
    assert f"{sym}^{{({idx})}}" in e.hint and f"{sym}^{{{idx}}}" in e.hint


def test_a_bracketed_expression_in_an_ascii_power_is_a_power():
    from matderiv import derive
    d = derive(r"a^(x+1)", "x", scalar=["a", "x"])
    assert float(d.evaluate({"a": 2.0, "x": 0.5})) == pytest.approx(2.0 ** 1.5 * np.log(2.0))


@pytest.mark.parametrize("text, start, end, divisor, run", [
    (r"\|x\|^2 / 2\sigma^2", 8, 19, "2", r"2\sigma^2"),
    (r"\exp(-\|x - y\|^2 / 2\sigma^2)", 18, 29, "2", r"2\sigma^2"),
    (r"1/2 x^\top x", 1, 12, "2", r"2 x^\top x"),
    (r"x^\top A x / x^\top x", 11, 21, r"x^\top", r"x^\top x"),
    (r"a^\top x / \|x\| \|a\|", 9, 22, r"\|x\|", r"\|x\| \|a\|"),
])
def test_a_division_by_a_factor_with_more_written_after_it_is_ambiguous(text, start, end,
                                                                        divisor, run):
    r"""``a / 2\sigma^2`` was read left to right, (a / 2) \sigma^2, and its derivative printed;
    SymPy's LaTeX parser reads a / (2\sigma^2).  Both are plausible: an error at the ``/``."""
    e = err(text)
    assert e.message == (f"ambiguous division `/ {run}`: it may divide by `{divisor}` alone "
                         f"or by `{run}`")
    assert (e.position, e.end) == (start, end)
    assert f"/ ({run})" in e.hint and f"\\frac{{...}}{{{divisor}}}" in e.hint


@pytest.mark.parametrize("text, value", [
    (r"x / 2", 1.5), (r"x / (2 y)", 0.75), (r"x / 2 \cdot y", 3.0), (r"x / 2 * y", 3.0),
    (r"\frac{x}{2} y", 3.0), (r"x / 2 \, y", 3.0), (r"(x / 2) y", 3.0), (r"x / y^2", 0.75),
])
def test_a_division_with_nothing_or_an_operator_after_its_divisor_is_read(text, value):
    from matderiv import derive
    d = derive(text, "x", scalar=["x", "y"])  # linear in x: the derivative is value / x
    assert float(d.evaluate({"x": 3.0, "y": 2.0})) == pytest.approx(value / 3.0, rel=1e-12)


def test_code_injection_is_a_parse_error():
    e = err("__import__('os').system('true')")
    assert e.position == 0


def test_empty_expression():
    assert "empty" in err("").message
    assert "empty" in err("   ").message
    assert "empty" in err(r"\,\;").message


def test_unexpected_token_in_words():
    e = err("x + * y")
    assert e.position == 4
    assert "expected" in e.hint and "operand" in e.hint
    assert "TIMES" not in str(e) and "SYM" not in str(e)
    e = err("x +")
    assert "ends" in e.message and e.position == 3
    e = err("()")
    assert e.position == 1


@pytest.mark.parametrize("text", ["x,y", "x = y", "x^", "^2", "_1", "'x", "x ++", r"\frac{1}",
                                  r"\left. x \right)", "\x00", "x_", "A x +)", r"\mathbf{xy}",
                                  r"\|x\|_3", "1/0", "x ! y", "#"])
def test_bad_inputs_raise_matderiv_error(text):
    err(text)


def test_non_string():
    with pytest.raises(MatDerivError):
        parse(None)  # type: ignore[arg-type]


# --- performance ----------------------------------------------------------------------------
def test_long_expression_is_fast():
    text = "x^T A x + " * 1000 + "x^T x"
    assert len(text) >= 10_000
    t0 = time.perf_counter()
    p = parse(text)
    dt = time.perf_counter() - t0
    print(f"\nparse of a {len(text)}-character expression: {dt * 1000:.0f} ms")
    assert isinstance(p.tree, Add) and len(p.tree.args) == 1001
    assert dt < 2.0


def test_long_error_expression_is_fast():
    text = "x^T A x + " * 1000
    t0 = time.perf_counter()
    with pytest.raises(MatDerivError):
        parse(text)
    assert time.perf_counter() - t0 < 2.0


def test_deep_nesting_is_an_error_or_parses():
    text = "(" * 3000 + "x" + ")" * 3000
    try:
        assert parse(text).tree == x
    except MatDerivError:
        pass


# --- property: random well-formed strings ---------------------------------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_atoms = st.sampled_from(["x", "A", r"\theta", r"\mathbf{y}", "W_1", "2", "0.5", r"\mathbf{1}",
                          "I", r"\tfrac12", "e", r"\Sigma"])
_post = st.sampled_from(["", "^T", r"^\top", "^{-1}", "'", "^2", "^{k}"])
_funcs = st.sampled_from([r"\exp", r"\log", r"\operatorname{tr}", r"\det", r"\sigma", "\\sin",
                          r"\operatorname{diag}", "softmax", "vec"])
_ops = st.sampled_from([" + ", " - ", " ", r" \cdot ", r" \odot ", " * ", r" \otimes ", "/"])


def _expr(depth):
    base = st.tuples(_atoms, _post).map("".join)
    if depth == 0:
        return base
    sub = _expr(depth - 1)
    return st.one_of(
        base,
        st.tuples(sub, _ops, sub).map("".join),
        st.tuples(st.sampled_from(["(", r"\left(", "[", r"\big("]), sub, _post).map(
            lambda t: t[0] + t[1] + {"(": ")", r"\left(": r"\right)", "[": "]",
                                     r"\big(": r"\big)"}[t[0]] + t[2]),
        st.tuples(_funcs, sub).map(lambda t: f"{t[0]}({t[1]})"),
        # (a bar or norm directly inside a juxtaposition inside a norm is ambiguous)
        st.tuples(sub).map(lambda t: rf"\|({t[0]})\|_2"),
        st.tuples(sub).map(lambda t: f"-{t[0]}"),
    )


def refused_as_ambiguous(message: str) -> bool:
    """Whether a well-formed string was refused for what it may mean to a reader: `x/x x` (by x
    alone, or by x x?), `2 2` (TeX sets it as 22) and `x2` (a name, a subscript, a multiple?)."""
    return message.startswith("ambiguous division") or "two numbers side by side" in message \
        or "a number right after a symbol" in message


@settings(max_examples=200, deadline=None)
@given(_expr(3))
def test_random_well_formed_strings_parse(text):
    try:
        p = parse(text)
    except MatDerivError as e:
        assert refused_as_ambiguous(e.message), (text, e.message)
        return
    assert isinstance(p.tree, Expr)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("xAy+-*/^_{}()[]|\\'.,0123456789 Tt") +
                                ["\\|", "\\left(", "\\right)", "\\frac", "\\det", "\\sigma",
                                 "\\mathbf", "\\top", "\\operatorname{tr}", "e^"]),
                max_size=25).map("".join))
def test_random_garbage_only_raises_matderiv_error(text):
    try:
        parse(text)
    except MatDerivError:
        pass


@pytest.mark.parametrize("text, name", [
    (r"\sigma'(x)", "dsigmoid"), (r"\sigma^\prime(x)", "dsigmoid"),
    (r"\sigma^{\prime}\left(x\right)", "dsigmoid"),
    (r"\operatorname{sech}^2(x)", "sech2"), (r"\operatorname{sech}^{2}(x)", "sech2"),
])
def test_derivative_function_spellings(text, name):
    """The engine prints sigma'(u) and sech^2(u); they read back as those functions, never as
    a transposed symbol sigma times u."""
    from matderiv.expr import Func

    tree = parse(text).tree
    assert isinstance(tree, Func) and tree.name == name


def test_sigma_prime_derivative_is_verified():
    from matderiv import derive

    d = derive(r"\operatorname{sum}(\sigma'(x))", "x")  # verified against finite differences
    assert r"\sigma'(x)" in d.latex and r"\sigma(x)" in d.latex


@pytest.mark.parametrize("text, value", [("1e-3", Fraction(1, 1000)), ("1.5E2", Fraction(150)),
                                         (".5", Fraction(1, 2))])
def test_scientific_numbers(text, value):
    tree = parse(text).tree
    assert isinstance(tree, Const) and tree.value == value


@pytest.mark.parametrize("text, words", [
    (r"\|X\|_*", "nuclear norm"), (r"\|X\|_{*}", "nuclear norm"), (r"\|x\|_\infty", "max norm"),
    (r"\|x\|_3", "the norm `_3`"),
    # (a subscript the norm's pattern does not take was "unexpected `_`")
    (r"\|X\|_{2,1}", "the norm `_{2,1}`"), (r"\|X\| _{\max}", r"the norm `_{\max}`"),
])
def test_unsupported_norms_are_named(text, words):
    from matderiv.errors import UnsupportedError

    with pytest.raises(UnsupportedError) as info:
        parse(text)
    assert words in info.value.message and "not supported" in info.value.message
    assert info.value.position == text.index("_") and "Frobenius" in info.value.hint


def test_max_and_min_are_refused_with_a_smooth_alternative():
    e = err(r"\max(0, 1 - y w^\top x)")
    assert "\\max" in e.message and "not supported" in e.message and e.position == 0
    assert "soft maximum" in e.hint


@pytest.mark.parametrize("text, same_as", [
    (r"\|x\|^2_2", r"\|x\|_2^2"),
    (r"\|x\|^{2}_{2}", r"\|x\|_2^2"),
    (r"\left\| X \right\|^2_F", r"\|X\|_F^2"),
    (r"\|X\|^2_{\mathrm{F}} + \|a\|^3_1", r"\|X\|_F^2 + \|a\|_1^3"),
    (r"\norm{A x - b}^2", r"\|A x - b\|^2"),
    (r"\norm*{A x - b}_2^2", r"\|A x - b\|_2^2"),
    (r"\norm{X}_F", r"\|X\|_F"),
    (r"\log \norm{x}_1", r"\log \|x\|_1"),
])
def test_norm_spellings(text, same_as):
    r"""``\|x\|^2_2`` is as common as ``\|x\|_2^2`` (it was "unexpected `_`"); ``\norm{x}``
    (the physics package, mathtools' ``\norm*``, a macro most papers define) was an unknown
    command."""
    assert parse(text).tree == parse(same_as).tree
    with pytest.raises(MatDerivError, match="unclosed"):
        parse(r"\norm{x")


def test_a_subscript_after_a_power_of_anything_else_is_still_refused():
    with pytest.raises(MatDerivError) as info:
        parse(r"x^2_2")
    assert info.value.message == "unexpected `_`"


def test_capitalised_diag_is_diag():
    assert parse(r"\operatorname{Diag}(x) A x").tree == parse(r"\operatorname{diag}(x) A x").tree
    assert parse(r"\mathrm{Diag}(X)").tree == parse(r"\mathrm{diag}(X)").tree


@pytest.mark.parametrize("text, same_as", [
    (r"\sum(\log(\sigma(X w)))", r"\operatorname{sum}(\log(\sigma(X w)))"),
    (r"\sum\left(\exp(x)\right) + \sum [x]", r"\operatorname{sum}(\exp(x)) + \operatorname{sum}(x)"),
])
def test_sum_without_limits_of_a_bracket_is_the_sum_of_entries(text, same_as):
    assert parse(text).tree == parse(same_as).tree


@pytest.mark.parametrize("text", [r"\sum_i x_i", r"\sum x", r"\sum_{i=1}^n (x)"])
def test_sum_with_limits_or_without_a_bracket_is_still_refused(text):
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert "`\\sum` is not supported" in info.value.message


@pytest.mark.parametrize("text, same_as", [
    # a function without brackets takes the product written after it, as in print
    (r"\operatorname{tr} A X B", r"\operatorname{tr}(A X B)"),
    (r"\operatorname{tr} X^\top X", r"\operatorname{tr}(X^\top X)"),
    (r"\log\det X^\top X", r"\log(\det(X^\top X))"),
    (r"\ln |X^\top X| y", r"\log(|X^\top X| y)"),
    (r"\sin 2\tau", r"\sin(2 \tau)"),
    (r"\exp a^\top x", r"\exp(a^\top x)"),
    (r"\tanh W x", r"\tanh(W x)"),
    (r"\log x^\top A x", r"\log(x^\top A x)"),
    (r"\operatorname{tr} A (X + B)", r"\operatorname{tr}(A (X + B))"),
    # ... up to the next function, an explicit operator or an explicit space
    (r"\sin\tau\cos\tau", r"\sin(\tau) \cos(\tau)"),
    (r"\det A \det X", r"\det(A) \det(X)"),
    (r"\operatorname{tr} X + \operatorname{tr} A X", r"\operatorname{tr}(X) + \operatorname{tr}(A X)"),
    (r"\log x \cdot y^\top x", r"\log(x) y^\top x"),
    (r"\det X \, X^{-1}", r"\det(X) X^{-1}"),
    (r"\det X\; X^{-\top} a", r"\det(X) X^{-\top} a"),
    (r"\operatorname{tr} A \quad X", r"\operatorname{tr}(A) X"),
    (r"\log x \odot y", r"\log(x) \odot y"),
    # brackets right after the name are the argument, and a power after them is outside
    (r"\det(X) X^{-\top}", r"(\det(X)) X^{-\top}"),
    (r"\operatorname{tr}(X)^2 X", r"(\operatorname{tr}(X))^2 X"),
    (r"\det X^{-1} Y", r"\det(X^{-1} Y)"),
    # a square root takes one factor, as TeX sets it
    (r"\sqrt x y", r"\sqrt{x}\, y"),
    (r"\sqrt[3] x y", r"x^{1/3} y"),
    # spaces that are not explicit change nothing; \! is not a separation
    (r"\sin 2 \tau", r"\sin(2\tau)"),
    (r"\sin 2\!\tau", r"\sin(2\tau)"),
    # an explicit space where the grammar has no product is still only a space
    (r"\sin^2 \, \tau", r"\sin^2(\tau)"),
    (r"\sin^{2}\, \tau", r"\sin^2(\tau)"),
    (r"x \, - y", r"x - y"),
    (r"\frac{1}{2} \, x^\top x", r"\frac{1}{2} x^\top x"),
    (r"\left( \, x \, \right)", r"x"),
    # elementwise powers
    (r"X^{\circ 2}", r"X \odot X"),
    (r"x^{\odot 3}", r"x \odot x \odot x"),
    (r"(A x - b)^{\circ 2}", r"(A x - b) \odot (A x - b)"),
    (r"x^{\circ 1/2}", r"\sqrt{x}"),
    (r"\mathbf{1}^\top x^{\circ 2}", r"\mathbf{1}^\top (x \odot x)"),
    (r"x^{\circ 0.5}", r"\sqrt{x}"),
    (r"x^{\circ \frac{1}{2}}", r"\sqrt{x}"),
    # MATLAB's (and matrixcalculus.org's) elementwise power and division
    (r"sum(x.^2)", r"\operatorname{sum}(x \odot x)"),
    (r"X.^{3}", r"X \odot X \odot X"),
    (r"x .^ (2)", r"x \odot x"),
    (r"x.^0.5", r"\sqrt{x}"),
    (r"1./x", r"1 \oslash x"),
    (r"a./(x + b)", r"a \oslash (x + b)"),
])
def test_a_bare_function_argument_is_the_product_after_it(text, same_as):
    r"""``\operatorname{tr} A X`` was tr(A) X and ``\sin 2\tau`` sin(2) tau: derivatives of
    what the author did not mean, printed as if right.  (With the elementwise powers
    ``x^{\circ k}``, the other new reading.)"""
    assert parse(text).tree == parse(same_as).tree


@pytest.mark.parametrize("text, words", [
    (r"\E[x^\top A x]", "the expectation"), (r"x^\top x + \R", "real numbers"),
    (r"\Var(x)", "a statistic or divergence"),
    (r"\frac{\partial}{\partial x} x^\top x", "the macro writes the derivative"),
    (r"\nabla f", "the macro writes the derivative"),
    (r"x_1 + \dots + x_n", "without dots"),
    (r"\prod x", "product"),
    (r"\sum_i x_i", "write the sum in vector form"),
    (r"\sum x", "sum of the entries"),
])
def test_commands_refused_in_an_expression_say_what_to_write(text, words):
    r"""Each refused command gets its own hint (``\partial`` got the one about ``\sum``)."""
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert "is not supported in an expression" in info.value.message
    assert words in info.value.hint


@pytest.mark.parametrize("text, words, at", [
    (r"x^\top A x + \left\star x", "`\\star` (a convolution)", 18),
    (r"A \star x", "`\\star` (a convolution) is not supported", 2),
    (r"\mathbb{E}[x^\top A x]", "`\\mathbb{E}` (the expectation) is not supported", 0),
])
def test_operators_matderiv_does_not_read_are_named(text, words, at):
    r"""``\langle`` got "did you mean \logdet or \ln?" (it is read now); ``\mathbb{E}[x]``
    was read as a matrix E times x, and its derivative printed."""
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert words in info.value.message
    assert info.value.position == at


@pytest.mark.parametrize("text", [r"x^{\circ -1}", r"x^{\circ 2.5}", r"x^{\circ k}"])
def test_other_elementwise_powers_are_refused_at_the_exponent(text):
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert "the elementwise power" in info.value.message and "not supported" in info.value.message
    assert info.value.position == text.index(r"\circ") + 6


def test_an_elementwise_power_without_exponent_is_named():
    with pytest.raises(MatDerivError) as info:
        parse(r"x^\top x^{\circ}")
    assert info.value.message == "`^{\\circ}` without an exponent"
    assert (info.value.position, info.value.end) == (8, 16)


@pytest.mark.parametrize("text, name", [(r"\exp -x^\top x", r"\exp"), (r"\sin^2 -\tau", r"\sin")])
def test_a_signed_argument_without_brackets_says_to_bracket_it(text, name):
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert info.value.message == "unexpected `-`"
    assert f"{name}(-x), not {name} -x" in info.value.hint


@pytest.mark.parametrize("text, name, latex", [
    (r"W^{(1)}", "W__1", "W^{(1)}"),
    (r"W^{[l]}", "W__l", "W^{[l]}"),
    (r"x^{<t>}", "x__t", r"x^{\langle t \rangle}"),
    (r"x^{\langle t \rangle}", "x__t", r"x^{\langle t \rangle}"),
    (r"\mathbf{W}_2^{(3)}", "W_2__3", r"\mathbf{W}_2^{(3)}"),
    (r"\theta^{(k)}", "theta__k", r"\theta^{(k)}"),
    # the star of an optimum
    (r"x^*", "x__star", "x^{*}"),
    (r"x^{\star}", "x__star", "x^{*}"),
    (r"\mathbf{w}^\ast", "w__star", r"\mathbf{w}^{*}"),
])
def test_a_bracketed_superscript_on_a_symbol_is_an_index_not_a_power(text, name, latex):
    r"""``W^{(2)} \sigma(W^{(1)} x)`` was W^2 \sigma(W x): the layer index read as a power."""
    tree = parse(text).tree
    assert isinstance(tree, Symbol) and (tree.name, tree.latex) == (name, latex)
    assert normalize_name(text) == name == normalize_name(name)


def test_an_index_may_carry_a_transpose():
    tree = parse(r"x^{(i)\top} A x^{(i)}").tree
    assert tree == parse(r"{x^{(i)}}^\top A x^{(i)}").tree
    assert isinstance(tree.args[0], Transpose) and tree.args[0].arg.name == "x__i"
    for star in (r"x^{*\top}", r"x^{\star T}", r"x^{* \mathsf{T}}"):  # and so may the star
        tree = parse(star + " A x^*").tree
        assert tree == parse(r"{x^*}^\top A x^*").tree
        assert isinstance(tree.args[0], Transpose) and tree.args[0].arg.name == "x__star"
    assert parse(r"X^{2}").tree == parse(r"X^2").tree  # a plain superscript is still a power


@pytest.mark.parametrize("text, shown", [
    (r"a^\top W^{(1)-1} b", "W^{(1)-1}"), (r"a^\top W^{(1)2} b", "W^{(1)2}"),
    (r"a^\top W^{[l] -1} b", "W^{[l] -1}"), (r"a^\top W^{(1)^{-1}} b", "W^{(1)^{-1}}"),
])
def test_an_index_and_a_power_in_one_superscript_are_refused(text, shown):
    r"""``W^{(1)-1}`` was read literally as W^{1-1} = I: the gradient of a^T W^{(1)-1} b by
    W^{(1)} printed 0.  The writer means the inverse of the layer's W; the hint shows how."""
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert info.value.message == f"`{shown}` mixes an index and a power in one superscript"
    assert text[info.value.position:info.value.end] == shown
    assert "(W^{" in info.value.hint
    assert parse(r"a^\top (W^{(1)})^{-1} b").tree == parse(r"a^\top {W^{(1)}}^{-1} b").tree


def test_transpose_then_inverse_in_one_superscript():
    r"""``X^{\top -1}`` said "`\top` outside a superscript"; it is X^{-T}.  ``X^{T-1}`` stays a
    power by T - 1 (a horizon T, in control), never an inverse transpose."""
    for text in (r"a^\top X^{\top -1} b", r"a^\top X^{\intercal-1} b"):
        assert parse(text).tree == parse(r"a^\top X^{-\top} b").tree
    assert parse(r"a^\top X^{T-1} b").tree != parse(r"a^\top X^{-\top} b").tree


def test_an_equation_in_the_expression_says_to_write_its_right_hand_side():
    with pytest.raises(MatDerivError) as info:
        parse(r"f(x) = x^\top A x")
    assert info.value.message == "unexpected `=` in the expression"
    assert "write its right-hand side alone" in info.value.hint and "name=f" in info.value.hint


def test_blackboard_sets_are_refused_and_ones_in_other_fonts_read():
    r"""``\mathbb{R}`` was a matrix symbol R (its derivative printed 0); dsfont's and bbm's
    ``\mathds{1}``, ``\mathbbm{1}`` were unknown commands."""
    with pytest.raises(MatDerivError) as exc:
        parse(r"x^\top x + \mathbb{R}")
    assert exc.value.message == r"`\mathbb{R}` (the real numbers) is a set, not a quantity"
    for ones in (r"\mathds{1}", r"\mathbbm{1}", r"\mathbb{1}"):
        assert parse(ones + r"^\top x").tree == parse(r"\mathbf{1}^\top x").tree


def test_an_inner_product_reads_as_the_trace_of_a_transposed_product():
    r"""``\langle A, X \rangle`` and ``A : X`` (the Frobenius product of the matrix-calculus
    literature) are tr(A^T X); typing drops the trace for two vectors."""
    for text in (r"\langle A, X \rangle", r"\left\langle A , X \right\rangle_F",
                 r"\big\langle A, X\big\rangle_{\mathrm{F}}"):
        assert parse(text).tree == parse(r"\operatorname{tr}(A^\top X)").tree
    for text in (r"A : X", r"A:X"):  # the Frobenius product written with a colon
        assert parse(text).tree == parse(r"\operatorname{tr}(A^\top X)").tree
    assert parse(r"A B : X + C").tree == parse(r"\operatorname{tr}((A B)^\top X) + C").tree
    with pytest.raises(MatDerivError, match="unclosed"):
        parse(r"\langle x, y")
    with pytest.raises(MatDerivError, match="a second comma in an inner product"):
        parse(r"\langle x, \langle a, x, y \rangle b \rangle")
    assert parse(r"\langle \langle a, x \rangle b, x \rangle").tree == \
        parse(r"\operatorname{tr}((\operatorname{tr}(a^\top x) b)^\top x)").tree
    with pytest.raises(MatDerivError, match="comma"):
        parse(r"x, y")


@pytest.mark.parametrize("text", [r"x^{\sf T} A x", r"x^{\text{T}} A x", r"x^H A x",
                                  r"x^{\mathsf H} A x", r"x^{\mathrm{H}} A x",
                                  r"x^\mathrm{T} A x", r"x^\mathrm T A x", r"x^\text{T} A x",
                                  r"x^\textsf{T} A x", r"x^{'} A x",
                                  r"x^{\scriptscriptstyle\top} A x", r"x^{\scriptstyle T} A x",
                                  r"x^\T A x", r"x^{\T} A x", r"x^\transpose A x",
                                  r"x\T A x"])
def test_more_transpose_spellings(text):
    """``^{\\sf T}`` and ``\\text{T}``; the conjugate transpose ``^H`` is the transpose over the
    reals (it was a power by a symbol H).  ``A^\\mathrm{T}`` without braces around the command
    (TeX takes its argument all the same) was the power of A by a roman symbol T."""
    assert parse(text).tree == parse(r"x^\top A x").tree


@pytest.mark.parametrize("text, same_as", [
    ("X⁻¹", r"X^{-1}"),
    ("x^⊤ A x", r"x^\top A x"),
    ("‖A x − b‖²", r"\|A x - b\|^2"),
    ("τ³ + τ²", r"\tau^3 + \tau^2"),
    ("\\sin² τ", r"\sin^2(\tau)"),
])
def test_unicode_powers_inverses_and_norms(text, same_as):
    """Text pasted from a Unicode source (``x²``, ``X⁻¹``, ``‖x‖``); a superscript digit or
    another script's digit crashed the number reader ("cannot parse the expression")."""
    assert parse(text).tree == parse(same_as).tree


@pytest.mark.parametrize("text", ["²", "١ + x"])
def test_digits_that_are_not_ascii_are_unexpected_characters(text):
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert info.value.message.startswith("unexpected") and info.value.position == 0


@pytest.mark.parametrize("text, same_as", [
    (r"e^{H}", r"\exp(H)"), (r"e^H", r"\exp(H)"), (r"e^{-H}", r"\exp(-H)"),
    (r"e^{-1} x", r"\exp(-1) x"),
])
def test_e_to_an_h_is_an_exponential_not_a_conjugate_transpose(text, same_as):
    """``^H`` after a symbol is the (conjugate) transpose; after ``e`` it is an exponent (a
    first version read ``e^{H}`` as the constant e transposed, whose derivative is 0)."""
    assert parse(text).tree == parse(same_as).tree


@pytest.mark.parametrize("text", [r"\frac{\mathrm{d}}{\mathrm{d}\tau} \tau^2", r"\frac{d}{d\tau} \tau^2",
                                  r"\frac{d f}{d x}", r"\dfrac{d^2}{d t^2} t^3", r"x^\top \mathrm{d}x"])
def test_derivative_notation_in_an_expression_says_what_to_write(text):
    r"""``\frac{d}{d\tau}`` was read as a division by a vector d times tau."""
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert "not supported in an expression" in info.value.message
    assert "the macro writes the derivative" in info.value.hint


@pytest.mark.parametrize("text, message, words", [
    # notation for something matderiv does not compute
    (r"A^{\dagger} b", "the pseudo-inverse `^{\\dagger}` is not supported", "(A^\\top A)^{-1}"),
    (r"A^+ b", "the pseudo-inverse `^+` is not supported", "(A^\\top A)^{-1}"),
    (r"\mathcal{L}(w)", "`\\mathcal` is not supported in an expression", "its formula"),
    (r"\ell(y, x)", "`\\ell` is not supported in an expression", "its formula"),
    (r"\log_2 \tau", "`\\log_2` (a logarithm to another base) is not supported", "\\log(2)"),
    (r"\log_{10}(x^\top x)", "`\\log_{10}` (a logarithm to another base) is not supported",
     "\\log(2)"),
    (r"A \backslash b", "`\\backslash` is not supported in an expression", "A^{-1} b"),
    # program spellings (norm(x) was read as n o r m times (x), a size clash of single letters)
    ("norm(x)", "the function `norm` is not supported", r"a norm is \|x\|"),
    ("relu(W x)", "the function `relu` is not supported", r"\softmax"),
    ("A @ x", "unexpected `@` in the expression", "side by side"),
    ("x.T @ A @ x", "unexpected `.` in the expression", "x^T"),
    ("x**2", "unexpected `**`", "x^2"),
])
def test_notation_matderiv_does_not_read_is_named_with_what_to_write(text, message, words):
    """Each was "unknown command; did you mean ...?" with a near miss, or misread."""
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert info.value.message == message
    assert words in info.value.hint and "did you mean" not in info.value.hint


def test_letters_before_a_bracket_are_still_a_product():
    assert parse("AB(x + y)").tree == parse(r"A B (x + y)").tree


def test_an_identity_may_carry_its_size_as_n_times_n():
    assert parse(r"x^\top I_{n \times n} x").tree == parse(r"x^\top I x").tree


@pytest.mark.parametrize("text, same_as", [
    ("tau^2 + lambda tau", r"\tau^2 + \lambda \tau"),
    ("x^T Sigma^{-1} x", r"x^T \Sigma^{-1} x"),
    ("exp(-theta_1 t)", r"\exp(-\theta_1 t)"),
    ("sigma(w^T x)", r"\sigma(w^T x)"),
    ("Xi + Pi", "X i + P i"),          # a matrix times a vector, as before
    ("betax", "b e t a x"),             # not a Greek name on its own
])
def test_greek_names_typed_plainly(text, same_as):
    """``tau``, ``Sigma``, ``lambda`` typed without a backslash are the Greek letters (as
    ``--wrt tau`` already was); they were products of single letters, t a u."""
    assert parse(text).tree == parse(same_as).tree


@pytest.mark.parametrize("text, message, hint", [
    (r"\sin^{-1}(t)", r"`\sin^{-1}` is ambiguous: the inverse function or the reciprocal",
     r"\frac{1}{\sin(...)}"),
    (r"\tan^{-1} t", r"`\tan^{-1}` is ambiguous: the inverse function or the reciprocal",
     r"\arctan(...) for the inverse function"),
    (r"\det^{-1}(X)", r"`\det^{-1}`: a reciprocal written as a power of the function",
     r"\frac{1}{\det(...)}"),
])
def test_a_function_to_the_power_minus_one_says_what_to_write(text, message, hint):
    """``\\sin^{-1}(t)`` was "unexpected `^{-1}`: expected an operand"."""
    with pytest.raises(MatDerivError) as exc:
        parse(text)
    assert exc.value.message == message and hint in exc.value.hint


@pytest.mark.parametrize("text, shown, hint", [
    (r"W_12 x", "W_12", "write W_{12} for the subscript 12, or 2 W_1 for a multiple"),
    (r"x^\top W2 x", "W2", "write W_{2} for a subscript, or 2 W for a multiple"),
    (r"2x1", "x1", "write x_{1} for a subscript"),
    (r"\mathbf{W}_{1}2", r"\mathbf{W}_{1}2", r"write \mathbf{W}_{12} for the subscript 12"),
])
def test_a_number_right_after_a_symbol_is_refused(text, shown, hint):
    r"""``W_12 x`` (TeX sets W_1 followed by 2) was 2 W_1 x, ``x^\top W2 x`` was 2 x^T W x and
    ``W1 x`` was W x: a number after a symbol is no multiple a writer means."""
    with pytest.raises(MatDerivError) as exc:
        parse(text)
    assert exc.value.message == f"`{shown}`: a number right after a symbol"
    assert hint in exc.value.hint and text[exc.value.position:exc.value.end] == shown
    assert parse(r"W_{12} x + x 2 + \frac x2").tree == parse(r"W_{12} x + 2 x + \frac{1}{2} x").tree


@pytest.mark.parametrize("text", ["2 3 x", r"2\,3 x", "x^T x + 0.5 2", "a 2 3"])
def test_two_numbers_side_by_side_are_refused(text):
    """``2 3 x`` is set by TeX as 23 x, which is what a reader sees; it was read 6 x."""
    with pytest.raises(MatDerivError) as exc:
        parse(text)
    assert "two numbers side by side" in exc.value.message and r"\cdot" in exc.value.hint


@pytest.mark.parametrize("text, same_as", [
    (r"\frac12 3 x", r"\frac{1}{2} \cdot 3 x"), ("x^2 3", r"x^2 \cdot 3"), ("2 x 3", r"2 x \cdot 3"),
])
def test_a_number_after_a_fraction_or_an_exponent_is_a_factor(text, same_as):
    assert parse(text).tree == parse(same_as).tree


@pytest.mark.parametrize("text, same_as", [
    (r"\sigma\!\left(w^\top x\right)", r"\sigma(w^\top x)"),   # was sigma times (w^T x)
    (r"\sigma\mkern-3mu(w^\top x)", r"\sigma(w^\top x)"),
    (r"x^{\top}\mkern-2mu A x", r"x^\top A x"),                 # was "unknown command \mkern"
    (r"x^\top \hspace{0.2em} A x", r"x^\top A x"),
    (r"\det X \hspace{1em} X^{-1}", r"\det(X) X^{-1}"),         # a visible space ends the argument
])
def test_spacing_commands(text, same_as):
    assert parse(text).tree == parse(same_as).tree


def test_sigma_then_a_thin_space_then_a_bracket_is_ambiguous():
    with pytest.raises(MatDerivError) as exc:
        parse(r"\sigma\,(w^\top x)")
    assert exc.value.message.startswith("ambiguous") and r"\sigma \cdot" in exc.value.hint


@pytest.mark.parametrize("text, same_as", [
    (r"{\rm tr}(A X)", r"\operatorname{tr}(A X)"),   # was t times r: "size clash in \rm tr"
    (r"\rm tr (A X)", r"\operatorname{tr}(A X)"),
    (r"{\rm det} X", r"\det X"),
    (r"W_{\rm in} x", r"W_{\mathrm{in}} x"),          # a subscript in roman stays a subscript
    (r"{\bf x}^\top {\bf A} {\bf x}", r"\mathbf{x}^\top \mathbf{A} \mathbf{x}"),  # was "unknown \bf"
    (r"{\bf x}_1^T {\bf W}_{2} {\bf x}_1", r"\mathbf{x}_1^T \mathbf{W}_2 \mathbf{x}_1"),
    (r"{ \bf \mu }^\top {\bf\mu}", r"\boldsymbol{\mu}^\top \boldsymbol{\mu}"),
    (r"{\bf 1}^\top \exp({\bf x})", r"\mathbf{1}^\top \exp(\mathbf{x})"),
    (r"{\bf I} x + A x", r"\mathbf{I} x + A x"),      # the identity, not a matrix named I
])
def test_plain_tex_font_switches(text, same_as):
    """Plain TeX's ``{\\rm ...}`` function names and ``{\\bf ...}`` bold symbols read as their
    LaTeX spellings."""
    assert parse(text).tree == parse(same_as).tree


@pytest.mark.parametrize("text, same_as", [
    (r"x^\top_i A x_i", r"x_i^\top A x_i"),          # was "unexpected `_`"
    (r"\mathbf{x}^T_i \mathbf{w}", r"\mathbf{x}_i^T \mathbf{w}"),
    (r"\mathbf{x}^{T}_{i} w", r"\mathbf{x}_{i}^{T} w"),
    (r"{\bf x}^\intercal_1 {\bf x}_1", r"\mathbf{x}_1^\top \mathbf{x}_1"),
    (r"\theta^\top_k a", r"\theta_k^\top a"),
    (r"\mathbf{x}^{\mathsf T}_i w", r"\mathbf{x}_i^{\mathsf T} w"),  # any spelling of ^T
])
def test_a_transpose_before_the_subscript_is_the_subscripted_symbol_transposed(text, same_as):
    assert parse(text).tree == parse(same_as).tree


@pytest.mark.parametrize("text, same_as", [
    (r"x^{\mathrm{\scriptscriptstyle T}} A x", r"x^\top A x"),   # Biometrika's \T
    (r"x^{ \mathrm{\scriptscriptstyle T} } A x", r"x^\top A x"),
    (r"X^{-\mathrm{\scriptscriptstyle T}} a", r"X^{-\top} a"),
])
def test_a_transpose_set_in_a_style_switch(text, same_as):
    assert parse(text).tree == parse(same_as).tree


def test_plain_tex_bold_symbols_differentiate_as_mathbf():
    """``{\bf x}^T {\bf A} {\bf x}`` by x: the gradient of the bold symbols, checked."""
    from matderiv import derive

    d = derive(r"{\bf x}^T {\bf A} {\bf x}", r"{\bf x}")
    assert d.latex == r"(\mathbf{A} + \mathbf{A}^\top) \mathbf{x}"
    rng = np.random.default_rng(67)
    A, x = rng.standard_normal((3, 3)), rng.standard_normal(3)
    got = np.ravel(d.evaluate({"A": A, "x": x}))
    num = np.array([((x + h) @ A @ (x + h) - (x - h) @ A @ (x - h)) / 2e-6
                    for h in 1e-6 * np.eye(3)])
    np.testing.assert_allclose(got, num, rtol=1e-6)
    d = derive(r"{\bf I} x + A x", "x")  # the Jacobian of x + A x, by differences
    assert d.latex == "I_n + A"
    jac = np.stack([(((x + h) + A @ (x + h)) - ((x - h) + A @ (x - h))) / 2e-6
                    for h in 1e-6 * np.eye(3)], axis=1)
    np.testing.assert_allclose(d.evaluate({"A": A, "x": x}), jac, rtol=1e-6)
    with pytest.raises(MatDerivError):
        parse(r"{\bf \foo} x")


def test_sigma_typed_plainly_reads_as_the_command_does():
    """``sigma`` typed plainly goes through the same reading as ``\\sigma``: the function before
    a bracket, its derivative as ``sigma'(``, and the same two refusals."""
    assert parse("sigma(w^T x)").tree == parse(r"\sigma(w^T x)").tree
    assert parse("sigma'(w^T x)").tree == parse(r"\sigma'(w^T x)").tree
    for text in (r"sigma\,(w^T x)", "sigma^2 sigma(a^T x)"):
        with pytest.raises(MatDerivError):
            parse(text)


def test_a_plain_one_transposed_reads_as_the_ones_vector():
    r"""``1^\top`` is the ones vector (as ``\mathbf{1}^\top``); another number, or a 1 that is
    not written as one, stays a number (its own transpose)."""
    for text in (r"1^\top x", r"1^T x", r"1' x", r"{1}^\top x", r"(1)^T x"):
        assert parse(text).tree == parse(r"\mathbf{1}^\top x").tree, text
    for text in (r"2^\top x", r"(\tfrac{2}{2})^\top x"):
        assert not any(isinstance(n, Ones) for n in parse(text).tree.walk()), text


@pytest.mark.parametrize("text, sub, unit", [
    (r"\log \operatorname{softmax}(W x)_y", "_y", "e_y"),
    (r"(A x)_{i}", "_{i}", "e_i"),
    (r"\left(A x\right)_{ij}", "_{ij}", "e_i"),
])
def test_a_subscript_after_a_bracket_is_named_an_entry(text, sub, unit):
    r"""``\operatorname{softmax}(z)_y`` was "unexpected `_`" with a hint about letters."""
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert info.value.message.startswith(f"a subscript after a bracket, `{sub}`, picks an entry")
    assert info.value.position == text.index("_") and f"write {unit}^\\top u" in info.value.hint


def test_matlabs_plain_transpose_reads():
    """MATLAB's ``x.'`` (the transpose without conjugation) was "unexpected `.`"."""
    assert parse("x.'*A*x").tree == parse("x'*A*x").tree
    assert parse("(A*x).'*x").tree == parse(r"(A x)^\top x").tree


@pytest.mark.parametrize("text, message, hint", [
    (r"x^\top A x.", "unexpected `.` in the expression", "goes after the macro"),
    (r"x^\top A x,", "unexpected comma in the expression", "no top-level comma"),  # ("a comma")
])
def test_punctuation_of_the_sentence_inside_the_expression(text, message, hint):
    with pytest.raises(MatDerivError) as info:
        parse(text)
    assert info.value.message == message and hint in info.value.hint
