"""Every prediction of an evaluation run in SQLite, written as it is made.

One row per (item, attribute, backend), primary key included, so an interrupted run resumes
with the rows that are missing and can never hold an item twice. The run's set-up (identity,
label sets, item list) is one transaction and each batch of predictions is another: a crash
loses at most the transaction in flight, never half of it.

A file that SQLite cannot read (half-written, truncated, not a database) or that is not a
facescan run store raises :class:`StoreError` naming the file, never a raw ``sqlite3`` error.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from pathlib import Path

_TABLES = {
    "meta": "key TEXT PRIMARY KEY, value TEXT NOT NULL",
    "items": "id TEXT PRIMARY KEY, position INTEGER NOT NULL, labels TEXT NOT NULL, exact_age REAL",
    "predictions": "item_id TEXT NOT NULL, attribute TEXT NOT NULL, backend TEXT NOT NULL, label TEXT, "
                   "label_set TEXT NOT NULL, probabilities TEXT NOT NULL, raw TEXT, error TEXT, model TEXT, "
                   "mode TEXT, prompt TEXT, value REAL, PRIMARY KEY (item_id, attribute, backend)",
}
_SCHEMA = "BEGIN;" + "".join(f"CREATE TABLE IF NOT EXISTS {t} ({cols});" for t, cols in _TABLES.items()) + "COMMIT;"


class StoreError(ValueError):
    """The run folder's ``predictions.sqlite`` cannot be used: corrupt, not a facescan store, unwritable."""


class RunMismatch(ValueError):
    """The run folder holds another run (other settings, or another list of items)."""


