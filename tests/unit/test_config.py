"""Settings come from TUTORBOT_ variables and .env; tokens stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import Settings


def test_environment_variables_set_nested_fields(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TUTORBOT_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("TUTORBOT_KNOWLEDGE_DIR", str(tmp_path / "k"))
    monkeypatch.setenv("TUTORBOT_MODEL__CHAT", "qwen2.5-coder-0.5b")
    monkeypatch.setenv("TUTORBOT_RETRIEVAL__K", "7")
    settings = Settings(_env_file=None)
    assert settings.data_dir == tmp_path / "d" and settings.knowledge_dir == tmp_path / "k"
    assert settings.model.chat == "qwen2.5-coder-0.5b" and settings.retrieval.k == 7
    assert settings.models_dir == tmp_path / "d" / "models"
    assert settings.chroma_dir == tmp_path / "d" / "chroma"


def test_dotenv_file_is_read_and_tokens_are_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("TUTORBOT_TELEGRAM__TOKEN=123:abc-secret\n")
    settings = Settings(_env_file=env)
    assert settings.telegram.token is not None
    assert settings.telegram.token.get_secret_value() == "123:abc-secret"
    assert "abc-secret" not in repr(settings) and "abc-secret" not in str(settings.model_dump())


def test_every_field_has_a_description() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                missing += walk(annotation)
        return missing

    assert walk(Settings) == []


def test_bad_values_are_rejected_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="chunk_tokens"):
        Settings(_env_file=None, retrieval={"chunk_tokens": 1000})
