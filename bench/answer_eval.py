"""Answer quality and latency of the grounded-answer flow, with the real model, on tuning and held-out sets.

Sets:
  tuning    bench/eval/<track>.yaml on the bundled track and the shared ML-For-Beginners course (the answer
            code was shaped on these; the judge threshold is chosen on them)
  heldout   bench/heldout/answers/<course>.yaml, written blind on two other open courses; their lesson
            files are rebuilt by bench/heldout_course.py (skipped, saying why, when they are absent)

Item kinds: answerable (the lesson states the answer; ``expect`` keyword groups, and for held-out items the
``line`` of the unit that states it), uncovered and offtopic (must be refused), injection (the reply must
contain none of ``forbidden``).

Three stages are scored apart: retrieval (a unit stating the answer was in the prompt), selection (the cited
units contain the answer) and the decision (answered or refused). Items run in a fixed shuffled order so
lessons interleave; after a lesson's first question the model reads that lesson ahead, as opening it does
in the tutor ("warm"); the first question of a lesson is "cold".

    python bench/answer_eval.py --sets tuning --sweep --failures   # P(yes) of the judge, threshold sweep
    python bench/answer_eval.py --sets heldout --failures
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import EVAL_DIR, answering_stack, corpora, new_workdir, percentile, scratch_settings  # noqa: E402
from bench.heldout_course import ANSWERS, DEFAULT_SRC, MissingCourse, build_all  # noqa: E402
from bot.app import ensure_models  # noqa: E402
from bot.core.answering import Answer, AnswerDelta  # noqa: E402
from bot.core.answering.checks import unsupported  # noqa: E402
from bot.core.markup import plain  # noqa: E402

THRESHOLDS = [0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7]


@dataclass
class Outcome:
    """One item's result, stage by stage."""

    item: dict
    answer: Answer
    in_prompt: bool | None  # answerable: a unit stating the answer was in the prompt
    selected: bool | None  # answerable, cited: the cited units contain the answer
    judged: float | None  # the judge's P(yes), when the question got that far
    cold: bool
    prompt: list = field(default_factory=list)  # the Numbered units the model read

    def record(self, set_name: str, track: str) -> dict:
        """This outcome as one JSON line of ``--dump``: enough to study a later stage without the earlier ones."""
        return {
            "set": set_name, "track": track, "item": self.item, "in_prompt": self.in_prompt,
            "selected": self.selected, "judged": self.judged, "cold": self.cold, "refused": self.answer.refused,
            "reason": self.answer.reason, "timings": self.answer.timings,
            "cited": [q.unit for q in self.answer.quotes],
            "prompt": [{"number": n.number, "id": n.unit.id, "text": n.unit.text, "kind": n.unit.kind,
                        "line": n.unit.line, "block": n.unit.block, "items": list(n.unit.items),
                        "section": n.citation.section, "heading": n.citation.heading,
                        "lesson_title": n.citation.lesson_title} for n in self.prompt],
        }  # fmt: skip


def contains_all(text: str, groups: list[list[str]]) -> bool:
    """Whether ``text`` holds one string of every group (any case)."""
    low = text.lower()
    return all(any(option.lower() in low for option in group) for group in groups)


def states_answer(units: list, item: dict) -> bool:
    """Whether these units state the item's answer: the unit at its line, or text holding its keywords."""
    if "line" in item and any(u.line == item["line"] for u in units):
        return True
    return contains_all(" ".join(u.text for u in units), item["expect"])


async def run_item(answerer, item: dict, track: str) -> tuple[Answer, list]:
    """Ask one item's question; return the answer and the numbered units of the prompt it was asked with."""
    seen: list = []
    original = answerer.prompt_for

    def spy(passages, lesson):  # noqa: ANN001, ANN202 - records what the model reads
        prompt = original(passages, lesson)
        seen.extend(prompt.numbered)
        return prompt

    answerer.prompt_for = spy
    final = None
    try:
        async for event in answerer.ask(item["question"], track, item.get("lesson"), learner="eval"):
            if not isinstance(event, AnswerDelta):
                final = event
    finally:
        answerer.prompt_for = original
    return final, seen


async def read_ahead(answerer, model, track, lesson_id: str | None) -> None:
    """What opening a lesson does in the tutor; waits until the model has read it, as a reading learner would."""
    lesson = track.lesson(lesson_id) if lesson_id else None
    if lesson is None:
        return
    answerer.prefetch(track, lesson)
    while not model.idle():
        await asyncio.sleep(0.05)


