"""/metrics, /healthz and /readyz on the web listener: no session needed, the archive's
gauges, the store's and the catalog's readiness, the last verify, and no 500 for anything."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .web_helpers import Web

CLI = Path(sys.executable).parent / "postfix-archiver"


def gauges(text: str) -> dict[str, float]:
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }


def test_metrics_need_no_session_and_show_the_archive(web: Web) -> None:
    response = web.client().get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    g = gauges(response.text)
    assert g["postfix_archiver_archive_messages"] == web.archive.stats().messages > 0
    assert g["postfix_archiver_index_queue_messages"] == web.archive.catalog.index_status().queued
    assert g["postfix_archiver_archive_readable"] == 1
    assert "postfix_archiver_last_verify_ok" not in g  # never verified: nothing invented


def test_verify_records_its_result_for_the_metrics(web: Web) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_HOME"] = str(web.config.archive.home)
    done = subprocess.run(
        [str(CLI), "verify"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    g = gauges(web.client().get("/metrics").text)
    assert g["postfix_archiver_last_verify_ok"] == 1
    assert g["postfix_archiver_last_verify_problems"] == 0
    assert 0 <= g["postfix_archiver_last_verify_age_seconds"] < 120


def test_readyz_says_which_part_is_not_ready(web: Web) -> None:
    client = web.client()
    assert (client.get("/readyz").status_code, client.get("/readyz").text) == (200, "ready\n")
    blobs = Path(web.config.archive.store_url.removeprefix("file://"))
    moved = blobs.with_name("blobs-away")
    blobs.rename(moved)  # the disk under the store is gone
    try:
        response = client.get("/readyz")
    finally:
        moved.rename(blobs)
    assert response.status_code == 503
    assert response.text.startswith("not ready\nstore not writable: ")
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/metrics"),
        ("DELETE", "/readyz"),
        ("PUT", "/healthz"),
        ("GET", "/metrics/" + "x" * 20000),
        ("GET", "/readyz?" + "a=1&" * 5000),
        ("GET", "/metrics%00"),
        ("GET", "/%D9%A3/metrics"),
    ],
)
def test_hostile_requests_never_500(web: Web, method: str, path: str) -> None:
    response = web.client().request(method, path)
    assert response.status_code < 500
