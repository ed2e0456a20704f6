"""Small builders for lesson files and tracks used across the tests."""

from __future__ import annotations

from pathlib import Path

import yaml


def question(prompt: str = "What does the student learn from?", correct: int = 1, n: int = 3,
             section: str | None = "teacher-and-student", explanation: str | None = "Because of the teacher.") -> dict:  # fmt: skip
    """A quiz question as front matter data, with option ``correct`` marked right."""
    item: dict = {
        "question": prompt,
        "options": [{"text": f"option {i}", **({"correct": True} if i == correct else {})} for i in range(n)],
    }
    if explanation is not None:
        item["explanation"] = explanation
    if section is not None:
        item["section"] = section
    return item


def front_matter(lesson_id: str = "distillation", **overrides) -> dict:
    """Valid front matter for a lesson, with fields replaced by ``overrides``."""
    data = {
        "id": lesson_id,
        "title": "Model distillation",
        "minutes": 7,
        "premise": "A small model can imitate a big one on some tasks.",
        "key_terms": {"Teacher": "The big model whose outputs are the targets."},
        "practice": ["List three tasks."],
        "quiz": [question()],
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


BODY = """# Model distillation

## Teacher and student

A large teacher model produces outputs. A small student model learns to copy them.

The student is cheaper to run.

## Where the gap shows

The student is close on narrow tasks and far behind on rare questions.
"""


def write_lesson(folder: Path, name: str, front: dict | None = None, body: str = BODY) -> Path:
    """Write a lesson file; ``front=None`` writes plain Markdown with no front matter."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    header = "" if front is None else "---\n" + yaml.safe_dump(front, sort_keys=False) + "---\n"
    path.write_text(header + body, encoding="utf-8")
    return path


def write_track(folder: Path, track_id: str = "demo", order: list[str] | None = None, lessons: int = 1) -> Path:
    """Write a valid track with ``lessons`` lesson files."""
    folder.mkdir(parents=True, exist_ok=True)
    order_line = f"order = {order!r}\n".replace("'", '"') if order is not None else ""
    (folder / "track.toml").write_text(
        f'id = "{track_id}"\ntitle = "Demo"\ndescription = "A demo track."\n{order_line}', encoding="utf-8"
    )
    for n in range(1, lessons + 1):
        write_lesson(folder, f"{n:02d}-lesson.md", front_matter(f"lesson-{n}"))
    return folder


def zip_folder(folder: Path, top: str | None = None) -> bytes:
    """The files of ``folder`` as a zip (under a ``top`` folder inside the zip when given), as a moderator sends it."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                name = path.relative_to(folder).as_posix()
                archive.write(path, f"{top}/{name}" if top else name)
    return buffer.getvalue()
