"""Property tests: text and button data as Telegram and Discord deliver them, however odd, always get a reply that
can be sent, and a forged or stale button never moves a learner.

Text: up to 50,000 characters, zero-width and bidi controls, lone surrogates (JSON can carry ``\\ud800``),
control characters, emoji, whitespace only. Buttons: random strings, known verbs with odd arguments, stale
versions, other learners' buttons. Each goes through the engine as the tests/engine_driver.py learner does, at
several places in a lesson, and through each adapter's pure translation functions.
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import discord
from discord.state import ConnectionState
from hypothesis import assume, event, given
from hypothesis import strategies as st
from telegram import Update

from bot.adapters.discord import command_text, custom_id, interaction_incoming, message_incoming, parse_custom_id
from bot.adapters.discord import render as discord_render
from bot.adapters.discord.translate import CUSTOM_ID_TEMPLATE
from bot.adapters.telegram.render import CALLBACK_PREFIX, message_kwargs, poll_kwargs
from bot.adapters.telegram.translate import (
    PollTicket,
    incoming_from_callback,
    incoming_from_message,
    incoming_from_poll_answer,
)
from bot.core.answering import Answerer
from bot.core.commands import short_hash
from bot.core.engine import Engine
from bot.core.lessons import Track
from bot.core.messages import MAX_ACTION_BYTES, Reply
from bot.core.prompts import PromptLibrary
from bot.knowledge.reader import read_knowledge, read_track
from bot.store.progress import SqlProgressStore
from tests.adapters.discord_fake import BOT_ID, FakeDiscord, User
from tests.engine_driver import Learner
from tests.fakes import FixedRetriever, MemoryLog, TirelessModel
from tests.strategies import (
    VERSIONED,
    display_names,
    file_bytes,
    forged_actions,
    fuzz_settings,
    has_lone_surrogate,
    messages,
    nearly_valid_lesson_text,
    numbers_as_text,
    odd_text,
)
from tests.unit.test_engine import AI, passage

REPO = Path(__file__).resolve().parents[2]
TRACKS = {r.track.id: r.track for r in read_knowledge(REPO / "knowledge") if r.track}
PROMPTS = PromptLibrary(REPO / "prompts")
LESSON_HASHES = {(short_hash(t.id), short_hash(lesson.id)) for t in TRACKS.values() for lesson in t.lessons}

# Where a learner may be when odd input arrives: (what they typed or pressed to get there).
SETUPS: dict[str, list[tuple[str, str]]] = {
    "new": [],
    "home": [("say", "start")],
    "lesson": [("say", "start"), ("press", AI.title), ("press", "1.")],
    "reading": [("say", "start"), ("press", AI.title), ("press", "1."), ("press", "Start reading"), ("say", "next")],
    "quiz": [("say", "start"), ("press", AI.title), ("press", "2."), ("say", "quiz")],
    "asked to reset": [("say", "start"), ("press", AI.title), ("press", "1."), ("say", "reset")],
    "asked for a timezone": [("say", "remind on")],
}
TEXT_TURNS = fuzz_settings(40, deadline=None)  # each example is a few engine turns on a fresh SQLite store


@dataclass
class Session:
    engine: Engine
    store: SqlProgressStore
    model: TirelessModel


@contextmanager
def session(tracks: dict[str, Track] = TRACKS) -> Iterator[Session]:
    """A fresh engine (on the bundled track), a SQLite store in a temporary folder, and a model that always answers."""
    with tempfile.TemporaryDirectory() as folder:
        store = SqlProgressStore(Path(folder) / "progress.sqlite3")
        model = TirelessModel()
        answerer = Answerer(FixedRetriever([passage()]), model, PROMPTS, MemoryLog())
        try:
            yield Session(Engine(tracks, store, answerer, clock=lambda: 1_800_000_000.0), store, model)
        finally:
            store.close()  # its checkpoint thread stops before the folder goes


def walk(learner: Learner, steps: list[tuple[str, str]]) -> list[str]:
    """Take ``steps`` (each reply sendable, whatever the learner's name); return every action shown on the way."""
    shown: list[str] = []
    for kind, value in steps:
        replies = learner.say(value) if kind == "say" else learner.press(value)
        assert_sendable(replies)
        shown += [
            action for reply in replies for action in reply.actions + list(reply.quiz.actions if reply.quiz else [])
        ]
    return shown


def assert_sendable(replies: list[Reply]) -> None:
    """A turn's replies: at least one, each with text, nothing a platform cannot encode, action ids that fit
    Telegram's callback data and Discord's custom ids, and each renders for both platforms."""
    assert replies and not replies[-1].partial
    for reply in replies:
        assert reply.text.strip(), reply
        texts = [reply.text, *(button.label for row in reply.buttons for button in row)]
        actions = list(reply.actions)
        if reply.quiz is not None:
            texts += [reply.quiz.question, *reply.quiz.options, reply.quiz.explanation or ""]
            actions += list(reply.quiz.actions)
        assert not any(has_lone_surrogate(text) for text in texts), reply
        for action in actions:
            assert re.fullmatch(r"[!-~]+", action) and len(action.encode()) <= MAX_ACTION_BYTES, action
        for message in message_kwargs(reply):
            message["text"].encode("utf-8")
        if reply.quiz is not None and reply.quiz.fits_poll:
            poll_kwargs(reply)["question"].encode("utf-8")
        for outgoing in discord_render(reply, owner=1):
            outgoing.content.encode("utf-8")


# ---------------------------------------------------------------- typed text


@TEXT_TURNS
@given(
    setup=st.sampled_from(sorted(SETUPS)),
    texts=st.lists(messages(), min_size=1, max_size=3),
    name=display_names(),
    direct=st.booleans(),
)
def test_any_typed_text_gets_a_reply_that_can_be_sent(setup: str, texts: list[str], name: str, direct: bool) -> None:
    with session() as here:
        ada = Learner(here.engine, display_name=name, is_direct=direct, is_moderator=not direct)
        walk(ada, SETUPS[setup])
        for text in texts:
            assert_sendable(ada.say(text))
        event("asked the model" if here.model.history else "no question reached the model")


@fuzz_settings(25, deadline=None)
@given(lesson=file_bytes(nearly_valid_lesson_text("lesson-1"), damaged=False), data=st.data())
def test_a_lesson_with_odd_text_can_be_read_and_its_quiz_taken_on_every_platform(lesson: bytes,
                                                                                 data: st.DataObject) -> None:  # fmt: skip
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name) / "demo"
        folder.mkdir()
        (folder / "track.toml").write_text('id = "demo"\ntitle = "Demo"\ndescription = "A demo."\n')
        (folder / "01-lesson.md").write_bytes(lesson)
        result = read_track(folder)
        assume(result.ok)
        assert result.track is not None
        track, [read] = result.track, result.track.lessons
        with session({"demo": track}) as here:
            ada = Learner(here.engine, display_name=data.draw(display_names()))
            assert_sendable(ada.act(f"l:{short_hash(track.id)}:{short_hash(read.id)}"))
            for term, _meaning in read.key_terms:
                assert_sendable(ada.say(f"term {term}"))
            for _ in range(len(read.sections) + 2):  # each section, the key terms and practice, the quiz
                assert_sendable(ada.say("next"))
            for question in read.quiz:
                card = ada.last[-1].quiz
                assert card is not None and card.question == question.prompt and card.options == question.options
                assert_sendable(ada.act(card.actions[data.draw(st.integers(0, len(question.options) - 1))]))
            event("with a quiz" if read.quiz else "without a quiz")
            assert here.store.position("test:ada").step == "result"


