"""Errors as values with positions.

Owns :class:`MatDerivError`, the one exception type users see, and :class:`Span`.  Knows
nothing of documents: positions are offsets into the expression text; the document layers
translate them to file:line:col.
"""
from __future__ import annotations


class Span:
    """A half-open range ``[start, end)`` of character offsets in the expression text.

    A plain class rather than a dataclass: this module is imported by every run of the filter,
    and ``dataclasses`` costs ~14 ms to import, more than the no-macro fast path itself."""

    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int):
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    def __setattr__(self, name, value):
        raise AttributeError("Span is immutable")

    def __eq__(self, other):
        return isinstance(other, Span) and (self.start, self.end) == (other.start, other.end)

    def __hash__(self):
        return hash((self.start, self.end))

    def __repr__(self):
        return f"Span(start={self.start}, end={self.end})"


class MatDerivError(Exception):
    """A problem with the user's input (or an unsupported construct), with position and hint.

    ``message``: one sentence saying what is wrong.
    ``position``: offset in EXPR where the problem is (``None`` when it has no place).
    ``hint``: one sentence saying what to do.
    ``end``: end offset of the offending span (``None`` when unknown).
    ``source``: the expression text, when known, for caret diagnostics.
    """

    def __init__(self, message: str, position: int | None = None, hint: str = "",
                 end: int | None = None, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.position = position
        self.hint = hint
        self.end = end
        self.source = source

    def with_source(self, source: str) -> "MatDerivError":
        if self.source is None:
            self.source = source
        return self

    def __str__(self) -> str:
        parts = [self.message]
        if self.position is not None:
            parts[0] = f"{self.message} (at offset {self.position})"
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "; ".join(parts)

    def caret(self) -> str:
        """The source line with a caret under the offending span, compiler style."""
        if self.source is None or self.position is None:
            return ""
        end = self.end if self.end is not None and self.end > self.position else self.position + 1
        return f"  {self.source}\n  {' ' * self.position}{'^' * max(1, end - self.position)}"


class UnsupportedError(MatDerivError):
    """A construct the engine does not handle (yet): the message says "not supported"."""


class NestedTooDeeplyError(MatDerivError):
    """An expression nested past what the engine takes (brackets, functions or operators one
    inside another): refused by the reader and by typing before any later stage recurses."""
