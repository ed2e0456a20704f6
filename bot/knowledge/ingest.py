"""Ingest: bring the index and the published copies in line with the knowledge folder.

Every track is checked first; a track with a problem is skipped and keeps its published version (learners go
on being served it), a valid one is indexed (only changed text is embedded) and published, and a track whose
folder is gone leaves the index and the menus. What happens is told to ``on_event`` as it happens, so a
command line can print it and a test can collect it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bot.config import Settings
from bot.core.lessons import VERSION_MARK, Track
from bot.knowledge.published import PublishedTracks
from bot.knowledge.reader import Problem, read_knowledge

if TYPE_CHECKING:  # chromadb is slow to import: only code that indexes pays for it
    from bot.knowledge.index import IngestReport, LessonIndex


class UnknownTrack(LookupError):
    """The track asked for is not in the knowledge folder; the message says how to see what is."""


@dataclass(frozen=True)
class TrackSkipped:
    """A track with problems: not indexed again; learners keep the version indexed before."""

    folder: Path
    problems: list[Problem]


@dataclass(frozen=True)
class TrackIndexed:
    """A valid track, indexed and published."""

    track: Track
    report: IngestReport


@dataclass(frozen=True)
class TrackRemoved:
    """A track whose folder is gone, removed from the index and from learners' menus."""

    track_id: str
    chunks: int


IngestEvent = TrackSkipped | TrackIndexed | TrackRemoved


@dataclass(frozen=True)
class EmbedCounters:
    """Where the index reports its embedding progress: the number of chunks to embed, then each batch done."""

    on_total: Callable[[int], None]
    on_embedded: Callable[[int], None]


class EmbedProgress(Protocol):
    """Opens a progress display for one track's embedding and gives the counters that feed it."""

    def __call__(self, track: Track) -> contextlib.AbstractContextManager[EmbedCounters]: ...


@contextlib.contextmanager
def no_progress(track: Track) -> Iterator[EmbedCounters]:
    """An ``EmbedProgress`` that shows nothing."""
    yield EmbedCounters(lambda n: None, lambda n: None)


def ingest_knowledge(
    settings: Settings,
    index: LessonIndex | None = None,
    track_id: str | None = None,
    on_event: Callable[[IngestEvent], None] = lambda event: None,
    progress: EmbedProgress = no_progress,
) -> bool:
    """Index every valid track (or only ``track_id``); leave broken tracks' published chunks alone.

    True when every track went in. Pass ``index`` to reuse an open index (one Chroma client per process);
    otherwise it is opened and repaired (``bot.knowledge.recovery``). Raises ``UnknownTrack`` when ``track_id``
    names no track folder, and ``PublishFailed`` when a track's published copy cannot be written.
    """
    results = read_knowledge(settings.knowledge_dir)
    if track_id:
        results = [r for r in results if (r.track and r.track.id == track_id) or r.folder.name == track_id]
        if not results:
            raise UnknownTrack(
                f"no track '{track_id}' in {settings.knowledge_dir}; 'tutorbot validate' lists what is there"
            )
    if index is None:
        from bot.knowledge.recovery import open_index

        index = open_index(settings)
    published = PublishedTracks(settings.published_dir)
    all_ok = True
    for result in results:
        if result.track is None or not result.ok:
            all_ok = False
            on_event(TrackSkipped(result.folder, result.problems))
            continue
        published.begin(result.track.id)  # until save(): a killed ingest is undone at the next start
        with progress(result.track) as counters:
            report = index.ingest(result.track, on_embedded=counters.on_embedded, on_total=counters.on_total)
        published.save(result.track, result.folder)
        on_event(TrackIndexed(result.track, report))
    if not track_id:
        present = {r.track.id for r in results if r.track} | {r.folder.name for r in results if r.track is None}
        host_keys = {key for key in index.indexed_tracks() if VERSION_MARK not in key}  # uploads: the library's
        for gone in sorted(host_keys - present):
            removed = index.remove_track(gone)
            published.remove(gone)
            on_event(TrackRemoved(gone, removed))
    published.save_nearest(index.nearest_lessons())  # the related lessons of lessons whose authors listed none
    return all_ok
