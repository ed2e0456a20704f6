"""Reply Markdown as Telegram HTML (``parse_mode`` HTML), and messages of it that fit Telegram's limit.

Only the tags Telegram accepts are written: ``<b> <i> <s> <code> <pre> <a href>``; everything else is
escaped text. Headings are bold, list items "• " or "3. " lines, quotes lines marked "│ ", a rule a dash
line. Telegram's nesting rules are kept: nothing inside ``<code>``/``<pre>``, and code inside a link is shown
as the link's plain text. Messages are at most 4096 characters of *visible* text (tags and entities do not
count), measured in UTF-16 code units as Telegram counts them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape, unescape

from bot.adapters import split
from bot.core.markup import Block, Span, indent_level, parse

MAX_TEXT = 4096
ALLOWED_TAGS = {"b", "i", "s", "code", "pre", "a"}
QUOTE_MARK = "│ "
RULE = "———"
_TAG = re.compile(r"<[^>]*>")
_LANGUAGE = re.compile(r"[^\w+#.-]")
_TAGS = {"bold": "b", "italic": "i", "strike": "s"}


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def visible_text(html: str) -> str:
    """What a chat shows of Telegram HTML written here: the text without tags, entities decoded."""
    return unescape(_TAG.sub("", html))


class TelegramHtml:
    """The ``split.Format`` of Telegram: HTML blocks, counted by visible UTF-16 length."""

    def block(self, block: Block) -> str:
        """One block as Telegram HTML."""
        if block.kind == "rule":
            return RULE
        if block.kind == "code":
            language = _LANGUAGE.sub("", block.language)
            attribute = f' class="language-{language}"' if language else ""
            return f"<pre><code{attribute}>{escape(block.code, quote=False)}</code></pre>"
        body = spans_html(block.spans)
        if block.kind == "heading" and body.strip():
            body = f"<b>{spans_html(block.spans, frozenset({'bold'}))}</b>"
        indent = "   " * indent_level(block)
        if block.marker:
            lead, hanging = f"{indent}{block.marker} ", indent + " " * (len(block.marker) + 1)
        else:
            lead = hanging = indent + ("  " if block.depth else "")
        if block.quoted:
            lead, hanging = QUOTE_MARK + lead, QUOTE_MARK + hanging
        return lead + body.replace("\n", "\n" + hanging)

    def length(self, rendered: str) -> int:
        """Visible length: what Telegram counts against its 4096 characters."""
        return utf16_len(visible_text(rendered))


FORMAT = TelegramHtml()


def spans_html(spans: Sequence[Span], inside: frozenset[str] = frozenset()) -> str:
    """Spans as Telegram HTML; ``inside`` names the styles already open around them (not opened twice)."""
    out = []
    for span in spans:
        if span.kind == "text":
            out.append(escape(span.text, quote=False))
        elif span.kind == "break":
            out.append("\n")
        elif span.kind == "code":
            text = escape(span.text, quote=False)
            out.append(text if "link" in inside else f"<code>{text}</code>")  # a link can't hold code
        elif span.kind == "link":
            label = spans_html(span.children, inside | {"link"})
            out.append(f'<a href="{escape(span.text, quote=True)}">{label}</a>' if label else "")
        elif span.kind in inside:
            out.append(spans_html(span.children, inside))
        else:
            inner = spans_html(span.children, inside | {span.kind})
            tag = _TAGS[span.kind]
            out.append(f"<{tag}>{inner}</{tag}>" if inner else "")
    return "".join(out)


def to_html(markdown: str) -> str:
    """Reply Markdown as one piece of Telegram HTML (not split)."""
    return split.render(parse(markdown), FORMAT)


def message_texts(markdown: str, limit: int = MAX_TEXT) -> list[str]:
    """Reply Markdown as HTML messages, each at most ``limit`` visible characters (never none)."""
    return split.messages(markdown, FORMAT, limit) or ["…"]


def partial_text(markdown: str, limit: int = MAX_TEXT) -> str:
    """HTML for a growing answer: its first message's worth (an unfinished ``**`` or fence is still valid HTML)."""
    return split.preview(markdown, FORMAT, limit) or "…"
