"""Diagnostics: every problem the compiler finds, with file, line, column and rule.

The checker never stops at the first problem: each stage appends to a :class:`Diagnostics`
list and the caller raises one :class:`RulesetError` carrying all of them.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from typing import Iterable

from ..errors import PostloanError

__all__ = ["Diagnostic", "Diagnostics", "RulesetError", "collapse", "did_you_mean"]


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning. ``line`` and ``column`` are 1-based; ``rule`` is the rule id (or
    ``None``). ``str()`` gives the one-line form ``file:line:col: message`` (warnings are
    marked ``warning:``)."""

    file: str
    line: int
    column: int
    rule: str | None
    message: str
    severity: str = "error"          # 'error' | 'warning'
    #: root causes and their consequences: an error whose ``follows`` is another error's
    #: ``cause`` is not reported; that error says how many it stands for (``more``)
    follows: str | None = field(default=None, compare=False)
    cause: str | None = field(default=None, compare=False)
    more: int = field(default=0, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "message", one_line(self.message))

    def __str__(self) -> str:
        where = f"rule `{self.rule}`: " if self.rule and f"`{self.rule}`" not in self.message else ""
        mark = "warning: " if self.severity == "warning" else ""
        more = ""
        if self.more:
            more = f" ({self.more} more error{'s follow' if self.more != 1 else ' follows'} from this one)"
        return f"{self.file}:{self.line}:{self.column}: {mark}{where}{self.message}{more}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


#: the longest message a diagnostic keeps: a name or value quoted from a file may be huge
MAX_MESSAGE = 1000
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(message: str) -> str:
    """``message`` as one printable line: line breaks and other control characters quoted from
    a file are shown escaped (``\\n``), and a message longer than :data:`MAX_MESSAGE` is cut."""
    message = _CONTROL.sub(lambda m: repr(m.group())[1:-1], message)
    return message if len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE - 1] + "…"


class RulesetError(PostloanError):
    """One or more rulesets do not compile; ``diagnostics`` lists every problem found
    (errors first, in file and line order, then warnings)."""

    exit_code = 1

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=_order)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]


def _order(d: Diagnostic):
    return (not d.is_error, d.file, d.line, d.column, d.message)


class Diagnostics:
    """Collects the diagnostics of one source file."""

    def __init__(self, file: str):
        self.file = file
        self.items: list[Diagnostic] = []
        #: what a file with errors still declares (its name, its qualified inputs), so that a
        #: bundle checks those too and knows whose errors follow from this file's
        self.partial: dict = {}

    def error(self, pos, message: str, rule: str | None = None, *, follows: str | None = None,
              cause: str | None = None) -> None:
        """An error; ``cause`` marks it as the root of the errors whose ``follows`` is the same
        key (``"name:dpd"``: every error about the name ``dpd``), which are then not reported
        but counted on it (:func:`collapse`)."""
        self._add(pos, message, rule, "error", follows, cause)

    def warning(self, pos, message: str, rule: str | None = None) -> None:
        self._add(pos, message, rule, "warning")

    def _add(self, pos, message: str, rule, severity: str, follows=None, cause=None) -> None:
        line, column = pos if pos is not None else (1, 1)
        d = Diagnostic(self.file, line, column, rule, message, severity, follows, cause)
        if d not in self.items:          # a chained comparison reports a bad name once
            self.items.append(d)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if not d.is_error]


def collapse(items: list[Diagnostic]) -> list[Diagnostic]:
    """The diagnostics with every consequence of a reported root cause left out and counted on
    it: an error whose ``follows`` key is the ``cause`` of another error of the list is the
    author's one mistake seen again (an input declared as ``dpdd`` makes every use of ``dpd``
    an unknown name), so the root says "N more errors follow from this one" instead."""
    roots = {d.cause: d for d in items if d.cause and d.is_error}
    if not roots:
        return items
    more: dict[int, int] = {}
    kept = []
    for d in items:
        root = roots.get(d.follows) if d.follows else None
        if root is not None and root is not d and d.is_error:
            more[id(root)] = more.get(id(root), 0) + 1
            continue
        kept.append(d)
    return [replace(d, more=d.more + more[id(d)]) if id(d) in more else d for d in kept]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` — did you mean `x`?`` for the closest known names, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    if not close:
        return ""
    return " — did you mean " + " or ".join(f"`{c}`" for c in close) + "?"
