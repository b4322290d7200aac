"""The per-derivation glue made cheaper keeps its behaviour: the time limit's context manager,
its reading of MATDERIV_TIME_LIMIT, KaTeX's expansion count and the derivative symbol."""
from __future__ import annotations

import os

import pytest

from matderiv import MatDerivError, derive
from matderiv import deadline
from matderiv.printing.latex import (decimal_numbers, katex_expansions, latex_derivative_symbol,
                                     _DECIMALS)


@pytest.mark.parametrize("value", [None, "", " 0.5 ", "0", "3", "nonsense", "-2"])
def test_the_limit_is_read_as_os_environ_says(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("MATDERIV_TIME_LIMIT", raising=False)
    else:
        monkeypatch.setenv("MATDERIV_TIME_LIMIT", value)
    assert deadline._setting() == os.environ.get("MATDERIV_TIME_LIMIT", "")
    raw = os.environ.get("MATDERIV_TIME_LIMIT", "").strip()
    try:
        expected = max(0.0, float(raw)) if raw else deadline.DEFAULT_SECONDS
    except ValueError:
        expected = deadline.DEFAULT_SECONDS
    assert deadline.limit_seconds() == expected


def test_nested_limits_keep_the_earlier_deadline_and_restore_it():
    assert deadline._deadline is None
    with deadline.time_limit(100):
        outer = deadline._deadline
        with deadline.time_limit(1000):  # later: the outer one stays
            assert deadline._deadline == outer and deadline._limit == 100
        with deadline.time_limit(0.5):  # earlier: it takes over, then gives back
            assert deadline._deadline < outer and deadline._limit == 0.5
        assert deadline._deadline == outer and deadline._limit == 100
    assert deadline._deadline is None


def test_an_expired_block_stops_with_its_limit_named():
    with pytest.raises(deadline.TimeLimitExceeded) as info:
        with deadline.time_limit(100):
            with deadline.time_limit(0.25):
                raise deadline._Expired()
    assert info.value.message == "the derivative took longer than 0.25 s and was stopped"
    assert "MATDERIV_TIME_LIMIT" in info.value.hint
    assert deadline._deadline is None


def test_other_errors_pass_through_the_limit():
    with pytest.raises(KeyError):
        with deadline.time_limit(5):
            raise KeyError("x")
    assert deadline._deadline is None


def test_katex_expansions_counts_three_per_macro_and_one_per_quad():
    assert katex_expansions("2 x") == 0
    assert katex_expansions(r"\operatorname{tr}(X)\, X^{-\top}") == 6
    assert katex_expansions(r"a \quad b \; c \! d \: e \quadrature") == 1 + 3 + 3 + 3


@pytest.mark.parametrize("kind, layout, top, below", [
    ("gradient", "mixed", "f", r"\partial x"),
    ("jacobian", "denominator", r"f^\top", r"\partial x"),
    ("matrix-by-matrix", "mixed", r"\operatorname{vec} f", r"\partial (\operatorname{vec} x)^\top"),
    ("matrix-by-matrix", "denominator", r"(\operatorname{vec} f)^\top",
     r"\partial \operatorname{vec} x"),
])
def test_the_derivative_symbol_of_a_name(kind, layout, top, below):
    assert latex_derivative_symbol("f", "x", kind, layout) == \
        rf"\frac{{\partial {top}}}{{{below}}}"
    wrapped = latex_derivative_symbol("g + h", "x", kind, layout)
    assert ("g + h" in wrapped) and (kind == "gradient" or r"\left(g + h\right)" in wrapped)


@pytest.mark.parametrize("kind, layout, tail", [
    ("gradient", "mixed", r"\left(E\right)"),
    ("jacobian", "denominator", r"\left(E\right)^\top"),
    ("matrix-by-matrix", "mixed", r"\operatorname{vec}\left(E\right)"),
    ("matrix-by-matrix", "denominator", r"\operatorname{vec}\left(E\right)^\top"),
])
def test_the_derivative_symbol_of_an_expression(kind, layout, tail):
    out = latex_derivative_symbol(None, "x", kind, layout, expr_latex="E")
    assert out.endswith("}" + tail)


def test_decimal_mode_is_restored_however_it_is_nested():
    assert _DECIMALS.get() is False
    with decimal_numbers(False):
        assert _DECIMALS.get() is False
        with decimal_numbers(True):
            assert _DECIMALS.get() is True
            with decimal_numbers(True):
                assert _DECIMALS.get() is True
            assert _DECIMALS.get() is True
        assert _DECIMALS.get() is False
    assert _DECIMALS.get() is False


@pytest.mark.parametrize("expr, wrt, message", [
    ("x^T x", "x", None),  # no other symbol: nothing to look for
    (r"\|X w - y\|^2", "W", "the variable `W` does not occur in the expression, but `w` does"),
    ("x_i^T x_i", "x", "the variable `x` does not occur in the expression, but `x_i` does"),
    (r"\operatorname{tr}(X)", "X_{ij}", "the variable `X_{ij}` does not occur in the expression, "
     "but `X` does"),
])
def test_misnamed_variables(expr, wrt, message):
    if message is None:
        assert derive(expr, wrt).latex == "2 x"
        return
    with pytest.raises(MatDerivError) as info:
        derive(expr, wrt)
    assert info.value.message.startswith(message)
