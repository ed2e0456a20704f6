"""Reply Markdown as Telegram HTML: the markup of lesson text, escaping, and messages cut to Telegram's limit."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.telegram.formatting import MAX_TEXT, message_texts, partial_text, to_html, utf16_len
from bot.adapters.telegram.render import message_kwargs, poll_question
from bot.core.messages import Button, QuizCard, Reply, rows
from tests.markup_checks import SECTION, squeezed, telegram_read

# Pieces of Markdown that interact: markers that open and close, line starts, links, escapes, HTML, emoji.
MARKDOWN_PIECES = ["**", "*", "_", "__", "~~", "`", "```", "```py\n", "\n", "\n\n", "- ", "1. ", "> ", "# ", "    ",
                   "[a](https://x.org/", ")", "](", "<b>", "</i>", "&amp;", "&", "<", "word ", "longerword ", "|",
                   "---", "\\", "🎓", "https://a.b/c_d ", "![i](https://x.org/i.png)", "[j](javascript:x)"]  # fmt: skip
markdownish = st.lists(st.sampled_from(MARKDOWN_PIECES) | st.text(max_size=12), max_size=60).map("".join)


def shown(html: str) -> str:
    """The text of a well-formed message (failing the test on a message Telegram would refuse)."""
    text, problems = telegram_read(html)
    assert problems == [], (problems, html)
    return text


# ---------------------------------------------------------------- markup


def test_a_lesson_section_keeps_its_links_code_emphasis_lists_and_heading() -> None:
    html = to_html(SECTION)
    assert html.startswith("<b>Preparing the data</b>\n\n")
    assert (
        'Use <a href="https://pandas.pydata.org/">Pandas</a> (the name stands for <code>Python Data Analysis</code>)'
        in html
    )
    assert '<code>&lt;div class="x"&gt;</code> and <code>**not bold**</code> stay code' in html  # no markup in code
    assert "Read the <i>whole</i> <b>file, <i>twice</i></b>." in html
    assert "1. Convert the dates (<code>MM/DD/YYYY</code>).\n2. Extract the month:" in html
    assert ('<pre><code class="language-python">import pandas as pd\nmonth = pd.DatetimeIndex(pumpkins[\'Date\'])'
            ".month  # a &lt;comment&gt; &amp; **stars**</code></pre>") in html  # fmt: skip
    assert (
        '• A <i>list</i> item with <a href="https://example.org/a_b?x=1&amp;y=2">a link</a>\n   ◦ a nested item' in html
    )
    shown(html)


def test_html_in_text_and_unsafe_or_relative_links_are_shown_as_plain_text() -> None:
    html = to_html(SECTION)
    assert 'Beware of &lt;script&gt;alert("x")&lt;/script&gt; &amp; [a trap](javascript:alert(1))' in html
    assert "[a file](file:///etc/passwd)" in html and "[a page](data:text/html,hi)" in html
    assert html.count("<a href=") == 2 and " and a relative link." in html  # a link to nowhere: its words only
    assert to_html("[x](ftp://example.org/f) and [y](mailto:ada@example.org)") == (
        'x and <a href="mailto:ada@example.org">y</a>'
    )


def test_code_inside_a_link_is_the_links_text_as_telegram_allows_no_code_in_links() -> None:
    html = to_html("[**the** `len()` docs](https://docs.python.org/) and ***both***")
    assert html == '<a href="https://docs.python.org/"><b>the</b> len() docs</a> and <i><b>both</b></i>'
    shown(html)


def test_quotes_rules_and_tables_read_as_lines() -> None:
    html = to_html("> quoted **words**\n> go on\n\n---\n\n| name | size |\n|---|---|\n| `a<b>` | 3 |")
    assert html == "│ quoted <b>words</b>\n│ go on\n\n———\n\nname: <code>a&lt;b&gt;</code>; size: 3"


def test_the_tutors_own_text_reads_as_before() -> None:
    text = "**Key terms**\n• **Teacher**: the big model\n• Student: the small one\n\n**Practice**\n1. List tasks."
    assert to_html(text) == (
        "<b>Key terms</b>\n• <b>Teacher</b>: the big model\n• Student: the small one\n\n<b>Practice</b>\n1. List tasks."
    )


def test_a_poll_title_is_the_replys_first_line_without_markup() -> None:
    card = QuizCard("Why?", ("a", "b"), 0, None, ("a:1:0", "a:1:1"))
    reply = Reply("**Question 2 of 10** · `Model` _distillation_\n\nWhy?", quiz=card)
    assert poll_question(reply) == "Question 2 of 10 · Model distillation\nWhy?"


# ---------------------------------------------------------------- streaming


def test_a_growing_answer_with_an_unclosed_bold_or_code_fence_is_still_well_formed() -> None:
    assert shown(partial_text("“The **teach")) == "“The **teach"
    fenced = partial_text("“Like this:”\n```python\nfor x in xs:\n    print(x")
    assert fenced == '“Like this:”\n<pre><code class="language-python">for x in xs:\n    print(x</code></pre>'
    assert partial_text("a < b") == "a &lt; b" and partial_text("") == "…"


def test_a_growing_answer_longer_than_a_message_shows_its_first_message_and_an_ellipsis() -> None:
    growing = partial_text("**" + ("word " * 1200).strip() + "**")
    text = shown(growing)
    assert growing.startswith("<b>word") and growing.endswith("</b>\n…") and utf16_len(text) <= MAX_TEXT


# ---------------------------------------------------------------- splitting


def test_a_10000_character_section_splits_into_well_formed_messages_losing_nothing() -> None:
    paragraph = ("The **teacher** writes [outputs](https://example.org/out) and the `student<T>` copies them; "
                 "a *near-miss* & a <tag> count. ") * 6  # fmt: skip
    code = "```python\n" + "\n".join(f"print({n}, '<&>')" for n in range(120)) + "\n```"
    section = "\n\n".join([paragraph] * 8 + [code] + ["- " + paragraph[:200]] * 5 + [paragraph] * 4)
    assert len(section) > 10_000
    parts = message_texts(section)
    texts = [shown(part) for part in parts]
    assert len(parts) >= 3 and all(utf16_len(text) <= MAX_TEXT for text in texts)
    assert squeezed("".join(texts)) == squeezed(shown(to_html(section)))
    assert all(part.count("<pre>") == part.count("</pre>") for part in parts)
    code = [part.split('<code class="language-python">')[1].split("</code>")[0] for part in parts if "<pre>" in part]
    assert len(code) >= 1 and all(line.startswith("print(") for block in code for line in block.split("\n"))
    sent = message_kwargs(Reply(section, buttons=rows([Button("Next ▸", "n:1")])))
    assert [kw["reply_markup"] is not None for kw in sent] == [False] * (len(sent) - 1) + [True]


def test_long_text_is_cut_at_paragraphs_then_lines_then_words_then_anywhere() -> None:
    assert message_texts("alpha beta\n\ngamma delta", 15) == ["alpha beta", "gamma delta"]
    assert message_texts("alpha beta\ngamma delta", 15) == ["alpha beta", "gamma delta"]
    assert message_texts("alpha beta gamma delta", 12) == ["alpha beta", "gamma delta"]
    assert message_texts("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_a_bold_span_or_link_cut_in_two_is_whole_markup_on_both_sides() -> None:
    assert message_texts("**" + "bold words " * 2 + "bold words** tail", 25) == [
        "<b>bold words bold words</b>", "<b>bold words</b> tail"
    ]  # fmt: skip
    first, second = message_texts("[" + ("link words " * 3).strip() + "](https://x.org)", 25)
    assert first == '<a href="https://x.org">link words link words</a>'
    assert second == '<a href="https://x.org">link words</a>'


def test_a_code_block_cut_in_two_is_closed_and_opened_again_at_a_line() -> None:
    code = "\n".join(f"line {n}" for n in range(10))
    parts = message_texts(f"```sh\n{code}\n```", 40)
    assert len(parts) == 2 and all(p.startswith('<pre><code class="language-sh">line') for p in parts)
    assert all(p.endswith("</code></pre>") for p in parts)
    assert "\n".join(shown(p) for p in parts) == code


def test_characters_count_as_telegram_counts_them_not_as_escaped_html() -> None:
    assert len(message_texts("<&>" * 1365)) == 1  # 4095 visible characters, 16380 of HTML
    emoji = message_texts("🎓" * 3000)
    assert len(emoji) == 2 and all(utf16_len(shown(part)) <= MAX_TEXT for part in emoji)


def test_blank_text_still_makes_a_message() -> None:
    assert message_texts("  \n ") == ["…"] and message_texts("` `") == ["…"]


@settings(max_examples=150, deadline=None)
@given(text=st.text() | markdownish, limit=st.integers(min_value=200, max_value=600))
def test_any_text_splits_into_well_formed_messages_within_the_limit_losing_nothing(text: str, limit: int) -> None:
    parts = message_texts(text, limit)
    texts = [shown(part) for part in parts]
    whole = squeezed(shown(to_html(text)))
    assert all(utf16_len(t) <= limit and t.strip() for t in texts)
    assert squeezed("".join(texts)) == whole or (parts == ["…"] and not whole)


@settings(max_examples=40, deadline=None)
@given(text=markdownish.filter(lambda t: t.strip()))
def test_any_long_text_fits_telegrams_4096_characters_in_well_formed_messages(text: str) -> None:
    long = (text + "\n") * math.ceil(9000 / len(text))
    parts = message_texts(long)
    texts = [shown(part) for part in parts]
    assert all(utf16_len(t) <= MAX_TEXT for t in texts)
    whole = squeezed(shown(to_html(long)))
    assert squeezed("".join(texts)) == whole or (parts == ["…"] and not whole)
