"""The Python API of SPEC 4: :func:`derive` and :class:`Derivation`.

Owns the pipeline parse -> infer shapes -> differentiate -> simplify -> verify -> print, option
validation, and the user-facing result object.  Knows nothing of documents or pandoc.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from .deadline import time_limit
from .derivative import first_derivative, second_derivative
from .errors import MatDerivError, UnsupportedError
from .expr import ONE, Const, Expr, Power, fmt_dim, symbols as symbols_of
from .parse import is_bold_lowercase_greek, normalize_name, parse
from .printing import latex as latex_printer
from .printing.latex import decimal_numbers, katex_expansions, latex, latex_derivative_symbol
from .shapes import infer

# (numpy comes with the verification and the read-back guard: .verify and .claims are
# imported where they are used, so that a derivation with check=False does without it)
_VERIFY = _CLAIMS = None


def _verify_module():
    """:mod:`matderiv.verify`, imported on first use and kept (an import statement in a
    function resolves the package again on every call, some thousand instructions each)."""
    global _VERIFY
    if _VERIFY is None:
        from . import verify

        _VERIFY = verify
    return _VERIFY


def _claims_module():
    """:mod:`matderiv.claims`, imported on first use and kept (as :func:`_verify_module`)."""
    global _CLAIMS
    if _CLAIMS is None:
        from . import claims

        _CLAIMS = claims
    return _CLAIMS

OPTION_KEYS = ("layout", "steps", "show", "name", "expect", "scalar", "vector", "matrix",
               "symmetric", "check", "lang")


@dataclass
class Derivation:
    """A verified derivative.  See SPEC 4."""

    latex: str
    equation: str
    steps: list
    kind: str
    shape: tuple
    layout: str
    expr_tree: Expr = field(repr=False)
    result_tree: Expr = field(repr=False)
    variables: tuple = field(repr=False)
    symbols: tuple = field(repr=False)
    verified: bool = True
    #: the verdict on an ``expect=`` claim (:class:`matderiv.claims.Verdict`), else None
    verdict: object = None
    #: [(function, [steps.Line])]: the trees behind the steps, for tests and tools
    step_groups: list = field(default_factory=list, repr=False)
    #: the plain names given a kind by a declaration (scalar=, vector=, matrix=, symmetric=)
    declared: frozenset = field(default_factory=frozenset, repr=False)

    @property
    def numpy_source(self) -> str:
        """Python source of a NumPy function computing the result in closed form (made on
        first use: most callers never need it)."""
        src = self.__dict__.get("_numpy_source")
        if src is None:
            from .printing.numpy import numpy_source

            src = numpy_source(self.result_tree, list(self.symbols), func_name="derivative")
            self.__dict__["_numpy_source"] = src
        return src

    def evaluate(self, values: Mapping[str, object]):
        """The closed form evaluated with NumPy at ``values`` (keys: plain symbol names, or
        any spelling of them: ``Sigma`` or ``\\Sigma``, ``W__1`` or ``W^{(1)}``)."""
        import numpy as np

        from .numeric import evaluate, normalize_value, sizes_from_env

        plain = {s.name for s in self.symbols}
        spelled = {}
        for k, v in values.items():
            if isinstance(k, str) and k not in plain:
                try:
                    k = normalize_name(k)
                except MatDerivError:
                    pass
            spelled[k] = v
        values = spelled
        syms = list(self.symbols)
        sizes = sizes_from_env(syms, values)
        needed = {s.name for s in symbols_of(self.result_tree)}
        env = {}
        for s in syms:
            if s.name in values:
                env[s.name] = normalize_value(s, values[s.name], sizes)
            elif s.name in needed:
                raise MatDerivError(f"no value given for {s.name}",
                                    hint=f"add a value for {s.name!r} to the mapping")
        out = evaluate(self.result_tree, env, sizes)
        return np.asarray(out, dtype=float)


def _names(v) -> tuple[str, ...]:
    if v is None or v == ():
        return ()  # (no declaration of the kind, the usual case: no generator made)
    if isinstance(v, str):
        v = [p for p in _split_list(v)]
    return tuple(normalize_name(x) for x in v)


def _split_list(s: str):
    s = s.strip()
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    return [p.strip() for p in s.split(",") if p.strip()]


def _flag(v, key) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "yes", "1", ""):
        return True
    if isinstance(v, str) and v.strip().lower() in ("false", "no", "0"):
        return False
    raise MatDerivError(f"option {key} must be true or false, not {v!r}")


def derive(expr: str, wrt, layout: str = "mixed", steps=False, show: str = "equation",
           name: str | None = None, expect: str | None = None, scalar=(), vector=(), matrix=(),
           symmetric=(), check=True, lang: str = "en", **unknown) -> Derivation:
    """Differentiate ``expr`` (LaTeX or ASCII) with respect to ``wrt``; see SPEC 4.  Stopped
    with a :class:`MatDerivError` after ``MATDERIV_TIME_LIMIT`` seconds (default 10)."""
    with time_limit():
        try:
            return _derive(expr, wrt, layout, steps, show, name, expect, scalar, vector, matrix,
                           symmetric, check, lang, **unknown)
        except (MatDerivError, KeyboardInterrupt):
            raise
        except Exception as exc:  # an engine bug: a clear error, never a traceback or a result
            raise MatDerivError(f"internal error: {type(exc).__name__}: {exc}",
                                hint="please report this expression; nothing was typeset") from exc


#: A typeset result longer than this is refused rather than printed (and read back).
MAX_RESULT_CHARS = 20_000

#: What to do about a result too long to typeset (by characters, or by KaTeX's expansions).
_SPLIT_HINT = "split the expression, or name its parts and differentiate them one by one"


def _derive(expr, wrt, layout, steps, show, name, expect, scalar, vector, matrix, symmetric,
            check, lang, **unknown) -> Derivation:
    if unknown:
        key = next(iter(unknown))
        import difflib

        near = difflib.get_close_matches(key, OPTION_KEYS, n=1)
        raise MatDerivError(f"unknown option {key!r}",
                            hint=f"did you mean {near[0]!r}?" if near else "known options: " + ", ".join(OPTION_KEYS))
    if layout not in ("mixed", "numerator", "denominator"):
        raise MatDerivError(f"unknown layout {layout!r}", hint="use mixed, numerator or denominator")
    if show not in ("equation", "result"):
        raise MatDerivError(f"unknown value show={show!r}", hint="use equation or result")
    steps, check = _flag(steps, "steps"), _flag(check, "check")
    if not isinstance(expr, str):
        raise MatDerivError("the expression must be a string")

    wrt_list = [wrt] if isinstance(wrt, str) else list(wrt)
    if not 1 <= len(wrt_list) <= 2:
        raise MatDerivError("give one variable, or two for a second derivative")
    wrt_names = tuple(normalize_name(w) for w in wrt_list)
    decls = dict(scalar=_names(scalar), vector=_names(vector), matrix=_names(matrix),
                 symmetric=_names(symmetric))
    for text, wname in zip(wrt_list, wrt_names):
        # a variable written bold (\boldsymbol{\theta}) is a vector, as a bold spelling in the
        # expression makes it: y^T X \theta by \boldsymbol{\theta} is X^T y, not the row y^T X
        if isinstance(text, str) and is_bold_lowercase_greek(text) and \
                not any(wname in v for v in decls.values()):
            decls["vector"] = decls["vector"] + (wname,)
    try:
        parsed = parse(expr)
        if parsed.differentials:
            _refuse_differentials(parsed, wrt_names)
        typed = infer(parsed, wrt_list, **decls)
    except MatDerivError as err:
        raise err.with_source(expr)
    _refuse_misnamed_variables(typed, expr)
    with decimal_numbers(_writes_decimals(parsed)):  # 0.01 \|w\|^2 gives 0.02 w, not \frac{1}{50} w
        d = _derive_typed(expr, typed, wrt_names, layout, steps, name, check, lang, decls)
        d.declared = _declared(decls)
        if expect is not None and str(expect).strip():
            d.verdict = _claims_module().check_claim(
                str(expect), d.expr_tree, d.result_tree, d.kind, layout, d.symbols, decls,
                seed_text=expr, variable=d.variables[0].name)
    return d


#: What a number written as a decimal or a power of ten looks like in the source: a digit
#: beside a point, an exponent after a digit, or 10^ (the nodes decide).
_DECIMAL_HINT_RE = re.compile(r"\d\.|\.\d|\d[eE]|10\s*\^")
#: A number literal with a point or an exponent (a constant's own text: not a -1 made by a
#: minus sign, whose span is the whole negated term).
_DECIMAL_LITERAL_RE = re.compile(r"(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][+-]?\d+)")


def _writes_decimals(parsed) -> bool:
    """Whether the author wrote a number as a decimal (``0.01``, ``1e-3``) or a power of ten
    (``10^{-4}``): then the results print theirs as decimals too."""
    if not _DECIMAL_HINT_RE.search(parsed.source):
        return False  # (the usual case, settled without a walk of the nodes)
    return any(type(n) is Const and _DECIMAL_LITERAL_RE.fullmatch(parsed.text(n))
               or type(n) is Power and type(n.base) is Const and n.base.value == 10
               for n in parsed.built)


def _steps(f, var, res, layout, name, lang, all_syms, expr, check, first, var_kind):
    """The derivation lines (LaTeX), each checked numerically when ``check`` is on."""
    from .steps import derivation, to_latex

    f_latex = name or latex(f)
    groups = []
    if first is None:
        lhs = latex_derivative_symbol(name or latex(f) if name else None, var.latex or var.name,
                                      res.kind, layout, expr_latex=None if name else latex(f),
                                      var_kind=var_kind)
        groups.append((f, derivation(f, var, res.kind, res.natural, res.arranged, layout, lhs,
                                     f_latex, lang)))
    else:
        g_lhs = latex_derivative_symbol(name, var.latex or var.name, first.kind, "mixed",
                                        expr_latex=None if name else latex(f), var_kind=var_kind)
        # a symmetric variable: both derivations are the unconstrained ones (the Hessian
        # differentiates the unconstrained gradient, X^{-T} rather than X^{-1})
        g, g_var, g_f = first.natural, var, f
        if first.raw is not None:
            from .derivative import unconstrained

            g = first.raw
            g_f, g_var = unconstrained(f, var)
        groups.append((f, derivation(g_f, g_var, first.kind, g, g, "mixed", g_lhs, f_latex,
                                     lang)))
        h_lhs = latex_derivative_symbol(name, var.latex or var.name, res.kind, layout, second=True,
                                        expr_latex=None if name else latex(f), var_kind=var_kind)
        kind = "derivative" if var_kind == "scalar" else "matrix-by-matrix"
        groups.append((g, derivation(g, g_var, kind, res.natural, res.arranged, "mixed", h_lhs,
                                     latex(g), lang)))
    if check:
        for func, lines in groups:
            _verify_module().verify_lines(func, var, [ln.tree for ln in lines
                                                      if ln.tree is not None], all_syms,
                                          seed_text=expr)
    out = []
    for _, lines in groups:
        out.extend(to_latex(lines))
    return out, groups


def _not_finite_in_words(exc, spans, source) -> MatDerivError:
    """The verification's "not finite at random points", naming the part that is not (with
    its place in the source when it is a part of the expression as written)."""
    from .verify import NOT_FINITE_HINT

    if exc.culprit is None:
        return exc
    where = "its derivative contains" if exc.in_result else "the expression contains"
    span = None if exc.in_result else spans.get(id(exc.culprit))
    what, hint = "which is not finite at random points", NOT_FINITE_HINT
    if all(type(n).__name__ in ("Const", "Power", "Mul") for n in exc.culprit.walk()):
        # 1e400, 10^{-400}, (10^{200})^2: a number past the floats' range
        what = "a number outside the range of floating point (about 10^{-308} to 10^{308})"
        hint = "write the expression in other units, or pass check=false to skip verification"
    return MatDerivError(f"could not verify the derivative numerically: {where} "
                         f"`{latex(exc.culprit)}`, {what}", span.start if span else None, hint,
                         span.end if span else None, source)


def _check_printed(rhs, f, result, all_syms, decls, expr) -> None:
    """The printed LaTeX, read back, must be the verified result (guards the printer)."""
    if _claims_module().printed_matches(rhs, f, result, all_syms, decls, seed_text=expr) is False:
        raise _verify_module().VerificationError(
            "internal error: the typeset result does not read back as the verified derivative; "
            "it is not printed", hint="please report this expression; nothing wrong was typeset")


def _refuse_differentials(parsed, wrt_names) -> None:
    r"""``x^\top A\, dx``: a plain d written against the variable reads as its differential
    (a differential form copied from a derivation), not the product of a symbol d and x, which
    was differentiated with confidence (``x d^\top A^\top + (x^\top A d) I_n``)."""
    for name, start, end in parsed.differentials:
        if name in wrt_names:
            text = parsed.source[start:end]
            raise MatDerivError(f"`{text}` reads as the differential of the variable "
                                f"`{text[1:]}`, which is not an expression to differentiate",
                                start, "give the function itself and the variable apart, as in "
                                "\\matderiv<x^\\top A x, x>; for a symbol d times the variable "
                                f"write `d {text[1:]}` or `d \\cdot {text[1:]}`", end=end,
                                source=parsed.source)


#: A plain name of letters (x, W, theta), and one with a subscript (X_ij): compiled once, as
#: they are asked of every variable.
_LETTERS_RE = re.compile(r"[A-Za-z]+")
_SUBSCRIPTED_RE = re.compile(r"([A-Za-z]+)_([A-Za-z0-9]+)")


def _refuse_misnamed_variables(typed, expr) -> None:
    r"""A variable absent from the expression whose name is a subscripted symbol that is there,
    a vector or matrix (``X_{ij}`` beside ``X``, ``x_1`` beside ``x``): most likely an entry, and
    its derivative printed 0 (\frac{\partial}{\partial X_{ij}} \operatorname{tr}(X) = 0).
    Refused: matderiv differentiates by whole symbols.  So is one whose subscripted forms are
    there (``x`` beside ``x_i``: x_i^2 by x printed 0) and one that is a symbol of the
    expression in the other case (``W`` for ``w``), most likely a typo."""
    variables = {v.name for v in typed.variables}
    present = {s.name: s for s in typed.symbols if s.name not in variables}
    if not present:
        return  # (no other symbol: no typo, part or whole of a variable to find)
    in_tree = None  # the names of the tree's symbols, read only when a check needs them
    for v in typed.variables:
        other = v.name[:1].swapcase() + v.name[1:]
        typo = other if other != v.name and other in present else None  # W for w
        # x_i, \bar{x}, W^{(1)} beside x, W
        parts = sorted(n for n in present if n.startswith(v.name + "_")) \
            if _LETTERS_RE.fullmatch(v.name) else []
        # X_{ij} beside X (a name without "_" is not asked the pattern)
        m = _SUBSCRIPTED_RE.fullmatch(v.name) if "_" in v.name else None
        whole = present.get(m.group(1)) if m and f"{m.group(1)}__{m.group(2)}" not in present \
            else None  # (y_hat typed for \hat{y}: the note of an absent variable names it)
        if typo is None and not parts and (whole is None or whole.is_scalar):
            continue  # (the usual case, settled without a walk of the tree)
        if in_tree is None:
            in_tree = {s.name for s in symbols_of(typed.tree)}
        if v.name in in_tree:
            continue
        shown = v.latex or v.name
        if typo is not None:  # \|X w - y\|^2 by W printed 0
            of = present[typo].latex or typo
            raise MatDerivError(f"the variable `{shown}` does not occur in the expression, but "
                                f"`{of}` does", hint=f"did you mean `{of}`? (the case of a letter "
                                "names another symbol)", source=expr)
        if parts:  # x_i^2 by x printed 0: x_i is a symbol of its own, not an entry of x
            part = present[parts[0]].latex or parts[0]
            raise MatDerivError(f"the variable `{shown}` does not occur in the expression, but "
                                f"`{part}` does: matderiv takes `{part}` for a symbol of its own, "
                                f"not an entry or a function of `{shown}`",
                                hint=f"differentiate by `{part}`, or write the expression in "
                                f"`{shown}` itself", source=expr)
        of = whole.latex or whole.name
        raise MatDerivError(f"the variable `{shown}` does not occur in the expression, but "
                            f"`{of}` does: an entry of a vector or matrix is not a variable "
                            "matderiv differentiates by",
                            hint=f"differentiate by `{of}`: its derivative holds the derivative "
                            "by each entry", source=expr)


def _declared(decls: dict) -> frozenset:
    """The plain names that the declaration lists give a kind."""
    return frozenset(n for names in decls.values() for n in names)


def _derive_typed(expr, typed, wrt_names, layout, steps, name, check, lang="en",
                  decls=None) -> Derivation:
    f = typed.tree
    var = typed.variables[0]
    all_syms = tuple(typed.symbols)
    if var not in all_syms:
        all_syms = all_syms + (var,)
    if len(wrt_names) == 2:
        if wrt_names[0] != wrt_names[1]:
            raise UnsupportedError("second derivatives with respect to two different variables are not supported",
                                   hint="SPEC 1.4 gives them no shape; differentiate twice by the same variable")
        try:
            first, res = second_derivative(f, var, layout)
        except UnsupportedError as err:
            from .render import default_kind_letters

            found = default_kind_letters(f, typed.variables, _declared(decls or {}))
            if found:  # \frac{n}{2} \|x\|^2 with n a vector by default
                latex_, why = found[0]
                err.hint = (f"`{latex_}` is {why}, which makes the expression not a scalar; if "
                            f"it is a number, declare scalar={{{latex_}}}")
            raise
        checks = [(f, first.natural, "grad" if first.kind == "gradient" else "J"),
                  (first.raw if first.raw is not None else first.natural, res.arranged,
                   res.arrangement)]
    else:
        res = first_derivative(f, var, layout)
        checks = [(f, res.arranged, res.arrangement)]
    if check:
        verify = _verify_module()
        for func, result, arrangement in checks:
            try:
                verify.verify(verify.Check(func, result, var, arrangement), all_syms,
                              seed_text=expr)
            except verify.NotFiniteError as exc:
                raise _not_finite_in_words(exc, typed.spans, expr) from None
    result = res.arranged
    rhs = latex(result)
    if len(rhs) > MAX_RESULT_CHARS:
        raise MatDerivError(f"the derivative is {len(rhs)} characters long when typeset; it is "
                            "not printed",
                            hint=_SPLIT_HINT)
    expansions = katex_expansions(rhs)
    if expansions > latex_printer.KATEX_MAX_EXPAND:
        raise MatDerivError(f"the derivative is too long to typeset: KaTeX would need "
                            f"{expansions} macro expansions, past its limit of "
                            f"{latex_printer.KATEX_MAX_EXPAND}; it is not printed",
                            hint=_SPLIT_HINT)
    if check:
        _check_printed(rhs, f, result, all_syms, decls, expr)
    var_kind = "scalar" if var.shape == ((), ()) else ("vector" if var.cols == ONE else "matrix")
    lhs = latex_derivative_symbol(name, var.latex or var.name, res.kind, layout,
                                  second=len(wrt_names) == 2,
                                  expr_latex=None if name else latex(f), var_kind=var_kind)
    step_lines, step_groups = [], []
    if steps:
        step_lines, step_groups = _steps(f, var, res, layout, name, lang, all_syms, expr, check,
                            first if len(wrt_names) == 2 else None, var_kind)
    return Derivation(latex=rhs, equation=f"{lhs} = {rhs}", steps=step_lines, kind=res.kind,
                      shape=(fmt_dim(result.shape[0]), fmt_dim(result.shape[1])), layout=layout, expr_tree=f, result_tree=result,
                      variables=typed.variables, symbols=all_syms, step_groups=step_groups)
