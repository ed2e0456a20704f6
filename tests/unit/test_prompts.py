"""Prompt templates: every variable must be given, and only known ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.prompts import PromptError, PromptLibrary, PromptTemplate


def test_renders_named_variables() -> None:
    assert PromptTemplate("t", "Hi {{ name }}, {{task}}.").render(name="Ann", task="read") == "Hi Ann, read."


def test_missing_variable_is_an_error() -> None:
    with pytest.raises(PromptError, match="needs task"):
        PromptTemplate("t", "{{name}} {{task}}").render(name="Ann")


def test_unknown_variable_is_an_error() -> None:
    with pytest.raises(PromptError, match="has no variable nmae"):
        PromptTemplate("t", "{{name}}").render(name="Ann", nmae="typo")


def test_missing_prompt_file_names_the_ones_there(tmp_path: Path) -> None:
    (tmp_path / "answer_user.txt").write_text("{{question}}")
    with pytest.raises(PromptError, match="there are: answer_user"):
        PromptLibrary(tmp_path).get("nope")


def test_shipped_prompts_have_the_variables_the_answerer_fills() -> None:
    library = PromptLibrary(Path(__file__).resolve().parents[2] / "prompts")
    assert library.get("answer_system").variables == frozenset()
    assert library.get("answer_user").variables == {"units", "question"}
    assert library.get("explain_user").variables == {"numbers"}
    assert library.get("judge_system").variables == frozenset()
    assert library.get("judge_user").variables == {"passage", "question"}
    assert library.get("check_user").variables == {"passage", "statement"}
