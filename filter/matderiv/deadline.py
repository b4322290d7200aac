"""The time limit of one derivation: nothing a document holds may hang a build.

Owns a process-wide deadline that :func:`matderiv.derive` sets around one derivation and that
the long-running loops (parsing, differentiation, simplification, numerical evaluation,
printing) poll through :func:`tick`.  Cooperative rather than a signal, so it also works off the
main thread.  Polling is cheap: the clock is read once every few hundred ticks.

The limit is ``MATDERIV_TIME_LIMIT`` seconds (default 10; 0 turns it off).
"""
from __future__ import annotations

import os
import time

from .errors import MatDerivError

DEFAULT_SECONDS = 10.0
_EVERY = 256

_deadline: float | None = None
_limit: float = 0.0
_countdown = _EVERY


class TimeLimitExceeded(MatDerivError):
    """A derivation took longer than the time limit and was stopped."""


class _Expired(BaseException):
    """Raised by :func:`tick` past the deadline.  A BaseException, so that no ``except
    MatDerivError`` or ``except Exception`` inside the engine can swallow it; :func:`time_limit`
    turns it into :class:`TimeLimitExceeded` for the caller."""


_VARIABLE = "MATDERIV_TIME_LIMIT"


def _setting() -> str:
    """The variable's value ("" when unset), read once per derivation.  Through CPython's
    ``os.environ._data`` where it has one: ``os.environ.get`` of an unset variable raises and
    catches two KeyErrors, some 8 000 instructions, most of a time limit's cost."""
    data = getattr(os.environ, "_data", None)  # (looked up each time: os.environ may be swapped)
    if type(data) is not dict:
        return os.environ.get(_VARIABLE, "")
    value = data.get(os.environ.encodekey(_VARIABLE))
    return "" if value is None else os.environ.decodevalue(value)


def limit_seconds() -> float:
    """The configured limit in seconds (0: none)."""
    raw = _setting().strip()
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_SECONDS
    except ValueError:
        return DEFAULT_SECONDS


class time_limit:
    """Run the block under a deadline (nested blocks keep the outer, earlier one).  (A class
    rather than a ``@contextmanager`` generator, whose machinery cost more than the switch:
    one is entered per derivation.)"""

    __slots__ = ("_seconds", "_outer")

    def __init__(self, seconds: float | None = None):
        self._seconds = seconds

    def __enter__(self) -> None:
        global _deadline, _limit, _countdown
        seconds = limit_seconds() if self._seconds is None else self._seconds
        outer = _deadline
        self._outer = (outer, _limit)
        if seconds > 0:
            mine = time.monotonic() + seconds
            if outer is None or mine < outer:
                _deadline, _limit = mine, seconds
        _countdown = _EVERY

    def __exit__(self, exc_type, exc, tb) -> None:
        global _deadline, _limit
        limit = _limit  # (the limit that stopped the block, for the message)
        _deadline, _limit = self._outer
        if exc_type is not None and issubclass(exc_type, _Expired):
            raise TimeLimitExceeded(
                f"the derivative took longer than {limit:g} s and was stopped",
                hint="simplify or split the expression (the limit is MATDERIV_TIME_LIMIT "
                     "seconds)") from None


def tick() -> None:
    """Poll the deadline (the clock every ``_EVERY`` calls); past it, unwind to
    :func:`time_limit`."""
    global _countdown
    if _deadline is None:
        return
    _countdown -= 1
    if _countdown > 0:
        return
    _countdown = _EVERY
    if time.monotonic() > _deadline:
        raise _Expired()
