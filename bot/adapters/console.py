"""The console adapter: the tutor in a terminal.

Lines typed are turns; a number picks one of the numbered choices (the buttons) shown with the last
replies; replies are rendered Markdown (see ``terminal``); answers grow in place as the model writes them; a
status line after each turn says where you are.
``quit`` (or end of input) leaves; progress is already saved by then.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.markup import escape

from bot.adapters.terminal import formatted
from bot.core.engine import Engine
from bot.core.messages import Incoming, Reply

STATUS_MARK = "··"  # starts every status line (tests and scripts look for it)
QUIT = {"quit", "exit", ":q"}


class ConsoleChat:
    """Runs turns from a text stream through the engine and prints the replies to a Rich console."""

    def __init__(self, engine: Engine, source: TextIO, console: Console, user_id: str = "you",
                 display_name: str = "") -> None:  # fmt: skip
        self.engine = engine
        self.source = source
        self.console = console
        self.user_id = user_id
        self.display_name = display_name
        self.choices: list[str] = []  # the action of choice 1, 2, …

    def incoming(self, line: str) -> Incoming:
        """The turn a typed line makes: a numbered choice becomes its button's action."""
        typed = line.strip()
        if typed.isdigit() and 1 <= int(typed) <= len(self.choices):
            action: str | None = self.choices[int(typed) - 1]
            text = None
        else:
            action, text = None, line
        # The host at the console moderates its own "community" (there is only one).
        return Incoming("console", self.user_id, "console", text=text, action=action,
                        display_name=self.display_name, is_direct=True, is_moderator=True)  # fmt: skip

    async def turn(self, line: str) -> None:
        """Handle one typed line and print what comes back."""
        if line.strip().isdigit() and not 1 <= int(line) <= len(self.choices):
            available = f"a number from 1 to {len(self.choices)}" if self.choices else "words: there are no choices now"
            self.console.print(f"There is no choice {escape(line.strip())}; type {available}.")
            self.print_status()
            return
        choices: list[str] = []
        labels: list[str] = []
        growing: Growing | None = None
        try:
            async for reply in self.engine.handle(self.incoming(line)):
                if reply.partial:
                    growing = growing or Growing(self.console)
                    growing.show(reply.text)
                    continue
                if growing is not None:
                    growing.finish(reply.text)
                    growing = None
                else:
                    self.console.print(formatted(reply.text), highlight=False)
                self.console.print()
                for action, label in self._buttons(reply):
                    choices.append(action)
                    labels.append(label)
        finally:
            if growing is not None:
                growing.finish(None)
                self.console.print()
        self.choices = choices
        if labels:
            self.console.print("  ".join(f"[bold]\\[{n}][/bold] {escape(label)}" for n, label in enumerate(labels, 1)),
                               soft_wrap=True, highlight=False)  # fmt: skip
        self.print_status()

    @staticmethod
    def _buttons(reply: Reply) -> list[tuple[str, str]]:
        return [(button.action, button.label) for row in reply.buttons for button in row]

    def print_status(self) -> None:
        """The status line: where the learner is."""
        self.console.print(f"[dim]{STATUS_MARK} {escape(self.engine.status('console:' + self.user_id))}[/dim]",
                           highlight=False, soft_wrap=True)  # fmt: skip

    async def run(self, first: str = "start") -> None:
        """Say what waits (reviews due, a streak ending), greet (the turn ``first``), then handle lines until
        ``quit`` or the end of input."""
        waiting = self.engine.comeback.welcome_back("console:" + self.user_id)
        if waiting:
            self.console.print(f"[bold]{escape(waiting)}[/bold]", highlight=False, soft_wrap=True)
        await self.turn(first)
        while True:
            self.console.print("> ", end="")
            self.console.file.flush()
            line = await asyncio.to_thread(self.source.readline)
            if not line:
                self.console.print()
                return
            if line.strip().casefold() in QUIT:
                self.console.print("Bye! Your progress is saved.")
                return
            await self.turn(line.rstrip("\n"))
            self.console.file.flush()


class Growing:
    """An answer that grows in place as it streams (in a terminal); elsewhere only its final text is printed."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.shown = ""
        self.live = Live(console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def show(self, text: str) -> None:
        """Show the answer so far in place of the last version."""
        self.live.update(formatted(text), refresh=True)
        self.shown = text

    def finish(self, text: str | None) -> None:
        """End on the final ``text``; one that does not continue what was shown is printed below, after a note."""
        if text is not None and text.startswith(self.shown):
            self.live.update(formatted(text))
            text = None
        self.live.stop()
        if not self.console.is_terminal:
            self.console.line()  # a terminal's live display ends its last line itself
        if text is not None:
            self.console.print("[dim](withdrawn)[/dim]")
            self.console.print(formatted(text), highlight=False)
