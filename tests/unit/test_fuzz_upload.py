"""Property tests: any upload, however hostile (names climbing out, absolute or with backslashes, links and
devices, lying sizes, bombs, damaged or random bytes), is either written inside the draft as plain files or refused
with UploadRefused, and a refusal leaves the draft and everything beside it as they were; a well-formed track is
always taken, whatever its names."""

from __future__ import annotations

import io
import stat
import struct
import tempfile
import unicodedata
import warnings
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, event, given
from hypothesis import strategies as st

from bot.core.uploads import MAX_FILE_BYTES, MAX_UNPACKED_BYTES
from bot.knowledge.upload import MAX_PROBLEMS, UploadRefused, unpack_into
from tests.strategies import file_bytes, file_names, fuzz_settings, lesson_text, weighted
from tests.unit.test_upload import LESSON, TOML, snapshot, track_zip

HOSTILE_NAMES = ["track.toml", "01-intro.md", "../evil.md", "a/../../evil.md", "..\\evil.md", "/etc/cron.d/evil",
                 "C:\\Windows\\evil.md", "\\\\server\\share\\evil.md", "c:evil.md", "a.md:stream", "./track.toml",
                 "a//b.md", "my-track/", "my-track/track.toml", "my-track/01.md", "__MACOSX/._01.md", ".DS_Store",
                 ".git/config", "x.png", "X.PNG", "Track.toml", "inner.zip", "caf\u00e9.md", "cafe\u0301.md",
                 "\u202egnp.md", "a\x01b.md", "a\nb.md", "é" * 130 + ".md", "d/" * 600 + "x.png", "..", ".", "",
                 "/", "\\", "x.png/y.png"]  # fmt: skip
PIECES = ["..", ".", "", "a", "my-track", "__MACOSX", ".git", "C:", "é", "\\", "images", "track.toml"]
MODES = [0, 0, stat.S_IFREG | 0o644, stat.S_IFLNK | 0o777, stat.S_IFDIR | 0o755, stat.S_IFCHR | 0o666,
         stat.S_IFBLK | 0o666, stat.S_IFIFO | 0o644, stat.S_IFSOCK | 0o644]  # fmt: skip
METHODS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
TAME_NAMES = ["02-next.md", "images/a.png", "quiz.json", "__MACOSX/._02-next.md", ".DS_Store", "images/", "b.md"]
BIG = [0, 1, 99, 2**16, MAX_FILE_BYTES, MAX_FILE_BYTES + 1, MAX_UNPACKED_BYTES, 2**31, 2**32 - 1]


def entry_names() -> st.SearchStrategy[str]:
    """Entry names a hostile or careless zip tool writes."""
    built = st.builds(
        lambda pieces, name, suffix: "/".join([*pieces, name + suffix]),
        st.lists(st.sampled_from(PIECES), max_size=4),
        file_names(),
        st.sampled_from([".md", ".md", ".MD", ".png", ".png", ".json", ".toml", ".zip", ".exe", ""]),
    )
    return weighted((2, st.sampled_from(HOSTILE_NAMES)), (2, built), (1, file_names()))


def entry_data() -> st.SearchStrategy[bytes]:
    """What an entry holds: a lesson, TOML, random bytes, text as people save it, a nested zip, or bomb-like runs."""
    return st.one_of(
        st.sampled_from([LESSON, TOML, b"", b"\xef\xbb\xbf" + LESSON, b"\x00"]),
        st.binary(max_size=2000),
        file_bytes(lesson_text()),
        st.just(track_zip()),
        st.builds(lambda byte, size: byte * size, st.sampled_from([b"\x00", b"a"]), st.integers(0, 120_000)),
    )


