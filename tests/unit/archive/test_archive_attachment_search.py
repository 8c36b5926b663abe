"""Attachment contents are found: by free words and by ``attachment:``, in real files made
by real tools (a docx written by python-docx, a zip with names inside), through the archive
and the background indexer, as a user searches."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import docx
import pytest
from tests.conftest import make_config

from postfix_archiver.archive import Archive
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import QueryError


def _docx(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _zip(names: list[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in names:
            z.writestr(name, b"x")
    return out.getvalue()


def _mail(subject: str, body: str, files: list[tuple[str, str, bytes]]) -> bytes:
    head = (
        f"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.com>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()
    for name, ctype, data in files:
        head += (
            f'--B\r\nContent-Type: {ctype}; name="{name}"\r\n'
            f'Content-Disposition: attachment; filename="{name}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode() + base64.encodebytes(data).replace(b"\n", b"\r\n")
    return head + b"--B--\r\n"


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    config = make_config(Path(tmp_path_factory.mktemp("data")))
    mails = {
        "contract": _mail(
            "signed papers",
            "see the attached file",
            [("agreement.docx", DOCX, _docx("The zorblatt merger closes in 회의록 week"))],
        ),
        "bundle": _mail(
            "photos", "the holiday", [("trip.zip", "application/zip", _zip(["kvanta.jpg"]))]
        ),
        "body": _mail("zorblatt in the subject", "zorblatt is only written here", []),
    }
    ids: dict[str, object] = {}
    with Archive(config) as a:
        for name, raw in mails.items():
            ids[name] = a.ingest(raw, Envelope("alice@example.com", ("bob@example.com",))).id
        before = a.search("zorblatt")
        assert (before.total, before.not_indexed) == (0, 3)  # queued, not indexed yet
        a.index_pending()
        assert a.search("zorblatt").not_indexed == 0
    ids["config"] = config
    return ids


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("zorblatt", {"contract", "body"}),  # a free word: in a docx's text as in a body
        ("attachment:zorblatt", {"contract"}),  # only where an attachment holds it
        ('attachment:"zorblatt merger"', {"contract"}),
        ("attachment:zorb*", {"contract"}),
        ("회의", {"contract"}),  # Korean inside a docx: bigrams apply to attachment text too
        ("attachment:agreement", {"contract"}),  # the attachment's own file name
        ("attachment:kvanta", {"bundle"}),  # a name inside a zip
        ("kvanta", {"bundle"}),
        ("attachment:holiday", set()),  # a body word is not in an attachment
        ("subject:zorblatt", {"body"}),
        ("attachment:zorblatt -subject:signed", set()),
        ("attachment:zorblatt OR attachment:kvanta", {"contract", "bundle"}),
    ],
)
def test_attachment_contents_are_found(
    archive: dict[str, object], query: str, found: set[str]
) -> None:
    names = {v: k for k, v in archive.items() if k != "config"}
    with Archive(archive["config"]) as a:  # type: ignore[arg-type]
        got = {names[r.id] for r in a.search(query).results}
    assert got == found


@pytest.mark.parametrize("query", ["attachment:", 'attachment:""', "attachment:" + "x" * 5000])
def test_hostile_attachment_terms(archive: dict[str, object], query: str) -> None:
    with Archive(archive["config"]) as a:  # type: ignore[arg-type]
        try:
            page = a.search(query)
        except QueryError:
            return  # a clear error is fine; a traceback of another kind is not
        assert page.total == 0
