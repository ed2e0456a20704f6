"""Tracks uploaded by moderators (or published by the host): drafts, versions, publishing and rollback.

Files live in the database (``bot.store.track_versions``) and, as this process's copy, under the data dir:
``library/drafts/TRACK/`` is the one draft of a track (what uploads change), and ``library/tracks/TRACK/vN/``
keeps every published version whole. A process copies a version it lacks from the database before reading it,
and a draft before changing it, so bot processes with data dirs of their own (on several machines) share them. ``TRACK`` is the served id: the uploaded id
qualified by its community (``bot.core.lessons.community_track_id``), so two communities never share a track.

Publishing reads the valid draft, indexes it under its own version key (``TRACK#vN``) while learners go on
being served the version before, copies its files into ``vN``, and only then records the version in the
database; that row is the switch. The previous version's chunks leave the index afterwards. A crash before the
row leaves the old version served and a stray key, which the track's next publish reuses and brings in line
(a start leaves it: on a shared Chroma server it may be another process's publish in progress).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import threading
import time
import tomllib
import zipfile
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from bot.core.lessons import VERSION_MARK, Track, community_track_id, draft_track_id, slugify, version_key
from bot.core.ports import Draft, LibraryError, TrackVersion
from bot.core.uploads import MAX_FILE_BYTES, TRACK_FILE
from bot.knowledge.reader import read_track, shown_name
from bot.knowledge.upload import UploadRefused, copy_folder_into, unpack_into
from bot.store.track_versions import LiveVersion, SqlTrackVersions

if TYPE_CHECKING:  # chromadb is slow to import: only a library that indexes pays for it
    from bot.knowledge.index import LessonIndex

log = logging.getLogger(__name__)


class LibraryFiles:
    """``TrackLibrary`` over folders in ``root``, versions in the database, and the lesson index (if any)."""

    def __init__(self, root: Path, versions: SqlTrackVersions, index: LessonIndex | None = None,
                 host_names: set[str] | None = None) -> None:  # fmt: skip
        """``host_names`` are the knowledge folder's track ids, which a host-wide upload may not take."""
        self.root = root
        self.versions = versions
        self.index = index
        self.host_names = host_names or set()
        self._lock = threading.RLock()  # one upload, publish or rollback at a time here (publish reads the draft)

    # ------------------------------------------------------------ folders

    def _draft_dir(self, track_id: str) -> Path:
        return self.root / "drafts" / track_id

    def _version_dir(self, track_id: str, version: int) -> Path:
        return self.root / "tracks" / track_id / f"v{version}"

    def _version_folder(self, track_id: str, version: int) -> Path:
        """The folder of a published version, copied from the database first if this process lacks it."""
        folder = self._version_dir(track_id, version)
        if not folder.is_dir():
            files = self.versions.files(track_id, version)
            if files:
                write_folder(folder, files)
        return folder

    def _pull_draft(self, track_id: str) -> Path:
        """The draft's folder made the same as the database's draft (removed when there is none); under the lock."""
        folder = self._draft_dir(track_id)
        files = self.versions.files(track_id, 0)
        if not files:
            shutil.rmtree(folder, ignore_errors=True)
        elif files != folder_files(folder):
            write_folder(folder, files)
        return folder

    def _files_into_database(self) -> None:
        """Copy into the database what a data dir of a release before it kept track files there holds: the files
        of every version it lacks, and (once: later, the database is what a draft is) the drafts."""
        for track_id, version in self.versions.without_files():
            files = folder_files(self._version_dir(track_id, version))
            if files:
                self.versions.add_files(track_id, version, files)
                log.info("kept the files of %s v%d in the database", track_id, version)
        mark = self.root / ADOPTED_MARK
        if mark.exists():
            return
        drafts = self.root / "drafts"
        for folder in sorted(drafts.iterdir()) if drafts.is_dir() else []:
            if folder.is_dir() and not folder.name.startswith(".") and not self.versions.files(folder.name, 0):
                self.versions.save_draft(folder.name, folder_files(folder))
        self.root.mkdir(parents=True, exist_ok=True)
        mark.touch()

    def _served_id(self, community: str | None, name: str) -> str:
        name = slugify(name)
        if not name:
            raise LibraryError("Say which track: its id, as in track.toml (letters, digits and hyphens).")
        if community is None and name in self.host_names:
            raise LibraryError(f"'{name}' is a track of the knowledge folder; publish the upload under another id, "
                               "or edit the folder and run 'tutorbot ingest'.")  # fmt: skip
        return community_track_id(name, community)

    def _live(self, track_id: str) -> LiveVersion | None:
        return next((live for live in self.versions.live() if live.track == track_id), None)

    # ------------------------------------------------------------ upload and draft

    def upload(self, community: str | None, name: str | None, filename: str, data: bytes) -> Draft:
        """Put an uploaded ``.md`` or ``.zip`` into the track's draft, and check the draft."""
        is_zip = PurePosixPath(filename).suffix.casefold() == ".zip"
        name = name or (zip_track_name(data) if is_zip else None)
        if not name:
            raise LibraryError("Which track is this for? Send it again with the caption '/tracks upload TRACK' "
                               "(a zip may instead name its track in track.toml).")  # fmt: skip
        track_id = self._served_id(community, name)
        with self._lock:
            draft = self._pull_draft(track_id)
            new = not draft.is_dir()
            if new:
                draft.mkdir(parents=True)
                live = self._live(track_id)
                if live is not None and not is_zip:  # one lesson changes the live version's files
                    shutil.copytree(self._version_folder(track_id, live.version), draft, dirs_exist_ok=True)
            try:
                written = unpack_into(draft, filename, data)
            except UploadRefused as refused:
                if new:  # a refused first upload leaves no draft behind
                    shutil.rmtree(draft, ignore_errors=True)
                return Draft(slugify(name), None, tuple(refused.problems))
            self.versions.save_draft(track_id, folder_files(draft))
        return replace(self._read_draft(community, slugify(name)), files=tuple(written))

    def publish_path(self, community: str | None, name: str, path: Path, by: str) -> Draft | tuple[Track, int]:
        """The host's ``tutorbot publish``: a folder, ``.md`` or ``.zip`` into the draft, then publish if valid."""
        track_id = self._served_id(community, name)
        if path.is_dir():
            with self._lock:
                draft = self._pull_draft(track_id)
                draft.mkdir(parents=True, exist_ok=True)
                try:
                    copy_folder_into(draft, path)
                except UploadRefused as refused:
                    return Draft(slugify(name), None, tuple(refused.problems))
                self.versions.save_draft(track_id, folder_files(draft))
            checked = self._read_draft(community, slugify(name))
        else:
            checked = self.upload(community, name, path.name, path.read_bytes())
        if checked.problems:
            return checked
        return self.publish(community, name, by)

    def draft(self, community: str | None, name: str) -> Draft:
        """The track's draft as it is now."""
        track_id = self._served_id(community, name)
        with self._lock:
            present = self._pull_draft(track_id).is_dir()
        if not present:
            live = "" if self._live(track_id) is None else " (the published version has no changes waiting)"
            raise LibraryError(f"There is no draft of '{slugify(name)}'{live}. Upload a lesson or a track first: "
                               f"send the file with the caption '/tracks upload {slugify(name)}'.")  # fmt: skip
        return self._read_draft(community, slugify(name))

    def _read_draft(self, community: str | None, name: str) -> Draft:
        track_id = community_track_id(name, community)
        folder = self._draft_dir(track_id)
        result = read_track(folder)
        problems = [f"{_inside(p.path, folder)}:{p.line}: {p.message}" for p in result.problems]
        if result.track is not None and result.track.id != name:
            problems.append(f"{TRACK_FILE}:1: its id is '{result.track.id}', but the upload was for '{name}'; "
                            f"make them the same (id = \"{name}\"), or upload it as '{result.track.id}'")  # fmt: skip
        if problems or result.track is None:
            return Draft(name, None, tuple(problems or [f"{TRACK_FILE}:1: the draft has no track.toml; upload the "
                                                         "whole track as a .zip first"]))  # fmt: skip
        return Draft(name, _served(result.track, draft_track_id(track_id)))

    # ------------------------------------------------------------ publish, rollback, history

    def publish(self, community: str | None, name: str, by: str) -> tuple[Track, int]:
        """Index the valid draft as the next version, then serve it; the draft is used up."""
        track_id = self._served_id(community, name)
        with self._lock:
            draft = self.draft(community, name)
            if draft.track is None:
                raise LibraryError(f"The draft of '{slugify(name)}' has {len(draft.problems)} problem(s), so nothing "
                                   f"was published. 'tracks preview {slugify(name)}' lists them.")  # fmt: skip
            folder = self._draft_dir(track_id)
            published = self._switch(community, slugify(name), track_id, folder, draft.track, by, None)
            self.versions.save_draft(track_id, {})
            shutil.rmtree(folder, ignore_errors=True)
        return published

    def rollback(self, community: str | None, name: str, version: int, by: str) -> tuple[Track, int]:
        """Publish version ``version`` again, as the next version."""
        track_id = self._served_id(community, name)
        with self._lock:
            folder = self._version_folder(track_id, version)
            if not folder.is_dir():
                known = ", ".join(f"v{v.version}" for v in self.versions.history(track_id)) or "none yet"
                raise LibraryError(f"'{slugify(name)}' has no version {version}. Its versions: {known}.")
            result = read_track(folder)
            if result.track is None or not result.ok:  # pragma: no cover - a version was valid when published
                raise LibraryError(f"Version {version} of '{slugify(name)}' can no longer be read; pick another.")
            return self._switch(community, slugify(name), track_id, folder, result.track, by, version)

    def _switch(self, community: str | None, name: str, track_id: str, folder: Path, track: Track, by: str,
                restored_from: int | None) -> tuple[Track, int]:  # fmt: skip
        """Index ``track`` (read from ``folder``) as the next version, keep its files, then record it as live."""
        version = self.versions.next_version(track_id)
        before = self._live(track_id)
        key = version_key(track_id, version)
        if self.index is not None:
            try:
                self.index.ingest(_served(track, key))
            except Exception:
                self.index.remove_track(key)
                raise
        files = folder_files(folder)
        target = self._version_dir(track_id, version)
        write_folder(target, files)
        live = LiveVersion(track_id, version, community, name)
        if not self.versions.add(live, track.title, by, time.time(), files, restored_from):
            # another process published this track at the same moment
            shutil.rmtree(target, ignore_errors=True)
            raise LibraryError(f"'{name}' was published by someone else just now; see 'tracks history {name}' "
                               "and try again.")  # fmt: skip
        self._use_keys()
        if self.index is not None and before is not None:
            self._drop_versions(track_id, keep={version, before.version})
        return _served(track, track_id), version

    def _drop_versions(self, track_id: str, keep: set[int], indexed: set[str] | None = None) -> None:
        """Remove the track's indexed versions other than ``keep`` (and any not recorded yet: being published).

        The version live just before stays indexed: other bot processes search it until their next refresh
        (``Authoring.refresh``, within seconds), and it goes with the following publish.
        """
        assert self.index is not None
        recorded = self.versions.next_version(track_id)
        for key in sorted(self.index.indexed_tracks() if indexed is None else indexed):
            owner, mark, number = key.rpartition(VERSION_MARK)
            if mark and owner == track_id and number.isdigit() and int(number) not in keep and int(number) < recorded:
                removed = self.index.remove_track(key)
                log.info("removed %d chunks of %s, a version that is no longer live", removed, key)

    def history(self, community: str | None, name: str) -> list[TrackVersion]:
        """Every published version of the track, newest first."""
        return self.versions.history(self._served_id(community, name))

    # ------------------------------------------------------------ what is served

    def served(self) -> tuple[list[Track], dict[str, str]]:
        """The live version of every uploaded track, and the community each belongs to."""
        tracks: list[Track] = []
        owners: dict[str, str] = {}
        for live in self.versions.live():
            result = read_track(self._version_folder(live.track, live.version))
            if result.track is None or not result.ok:
                log.error("version %d of the uploaded track %s can't be read from %s; it is not served",
                          live.version, live.track, self._version_dir(live.track, live.version))  # fmt: skip
                continue
            tracks.append(_served(result.track, live.track))
            if live.community is not None:
                owners[live.track] = live.community
        self._use_keys()
        return tracks, owners

    def stamp(self) -> int:
        """Changes whenever any process publishes a version (see ``Authoring.refresh``)."""
        return self.versions.stamp()

    def _use_keys(self) -> None:
        if self.index is not None:
            self.index.use_keys({live.track: version_key(live.track, live.version) for live in self.versions.live()})

    def start(self) -> None:
        """At start: index any live version the index lacks, and drop chunks of versions superseded twice.

        A version with no database row yet is left alone: another process sharing the Chroma server may be
        publishing it (a crashed publish's key is used again, and brought in line, by the track's next one).
        """
        self._files_into_database()
        if self.index is None:
            return
        live = {version_key(v.track, v.version): v for v in self.versions.live()}
        indexed = self.index.indexed_tracks()  # read once: it lists every chunk's metadata
        for version in live.values():  # versions of tracks with no row at all are left: being published
            history = self.versions.history(version.track)
            self._drop_versions(version.track, keep={v.version for v in history[:2]}, indexed=indexed)
        for key, version in sorted(live.items()):
            if key in indexed:
                continue
            result = read_track(self._version_folder(version.track, version.version))
            if result.track is not None and result.ok:
                report = self.index.ingest(_served(result.track, key))
                log.warning("the search index had no chunks of %s; indexed them again (%d)", key, report.embedded)
        self._use_keys()