@st.composite
def hostile_zips(draw: st.DrawFn) -> bytes:
    """A zip of crafted entries, often beside a valid track: each entry hostile in some ways (name, file type,
    packing, content) and plain in the others, so a single trick can reach the writing; then sometimes damaged:
    cut short, bytes flipped, sizes, flags or version in the central directory rewritten, NUL bytes put into names."""
    modes = weighted((4, st.just(0)), (2, st.sampled_from(MODES)), (1, st.integers(0, 0xFFFF)))
    methods = weighted((4, st.just(zipfile.ZIP_DEFLATED)), (1, st.sampled_from(METHODS)))
    contents = weighted((3, st.sampled_from([LESSON, b"png"])), (2, entry_data()))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w") as archive:
        warnings.simplefilter("ignore")  # duplicate names are the point
        if draw(st.integers(0, 3)):
            top = draw(st.sampled_from(["", "", "", "my-track/", "a/b/"]))
            archive.writestr(f"{top}track.toml", TOML)
            archive.writestr(f"{top}01-intro.md", LESSON)
        names = weighted((3, entry_names()), (1, st.sampled_from(TAME_NAMES)))
        for name in draw(st.lists(names, max_size=draw(st.sampled_from([1, 1, 1, 2, 5])))):
            info = zipfile.ZipInfo(name)
            info.external_attr = draw(modes) << 16
            info.create_system = draw(st.sampled_from([0, 3]))
            info.compress_type = draw(methods)
            archive.writestr(info, draw(contents))
    data = bytearray(buffer.getvalue())
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2]))):
        damage = draw(st.sampled_from(["cut", "flip", "sizes", "flags", "version", "nul", "garbage"]))
        central = [at for at in range(len(data) - 28) if data[at : at + 4] == b"PK\x01\x02"]
        if damage == "cut":
            del data[draw(st.integers(0, len(data))) :]
        elif damage == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            data[at] = draw(st.integers(0, 255))
        elif damage in ("sizes", "flags", "version") and central:
            at = draw(st.sampled_from(central))
            if damage == "sizes":
                struct.pack_into("<II", data, at + 20, draw(st.sampled_from(BIG)), draw(st.sampled_from(BIG)))
            else:  # the flags, or the zip version needed to read the entry
                struct.pack_into("<H", data, at + (8 if damage == "flags" else 6), draw(st.integers(0, 0xFFFF)))
        elif damage == "nul":
            data = bytearray(bytes(data).replace(b"\x01", b"\x00"))  # "a\x01b.md" becomes a name with a NUL
        elif damage == "garbage":
            data[draw(st.sampled_from([0, len(data)])) : 0] = draw(st.binary(min_size=1, max_size=64))
    return bytes(data)


def uploads() -> st.SearchStrategy[bytes]:
    """Hostile zips, and bytes that are no zip at all."""
    return weighted((6, hostile_zips()), (1, st.binary(max_size=500)), (1, st.just(b"PK\x05\x06" + b"\xff" * 18)))


def make_draft(root: Path) -> Path:
    """A draft holding a track, beside a neighbour and a private file no upload may touch."""
    draft = root / "drafts" / "demo"
    (draft / "images").mkdir(parents=True)
    (draft / "track.toml").write_bytes(TOML)
    (draft / "01-intro.md").write_bytes(LESSON)
    (draft / "images" / "a.png").write_bytes(b"png")
    (root / "drafts" / "neighbour.md").write_text("not yours")
    (root / "secret").write_text("private")
    return draft


def outside(root: Path) -> dict[str, object]:
    """Everything under ``root`` but the draft."""
    return {path: data for path, data in snapshot(root).items() if not path.startswith("drafts/demo")}


def check_written(draft: Path, written: list[str]) -> None:
    """Every path written is a plain file inside the draft, and the draft holds nothing else (no leftovers)."""
    files = {path for path, data in snapshot(draft).items() if data != stat.S_IFDIR}
    assert files >= set(written)
    for relative in written:
        path = draft / relative
        assert path.resolve().is_relative_to(draft.resolve()) and ".." not in Path(relative).parts
        assert stat.S_ISREG(path.lstat().st_mode) and path.stat().st_size <= MAX_FILE_BYTES
    assert not any(name.startswith(".") for name in snapshot(draft)), snapshot(draft).keys()


