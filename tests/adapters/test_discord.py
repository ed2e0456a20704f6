"""The Discord adapter end to end: the real discord.py client against a local fake Discord (REST and gateway).

Every test runs ``serve`` as ``tutorbot run discord`` would, over a real engine (the bundled track, a real
SQLite store, the grounded answerer with a scripted model); the fake sends gateway events the way Discord
does and records what the bot sent back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.adapters import AdapterError
from bot.adapters.discord import APOLOGY, NOT_YOURS, parse_custom_id, render_text, serve
from bot.adapters.discord import tutor as discord_adapter
from bot.config import DiscordSettings
from bot.core.answering import Answerer, AnswerSettings
from bot.core.engine import Engine
from bot.core.ports import Passage
from bot.core.prompts import PromptLibrary
from bot.core.quiz import option_label
from bot.core.reminders import ReminderScheduler
from bot.knowledge.reader import read_knowledge
from bot.store.progress import SqlProgressStore
from tests.adapters.discord_fake import (
    BOT_ID,
    CHANNEL_ID,
    EPHEMERAL,
    GUILD_ID,
    MANAGE_GUILD,
    MEMBER_PERMISSIONS,
    MODERATOR_ROLE_ID,
    FakeDiscord,
    FakeMessage,
    User,
    running_fake,
)
from tests.fakes import FixedRetriever, GatedModel, ScriptedModel
from tests.markup_checks import formatted_track

REPO = Path(__file__).resolve().parents[2]
TRACKS = {r.track.id: r.track for r in read_knowledge(REPO / "knowledge") if r.track}
TRACK = TRACKS["ai-foundations"]
LESSON = TRACK.lessons[0]
TEACHER = "In distillation the student is trained on the teacher's outputs."
PASSAGE = Passage("ai-foundations", "distillation", "teacher-and-student", "Teacher and student", "Model distillation",
                  TEACHER, 0.7, 0.7)  # fmt: skip
TOKEN = "MTIzNDU2Nzg5.SECRET-bot-token.do-not-log"
ADA, BOB = User("1180000000000000011", "ada"), User("1180000000000000012", "bob")
MOD = User("1180000000000000013", "mira", permissions=MEMBER_PERMISSIONS | MANAGE_GUILD)
COMMUNITY = f"discord:{GUILD_ID}"
CHATTY_LOGGERS = ("", "discord", "discord.http", "discord.gateway", "discord.client", "discord.webhook.async_")


def capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Capture DEBUG from every logger a token could leak through (even those another test pinned at WARNING)."""
    for name in CHATTY_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)


def build_engine(store: SqlProgressStore, model: ScriptedModel | None = None,
                 answering: AnswerSettings | None = None, passage: Passage = PASSAGE) -> Engine:  # fmt: skip
    answerer = Answerer(FixedRetriever([passage]), model or ScriptedModel(), PromptLibrary(REPO / "prompts"),
                        settings=answering or AnswerSettings())  # fmt: skip
    return Engine(TRACKS, store, answerer)


@contextlib.asynccontextmanager
async def bot(fake: FakeDiscord, engine: Engine, reminders: ReminderScheduler | None = None,
              **settings: object) -> AsyncIterator[asyncio.Task[None]]:  # fmt: skip
    """``serve`` running against the fake until the block ends; then stopped, and its outcome checked."""
    stop = asyncio.Event()
    options: dict = {"token": SecretStr(TOKEN), "edit_seconds": 0.05, **settings}
    connections = fake.identifications  # wait for this client's connection, not a previous one's
    task = asyncio.create_task(serve(engine, DiscordSettings(**options), stop, reminders=reminders))
    ready = asyncio.create_task(fake.wait_for(lambda: fake.identifications > connections))
    await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        task.result()  # raises what serve raised
    assert fake.identifications > connections, "the bot never identified on the gateway"
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def run(test: Callable[[FakeDiscord], Awaitable[None]]) -> None:
    """Run an async test body against a fresh fake Discord."""

    async def main() -> None:
        async with running_fake(token=TOKEN) as fake:
            await test(fake)

    asyncio.run(main())


