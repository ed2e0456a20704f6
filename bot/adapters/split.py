"""Reply Markdown as messages that fit a platform's limit: the one splitting rule every adapter uses.

An adapter describes its platform with a ``Format``: how it writes one block, and how the platform counts a
message's length. Blocks are packed into messages in order; a block too long for a message of its own is
cut inside (text at a line break or a space, a code block at the end of a line, anywhere as a last resort),
and every message is rendered from whole blocks, so each is complete markup on its own: a bold span cut in
two is bold on both sides, a code block cut in two is closed and opened again, a link stays a link.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol

from bot.core.markup import Block, Span, block_text, parse, visible

MORE = "\n…"  # ends a streaming preview that has more than one message's worth


class Format(Protocol):
    """How a platform writes blocks and counts a message's length."""

    def block(self, block: Block) -> str:
        """One block as the platform's markup (its list marker, indentation and quote mark included)."""
        ...

    def length(self, rendered: str) -> int:
        """A message's length as the platform counts it against its limit."""
        ...


def separator(block: Block) -> str:
    """What goes between a block and the one before it."""
    return "\n" if block.tight else "\n\n"


def render(blocks: Sequence[Block], fmt: Format) -> str:
    """Blocks written as one message."""
    return "".join((separator(block) if n else "") + fmt.block(block) for n, block in enumerate(blocks))


def messages(markdown: str, fmt: Format, limit: int) -> list[str]:
    """Reply Markdown as messages of at most ``limit`` (as ``fmt`` counts); none for blank text."""
    parts = pack(parse(markdown), fmt, limit)
    return [render(part, fmt) for part in parts if any(_shows(block) for block in part)]


def preview(markdown: str, fmt: Format, limit: int) -> str:
    """The first message of a growing text, ending in an ellipsis when more is already written."""
    parts = messages(markdown, fmt, limit - fmt.length(MORE))
    if not parts:
        return ""
    return parts[0] + MORE if len(parts) > 1 else parts[0]


def pack(blocks: Sequence[Block], fmt: Format, limit: int) -> list[list[Block]]:
    """Blocks grouped into messages of at most ``limit``; a block too long for a message of its own is cut, its
    head filling what room the current message has left."""
    parts: list[list[Block]] = []
    current: list[Block] = []
    used = 0
    queue = deque(blocks)
    while queue:
        block = queue.popleft()
        size = fmt.length(fmt.block(block))
        gap = fmt.length(separator(block)) if current else 0
        if used + gap + size <= limit:
            current.append(block)
            used += gap + size
            continue
        room = limit - used - gap
        if size > limit and (not current or room >= limit // 4):
            cuts = cut(block, fmt, room if current else limit, force=not current)
            if cuts is None:
                queue.appendleft(block)
            else:
                current.append(cuts[0])
                if cuts[1] is not None:
                    queue.appendleft(cuts[1])
        else:
            queue.appendleft(block)  # it fits a message of its own: the next one
        parts.append(current)
        current, used = [], 0
    if current:
        parts.append(current)
    return parts


def cut(block: Block, fmt: Format, limit: int, force: bool = True) -> tuple[Block, Block | None] | None:
    """The longest head of ``block`` that fits ``limit`` (ending at a line or word when one is near), and the rest.

    None when not even one character fits, unless ``force``: then one character, so a message still moves on.
    """
    text = block_text(block)
    if block.kind == "rule" or not text:
        return (block, None) if force else None
    end = _longest(block, fmt, limit, len(text))
    if end == 0 and any(span.kind != "text" for span in block.spans):
        plain = replace(block, spans=(Span("text", visible(block.spans)),))  # its markup is too long (a huge URL)
        return cut(plain, fmt, limit, force) if force else None
    if end == 0 and not force:
        return None
    end = max(end, 1)
    start = end
    if end < len(text):
        breaks = ("\n",) if block.kind == "code" else ("\n", " ")
        for mark in breaks:
            at = text.rfind(mark, 0, end + 1)
            if at > end // 3:  # never a sliver: a hard cut beats a tiny message
                end, start = at, at + 1
                break
    if block.kind != "code":
        while end > 1 and text[end - 1].isspace():
            end -= 1
        while start < len(text) and text[start].isspace():
            start += 1
    head = piece(block, 0, end)
    if start >= len(text):
        return head, None
    return head, replace(piece(block, start, len(text)), marker="", tight=True)


def _longest(block: Block, fmt: Format, limit: int, size: int) -> int:
    """The largest ``end`` whose head ``piece(block, 0, end)`` renders within ``limit`` (0 if none)."""
    low, high = 0, size
    while low < high:
        middle = (low + high + 1) // 2
        if fmt.length(fmt.block(piece(block, 0, middle))) <= limit:
            low = middle
        else:
            high = middle - 1
    return low


def piece(block: Block, start: int, end: int) -> Block:
    """The part of a block that shows characters ``start`` to ``end`` of its text, markup kept."""
    if block.kind == "code":
        return replace(block, code=block.code[start:end])
    return replace(block, spans=slice_spans(block.spans, start, end))


def slice_spans(spans: Sequence[Span], start: int, end: int) -> tuple[Span, ...]:
    """The spans that show characters ``start`` to ``end`` of their visible text, each keeping its markup."""
    out: list[Span] = []
    offset = 0
    for span in spans:
        size = len(visible((span,)))
        low, high = max(start - offset, 0), min(end - offset, size)
        if low < high:
            if span.kind in ("text", "code"):
                out.append(Span(span.kind, span.text[low:high]))
            elif span.kind == "break":
                out.append(span)
            else:
                out.append(Span(span.kind, span.text, slice_spans(span.children, low, high)))
        offset += size
        if offset >= end:
            break
    return tuple(out)


def _shows(block: Block) -> bool:
    """Whether a block shows anything but white space (a message of only spaces is refused)."""
    return bool(block.marker) or block.kind == "rule" or bool(block_text(block).strip())
