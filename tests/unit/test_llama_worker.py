"""The in-process model's worker: one call at a time, a bounded queue, streaming, caps and failures."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from bot.core.ports import ChatMessage, Generation, ModelBusy, ModelFailed, ModelTimedOut
from bot.llm.llama import InterruptibleEval, LlamaChatModel


class FakeLlama:
    """Stands in for llama_cpp.Llama: streams words, can be held, records calls and overlap."""

    def __init__(self, words: int = 5, endless: bool = False):
        self.words = words
        self.endless = endless
        self.release = threading.Event()
        self.release.set()
        self.calls: list[dict] = []
        self.active = 0
        self.max_active = 0
        self.cache: object | None = None  # llama_cpp.Llama's prompt-state cache (none unless set)

    def create_chat_completion(self, **kwargs):
        self.calls.append(kwargs)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            self.release.wait(5)
            n = 0
            while self.endless or n < self.words:
                yield {"choices": [{"delta": {"content": f"w{n} "}}]}
                n += 1
        finally:
            self.active -= 1


async def collect(model: LlamaChatModel, generation: Generation | None = None) -> str:
    return "".join([piece async for piece in model.stream([ChatMessage("user", "hi")], generation or Generation(16))])


def test_streams_pieces_and_passes_the_schema() -> None:
    fake = FakeLlama()
    model = LlamaChatModel(None, loader=lambda: fake)
    schema = {"type": "object"}
    assert asyncio.run(collect(model, Generation(16, schema))) == "w0 w1 w2 w3 w4 "
    call = fake.calls[0]
    assert call["max_tokens"] == 16 and call["temperature"] == 0.0 and call["stream"] is True
    assert call["response_format"] == {"type": "json_object", "schema": schema}
    model.close()


def test_calls_never_overlap_and_a_full_queue_answers_busy() -> None:
    fake = FakeLlama()
    fake.release.clear()
    model = LlamaChatModel(None, queue_size=2, loader=lambda: fake)

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(collect(model))
        await asyncio.sleep(0.2)  # the worker is now inside the first call
        queued = [asyncio.ensure_future(collect(model)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(ModelBusy, match="busy"):
            model.stream([ChatMessage("user", "one too many")], Generation(4))
        fake.release.set()
        return await asyncio.gather(first, *queued)

    results = asyncio.run(scenario())
    assert results == ["w0 w1 w2 w3 w4 "] * 3
    assert fake.max_active == 1
    model.close()


def test_generation_stops_at_the_time_cap() -> None:
    fake = FakeLlama(endless=True)
    model = LlamaChatModel(None, max_seconds=0.2, loader=lambda: fake)
    text = asyncio.run(collect(model))
    assert text.startswith("w0 w1") and len(fake.calls) == 1
    model.close()


def test_a_caller_that_stops_listening_stops_the_generation() -> None:
    fake = FakeLlama(endless=True)
    model = LlamaChatModel(None, loader=lambda: fake)

    async def take_three() -> list[str]:
        got = []
        stream = model.stream([ChatMessage("user", "hi")], Generation(10_000))
        async for piece in stream:
            got.append(piece)
            if len(got) == 3:
                break
        await stream.aclose()
        return got

    assert len(asyncio.run(take_three())) == 3
    assert asyncio.run(collect(LlamaChatModel(None, loader=lambda: FakeLlama()))) == "w0 w1 w2 w3 w4 "
    model.close()
    assert fake.active == 0


def test_a_failing_model_reaches_the_caller_as_model_failed() -> None:
    def broken():
        raise RuntimeError("bad magic in GGUF file")

    model = LlamaChatModel(None, loader=broken)
    with pytest.raises(ModelFailed, match="bad magic"):
        asyncio.run(collect(model))
    model.close()


def test_preload_loads_the_model_before_the_constructor_returns() -> None:
    loads: list[str] = []

    def loader() -> FakeLlama:
        loads.append(threading.current_thread().name)
        return FakeLlama()

    lazy = LlamaChatModel(Path("unused.gguf"), loader=loader)
    assert loads == []  # without preload, the first call loads it
    eager = LlamaChatModel(Path("unused.gguf"), loader=loader, preload=True)
    assert loads == ["llama-worker"]  # loaded on the worker thread, already done
    assert asyncio.run(collect(eager)) == "w0 w1 w2 w3 w4 "
    assert loads == ["llama-worker"]
    lazy.close()
    eager.close()


def test_a_failed_preload_is_reported_by_the_first_call() -> None:
    def loader() -> FakeLlama:
        raise ModelFailed("no such model file")

    model = LlamaChatModel(Path("missing.gguf"), loader=loader, preload=True)
    with pytest.raises(ModelFailed, match="no such model file"):
        asyncio.run(collect(model))
    model.close()


class SavingLlama(FakeLlama):
    """Ends its reply with a finish chunk, then (like llama.cpp) saves the state to its cache, if it has one."""

    def __init__(self) -> None:
        super().__init__(words=3)
        self.cache: object | None = object()
        self.saving = threading.Event()
        self.saving.set()
        self.saved: list[str] = []  # the first message of each call whose state reached the cache

    def create_chat_completion(self, **kwargs):
        yield from super().create_chat_completion(**kwargs)
        yield {"choices": [{"delta": {}, "finish_reason": "stop"}]}
        self.saving.wait(5)
        if self.cache is not None:
            self.saved.append(kwargs["messages"][0]["content"])


def test_the_reply_ends_with_its_finish_chunk_not_after_the_generator_winds_up() -> None:
    fake = SavingLlama()
    fake.saving.clear()
    model = LlamaChatModel(None, loader=lambda: fake)
    assert asyncio.run(collect(model)) == "w0 w1 w2 "  # while the generator was still held after its finish
    fake.saving.set()
    model.close()


def test_prompts_read_ahead_are_cached_and_answers_are_not() -> None:
    fake = SavingLlama()
    model = LlamaChatModel(None, loader=lambda: fake)
    asyncio.run(collect(model))
    model.warm([ChatMessage("user", "lesson section")])

    async def settle() -> None:
        while not model.idle():
            await asyncio.sleep(0.01)

    asyncio.run(settle())
    model.close()
    assert fake.saved == ["lesson section"] and fake.cache is not None  # the cache itself is left in place


def test_warming_waits_for_idle_time_and_never_takes_a_callers_place() -> None:
    fake = FakeLlama(words=2)
    fake.release.clear()  # the first call holds the worker
    model = LlamaChatModel(None, loader=lambda: fake, queue_size=2)

    async def scenario() -> list[str]:
        first = asyncio.create_task(collect(model))
        while fake.active == 0:
            await asyncio.sleep(0.01)
        for n in range(5):  # more prompts to warm than the queue holds calls
            model.warm([ChatMessage("user", f"lesson section {n}")])
        model.warm([ChatMessage("user", "lesson section 0")])  # the same prompt twice is read once
        second = asyncio.create_task(collect(model))  # a learner's call still finds room in the queue
        await asyncio.sleep(0.05)
        fake.release.set()
        await first
        await second
        while not model.idle():
            await asyncio.sleep(0.01)
        return [call["messages"][0]["content"] for call in fake.calls]

    order = asyncio.run(scenario())
    assert order[0] == "hi" and order[1] == "hi"  # both learners' calls before any warming
    assert order[2:] == [f"lesson section {n}" for n in range(5)]
    assert all(call["max_tokens"] == 1 for call in fake.calls[2:])
    model.close()


class _State:
    def __init__(self, tokens: list[int]):
        import numpy as np

        self.input_ids = np.array(tokens)


class CachingLlama(FakeLlama):
    """Saves each prompt's state in a prompt cache the test can evict from, as llama_cpp's LlamaRAMCache does."""

    def __init__(self) -> None:
        super().__init__(words=1)
        self.cache: dict[tuple[int, ...], _State] = {}  # type: ignore[assignment]

    def create_chat_completion(self, **kwargs):
        yield from super().create_chat_completion(**kwargs)
        tokens = _tokens(kwargs["messages"])
        self.cache[tuple(tokens)] = _State([*tokens, 0])  # the prompt, and the one token generated


def _tokens(prompt: list[dict[str, str]]) -> list[int]:
    return [ord(ch) for ch in prompt[-1]["content"]]


class _Lookup(dict):
    def __getitem__(self, tokens):  # the cache is asked with a token list
        return dict.__getitem__(self, tuple(tokens))


def test_a_prompt_read_ahead_is_read_again_once_the_cache_evicted_it() -> None:
    fake = CachingLlama()
    fake.cache = _Lookup()
    model = LlamaChatModel(None, loader=lambda: fake)
    model._prompt_tokens = _tokens  # type: ignore[method-assign] # the fake has no chat template

    def warm_and_settle() -> None:
        model.warm([ChatMessage("user", "lesson page")])

        async def settle() -> None:
            while not model.idle():
                await asyncio.sleep(0.01)

        asyncio.run(settle())

    warm_and_settle()
    warm_and_settle()  # still cached: not read again
    assert len(fake.calls) == 1
    fake.cache.clear()  # the cache made room for other prompts
    warm_and_settle()
    assert len(fake.calls) == 2
    model.close()


def test_prompts_waiting_to_be_read_are_bounded() -> None:
    fake = FakeLlama(words=1)
    fake.release.clear()  # the worker is held inside a call; warm() only queues
    model = LlamaChatModel(None, loader=lambda: fake)

    async def scenario() -> None:
        first = asyncio.create_task(collect(model))
        while fake.active == 0:
            await asyncio.sleep(0.01)
        for n in range(1000):
            model.warm([ChatMessage("user", f"page {n}")])
        assert len(model._prompts_to_warm) == 64  # the newest pages; the oldest were dropped
        fake.release.set()
        await first

    asyncio.run(scenario())


class ReadingBase:
    """Stands in for llama_cpp.Llama's prompt evaluation: each batch takes a moment and is counted."""

    n_batch = 10

    def __init__(self) -> None:
        self.batches = 0
        self.cache: object | None = None

    def eval(self, tokens) -> None:  # noqa: ANN001
        time.sleep(0.005)  # llama.cpp computing one batch
        self.batches += 1


