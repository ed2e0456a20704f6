"""Engine turn speed: non-model turn latency and throughput, and navigation delay while the model answers.

The issue's targets: a non-model turn p99 ≤ 20 ms; ≥ 500 turns/s with 100 concurrent learners on this
machine; a navigation turn delayed ≤ 50 ms by a concurrent model answer. This prints figures; it asserts
nothing.

1. Non-model turns. The real ``Engine`` over the bundled tracks, a real ``SqlProgressStore`` (the WAL
   file, in a throw-away data dir) and no model. Simulated learners, asyncio tasks in one event loop, each
   walk a script turn after turn: start, open the track, open a lesson, start reading, next through every
   section (one step back on the way), take the quiz answering every question, look at their progress,
   resume and keep going to the next lesson, and around the track again. Buttons are pressed by their
   action ids; some turns are typed ("start", "next", "progress"). Run with 1, 10 and 100 learners, each on
   a fresh database. A turn's latency is from calling ``Engine.handle`` until its last reply, so it includes
   the SQLite commit; throughput is turns / wall time. A navigation turn never suspends (the store is
   synchronous), so many learners show up in throughput, not in one turn's latency. Turns run back to back
   here, with warm CPU caches; a lone turn after the process sat idle takes several times longer (part 2's
   baseline shows that case).

2. Navigation while the model answers. The real answerer: the bundled track ingested into a fresh Chroma
   index, the installed default chat model (loaded and warmed up with one question first). Learner B
   presses Back / Next on a fixed 20 ms schedule, first with nothing else running (baseline), then while
   learner A's questions are answered by the model. B's delay is measured from the instant the press was
   due to B's last reply, so a stalled event loop counts, not only the turn's own work.

Both parts also count the garbage collector's full passes while measuring: each stops the event loop, and
in a process that has loaded the index and the model one takes tens of milliseconds. The bot therefore
freezes what is alive after start-up (``bot.app.settle_memory``), and so does this bench; ``--no-freeze-gc``
shows the difference.

    python bench/engine_turns.py                   # both parts (the model part takes a few minutes)
    python -m bench.engine_turns                   # the same
    python bench/engine_turns.py --no-model        # non-model turns only
    python bench/engine_turns.py --turns 5000 --levels 1,10,100,300
    python bench/engine_turns.py --no-freeze-gc    # without the bot's gc.freeze() at start-up
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, new_workdir, percentile, scratch_settings  # noqa: E402
from bot.app import build_chat_model, build_engine, load_tracks, settle_memory  # noqa: E402
from bot.config import Settings  # noqa: E402
from bot.core.engine import Engine  # noqa: E402
from bot.core.lessons import Track  # noqa: E402
from bot.core.messages import Incoming, Reply  # noqa: E402
from bot.core.ports import ChatMessage, Generation  # noqa: E402
from bot.knowledge.index import LessonIndex  # noqa: E402
from bot.llm.llama import LlamaChatModel  # noqa: E402
from bot.models.catalog import EMBEDDER_FILES, chat_model_file, chat_model_path  # noqa: E402
from bot.models.pull import is_installed  # noqa: E402
from bot.store.progress import SqlProgressStore  # noqa: E402

EVAL_FILE = ROOT / "bench" / "eval" / "ai-foundations.yaml"
WARM_UP_TURNS = 300


# ------------------------------------------------------------ figures


def ms(seconds: float) -> float:
    return seconds * 1000


def spread(values: list[float], marks: Sequence[int] = (50, 95, 99)) -> str:
    """``p50 … p95 … max …`` of latencies in ms."""
    if not values:
        return "n/a"
    parts = [f"p{mark} {percentile(values, mark):6.2f}" for mark in marks]
    return "  ".join(parts) + f"  max {max(values):7.2f} ms  (n={len(values)})"


def file_size_mb(path: Path) -> float:
    """The database and its WAL and shared-memory files together, in MB."""
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(f.stat().st_size for f in files if f.is_file()) / 1e6


class GcWatch:
    """Times the garbage collector's full (generation 2) passes while open: each one stops the event loop."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif info["generation"] == 2:
            self.pauses.append(ms(time.perf_counter() - self._started))

    def brief(self) -> str:
        return f"{len(self.pauses)}, {max(self.pauses):.1f} ms" if self.pauses else "0"


