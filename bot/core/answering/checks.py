"""General checks on text going in and out of the model; none is tied to a particular question.

- ``clean_question``: the learner's text with whitespace folded, prompt delimiters defused, length capped.
- ``unknown_terms``: names in a question (acronyms, versions, CamelCase) that the track never mentions;
  the lessons cannot answer what they never name.
- ``unsupported``: the numbers, links and names in an explanation that its cited lesson text lacks; an
  explanation with any of them is not shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_DELIMITERS = re.compile(r"<<<|>>>")
_WHITESPACE = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_LINK = re.compile(
    r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|ai|dev|app|co|info|biz|xyz)\b",
    re.IGNORECASE,
)
# Names a lesson would have to mention to answer: acronyms (KTO), versions (GPT-4), CamelCase (FlashAttention).
_TERM = re.compile(r"\b(?:[A-Za-z]+-?\d[\w.-]*\w|[A-Za-z]+-?\d|[A-Z]{2,}[A-Za-z]*|[A-Z][a-z]+[A-Z]\w*)\b")
_CAPITALISED = re.compile(r"\b[A-Z][\w'-]*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def plain(text: str) -> str:
    """Lowercase words separated by single spaces (for containment checks)."""
    return _NOT_WORD.sub(" ", text.lower()).strip()


def defuse(text: str) -> str:
    """``text`` without the markers that delimit data in a prompt, so it cannot close or open a block."""
    return _DELIMITERS.sub("", text)


def clean_question(text: str, limit: int) -> tuple[str, bool]:
    """The question with whitespace folded and delimiters defused, cut to ``limit`` characters."""
    text = _WHITESPACE.sub(" ", defuse(text)).strip()
    if len(text) <= limit:
        return text, False
    return text[:limit].rsplit(" ", 1)[0], True


class Vocabulary:
    """The words of a text (through ``plain``), indexed once, to ask whether a word or phrase occurs in it.

    Built once per track, so a question's check looks up its few terms instead of scanning the track's text.
    """

    def __init__(self, text: str) -> None:
        self._words = plain(text).split()
        self._at: dict[str, list[int]] = {}
        for position, word in enumerate(self._words):
            self._at.setdefault(word, []).append(position)

    def __contains__(self, phrase: object) -> bool:
        """Whether ``phrase`` (plain words, space-separated) occurs in the text, word for word."""
        words = str(phrase).split()
        if not words:
            return False
        length = len(words)
        return any(self._words[start : start + length] == words for start in self._at.get(words[0], ()))


class Vocabularies:
    """Several vocabularies as one (the tracks offered where a question is asked): a phrase occurs when it
    occurs in any of them, so each track's is built once however many communities offer it."""

    def __init__(self, parts: Iterable[Vocabulary]) -> None:
        self._parts = tuple(parts)

    def __contains__(self, phrase: object) -> bool:
        return any(phrase in part for part in self._parts)


def unknown_terms(question: str, known: Vocabulary | Vocabularies) -> list[str]:
    """Name-like terms in ``question`` that the ``known`` text (a track's) never mentions."""
    missing = []
    for term in dict.fromkeys(_TERM.findall(question)):
        phrase = plain(term)
        if phrase not in known and phrase.removesuffix("s") not in known:  # "GPUs" is named where "GPU" is
            missing.append(term)
    return missing


def names_in(text: str) -> set[str]:
    """Name-like words of ``text``: terms such as GPT-4 anywhere, and capitalised words inside a sentence."""
    found = set(_TERM.findall(text))
    for sentence in _SENTENCE.split(text):
        words = _CAPITALISED.findall(sentence)
        opening = _CAPITALISED.match(sentence.lstrip(" “\"'(*-•"))  # "Yes," opens a sentence: it is no name
        first = opening.group() if opening else ""
        found |= {word for word in words if word != first and word != "I"}
    return found


def unsupported(explanation: str, sources: str) -> set[str]:
    """Numbers, links and names in ``explanation`` that ``sources`` (the cited units and their headings) lack."""
    source_plain = f" {plain(sources)} "
    source_numbers = set(_NUMBER.findall(sources))
    lowered = sources.casefold()
    links = {
        link.rstrip(".,;:!?)'\"") for link in _LINK.findall(explanation)
    }  # a sentence's full stop is no part of it
    missing = {link for link in links if link.casefold() not in lowered}
    without_links = _LINK.sub(" ", explanation)
    missing |= set(_NUMBER.findall(without_links)) - source_numbers
    for name in names_in(without_links):
        word = plain(name)
        if word and f" {word} " not in source_plain and f" {word.removesuffix('s')} " not in source_plain:
            missing.add(name)
    return missing


def first_sentences(text: str, most: int) -> str:
    """At most ``most`` sentences of ``text``; an unfinished last sentence is dropped."""
    text = " ".join(text.split())
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    if not ends:
        return ""
    return text[: ends[min(most, len(ends)) - 1]].strip()


def sentence_count(text: str) -> int:
    """How many sentences of ``text`` are finished."""
    return len(_SENTENCE_END.findall(text))
