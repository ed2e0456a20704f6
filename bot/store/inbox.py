"""The Telegram inbox several webhook workers share: updates stored before their webhook call is answered, chat
leases so one worker at a time handles a chat's updates in order, and the tickets of the quiz polls sent.

A lease is a row (chat, worker, until): a worker claims a chat whose lease is missing or expired with one
conditional upsert, and the row count says whether it won. A worker that dies keeps its leases until they expire;
the chat's next worker starts from its first update not done. SQL here reads the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.sql import SqlDatabase

KEEP_DONE_SECONDS = 24 * 3600.0  # handled updates are kept a day (Telegram gives up retrying long before)
KEEP_POLLS_SECONDS = 30 * 24 * 3600  # a quiz poll can be answered long after it was sent
KEEP_DELIVERIES_SECONDS = 7 * 86400.0  # handled-update ids kept well past Telegram's day of retries


@dataclass(frozen=True)
class Pending:
    """An update not handled yet: its id and the JSON body Telegram sent."""

    update_id: int
    body: str


class Inbox:
    """Stored webhook updates, chat leases and poll tickets in the shared database (every method blocks: call it
    in a thread from the event loop)."""

    def __init__(self, database: SqlDatabase) -> None:
        self._db = database

    def store(self, update_id: int, chat: int, body: str, at: float, poll_id: str | None = None) -> bool:
        """Keep an update for its chat (a poll answer: the chat its poll was sent to, when known); False when it
        was stored already (Telegram sent it again)."""
        with self._db.transaction() as connection:
            if poll_id is not None:
                row = connection.execute("SELECT chat FROM telegram_polls WHERE poll_id = ?", (poll_id,)).fetchone()
                chat = row[0] if row is not None else chat
            return bool(connection.execute(
                "INSERT INTO telegram_updates (update_id, chat, body, received_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (update_id) DO NOTHING", (update_id, chat, body, at),
            ).rowcount)  # fmt: skip

    def claimable(self, now: float, limit: int) -> list[int]:
        """Chats with updates waiting and no live lease, the longest-waiting first."""
        rows = self._db.fetch_all(
            "SELECT u.chat FROM telegram_updates u LEFT JOIN telegram_leases l ON l.chat = u.chat"
            " WHERE u.done_at IS NULL AND (l.chat IS NULL OR l.until < ?)"
            " GROUP BY u.chat ORDER BY MIN(u.update_id) LIMIT ?",
            (now, limit),
        )
        return [row[0] for row in rows]

    def claim(self, chat: int, worker: str, now: float, seconds: float) -> bool:
        """Take the chat's lease for ``seconds`` if nobody holds it (or its holder let it expire); whether we did."""
        with self._db.transaction() as connection:
            return bool(connection.execute(
                "INSERT INTO telegram_leases (chat, worker, until) VALUES (?, ?, ?)"
                " ON CONFLICT (chat) DO UPDATE SET worker = excluded.worker, until = excluded.until"
                " WHERE telegram_leases.until < ?", (chat, worker, now + seconds, now),
            ).rowcount)  # fmt: skip

    def renew(self, chat: int, worker: str, now: float, seconds: float) -> bool:
        """Extend our lease; False when it is no longer ours (it expired and another worker took the chat)."""
        with self._db.transaction() as connection:
            return bool(connection.execute(
                "UPDATE telegram_leases SET until = ? WHERE chat = ? AND worker = ?", (now + seconds, chat, worker)
            ).rowcount)  # fmt: skip

    def release(self, chat: int, worker: str) -> None:
        """Give the chat's lease up (if still ours), so any worker may take the chat at once."""
        with self._db.transaction() as connection:
            connection.execute("DELETE FROM telegram_leases WHERE chat = ? AND worker = ?", (chat, worker))

    def next_pending(self, chat: int) -> Pending | None:
        """The chat's first update not handled yet, by update id."""
        row = self._db.fetch_one(
            "SELECT update_id, body FROM telegram_updates WHERE chat = ? AND done_at IS NULL"
            " ORDER BY update_id LIMIT 1",
            (chat,),
        )
        return None if row is None else Pending(row[0], row[1])

    def done(self, update_id: int, at: float) -> None:
        """Mark an update handled."""
        with self._db.transaction() as connection:
            connection.execute("UPDATE telegram_updates SET done_at = ? WHERE update_id = ?", (at, update_id))

    def remember_poll(self, poll_id: str, chat: int, ticket: str, at: float) -> None:
        """Keep a sent quiz poll's ticket, for whichever worker its answer reaches."""
        with self._db.transaction() as connection:
            connection.execute("INSERT INTO telegram_polls (poll_id, chat, ticket, sent_at) VALUES (?, ?, ?, ?)"
                               " ON CONFLICT (poll_id) DO NOTHING", (poll_id, chat, ticket, at))  # fmt: skip

    def poll(self, poll_id: str) -> str | None:
        """A sent quiz poll's ticket, or None when unknown (or forgotten)."""
        row = self._db.fetch_one("SELECT ticket FROM telegram_polls WHERE poll_id = ?", (poll_id,))
        return None if row is None else str(row[0])

    def clean(self, now: float) -> int:
        """Forget updates handled over a day ago, long-expired leases, month-old polls and week-old records of
        handled updates; how many updates went."""
        with self._db.transaction() as connection:
            gone = connection.execute("DELETE FROM telegram_updates WHERE done_at IS NOT NULL AND done_at < ?",
                                      (now - KEEP_DONE_SECONDS,)).rowcount  # fmt: skip
            connection.execute("DELETE FROM telegram_leases WHERE until < ?", (now - KEEP_DONE_SECONDS,))
            connection.execute("DELETE FROM telegram_polls WHERE sent_at < ?", (now - KEEP_POLLS_SECONDS,))
            # the engine's record of handled updates: Telegram gives up redelivering an update within a day
            connection.execute("DELETE FROM deliveries WHERE handled_at < ?", (now - KEEP_DELIVERIES_SECONDS,))
        return int(gone)
