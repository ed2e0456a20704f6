"""Reply Markdown parsed once into a small platform-free form that each adapter renders its own way.

Reply text is CommonMark (tables and ``~~strike~~`` too; raw HTML is shown as text). ``parse`` turns it into
a flat tuple of ``Block``s, each holding ``Span``s: lists become blocks with a marker and a depth, a quote is a
flag on its blocks, a table row a line of ``header: cell; …``. Flat blocks are what chat messages need: they
are rendered one by one and can be cut anywhere between or inside them. Links keep only safe targets
(http, https, mailto); any other is shown as its text. ``escape`` makes text safe to paste into reply Markdown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

SpanKind = Literal["text", "code", "break", "bold", "italic", "strike", "link"]
BlockKind = Literal["text", "heading", "code", "rule"]
SAFE_SCHEMES = {"http", "https", "mailto"}
BULLETS = ("•", "◦", "▪")  # by list depth
MAX_INDENT = 4  # lists nested deeper are indented no further: a chat window is narrow

_PARSER = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    ["table", "strikethrough"]
)
_STYLES: dict[str, SpanKind] = {"strong": "bold", "em": "italic", "s": "strike"}


@dataclass(frozen=True)
class Span:
    """A run of inline text: ``text``, inline ``code``, a line ``break``, or a bold/italic/strike/link group.

    For a link, ``text`` is its (safe) URL and ``children`` its label.
    """

    kind: SpanKind
    text: str = ""
    children: tuple[Span, ...] = ()


@dataclass(frozen=True)
class Block:
    """A paragraph-like block: text or a heading (``spans``), a code block (``code``), or a rule.

    ``depth`` is its list nesting; ``marker`` ("•", "3.") starts a list item, "" continues one. ``tight``
    blocks follow the previous one on the next line; the others after a blank line.
    """

    kind: BlockKind
    spans: tuple[Span, ...] = ()
    code: str = ""
    language: str = ""
    depth: int = 0
    marker: str = ""
    quoted: bool = False
    tight: bool = False


def indent_level(block: Block) -> int:
    """How many steps a block is indented: its list depth less one, at most ``MAX_INDENT``."""
    return min(max(block.depth - 1, 0), MAX_INDENT)


def visible(spans: Iterable[Span]) -> str:
    """The characters spans show, without their markup."""
    out = []
    for span in spans:
        if span.kind in ("text", "code"):
            out.append(span.text)
        elif span.kind == "break":
            out.append("\n")
        else:
            out.append(visible(span.children))
    return "".join(out)


def block_text(block: Block) -> str:
    """The characters a block shows (its marker left out)."""
    return block.code if block.kind == "code" else "———" if block.kind == "rule" else visible(block.spans)


def plain(markdown: str) -> str:
    """Reply Markdown as plain text: markup gone, list markers kept, blocks on their own lines."""
    out = []
    for n, block in enumerate(parse(markdown)):
        if n:
            out.append("\n" if block.tight else "\n\n")
        out.append(f"{block.marker} " if block.marker else "")
        out.append(block_text(block))
    return "".join(out)


def safe_url(url: str) -> bool:
    """Whether a link target may be shown as a link: http(s) with a host, or mailto."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    return scheme in SAFE_SCHEMES and (scheme == "mailto" or bool(parts.netloc))


# ---------------------------------------------------------------- text into Markdown

_INLINE_MARKUP = re.compile(r"([\\`*_\[\]<>&~|])")
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)  # four columns of it would make a code block
_LINE_START_MARKUP = re.compile(r"^(?:([#>+=-])|(\d+)([.)]))", re.MULTILINE)


def escape(text: str) -> str:
    """Text that reads literally once pasted into reply Markdown (a learner's words, an imported quiz)."""
    text = _INDENT.sub("", re.sub(r"\r\n?", "\n", text))
    text = _INLINE_MARKUP.sub(r"\\\1", text)
    return _LINE_START_MARKUP.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text)


