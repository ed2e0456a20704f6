"""The one SQL text the stores write, as psycopg takes it; and the database URL as logs show it."""

from __future__ import annotations

import pytest

from bot.store.postgres import url_without_password
from bot.store.sql import to_pyformat


@pytest.mark.parametrize(
    ("sqlite", "psycopg"),
    [
        ("SELECT a FROM t WHERE b = ? AND c = ?", "SELECT a FROM t WHERE b = %s AND c = %s"),
        ("WHERE t.track = :track AND x = :track_2", "WHERE t.track = %(track)s AND x = %(track_2)s"),
        ("SELECT '?', ':name', 'it''s ?' FROM t WHERE a = ?", "SELECT '?', ':name', 'it''s ?' FROM t WHERE a = %s"),
        ("SELECT (position::jsonb ->> 'version')::integer", "SELECT (position::jsonb ->> 'version')::integer"),
        ("SELECT 5 % 2, ? ", "SELECT 5 %% 2, %s "),
        ('SELECT "odd?col" FROM t', 'SELECT "odd?col" FROM t'),
    ],
)
def test_placeholders_become_psycopgs_outside_quotes_and_casts(sqlite: str, psycopg: str) -> None:
    assert to_pyformat(sqlite) == psycopg


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://bot:s3cret@db.internal:5432/tutor", "postgresql://bot:***@db.internal:5432/tutor"),
        ("postgresql://bot@127.0.0.1/tutor", "postgresql://bot@127.0.0.1/tutor"),
        ("postgresql://:p@host/db", "postgresql://:***@host/db"),
    ],
)
def test_a_database_url_is_logged_without_its_password(url: str, shown: str) -> None:
    assert url_without_password(url) == shown
