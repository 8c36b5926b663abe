"""Metrics and health of ``postfix-archiver serve``: the counters after real SMTP
transactions through the proxy (a skip rule and a deferral among them) scraped from its
``[metrics] listen``, and ``/readyz`` following the real reinjection listener."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .capture_helpers import Listener, ServeProcess, free_port, make_message

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

RULES = """
[[rules]]
name = "newsletters"
sender = ["news@*"]
action = "skip"
"""


def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        conn.close()


def scrape(port: int) -> Samples:
    status, text = get(port, "/metrics")
    assert status == 200, text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _serve(
    tmp_path: Path, start_serve: Callable[..., ServeProcess], listener: Listener
) -> tuple[ServeProcess, int]:
    home = tmp_path / "home"
    metrics_port = free_port()
    config = tmp_path / "archiver.toml"
    config.write_text(
        f'[archive]\nhome = "{home}"\n\n[metrics]\nlisten = "127.0.0.1:{metrics_port}"\n{RULES}'
    )
    server = start_serve("--config", str(config), "--reinject", listener.address, home=home)
    return server, metrics_port


def test_counters_after_real_transactions_are_exact(
    tmp_path: Path, start_serve: Callable[..., ServeProcess], listener: Listener
) -> None:
    server, port = _serve(tmp_path, start_serve, listener)
    sent = 0
    for i in range(3):
        message = make_message(f"Report {i}")
        sent += len(message)
        assert server.send(message)[0] == 250
    news = make_message("This week's offers", sender="news@shop.example")
    sent += len(news)
    code, text = server.send(news, sender="news@shop.example")
    assert code == 250, text
    # the reinjection listener defers one: the proxy must defer it too
    listener.handler.data_reply = "451 4.3.0 Try again later"
    deferred = make_message("Deferred one")
    sent += len(deferred)
    assert server.send(deferred)[0] == 451

    m = scrape(port)
    total = "postfix_archiver_messages_received_total"
    assert value(m, total, source="smtp") == 5
    assert value(m, "postfix_archiver_received_bytes_total", source="smtp") == sent
    assert value(m, "postfix_archiver_messages_archived_total", source="smtp") == 3
    assert (
        value(m, "postfix_archiver_messages_skipped_total", source="smtp", rule="newsletters") == 1
    )
    assert (
        value(m, "postfix_archiver_messages_deferred_total", source="smtp", reason="reinject") == 1
    )
    assert value(m, "postfix_archiver_messages_rejected_total", source="smtp") is None
    assert value(m, "postfix_archiver_answer_seconds_count", source="smtp") == 5
    assert value(m, "postfix_archiver_reinject_seconds_count") == 5
    # one message at a time: each was its own batch (the skipped one too: it was decided
    # by the committer), and the deferred one was committed before the listener refused it
    assert value(m, "postfix_archiver_batch_size_count") == 5
    assert value(m, "postfix_archiver_batch_size_sum") == 5
    assert value(m, "postfix_archiver_commit_seconds_count") == 5
    # the archive's gauges: the skipped one is not in it, the deferred one is
    assert value(m, "postfix_archiver_archive_messages") == 4
    assert value(m, "postfix_archiver_archive_readable") == 1
    assert (value(m, "postfix_archiver_store_bytes") or 0) > 0
    assert (value(m, "postfix_archiver_filesystem_avail_bytes") or 0) > 0
    # no verify has run yet: no verify age is invented
    assert value(m, "postfix_archiver_last_verify_age_seconds") is None


def test_readyz_follows_the_reinjection_listener(
    tmp_path: Path, start_serve: Callable[..., ServeProcess], listener: Listener
) -> None:
    _server, port = _serve(tmp_path, start_serve, listener)
    status, body = get(port, "/readyz")
    assert (status, body) == (200, "ready\n")
    listener.stop()
    status, body = get(port, "/readyz")
    assert status == 503
    assert f"reinjection listener {listener.address} not answering" in body
    listener.start()  # the same port again
    assert get(port, "/readyz")[0] == 200
    assert get(port, "/healthz")[0] == 200


def test_hostile_requests_to_the_metrics_listener_never_500(
    tmp_path: Path, start_serve: Callable[..., ServeProcess], listener: Listener
) -> None:
    _server, port = _serve(tmp_path, start_serve, listener)
    for method, path in [
        ("POST", "/metrics"),
        ("DELETE", "/readyz"),
        ("PUT", "/healthz"),
        ("GET", "/metrics/" + "a" * 60000),
        ("GET", "/%00%ff/../metrics"),
        ("GET", "/readyz?" + "x=" * 10000),
        ("OPTIONS", "*"),
        ("GET", "/%D9%A3"),
    ]:
        status, _ = get(port, path, method)
        assert status < 500, (method, path[:40], status)
    assert get(port, "/metrics", "HEAD")[0] == 200
    # 8-bit bytes in the request line
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /readyz\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = sock.recv(100)
    assert not answer.startswith(b"HTTP/1.1 5"), answer
    # still serving after all that
    assert get(port, "/healthz")[0] == 200


def test_the_sink_counts_as_the_sink_and_is_ready_without_a_listener(
    tmp_path: Path, start_serve: Callable[..., ServeProcess]
) -> None:
    home = tmp_path / "home"
    port = free_port()
    config = tmp_path / "archiver.toml"
    config.write_text(f'[archive]\nhome = "{home}"\n\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    server = start_serve("--config", str(config), "--sink", home=home)
    message = make_message("Journal copy")
    assert server.send(message)[0] == 250
    m = scrape(port)
    assert value(m, "postfix_archiver_messages_received_total", source="sink") == 1
    assert value(m, "postfix_archiver_messages_archived_total", source="sink") == 1
    assert value(m, "postfix_archiver_archived_bytes_total", source="sink") == len(message)
    assert value(m, "postfix_archiver_messages_received_total", source="smtp") is None
    assert value(m, "postfix_archiver_reinject_seconds_count") == 0
    # a sink reinjects nothing: no listener to wait for
    assert get(port, "/readyz") == (200, "ready\n")
