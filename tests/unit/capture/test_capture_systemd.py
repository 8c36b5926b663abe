"""``serve`` and ``web`` under systemd's ``Type=notify``: READY=1 once the port accepts,
RELOADING=1 and READY=1 around a SIGHUP's rules reload, STOPPING=1 on SIGTERM. The test is
systemd: it listens on the datagram socket named by ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .capture_helpers import (
    CLI,
    Listener,
    archived_at,
    cli_env,
    crlf,
    free_port,
    transaction,
)

SKIP_CRON = """
[[rules]]
name = "cron mail"
header = { Subject = "^Cron" }
action = "skip"
"""


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        yield sock, path
    finally:
        sock.close()


def _next(sock: socket.socket, timeout: float = 20) -> str:
    sock.settimeout(timeout)
    return sock.recv(4096).decode()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _started(
    args: list[str], home: Path, notify: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = cli_env(home)
    env["NOTIFY_SOCKET"] = notify
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(CLI), *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def _cron(n: int) -> bytes:
    return crlf(
        f"From: root@example.com\nTo: ops@example.com\nSubject: Cron job {n}\n"
        f"Message-Id: <cron{n}@example.com>\n\noutput {n}\n"
    )


def _send(port: int, content: bytes) -> tuple[int, str]:
    with contextlib.closing(
        __import__("smtplib").SMTP("127.0.0.1", port, local_hostname="client.test", timeout=15)
    ) as smtp:
        return transaction(smtp, content, "root@example.com", ["ops@example.com"])


def test_serve_is_ready_only_once_it_accepts_and_reloads_and_stops_as_systemd_expects(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], listener: Listener
) -> None:
    sock, path = notify_socket
    home = tmp_path / "home"
    config = tmp_path / "archiver.toml"
    config.write_text(f'[archive]\nhome = "{home}"\n')
    port = free_port()
    args = ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    args += ["--reinject", listener.address]
    with _started(args, home, path, tmp_path / "serve.log") as proc:
        first = _next(sock)
        # the port accepts at the moment READY=1 arrives, not some time after
        assert _accepts(port), "READY=1 came before the port accepted"
        assert first.splitlines()[0] == "READY=1", first
        assert f"STATUS=listening on 127.0.0.1:{port}" in first

        code, text = _send(port, _cron(1))
        assert code == 250, text
        assert "archived as" in text, text
        assert len(archived_at(home)) == 1

        # SIGHUP: RELOADING=1 (with the monotonic time systemd asks for), then READY=1
        config.write_text(f'[archive]\nhome = "{home}"\n{SKIP_CRON}')
        proc.send_signal(signal.SIGHUP)
        reloading = _next(sock)
        assert reloading.splitlines()[0] == "RELOADING=1", reloading
        assert reloading.splitlines()[1].startswith("MONOTONIC_USEC=")
        assert _next(sock).startswith("READY=1")
        code, text = _send(port, _cron(2))
        assert code == 250, text
        assert "skipped" in text, text
        assert len(archived_at(home)) == 1

        # a broken file on reload: READY=1 again, the rules in force stay, one clear line
        config.write_text(f'[archive]\nhome = "{home}"\n[[rules]]\nname = 3\n')
        proc.send_signal(signal.SIGHUP)
        assert _next(sock).startswith("RELOADING=1")
        again = _next(sock)
        assert again.startswith("READY=1"), again
        assert "reload refused" in again, again
        code, text = _send(port, _cron(3))
        assert code == 250, text
        assert "skipped" in text, text
        log = (tmp_path / "serve.log").read_text()
        refused = [line for line in log.splitlines() if "reload refused" in line]
        assert len(refused) == 1, log
        assert str(config) in refused[0], log
        assert "Traceback" not in log

        proc.send_signal(signal.SIGTERM)
        assert _next(sock) == "STOPPING=1"
        assert proc.wait(20) == 0


def test_web_is_ready_once_it_answers(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    home = tmp_path / "home"
    port = free_port()
    args = ["web", "--listen", f"127.0.0.1:{port}"]
    with _started(args, home, path, tmp_path / "web.log") as proc:
        ready = _next(sock)
        assert ready.splitlines()[0] == "READY=1", ready
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /login HTTP/1.0\r\nHost: x\r\n\r\n")
            conn.settimeout(10)
            assert conn.recv(100).startswith(b"HTTP/1.1 "), "READY=1 before uvicorn answers"
        proc.send_signal(signal.SIGTERM)
        assert _next(sock) == "STOPPING=1"
        assert proc.wait(20) == 0


def test_no_notify_socket_no_notification(tmp_path: Path) -> None:
    """Outside systemd (and with a socket nobody listens on) nothing fails."""
    from postfix_archiver import sd_notify

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("NOTIFY_SOCKET", raising=False)
        assert sd_notify.notify("READY=1") is False
        mp.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody.sock"))
        assert sd_notify.notify("READY=1") is False
        mp.setenv("NOTIFY_SOCKET", "vsock:2:1234")
        assert sd_notify.notify("READY=1") is False
    time.sleep(0)
