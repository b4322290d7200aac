r"""Locating macros (matderiv.locate) and typesetting their replacements (matderiv.render):
splitting, options, malformed macros, document regions (math / text / skipped), escapes and
error markers -- the escapes and markers are also rendered by KaTeX and pandoc's texmath."""
from __future__ import annotations

import pytest

from matderiv.errors import MatDerivError
from matderiv.locate import (Macro, MacroError, document_regions, find_macros, line_col,
                             locate_document, locate_math, parse_options, split_top_level)
from matderiv.render import (diagnostic_filter, diagnostic_source, error_latex, escape_text,
                             merge_options, normalize_options, render_macro)


def one(text):
    found = find_macros(text)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------------------------------
# macros
# ------------------------------------------------------------------------------------------
def test_simple_macro_span_line_column():
    text = "see \\matderiv<x^T A x, x> here"
    m = one(text)
    assert isinstance(m, Macro) and m.ok
    assert (m.start, m.end) == (4, 25)
    assert text[m.start:m.end] == m.raw == "\\matderiv<x^T A x, x>"
    assert (m.line, m.column) == (1, 5)
    assert m.expr == "x^T A x" and m.wrt == ["x"] and m.options == {}
    assert text[m.expr_start:m.expr_start + len(m.expr)] == m.expr


def test_line_and_column_are_one_based_on_later_lines():
    text = "a\nbb\n  \\matderiv<a, x>"
    m = one(text)
    assert (m.line, m.column) == (3, 3)
    assert line_col(text, 0) == (1, 1)


def test_second_derivative_and_options():
    m = one(r"\matderiv[steps, layout=numerator, symmetric={A,\Sigma}]<x^T A x, x, x>")
    assert m.wrt == ["x", "x"]
    assert m.options == {"steps": True, "layout": "numerator", "symmetric": r"A,\Sigma"}


@pytest.mark.parametrize("expr", [
    r"f(a, b)", r"[a, b]", r"{a, b}", r"\{a, b\}", r"\left( a, b \right)", r"\left< a, b \right>",
    r"\|a, b\|", r"\lVert a, b \rVert", r"\langle a, b \rangle", r"\left\{ a, b \right\}",
    r"\bigl( a, b \bigr)", r"\frac{a, b}{2}",
])
def test_commas_inside_brackets_do_not_split(expr):
    m = one(r"\matderiv<" + expr + ", x>")
    assert m.ok and m.expr == expr and m.wrt == ["x"]


def test_greater_than_inside_brackets_does_not_close():
    m = one(r"\matderiv<\left< a, b \right> + (c > d), x>")
    assert m.ok and m.wrt == ["x"]


def test_braced_values_and_flags():
    assert parse_options("steps") == {"steps": True}
    assert parse_options("expect={2 A x}, name=f") == {"expect": "2 A x", "name": "f"}
    assert parse_options(" layout = denominator ,") == {"layout": "denominator"}
    assert parse_options("symmetric={A,B}, scalar={a}") == {"symmetric": "A,B", "scalar": "a"}
    assert parse_options("name={f}{g}") == {"name": "{f}{g}"}  # not one outer pair
    assert parse_options("show=result, show=equation") == {"show": "equation"}  # last wins
    assert parse_options("") == {}


@pytest.mark.parametrize("bad", ["=3", "layout=", "la yout=mixed", "symmetric={A,B", "2x=1"])
def test_bad_option_syntax_raises_with_position(bad):
    with pytest.raises(MatDerivError) as ei:
        parse_options(bad)
    assert ei.value.hint
    assert ei.value.position is not None and 0 <= ei.value.position <= len(bad)


def test_split_top_level():
    assert split_top_level(r"A,\Sigma, W_{1,2}") == ["A", r"\Sigma", " W_{1,2}"]
    assert split_top_level("a") == ["a"]


def test_whitespace_and_one_line_break_between_parts():
    m = one("\\matderiv [steps]\n  <x^T A x,\n x>")
    assert m.ok and m.options == {"steps": True} and m.wrt == ["x"]


def test_longer_macro_names_are_not_macros():
    assert find_macros(r"\matderivative<x, x> \matderiv@<x,x>") == []


