"""Message components: ``TutorButton``, the persistent owner-only button (a ``DynamicItem`` whose custom id
carries everything needed to act on a press), and ``Outgoing``, one message with its buttons as a view and its
files as attachments."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import discord

from bot.adapters.discord.translate import CUSTOM_ID_TEMPLATE, custom_id
from bot.core.messages import Attachment, Button

MAX_LABEL_CHARS = 80
NOT_YOURS = "These buttons belong to someone else's lesson, so I didn't act on them. Use /learn to start your own."
NO_MENTIONS = discord.AllowedMentions.none()


# ---------------------------------------------------------------- buttons


@runtime_checkable
class ButtonHandler(Protocol):
    """The client a button press goes to."""

    async def on_button(self, interaction: discord.Interaction, action: str) -> None: ...


class TutorButton(discord.ui.DynamicItem[discord.ui.Button], template=CUSTOM_ID_TEMPLATE):
    """A button of a tutor message; its custom id carries its owner and action, so it outlives restarts."""

    def __init__(self, owner: int, action: str, label: str = "", row: int | None = None) -> None:
        style = discord.ButtonStyle.primary if label.endswith("▸") else discord.ButtonStyle.secondary
        super().__init__(discord.ui.Button(label=label[:MAX_LABEL_CHARS] or "·", style=style, row=row,
                                           custom_id=custom_id(owner, action)))  # fmt: skip
        self.owner = owner
        self.action = action

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> TutorButton:
        """The button a press refers to, rebuilt from its custom id."""
        return cls(int(match["owner"]), match["action"], getattr(item, "label", None) or "")

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Only the learner a message was written for may press its buttons; anyone else gets a quiet note."""
        if interaction.user.id == self.owner:
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True, allowed_mentions=NO_MENTIONS)
        return False

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the press to the client as a turn."""
        client = interaction.client
        if isinstance(client, ButtonHandler):  # the TutorClient; checked by shape, so this never imports it
            await client.on_button(interaction, self.action)


# ---------------------------------------------------------------- replies as messages


@dataclass(frozen=True)
class Outgoing:
    """One Discord message: rendered content, buttons (rows of them) owned by one learner, and files (a PNG chart
    shows inline)."""

    content: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    owner: int = 0
    files: tuple[Attachment, ...] = ()

    def view(self) -> discord.ui.View | None:
        """The buttons as a view of persistent ``TutorButton``s (None without buttons)."""
        if not self.buttons:
            return None
        view = discord.ui.View(timeout=None)
        for number, row in enumerate(self.buttons):
            for button in row:
                view.add_item(TutorButton(self.owner, button.action, button.label, row=number))
        return view

    def kwargs(self, edit: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``send`` (or ``edit``): content, no mentions, the view when there are buttons, the
        files (fresh ``discord.File``s: each is read once as it is sent)."""
        content = self.content or (None if self.files else "…")
        kwargs: dict[str, Any] = {"content": content, "allowed_mentions": NO_MENTIONS}
        view = self.view()
        if view is not None:
            kwargs["view"] = view
        if self.files:
            files = [discord.File(io.BytesIO(file.data), filename=file.filename) for file in self.files]
            kwargs["attachments" if edit else "files"] = files  # an edit's attachments replace the message's
        return kwargs
