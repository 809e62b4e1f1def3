"""Charts as inline SVG, written here: horizontal grouped bars, the only kind the report needs.

Why not a plotting library: the page must open from a folder with no server and no network (no CDN
script), stay small and be safe to fill with outside text. A few dozen lines of SVG do that with no
dependency and no JavaScript; matplotlib (a heavy dependency aesdata does not otherwise need) would
give raster or bulky SVG for the same bars, and JavaScript chart libraries need scripts the page's
Content-Security-Policy forbids. Every string that reaches the SVG is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

LABEL_W, VALUE_W, BAR_H, GAP, GROUP_GAP, LEGEND_H = 190, 56, 14, 3, 12, 26
MAX_LABEL = 26  # longer group labels are cut (the whole label is the tooltip)


@dataclass(frozen=True)
class Bar:
    series: str  # legend entry
    value: float | None  # None: nothing to measure (drawn as "n/a")
    colour: str  # a CSS colour chosen by the report, never from data


def _fmt(value: float) -> str:
    return f"{value:.2f}" if isinstance(value, float) and not value.is_integer() else f"{value:g}"


def bars(groups: Sequence[tuple[str, Sequence[Bar]]], *, title: str, scale_max: float | None = None,
         width: int = 620, label_w: int = LABEL_W, fmt: Callable[[float], str] = _fmt) -> str:
    """One chart: a row of bars per group (label on the left), a legend of the series on top.

    Bars start at 0; a negative value (an alpha below chance) draws no bar but prints its value.
    """
    top = scale_max or max([b.value for _, bs in groups for b in bs if b.value is not None] + [1e-9])
    plot_w = width - label_w - VALUE_W
    legend: dict[str, str] = {}
    for _, bs in groups:
        for b in bs:
            legend.setdefault(b.series, b.colour)
    parts: list[str] = []
    x = 8
    for name, colour in legend.items():
        parts.append(f'<rect x="{x}" y="4" width="10" height="10" rx="2" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="13" class="lg">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    y = LEGEND_H
    for label, bs in groups:
        block = len(bs) * (BAR_H + GAP) - GAP
        short = label if len(label) <= MAX_LABEL else label[:MAX_LABEL - 1] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + block / 2 + 4:.1f}" class="gl" text-anchor="end">'
                     f'<title>{escape(label)}</title>{escape(short)}</text>')
        for b in bs:
            if b.value is None:
                parts.append(f'<text x="{label_w + 4}" y="{y + BAR_H - 3}" class="na">n/a</text>')
            else:
                w = max(0.0, min(1.0, b.value / top)) * plot_w
                parts.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{BAR_H}" rx="2" fill="{b.colour}">'
                             f'<title>{escape(b.series)}: {escape(fmt(b.value))}</title></rect>'
                             f'<text x="{label_w + w + 4:.1f}" y="{y + BAR_H - 3}" class="v">'
                             f'{escape(fmt(b.value))}</text>')
            y += BAR_H + GAP
        y += GROUP_GAP - GAP
    height = y + 4
    axis = f'<line x1="{label_w}" y1="{LEGEND_H - 4}" x2="{label_w}" y2="{height - 6}" class="ax"/>'
    return (f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
            f'{axis}{"".join(parts)}</svg>')
