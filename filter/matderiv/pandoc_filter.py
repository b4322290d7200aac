r"""``pandoc-matderiv``: the pandoc JSON filter (SPEC 1, 2, 3; DESIGN "splice back").

Owns walking the pandoc AST (with panflute) and replacing macros in

- ``Math`` elements, inline and display: only the macro text is replaced, the rest of the
  formula stays; several macros per formula are fine;
- ``RawInline``/``RawBlock`` of format ``tex``/``latex`` (``-f latex+raw_tex``, and
  ```` `...`{=tex} ```` or LaTeX environments in Markdown): a macro in their math is replaced in
  place; a raw element that is just one macro becomes a ``Math`` element (display for a
  ``RawBlock``); other macros outside math get ``$...$``/``\[...\]`` inside the raw TeX.  A raw
  element that is exactly one math environment (``\begin{align}...``) with a macro in it becomes
  display math, as pandoc's LaTeX reader would make it, so that docx, odt and gfm keep it;
- runs of ``Str``/``Space``/``SoftBreak``/``RawInline`` pieces that pandoc split a macro written
  in running text into: reassembled into one ``Math`` element when they came through intact
  (display math when steps are shown or the macro stands alone on its line, else inline math).
  When pandoc's reader changed the text (superscript, emphasis, smart quotes, ``\|`` that lost
  its backslash...), the text is left as it is (its raw TeX pieces turned into visible text),
  nothing is computed from it, and one warning says to put the macro inside ``$...$``.

Options: the macro's own, then the document's ``matderiv:`` metadata map, then the defaults;
``strict: true`` in that map makes the filter exit 1 after writing its output when any macro
failed or any claim (``expect=``) is wrong.  The document's ``lang`` is passed to ``derive``.
One line on stderr per problem (an error, a wrong claim, a note), never a traceback.  A
document whose JSON holds no ``matderiv`` is copied through without being parsed (the fast
path).  Knows nothing of differentials: all typesetting is in
:mod:`matderiv.render`.
"""
from __future__ import annotations

import io
import os
import re
import sys
import unicodedata

from .errors import MatDerivError
from .locate import MATH_ENVS, find_macros, locate_document, locate_math
from .process import splice
from .render import DOCUMENT_KEYS, claim_detail, diagnostic_filter, normalize_options, render_macro

__all__ = ["main", "run_filter", "filter_json"]

_RAW_TEX = ("tex", "latex")
# characters pandoc's readers put in place of what the author typed (smart punctuation, the
# LaTeX reader's accents for \|, non-breaking spaces from ~)
_ALTERED = re.compile("[\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00a0]")


def _meta_value(m):
    """A metadata value as plain Python: bool, str, list or dict (TeX kept as written)."""
    import panflute as pf

    if isinstance(m, pf.MetaBool):
        return m.boolean
    if isinstance(m, pf.MetaString):
        return m.text
    if isinstance(m, pf.MetaList):
        return [_meta_value(x) for x in m.content]
    if isinstance(m, pf.MetaMap):
        return {k: _meta_value(v) for k, v in m.content.items()}
    if isinstance(m, pf.MetaInlines):
        return _inline_text(m.content).strip()
    if isinstance(m, pf.MetaBlocks):
        return " ".join(_inline_text(b.content) if hasattr(b, "content") else "" for b in m.content).strip()
    return str(m)


def _inline_text(items) -> str:
    import panflute as pf

    out = []
    for x in items:
        if isinstance(x, pf.Str):
            out.append(x.text)
        elif isinstance(x, (pf.Space, pf.SoftBreak, pf.LineBreak)):
            out.append(" ")
        elif isinstance(x, (pf.RawInline, pf.Math, pf.Code)):
            out.append(x.text)
        elif isinstance(x, pf.Quoted):
            q = '"' if x.quote_type == "DoubleQuote" else "'"
            out.append(q + _inline_text(x.content) + q)
        elif hasattr(x, "content"):
            out.append(_inline_text(x.content))
    return "".join(out)


def _piece_text(x) -> str:
    import panflute as pf

    if isinstance(x, pf.Str):
        return x.text
    if isinstance(x, pf.Space):
        return " "
    if isinstance(x, pf.SoftBreak):
        return "\n"
    return x.text  # RawInline tex


_WHOLE_ENV = re.compile(r"\s*\\begin\{(([A-Za-z]+)\*?)\}.*\\end\{\1\}\s*\Z", re.S)


