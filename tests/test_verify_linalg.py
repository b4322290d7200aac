"""The linalg gufuncs the check calls directly (svd, inv, det) decide as NumPy's wrappers do:
the same ill-conditioned draws, the same values, the same refusal of a singular stack."""
from __future__ import annotations

import numpy as np
import pytest

from matderiv import batch, verify
from matderiv.expr import Det, Inverse, Symbol
from matderiv.numeric import NumericDomainError


def test_ill_conditioned_draws_as_through_the_wrapper(monkeypatch):
    rng = np.random.default_rng(4)
    for n in (2, 3, 5):
        m = verify._matrices(rng, 200, n, n, False)
        direct = verify._ill_conditioned(m)
        monkeypatch.setattr(verify, "_singular_values", None)
        assert verify._ill_conditioned(m) == direct
        monkeypatch.undo()


@pytest.mark.parametrize("node", [Inverse, Det])
def test_inverse_and_determinant_as_through_the_wrappers(monkeypatch, node):
    A = Symbol("A", ("n",), ("n",), "matrix")
    env = {"A": np.random.default_rng(5).standard_normal((4, 3, 3)) + 2 * np.eye(3)}
    with np.errstate(all="ignore"):
        direct = batch.evaluate_batch(node(A), env, {"n": 3}, 4)
        monkeypatch.setattr(batch, "_inverse", None)
        monkeypatch.setattr(batch, "_determinant", None)
        assert batch.evaluate_batch(node(A), env, {"n": 3}, 4).tolist() == direct.tolist()


def test_a_singular_stack_is_refused_in_the_same_words(monkeypatch):
    A = Symbol("A", ("n",), ("n",), "matrix")
    stack = np.random.default_rng(6).standard_normal((3, 3, 3))
    stack[1] = 0.0
    messages = []
    for inverse in (batch._inverse, None):
        monkeypatch.setattr(batch, "_inverse", inverse)
        with np.errstate(all="ignore"), pytest.raises(NumericDomainError) as info:
            batch.evaluate_batch(Inverse(A), {"A": stack}, {"n": 3}, 3)
        messages.append(info.value.message)
    assert messages[0] == messages[1] == "the matrix to invert is singular at these values"
