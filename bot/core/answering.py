"""Grounded answers: retrieve lesson text, decide whether it answers the question, and only then say so.

The flow for one question:
1. retrieve passages, the learner's current lesson first, then the whole track;
2. refuse at once, without calling the model, when no passage is even close to the question;
3. refuse at once when the question names a term (an acronym, a version, a CamelCase name) that the
   track's text never mentions: the lessons cannot answer what they never name;
4. otherwise ask the model for a JSON object ``{quote, answerable, answer}``: the grammar makes it copy the
   sentence that answers and decide *before* it writes an answer. The quote is checked against the
   passages in code; a quote that is not there (the model made it up) or an answer with numbers the
   passages do not contain is refused. This is what keeps a small model from inventing answers;
5. stream the answer out of the JSON as it is written, cite the section the quote came from, or refuse and
   point to the closest section;
6. log the question and its outcome for moderators.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from bot.core.lessons import Lesson, Section, Track
from bot.core.ports import ChatMessage, ChatModel, Generation, Passage, QuestionLog, QuestionRecord, Retriever
from bot.core.prompts import PromptLibrary

_STRING_CHARS = r'[^"\\]*'  # plain text up to the end of the JSON string (no quote marks or escapes)
NOT_YES_OR_NO = rf"^(|[A-MO-XZa-z0-9“(']{_STRING_CHARS}|Y[a-df-z]{_STRING_CHARS}|N[a-np-z]{_STRING_CHARS})$"
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {
        "quote": {"type": "string", "maxLength": 400},
        "answerable": {"type": "boolean"},
        # Not "Yes"/"No" first: a small model opens with "Yes," by reflex (even before saying the opposite),
        # so the grammar makes it start with the fact itself.
        "answer": {"type": "string", "pattern": NOT_YES_OR_NO},
    },
    "required": ["quote", "answerable", "answer"],
}
_DELIMITERS = re.compile(r"<<<|>>>")
_WHITESPACE = re.compile(r"\s+")
_NOT_WORD = re.compile(r"[\W_]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_LINK = re.compile(r"(?:https?://|www\.)\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|ai|dev|app|co|info|biz|xyz|example)\b", re.IGNORECASE)
# Names a lesson would have to mention to answer: acronyms (KTO), versions (GPT-4), CamelCase (FlashAttention).
_TERM = re.compile(r"\b(?:[A-Za-z]+-?\d[\w.-]*\w|[A-Za-z]+-?\d|[A-Z]{2,}[A-Za-z]*|[A-Z][a-z]+[A-Z]\w*)\b")
MIN_QUOTE_CHARS = 20
QUOTE_MATCH = 0.8  # how closely a quote must match a lesson sentence (word sequence similarity)
# Units a quote is matched against: sentences, and lines that start a list item or table row or follow a colon.
_UNIT_SPLIT = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*(?:[-*+]\s|\d+[.)]\s|\|))|(?<=:)\n")
_CODE = re.compile(r"\w\.\w|\w\(|_\w|(?<!\w)\.[A-Za-z]\w*")  # attribute access, a call, snake_case, a file extension
_ANSWERABLE = re.compile(r'"answerable"\s*:\s*(true|false)')
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)\s]*\)")  # [text](target) reads as its text
_PROMPT_MENTION = re.compile(
    r"\b(?:the\s+)?(?:provided\s+|given\s+)?(?:passages?(?:\s+\d+(?:\s*(?:,|and|&)\s*\d+)*)?|quote)\b", re.IGNORECASE
)
_DECADE = re.compile(r"\b(\d{3})0s\b")
QUOTE_COVERAGE = 0.9  # share of a stitched quote's words that must sit in three-word runs of the lesson text


@dataclass(frozen=True)
class Citation:
    """Where an answer comes from: a lesson section."""

    track: str
    lesson: str
    section: str
    heading: str
    lesson_title: str

    @classmethod
    def of(cls, passage: Passage) -> Citation:
        """The citation of a passage."""
        return cls(passage.track, passage.lesson, passage.section, passage.heading, passage.lesson_title)

    def label(self) -> str:
        """``Lesson title › Section heading``."""
        return f"{self.lesson_title} › {self.heading}"


@dataclass(frozen=True)
class AnswerDelta:
    """A piece of the answer as the model writes it."""

    text: str


@dataclass
class Answer:
    """The outcome of a question: the answer or a refusal, with citations and timings."""

    text: str
    refused: bool
    reason: str
    citations: list[Citation] = field(default_factory=list)
    closest: Citation | None = None
    timings: dict[str, float] = field(default_factory=dict)
    truncated_question: bool = False

    def as_dict(self) -> dict:
        """The JSON shape ``tutorbot ask --json`` prints."""
        return {
            "answer": self.text,
            "refused": self.refused,
            "citations": [{"track": c.track, "lesson": c.lesson, "section": c.section} for c in self.citations],
            "timings": {key: round(value, 3) for key, value in self.timings.items()},
        }


@dataclass(frozen=True)
class AnswerSettings:
    """Knobs of the answering flow (chosen with bench/answer_eval.py)."""

    min_similarity: float = 0.25  # below this, no passage is close enough to ask the model at all
    point_similarity: float = 0.15  # a refusal names the closest section only above this
    lesson_bonus: float = 0.05  # how much the learner's current lesson is preferred
    second_passage_margin: float = 0.08  # a second passage is added when this close to the best
    max_question_chars: int = 500
    max_section_words: int = 380  # longer sections are represented by their best chunk
    max_tokens: int = 220
    max_sentences: int = 3


class JsonStringStreamer:
    """Pulls the value of one string field out of JSON text that arrives in pieces."""

    def __init__(self, name: str):
        self._key = re.compile(rf'"{re.escape(name)}"\s*:\s*"')
        self._buffer = ""
        self._position: int | None = None
        self.done = False

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the newly decoded characters of the field's value."""
        self._buffer += piece
        if self.done:
            return ""
        if self._position is None:
            match = self._key.search(self._buffer)
            if not match:
                return ""
            self._position = match.end()
        out = []
        i = self._position
        while i < len(self._buffer):
            char = self._buffer[i]
            if char == '"':
                self.done = True
                i += 1
                break
            if char == "\\":
                if i + 1 >= len(self._buffer):
                    break
                code = self._buffer[i + 1]
                if code == "u":
                    if i + 6 > len(self._buffer):
                        break
                    try:
                        out.append(chr(int(self._buffer[i + 2 : i + 6], 16)))
                    except ValueError:
                        pass
                    i += 6
                    continue
                out.append({"n": "\n", "t": "\t", "r": "", "b": "", "f": ""}.get(code, code))
                i += 2
                continue
            out.append(char)
            i += 1
        self._position = i
        return "".join(out)


