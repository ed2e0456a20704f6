"""Moderators' own tracks and their insights: upload, preview, publish, history, rollback, ``insights``.

One flow for every platform: an adapter hands over the file as an ``Upload`` (not yet downloaded); this module
checks who sent it and how big it says it is before downloading, then the ``TrackLibrary`` unpacks it into the
track's draft and checks every file. A draft is never seen by learners: its community's moderators can walk
through it (``tracks preview``), and ``tracks publish`` indexes it as the next version before the engine
switches to it. Only a community's moderators change its tracks, and only their own community's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from bot.core.lessons import Track, slugify, track_name
from bot.core.limits import QuestionLimit
from bot.core.markup import escape
from bot.core.messages import Attachment, Incoming, Reply
from bot.core.outcome import Outcome, note
from bot.core.ports import Draft, InsightsSource, LibraryError, TrackLibrary
from bot.core.shelf import Shelf
from bot.core.uploads import UPLOADS_PER_MINUTE, refusal_before_download


class Stage(Protocol):
    """What authoring needs from the engine it serves: the shelf of tracks, and the screens a preview opens."""

    @property
    def shelf(self) -> Shelf: ...

    def use_shelf(self, shelf: Shelf) -> None: ...

    def offered(self, incoming: Incoming) -> list[Track]: ...

    def show_draft(self, draft: Track, community: str) -> Track: ...

    def show_published(self, track: Track, community: str | None) -> None: ...

    def track_screen(self, incoming: Incoming, track: Track, intro: Reply) -> Outcome: ...


log = logging.getLogger(__name__)

SUBCOMMANDS = ("list", "enable", "disable", "upload", "preview", "publish", "history", "rollback")
PROBLEMS_SHOWN = 12  # more than this, or a long list, comes as a text file too
PROBLEMS_CHARS = 2500
REFRESH_SECONDS = 10.0

HOW_TO_UPLOAD = ("To add or fix lessons, send the file here: one lesson as a .md file, or a whole track (a folder "
                 "with track.toml and its lessons) as a .zip, with the caption '/tracks upload TRACK'. "
                 "On Discord use /tracks upload.")  # fmt: skip


def upload_name(text: str) -> str | None:
    """The track an upload's caption names (``TRACK``, ``tracks upload TRACK`` or ``/tracks upload TRACK``)."""
    words = text.strip().lstrip("/").split()
    if words:
        words[0] = words[0].split("@", 1)[0]  # Telegram writes "/tracks@the_bot upload …" in groups
    if words[:1] and words[0].casefold() in {"tracks", "track"}:
        words = words[1:]
    if words[:1] and words[0].casefold() == "upload":
        words = words[1:]
    return slugify(words[0]) or None if words else None


def counted(n: int, thing: str) -> str:
    """``1 lesson``, ``2 lessons``."""
    return f"{n} {thing}{'' if n == 1 else 's'}"


