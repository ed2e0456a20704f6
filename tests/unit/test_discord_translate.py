"""The Discord adapter's pure translations, on sample payloads: turns in, messages out, ids and limits (its
Markdown is tested in ``test_discord_formatting``)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from types import SimpleNamespace

import discord
import pytest
from discord.state import ConnectionState

from bot.adapters import AdapterError
from bot.adapters.discord import (
    CUSTOM_ID_TEMPLATE,
    NO_MENTIONS,
    ChannelOutbox,
    Outgoing,
    TutorButton,
    _start_error,
    command_text,
    custom_id,
    deliver,
    interaction_incoming,
    layout,
    message_incoming,
    minimal_intents,
    parse_custom_id,
    render,
)
from bot.core.messages import Button, Reply, rows
from tests.adapters.discord_fake import (
    BOT_ID,
    CHANNEL_ID,
    GUILD_ID,
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    FakeDiscord,
    User,
)

ADA = User("1180000000000000011", "ada")
MOD = User("1180000000000000013", "mira", permissions=MEMBER_PERMISSIONS | MANAGE_GUILD)


@pytest.fixture
def fake() -> FakeDiscord:
    return FakeDiscord()


@pytest.fixture
def state(fake: FakeDiscord) -> ConnectionState:
    """A client's connection state that knows the bot and the fake server (as after READY and GUILD_CREATE)."""
    client = discord.Client(intents=minimal_intents())
    connection = client._connection
    connection.user = discord.ClientUser(state=connection, data=fake.bot)
    connection._add_guild_from_data(fake.guild_payload())
    return connection


def interaction(state: ConnectionState, payload: dict) -> discord.Interaction:
    return discord.Interaction(data=payload, state=state)


def message(state: ConnectionState, payload: dict) -> discord.Message:
    channel, _guild = state._get_guild_channel(payload)
    return discord.Message(state=state, channel=channel, data=payload)


# ---------------------------------------------------------------- turns in


def test_a_slash_command_in_a_server_is_a_turn_of_that_server(fake: FakeDiscord, state: ConnectionState) -> None:
    incoming = interaction_incoming(interaction(state, fake.slash_payload(ADA, "learn")), text="/start")
    assert (incoming.platform, incoming.user_id, incoming.conversation) == ("discord", ADA.id, GUILD_ID)
    assert incoming.text == "/start" and incoming.display_name == "Ada"
    assert not incoming.is_direct and not incoming.is_moderator


def test_manage_server_makes_a_moderator_but_only_in_a_server(fake: FakeDiscord, state: ConnectionState) -> None:
    in_server = interaction_incoming(interaction(state, fake.slash_payload(MOD, "tracks", sub="list")))
    in_dm = interaction_incoming(interaction(state, fake.slash_payload(MOD, "learn", dm=True)))
    assert in_server.is_moderator and not in_dm.is_moderator
    assert in_dm.is_direct and in_dm.conversation == fake.dm_channel_id(MOD)


def test_a_button_press_is_an_action(fake: FakeDiscord, state: ConnectionState) -> None:
    button = {"type": 2, "style": 2, "label": "Next ▸", "custom_id": custom_id(int(ADA.id), "n:3")}
    shown = fake._new_message({"content": "x", "components": [{"type": 1, "components": [button]}]}, CHANNEL_ID)
    payload = fake.interaction_payload(ADA, 3, {"custom_id": custom_id(int(ADA.id), "n:3"), "component_type": 2},
                                       message=shown)  # fmt: skip
    incoming = interaction_incoming(interaction(state, payload), action="n:3")
    assert incoming.action == "n:3" and incoming.text is None and incoming.conversation == GUILD_ID


