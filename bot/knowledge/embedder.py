"""Chroma's MiniLM embedding function, pointed at the offline model files under the models folder.

Chroma's ``ONNXMiniLM_L6_V2`` would download its model on first use and pads every text to 256 tokens.
This subclass reads the files ``tutorbot models pull`` installed, refuses to download (a clear error
instead), and pads each batch only to its longest text: the attention mask hides padding, so the vectors
are the same, and a short query costs a fraction of a full window.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from chromadb.utils.embedding_functions.onnx_mini_lm_l6_v2 import ONNXMiniLM_L6_V2

MAX_TOKENS = 256
REQUIRED_FILES = ("model.onnx", "tokenizer.json")


class EmbedderMissing(RuntimeError):
    """The embedding model files are not installed."""


class OfflineMiniLM(ONNXMiniLM_L6_V2):
    """all-MiniLM-L6-v2 from local files; batches padded to their longest member."""

    def __init__(self, model_dir: Path, batch_size: int = 8) -> None:
        super().__init__(preferred_providers=["CPUExecutionProvider"])
        # Chroma's class reads its files from DOWNLOAD_PATH / "onnx".
        self.model_dir = Path(model_dir)
        self.DOWNLOAD_PATH = self.model_dir.parent
        self.EXTRACTED_FOLDER_NAME = self.model_dir.name
        self.batch_size = batch_size

    def _download_model_if_not_exists(self) -> None:
        missing = [name for name in REQUIRED_FILES if not (self.model_dir / name).is_file()]
        if missing:
            raise EmbedderMissing(
                f"the embedding model is not installed ({', '.join(missing)} missing in {self.model_dir}); "
                "run 'tutorbot models pull' first"
            )

    @cached_property
    def tokenizer(self) -> Any:
        self._download_model_if_not_exists()
        tokenizer = self.Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        return tokenizer

    @cached_property
    def counter(self) -> Any:
        """A tokenizer without padding or truncation, for counting tokens."""
        self._download_model_if_not_exists()
        counter = self.Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        counter.no_padding()  # the shipped tokenizer.json pads to 128 and truncates
        counter.no_truncation()
        return counter

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text``, including its two special tokens."""
        return len(self.counter.encode(text).ids)

    def count_tokens_bare(self, text: str) -> int:
        """Tokens of ``text`` without special tokens (these add up across whitespace-separated pieces)."""
        return len(self.counter.encode(text, add_special_tokens=False).ids)

    def _forward(self, documents: list[str], batch_size: int | None = None) -> np.ndarray:
        """Embed in batches, each padded only to its longest text (Chroma's own pads all to 256)."""
        size = batch_size or self.batch_size
        vectors = []
        for start in range(0, len(documents), size):
            encoded = self.tokenizer.encode_batch(documents[start : start + size])
            too_long = [len(e.overflowing) for e in encoded if e.overflowing]
            if too_long:
                # Truncation would cut text silently; chunking must never let such text get here.
                raise ValueError(f"a text exceeds the embedder's {MAX_TOKENS}-token window")
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            hidden = self.model.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            weights = mask[:, :, None].astype(hidden.dtype)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            vectors.append(self._normalize(pooled).astype(np.float32))
        return np.concatenate(vectors) if vectors else np.zeros((0, 384), dtype=np.float32)

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed texts as plain lists of floats (unit length, for cosine distance)."""
        self._download_model_if_not_exists()
        return [vector.tolist() for vector in self._forward(list(texts))]
