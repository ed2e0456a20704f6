"""Several bot processes on one database: non-model turns/s and latency, SQLite with 1 process against PostgreSQL
with 1, 2 and 3 processes, in one run, as ratios to PostgreSQL with 1 process.

The issue's target: with PostgreSQL and 2 processes, >= 1.6x the turns/s of 1 process with PostgreSQL, and p99
<= 20 ms. This prints figures; it asserts nothing.

Each process is ``tests/multiprocess_worker.py walk``: the real engine as the bot builds it (``build_engine``, no
model), with ``--learners`` walkers of ``bench/engine_turns.py`` (lessons, sections, quizzes, progress) taking
turns back to back, each turn with an update id as a webhook worker gets it. The processes start together after a
warm-up that is not counted; a turn's latency is from calling the engine to its last reply, inside the process;
turns/s is every process's measured turns over the measured seconds. Every setup gets a fresh database:
PostgreSQL on a durable server (fsync and synchronous commit on, the honest setting) started here, SQLite in a
temporary data dir. On a machine with few cores, the server and every bot process share them: a process more than
there are cores cannot add throughput, it only adds latency.

    python bench/multiprocess.py                            # SQLite 1, PostgreSQL 1, 2, 3 processes
    python bench/multiprocess.py --seconds 20 --learners 50
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, percentile  # noqa: E402
from bench.engine_turns import machine  # noqa: E402
from tests.postgres_server import PostgresServer, PostgresUnavailable  # noqa: E402


@dataclass
class Setup:
    name: str
    processes: int
    database_url: str | None  # None: SQLite in the processes' shared data dir


@dataclass
class Result:
    setup: Setup
    turns: int
    seconds: float
    latencies: list[float]
    lost: int

    @property
    def rate(self) -> float:
        return self.turns / self.seconds


def child_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    """This environment without host settings, and the bench's: the bundled tracks, the data dir, the database."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TUTORBOT_")}
    env.update(PYTHONPATH=str(ROOT), TUTORBOT_DATA_DIR=str(data_dir), TUTORBOT_KNOWLEDGE_DIR=str(ROOT / "knowledge"))
    if database_url is not None:
        env["TUTORBOT_DATABASE_URL"] = database_url
    return env


def run_setup(setup: Setup, args: argparse.Namespace, workdir: Path) -> Result:
    """Start the setup's processes, let them walk together, and gather what each measured."""
    data_dir = workdir / f"{setup.name}-{setup.processes}".replace(" ", "-")
    env = child_env(data_dir, setup.database_url)
    command = [sys.executable, "-m", "tests.multiprocess_worker", "walk", str(args.learners), str(args.seconds)]
    extra = ["--warm", str(args.warm)]
    processes = [subprocess.Popen([*command, f"p{n}", *extra], env=env, cwd=ROOT, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True) for n in range(setup.processes)]  # fmt: skip
    try:
        for process in processes:  # built, migrated, ready: then all start at once
            assert process.stdout is not None
            ready = process.stdout.readline()
            assert ready and "ready" in json.loads(ready), f"a bench process did not start ({setup.name})"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = [json.loads(process.communicate(timeout=args.warm + args.seconds + 120)[0]) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    latencies = [latency for report in reports for latency in report["latencies"]]
    return Result(setup, len(latencies), max(report["seconds"] for report in reports), latencies,
                  sum(report["lost"] for report in reports))  # fmt: skip


def print_table(results: list[Result]) -> None:
    base = next((r.rate for r in results if r.setup.name == "PostgreSQL" and r.setup.processes == 1), None)
    print(f"\n  {'setup':<28} {'processes':>9} {'turns':>7} {'turns/s':>8} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7} {'ratio to PG-1':>13}")  # fmt: skip
    for r in results:
        marks = " ".join(f"{percentile(r.latencies, mark):7.2f}" for mark in (50, 95, 99))
        ratio = f"{r.rate / base:12.2f}x" if base else "n/a"
        print(f"  {r.setup.name:<28} {r.setup.processes:>9} {r.turns:>7} {r.rate:8.0f} {marks} "
              f"{max(r.latencies):7.2f} {ratio:>13}")  # fmt: skip
    lost = sum(r.lost for r in results)
    if lost:
        print(f"  (the walkers lost their way {lost} times and typed 'start')")
    two = next((r for r in results if r.setup.name == "PostgreSQL" and r.setup.processes == 2), None)
    if base and two:
        print(f"\n  target: PostgreSQL 2 processes >= 1.6x PostgreSQL 1 process, p99 <= 20 ms; got "
              f"{two.rate / base:.2f}x, p99 {percentile(two.latencies, 99):.2f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=50, help="concurrent walkers in each process")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds of each setup")
    parser.add_argument("--warm", type=float, default=3.0, help="seconds of turns before measuring (not counted)")
    parser.add_argument("--processes", default="1,2,3", help="PostgreSQL process counts, comma-separated")
    args = parser.parse_args()
    counts = [int(count) for count in args.processes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="tutorbot-bench-multiprocess-"))
    print(f"multi-process turn benchmark on {machine()}")
    print(f"  {os.cpu_count()} cores shared by the PostgreSQL server and every bot process; {args.learners} walkers "
          f"per process, {args.warm:g} s warm-up, {args.seconds:g} s measured; databases under {workdir}")  # fmt: skip
    results = [run_setup(Setup("SQLite", 1, None), args, workdir)]
    try:
        server = PostgresServer(durable=True)
    except PostgresUnavailable as missing:
        print(f"  PostgreSQL setups skipped: {missing}")
        print_table(results)
        return
    with server:
        for count in counts:
            results.append(run_setup(Setup("PostgreSQL", count, server.create_database()), args, workdir))
    print_table(results)


if __name__ == "__main__":
    main()
