"""``postfix-archiver user``, ``audit``, ``web`` and ``run``: in-process, and for real."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from postfix_archiver.accounts import Accounts, home_url, open_accounts
from postfix_archiver.accounts import passwords as passwords_module
from postfix_archiver.cli import main
from postfix_archiver.config import Config
from postfix_archiver.web.server import bind

from .web_helpers import CHEAP, sql

CLI = Path(sys.executable).parent / "postfix-archiver"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CLI in-process on a fresh home, with a cheap argon2 (the real one takes ~1 s)."""
    home = tmp_path / "home"
    monkeypatch.setenv("POSTFIX_ARCHIVER_HOME", str(home))
    monkeypatch.delenv("POSTFIX_ARCHIVER_CONFIG", raising=False)
    monkeypatch.setattr(passwords_module, "PasswordHasher", lambda: CHEAP)
    return home


def cli(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input)


def accounts_at(home: Path) -> Accounts:
    return open_accounts(home_url(home), hasher=CHEAP)


def test_user_add_from_stdin_and_from_the_prompt(home: Path) -> None:
    added = cli("user", "add", "admin", "--role", "admin", "--password-stdin",
                input="first password\n")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert added.stderr.strip() == "added admin (admin)"
    prompted = cli(
        "user", "add", "bob", "--role", "user", "--address", "bob@example.com",
        "--address", "Robert@Example.com", input="bob's password\nbob's password\n",
    )  # fmt: skip
    assert prompted.exit_code == 0, prompted.output
    assert "Password:" in prompted.stderr
    assert "Repeat the password:" in prompted.stderr
    assert "bob's password" not in prompted.output
    with accounts_at(home) as accounts:
        assert accounts.authenticate("admin", "first password") is not None
        bob = accounts.authenticate("bob", "bob's password")
        assert bob is not None
        assert bob.addresses == ("bob@example.com", "robert@example.com")


def test_user_add_refusals(home: Path) -> None:
    cli("user", "add", "bob", "--role", "user", "--password-stdin", input="long enough\n")
    duplicate = cli("user", "add", "bob", "--role", "user", "--password-stdin", input="x\n")
    assert duplicate.exit_code == 1
    assert "user 'bob' exists already" in duplicate.stderr
    short = cli("user", "add", "eve", "--role", "user", "--password-stdin", input="short\n")
    assert short.exit_code == 1
    assert "password too short" in short.stderr
    role = cli("user", "add", "eve", "--role", "root", "--password-stdin", input="long enough\n")
    assert role.exit_code == 2
    name = cli("user", "add", "../eve", "--role", "user", "--password-stdin", input="long enough\n")
    assert name.exit_code == 1
    assert "bad user name" in name.stderr
    mismatch = cli("user", "add", "eve", "--role", "user", input="one password\nanother one\n")
    assert mismatch.exit_code != 0
    with accounts_at(home) as accounts:
        assert [u.name for u in accounts.users()] == ["bob"]


def test_user_token_prints_the_token_last(home: Path) -> None:
    cli("user", "add", "bob", "--role", "user", "--password-stdin", input="long enough\n")
    result = cli("user", "token", "bob", "--label", "laptop")
    assert result.exit_code == 0
    token = result.stdout.splitlines()[-1]
    assert token.startswith("pa_")
    assert "shown only now" in result.stderr
    with accounts_at(home) as accounts:
        found = accounts.user_for_token(token)
        assert found is not None
        assert found[0].name == "bob"
    listed = cli("user", "tokens", "bob")
    assert listed.stdout.strip().endswith("laptop")
    token_id = listed.stdout.split("\t")[0]
    unknown = cli("user", "revoke", "bob", "999")
    assert unknown.exit_code == 1
    revoked = cli("user", "revoke", "bob", token_id)
    assert revoked.exit_code == 0
    assert revoked.stderr.strip() == "revoked 1 token of bob"
    with accounts_at(home) as accounts:
        assert accounts.user_for_token(token) is None
    cli("user", "token", "bob")
    cli("user", "token", "bob")
    assert cli("user", "revoke", "bob", "--all").stderr.strip() == "revoked 2 tokens of bob"
    assert cli("user", "revoke", "bob").exit_code == 2
    assert "no user 'ghost'" in cli("user", "token", "ghost").stderr


def test_user_list_passwd_remove(home: Path) -> None:
    assert "No web users yet" in cli("user", "list").stderr
    cli("user", "add", "admin", "--role", "admin", "--password-stdin", input="long enough\n")
    cli("user", "add", "bob", "--role", "user", "--address", "bob@example.com",
        "--password-stdin", input="long enough\n")  # fmt: skip
    doc = json.loads(cli("user", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["addresses"]) for u in doc["users"]] == [
        ("admin", "admin", []),
        ("bob", "user", ["bob@example.com"]),
    ]
    assert cli("user", "list").stdout.splitlines() == [
        "admin\tadmin\t",
        "bob\tuser\tbob@example.com",
    ]
    changed = cli("user", "passwd", "bob", "--password-stdin", input="a new password\n")
    assert changed.exit_code == 0
    with accounts_at(home) as accounts:
        assert accounts.authenticate("bob", "a new password") is not None
    assert cli("user", "passwd", "ghost", "--password-stdin", input="whatever123\n").exit_code == 1
    assert cli("user", "remove", "admin").exit_code == 1  # the last admin
    assert cli("user", "remove", "bob").exit_code == 0
    assert [u["name"] for u in json.loads(cli("user", "list", "--json").stdout)["users"]] == [
        "admin"
    ]


