r"""The results cache on disk (matderiv.cache, issue 6), the lazy imports behind it, the
filter's JSON path, and ``matderiv cache info/clean``.

Every test uses a cache directory of its own (``tmp_path``); conftest.py points the whole
session at a temporary one too, so nothing here touches ~/.cache/matderiv."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from matderiv import cache, cli, render
from matderiv.errors import MatDerivError
from matderiv.pandoc_filter import _filter_json_panflute, filter_json, run_filter
from matderiv.process import process_text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from renderers import pandoc_path  # noqa: E402

DOC = r"""---
title: Cached
matderiv: {layout: denominator}
---

Inline $\nabla f = \matderiv<x^T A x, x>$ and a bad one $\matderiv<x^T \foo x, x>$.

$$\matderiv[steps]<\log\det X, X>$$

A claim $\matderiv[expect={A x}]<x^T A x, x>$ and in text \matderiv<a^T X b, X> too.
"""

# run in a subprocess: process a file or filter its pandoc JSON, then say which heavy modules
# were imported (on stdout, last line) and exit with the status
PROBE = r"""
import io, sys
mode, src, out = sys.argv[1:4]
if mode == "filter":
    from matderiv.pandoc_filter import run_filter
    buf = io.BytesIO()
    with open(src, "rb") as fh:
        status = run_filter(io.BytesIO(fh.read()), buf, sys.stderr)
    with open(out, "wb") as fh:
        fh.write(buf.getvalue())
else:
    from matderiv.cli import main
    status = main(["process", src, "-o", out] + sys.argv[4:])
print(",".join(m for m in ("numpy", "sympy", "lark", "panflute") if m in sys.modules))
sys.exit(status)
"""


def env_for(cache_dir, **extra) -> dict:
    env = dict(os.environ, MATDERIV_CACHE_DIR=str(cache_dir), **extra)
    if "MATDERIV_CACHE" not in extra:
        env.pop("MATDERIV_CACHE", None)
    return env


def to_json(md: Path) -> Path:
    out = md.with_suffix(".json")
    subprocess.run([pandoc_path(), str(md), "-f", "markdown", "-t", "json", "-o", str(out)],
                   check=True, timeout=60)
    return out


def probe(mode, src, out, cache_dir, *args, **extra):
    """(exit status, heavy modules imported, stderr) of one probe run."""
    p = subprocess.run([sys.executable, "-c", PROBE, mode, str(src), str(out), *args],
                       capture_output=True, text=True, env=env_for(cache_dir, **extra),
                       timeout=120)
    lines = p.stdout.strip().splitlines()
    return p.returncode, (lines[-1] if lines else ""), p.stderr


def entries(cache_dir) -> list[Path]:
    d = Path(cache_dir) / "results"
    return sorted(d.glob("*.json")) if d.is_dir() else []


def all_files(cache_dir) -> list[Path]:
    return sorted(p for p in Path(cache_dir).rglob("*") if p.is_file()) \
        if Path(cache_dir).exists() else []


@pytest.fixture
def doc(tmp_path):
    src = tmp_path / "doc.md"
    src.write_text(DOC, encoding="utf-8")
    return src


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("MATDERIV_CACHE_DIR", str(d))
    monkeypatch.delenv("MATDERIV_CACHE", raising=False)
    return d


@pytest.fixture
def counted(monkeypatch):
    """The real engine, counting its calls (still cached on disk: it is render's engine)."""
    real = render.derive
    calls = []

    def engine(expr, wrt, **opts):
        calls.append(expr)
        return real(expr, wrt, **opts)

    monkeypatch.setattr(render, "derive", engine)
    monkeypatch.setattr(render, "_ENGINE", engine)
    return calls


# ------------------------------------------------------------------------------------------
# a cache hit needs no engine
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["filter", "process"])
def test_cache_hit_imports_no_numpy_sympy_or_lark(tmp_path, doc, mode):
    src = to_json(doc) if mode == "filter" else doc
    cdir = tmp_path / "cache"
    code1, heavy1, err1 = probe(mode, src, tmp_path / "out1", cdir)
    code2, heavy2, err2 = probe(mode, src, tmp_path / "out2", cdir)
    assert code1 == code2 == 0
    assert "numpy" in heavy1.split(",")  # the first run computed: the probe sees the engine
    assert not {"numpy", "sympy", "lark"} & set(heavy2.split(",")), heavy2
    assert (tmp_path / "out1").read_bytes() == (tmp_path / "out2").read_bytes()
    assert err1 == err2 and "unknown command" in err2  # errors and claims reported again
    assert "wrong" in err2
    # a cold run (no cache at all) gives the same output
    code3, _, err3 = probe(mode, src, tmp_path / "out3", tmp_path / "other", MATDERIV_CACHE="0")
    assert (tmp_path / "out3").read_bytes() == (tmp_path / "out1").read_bytes() and err3 == err1
    assert not (tmp_path / "other").exists()


