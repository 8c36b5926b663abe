"""The archive on an S3 store (a real moto_server): mail through the real SMTP proxy, with the
store stopped mid-run (451, nothing reinjected, nothing lost); ``import`` then ``verify``
through the command line; a purge that Object Lock refuses.
"""

from __future__ import annotations

import base64
import mailbox
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.s3_helpers import S3, MotoServer, s3_environment
from tests.unit.capture.capture_helpers import CLI, Listener, Proxy, make_message

from postfix_archiver.archive import Archive
from postfix_archiver.archive.removal import finish_pending, plan_purge, remove
from postfix_archiver.config import Config, load_config_file
from postfix_archiver.envelope import Envelope
from postfix_archiver.errors import StoreError

pytestmark = [pytest.mark.integration]

ATTACHMENT = os.urandom(300_000)  # over the pack limit once compressed: an object of its own


def write_config(home: Path, store: str, endpoint: str, extra: str = "") -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home.parent / "config.toml"
    path.write_text(
        f'[archive]\nhome = "{home}"\nstore = "{store}"\n{extra}\n'
        f'[s3]\nendpoint = "{endpoint}"\nattempts = 2\ntimeout = 2\n'
    )
    return path


def with_attachment(subject: str) -> bytes:
    body = base64.encodebytes(ATTACHMENT).decode()
    return make_message(
        subject,
        extra_headers='MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n',
        body=(
            "--b\nContent-Type: text/plain\n\nsee attached\n--b\n"
            "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
            f'Content-Disposition: attachment; filename="data.bin"\n\n{body}--b--\n'
        ),
    )


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener().start()
    try:
        yield lst
    finally:
        lst.stop()


def test_proxy_into_s3_with_the_store_stopped_mid_run(tmp_path: Path, listener: Listener) -> None:
    server = MotoServer().start()
    saved = {k: os.environ.get(k) for k in s3_environment()}
    os.environ.update(s3_environment())
    try:
        bucket = server.bucket()
        config = load_config_file(
            write_config(tmp_path / "home", f"s3://{bucket}/mx", server.endpoint)
        )
        with Archive(config) as archive:
            proxy = Proxy(archive, config, listener.address)
            try:
                assert proxy.send(make_message("before"))[0] == 250
                port = server.port
                server.stop()
                code, text = proxy.send(with_attachment("during"))
                assert (code, text) == (451, "4.3.0 Error: archiving failed, try again later")
                assert len(listener.handler.messages) == 1  # the first one only
                # the store is back (moto keeps nothing: the bucket is made again), and
                # Postfix's retry of the deferred message is archived and passed on
                server = MotoServer(port).start()
                server.client().create_bucket(Bucket=bucket)
                assert proxy.send(with_attachment("during"))[0] == 250
            finally:
                proxy.close()
            assert len(listener.handler.messages) == 2
            # (the first message's blobs went with moto's restart: only the second is read)
            rows = sorted(archive.search("", limit=10).results, key=lambda r: r.id)
            assert [r.subject for r in rows] == ["before", "during"]
            # read back from S3, its SHA-256 checked
            assert archive.raw(rows[1].id) == with_attachment("during")
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cli(config: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    env["POSTFIX_ARCHIVER_CONFIG"] = str(config)
    done = subprocess.run(
        [str(CLI), *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=300,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode()
    )


def test_import_into_s3_then_verify_checks_every_blob(moto_s3: S3, tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "in.mbox")
    for i in range(12):
        box.add(make_message(f"imported {i}", body=f"message {i}\n" * 50))
    box.add(with_attachment("with a large attachment"))
    box.close()
    config = write_config(
        tmp_path / "home", f"s3://{moto_s3.bucket}/imported", moto_s3.server.endpoint
    )
    done = cli(config, "import", str(tmp_path / "in.mbox"))
    assert done.returncode == 0, done.stdout + done.stderr
    done = cli(config, "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    # few objects for 13 messages: packs, and the large message on its own
    client = moto_s3.server.client()
    keys = [
        o["Key"]
        for o in client.list_objects_v2(Bucket=moto_s3.bucket, Prefix="imported/")["Contents"]
    ]
    assert len([k for k in keys if k.startswith("imported/blobs/")]) == 1  # the large one
    assert 1 <= len([k for k in keys if k.startswith("imported/packs/")]) <= 3  # 12 small
    # a blob gone behind the archive's back is found
    client.delete_object(Bucket=moto_s3.bucket, Key=next(k for k in keys if "/blobs/" in k))
    done = cli(config, "verify")
    assert done.returncode != 0
    assert "missing" in (done.stdout + done.stderr).lower()


def test_a_purge_that_object_lock_refuses_is_reported(moto_s3: S3, tmp_path: Path) -> None:
    bucket = moto_s3.server.bucket(object_lock=True)
    config: Config = load_config_file(
        write_config(
            tmp_path / "home",
            f"s3://{bucket}/locked",
            moto_s3.server.endpoint,
            extra='retention = "1d"',
        )
    )
    with Archive(config) as archive:
        result = archive.ingest(make_message("kept a day"), _envelope())
        later = datetime.now(UTC) + timedelta(days=3)  # a clock past the retention...
        plan = plan_purge(archive, now=later)
        assert [r.id for r in plan.remove] == [result.id]
        # ...but S3's is not: the lock holds, the purge says so
        with pytest.raises(StoreError, match=r"Object Lock kept .* the next purge or erase"):
            remove(archive, plan.remove, why="purge", reason="retention ended", who="test")
        # the catalog is consistent: the message is gone from it, its blobs stay pending
        assert archive.search("", limit=10).results == []
        with pytest.raises(StoreError, match="Object Lock"):
            finish_pending(archive)
        assert list(archive.store.keys())  # still there, readable


def _envelope() -> Envelope:
    return Envelope(sender="alice@example.com", recipients=("bob@example.com",))


def test_the_pipe_filter_exits_75_when_the_store_is_down(
    moto_s3: S3, tmp_path: Path, listener: Listener
) -> None:
    server = MotoServer().start()
    bucket = server.bucket()
    config = write_config(tmp_path / "home", f"s3://{bucket}/pipe", server.endpoint)
    args = ["--reinject", listener.address, "-f", "alice@example.com", "--", "bob@example.com"]
    assert cli(config, "filter", *args, stdin=make_message("up")).returncode == 0
    server.stop()
    done = cli(config, "filter", *args, stdin=make_message("down"))
    assert done.returncode == 75, done.stderr  # EX_TEMPFAIL: Postfix keeps it queued
    assert "unreachable" in done.stderr
    assert len(listener.handler.messages) == 1
