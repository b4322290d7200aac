r"""The pandoc JSON filter (matderiv.pandoc_filter): unit tests on panflute documents with a stub
engine, then goldens through a real pandoc subprocess (the pandoc of pypandoc-binary) with the
real engine: md -> html (MathML), md -> latex, md -> gfm, md -> docx with --fail-if-warnings,
latex+raw_tex -> latex, and the error cases.  Goldens live in tests/golden/ and were read by a
person; regenerate with MATDERIV_UPDATE_GOLDEN=1 and read the diff before committing."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import panflute as pf
import pytest

from matderiv.errors import MatDerivError
from matderiv.pandoc_filter import filter_doc, filter_json, run_filter

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
sys.path.insert(0, str(ROOT / "tests"))
from renderers import pandoc_path  # noqa: E402


class Stub:
    calls = 0

    def __init__(self, expr, wrt, **opts):
        Stub.calls += 1
        if "\\bad" in expr:
            raise MatDerivError("unknown command `\\bad`", position=expr.index("\\bad"),
                                hint="use a known function")
        w = wrt if isinstance(wrt, str) else wrt[0]
        tag = "".join(ch for ch in expr if ch.isalnum())[:6]
        self.latex = f"R_{{{tag}}}"
        self.equation = f"\\frac{{\\partial}}{{\\partial {w}}} = R_{{{tag}}}"
        self.steps = ["d f = d x", "= R d x"] if opts.get("steps") else []
        self.opts = opts
        self.kind = "gradient"


def run_doc(doc, **kw):
    err = io.StringIO()
    status = filter_doc(doc, derive_fn=Stub, stderr=err)
    return status, [ln for ln in err.getvalue().splitlines() if ln]


def tex(s):
    return pf.RawInline(s, format="tex")


def words(s):
    """Inline elements as pandoc's Markdown reader makes them from plain words."""
    out = []
    for k, w in enumerate(s.split(" ")):
        if k:
            out.append(pf.Space())
        out.append(pf.Str(w))
    return out


# ------------------------------------------------------------------------------------------
# Math elements
# ------------------------------------------------------------------------------------------
def test_math_only_the_macro_is_replaced():
    m1 = pf.Math(r"\nabla f = \matderiv[show=result]<x^T A x, x> + c", format="InlineMath")
    m2 = pf.Math(r"\matderiv<a, x> + \matderiv<b, y> % \matderiv<c, z>", format="DisplayMath")
    status, err = run_doc(pf.Doc(pf.Para(pf.Str("a"), m1), pf.Para(m2)))
    assert status == 0 and err == []
    assert m1.text == r"\nabla f = R_{xTAx} + c" and m1.format == "InlineMath"
    assert m2.text == (r"\frac{\partial}{\partial x} = R_{a} + \frac{\partial}{\partial y} = R_{b}"
                       r" % \matderiv<c, z>")


def test_steps_in_display_math_and_dropped_in_inline_math():
    d = pf.Math(r"\matderiv[steps]<x, x>", format="DisplayMath")
    i = pf.Math(r"\matderiv[steps]<x, x>", format="InlineMath")
    status, err = run_doc(pf.Doc(pf.Para(d, i)))
    assert d.text == ("\\begin{aligned}\nd f &= d x \\\\\n&= R d x \\\\\n"
                      "\\frac{\\partial}{\\partial x} &= R_{x}\n\\end{aligned}")
    assert i.text == r"\frac{\partial}{\partial x} = R_{x}"
    assert err == ["pandoc-matderiv: macro #2 \\matderiv[steps]<x, x>: note: steps are typeset "
                   "only in display math; this macro is in inline math, so only the result is shown"]


def test_error_in_math_is_marked_and_reported_once():
    m = pf.Math(r"y = \matderiv<x^T \bad x, x>", format="InlineMath")
    status, err = run_doc(pf.Doc(pf.Para(m)))
    assert status == 0
    assert m.text.startswith(r"y = {\color{red}{\frac{\partial}{\partial x}\left(")
    assert r"\textbackslash{}bad" in m.text
    assert err == ["pandoc-matderiv: macro #1 \\matderiv<x^T \\bad x, x>: error: unknown command "
                   "`\\bad`; hint: use a known function"]


