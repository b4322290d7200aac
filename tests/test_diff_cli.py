"""`matderiv diff` (SPEC 3): options as in the API, --json, --lang for the steps, --expect with
exit status 1 on a wrong claim.  Run in-process through `cli.main` (one subprocess run lives in
test_bad_input.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from matderiv import derive
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
