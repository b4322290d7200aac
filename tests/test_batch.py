"""The batched evaluator (verification's finite-difference stencils) against the point-by-point
evaluator, on random expressions and on the derivatives the engine makes of them.

Verification compares the closed form (evaluated point by point by ``numeric``) with finite
differences of the expression (evaluated in batches by ``batch``); the two implementations
must agree on every node type, or a true derivative would be refused (or a wrong one pass).
"""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

import exprgen  # noqa: E402
from matderiv import MatDerivError, derive  # noqa: E402
from matderiv.batch import BatchUnsupported, evaluate_batch  # noqa: E402
from matderiv.numeric import NumericDomainError, evaluate, normalize_value, sizes_from_env  # noqa: E402
from matderiv.parse import parse  # noqa: E402
from matderiv.shapes import infer  # noqa: E402

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.data_too_large])
STEPS = np.array([0.0, 0.3, -0.2])


def assert_batch_agrees(tree, symbols, values, var):
    """evaluate_batch at var + t_k dV equals evaluate at each point (or both refuse)."""
    sizes = sizes_from_env(symbols, values)
    env = {s.name: normalize_value(s, values[s.name], sizes) for s in symbols}
    rng = np.random.default_rng(0)
    x = env[var]
    v = float(rng.standard_normal()) if type(x) is float else rng.standard_normal(x.shape)
    points = [dict(env, **{var: x + t * v}) for t in STEPS]
    batched = dict(env)
    batched[var] = (x + STEPS * v) if type(x) is float else \
        x[None] + STEPS[:, None, None] * v[None]
    with np.errstate(all="ignore"):
        try:
            want = [evaluate(tree, p, sizes) for p in points]
        except NumericDomainError:
            return "domain"
        try:
            got = evaluate_batch(tree, batched, sizes, len(STEPS))
        except BatchUnsupported:
            return "unsupported"
    for k, w in enumerate(want):
        w = np.asarray(w, dtype=float).reshape(got.shape[1:])
        np.testing.assert_allclose(got[k], w, rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=f"point {k} of {tree}")
    return "ok"


@settings(max_examples=300, **SETTINGS)
@given(exprgen.cases())
def test_batched_evaluation_of_expressions_and_their_derivatives(case):
    values = case.values()
    var = case.vocab.var
    decl = case.decl()
    try:
        typed = infer(parse(case.text), (var,), scalar=decl["scalar"],
                      symmetric=decl.get("symmetric", ()))
    except MatDerivError:
        return
    syms = list(typed.symbols)
    assert_batch_agrees(typed.tree, syms, values, var)
    try:
        d = derive(case.text, var, layout=case.layout, check=False, **decl)
    except MatDerivError:
        return
    assert_batch_agrees(d.result_tree, list(d.symbols), values, var)


@pytest.mark.parametrize("text, var", [
    (r"\log\det X", "X"),                                    # Hessian: Kron, commutation
    (r"\operatorname{tr}(X^{-1})", "X"),
    (r"x^\top \operatorname{diag}(x) A x", "x"),             # diag of a vector, diag part
    (r"\operatorname{vec}(X)^\top \operatorname{vec}(X)", "X"),
    (r"\|X\|_2", "X"),                                        # spectral norm
    (r"\operatorname{softmax}(W x)", "x"),
    (r"t^3 \exp(t) + |t|", "t"),
])
def test_batched_evaluation_of_each_node_type(text, var):
    rng = np.random.default_rng(1)
    for order in (1, 2):
        try:
            d = derive(text, [var] * order, check=False) if order == 2 else \
                derive(text, var, check=False)
        except MatDerivError:
            continue  # second derivatives of non-scalars are not defined
        syms = list(d.symbols)
        values = {}
        for s in syms:
            r = 1 if not s.rows else 3
            c = 1 if not s.cols else 3
            values[s.name] = float(rng.uniform(0.5, 1.5)) if (r, c) == (1, 1) else \
                rng.standard_normal((r, c)) + 3 * np.eye(r, c)
        for tree in (d.expr_tree, d.result_tree):
            assert assert_batch_agrees(tree, syms, values, var) == "ok", (text, order)