def assert_refusal_is_clear(error: UploadRefused) -> None:
    assert 0 < len(error.problems) <= MAX_PROBLEMS + 1
    for problem in error.problems:  # one line each, that a chat can show
        assert problem.strip() and not any(unicodedata.category(ch) in {"Cc", "Cs"} for ch in problem), repr(problem)


@fuzz_settings(50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=uploads(), filename=st.sampled_from(["t.zip", "T.ZIP", "../up/t.zip", "C:\\t.zip"]))
def test_any_zip_is_unpacked_inside_the_draft_or_refused_changing_nothing(data: bytes, filename: str) -> None:
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        draft = make_draft(root)
        before, before_outside = snapshot(root), outside(root)
        try:
            written = unpack_into(draft, filename, data)
        except UploadRefused as error:
            event("refused")
            assert_refusal_is_clear(error)
            assert snapshot(root) == before
            return
        event("unpacked")
        assert (
            "track.toml" in written and sum(len((draft / path).read_bytes()) for path in written) <= MAX_UNPACKED_BYTES
        )
        check_written(draft, written)
        assert {path for path, kind in snapshot(draft).items() if kind != stat.S_IFDIR} == set(written)
        assert outside(root) == before_outside


def plain_names() -> st.SearchStrategy[str]:
    """File names a careful author may use: any printable text, unicode too, that is no hidden name."""

    def plain(name: str) -> str:
        kept = "".join(ch for ch in name if ch != ":" and unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp"})
        return kept.lstrip(".").encode()[:240].decode(errors="ignore") or "x"

    return file_names().map(plain)


@fuzz_settings(25, deadline=None)
@given(
    names=st.lists(
        plain_names(), min_size=1, max_size=5, unique_by=lambda n: unicodedata.normalize("NFC", n).casefold()
    ),
    top=st.sampled_from(["", "my-track/", "Ünï track/"]),
    method=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
    noise=st.booleans(),
)
def test_a_well_formed_track_is_taken_whole_whatever_its_names(
    names: list[str], top: str, method: int, noise: bool
) -> None:
    files = {"track.toml": TOML} | {f"{name}{'.md' if n % 2 else '.png'}": LESSON for n, name in enumerate(names)}
    extra = [("__MACOSX/._x.md", b"\x00"), (f"{top}.DS_Store", b"\x00")] if noise else []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in [*((top + path, data) for path, data in files.items()), *extra]:
            archive.writestr(name, data)
    with tempfile.TemporaryDirectory() as folder:
        draft = make_draft(Path(folder))
        written = unpack_into(draft, "track.zip", buffer.getvalue())
        expected = {unicodedata.normalize("NFC", path): data for path, data in files.items()}
        assert written == sorted(expected)
        assert {path: (draft / path).read_bytes() for path in written} == expected
        check_written(draft, written)


@fuzz_settings(40, deadline=None)
@given(
    filename=st.one_of(entry_names(), file_names()).map(lambda name: name + ".md") | st.sampled_from(HOSTILE_NAMES),
    data=file_bytes(lesson_text()) | st.binary(max_size=300),
)
def test_any_lesson_upload_writes_one_file_in_the_draft_or_is_refused(filename: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        draft = make_draft(root)
        before, before_outside = snapshot(root), outside(root)
        try:
            written = unpack_into(draft, filename, data)
        except UploadRefused as error:
            event("refused")
            assert_refusal_is_clear(error)
            assert snapshot(root) == before
            return
        event("written")
        assert len(written) == 1 and "/" not in written[0] and written[0].endswith(".md")
        assert (draft / written[0]).read_bytes() == data.removeprefix(b"\xef\xbb\xbf")
        check_written(draft, written)
        assert outside(root) == before_outside