def last_with(messages: list[FakeMessage], label: str) -> FakeMessage:
    """The last message with a button whose label starts with ``label``."""
    for message in reversed(messages):
        if any(text.startswith(label) for text in message.labels):
            return message
    raise AssertionError(f"no button {label!r} in {[m.labels for m in messages]}")


async def press(fake: FakeDiscord, user: User, messages: list[FakeMessage], label: str,
                count: int = 1) -> list[FakeMessage]:  # fmt: skip
    """Press the button ``label`` of the last message that has one; the messages that come back."""
    message = last_with(messages, label)
    interaction = await fake.press(user, message, message.custom_id(label))
    return await fake.settled(interaction, count)


# ---------------------------------------------------------------- questions


def test_ask_defers_then_streams_a_grounded_answer_into_one_message(tmp_path: Path) -> None:
    model = ScriptedModel(piece_size=4)
    answer = "It learns from the teacher's outputs, not from raw labels."
    model.enqueue_answer(["1"], explanation=answer)
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"), model)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine, edit_seconds=0.01):
            asked = await fake.slash(ADA, "ask", {"question": "what does the student learn from?"})
            [answer] = await fake.settled(asked)
        assert [callback["type"] for callback in asked.callbacks] == [5]  # deferred: "thinking…"
        assert not asked.callbacks[0].get("data", {}).get("flags", 0) & EPHEMERAL  # an answer is for the channel
        assert answer.content.startswith(f"“{TEACHER}”\nSource: Model distillation › Teacher and student")
        assert answer.content.endswith("It learns from the teacher's outputs, not from raw labels.")
        assert not answer.ephemeral and answer.edits >= 1  # filled by the first piece, then edited as it grew
        assert engine.answerer.retriever.calls[0][0] == "what does the student learn from?"  # no "ask" in it
        assert not fake.calls_to(r"/webhooks/\d+/[^/]+$", "POST")  # one message: no follow-ups

    run(body)


def test_a_question_the_lessons_do_not_support_gets_a_refusal(tmp_path: Path) -> None:
    model = ScriptedModel()
    model.enqueue_answer(["1"], yes=0.1)
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"), model)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            asked = await fake.slash(ADA, "ask", {"question": "is the student better than the teacher?"})
            [answer] = await fake.settled(asked)
        assert "I can't answer that from the lessons" in answer.content
        assert "The closest section is “Teacher and student” in Model distillation." in answer.content
        assert "Source:" not in answer.content and "Yes." not in answer.content

    run(body)


def test_a_3000_character_answer_arrives_as_two_clean_messages(tmp_path: Path) -> None:
    sentence = "The student keeps copying what the teacher writes " + "and learns from the teacher outputs " * 26
    long_unit = ", ".join([sentence.strip()] * 3) + "."  # one very long lesson sentence, quoted whole
    explanation = "It copies what the teacher writes."
    model = ScriptedModel(piece_size=200)
    model.enqueue_answer(["1"], explanation=explanation)
    passage = Passage(
        PASSAGE.track, PASSAGE.lesson, PASSAGE.section, PASSAGE.heading, PASSAGE.lesson_title, long_unit, 0.7, 0.7
    )
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"), model, AnswerSettings(), passage)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine, edit_seconds=0.01):
            asked = await fake.slash(ADA, "ask", {"question": "what does the student learn from?"})
            messages = await fake.settled(asked, 2)
        expected = render_text(f"“{long_unit}”\nSource: Model distillation › Teacher and student\n\n{explanation}")
        assert len(expected) > 3000 and len(messages) == 2
        assert all(len(m.content) <= 2000 for m in messages)
        assert " ".join(m.content for m in messages).split() == expected.split()  # cut between words, nothing lost
        assert messages[1].content.endswith(explanation)
        assert not any(m.ephemeral for m in messages)
        [follow_up] = fake.calls_to(r"/webhooks/\d+/[^/]+$", "POST")  # the first piece filled the deferred reply
        assert follow_up.body["content"] == messages[1].content and follow_up.query.get("wait") in {"1", "true"}

    run(body)


