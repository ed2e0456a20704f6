"""Rebuild the held-out answer-eval courses from their lesson files, which are third-party text kept out of the repo.

``bench/heldout/answers/sources.yaml`` names each lesson's repository, path, commit and sha256. Fetch each file
at that commit (for example with a code-search tool's file reader) and save it, unchanged, as
``SRC/<course>/<lesson id>.md``; the default SRC is ``../heldout-src`` beside the repository. This script checks
every file against its sha256 and builds one track folder per course (lesson files copied byte for byte, so
the items' line numbers hold).

    python bench/heldout_course.py            # check the files and print where the tracks were built
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core.lessons import Track  # noqa: E402
from bot.knowledge.reader import read_track  # noqa: E402

ANSWERS = ROOT / "bench" / "heldout" / "answers"
DEFAULT_SRC = ROOT.parent / "heldout-src"


class MissingCourse(RuntimeError):
    """A held-out lesson file is absent or not the one the items were written against."""


def sources() -> list[dict]:
    """The courses of the held-out answer sets, with their lessons' provenance."""
    return yaml.safe_load((ANSWERS / "sources.yaml").read_text(encoding="utf-8"))


def build_course(course: dict, src: Path, dest: Path) -> Track:
    """Check one course's lesson files against their sha256 and build its track in ``dest``."""
    folder = dest / course["course"]
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for number, lesson in enumerate(course["lessons"], start=1):
        path = src / course["course"] / f"{lesson['id']}.md"
        if not path.is_file():
            raise MissingCourse(f"{path} is missing: fetch {lesson['repo']} {lesson['path']} at {lesson['commit']}")
        if hashlib.sha256(path.read_bytes()).hexdigest() != lesson["sha256"]:
            raise MissingCourse(f"{path} differs from {lesson['repo']} {lesson['path']} at {lesson['commit']} (sha256)")
        shutil.copyfile(path, folder / f"{number:02d}-{lesson['id']}.md")
    title = course["track_title"].replace('"', "'")
    (folder / "track.toml").write_text(
        f'id = "{course["course"]}"\ntitle = "{title}"\ndescription = "held-out eval course"\n'
    )
    result = read_track(folder)
    empty = [problem for problem in result.problems if "is empty" in problem.message]
    for problem in empty:  # a heading with no text (a quiz link): blanked, so every other line keeps its number
        lines = problem.path.read_text(encoding="utf-8").split("\n")
        lines[problem.line - 1] = ""
        problem.path.write_text("\n".join(lines), encoding="utf-8")
    result = read_track(folder) if empty else result
    if result.track is None or result.problems:
        raise MissingCourse(f"{folder} does not read as a track: {result.problems[:3]}")
    return result.track


def build_all(src: Path, dest: Path) -> list[Track]:
    """Every held-out course as a track (raises MissingCourse when a file is absent or changed)."""
    return [build_course(course, src, dest) for course in sources()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=DEFAULT_SRC, help="folder holding <course>/<lesson>.md")
    parser.add_argument("--dest", type=Path, default=Path("/tmp/tutorbot-heldout"), help="where to build the tracks")
    args = parser.parse_args()
    for track in build_all(args.src, args.dest):
        units = sum(len(s.units) for lesson in track.lessons for s in lesson.sections)
        print(f"{track.id}: {len(track.lessons)} lessons, {units} units in {args.dest / track.id}")


if __name__ == "__main__":
    main()
