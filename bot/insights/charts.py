"""The insights' two pictures as PNG bytes: the lesson funnel and the hardest quiz questions.

Drawn with matplotlib's object API (a ``Figure`` on its own ``FigureCanvasAgg``), never pyplot: pyplot keeps
global state that threads of a server would share. Every figure has the same pixel size, labels are cut to fit,
and a chart without data says so instead of failing. Text is drawn as text (``parse_math=False``): a ``$`` in a
lesson title is a dollar sign, not the start of a formula.
"""

from __future__ import annotations

import io

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bot.core.insights import MIN_ATTEMPTS, Insights, shorten
from bot.core.messages import Attachment

WIDTH, HEIGHT, DPI = 1000, 600, 100  # pixels, and the dots per inch that turn them into a figure size
MAX_LESSONS = 20  # lessons drawn in the funnel; the report's table has every one
MAX_QUESTIONS = 10  # questions drawn in the hardest chart
STARTED, FINISHED, HARD, MUTED = "#9ecae1", "#2171b5", "#de2d26", "#636363"


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    FigureCanvasAgg(figure)  # attaches itself to the figure
    return figure, figure.add_subplot()


def _png(figure: Figure, right: float = 0.96) -> bytes:
    # no bbox_inches="tight": that would change the pixel size with the labels
    figure.subplots_adjust(left=0.32, right=right, top=0.88, bottom=0.1)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _empty(figure: Figure, axes: Axes, title: str, message: str) -> bytes:
    axes.set_axis_off()
    figure.suptitle(title, fontsize=15, parse_math=False)
    axes.text(0.5, 0.5, message, ha="center", va="center", fontsize=16, color=MUTED, wrap=True, parse_math=False)
    return _png(figure)


def funnel_png(insights: Insights) -> bytes:
    """Learners who started and who finished each lesson, in track order (a bar pair per lesson)."""
    figure, axes = _figure()
    title = shorten(f"Lessons started and finished · {insights.track_title}", 80)
    steps = insights.funnel[:MAX_LESSONS]
    if not any(step.started or step.finished for step in steps):
        return _empty(figure, axes, title, "No learner has started a lesson of this track yet.")
    positions = range(len(steps))
    axes.barh(positions, [s.started for s in steps], color=STARTED, label="started")
    axes.barh(positions, [s.finished for s in steps], height=0.5, color=FINISHED, label="finished")
    for y, step in zip(positions, steps, strict=True):
        axes.text(step.started, y, f" {step.finished} / {step.started}", va="center", fontsize=9, parse_math=False)
    labels = [f"{n}. {shorten(s.title, 36)}" for n, s in enumerate(steps, 1)]
    axes.set_yticks(list(positions), labels, fontsize=10, parse_math=False)
    axes.invert_yaxis()  # the first lesson on top, like a funnel
    axes.set_xlim(0, max(s.started for s in steps) * 1.15 or 1)
    axes.set_xlabel("learners")
    axes.legend(loc="lower right")
    more = len(insights.funnel) - len(steps)
    figure.suptitle(title + (f" (first {len(steps)} of {len(insights.funnel)} lessons)" if more else ""),
                    fontsize=15, parse_math=False)  # fmt: skip
    return _png(figure)


def hardest_png(insights: Insights) -> bytes:
    """The hardest quiz questions: the share of answers that were right, lowest first."""
    figure, axes = _figure()
    title = shorten(f"Hardest quiz questions · {insights.track_title}", 80)
    questions = insights.hardest[:MAX_QUESTIONS]
    if not questions:
        return _empty(figure, axes, title, f"No quiz question has {MIN_ATTEMPTS} answers yet.")
    order = {step.lesson: n for n, step in enumerate(insights.funnel, 1)}
    positions = range(len(questions))
    axes.barh(positions, [q.percent_correct for q in questions], color=HARD)
    notes = axes.get_yaxis_transform()  # x in the axes' width (a column right of the plot), y at the bar
    for y, q in zip(positions, questions, strict=True):
        wrong = f"\nmost picked wrong: {shorten(q.wrong_option, 24)}" if q.wrong_option else ""
        axes.text(1.02, y, f"{q.percent_correct:.0f}% of {q.attempts} answers right{wrong}", transform=notes,
                  va="center", fontsize=9, parse_math=False)  # fmt: skip
    labels = [f"L{order.get(q.lesson, '?')} Q{q.number}: {shorten(q.prompt, 30)}" for q in questions]
    axes.set_yticks(list(positions), labels, fontsize=10, parse_math=False)
    axes.invert_yaxis()
    axes.set_xlim(0, 100)
    axes.set_xlabel("% of answers right")
    figure.suptitle(title, fontsize=15, parse_math=False)
    return _png(figure, right=0.68)


def chart_attachments(insights: Insights) -> list[Attachment]:
    """The two charts as pictures to send with the chat summary: ``funnel.png`` and ``hardest.png``."""
    return [Attachment("funnel.png", funnel_png(insights), image=True),
            Attachment("hardest.png", hardest_png(insights), image=True)]  # fmt: skip
