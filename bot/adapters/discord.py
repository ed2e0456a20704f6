"""The Discord adapter: slash commands, buttons and messages in; the engine's replies out as Discord messages.

Only translation and Discord's rules live here: turns become ``Incoming`` (a server is the community, a DM its
own), replies become messages of at most 2000 characters with escaped text and buttons. Buttons are
``DynamicItem``s whose custom id (``tb:OWNER:ACTION``) carries everything needed to act on a press, so they
keep working after a restart, and only their owner may press them. Interactions are acknowledged within
Discord's 3 seconds (questions defer at once; other turns answer directly, deferring only if they are slow);
answers stream into one message by throttled edits. Mentions never ping anyone.

Intents stay minimal and unprivileged: Discord delivers the text of DMs and of messages that mention the bot
without the message-content intent, and those are the only plain messages the adapter reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import discord
from discord import app_commands

from bot.adapters import AdapterError
from bot.config import DiscordSettings
from bot.core.engine import Engine
from bot.core.messages import MAX_ACTION_BYTES, Button, Incoming, Reply

log = logging.getLogger(__name__)

PLATFORM = "discord"
MAX_MESSAGE_CHARS = 2000
MAX_CUSTOM_ID_CHARS = 100
MAX_BUTTONS_PER_ROW = 5
MAX_ROWS = 5
MAX_LABEL_CHARS = 80
MAX_CHOICES = 25
CUSTOM_ID_TEMPLATE = r"tb:(?P<owner>[0-9]{1,20}):(?P<action>[!-~]{1,48})"
NAVIGATION_ACK_SECONDS = 1.5  # navigation answers in ms; waiting this long means the learner's own turn is in flight
SHUTDOWN_GRACE_SECONDS = 30.0  # how long a stop waits for turns in flight before closing the connection
TOKEN_HINT = "check TUTORBOT_DISCORD__TOKEN"
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
NOT_YOURS = "These buttons belong to someone else's lesson, so I didn't act on them. Use /learn to start your own."
RESTARTING = "I'm restarting right now; please try again in a minute."
NO_MENTIONS = discord.AllowedMentions.none()

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
_URL = re.compile(r"https?://[^\s<>]+[^\s<>.,:;\"')\]]")
_MARKUP_CHAR = re.compile(r"([\\*_~|`<>\[\]])")
_LINE_START_MARKUP = re.compile(r"^([ \t]*)([#-])", re.MULTILINE)


# ---------------------------------------------------------------- text: escaping and splitting


def discord_length(text: str) -> int:
    """Length as Discord counts it (UTF-16 code units: an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Text shown literally: every Markdown character escaped, wherever it is (URLs are left whole)."""
    out, last = [], 0
    for match in _URL.finditer(text):
        out.append(_escape_plain(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_escape_plain(text[last:]))
    return "".join(out)


def _escape_plain(text: str) -> str:
    # Unlike discord.utils.escape_markdown, escape unpaired characters too: a bold span splits the text into
    # pieces, and a '_' in one piece could pair with a '_' in another once they are joined again.
    return _LINE_START_MARKUP.sub(r"\1\\\2", _MARKUP_CHAR.sub(r"\\\1", text))


def render_text(text: str) -> str:
    """Reply text as Discord Markdown: ``**bold**`` spans stay bold, everything else is shown literally."""
    out, last = [], 0
    for match in _BOLD.finditer(text):
        out.append(escape(text[last : match.start()]))
        out.append(f"**{escape(match.group(1))}**")
        last = match.end()
    out.append(escape(text[last:]))
    return "".join(out)


def split_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Reply text rendered into messages of at most ``limit`` characters, cut at paragraphs, lines or words.

    A bold span cut in two is closed at the end of one message and opened again in the next.
    """
    pieces: list[str] = []
    rest = text.strip()
    while rest and discord_length(render_text(rest)) > limit:
        cut = _cut_point(rest, limit - 4 if "**" in rest else limit)  # room to close and reopen a bold span
        head, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        if head.count("**") % 2:
            head, rest = head + "**", "**" + rest
        pieces.append(render_text(head))
    if rest:
        pieces.append(render_text(rest))
    return pieces or [""]


def _cut_point(text: str, limit: int) -> int:
    """Where to cut ``text`` so that the part before renders within ``limit``: a boundary when there is one."""
    low, high = 1, len(text)  # the longest prefix that fits, by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if discord_length(render_text(text[:middle])) <= limit:
            low = middle
        else:
            high = middle - 1
    for boundary in ("\n\n", "\n", " "):
        at = text.rfind(boundary, 0, low + 1)
        if at > low // 3:
            return at
    return low


def clip(rendered: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Rendered text cut to ``limit`` characters with an ellipsis (for a streaming answer still being written)."""
    if discord_length(rendered) <= limit:
        return rendered
    cut = rendered[: limit - 2]
    while discord_length(cut) > limit - 2:
        cut = cut[:-1]
    return cut.rstrip("\\") + " …"


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


def layout(button_rows: Sequence[Sequence[Button]]) -> list[list[Button]]:
    """Button rows that Discord accepts: at most five rows of five (extra rows are reflowed, the rest dropped)."""
    if len(button_rows) <= MAX_ROWS and all(len(row) <= MAX_BUTTONS_PER_ROW for row in button_rows):
        return [list(row) for row in button_rows if row]
    flat = [button for row in button_rows for button in row]
    if len(flat) > MAX_ROWS * MAX_BUTTONS_PER_ROW:
        log.warning("a reply had %d buttons; Discord shows only %d", len(flat), MAX_ROWS * MAX_BUTTONS_PER_ROW)
    flat = flat[: MAX_ROWS * MAX_BUTTONS_PER_ROW]
    return [flat[i : i + MAX_BUTTONS_PER_ROW] for i in range(0, len(flat), MAX_BUTTONS_PER_ROW)]


def _unique(button_rows: Sequence[Sequence[Button]]) -> list[list[Button]]:
    """Rows without a repeated action (Discord refuses a message whose custom ids repeat)."""
    seen: set[str] = set()
    kept: list[list[Button]] = []
    for row in button_rows:
        fresh = []
        for button in row:
            if button.action not in seen:
                seen.add(button.action)
                fresh.append(button)
        if fresh:
            kept.append(fresh)
    return kept


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
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> TutorButton:
        """The button a press refers to, rebuilt from its custom id."""
        return cls(int(match["owner"]), match["action"], item.label or "")

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        """Only the learner a message was written for may press its buttons; anyone else gets a quiet note."""
        if interaction.user.id == self.owner:
            return True
        await interaction.response.send_message(NOT_YOURS, ephemeral=True, allowed_mentions=NO_MENTIONS)
        return False

    async def callback(self, interaction: discord.Interaction) -> None:
        """Hand the press to the client as a turn."""
        client = interaction.client
        if isinstance(client, TutorClient):
            await client.on_button(interaction, self.action)


# ---------------------------------------------------------------- replies as messages


@dataclass(frozen=True)
class Outgoing:
    """One Discord message: rendered content, and buttons (rows of them) owned by one learner."""

    content: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    owner: int = 0

    def view(self) -> discord.ui.View | None:
        """The buttons as a view of persistent ``TutorButton``s (None without buttons)."""
        if not self.buttons:
            return None
        view = discord.ui.View(timeout=None)
        for number, row in enumerate(self.buttons):
            for button in row:
                view.add_item(TutorButton(self.owner, button.action, button.label, row=number))
        return view

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``send``/``edit``: content, no mentions, and the view when there are buttons."""
        kwargs: dict[str, Any] = {"content": self.content or "…", "allowed_mentions": NO_MENTIONS}
        view = self.view()
        if view is not None:
            kwargs["view"] = view
        return kwargs


def render(reply: Reply, owner: int) -> list[Outgoing]:
    """A reply as messages: its text split to fit, its buttons (laid out for Discord) under the last one.

    A quiz card needs nothing more: the reply's buttons already carry one action per option, and its
    citations are already in its text.
    """
    pieces = split_text(reply.text)
    buttons = tuple(tuple(row) for row in layout(_unique(reply.buttons)))
    return [Outgoing(piece, buttons if n == len(pieces) - 1 else (), owner) for n, piece in enumerate(pieces)]


# ---------------------------------------------------------------- turns in


def interaction_incoming(interaction: discord.Interaction, *, text: str | None = None,
                         action: str | None = None) -> Incoming:  # fmt: skip
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
    )


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
    return f"/{word} {argument.strip()}" if argument and argument.strip() else f"/{word}"


class QuestionLimiter:
    """At most ``per_minute`` model questions per learner in any sixty seconds."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._asked: dict[str, deque[float]] = {}

    def wait(self, learner: str) -> float:
        """Seconds the learner must wait before asking again; 0 means go ahead (and the question is counted)."""
        now = self.clock()
        asked = self._asked.setdefault(learner, deque())
        while asked and asked[0] <= now - 60:
            asked.popleft()
        if len(asked) >= self.per_minute:
            return asked[0] + 60 - now
        asked.append(now)
        return 0.0

    def forget_idle(self) -> None:
        """Drop learners with no question in the last minute (keeps memory flat)."""
        now = self.clock()
        for learner in [key for key, asked in self._asked.items() if not asked or asked[-1] <= now - 60]:
            del self._asked[learner]


def too_many_questions(per_minute: int, wait: float) -> str:
    """The polite note for a learner over the question limit."""
    plural = "" if per_minute == 1 else "s"
    return (f"You've reached the limit of {per_minute} question{plural} a minute; I can take another in about "
            f"{max(1, math.ceil(wait))} seconds. The lesson buttons keep working meanwhile.")  # fmt: skip


# ---------------------------------------------------------------- replies out


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
        """Replace the message's content (and buttons) with ``message``."""
        await self.editor(**message.kwargs())


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
        kwargs = message.kwargs()
        ephemeral = private and self.private_ok
        if not self.interaction.response.is_done():
            await self.interaction.response.send_message(**kwargs, ephemeral=ephemeral)
            return _EditBy(self.interaction.edit_original_response)
        if self._deferred_reply_pending:
            # The deferral already chose who sees this message: Discord ignores the flag of its first follow-up.
            self._deferred_reply_pending = False
            await self.interaction.edit_original_response(**kwargs)
            return _EditBy(self.interaction.edit_original_response)
        sent = await self.interaction.followup.send(**kwargs, ephemeral=ephemeral, wait=True)
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
        return _EditBy(sent.edit)


async def deliver(replies: AsyncIterator[Reply], outbox: Outbox, owner: int, edit_seconds: float, *,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:  # fmt: skip
    """Send a turn's replies in order; a growing (partial) reply streams into one message, edited at most once
    per ``edit_seconds``, and the reply that completes it is always applied."""
    streaming: Sent | None = None
    edited_at = 0.0
    async for reply in replies:
        if reply.partial:
            shown = Outgoing(clip(render_text(reply.text)), owner=owner)
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


# ---------------------------------------------------------------- slash commands


def _tutor(interaction: discord.Interaction) -> TutorClient:
    client = interaction.client
    assert isinstance(client, TutorClient)
    return client


def track_choices(engine: Engine, incoming: Incoming, current: str) -> list[app_commands.Choice[str]]:
    """Tracks offered here whose id or title contains what the learner typed so far."""
    typed = current.casefold()
    tracks = engine.tracks.values() if incoming.is_moderator else engine.offered(incoming)
    found = [t for t in tracks if typed in t.id or typed in t.title.casefold()]
    return [app_commands.Choice(name=f"{t.title} ({t.id})"[:100], value=t.id) for t in found][:MAX_CHOICES]


def lesson_choices(engine: Engine, incoming: Incoming, current: str) -> list[app_commands.Choice[str]]:
    """Lessons offered here whose id or title contains what the learner typed so far."""
    typed = current.casefold()
    found = [(t, lesson) for t in engine.offered(incoming) for lesson in t.lessons
             if typed in lesson.id or typed in lesson.title.casefold()]  # fmt: skip
    return [app_commands.Choice(name=f"{lesson.title} ({t.title})"[:100], value=lesson.id)
            for t, lesson in found][:MAX_CHOICES]  # fmt: skip


async def _complete_track(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return track_choices(_tutor(interaction).engine, interaction_incoming(interaction), current)


async def _complete_lesson(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return lesson_choices(_tutor(interaction).engine, interaction_incoming(interaction), current)


def build_commands() -> list[app_commands.Command[Any, ..., Any] | app_commands.Group]:
    """The slash commands, each a thin call into the engine (a fresh set per client)."""

    def simple(name: str, description: str) -> app_commands.Command[Any, ..., Any]:
        async def callback(interaction: discord.Interaction) -> None:
            await _tutor(interaction).on_command(interaction, command_text(name))

        return app_commands.Command(name=name, description=description, callback=callback)

    @app_commands.command(name="learn", description="See the tracks here and where you left off, or open a track")
    @app_commands.describe(track="A track to open; leave empty to see them all")
    @app_commands.autocomplete(track=_complete_track)
    async def learn(interaction: discord.Interaction, track: str | None = None) -> None:
        await _tutor(interaction).on_command(interaction, command_text("learn", track))

    @app_commands.command(name="lesson", description="Open a lesson by name")
    @app_commands.describe(name="The lesson's id or title")
    @app_commands.autocomplete(name=_complete_lesson)
    async def lesson(interaction: discord.Interaction, name: str) -> None:
        await _tutor(interaction).on_command(interaction, command_text("lesson", name))

    @app_commands.command(name="ask", description="Ask a question; the answer comes from the lessons only")
    @app_commands.describe(question="Your question, in your own words")
    async def ask(interaction: discord.Interaction, question: app_commands.Range[str, 1, 1000]) -> None:
        await _tutor(interaction).on_question(interaction, question)

    servers_only = app_commands.AppCommandContext(guild=True, dm_channel=False, private_channel=False)
    tracks = app_commands.Group(name="tracks", description="Moderators: choose the tracks this server offers",
                                guild_only=True, allowed_contexts=servers_only,
                                default_permissions=discord.Permissions(manage_guild=True))  # fmt: skip

    @tracks.command(name="list", description="The tracks this server offers and those turned off")
    async def tracks_list(interaction: discord.Interaction) -> None:
        await _tutor(interaction).on_command(interaction, command_text("tracks list"))

    @tracks.command(name="enable", description="Offer a track in this server")
    @app_commands.describe(track="The track's id")
    @app_commands.autocomplete(track=_complete_track)
    async def tracks_enable(interaction: discord.Interaction, track: str) -> None:
        await _tutor(interaction).on_command(interaction, command_text("tracks enable", track))

    @tracks.command(name="disable", description="Stop offering a track in this server (learners keep progress)")
    @app_commands.describe(track="The track's id")
    @app_commands.autocomplete(track=_complete_track)
    async def tracks_disable(interaction: discord.Interaction, track: str) -> None:
        await _tutor(interaction).on_command(interaction, command_text("tracks disable", track))

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
        tracks,
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


# ---------------------------------------------------------------- the client


def minimal_intents() -> discord.Intents:
    """Servers (for permissions and channels) and messages in DMs and servers; nothing privileged."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.dm_messages = True
    intents.guild_messages = True
    return intents


class TutorClient(discord.Client):
    """A Discord client that turns slash commands, button presses and messages into engine turns."""

    def __init__(self, engine: Engine, settings: DiscordSettings) -> None:
        super().__init__(intents=minimal_intents(), allowed_mentions=NO_MENTIONS)
        self.engine = engine
        self.settings = settings
        self.limiter = QuestionLimiter(settings.questions_per_minute)
        contexts = app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=False)
        installs = app_commands.AppInstallationType(guild=True, user=False)
        self.tree = app_commands.CommandTree(self, allowed_contexts=contexts, allowed_installs=installs)
        for command in build_commands():
            self.tree.add_command(command)
        self.tree.error(self._on_command_error)
        self.accepting = True
        self._turns: set[asyncio.Task[Any]] = set()
        self._asking: set[str] = set()  # learners whose question turn is in flight here

    async def setup_hook(self) -> None:
        """Make old buttons work again and register the slash commands."""
        self.add_dynamic_items(TutorButton)
        await sync_commands(self.tree, self.settings.guild_ids)

    # ------------------------------------------------------------ entry points

    async def on_command(self, interaction: discord.Interaction, text: str) -> None:
        """A slash command: its text command as a turn."""
        await self._interaction_turn(interaction, interaction_incoming(interaction, text=text))

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
                note = self._limit_note(incoming) if self.engine.is_question(incoming) else None
                async with contextlib.aclosing(_once(note) if note else self.engine.handle(incoming)) as replies:
                    await deliver(replies, outbox, owner, self.settings.edit_seconds)
        except Exception as error:  # noqa: BLE001 - one handler for every failure
            await self.report_failure(error, where="message", message=message)

    # ------------------------------------------------------------ one turn

    async def _interaction_turn(self, interaction: discord.Interaction, incoming: Incoming) -> None:
        outbox = InteractionOutbox(interaction)
        if not self.accepting:
            await interaction.response.send_message(RESTARTING, ephemeral=True)
            return
        with self._in_flight():
            # A learner whose question is in flight gets the engine's instant "one at a time" note instead.
            question = self.engine.is_question(incoming) and incoming.learner not in self._asking
            note = self._limit_note(incoming) if question else None
            if note is not None:
                await deliver(_once(note), outbox, interaction.user.id, self.settings.edit_seconds)
                return
            if question:
                # The model takes seconds: say "thinking…" now. An answer is for everyone in the channel.
                await outbox.acknowledge(private=False)
                self._asking.add(incoming.learner)
            try:
                # Closed even when sending fails: a suspended turn would keep holding the learner's lock.
                async with contextlib.aclosing(self.engine.handle(incoming)) as replies:
                    slow = NAVIGATION_ACK_SECONDS
                    stream = replies if question else await _acknowledge_if_slow(replies, outbox, slow)
                    await deliver(stream, outbox, interaction.user.id, self.settings.edit_seconds)
                await outbox.finish()
            finally:
                if question:
                    self._asking.discard(incoming.learner)

    def _limit_note(self, incoming: Incoming) -> Reply | None:
        """The note for a learner over the question limit; None lets the question through (and counts it)."""
        self.limiter.forget_idle()
        wait = self.limiter.wait(incoming.learner)
        return Reply(too_many_questions(self.limiter.per_minute, wait), personal=True) if wait else None

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        """Count the current task as a turn in flight while the block runs (a stop waits for it)."""
        task = asyncio.current_task()
        if task is not None:
            self._turns.add(task)
        try:
            yield
        finally:
            self._turns.discard(task)  # type: ignore[arg-type]

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


async def _once(reply: Reply) -> AsyncIterator[Reply]:
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


# ---------------------------------------------------------------- serve


async def serve(engine: Engine, settings: DiscordSettings, stop: asyncio.Event) -> None:
    """Serve learners on Discord until ``stop`` is set, then finish the turns in flight and disconnect."""
    if settings.token is None:
        raise AdapterError("no Discord bot token: set TUTORBOT_DISCORD__TOKEN (in the environment or .env)")
    client = TutorClient(engine, settings)
    try:
        await client.login(settings.token.get_secret_value())
    except BaseException as error:
        await client.close()
        raise _start_error(error) from None
    connection = asyncio.create_task(client.connect(reconnect=True), name="discord-connection")
    stopping = asyncio.create_task(stop.wait(), name="discord-stop")
    try:
        await asyncio.wait({connection, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not connection.done():
            await client.shutdown()
        else:
            await client.close()
    error = await _ended(connection)
    if error is not None and not stop.is_set():
        raise _start_error(error) from None


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
