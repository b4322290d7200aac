r"""The text preprocessor behind ``matderiv process`` (SPEC 3; DESIGN "splice back").

Owns reading the document-level options of a source (the ``matderiv:`` map of Markdown YAML
front matter, plus the top-level ``lang``), splicing each macro's replacement into the source as
a byte range -- every other character is left exactly as it was -- and the file-level
diagnostics.  Where a macro stands (math, comment, code) is :mod:`matderiv.locate`'s business,
what replaces it :mod:`matderiv.render`'s.

Delimiters for a macro written outside math: ``$...$`` when it sits inside a line of text;
display math when it stands alone on its line(s) or when its steps are shown (``$$...$$`` in
Markdown, ``\[...\]`` in LaTeX); ``\ensuremath{...}`` in the body of a LaTeX definition
(``\newcommand{\g}{\matderiv<...>}``), whose mode is that of each place the command is used
(in Markdown, whose reader expands such a command in math, none).
Errors are typeset in red (``\color``) in Markdown, whose pandoc LaTeX template loads xcolor,
and in LaTeX sources whose preamble loads xcolor, color, tikz or pgf; elsewhere without colour,
so that no undefined command reaches TeX.  For the same reason the verdict on a claim
(``expect=``) uses ``\checkmark`` only in Markdown and in LaTeX sources that load amssymb (or
unicode-math, or are beamer); elsewhere a claim that holds gets just "as claimed".  A wrong
claim is reported as ``file:line:col: wrong: ...`` with a caret under ``expect=...`` and
``claimed: ...; computed: ...``; under strict mode it fails the run like an error.

Results come from the disk cache of :mod:`matderiv.cache` when a macro was rendered before with
the same options in the same context (``cache: false`` in the front matter, ``--no-cache`` or
``[cache=false]`` on one macro turn it off); a rebuild whose results are all cached imports
neither numpy nor lark.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import MatDerivError
from .locate import locate_document
from .render import (DOCUMENT_KEYS, claim_detail, diagnostic_source, expect_span, merge_options,
                     normalize_options, render_macro)

__all__ = ["ProcessResult", "process_text", "splice", "process_file", "detect_format",
           "front_matter_options", "document_options", "wrong_claim_diagnostic", "FORMATS"]

FORMATS = {".md": "md", ".markdown": "md", ".mdown": "md", ".mkd": "md", ".rmd": "md",
           ".qmd": "md", ".txt": "md", ".tex": "tex", ".latex": "tex", ".ltx": "tex"}

_COLOR_PKG = re.compile(r"\\(?:usepackage|RequirePackage)\s*(?:\[[^\]]*\])?\s*\{[^}]*"
                        r"\b(?:xcolor|color|tikz|pgf|pgfplots|beamerbasecolor)\b[^}]*\}")
# packages that define \checkmark (used in the verdict on a claim)
_CHECKMARK_PKG = re.compile(r"\\(?:usepackage|RequirePackage)\s*(?:\[[^\]]*\])?\s*\{[^}]*"
                            r"\b(?:amssymb|unicode-math)\b[^}]*\}|\\(?:re)?newcommand\s*\{?\\checkmark\b"
                            r"|\\documentclass\s*(?:\[[^\]]*\])?\s*\{beamer\}")
_BEAMER = re.compile(r"\\documentclass\s*(?:\[[^\]]*\])?\s*\{beamer\}")


@dataclass
class ProcessResult:
    """``text``: the output; ``diagnostics``: messages for stderr, in document order;
    ``errors``: how many macros failed (plus option problems); ``wrong``: how many claims
    (``expect=``) are wrong; ``macros``: how many were found; ``strict``: whether the document
    or the caller asked for strict mode."""

    text: str
    diagnostics: list = field(default_factory=list)
    errors: int = 0
    macros: int = 0
    strict: bool = False
    wrong: int = 0


def detect_format(path: str) -> str | None:
    """``"md"`` or ``"tex"`` from a file name, or ``None``."""
    return FORMATS.get(Path(path).suffix.lower())


def _front_matter(text: str):
    """(yaml text, offset of its first line) of a Markdown front matter block, or (None, 0)."""
    m = re.match(r"\ufeff?---[ \t]*\r?\n(?![ \t]*\r?\n)", text)
    if not m:
        return None, 0
    end = re.compile(r"^(?:---|\.\.\.)[ \t]*\r?$", re.M).search(text, m.end())
    if not end:
        return None, 0
    return text[m.end():end.start()], m.end()


def front_matter_options(text: str) -> dict:
    """The raw ``matderiv:`` map of a Markdown front matter (with the top-level ``lang`` as
    ``lang`` unless the map has its own); ``{}`` when there is none.  Raises
    :class:`MatDerivError` when the YAML cannot be read or ``matderiv`` is not a map."""
    yml, _ = _front_matter(text)
    if yml is None or "matderiv" not in yml and "lang" not in yml:
        return {}
    import yaml

    try:
        meta = yaml.safe_load(yml)
    except yaml.YAMLError as exc:
        raise MatDerivError(f"the YAML front matter cannot be read: {str(exc).splitlines()[0]}",
                            hint="fix the YAML (pandoc would reject it too)") from None
    if not isinstance(meta, dict):
        return {}
    out = {}
    if isinstance(meta.get("lang"), str):
        out["lang"] = meta["lang"]
    m = meta.get("matderiv")
    if m is None:
        return out
    if not isinstance(m, dict):
        raise MatDerivError("the matderiv metadata must be a map of options",
                            hint="write e.g.  matderiv: {layout: denominator, symmetric: [A]}")
    out.update({str(k): v for k, v in m.items()})
    return out


def process_text(text: str, fmt: str, options: dict | None = None, filename: str = "<input>",
                 derive_fn=None, color: bool | None = None, cache: dict | None = None
                 ) -> ProcessResult:
    """Replace every macro of a Markdown (``fmt="md"``) or LaTeX (``fmt="tex"``) source.

    ``options``: document-level options from the caller (e.g. the command line, already
    normalized or raw); they win over the front matter; per-macro options win over both.
    Never raises for problems in the document: they become diagnostics and error markers.
    """
    res = ProcessResult(text)
    opts, res.strict, problems = document_options(text, fmt, options)
    for off, err in problems:
        res.diagnostics.append(diagnostic_source(filename, text, off, err.message, err.hint))
        res.errors += 1
    if color is None:
        color = fmt == "md" or bool(_COLOR_PKG.search(text) or _BEAMER.search(text))
    checkmark = fmt == "md" or bool(_CHECKMARK_PKG.search(text))
    cache = {} if cache is None else cache

    def report(loc, r):
        res.macros += 1
        mac = loc.macro
        if r.error is not None:
            res.errors += 1
            off = r.error_offset if r.error_offset is not None else mac.start
            res.diagnostics.append(diagnostic_source(filename, text, off, r.error.message,
                                                     r.error.hint, r.error_end))
        elif r.wrong:
            res.wrong += 1
            res.diagnostics.append(wrong_claim_diagnostic(filename, text, mac, r))
        for note in r.notes:
            res.diagnostics.append(diagnostic_source(filename, text, mac.start, note,
                                                     severity="note"))

    res.text = splice(text, locate_document(text, fmt), opts, fmt=fmt, color=color,
                      derive_fn=derive_fn, cache=cache, report=report, checkmark=checkmark)
    return res


def document_options(text: str, fmt: str, options: dict | None = None
                     ) -> tuple[dict, bool, list]:
    """The options for every macro of a source: (``derive`` options, strict, problems).

    Front matter (Markdown) under the caller's ``options`` (e.g. the command line); each
    problem with them is an ``(offset, MatDerivError)`` pair (the offset of the front matter),
    and strict mode survives a wrong value of another key.  Shared by ``matderiv process`` and
    ``matderiv check``.  Raises :class:`MatDerivError` only for bad caller ``options``."""
    problems: list = []
    doc_raw: dict = {}
    if fmt == "md":
        try:
            doc_raw = front_matter_options(text)
        except MatDerivError as err:
            problems.append((_front_matter(text)[1], err))
    try:
        doc = normalize_options(doc_raw)
    except MatDerivError as err:
        problems.append((_front_matter(text)[1],
                         MatDerivError("in the matderiv metadata: " + err.message, hint=err.hint)))
        try:  # keep strict mode even when another option is wrong
            doc = normalize_options({"strict": doc_raw.get("strict", False)})
        except MatDerivError:
            doc = {}
    opts = merge_options(doc, normalize_options(options or {}))
    strict = bool(opts.get("strict", False))
    return {k: v for k, v in opts.items() if k not in DOCUMENT_KEYS}, strict, problems


def wrong_claim_diagnostic(filename: str, text: str, mac, r) -> str:
    """``file:line:col: wrong: <message>``, the source line with a caret under ``expect=...``,
    and ``claimed: ...; computed: ...``."""
    span = expect_span(mac)
    off, end = span if span is not None else (mac.start, None)
    return diagnostic_source(filename, text, off, r.claim_message or "the claim is wrong",
                             end=end, severity="wrong", detail=claim_detail(r))


#: A formula that is one symbol or number: nothing after it can bind to a part of it.
_ATOM_RE = re.compile(r"[A-Za-z0-9]|\\[A-Za-z]+|\\(?:mathbf|boldsymbol|bm)\{\\?[A-Za-z]+\}")


def _atomic(latex: str) -> bool:
    """Whether a superscript after ``latex`` takes all of it: one symbol or number, or one
    brace group (the error marker ``{\\color{red}{...}}``)."""
    if _ATOM_RE.fullmatch(latex):
        return True
    if not latex.startswith("{"):
        return False
    depth = 0
    for i, ch in enumerate(latex):
        if ch == "{" and latex[i - 1:i] != "\\":
            depth += 1
        elif ch == "}" and latex[i - 1:i] != "\\":
            depth -= 1
            if depth == 0:
                return i == len(latex) - 1
    return False


#: One token of printed LaTeX for :func:`_top_level_operator`: a sized opening or closing
#: delimiter with its delimiter, a command, or a character.
_TOKEN_RE = re.compile(r"(?P<open>\\(?:left|[bB]igg?l)(?![A-Za-z])\s*(?:\\[A-Za-z]+|\\.|.))"
                       r"|(?P<close>\\(?:right|[bB]igg?r)(?![A-Za-z])\s*(?:\\[A-Za-z]+|\\.|.))"
                       r"|(?P<cmd>\\(?:[A-Za-z]+|.))|(?P<char>.)", re.S)


def _top_level_operator(latex: str) -> bool:
    """Whether ``latex`` has a binary ``+``, ``-`` or ``=`` outside brackets and braces (a sum,
    a difference, an equation), or ``\\pm`` or a ``\\quad`` there (a verdict after it)."""
    depth, prev = 0, ""
    for m in _TOKEN_RE.finditer(latex):
        tok = m.group(0)
        if m.lastgroup == "open":
            depth += 1
        elif m.lastgroup == "close":
            depth -= 1
        elif m.lastgroup == "cmd":
            if depth == 0 and tok in ("\\quad", "\\qquad", "\\pm", "\\mp"):
                return True
        elif tok in "({[":
            depth += 1
        elif tok in ")}]":
            depth -= 1
        elif depth == 0 and tok in "+-=" and prev not in ("", "^", "_", "+", "-", "=", "(", ","):
            return True
        if not tok.isspace():
            prev = tok if m.lastgroup == "char" else "x"
    return False


def _needs_grouping(rep: str, before: str, after: str) -> bool:
    r"""Whether a replacement set among other math (``2\matderiv<...>``, ``-\matderiv<...>``,
    ``\matderiv<...>^\top b``) must be bracketed to keep its meaning: a sum after a factor or a
    minus would lose its first term's partners (``-2 x - a`` for -(2x - a)), digits would run
    together (``22 x``), a superscript would take its last symbol only."""
    rep = rep.strip()
    if not rep or rep.startswith(r"\begin{aligned}") or (before == after == "free"):
        return False
    summed = _top_level_operator(rep)
    signed = rep[0] in "+-"
    if before in ("minus", "factor", "digit") and (summed or signed):
        return True
    if before == "plus" and signed:
        return True
    if before == "digit" and rep[0].isdigit():
        return True
    if after == "postfix" and not _atomic(rep):
        return True
    return after == "factor" and summed


def splice(text: str, located, opts: dict, *, fmt: str, color: bool = True, derive_fn=None,
           cache: dict | None = None, report=None, checkmark: bool = True) -> str:
    """``text`` with each located macro replaced by its rendering; ``report(located, rendered)``
    is called for each, in order.  A macro in math is replaced by bare LaTeX; one in text gets
    delimiters (see the module docstring)."""
    pieces = []
    last = 0
    for loc in located:
        mac = loc.macro
        math = "display" if loc.context == "text" else "inline" if loc.in_text else loc.context
        sep = " " if fmt == "md" else "\n" + loc.indent
        r = render_macro(mac, opts, math=math, color=color, derive_fn=derive_fn, cache=cache,
                         sep=sep, checkmark=checkmark)
        rep = r.latex
        if loc.context != "text" and loc.in_text:
            rep = "$" + rep + "$"  # \text{grad: \matderiv<...>}: math inside the text
        elif loc.context != "text" and _needs_grouping(rep, loc.before, loc.after):
            rep = r"\left(" + rep + r"\right)"
        if loc.context == "text" and loc.in_definition:
            # the command may be used in text or in math; pandoc's Markdown expands it in math
            # (and KaTeX knows no \ensuremath), so there the body is math as it stands
            rep = "\\ensuremath{" + rep + "}" if fmt == "tex" else rep
        elif loc.context == "text":
            if r.display or loc.alone:
                rep = "$$" + rep + "$$" if fmt == "md" else "\\[" + rep + "\\]"
            else:
                rep = "$" + rep + "$"
        pieces.append(text[last:mac.start])
        pieces.append(rep)
        last = mac.end
        if report is not None:
            report(loc, r)
    pieces.append(text[last:])
    return "".join(pieces)


def process_file(src: str, out: str | None, fmt: str | None = None, options: dict | None = None,
                 strict: bool = False, derive_fn=None, stderr=None) -> int:
    """Read ``src`` (``-``: standard input), write ``out`` (``None`` or ``-``: standard output),
    report on ``stderr``; the exit status: 0, or 1 under strict mode when a macro failed or a
    claim is wrong."""
    stderr = stderr or sys.stderr
    name = "<stdin>" if src == "-" else src
    fmt = fmt or (None if src == "-" else detect_format(src))
    if fmt is None:
        raise MatDerivError(f"cannot tell whether {name} is Markdown or LaTeX",
                            hint="give --format md or --format tex")
    try:
        if src == "-":
            text = sys.stdin.read()
        else:
            with open(src, encoding="utf-8", newline="") as fh:
                text = fh.read()
    except OSError as exc:
        raise MatDerivError(f"cannot read {name}: {exc.strerror or exc}",
                            hint="check the file name") from None
    except UnicodeDecodeError as exc:
        raise MatDerivError(f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                            hint="convert the file to UTF-8") from None
    res = process_text(text, fmt, options, filename=name, derive_fn=derive_fn)
    if out in (None, "-"):
        sys.stdout.write(res.text)
        sys.stdout.flush()
    else:
        try:
            with open(out, "w", encoding="utf-8", newline="") as fh:
                fh.write(res.text)
        except OSError as exc:
            raise MatDerivError(f"cannot write {out}: {exc.strerror or exc}",
                                hint="check the output path") from None
    for d in res.diagnostics:
        print(d, file=stderr)
    if (strict or res.strict) and (res.errors or res.wrong):
        what = [f"{res.errors} error(s)"] if res.errors else []
        what += [f"{res.wrong} wrong claim(s)"] if res.wrong else []
        print(f"matderiv: {' and '.join(what)} in {name}; failing because of strict mode",
              file=stderr)
        return 1
    return 0
