"""Child processes for the fault tests (``tests/integration/test_faults.py``), which kill or race them.

``python -m tests.fault_child ingest STOP``: the real ``tutorbot ingest`` (settings from ``TUTORBOT_*``
variables), which prints ``STOPPED`` and waits to be killed when it reaches ``STOP``:

- ``embed:N``: after the N-th batch of embeddings (its chunks are in Chroma, the rest are not);
- ``publish``: after the index is updated, before the track's published copy is written;
- ``replace``: inside the atomic write of the published copy (the temporary file is whole, not yet renamed).

``python -m tests.fault_child turns DB LEARNER N``: the real engine and SQLite store on the bundled track,
one learner opening a lesson and then moving ``next``/``back`` N times; prints each reply that is not a move.

``python -m tests.fault_child hold DB SECONDS TIMES``: holds the database's write lock for SECONDS, TIMES times.

The patches live here, in a test-only script: production code has no hooks for them.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def stop_here() -> None:
    """Tell the parent where this process is, then wait for its SIGKILL."""
    print("STOPPED", flush=True)
    while True:
        time.sleep(60)


def ingest(stop: str) -> None:
    from bot import cli
    from bot.knowledge import published
    from bot.knowledge.embedder import OfflineMiniLM

    if stop.startswith("embed:"):
        limit, calls = int(stop.partition(":")[2]), [0]
        embed = OfflineMiniLM.embed

        def counted(self: OfflineMiniLM, texts: list[str]) -> list[list[float]]:
            vectors = embed(self, texts)
            if calls[0] == limit:  # the previous batch is upserted by now: stop before this one is
                stop_here()
            calls[0] += 1
            return vectors

        OfflineMiniLM.embed = counted  # type: ignore[method-assign]
    elif stop == "publish":
        published.PublishedTracks.save = lambda *_args, **_kwargs: stop_here()  # type: ignore[method-assign]
    elif stop == "replace":
        replace = os.replace

        def stalled(source: Any, target: Any) -> None:
            if str(target).endswith(".json") and not Path(target).name.startswith("_"):
                stop_here()
            replace(source, target)

        published.os.replace = stalled  # type: ignore[assignment]
    cli.app(["ingest"], standalone_mode=True)


def turns(database: str, learner: str, count: int) -> None:
    from bot.core.engine import Engine
    from bot.knowledge.reader import read_knowledge
    from bot.store.progress import SqlProgressStore
    from tests.engine_driver import Learner

    tracks = {r.track.id: r.track for r in read_knowledge(REPO / "knowledge") if r.track}
    engine = Engine(tracks, SqlProgressStore(database))
    driver = Learner(engine, learner, f"dm-{learner}")
    driver.say("lesson distillation")
    for n in range(count):
        driver.say("next" if n % 2 == 0 else "back")
        for reply in driver.last:
            if "try" in reply.text and "again" in reply.text:
                print(f"REPLY {reply.text}", flush=True)
    print("DONE", flush=True)


def hold(database: str, seconds: float, times: int) -> None:
    connection = sqlite3.connect(database, isolation_level=None, timeout=30)
    for _ in range(times):
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT OR IGNORE INTO activity (learner, day) VALUES ('holder', date('now'))")
        print("HOLDING", flush=True)
        time.sleep(seconds)
        connection.execute("COMMIT")
        time.sleep(seconds / 4)
    print("DONE", flush=True)


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "ingest":
        ingest(arguments[0])
    elif command == "turns":
        turns(arguments[0], arguments[1], int(arguments[2]))
    elif command == "hold":
        hold(arguments[0], float(arguments[1]), int(arguments[2]))
    else:
        raise SystemExit(f"unknown command {command}")
