"""The real embedder and a real embedded Chroma store: incremental ingest and search."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.app import load_tracks
from bot.cli import app
from bot.config import Settings
from bot.knowledge.index import LessonIndex
from bot.knowledge.ingest import ingest_knowledge
from bot.knowledge.reader import read_track
from tests.helpers import front_matter, question, write_lesson

pytestmark = pytest.mark.integration

BUNDLED = Path(__file__).resolve().parents[2] / "knowledge" / "ai-foundations"


@pytest.fixture
def knowledge(settings: Settings) -> Path:
    """A copy of the bundled track in the test's own knowledge folder."""
    shutil.copytree(BUNDLED, settings.knowledge_dir / "ai-foundations")
    return settings.knowledge_dir / "ai-foundations"


def stored(index: LessonIndex, **where: str) -> dict[str, dict]:
    got = index.collection.get(where=where or None, include=["metadatas"])
    return dict(zip(got["ids"], got["metadatas"], strict=True))


def test_ingest_then_unchanged_reingest_embeds_nothing(settings: Settings, knowledge: Path) -> None:
    index = LessonIndex.from_settings(settings)
    track = read_track(knowledge).track
    assert track is not None
    first = index.ingest(track)
    assert first.embedded == first.chunks > 40
    again = index.ingest(track)
    assert (again.embedded, again.moved, again.removed) == (0, 0, 0)
    assert index.collection.count() == first.chunks


def test_stored_chunks_carry_metadata_and_fit_the_window(settings: Settings, knowledge: Path) -> None:
    index = LessonIndex.from_settings(settings)
    track = read_track(knowledge).track
    assert track is not None
    index.ingest(track)
    metas = stored(index, track="ai-foundations")
    meta = next(iter(metas.values()))
    assert {"track", "lesson", "section", "heading", "content_hash"} <= set(meta)
    assert index.collection.metadata.get("hnsw:space") == "cosine"
    for chunk in index.chunks_for(track).values():
        assert index.embedder.count_tokens(chunk.embed_text) <= settings.retrieval.chunk_tokens


def test_edited_lesson_reembeds_only_changed_chunks(settings: Settings, knowledge: Path) -> None:
    index = LessonIndex.from_settings(settings)
    track = read_track(knowledge).track
    assert track is not None
    index.ingest(track)
    lesson_file = knowledge / "02-attention.md"
    text = lesson_file.read_text()
    lesson_file.write_text(
        text.replace("## Many heads at once\n", "## Many heads at once\n\nA brand new opening paragraph.\n", 1)
    )
    report = index.ingest(read_track(knowledge).track)
    assert 1 <= report.embedded <= 2
    assert report.removed == report.embedded  # the old version of the edited chunk(s) is gone
    assert report.chunks == index.collection.count()


def test_removed_lesson_disappears_from_the_index(settings: Settings, knowledge: Path) -> None:
    assert ingest_knowledge(settings)
    (knowledge / "04-rlhf-vs-dpo.md").unlink()
    text = (knowledge / "track.toml").read_text().replace(', "rlhf-vs-dpo"', "")
    (knowledge / "track.toml").write_text(text)
    assert ingest_knowledge(settings) is False  # distillation still lists it among its related lessons
    distillation = knowledge / "01-distillation.md"
    distillation.write_text(distillation.read_text().replace("related: [rlhf-vs-dpo, ", "related: ["))
    assert ingest_knowledge(settings)
    index = LessonIndex.from_settings(settings)
    assert stored(index, lesson="rlhf-vs-dpo") == {}
    assert stored(index, lesson="attention")


def test_a_broken_file_leaves_the_published_index_untouched(settings: Settings, knowledge: Path) -> None:
    assert ingest_knowledge(settings)
    before = stored(LessonIndex.from_settings(settings))
    (knowledge / "01-distillation.md").write_text(
        (knowledge / "01-distillation.md").read_text() + "\n## Extra\n\nNew text.\n"
    )
    write_lesson(knowledge, "09-broken.md", front_matter("broken", quiz=[question(n=12)]))
    assert ingest_knowledge(settings) is False
    assert stored(LessonIndex.from_settings(settings)) == before
    served = load_tracks(settings)["ai-foundations"]  # learners get the version the index holds
    assert [lesson.id for lesson in served.lessons] == [
        "distillation",
        "attention",
        "tokenization-economics",
        "rlhf-vs-dpo",
    ]
    assert "extra" not in [section.id for section in served.lessons[0].sections]


