"""The run report: Markdown and one self-contained HTML file (figures embedded), plus PNG figures."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from facescan import taxonomy


def _figure_confusion(m: dict, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = m["confusion"]["labels"]
    mat = np.array(m["confusion"]["matrix"], dtype=float)
    rows = mat[:-1]  # no item is labelled invalid
    norm = rows / np.maximum(rows.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(labels), 0.8 + 0.55 * len(rows)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), labels[:-1], fontsize=8)
    for i in range(norm.shape[0]):
        for j in range(norm.shape[1]):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _figure_groups(fairness: dict, attribute: str):
    """One panel per grouping: accuracy per group with its bootstrap interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [len(f["groups"]) for f in fairness.values()]
    fig, axes = plt.subplots(len(sizes), 1, figsize=(6, 0.8 * len(sizes) + 0.26 * sum(sizes)),
                             gridspec_kw={"height_ratios": sizes}, squeeze=False)
    for ax, (grouping, fair) in zip(axes[:, 0], fairness.items()):
        names = list(fair["groups"])
        accs = [fair["groups"][n]["accuracy"] for n in names]
        lo = [a - fair["groups"][n]["ci95"][0] for a, n in zip(accs, names)]
        hi = [fair["groups"][n]["ci95"][1] - a for a, n in zip(accs, names)]
        ax.barh(range(len(names)), accs, xerr=[lo, hi], color="#4c78a8", capsize=2)
        ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(f"{attribute} accuracy per {grouping}: gap {fair['largest_gap']:.3f}, "
                     f"min/max {fair['min_max_ratio']:.2f}", fontsize=8)
    axes[-1, 0].set_xlabel("accuracy (95% bootstrap interval)", fontsize=8)
    fig.tight_layout()
    return fig


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


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
    for attr, m in metrics["attributes"].items():
        if not m.get("n"):
            continue
        ls = taxonomy.label_set(m["label_set"])
        md += ["", f"## {attr}", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for lab, row in m["per_class"].items():
            md.append(f"| {ls.pretty(lab)} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
                      f"{row['support']} |")
        name = f"confusion_{attr}.png"
        figures.append((name, _png(_figure_confusion(m, f"{attr}: confusion (row-normalized)"))))
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
        if m["fairness"]:
            name = f"groups_{attr}.png"
            figures.append((name, _png(_figure_groups(m["fairness"], attr))))
            md += ["", f"![{attr} accuracy per group](figures/{name})"]
    for name, data in figures:
        (out / "figures" / name).write_bytes(data)
    md_text = "\n".join(md) + "\n"
    md_path = out / "report.md"
    md_path.write_text(md_text, encoding="utf-8")
    html_path = out / "report.html"
    html_path.write_text(_html(md_text, dict(figures)), encoding="utf-8")
    return md_path, html_path


def _html(md_text: str, figures: dict[str, bytes]) -> str:
    """A small Markdown → HTML rendering of the report (tables, headings, images inlined as data URIs).

    Written here because the report uses only headings, paragraphs, tables and images, and a
    Markdown library would be one more dependency for that.
    """
    body, table = [], []

    def flush():
        if table:
            head, *rows = [r for r in table if not set(r.replace("|", "").strip()) <= set("-")]
            cells = lambda r, t: "".join(f"<{t}>{html.escape(c.strip())}</{t}>" for c in r.strip("|").split("|"))  # noqa: E731
            body.append("<table><tr>" + cells(head, "th") + "</tr>"
                        + "".join("<tr>" + cells(r, "td") + "</tr>" for r in rows) + "</table>")
            table.clear()

    for line in md_text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            data = base64.b64encode(figures[src.rstrip(")").split("/")[-1]]).decode()
            body.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
             "font-size:90%}th{background:#f3f3f3}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>facescan eval</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>\n")
