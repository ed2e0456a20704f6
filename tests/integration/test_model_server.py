"""The OpenAI-compatible client against llama-cpp-python's own server (``python -m llama_cpp.server``, from the
dev extras) started on 127.0.0.1, set up only as the README says: a URL and a model name.

The server runs the default model: the answer judge's threshold is chosen for it (the 0.5B model's judge
gives P(yes) 0.34 on the covered question below, so it refuses, through the server as in-process).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.config import Settings
from bot.core.answering.units import citation_schema
from bot.core.ports import ChatMessage, Generation, ModelFailed
from bot.knowledge.ingest import ingest_knowledge
from bot.llm.openai_http import OpenAIChatModel

pytestmark = pytest.mark.integration

BUNDLED = Path(__file__).resolve().parents[2] / "knowledge" / "ai-foundations"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(default_chat_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log_file = log_path.open("wb")  # a file, not a pipe: the server writes a lot and must never block on it
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_chat_model_path), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "4096", "--model_alias", "small", "--verbose", "False"],
        stdout=log_file, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"llama_cpp.server did not start: {log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)
    yield url
    process.terminate()
    process.wait(timeout=20)
    log_file.close()


def client(url: str) -> OpenAIChatModel:
    """The client as ``build_chat_model`` makes it from the settings' defaults."""
    settings = Settings(_env_file=None, model={"server_url": url, "server_model": "small"})
    model = settings.model
    return OpenAIChatModel(model.server_url or "", model.server_model, schema_style=model.server_schema_style)


async def collect(model: OpenAIChatModel, messages: list[ChatMessage], generation: Generation) -> list[str]:
    return [piece async for piece in model.stream(messages, generation)]


def test_streams_plain_text_from_a_real_server(server_url: str) -> None:
    pieces = asyncio.run(collect(client(server_url), [ChatMessage("user", "Count from one to five in words.")], Generation(24)))  # fmt: skip
    assert len(pieces) > 1
    assert "two" in "".join(pieces).lower()


def test_schema_constrained_json_works_on_default_settings_falling_back_once(
    server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = client(server_url)
    assert model.schema_style == "auto"
    messages = [
        ChatMessage(
            "user", "[1] The sky is blue.\n[2] Grass is green.\nWhich line says what colour grass is? Reply as JSON."
        )
    ]
    with caplog.at_level(logging.INFO, logger="bot.llm.openai_http"):
        for _ in range(2):
            reply = json.loads("".join(asyncio.run(collect(model, messages, Generation(40, citation_schema(["1", "2"], 2))))))  # fmt: skip
            assert set(reply) == {"units"} and 1 <= len(reply["units"]) <= 2 and set(reply["units"]) <= {"1", "2"}
    # llama-cpp-python's server rejects 'json_schema': the first call fell back, and only the first.
    assert model.schema_style == "json_object"
    fallbacks = [r for r in caplog.records if "rejects response_format 'json_schema'" in r.getMessage()]
    assert len(fallbacks) == 1


def test_next_word_probabilities_are_real_probabilities(server_url: str, caplog: pytest.LogCaptureFixture) -> None:
    model = client(server_url)
    with caplog.at_level(logging.INFO, logger="bot.llm.openai_http"):
        odds = asyncio.run(model.next_word_probabilities([ChatMessage("user", "Is water wet? Reply yes or no.")], ("yes", "no")))  # fmt: skip
    assert set(odds) == {"yes", "no"} and abs(sum(odds.values()) - 1) < 1e-6
    assert 0.0 < odds["yes"] < 1.0 and 0.0 < odds["no"] < 1.0  # from top_logprobs, not the one word it wrote
    assert not [r for r in caplog.records if "logprobs" in r.getMessage() or "without probabilities" in r.getMessage()]


def test_tutorbot_ask_answers_from_the_lessons_through_the_server(
    server_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(BUNDLED, settings.knowledge_dir / "ai-foundations")
    assert ingest_knowledge(settings)
    monkeypatch.chdir(settings.data_dir)  # no stray .env from the working folder
    monkeypatch.setenv("TUTORBOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TUTORBOT_KNOWLEDGE_DIR", str(settings.knowledge_dir))
    monkeypatch.setenv("TUTORBOT_MODEL__MODELS_DIR", str(settings.models_dir))
    monkeypatch.setenv("TUTORBOT_MODEL__SERVER_URL", server_url)
    monkeypatch.setenv("TUTORBOT_MODEL__SERVER_MODEL", "small")
    question = "what does the student model actually train on?"
    result = CliRunner().invoke(
        app, ["ask", question, "--track", "ai-foundations", "--lesson", "distillation", "--json"]
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert not answer["refused"], answer
    assert answer["citations"] and all(c["lesson"] == "distillation" for c in answer["citations"])
    assert answer["quotes"] and answer["answer"].startswith("“")


def test_reports_an_unreachable_server() -> None:
    model = OpenAIChatModel(f"http://127.0.0.1:{free_port()}/v1", "small", max_seconds=5)
    with pytest.raises(ModelFailed, match="could not reach the model server"):
        asyncio.run(collect(model, [ChatMessage("user", "hi")], Generation(4)))
