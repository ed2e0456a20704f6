"""What a moderator may upload: the size limits and file kinds, checked before a byte is downloaded and again
while a zip is unpacked (``bot.knowledge.upload``). One place for these numbers."""

from __future__ import annotations

from pathlib import PurePosixPath

KB = 1024
MB = 1024 * KB

MAX_FILE_BYTES = 1 * MB  # one lesson, quiz or image file (in a zip or alone)
MAX_ZIP_BYTES = 10 * MB  # a zip as uploaded
MAX_UNPACKED_BYTES = 50 * MB  # everything a zip holds, unpacked
MAX_ZIP_ENTRIES = 500
UPLOADS_PER_MINUTE = 5  # per moderator: enough to fix and resend, too few to flood the host's disk
MAX_COMPRESSION_RATIO = 100  # a file that unpacks to more than 100 times its packed size is refused (a zip bomb)

LESSON_SUFFIXES = frozenset({".md"})
QUIZ_SUFFIXES = frozenset({".json"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
TRACK_FILE = "track.toml"
ALLOWED_KINDS = "lessons (.md), track.toml, quiz JSON (.json) and images (.png, .jpg, .gif, .webp)"


def is_allowed_file(name: str) -> bool:
    """Whether a file of this name may be part of an uploaded track (``track.toml``, lessons, quizzes, images)."""
    path = PurePosixPath(name)
    if path.name == TRACK_FILE:
        return True
    return path.suffix.casefold() in LESSON_SUFFIXES | QUIZ_SUFFIXES | IMAGE_SUFFIXES


def refusal_before_download(filename: str, size: int) -> str | None:
    """Why an upload of this name and stated size is refused before it is downloaded (None: go ahead)."""
    suffix = PurePosixPath(filename).suffix.casefold()
    if suffix == ".zip":
        if size > MAX_ZIP_BYTES:
            return (f"{filename} is {size / MB:.1f} MB; a track's zip may be at most {MAX_ZIP_BYTES // MB} MB. "
                    "Leave out large images, or upload lessons one .md file at a time.")  # fmt: skip
        return None
    if suffix in LESSON_SUFFIXES:
        if size > MAX_FILE_BYTES:
            return (f"{filename} is {size / MB:.1f} MB; a lesson file may be at most {MAX_FILE_BYTES // MB} MB. "
                    "Split it into shorter lessons.")  # fmt: skip
        return None
    return (f"I can't take {filename}: send one lesson as a .md file, or a whole track (a folder with track.toml "
            "and its lessons) as a .zip.")  # fmt: skip