def test_fast_path_imports_nothing_of_matderiv_s_machinery(tmp_path):
    md = tmp_path / "plain.md"
    md.write_text("# Title\n\nplain *text* and $x^2$\n", encoding="utf-8")
    src = to_json(md)
    code = ("import sys, io\nfrom matderiv.pandoc_filter import main\n"
            f"sys.stdin = io.TextIOWrapper(open({str(src)!r}, 'rb'))\n"
            "sys.stdout = io.TextIOWrapper(open(sys.argv[1], 'wb'))\n"
            "status = main()\n"
            "heavy = [m for m in ('json', 'panflute', 'yaml', 'numpy', 'lark', 'matderiv.locate',"
            " 'matderiv.render', 'matderiv.process') if m in sys.modules]\n"
            "sys.stderr.write(','.join(heavy))\nsys.exit(status)\n")
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "out.json")],
                       capture_output=True, text=True, env=env_for(tmp_path / "c"), timeout=60)
    assert p.returncode == 0
    assert p.stderr == ""  # none of them
    assert (tmp_path / "out.json").read_bytes() == src.read_bytes()


def test_macros_in_math_only_need_no_panflute(tmp_path):
    md = tmp_path / "m.md"
    md.write_text("# $\\matderiv<x, x>$\n\n::: box\n> quoted $\\matderiv<x^T x, x>$\n:::\n\n"
                  "- item *$\\matderiv<a^T x, x>$*\n\n$$\\matderiv<\\operatorname{tr}X, X>$$\n",
                  encoding="utf-8")
    src = to_json(md)
    for k in (1, 2):
        code, heavy, err = probe("filter", src, tmp_path / f"o{k}", tmp_path / "c")
        assert code == 0 and err == ""
        assert "panflute" not in heavy.split(",")
    out = json.loads((tmp_path / "o2").read_text(encoding="utf-8"))
    blocks = json.dumps(out["blocks"])
    assert "\\\\matderiv" not in blocks and blocks.count("\\\\frac") == 4


# ------------------------------------------------------------------------------------------
# robustness
# ------------------------------------------------------------------------------------------
CORRUPT = [b"", b"\x00\xff garbage", b'{"format": 1, "key": "', b"[1, 2, 3]",
           b'{"format": 999, "key": "K", "value": {}}',
           b'{"format": 1, "key": "not this one", "value": {"latex": "WRONG"}}',
           b'{"format": 1, "key": "K", "value": {"latex": 42, "display": false}}',
           b'{"format": 1, "key": "K", "value": {"latex": "WRONG"}}']


def test_corrupt_entries_are_recomputed_and_rewritten(private_cache, counted):
    first = process_text(DOC, "md")
    n = len(counted)
    files = entries(private_cache)
    assert n >= 4 and len(files) >= 4
    for k, f in enumerate(files):
        f.write_bytes(CORRUPT[k % len(CORRUPT)].replace(b'"K"', json.dumps(f.stem).encode()))
    again = process_text(DOC, "md")
    assert again.text == first.text and again.diagnostics == first.diagnostics
    assert len(counted) == 2 * n  # every macro computed again
    for f in files:  # and every entry rewritten, whole
        entry = json.loads(f.read_text(encoding="utf-8"))
        assert entry["format"] == cache.FORMAT and entry["key"] == f.stem
    third = process_text(DOC, "md")
    assert third.text == first.text and len(counted) == 2 * n  # hits now


