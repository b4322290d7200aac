r"""``matderiv check``: verify every macro and every claim of Markdown and LaTeX sources (SPEC 3,
1.5), for the continuous integration of a paper.

Owns turning each located macro into one :class:`CheckItem` (``ok``, ``wrong`` or ``error``, with
file, line and column), the terminal report (one line per problem plus one indented detail line,
then a summary) and the JSON report, and the exit status (1 when anything is wrong or in error).

Finds macros exactly as ``matderiv process`` does (:func:`matderiv.locate.locate_document`:
comments, code and verbatim are skipped), applies the same document options (front matter, then
the command line, then the macro's own) and renders each macro with
:func:`matderiv.render.render_macro`, so a macro passes here exactly when ``process`` typesets it
without an error or a wrong claim.  Writes nothing but the report (and, like ``process``,
the results cache of :mod:`matderiv.cache`: a macro checked before with the same options is
not computed again; ``--no-cache`` or ``cache=false`` turn that off).
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

from .locate import line_col, locate_document
from .process import FORMATS, detect_format, document_options
from .render import expect_span, render_macro

__all__ = ["CheckItem", "check_text", "check_file", "format_item", "summary", "run_check"]


@dataclass
class CheckItem:
    """The outcome for one macro (or one problem of a whole file).

    ``status``: ``ok``, ``wrong`` (a claim that does not hold) or ``error`` (the macro, its
    options, the document's options or the file itself could not be used); ``line``/``column``:
    1-based, of the macro (of ``expect=`` for a wrong claim, of the offending part for an error;
    ``None`` for a file that cannot be read); ``message``: one sentence; ``macro``: the macro as
    written; ``claim``/``computed``: the claim as written and the computed right-hand side, when
    known; ``diagnosis``: the engine's kind of verdict (equal, transpose, symmetric, square,
    factor, wrong); ``hint``: what to do about an error."""

    file: str
    line: int | None
    column: int | None
    status: str
    message: str
    macro: str | None = None
    claim: str | None = None
    computed: str | None = None
    diagnosis: str | None = None
    hint: str | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None or k in ("line", "column")}


def check_text(text: str, fmt: str, options: dict | None = None, filename: str = "<input>",
               derive_fn=None, cache: dict | None = None) -> list[CheckItem]:
    """One item per macro of a Markdown (``fmt="md"``) or LaTeX (``fmt="tex"``) source, in
    document order, preceded by one error item per problem with the document's options.
    ``options``: document-level options from the caller; they win over the front matter.
    Never raises for problems in the document (bad caller ``options`` raise
    :class:`MatDerivError`)."""
    items: list[CheckItem] = []
    opts, _strict, problems = document_options(text, fmt, options)
    for off, err in problems:
        ln, col = line_col(text, off)
        items.append(CheckItem(filename, ln, col, "error", err.message, hint=err.hint or None))
    cache = {} if cache is None else cache
    for loc in locate_document(text, fmt):
        mac = loc.macro
        math = "display" if loc.context == "text" else loc.context
        r = render_macro(mac, opts, math=math, derive_fn=derive_fn, cache=cache)
        claim = r.claim if r.claim is not None else (mac.options.get("expect") or None)
        if isinstance(claim, bool):
            claim = None
        if r.error is not None:
            off = r.error_offset if r.error_offset is not None else mac.start
            ln, col = line_col(text, off)
            items.append(CheckItem(filename, ln, col, "error", r.error.message, mac.raw, claim,
                                   hint=r.error.hint or None))
        elif r.wrong:
            span = expect_span(mac)
            ln, col = line_col(text, span[0]) if span else (mac.line, mac.column)
            items.append(CheckItem(filename, ln, col, "wrong", r.claim_message or "the claim is wrong",
                                   mac.raw, claim, r.computed, r.claim_diagnosis))
        else:
            msg = r.claim_message if r.claim_ok else "computed"
            items.append(CheckItem(filename, mac.line, mac.column, "ok", msg, mac.raw, claim,
                                   r.computed, r.claim_diagnosis))
    return items


def check_file(path: str, fmt: str | None = None, options: dict | None = None, derive_fn=None,
               cache: dict | None = None) -> list[CheckItem]:
    """:func:`check_text` of a file; a file that cannot be read, or whose format cannot be told
    from its name (without ``fmt``), is one error item."""
    fmt = fmt or detect_format(path)
    if fmt is None:
        return [CheckItem(path, None, None, "error",
                          f"cannot tell whether {path} is Markdown or LaTeX",
                          hint="name it .md or .tex (" + ", ".join(sorted(FORMATS)) +
                               "), or give --format md or --format tex")]
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except OSError as exc:
        return [CheckItem(path, None, None, "error", f"cannot read {path}: {exc.strerror or exc}",
                          hint="check the file name")]
    except UnicodeDecodeError as exc:
        return [CheckItem(path, None, None, "error",
                          f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                          hint="convert the file to UTF-8")]
    return check_text(text, fmt, options, filename=path, derive_fn=derive_fn, cache=cache)


def _oneline(s: str) -> str:
    return " ".join(str(s).split())


def format_item(item: CheckItem) -> str:
    """``file:line:col: wrong: message`` (or ``error:``/``ok:``) and, for a problem, one
    indented line: ``claimed: ...; computed: ...`` for a wrong claim, ``hint: ...`` for an
    error."""
    where = item.file if item.line is None else f"{item.file}:{item.line}:{item.column}"
    out = f"{where}: {item.status}: {item.message}"
    if item.status == "wrong":
        out += f"\n  claimed: {_oneline(item.claim or '')}; computed: {_oneline(item.computed or '')}"
    elif item.status == "error" and item.hint:
        out += f"\n  hint: {item.hint}"
    return out


def _n(k: int, word: str, plural: str | None = None) -> str:
    return f"{k} {word if k == 1 else plural or word + 's'}"


def summary(items: list[CheckItem], nfiles: int) -> str:
    """``checked 12 macros in 2 files: 9 ok, 2 wrong, 1 error`` (problems of whole files, such
    as a file that cannot be read, count as errors but not as macros)."""
    macros = sum(1 for it in items if it.macro is not None)
    counts = {s: sum(1 for it in items if it.status == s) for s in ("ok", "wrong", "error")}
    return (f"checked {_n(macros, 'macro')} in {_n(nfiles, 'file')}: {counts['ok']} ok, "
            f"{counts['wrong']} wrong, {_n(counts['error'], 'error')}")


def run_check(paths, fmt: str | None = None, options: dict | None = None, as_json: bool = False,
              verbose: bool = False, stdout=None, stderr=None, derive_fn=None) -> int:
    """Check every file, print the report on ``stdout`` (the JSON list with ``as_json``; every
    macro, not only the problems, with ``verbose``) and the summary (on ``stderr`` with
    ``as_json``); the exit status: 1 when a claim is wrong or anything is in error, else 0."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    items: list[CheckItem] = []
    cache: dict = {}
    for path in paths:
        items.extend(check_file(path, fmt, options, derive_fn=derive_fn, cache=cache))
    if as_json:
        print(json.dumps([it.to_json() for it in items], indent=2, ensure_ascii=False),
              file=stdout)
        print(summary(items, len(paths)), file=stderr)
    else:
        for it in items:
            if verbose or it.status != "ok":
                print(format_item(it), file=stdout)
        print(summary(items, len(paths)), file=stdout)
    return 1 if any(it.status != "ok" for it in items) else 0
