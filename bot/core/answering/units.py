"""The lesson text a question's prompt holds: whole sections, each unit numbered, and the grammar of the reply.

The model reads numbered units and replies with the numbers of the units that state the answer, through a
JSON-schema grammar whose ``enum`` lists only the numbers in its prompt: it cannot cite a sentence that does
not exist. A lesson is read in *pages*: the whole lesson when it fits ``page_tokens``, otherwise runs of
consecutive whole sections. A page is a stable prompt prefix, so it can be read ahead while the learner
reads. A section too long for a page is cut between blocks, never between a list's lead-in and its items.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.answering.checks import defuse
from bot.core.lessons import Lesson, Section, Unit
from bot.core.messages import Citation
from bot.core.ports import Passage

CHARS_PER_TOKEN = 3.6  # English lesson text in Qwen2.5's tokenizer (measured on the bundled track: 3.5-3.8)


def tokens_of(text: str) -> int:
    """A cheap estimate of how many model tokens ``text`` takes."""
    return int(len(text) / CHARS_PER_TOKEN) + 1


@dataclass(frozen=True)
class Part:
    """A section, or a run of its units when the section is too long to read whole."""

    citation: Citation
    units: tuple[Unit, ...]


@dataclass(frozen=True)
class Numbered:
    """A unit as the prompt shows it: its number there, and where it comes from."""

    number: str
    unit: Unit
    citation: Citation


def citation_of(track: str, lesson: Lesson, section: Section) -> Citation:
    """The citation of a lesson section."""
    return Citation(track, lesson.id, section.id, section.heading, lesson.title)


def fallback_units(passage: Passage) -> tuple[Unit, ...]:
    """Units for text that has none (a section built without them): each paragraph is one unit and one block."""
    paragraphs = [" ".join(p.split()) for p in passage.text.split("\n\n") if p.strip()]
    return tuple(
        Unit(f"{passage.section}~p{n}", text, "sentence", block=n) for n, text in enumerate(paragraphs, start=1)
    )


def _blocks(units: tuple[Unit, ...]) -> list[tuple[Unit, ...]]:
    """Units grouped so that a list's lead-in and its items stay together."""
    blocks: list[list[Unit]] = []
    pending: set[str] = set()
    for unit in units:
        if unit.id in pending:
            blocks[-1].append(unit)
        else:
            blocks.append([unit])
        pending |= set(unit.items)
    return [tuple(block) for block in blocks]


def _render(unit: Unit) -> str:
    return defuse(unit.text if unit.kind != "code" else unit.text[:600])


def parts_of(citation: Citation, units: tuple[Unit, ...], budget: int) -> list[Part]:
    """A section's units as one part, or as several runs of whole blocks of at most ``budget`` tokens each."""
    parts: list[list[Unit]] = [[]]
    used = 0
    for block in _blocks(units):
        size = sum(tokens_of(_render(unit)) + 3 for unit in block)
        if parts[-1] and used + size > budget:
            parts.append([])
            used = 0
        parts[-1].extend(block)
        used += size
    return [Part(citation, tuple(part)) for part in parts if part]


def part_tokens(part: Part) -> int:
    """Estimated tokens of a part in a prompt."""
    return tokens_of(part.citation.heading) + sum(tokens_of(_render(unit)) + 3 for unit in part.units) + 4


def lesson_pages(track: str, lesson: Lesson, budget: int) -> list[tuple[Part, ...]]:
    """The lesson as pages of consecutive parts, each page at most ``budget`` tokens (a long section is cut)."""
    pages: list[list[Part]] = [[]]
    used = 0
    for section in lesson.sections:
        if not section.units:
            continue
        for part in parts_of(citation_of(track, lesson, section), section.units, budget):
            size = part_tokens(part)
            if pages[-1] and used + size > budget:
                pages.append([])
                used = 0
            pages[-1].append(part)
            used += size
    return [tuple(page) for page in pages if page]


def number_units(parts: tuple[Part, ...] | list[Part]) -> tuple[str, list[Numbered]]:
    """The parts as prompt text, every unit numbered from 1 (list items indented under their lead-in)."""
    lines: list[str] = []
    numbered: list[Numbered] = []
    for part in parts:
        lines.append(f"## {defuse(part.citation.lesson_title)} › {defuse(part.citation.heading)}")
        inside: set[str] = set()
        for unit in part.units:
            number = str(len(numbered) + 1)
            numbered.append(Numbered(number, unit, part.citation))
            indent = "    " if unit.id in inside else ""
            marker = "- " if unit.kind == "item" else ""
            lines.append(f"{indent}[{number}] {marker}{_render(unit)}")
            inside |= set(unit.items)
        lines.append("")
    return "\n".join(lines).strip(), numbered


def citation_schema(numbers: list[str], most: int) -> dict:
    """The reply's grammar: ``{"units": [...]}`` holding one to ``most`` of the prompt's unit numbers.

    At least one: allowed to cite nothing, the 1.5B model cited nothing for most answerable questions
    (bench/answer_eval.py); whether the cited units really state the answer is the judge's call.
    """
    units = {"type": "array", "items": {"type": "string", "enum": numbers}, "minItems": 1, "maxItems": most}
    return {"type": "object", "properties": {"units": units}, "required": ["units"]}


def expand(chosen: list[Numbered], numbered: list[Numbered]) -> list[Numbered]:
    """The chosen units in reading order, each with what it needs to be read alone.

    A lead-in brings its list's items (and an item that leads a nested list brings that list); a sentence
    brings the next sentence of its paragraph, where an answer most often runs on ("Students can also fail
    quietly." is explained by the sentence after it). On the tuning sets this raised the citations that hold
    the answer from 23 to 27 of 48 and let the judge tell them from uncovered questions better (AUC 0.86 to
    0.90; bench/answer_eval.py).
    """
    by_id = {n.unit.id: n for n in numbered}
    position = {n.unit.id: index for index, n in enumerate(numbered)}
    wanted: dict[str, Numbered] = {}
    waiting = list(chosen)
    while waiting:
        item = waiting.pop()
        if item.unit.id not in wanted:
            wanted[item.unit.id] = item
            waiting.extend(by_id[item_id] for item_id in item.unit.items if item_id in by_id)
    for item in list(wanted.values()):
        following = position[item.unit.id] + 1
        if item.unit.kind == "sentence" and following < len(numbered):
            after = numbered[following]
            if (
                after.citation == item.citation
                and after.unit.kind == "sentence"
                and after.unit.block == item.unit.block
            ):
                wanted.setdefault(after.unit.id, after)
    return sorted(wanted.values(), key=lambda n: position[n.unit.id])
