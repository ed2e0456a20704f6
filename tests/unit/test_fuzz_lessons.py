"""Property tests: any lesson file or track folder, however odd, reads as a lesson or as problems that point at a
line of the file and say how to fix it; reading and validating never raise."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from bot.core.lessons import Lesson
from bot.knowledge.reader import Problem, read_lesson, read_track, shown_name, validate_path
from bot.knowledge.schema import ID_PATTERN, MAX_PREMISE_CHARS
from tests.strategies import (
    file_bytes,
    file_lines,
    fuzz_settings,
    lesson_text,
    nearly_valid_lesson_text,
    odd_text,
    weighted,
)

# Every fix a problem suggests starts with one of these (or asks "did you mean ...?").
FIX = re.compile(r"\b(add|remove|delete|write|give|use|save|rename|shorten|fix|mark|keep|list|check|create|describe|state|"
                 r"did you mean|quote)\b", re.IGNORECASE)  # fmt: skip

# File IO makes the time of one example vary with the machine's load: no deadline.
FILES = fuzz_settings(60, deadline=None)


@contextmanager
def folder() -> Iterator[Path]:
    """A fresh folder per example (pytest's tmp_path is one per test, shared by all of hypothesis' examples)."""
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def assert_located_and_fixable(problems: list[Problem], lines_of: dict[Path, int]) -> None:
    """Each problem names a file it was given, a line inside that file, and a message that says what to do."""
    for problem in problems:
        assert problem.path in lines_of, problem
        assert 1 <= problem.line <= lines_of[problem.path], (problem, lines_of[problem.path])
        assert problem.message.strip() and FIX.search(problem.message), problem
        assert not re.search(r"[\r\n]", problem.message), problem  # validate prints one problem per line
        assert str(problem).startswith(f"{shown_name(str(problem.path))}:{problem.line}: ")
        assert "\n" not in str(problem)  # a file name with a line break is escaped, not printed as two lines


def file_text_lines(data: bytes) -> list[str]:
    """The lines of a UTF-8 file as an editor shows them (a BOM is not text)."""
    return re.split(r"\r\n|\r|\n", data.decode("utf-8-sig"))


def assert_usable(lesson: Lesson, data: bytes) -> None:
    """What the rest of tutorbot relies on in a lesson that read without problems: ids, limits, and sections whose
    text is the file's own lines (whole, but for the ends of each section) at lines inside the file."""
    lines = file_text_lines(data)
    assert re.fullmatch(ID_PATTERN, lesson.id) and lesson.title.strip()
    assert 1 <= lesson.minutes <= 60 and len(lesson.premise) <= MAX_PREMISE_CHARS
    assert any(section.text for section in lesson.sections)
    ids = [section.id for section in lesson.sections]
    assert all(ids) and len(set(ids)) == len(ids)
    for section in lesson.sections:
        assert 1 <= section.line <= len(lines), (section.id, section.line, len(lines))
        assert all(1 <= unit.line <= len(lines) for unit in section.units), (
            section.id,
            [u.line for u in section.units],
        )
        if section.text:
            first, *middle, last = section.text.split("\n") if "\n" in section.text else [section.text, ""]
            assert set(middle) <= set(lines), (section.id, set(middle) - set(lines))
            assert any(first in line for line in lines) and any(last in line for line in lines), section.id
    for question in lesson.quiz:
        assert 0 <= question.correct_index < len(question.options)
        assert question.section is None or question.section in ids


@FILES
@given(data=st.one_of(file_bytes(lesson_text()), file_bytes(nearly_valid_lesson_text(), damaged=False)))
def test_any_lesson_file_is_a_lesson_or_problems_at_its_lines(data: bytes) -> None:
    with folder() as root:
        path = root / "01-lesson.md"
        path.write_bytes(data)
        problems: list[Problem] = []
        lesson = read_lesson(path, problems)
        lines = file_lines(data)
        assert (lesson is None) == bool(problems)
        assert_located_and_fixable(problems, {path: lines})
        event("a lesson" if lesson else "problems")
        if lesson is not None:
            event("with a quiz" if lesson.quiz else "without a quiz")
            assert_usable(lesson, data)
        assert_located_and_fixable(validate_path(path), {path: lines})


