"""RFC 3161 timestamps of checkpoints against a real time-stamping authority run locally.

The fixture makes a CA and a TSA certificate (extendedKeyUsage critical timeStamping) with
``openssl`` and serves ``openssl ts -reply`` behind a small HTTP server on a thread, as a
public TSA answers ``application/timestamp-query`` POSTs. No mocks: the archiver's request,
the TSA's signature and both checks are OpenSSL's."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from requirements import require_binary

from postfix_archiver.archive import Archive
from postfix_archiver.archive.checkpoint import check_checkpoint, make_checkpoint
from postfix_archiver.cli import main
from postfix_archiver.config import Config, IntegritySettings
from postfix_archiver.envelope import Envelope
from postfix_archiver.integrity import checkpoint as fmt
from postfix_archiver.integrity.keys import CreatedKey, create_signing_key, load_public_key

pytestmark = [pytest.mark.integration]

TSA_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.crt
certs = $dir/ca.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(require_binary("openssl", "OpenSSL")), *map(str, args)],
        capture_output=True,
        timeout=60,
        check=False,
    )


def make_ca(directory: Path, name: str) -> None:
    done = openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", directory / f"{name}.key", "-out", directory / f"{name}.crt", "-days", "2",
        "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def make_tsa_certificate(directory: Path, ca: str, extensions: str) -> None:
    done = openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", directory / "tsa.key", "-out", directory / "tsa.csr", "-subj", "/CN=Test TSA",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (directory / "ext.cnf").write_text(extensions)
    done = openssl(
        "x509", "-req", "-in", directory / "tsa.csr", "-CA", directory / f"{ca}.crt",
        "-CAkey", directory / f"{ca}.key", "-CAcreateserial", "-out", directory / "tsa.crt",
        "-days", "2", "-extfile", directory / "ext.cnf",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


TIMESTAMPING = (
    "extendedKeyUsage=critical,timeStamping\nbasicConstraints=CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
)


@dataclass
class Tsa:
    directory: Path
    url: str
    ca_file: Path
    requests: list[str] = field(default_factory=list)
    status: int = 200  # what the server answers; 200 runs openssl ts -reply


def serve_tsa(tsa: Tsa) -> http.server.ThreadingHTTPServer:
    """``openssl ts -reply`` over HTTP, as a public TSA answers (or ``tsa.status``)."""
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            tsa.requests.append(self.headers.get("Content-Type", ""))
            query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if tsa.status != 200:
                self.send_error(tsa.status, "not today")
                return
            with lock:  # one serial file
                query_file = tsa.directory / "query.tsq"
                query_file.write_bytes(query)
                done = openssl(
                    "ts", "-reply", "-config", tsa.directory / "tsa.cnf", "-queryfile",
                    query_file, "-out", tsa.directory / "reply.tsr",
                )  # fmt: skip
                reply = (tsa.directory / "reply.tsr").read_bytes() if done.returncode == 0 else b""
            self.send_response(200 if reply else 500)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[Tsa]:
    directory = tmp_path / "tsa"
    directory.mkdir()
    make_ca(directory, "ca")
    make_tsa_certificate(directory, "ca", TIMESTAMPING)
    (directory / "serial").write_text("01\n")
    (directory / "tsa.cnf").write_text(TSA_CONFIG.format(dir=directory))
    made = Tsa(directory, "", directory / "ca.crt")
    server = serve_tsa(made)
    made.url = f"http://127.0.0.1:{server.server_address[1]}/tsr"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield made
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@dataclass
class Setup:
    archive: Archive
    key: CreatedKey
    directory: Path

    def settings(self, url: str, ca_file: Path) -> IntegritySettings:
        return IntegritySettings(
            signing_key=self.key.private,
            signing_key_configured=True,
            tsa_url=url,
            tsa_ca_file=ca_file,
            tsa_timeout=10.0,
        )


@pytest.fixture
def setup(config: Config, tmp_path: Path) -> Iterator[Setup]:
    key = create_signing_key(tmp_path / "keys" / "signing.key")
    with Archive(config) as archive:
        for n in range(3):
            archive.ingest(
                f"Subject: m{n}\r\n\r\nbody {n}\r\n".encode(),
                Envelope("a@example.com", ("b@example.org",), queue_id=f"Q{n}"),
            )
        yield Setup(archive, key, config.archive.home / "checkpoints")


def test_a_checkpoint_is_timestamped_and_the_token_verified(setup: Setup, tsa: Tsa) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    written = make_checkpoint(
        setup.archive.catalog, setup.settings(tsa.url, tsa.ca_file), setup.directory
    )
    assert tsa.requests == ["application/timestamp-query"]
    assert written.timestamp_error is None
    assert written.timestamp is not None
    assert before - timedelta(seconds=2) <= written.timestamp <= datetime.now(UTC)
    token = fmt.timestamp_path(written.path)
    assert token.exists()
    # what the archiver checks, with the public key and the TSA's CA only
    report = check_checkpoint(
        setup.archive.catalog, written.path, load_public_key(setup.key.public), tsa.ca_file
    )
    assert report.ok, report.problems
    assert report.timestamp == written.timestamp
    # and what the README tells an auditor to run
    done = openssl("ts", "-verify", "-data", written.path, "-in", token, "-CAfile", tsa.ca_file)
    assert done.returncode == 0, done.stderr
    assert b"Verification: OK" in done.stdout


def test_a_timestamp_of_another_checkpoint_fails(setup: Setup, tsa: Tsa) -> None:
    settings = setup.settings(tsa.url, tsa.ca_file)
    first = make_checkpoint(setup.archive.catalog, settings, setup.directory).path
    setup.archive.ingest(b"Subject: more\r\n\r\n.\r\n", Envelope("a@example.com", ("c@x.org",)))
    second = make_checkpoint(setup.archive.catalog, settings, setup.directory).path
    fmt.timestamp_path(second).write_bytes(fmt.timestamp_path(first).read_bytes())
    report = check_checkpoint(
        setup.archive.catalog, second, load_public_key(setup.key.public), tsa.ca_file
    )
    assert [str(p) for p in report.problems] == [
        f"checkpoint {second.name}: {second.name}.tsr: the timestamp does not verify: "
        "message imprint mismatch"
    ]
    assert report.timestamp is None


def test_a_timestamp_from_a_tsa_the_auditor_does_not_trust_fails(
    setup: Setup, tsa: Tsa, tmp_path: Path
) -> None:
    written = make_checkpoint(
        setup.archive.catalog, setup.settings(tsa.url, tsa.ca_file), setup.directory
    )
    make_ca(tmp_path, "other")
    report = check_checkpoint(
        setup.archive.catalog, written.path, load_public_key(setup.key.public),
        tmp_path / "other.crt",
    )  # fmt: skip
    [problem] = [str(p) for p in report.problems]
    assert "the timestamp does not verify: certificate verify error" in problem
    # without a CA file the token is not checked, and that is said, not hidden
    unchecked = check_checkpoint(
        setup.archive.catalog, written.path, load_public_key(setup.key.public)
    )
    assert unchecked.ok
    assert unchecked.timestamp_note is not None
    assert "not checked: give the TSA's CA certificate" in unchecked.timestamp_note


def test_a_token_the_configured_ca_does_not_vouch_for_is_not_stored(
    setup: Setup, tsa: Tsa, tmp_path: Path
) -> None:
    make_ca(tmp_path, "other")
    written = make_checkpoint(
        setup.archive.catalog, setup.settings(tsa.url, tmp_path / "other.crt"), setup.directory
    )
    assert written.timestamp is None
    assert written.timestamp_error is not None
    assert written.timestamp_error.startswith(
        f"time-stamping authority {tsa.url} sent a timestamp that does not verify: "
        "certificate verify error"
    )
    assert not fmt.timestamp_path(written.path).exists()
    assert fmt.signature_path(written.path).exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_tsa_that_is_down_leaves_a_signed_checkpoint_without_a_timestamp(
    setup: Setup, tsa: Tsa
) -> None:
    url = f"http://127.0.0.1:{free_port()}/tsr"
    written = make_checkpoint(
        setup.archive.catalog, setup.settings(url, tsa.ca_file), setup.directory
    )
    assert written.path.exists()
    assert fmt.signature_path(written.path).exists()
    assert not fmt.timestamp_path(written.path).exists()
    assert written.timestamp_error == (
        f"time-stamping authority {url} cannot be reached: Connection refused"
    )
    report = check_checkpoint(
        setup.archive.catalog, written.path, load_public_key(setup.key.public), tsa.ca_file
    )
    assert report.ok
    assert report.timestamp_note == "no timestamp stored beside it"


def test_a_tsa_answering_an_error_is_reported(setup: Setup, tsa: Tsa) -> None:
    tsa.status = 503
    written = make_checkpoint(
        setup.archive.catalog, setup.settings(tsa.url, tsa.ca_file), setup.directory
    )
    assert written.timestamp_error == (
        f"time-stamping authority {tsa.url} answered HTTP 503 not today"
    )


def test_the_checkpoint_command_says_when_there_is_no_timestamp(
    tmp_path: Path, tsa: Tsa, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "archiver.toml"
    down = f"http://127.0.0.1:{free_port()}/tsr"

    def write_config(url: str) -> None:
        config.write_text(
            f'[archive]\nhome = "data"\n[integrity]\nsigning_key = "keys/signing.key"\n'
            f'tsa_url = "{url}"\ntsa_ca_file = "{tsa.ca_file}"\n'
        )

    def run(*args: str | Path) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, [*map(str, args), "--config", str(config)])
        return result.exit_code, result.stdout, result.stderr

    write_config(tsa.url)
    (tmp_path / "m.eml").write_bytes(b"Subject: hi\r\n\r\nbody\r\n")
    assert run("keys", "init")[0] == 0
    assert run("import", tmp_path / "m.eml")[0] == 0
    code, stdout, _ = run("checkpoint")
    assert code == 0
    assert f"timestamped by {tsa.url} at " in stdout
    [stamped] = sorted((tmp_path / "data" / "checkpoints").glob("*.json"))
    code, stdout, _ = run("verify", "--checkpoint", stamped, "--public-key", "keys/signing.key.pub")
    assert code == 0
    assert "timestamp: good, the TSA saw it at " in stdout
    write_config(down)
    code, stdout, stderr = run("checkpoint")
    assert code == 1
    assert "written to " in stdout
    assert stderr.strip() == (
        f"NOT timestamped: time-stamping authority {down} cannot be reached: Connection "
        "refused (the checkpoint is signed and stored without a timestamp)"
    )