# ---------------------------------------------------------------- button actions


def number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def honest(action: str, version: int, options: int) -> bool:
    """Whether the engine may act on ``action`` now, as it would on a button it showed: versioned actions of the
    current version, an answer that is one of the question's ``options``, a real lesson's or section's button, or
    the reset button (it only asks). Buttons carry no owner: the adapters let only their learner press them."""
    verb, _, rest = action.partition(":")
    args = rest.split(":") if rest else []
    if (verb == "reset" and not args) or (verb in {"l", "s"} and tuple(args[:2]) in LESSON_HASHES):
        return True
    current = bool(args) and number(args[0]) == version
    if verb == "a":
        chosen = number(args[1]) if len(args) == 2 else None
        return current and chosen is not None and chosen < options
    return verb in VERSIONED and current


def stale_actions(version: int) -> st.SearchStrategy[str]:
    """Versioned actions of another version, and answers of the current one that choose no option."""
    other = st.integers(0, version + 5).filter(lambda v: v != version).map(str) | numbers_as_text()
    stale = st.builds(lambda verb, v, rest: f"{verb}:{v}{rest}", st.sampled_from(VERSIONED), other,
                      st.sampled_from(["", ":0", ":1", ":3", ":x"]))  # fmt: skip
    return stale | numbers_as_text().map(lambda n: f"a:{version}:{n}")


