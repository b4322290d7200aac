r"""The text preprocessor (matderiv.process, ``matderiv process``): contexts and delimiters,
document options, strict mode, diagnostics, a property test that no byte outside a processed
macro changes, and goldens of real documents (tests/golden/, judged by a person: regenerate
with MATDERIV_UPDATE_GOLDEN=1 and read the diff before committing)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matderiv import cli, render
from matderiv.errors import MatDerivError
from matderiv.process import front_matter_options, process_text

GOLDEN = Path(__file__).parent / "golden"
SENTINEL = "\u27e6R\u27e7"  # never in a generated document


class Stub:
    """A fast stand-in for the engine: every result is the sentinel."""

    def __init__(self, expr, wrt, **opts):
        if "\\bad" in expr:
            raise MatDerivError("unknown command `\\bad`", position=expr.index("\\bad"),
                                hint="use a known function", end=expr.index("\\bad") + 4)
        self.latex = self.equation = SENTINEL
        self.steps = ["d f = d x", "= R d x"] if opts.get("steps") else []
        self.kind = "gradient"


@pytest.fixture
def stub(monkeypatch):
    monkeypatch.setattr(render, "derive", Stub)
    return Stub


def run(text, fmt, **kw):
    return process_text(text, fmt, derive_fn=Stub, **kw)


# ------------------------------------------------------------------------------------------
# contexts and delimiters
# ------------------------------------------------------------------------------------------
def test_markdown_delimiters():
    src = ("Inline \\matderiv<a, x> text.\n\n"
           "\\matderiv<b, x>\n\n"
           "Steps \\matderiv[steps]<c, x> here.\n\n"
           "Math $f = \\matderiv<d, x> + 1$ and $$\\matderiv[steps]<e, x>$$\n\n"
           "In $\\matderiv[steps]<g, x>$ inline.\n")
    res = run(src, "md")
    S = SENTINEL
    assert res.text == (f"Inline ${S}$ text.\n\n"
                        f"$${S}$$\n\n"
                        f"Steps $$\\begin{{aligned}} d f &= d x \\\\ &= R d x \\\\ &{S} "
                        f"\\end{{aligned}}$$ here.\n\n"
                        f"Math $f = {S} + 1$ and $$\\begin{{aligned}} d f &= d x \\\\ &= R d x "
                        f"\\\\ &{S} \\end{{aligned}}$$\n\n"
                        f"In ${S}$ inline.\n")
    assert res.errors == 0 and res.macros == 6
    assert len(res.diagnostics) == 1 and ":9:5: note: steps are typeset only in display math" \
        in res.diagnostics[0]


def test_latex_delimiters_and_multiline_steps():
    src = ("Text \\matderiv<a, x> here.\n"
           "  \\matderiv[steps]<b, x>\n"
           "\\begin{align}\n  f &= \\matderiv[steps]<c, x>\n\\end{align}\n")
    res = run(src, "tex")
    S = SENTINEL
    assert res.text == (f"Text ${S}$ here.\n"
                        f"  \\[\\begin{{aligned}}\n  d f &= d x \\\\\n  &= R d x \\\\\n  &{S}\n"
                        f"  \\end{{aligned}}\\]\n"
                        f"\\begin{{align}}\n  f &= \\begin{{aligned}}\n  d f &= d x \\\\\n"
                        f"  &= R d x \\\\\n  &{S}\n  \\end{{aligned}}\n\\end{{align}}\n")


def test_a_macro_in_a_latex_definition_works_in_text_and_math():
    # \newcommand{\g}{...} may be used as \g in text and as $\g$ in math: $...$ would break
    # the second, so the body gets \ensuremath (a steps block too)
    src = ("\\newcommand{\\ga}{\\matderiv<a, x>}\n"
           "\\def\\gb{\\matderiv[steps]<b, x>}\n"
           "Text \\ga{} and $f = \\ga$, \\matderiv<c, x>.\n")
    res = run(src, "tex")
    S = SENTINEL
    assert res.text == (f"\\newcommand{{\\ga}}{{\\ensuremath{{{S}}}}}\n"
                        f"\\def\\gb{{\\ensuremath{{\\begin{{aligned}}\nd f &= d x \\\\\n"
                        f"&= R d x \\\\\n&{S}\n\\end{{aligned}}}}}}\n"
                        f"Text \\ga{{}} and $f = \\ga$, ${S}$.\n")
    # in Markdown pandoc expands the command in math, and KaTeX has no \ensuremath: bare math
    res = run("\\newcommand{\\ga}{\\matderiv<a, x>}\n\nText $f = \\ga$.\n", "md")
    assert res.text == f"\\newcommand{{\\ga}}{{{S}}}\n\nText $f = \\ga$.\n"


@pytest.mark.parametrize("math, want", [
    # the result 2 x - a (of x^T x - a^T x) set among other math keeps its meaning
    (r"y = 2\matderiv[show=result]<x^T x - a^T x, x>", r"y = 2\left(2 x - a\right)"),
    (r"y = -\matderiv[show=result]<x^T x - a^T x, x>", r"y = -\left(2 x - a\right)"),
    (r"y = A \matderiv[show=result]<x^T x - a^T x, x>", r"y = A \left(2 x - a\right)"),
    (r"y = \matderiv[show=result]<x^T x - a^T x, x>^\top b", r"y = \left(2 x - a\right)^\top b"),
    (r"y = \matderiv[show=result]<x^T x, x>^\top b", r"y = \left(2 x\right)^\top b"),
    (r"y = 3 \matderiv[show=result]<\tau^2, \tau>", r"y = 3 \left(2 \tau\right)"),
    (r"y = 1 + \matderiv[show=result]<x^T x - a^T x, x> + b", r"y = 1 + 2 x - a + b"),
    (r"y = \matderiv[show=result]<x^T x - a^T x, x>", r"y = 2 x - a"),
    (r"\matderiv<x^T x, x>^2", r"\left(\frac{\partial}{\partial x}\left(x^\top x\right) = 2 x\right)^2"),
    (r"\frac{1}{2}\matderiv[show=result]<x^T A x, x>", r"\frac{1}{2}(A + A^\top) x"),
])
def test_a_macro_among_other_math_is_bracketed_when_it_must_be(math, want):
    r"""``y = 2\matderiv[show=result]<x^T x - a^T x, x>`` was typeset ``y = 22 x - a`` (and a
    minus before it, or a transpose after it, took only one term)."""
    res = process_text("$" + math + "$\n", "md")
    assert res.errors == 0 and res.text == "$" + want + "$\n"


def test_a_macro_in_a_text_group_of_math_gets_its_own_math():
    r"""``$\text{grad: \matderiv<...>}$`` put ``(A + A^\top) x`` in text mode (a LaTeX error, and
    a KaTeX one); it is math inside the text, which KaTeX and texmath render."""
    from renderers import katex_errors, pandoc_errors

    res = process_text("$\\text{grad: \\matderiv[show=result]<x^T A x, x>}$\n", "md")
    assert res.errors == 0
    assert res.text == "$\\text{grad: $(A + A^\\top) x$}$\n"
    formula = res.text.strip()[1:-1]
    assert katex_errors([formula], display=False) == {} and pandoc_errors([formula]) == {}


def test_every_other_byte_is_kept_crlf_and_unicode():
    src = "α\r\n$\\matderiv<a, x>$\r\n% \\matderiv<b, x>\r\n\t\\matderiv<c, x> é\r\n"
    res = run(src, "tex")
    assert res.text == f"α\r\n${SENTINEL}$\r\n% \\matderiv<b, x>\r\n\t${SENTINEL}$ é\r\n"


def test_error_markers_and_diagnostics():
    src = "A\nsee $\\matderiv<x^T \\bad x, x>$ and \\matderiv<(x, x> end\n"
    res = run(src, "md")
    assert res.errors == 2
    assert "{\\color{red}{\\frac{\\partial}{\\partial x}\\left(\\text{x\\textasciicircum{}T " \
           "\\textbackslash{}bad x}\\right)\\;\\text{(matderiv error)}}}" in res.text
    assert "\\bad" not in res.text.replace("\\textbackslash{}bad", "")
    d1, d2 = res.diagnostics
    assert d1.splitlines()[0] == "<input>:2:20: error: unknown command `\\bad`"
    assert d1.splitlines()[2] == "  " + " " * 19 + "^^^^"
    assert d1.splitlines()[3] == "  hint: use a known function"
    assert d2.splitlines()[0].startswith("<input>:2:46: error: no '>' closes")


def test_latex_without_xcolor_gets_uncoloured_markers():
    bad = "$\\matderiv<\\bad, x>$"
    assert "\\color" not in run("\\documentclass{article}\n" + bad, "tex").text
    assert "\\color" in run("\\usepackage[dvipsnames]{xcolor}\n" + bad, "tex").text
    assert "\\color" in run("\\usepackage{amsmath,tikz}\n" + bad, "tex").text


# ------------------------------------------------------------------------------------------
# document options
# ------------------------------------------------------------------------------------------
def test_front_matter_options_and_precedence():
    seen = []

    def spy(expr, wrt, **opts):
        seen.append(opts)
        return Stub(expr, wrt, **opts)

    src = ("---\ntitle: T\nlang: de\nmatderiv:\n  layout: denominator\n  steps: false\n"
           "  symmetric: [A, '\\Sigma']\n---\n\n$\\matderiv<a, x>$ $\\matderiv[layout=mixed]<b, x>$\n")
    assert front_matter_options(src) == {"lang": "de", "layout": "denominator", "steps": False,
                                         "symmetric": ["A", "\\Sigma"]}
    process_text(src, "md", derive_fn=spy)
    assert seen[0] == {"lang": "de", "layout": "denominator", "steps": False,
                       "symmetric": ["A", "\\Sigma"]}
    assert seen[1]["layout"] == "mixed"
    seen.clear()
    process_text(src, "md", {"layout": "numerator", "check": False}, derive_fn=spy)
    assert seen[0]["layout"] == "numerator" and seen[0]["check"] is False  # command line wins
    assert seen[1]["layout"] == "mixed"  # the macro wins over everything


def test_bad_metadata_is_reported_not_raised():
    res = run("---\nmatderiv: [1, 2]\n---\n\n$\\matderiv<a, x>$\n", "md")
    assert res.errors == 1 and "must be a map" in res.diagnostics[0]
    assert SENTINEL in res.text
    res = run("---\nmatderiv:\n  steps: maybe\n---\n\n$\\matderiv<a, x>$\n", "md")
    assert res.errors == 1 and "<input>:2:1: error: in the matderiv metadata" in res.diagnostics[0]
    assert not res.strict
    res = run("---\nmatderiv:\n  steps: maybe\n  strict: true\n---\n\n$\\matderiv<a, x>$\n", "md")
    assert res.errors == 1 and res.strict
    res = run("---\nmatderiv: {a: [\n---\n\n$\\matderiv<a, x>$\n", "md")
    assert res.errors == 1 and "YAML" in res.diagnostics[0]


def test_strict_from_metadata_and_cli(tmp_path, stub, capsys):
    src = tmp_path / "in.md"
    out = tmp_path / "out.md"
    src.write_text("$\\matderiv<\\bad, x>$ $\\matderiv<a, x>$\n", encoding="utf-8")
    assert cli.main([ "process", str(src), "-o", str(out)]) == 0
    assert SENTINEL in out.read_text(encoding="utf-8")
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "in.md:1:12: error: unknown command" in err
    out.unlink()
    assert cli.main(["process", str(src), "-o", str(out), "--strict"]) == 1
    assert out.exists()  # the output is written all the same
    assert "strict mode" in capsys.readouterr().err
    src.write_text("---\nmatderiv:\n  strict: true\n---\n\n$\\matderiv<\\bad, x>$\n",
                   encoding="utf-8")
    assert cli.main(["process", str(src), "-o", str(out)]) == 1
    src.write_text("---\nmatderiv:\n  strict: true\n---\n\n$\\matderiv<a, x>$\n", encoding="utf-8")
    assert cli.main(["process", str(src), "-o", str(out)]) == 0


def test_cli_options_formats_and_io_errors(tmp_path, monkeypatch, capsys):
    seen = []

    def spy(expr, wrt, **opts):
        seen.append(opts)
        return Stub(expr, wrt, **opts)

    monkeypatch.setattr(render, "derive", spy)
    src = tmp_path / "in.txt"
    src.write_text("$\\matderiv<a, x>$", encoding="utf-8")
    assert cli.main(["process", str(src), "--format", "tex", "--layout", "numerator",
                     "--symmetric", "A,B", "--no-check", "--steps"]) == 0
    assert capsys.readouterr().out == f"${SENTINEL}$"
    assert seen == [{"layout": "numerator", "symmetric": ["A", "B"], "check": False,
                     "steps": True}]
    unknown = tmp_path / "in.rst"
    unknown.write_text("x", encoding="utf-8")
    assert cli.main(["process", str(unknown)]) == 1
    assert "--format md" in capsys.readouterr().err
    assert cli.main(["process", str(tmp_path / "missing.md")]) == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------
# property: only processed macros change
# ------------------------------------------------------------------------------------------
EXPRS = ["x^T A x", "f(a, b)", "\\|X w - y\\|^2", "\\left( a, b \\right)", "\\log\\det X",
         "\\{a, b\\}", "\\operatorname{tr}(A X)"]
OPTS = ["", "[layout=numerator]", "[symmetric={A,B}, check=false]", "[name=f]"]

words = st.text(alphabet="abcXYZ ,;:!?(='\"é", min_size=1, max_size=12).map(
    lambda s: s.strip() or "w")


@st.composite
def macros(draw):
    expr = draw(st.sampled_from(EXPRS))
    var = draw(st.sampled_from(["x", "X", "w", "x, x"]))
    return f"\\matderiv{draw(st.sampled_from(OPTS))}<{expr}, {var}>"


@st.composite
def fragments(draw, fmt):
    """(text, processed macros in it as (offset, text)) for one piece of a document."""
    kind = draw(st.sampled_from(
        ["words", "text", "math", "math", "code", "comment"] if fmt == "tex" else
        ["words", "text", "math", "math", "code", "code"]))
    if kind == "words":
        return draw(words), []
    m = draw(macros())
    if kind == "text":
        return m, [m]
    if kind == "math":
        pre, post = draw(st.sampled_from([("$", "$"), ("$$", "$$"), ("\\(", "\\)"),
                                          ("\\[", "\\]"), ("$a + ", " - b$"),
                                          ("\\begin{align*}\n  f &= ", "\n\\end{align*}"),
                                          ("\\begin{equation}\n", "\n\\end{equation}")]))
        return pre + m + post, [m]
    if fmt == "md":
        pre, post = draw(st.sampled_from([("`", "`"), ("`` ", " ``"), ("\n\n```\n", "\n```\n\n"),
                                          ("\n\n~~~ {.tex}\n", "\n~~~\n\n"),
                                          ("\n\n    ", "\n\n"), ("<!-- ", " -->")]))
    else:
        pre, post = draw(st.sampled_from([("% ", "\n"), ("\\verb+", "+"),
                                          ("\n\\begin{verbatim}\n", "\n\\end{verbatim}\n"),
                                          ("\n\\begin{lstlisting}\n", "\n\\end{lstlisting}\n"),
                                          ("\n\\begin{minted}{tex}\n", "\n\\end{minted}\n")]))
    return pre + m + post, []


@st.composite
def documents(draw, fmt):
    """(document, the pattern its output must match in full)."""
    parts = draw(st.lists(fragments(fmt), min_size=1, max_size=12))
    joins = draw(st.lists(st.sampled_from([" ", " ", "\n", "\n\n"]), min_size=len(parts),
                          max_size=len(parts)))
    text, pattern = "", ""
    S = re.escape(SENTINEL)
    for (frag, processed), join in zip(parts, joins):
        if not processed:
            pat = re.escape(frag)
        else:
            m = processed[0]
            pre, _, post = frag.partition(m)
            # a macro written in text gets delimiters, one in math none
            core = (rf"(?:\$\${S}\$\$|\\\[{S}\\\]|\${S}\$)" if frag == m else S)
            pat = re.escape(pre) + core + re.escape(post)
        text += frag + join
        pattern += pat + re.escape(join)
    return text, pattern


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["md", "tex"]).flatmap(lambda f: st.tuples(st.just(f), documents(f))))
def test_only_processed_macros_change(case):
    fmt, (text, pattern) = case
    res = process_text(text, fmt, derive_fn=Stub)
    assert res.errors == 0, res.diagnostics
    assert re.fullmatch(pattern, res.text), (text, res.text)


# ------------------------------------------------------------------------------------------
# goldens with the real engine
# ------------------------------------------------------------------------------------------
def read(path) -> str:
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def check_golden(name: str, got: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MATDERIV_UPDATE_GOLDEN") or not path.exists():
        path.write_text(got, encoding="utf-8", newline="")
        if not os.environ.get("MATDERIV_UPDATE_GOLDEN"):
            pytest.fail(f"{path} was missing and has been written: read it, then commit it")
    assert got == read(path), f"{name} differs from its golden"


@pytest.mark.parametrize("src, golden", [("notes.md", "notes.processed.md"),
                                         ("paper.tex", "paper.processed.tex"),
                                         ("errors.md", "errors.processed.md")])
def test_preprocessor_golden(src, golden, tmp_path, capsys):
    out = tmp_path / golden
    status = cli.main(["process", str(GOLDEN / src), "-o", str(out)])
    err = capsys.readouterr().err
    got = read(out)
    check_golden(golden, got)
    assert "\\matderiv" not in re.sub(r"(?m)%.*$|```.*?```|`[^`\n]*`|\\verb\|[^|]*\|"
                                      r"|\\begin\{verbatim\}.*?\\end\{verbatim\}", "", got,
                                      flags=re.S)
    if src == "errors.md":
        assert status == 0
        lines = [ln for ln in err.splitlines() if ": error: " in ln]
        assert len(lines) == 3, err
        assert "errors.md:7:" in lines[0] and "unknown command `\\foo`" in lines[0]
        assert "errors.md:9:" in lines[1] and "no '>' closes" in lines[1]
        assert "errors.md:11:" in lines[2] and "size clash" in lines[2]
        assert got.count("(matderiv error)") == 3
        assert cli.main(["process", str(GOLDEN / src), "-o", str(out), "--strict"]) == 1
    else:
        assert status == 0 and ": error: " not in err, err


def test_a_variable_that_does_not_occur_gets_a_note(tmp_path, monkeypatch):
    r"""``y_hat`` where the expression has ``\hat{y}``: the derivative is 0 (printed, as SymPy
    and matrixcalculus.org give it), with a note that names the expression's symbols."""
    import numpy as np

    from matderiv import derive

    monkeypatch.setenv("MATDERIV_CACHE_DIR", str(tmp_path))
    src = "A $\\matderiv<y^\\top \\hat{y}, y_hat>$ and $\\matderiv<y^\\top \\hat{y}, \\hat{y}>$.\n"
    res = process_text(src, "md")
    assert res.errors == 0 and len(res.diagnostics) == 1
    assert (":1:4: note: the variable `y_{hat}` does not occur in the expression, so its "
            "derivative is 0 (the expression's symbols: \\hat{y}, y)") in res.diagnostics[0]
    assert "= \\mathbf{0}$ and" in res.text and "= y$." in res.text
    y = np.arange(1.0, 4.0)  # the 0 printed is the derivative's value
    assert not derive(r"y^\top \hat{y}", "y_hat").evaluate(
        {"y": y, "y__hat": y, "y_hat": y}).any()


def test_a_macro_with_comment_lines_inside_is_derived_without_them():
    """The commented-out term is not part of the expression (TeX skips it); the result is the
    derivative of what is left, checked here against finite differences."""
    import numpy as np

    from conftest import fd_gradient
    from matderiv import derive

    src = ("\\begin{equation}\n\\matderiv<x^\\top A x % the quadratic form\n"
           "  % + b^\\top x\n  , x>\n\\end{equation}\n")
    out = process_text(src, "tex").text
    d = derive(r"x^\top A x", "x")
    A, x = np.random.default_rng(2).standard_normal((2, 3, 3))[0], np.arange(3.0)
    np.testing.assert_allclose(d.evaluate({"A": A, "x": x}).ravel(),
                               fd_gradient(lambda v: v @ A @ v, x), rtol=1e-6)
    assert out == ("\\begin{equation}\n\\frac{\\partial}{\\partial x}\\left(x^\\top A x\\right) = "
                   + d.latex + "\n\\end{equation}\n")
