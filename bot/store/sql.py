"""What the stores need of a database, met by SQLite (``bot.store.database``) and PostgreSQL (``bot.store.postgres``).

The stores write one SQL text for both: ``?`` placeholders (or ``:name`` with a mapping), and statements both
accept. The few expressions that differ (reading a JSON field, joining strings) are looked up by ``dialect``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from bot.store.migrations import Dialect

Parameters = Sequence[Any] | Mapping[str, Any]


class Cursor(Protocol):
    """The result of one statement."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection inside a transaction: statements run on it."""

    def execute(self, sql: str, parameters: Parameters = (), /) -> Cursor: ...


class SqlDatabase(Protocol):
    """The bot's database: transactions for writes, short reads, and a consistent snapshot for reports."""

    dialect: Dialect

    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction: committed when the block ends, rolled back whole if it raises."""
        ...

    def snapshot(self) -> AbstractContextManager[Connection]:
        """A read-only transaction that sees one consistent state of the database (for long reports)."""
        ...

    def fetch_all(self, sql: str, parameters: Parameters = ()) -> list[tuple[Any, ...]]:
        """Every row of a query."""
        ...

    def fetch_one(self, sql: str, parameters: Parameters = ()) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        ...

    def close(self) -> None:
        """Release the connections (safe to call twice)."""
        ...


def _is_name_start(character: str) -> bool:
    return character.isalpha() or character == "_"


@functools.lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """``sql`` with SQLite's placeholders (``?``, ``:name``) as psycopg's (``%s``, ``%(name)s``).

    Quoted strings and identifiers are copied as they are, a literal ``%`` is doubled, and ``::`` (a PostgreSQL
    cast) is not a placeholder.
    """
    out: list[str] = []
    n, length = 0, len(sql)
    while n < length:
        character = sql[n]
        if character in "'\"":  # a string or quoted identifier: up to its closing quote (doubled quotes inside)
            end = n + 1
            while end < length and sql[end] != character:
                end += 1
            out.append(sql[n : end + 1])
            n = end + 1
        elif character == "?":
            out.append("%s")
            n += 1
        elif character == "%":
            out.append("%%")
            n += 1
        elif character == ":" and n + 1 < length and sql[n + 1] == ":":
            out.append("::")
            n += 2
        elif character == ":" and n + 1 < length and _is_name_start(sql[n + 1]):
            end = n + 1
            while end < length and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            out.append(f"%({sql[n + 1 : end]})s")
            n = end
        else:
            out.append(character)
            n += 1
    return "".join(out)