def _whole_math_env(tex: str) -> bool:
    """True when raw TeX is exactly one math environment (``\\begin{align}...\\end{align}``)."""
    m = _WHOLE_ENV.match(tex)
    return bool(m) and m.group(2) in MATH_ENVS and tex.count("\\begin{" + m.group(1) + "}") == 1


def _has_math(tex: str) -> bool:
    return "$" in tex or "\\begin" in tex or "\\(" in tex or "\\[" in tex


class _Filter:
    def __init__(self, doc, derive_fn=None, stderr=None):
        self.doc = doc
        self.derive_fn = derive_fn
        self.stderr = stderr or sys.stderr
        self.n = 0
        self.errors = 0
        self.wrong = 0  # claims (expect=) that do not hold
        self.cache: dict = {}
        raw = {}
        meta = doc.metadata
        try:
            if "lang" in meta.content:
                lang = _meta_value(meta.content["lang"])
                if isinstance(lang, str) and lang:
                    raw["lang"] = lang
            if "matderiv" in meta.content:
                m = _meta_value(meta.content["matderiv"])
                if not isinstance(m, dict):
                    raise MatDerivError("the matderiv metadata must be a map of options",
                                        hint="write e.g.  matderiv: {layout: denominator}")
                raw.update(m)
            opts = normalize_options(raw)
        except MatDerivError as err:
            self.say(f"pandoc-matderiv: metadata: error: {err.message}"
                     + (f"; hint: {err.hint}" if err.hint else ""))
            self.errors += 1
            try:  # keep strict mode even when another option is wrong
                opts = normalize_options({"strict": raw.get("strict", False)})
            except MatDerivError:
                opts = {}
        self.strict = bool(opts.get("strict", False))
        self.opts = {k: v for k, v in opts.items() if k not in DOCUMENT_KEYS}

    # --- reporting ------------------------------------------------------------------------
    def say(self, line: str) -> None:
        print(line, file=self.stderr)

    def report(self, raw: str, r) -> None:
        """Count and report one rendered macro (it already has its number)."""
        if r.error is not None:
            self.errors += 1
            self.say(diagnostic_filter(self.n, raw, r.error.message, r.error.hint))
        elif r.wrong:
            self.wrong += 1
            self.say(diagnostic_filter(self.n, raw, r.claim_message or "the claim is wrong",
                                       severity="wrong", detail=claim_detail(r)))
        for note in r.notes:
            self.say(diagnostic_filter(self.n, raw, note, severity="note"))

    def render(self, mac, math):
        self.n += 1
        return render_macro(mac, self.opts, math=math, color=True, derive_fn=self.derive_fn,
                            cache=self.cache, sep="\n")

    def splice_tex(self, text: str, located) -> str:
        def report(loc, r):
            self.n += 1
            self.report(loc.macro.raw, r)

        return splice(text, located, self.opts, fmt="tex", color=True, derive_fn=self.derive_fn,
                      cache=self.cache, report=report)

    # --- traversal ------------------------------------------------------------------------
    def walk(self, elem) -> None:
        import panflute as pf

        for attr in getattr(elem, "_children", ()):
            child = getattr(elem, attr, None)
            if child is None:
                continue
            if isinstance(child, pf.ListContainer):
                items = list(child)
                if items and all(isinstance(x, pf.Inline) for x in items):
                    self.inlines(child, para=isinstance(elem, (pf.Para, pf.Plain)))
                elif items and all(isinstance(x, pf.Block) for x in items):
                    self.blocks(child)
                else:
                    for x in items:
                        if isinstance(x, pf.Element):
                            self.walk(x)
            elif isinstance(child, pf.Element):
                self.walk(child)

    def blocks(self, lst) -> None:
        import panflute as pf

        out, changed = [], False
        for b in list(lst):
            if isinstance(b, pf.RawBlock) and b.format in _RAW_TEX and "\\matderiv" in b.text:
                new = self.raw_block(b)
                if new is not None:
                    out.extend(new)
                    changed = True
                    continue
            else:
                self.walk(b)
            out.append(b)
        if changed:
            lst.clear()
            lst.extend(out)

    def raw_block(self, b):
        import panflute as pf

        located = locate_document(b.text, "tex")
        if (len(located) == 1 and located[0].context == "text"
                and not b.text[:located[0].macro.start].strip()
                and not b.text[located[0].macro.end:].strip()):
            r = self.render(located[0].macro, "display")
            self.report(located[0].macro.raw, r)
            return [pf.Para(pf.Math(r.latex, format="DisplayMath"))]
        b.text = self.splice_tex(b.text, located)
        if _whole_math_env(b.text):
            return [pf.Para(pf.Math(b.text.strip(), format="DisplayMath"))]
        return None

    def math(self, x) -> None:
        if "\\matderiv" not in x.text:
            return
        display = x.format == "DisplayMath"
        located = locate_math(x.text, display)
        if not located:
            return

        def report(loc, r):
            self.n += 1
            self.report(loc.macro.raw, r)

        x.text = splice(x.text, located, self.opts, fmt="tex", color=True,
                        derive_fn=self.derive_fn, cache=self.cache, report=report)

    def inlines(self, lst, para: bool) -> None:
        import panflute as pf

        items = list(lst)
        out = []
        changed = False
        pending = False  # a damaged macro continues into the following elements
        i = 0
        n = len(items)

        def runnable(x):
            return (isinstance(x, (pf.Str, pf.Space, pf.SoftBreak))
                    or (isinstance(x, pf.RawInline) and x.format in _RAW_TEX
                        and not _has_math(x.text)))

        while i < n:
            x = items[i]
            if runnable(x):
                j = i
                while j < n and runnable(items[j]):
                    j += 1
                run = items[i:j]
                if pending:
                    run, pending = self.unraw_until_close(run)
                    changed = True
                new, pend = self.run(run, at_start=i == 0, at_end=j == n, para=para)
                if new is not run:
                    changed = True
                pending = pending or pend
                out.extend(new)
                i = j
                continue
            if pending:
                pending = not self.unraw_element(x)
                changed = True
            if isinstance(x, pf.Math):
                self.math(x)
            elif isinstance(x, pf.RawInline) and x.format in _RAW_TEX:
                if "\\matderiv" in x.text:
                    x.text = self.splice_tex(x.text, locate_document(x.text, "tex"))
                    if _whole_math_env(x.text):
                        # pandoc's Markdown reader keeps \begin{align}... as raw TeX, which the
                        # docx, odt and gfm writers drop; as display math (what pandoc's LaTeX
                        # reader makes of it) every writer typesets it
                        x = pf.Math(x.text.strip(), format="DisplayMath")
                        changed = True
            else:
                self.walk(x)
            out.append(x)
            i += 1
        if changed:
            lst.clear()
            lst.extend(out)

    # --- damaged macros -------------------------------------------------------------------
    def unraw_element(self, x) -> bool:
        """Turn raw TeX inside ``x`` into visible text; True when ``x`` holds the closing '>'."""
        import panflute as pf

        def act(e, doc):
            if isinstance(e, pf.RawInline) and e.format in _RAW_TEX:
                return pf.Str(e.text)

        x.walk(act)
        return ">" in pf.stringify(x)

    def unraw_until_close(self, run):
        import panflute as pf

        out = []
        for k, x in enumerate(run):
            if isinstance(x, pf.RawInline):
                x = pf.Str(x.text)
            out.append(x)
            if ">" in _piece_text(x):
                return out + list(run[k + 1:]), False
        return out, True

    # --- runs of text ---------------------------------------------------------------------
    def run(self, pieces, at_start: bool, at_end: bool, para: bool):
        """(new pieces, whether a damaged macro continues after them)."""
        import panflute as pf

        texts = [_piece_text(p) for p in pieces]
        full = "".join(texts)
        if "\\matderiv" not in full:
            return pieces, False
        starts = []
        acc = 0
        for t in texts:
            starts.append(acc)
            acc += len(t)

        def piece_at(off):
            k = 0
            while k + 1 < len(starts) and starts[k + 1] <= off:
                k += 1
            return k

        def emit(a, b, unraw=False):
            """Elements for full[a:b]."""
            res = []
            for k, p in enumerate(pieces):
                s, e = starts[k], starts[k] + len(texts[k])
                lo, hi = max(a, s), min(b, e)
                if lo >= hi:
                    continue
                if lo == s and hi == e and not (unraw and isinstance(p, pf.RawInline)):
                    res.append(p)
                elif isinstance(p, pf.Str) or (unraw and isinstance(p, pf.RawInline)):
                    res.append(pf.Str(texts[k][lo - s:hi - s]))
                elif isinstance(p, pf.RawInline):
                    res.append(pf.RawInline(texts[k][lo - s:hi - s], format=p.format))
                else:
                    res.append(p)
            return res

        out = []
        cursor = 0
        pending = False
        for mac in find_macros(full):
            raw = full[mac.start:mac.end]
            first = pieces[piece_at(mac.start)]
            from_latex = isinstance(first, pf.RawInline) and first.format == "latex"
            why = self.damage(mac, raw, at_end, from_latex)
            out.extend(emit(cursor, mac.start))
            if why:
                self.n += 1
                self.errors += 1
                self.say(diagnostic_filter(
                    self.n, raw, f"pandoc's reader changed this macro before the filter saw it "
                                 f"({why}); it is left as text and not computed",
                    "put it inside $...$, e.g. $\\matderiv<...>$, or run matderiv process "
                    "on the source"))
                out.extend(emit(mac.start, mac.end, unraw=True))
                pending = not mac.ok and not at_end
            else:
                ls = full.rfind("\n", 0, mac.start)
                le = full.find("\n", mac.end)
                alone = (para and not full[ls + 1:mac.start].strip() and (ls >= 0 or at_start)
                         and not full[mac.end:None if le < 0 else le].strip()
                         and (le >= 0 or at_end))
                r = self.render(mac, "display")
                self.report(raw, r)
                fmt = "DisplayMath" if (r.display or alone) else "InlineMath"
                out.append(pf.Math(r.latex, format=fmt))
            cursor = mac.end
        out.extend(emit(cursor, len(full)))
        return out, pending

    @staticmethod
    def damage(mac, raw: str, at_end: bool, from_latex: bool) -> str:
        """Why pandoc's reader must have changed this macro, or '' when it came through intact."""
        if not mac.ok and "no '>' closes" in mac.message and not at_end:
            return "Markdown formatting such as ^...^ superscript, *emphasis* or ~subscript~ " \
                   "split it"
        if _ALTERED.search(raw):
            return "typographic quotes, dashes or spaces replaced what was typed"
        if any(unicodedata.category(c).startswith("M") for c in raw):
            return "accents replaced what was typed (\\| in LaTeX text mode)"
        if "|" in raw and not from_latex:
            return "a '|' in running Markdown text may be a \\| that lost its backslash"
        return ""


