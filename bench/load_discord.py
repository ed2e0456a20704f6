"""Discord learners for the load bench: users of one server (in a few channels) and in DMs, on one bot connection.

A turn is a gateway event: a slash command, a button press (both interactions) or, in a DM, a plain message.
It is done when the messages it must show have arrived: the interaction's responses and follow-ups, or the
bot's messages in the DM channel. Its latency runs from the moment the fake sent the event to the arrival of
the turn's last message, or the last edit of a streamed answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.load_script import Turn, TurnFailed, plain
from bot.core.quiz import option_label
from tests.adapters.discord_fake import FakeDiscord, FakeMessage, Interaction, User

FIRST_USER_ID = 1_180_000_000_100_000_000
CHANNELS = ("1180000000000000710", "1180000000000000711", "1180000000000000712", "1180000000000000713")
RECENT = 12  # messages a learner keeps to find buttons in (the views of the last few turns)


@dataclass
class DiscordSeat:
    """Where one learner talks to the bot: a server channel or a DM, and the messages they last saw."""

    user: User
    channel_id: str | None  # None: a DM with the bot
    recent: list[FakeMessage] = field(default_factory=list)
    last: tuple[str, int] | None = None  # (interaction token or channel, messages) of the last turn, to spot extras
    dm_seen: int = 0  # bot messages seen in the DM channel

    @property
    def dm(self) -> bool:
        return self.channel_id is None


class DiscordDriver:
    """Does learners' turns against a fake Discord and times them."""

    platform = "discord"

    def __init__(self, fake: FakeDiscord, timeout: float) -> None:
        self.fake = fake
        self.timeout = timeout
        self.asked: list[Interaction] = []  # every interaction sent, to check each was answered

    def seat(self, number: int) -> DiscordSeat:
        """The ``number``-th learner: a third in DMs, the rest spread over the server's channels."""
        channel = None if number % 3 == 0 else CHANNELS[number % len(CHANNELS)]
        return DiscordSeat(User(str(FIRST_USER_ID + number), f"learner{number}"), channel)

    async def do(self, seat: DiscordSeat, turn: Turn) -> float:
        """Do ``turn``; return its latency in seconds, or raise TurnFailed."""
        self._check_quiet(seat, turn)
        key, started, messages = await self._send(seat, turn)

        def arrived() -> list[FakeMessage] | None:
            new = [m for m in messages() if not m.loading]
            if len(new) < turn.count:
                return None
            if turn.is_model_turn and not _finished(new[-1], turn):
                return None  # still streaming
            return new

        try:
            new = await self.fake.wait_on(key, arrived, self.timeout)
        except AssertionError:
            got = [plain(m.content)[:80] for m in messages()]
            raise TurnFailed(f"{turn.kind}: no complete reply within {self.timeout:.0f} s; got {got}") from None
        seat.last = (key, len(new))
        if seat.dm and key == self.fake.dm_channel_id(seat.user):
            seat.dm_seen += len(new)
        seat.recent = (seat.recent + new)[-RECENT:]
        if (
            len(new) != turn.count
            or not _finished(new[-1], turn)
            or (turn.first and turn.first not in plain(new[0].content))
        ):
            raise TurnFailed(f"{turn.kind}: expected {turn.shows} (first: {turn.first}); "
                             f"got {[plain(m.content) for m in new]}")  # fmt: skip
        return max(m.arrived for m in new) - started()

    async def _send(self, seat: DiscordSeat, turn: Turn):  # noqa: ANN202 - (key, when delivered, its messages)
        fake, user = self.fake, seat.user
        if turn.typed is not None and seat.dm and turn.kind in {"progress", "ask", "quiz"}:
            channel = fake.dm_channel_id(user)  # a plain DM message: the replies are channel messages
            before = seat.dm_seen
            message_id = await fake.say(user, turn.typed, dm=True)
            return channel, lambda: fake.delivered[message_id], lambda: fake.channel_messages(channel)[before:]
        if turn.typed is not None:
            command = {"start": ("learn", None), "progress": ("progress", None), "quiz": ("quiz", None)}.get(turn.typed)
            name, options = command or ("ask", {"question": turn.typed})
            interaction = await fake.slash(user, name, options, dm=seat.dm, channel_id=seat.channel_id)
        else:
            label, exact = (option_label(turn.option), True) if turn.option is not None else (turn.press, turn.exact)
            assert label is not None
            message = next((m for m in reversed(seat.recent) if any(_labelled(t, label, exact) for t in m.labels)),
                           None)  # fmt: skip
            if message is None:
                raise TurnFailed(f"{turn.kind}: no button {label!r} in {[m.labels for m in seat.recent]}")
            custom_id = next(c["custom_id"] for row in message.components for c in row["components"]
                             if _labelled(c.get("label", ""), label, exact))  # fmt: skip
            interaction = await fake.press(user, message, custom_id, dm=seat.dm)
        self.asked.append(interaction)
        return interaction.token, lambda: interaction.delivered, lambda: fake.replies(interaction)

    def _check_quiet(self, seat: DiscordSeat, turn: Turn) -> None:
        """Nothing may have arrived for the learner's last turn after it was done."""
        if seat.last is None:
            return
        key, count = seat.last
        interaction = self.fake.interactions.get(key)
        now = self.fake.replies(interaction) if interaction else self.fake.channel_messages(key)[seat.dm_seen - count :]
        if len(now) != count:
            raise TurnFailed(f"messages nobody asked for arrived before {turn.kind}: "
                             f"{[plain(m.content)[:80] for m in now[count:]]}")  # fmt: skip

    def unanswered(self) -> int:
        """Interactions the bot never responded to (Discord shows the learner an error for each)."""
        return sum(not interaction.callbacks for interaction in self.asked)


def _labelled(text: str, label: str, exact: bool) -> bool:
    return text == label if exact else text.startswith(label)


def _finished(message: FakeMessage, turn: Turn) -> bool:
    if not turn.seen_in(message.content):
        return False
    return turn.with_button is None or turn.with_button in message.labels
