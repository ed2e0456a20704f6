"""Uploads into a draft: a lesson, a zipped track or a host folder is written whole, or refused with every problem
and what to do, and a refused (or failed) upload leaves the draft and everything beside it as they were."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from bot.core.uploads import MAX_COMPRESSION_RATIO, MAX_FILE_BYTES, MAX_UNPACKED_BYTES, MAX_ZIP_BYTES, MAX_ZIP_ENTRIES
from bot.knowledge import upload as upload_module
from bot.knowledge.reader import validate_path
from bot.knowledge.upload import MAX_PROBLEMS, UploadRefused, copy_folder_into, unpack_into
from tests.unit.test_import_safety import SECRET, finished, secret_file

REPO = Path(__file__).resolve().parents[2]
TRACK = REPO / "knowledge" / "ai-foundations"
TOML = b'id = "demo"\ntitle = "Demo"\ndescription = "A demo track."\n'
LESSON = b"---\nid: intro\ntitle: Intro\nminutes: 1\npremise: You see a thing.\n---\n\n# Intro\n\n## Main\n\nText.\n"

Entry = tuple[str | zipfile.ZipInfo, bytes]


def make_zip(*entries: Entry, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``entries`` (a name or a crafted ZipInfo, and the bytes), in the order given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def track_zip(*extra: Entry, top: str = "", method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A small valid track, zipped (under the folder ``top`` when given), with ``extra`` entries."""
    return make_zip((f"{top}track.toml", TOML), (f"{top}01-intro.md", LESSON), *extra, method=method)


def info(name: str, mode: int) -> zipfile.ZipInfo:
    """A ZipInfo named ``name`` with Unix ``mode`` bits (file type included)."""
    entry = zipfile.ZipInfo(name)
    entry.external_attr = mode << 16
    return entry


CENTRAL_FIELDS = {"version_needed": (6, "<H"), "flag_bits": (8, "<H"), "compress_size": (20, "<I"),
                  "file_size": (24, "<I")}  # fmt: skip


def patch_central(data: bytes, index: int, **fields: int) -> bytes:
    """``data`` with fields of entry ``index`` in the central directory (what zipfile trusts) replaced."""
    at, found = -1, -1
    while found < index:
        at, found = data.index(b"PK\x01\x02", at + 1), found + 1
    patched = bytearray(data)
    for name, value in fields.items():
        offset, layout = CENTRAL_FIELDS[name]
        struct.pack_into(layout, patched, at + offset, value)
    return bytes(patched)


def snapshot(folder: Path) -> dict[str, object]:
    """Everything under ``folder`` (hidden entries too, links not followed): each file's bytes, each link's target."""
    found: dict[str, object] = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(root) / name
            relative = str(path.relative_to(folder))
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                found[relative] = ("link", os.readlink(path))
            elif stat.S_ISREG(mode):
                found[relative] = path.read_bytes()
            else:
                found[relative] = stat.S_IFMT(mode)
    return found


@pytest.fixture
def draft(tmp_path: Path) -> Path:
    """A draft folder holding a track, with a neighbour beside it that no upload may touch."""
    folder = tmp_path / "drafts" / "demo"
    folder.mkdir(parents=True)
    (folder / "track.toml").write_bytes(TOML)
    (folder / "01-intro.md").write_bytes(LESSON)
    (folder / "02-old.md").write_bytes(LESSON.replace(b"intro", b"old"))
    (tmp_path / "drafts" / "neighbour.md").write_text("not yours")
    return folder


def refused(draft: Path, filename: str, data: bytes) -> list[str]:
    """The problems an upload is refused with, checking it changed nothing in or beside the draft."""
    before = snapshot(draft.parent.parent)
    with pytest.raises(UploadRefused) as error:
        unpack_into(draft, filename, data)
    assert snapshot(draft.parent.parent) == before
    assert str(error.value) == "\n".join(error.value.problems)
    return error.value.problems


