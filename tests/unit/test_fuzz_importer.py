"""Property tests: importing any course folder, however odd its file names, Markdown or quiz JSON, either writes a
track (valid, or with problems that point at its files' lines) or stops with a clear ImportError_; nothing else
escapes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from bot.cli import app
from bot.knowledge.importer import ImportError_, import_course
from bot.knowledge.reader import validate_path
from tests.strategies import (
    course_lesson_text,
    file_bytes,
    file_lines,
    file_names,
    fuzz_settings,
    odd_text,
    quiz_json,
)
from tests.unit.test_fuzz_lessons import assert_located_and_fixable

TAME_LESSON = "# {title}\n\n## [Post-lecture quiz](https://q.invalid/quiz/{n}/)\n\n## Idea\n\nThe idea of lesson {n}.\n"


@st.composite
def course(draw: st.DrawFn, tame: bool = False) -> dict[str, bytes]:
    """A course as ``{relative path: bytes}``: lessons in folders, in ``lessons/`` or at the top, and a quiz file.

    A ``tame`` course has well-formed lessons (one title, unique headings): only its names, titles and quiz JSON
    are odd.
    """
    layout = draw(st.sampled_from(["folders", "lessons", "flat"]))
    names = draw(st.lists(file_names(), min_size=1, max_size=4))
    files: dict[str, bytes] = {}
    for n, name in enumerate(names, start=1):
        if tame:
            title = draw(
                odd_text(max_size=30).map(lambda text: " ".join(text.replace("\x00", "").split()))
                | st.just("T" * 300)
                | st.just("")
            )
            data = TAME_LESSON.format(n=n, title=title).encode("utf-8", "replace")
        else:
            data = draw(file_bytes(course_lesson_text()))
        files[{"folders": f"{name}/README.md", "lessons": f"lessons/{name}.md", "flat": f"{name}.md"}[layout]] = data
    if draw(st.booleans()):
        files[draw(st.sampled_from(["quiz-app/src/assets/translations/en.json", "en.json", "a/b.json"]))] = draw(
            quiz_json()
        ).encode("utf-8", "surrogatepass")
    return files


def write_course(root: Path, files: dict[str, bytes]) -> Path:
    src = root / "course"
    src.mkdir()
    for relative, data in files.items():
        path = src / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return src


def written_lines(dest: Path) -> dict[Path, int]:
    return {path: file_lines(path.read_bytes()) for path in dest.iterdir()} | {dest: 1}


@fuzz_settings(40, deadline=None)
@given(files=course())
def test_any_course_imports_as_a_track_or_stops_with_a_clear_error(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        src, dest = write_course(root, files), root / "knowledge" / "imported"
        try:
            report = import_course(src, "imported", dest)
        except ImportError_ as error:
            message = str(error)
            event("ImportError_")
            assert message.strip() and "\n" not in message, message
            assert not dest.exists() or not any(dest.iterdir())  # nothing half-written where the track goes
            return
        assert report.lessons == len(list(dest.glob("*.md")))
        event("imported")
        assert_located_and_fixable(validate_path(dest), written_lines(dest))


@fuzz_settings(40, deadline=None)
@given(files=course(tame=True))
def test_a_course_of_well_formed_lessons_imports_as_a_valid_track_whatever_its_names(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        src, dest = write_course(root, files), root / "knowledge" / "imported"
        try:
            report = import_course(src, "imported", dest)
        except ImportError_ as error:
            assert not files or "quiz" in str(error) or "no lesson" in str(error), error
            return
        event("questions imported" if report.questions else "no questions imported")
        assert validate_path(dest) == []
        assert report.lessons == len(files) - sum(path.endswith(".json") for path in files)


@fuzz_settings(10, deadline=None)
@given(files=course())
def test_the_import_command_ends_with_a_message_never_a_traceback(files: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        src, dest = write_course(root, files), root / "knowledge" / "imported"
        result = CliRunner().invoke(app, ["import", str(src), "--track", "imported", "--dest", str(dest)])
        assert result.exit_code in (0, 1) and isinstance(result.exception, (SystemExit, type(None))), result.output
        assert ("wrote track" in result.output) if result.exit_code == 0 else ("error:" in result.output)


def test_a_folder_name_with_a_line_break_stays_on_one_line_of_the_error(tmp_path: Path) -> None:
    """Found by the property above: a course folder named "x\\n" split the error message in two."""
    course = tmp_path / "course"
    (course / "x\n").mkdir(parents=True)
    (course / "01-intro").mkdir()
    (course / "01-intro" / "README.md").write_bytes(b"")
    (course / "x\n" / "README.md").write_bytes(b"\xff\xfe")
    with pytest.raises(ImportError_) as raised:
        import_course(course, "demo", tmp_path / "out")
    assert "\n" not in str(raised.value) and "x\\n/README.md:1:" in str(raised.value)
