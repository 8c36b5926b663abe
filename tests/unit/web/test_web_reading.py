"""The read path through the web: a message page, its iframe's body and its ``cid:`` images
parse the message once; the API's document and downloads come from the same read model."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.conftest import Parses

from postfix_archiver.archive import Archive
from postfix_archiver.cli import main
from postfix_archiver.envelope import Envelope
from postfix_archiver.message import parse_message

from .test_web_pages import Tags
from .web_helpers import Web

PNG = b"\x89PNG\r\n\x1a\n" + random.Random(11).randbytes(3000)
BIG = random.Random(12).randbytes(30_000)


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


NEWSLETTER = (
    b"From: Alice Example <alice@example.com>\r\nTo: bob@example.com\r\n"
    b"Subject: newsletter\r\nMessage-ID: <news@example.com>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="out"\r\n\r\n'
    b'--out\r\nContent-Type: multipart/related; boundary="rel"\r\n\r\n'
    b"--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p>Our logo: <img src="cid:Logo@Example.COM" alt="logo"></p>\r\n'
    b"--rel\r\nContent-Type: image/png\r\nContent-ID: < logo@example.com >\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64(PNG) + b"--rel--\r\n"
    b'--out\r\nContent-Type: application/pdf; name="big.pdf"\r\n'
    b'Content-Disposition: attachment; filename="big.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n" + _b64(BIG) + b"--out--\r\n"
)


@pytest.fixture
def newsletter(archive: Archive) -> int:
    envelope = Envelope("alice@example.com", ("bob@example.com",))
    return archive.ingest(NEWSLETTER, envelope).id


def test_page_body_and_inline_image_parse_the_message_once(
    web: Web, newsletter: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = web.login("bob")
    parses = Parses(monkeypatch)
    parse_message(NEWSLETTER, inline=True)
    once = parses.count
    assert once >= 1
    parses.count = 0
    page = client.get(f"/messages/{newsletter}")
    assert page.status_code == 200
    (frame,) = Tags(page.text).find("iframe")
    body = client.get(frame["src"])
    assert body.status_code == 200
    # the cid: image is in the body, from the message's own part
    data_uri = f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
    assert f'src="{data_uri}"' in body.text
    assert "Our logo" in body.text
    assert parses.count == once  # the page's parse served the iframe's request too


def test_api_document_and_show_json_are_one_shape(
    web: Web, newsletter: int, tmp_path: Path
) -> None:
    doc = web.login("admin").get(f"/api/v1/messages/{newsletter}").json()
    config = tmp_path / "config.toml"
    config.write_text(f'[archive]\nhome = "{web.config.archive.home}"\n')
    result = CliRunner().invoke(main, ["show", "--config", str(config), "--json", str(newsletter)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    # the API links each attachment and shows envelopes per reader; the rest is one document
    for a in doc["attachments"]:
        assert a.pop("url").startswith(f"/api/v1/messages/{newsletter}/attachments/")
    for e in doc["envelopes"]:
        assert e.pop("hidden_recipients") == 0
    assert doc == shown
    assert doc["message_id"] == "news@example.com"
    assert [a["filename"] for a in doc["attachments"]] == ["", "big.pdf"]


def test_download_of_a_stored_part_is_the_attachment(
    web: Web, newsletter: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = web.login("bob")
    parses = Parses(monkeypatch)
    (_, pdf) = web.archive.attachments(newsletter)
    response = client.get(f"/api/v1/messages/{newsletter}/attachments/{pdf.index}")
    assert response.status_code == 200
    assert response.content == BIG
    assert 'filename="big.pdf"' in response.headers["content-disposition"]
    assert parses.count == 0  # served from its stored part, the message never parsed
