"""The time limit of one model call, kept on the caller's side of the stream.

Checking the clock between streamed pieces is not enough: a model that stalls before its first piece (a
long prompt being read) or between two pieces would keep the caller waiting past the limit. Here each wait
for the next piece gets only the time left, so the caller gets control back at the limit whatever the model
is doing. Past the limit before the first piece the call fails with ``ModelTimedOut``; after it, the reply
so far stands and the stream ends, as when a call reaches its token cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

from bot.core.ports import ModelTimedOut

T = TypeVar("T")


async def until(deadline: float, pieces: AsyncGenerator[T, None], limit: float) -> AsyncIterator[T]:
    """The items of ``pieces`` that arrive before ``deadline`` (a ``time.monotonic()`` time).

    ``limit`` is the call's whole time limit in seconds, for the message. ``pieces`` is closed in every case,
    so whatever it holds (a model's job, an HTTP response) is let go.
    """
    got_any = False
    try:
        while True:
            timer = asyncio.timeout(max(deadline - time.monotonic(), 0.0))
            try:
                async with timer:
                    piece = await anext(pieces)
            except StopAsyncIteration:
                return
            except TimeoutError:
                if not timer.expired():
                    raise  # not ours: the source's own
                if got_any:
                    return
                raise ModelTimedOut(f"the chat model wrote nothing within its time limit of {limit:g} s") from None
            got_any = True
            yield piece
    finally:
        await pieces.aclose()
