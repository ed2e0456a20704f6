"""The load bench's simulated learner: what it does next, what the bot must show, and the progress it should have.

Platform-free: ``Learner.next_turn()`` says what to do (press a button by its label, type a command, answer a
quiz question, ask a question) and what the reply must show; the platform drivers (``bench/load_telegram.py``,
``bench/load_discord.py``) do it through the fake servers and call ``Learner.confirm`` once the bot's reply has
arrived and shows it. The learner keeps the position the engine should have stored (lesson, step, section,
quiz question and run) and the lesson results, so ``mismatch`` can compare them with the store at the end.

The script: start, pick the track, open the next lesson, read its sections (now and then a step back, a
question for the model and "Back to the lesson", a look at the progress page and "Resume"; some skim and type
"quiz" before the end), take the quiz (mostly right answers), look at the progress, keep going with the next
lesson; after the last lesson, round the track again.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from bot.core.lessons import Lesson, Track
from bot.core.ports import LessonResult, Position

QUESTIONS = (  # typed questions: none is a command, a key term or a quiz answer, so each goes to the model
    "could you explain what this section means in simpler words?",
    "why does this matter in practice for someone building with models?",
    "how would I explain this part to a colleague over lunch?",
)
RIGHT = 0.7  # how often a learner picks the right quiz answer


class TurnFailed(Exception):
    """The bot did not show what a turn should have (or nothing within the time allowed)."""


@dataclass(frozen=True)
class Turn:
    """One thing a learner does and what the bot's reply must show for it.

    ``press``: the label of the button to press (``exact`` or a prefix); ``typed``: text to send (a command word
    or a question); ``option``: the quiz option to choose. The reply is ``count`` messages; the last must contain
    every one of ``shows`` and, when ``first`` is set, the first must contain it.
    """

    kind: str
    shows: tuple[str, ...]
    press: str | None = None
    exact: bool = False
    typed: str | None = None
    option: int | None = None
    count: int = 1
    first: str | None = None
    with_button: str | None = None  # a button the last message must carry when the turn is done (a streamed answer)

    def seen_in(self, text: str) -> bool:
        """Whether a message's text shows everything the turn's reply must (a mark ending in a newline is a
        whole line's end)."""
        body = plain(text) + "\n"
        return all(mark in body for mark in self.shows)

    @property
    def is_model_turn(self) -> bool:
        """Whether the model answers this turn (its time is not a navigation turn's)."""
        return self.kind == "ask"


def plain(text: str) -> str:
    """Message text without Markdown: no ``**`` and no backslash escapes (Discord shows text escaped)."""
    return re.sub(r"\\(.)", r"\1", text).replace("**", "")


@dataclass
class Learner:
    """One simulated learner: the position the bot should have stored for them, and what they do next."""

    name: str
    track: Track
    rng: random.Random
    questions: int = 2  # questions still to ask the model
    lesson: int = 0  # index in the track of the lesson the position is in
    to_open: int = 0  # index of the lesson to open from the track's lesson list
    step: str = "home"
    section: int = 0
    question: int = 0
    quiz_run: int = 0
    score: int = 0
    results: list[tuple[str, int, int]] = field(default_factory=list)  # (lesson, score, total), in order
    screen: str = "none"  # what the last reply showed
    looked_at_progress: bool = False  # on this lesson's result page
    turns: int = 0
    derailed: bool = False  # a turn failed: the position the bot has is unknown from then on
    _pending: Turn | None = None

    @property
    def current(self) -> Lesson:
        return self.track.lessons[self.lesson]

    # ------------------------------------------------------------ the script

    def next_turn(self) -> Turn:
        """What the learner does next (call ``confirm`` once the bot's reply shows it)."""
        self._pending = self._choose()
        return self._pending

    def _choose(self) -> Turn:
        screen, lesson = self.screen, self.current
        if screen == "none":
            return Turn("start", ("Welcome to tutorbot",), typed="start")
        if screen == "home":
            return Turn("track", self._lesson_lines(), press=self.track.title, exact=True)
        if screen == "lessons":
            opened = self.track.lessons[self.to_open]
            return Turn("lesson", self._view_marks("premise", self.to_open),
                        press=f"{self.to_open + 1}. {opened.title}"[:60], exact=True)  # fmt: skip
        if screen in {"answer", "progress"}:  # back to where they are
            label = "Back to the lesson ▸" if screen == "answer" else "Resume ▸"
            return Turn("resume", self._view_marks(self.step, section=self.section), press=label, exact=True)
        if self.step == "quiz":
            asked = lesson.quiz[self.question]
            wrong = [i for i in range(len(asked.options)) if i != asked.correct_index]
            chosen = asked.correct_index if self.rng.random() < RIGHT or not wrong else self.rng.choice(wrong)
            verdict = "Right!" if chosen == asked.correct_index else "Not quite."
            return Turn("answer", self._after_answer(chosen), option=chosen, count=2, first=verdict)
        if self.step == "result":
            if not self.looked_at_progress:
                return Turn("progress", self._progress_lines(), typed="progress")
            if self.lesson + 1 < len(self.track.lessons):
                return Turn("keep going", self._view_marks("premise", self.lesson + 1), press="Keep going ▸")
            return Turn("home", ("Welcome to tutorbot",), press="Tracks", exact=True)
        roll = self.rng.random()
        if self.step == "section" and self.questions and roll < 0.12:
            return Turn("ask", ("Source:", "This is what the lesson says about it."), typed=self.rng.choice(QUESTIONS),
                        with_button="Back to the lesson ▸")  # fmt: skip
        if self.step == "section" and 0.12 <= roll < 0.2:  # a skimmer: straight to the quiz, typed
            return Turn("quiz", (lesson.quiz[0].prompt,), typed="quiz")
        if roll > 0.96:
            return Turn("progress", self._progress_lines(), typed="progress")
        if self.step == "section" and roll > 0.9:
            return Turn("back", self._view_marks(*self._moved_back()), press="◂ Back", exact=True)
        if self.step == "premise":
            return Turn("read", self._view_marks("section", section=0), press="Start reading")
        if self.step == "wrapup":
            return Turn("quiz", (lesson.quiz[0].prompt,), press="Take the quiz")
        return Turn("next", self._view_marks(*self._moved_on()), press="Next ▸", exact=True)

    def _moved_on(self) -> tuple[str, int | None, int]:
        if self.section + 1 < len(self.current.sections):
            return "section", None, self.section + 1
        return "wrapup", None, self.section

    def _moved_back(self) -> tuple[str, int | None, int]:
        return ("section", None, self.section - 1) if self.section > 0 else ("premise", None, 0)

    def confirm(self, turn: Turn, chosen_right: bool | None = None) -> None:
        """The bot showed what ``turn`` should: move the expected position as the engine does."""
        assert turn is self._pending, "confirm the turn next_turn gave"
        self.turns += 1
        lesson = self.current
        kind = turn.kind
        if kind in {"start", "home"}:
            self.screen = "home"
        elif kind == "track":
            self.screen = "lessons"
        elif kind in {"lesson", "keep going"}:
            self.lesson = self.to_open if kind == "lesson" else self.lesson + 1
            self._move("premise", section=0, question=0)
        elif kind == "read":
            self._move("section", section=0)
        elif kind in {"next", "back"}:
            step, _lesson, section = self._moved_on() if kind == "next" else self._moved_back()
            self._move(step, section=section)
        elif kind == "quiz":
            self.quiz_run += 1
            self.score = 0
            self._move("quiz", question=0)
        elif kind == "answer":
            assert turn.option is not None
            self.score += turn.option == lesson.quiz[self.question].correct_index
            if self.question + 1 < len(lesson.quiz):
                self._move("quiz", question=self.question + 1)
            else:
                self.results.append((lesson.id, self.score, len(lesson.quiz)))
                self.looked_at_progress = False
                self._move("result")
        elif kind == "progress":
            self.screen = "progress"
            if self.step == "result":
                self.looked_at_progress = True
        elif kind == "ask":
            self.questions -= 1
            self.screen = "answer"
        elif kind == "resume":
            self.screen = self.step
        if kind == "home":
            self.to_open = 0  # round the track again

    def _move(self, step: str, section: int | None = None, question: int | None = None) -> None:
        self.step = step
        self.screen = step
        if section is not None:
            self.section = section
        if question is not None:
            self.question = question

    # ------------------------------------------------------------ what replies must show

    def _view_marks(self, step: str, lesson_index: int | None = None, section: int = 0) -> tuple[str, ...]:
        lesson = self.track.lessons[self.lesson if lesson_index is None else lesson_index]
        if step == "premise":
            return (f"{lesson.title} · about {lesson.minutes} min · {self.track.title}",)
        if step == "section":
            return (f"{lesson.sections[section].heading} · {section + 1}/{len(lesson.sections)} · {lesson.title}",)
        if step == "wrapup":
            return (f"Wrapping up: {lesson.title}",)
        if step == "quiz":
            return (lesson.quiz[self.question].prompt,)
        return (f"Quiz done: {self.score}/{len(lesson.quiz)} · {lesson.title}",)

    def _after_answer(self, chosen: int) -> tuple[str, ...]:
        lesson = self.current
        if self.question + 1 < len(lesson.quiz):
            return (lesson.quiz[self.question + 1].prompt,)
        score = self.score + (chosen == lesson.quiz[self.question].correct_index)
        return (f"Quiz done: {score}/{len(lesson.quiz)} · {lesson.title}",)

    def _best(self) -> dict[str, tuple[int, int]]:
        best: dict[str, tuple[int, int]] = {}
        for lesson, score, total in self.results:
            if lesson not in best or score > best[lesson][0]:
                best[lesson] = (score, total)
        return best

    def _lesson_lines(self) -> tuple[str, ...]:
        """The track's lesson list, with the best score of each lesson finished."""
        best = self._best()
        lines = []
        for number, lesson in enumerate(self.track.lessons, start=1):
            mark = f" ✓ {best[lesson.id][0]}/{best[lesson.id][1]}" if lesson.id in best else ""
            lines.append(f"{number}. {lesson.title} · {lesson.minutes} min{mark}\n")
        return tuple(lines)

    def _progress_lines(self) -> tuple[str, ...]:
        """The progress page's lessons of the track: done (with the best score) or not."""
        best = self._best()
        lines = ["Your progress\n", f"{self.track.title}: {len(best)} of {len(self.track.lessons)} lessons done\n"]
        for lesson in self.track.lessons:
            score = f" · best quiz score {best[lesson.id][0]}/{best[lesson.id][1]}" if lesson.id in best else ""
            lines.append(f"{'✓' if lesson.id in best else '·'} {lesson.title}{score}\n")
        return tuple(lines)

    # ------------------------------------------------------------ the check at the end

    def mismatch(self, stored: Position, results: list[LessonResult]) -> str | None:
        """How the stored progress differs from what this learner did (None when it is the same)."""
        expected = self.expected_position()
        got = (stored.track, stored.lesson, stored.step, stored.section if stored.step == "section" else None,
               stored.question if stored.step == "quiz" else None, stored.quiz_run)  # fmt: skip
        if got != expected:
            return f"position {got} != expected {expected}"
        done = [(r.lesson, r.score, r.total) for r in results]
        if done != self.results:
            return f"results {done} != expected {self.results}"
        return None

    def expected_position(self) -> tuple:
        """``(track, lesson, step, section when reading, question when in the quiz, quiz run)`` as stored."""
        if self.step == "home":
            return (None, None, "home", None, None, self.quiz_run)
        return (self.track.id, self.current.id, self.step, self.section if self.step == "section" else None,
                self.question if self.step == "quiz" else None, self.quiz_run)  # fmt: skip