def test_questions_over_the_per_minute_limit_get_a_private_note(tmp_path: Path) -> None:
    model = ScriptedModel()
    model.enqueue_answer(["1"], explanation="From the teacher's outputs.")
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"), model)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine, questions_per_minute=1):
            first = await fake.slash(ADA, "ask", {"question": "what does the student learn from?"})
            await fake.settled(first)
            second = await fake.slash(ADA, "ask", {"question": "why is the student cheaper?"})
            [note] = await fake.settled(second)
            other = await fake.slash(BOB, "help")  # the limit is per learner, and only for questions
            await fake.settled(other)
        assert note.ephemeral and "asked one question in the last minute" in note.content
        assert len(model.questions) == 1

    run(body)


def test_stop_finishes_the_answer_in_flight_then_disconnects(tmp_path: Path) -> None:
    model = GatedModel()
    model.enqueue_answer(["1"], explanation="From the teacher's outputs.")
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"), model)

    async def body(fake: FakeDiscord) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(engine, DiscordSettings(token=SecretStr(TOKEN), edit_seconds=0.01), stop))
        await asyncio.wait_for(fake.identified.wait(), 10)
        asked = await fake.slash(ADA, "ask", {"question": "what does the student learn from?"})
        await fake.wait_for(lambda: asked.callbacks)
        stop.set()
        await asyncio.sleep(0.2)
        assert not task.done()  # waiting for the answer in flight
        model.gate.set()
        await asyncio.wait_for(task, 10)
        [answer] = fake.replies(asked)
        assert "From the teacher's outputs." in answer.content and not answer.loading

    run(body)


def test_turns_waiting_behind_the_learners_own_question_are_acknowledged_in_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discord_adapter, "NAVIGATION_ACK_SECONDS", 0.2)  # Discord's 3 s, scaled down
    model = GatedModel()
    model.enqueue_answer(["1"], explanation="From the teacher's outputs.")
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"), model)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            home = await fake.settled(await fake.slash(ADA, "learn"))
            asked = await fake.slash(ADA, "ask", {"question": "what does the student learn from?"})
            await fake.wait_for(lambda: asked.callbacks)
            again = await fake.slash(ADA, "ask", {"question": "and why is it cheaper?"})  # answered at once
            [one_at_a_time] = await fake.settled(again)
            menu = last_with(home, "Progress")
            progress = await fake.press(ADA, menu, menu.custom_id("Progress"))
            helped = await fake.slash(ADA, "help")
            await fake.wait_for(lambda: progress.callbacks and helped.callbacks)  # deferred while waiting
            assert not fake.replies(progress) and fake.replies(helped)[0].loading
            model.gate.set()
            [answer] = await fake.settled(asked)
            [progress_shown] = await fake.settled(progress)
            [help_shown] = await fake.settled(helped)
        assert one_at_a_time.ephemeral and "still answering your last question" in one_at_a_time.content
        assert [c["type"] for c in progress.callbacks] == [6]  # a button: acknowledged without a message
        assert [c["type"] for c in helped.callbacks] == [5] and helped.callbacks[0]["data"]["flags"] & EPHEMERAL
        assert "From the teacher's outputs." in answer.content and not answer.ephemeral
        assert "Your progress" in progress_shown.content and progress_shown.ephemeral
        assert "How to use tutorbot" in help_shown.content and help_shown.ephemeral
        assert len(model.questions) == 1

    run(body)