def test_removed_track_folder_is_dropped_from_the_index(settings: Settings, knowledge: Path) -> None:
    assert ingest_knowledge(settings)
    shutil.rmtree(knowledge)
    assert ingest_knowledge(settings)
    assert LessonIndex.from_settings(settings).collection.count() == 0
    assert load_tracks(settings) == {}


def test_search_finds_the_section_that_answers(settings: Settings, knowledge: Path) -> None:
    assert ingest_knowledge(settings)
    index = LessonIndex.from_settings(settings)
    hits = index.search("What is a reward model trained on in RLHF?", k=3, track="ai-foundations")
    assert hits[0].lesson == "rlhf-vs-dpo"
    assert len({(h.lesson, h.section) for h in hits}) == len(hits) == 3  # one result per section
    scoped = index.search("what is a key?", k=2, lesson="distillation")
    assert {h.lesson for h in scoped} == {"distillation"}
    assert hits[0].score >= hits[1].score >= hits[2].score


def test_search_never_returns_probe_text(settings: Settings, knowledge: Path) -> None:
    assert ingest_knowledge(settings)
    index = LessonIndex.from_settings(settings)
    track = read_track(knowledge).track
    assert track is not None
    quiz_prompt = track.lessons[0].quiz[0].prompt
    hits = index.search(quiz_prompt, k=5, track="ai-foundations")
    texts = {c.text for c in index.chunks_for(track).values() if c.kind == "text"}
    assert hits and all(hit.text in texts for hit in hits)


def test_cli_ingest_and_search_json(settings: Settings, knowledge: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTORBOT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("TUTORBOT_KNOWLEDGE_DIR", str(settings.knowledge_dir))
    monkeypatch.setenv("TUTORBOT_MODEL__MODELS_DIR", str(settings.models_dir))
    runner = CliRunner()
    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 0, result.output
    assert "ai-foundations:" in result.output and "embedded" in result.output
    result = runner.invoke(app, ["search", "why does text in other languages cost more tokens?", "--track",
                                 "ai-foundations", "-k", "2", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 2
    assert set(hits[0]) >= {"track", "lesson", "section", "text", "score"}
    assert hits[0]["lesson"] == "tokenization-economics"


def test_cli_search_without_models_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTORBOT_DATA_DIR", str(tmp_path / "empty"))
    result = CliRunner().invoke(app, ["search", "anything"])
    assert result.exit_code == 1
    assert "tutorbot models pull" in result.output or "tutorbot ingest" in result.output


def test_models_pull_is_idempotent_and_lists_what_is_installed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUTORBOT_MODEL__MODELS_DIR", str(settings.models_dir))
    runner = CliRunner()
    result = runner.invoke(app, ["models", "pull", "--embedder-only"])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == 2 and "model.onnx" in result.output
    listing = runner.invoke(app, ["models", "list"])
    assert listing.exit_code == 0
    assert "all-MiniLM-L6-v2 int8 ONNX" in listing.output and "yes" in listing.output


def test_lessons_without_a_related_list_get_the_nearest_lessons_computed_at_ingest(
    settings: Settings, knowledge: Path
) -> None:
    other = settings.knowledge_dir / "kitchen"
    (other / "track.toml").parent.mkdir()
    (other / "track.toml").write_text('id = "kitchen"\ntitle = "Kitchen"\ndescription = "Cooking."\n')
    bodies = {
        "pasta": "# Pasta\n\n## Boiling\n\nBoil salted water, add the pasta and stir. Drain it when it is al dente.\n",
        "bread": "# Bread\n\n## Dough\n\nMix flour, water, salt and yeast, knead the dough and let it rise before baking.\n",
        "prices": (
            "# Paying per token\n\n## Bills\n\nA language model provider bills per token, so a tokenizer that splits "
            "your text into more tokens makes every request cost more and fills the context window sooner.\n"
        ),
    }
    for name, body in bodies.items():
        title = body.splitlines()[0].removeprefix("# ")
        front = front_matter(name, title=title, premise=f"{title}.", related=None, quiz=[], key_terms={}, practice=[])
        write_lesson(other, f"{name}.md", front, body)
    assert ingest_knowledge(settings)
    served = load_tracks(settings)
    kitchen = served["kitchen"]
    related = {lesson.id: lesson.related for lesson in kitchen.lessons}
    assert related["prices"][0] == "ai-foundations/tokenization-economics"
    assert related["pasta"][0] == "kitchen/bread" and related["bread"][0] == "kitchen/pasta"
    assert all(len(refs) == 3 and f"kitchen/{lesson}" not in refs for lesson, refs in related.items())
    authored = served["ai-foundations"].lesson("attention")
    assert authored is not None and authored.related == ("tokenization-economics", "distillation")  # kept as written
