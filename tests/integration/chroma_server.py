"""A real ``chroma run`` server for tests: started on a free port over a folder, stopped (or restarted) at will."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

START_SECONDS = 60.0  # a cold start on a busy 2-core machine


def chroma_cli() -> str | None:
    """The ``chroma`` command of the chromadb installed next to this Python, or on PATH."""
    beside = Path(sys.executable).with_name("chroma")
    return str(beside) if beside.is_file() else shutil.which("chroma")


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ChromaServer:
    """``chroma run --host 127.0.0.1 --port PORT --path FOLDER`` as a child process."""

    host = "127.0.0.1"

    def __init__(self, cli: str, path: Path, log: Path) -> None:
        self.cli = cli
        self.path = path
        self.log = log
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """The settings that point a bot process at this server."""
        return {"TUTORBOT_RETRIEVAL__CHROMA_HOST": self.host, "TUTORBOT_RETRIEVAL__CHROMA_PORT": str(self.port)}

    def start(self) -> None:
        """Start the server and wait until it answers its heartbeat."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.cli, "run", "--host", self.host, "--port", str(self.port), "--path", str(self.path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(f"http://{self.host}:{self.port}/api/v2/heartbeat", timeout=2).raise_for_status()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"chroma run gave no heartbeat in {START_SECONDS:g} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Stop the server (its files stay in ``path``)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@pytest.fixture
def chroma_server(tmp_path: Path):  # noqa: ANN201 - an Iterator[ChromaServer]
    """A running Chroma server over a fresh folder, stopped afterwards; skipped when there is no ``chroma`` CLI."""
    cli = chroma_cli()
    if cli is None:
        pytest.skip("the chroma command line (from the chromadb package) is not installed, so no server to test")
    server = ChromaServer(cli, tmp_path / "chroma-server", tmp_path / "chroma-server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
