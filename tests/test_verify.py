"""The numerical check itself (SPEC 1.3 `check`): it accepts true derivatives and refuses
wrong ones, including near misses a careless check would let through (a missing transpose, a
factor 2 that holds only for symmetric matrices), and it never accepts a result on a draw where
the finite differences have not settled."""
from __future__ import annotations

import pytest

from matderiv.errors import MatDerivError
from matderiv.parse import parse
from matderiv.shapes import infer
from matderiv.verify import Check, VerificationError, verify


def _check(func_text: str, result_text: str, var: str, arrangement: str, **decl):
    """verify() on a function and a claimed result, both typed with the same symbols."""
    names = {k: tuple(v) for k, v in decl.items()}
    f = infer(parse(func_text), (var,), **names)
    r = infer(parse(result_text), (), **names, **_kinds(f))
    symbols = tuple(f.symbols)
    by_name = {s.name: s for s in symbols}
    from matderiv.expr import Symbol

    # give the result the function's sized symbols
    def rename(node):
        if isinstance(node, Symbol) and node.name in by_name:
            return by_name[node.name]
        return node
    result = r.tree.map(rename)
    verify(Check(f.tree, result, f.variables[0], arrangement), symbols, seed_text=func_text)


def _kinds(typed):
    out = {"scalar": [], "vector": [], "matrix": []}
    for s in typed.symbols:
        out[s.kind].append(s.name)
    return {k: tuple(v) for k, v in out.items()}


@pytest.mark.parametrize("func, result, var, arrangement", [
    (r"x^\top A x", r"(A + A^\top) x", "x", "grad"),
    (r"\log\det X", r"X^{-\top}", "X", "grad"),
    (r"a^\top X b", r"a b^\top", "X", "grad"),
    (r"\sin(\exp(x^\top x))", r"2 \cos(\exp(x^\top x)) \exp(x^\top x) x", "x", "grad"),
])
def test_true_derivatives_pass(func, result, var, arrangement):
    _check(func, result, var, arrangement)


@pytest.mark.parametrize("func, result, var, arrangement", [
    (r"x^\top A x", r"2 A x", "x", "grad"),          # only for a symmetric A
    (r"x^\top A x", r"A x", "x", "grad"),            # half of it
    (r"\log\det X", r"X^{-1}", "X", "grad"),          # the transpose
    (r"a^\top X b", r"b a^\top", "X", "grad"),        # the other layout
    (r"\sin(\exp(x^\top x))", r"2 \sin(\exp(x^\top x)) \exp(x^\top x) x", "x", "grad"),
])
def test_wrong_derivatives_are_refused(func, result, var, arrangement):
    with pytest.raises(MatDerivError) as info:
        _check(func, result, var, arrangement)
    assert isinstance(info.value, VerificationError)


def test_a_symmetric_declaration_makes_2Ax_true():
    _check(r"x^\top A x", r"2 A x", "x", "grad", symmetric=["A"])
