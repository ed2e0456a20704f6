"""Retrieval quality and speed: recall@1, recall@3 and query latency on each corpus's question set.

A question counts as found at k when one of the top k results comes from a section that answers it (its
label, or a section listed under ``also`` whose text answers it just as directly).
Two question sets per corpus: ``bench/questions`` (used to choose chunk size, keyword weight and probes)
and ``bench/heldout`` (written later without looking at search results, never tuned on), reported apart.
Each question is searched twice: across its whole track (a learner asking from the track menu) and within
its lesson (a learner asking mid-lesson, which the tutor searches first). Latency is the whole
``LessonIndex.search`` call, the question's embedding included.

    python bench/retrieval.py                       # the default settings
    python bench/retrieval.py --keyword-weight 0    # embeddings only
    python bench/retrieval.py --no-probes           # without quiz questions and key terms as pointers
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import corpora, new_workdir, percentile, questions, scratch_settings  # noqa: E402
from bot.app import ensure_models  # noqa: E402
from bot.knowledge.index import LessonIndex  # noqa: E402


def acceptable(item: dict) -> set[tuple[str, str]]:
    """The sections that answer an item: its label, plus any listed under ``also`` (text that answers it too)."""
    also = {(extra["lesson"], extra["section"]) for extra in item.get("also", [])}
    return {(item["lesson"], item["section"])} | also


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyword-weight", type=float, default=None, help="BM25 weight (default: the setting)")
    parser.add_argument("--no-probes", action="store_true", help="ignore quiz-question and key-term pointers")
    parser.add_argument("--chunk-tokens", type=int, default=None, help="chunk size (default: the setting)")
    parser.add_argument("--repeat", type=int, default=3, help="times each question is timed")
    parser.add_argument("--failures", action="store_true", help="list the questions not found first")
    args = parser.parse_args()

    workdir = new_workdir()
    settings = scratch_settings(workdir)
    if args.chunk_tokens:
        settings.retrieval.chunk_tokens = args.chunk_tokens
    weight = settings.retrieval.keyword_weight if args.keyword_weight is None else args.keyword_weight
    ensure_models(settings, embedder_only=True)
    index = LessonIndex.from_settings(settings)
    print(
        f"retrieval benchmark: chunk_tokens={settings.retrieval.chunk_tokens} keyword_weight={weight} "
        f"probes={not args.no_probes}"
    )
    for track in corpora(workdir):
        index.ingest(track)
        index.search("warm-up", k=3, track=track.id)  # the first call loads the model; not a learner's query
        print(f"\n{track.id}: {len(index.chunks_for(track))} entries indexed")
        tuning, heldout = questions(track.id), questions(track.id, heldout=True)
        sets = [("tuning", tuning), ("held-out", heldout), ("all", tuning + heldout)]
        for (name, items), scope in itertools.product(sets, ("track", "lesson")):
            if not items:
                continue
            found1 = found3 = 0
            latencies: list[float] = []
            failures = []
            for item in items:
                lesson = item["lesson"] if scope == "lesson" else None
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    hits = index.search(item["question"], 3, track.id, lesson, weight, not args.no_probes)
                    latencies.append((time.perf_counter() - started) * 1000)
                places = [(hit.lesson, hit.section) for hit in hits]
                found1 += bool(places[:1]) and places[0] in acceptable(item)
                found3 += any(place in acceptable(item) for place in places)
                if not places or places[0] not in acceptable(item):
                    failures.append((item, places))
            n = len(items)
            print(
                f"  {name:8s} ({len(items)} q)  within {scope:6s}  recall@1 {found1 / n:.3f}  recall@3 {found3 / n:.3f}  "
                f"query p50 {percentile(latencies, 50):.1f} ms  p95 {percentile(latencies, 95):.1f} ms"
            )
            for item, places in failures if args.failures else []:
                where = "in top 3" if any(place in acceptable(item) for place in places) else "missed  "
                print(f"    {where} {item['question']!r}: wants {item['lesson']}#{item['section']}, "
                      f"got {places[0][0]}#{places[0][1]}")  # fmt: skip


if __name__ == "__main__":
    main()
