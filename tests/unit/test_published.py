"""Published copies of tracks: a faithful round trip, and broken tracks served as they were last indexed."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.lessons import Track
from bot.knowledge import published as published_module
from bot.knowledge.published import PublishedTracks, PublishFailed, track_from_dict, track_to_dict
from bot.knowledge.reader import read_knowledge, read_track
from tests.helpers import front_matter, write_lesson, write_track

REPO = Path(__file__).resolve().parents[2]


def test_round_trip_keeps_every_field_of_the_bundled_track() -> None:
    track = next(r.track for r in read_knowledge(REPO / "knowledge") if r.track)
    assert track_from_dict(track_to_dict(track, "ai-foundations")) == track


def test_a_broken_track_is_served_as_last_published(tmp_path: Path) -> None:
    knowledge = tmp_path / "knowledge"
    good = write_track(knowledge / "demo", "demo", lessons=2)
    write_track(knowledge / "other", "other", lessons=1)
    published = PublishedTracks(tmp_path / "published")
    before = read_track(good).track
    assert before is not None
    published.save(before, good)
    write_lesson(good, "02-lesson.md", {"id": "lesson-2", "title": "Broken"}, body="")  # invalid now
    served = published.serve(read_knowledge(knowledge))
    assert served["demo"] == before  # the version indexed before, whole
    assert "other" in served  # a valid, never published track is served as read
    (good / "track.toml").write_text("id = [", encoding="utf-8")  # even the track file broken
    assert published.serve(read_knowledge(knowledge))["demo"] == before
    published.remove("demo")
    assert "demo" not in published.serve(read_knowledge(knowledge))


def test_an_unreadable_copy_is_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "published"
    folder.mkdir()
    (folder / "demo.json").write_text("{not json", encoding="utf-8")
    assert PublishedTracks(folder).load() == {}


def test_a_copy_written_before_units_existed_gets_its_units_split_anew() -> None:
    track = read_track(REPO / "knowledge" / "ai-foundations").track
    assert track is not None
    data = track_to_dict(track, "ai-foundations")
    for lesson in data["track"]["lessons"]:
        for section in lesson["sections"]:
            del section["units"]
    old = track_from_dict(data)
    assert [u.text for u in old.lessons[0].sections[0].units] == [u.text for u in track.lessons[0].sections[0].units]


def test_a_copy_written_before_units_had_blocks_gets_its_units_split_anew() -> None:
    track = read_track(REPO / "knowledge" / "ai-foundations").track
    assert track is not None
    data = track_to_dict(track, "ai-foundations")
    for lesson in data["track"]["lessons"]:
        for section in lesson["sections"]:
            for unit in section["units"]:
                del unit["block"]

    def blocks(t: Track) -> list:
        return [(u.text, u.block) for lesson in t.lessons for section in lesson.sections for u in section.units]

    assert blocks(track_from_dict(data)) == blocks(track)  # not every unit in block 0, one long paragraph


def test_a_copy_that_cannot_be_written_for_a_full_disk_leaves_the_old_copy_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_track(tmp_path / "knowledge" / "demo", "demo", lessons=2)
    published = PublishedTracks(tmp_path / "published")
    before = read_track(folder).track
    assert before is not None
    published.save(before, folder)
    write_lesson(folder, "02-lesson.md", front_matter("lesson-2", title="Edited"))
    after = read_track(folder).track
    assert after is not None and after != before

    def no_space(_descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(published_module.os, "fsync", no_space)
    with pytest.raises(PublishFailed, match="disk is full.*run 'tutorbot ingest' again"):
        published.save(after, folder)
    monkeypatch.undo()
    assert published.load()["demo"][1] == before
    assert [path.name for path in published.folder.iterdir()] == ["demo.json"]


def test_an_ingest_is_marked_until_its_copy_is_saved_or_removed(tmp_path: Path) -> None:
    folder = write_track(tmp_path / "knowledge" / "demo", "demo", lessons=1)
    track = read_track(folder).track
    assert track is not None
    published = PublishedTracks(tmp_path / "published")
    published.begin("demo")
    published.begin("other")
    assert published.interrupted() == {"demo", "other"}
    assert published.load() == {}  # a mark is not a copy
    published.save(track, folder)
    published.remove("other")
    assert published.interrupted() == set()


def test_a_mark_of_an_ingest_still_running_elsewhere_is_not_taken_as_interrupted(tmp_path: Path) -> None:
    """Regression: bots sharing a data dir and a Chroma server: one starting while another ingested undid that
    ingest (it put the index back to the old copy and removed the mark)."""
    folder = tmp_path / "published"
    code = ("import sys, time\nfrom pathlib import Path\nfrom bot.knowledge.published import PublishedTracks\n"
            "PublishedTracks(Path(sys.argv[1])).begin('demo')\nprint('marked', flush=True)\ntime.sleep(600)\n")  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "marked"
        assert PublishedTracks(folder).interrupted() == set()  # the other process is still ingesting
    finally:
        other.kill()
        other.wait()
    assert PublishedTracks(folder).interrupted() == {"demo"}  # killed mid-ingest: now it was cut short
