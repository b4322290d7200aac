r"""``matderiv check`` (SPEC 3) and wrong claims in ``matderiv process`` and the pandoc filter
(SPEC 1.5): the example paper (examples/checking-a-paper.md) reports exactly its wrong claims with
the right diagnoses and exits 1, its fixed version exits 0, the JSON report, a LaTeX source
(comments and verbatim skipped as in ``process``), document options, unreadable files, the
``wrong:`` warnings of process and filter and strict mode failing the build.  The real engine
throughout; a few subprocess runs, the rest in-process."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import panflute as pf

from matderiv import cli
from matderiv.check import check_text, summary
from matderiv.pandoc_filter import filter_doc

ROOT = Path(__file__).resolve().parent.parent
PAPER = "examples/checking-a-paper.md"
FIXED = "examples/checking-a-paper-fixed.md"

# the wrong claims of the example, in document order: (claim, message)
PAPER_WRONG = [
    ("X^T (A + A^T)", "the claim is the transpose of the computed result: this is the numerator-layout result; this document uses mixed layout"),
    ("(A + A^T) X", r"the claim is wrong (it is only defined when X is square); the correct result is X (A + A^\top)"),
    (r"\det(X^T C X) (C + C^T) X (X^T C X)^{-1}", "holds only when C is symmetric"),
    (r"\det(A X B) X^{-T}", "holds only when A and B are square"),
    ("X^{-T} A^T X^{-T}", "the claim has the wrong sign"),
    ("X^T (X w - y)", "the claim is half the correct result"),
]


def matderiv(*args, cwd=ROOT):
    exe = Path(sys.executable).parent / "matderiv"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "matderiv.cli"]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, encoding="utf-8",
                          cwd=cwd, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def where(path: str, needle: str) -> str:
    """``path:line:col`` of the first occurrence of ``needle`` in the file (outside the code
    block that shows the output)."""
    text = (ROOT / path).read_text(encoding="utf-8")
    off = text.index(needle)
    line = text.count("\n", 0, off) + 1
    col = off - (text.rfind("\n", 0, off) + 1) + 1
    return f"{path}:{line}:{col}"


# ------------------------------------------------------------------------------------------
# the example paper
# ------------------------------------------------------------------------------------------
def test_check_reports_exactly_the_wrong_claims_of_the_example():
    code, out, err = matderiv("check", PAPER)
    assert code == 1 and err == ""
    lines = out.splitlines()
    heads = [ln for ln in lines if not ln.startswith("  ")]
    assert heads[-1] == "checked 15 macros in 1 file: 9 ok, 6 wrong, 0 errors"
    expected = [f"{where(PAPER, 'expect={' + claim + '}')}: wrong: {msg}"
                for claim, msg in PAPER_WRONG]
    assert heads[:-1] == expected
    details = [ln.strip() for ln in lines if ln.startswith("  ")]
    assert len(details) == len(PAPER_WRONG)
    for (claim, _), d in zip(PAPER_WRONG, details):
        assert d.startswith(f"claimed: {claim}; computed: ")
    # the output shown in the example is the real one
    shown = (ROOT / PAPER).read_text(encoding="utf-8")
    assert "$ matderiv check " + PAPER + "\n" + out + "```" in shown


def test_fixed_example_passes():
    code, out, err = matderiv("check", FIXED)
    assert (code, out, err) == (0, "checked 15 macros in 1 file: 15 ok, 0 wrong, 0 errors\n", "")
    assert out in (ROOT / FIXED).read_text(encoding="utf-8")


def test_json_report(capsys):
    code = cli.main(["check", "--json", str(ROOT / FIXED), str(ROOT / PAPER)])
    cap = capsys.readouterr()
    assert code == 1
    items = json.loads(cap.out)
    assert cap.err.strip() == "checked 30 macros in 2 files: 24 ok, 6 wrong, 0 errors"
    assert len(items) == 30
    for it in items:
        assert {"file", "line", "column", "status", "message", "macro"} <= set(it)
        assert it["status"] in ("ok", "wrong") and isinstance(it["line"], int)
        assert it["macro"].startswith("\\matderiv[") and "claim" in it and "computed" in it
    wrong = [it for it in items if it["status"] == "wrong"]
    assert all(it["file"] == str(ROOT / PAPER) for it in wrong)
    assert [(it["claim"], it["message"]) for it in wrong] == PAPER_WRONG
    assert [it["diagnosis"] for it in wrong] == ["transpose", "wrong", "symmetric", "square",
                                                 "factor", "factor"]
    assert wrong[1]["computed"] == r"X (A + A^\top)"
    ok = [it for it in items if it["status"] == "ok"]
    assert all(it["message"] == "the claim matches the computed result" for it in ok)


# ------------------------------------------------------------------------------------------
# LaTeX, errors, options
# ------------------------------------------------------------------------------------------
TEX = r"""\documentclass{article}
\usepackage{amsmath}
\begin{document}
% \matderiv[expect={3 x}]<x^T x, x>   a comment: not checked
\[ \matderiv[expect={2 A x}]<x^T A x, x> \]
Text \matderiv<\bad x, x> and $\matderiv[expect={a}]<a^T x, x>$ and \matderiv<x^T x, x>.
\begin{verbatim}
\matderiv[expect={3 x}]<x^T x, x>
\end{verbatim}
\end{document}
"""


def test_tex_file(tmp_path):
    src = tmp_path / "paper.tex"
    src.write_text(TEX, encoding="utf-8")
    code, out, err = matderiv("check", "paper.tex", cwd=tmp_path)
    assert code == 1 and err == ""
    assert out.splitlines() == [
        "paper.tex:5:14: wrong: holds only when A is symmetric",
        r"  claimed: 2 A x; computed: (A + A^\top) x",
        "paper.tex:6:16: error: unknown command `\\bad`",
        out.splitlines()[3],
        "checked 4 macros in 1 file: 2 ok, 1 wrong, 1 error",
    ]
    assert out.splitlines()[3].startswith("  hint: ")


def test_plain_macros_count_and_an_error_fails(capsys, tmp_path):
    src = tmp_path / "a.md"
    src.write_text("Text `\\matderiv<\\bad, x>` in code.\n\n$\\matderiv<x^T x, x>$\n",
                   encoding="utf-8")
    assert cli.main(["check", "-v", str(src)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{src}:3:2: ok: computed", "checked 1 macro in 1 file: 1 ok, 0 wrong, 0 errors"]
    src.write_text("$\\matderiv<A x + B, x>$\n", encoding="utf-8")
    assert cli.main(["check", str(src)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{src}:1:") and ": error: size clash" in out[0]
    assert out[1].startswith("  hint: ") and out[2].endswith("0 ok, 0 wrong, 1 error")


def test_document_and_cli_options_apply():
    doc = "$$\\matderiv[expect={2 C x}]<x^T C x, x>$$\n"
    assert [it.status for it in check_text(doc, "md")] == ["wrong"]
    fm = "---\nmatderiv:\n  symmetric: [C]\n---\n\n" + doc
    (it,) = check_text(fm, "md")
    assert (it.status, it.line, it.column) == ("ok", 6, 3)
    assert check_text(doc, "md", {"symmetric": ["C"]})[0].status == "ok"
    num = "$$\\matderiv[expect={b a^T}]<a^T X b, X>$$\n"
    assert check_text(num, "md")[0].status == "wrong"
    assert check_text(num, "md", {"layout": "numerator"})[0].status == "ok"
    bad = "---\nmatderiv:\n  steps: maybe\n---\n\n" + doc
    items = check_text(bad, "md")
    assert [it.status for it in items] == ["error", "wrong"]
    assert items[0].line == 2 and "metadata" in items[0].message and items[0].macro is None
    assert summary(items, 1) == "checked 1 macro in 1 file: 0 ok, 1 wrong, 1 error"
    (it,) = check_text("$\\matderiv[layout=sideways]<x^T x, x>$", "md")
    assert it.status == "error" and "layout" in it.message


def test_unreadable_claim_and_files(capsys, tmp_path):
    src = tmp_path / "c.md"
    src.write_text("$$\\matderiv[expect={2 A x +}]<x^T A x, x>$$\n", encoding="utf-8")
    (it,) = check_text(src.read_text(encoding="utf-8"), "md", filename="c.md")
    assert (it.status, it.line, it.column) == ("error", 1, 13)
    assert "cannot be read" in it.message and it.claim == "2 A x +" and it.hint
    assert cli.main(["check", str(tmp_path / "missing.md"), str(tmp_path / "notes.rst")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{tmp_path / 'missing.md'}: error: cannot read")
    assert out[2].startswith(f"{tmp_path / 'notes.rst'}: error: cannot tell whether")
    assert out[-1] == "checked 0 macros in 2 files: 0 ok, 0 wrong, 2 errors"


def test_summary_wording():
    assert summary([], 1) == "checked 0 macros in 1 file: 0 ok, 0 wrong, 0 errors"


# ------------------------------------------------------------------------------------------
# process and the pandoc filter
# ------------------------------------------------------------------------------------------
def test_process_warns_and_strict_fails(tmp_path, capsys):
    src = tmp_path / "in.md"
    out = tmp_path / "out.md"
    src.write_text("Intro.\n\n$$\\matderiv[expect={2 A x}]<x^T A x, x>$$\n", encoding="utf-8")
    assert cli.main(["process", str(src), "-o", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{src}:3:13: wrong: holds only when A is symmetric",
                   "  $$\\matderiv[expect={2 A x}]<x^T A x, x>$$",
                   "              " + "^" * len("expect={2 A x}"),
                   r"  claimed: 2 A x; computed: (A + A^\top) x"]
    assert r"\text{ holds only when }A\text{ is symmetric}$$" in out.read_text(encoding="utf-8")
    out.unlink()
    assert cli.main(["process", "--strict", str(src), "-o", str(out)]) == 1
    assert out.exists()
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"matderiv: 1 wrong claim(s) in {src}; failing because of strict mode")
    src.write_text("---\nmatderiv: {strict: true}\n---\n\n$\\matderiv[expect={2 A x}]<x^T A x, x>$"
                   "\n\n$\\matderiv<\\bad, x>$\n", encoding="utf-8")
    assert cli.main(["process", str(src), "-o", str(out)]) == 1
    assert "1 error(s) and 1 wrong claim(s)" in capsys.readouterr().err
    src.write_text("---\nmatderiv: {strict: true}\n---\n\n$\\matderiv[expect={2 A x}]<x^T A x, x>$"
                   "\n", encoding="utf-8")
    assert cli.main(["process", "--symmetric", "A", str(src), "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""


def _filter(doc):
    err = io.StringIO()
    status = filter_doc(doc, stderr=err)
    return status, err.getvalue().splitlines()


def test_filter_warns_and_strict_fails():
    def doc(**meta):
        return pf.Doc(pf.Para(pf.Math(r"\matderiv<x^T x, x>", format="InlineMath")),
                      pf.Para(pf.Math(r"f = \matderiv[show=result, expect={2 A x}]<x^T A x, x>",
                                      format="DisplayMath")), metadata=meta)

    d = doc()
    status, err = _filter(d)
    assert status == 0
    assert err == ["pandoc-matderiv: macro #2 \\matderiv[show=result, expect={2 A x}]<x^T A x, x>: "
                   "wrong: holds only when A is symmetric; claimed: 2 A x; "
                   "computed: (A + A^\\top) x"]
    math = d.content[1].content[0].text
    assert math.startswith(r"f = (A + A^\top) x\quad {\color{red}{\times}}")
    status, err = _filter(doc(matderiv={"strict": True}))
    assert status == 1 and len(err) == 2
    assert err[1] == ("pandoc-matderiv: 1 wrong claim(s); failing because of strict mode "
                      "(matderiv: {strict: true})")
    status, err = _filter(doc(matderiv={"strict": True, "symmetric": ["A"]}))
    assert (status, err) == (0, [])
