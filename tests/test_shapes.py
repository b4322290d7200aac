"""Shape inference: kinds, symbolic sizes, placeholders, clashes; the whole public corpus."""
from __future__ import annotations

import time

import pytest

from conftest import corpus_cases
from matderiv.errors import MatDerivError, UnsupportedError
from matderiv.expr import (ONE, SCALAR, Const, Det, Diag, DiagPart, Func, Identity, Mul, Norm,
                           Ones, Power, Symbol)
from matderiv.parse import parse
from matderiv.shapes import Typed, infer


def typed(expr, wrt, **decl) -> Typed:
    t = infer(parse(expr), wrt, **decl)
    for n in t.tree.walk():  # every node's shape computes
        n.shape
    return t


def shapes(t: Typed) -> dict:
    return {s.name: (s.rows, s.cols) for s in t.symbols}


def sym(t: Typed, name: str) -> Symbol:
    return next(s for s in t.symbols if s.name == name)


# --- the corpus ------------------------------------------------------------------------------
#: Cases where the corpus gives more specific sizes than the expression forces (our
#: inference is more general; the corpus sizes are an instance of ours).
# Cases whose corpus sizes are one instance of what we infer: SPEC 1.2 keeps factors
# rectangular, so ln det(A X B) types A p x m, X m x n, B n x p (the corpus draws all n x n).
MORE_GENERAL: set = {"pub-048-lndetAXB"}


def _corpus_shape(spec) -> tuple:
    spec = list(spec)
    if not spec:
        return ((), ())
    if len(spec) == 1:
        return ((spec[0],), ())
    return ((spec[0],), (spec[1],))


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda c: c["id"])
def test_corpus_infers_with_matching_shapes(case):
    opts = case.get("options") or {}
    decl = {k: opts[k] for k in ("scalar", "vector", "matrix", "symmetric") if k in opts}
    t = typed(case["expr"], case["wrt"], **decl)
    got = shapes(t)
    want = {k: _corpus_shape(v) for k, v in case["shapes"].items()}
    assert set(got) == set(want), (got, want)
    # a consistent renaming of size letters: ours -> corpus must be a function ...
    fwd: dict = {}
    back: dict = {}
    for name, (gr, gc) in got.items():
        wr, wc = want[name]
        assert len(gr) == len(wr) and len(gc) == len(wc), (name, got[name], want[name])
        for g, w in zip(gr + gc, wr + wc):
            assert fwd.setdefault(g, w) == w, (name, g, w, fwd)
            back.setdefault(w, set()).add(g)
    # ... and one-to-one unless the corpus specialises
    if case["id"] not in MORE_GENERAL:
        assert all(len(s) == 1 for s in back.values()), (got, want)
    # symmetric declarations
    for n in decl.get("symmetric", ()):
        s = sym(t, n.lstrip("\\"))
        assert s.symmetric and s.rows == s.cols
    # the variables are returned
    assert len(t.variables) == len(case["wrt"])


# --- kinds and declarations ------------------------------------------------------------------
def test_default_kinds():
    t = typed(r"a^\top X b + \alpha \tau + \boldsymbol{\theta}^\top c", "X")
    assert sym(t, "a").kind == "vector" and sym(t, "X").kind == "matrix"
    assert sym(t, "alpha").kind == "scalar" and sym(t, "theta").kind == "vector"
    assert sym(t, "alpha").shape == SCALAR


def test_declarations_override_and_accept_latex_names():
    t = typed(r"y x^\top \mu", "x", scalar=["y"], vector=[r"\mu"])
    assert sym(t, "y").shape == SCALAR
    assert sym(t, "mu").kind == "vector" and sym(t, "mu").shape == (("n",), ONE)
    t = typed("x^T w x", "x", matrix=["w"])
    assert sym(t, "w").kind == "matrix" and sym(t, "w").shape == (("n",), ("n",))


def test_symmetric_is_square_matrix():
    t = typed(r"\operatorname{tr}(A X)", "X", symmetric=["X"])
    X = t.variables[0]
    assert X.symmetric and X.rows == X.cols == ("n",)
    t = typed(r"x^\top \Sigma x", "x", symmetric=[r"\Sigma"])
    assert sym(t, "Sigma").symmetric


