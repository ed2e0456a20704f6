"""One load run on one platform: the fake server, the bot, many simulated learners, and what came of it.

``run_platform`` starts the fake (Telegram's Bot API or Discord), starts the bot against it, lets each learner
walk its script with a think time between turns until the run's time is up (a learner finishes the turn it
is in), stops the bot (the turns in flight finish), and compares every learner's stored progress with what
they did. Errors are every turn that did not show what it should (or nothing within the timeout), every
error answer of the fake, every log record of the bot at WARNING or above, every button press or interaction
the bot left unanswered, and a bot that did not stop cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.load_bot import DISCORD_TOKEN, NO_LIMITS, TELEGRAM_LIMITS, ChildBot, InProcessBot
from bench.load_discord import CHANNELS, DiscordDriver
from bench.load_script import Learner, TurnFailed
from bench.load_telegram import TelegramDriver
from bench.load_watch import LogTally
from bot.core.lessons import Track
from bot.knowledge.reader import read_track
from bot.store.progress import SqlProgressStore
from tests.adapters.discord_fake import FakeDiscord
from tests.adapters.telegram_fake import FakeBotApi

START_SECONDS = 60.0  # a bot that is not serving after this long did not start


@dataclass
class Options:
    """How a run goes: learners per platform, seconds of turns, think time, where files go, in which process."""

    learners: int
    seconds: float
    workdir: Path
    think: tuple[float, float] = (1.0, 5.0)  # seconds a learner waits between turns (uniform)
    timeout: float = 30.0  # a turn without its reply after this long is an error
    seed: int = 7
    child: bool = True  # the bot in a process of its own (memory figures); False: in this event loop
    trace: bool = False  # tracemalloc in the bot's process: what grew in the second half
    profile: bool = False  # cProfile the bot's process into <workdir>/<platform>/bot.prof
    turns: int | None = None  # a learner stops after this many turns (a test's fixed amount of work), or at the time
    send_limits: bool = True  # Telegram's send limits (off: none at all, as the adapter tests run)
    ack_seconds: float | None = 3.0  # Discord's deadline for answering an interaction (None: no deadline)
    webhook: bool = False  # Telegram's updates posted to the bot's webhook instead of fetched by long polling


@dataclass
class PlatformRun:
    """What one platform's run measured."""

    platform: str
    learners: int
    seconds: float = 0.0  # from the first learner's start to the last turn's end
    samples: list[tuple[str, float]] = field(default_factory=list)  # (kind of turn, latency in s)
    failures: list[str] = field(default_factory=list)  # turns that did not show what they should
    refused: list[str] = field(default_factory=list)  # error answers of the fake
    unanswered: int = 0
    bot: dict[str, Any] = field(default_factory=dict)  # the bot's report: warnings, first records, exit code
    mismatches: list[str] = field(default_factory=list)  # learners whose stored progress is not what they did
    rss: list[tuple[float, float]] = field(default_factory=list)  # (s since the learners started, MB)
    derailed: int = 0  # learners who stopped after a failed turn (their progress is not compared)
    lessons_done: int = 0  # lessons the learners finished, as stored
    cpu: tuple[float, float] | None = None  # CPU seconds of (the bot, this process: fake and learners) in the run
    fake_log: list[str] = field(default_factory=list)  # WARNING+ records of this process (the fake's server)
    abandoned: dict[str, int] = field(default_factory=dict)  # calls the bot dropped half-sent (cancelled), by method

    @property
    def turns(self) -> int:
        return len(self.samples)

    @property
    def latencies(self) -> list[float]:
        """Latencies of the turns the model has no part in, s."""
        return [latency for kind, latency in self.samples if kind != "ask"]

    @property
    def model_latencies(self) -> list[float]:
        """Latencies of the questions (the scripted model answers at once; Telegram edits at most once a second)."""
        return [latency for kind, latency in self.samples if kind == "ask"]

    @property
    def errors(self) -> int:
        warnings = int(self.bot.get("warnings", 0))
        return (len(self.failures) + len(self.refused) + self.unanswered + warnings + len(self.fake_log)
                + bool(self.bot.get("exit_code")))  # fmt: skip

    def rss_at(self, start: float, end: float) -> float | None:
        """The median RSS sampled between ``start`` and ``end`` (fractions of the run)."""
        span = self.rss[-1][0] if self.rss else 0.0
        found = [mb for at, mb in self.rss if start * span <= at <= end * span]
        return statistics.median(found) if found else None

    @property
    def growth(self) -> float | None:
        """RSS growth over the second half (after warm-up): the last tenth against the middle tenth."""
        middle, end = self.rss_at(0.45, 0.55), self.rss_at(0.9, 1.0)
        return None if middle is None or end is None else (end - middle) / middle


def bundled_track() -> Track:
    result = read_track(ROOT / "knowledge" / "ai-foundations")
    assert result.track is not None, result.problems
    return result.track


