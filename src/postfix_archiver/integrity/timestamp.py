"""RFC 3161 timestamps of checkpoints, from a time-stamping authority (TSA) over HTTP.

``cryptography`` has no time-stamp protocol, so the ``openssl`` binary builds the request
(``openssl ts -query``, SHA-256, with a nonce, asking for the TSA's certificate) and checks
the response (``openssl ts -verify`` against the configured CA file): the very commands an
auditor runs, so what the archiver accepts is what they can check. The request is POSTed as
``application/timestamp-query``; the whole response (DER ``TimeStampResp``) is stored.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import CheckpointError

# a response is a few KiB (a signature and a certificate or two)
MAX_RESPONSE = 1 << 20
# openssl on local files: far less than this
OPENSSL_TIMEOUT = 60.0
_TIME = re.compile(
    r"^Time stamp: ([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.\d+)? (\d{4}) GMT$", re.M
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Timestamp:
    response: bytes  # DER TimeStampResp, as stored beside the checkpoint
    time: datetime  # the TSA's genTime


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise CheckpointError(
            "the openssl command is not installed: RFC 3161 timestamps need it (Debian: "
            "apt-get install openssl)"
        )
    return found


def _run(args: list[str], what: str) -> str:
    try:
        done = subprocess.run(
            [_openssl(), *args],
            capture_output=True,
            timeout=OPENSSL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CheckpointError(f"{what}: openssl took longer than {OPENSSL_TIMEOUT:g}s") from None
    except OSError as exc:
        raise CheckpointError(f"{what}: cannot run openssl: {exc.strerror}") from None
    output = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        raise CheckpointError(f"{what}: {_reason(done.stderr, output)}")
    return output


def _reason(stderr: bytes, stdout: str) -> str:
    """openssl's own words, shortened: the reason (and detail) of each error line, e.g.
    ``40B7…:error:17800067:time stamp routines:ts_check_imprints:message imprint mismatch:
    ../crypto/ts/ts_rsp_verify.c:508:`` -> ``message imprint mismatch``."""
    lines = (stdout + "\n" + stderr.decode("utf-8", "replace")).splitlines()
    reasons: list[str] = []
    for line in lines:
        if ":error:" not in line:
            continue
        # code:library:function:reason:file:line:detail
        fields = line.split(":error:", 1)[1].split(":")
        if len(fields) >= 4:
            detail = ":".join(fields[6:]).strip()
            reasons.append(f"{fields[3]} ({detail})" if detail else fields[3])
    if not reasons:
        reasons = [
            line.strip()
            for line in lines
            if line.strip() and not line.startswith("Using configuration from")
        ]
    return "; ".join(dict.fromkeys(reasons))[:400] or "openssl failed"


def request_timestamp(data: bytes, url: str, ca_file: Path, timeout: float) -> Timestamp:
    """A timestamp of ``data`` from the TSA at ``url``, checked against ``ca_file`` and the
    request's nonce before it is returned; ``CheckpointError`` saying why there is none."""
    where = f"time-stamping authority {url}"
    with tempfile.TemporaryDirectory(prefix="pa-ts-") as tmp:
        data_file, query_file, reply_file = (Path(tmp) / n for n in ("data", "tsq", "tsr"))
        data_file.write_bytes(data)
        _run(
            ["ts", "-query", "-data", str(data_file), "-sha256", "-cert", "-out", str(query_file)],
            "cannot build the timestamp request",
        )
        response = _post(url, query_file.read_bytes(), timeout, where)
        reply_file.write_bytes(response)
        args = ["-queryfile", str(query_file), "-in", str(reply_file)]
        _verify(args, ca_file, f"{where} sent a timestamp that does not verify")
        return Timestamp(response, _time_of(reply_file, where))


def verify_timestamp(data: bytes, response: bytes, ca_file: Path) -> datetime:
    """The time at which the TSA saw ``data``, when ``response`` is a granted timestamp of it
    signed by a TSA certificate that ``ca_file`` vouches for; else ``CheckpointError``."""
    with tempfile.TemporaryDirectory(prefix="pa-ts-") as tmp:
        data_file, reply_file = Path(tmp) / "data", Path(tmp) / "tsr"
        data_file.write_bytes(data)
        reply_file.write_bytes(response)
        _verify(
            ["-data", str(data_file), "-in", str(reply_file)],
            ca_file,
            "the timestamp does not verify",
        )
        return _time_of(reply_file, "the timestamp")


def _verify(args: list[str], ca_file: Path, what: str) -> None:
    if not ca_file.is_file():
        raise CheckpointError(f"TSA CA file {ca_file}: no such file")
    _run(["ts", "-verify", *args, "-CAfile", str(ca_file)], what)


def _time_of(reply_file: Path, where: str) -> datetime:
    text = _run(["ts", "-reply", "-in", str(reply_file), "-text"], f"{where}: unreadable")
    m = _TIME.search(text)
    if m is None or m.group(1) not in _MONTHS:
        raise CheckpointError(f"{where}: no time in the timestamp")
    month = _MONTHS.index(m.group(1)) + 1
    day, hour, minute, second, year = (int(g) for g in m.group(2, 3, 4, 5, 6))
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise CheckpointError(f"{where}: the time in the timestamp is not a date") from None


def _post(url: str, query: bytes, timeout: float, where: str) -> bytes:
    request = urllib.request.Request(  # noqa: S310 (config allows only http:// and https://)
        url,
        data=query,
        method="POST",
        headers={"Content-Type": "application/timestamp-query"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
            body: bytes = reply.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as exc:
        raise CheckpointError(f"{where} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason.strerror if isinstance(exc.reason, OSError) else exc.reason
        raise CheckpointError(f"{where} cannot be reached: {reason}") from None
    except TimeoutError:
        raise CheckpointError(f"{where} did not answer within {timeout:g}s") from None
    except OSError as exc:
        raise CheckpointError(f"{where}: {exc.strerror or exc}") from None
    if len(body) > MAX_RESPONSE:
        raise CheckpointError(f"{where} sent more than {MAX_RESPONSE} bytes: not a timestamp")
    return body
