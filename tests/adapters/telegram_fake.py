"""A local fake of the Telegram Bot API for adapter tests, served on 127.0.0.1.

It speaks just enough of the Bot API for python-telegram-bot: ``getMe``, long-polled ``getUpdates``,
``sendMessage``, ``editMessageText``, ``sendPoll``, ``sendPhoto``, ``sendDocument``, ``getFile``,
``answerCallbackQuery``, ``getChatMember``, … Every call is recorded (method, decoded parameters, time; a file
sent in a multipart form as an ``UploadedFile`` with its name and bytes) so tests can assert on what the bot
sent, and ``chats`` keeps what each chat shows now (edits replace a message's text). ``send_document`` puts a
user's document in an update; ``getFile`` gives its path and the fake serves its bytes at
``/file/bot<token>/<path>``, as Telegram's file server does (``downloads`` lists the paths fetched). Tests put updates in with ``say`` / ``press`` /
``answer_poll``; when the bot has set a webhook, updates are posted to it (with the secret header) instead
of waiting for ``getUpdates`` (which, like Telegram, hands out at most ``limit`` updates, 100 by default).
``fail_next`` answers one call with an error (a 429 with ``retry_after``), a ``send…`` to a user in ``blocked``
gets 403, and a token other than the fake's own gets 401, like the real server.

For load tests: ``record_calls=False`` keeps counts instead of every call; ``delivered`` holds when each update
was handed to the bot and ``Shown.arrived`` when a message was last sent or edited; ``wait_in`` waits for a
chat to change instead of polling; ``refused`` lists every error answer the fake gave and ``abandoned`` counts
calls the bot dropped half-sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web

BOT_ID = 7000001
BOT_USERNAME = "tutor_test_bot"
TOKEN = "7000001:AAFakeTokenForTests-ABCdefGHIjklMNOpqrSTUvwx"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Parameters that are strings in the Bot API (python-telegram-bot sends strings raw and everything else as JSON).
_STRING_PARAMS = {"text", "question", "explanation", "callback_query_id", "parse_mode", "url", "secret_token",
                  "action", "inline_message_id", "description", "short_description", "language_code", "caption",
                  "file_id"}  # fmt: skip
_IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # what Telegram can process as a photo: PNG, JPEG
_WORD = re.compile(r"(?<![\w@])(/\w+(?:@\w+)?|@\w+)")


@dataclass(frozen=True)
class User:
    """A Telegram user the tests act as."""

    id: int
    first_name: str
    is_bot: bool = False

    def as_json(self) -> dict:
        return {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}


@dataclass(frozen=True)
class Chat:
    """A chat: private (id = the user's id) or a group (negative id)."""

    id: int
    type: str = "private"
    title: str | None = None

    def as_json(self) -> dict:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.title:
            data["title"] = self.title
        return data


@dataclass
class Call:
    """One Bot API call the bot made."""

    method: str
    params: dict[str, Any]
    at: float


@dataclass(frozen=True)
class UploadedFile:
    """A file the bot sent in a multipart form: its name and bytes."""

    filename: str
    data: bytes


@dataclass
class Shown:
    """A message the bot sent, as its chat shows it now."""

    chat_id: int
    message_id: int
    text: str | None
    params: dict[str, Any]
    poll: dict | None = None
    edits: list[str] = field(default_factory=list)
    arrived: float = 0.0  # time.monotonic() when it was sent or last edited
    file: UploadedFile | None = None  # the photo or document a sendPhoto / sendDocument carried
    kind: str = "text"  # "text", "poll", "photo" or "document"

    @property
    def plain(self) -> str:
        """What the chat shows: the message text without its HTML (or the poll's question; a file's caption)."""
        if self.text is None:
            return (self.poll or {}).get("question", "") if self.poll else self.params.get("caption") or ""
        return _visible(self.text, self.params.get("parse_mode"))

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """``(label, callback_data)`` of every inline button."""
        markup = self.params.get("reply_markup") or {}
        return [(b["text"], b.get("callback_data", "")) for row in markup.get("inline_keyboard", []) for b in row]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def entities_of(text: str) -> list[dict]:
    """The entities Telegram would attach: a leading bot command, @mentions."""
    found = []
    for match in _WORD.finditer(text):
        word = match.group(1)
        if word.startswith("/") and match.start() != 0:
            continue
        kind = "bot_command" if word.startswith("/") else "mention"
        found.append({"type": kind, "offset": utf16_len(text[: match.start()]), "length": utf16_len(word)})
    return found


class FakeBotApi:
    """The fake server: start it, point the bot at ``base_url``, inject updates, read ``calls`` and ``chats``."""

    def __init__(self, token: str = TOKEN, record_calls: bool = True) -> None:
        self.token = token
        self.record_calls = record_calls  # False: only ``counts`` (a long load run would keep every call)
        self.calls: list[Call] = []
        self.counts: Counter[str] = Counter()  # calls per method
        self.abandoned: Counter[str] = Counter()  # calls the client dropped before it had sent them whole
        self.refused: list[tuple[str, int, str]] = []  # (method, status, description) of every error answered
        self.delivered: dict[int, float] = {}  # update id -> time.monotonic() when first handed to the bot
        self.chats: dict[int, dict[int, Shown]] = {}
        self.admins: set[tuple[int, int]] = set()  # (chat id, user id) pairs that are administrators
        self.polls: dict[str, Shown] = {}
        self.webhook: dict[str, Any] | None = None
        self.queries: list[str] = []  # ids of the callback queries sent to the bot
        self.webhook_replies: list[int] = []  # HTTP status of each update posted to the webhook
        self.allowed_updates: list[str] | None = None
        self.blocked: set[int] = set()  # users who blocked the bot: sending to their private chat gets a 403
        self.files: dict[str, tuple[str, bytes]] = {}  # file id -> (file path, bytes) of documents users sent
        self.downloads: list[str] = []  # file paths the bot fetched from the file server, in order
        self._known_chats: dict[int, Chat] = {}
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._callback_ids = itertools.count(1)
        self._poll_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self._changed: dict[int, asyncio.Event] = {}  # chat id -> set when a message there is sent or edited
        self._failures: dict[str, list[tuple[int, dict]]] = {}
        self._runner: web.AppRunner | None = None
        self._client: ClientSession | None = None
        self._deliveries: set[asyncio.Task] = set()
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> FakeBotApi:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # uploads of files up to 50 MB, as Telegram takes
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._serve_file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)  # the default 128 drops bursts of connects
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._client = ClientSession()
        return self

    async def stop(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        self._new_update.set()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What ``TelegramSettings.base_url`` should be."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------ test controls

    def fail_next(self, method: str, error_code: int = 429, retry_after: int | None = 1,
                  description: str = "Too Many Requests: retry later") -> None:  # fmt: skip
        """Answer the next call of ``method`` with an error (by default a 429 asking to retry after 1 s)."""
        body: dict[str, Any] = {"ok": False, "error_code": error_code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        self._failures.setdefault(method, []).append((error_code, body))

    def say(self, user: User, text: str, chat: Chat | None = None, reply_to: Shown | None = None) -> dict:
        """``user`` sends ``text`` (in their private chat unless ``chat`` is given); returns the message."""
        message = self.new_message(user, text, chat, reply_to)
        self.push({"message": message})
        return message

    def new_message(self, user: User, text: str, chat: Chat | None = None, reply_to: Shown | None = None) -> dict:
        """The message of ``user`` sending ``text``, with the entities Telegram would attach (not pushed)."""
        chat = chat or Chat(user.id)
        self._known_chats[chat.id] = chat
        message: dict[str, Any] = {"message_id": next(self._message_ids), "date": int(time.time()),
                                   "chat": chat.as_json(), "from": user.as_json(), "text": text}  # fmt: skip
        entities = entities_of(text)
        if entities:
            message["entities"] = entities
        if reply_to is not None:
            message["reply_to_message"] = self._message_json(reply_to)
        return message

    def send_document(self, user: User, data: bytes, filename: str | None, caption: str | None = None,
                      chat: Chat | None = None, reply_to: Shown | None = None) -> dict:  # fmt: skip
        """``user`` sends a document (``filename`` None: one without a name) with an optional caption; returns the
        message. Its bytes are kept for ``getFile`` and the file server."""
        message = self.new_message(user, "", chat, reply_to)
        del message["text"]
        file_id = f"doc{next(self._file_ids)}"
        self.files[file_id] = (f"documents/file_{len(self.files)}{_suffix(filename)}", data)
        document: dict[str, Any] = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(data)}
        if filename is not None:
            document["file_name"] = filename
        message["document"] = document
        if caption is not None:
            message["caption"] = caption
            entities = entities_of(caption)
            if entities:
                message["caption_entities"] = entities
        self.push({"message": message})
        return message

    def press(self, user: User, shown: Shown, data: str) -> str:
        """``user`` presses a button carrying ``data`` under the bot's message ``shown``; returns the query id."""
        query = self.new_query(user, shown, data)
        self.push({"callback_query": query})
        return query["id"]

    def new_query(self, user: User, shown: Shown, data: str) -> dict:
        """The callback query of ``user`` pressing a button carrying ``data`` under ``shown`` (not pushed)."""
        query_id = f"cq{next(self._callback_ids)}"
        self.queries.append(query_id)
        return {"id": query_id, "from": user.as_json(), "chat_instance": f"ci{shown.chat_id}", "data": data,
                "message": self._message_json(shown)}  # fmt: skip

    def answer_poll(self, user: User, poll_id: str, option: int) -> None:
        """``user`` answers the quiz poll ``poll_id`` with option ``option``."""
        self.push({"poll_answer": self.new_poll_answer(user, poll_id, option)})

    @staticmethod
    def new_poll_answer(user: User, poll_id: str, option: int) -> dict:
        """The poll answer of ``user`` choosing ``option`` in ``poll_id`` (not pushed)."""
        return {"poll_id": poll_id, "user": user.as_json(), "option_ids": [option],
                "option_persistent_ids": [f"{poll_id}-{option}"]}  # fmt: skip

    def new_update(self, payload: dict) -> dict:
        """An update carrying ``payload`` with the next update id (not pushed: a test posts it where it likes)."""
        return {"update_id": next(self._update_ids), **payload}

    def push(self, payload: dict) -> int:
        """Queue an update (or post it to the webhook, when one is set); returns its update id."""
        update = self.new_update(payload)
        if self.webhook is not None:
            task = asyncio.get_running_loop().create_task(self._post_to_webhook(update))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
            return update["update_id"]
        self._updates.append(update)
        self._new_update.set()
        return update["update_id"]

    # ------------------------------------------------------------ inspection

    def answered_queries(self) -> list[str]:
        """Ids of the callback queries the bot answered, in order."""
        return [call.params["callback_query_id"] for call in self.calls_to("answerCallbackQuery")]

    def calls_to(self, method: str) -> list[Call]:
        """Every recorded call of ``method``, in order."""
        return [call for call in self.calls if call.method == method]

    def shown(self, chat_id: int) -> list[Shown]:
        """The bot's messages in a chat, oldest first."""
        return list(self.chats.get(chat_id, {}).values())

    def texts(self, chat_id: int) -> list[str]:
        """What every message (or poll question) of the bot in a chat shows, oldest first."""
        return [m.plain for m in self.shown(chat_id)]

    def last_with_button(self, chat_id: int, label: str) -> tuple[Shown, str]:
        """The newest message in a chat with a button whose label starts with ``label``, and its data."""
        for message in reversed(self.shown(chat_id)):
            for text, data in message.buttons:
                if text.startswith(label):
                    return message, data
        labels = [text for m in self.shown(chat_id) for text, _ in m.buttons]
        raise AssertionError(f"no button starting with {label!r} in chat {chat_id}; buttons: {labels}")

    def last_poll(self, chat_id: int) -> Shown:
        """The newest quiz poll in a chat."""
        polls = [m for m in self.shown(chat_id) if m.poll is not None]
        assert polls, f"no poll in chat {chat_id}: {self.texts(chat_id)}"
        return polls[-1]

    async def until(self, condition: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
        """Wait until ``condition()`` is truthy and return its value; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or condition}; chats: {self._chat_texts()}")
            await asyncio.sleep(0.01)

    async def message_containing(self, chat_id: int, needle: str, timeout: float = 5.0) -> Shown:
        """Wait for a message (or poll) in ``chat_id`` whose text contains ``needle``."""

        def find() -> Shown | None:
            return next((m for m in reversed(self.shown(chat_id)) if needle in m.plain), None)

        return await self.until(find, timeout, f"a message with {needle!r} in chat {chat_id}")

    async def wait_in(self, chat_id: int, condition: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Like ``until``, but woken by changes in ``chat_id`` instead of polling (for many waiting learners)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        changed = self._changed.setdefault(chat_id, asyncio.Event())
        while True:
            changed.clear()  # cleared before looking: a change after the look sets it again
            value = condition()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout} s in chat {chat_id}: {self.texts(chat_id)[-3:]}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def _touched(self, shown: Shown) -> None:
        shown.arrived = time.monotonic()
        changed = self._changed.get(shown.chat_id)
        if changed is not None:
            changed.set()

    def _chat_texts(self) -> dict[int, list[str]]:
        return {chat_id: [t[:80] for t in self.texts(chat_id)] for chat_id in self.chats}

    # ------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params = await self._params(request)
        except ConnectionResetError:  # the client gave up on the call while sending it (a cancelled request)
            self.abandoned[method] += 1
            return web.Response(status=499)  # never read: the connection is gone
        self.counts[method] += 1
        if self.record_calls:
            self.calls.append(Call(method, params, time.monotonic()))
        if request.match_info["token"] != self.token:
            return self._refuse(method, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        failures = self._failures.get(method)
        if failures:
            status, body = failures.pop(0)
            return self._refuse(method, status, body)
        if method.startswith("send") and int(params.get("chat_id") or 0) in self.blocked:
            body = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
            return self._refuse(method, 403, body)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            body = {"ok": False, "error_code": 404, "description": "Not Found: method not found"}
            return self._refuse(method, 404, body)
        try:
            result = await handler(params)
        except _ApiError as error:
            return self._refuse(method, 400, {"ok": False, "error_code": 400, "description": str(error)})
        return web.json_response({"ok": True, "result": result})

    def _refuse(self, method: str, status: int, body: dict) -> web.Response:
        self.refused.append((method, status, body.get("description", "")))
        return web.json_response(body, status=status)

    @staticmethod
    async def _params(request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            body = await request.read()
            return json.loads(body) if body else {}
        form = await request.post()
        params: dict[str, Any] = {}
        for key, value in form.items():
            if isinstance(value, web.FileField):  # a file part of a multipart form (sendPhoto, sendDocument)
                params[key] = UploadedFile(value.filename, value.file.read())
                continue
            text = value if isinstance(value, str) else str(value)
            if key in _STRING_PARAMS:
                params[key] = text
                continue
            try:
                params[key] = json.loads(text)
            except ValueError:
                params[key] = text
        return params

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        """Telegram's file server: the bytes of a file ``getFile`` gave the path of."""
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        path = request.match_info["path"]
        found = next((data for known, data in self.files.values() if known == path), None)
        if found is None:
            return web.Response(status=404)
        self.downloads.append(path)
        return web.Response(body=found, content_type="application/octet-stream")

    async def _post_to_webhook(self, update: dict) -> None:
        assert self.webhook is not None and self._client is not None
        headers = {SECRET_HEADER: self.webhook["secret_token"]} if self.webhook.get("secret_token") else {}
        self.delivered.setdefault(update["update_id"], time.monotonic())
        async with self._client.post(self.webhook["url"], json=update, headers=headers) as response:
            self.webhook_replies.append(response.status)

    # ------------------------------------------------------------ the API methods

    def _bot_json(self) -> dict:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Tutor", "username": BOT_USERNAME,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}  # fmt: skip

    def _chat(self, chat_id: Any) -> Chat:
        chat_id = int(chat_id)
        return self._known_chats.get(chat_id) or Chat(chat_id, "private" if chat_id > 0 else "supergroup", "Group")

    def _message_json(self, shown: Shown) -> dict:
        data: dict[str, Any] = {"message_id": shown.message_id, "date": int(time.time()),
                                "chat": self._chat(shown.chat_id).as_json(), "from": self._bot_json()}  # fmt: skip
        if shown.text is not None:
            data["text"] = shown.text
        if shown.poll is not None:
            data["poll"] = shown.poll
        if shown.file is not None:
            sent = {"file_id": f"sent{shown.message_id}", "file_unique_id": f"usent{shown.message_id}",
                    "file_size": len(shown.file.data)}  # fmt: skip
            if shown.kind == "photo":
                data["photo"] = [{**sent, "width": 640, "height": 480}]
            else:
                data["document"] = {**sent, "file_name": shown.file.filename}
            if shown.params.get("caption"):
                data["caption"] = shown.params["caption"]
        if shown.params.get("reply_markup"):
            data["reply_markup"] = shown.params["reply_markup"]
        return data

    def _remember(self, chat_id: Any, text: str | None, params: dict, poll: dict | None = None,
                  file: UploadedFile | None = None, kind: str = "text") -> Shown:  # fmt: skip
        shown = Shown(int(chat_id), next(self._message_ids), text, params, poll, file=file, kind=kind)
        self.chats.setdefault(shown.chat_id, {})[shown.message_id] = shown
        self._touched(shown)
        return shown

    async def _api_getMe(self, params: dict) -> dict:
        return self._bot_json()

    async def _api_getUpdates(self, params: dict) -> list[dict]:
        offset = int(params.get("offset") or 0)
        if params.get("allowed_updates") is not None:
            self.allowed_updates = list(params["allowed_updates"])
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), timeout=float(params.get("timeout") or 0))
            except TimeoutError:
                pass
        handed = [u for u in self._updates if self._allowed(u)][: int(params.get("limit") or 100)]
        now = time.monotonic()
        for update in handed:
            self.delivered.setdefault(update["update_id"], now)
        return handed

    def _allowed(self, update: dict) -> bool:
        if not self.allowed_updates:
            return True
        return any(kind in update for kind in self.allowed_updates)

    async def _api_deleteWebhook(self, params: dict) -> bool:
        self.webhook = None
        return True

    async def _api_setWebhook(self, params: dict) -> bool:
        self.webhook = params
        self.allowed_updates = params.get("allowed_updates")
        return True

    async def _api_setMyCommands(self, params: dict) -> bool:
        return True

    async def _api_sendChatAction(self, params: dict) -> bool:
        return True

    async def _api_answerCallbackQuery(self, params: dict) -> bool:
        return True

    async def _api_sendMessage(self, params: dict) -> dict:
        text = params.get("text") or ""
        if not text.strip():
            raise _ApiError("Bad Request: message text is empty")
        if utf16_len(_visible(text, params.get("parse_mode"))) > 4096:
            raise _ApiError("Bad Request: message is too long")
        return self._message_json(self._remember(params["chat_id"], text, params))

    async def _api_editMessageText(self, params: dict) -> dict:
        shown = self.chats.get(int(params["chat_id"]), {}).get(int(params["message_id"]))
        if shown is None:
            raise _ApiError("Bad Request: message to edit not found")
        text = params.get("text") or ""
        markup = params.get("reply_markup")
        if text == shown.text and markup == shown.params.get("reply_markup"):
            raise _ApiError("Bad Request: message is not modified")
        if utf16_len(_visible(text, params.get("parse_mode"))) > 4096:
            raise _ApiError("Bad Request: MESSAGE_TOO_LONG")
        shown.edits.append(text)
        shown.text = text
        shown.params = {**shown.params, **params}
        self._touched(shown)
        return self._message_json(shown)

    async def _api_sendPoll(self, params: dict) -> dict:
        options = [o if isinstance(o, str) else o["text"] for o in params["options"]]
        question = params["question"]
        if len(question) > 300 or not 2 <= len(options) <= 10 or any(len(o) > 100 for o in options):
            raise _ApiError("Bad Request: poll doesn't fit")
        if len(params.get("explanation") or "") > 200:
            raise _ApiError("Bad Request: explanation too long")
        correct = params.get("correct_option_ids")
        if correct is None and params.get("correct_option_id") is not None:  # before Bot API 9.6
            correct = [params["correct_option_id"]]
        if params.get("type") == "quiz" and not correct:
            raise _ApiError("Bad Request: a quiz poll needs its correct option")
        poll_id = f"poll{next(self._poll_ids)}"
        poll = {"id": poll_id, "question": question, "total_voter_count": 0, "is_closed": False,
                "options": [{"text": o, "voter_count": 0, "persistent_id": f"{poll_id}-{n}"} for n, o in enumerate(options)],
                "is_anonymous": bool(params.get("is_anonymous", True)), "type": params.get("type", "regular"),
                "allows_multiple_answers": False, "allows_revoting": False, "members_only": False,
                "correct_option_ids": correct}  # fmt: skip
        if params.get("explanation"):
            poll["explanation"] = params["explanation"]
        shown = self._remember(params["chat_id"], None, params, poll)
        self.polls[poll_id] = shown
        return self._message_json(shown)

    async def _api_getFile(self, params: dict) -> dict:
        known = self.files.get(params.get("file_id") or "")
        if known is None:
            raise _ApiError("Bad Request: invalid file_id")
        path, data = known
        return {"file_id": params["file_id"], "file_unique_id": f"u{params['file_id']}", "file_size": len(data),
                "file_path": path}  # fmt: skip

    async def _api_sendPhoto(self, params: dict) -> dict:
        photo = self._file_param(params, "photo")
        if not photo.data.startswith(_IMAGE_SIGNATURES):
            raise _ApiError("Bad Request: IMAGE_PROCESS_FAILED")
        if len(photo.data) > 10 * 1024 * 1024:
            raise _ApiError("Bad Request: PHOTO_SAVE_FILE_INVALID")
        return self._message_json(self._remember(params["chat_id"], None, params, file=photo, kind="photo"))

    async def _api_sendDocument(self, params: dict) -> dict:
        document = self._file_param(params, "document")
        if not document.data:
            raise _ApiError("Bad Request: file must be non-empty")
        return self._message_json(self._remember(params["chat_id"], None, params, file=document, kind="document"))

    @staticmethod
    def _file_param(params: dict, name: str) -> UploadedFile:
        """The file a send… call uploaded: the form part itself, or the part an ``attach://`` value names."""
        value = params.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if not isinstance(value, UploadedFile):
            raise _ApiError(f"Bad Request: there is no {name} in the request")
        return value

    async def _api_getChatMember(self, params: dict) -> dict:
        chat_id, user_id = int(params["chat_id"]), int(params["user_id"])
        user = {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}
        if (chat_id, user_id) in self.admins:
            rights = dict.fromkeys(("can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages",
                                    "can_manage_video_chats", "can_restrict_members", "can_promote_members",
                                    "can_change_info", "can_invite_users", "can_post_stories", "can_edit_stories",
                                    "can_delete_stories"), False)  # fmt: skip
            return {"status": "administrator", "user": user, **rights}
        return {"status": "member", "user": user}


