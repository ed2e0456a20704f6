"""Several bot processes sharing the shards of one Discord bot: the real discord.py client against the fake.

Each process runs the shards its settings name and hears only its servers' events (the fake routes them as
Discord does, by ``(guild_id >> 22) % shard_count``, DMs to shard 0); only the process with shard 0 registers
the slash commands. The settings refuse shard ids that cannot work, saying what to set.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from bot.adapters.discord import serve
from bot.cli import app as tutorbot
from bot.config import DiscordSettings, Settings
from bot.core.answering import Answerer
from bot.core.engine import Admission, Engine
from bot.core.messages import Incoming
from bot.core.prompts import PromptLibrary
from bot.store.progress import SqlProgressStore
from tests.adapters.discord_fake import BOT_ID, GUILD_ID, FakeDiscord, running_fake, shard_of
from tests.adapters.test_discord import ADA, BOB, PASSAGE, REPO, TOKEN, TRACKS, bot
from tests.fakes import FixedRetriever, ScriptedModel

OTHER_GUILD, OTHER_CHANNEL = "1180000000004195004", "1180000000004195010"  # a server on shard 0 of 2
SYNC = rf"/applications/{BOT_ID}/commands$"


class SeenEngine(Engine):
    """An engine that notes the community of every turn it admits: which process handled what."""

    def __init__(self, store: SqlProgressStore) -> None:
        answerer = Answerer(FixedRetriever([PASSAGE]), ScriptedModel(), PromptLibrary(REPO / "prompts"))
        super().__init__(TRACKS, store, answerer)
        self.seen: list[str] = []

    async def admit(self, incoming: Incoming) -> Admission:
        self.seen.append(incoming.community)
        return await super().admit(incoming)


def run(test: Callable[[FakeDiscord], Awaitable[None]], **fake_options: object) -> None:
    """Run an async test body against a fresh fake Discord with a second server, on the other shard of two."""
    assert shard_of(GUILD_ID, 2) == 1 and shard_of(OTHER_GUILD, 2) == 0  # what the tests below rely on

    async def main() -> None:
        async with running_fake(token=TOKEN, other_guilds={OTHER_GUILD: OTHER_CHANNEL}, **fake_options) as fake:
            await test(fake)

    asyncio.run(main())


async def ask_for_progress(fake: FakeDiscord) -> None:
    """Ada mentions the bot in the main server (shard 1), Bob in the other one (shard 0); both get one answer."""
    await fake.say(ADA, f"<@{BOT_ID}> progress", mentions_bot=True)
    await fake.say(BOB, f"<@{BOT_ID}> progress", mentions_bot=True, channel_id=OTHER_CHANNEL)
    await fake.wait_for(lambda: fake.channel_messages(fake.channel_id) and fake.channel_messages(OTHER_CHANNEL))
    await asyncio.sleep(0.2)  # time for a second answer, were any process to give one


# ---------------------------------------------------------------- processes and their shards


def test_a_process_identifies_with_its_own_shard_and_answers_that_shards_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.adapters.discord")
    engine = SeenEngine(SqlProgressStore(tmp_path / "db.sqlite3"))

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine, shard_count=2, shard_ids=[1]):
            await fake.say(ADA, f"<@{BOT_ID}> progress", mentions_bot=True)
            [reply] = await fake.wait_for(lambda: fake.channel_messages(fake.channel_id))
        assert fake.shards_identified == [[1, 2]]
        assert "Your progress" in reply.content and engine.seen == [f"discord:{GUILD_ID}"]
        assert not fake.calls_to(SYNC) and not fake.calls_to(r"/commands")  # shard 0's process registers them
        assert "not registering slash commands: the process with shard 0 does" in caplog.text

    run(body)


def test_two_processes_each_answer_only_their_shards_servers_and_one_registers_the_commands(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    second, first = SeenEngine(SqlProgressStore(database)), SeenEngine(SqlProgressStore(database))

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, second, shard_count=2, shard_ids=[1]):
            assert not fake.calls_to(SYNC)
            async with bot(fake, first, shard_count=2, shard_ids=[0]):
                assert len(fake.calls_to(SYNC, "PUT")) == 1  # the process with shard 0, once
                await ask_for_progress(fake)
                await fake.say(ADA, "help", dm=True)
                await fake.wait_for(lambda: fake.channel_messages(fake.dm_channel_id(ADA)))
                help_here = await fake.settled(await fake.slash(BOB, "help", channel_id=OTHER_CHANNEL))
        assert sorted(fake.shards_identified) == [[0, 2], [1, 2]]  # type: ignore[type-var]
        assert second.seen == [f"discord:{GUILD_ID}"]
        # Shard 0 also gets the DMs.
        assert first.seen == [f"discord:{OTHER_GUILD}", f"discord:{fake.dm_channel_id(ADA)}", f"discord:{OTHER_GUILD}"]
        assert len(fake.channel_messages(fake.channel_id)) == 1 and len(fake.channel_messages(OTHER_CHANNEL)) == 1
        assert len(fake.channel_messages(fake.dm_channel_id(ADA))) == 1 and "How to use" in help_here[0].content
        assert len(fake.calls_to(SYNC, "PUT")) == 1 and not fake.refused  # nothing answered twice

    run(body)


def test_without_shard_settings_one_process_runs_every_shard_discord_recommends(tmp_path: Path) -> None:
    engine = SeenEngine(SqlProgressStore(tmp_path / "db.sqlite3"))

    async def body(fake: FakeDiscord) -> None:
        async with bot(fake, engine):
            await fake.wait_for(lambda: len(fake.shards_identified) == 2, timeout=20)  # discord.py paces identifies
            await ask_for_progress(fake)
        assert fake.shards_identified == [[0, 2], [1, 2]]
        assert sorted(engine.seen) == sorted([f"discord:{GUILD_ID}", f"discord:{OTHER_GUILD}"])
        assert len(fake.calls_to(SYNC, "PUT")) == 1

    run(body, shard_count=2)


# ---------------------------------------------------------------- settings


def test_shard_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTORBOT_DISCORD__SHARD_COUNT", "4")
    monkeypatch.setenv("TUTORBOT_DISCORD__SHARD_IDS", "[2,3]")
    discord = Settings(_env_file=None).discord  # type: ignore[call-arg]
    assert (discord.shard_count, discord.shard_ids) == (4, [2, 3])
    assert (DiscordSettings().shard_count, DiscordSettings().shard_ids) == (None, None)  # discord.py decides


@pytest.mark.parametrize(
    ("count", "ids", "says"),
    [
        (None, [0], "TUTORBOT_DISCORD__SHARD_IDS needs TUTORBOT_DISCORD__SHARD_COUNT"),
        (2, [0, 2], "TUTORBOT_DISCORD__SHARD_IDS has [2]: with TUTORBOT_DISCORD__SHARD_COUNT=2 a shard id is 0 to 1"),
        (2, [-1], "TUTORBOT_DISCORD__SHARD_IDS has [-1]"),
        (3, [1, 1], "TUTORBOT_DISCORD__SHARD_IDS lists [1] more than once"),
        (2, [], "TUTORBOT_DISCORD__SHARD_IDS is empty"),
        (0, None, "greater than or equal to 1"),
    ],
)
def test_shard_settings_that_cannot_work_are_refused_saying_what_to_set(
    count: int | None, ids: list[int] | None, says: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        DiscordSettings(shard_count=count, shard_ids=ids)
    assert says in str(refused.value)


def test_tutorbot_names_the_shard_setting_to_fix_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("TUTORBOT_DISCORD__SHARD_COUNT", "2")
    monkeypatch.setenv("TUTORBOT_DISCORD__SHARD_IDS", "[2]")
    result = CliRunner().invoke(tutorbot, ["run", "discord"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error: TUTORBOT_DISCORD__SHARD_IDS has [2]: with TUTORBOT_DISCORD__SHARD_COUNT=2" in result.output


def test_a_stop_while_shards_are_still_starting_ends_the_start(tmp_path: Path) -> None:
    engine = SeenEngine(SqlProgressStore(tmp_path / "db.sqlite3"))

    async def body(fake: FakeDiscord) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve(engine, DiscordSettings(token=SecretStr(TOKEN)), stop))
        await fake.wait_for(lambda: fake.shards_identified)  # shard 0 is up; shard 1 waits its turn
        stop.set()
        done, _running = await asyncio.wait({task}, timeout=10)  # not wait_for: it would cancel serve
        task.cancel()
        assert task in done and task.exception() is None
        assert fake.shards_identified == [[0, 2]]

    run(body, shard_count=2)