def test_definitions_of_the_name_are_not_uses():
    text = ("\\providecommand{\\matderiv}{} \\newcommand*\\matderiv{x} \\def\\matderiv#1{}\n"
            "\\let\\matderiv\\relax \\NewDocumentCommand{\\matderiv}{}{} \\matderiv<a, x>")
    assert [m.raw for m in find_macros(text)] == ["\\matderiv<a, x>"]
    assert [m.raw for m in find_macros("\\\\matderiv<a, x> \\\\\\matderiv<b, x>")] == ["\\matderiv<b, x>"]


def test_several_macros_in_order():
    found = find_macros(r"$\matderiv<a, x> + \matderiv<b, y>$")
    assert [m.expr for m in found] == ["a", "b"]


@pytest.mark.parametrize("text, words", [
    (r"\matderiv<x^T A x> tail", "no variable"),
    (r"\matderiv<x^T A x, x tail", "no '>'"),
    (r"\matderiv<(x^T A x, x> tail", "unclosed '('"),
    (r"\matderiv<a, b, c, d>", "4 parts"),
    (r"\matderiv<, x>", "empty expression"),
    (r"\matderiv<a, >", "empty variable"),
    (r"\matderiv[=3]<x, x>", "bad option syntax"),
    (r"\matderiv[steps<x, x>", "not closed by ']'"),
    (r"\matderiv{x}{y}", "must be followed by <EXPR, VAR>"),
])
def test_malformed_macros_are_records_not_exceptions(text, words):
    m = one(text)
    assert isinstance(m, MacroError) and not m.ok
    assert words in m.message, m.message
    assert m.hint
    assert m.start == 0 and m.raw == text[m.start:m.end] and m.end > m.start
    assert 0 <= m.position <= len(text)


def test_unclosed_macro_stops_at_blank_line_dollar_and_next_macro():
    for text, stop in [("\\matderiv<a, x\n\nnext para >", "\\matderiv<a, x"),
                       ("$\\matderiv<a, x$ b>", "\\matderiv<a, x"),
                       ("\\matderiv<a, x \\matderiv<b, y>", "\\matderiv<a, x")]:
        found = find_macros(text)
        assert not found[0].ok and found[0].raw == stop
    assert found[1].ok and found[1].expr == "b"


def test_unclosed_paren_error_span_ends_at_intended_close():
    m = one(r"\matderiv<(x^T A x, x> and more text")
    assert m.raw == r"\matderiv<(x^T A x, x>"
    assert m.position == len(r"\matderiv<")


# ------------------------------------------------------------------------------------------
# document regions
# ------------------------------------------------------------------------------------------
def contexts(text, fmt):
    return [(text[l.macro.start:l.macro.end], l.context) for l in locate_document(text, fmt)]


def test_markdown_contexts():
    text = ("Inline $\\matderiv<a, x>$, display $$\\matderiv<b, x>$$ and text \\matderiv<c, x>.\n"
            "\\(\\matderiv<d, x>\\) \\[\\matderiv<e, x>\\]\n\n"
            "\\begin{align*}\nf &= \\matderiv<g, x>\n\\end{align*}\n")
    got = [(c, ctx) for c, ctx in contexts(text, "md")]
    assert [ctx for _, ctx in got] == ["inline", "display", "text", "inline", "display", "display"]
    envs = [l.env for l in locate_document(text, "md")]
    assert envs == ["$", "$$", "", "\\(", "\\[", "align*"]


def test_markdown_skips_code_and_front_matter():
    text = ("---\ntitle: \\matderiv<fm, x>\n---\n\n"
            "`\\matderiv<span, x>` and ``a ` \\matderiv<span2, x>``\n\n"
            "```\n\\matderiv<fenced, x>\n```\n\n"
            "~~~~ python\n\\matderiv<tilde, x>\n~~~~\n\n"
            "    \\matderiv<indented, x>\n\n"
            "<!-- \\matderiv<comment, x> -->\n\n"
            "keep \\matderiv<kept, x>\n")
    assert [m for m, _ in contexts(text, "md")] == ["\\matderiv<kept, x>"]


def test_markdown_list_continuation_is_not_code():
    text = "- item\n\n    \\matderiv<cont, x>\n\n```\n```\n"
    assert contexts(text, "md") == [("\\matderiv<cont, x>", "text")]


