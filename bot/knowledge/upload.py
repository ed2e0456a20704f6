"""Turn a moderator's upload (one lesson, a zipped track, or a track folder on the host) into files in a draft
folder, or refuse it with every problem listed, each as ``PATH: problem — what to do``.

An upload is untrusted. All of it is checked and read into memory first (at most ``MAX_UNPACKED_BYTES``), each
file with a hard cap whatever its zip header says, so a lying header, a zip bomb, a link or a path out of the
folder is refused before a byte is written. Only then are files written: into a hidden folder inside the draft,
then moved into place by renames. An error while writing moves the old files back, so the draft holds its old
content or the new one, never a mix, and nothing is ever written outside it.

One upload into a draft at a time (the caller serialises them): each one clears what an interrupted one left.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import unicodedata
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from bot.core.uploads import (
    ALLOWED_KINDS,
    LESSON_SUFFIXES,
    MAX_COMPRESSION_RATIO,
    MAX_FILE_BYTES,
    MAX_UNPACKED_BYTES,
    MAX_ZIP_ENTRIES,
    MB,
    QUIZ_SUFFIXES,
    TRACK_FILE,
    is_allowed_file,
    refusal_before_download,
)
from bot.knowledge.reader import UNSHOWABLE, Problem, decode_text, shown_name
from bot.knowledge.safe_files import UnsafeFile, kind_in_words, list_folder, read_bytes

MAX_PROBLEMS = 50  # a chat message lists at most this many; the rest are counted
_STAGING = ".upload-"  # prefix of the hidden folder inside the draft that new files are written to first
_MAX_NAME_BYTES = 255  # what file systems allow in one name
_MAX_PATH_BYTES = 1024  # deeper paths are no track's, and could pass the system's limit under the draft
# Only these are read: bz2 and lzma decompress a whole chunk at once, so a few KB could unpack to gigabytes.
_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
_DAMAGED = "the zip is damaged — zip the folder again"
_EXAMPLE = "name it like 03-attention.md"


class UploadRefused(Exception):
    """An upload that was not taken: ``problems`` lists each thing wrong as ``PATH: problem — what to do`` (PATH as
    inside the upload; a problem of the upload as a whole has no PATH part), at most ``MAX_PROBLEMS`` and a count."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(f"and {len(problems) - MAX_PROBLEMS} more problems")
        super().__init__("\n".join(shown))
        self.problems = shown


def unpack_into(draft: Path, filename: str, data: bytes) -> list[str]:
    """Put an uploaded file into ``draft``: a ``.md`` lesson replaces the lesson file of its name, a ``.zip`` track
    replaces the draft's whole content; returns the relative paths written. Raises UploadRefused first."""
    base = re.split(r"[/\\]", filename)[-1]  # clients may send a path; only the name counts
    suffix = PurePosixPath(base).suffix.casefold()
    refusal = refusal_before_download(shown_name(base), len(data))
    if refusal is not None:
        raise UploadRefused([refusal])
    if suffix == ".zip":
        return _write(draft, _unzip(data), replace=lambda name: True)
    name, content = _lesson(base, data)
    return _write(draft, {name: content}, replace=lambda old: _key(old) == _key(name))


def copy_folder_into(draft: Path, source: Path) -> list[str]:
    """Put the track folder ``source`` (on the host) into ``draft`` in place of its content, never following a link
    or opening a fifo or device; returns the relative paths written. Raises UploadRefused first."""
    if not source.is_dir():
        raise UploadRefused([f"{shown_name(str(source))} is not a folder — give the track's folder (the one with "
                             f"{TRACK_FILE} in it)"])  # fmt: skip
    try:
        listing = list_folder(source)
    except UnsafeFile as error:
        raise UploadRefused([f"{shown_name(str(source))}: {error.why} — check the path and its permissions"]) from None
    upload = _Upload()
    for relative, why in sorted(listing.refused.items()):
        if upload.entry(relative.as_posix(), is_folder=False) is not None:
            upload.problems.append(f"{shown_name(relative.as_posix())}: {why} — put a plain file there instead")
    for relative in listing.files:
        shown, parts = relative.as_posix(), upload.entry(relative.as_posix(), is_folder=False)
        if parts is None or not upload.allowed(shown, parts) or not upload.may_read(0):
            continue
        try:
            content = read_bytes(listing.root / relative, listing.root, at_most=MAX_FILE_BYTES + 1)
        except UnsafeFile as error:  # swapped for a link or a fifo since it was listed
            upload.problems.append(f"{shown_name(shown)}: {error.why} — put a plain file there instead")
            continue
        upload.take(shown, parts, content)
    return _write(draft, upload.finish(), replace=lambda name: True)


