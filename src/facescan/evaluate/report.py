"""The run report: Markdown and one self-contained HTML file (figures embedded), plus SVG figures.

Every number goes through :func:`_num`, so a report is written whatever the metrics hold: an
attribute with no scored item, accuracy 0 everywhere (no min/max ratio), one group, one item,
every answer invalid, missing or NaN intervals. Each file is replaced atomically (written aside,
then renamed), so a run killed while writing its report never leaves half a file.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

import numpy as np
from markdown_it import MarkdownIt

from facescan import taxonomy
from facescan.evaluate.charts import confusion_svg, group_bars_svg
from facescan.evaluate.fairness import NOT_ENOUGH
from facescan.evaluate.metrics import CALIBRATION_BINS

SUMMARY_COLUMNS = ("attribute", "n", "accuracy", "95% CI", "macro-F1", "±1 group", "MAE (y)", "invalid", "ECE",
                   "largest group gap (95% CI)")
SMALL_MARK = "†"
"""Marks a group too small to compare (fewer than the run's ``min_n`` items) in tables and charts."""


def fmt_number(x, fmt: str = ".3f") -> str:
    """A number as text; "–" for a missing or undefined one (None, NaN, not a number)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return "–"
    return format(x, fmt) if math.isfinite(x) else "–"


def _fmt_ci(ci) -> str:
    lo, hi = (fmt_number(v) for v in ci) if isinstance(ci, (list, tuple)) and len(ci) == 2 else ("–", "–")
    return "–" if "–" in (lo, hi) else f"[{lo}, {hi}]"


def md_cell(text) -> str:
    """Text for a Markdown table cell (a ``|`` would end the cell); "–" for a missing value."""
    if text is None or text == "":
        return "–"
    return " ".join(str(text).split()).replace("|", "\\|")


def fmt_with_ci(value, ci) -> str:
    """``0.081 [0.032, 0.140]``; the number alone without an interval, "–" without a number."""
    number, interval = fmt_number(value), _fmt_ci(ci)
    return number if "–" in (number, interval) else f"{number} {interval}"


def group_label(name: str, row: dict) -> str:
    """A group as reports print it: its label-set spelling, † when it is too small to compare."""
    return str(row.get("label") or name) + (f" {SMALL_MARK}" if row.get("small") else "")


def _coverage(fair: dict) -> str:
    """Which groups a grouping's gaps cover, e.g. "5 of 7 groups, n ≥ 30"."""
    groups, compared = fair.get("groups") or {}, fair.get("compared")
    if compared is None:  # metrics written before groups had a minimum size
        return f"{len(groups)} groups"
    return f"{len(compared)} of {len(groups)} groups, n ≥ {fair.get('min_n')}"


def gap_text(fair: dict, key: str = "largest_gap") -> str:
    """A grouping's largest gap (``key``: or ``equalized_odds_difference``) with its interval, or why there is none."""
    ci = fair.get("largest_gap_ci95" if key == "largest_gap" else "equalized_odds_ci95")
    if fmt_number(fair.get(key)) != "–":
        return fmt_with_ci(fair.get(key), ci)
    if len(fair.get("groups") or {}) < 2:
        return "one group only"
    return NOT_ENOUGH


def widest(fairness: dict, key: str = "largest_gap") -> str:
    """The largest ``key`` over an attribute's groupings, with its interval, grouping and coverage
    ("0.081 [0.032, 0.140] (race: 5 of 7 groups, n ≥ 30)"); "not enough data …" when no grouping
    has two groups to compare, "–" without groupings."""
    found = [(f[key], g, f) for g, f in (fairness or {}).items() if fmt_number(f.get(key)) != "–"]
    if not found:
        return NOT_ENOUGH if any(len(f.get("groups") or {}) >= 2 for f in (fairness or {}).values()) else "–"
    _, grouping, fair = max(found, key=lambda x: x[0])  # the first grouping of the largest value
    return f"{gap_text(fair, key)} ({grouping}: {_coverage(fair)})"


def _pretty(label_set: str | None, labels: list[str]) -> list[str]:
    try:
        ls = taxonomy.label_set(label_set)
    except (KeyError, ValueError, TypeError):
        return [str(x) for x in labels]
    return [ls.pretty(x) if x in ls.labels else str(x) for x in labels]


def write_text_atomic(path: Path, text: str) -> None:
    _write_atomic(path, text.encode("utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: into a file beside it, then renamed over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _confusion_figure(m: dict, title: str) -> bytes | None:
    confusion = m.get("confusion") or {}
    labels = _pretty(m.get("label_set"), list(confusion.get("labels") or []))
    rows = np.array(confusion.get("matrix") or [], dtype=float)
    if len(labels) < 2 or rows.shape != (len(labels), len(labels)):
        return None
    rows = rows[:-1]  # no item is labelled invalid
    rates = rows / np.maximum(rows.sum(1, keepdims=True), 1)
    return confusion_svg(labels[:-1], labels, rates, title)


def _groups_figure(per_attribute: dict[str, dict]) -> bytes:
    """One panel per grouping (race, gender, …) with every attribute's accuracy per group side by side;
    a group or grouping that an attribute lacks is left without a bar. Each group is named with its n;
    a group too small to compare is marked † and drawn pale."""
    groupings = list(dict.fromkeys(g for fair in per_attribute.values() for g in fair))
    panels, min_ns = [], set()
    for grouping in groupings:
        fairs = {a: f[grouping] for a, f in per_attribute.items() if grouping in f}
        rows = {a: f.get("groups") or {} for a, f in fairs.items()}
        names = list(dict.fromkeys(n for r in rows.values() for n in r))
        labels, small = [], []
        for name in names:
            present = [r[name] for r in rows.values() if name in r]
            ns = sorted({r["n"] for r in present if isinstance(r.get("n"), int)})
            size = "" if not ns else f" (n={ns[0]})" if len(ns) == 1 else f" (n={ns[0]}–{ns[-1]})"
            small.append(any(r.get("small") for r in present))
            labels.append(group_label(name, present[0]) + size)
        min_ns |= {f.get("min_n") for a, f in fairs.items() if any(r.get("small") for r in rows[a].values())}
        series = {a: [(rows[a].get(n, {}).get("accuracy"), rows[a].get(n, {}).get("ci95")) for n in names]
                  for a in fairs}
        panels.append({"title": f"accuracy per {grouping}",
                       "subtitle": [f"{a}: largest gap {gap_text(f)}" if fmt_number(f.get("largest_gap")) != "–"
                                    else f"{a}: {gap_text(f)}" for a, f in fairs.items()],
                       "groups": labels, "small": small, "series": series})
    note = "; ".join(f"{SMALL_MARK} n < {m}: too few to compare, left out of the gaps"
                     for m in sorted(m for m in min_ns if m is not None))
    return group_bars_svg(panels, note)


def write_report(metrics: dict, out: Path) -> tuple[Path, Path]:
    """Write ``report.md`` (figures in ``figures/``) and a self-contained ``report.html``."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    attributes = metrics.get("attributes") or {}
    meta = metrics.get("meta") or {}
    unit = "clip" if "fps" in (meta.get("identity") or {}) else "image"
    md = _header(meta) + _problems(metrics.get("problems") or []) + _left_out(meta) + _summary(attributes)
    figures: list[tuple[str, bytes]] = []
    fair = {a: m["fairness"] for a, m in attributes.items() if m.get("n") and m.get("fairness")}
    if fair:
        figures.append(("groups.svg", _groups_figure(fair)))
        flagged = any(row.get("small") for groupings in fair.values() for f in groupings.values()
                      for row in (f.get("groups") or {}).values())
        md += ["", "## Accuracy per group", "",
               "![accuracy per demographic group, every attribute](figures/groups.svg)", "",
               "Tables per attribute below; a group's interval is wide when the group is small."
               + (f" Groups marked {SMALL_MARK} are too small to compare and are left out of the gaps." if flagged
                  else "")]
    for attr, m in attributes.items():
        figure = _confusion_figure(m, f"{attr}: confusion (row-normalized)") if m.get("n") else None
        if figure is not None:
            figures.append((f"confusion_{attr}.svg", figure))
        md += _attribute_section(attr, m, f"confusion_{attr}.svg" if figure is not None else None, unit)
    for name, data in figures:
        _write_atomic(out / "figures" / name, data)
    md_text = "\n".join(md) + "\n"
    md_path = out / "report.md"
    write_text_atomic(md_path, md_text)
    html_path = out / "report.html"
    write_text_atomic(html_path, _html(md_text, dict(figures)))
    return md_path, html_path


def _header(meta: dict) -> list[str]:
    ident = meta.get("identity") or {}
    md = [f"# facescan eval — {md_cell(ident.get('backend'))} on {md_cell(ident.get('dataset'))} "
          f"({md_cell(ident.get('split'))})", ""]
    info = {"backend": ident.get("backend"), "model": meta.get("model"), "dataset": ident.get("dataset"),
            "split": ident.get("split"), "n": meta.get("n_items"), "limit / seed / stratify":
            " / ".join(md_cell(ident.get(k)) for k in ("limit", "seed", "stratify")), "started": meta.get("started"),
            "finished": meta.get("finished"), "facescan": meta.get("facescan_version")}
    for key in ("mode", "prompt"):
        if meta.get(key):
            info[f"{key} (VLM)"] = meta[key]
    if "fps" in ident:
        info["clips"] = (f"{fmt_number(ident['fps'], 'g')} frames per second analyzed; a clip's prediction is its "
                         "main track's (the person seen in the most frames), no track is an invalid answer")
    return md + ["| | |", "|---|---|"] + [f"| {k} | {md_cell(v)} |" for k, v in info.items()] + [""]


def _left_out(meta: dict) -> list[str]:
    """What the dataset reader left out of the split, and why (labels with no basic emotion…)."""
    excluded = meta.get("excluded") or {}
    if not excluded:
        return []
    total = sum(excluded.values())
    return ["## Left out", "", f"{total} item(s) of the split are not evaluated (counted over the whole split, "
            "before any --limit):", ""] + [f"- {n} × {md_cell(why)}" for why, n in excluded.items()] + [""]


def _problems(problems: list[str]) -> list[str]:
    if not problems:
        return []
    return ["## Problems", "", "These numbers do not measure the backend's recognition:", ""] + [
        f"- {md_cell(p)}" for p in problems] + [""]


def _summary(attributes: dict[str, dict]) -> list[str]:
    md = ["## Summary", "", "| attribute | label set | n | accuracy (95% CI) | macro-F1 | balanced acc. | "
          "±1 group | MAE (years)¹ | invalid | ECE² | largest group gap (95% CI) |", "|---" * 11 + "|"]
    for attr, m in attributes.items():
        if not m.get("n"):
            md.append(f"| {md_cell(attr)} | – | 0 | – | – | – | – | – | – | – | – |")
            continue
        md.append(f"| {md_cell(attr)} | {md_cell(m.get('label_set'))} | {m['n']} | "
                  f"{fmt_with_ci(m.get('accuracy'), m.get('accuracy_ci95'))} | {fmt_number(m.get('macro_f1'))} | "
                  f"{fmt_number(m.get('balanced_accuracy'))} | "
                  f"{fmt_number(m.get('within_one_group'))} | {fmt_number(m.get('mae_years'), '.1f')} | "
                  f"{fmt_number(m.get('invalid_rate'))} | {fmt_number(m.get('ece'))} | "
                  f"{md_cell(widest(m.get('fairness')))} |")
    midpoint = next((m["mae_years_midpoint"] for m in attributes.values() if m.get("mae_years_midpoint") is not None),
                    None)
    if midpoint is not None:
        md += ["", "¹ Against exact ages: the age in years each face is reported with (`age_years`, the median of its "
               f"age-group distribution). Taking the top group's middle year instead is off by {midpoint:.1f} years."]
    if any(m.get("ece") is not None for m in attributes.values()):
        md += ["", "² Expected calibration error: how far the probability each answer gave its label is from how "
               f"often such answers are right ({CALIBRATION_BINS} confidence bins; 0 is perfectly calibrated)."]
    return md


def _attribute_section(attr: str, m: dict, figure: str | None, unit: str = "image") -> list[str]:
    md = ["", f"## {attr}", ""]
    failed = m.get("failed_images") or 0
    if not m.get("n"):
        md.append(f"No {attr} answer could be scored" + (f": {failed} {unit}(s) could not be analyzed." if failed
                                                         else "."))
        return md + _errors(m)
    md += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    per_class = m.get("per_class") or {}
    for lab, pretty in zip(per_class, _pretty(m.get("label_set"), list(per_class))):
        row = per_class[lab]
        md.append(f"| {md_cell(pretty)} | {fmt_number(row.get('precision'))} | {fmt_number(row.get('recall'))} | "
                  f"{fmt_number(row.get('f1'))} | {row.get('support', '–')} |")
    if figure:
        md += ["", f"![confusion matrix, {attr}](figures/{figure})"]
    if failed:
        md += ["", f"{failed} {unit}(s) could not be analyzed and are left out."]
    md += _errors(m)
    if not m.get("fairness"):
        md += ["", "No demographic labels in this dataset: no per-group breakdown."]
    for grouping, fair in (m.get("fairness") or {}).items():
        md += _fairness_section(attr, grouping, fair)
    return md


def _errors(m: dict) -> list[str]:
    errors = m.get("errors") or {}
    if not errors:
        return []
    return ["", "Most frequent errors (invalid answers and images or clips that failed):", ""] + [
        f"- {count} × {md_cell(message)}" for message, count in errors.items()]


def _fairness_section(attr: str, grouping: str, fair: dict) -> list[str]:
    groups = fair.get("groups") or {}
    compared = fair.get("compared", list(groups))
    small = [n for n, r in groups.items() if r.get("small")]
    min_n = fair.get("min_n")

    def label(name) -> str:
        return str((groups.get(name) or {}).get("label") or name or "–")

    md = ["", f"### {attr} accuracy per {grouping}", ""]
    eod = (f"equalized-odds difference {gap_text(fair, 'equalized_odds_difference')}"
           if fmt_number(fair.get("equalized_odds_difference")) != "–"
           else f"no equalized-odds difference (no class has a true- or false-positive rate over ≥ {min_n} items "
                "in two groups)")
    if len(groups) < 2:
        text = "One group only: no gap between groups to measure."
    elif fmt_number(fair.get("largest_gap")) == "–":
        text = f"{NOT_ENOUGH.capitalize()}: fewer than two groups have n ≥ {min_n}."
    else:
        if fair.get("largest_gap") == 0:
            text = f"Every compared group has the same accuracy ({fmt_number(groups[compared[0]].get('accuracy'))}), "
        else:
            text = (f"Largest gap {gap_text(fair)} ({label(fair.get('worst_group'))} vs "
                    f"{label(fair.get('best_group'))}), min/max ratio {fmt_number(fair.get('min_max_ratio'))}, ")
        text += eod + "."
        if min_n is not None:
            text += f" They cover the {len(compared)} groups with n ≥ {min_n}" + (
                f"; left out ({SMALL_MARK}): " + ", ".join(label(n) for n in small) if small else "") + "."
    md.append(md_cell(text))
    md += ["", "| group | n | accuracy | 95% CI |", "|---|---|---|---|"]
    md += [f"| {md_cell(group_label(g, r))} | {md_cell(r.get('n'))} | {fmt_number(r.get('accuracy'))} | "
           f"{_fmt_ci(r.get('ci95'))} |" for g, r in groups.items()]
    if small:
        md += ["", f"{SMALL_MARK} n < {min_n}: too few to compare; left out of the gap, the min/max ratio and the "
               "equalized-odds difference."]
    return md


def summary_rows(metrics: dict) -> list[tuple[str, ...]]:
    """The terminal's summary table: one row per attribute, in :data:`SUMMARY_COLUMNS` order."""
    rows = []
    for attr, m in (metrics.get("attributes") or {}).items():
        if not m.get("n"):
            rows.append((attr, "0", "–", "–", "–", "–", "–", "–", "–", "–"))
            continue
        rows.append((attr, str(m["n"]), fmt_number(m.get("accuracy")), _fmt_ci(m.get("accuracy_ci95")),
                     fmt_number(m.get("macro_f1")), fmt_number(m.get("within_one_group")),
                     fmt_number(m.get("mae_years"), ".1f"), fmt_number(m.get("invalid_rate")),
                     fmt_number(m.get("ece")), widest(m.get("fairness"))))
    return rows


def _markdown() -> MarkdownIt:
    """CommonMark with GFM tables; raw HTML in the text is escaped, not passed through."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    md.add_render_rule("image", _inline_figure)
    return md


def _inline_figure(self, tokens, idx, options, env) -> str:
    """Render ``![alt](figures/name.svg)`` as an ``<img>`` holding the SVG as a data URI.

    markdown-it refuses ``data:image/svg+xml`` links when parsing, so the figure is swapped in here.
    """
    token = tokens[idx]
    name = (token.attrGet("src") or "").split("/")[-1]
    data = base64.b64encode(env["figures"][name]).decode()
    alt = self.renderInlineAsText(token.children or [], options, env)
    return f'<img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}">'


def _html(md_text: str, figures: dict[str, bytes]) -> str:
    """The report as one self-contained HTML page (figures inlined as data URIs)."""
    body = _markdown().render(md_text, {"figures": figures})
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
             "font-size:90%}th{background:#f3f3f3}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>facescan eval</title><style>{style}</style>"
            f"</head><body>{body}</body></html>\n")
