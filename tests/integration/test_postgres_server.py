"""The throw-away PostgreSQL server of the tests: it runs, its databases are separate, data outlives a connection,
a crashed server recovers what was committed, and stop leaves neither a process nor a folder behind."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.postgres_server import HOST_URL_VARIABLE, PostgresServer, PostgresUnavailable

own_server_only = pytest.mark.skipif(
    bool(os.environ.get(HOST_URL_VARIABLE)), reason=f"{HOST_URL_VARIABLE} names the host's server, none is started"
)


def test_the_fixture_gives_a_running_server(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.url()) as connection:
        version = connection.execute("SHOW server_version_num").fetchone()
    assert version is not None and int(version[0]) >= 150000
    assert urlsplit(postgres_server.url("x")).path == "/x"


def test_two_fresh_databases_do_not_see_each_others_tables(postgres_server: PostgresServer) -> None:
    first, second = postgres_server.create_database(), postgres_server.create_database()
    try:
        assert first != second
        with psycopg.connect(first) as connection:
            connection.execute("CREATE TABLE notes (body text)")
        with psycopg.connect(second) as connection:
            found = connection.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'notes'").fetchone()
        assert found == (0,)
    finally:
        for url in (first, second):
            postgres_server.drop_database(urlsplit(url).path.lstrip("/"))


def test_committed_rows_are_there_after_a_reconnect(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as connection:
        connection.execute("CREATE TABLE notes (body text)")
        connection.execute("INSERT INTO notes VALUES ('kept')")
    with psycopg.connect(postgres_url) as connection:
        assert connection.execute("SELECT body FROM notes").fetchall() == [("kept",)]


def test_a_dropped_database_is_gone(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    left_open = psycopg.connect(url)  # a test that forgets to close must not block the drop
    postgres_server.drop_database(urlsplit(url).path.lstrip("/"))
    left_open.close()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(url).close()


@own_server_only
def test_a_durable_server_keeps_committed_rows_over_a_crash_and_stop_removes_everything() -> None:
    try:
        server = PostgresServer(durable=True)
    except PostgresUnavailable as missing:
        pytest.skip(str(missing))
    with server:
        with psycopg.connect(server.url()) as connection:
            assert connection.execute("SHOW fsync").fetchone() == ("on",)
            connection.execute("CREATE TABLE notes (body text)")
            connection.execute("INSERT INTO notes VALUES ('committed')")
        server.crash()
        server.start()
        with psycopg.connect(server.url()) as connection:
            assert connection.execute("SELECT body FROM notes").fetchall() == [("committed",)]
        assert server.process is not None and server.folder is not None
        pid, folder, url = server.process.pid, server.folder, server.url()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not folder.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2).close()


@own_server_only
def test_the_shared_server_is_fast_not_durable(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.url()) as connection:
        settings: dict[str, str] = dict(connection.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes',"
            " 'listen_addresses')"
        ).fetchall())  # fmt: skip
    assert settings == {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                        "listen_addresses": "127.0.0.1"}  # fmt: skip
