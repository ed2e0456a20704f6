"""Copy every row of one bot database into another, empty one: how a host moves from the SQLite file to PostgreSQL.

Both are opened by this release, so both have the same tables (the same migrations ran on both). The source is read
in one snapshot, the target written in one transaction: a copy is whole or not at all, and learners' turns may go on
in the source meanwhile (what they save after the snapshot is not copied: stop the bot for the copy).
"""

from __future__ import annotations

from bot.store.sql import SqlDatabase


class TargetNotEmpty(RuntimeError):
    """The target database already holds rows; copying into it would mix two histories."""


# The tables the migrations made (the schema's own version table is each database's, never copied), and, on
# PostgreSQL, those whose row id the database assigns from a sequence.
_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                  " AND tablename <> 'tutorbot_schema'",
}  # fmt: skip
_IDENTITIES = ("SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema()"
               " AND column_name = 'id' AND is_identity = 'YES'")  # fmt: skip


def tables(database: SqlDatabase) -> list[str]:
    """The bot's tables in ``database``."""
    return sorted(name for (name,) in database.fetch_all(_TABLES[database.dialect]))


def copy_database(source: SqlDatabase, target: SqlDatabase) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; how many rows each table had."""
    names = tables(source)
    if names != tables(target):  # pragma: no cover - both were migrated by this release
        raise RuntimeError(f"the two databases have different tables: {names} and {tables(target)}")
    busy = [table for table in names if target.fetch_one(f"SELECT 1 FROM {table} LIMIT 1") is not None]
    if busy:
        raise TargetNotEmpty(f"the target database already holds rows (in {', '.join(busy)}); copy into an empty "
                             "database (create a new one), so that two histories are never mixed")  # fmt: skip
    counts: dict[str, int] = {}
    with source.snapshot() as reading, target.transaction() as writing:
        for table in names:
            cursor = reading.execute(f"SELECT * FROM {table}")
            columns = [column[0] for column in cursor.description]
            insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            counts[table] = 0
            for row in cursor:
                writing.execute(insert, tuple(row))
                counts[table] += 1
        if target.dialect == "postgresql":  # rows came with their ids: the next id is after the highest copied
            for (table,) in writing.execute(_IDENTITIES).fetchall():
                writing.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                f" COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)")  # fmt: skip
    return counts
