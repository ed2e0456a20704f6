"""The Telegram adapter's pure parts on sample payloads: updates to turns, replies to send arguments, limits (its
HTML is tested in ``test_telegram_formatting``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from telegram import Update
from telegram.ext import AIORateLimiter

from bot.adapters.telegram.limits import Recent, SendLimits
from bot.adapters.telegram.render import (
    CALLBACK_PREFIX,
    action_of,
    as_poll,
    callback_data,
    keyboard,
    message_kwargs,
    poll_kwargs,
    poll_question,
)
from bot.adapters.telegram.translate import (
    PollTicket,
    incoming_from_callback,
    incoming_from_message,
    incoming_from_poll_answer,
    update_summary,
)
from bot.adapters.telegram.tutor import LiveMessage, TelegramTutor, Turn
from bot.config import TelegramSettings
from bot.core.messages import Button, Incoming, QuizCard, Reply, rows

RETRY_AFTER_WARNING = pytest.mark.filterwarnings("ignore:.*retry_after.*:DeprecationWarning")
BOT = ("tutor_test_bot", 7000001)
ADA = {"id": 101, "is_bot": False, "first_name": "Ada"}
PRIVATE = {"id": 101, "type": "private"}
GROUP = {"id": -100500, "type": "supergroup", "title": "Study group"}


def message_update(text: str, chat: dict = PRIVATE, sender: dict = ADA, **extra: Any) -> Update:
    message = {"message_id": 5, "date": 0, "chat": chat, "from": sender, "text": text, **extra}
    update = Update.de_json({"update_id": 1, "message": message}, None)
    assert update is not None
    return update


def turn_of(text: str, chat: dict = PRIVATE, **extra: Any) -> Incoming | None:
    update = message_update(text, chat, **extra)
    assert update.message is not None
    return incoming_from_message(update.message, *BOT)


# ---------------------------------------------------------------- buttons and polls


def test_callback_data_round_trips_and_fits_64_bytes() -> None:
    action = "a:" + "9" * 46  # the engine's longest: 48 bytes
    data = callback_data(action)
    assert data.startswith(CALLBACK_PREFIX) and len(data.encode()) <= 64 and action_of(data) == action
    assert action_of("made-up") == "made-up"  # unknown data goes to the engine, which calls it stale
    with pytest.raises(ValueError):
        callback_data("é" * 31)  # 62 bytes of action


def test_buttons_become_an_inline_keyboard_row_by_row_and_an_oversized_one_is_left_out() -> None:
    markup = keyboard(rows([Button("◂ Back", "b:3"), Button("Next ▸", "n:3"), Button("Too long", "x" * 70)], 2))
    assert markup is not None
    assert [[(k.text, k.callback_data) for k in row] for row in markup.inline_keyboard] == [
        [("◂ Back", "tb:b:3"), ("Next ▸", "tb:n:3")]
    ]
    assert keyboard(()) is None


def test_a_long_reply_is_several_messages_with_the_keyboard_under_the_last() -> None:
    reply = Reply("word " * 2000, buttons=rows([Button("Next ▸", "n:1")]))
    sent = message_kwargs(reply)
    assert len(sent) == 3 and [kw["reply_markup"] is not None for kw in sent] == [False, False, True]
    assert all(kw["parse_mode"] == "HTML" and kw["link_preview_options"].is_disabled for kw in sent)


def quiz_reply(question: str = "What does the student learn from?", options: tuple[str, ...] = ("weights", "outputs"),
               explanation: str | None = "From the outputs.") -> Reply:  # fmt: skip
    actions = tuple(f"a:7:{i}" for i in range(len(options)))
    card = QuizCard(question, options, 1, explanation, actions)
    buttons = rows([Button(chr(65 + i), a) for i, a in enumerate(actions)])
    return Reply(f"**Question 2 of 10** · Model distillation\n\n{question}\n\nA) …", buttons=buttons, quiz=card)


def test_a_quiz_question_becomes_a_non_anonymous_quiz_poll_titled_with_its_number() -> None:
    kwargs = poll_kwargs(quiz_reply())
    assert kwargs == {"question": "Question 2 of 10 · Model distillation\nWhat does the student learn from?",
                      "options": ["weights", "outputs"], "type": "quiz", "is_anonymous": False,
                      "correct_option_ids": [1], "explanation": "From the outputs."}  # fmt: skip
    assert poll_question(quiz_reply("q" * 290)) == "q" * 290  # no room for the title


def test_a_question_that_does_not_fit_a_poll_stays_buttons() -> None:
    assert as_poll(quiz_reply())
    assert not as_poll(quiz_reply(options=tuple(f"option {n}" for n in range(11))))
    assert not as_poll(quiz_reply(explanation="x" * 201))
    assert not as_poll(quiz_reply(options=("o" * 101, "b")))
    assert not as_poll(Reply("plain"))
    assert message_kwargs(quiz_reply(explanation="x" * 201))[0]["reply_markup"] is not None


# ---------------------------------------------------------------- updates to turns


def test_a_private_message_is_a_direct_turn_of_its_sender() -> None:
    assert turn_of("what is distillation?") == Incoming("telegram", "101", "101", text="what is distillation?",
                                                        display_name="Ada", is_direct=True)  # fmt: skip
    assert turn_of("/start").text == "/start"  # type: ignore[union-attr]
    assert turn_of("/lesson").text == "/lesson"  # type: ignore[union-attr]  # the menu sends it bare: the engine lists lessons
    assert turn_of("/lesson attention").text == "/lesson attention"  # type: ignore[union-attr]


def test_in_a_group_only_what_is_addressed_to_the_bot_is_a_turn() -> None:
    assert turn_of("hello everyone", GROUP) is None
    assert turn_of("/start@some_other_bot", GROUP) is None
    incoming = turn_of("/next@Tutor_Test_Bot", GROUP)
    assert incoming is not None and incoming.text == "/next@Tutor_Test_Bot" and not incoming.is_direct
    assert incoming.conversation == "-100500" and incoming.community == "telegram:-100500"
    assert turn_of("/progress", GROUP).text == "/progress"  # type: ignore[union-attr]
    assert turn_of("@tutor_test_bot what is a teacher model?", GROUP).text == "what is a teacher model?"  # type: ignore[union-attr]
    assert turn_of("@tutor_test_bot", GROUP).text == "start"  # type: ignore[union-attr]
    assert turn_of("mail me at x@tutor_test_bot.org", GROUP) is None


def test_a_reply_to_the_bot_is_addressed_to_it_but_a_forum_topic_start_is_not() -> None:
    bot_message = {"message_id": 4, "date": 0, "chat": GROUP, "from": {"id": BOT[1], "is_bot": True, "first_name": "T"}}
    assert turn_of("and the student?", GROUP, reply_to_message=bot_message).text == "and the student?"  # type: ignore[union-attr]
    other = {**bot_message, "from": {"id": 9, "is_bot": False, "first_name": "Eve"}}
    assert turn_of("and the student?", GROUP, reply_to_message=other) is None
    in_topic = turn_of("chatter", GROUP, reply_to_message=bot_message, is_topic_message=True, message_thread_id=4)
    assert in_topic is None


def test_messages_from_bots_are_ignored() -> None:
    assert turn_of("/start", sender={"id": 55, "is_bot": True, "first_name": "Bot"}) is None


def test_a_button_press_is_an_action_turn_in_its_chat() -> None:
    query = {"id": "q1", "from": ADA, "chat_instance": "c", "data": "tb:n:4",
             "message": {"message_id": 9, "date": 0, "chat": GROUP, "text": "…"}}  # fmt: skip
    update = Update.de_json({"update_id": 2, "callback_query": query}, None)
    assert update is not None and update.callback_query is not None
    assert incoming_from_callback(update.callback_query) == Incoming("telegram", "101", "-100500", action="n:4",
                                                                     display_name="Ada", is_direct=False)  # fmt: skip
    assert update_summary(update) == ("callback_query", -100500)


def poll_answer(user: dict, options: list[int]) -> Update:
    answer = {"poll_id": "p1", "user": user, "option_ids": options, "option_persistent_ids": [str(o) for o in options]}
    update = Update.de_json({"update_id": 3, "poll_answer": answer}, None)
    assert update is not None and update.poll_answer is not None
    return update


def test_a_poll_answer_chooses_the_options_action_for_the_polls_owner_only() -> None:
    ticket = PollTicket(101, -100500, None, False, ("a:7:0", "a:7:1", "a:7:2"))
    chosen = incoming_from_poll_answer(poll_answer(ADA, [2]).poll_answer, ticket)  # type: ignore[arg-type]
    assert chosen == Incoming("telegram", "101", "-100500", action="a:7:2", display_name="Ada", is_direct=False)
    eve = {"id": 9, "is_bot": False, "first_name": "Eve"}
    assert incoming_from_poll_answer(poll_answer(eve, [1]).poll_answer, ticket) is None  # type: ignore[arg-type]
    assert incoming_from_poll_answer(poll_answer(ADA, []).poll_answer, ticket) is None  # type: ignore[arg-type]
    assert incoming_from_poll_answer(poll_answer(ADA, [7]).poll_answer, ticket) is None  # type: ignore[arg-type]
    assert update_summary(poll_answer(ADA, [1])) == ("poll_answer", 101)


def test_update_summary_never_needs_more_than_kind_and_chat() -> None:
    assert update_summary(message_update("hi")) == ("message", 101)
    assert update_summary(None) == ("non-update", None)


def test_the_first_message_of_a_group_turn_answers_the_learners_message_once() -> None:
    turn = Turn(-100500, 101, False, thread_id=3, reply_to=5)
    first = turn.placement()
    assert first["message_thread_id"] == 3 and first["reply_parameters"].message_id == 5
    assert turn.placement() == {"message_thread_id": 3}


# ---------------------------------------------------------------- limits


def test_recent_forgets_the_oldest_entries() -> None:
    recent = Recent(2)
    recent["a"], recent["b"], recent["c"] = 1, 2, 3
    assert list(recent) == ["b", "c"]


def test_send_limits_become_python_telegram_bots_rate_limiter() -> None:
    limiter = SendLimits(group_per_minute=20, retries=2).rate_limiter()
    assert isinstance(limiter, AIORateLimiter) and limiter._max_retries == 2
    assert limiter._group_max_rate == 20 and limiter._group_time_period == 60


# ---------------------------------------------------------------- a growing answer


class RecordingBot:
    """Records sends and edits; every message gets the next id."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []  # (method, text, has a keyboard)

    async def send_message(self, chat_id: int, text: str, reply_markup: Any = None, **kwargs: Any) -> Any:
        self.calls.append(("send", text, reply_markup is not None))
        return type("Sent", (), {"message_id": len(self.calls)})()

    async def edit_message_text(self, text: str, reply_markup: Any = None, **kwargs: Any) -> None:
        self.calls.append(("edit", text, reply_markup is not None))


