"""Reply Markdown as Rich renderables for the console: styled text, links, code blocks, lists and quotes.

Built from the same parsed blocks as the Telegram and Discord messages, with the colours of Rich's own
Markdown theme. Text is never read as Rich markup, so ``[red]`` in a lesson or a learner's words shows as
typed. A link is clickable where the terminal supports it, and its address follows its label in brackets
for terminals that do not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.rule import Rule
from rich.segment import Segment
from rich.style import Style
from rich.syntax import Syntax
from rich.text import Text

from bot.core.markup import Block, Span, indent_level, parse, visible

QUOTE_MARK = "│ "
_STYLES = {"bold": "markdown.strong", "italic": "markdown.em", "strike": "markdown.s"}


def formatted(markdown: str) -> Group:
    """Reply Markdown as one renderable: its blocks, a blank line between paragraphs."""
    items: list[RenderableType] = []
    for n, block in enumerate(parse(markdown)):
        if n and not block.tight:
            items.append(Text())
        items.append(block_renderable(block))
    return Group(*items)


def block_renderable(block: Block) -> RenderableType:
    """One block: a rule, a code block, or text after its list marker and quote mark."""
    if block.kind == "rule":
        return Rule(style="markdown.hr")
    if block.kind == "code":
        body: RenderableType = Syntax(block.code, block.language or "text", word_wrap=True,
                                      background_color="default")  # fmt: skip
    else:
        text = spans_text(block.spans)
        if block.kind == "heading":
            text.stylize("bold")
        body = text
    indent = "  " * indent_level(block)
    lead = f"{indent}{block.marker} " if block.marker else indent + ("  " if block.depth else "")
    if not lead and not block.quoted:
        return body
    return Hanging(body, lead, QUOTE_MARK if block.quoted else "")


def spans_text(spans: Iterable[Span]) -> Text:
    """Spans as Rich ``Text``: styles as ranges over the plain characters."""
    text = Text()
    _append(text, spans)
    return text


def _append(text: Text, spans: Iterable[Span]) -> None:
    for span in spans:
        start = len(text)
        if span.kind == "text":
            text.append(span.text)
        elif span.kind == "break":
            text.append("\n")
        elif span.kind == "code":
            text.append(span.text, style="markdown.code")
        elif span.kind == "link":
            _append(text, span.children)
            text.stylize(Style(link=span.text), start, len(text))
            text.stylize("markdown.link", start, len(text))
            if visible(span.children).strip() != span.text:
                text.append(f" ({span.text})", style="dim")
        else:
            _append(text, span.children)
            text.stylize(_STYLES[span.kind], start, len(text))


@dataclass
class Hanging:
    """A renderable after a lead (a list marker), its further lines indented to line up under the first."""

    body: RenderableType
    lead: str
    mark: str = ""  # starts every line (a quote's bar)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = len(self.mark) + len(self.lead)
        lines = console.render_lines(self.body, options.update_width(max(options.max_width - width, 1)), pad=False)
        for n, line in enumerate(lines):
            if self.mark:
                yield Segment(self.mark, console.get_style("markdown.block_quote"))
            yield Segment(self.lead if n == 0 else " " * len(self.lead))
            yield from line
            yield Segment.line()