def test_audit_command(home: Path) -> None:
    cli("user", "add", "admin", "--role", "admin", "--password-stdin", input="long enough\n")
    cli("user", "token", "admin")
    with accounts_at(home) as accounts:
        for q in ("one", "two", "three"):
            accounts.record("bob", "192.0.2.7", "search", {"query": q})
    doc = json.loads(cli("audit", "--json").stdout)
    assert doc["total"] == 5
    assert [e["action"] for e in doc["entries"]] == [
        "user.add", "token.create", "search", "search", "search",
    ]  # fmt: skip
    assert doc["entries"][0]["user"].startswith("cli")
    assert doc["entries"][0]["client"] == "local"
    last = json.loads(cli("audit", "--json", "--limit", "2", "--action", "search").stdout)
    assert [e["detail"]["query"] for e in last["entries"]] == ["two", "three"]
    text = cli("audit", "--user", "bob", "--limit", "1")
    assert text.stdout.strip().endswith('bob 192.0.2.7 search query="three"')
    assert "(the last 1 of 3 entries" in text.stderr
    verified = cli("audit", "--verify")
    assert verified.exit_code == 0
    assert verified.stdout.startswith("OK: 5 audit entries, chain head ")
    sql(home / "web.sqlite", "DROP TRIGGER audit_no_update")
    sql(home / "web.sqlite", "UPDATE audit SET detail = '{}' WHERE id = 3")
    broken = cli("audit", "--verify", "--json")
    assert broken.exit_code == 1
    assert json.loads(broken.stdout)["problem"] == "entry 3 was altered"


# -- the real command --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_HOME"] = str(home)
    return env


class Process:
    def __init__(self, home: Path, *args: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home.parent / f"{args[0]}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [str(CLI), *args], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env_for(home),
            )  # fmt: skip

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_http(self, url: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}:\n{self.log}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer:\n{self.log}")
            time.sleep(0.05)

    def wait_port(self, port: int, timeout: float = 20) -> None:
        """Until something accepts connections on ``port`` (the two listeners of ``run``
        start one after the other: the web one answering says nothing of the other)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited {self.proc.returncode}:\n{self.log}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {port}:\n{self.log}")
            time.sleep(0.05)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for p in started:
            p.kill()


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def run_cli(home: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], input=input, capture_output=True, text=True, env=env_for(home),
        timeout=60, check=False,
    )  # fmt: skip


def test_web_command_serves_the_api(tmp_path: Path, processes: list[Process]) -> None:
    home = tmp_path / "home"
    port = free_port()
    web = Process(home, "web", "--listen", f"127.0.0.1:{port}")
    processes.append(web)
    base = f"http://127.0.0.1:{port}"
    web.wait_http(f"{base}/healthz")
    assert f"Web UI and API: {base}/" in web.log
    assert "postfix-archiver user add admin --role admin" in web.log
    added = run_cli(home, "user", "add", "audra", "--role", "auditor", "--password-stdin",
                    input="audra's password\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    token = run_cli(home, "user", "token", "audra").stdout.splitlines()[-1]
    assert get(f"{base}/api/v1/messages")[0] == 401
    status, body = get(f"{base}/api/v1/messages?q=anything", token)
    assert (status, json.loads(body)) == (200, {"total": 0, "results": [], "not_indexed": 0})
    status, page = get(f"{base}/login")
    assert status == 200
    assert b'<form method="post" action="/login">' in page
    assert web.stop() == 0
    audit = json.loads(run_cli(home, "audit", "--json").stdout)
    assert [e["action"] for e in audit["entries"]][-1] == "search"
    assert audit["entries"][-1]["client"] == "127.0.0.1"


def test_run_starts_the_proxy_and_the_web_ui(tmp_path: Path, processes: list[Process]) -> None:
    home = tmp_path / "home"
    smtp_port, web_port = free_port(), free_port()
    config = tmp_path / "archiver.toml"
    config.write_text(
        f'[archive]\nhome = "{home}"\n[smtp]\nlisten = "127.0.0.1:{smtp_port}"\n'
        f'[web]\nlisten = "127.0.0.1:{web_port}"\n'
    )
    run = Process(home, "run", "--config", str(config))
    processes.append(run)
    run.wait_http(f"http://127.0.0.1:{web_port}/healthz")
    run.wait_port(smtp_port)
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
        assert smtp.noop()[0] == 250
    log = run.log
    assert f"Web UI and API: http://127.0.0.1:{web_port}/" in log
    assert "No web users yet. Create the first admin" in log
    assert "postfix-archiver user add admin --role admin" in log
    assert run.stop() == 0


def test_a_busy_port_is_a_clear_error(tmp_path: Path, config: Config) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(tmp_path / "home", "web", "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} for the web UI" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_web_socket_is_tcp_so_responses_are_not_delayed() -> None:
    # asyncio sets TCP_NODELAY on accepted connections only for sockets that say they are
    # TCP; without it a keep-alive client waited ~40 ms per response (Nagle + delayed ACK)
    sock = bind("127.0.0.1:0")
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
