"""Property tests: any lesson file or track folder, however odd, reads as a lesson or as problems that point at a
line of the file and say how to fix it; reading and validating never raise."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.core.lessons import Lesson
from bot.knowledge.reader import Problem, read_lesson, read_track, validate_path
from bot.knowledge.schema import ID_PATTERN, MAX_PREMISE_CHARS
from tests.strategies import file_bytes, file_lines, fuzz_settings, lesson_text, nearly_valid_lesson_text, odd_text

# Every fix a problem suggests starts with one of these (or asks "did you mean ...?").
FIX = re.compile(r"\b(add|remove|delete|write|give|use|save|rename|shorten|fix|mark|keep|list|check|create|describe|state|"
                 r"did you mean|quote)\b", re.IGNORECASE)  # fmt: skip

# File IO makes the time of one example vary with the machine's load: no deadline.
FILES = fuzz_settings(100, deadline=None)


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
        assert str(problem).startswith(f"{problem.path}:{problem.line}: ")


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
        if lesson is not None:
            assert_usable(lesson, data)
        assert_located_and_fixable(validate_path(path), {path: lines})


TRACK_TOML = [
    'id = "demo"\ntitle = "Demo"\ndescription = "A demo track."\n',
    'id = "demo"\ntitle = "Demo"\ndescription = "A demo."\norder = ["lesson-1", "nope", "lesson-1"]\n',
    'id = "Demo Track"\ntitle = ""\ndescription = 5\norder = "lesson-1"\n',
    'id = "demo"\nid = "again"\n',
    "[id]\nx = 1\n",
    'id = "demo"\ntitle = "T"\ndescription = "D"\nextra = 99999999999999999999999999999\n',
    'title = "T"\n\n\n# no id\n',
    'id = "demo"\r\ntitle = "Demo"\r\ndescription = "Line\u2028separated"\r\n',
    'id = "demo"\rtitle = "Demo"\r',
    "",
]


@fuzz_settings(50, deadline=None)
@given(
    toml=st.one_of(st.sampled_from(TRACK_TOML), odd_text(max_size=60), st.none()),
    lessons=st.lists(
        st.tuples(
            st.sampled_from(["01-a.md", "02-b.md", "03 c.md", "README.md", "ü.md", "x.txt"]),
            file_bytes(lesson_text()) | file_bytes(nearly_valid_lesson_text(), damaged=False),
        ),
        max_size=3,
        unique_by=lambda pair: pair[0],
    ),  # fmt: skip
)
def test_any_track_folder_is_a_track_or_problems_at_lines_of_its_files(toml: str | None,
                                                                      lessons: list[tuple[str, bytes]]) -> None:  # fmt: skip
    with folder() as root:
        track = root / "demo"
        track.mkdir()
        lines_of = {track / "track.toml": 1, track: 1, root: 1}  # a folder: line 1
        if toml is not None:
            data = toml.encode("utf-8", "surrogatepass")
            (track / "track.toml").write_bytes(data)
            lines_of[track / "track.toml"] = file_lines(data)
        for name, data in lessons:
            (track / name).write_bytes(data)
            lines_of[track / name] = file_lines(data)
        result = read_track(track)
        assert_located_and_fixable(result.problems, lines_of)
        if result.ok:
            assert result.track is not None
            assert result.track.lessons and len({lesson.id for lesson in result.track.lessons}) == len(
                result.track.lessons
            )
            for lesson in result.track.lessons:
                assert lesson.path is not None
                assert_usable(lesson, (lesson.path).read_bytes())
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
