"""A model call ends at its time limit whatever the model does: stalls before a word or between words."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

import pytest

from bot.core.answering import Answerer
from bot.core.engine import Engine
from bot.core.ports import ChatMessage, Generation, ModelTimedOut
from bot.llm.deadline import until
from bot.llm.llama import LlamaChatModel
from bot.llm.openai_http import OpenAIChatModel
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner
from tests.fakes import FixedRetriever
from tests.unit.test_engine import PROMPTS, TRACKS, passage
from tests.unit.test_llama_worker import LongPromptLlama, wait_until_idle


class Source:
    """An async stream of pieces that stalls for good after ``pieces``; notes when it is closed."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.closed = False

    async def stream(self) -> AsyncGenerator[str, None]:
        try:
            for piece in self.pieces:
                yield piece
            await asyncio.Event().wait()  # never set: the model stalls
        finally:
            self.closed = True


async def collect(pieces: AsyncGenerator[str, None]) -> list[str]:
    return [piece async for piece in pieces]


def test_a_stall_before_the_first_piece_fails_at_the_deadline_and_closes_the_source() -> None:
    source = Source([])
    with pytest.raises(ModelTimedOut, match="time limit of 0.2 s"):
        asyncio.run(collect(until(time.monotonic() + 0.2, source.stream(), 0.2)))
    assert source.closed


def test_a_stall_after_some_pieces_keeps_them_and_ends_the_stream() -> None:
    source = Source(["The ", "reply "])
    assert asyncio.run(collect(until(time.monotonic() + 0.2, source.stream(), 0.2))) == ["The ", "reply "]
    assert source.closed


def test_the_sources_own_timeout_is_not_mistaken_for_the_deadline() -> None:
    async def failing() -> AsyncGenerator[str, None]:
        yield "a"
        raise TimeoutError("the source's own")

    with pytest.raises(TimeoutError, match="the source's own"):
        asyncio.run(collect(until(time.monotonic() + 60, failing(), 60)))


# ---------------------------------------------------------------- a model server that stalls


async def serving(respond: Callable[[asyncio.StreamWriter], Awaitable[None]], test: Callable[[str], Awaitable[object]]):  # noqa: ANN201
    """Run ``test(base_url)`` against a local HTTP server whose every answer is written by ``respond``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        await reader.readexactly(length)
        try:
            await respond(writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await test(f"http://127.0.0.1:{port}/v1")
    finally:
        server.close()


def sse(piece: str) -> bytes:
    data = json.dumps({"choices": [{"delta": {"content": piece}}]})
    line = f"data: {data}\n\n".encode()
    return f"{len(line):x}\r\n".encode() + line + b"\r\n"


async def one_piece_then_stall(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(sse("Units 1"))
    await writer.drain()
    await asyncio.sleep(30)


async def trickle(writer: asyncio.StreamWriter) -> None:
    """A piece every 50 ms for ever: no single read is slow, the call as a whole is."""
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        writer.write(sse("."))
        await writer.drain()
        await asyncio.sleep(0.05)


async def silence(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


def stream_from(max_seconds: float) -> Callable[[str], Awaitable[str]]:
    async def test(url: str) -> str:
        model = OpenAIChatModel(url, "local", max_seconds=max_seconds)
        return "".join([piece async for piece in model.stream([ChatMessage("user", "hi")], Generation(10_000))])

    return test


def test_a_model_server_that_stalls_after_a_piece_gives_the_reply_so_far_at_the_limit() -> None:
    assert asyncio.run(serving(one_piece_then_stall, stream_from(0.5))) == "Units 1"


def test_a_model_server_that_trickles_for_ever_is_cut_at_the_limit() -> None:
    text = asyncio.run(serving(trickle, stream_from(0.5)))
    assert text and set(text) == {"."}


def test_a_silent_model_server_times_out_streaming_and_judging() -> None:
    with pytest.raises(ModelTimedOut):
        asyncio.run(serving(silence, stream_from(0.3)))

    async def judge(url: str) -> object:
        model = OpenAIChatModel(url, "local", max_seconds=0.3)
        return await model.next_word_probabilities([ChatMessage("user", "yes or no?")], ("yes", "no"))

    with pytest.raises(ModelTimedOut):
        asyncio.run(serving(silence, judge))


# ---------------------------------------------------------------- what the learner sees


def test_a_learner_whose_question_stalls_the_model_gets_the_failure_reply(tmp_path: Path) -> None:
    fake = LongPromptLlama()
    model = LlamaChatModel(None, max_seconds=0.3, loader=lambda: fake)
    answerer = Answerer(FixedRetriever([passage()]), model, PROMPTS)
    engine = Engine(TRACKS, SqlProgressStore(tmp_path / "progress.sqlite3"), answerer)
    ada = Learner(engine)
    ada.say("what does the student learn from the teacher?")
    assert "couldn't write an answer just now" in ada.text and "try again" in ada.text
    wait_until_idle(model)
    model.close()
