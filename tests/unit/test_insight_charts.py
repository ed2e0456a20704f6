"""The insights' chart PNGs: valid pictures of a fixed size, with data, without it, and with awkward labels."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from bot.core.insights import FunnelStep, HardQuestion, Insights, WeekActivity
from bot.insights.charts import HEIGHT, WIDTH, chart_attachments, funnel_png, hardest_png

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk, after checking the signature and the chunk's CRC."""
    assert data[:8] == PNG_SIGNATURE
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    assert struct.unpack(">I", data[29:33])[0] == zlib.crc32(data[12:29])
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def distinct_colours(data: bytes) -> int:
    pixels = (imread(io.BytesIO(data), format="png") * 255).astype(np.uint32)
    packed = sum(pixels[..., channel] << (8 * channel) for channel in range(pixels.shape[-1]))  # one int a pixel
    return len(np.unique(packed))


def insights(lessons: int = 3, questions: int = 3, title: str = "Test track") -> Insights:
    funnel = tuple(FunnelStep(f"l{n}", f"Lesson {n} with a title far too long to fit in one chart label as it is",
                              40 - n, 30 - n) for n in range(lessons))  # fmt: skip
    hardest = tuple(HardQuestion(f"l{n % max(lessons, 1)}", "Lesson", n + 1, f"Question {n}, asked at length " * 4,
                                 20, min(2 + 3 * n, 20), "a wrong option that goes on and on and on", 9)
                    for n in range(questions))  # fmt: skip
    return Insights("t", title, None, 40, funnel, (), hardest, (), (WeekActivity("2024-W11", "2024-03-11", 1, 1),))


EMPTY = Insights("t", "Test track", None, 0, (FunnelStep("l0", "Lesson", 0, 0),), (), (), (), ())


@pytest.mark.parametrize("draw", [funnel_png, hardest_png])
@pytest.mark.parametrize("data", [insights(), insights(lessons=40, questions=25), EMPTY], ids=["some", "many", "empty"])
def test_each_chart_is_a_png_of_the_fixed_size(draw, data: Insights) -> None:  # noqa: ANN001
    png = draw(data)
    assert png_size(png) == (WIDTH, HEIGHT) == (1000, 600)
    assert distinct_colours(png) > 2  # something is drawn: not a blank picture


@pytest.mark.parametrize("draw", [funnel_png, hardest_png])
def test_an_empty_chart_differs_from_one_with_data(draw) -> None:  # noqa: ANN001
    assert draw(EMPTY) != draw(insights())
    # bars in the chart's colours appear only with data
    assert distinct_colours(draw(insights())) > distinct_colours(draw(EMPTY))


def test_dollar_signs_in_titles_are_text_not_formulas() -> None:
    # as mathtext, "$x^$" is a syntax error that would fail the drawing
    odd = insights(title="Costs in $x^$ and $")
    assert png_size(funnel_png(odd)) == (WIDTH, HEIGHT)
    assert png_size(hardest_png(odd)) == (WIDTH, HEIGHT)


def test_chart_attachments_are_two_named_pictures() -> None:
    attachments = chart_attachments(insights())
    assert [(a.filename, a.image) for a in attachments] == [("funnel.png", True), ("hardest.png", True)]
    assert all(png_size(a.data) == (WIDTH, HEIGHT) for a in attachments)


def test_drawing_never_touches_pyplot() -> None:
    # in a fresh process: pyplot's global figure manager must not be imported by drawing a chart
    script = (
        "import sys\n"
        "from bot.insights.charts import chart_attachments\n"
        "from tests.unit.test_insight_charts import insights\n"
        "chart_attachments(insights())\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, check=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
