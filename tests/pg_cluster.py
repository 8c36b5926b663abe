"""A private PostgreSQL cluster for the tests: Debian's ``postgresql`` binaries, started once per
test session in a temporary directory on a free port, a fresh database per test.

The system's own cluster is never used or started (``.ci/run`` installs the package and
nothing more): ``initdb`` and ``pg_ctl`` run as the ``postgres`` user when the tests run as
root (PostgreSQL refuses to run as root), as the current user otherwise. The cluster trades
durability for speed (``fsync=off``): it holds nothing worth keeping and dies with the session.

Without the binaries a test that asks for a database skips, and fails under
``REQUIRE_INTEGRATION=1`` (``tests/integration/requirements.py``).
"""

from __future__ import annotations

import atexit
import importlib
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

# the integration tests' skip-or-fail, by name at run time: mypy knows that file as the
# module "requirements" (tests/integration is on its path) and refuses a second name for it
unavailable: Callable[[str], NoReturn] = importlib.import_module(
    "tests.integration.requirements"
).unavailable

# Debian's layout: a directory per major version; the newest installed is taken
PG_ROOT = Path("/usr/lib/postgresql")
START_TIMEOUT = 60  # seconds, for pg_ctl -w under a loaded machine


def _bindir() -> Path | None:
    override = os.environ.get("PG_BINDIR")
    if override:
        return Path(override)
    versions = sorted(
        (p for p in PG_ROOT.glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return versions[-1] if versions else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One running cluster; ``database()`` creates an empty database and gives its URL."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="pa-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._names = itertools.count(1)
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            # the postgres user owns the cluster; the temporary directory is root's
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
            "-w", "-t", str(START_TIMEOUT), "start",
        )  # fmt: skip

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log = self.root / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stderr.strip()} {tail}")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new, empty database (copied from template0: nothing a test left behind)."""
        import psycopg  # the fixture needs it only once a test asks for PostgreSQL

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


_lock = threading.Lock()
_cluster: Cluster | None = None


def cluster() -> Cluster:
    """The session's cluster, started on first use (skips or fails without PostgreSQL)."""
    global _cluster
    with _lock:
        if _cluster is None:
            bindir = _bindir()
            if bindir is None or (shutil.which("runuser") is None and os.geteuid() == 0):
                unavailable(
                    f"PostgreSQL is not installed (no initdb under {PG_ROOT}/*/bin): "
                    "apt-get install postgresql"
                )
            try:
                import psycopg  # noqa: F401
            except ImportError:
                unavailable("psycopg is not installed: pip install -e '.[dev]'")
            _cluster = Cluster(bindir)
            atexit.register(_cluster.stop)
        return _cluster


def postgresql_url() -> str:
    """The URL of a new, empty database on the session's cluster."""
    return cluster().database()
