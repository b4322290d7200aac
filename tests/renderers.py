"""Render checks for the LaTeX that matderiv emits (SPEC 2: it must render in KaTeX and
convert through pandoc's texmath without a warning).

Two helpers, each taking a list of LaTeX math strings (without delimiters) and returning
``{index: error message}`` for the ones that fail; an empty dict means all passed.

- ``katex_errors``: every string rendered by the ``katex`` npm package (installed in
  ``<repo>/node_modules`` by ``make install``) in one node process, ``tests/js/katex_check.js``.
- ``pandoc_errors``: one Markdown document with every string as display math, converted to
  docx and to HTML with MathML with ``--fail-if-warnings``; when that fails, the failing
  formulas are found by bisection.

Both raise ``RenderToolMissing`` when their tool is not installed, so a test can never pass
because nothing was checked.  This module knows nothing of matderiv itself.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KATEX_SCRIPT = ROOT / "tests" / "js" / "katex_check.js"

__all__ = ["katex_errors", "pandoc_errors", "pandoc_path", "RenderToolMissing"]


class RenderToolMissing(RuntimeError):
    """node/KaTeX or pandoc is not available: run `make install`."""


# ------------------------------------------------------------------------------------------
# KaTeX
# ------------------------------------------------------------------------------------------
def katex_errors(latex_list: list[str], display: bool = True) -> dict[int, str]:
    """Render each string with KaTeX (throwOnError, strict="error"); return {index: error}."""
    latex_list = list(latex_list)
    if not latex_list:
        return {}
    node = shutil.which("node")
    if node is None:
        raise RenderToolMissing("node is not on PATH (KaTeX checks need Node.js)")
    if not (ROOT / "node_modules" / "katex").is_dir():
        raise RenderToolMissing(f"{ROOT / 'node_modules' / 'katex'} is missing: run `make install`")
    payload = json.dumps({"formulas": latex_list, "displayMode": bool(display)})
    env = dict(os.environ, MATDERIV_ROOT=str(ROOT))
    proc = subprocess.run([node, str(KATEX_SCRIPT)], input=payload, capture_output=True,
                          text=True, encoding="utf-8", env=env, timeout=120)
    if proc.returncode != 0:
        raise RenderToolMissing(f"katex_check.js failed ({proc.returncode}): {proc.stderr.strip()}")
    results = json.loads(proc.stdout)
    if len(results) != len(latex_list):
        raise RuntimeError(f"katex_check.js returned {len(results)} results for {len(latex_list)} formulas")
    return {i: msg for i, msg in enumerate(results) if msg is not None}


# ------------------------------------------------------------------------------------------
# pandoc / texmath
# ------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def pandoc_path() -> str:
    """The pandoc binary shipped by pypandoc-binary, else a `pandoc` on PATH."""
    try:
        import pypandoc

        p = pypandoc.get_pandoc_path()
        if p and os.path.exists(p):
            return p
    except Exception:  # noqa: BLE001  (pypandoc missing, or it found no pandoc)
        pass
    p = shutil.which("pandoc")
    if p:
        return p
    raise RenderToolMissing("no pandoc found: install the test extra (pypandoc-binary) or pandoc")


# (writer, extra arguments); texmath converts TeX math for both (OMML for docx, MathML for html)
PANDOC_TARGETS = (("docx", []), ("html", ["--mathml"]))


def _markdown(formulas: list[str]) -> str:
    # a blank line would end the display math (and is a \par, an error in TeX math anyway)
    paras = ["$$" + re.sub(r"\n[ \t]*\n", "\n", s.strip()) + "$$" for s in formulas]
    return "\n\n".join(paras) + "\n"


def _pandoc_check(formulas: list[str]) -> str | None:
    """None if both conversions succeed without a warning, else the warnings/errors text."""
    exe = pandoc_path()
    with tempfile.TemporaryDirectory(prefix="matderiv-pandoc-") as tmp:
        src = Path(tmp, "in.md")
        src.write_text(_markdown(formulas), encoding="utf-8")
        procs = []
        for writer, extra in PANDOC_TARGETS:
            out = Path(tmp, f"out.{writer}")
            cmd = [exe, str(src), "-f", "markdown", "-t", writer, *extra,
                   "--fail-if-warnings", "-o", str(out)]
            procs.append((writer, subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, text=True,
                                                   encoding="utf-8")))
        problems = []
        for writer, p in procs:
            _, err = p.communicate(timeout=120)
            if p.returncode != 0:
                problems.append(f"[{writer}] exit {p.returncode}: {err.strip()}")
    return "\n".join(problems) or None


def pandoc_errors(latex_list: list[str]) -> dict[int, str]:
    """Convert each string as display math with pandoc (docx and HTML+MathML,
    --fail-if-warnings); return {index: pandoc's warning} for the ones that fail."""
    latex_list = list(latex_list)
    errors: dict[int, str] = {}

    def bisect(idx: list[int], msg: str | None) -> None:
        if msg is None:
            return
        if len(idx) == 1:
            errors[idx[0]] = msg
            return
        mid = len(idx) // 2
        halves = (idx[:mid], idx[mid:])
        found_before = len(errors)
        for half in halves:
            bisect(half, _pandoc_check([latex_list[i] for i in half]))
        if len(errors) == found_before:  # fails together, passes apart: blame the whole group
            for i in idx:
                errors[i] = "fails only together with other formulas: " + msg

    if latex_list:
        bisect(list(range(len(latex_list))), _pandoc_check(latex_list))
    return dict(sorted(errors.items()))