def test_conflicting_declarations():
    with pytest.raises(MatDerivError):
        typed("a x", "x", scalar=["a"], vector=["a"])
    with pytest.raises(MatDerivError):
        typed("a x", "x", scalar=["a"], symmetric=["a"])


def test_rectangular_not_forced_square():
    t = typed("a^T X b", "X")
    assert t.variables[0].shape == (("m",), ("n",))
    assert sym(t, "a").shape == (("m",), ONE) and sym(t, "b").shape == (("n",), ONE)


def test_naming_variable_first():
    t = typed("A x", "x")
    assert t.variables[0].shape == (("n",), ONE)
    assert sym(t, "A").shape == (("m",), ("n",))
    t = typed("A X B", "X")
    assert shapes(t) == {"A": (("p",), ("m",)), "X": (("m",), ("n",)),
                         "B": (("n",), ("q",))}
    t = typed(r"\det X", "X")
    assert t.variables[0].shape == (("n",), ("n",))


def test_absent_variable_is_returned():
    t = typed("a^T b", "x")
    x = t.variables[0]
    assert x.name == "x" and x.kind == "vector" and x.rows not in (ONE, sym(t, "a").rows)
    assert x in t.symbols
    t = typed("a^T b", "Y")
    assert t.variables[0].kind == "matrix" and t.variables[0].rows != ONE
    t = typed("a^T b", r"\tau")
    assert t.variables[0].shape == SCALAR and t.variables[0].latex == r"\tau"


def test_second_derivative_variables():
    t = typed("x^T A x", ["x", "x"])
    assert t.variables == (t.variables[0], t.variables[0])


# --- constants and placeholders --------------------------------------------------------------
def test_const_in_vector_sum_is_ones():
    t = typed(r"1 - \sigma(x)", "x")
    assert t.tree.args[0] == Ones(("n",))
    t = typed(r"2 + x", "x")
    assert t.tree.args[0] == Mul((Const(2), Ones(("n",))))


def test_const_in_scalar_sum_stays():
    t = typed(r"\log(1 + \exp(x^T w))", "w")
    assert t.tree.arg.args[0] == Const(1)


def test_zero_in_sums():
    assert typed("A + 0", "A").tree == typed("A", "A").tree
    t = typed("x^T x + 0", "x")
    assert t.tree.shape == SCALAR


def test_const_in_matrix_sum_is_an_error():
    with pytest.raises(MatDerivError) as ei:
        typed("A + 1", "A")
    assert "\\mathbf{1}" in ei.value.hint and "I" in ei.value.hint
    assert ei.value.position == 4


def test_identity_and_ones_sized_by_context():
    t = typed("A + I", "A")
    assert t.tree.args[1] == Identity(("n",)) and t.variables[0].shape == (("n",), ("n",))
    t = typed(r"x + \mathbf{1}", "x")
    assert t.tree.args[1] == Ones(("n",))
    t = typed(r"(X + I)^{-1} a", "X")
    assert t.variables[0].shape == (("n",), ("n",))
    t = typed(r"A I x", "x")
    assert t.tree.args[1] == Identity(("n",))
    t = typed(r"\mathbf{1}^\top \exp(x)", "x")
    assert t.tree.args[0].arg == Ones(("n",))


def test_undetermined_identity_gets_a_fresh_size():
    t = typed(r"\operatorname{tr}(I)", "x")
    n = t.tree.arg.n
    assert n and n != ONE and n != t.variables[0].rows


def test_bars_resolved():
    t = typed(r"\log|X|", "X")
    assert t.tree == Func("log", Det(t.variables[0]))
    t = typed(r"\tau |\tau|", r"\tau")
    assert t.tree.args[1] == Func("abs", t.variables[0])
    with pytest.raises(MatDerivError) as ei:
        typed("|x|", "x")
    assert "\\|x\\|" in ei.value.hint


def test_diag_resolved():
    t = typed(r"\operatorname{diag}(x)", "x")
    assert isinstance(t.tree, Diag) and t.tree.shape == (("n",), ("n",))
    t = typed(r"a^\top \operatorname{diag}(X)", "X")
    assert isinstance(t.tree.args[1], DiagPart)
    assert t.variables[0].shape == (("n",), ("n",))


