"""``postfix-archiver filter``, run as pipe(8) runs it: message on stdin, sysexits out.

Postfix bounces on any exit but 0 and 75, so every failure that is not a permanent reject
by the reinjection listener must exit 75, usage and config errors included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .capture_helpers import Listener, archived_at, free_port, run_filter

# pipe(8) hands the message over with UNIX line endings
MESSAGE = (
    b"Received: from client.example.net (client.example.net [192.0.2.9])\n"
    b"\tby mx.example.com (Postfix) with ESMTP id 4FromRcvd;\n"
    b"\tMon,  4 Mar 2024 10:00:00 +0100 (CET)\n"
    b"From: Alice <alice@example.com>\n"
    b"To: bob@example.com\n"
    b"Subject: piped\n"
    b"X-Archive-Status: Skipped; forged\n"
    b"Message-ID: <piped@example.com>\n"
    b"\n"
    b"Hello over the pipe.\n"
    b".\n"
    b"..leading dots\n"
)
EX_TEMPFAIL = 75
EX_UNAVAILABLE = 69


def _home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_filter_archives_then_reinjects_stamped(tmp_path: Path, listener: Listener) -> None:
    home = _home(tmp_path)
    args = [
        "--reinject",
        listener.address,
        "--queue-id",
        "4PiPe1",
        "--client-address",
        "192.0.2.9",
        "--client-name",
        "client.example.net",
        "--helo",
        "helo.example.net",
        "-f",
        "alice@example.com",
        "--",
        "bob@example.com",
        "dave@example.com",
    ]

    done = run_filter(args, MESSAGE, home)

    assert done.returncode == 0, done.stderr
    (message,) = archived_at(home)
    assert message.raw == MESSAGE  # as Postfix handed it over, byte for byte
    env = message.envelopes[0].envelope
    assert (env.source, env.sender, env.queue_id) == ("pipe", "alice@example.com", "4PiPe1")
    assert list(env.recipients) == ["bob@example.com", "dave@example.com"]
    assert (env.client_address, env.client_name, env.helo) == (
        "192.0.2.9",
        "client.example.net",
        "helo.example.net",
    )
    (got,) = listener.handler.messages
    assert got.sender == "alice@example.com"
    assert got.recipients == ["bob@example.com", "dave@example.com"]
    assert got.xforward == {
        "NAME": "client.example.net",
        "ADDR": "192.0.2.9",
        "HELO": "helo.example.net",
        "IDENT": "4PiPe1",
    }
    # stamped, the forgery gone, sent as proper SMTP lines: nothing added, nothing lost
    expected = b"X-Archive-Status: Archived\nX-Archive-Id: %d\n" % message.row.id + MESSAGE.replace(
        b"X-Archive-Status: Skipped; forged\n", b""
    )
    assert got.content == expected.replace(b"\n", b"\r\n")


def test_filter_classic_positional_form(tmp_path: Path, listener: Listener) -> None:
    home = _home(tmp_path)
    args = [
        "127.0.0.1",
        str(listener.port),
        "alice@example.com",
        "bob@example.com",
        "c@example.com",
    ]

    done = run_filter(args, MESSAGE, home)

    assert done.returncode == 0, done.stderr
    (got,) = listener.handler.messages
    assert (got.sender, got.recipients) == (
        "alice@example.com",
        ["bob@example.com", "c@example.com"],
    )
    (message,) = archived_at(home)
    assert list(message.envelopes[0].envelope.recipients) == ["bob@example.com", "c@example.com"]
    assert message.envelopes[0].envelope.queue_id == "4FromRcvd"  # from the Received header


def test_filter_null_sender(tmp_path: Path, listener: Listener) -> None:
    home = _home(tmp_path)

    done = run_filter(
        ["--reinject", listener.address, "-f", "", "--", "bob@example.com"], MESSAGE, home
    )

    assert done.returncode == 0, done.stderr
    assert listener.handler.messages[0].sender == ""
    assert archived_at(home)[0].envelopes[0].envelope.sender == ""


def test_filter_listener_down_is_tempfail_and_archived(tmp_path: Path) -> None:
    home = _home(tmp_path)
    args = [
        "--reinject",
        f"127.0.0.1:{free_port()}",
        "-f",
        "alice@example.com",
        "--",
        "bob@example.com",
    ]

    done = run_filter(args, MESSAGE, home)

    assert done.returncode == EX_TEMPFAIL, done.stderr
    (message,) = archived_at(home)
    assert message.raw == MESSAGE


def test_filter_permanent_reject_is_passed_on(tmp_path: Path, listener: Listener) -> None:
    listener.handler.data_reply = "552 5.3.4 Message too big"
    args = ["--reinject", listener.address, "-f", "alice@example.com", "--", "bob@example.com"]

    done = run_filter(args, MESSAGE, _home(tmp_path))

    assert done.returncode == EX_UNAVAILABLE, done.stderr


def test_filter_temporary_reject_is_tempfail(tmp_path: Path, listener: Listener) -> None:
    listener.handler.data_reply = "451 4.3.0 later"
    args = ["--reinject", listener.address, "-f", "alice@example.com", "--", "bob@example.com"]

    done = run_filter(args, MESSAGE, _home(tmp_path))

    assert done.returncode == EX_TEMPFAIL, done.stderr


def test_filter_partial_recipient_refusal_is_tempfail(tmp_path: Path, listener: Listener) -> None:
    listener.handler.rcpt_replies["carol@example.com"] = "550 5.1.1 unknown user"
    args = [
        "--reinject",
        listener.address,
        "-f",
        "alice@example.com",
        "--",
        "bob@example.com",
        "carol@example.com",
    ]

    done = run_filter(args, MESSAGE, _home(tmp_path))

    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert listener.handler.data_calls == []


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-f", "alice@example.com", "--"],
        ["-f", "alice@example.com"],
        ["--bogus", "-f", "alice@example.com", "--", "bob@example.com"],
        ["-f"],
        ["--help"],
    ],
    ids=[
        "nothing",
        "no recipients after --",
        "no recipients",
        "unknown option",
        "no sender",
        "help",
    ],
)
def test_filter_usage_errors_are_tempfail(
    tmp_path: Path, listener: Listener, args: list[str]
) -> None:
    done = run_filter(["--reinject", listener.address, *args], MESSAGE, _home(tmp_path))

    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert b"postfix-archiver filter:" in done.stderr
    assert listener.handler.connections == 0


@pytest.mark.parametrize(
    "text",
    ["[archive]\nbogus = 1\n", "[archive\n", '[smtp]\nreinject = "nowhere"\n'],
    ids=["unknown key", "not TOML", "bad value"],
)
def test_filter_broken_config_is_tempfail(tmp_path: Path, listener: Listener, text: str) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(text)
    args = [
        "--config",
        str(config),
        "--reinject",
        listener.address,
        "-f",
        "a@example.com",
        "--",
        "b@example.com",
    ]

    done = run_filter(args, MESSAGE, _home(tmp_path))

    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert str(config).encode() in done.stderr
    assert listener.handler.connections == 0


def test_filter_missing_config_is_tempfail(tmp_path: Path, listener: Listener) -> None:
    args = ["--config", str(tmp_path / "nope.toml"), "-f", "a@example.com", "--", "b@example.com"]

    done = run_filter(args, MESSAGE, _home(tmp_path))

    assert done.returncode == EX_TEMPFAIL, done.stderr


def test_filter_unwritable_store_is_tempfail(tmp_path: Path, listener: Listener) -> None:
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a directory")
    config = tmp_path / "archiver.toml"
    config.write_text(
        f'[archive]\nhome = "{tmp_path / "home"}"\nstore = "file://{blocker}/blobs"\n'
    )
    args = [
        "--config",
        str(config),
        "--reinject",
        listener.address,
        "-f",
        "a@example.com",
        "--",
        "b@example.com",
    ]

    done = run_filter(args, MESSAGE, _home(tmp_path))

    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert str(blocker).encode() in done.stderr
    assert listener.handler.connections == 0  # not reinjected without an archived copy


def test_filter_retry_archives_once(tmp_path: Path, listener: Listener) -> None:
    home = _home(tmp_path)
    args = [
        "--reinject",
        listener.address,
        "--queue-id",
        "4ReTrY",
        "-f",
        "alice@example.com",
        "--",
        "bob@example.com",
    ]

    first = run_filter(args, MESSAGE, home)
    second = run_filter(args, MESSAGE, home)

    assert (first.returncode, second.returncode) == (0, 0), (first.stderr, second.stderr)
    (message,) = archived_at(home)
    assert len(message.envelopes) == 1
    assert message.envelopes[0].envelope.queue_id == "4ReTrY"
    assert len(listener.handler.messages) == 2  # Postfix asked twice, so it was given twice


def test_filter_sink_does_not_reinject(tmp_path: Path, listener: Listener) -> None:
    home = _home(tmp_path)
    message = MESSAGE.replace(
        b"To: bob@example.com\n", b"To: bob@example.com\nX-Original-To: eve@example.com\n"
    )
    args = [
        "--sink",
        "--reinject",
        listener.address,
        "-f",
        "alice@example.com",
        "--",
        "journal@example.com",
    ]

    done = run_filter(args, message, home)

    assert done.returncode == 0, done.stderr
    assert listener.handler.connections == 0
    (stored,) = archived_at(home)
    assert list(stored.envelopes[0].envelope.recipients) == [
        "journal@example.com",
        "eve@example.com",
    ]


@pytest.mark.parametrize("address", ["127.0.0.1:²", "127.0.0.1:" + "9" * 5000, "nohost", ":25"])
def test_a_bad_reinject_address_is_one_line_before_anything_is_archived(
    tmp_path: Path, address: str
) -> None:
    home = _home(tmp_path)
    done = run_filter(["--reinject", address, "-f", "a@example.com", "--", "b@example.org"],
                      MESSAGE, home)  # fmt: skip
    assert done.returncode == 75  # never a bounce
    [line] = done.stderr.decode().strip().splitlines()
    assert "--reinject" in line
    assert "HOST:PORT" in line or "out of range" in line
    assert not home.exists()


def test_filter_to_a_listener_without_pipelining(tmp_path: Path, listener: Listener) -> None:
    """One command, one reply at a time; the same transaction and the same bytes."""
    listener.handler.advertise_pipelining = False
    args = ["--reinject", listener.address, "--queue-id", "4OnE", "-f", "alice@example.com"]

    done = run_filter([*args, "--", "bob@example.com"], MESSAGE, _home(tmp_path))

    assert done.returncode == 0, done.stderr
    [got] = listener.handler.messages
    assert got.xforward == {"IDENT": "4OnE"}
    assert got.recipients == ["bob@example.com"]
    assert got.content.endswith(b"\r\nHello over the pipe.\r\n.\r\n..leading dots\r\n")


def test_filter_with_a_missing_key_file_is_tempfail(tmp_path: Path, listener: Listener) -> None:
    keys = tmp_path / "etc" / "archive.keys"
    config = tmp_path / "archiver.toml"
    config.write_text(
        f'[archive]\nhome = "{tmp_path / "home"}"\n'
        f'encryption = "aes-256-gcm"\nkey_file = "{keys}"\n'
    )
    args = ["--config", str(config), "--reinject", listener.address, "-f", "a@example.com"]
    args += ["--", "b@example.com"]

    done = run_filter(args, MESSAGE, _home(tmp_path))

    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert f"key file {keys} does not exist".encode() in done.stderr
    assert b"Traceback" not in done.stderr
    assert listener.handler.connections == 0  # not reinjected without an archived copy
