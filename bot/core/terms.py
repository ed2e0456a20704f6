"""Key terms on demand: "what is soft targets?" or ``term soft targets`` answered from a lesson's key terms.

No model call: a learner's phrase is matched against the key terms of the tracks offered to them, tolerant of
case, of a leading article, of plurals ("soft target" finds "Soft targets") and of a typo or two (Damerau-
Levenshtein distance via rapidfuzz: none for terms of up to 3 letters, 1 up to 7, 2 beyond). When a term is a
key term of several lessons, the learner's own lesson wins, then their track, then the order of the tracks.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein

from bot.core.lessons import Lesson, Section, Track

# "what is X", "what's X", "what are X", "define X", "meaning of X", "what does X mean / stand for".
_ASKED_FOR = re.compile(
    r"^(?:what\s+(?:is|are)|what['’]?s|define|definition\s+of|meaning\s+of|what\s+does|what\s+do)\s+(?P<term>.+?)"
    r"(?:\s+(?:mean|means|stand\s+for))?\s*[?.!]*$",
    re.IGNORECASE,
)
_ARTICLE = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
_PARENTHESIS = re.compile(r"\s*\([^)]*\)")
_NOT_WORD = re.compile(r"[^\w\s-]+")
MOST_TYPOS = 2
MAX_TERM_WORDS = 6
MAX_PHRASE_CHARS = 120  # longer text is a question (and never meets the pattern's backtracking)  # "what is the difference between X and Y" is a question for the answerer, not a term


@dataclass(frozen=True)
class TermMatch:
    """A key term found for a learner's phrase: where it is defined, and the section that explains it (if any)."""

    track: Track
    lesson: Lesson
    term: str
    meaning: str
    section: Section | None  # the first section whose text uses the term; None: only the key terms list has it
    also_in: tuple[Lesson, ...] = ()  # other lessons that list the same term
    typos: int = 0  # edits between what the learner typed and the term (0: they named it exactly)


def asked_term(text: str) -> str | None:
    """The term a phrase asks about ("what are soft targets?" -> "soft targets"); None for other phrases."""
    if len(text) > MAX_PHRASE_CHARS:
        return None
    found = _ASKED_FOR.match(" ".join(text.split()))
    return found.group("term") if found else None


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalise(phrase: str) -> str:
    """A phrase as terms are compared: casefolded, without an article, punctuation or a trailing plural."""
    phrase = unicodedata.normalize("NFKC", phrase).casefold().strip()
    phrase = _NOT_WORD.sub(" ", _PARENTHESIS.sub("", phrase))
    words = _ARTICLE.sub("", " ".join(phrase.split())).split()
    return " ".join(words[:-1] + [_singular(words[-1])]) if words else ""


def allowed_typos(term: str) -> int:
    """How many edits a phrase may be from a normalised term and still match it (at most ``MOST_TYPOS``)."""
    letters = len(term.replace(" ", ""))
    return 0 if letters <= 3 else 1 if letters <= 7 else MOST_TYPOS


def _forms(term: str) -> set[str]:
    """The ways a learner may name a term: itself, and for "Byte-pair encoding (BPE)" also "BPE"."""
    forms = {normalise(term)}
    inside = re.findall(r"\(([^)]+)\)", term)
    forms.update(normalise(part) for part in inside)
    return {form for form in forms if form}


def _explaining_section(lesson: Lesson, term: str) -> Section | None:
    """The first section whose text uses ``term`` (or its singular)."""
    base = normalise(term)
    if not base:
        return None
    parts = [re.escape(word) for word in base.replace("-", " ").split()]
    if parts[-1].endswith("y"):
        parts[-1] = parts[-1][:-1] + "(?:y|ies)"  # "probability" finds "probabilities"
    words = r"[\s-]+".join(parts)
    pattern = re.compile(rf"\b{words}", re.IGNORECASE)  # a prefix: "soft target" finds "soft targets"
    return next((section for section in lesson.sections if pattern.search(section.text)), None)


class KeyTerms:
    """Every key term of the tracks, ready to match a learner's phrase."""

    def __init__(self, tracks: Iterable[Track]) -> None:
        self._entries = [(form, track, lesson, term, meaning)
                         for track in tracks
                         for lesson in track.lessons
                         for term, meaning in lesson.key_terms
                         for form in _forms(term)]  # fmt: skip
        self._forms = [entry[0] for entry in self._entries]

    def find(self, phrase: str, offered: Iterable[str], track: str | None = None, lesson: str | None = None,
             typos: bool = True) -> TermMatch | None:  # fmt: skip
        """The key term ``phrase`` names among the ``offered`` track ids, preferring the learner's lesson and track.

        ``typos=False`` takes only the term itself (case, article and plural aside): for text that merely *is* a
        term, where "police" must not find "Policy"; asked for ("what is …", ``term …``), a typo or two is fine.
        """
        if len(phrase) > MAX_PHRASE_CHARS:
            return None
        wanted = normalise(phrase)
        if not wanted or len(wanted.split()) > MAX_TERM_WORDS:
            return None
        allowed = set(offered)
        ranked = []
        # rapidfuzz compares the phrase with every term in C; each term's own typo allowance is checked after.
        close = process.extract(wanted, self._forms, scorer=DamerauLevenshtein.distance,
                                score_cutoff=MOST_TYPOS if typos else 0, limit=None)  # fmt: skip
        for form, distance, order in close:
            _form, found_track, found_lesson, term, meaning = self._entries[order]
            if found_track.id not in allowed or distance > allowed_typos(form):
                continue
            here = (found_track.id == track and found_lesson.id == lesson, found_track.id == track)
            ranked.append(((distance, not here[0], not here[1], order), found_track, found_lesson, term, meaning))
        if not ranked:
            return None
        ranked.sort(key=lambda entry: entry[0])
        _key, best_track, best_lesson, term, meaning = ranked[0]
        others = {(t.id, les.id): les for _k, t, les, name, _m in ranked[1:]
                  if normalise(name) == normalise(term) and les is not best_lesson}  # fmt: skip
        section = _explaining_section(best_lesson, term)
        return TermMatch(best_track, best_lesson, term, meaning, section, tuple(others.values()), ranked[0][0][0])
