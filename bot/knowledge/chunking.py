"""Split lesson sections into chunks that fit the embedder's window, so nothing is ever cut off.

A chunk is embedded as ``"<lesson title> — <section heading>\\n<text>"``; the whole of that must fit the
token budget. Paragraphs are packed greedily; a paragraph too long on its own is split at sentences, and
a sentence too long on its own at words. MiniLM's tokenizer splits on whitespace first, so token counts of
whitespace-separated pieces add up, which keeps the packing cheap.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.lessons import Lesson, Track

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
SPECIAL_TOKENS = 2  # [CLS] and [SEP]


@dataclass(frozen=True)
class Chunk:
    """A piece of a section, small enough to embed whole, with the metadata search returns."""

    track: str
    lesson: str
    section: str
    heading: str
    lesson_title: str
    position: int
    text: str
    kind: str = "text"  # "text": lesson text; "probe": a quiz question or key term that points at its section

    @property
    def embed_text(self) -> str:
        """What the embedder sees: lesson and section names, then the text."""
        return f"{self.lesson_title} — {self.heading}\n{self.text}"

    @property
    def content_hash(self) -> str:
        """sha256 of the embedded text: a changed hash means the chunk must be embedded again."""
        return hashlib.sha256(self.embed_text.encode("utf-8")).hexdigest()

    @property
    def base_id(self) -> str:
        """Id from place and content: the same text in the same section keeps its id (and its embedding)."""
        return f"{self.track}:{self.lesson}:{self.section}:{self.kind}:{self.content_hash[:16]}"

    def metadata(self) -> dict[str, str | int]:
        """Metadata stored with the chunk in Chroma."""
        return {
            "track": self.track,
            "lesson": self.lesson,
            "section": self.section,
            "heading": self.heading,
            "lesson_title": self.lesson_title,
            "position": self.position,
            "content_hash": self.content_hash,
            "kind": self.kind,
        }


def _pack(pieces: list[tuple[int, str]], budget: int, count: Callable[[str], int]) -> list[str]:
    """Greedily join (paragraph number, text) pieces into groups of at most ``budget`` tokens.

    Pieces of one paragraph are joined with a space, different paragraphs with a blank line.
    """
    groups: list[str] = []
    current = ""
    last_paragraph = -1
    used = 0
    for paragraph, piece in pieces:
        tokens = count(piece)
        if current and used + tokens > budget:
            groups.append(current)
            current, used = "", 0
        if current:
            current += " " if paragraph == last_paragraph else "\n\n"
        current += piece
        used += tokens
        last_paragraph = paragraph
    if current:
        groups.append(current)
    return groups


def split_text(text: str, budget: int, count: Callable[[str], int]) -> list[str]:
    """Split ``text`` into pieces of at most ``budget`` tokens (``count`` counts tokens without specials)."""
    pieces: list[tuple[int, str]] = []
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    for number, paragraph in enumerate(paragraphs):
        if count(paragraph) <= budget:
            pieces.append((number, paragraph))
            continue
        for sentence in _SENTENCE_END.split(paragraph):
            if count(sentence) <= budget:
                pieces.append((number, sentence))
                continue
            words: list[tuple[int, str]] = [(number, word) for word in sentence.split()]
            pieces.extend((number, part) for part in _pack(words, budget, count))
    return _pack(pieces, budget, count)


def chunk_lesson(track_id: str, lesson: Lesson, max_tokens: int, count_bare: Callable[[str], int]) -> list[Chunk]:
    """Chunks of every section of ``lesson``; each chunk's embedded text fits ``max_tokens`` tokens."""
    chunks: list[Chunk] = []
    for section in lesson.sections:
        prefix_tokens = count_bare(f"{lesson.title} — {section.heading}") + SPECIAL_TOKENS
        budget = max_tokens - prefix_tokens
        if budget < 16:
            raise ValueError(
                f"{lesson.path}: the heading '{section.heading}' leaves no room for text in a chunk; shorten it"
            )
        for position, text in enumerate(split_text(section.text, budget, count_bare)):
            chunks.append(Chunk(track_id, lesson.id, section.id, section.heading, lesson.title, position, text))
    return chunks


def probes_for(track_id: str, lesson: Lesson) -> list[Chunk]:
    """Short texts that say what a section answers: its quiz questions with their answers, and key terms.

    Learners ask in words like the quiz's; a probe that matches a question ranks its section. Probes are
    never shown as lesson text: search returns the section's own text instead.
    """
    probes: list[Chunk] = []
    for question in lesson.quiz:
        section = lesson.section(question.section) if question.section else None
        if section:
            text = f"{question.prompt} {question.correct_option}"
            probes.append(
                Chunk(track_id, lesson.id, section.id, section.heading, lesson.title, len(probes), text, "probe")
            )
    for term, definition in lesson.key_terms:
        section = next((s for s in lesson.sections if term.lower() in s.text.lower()), None)
        if section:
            text = f"{term}: {definition}"
            probes.append(
                Chunk(track_id, lesson.id, section.id, section.heading, lesson.title, len(probes), text, "probe")
            )
    return probes


def chunk_track(track: Track, max_tokens: int, count_bare: Callable[[str], int]) -> dict[str, Chunk]:
    """Chunks of every lesson in ``track`` by id; a text repeated within a section gets a numbered id."""
    chunks: dict[str, Chunk] = {}
    for lesson in track.lessons:
        for chunk in chunk_lesson(track.id, lesson, max_tokens, count_bare) + probes_for(track.id, lesson):
            chunk_id, copy = chunk.base_id, 1
            while chunk_id in chunks:
                copy += 1
                chunk_id = f"{chunk.base_id}:{copy}"
            chunks[chunk_id] = chunk
    return chunks
