"""The Pillow line charts of curves.png and lr_find.png: ticks, labels, gaps and the picture."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from netspec.chart import (
    HEIGHT,
    MAX_TICKS,
    Key,
    Line,
    Note,
    Panel,
    data_range,
    decade_ticks,
    draw_chart,
    nice_ticks,
    thinned,
    tick_labels,
)

magnitudes = st.floats(min_value=-12, max_value=12)
spans = st.tuples(
    st.floats(min_value=-1e3, max_value=1e3), magnitudes, st.floats(min_value=1e-3, max_value=1e3)
)


@settings(max_examples=400, deadline=None)
@given(spans)
def test_ticks_are_round_numbers_inside_the_range_and_labels_tell_them_apart(case):
    centre, exponent, width = case
    low = centre * 10**exponent
    high = low + width * 10**exponent
    if not (math.isfinite(low) and math.isfinite(high)) or not high - low > abs(low) * 1e-9:
        return
    ticks, step = nice_ticks(low, high)
    assert 2 <= len(ticks) <= MAX_TICKS
    assert all(low - step * 1e-6 <= t <= high + step * 1e-6 for t in ticks)
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
    assert any(math.isclose(mantissa, unit) for unit in (1, 2, 2.5, 5))
    labels = tick_labels(ticks, step)
    assert len(set(labels.texts)) == len(labels.texts)  # never "0.0, 0.0, 0.0"
    for tick, text in zip(ticks, labels.texts, strict=True):
        value = float(text) * 10**labels.exponent + labels.offset
        assert abs(value - tick) <= step * 1e-6 + abs(tick) * 1e-9
        assert not text.startswith("-0") or float(text) != 0
        assert len(text) <= 8  # room left of the axes: 70 px
    assert len(labels.note) <= 24


def test_labels_read_as_a_person_writes_them():
    def labels(ticks, step):
        found = tick_labels(ticks, step)
        return found.texts, found.note

    assert labels(*nice_ticks(0.0, 0.0105)) == (["0.000", "0.002", "0.004", "0.006", "0.008", "0.010"], "")
    assert labels(*nice_ticks(0.1, 2.4)) == (["0.5", "1.0", "1.5", "2.0"], "")
    assert labels([0.0, 2.5, 5.0, 7.5], 2.5) == (["0.0", "2.5", "5.0", "7.5"], "")
    assert labels([25.0, 50.0, 75.0], 25.0) == (["25", "50", "75"], "")
    assert labels([0.0, 2e-5, 4e-5], 2e-5) == (["0", "2", "4"], "1e-5")
    assert labels([0.0, 5e5, 1e6], 5e5) == (["0.0", "0.5", "1.0"], "1e6")
    # a loss flat at 100.01: the digits that change, and what to add
    assert labels([100.0100, 100.0105, 100.0110], 0.0005) == (["0", "5", "10"], "1e-4 +100.01")
    assert nice_ticks(8.85, 12.15, whole=True) == ([9.0, 10.0, 11.0, 12.0], 1.0)  # steps, not 9.5
    assert nice_ticks(10.45, 11.55, whole=True) == ([11.0], 1.0)
    assert decade_ticks(-7.0, 0.0) == [-7.0, -5.0, -3.0, -1.0]
    assert decade_ticks(-3.2, -0.5) == [-3.0, -2.0, -1.0]


def test_the_range_skips_values_that_are_not_finite():
    assert data_range([1.0, math.nan, 3.0, math.inf]) == pytest.approx((0.9, 3.1))
    assert data_range([math.nan, -math.inf]) == (0.0, 1.0)
    assert data_range([]) == (0.0, 1.0)
    low, high = data_range([2.0, 2.0])
    assert low < 2.0 < high
    low, high = data_range([0.0])
    assert low < 0.0 < high


def _pixels(path, colour):
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        return sum(count for count, value in rgb.getcolors(1 << 20) if value == colour)


def test_a_chart_draws_every_panel_with_gaps_where_values_are_not_finite(tmp_path):
    blue, orange = "#1f77b4", "#ff7f0e"
    diverged = [(1.0, 2.0), (2.0, 1.5), (3.0, math.inf), (4.0, math.nan), (5.0, 1.0)]
    panels = [
        Panel("loss", "optimizer step", lines=[Line(diverged, blue, marker="o")], marks=[2.0]),
        Panel("acc", lines=[Line([(1.0, 0.5)], orange, marker="*", marker_size=17, joined=False)]),
        Panel("nothing finite", lines=[Line([(1.0, math.nan)], blue)]),
        Panel("empty"),
        Panel("lr", lines=[Line([(0.0, 1.0), (1e-7, 2.0), (1.0, 3.0)], blue)], xlog=True, ylim=(0.0, 2.5)),
    ]
    panels[0].notes.append(Note((5.0, 1.0), "best"))
    panels[0].notes.append(Note((3.0, math.inf), "never drawn"))
    out = draw_chart(
        tmp_path / "c.png", panels, title="t", keys=[Key("train", blue, "o"), Key("b", "#999999", None, True)]
    )
    with Image.open(out) as image:
        assert image.size == (sum(p.width for p in panels), HEIGHT)
    assert _pixels(out, (0x1F, 0x77, 0xB4)) > 100  # the lines, markers and the legend's sample
    assert _pixels(out, (0xFF, 0x7F, 0x0E)) > 20  # the star


def test_a_large_history_and_huge_values_draw_in_bounded_time(tmp_path):
    points = [(float(i), 1e30 * (1 + math.sin(i / 100))) for i in range(20_000)]
    out = draw_chart(tmp_path / "c.png", [Panel("loss", lines=[Line(points, "#1f77b4")])])
    assert out.exists()


@pytest.mark.parametrize("xlog", [False, True])
def test_a_long_line_is_thinned_to_the_points_its_picture_shows(tmp_path, monkeypatch, xlog):
    """A resumed run's history of many steps: its curve keeps each x slice's first, lowest, highest
    and last point, every gap, and draws the picture the whole line draws (lines with markers are
    drawn whole)."""
    import random

    import netspec.chart as chart

    rng = random.Random(0)
    points = [(float(i + 1), math.sin(i / 500) + rng.random()) for i in range(50_000)]
    points[7_000] = (points[7_000][0], math.nan)
    points[7_001] = (points[7_001][0], math.inf)  # one gap of two points
    kept = thinned(points, xlog)
    assert len(kept) < len(points) // 5 and kept[0] == points[0] and kept[-1] == points[-1]
    assert [x for x, _ in kept] == sorted(x for x, _ in kept)  # in the line's order
    finite = [y for _, y in points if math.isfinite(y)]
    assert min(y for _, y in kept if math.isfinite(y)) == min(finite)
    assert max(y for _, y in kept if math.isfinite(y)) == max(finite)
    assert sum(1 for _, y in kept if not math.isfinite(y)) == 1
    assert thinned(points[:100], xlog) == points[:100]  # short lines are drawn as given

    def picture(name):
        panel = Panel("loss", lines=[Line(points, "#1f77b4")], xlog=xlog)
        with Image.open(draw_chart(tmp_path / name, [panel])) as image:
            return image.convert("RGB")

    thin = picture("thin.png")
    monkeypatch.setattr(chart, "thinned", lambda points, xlog=False: points)
    whole = picture("whole.png")
    from PIL import ImageChops

    differing = (
        ImageChops.difference(thin, whole).convert("L").point(lambda v: 255 if v else 0).histogram()[255]
    )
    assert differing < 0.005 * thin.size[0] * thin.size[1]  # line joints drawn a little differently


def test_drawing_a_chart_imports_neither_matplotlib_nor_torch(tmp_path):
    code = (
        "import sys\n"
        "from netspec.chart import Line, Panel, draw_chart\n"
        "line = Line([(1, 2.0), (2, 1.0)], '#1f77b4')\n"
        f"draw_chart({str(tmp_path / 'c.png')!r}, [Panel('loss', lines=[line])])\n"
        "print([m for m in ('matplotlib', 'torch') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert (tmp_path / "c.png").exists()


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-1e-300, max_value=1e-300),
    st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(st.tuples(values, values), max_size=12), min_size=1, max_size=3),
    st.booleans(),
    st.one_of(st.none(), st.tuples(values, values)),
)
def test_any_numbers_draw_a_picture_of_the_right_size(tmp_path_factory, series, xlog, ylim):
    """Whatever a metrics.csv holds (a diverged loss, 1e308, denormals, one point, none), the
    chart is drawn: a picture must never be the reason a finished run fails."""
    lines = [Line(points, "#1f77b4", marker="o" if i == 0 else None) for i, points in enumerate(series)]
    panel = Panel("p", "x", "y", lines=lines, marks=[p[0] for p in series[0][:1]], xlog=xlog, ylim=ylim)
    panel.notes = [Note(p, "n") for p in series[0][:2]]
    out = draw_chart(tmp_path_factory.mktemp("c") / "c.png", [panel, Panel("empty")], title="t")
    with Image.open(out) as image:
        assert image.size == (2 * panel.width, HEIGHT)
