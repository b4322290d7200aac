"""`matderiv diff` (SPEC 3): options as in the API, --json, --lang for the steps, --expect with
exit status 1 on a wrong claim.  Run in-process through `cli.main` (one subprocess run lives in
test_bad_input.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import fd_gradient, fd_jacobian
from matderiv import MatDerivError, derive
from matderiv.cli import main


def run(capsys, *argv):
    rc = main(["diff", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_fields_and_numpy_source(capsys):
    rc, out, _ = run(capsys, "x^T A x", "--wrt", "x", "--json")
    data = json.loads(out)
    assert rc == 0 and set(data) == {"latex", "equation", "steps", "shape", "kind", "numpy"}
    assert data["latex"] == r"(A + A^\top) x" and data["kind"] == "gradient"
    # the printed NumPy source computes the verified result
    ns: dict = {}
    exec(data["numpy"], ns)  # our own generated source, not document text
    fn = next(v for k, v in ns.items() if callable(v) and not k.startswith("_") and k != "np")
    rng = np.random.default_rng(0)
    A, x = rng.standard_normal((3, 3)), rng.standard_normal(3)
    want = derive("x^T A x", "x").evaluate({"A": A, "x": x})
    assert np.allclose(fn(A=A, x=x), want) and np.allclose(want.reshape(-1), (A + A.T) @ x)


def test_lang_zh_words_in_the_steps(capsys):
    rc, out, _ = run(capsys, r"\log\det X", "--wrt", "X", "--steps", "--lang", "zh")
    assert rc == 0 and "微分" in out and r"X^{-\top}" in out


@pytest.mark.parametrize("claim, rc, word", [
    ("A x + A^T x", 0, "claim holds"),
    ("2 A x", 1, "symmetric"),
    ("A^T x", 1, "wrong"),
])
def test_expect(capsys, claim, rc, word):
    got, out, _ = run(capsys, "x^T A x", "--wrt", "x", "--expect", claim)
    assert got == rc and word in out


def test_expect_json_verdict(capsys):
    rc, out, _ = run(capsys, r"\log\det X", "--wrt", "X", "--expect", "X^{-1}", "--json")
    v = json.loads(out)["verdict"]
    assert rc == 1 and v["ok"] is False and v["diagnosis"] in ("symmetric", "transpose")


def test_a_variable_that_does_not_occur_gets_a_note(capsys):
    rc, out, err = run(capsys, r"y^\top \hat{y}", "--wrt", "y_hat", "--show", "result")
    assert rc == 0 and out.strip() == r"\mathbf{0}"
    assert err.strip() == ("matderiv: note: the variable `y_{hat}` does not occur in the "
                           "expression, so its derivative is 0 (the expression's symbols: "
                           r"\hat{y}, y)")
    y = np.arange(1.0, 4.0)  # the 0 printed is the derivative's value
    assert not derive(r"y^\top \hat{y}", "y_hat").evaluate({"y": y, "y__hat": y, "y_hat": y}).any()
    rc, out, err = run(capsys, r"y^\top \hat{y}", "--wrt", r"\hat{y}", "--show", "result")
    assert out.strip() == "y" and err == ""


def test_a_letter_that_is_a_vector_only_by_default_gets_a_note(capsys):
    r"""``\frac{n}{2} \log\det X`` by X: n, a lowercase Latin letter, is a vector by default,
    which makes the expression a vector and its derivative a Jacobian (right for that reading,
    and printed); most likely n is a count, and the note says how to declare it."""
    rc, out, err = run(capsys, r"\frac{n}{2} \log\det X", "--wrt", "X", "--show", "result")
    assert rc == 0 and out.strip() == r"\frac{1}{2} n \operatorname{vec}(X^{-\top})^\top"
    assert err.strip() == ("matderiv: note: `n` is a vector by default (a lowercase Latin letter), "
                           "which makes the expression a vector (it multiplies only scalars) and "
                           "this its Jacobian; if `n` is a number, declare scalar={n}")
    rng = np.random.default_rng(46)
    X = rng.standard_normal((3, 3)) + 3 * np.eye(3)
    nvec = np.array([1.0, -2.0])  # the Jacobian printed, of the vector n, against differences

    def f(v):
        return 0.5 * nvec * np.log(np.linalg.det(v.reshape(3, 3, order="F")))
    got = derive(r"\frac{n}{2} \log\det X", "X").evaluate({"X": X, "n": nvec})
    np.testing.assert_allclose(got, fd_jacobian(f, X.flatten(order="F")), rtol=1e-5, atol=1e-8)
    rc, out, err = run(capsys, r"\frac{n}{2} \log\det X", "--wrt", "X", "--show", "result",
                       "--scalar", "n")
    assert out.strip() == r"\frac{n}{2} X^{-\top}" and err == ""
    got = derive(r"\frac{n}{2} \log\det X", "X", scalar=["n"]).evaluate({"X": X, "n": 4.0})
    np.testing.assert_allclose(got, fd_gradient(lambda Y: 2 * np.log(np.linalg.det(Y)), X),
                               rtol=1e-6)
    for quiet in (r"(a^\top x) b + b", r"x^\top A x", r"\mathbf{n} x^\top x"):  # no note
        assert run(capsys, quiet, "--wrt", "x")[2] == ""
    assert "`N` is a matrix by default" in run(capsys, r"N \|x\|^2", "--wrt", "x")[2]


def test_the_note_sees_a_letter_inside_elementwise_functions(capsys):
    r"""The logistic loss ``\log(1 + \exp(-y w^\top x))`` with y a vector by default is a vector
    (the 1 a ones vector) and its derivative a Jacobian, printed right for that reading; the
    note names y, as it does for a letter outside a function."""
    text = r"\log(1 + \exp(-y w^\top x))"
    rc, out, err = run(capsys, text, "--wrt", "w", "--show", "result")
    assert rc == 0 and "`y` is a vector by default" in err and "scalar={y}" in err
    rng = np.random.default_rng(61)
    yv, w, x = rng.standard_normal(2), rng.standard_normal(3), rng.standard_normal(3)
    got = derive(text, "w").evaluate({"y": yv, "w": w, "x": x})
    np.testing.assert_allclose(got, fd_jacobian(lambda v: np.log1p(np.exp(-yv * (v @ x))), w),
                               rtol=1e-6, atol=1e-9)
    rc, out, err = run(capsys, text, "--wrt", "w", "--show", "result", "--scalar", "y")
    assert rc == 0 and err == ""
    got = derive(text, "w", scalar=["y"]).evaluate({"y": -0.7, "w": w, "x": x})
    np.testing.assert_allclose(np.ravel(got), fd_gradient(
        lambda v: np.log1p(np.exp(0.7 * (v @ x))), w), rtol=1e-6, atol=1e-9)
    for quiet in (r"\log(\mathbf{1} + \exp(-y \odot (X w)))", r"\sin(W x)"):  # no note
        assert run(capsys, quiet, "--wrt", "w" if "w" in quiet else "x")[2] == ""


def test_a_row_written_as_a_symbol_of_its_own_gets_a_note(capsys):
    r"""The softmax loss with ``w_y`` beside the variable ``W``: w_y is a symbol of its own, so
    the gradient has no -e_y x^\top term (right for that reading, and printed); the note says
    so and how to write the row through W, which gives the term."""
    text = r"-\log \frac{\exp(w_y^\top x)}{\mathbf{1}^\top \exp(W x)}"
    rc, out, err = run(capsys, text, "--wrt", "W", "--show", "result")
    assert rc == 0 and out.strip() == r"\operatorname{softmax}(W x) x^\top"
    assert "`w_y` is a symbol of its own, not a part of the variable `W`" in err
    assert r"W^\top e_k" in err
    rng = np.random.default_rng(83)
    W, x, wy = rng.standard_normal((3, 2)), rng.standard_normal(2), rng.standard_normal(2)

    def loss(M):
        return -(wy @ x) + np.log(np.sum(np.exp(M @ x)))
    got = derive(text, "W").evaluate({"W": W, "x": x, "w_y": wy})
    np.testing.assert_allclose(got, fd_gradient(loss, W), rtol=1e-6, atol=1e-9)
    through_w = r"-\log \frac{\exp(e_y^\top W x)}{\mathbf{1}^\top \exp(W x)}"
    rc, out, err = run(capsys, through_w, "--wrt", "W", "--show", "result")
    assert out.strip() == r"(\operatorname{softmax}(W x) - e_y) x^\top" and err == ""
    e = np.array([0.0, 1.0, 0.0])
    got = derive(through_w, "W").evaluate({"W": W, "x": x, "e_y": e})
    np.testing.assert_allclose(got, fd_gradient(
        lambda M: -(e @ M @ x) + np.log(np.sum(np.exp(M @ x))), W), rtol=1e-6, atol=1e-9)
    for quiet in (r"x^\top X_1 x", r"W_2 \sigma(W x)"):  # not parts: no note
        assert run(capsys, quiet, "--wrt", "x" if "X_1" in quiet else "W")[2] == ""


def test_a_hessian_of_a_vector_by_default_names_the_letter():
    r"""``\frac{n}{2} \|x\|^2`` by x twice: n is a vector by default, so the function is not a
    scalar and its second derivative is refused; the hint names n (it said only "not scalars")."""
    with pytest.raises(MatDerivError) as info:
        derive(r"\frac{n}{2} \|x\|^2", ["x", "x"])
    assert "`n` is a vector by default" in info.value.hint and "scalar={n}" in info.value.hint
    d = derive(r"\frac{n}{2} \|x\|^2", ["x", "x"], scalar=["n"])
    assert d.latex == "n I_m"
    x = np.array([0.5, -1.0, 2.0])  # the Hessian is the Jacobian of the gradient n x
    hess = fd_jacobian(lambda v: fd_gradient(lambda u: 1.5 * u @ u, v, h=1e-4), x, h=1e-4)
    np.testing.assert_allclose(d.evaluate({"x": x, "n": 3.0}), hess, rtol=1e-4, atol=1e-6)
