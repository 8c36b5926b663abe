"""A catalog or blob pack locked by another process (a backup, a ``sqlite3`` shell in a write
transaction): every message is answered 451 within ``answer_timeout`` whatever the batch, and
mail flows again, archived once, as soon as the lock is gone."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from postfix_archiver.archive import Archive
from postfix_archiver.errors import ConfigError

from .capture_helpers import (
    Listener,
    Proxy,
    archived,
    archived_at,
    home_config,
    make_message,
    run_filter,
)

BOUND = 2.0  # answer_timeout in these tests, seconds
SLACK = 3.0  # generous: a slow CI machine, never a whole busy timeout per message
EX_TEMPFAIL = 75


@contextlib.contextmanager
def held(path: Path, how: str = "IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """Another connection holding a write transaction on ``path``, as a sqlite3 shell
    after ``BEGIN IMMEDIATE;`` would."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"BEGIN {how}")
        yield conn
        conn.execute("ROLLBACK")
    finally:
        conn.close()


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[Archive]:
    """An archive whose config says ``answer_timeout = "2s"``."""
    config = home_config(tmp_path / "home", f'[smtp]\nanswer_timeout = "{BOUND:g}s"\n')
    with Archive(config) as archive:
        yield archive


def ident(n: int) -> str:
    return f"NAME=client.example.net ADDR=192.0.2.7 IDENT=4LoCk{n}"


def send_all(
    proxy: Proxy, numbers: list[int], stagger: float = 0.0
) -> dict[int, tuple[int, float]]:
    """Send one message per number at once (each its own session); reply code and seconds
    from the start of its DATA to the answer, per number."""
    results: dict[int, tuple[int, float]] = {}

    def one(n: int) -> None:
        content = make_message(f"locked {n}")
        with contextlib.closing(proxy.client()) as smtp:
            smtp.ehlo("client.test")
            smtp.docmd("XFORWARD", ident(n))
            smtp.mail("alice@example.com")
            smtp.rcpt("bob@example.com")
            code, _ = smtp.docmd("DATA")
            assert code == 354
            smtp.send(content + b".\r\n")
            started = time.monotonic()
            code, _ = smtp.getreply()
            results[n] = (code, time.monotonic() - started)

    threads = []
    for n in numbers:
        threads.append(threading.Thread(target=one, args=(n,)))
        threads[-1].start()
        time.sleep(stagger)
    for thread in threads:
        thread.join(60)
    assert sorted(results) == sorted(numbers), results
    return results


