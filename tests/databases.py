"""The store tests run on both databases: ``sql_database`` is a fresh SQLite file, then a fresh PostgreSQL database
(on the throw-away server of ``tests.postgres_server``; those cases skip, saying why, where it cannot run)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store.database import Database
from bot.store.postgres import PostgresDatabase
from bot.store.sql import SqlDatabase

DIALECTS = ["sqlite", "postgresql"]


def open_database(request: pytest.FixtureRequest, folder: Path, dialect: str) -> SqlDatabase:
    """A new connection to the test's database of ``dialect`` (each call: another process's view of the same one)."""
    if dialect == "sqlite":
        return Database(folder / "tutorbot.sqlite3")
    return PostgresDatabase(request.getfixturevalue("postgres_url"), pool_size=4)


@pytest.fixture(params=DIALECTS)
def sql_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDatabase]:
    """A fresh, migrated database of each kind."""
    database = open_database(request, tmp_path, request.param)
    yield database
    database.close()
