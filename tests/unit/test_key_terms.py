"""Key terms on demand: answered at once from the lessons' key terms, tolerant of case, plurals and typos."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core.answering import Answerer
from bot.core.engine import Engine
from bot.core.lessons import Track
from bot.core.terms import KeyTerms, asked_term, normalise
from bot.knowledge.reader import read_knowledge
from bot.store.progress import SqlProgressStore
from tests.engine_driver import Learner
from tests.fakes import FixedRetriever, MemoryLog, ScriptedModel
from tests.unit.test_engine import PROMPTS, TRACKS, open_lesson, passage

SOFT = "The teacher's full probability distribution over possible answers"


@pytest.fixture
def model() -> ScriptedModel:
    return ScriptedModel()


@pytest.fixture
def engine(tmp_path: Path, model: ScriptedModel) -> Engine:
    answerer = Answerer(FixedRetriever([passage()]), model, PROMPTS, MemoryLog())
    return Engine(TRACKS, SqlProgressStore(tmp_path / "p.sqlite3"), answerer)


@pytest.mark.parametrize("phrase", ["soft targets", "Soft Targets", "soft target", "the soft targets", "sfot targets",
                                    "soft targest", "SOFT-TARGETS"])  # fmt: skip
def test_a_term_matches_whatever_its_case_plural_or_a_typo(phrase: str) -> None:
    found = KeyTerms(TRACKS.values()).find(phrase, TRACKS)
    assert found is not None and found.term == "Soft targets" and found.lesson.id == "distillation"


@pytest.mark.parametrize("phrase", ["soft", "targets", "attention", "soft targets and hard labels", "ppx", "key value"])
def test_other_phrases_match_no_term(phrase: str) -> None:
    assert KeyTerms(TRACKS.values()).find(phrase, TRACKS) is None


def test_short_terms_take_no_typo_and_longer_ones_take_more() -> None:
    terms = KeyTerms(TRACKS.values())
    assert terms.find("PPO", TRACKS) is not None and terms.find("PPA", TRACKS) is None
    assert terms.find("tokenizr", TRACKS).term == "Tokenizer"  # type: ignore[union-attr]
    assert terms.find("byte pair encodnig", TRACKS).term == "Byte-pair encoding"  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "term"), [("what is soft targets?", "soft targets"), ("What are logits", "logits"),
                                            ("what's a tokenizer?", "a tokenizer"), ("define PPO", "PPO"),
                                            ("what does BPE stand for?", "BPE"), ("why is the sky blue?", None)])  # fmt: skip
def test_the_asked_for_term_is_read_from_the_question(text: str, term: str | None) -> None:
    assert asked_term(text) == term


def test_the_learners_own_lesson_wins_when_two_lessons_define_a_term() -> None:
    terms = KeyTerms(TRACKS.values())
    assert normalise("Context windows") == "context window"
    here = terms.find("context window", TRACKS, "ai-foundations", "attention")
    there = terms.find("context window", TRACKS, "ai-foundations", "tokenization-economics")
    assert here is not None and there is not None
    assert (here.lesson.id, [lesson.id for lesson in here.also_in]) == ("attention", ["tokenization-economics"])
    assert (there.lesson.id, [lesson.id for lesson in there.also_in]) == ("tokenization-economics", ["attention"])


def test_what_is_a_key_term_is_answered_without_the_model_and_its_button_opens_the_section(
        engine: Engine, model: ScriptedModel) -> None:  # fmt: skip
    ada = Learner(engine)
    question = ada.incoming(text="what are soft targts?")
    assert asyncio.run(engine.is_question(question)) is False  # so adapters neither count it nor show "typing"
    ada.say("what are soft targts?")
    assert ada.text.startswith(f"Did you mean “Soft targets”? **Soft targets**: {SOFT}")  # "targts": a guess
    assert "From “Model distillation” › Teacher and student (AI foundations)." in ada.text
    assert model.history == [] and model.probes == []
    ada.press("Read “Teacher and student”")
    position = engine.store.position("test:ada")
    lesson = TRACKS["ai-foundations"].lesson("distillation")
    assert lesson is not None
    assert (position.lesson, position.step, lesson.sections[position.section].id) == ("distillation", "section",
                                                                                      "teacher-and-student")  # fmt: skip
    assert "**Teacher and student**" in ada.text


def test_term_command_finds_a_term_or_says_how_to_ask_instead(engine: Engine, model: ScriptedModel) -> None:
    ada = Learner(engine)
    open_lesson(ada, 2)
    ada.say("term softmax")
    assert ada.text.startswith("**Softmax**:") and "Back to the lesson" in [
        b.label for r in ada.last for row in r.buttons for b in row
    ]
    ada.say("term photosynthesis")
    assert (
        "No lesson here lists “photosynthesis” as a key term" in ada.text
        and "'ask what is photosynthesis?'" in ada.text
    )
    ada.say("term")
    assert "Type the term after 'term'" in ada.text
    assert model.history == []
    assert asyncio.run(
        engine.is_question(ada.incoming(text="term limits of the context window?"))
    )  # a question, not a command


def test_a_question_that_is_not_a_key_term_still_goes_to_the_answerer(engine: Engine, model: ScriptedModel) -> None:
    ada = Learner(engine)
    model.enqueue_answer(["1"], explanation="From the teacher.")
    assert asyncio.run(engine.is_question(ada.incoming(text="what is distillation good for?"))) is True
    ada.say("what is distillation good for?")
    assert "Source:" in ada.text and len(model.questions) == 1


def test_a_term_of_a_track_turned_off_in_a_community_is_not_found_there(tmp_path: Path) -> None:
    engine = Engine(TRACKS, SqlProgressStore(tmp_path / "p.sqlite3"))
    Learner(engine, user_id="mod", conversation="g", is_direct=False, is_moderator=True).say("disable ai-foundations")
    ada = Learner(engine, conversation="g", is_direct=False)
    ada.say("term softmax")
    assert "No lesson here lists" in ada.text


def test_key_terms_of_a_fresh_track_are_found(tmp_path: Path) -> None:
    from tests.helpers import write_track

    results = read_knowledge(write_track(tmp_path / "k" / "demo").parent)
    terms = KeyTerms([r.track for r in results if r.track])
    assert terms.find("teachers", ["demo"]).term == "Teacher"  # type: ignore[union-attr]


def test_text_that_merely_is_a_word_must_be_the_term_itself_and_a_guess_says_so(engine: Engine) -> None:
    ada = Learner(engine)
    for word in ("police", "taken", "valve"):  # one letter from Policy, Token, Value
        assert asyncio.run(engine.is_question(ada.incoming(text=word))), word
    ada.say("Softmax")
    assert ada.text.startswith("**Softmax**:")
    ada.say("what is polcy?")
    assert ada.text.startswith("Did you mean “Policy”? **Policy**:")


def test_a_long_message_is_not_scanned_for_terms() -> None:
    # Text like this took the pattern's backtracking half a second a call; past MAX_PHRASE_CHARS it is not read.
    assert asked_term("what is x" + " " * 3980 + "y") is None
    assert asked_term("what is " + "soft " * 30 + "targets?") is None
    assert KeyTerms(TRACKS.values()).find("soft " * 500, TRACKS) is None


def test_a_plural_in_ies_still_finds_the_section_that_uses_it() -> None:
    from bot.core.lessons import Lesson, Section

    lesson = Lesson("p", "P", 5, "", (Section("a", "A", "Nothing here."), Section("b", "B", "It predicts probabilities.")),
                    key_terms=(("Probability", "How likely something is."),))  # fmt: skip
    found = KeyTerms([Track("t", "T", "", (lesson,))]).find("probabilities", ["t"])
    assert found is not None and found.section is not None and found.section.id == "b"
