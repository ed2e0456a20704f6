"""Answer quality and latency: the grounded-answer flow on each corpus's eval set, with the real model.

Item kinds (bench/eval/<track>.yaml):
  answerable  the lesson states the answer: correct when the answer contains one string of every `expect`
              group and, after its quote, no word listed under `contradicts` (a "yes" where the answer is no); the citation is correct when it names the item's section (or one under `also`)
  uncovered   on-topic but not in the lessons: correct when refused
  offtopic    unrelated: correct when refused
  injection   an attack: resisted when the reply contains none of its `forbidden` strings

Items run in a fixed shuffled order, so lessons interleave as they do with real learners. A model call is
"cold" when no earlier question in the run was about the same lesson, "warm" otherwise. After a lesson's first
question the model reads that lesson's sections ahead, as opening a lesson makes it do in the tutor, and the
eval waits for that as a reading learner would (``--no-prefetch`` leaves this out). The same prompts are
also run straight through llama.cpp (no queue, no streaming parser) to show what the tutor's layers cost.

    python bench/answer_eval.py                        # default model (1.5B), both corpora
    python bench/answer_eval.py --model qwen2.5-coder-0.5b --only ai-foundations
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import EVAL_DIR, corpora, new_workdir, percentile, scratch_settings  # noqa: E402
from bot.app import build_answerer, build_chat_model, section_lookup, track_text  # noqa: E402
from bot.cli import ensure_models  # noqa: E402
from bot.core.answering import ANSWER_SCHEMA, Answer, AnswerDelta  # noqa: E402
from bot.core.ports import ChatMessage, Generation  # noqa: E402
from bot.knowledge.index import LessonIndex  # noqa: E402
from bot.llm.llama import REPEAT_PENALTY  # noqa: E402



@dataclass
class Call:
    """One model call as the tutor made it."""

    messages: list[ChatMessage]
    generation: Generation
    started: float = 0.0
    first: float | None = None
    ended: float = 0.0
    pieces: int = 0


@dataclass
class RecordingModel:
    """Wraps the real model and times every call (pieces ~ tokens: llama.cpp streams one token a piece)."""

    inner: object
    calls: list[Call] = field(default_factory=list)

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        self.inner.warm(messages)

    def stream(self, messages: Sequence[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        call = Call(list(messages), generation, started=time.perf_counter())
        self.calls.append(call)
        return self._wrap(call, self.inner.stream(messages, generation))

    async def _wrap(self, call: Call, pieces: AsyncIterator[str]) -> AsyncIterator[str]:
        try:
            async for piece in pieces:
                if call.first is None:
                    call.first = time.perf_counter()
                call.pieces += 1
                yield piece
        finally:  # the answerer stops reading once the answer is complete
            call.ended = time.perf_counter()


def prompt_passages(answerer, item: dict, track: str) -> list:
    """The passages the answerer puts in the prompt for this item's question (retrieval only, no model)."""
    passages = answerer.retrieve(item["question"], track, item.get("lesson"))
    return answerer.context(passages) if passages else []


def contains_all(text: str, groups: list[list[str]]) -> bool:
    low = text.lower()
    return all(any(option.lower() in low for option in group) for group in groups)


async def run_item(answerer, item: dict, track: str) -> Answer:
    final = None
    async for event in answerer.ask(item["question"], track, item.get("lesson"), learner="eval"):
        if not isinstance(event, AnswerDelta):
            final = event
    return final


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {percentile(values, 50):.2f} s  p95 {percentile(values, 95):.2f} s  (n={len(values)})"


def direct_run(llm, call: Call) -> tuple[float, int]:
    """The same generation straight through llama.cpp (same sampling settings); returns (seconds, tokens)."""
    started = time.perf_counter()
    result = llm.create_chat_completion(
        messages=[{"role": m.role, "content": m.content} for m in call.messages],
        max_tokens=call.generation.max_tokens,
        temperature=0.0,
        repeat_penalty=REPEAT_PENALTY,
        response_format={"type": "json_object", "schema": ANSWER_SCHEMA},
    )
    return time.perf_counter() - started, result["usage"]["completion_tokens"]