def test_markdown_dollar_rules():
    # "$5 and $6": not math (space before the closing $); an escaped \$ is no delimiter
    text = "costs $5 and $6 \\matderiv<a, x> and \\$ \\matderiv<b, x> \\$"
    assert [c for _, c in contexts(text, "md")] == ["text", "text"]


def test_unclosed_code_span_is_literal():
    text = "a ` b \\matderiv<a, x>"
    assert contexts(text, "md") == [("\\matderiv<a, x>", "text")]


def test_latex_comments_verbatim_and_math():
    text = ("Text \\matderiv<a, x> 50\\% $\\matderiv<b, x>$ % \\matderiv<comment, x>\n"
            "\\\\% \\matderiv<comment2, x>\n"
            "\\verb|\\matderiv<verb, x>| \\verb*+\\matderiv<verb2, x>+ \\lstinline{\\matderiv<l, x>}\n"
            "\\begin{verbatim}\n\\matderiv<v, x>\n\\end{verbatim}\n"
            "\\begin{lstlisting}[language=TeX]\n\\matderiv<v, x>\n\\end{lstlisting}\n"
            "\\begin{minted}{latex}\n\\matderiv<v, x>\n\\end{minted}\n"
            "\\begin{equation}\n\\matderiv<c, x> % \\matderiv<incomment, x>\n\\end{equation}\n"
            "\\begin{multline*}\n\\matderiv<d, x>\n\\end{multline*}\n"
            "$\\text{if $y$ then} \\matderiv<e, x>$\n")
    got = contexts(text, "tex")
    assert got == [("\\matderiv<a, x>", "text"), ("\\matderiv<b, x>", "inline"),
                   ("\\matderiv<c, x>", "display"), ("\\matderiv<d, x>", "display"),
                   ("\\matderiv<e, x>", "inline")]


def test_regions_cover_the_document_in_order():
    for fmt, text in [("md", "a $b$ `c` $$d$$\n\n    e\n"), ("tex", "a $b$ % c\n\\[d\\] \\verb|e|")]:
        regions = document_regions(text, fmt)
        assert regions[0].start == 0 and regions[-1].end == len(text)
        for r1, r2 in zip(regions, regions[1:]):
            assert r1.end == r2.start


def test_alone_on_its_line():
    text = "intro\n  \\matderiv<a, x>  \nmid \\matderiv<b, x>\n\\matderiv<c, x> % note\n"
    assert [l.alone for l in locate_document(text, "tex")] == [True, False, True]
    assert [l.alone for l in locate_document(text, "md")] == [True, False, False]
    assert locate_document(text, "tex")[0].indent == "  "


def test_macros_in_the_body_of_a_latex_definition_are_marked():
    text = ("\\newcommand{\\ga}{\\matderiv<a, x>}\n"
            "\\renewcommand*\\gb[2][x]{see \\matderiv<b, x>, {\\bf b}}\n"
            "\\NewDocumentCommand{\\gc}{m O{\\alpha}}{\\matderiv<c, x>}\n"
            "\\def\\gd#1#2{\\matderiv<d, x>}\n"
            "\\newenvironment{ge}[1]{\\matderiv<e, x>}\n  {\\matderiv<f, x>}\n"
            "\\newcommand{\\gm}{$\\matderiv<m, x>$}\n"
            "% \\newcommand{\\gz}{\n"
            "Text \\matderiv<g, x> {\\matderiv<h, x>} \\mbox{\\matderiv<i, x>}\n")
    got = [(l.macro.expr, l.context, l.in_definition) for l in locate_document(text, "tex")]
    assert got == [("a", "text", True), ("b", "text", True), ("c", "text", True),
                   ("d", "text", True), ("e", "text", True), ("f", "text", True),
                   ("m", "inline", False), ("g", "text", False), ("h", "text", False),
                   ("i", "text", False)]
    # pandoc's Markdown reader takes such definitions too (and expands them in math)
    got_md = [(l.macro.expr, l.in_definition) for l in locate_document(text, "md")]
    assert got_md[:6] == [(e, True) for e in "abcdef"]  # (% is no comment there)


