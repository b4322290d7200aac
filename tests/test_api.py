"""The Python API of SPEC 4: fields, name spellings, declarations, evaluate, numpy_source.

Every numeric expectation here is checked against finite differences computed in the test
itself (``fd_gradient``), never against a number we wrote down."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import fd_gradient, fd_jacobian
from matderiv import MatDerivError, derive

RNG = np.random.default_rng(7)


def test_fields_of_a_gradient():
    d = derive(r"x^\top A x", "x", layout="mixed", steps=False, symmetric=["A"])
    assert d.latex == "2 A x"
    assert d.equation.endswith("= 2 A x")
    assert d.equation.startswith(r"\frac{\partial}{\partial x}")
    assert d.kind == "gradient"
    assert d.shape == ("n", "1")
    assert d.steps == []
    assert "def " in d.numpy_source and "import numpy as np" in d.numpy_source


def test_textbook_form_without_symmetry():
    assert derive("x^T A x", "x").latex == r"(A + A^\top) x"


def test_evaluate_matches_finite_differences():
    A = RNG.standard_normal((3, 3))
    x = RNG.standard_normal(3)
    d = derive(r"x^\top A x", "x")
    got = d.evaluate({"x": x, "A": A})
    ref = fd_gradient(lambda v: v @ A @ v, x)
    assert got.shape == (3, 1)
    np.testing.assert_allclose(got.ravel(), ref, rtol=1e-6)
    # a column vector is accepted too
    np.testing.assert_allclose(d.evaluate({"x": x.reshape(3, 1), "A": A}).ravel(), ref, rtol=1e-6)


def test_numpy_source_computes_the_same_as_evaluate():
    A = RNG.standard_normal((4, 3))
    b = RNG.standard_normal(4)
    x = RNG.standard_normal(3)
    d = derive(r"\|A x - b\|^2", "x")
    ns: dict = {}
    exec(compile(d.numpy_source, "<numpy_source>", "exec"), ns)  # our own generated code
    fn = next(v for k, v in ns.items() if callable(v) and k == "derivative")
    ref = fd_gradient(lambda v: np.sum((A @ v - b) ** 2), x)
    args = {"A": A, "b": b, "x": x}
    import inspect

    params = list(inspect.signature(fn).parameters)
    out = fn(*[args[p] for p in params])
    np.testing.assert_allclose(np.ravel(out), ref, rtol=1e-6)
    np.testing.assert_allclose(d.evaluate(args).ravel(), ref, rtol=1e-6)


@pytest.mark.parametrize("wrt,decl", [(r"\Sigma", r"\Sigma"), ("Sigma", "Sigma")])
def test_names_written_either_way(wrt, decl):
    d = derive(r"\log\det\Sigma", wrt, symmetric=[decl])
    assert d.latex == r"\Sigma^{-1}"
    S = RNG.standard_normal((3, 3))
    S = S @ S.T + 3 * np.eye(3)
    ref = fd_gradient(lambda M: np.log(np.linalg.det(M)), S)
    np.testing.assert_allclose(d.evaluate({"Sigma": S}), ref, rtol=1e-5)


def test_bold_and_subscripted_names():
    d = derive(r"\mathbf{a}^\top W_{1} \mathbf{x}", "W_1")
    assert r"\mathbf{a}" in d.latex and r"\mathbf{x}" in d.latex
    a, x, W = RNG.standard_normal(4), RNG.standard_normal(3), RNG.standard_normal((4, 3))
    np.testing.assert_allclose(d.evaluate({"a": a, "x": x, "W_1": W}),
                               fd_gradient(lambda M: a @ M @ x, W), rtol=1e-6)


@pytest.mark.parametrize("layout,shape", [("mixed", (4, 3)), ("denominator", (4, 3)), ("numerator", (3, 4))])
def test_layouts_of_a_matrix_gradient(layout, shape):
    d = derive(r"a^T X b", "X", layout=layout)
    a, b, X = RNG.standard_normal(4), RNG.standard_normal(3), RNG.standard_normal((4, 3))
    G = fd_gradient(lambda M: a @ M @ b, X)
    out = d.evaluate({"a": a, "b": b, "X": X})
    assert out.shape == shape
    np.testing.assert_allclose(out, G if layout != "numerator" else G.T, rtol=1e-6)


def test_declarations_change_kinds():
    d = derive(r"a^x", "x", scalar=["a", "x"])
    assert d.kind == "derivative"
    a, x = 1.7, 0.4
    np.testing.assert_allclose(float(d.evaluate({"a": a, "x": x})),
                               (a ** (x + 1e-6) - a ** (x - 1e-6)) / 2e-6, rtol=1e-6)


def test_unknown_option_is_an_error():
    with pytest.raises(MatDerivError) as info:
        derive("x^T x", "x", layuot="numerator")
    assert "layout" in info.value.hint


def test_bad_layout_is_an_error():
    with pytest.raises(MatDerivError):
        derive("x^T x", "x", layout="sideways")


def test_name_option_on_the_left_hand_side():
    d = derive(r"\operatorname{tr}(A X)", "X", name="f")
    assert d.equation.startswith(r"\frac{\partial f}{\partial X}")


@pytest.mark.parametrize("expr, wrt, decl, form", [
    # repeated square factors become powers; a power of a symmetric matrix is not transposed
    (r"\operatorname{tr}((X^\top X)^{-1})", "X", {}, r"-2 X (X^\top X)^{-2}"),
    (r"\operatorname{tr}(S^{-1} S^{-1})", "S", {"symmetric": "S"}, r"-2 S^{-3}"),
    # constant zeros and elementwise functions at zero
    (r"(a - a)^\top \sqrt{\exp(x)}", "x", {}, r"\mathbf{0}"),
    (r"\operatorname{sum}(\exp(x - x) \odot x)", "x", {}, r"\mathbf{1}"),
    (r"\operatorname{sum}(\sigma(X - X) \odot X)", "X", {}, r"\frac{1}{2} \mathbf{1} \mathbf{1}^\top"),
    # a projection with a wide C: verified at sizes where C C^T is invertible
    (r"x^\top C^\top (C C^\top)^{-1} C x", "x", {}, r"2 C^\top (C C^\top)^{-1} C x"),
    # a row of ones in an elementwise product; the 1 x 1 ones vector is the number 1
    (r"\operatorname{sum}(\exp(x^\top) \odot \mathbf{1}^\top)", "x", {}, r"\exp(x)"),
    # exp(u) / (1^T exp(u)) is softmax(u): the Hessian of log-sum-exp in its textbook form
    (r"\log(\mathbf{1}^\top\exp(x))", ("x", "x"), {},
     r"\operatorname{diag}(\operatorname{softmax}(x)) - "
     r"\operatorname{softmax}(x) \operatorname{softmax}(x)^\top"),
    # Kronecker forms keep their transposes inside
    (r"X^\top X", "X", {}, r"(X^\top \otimes I_n) K_{mn} + I_n \otimes X^\top"),
    (r"X^\top X", "X", {"layout": "denominator"}, r"K_{nm} (X \otimes I_n) + I_n \otimes X"),
    # the logistic function recognised: exp(v) / (1 + exp(v)) = sigma(v)
    (r"\mathbf{1}^\top \log(\mathbf{1} + \exp(X w))", "w", {}, r"X^\top \sigma(X w)"),
    (r"\operatorname{sum}(\log(\mathbf{1} + \exp(-y \odot (X w))))", "w", {},
     r"-X^\top (\sigma(-(y \odot X w)) \odot y)"),
])
def test_textbook_forms_of_cancellations_and_powers(expr, wrt, decl, form):
    """Each result is verified against finite differences inside derive (check is on)."""
    assert derive(expr, wrt, **decl).latex == form


def test_second_derivative_that_cancels_is_zero():
    assert derive(r"\sqrt{t^2}", ["t", "t"], scalar="t").latex == "0"


@pytest.mark.parametrize("expr, wrt, layout, form", [
    # diag in both directions as Jacobians, through the selection matrix diag(vec I)
    (r"\operatorname{diag}(x)", "x", "mixed",
     r"\operatorname{diag}(\operatorname{vec}(I_n)) (\mathbf{1} \otimes I_n)"),
    (r"\operatorname{diag}(X)", "X", "mixed",
     r"(\mathbf{1}^\top \otimes I_n) \operatorname{diag}(\operatorname{vec}(I_n))"),
    # Kronecker products of vectors
    (r"x \otimes a", "x", "mixed", r"I_n \otimes a"),
    (r"a \otimes x", "x", "denominator", r"a^\top \otimes I_n"),
    (r"x \otimes x", "x", "mixed", r"I_n \otimes x + x \otimes I_n"),
])
def test_jacobians_through_diag_and_kron(expr, wrt, layout, form):
    d = derive(expr, wrt, layout=layout)  # verified against finite differences inside derive
    assert d.latex == form


@pytest.mark.parametrize("expr, wrt, decl, form", [
    # scalar coefficients of one matrix part are expanded and collected when that is shorter
    (r"y \log \sigma(x^\top w) + (1-y)\log(1 - \sigma(x^\top w))", "w", {"scalar": "y"},
     r"(y - \sigma(w^\top x)) x"),
    (r"-y \log \sigma(\tau) - (1-y)\log(1 - \sigma(\tau))", r"\tau", {"scalar": "y"},
     r"\sigma(\tau) - y"),
    (r"\log \sigma(x^\top w)", "w", {}, r"(1 - \sigma(w^\top x)) x"),
    # gradients through vec, with (B (x) A) vec(X) = vec(A X B^T)
    (r"\operatorname{vec}(X)^\top \operatorname{vec}(X)", "X", {}, "2 X"),
    (r"\operatorname{vec}(X)^\top (B \otimes A) \operatorname{vec}(X)", "X", {},
     r"A X B^\top + A^\top X B"),
    # a size carried only by a constant (the identity) gets a value in the check
    (r"x^\top x\, I", "x", {}, r"2 \operatorname{vec}(I_m) x^\top"),
])
def test_collected_coefficients_vec_gradients_and_free_sizes(expr, wrt, decl, form):
    assert derive(expr, wrt, **decl).latex == form  # verified numerically inside derive


@pytest.mark.parametrize("expr, form", [
    (r"|\tau|^3", r"6 |\tau|"),        # sign(t)^2 |t| = |t|
    (r"|\tau|^4", r"12 \tau^2"),       # |t|^2 = t^2
])
def test_second_derivatives_of_absolute_values(expr, form):
    assert derive(expr, [r"\tau", r"\tau"]).latex == form


def test_abs_times_sign_is_the_variable():
    assert derive(r"|\tau|^2", r"\tau").latex == r"2 \tau"


@pytest.mark.parametrize("expr, wrt, form", [
    # signs and absolute values: s^a |s|^b sign(s)^c brought to one factor
    (r"\ln|\det X|", "X", r"X^{-\top}"),
    (r"\log|\tau|", r"\tau", r"\frac{1}{\tau}"),
    (r"\tau / |\tau|", r"\tau", "0"),
    (r"\tau|\tau|", r"\tau", r"2 |\tau|"),
    # roots with an index
    (r"\sqrt[3]{\tau}", r"\tau", r"\frac{1}{3 \tau^{2/3}}"),
    (r"\sqrt[2]{\tau}", r"\tau", r"\frac{1}{2 \sqrt{\tau}}"),
    # products of diagonal matrices, and the logistic identities inside them
    (r"\log(\operatorname{sigmoid}(z))", "z", r"\operatorname{diag}(\mathbf{1} - \sigma(z))"),
    (r"\log(\exp(x) \odot x)", "x", r"I_n + \operatorname{diag}(x)^{-1}"),
    (r"\operatorname{diag}(\exp(x)) b", "x", r"\operatorname{diag}(b \odot \exp(x))"),
])
def test_signs_roots_and_diagonals(expr, wrt, form):
    assert derive(expr, wrt).latex == form  # each verified numerically inside derive


@pytest.mark.parametrize("expr, words", [
    (r"\sqrt[n]{\tau}", "root index"),
    (r"\sqrt[3]{X}", "roots of a vector or matrix are not supported"),
    (r"X^{-1/2}", "roots of a vector or matrix are not supported"),
])
def test_roots_that_are_refused(expr, words):
    with pytest.raises(MatDerivError) as err:
        derive(expr, r"\tau" if "tau" in expr else "X")
    assert words in str(err.value)


@pytest.mark.parametrize("expr, wrt, form", [
    (r"\frac{\tau}{1+\tau^2}", r"\tau", r"\frac{1 - \tau^2}{(1 + \tau^2)^2}"),
    (r"\frac{\tau^2+1}{\tau - 1}", r"\tau", r"\frac{\tau^2 - 2 \tau - 1}{(\tau - 1)^2}"),
    # different matrix parts are not forced over one denominator
    (r"\frac{a^\top x}{b^\top x}", "x", r"\frac{a}{b^\top x} - \frac{(a^\top x) b}{(b^\top x)^2}"),
])
def test_quotient_rule_results_over_one_denominator(expr, wrt, form):
    assert derive(expr, wrt).latex == form  # verified numerically inside derive


@pytest.mark.parametrize("expr, form, fn", [
    (r"\operatorname{tr}(X \otimes A)", r"\operatorname{tr}(A)\, I_n",
     lambda X, A: np.trace(np.kron(X, A))),
    (r"\operatorname{tr}(X \otimes X)", r"2 \operatorname{tr}(X)\, I_n",
     lambda X, A: np.trace(np.kron(X, X))),
    (r"\operatorname{tr}(A \otimes X^\top)", r"\operatorname{tr}(A)\, I_n",
     lambda X, A: np.trace(np.kron(A, X.T))),
])
def test_trace_of_a_kronecker_product_is_a_product_of_traces(expr, form, fn):
    X, A = RNG.standard_normal((3, 3)), RNG.standard_normal((2, 2))
    d = derive(expr, "X")
    assert d.latex == form
    got = d.evaluate({"X": X, "A": A})
    np.testing.assert_allclose(got, fd_gradient(lambda V: fn(V, A), X), rtol=1e-6, atol=1e-8)
    assert d.steps == [] and derive(expr, "X", steps=True).steps  # and it can be derived



def test_equal_halves_of_a_differential_are_counted_not_expanded():
    # d((x - a)^T (x - a)) = 2 (x - a)^T dx: the textbook 2 (x - a), not 2 x - 2 a
    x, a = RNG.standard_normal(3), RNG.standard_normal(3)
    d = derive("(x-a)^T(x-a)", "x")
    assert d.latex == "2 (x - a)"
    np.testing.assert_allclose(d.evaluate({"x": x, "a": a}).ravel(),
                               fd_gradient(lambda v: (v - a) @ (v - a), x), rtol=1e-6)


def test_textbook_forms_of_diagonals_and_quotients():
    x, A = RNG.standard_normal(3), RNG.standard_normal((3, 3))
    # diag(u) + diag(v) is one diagonal matrix
    d = derive(r"\exp(x) \odot \sin(x)", "x")
    assert d.latex == r"\operatorname{diag}(\exp(x) \odot (\sin(x) + \cos(x)))"
    np.testing.assert_allclose(d.evaluate({"x": x}),
                               fd_jacobian(lambda v: np.exp(v) * np.sin(v), x), rtol=1e-6)
    # the diagonal of I is the ones vector
    d = derive(r"\operatorname{tr}(\operatorname{diag}(x))", "x")
    assert d.latex == r"\mathbf{1}"
    np.testing.assert_allclose(d.evaluate({"x": x}).ravel(),
                               fd_gradient(lambda v: np.sum(v), x), rtol=1e-6)
    # terms with the same scalar factors share their right factor: (A + A^T) x / (x^T x)
    d = derive(r"\frac{x^T A x}{x^T x}", "x")
    assert d.latex == (r"\frac{(A + A^\top) x}{x^\top x} - "
                       r"\frac{2 (x^\top A x) x}{(x^\top x)^2}")
    np.testing.assert_allclose(d.evaluate({"x": x, "A": A}).ravel(),
                               fd_gradient(lambda v: v @ A @ v / (v @ v), x), rtol=1e-6)


def test_one_norm_of_a_vector():
    X, y, w = RNG.standard_normal((4, 3)), RNG.standard_normal(4), RNG.standard_normal(3)
    d = derive(r"\|X w - y\|^2 + \lambda \|w\|_1", "w")
    assert d.latex == r"2 X^\top (X w - y) + \lambda \operatorname{sign}(w)"
    lam = 0.7
    ref = fd_gradient(lambda v: np.sum((X @ v - y) ** 2) + lam * np.sum(np.abs(v)), w)
    np.testing.assert_allclose(d.evaluate({"X": X, "y": y, "w": w, "lambda": lam}).ravel(), ref,
                               rtol=1e-6)
    d = derive(r"\|A x - b\|_1", "x")
    assert d.latex == r"A^\top \operatorname{sign}(A x - b)"
    ref = fd_gradient(lambda v: np.sum(np.abs(X @ v - y)), w)
    np.testing.assert_allclose(d.evaluate({"A": X, "b": y, "x": w}).ravel(), ref, rtol=1e-6)
    with pytest.raises(MatDerivError, match="1-norm .* of a matrix is not supported"):
        derive(r"\|X\|_1", "X")


def test_a_size_met_by_a_product_becomes_that_product():
    # A vec(X): the columns of A are mn; x^T (A (x) B) x: x has the size of A (x) B
    A, X = RNG.standard_normal((5, 12)), RNG.standard_normal((3, 4))
    d = derive(r"A \operatorname{vec}(X)", "X")
    assert d.latex == "A" and d.shape == ("p", "mn")
    np.testing.assert_allclose(
        d.evaluate({"A": A, "X": X}),
        fd_jacobian(lambda v: A @ v, X.reshape(-1, order="F")), rtol=1e-6)
    A, B, x = RNG.standard_normal((2, 2)), RNG.standard_normal((3, 3)), RNG.standard_normal(6)
    d = derive(r"x^\top (A \otimes B) x", "x")
    assert d.latex == r"(A \otimes B + A^\top \otimes B^\top) x"
    np.testing.assert_allclose(d.evaluate({"A": A, "B": B, "x": x}).ravel(),
                               fd_gradient(lambda v: v @ np.kron(A, B) @ v, x), rtol=1e-6)


def test_exp_over_its_sum_is_softmax():
    W, x, y = RNG.standard_normal((4, 3)), RNG.standard_normal(3), RNG.standard_normal(4)

    def softmax(z):
        e = np.exp(z - z.max())
        return e / e.sum()
    d = derive(r"\log(\mathbf{1}^T \exp(x))", "x")
    assert d.latex == r"\operatorname{softmax}(x)"
    np.testing.assert_allclose(d.evaluate({"x": x}).ravel(), softmax(x), rtol=1e-12)
    np.testing.assert_allclose(d.evaluate({"x": x}).ravel(),
                               fd_gradient(lambda v: np.log(np.exp(v).sum()), x), rtol=1e-6)
    d = derive(r"-y^T W x + \log(\mathbf{1}^T\exp(W x))", "W")
    assert d.latex == r"(\operatorname{softmax}(W x) - y) x^\top"
    np.testing.assert_allclose(
        d.evaluate({"W": W, "x": x, "y": y}),
        fd_gradient(lambda V: -y @ V @ x + np.log(np.exp(V @ x).sum()), W), rtol=1e-6)


@pytest.mark.parametrize("expr, form, fn", [
    (r"A \otimes X", r"(I_q \otimes K_{np} \otimes I_m) (\operatorname{vec}(A) \otimes I_{mn})",
     lambda X, A: np.kron(A, X)),
    (r"X \otimes A", r"(I_n \otimes K_{qm} \otimes I_p) (I_{mn} \otimes \operatorname{vec}(A))",
     lambda X, A: np.kron(X, A)),
    (r"X \otimes X",
     r"(I_n \otimes K_{nm} \otimes I_m) (I_{mn} \otimes \operatorname{vec}(X) + "
     r"\operatorname{vec}(X) \otimes I_{mn})",
     lambda X, A: np.kron(X, X)),
])
def test_jacobians_of_kronecker_products_of_matrices(expr, form, fn):
    # vec(P (x) Q) = (I (x) K (x) I)(vec P (x) vec Q), Magnus & Neudecker Thm 3.10
    X, A = RNG.standard_normal((4, 3)), RNG.standard_normal((5, 2))
    d = derive(expr, "X")
    assert d.latex == form
    vec = lambda M: M.reshape(-1, order="F")  # noqa: E731
    ref = fd_jacobian(lambda v: vec(fn(v.reshape(4, 3, order="F"), A)), vec(X))
    np.testing.assert_allclose(d.evaluate({"X": X, "A": A}), ref, rtol=1e-6, atol=1e-9)


def test_exponent_sums_are_written_one_way():
    # tau^(tau^2): two powers tau^(tau^2 + 1) and tau^(1 + tau^2) were not recognised as equal
    d = derive(r"\tau^{\tau^2}", r"\tau")
    assert d.latex == r"\tau^{\tau^2 + 1} (1 + 2 \log(\tau))"
    t, h = 1.3, 1e-6
    f = lambda s: s ** (s ** 2)  # noqa: E731
    assert abs(float(d.evaluate({"tau": t})) - (f(t + h) - f(t - h)) / (2 * h)) < 1e-6


def test_hessian_of_a_fast_oscillation_against_an_accurate_reference():
    # sin(sin(e^{x^T x} c)) with c = tr(B (x) X) large: plain second differences of f cannot
    # follow it (the property tests skip such cases); differences of the hand-written gradient
    # can, and the engine agrees with them
    rng = np.random.default_rng(5)
    B, X, x = np.eye(2) * 3, np.eye(3) * 4 + 0.1 * rng.standard_normal((3, 3)), 0.8 * rng.standard_normal(3)
    c = np.trace(np.kron(B, X))

    def grad(v):
        u = np.exp(v @ v) * c
        return np.cos(np.sin(u)) * np.cos(u) * u * 2 * v
    d = derive(r"\sin(\sin(\exp(x^\top x) \operatorname{tr}(B \otimes X)))", ["x", "x"])
    ref = fd_jacobian(grad, x, h=1e-7)
    got = d.evaluate({"B": B, "X": X, "x": x})
    assert np.max(np.abs(got - ref)) <= 1e-6 * np.max(np.abs(ref))


@pytest.mark.parametrize("expr, form, fn", [
    (r"\|X \otimes B\|_F^2", r"2 \|B\|_F^2\, X", lambda X, B: np.sum(np.kron(X, B) ** 2)),
    (r"\|X \otimes X\|_F^2", r"4 \|X\|_F^2\, X", lambda X, B: np.sum(np.kron(X, X) ** 2)),
    (r"\|X \otimes B\|_F", r"\frac{\|B\|_F\, X}{\|X\|_F}",
     lambda X, B: np.sqrt(np.sum(np.kron(X, B) ** 2))),
])
def test_norms_of_kronecker_products_split(expr, form, fn):
    X, B = RNG.standard_normal((3, 2)), RNG.standard_normal((2, 4))
    d = derive(expr, "X")
    assert d.latex == form
    np.testing.assert_allclose(d.evaluate({"X": X, "B": B}), fd_gradient(lambda V: fn(V, B), X),
                               rtol=1e-6)


@pytest.mark.parametrize("expr, form, fn", [
    # the Cookbook's X^T a b^T + a b^T X^T, not (X b a^T + b a^T X)^T
    (r"a^\top X^2 b", r"a b^\top X^\top + X^\top a b^\top", lambda X, a, b, A: a @ X @ X @ b),
    # a transposed sum where that saves transposes and holds no outer product
    (r"\operatorname{tr}(A X^2)", r"(X A + A X)^\top", lambda X, a, b, A: np.trace(A @ X @ X)),
])
def test_outer_products_keep_their_natural_orientation(expr, form, fn):
    X, A = RNG.standard_normal((3, 3)), RNG.standard_normal((3, 3))
    a, b = RNG.standard_normal(3), RNG.standard_normal(3)
    d = derive(expr, "X")
    assert d.latex == form
    got = d.evaluate({"X": X, "a": a, "b": b, "A": A})
    np.testing.assert_allclose(got, fd_gradient(lambda V: fn(V, a, b, A), X), rtol=1e-6,
                               atol=1e-8)


def test_results_do_not_depend_on_the_hash_seed():
    """Python randomises string hashes per process; no form may depend on set order (a
    factoring of Hadamard products once did: sigma' (.) sigma in one run, sigma (.) sigma' in
    the next)."""
    import subprocess
    import sys

    code = ("import matderiv\n"
            "for e, v in [(r'\\sigma(x) \\odot (1 - \\sigma(x))', 'x'),"
            " (r'\\exp(x) \\odot \\sin(x) + \\exp(x) \\odot \\cos(x)', 'x'),"
            " (r'\\operatorname{tr}(A X B X^\\top)', 'X'), (r'a^\\top X^2 b', 'X')]:\n"
            "    print(matderiv.derive(e, v).latex)\n")
    outs = set()
    for seed in ("1", "2", "3"):
        env = {**__import__("os").environ, "PYTHONHASHSEED": seed}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                text=True, check=True).stdout)
    assert len(outs) == 1, outs


def test_log_softmax_jacobian_cancels_the_diagonal():
    # diag(s)^{-1} s = 1: the textbook I - 1 softmax(x)^T
    x, W = RNG.standard_normal(3), RNG.standard_normal((4, 3))
    d = derive(r"\log\operatorname{softmax}(x)", "x")
    assert d.latex == r"I_n - \mathbf{1} \operatorname{softmax}(x)^\top"

    def log_softmax(v):
        return v - np.log(np.sum(np.exp(v)))
    np.testing.assert_allclose(d.evaluate({"x": x}), fd_jacobian(log_softmax, x), rtol=1e-6,
                               atol=1e-8)
    d = derive(r"\log(\operatorname{softmax}(W x))", "x")
    assert d.latex == r"(I_m - \mathbf{1} \operatorname{softmax}(W x)^\top) W"
    np.testing.assert_allclose(d.evaluate({"x": x, "W": W}),
                               fd_jacobian(lambda v: log_softmax(W @ v), x), rtol=1e-6, atol=1e-8)


def _softmax(v):
    z = np.exp(v - np.max(v))
    return z / np.sum(z)


@pytest.mark.parametrize("expr, wrt, form, fn", [
    # the entries of a softmax sum to one: 1^T softmax(u) = 1, so its derivative is zero (it was
    # printed (diag(s) - s s^T) 1, true but not simplified)
    (r"\mathbf{1}^\top \operatorname{softmax}(x)", "x", r"\mathbf{0}",
     lambda e: np.sum(_softmax(e["x"]))),
    (r"\operatorname{sum}(\operatorname{softmax}(W x))", "W", r"0_{m \times n}",
     lambda e: np.sum(_softmax(e["W"] @ e["x"]))),
    (r"\operatorname{softmax}(x)^\top \mathbf{1} \, x^\top x", "x", r"2 x",
     lambda e: np.sum(_softmax(e["x"])) * e["x"] @ e["x"]),
    # diag(u) 1 = u and 1^T diag(u) = u^T: 1^T diag(x) A x is x^T A x
    (r"\mathbf{1}^\top \operatorname{diag}(x) A x", "x", r"(A + A^\top) x",
     lambda e: np.sum(e["x"] * (e["A"] @ e["x"]))),
    # diag(u v^T) = u o v for a longer chain too (was diag(a x^T A^T), the diagonal of a matrix)
    (r"a^\top \operatorname{diag}(x) A x", "x", r"a \odot A x + A^\top (x \odot a)",
     lambda e: e["a"] @ (e["x"] * (e["A"] @ e["x"]))),
    # diag(u) v = u o v for a column v, so like terms meet (was diag(x) A x + x o A x + ...)
    (r"x^\top \operatorname{diag}(x) A x", "x", r"2 (x \odot A x) + A^\top x^{\circ 2}",
     lambda e: e["x"] @ (e["x"] * (e["A"] @ e["x"]))),
    # diag(diag(u) M) = u o diag(M), diag(M diag(u)) = diag(M) o u
    (r"a^\top \operatorname{diag}(\operatorname{diag}(x) A)", "x", r"a \odot \operatorname{diag}(A)",
     lambda e: e["a"] @ np.diag(np.diag(e["x"]) @ e["A"])),
    # (u / w) o w = u: the derivative of log(exp(u)) no longer divides by exp and multiplies back
    (r"\mathbf{1}^\top \log(\exp(A x))", "x", r"A^\top \mathbf{1}",
     lambda e: np.sum(np.log(np.exp(e["A"] @ e["x"])))),
    # u / sqrt(u) and (u / sqrt(w)) o w: the derivative of sqrt(exp(x))
    (r"a^\top \sqrt{\exp(x)}", "x", r"\frac{1}{2} (a \odot \sqrt{\exp(x)})",
     lambda e: e["a"] @ np.sqrt(np.exp(e["x"]))),
    # (sigma'(u) o v) / sigma(u) = (1 - sigma(u)) o v
    (r"a^\top \log(\sigma(x \odot x))", "x",
     r"2 (x \odot a \odot (\mathbf{1} - \sigma(x^{\circ 2})))",
     lambda e: e["a"] @ np.log(1 / (1 + np.exp(-e["x"] * e["x"])))),
    (r"\|\operatorname{diag}(A x) (A x + \mathbf{1})\|", "x",
     r"\frac{A^\top (A x \odot (2 (A x)^{\circ 2} + 3 A x + \mathbf{1}))}{\|A x \odot (A x + \mathbf{1})\|_2}",
     lambda e: np.linalg.norm((e["A"] @ e["x"]) * (e["A"] @ e["x"] + 1))),
])
def test_ones_softmax_and_diagonal_identities(expr, wrt, form, fn):
    d = derive(expr, wrt)
    assert d.latex == form
    e = {"x": RNG.standard_normal(3), "W": RNG.standard_normal((4, 3)),
         "A": RNG.standard_normal((3, 3)), "a": RNG.standard_normal(3)}
    got = np.asarray(d.evaluate(e), dtype=float)
    want = fd_gradient(lambda v: fn({**e, wrt: v}), e[wrt])
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-6, atol=1e-8)


def test_powers_of_scaled_products():
    # (c u)^k = c^k u^k for a 1 x 1 product u (was 12 (2 x^T A x)^2 (A + A^T) x)
    d = derive(r"2 (2 x^\top A x)^3", "x")
    assert d.latex == r"48 (x^\top A x)^2 (A + A^\top) x"
    x, A = RNG.standard_normal(3), RNG.standard_normal((3, 3))
    np.testing.assert_allclose(d.evaluate({"x": x, "A": A}).reshape(-1),
                               fd_gradient(lambda v: 2 * (2 * v @ A @ v) ** 3, x), rtol=1e-6)


@pytest.mark.parametrize("expr, form, left", [
    # a lone sum left after factoring joins the other terms, so I - (I - A) collects to A (the
    # result was (c - d) e^T X^{-T} - (I_n - X^{-T} diag(b)) (c - d) e^T X^{-T})
    (r"(c - d)^\top (X - \operatorname{diag}(b)) X^{-1} e",
     r"X^{-\top} \operatorname{diag}(b) (c - d) e^\top X^{-\top}", lambda v: v["c"] - v["d"]),
    (r"c^\top (X - \operatorname{diag}(b)) X^{-1} e", r"X^{-\top} (b \odot c) e^\top X^{-\top}",
     lambda v: v["c"]),
])
def test_a_lone_sum_left_after_factoring_is_collected(expr, form, left):
    d = derive(expr, "X")
    assert d.latex == form
    v = {k: RNG.standard_normal(3) for k in "bcde"}
    v["X"] = RNG.standard_normal((3, 3)) + 3 * np.eye(3)

    def f(X):
        return left(v) @ (X - np.diag(v["b"])) @ np.linalg.inv(X) @ v["e"]
    np.testing.assert_allclose(d.evaluate(v), fd_gradient(f, v["X"]), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("expr, form, fn", [
    # K_{pm} (A \otimes B) K_{nq} = B \otimes A: the transpose of a transposed product
    (r"(X^\top C^\top)^\top", r"I_n \otimes C", lambda X, C, B: C @ X),
    (r"(C X^\top B)^\top", r"C \otimes B^\top", lambda X, C, B: (C @ X.T @ B).T),
])
def test_a_kronecker_product_between_commutation_matrices_is_swapped(expr, form, fn):
    d = derive(expr, "X")
    assert d.latex == form
    X, C, B = RNG.standard_normal((3, 3)), RNG.standard_normal((3, 3)), RNG.standard_normal((3, 3))

    def vec_f(v):
        return fn(v.reshape(3, 3, order="F"), C, B).reshape(-1, order="F")
    np.testing.assert_allclose(d.evaluate({"X": X, "C": C, "B": B}),
                               fd_jacobian(vec_f, X.reshape(-1, order="F")), rtol=1e-6, atol=1e-8)


def test_hessian_of_a_squared_quadratic_form_is_factored():
    # the longest shared run is pulled out when what is left is short:
    # (A + A^T) x x^T A^T + (A + A^T) x x^T A = (A + A^T) x x^T (A + A^T)
    d = derive(r"(x^\top A x)^2", ["x", "x"])
    assert d.latex == r"2 ((A + A^\top) x x^\top (A + A^\top) + (x^\top A x) (A + A^\top))"
    x, A = RNG.standard_normal(3), RNG.standard_normal((3, 3))

    def grad(v):
        return 2 * (v @ A @ v) * (A + A.T) @ v
    np.testing.assert_allclose(d.evaluate({"x": x, "A": A}), fd_jacobian(grad, x), rtol=1e-6,
                               atol=1e-7)


def test_a_softmax_sum_has_a_zero_hessian():
    d = derive(r"\mathbf{1}^\top \operatorname{softmax}(x)", ["x", "x"])
    assert d.latex == r"0_{n \times n}"  # was 0_{n \times n}^\top: a zero sum flipped
    np.testing.assert_array_equal(d.evaluate({"x": RNG.standard_normal(3)}), np.zeros((3, 3)))


@pytest.mark.parametrize("expr, form, fn", [
    # the Matrix Reference Manual's d/dX det(X^k) = k det(X^k) X^{-T}, d/dX ln det(X^k) = k X^{-T}
    (r"\det(X^k)", r"k \det(X^{k})\, X^{-\top}", lambda X, k: np.linalg.det(np.linalg.matrix_power(X, k))),
    (r"\ln(\det(X^k))", r"k X^{-\top}", lambda X, k: np.log(np.linalg.det(np.linalg.matrix_power(X, k)))),
    (r"\log|X^k|", r"k X^{-\top}", lambda X, k: np.log(abs(np.linalg.det(np.linalg.matrix_power(X, k))))),
])
def test_determinants_of_symbolic_matrix_powers(expr, form, fn):
    X = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
    d = derive(expr, "X")
    assert d.latex == form
    for k in (2, 3):
        np.testing.assert_allclose(d.evaluate({"X": X, "k": k}), fd_gradient(lambda V: fn(V, k), X),
                                   rtol=1e-5, atol=1e-8)
    assert derive(expr, "X", steps=True).steps  # the steps are derived and checked too


@pytest.mark.parametrize("expr, wrt, decl, form, fn", [
    (r"\frac{1}{1 + \exp(-\tau)}", r"\tau", {}, r"\sigma'(\tau)",
     lambda v, y, X: 1 / (1 + np.exp(-v))),
    (r"\frac{\exp(\tau)}{1 + \exp(\tau)}", r"\tau", {}, r"\sigma'(\tau)",
     lambda v, y, X: np.exp(v) / (1 + np.exp(v))),
    # the logistic loss with the sigmoid written out: the textbook (sigma(w^T x) - y) x
    (r"-y\log\frac{1}{1 + e^{-w^\top x}} - (1-y)\log\left(1 - \frac{1}{1 + e^{-w^\top x}}\right)",
     "w", {"scalar": ["y"]}, r"(\sigma(w^\top x) - y) x",
     lambda v, y, X: -y * np.log(1 / (1 + np.exp(-v @ X))) - (1 - y) * np.log(1 - 1 / (1 + np.exp(-v @ X)))),
    (r"\mathbf{1}^\top \log(\mathbf{1} \oslash (\mathbf{1} + \exp(-X w)))", "w", {"matrix": ["X"]},
     r"X^\top (\mathbf{1} - \sigma(X w))",
     lambda v, y, X: np.sum(np.log(1 / (1 + np.exp(-X @ v))))),
])
def test_a_written_out_logistic_function_differentiates_as_sigma(expr, wrt, decl, form, fn):
    d = derive(expr, wrt, **decl)
    assert d.latex == form
    y = 0.3
    if wrt == r"\tau":
        t = 0.7
        got = d.evaluate({"tau": t})
        np.testing.assert_allclose(float(np.ravel(got)[0]), (fn(t + 1e-6, y, None) - fn(t - 1e-6, y, None)) / 2e-6,
                                   rtol=1e-6)
    elif "X w" in expr:
        X, w = RNG.standard_normal((4, 3)), RNG.standard_normal(3)
        np.testing.assert_allclose(d.evaluate({"X": X, "w": w}).ravel(),
                                   fd_gradient(lambda v: fn(v, y, X), w), rtol=1e-6, atol=1e-9)
    else:
        x, w = RNG.standard_normal(3), RNG.standard_normal(3)
        np.testing.assert_allclose(d.evaluate({"x": x, "w": w, "y": y}).ravel(),
                                   fd_gradient(lambda v: fn(v, y, x), w), rtol=1e-6, atol=1e-9)
    steps = derive(expr, wrt, steps=True, **decl).steps
    assert "logistic" in steps[0]  # the derivation says why sigma appears


def test_inverse_diagonals_become_elementwise_divisions():
    # diag(x)^{-1} a = a / x, (a / x) / x = a / (x o x), diag(u v^T) = u o v
    x, a, b = RNG.uniform(0.5, 2, 3), RNG.standard_normal(3), RNG.standard_normal(3)
    d = derive(r"\operatorname{diag}(x)^{-1} a", "x")
    assert d.latex == r"-\operatorname{diag}(a \oslash x^{\circ 2})"
    np.testing.assert_allclose(d.evaluate({"x": x, "a": a}), fd_jacobian(lambda v: a / v, x),
                               rtol=1e-6, atol=1e-9)
    d = derive(r"b^\top \operatorname{diag}(x)^{-1} a", "x")
    assert d.latex == r"-((b \oslash x) \odot (a \oslash x))"
    np.testing.assert_allclose(d.evaluate({"x": x, "a": a, "b": b}).ravel(),
                               fd_gradient(lambda v: b @ (a / v), x), rtol=1e-6, atol=1e-9)


def test_sums_of_vecs_merge_like_sums_of_diagonals():
    X = RNG.standard_normal((3, 3))
    d = derive(r"\sigma(X) \odot X", "X")
    assert d.latex == r"\operatorname{diag}(\operatorname{vec}(\sigma'(X) \odot X + \sigma(X)))"

    def f(V):
        return (1 / (1 + np.exp(-V)) * V).reshape(-1, order="F")
    x = X.reshape(-1, order="F")
    np.testing.assert_allclose(d.evaluate({"X": X}),
                               fd_jacobian(lambda v: f(v.reshape(3, 3, order="F")), x),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("expr, wrt, form, fn", [
    # a Kronecker product with a zero factor is zero (it printed -(0 \otimes X^{-2} + ...))
    (r"\operatorname{inv}(X X) (A - A)^\top", "X", r"0_{mn \times n^2}",
     lambda X, A: np.linalg.inv(X @ X) @ (A - A).T),
    # sum(0) = 0 (printed \operatorname{sum}(0_{m \times p})\, I_n)
    (r"\operatorname{sum}(A - A) x", "x", r"0_{n \times n}", lambda x, A: np.sum(A - A) * x),
    # 1_m (x) 1_n = 1_{mn}; sum(X (x) C) = sum(X) sum(C) (printed sum(C) (1 (x) 1)(1 (x) 1)^T)
    (r"\operatorname{sum}(X \otimes C)", "X", r"\operatorname{sum}(C)\, \mathbf{1} \mathbf{1}^\top",
     lambda X, C: np.sum(np.kron(X, C))),
    # sum(A^T) = sum(A)
    (r"\operatorname{sum}(X^\top A)", "X", r"A \mathbf{1} \mathbf{1}^\top",
     lambda X, A: np.sum(X.T @ A)),
])
def test_zeros_and_ones_of_kronecker_and_sum_forms_fold(expr, wrt, form, fn):
    d = derive(expr, wrt)
    assert d.latex == form
    sizes = {"m": 4, "n": 3, "p": 5, "q": 2}
    vals = {}
    for s in d.symbols:
        r = int(np.prod([sizes[k] for k in s.rows])) if s.rows else 1
        c = int(np.prod([sizes[k] for k in s.cols])) if s.cols else 1
        vals[s.name] = RNG.standard_normal((r, c)) if c > 1 else RNG.standard_normal(r)
    other = next(s.name for s in d.symbols if s.name != wrt)
    if np.ndim(fn(vals[wrt], vals[other])) == 0:
        ref = fd_gradient(lambda X: fn(X, vals[other]), vals[wrt])
    else:  # the Jacobian d vec F / d vec(VAR)^T
        shape = vals[wrt].shape
        ref = fd_jacobian(lambda v: np.ravel(fn(v.reshape(shape, order="F"), vals[other]),
                                             order="F"), np.ravel(vals[wrt], order="F"))
    got = d.evaluate(vals)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)


def test_hessian_with_a_ones_kronecker_prints_ones():
    # sigma(t sum(X (x) C)): its Hessian printed (1 (x) 1)(1 (x) 1)^T, which a claim could not
    # read back (the sizes of the two ones are not in the text)
    d = derive(r"\sigma(t \operatorname{sum}(X \otimes C))", ["X", "X"], scalar=["t"])
    assert d.latex.endswith(r"\mathbf{1} \mathbf{1}^\top") and r"\otimes \mathbf{1}" not in d.latex
    X, C, t = RNG.standard_normal((4, 3)), RNG.standard_normal((5, 2)), 0.3
    sig = lambda u: 1 / (1 + np.exp(-u))  # noqa: E731
    grad = lambda v: (t * np.sum(C) * sig(t * np.sum(np.kron(v.reshape(4, 3, order="F"), C)))  # noqa: E731
                      * (1 - sig(t * np.sum(np.kron(v.reshape(4, 3, order="F"), C))))) * np.ones(12)
    ref = fd_jacobian(grad, X.reshape(-1, order="F"))
    np.testing.assert_allclose(d.evaluate({"X": X, "C": C, "t": t}), ref, rtol=1e-6, atol=1e-8)
    assert derive(r"\sigma(t \operatorname{sum}(X \otimes C))", ["X", "X"], scalar=["t"],
                  expect=d.latex).verdict.ok


@pytest.mark.parametrize("expr, wrt, decl, form, fn", [
    # terms with the same matrix part are like terms: their scalar coefficients add up
    (r"\cos(a^\top x) + \sin(a^\top x)", "x", {}, r"(\cos(a^\top x) - \sin(a^\top x)) a",
     lambda v, a, t: np.cos(a @ v) + np.sin(a @ v)),
    (r"\exp(a^\top x)\, a^\top x", "x", {}, r"\exp(a^\top x) (a^\top x + 1) a",
     lambda v, a, t: np.exp(a @ v) * (a @ v)),
    # a coefficient shared up to sign goes in front; 1 - t keeps its order
    (r"t\, x^\top x - x^\top x", "x", {"scalar": "t"}, r"2 (t - 1) x",
     lambda v, a, t: t * (v @ v) - v @ v),
    (r"x^\top x - t\, x^\top x", "x", {"scalar": "t"}, r"2 (1 - t) x",
     lambda v, a, t: v @ v - t * (v @ v)),
])
def test_like_terms_are_collected(expr, wrt, decl, form, fn):
    d = derive(expr, wrt, **decl)
    assert d.latex == form
    rng = np.random.default_rng(7)
    x, a, t = rng.standard_normal(4), rng.standard_normal(4), 0.7
    args = {"x": x.reshape(4, 1), "a": a.reshape(4, 1), "t": t}
    got = d.evaluate({k: v for k, v in args.items() if k in expr or k == "x"})
    np.testing.assert_allclose(np.ravel(got), fd_gradient(lambda v: fn(v, a, t), x), rtol=1e-6)


def test_like_terms_of_a_matrix_part():
    """``2 C / det(A) + (b^T b) C + C`` is one term, the bare number last."""
    d = derive(r"\frac{2 \operatorname{tr}(C^\top X)}{\det(A)} + b^\top b\, \operatorname{tr}(C^\top X)"
               r" + \operatorname{tr}(C^\top X)", "X")
    assert d.latex == r"\left(\frac{2}{\det(A)} + b^\top b + 1\right) C"
    rng = np.random.default_rng(3)
    A, C, X = (rng.standard_normal((3, 3)) for _ in range(3))
    b = rng.standard_normal(3)
    f = lambda M: (2 / np.linalg.det(A) + b @ b + 1) * np.trace(C.T @ M)  # noqa: E731
    np.testing.assert_allclose(d.evaluate({"A": A, "b": b.reshape(3, 1), "C": C, "X": X}),
                               fd_gradient(f, X), rtol=1e-6)


@pytest.mark.parametrize("expr, wrt, form, fn", [
    # a power of a scalar beside its square root is one power, so like terms are seen
    (r"t \sqrt{t}", "t", r"\frac{3}{2} \sqrt{t}", lambda t: t * np.sqrt(t)),
    (r"\frac{\sqrt{t}}{t}", "t", r"-\frac{1}{2 t \sqrt{t}}", lambda t: np.sqrt(t) / t),
    (r"\frac{t^2}{\sqrt{t}}", "t", r"\frac{3}{2} \sqrt{t}", lambda t: t ** 2 / np.sqrt(t)),
])
def test_powers_beside_their_square_root(expr, wrt, form, fn):
    d = derive(expr, wrt, scalar="t")
    assert d.latex == form
    for t in (0.3, 1.7):
        h = 1e-6
        ref = (fn(t + h) - fn(t - h)) / (2 * h)
        np.testing.assert_allclose(float(d.evaluate({"t": t})), ref, rtol=1e-6)


def test_root_of_a_quadratic_form_times_it():
    d = derive(r"\sqrt{x^\top x}\, x^\top x", "x")
    assert d.latex == r"3 \sqrt{x^\top x}\, x"
    x = np.random.default_rng(5).standard_normal(4)
    np.testing.assert_allclose(d.evaluate({"x": x.reshape(4, 1)}).ravel(),
                               fd_gradient(lambda v: np.sqrt(v @ v) * (v @ v), x), rtol=1e-6)


@pytest.mark.parametrize("expr, form, size, fn", [
    # the Matrix Cookbook's -((X + A)^{-2})^T, as tr(X^{-1}) gives -(X^{-2})^T
    (r"\operatorname{tr}((X + A)^{-1})", r"-((X + A)^{-2})^\top", (3, 3),
     lambda M, A: np.trace(np.linalg.inv(M + A))),
    # the transpose goes inside a power of a product when that saves transposes: the
    # Cookbook's form, not C X ((X^T C^T X)^{-2})^T
    (r"\operatorname{tr}((X^\top A X)^{-1})",
     r"-(A X (X^\top A X)^{-2} + A^\top X (X^\top A^\top X)^{-2})", (4, 3),
     lambda M, A: np.trace(np.linalg.inv(M.T @ A @ M))),
])
def test_transposed_powers_read_as_the_cookbook_writes_them(expr, form, size, fn):
    d = derive(expr, "X")
    assert d.latex == form
    rng = np.random.default_rng(11)
    A = rng.standard_normal((size[0], size[0])) + 4 * np.eye(size[0])
    X = rng.standard_normal(size)
    np.testing.assert_allclose(d.evaluate({"X": X, "A": A}), fd_gradient(lambda M: fn(M, A), X),
                               rtol=1e-6, atol=1e-9)


def test_terms_sharing_their_scalar_factors_share_them():
    """The generalized Rayleigh quotient: each pair of terms over the same denominator is one
    fraction, as a textbook writes it (was four fractions)."""
    d = derive(r"\frac{x^\top A x}{x^\top B x}", "x")
    assert d.latex == (r"\left(\frac{A + A^\top}{x^\top B x} - \frac{(x^\top A x) (B + B^\top)}"
                       r"{(x^\top B x)^2}\right) x")
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((4, 4)), rng.standard_normal((4, 4)) + 5 * np.eye(4)
    x = rng.standard_normal(4)
    np.testing.assert_allclose(d.evaluate({"x": x.reshape(4, 1), "A": A, "B": B}).ravel(),
                               fd_gradient(lambda v: (v @ A @ v) / (v @ B @ v), x), rtol=1e-6)


@pytest.mark.parametrize("expr, form, fn", [
    # one coefficient magnitude with both signs, short terms: pulled out
    (r"\operatorname{tr}(W^\top W) - 2 \operatorname{tr}(W^\top M)", r"2 (W - M)",
     lambda V, M: np.trace(V.T @ V) - 2 * np.trace(V.T @ M)),
    # longer terms stay as the Cookbook writes them
    (r"\operatorname{tr}(W^\top S W (W^\top W)^{-1})",
     r"2 S W (W^\top W)^{-1} - 2 W (W^\top W)^{-1} W^\top S W (W^\top W)^{-1}",
     lambda V, S: np.trace(V.T @ S @ V @ np.linalg.inv(V.T @ V))),
])
def test_shared_coefficient_magnitude(expr, form, fn):
    d = derive(expr, "W", symmetric="S")
    assert d.latex == form
    rng = np.random.default_rng(4)
    W = rng.standard_normal((4, 3))
    other = rng.standard_normal((4, 4) if "S" in expr else (4, 3))
    if "S" in expr:
        other = other + other.T
    name = "S" if "S" in expr else "M"
    np.testing.assert_allclose(d.evaluate({"W": W, name: other}),
                               fd_gradient(lambda V: fn(V, other), W), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("expr, form", [
    # the least-squares gradient written out term by term: the 2 leaves the parentheses
    (r"w^\top X^\top X w - 2 y^\top X w", r"2 X^\top (X w - y)"),
    (r"w^\top X^\top X w - 2 w^\top X^\top y + y^\top y", r"2 X^\top (X w - y)"),
])
def test_a_sum_in_a_product_gives_its_shared_coefficient_to_the_product(expr, form):
    """``X^T (2 X w - 2 y)`` was printed: the sum has parentheses anyway, so the coefficient
    its terms share goes in front of the product."""
    d = derive(expr, "w")
    assert d.latex == form
    rng = np.random.default_rng(12)
    X, y, w = rng.standard_normal((5, 3)), rng.standard_normal(5), rng.standard_normal(3)
    got = d.evaluate({"X": X, "y": y.reshape(5, 1), "w": w.reshape(3, 1)}).ravel()
    ref = fd_gradient(lambda v: v @ X.T @ X @ v - 2 * y @ X @ v + y @ y, w)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("expr", [r"\|X w - y\|^2 + \lambda \|w\|^2",
                                  r"\|y - X w\|^2 + \lambda \|w\|^2"])
def test_ridge_gradient_and_hessian_read_the_same_whatever_the_order_inside_the_norm(expr):
    r"""Two terms that hold a sum in parentheses keep their whole-number coefficient: the ridge
    gradient is 2 X^T (X w - y) + 2 lambda w both ways (``\|X w - y\|^2`` gave
    ``2 (X^T (X w - y) + \lambda w)``); the Hessian, with no nested sum, is factored."""
    g = derive(expr, "w")
    h = derive(expr, ["w", "w"])
    assert g.latex == r"2 X^\top (X w - y) + 2 \lambda w"
    assert h.latex == r"2 (X^\top X + \lambda I_n)"
    rng = np.random.default_rng(21)
    X, y, w, lam = rng.standard_normal((6, 3)), rng.standard_normal(6), rng.standard_normal(3), 0.7
    loss = lambda v: (X @ v - y) @ (X @ v - y) + lam * v @ v  # noqa: E731
    env = {"X": X, "y": y.reshape(6, 1), "w": w.reshape(3, 1), "lambda": lam}
    np.testing.assert_allclose(g.evaluate(env).ravel(), fd_gradient(loss, w), rtol=1e-6, atol=1e-9)
    # the loss is quadratic: central differences of central differences are exact but rounding
    hess = fd_jacobian(lambda v: fd_gradient(loss, v, 1e-3), w, 1e-3)
    np.testing.assert_allclose(h.evaluate(env), hess, rtol=1e-6, atol=1e-6)


def test_inverse_of_a_transposed_sum_reads_as_inverse_transpose():
    """The Cookbook's -(X + \\lambda I)^{-T} a b^T (X + \\lambda I)^{-T}, not (X^T + \\lambda I)^{-1}."""
    d = derive(r"a^\top (X + \lambda I)^{-1} b", "X", scalar=r"\lambda")
    assert d.latex == r"-(X + \lambda I_n)^{-\top} a b^\top (X + \lambda I_n)^{-\top}"
    rng = np.random.default_rng(9)
    X = rng.standard_normal((3, 3))
    a, b, lam = rng.standard_normal(3), rng.standard_normal(3), 2.5
    got = d.evaluate({"X": X, "a": a.reshape(3, 1), "b": b.reshape(3, 1), "lambda": lam})
    ref = fd_gradient(lambda M: a @ np.linalg.solve(M + lam * np.eye(3), b), X)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)