@fuzz_settings(40, deadline=None)
@given(setup=st.sampled_from(sorted(SETUPS)), bob_setup=st.sampled_from(sorted(SETUPS)), data=st.data())
def test_a_forged_or_stale_action_never_moves_the_learner(setup: str, bob_setup: str, data: st.DataObject) -> None:
    with session() as here:
        ada, bob = Learner(here.engine), Learner(here.engine, user_id="bob", conversation="dm-bob")
        walk(ada, SETUPS[setup])
        bobs = walk(bob, SETUPS[bob_setup] + [("say", "next"), ("say", "progress")])
        before = here.store.position("test:ada")
        lesson = AI.lesson(before.lesson or "")
        options = len(lesson.quiz[before.question].options) if lesson and before.step == "quiz" else 0
        action = data.draw(
            st.one_of(forged_actions(), stale_actions(before.version), st.sampled_from(bobs) if bobs else st.nothing())
        )
        assume(not honest(action, before.version, options))
        replies = ada.act(action)
        assert_sendable(replies)
        assert here.store.position("test:ada") == before


# ---------------------------------------------------------------- Telegram

BOT = ("tutor_test_bot", 7000001)
PRIVATE = {"id": 101, "type": "private"}
GROUP = {"id": -100500, "type": "supergroup", "title": "Study group"}


def telegram_update(payload: dict) -> Update:
    update = Update.de_json({"update_id": 1, **payload}, None)
    assert update is not None
    return update


@TEXT_TURNS
@given(text=messages(), name=display_names(), private=st.booleans(), mention=st.booleans(), reply=st.booleans())
def test_a_telegram_message_is_silence_or_a_turn_whose_reply_can_be_sent(text: str, name: str, private: bool,
                                                                         mention: bool, reply: bool) -> None:  # fmt: skip
    sender = {"id": 101, "is_bot": False, "first_name": name}
    said = f"@{BOT[0]} {text}" if mention else text
    message = {"message_id": 5, "date": 0, "chat": PRIVATE if private else GROUP, "from": sender, "text": said}
    if reply:
        bot = {"id": BOT[1], "is_bot": True, "first_name": "Tutor"}
        message["reply_to_message"] = {"message_id": 4, "date": 0, "chat": message["chat"], "from": bot, "text": "x"}
    incoming = incoming_from_message(telegram_update({"message": message}).message, *BOT)
    addressed = private or mention or reply or text.startswith("/")
    if not addressed:
        assert incoming is None
        return
    if incoming is None:  # only a command for another bot (/start@other_bot) is not for us
        first = (text.strip() if mention else text).split(maxsplit=1)[0]
        target = first[1:].partition("@")[2]
        assert first.startswith("/") and target and target.casefold() != BOT[0].casefold()
        return
    assert incoming.text is not None and (incoming.text == said or mention)
    with session() as here:
        assert_sendable(Learner(here.engine).run(incoming))


@fuzz_settings(40, deadline=None)
@given(data=st.one_of(forged_actions(), forged_actions().map(CALLBACK_PREFIX.__add__)), setup=st.sampled_from(
    sorted(SETUPS)))  # fmt: skip
