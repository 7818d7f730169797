"""Every prediction of an evaluation run in SQLite, written as it is made.

One row per (item, attribute, backend), primary key included, so an interrupted run resumes
with the rows that are missing and can never hold an item twice. Each batch is one transaction:
a crash loses at most the batch in flight, never half of it.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, position INTEGER NOT NULL, labels TEXT NOT NULL, exact_age REAL);
CREATE TABLE IF NOT EXISTS predictions (
    item_id TEXT NOT NULL, attribute TEXT NOT NULL, backend TEXT NOT NULL,
    label TEXT, label_set TEXT NOT NULL, probabilities TEXT NOT NULL, raw TEXT, error TEXT, model TEXT,
    mode TEXT, prompt TEXT,
    PRIMARY KEY (item_id, attribute, backend));
"""


class RunStore:
    """The SQLite file of one run."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                [(k, json.dumps(v)) for k, v in values.items()])

    def add_items(self, items: list[tuple[str, dict, float | None]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?)",
                                [(i, pos, json.dumps(labels), age) for pos, (i, labels, age) in enumerate(items)])

    def done(self, backend: str, attributes: list[str]) -> set[str]:
        """Ids of items that have a prediction for every attribute."""
        q = ("SELECT item_id FROM predictions WHERE backend = ? AND attribute IN ({}) "
             "GROUP BY item_id HAVING COUNT(*) = ?").format(",".join("?" * len(attributes)))
        return {r[0] for r in self.db.execute(q, [backend, *attributes, len(attributes)])}

    def add_predictions(self, rows: list[dict]) -> None:
        """Rows with item_id, attribute, backend, label, label_set, probabilities, raw, error, model, mode, prompt."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO predictions VALUES (:item_id, :attribute, :backend, :label, :label_set, "
                ":probabilities, :raw, :error, :model, :mode, :prompt)",
                [{**r, "probabilities": json.dumps(r["probabilities"])} for r in rows])

    def items(self) -> list[dict]:
        return [{"id": i, "labels": json.loads(lab), "exact_age": age}
                for i, lab, age in self.db.execute("SELECT id, labels, exact_age FROM items ORDER BY position")]

    def predictions(self, backend: str, parse_probabilities: bool = True) -> dict[tuple[str, str], dict]:
        """Every stored prediction of ``backend`` by (item id, attribute); ``parse_probabilities=False``
        leaves each probability dict as its JSON text (scoring parses only the few it needs)."""
        cur = self.db.execute("SELECT item_id, attribute, label, label_set, probabilities, raw, error, model, mode, "
                              "prompt FROM predictions WHERE backend = ?", [backend])
        parse = json.loads if parse_probabilities else str
        return {(r[0], r[1]): {"label": r[2], "label_set": r[3], "probabilities": parse(r[4]), "raw": r[5],
                               "error": r[6], "model": r[7], "mode": r[8], "prompt": r[9]} for r in cur}

    def distinct(self, backend: str, column: str) -> list[str]:
        """The distinct non-empty values of ``column`` (model, mode or prompt) among ``backend``'s predictions."""
        if column not in ("model", "mode", "prompt"):
            raise ValueError(f"no column {column!r} to list")
        cur = self.db.execute(f"SELECT DISTINCT {column} FROM predictions WHERE backend = ? AND {column} != ''"
                              " ORDER BY 1", [backend])
        return [r[0] for r in cur if r[0]]

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]

    def close(self) -> None:
        self.db.close()
