"""Hypothesis strategies for hostile and odd input: text as platforms deliver it, lesson files as people save
them (junk YAML, odd Markdown, odd bytes), course folders to import, and forged button actions.

Each strategy mixes plain values with the characters that break naive code: zero-width and bidi controls,
lone surrogates (JSON can carry ``\\ud800``), control characters, line separators other than ``\\n``,
characters NFKC expands many times over, emoji sequences, and whitespace-only text.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from typing import Any

import yaml
from hypothesis import settings
from hypothesis import strategies as st

from bot.core import actions
from bot.core.actions import Action

ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
CONTROL = "\x00\x01\x07\x08\x1b\x7f\x9b"
# Everything str.splitlines() breaks at besides "\n" (and what YAML 1.1 counts as a line break too).
ODD_BREAKS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
SURROGATES = "\ud800\udbff\udc00\udfff"
EXPANDING = "\ufdfa\u3390\ufb2c\u0390"  # NFKC turns one character into up to 18
WHITESPACE = " \t\n\u00a0\u3000\u2003"
ODD = ZERO_WIDTH + BIDI + CONTROL + ODD_BREAKS + SURROGATES + EXPANDING + WHITESPACE + "é\u0301İß"
EMOJI = ["😀", "👩‍💻", "🇩🇪", "👍🏽", "❤️", "𝔘𝔫𝔦"]


def fuzz_settings(examples: int, **kwargs: Any) -> settings:
    """Settings for a property test: ``examples`` in CI, times ``TUTORBOT_FUZZ_SCALE`` when hunting for bugs."""
    scale = float(os.environ.get("TUTORBOT_FUZZ_SCALE", "1"))
    return settings(max_examples=max(1, int(examples * scale)), **kwargs)


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of ``choices``, each ``(weight, strategy)`` drawn ``weight`` times as often as a weight of 1
    (``st.one_of(a, a, b)`` draws ``a`` no more often than ``b``)."""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]).flatmap(lambda s: s)


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a surrogate code point (it cannot be encoded as UTF-8, so it cannot be sent)."""
    return any(unicodedata.category(ch) == "Cs" for ch in text)


# ---------------------------------------------------------------- text


_ALPHABET = st.one_of(
    st.characters(codec=None, exclude_categories=()),  # every code point, lone surrogates too
    st.sampled_from(ODD),
    st.sampled_from("abcxyz ?:/-0123456789"),
)
_PIECE = st.one_of(st.text(_ALPHABET, max_size=8), st.sampled_from(EMOJI))


def odd_text(min_size: int = 0, max_size: int = 40) -> st.SearchStrategy[str]:
    """Text of ``min_size`` to ``max_size`` characters mixing ordinary letters, any code point (surrogates too) and
    known troublemakers; text of ``min_size`` 1 or more always has a letter or digit in it."""

    def fit(pieces: list[str]) -> str:
        text = "".join(pieces)[:max_size]
        if min_size == 0 or (len(text) >= min_size and any(ch.isalnum() for ch in text)):
            return text
        return "x" * max(1, min_size - len(text)) + text

    return st.lists(_PIECE, max_size=max_size // 4 + 1).map(fit)


def long_text(max_chars: int = 50_000) -> st.SearchStrategy[str]:
    """Text of up to ``max_chars`` characters, made of a repeated odd piece (generating it whole would be slow)."""

    def repeat(piece: str, size: int) -> str:
        return (piece * (size // max(1, len(piece)) + 1))[:size]

    return st.builds(repeat, odd_text(min_size=1, max_size=12), st.integers(1, max_chars))


COMMAND_WORDS = ["start", "next", "back", "quiz", "lesson", "track", "term", "ask", "remind", "tz", "quiet",
                 "leaderboard", "enable", "disable", "reset", "help", "progress", "review", "stop", "w"]  # fmt: skip


TYPED = ["a", "1", "10", "B)", "yes", "no", "what is a teacher model?", "tz Europe/Berlin", "start", "leaderboard on",
         "leaderboard", "progress", "remind on", "next"]  # fmt: skip


def messages() -> st.SearchStrategy[str]:
    """What a learner may type: odd text, very long text, whitespace only, command words with odd arguments."""
    command_like = st.builds(
        lambda slash, word, sep, rest: f"{slash}{word}{sep}{rest}",
        st.sampled_from(["", "/", "／"]),
        st.sampled_from(COMMAND_WORDS),
        st.sampled_from(["", " ", "  ", "\u200b", "@tutor_bot ", "\t"]),
        odd_text(max_size=20),
    )
    return st.one_of(
        odd_text(),
        command_like,
        long_text(),
        st.text(st.sampled_from(WHITESPACE + ZERO_WIDTH + BIDI), max_size=30),
        st.sampled_from(TYPED),
    )


def display_names() -> st.SearchStrategy[str]:
    """Names as platforms deliver them (Telegram and Discord allow nearly anything)."""
    odd = ["", "Ada", "ℌ𝔞𝔫𝔰", "Ada\ud800", "\udfff", "\u202eadA", "\u200b", "<b>**Ada**</b>", "@everyone", "A" * 300]
    return st.one_of(st.sampled_from(odd), odd_text(max_size=64))


# ---------------------------------------------------------------- button actions

KNOWN_VERBS = sorted(action.value for action in Action)
VERSIONED = sorted(action.value for action in actions.VERSIONED)


def numbers_as_text() -> st.SearchStrategy[str]:
    """Digits as a forger writes them: small, huge, signed, spaced, superscript, other scripts' digits."""
    return st.one_of(
        st.integers(-5, 10**30).map(str),
        st.sampled_from(["²", "¹⁰", "١", "٣", "𝟗", "0x1", " 1", "1 ", "+1", "1e3", "", "-0"]),
        st.integers(4300, 6000).map(lambda digits: "9" * digits),  # more digits than int() reads
    )


