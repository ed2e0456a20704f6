"""Read tracks and lessons from files, reporting every problem as ``file:line: what is wrong and how to fix it``.

Reading never raises on bad content: it returns what it could build plus a list of ``Problem``s, so the
validator can report everything at once and ingest can leave a broken track's published index alone.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from markdown_it import MarkdownIt
from pydantic import ValidationError

from bot.core.lessons import Lesson, Question, Section, Track, slugify
from bot.knowledge.schema import FIX_HINTS, FrontMatter, QuestionSpec, TrackSpec
from bot.knowledge.units import section_units

TRACK_FILE = "track.toml"
WORDS_PER_MINUTE = 200
MAX_HEADING_CHARS = 100  # headings go into every chunk the embedder reads, and into chat buttons
_NUMERIC_PREFIX = re.compile(r"^\d+[-_ .]*")
_LINE_END = re.compile(r"\r\n?|\n")
# PyYAML (YAML 1.1) also ends lines at these; editors and YAML 1.2 do not, so they would shift every line number
# after one. Front matter is read with them as spaces.
_YAML_ONLY_BREAKS = str.maketrans("\x85\u2028\u2029", "   ")
_markdown = MarkdownIt("commonmark")


UNSHOWABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}  # control, invisible (bidi, zero-width) and unencodable characters


def shown_name(name: str) -> str:
    """A file name as it can go into one line of a message: control, invisible and unencodable characters
    escaped (a name holding a line break would otherwise forge a second line), and cut short."""
    text = "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in UNSHOWABLE else ch for ch in name
    )
    return text if len(text) <= 120 else f"{text[:80]}…{text[-30:]}"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a lesson or track file."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{shown_name(str(self.path))}:{self.line}: {self.message}"


@dataclass
class TrackResult:
    """A track as read from its folder, with the problems found; ``track`` is None when it is unusable."""

    folder: Path
    track: Track | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong with the track."""
        return self.track is not None and not self.problems


# ---------------------------------------------------------------- files


def _line_at(data: bytes, index: int) -> int:
    """The line of byte ``index``, lines ending at ``\\n``, ``\\r\\n`` or a lone ``\\r`` (as editors count them)."""
    return len(_LINE_END.findall(data[:index].decode("latin-1"))) + 1


def read_text(path: Path, problems: list[Problem]) -> str | None:
    """The file's text with ``\\n`` line ends, or None with a problem when it is binary or not UTF-8."""
    return decode_text(path.read_bytes(), path, problems)


def decode_text(data: bytes, path: Path, problems: list[Problem]) -> str | None:
    """The text of file ``path`` from its bytes, as ``read_text`` reads it.

    Only ``\\n`` ends a line from here on (never ``str.splitlines``, which also splits at form feeds and Unicode
    line separators), so line numbers and section text agree with the file as an editor shows it.
    """
    if b"\x00" in data:
        line = _line_at(data, data.index(b"\x00"))
        problems.append(Problem(path, line, "this is a binary file, not Markdown text; remove it or save it as text"))
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = _line_at(data, error.start)
        problems.append(
            Problem(path, line, f"this file is not UTF-8 (byte 0x{data[error.start]:02x}); save it with UTF-8 encoding")
        )
        return None
    return _LINE_END.sub("\n", text.removeprefix("\ufeff"))


# ---------------------------------------------------------------- YAML line numbers


def _node_at(node: yaml.Node | None, loc: Iterable[Any], key_node: bool = False) -> yaml.Node | None:
    """The deepest YAML node along the path ``loc`` (keys and list indexes); the last key's own node if asked."""
    parts = list(loc)
    for number, part in enumerate(parts):
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            want_key = key_node and number == len(parts) - 1
            match = next((key if want_key else value for key, value in node.value if key.value == part), None)
            if match is None:
                # A key that is there but not expected points at the key itself.
                match = next((key for key, _ in node.value if key.value == part), None)
            if match is None:
                return node
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node
    return node


