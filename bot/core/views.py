"""What the learner sees: pure functions from plain data (tracks, lessons, positions, scores) to ``Reply``.

The engine decides what to show and gathers the data; nothing here reads the store or the clock. Buttons
carry the action ids the engine understands (see ``Engine._on_action``); those that act on a position carry
its version. Text is Markdown (see ``bot.core.messages``): lesson text goes in as written, while quiz text
(plain, as a Telegram poll shows it) and names people chose are escaped to read literally.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.actions import Action
from bot.core.answering import Answer
from bot.core.commands import short_hash
from bot.core.lessons import Lesson, Question, Track, track_name
from bot.core.localtime import clock_text
from bot.core.markup import escape
from bot.core.messages import Button, QuizCard, Reply, rows
from bot.core.ports import LearnerSettings, Position, ReviewCard
from bot.core.progress import BestScores
from bot.core.quiz import option_label
from bot.core.terms import TermMatch


def _lesson_action(track: Track, lesson: Lesson) -> str:
    return Action.OPEN_LESSON(short_hash(track.id), short_hash(lesson.id))


def _options(question: Question) -> str:
    return "\n".join(f"{option_label(i)}) {escape(option)}" for i, option in enumerate(question.options))


# ---------------------------------------------------------------- reading a lesson


def _related_part(related: list[tuple[Track, Lesson]], home: Track) -> tuple[str, list[Button]]:
    """The related lessons as lines of text and as buttons that open them."""
    lines = [f"• {lesson.title}" + (f" ({track.title})" if track.id != home.id else "") for track, lesson in related]
    buttons = [Button(f"↪ {lesson.title}"[:60], _lesson_action(track, lesson)) for track, lesson in related]
    return "**Related lessons**\n" + "\n".join(lines), buttons


def reading(
    track: Track, lesson: Lesson, position: Position, related: list[tuple[Track, Lesson]] | None = None
) -> Reply:
    """The premise, a section, or the wrap-up (key terms, practice, ``related`` lessons) of a lesson, as ``position`` says."""
    v = position.version
    back, forward = Button("◂ Back", Action.BACK(v)), Button("Next ▸", Action.NEXT(v))
    if position.step == "premise":
        outline = "\n".join(f"{n}. {s.heading}" for n, s in enumerate(lesson.sections, start=1))
        text = f"**{lesson.title}** · about {lesson.minutes} min · {track.title}\n\n{lesson.premise}\n\n{outline}"
        return Reply(
            text,
            buttons=rows(
                [Button("Start reading ▸", Action.NEXT(v)), Button("Lessons", Action.OPEN_TRACK(short_hash(track.id)))]
            ),
        )
    if position.step == "section":
        section = lesson.sections[position.section]
        text = (
            f"**{section.heading}** · {position.section + 1}/{len(lesson.sections)} · {lesson.title}\n\n{section.text}"
        )
        return Reply(text, buttons=rows([back, forward]))
    parts = [f"**Wrapping up: {lesson.title}**"]
    if lesson.key_terms:
        parts.append("**Key terms**\n" + "\n".join(f"• **{term}**: {meaning}" for term, meaning in lesson.key_terms))
    if lesson.practice:
        parts.append("**Practice**\n" + "\n".join(f"{n}. {step}" for n, step in enumerate(lesson.practice, 1)))
    done = Button(f"Take the quiz ({len(lesson.quiz)} questions) ▸", Action.QUIZ(v)) if lesson.quiz else Button(
        "Finish the lesson ✓", Action.NEXT(v))  # fmt: skip
    more: list[Button] = []
    if related:
        text, more = _related_part(related, track)
        parts.append(text)
    return Reply("\n\n".join(parts), buttons=rows([back, done]) + rows(more, 1))


def where_you_are(track: Track, lesson: Lesson, position: Position) -> str:
    """Where a learner is, as a phrase: ``“Lesson” (Track), section 2 of 4``."""
    place = {
        "premise": "at the start",
        "section": f"section {position.section + 1} of {len(lesson.sections)}",
        "wrapup": "at the key terms",
        "quiz": f"the quiz, question {position.question + 1} of {len(lesson.quiz)}",
        "result": "finished",
    }[position.step]
    return f"“{lesson.title}” ({track.title}), {place}"


# ---------------------------------------------------------------- the quiz and reviews


def question(lesson: Lesson, position: Position) -> Reply:
    """The quiz question ``position`` is on, with a button (and a native-quiz card) per option."""
    asked = lesson.quiz[position.question]
    text = f"**Question {position.question + 1} of {len(lesson.quiz)}** · {lesson.title}\n\n{escape(asked.prompt)}\n\n{_options(asked)}"
    actions = tuple(Action.QUIZ_ANSWER(position.version, i) for i in range(len(asked.options)))
    card = QuizCard(asked.prompt, asked.options, asked.correct_index, asked.explanation, actions)
    buttons = [Button(option_label(i), action) for i, action in enumerate(actions)]
    return Reply(text, buttons=rows(buttons), quiz=card, personal=True)


def feedback(lesson: Lesson, question: Question, chosen: int) -> str:
    """Right or not, the explanation, and for a wrong answer the section to re-read."""
    if chosen == question.correct_index:
        text = "✅ **Right!**"
    else:
        text = f"❌ **Not quite.** The answer is {option_label(question.correct_index)}) {escape(question.correct_option)}."
    if question.explanation:
        text += f" {escape(question.explanation)}"
    if chosen != question.correct_index and question.section:
        section = lesson.section(question.section)
        if section is not None:
            text += f"\nRe-read “{section.heading}” (section {lesson.sections.index(section) + 1})."
    return text


@dataclass(frozen=True)
class ReviewPlan:
    """A lesson's quiz questions waiting for review: how many, and in how many seconds the first is due."""

    cards: int = 0
    first_in: float | None = None