def test_norm_of_matrix_is_frobenius():
    t = typed(r"\|X\|", "X")
    assert t.tree == Norm(t.variables[0], "F")
    t = typed(r"\|x\|^2", "x")
    assert t.tree == Power(Norm(t.variables[0], "2"), Const(2))
    with pytest.raises(UnsupportedError):
        typed(r"\|X\|_2", "X")
    t = typed(r"\|\tau\|", r"\tau")
    assert t.tree == Func("abs", t.variables[0])


def test_scalar_inverse_is_power():
    t = typed(r"\det(X)^{-1}", "X")
    assert isinstance(t.tree, Power) and t.tree.exponent == Const(-1)


def test_scalar_prefix_is_grouped():
    t = typed("x^T y z", "x")
    assert isinstance(t.tree.args[0], Mul) and t.tree.shape == (("m",), ONE)


def test_scalars_in_products():
    t = typed(r"(a^\top X b)\, X", "X")
    assert t.tree.shape == (("m",), ("n",))
    t = typed(r"\tau A", r"\tau")
    assert t.tree.shape == sym(t, "A").shape


def test_division_by_scalar():
    t = typed(r"x / \tau", "x")
    assert t.tree.shape == (("n",), ONE)
    with pytest.raises(MatDerivError) as ei:
        typed("x / y", "x")
    assert "scalar" in ei.value.hint


def test_power_and_exponent():
    typed("X^2", "X")
    typed("a^x", "x", scalar=["a", "x"])
    with pytest.raises(MatDerivError):
        typed("x^2", "x")  # a vector power
    # an undeclared letter alone in an exponent is a scalar (X^k, a^x) ...
    assert typed(r"\tau^x", "x").variables[0].shape == SCALAR
    # ... but one declared a vector is an error
    with pytest.raises(MatDerivError):
        typed(r"\tau^x", "x", vector=["x"])  # vector exponent


def test_kron_and_vec_sizes():
    t = typed(r"(B^\top \otimes A) \operatorname{vec}(X)", "X")
    assert t.tree.shape[1] == ONE
    t = typed(r"\operatorname{vec}(X)", "X")
    assert t.tree.shape == (("m", "n"), ONE)


# --- clashes ---------------------------------------------------------------------------------
def test_sum_clash_names_both_sides():
    with pytest.raises(MatDerivError) as ei:
        typed("A x + B", "x")
    e = ei.value
    assert "`A x`" in e.message and "`B`" in e.message
    assert "vector" in e.message and "matrix" in e.message
    assert e.position == 4 and e.hint
    assert e.source == "A x + B"


@pytest.mark.parametrize("expr, wrt, name, kind", [
    (r"x^\top A x + b^\top x + c", "x", "c", "scalar"),   # c is a vector by default
    (r"\exp(t A)", "t", "t", "scalar"),                    # the variable itself
    (r"\sin(t) \cos(t)", "t", "t", "scalar"),
    (r"t^3 - 2 t", "t", "t", "scalar"),
    (r"(x - \mu)^\top A (x - \mu)", "x", r"\mu", "vector"),  # mu is a scalar by default
    # a bias: declaring w a scalar would type too, but w is written transposed, so b is named
    (r"\sigma(w^\top x + b)", "w", "b", "scalar"),
    (r"\|x - \bar{x}\mathbf{1}\|^2", "x", r"\bar{x}", "scalar"),  # a mean: no hint before
])
def test_a_clash_from_a_default_kind_names_the_declaration_that_fixes_it(expr, wrt, name, kind):
    with pytest.raises(MatDerivError) as ei:
        typed(expr, wrt)
    hint = ei.value.hint
    assert f"declare {kind}={{{name}}}" in hint, hint
    typed(expr, wrt, **{kind: [name]})  # and that declaration does type it


def test_no_declaration_hint_when_none_helps():
    with pytest.raises(MatDerivError) as ei:
        typed(r"A X + y", "X")
    assert "declare" not in ei.value.hint


def test_product_clash():
    with pytest.raises(MatDerivError) as ei:
        typed("x A", "x")
    assert "`x`" in ei.value.message and "`A`" in ei.value.message


def test_det_of_non_square():
    with pytest.raises(MatDerivError):
        typed(r"\det(a b^\top c^\top)", "a")
    with pytest.raises(MatDerivError) as ei:
        typed(r"\det(x)", "x")
    assert "square" in ei.value.message
    with pytest.raises(MatDerivError):
        typed(r"\operatorname{tr}(x)", "x")
    with pytest.raises(MatDerivError):
        typed(r"\det(X)", "X", vector=["X"])