def _repeated_keys(root: yaml.Node | None, path: Path) -> list[Problem]:
    """A problem for each key a front-matter mapping gives twice: YAML keeps the last one and drops the first
    without a word (a second ``quiz:`` would lose the first quiz)."""
    problems: list[Problem] = []
    pending, visited = [root], set()
    while pending:
        node = pending.pop()
        if node is None or id(node) in visited:  # aliases can point back up the tree
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                pending += [key, value]
                if not isinstance(key, yaml.ScalarNode):
                    continue
                line = 2 + key.start_mark.line
                if key.value in first:
                    name = " ".join(key.value.split())[:40]
                    problems.append(Problem(path, line, f"'{name}' is given twice (also at line {first[key.value]}); "
                                                        "YAML keeps only the last one, so remove or rename one"))  # fmt: skip
                first.setdefault(key.value, line)
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value
    return sorted(problems, key=lambda problem: problem.line)


def _describe(loc: tuple[Any, ...]) -> str:
    """A person's words for a path like ``('quiz', 2, 'options', 0, 'text')``."""
    words: list[str] = []
    i = 0
    while i < len(loc):
        part = loc[i]
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if part == "quiz" and isinstance(nxt, int):
            words.append(f"quiz question {nxt + 1}")
            i += 2
        elif part == "options" and isinstance(nxt, int):
            words.append(f"option {nxt + 1}")
            i += 2
        elif part == "key_terms" and nxt is not None:
            words.append(f"key term '{nxt}'")
            i += 2
        elif part in ("practice", "related") and isinstance(nxt, int):
            words.append(f"{'practice step' if part == 'practice' else 'related lesson'} {nxt + 1}")
            i += 2
        else:
            words.append(f"'{part}'")
            i += 1
    return ", ".join(words)


def _schema_problems(
    error: ValidationError, path: Path, root: yaml.Node | None, first_line: int, allowed: Iterable[str]
) -> list[Problem]:
    """Turn pydantic's errors into problems that name a line and a fix."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        node = _node_at(root, loc)
        if item["type"] == "extra_forbidden" or isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            node = _node_at(root, loc, key_node=True)  # point at "options:", not at the list below it
        line = first_line + (node.start_mark.line if node is not None else 0)
        # The field whose hint applies: the last name in the path, but a key term's name is the author's own.
        field = "key_terms" if loc[:1] == ("key_terms",) else next((p for p in reversed(loc) if isinstance(p, str)), "")
        where = _describe(loc) if loc else "front matter"
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[-1]), list(allowed), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"remove it (known fields: {', '.join(allowed)})"
            problems.append(Problem(path, line, f"unknown field {where}; {hint}"))
        elif item["type"] == "missing":
            problems.append(
                Problem(path, line, f"{where} is missing; add it ({FIX_HINTS.get(field, 'see knowledge/README.md')})")
            )
        else:
            hint = FIX_HINTS.get(field, "see knowledge/README.md for the format")
            problems.append(Problem(path, line, f"{where}: {item['msg'].lower()}; {hint}"))
    return problems


# ---------------------------------------------------------------- lessons


def _split_front_matter(text: str, path: Path, problems: list[Problem]) -> tuple[str | None, str, int]:
    """Split ``text`` into (front matter YAML or None, Markdown body, line number where the body starts)."""
    lines = text.split("\n")
    if lines[0].rstrip() != "---":
        return None, text, 1
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            yaml_text = "\n".join(lines[1:index]).translate(_YAML_ONLY_BREAKS)
            return yaml_text, "\n".join(lines[index + 1 :]), index + 2
    problems.append(Problem(path, 1, "front matter opened with '---' is never closed; add a '---' line after it"))
    return None, "", len(lines) + 1


def _inline_text(token: Any) -> str:
    """Plain text of an inline token: link and emphasis markup dropped."""
    parts = [child.content for child in token.children or [] if child.type in ("text", "code_inline")]
    return "".join(parts).strip() or token.content.strip()


def _parse_body(body: str, body_line: int) -> tuple[str | None, list[Section], int | None]:
    """Find the ``#`` title and the ``##`` sections of a Markdown body."""
    tokens = _markdown.parse(body)
    lines = body.split("\n")
    title: str | None = None
    title_end: int | None = None
    heads: list[tuple[int, int, str]] = []  # (first line, line after heading, heading text)
    for index, token in enumerate(tokens):
        if token.type != "heading_open" or token.map is None:
            continue
        text = _inline_text(tokens[index + 1])
        if token.tag == "h1" and title is None and not heads:
            title, title_end = text, token.map[1]
        elif token.tag == "h2":
            heads.append((token.map[0], token.map[1], text))
    sections: list[Section] = []
    intro_start = title_end or 0
    intro_end = heads[0][0] if heads else len(lines)

    def section(section_id: str, heading: str, start: int, first: int, end: int) -> Section | None:
        text = "\n".join(lines[first:end]).strip()
        if not text:
            return None
        while not lines[first].strip():
            first += 1
        return Section(section_id, heading, text, body_line + start, section_units(section_id, text, body_line + first))

    # Text before the first heading is the introduction, unless a heading is called that too (then: overview).
    intro_id = "overview" if any(slugify(heading) == "introduction" for _s, _a, heading in heads) else "introduction"
    intro = section(intro_id, intro_id.capitalize(), intro_start, intro_start, intro_end)
    sections.extend([intro] if intro else [])
    for number, (start, after, heading) in enumerate(heads):
        end = heads[number + 1][0] if number + 1 < len(heads) else len(lines)
        found = section(slugify(heading), heading, start, after, end)
        sections.append(found or Section(slugify(heading), heading, "", body_line + start))
    return title, sections, (body_line + title_end - 1) if title_end else None


