"""The benchmark question sets point at sections that exist, so a renamed heading cannot quietly turn a
question into a guaranteed miss (or an eval item into a guaranteed failure)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.common import EVAL_DIR, ML_COURSE, bundled_track, imported_track, questions


def sections_of(track) -> set[tuple[str, str]]:  # noqa: ANN001 - a Track
    return {(lesson.id, section.id) for lesson in track.lessons for section in lesson.sections}


def places(items: list[dict]) -> list[tuple[str, str]]:
    named = [(item["lesson"], item["section"]) for item in items if "section" in item]
    return named + [(extra["lesson"], extra["section"]) for item in items for extra in item.get("also", [])]


def check(track) -> None:  # noqa: ANN001 - a Track
    known = sections_of(track)
    tuning, heldout = questions(track.id), questions(track.id, heldout=True)
    assert tuning and heldout
    asked = {item["question"].casefold() for item in tuning}
    assert not [item["question"] for item in heldout if item["question"].casefold() in asked]
    evaluated = yaml.safe_load((EVAL_DIR / f"{track.id}.yaml").read_text(encoding="utf-8"))
    missing = [place for place in places(tuning + heldout + evaluated) if place not in known]
    assert missing == []


def test_bundled_track_question_sets_name_real_sections() -> None:
    check(bundled_track())


@pytest.mark.skipif(not ML_COURSE.is_dir(), reason=f"the ml-for-beginners corpus is not at {ML_COURSE}")
def test_imported_course_question_sets_name_real_sections(tmp_path: Path) -> None:
    track = imported_track(tmp_path)
    assert track is not None
    check(track)
