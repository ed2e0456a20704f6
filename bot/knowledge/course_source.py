"""The files of a course to import: its lessons, its quiz-app JSON and its licence, read without following links.

A course has one ``README.md`` per lesson folder (else ``lessons/*.md``, else ``*.md``) and a quiz-app JSON
file somewhere under it. A link or a special file where one of these would be stops the import (see
``refused_reads``): importing the rest would publish a track silently missing a lesson or its quizzes, and a
link out of a course may be an attempt to publish a private file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.knowledge.reader import Problem, decode_text, lesson_id_from_path
from bot.knowledge.safe_files import FolderListing, UnsafeFile, read_bytes, read_text

LICENCES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "SOURCE.md")  # copied beside the track
MAX_ID_CHARS = 60  # ids name the lesson files ("NN-id.md" must fit a file name) and show in related lists
_SKIP_NAMES = {"readme.md", "source.md", "license.md", "contributing.md", "code_of_conduct.md", "security.md"}


class ImportError_(RuntimeError):  # noqa: N801 - ImportError is a builtin
    """The course cannot be imported; the message says why and what to do."""


@dataclass
class LessonSource:
    """One lesson file of the course, read."""

    path: Path  # relative to the course folder
    lesson_id: str
    text: str


def lesson_paths(files: list[Path], folders: set[Path]) -> list[Path]:
    """Lesson files of a course: ``*/README.md`` per lesson folder, else ``lessons/*.md``, else ``*.md``."""
    readmes = [path for path in files if path.name == "README.md" and path.parent != Path()]
    if readmes:
        return readmes
    folder = Path("lessons") if Path("lessons") in folders else Path()
    return [p for p in files if p.parent == folder and p.suffix == ".md" and p.name.lower() not in _SKIP_NAMES]


def read_lessons(listing: FolderListing) -> list[LessonSource]:
    """The lessons of a listed course (see ``lesson_paths``), each read without following links."""
    sources: list[LessonSource] = []
    for number, path in enumerate(lesson_paths(listing.files, listing.folders), start=1):
        problems: list[Problem] = []
        # read as the reader reads lessons: UTF-8, without a BOM, "\n" line ends
        text = decode_text(read_bytes(listing.root / path, listing.root), listing.root / path, problems)
        if text is None:
            raise ImportError_(f"{problems[0]}; then import again")
        lesson_id = lesson_id_from_path(path.parent if path.name == "README.md" else path)
        sources.append(LessonSource(path, _unique_id(lesson_id, number, {s.lesson_id for s in sources}), text))
    return sources


def _unique_id(lesson_id: str, number: int, taken: set[str]) -> str:
    """A valid lesson id from a file or folder name: short, never empty ("日本語" has no letters an id can
    keep: ``lesson-N``), and not one an earlier lesson has ("01-intro" and "02-intro": ``intro``, ``intro-2``)."""
    base = lesson_id[:MAX_ID_CHARS].rstrip("-") or f"lesson-{number}"
    unique, suffix = base, 2
    while unique in taken:
        unique, suffix = f"{base}-{suffix}", suffix + 1
    return unique


def find_quiz_file(listing: FolderListing) -> Path | None:
    """The first JSON file of a listed course shaped like the quiz app's translations file."""
    for path in listing.files:
        if path.suffix != ".json":
            continue
        try:
            data = json.loads(read_text(listing.root / path, listing.root))
        except (UnsafeFile, ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            continue
        if isinstance(data, list) and data and isinstance(data[0], dict) and "quizzes" in data[0]:
            return listing.root / path
    return None


def load_quizzes(path: Path) -> dict[int, dict[str, Any]]:
    """The quizzes of a quiz-app JSON file, by id."""
    try:
        data = json.loads(read_text(path))
        return {int(quiz["id"]): quiz for block in data for quiz in block["quizzes"]}
    except UnsafeFile as error:
        raise ImportError_(f"the quiz file {error.path} is {error.why}; pass the file itself with --quizzes") from None
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as error:  # OverflowError: "id": 1e999
        raise ImportError_(
            f"{path} is not a quiz-app JSON file ({error}); pass the right file with --quizzes"
        ) from error


def refused_reads(src: Path, listing: FolderListing, quiz_given: bool) -> tuple[list[str], list[str]]:
    """Links and special files the import would read were they plain files (each with why it does not), and
    links to folders (not followed, so what they hold is not imported)."""
    refused = set(listing.refused)
    would_read = set(lesson_paths(sorted([*listing.files, *refused]), listing.folders))
    would_read |= {path for path in refused if path.suffix.lower() == ".json" and not quiz_given}
    would_read |= {Path(name) for name in LICENCES}
    blocking, skipped = [], []
    for path, why in sorted(listing.refused.items()):
        if path in would_read:
            blocking.append(f"{src / path} is {why}")
        elif os.path.isdir(listing.root / path):  # stat only: nothing in it is read
            skipped.append(f"{src / path} is {why}: not followed, nothing in it is imported")
    return blocking, skipped
