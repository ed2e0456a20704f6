"""Three bot processes on one PostgreSQL database, one Chroma server and a scripted model, serving 200 learners whose
turns go to whichever process a random pick gives, some delivered twice, one process SIGKILLed midway.

Each process is ``tests/multiprocess_worker.py serve --answers``: the real engine, built as the bot builds it. This
driver walks each learner like a person (the walkers of ``bench/engine_turns.py``: lessons, sections, quizzes, and
now and then a question for the model), sends each turn with an update id and waits for its acknowledgement before
the next. Then, against the database: every learner's position, quiz attempts and lesson results are exactly what
one process replaying the applied turns in order gives (a lost or doubled move or answer would differ); every update
was applied by one process only and recorded once; every question was logged once; and every turn the killed
process had acknowledged was in the database the moment it died.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bench.engine_turns import Walker, find
from bot.app import load_tracks, open_index
from bot.config import Settings
from bot.core.engine import Engine
from bot.core.ports import Position
from bot.store.progress import SqlProgressStore, position_from_json
from tests.integration.chroma_server import ChromaServer
from tests.multiprocess_worker import PLATFORM, reply_from_json, turn_incoming

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent.parent
LEARNERS = 200  # the number
TURNS = 24  # per learner: a lesson read, its quiz taken, progress looked at; 4800 turns in all
WORKERS = 3
REDELIVERED = 0.08  # share of turns sent to two processes at once, as a webhook's retry
QUESTIONS = 0.05  # share of a reading learner's turns that are a question for the model
KILL_AFTER = 0.4  # share of all turns acknowledged when one process is killed
ACK_SECONDS = 120.0
QUESTION = "What does a neural network learn from?"


class Died(Exception):
    """The process was killed before it acknowledged the turn."""


@dataclass
class Worker:
    """One bot process and the turns sent to it that it has not acknowledged yet."""

    name: str
    process: asyncio.subprocess.Process
    waiting: dict[int, list[asyncio.Future[dict[str, Any]]]] = field(default_factory=dict)
    acked: list[dict[str, Any]] = field(default_factory=list)
    alive: bool = True
    reading: asyncio.Task[None] | None = None

    async def read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            ack = json.loads(line)
            self.acked.append(ack)
            self.waiting[ack["update"]].pop(0).set_result(ack)
        self.alive = False
        for futures in self.waiting.values():
            for future in futures:
                future.set_exception(Died(self.name))
        self.waiting.clear()

    async def send(self, turn: dict[str, Any]) -> dict[str, Any]:
        """The acknowledgement of ``turn``; raises Died when the process dies first."""
        if not self.alive:
            raise Died(self.name)
        future = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(turn["update"], []).append(future)
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(turn) + "\n").encode())
        except OSError:  # killed: the reader fails the future when it sees the end of the output
            pass
        return await asyncio.wait_for(future, ACK_SECONDS)


async def start_worker(name: str, env: dict[str, str]) -> Worker:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.multiprocess_worker", "serve", "--answers", env=env, cwd=REPO,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    ready = await asyncio.wait_for(process.stdout.readline(), 180)
    assert ready and "ready" in json.loads(ready), f"worker {name} did not start"
    worker = Worker(name, process)
    worker.reading = asyncio.get_running_loop().create_task(worker.read())
    return worker


@dataclass
class Applied:
    """A turn as the replay needs it, and whether it was a question."""

    learner: str
    text: str | None
    action: str | None
    question: bool
    seen: bool  # a live process acknowledged applying it (else the killed one applied it before it died)


@dataclass
class Run:
    """The driver: the processes, the learners' turns, and what came back."""

    env: dict[str, str]
    workers: list[Worker]
    rng: random.Random
    updates: int = 0
    acked: int = 0
    applied: list[Applied] = field(default_factory=list)  # every turn some process applied, in learner order
    acks: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    refused: int = 0  # turns no process applied and answered with a note (a busy database): none expected
    killed: Worker | None = None
    acked_by_killed: set[int] = field(default_factory=set)
    in_flight: int = 0
    half_way: asyncio.Event = field(default_factory=asyncio.Event)

    def live(self) -> list[Worker]:
        return [worker for worker in self.workers if worker.alive]

    async def deliver(self, turn: dict[str, Any], to: Worker) -> list[dict[str, Any]]:
        """The turn sent to ``to``; sent again (same update id) to another process while the one it went to dies."""
        while True:
            try:
                return [await to.send(turn)]
            except Died:
                to = self.rng.choice(self.live())

    async def turn(self, learner: str, text: str | None, action: str | None) -> tuple[list[Any], bool, bool]:
        """One turn, to one process or (a redelivery) to two at once: the replies shown, whether it was applied,
        and whether an acknowledgement says so."""
        self.updates += 1
        turn = {"update": self.updates, "learner": learner, "text": text, "action": action}
        twice = self.rng.random() < REDELIVERED and len(self.live()) > 1
        targets = self.rng.sample(self.live(), 2 if twice else 1)
        acks = [ack for got in await asyncio.gather(*(self.deliver(turn, to) for to in targets)) for ack in got]
        self.acks[self.updates] = acks
        self.acked += 1
        if self.acked >= KILL_AFTER * LEARNERS * TURNS:
            self.half_way.set()
        applied = [ack for ack in acks if ack["applied"]]
        shown = [reply_from_json(reply) for ack in applied for reply in ack["replies"]]
        if applied or not any(ack["replies"] for ack in acks):  # by one of these, or by a process that died after
            return shown, True, bool(applied)
        self.refused += 1
        return [reply_from_json(reply) for ack in acks for reply in ack["replies"]], False, False

    async def learner(self, walker: Walker) -> None:
        for _ in range(TURNS):
            reading = find(walker.last, "Next ▸") is not None
            if reading and self.rng.random() < QUESTIONS:  # the answer leaves the learner where they were
                _shown, applied, seen = await self.turn(walker.user_id, QUESTION, None)
                if applied:
                    self.applied.append(Applied(walker.user_id, QUESTION, None, True, seen))
                continue
            turn = walker.next_turn()[1]
            walker.last, applied, seen = await self.turn(walker.user_id, turn.text, turn.action)
            if applied:
                self.applied.append(Applied(walker.user_id, turn.text, turn.action, False, seen))

    async def kill_one(self, url: str) -> None:
        """SIGKILL a process half way; what it acknowledged must be in the database by then. A new one starts."""
        await self.half_way.wait()
        victim = self.rng.choice(self.live())
        self.in_flight = sum(map(len, victim.waiting.values()))  # turns sent to it and not acknowledged
        victim.process.kill()
        await victim.process.wait()
        assert victim.reading is not None
        await victim.reading  # every acknowledgement it wrote before it died is read
        self.killed = victim
        self.acked_by_killed = {ack["update"] for ack in victim.acked if ack["applied"]}
        recorded = await asyncio.to_thread(deliveries, url)
        assert self.acked_by_killed and self.acked_by_killed <= recorded
        self.workers.append(await start_worker("restarted", self.env))