def test_hadamard_clash():
    with pytest.raises(MatDerivError):
        typed(r"x \odot A", "x")


def test_softmax_needs_vector():
    with pytest.raises(MatDerivError):
        typed(r"\operatorname{softmax}(X)", "X")


def test_long_expression_infers_fast():
    text = "x^T A x + " * 1000 + "x^T x"
    p = parse(text)
    t0 = time.perf_counter()
    t = infer(p, ["x"])
    dt = time.perf_counter() - t0
    print(f"\ninfer of a {len(text)}-character expression: {dt * 1000:.0f} ms")
    assert t.tree.shape == SCALAR and dt < 2.0


def test_long_clash_message_is_short():
    with pytest.raises(MatDerivError) as ei:
        typed("x^T A x + " * 200 + "x", "x")
    assert len(ei.value.message) < 400


def test_det_and_inverse_of_products_keep_rectangular_factors():
    # SPEC 1.2: sizes are not forced square; only the product is square
    t = typed(r"\ln\det(A X B)", "X")
    sh = shapes(t)
    assert sh["X"] == (("m",), ("n",))
    assert sh["A"][1] == ("m",) and sh["B"][0] == ("n",) and sh["A"][0] == sh["B"][1]
    assert sh["A"][0] not in (("m",), ("n",))
    t = typed(r"(A X)^{-1}", "X")
    assert shapes(t)["A"][1] == ("m",) and shapes(t)["X"][1] == shapes(t)["A"][0]
    # Gram-type products keep rectangular factors
    assert typed(r"\log\det(X^\top X)", "X").variables[0].shape == (("m",), ("n",))
    assert typed(r"\det(X^T C X)", "X").variables[0].shape == (("m",), ("n",))


def test_det_of_rank_one_product_is_an_error():
    with pytest.raises(MatDerivError) as ei:
        typed(r"\det(a b^\top c c^\top)", "a")
    assert "rank one" in ei.value.message and ei.value.position == 0
    with pytest.raises(MatDerivError):
        typed(r"(x y^\top)^{-1}", "x")
    typed(r"\det(I + a b^\top)", "a")  # fine


def test_function_power_of_vector_is_elementwise():
    from matderiv.expr import Hadamard
    t = typed(r"1 - \tanh^2(x)", "x")
    th = Func("tanh", t.variables[0])
    assert t.tree.args[1] == Mul((Const(-1), Hadamard((th, th))))
    t = typed(r"\sin^2(\tau)", r"\tau")
    assert isinstance(t.tree, Power)


def test_const_in_row_sum_and_hadamard_clash_message():
    from matderiv.expr import Transpose
    t = typed(r"x^\top + 1", "x")
    assert t.tree.args[1] == Transpose(Ones(("n",)))
    with pytest.raises(MatDerivError) as ei:
        typed(r"x \odot x \odot A", "x")
    assert "`x \\odot x`" in ei.value.message and "`A`" in ei.value.message


# --- property: well-formed strings type or fail cleanly ---------------------------------------
hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402

from test_parse import _expr, refused_as_ambiguous  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(_expr(3))
def test_random_expressions_type_or_fail_cleanly(text):
    try:
        p = parse(text)
    except MatDerivError as e:  # `x/x x`, `2 2`: well formed, refused as ambiguous
        assert refused_as_ambiguous(e.message), (text, e.message)
        return
    for wrt in ("x", "A", r"\theta"):
        try:
            t = infer(p, wrt)
        except MatDerivError:
            continue
        for n in t.tree.walk():
            n.shape  # never a ShapeError on a typed tree
        assert all(d != ("?",) for s in t.symbols for d in (s.rows, s.cols))


def test_a_size_written_on_an_identity_names_its_class():
    # the engine prints a free identity with its size (I_q); read back, that name is kept, so
    # the printed text is a fixed point (it was relabelled I_m by order of appearance)
    from matderiv.printing.latex import latex

    text = r"\frac{(x^\top a)^2 (B^\top - A + I_q)}{\mathbf{1}^\top \exp(C b)}"
    t = typed(text, "x")
    assert latex(t.tree) == text
    B = next(s for s in t.symbols if s.name == "B")
    assert B.rows == ("q",)
    # a written size names the variable's class too (it gave way to the variable's n, so that
    # tr(I_n) x^T x by x printed 2 m x, the n written renamed m); so does one on a ones vector
    t = typed(r"x^\top (A + I_q) x", "x")
    assert latex(t.tree) == r"x^\top (A + I_q) x" and t.variables[0].rows == ("q",)
    t = typed(r"\mathbf{1}_k^\top \mathbf{1}_k x^\top x", "x")
    assert {s.name: s.rows for s in t.symbols}["x"] == ("n",)
    assert next(n for n in t.tree.walk() if isinstance(n, Ones)).n == ("k",)


