"""The prompt-state cache with the real small model: lean saved states restore exactly what a fresh run computes."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.llm.llama import lean_state_llama

pytestmark = pytest.mark.integration

PROMPT = "A short note on printing presses. " + "Movable type made books cheaper. " * 40


def test_a_lean_state_restores_the_same_continuation(small_chat_model_path: Path) -> None:
    llm = lean_state_llama()(model_path=str(small_chat_model_path), n_ctx=2048, n_threads=2, verbose=False)
    llm.create_completion(PROMPT, max_tokens=1)
    state = llm.save_state()
    assert state.scores.shape[0] == 0 and state.llama_state_size > 0  # no score matrix, the KV state whole
    assert llm.scores.shape[0] > 0  # the model keeps its own scores array
    llm.reset()
    llm.create_completion("Something else entirely, to overwrite the context.", max_tokens=4)
    llm.load_state(state)
    # The context now claims the prompt's tokens, so the next call evaluates only " Then": were the KV state
    # not restored, the continuation would be computed from the wrong context and differ.
    assert llm.n_tokens == state.n_tokens and list(llm._input_ids) == list(state.input_ids[: state.n_tokens])
    restored = llm.create_completion(PROMPT + " Then", max_tokens=16, temperature=0)["choices"][0]["text"]
    llm.reset()
    fresh = llm.create_completion(PROMPT + " Then", max_tokens=16, temperature=0)["choices"][0]["text"]
    assert restored == fresh and restored.strip()


def test_a_call_out_of_time_stops_reading_and_leaves_a_context_that_answers_as_a_fresh_one(
    small_chat_model_path: Path,
) -> None:
    import asyncio

    from bot.core.ports import ChatMessage, Generation, ModelTimedOut
    from bot.llm.llama import LlamaChatModel

    llm = lean_state_llama()(model_path=str(small_chat_model_path), n_ctx=2048, n_batch=32, n_threads=2, verbose=False)
    model = LlamaChatModel(small_chat_model_path, max_seconds=0.5, loader=lambda: llm, preload=True)
    messages = [ChatMessage("user", PROMPT + "\nIn five words, what made books cheaper?")]

    async def reply() -> str:
        return "".join([piece async for piece in model.stream(messages, Generation(8))])

    with pytest.raises(ModelTimedOut):
        asyncio.run(reply())
    model.close()  # waits for the worker: it stops between two batches of the prompt
    prompt_tokens = len(llm.tokenize(PROMPT.encode()))
    assert 0 < llm.n_tokens < prompt_tokens  # it stopped reading part way
    model = LlamaChatModel(small_chat_model_path, max_seconds=120, loader=lambda: llm, preload=True)
    resumed = asyncio.run(reply())  # reads on from the tokens it had read
    llm.reset()
    fresh = asyncio.run(reply())
    model.close()
    assert resumed == fresh and resumed.strip()
