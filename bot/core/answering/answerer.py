"""Grounded answers: the model cites lesson units by number, a judge checks them, the learner sees them verbatim.

The flow for one question:
1. retrieve sections (the learner's open lesson first, then the track); a chunk only votes for its section;
2. refuse at once when nothing is close to the question, or when it names a term the track never mentions;
3. give the model whole sections with every unit numbered (the open lesson's read-ahead page, or the
   retrieved sections) and let it reply only with unit numbers from its prompt (a JSON-schema ``enum``);
4. refuse when it cites nothing, or when an independent judge, a fresh prompt that sees only the question
   and the cited units, gives P(yes) below the threshold for "does this text state the answer?";
5. show the cited units word for word with their lesson and section: true by construction;
6. then, optionally, a short explanation, shown only when every number, link and name in it appears in
   the cited units. Nothing shown is ever taken back;
7. log the question and its outcome for moderators.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass

import pydantic_core

from bot.core.answering.checks import (
    Vocabularies,
    Vocabulary,
    clean_question,
    first_sentences,
    sentence_count,
    unknown_terms,
    unsupported,
)
from bot.core.answering.outcome import Answer, AnswerDelta, Quote
from bot.core.answering.settings import AnswerSettings
from bot.core.answering.units import (
    Numbered,
    Part,
    citation_of,
    citation_schema,
    expand,
    fallback_units,
    lesson_pages,
    number_units,
    part_tokens,
    parts_of,
)
from bot.core.lessons import Lesson, Track
from bot.core.markup import code_block, escape
from bot.core.messages import Citation
from bot.core.ports import (
    ChatMessage,
    ChatModel,
    Generation,
    ModelBusy,
    ModelFailed,
    Passage,
    QuestionLog,
    QuestionRecord,
    Retriever,
)
from bot.core.prompts import PromptLibrary

EXPLANATION_SENTENCES = 2


@dataclass(frozen=True)
class UnitPrompt:
    """The lesson text of one question's prompt: its parts, as numbered text, and whether it was read ahead."""

    parts: tuple[Part, ...]
    text: str
    numbered: list[Numbered]
    page: bool


def passage_citation(passage: Passage) -> Citation:
    """The citation of a retrieved passage."""
    return Citation(passage.track, passage.lesson, passage.section, passage.heading, passage.lesson_title)


def _overlap(units: tuple, text: str) -> int:
    words = set(text.lower().split())
    return sum(len(words & set(unit.text.lower().split())) for unit in units)


def quote_text(cited: list[Numbered]) -> str:
    """The cited units as the learner reads them (Markdown): each section's words in quotes and its code
    fenced, then lesson › section. Unit text is plain (the lesson's marks dropped), so it is escaped."""
    blocks: list[str] = []
    pieces: list[str] = []  # the section's quoted runs of text and its code blocks
    words = ""  # the quoted run being written
    for position, item in enumerate(cited):
        previous = cited[position - 1] if position else None
        same_section = previous is not None and previous.citation == item.citation
        kind = item.unit.kind
        if kind == "code":
            if words.strip():
                pieces.append(f"“{words.strip()}”")
            words = ""
            pieces.append(code_block(item.unit.text))
        elif kind in ("item", "row"):
            words += ("\n• " if kind == "item" else "\n") + escape(item.unit.text)
        else:
            gap = same_section and int(item.number) != int(previous.number) + 1  # type: ignore[union-attr]
            words += (" … " if gap else " ") + escape(item.unit.text)
        last_of_section = position + 1 == len(cited) or cited[position + 1].citation != item.citation
        if last_of_section:
            if words.strip():
                pieces.append(f"“{words.strip()}”")
            blocks.append("\n".join(pieces) + f"\nSource: {item.citation.label()}")
            pieces, words = [], ""
    return "\n\n".join(blocks)


def checker_prefix(prompts: PromptLibrary, name: str) -> list[ChatMessage]:
    """A yes/no checker's fixed rules (``NAME_system``): the prefix its fresh prompts share, read ahead once.

    Zero-shot on purpose: with six worked examples after the rules, the judge said yes more often to
    everything and told answerable from uncovered questions apart less well (bench/answer_eval.py --sweep).
    """
    return [ChatMessage("system", prompts.get(f"{name}_system").render())]


