"""The Telegram adapter: Bot API updates in as ``Incoming`` turns, ``Reply`` objects out as messages.

Long polling by default (one process), a webhook when ``webhook_url`` is set: then each update is stored in the
shared inbox before its call is answered, and ``inbox_worker`` handles each chat's updates in order on whichever
of the processes behind the webhook's endpoint holds the chat. In a private chat every message is a turn; in a
group only what is addressed to the bot (a command, a mention, a reply to the bot). A document is a turn with an
upload, its caption the text, downloaded only once the engine accepts it; a reply's files follow its text as
photos (charts) and documents. Buttons become inline
keyboards (callback data = ``tb:`` + the engine's action id), quiz questions native quiz polls whose answers come
back as ``poll_answer`` updates, a model answer one message edited as it grows. Sends are throttled overall and
per group by python-telegram-bot's AIORateLimiter, which also waits out a 429 and retries; the per-minute limit of
each learner's model questions is the engine's.

The package: ``formatting`` (reply Markdown as Telegram HTML messages), ``render`` (messages, keyboards and
polls as Telegram sends them), ``translate`` (updates to turns), ``files`` (a moderator's document in as an
upload, a reply's charts and files out), ``limits`` (send rates, bounded memory), ``tutor`` (the update
handlers), ``inbox_worker`` (webhook workers' ordered handling), and here the plumbing: the Application, long polling or the webhook server, and a graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from telegram import BotCommand, BotCommandScopeAllChatAdministrators, Update
from telegram.error import BadRequest, Conflict, InvalidToken, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, ExtBot
from telegram.request import HTTPXRequest

from bot.adapters import AdapterError
from bot.adapters.telegram.inbox_worker import InboxWorker
from bot.adapters.telegram.limits import SendLimits
from bot.adapters.telegram.translate import ALLOWED_UPDATES, PLATFORM, chat_key
from bot.adapters.telegram.tutor import TelegramTutor
from bot.config import TelegramSettings
from bot.core.engine import Engine
from bot.core.ports import StoreUnavailable
from bot.core.reminders import ReminderScheduler
from bot.logs import SecretFilter
from bot.store.inbox import Inbox

log = logging.getLogger(__name__)

COMMANDS = (
    ("start", "Tracks here and where you left off"),
    ("tracks", "The tracks you can take here"),
    ("lesson", "Open a lesson: /lesson ID (alone: the lessons of your track)"),
    ("next", "The next part of your lesson"),
    ("quiz", "Take the quiz of your lesson"),
    ("ask", "Ask about the lessons: /ask QUESTION"),
    ("progress", "Lessons done, quiz scores, streak"),
    ("review", "Quiz questions you missed, again"),
    ("term", "A key term's meaning: /term NAME"),
    ("remind", "Reminders: /remind on, /remind at 19:00, /remind off"),
    ("tz", "Your timezone, for reminders: /tz Europe/Berlin"),
    ("leaderboard", "This week's top learners here; /leaderboard on to appear"),
    ("help", "What I understand"),
)
# Group admins (the moderators) see these too. An upload is a document sent with the caption /tracks upload TRACK.
MODERATOR_COMMANDS = (
    ("tracks", "Tracks here; upload, preview, publish, history, rollback TRACK"),
    ("insights", "How learners are doing here, with charts: /insights [TRACK]"),
)
TOKEN_REJECTED = "Telegram rejected the bot token: check TUTORBOT_TELEGRAM__TOKEN (from @BotFather)"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
POLL_SECONDS = 30  # long-polling timeout of getUpdates
CONCURRENT_UPDATES = 256  # turns handled at once; the engine keeps each learner's turns in order
TOKEN_LOGGERS = ("httpx", "telegram.Bot", "telegram.ext.ExtBot")  # they log Bot API URLs, and the token is in each


def build_application(settings: TelegramSettings, limits: SendLimits,
                      requests: tuple[HTTPXRequest, HTTPXRequest]) -> Application:  # fmt: skip
    """The python-telegram-bot Application: its rate limiter set to our limits, concurrent turns, the Bot API server if overridden."""
    assert settings.token is not None
    builder = (
        ApplicationBuilder()
        .token(settings.token.get_secret_value())
        .request(requests[0])
        .get_updates_request(requests[1])
        .rate_limiter(limits.rate_limiter())
        .concurrent_updates(CONCURRENT_UPDATES)
    )
    if settings.base_url:
        base = settings.base_url.rstrip("/")
        builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    if settings.webhook_url:
        builder = builder.updater(None)  # webhook calls are received by our own small server (see _receive_webhooks)
    return builder.build()


@contextlib.contextmanager
def token_masked(token: str) -> Iterator[None]:
    """Mask the token in every record of the loggers that write Bot API URLs, whatever the logging set-up."""
    mask = SecretFilter([token])
    loggers = [logging.getLogger(name) for name in TOKEN_LOGGERS]
    for logger in loggers:
        logger.addFilter(mask)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(mask)


async def serve(engine: Engine, settings: TelegramSettings, stop: asyncio.Event, *,
                limits: SendLimits | None = None, reminders: ReminderScheduler | None = None,
                inbox: Inbox | None = None) -> None:  # fmt: skip
    """Serve learners on Telegram until ``stop`` is set, then finish the turns in flight and shut down.

    ``limits`` overrides the send limits (tests relax them); ``reminders`` gets a sender for Telegram learners
    once the bot is signed in; ``inbox`` (required in webhook mode) is the one the webhook workers share.
    Raises ``AdapterError`` when Telegram refuses to start.
    """
    if settings.token is None:
        raise AdapterError("No Telegram bot token: set TUTORBOT_TELEGRAM__TOKEN (from @BotFather).")
    if settings.webhook_url and inbox is None:
        raise ValueError("webhook mode needs the inbox its workers share")
    with token_masked(settings.token.get_secret_value()):
        requests = (HTTPXRequest(), HTTPXRequest(connection_pool_size=1))
        application = build_application(settings, limits or SendLimits(), requests)
        tutor = TelegramTutor(engine, settings, inbox=inbox)
        engine.limit_questions(PLATFORM, settings.questions_per_minute)
        tutor.install(application)
        await _initialize(application, requests)
        try:
            await _announce_commands(application.bot)
            await application.start()
            if reminders is not None:
                reminders.add_sender(PLATFORM, functools.partial(tutor.send_reminder, application.bot))
            if inbox is not None:
                await _receive_webhooks(application, settings, inbox, stop)
            else:
                await _poll(application, stop)
        finally:
            await _shut_down(application)


async def _initialize(application: Application, requests: tuple[HTTPXRequest, HTTPXRequest]) -> None:
    """Initialize (getMe checks the token); a refusal becomes an AdapterError that never carries the token."""
    problem = None
    try:
        await application.initialize()
    except InvalidToken:  # its message quotes the token: it is neither kept nor chained
        problem = TOKEN_REJECTED
    except NetworkError as error:
        problem = (f"Could not reach the Telegram Bot API ({type(error).__name__}): check the network, or "
                   "TUTORBOT_TELEGRAM__BASE_URL if you set it.")  # fmt: skip
    if problem is not None:
        await asyncio.gather(*(request.shutdown() for request in requests))
        raise AdapterError(problem)
    log.info("Telegram: signed in as @%s", application.bot.username)


async def _announce_commands(bot: ExtBot) -> None:
    """Put the commands, with descriptions, in Telegram's command menu (group admins' menu: theirs as well)."""
    moderators = dict(COMMANDS) | dict(MODERATOR_COMMANDS)
    try:
        await bot.set_my_commands([BotCommand(name, description) for name, description in COMMANDS])
        await bot.set_my_commands([BotCommand(name, description) for name, description in moderators.items()],
                                  scope=BotCommandScopeAllChatAdministrators())  # fmt: skip
    except TelegramError as error:
        log.warning("could not set the command menu: %s", type(error).__name__)


def _polling_failed(error: TelegramError) -> None:
    if isinstance(error, Conflict):
        log.error("another process is fetching updates with this bot token; stop it (retrying)")
    else:
        log.warning("fetching updates failed (%s: %s); retrying", type(error).__name__, error)


async def _poll(application: Application, stop: asyncio.Event) -> None:
    """Long polling until ``stop`` is set."""
    assert application.updater is not None
    await application.updater.start_polling(poll_interval=0.0, timeout=POLL_SECONDS,
                                            allowed_updates=list(ALLOWED_UPDATES),
                                            error_callback=_polling_failed)  # fmt: skip
    log.info("Telegram: long polling")
    await stop.wait()


def webhook_app(application: Application, path: str, secret: str | None, inbox: Inbox,
                stored: Callable[[], None] = lambda: None) -> Any:  # fmt: skip
    """An aiohttp app taking webhook calls at ``path``: a wrong secret header gets 403; an update is stored in the
    inbox, and only then answered 200 (and ``stored`` called); a store that cannot take it answers 503, and Telegram
    sends the update again later."""
    from aiohttp import web  # aiohttp comes with discord.py; PTB's own webhook server needs tornado, not installed

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if secret is not None and not hmac.compare_digest(given.encode(), secret.encode()):
            return web.Response(status=403)
        body = await request.text()
        try:
            update = Update.de_json(json.loads(body), application.bot)
            chat, poll_id = chat_key(update)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("a webhook call did not carry an update")
            return web.Response(status=400)
        try:
            await asyncio.to_thread(inbox.store, update.update_id, chat, body, time.time(), poll_id)
        except StoreUnavailable:  # the store logged why
            log.warning("could not store Telegram update %s; Telegram will send it again", update.update_id)
            return web.Response(status=503)
        stored()
        return web.Response()

    app = web.Application()
    app.router.add_post(path, receive)
    return app


async def _receive_webhooks(application: Application, settings: TelegramSettings, inbox: Inbox,
                            stop: asyncio.Event) -> None:  # fmt: skip
    """Store webhook calls in the inbox and handle its chats until ``stop`` is set; then finish the update in hand
    in each chat (the webhook stays registered: updates wait in Telegram or the inbox for the next worker)."""
    from aiohttp import web

    assert settings.webhook_url is not None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    if secret is None:
        log.warning("the webhook has no secret: anyone who finds its URL can post updates; "
                    "set TUTORBOT_TELEGRAM__WEBHOOK_SECRET")  # fmt: skip

    async def handle(body: str) -> None:
        await application.process_update(Update.de_json(json.loads(body), application.bot))

    worker = InboxWorker(inbox, handle, lease_seconds=settings.webhook_lease_seconds,
                         poll_seconds=settings.webhook_poll_seconds, chats_at_once=settings.webhook_chats_at_once)  # fmt: skip
    app = webhook_app(application, urlsplit(settings.webhook_url).path or "/", secret, inbox, worker.wake)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.webhook_listen, settings.webhook_port)
        try:
            await site.start()
        except OSError as error:
            where = f"{settings.webhook_listen}:{settings.webhook_port}"
            raise AdapterError(f"Could not listen for webhook calls on {where} ({error.strerror}): "
                               "set TUTORBOT_TELEGRAM__WEBHOOK_PORT to a free port.") from None  # fmt: skip
        try:
            await application.bot.set_webhook(settings.webhook_url, allowed_updates=list(ALLOWED_UPDATES),
                                              secret_token=secret)  # fmt: skip
        except BadRequest as error:
            raise AdapterError(f"Telegram refused the webhook ({error.message}): "
                               "check TUTORBOT_TELEGRAM__WEBHOOK_URL.") from None  # fmt: skip
        log.info("Telegram: receiving webhook calls on %s:%s as worker %s", settings.webhook_listen,
                 settings.webhook_port, worker.name)  # fmt: skip
        await worker.run(stop)
    finally:
        await runner.cleanup()


async def _shut_down(application: Application) -> None:
    """Stop fetching, let the turns in flight finish, then close."""
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()