def test_norm_with_its_subscript_after_the_power_is_differentiated():
    d = derive(r"\|A x - b\|^2_2", "x")
    assert d.latex == r"2 A^\top (A x - b)"
    rng = np.random.default_rng(31)
    A, b, x = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)
    got = d.evaluate({"A": A, "b": b.reshape(4, 1), "x": x.reshape(3, 1)}).ravel()
    np.testing.assert_allclose(got, fd_gradient(lambda v: np.sum((A @ v - b) ** 2), x),
                               rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("expr, layout, form, fn", [
    (r"(A + \tau B)^{-1}", "mixed",
     r"2 (A + \tau B)^{-1} B (A + \tau B)^{-1} B (A + \tau B)^{-1}",
     lambda t, A, B: np.linalg.inv(A + t * B)),
    (r"\exp(\tau A)", "denominator", r"(\exp(\tau A) \odot A^{\circ 2})^\top",
     lambda t, A, B: np.exp(t * A).T),
    (r"\sin(\tau) A B", "numerator", r"-\sin(\tau)\, A B", lambda t, A, B: np.sin(t) * A @ B),
])
def test_second_derivative_of_a_matrix_function_by_a_scalar(expr, layout, form, fn):
    """By a scalar, a matrix function has a second derivative (it was refused as "not a scalar
    function"), arranged as its first derivative is."""
    d = derive(expr, [r"\tau", r"\tau"], layout=layout)
    assert d.latex == form
    rng = np.random.default_rng(41)
    A, B, t, h = rng.standard_normal((3, 3)) + 3 * np.eye(3), rng.standard_normal((3, 3)), 0.4, 1e-3
    second = (-fn(t + 2 * h, A, B) + 16 * fn(t + h, A, B) - 30 * fn(t, A, B)
              + 16 * fn(t - h, A, B) - fn(t - 2 * h, A, B)) / (12 * h * h)
    np.testing.assert_allclose(d.evaluate({"A": A, "B": B, "tau": t}), second, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("expr, form, fn", [
    (r"X^\top y", r"I_n \otimes y^\top", lambda M, v: M.T @ v),
    (r"a^\top X^\top", r"a^\top \otimes I_m", lambda M, v: (M @ v).reshape(1, -1)),
    (r"(X + X^\top) a", r"a^\top \otimes I_n + I_n \otimes a^\top", lambda M, v: (M + M.T) @ v),
])
def test_a_commutation_matrix_beside_a_kronecker_product_with_a_vector_is_absorbed(expr, form, fn):
    """(y^T (x) I_n) K_mn = I_n (x) y^T: the commutation matrix whose other side would be K_1n = I
    is absorbed (was (y^T \\otimes I_n) K_{mn})."""
    d = derive(expr, "X")
    assert d.latex == form
    rng = np.random.default_rng(61)
    square = "X +" in expr
    X = rng.standard_normal((3, 3) if square else (4, 3))
    v = rng.standard_normal(3 if square or "a" in expr else 4)
    name = "a" if "a" in expr else "y"
    got = d.evaluate({"X": X, name: v.reshape(-1, 1)})
    ref = fd_jacobian(lambda flat: fn(flat.reshape(X.shape, order="F"), v).ravel(order="F"),
                      X.ravel(order="F"))
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)


def test_the_root_of_a_determinant_merges_with_its_powers():
    r"""``\frac{\det X\, X^{-T}}{2 \sqrt{\det X}}`` is ``\frac{1}{2} \sqrt{\det X}\, X^{-T}``, as
    for a symbol under the root."""
    d = derive(r"\sqrt{\det(X)}", "X")
    assert d.latex == r"\frac{1}{2} \sqrt{\det(X)}\, X^{-\top}"
    rng = np.random.default_rng(71)
    X = rng.uniform(0.5, 2.0, (3, 3)) + 3 * np.eye(3)
    np.testing.assert_allclose(d.evaluate({"X": X}),
                               fd_gradient(lambda M: np.sqrt(np.linalg.det(M)), X), rtol=1e-6)


def test_one_over_w_times_y_reads_as_y_over_w():
    r"""``-((\mathbf{1} \oslash (x \odot x)) \odot y)`` was printed: it is ``-(y \oslash (x \odot x))``."""
    d = derive(r"\mathbf{1}^\top (y \oslash x)", "x")
    assert d.latex == r"-(y \oslash x^{\circ 2})"
    rng = np.random.default_rng(81)
    x, y = rng.uniform(0.5, 2.0, 4), rng.standard_normal(4)
    np.testing.assert_allclose(d.evaluate({"x": x.reshape(4, 1), "y": y.reshape(4, 1)}).ravel(),
                               fd_gradient(lambda v: np.sum(y / v), x), rtol=1e-6)


@pytest.mark.parametrize("text, var, shapes, fn", [
    (r"\operatorname{tr} A X B", "X", {"A": (3, 4), "X": (4, 5), "B": (5, 3)},
     lambda v: np.trace(v["A"] @ v["X"] @ v["B"])),
    (r"\log\det X^\top X", "X", {"X": (5, 3)},
     lambda v: np.linalg.slogdet(v["X"].T @ v["X"])[1]),
    (r"\log x^\top A x", "x", {"x": (3,), "A": (3, 3)},
     lambda v: np.log(v["x"] @ v["A"] @ v["x"])),
    (r"\sin 2\tau \, \cos\tau", "tau", {"tau": ()},
     lambda v: np.sin(2 * v["tau"]) * np.cos(v["tau"])),
])
def test_bare_function_arguments_are_differentiated_as_printed(text, var, shapes, fn):
    r"""A function written without brackets applies to the product after it (tr(A X B), not
    tr(A) X B): the printed derivative is that of the expression as a reader takes it."""
    rng = np.random.default_rng(11)
    values = {k: rng.standard_normal(s) if s else float(rng.standard_normal())
              for k, s in shapes.items()}
    if "A" in values and text.startswith(r"\log x"):
        values["A"] = values["A"] @ values["A"].T + 3 * np.eye(3)  # x^T A x > 0
    d = derive(text, var)
    got = np.asarray(d.evaluate(values), dtype=float)

    def f(x):
        return fn({**values, var: x})
    ref = fd_gradient(f, values[var])
    np.testing.assert_allclose(got.reshape(np.shape(ref)), ref, rtol=1e-5, atol=1e-8)


def test_an_elementwise_power_is_differentiated_as_written():
    rng = np.random.default_rng(5)
    A, b, x = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)
    d = derive(r"\mathbf{1}^\top (A x - b)^{\circ 3}", "x")
    got = np.ravel(d.evaluate({"A": A, "b": b, "x": x}))
    np.testing.assert_allclose(got, fd_gradient(lambda v: np.sum((A @ v - b) ** 3), x),
                               rtol=1e-6)