def lesson_id_from_path(path: Path) -> str:
    """The id of a plain Markdown lesson: its file name without extension and numeric prefix."""
    return slugify(_NUMERIC_PREFIX.sub("", path.stem)) or slugify(path.stem)


def _estimate_minutes(sections: list[Section]) -> int:
    words = sum(len(section.text.split()) for section in sections)
    return max(1, math.ceil(words / WORDS_PER_MINUTE))


def _build_question(spec: QuestionSpec) -> Question:
    correct = next(i for i, option in enumerate(spec.options) if option.correct)
    return Question(
        prompt=spec.question,
        options=tuple(option.text for option in spec.options),
        correct_index=correct,
        explanation=spec.explanation,
        section=spec.section,
    )


def _quiz_problems(data: dict, root: yaml.Node | None, path: Path, sections: dict[str, Section]) -> list[Problem]:
    """Checks the schema cannot express: one correct option, and section references that exist."""
    quiz = data.get("quiz")
    if not isinstance(quiz, list):
        return []

    def line_of(*loc: Any) -> int:
        node = _node_at(root, loc)
        return 2 + (node.start_mark.line if node is not None else 0)

    problems = []
    for number, question in enumerate(quiz):
        if not isinstance(question, dict):
            continue
        options = question.get("options")
        if isinstance(options, list):
            correct = sum(1 for option in options if isinstance(option, dict) and option.get("correct") is True)
            if correct != 1:
                problems.append(
                    Problem(
                        path,
                        line_of("quiz", number),
                        f"quiz question {number + 1} has {correct} correct options; mark exactly one option 'correct: true'",
                    )
                )
        section = question.get("section")
        if isinstance(section, str) and section not in sections:
            close = difflib.get_close_matches(section, list(sections), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(sections) or '(no sections)'}"
            problems.append(
                Problem(
                    path,
                    line_of("quiz", number, "section"),
                    f"quiz question {number + 1} refers to section '{section}', which this lesson does not have; {hint}",
                )
            )
    return problems