def test_errors_and_claims_are_cached_with_positions_relative_to_the_macro(private_cache,
                                                                           counted):
    a = "Some text $\\matderiv<x^T \\foo x, x>$ and $\\matderiv[expect={A x}]<x^T A x, x>$.\n"
    b = "\n\nmore words first,\n  then: $\\matderiv<x^T \\foo x, x>$, $\\matderiv[expect={A x}]<x^T A x, x>$\n"
    ra = process_text(a, "md", filename="a.md")
    n = len(counted)
    rb = process_text(b, "md", filename="b.md")
    assert len(counted) == n  # both from the cache
    cold = process_text(b, "md", {"cache": False}, filename="b.md")
    assert rb.text == cold.text and rb.diagnostics == cold.diagnostics
    assert rb.errors == 1 and rb.wrong == 1 and ra.diagnostics != rb.diagnostics
    assert "b.md:4:24: error: unknown command" in rb.diagnostics[0]
    assert rb.diagnostics[1].startswith("b.md:4:")


def test_stub_engines_never_use_the_disk_cache(private_cache):
    class Stub:
        def __init__(self, expr, wrt, **opts):
            self.latex = self.equation = "STUB"
            self.steps = []

    r = process_text(DOC, "md", derive_fn=Stub)
    assert "STUB" in r.text and all_files(private_cache) == []
    real = process_text(DOC, "md")
    assert "STUB" not in real.text and entries(private_cache)


def test_the_key_holds_options_and_output_context(private_cache, counted):
    one = "$\\matderiv<a^T X b, X>$\n\n$$\\matderiv<a^T X b, X>$$\n\n\\matderiv<a^T X b, X>\n"
    process_text(one, "md")
    assert len(entries(private_cache)) == 2  # inline, display (the text one is display too)
    num = process_text(one, "md", {"layout": "numerator"})
    den = process_text(one, "md", {"layout": "denominator"})
    assert num.text != den.text and len(entries(private_cache)) == 6
    tex = process_text("\\documentclass{article}\n\\begin{document}\n$\\matderiv<a^T X b, X>$\n"
                       "\\end{document}\n", "tex")  # no xcolor: another context
    assert "\\frac" in tex.text and len(entries(private_cache)) == 7


def test_no_cache_option_per_document_and_per_macro(private_cache, counted):
    process_text("---\nmatderiv: {cache: false}\n---\n\n$\\matderiv<x^T x, x>$\n", "md")
    assert all_files(private_cache) == []
    process_text("$\\matderiv<x^T x, x>$\n", "md", {"cache": False})
    assert all_files(private_cache) == []
    with pytest.raises(MatDerivError):
        process_text("x", "md", {"cache": "maybe"})
    r = process_text("$\\matderiv[cache=false]<x^T x, x>$ $\\matderiv<x^T A x, x>$\n", "md")
    assert r.errors == 0 and len(entries(private_cache)) == 1
    r2 = process_text("$\\matderiv[cache=false]<x^T x, x>$ $\\matderiv<x^T A x, x>$\n", "md")
    assert r2.text == r.text and len(entries(private_cache)) == 1


@pytest.mark.parametrize("how", ["metadata", "--no-cache", "MATDERIV_CACHE=0", "filter-metadata"])
def test_cache_false_writes_nothing(tmp_path, doc, how):
    cdir = tmp_path / "cache"
    extra, args, mode, src = {}, [], "process", doc
    if how in ("metadata", "filter-metadata"):
        src = tmp_path / "nocache.md"
        src.write_text(DOC.replace("{layout: denominator}", "{layout: denominator, cache: false}"),
                       encoding="utf-8")
        if how == "filter-metadata":
            mode, src = "filter", to_json(src)
    elif how == "--no-cache":
        args = ["--no-cache"]
    else:
        extra = {"MATDERIV_CACHE": "0"}
    code, heavy, err = probe(mode, src, tmp_path / "out", cdir, *args, **extra)
    assert code == 0 and "numpy" in heavy.split(",") and "unknown command" in err
    assert not cdir.exists(), all_files(cdir)  # not even the parser tables


