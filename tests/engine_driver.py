"""A scripted learner for engine tests and benchmarks: types text, presses buttons by label, keeps the replies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

from bot.core.engine import Engine
from bot.core.messages import Incoming, Reply, Upload


@dataclass
class Learner:
    """One learner talking to an engine, on one platform and in one conversation."""

    engine: Engine
    user_id: str = "ada"
    conversation: str = "dm-ada"
    is_direct: bool = True
    is_moderator: bool = False
    platform: str = "test"
    display_name: str | None = None  # as the platform gives it; None: the user id, titled
    last: list[Reply] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)  # the uploads the engine downloaded

    def incoming(self, text: str | None = None, action: str | None = None) -> Incoming:
        return Incoming(self.platform, self.user_id, self.conversation, text=text, action=action,
                        display_name=self.user_id.title() if self.display_name is None else self.display_name,
                        is_direct=self.is_direct,
                        is_moderator=self.is_moderator)  # fmt: skip

    async def say_async(self, text: str) -> list[Reply]:
        self.last = await self.engine.replies(self.incoming(text=text))
        return self.last

    async def act_async(self, action: str) -> list[Reply]:
        self.last = await self.engine.replies(self.incoming(action=action))
        return self.last

    def say(self, text: str) -> list[Reply]:
        """Type ``text``; return the replies."""
        return asyncio.run(self.say_async(text))

    def act(self, action: str) -> list[Reply]:
        """Send an action id (a button press or a poll answer); return the replies."""
        return asyncio.run(self.act_async(action))

    def run(self, incoming: Incoming) -> list[Reply]:
        """Send a turn an adapter translated (it need not be this learner's); return the replies."""
        self.last = asyncio.run(self.engine.replies(incoming))
        return self.last

    def upload(self, filename: str, data: bytes, caption: str = "", size: int | None = None) -> list[Reply]:
        """Send a file with ``caption``, as a platform hands it over (its download counted in ``downloads``)."""

        async def read() -> bytes:
            self.downloads.append(filename)
            return data

        incoming = replace(
            self.incoming(text=caption), upload=Upload(filename, len(data) if size is None else size, read)
        )
        return self.run(incoming)

    def button(self, label: str) -> str:
        """The action of the last replies' button whose label starts with ``label``."""
        for reply in reversed(self.last):
            for row in reply.buttons:
                for button in row:
                    if button.label.startswith(label):
                        return button.action
        shown = [b.label for r in self.last for row in r.buttons for b in row]
        raise AssertionError(f"no button starting with {label!r}; buttons: {shown}")

    def press(self, label: str) -> list[Reply]:
        """Press the button labelled ``label`` in the last replies."""
        return self.act(self.button(label))

    @property
    def text(self) -> str:
        """All text of the last replies (final versions only)."""
        return "\n".join(reply.text for reply in self.last if not reply.partial)