# ---------------------------------------------------------------- lessons, quizzes and buttons


def test_a_learner_reads_a_lesson_and_takes_its_quiz_with_buttons(tmp_path: Path) -> None:
    store = SqlProgressStore(tmp_path / "db.sqlite3")
    engine = build_engine(store)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            messages = await fake.settled(await fake.slash(ADA, "learn"))
            assert "Welcome to tutorbot, Ada!" in messages[0].content and not messages[0].ephemeral
            messages = await press(fake, ADA, messages, TRACK.title)
            messages = await press(fake, ADA, messages, f"1. {LESSON.title}")
            assert messages[0].content.startswith(f"**{render_text(LESSON.title)}**")
            messages = await press(fake, ADA, messages, "Start reading")
            for _ in range(len(LESSON.sections)):
                messages = await press(fake, ADA, messages, "Next")
            messages = await press(fake, ADA, messages, "Take the quiz")
            for n, question in enumerate(LESSON.quiz):
                question_message = messages[-1]
                assert question_message.ephemeral  # a quiz question concerns only its learner
                assert f"Question {n + 1} of {len(LESSON.quiz)}" in question_message.content
                chosen = question.correct_index if n else (question.correct_index + 1) % len(question.options)
                messages = await press(fake, ADA, messages, option_label(chosen), 2)
                feedback = messages[0]
                assert feedback.ephemeral and ("Right!" in feedback.content) == (n > 0)
        result = messages[-1]
        assert f"Quiz done: {len(LESSON.quiz) - 1}/{len(LESSON.quiz)}" in result.content
        assert [(r.lesson, r.score) for r in store.results(f"discord:{ADA.id}")] == [(LESSON.id, len(LESSON.quiz) - 1)]
        assert all(parse_custom_id(cid)[0] == int(ADA.id) for m in fake.messages.values() for cid in m.custom_ids)

    run(body)


def test_a_section_with_a_link_and_code_arrives_as_discord_markdown(tmp_path: Path) -> None:
    store = SqlProgressStore(tmp_path / "db.sqlite3")
    engine = Engine(formatted_track(tmp_path), store, None)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            messages = await fake.settled(await fake.slash(ADA, "lesson", {"name": "pumpkins"}))
            [section] = await press(fake, ADA, messages, "Start reading")
        assert section.content.startswith("**Preparing** · 1/2 · Pumpkins\n\n**Preparing the data**")
        assert (
            "Use [Pandas](<https://pandas.pydata.org/>) (the name stands for `Python Data Analysis`)" in section.content
        )
        assert "```python\nimport pandas as pd\nmonth = " in section.content
        assert "- A *list* item with [a link](<https://example.org/a_b?x=1&y=2>)" in section.content
        assert "\\<script\\>" in section.content  # HTML in the text is shown, escaped, never read

    run(body)


def test_another_member_cannot_press_a_learners_buttons(tmp_path: Path) -> None:
    store = SqlProgressStore(tmp_path / "db.sqlite3")
    engine = build_engine(store)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            await fake.settled(await fake.slash(ADA, "lesson", {"name": LESSON.id}))
            premise = last_with(list(fake.messages.values()), "Start reading")
            before = store.position(f"discord:{ADA.id}")
            pressed = await fake.press(BOB, premise, premise.custom_id("Start reading"))
            [note] = await fake.settled(pressed)
            assert note.ephemeral and note.content == NOT_YOURS
            assert store.position(f"discord:{ADA.id}") == before and store.position(f"discord:{BOB.id}").step == "home"
            own = await fake.press(ADA, premise, premise.custom_id("Start reading"))  # the owner still can
            [section] = await fake.settled(own)
        assert LESSON.sections[0].heading in section.content and store.position(f"discord:{ADA.id}").step == "section"

    run(body)


