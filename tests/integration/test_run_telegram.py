"""'tutorbot run telegram' as a host runs it: a child process with the real engine, index and model, talking to
a local fake Bot API, answering a learner, then stopping cleanly on SIGTERM without logging the token."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.adapters.telegram_fake import TOKEN, FakeBotApi, User

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ADA = User(101, "Ada")


def test_run_telegram_serves_a_learner_and_stops_on_sigterm(tmp_path: Path, models_dir: Path,
                                                             small_chat_model_path: Path) -> None:  # fmt: skip
    tutorbot = Path(sys.executable).with_name("tutorbot")
    env = {**os.environ, "TUTORBOT_TELEGRAM__TOKEN": TOKEN, "TUTORBOT_DATA_DIR": str(tmp_path / "data"),
           "TUTORBOT_KNOWLEDGE_DIR": str(REPO / "knowledge"), "TUTORBOT_MODEL__MODELS_DIR": str(models_dir),
           "TUTORBOT_MODEL__CHAT": str(small_chat_model_path)}  # fmt: skip

    async def scenario() -> tuple[int, str, str]:
        async with FakeBotApi() as fake:
            env["TUTORBOT_TELEGRAM__BASE_URL"] = fake.base_url
            process = await asyncio.create_subprocess_exec(
                str(tutorbot), "run", "telegram", env=env, cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                await fake.until(lambda: fake.calls_to("getUpdates") or process.returncode is not None,
                                 timeout=300, what="the bot to start polling")  # fmt: skip
                assert process.returncode is None, "tutorbot run telegram exited early"
                fake.say(ADA, "/start")
                await fake.message_containing(ADA.id, "Welcome to tutorbot, Ada", timeout=30)
                fake.say(ADA, "lesson distillation")
                await fake.message_containing(ADA.id, "Model distillation", timeout=30)
                fake.say(ADA, "What does the student model learn from?")
                await fake.until(lambda: any("Source:" in t or "can't answer" in t for t in fake.texts(ADA.id)),
                                 timeout=120, what="an answer or a refusal")  # fmt: skip
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(process.communicate(), 60)
            return process.returncode, out.decode(), err.decode()

    code, out, err = asyncio.run(scenario())
    assert code == 0, err[-2000:]
    assert "stopped; progress is saved" in out
    assert "Telegram: long polling" in err and TOKEN not in out + err
