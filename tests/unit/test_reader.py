"""Reading lessons and tracks: front matter, sections, plain Markdown, ordering."""

from __future__ import annotations

from pathlib import Path

from bot.knowledge.reader import Problem, read_lesson, read_track
from tests.helpers import front_matter, write_lesson, write_track


def test_reads_front_matter_sections_and_quiz(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "01-distillation.md", front_matter())
    problems: list[Problem] = []
    lesson = read_lesson(path, problems)
    assert problems == []
    assert lesson is not None
    assert (lesson.id, lesson.title, lesson.minutes) == ("distillation", "Model distillation", 7)
    assert [s.id for s in lesson.sections] == ["teacher-and-student", "where-the-gap-shows"]
    assert lesson.sections[0].heading == "Teacher and student"
    assert "student model learns" in lesson.sections[0].text
    assert "One more" not in lesson.sections[0].text and "narrow tasks" in lesson.sections[1].text
    assert lesson.key_terms == (("Teacher", "The big model whose outputs are the targets."),)
    question = lesson.quiz[0]
    assert question.correct_index == 1 and question.correct_option == "option 1"
    assert question.section == "teacher-and-student"


def test_section_line_numbers_point_at_headings(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter())
    lesson = read_lesson(path, [])
    assert lesson is not None
    lines = path.read_text().splitlines()
    for section in lesson.sections:
        assert lines[section.line - 1] == f"## {section.heading}"


def test_plain_markdown_is_a_lesson_with_title_from_heading(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "03-plain-notes.md", None, "# My notes\n\nSome intro.\n\n## Part one\n\nText here.\n")
    problems: list[Problem] = []
    lesson = read_lesson(path, problems)
    assert problems == []
    assert lesson is not None
    assert (lesson.id, lesson.title, lesson.quiz) == ("plain-notes", "My notes", ())
    assert [s.id for s in lesson.sections] == ["introduction", "part-one"]
    assert lesson.minutes == 1


def test_text_before_an_introduction_heading_is_the_overview_and_units_know_their_lines(tmp_path: Path) -> None:
    body = "# Course\n\nA sketchnote.\n\n## Introduction\n\nFirst idea. Second idea.\n\n- an item\n"
    path = write_lesson(tmp_path, "01-course.md", None, body)
    problems: list[Problem] = []
    lesson = read_lesson(path, problems)
    assert problems == [] and lesson is not None
    assert [s.id for s in lesson.sections] == ["overview", "introduction"]
    lines = path.read_text().splitlines()
    units = lesson.sections[1].units
    assert [u.text for u in units] == ["First idea.", "Second idea.", "an item"]
    assert all(u.text.split()[0] in lines[u.line - 1] for u in units)  # each unit's line in the file


def test_headings_inside_code_fences_do_not_start_sections(tmp_path: Path) -> None:
    body = "# T\n\n## Real\n\n```python\n## not a heading\nx = 1\n```\n"
    lesson = read_lesson(write_lesson(tmp_path, "a.md", None, body), [])
    assert lesson is not None
    assert [s.id for s in lesson.sections] == ["real"]
    assert "## not a heading" in lesson.sections[0].text


def test_track_orders_lessons_by_order_then_file_name(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "demo", order=["lesson-3"], lessons=3)
    result = read_track(folder)
    assert result.ok, result.problems
    assert result.track is not None
    assert [lesson.id for lesson in result.track.lessons] == ["lesson-3", "lesson-1", "lesson-2"]


def test_readme_and_non_markdown_files_in_a_track_are_ignored(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "demo")
    (folder / "README.md").write_text("notes for authors, not a lesson")
    (folder / "diagram.png").write_bytes(b"\x89PNG\x00\x00")
    result = read_track(folder)
    assert result.ok, result.problems
    assert result.track is not None and len(result.track.lessons) == 1


def test_the_bundled_track_is_valid_and_complete() -> None:
    folder = Path(__file__).resolve().parents[2] / "knowledge" / "ai-foundations"
    result = read_track(folder)
    assert result.problems == []
    track = result.track
    assert track is not None
    assert [lesson.id for lesson in track.lessons] == [
        "distillation",
        "attention",
        "tokenization-economics",
        "rlhf-vs-dpo",
    ]
    for lesson in track.lessons:
        assert len(lesson.quiz) == 10, lesson.id
        assert all(q.explanation and q.section for q in lesson.quiz), lesson.id
        assert 2 <= len(lesson.practice) <= 3, lesson.id
        assert lesson.key_terms and lesson.premise, lesson.id
        words = sum(len(section.text.split()) for section in lesson.sections)
        assert 1000 <= words <= 1800, (lesson.id, words)  # about a 7-minute read
