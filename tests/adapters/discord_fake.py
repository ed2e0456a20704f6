"""A local fake Discord on 127.0.0.1: the REST API and the gateway, enough for the real discord.py client.

REST: discord.py is pointed here through ``discord.http.Route.BASE``; every call is recorded (method, path,
query, JSON body or multipart ``payload_json``, and the ``files[n]`` parts as ``SentFile``s with their names and
bytes) and messages are kept with their edits and files, so tests assert on what the bot showed and to whom
(ephemeral or not). ``attachment`` keeps a file a user sends with a slash command: ``slash`` puts it in the
command's options and ``resolved.attachments`` as Discord does, and the fake serves its bytes at its URL. Responses use exactly ``Content-Type: application/json``
(discord.py parses nothing else). Interaction responses follow Discord's rules: a deferred "thinking" reply
is filled by the first follow-up (whose own ephemeral flag is ignored), a deferred button press creates no
message, and an interaction answered twice is an error.

Gateway: a real websocket at ``/gateway``, any number of connections at once (a sharded bot opens one a
shard, in one process or several). A client that knows its shard count opens ``DiscordWebSocket.DEFAULT_GATEWAY``
(``pointed_at`` sets it to this fake); one that does not asks ``GET /gateway/bot``, which answers this gateway
and ``shard_count`` (1 unless given). The fake sends HELLO, checks the token of IDENTIFY (a wrong one closes
with 4004) and its ``shard`` ([id, count]; an id outside the count closes with 4010, as Discord does), sends
READY and a GUILD_CREATE for each server on that shard, and ACKs heartbeats. Servers: the main one, and
``other_guilds`` (each with one text channel). Events go where Discord sends them: a server's to the connections
of its shard, ``(guild_id >> 22) % shard_count``, a DM's to shard 0; to each such connection, so two processes
running the same shard would both get it. discord.py asks for a compressed stream in the URL
query, but it decompresses only binary frames; the fake sends text frames, so nothing needs switching off.
Tests inject ``INTERACTION_CREATE`` and ``MESSAGE_CREATE`` events, which the client parses as Discord's.
Ids are realistic snowflakes (discord.py parses some, like mentions in text, only with 15-20 digits).

For load tests: the server can have several text channels (``channel_ids``); ``record_calls=False`` keeps counts
instead of every call; ``ack_seconds`` refuses an interaction response that comes later than Discord allows
(its 3 s: "Unknown interaction"); ``Interaction.delivered`` and ``FakeMessage.arrived`` say when an event was
sent to the bot and when a message was last posted or edited; ``wait_on`` waits for an interaction's or a
channel's messages to change instead of polling; ``refused`` lists every error answer the fake gave and
``abandoned`` counts calls the bot dropped half-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl
from aiohttp import web

JSON = "application/json"
EPHEMERAL = 64
MANAGE_GUILD = 1 << 5
MEMBER_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 31)  # view channel, send messages, use application commands
BOT_ID = "1180000000000000900"  # ids are realistic snowflakes: discord.py parses some only with 15-20 digits
GUILD_ID = "1180000000000000700"
CHANNEL_ID = "1180000000000000710"
MODERATOR_ROLE_ID = "1180000000000000701"
DISCORD_EPOCH_MS = 1420070400000
HEARTBEAT_ACK_SECONDS = 0.1


@dataclass
class Call:
    """One REST call the bot made."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    files: list[SentFile] = field(default_factory=list)  # the multipart ``files[n]`` parts


@dataclass(frozen=True)
class SentFile:
    """A file the bot attached to a message (a ``files[n]`` part of a multipart request): its name and bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class UserFile:
    """A file a user sends with a slash command (an attachment option), served by the fake at ``url``."""

    id: str
    filename: str
    data: bytes
    url: str

    def payload(self) -> dict:
        return {"id": self.id, "filename": self.filename, "size": len(self.data), "url": self.url,
                "proxy_url": self.url, "content_type": "application/octet-stream"}  # fmt: skip


Option = str | int | UserFile  # the value of a slash command's option
FILES = web.RequestKey("files", list[SentFile])  # a request's multipart files, for the handlers that make messages


@dataclass
class FakeMessage:
    """A message as users would see it, with how it was made and changed."""

    id: str
    channel_id: str
    content: str
    components: list[dict]
    ephemeral: bool
    author_id: str
    interaction_token: str | None = None  # the interaction whose response or follow-up this is
    loading: bool = False  # a deferred "thinking…" reply not filled in yet
    edits: int = 0
    deleted: bool = False
    reference: str | None = None
    allowed_mentions: Any = None
    arrived: float = 0.0  # time.monotonic() when it was posted or last edited
    files: list[SentFile] = field(default_factory=list)  # attached files, in order

    @property
    def custom_ids(self) -> list[str]:
        """Every button's custom id."""
        return [c["custom_id"] for row in self.components for c in row.get("components", []) if "custom_id" in c]

    @property
    def labels(self) -> list[str]:
        """Every button's label."""
        return [c.get("label", "") for row in self.components for c in row.get("components", [])]

    def custom_id(self, label: str) -> str:
        """The custom id of the button whose label starts with ``label``."""
        for row in self.components:
            for component in row.get("components", []):
                if component.get("label", "").startswith(label):
                    return component["custom_id"]
        raise AssertionError(f"no button starting with {label!r} in {self.labels}")


