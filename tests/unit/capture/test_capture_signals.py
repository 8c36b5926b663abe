"""``postfix-archiver serve`` as Postfix's service manager runs it: SIGTERM and SIGHUP."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .capture_helpers import Listener, ServeProcess, archived_at, crlf, make_message

SKIP_SYSTEM_MAIL = """
[[rules]]
name = "system mail"
preset = "system-mail"
action = "skip"
"""


def _cron(n: int) -> bytes:
    return crlf(
        "From: root@web1.example.com (Cron Daemon)\n"
        "To: root@web1.example.com\n"
        f"Subject: Cron <root@web1> job {n}\n"
        f"Message-Id: <cron{n}@web1.example.com>\n"
        "\n"
        f"output of job {n}\n"
    )


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_finishes_the_transaction_in_flight_then_exits_0(
    start_serve: Callable[..., ServeProcess], listener: Listener
) -> None:
    listener.handler.data_delay = 2.0
    server = start_serve("--reinject", listener.address)
    replies: list[tuple[int, str]] = []
    client = threading.Thread(target=lambda: replies.append(server.send(make_message("late"))))
    client.start()
    try:
        assert listener.handler.data_started.wait(10), "the message never reached the listener"
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()

        # no new connections while the one in flight is finishing
        while not _refused(server.port):
            assert time.monotonic() - signalled < 1.5, "still accepting after SIGTERM"
            time.sleep(0.02)
        assert server.proc.poll() is None
        assert client.is_alive(), "answered before the listener did"
    finally:
        client.join(20)

    assert len(replies) == 1
    assert replies[0][0] == 250, replies
    assert server.proc.wait(10) == 0
    assert time.monotonic() - signalled < 6
    assert len(listener.handler.messages) == 1
    assert len(archived_at(server.home)) == 1
    assert "Traceback" not in server.log


def test_sighup_reloads_the_rules(
    tmp_path: Path, start_serve: Callable[..., ServeProcess], listener: Listener
) -> None:
    home = tmp_path / "home"
    config = tmp_path / "archiver.toml"
    config.write_text(f'[archive]\nhome = "{home}"\n')
    server = start_serve("--config", str(config), "--reinject", listener.address, home=home)

    code, text = server.send(_cron(1), "root@web1.example.com", ["root@web1.example.com"])
    assert code == 250, text
    assert len(archived_at(home)) == 1  # no rules yet: kept

    config.write_text(f'[archive]\nhome = "{home}"\n{SKIP_SYSTEM_MAIL}')
    server.signal(signal.SIGHUP)
    server.wait_log("reloaded rules")

    code, text = server.send(_cron(2), "root@web1.example.com", ["root@web1.example.com"])
    assert code == 250, text
    assert "skipped" in text
    assert len(archived_at(home)) == 1
    assert listener.handler.messages[-1].content.startswith(
        b'X-Archive-Status: Skipped; rule="system mail"\r\n'
    )


def test_sighup_with_a_broken_config_keeps_the_old_rules(
    tmp_path: Path, start_serve: Callable[..., ServeProcess], listener: Listener
) -> None:
    home = tmp_path / "home"
    config = tmp_path / "archiver.toml"
    config.write_text(f'[archive]\nhome = "{home}"\n{SKIP_SYSTEM_MAIL}')
    server = start_serve("--config", str(config), "--reinject", listener.address, home=home)

    config.write_text(f'[archive]\nhome = "{home}"\nbogus_key = 1\n')
    server.signal(signal.SIGHUP)
    server.wait_log("reload refused")
    assert "bogus_key" in server.log

    code, text = server.send(_cron(3), "root@web1.example.com", ["root@web1.example.com"])
    assert code == 250, text
    assert "skipped" in text  # the rules in force stayed
    code, text = server.send(make_message("business as usual"))
    assert code == 250, text
    assert "archived as" in text
    assert len(archived_at(home)) == 1
    assert server.proc.poll() is None
