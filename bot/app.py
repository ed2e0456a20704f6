"""Wiring: build the tutor's parts from Settings. The one place that picks implementations; tests pass fakes."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.core.answering import Answerer, AnswerSettings
from bot.core.answering.checks import Vocabulary
from bot.core.engine import Engine
from bot.core.lessons import Lesson, Track
from bot.core.localtime import parse_quiet_hours
from bot.core.ports import ChatModel
from bot.core.prompts import PromptLibrary
from bot.core.reminders import ReminderScheduler
from bot.knowledge.published import PublishedTracks
from bot.knowledge.reader import read_knowledge
from bot.models.catalog import chat_model_path
from bot.store.database import Database
from bot.store.progress import SqliteProgressStore
from bot.store.question_log import SqliteQuestionLog

if TYPE_CHECKING:  # chromadb is slow to import: only code that searches pays for it
    from bot.knowledge.index import LessonIndex

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


def load_tracks(settings: Settings) -> dict[str, Track]:
    """The tracks to serve, by id: each valid track as read, a broken one as it was last indexed."""
    return PublishedTracks(settings.published_dir).serve(read_knowledge(settings.knowledge_dir))


def lesson_lookup(tracks: dict[str, Track]):  # noqa: ANN201 - a Callable[[str, str], Lesson | None]
    """A function that finds a lesson by track and lesson id."""

    def find(track: str, lesson: str) -> Lesson | None:
        found = tracks.get(track)
        return found.lesson(lesson) if found else None

    return find


def track_words(tracks: dict[str, Track]) -> Callable[[str | None], Vocabulary]:
    """The words of a track (every track for None), indexed once, to check what the lessons mention."""
    cache: dict[str | None, Vocabulary] = {}

    def lesson_text(lesson: Lesson) -> str:
        parts = [lesson.title, *(f"{s.heading}\n{s.text}" for s in lesson.sections)]
        return "\n".join(parts + [f"{term}: {meaning}" for term, meaning in lesson.key_terms])

    def words(track: str | None) -> Vocabulary:
        if track not in cache:
            chosen = [tracks[track]] if track in tracks else list(tracks.values())
            cache[track] = Vocabulary("\n".join(lesson_text(lesson) for found in chosen for lesson in found.lessons))
        return cache[track]

    return words


def build_chat_model(settings: Settings, preload: bool = False) -> ChatModel:
    """The chat model the settings choose: an OpenAI-compatible server, or the GGUF model in-process.

    ``preload`` loads the GGUF file now (on the model's worker thread) instead of on the first question.
    """
    model = settings.model
    if model.server_url:
        from bot.llm.openai_http import OpenAIChatModel

        return OpenAIChatModel(model.server_url, model.server_model, model.api_key, queue_size=model.queue_size,
                               max_seconds=model.max_seconds, schema_style=model.server_schema_style)  # fmt: skip
    from bot.llm.llama import LlamaChatModel

    return LlamaChatModel(
        chat_model_path(model.chat, settings.models_dir),
        n_threads=model.n_threads or os.cpu_count(),
        n_ctx=model.n_ctx,
        queue_size=model.queue_size,
        max_seconds=model.max_seconds,
        cache_bytes=model.cache_mb << 20,
        preload=preload,
    )


def build_answerer(settings: Settings, model: ChatModel | None = None, index: LessonIndex | None = None,
                   tracks: dict[str, Track] | None = None, database: Database | None = None) -> Answerer:  # fmt: skip
    """The grounded answerer over the indexed lessons, logging questions to the database."""
    tracks = load_tracks(settings) if tracks is None else tracks
    if index is None:
        from bot.knowledge.recovery import open_index

        index = open_index(settings)
    return Answerer(
        retriever=index,
        model=model or build_chat_model(settings),
        prompts=PromptLibrary(PROMPTS_DIR),
        log=SqliteQuestionLog(database or settings.database_path),
        lessons=lesson_lookup(tracks),
        track_words=track_words(tracks),
        settings=AnswerSettings(**settings.answering.model_dump()),
    )


def build_engine(settings: Settings, index: LessonIndex | None = None, model: ChatModel | None = None,
                 answers: bool = True) -> Engine:  # fmt: skip
    """The dialogue engine over the knowledge folder's tracks, with progress (and questions) in one database.

    ``answers=False`` builds an engine for lessons and quizzes only (no index or model is opened).
    """
    tracks = load_tracks(settings)
    database = Database(settings.database_path, busy_timeout_ms=round(settings.storage.busy_timeout_seconds * 1000))
    answerer = build_answerer(settings, model, index, tracks, database) if answers else None
    return Engine(tracks, SqliteProgressStore(database), answerer, default_quiet=default_quiet_hours(settings))


def default_quiet_hours(settings: Settings) -> tuple[int, int]:
    """The host's quiet hours for reminders, as (start, end) minutes after local midnight."""
    quiet = parse_quiet_hours(settings.reminders.quiet_hours)
    if quiet is None:
        raise ValueError(f"TUTORBOT_REMINDERS__QUIET_HOURS: '{settings.reminders.quiet_hours}' is not like 22:00-08:00")
    return quiet


def build_reminders(settings: Settings, engine: Engine) -> ReminderScheduler | None:
    """The reminder scheduler the adapters give their senders to (None when the host turned reminders off)."""
    if not settings.reminders.enabled:
        return None
    return ReminderScheduler(engine.comeback, default_quiet_hours(settings), settings.reminders.check_seconds)


def settle_memory() -> None:
    """Call once the long-lived parts are built: collect garbage, then freeze what is alive.

    The index and the model leave ~100k long-lived objects; a full garbage-collection pass over them stops
    the event loop for 30-80 ms (measured with bench/engine_turns.py). Frozen objects are never scanned again.
    """
    gc.collect()
    gc.freeze()
