"""The Discord adapter: slash commands, buttons and messages in; the engine's replies out as Discord messages.

Only translation and Discord's rules live here: turns become ``Incoming`` (a server is the community, a DM its
own), replies become messages of at most 2000 characters of Discord Markdown (the lesson's formatting kept,
everything else escaped) with buttons. Buttons are ``DynamicItem``s whose custom id (``tb:OWNER:ACTION``)
carries everything needed to act on a press, so they keep working after a restart, and only their owner may
press them. Interactions are acknowledged within
Discord's 3 seconds (questions defer at once; other turns answer directly, deferring only if they are slow);
answers stream into one message by throttled edits. Mentions never ping anyone. The file of ``/tracks upload``
goes to the engine as an ``Upload``, fetched only when the engine reads it; a reply's files go with its last
message (ten to a message), ephemeral with it when the reply is personal.

Intents stay minimal and unprivileged: Discord delivers the text of DMs and of messages that mention the bot
without the message-content intent, and those are the only plain messages the adapter reads.
"""

from __future__ import annotations

import asyncio

import aiohttp
import discord

from bot.adapters import AdapterError
from bot.adapters.discord.commands import (
    MAX_CHOICES,
    build_commands,
    lesson_choices,
    sync_commands,
    track_choices,  # fmt: skip
)
from bot.adapters.discord.components import MAX_LABEL_CHARS, NO_MENTIONS, NOT_YOURS, Outgoing, TutorButton
from bot.adapters.discord.formatting import (
    MAX_MESSAGE_CHARS,
    discord_length,
    escape,
    preview,
    render_text,
    split_text,  # fmt: skip
)
from bot.adapters.discord.outbox import ChannelOutbox, InteractionOutbox, Outbox, Sent, deliver
from bot.adapters.discord.render import MAX_BUTTONS_PER_ROW, MAX_ROWS, layout, render
from bot.adapters.discord.translate import (
    CUSTOM_ID_TEMPLATE,
    MAX_CUSTOM_ID_CHARS,
    PLATFORM,
    command_text,
    custom_id,
    interaction_incoming,  # fmt: skip
    message_incoming,
    parse_custom_id,
)
from bot.adapters.discord.tutor import (
    APOLOGY,
    NAVIGATION_ACK_SECONDS,
    RESTARTING,
    SHUTDOWN_GRACE_SECONDS,
    TutorClient,  # fmt: skip
    minimal_intents,
)
from bot.config import DiscordSettings
from bot.core.engine import Engine
from bot.core.reminders import ReminderScheduler

__all__ = [
    "APOLOGY", "CUSTOM_ID_TEMPLATE", "MAX_BUTTONS_PER_ROW", "MAX_CHOICES", "MAX_CUSTOM_ID_CHARS", "MAX_LABEL_CHARS",
    "MAX_MESSAGE_CHARS", "MAX_ROWS", "NAVIGATION_ACK_SECONDS", "NOT_YOURS", "NO_MENTIONS", "PLATFORM", "RESTARTING",
    "SHUTDOWN_GRACE_SECONDS", "TOKEN_HINT", "ChannelOutbox", "InteractionOutbox", "Outbox", "Outgoing",
    "Sent", "TutorButton", "TutorClient", "build_commands", "command_text", "custom_id",
    "deliver", "discord_length", "escape", "interaction_incoming", "layout", "lesson_choices", "message_incoming",
    "minimal_intents", "parse_custom_id", "preview", "render", "render_text", "serve", "split_text", "sync_commands",
    "track_choices",
]  # fmt: skip

TOKEN_HINT = "check TUTORBOT_DISCORD__TOKEN"


# ---------------------------------------------------------------- serve


async def serve(engine: Engine, settings: DiscordSettings, stop: asyncio.Event, *,
                reminders: ReminderScheduler | None = None) -> None:  # fmt: skip
    """Serve learners on Discord until ``stop`` is set, then finish the turns in flight and disconnect.

    ``reminders`` gets a sender for Discord learners once the bot is signed in.
    """
    if settings.token is None:
        raise AdapterError("no Discord bot token: set TUTORBOT_DISCORD__TOKEN (in the environment or .env)")
    client = TutorClient(engine, settings)
    try:
        await client.login(settings.token.get_secret_value())
    except BaseException as error:
        await client.close()
        raise _start_error(error) from None
    if reminders is not None:
        reminders.add_sender(PLATFORM, client.send_reminder)
    connection = asyncio.create_task(client.connect(reconnect=True), name="discord-connection")
    stopping = asyncio.create_task(stop.wait(), name="discord-stop")
    try:
        await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not connection.done():
            await client.shutdown()
            # Still starting shards (they connect 5 s apart): discord.py would keep retrying the next one on the
            # closed session for ever. A closed client has nothing left to do, so the start ends here.
            connection.cancel()
        else:
            await client.close()
    ended_with = await _ended(connection)
    if ended_with is not None and not stop.is_set():
        raise _start_error(ended_with) from None


async def _ended(connection: asyncio.Task[None]) -> BaseException | None:
    """How the connection ended: None when it closed cleanly."""
    try:
        await connection
    except asyncio.CancelledError:
        return None
    except Exception as error:  # noqa: BLE001 - returned to be explained
        return error
    return None


def _start_error(error: BaseException) -> BaseException:
    """An ``AdapterError`` that says what to do about a failure to connect (other exceptions pass through)."""
    if isinstance(error, AdapterError) or not isinstance(error, Exception):
        return error
    if isinstance(error, discord.LoginFailure):
        return AdapterError(f"Discord rejected the bot token: {TOKEN_HINT}")
    if isinstance(error, discord.PrivilegedIntentsRequired):
        return AdapterError("Discord refused the bot's gateway intents: enable them in the developer portal")
    if isinstance(error, discord.ConnectionClosed):
        if error.code == 4004:
            return AdapterError(f"Discord rejected the bot token: {TOKEN_HINT}")
        return AdapterError(f"Discord closed the connection (code {error.code}): check the bot's settings and restart")
    if isinstance(error, discord.HTTPException):
        return AdapterError(f"Discord refused to start the bot (HTTP {error.status}): try again in a few minutes")
    if isinstance(error, (aiohttp.ClientError, OSError, asyncio.TimeoutError)):
        return AdapterError(f"could not reach Discord ({type(error).__name__}): check the network connection")
    return error
