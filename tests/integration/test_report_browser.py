"""The host's insights report opened in a real browser (headless Chromium): both charts load and show."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from bench.insights import NOW, bench_track, seed
from bot.insights.charts import HEIGHT, WIDTH
from bot.insights.report import write_report
from bot.store.database import Database
from bot.store.insights import SqlInsights

pytestmark = pytest.mark.integration

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        pytest.skip(f"no headless browser to open the report with (none of {', '.join(BROWSERS)} is on PATH); "
                    "on Debian: apt-get install -y chromium")  # fmt: skip
    return found


def _headless(browser: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=10000", *arguments]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report on a seeded class of 300 learners."""
    folder = tmp_path_factory.mktemp("report")
    track = bench_track()
    database = Database(folder / "tutorbot.sqlite3")
    try:
        seed(database, track, 300, random.Random(7))
        insights = SqlInsights(database).insights(track, None, NOW)
    finally:
        database.close()
    assert insights.learners and insights.hardest  # both charts have data to draw
    write_report(insights, folder / "out", NOW)
    return folder / "out" / "index.html"


def test_the_browser_loads_both_chart_images(browser: str, report: Path, tmp_path: Path) -> None:
    dom = _headless(browser, tmp_path / "profile", "--dump-dom", report.as_uri()).stdout
    # the page's own script counts the charts whose image decoded (naturalWidth > 0)
    assert re.search(r'<body[^>]*data-charts-loaded="2"', dom), dom[:500]
    assert len(re.findall(r'<img class="chart" id="(funnel|hardest)"', dom)) == 2
    assert "<table>" in dom and "Hardest quiz questions" in dom


def test_the_charts_show_in_a_screenshot(browser: str, report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    _headless(browser, tmp_path / "profile", f"--screenshot={shot}", f"--window-size={WIDTH + 200},{HEIGHT + 600}",
              report.as_uri())  # fmt: skip
    pixels = imread(shot)[..., :3]
    # the funnel's two blues and the hardest chart's red are drawn only by the charts
    blue = np.all(np.abs(pixels - np.array([0x21, 0x71, 0xB5]) / 255) < 0.02, axis=-1).sum()
    assert blue > 1000, "the funnel chart's bars are not on the screen"
