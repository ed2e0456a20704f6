"""The last good version of each track, kept in the data dir when it is indexed.

Learners are served what was published, not whatever is on disk right now: when a lesson file is broken
(a bad edit, a half-copied upload), the tutor keeps serving the track as it was last indexed, the same
version its search index holds, until the file is fixed and ingested again.

Copies are written whole or not at all (a temporary file, synced, then renamed over the old copy), so a
process killed mid-write, or a full disk, leaves the previous copy. An ingest marks its track before it
changes the index (``begin``) and the mark goes when the copy is saved: a mark found at start means an
ingest was cut short, and ``bot.knowledge.recovery`` puts the index back to the published copy. The mark names
its process, so a bot starting on the same data dir and Chroma server while another process ingests leaves
that ingest alone.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bot.core.lessons import Lesson, Question, Section, Track, Unit
from bot.knowledge.reader import TrackResult
from bot.knowledge.units import section_units

log = logging.getLogger(__name__)
FORMAT = 1
NEAREST_FILE = "_nearest-lessons.json"  # not a track copy: track ids never start with "_"
INGESTING = ".ingesting"  # suffix of the mark an ingest leaves until its track's copy is saved
STALE_TEMPORARY_SECONDS = 3600  # a temporary file this old was left by a killed process


class PublishFailed(OSError):
    """A published copy could not be written (the data dir's disk is full, or not writable); the old one stays."""


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` whole or not at all, and make the change survive a crash of the machine.

    The text goes to a temporary file in the same folder, which is synced and then renamed over ``path``; the
    folder is synced so the rename itself is on disk. On failure the temporary file is removed and ``path`` is
    as it was; a full disk or a folder that cannot be written raises ``PublishFailed`` saying what to do.
    """
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(name, path)
    except BaseException as error:
        Path(name).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            reason = "its disk is full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "it cannot be written"
            message = (f"could not write {path}: {reason} ({error.strerror}). Free space in (or fix) {path.parent} "
                       "and run 'tutorbot ingest' again; learners keep the version published before")  # fmt: skip
            log.error("%s", message)
            raise PublishFailed(error.errno, message) from error
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows cannot open a folder; its renames are durable enough
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover - some file systems refuse fsync on a folder
        pass
    finally:
        os.close(descriptor)


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

    def begin(self, track_id: str) -> None:
        """Mark that an ingest of ``track_id`` is about to change the index (``save`` removes the mark)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        mark = f"{time.time():.0f} {socket.gethostname()} {os.getpid()}\n"
        write_atomically(self.folder / f"{track_id}{INGESTING}", mark)

    def interrupted(self) -> set[str]:
        """Ids of the tracks whose ingest began and never saved its copy (the process was killed, or failed).

        A mark left by another process that is still running is an ingest in progress, not an interrupted one.
        """
        if not self.folder.is_dir():
            return set()
        marks = self.folder.glob(f"*{INGESTING}")
        return {path.name.removesuffix(INGESTING) for path in marks if not _ingesting_elsewhere(path)}

    def finish(self, track_id: str) -> None:
        """Remove the mark ``begin`` left (the index matches the published copy again)."""
        (self.folder / f"{track_id}{INGESTING}").unlink(missing_ok=True)
        _sync_folder(self.folder)

    def tidy(self) -> None:
        """Remove temporary files a killed process left (old enough that no live writer owns them)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.glob(".*.tmp"):
            try:
                if time.time() - path.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                    path.unlink()
            except OSError:  # gone already, or not ours to remove: harmless either way
                continue

    def save(self, track: Track, folder: Path) -> None:
        """Keep ``track`` (read from ``folder``) as its published version (whole or not at all); end its ingest."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self._file(track.id), json.dumps(track_to_dict(track, folder.name), ensure_ascii=False))
        self.finish(track.id)

    def remove(self, track_id: str) -> None:
        """Forget a track that is no longer published."""
        self._file(track_id).unlink(missing_ok=True)
        self.finish(track_id)

    def save_nearest(self, nearest: dict[str, list[str]]) -> None:
        """Keep the lessons most alike each lesson (``track/lesson`` -> the same), computed at ingest."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self.folder / NEAREST_FILE, json.dumps(nearest, ensure_ascii=False))

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


def _ingesting_elsewhere(mark: Path) -> bool:
    """Whether the process that wrote ``mark`` is another one on this machine and still running."""
    try:
        _when, host, pid_text = mark.read_text(encoding="utf-8").split()
        pid = int(pid_text)
    except (OSError, ValueError):  # gone, or a mark of an older version (a time only): take it as cut short
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False  # another machine's process can't be asked; this process's own mark is a failed ingest
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    try:  # a killed child its parent has not waited for yet is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def with_nearest(tracks: dict[str, Track], nearest: dict[str, list[str]]) -> dict[str, Track]:
    """``tracks`` in which each lesson without a ``related:`` list lists its nearest lessons that are served."""
    served = {f"{t.id}/{lesson.id}" for t in tracks.values() for lesson in t.lessons}

    def filled(track: Track, lesson: Lesson) -> Lesson:
        if lesson.related:
            return lesson
        found = tuple(ref for ref in nearest.get(f"{track.id}/{lesson.id}", ()) if ref in served)
        return replace(lesson, related=found) if found else lesson

    return {tid: replace(t, lessons=tuple(filled(t, lesson) for lesson in t.lessons)) for tid, t in tracks.items()}
