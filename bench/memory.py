"""Resident memory of the SMTP proxy with big mail: one message, six at once, and after.

Starts the real proxy (``postfix-archiver serve``, a config in a temporary directory) with
Postfix's ``smtp-sink`` as the reinjection listener, all on 127.0.0.1, and sends:

1. one message of ``--size`` bytes (default 49 MB: the default 50 MiB limit with room for
   the headers Postfix adds);
2. ``--parallel`` (default 6) such messages at once, each on its own connection;

for each kind of big mail (``--kinds``): ``attachment`` (a short text and a base64-encoded
binary attachment, 76-character lines) and ``text`` (one big plain text body of prose,
some lines starting with a dot). Every message is distinct, so nothing is deduplicated.

The proxy's resident set size is sampled from ``/proc/PID/status`` (VmRSS) every few
milliseconds while sending, and its high-water mark (VmHWM, reset through
``/proc/PID/clear_refs`` before each step) is read after it; "after" is VmRSS once the proxy
has been idle for ``--idle`` seconds. Ratios are the rise above the base divided by the
message size.

``--src DIR`` runs the proxy from another source tree (PYTHONPATH=DIR), to compare with an
older version on the same machine in the same conditions::

    .venv/bin/python bench/memory.py                        # this tree
    .venv/bin/python bench/memory.py --src /tmp/old-src/src # another one
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SMTP_SINK = "/usr/sbin/smtp-sink"
HOST = "127.0.0.1"
MB = 1_000_000
_VOCABULARY = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no will "
    "archive message postfix delivery recipient mailbox server queue attachment invoice report "
    "quarterly meeting schedule contract budget review project deadline customer support ticket"
)
_WORDS = _VOCABULARY.split()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout:.0f} s")


# -- the messages ------------------------------------------------------------------------------


def _headers(n: int, kind: str) -> list[bytes]:
    return [
        b"From: Sender <sender@example.com>",
        b"To: Recipient <rcpt@example.org>",
        f"Subject: big {kind} message {n}".encode(),
        b"Date: Tue, 25 Nov 2025 10:00:00 +0000",
        f"Message-ID: <big-{kind}-{n}-{os.getpid()}@example.com>".encode(),
        b"MIME-Version: 1.0",
    ]


def attachment_message(n: int, size: int) -> bytes:
    """A short text and a base64 attachment of random bytes (as a PDF or photo would be)."""
    head = [
        *_headers(n, "attachment"),
        b'Content-Type: multipart/mixed; boundary="b-outer"',
        b"",
        b"--b-outer",
        b"Content-Type: text/plain; charset=utf-8",
        b"",
        b"Please find the report attached.",
        b"--b-outer",
        b'Content-Type: application/pdf; name="report.pdf"',
        b'Content-Disposition: attachment; filename="report.pdf"',
        b"Content-Transfer-Encoding: base64",
        b"",
    ]
    overhead = sum(len(h) + 2 for h in head) + len(b"--b-outer--\r\n")
    lines = max(1, (size - overhead) // 78)  # 57 bytes make a 76-character line + CR LF
    encoded = base64.encodebytes(random.Random(n).randbytes(lines * 57))
    body = encoded.replace(b"\n", b"\r\n")
    return b"\r\n".join(head) + b"\r\n" + body + b"--b-outer--\r\n"


def text_message(n: int, size: int) -> bytes:
    """One plain text body of prose lines; a few start with a dot (stuffed on the wire)."""
    rng = random.Random(n)
    pool = []
    for i in range(4000):
        line = " ".join(rng.choices(_WORDS, k=rng.randint(6, 13))).capitalize() + "."
        pool.append(("." + line if i % 97 == 0 else line).encode())
    head = b"\r\n".join(
        [*_headers(n, "text"), b"Content-Type: text/plain; charset=utf-8", b"", b""]
    )
    mean = sum(len(p) + 2 for p in pool) / len(pool)
    body = b"\r\n".join(rng.choices(pool, k=int((size - len(head)) / mean)))
    return head + body + b"\r\n"


KINDS: dict[str, Callable[[int, int], bytes]] = {
    "attachment": attachment_message,
    "text": text_message,
}


def wire(message: bytes) -> bytes:
    """The DATA payload: dot-stuffed, terminated."""
    stuffed = message.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


# -- SMTP client -------------------------------------------------------------------------------


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=600)
        self.file = self.sock.makefile("rb")
        self.expect(220)
        self.command(b"EHLO bench.example.com", 250)

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("the proxy closed the connection")
            lines.append(line[4:].decode().strip())
            if line[3:4] != b"-":
                return int(line[:3]), " ".join(lines)

    def expect(self, code: int) -> str:
        got, text = self.reply()
        if got != code:
            raise RuntimeError(f"expected {code}, got {got} {text}")
        return text

    def command(self, line: bytes, code: int) -> str:
        self.sock.sendall(line + b"\r\n")
        return self.expect(code)

    def send(self, data: bytes, size: int) -> str:
        self.command(f"MAIL FROM:<sender@example.com> SIZE={size}".encode(), 250)
        self.command(b"RCPT TO:<rcpt@example.org>", 250)
        self.command(b"DATA", 354)
        self.sock.sendall(data)
        return self.expect(250)

    def close(self) -> None:
        try:
            self.command(b"QUIT", 221)
        finally:
            self.file.close()
            self.sock.close()


def send_all(port: int, payloads: list[tuple[bytes, int]]) -> float:
    """Send each payload on its own connection, all at once; the seconds it took."""
    clients = [Client(port) for _ in payloads]
    errors: list[BaseException] = []
    start = threading.Barrier(len(payloads))

    def run(client: Client, data: bytes, size: int) -> None:
        try:
            start.wait()
            client.send(data, size)
            client.close()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(c, d, s))
        for c, (d, s) in zip(clients, payloads, strict=True)
    ]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"sending failed: {errors[0]}")
    return time.perf_counter() - began


# -- memory of the proxy -----------------------------------------------------------------------


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


@contextmanager
def peak(pid: int) -> Iterator[list[int]]:
    """The highest RSS of ``pid`` while the block runs (sampled, and VmHWM after a reset)."""
    with contextlib.suppress(OSError):  # "5" resets the high-water mark (Linux 4.0+)
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    result = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            result[0] = max(result[0], status(pid)["VmRSS"])
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        done.set()
        sampler.join()
        result[0] = max(result[0], status(pid)["VmHWM"])


@dataclass
class Row:
    kind: str
    size: int
    base: int
    one: int
    one_after: int
    many: int
    many_after: int
    parallel: int
    seconds_one: float
    seconds_many: float


def measure(
    port: int, pid: int, base: int, kind: str, size: int, parallel: int, idle: float
) -> Row:
    build = KINDS[kind]
    seed = {"attachment": 1000, "text": 2000}[kind]
    one = build(seed, size)
    payloads = [(wire(one), len(one))]
    real_size = len(one)
    del one
    with peak(pid) as one_peak:
        seconds_one = send_all(port, payloads)
    time.sleep(idle)
    one_after = status(pid)["VmRSS"]
    many_payloads = []
    for i in range(parallel):
        msg = build(seed + 1 + i, size)
        many_payloads.append((wire(msg), len(msg)))
        del msg
    with peak(pid) as many_peak:
        seconds_many = send_all(port, many_payloads)
    del many_payloads
    time.sleep(idle)
    return Row(
        kind,
        real_size,
        base,
        one_peak[0],
        one_after,
        many_peak[0],
        status(pid)["VmRSS"],
        parallel,
        seconds_one,
        seconds_many,
    )


def print_rows(rows: list[Row], src: Path) -> None:
    def mb(n: int) -> str:
        return f"{n / MB:.0f}"

    print(
        f"\nproxy from {src}; RSS in MB (10^6 bytes); base: after one small message; "
        "ratio = (peak - base) / message size"
    )
    print(
        "| mail | message | base | peak, 1 | ratio | after 1 "
        "| peak, N at once | ratio | after burst |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.kind} | {mb(r.size)} | {mb(r.base)} | {mb(r.one)} "
            f"| {(r.one - r.base) / r.size:.1f} | {mb(r.one_after)} "
            f"| {mb(r.many)} (N={r.parallel}) | {(r.many - r.base) / r.size:.1f} "
            f"| {mb(r.many_after)} |"
        )
    for r in rows:
        print(
            f"{r.kind}: one message in {r.seconds_one:.1f} s, "
            f"{r.parallel} at once in {r.seconds_many:.1f} s"
        )


@contextmanager
def reinjection_listener() -> Iterator[int]:
    """smtp-sink (discards everything) on a free port."""
    if not os.path.exists(SMTP_SINK):
        raise SystemExit(f"{SMTP_SINK} not found: install Debian's postfix package")
    port = free_port()
    args = [SMTP_SINK, "-c", f"{HOST}:{port}", "64"]
    if os.geteuid() == 0:
        args[1:1] = ["-u", "nobody"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def proxy(src: Path, reinject_port: int, workdir: Path) -> Iterator[tuple[int, int]]:
    """``postfix-archiver serve`` from ``src``: (listening port, pid)."""
    port = free_port()
    config = workdir / "archiver.toml"
    config.write_text(
        f'[archive]\nhome = "{workdir / "archive"}"\n\n'
        f'[smtp]\nlisten = "{HOST}:{port}"\nreinject = "{HOST}:{reinject_port}"\n'
    )
    env = dict(os.environ, PYTHONPATH=str(src), POSTFIX_ARCHIVER_CONFIG=str(config))
    env.pop("POSTFIX_ARCHIVER_HOME", None)
    log_path = workdir / "archiver.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from postfix_archiver.entry import main; "
                "sys.argv[0] = 'postfix-archiver'; main()",
                "serve",
                "--config",
                str(config),
            ],
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        wait_listening(port, proc)
        yield port, proc.pid
    except BaseException:
        sys.stderr.write(log_path.read_text(errors="replace")[-3000:])
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=49 * MB, help="bytes per message")
    parser.add_argument("--parallel", type=int, default=6, help="messages sent at once")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds idle before 'after'")
    parser.add_argument("--kinds", default="attachment,text", help="attachment,text")
    parser.add_argument("--src", type=Path, default=HERE.parent / "src", help="source tree")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kind(s) {', '.join(sorted(unknown))}; choose from {list(KINDS)}")
    workdir = Path(tempfile.mkdtemp(prefix="pa-bench-memory-"))
    try:
        with (
            reinjection_listener() as reinject_port,
            proxy(args.src, reinject_port, workdir) as (port, pid),
        ):
            # a small message first: what the first mail loads (imports, SQLite) is base
            warm = text_message(1, 20_000)
            send_all(port, [(wire(warm), len(warm))])
            time.sleep(args.idle)
            base = status(pid)["VmRSS"]
            rows = []
            for kind in kinds:
                rows.append(measure(port, pid, base, kind, args.size, args.parallel, args.idle))
                print(f"  {kind}: done", file=sys.stderr, flush=True)
        print_rows(rows, args.src)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
