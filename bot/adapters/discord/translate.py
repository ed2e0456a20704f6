"""Turns in: interactions and messages as ``Incoming`` turns, slash commands as engine text commands, a file sent
with one as an ``Upload``, and the custom ids of buttons (``tb:OWNER:ACTION``) built and parsed."""

from __future__ import annotations

import functools
import re

import discord

from bot.adapters.download import read_upload
from bot.core.messages import MAX_ACTION_BYTES, Incoming, Upload

PLATFORM = "discord"
MAX_CUSTOM_ID_CHARS = 100
CUSTOM_ID_TEMPLATE = r"tb:(?P<owner>[0-9]{1,20}):(?P<action>[!-~]{1,48})"


# ---------------------------------------------------------------- turns in


def interaction_incoming(interaction: discord.Interaction, *, text: str | None = None, action: str | None = None,
                         upload: Upload | None = None) -> Incoming:  # fmt: skip
    """The turn an interaction makes: a server is the community (moderators have Manage Server); a DM is its own."""
    direct = interaction.guild_id is None
    permissions = interaction.permissions
    return Incoming(
        PLATFORM,
        str(interaction.user.id),
        str(interaction.channel_id) if direct else str(interaction.guild_id),
        text=text,
        action=action,
        display_name=interaction.user.display_name,
        is_direct=direct,
        is_moderator=not direct and (permissions.manage_guild or permissions.administrator),
        upload=upload,
    )


def upload_of(attachment: discord.Attachment) -> Upload:
    """A file sent with a slash command, as an upload read only when the engine accepts it (and never past one
    byte more than the largest upload allowed)."""
    return Upload(attachment.filename, attachment.size, functools.partial(read_upload, attachment.url))


def message_incoming(message: discord.Message, bot_id: int) -> Incoming | None:
    """The turn a plain message makes: any DM, or a server message that mentions the bot; None otherwise."""
    if message.author.bot or message.type not in (discord.MessageType.default, discord.MessageType.reply):
        return None
    direct = message.guild is None
    if not direct and not any(user.id == bot_id for user in message.mentions):
        return None
    text = re.sub(rf"<@!?{bot_id}>", " ", message.content).strip()
    author = message.author
    moderator = isinstance(author, discord.Member) and (author.guild_permissions.manage_guild
                                                        or author.guild_permissions.administrator)  # fmt: skip
    return Incoming(
        PLATFORM,
        str(author.id),
        str(message.channel.id) if direct else str(message.guild.id),  # type: ignore[union-attr]
        text=text or ("/start" if not direct else ""),  # a bare mention opens the menu
        display_name=author.display_name,
        is_direct=direct,
        is_moderator=not direct and moderator,
    )


def command_text(name: str, argument: str | None = None) -> str:
    """The engine text command of a slash command (``/lesson attention``; the slash form keeps long arguments)."""
    word = {"learn": "track" if argument else "start", "tracks list": "tracks", "tracks enable": "enable",
            "tracks disable": "disable"}.get(name, name)  # fmt: skip
    # The other "tracks …" subcommands (upload, preview, publish, history, rollback) keep both words.
    return f"/{word} {argument.strip()}" if argument and argument.strip() else f"/{word}"


# ---------------------------------------------------------------- buttons


def custom_id(owner: int, action: str) -> str:
    """The custom id of a button: who may press it and the engine action it carries."""
    if not action or len(action.encode("utf-8")) > MAX_ACTION_BYTES or not re.fullmatch(r"[!-~]+", action):
        raise ValueError(f"action ids must be 1-{MAX_ACTION_BYTES} printable ASCII bytes: {action!r}")
    value = f"tb:{owner}:{action}"
    if len(value) > MAX_CUSTOM_ID_CHARS:
        raise ValueError(f"custom id longer than {MAX_CUSTOM_ID_CHARS} characters: {value!r}")
    return value


def parse_custom_id(value: str) -> tuple[int, str] | None:
    """``(owner, action)`` of one of our custom ids; None for anything else."""
    match = re.fullmatch(CUSTOM_ID_TEMPLATE, value)
    return (int(match["owner"]), match["action"]) if match else None
