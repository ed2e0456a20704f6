"""Property tests for reading typed text: cleaning never raises and leaves only characters a platform can send,
and the command parser never raises, names a known command the text starts with, and takes long text for a
question unless it is exactly a command."""

from __future__ import annotations

import unicodedata

from hypothesis import example, given
from hypothesis import strategies as st

from bot.core.commands import (
    ARG_COMMANDS,
    DROPPED_CATEGORIES,
    MAX_MESSAGE_CHARS,
    WORD_COMMANDS,
    clean_text,
    parse_command,
    question_in,
)
from tests.strategies import COMMAND_WORDS, fuzz_settings, long_text, messages, odd_text

TYPED = st.one_of(messages(), odd_text(max_size=200))
KNOWN = WORD_COMMANDS | ARG_COMMANDS
LONGEST_SHAPED_ARGUMENT = 6  # words in the longest argument a command typed without a slash takes ("term …")


def names(command: str, argument: str) -> bool:
    """What the engine's ``names`` says for a track or lesson called "attention" (all else is not a name)."""
    return argument.casefold() == "attention"


@fuzz_settings(300)
@given(text=st.one_of(TYPED, long_text()))
@example(text="\ufdfa" * (MAX_MESSAGE_CHARS + 1))  # NFKC makes 18 characters of each
def test_cleaned_text_is_trimmed_and_holds_nothing_a_platform_cannot_send(text: str) -> None:
    cleaned, cut = clean_text(text)
    assert cut == (len(text) > MAX_MESSAGE_CHARS)
    assert cleaned == cleaned.strip()
    assert not any(unicodedata.category(ch) in DROPPED_CATEGORIES and ch not in "\n\t" for ch in cleaned)
    cleaned.encode("utf-8")  # no lone surrogate
    assert clean_text(cleaned) == (cleaned, False) or len(cleaned) > MAX_MESSAGE_CHARS  # cleaning twice changes nothing


def test_cleaned_text_is_never_longer_than_the_limit() -> None:
    cleaned, cut = clean_text("\ufdfa" * MAX_MESSAGE_CHARS)  # NFKC makes each of these 18 characters
    assert len(cleaned) <= MAX_MESSAGE_CHARS and cut


@fuzz_settings(400)
@given(raw=TYPED, with_names=st.booleans())
def test_a_parsed_command_is_a_known_word_the_text_starts_with(raw: str, with_names: bool) -> None:
    text = clean_text(raw)[0]
    command = parse_command(text, names if with_names else None)
    if command is None:
        return
    word, argument = command
    assert isinstance(word, str) and isinstance(argument, str)
    first = text.removeprefix("/").partition(" ")[0].split("@", 1)[0].casefold()
    if word == "?":  # an unknown slash command: the word it names comes back to be reported
        assert text.startswith("/") and argument == first and first not in KNOWN
        return
    assert word in KNOWN | {"lessons", "tracks"}
    assert first == word or (word in {"lessons", "tracks"} and first == word.removesuffix("s"))
    assert argument == argument.strip() and text.endswith(argument)  # the rest of the text, whole
    if not text.startswith("/") and argument and word in {"track", "lesson", "enable", "disable"}:
        assert with_names and names(word, argument)  # typed without a slash, only a name makes it a command


@fuzz_settings(300)
@given(
    word=st.sampled_from(COMMAND_WORDS),
    words=st.lists(
        st.sampled_from(["on", "off", "at", "7pm", "attention", "soft", "targets?", "x", "22-8"]),
        min_size=LONGEST_SHAPED_ARGUMENT + 1,
        max_size=12,
    ),  # fmt: skip
    with_names=st.booleans(),
)
def test_long_text_without_a_slash_is_a_question_unless_it_says_ask(word: str, words: list[str],
                                                                     with_names: bool) -> None:  # fmt: skip
    text = " ".join([word, *words])
    command = parse_command(text, names if with_names else None)
    assert command is None or command[0] == "ask"
    assert question_in(text) == (" ".join(words) if word == "ask" else text)


@fuzz_settings(300)
@given(raw=TYPED)
def test_the_question_in_typed_text_is_part_of_it(raw: str) -> None:
    text = clean_text(raw)[0]
    question = question_in(text)
    assert question in text
    assert question == text or parse_command(text) == ("ask", question)