# ------------------------------------------------------------------------------------------
# running text
# ------------------------------------------------------------------------------------------
def test_running_text_pieces_are_reassembled_into_inline_math():
    para = pf.Para(*words("see"), pf.Space(), tex("\\matderiv"), pf.Str("<"), tex("\\log"),
                   tex("\\det "), pf.Str("X,"), pf.Space(), pf.Str("X>."), pf.Space(),
                   pf.Str("end"))
    status, err = run_doc(pf.Doc(para))
    assert err == []
    kinds = [type(x).__name__ for x in para.content]
    assert kinds == ["Str", "Space", "Math", "Str", "Space", "Str"]
    math = para.content[2]
    assert math.format == "InlineMath" and math.text == r"\frac{\partial}{\partial X} = R_{logdet}"
    assert para.content[3].text == "."


def test_running_text_alone_on_its_line_or_with_steps_is_display_math():
    alone = pf.Para(tex("\\matderiv<a, x>"))
    line = pf.Para(*words("intro"), pf.SoftBreak(), tex("\\matderiv"), pf.Str("<b,"),
                   pf.Space(), pf.Str("x>"), pf.SoftBreak(), *words("after"))
    steps = pf.Para(*words("a"), pf.Space(), tex("\\matderiv[steps]"), pf.Str("<c,"), pf.Space(),
                    pf.Str("x>"), pf.Space(), pf.Str("b"))
    header = pf.Header(tex("\\matderiv<d, x>"), level=2)
    run_doc(pf.Doc(alone, line, steps, header))
    assert alone.content[0].format == "DisplayMath"
    assert [type(x).__name__ for x in line.content] == ["Str", "SoftBreak", "Math", "SoftBreak",
                                                         "Str"]
    assert line.content[2].format == "DisplayMath"
    assert steps.content[2].format == "DisplayMath"
    assert steps.content[2].text.startswith("\\begin{aligned}")
    assert header.content[0].format == "InlineMath"  # not a paragraph: stays inline


@pytest.mark.parametrize("pieces, why", [
    # \matderiv<x^T\Sigma^{-1}x, x>: pandoc's ^...^ superscript
    ([tex("\\matderiv"), pf.Str("<x"), pf.Superscript(pf.Str("T"), tex("\\Sigma")),
      pf.Str("{-1}x,"), pf.Space(), pf.Str("x>")], "superscript"),
    # \matderiv<a*b*c, x>: emphasis
    ([tex("\\matderiv"), pf.Str("<a"), pf.Emph(pf.Str("b")), pf.Str("c,"), pf.Space(),
      pf.Str("x>")], "emphasis"),
    # \matderiv<\|x\|^2, x>: \| lost its backslash
    ([tex("\\matderiv"), pf.Str("<|x|^2,"), pf.Space(), pf.Str("x>")], "lost its backslash"),
    # \matderiv<x' A x, x>: smart quote
    ([tex("\\matderiv"), pf.Str("<x\u2019"), pf.Space(), pf.Str("A"), pf.Space(), pf.Str("x,"),
      pf.Space(), pf.Str("x>")], "typographic"),
])
def test_damaged_macros_are_left_as_text_with_one_warning(pieces, why):
    Stub.calls = 0
    para = pf.Para(pf.Str("A"), pf.Space(), *pieces, pf.Space(), pf.Str("end."))
    doc = pf.Doc(para, metadata={"matderiv": {"strict": True}})
    status, err = run_doc(doc)
    assert Stub.calls == 0  # nothing computed from altered text
    assert status == 1  # strict: a damaged macro is an error
    assert len(err) == 2 and why in err[0] and "put it inside $...$" in err[0]
    assert err[0].startswith("pandoc-matderiv: macro #1 \\matderiv")
    assert not any(isinstance(x, pf.Math) for x in para.content)
    # the TeX pieces became visible text, so no raw \matderiv (or \Sigma) reaches LaTeX
    assert not any(isinstance(e, pf.RawInline) for e in _all(para))
    assert pf.stringify(para).startswith("A \\matderiv<")


def _all(elem):
    found = []
    elem.walk(lambda e, d: found.append(e))
    return found


def test_latex_reader_bars_are_intact():
    para = pf.Para(pf.RawInline("\\matderiv", format="latex"), pf.Str("<|X|,"), pf.Space(),
                   pf.Str("X>"))
    status, err = run_doc(pf.Doc(para))
    assert err == [] and isinstance(para.content[0], pf.Math)


