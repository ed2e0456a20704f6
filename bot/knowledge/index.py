"""The lesson index in Chroma: incremental ingest and hybrid (dense + BM25) search.

One collection (cosine distance) holds every track's chunks with their metadata. Ingest compares chunk ids
(derived from place and content) with what is stored and embeds only new text; moved text only has its
metadata updated; text that is gone is deleted. Search ranks chunks by embedding similarity and by BM25
over the same text, and adds the two scores; sections are ranked by their best entry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import bm25s
import chromadb
import numpy as np
import Stemmer
from chromadb.config import Settings as ChromaSettings

from bot.config import Settings
from bot.core.lessons import VERSION_MARK, Track, served_id
from bot.core.ports import Passage
from bot.knowledge.chroma_http import http_client
from bot.knowledge.chunking import Chunk, chunk_track
from bot.knowledge.embedder import OfflineMiniLM
from bot.models.catalog import embedder_dir

log = logging.getLogger(__name__)
logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG

DENSE_CANDIDATES = 1000


@dataclass(frozen=True)
class IngestReport:
    """What one track's ingest did."""

    track: str
    chunks: int  # everything indexed for the track: text chunks and probes
    probes: int
    embedded: int
    moved: int
    removed: int
    seconds: float


def make_client(settings: Settings) -> Any:
    """The Chroma client the settings ask for: embedded under the data dir, or a Chroma server."""
    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    retrieval = settings.retrieval
    if retrieval.chroma_host:
        return http_client(retrieval.chroma_host, retrieval.chroma_port, retrieval.chroma_timeout, chroma_settings)
    settings.chroma_dir.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(settings.chroma_dir), settings=chroma_settings)