def forged_actions() -> st.SearchStrategy[str]:
    """Action ids no honest button of the current message carries: random strings, known verbs with odd
    arguments, long and non-ASCII ones (stale versions are made by the tests, which know the current one)."""
    verb_with_args = st.builds(
        lambda verb, args: ":".join([verb, *args]),
        st.sampled_from(KNOWN_VERBS),
        st.lists(
            st.one_of(numbers_as_text(), odd_text(max_size=10), st.text("0123456789abcdef", min_size=8, max_size=8)),
            max_size=4,
        ),  # fmt: skip
    )
    return st.one_of(odd_text(max_size=64), verb_with_args, long_text(5000))


# ---------------------------------------------------------------- YAML front matter and Markdown

FIELDS = ["id", "title", "minutes", "premise", "key_terms", "practice", "quiz", "related"]


def junk_values() -> st.SearchStrategy[object]:
    """Values YAML can hold, nested: wrong types, huge and odd numbers, odd strings, nested lists and maps."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**40), 10**40),
        st.floats(allow_nan=True, allow_infinity=True),
        odd_text(max_size=20).map(_yaml_safe),
        st.sampled_from(["lesson-1", "a", "", "x" * 500, "teacher-and-student", "2024-01-01"]),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
            ["text", "correct", "question", "options", "section", "explanation", *FIELDS, "x"]), inner, max_size=4)),
        max_leaves=12,
    )  # fmt: skip


def _yaml_safe(text: str) -> str:
    """``text`` without what PyYAML refuses to dump (surrogates, most controls): those go in as raw bytes elsewhere."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in {"Cs", "Cc"} or ch in "\t\n")


def question_data() -> st.SearchStrategy[dict]:
    """A quiz question, often nearly right: 0-11 options, 0-2 marked correct, odd section references."""
    option = st.fixed_dictionaries({"text": st.one_of(st.sampled_from(["yes", "no", "maybe"]), junk_values())},
                                   optional={"correct": st.one_of(st.just(True), junk_values())})  # fmt: skip
    return st.fixed_dictionaries(
        {"question": st.one_of(st.just("Why?"), junk_values()), "options": st.lists(option, max_size=11)},
        optional={"section": st.one_of(st.sampled_from(["main", "intro", "nope"]), junk_values()),
                  "explanation": st.one_of(st.just("Because."), junk_values())},
    )  # fmt: skip


@st.composite
def good_question(draw: st.DrawFn) -> dict:
    """A quiz question the format accepts: 2-4 options, exactly one correct, about section ``main``."""
    count = draw(st.integers(2, 4))
    right = draw(st.integers(0, count - 1))
    texts = draw(st.lists(odd_text(min_size=1, max_size=20).map(_yaml_safe), min_size=count,
                          max_size=count))  # fmt: skip
    options = [{"text": text, **({"correct": True} if n == right else {})} for n, text in enumerate(texts)]
    return {"question": "Which one?", "options": options, "explanation": "Because.", "section": "main"}


