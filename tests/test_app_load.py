"""A small run of ``scripts/app_load.py`` (``make app-load`` runs 4 clients x 50 requests):
the app in its own process, a round of odd uploads, then 2 clients x 5 requests of the same
photo. Every answer must arrive whole and the server's memory must come back to its
baseline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
pytest.importorskip("ai_edge_litert")
if not Path("/proc/self/status").is_file():
    pytest.skip("the load test reads memory from /proc (Linux)", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import app_load  # noqa: E402


def test_two_clients_get_every_answer_whole_and_memory_returns():
    from emotion_edge.runtime.bundled import bundled_models

    if "default" not in bundled_models():
        pytest.skip("the bundled default model is not in this checkout")
    args = app_load.parse_args(["--clients", "2", "--requests", "5", "--bursts", "1"])
    report = app_load.load_test(args)
    assert report.requests == 10
    assert (report.errors, report.warmup_errors, report.odd_unanswered) == (0, 0, 0), \
        report.error_samples
    assert report.odd_uploads == 10  # 9 kinds, each at least once, 5 per client
    assert report.rss_peak_mb > report.rss_baseline_mb  # the sampler saw the work
    assert report.growth_mb <= args.max_growth_mb, report
