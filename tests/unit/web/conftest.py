"""Fixtures for the web tests (helpers in ``web_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from postfix_archiver.accounts import Accounts, home_url, open_accounts
from postfix_archiver.archive import Archive
from postfix_archiver.config import Config
from postfix_archiver.web.auth import RateLimiter

from .web_helpers import CHEAP, Web, add_users, load_cast


@pytest.fixture
def accounts(config: Config) -> Iterator[Accounts]:
    with open_accounts(home_url(config.archive.home), hasher=CHEAP) as accounts:
        yield accounts


@pytest.fixture
def web(config: Config, archive: Archive, accounts: Accounts) -> Iterator[Web]:
    add_users(accounts)
    cast = load_cast(archive)
    w = Web(config, archive, accounts, RateLimiter(), cast)
    try:
        yield w
    finally:
        w.close()