def one_problem(draft: Path, filename: str, data: bytes, *words: str) -> str:
    """The one problem an upload is refused with besides the missing track.toml; it contains ``words``."""
    problems = [p for p in refused(draft, filename, data) if "no track.toml" not in p]
    assert len(problems) == 1, problems
    assert all(word in problems[0] for word in words), problems[0]
    return problems[0]


# ---------------------------------------------------------------- one lesson


def test_a_lesson_replaces_the_lesson_of_its_name_and_leaves_the_others(draft: Path) -> None:
    new = LESSON.replace(b"Text.", b"New text.")
    assert unpack_into(draft, "02-old.md", b"\xef\xbb\xbf" + new) == ["02-old.md"]
    assert (draft / "02-old.md").read_bytes() == new  # the BOM stripped
    assert sorted(os.listdir(draft)) == ["01-intro.md", "02-old.md", "track.toml"]
    assert (draft / "01-intro.md").read_bytes() == LESSON


def test_a_lesson_replaces_one_whose_name_differs_only_in_case(draft: Path) -> None:
    assert unpack_into(draft, "02-OLD.MD", LESSON) == ["02-OLD.md"]
    assert sorted(os.listdir(draft)) == ["01-intro.md", "02-OLD.md", "track.toml"]


def test_a_lesson_replaces_one_whose_name_is_written_in_another_unicode_form(draft: Path) -> None:
    (draft / "cafe\u0301.md").write_bytes(LESSON)  # as macOS writes names
    assert unpack_into(draft, "caf\u00e9.md", LESSON) == ["caf\u00e9.md"]
    assert sorted(os.listdir(draft)) == ["01-intro.md", "02-old.md", "caf\u00e9.md", "track.toml"]


def test_a_lesson_upload_clears_what_an_interrupted_upload_left(draft: Path) -> None:
    (draft / ".upload-0123456789ab" / "new").mkdir(parents=True)
    unpack_into(draft, "03-new.md", LESSON)
    assert sorted(os.listdir(draft)) == ["01-intro.md", "02-old.md", "03-new.md", "track.toml"]


def test_a_lesson_name_loses_the_folders_a_client_sent(draft: Path) -> None:
    assert unpack_into(draft, "../../etc/03-new.md", LESSON) == ["03-new.md"]
    assert unpack_into(draft, "C:\\Users\\ada\\04-win.md", LESSON) == ["04-win.md"]
    assert (draft / "03-new.md").read_bytes() == LESSON and (draft / "04-win.md").is_file()
    assert sorted(os.listdir(draft.parent)) == ["demo", "neighbour.md"]


def test_a_lesson_larger_than_the_limit_is_refused(draft: Path) -> None:
    (problem,) = refused(draft, "big.md", b"a" * (MAX_FILE_BYTES + 1))
    assert "at most 1 MB" in problem and "Split it" in problem


def test_a_lesson_that_is_not_utf8_is_refused_with_its_line(draft: Path) -> None:
    (problem,) = refused(draft, "latin.md", LESSON + b"caf\xe9\n")
    assert problem.startswith("latin.md: line 13:") and "save it with UTF-8" in problem


def test_a_lesson_with_a_nul_byte_is_refused(draft: Path) -> None:
    (problem,) = refused(draft, "nul.md", LESSON + b"\x00")
    assert problem.startswith("nul.md: line 13:") and "binary file" in problem


@pytest.mark.parametrize("name", [".md", ".hidden.md", "dir/", "  .md"])
def test_a_lesson_without_a_plain_name_is_refused(draft: Path, name: str) -> None:
    (problem,) = refused(draft, name, LESSON)
    assert "03-attention.md" in problem or "send one lesson as a .md file" in problem


@pytest.mark.parametrize("name", ["a\u202egnp.md", "a\nb.md", "tab\t.md"])
def test_a_lesson_whose_name_has_control_or_invisible_characters_is_refused(draft: Path, name: str) -> None:
    (problem,) = refused(draft, name, LESSON)
    assert "control or invisible characters" in problem and "\n" not in problem and "\u202e" not in problem


