"""The client: ``TutorClient`` turns slash commands, button presses and messages into engine turns, acknowledges
interactions within Discord's 3 seconds, keeps to the question limit, reports failures and shuts down gently.

It runs the shards its settings name (``shard_count``, ``shard_ids``), or all the shards Discord recommends; one
process or several make up the whole bot. Discord sends a server's events only to the shard that server falls
on, so each process answers its own servers; DMs arrive on shard 0. Only the process with shard 0 registers
the slash commands, so several processes starting at once do not all overwrite them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import aiohttp
import discord
from discord import app_commands

from bot.adapters.discord.commands import build_commands, sync_commands
from bot.adapters.discord.components import NO_MENTIONS, TutorButton
from bot.adapters.discord.outbox import ChannelOutbox, InteractionOutbox, deliver
from bot.adapters.discord.render import render
from bot.adapters.discord.translate import PLATFORM, interaction_incoming, message_incoming
from bot.config import DiscordSettings
from bot.core.engine import Engine
from bot.core.messages import Incoming, Reply, Upload
from bot.core.reminders import Delivery

log = logging.getLogger(__package__)  # the whole adapter logs as "bot.adapters.discord"

NAVIGATION_ACK_SECONDS = 1.5  # navigation answers in ms; waiting this long means the learner's own turn is in flight
SHUTDOWN_GRACE_SECONDS = 30.0  # how long a stop waits for turns in flight before closing the connection
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
RESTARTING = "I'm restarting right now; please try again in a minute."


def minimal_intents() -> discord.Intents:
    """Servers (for permissions and channels) and messages in DMs and servers; nothing privileged."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.dm_messages = True
    intents.guild_messages = True
    return intents


def syncs_commands(settings: DiscordSettings) -> bool:
    """Whether this process registers the slash commands: it runs shard 0 (every process shares the commands)."""
    return settings.shard_ids is None or 0 in settings.shard_ids


