"""Files in and out of an import: an untrusted course folder read without following links, a track replaced whole.

A course folder may come from anyone. It is listed without following symbolic links, and each file is opened
without following a link in its last part (``O_NOFOLLOW``) and without waiting on a fifo (``O_NONBLOCK``),
then checked to be a regular file inside the folder. So a ``README.md`` that links to ``~/.ssh/id_rsa``, or a
fifo or device named like a lesson, never becomes lesson text.

A track folder is replaced by renames only: the new track is written to a hidden folder beside it, the old
folder is renamed aside, the new one renamed in, and only then is the old one deleted. A crash or an error
at any step leaves either the old track or the new one in place, never a half-written one (the reader skips
hidden folders; the next import puts back an old track a crash left aside).
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_ASIDE = ".replaced-"  # infix of an old track folder renamed aside during a swap
_STAGING = ".importing-"  # infix of a new track folder being written


class UnsafeFile(RuntimeError):
    """A file of the course is not a plain file inside it (a link, a fifo, a device, or a path outside)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


def kind_in_words(mode: int) -> str:
    """What a non-regular file of this ``st_mode`` is, in words."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a fifo (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _link_note(path: Path) -> str:
    try:
        return f"a symbolic link (to {os.readlink(path)})"
    except OSError:
        return "a symbolic link"


@dataclass
class FolderListing:
    """Everything under a folder, found without following links: plain files, folders, and what was not read."""

    root: Path  # the folder, resolved
    files: list[Path] = field(default_factory=list)  # regular files, relative to root, sorted
    folders: set[Path] = field(default_factory=set)  # real folders (not links), relative to root
    refused: dict[Path, str] = field(default_factory=dict)  # relative path -> why it is not read


def list_folder(folder: Path) -> FolderListing:
    """List ``folder`` recursively without following symbolic links; links and special files go to ``refused``."""
    listing = FolderListing(folder.resolve())
    pending = [Path()]
    while pending:
        relative = pending.pop()
        try:
            entries = list(os.scandir(listing.root / relative))
        except OSError as error:
            if relative == Path():
                raise UnsafeFile(folder, f"it cannot be read ({error.strerror})") from None
            listing.refused[relative] = f"a folder that cannot be read ({error.strerror})"
            continue
        for entry in entries:
            path = relative / entry.name
            if entry.is_symlink():
                listing.refused[path] = _link_note(listing.root / path)
            elif entry.is_dir(follow_symlinks=False):
                listing.folders.add(path)
                pending.append(path)
            elif entry.is_file(follow_symlinks=False):
                listing.files.append(path)
            else:
                listing.refused[path] = kind_in_words(entry.stat(follow_symlinks=False).st_mode)
    listing.files.sort()
    return listing


def read_bytes(path: Path, inside: Path | None = None, at_most: int = -1) -> bytes:
    """The bytes of a regular file (its first ``at_most`` when given), refusing a link, a fifo, a device, or (with
    ``inside``) a path outside it."""
    if inside is not None:
        real, root = Path(os.path.realpath(path)), Path(os.path.realpath(inside))
        if not real.is_relative_to(root):
            raise UnsafeFile(path, f"it resolves to {real}, outside {root}")
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as error:
        if os.path.islink(path):
            raise UnsafeFile(path, _link_note(path)) from None
        raise UnsafeFile(path, f"it cannot be read ({error.strerror})") from None
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafeFile(path, kind_in_words(mode))
        return handle.read(at_most)


def read_text(path: Path, inside: Path | None = None) -> str:
    """``read_bytes`` decoded as UTF-8."""
    return read_bytes(path, inside).decode("utf-8")


def staging_folder(dest: Path) -> Path:
    """A new hidden folder beside ``dest`` to write its replacement into (the reader skips hidden folders)."""
    staging = dest.with_name(f".{dest.name}{_STAGING}{uuid.uuid4().hex[:12]}")
    staging.mkdir(parents=True)  # not tempfile.mkdtemp: its folders are private (0700), a track is not
    return staging


def tidy_after_crash(dest: Path) -> bool:
    """Clear what an interrupted import of ``dest`` left: put back an old folder left aside when ``dest`` is
    missing, delete unfinished new ones. True when an old folder was put back.

    One import of a folder at a time: a second one running would lose its half-written folder here.
    """
    if not dest.parent.is_dir():
        return False
    restored = False
    for aside in sorted(dest.parent.glob(f".{dest.name}{_ASIDE}*"), reverse=True):
        if not restored and not dest.exists() and not dest.is_symlink():
            aside.rename(dest)
            restored = True
        else:
            shutil.rmtree(aside, ignore_errors=True)  # the swap had finished: the new folder is in place
    for staged in dest.parent.glob(f".{dest.name}{_STAGING}*"):
        shutil.rmtree(staged, ignore_errors=True)
    return restored


def replace_folder(new: Path, dest: Path) -> None:
    """Put folder ``new`` at ``dest`` by renames: the old ``dest`` (if any) aside, ``new`` in, the old deleted."""
    aside: Path | None = None
    if dest.exists():
        aside = dest.with_name(f".{dest.name}{_ASIDE}{uuid.uuid4().hex[:12]}")
        dest.rename(aside)  # a rename within one folder: atomic, nothing copied
    try:
        new.rename(dest)
    except BaseException:
        if aside is not None:
            aside.rename(dest)
        raise
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