def test_a_locked_catalog_answers_a_whole_batch_within_the_bound(
    start_proxy: Callable[..., Proxy],
    listener: Listener,
    bounded: Archive,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = start_proxy(listener.address, config=bounded.config, archive=bounded)
    code, text = proxy.send(make_message("before the lock"))  # connections are open
    assert code == 250, text

    with held(bounded.config.archive.home / "catalog.sqlite"):
        # two waves: the first blocks the batch thread, the second queues behind it
        results = send_all(proxy, list(range(8)), stagger=0.1)
        # the lock is still held: an arrival now is not stuck behind the earlier ones
        [(late_code, late)] = send_all(proxy, [8]).values()

    assert {code for code, _ in results.values()} == {451}
    slowest = max(seconds for _, seconds in results.values())
    assert slowest < BOUND + SLACK, results  # not BOUND (or 30 s) per message in the batch
    assert (late_code, late < BOUND + SLACK) == (451, True)
    assert "locked by another process" in caplog.text
    assert listener.handler.data_calls[1:] == []  # nothing reinjected that was not archived

    # the lock is gone: mail flows at once, and Postfix's retries archive each message once
    started = time.monotonic()
    code, text = proxy.send(make_message("after the lock"))
    assert code == 250, text
    assert time.monotonic() - started < 1.5
    for n in range(9):
        code, text = proxy.send(make_message(f"locked {n}"), xforward=ident(n))
        assert code == 250, text
    stored = archived(bounded)
    assert len(stored) == 11
    assert all(len(s.envelopes) == 1 for s in stored)
    assert len(listener.handler.messages) == 11


def test_mail_flows_at_once_when_the_lock_is_released(
    start_proxy: Callable[..., Proxy], listener: Listener, bounded: Archive
) -> None:
    proxy = start_proxy(listener.address, config=bounded.config, archive=bounded)
    assert proxy.send(make_message("first"))[0] == 250
    lock = sqlite3.connect(
        bounded.config.archive.home / "catalog.sqlite",
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        lock.execute("BEGIN IMMEDIATE")
        deferred = send_all(proxy, list(range(4)), stagger=0.05)
        # more mail while the lock is still held; the lock goes away while it waits
        release = threading.Timer(0.5, lock.execute, ("ROLLBACK",))
        release.start()
        results = send_all(proxy, list(range(4, 8)), stagger=0.05)
        release.join()
    finally:
        lock.close()

    assert {code for code, _ in deferred.values()} == {451}
    assert {code for code, _ in results.values()} == {250}
    # nothing lingers from the failed batches: answered as soon as the lock went away
    assert max(seconds for _, seconds in results.values()) < 0.5 + 1.5, results
    assert len(archived(bounded)) == 5


def test_a_locked_blob_pack_answers_within_the_bound(
    start_proxy: Callable[..., Proxy], listener: Listener, bounded: Archive
) -> None:
    proxy = start_proxy(listener.address, config=bounded.config, archive=bounded)
    assert proxy.send(make_message("before the lock"))[0] == 250

    with held(bounded.config.archive.home / "blobs" / "packed.sqlite", "EXCLUSIVE"):
        results = send_all(proxy, list(range(4)), stagger=0.1)

    assert {code for code, _ in results.values()} == {451}
    assert max(seconds for _, seconds in results.values()) < BOUND + SLACK, results
    assert len(archived(bounded)) == 1
    code, text = proxy.send(make_message("locked 0"), xforward=ident(0))
    assert code == 250, text
    assert len(archived(bounded)) == 2


def test_the_pipe_filter_exits_75_within_the_bound(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = tmp_path / "config.toml"
    config.write_text(f'[archive]\nhome = "{home}"\n\n[smtp]\nanswer_timeout = "{BOUND:g}s"\n')
    args = ["--config", str(config), "--sink", "--queue-id", "4PiPeLk", "-f", "a@example.com"]
    args += ["--", "bob@example.com"]
    content = make_message("piped while locked")
    first = run_filter(
        ["--config", str(config), "--sink", "-f", "a@b.example", "--", "c@d.example"],
        make_message("first"),
        home,
    )
    assert first.returncode == 0, first.stderr  # the catalog exists

    with held(home / "catalog.sqlite"):
        started = time.monotonic()
        done = run_filter(args, content, home, timeout=60)
        took = time.monotonic() - started

    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert took < BOUND + SLACK
    assert b"locked by another process" in done.stderr
    done = run_filter(args, content, home)
    assert done.returncode == 0, done.stderr
    [_, piped] = archived_at(home)
    assert len(piped.envelopes) == 1
    assert piped.envelopes[0].envelope.queue_id == "4PiPeLk"


def test_answer_timeout_is_a_period_checked_with_its_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert home_config(home).smtp.answer_timeout == 30.0
    assert home_config(home, '[smtp]\nanswer_timeout = "2m"\n').smtp.answer_timeout == 120.0
    assert home_config(home, "[smtp]\nanswer_timeout = 45\n").smtp.answer_timeout == 45.0
    for value, reason in [
        ('"soon"', 'must be a period such as "30s"'),
        ('"0s"', "must be between 1s and 600s"),
        ('"1h"', "must be between 1s and 600s"),
        ("true", "must be a period"),
    ]:
        with pytest.raises(ConfigError) as caught:
            home_config(home, f"\n[smtp]\nanswer_timeout = {value}\n")
        assert f"config.toml:5: smtp.answer_timeout: {reason}" in str(caught.value)
