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
One line on stderr per problem (an error, a wrong claim, a note), never a traceback.  Knows
nothing of differentials: all typesetting is in :mod:`matderiv.render`.

Speed (issue 6): a document whose JSON holds no ``matderiv`` is copied through without being
parsed, and that path imports nothing but the standard library (the fast path).  Otherwise the
top-level blocks are read one by one with :mod:`json`'s scanner and only those whose text holds
``matderiv`` are looked at; the others are copied to the output as pandoc sent them.  A block
whose macros all stand in ``Math`` elements of paragraphs, headers, divs, quotes and lists (the
usual case) is changed in place in its JSON; any other block that holds ``matderiv`` is turned
into panflute's object model, filtered as above, and written back -- panflute is imported only
then.  The output is the same as with the whole document in panflute's object model (tested).
Results come from the disk cache (:mod:`matderiv.cache`) when they can, so a rebuild imports
neither numpy nor lark.
"""
from __future__ import annotations

import io
import os
import re
import sys
import unicodedata

# heavy or merely unneeded on the fast path: imported where used (locate, process, render,
# panflute, json)

__all__ = ["main", "run_filter", "filter_json"]

_RAW_TEX = ("tex", "latex")
# characters pandoc's readers put in place of what the author typed (smart punctuation, the
# LaTeX reader's accents for \|, non-breaking spaces from ~)
_ALTERED = re.compile("[\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u00a0]")


def _meta_value(m):
    """A metadata value as plain Python: bool, str, list or dict (TeX kept as written)."""
    if isinstance(m, _Plain):
        return m.value
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
    from .locate import MATH_ENVS

    m = _WHOLE_ENV.match(tex)
    return bool(m) and m.group(2) in MATH_ENVS and tex.count("\\begin{" + m.group(1) + "}") == 1


def _has_math(tex: str) -> bool:
    return "$" in tex or "\\begin" in tex or "\\(" in tex or "\\[" in tex


class _Filter:
    """One run of the filter.  ``meta``: the document's metadata, a mapping from names to
    panflute metadata values or to plain Python values already converted (bool, str, list,
    dict), of which ``lang`` and ``matderiv`` are read."""

    def __init__(self, meta, derive_fn=None, stderr=None):
        from .errors import MatDerivError
        from .render import DOCUMENT_KEYS, normalize_options

        self.derive_fn = derive_fn
        self.stderr = stderr or sys.stderr
        self.n = 0
        self.errors = 0
        self.wrong = 0  # claims (expect=) that do not hold
        self.cache: dict = {}
        raw = {}
        try:
            if "lang" in meta:
                lang = _meta_value(meta["lang"])
                if isinstance(lang, str) and lang:
                    raw["lang"] = lang
            if "matderiv" in meta:
                m = _meta_value(meta["matderiv"])
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
        from .render import claim_detail, diagnostic_filter

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
        from .render import render_macro

        self.n += 1
        return render_macro(mac, self.opts, math=math, color=True, derive_fn=self.derive_fn,
                            cache=self.cache, sep="\n")

    def splice_tex(self, text: str, located) -> str:
        from .process import splice

        def report(loc, r):
            self.n += 1
            self.report(loc.macro.raw, r)

        return splice(text, located, self.opts, fmt="tex", color=True, derive_fn=self.derive_fn,
                      cache=self.cache, report=report)

    def finish(self) -> int:
        """The exit status of a run (and the strict-mode line on stderr when it fails)."""
        if self.strict and (self.errors or self.wrong):
            what = [f"{self.errors} error(s)"] if self.errors else []
            what += [f"{self.wrong} wrong claim(s)"] if self.wrong else []
            self.say(f"pandoc-matderiv: {' and '.join(what)}; failing because of strict mode "
                     "(matderiv: {strict: true})")
            return 1
        return 0

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

    def json_blocks(self, blocks: list) -> list:
        """A list of JSON blocks with their macros replaced, in document order: blocks without
        ``matderiv`` as they are; blocks whose macros all stand in ``Math`` elements of simple
        blocks changed in place; any other as panflute elements (written back by
        :func:`filter_json`)."""
        out = []
        for b in blocks:
            if not _mentions(b):
                out.append(b)
                continue
            t = b.get("t") if isinstance(b, dict) else None
            if t == "Div":
                b["c"][1] = self.json_blocks(b["c"][1])
                out.append(b)
                continue
            if t == "BlockQuote":
                b["c"] = self.json_blocks(b["c"])
                out.append(b)
                continue
            found: list = []
            if _scan_blocks([b], found):
                for x in found:
                    x["c"][1] = self.math_text(x["c"][1], x["c"][0].get("t") == "DisplayMath")
                out.append(b)
            else:
                lst = [_pf(b)]
                self.blocks(lst)
                out.extend(lst)
        return out

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

        from .locate import locate_document

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
        x.text = self.math_text(x.text, x.format == "DisplayMath")

    def math_text(self, text: str, display: bool) -> str:
        """The content of a ``Math`` element with its macros replaced."""
        if "\\matderiv" not in text:
            return text
        from .locate import locate_math
        from .process import splice

        located = locate_math(text, display)
        if not located:
            return text

        def report(loc, r):
            self.n += 1
            self.report(loc.macro.raw, r)

        return splice(text, located, self.opts, fmt="tex", color=True,
                      derive_fn=self.derive_fn, cache=self.cache, report=report)

    def inlines(self, lst, para: bool) -> None:
        import panflute as pf

        from .locate import locate_document

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

        from .locate import find_macros
        from .render import diagnostic_filter

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
    f = _Filter(doc.metadata.content, derive_fn=derive_fn, stderr=stderr)
    f.blocks(doc.content)
    return f.finish()


# ---------------------------------------------------------------------------------------------
# the JSON itself (issue 6): only the blocks that hold a macro are looked at
# ---------------------------------------------------------------------------------------------
class _Plain:
    """A metadata value already converted to plain Python (see :func:`_meta_value`)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _NotPlain(Exception):
    pass