def code_block(code: str, language: str = "") -> str:
    """Code as a fenced block that no backticks inside it can close early."""
    runs = [len(run) for run in re.findall(r"`+", code)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{language}\n{code.strip(chr(10))}\n{fence}"


# ---------------------------------------------------------------- parsing


def parse(markdown: str) -> tuple[Block, ...]:
    """Reply Markdown as blocks (never fails: any text is some Markdown)."""
    return tuple(_Walk().blocks(_PARSER.parse(markdown)))


@dataclass
class _List:
    ordered: bool
    number: int


class _Walk:
    """One pass over markdown-it's block tokens, keeping track of lists, quotes and line numbers."""

    def __init__(self) -> None:
        self.lists: list[_List] = []
        self.quotes = 0
        self.marker = ""  # the marker the next block takes: the first block of a list item
        self.end_line = -1  # the source line after the last block (a block starting there is tight)
        self.out: list[Block] = []

    def blocks(self, tokens: Sequence[Token]) -> list[Block]:
        heading = False
        for position, token in enumerate(tokens):
            kind = token.type
            if kind in ("bullet_list_open", "ordered_list_open"):
                self.lists.append(_List(kind == "ordered_list_open", int(token.attrGet("start") or 1)))
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.lists.pop()
            elif kind == "list_item_open":
                current = self.lists[-1]
                self.marker = f"{current.number}." if current.ordered else BULLETS[min(len(self.lists), 3) - 1]
                current.number += 1
            elif kind == "list_item_close":
                self.marker = ""  # an empty item gives its marker to no one
            elif kind == "blockquote_open":
                self.quotes += 1
            elif kind == "blockquote_close":
                self.quotes -= 1
            elif kind == "heading_open":
                heading = True
            elif kind == "inline" and tokens[position - 1].type in ("paragraph_open", "heading_open"):
                self.add(Block("heading" if heading else "text", spans(token.children or ())), tokens[position - 1])
                heading = False
            elif kind in ("fence", "code_block"):
                code = token.content.strip("\n")
                language = re.sub(r"[^\w+#.-]", "", token.info.split(maxsplit=1)[0]) if token.info.strip() else ""
                if code.strip():
                    self.add(Block("code", code=code, language=language[:30]), token)
            elif kind == "hr":
                self.add(Block("rule"), token)
            elif kind == "table_open":
                self.table(tokens, position)
        return self.out

    def add(self, block: Block, token: Token) -> None:
        """Add a block placed where ``token`` starts (its list depth, marker, quote and spacing)."""
        start, end = token.map or (self.end_line, self.end_line)
        block = replace(block, depth=len(self.lists), marker=self.marker, quoted=self.quotes > 0,
                        tight=bool(self.out) and start <= self.end_line)  # fmt: skip
        self.marker, self.end_line = "", max(end, start + 1)
        if block.kind in ("code", "rule") or block.spans or block.marker:  # an empty heading or paragraph shows nothing
            self.out.append(block)

    def table(self, tokens: Sequence[Token], start: int) -> None:
        """A table as one line per body row, each cell named by its column's header (as answers quote rows)."""
        headers: list[tuple[Span, ...]] = []
        row: list[tuple[Span, ...]] = []
        row_token, in_head = tokens[start], False
        for token in tokens[start + 1 :]:
            if token.type == "table_close":
                break
            if token.type == "tr_open":
                row, row_token = [], token
            elif token.type == "inline":
                row.append(spans(token.children or ()))
            elif token.type in ("thead_open", "thead_close"):
                in_head, headers = token.type == "thead_open", row
            elif token.type == "tr_close" and not in_head:
                line: list[Span] = []
                for n, cell in enumerate(row):
                    head = visible(headers[n]).strip() if n < len(headers) else ""
                    line += ([Span("text", "; ")] if line else []) + ([Span("text", f"{head}: ")] if head else [])
                    line += cell
                self.add(Block("text", _merged(line)), row_token)


def spans(tokens: Sequence[Token]) -> tuple[Span, ...]:
    """markdown-it's inline tokens as spans; a link to an unsafe target keeps only its text."""
    stack: list[tuple[str, str, list[Span]]] = [("root", "", [])]
    for token in tokens:
        kind = token.type
        out = stack[-1][2]
        if kind in ("text", "text_special"):
            out.append(Span("text", token.content))
        elif kind in ("softbreak", "hardbreak"):
            out.append(Span("break"))
        elif kind == "code_inline":
            out.append(Span("code", token.content))
        elif kind.endswith("_open") and kind[:-5] in (*_STYLES, "link"):
            stack.append((kind[:-5], str(token.attrGet("href") or ""), []))
        elif kind.endswith("_close") and kind[:-6] == stack[-1][0] and len(stack) > 1:
            name, url, children = stack.pop()
            inner = _merged(children)
            if name == "link" and not safe_url(url):
                stack[-1][2].extend(inner)
            elif inner:
                stack[-1][2].append(Span("link" if name == "link" else _STYLES[name], url, inner))
        elif kind == "image":
            alt = Span("text", visible(spans(token.children or ())) or "image")
            src = str(token.attrGet("src") or "")
            out.append(Span("link", src, (alt,)) if safe_url(src) else alt)
        elif token.content:
            out.append(Span("text", token.content))
    while len(stack) > 1:  # unbalanced (never from markdown-it, but cheap to be sure)
        stack[-2][2].extend(stack.pop()[2])
    return _merged(stack[0][2])


def _merged(items: Iterable[Span]) -> tuple[Span, ...]:
    """Spans with neighbouring texts joined and empty texts dropped."""
    out: list[Span] = []
    for span in items:
        if span.kind == "text" and not span.text:
            continue
        if span.kind == "text" and out and out[-1].kind == "text":
            out[-1] = Span("text", out[-1].text + span.text)
        else:
            out.append(span)
    return tuple(out)
