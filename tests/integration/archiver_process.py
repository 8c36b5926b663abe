"""The archiver as the operator runs it: the real ``postfix-archiver`` command in a process.

Integration tests wire it to a private Postfix instance (``postfix_harness``) through
``postfix-archiver postfix-config --apply``, exactly as the README tells an administrator.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from postfix_harness import PostfixInstance, free_port, is_listening, wait_until

BIN = Path(sys.executable).with_name("postfix-archiver")


def archiver_cmd() -> str:
    found = str(BIN) if BIN.exists() else shutil.which("postfix-archiver")
    assert found, "postfix-archiver is not installed in this environment (make venv)"
    return found


class Archiver:
    """A config file, a data directory and (when started) a ``serve`` process."""

    def __init__(
        self, base: Path, *, extra: str = "", sink: bool = False, processes: int = 1
    ) -> None:
        self.base = base
        self.processes = processes
        self.home = base / "archive"
        self.listen_port = free_port()
        self.reinject_port = free_port()
        self.sink = sink
        self.config_path = base / "archiver.toml"
        self.log_path = base / "archiver.log"
        self.write_config(extra)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    def write_config(self, extra: str = "") -> None:
        self.config_path.write_text(
            f'[archive]\nhome = "{self.home}"\n\n'
            f'[smtp]\nlisten = "127.0.0.1:{self.listen_port}"\n'
            f'reinject = "127.0.0.1:{self.reinject_port}"\n\n{extra}'
        )

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("POSTFIX_ARCHIVER_HOME", None)
        env["POSTFIX_ARCHIVER_CONFIG"] = str(self.config_path)
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [archiver_cmd(), *args], env=self.env, capture_output=True, text=True, timeout=300
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"postfix-archiver {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
            )
        return done

    def configure_postfix(self, postfix: PostfixInstance, *args: str) -> str:
        done = self.cli(
            "postfix-config",
            "--config",
            str(self.config_path),
            "--apply",
            "--no-reload",
            "--config-dir",
            str(postfix.config_dir),
            *args,
        )
        postfix.settle_config()
        if postfix.running:
            postfix.reload()
        return done.stdout

    def start(self, timeout: float = 30) -> None:
        args = [archiver_cmd(), "serve", "--config", str(self.config_path)]
        if self.sink:
            args.append("--sink")
        if self.processes > 1:
            args += ["--processes", str(self.processes)]
        self._log = self.log_path.open("ab")
        skip = self.log_path.stat().st_size
        self.proc = subprocess.Popen(args, env=self.env, stdout=self._log, stderr=self._log)

        def accepting() -> bool:
            if self.processes == 1:
                return is_listening(self.listen_port)
            # the supervisor binds the port before its children accept on it
            return "serve processes listening on" in self.log()[skip:]

        try:
            until(
                lambda: accepting() or self.proc.poll() is not None,  # type: ignore[union-attr]
                timeout,
                "the archiver to listen",
            )
        except Exception:
            self.kill()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"archiver exited {self.proc.returncode}:\n{self.log()}")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (graceful); returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._close_log()
        return code

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def search(self, query: str = "", limit: int = 100000) -> dict[str, Any]:
        out = self.cli("search", "--json", "--limit", str(limit), *([query] if query else []))
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.cli("stats", "--json").stdout)
        return result

    def assert_each_archived_once(self, count: int) -> None:
        """``count`` messages with one envelope each: every message has at least one, so
        as many envelopes as messages means none was archived twice (one ``stats`` instead
        of a ``show`` per message, a CLI start each)."""
        stats = self.stats()
        assert (stats["messages"], stats["envelopes"]) == (count, count)

    def show(self, ident: int) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.cli("show", str(ident), "--json").stdout)
        return result

    def raw(self, ident: int) -> bytes:
        done = subprocess.run(
            [archiver_cmd(), "show", str(ident), "--raw"],
            env=self.env,
            capture_output=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    def verify(self) -> subprocess.CompletedProcess[str]:
        return self.cli("verify", check=False)


def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for ``predicate``; fail the test naming ``what`` if it never holds."""
    if not wait_until(predicate, timeout, 0.1):
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_archived(archiver: Archiver, count: int, timeout: float = 60) -> dict[str, Any]:
    """Poll ``search --json`` until ``count`` messages are archived, and indexed when
    ``serve`` runs (its indexer makes the full-text entries after the answer; the pipe
    filter leaves them queued for ``postfix-archiver index``)."""
    deadline = time.monotonic() + timeout
    serving = archiver.proc is not None and archiver.proc.poll() is None
    while True:
        page = archiver.search()
        indexed = not serving or page["not_indexed"] == 0
        if (page["total"] >= count and indexed) or time.monotonic() > deadline:
            return page
        time.sleep(0.5)
