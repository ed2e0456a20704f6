"""How many questions one learner may put to the model: at most so many a minute, on every platform.

One rule, kept by the engine (``Engine.admit``); the adapters only show its note. Memory stays bounded: learners
are kept in the order of their latest question, and those with none in the last minute are forgotten from the
front, so no call ever scans every learner.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

WINDOW_SECONDS = 60.0


class QuestionLimit:
    """At most ``per_minute`` model questions per learner in any sixty seconds."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._asked: OrderedDict[str, deque[float]] = OrderedDict()  # by latest question, oldest first

    def wait(self, learner: str) -> float:
        """Seconds the learner must wait before asking again; 0 means go ahead (and the question is counted)."""
        now = self.clock()
        self._forget_idle(now)
        asked = self._asked.get(learner)
        if asked is None:
            asked = self._asked[learner] = deque()
        while asked and asked[0] <= now - WINDOW_SECONDS:
            asked.popleft()
        if len(asked) >= self.per_minute:
            return asked[0] + WINDOW_SECONDS - now
        asked.append(now)
        self._asked.move_to_end(learner)
        return 0.0

    def __len__(self) -> int:
        """How many learners are remembered (those who asked within the last minute, and the one asking)."""
        return len(self._asked)

    def _forget_idle(self, now: float) -> None:
        while self._asked:
            learner, asked = next(iter(self._asked.items()))
            if asked and asked[-1] > now - WINDOW_SECONDS:
                return
            del self._asked[learner]


def too_many_questions(per_minute: int, wait: float) -> str:
    """The polite note for a learner over the question limit."""
    asked = "one question" if per_minute == 1 else f"{per_minute} questions"
    return (f"You've asked {asked} in the last minute, which is as many as I can take. Please ask again in "
            f"{max(1, math.ceil(wait))} seconds; lessons and quizzes work meanwhile.")  # fmt: skip