class LongPromptLlama(InterruptibleEval, ReadingBase):
    """A model whose prompt takes far longer to read than any time limit, then writes one word."""

    PROMPT_TOKENS = 100_000  # 10,000 batches: a minute of reading

    def create_chat_completion(self, **kwargs):
        self.eval(list(range(self.PROMPT_TOKENS)))
        yield {"choices": [{"delta": {"content": "late"}, "finish_reason": "stop"}]}


def wait_until_idle(model: LlamaChatModel) -> None:
    """Wait for the worker to finish what it is doing; fail instead of waiting for a worker that never does."""
    for _ in range(3000):
        if model.idle():
            return
        time.sleep(0.01)
    raise AssertionError("the model's worker is still busy with a call its caller gave up on")


def test_a_model_reading_a_long_prompt_is_stopped_at_the_time_limit() -> None:
    fake = LongPromptLlama()
    model = LlamaChatModel(None, max_seconds=0.3, loader=lambda: fake)
    with pytest.raises(ModelTimedOut, match="wrote nothing within its time limit of 0.3 s"):
        asyncio.run(collect(model))
    wait_until_idle(model)
    assert 0 < fake.batches < LongPromptLlama.PROMPT_TOKENS // ReadingBase.n_batch  # it stopped reading
    model.close()


