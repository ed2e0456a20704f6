"""Zero progress lost: the console tutor is killed (SIGKILL) at random points of a lesson and its quiz,
restarted, and must resume exactly where the last stored turn left it, ending with the same results."""

from __future__ import annotations

import asyncio
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bot.adapters.console import STATUS_MARK
from bot.core.engine import Engine
from bot.knowledge.reader import read_knowledge
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner

REPO = Path(__file__).resolve().parents[2]
KNOWLEDGE = REPO / "knowledge"
LEARNER = "console:kim"


def script() -> list[str]:
    """A lesson read to the end, its quiz answered (some wrong), and the next lesson begun."""
    track = next(r.track for r in read_knowledge(KNOWLEDGE) if r.track and r.track.id == "ai-foundations")
    lesson = track.lessons[0]
    lines = ["lesson distillation"] + ["next"] * (len(lesson.sections) + 1) + ["quiz"]
    for number, question in enumerate(lesson.quiz):
        chosen = question.correct_index if number % 3 else (question.correct_index + 1) % len(question.options)
        lines.append("abcdefghij"[chosen])
    return lines + ["next", "next", "next"]


def reference(lines: list[str], tmp_path: Path) -> tuple[list[str], SqlProgressStore]:
    """The status after each line (index 0: before any), from an engine that is never killed."""
    tracks = {r.track.id: r.track for r in read_knowledge(KNOWLEDGE) if r.track}
    store = SqlProgressStore(tmp_path / "reference.sqlite3")
    engine = Engine(tracks, store)
    learner = Learner(engine, "kim", "console", platform="console")
    statuses = [engine.status(LEARNER)]
    for line in lines:
        asyncio.run(learner.say_async(line))
        statuses.append(engine.status(LEARNER))
    assert len(set(zip(statuses, statuses[1:], strict=False))) == len(lines) and all(
        a != b for a, b in zip(statuses, statuses[1:], strict=False)
    )
    return statuses, store


class Tutor:
    """The console tutor as a child process; its output lines are read on a thread."""

    def __init__(self, data_dir: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.console_session", str(data_dir), str(KNOWLEDGE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_status(self, timeout: float = 60) -> str:
        """Wait for the next status line; return its text."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError("the tutor exited before printing a status line")
            at = line.find(STATUS_MARK)
            if at >= 0:
                return line[at + len(STATUS_MARK) :].strip()

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


def test_killed_at_random_points_the_tutor_loses_nothing(tmp_path: Path) -> None:
    lines = script()
    statuses, expected = reference(lines, tmp_path)
    rng = random.Random(20261127)
    data_dir = tmp_path / "data"
    done = 0  # lines whose turn is stored
    kills = committed_in_flight = 0
    while done < len(lines):
        tutor = Tutor(data_dir)
        resumed = tutor.next_status()
        # A restart resumes at the last stored turn: the one acknowledged, or the one in flight when killed.
        assert resumed in {statuses[done], statuses[min(done + 1, len(lines))]}, (done, resumed)
        if resumed != statuses[done]:
            done += 1
            committed_in_flight += 1
        run_for = rng.randint(1, 5)
        for _ in range(run_for):
            if done >= len(lines):
                break
            tutor.send(lines[done])
            if rng.random() < 0.4:  # kill while the turn is running (or just after it was stored)
                time.sleep(rng.uniform(0, 0.004))
                break
            assert tutor.next_status() == statuses[done + 1]
            done += 1
        tutor.kill()
        kills += 1
    print(f"{kills} kills, {committed_in_flight} turns stored just before a kill")
    assert kills >= 5
    final = SqlProgressStore(data_dir / "tutorbot.sqlite3")
    assert final.position(LEARNER) == expected.position(LEARNER)
    strip = lambda rows: [(r.track, r.lesson, r.score, r.total) for r in rows]  # noqa: E731
    assert strip(final.results(LEARNER)) == strip(expected.results(LEARNER))

    def answers(store):
        return [(a.question, a.chosen, a.correct) for a in store.attempts(LEARNER, "ai-foundations", "distillation", 1)]

    assert answers(final) == answers(expected)  # every answer stored once: none lost, none doubled
    assert [c.key for c in final.cards(LEARNER)] == [c.key for c in expected.cards(LEARNER)]