def test_a_lesson_named_readme_is_refused_since_the_reader_skips_it(draft: Path) -> None:
    (problem,) = refused(draft, "README.md", LESSON)
    assert "never read as a lesson" in problem


def test_a_file_that_is_neither_a_lesson_nor_a_zip_is_refused(draft: Path) -> None:
    (problem,) = refused(draft, "notes.txt", b"hello")
    assert "send one lesson as a .md file" in problem


# ---------------------------------------------------------------- a zipped track: what is taken


def test_a_zip_replaces_the_whole_draft(draft: Path) -> None:
    (draft / ".upload-0123456789ab").mkdir()  # left by an interrupted upload
    written = unpack_into(draft, "demo.zip", track_zip(("images/cat.png", b"\x89PNG"), ("quiz.json", b"[]")))
    assert written == ["01-intro.md", "images/cat.png", "quiz.json", "track.toml"]
    assert snapshot(draft) == {"01-intro.md": LESSON, "images": stat.S_IFDIR, "images/cat.png": b"\x89PNG",
                               "quiz.json": b"[]", "track.toml": TOML}  # fmt: skip
    assert sorted(os.listdir(draft.parent)) == ["demo", "neighbour.md"]


def test_the_bundled_track_zipped_in_its_folder_unpacks_as_a_valid_track(draft: Path) -> None:
    entries = [(f"ai-foundations/{path.name}", path.read_bytes()) for path in sorted(TRACK.iterdir())]
    written = unpack_into(draft, "ai-foundations.zip", make_zip(("ai-foundations/", b""), *entries))
    assert written == sorted(path.name for path in TRACK.iterdir())
    assert validate_path(draft) == []


def test_the_one_top_folder_of_a_zip_is_stripped(draft: Path) -> None:
    assert unpack_into(draft, "t.zip", track_zip(("my-track/images/a.png", b"png"), top="my-track/")) == [
        "01-intro.md",
        "images/a.png",
        "track.toml",
    ]
    assert (draft / "track.toml").read_bytes() == TOML


def test_folders_with_backslashes_are_folders(draft: Path) -> None:
    data = make_zip(("my-track\\track.toml", TOML), ("my-track\\01-intro.md", LESSON), ("my-track\\img\\a.png", b"p"))
    assert unpack_into(draft, "t.zip", data) == ["01-intro.md", "img/a.png", "track.toml"]


def test_macos_and_hidden_files_are_left_out_silently(draft: Path) -> None:
    data = track_zip(("__MACOSX/._01-intro.md", b"\x00\x05"), (".DS_Store", b"\x00\x00"), (".git/config", b"x"),
                     ("sub/.DS_Store", b"\x00"))  # fmt: skip
    assert unpack_into(draft, "t.zip", data) == ["01-intro.md", "track.toml"]


def test_a_lesson_in_a_zip_written_md_in_capitals_is_saved_as_md(draft: Path) -> None:
    assert unpack_into(draft, "t.zip", make_zip(("track.toml", TOML), ("01-intro.MD", LESSON))) == [
        "01-intro.md",
        "track.toml",
    ]


def test_directory_entries_are_skipped(draft: Path) -> None:
    data = track_zip(("empty/", b""), (info("other", stat.S_IFDIR | 0o755), b""))
    assert unpack_into(draft, "t.zip", data) == ["01-intro.md", "track.toml"]
    assert not (draft / "empty").exists() and not (draft / "other").exists()


# ---------------------------------------------------------------- a zipped track: what is refused


def test_a_zip_larger_than_the_limit_is_refused_unread(draft: Path) -> None:
    (problem,) = refused(draft, "t.zip", b"\x00" * (MAX_ZIP_BYTES + 1))
    assert f"at most {MAX_ZIP_BYTES // 2**20} MB" in problem


@pytest.mark.parametrize("data", [b"not a zip", b"", track_zip()[:-30], b"PK\x05\x06" + b"\xff" * 18])
def test_a_damaged_zip_is_refused(draft: Path, data: bytes) -> None:
    assert refused(draft, "t.zip", data) == ["the zip is damaged — zip the folder again"]


