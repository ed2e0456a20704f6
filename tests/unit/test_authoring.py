"""Moderators publish their own tracks from the chat: upload, check, preview, publish, history and rollback.

Real parts: the library's folders and the SQLite database; no search index (questions are not asked here;
``tests/integration/test_library_index.py`` covers the index).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.authoring import REFRESH_SECONDS, upload_name
from bot.core.engine import Engine
from bot.core.ports import LibraryError
from bot.core.uploads import MAX_ZIP_BYTES, UPLOADS_PER_MINUTE
from bot.knowledge.library import ADOPTED_MARK, LibraryFiles
from bot.knowledge.reader import read_track
from bot.store.progress import SqlProgressStore
from bot.store.sql import SqlDatabase
from bot.store.track_versions import SqlTrackVersions
from tests.engine_driver import Learner
from tests.helpers import BODY, front_matter, write_lesson, write_track, zip_folder

SERVER = "server-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(sql_database: SqlDatabase) -> SqlDatabase:
    """The track versions (and progress) on each kind of database."""
    return sql_database


def library(tmp_path: Path, database: SqlDatabase) -> LibraryFiles:
    return LibraryFiles(tmp_path / "library", SqlTrackVersions(database))


@pytest.fixture
def engine(tmp_path: Path, database: SqlDatabase) -> Engine:
    host = read_track(write_track(tmp_path / "host", "host-track")).track
    assert host is not None
    return Engine({host.id: host}, SqlProgressStore(database), library=library(tmp_path, database))


def moderator(engine: Engine, server: str = SERVER) -> Learner:
    return Learner(engine, "mod", server, is_direct=False, is_moderator=True)


def learner(engine: Engine, name: str = "ada", server: str = SERVER) -> Learner:
    return Learner(engine, name, server, is_direct=False)


def course(tmp_path: Path, lessons: int = 2, body: str = BODY, name: str = "course") -> bytes:
    folder = write_track(tmp_path / f"src-{name}-{lessons}-{len(body)}", "ml-basics", lessons=lessons)
    for n in range(1, lessons + 1):
        write_lesson(folder, f"{n:02d}-lesson.md", front_matter(f"lesson-{n}", title=f"Lesson {n}"), body)
    return zip_folder(folder, top="ml-basics")


def test_a_broken_lesson_comes_back_as_file_line_problems_and_nothing_changes(tmp_path: Path, engine: Engine) -> None:
    mod = moderator(engine)
    broken = front_matter("lesson-1", quiz=[{"question": "Which?", "options": [{"text": "a"}, {"text": "b"}]}])
    folder = write_track(tmp_path / "bad", "ml-basics")
    write_lesson(folder, "01-lesson.md", broken)
    mod.upload("ml-basics.zip", zip_folder(folder), "tracks upload ml-basics")
    assert "1 problem" in mod.text and "01-lesson.md:" in mod.text and "Nothing learners see has changed" in mod.text
    ada = learner(engine)
    ada.say("tracks")
    assert "ml-basics" not in ada.text
    mod.say("tracks publish ml-basics")
    assert "nothing was published" in mod.text


def test_upload_preview_publish_then_learners_here_get_it_and_nobody_else(tmp_path: Path, engine: Engine) -> None:
    mod = moderator(engine)
    mod.upload("ml-basics.zip", course(tmp_path), "/tracks upload ml-basics")
    assert "is valid: 2 lessons" in mod.text
    ada = learner(engine)
    mod.say("tracks preview ml-basics")
    assert "Preview of the draft" in mod.text and "Lesson 1" in mod.text
    draft_lesson = mod.button("1. Lesson 1")
    assert "Lesson 1" in "\n".join(r.text for r in mod.act(draft_lesson))
    mod.say("quiz")  # the draft's quiz works in the preview, and a question waits for publishing
    assert "What does the student learn from?" in mod.text
    mod.say("why is the student cheaper to run?")
    assert "draft in preview" in mod.text
    ada.act(draft_lesson)  # a learner pressing a forwarded preview button
    assert "is a draft" in ada.text
    ada.say("tracks")
    assert "ml-basics" not in ada.text

    mod.say("tracks publish ml-basics")
    assert "as version 1" in mod.text
    ada.say("tracks")
    assert "ml-basics" in ada.text and "host-track" in ada.text
    elsewhere = learner(engine, "bo", server="server-2")
    elsewhere.say("tracks")
    assert "ml-basics" not in elsewhere.text and "host-track" in elsewhere.text
    direct = Learner(engine, "cy")
    direct.say("tracks")
    assert "ml-basics" not in direct.text


def test_a_learner_inside_a_removed_section_moves_to_the_nearest_one(tmp_path: Path, engine: Engine) -> None:
    mod = moderator(engine)
    three = BODY + "\n## Third part\n\nA third section.\n"
    mod.upload("ml-basics.zip", course(tmp_path, 1, three))
    mod.say("tracks publish ml-basics")
    ada = learner(engine)
    ada.say("track ml-basics")
    ada.press("1. Lesson 1")
    for _ in range(3):
        ada.say("next")
    assert "Third part" in ada.text
    mod.upload("ml-basics.zip", course(tmp_path, 1, BODY))  # the zip names its track in track.toml
    mod.say("tracks publish ml-basics")
    assert "as version 2" in mod.text
    ada.say("continue")
    assert "nearest part" in ada.text and "Where the gap shows" in ada.text


def test_history_lists_who_published_and_rollback_brings_a_version_back(tmp_path: Path, engine: Engine) -> None:
    mod = moderator(engine)
    mod.upload("ml-basics.zip", course(tmp_path, 1))
    mod.say("tracks publish ml-basics")
    mod.upload("ml-basics.zip", course(tmp_path, 2))
    mod.say("tracks publish ml-basics")
    mod.say("tracks history ml-basics")
    assert "v2" in mod.text and "v1" in mod.text and "by Mod" in mod.text
    ada = learner(engine)
    ada.say("track ml-basics")
    assert "Lesson 2" in ada.text
    mod.say("tracks rollback ml-basics 1")
    assert "Version 1" in mod.text and "as version 3" in mod.text
    ada.say("track ml-basics")
    assert "Lesson 2" not in ada.text
    mod.say("tracks history ml-basics")
    assert "version 1 brought back" in mod.text
    mod.say("tracks rollback ml-basics 9")
    assert "has no version 9" in mod.text


def test_one_lesson_file_changes_the_live_track_through_a_new_draft(tmp_path: Path, engine: Engine) -> None:
    mod = moderator(engine)
    mod.upload("ml-basics.zip", course(tmp_path, 2))
    mod.say("tracks publish ml-basics")
    lesson = write_lesson(tmp_path / "one", "02-lesson.md", front_matter("lesson-2", title="Lesson two, rewritten"))
    mod.upload("02-lesson.md", lesson.read_bytes(), "ml-basics")
    assert "is valid: 2 lessons" in mod.text
    mod.say("tracks publish ml-basics")
    learner(engine).say("track ml-basics")
    ada = learner(engine)
    ada.say("track ml-basics")
    assert "Lesson two, rewritten" in ada.text and "Lesson 1" in ada.text


def test_only_moderators_upload_and_a_refused_upload_is_never_downloaded(tmp_path: Path, engine: Engine) -> None:
    ada = learner(engine)
    ada.upload("ml-basics.zip", course(tmp_path), "tracks upload ml-basics")
    assert "Only this community's moderators" in ada.text and ada.downloads == []
    ada.say("tracks publish ml-basics")
    assert "Only this community's moderators" in ada.text
    direct = Learner(engine, "mod", is_moderator=False)
    direct.upload("ml-basics.zip", course(tmp_path))
    assert "belong to a server or group" in direct.text and direct.downloads == []
    mod = moderator(engine)
    mod.upload("huge.zip", b"", "ml-basics", size=MAX_ZIP_BYTES + 1)
    assert "at most 10 MB" in mod.text and mod.downloads == []
    mod.upload("notes.pdf", b"%PDF", "ml-basics")
    assert "I can't take notes.pdf" in mod.text and mod.downloads == []


def test_a_moderator_sending_too_many_uploads_a_minute_is_asked_to_wait(tmp_path: Path, engine: Engine) -> None:
    mod = moderator(engine)
    lesson = write_lesson(tmp_path / "one", "01-lesson.md", front_matter("lesson-1")).read_bytes()
    for _ in range(UPLOADS_PER_MINUTE):
        mod.upload("01-lesson.md", lesson, "ml-basics")
        assert "uploads in a minute" not in mod.text
    mod.upload("01-lesson.md", lesson, "ml-basics")
    assert "uploads in a minute" in mod.text and len(mod.downloads) == UPLOADS_PER_MINUTE


def test_a_long_list_of_problems_comes_as_a_text_file(tmp_path: Path, engine: Engine) -> None:
    folder = write_track(tmp_path / "bad", "ml-basics", lessons=0)
    for n in range(20):
        write_lesson(folder, f"{n:02d}-lesson.md", front_matter(f"lesson-{n}", minutes="soon"))
    mod = moderator(engine)
    reply = mod.upload("ml-basics.zip", zip_folder(folder))[-1]
    assert "20 problems" in reply.text and "problems.txt" in reply.text
    (attached,) = reply.files
    listed = attached.data.decode("utf-8").splitlines()
    assert attached.filename == "problems.txt" and len(listed) == 20 and all(":" in line for line in listed)


def test_another_community_cannot_touch_a_track_it_did_not_upload(tmp_path: Path, engine: Engine) -> None:
    mod = moderator(engine)
    mod.upload("ml-basics.zip", course(tmp_path))
    mod.say("tracks publish ml-basics")
    other = moderator(engine, "server-2")
    other.say("tracks rollback ml-basics 1")
    assert "has no version 1" in other.text
    other.say("tracks history ml-basics")
    assert "no published version here" in other.text
    other.say("disable ml-basics")
    assert "There is no track" in other.text


def test_a_version_published_on_the_host_reaches_a_running_engine(tmp_path: Path, database: SqlDatabase) -> None:
    clock = Clock()
    host = read_track(write_track(tmp_path / "host", "host-track")).track
    assert host is not None
    engine = Engine({host.id: host}, SqlProgressStore(database), library=library(tmp_path, database))
    engine.authoring.clock = clock
    ada = learner(engine)
    ada.say("tracks")
    cli = library(tmp_path, database)  # as 'tutorbot publish' opens it
    folder = tmp_path / "src"
    write_track(folder, "shared-notes")
    published = cli.publish_path(None, "shared-notes", folder, "host")
    assert isinstance(published, tuple) and published[1] == 1
    ada.say("tracks")
    assert "shared-notes" not in ada.text  # not checked again yet
    clock.now += REFRESH_SECONDS + 1
    ada.say("tracks")
    assert "shared-notes" in ada.text


@pytest.mark.parametrize(
    ("caption", "name"),
    [("ml-basics", "ml-basics"), ("/tracks upload ml-basics", "ml-basics"), ("tracks upload ML Basics", "ml"),
     ("/tracks@tutor_bot upload ml-basics", "ml-basics"), ("", None), ("/tracks upload", None)],
)  # fmt: skip
def test_the_caption_names_the_track_an_upload_is_for(caption: str, name: str | None) -> None:
    assert upload_name(caption) == name


def test_discord_autocompletion_offers_a_moderator_their_own_community_tracks_by_name(tmp_path: Path,
                                                                                      engine: Engine) -> None:  # fmt: skip
    from bot.adapters.discord.commands import track_choices

    mod = moderator(engine)
    mod.upload("ml-basics.zip", course(tmp_path))
    mod.say("tracks publish ml-basics")
    here = {choice.value for choice in track_choices(engine, mod.incoming(), "")}
    elsewhere = {choice.value for choice in track_choices(engine, moderator(engine, "server-2").incoming(), "")}
    assert here == {"host-track", "ml-basics"} and elsewhere == {"host-track"}


def test_processes_with_data_dirs_of_their_own_share_drafts_and_versions(tmp_path: Path, database: SqlDatabase) -> None:
    # three bot processes on three machines: one database, a library folder each
    machine_a, machine_b, machine_c = (LibraryFiles(tmp_path / name, SqlTrackVersions(database))
                                       for name in ("a", "b", "c"))  # fmt: skip
    draft = machine_a.upload(SERVER, "ml-basics", "ml-basics.zip", course(tmp_path))
    assert draft.track is not None and not draft.problems
    assert machine_b.draft(SERVER, "ml-basics").track is not None  # the moderator's next turn went to another one
    _track, version = machine_b.publish(SERVER, "ml-basics", by="mod")
    assert version == 1
    served, owners = machine_c.served()  # a process that saw none of it serves the version
    assert len(served) == 1 and len(served[0].lessons) == 2
    assert list(owners.values()) == [SERVER]
    with pytest.raises(LibraryError, match="no draft"):
        machine_a.draft(SERVER, "ml-basics")  # the draft was used up on another machine: not a stale copy here
    _track, again = machine_c.rollback(SERVER, "ml-basics", 1, by="mod")
    assert again == 2 and [v.version for v in machine_a.history(SERVER, "ml-basics")] == [2, 1]


def test_a_data_dir_from_before_files_were_in_the_database_keeps_its_versions_and_draft(
    tmp_path: Path, database: SqlDatabase
) -> None:
    old = LibraryFiles(tmp_path / "old", SqlTrackVersions(database))
    old.upload(SERVER, "ml-basics", "ml-basics.zip", course(tmp_path))
    old.publish(SERVER, "ml-basics", by="mod")
    old.upload(SERVER, "ml-basics", "ml-basics.zip", course(tmp_path, lessons=3))  # a draft in progress
    with database.transaction() as connection:  # what an older release left: files on disk only
        connection.execute("DELETE FROM library_files")
    (tmp_path / "old" / ADOPTED_MARK).unlink(missing_ok=True)
    upgraded = LibraryFiles(tmp_path / "old", SqlTrackVersions(database))
    upgraded.start()
    assert upgraded.draft(SERVER, "ml-basics").track is not None  # the draft was not lost to the empty database
    elsewhere = LibraryFiles(tmp_path / "new", SqlTrackVersions(database))
    assert [len(t.lessons) for t in elsewhere.served()[0]] == [2]  # and another machine can serve v1
    assert len(elsewhere.draft(SERVER, "ml-basics").track.lessons) == 3  # type: ignore[union-attr]
