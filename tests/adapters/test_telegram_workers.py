"""Telegram webhook workers end to end: two workers (each the real ``serve`` with its own webhook port and engine)
share one SQLite database, as two processes behind one HTTPS endpoint would. Updates are posted to either at
random, some to both; every learner's replies come once each, in order, and a worker that stops dead hands its
chats to the other once their leases expire."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import ClientSession

from bot.adapters.telegram import serve
from bot.config import TelegramSettings
from bot.core.engine import Engine
from bot.core.messages import Incoming, Reply
from bot.store.database import Database
from bot.store.inbox import Inbox
from bot.store.progress import SqlProgressStore
from tests.adapters.telegram_fake import SECRET_HEADER, TOKEN, FakeBotApi, User
from tests.adapters.test_telegram import FAST, TRACKS, free_port

SECRET = "workers-secret"
STEPS = ["/lesson distillation", "/next", "/next", "/next", "/next"]
SHOWN = ["Model distillation", "1/5", "2/5", "3/5", "4/5"]  # what each step's reply says, in order
LEARNERS = [User(300 + n, f"Learner{n}") for n in range(6)]


class StallingEngine(Engine):
    """An engine that stalls after the learner's turn number ``stall_after`` was saved and its replies sent (the
    worker then dies before it marks the update done: the next worker gets it again)."""

    def __init__(self, *args: object, stall_after: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stall_after = stall_after
        self.turns: dict[str, int] = {}
        self.stalled: set[str] = set()

    async def handle(self, incoming: Incoming) -> AsyncIterator[Reply]:
        async for reply in super().handle(incoming):
            yield reply
        self.turns[incoming.learner] = self.turns.get(incoming.learner, 0) + 1
        if self.turns[incoming.learner] >= self.stall_after:
            self.stalled.add(incoming.learner)
            await asyncio.Event().wait()  # until the worker is killed


@dataclass
class Worker:
    """One webhook worker process: its engine over the shared file, its webhook URL, its serve task."""

    url: str
    engine: Engine
    databases: list[Database]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task | None = None


async def start_worker(api: FakeBotApi, path: Path, lease: float, engine_class: type[Engine] = Engine,
                       **engine_options: object) -> Worker:  # fmt: skip
    port = free_port()
    databases = [Database(path), Database(path)]  # the engine's and the inbox's, as in 'tutorbot run telegram'
    engine = engine_class(TRACKS, SqlProgressStore(databases[0]), None, **engine_options)
    url = f"http://127.0.0.1:{port}/hook"
    config = TelegramSettings(token=TOKEN, base_url=api.base_url, webhook_url=url, webhook_port=port,  # type: ignore[arg-type]
                              webhook_secret=SECRET, webhook_lease_seconds=lease, webhook_poll_seconds=0.05)  # type: ignore[arg-type]  # fmt: skip
    worker = Worker(url, engine, databases)
    started = len(api.calls_to("setWebhook"))
    worker.task = asyncio.create_task(serve(engine, config, worker.stop, limits=FAST, inbox=Inbox(databases[1])))
    await api.until(lambda: worker.task.done() or len(api.calls_to("setWebhook")) > started, what="a worker")  # type: ignore[union-attr]
    return worker


async def stop_worker(worker: Worker) -> None:
    assert worker.task is not None
    worker.stop.set()
    if not worker.task.cancelled():
        await asyncio.wait_for(worker.task, 10)
    for database in worker.databases:
        database.close()


async def post(client: ClientSession, worker: Worker, update: dict) -> None:
    async with client.post(worker.url, json=update, headers={SECRET_HEADER: SECRET}) as response:
        assert response.status == 200


def pending(database: Database) -> int:
    row = database.fetch_one("SELECT COUNT(*) FROM telegram_updates WHERE done_at IS NULL")
    assert row is not None
    return int(row[0])


def replies_seen(api: FakeBotApi, user: User) -> list[str]:
    """Which step each message in the learner's chat answers (a message matching no step: itself, to show it)."""
    seen = []
    for shown in api.shown(user.id):
        first = shown.plain.split("\n", 1)[0]
        seen.append(next((step for step in reversed(SHOWN) if step in first), first))  # "n/5" lines name the lesson too
    return seen


