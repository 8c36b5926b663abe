"""``/metrics``, ``/healthz`` and ``/readyz``: on the web listener, and on a listener of their
own (``[metrics] listen``) that the proxy or sink process serves, since its counters live in
that process.

- ``/metrics``: this process's counters (``postfix_archiver.metrics``) and the archive's
  gauges (sizes, index lag, checkpoint and verify age, free disk), in Prometheus's text format.
- ``/healthz``: 200 while the process answers at all.
- ``/readyz``: 200 when the store is writable, the catalog readable and (for a proxy) the
  reinjection listener answers; else 503 with one line per reason.

None of them needs a session: Prometheus and load balancers scrape without one. They show no
mail, but counts and sizes are the operator's business: README's "Metrics and health" says
how to keep them on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector
from prometheus_client import generate_latest as render
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .. import metrics
from ..archive import Archive
from ..archive.health import Observed, Observer, catalog_problem, store_problem
from ..hostport import parse_hostport

log = logging.getLogger("postfix_archiver.web")

P = metrics.PREFIX
# a check that takes longer than this is a failed check: a probe must answer in time
CHECK_TIMEOUT = 5.0


class ArchiveCollector(Collector):
    """The archive's gauges, read at each scrape (totals at most once a minute)."""

    def __init__(self, archive: Archive) -> None:
        self.observer = Observer(archive)

    def collect(self) -> Iterator[Metric]:
        try:
            seen: Observed | None = self.observer.observe()
        except Exception as exc:
            log.warning("metrics: cannot read the archive: %s", exc)
            seen = None
        readable = 0 if seen is None else 1
        yield _gauge("archive_readable", "1 if the archive's gauges could be read.", readable)
        if seen is None:
            return
        now = time.time()
        yield _gauge("archive_messages", "Messages in the archive.", seen.messages)
        yield _gauge("archive_raw_bytes", "Bytes of the archived messages.", seen.raw_bytes)
        yield _gauge("store_bytes", "Bytes in the blob store, compressed.", seen.stored_bytes)
        yield _gauge("catalog_bytes", "Bytes of the catalog's files.", seen.catalog_bytes)
        yield _gauge("index_queue_messages", "Messages not yet indexed.", seen.index_queued)
        yield _gauge(
            "index_lag_seconds",
            "Age of the oldest message not yet indexed.",
            seen.index_lag_seconds,
        )
        if seen.checkpoint_time is not None:
            yield _gauge(
                "last_checkpoint_age_seconds",
                "Seconds since the newest signed checkpoint was written.",
                max(0.0, now - seen.checkpoint_time),
            )
        if seen.verify is not None:
            v = seen.verify
            yield _gauge(
                "last_verify_timestamp_seconds", "When the last verify finished.", v.finished
            )
            yield _gauge(
                "last_verify_age_seconds",
                "Seconds since the last verify finished.",
                max(0.0, now - v.finished),
            )
            yield _gauge("last_verify_ok", "1 if the last verify found no problem.", int(v.ok))
            yield _gauge("last_verify_problems", "Problems the last verify found.", v.problems)
        if seen.disk_free_bytes is not None and seen.disk_size_bytes is not None:
            yield _gauge(
                "filesystem_avail_bytes",
                "Bytes free to the archiver on the data directory's filesystem.",
                seen.disk_free_bytes,
            )
            yield _gauge(
                "filesystem_size_bytes",
                "Size of the data directory's filesystem.",
                seen.disk_size_bytes,
            )


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, documentation, value=value or 0)


class Health:
    """The endpoints' work for one process: its archive and, for a proxy, where it
    reinjects."""

    def __init__(self, archive: Archive, *, reinject: str | None = None) -> None:
        self.archive = archive
        self.reinject = reinject
        self.gauges = CollectorRegistry(auto_describe=False)
        self.gauges.register(ArchiveCollector(archive))
        ProcessCollector(registry=self.gauges)

    def exposition(self) -> bytes:
        return render(metrics.REGISTRY) + render(self.gauges)

    async def problems(self) -> list[str]:
        """Why the process cannot take mail now; empty when it can."""
        checks: list[Callable[[], str | None]] = [
            lambda: store_problem(self.archive),
            lambda: catalog_problem(self.archive),
        ]
        found = list(await asyncio.gather(*(self._in_time(asyncio.to_thread(c)) for c in checks)))
        if self.reinject is not None:
            found.append(await self._in_time(reinjection_problem(self.reinject)))
        return [p for p in found if p]

    async def _in_time(self, check: object) -> str | None:
        assert asyncio.iscoroutine(check)
        try:
            result: str | None = await asyncio.wait_for(check, CHECK_TIMEOUT)
        except TimeoutError:
            return f"a check took longer than {CHECK_TIMEOUT:g}s"
        return result


async def reinjection_problem(address: str) -> str | None:
    """Whether the reinjection listener answers: connect, read its 220 greeting, QUIT."""
    try:
        hp = parse_hostport(address)
        reader, writer = await asyncio.open_connection(hp.host, hp.port)
    except (OSError, ValueError) as exc:
        return f"reinjection listener {address} not answering: {_why(exc)}"
    try:
        greeting = await reader.readline()
        if not greeting.startswith(b"220"):
            text = greeting[:80].decode("ascii", "replace").strip() or "no greeting"
            return f"reinjection listener {address} not ready: {text}"
        writer.write(b"QUIT\r\n")
        await writer.drain()
    except OSError as exc:
        return f"reinjection listener {address} not answering: {_why(exc)}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return None


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)[:200]


# -- the endpoints -------------------------------------------------------------------------------


def metrics_response(health: Health) -> Response:
    return Response(health.exposition(), media_type=CONTENT_TYPE_LATEST)


def healthz_response() -> Response:
    return JSONResponse({"ok": True})


async def readyz_response(health: Health) -> Response:
    problems = await health.problems()
    if problems:
        return PlainTextResponse("not ready\n" + "\n".join(problems) + "\n", status_code=503)
    return PlainTextResponse("ready\n")


def metrics_app(health: Health) -> Starlette:
    """The metrics listener's application: the three endpoints and nothing else."""

    async def metrics_route(request: Request) -> Response:
        return await asyncio.to_thread(metrics_response, health)

    async def healthz_route(request: Request) -> Response:
        return healthz_response()

    async def readyz_route(request: Request) -> Response:
        return await readyz_response(health)

    methods: Sequence[str] = ["GET", "HEAD"]
    return Starlette(
        routes=[
            Route("/metrics", metrics_route, methods=list(methods)),
            Route("/healthz", healthz_route, methods=list(methods)),
            Route("/readyz", readyz_route, methods=list(methods)),
        ]
    )
