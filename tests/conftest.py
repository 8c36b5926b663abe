"""Shared fixtures: a fresh archive on the default backends (SQLite + files) in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from postfix_archiver.archive import Archive
from postfix_archiver.config import Config, parse_config

CPYTHON_EMAIL = Path(__file__).parent / "data" / "cpython_email"


def make_config(home: Path, extra: str = "") -> Config:
    return parse_config(f'[archive]\nhome = "{home}"\n{extra}', str(home / "config.toml"))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path / "data")


@pytest.fixture
def archive(config: Config) -> Iterator[Archive]:
    with Archive(config) as a:
        yield a


@pytest.fixture
def cpython_messages() -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(CPYTHON_EMAIL.glob("msg_*.txt"))]
