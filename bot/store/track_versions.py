"""Which versions of the uploaded tracks were published, by whom and when, in the bot's database.

The newest row of a track is the version served: inserting it is what publishes a version (its files and its
search index are in place before), so every process reading this table agrees on what learners get.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.ports import TrackVersion
from bot.store.sql import SqlDatabase


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

    def add(self, live: LiveVersion, title: str, by: str, at: float, restored_from: int | None = None) -> None:
        """Record ``live`` as published (the newest version of its track from now on)."""
        with self._db.transaction() as connection:
            connection.execute(
                "INSERT INTO track_versions (track, version, community, name, title, published_by, published_at,"
                " restored_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (live.track, live.version, live.community, live.name, title, by, at, restored_from),
            )

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
