"""Limits: per-chat and overall send rates (sliding windows, 429 waited out and retried), the per-learner question
budget, and bounded memory of recent polls, button owners and admin checks."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)


class Window(NamedTuple):
    """At most ``sends`` sends in any ``seconds``."""

    sends: int
    seconds: float


@dataclass(frozen=True)
class SendLimits:
    """How fast the bot sends (sliding windows) and how many 429s one call waits out before giving up."""

    private: tuple[Window, ...] = (Window(3, 3.0),)  # about one message a second per chat, short bursts allowed
    group: tuple[Window, ...] = (Window(3, 3.0), Window(20, 60.0))  # and at most 20 a minute in a group
    overall: tuple[Window, ...] = (Window(30, 1.0),)  # across all chats
    retries: int = 3


THROTTLED = frozenset({"sendMessage", "sendPoll", "editMessageText", "editMessageReplyMarkup"})


def retry_seconds(error: RetryAfter) -> float:
    """How long Telegram asked to wait."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the int/timedelta migration warning of python-telegram-bot 22
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_group_id(chat_id: object) -> bool:
    """Whether a chat id is a group's or a channel's (negative, or an @username)."""
    try:
        return int(str(chat_id)) < 0
    except ValueError:
        return True


class SlidingWindows:
    """Times of recent sends per key; how long the next send must wait to fit every window."""

    def __init__(self) -> None:
        self._sent: dict[object, deque[float]] = {}

    def delay(self, key: object, windows: Sequence[Window], now: float) -> float:
        """Seconds until one more send under ``key`` fits ``windows`` (0 when it fits now)."""
        sent = self._sent.get(key)
        if not sent or not windows:
            return 0.0
        while sent and sent[0] <= now - max(w.seconds for w in windows):
            sent.popleft()
        if not sent:
            del self._sent[key]
            return 0.0
        wait = 0.0
        for count, seconds in windows:
            recent = [at for at in sent if at > now - seconds]
            if len(recent) >= count:
                wait = max(wait, recent[-count] + seconds - now)
        return wait

    def record(self, key: object, now: float) -> None:
        """Count a send under ``key``."""
        self._sent.setdefault(key, deque()).append(now)


class ChatRateLimiter(BaseRateLimiter[None]):
    """Spaces sends per chat and overall, and waits out a 429's ``retry_after`` before trying the call again."""

    def __init__(self, limits: SendLimits, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Any] = asyncio.sleep) -> None:  # fmt: skip
        self.limits = limits
        self.clock = clock
        self.sleep = sleep
        self._windows = SlidingWindows()
        self._paused: dict[object, float] = {}  # key -> until when Telegram asked us to wait

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(self, callback: Callable[..., Any], args: Any, kwargs: dict[str, Any], endpoint: str,
                              data: dict[str, Any], rate_limit_args: None) -> Any:  # fmt: skip
        """Make the call when it fits the limits; after a 429, wait as asked and make it again."""
        chat = data.get("chat_id") if endpoint in THROTTLED else None
        for attempt in itertools.count():
            await self.wait_turn(chat)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                if attempt >= self.limits.retries:
                    raise
                seconds = retry_seconds(error)
                log.warning("Telegram asked to slow down: %s to chat %s waits %.1f s", endpoint, chat, seconds)
                key = chat if chat is not None else "all"
                self._paused[key] = max(self._paused.get(key, 0.0), self.clock() + seconds)
        raise AssertionError("unreachable")  # pragma: no cover

    async def wait_turn(self, chat: object) -> None:
        """Wait until one more send to ``chat`` (None: a call not tied to a chat) fits every limit, and count it."""
        keys: list[tuple[object, Sequence[Window]]] = [("all", self.limits.overall)]
        if chat is not None:
            keys.append((chat, self.limits.group if is_group_id(chat) else self.limits.private))
        while True:
            now = self.clock()
            wait = max([self._paused.get(key, 0.0) - now for key, _ in keys]
                       + [self._windows.delay(key, windows, now) for key, windows in keys])  # fmt: skip
            if wait <= 0:
                for key, _ in keys:
                    self._windows.record(key, now)
                    self._paused.pop(key, None)
                return
            await self.sleep(wait)


class QuestionBudget:
    """At most ``per_minute`` model questions per learner in any 60 seconds."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = Window(per_minute, 60.0)
        self.clock = clock
        self._asked = SlidingWindows()

    def wait(self, learner: str) -> float:
        """0 (and the question is counted) when ``learner`` may ask now, else the seconds until they may."""
        now = self.clock()
        wait = self._asked.delay(learner, [self.window], now)
        if wait <= 0:
            self._asked.record(learner, now)
        return wait


def too_many_questions(per_minute: int, wait: float) -> str:
    """The polite answer to a learner over their question budget."""
    asked = "one question" if per_minute == 1 else f"{per_minute} questions"
    return (f"You've asked {asked} in the last minute, which is as many as I can take. "
            f"Please ask again in {math.ceil(wait)} seconds; lessons and quizzes work meanwhile.")  # fmt: skip


class Recent(OrderedDict):
    """A dict that forgets its oldest entries beyond ``size`` (poll tickets, button owners, admin checks)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __setitem__(self, key: object, value: object) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
