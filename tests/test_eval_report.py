"""The eval report's HTML: Markdown tables become HTML tables, text is escaped, figures are inlined."""

from html.parser import HTMLParser

import pytest

pytest.importorskip("sklearn", reason="eval needs the eval extra (scikit-learn)")

from facescan.evaluate.fairness import group_accuracy  # noqa: E402
from facescan.evaluate.metrics import attribute_metrics  # noqa: E402
from facescan.evaluate.report import write_report  # noqa: E402

ODD_GROUP = 'Smith & <Sons> "Ltd"'


class _Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts (entities decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _metrics() -> dict:
    y_true = ["male", "female"] * 6
    y_pred = ["male", "female", "male", "male", None, "female"] * 2
    groups = [ODD_GROUP] * 4 + ["plain"] * 4 + ["third_group"] * 4
    m = attribute_metrics(y_true, y_pred, "gender", n_resamples=50)
    m["failed_images"] = 0
    m["fairness"] = {"family": group_accuracy(y_true, y_pred, groups, ["male", "female"], n_resamples=50,
                                              min_n=4, order=[ODD_GROUP, "plain", "third_group"])}
    identity = {"backend": "fake", "dataset": "fake:data", "split": "val", "limit": None, "seed": 0,
                "stratify": None}
    return {"meta": {"identity": identity, "n_items": 12}, "attributes": {"gender": m}}


def test_markdown_tables_become_html_tables_and_group_names_are_escaped(tmp_path):
    md_path, html_path = write_report(_metrics(), tmp_path)
    assert "| Smith & <Sons> \"Ltd\" | 4 |" in md_path.read_text()  # the Markdown keeps the name as it is
    page = html_path.read_text()
    assert "<Sons>" not in page and "Smith &amp; &lt;Sons&gt; &quot;Ltd&quot;" in page
    parser = _Tables()
    parser.feed(page)
    per_group = [t for t in parser.tables if t[0] == ["group", "n", "accuracy", "95% CI"]]
    assert len(per_group) == 1
    rows = per_group[0]
    assert len(rows) == 1 + 3  # the header and one row per group
    assert [r[0] for r in rows[1:]] == [ODD_GROUP, "plain", "third_group"]
    assert rows[1][1] == "4"
    summary = next(t for t in parser.tables if t[0][0] == "attribute")
    assert len(summary) == 2 and summary[1][:3] == ["gender", "gender", "12"]
    assert page.count("data:image/svg+xml;base64,") == 2  # the confusion matrix and accuracy per group
