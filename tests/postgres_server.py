"""A throw-away PostgreSQL 15 server for tests: initdb in a temporary folder, a free port on 127.0.0.1, a fresh
database per test; or the server the host names in ``TUTORBOT_TEST_POSTGRES_URL``."""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

BIN = Path("/usr/lib/postgresql/15/bin")
HOST_URL_VARIABLE = "TUTORBOT_TEST_POSTGRES_URL"
SYSTEM_USER = "postgres"  # initdb refuses root, so a root test run starts the server as this user
START_SECONDS = 60.0  # a cold start on a busy 2-core machine
STOP_SECONDS = 30.0
# Speed over safety for tests: a lost server loses only throw-away data. durable=True keeps the defaults.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresUnavailable(Exception):
    """This machine cannot run a test server; the message says what is missing and how to get it."""


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_dbname(url: str, dbname: str) -> str:
    """``url`` with its database name replaced."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


class PostgresServer:
    """A PostgreSQL server of its own (``initdb`` + ``postgres``), or the host's when TUTORBOT_TEST_POSTGRES_URL
    is set; ``stop()`` (or leaving the ``with`` block) stops it and removes its folder."""

    def __init__(self, durable: bool = False, bin_dir: Path = BIN) -> None:
        self.durable = durable
        self.bin_dir = bin_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.folder: Path | None = None
        self.port = 0
        self._created: set[str] = set()
        self._user: str | None = None
        host_url = os.environ.get(HOST_URL_VARIABLE)
        self.admin_url = host_url or ""
        self._own = not host_url
        if self._own:
            self._user = self._system_user()
            self._init_cluster()
            try:
                self.start()
            except BaseException:
                self._remove_folder()
                raise
            atexit.register(self.stop)  # a run that ends without the fixture's teardown leaves no server behind

    # -- starting and stopping -------------------------------------------------------------------------------------

    def _system_user(self) -> str | None:
        """The user to run initdb and the server as: None for the current user, ``postgres`` under root."""
        for program in ("initdb", "postgres"):
            if not (self.bin_dir / program).is_file():
                raise PostgresUnavailable(
                    f"no PostgreSQL 15 server at {self.bin_dir} ({program} is missing): install the postgresql-15 "
                    f"package, or set {HOST_URL_VARIABLE} to an admin URL of a server to use"
                )
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            raise PostgresUnavailable(
                f"the tests run as root, initdb refuses root, and there is no '{SYSTEM_USER}' system user to run it "
                f"as: create one (the postgresql-15 package does), run the tests as a normal user, or set "
                f"{HOST_URL_VARIABLE}"
            ) from None
        return SYSTEM_USER

    @property
    def data_dir(self) -> Path:
        """The cluster's data folder."""
        assert self.folder is not None
        return self.folder / "data"

    @property
    def log(self) -> Path:
        """The server's log file."""
        assert self.folder is not None
        return self.folder / "server.log"

    def _as_server_user(self) -> dict[str, Any]:
        """Popen arguments that run a program as the server's user (dropping root's groups too), in its folder."""
        if self._user is None:
            return {"cwd": self.folder}
        return {"cwd": self.folder, "user": self._user, "group": self._user, "extra_groups": []}

    def _init_cluster(self) -> None:
        """``initdb`` into a fresh temporary folder owned by the server's user."""
        self.folder = Path(tempfile.mkdtemp(prefix="tutorbot-pg-"))
        if self._user is not None:
            shutil.chown(self.folder, self._user, self._user)
        command = [str(self.bin_dir / "initdb"), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--locale=C"]  # fmt: skip
        if not self.durable:
            command.append("--no-sync")
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, **self._as_server_user())
        if done.returncode != 0:
            self._remove_folder()
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        # The unix socket sits in the private folder; TCP only on 127.0.0.1; no password on either.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 trust\n", encoding="utf-8"
        )
        settings = {} if self.durable else dict(FAST_SETTINGS)
        settings.update(listen_addresses="'127.0.0.1'", unix_socket_directories=f"'{self.folder}'")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# tutorbot test server\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))

    def start(self) -> None:
        """Start the server on a free port (again, after ``crash()``) and wait until it accepts connections."""
        if not self._own or self.process is not None:
            return
        self.port = self.port or free_port()  # a restart keeps the port, so clients reconnect to the same URL
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with self.log.open("ab") as log:
            # Its own session, so crash() can kill the server with all its backends, as a machine failure would.
            self.process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                **self._as_server_user(),
            )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while True:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RuntimeError(f"postgres exited with {code} on start; its log ends:\n{self._log_tail()}")
            try:
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self._halt(signal.SIGKILL)
                    raise RuntimeError(
                        f"postgres accepted no connection in {START_SECONDS:g} s; its log ends:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.1)

    def _log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-characters:]
        except OSError:
            return "(no log)"

    def _halt(self, how: signal.Signals) -> None:
        """Stop the running server: SIGINT is PostgreSQL's fast shutdown, SIGKILL takes its whole process group."""
        process, self.process = self.process, None
        if process is None:
            return
        if how == signal.SIGKILL:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(how)
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def crash(self) -> None:
        """Kill the server and its backends at once (no shutdown checkpoint); ``start()`` then recovers the data."""
        self._halt(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server and remove its folder; on the host's server, drop the databases made here."""
        if not self._own:
            for name in list(self._created):
                self.drop_database(name)
            return
        self._halt(signal.SIGINT)
        self._remove_folder()
        atexit.unregister(self.stop)

    def _remove_folder(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """The URL of database ``dbname`` on this server (postgresql://postgres@127.0.0.1:PORT/NAME)."""
        return _with_dbname(self.admin_url, dbname)

    def create_database(self, name: str | None = None) -> str:
        """A fresh empty database (a unique name when ``name`` is None); returns its URL."""
        name = name or f"tutorbot_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.add(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, closing any connection a test left open to it."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self._created.discard(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole run (fast, not durable); skipped when this machine cannot run one."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as missing:
        pytest.skip(f"no PostgreSQL server for tests: {missing}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh empty database on the test server, dropped after the test."""
    url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(urlsplit(url).path.lstrip("/"))
