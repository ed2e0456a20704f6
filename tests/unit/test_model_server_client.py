"""The model server client adapts to what the server takes: the JSON-schema shape, and log-probabilities or not.

Each test runs the client against a small in-memory server (httpx's MockTransport) that answers like a real
one: llama-cpp-python's server rejects ``json_schema`` with a 500 naming ``response_format``; OpenAI-style
servers take it; some servers return no ``logprobs``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any

import httpx
import pytest

from bot.config import ModelSettings
from bot.core.ports import ChatMessage, Generation, ModelFailed
from bot.llm.openai_http import OpenAIChatModel

SCHEMA = {"type": "object", "properties": {"units": {"type": "array"}}, "required": ["units"]}
# What llama-cpp-python's server (0.3.x) answers to response_format {"type": "json_schema"}.
LLAMA_CPP_PYTHON_REJECTION = {
    "error": {
        "message": "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
        "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}",
        "type": "internal_server_error",
    }
}


def sse(*pieces: str) -> bytes:
    lines = [f"data: {json.dumps({'choices': [{'delta': {'content': piece}}]})}\n\n" for piece in pieces]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


class Server:
    """An in-memory chat-completions server; records every request body it gets."""

    def __init__(self, takes: tuple[str, ...] = ("json_schema", "json_object"), rejection: tuple[int, Any] = (500, LLAMA_CPP_PYTHON_REJECTION),
                 logprobs: bool = True) -> None:  # fmt: skip
        self.takes = takes
        self.rejection = rejection
        self.logprobs = logprobs
        self.bodies: list[dict[str, Any]] = []

    def formats(self) -> list[str | None]:
        return [(body.get("response_format") or {}).get("type") for body in self.bodies]

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        shape = (body.get("response_format") or {}).get("type")
        if shape is not None and shape not in self.takes:
            status, detail = self.rejection
            return (
                httpx.Response(status, json=detail) if isinstance(detail, dict) else httpx.Response(status, text=detail)
            )
        if body.get("stream"):
            return httpx.Response(
                200, content=sse('{"units": ', '["1"]}'), headers={"content-type": "text/event-stream"}
            )
        choice: dict[str, Any] = {"message": {"role": "assistant", "content": "Yes"}}
        if self.logprobs and body.get("logprobs"):
            top = [{"token": "Yes", "logprob": math.log(0.6)}, {"token": "No", "logprob": math.log(0.2)},
                   {"token": "yes", "logprob": math.log(0.1)}, {"token": "The", "logprob": math.log(0.1)}]  # fmt: skip
            choice["logprobs"] = {"content": [{"token": "Yes", "logprob": math.log(0.6), "top_logprobs": top}]}
        return httpx.Response(200, json={"choices": [choice]})


def client(server: Server, **options: Any) -> OpenAIChatModel:
    return OpenAIChatModel("http://model.test/v1", "local", transport=httpx.MockTransport(server.handle), **options)


def ask_json(model: OpenAIChatModel) -> str:
    async def run() -> str:
        return "".join([piece async for piece in model.stream([ChatMessage("user", "cite")], Generation(20, SCHEMA))])

    return asyncio.run(run())


def judge(model: OpenAIChatModel) -> dict[str, float]:
    return asyncio.run(model.next_word_probabilities([ChatMessage("user", "yes or no?")], ("yes", "no")))


@pytest.mark.parametrize("status", [400, 500])
def test_a_server_rejecting_json_schema_gets_one_retry_as_json_object_and_the_choice_is_kept(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(takes=("json_object",), rejection=(status, LLAMA_CPP_PYTHON_REJECTION))
    model = client(server)
    with caplog.at_level(logging.INFO, logger="bot.llm.openai_http"):
        assert json.loads(ask_json(model)) == {"units": ["1"]}
        assert json.loads(ask_json(model)) == {"units": ["1"]}
    assert server.formats() == ["json_schema", "json_object", "json_object"]  # the second call does not retry
    assert server.bodies[1]["response_format"]["schema"] == SCHEMA
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "rejects response_format 'json_schema'" in warnings[0]
    assert model.schema_style == "json_object"


def test_a_server_taking_json_schema_never_falls_back(caplog: pytest.LogCaptureFixture) -> None:
    server = Server(takes=("json_schema",))
    model = client(server)
    with caplog.at_level(logging.INFO, logger="bot.llm.openai_http"):
        ask_json(model)
        ask_json(model)
    assert server.formats() == ["json_schema", "json_schema"]
    assert server.bodies[0]["response_format"]["json_schema"]["schema"] == SCHEMA
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in caplog.records].count(
        "the model server at http://model.test/v1 takes response_format 'json_schema'"
    ) == 1


def test_an_explicit_style_is_sent_as_is_and_never_retried() -> None:
    server = Server(takes=("json_object",))
    with pytest.raises(ModelFailed, match="answered 500"):
        ask_json(client(server, schema_style="json_schema"))
    assert server.formats() == ["json_schema"]
    forced = Server(takes=("json_object",))
    ask_json(client(forced, schema_style="json_object"))
    assert forced.formats() == ["json_object"]


def test_an_error_that_does_not_name_the_response_format_is_not_retried() -> None:
    server = Server(takes=(), rejection=(503, "the model is loading"))
    model = client(server)
    with pytest.raises(ModelFailed, match="answered 503: the model is loading"):
        ask_json(model)
    assert server.formats() == ["json_schema"] and model.schema_style == "auto"


def test_a_server_rejecting_both_shapes_fails_with_its_own_message() -> None:
    server = Server(takes=())
    with pytest.raises(ModelFailed, match="answered 500.*response_format"):
        ask_json(client(server))
    assert server.formats() == ["json_schema", "json_object"]


def test_a_call_without_a_schema_sends_no_response_format_and_decides_nothing() -> None:
    server = Server()
    model = client(server)

    async def run() -> list[str]:
        return [piece async for piece in model.stream([ChatMessage("user", "hi")], Generation(5))]

    assert asyncio.run(run())
    assert server.formats() == [None] and model.schema_style == "auto"


def test_next_word_probabilities_come_from_top_logprobs_in_any_case(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot.llm.openai_http"):
        odds = judge(client(Server()))
    assert odds == pytest.approx({"yes": 0.7 / 0.9, "no": 0.2 / 0.9})
    assert not caplog.records


def test_a_server_without_logprobs_is_said_so_once_and_each_judgement_is_marked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = client(Server(logprobs=False))
    with caplog.at_level(logging.INFO, logger="bot.llm.openai_http"):
        first, second = judge(model), judge(model)
    assert first == second == {"yes": 1.0, "no": 0.0}  # the word it wrote, as certain
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "returns no logprobs" in warnings[0]
    marked = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(marked) == 2 and all("judged without probabilities" in message for message in marked)


def test_the_schema_style_defaults_to_auto_and_rejects_unknown_names() -> None:
    assert ModelSettings().server_schema_style == "auto"
    with pytest.raises(ValueError, match="schema_style"):
        OpenAIChatModel("http://model.test/v1", "local", schema_style="json")
    with pytest.raises(ValueError, match="server_schema_style"):
        ModelSettings(server_schema_style="json")