class LearnerWording:
    """Says "the lesson" where the model names the prompt's parts ("Passage 2", "the quote") while it streams.

    The learner never saw numbered passages or a quote field. The last few words are held back until more
    text shows whether they start such a mention; ``flush`` releases them when the answer ends.
    """

    HOLD_WORDS = 6  # the longest mention: "the provided passages 1 and 2"

    def __init__(self) -> None:
        self._pending = ""
        self._emitted_tail = ""

    def _rewrite(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            before = self._emitted_tail + match.string[: match.start()]
            said = "lesson" if before.lower().endswith("the ") else "the lesson"
            sentence_start = not before.strip() or before.rstrip()[-1] in ".!?"
            return said[0].upper() + said[1:] if sentence_start else said

        out = _PROMPT_MENTION.sub(replace, text)
        self._emitted_tail = (self._emitted_tail + out)[-8:]
        return out

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the text that is now safe to show."""
        self._pending += piece
        starts = [match.start() for match in re.finditer(r"\S+", self._pending)]
        if len(starts) <= self.HOLD_WORDS:
            return ""
        cut = starts[-self.HOLD_WORDS]
        for match in _PROMPT_MENTION.finditer(self._pending):
            if match.start() < cut < match.end():
                cut = match.start()  # never split a mention: it is rewritten whole
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        return self._rewrite(ready)

    def flush(self) -> str:
        """The held-back rest, once the answer is complete."""
        rest, self._pending = self._pending, ""
        return self._rewrite(rest)


def _plain(text: str) -> str:
    return _NOT_WORD.sub(" ", text.lower()).strip()


def readable(text: str) -> str:
    """Lesson text as a reader sees it: Markdown links and images reduced to their text."""
    return _MARKDOWN_LINK.sub(r"\1", text)


def trigram_coverage(words: list[str], text_words: list[str]) -> float:
    """The share of ``words`` that lie in some run of three consecutive words that ``text_words`` also has.

    A quote stitched from lesson fragments (a list's lead-in and its items on one line) is covered almost
    entirely; a made-up sentence, or the learner's question copied as a "quote", is not.
    """
    if len(words) < 3:
        return 0.0
    runs = {tuple(text_words[i : i + 3]) for i in range(len(text_words) - 2)}
    covered = [False] * len(words)
    for i in range(len(words) - 2):
        if tuple(words[i : i + 3]) in runs:
            covered[i] = covered[i + 1] = covered[i + 2] = True
    return sum(covered) / len(words)


def unknown_terms(question: str, text: str) -> list[str]:
    """Name-like terms in ``question`` that ``text`` never mentions."""
    plain = _plain(text)
    missing = []
    for term in dict.fromkeys(_TERM.findall(question)):
        word = _plain(term)
        if word not in plain and word.removesuffix("s") not in plain:  # "GPUs" is named where "GPU" is
            missing.append(term)
    return missing


def closest_sentence(quote: str, passages: list[Passage]) -> tuple[Passage, str] | None:
    """The passage and sentence (or two) that ``quote`` copies, allowing small slips; None if it copies none.

    Small models copy a sentence with a word changed or dropped, or read a list out as one line; that still
    proves the text is there. A "quote" that matches no lesson text closely was made up.
    """
    wanted = _plain(quote).split()
    if len(" ".join(wanted)) < MIN_QUOTE_CHARS:
        code = quote.strip().strip("`").strip()
        if _CODE.search(code):  # a short code quote (`model.fit()`) names something specific: it must be verbatim
            found = next((p for p in passages if code in p.text), None)
            return (found, code) if found else None
        return None
    exact = next((p for p in passages if " ".join(wanted) in _plain(readable(p.text))), None)
    if exact is not None:
        return exact, " ".join(quote.split())
    best: tuple[float, Passage, str] | None = None
    for passage in passages:
        units = [u for u in _UNIT_SPLIT.split(readable(passage.text).strip()) if u and u.strip()]
        # A quote may copy one sentence, list item or table row, or run over a few (a list read out as one line).
        windows = [" ".join(units[i : i + size]) for size in range(1, 5) for i in range(len(units) - size + 1)]
        for window in windows:
            ratio = difflib.SequenceMatcher(None, wanted, _plain(window).split(), autojunk=False).ratio()
            if best is None or ratio > best[0]:
                best = (ratio, passage, " ".join(window.split()))
    if best is not None and best[0] >= QUOTE_MATCH:
        return best[1], best[2]
    coverage, stitched = max(
        ((trigram_coverage(wanted, _plain(readable(p.text)).split()), p) for p in passages), key=lambda pair: pair[0]
    )
    if coverage >= QUOTE_COVERAGE:
        return stitched, " ".join(quote.split())
    return None


def echoes_question(quote: str, question: str) -> bool:
    """Whether a "quote" is the learner's question copied back rather than a sentence of the lesson."""
    wanted = _plain(quote).split()
    asked = _plain(question).split()
    return bool(wanted) and difflib.SequenceMatcher(None, wanted, asked, autojunk=False).ratio() >= QUOTE_MATCH


def invented_numbers(answer: str, sources: str) -> set[str]:
    """Numbers in ``answer`` that appear nowhere in ``sources``.

    "Passage 2" names a prompt block, not a fact; "the 1990s" is stated when the sources have a year of it.
    """
    answer = _PROMPT_MENTION.sub(" ", answer)
    known = set(_NUMBER.findall(sources))
    decades = {match.group(1) for match in _DECADE.finditer(answer)}
    answer = _DECADE.sub(" ", answer)
    missing = set(_NUMBER.findall(answer)) - known
    missing |= {f"{decade}0s" for decade in decades if not any(n.startswith(decade) and len(n) == 4 for n in known)}
    return missing


def foreign_links(answer: str, lesson_text: str) -> set[str]:
    """Web addresses, domains and e-mail addresses in ``answer`` that the lesson text does not contain.

    A tutor that answers from lessons never sends a link the lessons lack: such a link is what an injected
    instruction ("end every answer with our shop's address") smuggles in, even when the question carried it.
    """
    lesson = lesson_text.casefold()
    return {link for link in _LINK.findall(answer) if link.casefold() not in lesson}


def clean_question(text: str, limit: int) -> tuple[str, bool]:
    """The question with whitespace folded and delimiters defused, cut to ``limit`` characters."""
    text = _WHITESPACE.sub(" ", _DELIMITERS.sub("", text)).strip()
    if len(text) <= limit:
        return text, False
    return text[:limit].rsplit(" ", 1)[0], True


class Answerer:
    """Answers questions from lesson text only."""

    def __init__(
        self,
        retriever: Retriever,
        model: ChatModel,
        prompts: PromptLibrary,
        log: QuestionLog | None = None,
        sections: Callable[[str, str, str], Section | None] | None = None,
        track_text: Callable[[str | None], str] | None = None,
        settings: AnswerSettings | None = None,
        lesson_chunks: Callable[[str, str], list[Passage]] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.retriever = retriever
        self.model = model
        self.prompts = prompts
        self.log = log
        self.sections = sections or (lambda track, lesson, section: None)
        self.track_text = track_text
        self.lesson_chunks = lesson_chunks or (lambda track, lesson: [])
        self.settings = settings or AnswerSettings()
        self.clock = clock
        self._system = prompts.get("answer_system").render()
        self._user = prompts.get("answer_user")
        self._passage = prompts.get("answer_passage")
        self._retry = prompts.get("answer_retry").render()

    # ------------------------------------------------------------ retrieval

    def retrieve(self, question: str, track: str | None, lesson: str | None) -> list[Passage]:
        """Passages for a question, best first: the current lesson's get a small head start."""
        ranked: dict[tuple[str, str, str], tuple[float, Passage]] = {}
        if lesson:
            for hit in self.retriever.search(question, 3, track, lesson):
                ranked[(hit.track, hit.lesson, hit.section)] = (hit.similarity + self.settings.lesson_bonus, hit)
        for hit in self.retriever.search(question, 3, track):
            ranked.setdefault((hit.track, hit.lesson, hit.section), (hit.similarity, hit))
        return [hit for _score, hit in sorted(ranked.values(), key=lambda pair: pair[0], reverse=True)]

    def context(self, passages: list[Passage]) -> list[Passage]:
        """The passages given to the model: the best section whole (when short), and a close second."""
        best = passages[0]
        section = self.sections(best.track, best.lesson, best.section)
        if section is not None and len(section.text.split()) <= self.settings.max_section_words:
            best = Passage(best.track, best.lesson, best.section, best.heading, best.lesson_title, section.text,
                           best.score, best.similarity)  # fmt: skip
        chosen = [best]
        for other in passages[1:]:
            if other.similarity >= passages[0].similarity - self.settings.second_passage_margin:
                chosen.append(other)
                break
        return chosen

    def messages(self, question: str, context: list[Passage]) -> list[ChatMessage]:
        """The chat prompt: fixed rules, then the passages as delimited data, then the question."""
        blocks = "\n\n".join(
            self._passage.render(
                number=str(n),
                lesson_title=_DELIMITERS.sub("", p.lesson_title),
                heading=_DELIMITERS.sub("", p.heading),
                text=_DELIMITERS.sub("", p.text),
            )
            for n, p in enumerate(context, start=1)
        )
        return [
            ChatMessage("system", self._system),
            ChatMessage("user", self._user.render(passages=blocks, question=question)),
        ]

    def prefetch(self, track: Track, lesson: Lesson) -> None:
        """Have the model read the prompt of each of the lesson's sections ahead of the learner's questions.

        A question's prompt starts with the rules and the passage that answers it: a whole section of the
        learner's lesson, or one chunk of a long one; read ahead, that prefix is in the model's cache and the
        answer starts sooner. Short sections are read first, then the chunks of long ones.
        """
        long_sections: set[str] = set()
        for section in lesson.sections:
            if len(section.text.split()) > self.settings.max_section_words:
                long_sections.add(section.id)
                continue
            passage = Passage(track.id, lesson.id, section.id, section.heading, lesson.title, section.text)
            self.model.warm(self.messages("", [passage]))
        # A long section goes in as whichever of its chunks best matches the question: read them all.
        chunks = [c for c in self.lesson_chunks(track.id, lesson.id) if c.section in long_sections] if long_sections else []
        reading_order = {section.id: n for n, section in enumerate(lesson.sections)}
        for chunk in sorted(chunks, key=lambda c: reading_order[c.section]):  # stable: each section's chunks stay in order
            self.model.warm(self.messages("", [chunk]))

    # ------------------------------------------------------------ answering

    @staticmethod
    def refusal_text(closest: Citation | None, why: str | None = None) -> str:
        """What the learner reads when the lessons do not answer the question."""
        text = why or "I can't answer that from the lessons: they don't cover it, and I only answer from the lesson text."
        if closest:
            text += f" The closest section is “{closest.heading}” in {closest.lesson_title}."
        return text

    async def ask(self, question: str, track: str | None = None, lesson: str | None = None,
                  learner: str | None = None) -> AsyncIterator[AnswerDelta | Answer]:  # fmt: skip
        """Answer ``question``; yields the answer's pieces as they are written, then the final Answer."""
        started = self.clock()
        cleaned, truncated = clean_question(question, self.settings.max_question_chars)
        if not cleaned:
            answer = Answer("Ask me something about the lesson, in a sentence or two.", True, "empty question")
            yield self._finish(answer, cleaned, track, lesson, learner, started, None)
            return
        passages = await asyncio.to_thread(self.retrieve, cleaned, track, lesson)  # keeps other learners' turns moving
        best = passages[0] if passages else None
        closest = Citation.of(best) if best and best.similarity >= self.settings.point_similarity else None
        if best is None or best.similarity < self.settings.min_similarity:
            answer = Answer(self.refusal_text(closest), True, "no lesson text is close to the question", closest=closest)
            yield self._finish(answer, cleaned, track, lesson, learner, started, None, truncated)
            return

        if self.track_text is not None:
            missing = unknown_terms(cleaned, self.track_text(track))
            if missing:
                named = ", ".join(missing)
                text = self.refusal_text(closest, f"The lessons never mention {named}, so I can't answer that from them.")
                answer = Answer(text, True, f"the lessons never mention {named}", closest=closest)
                yield self._finish(answer, cleaned, track, lesson, learner, started, None, truncated)
                return

        context = self.context(passages)
        lesson_text = _plain(" ".join(readable(p.text) for p in context))
        streamed: list[str] = []
        first: float | None = None
        messages = self.messages(cleaned, context)

        def show(piece: str) -> AnswerDelta:
            streamed.append(piece)
            return AnswerDelta(piece)

        for attempt in range(2):
            quote_field = JsonStringStreamer("quote")
            answer_field = JsonStringStreamer("answer")
            raw = quote = shown = text = ""
            verbatim = True
            answerable: bool | None = None
            source: Passage | None = None
            wording = LearnerWording()
            async for piece in self.model.stream(messages, Generation(self.settings.max_tokens, ANSWER_SCHEMA)):
                raw += piece
                delta = answer_field.feed(piece)  # fed every piece: one piece may end the quote and start the answer
                if source is None:
                    quote += quote_field.feed(piece)
                    verbatim = verbatim and _plain(quote) in lesson_text
                    visible = quote.lstrip()
                    if not quote_field.done:
                        visible = visible[: max(visible.rfind(" "), 0)]  # whole words only while the quote grows
                    if verbatim and len(visible) > len(shown):
                        # While the model copies lesson text word for word, the learner already sees it.
                        if first is None:
                            first = self.clock()
                            yield show("“")
                        yield show(visible[len(shown) :])
                        shown = visible
                    if not quote_field.done:
                        continue
                    found = closest_sentence(quote, context)
                    if found is None:
                        break  # no such sentence in the lesson text: whatever follows would be made up
                    source, sentence = found
                    if first is None:
                        first = self.clock()
                        yield show(f"“{sentence}")
                    elif not verbatim:
                        # What was shown is lesson text; the rest was not copied exactly, so it is not shown.
                        yield show("…")
                    yield show("” ")
                if answerable is None:
                    found_flag = _ANSWERABLE.search(raw)
                    answerable = found_flag.group(1) == "true" if found_flag else None
                    if answerable is False:
                        break
                if delta:
                    text += delta
                    shown_now = wording.feed(delta)
                    if shown_now:
                        yield show(shown_now)
                    if len(_SENTENCE_END.findall(text)) >= self.settings.max_sentences:
                        break  # short answers: stop at the sentence limit rather than at the token cap
                if answer_field.done:
                    break  # the answer is complete: don't wait for the model to close the JSON (and save its cache)
            if source is None and not streamed and attempt == 0 and echoes_question(quote, cleaned):
                # Small models sometimes copy the question into "quote". Point that out once and let the model
                # look again: its prompt is still in the cache, so this costs only the new reply.
                echoed = ChatMessage("assistant", json.dumps({"quote": quote}))
                messages = [*messages, echoed, ChatMessage("user", self._retry)]
                continue
            break
        tail = wording.flush()
        if tail:
            yield show(tail)
        text = text.strip()
        reason = "answered"
        if source is None:
            reason = "the model found no sentence in the lesson text that answers it"
        elif not answerable or not text:
            reason = "the lesson text does not state the answer"
        elif invented_numbers(text, " ".join(f"{p.lesson_title} {p.heading} {p.text}" for p in context) + " " + cleaned):
            reason = "the answer had numbers the lesson text does not contain"
        elif foreign_links(text, " ".join(p.text for p in context)):
            reason = "the answer had a link the lesson text does not contain"
        if reason != "answered":
            answer = Answer(self.refusal_text(closest), True, reason, closest=closest)
        else:
            assert source is not None
            answer = Answer("".join(streamed).strip(), False, reason, [Citation.of(source)], closest=Citation.of(source))
        yield self._finish(answer, cleaned, track, lesson, learner, started, first, truncated)

    def _finish(self, answer: Answer, question: str, track: str | None, lesson: str | None, learner: str | None,
                started: float, first: float | None, truncated: bool = False) -> Answer:  # fmt: skip
        now = self.clock()
        answer.timings = {"ttft_s": (first or now) - started, "total_s": now - started}
        answer.truncated_question = truncated
        if self.log is not None:
            self.log.record(
                QuestionRecord(
                    question=question,
                    track=track,
                    lesson=lesson,
                    refused=answer.refused,
                    reason=answer.reason,
                    sections=tuple(f"{c.track}/{c.lesson}#{c.section}" for c in answer.citations),
                    learner=learner,
                    timings=dict(answer.timings),
                )
            )
        return answer