@pytest.mark.parametrize("text, inner", [
    (r"a \cdot x", r"a^\top x"),
    (r"A x y", r"(A x)^\top y"),
    (r"(A x) \cdot (B y)", r"(A x)^\top (B y)"),
])
def test_a_product_of_two_vectors_suggests_the_inner_product(text, inner):
    with pytest.raises(MatDerivError) as info:
        infer(parse(text), "x")
    assert "cannot be multiplied" in info.value.message
    assert f"for the inner product of two vectors write {inner}" in info.value.hint


@pytest.mark.parametrize("text, words", [
    (r"\frac{1}{x}", r"\mathbf{1} \oslash x for the reciprocal"),
    (r"\frac{a}{A x}", "you can only divide by a scalar"),
])
def test_a_division_by_a_vector_says_division_and_how_to_divide_elementwise(text, words):
    r"""``\frac{1}{x}`` said "power of a vector: x is not square", with a hint about squares
    (``1 \oslash x``, a scalar over a vector elementwise, is read: see test_api)."""
    with pytest.raises(MatDerivError) as info:
        infer(parse(text), "x")
    assert "power" not in info.value.message
    assert words in info.value.hint


@pytest.mark.parametrize("text, quoted, hint", [
    (r"\frac{1}{N} \operatorname{sum}(X w - y)", "N", "declare scalar={N}"),
    (r"x^\top A x / N", "N", "declare scalar={N}"),
    (r"\frac{1}{\Lambda} x", r"\Lambda", r"declare scalar={\Lambda}"),
    (r"\frac{x^\top A x}{B C}", "B C", "write (B C)^{-1}"),
])
def test_a_division_by_a_matrix_is_refused(text, quoted, hint):
    r"""``\frac{1}{N}`` with N a matrix by default (an uppercase letter) was its inverse: the
    mean squared error over N samples differentiated to vec(N^{-1}) 1^T X, a matrix."""
    with pytest.raises(MatDerivError) as info:
        infer(parse(text), "w" if "w" in text else "x")
    assert info.value.message.startswith("division by a matrix")
    assert info.value.message.endswith(f"`{quoted}`")
    assert hint in info.value.hint


def test_a_primed_symbol_in_a_clash_says_the_prime_is_a_transpose():
    r"""``\|\mathbf{x} - \mathbf{x}'\|^2`` (x prime, a second point of a kernel) clashed with a
    hint about transposes in general; it says that ' is read as one and how to name a symbol."""
    with pytest.raises(MatDerivError) as info:
        infer(parse(r"\|\mathbf{x} - \mathbf{x}'\|^2"), "x")
    assert "`\\mathbf{x}'` reads as a transpose" in info.value.hint
    assert "\\tilde{x}" in info.value.hint


def test_softmax_of_a_scalar_is_refused():
    r"""``\operatorname{softmax}(t)`` of a scalar t is 1; its derivative was computed as
    diag(s) - s^2, which the read-back guard then refused as an internal error (a fuzz found
    it)."""
    with pytest.raises(MatDerivError) as info:
        infer(parse(r"\operatorname{softmax}(t^2)"), "t", scalar=["t"])
    assert info.value.message == "softmax of a scalar, `t^2`, is 1"
    with pytest.raises(MatDerivError) as info:  # a number too (a fuzz: an internal error)
        infer(parse(r"x \log\operatorname{softmax} 1e10"), "x")
    assert info.value.message == "softmax of a scalar, `1e10`, is 1"


def test_a_letter_before_a_bracket_is_a_product_and_the_hint_says_so():
    with pytest.raises(MatDerivError) as info:
        infer(parse(r"f(2 y) + x"), "x")
    assert "`f(...)` reads as f times the bracket" in info.value.hint


