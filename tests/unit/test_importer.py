"""Importing a *-For-Beginners style course: quizzes attached by link, unfaithful items left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.knowledge.importer import ImportError_, import_course
from bot.knowledge.reader import read_track

LESSON = """# Lesson {n}

![a diagram](images/d.png)
> Diagram by someone

## [Pre-lecture quiz](https://example.invalid/quiz/{pre}/)

## Introduction

Intro text of lesson {n} with enough words to make a premise sentence for it.

## Main idea

### A detail

The main idea of lesson {n}.

## [Post-lecture quiz](https://example.invalid/quiz/{post}/)

## Assignment

Do the thing.
"""


def option(text: str, correct: bool) -> dict:
    return {"answerText": text, "isCorrect": "true" if correct else "false"}


def make_course(root: Path) -> Path:
    (root / "lessons").mkdir(parents=True)
    for n in (1, 2):
        text = LESSON.format(n=n, pre=2 * n - 1, post=2 * n)
        (root / "lessons" / f"0{n}-lesson-{n}.md").write_text(text)
    quizzes = [
        {"id": 1, "title": "L1: Pre-Lecture Quiz", "quiz": [{"questionText": "pre?", "answerOptions": [option("a", True), option("b", False)]}]},
        {"id": 2, "title": "L1: Post-Lecture Quiz", "quiz": [
            {"questionText": "good?", "answerOptions": [option("yes", True), option("no", False)]},
            {"questionText": "none right?", "answerOptions": [option("a", False), option("b", False)]},
            {"questionText": "two right?", "answerOptions": [option("a", True), option("b", True)]},
        ]},
        {"id": 3, "title": "L2: Pre-Lecture Quiz", "quiz": []},
        {"id": 4, "title": "L2: Post-Lecture Quiz", "quiz": [{"questionText": "fine?", "answerOptions": [option("x", False), option("y", True)]}]},
        {"id": 7, "title": "Orphan: Post-Lecture Quiz", "quiz": []},
    ]  # fmt: skip
    (root / "quizzes").mkdir()
    (root / "quizzes" / "en.json").write_text(json.dumps([{"title": "t", "quizzes": quizzes}]))
    (root / "LICENSE").write_text("MIT licence text")
    return root


def test_import_writes_a_valid_track_with_post_lecture_quizzes(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course")
    dest = tmp_path / "knowledge" / "imported"
    report = import_course(course, "imported", dest)
    result = read_track(dest)
    assert result.problems == []
    track = result.track
    assert track is not None
    assert [lesson.id for lesson in track.lessons] == ["lesson-1", "lesson-2"]
    first = track.lessons[0]
    assert [q.prompt for q in first.quiz] == ["good?"]
    assert first.quiz[0].correct_option == "yes" and first.quiz[0].explanation is None
    assert [q.prompt for q in track.lessons[1].quiz] == ["fine?"]
    assert [s.id for s in first.sections] == ["introduction", "main-idea", "assignment"]
    assert "![" not in first.sections[0].text and "Diagram by" not in first.sections[0].text
    assert "### A detail" in first.sections[1].text
    assert first.premise.startswith("Intro text of lesson 1")
    assert (dest / "LICENSE").read_text() == "MIT licence text"
    assert report.lessons == 2 and report.questions == 2


def test_import_reports_what_it_leaves_out(tmp_path: Path) -> None:
    report = import_course(make_course(tmp_path / "course"), "imported", tmp_path / "out")
    text = "\n".join(report.left_out)
    assert "quiz 2 question 2 ('none right?'): it has 0 correct options" in text
    assert "quiz 2 question 3 ('two right?'): it has 2 correct options" in text
    assert "quizzes linked by no lesson: 7" in text
    assert "pre-lecture quiz 1" in text


def test_import_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course")
    dest = tmp_path / "out"
    import_course(course, "imported", dest)
    with pytest.raises(ImportError_, match="--force"):
        import_course(course, "imported", dest)
    import_course(course, "imported", dest, replace=True)
    assert read_track(dest).ok


def test_import_rejects_a_bad_track_id(tmp_path: Path) -> None:
    with pytest.raises(ImportError_, match="lowercase"):
        import_course(make_course(tmp_path / "course"), "Bad Id", tmp_path / "out")


ML_COURSE = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "ml-for-beginners"


@pytest.mark.skipif(not ML_COURSE.is_dir(), reason=f"the third-party sample course is not at {ML_COURSE}")
def test_imports_the_real_ml_for_beginners_sample(tmp_path: Path) -> None:
    report = import_course(ML_COURSE, "ml-for-beginners", tmp_path / "ml")
    result = read_track(tmp_path / "ml")
    assert result.problems == []
    assert result.track is not None
    assert [lesson.id for lesson in result.track.lessons] == [
        "intro-to-ml", "history-of-ml", "fairness", "regression-tools", "regression-data",
    ]  # fmt: skip
    assert all(len(lesson.quiz) == 3 for lesson in result.track.lessons)
    assert report.questions == 15
    assert "quizzes linked by no lesson: 7-8, 13-50" in report.left_out


def test_import_command_reports_left_out_items_and_validates(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    course = make_course(tmp_path / "course")
    dest = tmp_path / "knowledge" / "imported"
    result = CliRunner().invoke(app, ["import", str(course), "--track", "imported", "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    assert "left out" in result.output and "it has 2 correct options" in result.output
    assert "wrote track 'imported'" in result.output and "2 quiz questions" in result.output
    again = CliRunner().invoke(app, ["import", str(course), "--track", "imported", "--dest", str(dest)])
    assert again.exit_code == 1 and "--force" in again.output


# ---------------------------------------------------------------- odd courses (found by tests/unit/test_fuzz_importer.py)


def lesson_folder(root: Path, name: str, text: str = "# A lesson\n\n## Idea\n\nThe idea.\n") -> None:
    (root / name).mkdir(parents=True)
    (root / name / "README.md").write_text(text, encoding="utf-8")


def test_a_lesson_that_is_not_utf8_stops_the_import_naming_its_file_and_line(tmp_path: Path) -> None:
    lesson_folder(tmp_path / "course", "01-intro")
    (tmp_path / "course" / "01-intro" / "README.md").write_bytes(b"# Caf\xe9\n")
    with pytest.raises(ImportError_, match=r"01-intro/README.md:1: this file is not UTF-8 .*; then import again"):
        import_course(tmp_path / "course", "imported", tmp_path / "out")


def test_lesson_ids_are_made_valid_and_unique_from_any_folder_names(tmp_path: Path) -> None:
    course = tmp_path / "course"
    for name in ("01-intro", "02-intro", "日本語", "a" * 200):
        lesson_folder(course, name, "\ufeff# Title\r\n\r\n## Idea\r\n\r\nThe idea.\r\n")
    import_course(course, "imported", tmp_path / "out")
    result = read_track(tmp_path / "out")
    assert result.problems == [] and result.track is not None
    assert [lesson.id for lesson in result.track.lessons] == ["intro", "intro-2", "a" * 60, "lesson-4"]
    assert all(lesson.title == "Title" for lesson in result.track.lessons)  # the BOM is not part of the title


def test_a_title_too_long_for_a_lesson_is_cut_and_noted(tmp_path: Path) -> None:
    lesson_folder(tmp_path / "course", "01-intro", "# " + "word " * 60 + "\n\n## Idea\n\nThe idea.\n")
    report = import_course(tmp_path / "course", "imported", tmp_path / "out")
    result = read_track(tmp_path / "out")
    assert result.problems == [] and result.track is not None
    assert len(result.track.lessons[0].title) <= 200 and result.track.lessons[0].title.endswith("word…")
    assert "01-intro" not in " ".join(report.left_out) and any("title is cut" in note for note in report.notes)


@pytest.mark.parametrize(
    ("quiz", "why"),
    [
        ('"abc"', "its 'quiz' is not a list of questions"),
        ('["abc"]', "it is not a question"),
        ('[{"questionText": "q?", "answerOptions": {"a": 1}}]', "its answerOptions are not a list of options"),
        ('[{"questionText": "q\\ud800?", "answerOptions": [{"answerText": "a", "isCorrect": "true"}, '
         '{"answerText": "b", "isCorrect": "false"}]}]', "lone surrogate"),
    ],
)  # fmt: skip
def test_a_quiz_of_the_wrong_shape_is_left_out_with_the_reason(tmp_path: Path, quiz: str, why: str) -> None:
    course = tmp_path / "course"
    lesson_folder(course, "01-intro", "# A\n\n[Post-lecture quiz](https://q.invalid/quiz/1/)\n\n## Idea\n\nText.\n")
    (course / "quiz.json").write_text(f'[{{"quizzes": [{{"id": 1, "quiz": {quiz}}}]}}]')
    report = import_course(course, "imported", tmp_path / "out")
    assert why in "\n".join(report.left_out) and report.questions == 0
    assert read_track(tmp_path / "out").ok


@pytest.mark.parametrize("quizzes", ['[{"quizzes": [{"id": Infinity}]}]', "[" * 5000 + "]" * 5000])
def test_a_quiz_file_the_importer_cannot_read_is_a_clear_error_or_ignored(tmp_path: Path, quizzes: str) -> None:
    lesson_folder(tmp_path / "course", "01-intro")
    (tmp_path / "course" / "quiz.json").write_text(quizzes)
    try:
        report = import_course(tmp_path / "course", "imported", tmp_path / "out")
    except ImportError_ as error:
        assert "is not a quiz-app JSON file" in str(error) and "--quizzes" in str(error)
    else:
        assert any("no quiz-app JSON file" in note for note in report.notes)  # too deep to be a quiz file