def freeze_gc() -> None:
    """What the bot does once started: move every object alive now out of the collector's reach."""
    settle_memory()


def machine() -> str:
    """CPUs, Python and SQLite versions, and the load when the run starts (other work skews the figures)."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}; load average {load}")  # fmt: skip


# ------------------------------------------------------------ a learner walking the script


def incoming(user_id: str, text: str | None = None, action: str | None = None) -> Incoming:
    return Incoming("bench", user_id, f"dm-{user_id}", text=text, action=action, display_name=user_id.title())


def find(replies: list[Reply], prefix: str) -> str | None:
    """The action of the last replies' first button whose label starts with ``prefix``."""
    for reply in replies:
        for row in reply.buttons:
            for button in row:
                if button.label.startswith(prefix):
                    return button.action
    return None


@dataclass
class Walker:
    """A learner going through the tracks turn by turn, choosing each turn from the replies it last got."""

    user_id: str
    tracks: list[Track]
    rng: random.Random
    last: list[Reply] = field(default_factory=list)
    nexts: int = 0  # Next presses in the current lesson
    stepped_back: bool = False
    checked_progress: bool = False
    lost: int = 0  # turns where the script did not recognise the replies (should stay 0)

    def next_turn(self) -> tuple[str, Incoming]:
        """The kind of the next turn and the turn itself."""
        kind, text, action = self._choose()
        return kind, incoming(self.user_id, text, action)

    def _choose(self) -> tuple[str, str | None, str | None]:
        last = self.last
        quiz = next((reply.quiz for reply in last if reply.quiz), None)
        if not last:
            return "start", "start", None
        if quiz is not None:  # mostly right; a wrong answer makes a review card, as it does for real learners
            wrong = [i for i in range(len(quiz.actions)) if i != quiz.correct_index]
            chosen = quiz.correct_index if self.rng.random() < 0.75 or not wrong else self.rng.choice(wrong)
            return "answer", None, quiz.actions[chosen]
        if action := find(last, "Start reading"):
            self.nexts, self.stepped_back, self.checked_progress = 0, False, False
            return "start reading", None, action
        if action := find(last, "Take the quiz") or find(last, "Finish the lesson"):
            return "quiz", None, action
        if action := find(last, "Next ▸"):
            self.nexts += 1
            if self.nexts == 2 and not self.stepped_back:
                self.stepped_back = True
                return "back", None, find(last, "◂ Back")
            return ("next", "next", None) if self.nexts % 4 == 0 else ("next", None, action)
        if find(last, "Retake the quiz") or find(last, "Keep going"):  # the lesson's result
            if not self.checked_progress:
                self.checked_progress = True
                return "progress", "progress", None
            if action := find(last, "Keep going"):
                return "keep going", None, action
            return "home", None, find(last, "Tracks")
        for track in self.tracks:  # home: pick a track
            if action := find(last, track.title[:60]):
                return "track", None, action
        if find(last, "◂ Tracks"):  # a track's lessons: start with the first
            return "lesson", None, find(last, "1")
        if action := find(last, "Resume"):  # the progress page
            return "resume", None, action
        self.lost += 1
        return "start", "start", None


# ------------------------------------------------------------ part 1: non-model turns


@dataclass
class LevelResult:
    learners: int
    turns: int
    seconds: float
    latencies: list[float]
    by_kind: dict[str, list[float]]
    db_mb: float
    lost: int
    full_gcs: str


async def walk(engine: Engine, walker: Walker, turns: int, out: list[tuple[str, float]]) -> None:
    """``turns`` turns of one learner, one after another, each timed until its last reply."""
    for _ in range(turns):
        kind, turn = walker.next_turn()
        started = time.perf_counter()
        walker.last = [reply async for reply in engine.handle(turn)]
        out.append((kind, ms(time.perf_counter() - started)))
        await asyncio.sleep(0)  # let the other learners take their turns in between


