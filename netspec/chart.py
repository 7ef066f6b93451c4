"""Line charts drawn with Pillow: the PNGs a run leaves (curves.png, the learning-rate finder's);
its ``Canvas`` also draws ``netspec show``'s pictures.

Why not matplotlib: a run drew one small picture at its end, and matplotlib cost ~0.5 s to import
and ~130 ms to draw it (half of that making tick objects), ~8 % of a short run. Here a chart is
drawn at twice its size and reduced (antialiased lines), in ~20 ms, with what a curve needs: panels
side by side, round-number ticks (linear or log), a light grid, lines with dot or star markers,
dotted vertical marks, text notes at data points and one legend. Points that are not finite are
gaps in their line and do not stretch the axes.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

SCALE = 2  # drawn at twice the size, then reduced: the reduction antialiases every line and glyph
PANEL_WIDTH, HEIGHT = 420, 380  # pixels of one panel and of the picture
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 72, 55  # an axes box's margins within its panel (8 digits left)
TEXT, GREY, GRID = (0, 0, 0), (85, 85, 85), (235, 235, 235)
FONT, SMALL, TITLE = 14, 11, 17  # text sizes in pixels (matplotlib's 10, 8 and 12 points at 100 dpi)
MAX_TICKS = 7
LARGEST = 1e300  # values beyond are drawn as this (a span of two such values is still finite)
FAR = 1e5  # pixels: a point far off the axes is drawn this far out (Pillow takes C longs)
TICK_STEPS = (1, 2, 2.5, 5, 10)  # round steps, times a power of ten


@dataclass
class Line:
    """One series: (x, y) points, joined by a line and/or marked (``marker``: "o", "*" or None)."""

    points: Sequence[tuple[float, float]]
    colour: str
    width: float = 2.0
    marker: str | None = None
    marker_size: float = 4.5  # diameter in pixels
    joined: bool = True
    alpha: float = 1.0  # over the white background


@dataclass
class Note:
    """Text beside a data point, ``offset`` pixels right and up of it, ending there if ``right``."""

    at: tuple[float, float]
    text: str
    colour: str = "#555555"
    offset: tuple[float, float] = (4, 8)
    right: bool = False
    size: int = SMALL


@dataclass
class Panel:
    title: str
    xlabel: str = ""
    ylabel: str = ""
    lines: list[Line] = field(default_factory=list)
    marks: list[float] = field(default_factory=list)  # x of dotted vertical lines (grey)
    notes: list[Note] = field(default_factory=list)
    xlog: bool = False
    whole_x: bool = False  # x counts something (optimizer steps): whole-number ticks
    ylim: tuple[float, float] | None = None  # the y range, when the data's would flatten the curve
    width: int = PANEL_WIDTH
    left: int = LEFT  # margin left of the axes box (room for the tick labels, and a y label)


@dataclass
class Key:
    """One legend entry: a short line in the colour, with the marker, dotted if ``dotted``."""

    label: str
    colour: str
    marker: str | None = None
    dotted: bool = False


# ---------------------------------------------------------------- axes and ticks


def nice_ticks(
    low: float, high: float, most: int = MAX_TICKS, whole: bool = False
) -> tuple[list[float], float]:
    """Round-number ticks within [low, high]: the fewest-digit step (1, 2, 2.5, 5 × 10ᵏ) giving at
    most ``most`` of them (``whole``: a whole-number step, for counts); returns the ticks and the step."""
    span = high - low
    if not span > 0:
        return [low], 1.0
    power = 10.0 ** math.floor(math.log10(span / most))
    if whole:
        power = max(power, 1.0)
    for unit in TICK_STEPS:
        step = unit * power
        if whole and (step < 1 or step != round(step)):
            continue
        first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
        if last - first + 1 <= most:
            return [k * step for k in range(first, last + 1)], step
    raise AssertionError("a step of 10 × 10ᵏ always fits")  # pragma: no cover


@dataclass(frozen=True)
class TickLabels:
    """Each tick's text; a value is its text × 10^exponent + offset (``note``, e.g. "1e-4 +100.01")."""

    texts: list[str]
    exponent: int = 0
    offset: float = 0.0
    offset_digits: int = 1  # significant digits of the offset

    @property
    def note(self) -> str:
        parts = [f"1e{self.exponent}"] if self.exponent else []  # Pillow's font has no ×
        if self.offset:
            parts.append(f"{self.offset:+.{self.offset_digits}g}")
        return " ".join(parts)