def test_macros_in_nested_inlines_tables_and_notes():
    emph = pf.Emph(*words("in"), pf.Space(), tex("\\matderiv<a, x>"))
    note = pf.Note(pf.Para(pf.Math("\\matderiv<b, x>", format="InlineMath")))
    link = pf.Link(pf.Math("\\matderiv<c, x>", format="InlineMath"), url="http://example.org")
    cell = pf.TableCell(pf.Plain(pf.Math("\\matderiv<d, x>", format="InlineMath")))
    table = pf.Table(pf.TableBody(pf.TableRow(cell)))
    dl = pf.DefinitionList(pf.DefinitionItem([pf.Math("\\matderiv<e, x>", format="InlineMath")],
                                             [pf.Definition(pf.Para(pf.Str("x")))]))
    doc = pf.Doc(pf.Para(emph, note, link), table, dl)
    status, err = run_doc(doc)
    texts = [e.text for e in _all(doc) if isinstance(e, pf.Math)]
    assert sorted(texts) == sorted(f"\\frac{{\\partial}}{{\\partial x}} = R_{{{c}}}"
                                   for c in "abcde")


# ------------------------------------------------------------------------------------------
# raw TeX
# ------------------------------------------------------------------------------------------
def test_raw_tex_environments_and_blocks():
    env = tex("\\begin{align}\nf &= \\matderiv<a, x> \\\\ % \\matderiv<no, x>\n\\end{align}")
    inline_env = tex("see $\\matderiv<e, x>$")
    block = pf.RawBlock("\\matderiv<b, x>\n", format="latex")
    mixed = pf.RawBlock("\\begin{center}\n\\matderiv<c, x>\n\\end{center}", format="latex")
    env_block = pf.RawBlock("\\begin{equation*}\n\\matderiv<f, x>\n\\end{equation*}\n",
                            format="tex")
    untouched = pf.RawBlock("\\begin{align}\nf &= 1\n\\end{align}", format="tex")
    other = pf.RawBlock("<p>\\matderiv<d, x></p>", format="html")
    para = pf.Para(env, pf.Space(), inline_env)
    doc = pf.Doc(para, block, mixed, env_block, untouched, other)
    status, err = run_doc(doc)
    assert err == []
    # a whole math environment becomes display math (docx, odt and gfm drop raw TeX)
    assert isinstance(para.content[0], pf.Math) and para.content[0].format == "DisplayMath"
    assert para.content[0].text == ("\\begin{align}\nf &= \\frac{\\partial}{\\partial x} = R_{a} "
                                    "\\\\ % \\matderiv<no, x>\n\\end{align}")
    assert para.content[2].text == "see $\\frac{\\partial}{\\partial x} = R_{e}$"
    assert isinstance(para.content[2], pf.RawInline)
    assert isinstance(doc.content[1], pf.Para)
    assert doc.content[1].content[0].format == "DisplayMath"
    assert doc.content[2].text == ("\\begin{center}\n\\[\\frac{\\partial}{\\partial x} = R_{c}\\]"
                                   "\n\\end{center}")
    assert doc.content[3].content[0].text == ("\\begin{equation*}\n\\frac{\\partial}{\\partial x} "
                                              "= R_{f}\n\\end{equation*}")
    assert doc.content[4] is untouched and isinstance(untouched, pf.RawBlock)  # no macro: as is
    assert doc.content[5].text == "<p>\\matderiv<d, x></p>"  # not TeX: not ours


# ------------------------------------------------------------------------------------------
# options, strict mode, JSON
# ------------------------------------------------------------------------------------------
def test_metadata_options_lang_and_precedence():
    seen = []

    def spy(expr, wrt, **opts):
        seen.append(opts)
        return Stub(expr, wrt, **opts)

    meta = {"lang": pf.MetaInlines(pf.Str("de")),
            "matderiv": pf.MetaMap(
                layout=pf.MetaInlines(pf.Str("denominator")),
                check=pf.MetaBool(False),
                symmetric=pf.MetaList(pf.MetaInlines(pf.Str("A")),
                                      pf.MetaInlines(tex("\\Sigma"))),
                scalar=pf.MetaInlines(pf.Str("{a,"), tex("\\lambda"), pf.Str("}")))}
    doc = pf.Doc(pf.Para(pf.Math("\\matderiv<a, x>", format="InlineMath"),
                         pf.Math("\\matderiv[layout=mixed, scalar={t}]<b, x>",
                                 format="InlineMath")), metadata=meta)
    assert filter_doc(doc, derive_fn=spy, stderr=io.StringIO()) == 0
    assert seen[0] == {"lang": "de", "layout": "denominator", "check": False,
                       "symmetric": ["A", "\\Sigma"], "scalar": ["a", "\\lambda"]}
    assert seen[1]["layout"] == "mixed" and seen[1]["scalar"] == ["t"]