def result(track: Track, lesson: Lesson, position: Position, right: int, review: ReviewPlan = ReviewPlan(),
           related: list[tuple[Track, Lesson]] | None = None) -> Reply:  # fmt: skip
    """The end of a lesson: the quiz score (``right`` answers; ignored without a quiz), its questions waiting for
    ``review`` and when, the ``related`` lessons, and the next lesson of the track."""
    v = position.version
    if lesson.quiz:
        text = f"**Quiz done: {right}/{len(lesson.quiz)}** · {lesson.title}"
        if right == len(lesson.quiz):
            text += "\nEvery answer right. 🎉"
    else:
        text = f"**Lesson finished:** {lesson.title} ✓"
    parts = [text]
    if review.cards and review.first_in is not None:
        questions = f"{review.cards} question{'s' if review.cards != 1 else ''} of this lesson"
        when = "now" if review.first_in <= 0 else f"in {_duration(review.first_in)}"
        parts.append(f"**To review:** {questions}; the first comes back {when} ('review').")
    more: list[Button] = []
    if related:
        related_text, more = _related_part(related, track)
        parts.append(related_text)
    following = track.after(lesson)
    buttons = []
    if following:
        parts.append(f"**Next up:** “{following.title}”.")
        buttons.append(Button("Keep going ▸", Action.KEEP_GOING(v)))
    else:
        parts.append(f"That was the last lesson of “{track.title}”.")
        buttons.append(Button("Tracks", Action.HOME))
    if lesson.quiz:
        buttons.append(Button("Retake the quiz", Action.QUIZ(v)))
    if review.cards and review.first_in is not None and review.first_in <= 0:
        buttons.append(Button("Review now", Action.REVIEW))
    buttons.append(Button("Progress", Action.PROGRESS))
    return Reply("\n\n".join(parts), buttons=rows(buttons) + rows(more, 1))


def review_card(card: ReviewCard, lesson: Lesson, question: Question, due: int) -> Reply:
    """A review question (``due`` of them are waiting), answered with buttons that name the card."""
    text = f"**Review** · {due} due · {lesson.title}\n\n{escape(question.prompt)}\n\n{_options(question)}"
    actions = tuple(Action.REVIEW_ANSWER(short_hash(card.key), i) for i in range(len(question.options)))
    quiz = QuizCard(question.prompt, question.options, question.correct_index, question.explanation, actions)
    return Reply(text, buttons=rows([Button(option_label(i), a) for i, a in enumerate(actions)]), quiz=quiz,
                 personal=True)  # fmt: skip


def nothing_to_review(next_in: float | None) -> Reply:
    """No review due: when the next one comes back (``next_in`` seconds), or what reviews are."""
    if next_in is not None:
        text = f"Nothing to review right now; the next question comes back in {_duration(next_in)}."
    else:
        text = "Nothing to review: questions you miss in quizzes come back here later, like flashcards."
    return Reply(text, buttons=rows([Button("Home", Action.HOME)]), personal=True)


# ---------------------------------------------------------------- home, tracks, progress