def _guarded(method):
    """Turn SQLite's errors (and unreadable stored JSON) into a one-line :class:`StoreError`."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, json.JSONDecodeError) as e:
            raise StoreError(_message(self.path, e)) from None

    return wrapper


def _message(path: Path, e: Exception) -> str:
    what = "cannot be used" if isinstance(e, sqlite3.OperationalError) else "is corrupt or not a facescan run store"
    return f"{path} {what} ({e}); remove it or choose another --out folder"


class RunStore:
    """The SQLite file of one run."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self.db = sqlite3.connect(self.path)
        except sqlite3.Error as e:
            raise StoreError(_message(self.path, e)) from None
        try:
            self._open(existed)
        except BaseException:
            self.db.close()
            raise

    @_guarded
    def _open(self, existed: bool) -> None:
        self.db.execute("PRAGMA journal_mode=WAL")
        if existed:
            problems = [r[0] for r in self.db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems))
        self.db.executescript(_SCHEMA)
        for table, cols in _TABLES.items():
            want = [c.split()[0] for c in cols.split(", PRIMARY KEY")[0].split(", ")]
            have = [r[1] for r in self.db.execute(f"PRAGMA table_info({table})")]
            if table == "predictions" and have == want[:-1]:  # a run stored before predictions had a value
                self.db.execute("ALTER TABLE predictions ADD COLUMN value REAL")
                have = want
            if have != want:
                raise sqlite3.DatabaseError(f"its {table} table has the columns {', '.join(have)}")
        self.meta()  # every stored value must be readable JSON

    @contextlib.contextmanager
    def _transaction(self):
        """One write transaction: everything inside is stored, or nothing is (an exception rolls it back)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    @_guarded
    def set_up(self, identity: dict, items: list[tuple[str, dict, float | None]], **meta) -> None:
        """Store a new run's identity, ``meta`` and items in one transaction, or check that the store holds
        this very run (same identity, same items) and leave it as it is.

        A crash inside leaves the store as it was (empty), so a rerun sets the run up from the start.
        Raises :class:`RunMismatch` when the store holds another run.
        """
        with self._transaction():
            previous = self.meta().get("identity")
            if previous is None:
                self._write_meta(identity=identity, n_items=len(items), **meta)
                self._write_items(items)
            elif previous != identity:
                raise RunMismatch(f"{self.path.parent} holds another run; its settings: "
                                  f"{_differences(previous, identity)}; choose another --out folder")
            else:
                self._check_items(items)

    def _write_meta(self, **values) -> None:
        self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            [(k, json.dumps(v)) for k, v in values.items()])

    def _write_items(self, items: list[tuple[str, dict, float | None]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO items VALUES (?, ?, ?, ?)",
                            [(i, pos, json.dumps(labels), age) for pos, (i, labels, age) in enumerate(items)])

    def _check_items(self, items: list[tuple[str, dict, float | None]]) -> None:
        stored = {r[0] for r in self.db.execute("SELECT id FROM items")}
        if not stored:  # written by a facescan that stored the identity and the items in two steps
            self._write_meta(n_items=len(items))
            self._write_items(items)
            return
        wanted = {i for i, _, _ in items}
        if stored != wanted:
            raise RunMismatch(f"{self.path.parent} holds a run of the same settings on other items "
                              f"({len(wanted - stored)} new, {len(stored - wanted)} gone: has the dataset changed?); "
                              "choose another --out folder")

    @_guarded
    def meta(self) -> dict:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    @_guarded
    def set_meta(self, **values) -> None:
        with self._transaction():
            self._write_meta(**values)

    @_guarded
    def done(self, backend: str, attributes: list[str]) -> set[str]:
        """Ids of items that have a prediction for every attribute."""
        q = ("SELECT item_id FROM predictions WHERE backend = ? AND attribute IN ({}) "
             "GROUP BY item_id HAVING COUNT(*) = ?").format(",".join("?" * len(attributes)))
        return {r[0] for r in self.db.execute(q, [backend, *attributes, len(attributes)])}

    @_guarded
    def add_predictions(self, rows: list[dict]) -> None:
        """Rows with item_id, attribute, backend, label, label_set, probabilities, raw, error, model, mode, prompt
        and, where the prediction has one, value (an age in years)."""
        with self._transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO predictions VALUES (:item_id, :attribute, :backend, :label, :label_set, "
                ":probabilities, :raw, :error, :model, :mode, :prompt, :value)",
                [{**r, "probabilities": json.dumps(r["probabilities"]), "value": r.get("value")} for r in rows])

    @_guarded
    def items(self) -> list[dict]:
        return [{"id": i, "labels": json.loads(lab), "exact_age": age}
                for i, lab, age in self.db.execute("SELECT id, labels, exact_age FROM items ORDER BY position")]

    @_guarded
    def predictions(self, backend: str, parse_probabilities: bool = True) -> dict[tuple[str, str], dict]:
        """Every stored prediction of ``backend`` by (item id, attribute); ``parse_probabilities=False``
        leaves each probability dict as its JSON text (scoring parses only the few it needs)."""
        cur = self.db.execute("SELECT item_id, attribute, label, label_set, probabilities, raw, error, model, mode, "
                              "prompt, value FROM predictions WHERE backend = ?", [backend])
        parse = json.loads if parse_probabilities else str
        return {(r[0], r[1]): {"label": r[2], "label_set": r[3], "probabilities": parse(r[4]), "raw": r[5],
                               "error": r[6], "model": r[7], "mode": r[8], "prompt": r[9], "value": r[10]}
                for r in cur}

    @_guarded
    def distinct(self, backend: str, column: str) -> list[str]:
        """The distinct non-empty values of ``column`` (model, mode or prompt) among ``backend``'s predictions."""
        if column not in ("model", "mode", "prompt"):
            raise ValueError(f"no column {column!r} to list")
        cur = self.db.execute(f"SELECT DISTINCT {column} FROM predictions WHERE backend = ? AND {column} != ''"
                              " ORDER BY 1", [backend])
        return [r[0] for r in cur if r[0]]

    @_guarded
    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]

    def close(self) -> None:
        self.db.close()


def _differences(stored: dict, wanted: dict) -> str:
    """``key: stored value (this run: other value)`` for each setting in which two identities differ."""
    keys = [k for k in {**stored, **wanted} if stored.get(k) != wanted.get(k)]
    return "; ".join(f"{k} {stored.get(k)!r} (this run: {wanted.get(k)!r})" for k in keys)