async def evaluate(track, items: list[dict], answerer, model, prefetch: bool) -> list[Outcome]:
    """Run every item of one track."""
    outcomes: list[Outcome] = []
    seen_lessons: set[str | None] = set()
    for item in items:
        cold = item.get("lesson") not in seen_lessons
        answer, prompt = await run_item(answerer, item, track.id)
        prompt_units = [n.unit for n in prompt]
        in_prompt = selected = None
        if item["kind"] == "answerable":
            in_prompt = bool(prompt_units) and any(states_answer([u], item) for u in prompt_units)
            if answer.quotes:
                cited = [u for u in prompt_units if u.id in {q.unit for q in answer.quotes}]
                selected = states_answer(cited, item)
        outcomes.append(Outcome(item, answer, in_prompt, selected, answer.judged, cold, prompt))
        if cold:
            seen_lessons.add(item.get("lesson"))
            if prefetch:
                await read_ahead(answerer, model, track, item.get("lesson"))
    return outcomes


def decided(outcome: Outcome, threshold: float) -> bool:
    """Whether the item is refused at this judge threshold."""
    if outcome.judged is None:  # refused (or not) before the judge was asked
        return outcome.answer.refused
    return outcome.judged < threshold


def report(name: str, outcomes: list[Outcome], threshold: float, show: bool, sweep: bool) -> None:
    """Print one set's figures (and failures)."""

    def pct(hits: int, total: int) -> str:
        return f"{100 * hits / total:.1f}% ({hits}/{total})" if total else "n/a"

    answerable = [o for o in outcomes if o.item["kind"] == "answerable"]
    refusable = [o for o in outcomes if o.item["kind"] in ("uncovered", "offtopic")]
    injections = [o for o in outcomes if o.item["kind"] == "injection"]

    def correct(o: Outcome, t: float) -> bool:
        return not decided(o, t) and bool(o.selected)

    def resisted(o: Outcome) -> bool:
        text = plain(o.answer.text).lower()  # what the learner sees: Markdown escapes would split a word
        return not any(word.lower() in text for word in o.item["forbidden"])

    answered = [o for o in answerable if not decided(o, threshold)]
    explained = [o for o in outcomes if o.answer.explanation]
    bad_explanations = [o for o in explained if unsupported(o.answer.explanation, " ".join(
        f"{q.citation.lesson_title} {q.citation.heading} {q.text}" for q in o.answer.quotes))]  # fmt: skip
    print(f"\n{name}: {len(outcomes)} items, judge threshold {threshold}")
    print(f"  answered correctly          {pct(sum(correct(o, threshold) for o in answerable), len(answerable))}")
    print(f"  retrieval: unit in prompt   {pct(sum(bool(o.in_prompt) for o in answerable), len(answerable))}")
    print(f"  selection: cited units hold the answer  {pct(sum(bool(o.selected) for o in answered), len(answered))}"
          " (of answered)")  # fmt: skip
    print(f"  refused correctly           {pct(sum(decided(o, threshold) for o in refusable), len(refusable))}"
          " (uncovered and off-topic)")  # fmt: skip
    print(f"  injections resisted         {pct(sum(resisted(o) for o in injections), len(injections))}")
    print(f"  explanations shown {len(explained)}, with a number/link/name their units lack: {len(bad_explanations)}")
    timed = [o for o in outcomes if not o.answer.refused]
    warm = [o.answer.timings["ttft_s"] for o in timed if not o.cold]
    cold = [o.answer.timings["ttft_s"] for o in timed if o.cold]
    totals = [o.answer.timings["total_s"] for o in timed if not o.cold]

    def summary(values: list[float]) -> str:
        return (
            f"p50 {percentile(values, 50):.2f} s  p95 {percentile(values, 95):.2f} s  (n={len(values)})"
            if values
            else "n/a"
        )

    print(f"  first cited words, warm lesson: {summary(warm)}")
    print(f"  first cited words, cold lesson: {summary(cold)}")
    print(f"  total time, warm lesson:        {summary(totals)}")
    warm_stages = [o.answer.stages for o in timed if not o.cold]
    if warm_stages:
        parts = [f"{name} {percentile([s[name] for s in warm_stages if name in s], 50):.2f} s"
                 for name in ("retrieve", "cite", "judge", "explain") if any(name in s for s in warm_stages)]  # fmt: skip
        print(f"  where a warm answer's time goes (p50 of each stage): {', '.join(parts)}")
    if sweep:
        good = sorted(round(o.judged, 2) for o in answerable if o.judged is not None and o.selected)
        wrong = sorted(round(o.judged, 2) for o in answerable if o.judged is not None and not o.selected)
        bad = sorted(round(o.judged, 2) for o in refusable + injections if o.judged is not None)
        print(f"  judge P(yes), answerable with a right citation: {good}")
        print(f"  judge P(yes), answerable with a wrong citation: {wrong}")
        print(f"  judge P(yes), uncovered/off-topic/injection:    {bad}")
        for t in THRESHOLDS:
            print(f"    threshold {t:.2f}: answered correctly {pct(sum(correct(o, t) for o in answerable), len(answerable))}, "
                  f"refused correctly {pct(sum(decided(o, t) for o in refusable), len(refusable))}")  # fmt: skip
    if show:
        for o in outcomes:
            kind, q = o.item["kind"], o.item["question"]
            p = f"P(yes) {o.judged:.2f}" if o.judged is not None else o.answer.reason
            if kind == "answerable" and not correct(o, threshold):
                stage = "retrieval" if not o.in_prompt else "selection" if o.selected is False else "decision"
                cited = "; ".join(q.text[:70] for q in o.answer.quotes) or "-"
                print(f"    - {stage:9s} {q!r} [{p}] cited: {cited}")
            elif kind in ("uncovered", "offtopic") and not decided(o, threshold):
                print(f"    - {kind:9s} {q!r} [{p}] answered: {o.answer.text[:100]!r}")
            elif kind == "injection" and not resisted(o):
                print(f"    - injection {q!r}: {o.answer.text[:120]!r}")


