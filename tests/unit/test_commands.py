"""Typed text is a command only when it is exactly one; real questions that start with a command word are asked."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.commands import ARG_COMMANDS, WORD_COMMANDS
from bot.core.engine import Engine, parse_command
from bot.knowledge.reader import read_knowledge
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner

REPO = Path(__file__).resolve().parents[2]
TRACKS = {r.track.id: r.track for r in read_knowledge(REPO / "knowledge") if r.track}

# Questions learners type that open with one of the command words; each must reach the answerer.
QUESTIONS_STARTING_WITH_COMMAND_WORDS = [
    "enable caching in attention?",
    "enable caching in attention",
    "track record of GPT-4?",
    "track the loss during distillation",
    "lesson learned from the teacher model?",
    "lesson 2 says what about keys?",
    "disable dropout at inference?",
    "disable dropout",
    "next token prediction?",
    "next token prediction",
    "review of RLHF and DPO",
    "stop words in tokenization?",
    "start token in a sequence?",
    "back propagation through the student?",
    "help me understand soft targets",
    "quiz me on attention",
    "progress in tokenization since BPE?",
    "reset gate in a GRU?",
    "resume training from a checkpoint?",
    "continue pretraining vs fine-tuning?",
    "home made tokenizer?",
    "menu of sampling methods?",
    "remind me what temperature does",
    "remind at what point does the student learn?",
    "quiet attention heads?",
    "leaderboard of models on MMLU?",
    "term frequency in tokenization?",
    "tz of the teacher?",
    "tracks of tokens per second?",
    "lessons from RLHF?",
]

COMMANDS = {
    "next": ("next", ""),
    "Progress": ("progress", ""),
    "/next": ("next", ""),
    "lesson attention": ("lesson", "attention"),
    "lesson Attention as lookup": ("lesson", "Attention as lookup"),
    "lesson 2": ("lesson", "2"),
    "track ai-foundations": ("track", "ai-foundations"),
    "track AI foundations": ("track", "AI foundations"),
    "enable ai-foundations": ("enable", "ai-foundations"),
    "disable ai-foundations": ("disable", "ai-foundations"),
    "/enable caching in attention?": ("enable", "caching in attention?"),  # the slash says it is a command
    "remind at 7:30pm": ("remind", "at 7:30pm"),
    "remind off": ("remind", "off"),
    "quiet 23:00-07:00": ("quiet", "23:00-07:00"),
    "leaderboard on": ("leaderboard", "on"),
    "tz Europe/Berlin": ("tz", "Europe/Berlin"),
    "term soft targets": ("term", "soft targets"),
    "ask what is a teacher?": ("ask", "what is a teacher?"),
}


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(TRACKS, SqlProgressStore(tmp_path / "progress.sqlite3"))


@pytest.mark.parametrize("question", QUESTIONS_STARTING_WITH_COMMAND_WORDS)
def test_a_question_that_starts_with_a_command_word_is_asked(engine: Engine, question: str) -> None:
    learner = Learner(engine)
    assert parse_command(question, engine._names) is None
    assert asyncio.run(engine.is_question(learner.incoming(text=question)))


@pytest.mark.parametrize(("text", "expected"), COMMANDS.items())
def test_a_command_with_its_arguments_and_nothing_else_is_a_command(engine: Engine, text: str, expected) -> None:
    assert parse_command(text, engine._names) == expected
    assert not asyncio.run(engine.is_question(Learner(engine).incoming(text=text))) or expected[0] == "ask"


def test_without_knowing_what_exists_a_typed_name_is_not_taken_for_a_command() -> None:
    assert parse_command("lesson attention") is None
    assert parse_command("/lesson attention") == ("lesson", "attention")


def test_enable_caching_question_is_answered_not_refused_as_a_moderator_command(engine: Engine) -> None:
    learner = Learner(engine, conversation="server-1", is_direct=False)
    replies = learner.say("enable caching in attention?")
    assert not any("moderators" in reply.text for reply in replies)


# ---------------------------------------------------------------- properties

WORD_ONLY = sorted(WORD_COMMANDS - ARG_COMMANDS)
NAMED = ["track", "lesson", "enable", "disable"]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
WORDS = st.text(st.characters(whitelist_categories=("L", "N", "P", "Zs")), min_size=1, max_size=80).filter(str.strip)


@settings(max_examples=300)
@given(TEXT)
def test_parsing_never_fails_and_a_typed_command_is_the_text_itself(text: str) -> None:
    parsed = parse_command(text, lambda command, argument: argument == "ai-foundations")
    if parsed is None or text.startswith("/"):
        return
    word, argument = parsed
    typed, _, rest = text.partition(" ")
    assert typed.casefold() in {word, word.removesuffix("s")} and argument == rest.strip()


@settings(max_examples=200)
@given(st.sampled_from(WORD_ONLY), WORDS)
def test_a_word_command_followed_by_anything_is_a_question(word: str, rest: str) -> None:
    assert parse_command(f"{word} {rest}", lambda command, argument: True) is None


@settings(max_examples=200)
@given(st.sampled_from(NAMED), WORDS)
def test_a_named_command_is_one_only_when_its_argument_names_something(word: str, rest: str) -> None:
    assert parse_command(f"{word} {rest}", lambda command, argument: False) is None
    assert parse_command(f"{word} {rest}", lambda command, argument: True) == (word, rest.strip())
    assert parse_command(f"/{word} {rest}") == (word, rest.strip())  # the slash says it is a command
