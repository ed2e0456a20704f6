"""Lesson-like Markdown and the checks the rendering tests share: is Telegram HTML well-formed by Telegram's rules,
and what text a Telegram or Discord message shows."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from bot.core.lessons import Track
from bot.knowledge.reader import read_knowledge
from tests.helpers import front_matter, question, write_lesson

# A section as lesson authors (and imported courses) write them: a heading, links, code spans holding markup,
# emphasis inside emphasis, a fenced block in a list, a nested list, raw HTML and links that must not be links.
SECTION = """### Preparing the data

Use [Pandas](https://pandas.pydata.org/) (the name stands for `Python Data Analysis`) to load the file; the
tag `<div class="x">` and `**not bold**` stay code. Read the *whole* **file, *twice***.

1. Convert the dates (`MM/DD/YYYY`).
2. Extract the month:

   ```python
   import pandas as pd
   month = pd.DatetimeIndex(pumpkins['Date']).month  # a <comment> & **stars**
   ```

- A *list* item with [a link](https://example.org/a_b?x=1&y=2)
  - a nested item

Beware of <script>alert("x")</script> & [a trap](javascript:alert(1)), [a file](file:///etc/passwd),
[a page](data:text/html,hi) and [a relative link](../data/US-pumpkins.csv).
"""

TELEGRAM_TAGS = {"b", "i", "s", "code", "pre", "a"}
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


class _TelegramHtml(HTMLParser):
    """Reads Telegram HTML, noting every way it breaks Telegram's rules."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag not in TELEGRAM_TAGS:
            self.problems.append(f"tag <{tag}> is not allowed")
        elif names - {"a": {"href"}, "code": {"class"}}.get(tag, set()):
            self.problems.append(f"<{tag}> has attributes {sorted(names)}")
        elif tag == "a" and not re.match(r"(https?://|mailto:)", dict(attrs).get("href") or ""):
            self.problems.append(f"a link to {dict(attrs).get('href')!r}")
        if "code" in self.open or ("pre" in self.open and tag != "code"):
            self.problems.append(f"<{tag}> inside code")
        elif tag in {"a", "code", "pre"} and any(t in {"a", "code", "pre"} for t in self.open):
            if not (tag == "code" and self.open[-1:] == ["pre"]):
                self.problems.append(f"<{tag}> inside {self.open}")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.problems.append(f"</{tag}> closes nothing open")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.append(f"self-closing <{tag}/>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.problems.append("a comment (an unescaped '<!')")

    def handle_decl(self, decl: str) -> None:
        self.problems.append("a declaration (an unescaped '<!')")

    def handle_pi(self, data: str) -> None:
        self.problems.append("a processing instruction (an unescaped '<?')")


def telegram_read(html: str) -> tuple[str, list[str]]:
    """What a Telegram HTML message shows, and what about it Telegram would refuse (nothing, if well-formed)."""
    parser = _TelegramHtml()
    parser.feed(html)
    parser.close()
    problems = list(parser.problems)
    if parser.open:
        problems.append(f"tags left open: {parser.open}")
    outside_tags = re.sub(r"<[^<>]*>", "", html)
    if "<" in outside_tags or ">" in outside_tags:
        problems.append("a raw < or > in the text")
    if len(_ENTITY.findall(outside_tags)) != outside_tags.count("&"):
        problems.append("a raw & in the text")
    return "".join(parser.text), problems


_READER = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough"])


def discord_read(markdown: str) -> str:
    """The text a Discord message shows: its Markdown read (indentation is layout, so it is left out first)."""
    flat = "\n".join(line.lstrip() for line in markdown.split("\n"))
    return "".join(_text_of(token) for token in _READER.parse(flat))


def _text_of(token: Token) -> str:
    if token.children:
        return "".join(_text_of(child) for child in token.children)
    if token.type in ("text", "code_inline", "fence", "code_block", "text_special"):
        return token.content
    return "\n" if token.type in ("softbreak", "hardbreak") else ""


def squeezed(text: str) -> str:
    """Text without white space or quote marks: what must survive a split (they may change at the cut)."""
    return re.sub(r"[\s│]+", "", text)


def formatted_track(root: Path) -> dict[str, Track]:
    """A track whose first lesson's first section is ``SECTION``."""
    folder = root / "knowledge" / "formatted"
    folder.mkdir(parents=True)
    (folder / "track.toml").write_text('id = "formatted"\ntitle = "Formatted"\ndescription = "Markup."\n')
    body = f"# Pumpkins\n\n## Preparing\n\n{SECTION}\n## Done\n\nThe end.\n"
    front = front_matter("pumpkins", title="Pumpkins", quiz=[question(section="preparing")])
    write_lesson(folder, "01-pumpkins.md", front, body)
    results = read_knowledge(root / "knowledge")
    assert all(r.ok for r in results), [str(p) for r in results for p in r.problems]
    return {r.track.id: r.track for r in results if r.track}
