"""The slash commands, each a thin call into the client: their definitions, autocompletion of tracks and
lessons, and their registration with Discord.

Moderators' commands (``/tracks …``, ``/insights``) work in servers only and are offered to members with Manage
Server by default (a server can change who sees them); the engine decides what a moderator may do, from the
permissions each turn carries."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

import discord
from discord import app_commands

from bot.adapters import AdapterError
from bot.adapters.discord.translate import command_text, interaction_incoming, upload_of
from bot.core.engine import Engine
from bot.core.lessons import track_name
from bot.core.messages import Incoming, Upload

MAX_CHOICES = 25


class CommandHandler(Protocol):
    """What the slash commands call: the client, passed in (so this module never imports it)."""

    engine: Engine

    async def on_command(self, interaction: discord.Interaction, text: str, upload: Upload | None = None) -> None: ...

    async def on_question(self, interaction: discord.Interaction, question: str) -> None: ...


def track_choices(engine: Engine, incoming: Incoming, current: str) -> list[app_commands.Choice[str]]:
    """Tracks offered here whose id or title contains what the learner typed so far."""
    typed = current.casefold()
    tracks = engine.community_tracks(incoming) if incoming.is_moderator else engine.offered(incoming)
    found = [t for t in tracks if typed in track_name(t.id) or typed in t.title.casefold()]
    return [app_commands.Choice(name=f"{t.title} ({track_name(t.id)})"[:100], value=track_name(t.id))
            for t in found][:MAX_CHOICES]  # fmt: skip


def lesson_choices(engine: Engine, incoming: Incoming, current: str) -> list[app_commands.Choice[str]]:
    """Lessons offered here whose id or title contains what the learner typed so far."""
    typed = current.casefold()
    found = [(t, lesson) for t in engine.offered(incoming) for lesson in t.lessons
             if typed in lesson.id or typed in lesson.title.casefold()]  # fmt: skip
    return [app_commands.Choice(name=f"{lesson.title} ({t.title})"[:100], value=lesson.id)
            for t, lesson in found][:MAX_CHOICES]  # fmt: skip


def build_commands(tutor: CommandHandler) -> list[app_commands.Command[Any, ..., Any] | app_commands.Group]:
    """The slash commands, each a thin call into ``tutor`` (a fresh set per client)."""

    async def _complete_track(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        # off the event loop: which tracks a server offers is a database read
        return await asyncio.to_thread(track_choices, tutor.engine, interaction_incoming(interaction), current)

    async def _complete_lesson(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await asyncio.to_thread(lesson_choices, tutor.engine, interaction_incoming(interaction), current)

    def simple(name: str, description: str) -> app_commands.Command[Any, ..., Any]:
        async def callback(interaction: discord.Interaction) -> None:
            await tutor.on_command(interaction, command_text(name))

        return app_commands.Command(name=name, description=description, callback=callback)

    @app_commands.command(name="learn", description="See the tracks here and where you left off, or open a track")
    @app_commands.describe(track="A track to open; leave empty to see them all")
    @app_commands.autocomplete(track=_complete_track)
    async def learn(interaction: discord.Interaction, track: str | None = None) -> None:
        await tutor.on_command(interaction, command_text("learn", track))

    @app_commands.command(name="lesson", description="Open a lesson by name")
    @app_commands.describe(name="The lesson's id or title")
    @app_commands.autocomplete(name=_complete_lesson)
    async def lesson(interaction: discord.Interaction, name: str) -> None:
        await tutor.on_command(interaction, command_text("lesson", name))

    @app_commands.command(name="ask", description="Ask a question; the answer comes from the lessons only")
    @app_commands.describe(question="Your question, in your own words")
    async def ask(interaction: discord.Interaction, question: app_commands.Range[str, 1, 1000]) -> None:
        await tutor.on_question(interaction, question)

    @app_commands.command(name="term", description="A key term's meaning, from the lessons")
    @app_commands.describe(name="The term, e.g. soft targets")
    async def term(interaction: discord.Interaction, name: app_commands.Range[str, 1, 100]) -> None:
        await tutor.on_command(interaction, command_text("term", name))

    @app_commands.command(name="remind", description="Reminders by direct message when reviews are due")
    @app_commands.describe(setting="on, off, or a time like 19:00; empty shows your reminders")
    async def remind(interaction: discord.Interaction, setting: app_commands.Range[str, 1, 40] | None = None) -> None:
        await tutor.on_command(interaction, command_text("remind", setting))

    @app_commands.command(name="tz", description="Your timezone, for reminders at your local time")
    @app_commands.describe(zone="A zone like Europe/Berlin, or a big city near you")
    async def tz(interaction: discord.Interaction, zone: app_commands.Range[str, 1, 60] | None = None) -> None:
        await tutor.on_command(interaction, command_text("tz", zone))

    @app_commands.command(name="leaderboard", description="This week's top learners in this server")
    @app_commands.describe(setting="on or off: appear on leaderboards or not; moderators: enable or disable it here")
    async def leaderboard(interaction: discord.Interaction,
                          setting: app_commands.Range[str, 1, 20] | None = None) -> None:  # fmt: skip
        await tutor.on_command(interaction, command_text("leaderboard", setting))

    servers_only = app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False)
    tracks = app_commands.Group(name="tracks", description="Moderators: the tracks this server offers, and uploads",
                                guild_only=True, allowed_contexts=servers_only,
                                default_permissions=discord.Permissions(manage_guild=True))  # fmt: skip

    @tracks.command(name="list", description="The tracks this server offers and those turned off")
    async def tracks_list(interaction: discord.Interaction) -> None:
        await tutor.on_command(interaction, command_text("tracks list"))

    @tracks.command(name="enable", description="Offer a track in this server")
    @app_commands.describe(track="The track's id")
    @app_commands.autocomplete(track=_complete_track)
    async def tracks_enable(interaction: discord.Interaction, track: str) -> None:
        await tutor.on_command(interaction, command_text("tracks enable", track))

    @tracks.command(name="disable", description="Stop offering a track in this server (learners keep progress)")
    @app_commands.describe(track="The track's id")
    @app_commands.autocomplete(track=_complete_track)
    async def tracks_disable(interaction: discord.Interaction, track: str) -> None:
        await tutor.on_command(interaction, command_text("tracks disable", track))

    @tracks.command(name="upload", description="Upload a lesson (.md) or a whole track (.zip) to check and preview")
    @app_commands.describe(file="One lesson as a .md file, or a track folder (track.toml and lessons) as a .zip",
                           track="The track's id; leave empty to take the id in the zip's track.toml")  # fmt: skip
    @app_commands.autocomplete(track=_complete_track)
    async def tracks_upload(interaction: discord.Interaction, file: discord.Attachment,
                            track: app_commands.Range[str, 1, 100] | None = None) -> None:  # fmt: skip
        await tutor.on_command(interaction, command_text("tracks upload", track), upload=upload_of(file))

    @tracks.command(name="preview", description="See an uploaded track as learners will, before publishing it")
    @app_commands.describe(track="The track's id")
    @app_commands.autocomplete(track=_complete_track)
    async def tracks_preview(interaction: discord.Interaction, track: str) -> None:
        await tutor.on_command(interaction, command_text("tracks preview", track))

    @tracks.command(name="publish", description="Publish an uploaded track to learners")
    @app_commands.describe(track="The track's id")
    @app_commands.autocomplete(track=_complete_track)
    async def tracks_publish(interaction: discord.Interaction, track: str) -> None:
        await tutor.on_command(interaction, command_text("tracks publish", track))

    @tracks.command(name="history", description="A track's published versions: when, and by whom")
    @app_commands.describe(track="The track's id")
    @app_commands.autocomplete(track=_complete_track)
    async def tracks_history(interaction: discord.Interaction, track: str) -> None:
        await tutor.on_command(interaction, command_text("tracks history", track))

    @tracks.command(name="rollback", description="Serve an earlier published version of a track again")
    @app_commands.describe(track="The track's id", version="The version to bring back (see /tracks history)")
    @app_commands.autocomplete(track=_complete_track)
    async def tracks_rollback(interaction: discord.Interaction, track: str,
                              version: app_commands.Range[int, 1, None]) -> None:  # fmt: skip
        await tutor.on_command(interaction, command_text("tracks rollback", f"{track.strip()} {version}"))

    @app_commands.command(name="insights", description="Moderators: how learners are doing here, with charts")
    @app_commands.describe(track="A track to look into; leave empty for every track here")
    @app_commands.autocomplete(track=_complete_track)
    @app_commands.guild_only()
    @app_commands.allowed_contexts(guilds=True, dms=False, private_channels=False)
    @app_commands.default_permissions(manage_guild=True)
    async def insights(interaction: discord.Interaction, track: str | None = None) -> None:
        await tutor.on_command(interaction, command_text("insights", track))

    return [
        learn,
        lesson,
        simple("next", "Go to the next part of your lesson"),
        simple("back", "Go back to the previous part of your lesson"),
        simple("quiz", "Take the quiz of your current lesson"),
        ask,
        simple("progress", "Your lessons, quiz scores, streak and reviews due (only you see it)"),
        simple("review", "Go over quiz questions you missed"),
        simple("help", "What the tutor understands"),
        simple("reset", "Erase your progress (asks first)"),
        term,
        remind,
        tz,
        leaderboard,
        tracks,
        insights,
    ]


async def sync_commands(tree: app_commands.CommandTree, guild_ids: Iterable[int]) -> None:
    """Register the slash commands: in the given servers at once, or globally (Discord spreads those slowly)."""
    guild_ids = list(guild_ids)
    if not guild_ids:
        await tree.sync()
        return
    for guild_id in guild_ids:
        guild = discord.Object(id=guild_id)
        tree.copy_global_to(guild=guild)
        try:
            await tree.sync(guild=guild)
        except discord.Forbidden:
            raise AdapterError(
                f"Discord refused to register slash commands in server {guild_id}: invite the bot to that server "
                "with the 'applications.commands' scope, or fix TUTORBOT_DISCORD__GUILD_IDS"
            ) from None
