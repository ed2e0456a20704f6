"""The webhook receiver: secret checked, each update stored in the inbox (once) before the call is answered, and
a store that cannot take it answers 503 so Telegram sends it again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from telegram import Bot

from bot.adapters.telegram import SECRET_HEADER, webhook_app
from bot.core.ports import StoreFull
from bot.store.database import Database
from bot.store.inbox import Inbox

UPDATE = {"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                                      "from": {"id": 5, "is_bot": False, "first_name": "Ada"}, "text": "help"}}  # fmt: skip
POLL_ANSWER = {"update_id": 8, "poll_answer": {"poll_id": "p9", "user": {"id": 6, "is_bot": False, "first_name": "Bo"},
                                               "option_ids": [1], "option_persistent_ids": ["p9-1"]}}  # fmt: skip


class FullInbox(Inbox):
    def store(self, *args: object, **kwargs: object) -> bool:
        raise StoreFull()


def post_all(inbox: Inbox, posts: list[tuple[str, object]]) -> tuple[list[int], int]:
    """Post each (secret, body) to a webhook app over ``inbox``; the statuses and how often it said "stored"."""

    async def scenario() -> tuple[list[int], int]:
        application = type("App", (), {"bot": Bot("123:abc")})()
        woken = []
        statuses = []
        app = webhook_app(application, "/hook", "s3cret", inbox, lambda: woken.append(1))
        async with TestClient(TestServer(app)) as client:
            for secret, body in posts:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                response = await client.post("/hook", data=data, headers={SECRET_HEADER: secret})
                statuses.append(response.status)
        return statuses, len(woken)

    return asyncio.run(scenario())


def test_an_update_is_stored_once_before_the_call_is_answered(tmp_path: Path) -> None:
    database = Database(tmp_path / "db.sqlite3")
    inbox = Inbox(database)
    posts = [
        ("wrong", UPDATE),
        ("s3cret", UPDATE),
        ("s3cret", UPDATE),
        ("s3cret", b"not json"),
        ("s3cret", POLL_ANSWER),
    ]
    assert post_all(inbox, posts) == ([403, 200, 200, 400, 200], 3)
    pending = inbox.next_pending(5)
    assert pending is not None and json.loads(pending.body) == UPDATE
    inbox.done(pending.update_id, 1.0)
    assert inbox.next_pending(5) is None
    answer = inbox.next_pending(6)  # a poll answer of an unknown poll waits in its voter's private chat
    assert answer is not None and answer.update_id == 8
    database.close()


def test_a_store_that_cannot_take_the_update_answers_503_so_telegram_retries(tmp_path: Path) -> None:
    database = Database(tmp_path / "db.sqlite3")
    assert post_all(FullInbox(database), [("s3cret", UPDATE)]) == ([503], 0)
    database.close()