# inline elements whose content (at this index of "c", or "c" itself) is a list of inlines,
# walked by the filter like panflute's traversal: their other parts never hold a macro
_INLINE_LISTS = {"Emph": None, "Strong": None, "Underline": None, "Strikethrough": None,
                 "Superscript": None, "Subscript": None, "SmallCaps": None, "Span": 1,
                 "Quoted": 1}
_SPACES = ("Space", "SoftBreak", "LineBreak")


def _mentions(obj) -> bool:
    """Whether ``matderiv`` occurs anywhere in a JSON value (text, attributes...)."""
    import json

    return "matderiv" in json.dumps(obj, ensure_ascii=False)


def _pf(obj):
    """The panflute element (or metadata value) of a pandoc JSON value."""
    import json

    from panflute.elements import from_json

    return json.loads(json.dumps(obj, ensure_ascii=False), object_hook=from_json)


def _plain_inline_text(items) -> str:
    """:func:`_inline_text` of pandoc JSON inlines; :class:`_NotPlain` for an unusual one."""
    out = []
    for x in items:
        t, c = x.get("t"), x.get("c")
        if t == "Str":
            out.append(c)
        elif t in _SPACES:
            out.append(" ")
        elif t in ("RawInline", "Math", "Code"):
            out.append(c[1])
        elif t == "Quoted":
            q = '"' if c[0].get("t") == "DoubleQuote" else "'"
            out.append(q + _plain_inline_text(c[1]) + q)
        elif t in _INLINE_LISTS:
            out.append(_plain_inline_text(c if _INLINE_LISTS[t] is None else c[_INLINE_LISTS[t]]))
        else:
            raise _NotPlain(t)
    return "".join(out)


def _plain_meta(m):
    """:func:`_meta_value` of a pandoc JSON metadata value; :class:`_NotPlain` when it holds
    something unusual (then panflute converts it)."""
    t, c = m.get("t"), m.get("c")
    if t == "MetaBool" and isinstance(c, bool):
        return c
    if t == "MetaString" and isinstance(c, str):
        return c
    if t == "MetaList":
        return [_plain_meta(x) for x in c]
    if t == "MetaMap":
        return {k: _plain_meta(v) for k, v in c.items()}
    if t == "MetaInlines":
        return _plain_inline_text(c).strip()
    raise _NotPlain(t)


def _json_meta(meta: dict) -> dict:
    """The ``lang`` and ``matderiv`` entries of pandoc JSON metadata, for :class:`_Filter`."""
    out = {}
    for k in ("lang", "matderiv"):
        if k in meta:
            try:
                out[k] = _Plain(_plain_meta(meta[k]))
            except (_NotPlain, AttributeError, TypeError, IndexError, KeyError):
                out[k] = _pf(meta[k])
    return out


def _scan_inlines(items, found: list) -> bool:
    """Collect into ``found`` the JSON ``Math`` elements of ``items`` that mention matderiv;
    False when matderiv stands anywhere else that the filter looks at (then the block goes
    through panflute)."""
    for x in items:
        t = x.get("t")
        if t == "Math":
            if "matderiv" in x["c"][1]:
                found.append(x)
        elif t in _SPACES:
            continue
        elif t == "Str":
            if "matderiv" in x["c"]:
                return False
        elif t in _INLINE_LISTS:
            k = _INLINE_LISTS[t]
            if not _scan_inlines(x["c"] if k is None else x["c"][k], found):
                return False
        elif _mentions(x):
            return False
    return True


