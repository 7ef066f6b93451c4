"""How ``netspec predict`` refuses what a user got wrong (exit 2, naming the file) and passes notices."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from netspec.errors import Problem, SpecError, exception_line

WHERE = "netspec predict"

Log = Callable[[str], None]  # where notices go (inferred tasks, unknown normalization)


def refuse(message: str, source: str | Path = WHERE, hint: str | None = None) -> SpecError:
    """The error to raise: one problem at ``source``, the file at fault or else the command."""
    return SpecError([Problem(message, str(source), hint=hint)])


def reason(exc: BaseException) -> str:
    """A library's exception in one line, for a message that names the file it failed on."""
    return exception_line(exc)


def to_stderr(message: str) -> None:
    """The default :data:`Log`."""
    print(message, file=sys.stderr)