class FakeTime:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now


def live_message(time: FakeTime) -> tuple[LiveMessage, RecordingBot]:
    bot = RecordingBot()
    tutor = TelegramTutor(None, TelegramSettings(), time.clock)  # type: ignore[arg-type]
    return LiveMessage(tutor, bot, Turn(101, 101, True), 1.0, time.clock), bot  # type: ignore[arg-type]


def test_a_growing_answer_is_one_message_edited_at_most_once_per_interval_ending_on_the_final_text() -> None:
    time = FakeTime()
    live, bot = live_message(time)

    async def grow() -> None:
        await live.show("“")  # nothing worth a message yet
        await live.show("“In")
        time.now += 0.5
        await live.show("“In distillation")  # too soon after the last change: skipped
        time.now += 0.6
        await live.show("“In distillation the")
        time.now += 1.5
        await live.show("“In distillation the")  # unchanged: no edit
        await live.finish(Reply("“In distillation the student.” **Source**", buttons=rows([Button("Back", "w")])))

    asyncio.run(grow())
    assert bot.calls == [("send", "“In", False), ("edit", "“In distillation the", False),
                         ("edit", "“In distillation the student.” <b>Source</b>", True)]  # fmt: skip


def test_an_answer_refused_before_anything_was_shown_is_sent_as_a_new_message() -> None:
    time = FakeTime()
    live, bot = live_message(time)

    async def refuse() -> None:
        await live.show("“")
        await live.finish(Reply("I can't answer that from the lessons."))

    asyncio.run(refuse())
    assert bot.calls == [("send", "I can't answer that from the lessons.", False)]