async def run_level(tracks: dict[str, Track], db_path: Path, learners: int, turns: int, seed: int) -> LevelResult:
    """``turns`` turns in all, shared by ``learners`` concurrent learners, on a fresh database."""
    store = SqlProgressStore(db_path)
    engine = Engine(tracks, store)
    walkers = [Walker(f"l{learners}-{n}", list(tracks.values()), random.Random(seed + n)) for n in range(learners)]
    per_learner = max(1, turns // learners)
    samples: list[tuple[str, float]] = []
    started = time.perf_counter()
    with GcWatch() as watch:
        await asyncio.gather(*(walk(engine, walker, per_learner, samples) for walker in walkers))
    seconds = time.perf_counter() - started
    store.close()
    by_kind: dict[str, list[float]] = {}
    for kind, latency in samples:
        by_kind.setdefault(kind, []).append(latency)
    return LevelResult(learners, len(samples), seconds, [latency for _kind, latency in samples], by_kind,
                       file_size_mb(db_path), sum(walker.lost for walker in walkers), watch.brief())  # fmt: skip


def print_levels(results: list[LevelResult]) -> None:
    print(f"\n  {'learners':>8}  {'turns':>6}  {'p50 ms':>7}  {'p95 ms':>7}  {'p99 ms':>7}  {'max ms':>7}  "
          f"{'turns/s':>8}  {'db MB':>6}  full GCs (n, longest)")  # fmt: skip
    for r in results:
        marks = "  ".join(f"{percentile(r.latencies, mark):7.2f}" for mark in (50, 95, 99))
        print(f"  {r.learners:>8}  {r.turns:>6}  {marks}  {max(r.latencies):7.2f}  {r.turns / r.seconds:8.0f}  "
              f"{r.db_mb:6.2f}  {r.full_gcs}")  # fmt: skip
    lost = sum(r.lost for r in results)
    if lost:
        print(f"  (the script lost its way {lost} times and typed 'start')")


def print_kinds(result: LevelResult) -> None:
    print(f"\n  by kind of turn, {result.learners} learners:")
    for kind, values in sorted(result.by_kind.items(), key=lambda item: -percentile(item[1], 99)):
        print(f"    {kind:14s} {spread(values)}")


async def non_model_turns(args: argparse.Namespace, workdir: Path) -> None:
    settings = Settings(data_dir=workdir / "data", knowledge_dir=ROOT / "knowledge")
    tracks = load_tracks(settings)
    lessons = sum(len(track.lessons) for track in tracks.values())
    print(f"\n1. non-model turns: {len(tracks)} track(s), {lessons} lessons, no model; "
          f"databases under {workdir}")  # fmt: skip
    await run_level(tracks, workdir / "warm-up" / "progress.sqlite3", 1, WARM_UP_TURNS, args.seed)  # not counted
    if args.freeze_gc:
        freeze_gc()
    results = []
    for learners in args.levels:
        db_path = workdir / f"learners-{learners}" / "progress.sqlite3"
        results.append(await run_level(tracks, db_path, learners, args.turns, args.seed))
    print_levels(results)
    print_kinds(results[-1])


# ------------------------------------------------------------ part 2: navigation while the model answers


@dataclass
class CountingModel:
    """Wraps the chat model and counts the pieces (~tokens) it writes."""

    inner: object
    pieces: int = 0

    def stream(self, messages: Sequence[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        return self._count(self.inner.stream(messages, generation))

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        self.inner.warm(messages)

    async def next_word_probabilities(self, messages: Sequence[ChatMessage], words: Sequence[str]) -> dict[str, float]:
        return await self.inner.next_word_probabilities(messages, words)

    def close(self) -> None:
        self.inner.close()

    async def _count(self, pieces: AsyncIterator[str]) -> AsyncIterator[str]:
        async for piece in pieces:
            self.pieces += 1
            yield piece


@dataclass
class Navigator:
    """Learner B: in a lesson's second section, pressing Back and Next in turn."""

    engine: Engine
    user_id: str = "nav-b"
    last: list[Reply] = field(default_factory=list)

    async def turn(self, text: str | None = None, action: str | None = None) -> None:
        self.last = await self.engine.replies(incoming(self.user_id, text, action))

    async def open_lesson(self, lesson: str) -> None:
        await self.turn(f"lesson {lesson}")
        await self.turn(action=find(self.last, "Start reading"))
        await self.turn(action=find(self.last, "Next ▸"))

    async def step(self) -> None:
        """Back from the second section, or Next from the first."""
        at_first = any("· 1/" in reply.text for reply in self.last)
        await self.turn(action=find(self.last, "Next ▸" if at_first else "◂ Back"))


@dataclass
class Delays:
    response: list[float] = field(default_factory=list)  # from when the press was due to the last reply, ms
    handle: list[float] = field(default_factory=list)  # from calling handle to the last reply, ms


async def navigate(nav: Navigator, period: float, keep_going: Callable[[int], bool], delays: Delays) -> None:
    """B's turns on a fixed schedule (one every ``period`` s) while ``keep_going(turns so far)``."""
    due = time.perf_counter()
    done = 0
    while keep_going(done):
        due += period
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        started = time.perf_counter()
        await nav.step()
        ended = time.perf_counter()
        delays.response.append(ms(ended - due))
        delays.handle.append(ms(ended - started))
        done += 1


async def while_answering(engine: Engine, nav: Navigator, counting: CountingModel, questions: list[dict],
                          period: float) -> Delays:  # fmt: skip
    """B's delays while A's questions are answered one after another (each printed as it finishes)."""
    delays = Delays()
    for item in questions:
        await engine.replies(incoming("ask-a", f"lesson {item['lesson']}"))
        pieces_before = counting.pieces
        asking = asyncio.create_task(ask(engine, "ask-a", item["question"]))
        await navigate(nav, period, lambda _done, asking=asking: not asking.done(), delays)
        seconds, text = await asking
        shown = text.splitlines()[0][:70] if text else ""
        print(f"  A: {seconds:5.1f} s, {counting.pieces - pieces_before:3d} model pieces  "
              f"{item['question'][:50]!r} -> {shown!r}")  # fmt: skip
    return delays


async def ask(engine: Engine, user_id: str, question: str) -> tuple[float, str]:
    """A's question through the engine: seconds until the last reply, and that reply's text."""
    started = time.perf_counter()
    replies = await engine.replies(incoming(user_id, question))
    return time.perf_counter() - started, replies[-1].text if replies else ""


def eval_questions(count: int) -> list[dict]:
    """Answerable questions of the bundled track, one lesson after another (the eval set's order)."""
    items = [item for item in yaml.safe_load(EVAL_FILE.read_text(encoding="utf-8")) if item["kind"] == "answerable"]
    by_lesson: dict[str, list[dict]] = {}
    for item in items:
        by_lesson.setdefault(item["lesson"], []).append(item)
    spread_out = [group[n] for n in range(max(map(len, by_lesson.values()))) for group in by_lesson.values()
                  if n < len(group)]  # fmt: skip
    return spread_out[: count + 1]


def missing_models(settings: Settings) -> list[str]:
    """What the model part needs and is not installed."""
    models_dir = settings.models_dir
    missing = [str(models_dir / f.relative_path) for f in EMBEDDER_FILES if not is_installed(f, models_dir)]
    chat = chat_model_file(settings.model.chat)
    path = chat_model_path(settings.model.chat, models_dir)
    if (chat is not None and not is_installed(chat, models_dir)) or (chat is None and not path.is_file()):
        missing.append(str(path))
    return missing


async def model_turns(args: argparse.Namespace, workdir: Path) -> None:
    settings = scratch_settings(workdir / "model")
    settings.knowledge_dir = ROOT / "knowledge"
    settings.model.chat = args.model
    missing = missing_models(settings)
    if missing:
        print(f"\n2. navigation while the model answers: skipped, not installed: {', '.join(missing)} "
              "(run 'tutorbot models pull')")  # fmt: skip
        return
    started = time.perf_counter()
    engine, model, counting = await model_engine(settings)
    loaded = time.perf_counter() - started
    print(f"\n2. navigation while the model answers: model {args.model} (index and model ready in {loaded:.1f} s, "
          f"{settings.model.n_threads or os.cpu_count()} threads), B presses every {args.period_ms:g} ms")  # fmt: skip

    warm_up, *questions = eval_questions(args.questions)
    await engine.replies(incoming("ask-a", f"lesson {warm_up['lesson']}"))
    seconds, _text = await ask(engine, "ask-a", warm_up["question"])
    print(f"  warm-up question answered in {seconds:.1f} s, {counting.pieces} model pieces (not counted)")

    if args.freeze_gc:
        freeze_gc()
    nav = Navigator(engine)
    await nav.open_lesson(questions[0]["lesson"])
    for _ in range(20):  # warm B's path up too
        await nav.step()
    period = args.period_ms / 1000
    baseline = Delays()
    await navigate(nav, period, lambda done: done < args.baseline, baseline)

    with GcWatch() as watch:
        during = await while_answering(engine, nav, counting, questions, period)
    print_delays(baseline, during, watch)
    model.close()


async def model_engine(settings: Settings) -> tuple[Engine, LlamaChatModel, CountingModel]:
    """The engine with the real answerer: the bundled tracks ingested into a fresh index, the model loaded."""
    index = LessonIndex.from_settings(settings)
    for track in load_tracks(settings).values():
        index.ingest(track)
    model = build_chat_model(settings)
    counting = CountingModel(model)
    engine = build_engine(settings, index=index, model=counting)
    await asyncio.to_thread(lambda: model.llm)  # load the weights before timing anything
    return engine, model, counting


def print_delays(baseline: Delays, during: Delays, watch: GcWatch) -> None:
    print("\n  B's navigation turn, due -> last reply (what the learner waits for):")
    for name, delays in (("baseline", baseline), ("while A is asked", during)):
        late = sum(value > 50 for value in delays.response)
        print(f"    {name:<17} {spread(delays.response, (50, 95, 99))}; over 50 ms: {late}")
    print("  B's navigation turn, handle -> last reply (the turn's own time):")
    print(f"    baseline          {spread(baseline.handle, (50, 95, 99))}")
    print(f"    while A is asked  {spread(during.handle, (50, 95, 99))}")
    added = percentile(during.response, 95) - percentile(baseline.response, 95)
    print(f"  added delay (p95 while asked - p95 baseline, due -> last reply): {added:.2f} ms; "
          f"worst turn while asked: {max(during.response):.2f} ms")  # fmt: skip
    print(f"  full garbage collections while A was asked (n, longest): {watch.brief()}")


# ------------------------------------------------------------ main


async def main_async(args: argparse.Namespace) -> None:
    workdir = new_workdir()
    print(f"engine turn benchmark on {machine()}")
    await non_model_turns(args, workdir)
    if args.no_model:
        print("\n2. navigation while the model answers: skipped (--no-model)")
    else:
        await model_turns(args, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=6000, help="turns per concurrency level, all learners together")
    parser.add_argument("--levels", default="1,10,100", help="numbers of concurrent learners, comma-separated")
    parser.add_argument("--seed", type=int, default=7, help="seed of the learners' quiz answers")
    parser.add_argument("--no-model", action="store_true", help="skip the part with the real chat model")
    parser.add_argument("--model", default=Settings().model.chat, help="chat model setting (default: the setting)")
    parser.add_argument("--questions", type=int, default=4, help="questions A asks while B navigates")
    parser.add_argument("--period-ms", type=float, default=20.0, help="time between B's presses")
    parser.add_argument("--baseline", type=int, default=250, help="B's turns measured with no model work")
    parser.add_argument(
        "--no-freeze-gc",
        dest="freeze_gc",
        action="store_false",
        help="skip the bot's gc.freeze() after set-up (to see the collector's pauses)",
    )
    args = parser.parse_args()
    args.levels = [int(level) for level in args.levels.split(",")]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
