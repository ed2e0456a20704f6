"""Platform adapters: translate platform events into ``Incoming`` turns and ``Reply`` objects into messages.

Each adapter module offers ``async def serve(engine, settings, stop)``: it connects, serves every learner
through the one shared engine until ``stop`` is set, then shuts down gracefully (finishing the turns in
flight). A platform that refuses to start (a mistyped token, no network) raises ``AdapterError`` with a
message that says what to do. Reply text is Markdown: ``split`` is the one rule that cuts it into messages
within a platform's limit, and ``terminal`` renders it for the console.
"""

from __future__ import annotations


class AdapterError(RuntimeError):
    """An adapter could not start or keep running; the message tells the host what to fix."""
