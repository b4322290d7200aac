r"""The results cache on disk: what replaces a macro, kept between runs (issue 6).

Owns where the cache lives, its keys, reading and writing entries, and ``matderiv cache
info/clean``.  :func:`matderiv.render.render_macro` is the only user of the results; the Lark
parser of :mod:`matderiv.parse.parser` keeps its built tables here too (:func:`parser_file`).

Location: ``$MATDERIV_CACHE_DIR``, else ``$XDG_CACHE_HOME/matderiv``, else
``~/.cache/matderiv``.  Layout::

    results/<sha256>.json      one rendered macro (a small JSON object)
    parser/lark-<sha256>.pickle  the Lark LALR tables (Lark.save), keyed by grammar + lark version

Key of a result (:func:`result_key`): the SHA-256 of the macro as written, the effective options
(document and macro options merged, normalized), what of the output context changes the LaTeX
(inline or display math, colour allowed, ``\checkmark`` allowed, the line separator of steps
blocks), ``matderiv.__version__`` and a fingerprint of the package's own source files (so that a
development checkout never serves results of older code).

What is kept: the replacement LaTeX, the display flag, the notes, the claim's verdict fields, and
for a macro the engine rejects (:class:`~matderiv.errors.MatDerivError`: bad syntax, size clash,
unsupported construct, a failed verification...) the message, hint and offsets -- these are
deterministic (verification draws its random instances from a seed made of the expression), so
they are cached like results.  Internal errors (any other exception) are never cached.
Malformed macros and bad option values are cheap to report and never reach the cache.

Writes are atomic (a temporary file in the same directory, then :func:`os.replace`), so parallel
builds sharing a cache are safe; an entry that cannot be read or does not have the expected form
is ignored (the macro is recomputed and the entry rewritten).  A cache that cannot be written
(read-only, full disk) is silently skipped.  The cache is off when ``MATDERIV_CACHE`` is ``0``,
``false``, ``no`` or ``off``, and for documents or macros with the option ``cache=false``
(``--no-cache`` on the command line).

The parser file is a pickle (what ``Lark.save`` writes), so the cache directory must be one only
its user can write to, as ``~/.cache`` is; result entries are plain JSON.

Imports nothing heavy: a cache hit must not load numpy, sympy or lark.
"""
from __future__ import annotations

import json
import os

__all__ = ["cache_dir", "enabled", "result_key", "get", "put", "info", "clean", "parser_file",
           "suspended", "FORMAT"]

#: version of the entry format; entries of another format are ignored
FORMAT = 1
_RESULTS = "results"
_PARSER = "parser"
_OFF = ("0", "false", "no", "off")
# nesting depth of `suspended()`: no parser cache file is read or written while > 0
_suspend = 0


def cache_dir() -> str:
    """The cache directory (it may not exist yet)."""
    d = os.environ.get("MATDERIV_CACHE_DIR")
    if d:
        return os.path.abspath(os.path.expanduser(d))
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "matderiv")
    return os.path.join(os.path.expanduser("~"), ".cache", "matderiv")


def enabled() -> bool:
    """False when the environment turns the cache off (``MATDERIV_CACHE=0``)."""
    return os.environ.get("MATDERIV_CACHE", "").strip().lower() not in _OFF


class suspended:
    """Context manager: no disk cache (not even the parser's) inside, e.g. while a macro with
    ``cache=false`` is computed."""

    def __enter__(self):
        global _suspend
        _suspend += 1
        return self

    def __exit__(self, *exc):
        global _suspend
        _suspend -= 1
        return False


_FINGERPRINT: str | None = None


def fingerprint() -> str:
    """``matderiv.__version__`` plus a hash of the package's source files (``*.py``,
    ``*.lark``), computed once per process."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import hashlib

        from . import __version__

        h = hashlib.sha256()
        root = os.path.dirname(os.path.abspath(__file__))
        files = []
        for base, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
            files.extend(os.path.join(base, n) for n in names if n.endswith((".py", ".lark")))
        for path in sorted(files):
            h.update(os.path.relpath(path, root).encode("utf-8") + b"\0")
            try:
                with open(path, "rb") as fh:
                    h.update(fh.read())
            except OSError:
                h.update(b"?")
            h.update(b"\0")
        _FINGERPRINT = f"{__version__}+{h.hexdigest()[:16]}"
    return _FINGERPRINT


def result_key(payload) -> str:
    """The hex SHA-256 of ``payload`` (JSON-able: the macro text, options, output context)
    together with :data:`FORMAT` and :func:`fingerprint`."""
    import hashlib

    blob = json.dumps([FORMAT, fingerprint(), payload], sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"), default=repr)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _entry_path(key: str, root: str | None = None) -> str:
    return os.path.join(root or cache_dir(), _RESULTS, key + ".json")


def get(key: str) -> dict | None:
    """The cached value for ``key``, or ``None`` (missing, unreadable or malformed entry)."""
    try:
        with open(_entry_path(key), "rb") as fh:
            entry = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    if (not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key
            or not isinstance(entry.get("value"), dict)):
        return None
    return entry["value"]


def _write_atomic(path: str, data: bytes) -> bool:
    """Write ``data`` to ``path`` through a temporary file in the same directory and
    :func:`os.replace`; False (and nothing left behind) when it cannot be done."""
    import tempfile

    d = os.path.dirname(path)
    tmp = None
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def put(key: str, value: dict) -> bool:
    """Store ``value`` (JSON-able) under ``key``; False when the cache cannot be written."""
    try:
        data = json.dumps({"format": FORMAT, "key": key, "value": value}, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
    except (TypeError, ValueError):
        return False
    return _write_atomic(_entry_path(key), data)


def parser_file(name: str) -> str | None:
    """Path of a parser cache file ``name`` (e.g. ``lark-<hash>.pickle``), or ``None`` when the
    cache is off (environment, or inside :class:`suspended`)."""
    if _suspend or not enabled():
        return None
    return os.path.join(cache_dir(), _PARSER, name)


def write_parser_file(path: str, data: bytes) -> bool:
    """Store a parser cache file atomically."""
    return _write_atomic(path, data)


def _files(root: str):
    """(path, size) of every file matderiv keeps under ``root`` (entries, parser files and
    temporary files left by a killed process)."""
    for sub in (_RESULTS, _PARSER):
        d = os.path.join(root, sub)
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                if e.is_file(follow_symlinks=False) and (
                        e.name.endswith((".json", ".pickle", ".part"))):
                    try:
                        yield e.path, e.stat(follow_symlinks=False).st_size
                    except OSError:
                        pass


def info() -> dict:
    """``location``, ``entries`` (cached results), ``parser_files``, ``bytes`` (all files),
    ``enabled`` (by the environment), ``fingerprint``."""
    root = cache_dir()
    entries = parsers = size = 0
    for path, n in _files(root):
        size += n
        if path.endswith(".json"):
            entries += 1
        elif path.endswith(".pickle"):
            parsers += 1
    return {"location": root, "entries": entries, "parser_files": parsers, "bytes": size,
            "enabled": enabled(), "fingerprint": fingerprint()}


def clean() -> tuple[int, int]:
    """Remove every file of the cache (and its directories when they end up empty); returns
    (files removed, bytes freed).  Files that are not matderiv's are left alone."""
    root = cache_dir()
    removed = freed = 0
    for path, n in list(_files(root)):
        try:
            os.unlink(path)
            removed += 1
            freed += n
        except OSError:
            pass
    for d in (os.path.join(root, _RESULTS), os.path.join(root, _PARSER), root):
        try:
            os.rmdir(d)
        except OSError:
            pass
    return removed, freed