class TutorClient(discord.AutoShardedClient):
    """A Discord client that turns slash commands, button presses and messages into engine turns."""

    def __init__(self, engine: Engine, settings: DiscordSettings) -> None:
        # No shard count: discord.py asks Discord for the recommended one and runs every shard. No shard ids: all.
        shards: dict[str, Any] = {"shard_count": settings.shard_count}
        if settings.shard_ids is not None:
            shards["shard_ids"] = settings.shard_ids
        super().__init__(intents=minimal_intents(), allowed_mentions=NO_MENTIONS, **shards)
        self.engine = engine
        self.settings = settings
        engine.limit_questions(PLATFORM, settings.questions_per_minute)
        contexts = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=False)
        installs = app_commands.AppInstallationType(guild=True, user=False)
        self.tree = app_commands.CommandTree(self, allowed_contexts=contexts, allowed_installs=installs)
        for command in build_commands(self):
            self.tree.add_command(command)
        self.tree.error(self._on_command_error)
        self.accepting = True
        self._turns: set[asyncio.Task[Any]] = set()

    async def setup_hook(self) -> None:
        """Make old buttons work again and register the slash commands (in the process with shard 0 only)."""
        self.add_dynamic_items(TutorButton)
        if syncs_commands(self.settings):
            await sync_commands(self.tree, self.settings.guild_ids)
        else:
            log.info("not registering slash commands: the process with shard 0 does (this one runs shards %s of %s)",
                     self.settings.shard_ids, self.settings.shard_count)  # fmt: skip

    # ------------------------------------------------------------ entry points

    async def on_command(self, interaction: discord.Interaction, text: str, upload: Upload | None = None) -> None:
        """A slash command: its text command (and the file sent with it) as a turn."""
        await self._interaction_turn(interaction, interaction_incoming(interaction, text=text, upload=upload))

    async def on_question(self, interaction: discord.Interaction, question: str) -> None:
        """``/ask``: always a question, even one that looks like a command (``/ask next``)."""
        await self._interaction_turn(interaction, interaction_incoming(interaction, text=f"/ask {question}"))

    async def on_button(self, interaction: discord.Interaction, action: str) -> None:
        """A button press (its owner checked already): its action as a turn."""
        try:
            await self._interaction_turn(interaction, interaction_incoming(interaction, action=action))
        except Exception as error:  # noqa: BLE001 - one handler for every failure
            await self.report_failure(error, where=f"button {action}", interaction=interaction)

    async def on_message(self, message: discord.Message) -> None:
        """A DM, or a server message that mentions the bot: its text as a turn; replies go to the channel."""
        incoming = message_incoming(message, self.user.id) if self.user is not None and self.accepting else None
        if incoming is None:
            return
        outbox, owner = ChannelOutbox(message), message.author.id
        try:
            with self._in_flight():
                note = (await self.engine.admit(incoming)).refusal
                async with contextlib.aclosing(_once(note) if note else self.engine.handle(incoming)) as replies:
                    await deliver(replies, outbox, owner, self.settings.edit_seconds)
        except Exception as error:  # noqa: BLE001 - one handler for every failure
            await self.report_failure(error, where="message", message=message)

    async def send_reminder(self, user_id: str, reply: Reply) -> Delivery:
        """Send a reminder as a DM; closed DMs or an unknown user are UNREACHABLE, anything passing FAILED."""
        try:
            user = self.get_user(int(user_id)) or await self.fetch_user(int(user_id))
            channel = user.dm_channel or await user.create_dm()
            for message in render(reply, user.id):
                await channel.send(**message.kwargs())
        except (discord.Forbidden, discord.NotFound):
            return Delivery.UNREACHABLE  # DMs closed to the bot, the bot blocked, or the account is gone
        except (TimeoutError, discord.HTTPException, aiohttp.ClientError, OSError) as error:
            log.warning("could not send a reminder to Discord user %s: %s", user_id, type(error).__name__)
            return Delivery.FAILED
        return Delivery.SENT

    # ------------------------------------------------------------ one turn

    async def _interaction_turn(self, interaction: discord.Interaction, incoming: Incoming) -> None:
        outbox = InteractionOutbox(interaction)
        if not self.accepting:
            await interaction.response.send_message(RESTARTING, ephemeral=True)
            return
        with self._in_flight():
            admission = await self.engine.admit(incoming)
            if admission.refusal is not None:  # one question at a time, or over the per-minute limit
                await deliver(_once(admission.refusal), outbox, interaction.user.id, self.settings.edit_seconds)
                return
            if admission.question:
                # The model takes seconds: say "thinking…" now. An answer is for everyone in the channel.
                await outbox.acknowledge(private=False)
            # Closed even when sending fails: a suspended turn would keep holding the learner's lock.
            async with contextlib.aclosing(self.engine.handle(incoming)) as replies:
                slow = NAVIGATION_ACK_SECONDS
                stream = replies if admission.question else await _acknowledge_if_slow(replies, outbox, slow)
                await deliver(stream, outbox, interaction.user.id, self.settings.edit_seconds)
            await outbox.finish()

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        """Count the current task as a turn in flight while the block runs (a stop waits for it)."""
        task = asyncio.current_task()
        if task is not None:
            self._turns.add(task)
        try:
            yield
        finally:
            self._turns.discard(task)

    # ------------------------------------------------------------ failures and shutdown

    async def _on_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.NoPrivateMessage):
            await _tell(interaction, "That command works in a server, not in a direct message.")
            return
        if isinstance(error, app_commands.CheckFailure):
            await _tell(interaction, "You can't use that command here.")
            return
        original = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        name = interaction.command.qualified_name if interaction.command else "?"
        await self.report_failure(original, where=f"/{name}", interaction=interaction)

    async def report_failure(self, error: BaseException, *, where: str, interaction: discord.Interaction | None = None,
                             message: discord.Message | None = None) -> None:  # fmt: skip
        """The one error handler: log what failed and where (never the token), apologise to the learner."""
        source = interaction or message
        guild = getattr(getattr(source, "guild", None), "id", None) or getattr(source, "guild_id", None)
        channel = getattr(getattr(source, "channel", None), "id", None)
        user = getattr(getattr(source, "user", None) or getattr(source, "author", None), "id", None)
        log.error("Discord turn failed: %s (guild %s, channel %s, user %s)", where, guild, channel, user,
                  exc_info=(type(error), error, error.__traceback__))  # fmt: skip
        try:
            if interaction is not None:
                await _tell(interaction, APOLOGY)
            elif message is not None:
                await message.channel.send(APOLOGY, allowed_mentions=NO_MENTIONS)
        except discord.DiscordException as failed:
            log.warning("could not send the apology for %s: %s", where, failed)

    async def shutdown(self) -> None:
        """Stop taking turns, let those in flight finish (within a grace period), then disconnect."""
        self.accepting = False
        running = {task for task in self._turns if not task.done()}
        if running:
            log.info("waiting for %d Discord turn(s) in flight", len(running))
            _done, late = await asyncio.wait(running, timeout=SHUTDOWN_GRACE_SECONDS)
            if late:
                log.warning("%d Discord turn(s) did not finish within %.0f s", len(late), SHUTDOWN_GRACE_SECONDS)
        await self.close()


async def _once(reply: Reply) -> AsyncGenerator[Reply, None]:
    yield reply


async def _acknowledge_if_slow(replies: AsyncIterator[Reply], outbox: InteractionOutbox,
                               seconds: float) -> AsyncIterator[Reply]:  # fmt: skip
    """The same replies; if the first is not ready within ``seconds``, the interaction is deferred meanwhile."""
    iterator = aiter(replies)
    first = asyncio.ensure_future(anext(iterator))
    done, _pending = await asyncio.wait({first}, timeout=seconds)
    if not done:
        try:
            await outbox.acknowledge(private=True)  # who sees the reply is fixed now: only the learner, to be safe
        except BaseException:
            first.cancel()  # ends the turn (and frees the learner's lock) rather than leaving it suspended
            await asyncio.gather(first, return_exceptions=True)
            raise

    async def chained() -> AsyncIterator[Reply]:
        try:
            yield await first
        except StopAsyncIteration:
            return
        async for reply in iterator:
            yield reply

    return chained()


async def _tell(interaction: discord.Interaction, text: str) -> None:
    """A short ephemeral note, as the response or a follow-up."""
    if interaction.response.is_done():
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    else:
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