def filter_doc(doc, derive_fn=None, stderr=None) -> int:
    """Apply the filter to a panflute ``Doc`` in place; returns the exit status."""
    f = _Filter(doc, derive_fn=derive_fn, stderr=stderr)
    f.blocks(doc.content)
    if f.strict and (f.errors or f.wrong):
        what = [f"{f.errors} error(s)"] if f.errors else []
        what += [f"{f.wrong} wrong claim(s)"] if f.wrong else []
        f.say(f"pandoc-matderiv: {' and '.join(what)}; failing because of strict mode "
              "(matderiv: {strict: true})")
        return 1
    return 0


def filter_json(text: str, derive_fn=None, stderr=None) -> tuple[str, int]:
    """(filtered pandoc JSON, exit status) for pandoc JSON ``text``."""
    if "matderiv" not in text:  # fast path: nothing to do, nothing parsed
        return text, 0
    import panflute as pf

    doc = pf.load(io.StringIO(text))
    status = filter_doc(doc, derive_fn=derive_fn, stderr=stderr)
    buf = io.StringIO()
    pf.dump(doc, buf)
    return buf.getvalue(), status


def run_filter(stdin=None, stdout=None, stderr=None, derive_fn=None) -> int:
    """Read pandoc JSON from ``stdin`` (bytes), write the result to ``stdout`` (bytes)."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    stderr = stderr or sys.stderr
    data = stdin.read()
    if b"matderiv" not in data:  # fast path
        stdout.write(data)
        stdout.flush()
        return 0
    text = data.decode("utf-8")
    try:
        out, status = filter_json(text, derive_fn=derive_fn, stderr=stderr)
    except Exception as exc:  # noqa: BLE001 - no traceback reaches the user
        if os.environ.get("MATDERIV_DEBUG"):
            raise
        print(f"pandoc-matderiv: internal error: {type(exc).__name__}: {exc}; the document is "
              "passed through unchanged; hint: please report this input (MATDERIV_DEBUG=1 shows "
              "the traceback)", file=stderr)
        out, status = text, 1
    stdout.write(out.encode("utf-8"))
    stdout.flush()
    return status


def main(argv=None) -> int:
    """Console entry point ``pandoc-matderiv`` (pandoc passes the target format as argv[1])."""
    try:
        return run_filter()
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
