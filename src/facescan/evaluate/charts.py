"""The report's two charts, written as SVG: a confusion-matrix heatmap and per-group accuracy bars.

Written here rather than drawn with matplotlib because the eval harness has to stay within 10% of
a run's time, and importing and laying out matplotlib costs 0.6-0.9 s per report: more than all
the rest of the harness over 2,500 images. Both charts are rectangles, lines and text, so a few
lines of SVG give the same picture; text stays text (sharp, searchable, selectable).
"""

from __future__ import annotations

from html import escape

import numpy as np

FONT = "font-family:DejaVu Sans,Helvetica,Arial,sans-serif"
ATTRIBUTE_COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#b279a2")
# matplotlib's "Blues" at 0, .25, .5, .75, 1: light for rare confusions, dark for frequent ones.
BLUES = np.array([[247, 251, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]], float)


def _unit(value) -> float | None:
    """``value`` clamped to [0, 1]; None for a missing or undefined number (None, NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return min(max(value, 0.0), 1.0) if np.isfinite(value) else None


def _blue(value: float) -> str:
    x = (_unit(value) or 0.0) * (len(BLUES) - 1)
    i = min(int(x), len(BLUES) - 2)
    r, g, b = BLUES[i] + (BLUES[i + 1] - BLUES[i]) * (x - i)
    return f"#{int(r):02x}{int(g):02x}{int(b):02x}"


def _text(x: float, y: float, s: str, size: float = 11, anchor: str = "middle", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'dominant-baseline="central" style="{FONT}" {extra}>{escape(s)}</text>')


def _width(s: str, size: float) -> float:
    return 0.6 * size * len(s)  # close enough for a sans-serif font to size margins


def _svg(width: float, height: float, body: list[str]) -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}"><rect width="100%" height="100%" fill="white"/>'
            + "".join(body) + "</svg>\n").encode()


def confusion_svg(true_labels: list[str], predicted_labels: list[str], rates: np.ndarray, title: str) -> bytes:
    """Heatmap of a row-normalized confusion matrix (rows true, columns predicted), each cell labelled."""
    cell = 44
    left = 30 + max((_width(s, 11) for s in true_labels), default=0)
    bottom = 30 + 0.72 * max((_width(s, 11) for s in predicted_labels), default=0)  # labels at 45°
    top = 34
    w = left + cell * len(predicted_labels) + 20
    h = top + cell * len(true_labels) + bottom
    body = [_text(left + cell * len(predicted_labels) / 2, 16, title, 12)]
    for i, row in enumerate(rates):
        for j, v in enumerate(row):
            x, y = left + j * cell, top + i * cell
            body.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{_blue(v)}"/>')
            if (_unit(v) or 0.0) >= 0.005:  # empty cells stay blank
                colour = "white" if v > 0.5 else "black"
                body.append(_text(x + cell / 2, y + cell / 2, f"{v:.2f}", 10, extra=f'fill="{colour}"'))
    body.append(f'<rect x="{left}" y="{top}" width="{cell * len(predicted_labels)}" '
                f'height="{cell * len(true_labels)}" fill="none" stroke="#444"/>')
    for i, s in enumerate(true_labels):
        body.append(_text(left - 6, top + (i + 0.5) * cell, s, 11, "end"))
    for j, s in enumerate(predicted_labels):
        x, y = left + (j + 0.5) * cell, top + cell * len(true_labels) + 8
        body.append(_text(x, y, s, 11, "end", f'transform="rotate(-45 {x:.1f} {y:.1f})"'))
    body.append(_text(12, top + cell * len(true_labels) / 2, "true", 11,
                      extra=f'transform="rotate(-90 12 {top + cell * len(true_labels) / 2:.1f})"'))
    body.append(_text(left + cell * len(predicted_labels) / 2, h - 12, "predicted", 11))
    return _svg(w, h, body)


def group_bars_svg(panels: list[dict], note: str = "") -> bytes:
    """Horizontal bars of accuracy per group with 95% interval whiskers, one panel per grouping.

    Each panel: ``{"title": str, "subtitle": [lines], "groups": [names], "small": [bool], "series": {attribute:
    [(accuracy, (lo, hi)), …]}}`` (``subtitle`` and ``small`` optional); the attributes of a panel are drawn
    side by side in each group's row, pale for a group marked small (too few items to compare). An accuracy
    that is None (or NaN) gets no bar, an interval that is None no whisker. ``note`` is printed at the foot.
    """
    attrs = list(dict.fromkeys(a for p in panels for a in p["series"]))
    bar, gap_rows, plot_w = 9, 8, 460
    left = 20 + max((_width(g, 10) for p in panels for g in p["groups"]), default=0)
    row_h = bar * max(len(attrs), 1) + gap_rows
    w = left + plot_w + 30
    body: list[str] = []
    x0, y = left, 44
    for k, attr in enumerate(attrs):  # legend
        lx = x0 + k * 110
        body.append(f'<rect x="{lx}" y="12" width="12" height="10" fill="{ATTRIBUTE_COLOURS[k % 4]}"/>')
        body.append(_text(lx + 17, 17, attr, 11, "start"))
    for panel in panels:
        body.append(_text(x0 + plot_w / 2, y, panel["title"], 11))
        for line in panel.get("subtitle") or []:
            y += 13
            body.append(_text(x0 + plot_w / 2, y, line, 9.5, extra='fill="#444"'))
        y += 12
        height = row_h * len(panel["groups"])
        small = panel.get("small") or []
        for t in np.linspace(0, 1, 6):  # grid and axis labels
            gx = x0 + t * plot_w
            body.append(f'<line x1="{gx:.1f}" y1="{y}" x2="{gx:.1f}" y2="{y + height}" stroke="#ddd"/>')
            body.append(_text(gx, y + height + 10, f"{t:.1f}", 9))
        for r, name in enumerate(panel["groups"]):
            ry = y + r * row_h + gap_rows / 2
            pale = r < len(small) and bool(small[r])
            body.append(_text(x0 - 6, ry + bar * len(attrs) / 2, name, 10, "end", 'fill="#777"' if pale else ""))
            for k, attr in enumerate(attrs):
                values = panel["series"].get(attr) or []
                acc, ci = values[r] if r < len(values) else (None, None)
                body += _bar(x0, ry + k * bar, bar, plot_w, acc, ci, ATTRIBUTE_COLOURS[k % 4], f"{attr}, {name}", pale)
        body.append(f'<rect x="{x0}" y="{y}" width="{plot_w}" height="{height}" fill="none" stroke="#444"/>')
        y += height + 40
    body.append(_text(x0 + plot_w / 2, y - 14, "accuracy (95% bootstrap interval)", 11))
    if note:
        body.append(_text(x0 + plot_w / 2, y + 2, note, 9.5, extra='fill="#444"'))
        y += 16
    return _svg(w, y, body)


def _bar(x0: float, by: float, bar: float, plot_w: float, acc, ci, colour: str, what: str,
         pale: bool = False) -> list[str]:
    """One accuracy bar with its interval whisker (nothing for an undefined accuracy or interval);
    ``pale`` for a group too small to compare."""
    acc = _unit(acc)
    if acc is None:
        return []
    lo, hi = (_unit(v) for v in ci) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
    span = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    opacity = ' fill-opacity="0.35"' if pale else ""
    out = [f'<rect x="{x0}" y="{by:.1f}" width="{acc * plot_w:.1f}" height="{bar - 1}" '
           f'fill="{colour}"{opacity}><title>{escape(f"{what}: {acc:.3f}{span}")}</title></rect>']
    if span:
        cy = by + (bar - 1) / 2
        out.append(f'<path d="M{x0 + lo * plot_w:.1f} {cy:.1f}H{x0 + hi * plot_w:.1f}'
                   f'M{x0 + lo * plot_w:.1f} {cy - 2:.1f}v4M{x0 + hi * plot_w:.1f} {cy - 2:.1f}v4" '
                   'stroke="#222" stroke-width="0.8" fill="none"/>')
    return out
