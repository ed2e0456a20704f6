"""Import a course laid out like Microsoft's *-For-Beginners courses into a tutorbot track.

Such a course has one Markdown file per lesson and a quiz-app JSON file
(``[{"quizzes": [{"id", "title", "quiz": [{"questionText", "answerOptions": [{"answerText", "isCorrect"}]}]}]}]``).
Each lesson links its pre- and post-lecture quizzes (``.../quiz/N/``); the post-lecture quiz becomes the
lesson's quiz. A question that does not fit the lesson format (no correct option, two of them, too many or
too long options) and a quiz no lesson links are reported and left out, never altered.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.core.lessons import slugify
from bot.knowledge.course_source import (
    LICENCES,
    ImportError_,
    LessonSource,
    find_quiz_file,
    load_quizzes,
    read_lessons,
    refused_reads,
)
from bot.knowledge.reader import TRACK_FILE, WORDS_PER_MINUTE
from bot.knowledge.safe_files import (
    FolderListing,
    UnsafeFile,
    list_folder,
    read_bytes,
    replace_folder,
    staging_folder,
    tidy_after_crash,
)
from bot.knowledge.schema import (
    MAX_OPTION_CHARS,
    MAX_OPTIONS,
    MAX_PREMISE_CHARS,
    MAX_QUESTION_CHARS,
    MAX_TITLE_CHARS,
)

log = logging.getLogger(__name__)
_QUIZ_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*/quiz/(\d+)/?)[^)]*\)", re.IGNORECASE)
_QUIZ_HEADING = re.compile(r"^#{1,6}\s*\[[^\]]*\]\([^)\s]*/quiz/\d+/?[^)]*\)\s*$", re.IGNORECASE)
_IMAGE_LINE = re.compile(r"^\s*(\[!\[[^\]]*\]\([^)]*\)\]\([^)]*\)|!\[[^\]]*\]\([^)]*\))\s*$")

__all__ = ["ImportError_", "ImportReport", "import_course", "post_lecture_quiz_id"]


@dataclass
class ImportReport:
    """What an import wrote and what it left out."""

    lessons: int = 0
    questions: int = 0
    left_out: list[str] = field(default_factory=list)  # quiz items not imported, and why
    notes: list[str] = field(default_factory=list)  # other changes worth knowing (images removed, ...)


def _check_target(dest: Path, replace: bool) -> None:
    """Refuse a target that is not a track folder (so --force never deletes anything else) or that needs --force."""
    if dest.is_symlink():
        raise ImportError_(f"{dest} is a symbolic link; pass the real folder with --dest")
    if not dest.exists():
        return
    if not dest.is_dir():
        raise ImportError_(f"{dest} is a file, not a track folder; choose another --dest")
    if not any(dest.iterdir()):
        return
    track_file = dest / TRACK_FILE
    if not track_file.is_file() or track_file.is_symlink():
        raise ImportError_(
            f"{dest} holds files but no {TRACK_FILE}, so it is not a track and import will not replace it "
            "(not even with --force); choose another --dest, or empty the folder yourself"
        )
    if not replace:
        raise ImportError_(f"{dest} already holds a track; pass --force to replace it or --dest to write elsewhere")


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


def _question_problem(item: object) -> str | None:
    """Why a quiz-app question cannot be imported as it is, or None when it can."""
    if not isinstance(item, dict):
        return "it is not a question (an object with questionText and answerOptions)"
    question = str(item.get("questionText", "")).strip()
    options = item.get("answerOptions") or []
    if not isinstance(options, list) or not all(isinstance(option, dict) for option in options):
        return "its answerOptions are not a list of options (objects with answerText and isCorrect)"
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
    texts = [question, *(str(option.get("answerText", "")) for option in options)]
    if not all(_encodable(text) for text in texts):
        return "its text has a lone surrogate (half of a character), which no UTF-8 file can hold"
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # JSON may carry "\ud800" escapes
        return False
    return True


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
    if tidy_after_crash(dest):
        log.warning("put back %s, which an interrupted import had moved aside", dest)
    _check_target(dest, replace)
    try:
        listing = list_folder(src)
    except UnsafeFile as error:
        raise ImportError_(str(error)) from None
    refused, skipped = refused_reads(src, listing, quiz_file is not None)
    if refused:
        # Stop rather than import the rest: a track silently missing a lesson or its quizzes is worse than
        # no track, and a link out of a course may be an attempt to publish a private file.
        raise ImportError_(
            "the course has entries import does not read, so nothing was written:\n  "
            + "\n  ".join(refused)
            + "\nput a plain file in place of each (or delete it), then import again"
        )
    try:
        lessons = read_lessons(listing)
    except UnsafeFile as error:  # it changed since it was listed
        raise ImportError_(f"{error}; nothing was written") from None
    if not lessons:
        raise ImportError_(f"no lesson Markdown files found in {src}")
    quiz_path = quiz_file or find_quiz_file(listing)
    quizzes = load_quizzes(quiz_path) if quiz_path else {}

    report = ImportReport(notes=skipped)
    if quiz_path is None:
        report.notes.append(f"no quiz-app JSON file found in {src}: the lessons have no quizzes (use --quizzes FILE)")
    staging = staging_folder(dest)
    try:
        _write_track(listing, track_id, title, lessons, quizzes, staging, report)
        replace_folder(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def _write_track(listing: FolderListing, track_id: str, title: str | None, lessons: list[LessonSource],
                 quizzes: dict[int, dict[str, Any]], staging: Path, report: ImportReport) -> None:  # fmt: skip
    """Write the track's files into ``staging``, noting in ``report`` what was left out."""
    used_quizzes: set[int] = set()
    order: list[str] = []
    for number, source in enumerate(lessons, start=1):
        lesson_title, body, images = _clean_body(source.text)
        if len(lesson_title) > MAX_TITLE_CHARS:
            lesson_title = lesson_title[: MAX_TITLE_CHARS - 1].rsplit(" ", 1)[0].rstrip() + "…"
            report.notes.append(f"{source.path.name}: its title is cut to {MAX_TITLE_CHARS} characters")
        post_id, linked = post_lecture_quiz_id(source.text, quizzes)
        used_quizzes.update(linked)
        questions = []
        if post_id is not None and post_id in quizzes:
            items = quizzes[post_id].get("quiz", [])
            if not isinstance(items, list):
                report.left_out.append(f"{source.path.name}: quiz {post_id}: its 'quiz' is not a list of questions")
                items = []
            for index, item in enumerate(items, start=1):
                problem = _question_problem(item)
                if problem:
                    asked = str(item.get("questionText", "")) if isinstance(item, dict) else ""
                    report.left_out.append(
                        f"{source.path.name}: quiz {post_id} question {index} ('{asked[:60]}'): {problem}"
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
        f"description = {json.dumps(f'{track_title}: {report.lessons} lessons imported from {listing.root.name}.')}\n"
        f"order = [{', '.join(json.dumps(lesson_id) for lesson_id in order)}]\n"
    )
    (staging / "track.toml").write_text(toml, encoding="utf-8")
    for licence in LICENCES:
        if Path(licence) in listing.files:
            # Third-party text keeps its licence and provenance beside it.
            text = read_bytes(listing.root / licence, listing.root)
            (staging / (licence if licence != "SOURCE.md" else "SOURCE.txt")).write_bytes(text)