@pytest.mark.parametrize("math, before, after", [
    (r"\nabla f = \matderiv<a, x>", "free", "free"),
    (r"y = 2\matderiv<a, x>", "digit", "free"),
    (r"-\matderiv<a, x>^2", "minus", "postfix"),
    (r"\pm \matderiv<a, x>,", "minus", "free"),
    (r"x + \matderiv<a, x>\, y", "plus", "factor"),
    (r"a \cdot \matderiv<a, x> b", "factor", "factor"),
    (r"\frac{1}{2}\matderiv<a, x>_i", "factor", "postfix"),
    (r"\left(\matderiv<a, x>\right)^2", "free", "free"),
    (r"\text{see } \matderiv<a, x> \text{ here}", "free", "free"),
    (r"\begin{aligned} f &\le \matderiv<a, x> \\ \end{aligned}", "free", "free"),
    (r"\boxed{\matderiv<a, x>}'", "free", "free"),
])
def test_what_binds_a_macro_in_math(math, before, after):
    (loc,) = locate_math(math, False)
    assert (loc.before, loc.after) == (before, after)
    (loc,) = locate_document("$" + math + "$", "md")
    assert (loc.before, loc.after) == (before, after)


@pytest.mark.parametrize("math, in_text", [
    (r"\text{grad: \matderiv<a, x>}", True),
    (r"a \mbox{ is \matderiv<a, x>}", True),
    (r"\text{see {\bf \matderiv<a, x>}}", True),
    (r"\text{a $\frac{1}{2}\matderiv<a, x>$ b}", False),   # back in math within the text
    (r"\text{a} \matderiv<a, x>", False),
    (r"\frac{\matderiv<a, x>}{2}", False),
    (r"\text{a \{ \} } + \matderiv<a, x>", False),
])
def test_a_macro_in_a_text_group_of_math(math, in_text):
    (loc,) = locate_math(math, False)
    assert loc.in_text is in_text
    (loc,) = locate_document("$" + math + "$", "tex")
    assert loc.in_text is in_text


def test_a_definition_head_does_not_backtrack_for_long():
    import time

    t0 = time.perf_counter()
    for head in ("\\newcommand{\\g}" + "[x]" * 5000, "\\NewDocumentCommand{\\g}{" + "{" * 5000,
                 "\\def\\g" + " " * 20000, "\\newenvironment{" + "a" * 20000):
        locate_document(head + "\\matderiv<a, x>", "tex")
    # what stands around a macro in math: spacing before it was stripped by a regular
    # expression anchored at the end, quadratic on long runs (8 000 took 8 s)
    for math in ("~" * 20000 + "\\," * 20000 + "q\\matderiv<a, x>",
                 "q" + "\\quad " * 20000 + "\\matderiv<a, x>" + "\\;" * 20000 + "y",
                 "\\text{a" * 20000 + "\\matderiv<a, x>"):
        locate_math(math, False)
        locate_document("$" + math + "$", "md")
    assert time.perf_counter() - t0 < 3


def test_math_string_skips_comments():
    found = locate_math("\\matderiv<a, x> % \\matderiv<b, x>\n+ \\matderiv<c, x>", True)
    assert [l.macro.expr for l in found] == ["a", "c"]
    assert {l.context for l in found} == {"display"}


# ------------------------------------------------------------------------------------------
# options for derive
# ------------------------------------------------------------------------------------------
def test_normalize_options():
    got = normalize_options({"steps": True, "check": "false", "symmetric": r"A,\Sigma",
                             "scalar": ["a", "b,c"], "layout": "numerator", "strict": "yes",
                             "other": "kept"})
    assert got == {"steps": True, "check": False, "symmetric": ["A", r"\Sigma"],
                   "scalar": ["a", "b", "c"], "layout": "numerator", "strict": True,
                   "other": "kept"}
    for bad in ({"steps": "maybe"}, {"layout": True}, {"symmetric": True}):
        with pytest.raises(MatDerivError):
            normalize_options(bad)


def test_merge_later_layers_win():
    assert merge_options({"layout": "mixed", "steps": False}, {"layout": "numerator"},
                         {"steps": True}) == {"layout": "numerator", "steps": True}


