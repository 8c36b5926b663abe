"""The archiver's Prometheus counters and histograms, and the pipe filter's textfile.

Every way in counts here, labelled by ``source`` (``smtp`` for the proxy, ``sink``, ``pipe``):
what it received, and what became of each message once it was answered — archived, skipped
(by which rule), deferred (451 / exit 75, by reason) or rejected (a permanent reply passed
on, or too big). A received message ends in exactly one of those four once answered.

The long-running processes serve ``REGISTRY`` on ``/metrics`` (``web.health``). The pipe
filter lives for one message, so it adds its counts to a file node exporter's textfile
collector reads (``write_textfile``); the gauges read from the archive (index lag, sizes,
checkpoint and verify age) are the web listener's (``web.health``).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, write_to_textfile
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger("postfix_archiver.metrics")

REGISTRY = CollectorRegistry()
PREFIX = "postfix_archiver_"

# Why a message was deferred (the ``reason`` label: a fixed set, never free text)
DEFER_TIMEOUT = "timeout"  # not archived within answer_timeout (a locked catalog)
DEFER_STORE = "store"  # the blob store failed (disk full, S3 down)
DEFER_CATALOG = "catalog"  # the catalog failed
DEFER_REINJECT = "reinject"  # the reinjection listener did not take it (down, 4xx)
DEFER_SHUTDOWN = "shutdown"  # the proxy was stopping (421)
DEFER_OTHER = "other"

RECEIVED = Counter(
    PREFIX + "messages_received",
    "Messages received (end of DATA, or a pipe filter run).",
    ["source"],
    registry=REGISTRY,
)
RECEIVED_BYTES = Counter(
    PREFIX + "received_bytes",
    "Bytes of the messages received.",
    ["source"],
    registry=REGISTRY,
)
ARCHIVED = Counter(
    PREFIX + "messages_archived",
    "Messages archived and answered with success.",
    ["source"],
    registry=REGISTRY,
)
ARCHIVED_BYTES = Counter(
    PREFIX + "archived_bytes",
    "Bytes of the messages archived and answered with success.",
    ["source"],
    registry=REGISTRY,
)
SKIPPED = Counter(
    PREFIX + "messages_skipped",
    "Messages the rules did not archive (passed on), by the rule that skipped them.",
    ["source", "rule"],
    registry=REGISTRY,
)
DEFERRED = Counter(
    PREFIX + "messages_deferred",
    "Messages answered with a temporary failure (451 / exit 75): Postfix retries them.",
    ["source", "reason"],
    registry=REGISTRY,
)
REJECTED = Counter(
    PREFIX + "messages_rejected",
    "Messages answered with a permanent failure (the reinjection listener's, or too big).",
    ["source"],
    registry=REGISTRY,
)
ANSWER_SECONDS = Histogram(
    PREFIX + "answer_seconds",
    "Time from the end of DATA (the start of the pipe filter) to the answer to Postfix.",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
COMMIT_SECONDS = Histogram(
    PREFIX + "commit_seconds",
    "Time to store a batch's blobs and commit its catalog transaction.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
REINJECT_SECONDS = Histogram(
    PREFIX + "reinject_seconds",
    "Time to hand a message to the reinjection listener (successful or not).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    PREFIX + "batch_size",
    "Arrivals committed together in one catalog transaction (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)


def defer_reason(exc: BaseException) -> str:
    """The ``reason`` label for a temporary failure while archiving."""
    from .errors import CatalogError, StoreError, TemporaryFailure

    if isinstance(exc, StoreError):
        return DEFER_STORE
    if isinstance(exc, CatalogError):
        return DEFER_CATALOG
    if isinstance(exc, TemporaryFailure | TimeoutError):
        return DEFER_TIMEOUT
    return DEFER_OTHER


# -- the pipe filter's textfile ---------------------------------------------------------------


class _Families(Collector):
    """Metric families as merged from the file and this process."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def _merge(previous: list[Metric], registry: CollectorRegistry) -> list[Metric]:
    """``previous`` (the file's families) plus this process's samples: counters and
    histograms add up, a gauge takes this process's value. ``_created`` samples are
    dropped: they are per process and mean nothing summed."""
    merged: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for family in previous:
        merged[family.name] = Metric(family.name, family.documentation, family.type)
        values[family.name] = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for s in family.samples
            if not s.name.endswith("_created")
        }
    for family in registry.collect():
        if family.name not in merged:
            merged[family.name] = Metric(family.name, family.documentation, family.type)
            values[family.name] = {}
        into = values[family.name]
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            key = (s.name, tuple(sorted(s.labels.items())))
            into[key] = s.value if family.type == "gauge" else into.get(key, 0.0) + s.value
    for name, family in merged.items():
        for (sample, labels), value in values[name].items():
            family.add_sample(sample, dict(labels), value)
    return list(merged.values())


def _read(path: Path) -> list[Metric]:
    try:
        text = path.read_bytes().decode("utf-8")
        return [f for f in text_string_to_metric_families(text) if f.name.startswith(PREFIX)]
    except FileNotFoundError:
        return []
    except Exception as exc:
        # an edited or truncated file: the counts start again (Prometheus sees a counter
        # reset, which rate() handles) rather than the pipe failing
        log.warning("metrics textfile %s is not readable (%s); counting from zero", path, exc)
        return []


def write_textfile(path: Path, registry: CollectorRegistry = REGISTRY) -> None:
    """Add this process's counts to those in ``path`` (node exporter's textfile format).

    One pipe filter runs per message, many at once: each takes an exclusive ``flock`` on
    ``PATH.lock`` around read, add and write, so no count is lost between two of them; the
    file is replaced atomically (``write_to_textfile`` writes a temporary file and renames
    it), so the collector never reads half of it. The file itself holds the totals."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        families = _merge(_read(path), registry)
        out = CollectorRegistry(auto_describe=False)
        out.register(_Families(families))
        write_to_textfile(str(path), out)
    finally:
        os.close(fd)  # releases the lock