def test_forged_telegram_callback_data_never_moves_the_learner(data: str, setup: str) -> None:
    chat_message = {"message_id": 9, "date": 0, "chat": PRIVATE, "text": "buttons"}
    sender = {"id": 101, "is_bot": False, "first_name": "Ada"}
    query = {"id": "q1", "from": sender, "chat_instance": "c", "data": data, "message": chat_message}
    incoming = incoming_from_callback(telegram_update({"callback_query": query}).callback_query)
    assert incoming is not None and incoming.action is not None and incoming.text is None
    with session() as here:
        ada = Learner(here.engine, user_id="101", platform="telegram", conversation="101")
        walk(ada, SETUPS[setup])
        before = here.store.position("telegram:101")
        lesson = AI.lesson(before.lesson or "")
        options = len(lesson.quiz[before.question].options) if lesson and before.step == "quiz" else 0
        assume(not honest(incoming.action, before.version, options))
        assert_sendable(ada.run(incoming))
        assert here.store.position("telegram:101") == before


@fuzz_settings(100)
@given(voter=st.sampled_from([101, 102]), options=st.lists(st.integers(-(2**63), 2**63), max_size=3))
def test_a_poll_answer_is_the_polls_owner_choosing_one_of_its_options_or_nothing(
    voter: int, options: list[int]
) -> None:
    ticket = PollTicket(101, 101, None, True, ("a:7:0", "a:7:1", "a:7:2"))
    answer = {
        "poll_id": "p1",
        "user": {"id": voter, "is_bot": False, "first_name": "Ada"},
        "option_ids": options,
        "option_persistent_ids": [str(option) for option in options],
    }
    incoming = incoming_from_poll_answer(telegram_update({"poll_answer": answer}).poll_answer, ticket)
    if voter == 101 and len(options) == 1 and 0 <= options[0] < 3:
        assert incoming is not None and incoming.action == ticket.actions[options[0]] and incoming.user_id == "101"
    else:
        assert incoming is None  # someone else's quiz, a retracted vote, several options, or no such option


# ---------------------------------------------------------------- Discord


@fuzz_settings(200)
@given(value=st.one_of(odd_text(max_size=120), forged_actions().map(lambda a: f"tb:1180000000000000011:{a}")))
def test_a_discord_custom_id_is_ours_exactly_when_it_round_trips(value: str) -> None:
    parsed = parse_custom_id(value)
    if parsed is None:
        assert re.fullmatch(CUSTOM_ID_TEMPLATE, value) is None
        return
    owner, action = parsed
    assert re.fullmatch(r"[!-~]{1,48}", action)
    assert custom_id(owner, action) == value or value.startswith("tb:0")  # a leading zero reads as the same owner


@functools.cache
def discord_state() -> tuple[FakeDiscord, ConnectionState]:
    """A client's view of the fake server (as after READY and GUILD_CREATE), built once: it parses payloads."""
    fake = FakeDiscord()
    state = discord.Client(intents=discord.Intents.none())._connection
    state.user = discord.ClientUser(state=state, data=fake.bot)
    state._add_guild_from_data(fake.guild_payload())
    return fake, state


@fuzz_settings(25, deadline=None)
@given(content=messages(), name=display_names(), dm=st.booleans(), argument=odd_text(max_size=200),
       command=st.sampled_from(["learn", "lesson", "ask", "term", "tz", "remind", "tracks enable", "quiz"]))  # fmt: skip
def test_discord_messages_and_slash_commands_get_a_reply_that_can_be_sent(content: str, name: str, dm: bool,
                                                                          argument: str, command: str) -> None:  # fmt: skip
    fake, state = discord_state()
    user = User("1180000000000000011", name or "x")
    payload = fake.message_event(user, f"<@{BOT_ID}> {content}", dm=dm, mentions_bot=True)
    channel, _guild = state._get_guild_channel(payload)
    incoming = message_incoming(discord.Message(state=state, channel=channel, data=payload), int(BOT_ID))
    assert incoming is not None and incoming.display_name == (name or "x").title()
    slash = interaction_incoming(discord.Interaction(data=fake.slash_payload(user, "learn", dm=dm), state=state),
                                 text=command_text(command, argument))  # fmt: skip
    with session() as here:
        ada = Learner(here.engine, user_id=user.id, platform="discord")
        assert_sendable(ada.run(incoming))
        assert_sendable(ada.run(slash))