class _ApiError(Exception):
    """A Bad Request answer."""


def _suffix(filename: str | None) -> str:
    """The extension a file path keeps (Telegram's paths end like the file's name)."""
    if not filename or "." not in filename:
        return ""
    return "." + filename.rsplit(".", 1)[1]


_TAG = re.compile(r'<(/?)([a-z-]+)((?:\s+[a-z-]+="[^"<>]*")*)\s*>')
_ATTRIBUTE = re.compile(r'([a-z-]+)="([^"]*)"')
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")
_STYLE_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "tg-spoiler"}
_ALLOWED_TAGS = _STYLE_TAGS | {"code", "pre", "a", "blockquote"}
_ATTRIBUTES = {"a": {"href"}, "code": {"class"}}


def _decode(entity: str) -> str:
    named = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}.get(entity)
    if named is not None:
        return named
    return chr(int(entity[2:], 16)) if entity.startswith("#x") else chr(int(entity[1:]))


def _check_start_tag(name: str, attributes: dict[str, str], open_tags: list[str], at: int) -> None:
    """Telegram's rules for a tag opening inside ``open_tags``: known attributes, an href on a link, nesting."""
    if set(attributes) - _ATTRIBUTES.get(name, set()) or (name == "a" and not attributes.get("href")):
        raise _ApiError(f"Bad Request: can't parse entities: unsupported attribute of {name} at byte offset {at}")
    if "code" in open_tags or ("pre" in open_tags and name != "code"):
        raise _ApiError(f"Bad Request: can't parse entities: an entity inside code at byte offset {at}")
    if name not in _STYLE_TAGS and any(tag not in _STYLE_TAGS for tag in open_tags):
        # links, code, pre and quotes can't contain each other (code directly in pre is the one exception)
        if not (name == "code" and open_tags[-1:] == ["pre"]):
            raise _ApiError(f"Bad Request: can't parse entities: {name} can't be nested at byte offset {at}")


