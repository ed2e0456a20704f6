"""The default chat model: a GGUF file run in-process by llama-cpp-python, on one worker thread.

One ``Llama`` object must never serve two calls at once, so every call goes through a bounded queue to a
single worker thread; when the queue is full the caller gets ``ModelBusy`` at once instead of waiting
without limit. Tokens stream back to the caller's event loop as they are sampled. Each call is capped in
output tokens and in seconds: the caller stops waiting at the limit whatever the model is doing (see
``bot.llm.deadline``), and llama.cpp is stopped between two batches of the prompt it reads, so a cancelled or
late call stops computing instead of holding the worker. A RAM state cache keeps the KV state of lesson prompts read ahead while the
model is idle (``warm``), so a question whose prompt starts the same way (same rules, same lesson passage)
skips re-reading that prefix, even when learners interleave lessons. Answers are not cached: they would
crowd out the read-ahead prompts that later questions share.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.ports import ChatMessage, Generation, ModelBusy, ModelFailed, ModelTimedOut
from bot.llm.deadline import until

log = logging.getLogger(__name__)
_END = object()
_WAKE = object()  # wakes the worker to look at prompts to warm
WARM_BACKLOG = 64  # prompts waiting to be warmed; older ones are dropped first
REPEAT_PENALTY = 1.1  # small models loop on their own sentences without it


class Interrupted(Exception):  # noqa: N818 - not an error: the call it stops is over
    """Raised between two batches of llama.cpp's evaluation when the call it serves is cancelled or late."""


def _never() -> bool:
    return False


class InterruptibleEval:
    """A mixin for ``llama_cpp.Llama``: evaluates tokens one batch at a time and asks ``interrupt`` before each.

    llama.cpp cannot be stopped inside a batch, so a call past its time or no longer wanted stops computing
    within one batch (``n_batch`` tokens, a few seconds on two cores) and raises ``Interrupted``. The tokens
    evaluated so far stay valid: ``Llama.eval`` counts them batch by batch.
    """

    interrupt: Callable[[], bool] = staticmethod(_never)
    n_batch: int

    def eval(self, tokens: Sequence[int]) -> None:
        """``Llama.eval``, batch by batch, stopping with ``Interrupted`` when ``interrupt()`` says so."""
        for start in range(0, len(tokens), self.n_batch):
            if self.interrupt():
                raise Interrupted()
            super().eval(tokens[start : start + self.n_batch])  # type: ignore[misc]


@dataclass(frozen=True)
class _Started:
    """The worker began a call: the time (``time.monotonic()``) by which it must be over."""

    deadline: float