def test_buttons_from_before_a_restart_still_work(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, build_engine(SqlProgressStore(database))):
            home = await fake.settled(await fake.slash(ADA, "learn"))
            track = await press(fake, ADA, home, TRACK.title)
            premise = await press(fake, ADA, track, f"1. {LESSON.title}")
        async with bot(fake, build_engine(SqlProgressStore(database))):  # a new client, a new engine, same store
            section = await press(fake, ADA, premise, "Start reading")
            again = await press(fake, ADA, home, TRACK.title)
        assert fake.identifications == 2
        assert f"1/{len(LESSON.sections)}" in section[0].content and LESSON.sections[0].heading in section[0].content
        assert TRACK.description.split(":")[0] in again[0].content

    run(body)


# ---------------------------------------------------------------- moderators, commands, plain messages


def test_only_moderators_change_the_tracks_a_server_offers(tmp_path: Path) -> None:
    store = SqlProgressStore(tmp_path / "db.sqlite3")
    engine = build_engine(store)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            refused = await fake.slash(BOB, "tracks", {"track": TRACK.id}, sub="disable")
            [no] = await fake.settled(refused)
            assert no.ephemeral and "Only this community's moderators can disable tracks" in no.content
            assert store.disabled_tracks(COMMUNITY) == set()
            done = await fake.slash(MOD, "tracks", {"track": TRACK.id}, sub="disable")
            [yes] = await fake.settled(done)
            assert "is turned off here (changed by Mira)" in yes.content
            [empty] = await fake.settled(await fake.slash(ADA, "learn"))
            assert "No tracks are offered here yet" in empty.content
            listing = await fake.settled(await fake.slash(MOD, "tracks", sub="list"))
            assert "Turned off here" in listing[0].content
            turned_on = await press(fake, MOD, listing, f"Turn on {TRACK.title}")
            [dm_home] = await fake.settled(await fake.slash(BOB, "learn", dm=True))  # a DM offers every track
        assert "is now offered here (changed by Mira)" in turned_on[0].content
        assert store.disabled_tracks(COMMUNITY) == set()
        assert TRACK.title in dm_home.content and not dm_home.ephemeral
        [tracks] = [c for c in fake.commands["global"] if c["name"] == "tracks"]
        assert int(tracks["default_member_permissions"]) == MANAGE_GUILD and tracks["contexts"] == [0]
        assert {o["name"] for o in tracks["options"]} == {"list", "enable", "disable", "upload", "preview", "publish",
                                                          "history", "rollback"}  # fmt: skip

    run(body)


def test_commands_are_synced_with_descriptions_to_the_configured_servers(tmp_path: Path) -> None:
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"))

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine, guild_ids=[int(GUILD_ID)]):
            pass
        [sync] = fake.calls_to(rf"/applications/{BOT_ID}/guilds/{GUILD_ID}/commands", "PUT")
        names = {command["name"]: command for command in sync.body}
        wanted = {"learn", "lesson", "quiz", "ask", "progress", "help", "next", "back", "review", "reset", "tracks"}
        assert wanted <= set(names)
        assert all(command["description"] for command in sync.body)
        assert names["learn"]["contexts"] == [0, 1]  # servers and DMs with the bot
        assert not fake.calls_to(rf"/applications/{BOT_ID}/commands$", "PUT")

    run(body)


def test_plain_messages_in_dms_and_mentions_in_servers(tmp_path: Path) -> None:
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"))

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            await fake.say(ADA, "help", dm=True)
            dm = await fake.wait_for(lambda: fake.channel_messages(fake.dm_channel_id(ADA)))
            await fake.say(BOB, "progress")  # a server message that does not mention the bot
            mentioned = await fake.say(BOB, f"<@{BOT_ID}> progress", mentions_bot=True)
            [reply] = await fake.wait_for(lambda: fake.channel_messages(fake.channel_id))
            await asyncio.sleep(0.1)
        assert "How to use tutorbot" in dm[0].content and dm[0].reference is None
        assert "Your progress" in reply.content and reply.reference == mentioned
        assert len(fake.channel_messages(fake.channel_id)) == 1

    run(body)


