"""The bot under load: the real engine, store and adapter, wired as ``tutorbot run`` wires them, over an endless
scripted model and a fixed retriever (no model files, no index).

``ChildBot`` runs it in a process of its own (``python -m bench.load_bot``), so its memory can be sampled alone
and it has a CPU to itself; ``InProcessBot`` runs it as a task of the caller's event loop (the test). Either
counts the log records at WARNING and above, which a clean run has none of.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import logging
import os
import signal
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import SecretStr  # noqa: E402

from bench.common import ROOT  # noqa: E402
from bench.load_watch import LogTally, census, census_growth, known_structures, memory_growth  # noqa: E402
from bot.adapters.telegram.limits import SendLimits  # noqa: E402
from bot.app import build_answerer, default_quiet_hours, load_tracks, settle_memory  # noqa: E402
from bot.config import DiscordSettings, Settings, TelegramSettings  # noqa: E402
from bot.core.engine import Engine  # noqa: E402
from bot.core.ports import Passage  # noqa: E402
from bot.store.database import Database  # noqa: E402
from bot.store.progress import SqlProgressStore  # noqa: E402
from tests.adapters.discord_fake import point_discord_at  # noqa: E402
from tests.adapters.telegram_fake import TOKEN as TELEGRAM_TOKEN  # noqa: E402
from tests.fakes import EndlessModel, FixedRetriever  # noqa: E402

DISCORD_TOKEN = "MTE4MDAwMDAwMDAwMDAwMDkwMA.load-bench.not-a-real-token"
# Telegram's group limit as in production; its overall 30 messages/s (Telegram's own flood limit, which the
# fake does not have) raised so the bench measures the bot rather than that cap.
TELEGRAM_LIMITS = SendLimits(overall_per_second=1000)
NO_LIMITS = SendLimits(overall_per_second=0, group_per_minute=0)
WEBHOOK_SECRET = "load-bench-webhook-secret"


def build_engine(data_dir: Path) -> tuple[Engine, Database]:
    """The engine over the bundled tracks with its store and question log in ``data_dir``, as ``bot.app`` builds it;
    and the database to close when done."""
    settings = Settings(data_dir=data_dir, knowledge_dir=ROOT / "knowledge")
    tracks = load_tracks(settings)
    database = Database(settings.database_path)
    answerer = build_answerer(settings, EndlessModel(), retriever(tracks), tracks, database)  # type: ignore[arg-type]
    engine = Engine(tracks, SqlProgressStore(database), answerer, default_quiet=default_quiet_hours(settings))
    return engine, database


def retriever(tracks: dict) -> FixedRetriever:
    """Each lesson's first sentence as the passage found for any question about it."""
    passages = []
    for track in tracks.values():
        for lesson in track.lessons:
            section = lesson.sections[0]
            text = section.units[0].text if section.units else section.text[:200]
            passages.append(Passage(track.id, lesson.id, section.id, section.heading, lesson.title, text, 0.7, 0.7))
    return FixedRetriever(passages)


async def serve(platform: str, engine: Engine, address: str, stop: asyncio.Event,
                limits: SendLimits = TELEGRAM_LIMITS, webhook_port: int | None = None) -> None:  # fmt: skip
    """Serve ``platform`` against the fake at ``address`` (a Bot API base URL, or Discord's REST and gateway URLs
    separated by a space) until ``stop`` is set; ``limits`` are Telegram's send limits, and with ``webhook_port``
    Telegram's updates come to a webhook on that port instead of by long polling."""
    if platform == "telegram":
        from bot.adapters.telegram import serve as serve_telegram

        settings = TelegramSettings(token=SecretStr(TELEGRAM_TOKEN), base_url=address)
        if webhook_port is not None:
            settings = TelegramSettings(token=SecretStr(TELEGRAM_TOKEN), base_url=address, webhook_port=webhook_port,
                                        webhook_url=f"http://127.0.0.1:{webhook_port}/telegram-hook",
                                        webhook_secret=SecretStr(WEBHOOK_SECRET))  # fmt: skip
        await serve_telegram(engine, settings, stop, limits=limits)
    else:
        import discord

        from bot.adapters.discord import serve as serve_discord

        base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        point_discord_at(*address.split())
        # discord.py warns once that voice libraries are missing; tutorbot has no voice, so it is no finding.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        try:
            await serve_discord(engine, DiscordSettings(token=SecretStr(DISCORD_TOKEN)), stop)
        finally:  # as it was, for whatever runs in this process next
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = base, gateway


# ------------------------------------------------------------ in a process of its own


