"""Telegram learners for the load bench: each acts in its private chat through the fake Bot API.

A turn is pushed as an update (a typed message, a button press or a quiz poll answer); it is done when the
messages the turn must show have arrived in the chat. Its latency runs from the moment the fake handed the
update to the bot (in a ``getUpdates`` answer) to the arrival of the turn's last message, or the last edit of
a streamed answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.load_script import Turn, TurnFailed
from bot.core.quiz import option_label
from tests.adapters.telegram_fake import FakeBotApi, Shown, User

FIRST_USER_ID = 5_000_000


@dataclass
class TelegramSeat:
    """Where one learner talks to the bot: their user and private chat, and how many messages they have seen."""

    user: User
    seen: int = 0

    @property
    def chat_id(self) -> int:
        return self.user.id


class TelegramDriver:
    """Does learners' turns against a fake Bot API and times them."""

    platform = "telegram"

    def __init__(self, fake: FakeBotApi, timeout: float) -> None:
        self.fake = fake
        self.timeout = timeout
        self.presses = 0

    def seat(self, number: int) -> TelegramSeat:
        """The ``number``-th learner's user and chat."""
        return TelegramSeat(User(FIRST_USER_ID + number, f"Learner{number}"))

    async def do(self, seat: TelegramSeat, turn: Turn) -> float:
        """Do ``turn``; return its latency in seconds, or raise TurnFailed."""
        chat = self.fake.chats.get(seat.chat_id, {})
        if len(chat) != seat.seen:
            extra = [m.plain[:80] for m in list(chat.values())[seat.seen :]]
            raise TurnFailed(f"messages nobody asked for arrived before {turn.kind}: {extra}")
        update_id = self.fake.push(self._update(seat, turn))

        def arrived() -> list[Shown] | None:
            new = list(self.fake.chats.get(seat.chat_id, {}).values())[seat.seen :]
            if len(new) < turn.count:
                return None
            if turn.is_model_turn and not _finished(new[-1], turn):
                return None  # still streaming
            return new

        try:
            new = await self.fake.wait_in(seat.chat_id, arrived, self.timeout)
        except AssertionError:
            got = [m.plain[:80] for m in list(self.fake.chats.get(seat.chat_id, {}).values())[seat.seen :]]
            raise TurnFailed(f"{turn.kind}: no complete reply within {self.timeout:.0f} s; got {got}") from None
        seat.seen += len(new)
        if len(new) != turn.count or not _finished(new[-1], turn) or (turn.first and turn.first not in new[0].plain):
            raise TurnFailed(f"{turn.kind}: expected {turn.shows} (first: {turn.first}); got {[m.plain for m in new]}")
        return max(m.arrived for m in new) - self.fake.delivered[update_id]

    def _update(self, seat: TelegramSeat, turn: Turn) -> dict:
        if turn.typed is not None:
            return {"message": self.fake.new_message(seat.user, turn.typed)}
        if turn.option is not None:
            poll = self._newest(seat, lambda m: m.poll is not None)
            if poll is not None:
                assert poll.poll is not None
                return {"poll_answer": self.fake.new_poll_answer(seat.user, poll.poll["id"], turn.option)}
            label, exact = option_label(turn.option), True  # a question too long for a poll has buttons
        else:
            assert turn.press is not None
            label, exact = turn.press, turn.exact
        shown = self._newest(seat, lambda m: any(_labelled(text, label, exact) for text, _ in m.buttons))
        if shown is None:
            raise TurnFailed(f"{turn.kind}: no button {label!r} in the chat")
        data = next(data for text, data in shown.buttons if _labelled(text, label, exact))
        self.presses += 1
        return {"callback_query": self.fake.new_query(seat.user, shown, data)}

    def _newest(self, seat: TelegramSeat, wanted) -> Shown | None:  # noqa: ANN001 - a predicate on Shown
        return next((m for m in reversed(self.fake.chats.get(seat.chat_id, {}).values()) if wanted(m)), None)

    def unanswered(self) -> int:
        """Button presses the bot never answered (each must get an answerCallbackQuery)."""
        return self.presses - self.fake.counts["answerCallbackQuery"]


def _labelled(text: str, label: str, exact: bool) -> bool:
    return text == label if exact else text.startswith(label)


def _finished(message: Shown, turn: Turn) -> bool:
    if not turn.seen_in(message.plain):
        return False
    return turn.with_button is None or any(text == turn.with_button for text, _ in message.buttons)
