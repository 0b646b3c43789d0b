"""The SQLite signature store: schema, migrations and every query.

One database file in ``state_dir``, in WAL mode so that ``status`` can read while a run
writes. It holds one row per library file (its signature), the log of every decision, the
origins already taken from each source (so a re-fetch after a crash is recognised), the
pairs a person declared not to be duplicates, per-source state (IMAP UIDs, Dropbox cursors)
and a small journal of plans in flight (``moves.Plan`` as JSON, see ``moves.py``).

Migrations are named functions applied in order and recorded in ``schema_migrations``; an
old database is brought forward on open. Every ``sqlite3.Error`` leaves this module as a
``StoreError`` that says what to check.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from pipeline import text
from pipeline.errors import StoreError, state_dir_unwritable
from pipeline.items import DecisionRecord
from pipeline.signatures import Signature, grid_bytes, to_signed64

FILE_COLUMNS = ("path", "size", "mtime_ns", "width", "height", "format", "sha256", "phash",
                "mean_r", "mean_g", "mean_b", "rms_r", "rms_g", "rms_b", "thumb", "grid")


def _run_script(connection: sqlite3.Connection, script: str) -> None:
    """Run statements one by one (executescript would commit our open transaction)."""
    for statement in script.split(";"):
        if statement.strip():
            connection.execute(statement)


def _migration_1_initial(connection: sqlite3.Connection, state_dir: Path) -> None:
    _run_script(connection, """
        CREATE TABLE files (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,          -- relative to Pictures, '/'-separated
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            width INTEGER, height INTEGER, format TEXT,
            sha256 TEXT, phash INTEGER,
            mean_r REAL, mean_g REAL, mean_b REAL,
            rms_r REAL, rms_g REAL, rms_b REAL,
            thumb BLOB,
            error TEXT,                          -- set when the file could not be decoded
            signed_at TEXT NOT NULL
        );
        CREATE INDEX files_sha256 ON files (sha256);
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY,
            decided_at TEXT NOT NULL,
            verdict TEXT NOT NULL,               -- promoted | quarantined | replaced | rejected
            folder TEXT NOT NULL,                -- pictures | quarantine | rejected
            path TEXT NOT NULL,                  -- where the file now is, relative to folder
            name TEXT NOT NULL,                  -- the name it arrived with
            sha256 TEXT,
            matched_path TEXT, matched_sha256 TEXT,
            method TEXT, distance REAL, reason TEXT,
            source TEXT, origin TEXT, sender TEXT, subject TEXT, message_id TEXT,
            received TEXT,
            restored_at TEXT
        );
        CREATE INDEX decisions_folder ON decisions (folder, path);
        CREATE TABLE origins (
            origin_key TEXT PRIMARY KEY,
            sha256 TEXT,
            taken_at TEXT NOT NULL
        );
        CREATE TABLE overrides (
            sha_a TEXT NOT NULL, sha_b TEXT NOT NULL,   -- sorted pair: never duplicates
            created_at TEXT NOT NULL,
            PRIMARY KEY (sha_a, sha_b)
        );
        CREATE TABLE source_state (
            source TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
            PRIMARY KEY (source, key)
        );
        CREATE TABLE journal (
            item_id TEXT PRIMARY KEY,
            plan TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
    """)


def _migration_2_one_journal_shape(connection: sqlite3.Connection, state_dir: Path) -> None:
    """Journal rows become ``moves.Plan`` dicts under a plain id. The old code wrote two
    shapes (gate plans keyed by staged item id, ``resweep:<path>`` plans): each pending one
    is converted, so an upgrade in the middle of a crashed run still finishes it."""
    from pipeline.moves import from_old_journal

    old = connection.execute("SELECT item_id, plan, created_at FROM journal "
                             "ORDER BY created_at").fetchall()
    _run_script(connection, """
        DROP TABLE journal;
        CREATE TABLE journal (
            id INTEGER PRIMARY KEY,
            plan TEXT NOT NULL,                  -- moves.Plan.to_dict() as JSON
            created_at TEXT NOT NULL
        )
    """)
    for key, text, created_at in old:
        plan = from_old_journal(key, json.loads(text), state_dir / "staging")
        if plan is not None:
            connection.execute("INSERT INTO journal (plan, created_at) VALUES (?, ?)",
                               (json.dumps(plan.to_dict()), created_at))


def _migration_8_coarse_grid(connection: sqlite3.Connection, state_dir: Path) -> None:
    """Issue 12. Each row gets the coarse grid of its thumbnail (``grid``), what the
    candidate search of ``similar`` looks files up by (computed here from the stored
    thumbnail: the same bytes the signer writes). JPEG rows with a side that is not a
    multiple of 8 may have been signed with the old orientation bug (a reduced decode's
    partial block row turned away from the end): their mtime is reset so that the next
    resweep signs them again (a one-off cost for those files only)."""
    import numpy as np

    from pipeline.signatures import THUMB

    connection.execute("ALTER TABLE files ADD COLUMN grid BLOB")
    rows = connection.execute("SELECT id, thumb FROM files WHERE thumb IS NOT NULL").fetchall()
    connection.executemany("UPDATE files SET grid = ? WHERE id = ?", [
        (grid_bytes(np.frombuffer(thumb, dtype=np.uint8).reshape(THUMB, THUMB)), file_id)
        for file_id, thumb in rows])
    connection.execute("UPDATE files SET mtime_ns = -1 WHERE format = 'JPEG' AND "
                       "(width % 8 != 0 OR height % 8 != 0)")


MIGRATIONS = [(1, "initial", _migration_1_initial),
              (2, "one journal shape", _migration_2_one_journal_shape),
              (8, "coarse grid", _migration_8_coarse_grid)]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def translate_errors(action: str, path: Path) -> Iterator[None]:
    """Turn sqlite3 errors into StoreError with advice."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"signature store {path}: cannot {action}: {exc} "
                         "(check free space and permissions of state_dir)") from exc


