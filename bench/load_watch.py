"""What the load bench watches inside the bot: log records at WARNING and above, live objects by type, the sizes
of the structures known to grow, and (with tracemalloc) the source lines whose allocations grew."""

from __future__ import annotations

import gc
import logging
import tracemalloc
from collections import Counter

from telegram.ext import AIORateLimiter, Application

from bot.adapters.telegram.limits import Recent
from bot.core.engine import Engine
from bot.core.limits import QuestionLimit
from tests.fakes import EndlessModel


class LogTally(logging.Handler):
    """Counts records at WARNING and above and keeps the first few, formatted with their tracebacks."""

    def __init__(self, keep: int = 20) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: list[str] = []
        self.keep = keep
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < self.keep:
            self.first.append(self.format(record)[:2000])


def census() -> Counter[str]:
    """How many live objects of each type the garbage collector tracks (those frozen at start-up aside): garbage
    in reference cycles is collected first, so what is counted is what something still holds."""
    gc.collect()
    return Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())


def census_growth(before: Counter[str], after: Counter[str], top: int = 12) -> list[str]:
    """The types whose live objects grew most in number between two censuses."""
    grown = sorted(((after[name] - before[name], name) for name in after), reverse=True)[:top]
    return [f"{name}: {before[name]} -> {after[name]} (+{delta})" for delta, name in grown if delta > 0]


def known_structures(engine: Engine) -> dict[str, int]:
    """Sizes of the structures known to grow with learners or time (found among the live objects): the question
    limits, Telegram's group rate limiters and update queue, its capped maps, the answers' read-ahead prompts."""
    sizes: Counter[str] = Counter()
    model = engine.answerer.model if engine.answerer else None
    if isinstance(model, EndlessModel):  # built before gc.freeze(), so not among the objects found below
        sizes["distinct prompts read ahead (what a llama model's _warmed keeps)"] = len(model.warmed_prompts)
    for found in gc.get_objects():
        if isinstance(found, QuestionLimit):
            sizes["QuestionLimit learners (asked in the last minute)"] += len(found)
        elif isinstance(found, AIORateLimiter):
            sizes["AIORateLimiter group limiters"] += len(found._group_limiters)
        elif isinstance(found, Application):
            sizes["Telegram update_queue"] += found.update_queue.qsize()
        elif isinstance(found, Recent):
            sizes["Telegram Recent (polls, owners, admins)"] += len(found)
    return dict(sizes)


def memory_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, top: int = 12) -> list[str]:
    """The source lines whose live allocations grew most between two snapshots."""
    stats = after.compare_to(before, "lineno")
    return [str(stat) for stat in sorted(stats, key=lambda s: s.size_diff, reverse=True)[:top] if stat.size_diff > 0]
