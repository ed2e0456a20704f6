"""The last good version of each track, kept in the data dir when it is indexed.

Learners are served what was published, not whatever is on disk right now: when a lesson file is broken
(a bad edit, a half-copied upload), the tutor keeps serving the track as it was last indexed, the same
version its search index holds, until the file is fixed and ingested again.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bot.core.lessons import Lesson, Question, Section, Track, Unit
from bot.knowledge.reader import TrackResult
from bot.knowledge.units import section_units

log = logging.getLogger(__name__)
FORMAT = 1
NEAREST_FILE = "_nearest-lessons.json"  # not a track copy: track ids never start with "_"


def track_to_dict(track: Track, folder: str) -> dict[str, Any]:
    """A track as plain JSON data (``folder`` is the name of the folder it was read from)."""
    data = asdict(track)
    data["path"] = str(track.path) if track.path else None
    for lesson in data["lessons"]:
        lesson["path"] = str(lesson["path"]) if lesson["path"] else None
    return {"format": FORMAT, "folder": folder, "track": data}


def _section(data: dict[str, Any]) -> Section:
    """A section as stored; copies written before units (or their blocks) existed get their units split anew."""
    units = data.get("units")
    if units is None or any("block" not in unit for unit in units):
        return Section(data["id"], data["heading"], data["text"], data["line"], section_units(data["id"], data["text"]))
    stored = tuple(Unit(**{**unit, "items": tuple(unit["items"])}) for unit in units)
    return Section(data["id"], data["heading"], data["text"], data["line"], stored)


def track_from_dict(data: dict[str, Any]) -> Track:
    """The track ``track_to_dict`` wrote."""
    raw = data["track"]
    lessons = tuple(
        Lesson(
            id=lesson["id"],
            title=lesson["title"],
            minutes=lesson["minutes"],
            premise=lesson["premise"],
            sections=tuple(_section(section) for section in lesson["sections"]),
            key_terms=tuple((term, meaning) for term, meaning in lesson["key_terms"]),
            practice=tuple(lesson["practice"]),
            quiz=tuple(Question(**{**q, "options": tuple(q["options"])}) for q in lesson["quiz"]),
            path=Path(lesson["path"]) if lesson["path"] else None,
            related=tuple(lesson.get("related", ())),
        )
        for lesson in raw["lessons"]
    )
    return Track(raw["id"], raw["title"], raw["description"], lessons, Path(raw["path"]) if raw["path"] else None)


class PublishedTracks:
    """JSON copies of the tracks as last indexed, one file per track."""

    def __init__(self, folder: Path):
        self.folder = folder

    def _file(self, track_id: str) -> Path:
        return self.folder / f"{track_id}.json"

    def save(self, track: Track, folder: Path) -> None:
        """Keep ``track`` (read from ``folder``) as its published version; written atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self._file(track.id)
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(track_to_dict(track, folder.name), ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, target)

    def remove(self, track_id: str) -> None:
        """Forget a track that is no longer published."""
        self._file(track_id).unlink(missing_ok=True)

    def save_nearest(self, nearest: dict[str, list[str]]) -> None:
        """Keep the lessons most alike each lesson (``track/lesson`` -> the same), computed at ingest."""
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / NEAREST_FILE
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(nearest, ensure_ascii=False), encoding="utf-8")
        os.replace(temporary, target)

    def nearest(self) -> dict[str, list[str]]:
        """What ``save_nearest`` kept (empty before the first ingest, or when the file is unreadable)."""
        try:
            data = json.loads((self.folder / NEAREST_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): [str(ref) for ref in v] for k, v in data.items() if isinstance(v, list)}

    def load(self) -> dict[str, tuple[str, Track]]:
        """Every published track by id, with the folder name it came from."""
        found: dict[str, tuple[str, Track]] = {}
        for path in sorted(self.folder.glob("[!_]*.json")) if self.folder.is_dir() else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                track = track_from_dict(data)
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("ignoring the unreadable published copy %s: %s", path, error)
                continue
            found[track.id] = (data.get("folder", ""), track)
        return found

    def serve(self, results: list[TrackResult]) -> dict[str, Track]:
        """The tracks to serve: each valid track as read, and for a broken one its last published version.

        A lesson whose author listed no ``related:`` lessons gets the lessons most alike it (see ``save_nearest``).
        """
        return with_nearest(self._served(results), self.nearest())

    def _served(self, results: list[TrackResult]) -> dict[str, Track]:
        published = self.load()
        by_folder = {folder: track for folder, track in published.values()}
        served: dict[str, Track] = {}
        for result in results:
            if result.ok and result.track is not None:
                served[result.track.id] = result.track
                continue
            fallback = by_folder.get(result.folder.name)
            if result.track is not None and result.track.id in published:
                fallback = published[result.track.id][1]
            if fallback is not None:
                log.warning("%s has problems ('tutorbot validate' lists them); serving the version indexed before",
                            result.folder)  # fmt: skip
                served[fallback.id] = fallback
        return served


def with_nearest(tracks: dict[str, Track], nearest: dict[str, list[str]]) -> dict[str, Track]:
    """``tracks`` in which each lesson without a ``related:`` list lists its nearest lessons that are served."""
    served = {f"{t.id}/{lesson.id}" for t in tracks.values() for lesson in t.lessons}

    def filled(track: Track, lesson: Lesson) -> Lesson:
        if lesson.related:
            return lesson
        found = tuple(ref for ref in nearest.get(f"{track.id}/{lesson.id}", ()) if ref in served)
        return replace(lesson, related=found) if found else lesson

    return {tid: replace(t, lessons=tuple(filled(t, lesson) for lesson in t.lessons)) for tid, t in tracks.items()}