@pytest.mark.parametrize("text, wrt, quoted", [
    (r"f(x)", "x", "f(x)"),
    (r"\|x(t)\|^2", "t", "x(t)"),                  # was 2 t x^T x (t declared a scalar)
    (r"\det A(\tau)", r"\tau", r"A(\tau)"),
    (r"\lambda(\tau) + \tau", r"\tau", r"\lambda(\tau)"),  # was \lambda + 1
    (r"x(\tau)^\top A x(\tau)", r"\tau", r"x(\tau)"),
])
def test_a_symbol_of_the_variable_is_refused(text, wrt, quoted):
    """``x(t)`` by t reads as x as a function of t, which matderiv cannot know; it was the
    product x t, differentiated with confidence."""
    with pytest.raises(MatDerivError) as info:
        infer(parse(text), wrt, scalar=["t"])
    assert info.value.message.startswith(f"`{quoted}` reads as a function of the variable")
    assert text[info.value.position:].startswith(quoted)


@pytest.mark.parametrize("text, wrt", [
    (r"A (x)", "x"), (r"A(x - b)", "x"), (r"\sigma(x)", "x"), (r"A(y) + x", "x"), (r"x^T(x)", "x"),
])
def test_a_bracket_after_a_symbol_is_still_a_product_elsewhere(text, wrt):
    infer(parse(text), wrt)


@pytest.mark.parametrize("text, wrt, quoted, head, arg", [
    (r"w^\top \phi(x)", "w", r"\phi(x)", r"\phi", "x"),
    (r"w^\top f(x)", "w", "f(x)", "f", "x"),                  # was x f^T, of the product
    (r"w^\top f\left(x\right)", "w", r"f\left(x\right)", "f", "x"),
    (r"a(\tau)", "a", r"a(\tau)", "a", r"\tau"),
])
def test_a_lowercase_letter_before_a_bracket_of_one_symbol_is_refused(text, wrt, quoted, head,
                                                                      arg):
    r"""``f(x)``, ``\phi(x)`` by another variable read as a function (the features of a linear
    model), which matderiv cannot know; as the product, ``w^\top f(x)`` by w printed
    ``x f^\top``."""
    with pytest.raises(MatDerivError) as info:
        infer(parse(text), wrt)
    assert info.value.message == (f"`{quoted}` reads as a function `{head}` of `{arg}`, which "
                                  "matderiv cannot know")
    assert text[info.value.position:].startswith(quoted)
    assert f"`{head} \\cdot {arg}`" in info.value.hint


@pytest.mark.parametrize("text, left, at", [
    (r"A(x + b) y", "`A(x + b)` is a vector", 9),     # was `A(x + b`
    (r"(x + b) + A", "`(x + b)` is a vector", 8),     # was `x + b`, pointing at `)`
    (r"\left(A x\right) \odot A", r"`\left(A x\right)` is a vector", 17),
])
def test_the_left_side_of_a_clash_is_quoted_with_its_brackets(text, left, at):
    with pytest.raises(MatDerivError) as info:
        infer(parse(text), "x")
    assert left in info.value.message
    assert info.value.position == at


@pytest.mark.parametrize("text, same_as, wrt", [
    (r"\sin\tau A + \cos\tau B", r"\sin(\tau) A + \cos(\tau) B", r"\tau"),
    (r"\cos\theta x", r"\cos(\theta) x", "x"),
    (r"\exp \tau A", r"\exp(\tau) A", r"\tau"),
    (r"\log 2 x^\top x y", r"\log(2 x^\top x) y", "x"),
    # the whole product when it is a scalar, or when it starts with a vector or matrix
    (r"\log 2 x^\top x", r"\log(2 x^\top x)", "x"),
    (r"\sin 2\tau", r"\sin(2 \tau)", r"\tau"),
    (r"\tanh W x", r"\tanh(W x)", "x"),
    (r"\exp a^\top x", r"\exp(a^\top x)", "x"),
])
def test_an_elementwise_function_takes_the_scalar_in_front_of_a_vector_or_matrix(text, same_as, wrt):
    r"""``\sin\tau A`` is sin(tau) A, as a reader takes it: the product after a function name
    (``\sin 2\tau``) stops where a scalar meets a vector or matrix."""
    assert infer(parse(text), wrt).tree == infer(parse(same_as), wrt).tree


