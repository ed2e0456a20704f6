"""Opening the lesson index safely: a damaged Chroma store is rebuilt, a cut-short ingest is undone.

The published copies (``bot.knowledge.published``) record what learners are served; the index is derived from
them and can always be rebuilt. Before anything searches, ``open_index`` makes the index hold the published
tracks' chunks and nothing of a version that was never published:

- an embedded store that Chroma cannot open, or whose search cannot reach every chunk it lists (a deleted or
  broken segment folder), is moved aside to ``chroma.broken`` and a new one is filled from the published copies;
- a track whose ingest was cut short (its mark is still there) goes back to its published copy, or out of the
  index when it was never published; the next ``tutorbot ingest`` indexes the new version again;
- a published track with no chunks in the index (a store deleted or rebuilt) is embedded from its copy.

Each repair is logged at WARNING or ERROR, saying what was found and what was done.
"""

from __future__ import annotations

import logging
import shutil

from bot.config import Settings
from bot.knowledge.index import LessonIndex
from bot.knowledge.published import PublishedTracks

log = logging.getLogger(__name__)
BROKEN_SUFFIX = ".broken"


def open_index(settings: Settings) -> LessonIndex:
    """The lesson index the settings describe, repaired where needed, matching the published tracks."""
    index = _open_sound(settings)
    restore(index, PublishedTracks(settings.published_dir))
    return index


def _open_sound(settings: Settings) -> LessonIndex:
    """The index, or a new empty one in place of an embedded store that is unreadable or damaged."""
    if settings.retrieval.chroma_host:  # a server keeps its own files; only what the collection holds is ours
        return LessonIndex.from_settings(settings)
    index: LessonIndex | None = None
    try:
        index = LessonIndex.from_settings(settings)
        problem = index.damage()
    except Exception as error:  # noqa: BLE001 - Chroma raises many kinds of error for a store it cannot read
        if "locked" in str(error) or "(code: 5)" in str(error):
            raise  # another process is using the store: it is busy, not damaged
        problem = f"{type(error).__name__}: {error}"
    if index is not None and problem is None:
        return index
    if index is not None:
        index.close()
    forget_store(settings)
    aside = settings.chroma_dir.with_name(settings.chroma_dir.name + BROKEN_SUFFIX)
    shutil.rmtree(aside, ignore_errors=True)
    if settings.chroma_dir.exists():
        settings.chroma_dir.rename(aside)
    log.error(
        "the search index in %s is damaged (%s); it was moved to %s (delete that folder when you like) and is "
        "being rebuilt from the published tracks",
        settings.chroma_dir, problem, aside,
    )  # fmt: skip
    return LessonIndex.from_settings(settings)


def forget_store(settings: Settings) -> None:
    """Drop Chroma's cached handle on the embedded store: one that failed to open stays cached, and broken."""
    from chromadb.api.shared_system_client import SharedSystemClient

    # Chroma keeps one "system" per folder for the process; only clear_system_cache() (every folder's) is public.
    SharedSystemClient._identifier_to_system.pop(str(settings.chroma_dir), None)


def restore(index: LessonIndex, published: PublishedTracks) -> None:
    """Bring the index back to the published tracks where a cut-short ingest or a lost store left it otherwise."""
    published.tidy()
    copies = {track_id: track for track_id, (_folder, track) in published.load().items()}
    interrupted = published.interrupted()
    indexed = index.indexed_tracks()
    for track_id in sorted(interrupted - copies.keys()):
        removed = index.remove_track(track_id)
        log.warning("the first ingest of track %s was cut short; its %d chunks are out of the search index until "
                    "'tutorbot ingest' indexes it again", track_id, removed)  # fmt: skip
    for track_id, track in sorted(copies.items()):
        if track_id in interrupted:
            report = index.ingest(track)
            log.warning(
                "an ingest of track %s was cut short; its search index is back to the published version "
                "(%d chunks embedded again, %d of the unpublished version removed); 'tutorbot ingest' indexes the "
                "new version", track_id, report.embedded, report.removed,
            )  # fmt: skip
        elif track_id not in indexed:
            report = index.ingest(track)
            log.warning("the search index had no chunks of track %s; rebuilt them from its published copy "
                        "(%d chunks embedded)", track_id, report.embedded)  # fmt: skip
    for track_id in interrupted:
        published.finish(track_id)
