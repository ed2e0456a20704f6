"""Several bot processes on one real Chroma server (``chroma run``): one ingests or publishes, the others search
and serve what it published; the server keeps the index over a restart, and one that is down is named."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bot.app import build_engine, open_index
from bot.config import Settings
from bot.core.authoring import REFRESH_SECONDS
from bot.core.lessons import VERSION_MARK, version_key
from bot.knowledge.chroma_http import ChromaUnreachable
from bot.knowledge.index import LessonIndex
from bot.knowledge.reader import read_track
from tests.engine_driver import Learner
from tests.helpers import BODY, front_matter, write_lesson, write_track
from tests.integration.chroma_server import ChromaServer
from tests.integration.test_faults import child_env

REPO = Path(__file__).resolve().parent.parent.parent
QUESTION = "What does the student learn from?"


def on_server(settings: Settings, server: ChromaServer) -> Settings:
    """``settings`` pointed at ``server``, as TUTORBOT_RETRIEVAL__CHROMA_HOST and _PORT do."""
    retrieval = settings.retrieval.model_copy(update={"chroma_host": server.host, "chroma_port": server.port})
    return settings.model_copy(update={"retrieval": retrieval})


def tutorbot(settings: Settings, server: ChromaServer, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run ``tutorbot ARGUMENTS`` as another process on the same data dir and Chroma server."""
    done = subprocess.run([sys.executable, "-m", "bot.cli", *arguments], env=child_env(settings, **server.env),
                          cwd=REPO, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, f"tutorbot {' '.join(arguments)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def uploaded_version(tmp_path: Path, title: str, body: str) -> Path:
    folder = write_track(tmp_path / f"upload-{title}", "ml-basics")
    write_lesson(folder, "01-lesson.md", front_matter("lesson-1", title=title, quiz=[]), body)
    return folder


CLIPPING = """# {title}

## Why clip

Gradient clipping caps the norm of the gradient at a threshold called the {word}, so one bad batch cannot
throw the weights far away.
"""


def test_one_process_ingests_and_another_searches_the_server(tmp_path: Path, settings: Settings,
                                                              chroma_server: ChromaServer) -> None:  # fmt: skip
    write_track(settings.knowledge_dir / "host", "host-track")
    tutorbot(settings, chroma_server, "ingest")
    assert not settings.chroma_dir.exists()  # nothing went into an embedded store under the data dir

    elsewhere = settings.model_copy(update={"data_dir": tmp_path / "other-data"})  # a process on another machine
    found = json.loads(tutorbot(elsewhere, chroma_server, "search", QUESTION, "--json").stdout)
    assert found and found[0]["track"] == "host-track" and "student" in found[0]["text"]
    assert not elsewhere.chroma_dir.exists()


def test_a_version_published_by_one_process_is_served_by_another(tmp_path: Path, settings: Settings,
                                                                 chroma_server: ChromaServer) -> None:  # fmt: skip
    write_track(settings.knowledge_dir / "host", "host-track")
    tutorbot(settings, chroma_server, "ingest")
    v1 = uploaded_version(tmp_path, "Clipping", CLIPPING.format(title="Clipping", word="clip value"))
    tutorbot(settings, chroma_server, "publish", str(v1), "--track", "ml-basics")

    here = on_server(settings, chroma_server)  # this process: a bot serving learners on the same database
    index = open_index(here)
    engine = build_engine(here, index=index, answers=False)
    now = [0.0]
    engine.authoring.clock = lambda: now[0]
    learner = Learner(engine)
    learner.say("menu")
    assert engine.tracks["ml-basics"].lessons[0].title == "Clipping"
    question = "What is the threshold called in gradient clipping?"
    assert "clip value" in index.search(question, 1, ["ml-basics"])[0].text

    v2 = uploaded_version(tmp_path, "Clipping, again", CLIPPING.format(title="Clipping, again", word="max norm"))
    tutorbot(settings, chroma_server, "publish", str(v2), "--track", "ml-basics")
    keys = {key for key in index.indexed_tracks() if VERSION_MARK in key}
    assert keys == {version_key("ml-basics", 1), version_key("ml-basics", 2)}  # v1 stays until the next publish
    assert "clip value" in index.search(question, 1, ["ml-basics"])[0].text  # so this process still finds v1

    now[0] += REFRESH_SECONDS / 2
    learner.say("menu")  # the database is looked at once per refresh interval, not every turn
    assert engine.tracks["ml-basics"].lessons[0].title == "Clipping"
    now[0] += REFRESH_SECONDS / 2
    learner.say("menu")
    assert engine.tracks["ml-basics"].lessons[0].title == "Clipping, again"
    hits = index.search(question, 1, ["ml-basics"])
    assert hits and hits[0].track == "ml-basics" and "max norm" in hits[0].text


def test_the_server_keeps_the_index_over_a_restart(settings: Settings, chroma_server: ChromaServer) -> None:
    write_track(settings.knowledge_dir / "host", "host-track")
    tutorbot(settings, chroma_server, "ingest")
    chroma_server.stop()
    chroma_server.start()
    index = open_index(on_server(settings, chroma_server))
    hits = index.search(QUESTION, 1)
    assert hits and hits[0].track == "host-track" and "student" in hits[0].text


def test_a_server_that_is_down_is_named_with_the_settings_to_check(settings: Settings,
                                                                   chroma_server: ChromaServer) -> None:  # fmt: skip
    chroma_server.stop()
    with pytest.raises(ChromaUnreachable, match=rf"{chroma_server.host}:{chroma_server.port}.*CHROMA_HOST"):
        open_index(on_server(settings, chroma_server))
    done = subprocess.run([sys.executable, "-m", "bot.cli", "search", QUESTION],
                          env=child_env(settings, **chroma_server.env), cwd=REPO, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode != 0 and "did not answer its heartbeat" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_a_search_sees_text_another_process_replaced_without_changing_the_count(
    tmp_path: Path, settings: Settings, chroma_server: ChromaServer
) -> None:
    """Regression: each process caches its keyword index by the collection's count, so an edit elsewhere that
    swapped one chunk for another left the cache naming a chunk the server no longer had (a KeyError)."""
    here = on_server(settings, chroma_server)
    writer, reader = LessonIndex.from_settings(here), LessonIndex.from_settings(here)  # two processes' indexes
    folder = write_track(tmp_path / "track", "host-track")
    writer.ingest(read_track(folder).track)  # type: ignore[arg-type]
    assert "copy them" in reader.search(QUESTION, 1, ["host-track"])[0].text

    write_lesson(folder, "01-lesson.md", front_matter("lesson-1"), BODY.replace("copy them", "mimic them"))
    report = writer.ingest(read_track(folder).track)  # type: ignore[arg-type]
    assert (report.embedded, report.removed) == (1, 1)  # the same number of chunks, one of them new
    hits = reader.search(QUESTION, 1, ["host-track"])
    assert hits and "mimic them" in hits[0].text


def test_a_bot_starting_while_another_process_publishes_keeps_the_version_being_indexed(
    tmp_path: Path, settings: Settings, chroma_server: ChromaServer
) -> None:
    """Regression: a start dropped every version key with no live row, so a bot (re)starting on the shared
    server while another process indexed the next version took that version's chunks away before it went live."""
    here = on_server(settings, chroma_server)
    v1 = uploaded_version(tmp_path, "Clipping", CLIPPING.format(title="Clipping", word="clip value"))
    tutorbot(settings, chroma_server, "publish", str(v1), "--track", "ml-basics")
    v2 = uploaded_version(tmp_path, "Clipping, again", CLIPPING.format(title="Clipping, again", word="max norm"))
    publishing = LessonIndex.from_settings(here)  # another process, between indexing v2 and recording it
    publishing.ingest(replace(read_track(v2).track, id=version_key("ml-basics", 2)))  # type: ignore[arg-type]
    publishing.ingest(replace(read_track(v1).track, id=version_key("ml-basics", 0)))  # type: ignore[arg-type]

    build_engine(here, index=open_index(here), answers=False)  # this bot starts now
    keys = {key for key in publishing.indexed_tracks() if VERSION_MARK in key}
    assert keys == {version_key("ml-basics", 1), version_key("ml-basics", 2)}  # v0 was superseded: removed

    tutorbot(settings, chroma_server, "publish", str(v2), "--track", "ml-basics")  # a key already there is reused
    keys = {key for key in publishing.indexed_tracks() if VERSION_MARK in key}
    assert keys == {version_key("ml-basics", 1), version_key("ml-basics", 2)}
    assert "max norm" in publishing.search("What is the threshold called?", 1, [version_key("ml-basics", 2)])[0].text