def home(display_name: str, where: str | None, offered: list[Track]) -> Reply:
    """The start screen: a welcome, where the learner left off, and the tracks offered here."""
    name = f", {escape(display_name)}" if display_name else ""
    parts = [f"**Welcome to tutorbot{name}!** Pick a track, read short lessons, take the quizzes, and ask me "
             "anything about the lessons in your own words."]  # fmt: skip
    buttons: list[Button] = []
    if where:
        parts.append(f"You left off in {where}.")
        buttons.append(Button("Resume ▸", Action.RESUME))
    if offered:
        parts.append("**Tracks here**\n" + "\n".join(f"• {t.title} ({len(t.lessons)} lessons)" for t in offered))
        buttons += [Button(t.title[:60], Action.OPEN_TRACK(short_hash(t.id))) for t in offered[:15]]
    else:
        parts.append("No tracks are offered here yet; a moderator can turn some on with 'enable TRACK'.")
    buttons += [Button("Progress", Action.PROGRESS), Button("Help", Action.HELP)]
    return Reply("\n\n".join(parts), buttons=rows(buttons, 1 if len(buttons) <= 5 else 3))


def tracks(offered: list[Track], off: list[Track], *, direct: bool, moderator: bool) -> Reply:
    """The tracks offered here; for a community's moderators also those turned off, with on/off buttons."""
    lines = [f"• **{t.title}** ({track_name(t.id)}): {t.description}" for t in offered] or [
        "No tracks are offered here yet."
    ]
    text = "**Tracks here**\n" + "\n".join(lines)
    buttons = [Button(t.title[:60], Action.OPEN_TRACK(short_hash(t.id))) for t in offered]
    if direct:
        text += "\n\nIn a direct message every published track is available."
    elif moderator:
        if off:
            text += "\n\n**Turned off here**\n" + "\n".join(f"• {t.title} ({track_name(t.id)})" for t in off)
        text += "\n\nAs a moderator you can turn tracks on and off: 'enable TRACK' or 'disable TRACK', or the buttons."
        buttons += [Button(f"Turn off {t.title}"[:60], Action.DISABLE_TRACK(short_hash(t.id))) for t in offered]
        buttons += [Button(f"Turn on {t.title}"[:60], Action.ENABLE_TRACK(short_hash(t.id))) for t in off]
    else:
        text += "\n\nModerators choose which tracks this community offers."
    return Reply(text, buttons=rows(buttons, 1 if len(buttons) <= 5 else 3))


def lessons(track: Track, best: BestScores) -> Reply:
    """A track's lessons, numbered, with the best quiz score of those finished and a button to open each."""
    lines = []
    for number, lesson in enumerate(track.lessons, start=1):
        mark = ""
        if (track.id, lesson.id) in best:
            score, total = best[(track.id, lesson.id)]
            mark = f" ✓ {score}/{total}" if total else " ✓"
        lines.append(f"{number}. {lesson.title} · {lesson.minutes} min{mark}")
    text = f"**{track.title}**\n{track.description}\n\n" + "\n".join(lines)
    if len(track.lessons) <= 4:
        buttons = rows([Button(f"{n}. {lesson.title}"[:60], _lesson_action(track, lesson))
                        for n, lesson in enumerate(track.lessons, start=1)], 1)  # fmt: skip
    else:
        numbered = [
            Button(str(n), _lesson_action(track, lesson)) for n, lesson in enumerate(track.lessons[:20], start=1)
        ]
        buttons = rows(numbered)
        if len(track.lessons) > 20:
            text += "\n\nType 'lesson ID' to open a lesson beyond the 20th."
    return Reply(text, buttons=buttons + rows([Button("◂ Tracks", Action.HOME)]))


def progress(all_tracks: Iterable[Track], best: BestScores, position: Position, where: str | None,
             up_next: tuple[Track, Lesson] | None, streak: int, due: int) -> Reply:  # fmt: skip
    """Lessons done per track with best scores, where the learner is, what is next, the streak and reviews due."""
    parts = ["**Your progress**"]
    for track in all_tracks:
        done = [lesson for lesson in track.lessons if (track.id, lesson.id) in best]
        if not done and track.id != position.track:
            continue
        lines = []
        for lesson in track.lessons:
            if (track.id, lesson.id) in best:
                score, total = best[(track.id, lesson.id)]
                lines.append(f"✓ {lesson.title}" + (f" · best quiz score {score}/{total}" if total else ""))
            else:
                lines.append(f"· {lesson.title}")
        parts.append(f"**{track.title}**: {len(done)} of {len(track.lessons)} lessons done\n" + "\n".join(lines))
    if len(parts) == 1:
        parts.append("Nothing yet: pick a track and start its first lesson.")
    buttons = []
    if where:
        parts.append(f"Now: {where}.")
        buttons.append(Button("Resume ▸", Action.RESUME))
    if up_next:
        parts.append(f"Next up: “{up_next[1].title}” ({up_next[0].title}).")
        if not where or position.step == "result":
            buttons.append(Button("Start it ▸", _lesson_action(*up_next)))
    parts.append(f"Streak: {streak} day{'s' if streak != 1 else ''} · due for review: {due}")
    if due:
        buttons.append(Button(f"Review ({due})", Action.REVIEW))
    buttons.append(Button("Home", Action.HOME))
    return Reply("\n\n".join(parts), buttons=rows(buttons), personal=True)


