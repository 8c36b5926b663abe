"""Ingest benchmark: messages per second and stored/raw bytes, against the targets.

Two corpora, each imported into a fresh archive in a temporary directory through
``Archive.ingest_many`` (the path ``postfix-archiver import`` takes), full-text indexing
included:

1. text mail: ``--messages`` (default 10,000) realistic ~10 KB messages: Received chains,
   DKIM signatures, list headers, text bodies from a word list, some with an HTML alternative;
2. attachments: ``--attachment-messages`` (default 1,000) messages with 1-3 attachments each,
   drawn from a pool of ``--pool`` (default 50) files of 50-500 KB that recur across messages:
   PDF-like (text streams mixed with random bytes), images (random bytes, incompressible) and
   office documents (compressible).

Targets: >= 1,000 messages/s, stored/raw <= 0.35 on the attachment corpus.

    .venv/bin/python bench/ingest.py [--messages N] [--attachment-messages N] [--profile]
    .venv/bin/python bench/ingest.py --encryption [--rounds N]
    .venv/bin/python bench/ingest.py --runs 5   # the text corpus 5 times: each rate, median
    .venv/bin/python bench/ingest.py --catalog postgresql://USER@HOST/EMPTY_DB --messages N

``--runs N`` imports the text corpus into N fresh archives, one after another, and prints each
rate, the median (issue #13's target: >= 2,000 messages/s) and the load average.

``--encryption`` imports each corpus with and without encryption at rest (AES-256-GCM, keyed
blob names), alternating ``--rounds`` times (default 2) so both see the same machine, and
prints the best rate of each and their ratio, plus the raw sealing speed of one thread.

``--profile`` additionally runs a sample of the text corpus on one thread under cProfile
(prepare + catalog batches, what the ingest threads and the writer do) and prints where the
time goes.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import os
import pstats
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from postfix_archiver.archive import Archive
from postfix_archiver.archive.events import seal
from postfix_archiver.config import Config, parse_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.export import mbox_entry
from postfix_archiver.importers import open_source, worker_processes
from postfix_archiver.importers.base import import_envelope
from postfix_archiver.store.encrypted import EncryptedStore
from postfix_archiver.store.fs import FileStore
from postfix_archiver.store.keyring import create_key_file, new_keyring

TARGET_RATE = 1000.0
TARGET_RATIO = 0.35

_WORD_LIST = (
    "the of and to in a is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she there been one all we their has would when if "
    "so no will more out up about into them can only other time new some could these two may "
    "first then do any like my now over such our man me even most made after also did many "
    "before must through back years where much your way well down should because each just "
    "those people how too little state good very make world still own see men work long get "
    "here between both life being under never day same another know while last might us great "
    "old year off come since against go came right used take three invoice report quarterly "
    "budget meeting agenda minutes draft final review contract renewal payment overdue "
    "shipping delivery order tracking server outage backup restore migration ticket urgent "
    "weekly summary customer support feedback release roadmap launch project deadline"
)
_FIRST_NAMES = "alice bob carol dave eve frank grace heidi ivan judy mallory oscar peggy trent"
_LAST_NAMES = "smith jones miller brown taylor wilson davies evans thomas johnson roberts"
WORDS = _WORD_LIST.split()
FIRST = _FIRST_NAMES.split()
LAST = _LAST_NAMES.split()
DOMAINS = (
    "example.com",
    "example.org",
    "mail.example.net",
    "corp.example.com",
    "lists.example.org",
)


def _address(rng: random.Random) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return f"{first.title()} {last.title()}", f"{first}.{last}@{rng.choice(DOMAINS)}"


def _fmt(addr: tuple[str, str]) -> str:
    return f'"{addr[0]}" <{addr[1]}>'


def _paragraph(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(30, 90))
    words[0] = words[0].capitalize()
    lines, line = [], ""
    for w in words:
        if len(line) + len(w) > 72:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    lines.append(line + ".")
    return "\n".join(lines)


class TextCorpus:
    """Realistic ~10 KB text messages, some with an HTML alternative."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.paragraphs = [_paragraph(self.rng) for _ in range(3000)]

    def _headers(self, n: int, when: datetime) -> tuple[list[str], tuple[str, str], list[str]]:
        rng = self.rng
        sender = _address(rng)
        to = [_address(rng) for _ in range(rng.randint(1, 3))]
        cc = [_address(rng) for _ in range(rng.randint(0, 2))]
        hops = []
        for hop in range(rng.randint(2, 4)):
            t = when - timedelta(seconds=hop * rng.randint(1, 30))
            hops.append(
                f"Received: from mx{hop}.{rng.choice(DOMAINS)} (mx{hop}.{rng.choice(DOMAINS)} "
                f"[192.0.2.{rng.randint(1, 254)}])\n\tby mail.example.com (Postfix) with ESMTPS "
                f"id {rng.getrandbits(40):010X}\n\tfor <{to[0][1]}>; {format_datetime(t)}"
            )
        dkim = base64.b64encode(rng.randbytes(256)).decode()
        body_hash = base64.b64encode(rng.randbytes(32)).decode()
        headers = [
            f"Return-Path: <{sender[1]}>",
            *hops,
            f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={sender[1].split('@')[1]};"
            f"\n\ts=sel1; t={int(when.timestamp())}; h=from:to:subject:date:message-id;"
            f"\n\tbh={body_hash};\n\tb={dkim[:70]}\n\t{dkim[70:140]}\n\t{dkim[140:]}",
            f"From: {_fmt(sender)}",
            f"To: {', '.join(_fmt(a) for a in to)}",
        ]
        if cc:
            headers.append(f"Cc: {', '.join(_fmt(a) for a in cc)}")
        subject = " ".join(rng.choices(WORDS, k=rng.randint(3, 9))).capitalize()
        if rng.random() < 0.3:
            subject = "Re: " + subject
        headers += [
            f"Subject: {subject}",
            f"Date: {format_datetime(when)}",
            f"Message-ID: <{n}.{rng.getrandbits(64):016x}@{sender[1].split('@')[1]}>",
            "MIME-Version: 1.0",
        ]
        if rng.random() < 0.2:
            headers += [
                "List-Id: <announce.lists.example.org>",
                "List-Unsubscribe: <mailto:leave@lists.example.org>",
                "Precedence: list",
            ]
        if rng.random() < 0.5:
            headers.append(f"X-Mailer: Mailer {rng.randint(1, 20)}.{rng.randint(0, 9)}")
        return headers, sender, [a for _, a in to + cc]

    def message(self, n: int) -> tuple[bytes, Envelope]:
        rng = self.rng
        when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(365 * 86400))
        headers, sender, rcpts = self._headers(n, when)
        html = rng.random() < 0.3
        target = rng.randint(3500, 6500) if html else rng.randint(5500, 11000)
        paras: list[str] = []
        size = 0
        while size < target:
            p = rng.choice(self.paragraphs)
            paras.append(p)
            size += len(p) + 2
        text = "\n\n".join(paras) + "\n\n-- \n" + f"{sender[0]}\n"
        if not html:
            body = ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
            lines = [*headers, *body, "", text]
        else:
            markup = "\n".join(f"<p>{p}</p>" for p in paras[: max(1, len(paras) // 2)])
            boundary = f"=_alt_{rng.getrandbits(48):012x}"
            lines = [
                *headers,
                f'Content-Type: multipart/alternative; boundary="{boundary}"',
                "",
                f"--{boundary}",
                "Content-Type: text/plain; charset=utf-8",
                "",
                text,
                f"--{boundary}",
                "Content-Type: text/html; charset=utf-8",
                "",
                f"<html><head><style>p {{ margin: 0 }}</style></head><body>\n{markup}\n"
                "</body></html>",
                f"--{boundary}--",
                "",
            ]
        raw = ("\n".join(lines)).encode()
        envelope = import_envelope(raw, sender=sender[1], received=when)
        if not envelope.recipients:  # as delivered: one envelope recipient per address
            envelope = envelope.with_recipients(tuple(rcpts))
        return raw, envelope


@dataclass
class PoolFile:
    name: str
    content_type: str
    encoded: bytes  # base64, 76-character lines


def _pdf_like(rng: random.Random, size: int, paragraphs: list[str]) -> bytes:
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    obj = 1
    while len(out) < size:
        if rng.random() < 0.35:  # an embedded font or image stream: incompressible
            stream = rng.randbytes(rng.randint(2000, 20000))
        else:  # a content stream: text operators
            stream = " ".join(
                f"BT /F1 11 Tf 72 {700 - 14 * i} Td ({rng.choice(paragraphs)[:80]}) Tj ET"
                for i in range(rng.randint(10, 40))
            ).encode()
        out += b"%d 0 obj\n<< /Length %d >>\nstream\n" % (obj, len(stream))
        out += stream + b"\nendstream\nendobj\n"
        obj += 1
    out += b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return bytes(out[: size - 6]) + b"%%EOF\n"


def _office_like(rng: random.Random, size: int, paragraphs: list[str]) -> bytes:
    out = io.StringIO()
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n<document>\n')
    row = 0
    while out.tell() < size:
        row += 1
        if rng.random() < 0.5:
            out.write(f'  <para style="Normal">{rng.choice(paragraphs)}</para>\n')
        else:
            cells = "".join(f"<c>{rng.randint(0, 99999)}</c>" for _ in range(8))
            out.write(f'  <row r="{row}">{cells}</row>\n')
    return out.getvalue().encode()[:size]


def attachment_pool(rng: random.Random, count: int, paragraphs: list[str]) -> list[PoolFile]:
    pool: list[PoolFile] = []
    for i in range(count):
        size = rng.randint(50 * 1024, 500 * 1024)
        kind = i % 10
        if kind < 4:
            data, name, ctype = (
                _pdf_like(rng, size, paragraphs),
                f"report-{i}.pdf",
                "application/pdf",
            )
        elif kind < 7:
            data = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.randbytes(size - 11)
            name, ctype = f"IMG_{1000 + i}.jpg", "image/jpeg"
        else:
            data, name, ctype = (
                _office_like(rng, size, paragraphs),
                f"budget-{i}.doc",
                "application/msword",
            )
        pool.append(PoolFile(name, ctype, base64.encodebytes(data)))
    return pool


class AttachmentCorpus:
    def __init__(self, text: TextCorpus, pool_size: int, seed: int = 2) -> None:
        self.rng = random.Random(seed)
        self.text = text
        self.pool = attachment_pool(self.rng, pool_size, text.paragraphs)

    def message(self, n: int) -> tuple[bytes, Envelope]:
        rng = self.rng
        when = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(365 * 86400))
        headers, sender, rcpts = self.text._headers(n, when)
        boundary = f"=_mixed_{rng.getrandbits(48):012x}"
        text = "\n\n".join(rng.choices(self.text.paragraphs, k=rng.randint(1, 4))) + "\n"
        parts = [
            b"\n".join(
                [
                    *(h.encode() for h in headers),
                    f'Content-Type: multipart/mixed; boundary="{boundary}"'.encode(),
                    b"",
                    f"--{boundary}".encode(),
                    b"Content-Type: text/plain; charset=utf-8",
                    b"",
                    text.encode(),
                ]
            )
        ]
        for f in rng.sample(self.pool, rng.randint(1, 3)):
            parts.append(
                f'--{boundary}\nContent-Type: {f.content_type}; name="{f.name}"\n'
                f'Content-Disposition: attachment; filename="{f.name}"\n'
                "Content-Transfer-Encoding: base64\n\n".encode()
                + f.encoded
            )
        parts.append(f"--{boundary}--\n".encode())
        raw = b"\n".join(parts)
        envelope = Envelope(
            sender=sender[1], recipients=tuple(rcpts), received=when, source="import"
        )
        return raw, envelope


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Result:
    messages: int
    seconds: float
    generate_seconds: float
    raw_bytes: int
    stored_bytes: int  # as the catalog accounts it: compressed message blobs + parts
    blob_dir_bytes: int  # the files in the blob store, as they are on disk
    catalog_bytes: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _config(home: Path, key_file: Path | None = None, catalog: str | None = None) -> Config:
    text = f'[archive]\nhome = "{home}"\n'
    if catalog is not None:
        text += f'catalog = "{catalog}"\n'
    if key_file is not None:
        text += f'encryption = "aes-256-gcm"\nkey_file = "{key_file}"\n'
    return parse_config(text, str(home / "archiver.toml"))


def run(
    name: str,
    count: int,
    make: Callable[[int], tuple[bytes, Envelope]],
    workdir: Path,
    key_file: Path | None = None,
    catalog: str | None = None,
) -> Result:
    """Write the corpus to an mbox file (not timed), then import it the way
    ``postfix-archiver import`` does: read the mbox, ``Archive.ingest_many``, full indexing."""
    home = workdir / name
    mbox = workdir / f"{name}.mbox"
    config = _config(home, key_file, catalog)
    raw_bytes = 0
    t = time.perf_counter()
    with mbox.open("wb") as out:
        for n in range(count):
            raw, env = make(n)
            raw_bytes += len(raw)
            out.write(mbox_entry(raw, env.sender, env.received))
    generate = time.perf_counter() - t

    with Archive(config) as archive:
        start = time.perf_counter()
        source = open_source(str(mbox))
        items = ((i.raw, i.envelope) for i in source)
        processes = worker_processes(source)
        results = sum(1 for _ in archive.ingest_many(items, processes=processes))
        archive.index_pending()  # as `import` does before it ends
        seconds = time.perf_counter() - start
        stats = archive.stats()
    assert results == count
    assert stats.raw_bytes == raw_bytes, (stats.raw_bytes, raw_bytes)
    return Result(
        messages=stats.messages,
        seconds=seconds,
        generate_seconds=generate,
        raw_bytes=stats.raw_bytes,
        stored_bytes=stats.stored_bytes,
        blob_dir_bytes=_tree_bytes(home / "blobs"),
        catalog_bytes=(
            stats.catalog_bytes
            if catalog
            else sum(p.stat().st_size for p in home.glob("catalog.sqlite*"))
        ),
    )


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _verdict(ok: bool) -> str:
    return "OK  " if ok else "MISS"


def report(title: str, r: Result, ratio_target: bool, rate_target: bool = True) -> bool:
    ratio_catalog = r.stored_bytes / r.raw_bytes
    ratio_blobs = r.blob_dir_bytes / r.raw_bytes
    ratio_all = (r.blob_dir_bytes + r.catalog_bytes) / r.raw_bytes
    ok_rate = r.rate >= TARGET_RATE or not rate_target
    print(f"\n== {title}")
    print(
        f"  messages               {r.messages:,} ({_mb(r.raw_bytes)} raw, "
        f"{r.raw_bytes / r.messages / 1024:,.1f} KB average)"
    )
    print(
        f"  import time            {r.seconds:.2f} s (the corpus was written to an mbox "
        f"beforehand in {r.generate_seconds:.2f} s, not timed)"
    )
    marker = f"[{_verdict(ok_rate)}] " if rate_target else ""
    target = f" (target >= {TARGET_RATE:,.0f})" if rate_target else ""
    print(f"  {marker}messages/s     {r.rate:,.0f} imported from the mbox, with indexing{target}")
    print(f"  MB/s                   {r.raw_bytes / r.seconds / 1e6:,.1f}")
    print(
        f"  stored/raw, blob store (catalog accounting)   {ratio_catalog:.3f} "
        f"({_mb(r.stored_bytes)})"
    )
    print(
        f"  stored/raw, blob store (files on disk)        {ratio_blobs:.3f} "
        f"({_mb(r.blob_dir_bytes)})"
    )
    ok_ratio = ratio_all <= TARGET_RATIO
    marker = f"[{_verdict(ok_ratio)}] " if ratio_target else ""
    print(
        f"  {marker}stored/raw, blob store + catalog file  {ratio_all:.3f} "
        f"(catalog {_mb(r.catalog_bytes)})"
        + (f" (target <= {TARGET_RATIO})" if ratio_target else "")
    )
    return ok_rate and (ok_ratio or not ratio_target)


def compare_encryption(
    title: str,
    count: int,
    make: Callable[[int], tuple[bytes, Envelope]],
    workdir: Path,
    rounds: int,
) -> None:
    """The same corpus imported plain and encrypted, alternating, best of ``rounds`` each."""
    key_file = workdir / "keys" / "archive.keys"
    if not key_file.exists():
        create_key_file(key_file)
    best: dict[str, Result] = {}
    for n in range(rounds):
        for mode, keys in (("plain", None), ("encrypted", key_file)):
            r = run(f"{title}-{mode}-{n}", count, make, workdir, keys)
            if mode not in best or r.seconds < best[mode].seconds:
                best[mode] = r
    plain, sealed = best["plain"], best["encrypted"]
    print(f"\n== encryption at rest, {title} corpus: {count:,} messages, best of {rounds}")
    for mode, r in best.items():
        print(
            f"  {mode:<10} {r.rate:>8,.0f} messages/s  {r.raw_bytes / r.seconds / 1e6:>6,.1f} MB/s"
            f"  blob store {_mb(r.blob_dir_bytes)}"
        )
    print(
        f"  encrypted/plain: rate {sealed.rate / plain.rate:.3f}, "
        f"blob store bytes {sealed.blob_dir_bytes / plain.blob_dir_bytes:.3f}"
    )


def sealing_speed(workdir: Path, size: int = 64 * 1024, seconds: float = 1.0) -> None:
    """AES-256-GCM sealing and opening of one blob size on one thread, in MB/s (in memory:
    the store under it is never written)."""
    store = EncryptedStore(FileStore(workdir / "seal"), new_keyring(workdir / "seal.keys"))
    data = random.Random(3).randbytes(size)
    key = "m/" + "0" * 64
    name = store.stored_name(key)
    blob = store.seal(name, key, data)
    steps: dict[str, Callable[[], object]] = {
        "seal": lambda: store.seal(name, key, data),
        "open": lambda: store.open(name, blob),
    }
    for label, step in steps.items():
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            n += 1
        rate = n * size / (time.perf_counter() - start) / 1e6
        print(f"  {label} {size // 1024} KB blobs, one thread: {rate:,.0f} MB/s")
    store.close()


def profile(
    title: str, make: Callable[[int], tuple[bytes, Envelope]], count: int, workdir: Path, top: int
) -> None:
    """One thread does it all, under cProfile: ``stage`` and ``store_staged`` (parse, split,
    compress, write and fsync blobs) and catalog batches of 256, as the ingest threads and the
    committer would."""
    config = _config(workdir / f"profile-{len(list(workdir.iterdir()))}")
    samples = [make(100_000 + n) for n in range(count)]
    with Archive(config) as archive:
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        batch = []
        for raw, env in samples:
            staged = archive.stage(raw, env)
            archive.store_staged([staged])
            batch.append(staged.arrival)
            if len(batch) == 256:
                archive.catalog.add_batch(batch, seal)
                batch = []
        if batch:
            archive.catalog.add_batch(batch, seal)
        profiler.disable()
        seconds = time.perf_counter() - start
    print(f"\n== profile: {count} {title} on one thread, {count / seconds:,.0f} msg/s")
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(top)
        lines = out.getvalue().splitlines()
        start_at = next(i for i, line in enumerate(lines) if "ncalls" in line)
        print(f"-- by {key}")
        print("\n".join(lines[start_at : start_at + top + 1]))


def text_runs(runs: int, count: int, text: TextCorpus, workdir: Path) -> int:
    """The text corpus imported ``runs`` times into fresh archives: each rate and the median."""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"text corpus: {count:,} messages of ~10 KB, {runs} runs; load average before: {load}")
    rates = []
    for n in range(runs):
        r = run(f"text-{n}", count, text.message, workdir)
        rates.append(r.rate)
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"  [{n + 1}] {r.rate:8.1f} messages/s  (load {load})", flush=True)
        shutil.rmtree(workdir / f"text-{n}", ignore_errors=True)
        (workdir / f"text-{n}.mbox").unlink(missing_ok=True)
    median = statistics.median(rates)
    verdict = "met" if median >= 2000 else "NOT met"
    print(f"  median {median:,.0f} messages/s (issue #13's target >= 2,000: {verdict})")
    return 0 if median >= 2000 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000, help="text corpus size")
    parser.add_argument("--attachment-messages", type=int, default=1_000)
    parser.add_argument("--pool", type=int, default=50, help="distinct attachments")
    parser.add_argument("--profile", action="store_true", help="also profile a sample")
    parser.add_argument("--profile-messages", type=int, default=2_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary archives")
    parser.add_argument(
        "--encryption", action="store_true", help="compare ingest with and without encryption"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --encryption")
    parser.add_argument(
        "--runs", type=int, default=0, metavar="N", help="only the text corpus, N times: median"
    )
    parser.add_argument(
        "--catalog",
        help="a catalog URL (e.g. postgresql://USER@HOST/DB, an empty database) instead of "
        "catalog.sqlite; one corpus per run then (bench/scale_out.py compares both)",
    )
    parser.add_argument(
        "--dir",
        default=str(Path(__file__).parent / "out"),
        help="where the temporary archives go (default bench/out: an archive's own directory; "
        "a /tmp churned by earlier runs makes file creation slower)",
    )
    args = parser.parse_args(argv)

    base = Path(args.dir)
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pa-bench-", dir=base))
    print(
        f"postfix-archiver ingest benchmark; Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} CPUs, archives in {workdir}"
    )
    try:
        text = TextCorpus()
        ok = True
        if args.runs:
            return text_runs(args.runs, args.messages, text, workdir)
        if args.encryption:
            print("\n== AES-256-GCM")
            sealing_speed(workdir)
            if args.messages:
                compare_encryption("text", args.messages, text.message, workdir, args.rounds)
            if args.attachment_messages:
                attachments = AttachmentCorpus(text, args.pool)
                compare_encryption(
                    "attachments",
                    args.attachment_messages,
                    attachments.message,
                    workdir,
                    args.rounds,
                )
            return 0
        if args.messages:
            r = run("text", args.messages, text.message, workdir, catalog=args.catalog)
            ok &= report(f"text corpus: {args.messages:,} messages of ~10 KB", r, False)
        if args.attachment_messages and not (args.catalog and args.messages):
            t = time.perf_counter()
            attachments = AttachmentCorpus(text, args.pool)
            pool_seconds = time.perf_counter() - t
            r = run(
                "attachments",
                args.attachment_messages,
                attachments.message,
                workdir,
                catalog=args.catalog,
            )
            pool_raw = sum(len(f.encoded) for f in attachments.pool)
            ok &= report(
                f"attachment corpus: {args.attachment_messages:,} messages, 1-3 attachments "
                f"each from a pool of {args.pool} ({_mb(pool_raw)} base64; pool built in "
                f"{pool_seconds:.1f} s, not timed)",
                r,
                True,
                rate_target=False,  # the 1,000 messages/s target is for the 10 KB corpus
            )
        if args.profile:
            profile("text messages", text.message, args.profile_messages, workdir, 25)
            if args.attachment_messages:
                count = max(1, args.profile_messages // 20)
                profile("attachment messages", attachments.message, count, workdir, 25)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        print(f"\npeak RSS {peak / 1024:,.0f} MiB")
        print("all targets met" if ok else "some targets missed")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