@st.composite
def front_matter_data(draw: st.DrawFn, mutations: st.SearchStrategy[int] | None = None) -> dict:
    """Front matter as a mapping: a valid one, then a few fields dropped, replaced by junk, or added."""
    data: dict = {
        "id": draw(st.sampled_from(["lesson-1", "a", "intro-2"])),
        "title": draw(st.sampled_from(["A lesson", "Ünïcödé title"]) | odd_text(1, 30).map(_yaml_safe)),
        "minutes": draw(st.integers(1, 60)),
        "premise": "You will see how a thing works.",
    }
    optional = {
        "key_terms": st.dictionaries(odd_text(1, 10).map(_yaml_safe), st.just("A meaning."), max_size=3),
        "practice": st.just(["Try it."]),
        "quiz": st.lists(weighted((2, good_question()), (1, question_data())), max_size=3),
        "related": st.lists(st.sampled_from(["lesson-1", "lesson-2", "demo/lesson-3"]), max_size=2),
    }
    for name in draw(st.sets(st.sampled_from(list(optional)))):
        data[name] = draw(optional[name])
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 4]) if mutations is None else mutations)):
        name = draw(st.sampled_from([*FIELDS, "extra", "key_term"]))
        if draw(st.booleans()):
            data.pop(name, None)
        else:
            data[name] = draw(junk_values())
    return data


RAW_FRONT_MATTER = [
    "id: a\nid: b\ntitle: T\nminutes: 1\npremise: p\n",  # duplicate keys
    "\tid: a\ntitle: T\n",  # a tab where indentation goes
    "id: a\ntitle: [unclosed\n",
    "- just\n- a list\n",
    "just a string",
    "42",
    "",
    "a: &a [*a]\nid: lesson-1\n",  # a recursive alias
    "quiz: &q\n  - question: q\n    options: *q\n",
    "? [a, b]\n: c\n",  # a key that cannot be a dict key
    "key_terms: {1: 2, [x]: y}\n",
    "minutes: 1e400\nid: lesson-1\n",
    "minutes: 99999999999999999999999999999999\n",
    "id: !!python/object:os.system x\n",  # a tag the safe loader refuses
    "title: !!binary aGVsbG8=\n",
    "premise: >\n  folded\n text\n",
    "id: 'unterminated\n",
    "%YAML 1.1\n---\nid: a\n",
    "related: [a, b, c, d, e, f, g]\nid: lesson-1\n",
]


def front_matter_text() -> st.SearchStrategy[str]:
    """Front matter YAML text: a dumped mapping, or a raw snippet (duplicate keys, tabs, aliases, non-mappings)."""
    dumped = weighted((2, front_matter_data()), (1, junk_values())).map(
        lambda data: yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    )
    return st.one_of(dumped, st.sampled_from(RAW_FRONT_MATTER), odd_text(max_size=40))


HEADINGS = ["## Main", "## Intro", "## Introduction", "##", "## ???", "## " + "long " * 30, "# Title",
            "Setext heading\n--------------"]  # fmt: skip
BLOCKS = ["A plain sentence. Another one!", "- item one\n- item two\n  - nested", "| a | b |\n|---|---|\n| 1 | 2 |",
          "```python\n## not a heading\n```", "```\nunclosed fence", "<div>\n## html\n</div>", "> quote",
          "    indented code", "[link](http://x) and ![img](y)", "1. first\n2) second", "***", ""]  # fmt: skip


def markdown_blocks() -> st.SearchStrategy[str]:
    """One block of a lesson body: headings (good, duplicate, empty, very long, setext), paragraphs, fences,
    lists, tables, HTML, odd text."""
    words = odd_text(max_size=30)
    return st.one_of(
        st.builds(lambda level, text: "#" * level + " " + text, st.integers(1, 3), words),
        st.sampled_from(HEADINGS),
        words,
        st.sampled_from(BLOCKS),
        long_text(3000),
    )


def markdown_body() -> st.SearchStrategy[str]:
    """A lesson body: some blocks joined by blank lines (or not)."""
    return st.builds(
        lambda blocks, sep: sep.join(blocks),
        st.lists(markdown_blocks(), max_size=8),
        st.sampled_from(["\n\n", "\n", "\n\n\n"]),
    )


