"""Reply Markdown as Discord Markdown: the markup of lesson text, escaping, and messages cut to 2000 characters."""

from __future__ import annotations

import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.discord import MAX_MESSAGE_CHARS, discord_length, escape, preview, render, render_text, split_text
from bot.core.messages import Button, Reply, rows
from tests.markup_checks import SECTION, discord_read, squeezed
from tests.unit.test_telegram_formatting import markdownish


def words(read: str) -> str:
    """What must survive a split, as markdown-it reads Discord Markdown: markdown-it stands in for Discord's own
    reader, and the two disagree on whether a star next to punctuation ends emphasis, so those are left out."""
    return re.sub(r"[*_~\u200b]+", "", squeezed(read))


# ---------------------------------------------------------------- markup


def test_a_lesson_section_keeps_its_links_code_emphasis_lists_and_heading() -> None:
    text = render_text(SECTION)
    assert text.startswith("**Preparing the data**\n\n")
    assert "Use [Pandas](<https://pandas.pydata.org/>) (the name stands for `Python Data Analysis`)" in text
    assert 'tag `<div class="x">` and `**not bold**` stay code' in text  # nothing escaped or formatted in code
    assert "Read the *whole* **file, *twice***." in text
    assert "1. Convert the dates (`MM/DD/YYYY`).\n2. Extract the month:" in text
    assert ("\n```python\nimport pandas as pd\nmonth = pd.DatetimeIndex(pumpkins['Date']).month  "
            "# a <comment> & **stars**\n```\n") in text  # fmt: skip
    assert "- A *list* item with [a link](<https://example.org/a_b?x=1&y=2>)\n  - a nested item" in text


def test_html_mentions_and_unsafe_or_relative_links_are_shown_literally() -> None:
    text = render_text(SECTION)
    assert 'Beware of \\<script\\>alert("x")\\</script\\> & \\[a trap\\](javascript:alert(1))' in text
    assert text.count("](<") == 2 and " and a relative link." in text
    assert (
        render_text("hi <@123> and @everyone ||spoiler|| _x_") == "hi \\<@123\\> and @everyone \\|\\|spoiler\\|\\| *x*"
    )


def test_text_is_escaped_wherever_it_could_be_misread() -> None:
    assert render_text("**Quiz done: 3/4** · snake_case and a\\*b and \\~\\~x\\~\\~") == (
        "**Quiz done: 3/4** · snake\\_case and a\\*b and \\~\\~x\\~\\~"
    )
    assert render_text("a\\_b **c** d\\_e") == "a\\_b **c** d\\_e"  # the two '_' can never pair up into italics
    assert escape("# not a heading\n> not a quote\n- not a list\n2. not a list") == (
        "\\# not a heading\n\\> not a quote\n\\- not a list\n2\\. not a list"
    )
    assert escape("see http://127.0.0.1:8080/a_b_c.") == "see http://127.0.0.1:8080/a_b_c."  # URLs stay whole


def test_links_code_with_backticks_and_touching_styles_stay_intact() -> None:
    assert render_text("<https://x.org/a(b)>") == "<https://x.org/a%28b%29>"  # its label is the URL: no mask
    assert render_text("[mail](mailto:ada@example.org)") == "mail (ada@example.org)"  # Discord masks only web links
    assert render_text("``a`b``") == "`` a`b ``"
    assert render_text("**a***b*") == "**a**\u200b*b*"  # not '***', which Discord would read otherwise


def test_quotes_and_rules() -> None:
    assert render_text("> quoted **words**\n> go on\n\n---") == "> quoted **words**\n> go on\n\n———"


# ---------------------------------------------------------------- messages


def test_long_text_splits_at_paragraphs_then_lines_then_words() -> None:
    paragraph = ("word " * 300).strip()  # 1499 characters
    assert split_text(f"{paragraph}\n\n{paragraph}") == [paragraph, paragraph]
    lines = "\n".join([("line " * 20).strip()] * 40)
    assert all(len(piece) <= MAX_MESSAGE_CHARS and not piece.endswith("lin") for piece in split_text(lines))
    words = split_text("abc " * 1000)
    assert len(words) == 2 and all(piece.split() == ["abc"] * len(piece.split()) for piece in words)


def test_text_without_boundaries_is_cut_hard_and_escapes_count() -> None:
    pieces = split_text("\\_" * 2500)  # every '_' is written escaped: 5000 characters
    assert len(pieces) == 3 and all(len(piece) <= MAX_MESSAGE_CHARS for piece in pieces)
    assert "".join(pieces) == "\\_" * 2500


def test_a_bold_span_cut_in_two_stays_bold_on_both_sides() -> None:
    first, second = split_text("intro " * 300 + "**" + ("bold " * 200).strip() + "**")
    assert first.count("**") % 2 == 0 and second.startswith("**") and second.endswith("**")
    assert "\\*" not in first + second


def test_a_code_block_cut_in_two_is_closed_and_opened_again() -> None:
    code = "\n".join(f"print({n})  # **not bold** _x_" for n in range(120))
    parts = split_text(f"Run this:\n\n```python\n{code}\n```\n\nDone.")
    assert len(parts) >= 2 and all(len(part) <= MAX_MESSAGE_CHARS for part in parts)
    blocks = [part[part.index("```python\n") + 10 : part.rindex("\n```")] for part in parts if "```python" in part]
    assert len(blocks) == len(parts) and "\n".join(blocks) == code  # every line whole, nothing escaped in code
    assert all(part.count("```") % 2 == 0 for part in parts)


def test_emoji_count_twice_as_discord_counts_them() -> None:
    assert discord_length("🎉") == 2 and len(split_text("🎉" * 1500)) == 2
    assert all(discord_length(piece) <= MAX_MESSAGE_CHARS for piece in split_text("🎉 " * 1500))


def test_a_growing_answer_shows_its_first_messages_worth_and_an_unclosed_fence_stays_a_block() -> None:
    growing = preview("x" * 2500)
    assert len(growing) == MAX_MESSAGE_CHARS and growing.endswith("\n…")
    assert preview("short **bold") == "short \\*\\*bold"
    assert preview("Like this:\n```py\nfor x in xs:") == "Like this:\n```py\nfor x in xs:\n```"


def test_a_reply_becomes_messages_with_its_buttons_under_the_last() -> None:
    section = SECTION * 12
    messages = render(Reply(section, buttons=rows([Button("Next ▸", "n:1")])), owner=7)
    assert len(messages) >= 2 and [bool(m.buttons) for m in messages] == [False] * (len(messages) - 1) + [True]
    assert words("".join(discord_read(m.content) for m in messages)) == words(discord_read(render_text(section)))


@settings(max_examples=150, deadline=None)
@given(text=st.text() | markdownish, limit=st.integers(min_value=200, max_value=600))
def test_any_text_splits_into_messages_within_the_limit_losing_nothing(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(discord_length(part) <= limit for part in parts)
    shown = "".join(discord_read(part) for part in parts)
    assert words(shown) == words(discord_read(render_text(text)))


@settings(max_examples=40, deadline=None)
@given(text=markdownish.filter(lambda t: t.strip()))
def test_any_long_text_fits_discords_2000_characters(text: str) -> None:
    long = (text + "\n") * math.ceil(5000 / len(text))
    parts = split_text(long)
    assert all(discord_length(part) <= MAX_MESSAGE_CHARS for part in parts)
    shown = "".join(discord_read(part) for part in parts)
    assert words(shown) == words(discord_read(render_text(long)))