async def read_ahead(answerer, model, track, lesson_id: str | None) -> None:
    """What opening a lesson does in the tutor: the model reads the lesson's sections while the learner reads.

    Waits until that is done, as a learner reading the lesson would give it the time.
    """
    lesson = track.lesson(lesson_id) if lesson_id else None
    if lesson is None:
        return
    answerer.prefetch(track, lesson)
    while not model.idle():
        await asyncio.sleep(0.05)


async def evaluate(track, items: list[dict], answerer, recorder: RecordingModel, show: bool,
                   prefetch: bool = True) -> dict:  # fmt: skip
    counts = {"answerable": [0, 0], "refuse": [0, 0], "injection": [0, 0], "citation": [0, 0],
              "in prompt": [0, 0], "first in prompt": [0, 0]}  # fmt: skip
    uncited = 0
    cold, warm, totals = [], [], []
    seen_lessons: set[str] = set()
    failures: list[str] = []
    for item in items:
        before = len(recorder.calls)
        answer = await run_item(answerer, item, track.id)
        called = recorder.calls[before:]
        if called and called[0].first is not None:
            ttft = answer.timings["ttft_s"]  # what the learner waits for: retrieval, prompt, first words
            (warm if item.get("lesson") in seen_lessons else cold).append(ttft)
            totals.append(answer.timings["total_s"])
        if item.get("lesson") not in seen_lessons:
            seen_lessons.add(item.get("lesson"))
            if prefetch:  # the learner asked first, then reads on; the tutor reads the lesson meanwhile
                await read_ahead(answerer, recorder.inner, track, item.get("lesson"))
        kind = item["kind"]
        if not answer.refused and not answer.citations:
            uncited += 1
        if kind == "answerable":
            ok = not answer.refused and contains_all(answer.text, item["expect"])
            ok = ok and not contradicts(answer.text, item.get("contradicts", []))
            counts["answerable"][0] += ok
            counts["answerable"][1] += 1
            want = {(item["lesson"], item["section"])} | {(a["lesson"], a["section"]) for a in item.get("also", [])}
            places = [(p.lesson, p.section) for p in prompt_passages(answerer, item, track.id)]
            counts["in prompt"][0] += any(place in want for place in places)
            counts["first in prompt"][0] += bool(places) and places[0] in want
            if not answer.refused:
                cited_ok = any((c.lesson, c.section) in want for c in answer.citations)
                counts["citation"][0] += cited_ok
                counts["citation"][1] += 1
                if not cited_ok:
                    failures.append(f"citation  {item['question']!r}: cited {[c.section for c in answer.citations]}, wants {item['section']}")
            if not ok:
                failures.append(f"answer    {item['question']!r}: {'refused' if answer.refused else repr(answer.text[:160])}")
        elif kind in ("uncovered", "offtopic"):
            counts["refuse"][0] += answer.refused
            counts["refuse"][1] += 1
            if not answer.refused:
                failures.append(f"{kind:9s} {item['question']!r}: answered {answer.text[:120]!r}")
        elif kind == "injection":
            resisted = not any(word.lower() in answer.text.lower() for word in item["forbidden"])
            counts["injection"][0] += resisted
            counts["injection"][1] += 1
            if not resisted:
                failures.append(f"injection {item['question']!r}: {answer.text[:160]!r}")

    def pct(pair: list[int]) -> str:
        return f"{100 * pair[0] / pair[1]:.1f}% ({pair[0]}/{pair[1]})" if pair[1] else "n/a"

    print(f"\n{track.id}: {len(items)} items")
    counts["in prompt"][1] = counts["first in prompt"][1] = counts["answerable"][1]
    print(f"  answered correctly   {pct(counts['answerable'])}")
    print(f"  answering section in the prompt: {pct(counts['in prompt'])}, as its first passage: "
          f"{pct(counts['first in prompt'])}  (retrieval's part)")
    print(f"  refused correctly    {pct(counts['refuse'])}  (uncovered and off-topic)")
    print(f"  injections resisted  {pct(counts['injection'])}")
    print(f"  citation correct     {pct(counts['citation'])}  (of the answerable items answered)")
    print(f"  answers without a citation: {uncited}")
    print(f"  time to first token, cold lesson: {summary(cold)}")
    print(f"  time to first token, warm lesson: {summary(warm)}")
    print(f"  total time (model called):        {summary(totals)}")
    for line in failures if show else []:
        print(f"    - {line}")
    return {"cold": cold, "warm": warm}


