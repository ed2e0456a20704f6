"""Which versions of the uploaded tracks were published, by whom and when, and their files, in the bot's database.

The newest row of a track is the version served: inserting it, in one transaction with the version's files, is
what publishes a version (its search index is in place before), so every process reading this table agrees on
what learners get, and any process can read the files it serves. A track's draft keeps its files here too
(version 0), so a draft uploaded through one bot process can be previewed or published through another.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.ports import TrackVersion
from bot.store.sql import Connection, SqlDatabase


@dataclass(frozen=True)
class LiveVersion:
    """The version of an uploaded track that is served now."""

    track: str  # the served id
    version: int
    community: str | None
    name: str


class SqlTrackVersions:
    """The ``track_versions`` table."""

    def __init__(self, database: SqlDatabase) -> None:
        self._db = database

    def add(self, live: LiveVersion, title: str, by: str, at: float, files: dict[str, bytes],
            restored_from: int | None = None) -> bool:  # fmt: skip
        """Record ``live``, with its files, as published (the newest version of its track from now on); False
        when another process published that version number first (then nothing is stored)."""
        with self._db.transaction() as connection:
            added = connection.execute(
                "INSERT INTO track_versions (track, version, community, name, title, published_by, published_at,"
                " restored_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (track, version) DO NOTHING",
                (live.track, live.version, live.community, live.name, title, by, at, restored_from),
            ).rowcount
            if added:
                _insert_files(connection, live.track, live.version, files)
            return bool(added)

    def files(self, track: str, version: int) -> dict[str, bytes]:
        """The files of a published version (version 0: the track's draft), by path inside the track folder."""
        rows = self._db.fetch_all("SELECT path, content FROM library_files WHERE track = ? AND version = ?",
                                  (track, version))  # fmt: skip
        return {path: bytes(content) for path, content in rows}

    def without_files(self) -> list[tuple[str, int]]:
        """Published versions whose files the database lacks (published before it kept them), as (track, version)."""
        rows = self._db.fetch_all(
            "SELECT v.track, v.version FROM track_versions AS v WHERE NOT EXISTS"
            " (SELECT 1 FROM library_files AS f WHERE f.track = v.track AND f.version = v.version)"
            " ORDER BY v.track, v.version"
        )
        return [(track, version) for track, version in rows]

    def add_files(self, track: str, version: int, files: dict[str, bytes]) -> None:
        """Keep the files of a version published before the database kept them."""
        with self._db.transaction() as connection:
            _insert_files(connection, track, version, files)

    def save_draft(self, track: str, files: dict[str, bytes]) -> None:
        """Make ``files`` the track's draft (none: the track has no draft)."""
        with self._db.transaction() as connection:
            connection.execute("DELETE FROM library_files WHERE track = ? AND version = 0", (track,))
            _insert_files(connection, track, 0, files)

    def next_version(self, track: str) -> int:
        """The number the track's next published version gets."""
        row = self._db.fetch_one("SELECT max(version) FROM track_versions WHERE track = ?", (track,))
        return (row[0] or 0) + 1 if row else 1

    def live(self) -> list[LiveVersion]:
        """The newest version of every uploaded track."""
        rows = self._db.fetch_all(
            "SELECT track, version, community, name FROM track_versions AS v"
            " WHERE version = (SELECT max(version) FROM track_versions WHERE track = v.track) ORDER BY track"
        )
        return [LiveVersion(track, version, community, name) for track, version, community, name in rows]

    def stamp(self) -> int:
        """A number that changes whenever a version is published (cheap to ask often)."""
        row = self._db.fetch_one("SELECT count(*) FROM track_versions")
        return int(row[0]) if row else 0

    def history(self, track: str) -> list[TrackVersion]:
        """Every published version of ``track``, newest first."""
        rows = self._db.fetch_all(
            "SELECT version, title, published_by, published_at, restored_from FROM track_versions"
            " WHERE track = ? ORDER BY version DESC",
            (track,),
        )
        return [TrackVersion(*row) for row in rows]


def _insert_files(connection: Connection, track: str, version: int, files: dict[str, bytes]) -> None:
    for path, content in sorted(files.items()):
        connection.execute("INSERT INTO library_files (track, version, path, content) VALUES (?, ?, ?, ?)",
                           (track, version, path, content))  # fmt: skip