def test_unwritable_cache_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MATDERIV_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.delenv("MATDERIV_CACHE", raising=False)
    r = process_text(DOC, "md")
    assert r.macros == 5 and r.errors == 1 and "\\frac" in r.text
    assert blocker.read_text() == "not a directory"


def test_parallel_builds_share_the_cache(tmp_path, doc):
    cdir = tmp_path / "cache"
    json_src = to_json(doc)
    procs = []
    for k in range(4):  # started together, two of each kind
        mode, src = ("filter", json_src) if k % 2 else ("process", doc)
        procs.append(subprocess.Popen([sys.executable, "-c", PROBE, mode, str(src),
                                       str(tmp_path / f"out{k}")], env=env_for(cdir),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0, 0, 0], results
    outs = [(tmp_path / f"out{k}").read_bytes() for k in range(4)]
    assert outs[0] == outs[2] and outs[1] == outs[3]
    assert results[0][1] == results[2][1] and results[1][1] == results[3][1]  # diagnostics
    files = all_files(cdir)
    assert not [f for f in files if f.name.startswith(".tmp-")]  # no leftovers
    for f in entries(cdir):
        assert json.loads(f.read_text(encoding="utf-8"))["key"] == f.stem
    # and a later build reads what they wrote
    code, heavy, _ = probe("process", doc, tmp_path / "later", cdir)
    assert code == 0 and "numpy" not in heavy.split(",")
    assert (tmp_path / "later").read_bytes() == outs[0]


def test_lark_parser_tables_are_cached_and_rebuilt_when_broken(tmp_path):
    cdir = tmp_path / "cache"
    code = ("from matderiv.parse import parse\n"
            "print(type(parse(r'x^T A x + \\log\\det X').tree).__name__)\n")
    outs = []
    for k in range(3):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env_for(cdir), timeout=60)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        outs.append(p.stdout)
        (pickle,) = (cdir / "parser").glob("lark-*.pickle")
        assert pickle.stat().st_size > 1000
        if k == 0:
            pickle.write_bytes(b"broken")
    assert outs == ["Add\n"] * 3