def sectioned_body() -> st.SearchStrategy[str]:
    """A body with a title and '##' sections (one called Main, as quiz questions expect) of odd paragraphs."""
    section = st.builds(lambda heading, blocks: f"## {heading}\n\n" + "\n\n".join(blocks),
                        st.sampled_from(["Main", "Other", "Ünï"]) | odd_text(1, 20),
                        st.lists(st.one_of(odd_text(1, 60), markdown_blocks()), min_size=1, max_size=3))  # fmt: skip
    return st.builds(lambda title, sections: f"# {title}\n\n" + "\n\n".join(sections),
                     odd_text(1, 20), st.lists(section, min_size=1, max_size=4))  # fmt: skip


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def nearly_valid_lesson_text(lesson_id: str | None = None) -> st.SearchStrategy[str]:
    """A lesson file that is valid but for odd text in its paragraphs and at most one odd field (its id is
    ``lesson_id`` when given)."""

    def dump(data: dict, main: list[dict]) -> str:
        data = data | {"quiz": _list(data.get("quiz")) + main} | ({"id": lesson_id} if lesson_id else {})
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)

    paragraph = odd_text(1, 80)
    sections = st.lists(st.tuples(st.sampled_from(["Other", "Ünï", "Third part"]), paragraph), max_size=3,
                        unique_by=lambda pair: pair[0])  # fmt: skip
    body = st.builds(lambda title, main, more: f"# {title}\n\n## Main\n\n{main}\n\n"
                     + "".join(f"## {heading}\n\n{text}\n\n" for heading, text in more),
                     odd_text(0, 20), paragraph, sections)  # fmt: skip
    front = st.builds(
        dump, front_matter_data(mutations=st.sampled_from([0, 0, 1])), st.lists(good_question(), max_size=2)
    )
    return st.builds(lambda head, text: f"---\n{head}---\n{text}", front, body)


def lesson_text() -> st.SearchStrategy[str]:
    """A whole lesson file as text: front matter (or none, or unclosed) and a body; often nearly valid."""
    front = weighted(
        (1, st.none()),
        (2, front_matter_text().map(lambda yaml_text: f"---\n{yaml_text}\n---\n")),
        (1, front_matter_text().map(lambda yaml_text: f"---\n{yaml_text}\n")),  # never closed
        (1, front_matter_text().map(lambda yaml_text: f"--- \n{yaml_text}...\n")),
    )
    return st.builds(lambda head, body: (head or "") + body, front, st.one_of(sectioned_body(), markdown_body()))


# ---------------------------------------------------------------- bytes


def _line_endings(text: str, style: str) -> str:
    return {"lf": text, "crlf": text.replace("\n", "\r\n"), "cr": text.replace("\n", "\r")}.get(style, text)


@st.composite
def file_bytes(draw: st.DrawFn, text: st.SearchStrategy[str], damaged: bool = True) -> bytes:
    """``text`` saved as people save files: LF, CRLF or lone CR endings, a BOM; sometimes damaged: UTF-16, a stray
    invalid byte, a NUL, a character cut in half, a lone surrogate (bytes no UTF-8 decoder accepts)."""
    harm = ["utf16", "invalid", "nul", "truncated", "surrogate"] if damaged else []
    damage = draw(st.sampled_from(["none"] * 6 + ["bom", "bom", *harm]))
    body = _line_endings(draw(text), draw(st.sampled_from(["lf", "lf", "crlf", "cr"])))
    if damage != "surrogate":
        body = "".join(ch for ch in body if unicodedata.category(ch) != "Cs" and ch != "\x00")
    data = body.encode("utf-8", "surrogatepass")
    if damage == "bom":
        data = b"\xef\xbb\xbf" + data
    elif damage == "utf16":
        data = body.encode("utf-16", "surrogatepass")
    elif damage in {"invalid", "nul"}:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + (b"\xff\xfe\x80" if damage == "invalid" else b"\x00") + data[at:]
    elif damage == "truncated":
        data = data + "é".encode()[:1]  # a multi-byte character cut in half at the end
    return data


def file_lines(data: bytes) -> int:
    """How many lines a file has as editors and ``file:line`` readers count them (``\\n``, ``\\r\\n`` or a lone
    ``\\r`` ends a line); 1 for an empty file, so line 1 is always a place to point at."""
    lines = re.split(rb"\r\n|\r|\n", data)
    return max(1, len(lines) - (lines[-1] == b""))


