"""Inline SVG charts for the report: no JavaScript, no CDN, readable offline in any browser."""

import math
from collections.abc import Mapping, Sequence
from html import escape

COLOURS = {"tuned": "#1f6feb", "seed": "#d1242f", "bound": "#2da44e"}
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 56


def _frame(title: str, body: list[str], legend: Sequence[str]) -> str:
    items = [
        f'<rect x="{LEFT + i * 110}" y="{HEIGHT - 16}" width="10" height="10" '
        f'fill="{COLOURS.get(name, "#888")}"/><text x="{LEFT + i * 110 + 14}" y="{HEIGHT - 7}">'
        f"{escape(name)}</text>"
        for i, name in enumerate(legend)
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" '
        f'font-size="11"><text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{escape(title)}</text>{"".join(body)}{"".join(items)}</svg>'
    )


def _nice_max(value: float) -> float:
    if value <= 0 or math.isnan(value):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= value))


def _label(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def _y_axis(top: float, unit: str) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for i in range(5):
        value = top * i / 4
        y = HEIGHT - BOTTOM - plot_h * i / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_label(value)}</text>'
        )
    parts.append(
        f'<text x="12" y="{TOP + plot_h / 2}" transform="rotate(-90 12 {TOP + plot_h / 2})" '
        f'text-anchor="middle">{escape(unit)}</text>'
    )
    return parts


def grouped_bars(
    title: str, unit: str, groups: Sequence[str], series: Mapping[str, Sequence[float]]
) -> str:
    """One group per figure, one bar per build in it: the builds side by side."""
    finite = [v for values in series.values() for v in values if not math.isnan(v)]
    top = _nice_max(max(finite, default=1.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(1, len(groups))
    bar_w = group_w * 0.8 / max(1, len(series))
    body = _y_axis(top, unit)
    for g, group in enumerate(groups):
        x0 = LEFT + g * group_w + group_w * 0.1
        body.append(
            f'<text x="{LEFT + (g + 0.5) * group_w:.1f}" y="{HEIGHT - BOTTOM + 14}" '
            f'text-anchor="middle">{escape(group)}</text>'
        )
        for s, (name, values) in enumerate(series.items()):
            value = values[g]
            if math.isnan(value):
                continue
            h = plot_h * value / top
            x = x0 + s * bar_w
            body.append(
                f'<rect class="bar" data-build="{escape(name)}" x="{x:.1f}" '
                f'y="{HEIGHT - BOTTOM - h:.1f}" width="{bar_w * 0.92:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS.get(name, "#888")}"><title>{escape(name)} {escape(group)}: '
                f"{value:,.4g} {escape(unit)}</title></rect>"
            )
    return _frame(title, body, list(series))


def lines(
    title: str,
    x_label: str,
    unit: str,
    series: Mapping[str, Sequence[tuple[float, float]]],
    marks: Mapping[str, tuple[float, float] | None],
) -> str:
    """Curves over a log2 x axis; `marks` circles one point per series (the knee)."""
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    if not xs:
        return _frame(title, [], list(series))
    lo, hi = math.log2(min(xs)), math.log2(max(xs))
    span = hi - lo or 1.0
    top = _nice_max(max(ys))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(x: float, y: float) -> tuple[float, float]:
        return (LEFT + plot_w * (math.log2(x) - lo) / span, HEIGHT - BOTTOM - plot_h * y / top)

    body = _y_axis(top, unit)
    for x in sorted(set(xs)):
        px, _ = at(x, 0)
        body.append(
            f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 14}" text-anchor="middle">{x:g}</text>'
        )
    body.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - BOTTOM + 28}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    for name, points in series.items():
        colour = COLOURS.get(name, "#888")
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in (at(x, y) for x, y in points))
        body.append(
            f'<polyline class="curve" data-build="{escape(name)}" points="{path}" fill="none" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        mark = marks.get(name)
        if mark is not None:
            px, py = at(*mark)
            body.append(
                f'<circle class="knee" data-build="{escape(name)}" cx="{px:.1f}" cy="{py:.1f}" '
                f'r="6" fill="none" stroke="{colour}" stroke-width="2"><title>{escape(name)} '
                f"knee: {mark[1]:,.0f} at {mark[0]:g}</title></circle>"
            )
    return _frame(title, body, list(series))


PALETTE = ("#1f6feb", "#d1242f", "#2da44e", "#bf8700", "#8250df", "#cf222e", "#0a3069", "#57606a")


def over_time(
    title: str, unit: str, labels: Sequence[str], series: Mapping[str, Sequence[float]]
) -> str:
    """One line per series over the runs (x: the run, labelled), its legend in two columns."""
    values = [v for points in series.values() for v in points if not math.isnan(v)]
    top = _nice_max(max(values, default=1.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM - 40
    step = plot_w / max(1, len(labels) - 1)

    def at(i: int, y: float) -> tuple[float, float]:
        return (LEFT + step * i, TOP + plot_h - plot_h * y / top)

    body = []
    for i in range(5):
        y = TOP + plot_h - plot_h * i / 4
        body.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end">{_label(top * i / 4)}</text>'
        )
    body.append(f'<text x="12" y="{TOP + plot_h / 2}" text-anchor="middle" '
                f'transform="rotate(-90 12 {TOP + plot_h / 2})">{escape(unit)}</text>')  # fmt: skip
    for i, label in enumerate(labels):
        px, _ = at(i, 0)
        # The first and the last label lean inwards, so that neither is cut at the edge.
        anchor = "start" if i == 0 else "end" if i == len(labels) - 1 else "middle"
        body.append(
            f'<text class="run" x="{px:.1f}" y="{TOP + plot_h + 14}" text-anchor="{anchor}" '
            f'font-size="9">{escape(label)}</text>'
        )
    for n, (name, points) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        drawn = [at(i, y) for i, y in enumerate(points) if not math.isnan(y)]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in drawn)
        body.append(
            f'<polyline class="trend" data-series="{escape(name)}" points="{path}" fill="none" '
            f'stroke="{colour}" stroke-width="2"><title>{escape(name)}</title></polyline>'
        )
        lx, ly = LEFT + (n % 2) * 280, TOP + plot_h + 26 + (n // 2) * 13
        body.append(
            f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{ly + 9}">{escape(name)}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{HEIGHT + 40}" viewBox="0 0 {WIDTH} {HEIGHT + 40}" font-family="sans-serif" '
        f'font-size="11"><text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="13" '
        f'font-weight="bold">{escape(title)}</text>{"".join(body)}</svg>'
    )
