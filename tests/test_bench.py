"""The benchmarks still run (issue 6): they print figures and assert nothing, so this only
checks that ``bench/derive.py`` runs in each of its modes on one case and prints its ratio line;
no timing is asserted."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import fd_gradient

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args", [[], ["--repeat", "2"], ["--repeat", "2", "--fresh"],
                                  ["--repeat", "2", "--fresh", "--no-check"]])
def test_derive_bench_runs_and_prints_the_ratio(args):
    pytest.importorskip("sympy")
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "derive.py"), "--case", "pub-002",
                        *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "faster than SymPy's .diff" in p.stdout or "slower than SymPy's .diff" in p.stdout
    assert "skipped 0" in p.stdout
    if "--fresh" in args:
        assert "fresh state before each run" in p.stdout
    assert ("WITHOUT its numerical" in p.stdout) == ("--no-check" in args)


def test_fresh_state_forgets_the_simplification_memo():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import derive as bench
    finally:
        sys.path.pop(0)
    import matderiv
    from matderiv.calculus import simplify

    matderiv.derive(r"x^\top C x", "x")
    assert simplify._REWRITTEN
    bench.matderiv_fresh()
    assert not simplify._REWRITTEN
    d = matderiv.derive(r"x^\top C x", "x")  # computed afresh, the same form and values
    assert d.latex == r"(C + C^\top) x"
    rng = np.random.default_rng(3)
    x, C = rng.standard_normal(3), rng.standard_normal((3, 3))
    np.testing.assert_allclose(d.evaluate({"x": x, "C": C}).ravel(),
                               fd_gradient(lambda v: v @ C @ v, x), rtol=1e-6)
