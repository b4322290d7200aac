"""The ``matderiv`` command line (SPEC 3): ``diff``, ``process``, ``check`` and ``cache``.

Owns argument parsing, the terminal output of ``matderiv diff``, and the rule that no traceback
ever reaches the user (``MATDERIV_DEBUG=1`` shows one).  Delegates all work to the API.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _decl(values):
    out = []
    for v in values or []:
        v = v.strip()
        if v.startswith("{") and v.endswith("}"):
            v = v[1:-1]
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def _diff_parser(sub):
    p = sub.add_parser("diff", help="one derivative to the terminal",
                       description="Differentiate EXPR with respect to the variable(s) given by --wrt.")
    p.add_argument("expr", help="the expression, LaTeX or ASCII, e.g. 'x^T A x'")
    p.add_argument("--wrt", action="append", required=True,
                   help="the variable; give it twice (or 'x,x') for a second derivative")
    p.add_argument("--layout", choices=["mixed", "numerator", "denominator"], default="mixed")
    p.add_argument("--steps", action="store_true", help="also print the derivation")
    p.add_argument("--show", choices=["equation", "result"], default="equation")
    p.add_argument("--name", help="name of the function on the left-hand side, e.g. f")
    p.add_argument("--lang", default="en",
                   help="language of the words in the steps: en (default) or zh")
    p.add_argument("--expect", metavar="LATEX",
                   help="a claimed result to check; exit status 1 when it is wrong")
    for key in ("scalar", "vector", "matrix", "symmetric"):
        p.add_argument("--" + key, action="append", metavar="NAMES",
                       help=f"declare {key} symbols (comma separated)")
    p.add_argument("--no-check", action="store_true", help="skip numerical verification")
    p.add_argument("--json", action="store_true",
                   help='print {"latex", "equation", "steps", "shape", "kind", "numpy"} '
                        '(and "verdict" with --expect)')
    return p


def _cmd_diff(args) -> int:
    from . import derive

    wrt = [w for item in args.wrt for w in _decl([item])]
    d = derive(args.expr, wrt[0] if len(wrt) == 1 else wrt, layout=args.layout, steps=args.steps,
               show=args.show, name=args.name, scalar=_decl(args.scalar), vector=_decl(args.vector),
               matrix=_decl(args.matrix), symmetric=_decl(args.symmetric), check=not args.no_check,
               lang=args.lang, expect=args.expect)
    status = 0 if d.verdict is None or d.verdict.ok else 1
    from .render import derivation_notes

    for note in derivation_notes(d):
        print("matderiv: note: " + note, file=sys.stderr)
    if args.json:
        out = {"latex": d.latex, "equation": d.equation, "steps": d.steps,
               "shape": list(d.shape), "kind": d.kind, "numpy": d.numpy_source}
        if d.verdict is not None:
            out["verdict"] = {"ok": d.verdict.ok, "diagnosis": d.verdict.diagnosis,
                              "message": d.verdict.message}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return status
    print(d.equation if args.show == "equation" else d.latex)
    for line in d.steps:
        print("  " + line)
    if d.verdict is not None:
        print(("claim holds: " if d.verdict.ok else "claim is wrong: ") + d.verdict.message)
    return status


def _process_parser(sub):
    p = sub.add_parser("process", help="replace every macro of a .md or .tex file",
                       description="Replace every \\matderiv macro of a Markdown or LaTeX source; "
                                   "every other byte is left as it was.  Options given here apply "
                                   "to the whole document and win over its YAML metadata; a "
                                   "macro's own [options] win over both.")
    p.add_argument("input", help="the source file (.md or .tex), or - for standard input")
    p.add_argument("-o", "--output", help="where to write the result (default: standard output)")
    p.add_argument("--format", choices=["md", "tex"], help="the input format (default: from the "
                                                              "file extension)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any macro fails or any claim (expect=) is wrong (the "
                        "output is written all the same)")
    p.add_argument("--layout", choices=["mixed", "numerator", "denominator"])
    p.add_argument("--steps", action="store_true", default=None, help="typeset the derivations")
    p.add_argument("--show", choices=["equation", "result"])
    p.add_argument("--lang", help="language of the words in the steps, e.g. en")
    for key in ("scalar", "vector", "matrix", "symmetric"):
        p.add_argument("--" + key, action="append", metavar="NAMES",
                       help=f"declare {key} symbols for the whole document (comma separated)")
    p.add_argument("--no-check", dest="check", action="store_false", default=None,
                   help="skip numerical verification")
    _no_cache_option(p)
    return p


def _no_cache_option(p):
    p.add_argument("--no-cache", dest="cache", action="store_false", default=None,
                   help="neither read nor write the results cache (see matderiv cache info)")


def _cmd_process(args) -> int:
    from .process import process_file

    opts = _doc_options(args, ("layout", "steps", "show", "lang", "check", "cache"))
    return process_file(args.input, args.output, fmt=args.format, options=opts, strict=args.strict)


def _check_parser(sub):
    p = sub.add_parser("check", help="verify every macro and claim of .md/.tex files",
                       description="Compute every \\matderiv macro of the given Markdown or LaTeX "
                                   "sources and check every claim (expect=...), as matderiv "
                                   "process would, without writing anything.  Prints one line "
                                   "per problem (file:line:col: wrong: ... or error: ...) and a "
                                   "summary; exits 1 when a claim is wrong or a macro fails, "
                                   "0 otherwise.  Options given here apply to every document "
                                   "and win over its YAML metadata; a macro's own [options] win "
                                   "over both.")
    p.add_argument("inputs", nargs="+", metavar="FILE", help="the sources (.md or .tex)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list with one object per macro (file, line, column, "
                        "status, message, macro, claim, computed, ...); the summary goes to "
                        "standard error")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list the macros that are fine")
    p.add_argument("--format", choices=["md", "tex"], help="the input format (default: from each "
                                                              "file's extension)")
    p.add_argument("--layout", choices=["mixed", "numerator", "denominator"])
    p.add_argument("--steps", action="store_true", default=None,
                   help="also check the derivations (each line is verified numerically)")
    p.add_argument("--lang", help="language of the words in the steps, e.g. en")
    for key in ("scalar", "vector", "matrix", "symmetric"):
        p.add_argument("--" + key, action="append", metavar="NAMES",
                       help=f"declare {key} symbols for every document (comma separated)")
    p.add_argument("--no-check", dest="check", action="store_false", default=None,
                   help="skip the numerical verification of results (claims are still checked)")
    _no_cache_option(p)
    return p


def _cache_parser(sub):
    p = sub.add_parser("cache", help="show or empty the results cache",
                       description="Results of macros are kept on disk, keyed by the macro, its "
                                   "effective options, the output context and the matderiv "
                                   "version, so that rebuilding a document does not compute "
                                   "them again.  The cache lives in $MATDERIV_CACHE_DIR, else "
                                   "$XDG_CACHE_HOME/matderiv, else ~/.cache/matderiv; "
                                   "MATDERIV_CACHE=0, --no-cache or the option cache=false "
                                   "turn it off.")
    p.add_argument("action", choices=["info", "clean"],
                   help="info: where it is, how many entries, how big; clean: delete it")
    return p


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def _cmd_cache(args) -> int:
    from . import cache

    if args.action == "clean":
        where = cache.cache_dir()
        files, freed = cache.clean()
        print(f"removed {files} file(s), {_size(freed)}, from {where}")
        return 0
    st = cache.info()
    print(f"location: {st['location']}")
    print(f"entries: {st['entries']} cached result(s)"
          + (f", {st['parser_files']} parser file(s)" if st["parser_files"] else ""))
    print(f"size: {_size(st['bytes'])}")
    print(f"key includes: matderiv {st['fingerprint']}")
    if not st["enabled"]:
        print("disabled: MATDERIV_CACHE is set to turn it off")
    return 0


def _doc_options(args, keys) -> dict:
    opts = {k: getattr(args, k) for k in keys}
    for key in ("scalar", "vector", "matrix", "symmetric"):
        if getattr(args, key):
            opts[key] = _decl(getattr(args, key))
    return {k: v for k, v in opts.items() if v is not None}


def _cmd_check(args) -> int:
    from .check import run_check

    return run_check(args.inputs, fmt=args.format,
                     options=_doc_options(args, ("layout", "steps", "lang", "check", "cache")),
                     as_json=args.json, verbose=args.verbose)


def report(err, prefix: str = "") -> str:
    """One diagnostic: what is wrong, where (caret), what to do."""
    lines = [f"{prefix}error: {err.message}"]
    caret = err.caret() if hasattr(err, "caret") else ""
    if caret:
        lines.append(caret)
    if getattr(err, "hint", ""):
        lines.append(f"  hint: {err.hint}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from .errors import MatDerivError

    ap = argparse.ArgumentParser(prog="matderiv", description="Symbolic matrix derivatives, verified.")
    sub = ap.add_subparsers(dest="command", required=True)
    _diff_parser(sub)
    _process_parser(sub)
    _check_parser(sub)
    _cache_parser(sub)
    args = ap.parse_args(argv)
    try:
        return {"diff": _cmd_diff, "process": _cmd_process, "check": _cmd_check,
                "cache": _cmd_cache}[args.command](args)
    except MatDerivError as err:
        print(report(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `matderiv check --json ... | head`: not our problem
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as err:  # noqa: BLE001 - no traceback reaches the user
        if os.environ.get("MATDERIV_DEBUG"):
            raise
        print(f"internal error: {type(err).__name__}: {err}\n  hint: please report this input "
              "(MATDERIV_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
