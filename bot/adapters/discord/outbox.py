"""Replies out: where a turn's messages go (an interaction's responses or a channel) and ``deliver``, which sends
them in order and streams a growing answer into one message by throttled edits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import discord

from bot.adapters.discord.components import Outgoing
from bot.adapters.discord.formatting import preview
from bot.adapters.discord.render import render
from bot.core.messages import Reply


class Sent(Protocol):
    """A message already sent, which a streaming answer edits."""

    async def edit(self, message: Outgoing) -> None:
        """Replace the message's content (and buttons) with ``message``."""
        ...


class Outbox(Protocol):
    """Where a turn's messages go: an interaction's responses, or a channel."""

    private_ok: bool  # whether a personal reply can be shown to the learner alone

    async def send(self, message: Outgoing, private: bool) -> Sent:
        """Send one message (privately if asked and possible); return it for later edits."""
        ...


@dataclass
class _EditBy:
    """A sent message edited through a coroutine function (a message's ``edit`` or the original response's)."""

    editor: Callable[..., Awaitable[Any]]

    async def edit(self, message: Outgoing) -> None:
        """Replace the message's content (and buttons, and files) with ``message``."""
        kwargs = message.kwargs(edit=True)
        await self.editor(**kwargs)
        _release_view(kwargs)


class InteractionOutbox:
    """Responses to one interaction: the first one answers it (or fills the deferred reply), the rest follow up."""

    def __init__(self, interaction: discord.Interaction) -> None:
        self.interaction = interaction
        self.private_ok = interaction.guild_id is not None  # in a DM everything is already private
        self._deferred_reply_pending = False  # a deferred "thinking…" reply that the first message fills

    @property
    def is_command(self) -> bool:
        """Whether this is a slash command (else a button press)."""
        return self.interaction.type is discord.InteractionType.application_command

    async def acknowledge(self, private: bool) -> None:
        """Tell Discord the turn is being handled (within its 3 seconds) when the answer takes a while."""
        if self.interaction.response.is_done():
            return
        if self.is_command:
            await self.interaction.response.defer(ephemeral=private and self.private_ok, thinking=True)
            self._deferred_reply_pending = True
        else:  # a button: acknowledge without touching its message; replies come as new messages
            await self.interaction.response.defer()

    async def send(self, message: Outgoing, private: bool) -> Sent:
        """Send one message (ephemeral when ``private`` and Discord allows it)."""
        ephemeral = private and self.private_ok
        if not self.interaction.response.is_done():
            kwargs = message.kwargs()
            await self.interaction.response.send_message(**kwargs, ephemeral=ephemeral)
            _release_view(kwargs)
            return _EditBy(self.interaction.edit_original_response)
        if self._deferred_reply_pending:
            # The deferral already chose who sees this message: Discord ignores the flag of its first follow-up.
            self._deferred_reply_pending = False
            kwargs = message.kwargs(edit=True)
            await self.interaction.edit_original_response(**kwargs)
            _release_view(kwargs)
            return _EditBy(self.interaction.edit_original_response)
        kwargs = message.kwargs()
        sent = await self.interaction.followup.send(**kwargs, ephemeral=ephemeral, wait=True)
        _release_view(kwargs)
        return _EditBy(sent.edit)

    async def finish(self) -> None:
        """Make sure the interaction was answered, even by a turn that said nothing."""
        if not self.interaction.response.is_done():
            if self.is_command:
                await self.interaction.response.send_message("Done.", ephemeral=self.private_ok)
            else:
                await self.interaction.response.defer()
        elif self._deferred_reply_pending:
            self._deferred_reply_pending = False
            await self.interaction.edit_original_response(content="Done.")


class ChannelOutbox:
    """Messages in a channel, the first one replying to the learner's message."""

    private_ok = False

    def __init__(self, message: discord.Message) -> None:
        self.message = message
        self._replied = False

    async def send(self, message: Outgoing, private: bool) -> Sent:
        """Send one message to the channel (personal replies too: a channel has no private messages)."""
        kwargs = message.kwargs()
        if not self._replied and self.message.guild is not None:
            self._replied = True
            sent = await self.message.reply(**kwargs, mention_author=False)
        else:
            sent = await self.message.channel.send(**kwargs)
        _release_view(kwargs)
        return _EditBy(sent.edit)


def _release_view(kwargs: dict[str, Any]) -> None:
    """Stop the view a message was sent with, so discord.py lets it go.

    Presses never reach the view: ``TutorButton`` is a dynamic item, dispatched by the pattern registered at
    start. But discord.py keeps every view it was given (a private one for 15 minutes, a persistent one for
    ever), each with its buttons, which grew memory by ~1.6 KB per message under load.
    """
    view = kwargs.get("view")
    if isinstance(view, discord.ui.View):
        view.stop()


async def deliver(replies: AsyncIterator[Reply], outbox: Outbox, owner: int, edit_seconds: float, *,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:  # fmt: skip
    """Send a turn's replies in order; a growing (partial) reply streams into one message, edited at most once
    per ``edit_seconds``, and the reply that completes it is always applied."""
    streaming: Sent | None = None
    edited_at = 0.0
    async for reply in replies:
        if reply.partial:
            shown = Outgoing(preview(reply.text), owner=owner)
            if streaming is None:
                streaming, edited_at = await outbox.send(shown, private=False), clock()
            elif clock() - edited_at >= edit_seconds:
                await streaming.edit(shown)
                edited_at = clock()
            continue
        messages = render(reply, owner)
        if streaming is not None:
            await sleep(max(0.0, edit_seconds - (clock() - edited_at)))
            await streaming.edit(messages.pop(0))
            streaming = None
        for message in messages:
            await outbox.send(message, private=reply.personal)
