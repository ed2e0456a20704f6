"""A console tutor for lessons and quizzes only (no model, no index), run as a child process by tests.

``python -m tests.console_session DATA_DIR KNOWLEDGE_DIR``: the real console adapter on this process's
stdin and stdout, the real engine and the real SQLite progress store in DATA_DIR.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from rich.console import Console

from bot.adapters.console import ConsoleChat
from bot.app import build_engine
from bot.config import Settings


def main(data_dir: str, knowledge_dir: str) -> None:
    settings = Settings(_env_file=None, data_dir=Path(data_dir), knowledge_dir=Path(knowledge_dir))
    engine = build_engine(settings, answers=False)
    console = Console(file=sys.stdout, width=200, color_system=None, highlight=False)
    asyncio.run(ConsoleChat(engine, sys.stdin, console, user_id="kim").run())


if __name__ == "__main__":
    main(*sys.argv[1:3])
