"""What a track is made of: tracks, lessons, sections and quiz questions (plain, immutable data)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """Lowercase ``text`` and turn every run of other characters into one hyphen (``"Cost & time"`` -> ``cost-time``)."""
    return _NON_ALNUM.sub("-", text.lower()).strip("-")


COMMUNITY_MARK = "@"  # a community's uploaded track is served as NAME@TAG (names are slugs: never hold "@")
DRAFT_MARK = "~draft"  # a draft being previewed is served as NAME@TAG~draft, to its community's moderators only
VERSION_MARK = "#v"  # one published version of an uploaded track in the search index: NAME@TAG#v3


def community_track_id(name: str, community: str | None) -> str:
    """The id a track uploaded as ``name`` is served under: qualified by its community (None: the host's)."""
    if community is None:
        return name
    return f"{name}{COMMUNITY_MARK}{hashlib.blake2s(community.encode(), digest_size=3).hexdigest()}"


def draft_track_id(track_id: str) -> str:
    """The id a track's draft is previewed under."""
    return f"{track_id}{DRAFT_MARK}"


def track_name(track_id: str) -> str:
    """The id people know a track by (what its author wrote in track.toml), without community or draft marks."""
    return track_id.split(COMMUNITY_MARK, 1)[0].removesuffix(DRAFT_MARK)


def version_key(track_id: str, version: int) -> str:
    """The search-index key of one published version of an uploaded track."""
    return f"{track_id}{VERSION_MARK}{version}"


def served_id(key: str) -> str:
    """The track id a search-index key serves (a host track's key is its id)."""
    return key.split(VERSION_MARK, 1)[0]


def split_lesson_ref(ref: str, track: str) -> tuple[str, str]:
    """``(track id, lesson id)`` of a reference to a lesson: ``track-id/lesson-id``, or a bare id in ``track``."""
    other, slash, lesson = ref.partition("/")
    return (other, lesson) if slash else (track, ref)


@dataclass(frozen=True)
class Question:
    """One multiple-choice quiz question with exactly one correct option."""

    prompt: str
    options: tuple[str, ...]
    correct_index: int
    explanation: str | None = None
    section: str | None = None

    @property
    def correct_option(self) -> str:
        """The text of the correct option."""
        return self.options[self.correct_index]


@dataclass(frozen=True)
class Unit:
    """The smallest piece of lesson text an answer can cite: a sentence, a list item, a table row or a code block.

    ``id`` is stable: it comes from the section and the unit's own words, so editing other text keeps it.
    ``text`` is plain text as a reader sees it (links read as their words, no Markdown markup). A list's
    lead-in (the sentence before the list) names its items in ``items``, so citing it brings the list.
    ``block`` numbers the Markdown blocks of the section: the sentences of one paragraph share it; every
    list item, table row and code block has its own.
    """

    id: str
    text: str
    kind: str = "sentence"  # "sentence", "item", "row", "code"
    line: int = 0  # where it starts in the lesson file
    items: tuple[str, ...] = ()
    block: int = 0


@dataclass(frozen=True)
class Section:
    """A ``##`` section of a lesson: what learners read and answers cite."""

    id: str
    heading: str
    text: str
    line: int = 0
    units: tuple[Unit, ...] = ()


@dataclass(frozen=True)
class Lesson:
    """A lesson: premise, sections, key terms, practice steps and an optional quiz."""

    id: str
    title: str
    minutes: int
    premise: str
    sections: tuple[Section, ...]
    key_terms: tuple[tuple[str, str], ...] = ()
    practice: tuple[str, ...] = ()
    quiz: tuple[Question, ...] = ()
    path: Path | None = None
    related: tuple[
        str, ...
    ] = ()  # ``lesson-id`` in the same track or ``track-id/lesson-id``, as the author listed them

    def section(self, section_id: str) -> Section | None:
        """The section with this id, or None."""
        return next((s for s in self.sections if s.id == section_id), None)


@dataclass(frozen=True)
class Track:
    """A track: an ordered list of lessons on one subject."""

    id: str
    title: str
    description: str
    lessons: tuple[Lesson, ...] = field(default_factory=tuple)
    path: Path | None = None

    def lesson(self, lesson_id: str) -> Lesson | None:
        """The lesson with this id, or None."""
        return next((lesson for lesson in self.lessons if lesson.id == lesson_id), None)

    def related_refs(self, lesson: Lesson) -> list[tuple[str, str]]:
        """``(track id, lesson id)`` of each lesson ``lesson`` lists as related (a bare id is in this track)."""
        return [split_lesson_ref(ref, self.id) for ref in lesson.related]

    def after(self, lesson: Lesson) -> Lesson | None:
        """The lesson that follows ``lesson`` in this track, or None after the last one."""
        index = self.lessons.index(lesson)
        return self.lessons[index + 1] if index + 1 < len(self.lessons) else None
