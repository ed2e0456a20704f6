"""A webhook worker's loop over the shared inbox: claim a chat with updates waiting, handle them in update-id order,
one at a time, and give the chat back; several chats at once, and never a chat another live worker holds.

Every call to the database runs in a thread. A worker renews the leases of the chats it works on while a turn runs
(a model answer may outlast a lease); one that dies keeps them until they expire, and then another worker goes on
from the chat's first update not done. Asked to stop, a worker takes no new chat, finishes the update in hand in
each chat, and releases its leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable

from bot.core.ports import StoreUnavailable
from bot.store.inbox import Inbox

log = logging.getLogger(__name__)

CLEAN_EVERY = 600.0  # seconds between two clean-ups of old rows by one worker


def worker_name() -> str:
    """A name no other worker process has, now or later: host, process id and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class InboxWorker:
    """Handles the inbox's chats, each in order; ``handle`` gets an update's JSON body and runs its turn."""

    def __init__(self, inbox: Inbox, handle: Callable[[str], Awaitable[None]], *, lease_seconds: float,
                 poll_seconds: float, chats_at_once: int, clock: Callable[[], float] = time.time,
                 name: str | None = None) -> None:  # fmt: skip
        self.inbox = inbox
        self.handle = handle
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.chats_at_once = chats_at_once
        self.clock = clock
        self.name = name or worker_name()
        self._wake = asyncio.Event()
        self._stopping = False
        self._chats: dict[int, asyncio.Task[None]] = {}
        self._cleaned_at = -CLEAN_EVERY

    def wake(self) -> None:
        """Look for chats to take at once (this process just stored an update)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and handle chats until ``stop`` is set; then finish the update in hand in each and release them.

        Cancelled, it stops at once and keeps its leases, like a worker that died: they expire.
        """
        try:
            while not stop.is_set():
                await self._claim()
                await self._clean()
                self._wake.clear()
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                try:
                    await asyncio.wait(waits, timeout=self.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiting in waits:
                        waiting.cancel()
            self._stopping = True
            await asyncio.gather(*self._chats.values(), return_exceptions=True)
        except asyncio.CancelledError:
            for task in self._chats.values():
                task.cancel()
            raise

    async def _claim(self) -> None:
        free = self.chats_at_once - len(self._chats)
        if free <= 0:
            return
        try:
            chats = await asyncio.to_thread(self.inbox.claimable, self.clock(), free)
            for chat in chats:
                if chat in self._chats or len(self._chats) >= self.chats_at_once:
                    continue
                if await asyncio.to_thread(self.inbox.claim, chat, self.name, self.clock(), self.lease_seconds):
                    task = asyncio.create_task(self._work(chat), name=f"telegram-chat-{chat}")
                    self._chats[chat] = task
                    task.add_done_callback(functools.partial(self._finished, chat))
        except StoreUnavailable as error:  # the store logged why; the inbox keeps everything until it is back
            log.warning("could not look for Telegram chats to handle: %s", type(error).__name__)

    def _finished(self, chat: int, _task: asyncio.Task[None]) -> None:
        self._chats.pop(chat, None)
        self._wake.set()  # a free slot, and the chat may have got an update since we last looked

    async def _work(self, chat: int) -> None:
        """Handle the chat's updates in order while the lease is ours; release it when none is left."""
        renewing = asyncio.create_task(self._renew(chat))
        try:
            while not self._stopping and not renewing.done():
                pending = await asyncio.to_thread(self.inbox.next_pending, chat)
                if pending is None:
                    break
                try:
                    await self.handle(pending.body)
                except Exception:  # the handlers' own errors are theirs; this is the plumbing failing
                    log.exception("handling Telegram update %s of chat %s failed", pending.update_id, chat)
                await asyncio.to_thread(self.inbox.done, pending.update_id, self.clock())
        except StoreUnavailable as error:
            log.warning("stopped handling Telegram chat %s: %s (another worker goes on later)", chat,
                        type(error).__name__)  # fmt: skip
        finally:
            renewing.cancel()
        # Not in ``finally``: a cancelled worker is a dead one, whose leases expire.
        with contextlib.suppress(StoreUnavailable):
            await asyncio.to_thread(self.inbox.release, chat, self.name)

    async def _renew(self, chat: int) -> None:
        """Keep the lease alive while the chat is worked on; return once it is lost (another worker took it)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await asyncio.to_thread(self.inbox.renew, chat, self.name, self.clock(), self.lease_seconds):
                    log.warning("lost the lease of Telegram chat %s to another worker; stopping there", chat)
                    return
            except StoreUnavailable as error:
                log.warning("could not renew the lease of Telegram chat %s: %s", chat, type(error).__name__)

    async def _clean(self) -> None:
        now = self.clock()
        if now - self._cleaned_at < CLEAN_EVERY:
            return
        self._cleaned_at = now
        try:
            gone = await asyncio.to_thread(self.inbox.clean, now)
        except StoreUnavailable as error:
            log.warning("could not clean the Telegram inbox: %s", type(error).__name__)
            return
        if gone:
            log.info("forgot %d Telegram updates handled over a day ago", gone)
