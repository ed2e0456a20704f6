"""The shape of ``track.toml`` and of a lesson's front matter, as pydantic models.

Limits come from the platforms learners use: a Telegram quiz poll holds a question of at most 300
characters, 2-10 options of at most 100 characters and an explanation of at most 200.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
RELATED_PATTERN = r"^([a-z0-9]+(-[a-z0-9]+)*/)?[a-z0-9]+(-[a-z0-9]+)*$"  # lesson-id, or track-id/lesson-id
MAX_RELATED = 5
MAX_QUESTION_CHARS = 300
MAX_OPTIONS = 10
MAX_OPTION_CHARS = 100
MAX_EXPLANATION_CHARS = 200
MAX_PREMISE_CHARS = 400
MAX_TERM_CHARS = 300
MAX_TITLE_CHARS = 200


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TrackSpec(_Strict):
    """``track.toml``."""

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=1000)
    order: list[str] = Field(default_factory=list)


class OptionSpec(_Strict):
    """One answer option of a quiz question."""

    text: str = Field(min_length=1, max_length=MAX_OPTION_CHARS)
    correct: bool = False


class QuestionSpec(_Strict):
    """One multiple-choice quiz question."""

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    options: list[OptionSpec] = Field(min_length=2, max_length=MAX_OPTIONS)
    explanation: str | None = Field(None, min_length=1, max_length=MAX_EXPLANATION_CHARS)
    section: str | None = None


class FrontMatter(_Strict):
    """A lesson's YAML front matter."""

    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1, max_length=MAX_TITLE_CHARS)
    minutes: int = Field(ge=1, le=60)
    premise: str = Field(min_length=1, max_length=MAX_PREMISE_CHARS)
    key_terms: dict[str, Annotated[str, Field(min_length=1, max_length=MAX_TERM_CHARS)]] = Field(default_factory=dict)
    practice: list[str] = Field(default_factory=list)
    quiz: list[QuestionSpec] = Field(default_factory=list)
    related: list[Annotated[str, Field(pattern=RELATED_PATTERN)]] = Field(default_factory=list, max_length=MAX_RELATED)


# What to do about a problem with a field, keyed by the field's name (the last string in its path).
FIX_HINTS: dict[str, str] = {
    "id": "use lowercase letters, digits and single hyphens, e.g. 'model-distillation'",
    "title": "give it a short title",
    "description": "describe the track in a sentence or two",
    "minutes": "give the estimated reading time as a whole number from 1 to 60",
    "premise": f"state in one or two sentences (at most {MAX_PREMISE_CHARS} characters) what the learner will understand",
    "question": f"keep the question to at most {MAX_QUESTION_CHARS} characters (a Telegram quiz poll's limit)",
    "options": (
        f"give 2 to {MAX_OPTIONS} options (a Telegram quiz poll holds at most {MAX_OPTIONS}); "
        "remove some or split the question"
    ),
    "text": f"keep each option to at most {MAX_OPTION_CHARS} characters (a Telegram quiz poll's limit)",
    "correct": "write 'correct: true' on the right option and leave it out on the others",
    "section": "give the id of the section that teaches the answer: its '##' heading in lowercase, with hyphens",
    "explanation": (
        f"shorten the explanation to at most {MAX_EXPLANATION_CHARS} characters "
        "(Telegram shows no more after an answer)"
    ),
    "key_terms": f"write key terms as 'Term: one-sentence definition' lines, each at most {MAX_TERM_CHARS} characters",
    "practice": "write practice steps as a list of strings",
    "quiz": "write the quiz as a list of questions",
    "related": (
        f"list at most {MAX_RELATED} lessons by id (lowercase letters, digits, hyphens), and another track's "
        "as track-id/lesson-id, e.g. related: [attention, other-track/some-lesson]"
    ),
    "order": 'list lesson ids as strings, e.g. order = ["intro", "basics"]',
}
