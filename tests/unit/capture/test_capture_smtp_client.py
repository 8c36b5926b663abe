"""The reinjection transaction without I/O: the commands for the listener's extensions, and
what each reply at each stage means (both transports, pipe and proxy, follow it)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from postfix_archiver.capture.smtp_client import (
    DATA_COMMAND,
    Outgoing,
    Transaction,
    data_block,
    extensions,
    greeting,
    reply_line,
)
from postfix_archiver.errors import PermanentFailure, TemporaryFailure

POSTFIX = {"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "XFORWARD", "ENHANCEDSTATUSCODES"}
XFORWARD = {"NAME": "client.example.net", "ADDR": "192.0.2.7", "IDENT": "4AbC"}


def message(**kwargs: object) -> Outgoing:
    values: dict[str, object] = {
        "sender": "alice@example.com",
        "recipients": ["bob@example.org", "carol@example.org"],
        "content": b"Subject: hi\r\n\r\nhello\r\n",
        "mail_options": ["BODY=8BITMIME"],
        "xforward": XFORWARD,
    }
    values.update(kwargs)
    return Outgoing(**values)  # type: ignore[arg-type]


def accept_envelope(tx: Transaction, replies: Sequence[tuple[int, str]] = ()) -> None:
    """Every envelope reply 250, except those given (from the first command on)."""
    given = list(replies)
    for n in range(len(tx.commands)):
        tx.envelope_reply(*(given[n] if n < len(given) else (250, "2.0.0 Ok")))


# -- the commands -----------------------------------------------------------------------------


def test_commands_for_postfix() -> None:
    tx = Transaction(message(), POSTFIX)

    assert tx.pipelining
    assert tx.commands == [
        b"XFORWARD NAME=client.example.net ADDR=192.0.2.7 IDENT=4AbC\r\n",
        b"MAIL FROM:<alice@example.com> BODY=8BITMIME\r\n",
        b"RCPT TO:<bob@example.org>\r\n",
        b"RCPT TO:<carol@example.org>\r\n",
    ]


def test_commands_for_a_plain_listener() -> None:
    tx = Transaction(message(), set())

    assert not tx.pipelining
    assert tx.commands[0] == b"MAIL FROM:<alice@example.com> BODY=8BITMIME\r\n"
    assert len(tx.commands) == 3  # no XFORWARD it does not offer


def test_long_xforward_values_are_split_over_lines() -> None:
    xforward = {"NAME": "n" * 250, "ADDR": "192.0.2.7", "HELO": "h" * 250, "IDENT": "4AbC"}
    tx = Transaction(message(xforward=xforward), POSTFIX)

    lines = [c for c in tx.commands if c.startswith(b"XFORWARD ")]
    assert len(lines) == 2
    assert all(len(line) < 512 for line in lines)
    assert b" ".join(line[9:-2] for line in lines) == (
        b"NAME=" + b"n" * 250 + b" ADDR=192.0.2.7 HELO=" + b"h" * 250 + b" IDENT=4AbC"
    )


def test_raw_xforward_values_are_sent_as_xtext() -> None:
    tx = Transaction(message(xforward={"NAME": "h\u00f6st", "IDENT": "4A+zz"}), POSTFIX)

    assert tx.commands[0] == b"XFORWARD NAME=h+C3+B6st IDENT=4A+2Bzz\r\n"


@pytest.mark.parametrize(
    ("sender", "offered", "options"),
    [
        ("b\u00f6b@example.org", POSTFIX, ["BODY=8BITMIME", "SMTPUTF8"]),
        ("b\u00f6b@example.org", POSTFIX - {"SMTPUTF8"}, ["BODY=8BITMIME"]),
        ("bob@example.org", POSTFIX, ["BODY=8BITMIME"]),
        # bytes that are no UTF-8 go on raw, never claimed as UTF-8
        (b"b\xf6b@example.org".decode("utf-8", "surrogateescape"), POSTFIX, ["BODY=8BITMIME"]),
    ],
)
def test_smtputf8_is_asked_for_when_the_addresses_need_it_and_it_is_offered(
    sender: str, offered: set[str], options: list[str]
) -> None:
    tx = Transaction(message(sender=sender), offered)

    mail = tx.commands[1]
    assert (
        mail
        == b" ".join(
            [b"MAIL FROM:<" + sender.encode("utf-8", "surrogateescape") + b">"]
            + [o.encode() for o in options]
        )
        + b"\r\n"
    )


def test_smtputf8_is_not_asked_for_twice() -> None:
    tx = Transaction(message(sender="b\u00f6b@example.org", mail_options=["SMTPUTF8"]), POSTFIX)

    assert tx.commands[1].endswith(b"> SMTPUTF8\r\n")


def test_recipient_utf8_alone_asks_for_smtputf8() -> None:
    tx = Transaction(message(recipients=["zo\u00eb@example.org"]), POSTFIX)

    assert tx.commands[1].endswith(b" SMTPUTF8\r\n")


# -- replies ----------------------------------------------------------------------------------


def test_an_accepted_transaction() -> None:
    tx = Transaction(message(), POSTFIX)
    accept_envelope(tx)

    assert tx.refusal() is None
    tx.data_reply(354, "End data with <CR><LF>.<CR><LF>")
    assert tx.final_reply(250, "2.0.0 Ok: queued as 4Q") == "250 2.0.0 Ok: queued as 4Q"


@pytest.mark.parametrize("code", [421, 451, 550])
def test_a_refused_xforward_is_temporary_whatever_the_code(code: int) -> None:
    tx = Transaction(message(), POSTFIX)

    with pytest.raises(TemporaryFailure, match=f"XFORWARD refused: {code}"):
        tx.envelope_reply(code, "no")


@pytest.mark.parametrize(
    ("code", "failure"),
    [(421, TemporaryFailure), (451, TemporaryFailure), (553, PermanentFailure)],
)
def test_mail_from_refused(code: int, failure: type[Exception]) -> None:
    tx = Transaction(message(), POSTFIX)
    tx.envelope_reply(250, "Ok")

    with pytest.raises(failure) as raised:
        tx.envelope_reply(code, "5.1.8 bad sender")
    if failure is PermanentFailure:
        assert isinstance(raised.value, PermanentFailure)
        assert (raised.value.code, raised.value.text) == (code, "5.1.8 bad sender")
    else:
        assert "to MAIL FROM" in str(raised.value)


def test_mail_from_is_the_first_reply_without_xforward() -> None:
    tx = Transaction(message(xforward={}), POSTFIX)

    with pytest.raises(PermanentFailure):
        tx.envelope_reply(550, "no")


def test_every_recipient_refused_permanently_is_permanent() -> None:
    tx = Transaction(message(), POSTFIX)
    accept_envelope(tx, [(250, "Ok"), (250, "Ok"), (550, "5.1.1 no bob"), (550, "5.1.1 no carol")])

    refusal = tx.refusal()
    assert isinstance(refusal, PermanentFailure)
    assert (refusal.code, refusal.text) == (550, "5.1.1 no bob")
    assert tx.rset_first


def test_a_partial_recipient_refusal_is_temporary_and_nothing_is_sent() -> None:
    """One recipient refused, the other accepted: delivering to the one now and retrying
    would deliver to it twice, so the whole message waits."""
    tx = Transaction(message(), POSTFIX)
    accept_envelope(tx, [(250, "Ok"), (250, "Ok"), (250, "Ok"), (550, "5.1.1 no carol")])

    refusal = tx.refusal()
    assert isinstance(refusal, TemporaryFailure)
    assert "<carol@example.org>: 550 5.1.1 no carol" in str(refusal)
    assert "bob" not in str(refusal)
    assert tx.rset_first


@pytest.mark.parametrize("codes", [(450, 450), (550, 450), (450, 550)])
def test_recipient_refusals_with_a_4xx_are_temporary(codes: tuple[int, int]) -> None:
    tx = Transaction(message(), POSTFIX)
    accept_envelope(tx, [(250, "Ok"), (250, "Ok"), (codes[0], "bob"), (codes[1], "carol")])

    assert isinstance(tx.refusal(), TemporaryFailure)


def test_a_421_to_a_recipient_is_temporary_and_not_followed_by_rset() -> None:
    """421: the listener is closing the connection; an RSET would go nowhere."""
    tx = Transaction(message(), POSTFIX)
    accept_envelope(tx, [(250, "Ok"), (250, "Ok"), (250, "Ok"), (421, "4.4.2 closing")])

    assert isinstance(tx.refusal(), TemporaryFailure)
    assert not tx.rset_first


def test_251_is_an_accepted_recipient() -> None:
    tx = Transaction(message(), POSTFIX)
    accept_envelope(tx, [(250, "Ok"), (250, "Ok"), (251, "forwarding"), (250, "Ok")])

    assert tx.refusal() is None


@pytest.mark.parametrize(
    ("code", "failure"),
    [(421, TemporaryFailure), (451, TemporaryFailure), (554, PermanentFailure)],
)
def test_data_refused(code: int, failure: type[Exception]) -> None:
    tx = Transaction(message(), POSTFIX)
    accept_envelope(tx)

    with pytest.raises(failure):
        tx.data_reply(code, "no")


@pytest.mark.parametrize(
    ("code", "failure"),
    [(421, TemporaryFailure), (452, TemporaryFailure), (552, PermanentFailure)],
)
def test_final_reply_refused(code: int, failure: type[Exception]) -> None:
    tx = Transaction(message(), POSTFIX)
    accept_envelope(tx)
    tx.data_reply(354, "go ahead")

    with pytest.raises(failure) as raised:
        tx.final_reply(code, "5.3.4 too big")
    if failure is TemporaryFailure:
        assert f"answered {code} 5.3.4 too big to DATA" in str(raised.value)


def test_the_data_command() -> None:
    assert DATA_COMMAND == b"DATA\r\n"


# -- connection set-up and reply lines --------------------------------------------------------


def test_greeting() -> None:
    greeting(220, "listener.test ESMTP")
    with pytest.raises(TemporaryFailure, match="greeting 421"):
        greeting(421, "busy")


def test_ehlo_extensions() -> None:
    lines = ["listener.test", "PIPELINING", "size 10240000", "XFORWARD NAME ADDR", ""]
    assert extensions(250, lines) == {"PIPELINING", "SIZE", "XFORWARD"}
    with pytest.raises(TemporaryFailure, match="EHLO answered 502"):
        extensions(502, ["not implemented"])


def test_reply_lines() -> None:
    assert reply_line(b"250-PIPELINING\r\n") == (None, "PIPELINING")
    assert reply_line(b"250 2.0.0 Ok\r\n") == (250, "2.0.0 Ok")
    assert reply_line(b"354\r\n") == (354, "")
    with pytest.raises(ConnectionResetError, match="closed"):
        reply_line(b"250 Ok")  # cut off: the connection closed
    with pytest.raises(ConnectionResetError, match="not an SMTP reply"):
        reply_line(b"hello\r\n")


# -- the data block ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "block"),
    [
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n"),
        (b".starts\r\n", b"..starts\r\n.\r\n"),
        (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),  # pipe(8) hands over LF lines
        (b"a\r.\rb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"no end", b"no end\r\n.\r\n"),
        (b"", b".\r\n"),
    ],
)
def test_data_block_is_crlf_and_dot_stuffed(content: bytes, block: bytes) -> None:
    assert data_block(content) == block
