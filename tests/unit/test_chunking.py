"""Chunking keeps every chunk within the token budget and loses no text."""

from __future__ import annotations

from bot.core.lessons import Lesson, Question, Section, Track
from bot.knowledge.chunking import chunk_lesson, chunk_track, probes_for, split_text


def words(text: str) -> int:
    """A stand-in token counter: one token per word (additive like the real one)."""
    return len(text.split())


def lesson_with(*texts: str) -> Lesson:
    sections = tuple(Section(f"s{n}", f"Section {n}", text) for n, text in enumerate(texts))
    return Lesson("l", "Lesson", 3, "p", sections)


def test_short_paragraphs_are_packed_together() -> None:
    assert split_text("one two\n\nthree four\n\nfive", 10, words) == ["one two\n\nthree four\n\nfive"]


def test_paragraphs_split_when_the_budget_is_reached() -> None:
    pieces = split_text("a b c\n\nd e f\n\ng h i", 6, words)
    assert pieces == ["a b c\n\nd e f", "g h i"]


def test_long_paragraph_splits_at_sentences_then_words() -> None:
    text = "First sentence is here. Second one follows now. " + " ".join(f"w{i}" for i in range(25))
    pieces = split_text(text, 8, words)
    assert all(words(piece) <= 8 for piece in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())  # nothing lost, nothing added


def test_every_chunk_fits_including_its_heading() -> None:
    long_text = "\n\n".join(" ".join(f"p{p}w{i}" for i in range(40)) for p in range(6))
    lesson = lesson_with(long_text, "short section")
    chunks = chunk_lesson("t", lesson, 50, words)
    for chunk in chunks:
        assert words(chunk.embed_text) + 2 <= 50
    assert [c.section for c in chunks].count("s1") == 1
    rebuilt = " ".join(c.text for c in chunks if c.section == "s0")
    assert rebuilt.split() == long_text.split()


def test_chunk_ids_follow_content_not_position() -> None:
    track = Track("t", "T", "d", (lesson_with("alpha beta", "gamma"),))
    before = chunk_track(track, 64, words)
    edited = Track("t", "T", "d", (lesson_with("alpha beta", "gamma changed"),))
    after = chunk_track(edited, 64, words)
    assert len(set(before) & set(after)) == 1  # the untouched section keeps its id


def test_repeated_text_in_a_section_gets_distinct_ids() -> None:
    track = Track("t", "T", "d", (lesson_with(("same words " * 5 + "\n\n") * 2),))
    chunks = chunk_track(track, 24, words)  # one 10-word paragraph per chunk
    assert len(chunks) == 2 and len({c.text for c in chunks.values()}) == 1


def test_probes_point_quiz_questions_and_key_terms_at_their_sections() -> None:
    lesson = Lesson(
        "l", "Lesson", 3, "p",
        (Section("intro", "Intro", "Nothing here."), Section("gap", "Gap", "The capability gap varies.")),
        key_terms=(("capability gap", "How far behind the student is."), ("unused", "Not in the text.")),
        quiz=(Question("Is the gap uniform?", ("yes", "no"), 1, "It varies.", "gap"),),
    )  # fmt: skip
    probes = probes_for("t", lesson)
    assert [(p.section, p.kind, p.text) for p in probes] == [
        ("gap", "probe", "Is the gap uniform? no"),
        ("gap", "probe", "capability gap: How far behind the student is."),
    ]
