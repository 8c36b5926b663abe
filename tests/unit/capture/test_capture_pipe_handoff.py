"""``postfix-archiver filter --proxy``: the piped message handed to a running SMTP proxy.

The proxy (a real ``ProxyServer`` over the test's archive, reinjecting to a real listener)
archives, stamps and reinjects; the filter's exit code follows its answer. Where no proxy
takes the message, nothing has been sent and the filter archives it itself.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .capture_helpers import CLI, Listener, Proxy, archived, archived_at, cli_env, run_filter
from .capture_helpers import free_port as unused_port
from .test_capture_pipe import MESSAGE

EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75


def _args(proxy: str, reinject: str, *more: str) -> list[str]:
    return ["--proxy", proxy, "--reinject", reinject, *more, "-f", "alice@example.com", "--"]


def test_the_proxy_archives_stamps_and_reinjects(
    tmp_path: Path, proxy: Proxy, listener: Listener
) -> None:
    home = tmp_path / "filter-home"  # where the filter would archive by itself
    client = ["--client-address", "192.0.2.9", "--helo", "helo.example.net"]
    args = _args(f"127.0.0.1:{proxy.port}", listener.address, "--queue-id", "4HaNd1", *client)

    done = run_filter([*args, "bob@example.com", "dave@example.com"], MESSAGE, home)

    assert done.returncode == 0, done.stderr
    (message,) = archived(proxy.archive)
    env = message.envelopes[0].envelope
    assert (env.sender, env.queue_id, env.client_address, env.helo) == (
        "alice@example.com",
        "4HaNd1",
        "192.0.2.9",
        "helo.example.net",
    )
    assert list(env.recipients) == ["bob@example.com", "dave@example.com"]
    assert message.raw == MESSAGE.replace(b"\n", b"\r\n")  # as the proxy gets it, unstamped
    (got,) = listener.handler.messages
    assert got.recipients == ["bob@example.com", "dave@example.com"]
    assert got.content.startswith(b"X-Archive-Status: Archived\r\nX-Archive-Id: %d\r\n" % 1)
    assert got.xforward["IDENT"] == "4HaNd1"
    assert not home.exists()  # nothing archived in the filter's own process


def test_a_retry_through_the_proxy_is_archived_once(proxy: Proxy, listener: Listener) -> None:
    args = _args(f"127.0.0.1:{proxy.port}", listener.address, "--queue-id", "4ReTrY2")
    home = Path("/nonexistent/never-used")

    first = run_filter([*args, "bob@example.com"], MESSAGE, home)
    second = run_filter([*args, "bob@example.com"], MESSAGE, home)

    assert (first.returncode, second.returncode) == (0, 0), (first.stderr, second.stderr)
    (message,) = archived(proxy.archive)
    assert len(message.envelopes) == 1
    assert len(listener.handler.messages) == 2


def test_without_a_proxy_there_the_filter_archives_itself(
    tmp_path: Path, listener: Listener
) -> None:
    home = tmp_path / "home"
    args = _args(f"127.0.0.1:{unused_port()}", listener.address, "--queue-id", "4SeLf")

    done = run_filter([*args, "bob@example.com"], MESSAGE, home)

    assert done.returncode == 0, done.stderr
    (message,) = archived_at(home)
    assert message.raw == MESSAGE  # as pipe(8) handed it over
    assert message.envelopes[0].envelope.source == "pipe"
    assert len(listener.handler.messages) == 1


def test_a_server_that_is_no_archiver_is_sent_nothing(tmp_path: Path, listener: Listener) -> None:
    """A Postfix smtpd (or anything else) on the --proxy port would deliver the mail
    unarchived: its greeting must name postfix-archiver before a command is sent."""
    stranger = Listener().start()
    try:
        home = tmp_path / "home"
        args = _args(stranger.address, listener.address, "--queue-id", "4StRaNgE")

        done = run_filter([*args, "bob@example.com"], MESSAGE, home)

        assert done.returncode == 0, done.stderr
        assert stranger.handler.messages == []
        assert stranger.handler.data_calls == []
        assert len(archived_at(home)) == 1
        assert len(listener.handler.messages) == 1
    finally:
        stranger.stop()


def test_a_temporary_failure_behind_the_proxy_is_tempfail(
    tmp_path: Path, proxy: Proxy, listener: Listener
) -> None:
    listener.handler.data_reply = "451 4.3.0 later"
    args = _args(f"127.0.0.1:{proxy.port}", listener.address, "--queue-id", "4TeMp")

    done = run_filter([*args, "bob@example.com"], MESSAGE, tmp_path / "home")

    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert b"Traceback" not in done.stderr
    assert len(listener.handler.data_calls) == 1  # the proxy archived it and tried
    assert not (tmp_path / "home").exists()  # not archived a second time here


def test_a_permanent_reject_behind_the_proxy_is_passed_on(
    tmp_path: Path, proxy: Proxy, listener: Listener
) -> None:
    listener.handler.data_reply = "552 5.3.4 Message too big"
    args = _args(f"127.0.0.1:{proxy.port}", listener.address, "--queue-id", "4PeRm")

    done = run_filter([*args, "bob@example.com"], MESSAGE, tmp_path / "home")

    assert done.returncode == EX_UNAVAILABLE, done.stderr


def test_a_sink_is_no_proxy_the_mail_stays_queued(
    tmp_path: Path, start_proxy: Callable[..., Proxy], listener: Listener
) -> None:
    """A sink answers 250 without reinjecting: exit 0 would lose the mail."""
    sink = start_proxy(None)
    args = _args(f"127.0.0.1:{sink.port}", listener.address, "--queue-id", "4SiNk")

    done = run_filter([*args, "bob@example.com"], MESSAGE, tmp_path / "home")

    assert done.returncode == EX_TEMPFAIL
    assert b"sink" in done.stderr
    assert listener.handler.messages == []


def test_a_bad_proxy_address_is_one_line_before_anything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = run_filter(["--proxy", "127.0.0.1:99999", "-f", "a@example.com", "--", "b@example.org"],
                      MESSAGE, home)  # fmt: skip
    assert done.returncode == EX_TEMPFAIL
    [line] = done.stderr.decode().strip().splitlines()
    assert "--proxy" in line
    assert "out of range" in line
    assert not home.exists()


# loaded only to archive in the filter's own process (or for the rest of the command line):
# a message the proxy takes needs none of them
NOT_FOR_THE_HANDOFF = (
    "tomllib",
    "sqlite3",
    "zstandard",
    "email",
    "logging",
    "dataclasses",
    "inspect",
    "encodings.idna",
    "asyncio",
    "click",
    "postfix_archiver.config",
    "postfix_archiver.app",
    "postfix_archiver.archive",
    "postfix_archiver.catalog",
    "postfix_archiver.rules",
)


def test_the_handoff_loads_nothing_archiving_needs(
    tmp_path: Path, proxy: Proxy, listener: Listener
) -> None:
    code = (
        "import sys\n"
        "from postfix_archiver.entry import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code)\n"
        f"print(' '.join(m for m in {NOT_FOR_THE_HANDOFF!r} if m in sys.modules))\n"
    )
    argv = [CLI.name, "filter", *_args(f"127.0.0.1:{proxy.port}", listener.address)]
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.argv = {[*argv, 'b@example.com']!r}\n{code}"],
        input=MESSAGE,
        capture_output=True,
        env=cli_env(tmp_path / "home"),
        timeout=30,
        check=True,
    )
    status, loaded = done.stdout.decode().split("\n")[:2]
    assert status == "0", done.stderr
    assert loaded == ""
    assert len(archived(proxy.archive)) == 1


@pytest.mark.slow
def test_a_proxy_that_never_greets_is_given_up_and_nothing_sent(
    tmp_path: Path, listener: Listener
) -> None:
    """Accepted by the kernel, never greeted (a hung proxy): after the greeting's timeout the
    filter archives the message itself, long before Postfix's own limit."""
    with socket.create_server(("127.0.0.1", 0)) as hung:  # listens, never accepts
        port = hung.getsockname()[1]
        home = tmp_path / "home"
        started = time.monotonic()

        done = run_filter([*_args(f"127.0.0.1:{port}", listener.address), "b@example.org"],
                          MESSAGE, home, timeout=60)  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 40
    assert len(archived_at(home)) == 1
    assert len(listener.handler.messages) == 1
