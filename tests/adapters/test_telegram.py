"""The Telegram adapter end to end: the real python-telegram-bot Application against a local fake Bot API.

Each test starts the fake on 127.0.0.1, runs the real ``serve(...)`` over a real engine (the bundled track, a
SQLite store in tmp_path, a scripted model), acts as learners by injecting updates, and reads what the bot sent.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import ClientSession

from bot.adapters import AdapterError
from bot.adapters.telegram import TOKEN_REJECTED, serve
from bot.adapters.telegram.limits import SendLimits
from bot.adapters.telegram.tutor import APOLOGY, NOT_YOURS, OLD_POLL
from bot.config import TelegramSettings
from bot.core.answering import Answerer
from bot.core.engine import Engine
from bot.core.lessons import Track
from bot.core.messages import Incoming, Reply
from bot.core.ports import Passage
from bot.core.prompts import PromptLibrary
from bot.core.reminders import ReminderScheduler
from bot.knowledge.reader import read_knowledge
from bot.logs import SecretFilter
from bot.store.database import Database
from bot.store.inbox import Inbox
from bot.store.progress import SqlProgressStore
from tests.adapters.telegram_fake import BOT_USERNAME, SECRET_HEADER, TOKEN, Chat, FakeBotApi, Shown, User
from tests.fakes import FixedRetriever, ScriptedModel
from tests.helpers import front_matter, question, write_lesson
from tests.markup_checks import formatted_track

RETRY_AFTER_WARNING = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
REPO = Path(__file__).resolve().parents[2]
TRACKS = {r.track.id: r.track for r in read_knowledge(REPO / "knowledge") if r.track}
TEACHER = "In distillation the student is trained on the teacher's outputs."
PASSAGE = Passage("ai-foundations", "distillation", "teacher-and-student", "Teacher and student", "Model distillation",
                  TEACHER, 0.7, 0.7)  # fmt: skip
GROUNDED = {"units": ["1"], "yes": 0.9, "explanation": "It learns from the teacher's outputs, not its weights."}
MADE_UP = {"units": ["1"], "yes": 0.1}  # the judge finds the cited text does not answer: refused
FAST = SendLimits(overall_per_second=0, group_per_minute=0)  # tests that send many messages do not wait for the limits
ADA = User(101, "Ada")


@dataclass
class SlowModel(ScriptedModel):
    """A scripted model that writes at a human-visible pace, so an answer streams over several edits."""

    delay: float = 0.03

    async def _pieces(self, reply: str) -> AsyncIterator[str]:
        async for piece in super()._pieces(reply):
            await asyncio.sleep(self.delay)
            yield piece


class ExplodingEngine(Engine):
    """An engine that fails on the text 'explode' (to test the error handler)."""

    async def handle(self, incoming: Incoming) -> AsyncIterator[Reply]:
        if incoming.text == "explode":
            raise RuntimeError("the engine exploded")
        async for reply in super().handle(incoming):
            yield reply


@dataclass
class Running:
    """A bot being served against the fake."""

    fake: FakeBotApi
    engine: Engine
    store: SqlProgressStore
    model: ScriptedModel
    stop: asyncio.Event
    task: asyncio.Task

    async def press(self, user: User, label: str, chat: Chat | None = None, expect: int = 1) -> list[Shown]:
        """Press the newest button labelled ``label``; wait for ``expect`` new messages and return them."""
        shown, data = self.fake.last_with_button(chat.id if chat else user.id, label)
        return await self.tap(user, shown, data, expect)

    async def tap(self, user: User, shown: Shown, data: str, expect: int = 1) -> list[Shown]:
        """Press a button carrying ``data`` under ``shown``; wait for ``expect`` new messages and return them."""
        before = len(self.fake.shown(shown.chat_id))
        self.fake.press(user, shown, data)
        await self.fake.until(
            lambda: len(self.fake.shown(shown.chat_id)) >= before + expect, what=f"a reply to {data!r}"
        )
        return self.fake.shown(shown.chat_id)[before:]

    async def say(self, user: User, text: str, chat: Chat | None = None, expect: int = 1,
                  reply_to: Shown | None = None) -> list[Shown]:  # fmt: skip
        """Send ``text``; wait for ``expect`` new messages and return them."""
        chat_id = chat.id if chat else user.id
        before = len(self.fake.shown(chat_id))
        self.fake.say(user, text, chat, reply_to)
        await self.fake.until(
            lambda: len(self.fake.shown(chat_id)) >= before + expect, what=f"a reply to {text[:30]!r}"
        )
        return self.fake.shown(chat_id)[before:]

    async def answer_poll(self, user: User, option: int, chat_id: int | None = None, expect: int = 2) -> list[Shown]:
        """Answer the newest quiz poll with ``option``; wait for ``expect`` new messages and return them."""
        chat_id = chat_id or user.id
        poll = self.fake.last_poll(chat_id)
        before = len(self.fake.shown(chat_id))
        self.fake.answer_poll(user, poll.poll["id"], option)  # type: ignore[index]
        await self.fake.until(lambda: len(self.fake.shown(chat_id)) >= before + expect, what="a reply to a poll answer")
        return self.fake.shown(chat_id)[before:]


def build_engine(tmp_path: Path, model: ScriptedModel, tracks: dict[str, Track] | None = None,
                 engine_class: type[Engine] = Engine) -> tuple[Engine, SqlProgressStore]:  # fmt: skip
    store = SqlProgressStore(tmp_path / "progress.sqlite3")
    answerer = Answerer(FixedRetriever([PASSAGE]), model, PromptLibrary(REPO / "prompts"))
    return engine_class(tracks or TRACKS, store, answerer), store


@asynccontextmanager
async def running(tmp_path: Path, *, fake: FakeBotApi | None = None, model: ScriptedModel | None = None,
                  tracks: dict[str, Track] | None = None, engine_class: type[Engine] = Engine,
                  limits: SendLimits = FAST, reminders: ReminderScheduler | None = None,
                  **settings: object) -> AsyncIterator[Running]:  # fmt: skip
    """Start the fake (unless given) and serve a bot against it; on exit, stop the bot and check it ended well."""
    async with _fake(fake) as api:
        model = model or ScriptedModel()
        engine, store = build_engine(tmp_path, model, tracks, engine_class)
        config = TelegramSettings(token=TOKEN, base_url=api.base_url, edit_seconds=0.2, **settings)  # type: ignore[arg-type]
        stop = asyncio.Event()
        started = len(api.calls)
        if reminders is not None:
            reminders.comeback = engine.comeback
        shared = Database(tmp_path / "progress.sqlite3") if config.webhook_url else None  # the workers' inbox
        inbox = Inbox(shared) if shared is not None else None
        task = asyncio.create_task(serve(engine, config, stop, limits=limits, reminders=reminders, inbox=inbox))
        ready = "setWebhook" if config.webhook_url else "getUpdates"
        await api.until(
            lambda: task.done() or any(c.method == ready for c in api.calls[started:]), what="the bot to start"
        )
        if task.done():
            task.result()  # raises what went wrong
        try:
            yield Running(api, engine, store, model, stop, task)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            store.close()
            if shared is not None:
                shared.close()


@asynccontextmanager
async def _fake(fake: FakeBotApi | None) -> AsyncIterator[FakeBotApi]:
    if fake is not None:
        yield fake
        return
    async with FakeBotApi() as api:
        yield api


def sent_to(fake: FakeBotApi, method: str, chat_id: int) -> list:
    return [c for c in fake.calls_to(method) if c.params.get("chat_id") == chat_id]


# ---------------------------------------------------------------- a whole lesson


def test_a_learner_reads_a_lesson_and_takes_its_quiz_as_quiz_polls(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as bot:
            fake = bot.fake
            commands = [c["command"] for c in fake.calls_to("setMyCommands")[0].params["commands"]]
            assert {"start", "tracks", "lesson", "next", "quiz", "ask", "progress", "help"} <= set(commands)
            [home] = await bot.say(ADA, "/start")
            assert "Welcome to tutorbot, Ada!" in home.plain and home.text.startswith("<b>Welcome")
            await bot.press(ADA, "AI foundations")
            [premise] = await bot.press(ADA, "1. Model distillation")
            assert "Model distillation" in premise.plain and "Start reading" in premise.buttons[0][0]
            await bot.press(ADA, "Start reading")
            while not any(label.startswith("Take the quiz") for label, _ in fake.shown(ADA.id)[-1].buttons):
                await bot.press(ADA, "Next ▸")
            [poll] = await bot.press(ADA, "Take the quiz")
            for n in range(10):
                assert poll.poll is not None and poll.poll["type"] == "quiz" and not poll.poll["is_anonymous"]
                assert poll.poll["question"].startswith(f"Question {n + 1} of 10")
                correct = poll.poll["correct_option_ids"][0]
                chosen = correct if n % 2 == 0 else (correct + 1) % len(poll.poll["options"])
                feedback, poll = await bot.answer_poll(ADA, chosen)
                assert ("Right!" if chosen == correct else "Not quite.") in feedback.plain
            assert "Quiz done: 5/10" in poll.plain and "Keep going" in poll.buttons[0][0]
            [result] = bot.store.results(f"telegram:{ADA.id}")
            assert (result.lesson, result.score, result.total) == ("distillation", 5, 10)
            assert sorted(fake.answered_queries()) == sorted(fake.queries) and len(fake.queries) >= 8
            assert all(c.params["parse_mode"] == "HTML" for c in fake.calls_to("sendMessage"))
            polls = fake.calls_to("sendPoll")
            assert len(polls) == 10 and all(p.params["explanation"] for p in polls)

    asyncio.run(scenario())


def test_a_poll_answered_after_a_restart_gets_a_note_and_the_question_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with FakeBotApi() as fake:
            async with running(tmp_path, fake=fake) as bot:
                await bot.say(ADA, "lesson distillation")
                await bot.say(ADA, "quiz")
                old = fake.last_poll(ADA.id)
            async with running(tmp_path, fake=fake) as bot:
                fake.answer_poll(ADA, old.poll["id"], 0)  # type: ignore[index]
                note = await fake.message_containing(ADA.id, OLD_POLL)
                again = await fake.until(lambda: fake.last_poll(ADA.id) is not old and fake.last_poll(ADA.id))
                assert again.message_id > note.message_id and again.poll["question"].startswith("Question 1 of 10")
                assert bot.store.position(f"telegram:{ADA.id}").question == 0  # the old answer was not counted
                feedback, _next = await bot.answer_poll(ADA, again.poll["correct_option_ids"][0])
                assert "Right!" in feedback.plain

    asyncio.run(scenario())


# ---------------------------------------------------------------- model answers


def test_a_grounded_answer_grows_in_one_message_and_a_refusal_shows_nothing_before_it(tmp_path: Path) -> None:
    model = SlowModel()
    model.enqueue_answer(**GROUNDED)
    model.enqueue_answer(**MADE_UP)

    async def scenario() -> None:
        async with running(tmp_path, model=model) as bot:
            fake = bot.fake
            fake.say(ADA, "what does the student learn from?")
            answer = await fake.message_containing(ADA.id, "It learns from the teacher's outputs")
            assert len(fake.shown(ADA.id)) == 1  # one message, edited as the answer grew
            assert "“In distillation the student is trained on the teacher's outputs.”" in answer.plain
            assert "It learns from the teacher's outputs" in answer.plain
            assert "Source: Model distillation › Teacher and student" in answer.plain
            edits = [c for c in fake.calls_to("editMessageText") if c.params["message_id"] == answer.message_id]
            assert len(edits) >= 1  # the quotes were sent first, then the message grew by the explanation
            gaps = [later.at - earlier.at for earlier, later in zip(edits, edits[1:], strict=False)]
            assert min(gaps, default=1.0) >= 0.2 - 0.02  # edit_seconds
            [first_send] = fake.calls_to("sendMessage")
            texts = [first_send.params["text"], *answer.edits]
            assert all(a != b for a, b in zip(texts, texts[1:], strict=False))  # an unchanged text is never sent again
            typing = [c for c in fake.calls_to("sendChatAction") if c.params["action"] == "typing"]
            assert typing and typing[0].at <= first_send.at

            fake.say(ADA, "is the student always better?")
            refusal = await fake.message_containing(ADA.id, "can't answer that from the lessons")
            assert len(fake.shown(ADA.id)) == 2 and "Source:" not in refusal.plain and "always" not in refusal.plain
            draft = sent_to(fake, "sendMessage", ADA.id)[-1].params["text"]
            assert (
                draft.startswith("I can't answer") and not refusal.edits
            )  # nothing is shown before the judge passes it

    asyncio.run(scenario())


def test_stopping_lets_an_answer_in_flight_finish(tmp_path: Path) -> None:
    model = SlowModel(delay=0.05)
    model.enqueue_answer(**GROUNDED)

    async def scenario() -> None:
        async with running(tmp_path, model=model) as bot:
            bot.fake.say(ADA, "what does the student learn from?")
            await bot.fake.until(lambda: bot.fake.shown(ADA.id), what="the answer to start")
            bot.stop.set()
            await asyncio.wait_for(bot.task, 10)
            [answer] = bot.fake.shown(ADA.id)
            assert "Source: Model distillation" in answer.plain

    asyncio.run(scenario())


def test_questions_over_the_budget_are_refused_politely_without_the_model(tmp_path: Path) -> None:
    model = ScriptedModel()
    model.enqueue_answer(**GROUNDED)

    async def scenario() -> None:
        async with running(tmp_path, model=model, questions_per_minute=1) as bot:
            bot.fake.say(ADA, "what does the student learn from?")
            await bot.fake.message_containing(ADA.id, "Source:")
            await bot.fake.until(lambda: not bot.engine.is_asking(f"telegram:{ADA.id}"), what="the answer to end")
            [wait] = await bot.say(ADA, "and what about the teacher?")
            assert "Please ask again in" in wait.plain and "seconds" in wait.plain
            [help_] = await bot.say(ADA, "help")  # navigation is not counted
            assert "How to use tutorbot" in help_.plain
            assert len(model.questions) == 1

    asyncio.run(scenario())


def test_a_10000_character_question_is_capped_and_the_answer_says_so(tmp_path: Path) -> None:
    model = ScriptedModel()
    model.enqueue_answer(**GROUNDED)

    async def scenario() -> None:
        async with running(tmp_path, model=model) as bot:
            question = ("what does the student learn from in distillation? " * 200)[:10_000]
            bot.fake.say(ADA, question)
            answer = await bot.fake.message_containing(ADA.id, "(Your message was long")
            assert (
                "Source:" in answer.plain
                and "(Your message was long, so I read only its first 500 characters.)" in answer.plain
            )
            prompt = model.history[0][0][-1].content
            assert len(prompt) < 2000

    asyncio.run(scenario())


# ---------------------------------------------------------------- long replies, stale buttons, flood limits


def long_track(tmp_path: Path) -> dict[str, Track]:
    """A one-lesson track whose first section is longer than a Telegram message."""
    folder = tmp_path / "knowledge" / "long"
    folder.mkdir(parents=True)
    (folder / "track.toml").write_text('id = "long"\ntitle = "Long"\ndescription = "A long track."\n', encoding="utf-8")
    paragraphs = [f"Paragraph {n}: " + " ".join(["teacher <student> & data"] * 20) for n in range(1, 13)]
    body = "# Long lesson\n\n## A long section\n\n" + "\n\n".join(paragraphs) + "\n\n## Short\n\nThe end.\n"
    write_lesson(
        folder,
        "01-long.md",
        front_matter("long-lesson", title="Long lesson", quiz=[question(section="a-long-section")]),
        body,
    )
    results = read_knowledge(tmp_path / "knowledge")
    assert all(r.ok for r in results), [str(p) for r in results for p in r.problems]
    return {r.track.id: r.track for r in results if r.track}


def test_a_section_longer_than_a_message_is_split_on_paragraphs_with_the_buttons_last(tmp_path: Path) -> None:
    tracks = long_track(tmp_path)

    async def scenario() -> None:
        async with running(tmp_path, tracks=tracks) as bot:
            await bot.say(ADA, "lesson long-lesson")
            first, second = await bot.press(ADA, "Start reading", expect=2)
            await asyncio.sleep(0.2)
            assert len(bot.fake.shown(ADA.id)) == 3
            assert len(first.plain) <= 4096 and len(second.plain) <= 4096
            assert first.plain.startswith("A long section") and first.plain.endswith("& data")
            assert second.plain.startswith("Paragraph ") and second.plain.endswith("& data")
            assert "&lt;student&gt; &amp; data" in first.text  # escaped, and Telegram's parser accepted it
            assert first.buttons == [] and [label for label, _ in second.buttons] == ["◂ Back", "Next ▸"]
            assert first.plain.count("Paragraph") + second.plain.count("Paragraph") == 12

    asyncio.run(scenario())


def test_a_section_with_a_link_and_code_arrives_as_telegram_html(tmp_path: Path) -> None:
    tracks = formatted_track(tmp_path)

    async def scenario() -> None:
        async with running(tmp_path, tracks=tracks) as bot:
            await bot.say(ADA, "lesson pumpkins")
            [section] = await bot.press(ADA, "Start reading")
            assert section.params["parse_mode"] == "HTML"  # and the fake's parser, strict as Telegram's, took it
            assert section.text is not None and section.text.startswith("<b>Preparing</b> · 1/2 · Pumpkins")
            assert '<a href="https://pandas.pydata.org/">Pandas</a>' in section.text
            assert '<code>&lt;div class="x"&gt;</code>' in section.text
            assert '<pre><code class="language-python">import pandas as pd\nmonth = ' in section.text
            assert "Use Pandas (the name stands for Python Data Analysis)" in section.plain  # what Ada reads
            assert "Read the whole file, twice." in section.plain and "<b>file, <i>twice</i></b>" in section.text

    asyncio.run(scenario())


def test_markup_a_learner_types_is_shown_literally_and_never_breaks_the_message(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as bot:
            [reply] = await bot.say(ADA, "/lesson <b>bold</b> & **co")
            assert "There is no lesson “<b>bold</b> & **co” here" in reply.plain  # what Ada sees
            assert "&lt;b&gt;bold&lt;/b&gt; &amp; **co" in reply.text  # what was sent (accepted by the HTML parser)

    asyncio.run(scenario())


def test_a_stale_or_unknown_button_is_answered_and_explained(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path) as bot:
            fake = bot.fake
            [premise] = await bot.say(ADA, "lesson distillation")
            await bot.press(ADA, "Start reading")
            _shown, data = fake.last_with_button(ADA.id, "Start reading")
            note, now = await bot.tap(ADA, premise, data, expect=2)  # the premise's button again: Ada has moved on
            assert note.plain.startswith("That button is from an earlier message, so I didn't act on it.")
            assert "1/5" in now.plain  # where she is: the first section
            note, now = await bot.tap(ADA, premise, "garbage-from-elsewhere", expect=2)
            assert "earlier message" in note.plain and "1/5" in now.plain
            assert fake.answered_queries() == fake.queries == ["cq1", "cq2", "cq3"]  # stale and unknown ones too
            assert bot.store.position(f"telegram:{ADA.id}").step == "section"

    asyncio.run(scenario())


@RETRY_AFTER_WARNING  # python-telegram-bot warns about its own int/timedelta migration
def test_a_429_is_waited_out_and_the_message_still_arrives(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, limits=SendLimits()) as bot:
            bot.fake.fail_next("sendMessage", retry_after=1)
            bot.fake.say(ADA, "/help")
            shown = await bot.fake.message_containing(ADA.id, "How to use tutorbot", timeout=6)
            tries = sent_to(bot.fake, "sendMessage", ADA.id)
            assert len(tries) == 2 and tries[0].params["text"] == tries[1].params["text"] == shown.text
            assert len(bot.fake.shown(ADA.id)) == 1

    asyncio.run(scenario())


# ---------------------------------------------------------------- groups


def test_in_a_group_admins_choose_tracks_members_cannot_and_chatter_is_ignored(tmp_path: Path) -> None:
    group = Chat(-100500, "supergroup", "Study group")
    grace, linus = User(201, "Grace"), User(202, "Linus")

    async def scenario() -> None:
        async with running(tmp_path) as bot:
            fake = bot.fake
            fake.admins.add((group.id, grace.id))
            fake.say(linus, "hello everyone, who read the attention lesson?", group)
            fake.say(linus, "/start@some_other_bot", group)
            await asyncio.sleep(0.3)
            assert not fake.shown(group.id) and not fake.calls_to("getChatMember")

            [off] = await bot.say(grace, f"/disable@{BOT_USERNAME} ai-foundations", group)
            assert "“AI foundations” is turned off here (changed by Grace)" in off.plain
            [refused] = await bot.say(linus, "/enable ai-foundations", group)
            assert "Only this community's moderators can enable tracks" in refused.plain
            [on] = await bot.say(grace, f"@{BOT_USERNAME} enable ai-foundations", group)
            assert "is now offered here" in on.plain
            checks = [c.params["user_id"] for c in fake.calls_to("getChatMember")]
            assert checks.count(grace.id) == 1 and checks.count(linus.id) == 1  # remembered, not asked again
            assert bot.store.disabled_tracks(f"telegram:{group.id}") == set()

            [help_] = await bot.say(linus, "help", group, reply_to=on)  # a reply to the bot is addressed to it
            assert "How to use tutorbot" in help_.plain and "moderators: enable TRACK" in help_.plain
            shown, data = fake.last_with_button(group.id, "Tracks")
            assert shown.message_id == on.message_id
            query = fake.press(linus, shown, data)  # Grace's button
            await fake.until(lambda: query in fake.answered_queries(), what="the press to be answered")
            answered = next(c for c in fake.calls_to("answerCallbackQuery") if c.params["callback_query_id"] == query)
            assert answered.params["text"] == NOT_YOURS
            await asyncio.sleep(0.2)
            assert len(fake.shown(group.id)) == 4

    asyncio.run(scenario())


def test_in_a_group_the_first_reply_answers_the_learners_message(tmp_path: Path) -> None:
    group = Chat(-100600, "supergroup", "Study group")
    linus = User(202, "Linus")

    async def scenario() -> None:
        async with running(tmp_path) as bot:
            sent = bot.fake.say(linus, f"/start@{BOT_USERNAME}", group)
            [home] = await bot.fake.until(lambda: bot.fake.shown(group.id))
            assert home.params["reply_parameters"]["message_id"] == sent["message_id"]
            assert "Welcome to tutorbot, Linus!" in home.plain

    asyncio.run(scenario())


# ---------------------------------------------------------------- failures and secrets


def test_a_failing_update_gets_an_apology_the_bot_keeps_running_and_the_token_is_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # Earlier tests (or a host's set-up) may have quieted these; this test listens to everything they say.
    for name in ("httpx", "httpcore", "telegram", "telegram.Bot", "telegram.ext", "telegram.ext.ExtBot",
                 "telegram.request", "telegram.ext.Updater", "telegram.ext.Application"):  # fmt: skip
        caplog.set_level(logging.DEBUG, logger=name)
    unfiltered: list[tuple[str, str]] = []  # (logger, text) before any filter touched the record

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            unfiltered.append((record.name, _formatted(record)))

    keeper = Keep(logging.DEBUG)
    root = logging.getLogger()
    root.handlers.insert(0, keeper)
    caplog.handler.addFilter(SecretFilter([TOKEN]))  # the filter bot.logs.setup_logging puts on every handler

    async def scenario() -> None:
        async with running(tmp_path, engine_class=ExplodingEngine) as bot:
            [apology] = await bot.say(ADA, "explode")
            assert apology.plain == APOLOGY
            [help_] = await bot.say(ADA, "help")
            assert "How to use tutorbot" in help_.plain
        engine, store = build_engine(tmp_path, ScriptedModel())
        async with FakeBotApi(token="7000001:another-token") as fake:  # our token is rejected: PTB's error quotes it
            with pytest.raises(AdapterError):
                await serve(engine, TelegramSettings(token=TOKEN, base_url=fake.base_url), asyncio.Event())
        store.close()

    try:
        asyncio.run(scenario())
    finally:
        root.removeHandler(keeper)
    failure = [r for r in caplog.records if r.levelno == logging.ERROR and "failed" in r.getMessage()]
    assert failure and "handling a message update in chat 101 failed" in failure[0].getMessage()
    assert "the engine exploded" in caplog.text  # the traceback is logged
    assert TOKEN not in caplog.text
    assert caplog.text.count("DEBUG") > 20  # everything was captured, down to DEBUG
    # Even before any handler's filter (a host's own logging set-up), no record carries the token.
    assert len(unfiltered) > 100 and any("[secret]" in text for _name, text in unfiltered)
    assert not [text for _name, text in unfiltered if TOKEN in text]


def _formatted(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info:
        text += "".join(traceback.format_exception(*record.exc_info))
    return text


def test_an_invalid_token_is_a_clear_adapter_error_that_does_not_quote_the_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine, store = build_engine(tmp_path, ScriptedModel())
        async with FakeBotApi(token="7000001:the-real-one") as fake:
            settings = TelegramSettings(token=TOKEN, base_url=fake.base_url)
            with pytest.raises(AdapterError) as raised:
                await serve(engine, settings, asyncio.Event())
            assert str(raised.value) == TOKEN_REJECTED
            assert TOKEN not in "".join(traceback.format_exception(raised.value))
            assert raised.value.__cause__ is None and raised.value.__context__ is None
        with pytest.raises(AdapterError, match="TUTORBOT_TELEGRAM__TOKEN"):
            await serve(engine, TelegramSettings(), asyncio.Event())
        closed = free_port()
        with pytest.raises(AdapterError, match="Could not reach the Telegram Bot API"):
            await serve(engine, TelegramSettings(token=TOKEN, base_url=f"http://127.0.0.1:{closed}"), asyncio.Event())
        store.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- webhook mode


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_webhook_mode_registers_the_webhook_and_takes_updates_with_the_secret(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram-hook"

    async def scenario() -> None:
        async with running(tmp_path, webhook_url=url, webhook_port=port, webhook_secret="hook-secret_42") as bot:
            fake = bot.fake
            [registered] = fake.calls_to("setWebhook")
            assert registered.params["url"] == url and registered.params["secret_token"] == "hook-secret_42"
            assert set(registered.params["allowed_updates"]) == {"message", "callback_query", "poll_answer"}
            [help_] = await bot.say(ADA, "help")  # the fake posts it to the webhook, with the secret header
            assert "How to use tutorbot" in help_.plain and fake.webhook_replies == [200]
            async with ClientSession() as client:
                update = {"update_id": 999, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                                        "from": {"id": 5, "is_bot": False, "first_name": "Eve"},
                                                        "text": "/start"}}  # fmt: skip
                for headers in ({}, {SECRET_HEADER: "wrong"}):
                    async with client.post(url, json=update, headers=headers) as response:
                        assert response.status == 403
            await asyncio.sleep(0.2)
            assert not fake.shown(5) and not fake.calls_to("getUpdates")

    asyncio.run(scenario())