# ------------------------------------------------------------------------------------------
# rendering with a stub engine
# ------------------------------------------------------------------------------------------
class Stub:
    def __init__(self, expr, wrt, **opts):
        if "\\bad" in expr:
            raise MatDerivError("unknown command `\\bad`", position=expr.index("\\bad"),
                                hint="use a known function", end=expr.index("\\bad") + 4)
        self.opts = opts
        self.latex = "R_{N}"
        self.equation = "L = R_{N}"
        self.steps = ["d f = d x", "= R_{N} d x"] if opts.get("steps") else []
        self.kind = "gradient"


def test_render_equation_result_and_options_reach_derive():
    seen = {}

    def stub(expr, wrt, **opts):
        seen.update(opts, expr=expr, wrt=wrt)
        return Stub(expr, wrt, **opts)

    m = one(r"\matderiv[symmetric={A}, check=false]<x^T A x, x>")
    r = render_macro(m, {"layout": "numerator", "symmetric": ["B"], "strict": True}, derive_fn=stub)
    assert r.latex == "L = R_{N}" and r.error is None
    assert seen == {"layout": "numerator", "symmetric": ["A"], "check": False,
                    "expr": "x^T A x", "wrt": "x"}
    r = render_macro(one(r"\matderiv[show=result]<a, x, x>"), {}, derive_fn=stub)
    assert r.latex == "R_{N}" and seen["wrt"] == ("x", "x")


def test_render_steps_only_in_display_math():
    m = one(r"\matderiv[steps]<x^T A x, x>")
    r = render_macro(m, {}, math="display", derive_fn=Stub)
    assert r.display
    assert r.latex == ("\\begin{aligned} d f &= d x \\\\ &= R_{N} d x \\\\ L &= R_{N} "
                       "\\end{aligned}")
    r = render_macro(m, {}, math="inline", derive_fn=Stub)
    assert r.latex == "L = R_{N}" and not r.display and r.notes


def test_steps_block_does_not_repeat_an_identification_line():
    class Shown(Stub):
        def __init__(self, expr, wrt, **opts):
            super().__init__(expr, wrt, **opts)
            self.steps = ["d f &= R_{N} d x \\quad \\text{rule}",
                          "\\Rightarrow\\quad L &= R_{N}\\quad \\text{identify}"]

    for show in ("equation", "result"):
        m = one(rf"\matderiv[steps, show={show}]<x^T A x, x>")
        r = render_macro(m, {}, math="display", derive_fn=Shown, sep="\n")
        assert r.latex == ("\\begin{aligned}\nd f &= R_{N} d x \\quad \\text{rule} \\\\\n"
                           "\\Rightarrow\\quad L &= R_{N}\\quad \\text{identify}\n\\end{aligned}")


def test_render_errors_keep_the_authors_text_and_position():
    text = r"$\matderiv<x^T \bad x, x>$"
    m = one(text)
    r = render_macro(m, {}, derive_fn=Stub)
    assert r.error is not None and "\\bad" in r.error.message
    assert text[r.error_offset:r.error_end] == "\\bad"
    assert r.latex.startswith("{\\color{red}{\\frac{\\partial}{\\partial x}\\left(")
    assert "\\textbackslash{}bad" in r.latex and "\\bad" not in r.latex
    # a malformed macro and an engine crash are errors too, never exceptions
    r = render_macro(one(r"\matderiv<x^T A x>"), {}, derive_fn=Stub)
    assert r.error is not None and "matderiv error" in r.latex

    def crash(expr, wrt, **o):
        raise ZeroDivisionError("boom")

    r = render_macro(one(r"\matderiv<a, x>"), {}, derive_fn=crash)
    assert "internal error" in r.error.message
    r = render_macro(one(r"\matderiv[strict]<a, x>"), {}, derive_fn=Stub)
    assert "whole document" in r.error.message


