"""Hostile header values through every way in and every way out.

A stranger writes the headers, so any value must be archived and then stay readable by
everyone: hypothesis builds messages whose Date, addresses, Subject, Message-ID, charsets,
encodings, attachment names and nesting are hostile (years 0 to 99999, offsets to ±99:99,
encoded words in unknown charsets, NULs, raw 8-bit bytes, long lines, deep nesting). Each
example archives them through the SMTP proxy, the pipe filter and the importers (a folder of
.eml files and an mbox), then reads them back through the CLI (search, show, stats, verify,
every export format) and the web (pages and REST API). Nothing may raise, print a traceback or
answer 5xx; every message must come back byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import make_config
from tests.unit.capture.capture_helpers import Listener, Proxy, run_filter
from tests.unit.web.web_helpers import admin_web

from postfix_archiver.archive import Archive
from postfix_archiver.cli import main

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
CHARSETS = [
    "utf-8",
    "iso-2022-jp",
    "euc-kr",
    "gb2312",
    "x-martian",
    "utf-7",
    "idna",
    "",
    "us-ascii",
]

# -- hostile values ------------------------------------------------------------------------------


def _no_line_breaks(value: bytes) -> bytes:
    # a bare CR or LF inside a value would start a new header or the body: that is another
    # message, which the other strategies make anyway
    return value.replace(b"\r", b" ").replace(b"\n", b" ")


spelled_dates = st.builds(
    lambda wd, d, m, y, h, mi, s, sign, oh, om: (
        f"{wd}{d} {m} {y} {h:02d}:{mi:02d}:{s:02d} {sign}{oh:02d}{om:02d}"
    ),
    st.sampled_from(["", "Fri, ", "Xyz, "]),
    st.integers(0, 40),
    st.sampled_from([*MONTHS, "Foo"]),
    # the edges of what datetime holds, more often than a uniform draw would reach them
    st.one_of(
        st.sampled_from(["0", "00", "000", "0000", "0001", "1969", "9999", "10000", "99999"]),
        st.integers(0, 99999).map(lambda y: f"{y:04d}"),
    ),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from("+-"),
    st.integers(0, 99),
    st.integers(0, 99),
).map(str.encode)

texts = st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass"))
raw_bytes = st.binary(max_size=60)
encoded_words = st.builds(
    lambda cs, enc, payload: (
        f"=?{cs}?{enc}?".encode()
        + (base64.b64encode(payload) if enc == "B" else payload.hex().encode())
        + b"?="
    ),
    st.sampled_from(CHARSETS),
    st.sampled_from(["B", "Q", "X"]),
    st.binary(max_size=30),
)
long_values = st.integers(1000, 20000).map(lambda n: b"x" * n)
header_values = st.one_of(texts, raw_bytes, encoded_words, long_values, spelled_dates).map(
    _no_line_breaks
)
addresses = st.one_of(
    header_values,
    st.sampled_from(
        [
            "Jörg <jörg@exämple.de>".encode(),
            b"caf\xe9@example.fr",
            b'"=?utf-8?B?7ZqM7J2Y?=" <kim@example.kr>',
            b"<>",
            b"@@@,,,<<<>>>",
            b"a" * 300 + b"@" + b"b" * 300,
            b'"unterminated <x@y>',
        ]
    ),
)
dates = st.one_of(
    spelled_dates,
    st.sampled_from([b"Fri, 31 Dec 9999 23:59:59 -1200", b"Mon, 1 Jan 0001 00:00:00 +1400"]),
    header_values,
)


@st.composite
def hostile_messages(draw: st.DrawFn) -> bytes:
    headers = [
        b"Date: " + draw(dates),
        b"From: " + draw(addresses),
        b"To: " + draw(addresses),
        b"Cc: " + draw(addresses),
        b"Subject: " + draw(header_values),
        b"Message-ID: " + draw(header_values),
        b"X-Hostile: " + draw(header_values),
    ]
    charset = draw(st.sampled_from(CHARSETS)).encode()
    cte = draw(st.sampled_from([b"8bit", b"base64", b"quoted-printable", b"x-bogus"]))
    body = draw(st.binary(max_size=300)).replace(b"\r", b"")
    depth = draw(st.sampled_from([0, 0, 1, 3, 120]))
    name = draw(header_values)
    if depth == 0:
        headers.append(b"Content-Type: text/plain; charset=" + charset)
        headers.append(b"Content-Transfer-Encoding: " + cte)
        return b"\r\n".join(headers) + b"\r\n\r\n" + body
    # nested multiparts with an attachment whose name is hostile at the bottom
    inner = (
        b'Content-Type: application/octet-stream; name="' + name + b'"\r\n'
        b"Content-Disposition: attachment; filename*=" + charset + b"''" + name + b"\r\n"
        b"Content-Transfer-Encoding: " + cte + b"\r\n\r\n" + body + b"\r\n"
    )
    for level in range(depth):
        boundary = f"b{level}".encode()
        inner = (
            b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n"
            b"--"
            + boundary
            + b"\r\nContent-Type: text/plain; charset="
            + charset
            + b"\r\n\r\n"
            + body[:40]
            + b"\r\n--"
            + boundary
            + b"\r\n"
            + inner
            + b"--"
            + boundary
            + b"--\r\n"
        )
    return b"\r\n".join(headers) + b"\r\n" + inner


# -- the archive the example fills --------------------------------------------------------------


@contextmanager
def home_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="pa-hostile-") as tmp:
        yield Path(tmp) / "data"


def cli(home: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env={"POSTFIX_ARCHIVER_HOME": str(home)})
    shown = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert "Traceback" not in shown, (args, shown)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: {result.exception!r}") from result.exception
    return result


def cli_ok(home: Path, *args: str) -> Result:
    result = cli(home, *args)
    assert result.exit_code == 0, (args, result.output)
    return result


def archive_all(home: Path, messages: list[bytes], listener: Listener) -> dict[str, bytes]:
    """Archive ``messages`` through every way in; the bytes each SHA-256 must give back."""
    config = make_config(home)
    expected: dict[str, bytes] = {}
    with ExitStack() as stack:
        archive = stack.enter_context(Archive(config))
        proxy = Proxy(archive, config, listener.address)
        stack.callback(proxy.close)
        for raw in messages:
            code, text = proxy.send(raw)
            assert code == 250, (code, text)
        # what the proxy archived is what smtplib sent (it makes every line end CR LF)
        for row in archive.search("", limit=1000).results:
            expected[row.sha256] = archive.raw(row.id)
    # the pipe filter, as Postfix runs it: one process a message
    done = run_filter(
        [
            "--reinject",
            listener.address,
            "-f",
            "alice@example.com",
            "--",
            "bob@example.com",
        ],
        messages[0] + b"\r\nX-Pipe: 1\r\n",
        home,
    )
    assert done.returncode == 0, done.stderr.decode()
    # the importers: a folder of .eml files and an mbox
    folder = home.parent / "eml"
    folder.mkdir()
    for i, raw in enumerate(messages):
        (folder / f"{i}.eml").write_bytes(raw + b"\r\nX-Imported: eml\r\n")
    cli_ok(home, "import", str(folder))
    mbox = home.parent / "in.mbox"
    mbox.write_bytes(
        b"".join(
            b"From alice@example.com Mon Jan  1 00:00:00 2024\n"
            + raw.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
            + b"\nX-Imported: mbox\n\n"
            for raw in messages
        )
    )
    cli_ok(home, "import", str(mbox))
    for name in sorted(folder.iterdir()):
        data = name.read_bytes()
        expected[_sha(data)] = data
    return expected


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- every way out ---------------------------------------------------------------------------------


def read_back_by_cli(home: Path, expected: dict[str, bytes]) -> list[int]:
    # the background indexer's work, from the command line: hostile attachments extracted,
    # hostile text in the index, then every entry checked
    cli_ok(home, "index")
    cli_ok(home, "verify", "--index")
    listing = json.loads(cli_ok(home, "search", "--json", "--limit", "1000").output)
    assert listing["not_indexed"] == 0
    ids = [int(r["id"]) for r in listing["results"]]
    assert len(ids) == listing["total"] >= len(expected)
    by_sha = {r["sha256"]: int(r["id"]) for r in listing["results"]}
    for sha, raw in expected.items():
        got = CliRunner().invoke(
            main, ["show", "--raw", str(by_sha[sha])], env={"POSTFIX_ARCHIVER_HOME": str(home)}
        )
        assert got.exit_code == 0
        assert got.stdout_bytes == raw
    for ident in ids:
        cli_ok(home, "show", str(ident))
        doc = json.loads(cli_ok(home, "show", "--json", str(ident)).output)
        # a subject or a sender as a query: found, or a clear query error, never a crash
        for field in ("subject", "from"):
            cli(home, "search", "--json", str(doc[field])[:200])
        for attachment in doc["attachments"]:  # its name as words in attachments
            cli(home, "search", "--json", f'attachment:"{attachment["filename"][:200]}"')
    for order in ("-date", "date", "size", "-size", "subject", "-subject"):
        cli_ok(home, "search", "--json", "--order", order)
    stats = json.loads(cli_ok(home, "stats", "--json").output)
    assert stats["messages"] == len(ids)
    cli_ok(home, "stats")
    cli_ok(home, "verify")
    for fmt in ("mbox", "maildir", "eml-zip"):
        cli_ok(home, "export", "--format", fmt, "-o", str(home.parent / f"out-{fmt}"))
    return ids


def read_back_by_web(home: Path, ids: list[int]) -> None:
    config = make_config(home)
    with admin_web(config) as (_archive, web):
        page = web.login("admin")
        api = web.token_client("admin")
        urls = ["/search", "/search?q=&order=date", "/stats", "/api/v1/messages?limit=1000"]
        urls += ["/api/v1/stats", "/api/v1/export?format=mbox", "/api/v1/export?format=eml-zip"]
        for ident in ids:
            doc = api.get(f"/api/v1/messages/{ident}")
            assert doc.status_code == 200, doc.text
            body: dict[str, Any] = doc.json()
            base = f"/api/v1/messages/{ident}"
            urls += [f"/messages/{ident}", f"/messages/{ident}/body", f"{base}/raw"]
            urls.append(f"{base}/attachments")
            urls += [f"{base}/attachments/{a['index']}" for a in body["attachments"]]
            urls.append(f"/api/v1/messages?q={_quote(str(body['subject'])[:200])}")
            urls.append(f"/search?q={_quote(str(body['subject'])[:200])}")  # with snippets
        for url in urls:
            client = api if url.startswith("/api/") else page
            response = client.get(url)
            assert response.status_code < 500, (url, response.status_code, response.text)
            if "?q=" not in url:
                assert response.status_code == 200, (url, response.status_code)


def _quote(text: str) -> str:
    return quote(text, safe="")


@given(st.lists(hostile_messages(), min_size=1, max_size=3))
@settings(
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "12")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_hostile_headers_through_every_way_in_and_out(messages: list[bytes]) -> None:
    listener = Listener().start()
    try:
        with home_dir() as home:
            expected = archive_all(home, messages, listener)
            ids = read_back_by_cli(home, expected)
            read_back_by_web(home, ids)
    finally:
        listener.stop()
