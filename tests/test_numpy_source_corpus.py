"""``Derivation.numpy_source`` (SPEC 4) on every public corpus case and on the constructs the
corpus does not reach: the generated NumPy function computes the same array as ``evaluate``.

The corpus harness scores ``evaluate``; users who paste ``numpy_source`` into their code get the
other printer, so the two must agree everywhere (each derivative was itself verified against
finite differences inside ``derive``)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from conftest import corpus_cases, random_values
from matderiv import derive

EXTRA = [
    {"id": "kron-jacobian", "expr": r"A \otimes X", "wrt": ["X"]},
    {"id": "one-norm", "expr": r"\|A x - b\|_1", "wrt": ["x"]},
    {"id": "log-sum-exp-hessian", "expr": r"\log(\mathbf{1}^\top \exp(x))", "wrt": ["x", "x"]},
    {"id": "symmetric-hessian", "expr": r"\log\det X", "wrt": ["X", "X"],
     "options": {"symmetric": ["X"]}},
    {"id": "sum-of-kron", "expr": r"\operatorname{sum}(X \otimes X)", "wrt": ["X"]},
]
CASES = corpus_cases() + EXTRA


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_numpy_source_agrees_with_evaluate(case):
    wrt = case["wrt"][0] if len(case["wrt"]) == 1 else tuple(case["wrt"])
    d = derive(case["expr"], wrt, **(case.get("options") or {}))
    ns: dict = {}
    exec(compile(d.numpy_source, "<numpy_source>", "exec"), ns)  # our own generated code
    fn = ns["derivative"]
    for equal_sizes in (False, True):  # det(A X B) needs square factors to be finite
        vals, _ = random_values(d.symbols, np.random.default_rng(3), equal_sizes)
        try:
            want = np.asarray(d.evaluate(vals), dtype=float)
        except Exception:  # noqa: BLE001 - outside the domain at these sizes: try equal ones
            continue
        break
    args = [vals[p] for p in inspect.signature(fn).parameters]
    got = np.asarray(fn(*args), dtype=float)
    assert got.shape == want.shape or got.size == want.size == 1
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-10, atol=1e-12)
