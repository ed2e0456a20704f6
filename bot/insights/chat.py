"""The engine's ``InsightsSource``: a community's insights on a track as the chat summary and its two charts."""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.core.insights import summary_text
from bot.core.lessons import Track
from bot.core.messages import Attachment
from bot.store.insights import SqlInsights


class ChatInsights:
    """``bot.core.ports.InsightsSource`` over the database: computes, summarises and draws (on the turn's thread)."""

    def __init__(self, source: SqlInsights, clock: Callable[[], float] = time.time) -> None:
        self._source = source
        self._clock = clock

    def insights(self, community: str, track: Track) -> tuple[str, list[Attachment]]:
        """The Markdown summary and, once anything happened on the track here, ``funnel.png`` and ``hardest.png``."""
        found = self._source.insights(track, community, self._clock())
        if found.empty:
            return summary_text(found), []  # two pictures saying "no data yet" would add nothing to the text
        from bot.insights.charts import chart_attachments  # matplotlib loads on the first chart, not at start

        return summary_text(found), chart_attachments(found)