def test_a_zip_needing_a_newer_zip_version_than_python_reads_is_refused_as_damaged(draft: Path) -> None:
    data = patch_central(track_zip(), 1, version_needed=64)
    assert refused(draft, "t.zip", data) == ["the zip is damaged — zip the folder again"]


def test_a_zip_whose_data_fails_its_crc_is_refused_as_damaged(draft: Path) -> None:
    data = track_zip(method=zipfile.ZIP_STORED)
    at = data.index(b"Text.")
    assert refused(draft, "t.zip", data[:at] + b"Tent." + data[at + 5 :]) == [
        "the zip is damaged — zip the folder again"
    ]


def test_a_header_that_understates_a_size_cannot_smuggle_more_bytes(draft: Path) -> None:
    data = track_zip(("big.png", os.urandom(MAX_FILE_BYTES + 10)), method=zipfile.ZIP_STORED)
    lying = patch_central(data, 2, file_size=100, compress_size=100)
    assert "the zip is damaged — zip the folder again" in refused(draft, "t.zip", lying)


def test_a_zip_without_track_toml_at_its_top_is_refused(draft: Path) -> None:
    (problem,) = refused(draft, "t.zip", make_zip(("a/track.toml", TOML), ("b/01-intro.md", LESSON)))
    assert problem.startswith("there is no track.toml at the top") and "beside its lessons" in problem


def test_an_encrypted_entry_is_refused(draft: Path) -> None:
    data = patch_central(track_zip(("secret.md", LESSON)), 2, flag_bits=0x1)
    one_problem(draft, "t.zip", data, "secret.md", "password")


def test_more_entries_than_the_limit_are_refused(draft: Path) -> None:
    images = [(f"images/{n}.png", b"p") for n in range(MAX_ZIP_ENTRIES)]
    problem = one_problem(draft, "t.zip", track_zip(*images), f"at most {MAX_ZIP_ENTRIES}")
    assert problem.startswith(f"{MAX_ZIP_ENTRIES + 2} files")


@pytest.mark.parametrize("name", ["/etc/cron.d/x.md", "C:\\Windows\\x.md", "c:x.md", "\\\\server\\share\\x.md"])
def test_an_absolute_path_is_refused(draft: Path, name: str) -> None:
    one_problem(draft, "t.zip", track_zip((name, LESSON)), "absolute path")


@pytest.mark.parametrize("name", ["../x.md", "a/../../x.md", "..\\x.md", "a/..", "./../x.md"])
def test_a_path_climbing_out_of_the_folder_is_refused(draft: Path, name: str) -> None:
    one_problem(draft, "t.zip", track_zip((name, LESSON)), "'..'")


@pytest.mark.parametrize("name", ["evil.md#.png", "#evil.md"])  # zipfile cuts a name at a NUL: "evil.md", ""
def test_a_nul_byte_in_a_name_is_refused(draft: Path, name: str) -> None:
    data = track_zip((name, b"p")).replace(name.encode(), name.replace("#", "\x00").encode())
    one_problem(draft, "t.zip", data, "NUL byte", name.replace("#", "\\x00"))


@pytest.mark.parametrize("names", [("a.md", "A.md"), ("Images/x.png", "images/X.png"), ("\u00e9.md", "e\u0301.md")])
def test_names_that_differ_only_in_case_or_unicode_form_are_refused(draft: Path, names: tuple[str, str]) -> None:
    one_problem(draft, "t.zip", track_zip((names[0], LESSON), (names[1], LESSON)), "the same name as", "keep one")