# ---------------------------------------------------------------- reading an upload


def _key(name: str) -> str:
    """The name as a case-insensitive file system (macOS, Windows) sees it: two names with one key collide there."""
    return unicodedata.normalize("NFC", name).casefold()


def _is_text(name: str) -> bool:
    return name == TRACK_FILE or PurePosixPath(name).suffix.casefold() in LESSON_SUFFIXES | QUIZ_SUFFIXES


def _text_problem(shown: str, content: bytes) -> str | None:
    """Why a text file's bytes are not text the reader takes (not UTF-8, or a NUL byte), with its line."""
    found: list[Problem] = []
    decode_text(content, Path(shown), found)
    return f"{shown_name(shown)}: line {found[0].line}: {found[0].message}" if found else None


def _name_problem(part: str) -> str | None:
    """Why one file or folder name cannot be written as it is."""
    if any(unicodedata.category(ch) in UNSHOWABLE for ch in part):
        return "its name has control or invisible characters — rename it with letters, digits, '-' and '_'"
    if ":" in part:  # Windows reads it as a drive ("c:x.md") or a hidden stream ("a.md:x")
        return "its name has ':', which Windows doesn't allow — rename it"
    if len(part.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        return f"its name is longer than {_MAX_NAME_BYTES} bytes — shorten it"
    return None


def _lesson(base: str, data: bytes) -> tuple[str, bytes]:
    """The file name and content of one uploaded lesson (``.md`` suffix in lower case, so the reader sees it)."""
    name = unicodedata.normalize("NFC", base)
    name = name[: -len(".md")] + ".md" if name.casefold().endswith(".md") else name
    problems: list[str] = []
    why = _name_problem(name)
    if name.startswith(".") or not name.removesuffix(".md").strip():
        problems.append(f"{shown_name(base)}: a file without a name, or hidden (starting with '.') — {_EXAMPLE}")
    elif why is not None:
        problems.append(f"{shown_name(base)}: {why}")
    elif name.casefold() == "readme.md":
        problems.append(f"{shown_name(base)}: a track's README.md is never read as a lesson — {_EXAMPLE}")
    text_problem = _text_problem(base, data)
    if text_problem is not None:
        problems.append(text_problem)
    if problems:
        raise UploadRefused(problems)
    return name, data.removeprefix(b"\xef\xbb\xbf")


@dataclass
class _Upload:
    """What a zip or folder holds, checked as it is read: its files by path, and every problem found."""

    problems: list[str] = field(default_factory=list)
    files: dict[tuple[str, ...], bytes] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)  # key of each path -> the path as shown
    counted: list[tuple[str, ...]] = field(default_factory=list)  # every file that is not ignored
    total: int = 0  # bytes read so far
    too_large: bool = False  # the files add up to more than MAX_UNPACKED_BYTES
    damaged: bool = False  # an entry could not be read

    def entry(self, name: str, is_folder: bool) -> tuple[str, ...] | None:
        """The parts of an entry's path, or None when it is refused (the problem noted), ignored or a folder."""
        shown, unified = shown_name(name), name.replace("\\", "/")  # some Windows tools write "\" between folders
        if "\x00" in name:
            self.problems.append(f"{shown}: its name has a NUL byte — rename the file, then zip the folder again")
            return None
        if unified.startswith("/") or re.match(r"[A-Za-z]:", unified):
            self.problems.append(f"{shown}: an absolute path — zip the track's folder itself, so paths start in it")
            return None
        parts = tuple(unicodedata.normalize("NFC", part) for part in unified.split("/") if part not in ("", "."))
        if ".." in parts:
            self.problems.append(f"{shown}: the path climbs out of the folder ('..') — zip the track's folder itself")
            return None
        # hidden files (.DS_Store, .git) and macOS's __MACOSX folder are made by tools, not by the author
        if (
            is_folder
            or unified.endswith("/")
            or not parts
            or any(part.startswith(".") or part == "__MACOSX" for part in parts)
        ):
            return None
        why = next(filter(None, map(_name_problem, parts)), None)
        if why is None and len("/".join(parts).encode("utf-8", "surrogatepass")) > _MAX_PATH_BYTES:
            why = f"its path is longer than {_MAX_PATH_BYTES} bytes — use fewer, shorter folders"
        self.counted.append(parts)
        if why is not None:
            self.problems.append(f"{shown}: {why}")
            return None
        return parts

    def allowed(self, shown: str, parts: tuple[str, ...]) -> bool:
        """Whether a file of this kind may be in a track (else the problem is noted)."""
        if is_allowed_file(parts[-1]):
            return True
        self.problems.append(
            f"{shown_name(shown)}: not a file a track holds — remove it (a track holds {ALLOWED_KINDS})"
        )
        return False

    def too_big(self, shown: str, size: int) -> bool:
        """Whether a file of this (stated or read) size is larger than a file may be (the problem noted)."""
        if size <= MAX_FILE_BYTES:
            return False
        self.problems.append(f"{shown_name(shown)}: larger than {MAX_FILE_BYTES // MB} MB, the most a file may be — "
                             "split the lesson or make the image smaller")  # fmt: skip
        return True

    def may_read(self, size: int) -> bool:
        """Whether one more file of ``size`` is read: the upload is within its count and total so far."""
        if self.total + size > MAX_UNPACKED_BYTES:
            self.too_large = True
        return len(self.counted) <= MAX_ZIP_ENTRIES and not self.too_large

    def take(self, shown: str, parts: tuple[str, ...], content: bytes) -> None:
        """Keep a file read with a cap of ``MAX_FILE_BYTES + 1``, once it passes the size, total and text checks."""
        if self.too_big(shown, len(content)):
            return
        self.total += len(content)
        if self.total > MAX_UNPACKED_BYTES:
            self.too_large = True  # finish() says so once
            return
        text_problem = _text_problem(shown, content) if _is_text(parts[-1]) else None
        if text_problem is not None:
            self.problems.append(text_problem)
        key = _key("/".join(parts))
        if key in self.seen:
            self.problems.append(f"{shown_name(shown)}: the same name as {shown_name(self.seen[key])} (capitals don't "
                                 "make names different on every computer) — keep one of them")  # fmt: skip
            return
        self.seen[key] = shown
        self.files[parts] = content.removeprefix(b"\xef\xbb\xbf") if _is_text(parts[-1]) else content

    def finish(self) -> dict[str, bytes]:
        """The files by relative path (one top folder that holds everything stripped); raises UploadRefused with
        the problems of the upload as a whole first, so the cap on the list never hides them."""
        folders = {_key("/".join(parts[:depth])) for parts in self.files for depth in range(1, len(parts))}
        for key in sorted(folders & self.seen.keys()):
            self.problems.append(f"{shown_name(self.seen[key])}: a file with the name of a folder in the upload — "
                                 "rename one of them")  # fmt: skip
        overall = [_DAMAGED] if self.damaged else []
        if len(self.counted) > MAX_ZIP_ENTRIES:
            overall.append(f"{len(self.counted)} files; a track may have at most {MAX_ZIP_ENTRIES} — leave out the "
                           "files its lessons don't need")  # fmt: skip
        if self.too_large:
            overall.append(f"the files add up to more than {MAX_UNPACKED_BYTES // MB} MB — leave out large images, "
                           "or make them smaller")  # fmt: skip
        tops = {parts[0] for parts in self.counted}
        strip = 1 if len(tops) == 1 and all(len(parts) > 1 for parts in self.counted) else 0
        if (TRACK_FILE,) not in {parts[strip:] for parts in self.counted}:
            overall.append(f"there is no {TRACK_FILE} at the top — put the track's {TRACK_FILE} (id, title, "
                           "description) at the top, beside its lessons")  # fmt: skip
        if overall or self.problems:
            raise UploadRefused(overall + self.problems)
        return {_lower_md("/".join(parts[strip:])): content for parts, content in self.files.items()}


