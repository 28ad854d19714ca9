"""A persistent measurement store: SQLite (the standard library's), shared by processes and runs.

Measuring a program is the expensive part of every environment. The store keeps every outcome
an :class:`~optarena.envs.evaluator.Evaluator` measures (the evaluator is the only code that
reads or writes measurements in it; ``optarena store`` only shows and clears it), keyed by

* the **context**: everything besides the program that defines its score, as the scorer states it
  (workload hash, target, timing settings, input seed, tool versions, CPU model and, for timings,
  the machine), plus the scorer's kind; hashed, and kept in full in the ``contexts`` table;
* the program's **key** (its structural hash, its text's hash, its IR's SHA-1).

A different machine, CPU, target, timing setting or tool version is a different context: its
results are never used silently. Copies of an environment (vector environments, PPO's copies),
parallel runs and later runs share the store, so racing agents see the same latency for the same
program. It saves wall-clock, not samples: the evaluator still counts a stored result against
the budget of the run that asks for it.

Arrays a measurement needs (a workload's reference outputs on its random inputs) are kept too,
so that every run does not compute them again (:class:`~optarena.envs.contract.Prepared`).

Each write is one transaction (a process killed mid-write leaves no torn row); the database runs
in WAL mode so readers and one writer at a time proceed concurrently across processes. The
default file is ``$OPTARENA_STORE``, else ``<cache>/measurements.sqlite`` (``OPTARENA_CACHE_DIR``,
else ``~/.cache/optarena``); ``optarena store info`` shows it and ``optarena store clear`` empties it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optarena.envs.contract import Failure, Outcome
from optarena.envs.host import cache_root

SCHEMA_VERSION = 1
TRANSIENT_FAILURES = frozenset({"timeout"})
"""Failure kinds that say more about the machine's state than the program's: never stored."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS contexts (
    context TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS arrays (
    key TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outcomes (
    context TEXT NOT NULL,
    key TEXT NOT NULL,
    score REAL,
    failure_kind TEXT,
    failure_detail TEXT,
    censored INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL,
    extras TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (context, key)
);
"""


def default_store_path() -> Path:
    """``$OPTARENA_STORE``, else ``<cache>/measurements.sqlite``."""
    return Path(os.environ.get("OPTARENA_STORE", cache_root() / "measurements.sqlite"))


def open_store(store: Store | str | Path | None) -> Store | None:
    """What an environment's ``store=`` argument names: a store, a path, ``"default"``
    (:func:`default_store_path`) or ``None`` (no store)."""
    if store is None or isinstance(store, Store):
        return store
    return Store(None if str(store) == "default" else store)


def context_hash(context: Mapping[str, Any]) -> str:
    """The stable hash of a context (canonical JSON)."""
    text = json.dumps({"schema": SCHEMA_VERSION, **context}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class StoreInfo:
    path: Path
    contexts: int
    outcomes: int
    bytes: int


class Store:
    """Outcomes by (context, program key), in one SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path | None = None, timeout_s: float = 60.0) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self._wal(timeout_s)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._known_contexts: set[str] = set()

    def _wal(self, timeout_s: float) -> None:
        """Switch to write-ahead logging. SQLite answers "database is locked" at once, without
        waiting for the busy timeout, when another process opens the same new file at that
        moment; retry until ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def context(self, description: Mapping[str, Any]) -> str:
        """Register a context (idempotent) and return its hash."""
        digest = context_hash(description)
        if digest not in self._known_contexts:
            with self._transaction():
                self._db.execute(
                    "INSERT OR IGNORE INTO contexts VALUES (?, ?, ?)",
                    (digest, json.dumps(description, sort_keys=True, default=str), time.time()))
            self._known_contexts.add(digest)
        return digest

    def get(self, context: str, key: str) -> Outcome | None:
        row = self._db.execute(
            "SELECT score, failure_kind, failure_detail, censored, seconds, extras FROM outcomes "
            "WHERE context = ? AND key = ?", (context, key)).fetchone()
        if row is None:
            return None
        score, kind, detail, censored, seconds, extras = row
        failure = Failure(kind, detail) if kind is not None else None
        return Outcome(score, failure, bool(censored), seconds, json.loads(extras))

    def put(self, context: str, key: str, outcome: Outcome) -> None:
        """Store ``outcome`` (one transaction); transient failures are not stored."""
        if outcome.failure is not None and outcome.failure.kind in TRANSIENT_FAILURES:
            return
        failure = outcome.failure
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (context, key, outcome.score, failure.kind if failure else None,
                 failure.detail if failure else None, int(outcome.censored), outcome.seconds,
                 json.dumps(dict(outcome.extras), default=_jsonable), time.time()))

    def put_arrays(self, key: str, arrays: Sequence[np.ndarray]) -> None:
        """Keep arrays under ``key`` (e.g. a workload's reference outputs), one transaction."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO arrays VALUES (?, ?, ?)",
                             (key, pack_arrays(arrays), time.time()))

    def get_arrays(self, key: str) -> list[np.ndarray] | None:
        row = self._db.execute("SELECT data FROM arrays WHERE key = ?", (key,)).fetchone()
        return None if row is None else unpack_arrays(row[0])

    def keys(self, context: str) -> set[str]:
        """The keys of the programs stored for ``context``."""
        rows = self._db.execute("SELECT key FROM outcomes WHERE context = ?", (context,))
        return {key for (key,) in rows}

    def info(self) -> StoreInfo:
        contexts = self._db.execute("SELECT COUNT(*) FROM contexts").fetchone()[0]
        outcomes = self._db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*"))
        return StoreInfo(self.path, int(contexts), int(outcomes), size)

    def clear(self) -> int:
        """Delete every stored outcome and context; returns how many outcomes there were."""
        count = self.info().outcomes
        with self._transaction():
            self._db.execute("DELETE FROM outcomes")
            self._db.execute("DELETE FROM contexts")
            self._db.execute("DELETE FROM arrays")
        self._db.execute("VACUUM")
        self._known_contexts.clear()
        return count

    def close(self) -> None:
        self._db.close()


def pack_arrays(arrays: Sequence[np.ndarray]) -> bytes:
    """Arrays as the bytes of an ``.npz`` (how the store keeps them, and a file can)."""
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    return buffer.getvalue()


def unpack_arrays(data: bytes) -> list[np.ndarray]:
    """The arrays :func:`pack_arrays` packed, in order."""
    with np.load(io.BytesIO(data)) as stored:
        return [stored[f"arr_{i}"] for i in range(len(stored.files))]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")