# ------------------------------------------------------------------------------------------
# matderiv cache info / clean
# ------------------------------------------------------------------------------------------
def test_cache_info_and_clean(private_cache, capsys):
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert f"location: {private_cache}" in out and "entries: 0 " in out
    process_text(DOC, "md")
    (private_cache / "results" / "stray.txt").write_text("not ours")
    assert cli.main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    n = len(entries(private_cache))
    assert n >= 4 and f"entries: {n} cached result(s)" in out and "size: " in out
    assert cli.main(["cache", "clean"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("removed ") and str(private_cache) in out
    assert entries(private_cache) == [] and (private_cache / "results" / "stray.txt").exists()
    assert cli.main(["cache", "info"]) == 0
    assert "entries: 0 " in capsys.readouterr().out


def test_cache_location_defaults(monkeypatch, tmp_path):
    monkeypatch.delenv("MATDERIV_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == str(tmp_path / "xdg" / "matderiv")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == str(tmp_path / "home" / ".cache" / "matderiv")
    monkeypatch.setenv("MATDERIV_CACHE_DIR", str(tmp_path / "mine"))
    assert cache.cache_dir() == str(tmp_path / "mine")


# ------------------------------------------------------------------------------------------
# the filter's JSON path gives what panflute's whole object model gives
# ------------------------------------------------------------------------------------------
EVERYWHERE = r"""---
lang: en-GB
matderiv: {layout: numerator, symmetric: [A]}
---

# Header $\matderiv<x^T A x, x>$ {#h-matderiv}

Para *emph $\matderiv<a^T x, x>$* [span $\matderiv<x, x>$]{.c} "quoted $\matderiv<b^T x, x>$"
and running text \matderiv<c^T x, x> and `\matderiv<code, x>` and a [link $\matderiv<d^T x, x>$](u).

::: {.box}
> quote $\matderiv<\bad x, x>$
>
> - list $\matderiv[steps]<x^T x, x>$
:::

1. one $\matderiv<e^T x, x>$
2. two \matderiv[show=result]<f^T x, x>

| a | b |
|---|---|
| $\matderiv<g^T x, x>$ | x |

Note.[^1]

[^1]: In a note $\matderiv<h^T x, x>$.

\begin{align}
y &= \matderiv<k^T x, x>
\end{align}

Term
:   definition $\matderiv<m^T x, x>$

```
\matderiv<not, x>
```
"""


class Stub:
    def __init__(self, expr, wrt, **opts):
        if "\\bad" in expr:
            raise MatDerivError("unknown command `\\bad`", position=expr.index("\\bad"))
        self.latex = "R_{" + "".join(ch for ch in expr if ch.isalnum())[:6] + "}"
        self.equation = "E = " + self.latex
        self.steps = ["d f = d x", "= R d x"] if opts.get("steps") else []
        self.kind = "gradient"


@pytest.mark.parametrize("name", ["everywhere", "notes.md", "errors.md", "paper.tex"])
def test_json_path_equals_panflute_object_model(tmp_path, name):
    if name == "everywhere":
        src = tmp_path / "everywhere.md"
        src.write_text(EVERYWHERE, encoding="utf-8")
    else:
        src = ROOT / "tests" / "golden" / name
    fmt = "latex+raw_tex" if name.endswith(".tex") else "markdown"
    text = subprocess.run([pandoc_path(), str(src), "-f", fmt, "-t", "json"], check=True,
                          capture_output=True, text=True, encoding="utf-8", timeout=60).stdout
    e1, e2 = io.StringIO(), io.StringIO()
    got, s1 = filter_json(text, derive_fn=Stub, stderr=e1)
    want, s2 = _filter_json_panflute(text, derive_fn=Stub, stderr=e2)
    assert json.loads(got) == json.loads(want)
    assert (s1, e1.getvalue()) == (s2, e2.getvalue())
    if name == "everywhere":
        assert "macro #7 \\matderiv<\\bad" in e1.getvalue() and got.count("R_{") == 13


def test_json_path_internal_error_passes_the_document_through():
    bad = json.dumps({"pandoc-api-version": [1, 23, 1], "meta": {},
                      "blocks": [{"t": "Nonsense", "c": "\\matderiv<x, x>"}]}).encode()
    out, err = io.BytesIO(), io.StringIO()
    assert run_filter(io.BytesIO(bad), out, err, derive_fn=Stub) == 1
    assert out.getvalue() == bad and "internal error" in err.getvalue()


def test_a_stop_at_the_time_limit_is_not_cached(tmp_path, monkeypatch):
    """A macro stopped by MATDERIV_TIME_LIMIT is computed again next time (with a larger limit
    it succeeds), not served from the cache as an error."""
    import os
    import subprocess
    import sys

    src = tmp_path / "notes.md"
    src.write_text("$\\matderiv<" + " + ".join(f"x^T A_{i % 9} x" for i in range(300))
                   + ", x>$\n", encoding="utf-8")
    env = {**os.environ, "MATDERIV_CACHE_DIR": str(tmp_path / "cache")}
    run = lambda limit: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "matderiv.cli", "process", str(src)], capture_output=True,
        text=True, timeout=120, env={**env, "MATDERIV_TIME_LIMIT": limit})
    first = run("0.02")
    assert "took longer" in first.stderr
    second = run("60")
    assert "took longer" not in second.stderr and "(matderiv error)" not in second.stdout