@dataclass
class _Job:
    messages: list[dict[str, str]]
    generation: Generation
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue
    cancelled: threading.Event = field(default_factory=threading.Event)
    ended: bool = False  # the end of the reply was already sent
    emitted: bool = False  # a piece of the reply was sent
    words: tuple[str, ...] = ()  # a probe: report these words' next-token probabilities instead of generating

    def emit(self, item: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:  # the caller's loop is gone: nobody is listening any more
            self.cancelled.set()


def lean_state_llama() -> type:
    """A ``llama_cpp.Llama`` whose saved prompt states leave out the per-token score matrix (and whose prompt
    evaluation can be interrupted, see ``InterruptibleEval``).

    ``Llama.save_state`` copies ``scores`` (n_batch x vocabulary floats: 311 MB for Qwen2.5) and
    ``load_state`` copies it back and scans it: 0.7 s and 1.4 s on two cores, holding the GIL for much of
    it, for every cached answer and every cache hit. Generation never reads those rows back (it samples
    from the context's own logits after re-evaluating at least the last prompt token; scores serve only
    logprobs, logits processors and stopping criteria, which tutorbot does not use), so the cache keeps
    just the KV state and the token ids.
    """
    from llama_cpp import Llama

    class LeanStateLlama(InterruptibleEval, Llama):
        def save_state(self):  # noqa: ANN202 - a llama_cpp.LlamaState
            scores, self.scores = self.scores, self.scores[:0]
            try:
                return super().save_state()
            finally:
                self.scores = scores

        def load_state(self, state) -> None:  # noqa: ANN001 - a llama_cpp.LlamaState
            if len(state.scores):  # a state saved with its scores (not by us): restore it whole
                return super().load_state(state)
            scores, self.scores = self.scores, self.scores[:0]
            try:
                super().load_state(state)
            finally:
                self.scores = scores

    return LeanStateLlama


def load_llama(path: Path, n_threads: int, n_ctx: int, cache_bytes: int) -> Any:
    """A ``llama_cpp.Llama`` for ``path`` with a RAM prompt-state cache."""
    from llama_cpp import LlamaRAMCache

    if not path.is_file():
        raise ModelFailed(f"the chat model file {path} does not exist; run 'tutorbot models pull'")
    # use_mmap=False: llama.cpp repacks the Q4_K weights into its own buffer for the CPU kernels, and with the
    # file mapped as well the process held both (RSS 1935 MB against 1344 MB after a 600-token prompt, same
    # speed; loading takes ~1.6 s longer). bench/lesson_memory.py prints the whole process's RSS.
    llm = lean_state_llama()(
        model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads, use_mmap=False, verbose=False
    )
    if cache_bytes:
        llm.set_cache(LlamaRAMCache(capacity_bytes=cache_bytes))
    return llm


class LlamaChatModel:
    """``ChatModel`` backed by llama-cpp-python in this process."""

    def __init__(
        self,
        model_path: Path,
        n_threads: int | None = None,
        n_ctx: int = 4096,
        queue_size: int = 8,
        max_seconds: float = 60.0,
        cache_bytes: int = 2 << 30,
        loader: Callable[[], Any] | None = None,
        preload: bool = False,
    ):
        self.model_path = model_path
        self.max_seconds = max_seconds
        threads = n_threads or os.cpu_count() or 1
        self._loader = loader or (lambda: load_llama(model_path, threads, n_ctx, cache_bytes))
        self._llm: Any = None
        self._preload = preload
        self._preloaded = threading.Event()
        self._jobs: queue.Queue[_Job | None | object] = queue.Queue(maxsize=queue_size)
        # Prompts waiting to be read, by key, oldest first (at most WARM_BACKLOG). Whether a prompt is already
        # read is asked of the prompt cache itself when its turn comes, so one the cache evicted is read again.
        self._prompts_to_warm: collections.OrderedDict[int, list[dict[str, str]]] = collections.OrderedDict()
        self._warm_lock = threading.Lock()  # warm() is called from the event loop and from turn threads
        self._warming = False  # the worker is reading a prompt ahead
        self._formatter: Any = None
        self._worker = threading.Thread(target=self._run, name="llama-worker", daemon=True)
        self._worker.start()
        if preload:
            # Load now, before the caller prints anything: with verbose=False llama.cpp silences the whole
            # process's stdout and stderr (file descriptors 1 and 2) while it loads a model.
            self._preloaded.wait()

    @property
    def llm(self) -> Any:
        """The loaded ``Llama`` (loading it on first use); only the worker thread may call it."""
        if self._llm is None:
            self._llm = self._loader()
        return self._llm

    def stream(self, messages: Sequence[ChatMessage], generation: Generation) -> AsyncIterator[str]:
        """Queue a call and stream its reply; raises ModelBusy at once when the queue is full."""
        loop = asyncio.get_running_loop()
        job = _Job([{"role": m.role, "content": m.content} for m in messages], generation, loop, asyncio.Queue())
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise ModelBusy() from None
        return self._drain(job)

    async def _drain(self, job: _Job) -> AsyncIterator[Any]:
        """The job's reply, ended (or failed) at its time limit whatever the worker is doing."""
        try:
            deadline = await self._started(job)
            async for item in until(deadline, self._items(job), self.max_seconds):
                yield item
        finally:
            job.cancelled.set()  # stop generating when the caller stops listening (or stops waiting)

    async def _started(self, job: _Job) -> float:
        """Wait for the worker to begin the job; its deadline.

        Every call ahead of this one ends by its own time limit, so a wait longer than a full queue of them
        means the worker is stuck: the caller is told instead of waiting for ever.
        """
        try:
            async with asyncio.timeout(self.max_seconds * (self._jobs.maxsize + 2)):
                item = await job.out.get()
        except TimeoutError:
            raise ModelTimedOut("the chat model did not get to this call in time; it may be stuck") from None
        if isinstance(item, BaseException):
            raise item  # it could not even start (the model file would not load)
        assert isinstance(item, _Started), item
        return item.deadline

    @staticmethod
    async def _items(job: _Job) -> AsyncGenerator[Any, None]:
        while True:
            item = await job.out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def next_word_probabilities(self, messages: Sequence[ChatMessage], words: Sequence[str]) -> dict[str, float]:
        """How likely the reply is to start with each of ``words`` (any case), normalised over them."""
        loop = asyncio.get_running_loop()
        prompt = [{"role": m.role, "content": m.content} for m in messages]
        job = _Job(prompt, Generation(1), loop, asyncio.Queue(), words=tuple(words))
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise ModelBusy() from None
        result: dict[str, float] = {}
        async for item in self._drain(job):
            result = item
        return result

    def warm(self, messages: Sequence[ChatMessage]) -> None:
        """Read this prompt when the model is otherwise idle and keep its state in the prompt cache.

        A later question whose prompt starts the same way (the same lesson passage) then skips reading it.
        Warming runs only while no call waits, one prompt at a time, so a learner's call waits at most for
        the one prompt being read (a few seconds), never for the backlog.
        """
        prompt = [{"role": m.role, "content": m.content} for m in messages]
        key = hash(tuple((m["role"], m["content"]) for m in prompt))
        with self._warm_lock:
            if key in self._prompts_to_warm:
                return
            self._prompts_to_warm[key] = prompt
            if len(self._prompts_to_warm) > WARM_BACKLOG:
                self._prompts_to_warm.popitem(last=False)
        if self._jobs.empty():  # the worker may be asleep; a busy worker looks at this list after its call
            with contextlib.suppress(queue.Full):
                self._jobs.put_nowait(_WAKE)

    def idle(self) -> bool:
        """True when no call is waiting or running and nothing is left to warm."""
        return self._jobs.unfinished_tasks == 0 and not self._prompts_to_warm and not self._warming

    def close(self) -> None:
        """Stop the worker after the calls already queued (prompts not yet warmed are dropped)."""
        with self._warm_lock:
            self._prompts_to_warm.clear()
        self._jobs.put(None)
        self._worker.join(timeout=self.max_seconds)

    # ------------------------------------------------------------ worker thread

    def _run(self) -> None:
        if self._preload:
            try:
                _ = self.llm
            except Exception:  # noqa: BLE001 - the first call reports the failure to its caller
                log.warning("could not preload the chat model; the first question will try again", exc_info=True)
            finally:
                self._preloaded.set()
        while True:
            prompt = self._next_to_warm() if self._jobs.empty() else None
            if prompt is not None:
                try:
                    self._warm_one(prompt)
                finally:
                    self._warming = False
                continue
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if not isinstance(job, _Job) or job.cancelled.is_set():
                    continue
                self._serve(job)
            finally:
                self._jobs.task_done()

    def _next_to_warm(self) -> list[dict[str, str]] | None:
        with self._warm_lock:
            if not self._prompts_to_warm:
                return None
            self._warming = True
            return self._prompts_to_warm.popitem(last=False)[1]

    def _is_cached(self, prompt: list[dict[str, str]]) -> bool:
        """Whether the prompt cache holds the state of this whole prompt (then reading it again is waste)."""
        from llama_cpp import Llama

        cache = getattr(self.llm, "cache", None)
        if cache is None:
            return False
        try:
            tokens = self._prompt_tokens(prompt)
            cached = cache[tokens]
        except Exception:  # noqa: BLE001 - not found, or a stand-in without a tokenizer: read it
            return False
        return Llama.longest_token_prefix(cached.input_ids.tolist(), tokens) >= len(tokens)

    def _warm_one(self, prompt: list[dict[str, str]]) -> None:
        if self._is_cached(prompt):
            return
        try:
            deadline = time.monotonic() + self.max_seconds  # a prompt read ahead has the same time limit as a call
            self.llm.interrupt = lambda: time.monotonic() > deadline
            for _chunk in self.llm.create_chat_completion(messages=prompt, max_tokens=1, temperature=0.0, stream=True):
                pass  # reading the prompt is the point; the state is saved to the cache at the end
        except Interrupted:
            log.info("a prompt read ahead took longer than %g s; left unread", self.max_seconds)
        except Exception:  # noqa: BLE001 - warming is an optimisation; a failure must not stop the worker
            log.warning("could not warm a prompt", exc_info=True)

    def _serve(self, job: _Job) -> None:
        try:
            llm = self.llm  # loading the model (first call only) does not count against the call's time
            deadline = time.monotonic() + self.max_seconds
            job.emit(_Started(deadline))
            llm.interrupt = lambda: job.cancelled.is_set() or time.monotonic() > deadline
            if job.words:
                job.emit(self._probe(job.messages, job.words))
            else:
                self._generate(job, deadline)
        except Interrupted:
            if not job.cancelled.is_set():  # its time ran out while llama.cpp read; the caller sees it too
                job.emit(
                    _END
                    if job.emitted
                    else ModelTimedOut(f"the chat model wrote nothing within {self.max_seconds:g} s")
                )
        except ModelFailed as error:
            job.emit(error)
        except Exception as error:  # noqa: BLE001 - anything llama.cpp raises must reach the caller
            log.exception("chat model call failed")
            job.emit(ModelFailed(f"the chat model failed: {error}"))
        else:
            if not job.ended:
                job.emit(_END)

    def _prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat prompt as the model's chat template formats it, ready for the reply (as chat completion does)."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self.llm
        if self._formatter is None:

            def text(token: int) -> str:
                return llm._model.token_get_text(token) if token != -1 else ""  # noqa: SLF001 - as Llama does

            self._formatter = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], eos_token=text(llm.token_eos()),
                                                  bos_token=text(llm.token_bos()))  # fmt: skip
        formatted = self._formatter(messages=messages)
        return llm.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)

    def _probe(self, messages: list[dict[str, str]], words: tuple[str, ...]) -> dict[str, float]:
        """Next-token probabilities of ``words`` after the prompt, reusing a cached prefix as generation does."""
        import numpy as np
        from llama_cpp import Llama

        llm = self.llm
        tokens = self._prompt_tokens(messages)
        if llm.cache is not None:
            try:
                cached = llm.cache[tokens]
                if Llama.longest_token_prefix(cached.input_ids.tolist(), tokens) > Llama.longest_token_prefix(
                    llm._input_ids.tolist(),
                    tokens,  # noqa: SLF001 - the tokens already in the context
                ):
                    llm.load_state(cached)
            except KeyError:
                pass
        reused = min(Llama.longest_token_prefix(llm._input_ids.tolist(), tokens), len(tokens) - 1)  # noqa: SLF001
        llm.n_tokens = reused
        llm.eval(tokens[reused:])
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float64)  # noqa: SLF001
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        mass: dict[str, float] = {}
        for word in words:
            variants = {word.lower(), word.capitalize(), word.upper(), " " + word.lower(), " " + word.capitalize()}
            ids = {llm.tokenize(v.encode("utf-8"), add_bos=False, special=False)[0] for v in variants}
            mass[word] = float(sum(probabilities[i] for i in ids))
        total = sum(mass.values())
        return {word: (value / total if total else 0.0) for word, value in mass.items()}

    def _generate(self, job: _Job, deadline: float) -> None:
        kwargs: dict[str, Any] = {
            "messages": job.messages,
            "stream": True,
            "max_tokens": job.generation.max_tokens,
            "temperature": 0.0,
            "repeat_penalty": REPEAT_PENALTY,
        }
        if job.generation.json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": job.generation.json_schema}
        chunks = self.llm.create_chat_completion(**kwargs)
        cache = self.llm.cache
        try:
            for chunk in chunks:
                # The prompt was looked up in the cache before the first token came. Keep this reply's own
                # state out of it: the cache is for the lesson prompts read ahead, which later questions
                # share; answers would crowd them out (tens of MB each).
                self.llm.cache = None
                choice = chunk["choices"][0]
                piece = choice["delta"].get("content")
                if piece:
                    job.emit(piece)
                    job.emitted = True
                if choice.get("finish_reason") is not None and not job.ended:
                    job.emit(_END)  # the reply is whole; the caller need not wait for the generator to wind up
                    job.ended = True
                if job.cancelled.is_set() or time.monotonic() > deadline:
                    break
        finally:
            chunks.close()
            self.llm.cache = cache
