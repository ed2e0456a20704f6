"""Lesson Markdown into citable units: sentences, list items with their lead-in, table rows, code; stable ids."""

from __future__ import annotations

from bot.core.answering.units import Part, expand, fallback_units, lesson_pages, number_units, parts_of
from bot.core.lessons import Lesson, Section
from bot.core.messages import Citation
from bot.core.ports import Passage
from bot.knowledge.units import section_units, sentences

MARKDOWN = """Read the [guide](https://example.org/guide) first, e.g. the **short** part. Dr. Lee wrote 2.5 pages!

The three steps are:

- *Collect* the data.
- Clean it:
  1. drop duplicates
  2. fix types
- Train with `model.fit()`.

| Model | Size |
|---|---|
| Qwen | 1.5B |

![diagram](img.png)

```python
x = 1
```
"""


def test_units_read_as_a_reader_sees_the_markdown() -> None:
    units = section_units("s", MARKDOWN, first_line=10)
    assert [(u.kind, u.text) for u in units] == [
        ("sentence", "Read the guide first, e.g. the short part."),
        ("sentence", "Dr. Lee wrote 2.5 pages!"),
        ("sentence", "The three steps are:"),
        ("item", "Collect the data."),
        ("item", "Clean it:"),
        ("item", "drop duplicates"),
        ("item", "fix types"),
        ("item", "Train with `model.fit()`."),
        ("row", "Model: Qwen; Size: 1.5B"),
        ("code", "x = 1"),
    ]  # the image has no words of its own: it is no unit
    assert [u.line for u in units][:4] == [10, 10, 12, 14]  # lines in the lesson file
    blocks = [u.block for u in units]
    assert blocks[0] == blocks[1]  # two sentences of one paragraph
    assert len(set(blocks[1:])) == len(blocks[1:])  # each other paragraph, item, row and code block its own


def test_a_lead_in_names_its_items_and_a_nested_list_belongs_to_its_item() -> None:
    units = section_units("s", MARKDOWN)
    by_text = {u.text: u for u in units}
    lead, clean = by_text["The three steps are:"], by_text["Clean it:"]
    assert [by_text_id(units, i) for i in lead.items] == ["Collect the data.", "Clean it:", "Train with `model.fit()`."]
    assert [by_text_id(units, i) for i in clean.items] == ["drop duplicates", "fix types"]


def by_text_id(units: tuple, unit_id: str) -> str:
    return next(u.text for u in units if u.id == unit_id)


def test_unit_ids_survive_unrelated_edits_and_repeats_get_their_own() -> None:
    before = {u.text: u.id for u in section_units("s", MARKDOWN)}
    edited = MARKDOWN.replace("Dr. Lee wrote 2.5 pages!", "Dr. Lee wrote three pages!").replace(
        "| Qwen | 1.5B |", "| Qwen | 7B |"
    )
    after = {u.text: u.id for u in section_units("s", edited)}
    unchanged = [text for text in before if text in after]
    assert len(unchanged) == len(before) - 2 and all(before[t] == after[t] for t in unchanged)
    twice = section_units("s", "Same words. Same words.")
    assert len({u.id for u in twice}) == 2
    assert section_units("other", "Same words.")[0].id != twice[0].id  # ids are per section


def test_sentences_keep_abbreviations_and_decimals_whole() -> None:
    assert sentences("It costs $3.50 per 1M tokens, e.g. for GPT-4. Then it stops.") == [
        "It costs $3.50 per 1M tokens, e.g. for GPT-4.", "Then it stops."]  # fmt: skip


def test_expanding_a_cited_lead_in_brings_nested_items_in_reading_order() -> None:
    citation = Citation("t", "l", "s", "S", "L")
    _text, numbered = number_units(parts_of(citation, section_units("s", MARKDOWN), 10_000))
    lead = next(n for n in numbered if n.unit.text == "The three steps are:")
    assert [n.unit.text for n in expand([lead], numbered)] == [
        "The three steps are:", "Collect the data.", "Clean it:", "drop duplicates", "fix types", "Train with `model.fit()`."]  # fmt: skip


def test_a_long_section_is_cut_between_blocks_never_inside_a_list() -> None:
    units = section_units("s", MARKDOWN)
    citation = Citation("t", "l", "s", "S", "L")
    parts = parts_of(citation, units, budget=20)
    assert len(parts) > 1
    holding = [p for p in parts if any(u.text == "The three steps are:" for u in p.units)]
    assert all(
        text in [u.text for u in holding[0].units]
        for text in ("Collect the data.", "fix types", "Train with `model.fit()`.")
    )


def test_pages_hold_whole_sections_in_order_within_the_budget() -> None:
    sections = tuple(Section(f"s{n}", f"S{n}", f"Sentence {n} is here.", 1, section_units(f"s{n}", f"Sentence {n} is here."))
                     for n in range(6))  # fmt: skip
    lesson = Lesson("l", "L", 1, "p", sections)
    assert len(lesson_pages("t", lesson, 10_000)) == 1
    small = lesson_pages("t", lesson, 30)
    assert len(small) > 1 and [p.citation.section for page in small for p in page] == [f"s{n}" for n in range(6)]


def test_a_cited_sentence_brings_the_next_sentence_of_its_paragraph_only() -> None:
    citation = Citation("t", "l", "s", "S", "L")
    text = "Students can fail quietly. They look fine on average tests. Nobody notices.\n\nA new paragraph."
    _text, numbered = number_units(parts_of(citation, section_units("s", text), 10_000))
    by_text = {n.unit.text: n for n in numbered}

    def shown(*texts: str) -> list[str]:
        return [n.unit.text for n in expand([by_text[t] for t in texts], numbered)]

    assert shown("Students can fail quietly.") == ["Students can fail quietly.", "They look fine on average tests."]
    assert shown("Nobody notices.") == ["Nobody notices."]  # the next paragraph is not brought
    other = Citation("t", "l", "s2", "S2", "L")  # nor the first sentence of the next section
    _text, two = number_units(
        [
            *parts_of(citation, section_units("s", "Last one."), 100),
            *parts_of(other, section_units("s2", "First one."), 100),
        ]
    )
    assert [n.unit.text for n in expand([two[0]], two)] == ["Last one."]


def test_a_section_without_units_quotes_one_paragraph_at_a_time() -> None:
    citation = Citation("t", "l", "s", "S", "L")
    passage = Passage("t", "l", "s", "S", "L", "First paragraph.\n\nSecond paragraph.", 0.5, 0.5)
    _text, numbered = number_units([Part(citation, fallback_units(passage))])
    assert [n.unit.text for n in expand([numbered[0]], numbered)] == ["First paragraph."]
