"""Scripted dialogues through the engine: the bundled track, the real SQLite store, a scripted model."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from bot.core.answering import Answerer
from bot.core.engine import Engine, clean_text, parse_command
from bot.core.lessons import Track
from bot.core.messages import MAX_ACTION_BYTES, Reply
from bot.core.ports import Passage
from bot.core.prompts import PromptLibrary
from bot.knowledge.reader import read_knowledge, read_track
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner
from tests.fakes import FixedRetriever, GatedModel, MemoryLog, ScriptedModel
from tests.helpers import write_track

REPO = Path(__file__).resolve().parents[2]
PROMPTS = PromptLibrary(REPO / "prompts")
TRACKS = {r.track.id: r.track for r in read_knowledge(REPO / "knowledge") if r.track}
AI = TRACKS["ai-foundations"]
DISTILLATION = AI.lessons[0]
TEACHER = "In distillation the student is trained on the teacher's outputs."


class Clock:
    """A clock the test moves by hand (seconds since the epoch)."""

    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def passage(text: str = TEACHER) -> Passage:
    return Passage("ai-foundations", "distillation", "teacher-and-student", "Teacher and student",
                   "Model distillation", text, 0.7, 0.7)  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> SqlProgressStore:
    return SqlProgressStore(tmp_path / "progress.sqlite3")


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def engine(store: SqlProgressStore, model: ScriptedModel, clock: Clock) -> Engine:
    answerer = Answerer(FixedRetriever([passage()]), model, PROMPTS, MemoryLog())
    return Engine(TRACKS, store, answerer, clock=clock)


def every_action(replies: list[Reply]) -> list[str]:
    return [action for reply in replies for action in reply.actions + list(reply.quiz.actions if reply.quiz else [])]


def open_lesson(learner: Learner, lesson_number: int = 1) -> None:
    learner.say("start")
    learner.press(AI.title)
    learner.press(f"{lesson_number}.")


def test_a_whole_lesson_and_quiz_then_keep_going(engine: Engine, store: SqlProgressStore) -> None:
    ada = Learner(engine)
    ada.say("/start")
    assert "Welcome to tutorbot, Ada" in ada.text and AI.title in ada.text
    ada.press(AI.title)
    assert all(lesson.title in ada.text for lesson in AI.lessons)
    ada.press("1.")
    assert (
        DISTILLATION.title in ada.text
        and DISTILLATION.premise in ada.text
        and f"{DISTILLATION.minutes} min" in ada.text
    )
    ada.press("Start reading")
    seen = []
    for number, section in enumerate(DISTILLATION.sections, start=1):
        assert section.heading in ada.text and f"{number}/{len(DISTILLATION.sections)}" in ada.text
        assert section.text[:60] in ada.text
        seen.append(section.heading)
        ada.press("Next")
    assert len(seen) == len(DISTILLATION.sections)
    assert "Key terms" in ada.text and "Practice" in ada.text
    for term, _meaning in DISTILLATION.key_terms:
        assert term in ada.text
    ada.press("Take the quiz")
    wrong = {1, 4}
    for number, question in enumerate(DISTILLATION.quiz):
        card = ada.last[-1].quiz
        assert card is not None and card.question == question.prompt and f"Question {number + 1} of" in ada.text
        chosen = (question.correct_index + 1) % len(question.options) if number in wrong else question.correct_index
        ada.act(card.actions[chosen])
        feedback = ada.last[0].text
        if number in wrong:
            assert "Not quite" in feedback and question.correct_option in feedback
            if question.section:
                heading = DISTILLATION.section(question.section).heading
                assert f"Re-read “{heading}”" in feedback
        else:
            assert "Right" in feedback
        if question.explanation:
            assert question.explanation in feedback
    total = len(DISTILLATION.quiz)
    assert f"Quiz done: {total - 2}/{total}" in ada.text and "To review:** 2 questions of this lesson" in ada.text
    assert "Related lessons**\n• RLHF vs DPO\n• Tokenization economics" in ada.text  # as the lesson lists them
    results = store.results("test:ada")
    assert [(r.lesson, r.score, r.total) for r in results] == [("distillation", total - 2, total)]
    assert len(store.attempts("test:ada", "ai-foundations", "distillation", 1)) == total
    assert {c.question for c in store.cards("test:ada")} == wrong
    ada.press("Keep going")
    assert AI.lessons[1].title in ada.text and AI.lessons[1].premise in ada.text
    ada.say("progress")
    assert f"best quiz score {total - 2}/{total}" in ada.text and "1 of 4 lessons done" in ada.text
    assert "Streak: 1 day" in ada.text and f"Next up: “{AI.lessons[2].title}”" in ada.text
    fresh = Learner(engine, "new", "dm-new")
    fresh.say("progress")
    assert f"Next up: “{DISTILLATION.title}”" in fresh.text
    fresh.press("Start it")
    assert DISTILLATION.premise in fresh.text


def test_every_action_id_is_short(engine: Engine) -> None:
    ada = Learner(engine)
    actions: list[str] = []
    ada.say("start")
    actions += every_action(ada.last)
    ada.press(AI.title)
    actions += every_action(ada.last)
    ada.press("4.")
    while "Take the quiz" not in str(ada.last):
        actions += every_action(ada.last)
        ada.press("Start reading" if "Start reading" in str(ada.last) else "Next")
    ada.press("Take the quiz")
    while ada.last[-1].quiz is not None:
        actions += every_action(ada.last)
        ada.act(ada.last[-1].quiz.actions[0])
    actions += every_action(ada.last)
    assert len(actions) > 20
    assert max(len(a.encode("utf-8")) for a in actions) <= MAX_ACTION_BYTES


def test_a_question_mid_lesson_is_answered_without_losing_the_place(engine: Engine, model: ScriptedModel,
                                                                    store: SqlProgressStore) -> None:  # fmt: skip
    ada = Learner(engine)
    open_lesson(ada)
    ada.press("Start reading")
    ada.press("Next")
    before = store.position("test:ada")
    model.enqueue_answer(["1"], explanation="It learns from what the teacher outputs.")
    replies = ada.say("What does the student learn from?")
    partial = [r for r in replies if r.partial]
    assert len(partial) == 2 and all(
        b.text.startswith(a.text) for a, b in zip(partial, partial[1:], strict=False)
    )  # quotes, then the explanation
    final = replies[-1]
    assert not final.partial and "It learns from what the teacher outputs." in final.text
    assert "Source: Model distillation › Teacher and student" in final.text
    assert [c.section for c in final.citations] == ["teacher-and-student"]
    prompt = model.history[0][0][-1].content
    assert "What does the student learn from?" in prompt and TEACHER in prompt
    assert store.position("test:ada") == before
    ada.press("Back to the lesson")
    assert DISTILLATION.sections[1].heading in ada.text


def test_a_question_in_the_quiz_is_answered_and_a_typed_letter_answers(engine: Engine, model: ScriptedModel) -> None:
    ada = Learner(engine)
    open_lesson(ada)
    ada.say("quiz")
    first = DISTILLATION.quiz[0]
    model.enqueue_answer(["1"], explanation="From the teacher's outputs.")
    ada.say("why does the student copy the teacher?")
    assert "Source:" in ada.text and "Question 1 of" not in ada.text
    ada.say("resume")
    assert first.prompt in ada.text
    ada.say("ABCD"[first.correct_index].lower())
    assert "Right" in ada.last[0].text and "Question 2 of" in ada.text
    second = DISTILLATION.quiz[1]
    ada.say(second.options[second.correct_index].upper())
    assert "Right" in ada.last[0].text and "Question 3 of" in ada.text
    ada.say(str(DISTILLATION.quiz[2].correct_index + 1))
    assert "Right" in ada.last[0].text and "Question 4 of" in ada.text
    assert len(model.questions) == 1  # typed answers never reached the model
    model.enqueue_answer(["1"], explanation="From the teacher's outputs.")
    ada.say("/ask what does the student model learn from when it is being distilled?")
    assert "<<<QUESTION\nwhat does the student model learn from" in model.questions[-1][0][-1].content
    assert asyncio.run(ada.engine.is_question(ada.incoming(text="ask why?"))) and not asyncio.run(
        ada.engine.is_question(ada.incoming(text="ask"))
    )


def test_stale_buttons_change_nothing(engine: Engine, store: SqlProgressStore) -> None:
    ada = Learner(engine)
    open_lesson(ada)
    ada.press("Start reading")
    old_next = ada.button("Next")
    ada.press("Next")
    where = store.position("test:ada")
    ada.act(old_next)
    assert "earlier message" in ada.text and DISTILLATION.sections[1].heading in ada.text
    assert store.position("test:ada") == where
    ada.say("quiz")
    answer = ada.last[-1].quiz.actions[0]
    ada.act(answer)
    where = store.position("test:ada")
    ada.act(answer)  # the same poll answer twice (a double tap)
    assert "earlier message" in ada.text and "Question 2 of" in ada.text
    assert store.position("test:ada") == where
    assert len(store.attempts("test:ada", "ai-foundations", "distillation", 1)) == 1
    for junk in ["", "zz", "a:x:1", "n:", "l:deadbeef:00000000", "t:nothere", "v:abc:1", "a:9999:0", "🙂" * 30]:
        ada.act(junk)
        assert ada.last and store.position("test:ada") == where


def test_reset_asks_first_and_keeps_other_learners(engine: Engine, store: SqlProgressStore) -> None:
    ada, bob = Learner(engine), Learner(engine, "bob", "dm-bob")
    open_lesson(ada)
    open_lesson(bob, 2)
    ada.press("Start reading")
    ada.say("reset")
    assert "Erase it?" in ada.text
    ada.press("No")
    assert "Kept" in ada.text and store.position("test:ada").step == "section"
    ada.say("reset")
    confirm = ada.button("Yes")
    ada.press("Yes")
    assert "erased" in ada.text and store.position("test:ada").step == "home"
    assert store.results("test:ada") == [] and store.position("test:bob").lesson == AI.lessons[1].id
    ada.act(confirm)
    assert "earlier message" in ada.text
    ada.say("reset")
    ada.say("yes")
    assert "erased" in ada.text


def test_bad_input_gets_a_helpful_reply_and_keeps_progress(engine: Engine, model: ScriptedModel,
                                                           store: SqlProgressStore) -> None:  # fmt: skip
    ada = Learner(engine)
    open_lesson(ada)
    ada.press("Start reading")
    where = store.position("test:ada")
    ada.say("   ")
    assert "empty message" in ada.text
    ada.say("/frobnicate now")
    assert "don't know the command /frobnicate" in ada.text
    ada.say("\u200b\u202e\u0000")
    assert "empty message" in ada.text
    model.enqueue_answer(["1"], explanation="From the teacher's outputs.")
    ada.say("what does the student learn from? " + "blah " * 10_000)
    assert "read only its first 500 characters" in ada.text
    assert len(model.questions[-1][0][-1].content) < 500 + 2000  # the question went in cut, not whole
    model.enqueue_answer(["1"], explanation="From the teacher.")
    ada.say("what does the student \ud800 learn from \U0001f600 ?")
    assert "Source:" in ada.text
    assert store.position("test:ada") == where
    ada.say("next")
    assert DISTILLATION.sections[1].heading in ada.text


def test_busy_model_gets_a_polite_reply(store: SqlProgressStore, clock: Clock) -> None:
    from bot.core.ports import ModelBusy

    class BusyModel:
        def stream(self, messages, generation):  # noqa: ANN001, ANN202
            raise ModelBusy()

    engine = Engine(TRACKS, store, Answerer(FixedRetriever([passage()]), BusyModel(), PROMPTS), clock=clock)
    ada = Learner(engine)
    ada.say("what does the student learn from the teacher?")
    assert "busy" in ada.text and "try again" in ada.text


def test_moderators_choose_the_tracks_a_community_offers(engine: Engine, store: SqlProgressStore) -> None:
    member = Learner(engine, "bob", "guild-1", is_direct=False)
    mod = Learner(engine, "mia", "guild-1", is_direct=False, is_moderator=True)
    member.say("disable ai-foundations")
    assert "Only this community's moderators" in member.text
    assert store.disabled_tracks("test:guild-1") == set()
    open_lesson(member)
    mod.say("tracks")
    assert "Turn off" in str(mod.last)
    mod.press("Turn off")
    assert "turned off here" in mod.text
    member.say("next")
    assert "isn't offered here" in member.text and "progress in it is kept" in member.text
    member.say("start")
    assert "No tracks are offered here yet" in member.text
    dm = Learner(engine, "bob", "dm-bob")
    dm.say("next")  # the same learner in a DM keeps going where they were
    assert DISTILLATION.sections[0].heading in dm.text
    member.say("enable ai-foundations")
    assert "Only this community's moderators" in member.text
    mod.say("enable ai-foundations")
    assert "now offered" in mod.text
    mod.say("enable ai-foundations")
    assert "already offered" in mod.text
    changes = store.track_changes("test:guild-1")
    assert [(c.track, c.enabled, c.by) for c in changes] == [("ai-foundations", False, "test:mia"),
                                                               ("ai-foundations", True, "test:mia")]  # fmt: skip
    assert store.track_changes("test:guild-2") == []
    dm_mod = Learner(engine, "mia", "dm-mia", is_moderator=True)
    dm_mod.say("disable ai-foundations")
    assert "direct message every track is available" in dm_mod.text


def test_missed_questions_come_back_for_review(engine: Engine, store: SqlProgressStore, clock: Clock) -> None:
    ada = Learner(engine)
    open_lesson(ada)
    ada.say("quiz")
    question = DISTILLATION.quiz[0]
    ada.act(ada.last[-1].quiz.actions[(question.correct_index + 1) % len(question.options)])
    ada.say("review")
    assert "Nothing to review right now" in ada.text and "comes back in 60 minutes" in ada.text
    clock.now += 2 * 3600
    ada.say("progress")
    assert "due for review: 1" in ada.text
    ada.press("Review")
    card = ada.last[-1].quiz
    assert card is not None and card.question == question.prompt
    due_before = store.cards("test:ada")[0].due
    ada.act(card.actions[question.correct_index])
    assert "Right" in ada.text and "Review done" in ada.text
    assert store.cards("test:ada")[0].due > due_before
    ada.act(card.actions[question.correct_index])
    assert "already reviewed" in ada.text
    assert store.position("test:ada").step == "quiz"  # reviewing did not move the lesson place


def test_one_turn_at_a_time_per_learner(engine: Engine, store: SqlProgressStore) -> None:
    ada = Learner(engine)
    open_lesson(ada)
    next_action = ada.button("Start reading")

    async def double_tap() -> list[list[Reply]]:
        return list(await asyncio.gather(*(engine.replies(ada.incoming(action=next_action)) for _ in range(5))))

    outcomes = asyncio.run(double_tap())
    stale = [o for o in outcomes if "earlier message" in o[0].text]
    assert len(stale) == 4
    assert store.position("test:ada").step == "section" and store.position("test:ada").section == 0


def test_many_learners_at_once_keep_their_own_places(engine: Engine, store: SqlProgressStore) -> None:
    learners = [Learner(engine, f"u{n}", f"dm-u{n}") for n in range(60)]

    async def walk(learner: Learner, steps: int) -> None:
        await learner.say_async("start")
        await learner.act_async(learner.button(AI.title))
        await learner.act_async(learner.button("1."))
        await learner.act_async(learner.button("Start reading"))
        for _ in range(steps):
            await learner.say_async("next")

    async def everyone() -> None:
        await asyncio.gather(*(walk(learner, n % 4) for n, learner in enumerate(learners)))

    asyncio.run(everyone())
    for n, _learner in enumerate(learners):
        position = store.position(f"test:u{n}")
        assert (position.step, position.section) == ("section", n % 4)


def test_navigation_never_waits_for_the_model(store: SqlProgressStore, clock: Clock) -> None:
    model = GatedModel()
    model.enqueue_answer(["1"], explanation="Yes.")
    engine = Engine(TRACKS, store, Answerer(FixedRetriever([passage()]), model, PROMPTS), clock=clock)
    ada, bob = Learner(engine), Learner(engine, "bob", "dm-bob")

    async def scenario() -> tuple[bool, str]:
        question = asyncio.create_task(ada.say_async("what does the student learn from?"))
        await asyncio.sleep(0)
        await bob.say_async("start")
        await bob.act_async(bob.button(AI.title))
        done_before_answer = not question.done() and AI.lessons[0].title in bob.text
        model.gate.set()
        await question
        return done_before_answer, ada.text

    navigated_first, answer = asyncio.run(scenario())
    assert navigated_first and "Source:" in answer


def test_a_lesson_that_disappeared_shows_the_start_and_keeps_the_place(tmp_path: Path, store: SqlProgressStore,
                                                                       clock: Clock) -> None:  # fmt: skip
    folder = write_track(tmp_path / "demo", "demo", lessons=2)
    track = read_track(folder).track
    assert track is not None
    ada = Learner(Engine({"demo": track}, store, clock=clock))
    ada.say("lesson lesson-2")
    ada.press("Start reading")
    smaller = Track(track.id, track.title, track.description, track.lessons[:1])
    ada.engine = Engine({"demo": smaller}, store, clock=clock)
    ada.say("next")
    assert "isn't available right now" in ada.text and "Pick a track" in ada.text
    assert store.position("test:ada").lesson == "lesson-2"  # kept: the lesson may come back
    ada.engine = Engine({"demo": track}, store, clock=clock)
    ada.say("next")
    assert track.lessons[1].sections[1].heading in ada.text


def test_a_lesson_without_a_quiz_finishes_with_a_button(tmp_path: Path, store: SqlProgressStore,
                                                         clock: Clock) -> None:  # fmt: skip
    folder = write_track(tmp_path / "plain", "plain", lessons=0)
    (folder / "intro.md").write_text("# Intro\n\n## One\n\nFirst part.\n\n## Two\n\nSecond part.\n", encoding="utf-8")
    track = read_track(folder).track
    assert track is not None and not track.lessons[0].quiz
    ada = Learner(Engine({"plain": track}, store, clock=clock))
    ada.say("lesson intro")
    ada.press("Start reading")
    ada.press("Next")
    ada.press("Next")
    ada.press("Finish the lesson")
    assert "Lesson finished" in ada.text and "last lesson" in ada.text
    assert [(r.lesson, r.total) for r in store.results("test:ada")] == [("intro", 0)]


def test_quiz_cards_say_whether_a_telegram_poll_can_carry_them(engine: Engine) -> None:
    ada = Learner(engine)
    open_lesson(ada)
    ada.say("quiz")
    card = ada.last[-1].quiz
    assert card is not None and card.fits_poll
    assert not replace(card, options=card.options + ("x" * 101,)).fits_poll
    assert not replace(card, question="?" * 301).fits_poll
    assert not replace(card, options=tuple(str(n) for n in range(11))).fits_poll


def test_commands_and_cleaning() -> None:
    assert parse_command("/next") == ("next", "")
    assert parse_command("/start@tutor_bot") == ("start", "")
    assert parse_command("NEXT") == ("next", "")
    assert parse_command("/lesson attention") == ("lesson", "attention")
    assert parse_command("/nope") == ("?", "nope")
    assert parse_command("/lesson") == ("lessons", "") and parse_command("lesson") == ("lessons", "")
    assert parse_command("/track@tutor_bot") == ("tracks", "")
    assert parse_command("next time, what is attention?") is None
    assert parse_command("what is attention") is None
    text, cut = clean_text("a\u200bb\u202ec\x07d" + "e" * 10, limit=8)
    assert (text, cut) == ("abcde", True)  # cut first (8 characters), then cleaned
    assert clean_text("ﬁne") == ("fine", False)


def test_one_question_per_learner_at_a_time_while_navigation_still_works(store: SqlProgressStore,
                                                                         clock: Clock) -> None:  # fmt: skip
    model = GatedModel()
    for reply in ({"units": ["1"]}, {"units": ["1"]}, "It learns from the outputs.", "It is smaller."):
        model.enqueue(reply)  # both questions cite before either explains: the gate holds them
    model.verdicts += [0.9, 0.9]
    calls = model.history  # grows as calls reach the model
    engine = Engine(TRACKS, store, Answerer(FixedRetriever([passage()]), model, PROMPTS), clock=clock)
    ada, bob = Learner(engine), Learner(engine, "bob", "dm-bob")

    async def scenario() -> tuple[str, str, str]:
        first = asyncio.create_task(ada.say_async("what does the student learn from?"))
        while not calls:
            await asyncio.sleep(0)
        second = await engine.replies(ada.incoming(text="and what does the teacher do?"))
        others = asyncio.create_task(engine.replies(bob.incoming(text="why is the student cheaper?")))
        while len(calls) < 2:  # another learner's question does reach the model
            await asyncio.sleep(0)
        model.gate.set()
        await first
        return second[0].text, ada.text, (await others)[-1].text

    second, first, bob_answer = asyncio.run(scenario())
    assert "still answering your last question" in second
    assert "Source:" in first and "Source:" in bob_answer
    assert len(model.questions) == 2  # ada's first question and bob's; ada's second never reached the model


def test_opening_a_lesson_has_the_model_read_its_pages_ahead(store: SqlProgressStore, clock: Clock) -> None:
    from bot.core.answering.answerer import lesson_lookup

    model = ScriptedModel()
    answerer = Answerer(FixedRetriever([passage()]), model, PROMPTS, lessons=lesson_lookup(TRACKS))
    ada = Learner(Engine(TRACKS, store, answerer, clock=clock))
    open_lesson(ada)
    pages = answerer.pages("ai-foundations", "distillation")
    read = [prompt for prompt in model.warmed if len(prompt) == 2]  # the judge's rules are read ahead on their own
    assert len(read) == len(pages) >= 1
    units_read = " ".join(prompt[-1].content for prompt in read)
    assert all(unit.text in units_read for section in DISTILLATION.sections for unit in section.units)
    model.enqueue_answer(["1"], explanation="From the teacher's outputs.")
    ada.say("What does the student learn from?")
    asked = model.history[0][0]
    # The question's prompt starts exactly like the page read ahead, up to the question itself.
    assert asked[0] == read[0][0]
    assert asked[1].content.startswith(read[0][1].content.split("<<<QUESTION")[0])


@pytest.mark.parametrize("number", ["²", "١", "9" * 5000, "-1", " 1"])
def test_an_action_whose_number_no_button_carries_is_stale_and_moves_nothing(engine: Engine, store: SqlProgressStore,
                                                                             number: str) -> None:  # fmt: skip
    ada = Learner(engine)
    open_lesson(ada)
    ada.say("quiz")
    before = store.position("test:ada")
    for action in (f"n:{number}", f"a:{before.version}:{number}", f"v:abcd1234:{number}"):
        replies = ada.act(action)
        assert "earlier message" in replies[0].text or "already reviewed" in replies[0].text, action
        assert store.position("test:ada") == before


def test_a_display_name_with_a_lone_surrogate_is_shown_and_stored_without_it(engine: Engine) -> None:
    ada = Learner(engine, display_name="Ada\ud800\u200b")  # as JSON from a platform can carry it
    assert "Welcome to tutorbot, Ada!" in ada.say("start")[0].text
    assert "as “Ada”" in ada.say("leaderboard on")[0].text