TRACK_TOML = [
    'id = "demo"\ntitle = "Demo"\ndescription = "A demo track."\n',
    'id = "demo"\ntitle = "Demo"\ndescription = "A demo."\norder = ["lesson-2", "nope", "lesson-2"]\n',
    'id = "Demo Track"\ntitle = ""\ndescription = 5\norder = "lesson-1"\n',
    'id = "demo"\nid = "again"\n',
    "[id]\nx = 1\n",
    'id = "demo"\ntitle = "T"\ndescription = "D"\nextra = 99999999999999999999999999999\n',
    'title = "T"\n\n\n# no id\n',
    'id = "demo"\r\ntitle = "Demo"\r\ndescription = "Line\u2028separated"\r\n',
    'id = "demo"\rtitle = "Demo"\r',
    "",
]


def track_file() -> st.SearchStrategy[bytes | None]:
    """A ``track.toml``: valid (most of the time), broken in a known way, odd text, or none."""
    text = weighted((6, st.just(TRACK_TOML[0])), (3, st.sampled_from(TRACK_TOML)), (1, odd_text(max_size=60)))
    return weighted((4, text.map(lambda toml: toml.encode("utf-8", "surrogatepass"))), (1, st.none()))


def lesson_slot(number: int) -> st.SearchStrategy[tuple[str, bytes] | None]:
    """The lesson file in slot ``number`` of a track: none, a hostile file, or a nearly valid ``lesson-N``."""
    name = st.sampled_from([f"0{number}-lesson.md"] * 3 + [f"{number} ü lesson.md", "README.md", f"{number}.txt"])
    nearly_valid = file_bytes(nearly_valid_lesson_text(f"lesson-{number}"), damaged=False)
    data = weighted((3, nearly_valid), (1, file_bytes(lesson_text())))
    return weighted((2, st.tuples(name, data)), (1, st.none()))


@fuzz_settings(30, deadline=None)
@given(toml=track_file(), lessons=st.tuples(lesson_slot(1), lesson_slot(2), lesson_slot(3)))
def test_any_track_folder_is_a_track_or_problems_at_lines_of_its_files(
    toml: bytes | None, lessons: tuple[tuple[str, bytes] | None, ...]
) -> None:
    with folder() as root:
        track = root / "demo"
        track.mkdir()
        lines_of = {track / "track.toml": 1, track: 1, root: 1}  # a folder: line 1
        for name, data in [("track.toml", toml), *(lesson for lesson in lessons if lesson is not None)]:
            if data is not None:
                (track / name).write_bytes(data)
                lines_of[track / name] = file_lines(data)
        result = read_track(track)
        assert_located_and_fixable(result.problems, lines_of)
        event("a valid track" if result.ok else "a track with problems")
        if result.ok:
            assert result.track is not None
            assert result.track.lessons and len({lesson.id for lesson in result.track.lessons}) == len(
                result.track.lessons
            )
            for lesson in result.track.lessons:
                assert lesson.path is not None
                assert_usable(lesson, lesson.path.read_bytes())
        assert_located_and_fixable(validate_path(root), lines_of)  # every track under a folder, as ingest reads them


@fuzz_settings(30, deadline=None)
@given(name=st.binary(min_size=1, max_size=60), exists=st.booleans())
def test_odd_file_names_given_to_validate_are_problems_not_crashes(name: bytes, exists: bool) -> None:
    # Linux file names are bytes: one saved in Latin-1 reaches Python with surrogates standing for its bytes.
    safe = name.replace(b"/", b"_").replace(b"\x00", b"_").lstrip(b".") or b"x"
    with folder() as root:
        path = root / os.fsdecode(safe[:250] + b".md")
        if exists:
            path.write_bytes(b"# Title\n\n## Part\n\n")
        problems = validate_path(path)
        assert problems
        assert_located_and_fixable(problems, {path: 5 if exists else 1})
