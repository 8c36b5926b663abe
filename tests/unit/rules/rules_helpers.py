"""Shared helpers for the rules tests: policies from config text, real-looking messages.

A plain module rather than a conftest.py: a second conftest would clash with
tests/conftest.py as module "conftest" when mypy checks the tree.

The samples are modelled on what the real programs send (Debian cron, cronie, logwatch,
FreeBSD periodic, rkhunter, apticron, unattended-upgrades, Postfix bounces, Dovecot Sieve
and Exchange auto-replies, Mailman 3, a newsletter) and on ordinary business mail that no
preset may catch.
"""

from __future__ import annotations

from collections.abc import Sequence
from textwrap import dedent

from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.message import parse_message
from postfix_archiver.rules import Policy, Verdict, compile_policy


def _crlf(text: str) -> bytes:
    return dedent(text).lstrip("\n").replace("\n", "\r\n").encode("utf-8")


SAMPLES: dict[str, bytes] = {
    # Debian cron (vixie-cron 3.0pl1): "(Cron Daemon)" comment and X-Cron-Env headers.
    "debian-cron": _crlf("""
        Return-Path: <root@web1.example.com>
        X-Original-To: root
        Delivered-To: root@web1.example.com
        Received: by web1.example.com (Postfix, from userid 0)
        \tid 4F1D2C0A1B; Mon,  4 Mar 2024 06:25:01 +0100 (CET)
        From: root@web1.example.com (Cron Daemon)
        To: root@web1.example.com
        Subject: Cron <root@web1> test -x /usr/sbin/anacron || ( cd / && run-parts
         --report /etc/cron.daily )
        MIME-Version: 1.0
        Content-Type: text/plain; charset=UTF-8
        Content-Transfer-Encoding: 8bit
        X-Cron-Env: <SHELL=/bin/sh>
        X-Cron-Env: <HOME=/root>
        X-Cron-Env: <PATH=/usr/bin:/bin>
        X-Cron-Env: <LOGNAME=root>
        Message-Id: <20240304052501.4F1D2C0A1B@web1.example.com>
        Date: Mon,  4 Mar 2024 06:25:01 +0100 (CET)

        /etc/cron.daily/logrotate:
        error: skipping "/var/log/nginx/access.log" because parent directory has insecure
        permissions
        run-parts: /etc/cron.daily/logrotate exited with return code 1
        """),
    # cronie (RHEL, Fedora, Arch) for a user crontab, with MAILTO set to a team address.
    "cronie": _crlf("""
        From: "(Cron Daemon)" <deploy@app2.example.com>
        To: ops@example.com
        Subject: Cron <deploy@app2> /home/deploy/bin/nightly-backup.sh
        MIME-Version: 1.0
        Content-Type: text/plain; charset=UTF-8
        Auto-Submitted: auto-generated
        Precedence: bulk
        Message-Id: <20240305020001.8A1B2C3D4E@app2.example.com>
        Date: Tue,  5 Mar 2024 03:00:01 +0100 (CET)

        pg_dump: warning: there are circular foreign-key constraints on this table
        """),
    "logwatch": _crlf("""
        To: admin@example.com
        From: logwatch@mail.example.com
        Subject: Logwatch for mail.example.com (Linux)
        Auto-Submitted: auto-generated
        MIME-Version: 1.0
        Content-Transfer-Encoding: 7bit
        Content-Type: text/plain; charset="iso-8859-1"
        Message-Id: <20240305000002.1C2D3E4F5A@mail.example.com>
        Date: Tue,  5 Mar 2024 00:00:02 +0100 (CET)

         ################### Logwatch 7.5.6 (07/23/21) ####################
                Processing Initiated: Tue Mar  5 00:00:02 2024
                Date Range Processed: yesterday
                                      ( 2024-Mar-04 )
                Detail Level of Output: 0
                Logfiles for Host: mail.example.com
         ##################################################################

         --------------------- postfix Begin ------------------------
            4.112M  Bytes accepted                           4,311,234
         ---------------------- postfix End -------------------------
        """),
    "freebsd-security": _crlf("""
        From: Charlie Root <root@fw.example.org>
        To: root@fw.example.org
        Subject: fw.example.org daily security run output
        Message-Id: <202403050301.42535J1u012345@fw.example.org>
        Date: Tue, 5 Mar 2024 03:01:00 +0100 (CET)

        Checking setuid files and devices:

        Checking for uids of 0:
        root 0
        toor 0

        fw.example.org login failures:
        """),
    "freebsd-daily": _crlf("""
        From: Charlie Root <root@fw.example.org>
        To: root@fw.example.org
        Subject: fw.example.org daily run output
        Date: Tue, 5 Mar 2024 03:01:00 +0100 (CET)

        Removing stale files from /var/preserve:

        Disk status:
        Filesystem      Size    Used   Avail Capacity  Mounted on
        """),
    "rkhunter": _crlf("""
        From: root@db1.example.com
        To: root@db1.example.com
        Subject: [rkhunter] Warnings found for db1.example.com
        Date: Tue, 5 Mar 2024 06:47:12 +0100

        Please inspect this machine, because it may be infected.
        """),
    "apticron": _crlf("""
        From: root@db1.example.com
        To: admin@example.com
        Subject: [apticron] 3 package update(s) on db1.example.com
        Date: Tue, 5 Mar 2024 06:47:12 +0100

        apticron report [Tue, 05 Mar 2024 06:47:12 +0100]
        """),
    "unattended-upgrades": _crlf("""
        Subject: [reboot required] unattended-upgrades result for web1.example.com: SUCCESS
        From: root@web1.example.com
        To: admin@example.com
        Auto-Submitted: auto-generated
        Content-Type: text/plain; charset="utf-8"
        Date: Tue, 05 Mar 2024 06:31:07 +0100

        Unattended upgrade result: All upgrades installed
        """),
    # Postfix bounce: null envelope sender, DSN content type, folded parameters.
    "postfix-bounce": _crlf("""
        Return-Path: <>
        From: MAILER-DAEMON@mail.example.com (Mail Delivery System)
        Subject: Undelivered Mail Returned to Sender
        To: alice@example.com
        Auto-Submitted: auto-replied
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status;
        \tboundary="4F1D2C0A1B.1709530000/mail.example.com"
        Content-Transfer-Encoding: 8bit
        Message-Id: <20240304053000.4F1D2C0A1B@mail.example.com>
        Date: Mon,  4 Mar 2024 06:30:00 +0100 (CET)

        This is a MIME-encapsulated message.

        --4F1D2C0A1B.1709530000/mail.example.com
        Content-Description: Notification
        Content-Type: text/plain; charset=us-ascii

        I'm sorry to have to inform you that your message could not
        be delivered to one or more recipients.

        --4F1D2C0A1B.1709530000/mail.example.com--
        """),
    # Dovecot Pigeonhole Sieve vacation (RFC 5230).
    "sieve-vacation": _crlf("""
        Return-Path: <>
        Message-ID: <dovecot-sieve-1709531234-123456-0@mail.example.com>
        Date: Mon, 04 Mar 2024 06:47:14 +0100
        X-Sieve: Pigeonhole Sieve 0.5.21
        From: Alice Example <alice@example.com>
        To: <bob@partner.example>
        Subject: Away until 11 March
        In-Reply-To: <CAFx1=abc@mail.gmail.com>
        References: <CAFx1=abc@mail.gmail.com>
        Auto-Submitted: auto-replied (vacation)
        Precedence: bulk
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8
        Content-Transfer-Encoding: 8bit

        I am out of the office until 11 March. For urgent matters, write to sales@example.com.
        """),
    # Exchange / Outlook out-of-office: auto-generated plus the "Automatic reply:" subject.
    "exchange-oof": _crlf("""
        From: Carol Manager <carol@example.com>
        To: Dave Customer <dave@customer.example>
        Subject: Automatic reply: Contract renewal 2024
        Thread-Topic: Contract renewal 2024
        Thread-Index: AQHabcdEFGhijkl==
        Date: Mon, 4 Mar 2024 09:12:33 +0000
        Message-ID: <AM0PR01MB1234ABCD@AM0PR01MB1234.eurprd01.prod.outlook.com>
        In-Reply-To: <20240304091200.1234@customer.example>
        Auto-Submitted: auto-generated
        X-Auto-Response-Suppress: All
        X-MS-Exchange-Inbox-Rules-Loop: carol@example.com
        Content-Language: en-US
        X-MS-Has-Attach:
        Content-Type: text/plain; charset="us-ascii"
        MIME-Version: 1.0

        I am out of the office with limited access to email until March 8th.
        """),
    # French Exchange auto-reply, RFC 2047 encoded, with the French space before the colon.
    "oof-french": _crlf("""
        From: =?utf-8?q?Fran=C3=A7oise?= <francoise@example.com>
        To: erin@partner.example
        Subject: =?utf-8?q?R=C3=A9ponse_automatique=C2=A0:_Devis_n=C2=B0_42?=
        Date: Mon, 4 Mar 2024 09:12:33 +0000
        Content-Type: text/plain; charset="utf-8"
        MIME-Version: 1.0

        Je suis absente.
        """),
    # Mailman 3 list post.
    "mailman-post": _crlf("""
        Return-Path: <users-bounces+frank=example.com@lists.example.org>
        From: Eve Developer <eve@devs.example.net>
        To: users@lists.example.org
        Subject: [users] Re: build fails on arm64
        Message-ID: <87h6hh1x3v.fsf@devs.example.net>
        Date: Mon, 04 Mar 2024 10:01:02 +0100
        MIME-Version: 1.0
        Content-Type: text/plain
        Message-ID-Hash: 5KX3YQ2W7ZB6LJ3X4Y5Z6A7B8C9D0E1F
        X-Message-ID-Hash: 5KX3YQ2W7ZB6LJ3X4Y5Z6A7B8C9D0E1F
        X-Mailman-Version: 3.3.9
        Precedence: list
        List-Id: Users of Foo <users.lists.example.org>
        Archived-At: <https://lists.example.org/archives/list/users@lists.example.org/message/5KX3/>
        List-Archive: <https://lists.example.org/archives/list/users@lists.example.org/>
        List-Help: <mailto:users-request@lists.example.org?subject=help>
        List-Owner: <mailto:users-owner@lists.example.org>
        List-Post: <mailto:users@lists.example.org>
        List-Subscribe: <mailto:users-join@lists.example.org>
        List-Unsubscribe: <mailto:users-leave@lists.example.org>

        Did you try with the new toolchain?
        """),
    "newsletter": _crlf("""
        From: Shop News <news@mail.shop.example>
        To: frank@example.com
        Subject: =?utf-8?q?Spring_sale_=E2=80=93_up_to_50=25_off?=
        Date: Mon, 04 Mar 2024 08:00:00 +0000
        List-Unsubscribe: <https://shop.example/u/abc123>, <mailto:unsub-abc123@mail.shop.example>
        List-Unsubscribe-Post: List-Unsubscribe=One-Click
        Feedback-ID: 123:456:newsletter:shop
        MIME-Version: 1.0
        Content-Type: text/html; charset=utf-8

        <html><body><p>Spring sale!</p></body></html>
        """),
    # Ordinary mail that mentions the words the presets look for, in the wrong places.
    "business": _crlf("""
        From: Alice Example <alice@example.com>
        To: Bob Partner <bob@partner.example>
        Cc: hr@example.com
        Subject: Re: Cron job for the payroll export
        Message-ID: <a1b2c3@example.com>
        Date: Mon, 04 Mar 2024 11:15:00 +0100
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8

        The logwatch for our server and the daily run output look fine; I am out of office
        next week, automatic reply: none.
        """),
    "business-oof-words": _crlf("""
        From: Bob Partner <bob@partner.example>
        To: Alice Example <alice@example.com>
        Subject: Out of office next week - please send the contract before
        Message-ID: <d4e5f6@partner.example>
        Date: Mon, 04 Mar 2024 11:20:00 +0100
        X-Mailer: Microsoft Outlook 16.0
        MIME-Version: 1.0
        Content-Type: text/plain; charset=utf-8

        Thanks, Bob
        """),
}