def test_bad_metadata_is_one_line_and_not_fatal():
    doc = pf.Doc(pf.Para(pf.Math("\\matderiv<a, x>", format="InlineMath")),
                 metadata={"matderiv": pf.MetaMap(steps=pf.MetaInlines(pf.Str("maybe")))})
    status, err = run_doc(doc)
    assert status == 0 and len(err) == 1 and err[0].startswith("pandoc-matderiv: metadata: error:")
    doc.metadata["matderiv"].content["strict"] = pf.MetaBool(True)
    status, err = run_doc(doc)
    assert status == 1 and len(err) == 2  # the option error, then the strict-mode line


def test_fast_path_and_internal_errors():
    plain = '{"not": "parsed at all"'  # invalid JSON, but without the magic word
    assert filter_json(plain, derive_fn=Stub) == (plain, 0)
    out, err = io.BytesIO(), io.StringIO()
    broken = b'{"blocks": [{"t": "Nonsense", "c": "matderiv"}]'
    status = run_filter(io.BytesIO(broken), out, err, derive_fn=Stub)
    assert status == 1 and out.getvalue() == broken
    assert err.getvalue().count("\n") == 1 and "internal error" in err.getvalue()
    assert "Traceback" not in err.getvalue()


# ------------------------------------------------------------------------------------------
# through pandoc
# ------------------------------------------------------------------------------------------
def filter_command(tmp_path, stub=False) -> str:
    exe = Path(sys.executable).parent / "pandoc-matderiv"
    if exe.exists() and not stub:
        return str(exe)
    script = tmp_path / ("stub-filter" if stub else "real-filter")
    body = ["import sys", "sys.path.insert(0, %r)" % str(ROOT / "tests")]
    if stub:
        body += ["from test_pandoc_filter import Stub", "from matderiv import render",
                 "render.derive = Stub"]
    body += ["from matderiv.pandoc_filter import main", "sys.exit(main())"]
    script.write_text(f"#!{sys.executable}\n" + "\n".join(body) + "\n", encoding="utf-8")
    script.chmod(0o755)
    return str(script)


