"""The webhook receiver: secret checked, updates queued, and a full queue refused so memory stays bounded."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiohttp.test_utils import TestClient, TestServer
from telegram import Bot

from bot.adapters.telegram import MAX_QUEUED_UPDATES, SECRET_HEADER, webhook_app

UPDATE = {"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                      "from": {"id": 5, "is_bot": False, "first_name": "Ada"}, "text": "help"}}  # fmt: skip


def test_a_full_update_queue_answers_503_and_queues_nothing_more() -> None:
    async def scenario() -> list[int]:
        application = SimpleNamespace(update_queue=asyncio.Queue(), bot=Bot("123:abc"))
        for n in range(MAX_QUEUED_UPDATES - 1):
            application.update_queue.put_nowait(n)
        statuses = []
        async with TestClient(TestServer(webhook_app(application, "/hook", "s3cret"))) as client:
            for secret in ("wrong", "s3cret", "s3cret"):
                response = await client.post("/hook", json=UPDATE, headers={SECRET_HEADER: secret})
                statuses.append(response.status)
            response = await client.post("/hook", data=b"not json", headers={SECRET_HEADER: "s3cret"})
            statuses.append(response.status)
        assert application.update_queue.qsize() == MAX_QUEUED_UPDATES
        return statuses

    assert asyncio.run(scenario()) == [403, 200, 503, 400]
