"""Shared set-up for the benchmarks: the two corpora, a throw-away data dir, and percentiles."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import yaml

from bot.config import Settings
from bot.core.lessons import Track
from bot.knowledge.importer import import_course
from bot.knowledge.reader import read_track

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "bench" / "questions"
EVAL_DIR = ROOT / "bench" / "eval"
HELDOUT = ROOT / "bench" / "heldout"  # written blind, after retrieval was tuned on QUESTIONS: never tune on these
ML_COURSE = ROOT.parent / "shared" / "corpora" / "ml-for-beginners"


def bundled_track() -> Track:
    """The bundled ai-foundations track."""
    result = read_track(ROOT / "knowledge" / "ai-foundations")
    assert result.ok and result.track, result.problems
    return result.track


def imported_track(workdir: Path) -> Track | None:
    """The ml-for-beginners course imported into ``workdir``, or None when ../shared/corpora is absent."""
    if not ML_COURSE.is_dir():
        return None
    dest = workdir / "ml-for-beginners"
    import_course(ML_COURSE, "ml-for-beginners", dest, title="ML for beginners", replace=True)
    result = read_track(dest)
    assert result.ok and result.track, result.problems
    return result.track


def corpora(workdir: Path) -> list[Track]:
    """Every corpus the benchmarks run on that is available here."""
    tracks = [bundled_track()]
    imported = imported_track(workdir)
    if imported is None:
        print(f"(skipping ml-for-beginners: {ML_COURSE} is absent)")
    else:
        tracks.append(imported)
    return tracks


def questions(track_id: str, heldout: bool = False) -> list[dict]:
    """The retrieval question set of a corpus (or its held-out set): ``[{question, lesson, section}]``."""
    root = HELDOUT if heldout else QUESTIONS
    files = [root / f"{track_id}.yaml", *sorted((root / track_id).glob("*.yaml"))]
    items: list[dict] = []
    for path in files:
        if path.is_file():
            items.extend(yaml.safe_load(path.read_text(encoding="utf-8")))
    return items


def scratch_settings(workdir: Path) -> Settings:
    """Settings with a fresh data dir in ``workdir`` but the real installed models."""
    models_dir = Settings().models_dir.resolve()
    return Settings(data_dir=workdir / "data", knowledge_dir=workdir, model={"models_dir": models_dir})


def answering_stack(settings: Settings, tracks: list[Track]):  # noqa: ANN201 - (chat model, Answerer)
    """The real chat model and answerer over ``tracks``, indexed into ``settings``' data dir, as the tutor wires them."""
    from bot.app import build_answerer, build_chat_model
    from bot.core.answering.answerer import lesson_lookup, track_words  # noqa: PLC0415
    from bot.knowledge.index import LessonIndex  # noqa: PLC0415

    index = LessonIndex.from_settings(settings)
    for track in tracks:
        index.ingest(track)
    model = build_chat_model(settings)
    answerer = build_answerer(settings, model=model, index=index)
    by_id = {track.id: track for track in tracks}
    answerer.lessons = lesson_lookup(by_id)
    answerer.track_words = track_words(by_id)
    return model, answerer


def new_workdir() -> Path:
    """A temporary folder that lives until the process ends."""
    return Path(tempfile.mkdtemp(prefix="tutorbot-bench-"))


def percentile(values: list[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) of ``values``."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]
