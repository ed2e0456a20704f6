"""The knobs of grounded answering: three thresholds decide, the rest are budgets (bench/answer_eval.py).

Defined here, in the core that reads them, and used as they are by the settings tree (``bot.config``) as
``TUTORBOT_ANSWERING__*``: each knob has one default and one description.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AnswerSettings(BaseModel):
    """When the tutor answers, and how long it may talk."""

    model_config = ConfigDict(frozen=True)

    min_similarity: float = Field(
        0.25, ge=-1, le=1, description="Below this similarity to every passage, refuse without asking the model."
    )
    point_similarity: float = Field(
        0.15, ge=-1, le=1, description="A refusal names the closest section only when it is at least this similar."
    )
    judge_threshold: float = Field(
        0.45, ge=0, le=1, description="The judge's P(yes) that the cited units state the answer, needed to show them."
    )
    lesson_bonus: float = Field(
        0.05, ge=0, le=1, description="Preference for the learner's current lesson in retrieval (added similarity)."
    )
    max_question_chars: int = Field(500, ge=20, description="Longer questions are cut to this many characters.")
    page_tokens: int = Field(
        1000,
        ge=200,
        le=3500,
        description=(
            "Most tokens of lesson text read ahead as one prompt: the whole lesson, or consecutive whole sections "
            "(a small model picks better from fewer units)."
        ),
    )
    context_tokens: int = Field(
        700, ge=100, le=3500, description="Most tokens of retrieved sections in a prompt that was not read ahead."
    )
    max_units: int = Field(3, ge=1, le=6, description="Most lesson units one answer cites.")
    explain: bool = Field(
        True, description="After the cited units, a short explanation (shown only when it passes the check)."
    )
    explanation_tokens: int = Field(90, ge=16, description="Most tokens the model may write for the explanation.")