@pytest.mark.parametrize("text, fn, printed", [
    (r"\tan\tau", np.tan, r"\frac{1}{\cos^2(\tau)}"),
    (r"\sinh\tau", np.sinh, r"\cosh(\tau)"),
    (r"\cosh\tau", np.cosh, r"\sinh(\tau)"),
    (r"\arctan\tau", np.arctan, r"\frac{1}{1 + \tau^2}"),
    (r"\log\cosh\tau", lambda t: np.log(np.cosh(t)), r"\tanh(\tau)"),
    (r"\log\cos\tau", lambda t: np.log(np.cos(t)), r"-\tan(\tau)"),
])
def test_more_scalar_functions(text, fn, printed):
    """tan, sinh, cosh and arctan (they were refused as unsupported functions)."""
    d = derive(text, r"\tau")
    assert d.latex == printed
    for t in (0.3, -0.7):
        h = 1e-6
        np.testing.assert_allclose(float(d.evaluate({"tau": t})),
                                   (fn(t + h) - fn(t - h)) / (2 * h), rtol=1e-6)


@pytest.mark.parametrize("text, fn", [
    (r"\mathbf{1}^\top \log\cosh(A x - b)", lambda A, b, v: np.sum(np.log(np.cosh(A @ v - b)))),
    (r"\mathbf{1}^\top \arctan(A x)", lambda A, b, v: np.sum(np.arctan(A @ v))),
    (r"\sinh(b)^\top \tan(A x)", lambda A, b, v: np.sinh(b) @ np.tan(A @ v)),
])
def test_more_elementwise_functions(text, fn):
    rng = np.random.default_rng(3)
    A, b, x = 0.3 * rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)
    d = derive(text, "x")
    got = np.ravel(d.evaluate({"A": A, "b": b, "x": x}))
    np.testing.assert_allclose(got, fd_gradient(lambda v: fn(A, b, v), x), rtol=1e-6)


