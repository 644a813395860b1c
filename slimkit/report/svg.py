"""A small SVG plotter for the report: panels with linear axes, bars, stairs, lines, points,
reference lines and legends — the handful of marks the report draws.

Why not matplotlib here: each of its figures costs 50–150 ms (layout, text, rasterising), a
report draws five to ten of them, and on a small model that was the largest part of the
pipeline's overhead over the same calls made by hand. These figures are text, cost well under
a millisecond each, stay sharp at any zoom, and are a fraction of a PNG's bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3")


def text_width(s: str, size: float) -> float:
    """Rendered width estimate: sans-serif glyphs average ≈ 0.6 em (no font metrics here)."""
    return 0.6 * size * len(s)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values (1, 2, 2.5, 5 × 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def tick_label(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.0e}"
    return f"{v:.6g}" if a >= 1 else f"{v:.3g}"


def padded(lo: float, hi: float, frac: float = 0.05) -> tuple[float, float]:
    if hi <= lo:
        d = abs(lo) * 0.05 or 1.0
        return lo - d, hi + d
    d = (hi - lo) * frac
    return lo - d, hi + d


@dataclass
class Panel:
    """One plot area at (x, y), w × h pixels, with data limits; marks append SVG elements.
    Categorical axes place category i at i (bars centred there)."""

    x: float
    y: float
    w: float
    h: float
    xlim: tuple[float, float] = (0.0, 1.0)
    ylim: tuple[float, float] = (0.0, 1.0)
    parts: list[str] = field(default_factory=list)
    legend_w: float = 0.0  # pixels right of the panel its legend takes (the figure widens)

    def px(self, v: float) -> float:
        lo, hi = self.xlim
        return self.x + (v - lo) / ((hi - lo) or 1.0) * self.w

    def py(self, v: float) -> float:
        lo, hi = self.ylim
        return self.y + self.h - (v - lo) / ((hi - lo) or 1.0) * self.h

    # ---- marks --------------------------------------------------------------------------
    def bars(self, xs, heights, width: float = 0.8, color: str = PALETTE[0]) -> None:
        base = self.py(max(self.ylim[0], 0.0))
        for x, v in zip(xs, heights, strict=True):
            top = self.py(v)
            x0, x1 = self.px(x - width / 2), self.px(x + width / 2)
            self.parts.append(_rect(x0, min(top, base), x1 - x0, abs(base - top), color,
                                    "mark"))

    def row(self, v: float) -> float:
        """Pixel y of category row v on a horizontal-bar panel: the first category on top."""
        lo, hi = self.ylim
        return self.y + (v - lo) / ((hi - lo) or 1.0) * self.h

    def hbars(self, ys, lengths, height: float = 0.8, colors=None) -> None:
        base = self.px(max(self.xlim[0], 0.0))
        for i, (y, v) in enumerate(zip(ys, lengths, strict=True)):
            y0 = self.row(y - height / 2)
            c = colors[i] if colors else PALETTE[0]
            self.parts.append(_rect(base, y0, max(0.0, self.px(v) - base),
                                    self.row(y + height / 2) - y0, c, "mark"))

    def stairs(self, values, edges, color: str, fill: bool = False, width: float = 1.2) -> None:
        pts = [(self.px(edges[0]), self.py(0.0))]
        for v, a, b in zip(values, edges[:-1], edges[1:], strict=True):
            pts += [(self.px(a), self.py(v)), (self.px(b), self.py(v))]
        pts.append((self.px(edges[-1]), self.py(0.0)))
        if fill:
            self.parts.append(f'<polygon class="mark" points="{_points(pts)}" '
                              f'fill="{color}" fill-opacity="0.55"/>')
        else:
            self.parts.append(_polyline(pts, color, width, cls="mark"))

    def line(self, xs, ys, color: str = PALETTE[0], width: float = 1.5, dash: str = "",
             marker: float = 0.0) -> None:
        pts = [(self.px(x), self.py(y)) for x, y in zip(xs, ys, strict=True)]
        self.parts.append(_polyline(pts, color, width, dash, cls="mark"))
        for x, y in pts if marker else ():
            self.parts.append(_circle(x, y, marker, color, color, "mark"))

    def point(self, x: float, y: float, r: float, fill: str, stroke: str = "none") -> None:
        self.parts.append(_circle(self.px(x), self.py(y), r, fill, stroke, "mark"))

    def hline(self, y: float, color: str, dash: str = "", width: float = 0.9) -> None:
        if self.ylim[0] <= y <= self.ylim[1]:
            yy = self.py(y)
            self.parts.append(_line(self.x, yy, self.x + self.w, yy, color, width, dash))

    def vline(self, x: float, color: str, dash: str = "", width: float = 0.9) -> None:
        if self.xlim[0] <= x <= self.xlim[1]:
            xx = self.px(x)
            self.parts.append(_line(xx, self.y, xx, self.y + self.h, color, width, dash))

    def label(self, x: float, y: float, s: str, dx: float = 3, dy: float = -3,
              size: float = 9) -> None:
        """`s` beside the point (x, y): to its right, or its left where it would leave the
        panel (into the legend beside it)."""
        at = self.px(x)
        if at + dx + text_width(s, size) > self.x + self.w:
            self.parts.append(text(at - dx, self.py(y) + dy, s, size, "end", cls="mark"))
        else:
            self.parts.append(text(at + dx, self.py(y) + dy, s, size, cls="mark"))

    # ---- furniture ----------------------------------------------------------------------
    def frame(self, title: str = "", xlabel: str = "", ylabel: str = "", size: float = 11,
              xticks: bool = True, yticks: bool = True, tick_size: float = 9) -> None:
        self.parts.append(f'<rect class="plot-area" x="{self.x:.1f}" y="{self.y:.1f}" '
                          f'width="{self.w:.1f}" height="{self.h:.1f}" fill="none" '
                          'stroke="#333" stroke-width="0.8"/>')
        for v in nice_ticks(*self.xlim) if xticks else ():
            xx = self.px(v)
            self.parts.append(_tick(xx, self.y + self.h, xx, self.y + self.h + 3))
            self.parts.append(text(xx, self.y + self.h + 4 + tick_size, tick_label(v),
                                   tick_size, "middle"))
        for v in nice_ticks(*self.ylim) if yticks else ():
            yy = self.py(v)
            self.parts.append(_tick(self.x - 3, yy, self.x, yy))
            self.parts.append(text(self.x - 5, yy + tick_size / 3, tick_label(v), tick_size,
                                   "end"))
        if title:
            self.parts.append(text(self.x + self.w / 2, self.y - 7, title, size + 1, "middle"))
        if xlabel:
            self.parts.append(text(self.x + self.w / 2, self.y + self.h + 2 * tick_size + 12,
                                   xlabel, size, "middle"))
        if ylabel:
            cx, cy = self.x - 50, self.y + self.h / 2
            self.parts.append(text(cx, cy, ylabel, size, "middle", rotate=-90))

    def categories_x(self, labels, size: float = 8, rotate: float = -60) -> None:
        """Category names under the x axis (category i at x = i), rotated to fit."""
        for i, s in enumerate(labels):
            xx, yy = self.px(i), self.y + self.h + 5
            self.parts.append(_tick(xx, self.y + self.h, xx, self.y + self.h + 3))
            self.parts.append(text(xx, yy + size / 2, s, size, "end", rotate=rotate,
                                   cls="category"))

    def categories_y(self, labels, size: float = 9) -> None:
        """Category names left of the y axis (category i at row i, top first)."""
        for i, s in enumerate(labels):
            self.parts.append(text(self.x - 4, self.row(i) + size / 3, s, size, "end",
                                   cls="category"))

    def legend(self, entries: list[tuple[str, str, str]], size: float = 9) -> None:
        """entries: (label, colour, kind: box, line, dash, dotted, dot or ring), outside the
        plot area, at the top right of the panel: never over a data point (the figure widens
        to hold it)."""
        wide = max(text_width(s, size) for s, _, _ in entries) + 22
        tall = len(entries) * (size + 4) + 4
        x0, y0 = self.x + self.w + 10, self.y
        parts = [f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{wide:.1f}" height="{tall:.1f}" '
                 'fill="white" stroke="#ccc" stroke-width="0.6"/>']
        for i, (s, c, kind) in enumerate(entries):
            yy = y0 + 4 + i * (size + 4) + size / 2
            parts += [_swatch(x0 + 4, yy, c, kind), text(x0 + 20, yy + size / 3, s, size)]
        self.parts.append(f'<g class="legend">{"".join(parts)}</g>')
        self.legend_w = wide + 14


class Figure:
    """w × h pixels of panels and free text; `bytes()` is the SVG document."""

    def __init__(self, w: float, h: float) -> None:
        self.w, self.h = w, h
        self.panels: list[Panel] = []
        self.parts: list[str] = []

    def panel(self, x: float, y: float, w: float, h: float, xlim, ylim) -> Panel:
        p = Panel(x, y, w, h, tuple(xlim), tuple(ylim))
        self.panels.append(p)
        return p

    def bytes(self) -> bytes:
        body = "".join(self.parts + [s for p in self.panels for s in p.parts])
        w = max([self.w] + [p.x + p.w + p.legend_w for p in self.panels if p.legend_w])
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" '
                f'height="{self.h:.0f}" viewBox="0 0 {w:.0f} {self.h:.0f}" '
                f'font-family="{FONT}"><rect width="100%" height="100%" fill="white"/>'
                f"{body}</svg>").encode()


# ---- elements -------------------------------------------------------------------------------
def _cls(cls: str) -> str:
    """The class attribute: what the report's browser test tells apart (data marks, the plot
    area, legends, category names)."""
    return f' class="{cls}"' if cls else ""


def text(x: float, y: float, s: str, size: float, anchor: str = "start",
         rotate: float = 0.0, cls: str = "") -> str:
    rot = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate else ""
    return (f'<text{_cls(cls)} x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" '
            f'text-anchor="{anchor}"{rot}>{escape(str(s))}</text>')


def _rect(x, y, w, h, color: str, cls: str = "") -> str:
    return (f'<rect{_cls(cls)} x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
            f'fill="{color}"/>')


def _circle(x, y, r, fill: str, stroke: str, cls: str = "") -> str:
    return (f'<circle{_cls(cls)} cx="{x:.1f}" cy="{y:.1f}" r="{r:g}" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="0.9"/>')


_DASHES = {"": "", "dash": ' stroke-dasharray="5 3"', "dot": ' stroke-dasharray="1.5 2"'}


def _line(x1, y1, x2, y2, color: str, width: float, dash: str = "") -> str:
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
            f'stroke-width="{width:g}"{_DASHES[dash]}/>')


def _points(pts) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)


def _polyline(pts, color: str, width: float, dash: str = "", cls: str = "") -> str:
    return (f'<polyline{_cls(cls)} points="{_points(pts)}" fill="none" stroke="{color}" '
            f'stroke-width="{width:g}"{_DASHES[dash]}/>')


def _tick(x1, y1, x2, y2) -> str:
    return _line(x1, y1, x2, y2, "#333", 0.8)


def _swatch(x: float, y: float, c: str, kind: str) -> str:
    if kind == "box":
        return _rect(x, y - 4, 12, 8, c)
    if kind in ("dot", "ring"):
        return _circle(x + 6, y, 3.5, c if kind == "dot" else "none", c)
    return _line(x, y, x + 12, y, c, 1.5, {"line": "", "dash": "dash", "dotted": "dot"}[kind])
