"""The host's insights report: ``index.html`` (charts and a table for every part) and a CSV file per part.

Both are written from the same tables (``tables``), so the page and the CSV files always say the same numbers.
The page is self-contained: its charts are embedded as ``data:`` URIs, the CSV files sit next to it. Everything
that is not ours (lesson and quiz text, learners' questions) is HTML-escaped; in the CSV files a text cell that a
spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``) starts with an apostrophe instead.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
from dataclasses import dataclass
from html import escape
from pathlib import Path

from bot.core.insights import EXAMPLES, MIN_ASKERS_FOR_EXAMPLES, MIN_ATTEMPTS, WEEKS, Insights
from bot.insights.charts import HEIGHT, WIDTH, funnel_png, hardest_png

Cell = str | int | float | None
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Table:
    """One part of the report: its CSV file name, heading, what it means, and its rows."""

    name: str
    heading: str
    meaning: str
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def tables(insights: Insights) -> list[Table]:
    """Every part of the insights as a table, in the report's order."""
    gaps_meaning = (
        "Questions the tutor refused, grouped by the closest lesson section it found (or none close). "
        f"Example questions are the newest {EXAMPLES}, shown only when at least {MIN_ASKERS_FOR_EXAMPLES} "
        "different people asked in the group."
    )
    return [
        Table("funnel", "Lessons: started and finished",
              "Per lesson in track order: learners who opened it (or finished it) and learners who finished it.",
              ("position", "lesson_id", "lesson", "started", "finished"),
              [(n, s.lesson, s.title, s.started, s.finished) for n, s in enumerate(insights.funnel, 1)]),
        Table("quiz_scores", "Quiz scores",
              "Each finished quiz run's score as a percentage of its questions; mean and median over all runs "
              "(a learner who retakes a quiz counts once per run).",
              ("lesson_id", "lesson", "runs", "mean_percent", "median_percent"),
              [(s.lesson, s.title, s.runs, _rounded(s.mean), _rounded(s.median)) for s in insights.scores]),
        Table("hardest_questions", "Hardest quiz questions",
              f"The share of all answers to a question that were right, lowest first; questions with at least "
              f"{MIN_ATTEMPTS} answers. The wrong option is the one picked most often.",
              ("rank", "lesson_id", "lesson", "question_number", "question", "answers", "right", "percent_right",
               "most_picked_wrong_option", "wrong_picks"),
              [(n, q.lesson, q.lesson_title, q.number, q.prompt, q.attempts, q.correct, _rounded(q.percent_correct),
                q.wrong_option, q.wrong_picks) for n, q in enumerate(insights.hardest, 1)]),
        Table("content_gaps", "Content gaps", gaps_meaning,
              ("closest_section", "lesson", "heading", "refused_questions", "examples_hidden",
               *(f"example_{n}" for n in range(1, EXAMPLES + 1))),
              [(g.section, g.lesson_title, g.heading, g.questions, "yes" if g.examples_hidden else "no",
                *(g.examples + ("",) * EXAMPLES)[:EXAMPLES]) for g in insights.gaps]),
        Table("activity", "Activity per week",
              f"The last {WEEKS} ISO weeks: learners active on any day of the week (on any track), and quiz "
              "answers given in this track.",
              ("week", "week_start", "active_learners", "quiz_answers"),
              [(w.week, w.start, w.active_learners, w.quiz_attempts) for w in insights.activity]),
    ]  # fmt: skip


def _csv_cell(value: Cell) -> Cell:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value  # read as text by spreadsheets, never run
    return value


def _html_cell(value: Cell) -> str:
    return "" if value is None else escape(str(value))


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in table.header)
    body = "".join("<tr>" + "".join(f"<td>{_html_cell(v)}</td>" for v in row) + "</tr>" for row in table.rows)
    rows = body or f'<tr><td colspan="{len(table.header)}" class="none">No data yet.</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _image(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<img class="chart" id="{name}" src="data:image/png;base64,{data}" width="{WIDTH}" height="{HEIGHT}"'
            f' alt="{escape(alt)}">')  # fmt: skip


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.none { color: #777; font-style: italic; }
img.chart { max-width: 100%; height: auto; border: 1px solid #ddd; }
p.meaning { color: #555; }
"""

# Counts the charts the browser could draw (a test opens the page headless and reads the count).
_SCRIPT = """
(function () {
  var charts = Array.prototype.slice.call(document.querySelectorAll("img.chart"));
  function update() {
    var drawn = charts.filter(function (img) { return img.complete && img.naturalWidth > 0; }).length;
    document.body.setAttribute("data-charts-loaded", String(drawn));
  }
  charts.forEach(function (img) { img.addEventListener("load", update); });
  update();
})();
"""


def html_page(insights: Insights, now: float) -> str:
    """The report as one self-contained HTML page."""
    title = f"Insights · {insights.track_title}"
    scope = f"community {insights.community}" if insights.community else "every learner"
    when = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    charts = {"funnel": _image("funnel", funnel_png(insights), "Lessons started and finished"),
              "hardest_questions": _image("hardest", hardest_png(insights), "Hardest quiz questions")}  # fmt: skip
    parts = []
    for table in tables(insights):
        parts.append(f"<section id=\"{table.name}\"><h2>{escape(table.heading)}</h2>"
                     f"<p class=\"meaning\">{escape(table.meaning)}</p>{charts.get(table.name, '')}"
                     f"{_html_table(table)}<p><a href=\"{table.name}.csv\">{table.name}.csv</a></p></section>")  # fmt: skip
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
        f'<style>{_STYLE}</style></head>\n<body data-charts-loaded="0"><h1>{escape(title)}</h1>'
        f"<p>Track <code>{escape(insights.track)}</code>, {escape(scope)}; {insights.learners} learners started "
        f"it. Written {when}.</p>\n" + "\n".join(parts) + f"\n<script>{_SCRIPT}</script></body></html>\n"
    )


def write_report(insights: Insights, out: Path, now: float) -> list[Path]:
    """Write ``index.html`` and a CSV file per part into the folder ``out`` (made if missing); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables(insights):
        path = out / f"{table.name}.csv"
        with path.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(table.header)
            writer.writerows(tuple(_csv_cell(value) for value in row) for row in table.rows)
        written.append(path)
    page = out / "index.html"
    page.write_text(html_page(insights, now), encoding="utf-8")
    return [page, *written]
