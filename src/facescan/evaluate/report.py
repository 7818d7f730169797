"""The run report: Markdown and one self-contained HTML file (figures embedded), plus SVG figures."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
from markdown_it import MarkdownIt

from facescan import taxonomy
from facescan.evaluate.charts import confusion_svg, group_bars_svg


def _confusion_figure(m: dict, title: str) -> bytes:
    ls = taxonomy.label_set(m["label_set"])
    labels = [ls.pretty(x) if x in ls.labels else x for x in m["confusion"]["labels"]]
    rows = np.array(m["confusion"]["matrix"], dtype=float)[:-1]  # no item is labelled invalid
    rates = rows / np.maximum(rows.sum(1, keepdims=True), 1)
    return confusion_svg(labels[:-1], labels, rates, title)


def _groups_figure(per_attribute: dict[str, dict]) -> bytes:
    """One panel per grouping (race, gender, …) with every attribute's accuracy per group side by side."""
    first = next(iter(per_attribute.values()))
    panels = []
    for grouping, fair in first.items():
        names = list(fair["groups"])
        gaps = ", ".join(f"{a} {f[grouping]['largest_gap']:.3f}" for a, f in per_attribute.items())
        panels.append({"title": f"accuracy per {grouping} — largest gap: {gaps}",
                       "groups": [n.replace("_", " ") for n in names],
                       "series": {a: [(f[grouping]["groups"][n]["accuracy"], f[grouping]["groups"][n]["ci95"])
                                      for n in names] for a, f in per_attribute.items()}})
    return group_bars_svg(panels)


def _fmt_ci(ci) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def write_report(metrics: dict, out: Path) -> tuple[Path, Path]:
    """Write ``report.md`` (figures in ``figures/``) and a self-contained ``report.html``."""
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    meta = metrics["meta"]
    ident = meta["identity"]
    md = [f"# facescan eval — {ident['backend']} on {ident['dataset']} ({ident['split']})", ""]
    info = {"backend": ident["backend"], "model": meta.get("model"), "dataset": ident["dataset"],
            "split": ident["split"], "n": meta.get("n_items"), "limit / seed / stratify":
            f"{ident['limit']} / {ident['seed']} / {ident['stratify']}", "started": meta.get("started"),
            "finished": meta.get("finished"), "facescan": meta.get("facescan_version")}
    for key in ("mode", "prompt"):
        if meta.get(key):
            info[f"{key} (VLM)"] = meta[key]
    md += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items()] + [""]
    md += ["## Summary", "", "| attribute | label set | n | accuracy (95% CI) | macro-F1 | balanced acc. | "
           "±1 group | MAE (years) | invalid |", "|---|---|---|---|---|---|---|---|---|"]
    figures: list[tuple[str, bytes]] = []
    for attr, m in metrics["attributes"].items():
        if not m.get("n"):
            md.append(f"| {attr} | – | 0 | – | – | – | – | – | – |")
            continue
        pm1 = f"{m['within_one_group']:.3f}" if "within_one_group" in m else "–"
        mae = f"{m['mae_years']:.1f}" if m.get("mae_years") is not None else "–"
        md.append(f"| {attr} | {m['label_set']} | {m['n']} | {m['accuracy']:.3f} {_fmt_ci(m['accuracy_ci95'])} | "
                  f"{m['macro_f1']:.3f} | {m['balanced_accuracy']:.3f} | {pm1} | {mae} | {m['invalid_rate']:.3f} |")
    fair = {attr: m["fairness"] for attr, m in metrics["attributes"].items() if m.get("n") and m["fairness"]}
    if fair:
        figures.append(("groups.svg", _groups_figure(fair)))
        md += ["", "## Accuracy per group", "",
               "![accuracy per demographic group, every attribute](figures/groups.svg)", "",
               "Tables per attribute below; a group's interval is wide when the group is small."]
    for attr, m in metrics["attributes"].items():
        if not m.get("n"):
            continue
        ls = taxonomy.label_set(m["label_set"])
        md += ["", f"## {attr}", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for lab, row in m["per_class"].items():
            md.append(f"| {ls.pretty(lab)} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
                      f"{row['support']} |")
        name = f"confusion_{attr}.svg"
        figures.append((name, _confusion_figure(m, f"{attr}: confusion (row-normalized)")))
        md += ["", f"![confusion matrix, {attr}](figures/{name})"]
        if m["failed_images"]:
            md += ["", f"{m['failed_images']} image(s) could not be analyzed and are left out."]
        if not m["fairness"]:
            md += ["", "No demographic labels in this dataset: no per-group breakdown."]
        for grouping, fair in m["fairness"].items():
            md += ["", f"### {attr} accuracy per {grouping}", "",
                   f"Largest gap {fair['largest_gap']:.3f} ({fair['worst_group']} vs {fair['best_group']}), "
                   f"min/max ratio {fair['min_max_ratio']:.3f}, equalized-odds difference "
                   f"{fair['equalized_odds_difference']:.3f}.", "", "| group | n | accuracy | 95% CI |",
                   "|---|---|---|---|"]
            md += [f"| {g} | {r['n']} | {r['accuracy']:.3f} | {_fmt_ci(r['ci95'])} |"
                   for g, r in fair["groups"].items()]
    for name, data in figures:
        (out / "figures" / name).write_bytes(data)
    md_text = "\n".join(md) + "\n"
    md_path = out / "report.md"
    md_path.write_text(md_text, encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(_html(md_text, dict(figures)), encoding="utf-8")
    return md_path, html_path


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