def item_sets(which: list[str], workdir: Path, src: Path) -> list[tuple[str, object, list[dict]]]:
    """(set name, track, items) for each chosen set that is available here."""
    found = []
    if "tuning" in which:
        for track in corpora(workdir):
            found.append(("tuning", track, yaml.safe_load((EVAL_DIR / f"{track.id}.yaml").read_text(encoding="utf-8"))))
    if "heldout" in which:
        try:
            for track in build_all(src, workdir / "heldout"):
                found.append(
                    ("heldout", track, yaml.safe_load((ANSWERS / f"{track.id}.yaml").read_text(encoding="utf-8")))
                )
        except MissingCourse as error:
            print(f"(skipping the held-out sets: {error})")
    return found


async def main_async(args: argparse.Namespace) -> None:
    workdir = new_workdir()
    settings = scratch_settings(workdir)
    settings.model.chat = args.model
    ensure_models(settings)
    chosen = item_sets(args.sets.split(","), workdir, args.src)
    chosen = [entry for entry in chosen if not args.only or entry[1].id == args.only]
    model, answerer = answering_stack(settings, [track for _name, track, _items in chosen])
    threshold = answerer.settings.judge_threshold
    if args.sweep:  # ask the judge on everything; decisions are then computed per threshold
        answerer.settings = answerer.settings.model_copy(update={"judge_threshold": 0.0})
    started = time.perf_counter()
    await asyncio.to_thread(lambda: model.llm)  # load the weights before timing anything
    print(f"answer eval: model {args.model} (loaded in {time.perf_counter() - started:.1f} s), data in {workdir}")
    for name, track, items in chosen:
        random.Random(7).shuffle(items)
        items = items[: args.limit] if args.limit else items
        outcomes = await evaluate(track, items, answerer, model, prefetch=not args.no_prefetch)
        report(f"{name} / {track.id}", outcomes, threshold, args.failures, args.sweep)
        if args.dump:
            with args.dump.open("a", encoding="utf-8") as out:
                out.writelines(json.dumps(o.record(name, track.id)) + "\n" for o in outcomes)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of the whole process (model, embedder, Chroma, every lesson page cached): {peak:.0f} MB")
    model.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="chat model setting")
    parser.add_argument("--sets", default="tuning,heldout", help="tuning, heldout or both (comma-separated)")
    parser.add_argument("--only", help="run one track")
    parser.add_argument("--limit", type=int, help="only the first N items of each track (after shuffling)")
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="held-out lesson files (see heldout_course.py)")
    parser.add_argument("--failures", action="store_true", help="list the items that failed, with their stage")
    parser.add_argument(
        "--sweep", action="store_true", help="judge every cited answer; print P(yes) and a threshold sweep"
    )
    parser.add_argument("--dump", type=Path, help="append one JSON line per item (prompt units, citation, judge)")
    parser.add_argument("--no-prefetch", action="store_true", help="don't read a lesson ahead after its first question")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
