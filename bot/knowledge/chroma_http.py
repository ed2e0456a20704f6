"""A Chroma server client that gives up on a request after a set time instead of waiting for ever.

chromadb's HTTP client (``chromadb.api.fastapi.FastAPI``, 1.5) opens its ``httpx.Client`` with
``timeout=None``, and none of chromadb's settings changes that: its ``*_timeout_seconds`` settings are read
by the server's own services, never by the Python client, and it accepts no client class of ours in its
place. So a server that accepts a connection and never answers would hang a learner's question for ever.
Here the server is asked for its heartbeat first, with the timeout (so a dead or wrong address fails at
start with a message), and the client's session then gets the timeout for every later request.
"""

from __future__ import annotations

import logging
from typing import Any

import chromadb
import httpx
from chromadb.api.fastapi import FastAPI
from chromadb.config import Settings as ChromaSettings

log = logging.getLogger(__name__)


class ChromaUnreachable(RuntimeError):
    """The Chroma server did not answer; the message says which settings to check."""


def set_timeout(client: Any, seconds: float) -> bool:
    """Give an ``HttpClient``'s requests a timeout; False (and a warning) when chromadb no longer allows it."""
    session = getattr(getattr(client, "_server", None), "_session", None)  # FastAPI's httpx.Client
    if not isinstance(session, httpx.Client):
        log.warning("this chromadb version's HTTP client has no session to give a timeout to: "
                    "requests to the Chroma server can wait for ever")  # fmt: skip
        return False
    session.timeout = httpx.Timeout(seconds)
    return True


def http_client(host: str, port: int, timeout_seconds: float, settings: ChromaSettings | None = None) -> Any:
    """``chromadb.HttpClient`` for ``host:port`` whose requests fail after ``timeout_seconds``.

    Raises ChromaUnreachable when the server does not answer its heartbeat within that time.
    """
    settings = settings or ChromaSettings()
    base = FastAPI.resolve_url(chroma_server_host=host, chroma_server_http_port=port,
                               default_api_path=settings.chroma_server_api_default_path)  # fmt: skip
    try:
        httpx.get(f"{base}/heartbeat", timeout=timeout_seconds).raise_for_status()
    except httpx.HTTPError as error:
        raise ChromaUnreachable(
            f"the Chroma server at {host}:{port} did not answer its heartbeat within {timeout_seconds:g} s "
            f"({type(error).__name__}); check that it runs and TUTORBOT_RETRIEVAL__CHROMA_HOST and _PORT"
        ) from None
    client = chromadb.HttpClient(host=host, port=port, settings=settings)
    set_timeout(client, timeout_seconds)
    return client