def tick_labels(ticks: Sequence[float], step: float) -> TickLabels:
    """Texts with as many decimals as the step needs; very small or large numbers get a common
    factor, and ticks close together far from 0 (a loss flat at 100.01) a common offset, so that
    no text is longer than a few digits."""
    offset, offset_digits = 0.0, 1
    largest = max((abs(t) for t in ticks), default=0.0)
    if largest / step >= 1e3:
        unit = 10.0 ** math.ceil(math.log10(max(ticks[-1] - ticks[0], step)) + 1e-9)
        offset = math.floor(ticks[0] / unit) * unit
        if offset:
            offset_digits = max(1, math.floor(math.log10(abs(offset)) + 1e-9) - round(math.log10(unit)) + 1)
        ticks = [t - offset for t in ticks]
        largest = max(abs(t) for t in ticks)
    exponent = 0
    if largest >= 1e5 or 0 < largest < 1e-2:
        exponent = math.floor(math.log10(largest))
    scaled = step / 10.0**exponent
    power = math.floor(math.log10(scaled) + 1e-9)
    decimals = max(0, -power)
    if power <= 0 and round(scaled / 10.0**power, 6) == 2.5:  # 2.5, 0.25: one digit more
        decimals += 1
    texts = [f"{round(t / 10.0**exponent, decimals) + 0.0:.{decimals}f}" for t in ticks]
    return TickLabels(texts, exponent, offset, offset_digits)


def decade_ticks(low: float, high: float) -> list[float]:
    """Powers of ten (as log10 values) within [low, high]; every other one when there are many."""
    first, last = math.ceil(low - 1e-9), math.floor(high + 1e-9)
    every = max(1, math.ceil((last - first + 1) / MAX_TICKS))
    return [float(k) for k in range(first, last + 1, every)]


