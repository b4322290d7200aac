"""Every LaTeX string the engine produces for the public corpus (results and equations) renders
in KaTeX (strict, throwOnError) and converts with pandoc's texmath to docx and MathML without a
warning (SPEC 2)."""
from __future__ import annotations

import pytest

from conftest import corpus_cases
from matderiv import derive
from renderers import katex_errors, pandoc_errors


def _outputs():
    out = []
    for case in corpus_cases():
        wrt = case["wrt"][0] if len(case["wrt"]) == 1 else tuple(case["wrt"])
        d = derive(case["expr"], wrt, **(case.get("options") or {}))
        out.append((case["id"] + ":latex", d.latex))
        out.append((case["id"] + ":equation", d.equation))
    return out


@pytest.fixture(scope="module")
def outputs():
    return _outputs()


def test_outputs_render_in_katex(outputs):
    errs = katex_errors([s for _, s in outputs])
    assert not errs, {outputs[i][0]: (outputs[i][1], m) for i, m in errs.items()}


def test_outputs_convert_with_pandoc_without_warnings(outputs):
    errs = pandoc_errors([s for _, s in outputs])
    assert not errs, {outputs[i][0]: (outputs[i][1], m) for i, m in errs.items()}
