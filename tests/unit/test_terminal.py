"""Reply Markdown as Rich renderables for the console."""

from __future__ import annotations

import io

from rich.console import Console
from rich.style import Style

from bot.adapters.terminal import formatted, spans_text
from bot.core.markup import parse
from tests.markup_checks import SECTION


def printed(markdown: str, width: int = 80) -> str:
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(formatted(markdown))
    return console.export_text()


def test_a_lesson_section_reads_with_its_links_code_lists_and_heading() -> None:
    out = printed(SECTION, width=120)
    assert out.startswith(
        "Preparing the data\n\nUse Pandas (https://pandas.pydata.org/) (the name stands for Python Data"
    )
    assert 'tag <div class="x"> and **not bold** stay code. Read the whole file, twice.' in out
    assert "1. Convert the dates (MM/DD/YYYY).\n2. Extract the month:\n" in out
    assert "import pandas as pd\n" in out and "# a <comment> & **stars**" in out  # the code's own lines
    assert "• A list item with a link (https://example.org/a_b?x=1&y=2)\n  ◦ a nested item" in out
    assert "[a trap](javascript:alert(1))" in out and "a relative link." in out


def test_styles_come_from_richs_markdown_theme_and_links_are_clickable() -> None:
    [block] = parse("**bold** *it* ~~gone~~ `code` [docs](https://x.org)")
    text = spans_text(block.spans)
    styled = {text.plain[span.start : span.end]: span.style for span in text.spans}
    assert styled["bold"] == "markdown.strong" and styled["it"] == "markdown.em" and styled["gone"] == "markdown.s"
    assert styled["code"] == "markdown.code" and Style(link="https://x.org") in [s.style for s in text.spans]


def test_rich_markup_in_text_is_shown_as_typed() -> None:
    assert printed("**Bold** and [red]not red[/red]") == "Bold and [red]not red[/red]\n"


def test_a_long_list_item_wraps_under_its_own_text() -> None:
    out = printed("- " + "word " * 12, width=30)
    lines = out.splitlines()
    assert lines[0].startswith("• word") and all(line.startswith("  word") for line in lines[1:]) and len(lines) > 1