class Authoring:
    """The moderators' commands over a ``TrackLibrary`` and an ``InsightsSource``, for one engine (its ``Stage``)."""

    def __init__(self, engine: Stage, library: TrackLibrary | None, insights: InsightsSource | None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.engine = engine
        self.library = library
        self.insights_source = insights
        self._uploads = QuestionLimit(UPLOADS_PER_MINUTE, clock)  # per moderator, like questions per learner
        self.clock = clock
        self._stamp = library.stamp() if library is not None else 0
        self._checked = float("-inf")  # the first turn looks

    def refresh(self) -> None:
        """Serve versions published elsewhere (``tutorbot publish``, another bot process), checked every few seconds.

        Runs on a turn's worker thread; between checks it costs one clock read.
        """
        if self.library is None or self.clock() - self._checked < REFRESH_SECONDS:
            return
        self._checked = self.clock()
        stamp = self.library.stamp()
        if stamp != self._stamp:
            self._stamp = stamp
            tracks, owners = self.library.served()
            self.engine.use_shelf(self.engine.shelf.with_tracks(tracks, owners, []))

    # ------------------------------------------------------------ upload (async: the download is awaited)

    async def upload(self, incoming: Incoming) -> Reply:
        """Take an uploaded file into its track's draft, or say why not (nothing is downloaded for a refusal)."""
        upload = incoming.upload
        assert upload is not None
        refused = self._refusal(incoming, "upload lessons")
        if refused is not None:
            return refused
        wait = self._uploads.wait(incoming.learner)
        if wait > 0:
            return Reply(f"That's {UPLOADS_PER_MINUTE} uploads in a minute, as many as I take. Please send it again "
                         f"in {max(1, round(wait))} seconds.", personal=True)  # fmt: skip
        too_big = refusal_before_download(upload.filename, upload.size)
        if too_big is not None:
            return Reply(escape(too_big), personal=True)
        try:
            data = await upload.read()
        except Exception:  # the platform's download failed: its error is logged, not shown
            log.warning("could not download the upload %r", upload.filename, exc_info=True)
            return Reply("I couldn't download that file. Please send it again.", personal=True)
        too_big = refusal_before_download(upload.filename, len(data))  # the platform's stated size may be wrong
        if too_big is not None:
            return Reply(escape(too_big), personal=True)
        assert self.library is not None
        try:
            draft = await asyncio.to_thread(self.library.upload, incoming.community, upload_name(incoming.text or ""),
                                            upload.filename, data)  # fmt: skip
        except LibraryError as error:
            return Reply(escape(str(error)), personal=True)
        return self._draft_reply(draft, uploaded=True)

    def _draft_reply(self, draft: Draft, uploaded: bool) -> Reply:
        name = escape(draft.name or "the track")
        if draft.problems:
            count = len(draft.problems)
            head = (f"I checked the draft of **{name}**: {counted(count, 'problem')}. Nothing learners "
                    "see has changed. Fix them and upload the fixed file:")  # fmt: skip
            shown = "\n".join(f"• {escape(problem)}" for problem in draft.problems[:PROBLEMS_SHOWN])
            files: tuple[Attachment, ...] = ()
            if count > PROBLEMS_SHOWN or len(shown) > PROBLEMS_CHARS:
                shown = "\n".join(f"• {escape(problem)}" for problem in draft.problems[:3])
                shown += f"\n… and {count - 3} more, listed in the attached problems.txt."
                files = (Attachment("problems.txt", ("\n".join(draft.problems) + "\n").encode("utf-8")),)
            return Reply(f"{head}\n{shown}", files=files, personal=True)
        track = draft.track
        assert track is not None
        questions = sum(len(lesson.quiz) for lesson in track.lessons)
        done = "Uploaded. " if uploaded else ""
        return Reply(f"{done}The draft of **{escape(track.title)}** ({name}) is valid: "
                     f"{counted(len(track.lessons), 'lesson')}, {counted(questions, 'quiz question')}. Learners don't see it yet.\nWalk through it: 'tracks preview "
                     f"{name}'. Make it live: 'tracks publish {name}'.", personal=True)  # fmt: skip

    # ------------------------------------------------------------ typed commands (run on a worker thread)

    def command(self, incoming: Incoming, argument: str) -> Outcome | None:
        """``tracks SUBCOMMAND ...`` for the authoring subcommands; None for the engine's own (list, enable…)."""
        words = argument.split()
        sub = words[0].casefold() if words else ""
        if sub not in {"upload", "preview", "publish", "history", "rollback"}:
            return None
        refused = self._refusal(incoming, "change this community's tracks")
        if refused is not None:
            return Outcome([refused])
        if sub == "upload":
            return note(HOW_TO_UPLOAD)
        if len(words) < 2:
            usage = "tracks rollback TRACK VERSION" if sub == "rollback" else f"tracks {sub} TRACK"
            return note(f"Say which track: '{usage}'.")
        name = slugify(words[1])
        try:
            if sub == "preview":
                return self._preview(incoming, name)
            if sub == "publish":
                return self._publish(incoming, name)
            if sub == "history":
                return self._history(incoming, name)
            version = words[2] if len(words) > 2 else ""
            if not (version.removeprefix("v").isascii() and version.removeprefix("v").isdigit()):
                return note(f"Say which version to bring back: 'tracks rollback {name} 2' ('tracks history {name}' "
                            "lists them).")  # fmt: skip
            return self._rollback(incoming, name, int(version.removeprefix("v")))
        except LibraryError as error:
            return note(escape(str(error)))

    def _refusal(self, incoming: Incoming, what: str) -> Reply | None:
        if self.library is None:
            return Reply("This tutor takes no uploads: its host has not set up a place to keep them.", personal=True)
        if incoming.is_direct:
            return Reply(f"Tracks belong to a server or group: to {what}, use this command there, as one of its "
                         "moderators.", personal=True)  # fmt: skip
        if not incoming.is_moderator:
            return Reply(f"Only this community's moderators can {what}. Ask one of them.", personal=True)
        return None

    def _preview(self, incoming: Incoming, name: str) -> Outcome:
        assert self.library is not None
        draft = self.library.draft(incoming.community, name)
        if draft.track is None:
            return Outcome([self._draft_reply(draft, uploaded=False)])
        shown = self.engine.show_draft(draft.track, incoming.community)
        intro = Reply(f"Preview of the draft of **{escape(shown.title)}**: only this community's moderators can open "
                      f"it. Quizzes work; questions are answered once it is published. 'tracks publish {name}' makes "
                      "it live.", personal=True)  # fmt: skip
        return self.engine.track_screen(incoming, shown, intro)

    def _publish(self, incoming: Incoming, name: str) -> Outcome:
        assert self.library is not None
        track, version = self.library.publish(incoming.community, name, self._who(incoming))
        self.engine.show_published(track, incoming.community)
        return Outcome([Reply(f"Published **{escape(track.title)}** ({escape(name)}) as version {version}. Learners "
                              "here get it now; anyone in one of its lessons keeps their place. 'tracks history "
                              f"{escape(name)}' lists the versions.")])  # fmt: skip

    def _rollback(self, incoming: Incoming, name: str, version: int) -> Outcome:
        assert self.library is not None
        track, new = self.library.rollback(incoming.community, name, version, self._who(incoming))
        self.engine.show_published(track, incoming.community)
        return Outcome([Reply(f"Version {version} of **{escape(track.title)}** is live again, as version {new}. "
                              "Learners here get it now.")])  # fmt: skip

    def _history(self, incoming: Incoming, name: str) -> Outcome:
        assert self.library is not None
        versions = self.library.history(incoming.community, name)
        if not versions:
            return note(f"“{escape(name)}” has no published version here yet. {HOW_TO_UPLOAD}")
        lines = []
        for v in versions:
            again = f", version {v.restored_from} brought back" if v.restored_from else ""
            when = datetime.fromtimestamp(v.published_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
            lines.append(f"• **v{v.version}** {escape(v.title)}: by {escape(v.published_by)}, {when}{again}")
        return Outcome([Reply(f"**Versions of {escape(name)}**, newest first (the first is live):\n" + "\n".join(lines)
                              + f"\n\n'tracks rollback {escape(name)} VERSION' brings one back.", personal=True)])  # fmt: skip

    @staticmethod
    def _who(incoming: Incoming) -> str:
        return incoming.display_name or incoming.learner

    # ------------------------------------------------------------ insights

    def insights(self, incoming: Incoming, argument: str, current: str | None) -> Outcome:
        """``insights [TRACK]``: how this community's learners do in a track, for its moderators."""
        if incoming.is_direct or not incoming.is_moderator:
            return note("Insights are for a community's moderators: use 'insights' in your server or group.")
        if self.insights_source is None:
            return note("Insights aren't available on this tutor.")
        offered = self.engine.offered(incoming)
        track = self._chosen(offered, argument, current)
        if track is None:
            names = ", ".join(escape(track_name(t.id)) for t in offered) or "none"
            return note(f"Which track? 'insights TRACK', one of: {names}.")
        text, files = self.insights_source.insights(incoming.community, track)
        return Outcome([Reply(text, files=tuple(files), personal=True)])

    @staticmethod
    def _chosen(offered: list[Track], argument: str, current: str | None) -> Track | None:
        wanted = argument.strip().casefold()
        if wanted:
            return next((t for t in offered if wanted in {t.id, track_name(t.id), t.title.casefold()}), None)
        if len(offered) == 1:
            return offered[0]
        return next((t for t in offered if t.id == current), None)
