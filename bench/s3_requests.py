"""S3 store benchmark: requests and bytes per 1,000 messages, packed vs an object per blob.

A moto_server on 127.0.0.1 (the dev dependency ``moto[server]``) stands in for S3; what is
counted is what the archiver sends (every HTTP request boto3 makes, by kind, and the bytes of
their bodies), which is what S3 bills, not moto's speed. The corpus is ``bench/ingest.py``'s:
``--messages`` (default 1,000) of which one in ``--attachment-every`` (default 10) carries
1-3 attachments from a pool of 50 files of 50-500 KB, the rest ~10 KB text mail.

Each layout is run two ways:
- ``import``: ``Archive.ingest_many`` (``postfix-archiver import``): blobs stored per chunk of
  8 messages, one ``put_many`` each;
- ``8 sessions``: 8 threads each submitting a message to the ingest service and waiting for
  it, as the proxy's concurrent SMTP sessions: the committer stores what waits together
  (group commit), so batches form;
- ``one by one``: ``Archive.ingest`` per message, the proxy with one SMTP session at a time
  (its worst case).

    .venv/bin/python bench/s3_requests.py [--messages N] [--attachment-every N]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.ingest import AttachmentCorpus, TextCorpus  # noqa: E402
from tests.s3_helpers import MotoServer, s3_environment  # noqa: E402

from postfix_archiver.archive import Archive  # noqa: E402
from postfix_archiver.config import parse_config  # noqa: E402
from postfix_archiver.envelope import Envelope  # noqa: E402
from postfix_archiver.store.s3 import S3Store  # noqa: E402

# AWS S3 Standard, us-east-1, per 1,000 requests (2025 list prices)
PRICE_WRITE = 0.005  # PUT, COPY, POST, LIST
PRICE_READ = 0.0004  # GET, HEAD and the rest


class Counter:
    """Every request the store's client sends: its kind and body size."""

    def __init__(self) -> None:
        self.kinds: collections.Counter[str] = collections.Counter()
        self.bytes = 0

    def __call__(self, request: Any, **_: Any) -> None:
        url = request.url
        kind = request.method
        if kind == "GET" and ("list-type=" in url or "versions" in url):
            kind = "LIST"
        elif kind == "POST" and "delete" in url:
            kind = "DELETE"
        self.kinds[kind] += 1
        self.bytes += int(request.headers.get("Content-Length", 0))

    def cost(self) -> float:
        writes = sum(n for k, n in self.kinds.items() if k in ("PUT", "POST", "LIST"))
        reads = sum(self.kinds.values()) - writes
        return (writes * PRICE_WRITE + reads * PRICE_READ) / 1000


def corpus(n: int, every: int) -> Iterator[tuple[bytes, Envelope]]:
    text = TextCorpus()
    attached = AttachmentCorpus(text, 50)
    for i in range(n):
        yield attached.message(i) if i % every == every - 1 else text.message(i)


def run(server: MotoServer, work: Path, name: str, pack: bool, sessions: int, args: Any) -> None:
    """``sessions``: 0 for ``ingest_many``, else that many threads calling ``ingest``."""
    bucket = server.bucket()
    home = work / name.replace(" ", "-")
    store = f"s3://{bucket}/a?endpoint={server.endpoint}" + ("" if pack else "&pack_limit=-1")
    config = parse_config(f'[archive]\nhome = "{home}"\nstore = "{store}"\n', str(work / "c.toml"))
    counter = Counter()
    messages = list(corpus(args.messages, args.attachment_every))
    raw_bytes = sum(len(raw) for raw, _ in messages)
    with Archive(config, workers=2) as archive:
        assert isinstance(archive.store, S3Store)
        archive.store._client.meta.events.register("before-send.s3", counter)
        if sessions:
            with ThreadPoolExecutor(sessions) as pool:
                # each a session waiting for its answer, as the proxy's handlers do
                list(pool.map(lambda m: archive.ingester.submit(*m).result(), messages))
        else:
            for _ in archive.ingest_many(messages):
                pass
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="a/")
    objects = sum(page.get("KeyCount", 0) for page in pages)
    per = 1000 / args.messages
    kinds = ", ".join(f"{k} {n * per:,.0f}" for k, n in sorted(counter.kinds.items()))
    print(
        f"{name:28} {sum(counter.kinds.values()) * per:7,.0f} requests ({kinds}); "
        f"{objects * per:6,.0f} objects; {counter.bytes * per / 1e6:6.1f} MB sent "
        f"(raw mail {raw_bytes * per / 1e6:.1f} MB); ${counter.cost() * per:.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--attachment-every", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ.update(s3_environment())
    server = MotoServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"per 1,000 messages (of {args.messages} archived), against moto_server:")
            ways = {"import": 0, "8 sessions": 8, "one by one": 1}
            for pack in (True, False):
                for way, sessions in ways.items():
                    name = f"{'packed' if pack else 'object per blob'}, {way}"
                    run(server, Path(tmp), name, pack, sessions, args)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