# ---------------------------------------------------------------- help, reset, answers


def help_screen(direct: bool) -> Reply:
    """What the bot understands; outside a direct message also the moderators' commands."""
    text = (
        "**How to use tutorbot**\n"
        "• start: the tracks here and where you left off\n"
        "• tracks, track ID, lessons, lesson ID: choose what to read\n"
        "• next / back: move through a lesson; quiz: take its quiz\n"
        "• answer a quiz question with its button, or type its letter\n"
        "• progress: lessons done, scores, streak and reviews due; review: missed questions again\n"
        "• reset: erase your progress (asks first)\n"
        "• term NAME, or 'what is NAME?': a key term's meaning at once\n"
        "• remind on / remind at 19:00 / remind off (or stop), tz Europe/Berlin, quiet 22:00-08:00: reminders\n"
        "• leaderboard: this week's top learners here; leaderboard on / off: appear on it or not\n"
        "• anything else you type is a question: I answer from the lesson text only and say which section"
    )
    if not direct:
        text += ("\n• moderators: enable TRACK / disable TRACK choose the tracks offered here; "
                 "leaderboard enable / disable\n"
                 "• moderators' own tracks: send a lesson .md or a track .zip with the caption '/tracks upload TRACK', "
                 "then tracks preview / publish / history TRACK, tracks rollback TRACK VERSION\n"
                 "• moderators: insights [TRACK]: how learners here are doing, with charts")  # fmt: skip
    return Reply(text, buttons=rows([Button("Home", Action.HOME)]), personal=True)


def reset_confirmation(version: int) -> Reply:
    """The question before erasing a learner's progress; its buttons carry the pending position's version."""
    text = "This erases all your progress: where you are, quiz scores and review questions. Erase it?"
    buttons = rows([Button("Yes, erase", Action.RESET_YES(version)), Button("No, keep it", Action.RESET_NO(version))])
    return Reply(text, buttons=buttons, personal=True)


def answer(final: Answer, read_only: int | None, in_lesson: bool) -> Reply:
    """A finished answer (its quotes name their lesson and section); a note when only ``read_only`` characters were read."""
    text = final.text
    if read_only is not None:
        text += f"\n\n(Your message was long, so I read only its first {read_only} characters.)"
    buttons = rows([Button("Back to the lesson ▸", Action.RESUME)]) if in_lesson else ()
    return Reply(text, buttons=buttons, citations=tuple(final.citations))


def key_term(found: TermMatch, in_lesson: bool) -> Reply:
    """A key term's meaning as its lesson defines it, where the lesson explains it, and a button to go there."""
    lesson, track = found.lesson, found.track
    where = f"“{lesson.title}” › {found.section.heading}" if found.section else f"“{lesson.title}” › Key terms"
    text = f"**{found.term}**: {found.meaning}\n\nFrom {where} ({track.title})."
    if found.typos:
        text = f"Did you mean “{found.term}”? " + text
    if found.also_in:
        text += " Also a key term of " + ", ".join(f"“{other.title}”" for other in found.also_in) + "."
    if found.section is not None:
        index = lesson.sections.index(found.section)
        go = Button(
            f"Read “{found.section.heading}” ▸"[:60],
            Action.OPEN_SECTION(short_hash(track.id), short_hash(lesson.id), index),
        )
    else:
        go = Button(f"Open “{lesson.title}” ▸"[:60], _lesson_action(track, lesson))
    buttons = [go] + ([Button("Back to the lesson", Action.RESUME)] if in_lesson else [])
    return Reply(text, buttons=rows(buttons, 1), personal=True)