def test_updates_spread_over_two_workers_are_handled_once_each_in_order_and_quiz_answers_cross_over(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.sqlite3"
    chooser = random.Random(15)

    async def scenario() -> None:
        async with FakeBotApi() as api, ClientSession() as client:
            workers = [await start_worker(api, path, lease=5.0), await start_worker(api, path, lease=5.0)]
            check = Database(path)
            try:
                queues = {user.id: [api.new_update({"message": api.new_message(user, text)}) for text in STEPS]
                          for user in LEARNERS}  # fmt: skip
                again = {user.id: chooser.randrange(len(STEPS)) for user in LEARNERS}  # posted to both workers
                while any(queues.values()):  # learners interleaved at random, each one's updates in order
                    user_id = chooser.choice([key for key, queue in queues.items() if queue])
                    step = len(STEPS) - len(queues[user_id])
                    update = queues[user_id].pop(0)
                    first, other = chooser.sample(workers, 2)
                    await post(client, first, update)
                    if step == again[user_id]:
                        await post(client, other, update)  # Telegram's retry reaching the other worker
                await api.until(lambda: pending(check) == 0 and all(len(api.shown(u.id)) >= len(STEPS)
                                                                    for u in LEARNERS), timeout=20, what="all replies")  # fmt: skip
                for user in LEARNERS:
                    assert replies_seen(api, user) == SHOWN, user
                    position = workers[0].engine.store.position(f"telegram:{user.id}")
                    assert (position.lesson, position.step, position.section) == ("distillation", "section", 3)

                # A quiz poll sent by one worker is answered through the other (and through both, twice).
                for user in LEARNERS:
                    await post(
                        client, chooser.choice(workers), api.new_update({"message": api.new_message(user, "/quiz")})
                    )
                await api.until(lambda: all(api.shown(u.id)[-1].poll for u in LEARNERS), timeout=20, what="polls")
                inbox = Inbox(check)
                for user in LEARNERS:
                    poll_id = api.shown(user.id)[-1].poll["id"]  # type: ignore[index]
                    await api.until(lambda poll_id=poll_id: inbox.poll(poll_id), what="the poll's ticket shared")
                    answer = api.new_update({"poll_answer": api.new_poll_answer(user, poll_id, 0)})
                    for worker in workers:
                        await post(client, worker, answer)
                await api.until(lambda: pending(check) == 0 and all(len(api.shown(u.id)) >= len(STEPS) + 3
                                                                    for u in LEARNERS), timeout=20, what="feedback")  # fmt: skip
                for user in LEARNERS:
                    feedback, next_poll = api.shown(user.id)[len(STEPS) + 1 :]
                    assert "Right!" in feedback.plain or "Not quite." in feedback.plain, feedback.plain
                    assert next_poll.poll is not None and next_poll.poll["question"].startswith("Question 2 of 10")
                    store = workers[1].engine.store
                    assert len(store.attempts(f"telegram:{user.id}", "ai-foundations", "distillation", 1)) == 1
            finally:
                check.close()
                for worker in workers:
                    await stop_worker(worker)

    asyncio.run(scenario())


def test_a_worker_that_dies_mid_run_hands_its_chats_over_when_their_leases_expire(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    lease = 0.6

    async def scenario() -> None:
        async with FakeBotApi() as api, ClientSession() as client:
            dying = await start_worker(api, path, lease, StallingEngine, stall_after=2)
            check = Database(path)
            try:
                for user in LEARNERS:
                    for text in STEPS:
                        await post(client, dying, api.new_update({"message": api.new_message(user, text)}))
                engine = dying.engine
                assert isinstance(engine, StallingEngine)
                await api.until(lambda: len(engine.stalled) == len(LEARNERS), what="every chat stalled mid-run")
                survivor = await start_worker(api, path, lease)
                await asyncio.sleep(3 * lease)  # the stalled worker is alive: it keeps renewing, nobody takes over
                assert all(len(api.shown(user.id)) == 2 for user in LEARNERS)
                assert dying.task is not None
                dying.task.cancel()  # killed: its leases stay behind until they expire
                await asyncio.gather(dying.task, return_exceptions=True)
                await api.until(lambda: pending(check) == 0 and all(len(api.shown(u.id)) >= len(STEPS)
                                                                    for u in LEARNERS), timeout=20, what="the rest")  # fmt: skip
                for user in LEARNERS:
                    assert replies_seen(api, user) == SHOWN, user
                    position = survivor.engine.store.position(f"telegram:{user.id}")
                    assert (position.lesson, position.section) == ("distillation", 3)
                await stop_worker(survivor)
            finally:
                check.close()
                for database in dying.databases:
                    database.close()

    asyncio.run(scenario())
