"""Ingest speed and memory: chunks embedded per second, peak RSS, and the cost of re-ingesting.

Each corpus runs in its own process (so peak RSS is its own) against a fresh Chroma store:
  1. a first ingest of the whole track (after loading the embedder, timed apart),
  2. a re-ingest with nothing changed,
  3. a re-ingest after one paragraph of one lesson was edited.

    python bench/ingest_speed.py
"""

from __future__ import annotations

import dataclasses
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import corpora, new_workdir, scratch_settings  # noqa: E402
from bot.app import ensure_models  # noqa: E402
from bot.knowledge.index import LessonIndex  # noqa: E402


def measure(track_id: str) -> dict:
    """Run the three ingests for one corpus in this process and return the figures."""
    workdir = new_workdir()
    settings = scratch_settings(workdir)
    ensure_models(settings, embedder_only=True)
    track = next(t for t in corpora(workdir) if t.id == track_id)
    started = time.perf_counter()
    index = LessonIndex.from_settings(settings)
    index.embedder.embed(["load the model"])
    load_s = time.perf_counter() - started

    first = index.ingest(track)
    again = index.ingest(track)
    lesson = track.lessons[0]
    edited_section = dataclasses.replace(lesson.sections[0], text=lesson.sections[0].text + "\n\nOne more paragraph.")
    edited_lesson = dataclasses.replace(lesson, sections=(edited_section, *lesson.sections[1:]))
    edited = index.ingest(dataclasses.replace(track, lessons=(edited_lesson, *track.lessons[1:])))
    return {
        "track": track_id,
        "entries": first.chunks,
        "probes": first.probes,
        "load_s": load_s,
        "first_s": first.seconds,
        "chunks_per_s": first.embedded / first.seconds,
        "unchanged_s": again.seconds,
        "unchanged_embedded": again.embedded,
        "edited_s": edited.seconds,
        "edited_embedded": edited.embedded,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(measure(sys.argv[2])))
        return
    track_ids = [track.id for track in corpora(new_workdir())]
    print("ingest benchmark (each corpus in a fresh process and a fresh Chroma store)")
    for track_id in track_ids:
        result = subprocess.run(
            [sys.executable, __file__, "--one", track_id], capture_output=True, text=True, check=True
        )
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"\n{r['track']}: {r['entries']} entries ({r['entries'] - r['probes']} text chunks, {r['probes']} probes)"
        )
        print(f"  embedder load        {r['load_s']:.2f} s")
        print(f"  first ingest         {r['first_s']:.2f} s  = {r['chunks_per_s']:.1f} chunks/s")
        print(f"  unchanged re-ingest  {r['unchanged_s'] * 1000:.0f} ms, {r['unchanged_embedded']} embedded")
        print(f"  one paragraph edited {r['edited_s'] * 1000:.0f} ms, {r['edited_embedded']} embedded")
        print(f"  peak RSS             {r['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
