"""Load bench: 1,000 simulated learners on Telegram and 1,000 on Discord, through the real platform clients.

The real python-telegram-bot and discord.py adapters serve the real engine and SQLite store (the scripted model
answers questions, no model file) in a process of their own, against the local fake Telegram Bot API and fake
Discord (REST and gateway) that the adapter tests use, run in this process with the learners. Each learner
walks a script (``bench/load_script.py``): start, pick the bundled track and the next lesson, read its sections
(sometimes a step back; some skim to the quiz), ask the model a question or two, take the quiz by pressing
buttons (native quiz polls on Telegram), check their progress, keep going; with a random think time between
turns (5-15 s: about 85 turns/s from 1,000 learners), so all learners' turns interleave. Telegram learners use
private chats; Discord learners are users of one server, spread over four channels, and a third of them use
DMs, all on one bot connection.

Reported per platform, with the targets that decide the exit status:

- errors (target 0): turns that did not show what they should or nothing within the timeout, error answers
  of the fake (including a Discord interaction answered after its 3 s), the bot's log records at WARNING or
  above, button presses and interactions left unanswered, a bot that did not stop cleanly;
- progress (target: every learner): each learner's stored position and lesson results, read from the
  database after the bot stopped, equal what the learner did;
- RSS growth over the second half of the run (target < 5%): the bot process's RSS, sampled every 0.5 s; the
  median over the last tenth of the run against the median over the middle tenth (the first half is warm-up).

Also printed: turns/s, and the latency of non-model turns (p50, p99, max) from the fake delivering the update
(a ``getUpdates`` answer, a gateway event) to the arrival of the turn's last reply at the fake; questions'
latency is apart (a growing answer is edited at most once a second, so it is about a second); the CPU time
of the bot and of this process. Half-way and at the end the bot counts its live objects by type (after a
full garbage collection, one pause) and measures the structures known to grow (send windows, the update
queue, the question limiter, prompts read ahead); what grew is listed. ``--tracemalloc`` makes the bot list
the source lines whose allocations grew in the second half; ``--profile`` writes a cProfile of the bot
process (``python -m pstats FILE``).

    python bench/load.py                                   # both platforms, 1,000 learners each, 3 minutes in all
    python -m bench.load --platform telegram --seconds 60
    python bench/load.py --think 2,8                       # brisk learners: about 180 turns/s each platform
    python bench/load.py --platform telegram --webhook     # Telegram's updates posted to the bot's webhook
    python bench/load.py --learners 200 --tracemalloc
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import new_workdir, percentile  # noqa: E402
from bench.load_run import Options, PlatformRun, run_platform  # noqa: E402

GROWTH_TARGET = 0.05
SHOWN = 8  # problems listed per kind


def ms(values: list[float], mark: int) -> str:
    return f"{percentile(values, mark) * 1000:8.1f}" if values else f"{'n/a':>8}"


def print_table(runs: list[PlatformRun]) -> None:
    """One row per platform, then the problems behind any error."""
    print(f"\n  {'platform':<9} {'learners':>8} {'turns':>6} {'turns/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'questions':>9} {'q p50 s':>7} {'errors':>6} {'progress ok':>11} {'RSS MB mid→end':>15} "
          f"{'growth':>7} {'CPU s bot/bench':>15}")  # fmt: skip
    for run in runs:
        lat, questions = run.latencies, run.model_latencies
        q50 = f"{percentile(questions, 50):7.2f}" if questions else f"{'n/a':>7}"
        middle, end = run.rss_at(0.45, 0.55), run.rss_at(0.9, 1.0)
        rss = f"{middle:.1f}→{end:.1f}" if middle and end else "n/a"
        growth = f"{run.growth * 100:+6.1f}%" if run.growth is not None else "n/a"
        ok = run.learners - len(run.mismatches) - run.derailed
        cpu = f"{run.cpu[0]:.0f}/{run.cpu[1]:.0f}" if run.cpu else "n/a"
        print(f"  {run.platform:<9} {run.learners:>8} {run.turns:>6} {run.turns / run.seconds:>7.1f} {ms(lat, 50)} "
              f"{ms(lat, 99)} {max(lat, default=0) * 1000:>8.1f} {len(questions):>9} {q50} {run.errors:>6} "
              f"{ok:>5}/{run.learners:<5} {rss:>15} {growth:>7} {cpu:>15}")  # fmt: skip
    for run in runs:
        _print_problems(run)


def _print_problems(run: PlatformRun) -> None:
    kinds: dict[str, list[float]] = {}
    for kind, latency in run.samples:
        kinds.setdefault(kind, []).append(latency)
    print(
        f"\n  {run.platform}, by kind of turn (ms):  "
        + "  ".join(f"{kind} {ms(v, 50).strip()}/{ms(v, 99).strip()} (n={len(v)})" for kind, v in kinds.items())
    )
    sections = [("turns that failed", run.failures), ("error answers of the fake", run.refused),
                ("log records of the fake at WARNING or above", run.fake_log),
                ("bot log records at WARNING or above", run.bot.get("first", [])),
                ("learners whose stored progress differs", run.mismatches),
                ("learners not compared", [f"{run.derailed} stopped after a failed turn"] if run.derailed else []),
                ("structures known to grow, half-way -> end", [f"{name}: {' -> '.join(map(str, sizes))}"
                                                               for name, sizes in run.bot.get("structures", {}).items()]),
                ("objects that grew in number in the bot in the second half", run.bot.get("census", [])),
                ("what grew in the bot in the second half (tracemalloc)", run.bot.get("growth", []))]  # fmt: skip
    if run.abandoned:
        sections.append(("calls the bot dropped half-sent (cancelled; not errors)",
                         [f"{method}: {count}" for method, count in run.abandoned.items()]))  # fmt: skip
    if run.unanswered:
        sections.append(("unanswered", [f"{run.unanswered} button presses or interactions were never answered"]))
    if run.bot.get("exit_code"):
        sections.append(("bot exit", [f"the bot exited with status {run.bot['exit_code']}"]))
    if run.bot.get("warnings", 0) > len(run.bot.get("first", [])):
        sections.append(("more", [f"{run.bot['warnings']} log records at WARNING or above in all"]))
    for title, lines in sections:
        if lines:
            print(f"  {run.platform}: {title} ({len(lines)}):")
            for line in lines[:SHOWN]:
                print(f"    {line}")


def failed_targets(runs: list[PlatformRun]) -> list[str]:
    """The targets a run missed, in words."""
    missed = []
    for run in runs:
        if run.errors:
            missed.append(f"{run.platform}: {run.errors} errors (target 0)")
        if run.mismatches:
            missed.append(f"{run.platform}: {len(run.mismatches)} learners' progress differs (target 0)")
        if run.growth is not None and run.growth >= GROWTH_TARGET:
            missed.append(f"{run.platform}: RSS grew {run.growth:.1%} over the second half (target < 5%)")
    return missed


async def main_async(args: argparse.Namespace) -> int:
    platforms = ["telegram", "discord"] if args.platform == "both" else [args.platform]
    seconds = args.seconds / len(platforms)
    workdir = new_workdir()
    print(f"load bench: {args.learners} learners per platform, {seconds:.0f} s each, think {args.think[0]:g}-"
          f"{args.think[1]:g} s; {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}; files in {workdir}")  # fmt: skip
    runs = []
    for platform in platforms:
        options = Options(args.learners, seconds, workdir, args.think, args.timeout, args.seed,
                          child=not args.in_process, trace=args.tracemalloc, profile=args.profile,
                          send_limits=not args.no_send_limits, webhook=args.webhook)  # fmt: skip
        runs.append(await run_platform(platform, options))
        print(f"  {platform}: done ({runs[-1].turns} turns)", flush=True)
    print_table(runs)
    missed = failed_targets(runs)
    print("\n" + ("\n".join(f"TARGET MISSED: {line}" for line in missed) if missed else "every target met"))
    return 1 if missed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=1000, help="simulated learners per platform")
    parser.add_argument("--seconds", type=float, default=180, help="seconds of turns in all (split between platforms)")
    parser.add_argument("--platform", choices=("telegram", "discord", "both"), default="both")
    parser.add_argument("--think", default="5,15", help="a learner's think time between turns, MIN,MAX seconds")
    parser.add_argument("--timeout", type=float, default=30, help="seconds a turn may take before it is an error")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tracemalloc", action="store_true", help="list what grew in the bot (slows it down)")
    parser.add_argument("--no-send-limits", action="store_true", help="Telegram without its per-chat send limits")
    parser.add_argument("--webhook", action="store_true", help="Telegram by webhook instead of long polling")
    parser.add_argument("--profile", action="store_true", help="cProfile the bot into <files>/<platform>/bot.prof")
    parser.add_argument("--in-process", action="store_true", help="run the bot in this process (no RSS figures)")
    args = parser.parse_args()
    low, high = (float(value) for value in args.think.split(","))
    args.think = (low, high)
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