class Answerer:
    """Answers questions from lesson text only."""

    def __init__(
        self,
        retriever: Retriever,
        model: ChatModel,
        prompts: PromptLibrary,
        log: QuestionLog | None = None,
        lessons: Callable[[str, str], Lesson | None] | None = None,
        track_words: Callable[[str | Sequence[str] | None], Vocabulary | Vocabularies] | None = None,
        settings: AnswerSettings | None = None,
        clock: Callable[[], float] = time.perf_counter,
        tracks: Mapping[str, Track] | None = None,
    ):
        self.retriever = retriever
        self.model = model
        self.prompts = prompts
        self.log = log
        self.lessons = lessons or (lambda track, lesson: None)
        self.track_words = track_words
        self.settings = settings or AnswerSettings()
        self.clock = clock
        self._system = prompts.get("answer_system").render()
        self._user = prompts.get("answer_user")
        self._explain = prompts.get("explain_user")
        self._judge_user = prompts.get("judge_user")
        self._judge_prefix = checker_prefix(prompts, "judge")
        self._check_user = prompts.get("check_user")
        self._check_prefix = checker_prefix(prompts, "check")
        self._judge_warmed = False
        if tracks is not None:
            self.use_tracks(tracks)

    def use_tracks(self, tracks: Mapping[str, Track]) -> None:
        """Answer from these tracks from now on: their lessons and words (a moderator published a new version)."""
        self.lessons = lesson_lookup(tracks)
        self.track_words = track_words(tracks)

    # ------------------------------------------------------------ what the model reads

    def retrieve(self, question: str, track: str | None, lesson: str | None,
                 scope: Sequence[str] | None = None) -> list[Passage]:  # fmt: skip
        """Sections for a question, best first: the open lesson's get a small head start.

        Without a ``track``, the search spans ``scope`` (the tracks offered where the learner asks; None: all).
        """
        ranked: dict[tuple[str, str, str], tuple[float, Passage]] = {}
        if lesson:
            for hit in self.retriever.search(question, 3, track, lesson):
                ranked[(hit.track, hit.lesson, hit.section)] = (hit.similarity + self.settings.lesson_bonus, hit)
        for hit in self.retriever.search(question, 3, track if track else scope):
            ranked.setdefault((hit.track, hit.lesson, hit.section), (hit.similarity, hit))
        return [hit for _score, hit in sorted(ranked.values(), key=lambda pair: pair[0], reverse=True)]

    def pages(self, track: str, lesson_id: str) -> list[tuple[Part, ...]]:
        """The read-ahead pages of a lesson (none when the lesson is unknown)."""
        lesson = self.lessons(track, lesson_id)
        return lesson_pages(track, lesson, self.settings.page_tokens) if lesson else []

    def part_for(self, passage: Passage) -> Part:
        """A retrieved passage's section whole, or the run of it that holds the passage when it is too long."""
        lesson = self.lessons(passage.track, passage.lesson)
        section = lesson.section(passage.section) if lesson else None
        if lesson is None or section is None or not section.units:
            return Part(passage_citation(passage), fallback_units(passage))
        parts = parts_of(citation_of(passage.track, lesson, section), section.units, self.settings.context_tokens)
        return max(parts, key=lambda part: _overlap(part.units, passage.text))

    def prompt_for(self, passages: list[Passage], lesson: str | None) -> UnitPrompt:
        """The open lesson's page when the best section is in it; otherwise the best sections, within budget."""
        best = passages[0]
        if lesson and best.lesson == lesson:
            pages = [
                p for p in self.pages(best.track, lesson) if any(part.citation.section == best.section for part in p)
            ]
            if pages:
                page = max(pages, key=lambda p: sum(_overlap(part.units, best.text) for part in p))
                return UnitPrompt(page, *number_units(page), page=True)
        parts: list[Part] = []
        used = 0
        for passage in passages:
            part = self.part_for(passage)
            size = part_tokens(part)
            if parts and used + size > self.settings.context_tokens:
                break
            parts.append(part)
            used += size
        return UnitPrompt(tuple(parts), *number_units(parts), page=False)

    def messages(self, units_text: str, question: str) -> list[ChatMessage]:
        """The citing prompt: fixed rules, the numbered lesson text, then the question (rules restated after it)."""
        return [
            ChatMessage("system", self._system),
            ChatMessage("user", self._user.render(units=units_text, question=question)),
        ]

    def judge_messages(self, question: str, cited: list[Numbered]) -> list[ChatMessage]:
        """A fresh prompt for the judge: its rules (a cached prefix), then only the question and the cited units."""
        passage = "\n".join(item.unit.text for item in cited)
        return [*self._judge_prefix, ChatMessage("user", self._judge_user.render(passage=passage, question=question))]

    def check_messages(self, statement: str, cited: list[Numbered]) -> list[ChatMessage]:
        """A fresh prompt asking whether the cited units say everything an explanation says."""
        passage = "\n".join(item.unit.text for item in cited)
        return [*self._check_prefix, ChatMessage("user", self._check_user.render(passage=passage, statement=statement))]

    def prefetch(self, track: Track, lesson: Lesson) -> None:
        """Have the model read the lesson's pages (and the judge's rules) ahead of the learner's questions."""
        if not self._judge_warmed:
            self._judge_warmed = True
            self.model.warm(self._judge_prefix)
            self.model.warm(self._check_prefix)
        for page in self.pages(track.id, lesson.id):
            self.model.warm(self.messages(number_units(page)[0], ""))

    # ------------------------------------------------------------ answering

    @staticmethod
    def refusal_text(closest: Citation | None, why: str | None = None) -> str:
        """What the learner reads when the lessons do not answer the question."""
        text = (
            why or "I can't answer that from the lessons: they don't cover it, and I only answer from the lesson text."
        )
        if closest:
            text += f" The closest section is “{closest.heading}” in {closest.lesson_title}."
        return text

    async def ask(self, question: str, track: str | None = None, lesson: str | None = None,
                  learner: str | None = None, scope: Sequence[str] | None = None) -> AsyncIterator[AnswerDelta | Answer]:  # fmt: skip
        """Answer ``question``; yields what is shown as soon as it is known to be right, then the final Answer.

        ``scope`` limits a question asked outside any track to the tracks offered to the learner.
        """
        started = self.clock()
        cleaned, truncated = clean_question(question, self.settings.max_question_chars)
        stages: dict[str, float] = {}

        def stage(name: str) -> None:  # where a question's time goes (bench/answer_eval.py prints it)
            stages[name] = self.clock() - started - sum(stages.values())

        async def refuse(
            reason: str, closest: Citation | None, why: str | None = None, judged: float | None = None
        ) -> Answer:
            answer = Answer(
                self.refusal_text(closest, why), True, reason, closest=closest, judged=judged, stages=stages
            )
            return await self._finish(answer, cleaned, track, lesson, learner, started, None, truncated)

        if not cleaned:
            yield await refuse("empty question", None, "Ask me something about the lesson, in a sentence or two.")
            return
        passages = await asyncio.to_thread(
            self.retrieve, cleaned, track, lesson, scope
        )  # keeps other learners' turns moving
        stage("retrieve")
        best = passages[0] if passages else None
        closest = passage_citation(best) if best and best.similarity >= self.settings.point_similarity else None
        if best is None or best.similarity < self.settings.min_similarity:
            yield await refuse("no lesson text is close to the question", closest)
            return
        words = self.track_words(track or scope) if self.track_words is not None else None
        missing = unknown_terms(cleaned, words) if words is not None else []
        if missing:
            named = ", ".join(missing)
            # The learner's own words are not repeated back: they may be what an injected instruction wants said.
            why = "Your question names something the lessons never mention, so I can't answer it from them."
            yield await refuse(f"the lessons never mention {named}", closest, why)
            return

        prompt = self.prompt_for(passages, lesson)
        messages = self.messages(prompt.text, cleaned)
        chosen, reply = await self._cite(messages, prompt.numbered)
        stage("cite")
        if not chosen:
            yield await refuse("no unit of the lesson text states the answer", closest)
            return
        cited = expand(chosen, prompt.numbered)
        odds = await self.model.next_word_probabilities(self.judge_messages(cleaned, cited), ("yes", "no"))
        judged = odds.get("yes", 0.0)
        stage("judge")
        if judged < self.settings.judge_threshold:
            yield await refuse(
                f"the judge found the cited text does not state the answer (P(yes) {judged:.2f})",
                cited[0].citation,
                judged=judged,
            )
            return

        shown = quote_text(cited)
        first = self.clock()
        yield AnswerDelta(shown)
        explanation, withheld = (
            await self._explanation(messages, reply, chosen, cited) if self.settings.explain else ("", "")
        )
        if explanation:
            yield AnswerDelta("\n\n" + explanation)
            shown += "\n\n" + explanation
        stage("explain")
        citations = list(dict.fromkeys(item.citation for item in cited))
        quotes = [Quote(item.unit.id, item.unit.text, item.citation) for item in cited]
        reason = f"answered; explanation withheld: {withheld}" if withheld else "answered"
        answer = Answer(shown, False, reason, citations, closest=citations[0], quotes=quotes,
                        explanation=explanation, judged=judged, stages=stages)  # fmt: skip
        yield await self._finish(answer, cleaned, track, lesson, learner, started, first, truncated)

    async def _cite(self, messages: list[ChatMessage], numbered: list[Numbered]) -> tuple[list[Numbered], str]:
        """The units the model cites (at most ``max_units``, in the order it gave them) and its raw reply."""
        by_number = {item.number: item for item in numbered}
        schema = citation_schema(list(by_number), self.settings.max_units)
        reply = ""
        async for piece in self.model.stream(messages, Generation(8 + 6 * self.settings.max_units, schema)):
            reply += piece
        try:
            numbers = pydantic_core.from_json(reply, allow_partial=True).get("units") or []
        except (ValueError, AttributeError):
            numbers = []
        chosen = [by_number[str(n)] for n in dict.fromkeys(numbers) if str(n) in by_number]
        return chosen[: self.settings.max_units], reply

    async def _explanation(self, messages: list[ChatMessage], reply: str, chosen: list[Numbered],
                           cited: list[Numbered]) -> tuple[str, str]:  # fmt: skip
        """A short explanation in the model's words, or "" and why not (it states something the cited units lack)."""
        numbers = ", ".join(item.number for item in chosen)
        follow_up = [
            *messages,
            ChatMessage("assistant", reply),
            ChatMessage("user", self._explain.render(numbers=numbers)),
        ]
        text = ""
        try:
            async for piece in self.model.stream(follow_up, Generation(self.settings.explanation_tokens)):
                text += piece
                if sentence_count(text) >= EXPLANATION_SENTENCES:
                    break
        except (ModelBusy, ModelFailed):
            return "", "the model was busy"  # the quotes are already shown; they stand on their own
        explanation = first_sentences(text, EXPLANATION_SENTENCES)
        sources = " ".join(f"{item.citation.lesson_title} {item.citation.heading} {item.unit.text}" for item in cited)
        lacking = unsupported(explanation, sources)
        if not explanation or lacking:
            return "", f"the cited units lack {', '.join(sorted(lacking))}" if lacking else "no whole sentence"
        try:
            odds = await self.model.next_word_probabilities(self.check_messages(explanation, cited), ("yes", "no"))
        except (ModelBusy, ModelFailed):
            return "", "the model was busy"
        if odds.get("yes", 0.0) < self.settings.judge_threshold:
            return "", f"the judge found it says more than the cited units (P(yes) {odds.get('yes', 0.0):.2f})"
        return explanation, ""

    async def _finish(self, answer: Answer, question: str, track: str | None, lesson: str | None, learner: str | None,
                started: float, first: float | None, truncated: bool = False) -> Answer:  # fmt: skip
        now = self.clock()
        answer.timings = {"ttft_s": (first or now) - started, "total_s": now - started}
        answer.truncated_question = truncated
        if self.log is not None:  # a database write: off the event loop, as it may wait for a lock
            await asyncio.to_thread(
                self.log.record,
                QuestionRecord(
                    question=question,
                    track=track,
                    lesson=lesson,
                    refused=answer.refused,
                    reason=answer.reason,
                    sections=tuple(f"{c.track}/{c.lesson}#{c.section}" for c in logged_sections(answer)),
                    learner=learner,
                    timings=dict(answer.timings),
                ),
            )
        return answer


