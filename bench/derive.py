#!/usr/bin/env python3
"""Time matderiv's `derive` against SymPy's `.diff` over the public corpus.

    .venv/bin/python bench/derive.py [--repeat N [--fresh]] [--no-check] [--timeout S] [--case ID ...] [-v]

For every corpus case this times `matderiv.derive(expr, wrt, **options)` (which includes
matderiv's numerical self-check, but not `evaluate`) and, for the cases that have a SymPy form,
SymPy's `.diff` on the MatrixSymbol expression built exactly as the corpus harness `score.py`
builds it (`SympyEngine`).  It prints the figures; it asserts nothing.  Cases an engine raises
on (or times out on) are counted and listed, never timed.

By default each case runs once, after the cases before it (what a build sees).  ``--repeat N``
keeps the best of N runs, with both engines' in-process caches warm from the earlier runs;
``--repeat N --fresh`` empties both engines' caches before each run (SymPy's cache, with its
expression then built again; matderiv's memos), so the best of N is a single-shot time with
the machine's noise taken out: the steadiest figure for comparing two versions.

The corpus is `<repo>/../shared/corpus/public.yaml` when present, else the vendored
`tests/corpus/public.yaml`; `score.py` is imported from the same directory.
"""
from __future__ import annotations

import argparse
import importlib.util
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIRS = (ROOT.parent / "shared" / "corpus", ROOT / "tests" / "corpus")


def corpus_dir() -> Path:
    for d in CORPUS_DIRS:
        if (d / "public.yaml").is_file() and (d / "score.py").is_file():
            return d
    sys.exit("no corpus found in " + " or ".join(map(str, CORPUS_DIRS)))


