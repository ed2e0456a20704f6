"""The tracks the engine serves right now and whose they are: one immutable snapshot, swapped whole.

The host's tracks (the knowledge folder, and any the host published with ``tutorbot publish``) are offered
everywhere a community's moderators haven't turned them off. A track a community's moderators uploaded belongs
to that community and is offered only there. A draft being previewed is open only to that community's
moderators, and never listed. Publishing builds a new ``Shelf`` and swaps it in with one assignment, so a turn
sees either the old tracks or the new ones, never half of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bot.core.commands import short_hash
from bot.core.lessons import Lesson, Track
from bot.core.terms import KeyTerms


@dataclass(frozen=True)
class Shelf:
    """Tracks by id, their owners, the drafts being previewed, and the lookups built from them once."""

    tracks: Mapping[str, Track]
    owners: Mapping[str, str] = field(default_factory=dict)  # track id -> owning community (absent: the host's)
    drafts: frozenset[str] = frozenset()  # ids of the tracks that are drafts in preview
    track_ids: Mapping[str, Track] = field(default_factory=dict)  # short hash -> track (button actions)
    lesson_ids: Mapping[tuple[str, str], tuple[Track, Lesson]] = field(default_factory=dict)
    key_terms: KeyTerms = field(default_factory=lambda: KeyTerms(()))

    @classmethod
    def of(cls, tracks: Iterable[Track], owners: Mapping[str, str] | None = None,
           drafts: Iterable[str] = ()) -> Shelf:  # fmt: skip
        """A shelf of ``tracks`` (``owners`` maps an uploaded track's id to its community)."""
        by_id = {track.id: track for track in tracks}
        previews = frozenset(d for d in drafts if d in by_id)
        return cls(
            tracks=by_id,
            owners={tid: owner for tid, owner in (owners or {}).items() if tid in by_id},
            drafts=previews,
            track_ids={short_hash(t.id): t for t in by_id.values()},
            lesson_ids={
                (short_hash(t.id), short_hash(lesson.id)): (t, lesson) for t in by_id.values() for lesson in t.lessons
            },  # fmt: skip
            key_terms=KeyTerms(t for t in by_id.values() if t.id not in previews),
        )

    def offered(self, community: str | None, disabled: set[str]) -> list[Track]:
        """The tracks listed in ``community`` (None: a direct message), minus those its moderators turned off."""
        return [t for t in self.tracks.values()
                if t.id not in self.drafts and self.owners.get(t.id, community) == community
                and t.id not in disabled]  # fmt: skip

    def may_preview(self, track_id: str, community: str | None, moderator: bool) -> bool:
        """Whether a draft in preview may be opened here: by its own community's moderators only."""
        return (
            track_id in self.drafts and moderator and community is not None and self.owners.get(track_id) == community
        )

    def with_tracks(self, tracks: Iterable[Track], owners: Mapping[str, str], drafts: Iterable[str]) -> Shelf:
        """A new shelf: these tracks (and owners, and drafts) replace those of the same id; the rest stay."""
        tracks = list(tracks)
        merged = {**self.tracks, **{t.id: t for t in tracks}}
        return Shelf.of(
            merged.values(), {**self.owners, **owners}, (self.drafts - {t.id for t in tracks}) | set(drafts)
        )

    def without(self, track_ids: Iterable[str]) -> Shelf:
        """A new shelf without these tracks."""
        gone = set(track_ids)
        kept = [t for t in self.tracks.values() if t.id not in gone]
        return Shelf.of(kept, self.owners, self.drafts - gone)
