"""'tutorbot run': tokens checked first, one engine shared by the adapters, a clean stop, clear start errors."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import bot.adapters.discord
import bot.adapters.telegram
import bot.cli
from bot.adapters import AdapterError

runner = CliRunner()


@pytest.fixture(autouse=True)
def logging_restored() -> None:
    """'run' sets up the process's logging; put it back so later tests capture what they expect."""
    import logging

    from bot.logs import QUIET_LOGGERS

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    filters = {id(h): list(h.filters) for h in handlers}
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        handler.filters[:] = filters[id(handler)]
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setenv("TUTORBOT_DATA_DIR", str(tmp_path / "data"))  # 'run' opens the database there
    monkeypatch.setenv("TUTORBOT_TELEGRAM__TOKEN", "123:telegram-secret")
    monkeypatch.setenv("TUTORBOT_DISCORD__TOKEN", "discord-secret")


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> object:
    """Stands in for the engine (building the real one needs the models; adapters' own tests cover serving)."""
    shared = SimpleNamespace(comeback=SimpleNamespace(store=SimpleNamespace(reminding=lambda: [])))  # no reminders

    @contextlib.contextmanager
    def running_engine(settings, database):  # noqa: ANN001, ANN202
        yield shared

    monkeypatch.setattr(bot.cli, "_running_engine", running_engine)
    return shared


def test_a_missing_token_is_named_before_anything_starts(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("TUTORBOT_TELEGRAM__TOKEN", raising=False)
    result = runner.invoke(bot.cli.app, ["run", "telegram"])
    assert result.exit_code == 1 and "TUTORBOT_TELEGRAM__TOKEN" in result.output
    result = runner.invoke(bot.cli.app, ["run", "slack"])
    assert result.exit_code == 1 and "unknown adapter 'slack'" in result.output


def test_run_all_serves_both_platforms_with_one_engine_and_stops_cleanly(tokens, engine, monkeypatch) -> None:  # noqa: ANN001
    seen: dict[str, object] = {}

    async def serve_telegram(shared, settings, stop, reminders, inbox=None):  # noqa: ANN001, ANN202
        seen["telegram"] = (shared, settings.token.get_secret_value())
        seen["schedulers"] = [reminders]
        await stop.wait()  # runs until the other side stops the process

    async def serve_discord(shared, settings, stop, reminders):  # noqa: ANN001, ANN202
        seen["discord"] = (shared, settings.token.get_secret_value())
        seen["schedulers"].append(reminders)  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
        stop.set()  # as SIGINT/SIGTERM would

    monkeypatch.setattr(bot.adapters.telegram, "serve", serve_telegram)
    monkeypatch.setattr(bot.adapters.discord, "serve", serve_discord)
    result = runner.invoke(bot.cli.app, ["run", "all"])
    assert result.exit_code == 0, result.output
    scheduler = seen.pop("schedulers")
    assert seen == {"telegram": (engine, "123:telegram-secret"), "discord": (engine, "discord-secret")}
    assert (
        isinstance(scheduler, list) and scheduler[0] is scheduler[1] and scheduler[0].comeback is engine.comeback
    )  # one for both
    assert "stopped; progress is saved" in result.output


def test_an_adapter_that_cannot_start_says_what_to_fix(tokens, engine, monkeypatch) -> None:  # noqa: ANN001
    async def refuse(shared, settings, stop, reminders):  # noqa: ANN001, ANN202
        raise AdapterError("Discord rejected the bot token: check TUTORBOT_DISCORD__TOKEN")

    monkeypatch.setattr(bot.adapters.discord, "serve", refuse)
    result = runner.invoke(bot.cli.app, ["run", "discord"])
    assert result.exit_code == 1 and "check TUTORBOT_DISCORD__TOKEN" in result.output
    assert "discord-secret" not in result.output


def test_ask_shows_the_answer_rendered_not_as_raw_markdown(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.core.answering import Answer, AnswerDelta

    quoted = "“Multiply with a\\*b, **not** `a**b`.”\nSource: Basics › Operators"

    class Answerer:
        async def ask(self, *args: object, **kwargs: object):  # noqa: ANN202
            yield AnswerDelta(quoted)
            yield Answer(quoted, False, "answered", timings={"ttft_s": 0.1, "total_s": 0.2})

    monkeypatch.setattr(bot.cli, "ensure_models", lambda *args, **kwargs: None)
    monkeypatch.setattr("bot.app.build_answerer", lambda *args, **kwargs: Answerer())
    result = runner.invoke(bot.cli.app, ["ask", "how do I multiply?"])
    assert result.exit_code == 0, result.output
    assert "“Multiply with a*b, not a**b.”\nSource: Basics › Operators\n" in result.stdout