def read_lesson(path: Path, problems: list[Problem]) -> Lesson | None:
    """Read one lesson file; append what is wrong to ``problems``; None when it cannot be used."""
    before = len(problems)
    text = read_text(path, problems)
    if text is None:
        return None
    yaml_text, body, body_line = _split_front_matter(text, path, problems)
    title, sections, title_line = _parse_body(body, body_line)

    spec: FrontMatter | None = None
    root: yaml.Node | None = None
    if yaml_text is not None:
        try:
            root = yaml.compose(yaml_text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(yaml_text)
        except yaml.reader.ReaderError as error:  # a character YAML does not allow, such as a control character
            line = 2 + yaml_text.count("\n", 0, error.position)
            problems.append(Problem(path, line, f"front matter has a control character (U+{error.character:04X}) "
                                                "YAML does not allow; delete it"))  # fmt: skip
            return None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = 2 + (mark.line if mark else 0)
            reason = " ".join((getattr(error, "problem", None) or str(error)).split())
            problems.append(
                Problem(
                    path, line, f"front matter is not valid YAML ({reason}); check indentation and quote text with ':'"
                )
            )
            return None
        if not isinstance(data, dict):
            problems.append(
                Problem(
                    path,
                    2,
                    "front matter must be 'field: value' lines; write each field (id, title, minutes, premise, ...) "
                    "on its own line as 'name: value'",
                )
            )
            return None
        problems.extend(_repeated_keys(root, path))
        try:
            spec = FrontMatter.model_validate(data)
        except ValidationError as error:
            problems.extend(_schema_problems(error, path, root, 2, FrontMatter.model_fields))

    seen: dict[str, Section] = {}
    for section in sections:
        if not section.id:
            problems.append(Problem(path, section.line, "this '##' heading has no letters or digits; give it a name"))
        elif len(section.heading) > MAX_HEADING_CHARS:
            problems.append(
                Problem(path, section.line, f"this heading is over {MAX_HEADING_CHARS} characters; shorten it")
            )
        elif section.id in seen:
            problems.append(
                Problem(
                    path,
                    section.line,
                    f"duplicate section id '{section.id}' (also at line {seen[section.id].line}); rename one of the headings",
                )
            )
        else:
            seen[section.id] = section
    if not any(section.text for section in sections):
        problems.append(
            Problem(path, 1, "the lesson has no text; write at least one '##' section with some paragraphs")
        )
    for section in sections:
        if section.id and not section.text:
            problems.append(
                Problem(
                    path, section.line, f"section '{section.heading}' is empty; write its text or remove the heading"
                )
            )

    if yaml_text is None and not title and len(problems) == before:
        problems.append(Problem(path, title_line or 1,
                                "a plain Markdown lesson needs a '# Title' line with its title; add one or add front matter"))  # fmt: skip

    if yaml_text is not None:
        problems.extend(_quiz_problems(data, root, path, seen))

    if len(problems) > before:
        return None
    if spec is not None:
        return Lesson(
            id=spec.id,
            title=spec.title,
            minutes=spec.minutes,
            premise=spec.premise,
            sections=tuple(sections),
            key_terms=tuple(spec.key_terms.items()),
            practice=tuple(spec.practice),
            quiz=tuple(_build_question(question) for question in spec.quiz),
            path=path,
            related=tuple(spec.related),
        )
    assert title is not None
    return Lesson(
        id=lesson_id_from_path(path),
        title=title,
        minutes=_estimate_minutes(sections),
        premise="",
        sections=tuple(sections),
        path=path,
    )


def front_matter_line(path: Path, *loc: Any) -> int:
    """The line of a lesson file's front-matter entry at ``loc`` (e.g. ``"related", 2``); 1 when it cannot be found."""
    try:
        text = read_text(path, [])  # as the lesson was read: without a BOM, with its line ends
        yaml_text = _split_front_matter(text, path, [])[0] if text is not None else None
        node = _node_at(yaml.compose(yaml_text, Loader=yaml.SafeLoader), loc) if yaml_text is not None else None
    except (OSError, yaml.YAMLError):
        return 1
    return 2 + node.start_mark.line if node is not None else 1


def related_problems(results: list[TrackResult], known: dict[str, Track],
                     unsure: dict[str, set[str]] | None = None) -> None:  # fmt: skip
    """Add a problem to ``results`` for each ``related:`` lesson that no track in ``known`` (by id) has, and for a
    lesson listed twice or listing itself. ``unsure`` maps a track id to the lesson ids of its files that failed
    to read (see ``unread_lesson_ids``): naming one of those is left to that file's own problems."""
    for result in results:
        track = result.track
        if track is None:
            continue
        for lesson in track.lessons:
            assert lesson.path is not None
            seen: set[tuple[str, str]] = set()
            for number, (track_id, lesson_id) in enumerate(track.related_refs(lesson)):
                written = lesson.related[number]
                problem = _related_problem(track, lesson, written, (track_id, lesson_id), seen, known, unsure or {})
                seen.add((track_id, lesson_id))
                if problem:
                    line = front_matter_line(lesson.path, "related", number)
                    result.problems.append(Problem(lesson.path, line, f"related lesson '{written}': {problem}"))


def _related_problem(track: Track, lesson: Lesson, written: str, ref: tuple[str, str], seen: set[tuple[str, str]],
                     known: dict[str, Track], unsure: dict[str, set[str]]) -> str | None:  # fmt: skip
    """What is wrong with one entry of a lesson's ``related:`` list, or None."""
    if ref == (track.id, lesson.id):
        return "that is this lesson itself; remove it"
    if ref in seen:
        return "listed twice; remove one"
    found = known.get(ref[0])
    if (found is not None and found.lesson(ref[1]) is not None) or ref[1] in unsure.get(ref[0], ()):
        return None
    elsewhere = [f"{t.id}/{ref[1]}" for t in known.values() if t.id != ref[0] and t.lesson(ref[1])]
    candidates = [f"{t.id}/{other.id}" if t.id != track.id else other.id
                  for t in known.values() for other in t.lessons if other.id != lesson.id]  # fmt: skip
    close = elsewhere[:1] or difflib.get_close_matches(written, candidates, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "use a lesson id, or track-id/lesson-id for another track"
    where = f"track '{ref[0]}' has no lesson '{ref[1]}'" if found else f"there is no track '{ref[0]}'"
    return f"{where}; {hint}"


def unread_lesson_ids(results: list[TrackResult]) -> dict[str, set[str]]:
    """By track id, the ids a lesson file that failed to read may have had (its file name's and its ``id:``).

    A track whose ``track.toml`` failed is keyed by its folder's name, with every lesson file in it.
    """
    unread: dict[str, set[str]] = {}
    for result in results:
        if result.track is None:
            key, paths = result.folder.name, lesson_files(result.folder)
        else:
            read = {lesson.path for lesson in result.track.lessons}
            key = result.track.id
            paths = [p.path for p in result.problems if p.path.suffix == ".md" and p.path not in read]
        for path in paths:
            ids = unread.setdefault(key, set())
            ids.add(lesson_id_from_path(path))
            written = _written_id(path)
            if written:
                ids.add(written)
    return unread


def _written_id(path: Path) -> str | None:
    """The value of a lesson file's ``id:`` line, read leniently (the file may not parse)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r"^id:\s*['\"]?([^'\"\s]+)", text, re.MULTILINE)
    return found.group(1) if found else None


def lesson_id_line(path: Path) -> int:
    """The line of a lesson file's ``id:`` field (1 when it has none)."""
    try:
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
            if line.startswith("id:"):
                return number
    except (OSError, UnicodeDecodeError):
        pass
    return 1


# ---------------------------------------------------------------- tracks


def _toml_key_line(text: str, key: str) -> int:
    for number, line in enumerate(text.split("\n"), start=1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return 1


def _read_track_spec(folder: Path, problems: list[Problem]) -> TrackSpec | None:
    path = folder / TRACK_FILE
    if not path.is_file():
        problems.append(
            Problem(
                path,
                1,
                f"track folder has no {TRACK_FILE}; create it with id, title and description (see knowledge/README.md)",
            )
        )
        return None
    text = read_text(path, problems)
    if text is None:
        return None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        found = re.search(r"line (\d+)", str(error))
        problems.append(
            Problem(
                path,
                int(found.group(1)) if found else 1,
                f'not valid TOML ({error}); write lines like: title = "My track"',
            )
        )
        return None
    try:
        return TrackSpec.model_validate(data)
    except ValidationError as error:
        for item in error.errors():
            key = str(item["loc"][0]) if item["loc"] else ""
            line = _toml_key_line(text, key)
            if item["type"] == "missing":
                problems.append(Problem(path, line, f"'{key}' is missing; add it ({FIX_HINTS.get(key, '')})"))
            elif item["type"] == "extra_forbidden":
                problems.append(Problem(path, line, f"unknown field '{key}'; use id, title, description and order"))
            else:
                problems.append(Problem(path, line, f"'{key}': {item['msg'].lower()}; {FIX_HINTS.get(key, '')}"))
        return None


def lesson_files(folder: Path) -> list[Path]:
    """The lesson files of a track folder, in file-name order."""
    return sorted(p for p in folder.glob("*.md") if p.is_file() and p.name.lower() != "readme.md")


def read_track(folder: Path) -> TrackResult:
    """Read a track folder: its ``track.toml`` and every lesson file in it."""
    problems: list[Problem] = []
    spec = _read_track_spec(folder, problems)
    lessons: list[Lesson] = []
    first_file: dict[str, Path] = {}
    for path in lesson_files(folder):
        lesson = read_lesson(path, problems)
        if lesson is None:
            continue
        if lesson.id in first_file:
            problems.append(
                Problem(
                    path,
                    lesson_id_line(path),
                    f"duplicate lesson id '{lesson.id}' (also used by {first_file[lesson.id].name}); give each lesson its own id",
                )
            )
            continue
        first_file[lesson.id] = path
        lessons.append(lesson)
    if spec is None:
        return TrackResult(folder, None, problems)
    if not lessons and not problems:
        problems.append(
            Problem(folder / TRACK_FILE, 1, "the track has no lessons; add a lesson .md file beside track.toml")
        )
    by_id = {lesson.id: lesson for lesson in lessons}
    ordered: list[Lesson] = []
    for lesson_id in spec.order:
        if lesson_id in by_id and by_id[lesson_id] not in ordered:
            ordered.append(by_id[lesson_id])
        elif lesson_id not in first_file and not problems:
            text = (folder / TRACK_FILE).read_text(encoding="utf-8", errors="replace")
            problems.append(
                Problem(
                    folder / TRACK_FILE,
                    _toml_key_line(text, "order"),
                    f"'order' names lesson '{lesson_id}', which no lesson file has; fix the id or remove it from 'order'",
                )
            )
    ordered.extend(lesson for lesson in lessons if lesson not in ordered)
    track = Track(id=spec.id, title=spec.title, description=spec.description, lessons=tuple(ordered), path=folder)
    return TrackResult(folder, track, problems)


def track_folders(root: Path) -> list[Path]:
    """Folders under ``root`` that hold a track (a ``track.toml`` or lesson files)."""
    if not root.is_dir():
        return []
    return sorted(
        folder
        for folder in root.iterdir()
        if folder.is_dir()
        and not folder.name.startswith(".")
        and ((folder / TRACK_FILE).exists() or lesson_files(folder))
    )


def read_knowledge(root: Path) -> list[TrackResult]:
    """Read every track under ``root``; a track id used twice is a problem of the later folder."""
    results = [read_track(folder) for folder in track_folders(root)]
    owner: dict[str, Path] = {}
    for result in results:
        if result.track is None:
            continue
        if result.track.id in owner:
            path = result.folder / TRACK_FILE
            result.problems.append(
                Problem(
                    path,
                    _toml_key_line(path.read_text(encoding="utf-8"), "id"),
                    f"duplicate track id '{result.track.id}' (also used by {owner[result.track.id]}); give each track its own id",
                )
            )
        else:
            owner[result.track.id] = result.folder
    related_problems(results, {r.track.id: r.track for r in results if r.track and owner[r.track.id] == r.folder},
                     unread_lesson_ids(results))  # fmt: skip
    return results


def _neighbours(folder: Path, own: TrackResult) -> tuple[dict[str, Track], dict[str, set[str]]]:
    """The tracks a track folder's ``related:`` lists may name (itself and the track folders beside it), and
    those of them with problems of their own."""
    results = [read_track(other) for other in track_folders(folder.parent) if other.resolve() != folder.resolve()]
    results.append(own)
    known = {r.track.id: r.track for r in results if r.track is not None}
    return known, unread_lesson_ids(results)


def _alone(track: Track, lesson: Lesson) -> Track:
    """``track`` holding only ``lesson`` (as read from its own file), to check that one lesson's related list."""
    return Track(track.id, track.title, track.description, (lesson,), track.path)


def validate_path(path: Path) -> list[Problem]:
    """Every problem in a lesson file, a track folder, or a folder of tracks."""
    if not path.exists():
        return [Problem(path, 1, "no such file or folder; check the path")]
    if path.is_file():
        problems: list[Problem] = []
        lesson = read_lesson(path, problems)
        own = read_track(path.parent) if lesson and lesson.related and (path.parent / TRACK_FILE).exists() else None
        if lesson is not None and own is not None and own.track is not None:
            # its related lessons are checked against its own track and the tracks beside it
            related_problems([TrackResult(path.parent, _alone(own.track, lesson), problems)],
                             *_neighbours(path.parent, own))  # fmt: skip
        return problems
    if (path / TRACK_FILE).exists() or (lesson_files(path) and not track_folders(path)):
        result = read_track(path)
        related_problems([result], *_neighbours(path, result))
        return result.problems
    results = read_knowledge(path)
    if not results:
        return [Problem(path, 1, "no tracks here; add a track: a folder with a track.toml and lesson .md files")]
    return [problem for result in results for problem in result.problems]
