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


def warnings_from(caplog: pytest.LogCaptureFixture) -> str:
    """Every warning logged, message and arguments alike (a value must not hide in either)."""
    return "\n".join(f"{r.getMessage()} {r.msg} {r.args}" for r in caplog.records if r.levelname == "WARNING")


def test_an_unknown_variable_is_named_with_the_closest_setting_and_its_value_is_never_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TUTORBOT_MODLE__CHAT", "s3cret-value")
    monkeypatch.setenv("TUTORBOT_ANSWERING__JUDGE_TRESHOLD", "0.9")
    monkeypatch.setenv("TUTORBOT_NOTHING_LIKE_IT", "other-s3cret")
    with caplog.at_level("WARNING", logger="bot.config"):
        settings = Settings(_env_file=None)
    logged = warnings_from(caplog)
    assert "TUTORBOT_MODLE__CHAT (environment) is not a tutorbot setting" in logged
    assert "did you mean TUTORBOT_MODEL__CHAT?" in logged
    assert "did you mean TUTORBOT_ANSWERING__JUDGE_THRESHOLD?" in logged  # a nested name of the core's settings
    assert "TUTORBOT_NOTHING_LIKE_IT" in logged and "bot/config.py lists the settings" in logged
    assert "s3cret" not in logged
    assert settings.model.chat == "qwen2.5-coder-1.5b"  # ignored, as before


def test_an_unknown_key_in_the_dotenv_file_is_named_without_its_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = tmp_path / ".env"
    env.write_text("TUTORBOT_TELEGRAM__TOKN=123:abc-secret\nOTHER_TOOL_SETTING=1\n")
    with caplog.at_level("WARNING", logger="bot.config"):
        Settings(_env_file=env)
    logged = warnings_from(caplog)
    assert "TUTORBOT_TELEGRAM__TOKN (.env) is not a tutorbot setting" in logged
    assert "did you mean TUTORBOT_TELEGRAM__TOKEN?" in logged
    assert "abc-secret" not in logged and "OTHER_TOOL_SETTING" not in logged  # another program's is not ours


def test_known_variables_and_whole_groups_raise_no_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TUTORBOT_RETRIEVAL__K", "7")
    monkeypatch.setenv("tutorbot_data_dir", "data")  # names are not case-sensitive
    monkeypatch.setenv("TUTORBOT_MODEL", '{"chat": "qwen2.5-coder-0.5b"}')  # a group as JSON
    with caplog.at_level("WARNING", logger="bot.config"):
        settings = Settings(_env_file=None)
    assert warnings_from(caplog) == ""
    assert settings.retrieval.k == 7 and settings.model.chat == "qwen2.5-coder-0.5b"