async def run_platform(platform: str, options: Options) -> PlatformRun:
    """One run of ``options.learners`` learners on ``platform`` ("telegram" or "discord")."""
    data_dir = options.workdir / platform
    data_dir.mkdir(parents=True, exist_ok=True)
    run = PlatformRun(platform, options.learners)
    fake: Any
    if platform == "telegram":
        fake = FakeBotApi(record_calls=False)
        await fake.start()
        address, driver = fake.base_url, TelegramDriver(fake, options.timeout)
    else:
        fake = FakeDiscord(DISCORD_TOKEN, channel_ids=CHANNELS, record_calls=False, ack_seconds=options.ack_seconds)
        await fake.start()
        address, driver = f"{fake.base_url} {fake.gateway_url}", DiscordDriver(fake, options.timeout)
    webhook_port = free_port() if options.webhook and platform == "telegram" else None
    bot: ChildBot | InProcessBot
    if options.child:
        profile = data_dir / "bot.prof" if options.profile else None
        bot = ChildBot(platform, address, data_dir, options.trace, profile, options.send_limits, webhook_port)
    else:
        limits = TELEGRAM_LIMITS if options.send_limits else NO_LIMITS
        bot = InProcessBot(platform, address, data_dir, limits, webhook_port)
    tally = LogTally(keep=1000)  # the fake's server logs here (an in-process bot counts everything itself)
    if options.child:
        logging.getLogger().addHandler(tally)
    try:
        await bot.start()
        await _ready(fake, bot)
        bot_cpu, own_cpu = bot.cpu_seconds(), time.process_time()
        learners = await _drive(driver, bot, options, run)
        bot_cpu_after = bot.cpu_seconds()
        if bot_cpu is not None and bot_cpu_after is not None:
            run.cpu = (bot_cpu_after - bot_cpu, time.process_time() - own_cpu)
    finally:
        run.bot = await bot.stop()
        await fake.stop()
        logging.getLogger().removeHandler(tally)
    run.fake_log = tally.first
    run.abandoned = dict(fake.abandoned)
    run.unanswered = driver.unanswered()
    run.refused = [f"{what}: {status} {text[:200]}" for what, status, text in fake.refused]
    if isinstance(fake, FakeBotApi):  # the bot's own webhook server must take every update
        run.refused += [f"webhook answered {status}" for status in fake.webhook_replies if status != 200]
    _check_progress(data_dir / "tutorbot.sqlite3", platform, learners, run)
    return run


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _ready(fake: Any, bot: ChildBot | InProcessBot) -> None:
    """Wait until the bot is fetching updates or has set its webhook (Telegram), or has identified (Discord)."""
    deadline = time.monotonic() + START_SECONDS
    while not (fake.counts["getUpdates"] or fake.webhook if isinstance(fake, FakeBotApi) else fake.identified.is_set()):
        if bot.exited() or time.monotonic() > deadline:
            raise RuntimeError(f"the bot did not start: {await bot.stop()}")
        await asyncio.sleep(0.05)


async def _drive(driver: Any, bot: ChildBot | InProcessBot, options: Options,
                 run: PlatformRun) -> list[tuple[Any, Learner]]:  # fmt: skip
    """Every learner walking its script until the time is up, with the bot's memory sampled meanwhile."""
    track = bundled_track()
    learners = []
    for number in range(options.learners):
        rng = random.Random(options.seed * 100_003 + number)
        learners.append((driver.seat(number), Learner(f"{driver.platform}-{number}", track, rng, rng.choice([1, 2]))))
    started = time.monotonic()
    deadline = started + options.seconds
    ramp = min(10.0, options.seconds / 10)  # learners arrive over the first tenth, not all in one instant
    sampler = asyncio.create_task(_sample(bot, started, options.seconds, run))
    await asyncio.gather(*(_walk(driver, seat, learner, started + learner.rng.uniform(0, ramp), deadline, options,
                                 run) for seat, learner in learners))  # fmt: skip
    run.seconds = time.monotonic() - started
    sampler.cancel()
    return learners


async def _walk(driver: Any, seat: Any, learner: Learner, start: float, deadline: float, options: Options,
                run: PlatformRun) -> None:  # fmt: skip
    """One learner's turns, one after another with a think time between, until the deadline."""
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    while time.monotonic() < deadline and (options.turns is None or learner.turns < options.turns):
        turn = learner.next_turn()
        try:
            latency = await driver.do(seat, turn)
        except TurnFailed as failure:
            run.failures.append(f"{learner.name} ({learner.turns} turns done): {failure}")
            learner.derailed = True  # what the bot has for this learner is unknown from here on
            return
        except Exception as error:  # noqa: BLE001 - a fault of the bench, reported like the bot's
            run.failures.append(f"{learner.name}: the bench failed: {error!r}")
            learner.derailed = True
            return
        learner.confirm(turn)
        run.samples.append((turn.kind, latency))
        await asyncio.sleep(learner.rng.uniform(*options.think))


async def _sample(bot: ChildBot | InProcessBot, started: float, seconds: float, run: PlatformRun) -> None:
    """The bot's RSS every half second; half-way, the bot's first allocation snapshot."""
    marked = False
    while True:
        at = time.monotonic() - started
        rss = bot.rss_mb()
        if rss is not None:
            run.rss.append((at, rss))
        if not marked and at >= seconds / 2:
            bot.mark()
            marked = True
        await asyncio.sleep(0.5)


def _check_progress(database: Path, platform: str, learners: list[tuple[Any, Learner]], run: PlatformRun) -> None:
    """Every learner's stored position and lesson results against what they did."""
    store = SqlProgressStore(database)
    try:
        for seat, learner in learners:
            if learner.derailed:
                run.derailed += 1
                continue
            key = f"{platform}:{seat.user.id}"
            results = store.results(key)
            run.lessons_done += len(results)
            problem = learner.mismatch(store.position(key), results)
            if problem:
                run.mismatches.append(f"{learner.name}: {problem}")
    finally:
        store.close()