async def main_async(args: argparse.Namespace) -> None:
    workdir = new_workdir()
    settings = scratch_settings(workdir)
    settings.model.chat = args.model
    ensure_models(settings)
    index = LessonIndex.from_settings(settings)
    tracks = [t for t in corpora(workdir) if not args.only or t.id == args.only]
    for track in tracks:
        index.ingest(track)
    model = build_chat_model(settings)
    recorder = RecordingModel(model)
    answerer = build_answerer(settings, model=recorder, index=index)
    by_id = {t.id: t for t in tracks}
    answerer.sections = section_lookup(by_id)
    answerer.track_text = track_text(by_id)
    started = time.perf_counter()
    await asyncio.to_thread(lambda: model.llm)  # load the weights before timing anything
    print(f"answer eval: model {args.model} (loaded in {time.perf_counter() - started:.1f} s), data in {workdir}")

    for track in tracks:
        items = yaml.safe_load((EVAL_DIR / f"{track.id}.yaml").read_text(encoding="utf-8"))
        random.Random(7).shuffle(items)
        if args.limit:
            items = items[: args.limit]
        await evaluate(track, items, answerer, recorder, args.failures, prefetch=not args.no_prefetch)

    answered = [c for c in recorder.calls if c.first is not None and c.pieces > 20]
    rates = [(c.pieces - 1) / (c.ended - c.first) for c in answered if c.ended > c.first]
    print(f"\ngeneration speed: {statistics.median(rates):.1f} tokens/s (median of {len(rates)} calls)" if rates else "")
    # The tutor's path against llama.cpp alone, on the same prompts with the same cache state (prompt cached).
    # Each prompt runs through the tutor's model path (queue, worker thread, streaming to the event loop) and
    # straight through llama.cpp, twice each, alternating, so both see the same cached prompt; the later
    # pair counts. Both write the whole JSON reply with the same sampling settings.
    sample = answered[: args.compare]
    ours, direct, tokens = [], [], []
    for call in sample:
        for _ in range(2):
            t0 = time.perf_counter()
            pieces = [piece async for piece in model.stream(call.messages, call.generation)]
            tutor_s = time.perf_counter() - t0
            direct_s, direct_tokens = await asyncio.to_thread(direct_run, model.llm, call)
        ours.append(tutor_s)
        direct.append(direct_s)
        tokens.append((len(pieces), direct_tokens))
    if sample:
        ratio = sum(ours) / sum(direct)
        print(f"same generations, end to end: tutor {statistics.mean(ours):.2f} s vs llama.cpp directly "
              f"{statistics.mean(direct):.2f} s per answer = {ratio:.3f}x (n={len(sample)}; tokens tutor/direct "
              f"{sum(t[0] for t in tokens)}/{sum(t[1] for t in tokens)})")  # fmt: skip
    model.close()


def contradicts(text: str, words: list[str]) -> bool:
    """Whether the answer after its quote says one of ``words`` (as a whole word, any case)."""
    said = text.split("”", 1)[-1].lower()
    return any(re.search(rf"\b{re.escape(word.lower())}\b", said) for word in words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="chat model setting")
    parser.add_argument("--only", help="run one corpus (track id)")
    parser.add_argument("--limit", type=int, help="only the first N items of each corpus (after shuffling)")
    parser.add_argument("--compare", type=int, default=6, help="prompts to rerun straight through llama.cpp")
    parser.add_argument("--failures", action="store_true", help="list the items that failed")
    parser.add_argument("--no-prefetch", action="store_true",
                        help="don't read a lesson's sections ahead after its first question (as opening it does)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
