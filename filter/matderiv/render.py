r"""From a located macro to the LaTeX that replaces it (SPEC 2), and the diagnostics about it.

Owns:

- option handling for documents: :func:`normalize_options` (keyval strings, YAML values and CLI
  values to ``derive`` keyword arguments) and :func:`merge_options` (per-macro options win over
  document options, which win over the defaults);
- :func:`render_macro`: call ``derive`` and build the replacement -- ``show=equation`` gives
  ``d.equation``, ``show=result`` gives ``d.latex``; with ``steps`` in display math an ``aligned``
  block; on any error the unevaluated derivative with the author's text made harmless by
  :func:`escape_text`, in red (``{\color{red}{...}}``, accepted by LaTeX with xcolor, KaTeX,
  MathJax and texmath) with the words "matderiv error" so that outputs that drop colours
  (MathML, docx) still show it;
- claims (``expect=``, SPEC 1.5): the engine's verdict (``d.verdict``) is typeset right after
  the result (after the last line of a steps block; on a line of its own in an ``aligned``
  block when a display result and verdict are too long for one line) and carried in
  :class:`Rendered` (``claim_ok``, ``claim_message``...), so that the document tools can
  report a wrong claim;
  :func:`expect_span` finds the ``expect=`` option in the macro for carets;
- the two diagnostic formats: :func:`diagnostic_source` (``file:line:col: error: ...``, the
  source line, a caret, ``hint: ...``) for the preprocessor and :func:`diagnostic_filter`
  (``pandoc-matderiv: macro #N \matderiv<...>: error: ...; hint: ...``) for the pandoc filter;
  a wrong claim has the severity ``wrong`` and a ``claimed: ...; computed: ...`` detail
  (:func:`claim_detail`).

Results are kept on disk between runs (:mod:`matderiv.cache`): a macro rendered before, with
the same effective options and output context, is rebuilt from its cache entry without the engine
(no numpy, no lark).  The option ``cache=false`` (per macro, in the document metadata, or
``--no-cache``) turns that off; only the real engine's results are cached, never those of a
``derive_fn`` or of a stub put in place of :func:`derive`.

Knows nothing of pandoc or of file formats; calls the engine only through :func:`derive`
(tests replace it with a stub).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import MatDerivError

__all__ = ["derive", "normalize_options", "merge_options", "render_macro", "Rendered",
           "escape_text", "error_latex", "diagnostic_source", "diagnostic_filter",
           "expect_span", "claim_detail", "DOCUMENT_KEYS", "DECLARATION_KEYS"]

DECLARATION_KEYS = ("scalar", "vector", "matrix", "symmetric")
BOOL_KEYS = ("steps", "check", "cache")
STRING_KEYS = ("layout", "show", "name", "expect", "lang")
# keys that only make sense for a whole document (metadata, command line), never for derive()
DOCUMENT_KEYS = ("strict",)
# keys for render_macro itself, never passed to derive(): the disk cache of results
RENDER_KEYS = ("cache",)
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def derive(expr, wrt, **options):
    """The engine, imported on first use (tests monkeypatch this name with a stub)."""
    from . import derive as _derive

    return _derive(expr, wrt, **options)


_ENGINE = derive  # the real engine: only its results go to the disk cache


# ---------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------
def _as_bool(key, v) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise MatDerivError(f"option {key} must be true or false, not {v!r}",
                        hint=f"write {key}=true, {key}=false, or {key} alone for true")


def _as_list(key, v) -> list:
    from .locate import split_top_level

    if v is True:
        raise MatDerivError(f"option {key} needs a list of names",
                            hint=f"write {key}={{A,B}}")
    if isinstance(v, (list, tuple)):
        out = []
        for item in v:
            out.extend(_as_list(key, item))
        return out
    s = str(v).strip()
    if len(s) >= 2 and s[0] == "{" and s[-1] == "}":
        s = s[1:-1]
    return [p.strip() for p in split_top_level(s) if p.strip()]


def normalize_options(raw) -> dict:
    """Turn option values as written (keyval strings, flags, YAML scalars and lists, CLI values)
    into ``derive`` keyword arguments plus the document keys (``strict``).  Unknown keys pass
    through untouched so that ``derive`` reports them with a did-you-mean hint.  Raises
    :class:`MatDerivError` for a value of the wrong kind."""
    out: dict = {}
    for key, v in (raw or {}).items():
        if v is None:
            continue
        if key in DECLARATION_KEYS:
            out[key] = _as_list(key, v)
        elif key in BOOL_KEYS or key in DOCUMENT_KEYS:
            out[key] = _as_bool(key, v)
        elif key in STRING_KEYS:
            if v is True or isinstance(v, (list, dict)):
                raise MatDerivError(f"option {key} needs a value",
                                    hint={"layout": "write layout=mixed, numerator or denominator",
                                          "show": "write show=equation or show=result"}.get(
                                              key, f"write {key}=VALUE"))
            out[key] = str(v).strip()
        else:
            out[key] = v
    return out


def merge_options(*layers) -> dict:
    """Merge option layers, lowest priority first (defaults, document, macro): a later layer's
    value for a key wins."""
    out: dict = {}
    for layer in layers:
        for k, v in (layer or {}).items():
            if v is not None:
                out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# escaping and error markers
# ---------------------------------------------------------------------------------------------
_TEXT_ESCAPES = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
    "%": r"\%", "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
}
# characters that text mode of the classic OT1 font encoding draws wrongly: typeset in math
_MATH_CHARS = {"<": "{<}", ">": "{>}", "|": "|"}


def escape_text(s: str) -> str:
    r"""Author text as math that shows it literally and contains no command of the author's:
    ``\foo`` becomes ``\text{\textbackslash{}foo}``.  Uses only escapes that LaTeX, KaTeX and
    texmath all accept (checked by the tests)."""
    s = re.sub(r"\s+", " ", s).strip()
    out, run = [], []

    def flush():
        if run:
            out.append(r"\text{" + "".join(run) + "}")
            run.clear()

    for ch in s:
        if ch in _MATH_CHARS:
            flush()
            out.append(_MATH_CHARS[ch])
        elif ch in _TEXT_ESCAPES:
            run.append(_TEXT_ESCAPES[ch])
        elif ch.isprintable():
            run.append(ch)
        else:
            run.append(" ")
    flush()
    return "".join(out) or r"\text{ }"


_SAFE_NAME = re.compile(
    r"(?:[A-Za-z]|\\(?:alpha|beta|gamma|delta|epsilon|varepsilon|zeta|eta|theta|vartheta|iota|"
    r"kappa|lambda|mu|nu|xi|pi|rho|sigma|tau|upsilon|phi|varphi|chi|psi|omega|Gamma|Delta|Theta|"
    r"Lambda|Xi|Pi|Sigma|Upsilon|Phi|Psi|Omega))"
    r"(?:_(?:[A-Za-z0-9]|\{[A-Za-z0-9]+\}))?\Z")
_BOLD = re.compile(r"\\(mathbf|boldsymbol|bm)\{(.*)\}\Z")


def _var_latex(v: str) -> str:
    v = v.strip()
    m = _BOLD.match(v)
    if m and _SAFE_NAME.match(m.group(2).strip()):
        cmd = "mathbf" if m.group(1) == "mathbf" else "boldsymbol"
        return "\\" + cmd + "{" + m.group(2).strip() + "}"
    if _SAFE_NAME.match(v):
        return v
    return escape_text(v)


def error_latex(expr: str | None, wrt=None, raw: str | None = None, color: bool = True) -> str:
    r"""The visible stand-in for a macro that could not be computed: the unevaluated derivative
    ``\frac{\partial}{\partial X}\left(\text{...}\right)`` of the author's text (or the raw
    macro text when it could not even be split), in red, with "matderiv error"."""
    if expr is not None and wrt:
        vars_ = [_var_latex(w) for w in wrt]
        if len(vars_) == 1:
            frac = r"\frac{\partial}{\partial " + vars_[0] + "}"
        else:
            frac = r"\frac{\partial^{2}}{\partial " + vars_[0] + r"\,\partial " + vars_[1] + "}"
        body = frac + r"\left(" + escape_text(expr) + r"\right)"
    else:
        body = escape_text(raw or "")
    body += r"\;\text{(matderiv error)}"
    return r"{\color{red}{" + body + "}}" if color else body


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------
@dataclass
class Rendered:
    """What replaces one macro: ``latex`` (math content, no delimiters), ``display`` (true when
    it is a steps block that needs display math), ``error`` (the problem, or ``None``),
    ``error_offset`` (offset of the problem in the scanned text, when known) and ``notes``
    (harmless remarks, e.g. steps dropped in inline math).

    For a macro with ``expect=`` that computed: ``claim_ok`` (true when the claim holds, false
    when it is wrong; ``None`` for a macro without a claim or one that failed), ``claim_message``
    (the engine's sentence, e.g. "holds only when C is symmetric"), ``claim_diagnosis`` (equal,
    transpose, symmetric, square, factor, wrong), ``claim`` (the claim as written) and, for every
    macro that computed, ``computed`` (the right-hand side, LaTeX)."""

    latex: str
    display: bool = False
    error: MatDerivError | None = None
    error_offset: int | None = None
    error_end: int | None = None
    notes: list = field(default_factory=list)
    strict_keys: dict = field(default_factory=dict)
    claim_ok: bool | None = None
    claim_message: str | None = None
    claim_diagnosis: str | None = None
    claim: str | None = None
    computed: str | None = None

    @property
    def wrong(self) -> bool:
        """True when the macro computed and its claim is wrong."""
        return self.claim_ok is False


def _align_line(s: str) -> str:
    """A line for ``aligned``: kept when it has its own ``&``, else ``&`` before its first
    top-level ``=`` (or at the start)."""
    s = str(s).strip()
    if "&" in s:
        return s
    depth = 0
    for k, ch in enumerate(s):
        if ch == "{" and (k == 0 or s[k - 1] != "\\"):
            depth += 1
        elif ch == "}" and (k == 0 or s[k - 1] != "\\"):
            depth -= 1
        elif ch == "=" and depth == 0:
            return s[:k] + "&" + s[k:]
    return "&" + s


def _steps_block(steps, final: str, sep: str, after: str = "") -> str:
    """The steps as an ``aligned`` block, ending with ``final`` (the equation or the result)
    unless the last step already shows it (e.g. ``\\Rightarrow\\ lhs &= rhs \\quad\\text{...}``);
    ``after`` (a claim's verdict) is appended to the last line."""
    lines = [_align_line(s) for s in steps]

    def norm(t):
        return re.sub(r"[\s&]", "", t)

    shown = bool(lines) and norm(final) in norm(lines[-1])
    if final and not shown:
        lines.append(_align_line(final))
    if after and lines:
        lines[-1] += after
    return "\\begin{aligned}" + sep + (" \\\\" + sep).join(lines) + sep + "\\end{aligned}"


def _cache_key(expr, wrt, opts):
    def freeze(v):
        return tuple(v) if isinstance(v, list) else v

    return (expr, tuple(wrt), tuple(sorted((k, freeze(v)) for k, v in opts.items())))


def render_macro(macro, doc_options=None, *, math: str = "inline", color: bool = True,
                 derive_fn=None, cache: dict | None = None, sep: str = " ",
                 checkmark: bool = True) -> Rendered:
    r"""Compute the replacement of one :class:`~matderiv.locate.Macro` (or the error marker of a
    :class:`~matderiv.locate.MacroError`).

    ``doc_options``: normalized document options (``strict`` is ignored here); ``math``: where
    the replacement will stand, ``"inline"`` or ``"display"`` (steps are typeset only in display
    math); ``color``: whether ``\color`` may be used; ``sep``: what separates the lines of a
    steps block (``" "`` or a newline plus indentation); ``checkmark``: whether ``\checkmark``
    (amssymb) may be used in a claim's verdict (else the mark is left out); ``cache``: a dict
    kept by the caller for one run, mapping (EXPR, VAR, options) to the engine's result.  With
    the real engine, the result is also looked up in (and written to) the disk cache
    (:mod:`matderiv.cache`) unless the effective options say ``cache=false``.  Never raises.
    """
    fn = derive_fn or derive
    if not getattr(macro, "ok", False):
        err = MatDerivError(macro.message, hint=macro.hint)
        return Rendered(error_latex(None, None, macro.raw, color), error=err,
                        error_offset=macro.position)
    try:
        mine = normalize_options(macro.options)
    except MatDerivError as err:
        return Rendered(error_latex(macro.expr, macro.wrt, color=color), error=err,
                        error_offset=macro.options_start)
    for key in DOCUMENT_KEYS:
        if key in mine:
            err = MatDerivError(f"{key} applies to a whole document, not to one macro",
                                hint=f"set it in the metadata (matderiv: {{{key}: true}}) "
                                     f"or on the command line (--{key})")
            return Rendered(error_latex(macro.expr, macro.wrt, color=color), error=err,
                            error_offset=macro.options_start)
    opts = merge_options({k: v for k, v in (doc_options or {}).items() if k not in DOCUMENT_KEYS},
                         mine)
    use_disk = bool(opts.pop("cache", True))
    for key in RENDER_KEYS:
        opts.pop(key, None)
    if fn is not _ENGINE:
        # a stub or another engine: its results are its own business
        return _compute(macro, fn, opts, math, color, sep, checkmark, cache)[0]
    from . import cache as disk

    if not use_disk or not disk.enabled():
        with disk.suspended():
            return _compute(macro, fn, opts, math, color, sep, checkmark, cache)[0]
    key = disk.result_key({"macro": macro.raw, "options": opts, "math": math, "color": color,
                           "sep": sep, "checkmark": checkmark})
    hit = disk.get(key)
    if hit is not None:
        r = _from_entry(hit, macro)
        if r is not None:
            return r
    r, keep = _compute(macro, fn, opts, math, color, sep, checkmark, cache)
    if keep:
        disk.put(key, _to_entry(r, macro))
    return r


def absent_variable_notes(d) -> list[str]:
    r"""A note for each variable that does not occur in the expression (its derivative is 0,
    printed; most likely the name is spelled otherwise there: ``y_hat`` for ``\hat{y}``)."""
    tree, variables = getattr(d, "expr_tree", None), getattr(d, "variables", None) or ()
    if tree is None:
        return []
    present = {n.name: n for n in tree.walk() if type(n).__name__ == "Symbol"}
    notes = []
    for v in variables:
        if v.name not in present:
            shown = ", ".join(sorted(s.latex or s.name for s in present.values())) or "none"
            notes.append(f"the variable `{v.latex or v.name}` does not occur in the expression, "
                         f"so its derivative is 0 (the expression's symbols: {shown})")
    return notes


def default_kind_notes(d) -> list[str]:
    r"""A note for each undeclared symbol that is a vector or matrix only by its letter's
    default and multiplies nothing but scalars, where it makes the expression itself a vector or
    matrix: ``\frac{n}{2} \log\det X`` by X is a Jacobian, of the vector n, though n is most
    likely a count (declared ``scalar={n}`` it is a gradient)."""
    tree = getattr(d, "expr_tree", None)
    if tree is None:
        return []
    found = default_kind_letters(tree, getattr(d, "variables", None) or (),
                                 getattr(d, "declared", frozenset()))
    if not found:
        return []
    from .expr import ONE

    shape = "a matrix" if tree.shape[1] != ONE else "a vector"
    return [f"`{latex}` is {why}, which makes the expression {shape} (it multiplies only "
            f"scalars) and this its Jacobian; if `{latex}` is a number, declare scalar={{{latex}}}"
            for latex, why in found]


def default_kind_letters(tree, variables, declared) -> list[tuple[str, str]]:
    """(LaTeX, why) of the undeclared letters that are vectors or matrices only by default,
    multiply nothing but scalars, and together make the non-scalar ``tree`` a vector or matrix
    (declared scalars, it would be 1 x 1); [] when there are none."""
    if tree.is_scalar:
        return []
    wrt = {v.name for v in variables}
    uses: dict = {}  # name -> the symbol, or None once it is used other than as a coefficient
    stack = [(tree, None)]
    while stack:
        node, parent = stack.pop()
        if type(node).__name__ == "Symbol":
            coefficient = type(parent).__name__ == "Mul" and _rest_is_scalar(parent, node)
            if not coefficient:
                uses[node.name] = None
            elif uses.get(node.name, node) is not None:
                uses[node.name] = node
        stack.extend((k, node) for k in node.children())
    candidates = {}
    for name, sym in sorted(uses.items()):
        if sym is None or name in wrt or name in declared or sym.is_scalar:
            continue
        latex = sym.latex or name
        bold = latex.startswith(("\\mathbf", "\\boldsymbol", "\\bm"))
        if sym.kind == "vector" and name[:1].islower() and name[:1].isascii() and not bold:
            candidates[name] = (latex, "a vector by default (a lowercase Latin letter)")
        elif sym.kind == "matrix" and name[:1].isupper():
            candidates[name] = (latex, "a matrix by default (an uppercase letter)")
    if not candidates or not _scalar_if(tree, set(candidates)):
        return []
    return list(candidates.values())


def _scalar_if(node, names) -> bool:
    r"""Whether ``node`` would be 1 x 1 were the symbols ``names`` scalars (through sums,
    products, elementwise functions, products and quotients, and transposes: the logistic
    loss \log(1 + \exp(-y w^\top x)) with y a vector by default; any other node as it is)."""
    kind = type(node).__name__
    if kind == "Symbol" and node.name in names:
        return True
    if kind == "Add":  # (a 1 added to a vector is a ones vector, which a scalar would make 1)
        terms = [t for t in node.args if type(t).__name__ not in ("Ones", "Zero")]
        return bool(terms) and all(_scalar_if(t, names) for t in terms)
    if kind in ("Hadamard", "HadamardDiv", "Func", "Transpose"):
        return all(_scalar_if(t, names) for t in node.children())
    if kind == "Mul":
        return _multiplies_to_a_scalar([a for a in node.args if not _scalar_if(a, names)])
    return node.is_scalar


def _rest_is_scalar(mul, node) -> bool:
    """Whether the factors of the product ``mul`` other than ``node`` multiply to a 1 x 1."""
    return _multiplies_to_a_scalar([a for a in mul.args if a is not node])


def _multiplies_to_a_scalar(factors) -> bool:
    """Whether the matrix product of ``factors`` (1 x 1 ones acting as scalars) is 1 x 1."""
    from .expr import SCALAR, ShapeError, chain_shape

    try:
        return chain_shape(factors) == SCALAR
    except ShapeError:  # (the factors left once one is taken out need not chain)
        return False


def derivation_notes(d) -> list[str]:
    """The notes printed beside a derivative: absent variables, default kinds, parts of a
    variable written as symbols of their own."""
    return absent_variable_notes(d) + default_kind_notes(d) + part_of_variable_notes(d)


def part_of_variable_notes(d) -> list[str]:
    r"""A note for each symbol that reads as a row, column or entry of a variable but is a
    symbol of its own: ``w_y`` beside the variable ``W`` (the softmax loss
    ``-\log \frac{\exp(w_y^\top x)}{\mathbf{1}^\top \exp(W x)}`` by W took w_y as a constant, and
    printed \operatorname{softmax}(W x) x^\top where a reader expects the y-th row's term)."""
    wanted = {}
    for v in getattr(d, "variables", None) or ():  # W: its parts are spelled w_..., x: X_...
        if len(v.name) == 1 and v.name.isalpha():
            wanted[v.name.swapcase() + "_"] = v
    if not wanted:
        return []
    notes = []
    for n in getattr(d, "symbols", None) or ():  # (the expression's symbols: no tree walk)
        v = wanted.get(n.name[:2])
        if v is None or _RANK[n.kind] >= _RANK[v.kind]:
            continue  # (X_1 beside the vector x is not a part of it)
        name = v.latex or v.name
        how = (f"a column {name} e_k, a row {name}^\\top e_k" if v.kind == "matrix"
               else f"an entry e_k^\\top {name}")
        notes.append(f"`{n.latex or n.name}` is a symbol of its own, not a part of the variable "
                     f"`{name}`: its derivative is taken as 0; to differentiate through it, "
                     f"write it with `{name}` ({how})")
    return notes


#: scalars are parts of vectors, vectors and scalars parts of matrices
_RANK = {"scalar": 0, "vector": 1, "matrix": 2}


def _compute(macro, fn, opts, math, color, sep, checkmark, cache) -> tuple[Rendered, bool]:
    """(the rendering of a macro by the engine ``fn``, whether it may be cached on disk: not
    after an internal error)."""
    wrt = macro.wrt[0] if len(macro.wrt) == 1 else tuple(macro.wrt)
    key = _cache_key(macro.expr, macro.wrt, opts)
    try:
        if cache is not None and key in cache:
            d = cache[key]
        else:
            d = fn(macro.expr, wrt, **opts)
            if cache is not None:
                cache[key] = d
        show = opts.get("show", "equation")
        main = d.latex if show == "result" else d.equation
        steps = list(getattr(d, "steps", None) or [])
        notes = derivation_notes(d)
        if steps and math != "display":
            notes.append("steps are typeset only in display math; this macro is in inline math, "
                         "so only the result is shown")
            steps = []
        claim = {"computed": getattr(d, "latex", None)}
        verdict = getattr(d, "verdict", None)
        after = ""
        if verdict is not None:
            after = verdict_latex(verdict.latex, color, checkmark)
            claim.update(claim_ok=bool(verdict.ok), claim_message=verdict.message,
                         claim_diagnosis=verdict.diagnosis, claim=verdict.claim)
        if steps:
            from .printing.latex import KATEX_MAX_EXPAND, katex_expansions

            block = _steps_block(steps, main, sep, after)
            cost = katex_expansions(block)
            if cost <= KATEX_MAX_EXPAND:
                return Rendered(block, display=True, notes=notes, **claim), True
            notes.append(f"the derivation steps are too long to typeset: KaTeX would need {cost} "
                         f"macro expansions, past its limit of {KATEX_MAX_EXPAND}; only the "
                         "result is shown")
        if after and math == "display" and _visible_length(main + after) > WRAP_VERDICT:
            # a long result and verdict do not fit one line of a page: the verdict goes on a
            # line of its own, aligned at the '=' (as in a steps block)
            lines = [_align_line(main), "&" + after.strip()]
            return Rendered("\\begin{aligned}" + sep + (" \\\\" + sep).join(lines) + sep
                            + "\\end{aligned}", display=True, notes=notes, **claim), True
        return Rendered(main + after, notes=notes, **claim), True
    except MatDerivError as err:
        off = None
        if err.position is not None and 0 <= err.position <= len(macro.expr):
            off = macro.expr_start + err.position
        elif err.position is None and "expect" in opts and "claim" in err.message:
            # a claim that cannot be read: point at expect={...}
            span = expect_span(macro)
            if span is not None:
                return Rendered(error_latex(macro.expr, macro.wrt, color=color), error=err,
                                error_offset=span[0], error_end=span[1]), True
        end = None
        if off is not None and getattr(err, "end", None) is not None and err.end > err.position:
            end = macro.expr_start + min(err.end, len(macro.expr))
        from .deadline import TimeLimitExceeded

        # a stop at the time limit depends on the machine and the limit: never cached
        return Rendered(error_latex(macro.expr, macro.wrt, color=color), error=err,
                        error_offset=off, error_end=end), not isinstance(err, TimeLimitExceeded)
    except Exception as exc:  # noqa: BLE001 - no traceback reaches the user
        err = MatDerivError(f"internal error: {type(exc).__name__}: {exc}",
                            hint="please report this macro (MATDERIV_DEBUG=1 shows the traceback)")
        import os

        if os.environ.get("MATDERIV_DEBUG"):
            import traceback

            traceback.print_exc()
        return Rendered(error_latex(macro.expr, macro.wrt, color=color), error=err), False


# ---------------------------------------------------------------------------------------------
# disk cache entries
# ---------------------------------------------------------------------------------------------
_CLAIM_FIELDS = ("claim_ok", "claim_message", "claim_diagnosis", "claim", "computed")


def _to_entry(r: Rendered, macro) -> dict:
    """What the disk cache keeps of a rendering: everything but the absolute offsets, which
    are kept relative to the start of the macro (the same text may stand anywhere)."""
    def rel(off):
        return None if off is None else off - macro.start

    e = r.error
    out = {"latex": r.latex, "display": r.display, "notes": list(r.notes),
           "error": None if e is None else {
               "message": e.message, "hint": e.hint, "position": e.position,
               "end": getattr(e, "end", None), "source": getattr(e, "source", None),
               "unsupported": type(e).__name__ == "UnsupportedError"},
           "error_offset": rel(r.error_offset), "error_end": rel(r.error_end)}
    for f in _CLAIM_FIELDS:
        out[f] = getattr(r, f)
    return out


def _opt(v, *types):
    if v is None or isinstance(v, types):
        return v
    raise TypeError(v)


def _from_entry(v: dict, macro) -> Rendered | None:
    """A :class:`Rendered` rebuilt from a disk cache entry, or ``None`` when the entry does not
    have the expected form (it is then recomputed and rewritten)."""
    try:
        latex = v["latex"]
        if not isinstance(latex, str) or not isinstance(v["display"], bool):
            return None
        notes = v["notes"]
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            return None
        err = None
        e = v["error"]
        if e is not None:
            from .errors import UnsupportedError

            cls = UnsupportedError if e.get("unsupported") is True else MatDerivError
            err = cls(_opt(e["message"], str) or "", position=_opt(e["position"], int),
                      hint=_opt(e["hint"], str) or "", end=_opt(e["end"], int),
                      source=_opt(e["source"], str))
        off, end = _opt(v["error_offset"], int), _opt(v["error_end"], int)
        claim = {f: _opt(v[f], str) for f in _CLAIM_FIELDS if f != "claim_ok"}
        claim["claim_ok"] = _opt(v["claim_ok"], bool)
        return Rendered(latex, display=v["display"], error=err,
                        error_offset=None if off is None else macro.start + off,
                        error_end=None if end is None else macro.start + end,
                        notes=list(notes), **claim)
    except (KeyError, TypeError, AttributeError):
        return None


# a display result and its verdict longer than this (in visible symbols, roughly) are split
# over two lines: about the width of a LaTeX article's text block
WRAP_VERDICT = 50


def _visible_length(tex: str) -> int:
    """Roughly how many symbols ``tex`` shows: commands count one, ``\\text{...}`` its letters,
    spacing, grouping and sizing nothing."""
    t = re.sub(r"\\color\{[a-z]+\}", "", tex)
    t = re.sub(r"\\(?:text|operatorname|mathrm)\{([^{}]*)\}", r"\1", t)
    t = re.sub(r"\\(?:left|right|[,;!: ]|quad|qquad|partial|top|frac)(?![A-Za-z])", "", t)
    t = re.sub(r"\\[A-Za-z]+", "x", t)
    return len(re.sub(r"[{}^_\s\\]", "", t))


_COLOR_WRAP = re.compile(r"\{\\color\{[a-z]+\}\{(\\[A-Za-z]+)\}\}")


def verdict_latex(tex: str, color: bool = True, checkmark: bool = True) -> str:
    r"""The engine's verdict LaTeX as typeset: unchanged by default; in a LaTeX source that
    loads no colour package (``color=False``) the ``{\color{red}{\times}}`` wrappers are
    dropped, and in one without amssymb (``checkmark=False``) the ``\checkmark`` is left out
    (``\quad \text{as claimed}``), so that no undefined command reaches TeX (plain TeX's
    ``\surd`` would do for TeX but not for pandoc's texmath)."""
    if not checkmark:
        tex = re.sub(r"(?:\{\\color\{[a-z]+\}\{\\checkmark\}\}|\{\\checkmark\}|\\checkmark(?![A-Za-z]))"
                     r"(?:\\ )?", "", tex)
    if not color:
        tex = _COLOR_WRAP.sub(lambda m: "{" + m.group(1) + "}", tex)
    return tex


def expect_span(macro) -> tuple[int, int] | None:
    """(start, end) offsets of the ``expect=...`` option of a macro in the scanned text, or
    ``None`` when it has none."""
    if getattr(macro, "options_start", None) is None or "expect" not in macro.options:
        return None
    raw = macro.raw
    i = macro.options_start - macro.start + 1  # after '['
    depth, item, found = 0, i, None
    j = i
    while j < len(raw):
        ch = raw[j]
        if ch == "\\":
            j += 2
            continue
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        elif depth == 0 and ch in ",]":
            if re.match(r"\s*expect\s*=", raw[item:j]):
                found = (item + len(raw[item:j]) - len(raw[item:j].lstrip()), j)
            if ch == "]":
                break
            item = j + 1
        j += 1
    if found is None:
        return None
    a, b = found
    while b > a and raw[b - 1] in " \t\r\n":
        b -= 1
    return macro.start + a, macro.start + b


def claim_detail(r: Rendered) -> str:
    """``claimed: ...; computed: ...`` for a rendered macro with a claim."""
    return f"claimed: {_oneline(r.claim or '')}; computed: {_oneline(r.computed or '')}"


def _oneline(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


# ---------------------------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------------------------
def diagnostic_source(filename: str, text: str, offset: int, message: str, hint: str = "",
                      end: int | None = None, severity: str = "error", detail: str = "") -> str:
    """``file:line:col: error: message``, the source line, a caret under the span, the hint
    (and ``detail``, e.g. a claim's ``claimed: ...; computed: ...``, on a line of its own)."""
    from .locate import line_col

    offset = max(0, min(offset, len(text)))
    line, col = line_col(text, offset)
    ls = text.rfind("\n", 0, offset) + 1
    le = text.find("\n", offset)
    le = len(text) if le < 0 else le
    src = text[ls:le].rstrip("\r")
    width = 1
    if end is not None and end > offset:
        width = max(1, min(end, le) - offset)
    pad = "".join(ch if ch == "\t" else " " for ch in text[ls:offset])
    out = [f"{filename}:{line}:{col}: {severity}: {message}",
           f"  {src}", f"  {pad}{'^' * width}"]
    if detail:
        out.append(f"  {detail}")
    if hint:
        out.append(f"  hint: {hint}")
    return "\n".join(out)


def _short(raw: str, limit: int = 80) -> str:
    s = re.sub(r"\s+", " ", raw).strip()
    return s if len(s) <= limit else s[:limit - 3] + "..."


def diagnostic_filter(n: int, raw: str, message: str, hint: str = "",
                      severity: str = "error", detail: str = "") -> str:
    r"""One line: ``pandoc-matderiv: macro #N \matderiv<...>: error: message; hint: ...``
    (a wrong claim: ``...: wrong: message; claimed: ...; computed: ...``)."""
    out = f"pandoc-matderiv: macro #{n} {_short(raw)}: {severity}: {message}"
    if detail:
        out += f"; {detail}"
    if hint:
        out += f"; hint: {hint}"
    return out
