r"""Locate ``\matderiv[OPTIONS]<EXPR, VAR>`` macros in text (SPEC 1, 1.3; DESIGN "locate").

Owns:

- :func:`find_macros`: every macro in a piece of text, as :class:`Macro` records (span, 1-based
  line and column, options, EXPR, VAR list, raw text) or :class:`MacroError` records for malformed
  ones (no closing ``>``, missing VAR, bad option syntax).  Never raises for bad input.
- :func:`parse_options`: the keyval syntax ``steps, layout=numerator, symmetric={A,B}``, reused for
  the YAML metadata map and the command line.
- :func:`split_top_level`: splitting at commas outside ``()``, ``[]``, ``{}``, ``\{ \}``,
  ``\left...\right``, ``\|...\|``.
- :func:`document_regions` / :func:`locate_document`: which parts of a Markdown or LaTeX source are
  math (inline or display), plain text, or left alone (comments, verbatim, code), so that the
  preprocessor knows where each macro stands; within that, whether a macro in text is in the
  body of a LaTeX definition (:func:`definition_bodies`), and for one in math what its
  neighbours would do to its replacement (:func:`binding_context`) and whether it stands in a
  text group of the math (:func:`in_text_group`).

Knows nothing of derivatives (no ``derive``), of pandoc, or of how results are typeset.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .errors import MatDerivError

__all__ = [
    "Macro", "MacroError", "Region", "Located", "find_macros", "parse_options", "split_top_level",
    "line_col", "document_regions", "locate_document", "locate_math", "math_regions",
    "MATH_ENVS",
]

MACRO_NAME = r"\matderiv"
_MACRO_RE = re.compile(r"\\matderiv(?![A-Za-z@])")
_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*\Z")
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\r?\n")

# math environments of amsmath and LaTeX; the starred forms too
MATH_ENVS = ("equation", "align", "gather", "multline", "flalign", "alignat", "eqnarray",
             "displaymath", "math", "dmath", "darray")
# environments whose content is never looked at
VERBATIM_ENVS = ("verbatim", "Verbatim", "BVerbatim", "LVerbatim", "lstlisting", "minted",
                 "comment", "alltt", "filecontents", "verbatimtab", "listing", "spverbatim")


@dataclass(frozen=True)
class Macro:
    r"""One well-formed ``\matderiv`` macro.

    ``start``/``end``: the half-open span of the whole macro in the scanned text; ``line`` and
    ``column``: 1-based position of its backslash; ``options``: key -> value (``True`` for a bare
    flag, else the text with one outer pair of braces removed); ``expr``: EXPR without surrounding
    blanks; ``wrt``: the VAR(s); ``raw``: the macro exactly as written.  ``expr_start`` is the
    offset of ``expr`` in the scanned text (to map engine error positions back),
    ``options_start`` the offset of the ``[`` (or ``None``).
    """

    start: int
    end: int
    line: int
    column: int
    options: dict
    expr: str
    wrt: list
    raw: str
    expr_start: int = 0
    options_start: int | None = None
    wrt_starts: list = field(default_factory=list)
    ok = True


@dataclass(frozen=True)
class MacroError:
    r"""A malformed macro.  ``start``/``end`` is the span the preprocessor replaces by an error
    marker (it always starts at ``\matderiv``); ``position`` is where the problem is (offset in
    the scanned text), ``line``/``column`` its 1-based place; ``message``/``hint`` say what is
    wrong and what to do; ``raw`` is the text of the span."""

    start: int
    end: int
    line: int
    column: int
    message: str
    hint: str
    raw: str
    position: int
    ok = False
    # for symmetry with Macro: what is known of the macro
    expr: str = ""
    wrt: list = field(default_factory=list)
    options: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# positions
# ---------------------------------------------------------------------------------------------
def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset`` in ``text`` (columns count characters)."""
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


# ---------------------------------------------------------------------------------------------
# bracket-aware scanning
# ---------------------------------------------------------------------------------------------
_OPEN = {"(": ")", "[": "]", "{": "}"}
_PAIRED_WORDS = {"lVert": "rVert", "lvert": "rvert", "langle": "rangle", "lbrace": "rbrace",
                 "lbrack": "rbrack", "lceil": "rceil", "lfloor": "rfloor"}
_CLOSING_WORDS = {v: k for k, v in _PAIRED_WORDS.items()}
_BIG = re.compile(r"[bB]igg?[lrm]?\Z")


def _control(text: str, i: int, end: int) -> tuple[str, int]:
    """The control sequence at ``text[i] == '\\'``: (name, index after it).  A control word is
    letters; a control symbol is one character; a lone trailing backslash is ``''``."""
    j = i + 1
    if j >= end:
        return "", j
    if text[j].isalpha():
        while j < end and text[j].isalpha():
            j += 1
        return text[i + 1:j], j
    return text[j], j + 1


def _skip_spaces(text: str, j: int, end: int) -> int:
    while j < end and text[j] in " \t":
        j += 1
    return j


def _delimiter(text: str, j: int, end: int) -> tuple[str, int]:
    r"""The delimiter after ``\left``/``\right``/``\big``: ``(``, ``\{``, ``\langle``, ``.``..."""
    j = _skip_spaces(text, j, end)
    if j >= end:
        return "", j
    if text[j] == "\\":
        name, k = _control(text, j, end)
        return "\\" + name, k
    return text[j], j + 1


@dataclass
class _Scan:
    close: int | None            # index of the closing character, None when not found
    commas: list                 # indices of top-level commas
    stop: int                    # where scanning stopped
    unclosed_at: int | None      # innermost opener still open when scanning stopped
    inner_close: int | None      # first ``>`` seen at depth > 0 (likely the intended end)
    error: str | None = None


def _scan_group(text: str, i: int, end: int, closer: str, stop_at_math: bool = True) -> _Scan:
    r"""Scan from ``i`` for ``closer`` (``>`` or ``]``) at bracket depth 0, recording top-level
    commas.  Stops (unclosed) at ``end``, a blank line, a math delimiter (``$``, ``\]``, ``\)``),
    ``\end{``/``\begin{``, or another ``\matderiv``."""
    stack: list[tuple[str, int]] = []
    commas: list[int] = []
    inner_close = None
    j = i
    while j < end:
        c = text[j]
        if c == "\\":
            name, k = _control(text, j, end)
            if name in ("left", "right"):
                delim, k = _delimiter(text, k, end)
                if name == "left":
                    stack.append(("left", j))
                else:
                    while stack and stack[-1][0] != "left":
                        stack.pop()
                    if stack:
                        stack.pop()
                j = k
                continue
            if _BIG.match(name):
                delim, k2 = _delimiter(text, k, end)
                if delim in ("<", ">", "\\langle", "\\rangle", "|", ".", "\\vert"):
                    j = k2
                    continue
                j = k
                continue
            if name == "{":
                stack.append(("\\{", j))
            elif name == "}":
                while stack and stack[-1][0] not in ("\\{", "left"):
                    stack.pop()
                if stack and stack[-1][0] == "\\{":
                    stack.pop()
            elif name in ("|", "Vert"):
                if stack and stack[-1][0] == "\\|":
                    stack.pop()
                else:
                    stack.append(("\\|", j))
            elif name in _PAIRED_WORDS:
                stack.append((name, j))
            elif name in _CLOSING_WORDS:
                opener = _CLOSING_WORDS[name]
                if any(s[0] == opener for s in stack):
                    while stack and stack[-1][0] != opener:
                        stack.pop()
                    stack.pop()
            elif stop_at_math and name in (")", "]"):
                return _Scan(None, commas, j, stack[-1][1] if stack else None, inner_close)
            elif name == "matderiv" or (name == "end" and not stack):
                return _Scan(None, commas, j, stack[-1][1] if stack else None, inner_close)
            j = k
            continue
        if c in _OPEN:
            stack.append((c, j))
        elif c == "}":
            if any(s[0] == "{" for s in stack):
                while stack[-1][0] != "{":
                    stack.pop()
                stack.pop()
            elif not stack and closer == "]":
                return _Scan(None, commas, j, None, inner_close, error="unbalanced }")
        elif c in ")]":
            if c == closer and not stack:
                return _Scan(j, commas, j, None, inner_close)
            if stack and stack[-1][0] in ("(", "["):
                stack.pop()
        elif c == closer and not stack:
            return _Scan(j, commas, j, None, inner_close)
        elif c == closer and inner_close is None:
            inner_close = j
        elif c == "," and not stack:
            commas.append(j)
        elif c == "$" and stop_at_math:
            return _Scan(None, commas, j, stack[-1][1] if stack else None, inner_close)
        elif c == "\n":
            m = _BLANK_LINE_RE.match(text, j)
            if m:
                return _Scan(None, commas, j, stack[-1][1] if stack else None, inner_close)
        j += 1
    return _Scan(None, commas, min(j, end), stack[-1][1] if stack else None, inner_close)


def split_top_level(text: str) -> list[str]:
    r"""Split ``text`` at commas outside every kind of bracket (``()``, ``[]``, ``{}``, ``\{\}``,
    ``\left..\right``, ``\|..\|``)."""
    scan = _scan_group(text, 0, len(text), "\x00", stop_at_math=False)
    parts, prev = [], 0
    for c in scan.commas:
        parts.append(text[prev:c])
        prev = c + 1
    parts.append(text[prev:])
    return parts


# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------
def _strip_braces(value: str) -> str:
    v = value.strip()
    if len(v) >= 2 and v[0] == "{" and v[-1] == "}":
        depth = 0
        for k, ch in enumerate(v):
            if ch == "{" and (k == 0 or v[k - 1] != "\\"):
                depth += 1
            elif ch == "}" and (k == 0 or v[k - 1] != "\\"):
                depth -= 1
                if depth == 0 and k != len(v) - 1:
                    return v  # "{a}{b}": the first brace closes early
        return v[1:-1].strip()
    return v


def parse_options(text: str) -> dict:
    r"""Parse keyval options ``steps, layout=numerator, symmetric={A,B}``.

    Returns ``{key: value}`` where a bare key (a flag) maps to ``True`` and a value is a string
    with one outer pair of braces removed; a key given twice keeps the last value, as in LaTeX.
    Raises :class:`MatDerivError` (``position`` is an offset in ``text``) on bad syntax.
    """
    scan = _scan_group(text, 0, len(text), "\x00", stop_at_math=False)
    if scan.error or scan.unclosed_at is not None:
        pos = scan.unclosed_at if scan.unclosed_at is not None else scan.stop
        raise MatDerivError(f"unbalanced {text[pos]!r} in the options", position=pos,
                            hint="close every { ( [ inside the options, e.g. symmetric={A,B}")
    out: dict = {}
    prev = 0
    for cut in scan.commas + [len(text)]:
        item = text[prev:cut]
        offset = prev + (len(item) - len(item.lstrip()))
        prev = cut + 1
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not _KEY_RE.match(key):
            what = "a key is missing before '='" if eq and not key else f"{key!r} is not an option name"
            raise MatDerivError(f"bad option syntax: {what}", position=offset,
                                hint="write key=value or a bare flag, separated by commas: "
                                     "[steps, layout=numerator, symmetric={A,B}]")
        if not eq:
            out[key] = True
            continue
        v = _strip_braces(value)
        if not v:
            raise MatDerivError(f"option {key} has no value", position=offset,
                                hint=f"write {key}=VALUE, or leave the option out")
        out[key] = v
    return out


# ---------------------------------------------------------------------------------------------
# macros
# ---------------------------------------------------------------------------------------------
def _rstrip_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in " \t\r\n":
        end -= 1
    return end


def _lead(text: str, a: int, b: int) -> int:
    """Offset of the first non-blank character of text[a:b] (b when all blank)."""
    while a < b and text[a] in " \t\r\n":
        a += 1
    return a


def _skip_gap(text: str, j: int, end: int) -> int:
    """Skip spaces and at most one line break (a blank line ends the macro, as in TeX)."""
    j = _skip_spaces(text, j, end)
    if j < end and text[j] in "\r\n":
        k = j + (2 if text.startswith("\r\n", j) else 1)
        k2 = _skip_spaces(text, k, end)
        if k2 < end and text[k2] not in "\r\n":
            return k2
    return j


def _one_macro(text: str, start: int, end: int):
    """Parse the macro whose backslash is at ``start``; returns (record, resume index)."""

    def err(message, hint, position, stop):
        stop = max(_rstrip_end(text, start, stop), start + len(MACRO_NAME))
        ln, col = line_col(text, position)
        return MacroError(start, stop, ln, col, message, hint, text[start:stop], position), stop

    j = start + len(MACRO_NAME)
    options: dict = {}
    options_start = None
    k = _skip_gap(text, j, end)
    if k < end and text[k] == "[":
        options_start = k
        scan = _scan_group(text, k + 1, end, "]")
        if scan.close is None:
            pos = scan.unclosed_at if scan.unclosed_at is not None else k
            return err("the options of \\matderiv are not closed by ']'",
                       "write the options as [key=value, ...] and close every brace inside them",
                       pos, scan.stop)
        try:
            options = parse_options(text[k + 1:scan.close])
        except MatDerivError as e:
            # the span ends after the options, or after the <...> that follows when there is one
            stop = scan.close + 1
            k2 = _skip_gap(text, stop, end)
            if k2 < end and text[k2] == "<":
                s2 = _scan_group(text, k2 + 1, end, ">")
                if s2.close is not None:
                    stop = s2.close + 1
            return err(e.message, e.hint, k + 1 + (e.position or 0), stop)
        j = scan.close + 1
        k = _skip_gap(text, j, end)
    if k >= end or text[k] != "<":
        return err("\\matderiv must be followed by <EXPR, VAR>",
                   "write \\matderiv<EXPR, VAR>, e.g. \\matderiv<x^T A x, x>",
                   min(k, max(end - 1, start)), j)
    lt = k
    scan = _scan_group(text, lt + 1, end, ">")
    if scan.close is None:
        if scan.unclosed_at is not None:
            opener = text[scan.unclosed_at]
            if opener == "\\":
                opener = text[scan.unclosed_at:scan.unclosed_at + 2]
            msg = f"no '>' closes \\matderiv<...: the {opener!r} at offset " \
                  f"{scan.unclosed_at - lt - 1} of EXPR is never closed"
            if scan.inner_close is not None:
                msg = f"no '>' closes \\matderiv<...: the '>' is inside an unclosed {opener!r}"
            hint = f"close the {opener!r}, or check the brackets before the final '>'"
            pos = scan.unclosed_at
        else:
            msg = "no '>' closes \\matderiv<..."
            hint = "end the macro with '>': \\matderiv<EXPR, VAR>"
            pos = lt
        stop = scan.inner_close + 1 if scan.inner_close is not None else scan.stop
        return err(msg, hint, pos, stop)
    close = scan.close
    bounds = [lt + 1] + [c + 1 for c in scan.commas] + [close + 1]
    parts = [(bounds[n], bounds[n + 1] - 1) for n in range(len(bounds) - 1)]
    if len(parts) == 1:
        return err("\\matderiv<...> has no variable",
                   "write the variable after a comma: \\matderiv<EXPR, VAR>", close, close + 1)
    if len(parts) > 3:
        return err(f"\\matderiv<...> has {len(parts)} parts; expected EXPR, VAR or EXPR, VAR, VAR",
                   "a comma inside EXPR must be inside brackets", scan.commas[2], close + 1)
    a, b = parts[0]
    if not text[a:b].strip():
        return err("\\matderiv<...> has an empty expression",
                   "write the expression before the first comma: \\matderiv<EXPR, VAR>", a, close + 1)
    wrt, wrt_starts = [], []
    for (a2, b2) in parts[1:]:
        v = text[a2:b2].strip()
        if not v:
            return err("\\matderiv<...> has an empty variable",
                       "write the variable after the comma: \\matderiv<EXPR, VAR>", a2, close + 1)
        wrt.append(v)
        wrt_starts.append(_lead(text, a2, b2))
    ln, col = line_col(text, start)
    expr_start = _lead(text, a, b)
    return Macro(start, close + 1, ln, col, options, text[a:b].strip(), wrt,
                 text[start:close + 1], expr_start, options_start, wrt_starts), close + 1


_DEFINITION_RE = re.compile(
    r"(?:\\(?:re)?newcommand|\\providecommand|\\DeclareRobustCommand|"
    r"\\(?:New|Renew|Provide|Declare)DocumentCommand|\\[egx]?def|\\let)\*?\s*\{?\s*\Z")


def find_macros(text: str, start: int = 0, end: int | None = None) -> list:
    r"""Every ``\matderiv`` macro in ``text[start:end]``, in order, as :class:`Macro` or
    :class:`MacroError` records.  Offsets, lines and columns refer to the whole ``text``.
    The name in a definition (``\newcommand{\matderiv}``, ``\def\matderiv``...) is no use of
    the macro and is skipped, and so is ``\\matderiv`` (an escaped backslash in Markdown, a line
    break before the word "matderiv" in TeX)."""
    end = len(text) if end is None else end
    out = []
    i = start
    while True:
        m = _MACRO_RE.search(text, i, end)
        if not m:
            return out
        k = m.start()
        while k > 0 and text[k - 1] == "\\":
            k -= 1
        if (m.start() - k) % 2 or _DEFINITION_RE.search(text, max(0, m.start() - 40), m.start()):
            i = m.end()  # "\\matderiv" is an escaped backslash (Markdown) or a line break (TeX)
            continue
        rec, nxt = _one_macro(text, m.start(), end)
        out.append(rec)
        i = max(nxt, m.end())


# ---------------------------------------------------------------------------------------------
# document regions: math, text, skipped
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """A part of a document: ``kind`` is ``"text"``, ``"inline"`` (inline math), ``"display"``
    (display math) or ``"skip"`` (comments, code, verbatim, front matter); ``env`` names the
    math environment or delimiter (``"$"``, ``"$$"``, ``"\\("``, ``"align*"``...)."""

    start: int
    end: int
    kind: str
    env: str = ""


@dataclass(frozen=True)
class Located:
    """A macro (or malformed macro) with where it stands: ``context`` is ``"inline"``,
    ``"display"`` (math) or ``"text"``; ``alone`` is true when it is the only thing on its
    line(s); ``env`` the math environment; ``indent`` the leading blanks of its line;
    ``in_definition`` is true for a macro in text inside the body of a LaTeX definition
    (``\\newcommand``, ``\\def``...; pandoc's Markdown reads them too), whose mode is known only
    where the command is used.  In math, ``before`` and ``after`` say what the macro's
    neighbours do to it (:func:`binding_context`), and ``in_text`` that it stands in a text
    group of the math (``\\text{grad: \\matderiv<...>}``), where TeX is in text mode."""

    macro: object
    context: str
    env: str = ""
    alone: bool = False
    indent: str = ""
    in_definition: bool = False
    before: str = "free"
    after: str = "free"
    in_text: bool = False


_ENV_RE = re.compile(r"\\begin\s*\{([A-Za-z]+\*?)\}")


def _math_end(text: str, i: int, end: int, closer: str, allow_blank: bool, brace_aware: bool):
    """Index of ``closer`` that ends math opened before ``i``, or None.  Skips escaped
    characters; a closer inside ``{...}`` (``\\text{$x$}``) does not count when another one at
    depth 0 follows; ``allow_blank=False`` stops at a blank line."""
    depth = 0
    first_any = None
    j = i
    n = len(closer)
    while j < end:
        c = text[j]
        if text.startswith(closer, j) and closer[0] != "\\":
            if depth <= 0:
                return j
            if first_any is None:
                first_any = j
            j += n
            continue
        if c == "\\":
            if text.startswith(closer, j):
                return j
            j += 2
            continue
        if c == "%" and brace_aware:  # a TeX comment inside math: skip to the end of line
            nl = text.find("\n", j, end)
            j = end if nl < 0 else nl
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "\n" and not allow_blank and _BLANK_LINE_RE.match(text, j):
            break
        j += 1
    return first_any


def _inline_math_dollar_md(text: str, i: int, end: int):
    """Pandoc's rule for ``$...$``: non-space after the opening, non-space before the closing,
    no digit right after the closing, no blank line inside."""
    if i + 1 >= end or text[i + 1] in " \t\r\n":
        return None
    j = i + 1
    while j < end:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "$":
            if text[j - 1] not in " \t\r\n" and not (j + 1 < end and text[j + 1].isdigit()):
                return j
            if j + 1 < end and text[j + 1] == "$":
                return None
        elif c == "\n" and _BLANK_LINE_RE.match(text, j):
            return None
        j += 1
    return None


def _math_subregions(text: str, a: int, b: int, kind: str, env: str) -> list[Region]:
    """Split math ``text[a:b]`` around TeX comments (``%`` to end of line, not ``\\%``)."""
    out = []
    j = seg = a
    while j < b:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == "%":
            nl = text.find("\n", j, b)
            nl = b if nl < 0 else nl
            if j > seg:
                out.append(Region(seg, j, kind, env))
            out.append(Region(j, nl, "skip", "%"))
            seg = j = nl
            continue
        j += 1
    if b > seg:
        out.append(Region(seg, b, kind, env))
    return out


def _scan_inline(text: str, a: int, b: int, fmt: str) -> list[Region]:
    """Regions of ``text[a:b]`` (no block structure): math, comments, verbatim, code spans."""
    out: list[Region] = []
    seg = a
    j = a

    def emit_text(upto):
        if upto > seg:
            out.append(Region(seg, upto, "text"))

    while j < b:
        c = text[j]
        start = j
        region = None  # (open_len, content_end, close_len, kind, env) or skip (start, end)
        skip_to = None
        if c == "\\":
            nxt = text[j + 1] if j + 1 < b else ""
            if nxt in ("(", "["):
                closer = "\\)" if nxt == "(" else "\\]"
                e = _math_end(text, j + 2, b, closer, allow_blank=(fmt == "tex" and nxt == "["),
                              brace_aware=True)
                if e is not None:
                    region = (2, e, 2, "inline" if nxt == "(" else "display", "\\" + nxt)
            elif text.startswith("\\begin", j):
                m = _ENV_RE.match(text, j)
                if m:
                    name = m.group(1)
                    base = name.rstrip("*")
                    endtag = "\\end{" + name + "}"
                    if base in MATH_ENVS:
                        e = text.find(endtag, m.end(), b)
                        if e >= 0:
                            region = (m.end() - j, e, len(endtag), "display", name)
                    elif fmt == "tex" and base in VERBATIM_ENVS:
                        e = text.find(endtag, m.end(), b)
                        skip_to = b if e < 0 else e + len(endtag)
            elif fmt == "tex" and (text.startswith("\\verb", j) or text.startswith("\\lstinline", j)):
                name_end = j + (5 if text.startswith("\\verb", j) else 10)
                if not (name_end < b and text[name_end].isalpha()):
                    k = name_end + (1 if name_end < b and text[name_end] == "*" else 0)
                    if k < b and text[k] == "[":  # \lstinline[opts]
                        cl = text.find("]", k, b)
                        k = cl + 1 if cl >= 0 else k
                    if k < b:
                        d = "}" if text[k] == "{" else text[k]
                        e = text.find(d, k + 1, b)
                        nl = text.find("\n", k + 1, b)
                        if e >= 0 and (nl < 0 or e < nl):
                            skip_to = e + 1
            if region is None and skip_to is None:
                j += 2  # an escaped character or a control symbol
                continue
        elif c == "%" and fmt == "tex":
            nl = text.find("\n", j, b)
            skip_to = b if nl < 0 else nl
        elif c == "$":
            if text.startswith("$$", j):
                e = _math_end(text, j + 2, b, "$$", allow_blank=False, brace_aware=True)
                if e is not None:
                    region = (2, e, 2, "display", "$$")
            elif fmt == "md":
                e = _inline_math_dollar_md(text, j, b)
                if e is not None:
                    region = (1, e, 1, "inline", "$")
            else:
                e = _math_end(text, j + 1, b, "$", allow_blank=False, brace_aware=True)
                if e is not None:
                    region = (1, e, 1, "inline", "$")
            if region is None:
                j += 2 if fmt == "md" and text.startswith("$$", j) else 1
                continue
        elif c == "`" and fmt == "md":
            k = j
            while k < b and text[k] == "`":
                k += 1
            n = k - j
            pat = re.compile(r"(?<!`)`{%d}(?!`)" % n)
            m = pat.search(text, k, b)
            if m and not _BLANK_LINE_RE.search(text, k, m.start()):
                skip_to = m.end()
            else:
                j = k
                continue
        elif c == "<" and fmt == "md" and text.startswith("<!--", j):
            e = text.find("-->", j + 4, b)
            skip_to = b if e < 0 else e + 3
        if region is not None:
            open_len, e, close_len, kind, env = region
            emit_text(start)
            out.append(Region(start, start + open_len, "skip", "delim"))
            out.extend(_math_subregions(text, start + open_len, e, kind, env))
            out.append(Region(e, e + close_len, "skip", "delim"))
            seg = j = e + close_len
            continue
        if skip_to is not None:
            emit_text(start)
            out.append(Region(start, skip_to, "skip", "code"))
            seg = j = skip_to
            continue
        j += 1
    emit_text(b)
    return out


_FENCE_RE = re.compile(r"( {0,3})(`{3,}|~{3,})([^\n]*)")
_LIST_RE = re.compile(r" {0,3}([-*+]|\d+[.)]|#\.|[a-zA-Z][.)])[ \t]")


def _md_blocks(text: str) -> list[tuple[int, int, str]]:
    """Markdown block structure, coarse: (start, end, "text" | "skip") for front matter, fenced
    and indented code blocks; everything else is text for the inline scanner."""
    lines = text.splitlines(keepends=True)
    offs = [0]
    for ln in lines:
        offs.append(offs[-1] + len(ln))
    out: list[tuple[int, int, str]] = []
    n = len(lines)
    i = 0
    text_start = 0

    def flush(upto_line):
        if offs[upto_line] > text_start:
            out.append((text_start, offs[upto_line], "text"))

    def blank(k):
        return not lines[k].strip()

    # YAML front matter at the very start
    if n and lines[0].rstrip("\r\n").lstrip("\ufeff") == "---" and n > 1 and not blank(1):
        for k in range(1, n):
            if lines[k].rstrip("\r\n").rstrip() in ("---", "..."):
                out.append((0, offs[k + 1], "skip"))
                i = k + 1
                text_start = offs[i]
                break
    in_list = False
    prev_blank = True
    prev_code = False
    while i < n:
        line = lines[i]
        body = line.rstrip("\r\n")
        m = _FENCE_RE.match(body)
        if m and not (m.group(2)[0] == "`" and "`" in m.group(3)):
            flush(i)
            fence = m.group(2)
            k = i + 1
            close_re = re.compile(r" {0,3}%s{%d,}[ \t]*\Z" % (re.escape(fence[0]), len(fence)))
            while k < n and not close_re.match(lines[k].rstrip("\r\n")):
                k += 1
            k = min(k + 1, n)
            out.append((offs[i], offs[k], "skip"))
            i = k
            text_start = offs[i]
            prev_blank, prev_code = False, False
            continue
        indented = body.startswith("    ") or body.startswith("\t")
        if body.strip() and indented and (prev_code or (prev_blank and not in_list)):
            flush(i)
            k = i
            while k < n:
                b2 = lines[k].rstrip("\r\n")
                if b2.startswith("    ") or b2.startswith("\t"):
                    k += 1
                elif not b2.strip():
                    # blank lines inside an indented block belong to it if code follows
                    k2 = k
                    while k2 < n and not lines[k2].strip():
                        k2 += 1
                    if k2 < n and (lines[k2].startswith("    ") or lines[k2].startswith("\t")):
                        k = k2
                    else:
                        break
                else:
                    break
            out.append((offs[i], offs[k], "skip"))
            i = k
            text_start = offs[i]
            prev_blank, prev_code = False, True
            continue
        if body.strip():
            if _LIST_RE.match(body):
                in_list = True
            elif prev_blank and not indented:
                in_list = False
            prev_blank, prev_code = False, False
        else:
            prev_blank = True
            prev_code = False
        i += 1
    flush(n)
    return out


def document_regions(text: str, fmt: str) -> list[Region]:
    """Split a Markdown (``fmt="md"``) or LaTeX (``fmt="tex"``) source into :class:`Region` s
    that cover it completely, in order."""
    if fmt not in ("md", "tex"):
        raise ValueError(f"unknown format {fmt!r}")
    if fmt == "tex":
        return _scan_inline(text, 0, len(text), "tex")
    out: list[Region] = []
    for a, b, kind in _md_blocks(text):
        if kind == "skip":
            out.append(Region(a, b, "skip", "block"))
        else:
            out.extend(_scan_inline(text, a, b, "md"))
    return out


def math_regions(text: str, display: bool) -> list[Region]:
    """The regions of a math string (a pandoc ``Math`` element): all math except comments."""
    return _math_subregions(text, 0, len(text), "display" if display else "inline", "")


def _alone(text: str, start: int, end: int, fmt: str) -> bool:
    ls = text.rfind("\n", 0, start) + 1
    le = text.find("\n", end)
    le = len(text) if le < 0 else le
    before, after = text[ls:start], text[end:le]
    if fmt == "tex":
        cut = re.search(r"(?<!\\)%", after)
        if cut:
            after = after[:cut.start()]
    return not before.strip() and not after.strip()


#: The head of a LaTeX definition, up to the ``{`` that opens its body: ``\newcommand{\g}[1]{``,
#: ``\renewcommand*\g{``, ``\NewDocumentCommand{\g}{m O{x}}{``, ``\def\g#1{``,
#: ``\newenvironment{e}[1]{`` (whose end code, the group after the body, is a body too).
_DEFINITION_HEAD_RE = re.compile(
    r"\\(?:(?:(?:re|provide)?newcommand|DeclareRobustCommand)\*?\s*"
    r"(?:\{\s*\\[A-Za-z@]+\s*\}|\\[A-Za-z@]+)(?:\s*\[[^\]\n]*\])*"
    r"|(?:New|Renew|Provide|Declare)(?:Expandable)?DocumentCommand\s*"
    r"(?:\{\s*\\[A-Za-z@]+\s*\}|\\[A-Za-z@]+)\s*\{(?:[^{}]|\{[^{}]*\})*\}"
    r"|(?P<env>(?:re)?newenvironment)\*?\s*\{[^{}]*\}(?:\s*\[[^\]\n]*\])*"
    r"|[gex]?def\s*\\[A-Za-z@]+[^{}%\n]{0,40}?)\s*\{")


def _group_end(text: str, i: int) -> int:
    """The index just past the ``}`` that closes the ``{`` at ``i - 1`` (escaped braces and
    ``%`` comments skipped), or ``len(text)`` when it is never closed."""
    depth, n = 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "%":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def definition_bodies(text: str, regions=None) -> list[tuple[int, int]]:
    """The spans of the bodies of the LaTeX definitions in ``text`` (see
    :data:`_DEFINITION_HEAD_RE`): a macro there is typeset for either mode.  With ``regions``
    (of :func:`document_regions`), a head in a comment or verbatim is not one."""
    if "\\" not in text:
        return []
    text_spans = None if regions is None else sorted((r.start, r.end) for r in regions
                                                 if r.kind == "text")
    out = []
    for m in _DEFINITION_HEAD_RE.finditer(text):
        if text_spans is not None and not any(a <= m.start() < b for a, b in text_spans):
            continue
        start = m.end()
        end = _group_end(text, start)
        out.append((start, end))
        if m.group("env"):  # the end code of an environment
            k = end
            while k < len(text) and text[k] in " \t\r\n":
                k += 1
            if k < len(text) and text[k] == "{":
                out.append((k + 1, _group_end(text, k + 1)))
    return out


def _joined_over_comments(text: str, regions: list[Region]) -> tuple[str, list[Region]]:
    """Math that ``%`` comments split (:func:`_math_subregions`) joined again, and the text to
    find macros in: ``text`` with those comments blanked (the same offsets).  So a macro whose
    lines are interleaved with comments reads whole, without them (``x^\\top A x % the
    quadratic form`` then ``, x>`` on the next line), and a macro in a comment is not seen.
    The records found in it take their line and column from ``text`` (:func:`_placed`)."""
    if not any(r.kind == "skip" and r.env == "%" for r in regions):
        return text, regions
    pieces, last, joined, comment_end = [], 0, [], None
    for r in regions:
        prev = joined[-1] if joined else None
        if r.kind == "skip" and r.env == "%":
            # (with its end of line, as TeX reads it: a line that holds only a comment is no
            # blank line, which would end the macro)
            end = r.end + 1 if text.startswith("\n", r.end) else r.end
            pieces += [text[last:r.start], " " * (end - r.start)]
            last = end
            if prev is not None and prev.kind in ("inline", "display") and prev.end == r.start:
                joined[-1] = Region(prev.start, r.end, prev.kind, prev.env)  # (absorbed)
                comment_end = r.end
                continue
        elif r.start == comment_end and (prev.kind, prev.env) == (r.kind, r.env):
            joined[-1] = Region(prev.start, r.end, r.kind, r.env)  # the math after a comment
            continue
        joined.append(r)
    pieces.append(text[last:])
    return "".join(pieces), joined


def _placed(record, original: str, scanned: str):
    """``record`` (a :class:`Macro` or :class:`MacroError` found in ``scanned``, the text with
    its comments blanked) with its line and column in ``original``."""
    if scanned is original:
        return record
    at = record.start if isinstance(record, Macro) else record.position
    line, column = line_col(original, at)
    return replace(record, line=line, column=column)


def locate_document(text: str, fmt: str) -> list[Located]:
    """Every macro of a Markdown or LaTeX source with the context it stands in, skipping
    comments, code and verbatim; a macro in math never reaches past the end of that math."""
    out: list[Located] = []
    bodies = None
    regions = document_regions(text, fmt)
    original, (text, regions) = text, _joined_over_comments(text, regions)
    for r in regions:
        if r.kind == "skip" or "\\matderiv" not in text[r.start:r.end]:
            continue
        for mac in find_macros(text, r.start, r.end):
            mac = _placed(mac, original, text)
            ls = original.rfind("\n", 0, mac.start) + 1
            indent = re.match(r"[ \t]*", original[ls:mac.start]).group(0)
            alone = r.kind == "text" and _alone(original, mac.start, mac.end, fmt)
            in_definition = False
            if r.kind == "text":
                if bodies is None:
                    bodies = definition_bodies(original, document_regions(original, fmt))
                in_definition = any(a <= mac.start < b for a, b in bodies)
            before, after = ("free", "free") if r.kind == "text" else \
                binding_context(text, r.start, r.end, mac)
            in_text = r.kind != "text" and in_text_group(text, r.start, mac.start)
            out.append(Located(mac, "text" if r.kind == "text" else r.kind, r.env, alone, indent,
                               in_definition, before, after, in_text))
    return out


def locate_math(text: str, display: bool) -> list[Located]:
    """Every macro of a math string (a pandoc ``Math`` element), skipping ``%`` comments."""
    out: list[Located] = []
    original, (text, regions) = text, _joined_over_comments(text, math_regions(text, display))
    for r in regions:
        if r.kind != "skip" and "\\matderiv" in text[r.start:r.end]:
            for m in find_macros(text, r.start, r.end):
                m = _placed(m, original, text)
                before, after = binding_context(text, r.start, r.end, m)
                out.append(Located(m, r.kind, before=before, after=after,
                                   in_text=in_text_group(text, r.start, m.start)))
    return out


_TEXT_GROUP_RE = re.compile(r"\\(?:text|textrm|textit|textbf|textsf|texttt|textnormal|mbox|hbox"
                            r"|intertext|shortintertext)\s*\{")


def in_text_group(text: str, a: int, pos: int) -> bool:
    """Whether ``pos`` in the math ``text[a:...]`` stands in text mode: inside ``\\text{...}``
    (or ``\\mbox``...) and not back in math through a ``$...$`` within it."""
    if _TEXT_GROUP_RE.search(text, a, pos) is None:
        return False
    modes = ["math"]  # one entry per open group: the mode inside it
    i = a
    while i < pos:
        m = _TEXT_GROUP_RE.match(text, i) if text[i] == "\\" else None
        if m:
            modes.append("text")
            i = m.end()
            continue
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            modes.append(modes[-1])
        elif c == "}" and len(modes) > 1:
            modes.pop()
        elif c == "$" and modes[-1] == "text":
            modes.append("math$")
        elif c == "$" and modes[-1] == "math$":
            modes.pop()
        i += 1
    return modes[-1] == "text"


#: Spacing that stands between a macro and its neighbours without changing what binds (the
#: one at the end of a text is stripped by :func:`_without_spacing_at_end`, in linear time).
_SPACING_AT_END_RE = re.compile(r"(?:\s|~|\\[,;:! >]|\\q?quad|\\[a-z]?space\s*\{[^{}]*\})\Z")
_SPACING_AT_START_RE = re.compile(r"(?:\s|~|\\[,;:! >]|\\q?quad(?![A-Za-z])"
                                  r"|\\[a-z]?space\s*\{[^{}]*\})+")
#: Commands that end what stands before them: relations, arrows, openers, line breaks.
_RELATIONS = (r"le|leq|ge|geq|ne|neq|approx|equiv|sim|simeq|cong|propto|to|mapsto|gets|coloneqq"
              r"|eqqcolon|Rightarrow|Leftarrow|Leftrightarrow|rightarrow|leftarrow|implies"
              r"|impliedby|iff|in|ni|subset|subseteq|supset|supseteq|mid|colon|ll|gg|prec|succ"
              r"|preceq|succeq|leqslant|geqslant|triangleq|doteq")
_FREE_END_RE = re.compile(r"(?:[=&(\[{,;:<>|]|\\\\|\\(?:" + _RELATIONS + r")"
                          r"|\\(?:left|[bB]igg?l?)\s*(?:[(\[.|]|\\[{|]|\\l[a-z]+)"
                          r"|\\(?:text|textrm|textit|textbf|mbox|intertext|quad|qquad)"
                          r"\s*\{[^{}]*\}|\\begin\s*\{[^{}]*\}(?:\s*\{[^{}]*\})*)\Z")
_FREE_START_RE = re.compile(r"(?:[=&)\]},.;:<>|+-]|\\\\|\\(?:" + _RELATIONS + r")(?![A-Za-z])"
                            r"|\\(?:right|[bB]igg?r?)(?![A-Za-z])|\\(?:end|text|textrm|mbox|tag"
                            r"|label|nonumber|notag|quad|qquad|pm|mp)(?![A-Za-z]))")


def _without_spacing_at_end(head: str) -> str:
    """``head`` without the spacing at its end, one piece at a time (a regular expression
    anchored at the end would be tried from every position: quadratic on long runs)."""
    while head:
        stripped = head.rstrip(" \t\r\n~")
        m = _SPACING_AT_END_RE.search(stripped[-40:])
        if m is None:
            return stripped
        head = stripped[:len(stripped) - (len(stripped[-40:]) - m.start())]
    return head


def binding_context(text: str, a: int, b: int, mac) -> tuple[str, str]:
    """What stands around a macro in the math ``text[a:b]``, for grouping its replacement:
    before it ``"free"`` (the start, ``=``, ``(``, a relation, ``\\text{...}``...), ``"plus"``,
    ``"minus"`` (also ``\\pm``), ``"digit"`` or ``"factor"`` (anything it would be multiplied
    by); after it ``"free"`` (the end, ``=``, ``)``, ``+``, ``-``, punctuation...), ``"postfix"``
    (``^``, ``_``, ``'``, ``!``: they would bind to its last symbol) or ``"factor"``."""
    head = _without_spacing_at_end(text[a:mac.start])[-200:]  # (what binds is near)
    if not head or _FREE_END_RE.search(head):
        before = "free"
    elif head.endswith("+"):
        before = "plus"
    elif head.endswith("-") or re.search(r"\\(?:pm|mp)\Z", head):
        before = "minus"
    elif head[-1].isdigit():
        before = "digit"
    else:
        before = "factor"
    tail = text[mac.end:b]
    lead = _SPACING_AT_START_RE.match(tail)
    tail = tail[lead.end():] if lead else tail
    if not tail or _FREE_START_RE.match(tail):
        after = "free"
    elif tail[0] in "^_'!":
        after = "postfix"
    else:
        after = "factor"
    return before, after