def _lower_md(path: str) -> str:
    """``path`` with a ``.MD`` suffix written ``.md``: the reader looks for lessons by that suffix."""
    return path[: -len(".md")] + ".md" if path.casefold().endswith(".md") else path


def _unzip(data: bytes) -> dict[str, bytes]:
    """The files of a zipped track, every entry checked and read with a hard cap; raises UploadRefused."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    # ValueError: a name that isn't UTF-8; NotImplementedError: a zip version newer than zipfile reads
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise UploadRefused([_DAMAGED]) from error
    upload = _Upload()
    with archive:
        for info in archive.infolist():
            mode = info.external_attr >> 16
            shown = info.orig_filename
            parts = upload.entry(shown, is_folder=stat.S_ISDIR(mode))  # not info.is_dir(): it fails on a name ""
            if parts is None:
                continue
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                upload.problems.append(f"{shown_name(shown)}: {kind_in_words(mode)} — put the file itself in the zip")
            elif not upload.allowed(shown, parts):
                pass
            elif info.flag_bits & 0x1:
                upload.problems.append(f"{shown_name(shown)}: encrypted — zip the folder again without a password")
            elif info.compress_type not in _METHODS:
                upload.problems.append(f"{shown_name(shown)}: packed with a method I don't read — zip the folder again "
                                       "with the usual (deflate) compression")  # fmt: skip
            elif upload.too_big(shown, info.file_size):
                pass
            elif info.file_size > MAX_COMPRESSION_RATIO * info.compress_size:  # multiplied: a stated 0 divides nothing
                upload.problems.append(f"{shown_name(shown)}: it unpacks to more than {MAX_COMPRESSION_RATIO} times its "
                                       "packed size, like a zip bomb — remove it, or zip the folder again")  # fmt: skip
            elif upload.may_read(info.file_size):
                _read_entry(archive, info, parts, upload)
    return upload.finish()


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, parts: tuple[str, ...], upload: _Upload) -> None:
    """Read one entry, at most one byte past the limit whatever its header says.

    zipfile stops at the size the header states and then checks the CRC, so a header that understates the size
    ends in a CRC error here: the stated sizes checked before bound what is read.
    """
    try:
        with archive.open(info) as entry:
            content = entry.read(MAX_FILE_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, zlib.error):  # a bad CRC, cut short
        upload.damaged = True
        return
    upload.take(info.orig_filename, parts, content)


# ---------------------------------------------------------------- writing into the draft


def _write(draft: Path, files: dict[str, bytes], replace: Callable[[str], bool]) -> list[str]:
    """Write ``files`` (relative path -> bytes) into ``draft``, in place of its entries ``replace`` picks (and of
    those the new files take): all of it, or, on an error, nothing (the old entries are moved back)."""
    staging = draft / f"{_STAGING}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    new, old = staging / "new", staging / "old"
    moved_out: list[str] = []
    moved_in: list[str] = []
    try:
        for relative, content in files.items():
            path = new / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        old.mkdir()
        tops = {relative.split("/")[0] for relative in files}
        for name in os.listdir(draft):
            if name != staging.name and (name in tops or name.startswith(_STAGING) or replace(name)):
                os.rename(draft / name, old / name)
                moved_out.append(name)
        for name in tops:
            os.rename(new / name, draft / name)
            moved_in.append(name)
    except BaseException:
        for name in reversed(moved_in):
            os.rename(draft / name, new / name)
        for name in reversed(moved_out):
            os.rename(old / name, draft / name)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(files)