def test_the_caller_stops_waiting_at_the_limit_even_while_the_model_cannot_be_stopped() -> None:
    fake = FakeLlama(endless=True)
    fake.release.clear()  # stuck inside one call into llama.cpp, before the first word
    model = LlamaChatModel(None, max_seconds=0.3, loader=lambda: fake)
    with pytest.raises(ModelTimedOut):
        asyncio.run(collect(model))
    fake.release.set()  # llama.cpp comes back: the worker sees the caller is gone and stops generating
    wait_until_idle(model)
    assert fake.active == 0 and len(fake.calls) == 1
    model.close()


class StallingLlama(FakeLlama):
    """Writes one word, then stalls (held) before the next ones."""

    def __init__(self) -> None:
        super().__init__(endless=True)
        self.stall = threading.Event()

    def create_chat_completion(self, **kwargs):
        self.calls.append(kwargs)
        self.active += 1
        try:
            yield {"choices": [{"delta": {"content": "w0 "}}]}
            self.stall.wait(30)
            yield from ({"choices": [{"delta": {"content": f"w{n} "}}]} for n in range(1, 10_000))
        finally:
            self.active -= 1


def test_a_model_that_stalls_between_pieces_ends_the_reply_at_the_limit() -> None:
    fake = StallingLlama()
    model = LlamaChatModel(None, max_seconds=0.3, loader=lambda: fake)
    assert asyncio.run(collect(model, Generation(10_000))) == "w0 "  # the reply so far; no hang, no error
    fake.stall.set()
    wait_until_idle(model)
    assert fake.active == 0
    model.close()


def test_a_queued_call_gets_its_whole_time_limit_once_the_worker_starts_it() -> None:
    fake = FakeLlama(words=3)
    fake.release.clear()
    model = LlamaChatModel(None, max_seconds=0.5, loader=lambda: fake)

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(collect(model))
        second = asyncio.ensure_future(collect(model))  # waits in the queue behind the first
        results = await asyncio.gather(first, return_exceptions=True)
        fake.release.set()  # the first call timed out; the second now runs at once
        return [*results, await second]

    outcome = asyncio.run(scenario())
    assert isinstance(outcome[0], ModelTimedOut) and outcome[1] == "w0 w1 w2 "
    model.close()