def no_key_term(phrase: str) -> Reply:
    """``term PHRASE`` when no lesson offered here lists it as a key term."""
    shown = escape(phrase[:60])
    text = (f"No lesson here lists “{shown}” as a key term. To have it explained from the lesson text, ask it as a "
            f"question: 'ask what is {shown}?'")  # fmt: skip
    return Reply(text, personal=True)


# ---------------------------------------------------------------- reminders and leaderboards


def reminder(due: int, streak: int, in_lesson: bool) -> Reply:
    """A reminder: ``due`` reviews waiting and/or a ``streak`` of days that ends unless the learner studies today."""
    parts = []
    if due:
        parts.append(
            f"⏰ **{due} question{'s are' if due != 1 else ' is'} due for review.** A minute or two keeps them fresh."
        )
    if streak:
        parts.append(f"🔥 **Your {streak}-day streak ends tonight** unless you study today.")
    parts.append("Reply 'stop' to turn reminders off, or 'remind at 20:00' to move them.")
    buttons = [Button(f"Start the review ({due}) ▸", Action.REVIEW)] if due else []
    buttons += [Button("Resume lesson ▸", Action.RESUME)] if in_lesson else [Button("Lessons", Action.HOME)]
    return Reply("\n\n".join(parts), buttons=rows(buttons, 1), personal=True)


def welcome_back(due: int, streak: int) -> str | None:
    """The line a session starts with when something waits: reviews due, and a streak that ends today."""
    parts = []
    if due:
        parts.append(f"⏰ {due} review{'s' if due != 1 else ''} due ('review')")
    if streak:
        parts.append(f"🔥 your {streak}-day streak ends tonight unless you study today")
    return " · ".join(parts) or None


def reminder_summary(settings: LearnerSettings, default_quiet: tuple[int, int]) -> str:
    """When reminders come, as the end of a sentence ("Reminders come …")."""
    quiet = settings.quiet or default_quiet
    return (f"at {clock_text(settings.remind_at)} your time when reviews are due or your streak is about to end, at "
            f"most once a day and never in your quiet hours ({clock_text(quiet[0])}–{clock_text(quiet[1])})")  # fmt: skip


def reminder_status(settings: LearnerSettings, default_quiet: tuple[int, int]) -> Reply:
    """Whether the learner's reminders are on, when, and how to change them."""
    if settings.remind:
        text = f"**Reminders are on:** direct messages {reminder_summary(settings, default_quiet)}."
        if settings.timezone is None:
            text += " They start once I know your timezone: type 'tz' and its name or a city, e.g. 'tz Europe/Berlin'."
        else:
            text += f" Your timezone: {settings.timezone}."
        text += "\n\nChange them: 'remind at 20:00', 'tz Europe/Berlin', 'quiet 23:00-07:00', or 'remind off'."
    else:
        text = "**Reminders are off.**"
        if settings.stopped:
            text += f" They stopped by themselves: {settings.stopped}. Make sure I can send you direct messages."
        text += ("\n\n'remind on' sends you a direct message when reviews are due or your streak is about to end, "
                 "at most once a day; 'remind at 19:00' picks the time.")  # fmt: skip
    return Reply(text, personal=True)


def ask_timezone() -> Reply:
    """The question a learner gets before their first reminder can be scheduled."""
    return Reply("Which timezone are you in? Reply with its name or a big city near you, e.g. Europe/Berlin, "
                 "America/New_York or Tokyo. (Reminders come at your local time, never in your quiet hours.)",
                 personal=True)  # fmt: skip


def leaderboard(rows_shown: list[tuple[str, int, int]], opted_in: bool, moderator: bool) -> Reply:
    """The week's board: (display name, lessons finished this week, streak) of opted-in learners, best first."""
    lines = [f"{n}. {escape(name)} · {lessons} lesson{'s' if lessons != 1 else ''} · 🔥 {streak} day{'s' if streak != 1 else ''}"
             for n, (name, lessons, streak) in enumerate(rows_shown, start=1)]  # fmt: skip
    text = "**This week's leaderboard** (lessons finished since Monday, then streak)\n"
    text += "\n".join(lines) if lines else "Nobody is on it yet this week: finish a lesson to be the first."
    text += "\n\nOnly learners who chose to appear are listed, by their display name: "
    text += "'leaderboard off' takes you off." if opted_in else "'leaderboard on' puts you on it."
    if moderator:
        text += " Moderators: 'leaderboard disable' turns it off here."
    return Reply(text)


def _duration(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    if minutes < 90:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(minutes / 60)
    if hours < 36:
        return f"{hours} hours"
    return f"{round(hours / 24)} days"