def _scan_blocks(items, found: list) -> bool:
    """:func:`_scan_inlines` for a list of JSON blocks."""
    for b in items:
        t = b.get("t")
        if t in ("Para", "Plain"):
            ok = _scan_inlines(b["c"], found)
        elif t == "Header":
            ok = _scan_inlines(b["c"][2], found)
        elif t == "BlockQuote":
            ok = _scan_blocks(b["c"], found)
        elif t == "Div":
            ok = _scan_blocks(b["c"][1], found)
        elif t == "BulletList":
            ok = all(_scan_blocks(item, found) for item in b["c"])
        elif t == "OrderedList":
            ok = all(_scan_blocks(item, found) for item in b["c"][1])
        else:
            ok = not _mentions(b)
        if not ok:
            return False
    return True


def filter_json(text: str, derive_fn=None, stderr=None) -> tuple[str, int]:
    """(filtered pandoc JSON, exit status) for pandoc JSON ``text``.

    The top-level blocks are read one by one (:func:`_split_document`); a block whose text has
    no ``matderiv`` is copied to the output as it came, the others go through
    :meth:`_Filter.json_blocks`.  JSON of another shape is read whole (and JSON of an older
    pandoc API by panflute)."""
    if "matderiv" not in text:  # fast path: nothing to do, nothing parsed
        return text, 0
    import json

    def dump(x):
        return json.dumps(x, default=lambda e: e.to_json(), check_circular=False,
                          separators=(",", ":"), ensure_ascii=False)

    split = _split_document(text)
    if split is not None:
        meta, open_, close, spans = split
        f = _Filter(_json_meta(meta), derive_fn=derive_fn, stderr=stderr)
        pieces = []
        for a, b, block in spans:
            if text.find("matderiv", a, b) < 0:
                pieces.append(text[a:b])
            else:
                pieces.extend(dump(x) for x in f.json_blocks([block]))
        return text[:open_ + 1] + ",".join(pieces) + text[close:], f.finish()
    data = json.loads(text)
    if not (isinstance(data, dict) and isinstance(data.get("blocks"), list)
            and isinstance(data.get("meta", {}), dict)):
        return _filter_json_panflute(text, derive_fn, stderr)
    f = _Filter(_json_meta(data.get("meta", {})), derive_fn=derive_fn, stderr=stderr)
    data["blocks"] = f.json_blocks(data["blocks"])
    return dump(data), f.finish()


_JSON_WS = re.compile(r"[ \t\n\r]*")


def _split_document(text: str):
    """Pandoc JSON ``{"pandoc-api-version": ..., "meta": {...}, "blocks": [...]}`` read member
    by member and block by block: (meta, offset of the blocks' ``[``, offset of their ``]``,
    [(start, end, block) of each top-level block]), or ``None`` when ``text`` has another
    shape.  Each value is decoded by the :mod:`json` module's own scanner."""
    import json

    decode = json.JSONDecoder().raw_decode
    ws = _JSON_WS.match
    try:
        i = ws(text).end()
        if text[i:i + 1] != "{":
            return None
        i += 1
        meta, spans, open_, close = {}, None, None, None
        while True:
            i = ws(text, i).end()
            key, i = decode(text, i)
            i = ws(text, i).end()
            if not isinstance(key, str) or text[i:i + 1] != ":":
                return None
            i = ws(text, i + 1).end()
            if key == "blocks":
                if text[i:i + 1] != "[" or spans is not None:
                    return None
                open_, spans = i, []
                i = ws(text, i + 1).end()
                if text[i:i + 1] == "]":
                    close = i
                else:
                    while True:
                        block, j = decode(text, i)
                        spans.append((i, j, block))
                        j = ws(text, j).end()
                        if text[j:j + 1] == ",":
                            i = ws(text, j + 1).end()
                            continue
                        if text[j:j + 1] != "]":
                            return None
                        close = i = j
                        break
                i += 1
            else:
                value, i = decode(text, i)
                if key == "meta":
                    if not isinstance(value, dict):
                        return None
                    meta = value
            i = ws(text, i).end()
            if text[i:i + 1] == ",":
                i += 1
                continue
            if text[i:i + 1] == "}" and not text[i + 1:].strip() and spans is not None:
                return meta, open_, close, spans
            return None
    except ValueError:
        return None


def _filter_json_panflute(text: str, derive_fn=None, stderr=None) -> tuple[str, int]:
    """The whole document through panflute (JSON of an older pandoc API, which panflute
    reads)."""
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
