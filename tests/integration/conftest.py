"""Fixtures shared by the integration tests: a directory Postfix can enter, and a throw-away
Postfix relaying to smtp-sink (see ``postfix_harness``)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from postfix_harness import PostfixInstance, SmtpSink
from requirements import require_binary


@pytest.fixture
def base() -> Iterator[Path]:
    # Postfix daemons and the pipe user must be able to enter it: not pytest's 0700 tmp_path
    path = Path(tempfile.mkdtemp(prefix="pa-it-"))
    path.chmod(0o755)
    yield path
    if not os.environ.get("POSTFIX_HARNESS_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def mta() -> Iterator[tuple[PostfixInstance, SmtpSink]]:
    require_binary("/usr/sbin/postfix", "Postfix (Debian package postfix)")
    require_binary("/usr/sbin/smtp-sink", "smtp-sink (Debian package postfix)")
    with SmtpSink() as sink, PostfixInstance(sink) as postfix:
        yield postfix, sink
