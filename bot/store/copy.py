"""Copy every row of one bot database into another, empty one: how a host moves from the SQLite file to PostgreSQL.

Both are opened by this release, so both have the same tables (the same migrations ran on both). The source is read
in one snapshot, the target written in one transaction: a copy is whole or not at all, and learners' turns may go on
in the source meanwhile (what they save after the snapshot is not copied: stop the bot for the copy).
"""

from __future__ import annotations

from bot.store.sql import SqlDatabase


class TargetNotEmpty(RuntimeError):
    """The target database already holds rows; copying into it would mix two histories."""


# Every table of the migrations, parents before children (none has a foreign key, so the order is only tidy).
TABLES = (
    "learners", "quiz_attempts", "lesson_results", "review_cards", "activity", "lesson_starts",
    "community_tracks", "community_track_changes", "learner_settings", "community_members", "community_settings",
    "questions", "track_versions", "library_files", "deliveries", "telegram_updates", "telegram_leases",
    "telegram_polls",
)  # fmt: skip
_IDENTITY_TABLES = ("questions", "quiz_attempts", "lesson_results", "community_track_changes")  # {ID} columns


def copy_database(source: SqlDatabase, target: SqlDatabase) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; how many rows each table had."""
    busy = [table for table in TABLES if target.fetch_one(f"SELECT 1 FROM {table} LIMIT 1") is not None]
    if busy:
        raise TargetNotEmpty(f"the target database already holds rows (in {', '.join(busy)}); copy into an empty "
                             "database (create a new one), so that two histories are never mixed")  # fmt: skip
    counts: dict[str, int] = {}
    with source.snapshot() as reading, target.transaction() as writing:
        for table in TABLES:
            cursor = reading.execute(f"SELECT * FROM {table}")
            columns = [column[0] for column in cursor.description]
            insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
            counts[table] = 0
            for row in cursor:
                writing.execute(insert, tuple(row))
                counts[table] += 1
        if target.dialect == "postgresql":  # rows came with their ids: the next id is after the highest copied
            for table in _IDENTITY_TABLES:
                writing.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                                f" COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)")  # fmt: skip
    return counts