class LessonIndex:
    """Lesson chunks in a Chroma collection, with the embedder that fills and queries it."""

    def __init__(self, client: Any, embedder: OfflineMiniLM, collection: str, chunk_tokens: int,
                 keyword_weight: float, probes: bool):  # fmt: skip
        """An index over ``client``'s collection; the other arguments are ``RetrievalSettings`` fields."""
        self.client = client
        self.embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.keyword_weight = keyword_weight
        self.probes = probes
        self.collection = client.get_or_create_collection(
            name=collection, embedding_function=embedder, metadata={"hnsw:space": "cosine"}
        )
        self._stemmer = Stemmer.Stemmer("english")
        self._bm25: dict[tuple[tuple[str, ...] | None, str | None], tuple[int, Any, list[str], list[Any]]] = {}
        self._search_lock = threading.Lock()  # searches come from worker threads; one at a time is plenty fast
        self._keys: Mapping[str, str] = {}  # served track id -> the index key of its live version (uploaded tracks)

    def use_keys(self, keys: Mapping[str, str]) -> None:
        """Search these index keys for these tracks from now on (an uploaded track's published version).

        A new version is indexed under its own key first; switching the key is what publishes it, so a search
        never sees half a version. Tracks not listed are searched under their own id (the host's tracks).
        """
        self._keys = dict(keys)

    def _key(self, track_id: str) -> str:
        return self._keys.get(track_id, track_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> LessonIndex:
        """Open the index the settings describe."""
        embedder = OfflineMiniLM(embedder_dir(settings.models_dir), settings.retrieval.embed_batch_size)
        retrieval = settings.retrieval
        return cls(make_client(settings), embedder, retrieval.collection, retrieval.chunk_tokens,
                   retrieval.keyword_weight, retrieval.probes)  # fmt: skip

    def damage(self) -> str | None:
        """What is wrong with the stored vectors (None when nothing is): a search must reach every chunk listed.

        Chroma lists chunks from its SQLite file and searches vectors kept in segment folders; a lost or broken
        segment leaves chunks listed that no search can find (or a read of their vectors fails).
        """
        count = self.collection.count()
        if count == 0:
            return None
        sample = self.collection.get(limit=1, include=["embeddings"])
        wanted = min(count, DENSE_CANDIDATES)
        found = self.collection.query(query_embeddings=[sample["embeddings"][0]], n_results=wanted, include=[])
        reached = len(found["ids"][0])
        return None if reached >= wanted else f"a search reaches {reached} of the {wanted} chunks it should"

    def close(self) -> None:
        """Let go of the store (its files can then be moved; a later open starts afresh)."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------ ingest

    def chunks_for(self, track: Track) -> dict[str, Chunk]:
        """The chunks ``track`` splits into, by id."""
        return chunk_track(track, self.chunk_tokens, self.embedder.count_tokens_bare)

    def indexed_tracks(self) -> set[str]:
        """Ids of the tracks that have chunks in the index."""
        stored = self.collection.get(include=["metadatas"])
        return {meta["track"] for meta in stored["metadatas"] or []}

    def ingest(self, track: Track, on_embedded: Callable[[int], None] | None = None,
               on_total: Callable[[int], None] | None = None) -> IngestReport:  # fmt: skip
        """Bring the index in line with ``track``: embed new chunks, update moved ones, delete stale ones."""
        started = time.perf_counter()
        chunks = self.chunks_for(track)
        stored = self.collection.get(where={"track": track.id}, include=["metadatas"])
        stored_meta = dict(zip(stored["ids"], stored["metadatas"] or [], strict=True))
        new_ids = [chunk_id for chunk_id in chunks if chunk_id not in stored_meta]
        moved_ids = [
            chunk_id
            for chunk_id, chunk in chunks.items()
            if chunk_id in stored_meta and stored_meta[chunk_id] != chunk.metadata()
        ]
        stale_ids = [chunk_id for chunk_id in stored_meta if chunk_id not in chunks]
        if on_total:
            on_total(len(new_ids))

        # Embed short texts together: a batch is padded to its longest member.
        new_ids.sort(key=lambda chunk_id: len(chunks[chunk_id].embed_text))
        batch = max(1, self.embedder.batch_size)
        for start in range(0, len(new_ids), batch):
            ids = new_ids[start : start + batch]
            vectors = self.embedder.embed([chunks[i].embed_text for i in ids])
            self.collection.upsert(
                ids=ids,
                embeddings=vectors,
                documents=[chunks[i].text for i in ids],
                metadatas=[chunks[i].metadata() for i in ids],
            )
            if on_embedded:
                on_embedded(len(ids))
        if moved_ids:
            self.collection.update(ids=moved_ids, metadatas=[chunks[i].metadata() for i in moved_ids])
        if stale_ids:
            self.collection.delete(ids=stale_ids)
        if new_ids or moved_ids or stale_ids:
            self._bm25.clear()
        probes = sum(1 for chunk in chunks.values() if chunk.kind == "probe")
        return IngestReport(
            track.id, len(chunks), probes, len(new_ids), len(moved_ids), len(stale_ids), time.perf_counter() - started
        )

    def nearest_lessons(self, per_lesson: int = 3) -> dict[str, list[str]]:
        """For each indexed lesson (``track/lesson``), the ``per_lesson`` lessons whose text is most alike, nearest first.

        A lesson is the mean of its text chunks' embeddings; likeness is the cosine of two such means. Run at
        ingest (it reads every vector), never per turn.
        """
        stored = self.collection.get(where={"kind": "text"}, include=["embeddings", "metadatas"])
        vectors: dict[str, list[Any]] = {}
        for vector, meta in zip(stored["embeddings"], stored["metadatas"] or [], strict=True):
            vectors.setdefault(f"{meta['track']}/{meta['lesson']}", []).append(vector)
        if len(vectors) < 2:
            return {}
        names = sorted(vectors)
        means = np.array([np.mean(vectors[name], axis=0) for name in names], dtype=np.float32)
        means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-9)
        likeness = means @ means.T
        np.fill_diagonal(likeness, -np.inf)
        order = np.argsort(-likeness, axis=1)[:, :per_lesson]
        return {name: [names[j] for j in row] for name, row in zip(names, order, strict=True)}

    def remove_track(self, track_id: str) -> int:
        """Delete every chunk of a track; return how many there were."""
        stored = self.collection.get(where={"track": track_id}, include=[])
        if stored["ids"]:
            self.collection.delete(ids=stored["ids"])
            self._bm25.clear()
        return len(stored["ids"])

    # ------------------------------------------------------------ search

    @staticmethod
    def _where(tracks: tuple[str, ...] | None, lesson: str | None) -> dict[str, Any] | None:
        terms: list[dict[str, Any]] = []
        if tracks is not None:
            terms.append({"track": tracks[0]} if len(tracks) == 1 else {"track": {"$in": list(tracks)}})
        terms += [{"lesson": lesson}] if lesson else []
        if len(terms) > 1:
            return {"$and": terms}
        return terms[0] if terms else None

    def _tokenize(self, texts: list[str]) -> Any:
        return bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, show_progress=False)

    def _keyword_index(self, tracks: tuple[str, ...] | None, lesson: str | None,
                       fresh: bool = False) -> tuple[Any, list[str], list[Any]]:  # fmt: skip
        """A BM25 index over the chunks in scope, rebuilt when the collection's count changes (or ``fresh``)."""
        key = (tracks, lesson)
        count = self.collection.count()
        cached = self._bm25.get(key)
        if cached and cached[0] == count and not fresh:
            return cached[1], cached[2], cached[3]
        stored = self.collection.get(where=self._where(tracks, lesson), include=["documents", "metadatas"])
        ids, metas = stored["ids"], stored["metadatas"] or []
        docs = stored["documents"] or []
        retriever = None
        if ids:
            corpus = [f"{m['lesson_title']} {m['heading']}\n{d}" for d, m in zip(docs, metas, strict=True)]
            retriever = bm25s.BM25()
            retriever.index(self._tokenize(corpus), show_progress=False)
        entries = list(zip(docs, metas, strict=True))
        self._bm25[key] = (count, retriever, ids, entries)
        return retriever, ids, entries

    def search(self, question: str, k: int = 4, track: str | Sequence[str] | None = None, lesson: str | None = None,
               keyword_weight: float | None = None, probes: bool | None = None) -> list[Passage]:  # fmt: skip
        """The best chunk of each of the ``k`` sections that best answer ``question`` (safe from any thread).

        ``track`` is one track id, several (the tracks offered where the learner asks), or None for every track
        in the index; passages name the served track id.
        """
        if track is None:
            keys = None
        else:
            keys = tuple(sorted({self._key(t) for t in ([track] if isinstance(track, str) else track)}))
            if not keys:
                return []
        with self._search_lock:
            found = self._search(question, k, keys, lesson, keyword_weight, probes)
        return [replace(p, track=served_id(p.track)) if VERSION_MARK in p.track else p for p in found]

    def _search(self, question: str, k: int, track: tuple[str, ...] | None, lesson: str | None,
                keyword_weight: float | None, probes: bool | None) -> list[Passage]:  # fmt: skip
        """The best chunk of each of the ``k`` sections that best answer ``question``, within a track or lesson.

        Every entry in scope gets its cosine similarity to the question plus ``keyword_weight`` times its BM25
        score relative to the best BM25 score (0 turns BM25 off). A section scores as its best entry, so
        results never crowd one section; probes (quiz questions, key terms) rank their section but are never
        shown: each section is represented by its best text chunk.
        """
        keyword_weight = self.keyword_weight if keyword_weight is None else keyword_weight
        probes = self.probes if probes is None else probes
        query_vector: Any = None
        for fresh in (False, True):
            retriever, ids, entries = self._keyword_index(track, lesson, fresh)
            if not ids:
                return []
            if query_vector is None:
                query_vector = self.embedder.embed([question])[0]
            wanted = min(len(ids), DENSE_CANDIDATES)
            dense = self.collection.query(
                query_embeddings=[query_vector],
                n_results=wanted,
                where=self._where(track, lesson),
                include=["distances"],
            )
            position = {chunk_id: n for n, chunk_id in enumerate(ids)}
            # Another process on the same Chroma server may have replaced chunks without changing the count the
            # cache checks: a chunk the cache does not know, or fewer than it holds, means it is out of date.
            if len(dense["ids"][0]) == wanted and all(chunk_id in position for chunk_id in dense["ids"][0]):
                break
        else:
            log.error("the search index lists %d chunks for %s but a search reaches %d of them (or others); "
                      "'tutorbot ingest' rebuilds it", len(ids), track or "every track", len(dense["ids"][0]))  # fmt: skip
        similarity = np.full(len(ids), -1.0)
        for chunk_id, distance in zip(dense["ids"][0], dense["distances"][0], strict=True):
            if chunk_id in position:  # after the error above: rank what both know
                similarity[position[chunk_id]] = 1.0 - distance
        keyword = np.zeros(len(ids))
        if keyword_weight and retriever is not None:
            tokens = self._tokenize([question])
            if tokens.vocab and any(tokens.ids):
                results, scores = retriever.retrieve(tokens, k=len(ids), show_progress=False)
                keyword[results[0]] = scores[0]
        if keyword.max() > 0:
            keyword /= keyword.max()
        combined = similarity + keyword_weight * keyword

        best_entry: dict[tuple[str, str, str], float] = {}
        best_text: dict[tuple[str, str, str], int] = {}
        for n in np.argsort(-combined):
            _document, meta = entries[n]
            kind = meta.get("kind", "text")
            if kind != "text" and not probes:
                continue
            key = (meta["track"], meta["lesson"], meta["section"])
            best_entry.setdefault(key, float(combined[n]))
            if kind == "text":
                best_text.setdefault(key, int(n))
        hits: list[Passage] = []
        ranked = [key for key in sorted(best_entry, key=best_entry.__getitem__, reverse=True) if key in best_text]
        for key in ranked[:k]:
            n = best_text[key]
            document, meta = entries[n]
            hits.append(
                Passage(
                    track=meta["track"],
                    lesson=meta["lesson"],
                    section=meta["section"],
                    heading=meta["heading"],
                    lesson_title=meta["lesson_title"],
                    text=document,
                    score=best_entry[key],
                    similarity=float(similarity[n]),
                )
            )
        return hits
