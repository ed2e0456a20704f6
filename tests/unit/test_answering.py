"""The grounded-answer flow with a scripted model: what the prompt and grammar hold, when the model is never
asked, how the judge decides, what the learner sees first, and what is logged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bot.core.answering import Answer, AnswerDelta, Answerer, AnswerSettings
from bot.core.answering.answerer import quote_text
from bot.core.answering.checks import Vocabulary, unknown_terms, unsupported
from bot.core.answering.units import Numbered
from bot.core.lessons import Lesson, Section, Unit
from bot.core.markup import plain
from bot.core.messages import Citation
from bot.core.ports import Passage
from bot.core.prompts import PromptLibrary
from bot.knowledge.units import section_units
from tests.fakes import FixedRetriever, MemoryLog, ScriptedModel

PROMPTS = PromptLibrary(Path(__file__).resolve().parents[2] / "prompts")
TEACHER = """Distillation trains a small model from a large one.

The student learns from three things:

- the teacher's outputs,
- its soft probabilities,
- and a few true labels.

It never copies the teacher's weights.

See [the paper](https://example.org/kd) for more."""
GAP = "The student keeps up on narrow tasks. It falls behind on rare, hard inputs, such as 40-digit numbers."


def section(section_id: str, text: str) -> Section:
    return Section(section_id, section_id.replace("-", " ").title(), text, 1, section_units(section_id, text))


LESSON = Lesson(
    "distillation", "Model distillation", 5, "premise", (section("teacher-and-student", TEACHER), section("gap", GAP))
)


def passage(section_id: str, text: str, similarity: float) -> Passage:
    return Passage("ai", "distillation", section_id, section_id.replace("-", " ").title(), "Model distillation", text,
                   similarity, similarity)  # fmt: skip


def make(
    similarity: float = 0.6, track_words: str | None = None, **settings: object
) -> tuple[Answerer, ScriptedModel, MemoryLog]:
    model, log = ScriptedModel(), MemoryLog()
    passages = [passage("teacher-and-student", TEACHER, similarity), passage("gap", GAP, similarity - 0.05)]
    answerer = Answerer(FixedRetriever(passages), model, PROMPTS, log, lessons=lambda t, lesson: LESSON if lesson == LESSON.id else None,
                        track_words=(lambda track: Vocabulary(track_words)) if track_words is not None else None,
                        settings=AnswerSettings().model_copy(update=settings))  # fmt: skip
    return answerer, model, log  # (model_copy: the tiny test lesson needs budgets below what a host may set)


def ask(answerer: Answerer, question: str, lesson: str | None = "distillation") -> tuple[list[str], Answer]:
    async def run() -> tuple[list[str], Answer]:
        shown, final = [], None
        async for event in answerer.ask(question, "ai", lesson, learner="u1"):
            if isinstance(event, AnswerDelta):
                shown.append(event.text)
            else:
                final = event
        assert final is not None
        return shown, final

    return asyncio.run(run())


def number_of(answerer_prompt: str, text: str) -> str:
    """The number the prompt gives the unit that reads ``text``."""
    line = next(line for line in answerer_prompt.splitlines() if text in line)
    return line.strip().split("]")[0].lstrip("[")


def test_the_cited_units_are_shown_first_word_for_word_then_the_explanation() -> None:
    answerer, model, log = make()
    model.enqueue_answer(["6"], yes=0.8, explanation="The student never copies the weights.")
    shown, answer = ask(answerer, "does the student copy the teacher's weights?")
    prompt = model.questions[0][0][-1].content
    assert number_of(prompt, "It never copies the teacher's weights.") == "6"
    assert shown[0] == "“It never copies the teacher's weights.”\nSource: Model distillation › Teacher And Student"
    assert shown[1] == "\n\nThe student never copies the weights."
    assert answer.text == "".join(shown) and not answer.refused
    assert [q.text for q in answer.quotes] == ["It never copies the teacher's weights."]
    assert answer.as_dict()["quotes"] == [
        {"unit": answer.quotes[0].unit, "text": "It never copies the teacher's weights."}
    ]
    assert log.records[-1].sections == ("ai/distillation#teacher-and-student",) and not log.records[-1].refused
    assert list(answer.stages) == ["retrieve", "cite", "judge", "explain"]  # where its time went, in order


def test_the_grammar_admits_only_unit_numbers_that_are_in_the_prompt() -> None:
    answerer, model, _ = make()
    model.enqueue_answer(["6"])
    ask(answerer, "does the student copy the teacher's weights?")
    messages, generation = model.questions[0]
    enum = generation.json_schema["properties"]["units"]["items"]["enum"]
    numbered = [
        line.split("]")[0].strip().lstrip("[")
        for line in messages[-1].content.splitlines()
        if line.strip().startswith("[")
    ]
    assert enum == numbered == [str(n) for n in range(1, len(numbered) + 1)]
    assert generation.json_schema["properties"]["units"]["maxItems"] == 3


def test_a_number_outside_the_prompt_is_never_shown() -> None:
    answerer, model, _ = make()
    model.enqueue({"units": ["99"]})  # a model server that ignores the grammar
    shown, answer = ask(answerer, "does the student copy the teacher's weights?")
    assert answer.refused and not shown and not model.probes  # nothing to judge, nothing shown


def test_a_cited_lead_in_brings_its_list() -> None:
    answerer, model, _ = make()
    model.enqueue_answer(["2"])
    shown, answer = ask(answerer, "what does the student learn from?")
    assert shown[0].startswith("“The student learns from three things:\n• the teacher's outputs,\n• its soft probabilities,"
                               "\n• and a few true labels.”")  # fmt: skip
    judged = model.probes[0][-1].content
    assert "the teacher's outputs," in judged and "and a few true labels." in judged  # the judge saw the list too


def test_a_judge_no_refuses_and_points_to_the_cited_section() -> None:
    answerer, model, log = make()
    model.enqueue_answer(["1"], yes=0.2)
    shown, answer = ask(answerer, "how many GPUs does distillation need?")
    assert answer.refused and not shown and len(model.history) == 1  # no explanation was asked for
    assert "closest section is “Teacher And Student”" in answer.text
    assert "judge" in log.records[-1].reason and log.records[-1].refused


def test_the_judge_sees_only_the_question_and_the_cited_units() -> None:
    answerer, model, _ = make()
    model.enqueue_answer(["1"], yes=0.9, explanation="Distillation trains a small model.")
    ask(answerer, "what is distillation?")
    probe = model.probes[0]
    assert probe[0].role == "system" and probe[-1].role == "user"
    assert "Distillation trains a small model from a large one." in probe[-1].content
    assert "what is distillation?" in probe[-1].content and "rare, hard inputs" not in probe[-1].content
    assert len(probe) == 2  # nothing of the citing conversation: the rules, then the question and units
    assert len(model.probes) == 2 and model.probes[1][0].content.startswith("You check a tutor's explanation")


def test_refuses_without_the_model_when_nothing_is_close() -> None:
    answerer, model, log = make(similarity=0.1)
    shown, answer = ask(answerer, "what is the capital of France?")
    assert answer.refused and not shown and not model.history and not model.probes
    assert "closest" not in answer.text  # nothing is close enough to point to
    assert log.records[-1].reason == "no lesson text is close to the question"


def test_a_term_the_lessons_never_mention_is_refused_without_the_model() -> None:
    answerer, model, _ = make(track_words="distillation trains a small model gpu")
    shown, answer = ask(answerer, "does KTO beat DPO with GPUs?")
    assert answer.refused and "never mention" in answer.text and not model.history
    assert "KTO" not in answer.text and "KTO, DPO" in answer.reason  # not said back to the chat; logged for moderators
    assert unknown_terms("how many GPUs?", Vocabulary("one gpu")) == []  # a plural of a named term is named


def test_a_tracks_vocabulary_finds_whole_words_and_phrases_only() -> None:
    known = Vocabulary("GPT-4 answers; a teacher (GPT-4o) trains the student. Llama 3.1 too.")
    assert "gpt 4" in known and "gpt 4o" in known and "llama 3 1" in known and "teacher" in known
    assert "gpt 5" not in known and "gp" not in known and "4 answers a" in known and "student llama" in known
    assert "" not in known and "trains student" not in known
    assert unknown_terms("Is GPT-4 better than GPT-5 or Llama-3.1?", known) == ["GPT-5"]


def test_an_explanation_with_a_number_name_or_link_the_units_lack_is_not_shown() -> None:
    for explanation in (
        "It needs 8 GPUs.",
        "As Hinton showed, it never copies them.",
        "Read more at www.shop.example.com.",
    ):
        answerer, model, _ = make()
        model.enqueue_answer(["6"], explanation=explanation)
        shown, answer = ask(answerer, "does the student copy the teacher's weights?")
        assert shown == ["“It never copies the teacher's weights.”\nSource: Model distillation › Teacher And Student"]
        assert not answer.refused and answer.explanation == "" and "withheld" in answer.reason


def test_an_explanation_the_check_finds_says_more_than_the_units_is_not_shown() -> None:
    answerer, model, _ = make()
    model.enqueue_answer(["6"], explanation="The student copies the teacher's outputs as its input.")
    model.checks.append(0.1)
    shown, answer = ask(answerer, "does the student copy the teacher's weights?")
    assert len(shown) == 1 and answer.explanation == "" and "says more than" in answer.reason
    check = model.probes[-1]
    assert "Statement: The student copies the teacher's outputs as its input." in check[-1].content
    assert "It never copies the teacher's weights." in check[-1].content


def test_unsupported_is_a_general_check_of_numbers_links_and_names() -> None:
    sources = "Model distillation. It falls behind on rare inputs, such as 40-digit numbers. See https://example.org/kd"
    assert unsupported("It falls behind on 40-digit numbers, see https://example.org/kd.", sources) == set()
    assert unsupported("It is 3 times worse.", sources) == {"3"}
    assert unsupported("Geoffrey Hinton found that.", sources) == {"Hinton"}  # the first word of a sentence is no name
    assert unsupported("Ask GPT-4 instead.", sources) >= {"GPT-4"}
    assert unsupported("Buy at evil.com today.", sources) == {"evil.com"}
    assert unsupported("Yes, it falls behind. No, Hinton did not.", sources) == {
        "Hinton"
    }  # "Yes," and "No," open sentences


def test_the_open_lessons_page_is_the_prompt_and_its_prefix_is_what_was_read_ahead() -> None:
    answerer, model, _ = make()
    from bot.core.lessons import Track

    answerer.prefetch(Track("ai", "AI", "", (LESSON,)), LESSON)
    page = model.warmed[-1]
    model.enqueue_answer(["6"])
    ask(answerer, "does the student copy the teacher's weights?")
    asked = model.questions[0][0]
    assert asked[1].content.startswith(page[1].content.split("<<<QUESTION")[0])
    assert "rare, hard inputs" in asked[1].content  # the whole (small) lesson is one page


def test_without_an_open_lesson_the_best_sections_go_in_whole_within_the_budget() -> None:
    answerer, model, _ = make(context_tokens=60)
    model.enqueue_answer(["1"])
    ask(answerer, "what is distillation?", lesson=None)
    prompt = model.questions[0][0][-1].content
    assert "never copies the teacher's weights" in prompt  # the best section, whole
    assert "rare, hard inputs" not in prompt  # the second one did not fit the budget


def test_long_question_is_cut_and_said_so() -> None:
    answerer, model, _ = make()
    model.enqueue_answer(["1"])
    _, answer = ask(answerer, "what is distillation " * 100)
    assert answer.truncated_question and len(model.questions[0][0][-1].content) < 2500


def test_empty_question_gets_a_hint_not_a_model_call() -> None:
    answerer, model, _ = make()
    _, answer = ask(answerer, "   ")
    assert answer.refused and "Ask me something" in answer.text and not model.history


@pytest.mark.parametrize("reply", ['{"units": ["6", "6"]}', '{"units": ["6"', "not json"])
def test_a_repeated_or_unfinished_citation_reply_is_read_safely(reply: str) -> None:
    answerer, model, _ = make()
    model.enqueue(reply)
    model.verdicts.append(0.9)
    model.enqueue("")
    shown, answer = ask(answerer, "does the student copy the teacher's weights?")
    if reply == "not json":
        assert answer.refused and not shown
    else:
        assert [q.text for q in answer.quotes] == ["It never copies the teacher's weights."]
        assert json.loads(json.dumps(answer.as_dict()))["quotes"][0]["text"].startswith("It never")


def test_quoted_units_are_markdown_that_shows_them_as_written() -> None:
    where = Citation("t", "l", "s", "Loops", "Python basics")
    cited = [Numbered("1", Unit("s~1", "Multiply with a*b*c, not <x>:", "sentence"), where),
             Numbered("2", Unit("s~2", "for x in xs:\n    print(x * 2)  # **twice**", "code"), where),
             Numbered("3", Unit("s~3", "Then it stops.", "sentence"), where)]  # fmt: skip
    text = quote_text(cited)
    assert text == ("“Multiply with a\\*b\\*c, not \\<x\\>:”\n```\nfor x in xs:\n    print(x * 2)  # **twice**\n```\n"
                    "“Then it stops.”\nSource: Python basics › Loops")  # fmt: skip
    assert plain(text) == ("“Multiply with a*b*c, not <x>:”\nfor x in xs:\n    print(x * 2)  # **twice**\n"
                           "“Then it stops.”\nSource: Python basics › Loops")  # fmt: skip


def test_the_words_checked_are_those_of_the_tracks_offered_where_the_question_is_asked() -> None:
    from bot.core.answering.answerer import track_words
    from bot.core.lessons import Lesson, Section, Track

    def track(track_id: str, text: str) -> Track:
        return Track(track_id, track_id, "", (Lesson("l", "L", 1, "", (Section("s", "S", text),)),))

    words = track_words({"ours": track("ours", "Attention weighs tokens."), "theirs": track("theirs", "Kubernetes.")})
    assert "kubernetes" not in words(["ours"]) and "attention" in words(["ours"])
    assert "kubernetes" in words(["ours", "theirs"]) and "kubernetes" in words(None)
    assert "kubernetes" not in words("ours") and "kubernetes" in words("theirs")
