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

SUMMARY_COLUMNS = ("attribute", "n", "accuracy", "95% CI", "macro-F1", "±1 group", "invalid", "largest group gap")


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


def _cell(text) -> str:
    """Text for a Markdown table cell (a ``|`` would end the cell)."""
    return " ".join(str(text).split()).replace("|", "\\|")


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
    a group or grouping that an attribute lacks is left without a bar."""
    groupings = list(dict.fromkeys(g for fair in per_attribute.values() for g in fair))
    panels = []
    for grouping in groupings:
        names = list(dict.fromkeys(n for f in per_attribute.values()
                                   for n in (f.get(grouping) or {}).get("groups", {})))
        gaps = ", ".join(f"{a} {fmt_number(f[grouping].get('largest_gap'))}" for a, f in per_attribute.items()
                         if grouping in f)
        series = {}
        for a, f in per_attribute.items():
            rows = (f.get(grouping) or {}).get("groups", {})
            series[a] = [(rows.get(n, {}).get("accuracy"), rows.get(n, {}).get("ci95")) for n in names]
        panels.append({"title": f"accuracy per {grouping} — largest gap: {gaps}",
                       "groups": [n.replace("_", " ") for n in names], "series": series})
    return group_bars_svg(panels)


def write_report(metrics: dict, out: Path) -> tuple[Path, Path]:
    """Write ``report.md`` (figures in ``figures/``) and a self-contained ``report.html``."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    attributes = metrics.get("attributes") or {}
    md = _header(metrics.get("meta") or {}) + _problems(metrics.get("problems") or []) + _summary(attributes)
    figures: list[tuple[str, bytes]] = []
    fair = {a: m["fairness"] for a, m in attributes.items() if m.get("n") and m.get("fairness")}
    if fair:
        figures.append(("groups.svg", _groups_figure(fair)))
        md += ["", "## Accuracy per group", "",
               "![accuracy per demographic group, every attribute](figures/groups.svg)", "",
               "Tables per attribute below; a group's interval is wide when the group is small."]
    for attr, m in attributes.items():
        figure = _confusion_figure(m, f"{attr}: confusion (row-normalized)") if m.get("n") else None
        if figure is not None:
            figures.append((f"confusion_{attr}.svg", figure))
        md += _attribute_section(attr, m, f"confusion_{attr}.svg" if figure is not None else None)
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
    md = [f"# facescan eval — {ident.get('backend')} on {ident.get('dataset')} ({ident.get('split')})", ""]
    info = {"backend": ident.get("backend"), "model": meta.get("model"), "dataset": ident.get("dataset"),
            "split": ident.get("split"), "n": meta.get("n_items"), "limit / seed / stratify":
            f"{ident.get('limit')} / {ident.get('seed')} / {ident.get('stratify')}", "started": meta.get("started"),
            "finished": meta.get("finished"), "facescan": meta.get("facescan_version")}
    for key in ("mode", "prompt"):
        if meta.get(key):
            info[f"{key} (VLM)"] = meta[key]
    return md + ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in info.items()] + [""]


def _problems(problems: list[str]) -> list[str]:
    if not problems:
        return []
    return ["## Problems", "", "These numbers do not measure the backend's recognition:", ""] + [
        f"- {_cell(p)}" for p in problems] + [""]


def _summary(attributes: dict[str, dict]) -> list[str]:
    md = ["## Summary", "", "| attribute | label set | n | accuracy (95% CI) | macro-F1 | balanced acc. | "
          "±1 group | MAE (years) | invalid |", "|---|---|---|---|---|---|---|---|---|"]
    for attr, m in attributes.items():
        if not m.get("n"):
            md.append(f"| {attr} | – | 0 | – | – | – | – | – | – |")
            continue
        md.append(f"| {attr} | {m.get('label_set')} | {m['n']} | {fmt_number(m.get('accuracy'))} "
                  f"{_fmt_ci(m.get('accuracy_ci95'))} | {fmt_number(m.get('macro_f1'))} | "
                  f"{fmt_number(m.get('balanced_accuracy'))} | "
                  f"{fmt_number(m.get('within_one_group'))} | {fmt_number(m.get('mae_years'), '.1f')} | "
                  f"{fmt_number(m.get('invalid_rate'))} |")
    return md


def _attribute_section(attr: str, m: dict, figure: str | None) -> list[str]:
    md = ["", f"## {attr}", ""]
    failed = m.get("failed_images") or 0
    if not m.get("n"):
        md.append(f"No {attr} answer could be scored" + (f": {failed} image(s) could not be analyzed." if failed
                                                         else "."))
        return md + _errors(m)
    md += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    per_class = m.get("per_class") or {}
    for lab, pretty in zip(per_class, _pretty(m.get("label_set"), list(per_class))):
        row = per_class[lab]
        md.append(f"| {_cell(pretty)} | {fmt_number(row.get('precision'))} | {fmt_number(row.get('recall'))} | "
                  f"{fmt_number(row.get('f1'))} | {row.get('support', '–')} |")
    if figure:
        md += ["", f"![confusion matrix, {attr}](figures/{figure})"]
    if failed:
        md += ["", f"{failed} image(s) could not be analyzed and are left out."]
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
    return ["", "Most frequent errors (invalid answers and images that failed):", ""] + [
        f"- {count} × {_cell(message)}" for message, count in errors.items()]


def _fairness_section(attr: str, grouping: str, fair: dict) -> list[str]:
    groups = fair.get("groups") or {}
    md = ["", f"### {attr} accuracy per {grouping}", ""]
    if len(groups) < 2:
        md.append("One group only: no gap between groups to measure.")
    elif fair.get("largest_gap") == 0:
        md.append(f"Every group has the same accuracy ({fmt_number(next(iter(groups.values())).get('accuracy'))}), "
                  f"equalized-odds difference {fmt_number(fair.get('equalized_odds_difference'))}.")
    else:
        md.append(f"Largest gap {fmt_number(fair.get('largest_gap'))} ({_cell(fair.get('worst_group'))} vs "
                  f"{_cell(fair.get('best_group'))}), min/max ratio {fmt_number(fair.get('min_max_ratio'))}, "
                  f"equalized-odds difference {fmt_number(fair.get('equalized_odds_difference'))}.")
    md += ["", "| group | n | accuracy | 95% CI |", "|---|---|---|---|"]
    return md + [f"| {_cell(g)} | {r.get('n', '–')} | {fmt_number(r.get('accuracy'))} | {_fmt_ci(r.get('ci95'))} |"
                 for g, r in groups.items()]


def summary_rows(metrics: dict) -> list[tuple[str, ...]]:
    """The terminal's summary table: one row per attribute, in :data:`SUMMARY_COLUMNS` order."""
    rows = []
    for attr, m in (metrics.get("attributes") or {}).items():
        if not m.get("n"):
            rows.append((attr, "0", "–", "–", "–", "–", "–", "–"))
            continue
        gaps = [(f.get("largest_gap"), g) for g, f in (m.get("fairness") or {}).items()
                if fmt_number(f.get("largest_gap")) != "–"]
        gap = max(gaps, key=lambda g: g[0], default=None)  # the first grouping of the largest gap
        rows.append((attr, str(m["n"]), fmt_number(m.get("accuracy")), _fmt_ci(m.get("accuracy_ci95")),
                     fmt_number(m.get("macro_f1")), fmt_number(m.get("within_one_group")),
                     fmt_number(m.get("invalid_rate")),
                     f"{fmt_number(gap[0])} ({gap[1]})" if gap else "–"))
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