def data_range(values: Sequence[float], margin: float = 0.05) -> tuple[float, float]:
    """The finite values' range, 5 % added on each side; one value gets a range around it."""
    finite = [max(-LARGEST, min(LARGEST, v)) for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(finite), max(finite)
    if high - low <= 1e-12 * max(abs(low), abs(high), 1e-300):
        pad = abs(low) * 0.05 or 0.05
        return low - pad, high + pad
    pad = (high - low) * margin
    return low - pad, high + pad


@dataclass
class _Axes:
    """Where data values land in pixels (at 1×) for one panel."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    xlog: bool

    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.left + (value - low) / (high - low) * self.width

    def y(self, value: float) -> float:
        low, high = self.y_range
        return self.top + self.height - (value - low) / (high - low) * self.height

    def point(self, x: float, y: float) -> tuple[float, float] | None:
        """Where (x, y) lands, None for a value that is not finite; a point far outside the axes
        (a loss that blew up past the y range given) lands ``FAR`` pixels out, in its direction."""
        if self.xlog:
            x = math.log10(x) if x > 0 else math.nan
        if not (math.isfinite(x) and math.isfinite(y)):
            return None
        x, y = (max(-LARGEST, min(LARGEST, v)) for v in (x, y))
        return tuple(max(-FAR, min(FAR, v)) for v in (self.x(x), self.y(y)))


THIN_BUCKETS = 2048  # x slices a long line is thinned to: ~3 per pixel column of a panel drawn at 2x


def thinned(
    points: Sequence[tuple[float, float]], xlog: bool = False, buckets: int = THIN_BUCKETS
) -> Sequence[tuple[float, float]]:
    """What a line through ``points`` shows: in each run of points within one of ``buckets`` equal
    slices of the x range, the first, lowest, highest and last (the M4 reduction). The picture is
    the same, and a resumed run's history of millions of steps draws as fast as one of thousands.
    A point that is not drawn (not finite, or x <= 0 on a log axis) is a gap and kept, a run of
    them as one."""
    if len(points) <= 4 * buckets:
        return points

    def at(x: float, y: float) -> float | None:
        if xlog:
            x = math.log10(x) if x > 0 else math.nan
        return x if math.isfinite(x) and math.isfinite(y) else None

    xs = [at(x, y) for x, y in points]
    drawn = [x for x in xs if x is not None]
    if not drawn or max(drawn) <= min(drawn):
        return points
    low, per = min(drawn), buckets / (max(drawn) - min(drawn))  # the last x alone in bucket ``buckets``
    kept: list[tuple[float, float]] = []
    run: list[tuple[float, float]] = []
    bucket = None

    def flush() -> None:
        if len(run) > 4:
            y = [v for _, v in run]
            order = range(len(run))
            ends = {0, len(run) - 1, min(order, key=y.__getitem__), max(order, key=y.__getitem__)}
            run[:] = [run[i] for i in sorted(ends)]
        kept.extend(run)
        run.clear()

    gap = False
    for point, x in zip(points, xs, strict=True):
        if x is None:
            flush()
            bucket = None
            if not gap:
                kept.append(point)
            gap = True
            continue
        gap = False
        here = int((x - low) * per)
        if here != bucket:
            flush()
            bucket = here
        run.append(point)
    flush()
    return kept


def _axes(panel: Panel, left: float) -> _Axes:
    drawn = [(x, y) for line in panel.lines for x, y in line.points if math.isfinite(x) and math.isfinite(y)]
    xs = [x for x, _ in drawn] + panel.marks
    if panel.xlog:
        xs = [math.log10(x) for x in xs if x > 0]
    ys = [y for _, y in drawn]
    given = panel.ylim is not None and all(map(math.isfinite, panel.ylim)) and panel.ylim[1] > panel.ylim[0]
    y_range = data_range(panel.ylim, margin=0.0) if given else data_range(ys)
    return _Axes(
        left + panel.left,
        TOP,
        panel.width - panel.left - RIGHT,
        HEIGHT - TOP - BOTTOM,
        data_range(xs, margin=0.02 if panel.xlog else 0.05),
        y_range,
        panel.xlog,
    )


# ---------------------------------------------------------------- drawing


@functools.lru_cache(maxsize=8)
def load_font(size: int, scale: int = SCALE):
    """Pillow's own scalable font (Pillow ≥ 10.1), ``size`` pixels at 1×, drawn ``scale`` times larger."""
    from PIL import ImageFont

    return ImageFont.load_default(size=size * scale)


def _rgb(colour: str, alpha: float = 1.0) -> tuple[int, int, int]:
    """A ``#rrggbb`` colour, blended over white by ``alpha``."""
    value = int(colour.lstrip("#"), 16)
    channels = ((value >> 16) & 255, (value >> 8) & 255, value & 255)
    return tuple(round(alpha * c + (1 - alpha) * 255) for c in channels)


class Canvas:
    """A Pillow image addressed in 1× pixels: every coordinate and width is scaled once, here."""

    def __init__(self, width: int, height: int):
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", (width * SCALE, height * SCALE), "white")
        self.draw = ImageDraw.Draw(self.image)

    def line(self, points, colour, width: float = 1.0) -> None:
        scaled = [(x * SCALE, y * SCALE) for x, y in points]
        self.draw.line(scaled, fill=colour, width=max(1, round(width * SCALE)), joint="curve")

    def dotted(self, x: float, top: float, bottom: float, colour, dot: float = 1.5, gap: float = 2.5):
        y = top
        while y < bottom:
            self.line([(x, y), (x, min(y + dot, bottom))], colour)
            y += dot + gap

    def marker(self, kind: str, x: float, y: float, size: float, colour) -> None:
        r = size * SCALE / 2
        cx, cy = x * SCALE, y * SCALE
        if kind == "*":  # a five-pointed star: its 10 corners alternate outer and inner (0.4) radius
            radii = [r if k % 2 == 0 else 0.4 * r for k in range(10)]
            angles = [k * math.pi / 5 for k in range(10)]
            corners = [
                (cx + q * math.sin(a), cy - q * math.cos(a)) for q, a in zip(radii, angles, strict=True)
            ]
            self.draw.polygon(corners, fill=colour)
        else:
            self.draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)

    def text(self, x: float, y: float, text: str, colour=TEXT, size: int = FONT, align: str = "lt") -> None:
        """``align``: horizontal l/m/r and vertical t/m/b of the text's box at (x, y)."""
        font = load_font(size)
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=font)
        width, height = right - left, bottom - top
        dx = {"l": 0, "m": width / 2, "r": width}[align[0]]
        dy = {"t": 0, "m": height / 2, "b": height}[align[1]]
        self.draw.text((x * SCALE - left - dx, y * SCALE - top - dy), text, fill=colour, font=font)

    def upright_text(self, x: float, y: float, text: str, colour=TEXT, size: int = FONT) -> None:
        """Text turned a quarter left (a y-axis label), its box centred on (x, y)."""
        from PIL import Image, ImageDraw

        font = load_font(size)
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=font)
        mask = Image.new("L", (right - left, bottom - top), 0)
        ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font)
        mask = mask.rotate(90, expand=True)
        at = (round(x * SCALE - mask.width / 2), round(y * SCALE - mask.height / 2))
        self.image.paste(Image.new("RGB", mask.size, colour), at, mask)

    def text_width(self, text: str, size: int = FONT) -> float:
        left, _, right, _ = self.draw.textbbox((0, 0), text, font=load_font(size))
        return (right - left) / SCALE

    def paste(self, picture, x: float, y: float, width: float, height: float) -> None:
        """A picture (PIL image) enlarged with nearest-neighbour to fill the box: pixels stay square."""
        from PIL import Image

        size = (max(1, round(width * SCALE)), max(1, round(height * SCALE)))
        self.image.paste(picture.resize(size, Image.Resampling.NEAREST), (round(x * SCALE), round(y * SCALE)))

    def picture(self):
        """The finished picture, at its 1× size."""
        return self.image.reduce(SCALE)

    def save(self, path: Path) -> Path:
        self.picture().save(path, format="PNG", compress_level=1)
        return path


