"""Reply Markdown as Discord Markdown, and messages of it that fit Discord's 2000 characters.

Bold ``**``, italic ``*``, strike ``~~``, code spans and ````` ``` ````` blocks, ``[label](<url>)`` masked
links (the angle brackets keep Discord from adding a preview), ``- ``/``3. `` lists and ``> `` quotes;
headings are bold. Text is escaped everywhere it could be misread (``_``, ``<@…>`` mentions, ``||``, a ``#``
starting a line), and bare URLs are left whole so Discord still links them. Discord counts the raw
content, markup included, in UTF-16 code units.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.adapters import split
from bot.core.markup import Block, Span, indent_level, parse, visible

MAX_MESSAGE_CHARS = 2000
RULE = "———"
ZERO_WIDTH = "\u200b"  # keeps two runs of markup characters from merging into another one
_URL = re.compile(r"https?://[^\s<>]+[^\s<>.,:;\"')\]]")
_MARKUP_CHAR = re.compile(r"([\\*_~|`<>\[\]])")
_LINE_START_MARKUP = re.compile(r"^([ \t]*)(?:([#+=-])|(\d+)([.)]))", re.MULTILINE)
_DELIMITERS = {"bold": "**", "italic": "*", "strike": "~~"}
_URL_UNSAFE = {"(": "%28", ")": "%29", "<": "%3C", ">": "%3E", " ": "%20"}


def discord_length(text: str) -> int:
    """Length as Discord counts it (UTF-16 code units: an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Text shown literally: every Markdown character escaped, wherever it is (URLs are left whole)."""
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(_escape_plain(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape_plain(text[last:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    # Unpaired characters are escaped too: one piece of text is written next to others, and a '_' here could
    # pair with one there. A piece may start a line, so what would start a heading or a list is escaped.
    text = _MARKUP_CHAR.sub(r"\\\1", text)
    return _LINE_START_MARKUP.sub(lambda m: m[1] + (f"\\{m[2]}" if m[2] else f"{m[3]}\\{m[4]}"), text)


def code_span(code: str) -> str:
    """Inline code that no backtick inside it can end early."""
    if not code.strip():
        return code
    if "`" not in code:
        return f"`{code}`"
    return f"`` {re.sub('`(?=`)', '`' + ZERO_WIDTH, code)} ``"


class DiscordMarkdown:
    """The ``split.Format`` of Discord: Markdown blocks, counted raw."""

    def block(self, block: Block) -> str:
        """One block as Discord Markdown."""
        quote = "> " if block.quoted else ""
        if block.kind == "rule":
            return quote + RULE
        if block.kind == "code":
            code = re.sub("`(?=`)", "`" + ZERO_WIDTH, block.code)
            language = re.sub(r"[^a-z0-9_+#.-]", "", block.language.lower())
            return "\n".join(quote + line for line in f"```{language}\n{code}\n```".split("\n"))
        if block.kind == "heading":
            body = _styled("**", spans_markdown(block.spans, frozenset({"bold"})))
        else:
            body = spans_markdown(block.spans)
        indent = "  " * indent_level(block)
        if block.marker:
            marker = block.marker if block.marker[0].isdigit() else "-"
            lead, hanging = f"{indent}{marker} ", indent + " " * (len(marker) + 1)
        else:
            lead = hanging = indent + ("  " if block.depth else "")
        return quote + lead + body.replace("\n", "\n" + quote + hanging)

    def length(self, rendered: str) -> int:
        """Raw length: Discord counts the markup too."""
        return discord_length(rendered)


FORMAT = DiscordMarkdown()


def spans_markdown(spans: Sequence[Span], inside: frozenset[str] = frozenset()) -> str:
    """Spans as Discord Markdown; ``inside`` names the styles already open around them (not opened twice)."""
    out: list[str] = []
    for span in spans:
        if span.kind == "text":
            piece = escape(span.text)
        elif span.kind == "break":
            piece = "\n"
        elif span.kind == "code":
            piece = code_span(span.text)
        elif span.kind == "link":
            piece = _link(span, inside)
        elif span.kind in inside:
            piece = spans_markdown(span.children, inside)
        else:
            piece = _styled(_DELIMITERS[span.kind], spans_markdown(span.children, inside | {span.kind}))
        if out and out[-1] and piece and out[-1][-1] in "*~`" and piece[0] in "*~`":
            out.append(ZERO_WIDTH)
        out.append(piece)
    return "".join(out)


def _styled(delimiter: str, inner: str) -> str:
    """``inner`` between delimiters, white space kept outside them (Discord ignores ``** x**``)."""
    core = inner.strip()
    if not core:
        return inner
    start = inner.index(core)
    return f"{inner[:start]}{delimiter}{core}{delimiter}{inner[start + len(core) :]}"


def _link(span: Span, inside: frozenset[str]) -> str:
    """A masked link without a preview; a bare ``<url>`` when its label is the URL; mailto as text."""
    label = visible(span.children)
    url = span.text
    if not url.lower().startswith(("http://", "https://")):
        address = url.split(":", 1)[-1]
        return escape(label) + (f" ({escape(address)})" if label != address else "")
    target = "".join(_URL_UNSAFE.get(char, char) for char in url)
    if label.strip() == url:
        return f"<{target}>"
    return f"[{spans_markdown(span.children, inside | {'link'})}](<{target}>)"


def render_text(markdown: str) -> str:
    """Reply Markdown as one piece of Discord Markdown (not split)."""
    return split.render(parse(markdown), FORMAT)


def split_text(markdown: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Reply Markdown as Discord messages of at most ``limit`` characters (one empty message for blank text)."""
    return split.messages(markdown, FORMAT, limit) or [""]


def preview(markdown: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A growing answer's first message's worth (an unfinished ``**`` or fence still renders cleanly)."""
    return split.preview(markdown, FORMAT, limit)
