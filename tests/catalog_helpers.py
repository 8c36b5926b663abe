"""Catalog test helpers shared by the catalog's and the ingest service's tests.

``BACKENDS`` lists the catalog backends the contract tests in ``tests/unit/catalog`` run
against. Add a backend by adding an entry: a function that, given a test's fresh directory,
returns the URL of a new, empty catalog (a PostgreSQL entry would create a database on a
server fixture's cluster, or call ``pytest.skip`` without one). Every test there that takes
``config``, ``archive``, ``catalog_url`` or the gated ``catalog`` then runs against it; a test
of one backend's own ways (its file, its locks, its pragmas) says so with ``only(...)``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
from tests.pg_cluster import postgresql_url

from postfix_archiver.catalog import AddResult, Catalog, HoldQueries, NewArrival, Sealer
from postfix_archiver.catalog.sqlite import SqliteCatalog
from postfix_archiver.envelope import Envelope
from postfix_archiver.message import Address, Attachment

WAIT = 10.0  # seconds; only reached when something hangs

CatalogUrl = Callable[[Path], str]

BACKENDS: dict[str, CatalogUrl] = {
    # the default: catalog.sqlite in the archive's home
    "sqlite": lambda home: f"sqlite://{(home / 'catalog.sqlite').absolute()}",
    # a new database on the session's private cluster (tests/pg_cluster.py): skips without
    # PostgreSQL, fails in CI
    "postgresql": lambda home: postgresql_url(),
}


def backend_params() -> list[Any]:
    """``BACKENDS`` as fixture parameters: a backend that needs a server is marked
    ``integration`` (``-m "not integration"`` leaves it out; SQLite always runs)."""
    return [
        pytest.param(name, marks=() if name == "sqlite" else (pytest.mark.integration,))
        for name in sorted(BACKENDS)
    ]


def only(backend: str) -> pytest.MarkDecorator:
    """For a test of what only ``backend`` has: it runs against that backend alone (it
    overrides the ``catalog_backend`` fixture's parameters)."""
    return pytest.mark.parametrize("catalog_backend", [backend], indirect=True)


class GatedCatalog:
    """A real catalog of any backend that records each batch and can hold the first one back.

    Holding the committer inside its first ``add_batch`` lets a test queue arrivals behind it
    and know they are committed together in the next batch. Everything else is the wrapped
    catalog's own (``inner``), whatever the interface grows; ``as_catalog`` gives this typed
    as the interface (the type checker cannot see through ``__getattr__``).
    """

    def __init__(self, inner: Catalog) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self._first = True

    def add_batch(
        self, arrivals: Sequence[NewArrival], seal: Sealer, holds: HoldQueries | None = None
    ) -> list[AddResult]:
        self.batches.append([a.sha256 for a in arrivals])
        if self._first:
            self._first = False
            self.entered.set()
            assert self.gate.wait(WAIT), "test never opened the gate"
        return self.inner.add_batch(arrivals, seal, holds)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def as_catalog(self) -> Catalog:
        return cast(Catalog, self)

    @property
    def sqlite(self) -> SqliteCatalog:
        """The wrapped catalog, for a test of SQLite's own ways (marked ``only("sqlite")``)."""
        assert isinstance(self.inner, SqliteCatalog), "a test of SQLite's own ways"
        return self.inner


def make_arrival(n: int, *, poison: bool = False, queue_id: str | None = None) -> NewArrival:
    raw = f"From: a{n}@example.com\nSubject: arrival {n}\n\nbody {n}\n".encode()
    attachments = []
    if poison:
        # two attachments at the same leaf index: the catalog's primary key refuses this
        att = Attachment(0, "x.bin", "application/octet-stream", 1, "0" * 64)
        attachments = [att, att]
    return NewArrival(
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
        stored_size=len(raw),
        date=datetime(2024, 5, 1, 12, 0, n % 60, tzinfo=UTC),
        subject=f"arrival {n}",
        message_id=f"<{n}@example.com>",
        from_=[Address("", f"a{n}@example.com")],
        to=[Address("", "b@example.com")],
        cc=[],
        attachments=attachments,
        defects=[],
        body_text=f"body {n}",
        parts=[],
        envelope=Envelope(
            "sender@example.com", ("b@example.com",), queue_id=queue_id or f"Q{n:05d}"
        ),
    )