def _ticks(panel: Panel, ax: _Axes):
    """(x ticks, their labels), the same for y: where the grid lines and texts go."""
    if panel.xlog:
        x_ticks = decade_ticks(*ax.x_range)
        x = (x_ticks, TickLabels([f"1e{int(t)}" for t in x_ticks]))
    else:
        x_ticks, x_step = nice_ticks(*ax.x_range, whole=panel.whole_x)
        x = (x_ticks, tick_labels(x_ticks, x_step))
    y_ticks, y_step = nice_ticks(*ax.y_range)
    return x, (y_ticks, tick_labels(y_ticks, y_step))


def _draw_panel(canvas: Canvas, panel: Panel, ax: _Axes) -> None:
    """One panel: the grid, lines, markers and dotted marks clipped to its axes box; then the box,
    ticks and their labels, the title, axis labels and notes (these unclipped)."""
    (x_ticks, x_labels), (y_ticks, y_labels) = _ticks(panel, ax)
    plot = Canvas(math.ceil(ax.width), math.ceil(ax.height))
    inner = _Axes(0, 0, ax.width, ax.height, ax.x_range, ax.y_range, ax.xlog)
    for tick in x_ticks:
        plot.line([(inner.x(tick), 0), (inner.x(tick), ax.height)], GRID)
    for tick in y_ticks:
        plot.line([(0, inner.y(tick)), (ax.width, inner.y(tick))], GRID)
    for x in panel.marks:
        at = inner.point(x, inner.y_range[0])
        if at is not None:
            plot.dotted(at[0], 0, ax.height, _rgb("#999999"))
    for line in panel.lines:
        _draw_line(plot, line, inner)
    canvas.image.paste(plot.image, (round(ax.left * SCALE), round(ax.top * SCALE)))

    right, bottom = ax.left + ax.width, ax.top + ax.height
    canvas.line(
        [(ax.left, ax.top), (right, ax.top), (right, bottom), (ax.left, bottom), (ax.left, ax.top)], TEXT, 0.8
    )
    for tick, text in zip(x_ticks, x_labels.texts, strict=True):
        canvas.line([(ax.x(tick), bottom), (ax.x(tick), bottom + 5)], TEXT, 0.8)
        canvas.text(ax.x(tick), bottom + 7, text, align="mt")
    for tick, text in zip(y_ticks, y_labels.texts, strict=True):
        canvas.line([(ax.left - 5, ax.y(tick)), (ax.left, ax.y(tick))], TEXT, 0.8)
        canvas.text(ax.left - 7, ax.y(tick), text, align="rm")
    if y_labels.note:
        canvas.text(ax.left, ax.top - 4, y_labels.note, size=SMALL, align="lb")
    if x_labels.note:
        canvas.text(right, bottom + 24, x_labels.note, size=SMALL, align="rt")
    canvas.text(ax.left + ax.width / 2, ax.top - 6, panel.title, size=TITLE, align="mb")
    if panel.xlabel:
        canvas.text(ax.left + ax.width / 2, bottom + 31, panel.xlabel, align="mm")
    if panel.ylabel:
        widest = max((canvas.text_width(t) for t in y_labels.texts), default=0)
        canvas.upright_text(max(10, ax.left - 16 - widest), ax.top + ax.height / 2, panel.ylabel)
    for note in panel.notes:
        at = ax.point(*note.at)
        if at is not None:
            x, y = at[0] + note.offset[0], at[1] - note.offset[1]
            canvas.text(
                x, y, note.text, colour=_rgb(note.colour), size=note.size, align="rb" if note.right else "lb"
            )


