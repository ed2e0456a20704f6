"""Telegram's limits: how fast the bot sends, and bounded memory of recent polls, button owners and admin checks.

Sending rates are python-telegram-bot's own ``AIORateLimiter``: at most 30 calls a second overall and 20 messages
a minute to one group, and a 429's ``retry_after`` is waited out (pausing every call, as Telegram expects) before
the call is made again. Per-learner question limits are the engine's (``bot.core.limits``), for every platform.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from telegram.ext import AIORateLimiter


@dataclass(frozen=True)
class SendLimits:
    """How fast the bot sends, and how many 429s one call waits out before giving up (0 rates: no limit)."""

    overall_per_second: float = 30.0  # Telegram's broadcast limit, across all chats
    group_per_minute: float = 20.0  # Telegram's limit for one group
    retries: int = 3

    def rate_limiter(self) -> AIORateLimiter:
        """python-telegram-bot's rate limiter set to these limits."""
        return AIORateLimiter(overall_max_rate=self.overall_per_second, overall_time_period=1,
                              group_max_rate=self.group_per_minute, group_time_period=60,
                              max_retries=self.retries)  # fmt: skip


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