def load_score(d: Path):
    spec = importlib.util.spec_from_file_location("matderiv_corpus_score", d / "score.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Timeout(Exception):
    pass


def _alarm(signum, frame):  # noqa: ARG001
    raise Timeout()


def timed(fn, repeat: int, timeout: int, fresh=None) -> float:
    """Best of `repeat` wall times of fn() in ms; exceptions (and Timeout) propagate.
    ``fresh``, when given, is called (untimed) before each run."""
    best = float("inf")
    for _ in range(repeat):
        if fresh is not None:
            fresh()
        if timeout:
            signal.signal(signal.SIGALRM, _alarm)
            signal.alarm(timeout)
        try:
            t0 = time.perf_counter()
            fn()
            best = min(best, (time.perf_counter() - t0) * 1000.0)
        finally:
            if timeout:
                signal.alarm(0)
    return best


def describe(exc: BaseException) -> str:
    if isinstance(exc, Timeout):
        return "timed out"
    msg = str(getattr(exc, "message", None) or exc).splitlines()
    return f"{type(exc).__name__}: {msg[0][:100] if msg else ''}"


#: matderiv's memos that are plain dictionaries (the others are functools caches).
_MEMO_DICTS = (("matderiv.calculus.simplify", "_REWRITTEN"), ("matderiv.verify", "_SIZE_MAPS"))


def matderiv_fresh() -> None:
    """Forget what matderiv's in-process memos hold (simplification results, memoised keys
    and shapes), as in a new process; the parser tables (loaded once per process from the
    disk cache) stay."""
    for module, name in _MEMO_DICTS:
        memo = getattr(sys.modules.get(module), name, None)
        if memo is not None:
            memo.clear()
    for name, mod in list(sys.modules.items()):
        if not name.startswith("matderiv"):
            continue
        for obj in list(vars(mod).values()):
            wrapped = getattr(obj, "__wrapped__", None)
            if hasattr(obj, "cache_clear") and getattr(wrapped, "__module__", "") == name \
                    and wrapped.__name__ not in ("_lark", "_tables", "_no_lexer"):
                obj.cache_clear()


def bench_matderiv(cases, repeat, timeout, fresh=False, check=True):
    try:
        import matderiv
        derive = matderiv.derive
    except Exception as e:  # noqa: BLE001  (engine not there yet, or broken import)
        print(f"matderiv: cannot import derive ({describe(e)})")
        return None, {}
    try:  # warm-up: lazy imports are not charged to the first case
        derive("x^T x", "x")
    except Exception:  # noqa: BLE001
        pass
    times, failed = {}, {}
    for c in cases:
        wrt = c["wrt"][0] if len(c["wrt"]) == 1 else tuple(c["wrt"])
        opts = dict(c.get("options") or {})
        if not check:
            opts["check"] = False
        try:
            times[c["id"]] = timed(lambda: derive(c["expr"], wrt, **opts), repeat, timeout,
                                   matderiv_fresh if fresh else None)
        except Exception as e:  # noqa: BLE001
            failed[c["id"]] = describe(e)
    return times, failed


def bench_sympy(score, cases, repeat, timeout, fresh=False):
    try:
        eng = score.SympyEngine()
    except Exception as e:  # noqa: BLE001
        print(f"sympy: cannot start the baseline ({describe(e)})")
        return None, {}, 0
    times, failed, no_form = {}, {}, 0
    for c in cases:
        src = c.get("sympy")
        if not src:
            no_form += 1
            continue
        try:
            built = {}

            def build(c=c, src=src):
                ns, syms, _ = eng._namespace(c)
                # the corpus's own trusted SymPy strings, as score.py does
                built["expr"] = eval(src, ns)
                built["var"] = syms[score.pyname(c["wrt"][0])]

            def rebuild():  # SymPy's cache emptied, the expression made again (untimed)
                from sympy.core.cache import clear_cache

                clear_cache()
                build()

            build()
            order = len(c["wrt"])

            def diff():
                r = built["expr"].diff(built["var"])
                if order == 2:
                    r = r.diff(built["var"])
                return r
            times[c["id"]] = timed(diff, repeat, timeout, rebuild if fresh else None)
        except Exception as e:  # noqa: BLE001
            failed[c["id"]] = describe(e)
    return times, failed, no_form


def _faster(r: float) -> str:
    """``matderiv is 12.3x faster than SymPy's .diff`` (or slower)."""
    if r >= 1:
        return f"matderiv is {r:.1f}x faster than SymPy's .diff"
    return f"matderiv is {1 / r:.1f}x slower than SymPy's .diff"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=1, help="time each case N times, keep the best")
    ap.add_argument("--fresh", action="store_true",
                    help="before each of the N runs, empty both engines' in-process caches "
                         "(SymPy's cache, then its expression built again; matderiv's memos), "
                         "so that the best of N is a single-shot time with the noise taken out")
    ap.add_argument("--no-check", action="store_true",
                    help="for information only: time matderiv without its numerical self-check "
                         "and read-back (check=false; what the check costs; never how results "
                         "are printed)")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per case and engine")
    ap.add_argument("--case", action="append", help="only these case ids (or id prefixes)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print one line per case")
    args = ap.parse_args(argv)

    d = corpus_dir()
    score = load_score(d)
    cases = score.load_corpus("public")  # score.py reads public.yaml beside itself
    if args.case:
        cases = [c for c in cases if any(c["id"].startswith(k) for k in args.case)]
    print(f"corpus: {d / 'public.yaml'} ({len(cases)} cases), repeat={args.repeat}"
          + (", fresh state before each run" if args.fresh else "")
          + (", matderiv WITHOUT its numerical check (check=false)" if args.no_check else ""))

    m_times, m_failed = bench_matderiv(cases, args.repeat, args.timeout, args.fresh,
                                       check=not args.no_check)
    s_times, s_failed, s_noform = bench_sympy(score, cases, args.repeat, args.timeout, args.fresh)

    if args.verbose:
        print(f"\n{'id':<44} {'matderiv ms':>12} {'sympy ms':>10}")
        for c in cases:
            cid = c["id"]
            mt = f"{m_times[cid]:.2f}" if m_times and cid in m_times else "raised" if cid in m_failed else "-"
            st = f"{s_times[cid]:.2f}" if s_times and cid in s_times else "raised" if cid in s_failed else "-"
            print(f"{cid:<44} {mt:>12} {st:>10}")
        print()

    for name, failed in (("matderiv", m_failed), ("sympy", s_failed)):
        by_msg: dict[str, list[str]] = {}
        for cid, msg in failed.items():
            by_msg.setdefault(msg, []).append(cid)
        for msg, ids in by_msg.items():
            shown = ", ".join(ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
            print(f"  {name} raised on {len(ids)} case(s) ({shown}): {msg}")

    if m_times is not None:
        print(f"matderiv derive: median {med(list(m_times.values())):.2f} ms per derivative "
              f"over {len(m_times)} cases; skipped {len(m_failed)} (raised or timed out)")
    if s_times is not None:
        print(f"sympy .diff:     median {med(list(s_times.values())):.2f} ms per derivative "
              f"over {len(s_times)} cases; skipped {len(s_failed)} (raised), "
              f"{s_noform} without a SymPy form")
    if m_times and s_times:
        both = sorted(set(m_times) & set(s_times))
        mm = med([m_times[k] for k in both])
        ms = med([s_times[k] for k in both])
        # per case: how many times faster matderiv is (SymPy's time / matderiv's)
        per_case = med([s_times[k] / m_times[k] for k in both if m_times[k] > 0])
        print(f"on the {len(both)} cases both handle: matderiv {mm:.2f} ms, sympy {ms:.2f} ms "
              f"(medians)")
        print(f"=> {_faster(ms / mm)} (ratio of the medians); per case, the median speed-up "
              f"is {per_case:.1f}x")
        if args.no_check:
            print("note: matderiv ran WITHOUT its numerical verification (check=false), for "
                  "information; SymPy's is .diff alone")
        else:
            print("note: matderiv's time includes its numerical verification and LaTeX "
                  "printing; SymPy's is .diff alone")
    return 0 if m_times is not None else 1


if __name__ == "__main__":
    sys.exit(main())
