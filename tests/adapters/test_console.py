"""The console adapter end to end: typed lines in, printed replies out, through its real streams."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bot.adapters.console import STATUS_MARK, ConsoleChat
from bot.core.answering import Answerer
from bot.core.engine import Engine
from bot.core.ports import Passage, Position
from bot.core.prompts import PromptLibrary
from bot.knowledge.reader import read_knowledge
from bot.store.progress import SqlProgressStore
from tests.fakes import FixedRetriever, ScriptedModel

REPO = Path(__file__).resolve().parents[2]
TRACKS = {r.track.id: r.track for r in read_knowledge(REPO / "knowledge") if r.track}
LESSON = TRACKS["ai-foundations"].lessons[0]
TEACHER = "In distillation the student is trained on the teacher's outputs."


def run_console(lines: list[str], store: SqlProgressStore, model: ScriptedModel) -> str:
    passage = Passage("ai-foundations", "distillation", "teacher-and-student", "Teacher and student",
                      "Model distillation", TEACHER, 0.7, 0.7)  # fmt: skip
    engine = Engine(TRACKS, store, Answerer(FixedRetriever([passage]), model, PromptLibrary(REPO / "prompts")))
    printed = io.StringIO()
    console = Console(file=printed, width=200, color_system=None, highlight=False)
    chat = ConsoleChat(engine, io.StringIO("".join(line + "\n" for line in lines)), console, user_id="kim")
    asyncio.run(chat.run())
    return printed.getvalue()


def test_numbered_choices_streamed_answers_and_a_status_line(tmp_path: Path) -> None:
    store = SqlProgressStore(tmp_path / "db.sqlite3")
    model = ScriptedModel()
    model.enqueue_answer(["1"], explanation="It learns from the teacher's outputs.")
    model.enqueue_answer(["1"], yes=0.1)
    out = run_console(["1", "1", "1", "what does the student learn from?", "1", "is the student better?", "7", "next"],
                      store, model)  # fmt: skip
    assert "[1] Resume" not in out and "[1] AI foundations  [2] Progress" in out  # nothing to resume yet
    words = " ".join(out.split())  # replies are word-wrapped to the console's width
    assert LESSON.premise in words and f"{STATUS_MARK} “{LESSON.title}” (AI foundations), at the start" in out
    assert "[1] ◂ Back  [2] Next ▸" in out and LESSON.sections[0].heading in out
    assert (
        "“In distillation the student is trained on the teacher's outputs.”\nSource: Model distillation › Teacher and student"
        in out
    )
    assert "It learns from the teacher's outputs." in out
    assert "Source: Model distillation › Teacher and student" in out
    assert "[1] Back to the lesson ▸" in out and "There is no choice 7; type a number from 1 to 1." in out
    assert "(withdrawn)" in out or "can't answer that from the lessons" in out
    assert f"{STATUS_MARK} “{LESSON.title}” (AI foundations), section 2 of" in out
    assert store.position("console:kim").section == 1


def test_quit_and_end_of_input_leave_with_progress_saved(tmp_path: Path) -> None:
    store = SqlProgressStore(tmp_path / "db.sqlite3")
    out = run_console(["lesson attention", "next", "quit", "next"], store, ScriptedModel())
    assert "Bye! Your progress is saved." in out
    assert store.position("console:kim").lesson == "attention" and store.position("console:kim").section == 0
    again = run_console([], store, ScriptedModel())
    assert "You left off in “Attention as lookup”" in again


@pytest.mark.integration
def test_tutorbot_chat_on_a_fresh_data_dir(tmp_path: Path, models_dir: Path, small_chat_model_path: Path) -> None:
    """The README's run command in miniature: `tutorbot chat` indexes the track, walks a lesson, answers."""
    env = {**os.environ, "TUTORBOT_DATA_DIR": str(tmp_path / "data"), "TUTORBOT_MODEL__MODELS_DIR": str(models_dir),
           "TUTORBOT_MODEL__CHAT": str(small_chat_model_path), "TUTORBOT_KNOWLEDGE_DIR": str(REPO / "knowledge"),
           "COLUMNS": "200"}  # fmt: skip
    tutorbot = Path(sys.executable).with_name("tutorbot")
    lines = "1\n1\n1\nWhat does the student model learn from?\nnext\nprogress\nquit\n"
    done = subprocess.run([str(tutorbot), "chat", "--name", "kim"], input=lines, capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Welcome to tutorbot, Kim!" in out and LESSON.premise in " ".join(out.split())  # word-wrapped
    assert "Source: Model distillation ›" in out or "can't answer that from the lessons" in out
    assert f"{STATUS_MARK} “{LESSON.title}” (AI foundations), section 2 of" in out
    assert "Bye! Your progress is saved." in out
    assert (tmp_path / "data" / "tutorbot.sqlite3").is_file() and (tmp_path / "data" / "chroma").is_dir()


def test_the_console_starts_with_the_reviews_due_and_a_streak_that_ends_today(tmp_path: Path) -> None:
    import time

    from bot.core.ports import ReviewCard

    store = SqlProgressStore(tmp_path / "db.sqlite3")
    assert "due ('review')" not in run_console([], store, ScriptedModel())  # nothing waits: no line
    yesterday = time.time() - 86400
    for question in (0, 1, 2):
        card = ReviewCard("ai-foundations", "distillation", question, "{}", yesterday)
        store.save("console:kim", Position(), at=yesterday, card=card)
    out = run_console([], store, ScriptedModel())
    first_line = out.splitlines()[0]
    assert first_line == "⏰ 3 reviews due ('review') · 🔥 your 1-day streak ends tonight unless you study today"
