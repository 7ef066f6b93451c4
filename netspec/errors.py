"""User-facing errors: each one knows where in the spec it comes from and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A 1-based line and column in a spec source."""

    line: int
    column: int


class NetspecError(Exception):
    """Base of every error netspec reports to a user (never shown with a traceback)."""


class PluginError(NetspecError):
    """A plugin is broken: it failed to load, or registered something invalid or twice.

    ``provides`` lists the type names the plugin tried to register, when known.
    """

    def __init__(self, message: str, *, provides: tuple[str, ...] = ()):
        super().__init__(message)
        self.provides = provides


class ShapeError(NetspecError):
    """A shape rule rejected its input; raised by pure shape functions.

    ``field`` names the parameter at fault, so the error can point at its YAML line;
    ``hint`` says what to change.
    """

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field


class SpecError(NetspecError):
    """One or more problems in a spec, each with its source location."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


@dataclass(frozen=True)
class Problem:
    """One problem: where it is, which layer, what is wrong and what to do."""

    message: str
    source: str = "<spec>"
    location: Location | None = None
    layer: str | None = None  # "layer 3 'conv1' (conv)"
    hint: str | None = None
    details: tuple[str, ...] = ()

    def render(self) -> str:
        where = printable(self.source)  # a file's name is the user's too: `bad\x1b[31m.yaml`
        if self.location is not None:
            where += f":{self.location.line}:{self.location.column}"
        head = f"{where}: "
        if self.layer:
            head += f"{printable(self.layer)}: "
        lines = [head + self.message]
        lines += [f"  {d}" for d in self.details]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


def printable(text: str) -> str:
    """``text`` safe for a terminal: control, format and separator characters (an escape sequence,
    a newline that would fake another message, a right-to-left override) written as escapes."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def exception_line(exc: BaseException) -> str:
    """A library's exception in one line, for a message that names the file it failed on.

    torch's weights-only refusals open with advice to reload with ``weights_only=False``, which
    would run the file's code: the line given is the one saying what the loader stopped at.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if lines[0].startswith("Weights only load failed"):
        for line in lines[1:]:  # "WeightsUnpickler error: Unsupported global: … Please use add_safe_globals"
            if line.startswith("WeightsUnpickler error:"):
                return line.removeprefix("WeightsUnpickler error:").split(" Please use ")[0].strip()
        advice = ("Please file", "Check the documentation", "(1)", "(2)")
        detail = [line for line in lines[1:] if not line.startswith(advice)]
        return detail[0] if detail else "it holds objects other than tensors and plain containers"
    return lines[0]
