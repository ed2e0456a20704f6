"""The per-learner question limit: at most so many model questions a minute, and the note for a learner over it."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


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
