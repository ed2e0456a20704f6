"""PostgreSQL as the bot's database, for several bot processes on one or more machines (``TUTORBOT_DATABASE_URL``).

It meets the same ``SqlDatabase`` as the SQLite file, so every store runs on it unchanged, and it applies the same
migrations (``bot.store.migrations``), numbered in a one-row table ``tutorbot_schema``. Each migration runs in one
transaction under an advisory lock, so processes starting together apply it once.

Connections come from a psycopg pool (``storage.pool_size`` per process) in autocommit mode: a read is one round
trip, a write one transaction. Every call blocks its thread; the engine calls the store from worker threads, so a
slow database holds up the learner it serves, never the event loop. A passing condition is raised as the core's
``StoreUnavailable`` (``StoreBusy`` for a lock or a pool that stayed taken past the busy timeout, ``StoreFull`` for
a full disk), logged with what to do; the URL is logged without its password.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.core.ports import StoreBusy, StoreFull, StoreUnavailable
from bot.store.database import BUSY_TIMEOUT_MS, DatabaseTooNew, split_statements
from bot.store.migrations import MIGRATIONS, Dialect, render
from bot.store.sql import Parameters, to_pyformat

log = logging.getLogger(__name__)

CONNECT_SECONDS = 10.0
_MIGRATION_LOCK = 7_401_515_001  # any fixed number: the advisory lock every process takes to migrate
_BUSY = (errors.LockNotAvailable, errors.QueryCanceled, errors.SerializationFailure, errors.DeadlockDetected)


def url_without_password(url: str) -> str:
    """``url`` fit for a log line: its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class _Connection:
    """A pooled connection that takes the stores' placeholders (``?``, ``:name``)."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: Parameters = (), /) -> psycopg.Cursor[Any]:
        return self._connection.execute(to_pyformat(sql), parameters or None)


class PostgresDatabase:
    """The bot's database on a PostgreSQL server: a connection pool, migrated on open."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str, migrations: Sequence[str] = MIGRATIONS, pool_size: int = 8,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:  # fmt: skip
        self.shown = url_without_password(url)
        self._migrations = list(migrations)
        self.busy_timeout_ms = busy_timeout_ms
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            # lock_timeout: a write waiting for another process's lock gives up like SQLite's busy timeout
            kwargs={"autocommit": True, "options": f"-c lock_timeout={int(busy_timeout_ms)}"},
            timeout=busy_timeout_ms / 1000,
            name="tutorbot",
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_SECONDS)
        except PoolTimeout as error:
            self._pool.close()
            log.error("could not connect to the database %s within %.0f s; check that PostgreSQL runs there and "
                      "that TUTORBOT_DATABASE_URL is right", self.shown, CONNECT_SECONDS)  # fmt: skip
            raise StoreUnavailable() from error
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    @property
    def latest_version(self) -> int:
        """The version this release's migrations bring a database to."""
        return len(self._migrations)

    @property
    def version(self) -> int:
        """The number of migrations applied (0 for an empty database)."""
        with self._translated("reading"), self._pool.connection() as connection:
            return self._stored_version(connection)

    @contextmanager
    def transaction(self) -> Iterator[_Connection]:
        """A write transaction on a pooled connection: committed at the end of the block, rolled back if it raises."""
        with self._translated("saving"), self._pool.connection() as connection, connection.transaction():
            yield _Connection(connection)

    @contextmanager
    def snapshot(self) -> Iterator[_Connection]:
        """A read-only ``REPEATABLE READ`` transaction: every query in it sees the same state of the database."""
        with self._translated("reading"), self._pool.connection() as connection:
            connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield _Connection(connection)
            finally:
                connection.execute("COMMIT")

    def fetch_all(self, sql: str, parameters: Parameters = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        with self._translated("reading"), self._pool.connection() as connection:
            return connection.execute(to_pyformat(sql), parameters or None).fetchall()

    def fetch_one(self, sql: str, parameters: Parameters = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        with self._translated("reading"), self._pool.connection() as connection:
            return connection.execute(to_pyformat(sql), parameters or None).fetchone()

    def close(self) -> None:
        """Close every pooled connection (safe to call twice)."""
        self._pool.close()

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """A passing condition of the server as the core's ``StoreUnavailable`` (logged); anything else as it is."""
        try:
            yield
        except PoolTimeout as error:
            log.warning("%s progress: every connection to %s stayed in use for over %.1f s; the learner was asked to "
                        "try again. If this repeats, raise TUTORBOT_STORAGE__POOL_SIZE (and the server's "
                        "max_connections)", doing, self.shown, self.busy_timeout_ms / 1000)  # fmt: skip
            raise StoreBusy() from error
        except _BUSY as error:
            log.warning("%s progress: %s: another process held the rows for over %.1f s (%s); the learner was asked "
                        "to try again", doing, self.shown, self.busy_timeout_ms / 1000, type(error).__name__)  # fmt: skip
            raise StoreBusy() from error
        except (errors.DiskFull, errors.OutOfMemory, errors.TooManyConnections) as error:
            log.error("%s progress: the server %s is out of a resource (%s); free it (disk space, memory, "
                      "max_connections). Learners are asked to try again later; nothing saved before is lost.",
                      doing, self.shown, error.sqlstate)  # fmt: skip
            raise StoreFull() if isinstance(error, errors.DiskFull) else StoreUnavailable() from error
        except psycopg.OperationalError as error:  # the server went away, refused us, or the network failed
            log.error("%s progress: the database %s could not be reached (%s); check that PostgreSQL runs and "
                      "accepts connections", doing, self.shown, type(error).__name__)  # fmt: skip
            # Connections are not checked on every checkout (that was a round trip per store call, 18% of a
            # turn's time): after a failure, the pool drops the idle connections the server closed (a restart).
            self._pool.check()
            raise StoreUnavailable() from error

    @staticmethod
    def _stored_version(connection: psycopg.Connection[Any]) -> int:
        exists = connection.execute("SELECT to_regclass('tutorbot_schema') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return 0
        row = connection.execute("SELECT version FROM tutorbot_schema").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        """Apply the pending migrations, each in its own transaction with the version bump."""
        with self._translated("migrating"), self._pool.connection() as connection:
            for target, script in enumerate(self._migrations, start=1):
                with connection.transaction():
                    connection.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    connection.execute("CREATE TABLE IF NOT EXISTS tutorbot_schema (version INTEGER NOT NULL)")
                    current = self._stored_version(connection)
                    if current > self.latest_version:
                        raise DatabaseTooNew(self.shown, current, self.latest_version)
                    if current >= target:
                        continue
                    for statement in split_statements(render(script, "postgresql")):
                        connection.execute(statement)
                    connection.execute("DELETE FROM tutorbot_schema")
                    connection.execute("INSERT INTO tutorbot_schema (version) VALUES (%s)", (target,))
                    log.info("database %s: applied migration %d", self.shown, target)
