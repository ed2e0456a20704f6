"""The bot's SQLite file: one shared connection, one writer at a time, and the schema migrations applied to it.

The migrations are ``bot.store.migrations``'s, shared with PostgreSQL. A SQLite file's ``PRAGMA user_version`` is
the number of them it has applied. Each pending migration runs in its own transaction together with the
``user_version`` bump, so a migration is either wholly applied or not at all. A file whose ``user_version`` is
newer than this release knows is never touched: opening it raises ``DatabaseTooNew``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from bot.core.ports import StoreBusy, StoreFull, StoreUnavailable
from bot.store.migrations import MIGRATIONS, Dialect, render
from bot.store.sql import Parameters

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
CHECKPOINT_SECONDS = 1.0

# Primary SQLite result codes (an extended code's low byte) that are a passing condition of the file, not a bug.
_BUSY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_FULL_CODES = {sqlite3.SQLITE_FULL}
_IO_CODES = {sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY}


class DatabaseTooNew(RuntimeError):
    """The database file was written by a newer release whose schema this release does not know."""

    def __init__(self, where: Path | str, found: int, known: int) -> None:
        super().__init__(
            f"The database {where} has schema version {found}, but this release of tutorbot knows versions up to "
            f"{known}. It was written by a newer tutorbot; upgrade tutorbot to use it (it was left untouched)."
        )
        self.where = where
        self.found = found
        self.known = known


def split_statements(script: str) -> list[str]:
    """The complete SQL statements of a script, in order (semicolons inside strings or triggers are respected)."""
    statements: list[str] = []
    start = 0
    for end, character in enumerate(script):
        if character == ";" and sqlite3.complete_statement(script[start : end + 1]):
            statements.append(script[start : end + 1].strip())
            start = end + 1
    if script[start:].strip():
        raise ValueError(f"incomplete SQL statement in migration: {script[start:].strip()!r}")
    return statements


class Database:
    """One SQLite connection to a file, shared by the stores, with explicit transactions and one writer at a time.

    The file is in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the process being killed
    (it is in the write-ahead log, which the OS keeps), though the last few commits could be lost if the whole
    machine loses power before the log is checkpointed. Writers wait up to ``busy_timeout_ms`` for another process.

    A passing condition of the file is raised as the core's ``StoreUnavailable``, with a log line for the host that
    says what to do: ``StoreBusy`` when another writer held the file past the busy timeout, ``StoreFull`` when its
    disk is full, ``StoreUnavailable`` for an I/O error. The failed transaction is rolled back whole, so every
    earlier commit stays as it was. Any other SQLite error is a bug and is raised as it is.

    Checkpoints (copying the log into the file, with an fsync that can take tens of milliseconds) run on a
    thread of their own every ``checkpoint_seconds``, never inside a commit, so no learner's turn pays for one.
    """

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path | str, migrations: Sequence[str] = MIGRATIONS,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:  # fmt: skip
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._migrations = list(migrations)
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()  # re-entrant so a read inside a transaction on the same thread works
        self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            # Check before anything that could write to the file (journal mode, migrations).
            self._refuse_if_too_new(self.version)
            self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute("PRAGMA synchronous = NORMAL")
            self._connection.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            self._connection.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread does it
        except BaseException:
            self._connection.close()
            raise
        self._closed = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, args=(checkpoint_seconds,),
                                              name="sqlite-checkpoint", daemon=True)  # fmt: skip
        self._checkpointer.start()

    def _checkpoint_loop(self, seconds: float) -> None:
        """Copy committed transactions from the log into the database file, off the writers' path.

        A failed checkpoint (a full disk: the file cannot grow) is logged once and tried again each period: until
        one succeeds, commits stay in the log, which then grows, and the writers report the full disk themselves.
        """
        connection: sqlite3.Connection | None = None
        failing = False
        try:
            while not self._closed.wait(seconds):
                try:
                    connection = connection or sqlite3.connect(self.path, check_same_thread=False,
                                                               isolation_level=None)  # fmt: skip
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits for, nor blocks, a writer
                except sqlite3.Error as error:
                    if not failing:
                        log.warning("could not copy the log of %s into the file (%s); trying again every %.0f s",
                                    self.path, error, seconds)  # fmt: skip
                    failing = True
                    continue
                if failing:
                    log.info("the log of %s is copied into the file again", self.path)
                failing = False
        finally:
            if connection is not None:
                connection.close()

    @property
    def version(self) -> int:
        """The number of migrations applied to the file (``PRAGMA user_version``)."""
        with self._lock:
            return int(self._connection.execute("PRAGMA user_version").fetchone()[0])

    @property
    def latest_version(self) -> int:
        """The version this release's migrations bring a database to."""
        return len(self._migrations)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` under the writer lock; rolled back if the block raises.

        Yields the connection to run statements on. Transactions do not nest.
        """
        with self._lock, self._translated("saving"):
            self._connection.execute("BEGIN IMMEDIATE")  # waits up to the busy timeout for another writer
            try:
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException:
                if self._connection.in_transaction:  # SQLite may have rolled back already (a full disk does)
                    self._connection.execute("ROLLBACK")
                raise

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of its own inside one read transaction: it sees one consistent state (WAL lets it
        read while turns are written), and the shared connection every turn waits for is never held by it."""
        with self._translated("reading"), closing(sqlite3.connect(self.path, isolation_level=None,
                                                                  check_same_thread=False)) as connection:  # fmt: skip
            connection.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            connection.execute("PRAGMA query_only = 1")
            connection.execute("BEGIN")
            try:
                yield connection
            finally:
                connection.execute("COMMIT")

    def fetch_all(self, sql: str, parameters: Parameters = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        with self._lock, self._translated("reading"):
            return self._connection.execute(sql, parameters).fetchall()

    def fetch_one(self, sql: str, parameters: Parameters = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or ``None``."""
        with self._lock, self._translated("reading"):
            return self._connection.execute(sql, parameters).fetchone()

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """Raise a passing condition of the file as ``StoreUnavailable`` (logged); anything else as it is."""
        try:
            yield
        except sqlite3.OperationalError as error:
            unavailable = self._unavailable(error, doing)
            if unavailable is None:
                raise
            raise unavailable from error

    def _unavailable(self, error: sqlite3.OperationalError, doing: str) -> StoreUnavailable | None:
        """The learner-facing error for a passing condition of the file, logged for the host; None for a bug."""
        primary = (getattr(error, "sqlite_errorcode", None) or 0) & 0xFF
        if primary in _BUSY_CODES:
            log.warning(
                "%s progress: %s stayed locked by another writer for over %.1f s (%s); the learner was asked to try "
                "again. If this repeats, make sure one tutorbot process at a time uses this data dir, or raise "
                "TUTORBOT_STORAGE__BUSY_TIMEOUT_SECONDS",
                doing, self.path, self.busy_timeout_ms / 1000, error,
            )  # fmt: skip
            return StoreBusy()
        if primary in _FULL_CODES:
            log.error(
                "%s progress: the disk holding %s is full (%s). Free space there (or move TUTORBOT_DATA_DIR to a "
                "larger disk); until then learners' steps are not saved and they are asked to try again later. "
                "Everything saved before is kept.",
                doing, self.path, error,
            )  # fmt: skip
            return StoreFull()
        if primary in _IO_CODES:
            log.error("%s progress: %s could not be read or written (%s); check the disk and the file's permissions",
                      doing, self.path, error)  # fmt: skip
            return StoreUnavailable()
        return None

    def close(self) -> None:
        """Stop the checkpointer and close the connection (safe to call twice)."""
        self._closed.set()
        if self._checkpointer.is_alive() and self._checkpointer is not threading.current_thread():
            self._checkpointer.join(timeout=5)
        with self._lock:
            self._connection.close()

    def _refuse_if_too_new(self, found: int) -> None:
        if found > self.latest_version:
            raise DatabaseTooNew(self.path, found, self.latest_version)

    def _migrate(self) -> None:
        for target, script in enumerate(self._migrations, start=1):
            if self.version >= target:
                continue
            with self.transaction() as connection:
                current = int(connection.execute("PRAGMA user_version").fetchone()[0])
                self._refuse_if_too_new(current)  # another process may have upgraded the file meanwhile
                if current >= target:
                    continue
                for statement in split_statements(render(script, "sqlite")):
                    connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {target}")
