"""Memory of read-ahead lessons: what each cached lesson state costs, and the whole process's RSS with N cached.

Opening a lesson has the model read its pages ahead and keep their states in the RAM prompt cache
(``TUTORBOT_MODEL__CACHE_MB``). This loads the real model with the default settings, asks one question (so the
weights and buffers are in use), then opens the bundled track's lessons one by one, then the imported
course's, and after each prints the pages read, the cache's size and the process's resident memory now.

    python bench/lesson_memory.py             # up to 8 lessons
    python bench/lesson_memory.py --lessons 4
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import answering_stack, corpora, new_workdir, scratch_settings  # noqa: E402
from bot.app import ensure_models  # noqa: E402


def rss_mb() -> float:
    """Resident memory of this process now (not its peak), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def wait_idle(model) -> None:  # noqa: ANN001 - the in-process chat model
    while not model.idle():
        await asyncio.sleep(0.05)


async def main_async(lessons: int) -> None:
    workdir = new_workdir()
    settings = scratch_settings(workdir)
    ensure_models(settings)
    tracks = corpora(workdir)
    model, answerer = answering_stack(settings, tracks)
    print(f"model cache budget {settings.model.cache_mb} MB; RSS before the model loads: {rss_mb():.0f} MB")
    async for _event in answerer.ask("what is a tutor?", tracks[0].id):
        pass
    cache = model.llm.cache
    print(
        f"after one question (weights and buffers in use): RSS {rss_mb():.0f} MB, cache {cache.cache_size / 2**20:.0f} MB"
    )
    opened = 0
    for track in tracks:
        for lesson in track.lessons:
            if opened == lessons:
                break
            before = cache.cache_size
            answerer.prefetch(track, lesson)
            await wait_idle(model)
            opened += 1
            pages = len(answerer.pages(track.id, lesson.id))
            added = (cache.cache_size - before) / 2**20
            print(f"  {opened}. {track.id}/{lesson.id}: {pages} page(s), +{added:.0f} MB of cached state "
                  f"({added / max(pages, 1):.0f} MB a page); cache {cache.cache_size / 2**20:.0f} MB in "
                  f"{len(cache.cache_state)} states; RSS {rss_mb():.0f} MB")  # fmt: skip
    model.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", type=int, default=8, help="how many lessons to open")
    asyncio.run(main_async(parser.parse_args().lessons))


if __name__ == "__main__":
    main()
