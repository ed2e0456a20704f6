"""Moderators publish a track from the chat, end to end through the real clients and the fake platforms.

The engine is the real one with the real library (folders and SQLite); only the model is scripted. A group
admin on Telegram (a server moderator on Discord) uploads a broken lesson and reads the file:line problems,
uploads the fixed track, previews, publishes, and a learner there sees the new version; a rollback brings the
old one back; a learner's own upload is refused and never downloaded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.core.engine import Engine
from bot.knowledge.library import LibraryFiles
from bot.store.progress import SqlProgressStore
from bot.store.track_versions import SqlTrackVersions
from tests.adapters.discord_fake import running_fake
from tests.adapters.telegram_fake import Chat, FakeBotApi, User
from tests.adapters.test_discord import BOB, MOD, TOKEN, TRACKS, bot
from tests.adapters.test_telegram import running
from tests.helpers import front_matter, write_lesson, write_track, zip_folder

GROUP = Chat(-100900, "supergroup", "Study group")
GRACE, LINUS = User(301, "Grace"), User(302, "Linus")


def library_engine(root: Path) -> type[Engine]:
    """An Engine class whose instances keep uploaded tracks under ``root`` (the test harness builds the engine)."""

    class LibraryEngine(Engine):
        def __init__(self, tracks: Any, store: SqlProgressStore, answerer: Any) -> None:
            super().__init__(tracks, store, answerer, library=LibraryFiles(root, SqlTrackVersions(store._db)))

    return LibraryEngine


def course(folder: Path, title: str, broken: bool = False) -> bytes:
    write_track(folder, "ml-basics", lessons=0)
    quiz = [{"question": "Which?", "options": [{"text": "a"}, {"text": "b"}]}] if broken else None
    write_lesson(folder, "01-lesson.md", front_matter("lesson-1", title=title, **({"quiz": quiz} if quiz else {})))
    return zip_folder(folder)


async def reply_to(fake: FakeBotApi, user: User, text: str, expect: int = 1) -> str:
    before = len(fake.shown(GROUP.id))
    fake.say(user, text, GROUP)
    await fake.until(lambda: len(fake.shown(GROUP.id)) >= before + expect, what=f"a reply to {text!r}")
    return "\n".join(m.plain for m in fake.shown(GROUP.id)[before:])


async def upload(fake: FakeBotApi, user: User, data: bytes, caption: str) -> str:
    before = len(fake.shown(GROUP.id))
    fake.send_document(user, data, "ml-basics.zip", caption, GROUP)
    await fake.until(lambda: len(fake.shown(GROUP.id)) > before, what="a reply to the upload")
    return "\n".join(m.plain for m in fake.shown(GROUP.id)[before:])


def test_a_telegram_group_admin_uploads_checks_previews_publishes_and_rolls_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running(tmp_path, engine_class=library_engine(tmp_path / "library")) as bot:
            fake = bot.fake
            fake.admins.add((GROUP.id, GRACE.id))
            shown = await upload(fake, GRACE, course(tmp_path / "bad", "Lesson one", broken=True),
                                 "/tracks upload ml-basics")  # fmt: skip
            assert "01-lesson.md:" in shown and "1 problem" in shown and "correct" in shown

            downloads = len(fake.downloads)
            shown = await upload(fake, LINUS, course(tmp_path / "linus", "Mine"), "/tracks upload ml-basics")
            assert "Only this community's moderators" in shown and len(fake.downloads) == downloads

            shown = await upload(fake, GRACE, course(tmp_path / "v1", "Lesson one"), "/tracks upload")
            assert "is valid: 1 lesson," in shown
            shown = await reply_to(fake, GRACE, "/tracks preview ml-basics", expect=2)
            assert "Preview of the draft" in shown and "Lesson one" in shown
            assert "ml-basics" not in await reply_to(fake, LINUS, "/tracks")
            assert "as version 1" in await reply_to(fake, GRACE, "/tracks publish ml-basics")
            assert "Lesson one" in await reply_to(fake, LINUS, "/track ml-basics")

            await upload(fake, GRACE, course(tmp_path / "v2", "Lesson one, revised"), "/tracks upload ml-basics")
            assert "as version 2" in await reply_to(fake, GRACE, "/tracks publish ml-basics")
            assert "Lesson one, revised" in await reply_to(fake, LINUS, "/track ml-basics")
            history = await reply_to(fake, GRACE, "/tracks history ml-basics")
            assert "v2" in history and "v1" in history and "Grace" in history
            assert "as version 3" in await reply_to(fake, GRACE, "/tracks rollback ml-basics 1")
            shown = await reply_to(fake, LINUS, "/track ml-basics")
            assert "Lesson one" in shown and "revised" not in shown

    asyncio.run(scenario())


def test_a_discord_moderator_uploads_checks_previews_publishes_and_rolls_back(tmp_path: Path) -> None:
    async def body() -> None:
        store = SqlProgressStore(tmp_path / "db.sqlite3")
        engine = library_engine(tmp_path / "library")(TRACKS, store, None)
        try:
            async with running_fake(token=TOKEN) as fake, bot(fake, engine):

                async def slash(user: Any, name: str, options: dict | None = None, sub: str | None = None) -> str:
                    done = await fake.slash(user, name, options or {}, sub=sub)
                    return "\n".join(message.content for message in await fake.settled(done))

                broken = fake.attachment("ml-basics.zip", course(tmp_path / "bad", "Lesson one", broken=True))
                shown = await slash(MOD, "tracks", {"file": broken, "track": "ml-basics"}, "upload")
                assert "01-lesson.md:" in shown and "1 problem" in shown

                downloads = len(fake.downloads)
                mine = fake.attachment("ml-basics.zip", course(tmp_path / "bob", "Mine"))
                shown = await slash(BOB, "tracks", {"file": mine, "track": "ml-basics"}, "upload")
                assert "Only this community's moderators" in shown and len(fake.downloads) == downloads

                fixed = fake.attachment("ml-basics.zip", course(tmp_path / "v1", "Lesson one"))
                assert "is valid" in await slash(MOD, "tracks", {"file": fixed}, "upload")
                assert "Preview of the draft" in await slash(MOD, "tracks", {"track": "ml-basics"}, "preview")
                assert "as version 1" in await slash(MOD, "tracks", {"track": "ml-basics"}, "publish")
                assert "Lesson one" in await slash(BOB, "learn", {"track": "ml-basics"})

                revised = fake.attachment("ml-basics.zip", course(tmp_path / "v2", "Lesson one, revised"))
                await slash(MOD, "tracks", {"file": revised, "track": "ml-basics"}, "upload")
                assert "as version 2" in await slash(MOD, "tracks", {"track": "ml-basics"}, "publish")
                assert "revised" in await slash(BOB, "learn", {"track": "ml-basics"})
                shown = await slash(MOD, "tracks", {"track": "ml-basics", "version": 1}, "rollback")
                assert "as version 3" in shown
                shown = await slash(BOB, "learn", {"track": "ml-basics"})
                assert "Lesson one" in shown and "revised" not in shown
        finally:
            store.close()

    asyncio.run(body())
