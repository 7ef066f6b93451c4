"""Files the user names for netspec to write (``--html``, ``schema -o``, ``--graph``,
``export --onnx``): every way such a path can be wrong is the user's to fix (exit 2, naming the
option and the path), found before the work where it can be, never an internal error halfway."""

from __future__ import annotations

import os
from pathlib import Path

from netspec.errors import Problem, SpecError


def path_problem(option: str, path: str | Path, example: str) -> str | None:
    """What is wrong with writing ``path`` (``example``: a file name to suggest for a directory)."""
    path = Path(path)
    if path.is_dir():
        return f"{option} {path} is a directory; give a file name such as {path / example}"
    parent = path.parent
    if not parent.is_dir():
        return f"{option} {path}: directory {parent} does not exist; create it first"
    if not os.access(path if path.exists() else parent, os.W_OK):
        return f"{option} {path}: permission denied"
    return None


def refusal(option: str, path: str | Path, exc: OSError) -> SpecError:
    """A write the system refused (a full disk, a path under /proc, a race): the user's to fix."""
    return SpecError([Problem(f"cannot write {option} file: {exc.strerror or exc}", str(path))])


def check(option: str, path: str | Path, example: str, command: str) -> None:
    """:func:`path_problem` as a :class:`SpecError` of ``command`` (``netspec schema``)."""
    problem = path_problem(option, path, example)
    if problem:
        raise SpecError([Problem(problem, command)])


def write_text(option: str, path: str | Path, text: str) -> None:
    """``text`` into the user's file (whose path was checked with :func:`path_problem`)."""
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise refusal(option, path, exc) from None
