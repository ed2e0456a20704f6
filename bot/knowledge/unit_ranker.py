"""Rank a prompt's lesson units against a question: embedding similarity plus a weighted BM25 score.

The model reads every unit of its prompt, but may cite only the best-ranked few (the citation grammar's
``enum``): a 1.5B model picking among thirty numbered units drifts to the first ones or the neighbours of the
answer; picking among the eight likeliest, it does not have to. Unit vectors are computed once per unit id
(units are short, so a page embeds in a fraction of a second) and kept in a bounded cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import bm25s
import numpy as np
import Stemmer

from bot.core.lessons import Unit
from bot.knowledge.embedder import OfflineMiniLM
from bot.knowledge.index import KEYWORD_WEIGHT

CACHED_UNITS = 50_000  # ~75 MB of vectors at most


class UnitRanker:
    """``UnitRanker`` port: scores units by how well they match a question (safe from any thread)."""

    def __init__(self, embedder: OfflineMiniLM, keyword_weight: float = KEYWORD_WEIGHT, capacity: int = CACHED_UNITS):
        self.embedder = embedder
        self.keyword_weight = keyword_weight
        self.capacity = capacity
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._stemmer = Stemmer.Stemmer("english")

    def _vectors_of(self, units: Sequence[Unit]) -> np.ndarray:
        keys = [(unit.id, unit.text) for unit in units]
        with self._lock:
            missing = list(dict.fromkeys(key for key in keys if key not in self._vectors))
        if missing:
            fresh = np.asarray(self.embedder.embed([text for _id, text in missing]), dtype=np.float32)
            fresh /= np.linalg.norm(fresh, axis=1, keepdims=True) + 1e-12
            with self._lock:
                for key, vector in zip(missing, fresh, strict=True):
                    self._vectors[key] = vector
                while len(self._vectors) > self.capacity:
                    self._vectors.popitem(last=False)
        with self._lock:
            for key in keys:
                if key in self._vectors:
                    self._vectors.move_to_end(key)
            return np.stack([self._vectors.get(key, np.zeros(0, dtype=np.float32)) for key in keys])

    def scores(self, question: str, units: Sequence[Unit]) -> list[float]:
        """One score per unit, higher for a better match."""
        if not units:
            return []
        vectors = self._vectors_of(units)
        query = np.asarray(self.embedder.embed([question])[0], dtype=np.float32)
        query /= np.linalg.norm(query) + 1e-12
        combined = vectors @ query
        if self.keyword_weight:
            keyword = np.zeros(len(units))
            corpus = bm25s.tokenize([unit.text for unit in units], stopwords="en", stemmer=self._stemmer, show_progress=False)
            asked = bm25s.tokenize([question], stopwords="en", stemmer=self._stemmer, show_progress=False)
            if corpus.vocab and asked.vocab and any(asked.ids):
                keywords = bm25s.BM25()
                keywords.index(corpus, show_progress=False)
                found, found_scores = keywords.retrieve(asked, k=len(units), show_progress=False)
                keyword[found[0]] = found_scores[0]
            if keyword.max() > 0:
                combined = combined + self.keyword_weight * keyword / keyword.max()
        return [float(score) for score in combined]

    def prepare(self, units: Sequence[Unit]) -> None:
        """Embed units ahead of the questions about them (when a lesson is opened)."""
        self._vectors_of(units)