@pytest.mark.parametrize("text, quoted", [
    (r"\operatorname{tr}(X^{1/2})", "X^{1/2}"),
    (r"x^\top A^{-1/2} x", "A^{-1/2}"),
    (r"\operatorname{tr}(A^{0.5} X)", "A^{0.5}"),
])
def test_a_fractional_matrix_power_is_refused_where_it_is_written(text, quoted):
    """It was an internal error at the numerical check ("exponent -0.5")."""
    with pytest.raises(UnsupportedError) as info:
        infer(parse(text), "X" if "X" in text else "x")
    assert info.value.message == (f"`{quoted}`: fractional powers and roots of a vector or "
                                  "matrix are not supported")
    assert text[info.value.position:].startswith(quoted)


@pytest.mark.parametrize("text, quoted", [
    (r"\beta^\top x", r"\beta^\top"),            # was beta I_n, the derivative of beta x
    (r"\mu^T \mu + x^T x", r"\mu^T"),
])
def test_a_transposed_greek_scalar_asks_for_a_declaration(text, quoted):
    with pytest.raises(MatDerivError) as info:
        infer(parse(text), "x")
    assert info.value.message.startswith(f"`{quoted}`: `")
    assert "declare vector=" in info.value.hint and "\\boldsymbol" in info.value.hint
    infer(parse(text), "x", vector=[text.split("^")[0]])  # declared, it types
    infer(parse(text), "x", scalar=[text.split("^")[0]])  # and a declared scalar may be transposed


@pytest.mark.parametrize("text, what, hint", [
    (r"\operatorname{tr}(\log \Sigma)", "the trace of the matrix function log of `\\Sigma`",
     r"write \log\det \Sigma"),
    (r"\operatorname{tr}(\exp(\Sigma))", "the trace of the matrix function exp",
     r"\mathbf{1}^\top \exp(\operatorname{diag}(\Sigma))"),
    (r"\operatorname{tr}(\sqrt{\Sigma})", "the trace of the matrix function sqrt",
     r"\mathbf{1}^\top \sqrt{\operatorname{diag}(\Sigma)}"),
    (r"\det(\exp(\Sigma))", "the determinant of the matrix function exp",
     r"\exp(\operatorname{tr}(\Sigma))"),
    (r"|\exp(\Sigma)|", "the determinant of the matrix function exp",   # |.|, a determinant
     r"\exp(\operatorname{tr}(\Sigma))"),
])
def test_a_function_of_a_matrix_under_a_trace_is_refused(text, what, hint):
    r"""``\operatorname{tr}(\log \Sigma)`` reads as the trace of the matrix logarithm (log det);
    elementwise, as matderiv's \log of a matrix is, it printed ``I_n \oslash \Sigma``."""
    from matderiv.errors import UnsupportedError

    with pytest.raises(UnsupportedError) as info:
        infer(parse(text), r"\Sigma")
    assert what in info.value.message and hint in info.value.hint
    assert info.value.position == 0


@pytest.mark.parametrize("text", [
    r"\operatorname{tr}(A^\top \exp(\Sigma))",        # the Frobenius product: elementwise
    r"\operatorname{tr}(\exp(t)) + \operatorname{tr}(\Sigma)",   # of a scalar
    r"\operatorname{tr}(\sin(A)) + \operatorname{tr}(\Sigma)",   # a constant term
])
def test_functions_of_a_matrix_elsewhere_stay_elementwise(text):
    infer(parse(text), r"\Sigma", scalar=["t"])


def test_a_power_t_that_may_be_a_transpose_is_refused():
    r"""``\operatorname{tr}(X^t)`` with t nowhere else and undeclared: some texts write the
    transpose so (it printed t (X^{t-1})^T); for a vector the power's refusal names the
    transpose too.  Declared a scalar, or used elsewhere, t is the power as before."""
    with pytest.raises(MatDerivError) as info:
        infer(parse(r"\operatorname{tr}(X^t)"), "X")
    assert info.value.message == "`X^t` may be the power t of `X` or its transpose written with a t"
    assert r"X^\top" in info.value.hint and "scalar={t}" in info.value.hint
    with pytest.raises(MatDerivError) as info:
        infer(parse(r"x^t A x"), "x")
    assert r"for the transpose write x^\top" in info.value.hint
    infer(parse(r"\operatorname{tr}(X^t)"), "X", scalar=["t"])
    infer(parse(r"t \operatorname{tr}(X^t)"), "X")
