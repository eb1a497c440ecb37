"""The plots inside rpbook's reports: one PNG per report, embedded in its HTML, nothing left open."""

from __future__ import annotations

import base64
import logging
import re

from rpbook.account.jobqueue import Health
from rpbook.account.wakeup import WakeReport
from rpbook.core.plots import latency_bars_html, timeline_html
from rpbook.endpoint.chat import SanityReport
from rpbook.endpoint.checks import CheckResult

PNG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def pngs(html: str) -> list[tuple[str, bytes]]:
    return [(alt, base64.b64decode(data)) for alt, data in PNG.findall(html)]


def test_wake_report_shows_its_timeline_as_one_plot():
    report = WakeReport(
        endpoint_id="ep1",
        job_id="j1",
        cold=True,
        timeline={"queued": 0.05, "initializing": 0.4, "ready": 2.1, "first token": 2.3},
        total_s=2.3,
        health_at_submit=Health(),
        health_at_end=Health(idle=1),
    )
    images = pngs(report._repr_html_())
    assert len(images) == 1
    alt, png = images[0]
    assert png.startswith(b"\x89PNG") and len(png) > 2000
    assert "initializing 0.40 s" in alt and "first token 2.30 s" in alt  # the numbers, for readers without images
    assert "<table>" in report._repr_html_()  # the table stays beside the plot


def test_warm_wake_with_one_stage_has_no_plot():
    assert timeline_html({"ready": 0.0}, 0.1, "warm") == ""
    assert latency_bars_html([("chat", 0.1)], "one") == ""


def test_check_report_plots_the_time_of_each_request():
    report = SanityReport(
        endpoint_id="ep1",
        model="m",
        checks=(
            CheckResult("/models", True, "lists m", {"models_latency_s": 0.012}),
            CheckResult("chat completion", True, "answered", {"chat_latency_s": 0.2, "completion_tokens": 9}),
            CheckResult("streamed chat", True, "streamed", {"ttft_s": 0.05, "stream_total_s": 0.3, "stream_chunks": 9}),
            CheckResult("langchain", False, "HTTP 500", {}),
        ),
    )
    assert report.latencies() == [("/models", 0.012), ("chat completion", 0.2), ("streamed chat (first token)", 0.05)]
    images = pngs(report._repr_html_())
    assert len(images) == 1 and "chat completion 0.200 s" in images[0][0]


def test_drawing_leaves_no_pyplot_figure_and_restores_matplotlib_logging():
    logger = logging.getLogger("matplotlib")
    logger.setLevel(logging.INFO)
    try:
        timeline_html({"queued": 0.0, "ready": 1.0}, 1.0, "t")
        assert logger.level == logging.INFO
    finally:
        logger.setLevel(logging.NOTSET)
    import sys

    if "matplotlib.pyplot" in sys.modules:  # another library may have imported it; rpbook must not add figures
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