class Store:
    """A connection to the signature store; use as a context manager to close it."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=path.parent).close()
        except OSError as exc:
            raise state_dir_unwritable(path.parent, exc) from exc
        with translate_errors("open", path):
            self.connection = text.connect(path, isolation_level=None, timeout=30)
            self.connection.row_factory = sqlite3.Row
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            self._migrate()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def _migrate(self) -> None:
        """Bring the schema forward. Another command may be opening the same new store at
        the same moment, so the check and the migrations happen in one write transaction
        (BEGIN IMMEDIATE: one opener at a time) and the applied versions are read inside it;
        a store already up to date is recognised with a plain read and no lock."""
        if self._applied_versions() >= {version for version, _, _ in MIGRATIONS}:
            return
        with self.transaction():
            self.connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                                    "applied_at TEXT NOT NULL)")
            applied = self._applied_versions()
            for version, name, migrate in MIGRATIONS:
                if version in applied:
                    continue
                migrate(self.connection, self.path.parent)
                self.connection.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                                        (version, name, now_iso()))

    def _applied_versions(self) -> set[int]:
        exists = self.connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                         "AND name = 'schema_migrations'").fetchone()
        if not exists:
            return set()
        return {row[0] for row in self.connection.execute(
            "SELECT version FROM schema_migrations")}

    def schema_version(self) -> int:
        row = self.connection.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return row[0] or 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``with store.transaction() as tx:`` commits on success, rolls back on error."""
        with translate_errors("write", self.path):
            self.connection.execute("BEGIN IMMEDIATE")
            try:
                yield self.connection
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise
            self.connection.execute("COMMIT")

    def query(self, sql: str, parameters: tuple = ()) -> list[sqlite3.Row]:
        with translate_errors("read", self.path):
            return self.connection.execute(sql, parameters).fetchall()

    # --- library files -------------------------------------------------------------

    def known_files(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of every library row: what an incremental scan compares."""
        return {row["path"]: (row["size"], row["mtime_ns"])
                for row in self.query("SELECT path, size, mtime_ns FROM files")}

    def put_file(self, tx: sqlite3.Connection, path: str, size: int, mtime_ns: int,
                 signature: Signature | None, error: str = "") -> None:
        """Insert or replace the row of one library file (error set when undecodable)."""
        values: tuple = (path, size, mtime_ns) + (None,) * 13
        if signature is not None:
            values = (path, size, mtime_ns, signature.width, signature.height,
                      signature.format, signature.sha256, to_signed64(signature.phash),
                      *signature.mean, *signature.rms, signature.thumb, signature.grid)
        tx.execute(f"INSERT OR REPLACE INTO files ({', '.join(FILE_COLUMNS)}, error, signed_at)"
                   f" VALUES ({', '.join('?' * len(FILE_COLUMNS))}, ?, ?)",
                   values + (error or None, now_iso()))

    def remove_files(self, tx: sqlite3.Connection, paths: list[str]) -> None:
        tx.executemany("DELETE FROM files WHERE path = ?", [(path,) for path in paths])

    def file(self, path: str) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM files WHERE path = ?", (path,))
        return rows[0] if rows else None

    def thumbs(self, ids: list[int]) -> dict[int, bytes]:
        result: dict[int, bytes] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            for row in self.query(f"SELECT id, thumb FROM files WHERE id IN ({marks})",
                                  tuple(chunk)):
                result[row["id"]] = row["thumb"]
        return result

    def count_files(self) -> int:
        return self.query("SELECT COUNT(*) FROM files WHERE error IS NULL")[0][0]

    def undecodable_files(self) -> list[sqlite3.Row]:
        return self.query("SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path")

    # --- origins and per-source state ----------------------------------------------

    def has_origin(self, origin_key: str) -> bool:
        return bool(self.query("SELECT 1 FROM origins WHERE origin_key = ?", (origin_key,)))

    def add_origin(self, tx: sqlite3.Connection, origin_key: str, sha256: str) -> None:
        tx.execute("INSERT OR IGNORE INTO origins VALUES (?, ?, ?)",
                   (origin_key, sha256, now_iso()))

    def get_state(self, source: str, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM source_state WHERE source = ? AND key = ?",
                          (source, key))
        return rows[0]["value"] if rows else default

    def set_state(self, tx: sqlite3.Connection, source: str, key: str, value: str) -> None:
        tx.execute("INSERT OR REPLACE INTO source_state VALUES (?, ?, ?)", (source, key, value))

    # --- decisions and overrides ---------------------------------------------------

    def record_decision(self, tx: sqlite3.Connection, record: DecisionRecord) -> int:
        cursor = tx.execute(
            "INSERT INTO decisions (decided_at, verdict, folder, path, name, sha256, "
            "matched_path, matched_sha256, method, distance, reason, source, origin, sender, "
            "subject, message_id, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?)",
            (record.decided_at or now_iso(), record.verdict, record.folder, record.path,
             record.name, record.sha256, record.matched_path, record.matched_sha256,
             record.method, record.distance, record.reason, record.source, record.origin,
             record.sender, record.subject, record.message_id, record.received))
        return cursor.lastrowid

    def decision(self, decision_id: int) -> sqlite3.Row | None:
        rows = self.query("SELECT * FROM decisions WHERE id = ?", (decision_id,))
        return rows[0] if rows else None

    def recent_decisions(self, limit: int = 10) -> list[sqlite3.Row]:
        """The last ``limit`` decisions, newest first (what `status` shows)."""
        return self.query("SELECT verdict, name, folder, path, reason, source, sender, "
                          "subject, received, message_id, decided_at FROM decisions "
                          "ORDER BY id DESC LIMIT ?", (limit,))

    def decisions_in(self, folder: str) -> list[sqlite3.Row]:
        """Decisions whose file lives in ``folder`` and was not restored, newest first."""
        return self.query("SELECT * FROM decisions WHERE folder = ? AND restored_at IS NULL "
                          "ORDER BY decided_at DESC, id DESC", (folder,))

    def mark_restored(self, tx: sqlite3.Connection, decision_id: int) -> None:
        tx.execute("UPDATE decisions SET restored_at = ? WHERE id = ?", (now_iso(), decision_id))

    def add_override(self, tx: sqlite3.Connection, sha_a: str, sha_b: str) -> None:
        first, second = sorted((sha_a, sha_b))
        tx.execute("INSERT OR IGNORE INTO overrides VALUES (?, ?, ?)", (first, second, now_iso()))

    def overridden_partners(self, sha256: str) -> set[str]:
        """Every sha256 a person declared is not a duplicate of ``sha256``."""
        rows = self.query("SELECT sha_a, sha_b FROM overrides WHERE sha_a = ? OR sha_b = ?",
                          (sha256, sha256))
        return {row["sha_b"] if row["sha_a"] == sha256 else row["sha_a"] for row in rows}

    def all_overrides(self) -> set[tuple[str, str]]:
        return {(row["sha_a"], row["sha_b"])
                for row in self.query("SELECT sha_a, sha_b FROM overrides")}

    def counts(self) -> dict[str, int]:
        rows = self.query("SELECT verdict, COUNT(*) AS n FROM decisions GROUP BY verdict")
        return {row["verdict"]: row["n"] for row in rows}

    # --- journal of plans in flight ------------------------------------------------

    def add_journal(self, tx: sqlite3.Connection, plan: dict) -> int:
        """Journal one plan (``moves.Plan.to_dict()``); return its id."""
        cursor = tx.execute("INSERT INTO journal (plan, created_at) VALUES (?, ?)",
                            (json.dumps(plan), now_iso()))
        return cursor.lastrowid

    def remove_journal(self, tx: sqlite3.Connection, plan_id: int) -> None:
        tx.execute("DELETE FROM journal WHERE id = ?", (plan_id,))

    def journal(self) -> list[tuple[int, dict]]:
        """Every journaled plan, oldest first, as (id, plan dict)."""
        return [(row["id"], json.loads(row["plan"]))
                for row in self.query("SELECT id, plan FROM journal ORDER BY id")]
