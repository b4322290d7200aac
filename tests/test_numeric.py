"""The NumPy evaluator (matderiv.numeric) and the NumPy source printer (matderiv.printing.numpy).

- every node type evaluates like the direct NumPy computation;
- random well-typed trees give the same numbers through ``evaluate`` and through the generated
  source (exec is fine here: it is our own generated code);
- value normalisation and size inference report wrong sizes clearly.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from matderiv.errors import MatDerivError
from matderiv.expr import (
    MINUS_ONE, ONE, SCALAR, Add, Commutation, Det, Diag, DiagPart, Differential, Func, Hadamard,
    HadamardDiv, Identity, Inverse, Kron, Mul, Norm, Ones, Power, Softmax, Sum, Symbol, Trace,
    Transpose, Vec, Zero, const, symbols,
)
from matderiv.numeric import (
    NumericDomainError, commutation_matrix, evaluate, normalize_env, normalize_value,
    sizes_from_env,
)
from matderiv.printing.numpy import NumpyPrinter, numpy_source

N, M = ("n",), ("m",)
t = Symbol("t")
s = Symbol("s")
x = Symbol("x", N, ONE, "vector")
y = Symbol("y", N, ONE, "vector")
z = Symbol("z", M, ONE, "vector")
A = Symbol("A", N, N, "matrix")
B = Symbol("B", N, N, "matrix")
X = Symbol("X", M, N, "matrix")
Y = Symbol("Y", M, N, "matrix")
S = Symbol("S", N, N, "matrix", symmetric=True)
ALL = [t, s, x, y, z, A, B, X, Y]


def T(e):
    return Transpose(e)


def mul(*a):
    return Mul(tuple(a))


def add(*a):
    return Add(tuple(a))


def make_env(n=3, m=4, seed=0):
    rng = np.random.default_rng(seed)
    vals = {
        "t": float(rng.normal()), "s": float(rng.normal()),
        "x": rng.normal(size=(n, 1)), "y": rng.normal(size=(n, 1)), "z": rng.normal(size=(m, 1)),
        "A": rng.normal(size=(n, n)), "B": rng.normal(size=(n, n)),
        "X": rng.normal(size=(m, n)), "Y": rng.normal(size=(m, n)),
    }
    return vals, {"n": n, "m": m}


def run_source(expr, params, env, sizes=None):
    src = numpy_source(expr, params)
    ns: dict = {}
    exec(compile(src, "<numpy_source>", "exec"), ns)  # our own generated code, tests only
    args = []
    for p in params:
        v = env[p.name]
        if p.shape[1] == ONE and p.shape[0] != ONE:
            v = np.asarray(v).reshape(-1)  # vectors as 1-D arrays: the function reshapes
        args.append(v)
    f = ns["f"]
    kw = {k: sizes[k] for k in f.__code__.co_varnames[f.__code__.co_argcount:
                                                       f.__code__.co_argcount
                                                       + f.__code__.co_kwonlyargcount]}
    return f(*args, **kw)


def check(expr, expected, env=None, sizes=None, rtol=1e-10):
    """evaluate and the generated source both match ``expected``."""
    if env is None:
        env, sizes = make_env()
    got = evaluate(expr, env, sizes)
    if expr.shape == SCALAR:
        assert type(got) is float
    else:
        assert isinstance(got, np.ndarray) and got.ndim == 2
        assert got.shape == np.shape(expected)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=1e-12)
    src_val = run_source(expr, symbols(expr) or [t], env, sizes)
    if expr.shape == SCALAR:
        assert isinstance(src_val, float)
    else:
        assert isinstance(src_val, np.ndarray) and src_val.shape == np.shape(expected)
    np.testing.assert_allclose(src_val, expected, rtol=rtol, atol=1e-12)
    return got


# --------------------------------------------------------------------------------------------
# Every node type against direct NumPy
# --------------------------------------------------------------------------------------------
E, SZ = make_env()
xv, yv, zv, Av, Bv, Xv, Yv = (E[k] for k in "xyzABXY")
tv = E["t"]


def test_quadratic_form():
    check(mul(T(x), A, x), (xv.T @ Av @ xv).item())
    check(mul(add(A, T(A)), x), (Av + Av.T) @ xv)


def test_scalars_and_constants():
    check(const(Fraction(3, 2)), 1.5)
    check(mul(const(2), t, x), 2 * tv * xv)
    check(mul(MINUS_ONE, T(x), y), -(xv.T @ yv).item())
    check(add(t, mul(MINUS_ONE, s), const(Fraction(1, 3))), tv - E["s"] + 1 / 3)
    # a 1x1 product acts as a scalar inside a product
    check(mul(x, T(x), y), xv * (xv.T @ yv).item())
    check(mul(mul(T(x), y), A), (xv.T @ yv).item() * Av)


def test_trace_products():
    C = Symbol("C", N, M, "matrix")
    env = dict(E, C=np.arange(12.0).reshape(3, 4) / 7)
    Cv = env["C"]
    # tr(A X^T C^T X^T ...) style: tr(A X^T Y) with X, Y m x n
    check(Trace(mul(A, T(X), Y)), np.trace(Av @ Xv.T @ Yv))
    check(Trace(mul(C, X, B, T(X), T(C))), np.trace(Cv @ Xv @ Bv @ Xv.T @ Cv.T), env, SZ)


def test_log_det_inverse_det():
    Pv = Av @ Av.T + 3 * np.eye(3)
    env = dict(E, A=Pv)
    check(Func("log", Det(A)), float(np.log(np.linalg.det(Pv))), env, SZ)
    check(Inverse(A), np.linalg.inv(Pv), env, SZ)
    check(T(Inverse(A)), np.linalg.inv(Pv).T, env, SZ)
    check(Det(A), float(np.linalg.det(Av)))


def test_commutation():
    K = Commutation(M, N)
    check(mul(K, Vec(X)), Xv.T.reshape(-1, 1, order="F"))
    Kv = commutation_matrix(4, 3)
    np.testing.assert_array_equal(Kv @ Xv.reshape(-1, 1, order="F"),
                                  Xv.T.reshape(-1, 1, order="F"))
    # K_{mn}^T = K_{nm}, and K is a permutation
    np.testing.assert_array_equal(commutation_matrix(4, 3).T, commutation_matrix(3, 4))
    np.testing.assert_array_equal(Kv @ Kv.T, np.eye(12))
    assert evaluate(Commutation((), ()), {}, {}) == 1.0


def test_vec_and_kron():
    check(Vec(X), Xv.reshape(-1, 1, order="F"))
    check(Kron((T(B), A)), np.kron(Bv.T, Av))
    # vec(X A B) = (B^T kron X) vec(A)
    check(mul(Kron((T(B), X)), Vec(A)), (Xv @ Av @ Bv).reshape(-1, 1, order="F"))
    check(Kron((x, T(z))), np.kron(xv, zv.T))
    check(Kron((t, s)), tv * E["s"])


def test_softmax_diag_sum_norm():
    e = np.exp(Av @ xv - np.max(Av @ xv))
    check(Softmax(mul(A, x)), e / e.sum())
    big = dict(E, x=1000 * xv)
    sm = evaluate(Softmax(x), big, SZ)
    assert np.all(np.isfinite(sm)) and abs(sm.sum() - 1) < 1e-12
    check(Diag(x), np.diag(xv[:, 0]))
    check(DiagPart(A), np.diag(Av).reshape(-1, 1))
    check(Diag(DiagPart(A)), np.diag(np.diag(Av)))
    check(Sum(X), float(Xv.sum()))
    check(Norm(x, "2"), float(np.linalg.norm(xv)))
    check(Norm(X, "F"), float(np.linalg.norm(Xv, "fro")))
    check(Norm(A, "2"), float(np.linalg.norm(Av, 2)))
    check(Power(Norm(mul(X, x), "2"), const(2)), float(np.sum((Xv @ xv) ** 2)))


def test_elementwise():
    sig = 1 / (1 + np.exp(-Xv))
    cases = {
        "exp": np.exp(Xv), "sin": np.sin(Xv), "cos": np.cos(Xv), "tanh": np.tanh(Xv),
        "sigmoid": sig, "dsigmoid": sig * (1 - sig), "sech2": 1 / np.cosh(Xv) ** 2,
        "abs": np.abs(Xv), "sign": np.sign(Xv), "sinh": np.sinh(Xv), "cosh": np.cosh(Xv),
        "tan": np.tan(Xv), "arctan": np.arctan(Xv),
    }
    for name, want in cases.items():
        check(Func(name, X), want)
    env = dict(E, X=np.abs(Xv) + 0.1)
    check(Func("log", X), np.log(env["X"]), env, SZ)
    check(Func("sqrt", X), np.sqrt(env["X"]), env, SZ)
    check(Func("exp", t), float(np.exp(tv)))
    check(Hadamard((X, Y)), Xv * Yv)
    check(HadamardDiv(X, Func("exp", Y)), Xv / np.exp(Yv))
    check(HadamardDiv(t, add(const(2), s)), tv / (2 + E["s"]))


def test_powers():
    check(Power(A, const(3)), Av @ Av @ Av)
    env = dict(E, A=Av + 4 * np.eye(3))
    check(Power(A, const(-2)), np.linalg.inv(env["A"] @ env["A"]), env, SZ)
    k = Symbol("k")
    check(Power(A, k), Av @ Av, dict(E, k=2.0), SZ)
    with pytest.raises(MatDerivError, match="whole number"):
        evaluate(Power(A, k), dict(E, k=1.5), SZ)
    check(Power(Func("exp", t), const(Fraction(1, 2))), float(np.exp(tv / 2)))
    check(Power(add(const(2), t), s), (2 + tv) ** E["s"] if 2 + tv > 0 else np.nan)
    check(Power(t, const(2)), tv ** 2)
    # invalid real power gives nan, no exception
    assert np.isnan(evaluate(Power(const(-8), const(Fraction(1, 3))), {}, {}))


def test_constant_matrices():
    check(mul(t, Identity(N)), tv * np.eye(3), *make_env())
    check(add(X, Zero(M, N)), Xv)
    check(mul(T(Ones(N)), x), float(xv.sum()))
    check(mul(Ones(M), T(x)), np.ones((4, 1)) @ xv.T)
    assert evaluate(Identity(()), {}, {}) == 1.0
    r = evaluate(Identity(N), {}, {"n": 2})
    r[0, 0] = 5.0                      # results are writable copies, not shared caches
    assert evaluate(Identity(N), {}, {"n": 2})[0, 0] == 1.0


def test_differential():
    env = dict(E, **{"d:x": np.ones((3, 1))})
    d = Differential(x)
    assert evaluate(mul(T(d), A, x), env, SZ) == pytest.approx(float(np.ones(3) @ Av @ xv[:, 0]))
    src = numpy_source(mul(T(d), A, x), [A, x])
    assert "def f(A, x, dx):" in src
    with pytest.raises(MatDerivError, match="differential"):
        evaluate(d, E, SZ)


def test_singular_inverse_is_domain_error():
    with pytest.raises(NumericDomainError):
        evaluate(Inverse(A), dict(E, A=np.ones((3, 3))), SZ)


def test_sizes_inferred_when_not_given():
    env = normalize_env([x, A], {"x": [1.0, 2.0], "A": [[1.0, 2.0], [3.0, 4.0]]})
    assert evaluate(mul(A, x), env) .tolist() == [[5.0], [11.0]]


def test_shared_subtrees_memoised():
    sub = mul(A, x)
    e = add(*[sub] * 50)
    np.testing.assert_allclose(evaluate(e, E, SZ), 50 * (Av @ xv))


# --------------------------------------------------------------------------------------------
# Generated source: shape of the text
# --------------------------------------------------------------------------------------------
def test_source_text():
    src = numpy_source(mul(T(x), A, x), [A, x])
    assert src.startswith("import numpy as np\n")
    assert "def f(A, x):" in src
    assert "(x.T @ A @ x).item()" in src
    assert "x = np.asarray(x, dtype=float).reshape(-1, 1)" in src
    assert "_sigmoid" not in src and "_commutation" not in src
    src = numpy_source(mul(t, Identity(N), Func("sigmoid", x)), [t, x], func_name="grad")
    assert "def grad(t, x):" in src and "n = x.shape[0]" in src and "def _sigmoid" in src
    assert "t = float(t)" in src
    assert "np.eye(n)" in src
    src = numpy_source(mul(Commutation(M, N), Vec(X)), [X])
    assert "def _commutation" in src and "m = X.shape[0]" in src and "n = X.shape[1]" in src
    # a size no parameter has becomes a keyword-only argument
    src = numpy_source(Identity(N), [t])
    assert "def f(t, *, n):" in src
    ns: dict = {}
    exec(src, ns)
    np.testing.assert_array_equal(ns["f"](1.0, n=2), np.eye(2))
    # a parameter named like a size does not clash
    n_vec = Symbol("n", M, ONE, "vector")
    src = numpy_source(mul(Ones(N), T(n_vec)), [n_vec, x])
    ns = {}
    exec(src, ns)
    np.testing.assert_array_equal(ns["f"](np.arange(2.0), np.zeros(3)),
                                  np.ones((3, 1)) @ np.arange(2.0)[None, :])


def test_source_subtraction_and_parentheses():
    p = NumpyPrinter()
    assert p.doprint(add(mul(const(2), A, x), mul(MINUS_ONE, t, x))) == "2 * (A @ x) - t * x"
    assert p.doprint(mul(add(A, B), add(x, y))) == "(A + B) @ (x + y)"
    assert p.doprint(T(mul(A, B))) == "(A @ B).T"
    assert p.doprint(Hadamard((x, mul(A, y)))) == "x * (A @ y)"
    assert p.doprint(add(t, mul(MINUS_ONE, add(s, t)))) == "t - (s + t)"
    assert p.doprint(Power(mul(MINUS_ONE, t), const(2))) == "(-t) ** 2"


def test_bad_param_names():
    with pytest.raises(MatDerivError):
        numpy_source(t, [Symbol("lambda")])
    with pytest.raises(MatDerivError):
        numpy_source(t, [Symbol("np")])


# --------------------------------------------------------------------------------------------
# Random trees: evaluate == generated source
# --------------------------------------------------------------------------------------------
LEAVES = {
    SCALAR: [t, s],
    (N, ONE): [x, y],
    (M, ONE): [z],
    (N, N): [A, B, Identity(N)],
    (M, N): [X, Y],
}
FUNCS = ["sin", "cos", "tanh", "sigmoid", "exp", "dsigmoid", "sech2", "abs"]
DIMS = [N, M]


def _leaf(draw, shape):
    opts = []
    if shape in LEAVES:
        opts += LEAVES[shape]
    r, c = shape
    if (c, r) in LEAVES and shape != SCALAR:
        opts += [Transpose(e) for e in LEAVES[(c, r)]]
    if shape == SCALAR:
        opts += [const(2), const(Fraction(-1, 2))]
    if r == c and r != ONE:
        opts.append(Identity(r))
    if c == ONE and r != ONE:
        opts.append(Ones(r))
    if not opts:   # e.g. m x m: build from products
        return mul(X, T(Y)) if shape == (M, M) else Zero(r, c)
    return draw(st.sampled_from(opts))


@st.composite
def trees(draw, shape, depth=4):
    if depth <= 0 or draw(st.integers(0, 4)) == 0:
        return _leaf(draw, shape)
    r, c = shape
    d = depth - 1
    kinds = ["add", "mul", "mul", "transpose", "func", "hadamard", "scale", "div"]
    if shape == SCALAR:
        kinds += ["trace", "sum", "norm", "power", "quad"]
    if r == c and r != ONE:
        kinds += ["inverse", "matpow"]
        if r == N:
            kinds += ["diag"]
    if c == ONE and r != ONE:
        kinds += ["softmax", "diagpart"]
    k = draw(st.sampled_from(kinds))
    if k == "add":
        return add(draw(trees(shape, d)), draw(trees(shape, d)))
    if k == "hadamard":
        return Hadamard((draw(trees(shape, d)), draw(trees(shape, d))))
    if k == "div":
        return HadamardDiv(draw(trees(shape, d)), Func("exp", draw(trees(shape, d))))
    if k == "mul":
        inner = draw(st.sampled_from(DIMS))
        return mul(draw(trees((r, inner), d)), draw(trees((inner, c), d)))
    if k == "scale":
        return mul(draw(trees(SCALAR, d)), draw(trees(shape, d)))
    if k == "transpose":
        return Transpose(draw(trees((c, r), d)))
    if k == "func":
        return Func(draw(st.sampled_from(FUNCS)), draw(trees(shape, d)))
    if k == "trace":
        return Trace(draw(trees((draw(st.sampled_from(DIMS)),) * 2, d)))
    if k == "sum":
        return Sum(draw(trees((N, draw(st.sampled_from([ONE, N]))), d)))
    if k == "norm":
        if draw(st.booleans()):
            return Norm(draw(trees((M, ONE), d)), "2")
        return Norm(draw(trees((M, N), d)), "F")
    if k == "power":
        base = Func("exp", draw(trees(SCALAR, d)))
        return Power(base, draw(st.sampled_from([const(2), const(Fraction(1, 2)), t])))
    if k == "quad":
        inner = draw(st.sampled_from(DIMS))
        v = draw(trees((inner, ONE), d))
        return mul(T(v), draw(trees((inner, inner), d)), v)
    if k == "inverse":   # well conditioned: 10 I + sin(...) is diagonally dominant for n <= 4
        return Inverse(add(mul(const(10), Identity(r)), Func("sin", draw(trees(shape, d)))))
    if k == "matpow":
        return Power(Func("tanh", draw(trees(shape, d))), const(draw(st.integers(0, 3))))
    if k == "diag":
        return Diag(draw(trees((r, ONE), d)))
    if k == "diagpart":
        return DiagPart(draw(trees((r, r), d)))
    if k == "softmax":
        return Softmax(draw(trees(shape, d)))
    raise AssertionError(k)  # pragma: no cover


SHAPES = [SCALAR, (N, ONE), (M, ONE), (N, N), (M, N), (N, M), (ONE, N)]


@st.composite
def cases(draw):
    shape = draw(st.sampled_from(SHAPES))
    e = draw(trees(shape))
    if draw(st.integers(0, 5)) == 0:         # sometimes a Kronecker or vec at the root
        e = Kron((e, draw(trees(draw(st.sampled_from(SHAPES)), 1)))) if draw(st.booleans()) \
            else Vec(e)
    n = draw(st.integers(1, 4))
    m = draw(st.integers(2, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    return e, n, m, seed


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(cases())
def test_random_trees_evaluate_equals_source(case):
    e, n, m, seed = case
    env, sizes = make_env(n, m, seed)
    params = [p for p in ALL]                       # every symbol, fixed order
    with np.errstate(all="ignore"):
        want = evaluate(e, env, sizes)
        assume(np.all(np.isfinite(want)))
        try:
            got = run_source(e, params, env, sizes)
        except (OverflowError, ZeroDivisionError):
            assume(False)
    assert sizes_from_env(symbols(e), env).items() <= sizes.items()
    if e.shape == SCALAR:
        assert type(want) is float and isinstance(got, float)
    else:
        r, c = e.shape
        size = lambda d: int(np.prod([sizes[k] for k in d]))  # noqa: E731
        assert want.shape == got.shape == (size(r), size(c))
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10 * (1 + np.max(np.abs(want))))


# --------------------------------------------------------------------------------------------
# normalize_value / sizes_from_env
# --------------------------------------------------------------------------------------------
def test_normalize_value_forms():
    assert normalize_value(t, 2) == 2.0 and type(normalize_value(t, 2)) is float
    assert normalize_value(t, np.float32(1.5)) == 1.5
    assert normalize_value(t, np.array(3.0)) == 3.0
    assert normalize_value(t, np.array([[3.0]])) == 3.0
    v = normalize_value(x, [1, 2, 3])
    assert v.shape == (3, 1) and v.dtype == np.float64
    assert normalize_value(x, np.ones((3, 1))).shape == (3, 1)
    a = np.eye(2)
    na = normalize_value(A, a)
    assert na.shape == (2, 2) and na is not a        # never aliases the user's array
    assert normalize_value(X, np.ones((2, 5))).shape == (2, 5)


@pytest.mark.parametrize("sym,value,msg", [
    (t, [1.0, 2.0], "t is a scalar"),
    (x, np.ones((3, 2)), "x is a vector"),
    (x, np.ones((1, 3)), "x is a vector"),
    (x, np.ones((2, 2, 2)), "x is a vector"),
    (A, np.ones((2, 3)), "A is a square matrix"),
    (A, np.ones(3), "A is a n\u00d7n matrix"),
    (X, "abc", "not a real number"),
    (X, np.ones((2, 2)) * 1j, "complex"),
    (S, np.array([[1.0, 2.0], [0.0, 1.0]]), "symmetric"),
])
def test_normalize_value_errors(sym, value, msg):
    with pytest.raises(MatDerivError, match=msg):
        normalize_value(sym, value)


def test_normalize_value_with_sizes():
    with pytest.raises(MatDerivError, match="should have 3 rows"):
        normalize_value(x, np.ones(4), {"n": 3})
    with pytest.raises(MatDerivError, match="should have 4 columns"):
        normalize_value(X, np.ones((2, 3)), {"m": 2, "n": 4})


def test_sizes_from_env():
    env = {"A": np.ones((3, 3)), "x": np.ones(3), "X": np.ones((2, 3)), "t": 1.0}
    assert sizes_from_env([A, x, X, t], env) == {"n": 3, "m": 2}
    assert sizes_from_env([A, z], {"A": np.eye(2)}) == {"n": 2}      # missing values skipped
    with pytest.raises(MatDerivError) as ei:
        sizes_from_env([X, x], {"X": np.ones((3, 4)), "x": np.ones(5)})
    msg = ei.value.message
    assert "size n is 4 from X (X is 3\u00d74) but 5 from x (x has length 5)" == msg
    with pytest.raises(MatDerivError, match="x is a vector"):
        sizes_from_env([x], {"x": np.ones((2, 2))})
    with pytest.raises(MatDerivError, match="no value given for A"):
        normalize_env([A], {})
    with pytest.raises(MatDerivError, match="size m is not known"):
        evaluate(Identity(M), {}, {"n": 2})


def test_source_needs_every_symbol_as_parameter():
    with pytest.raises(MatDerivError, match="not a parameter"):
        numpy_source(mul(A, x), [A])