def pandoc(args, input_text=None, cwd=None):
    proc = subprocess.run([pandoc_path(), *args], input=input_text, capture_output=True,
                          text=True, encoding="utf-8", cwd=cwd, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def read(path) -> str:
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def check_golden(name: str, got: str) -> None:
    path = GOLDEN / name
    if os.environ.get("MATDERIV_UPDATE_GOLDEN") or not path.exists():
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(got)
        if not os.environ.get("MATDERIV_UPDATE_GOLDEN"):
            pytest.fail(f"{path} was missing and has been written: read it, then commit it")
    assert got == read(path), f"{name} differs from its golden"


def docx_xml(path: Path) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read("word/document.xml").decode("utf-8")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """All real-engine pandoc runs at once, two at a time (they are independent)."""
    tmp = tmp_path_factory.mktemp("pandoc")
    flt = filter_command(tmp)
    strict_md = tmp / "strict.md"
    strict_md.write_text("---\nmatderiv:\n  strict: true\n---\n\n" + read(GOLDEN / "errors.md")
                         .split("---\n", 2)[2], encoding="utf-8")
    jobs = {
        "notes.html": ["notes.md", "--filter", flt, "-t", "html", "--mathml"],
        "notes.latex": ["notes.md", "--filter", flt, "-t", "latex"],
        "notes.gfm.md": ["notes.md", "--filter", flt, "-t", "gfm"],
        "notes.docx": ["notes.md", "--filter", flt, "-t", "docx", "--fail-if-warnings",
                       "-o", str(tmp / "notes.docx")],
        "paper.latex": ["-f", "latex+raw_tex", "paper.tex", "--filter", flt, "-t", "latex"],
        "errors.html": ["errors.md", "--filter", flt, "-t", "html", "--mathml"],
        "errors.docx": ["errors.md", "--filter", flt, "-t", "docx", "--fail-if-warnings",
                        "-o", str(tmp / "errors.docx")],
        "strict": [str(strict_md), "--filter", flt, "-t", "html", "-o", str(tmp / "s.html")],
        "nomacro": ["-f", "markdown", "-t", "html", "--filter", flt],
    }
    with ThreadPoolExecutor(max_workers=2) as ex:
        futs = {k: ex.submit(pandoc, v, "plain *text*\n" if k == "nomacro" else None, GOLDEN)
                for k, v in jobs.items()}
        out = {k: f.result() for k, f in futs.items()}
    out["tmp"] = tmp
    return out


@pytest.mark.parametrize("name", ["notes.html", "notes.latex", "notes.gfm.md", "paper.latex"])
def test_golden_through_pandoc(runs, name):
    code, stdout, stderr = runs[name]
    assert code == 0 and stderr == "", stderr
    check_golden(name, stdout)
    # what is left of \matderiv is the code of the source: a code span and a code block (in
    # paper.tex: a comment, dropped by pandoc, and \verb and verbatim)
    assert stdout.count("matderiv") == 2


def test_docx_without_warnings(runs):
    code, _, stderr = runs["notes.docx"]
    assert code == 0 and stderr == "", stderr
    xml = docx_xml(runs["tmp"] / "notes.docx")
    assert xml.count("<m:oMath>") + xml.count("<m:oMathPara>") >= 9
    assert xml.count("matderiv") == 2  # the code span and the code block


def test_errors_leave_the_document_building(runs):
    code, html, stderr = runs["errors.html"]
    assert code == 0
    lines = stderr.splitlines()
    assert len(lines) == 4, stderr
    assert "macro #1" in lines[0] and "unknown command `\\foo`" in lines[0]
    assert "macro #2" in lines[1] and "no '>' closes" in lines[1]
    assert "macro #3" in lines[2] and "size clash" in lines[2]
    assert "macro #5" in lines[3] and "superscript" in lines[3] and "$...$" in lines[3]
    check_golden("errors.html", html)
    assert html.count(">(matderiv error)</mtext>") == 3  # visible even without colour
    code, _, stderr = runs["errors.docx"]
    assert code == 0 and len(stderr.splitlines()) == 4, stderr  # texmath: no warning
    assert "(matderiv error)" in docx_xml(runs["tmp"] / "errors.docx")


def test_strict_mode_fails_the_build(runs):
    code, _, stderr = runs["strict"]
    assert code != 0
    assert "failing because of strict mode" in stderr
    assert "Traceback" not in stderr


def test_document_without_macros_is_untouched(runs):
    code, html, stderr = runs["nomacro"]
    assert (code, html, stderr) == (0, "<p>plain <em>text</em></p>\n", "")


def test_a_macro_among_other_math_through_pandoc(tmp_path):
    """In a pandoc Math element too, a result that a neighbour would split is bracketed."""
    src = tmp_path / "ctx.md"
    src.write_text("$y = 2\\matderiv[show=result]<x^T x - a^T x, x>$\n", encoding="utf-8")
    code, out, err = pandoc([str(src), "--filter", filter_command(tmp_path), "-t", "latex"])
    assert code == 0 and err == ""
    assert out.strip() == r"\(y = 2\left(2 x - a\right)\)"


def test_steps_through_pandoc_render_without_warnings(tmp_path):
    flt = filter_command(tmp_path, stub=True)
    src = tmp_path / "steps.md"
    src.write_text("Text \\matderiv[steps]<x^T A x, x> here.\n\n$$f = \\matderiv[steps]<a, x>$$\n\n"
                   "\\begin{align}\ng &= \\matderiv[steps]<b, x>\n\\end{align}\n", encoding="utf-8")
    jobs = [["-t", "docx", "--fail-if-warnings", "-o", str(tmp_path / "s.docx")],
            ["-t", "html", "--mathml", "--fail-if-warnings"], ["-t", "latex"]]
    with ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(lambda a: pandoc([str(src), "--filter", flt, *a]), jobs))
    for code, _, stderr in results:
        assert code == 0 and stderr == "", stderr
    latex = results[2][1]
    assert latex.count("\\begin{aligned}") == 3
    assert "\\[\\begin{aligned}" in latex  # running text with steps: display math