def deliveries(url: str) -> set[int]:
    """The update ids the database recorded as handled."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT delivery FROM deliveries").fetchall()
    return {int(delivery.removeprefix(f"{PLATFORM}:")) for (delivery,) in rows}


def progress_in(url: str) -> tuple[dict[str, tuple[Position, list[tuple], list[tuple]]], Counter[str]]:
    """Per learner, from the database: position, quiz attempts and lesson results (in order); and questions logged."""
    found: dict[str, Any] = {}
    questions: Counter[str] = Counter()
    with psycopg.connect(url) as connection:
        for learner, position in connection.execute("SELECT learner, position FROM learners"):
            found[learner] = [position_from_json(position), [], []]
        for learner, *row in connection.execute(
            "SELECT learner, track, lesson, quiz_run, question, chosen, correct FROM quiz_attempts ORDER BY id"
        ):
            found[learner][1].append(tuple(row))
        for learner, *row in connection.execute(
            "SELECT learner, track, lesson, score, total FROM lesson_results ORDER BY id"
        ):
            found[learner][2].append(tuple(row))
        for learner, count in connection.execute("SELECT learner, count(*) FROM questions GROUP BY learner"):
            questions[learner] = count
    return {learner: tuple(values) for learner, values in found.items()}, questions


async def replay(engine: Engine, applied: list[Applied]) -> None:
    """The applied turns again, in order, through one engine (each learner's order is what matters)."""
    for turn in applied:
        if not turn.question:  # a question moves nothing; this engine has no model to answer it
            await engine.replies(turn_incoming(turn.learner, turn.text, turn.action, None))


def expected_progress(store: SqlProgressStore, applied: list[Applied]) -> dict[str, tuple]:
    """Per learner, from the replay: position, quiz attempts and lesson results, as ``progress_in`` reads them."""
    learners = {f"{PLATFORM}:{turn.learner}" for turn in applied}
    db = store._db  # the replay's own SQLite file
    expected = {}
    for learner in learners:
        attempts = db.fetch_all("SELECT track, lesson, quiz_run, question, chosen, correct FROM quiz_attempts"
                                " WHERE learner = ? ORDER BY id", (learner,))  # fmt: skip
        results = db.fetch_all("SELECT track, lesson, score, total FROM lesson_results WHERE learner = ? ORDER BY id",
                               (learner,))  # fmt: skip
        expected[learner] = (store.position(learner), attempts, results)
    return expected


async def drive(run: Run, url: str, tracks: list[Any]) -> None:
    walkers = [Walker(f"u{n}", tracks, random.Random(n)) for n in range(LEARNERS)]
    killing = asyncio.create_task(run.kill_one(url))
    await asyncio.gather(*(run.learner(walker) for walker in walkers))
    await killing


def worker_env(tmp_path: Path, url: str, chroma: ChromaServer, models_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TUTORBOT_")}
    env.update(PYTHONPATH=str(REPO), TUTORBOT_DATABASE_URL=url, TUTORBOT_DATA_DIR=str(tmp_path / "worker-data"),
               TUTORBOT_KNOWLEDGE_DIR=str(REPO / "knowledge"), TUTORBOT_MODEL__MODELS_DIR=str(models_dir),
               **chroma.env)  # fmt: skip
    return env


def test_learners_on_three_processes_lose_nothing_and_apply_nothing_twice_even_when_one_is_killed(
    tmp_path: Path, postgres_url: str, chroma_server: ChromaServer, models_dir: Path
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "ingest-data", knowledge_dir=REPO / "knowledge",
                        model={"models_dir": models_dir})  # type: ignore[call-arg]  # fmt: skip
    on_server = settings.model_copy(update={"retrieval": settings.retrieval.model_copy(
        update={"chroma_host": chroma_server.host, "chroma_port": chroma_server.port})})  # fmt: skip
    tracks = load_tracks(settings)
    index = open_index(on_server)  # one process ingests, the bot processes search
    for track in tracks.values():
        index.ingest(track)
    env = worker_env(tmp_path, postgres_url, chroma_server, models_dir)

    async def main() -> Run:
        workers = list(await asyncio.gather(*(start_worker(f"w{n}", env) for n in range(WORKERS))))
        run = Run(env, workers, random.Random(15))
        try:
            await drive(run, postgres_url, list(tracks.values()))
        finally:
            for worker in run.workers:
                if worker.alive and worker.process.stdin is not None:
                    worker.process.stdin.close()
            for worker in run.workers:
                await worker.process.wait()
        return run

    run = asyncio.run(main())

    # the killed process: killed with turns in flight, each then applied once (by it or by the process it went to)
    assert run.killed is not None and run.acked_by_killed and run.in_flight > 0
    for update, acks in run.acks.items():
        assert sum(ack["applied"] for ack in acks) <= 1, f"update {update} was applied by two processes"
    recorded = deliveries(postgres_url)
    assert len(recorded) == run.updates - run.refused  # every update recorded once (refused ones: not at all)
    assert sum(len(acks) > 1 for acks in run.acks.values()) > LEARNERS * TURNS * REDELIVERED / 2
    assert run.refused == 0

    # every learner's progress is what one process replaying the applied turns in order gives
    store = SqlProgressStore(tmp_path / "replay.sqlite3")
    engine = Engine(tracks, store)
    asyncio.run(replay(engine, run.applied))
    expected = expected_progress(store, run.applied)
    stored, questions = progress_in(postgres_url)
    assert sum(len(attempts) for _position, attempts, _results in stored.values()) > LEARNERS  # quizzes were taken
    different = sorted(learner for learner in expected if stored.get(learner) != expected[learner])
    assert not different, f"{len(different)} learners differ, e.g. {different[0]}: " \
                          f"{stored.get(different[0])} != {expected[different[0]]}"  # fmt: skip
    assert set(stored) == set(expected)
    store.close()

    # every question answered is logged once (one the killed process applied may have died before its answer)
    seen = Counter(f"{PLATFORM}:{turn.learner}" for turn in run.applied if turn.question and turn.seen)
    unseen = Counter(f"{PLATFORM}:{turn.learner}" for turn in run.applied if turn.question and not turn.seen)
    assert seen.total() > 0
    assert all(seen[learner] <= questions[learner] <= seen[learner] + unseen[learner] for learner in seen | questions)
