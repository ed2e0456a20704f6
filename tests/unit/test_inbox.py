"""The Telegram inbox webhook workers share: updates stored once, handed out per chat in update-id order, a chat
held by one worker at a time, an expired lease taken over where its worker stopped, old rows forgotten."""

from __future__ import annotations

import pytest

from bot.store.inbox import KEEP_DELIVERIES_SECONDS, KEEP_DONE_SECONDS, Inbox
from bot.store.progress import SqlProgressStore
from bot.store.sql import SqlDatabase

LEASE = 30.0


@pytest.fixture
def database(sql_database: SqlDatabase) -> SqlDatabase:
    """The shared database: SQLite, then PostgreSQL."""
    return sql_database


@pytest.fixture
def inbox(database: SqlDatabase) -> Inbox:
    return Inbox(database)


def handle_all(inbox: Inbox, chat: int, at: float) -> list[int]:
    """What one worker does with a chat it holds: every update not done, in order, each marked done."""
    handled = []
    while (pending := inbox.next_pending(chat)) is not None:
        handled.append(pending.update_id)
        inbox.done(pending.update_id, at)
    return handled


def test_an_update_sent_twice_is_stored_and_handed_out_once(inbox: Inbox) -> None:
    assert inbox.store(10, 5, '{"update_id": 10}', 1.0)
    assert not inbox.store(10, 5, '{"update_id": 10, "again": true}', 2.0)
    pending = inbox.next_pending(5)
    assert pending is not None and (pending.update_id, pending.body) == (10, '{"update_id": 10}')
    inbox.done(10, 3.0)
    assert inbox.next_pending(5) is None


def test_a_chats_updates_come_out_in_update_id_order_whatever_order_they_arrived_in(inbox: Inbox) -> None:
    for update_id in (14, 11, 13, 12):
        inbox.store(update_id, 5, "{}", 1.0)
    inbox.store(15, 6, "{}", 1.0)  # another chat's
    assert handle_all(inbox, 5, 2.0) == [11, 12, 13, 14]
    assert handle_all(inbox, 6, 2.0) == [15]


def test_a_poll_answer_joins_the_chat_its_poll_was_sent_to(inbox: Inbox) -> None:
    inbox.remember_poll("p1", -100, '{"user_id": 7}', 1.0)
    inbox.store(20, 7, "{}", 2.0, poll_id="p1")  # the voter's own chat, until the poll's is looked up
    inbox.store(21, 7, "{}", 2.0, poll_id="unknown")
    assert handle_all(inbox, -100, 3.0) == [20] and handle_all(inbox, 7, 3.0) == [21]
    assert inbox.poll("p1") == '{"user_id": 7}' and inbox.poll("unknown") is None


def test_two_workers_never_hold_the_same_chat(inbox: Inbox) -> None:
    inbox.store(1, 5, "{}", 0.0)
    inbox.store(2, 6, "{}", 0.0)
    assert inbox.claimable(now=1.0, limit=10) == [5, 6]
    assert inbox.claim(5, "a", now=1.0, seconds=LEASE)
    assert not inbox.claim(5, "b", now=2.0, seconds=LEASE)
    assert inbox.claimable(now=2.0, limit=10) == [6]  # a held chat is not offered
    assert inbox.renew(5, "a", now=20.0, seconds=LEASE) and not inbox.renew(5, "b", now=20.0, seconds=LEASE)
    assert not inbox.claim(5, "b", now=40.0, seconds=LEASE)  # renewed: still a's
    inbox.release(5, "b")  # not b's to release
    assert not inbox.claim(5, "b", now=41.0, seconds=LEASE)
    inbox.release(5, "a")
    assert inbox.claim(5, "b", now=42.0, seconds=LEASE)


def test_an_expired_lease_is_taken_over_from_the_first_update_not_done(inbox: Inbox) -> None:
    for update_id in (1, 2, 3):
        inbox.store(update_id, 5, "{}", 0.0)
    assert inbox.claim(5, "a", now=1.0, seconds=LEASE)
    first = inbox.next_pending(5)
    assert first is not None and first.update_id == 1
    inbox.done(1, 2.0)
    # worker a dies here, holding the chat; until the lease expires nobody else may take it
    assert inbox.claimable(now=1.0 + LEASE - 1, limit=10) == []
    assert not inbox.claim(5, "b", now=1.0 + LEASE - 1, seconds=LEASE)
    assert inbox.claimable(now=1.0 + LEASE + 1, limit=10) == [5]
    assert inbox.claim(5, "b", now=1.0 + LEASE + 1, seconds=LEASE)
    assert not inbox.renew(5, "a", now=1.0 + LEASE + 2, seconds=LEASE)  # a, back, learns it lost the chat
    assert handle_all(inbox, 5, 40.0) == [2, 3]


def test_cleaning_forgets_updates_done_over_a_day_ago_and_keeps_the_rest(inbox: Inbox) -> None:
    for update_id in (1, 2, 3):
        inbox.store(update_id, 5, "{}", 0.0)
    inbox.done(1, 10.0)
    inbox.done(2, 10.0 + KEEP_DONE_SECONDS)
    assert inbox.clean(now=20.0 + KEEP_DONE_SECONDS) == 1
    assert handle_all(inbox, 5, 30.0 + KEEP_DONE_SECONDS) == [3]  # the pending one stays
    assert not inbox.store(2, 5, "{}", 40.0 + KEEP_DONE_SECONDS)  # a recent one is still known
    assert inbox.store(1, 5, "{}", 40.0 + KEEP_DONE_SECONDS)  # the forgotten one is not


def test_cleaning_forgets_handled_update_ids_a_week_old(inbox: Inbox, database: SqlDatabase) -> None:
    store = SqlProgressStore(database)
    store.note_delivery("telegram:1", 0.0)
    store.note_delivery("telegram:2", 10.0)
    inbox.clean(now=5.0 + KEEP_DELIVERIES_SECONDS)
    assert not store.delivered("telegram:1") and store.delivered("telegram:2")