def test_a_diagonal_matrix_from_a_vector_is_its_own_transpose_in_a_jacobian():
    r"""``\operatorname{diag}(x)^\top`` had a commutation matrix in its Jacobian
    (``K_{nn} \operatorname{diag}(\operatorname{vec}(I_n)) (\mathbf{1} \otimes I_n)``)."""
    d = derive(r"\operatorname{diag}(x)^\top", "x")
    assert d.latex == derive(r"\operatorname{diag}(x)", "x").latex and "K_" not in d.latex
    x = np.random.default_rng(2).standard_normal(3)
    ref = fd_jacobian(lambda v: np.diag(v).T.reshape(-1, order="F"), x)
    np.testing.assert_allclose(d.evaluate({"x": x}), ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("text, fn", [
    (r"\mathbf{1}^\top (1 \oslash x)", lambda A, v: np.sum(1 / v)),
    (r"a^\top (2 \oslash (A x))", lambda A, v: np.arange(1.0, 5.0) @ (2 / (A @ v))),
])
def test_a_scalar_over_a_vector_elementwise_is_its_multiple_of_the_reciprocal(text, fn):
    r"""``1 \oslash x`` was a size clash (a scalar and a vector); it is ``\mathbf{1} \oslash x``."""
    rng = np.random.default_rng(9)
    A, x = rng.standard_normal((4, 3)), rng.uniform(1.0, 2.0, 3)
    d = derive(text, "x")
    got = np.ravel(d.evaluate({"A": A, "x": x, "a": np.arange(1.0, 5.0)}))
    np.testing.assert_allclose(got, fd_gradient(lambda v: fn(A, v), x), rtol=1e-5)


def test_layer_indices_are_symbols_of_their_own():
    r"""``W^{(2)} \sigma(W^{(1)} x)`` differentiated as W^2 \sigma(W x) before: the gradient by
    the first layer's weights, against finite differences of the network written in NumPy."""
    rng = np.random.default_rng(4)
    W1, W2 = rng.standard_normal((4, 3)), rng.standard_normal((2, 4))
    b1, x, y = rng.standard_normal(4), rng.standard_normal(3), rng.standard_normal(2)

    def loss(w1):
        h = 1 / (1 + np.exp(-(w1 @ x + b1)))
        return 0.5 * np.sum((W2 @ h - y) ** 2)
    d = derive(r"\frac{1}{2} \|W^{(2)} \sigma(W^{(1)} x + b^{(1)}) - y\|^2", "W^{(1)}")
    assert "W^{(2)}" in d.latex and "^2" not in d.latex
    got = d.evaluate({"W^{(1)}": W1, "W^{(2)}": W2, "b^{(1)}": b1, "x": x, "y": y})
    np.testing.assert_allclose(got, fd_gradient(loss, W1), rtol=1e-6, atol=1e-9)
    assert d.evaluate({"W__1": W1, "W__2": W2, "b__1": b1, "x": x, "y": y}).shape == (4, 3)


def test_an_indexed_symbol_prints_as_written_and_braced_only_before_a_superscript():
    r"""``W^{(1)} x`` printed as ``{W^{(1)}} x``: the braces are kept for a transpose or an
    inverse after the index (``{W^{(1)}}^{-\top}``), where TeX needs them, and nowhere else."""
    rng = np.random.default_rng(41)
    W, a, b = rng.standard_normal((3, 3)) + 3 * np.eye(3), rng.standard_normal(3), \
        rng.standard_normal(3)
    d = derive(r"a^\top (W^{(1)})^{-1} b + a^\top W^{(1)} b", "W^{(1)}")
    assert d.latex == r"a b^\top - {W^{(1)}}^{-\top} a b^\top {W^{(1)}}^{-\top}"

    def f(w):
        return a @ np.linalg.solve(w, b) + a @ w @ b
    got = d.evaluate({"W^{(1)}": W, "a": a, "b": b})
    np.testing.assert_allclose(got, fd_gradient(f, W), rtol=1e-6, atol=1e-9)
    d = derive(r"\|W^{(2)} a^{[1]} - y\|^2", "W^{(2)}")
    assert d.latex == r"2 (W^{(2)} a^{[1]} - y) {a^{[1]}}^\top"


def test_a_count_written_uppercase_divides_once_declared_a_scalar():
    rng = np.random.default_rng(43)
    X, y, w = rng.standard_normal((5, 3)), rng.standard_normal(5), rng.standard_normal(3)
    d = derive(r"\frac{1}{2N}\|X w - y\|^2", "w", scalar=["N"])
    assert d.latex == r"\frac{X^\top (X w - y)}{N}"
    got = np.ravel(d.evaluate({"X": X, "y": y, "w": w, "N": 5.0}))
    np.testing.assert_allclose(got, fd_gradient(lambda v: np.sum((X @ v - y) ** 2) / 10, w),
                               rtol=1e-6)
    with pytest.raises(MatDerivError, match="division by a matrix"):
        derive(r"\frac{1}{2N}\|X w - y\|^2", "w")


def test_inner_products_in_angle_brackets():
    r"""``\langle u, v \rangle`` (optimisation notes write it) was refused: it is u^T v for two
    vectors and tr(U^T V) for two matrices (``\rangle_F`` too), checked against differences."""
    rng = np.random.default_rng(44)
    A, x, a = rng.standard_normal((4, 4)), rng.standard_normal(4), rng.standard_normal(4)
    d = derive(r"\langle x, A x \rangle + \big\langle a, x \big\rangle^2", "x")
    assert d.latex == r"(A + A^\top) x + 2 (a^\top x) a"
    np.testing.assert_allclose(np.ravel(d.evaluate({"A": A, "x": x, "a": a})),
                               fd_gradient(lambda v: v @ A @ v + (a @ v) ** 2, x), rtol=1e-6)
    B, X, m, b = (rng.standard_normal((3, 4)), rng.standard_normal((3, 4)),
                  rng.standard_normal(3), rng.standard_normal(4))
    d = derive(r"\left\langle B, X \right\rangle_F + \langle X, X\rangle - \langle m, X b\rangle",
               "X")
    assert d.latex == r"B + 2 X - m b^\top"

    def f(Y):
        return np.sum(B * Y) + np.sum(Y * Y) - m @ Y @ b
    got = d.evaluate({"B": B, "X": X, "m": m, "b": b})
    np.testing.assert_allclose(got, fd_gradient(f, X), rtol=1e-6, atol=1e-9)
    with pytest.raises(MatDerivError, match="needs two of one shape"):
        derive(r"\langle x, A \rangle", "x")
    d = derive(r"(X b - m) : (X b - m) + B : X", "X")  # the colon spelling
    assert d.latex == r"2 (X b - m) b^\top + B"
    got = d.evaluate({"B": B, "X": X, "m": m, "b": b})
    np.testing.assert_allclose(
        got, fd_gradient(lambda Y: np.sum((Y @ b - m) ** 2) + np.sum(B * Y), X), rtol=1e-6,
        atol=1e-9)


@pytest.mark.parametrize("text, latex, fn", [
    (r"\mathbf{1}^\top \operatorname{softplus}(X w)", r"X^\top \sigma(X w)",
     lambda X, w: np.sum(np.log1p(np.exp(X @ w)))),
    (r"\softplus(a^\top w)", r"\sigma(a^\top w)\, a",
     lambda X, w: np.log1p(np.exp(X[0] @ w))),
    (r"softplus(a^T w) + \operatorname{logistic}(a^\top w)",
     r"(\sigma(a^\top w) + \sigma'(a^\top w)) a",
     lambda X, w: np.log1p(np.exp(X[0] @ w)) + 1 / (1 + np.exp(-X[0] @ w))),
])
def test_softplus_and_logistic_are_read(text, latex, fn):
    r"""``\operatorname{softplus}`` (log(1 + exp(u)), elementwise) and ``logistic`` (the
    sigmoid) were refused as unknown functions."""
    rng = np.random.default_rng(45)
    X, w = rng.standard_normal((5, 3)), rng.standard_normal(3)
    d = derive(text, "w")
    assert d.latex == latex
    got = np.ravel(d.evaluate({"X": X, "a": X[0], "w": w}))
    np.testing.assert_allclose(got, fd_gradient(lambda v: fn(X, v), w), rtol=1e-6)


def test_fractions_of_scalar_symbols_print_as_textbooks_write_them():
    r"""``\frac{1}{2} n \Sigma^{-1}`` is ``\frac{n}{2} \Sigma^{-1}``; ``(2\pi)^{-\frac{1}{2} n}``
    in a numerator is ``(2\pi)^{n/2}`` below the bar (the Gaussian's normaliser)."""
    rng = np.random.default_rng(47)
    M = rng.standard_normal((3, 3))
    S = M @ M.T + 3 * np.eye(3)
    d = derive(r"\frac{1}{(2\pi)^{n/2}|\Sigma|^{1/2}}", r"\Sigma", symmetric=[r"\Sigma"],
               scalar=["n"])
    assert d.latex == r"-\frac{\Sigma^{-1}}{2 (2 \pi)^{n/2} \sqrt{\det(\Sigma)}}"

    def normaliser(Y):
        return (2 * np.pi) ** (-1.5) / np.sqrt(np.linalg.det(Y))
    got = d.evaluate({"Sigma": S, "n": 3.0, "pi": np.pi})
    np.testing.assert_allclose(got, fd_gradient(normaliser, S), rtol=1e-5, atol=1e-9)
    d = derive(r"-\frac{n}{2}\log|\Sigma| - \frac{1}{2}\operatorname{tr}(\Sigma^{-1} C)",
               r"\Sigma", symmetric=[r"\Sigma", "C"], scalar=["n"])
    assert d.latex == r"\frac{1}{2} \Sigma^{-1} C \Sigma^{-1} - \frac{n}{2} \Sigma^{-1}"
    C = np.eye(3) + 0.1 * (M + M.T)

    def loglik(Y):
        return -2.5 * np.log(np.linalg.det(Y)) - 0.5 * np.trace(np.linalg.solve(Y, C))
    got = d.evaluate({"Sigma": S, "C": C, "n": 5.0})
    np.testing.assert_allclose(got, fd_gradient(loglik, S), rtol=1e-5, atol=1e-9)
    d = derive(r"c^{-n/2} \log\det X", "X", scalar=["c", "n"])
    assert d.latex == r"\frac{X^{-\top}}{c^{n/2}}"
    got = d.evaluate({"X": S, "c": 2.0, "n": 3.0})
    np.testing.assert_allclose(got, fd_gradient(lambda Y: 2.0 ** -1.5 * np.log(np.linalg.det(Y)), S),
                               rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("text", [
    r"\mathbf{1}_k^\top \mathbf{1}_k\, x^\top x + a^\top \mathbf{1}_k",
    r"\operatorname{tr}(I_k)\, x^\top x + a^\top \mathbf{1}_k",
])
def test_a_size_written_by_the_author_keeps_its_letter(text):
    r"""``\operatorname{tr}(I_n) x^\top x`` by x printed ``2 m x`` (the variable took n, the n
    written was renamed m) and ``\mathbf{1}_k^\top \mathbf{1}_k x^\top x`` printed ``2 m x``
    (the size on a ones vector was not read): the letter written is the letter printed, and
    every I_k and \mathbf{1}_k of an expression has that one size (here the size of a)."""
    x, a = np.arange(1.0, 4.0), np.ones(5)  # a gives the size k = 5
    for letter in "kn":
        d = derive(text.replace("_k", "_" + letter), "x")
        assert d.latex == f"2 {letter} x"
        got = np.ravel(d.evaluate({"x": x, "a": a}))
        np.testing.assert_allclose(got, fd_gradient(lambda v: 5 * v @ v + a.sum(), x), rtol=1e-6)


def test_the_bold_shorthands_of_ml_papers_are_symbols():
    r"""``\vx``, ``\mW``, ``\vtheta``, ``\mSigma`` (the ICLR and NeurIPS math_commands.tex that
    many ML papers use) were unknown commands; they are the bold symbols."""
    rng = np.random.default_rng(49)
    X, w, y = rng.standard_normal((5, 3)), rng.standard_normal(3), rng.standard_normal(5)
    d = derive(r"\|\mX \vw - \vy\|^2 + \vw^\top \mathbf{w}", r"\vw")
    assert d.latex == r"2 \mathbf{X}^\top (\mathbf{X} \mathbf{w} - \mathbf{y}) + 2 \mathbf{w}"
    got = np.ravel(d.evaluate({"X": X, "w": w, "y": y}))
    np.testing.assert_allclose(got, fd_gradient(lambda v: np.sum((X @ v - y) ** 2) + v @ v, w),
                               rtol=1e-6)
    d = derive(r"\vtheta^\top \mSigma \vtheta", r"\vtheta", symmetric=[r"\mSigma"])
    assert d.latex == r"2 \boldsymbol{\Sigma} \boldsymbol{\theta}"
    S = X.T @ X + np.eye(3)
    np.testing.assert_allclose(np.ravel(d.evaluate({"theta": w, "Sigma": S})),
                               fd_gradient(lambda v: v @ S @ v, w), rtol=1e-6)


def test_an_absent_variable_keeps_its_spelling():
    r"""A variable absent from the expression printed from its plain name: ``W^{(1)}`` as
    ``W_{_1}`` (not even valid TeX), ``\mathbf{x}`` as ``x``."""
    for var, shown in ((r"W^{(1)}", r"W^{(1)}"), (r"\mathbf{x}", r"\mathbf{x}"),
                       (r"\hat{y}", r"\hat{y}"), ("W_1", "W_1")):
        d = derive(r"a^\top W^{(2)} b", var)
        assert d.equation.startswith(r"\frac{\partial}{\partial " + shown + r"}\left(")
        assert d.evaluate({"W^{(2)}": np.eye(2), "a": np.ones(2), "b": np.ones(2),
                           var: np.ones((2, 2)) if var[0] == "W" else np.ones(2)}).max() == 0


def test_accented_letters_are_symbols_of_their_own():
    r"""``\hat{y}`` (a prediction) and ``\bar{x}`` (a mean) were refused; they are symbols of
    their own, distinct from y and x, checked against finite differences."""
    rng = np.random.default_rng(16)
    y, yh = rng.uniform(0.2, 0.8, 5), rng.uniform(0.2, 0.8, 5)
    d = derive(r"-y^\top \log \hat{y} - (\mathbf{1} - y)^\top \log(\mathbf{1} - \hat{y})",
               r"\hat{y}")
    assert d.latex == r"(\mathbf{1} - y) \oslash (\mathbf{1} - \hat{y}) - y \oslash \hat{y}"

    def bce(v):
        return -y @ np.log(v) - (1 - y) @ np.log(1 - v)
    got = np.ravel(d.evaluate({r"\hat{y}": yh, "y": y}))
    np.testing.assert_allclose(got, fd_gradient(bce, yh), rtol=1e-6)
    x, xb = rng.standard_normal(4), rng.standard_normal(4)
    d = derive(r"\|x - \bar{x}\|^2 + \bar{x}^\top \bar{x}", "x")
    assert d.latex == r"2 (x - \bar{x})"
    np.testing.assert_allclose(np.ravel(d.evaluate({"x": x, "x__bar": xb})),
                               fd_gradient(lambda v: np.sum((v - xb) ** 2) + xb @ xb, x),
                               rtol=1e-6)
    S = rng.standard_normal((3, 3))
    S = S @ S.T + 3 * np.eye(3)
    d = derive(r"\log\det\hat{\Sigma}", r"\hat{\Sigma}", symmetric=[r"\hat\Sigma"])
    assert d.latex == r"\hat{\Sigma}^{-1}"
    np.testing.assert_allclose(d.evaluate({r"\hat\Sigma": S}), np.linalg.inv(S), rtol=1e-9)


@pytest.mark.parametrize("steps", [False, True])
def test_a_probability_in_two_logs_is_checked(steps):
    r"""``\log p`` beside ``\log(\mathbf{1} - p)`` needs p in (0, 1): random points drawn signed
    or in [0.5, 1.5] rarely are, and the binary cross-entropy in p was "not finite at random
    points" (its steps always)."""
    rng = np.random.default_rng(18)
    y, p = rng.uniform(0.1, 0.9, 4), rng.uniform(0.1, 0.9, 4)
    d = derive(r"-y^\top \log p - (\mathbf{1} - y)^\top \log(\mathbf{1} - p)", "p", steps=steps)
    assert bool(d.steps) == steps

    def bce(v):
        return -y @ np.log(v) - (1 - y) @ np.log(1 - v)
    got = np.ravel(d.evaluate({"p": p, "y": y}))
    np.testing.assert_allclose(got, fd_gradient(bce, p), rtol=1e-6)


@pytest.mark.parametrize("text, scalars", [
    (r"\log(a^{k} \det X)", ["a", "k"]),
    (r"\log\left((2\pi)^{-n/2} |X|^{-1/2}\right) + \frac{3}{2} \log\det X", []),
    (r"\log((1 + \tau)^{k} \det X)", ["k"]),
])
def test_a_power_over_itself_cancels(text, scalars):
    r"""``a^k (a^k)^{-1}`` with a symbolic k did not cancel: ``\frac{a^{k} X^{-\top}}{a^{k}}``."""
    d = derive(text, "X", scalar=scalars)
    assert d.latex == r"X^{-\top}"
    rng = np.random.default_rng(20)
    X = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    env = {"X": X, "a": 1.3, "k": 2.0, "n": 3.0, "pi": np.pi, "tau": 0.4}
    names = {s.name for s in d.symbols}
    np.testing.assert_allclose(d.evaluate({k: v for k, v in env.items() if k in names}),
                               np.linalg.inv(X).T, rtol=1e-9)


@pytest.mark.parametrize("text, latex, a_shape, fn", [
    (r"\operatorname{tr}(A X) \operatorname{tr}(X A)", r"2 \operatorname{tr}(X A)\, A^\top",
     (3, 4), lambda A, M: np.trace(A @ M) ** 2),
    (r"\operatorname{tr}(X^\top A) \operatorname{tr}(A^\top X)",
     r"2 \operatorname{tr}(A^\top X)\, A", (4, 3), lambda A, M: np.trace(M.T @ A) ** 2),
    (r"\frac{\operatorname{tr}(A X)}{\operatorname{tr}(X A)}", r"0_{m \times n}", (3, 4),
     lambda A, M: 1.0),
])
def test_rotated_traces_are_one_factor(text, latex, a_shape, fn):
    r"""tr(A X) and tr(X A) are equal: ``(\operatorname{tr}(X A) + \operatorname{tr}(A X))
    A^\top`` was printed for the first, a non-zero-looking 0 for the last."""
    rng = np.random.default_rng(21)
    A, X = rng.standard_normal(a_shape), rng.standard_normal((4, 3))
    d = derive(text, "X")
    assert d.latex == latex
    got = np.asarray(d.evaluate({"A": A, "X": X}), dtype=float) * np.ones_like(X)
    np.testing.assert_allclose(got, fd_gradient(lambda M: fn(A, M), X), atol=1e-7, rtol=1e-6)


def test_exp_of_a_log_is_its_argument():
    r"""``\exp(\log(x^\top x))`` printed ``\frac{2 \exp(\log(x^\top x))\, x}{x^\top x}``."""
    rng = np.random.default_rng(22)
    x = rng.standard_normal(4)
    d = derive(r"\exp(\log(x^\top x))", "x")
    assert d.latex == "2 x"
    np.testing.assert_allclose(np.ravel(d.evaluate({"x": x})),
                               fd_gradient(lambda v: np.exp(np.log(v @ v)), x), rtol=1e-6)


@pytest.mark.parametrize("text", [r"\sqrt x^T x", r"\sqrt{x^T} x", r"\sqrt{x}^T x"])
def test_a_transposed_quotient_loses_its_transposes(text):
    r"""``\sqrt x^T`` (TeX's reading, the root of x^T) printed ``\sqrt{x} + \frac{1}{2}
    (x^\top \oslash (\sqrt{x})^\top)^\top`` for what ``\sqrt{x}^T x`` prints as
    ``\frac{3}{2} \sqrt{x}``: (u^T / v^T)^T is u / v."""
    rng = np.random.default_rng(23)
    x = rng.uniform(0.5, 2.0, 4)
    d = derive(text, "x")
    assert d.latex == r"\frac{3}{2} \sqrt{x}"
    np.testing.assert_allclose(np.ravel(d.evaluate({"x": x})),
                               fd_gradient(lambda v: np.sqrt(v) @ v, x), rtol=1e-6)


@pytest.mark.parametrize("wrt", [r"\boldsymbol{\theta}", r"\bm\theta", r"\boldsymbol\theta"])
def test_a_bold_greek_variable_is_a_vector(wrt):
    r"""``y^\top X \theta`` by ``\boldsymbol{\theta}`` took the plain \theta of the expression
    for a scalar and printed the row ``y^\top X`` under a derivative by a bold (vector) symbol;
    a bold spelling of the variable makes it a vector, as one in the expression does."""
    rng = np.random.default_rng(24)
    X, y, th = rng.standard_normal((5, 3)), rng.standard_normal(5), rng.standard_normal(3)
    d = derive(r"\mathbf{1}^\top \exp(X \theta) - y^\top X \theta", wrt)
    assert d.latex == r"X^\top (\exp(X \theta) - y)" and d.shape == ("n", "1")
    got = np.ravel(d.evaluate({"X": X, "y": y, "theta": th}))
    np.testing.assert_allclose(got, fd_gradient(lambda t: np.exp(X @ t).sum() - y @ X @ t, th),
                               rtol=1e-6)
    # declared otherwise, the declaration wins
    assert derive(r"y^\top X \theta", wrt, scalar=[r"\theta"]).latex == r"y^\top X"


def test_a_sum_of_fractions_over_a_denominator_is_not_a_nested_fraction():
    r"""``\frac{\frac{y}{\|x\|_2} - \frac{(x^\top y) x}{\|x\|_2^3}}{\|y\|_2}`` (the
    gradient of the cosine similarity) is written with the reciprocal in front."""
    rng = np.random.default_rng(25)
    x, y = rng.standard_normal(4), rng.standard_normal(4)
    d = derive(r"\frac{x^T y}{\|x\| \|y\|}", "x")
    assert d.latex == (r"\frac{1}{\|y\|_2} \left(\frac{y}{\|x\|_2} - "
                       r"\frac{(x^\top y) x}{\|x\|_2^3}\right)")
    np.testing.assert_allclose(
        np.ravel(d.evaluate({"x": x, "y": y})),
        fd_gradient(lambda v: v @ y / np.linalg.norm(v) / np.linalg.norm(y), x), rtol=1e-6)
    h = derive(r"\sqrt{1 + x^\top x}", ["x", "x"])
    assert h.latex == (r"\frac{1}{\sqrt{1 + x^\top x}} \left(I_n - "
                       r"\frac{x x^\top}{1 + x^\top x}\right)")
    np.testing.assert_allclose(
        np.asarray(h.evaluate({"x": x}), dtype=float),
        fd_jacobian(lambda v: v / np.sqrt(1 + v @ v), x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("text", [r"\sigma^2 \sigma(a^\top x)", r"\sigma (x - a)^\top x / \sigma"])
def test_sigma_as_both_a_symbol_and_the_logistic_function_is_refused(text):
    """``\\sigma`` before a bracket is the logistic function; where the expression also has
    the symbol sigma (a standard deviation), which one was meant cannot be told."""
    with pytest.raises(MatDerivError) as exc:
        derive(text, "x")
    assert "both a symbol and the logistic function" in exc.value.message
    assert r"\operatorname{sigmoid}" in exc.value.hint


def test_the_logistic_function_beside_a_symbol_sigma_is_spelled_out():
    r"""``\operatorname{sigmoid}(\sigma a^\top x)`` printed ``\sigma \sigma'(\sigma a^\top x)\,
    a``, the symbol and the function alike; beside a symbol sigma the function is spelled out."""
    rng = np.random.default_rng(26)
    a, x, s = rng.standard_normal(4), rng.standard_normal(4), 0.7
    d = derive(r"\operatorname{sigmoid}(\sigma a^\top x)", "x")
    assert d.latex == r"\sigma \operatorname{sigmoid}'(\sigma a^\top x)\, a"
    sig = lambda u: 1 / (1 + np.exp(-u))  # noqa: E731
    np.testing.assert_allclose(np.ravel(d.evaluate({"a": a, "x": x, "sigma": s})),
                               fd_gradient(lambda v: sig(s * a @ v), x), rtol=1e-6)
    # and the spelled-out derivative reads back as the derivative of the logistic function
    again = derive(r"\operatorname{sigmoid}'(\sigma a^\top x)", "x")
    assert again.latex.startswith(r"\sigma \operatorname{sigmoid}'(\sigma a^\top x)")
    assert derive(r"\sigma(a^\top x)", "x").latex == r"\sigma'(a^\top x)\, a"  # no symbol: \sigma


@pytest.mark.parametrize("text, latex, fn", [
    (r"2^{x^\top x}", r"2 \cdot 2^{x^\top x} \log(2)\, x", lambda v: 2.0 ** (v @ v)),
    (r"2^{\mathbf{1}^\top x}", r"2^{\mathbf{1}^\top x} \log(2)\, \mathbf{1}", lambda v: 2.0 ** v.sum()),
    (r"2^{\|x\|^2}", r"2 \cdot 2^{\|x\|_2^2} \log(2)\, x", lambda v: 2.0 ** (v @ v)),
])
def test_a_vector_in_an_exponent_stays_a_vector(text, latex, fn):
    r"""A letter in an exponent is a scalar by default (``a^x``, ``X^k``), but not in an
    exponent made of vectors: ``2^{x^\top x}`` took x for a scalar and printed
    ``2 x \cdot 2^{x^2} \log(2)``; ``2^{\mathbf{1}^\top x}`` was a size clash."""
    rng = np.random.default_rng(27)
    x = rng.uniform(-0.8, 0.8, 4)
    d = derive(text, "x")
    assert d.latex == latex and d.shape == ("n", "1")
    np.testing.assert_allclose(np.ravel(d.evaluate({"x": x})), fd_gradient(fn, x), rtol=1e-6)


def test_the_letter_of_a_size_used_as_a_number_is_that_scalar():
    r"""The centering matrix ``I_n - \frac{1}{n} \mathbf{1}\mathbf{1}^\top``: n was a vector by
    default ("division by a vector"); a letter written as the size of an identity or a ones
    vector and used as a symbol too is a scalar, and the size keeps its letter."""
    rng = np.random.default_rng(28)
    x = rng.standard_normal(5)
    C = np.eye(5) - np.ones((5, 5)) / 5
    d = derive(r"x^\top (I_n - \frac{1}{n}\mathbf{1}\mathbf{1}^\top) x", "x")
    assert d.latex == r"2 \left(I_n - \frac{\mathbf{1} \mathbf{1}^\top}{n}\right) x"
    got = np.ravel(d.evaluate({"x": x, "n": 5.0}))
    np.testing.assert_allclose(got, fd_gradient(lambda v: v @ C @ v, x), rtol=1e-6)
    h = derive(r"x^\top (I_n - \frac{1}{n}\mathbf{1}_n\mathbf{1}_n^\top) x", ["x", "x"])
    np.testing.assert_allclose(np.asarray(h.evaluate({"x": x, "n": 5.0}), dtype=float), 2 * C,
                               atol=1e-9)


def test_matlab_elementwise_power_and_division():
    """``x.^2`` and ``1./x`` as matrixcalculus.org and MATLAB write them (were "unexpected .")."""
    rng = np.random.default_rng(19)
    a, x = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4)
    d = derive(r"sum(x.^3) + a'*(1./x) + sum(x.^0.5)", "x")
    ref = fd_gradient(lambda v: np.sum(v ** 3) + a @ (1 / v) + np.sum(np.sqrt(v)), x)
    np.testing.assert_allclose(np.ravel(d.evaluate({"a": a, "x": x})), ref, rtol=1e-6)


def test_subscripts_of_a_recurrent_step():
    r"""``h_{t-1}``, ``W_{\text{hh}}``, ``\lambda_{\max}`` were "unexpected `_`"."""
    rng = np.random.default_rng(17)
    Whh, Wxh = rng.standard_normal((4, 4)), rng.standard_normal((4, 3))
    h, x, lam = rng.standard_normal(4), rng.standard_normal(3), 0.7
    d = derive(r"\mathbf{1}^\top \tanh(W_{\text{hh}} h_{t-1} + W_{\mathrm{xh}} x_t)"
               r" + \lambda_{\max} \|h_{t-1}\|^2", "h_{t-1}")
    assert d.latex == (r"W_{\text{hh}}^\top \operatorname{sech}^2(W_{\text{hh}} h_{t-1} + "
                       r"W_{\mathrm{xh}} x_t) + 2 \lambda_{\max} h_{t-1}")

    def f(v):
        return np.sum(np.tanh(Whh @ v + Wxh @ x)) + lam * v @ v
    env = {r"W_{\text{hh}}": Whh, "W_xh": Wxh, "h_{t-1}": h, "x_t": x, r"\lambda_{\max}": lam}
    np.testing.assert_allclose(np.ravel(d.evaluate(env)), fd_gradient(f, h), rtol=1e-6)


@pytest.mark.parametrize("text", [r"\operatorname{logsumexp}(W x)", r"\operatorname{LSE}(W x)",
                                  r"logsumexp(W x)"])
def test_logsumexp_is_read_and_its_gradient_is_softmax(text):
    rng = np.random.default_rng(6)
    W, x = rng.standard_normal((4, 3)), rng.standard_normal(3)
    d = derive(text, "W")
    assert d.latex == r"\operatorname{softmax}(W x) x^\top"
    ref = fd_gradient(lambda M: np.log(np.sum(np.exp(M @ x))), W)
    np.testing.assert_allclose(d.evaluate({"W": W, "x": x}), ref, rtol=1e-6, atol=1e-9)


def test_sin_tau_a_is_differentiated_as_sin_of_tau_times_a():
    rng = np.random.default_rng(12)
    A, B = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    d = derive(r"\sin\tau A + \cos\tau B", r"\tau")
    h, t = 1e-6, 0.4
    ref = ((np.sin(t + h) * A + np.cos(t + h) * B) - (np.sin(t - h) * A + np.cos(t - h) * B)) / (2 * h)
    np.testing.assert_allclose(d.evaluate({"tau": t, "A": A, "B": B}), ref, rtol=1e-6, atol=1e-9)
    # with a power on the function too (typing the power first keeps A square)
    d = derive(r"\sin^2 \tau A", r"\tau")
    ref = (np.sin(t + h) ** 2 * A - np.sin(t - h) ** 2 * A) / (2 * h)
    np.testing.assert_allclose(d.evaluate({"tau": t, "A": A}), ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("text, wrt, form, fn", [
    (r"0.01 \|w\|^2 + \frac{1}{2}\|X w - y\|^2", "w", r"0.02 w + X^\top (X w - y)",
     lambda v, X, y: 0.01 * v @ v + 0.5 * np.sum((X @ v - y) ** 2)),
    (r"\exp(-0.5 w^\top w)", "w", r"-\exp(-0.5 w^\top w)\, w",
     lambda v, X, y: np.exp(-0.5 * v @ v)),
    (r"0.3 \|w\|_2", "w", r"\frac{0.3 w}{\|w\|_2}", lambda v, X, y: 0.3 * np.linalg.norm(v)),
    (r"1e-3 w^\top w", "w", r"0.002 w", lambda v, X, y: 1e-3 * v @ v),
    # a short number times a power of ten six or more away is written so, decimals or not
    (r"10^{-10} \|w\|^2", "w", r"2 \cdot 10^{-10} w", lambda v, X, y: 1e-10 * v @ v),
    (r"-1.25e-9\, w^\top w", "w", r"-2.5 \cdot 10^{-9} w", lambda v, X, y: -1.25e-9 * v @ v),
    (r"1e-6 \|X w - y\|^2", "w", r"2 \cdot 10^{-6} X^\top (X w - y)",
     lambda v, X, y: 1e-6 * np.sum((X @ v - y) ** 2)),
    # a power of ten is a decimal number too, and stays as written on the left
    (r"10^{-4} \|w\|^2", "w", r"0.0002 w", lambda v, X, y: 1e-4 * v @ v),
    # a number that does not end in six digits stays a fraction
    (r"0.5 w^\top w + \frac{1}{3} y^\top X w", "w", r"w + \frac{1}{3} X^\top y",
     lambda v, X, y: 0.5 * v @ v + y @ X @ v / 3),
])
def test_decimals_written_by_the_author_print_as_decimals(text, wrt, form, fn):
    r"""``0.01 \|w\|^2`` gives ``0.02 w``, not ``\frac{1}{50} w``: a result keeps the author's
    decimals (the left-hand side too)."""
    rng = np.random.default_rng(53)
    X, y, w = rng.standard_normal((4, 3)), rng.standard_normal(4), rng.standard_normal(3)
    d = derive(text, wrt)
    assert d.latex == form
    assert r"\frac{1}{2}" not in d.equation and "0.5" in derive(r"0.5\, w^\top A w", "w").equation
    got = np.ravel(d.evaluate({"X": X, "y": y, "w": w}))
    want = fd_gradient(lambda v: fn(v, X, y), w)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * np.abs(want).max())


def test_a_power_of_ten_prints_as_written():
    r"""``10^{-4} \|w\|^2`` keeps its ``10^{-4}`` in front (it printed
    ``\frac{\|w\|_2^2}{10^4}``), and the gradient is a decimal."""
    d = derive(r"10^{-4} \|w\|^2", "w")
    assert d.equation == r"\frac{\partial}{\partial w}\left(10^{-4} \|w\|_2^2\right) = 0.0002 w"
    w = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(np.ravel(d.evaluate({"w": w})),
                               fd_gradient(lambda v: 1e-4 * v @ v, w), rtol=1e-6)


def test_without_decimals_numbers_stay_fractions():
    """Decimal printing is the author's choice, per formula: it does not leak to the next."""
    derive(r"0.5 x^\top x", "x")
    rng = np.random.default_rng(59)
    S = rng.standard_normal((3, 3))
    S = S @ S.T + 3 * np.eye(3)
    d = derive(r"\frac{3}{4} \log\det X", "X")
    assert d.latex == r"\frac{3}{4} X^{-\top}"
    got = d.evaluate({"X": S})
    np.testing.assert_allclose(got, fd_gradient(lambda Y: 0.75 * np.log(np.linalg.det(Y)), S),
                               rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("text, form, fn", [
    (r"\log\det(\operatorname{diag}(x))", r"\mathbf{1} \oslash x",   # was diag(diag(x)^{-1})
     lambda v, A: np.sum(np.log(v))),
    (r"\|\operatorname{diag}(x) - A\|_F^2", r"2 (x - \operatorname{diag}(A))",  # diag(2 (diag(x) - A))
     lambda v, A: np.sum((np.diag(v) - A) ** 2)),
    (r"\operatorname{tr}(\operatorname{diag}(x)^{-1} A)",
     r"-(\operatorname{diag}(A) \oslash x^{\circ 2})", lambda v, A: np.sum(np.diag(A) / v)),
])
def test_diagonals_of_diagonal_matrices_take_their_textbook_form(text, form, fn):
    """The diagonal of diag(x)^{-1}, of a sum holding diag(x), and of diag(x)^{-1} M are
    written with the vector x."""
    rng = np.random.default_rng(71)
    A, x = rng.standard_normal((3, 3)), rng.uniform(0.5, 2.0, 3)
    d = derive(text, "x")
    assert d.latex == form
    got = np.ravel(d.evaluate({"A": A, "x": x}))
    np.testing.assert_allclose(got, fd_gradient(lambda v: fn(v, A), x), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("text, decl, form, fn, at", [
    (r"\exp(2\log t)", ["t"], "2 t", lambda t: np.exp(2 * np.log(t)), 1.7),  # was 2 exp(2 log t) / t
    (r"\exp(-\frac{1}{2}\log t)", ["t"], r"-\frac{1}{2 t^{3/2}}", lambda t: t ** -0.5, 1.3),
    (r"e^{a \ln t}", ["t", "a"], "a t^{a - 1}", lambda t: t ** 0.7, 2.1),
])
def test_exp_of_a_multiple_of_a_log_is_a_power(text, decl, form, fn, at):
    d = derive(text, "t", scalar=decl)
    assert d.latex == form
    got = d.evaluate({"t": at, "a": 0.7})
    np.testing.assert_allclose(got, (fn(at + 1e-6) - fn(at - 1e-6)) / 2e-6, rtol=1e-6)


def test_exp_of_half_n_log_det_is_a_power_of_the_determinant():
    rng = np.random.default_rng(73)
    M = rng.standard_normal((3, 3))
    S = M @ M.T + 3 * np.eye(3)
    d = derive(r"\exp(\frac{n}{2}\log\det X)", "X", scalar=["n"])
    assert d.latex == r"\frac{n}{2} \det(X)^{n/2} X^{-\top}"
    got = d.evaluate({"X": S, "n": 3.0})
    np.testing.assert_allclose(got, fd_gradient(lambda Y: np.linalg.det(Y) ** 1.5, S),
                               rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("text, form, fn", [
    (r"\mathbf{1}^\top \exp(3\log x)", r"3 x^{\circ 2}", lambda v: np.sum(v ** 3)),
    (r"\mathbf{1}^\top \exp(\frac{1}{2}\log x)", r"\frac{1}{2} (\mathbf{1} \oslash \sqrt{x})",
     lambda v: np.sum(np.sqrt(v))),
])
def test_exp_of_k_log_of_a_vector_is_an_elementwise_power(text, form, fn):
    x = np.array([0.6, 1.3, 2.2])
    d = derive(text, "x")
    assert d.latex == form
    np.testing.assert_allclose(np.ravel(d.evaluate({"x": x})), fd_gradient(fn, x), rtol=1e-6)


def test_a_layer_index_may_be_a_step():
    r"""``h^{(l-1)}``, the layer before, is an index as ``h^{(l)}`` is (it was read as the
    power l - 1 of h: "power of a vector"); spaces in it do not matter."""
    rng = np.random.default_rng(79)
    W, h = rng.standard_normal((2, 3)), rng.standard_normal(3)
    d = derive(r"\|\sigma(W^{(l)} h^{(l - 1)})\|^2", "h^{(l-1)}")
    assert d.latex == (r"2 {W^{(l)}}^\top (\sigma(W^{(l)} h^{(l-1)}) \odot "
                       r"\sigma'(W^{(l)} h^{(l-1)}))")

    def f(v):
        return np.sum((1 / (1 + np.exp(-W @ v))) ** 2)
    got = np.ravel(d.evaluate({"W__l": W, "h__lm1": h}))
    np.testing.assert_allclose(got, fd_gradient(f, h), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("text, wrt, form, fn", [
    (r"\exp(-\frac{x^\top x}{2})", "x", r"-\exp\left(-\frac{1}{2} x^\top x\right)\, x",
     lambda v: np.exp(-v @ v / 2)),
    (r"\tanh(\frac{a^\top x}{\tau})", "x",
     r"\frac{\operatorname{sech}^2\left(\frac{a^\top x}{\tau}\right)\, a}{\tau}",
     lambda v: np.tanh(np.array([1.0, 2.0, -0.5]) @ v / 1.5)),
])
def test_a_function_of_a_fraction_has_sized_brackets(text, wrt, form, fn):
    r"""``\exp\left(-\frac{1}{2} x^\top x\right)``: a function's bracket around a fraction is
    sized, as the printer's other brackets around a fraction are (it was ``\exp(-\frac...)``)."""
    x = np.array([0.4, -0.8, 1.1])
    d = derive(text, wrt)
    assert d.latex == form
    got = d.evaluate({"x": x, "a": np.array([1.0, 2.0, -0.5]), "tau": 1.5})
    np.testing.assert_allclose(np.ravel(got), fd_gradient(fn, x), rtol=1e-6)


def test_the_norm_of_a_row_vector_in_a_product_and_a_hessian():
    r"""``y \|x^\top A\|_2`` by x and the Hessian of ``\|x^\top A\|_2``: the differential of the
    norm of a row u is du u^T (it was u^T du, a matrix: an internal ShapeError; a fuzz found
    it)."""
    rng = np.random.default_rng(89)
    A, x, y = rng.standard_normal((3, 2)), rng.standard_normal(3), rng.standard_normal(4)
    d = derive(r"y \|x^\top A\|_2", "x")
    assert d.latex == r"\frac{y x^\top A A^\top}{\|x^\top A\|_2}"
    np.testing.assert_allclose(d.evaluate({"A": A, "x": x, "y": y}),
                               fd_jacobian(lambda v: y * np.linalg.norm(v @ A), x), rtol=1e-6)
    d = derive(r"y \|x^\top A\|_1", "x")
    np.testing.assert_allclose(d.evaluate({"A": A, "x": x, "y": y}),
                               fd_jacobian(lambda v: y * np.abs(v @ A).sum(), x), rtol=1e-6)
    h = derive(r"\|x^\top A\|_2", ["x", "x"])
    want = fd_jacobian(lambda v: fd_gradient(lambda u: np.linalg.norm(u @ A), v, h=1e-5), x,
                       h=1e-5)
    np.testing.assert_allclose(h.evaluate({"A": A, "x": x}), want, rtol=1e-4, atol=1e-6)


def test_the_symbol_sigma_before_a_bracket_prints_with_a_dot():
    r"""The symbol sigma times a bracket prints ``\sigma \cdot (A + B)``: ``\sigma (A + B)``
    reads back as the logistic function of A + B (the guard refused it as an internal error;
    a fuzz found it)."""
    rng = np.random.default_rng(97)
    A, B, x = rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), rng.standard_normal(3)
    d = derive(r"\sigma \cdot (A + B) x", "x")
    assert d.latex == r"\sigma \cdot (A + B)"
    got = d.evaluate({"A": A, "B": B, "x": x, "sigma": 0.7})
    np.testing.assert_allclose(got, fd_jacobian(lambda v: 0.7 * (A + B) @ v, x), rtol=1e-6)


def test_decimal_notation_is_read_from_number_literals_only():
    r"""A constant the reader made (the 1 of ``\frac{x^\top x}{\mathbf{1}^\top \exp(C b)}``,
    whose span is that whole denominator) is not a decimal literal, though its text holds an
    ``e``; ``2e`` is 2 times e.  Decimals were switched on for such a formula."""
    from matderiv.api import _writes_decimals
    from matderiv.parse import parse

    text = r"\frac{1}{4} \frac{x^\top x}{\mathbf{1}^{T} \cdot \exp(C b)} + 2e"
    assert not _writes_decimals(parse(text))
    assert _writes_decimals(parse(text + " + 0.5"))
    assert _writes_decimals(parse(r"1e-3 x^\top x")) and _writes_decimals(parse(r".5 x"))
    d = derive(r"\frac{1}{4} \frac{x^\top x}{\mathbf{1}^\top \exp(b)} + 2e^{t}", "x",
               scalar=["t"])
    assert d.latex == r"\frac{x}{2 \mathbf{1}^\top \exp(b)}"
    b, x = np.array([0.1, -0.4]), np.array([0.3, 1.2])
    np.testing.assert_allclose(np.ravel(d.evaluate({"x": x, "b": b, "t": 0.2})), fd_gradient(
        lambda v: 0.25 * v @ v / np.exp(b).sum(), x), rtol=1e-6)


def test_a_plain_one_transposed_is_the_ones_vector():
    r"""``1^\top x`` (``1^T``, ``1'``), the ones vector written plain as many notes write it,
    read as the number 1: ``\log(1^\top \exp(x))`` had the derivative I (it is softmax)."""
    x = RNG.standard_normal(4)
    for text in (r"\log(1^\top \exp(x))", r"\log(1^T \exp(x))", r"\log(1' \exp(x))"):
        d = derive(text, "x")
        assert d.latex == r"\operatorname{softmax}(x)"
        np.testing.assert_allclose(d.evaluate({"x": x}).ravel(),
                                   fd_gradient(lambda v: np.log(np.exp(v).sum()), x), rtol=1e-6)
    d = derive(r"(1^\top x)^2", "x")
    assert d.latex == r"2 (\mathbf{1}^\top x) \mathbf{1}"
    np.testing.assert_allclose(d.evaluate({"x": x}).ravel(),
                               fd_gradient(lambda v: v.sum() ** 2, x), rtol=1e-6)


@pytest.mark.parametrize("text, message, hint", [
    (r"X 1", "a `1` after a factor of a product", r"X \mathbf{1} for the row sums"),
    (r"x^\top 1", "a `1` after a factor of a product", r"write \mathbf{1}"),
    (r"x^\top 1 x", "a `1` after a factor of a product", r"write \mathbf{1}"),
    (r"1_n^\top x", "unexpected `_` after the number 1", r"\mathbf{1}_n"),
])
def test_a_plain_one_that_would_be_read_as_the_number_is_refused(text, message, hint):
    r"""``X 1`` (the row sums written plain) read as X times the number 1 printed the
    derivative of X itself; refused, with the bold form in the hint."""
    with pytest.raises(MatDerivError) as info:
        derive(text, "X" if "X" in text else "x")
    assert message in info.value.message and hint in info.value.hint


@pytest.mark.parametrize("expr, wrt, form, fn", [
    (r"\det(X)^{1/n}", "X", r"\frac{\det(X)^{1/n} X^{-\top}}{n}",
     lambda X, n: np.linalg.det(X) ** (1 / n)),
    (r"\det(X)^{-1/n}", "X", r"-\frac{X^{-\top}}{n \det(X)^{1/n}}",
     lambda X, n: np.linalg.det(X) ** (-1 / n)),
])
def test_an_exponent_over_a_letter_is_written_inline(expr, wrt, form, fn):
    r"""``\det(X)^{1/n}``: the exponent inline as written (was ``^{\frac{1}{n}}``), and under a
    fraction bar the letter before the power (``n \det(X)^{1/n}``, was ``\det(X)^{1/n} n``)."""
    X = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
    d = derive(expr, wrt, scalar=["n"])
    assert d.latex == form
    np.testing.assert_allclose(d.evaluate({"X": X, "n": 2.0}),
                               fd_gradient(lambda V: fn(V, 2.0), X), rtol=1e-6)
    t = derive(r"t^{1/k}", "t", scalar=["t", "k"])
    assert t.latex == r"\frac{t^{1/k - 1}}{k}"
    assert float(t.evaluate({"t": 1.7, "k": 3.0})) == pytest.approx(
        ((1.7 + 1e-6) ** (1 / 3) - (1.7 - 1e-6) ** (1 / 3)) / 2e-6, rel=1e-6)


@pytest.mark.parametrize("expr, wrt, decl, form, fn, at", [
    (r"\det(t)", "t", {"scalar": ["t"]}, "1", lambda t: t, np.array([0.7])),
    (r"\det(x^\top x)", "x", {}, "2 x", lambda x: x @ x, np.array([0.3, -1.1, 0.8])),
    (r"\det(\det(X))", "X", {}, r"\det(X)\, X^{-\top}", np.linalg.det,
     np.array([[2.0, 0.3, -0.1], [0.2, 1.5, 0.4], [-0.3, 0.1, 1.8]])),
])
def test_the_determinant_of_a_scalar_is_the_scalar(expr, wrt, decl, form, fn, at):
    r"""A 1 x 1 matrix is its own determinant: ``\det(t)`` by t printed ``\frac{\det(t)}{t}``
    (1, but undefined at 0) and ``\det(x^\top x)`` printed ``\frac{2 \det(x^\top x)\,
    x}{x^\top x}``; they are 1 and ``2 x``."""
    d = derive(expr, wrt, **decl)
    assert d.latex == form
    got = np.asarray(d.evaluate({wrt: at if at.ndim == 2 else (at if at.size > 1 else at[0])}),
                     dtype=float)
    want = fd_gradient(lambda v: float(fn(v if at.size > 1 else v[0])), at)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-6)