def test_escape_text_lets_no_command_through():
    s = escape_text(r"\foo{x}_1^2 & $ # % ~ <a|b> \\")
    assert "\\foo" not in s
    import re

    commands = set(re.findall(r"\\[A-Za-z]+", s))
    assert commands <= {"\\text", "\\textbackslash", "\\textasciicircum", "\\textasciitilde"}
    assert error_latex(None, None, r"\matderiv<\foo, x>", color=False).count("\\color") == 0
    assert "\\partial \\text{\\textbackslash{}foo}" in error_latex("a", [r"\foo"])
    assert "\\partial \\mathbf{x}" in error_latex("a", [r"\mathbf{x}"])
    assert "\\partial^{2}" in error_latex("a", ["x", "x"])


ESCAPE_SAMPLES = [
    error_latex(r"x^T \foo{A}_1 x + \|y\|~ & $ # % 'q' `r` é", ["x"]),
    error_latex(None, None, r"\matderiv[steps]<(x^T A x, \Sigma>"),
    error_latex(r"\log|X| \\ \{a\}", [r"\Sigma", r"W_{1}"]),
    error_latex("a", [r"\boldsymbol{\theta}", r"\weird"]),
    "f = " + error_latex("x", ["x"]) + " + 1",
    "\\begin{aligned} d f &= d x \\\\ L &= R_{N} \\end{aligned}",
]


def test_error_markers_render_in_katex_and_texmath():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from renderers import RenderToolMissing, katex_errors, pandoc_errors

    try:
        assert katex_errors(ESCAPE_SAMPLES) == {}
        assert katex_errors(ESCAPE_SAMPLES[:5], display=False) == {}
    except RenderToolMissing as exc:  # KaTeX needs node; texmath is checked all the same
        print("KaTeX check skipped:", exc)
    assert pandoc_errors(ESCAPE_SAMPLES) == {}


# ------------------------------------------------------------------------------------------
# diagnostics
# ------------------------------------------------------------------------------------------
def test_diagnostic_source_format():
    text = "line one\n\tsee $\\matderiv<\\bad x, x>$\n"
    off = text.index("\\bad")
    d = diagnostic_source("doc.md", text, off, "unknown command", "use a known one", off + 4)
    lines = d.splitlines()
    assert lines[0] == "doc.md:2:17: error: unknown command"
    assert lines[1] == "  \tsee $\\matderiv<\\bad x, x>$"
    assert lines[2] == "  \t" + " " * 15 + "^^^^"
    assert lines[3] == "  hint: use a known one"


def test_diagnostic_filter_is_one_line():
    d = diagnostic_filter(3, "\\matderiv<a,\n x>", "bad", "do this")
    assert d == "pandoc-matderiv: macro #3 \\matderiv<a, x>: error: bad; hint: do this"
    assert "\n" not in diagnostic_filter(1, "\\matderiv<" + "a" * 200 + ", x>", "m")


def test_a_macro_may_go_on_after_comment_lines():
    r"""A ``%`` comment inside a macro that spans lines (LaTeX, or KaTeX math) ended the macro
    ("no '>' closes"); it is skipped as TeX skips it, end of line included, so a line that
    holds only a comment (a commented-out term) is no blank line; a macro in a comment stays
    unseen, and lines and columns are those of the source."""
    text = ("\\begin{align}\n"
            "a &= \\matderiv<x^\\top x, x> \\\\\n"
            "% b &= \\matderiv<y^\\top y, y> \\\\\n"
            "c &= \\matderiv<x^\\top A x % the form\n"
            "  % + b^\\top x\n"
            "  , x> % trailing\n"
            "\\end{align}\n")
    got = locate_document(text, "tex")
    assert [loc.macro.raw.split()[0] for loc in got] == ["\\matderiv<x^\\top", "\\matderiv<x^\\top"]
    second = got[1].macro
    assert isinstance(second, Macro) and second.expr.split() == ["x^\\top", "A", "x"]
    assert second.wrt == ["x"] and (second.line, second.column) == (4, 6)
    assert text[second.end - 1] == ">" and text.index("% trailing") > second.end
    math = "\\matderiv<x^\\top A x % c\n, x>"
    (loc,) = locate_math(math, True)
    assert loc.macro.expr.split() == ["x^\\top", "A", "x"] and loc.macro.end == len(math)
    bad = "$$\n% a comment\n\\matderiv<x^\\top A x % c\n$$"
    (err,) = locate_document(bad, "md")
    assert isinstance(err.macro, MacroError) and err.macro.line == 3
