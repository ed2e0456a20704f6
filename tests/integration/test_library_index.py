"""Publishing an uploaded track with the real index: each version is searched under its own key, switched in
only when whole, and a community's track never answers another community's questions."""

from __future__ import annotations

from pathlib import Path

from bot.app import build_engine, open_index
from bot.config import Settings
from bot.core.lessons import VERSION_MARK, community_track_id, version_key
from bot.knowledge.ingest import ingest_knowledge
from tests.engine_driver import Learner
from tests.helpers import front_matter, write_lesson, write_track, zip_folder

UPLOADED = """# Gradient clipping

## Why clip

Gradient clipping caps the norm of the gradient at a threshold called the clip value, so one bad batch cannot
throw the weights far away.
"""


def uploaded_course(tmp_path: Path, title: str) -> bytes:
    folder = write_track(tmp_path / f"src-{title}", "ml-basics")
    write_lesson(folder, "01-lesson.md", front_matter("lesson-1", title=title, quiz=[]), UPLOADED)
    return zip_folder(folder)


def test_versions_are_indexed_apart_and_scoped_to_their_community(tmp_path: Path, settings: Settings) -> None:
    write_track(settings.knowledge_dir / "host", "host-track")
    index = open_index(settings)
    ingest_knowledge(settings, index)
    engine = build_engine(settings, index=index, answers=False)
    mod = Learner(engine, "mod", "server-1", is_direct=False, is_moderator=True)
    mod.upload("ml-basics.zip", uploaded_course(tmp_path, "Clipping"))
    mod.say("tracks publish ml-basics")
    assert "as version 1" in mod.text
    served = community_track_id("ml-basics", "test:server-1")
    assert version_key(served, 1) in index.indexed_tracks()

    question = "What is the clip value in gradient clipping?"
    hits = index.search(question, 3, [served, "host-track"])
    assert hits and hits[0].track == served and "clip value" in hits[0].text
    elsewhere = index.search(question, 3, ["host-track"])  # what another community's learners search
    assert all(hit.track == "host-track" for hit in elsewhere)

    mod.upload("ml-basics.zip", uploaded_course(tmp_path, "Clipping, again"))
    mod.say("tracks publish ml-basics")
    keys = {key for key in index.indexed_tracks() if VERSION_MARK in key}
    assert keys == {version_key(served, 1), version_key(served, 2)}  # v1 stays for processes not yet refreshed

    ingest_knowledge(settings, index)  # the host re-indexing the knowledge folder keeps uploaded tracks
    assert version_key(served, 2) in index.indexed_tracks()

    index.remove_track(version_key(served, 2))  # a lost index: the next start indexes the live version again
    restarted = build_engine(settings, index=index, answers=False)
    assert version_key(served, 2) in index.indexed_tracks()
    assert restarted.tracks[served].lessons[0].title == "Clipping, again"
    assert index.search(question, 1, [served])[0].track == served

    mod = Learner(restarted, "mod", "server-1", is_direct=False, is_moderator=True)
    mod.upload("ml-basics.zip", uploaded_course(tmp_path, "Clipping, third"))
    mod.say("tracks publish ml-basics")
    keys = {key for key in index.indexed_tracks() if VERSION_MARK in key}
    assert keys == {version_key(served, 2), version_key(served, 3)}  # the version before the previous one goes