def test_a_name_given_twice_is_refused(draft: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = track_zip(("02-a.md", LESSON), ("02-a.md", LESSON))
    one_problem(draft, "t.zip", data, "02-a.md: the same name as 02-a.md")


def test_a_file_named_like_a_folder_of_the_upload_is_refused(draft: Path) -> None:
    one_problem(draft, "t.zip", track_zip(("x.png", b"p"), ("x.png/y.png", b"p")), "x.png: a file with the name")


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        (stat.S_IFLNK | 0o777, "a symbolic link"),
        (stat.S_IFCHR | 0o666, "a device"),
        (stat.S_IFBLK | 0o666, "a device"),
        (stat.S_IFIFO | 0o644, "a fifo"),
        (stat.S_IFSOCK | 0o644, "a socket"),
    ],
)
def test_links_and_special_files_are_refused(draft: Path, mode: int, words: str) -> None:
    one_problem(draft, "t.zip", track_zip((info("02-x.md", mode), b"/etc/passwd")), "02-x.md: " + words)


@pytest.mark.parametrize("name", ["run.exe", "inner.zip", "notes.txt", "Track.toml", "x.sh"])
def test_files_a_track_does_not_hold_are_refused(draft: Path, name: str) -> None:
    one_problem(draft, "t.zip", track_zip((name, b"x")), f"{name}: not a file a track holds", ".md")


def test_a_name_with_invisible_characters_is_refused(draft: Path) -> None:
    one_problem(draft, "t.zip", track_zip(("\u202egnp.md", LESSON)), "\\u202egnp.md", "invisible characters")


@pytest.mark.parametrize("name", ["a.md:stream", "x/b:c.png"])
def test_a_name_with_a_colon_is_refused(draft: Path, name: str) -> None:
    one_problem(draft, "t.zip", track_zip((name, LESSON)), name, "':'")


def test_a_name_longer_than_a_file_system_allows_is_refused(draft: Path) -> None:
    one_problem(draft, "t.zip", track_zip(("é" * 128 + ".md", LESSON)), "longer than 255 bytes")


def test_a_path_deeper_than_the_limit_is_refused(draft: Path) -> None:
    one_problem(draft, "t.zip", track_zip(("d/" * 600 + "x.png", b"p")), "longer than 1024 bytes")


def test_a_file_larger_than_the_limit_is_refused(draft: Path) -> None:
    one_problem(draft, "t.zip", track_zip(("big.png", os.urandom(MAX_FILE_BYTES + 1))), "big.png: larger than 1 MB")