def _visible(text: str, parse_mode: str | None) -> str:
    """The text a chat shows; in HTML mode, rejects what Telegram's parser rejects (stray ``<`` or ``&``, bad tags
    or attributes, entities nested in a way Telegram does not allow)."""
    if parse_mode != "HTML":
        return text
    out, open_tags, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == "<":
            tag = _TAG.match(text, i)
            if tag is None or tag.group(2) not in _ALLOWED_TAGS:
                raise _ApiError(f"Bad Request: can't parse entities: unsupported start tag at byte offset {i}")
            if tag.group(1):
                if tag.group(3) or not open_tags or open_tags.pop() != tag.group(2):
                    raise _ApiError(f"Bad Request: can't parse entities: unmatched end tag at byte offset {i}")
            else:
                _check_start_tag(tag.group(2), dict(_ATTRIBUTE.findall(tag.group(3))), open_tags, i)
                open_tags.append(tag.group(2))
            i = tag.end()
        elif char == "&":
            entity = _ENTITY.match(text, i)
            if entity is None:
                raise _ApiError(f"Bad Request: can't parse entities: stray & at byte offset {i}")
            out.append(_decode(entity.group(1)))
            i = entity.end()
        elif char == ">":
            raise _ApiError(f"Bad Request: can't parse entities: stray > at byte offset {i}")
        else:
            out.append(char)
            i += 1
    if open_tags:
        raise _ApiError("Bad Request: can't parse entities: can't find end tag")
    return "".join(out)
