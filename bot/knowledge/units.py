"""Split a section's Markdown into citable units: sentences, list items, table rows and code blocks.

The Markdown is parsed with markdown-it-py (so links read as their words, emphasis and code marks drop
away), paragraphs are split into sentences with pysbd, and every list item, table row and code block is a
unit of its own. A paragraph right before a list is the list's lead-in: its last sentence names the list's
items, so an answer that cites the lead-in shows the list too. Each unit's id comes from its section and its
own words, so editing other text of the lesson leaves it unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt

from bot.core.lessons import Unit

_markdown = MarkdownIt("commonmark").enable("table")
_WORD = re.compile(r"\w+")
_LIST_OPEN = ("bullet_list_open", "ordered_list_open")
_LIST_CLOSE = ("bullet_list_close", "ordered_list_close")


@lru_cache(maxsize=1)
def _segmenter() -> Any:
    import pysbd  # noqa: PLC0415 - building the segmenter compiles its rules once

    return pysbd.Segmenter(language="en", clean=False)


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (abbreviations, decimals and initials stay inside their sentence)."""
    return [s.strip() for s in _segmenter().segment(text) if s.strip()]


def inline_text(token: Any) -> str:
    """What a reader reads of an inline token: words of text, links and code; images and HTML left out."""
    parts: list[str] = []
    for child in token.children or []:  # an image's alt text sits in its own children: it is left out
        if child.type == "text":
            parts.append(child.content)
        elif child.type == "code_inline":
            parts.append(f"`{child.content}`")
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join("".join(parts).split())


def unit_id(section_id: str, kind: str, text: str, copy: int = 1) -> str:
    """A stable id: the section and a short hash of the unit's words (``copy`` numbers repeats of one text)."""
    words = " ".join(_WORD.findall(text.lower()))
    digest = hashlib.sha1(f"{section_id}\n{kind}\n{words}".encode()).digest()
    code = base64.b32encode(digest).decode().lower()[:7]
    return f"{section_id}~{code}" + (f"-{copy}" if copy > 1 else "")


@dataclass
class _Builder:
    section_id: str
    lines: list[str]
    first_line: int
    units: list[Unit] = field(default_factory=list)
    copies: Counter = field(default_factory=Counter)
    blocks: int = 0

    def add(self, text: str, kind: str, line: int, same_block: bool = False) -> int | None:
        text = " ".join(text.split())
        if not _WORD.search(text):
            return None
        key = (kind, " ".join(_WORD.findall(text.lower())))
        self.copies[key] += 1
        self.blocks += 0 if same_block else 1
        self.units.append(
            Unit(unit_id(self.section_id, kind, text, self.copies[key]), text, kind, line, block=self.blocks)
        )
        return len(self.units) - 1

    def line_of(self, sentence: str, start: int, end: int, after: int) -> int:
        """The first source line at or after ``after`` (within the block) that holds the sentence's opening words."""
        opening = " ".join(_WORD.findall(sentence.lower())[:3])
        for index in range(max(start, after), end):
            if opening and opening in " ".join(_WORD.findall(self.lines[index].lower())):
                return index
        return max(start, after)

    def paragraph(self, text: str, block: Sequence[int] | None) -> int | None:
        """Add a paragraph's sentences; return the index of its last unit."""
        start, end = block or (0, 0)
        last, at = None, start
        for sentence in sentences(text):
            at = self.line_of(sentence, start, end, at) if block else at
            index = self.add(sentence, "sentence", self.first_line + at, same_block=last is not None)
            last = last if index is None else index
        return last


def section_units(section_id: str, markdown: str, first_line: int = 1) -> tuple[Unit, ...]:
    """The units of one section's Markdown, in reading order; ``first_line`` is the file line of its first line."""
    tokens = _markdown.parse(markdown)
    builder = _Builder(section_id, markdown.split("\n"), first_line)  # as markdown-it counts lines
    lists: list[tuple[int | None, list[str]]] = []  # open lists: (lead-in unit index, ids of their items)
    items: list[tuple[list[str], int]] = []  # open list items: (text so far, first line)
    row: list[str] = []
    row_line = 0
    headers: list[str] = []
    in_head = False
    last_paragraph_unit: int | None = None

    def flush_item() -> None:
        if items and items[-1][0]:
            parts, line = items[-1]
            index = builder.add(" ".join(parts), "item", builder.first_line + line)
            if index is not None and lists:
                lists[-1][1].append(builder.units[index].id)
            items[-1] = ([], line)

    for position, token in enumerate(tokens):
        kind = token.type
        if kind in _LIST_OPEN:
            flush_item()  # an item's own words come before its nested list
            follows_paragraph = position > 0 and tokens[position - 1].type == "paragraph_close"
            lists.append((last_paragraph_unit if follows_paragraph else None, []))
        elif kind in _LIST_CLOSE:
            lead, ids = lists.pop()
            if lead is not None and ids:
                builder.units[lead] = replace(builder.units[lead], items=tuple(ids))
        elif kind == "list_item_open":
            items.append(([], (token.map or (0, 0))[0]))
        elif kind == "list_item_close":
            flush_item()
            items.pop()
        elif kind == "inline" and tokens[position - 1].type == "paragraph_open":
            text = inline_text(token)
            if items:
                items[-1][0].append(text)
                last_paragraph_unit = None
            else:
                last_paragraph_unit = builder.paragraph(text, tokens[position - 1].map)
            continue
        elif kind == "paragraph_close" and items:
            flush_item()  # the item's paragraph is its unit; a nested list may follow
            last_paragraph_unit = len(builder.units) - 1 if builder.units and builder.units[-1].kind == "item" else None
            continue
        elif kind in ("fence", "code_block"):
            builder.add(token.content.strip(), "code", builder.first_line + (token.map or (0, 0))[0])
        elif kind == "thead_open":
            in_head, headers = True, []
        elif kind == "thead_close":
            in_head = False
        elif kind == "tr_open":
            row, row_line = [], (token.map or (0, 0))[0]
        elif kind == "inline" and tokens[position - 1].type in ("th_open", "td_open"):
            (headers if in_head else row).append(inline_text(token))
        elif kind == "tr_close" and not in_head:
            cells = [
                f"{head}: {cell}" if head else cell
                for head, cell in zip(headers + [""] * len(row), row, strict=False)
                if cell
            ]
            builder.add("; ".join(cells), "row", builder.first_line + row_line)
        if kind != "paragraph_close" and kind not in _LIST_OPEN:
            last_paragraph_unit = None  # only a list that comes right after a paragraph has a lead-in
    return tuple(builder.units)
