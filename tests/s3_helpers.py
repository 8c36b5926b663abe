"""A real S3 server for the S3 store's tests: ``moto_server`` on 127.0.0.1 (PyPI ``moto[server]``,
a dev dependency), which speaks S3's HTTP API, Object Lock and versioning included.

One server per test session (``moto_s3``): each test takes a fresh key prefix or bucket in
it. A test that stops the server mid-run starts its own (``MotoServer``). Without
``moto_server`` the tests skip, and fail under ``REQUIRE_INTEGRATION=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# the skip-or-fail helper of the integration tests, under the one name they import it by
_INTEGRATION = str(Path(__file__).resolve().parent / "integration")
if _INTEGRATION not in sys.path:
    sys.path.append(_INTEGRATION)
from requirements import unavailable  # noqa: E402

# what the tests give boto3 through the standard chain (the environment); the secret is
# distinctive so a test can look for it in logs and messages
ACCESS_KEY = "AKIATESTARCHIVER0001"
SECRET_KEY = "qqzx-s3-secret-never-logged-7f3e91"


def _moto_binary() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if found is None:
        unavailable("moto_server is not installed (pip install 'moto[server]', a dev dependency)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class MotoServer:
    """``moto_server -H 127.0.0.1 -p PORT`` as a child process; ``stop`` and ``start`` again
    on the same port (its buckets are in memory: a restart forgets them)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> MotoServer:
        self._process = subprocess.Popen(
            [_moto_binary(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self._process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"moto_server did not start on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def bucket(self, *, object_lock: bool = False) -> str:
        """A new bucket (with Object Lock, and so versioning, if asked)."""
        name = f"pa-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name


@dataclass
class S3:
    """The session's server and a bucket for tests that need no lock of their own."""

    server: MotoServer
    bucket: str

    def url(self, prefix: str | None = None, **options: object) -> str:
        """A store URL with a fresh prefix (or ``prefix``) in the shared bucket."""
        query = "&".join(
            f"{k}={v}" for k, v in {"endpoint": self.server.endpoint, **options}.items()
        )
        return f"s3://{self.bucket}/{prefix or uuid.uuid4().hex[:12]}?{query}"


def s3_environment() -> dict[str, str]:
    """The AWS chain's environment for the tests: moto's credentials, no profile or config
    file of the machine's, no instance metadata lookups."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[S3]:
    """One moto server for the session, with the AWS environment pointing at it."""
    saved = {k: os.environ.get(k) for k in s3_environment()}
    os.environ.update(s3_environment())
    server = MotoServer().start()
    try:
        yield S3(server, server.bucket())
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
