r"""The bundled examples (examples/) build through the real tools, as `make demo` builds them.

- every examples/*.md through pandoc with the pandoc-matderiv filter: to standalone HTML with
  MathML (the demo's flags) and to docx with --fail-if-warnings; exit 0, and no matderiv error
  on stderr. The stderr of our own examples is empty. Only the checking-a-paper* examples may
  report wrong claims there, because checking published claims is what they show;
- every examples/*.md through `matderiv process`, with the same conditions;
- examples/*.tex through `matderiv process` and then pdflatex (twice, halting on the first error)
  into a PDF. TeX Live is installed by `make texlive` when pdflatex is missing (`make test` depends
  on that target already);
- what the lecture notes promise: every derivative in their tables is a macro, every quoted
  formula (`expect=`) holds, the published formulas marked as errata are still judged wrong, and
  the worked examples carry their steps. The Chinese example annotates its steps in Chinese.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(ROOT / "tests"))
from renderers import pandoc_path  # noqa: E402

MD = sorted(EXAMPLES.glob("*.md"))
TEX = sorted(EXAMPLES.glob("*.tex"))
# the same reader and writer options as the Makefile's demo target
PANDOC_HTML = ["-f", "markdown+east_asian_line_breaks", "-s", "--mathml", "--toc", "-N",
               "-V", "maxwidth=60em"]
BIN = Path(sys.executable).parent


def claims_examples(path: Path) -> bool:
    """Examples whose subject is checking published claims: their wrong claims are reported on
    stderr on purpose (another engineer's examples, checking-a-paper*.md)."""
    return path.name.startswith("checking-a-paper")


def run(cmd, cwd=None, input_text=None, timeout=180):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          encoding="utf-8", cwd=cwd, input=input_text, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def matderiv_cmd() -> list:
    exe = BIN / "matderiv"
    if exe.exists():
        return [exe]
    return [sys.executable, "-c", "import sys; from matderiv.cli import main; sys.exit(main())"]


def filter_cmd() -> str:
    exe = BIN / "pandoc-matderiv"
    assert exe.exists(), f"{exe} missing: run `make install`"
    return str(exe)


def stderr_problems(path: Path, stderr: str) -> list[str]:
    """The lines of stderr that are not allowed for this example."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if not claims_examples(path):
        return lines
    # a wrong claim is reported as "...: wrong: ..." (filter) or "file:l:c: wrong: ..." followed
    # by the source excerpt and "claimed: ...; computed: ..." (process); anything else is not ok
    bad = [ln for ln in lines if re.search(r"\berror\b|\[WARNING\]|Traceback", ln)]
    return bad


@pytest.fixture(scope="module")
def pandoc_runs(tmp_path_factory):
    """Every .md to HTML and to docx, in parallel: {(name, fmt): (code, out_path, stderr)}."""
    out = tmp_path_factory.mktemp("pandoc")
    flt = filter_cmd()
    jobs = {}
    for md in MD:
        jobs[(md.name, "html")] = [*PANDOC_HTML, "--filter", flt, md,
                                   "-o", out / (md.stem + ".html")]
        jobs[(md.name, "docx")] = ["--fail-if-warnings", "--filter", flt, md,
                                   "-o", out / (md.stem + ".docx")]
    pandoc = pandoc_path()
    with ThreadPoolExecutor(max_workers=4) as ex:
        futs = {k: ex.submit(run, [pandoc, *args], ROOT) for k, args in jobs.items()}
        return {k: (f.result()[0], Path(jobs[k][-1]), f.result()[2]) for k, f in futs.items()}


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    """Every .md and .tex through `matderiv process`: {name: (code, text, stderr)}."""
    out = tmp_path_factory.mktemp("process")
    res = {}
    for src in MD + TEX:
        dst = out / src.name
        code, _, err = run([*matderiv_cmd(), "process", src, "-o", dst], ROOT)
        res[src.name] = (code, dst.read_text(encoding="utf-8") if dst.exists() else "", err)
    return res


def test_there_are_examples():
    names = {p.name for p in MD + TEX}
    assert {"lecture-notes.md", "ml-gradients.md", "paper.tex"} <= names


@pytest.mark.parametrize("md", MD, ids=lambda p: p.name)
def test_markdown_to_html_through_the_filter(pandoc_runs, md):
    code, path, stderr = pandoc_runs[(md.name, "html")]
    assert code == 0, stderr
    assert stderr_problems(md, stderr) == [], stderr
    html = path.read_text(encoding="utf-8")
    assert "matderiv error" not in html
    assert html.count("<math") >= 5
    # every formula became MathML: texmath leaves what it cannot convert as raw TeX in a
    # <span class="math">, and pandoc warns about it (checked above); no $ of unparsed math
    assert not re.search(r'class="math (inline|display)">[^<]*\\', html)
    # no macro survived outside code (inline code is <code>...</code>)
    text_outside_code = re.sub(r"<code>.*?</code>", "", html, flags=re.S)
    assert "\\matderiv" not in text_outside_code


@pytest.mark.parametrize("md", MD, ids=lambda p: p.name)
def test_markdown_to_docx_fails_on_no_warning(pandoc_runs, md):
    code, path, stderr = pandoc_runs[(md.name, "docx")]
    assert code == 0, stderr
    assert stderr_problems(md, stderr) == [], stderr
    assert path.stat().st_size > 5000


@pytest.mark.parametrize("md", MD, ids=lambda p: p.name)
def test_markdown_through_matderiv_process(processed, md):
    code, text, stderr = processed[md.name]
    assert code == 0, stderr
    assert stderr_problems(md, stderr) == [], stderr
    assert "matderiv error" not in text
    # outside inline code, no macro is left
    assert "\\matderiv[" not in re.sub(r"`[^`]*`", "", text)
    assert "\\matderiv<" not in re.sub(r"`[^`]*`", "", text)


# ------------------------------------------------------------------------------------------
# LaTeX: matderiv process, then pdflatex
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pdflatex():
    exe = shutil.which("pdflatex")
    if exe is None:
        # the same step as `make texlive` (a prerequisite of `make test`), for a bare pytest run
        code, out, err = run(["make", "-s", "texlive"], ROOT, timeout=1800)
        assert code == 0, out + err
        exe = shutil.which("pdflatex")
    assert exe, "pdflatex is missing and `make texlive` could not install it"
    return exe


@pytest.mark.parametrize("tex", TEX, ids=lambda p: p.name)
def test_latex_example_compiles_to_pdf(processed, pdflatex, tmp_path, tex):
    code, text, stderr = processed[tex.name]
    assert code == 0 and stderr == "", stderr
    assert "matderiv error" not in text
    # macros remain only in comments and \verb
    for line in text.splitlines():
        code_part = re.sub(r"\\verb\|[^|]*\||(?<!\\)%.*", "", line)
        assert "\\matderiv" not in code_part, line
    (tmp_path / tex.name).write_text(text, encoding="utf-8")
    for _ in range(2):   # the second pass resolves \eqref
        code, out, err = run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", tex.name],
                             tmp_path, timeout=300)
        assert code == 0, out[-3000:]
    pdf = tmp_path / (tex.stem + ".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    log = (tmp_path / (tex.stem + ".log")).read_text(encoding="latin-1")
    assert "undefined" not in log.lower(), [ln for ln in log.splitlines() if "ndefined" in ln]
    assert "Overfull \\hbox" not in log, [ln for ln in log.splitlines() if "Overfull" in ln]


def test_paper_uses_the_macro_in_and_out_of_math():
    src = (EXAMPLES / "paper.tex").read_text(encoding="utf-8")
    body = src[src.index("\\begin{document}"):]
    assert re.search(r"\\begin\{equation\}[^$]*?\\matderiv", body, re.S)
    assert re.search(r"\\begin\{align\}[^$]*?\\matderiv", body, re.S)
    assert re.search(r"\\\[\s*\\matderiv\[steps", body)
    # and in running text: with comments, \verb, environments and $...$ removed, one is left
    text = re.sub(r"\\verb\|[^|]*\||(?<!\\)%[^\n]*", "", body)
    text = re.sub(r"\\begin\{(equation|align)\}.*?\\end\{\1\}|\\\[.*?\\\]|\$[^$]*\$", "",
                  text, flags=re.S)
    assert "\\matderiv" in text


# ------------------------------------------------------------------------------------------
# What the lecture notes promise
# ------------------------------------------------------------------------------------------
LECTURE = EXAMPLES / "lecture-notes.md"


def table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if line.startswith("| $") or line.startswith("| `"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            rows.append(cells)
    return rows


def test_lecture_note_tables_are_computed():
    rows = table_rows(LECTURE.read_text(encoding="utf-8"))
    assert len(rows) >= 60
    for cells in rows:
        derivative = cells[2] if cells[0].startswith("`") else cells[1]
        assert re.fullmatch(r"\$\\matderiv\[[^\]]*show=result[^\]]*\]<.*>\$", derivative), cells


def test_lecture_note_claims_all_hold(processed):
    src = LECTURE.read_text(encoding="utf-8")
    _, text, _ = processed[LECTURE.name]
    claims = src.count("expect={")
    assert claims >= 50
    assert text.count("{\\checkmark}}") == claims
    assert "\\times}}" not in text


ERRATA = [  # (published formula, expression) as quoted in the lecture notes' errata rows
    (r"X^\top (A + A^\top)", r"\operatorname{tr}(X^\top A X), X"),
    (r"(A + A^\top) X", r"\operatorname{tr}(A X^\top X), X"),
    (r"\det(A X B) X^{-\top}", r"\det(A X B), X"),
    (r"X^{-\top}", r"\ln\det(A X B), X"),
    (r"\det(X^\top C X) (C + C^\top) X (X^\top C X)^{-1}", r"\det(X^\top C X), X"),
]


def test_errata_of_the_lecture_notes_are_still_wrong():
    src = LECTURE.read_text(encoding="utf-8")
    assert src.count("| **Erratum") == len(ERRATA)
    for _, expr in ERRATA:
        assert f"]<{expr}>$ | **Erratum" in src, expr
    doc = "\n\n".join(f"$\\matderiv[expect={{{claim}}}]<{expr}>$" for claim, expr in ERRATA)
    code, out, err = run([*matderiv_cmd(), "process", "-", "--format", "md"], ROOT, doc)
    assert code == 0
    assert out.count("\\times}}") == len(ERRATA), out
    assert err.count(": wrong: ") == len(ERRATA), err


def test_lecture_notes_worked_examples_have_steps(processed):
    src = LECTURE.read_text(encoding="utf-8")
    for macro in (r"\matderiv[steps]<a^\top X b, X>", r"\matderiv[steps]<a^\top \exp(X b), X>",
                  r"\matderiv[steps]<A X B, X>", r"\matderiv[steps]<X^{-1}, X>",
                  r"\matderiv[steps]<\log|X|, X, X>"):
        assert f"$${macro}$$" in src, macro
    _, text, _ = processed[LECTURE.name]
    assert text.count("\\begin{aligned}") == 6
    assert "trace trick" in text and "identify the derivative" in text


def test_chinese_example_annotates_steps_in_chinese(processed):
    _, text, _ = processed["ml-gradients.md"]
    assert text.count("\\begin{aligned}") >= 6
    assert "对照定义得导数" in text and "迹技巧" in text
    assert "identify the derivative" not in text
    if "ml-gradients.en.md" in processed:
        en = processed["ml-gradients.en.md"][1]
        assert "identify the derivative" in en and "对照定义得导数" not in en
