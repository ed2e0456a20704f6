"""A short load run through the real platform clients: many learners at once, every turn right, no progress lost.

The same run as ``bench/load.py`` (the real python-telegram-bot and discord.py adapters over the real engine and
SQLite store, the fake Bot API and fake Discord, learners walking the bench's script with their turns
interleaved), smaller: 50 learners per platform taking 20 turns each, the bot in this event loop. It asserts
what must hold under load whatever the machine's speed: every turn showed what it should, the fake answered no
call with an error, the bot logged nothing at WARNING or above and answered every button press, and every
learner's stored position and lesson results equal what they did. Timings and memory are the bench's business.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from bench.load_run import Options, PlatformRun, run_platform

LEARNERS = 50
TURNS = 20  # enough for many to finish the first lesson's quiz; the seed makes it the same work every run


def run(platform: str, tmp_path: Path) -> PlatformRun:
    # Telegram's per-chat send limits would make each learner wait about a second a message; a Discord interaction
    # answered after its 3 seconds would count as lost on a slow machine: both are timing, which this test is not.
    options = Options(LEARNERS, seconds=600, workdir=tmp_path, think=(0.01, 0.1), child=False, turns=TURNS,
                      send_limits=False, ack_seconds=None)  # fmt: skip
    return asyncio.run(run_platform(platform, options))


@pytest.mark.parametrize("platform", ["telegram", "discord"])
def test_many_learners_at_once_get_every_reply_and_keep_their_progress(platform: str, tmp_path: Path) -> None:
    result = run(platform, tmp_path)
    assert result.failures == []
    assert result.refused == [] and result.fake_log == []
    assert result.bot["first"] == [] and result.bot["warnings"] == 0 and result.bot["exit_code"] == 0
    assert result.unanswered == 0
    assert result.derailed == 0 and result.mismatches == []
    assert result.turns == LEARNERS * TURNS
    kinds = Counter(kind for kind, _latency in result.samples)
    # The script went everywhere: questions for the model, quizzes answered, progress pages, lessons finished.
    assert {"start", "track", "lesson", "read", "next", "back", "ask", "resume", "progress", "quiz", "answer"} <= set(
        kinds
    )
    assert result.lessons_done > 0
