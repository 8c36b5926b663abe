"""The catalog contract tests run against every backend in ``tests.catalog_helpers.BACKENDS``:
``config`` (and so the shared ``archive`` fixture) names a fresh catalog of each in turn."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.catalog_helpers import BACKENDS, GatedCatalog, backend_params
from tests.conftest import make_config

from postfix_archiver.catalog import open_catalog
from postfix_archiver.config import Config


@pytest.fixture(params=backend_params())
def catalog_backend(request: pytest.FixtureRequest) -> str:
    """The backend's name (a test of one backend only overrides this with ``only``)."""
    return str(request.param)


@pytest.fixture
def catalog_url(catalog_backend: str, tmp_path: Path) -> str:
    return BACKENDS[catalog_backend](tmp_path / "data")


@pytest.fixture
def config(tmp_path: Path, catalog_url: str) -> Config:
    return make_config(tmp_path / "data", f"catalog = {catalog_url!r}")


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[GatedCatalog]:
    """The backend's catalog, gated (see ``GatedCatalog``)."""
    c = GatedCatalog(open_catalog(catalog_url))
    yield c
    c.gate.set()
    c.close()
