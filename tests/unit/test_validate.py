"""Every kind of lesson error is reported as file:line: what is wrong and how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.knowledge.reader import read_lesson, validate_path
from tests.helpers import BODY, front_matter, question, write_lesson, write_track


def problems_of(path: Path) -> list[str]:
    return [str(problem) for problem in validate_path(path)]


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def test_a_valid_track_has_no_problems(tmp_path: Path) -> None:
    assert problems_of(write_track(tmp_path / "demo", lessons=2)) == []


def test_bad_front_matter_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("---\nid: a\ntitle: [unclosed\nminutes: 3\n---\n# A\n\n## S\n\ntext\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:")
    assert "not valid YAML" in problem and "indentation" in problem


def test_unknown_front_matter_field_suggests_the_right_one(tmp_path: Path) -> None:
    front = front_matter()
    front["key_term"] = front.pop("key_terms")
    path = write_lesson(tmp_path, "a.md", front)
    [problem] = problems_of(path)
    assert problem == f"{path}:{line_of(path, 'key_term:')}: unknown field 'key_term'; did you mean 'key_terms'?"


def test_missing_required_field_says_to_add_it(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter(premise=None))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:2: 'premise' is missing; add it")


def test_bad_lesson_id_explains_the_pattern(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter("Bad Id"))
    [problem] = problems_of(path)
    assert f"{path}:{line_of(path, 'id: Bad Id')}:" in problem and "lowercase letters" in problem


def test_duplicate_lesson_ids_in_a_track(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "demo")
    second = write_lesson(folder, "02-copy.md", front_matter("lesson-1"))
    [problem] = problems_of(folder)
    assert problem.startswith(f"{second}:{line_of(second, 'id: lesson-1')}: duplicate lesson id 'lesson-1'")
    assert "01-lesson.md" in problem


def test_duplicate_track_ids_across_folders(tmp_path: Path) -> None:
    write_track(tmp_path / "a", track_id="same")
    write_track(tmp_path / "b", track_id="same")
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{tmp_path / 'b' / 'track.toml'}:1: duplicate track id 'same'")


def test_duplicate_section_headings(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter(), BODY + "\n## Teacher and student\n\nAgain.\n")
    [problem] = problems_of(path)
    assert problem.startswith(
        f"{path}:{len(path.read_text().splitlines()) - 2}: duplicate section id 'teacher-and-student'"
    )


@pytest.mark.parametrize("marks", [[], [0, 2]])
def test_question_needs_exactly_one_correct_option(tmp_path: Path, marks: list[int]) -> None:
    item = question()
    item["options"] = [{"text": f"o{i}", **({"correct": True} if i in marks else {})} for i in range(3)]
    path = write_lesson(tmp_path, "a.md", front_matter(quiz=[item]))
    [problem] = problems_of(path)
    assert problem == (
        f"{path}:{line_of(path, '- question:')}: quiz question 1 has {len(marks)} correct options; "
        "mark exactly one option 'correct: true'"
    )


def test_too_many_options_for_a_telegram_poll(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter(quiz=[question(n=11)]))
    [problem] = problems_of(path)
    assert f"{path}:{line_of(path, 'options:')}: quiz question 1, 'options'" in problem
    assert "at most 10" in problem and "Telegram" in problem


def test_option_text_too_long_for_a_telegram_poll(tmp_path: Path) -> None:
    item = question()
    item["options"][0]["text"] = "x" * 101
    path = write_lesson(tmp_path, "a.md", front_matter(quiz=[item]))
    [problem] = problems_of(path)
    assert f"{path}:{line_of(path, 'x' * 101)}: quiz question 1, option 1, 'text'" in problem
    assert "100 characters" in problem


def test_explanation_over_200_characters(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter(quiz=[question(explanation="y" * 201)]))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:{line_of(path, 'explanation:')}: quiz question 1, 'explanation'")
    assert "at most 200 characters" in problem


def test_section_reference_that_does_not_exist(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter(quiz=[question(section="teacher-and-students")]))
    [problem] = problems_of(path)
    assert problem == (
        f"{path}:{line_of(path, 'section: teacher-and-students')}: quiz question 1 refers to section "
        "'teacher-and-students', which this lesson does not have; did you mean 'teacher-and-student'?"
    )


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes("# Caf\u00e9\n\n## S\n\n".encode() + "ok\nna\u00efve\n".encode("latin-1"))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:6: this file is not UTF-8") and "save it with UTF-8" in problem


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"# Title\n\x00\x01\x02binary")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:2: this is a binary file")


def test_empty_lesson(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter(quiz=[]), "# Only a title\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:1: the lesson has no text")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("")
    assert any("no text" in p for p in problems_of(path))


def test_front_matter_never_closed(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("---\nid: a\n# A\n\n## S\n\ntext\n")
    assert any(p.startswith(f"{path}:1: front matter opened with '---' is never closed") for p in problems_of(path))


def test_track_without_track_toml(tmp_path: Path) -> None:
    write_lesson(tmp_path / "orphan", "a.md", front_matter())
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{tmp_path / 'orphan' / 'track.toml'}:1: track folder has no track.toml")


def test_order_naming_a_missing_lesson(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "demo", order=["lesson-1", "lesson-9"])
    [problem] = problems_of(folder)
    assert problem.startswith(f"{folder / 'track.toml'}:4: 'order' names lesson 'lesson-9'")


def test_validate_command_prints_problems_and_exits_1(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "demo")
    write_lesson(folder, "02-bad.md", front_matter("bad", quiz=[question(n=11)]))
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 1
    assert f"{folder / '02-bad.md'}:" in result.output and "1 problem(s) found" in result.output


def test_validate_command_exits_0_on_the_bundled_track() -> None:
    folder = Path(__file__).resolve().parents[2] / "knowledge"
    result = CliRunner().invoke(app, ["validate", str(folder)])
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


# ---------------------------------------------------------------- related lessons


def test_related_lessons_in_the_same_track_and_another_are_valid(tmp_path: Path) -> None:
    write_track(tmp_path / "other", track_id="other", lessons=1)
    folder = write_track(tmp_path / "demo", lessons=2)
    write_lesson(folder, "01-lesson.md", front_matter("lesson-1", related=["lesson-2", "other/lesson-1"]))
    assert problems_of(tmp_path) == []
    assert problems_of(folder) == []
    assert problems_of(folder / "01-lesson.md") == []


def test_a_missing_related_lesson_is_a_file_line_error_with_the_closest_id(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "demo", lessons=2)
    path = write_lesson(folder, "01-lesson.md", front_matter("lesson-1", related=["lesson-2", "lesson-3"]))
    expected = (f"{path}:{line_of(path, '- lesson-3')}: related lesson 'lesson-3': track 'demo' has no lesson "
                "'lesson-3'; did you mean 'lesson-2'?")  # fmt: skip
    assert problems_of(tmp_path) == [expected]
    assert problems_of(folder) == [expected]
    assert problems_of(path) == [expected]


def test_a_related_lesson_in_a_track_that_does_not_exist_names_the_track(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "demo", lessons=1)
    path = write_lesson(folder, "01-lesson.md", front_matter("lesson-1", related=["nowhere/lesson-1"]))
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{path}:{line_of(path, '- nowhere/lesson-1')}: related lesson 'nowhere/lesson-1': "
                              "there is no track 'nowhere'")  # fmt: skip


def test_a_related_entry_that_is_not_an_id_explains_the_format(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter(related=["Not An Id"]))
    [problem] = problems_of(path)
    assert f"{path}:{line_of(path, '- Not An Id')}:" in problem and "track-id/lesson-id" in problem


def test_a_broken_lesson_in_another_track_does_not_make_its_related_entries_errors_here(tmp_path: Path) -> None:
    other = write_track(tmp_path / "other", track_id="other", lessons=1)
    broken = write_lesson(other, "01-lesson.md", front_matter("lesson-1", minutes="seven"))
    folder = write_track(tmp_path / "demo", lessons=1)
    write_lesson(folder, "01-lesson.md", front_matter("lesson-1", related=["other/lesson-1"]))
    for where in (tmp_path, folder):
        problems = problems_of(where)
        assert all(problem.startswith(str(broken)) for problem in problems), problems  # only the broken file's own


def test_a_lesson_listing_itself_twice_or_a_bare_id_of_another_track_is_explained(tmp_path: Path) -> None:
    write_track(tmp_path / "other", track_id="other", lessons=2)
    folder = write_track(tmp_path / "demo", lessons=1)
    path = write_lesson(folder, "01-lesson.md", front_matter("lesson-1", related=["lesson-1", "other/lesson-2",
                                                                                  "other/lesson-2", "lesson-2"]))  # fmt: skip
    assert [problem.split(": ", 1)[1] for problem in problems_of(folder)] == [
        "related lesson 'lesson-1': that is this lesson itself; remove it",
        "related lesson 'other/lesson-2': listed twice; remove one",
        "related lesson 'lesson-2': track 'demo' has no lesson 'lesson-2'; did you mean 'other/lesson-2'?",
    ]
    assert all(problem.startswith(f"{path}:") for problem in problems_of(folder))


def test_a_missing_lesson_in_a_track_with_other_problems_is_still_reported(tmp_path: Path) -> None:
    other = write_track(tmp_path / "other", track_id="other", lessons=2)
    write_lesson(other, "02-lesson.md", front_matter("lesson-2", minutes="seven"))  # broken, but not the one named
    folder = write_track(tmp_path / "demo", lessons=1)
    path = write_lesson(folder, "01-lesson.md", front_matter("lesson-1", related=["other/nope", "other/lesson-2"]))
    problems = [p for p in problems_of(tmp_path) if p.startswith(str(path))]
    assert len(problems) == 1 and "related lesson 'other/nope': track 'other' has no lesson 'nope'" in problems[0]


def test_a_track_whose_track_toml_is_broken_is_left_to_its_own_problems(tmp_path: Path) -> None:
    other = write_track(tmp_path / "other", track_id="other", lessons=1)
    (other / "track.toml").write_text('id = "other"\ntitle = \n')
    folder = write_track(tmp_path / "demo", lessons=1)
    path = write_lesson(folder, "01-lesson.md", front_matter("lesson-1", related=["other/lesson-1"]))
    assert not [p for p in problems_of(tmp_path) if p.startswith(str(path))]


# ---------------------------------------------------------------- odd input (found by tests/unit/test_fuzz_lessons.py)


@pytest.mark.parametrize("separator", ["\u2028", "\x0c", "\x1e", "\x85"])
def test_a_line_separator_inside_a_paragraph_neither_splits_it_nor_moves_the_next_section(
    tmp_path: Path, separator: str
) -> None:
    path = tmp_path / "a.md"
    path.write_text(f"# T\n\nintro{separator}more\n\n## A\n\ntext a\n", encoding="utf-8")
    lesson = read_lesson(path, [])
    assert lesson is not None
    assert [(s.id, s.line, s.text) for s in lesson.sections] == [
        ("introduction", 2, f"intro{separator}more"),
        ("a", 5, "text a"),  # the heading's own line is not part of the section's text
    ]


def test_a_unicode_line_separator_in_front_matter_does_not_shift_the_lines_of_problems(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("---\nid: a\ntitle: T\u2028x\nminutes: 1\npremise: p\nquiz: [1]\n---\n# T\n\n## A\n\ntext\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:6: quiz question 1:")  # the line of 'quiz: [1]', as an editor counts


def test_a_control_character_in_front_matter_is_a_one_line_problem_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("---\nid: a\ntitle: T\x1f\n---\n# T\n\n## A\n\ntext\n")
    assert problems_of(path) == [
        f"{path}:3: front matter has a control character (U+001F) YAML does not allow; delete it"
    ]


def test_lone_cr_line_ends_count_as_lines_in_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"# T\r\r## A\r\rcaf\xe9\r")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:5: this file is not UTF-8")


def test_a_plain_lesson_whose_title_heading_is_empty_is_a_problem(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", None, "# \n\n## A\n\ntext\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:1: a plain Markdown lesson needs a '# Title' line with its title")


def test_a_key_term_named_like_a_field_gets_the_key_terms_hint(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter(key_terms={"title": None}))
    [problem] = problems_of(path)
    assert f"{path}:{line_of(path, 'title: null')}: key term 'title': input should be a valid string" in problem
    assert "'Term: one-sentence definition'" in problem and "short title" not in problem


def test_a_quiz_section_that_is_not_text_explains_section_ids(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter(quiz=[question(section=5)]))
    [problem] = problems_of(path)
    assert "quiz question 1, 'section'" in problem and "'##' heading in lowercase" in problem


def test_front_matter_that_is_not_a_mapping_says_how_to_write_it(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("---\n- a list\n---\n# T\n\n## A\n\ntext\n")
    [problem] = problems_of(path)
    assert problem == (f"{path}:2: front matter must be 'field: value' lines; write each field (id, title, minutes, "
                       "premise, ...) on its own line as 'name: value'")  # fmt: skip


def test_a_field_given_twice_is_a_problem_not_silently_the_last_one(tmp_path: Path) -> None:
    path = write_lesson(tmp_path, "a.md", front_matter())
    text = path.read_text()
    path.write_text(text.replace("quiz:", "title: Again\nquiz:", 1))  # a second title, after the first
    [problem] = problems_of(path)
    assert problem == (f"{path}:{line_of(path, 'title: Again')}: 'title' is given twice (also at line "
                       f"{line_of(path, 'title: Model')}); YAML keeps only the last one, so remove or rename one")  # fmt: skip


def test_a_key_given_twice_inside_a_quiz_option_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    front = "---\nid: a\ntitle: T\nminutes: 1\npremise: p\nquiz:\n  - question: q\n    options:\n"
    path.write_text(front + "      - {text: x, text: y, correct: true}\n      - text: z\n---\n# T\n\n## A\n\ntext\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:9: 'text' is given twice (also at line 9)")
