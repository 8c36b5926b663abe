"""Fixtures for the capture tests (helpers in ``capture_helpers``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from postfix_archiver.archive import Archive
from postfix_archiver.config import Config

from .capture_helpers import Listener, Proxy, ServeProcess


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener().start()
    try:
        yield lst
    finally:
        lst.stop()


@pytest.fixture
def start_proxy(archive: Archive, config: Config) -> Iterator[Callable[..., Proxy]]:
    """Start proxies (over the test's archive unless given another); all stopped at the end."""
    started: list[Proxy] = []

    def start(
        reinject: str | None,
        *,
        config: Config = config,
        archive: Archive = archive,
        **kwargs: Any,
    ) -> Proxy:
        proxy = Proxy(archive, config, reinject, **kwargs)
        started.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in reversed(started):
            proxy.close()


@pytest.fixture
def proxy(start_proxy: Callable[..., Proxy], listener: Listener) -> Proxy:
    return start_proxy(listener.address)


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``serve`` processes; whatever still runs at the end is killed (by its pid)."""
    started: list[ServeProcess] = []

    def start(*args: str, home: Path | None = None) -> ServeProcess:
        server = ServeProcess(home or tmp_path / "home", args)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.kill()
