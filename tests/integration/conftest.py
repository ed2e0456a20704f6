"""Fixtures for integration tests."""

from tests.integration.chroma_server import chroma_server

__all__ = ["chroma_server"]
