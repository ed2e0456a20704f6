"""Reply Markdown parsed into platform-free blocks; text escaped so it reads literally once pasted into Markdown."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bot.core import views
from bot.core.lessons import Lesson, Question
from bot.core.markup import Block, Span, code_block, escape, parse, plain, safe_url, visible
from tests.markup_checks import SECTION


def test_a_section_becomes_flat_blocks_with_markers_depths_and_spacing() -> None:
    blocks = parse(SECTION)
    assert [(b.kind, b.marker, b.depth, b.tight) for b in blocks] == [
        ("heading", "", 0, False),
        ("text", "", 0, False),
        ("text", "1.", 1, False),
        ("text", "2.", 1, True),
        ("code", "", 1, False),
        ("text", "•", 1, False),
        ("text", "◦", 2, True),
        ("text", "", 0, False),
    ]
    assert blocks[4].language == "python" and blocks[4].code.startswith("import pandas as pd\nmonth =")


def test_inline_markup_nests_and_code_keeps_its_characters() -> None:
    [block] = parse("Read **the *whole* file** with `a <b> **c**` and [docs](https://x.org/d)")
    assert block.spans == (
        Span("text", "Read "),
        Span("bold", "", (Span("text", "the "), Span("italic", "", (Span("text", "whole"),)), Span("text", " file"))),
        Span("text", " with "),
        Span("code", "a <b> **c**"),
        Span("text", " and "),
        Span("link", "https://x.org/d", (Span("text", "docs"),)),
    )


def test_only_web_and_mail_links_stay_links() -> None:
    [block] = parse("[a](javascript:alert(1)) [b](data:text/html,x) [c](file:///etc) [d](../x.csv) [e](ftp://h/f) "
                    "[f](https://ok.org) [g](mailto:a@b.org) ![h](./i.png)")  # fmt: skip
    links = [span.text for span in block.spans if span.kind == "link"]
    assert links == ["https://ok.org", "mailto:a@b.org"]
    assert visible(block.spans) == "[a](javascript:alert(1)) [b](data:text/html,x) [c](file:///etc) d e f g h"
    assert not safe_url("https:///no-host") and not safe_url("JAVASCRIPT:x") and safe_url("HTTPS://ok.org")


def test_raw_html_is_text_and_tables_read_row_by_row() -> None:
    assert plain("<b>not bold</b> &amp; <script>x</script>") == "<b>not bold</b> & <script>x</script>"
    assert plain("| name | size |\n|---|---|\n| a | 1 |\n| b | 2 |") == "name: a; size: 1\nname: b; size: 2"


def test_plain_text_keeps_lines_markers_and_paragraphs() -> None:
    assert plain("**Practice**\n1. List *tasks*.\n2. Measure.\n\nDone `now`.") == (
        "Practice\n1. List tasks.\n2. Measure.\n\nDone now."
    )
    assert parse("") == () and parse("   \n\n") == ()


def test_a_code_block_is_fenced_past_any_backticks_inside_it() -> None:
    assert code_block("print(1)") == "```\nprint(1)\n```"
    fenced = code_block("a ``` b\n````", "md")
    assert fenced.startswith("`````md\n") and [b.code for b in parse(fenced)] == ["a ``` b\n````"]


LINE_STARTS = ["\n", "\r\n", "    ", "\t", "- ", "+ ", "1. ", "2) ", "# ", "> ", "===", "---", "```", "~~~", "| a |"]
CHARACTERS = st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")  # Markdown turns NUL into �
typed = st.lists(st.sampled_from(LINE_STARTS) | st.text(CHARACTERS, max_size=8), max_size=20).map("".join)


@given(typed | st.text(CHARACTERS, max_size=80))
def test_escaped_text_reads_exactly_as_typed(text: str) -> None:
    blocks = parse(escape(text))
    shown = "\n".join(visible(b.spans) for b in blocks)
    assert re.sub(r"\s+", " ", shown).strip() == re.sub(r"\s+", " ", text).strip()
    assert all(b.kind == "text" and not b.marker and all(s.kind in ("text", "break") for s in b.spans) for b in blocks)


def test_escaping_leaves_ordinary_words_alone() -> None:
    assert escape("What does the student learn from? 95% of it, A–D.") == (
        "What does the student learn from? 95% of it, A–D."
    )
    assert escape("# 1. a*b_c <d> & [e](f)") == "\\# 1. a\\*b\\_c \\<d\\> \\& \\[e\\](f)"


def test_blocks_know_their_kind() -> None:
    assert parse("---")[0] == Block("rule") and parse("# T")[0].kind == "heading"


def test_names_and_quiz_text_pasted_into_replies_read_as_typed() -> None:
    home = views.home("__ada__ <b>", None, [])
    assert plain(home.text).startswith("Welcome to tutorbot, __ada__ <b>!")
    asked = Question("Is 2*3*4 = 24? Use `x`", ("- yes", "1. no"), 1, explanation="2*3*4 is *24*.")
    lesson = Lesson(id="l", title="Sums", minutes=1, premise="p", sections=(), quiz=(asked,))
    assert plain(views.feedback(lesson, asked, 0)) == "❌ Not quite. The answer is B) 1. no. 2*3*4 is *24*."