def test_dms_and_server_messages_that_mention_the_bot_are_turns(fake: FakeDiscord, state: ConnectionState) -> None:
    bot_id = int(BOT_ID)
    dm = message_incoming(message(state, fake.message_event(ADA, "next", dm=True)), bot_id)
    assert dm is not None and dm.is_direct and dm.text == "next" and dm.conversation == fake.dm_channel_id(ADA)
    assert message_incoming(message(state, fake.message_event(ADA, "next")), bot_id) is None
    mentioned = message_incoming(message(state, fake.message_event(MOD, f"<@{BOT_ID}> lesson attention",
                                                                  mentions_bot=True)), bot_id)  # fmt: skip
    assert mentioned is not None and mentioned.text == "lesson attention" and mentioned.conversation == GUILD_ID
    assert mentioned.is_moderator and not mentioned.is_direct
    bare = message_incoming(message(state, fake.message_event(ADA, f"<@!{BOT_ID}>", mentions_bot=True)), bot_id)
    assert bare is not None and bare.text == "/start"


def test_messages_from_bots_are_ignored(fake: FakeDiscord, state: ConnectionState) -> None:
    payload = fake.message_event(ADA, "hello", dm=True)
    payload["author"]["bot"] = True
    assert message_incoming(message(state, payload), int(BOT_ID)) is None


def test_slash_commands_map_to_the_engines_text_commands() -> None:
    assert command_text("learn") == "/start" and command_text("learn", "ai-foundations") == "/track ai-foundations"
    assert command_text("lesson", "Attention as lookup") == "/lesson Attention as lookup"  # any length of argument
    assert command_text("tracks list") == "/tracks" and command_text("tracks disable", "x") == "/disable x"
    assert command_text("progress") == "/progress"


# ---------------------------------------------------------------- custom ids


def test_custom_ids_round_trip_within_100_characters() -> None:
    longest_action = "l:" + "a" * 46
    value = custom_id(2**64 - 1, longest_action)
    assert len(value) <= 100 and parse_custom_id(value) == (2**64 - 1, longest_action)
    assert re.fullmatch(TutorButton.__discord_ui_compiled_template__, value)
    assert CUSTOM_ID_TEMPLATE == TutorButton.__discord_ui_compiled_template__.pattern
    assert parse_custom_id("someone-elses:button") is None and parse_custom_id("tb:12:") is None


@pytest.mark.parametrize("action", ["", "x" * 49, "with space", "é"])
def test_actions_that_cannot_travel_are_refused(action: str) -> None:
    with pytest.raises(ValueError):
        custom_id(1, action)


# ---------------------------------------------------------------- replies out


def test_a_reply_becomes_messages_with_its_buttons_under_the_last() -> None:
    reply = Reply("a " * 1500, buttons=rows([Button("◂ Back", "b:4"), Button("Next ▸", "n:4")]))
    first, last = render(reply, owner=42)
    assert first.buttons == () and last.buttons and last.owner == 42
    assert first.kwargs() == {"content": first.content, "allowed_mentions": NO_MENTIONS}
    view = last.kwargs()["view"]
    assert [item.custom_id for item in view.children] == ["tb:42:b:4", "tb:42:n:4"]
    components = view.to_components()
    assert [[c["label"] for c in row["components"]] for row in components] == [["◂ Back", "Next ▸"]]
    assert NO_MENTIONS.to_dict()["parse"] == [] and not NO_MENTIONS.replied_user


def test_button_rows_are_kept_within_five_rows_of_five() -> None:
    many = [Button(str(n), f"l:{n}") for n in range(17)]
    assert [len(row) for row in layout(rows(many, 3))] == [5, 5, 5, 2]  # six rows of three: reflowed
    assert [len(row) for row in layout(rows(many[:4], 1))] == [1, 1, 1, 1]  # already fine: kept as laid out
    assert sum(len(row) for row in layout(rows([Button(str(n), f"x:{n}") for n in range(30)]))) == 25


def test_a_repeated_action_is_shown_once() -> None:
    [shown] = render(Reply("x", buttons=(
        (Button("Home", "home"), Button("Help", "help")), (Button("Home again", "home"),))), owner=1)  # fmt: skip
    assert shown.buttons == ((Button("Home", "home"), Button("Help", "help")),)