def test_nothing_the_bot_sends_can_ping_anyone(tmp_path: Path) -> None:
    model = ScriptedModel()
    model.enqueue_answer(["1"], explanation="@everyone: it learns from the teacher's outputs.")
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"), model)
    everyone = User("1180000000000000014", "@everyone", permissions=MEMBER_PERMISSIONS | MANAGE_GUILD)

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            await fake.say(ADA, f"<@{BOT_ID}> @everyone <@&{MODERATOR_ROLE_ID}> what does the student learn?",
                           mentions_bot=True)  # fmt: skip
            [answer] = await fake.wait_for(lambda: fake.channel_messages(fake.channel_id))
            await fake.wait_for(lambda: "Source:" in answer.content)
            [changed] = await fake.settled(await fake.slash(everyone, "tracks", {"track": TRACK.id}, sub="disable"))
        assert "changed by @Everyone" in changed.content and "@everyone: it learns" in answer.content
        assert model.history and "<@&" in model.history[0][0][-1].content  # the learner's text reached the model as is
        sent = [c.body for c in fake.calls if isinstance(c.body, dict) and "content" in (c.body.get("data") or c.body)]
        assert sent
        for body_ in sent:
            message = body_.get("data") or body_
            assert message["allowed_mentions"]["parse"] == [] and not message["allowed_mentions"].get("roles")

    run(body)


# ---------------------------------------------------------------- failures


def test_failures_are_logged_with_context_apologised_for_and_never_show_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"))
    handle = engine.handle

    def exploding(incoming):  # noqa: ANN001, ANN202 - stands in for Engine.handle
        if incoming.text == "/progress" or incoming.action == "help":
            raise RuntimeError("the database is on fire")
        return handle(incoming)

    engine.handle = exploding  # type: ignore[method-assign]

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            [sorry] = await fake.settled(await fake.slash(ADA, "progress"))
            home = await fake.settled(await fake.slash(ADA, "learn"))  # still running
            [sorry_again] = await press(fake, ADA, home, "Help")
        assert sorry.ephemeral and sorry.content == APOLOGY and sorry_again.content == APOLOGY
        assert "Welcome to tutorbot" in home[0].content
        failures = [r for r in caplog.records if r.name == "bot.adapters.discord" and r.levelno == logging.ERROR]
        assert f"/progress (guild {GUILD_ID}, channel {CHANNEL_ID}, user {ADA.id})" in failures[0].getMessage()
        assert failures[0].exc_info
        assert f"button help (guild {GUILD_ID}, channel {CHANNEL_ID}, user {ADA.id})" in failures[1].getMessage()
        assert "the database is on fire" in caplog.text
        assert {"discord.http", "discord.gateway"} <= {r.name for r in caplog.records}  # REST and gateway were heard
        assert TOKEN not in caplog.text and TOKEN.split(".")[1] not in caplog.text

    run(body)


def test_an_invalid_token_raises_adapter_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    capture_everything(caplog)
    engine = build_engine(SqlProgressStore(tmp_path / "db.sqlite3"))
    wrong = "not-the-right-token"

    async def body(fake: FakeDiscord) -> None:
        with pytest.raises(AdapterError) as raised:
            await serve(engine, DiscordSettings(token=SecretStr(wrong)), asyncio.Event())
        assert str(raised.value) == "Discord rejected the bot token: check TUTORBOT_DISCORD__TOKEN"
        assert not fake.calls_to(r"commands")
        with pytest.raises(AdapterError, match="TUTORBOT_DISCORD__TOKEN"):
            await serve(engine, DiscordSettings(token=None), asyncio.Event())

    run(body)
    assert any(r.name == "discord.http" for r in caplog.records)
    assert wrong not in caplog.text and TOKEN not in caplog.text
