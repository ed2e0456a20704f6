"""One bot process for the multi-process test and bench: the real engine on the database (and Chroma server) the
``TUTORBOT_*`` variables name, as a webhook worker would run it.

``python -m tests.multiprocess_worker serve [--answers]``: prints ``{"ready": PID}`` once the engine is built,
then reads turns as JSON lines on stdin (``{"update": N, "learner": ID, "text": ..., "action": ...}``), handles
each as its own task (many learners at once, as a bot does) with ``delivery="test:N"``, and when the turn's last
reply is out prints its acknowledgement: ``{"update": N, "applied": K, "replies": [...]}``. ``applied`` counts
the times this turn's store recorded the update as handled (its save or its delivery note went through: 1 for the
turn that applied it); a redelivered update that was handled already is acknowledged with no replies and 0.
``--answers`` adds the grounded answerer: the index on the Chroma server, and a scripted model that never runs out.

``python -m tests.multiprocess_worker walk LEARNERS SECONDS PREFIX [--warm S]``: a process of
``bench/multiprocess.py``: after ``{"ready": PID}`` it waits for a line on stdin (every process starts together),
then LEARNERS walkers of ``bench/engine_turns.py`` take turns (each with an update id, as webhook workers get them)
for the warm-up and SECONDS more, and it prints ``{"turns": N, "seconds": S, "latencies": [ms, ...]}`` of the
measured part.

The store patch (recording what this process applied) lives here, in a test-only program: production code has no
hook for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run by path too, not only with -m

from bot.app import build_engine, settle_memory  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.core.engine import Engine  # noqa: E402
from bot.core.messages import Button, Incoming, QuizCard, Reply  # noqa: E402
from bot.store.progress import SqlProgressStore  # noqa: E402

PLATFORM = "test"
RECORDED: contextvars.ContextVar[list[str]] = contextvars.ContextVar("recorded")  # updates a turn recorded


class RecordingStore(SqlProgressStore):
    """The real store, noting each platform update whose handling this process recorded (the one that applied it)."""

    def save(self, learner: str, *args: Any, **kwargs: Any) -> None:
        super().save(learner, *args, **kwargs)
        if kwargs.get("delivery") is not None:
            self._applied(kwargs["delivery"])

    def note_delivery(self, delivery: str, at: float) -> bool:
        noted = super().note_delivery(delivery, at)
        if noted:
            self._applied(delivery)
        return noted

    @staticmethod
    def _applied(delivery: str) -> None:
        RECORDED.get().append(delivery)  # the turn's own list: asyncio.to_thread runs it in the turn's context


def reply_to_json(reply: Reply) -> dict[str, Any]:
    """What a walker needs of a reply: its text, buttons and quiz card."""
    quiz = reply.quiz
    return {
        "text": reply.text,
        "buttons": [[[button.label, button.action] for button in row] for row in reply.buttons],
        "quiz": None if quiz is None else {"question": quiz.question, "options": list(quiz.options),
                                           "correct": quiz.correct_index, "actions": list(quiz.actions)},
    }  # fmt: skip


def reply_from_json(data: dict[str, Any]) -> Reply:
    """A reply back from ``reply_to_json`` (for the driver's walkers)."""
    quiz = data["quiz"]
    card = None
    if quiz is not None:
        card = QuizCard(quiz["question"], tuple(quiz["options"]), quiz["correct"], None, tuple(quiz["actions"]))
    buttons = tuple(tuple(Button(label, action) for label, action in row) for row in data["buttons"])
    return Reply(data["text"], buttons=buttons, quiz=card)


def turn_incoming(learner: str, text: str | None, action: str | None, update: int | None) -> Incoming:
    """A learner's turn as the fake platform's adapter hands it over, with its update id when it has one."""
    delivery = None if update is None else f"{PLATFORM}:{update}"
    return Incoming(PLATFORM, learner, f"dm-{learner}", text=text, action=action, display_name=learner.title(),
                    delivery=delivery)  # fmt: skip


def build(answers: bool) -> Engine:
    """The engine as the bot builds it from the ``TUTORBOT_*`` variables."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    if answers:
        from tests.fakes import TirelessModel

        engine = build_engine(settings, model=TirelessModel())
    else:
        engine = build_engine(settings, answers=False)
    settle_memory()
    return engine


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(engine: Engine) -> None:
    """Handle every turn read from stdin as its own task; acknowledge each when its replies are out."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:  # a thread of its own: stdin blocks
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, "")

    threading.Thread(target=read, daemon=True).start()
    tasks: set[asyncio.Task[None]] = set()
    while line := await lines.get():
        task = asyncio.create_task(handle(engine, json.loads(line)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks)


async def handle(engine: Engine, turn: dict[str, Any]) -> None:
    incoming = turn_incoming(turn["learner"], turn.get("text"), turn.get("action"), turn["update"])
    recorded: list[str] = []
    RECORDED.set(recorded)  # this task's context only
    replies = await engine.replies(incoming)
    applied = recorded.count(incoming.delivery or "")
    emit({"update": turn["update"], "applied": applied, "replies": [reply_to_json(reply) for reply in replies]})  # fmt: skip


async def walk(engine: Engine, learners: int, seconds: float, warm: float, prefix: str) -> None:
    """The bench: ``learners`` walkers taking turns for ``warm`` + ``seconds``; prints the turns of the last
    ``seconds`` and their latencies (from calling the engine to its last reply)."""
    import random

    from bench.engine_turns import Walker

    tracks = list(engine.tracks.values())
    walkers = [Walker(f"{prefix}-{n}", tracks, random.Random(n)) for n in range(learners)]
    latencies: list[float] = []
    counter = iter(range(10**9))

    async def one(walker: Walker, measured: float, deadline: float) -> None:
        while time.perf_counter() < deadline:
            _kind, turn = walker.next_turn()
            turn = replace(turn, platform=PLATFORM, delivery=f"{PLATFORM}:{prefix}-{next(counter)}")
            started = time.perf_counter()
            walker.last = await engine.replies(turn)
            if started >= measured:
                latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.to_thread(sys.stdin.readline)  # the go signal: every process starts at once
    measured = time.perf_counter() + warm
    await asyncio.gather(*(one(walker, measured, measured + seconds) for walker in walkers))
    emit({"turns": len(latencies), "seconds": time.perf_counter() - measured, "latencies": latencies,
          "lost": sum(walker.lost for walker in walkers)})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    serving = modes.add_parser("serve")
    serving.add_argument("--answers", action="store_true")
    walking = modes.add_parser("walk")
    walking.add_argument("learners", type=int)
    walking.add_argument("seconds", type=float)
    walking.add_argument("prefix")
    walking.add_argument("--warm", type=float, default=2.0, help="seconds of turns before measuring")
    args = parser.parse_args()
    engine = build(args.mode == "serve" and args.answers)
    emit({"ready": os.getpid()})
    if args.mode == "serve":
        engine.store.__class__ = RecordingStore
        asyncio.run(serve(engine))
    else:
        asyncio.run(walk(engine, args.learners, args.seconds, args.warm, args.prefix))


if __name__ == "__main__":
    main()