# ---------------------------------------------------------------- courses to import

QUIZ_LINKS = ["[Pre-lecture quiz](https://q.invalid/quiz/{n}/)", "[Post-lecture quiz](https://q.invalid/quiz/{n}/)",
              "## [Post-lecture quiz](https://q.invalid/quiz/{n})", "[quiz](/quiz/{n}/)",
              "[Post](x/quiz/99999999999999999999999999999999999/)"]  # fmt: skip


def file_names() -> st.SearchStrategy[str]:
    """Names a course's files may have: unicode, spaces, numeric prefixes, very long ones (at the 255-byte limit)."""
    odd = odd_text(min_size=1, max_size=20).map(
        lambda name: "".join(ch for ch in name if ch not in "/\\\x00" and unicodedata.category(ch) != "Cs")
    )
    return st.one_of(
        st.sampled_from(["01-intro", "02 Basics", "intro", "Intro", "日本語", "ℌ𝔢𝔩𝔩𝔬", "-", "000", "a b c", ".hidden"]),
        odd,  # it has a letter or digit: never "." or ".."
        st.integers(1, 251).map(lambda n: "a" * n),  # + ".md" is at most 255 bytes
        st.integers(1, 80).map(lambda n: "é" * n),
    )


def course_lesson_text() -> st.SearchStrategy[str]:
    """A course lesson's Markdown: a title, quiz links, images and odd blocks."""
    link = st.builds(lambda template, n: template.format(n=n), st.sampled_from(QUIZ_LINKS), st.integers(0, 6))
    return st.builds(
        lambda title, blocks: "\n\n".join([title, *blocks]),
        st.one_of(st.builds(lambda t: "# " + t, odd_text(max_size=40)), st.just(""), st.just("# " + "T" * 300)),
        st.lists(st.one_of(markdown_blocks(), link, st.just("![an image](img.png)\n> caption")), max_size=8),
    )


def quiz_json() -> st.SearchStrategy[str]:
    """A quiz-app JSON file: the right shape with odd items, the wrong shape, not JSON, or deeply nested."""
    answer = {
        "answerText": odd_text(max_size=20) | junk_values(),
        "isCorrect": st.sampled_from(["true", "false", True, 1]),
    }
    option = st.fixed_dictionaries(answer) | junk_values()
    question = {"questionText": odd_text(max_size=40) | junk_values(), "answerOptions": st.lists(option, max_size=12)}
    item = st.fixed_dictionaries(question) | junk_values()
    quiz = st.fixed_dictionaries(
        {"id": st.integers(0, 6) | st.sampled_from(["3", "x", None, 1.5, 1e308, [1]])},
        optional={"title": st.sampled_from(["Post-Lecture Quiz", "pre", 5]), "quiz": st.lists(item, max_size=4)},
    )
    shaped = st.lists(quiz, max_size=5).map(lambda quizzes: [{"title": "t", "quizzes": quizzes}])
    return st.one_of(
        shaped.map(lambda data: json.dumps(data, ensure_ascii=False, allow_nan=True)),
        shaped.map(lambda data: json.dumps(data, allow_nan=True)),  # "\\ud800" escapes: lone surrogates once loaded
        junk_values().map(lambda data: json.dumps(data, allow_nan=True)),
        st.sampled_from(ODD_QUIZ_FILES),
        st.just(5000).map(lambda depth: "[" * depth + "]" * depth),  # deeper than the JSON parser recurses
    )


ODD_QUIZ_FILES = [
    '[{"quizzes": 5}]',
    '[{"quizzes": [{"id": Infinity}]}]',
    '[{"quizzes": [{"id": NaN}]}]',
    '[{"quizzes": [{"id": 1, "quiz": "abc"}]}]',
    '[{"quizzes": [{"id": 1, "quiz": [{"answerOptions": {"a": 1}}]}]}]',
    '[{"quizzes": [{"id": 1, "quiz": [{"questionText": "\\ud800?", "answerOptions": '
    '[{"answerText": "a", "isCorrect": "true"}, {"answerText": "b", "isCorrect": "false"}]}]}]}]',
    '[{"quizzes": []}]]]]',
    "not json",
    "",
]
