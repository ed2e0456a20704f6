"""Insights drawn outside the core: chart PNGs (``charts``) and the host's HTML and CSV report (``report``).

The numbers come from ``bot.core.insights`` (what they mean, the chat summary) and ``bot.store.insights`` (the
SQL). matplotlib is imported only by these modules, so the engine pays for it on the first chart only.
"""
