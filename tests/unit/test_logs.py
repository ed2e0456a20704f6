"""Secrets never reach the logs: messages, arguments and tracebacks are scrubbed; HTTP loggers stay quiet."""

from __future__ import annotations

import io
import logging

from pydantic import SecretStr

from bot.logs import MASK, QUIET_LOGGERS, SecretFilter, setup_logging

TOKEN = "123456:ABC-very-secret-token"


def test_messages_arguments_and_tracebacks_are_scrubbed() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter([TOKEN]))
    logger = logging.getLogger("tutorbot.test.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling https://api.example/bot%s/getMe", TOKEN)
        try:
            raise RuntimeError(f"bad url /bot{TOKEN}/sendMessage")
        except RuntimeError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert TOKEN not in written and written.count(MASK) == 2 and "RuntimeError: bad url /bot[secret]/" in written


def test_setup_masks_secret_settings_and_quiets_http_clients() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in (*QUIET_LOGGERS, "")}
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        secret_filter = setup_logging(logging.INFO, [SecretStr(TOKEN), None])
        assert secret_filter in handler.filters and secret_filter.scrub(f"x{TOKEN}x") == f"x{MASK}x"
        assert logging.getLogger("httpx").level == logging.WARNING
    finally:
        for h in root.handlers:
            if h not in before:
                root.removeHandler(h)
        handler.removeFilter(secret_filter)
        for name, level in levels.items():  # other tests capture these loggers
            logging.getLogger(name).setLevel(level)