ADOPTED_MARK = ".drafts-in-database"  # in the library folder: its drafts were copied into the database once


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file in ``folder`` (none if it is missing), by its path inside it with '/' between folders."""
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink()}  # fmt: skip


def write_folder(folder: Path, files: dict[str, bytes]) -> None:
    """Make ``folder`` hold exactly ``files``, swapped in whole (a reader never sees half of it)."""
    staging = folder.with_name(f".{folder.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path, content in files.items():
        parts = PurePosixPath(path).parts
        if not parts or PurePosixPath(path).is_absolute() or ".." in parts:  # only ever our own rows
            raise ValueError(f"a library file path outside its folder: {path!r}")
        target = staging.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    old = folder.with_name(f".{folder.name}.{os.getpid()}.{threading.get_ident()}.old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(staging, folder)
    shutil.rmtree(old, ignore_errors=True)


def _served(track: Track, track_id: str) -> Track:
    """``track`` under the id it is served (or indexed) as."""
    return replace(track, id=track_id)


def _inside(path: Path, folder: Path) -> str:
    """``path`` as the moderator knows it: inside their upload."""
    try:
        return shown_name(path.relative_to(folder).as_posix())
    except ValueError:
        return shown_name(path.name)


def zip_track_name(data: bytes) -> str | None:
    """The id a zipped track's ``track.toml`` gives (at its root or under one top folder); None if unreadable."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            found = [info for info in archive.infolist()
                     if PurePosixPath(info.filename).name == TRACK_FILE and len(PurePosixPath(info.filename).parts) <= 2]  # fmt: skip
            if len(found) != 1 or found[0].file_size > MAX_FILE_BYTES:
                return None
            with archive.open(found[0]) as file:
                spec = tomllib.loads(file.read(MAX_FILE_BYTES + 1).decode("utf-8"))
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, EOFError):
        return None
    name = spec.get("id")
    return slugify(name) or None if isinstance(name, str) else None