@dataclass
class Interaction:
    """An interaction the fake sent, and what the bot answered."""

    id: str
    token: str
    payload: dict
    callbacks: list[dict] = field(default_factory=list)  # interaction responses (type, data)
    original: str | None = None  # id of the original response message
    delivered: float | None = None  # time.monotonic() when the event was sent to the bot


@dataclass
class User:
    """A Discord user (a learner) and their member permissions in the fake server."""

    id: str
    name: str
    permissions: int = MEMBER_PERMISSIONS

    def payload(self) -> dict:
        return {"id": self.id, "username": self.name, "discriminator": "0", "global_name": self.name.title(),
                "avatar": None, "bot": False}  # fmt: skip


class FakeDiscord:
    """Discord's REST API and gateway, in one aiohttp server on 127.0.0.1."""

    def __init__(self, token: str = "fake-token", guild_id: str = GUILD_ID, channel_id: str = CHANNEL_ID, *,
                 channel_ids: Sequence[str] = (), record_calls: bool = True,
                 ack_seconds: float | None = None, shard_count: int = 1,
                 other_guilds: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.token = token
        self.application_id = BOT_ID
        self.bot = {"id": BOT_ID, "username": "tutorbot", "discriminator": "0", "global_name": None, "avatar": None,
                    "bot": True}  # fmt: skip
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.channel_ids = [channel_id, *(c for c in channel_ids if c != channel_id)]  # the server's text channels
        self.other_guilds = dict(other_guilds or {})  # more servers: guild id -> its one text channel
        self.shard_count = shard_count  # what GET /gateway/bot recommends
        self.record_calls = record_calls
        self.ack_seconds = ack_seconds
        self.calls: list[Call] = []
        self.counts: Counter[str] = Counter()  # calls per "METHOD route"
        self.refused: list[tuple[str, int, str]] = []  # ("METHOD path", status, message) of every error answered
        self.abandoned: Counter[str] = Counter()  # calls the client dropped before it had sent them whole
        self.delivered: dict[str, float] = {}  # MESSAGE_CREATE id -> time.monotonic() when sent to the bot
        self.messages: dict[str, FakeMessage] = {}
        self.interactions: dict[str, Interaction] = {}
        self.commands: dict[str, list[dict]] = {}  # "global" or a guild id -> registered commands
        self.identified = asyncio.Event()  # some connection has identified (cleared while a new one has not yet)
        self.identifications = 0
        self.shards_identified: list[list[int] | None] = []  # the ``shard`` of each IDENTIFY, in order
        self.closed_dms: set[str] = set()  # users whose DMs are closed to the bot: posting there gets a 403
        self.user_files: dict[str, UserFile] = {}  # attachment id -> a file users sent with a slash command
        self.downloads: list[str] = []  # ids of the user files the bot fetched, in order
        self._ids = itertools.count(1_190_000_000_000_000_000)
        self._sequence = itertools.count(1)
        self._sockets: dict[web.WebSocketResponse, tuple[int, int]] = {}  # identified connections: (shard, count)
        self._runner: web.AppRunner | None = None
        self._by_token: dict[str, list[FakeMessage]] = {}  # an interaction's messages, oldest first
        self._by_channel: dict[str, list[FakeMessage]] = {}  # messages posted in a channel (not interaction responses)
        self._changed: dict[str, asyncio.Event] = {}  # interaction token or channel id -> set on a change
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    # ------------------------------------------------------------ server

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application(client_max_size=64 * 1024 * 1024)  # messages with files, as Discord takes
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{aid}/{filename}", self._serve_attachment)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)  # the default 128 drops bursts of connects
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close the gateway and stop listening."""
        for task in list(self._tasks):
            task.cancel()
        for socket in list(self._sockets):
            if not socket.closed:
                await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @contextlib.contextmanager
    def pointed_at(self) -> Iterator[None]:
        """Point discord.py's REST and gateway at this fake for the block, then restore them."""
        base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        point_discord_at(self.base_url, self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway

    def new_id(self) -> str:
        """A fresh snowflake-like id."""
        return str(next(self._ids))

    # ------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self.identified.clear()  # until this connection identifies
        await socket.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
        async for frame in socket:
            message = json.loads(frame.data)
            if message["op"] == 1:
                self._later(self._acknowledge_heartbeat(socket))
            elif message["op"] == 2:
                if message["d"]["token"] != self.token:
                    await socket.close(code=4004, message=b"Authentication failed.")
                    break
                shard = message["d"].get("shard")
                self.shards_identified.append(shard)
                shard_id, count = shard or (0, 1)
                if not 0 <= shard_id < count:
                    await socket.close(code=4010, message=b"Invalid shard.")
                    break
                self.identifications += 1
                self._sockets[socket] = (shard_id, count)
                await self._send_ready(socket, shard_id, count)
                self.identified.set()
        self._sockets.pop(socket, None)
        if not self._sockets:
            self.identified.clear()
        return socket

    async def _acknowledge_heartbeat(self, socket: web.WebSocketResponse) -> None:
        # After a network's round trip, as Discord does: discord.py notes when it sent a heartbeat only once the
        # send returns, and an ACK read before that would count as the whole interval behind ("Can't keep up").
        await asyncio.sleep(HEARTBEAT_ACK_SECONDS)
        if not socket.closed:
            await socket.send_str(json.dumps({"op": 11}))

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_ready(self, socket: web.WebSocketResponse, shard_id: int, count: int) -> None:
        guilds = [g for g in [self.guild_id, *self.other_guilds] if shard_of(g, count) == shard_id]
        ready = {"v": 10, "user": self.bot, "guilds": [{"id": g, "unavailable": True} for g in guilds],
                 "session_id": f"session-{self.identifications}", "resume_gateway_url": self.gateway_url,
                 "application": {"id": self.application_id, "flags": 0}, "shard": [shard_id, count]}  # fmt: skip
        await self._send(socket, "READY", ready)
        for guild_id in guilds:
            await self._send(socket, "GUILD_CREATE", self.guild_payload(guild_id))

    async def _send(self, socket: web.WebSocketResponse, event: str, data: dict) -> None:
        await socket.send_str(json.dumps({"op": 0, "t": event, "s": next(self._sequence), "d": data}))

    def _receivers(self, guild_id: str | None) -> list[web.WebSocketResponse]:
        """The open connections Discord sends an event of ``guild_id`` to (a DM's, None, go to shard 0)."""
        return [socket for socket, (shard_id, count) in self._sockets.items()
                if not socket.closed and shard_id == (shard_of(guild_id, count) if guild_id else 0)]  # fmt: skip

    async def dispatch(self, event: str, data: dict) -> None:
        """Send a gateway event to the connections of its server's shard (waiting until one has identified)."""
        await asyncio.wait_for(self.identified.wait(), 10)
        receivers = await self.wait_for(lambda: self._receivers(data.get("guild_id")))
        now = time.monotonic()
        if event == "INTERACTION_CREATE":
            self.interactions[data["token"]].delivered = now
        elif event == "MESSAGE_CREATE":
            self.delivered[data["id"]] = now
        for socket in receivers:
            await self._send(socket, event, data)

    # ------------------------------------------------------------ payloads

    def guild_of(self, channel_id: str) -> str:
        """The server a text channel is in."""
        return next((g for g, c in self.other_guilds.items() if c == channel_id), self.guild_id)

    def guild_payload(self, guild_id: str | None = None) -> dict:
        """A server (the main one unless named): an @everyone role with member permissions, a moderator role, and
        its text channels."""
        guild_id = guild_id or self.guild_id
        channels = self.channel_ids if guild_id == self.guild_id else [self.other_guilds[guild_id]]
        return {
            "id": guild_id, "name": "Study Hall" if guild_id == self.guild_id else f"Study Hall {guild_id[-4:]}", "owner_id": "1180000000000000001", "icon": None, "splash": None,
            "discovery_splash": None, "features": [], "emojis": [], "stickers": [], "afk_timeout": 300,
            "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
            "mfa_level": 0, "nsfw_level": 0, "premium_tier": 0, "system_channel_flags": 0, "preferred_locale": "en-US",
            "roles": [
                {"id": guild_id, "name": "@everyone", "permissions": str(MEMBER_PERMISSIONS), "position": 0,
                 "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0},
                {"id": MODERATOR_ROLE_ID, "name": "Moderators", "permissions": str(MEMBER_PERMISSIONS | MANAGE_GUILD),
                 "position": 1, "color": 0, "hoist": False, "managed": False, "mentionable": True, "flags": 0},
            ],
            "channels": [self.channel_payload(c) for c in channels], "threads": [], "members": [],
            "voice_states": [], "presences": [],
            "member_count": 3, "large": False, "unavailable": False, "joined_at": "2024-01-01T00:00:00+00:00",
        }  # fmt: skip

    def channel_payload(self, channel_id: str | None = None) -> dict:
        channel_id = channel_id or self.channel_id
        position = self.channel_ids.index(channel_id) if channel_id in self.channel_ids else 0
        name = "lessons" if position == 0 else f"lessons-{position + 1}"
        return {"id": channel_id, "type": 0, "guild_id": self.guild_of(channel_id), "name": name,
                "position": position, "permission_overwrites": [], "nsfw": False, "parent_id": None,
                "topic": None}  # fmt: skip

    def member_payload(self, user: User) -> dict:
        roles = [MODERATOR_ROLE_ID] if user.permissions & MANAGE_GUILD else []
        return {"user": user.payload(), "roles": roles, "permissions": str(user.permissions),
                "joined_at": "2024-01-01T00:00:00+00:00", "deaf": False, "mute": False, "flags": 0}  # fmt: skip

    def interaction_payload(self, user: User, kind: int, data: dict, *, dm: bool = False,
                            message: FakeMessage | None = None, channel_id: str | None = None) -> dict:  # fmt: skip
        """An ``INTERACTION_CREATE`` payload (kind 2: slash command, 3: button) from ``user``, remembered by token
        (in the server's first channel unless ``channel_id`` names another)."""
        interaction_id = self.new_id()
        token = f"itoken-{interaction_id}"
        payload: dict = {
            "id": interaction_id, "application_id": self.application_id, "type": kind, "token": token,
            "version": 1, "data": data, "locale": "en-US", "app_permissions": str(MEMBER_PERMISSIONS),
            "entitlements": [], "attachment_size_limit": 8 * 1024 * 1024,
        }  # fmt: skip
        if dm:
            channel = {"id": self.dm_channel_id(user), "type": 1, "recipients": [user.payload()]}
            payload.update(user=user.payload(), channel=channel, channel_id=channel["id"], context=1,
                           authorizing_integration_owners={"0": self.guild_id})  # fmt: skip
        else:
            channel_id = channel_id or self.channel_id
            guild_id = self.guild_of(channel_id)
            payload.update(guild_id=guild_id, guild_locale="en-US", channel=self.channel_payload(channel_id),
                           channel_id=channel_id, member=self.member_payload(user), context=0,
                           authorizing_integration_owners={"0": guild_id})  # fmt: skip
        if message is not None:
            payload["message"] = self.message_payload(message)
        self.interactions[token] = Interaction(interaction_id, token, payload)
        return payload

    @staticmethod
    def dm_channel_id(user: User) -> str:
        """The id of the DM channel between ``user`` and the bot."""
        return str(int(user.id) + 10**12)

    def message_payload(self, message: FakeMessage) -> dict:
        """A message as Discord sends it (in REST responses and in an interaction's ``message``)."""
        author = self.bot if message.author_id == self.bot["id"] else {"id": message.author_id, "username": "someone",
                                                                      "discriminator": "0", "avatar": None}  # fmt: skip
        timestamp = "2024-01-01T00:00:00+00:00"
        return {
            "id": message.id, "channel_id": message.channel_id, "author": author, "content": message.content,
            "timestamp": timestamp, "edited_timestamp": timestamp if message.edits else None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "embeds": [],
            "attachments": [{"id": f"{message.id}{n}", "filename": file.filename, "size": len(file.data),
                             "url": f"{self.attachment_base}/{message.id}{n}/{file.filename}",
                             "proxy_url": f"{self.attachment_base}/{message.id}{n}/{file.filename}"}
                            for n, file in enumerate(message.files)],
            "pinned": False, "type": 0, "flags": EPHEMERAL if message.ephemeral else 0,
            "components": message.components, "application_id": self.application_id,
        }  # fmt: skip

    # ------------------------------------------------------------ what tests do

    @property
    def attachment_base(self) -> str:
        """Where the fake serves files (Discord's CDN)."""
        return f"http://127.0.0.1:{self.port}/attachments"

    def attachment(self, filename: str, data: bytes) -> UserFile:
        """A file a user is about to send with a slash command (pass it as an option's value)."""
        attachment_id = self.new_id()
        file = UserFile(attachment_id, filename, data, f"{self.attachment_base}/{attachment_id}/{filename}")
        self.user_files[attachment_id] = file
        return file

    def slash_payload(self, user: User, name: str, options: dict[str, Option] | None = None, *,
                      sub: str | None = None, dm: bool = False, channel_id: str | None = None) -> dict:  # fmt: skip
        """The payload of a slash command (``sub`` for a subcommand of a group). An option's value is a string,
        an integer, or a ``UserFile`` (an attachment, listed in ``resolved`` as Discord does)."""
        values = [_option(key, value) for key, value in (options or {}).items()]
        if sub is not None:
            values = [{"name": sub, "type": 1, "options": values}]
        registered = next((c for c in self.commands.get("global", []) if c["name"] == name), None)
        data = {"id": registered["id"] if registered else self.new_id(), "name": name, "type": 1, "options": values}
        files = [value for value in (options or {}).values() if isinstance(value, UserFile)]
        if files:
            data["resolved"] = {"attachments": {file.id: file.payload() for file in files}}
        return self.interaction_payload(user, 2, data, dm=dm, channel_id=channel_id)

    def message_event(self, user: User, content: str, *, dm: bool = False, mentions_bot: bool = False,
                      channel_id: str | None = None) -> dict:  # fmt: skip
        """The payload of a ``MESSAGE_CREATE`` from ``user`` (in a DM with the bot, or in the server channel)."""
        data: dict = {
            "id": self.new_id(), "author": user.payload(), "content": content,
            "timestamp": "2024-01-01T00:00:00+00:00", "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mention_roles": [], "attachments": [], "embeds": [], "pinned": False,
            "type": 0, "flags": 0, "components": [], "mentions": [self.bot] if mentions_bot else [],
        }  # fmt: skip
        if dm:
            data["channel_id"] = self.dm_channel_id(user)
        else:
            member = self.member_payload(user)
            del member["user"]
            channel_id = channel_id or self.channel_id
            data.update(channel_id=channel_id, guild_id=self.guild_of(channel_id), member=member)
        return data

    async def slash(self, user: User, name: str, options: dict[str, Option] | None = None, *, sub: str | None = None,
                    dm: bool = False, channel_id: str | None = None) -> Interaction:  # fmt: skip
        """A learner runs a slash command; returns the interaction."""
        payload = self.slash_payload(user, name, options, sub=sub, dm=dm, channel_id=channel_id)
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["token"]]

    async def press(self, user: User, message: FakeMessage, custom_id: str, *, dm: bool = False) -> Interaction:
        """A user presses the button ``custom_id`` of ``message``; returns the interaction."""
        assert custom_id in message.custom_ids, f"{custom_id!r} is not on the message ({message.custom_ids})"
        payload = self.interaction_payload(user, 3, {"custom_id": custom_id, "component_type": 2}, dm=dm,
                                           message=message, channel_id=None if dm else message.channel_id)  # fmt: skip
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["token"]]

    async def say(self, user: User, content: str, *, dm: bool = False, mentions_bot: bool = False,
                  channel_id: str | None = None) -> str:  # fmt: skip
        """A user posts a message; returns its id."""
        data = self.message_event(user, content, dm=dm, mentions_bot=mentions_bot, channel_id=channel_id)
        await self.dispatch("MESSAGE_CREATE", data)
        return data["id"]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``condition()`` is truthy; return its value."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = condition()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("timed out waiting for the bot")
            await asyncio.sleep(0.01)

    async def wait_on(self, key: str, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Like ``wait_for``, woken by changes to the messages of ``key`` (an interaction token or a channel id)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        changed = self._changed.setdefault(key, asyncio.Event())
        while True:
            changed.clear()  # cleared before looking: a change after the look sets it again
            value = condition()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting on {key}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def replies(self, interaction: Interaction) -> list[FakeMessage]:
        """The messages an interaction produced (its response, then follow-ups), as they look now."""
        return [m for m in self._by_token.get(interaction.token, []) if not m.deleted]

    async def settled(self, interaction: Interaction, count: int = 1, quiet: float = 0.05) -> list[FakeMessage]:
        """Wait for at least ``count`` finished messages, then for the bot to go quiet; return the messages."""
        await self.wait_for(lambda: len([m for m in self.replies(interaction) if not m.loading]) >= count)
        seen = -1
        while seen != len(self.calls):
            seen = len(self.calls)
            await asyncio.sleep(quiet)
        return self.replies(interaction)

    def channel_messages(self, channel_id: str) -> list[FakeMessage]:
        """Messages the bot posted in a channel (not interaction responses)."""
        return list(self._by_channel.get(channel_id, []))

    def calls_to(self, pattern: str, method: str | None = None) -> list[Call]:
        """Recorded calls whose path matches ``pattern`` (a regular expression)."""
        return [c for c in self.calls if re.search(pattern, c.path) and (method is None or c.method == method)]

    # ------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        try:
            body, files = await self._body(request)
        except ConnectionResetError:  # the client gave up on the call while sending it (a cancelled request)
            self.abandoned[f"{request.method} {path}"] += 1
            return web.Response(status=499)  # never read: the connection is gone
        request[FILES] = files  # for the handlers that make or edit messages
        if self.record_calls:
            self.calls.append(Call(request.method, path, dict(request.query), body, files))
        response = None
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if match and request.method == method:
                self.counts[f"{method} {pattern}"] += 1
                response = await handler(request, body, **match.groupdict())
                break
        if response is None:
            response = self._json({"message": "404: Not Found", "code": 0}, 404)
        if response.status >= 400:
            self.refused.append((f"{request.method} {path}", response.status, response.text or ""))
        return response

    def _routes(self) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("GET", r"/users/@me", self._me),
            ("GET", r"/oauth2/applications/@me", self._application),
            ("GET", r"/gateway(?:/bot)?", self._gateway_info),
            ("PUT", r"/applications/\d+/commands", self._sync),
            ("PUT", r"/applications/\d+/guilds/(?P<guild>\d+)/commands", self._sync),
            ("POST", r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", self._callback),
            ("PATCH", r"/webhooks/\d+/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)", self._edit_webhook),
            ("GET", r"/webhooks/\d+/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)", self._get_webhook),
            ("DELETE", r"/webhooks/\d+/(?P<token>[^/]+)/messages/(?P<mid>@original|\d+)", self._delete_webhook),
            ("POST", r"/webhooks/\d+/(?P<token>[^/]+)", self._followup),
            ("GET", r"/users/(?P<uid>\d+)", self._user),
            ("POST", r"/users/@me/channels", self._open_dm),
            ("POST", r"/channels/(?P<channel>\d+)/messages", self._post_channel),
            ("PATCH", r"/channels/(?P<channel>\d+)/messages/(?P<mid>\d+)", self._edit_channel),
            ("POST", r"/channels/(?P<channel>\d+)/typing", self._no_content),
        ]

    @staticmethod
    async def _body(request: web.Request) -> tuple[Any, list[SentFile]]:
        """The JSON body (a multipart request's ``payload_json``) and the files of a multipart request."""
        if request.content_type == "multipart/form-data":
            body, files = None, []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    body = json.loads(await part.text())  # type: ignore[union-attr]
                elif (part.name or "").startswith("files["):  # type: ignore[union-attr]
                    files.append(SentFile(part.filename or "", bytes(await part.read())))  # type: ignore[union-attr]
            return body, files
        text = await request.text()
        return (json.loads(text) if text else None), []

    @staticmethod
    def _json(data: Any, status: int = 200) -> web.Response:
        # Exactly "application/json": discord.py parses a body as JSON only then (no "; charset=…").
        return web.Response(status=status, body=json.dumps(data).encode(), headers={"Content-Type": JSON})

    async def _no_content(self, request: web.Request, body: Any, **_: str) -> web.Response:
        return web.Response(status=204)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    async def _me(self, request: web.Request, body: Any) -> web.Response:
        if not self._authorised(request):
            return self._json({"message": "401: Unauthorized", "code": 0}, 401)
        return self._json({**self.bot, "flags": 0, "verified": True, "mfa_enabled": False})

    async def _application(self, request: web.Request, body: Any) -> web.Response:
        if not self._authorised(request):
            return self._json({"message": "401: Unauthorized", "code": 0}, 401)
        owner = {"id": "1180000000000000001", "username": "host", "discriminator": "0", "avatar": None}
        return self._json({"id": self.application_id, "name": "tutorbot", "icon": None, "description": "",
                           "bot_public": False, "bot_require_code_grant": False, "owner": owner,
                           "verify_key": "0" * 64, "flags": 0, "team": None, "summary": ""})  # fmt: skip

    async def _gateway_info(self, request: web.Request, body: Any) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
        return self._json({"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": limit})

    async def _sync(self, request: web.Request, body: Any, guild: str | None = None) -> web.Response:
        registered = [{**command, "id": self.new_id(), "application_id": self.application_id, "version": "1",
                       "type": command.get("type", 1), **({"guild_id": guild} if guild else {})}
                      for command in body]  # fmt: skip
        self.commands[guild or "global"] = registered
        return self._json(registered)

    def _new_message(self, data: dict, channel_id: str, *, token: str | None = None, ephemeral: bool = False,
                     loading: bool = False, reference: str | None = None,
                     files: Sequence[SentFile] = ()) -> FakeMessage:  # fmt: skip
        content = data.get("content") or ""
        assert len(content) <= 2000, f"Discord refuses messages over 2000 characters ({len(content)})"
        assert content or files or loading, "Discord refuses an empty message"
        self._check_files(data, files)
        message = FakeMessage(self.new_id(), channel_id, content, data.get("components") or [], ephemeral,
                              self.bot["id"], token, loading, reference=reference,
                              allowed_mentions=data.get("allowed_mentions"), files=list(files))  # fmt: skip
        self._check_components(message.components)
        self.messages[message.id] = message
        if token is not None:
            self._by_token.setdefault(token, []).append(message)
        else:
            self._by_channel.setdefault(channel_id, []).append(message)
        self._touched(message)
        return message

    def _touched(self, message: FakeMessage) -> None:
        message.arrived = time.monotonic()
        changed = self._changed.get(message.interaction_token or message.channel_id)
        if changed is not None:
            changed.set()

    @staticmethod
    def _check_components(rows: list[dict]) -> None:
        assert len(rows) <= 5, "at most five rows of components"
        ids = [button["custom_id"] for row in rows for button in row["components"]]
        assert len(ids) == len(set(ids)), f"custom ids repeat in one message: {ids}"
        for row in rows:
            assert len(row["components"]) <= 5, "at most five buttons a row"
            for button in row["components"]:
                assert len(button["custom_id"]) <= 100, "custom_id is at most 100 characters"
                assert 1 <= len(button["label"]) <= 80, "a button label has 1-80 characters"

    @staticmethod
    def _check_files(data: dict, files: Sequence[SentFile]) -> None:
        """Discord's rules for files: at most ten to a message, each listed in ``attachments`` by its part's index."""
        assert len(files) <= 10, "at most ten files to a message"
        listed = {int(a["id"]) for a in data.get("attachments") or [] if str(a.get("id", "")).isdigit()}
        assert set(range(len(files))) <= listed, f"files not listed in attachments: {data.get('attachments')}"

    def _edit(self, message: FakeMessage, data: dict, files: Sequence[SentFile] = ()) -> None:
        if "attachments" in data:  # the message's files now: those kept (by id) and the new ones
            self._check_files(data, files)
            kept = {str(a["id"]) for a in data["attachments"] or []}
            message.files = [f for n, f in enumerate(message.files) if f"{message.id}{n}" in kept] + list(files)
        if "content" in data:
            content = data["content"] or ""
            assert len(content) <= 2000, f"Discord refuses messages over 2000 characters: {content!r}"
            message.content = content
        if "components" in data:
            self._check_components(data["components"] or [])
            message.components = data["components"] or []
        message.edits += 0 if message.loading else 1
        message.loading = False
        self._touched(message)

    async def _callback(self, request: web.Request, body: dict, iid: str, token: str) -> web.Response:
        interaction = self.interactions.get(token)
        late = (interaction is not None and self.ack_seconds is not None and interaction.delivered is not None
                and time.monotonic() - interaction.delivered > self.ack_seconds)  # fmt: skip
        if interaction is None or late:  # Discord forgets an interaction not answered within its 3 seconds
            return self._json({"message": "Unknown interaction", "code": 10062}, 404)
        if interaction.callbacks:
            return self._json({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
        interaction.callbacks.append(body)
        kind, data = body["type"], body.get("data") or {}
        ephemeral = bool(data.get("flags", 0) & EPHEMERAL)
        channel_id = interaction.payload["channel"]["id"]
        message = None
        if kind == 4:  # a message
            message = self._new_message(data, channel_id, token=token, ephemeral=ephemeral, files=request[FILES])
        elif kind == 5:  # deferred: "thinking…" until filled
            message = self._new_message({}, channel_id, token=token, ephemeral=ephemeral, loading=True)
        elif kind == 7:  # update the button's message
            self._edit(self.messages[interaction.payload["message"]["id"]], data, request[FILES])
        if message is not None:
            interaction.original = message.id
        reply: dict = {"interaction": {"id": iid, "type": interaction.payload["type"],
                                       "response_message_id": message.id if message else None,
                                       "response_message_loading": kind == 5,
                                       "response_message_ephemeral": ephemeral}}  # fmt: skip
        if message is not None:
            reply["resource"] = {"type": kind, "message": self.message_payload(message)}
        return self._json(reply)

    def _webhook_message(self, token: str, mid: str) -> FakeMessage | None:
        interaction = self.interactions[token]
        if mid == "@original":
            if interaction.original is None and interaction.payload["type"] == 3 and interaction.callbacks:
                return self.messages.get(interaction.payload["message"]["id"])  # a deferred button press
            return self.messages.get(interaction.original or "")
        message = self.messages.get(mid)
        return message if message and message.interaction_token == token else None

    async def _edit_webhook(self, request: web.Request, body: dict, token: str, mid: str) -> web.Response:
        message = self._webhook_message(token, mid)
        if message is None or message.deleted:
            return self._json({"message": "Unknown Message", "code": 10008}, 404)
        self._edit(message, body, request[FILES])
        return self._json(self.message_payload(message))

    async def _get_webhook(self, request: web.Request, body: Any, token: str, mid: str) -> web.Response:
        message = self._webhook_message(token, mid)
        if message is None or message.deleted:
            return self._json({"message": "Unknown Message", "code": 10008}, 404)
        return self._json(self.message_payload(message))

    async def _delete_webhook(self, request: web.Request, body: Any, token: str, mid: str) -> web.Response:
        message = self._webhook_message(token, mid)
        if message is None:
            return self._json({"message": "Unknown Message", "code": 10008}, 404)
        message.deleted = True
        return web.Response(status=204)

    async def _followup(self, request: web.Request, body: dict, token: str) -> web.Response:
        interaction = self.interactions[token]
        if not interaction.callbacks:
            return self._json({"message": "Unknown Webhook", "code": 10015}, 404)
        original = self.messages.get(interaction.original or "")
        if original is not None and original.loading:
            # Discord: the first follow-up after a deferred reply fills it in; its own flags are ignored.
            self._edit(original, {**body, "attachments": body.get("attachments") or []}, request[FILES])
            return self._json(self.message_payload(original))
        ephemeral = bool(body.get("flags", 0) & EPHEMERAL)
        message = self._new_message(body, interaction.payload["channel"]["id"], token=token, ephemeral=ephemeral,
                                    files=request[FILES])  # fmt: skip
        return self._json(self.message_payload(message))

    async def _user(self, request: web.Request, body: Any, uid: str) -> web.Response:
        return self._json(User(uid, f"learner{uid[-4:]}").payload())

    async def _open_dm(self, request: web.Request, body: dict) -> web.Response:
        user = User(str(body["recipient_id"]), "learner")
        return self._json({"id": self.dm_channel_id(user), "type": 1, "recipients": [user.payload()],
                           "last_message_id": None})  # fmt: skip

    async def _post_channel(self, request: web.Request, body: dict, channel: str) -> web.Response:
        if any(self.dm_channel_id(User(uid, "")) == channel for uid in self.closed_dms):
            return self._json({"message": "Cannot send messages to this user", "code": 50007}, 403)
        reference = (body.get("message_reference") or {}).get("message_id")
        message = self._new_message(body, channel, reference=str(reference) if reference else None,
                                    files=request[FILES])  # fmt: skip
        return self._json(self.message_payload(message))

    async def _edit_channel(self, request: web.Request, body: dict, channel: str, mid: str) -> web.Response:
        message = self.messages.get(mid)
        if message is None:
            return self._json({"message": "Unknown Message", "code": 10008}, 404)
        self._edit(message, body, request[FILES])
        return self._json(self.message_payload(message))

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        """Discord's CDN: the bytes of a file a user sent."""
        file = self.user_files.get(request.match_info["aid"])
        if file is None or file.filename != request.match_info["filename"]:
            return web.Response(status=404)
        self.downloads.append(file.id)
        return web.Response(body=file.data, content_type="application/octet-stream")


def _option(name: str, value: Option) -> dict:
    """A slash command option as Discord sends it: a string (type 3), an integer (4) or an attachment's id (11)."""
    if isinstance(value, UserFile):
        return {"name": name, "type": 11, "value": value.id}
    if isinstance(value, int):
        return {"name": name, "type": 4, "value": value}
    return {"name": name, "type": 3, "value": value}


def shard_of(guild_id: str, shard_count: int) -> int:
    """The shard Discord sends a server's events to."""
    return (int(guild_id) >> 22) % shard_count


def point_discord_at(base_url: str, gateway_url: str) -> None:
    """Point discord.py's REST and gateway at a fake (in this process; the fake may run in another)."""
    discord.http.Route.BASE = base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


@contextlib.asynccontextmanager
async def running_fake(**options: Any) -> AsyncIterator[FakeDiscord]:
    """A started fake Discord with discord.py pointed at it; stopped and restored afterwards."""
    fake = FakeDiscord(**options)
    await fake.start()
    try:
        with fake.pointed_at():
            yield fake
    finally:
        await fake.stop()
