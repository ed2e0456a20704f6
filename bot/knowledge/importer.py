"""Import a course laid out like Microsoft's *-For-Beginners courses into a tutorbot track.

Such a course has one Markdown file per lesson and a quiz-app JSON file
(``[{"quizzes": [{"id", "title", "quiz": [{"questionText", "answerOptions": [{"answerText", "isCorrect"}]}]}]}]``).
Each lesson links its pre- and post-lecture quizzes (``.../quiz/N/``); the post-lecture quiz becomes the
lesson's quiz. A question that does not fit the lesson format (no correct option, two of them, too many or
too long options) and a quiz no lesson links are reported and left out, never altered.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.core.lessons import slugify
from bot.knowledge.reader import WORDS_PER_MINUTE, lesson_id_from_path
from bot.knowledge.schema import MAX_OPTION_CHARS, MAX_OPTIONS, MAX_PREMISE_CHARS, MAX_QUESTION_CHARS

_QUIZ_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*/quiz/(\d+)/?)[^)]*\)", re.IGNORECASE)
_QUIZ_HEADING = re.compile(r"^#{1,6}\s*\[[^\]]*\]\([^)\s]*/quiz/\d+/?[^)]*\)\s*$", re.IGNORECASE)
_IMAGE_LINE = re.compile(r"^\s*(\[!\[[^\]]*\]\([^)]*\)\]\([^)]*\)|!\[[^\]]*\]\([^)]*\))\s*$")
_SKIP_NAMES = {"readme.md", "source.md", "license.md", "contributing.md", "code_of_conduct.md", "security.md"}


class ImportError_(RuntimeError):  # noqa: N801 - ImportError is a builtin
    """The course cannot be imported; the message says why and what to do."""


@dataclass
class ImportReport:
    """What an import wrote and what it left out."""

    lessons: int = 0
    questions: int = 0
    left_out: list[str] = field(default_factory=list)  # quiz items not imported, and why
    notes: list[str] = field(default_factory=list)  # other changes worth knowing (images removed, ...)


@dataclass
class _LessonSource:
    path: Path
    lesson_id: str
    text: str


def find_lessons(src: Path) -> list[_LessonSource]:
    """Lesson files of a course: ``*/README.md`` per lesson folder, else ``lessons/*.md``, else ``*.md``."""
    readmes = sorted(p for p in src.rglob("README.md") if p.parent != src)
    if readmes:
        found = [(p, lesson_id_from_path(p.parent)) for p in readmes]
    else:
        folder = src / "lessons" if (src / "lessons").is_dir() else src
        found = [(p, lesson_id_from_path(p)) for p in sorted(folder.glob("*.md")) if p.name.lower() not in _SKIP_NAMES]
    return [_LessonSource(path, lesson_id, path.read_text(encoding="utf-8")) for path, lesson_id in found]


def find_quiz_file(src: Path) -> Path | None:
    """The first JSON file under ``src`` shaped like the quiz app's translations file."""
    for path in sorted(src.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, list) and data and isinstance(data[0], dict) and "quizzes" in data[0]:
            return path
    return None


def _load_quizzes(path: Path) -> dict[int, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {int(quiz["id"]): quiz for block in data for quiz in block["quizzes"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ImportError_(
            f"{path} is not a quiz-app JSON file ({error}); pass the right file with --quizzes"
        ) from error


def post_lecture_quiz_id(text: str, quizzes: dict[int, dict[str, Any]]) -> tuple[int | None, list[int]]:
    """The id of the quiz a lesson links as its post-lecture quiz, and every quiz id it links."""
    links = [(label.lower(), int(number)) for label, _url, number in _QUIZ_LINK.findall(text)]
    linked = list(dict.fromkeys(number for _, number in links))
    post = [number for label, number in links if "post" in label]
    if not post:
        post = [n for n in linked if "post" in str(quizzes.get(n, {}).get("title", "")).lower()]
    if not post and len(linked) >= 2:
        post = [linked[-1]]
    return (post[0] if post else None), linked


def _question_problem(item: dict[str, Any]) -> str | None:
    """Why a quiz-app question cannot be imported as it is, or None when it can."""
    question = str(item.get("questionText", "")).strip()
    options = item.get("answerOptions") or []
    correct = sum(1 for option in options if str(option.get("isCorrect", "")).lower() == "true")
    if not question:
        return "it has no question text"
    if correct != 1:
        return f"it has {correct} correct options (exactly one is needed)"
    if not 2 <= len(options) <= MAX_OPTIONS:
        return f"it has {len(options)} options (2 to {MAX_OPTIONS} fit a quiz poll)"
    if len(question) > MAX_QUESTION_CHARS:
        return f"its question is over {MAX_QUESTION_CHARS} characters"
    if any(len(str(option.get("answerText", "")).strip()) > MAX_OPTION_CHARS for option in options):
        return f"an option is over {MAX_OPTION_CHARS} characters"
    if any(not str(option.get("answerText", "")).strip() for option in options):
        return "an option is empty"
    return None


def _convert_question(item: dict[str, Any]) -> dict[str, Any]:
    options = []
    for option in item["answerOptions"]:
        entry: dict[str, Any] = {"text": str(option["answerText"]).strip()}
        if str(option.get("isCorrect", "")).lower() == "true":
            entry["correct"] = True
        options.append(entry)
    return {"question": str(item["questionText"]).strip(), "options": options}


def _clean_body(text: str) -> tuple[str, str, int]:
    """(title, body, images removed): quiz-link headings and image-only lines dropped, the preamble placed."""
    lines = text.splitlines()
    title = ""
    kept: list[str] = []
    images = 0
    in_fence = caption = False
    for line in lines:
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence:
            if not title and line.startswith("# "):
                title = line[2:].strip()
                continue
            if _QUIZ_HEADING.match(line):
                continue
            if _IMAGE_LINE.match(line):
                images += 1
                caption = True
                continue
            if caption and line.lstrip().startswith(">"):
                continue  # the removed image's caption
            caption = caption and not line.strip()
        kept.append(line.rstrip())
    # Text before the first "##" belongs to the introduction: under the lesson's own "## Introduction"
    # heading when that is the first section, otherwise under the reader's implicit introduction.
    first = next((i for i, line in enumerate(kept) if line.startswith("## ")), None)
    if first is not None and slugify(kept[first][3:]) == "introduction":
        preamble = [line for line in kept[:first] if line.strip()]
        if preamble:
            kept = [kept[first], "", *kept[:first], *kept[first + 1 :]]
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return title, body, images


def _premise(body: str) -> str:
    """The lesson's first prose paragraph, cut at a sentence end to fit the premise limit."""
    for paragraph in re.split(r"\n\s*\n", body):
        plain = paragraph.strip()
        if not plain or plain[0] in "#>|-*`![<" or len(plain) < 40:
            continue
        plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", " ".join(plain.split()))
        if len(plain) <= MAX_PREMISE_CHARS:
            return plain
        sentences = re.split(r"(?<=[.!?])\s+", plain)
        premise = ""
        for sentence in sentences:
            if len(premise) + len(sentence) + 1 > MAX_PREMISE_CHARS:
                break
            premise = f"{premise} {sentence}".strip()
        return premise or plain[: MAX_PREMISE_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return "An imported lesson."


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in spans)


def import_course(
    src: Path, track_id: str, dest: Path, title: str | None = None, quiz_file: Path | None = None,
    replace: bool = False,
) -> ImportReport:  # fmt: skip
    """Write the course at ``src`` as track ``track_id`` into folder ``dest``."""
    if slugify(track_id) != track_id:
        raise ImportError_(
            f"track id '{track_id}' must be lowercase letters, digits and hyphens, e.g. '{slugify(track_id)}'"
        )
    if not src.is_dir():
        raise ImportError_(f"{src} is not a folder; point SRC at the course's folder")
    if dest.exists() and any(dest.iterdir()) and not replace:
        raise ImportError_(f"{dest} already exists; pass --force to replace it or --dest to write elsewhere")
    lessons = find_lessons(src)
    if not lessons:
        raise ImportError_(f"no lesson Markdown files found in {src}")
    quiz_path = quiz_file or find_quiz_file(src)
    quizzes = _load_quizzes(quiz_path) if quiz_path else {}

    report = ImportReport()
    if quiz_path is None:
        report.notes.append(f"no quiz-app JSON file found in {src}: the lessons have no quizzes (use --quizzes FILE)")
    staging = dest.with_name(dest.name + ".importing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    used_quizzes: set[int] = set()
    order: list[str] = []
    for number, source in enumerate(lessons, start=1):
        lesson_title, body, images = _clean_body(source.text)
        post_id, linked = post_lecture_quiz_id(source.text, quizzes)
        used_quizzes.update(linked)
        questions = []
        if post_id is not None and post_id in quizzes:
            for index, item in enumerate(quizzes[post_id].get("quiz", []), start=1):
                problem = _question_problem(item)
                if problem:
                    report.left_out.append(
                        f"{source.path.name}: quiz {post_id} question {index} "
                        f"('{str(item.get('questionText', ''))[:60]}'): {problem}"
                    )
                else:
                    questions.append(_convert_question(item))
        elif post_id is not None:
            report.left_out.append(f"{source.path.name}: links quiz {post_id}, which the quiz file does not have")
        for other in linked:
            if other != post_id and other in quizzes:
                report.left_out.append(
                    f"{source.path.name}: pre-lecture quiz {other} (only post-lecture quizzes are imported)"
                )
        if images:
            report.notes.append(
                f"{source.path.name}: {images} image(s) and their captions removed (images are not lesson text)"
            )
        words = len(body.split())
        front = {
            "id": source.lesson_id,
            "title": lesson_title or source.lesson_id.replace("-", " ").capitalize(),
            "minutes": max(1, min(60, math.ceil(words / WORDS_PER_MINUTE))),
            "premise": _premise(body),
        }
        if questions:
            front["quiz"] = questions
        header = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000)
        content = f"---\n{header}---\n\n# {front['title']}\n\n{body}\n"
        (staging / f"{number:02d}-{source.lesson_id}.md").write_text(content, encoding="utf-8")
        order.append(source.lesson_id)
        report.lessons += 1
        report.questions += len(questions)
    unlinked = sorted(set(quizzes) - used_quizzes)
    if unlinked:
        report.left_out.append(f"quizzes linked by no lesson: {_ranges(unlinked)}")

    track_title = title or track_id.replace("-", " ").capitalize()
    toml = (
        f"id = {json.dumps(track_id)}\n"
        f"title = {json.dumps(track_title)}\n"
        f"description = {json.dumps(f'{track_title}: {report.lessons} lessons imported from {src.name}.')}\n"
        f"order = [{', '.join(json.dumps(lesson_id) for lesson_id in order)}]\n"
    )
    (staging / "track.toml").write_text(toml, encoding="utf-8")
    for licence in ("LICENSE", "LICENSE.md", "LICENSE.txt", "SOURCE.md"):
        if (src / licence).is_file():
            # Third-party text keeps its licence and provenance beside it.
            shutil.copyfile(src / licence, staging / (licence if licence != "SOURCE.md" else "SOURCE.txt"))
    if dest.exists():
        shutil.rmtree(dest)
    staging.replace(dest)
    return report
