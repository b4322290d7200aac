#!/usr/bin/env python3
"""Time ``pandoc --filter pandoc-matderiv`` against a pass-through JSON filter.

    .venv/bin/python bench/filter.py [--paragraphs N] [--macros M] [--distinct D] [--runs R]

Generates a Markdown document of N paragraphs (default 2000) twice: without any macro, and with
M of its paragraphs (default 200) holding one ``\\matderiv`` macro each, D of them distinct
(default 50: each is written M/D times; taken from the public corpus, inline ``$...$`` and
display ``$$...$$``).  Then times ``pandoc -f markdown -t html`` (the wheel's pandoc, from
pypandoc-binary) on each document:

- with no filter at all (the floor);
- with a pass-through JSON filter, a tiny Python script that copies stdin to stdout (what any
  JSON filter costs: pandoc writes the AST as JSON, a Python starts, pandoc reads it back);
- with ``pandoc-matderiv``: on the macro-free document; on the document with macros with a cold
  results cache (a fresh, empty ``MATDERIV_CACHE_DIR`` for every run) and with a warm one (the
  same directory, filled by a first untimed run).

Prints the median wall time and CPU time (user + system, of pandoc and its filter) of R runs
(default 5) of each, taken round robin, and the ratios to the pass-through filter on the same
document; CPU time is the steadier figure on a busy machine.  Then the filters alone on the JSON
pandoc gives them (3R runs each): what each adds to a build, without pandoc's time around it.  Python runs with its bytecode cache
on (kept in the bench's temporary directory), as it does for users, unless --as-is.

It prints figures; it asserts nothing.  The targets of issue 6: macro-free <= 1.1x the
pass-through, 200 macros on a warm cache <= 1.3x; cold cache: reported.
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = (ROOT.parent / "shared" / "corpus" / "public.yaml", ROOT / "tests" / "corpus" / "public.yaml")

WORDS = ("the gradient of a loss with respect to the weights is computed once per batch and "
         "then used by the optimiser which keeps a running average of its square so that "
         "each coordinate gets a step size of its own while the learning rate decays slowly "
         "over the epochs of training").split()


def pandoc_path() -> str:
    try:
        import pypandoc

        return pypandoc.get_pandoc_path()
    except Exception:  # noqa: BLE001
        p = shutil.which("pandoc")
        if not p:
            sys.exit("no pandoc: install pypandoc-binary (make install) or put pandoc on PATH")
        return p


def filter_exe() -> str:
    exe = Path(sys.executable).parent / "pandoc-matderiv"
    if exe.exists():
        return str(exe)
    p = shutil.which("pandoc-matderiv")
    if not p:
        sys.exit("no pandoc-matderiv: run make install")
    return p


def corpus_macros(n: int) -> list[str]:
    """``n`` distinct macros from the public corpus (cycling through its cases, with
    ``show=result`` added on a second pass when there are fewer cases than ``n``)."""
    import yaml

    path = next((p for p in CORPUS if p.is_file()), None)
    if path is None:
        sys.exit("no corpus: " + " or ".join(map(str, CORPUS)))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = data["cases"] if isinstance(data, dict) else data
    out: list[str] = []
    k = 0
    while len(out) < n:
        c = cases[k % len(cases)]
        opts = []
        for key, v in (c.get("options") or {}).items():
            if isinstance(v, list):
                v = "{" + ",".join(v) + "}"
            opts.append(f"{key}={v}")
        if k >= len(cases):
            opts.append("show=result")
        k += 1
        o = "[" + ", ".join(opts) + "]" if opts else ""
        m = f"\\matderiv{o}<{c['expr']}, {', '.join(c['wrt'])}>"
        if m not in out:
            out.append(m)
    return out


def paragraph(i: int, macro: str = "") -> str:
    """About 60 words with emphasis, code and a formula; ``macro`` (inline math) in the middle."""
    words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(60)]
    words[3] = "*" + words[3] + "*"
    words[11] = "`" + words[11] + "`"
    words[20] = "$a_{%d} + b$" % i
    if macro:
        words[30] = "$" + macro + "$"
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def documents(n: int, m: int, d: int) -> tuple[str, str]:
    paras = [paragraph(i) for i in range(n)]
    plain = "# A long document\n\n" + "\n\n".join(paras) + "\n"
    macros = corpus_macros(d)
    step = max(1, n // m)
    with_macros = list(paras)
    for j in range(m):
        mac = macros[j % d]
        i = j * step
        if j % 4 == 3:  # one in four in display math, after the paragraph
            with_macros[i] += "\n\n$$" + mac + "$$"
        else:
            with_macros[i] = paragraph(i, mac)
    return plain, "# A long document\n\n" + "\n\n".join(with_macros) + "\n"


def run_on(cmd, src: Path, env=None) -> tuple[float, float]:
    """:func:`run` with ``src`` on standard input."""
    with open(src, "rb") as fh:
        return run(cmd, env, stdin=fh)


def run(cmd, env=None, stdin=None) -> tuple[float, float]:
    """(wall time, CPU time of pandoc and its filter: user + system) of one run, in seconds."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=env)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode()[:2000]}")
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--paragraphs", type=int, default=2000)
    ap.add_argument("--macros", type=int, default=200)
    ap.add_argument("--distinct", type=int, default=50)
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (the median is kept)")
    ap.add_argument("--as-is", action="store_true",
                    help="run Python with the environment as it is (by default the bench turns "
                         "the bytecode cache on, in a directory of its own, as Python normally "
                         "runs)")
    args = ap.parse_args(argv)

    pandoc = pandoc_path()
    flt = filter_exe()
    version = subprocess.run([pandoc, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {version}")
    with tempfile.TemporaryDirectory(prefix="matderiv-bench-") as tmp:
        tmp = Path(tmp)
        plain, macros = documents(args.paragraphs, args.macros, args.distinct)
        (tmp / "plain.md").write_text(plain, encoding="utf-8")
        (tmp / "macros.md").write_text(macros, encoding="utf-8")
        passthru = tmp / "passthrough"
        passthru.write_text(f"#!{sys.executable}\nimport sys\n"
                            "sys.stdout.buffer.write(sys.stdin.buffer.read())\n", encoding="utf-8")
        passthru.chmod(0o755)
        print(f"documents: {args.paragraphs} paragraphs ({len(plain) // 1024} KiB); the second "
              f"with {args.macros} macros, {args.distinct} distinct; median of {args.runs} runs")

        base_env = dict(os.environ)
        base_env.pop("MATDERIV_CACHE", None)
        if not args.as_is:
            # Python as users run it: bytecode cached (in a directory of this bench, so that
            # nothing is written beside the sources), whatever PYTHONDONTWRITEBYTECODE says
            base_env.pop("PYTHONDONTWRITEBYTECODE", None)
            base_env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        cold, warm = tmp / "cold-cache", tmp / "warm-cache"
        env_cold = dict(base_env, MATDERIV_CACHE_DIR=str(cold))
        env_warm = dict(base_env, MATDERIV_CACHE_DIR=str(warm))

        def wipe():
            shutil.rmtree(cold, ignore_errors=True)

        def base(doc):
            return [pandoc, str(tmp / doc), "-f", "markdown", "-t", "html", "-o", os.devnull]

        n = f"{args.macros} macros"
        # (document label, what, command, env, hook run before each timed run)
        configs = [
            ("no macros", "pandoc alone, no filter", base("plain.md"), base_env, None),
            ("no macros", "pass-through JSON filter", base("plain.md") + ["--filter", str(passthru)],
             base_env, None),
            ("no macros", "pandoc-matderiv", base("plain.md") + ["--filter", flt], env_cold, wipe),
            (n, "pandoc alone, no filter", base("macros.md"), base_env, None),
            (n, "pass-through JSON filter", base("macros.md") + ["--filter", str(passthru)],
             base_env, None),
            (n, "pandoc-matderiv, cold cache", base("macros.md") + ["--filter", flt], env_cold,
             wipe),
            (n, "pandoc-matderiv, warm cache", base("macros.md") + ["--filter", flt], env_warm,
             None),
        ]
        t0 = time.perf_counter()
        # untimed: pandoc's binary into the page cache, Python's bytecode cache filled, the
        # warm results cache filled
        run(base("plain.md") + ["--filter", str(passthru)], base_env)
        run(base("plain.md") + ["--filter", flt], env_warm)
        run(base("macros.md") + ["--filter", flt], env_warm)
        times: dict = {k: [] for k in range(len(configs))}
        for _ in range(args.runs):  # round robin, so that a slow moment of the machine is shared
            for k, (_, _, cmd, env, hook) in enumerate(configs):
                if hook is not None:
                    hook()
                times[k].append(run(cmd, env))
        # the filters alone, on the JSON pandoc hands them: what each adds to a build, measured
        # without pandoc's own time (and its noise) around it
        for doc in ("plain", "macros"):
            subprocess.run([pandoc, str(tmp / f"{doc}.md"), "-f", "markdown", "-t", "json",
                            "-o", str(tmp / f"{doc}.json")], check=True, env=base_env)
        alone_cfg = [("no macros", "pass-through JSON filter", [str(passthru)], "plain", base_env,
                      None),
                     ("no macros", "pandoc-matderiv", [flt, "html"], "plain", env_cold, wipe),
                     (n, "pass-through JSON filter", [str(passthru)], "macros", base_env, None),
                     (n, "pandoc-matderiv, cold cache", [flt, "html"], "macros", env_cold, wipe),
                     (n, "pandoc-matderiv, warm cache", [flt, "html"], "macros", env_warm, None)]
        alone: dict = {k: [] for k in range(len(alone_cfg))}
        for _ in range(3 * args.runs):
            for k, (_, _, cmd, doc, env, hook) in enumerate(alone_cfg):
                if hook is not None:
                    hook()
                alone[k].append(run_on(cmd, tmp / f"{doc}.json", env))
        total = time.perf_counter() - t0
        wall = {k: statistics.median(t for t, _ in v) for k, v in times.items()}
        cpu = {k: statistics.median(c for _, c in v) for k, v in times.items()}
        rows = []
        for k, (label, what, *_rest) in enumerate(configs):
            pt = next(j for j, c in enumerate(configs)
                      if c[0] == label and c[1].startswith("pass-through"))
            rows.append((label, what, wall[k], wall[pt], cpu[k], cpu[pt]))

    print("Python bytecode: " + ("as the environment says" if args.as_is else
                                 "cached (PYTHONPYCACHEPREFIX in the bench's directory)"))
    print()
    print(f"{'document':<12} {'pandoc md -> html':<30} {'wall s':>7} {'ratio':>7}   "
          f"{'CPU s':>7} {'ratio':>7}")
    for label, what, t, pt, c, pc in rows:
        print(f"{label:<12} {what:<30} {t:>7.3f} {t / pt:>6.2f}x   {c:>7.3f} {c / pc:>6.2f}x")
    print()
    print("wall: median elapsed time; CPU: median user + system time of pandoc and the filter; "
          "ratio: to the pass-through filter on the same document")
    print()
    print(f"the filter alone on pandoc's JSON of the document (median of {3 * args.runs} runs):")
    print(f"{'document':<12} {'filter':<30} {'wall ms':>8} {'added':>9}   (to the pass-through)")
    for k, (label, what, *_rest) in enumerate(alone_cfg):
        pt = next(j for j, c in enumerate(alone_cfg)
                  if c[0] == label and c[1].startswith("pass-through"))
        w, wp = (statistics.median(t for t, _ in alone[j]) * 1000 for j in (k, pt))
        added = "" if k == pt else f"{w - wp:+8.0f}"
        print(f"{label:<12} {what:<30} {w:>8.0f} {added:>9}")
    print()
    print("targets (issue 6): no macros <= 1.10x the pass-through; "
          f"{args.macros} macros on a warm cache <= 1.30x; cold cache: reported")
    print(f"bench time: {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
