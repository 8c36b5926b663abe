"""A huge text body is indexed up to ``[archive] index_limit`` characters (memory stays
bounded; the message itself is archived whole)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.conftest import make_config

from postfix_archiver.archive import Archive
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import ConfigError


def test_text_past_the_limit_is_archived_but_not_indexed(tmp_path: Path) -> None:
    config = make_config(tmp_path / "data", "index_limit = 4096\n")
    body = "beginning " + "filler " * 2000 + "farawayword\n"
    raw = f"From: a@example.com\nSubject: long\n\n{body}".encode()
    with Archive(config) as archive:
        result = archive.ingest(raw, Envelope("a@example.com", ("b@example.org",)))
        assert archive.raw(result.id) == raw
        assert archive.index_pending() == 1
        assert archive.search("beginning").total == 1
        assert archive.search("farawayword").total == 0
        assert any("only the start is indexed" in d for d in archive.get(result.id).defects)


def test_the_limit_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="index_limit"):
        make_config(tmp_path, "index_limit = 10\n")