def _draw_line(plot: Canvas, line: Line, ax: _Axes) -> None:
    """A series in pieces: a point that is not finite (or not positive on a log axis) is a gap."""
    colour = _rgb(line.colour, line.alpha)
    pieces: list[list[tuple[float, float]]] = [[]]
    for x, y in line.points:
        at = ax.point(x, y)
        if at is None:
            pieces.append([])
        else:
            pieces[-1].append(at)
    for piece in pieces:
        if line.joined and len(piece) > 1:
            plot.line(piece, colour, line.width)
        elif line.joined and piece and not line.marker:  # one point of a line: a dot, not nothing
            plot.marker("o", *piece[0], 2 * line.width, colour)
        if line.marker:
            for x, y in piece:
                plot.marker(line.marker, x, y, line.marker_size, colour)


def _draw_legend(canvas: Canvas, keys: Sequence[Key], right: float) -> None:
    """One row of entries at the picture's top right."""
    sample, gap = 28, 18
    widths = [sample + 6 + canvas.text_width(key.label) for key in keys]
    x = right - sum(widths) - gap * (len(keys) - 1)
    y = 18
    for key, width in zip(keys, widths, strict=True):
        colour = _rgb(key.colour)
        if key.dotted:
            for start in range(0, sample, 4):
                canvas.line([(x + start, y), (x + min(start + 1.5, sample), y)], colour)
        else:
            canvas.line([(x, y), (x + sample, y)], colour, 2.0)
        if key.marker:
            canvas.marker(key.marker, x + sample / 2, y, 9 if key.marker == "o" else 12, colour)
        canvas.text(x + sample + 6, y, key.label, align="lm")
        x += width + gap


def draw_chart(path: str | Path, panels: Sequence[Panel], title: str = "", keys: Sequence[Key] = ()) -> Path:
    """The panels side by side in one PNG, the title at its top left and the legend at its top right."""
    width = sum(panel.width for panel in panels)
    canvas = Canvas(width, HEIGHT)
    left = 0
    for panel in panels:
        lines = [
            line if line.marker else replace(line, points=thinned(line.points, panel.xlog))
            for line in panel.lines
        ]
        panel = replace(panel, lines=lines)  # each marker stays drawn: thinning them speckles a dense band
        ax = _axes(panel, left)
        _draw_panel(canvas, panel, ax)
        left += panel.width
    if title:
        canvas.text(10, 10, title, size=TITLE, align="lt")
    if keys:
        _draw_legend(canvas, keys, width - 10)
    return canvas.save(Path(path))