def test_a_quiz_card_is_shown_as_its_option_buttons() -> None:
    from bot.core.messages import QuizCard

    card = QuizCard("Why?", ("a", "b", "c"), 1, None, ("a:7:0", "a:7:1", "a:7:2"))
    reply = Reply("**Question 1 of 3**\n\nWhy?", buttons=rows([Button(x, a) for x, a in zip("ABC", card.actions, strict=False)]),
                  quiz=card, personal=True)  # fmt: skip
    [shown] = render(reply, owner=5)
    assert [b.action for row in shown.buttons for b in row] == list(card.actions)


@dataclass
class RecordingOutbox:
    """An outbox that records sends and edits with the time they happened."""

    clock: list[float]
    private_ok: bool = True
    log: list[tuple[str, float, str, bool]] = field(default_factory=list)

    async def send(self, message: Outgoing, private: bool):  # noqa: ANN201
        self.log.append(("send", self.clock[0], message.content, private))
        outbox = self

        class Sent:
            async def edit(self, edited: Outgoing) -> None:
                outbox.log.append(("edit", outbox.clock[0], edited.content, False))

        return Sent()


def test_a_growing_answer_is_edited_at_most_once_per_interval_and_ends_with_the_final_text() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def replies():  # noqa: ANN202
        for n, at in enumerate([0.0, 0.2, 0.5, 1.1, 1.3, 1.4]):
            now[0] = at
            yield Reply("word " * (n + 1), partial=True)
        yield Reply("the final answer", buttons=rows([Button("Back to the lesson ▸", "w")]))
        yield Reply("a note for you", personal=True)

    outbox = RecordingOutbox(now)
    asyncio.run(deliver(replies(), outbox, owner=1, edit_seconds=1.0, clock=lambda: now[0], sleep=sleep))
    assert [(kind, at) for kind, at, _text, _private in outbox.log] == [
        ("send", 0.0), ("edit", 1.1), ("edit", 2.1), ("send", 2.1)
    ]  # fmt: skip
    assert outbox.log[2][2] == "the final answer" and slept == [pytest.approx(0.7)]
    assert outbox.log[3][3] is True  # the personal reply is sent privately


def test_start_failures_say_what_to_do() -> None:
    assert str(_start_error(discord.LoginFailure("Improper token"))) == (
        "Discord rejected the bot token: check TUTORBOT_DISCORD__TOKEN"
    )
    assert isinstance(_start_error(OSError("no route")), AdapterError)
    assert "network" in str(_start_error(OSError("no route")))
    unexpected = ValueError("a bug")
    assert _start_error(unexpected) is unexpected


def test_the_adapter_imports_the_discord_library_not_itself() -> None:
    import bot.adapters.discord as adapter

    assert adapter.discord is discord and "site-packages" in (discord.__file__ or "")
    assert adapter.discord is not adapter and hasattr(adapter.discord, "Client")


def test_a_sent_messages_view_is_stopped_so_discord_py_lets_it_go() -> None:
    """discord.py keeps each view it sends (private ones 15 minutes, persistent ones for ever); presses are
    dispatched by the TutorButton pattern instead, so the view is stopped once the message is out."""
    sent_views: list[discord.ui.View] = []

    class Channel:
        async def send(self, **kwargs):  # noqa: ANN003, ANN202
            sent_views.append(kwargs["view"])
            return SimpleNamespace(edit=self.send)

    async def scenario() -> None:
        message = SimpleNamespace(guild=None, channel=Channel())
        outbox = ChannelOutbox(message)  # type: ignore[arg-type]
        sent = await outbox.send(Outgoing("Pick one", ((Button("Next ▸", "n:1"),),), owner=7), private=False)
        await sent.edit(Outgoing("Pick again", ((Button("Back", "b:1"),),), owner=7))

    asyncio.run(scenario())
    assert len(sent_views) == 2 and all(view.is_finished() for view in sent_views)