def main() -> None:
    """``python -m bench.load_bot PLATFORM ADDRESS DATA_DIR REPORT``: serve until SIGTERM, then write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("platform", choices=("telegram", "discord"))
    parser.add_argument("address", help="the fake's Bot API URL, or its REST and gateway URLs in one argument")
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("report", type=Path, help="where to write the JSON report when stopped")
    parser.add_argument("--tracemalloc", action="store_true", help="snapshot allocations at SIGUSR1 and at the end")
    parser.add_argument("--profile", type=Path, help="write a cProfile of serving to this file")
    parser.add_argument("--no-send-limits", action="store_true", help="no Telegram send limits at all")
    parser.add_argument("--webhook-port", type=int, help="Telegram by webhook on this port, not long polling")
    args = parser.parse_args()
    tally = LogTally()
    logging.basicConfig(level=logging.INFO, filename=args.data_dir / "bot.log",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    logging.getLogger().addHandler(tally)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per Bot API call otherwise
    if args.tracemalloc:
        tracemalloc.start()
    report: dict[str, Any] = {}
    profiler = cProfile.Profile() if args.profile else None
    try:
        if profiler is not None:
            profiler.enable()
        asyncio.run(_serve_until_stopped(args, report))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        report.update(warnings=tally.count, first=tally.first)
        args.report.write_text(json.dumps(report), encoding="utf-8")


async def _serve_until_stopped(args: argparse.Namespace, report: dict[str, Any]) -> None:
    engine, database = build_engine(args.data_dir)
    settle_memory()  # as tutorbot run does once it is built
    stop = asyncio.Event()
    snapshots: list[tracemalloc.Snapshot] = []
    counted: list[Counter[str]] = []

    def half_way() -> None:
        counted.append(census())
        report["structures"] = {name: [size] for name, size in known_structures(engine).items()}
        if args.tracemalloc:
            snapshots.append(tracemalloc.take_snapshot())

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, half_way)
    limits = NO_LIMITS if args.no_send_limits else TELEGRAM_LIMITS
    serving = asyncio.create_task(serve(args.platform, engine, args.address, stop, limits, args.webhook_port))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if counted:  # before the shutdown lets go of what was alive
        report["census"] = census_growth(counted[0], census())
        for name, size in known_structures(engine).items():
            report["structures"].setdefault(name, [0]).append(size)
    if snapshots:
        report["growth"] = memory_growth(snapshots[0], tracemalloc.take_snapshot())
    await serving
    database.close()


class ChildBot:
    """The bot in a process of its own: started, its RSS sampled, marked half-way, stopped with SIGTERM."""

    def __init__(self, platform: str, address: str, data_dir: Path, trace: bool = False,
                 profile: Path | None = None, send_limits: bool = True, webhook_port: int | None = None) -> None:  # fmt: skip
        self.platform, self.address, self.data_dir, self.trace = platform, address, data_dir, trace
        self.profile, self.send_limits, self.webhook_port = profile, send_limits, webhook_port
        self.report_path = data_dir / "bot-report.json"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the process (it connects to the fake by itself)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "bench.load_bot", self.platform, self.address, str(self.data_dir),
                   str(self.report_path), *(["--tracemalloc"] if self.trace else []),
                   *(["--profile", str(self.profile)] if self.profile else []),
                   *([] if self.send_limits else ["--no-send-limits"]),
                   *(["--webhook-port", str(self.webhook_port)] if self.webhook_port else [])]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.process = await asyncio.create_subprocess_exec(*command, cwd=ROOT, env=env)

    def rss_mb(self) -> float | None:
        """The process's resident memory in MB (None once it has ended)."""
        assert self.process is not None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return None

    def cpu_seconds(self) -> float | None:
        """CPU time the process has used so far (user and system)."""
        assert self.process is not None
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return None

    def mark(self) -> None:
        """Half-way: the first census of live objects (and allocation snapshot, with ``trace``)."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGUSR1)

    def exited(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    async def stop(self) -> dict[str, Any]:
        """SIGTERM (the turns in flight finish), then the process's report: warnings, first records, growth."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 60)
        report = json.loads(self.report_path.read_text(encoding="utf-8")) if self.report_path.exists() else {}
        report["exit_code"] = code
        return report


class InProcessBot:
    """The bot as a task of the caller's event loop (for the test: no memory figures)."""

    def __init__(self, platform: str, address: str, data_dir: Path, limits: SendLimits = TELEGRAM_LIMITS,
                 webhook_port: int | None = None) -> None:  # fmt: skip
        self.platform, self.address, self.data_dir, self.limits = platform, address, data_dir, limits
        self.webhook_port = webhook_port
        self.tally = LogTally()
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.database: Database | None = None

    async def start(self) -> None:
        logging.getLogger().addHandler(self.tally)
        engine, self.database = build_engine(self.data_dir)
        self.task = asyncio.create_task(
            serve(self.platform, engine, self.address, self.stopping, self.limits, self.webhook_port)
        )

    def rss_mb(self) -> float | None:
        return None

    def cpu_seconds(self) -> float | None:
        return None

    def mark(self) -> None:
        """Nothing to mark."""

    def exited(self) -> bool:
        return self.task is not None and self.task.done()

    async def stop(self) -> dict[str, Any]:
        assert self.task is not None and self.database is not None
        self.stopping.set()
        code = 0
        try:
            await asyncio.wait_for(self.task, 60)
        except Exception as error:  # noqa: BLE001 - reported as the run's outcome
            self.tally.first.append(f"serve failed: {error!r}")
            code = 1
        finally:
            logging.getLogger().removeHandler(self.tally)
            self.database.close()
        return {"warnings": self.tally.count, "first": self.tally.first, "exit_code": code}


if __name__ == "__main__":
    main()