def config_text(
    rules: str, *, default: str = "archive", local_domains: Sequence[str] = ("example.com",)
) -> str:
    domains = ", ".join(f'"{d}"' for d in local_domains)
    return f'[archive]\ndefault = "{default}"\nlocal_domains = [{domains}]\n\n' + dedent(
        rules
    ).lstrip("\n")


def make_policy(rules: str = "", **kwargs: object) -> Policy:
    return compile_policy(parse_config(config_text(rules, **kwargs), "test.toml"))  # type: ignore[arg-type]


def build_message(
    subject: str = "Hello",
    headers: Sequence[tuple[str, str]] = (),
    body: str = "Hi.\n",
    from_: str = "Alice <alice@example.com>",
) -> bytes:
    lines = [
        f"From: {from_}",
        "To: bob@partner.example",
        f"Subject: {subject}",
        "Date: Mon, 04 Mar 2024 11:15:00 +0100",
        "Message-ID: <x@example.com>",
    ]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def decide(
    policy: Policy,
    raw: bytes,
    sender: str = "alice@example.com",
    recipients: Sequence[str] = ("bob@partner.example",),
    client: str | None = None,
) -> Verdict:
    envelope = Envelope(sender=sender, recipients=tuple(recipients), client_address=client)
    return policy.decide(parse_message(raw), envelope)