def logged_sections(answer: Answer) -> tuple[Citation, ...]:
    """The sections a question's log entry names: those an answer cites, or for a refusal the closest one (what
    moderators' content-gap reports group refused questions by)."""
    if answer.citations:
        return tuple(answer.citations)
    return (answer.closest,) if answer.refused and answer.closest is not None else ()


def lesson_lookup(tracks: Mapping[str, Track]):  # noqa: ANN201 - a Callable[[str, str], Lesson | None]
    """A function that finds a lesson by track and lesson id."""

    def find(track: str, lesson: str) -> Lesson | None:
        found = tracks.get(track)
        return found.lesson(lesson) if found else None

    return find


def track_words(tracks: Mapping[str, Track]) -> Callable[[str | Sequence[str] | None], Vocabulary | Vocabularies]:
    """The words of a track, or of several (the tracks offered where a question is asked; None: every track),
    to check what the lessons mention; each track's are indexed once, on first use."""
    cache: dict[str, Vocabulary] = {}

    def lesson_text(lesson: Lesson) -> str:
        parts = [lesson.title, *(f"{s.heading}\n{s.text}" for s in lesson.sections)]
        return "\n".join(parts + [f"{term}: {meaning}" for term, meaning in lesson.key_terms])

    def of(track: Track) -> Vocabulary:
        if track.id not in cache:
            cache[track.id] = Vocabulary("\n".join(lesson_text(lesson) for lesson in track.lessons))
        return cache[track.id]

    def words(scope: str | Sequence[str] | None) -> Vocabulary | Vocabularies:
        named = [] if scope is None else [scope] if isinstance(scope, str) else list(scope)
        chosen = [tracks[t] for t in named if t in tracks] or list(tracks.values())
        return of(chosen[0]) if len(chosen) == 1 else Vocabularies(of(track) for track in chosen)

    return words