def test_files_adding_up_to_more_than_the_limit_are_refused(draft: Path) -> None:
    # each image packs about 50:1 (random bytes between zeros), so the zip stays small and no entry looks like a bomb
    image = b"".join(os.urandom(20) + bytes(980) for _ in range(MAX_FILE_BYTES // 1000))
    count = MAX_UNPACKED_BYTES // len(image) + 1
    one_problem(draft, "t.zip", track_zip(*[(f"i/{n}.png", image) for n in range(count)]), "more than 50 MB")


def test_an_entry_that_unpacks_far_beyond_its_packed_size_is_refused(draft: Path) -> None:
    one_problem(
        draft, "t.zip", track_zip(("zeros.png", bytes(MAX_FILE_BYTES))), "zeros.png", f"{MAX_COMPRESSION_RATIO} times"
    )


def test_an_entry_stating_no_packed_size_is_refused_as_a_bomb(draft: Path) -> None:
    data = patch_central(track_zip(("a.png", os.urandom(10))), 2, compress_size=0)
    one_problem(draft, "t.zip", data, "a.png", "times its packed size")


def test_an_entry_packed_with_bzip2_is_refused_unread(draft: Path) -> None:
    data = make_zip(("track.toml", TOML), ("01-intro.md", LESSON), method=zipfile.ZIP_BZIP2)
    problems = refused(draft, "t.zip", data)
    assert len(problems) == 2 and all("(deflate) compression" in problem for problem in problems)


@pytest.mark.parametrize(("name", "data"), [("track.toml", b"id = '\xe9'\n"), ("q.json", b"[\x00]"), ("2.md", b"\xff")])
def test_text_files_must_be_utf8(draft: Path, name: str, data: bytes) -> None:
    entries = [("track.toml", TOML), ("01-intro.md", LESSON), (name, data)]
    problems = refused(draft, "t.zip", make_zip(*entries[name == "track.toml" :]))
    assert len(problems) == 1 and problems[0].startswith(f"{name}: line 1:")


def test_every_problem_is_listed_up_to_a_cap_with_those_of_the_whole_upload_first(draft: Path) -> None:
    problems = refused(draft, "t.zip", make_zip(*[(f"{n}.exe", b"x") for n in range(MAX_PROBLEMS + 9)]))
    assert len(problems) == MAX_PROBLEMS + 1 and problems[-1] == "and 10 more problems"  # no track.toml, 59 files
    assert problems[0].startswith("there is no track.toml") and problems[1].startswith("0.exe: ")
    assert problems[MAX_PROBLEMS - 1].startswith(f"{MAX_PROBLEMS - 2}.exe: not a file a track holds")


# ---------------------------------------------------------------- writing


def test_an_error_while_writing_leaves_the_draft_as_it_was(draft: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = snapshot(draft.parent)
    renames, rename = [], os.rename

    def failing_rename(source: os.PathLike, target: os.PathLike) -> None:
        renames.append(source)
        if len(renames) == 5:  # the old content moved aside, one new entry moved in
            raise OSError(28, "No space left on device")
        rename(source, target)

    monkeypatch.setattr(upload_module.os, "rename", failing_rename)
    with pytest.raises(OSError, match="No space"):
        unpack_into(draft, "t.zip", track_zip(("images/a.png", b"p")))
    monkeypatch.undo()
    assert len(renames) == 5 + 4  # it failed mid-way, and moved each thing back
    assert snapshot(draft.parent) == before


# ---------------------------------------------------------------- a folder on the host


def source_folder(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "images").mkdir(parents=True)
    (source / "track.toml").write_bytes(TOML)
    (source / "01-intro.md").write_bytes(LESSON)
    (source / "images" / "a.png").write_bytes(b"png")
    (source / ".git").mkdir()
    (source / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return source


def test_a_folder_replaces_the_draft_with_its_allowed_files(draft: Path, tmp_path: Path) -> None:
    written = copy_folder_into(draft, source_folder(tmp_path))
    assert written == ["01-intro.md", "images/a.png", "track.toml"]
    assert snapshot(draft) == {"01-intro.md": LESSON, "images": stat.S_IFDIR, "images/a.png": b"png",
                               "track.toml": TOML}  # fmt: skip


def folder_refused(draft: Path, source: Path) -> list[str]:
    before = snapshot(draft.parent)
    outcome = finished(copy_folder_into, draft, source)
    assert isinstance(outcome, UploadRefused), outcome
    assert snapshot(draft.parent) == before
    return outcome.problems


def test_a_folder_lesson_linking_to_a_private_file_is_refused(draft: Path, tmp_path: Path) -> None:
    source = source_folder(tmp_path)
    (source / "02-keys.md").symlink_to(secret_file(tmp_path))
    (problem,) = folder_refused(draft, source)
    assert problem.startswith("02-keys.md: a symbolic link") and "plain file" in problem
    assert all(SECRET.encode() not in data for data in snapshot(draft).values() if isinstance(data, bytes))


def test_a_fifo_in_a_folder_is_refused_without_waiting_on_it(draft: Path, tmp_path: Path) -> None:
    source = source_folder(tmp_path)
    os.mkfifo(source / "02-pipe.md")
    assert folder_refused(draft, source) == ["02-pipe.md: a fifo (named pipe) — put a plain file there instead"]


def test_a_folder_is_refused_like_a_zip(draft: Path, tmp_path: Path) -> None:
    source = source_folder(tmp_path)
    (source / "big.png").write_bytes(os.urandom(MAX_FILE_BYTES + 1))
    (source / "run.sh").write_text("echo")
    (source / "track.toml").unlink()
    problems = folder_refused(draft, source)
    assert [problem.split(" ")[0] for problem in problems] == ["there", "big.png:", "run.sh:"]


def test_a_path_that_is_not_a_folder_is_refused(draft: Path, tmp_path: Path) -> None:
    (problem,) = folder_refused(draft, tmp_path / "missing")
    assert "is not a folder" in problem and "track.toml" in problem
