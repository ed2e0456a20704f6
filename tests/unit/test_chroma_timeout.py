"""A Chroma server that stops answering makes the client fail after the set time instead of hanging a turn."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from bot.config import Settings
from bot.knowledge.chroma_http import ChromaUnreachable
from bot.knowledge.index import make_client

# What a Chroma server says to a client starting up; anything else it is asked, it never answers.
STARTUP = {
    "/api/v2/heartbeat": {"nanosecond heartbeat": 1},
    "/api/v2/auth/identity": {"user_id": "", "tenant": "default_tenant", "databases": ["default_database"]},
    "/api/v2/tenants/default_tenant": {"name": "default_tenant"},
    "/api/v2/tenants/default_tenant/databases/default_database": {
        "id": "00000000-0000-0000-0000-000000000001", "name": "default_database", "tenant": "default_tenant",
    },
}  # fmt: skip


@pytest.fixture
def stalling_chroma() -> Iterator[int]:
    """A fake Chroma server that lets a client start, then never answers another request."""
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path not in STARTUP:
                release.wait(120)  # the stall: no answer until the test is over
                return
            body = json.dumps(STARTUP[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    release.set()
    server.shutdown()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel completes them) and never says a word."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


def settings_for(port: int, tmp_path: Path) -> Settings:
    retrieval = {"chroma_host": "127.0.0.1", "chroma_port": port, "chroma_timeout": 1}
    return Settings(_env_file=None, data_dir=tmp_path, retrieval=retrieval)


def outcome_of(call: Callable[[], object]) -> object:
    """What ``call`` returned or raised, run in a thread; fails the test instead of hanging with it."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the Chroma client is still waiting for a server that stopped answering"
    return outcome[0]


def test_a_request_to_a_chroma_server_that_stops_answering_fails_after_the_timeout(
    stalling_chroma: int, tmp_path: Path
) -> None:
    client = make_client(settings_for(stalling_chroma, tmp_path))
    assert isinstance(outcome_of(client.list_collections), httpx.TimeoutException)


def test_a_chroma_server_that_never_answers_is_named_at_start(silent_port: int, tmp_path: Path) -> None:
    failure = outcome_of(lambda: make_client(settings_for(silent_port, tmp_path)))
    assert isinstance(failure, ChromaUnreachable)
    assert f"127.0.0.1:{silent_port} did not answer its heartbeat within 1 s" in str(failure)
    assert "TUTORBOT_RETRIEVAL__CHROMA_HOST" in str(failure)


def test_search_against_a_silent_chroma_server_says_what_to_check(
    silent_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner, Result

    from bot.cli import app

    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("TUTORBOT_RETRIEVAL__CHROMA_HOST", "127.0.0.1")
    monkeypatch.setenv("TUTORBOT_RETRIEVAL__CHROMA_PORT", str(silent_port))
    monkeypatch.setenv("TUTORBOT_RETRIEVAL__CHROMA_TIMEOUT", "1")
    result = outcome_of(lambda: CliRunner().invoke(app, ["search", "what is attention?"]))
    assert isinstance(result, Result) and result.exit_code == 1
    assert "did not answer its heartbeat" in result.output
