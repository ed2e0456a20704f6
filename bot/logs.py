"""Logging set-up that never lets a secret through.

The Telegram token is part of every Bot API URL, and HTTP clients log URLs at INFO/DEBUG, so: HTTP client
loggers are held at WARNING, and a filter on every handler replaces each known secret with ``[secret]`` in
whatever is logged (message, arguments and tracebacks alike).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import SecretStr

QUIET_LOGGERS = ("httpx", "httpcore", "telegram.request", "telegram.Bot", "telegram.ext.ExtBot", "telegram.ext.Updater",
                 "discord.http", "discord.gateway", "aiohttp.access", "aiohttp.client")  # fmt: skip
MASK = "[secret]"


class SecretFilter(logging.Filter):
    """Replaces secrets in log records (the formatted message and any exception text)."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every secret masked."""
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = self.scrub(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


def setup_logging(level: int = logging.INFO, secrets: Iterable[SecretStr | str | None] = ()) -> SecretFilter:
    """Log to stderr at ``level`` with secrets masked and HTTP client loggers at WARNING; returns the filter."""
    values = [s.get_secret_value() if isinstance(s, SecretStr) else s for s in secrets if s]
    root = logging.getLogger()
    if not root.handlers:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(console)
    root.setLevel(level)
    secret_filter = SecretFilter(values)
    for handler in root.handlers:
        handler.addFilter(secret_filter)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return secret_filter
