"""Import reads only plain files inside the course, and replaces only a track folder, whole or not at all."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from bot.knowledge.importer import ImportError_, import_course
from bot.knowledge.reader import read_track
from bot.knowledge.safe_files import UnsafeFile, read_bytes
from tests.unit.test_importer import make_course

SECRET = "-----BEGIN OPENSSH PRIVATE KEY----- not for learners"


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def secret_file(tmp_path: Path) -> Path:
    secret = tmp_path / "home" / ".ssh" / "id_rsa"
    secret.parent.mkdir(parents=True)
    secret.write_text(SECRET)
    return secret


def finished(target, *args, **kwargs) -> object:  # noqa: ANN001
    """Run ``target`` in a thread and return what it returned or raised; fail instead of hanging on a fifo."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(target(*args, **kwargs))
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the import waited on a fifo instead of refusing it"
    return outcome[0]


def test_a_lesson_linking_to_a_file_outside_the_course_is_not_published(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course")
    (course / "lessons" / "03-keys.md").symlink_to(secret_file(tmp_path))
    knowledge = tmp_path / "knowledge"
    with pytest.raises(ImportError_, match=r"lessons/03-keys\.md is a symbolic link \(to .*id_rsa\)") as refused:
        import_course(course, "imported", knowledge / "imported")
    assert "nothing was written" in str(refused.value)
    assert not knowledge.exists() or all(SECRET.encode() not in data for data in files_under(knowledge).values())


def test_a_lesson_folder_readme_linking_outside_is_refused_by_the_command(tmp_path: Path) -> None:
    course = tmp_path / "course"
    for name in ("1-intro", "2-keys"):
        (course / name).mkdir(parents=True)
    (course / "1-intro" / "README.md").write_text("# Intro\n\n## Introduction\n\nSome text of the first lesson here.\n")
    (course / "2-keys" / "README.md").symlink_to(secret_file(tmp_path))
    dest = tmp_path / "knowledge" / "imported"
    result = CliRunner().invoke(app, ["import", str(course), "--track", "imported", "--dest", str(dest)])
    assert result.exit_code == 1
    assert (
        "2-keys/README.md is a symbolic link" in result.output and "put a plain file in place of each" in result.output
    )
    assert SECRET not in result.output and not dest.exists()


def test_a_fifo_named_like_a_lesson_is_refused_without_waiting_on_it(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course")
    os.mkfifo(course / "lessons" / "03-pipe.md")
    outcome = finished(import_course, course, "imported", tmp_path / "out")
    assert isinstance(outcome, ImportError_) and "lessons/03-pipe.md is a fifo" in str(outcome)
    assert not (tmp_path / "out").exists()


def test_reading_refuses_a_fifo_a_link_and_a_path_outside_even_when_handed_one(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course")
    os.mkfifo(course / "pipe.md")
    outcome = finished(read_bytes, course / "pipe.md", course)
    assert isinstance(outcome, UnsafeFile) and "fifo" in outcome.why
    (course / "keys.md").symlink_to(secret_file(tmp_path))
    with pytest.raises(UnsafeFile, match="resolves to .*id_rsa, outside"):
        read_bytes(course / "keys.md", course)
    with pytest.raises(UnsafeFile, match="symbolic link"):
        read_bytes(course / "keys.md")  # no folder to stay inside: still never followed
    (course / "elsewhere").symlink_to(tmp_path / "home", target_is_directory=True)
    with pytest.raises(UnsafeFile, match="outside"):
        read_bytes(course / "elsewhere" / ".ssh" / "id_rsa", course)


def test_a_link_to_a_folder_is_not_followed_and_the_output_says_so(tmp_path: Path) -> None:
    course = tmp_path / "course"
    (course / "1-intro").mkdir(parents=True)
    (course / "1-intro" / "README.md").write_text("# Intro\n\n## Introduction\n\nSome text of the first lesson here.\n")
    outside = tmp_path / "outside" / "2-private"
    outside.mkdir(parents=True)
    (outside / "README.md").write_text(f"# Private\n\n## Introduction\n\n{SECRET}\n")
    (course / "2-private").symlink_to(outside, target_is_directory=True)
    dest = tmp_path / "out"
    report = import_course(course, "imported", dest)
    assert report.lessons == 1 and any("2-private is a symbolic link" in note for note in report.notes)
    assert all(SECRET.encode() not in data for data in files_under(dest).values())


def test_force_refuses_a_folder_that_holds_no_track_and_leaves_it_intact(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course")
    dest = tmp_path / "thesis"
    dest.mkdir()
    (dest / "chapter1.txt").write_text("months of work")
    with pytest.raises(ImportError_, match=r"no track\.toml, so it is not a track.*not even with --force"):
        import_course(course, "imported", dest, replace=True)
    assert files_under(dest) == {"chapter1.txt": b"months of work"}
    result = CliRunner().invoke(app, ["import", str(course), "--track", "imported", "--dest", str(dest), "--force"])
    assert result.exit_code == 1 and "not a track" in result.output
    assert files_under(dest) == {"chapter1.txt": b"months of work"}


def test_force_replaces_a_track_whole_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    dest = tmp_path / "knowledge" / "imported"
    import_course(make_course(tmp_path / "course"), "imported", dest)
    (dest / "03-stale.md").write_text("# Stale\n\nA lesson the new import does not have.\n")
    other = tmp_path / "other"
    (other / "lessons").mkdir(parents=True)
    (other / "lessons" / "01-only.md").write_text("# Only\n\n## Introduction\n\nThe one lesson of the other course.\n")
    import_course(other, "imported", dest, replace=True)
    track = read_track(dest).track
    assert track is not None and [lesson.id for lesson in track.lessons] == ["only"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["imported"]  # no staging or old folder left


def test_an_empty_folder_is_used_without_force_and_a_linked_target_is_refused(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course")
    empty = tmp_path / "empty"
    empty.mkdir()
    import_course(course, "imported", empty)
    assert read_track(empty).ok
    linked = tmp_path / "linked"
    linked.symlink_to(empty, target_is_directory=True)
    with pytest.raises(ImportError_, match="symbolic link"):
        import_course(course, "imported", linked, replace=True)


def test_a_failure_while_writing_leaves_the_old_track_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    course = make_course(tmp_path / "course")
    dest = tmp_path / "knowledge" / "imported"
    import_course(course, "imported", dest)
    before = files_under(dest)
    calls = {"n": 0}
    real_dump = yaml.safe_dump

    def dump_then_fail(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 2:  # the first lesson is written; the second never is
            raise OSError(28, "No space left on device")
        return real_dump(*args, **kwargs)

    monkeypatch.setattr("bot.knowledge.importer.yaml.safe_dump", dump_then_fail)
    with pytest.raises(OSError, match="No space left"):
        import_course(course, "imported", dest, replace=True)
    assert calls["n"] == 2
    assert files_under(dest) == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["imported"]


def test_a_failure_while_swapping_puts_the_old_track_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    course = make_course(tmp_path / "course")
    dest = tmp_path / "knowledge" / "imported"
    import_course(course, "imported", dest)
    (dest / "LICENSE").write_text("the old track's licence")
    before = files_under(dest)
    real_rename = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if ".importing-" in self.name:  # the old track is already aside when the new one would move in
            raise OSError(5, "Input/output error")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="Input/output"):
        import_course(course, "imported", dest, replace=True)
    assert files_under(dest) == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["imported"]


def test_an_old_track_a_crash_left_aside_is_put_back_by_the_next_import(tmp_path: Path) -> None:
    course = make_course(tmp_path / "course")
    dest = tmp_path / "knowledge" / "imported"
    import_course(course, "imported", dest)
    before = files_under(dest)
    dest.rename(dest.with_name(".imported.replaced-0123abcd"))  # killed between the two renames
    (dest.parent / ".imported.importing-4567ef01").mkdir()  # and a half-written new track
    with pytest.raises(ImportError_, match="already holds a track; pass --force"):
        import_course(course, "imported", dest)
    assert files_under(dest) == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["imported"]


def test_an_unreadable_folder_in_the_course_is_reported_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    course = make_course(tmp_path / "course")
    (course / "drafts").mkdir()
    real_scandir = os.scandir

    def scandir(path):  # noqa: ANN001, ANN202 - as for a folder without read permission (root reads them all)
        if Path(path).name == "drafts":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = import_course(course, "imported", tmp_path / "out")
    assert report.lessons == 2
    assert any("drafts is a folder that cannot be read (Permission denied)" in note for note in report.notes)
