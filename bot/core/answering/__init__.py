"""Grounded answering: lesson units cited by number, checked by a judge, shown word for word.

``units`` builds what the model reads, ``answerer`` runs the flow, ``checks`` holds the general checks and
``outcome`` the types it produces and ``settings`` its knobs.
"""

from bot.core.answering.answerer import Answerer, UnitPrompt
from bot.core.answering.outcome import Answer, AnswerDelta, Quote
from bot.core.answering.settings import AnswerSettings
from bot.core.messages import Citation

__all__ = ["Answer", "AnswerDelta", "AnswerSettings", "Answerer", "Citation", "Quote", "UnitPrompt"]
