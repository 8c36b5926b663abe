"""The audit log for auditors: filters (dates, user, action, text), paging, a CSV of what the
filters select, and the hash chain's verification (the same as ``postfix-archiver audit
--verify``).

Dates are whole days in the reader's time zone, ``from`` and ``to`` included. Every filter
is a bound parameter; every page is at most ``PER_PAGE`` rows and the CSV is read
``CSV_CHUNK`` rows a query.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from ..accounts import AuditCheck, AuditEntry
from .auth import Identity, PageUser, require
from .context import HttpProblem, context
from .pages import page
from .zones import reader_zone

router = APIRouter(include_in_schema=False)

ACTIONS = ("login", "logout", "search", "view", "download", "export", "user", "token")
PER_PAGE = 100
CSV_CHUNK = 1000
CSV_COLUMNS = ("id", "time", "user", "client", "action", "detail", "hash")
# a spreadsheet runs a cell that starts with one of these as a formula (CSV injection); ";"
# and "," because a spreadsheet set to split on the other one starts a cell after it, and
# the full-width forms some spreadsheets read as their ASCII ones
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", ";", ",", "＝", "＋", "－", "＠")
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What the form asks for, as typed (for the form and the links) and checked."""

    user: str
    action: str
    text: str
    start: str  # YYYY-MM-DD or ""
    end: str
    since: str | None  # ISO times for the query
    until: str | None

    def params(self, **extra: object) -> str:
        values = {"user": self.user, "action": self.action, "q": self.text,
                  "from": self.start, "to": self.end}  # fmt: skip
        return urlencode({k: v for k, v in {**values, **extra}.items() if v not in ("", None)})


def _day(value: str, what: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    found = _DAY.fullmatch(value)
    try:
        if found is None:
            raise ValueError
        return date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        raise HttpProblem(
            400, f"bad {what} date {value!r}: use YYYY-MM-DD, e.g. 2026-01-31"
        ) from None


def _midnight(day: date, zone: tzinfo) -> datetime | None:
    """The start of ``day`` in the reader's ``zone``, in UTC; None where that is outside the
    years 1-9999 (year 1 in a zone ahead of UTC: no bound is needed there)."""
    try:
        return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    except OverflowError:
        return None


def audit_filters(
    request: Request,
    user: Annotated[str, Query(max_length=200)] = "",
    action: Annotated[str, Query(max_length=50)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    start: Annotated[str, Query(alias="from", max_length=40)] = "",
    end: Annotated[str, Query(alias="to", max_length=40)] = "",
) -> AuditFilters:
    first, last = _day(start, "from"), _day(end, "to")
    if first and last and first > last:
        raise HttpProblem(
            400, f"the dates are the wrong way round: from {first} is after to {last}"
        )
    # whole days in the reader's time zone, as the times on the page are shown
    zone = reader_zone(request).tz
    since = _midnight(first, zone) if first else None
    # 'to' is the whole day: up to the next midnight (none after 9999-12-31)
    until = _midnight(last + timedelta(days=1), zone) if last and last < date.max else None
    return AuditFilters(
        user.strip(),
        action.strip(),
        q.strip(),
        first.isoformat() if first else "",
        last.isoformat() if last else "",
        since.isoformat() if since else None,
        until.isoformat() if until else None,
    )


Filters = Annotated[AuditFilters, Depends(audit_filters)]


def _query(
    request: Request,
    f: AuditFilters,
    *,
    limit: int,
    offset: int = 0,
    before: int | None = None,
    count: bool = True,
) -> tuple[int, list[AuditEntry]]:
    return context(request).accounts.audit(
        limit=limit,
        offset=offset,
        user=f.user or None,
        action=f.action or None,
        since=f.since,
        until=f.until,
        text=f.text or None,
        before=before,
        count=count,
    )


def _auditor(identity: Identity) -> None:
    require(identity, identity.user.can_audit, "the audit log")


def _audit_page(
    request: Request, identity: Identity, f: AuditFilters, page_no: int, check: AuditCheck | None
) -> HTMLResponse:
    total, entries = _query(request, f, limit=PER_PAGE, offset=(page_no - 1) * PER_PAGE)
    pages = max(1, math.ceil(total / PER_PAGE))
    return page(
        request,
        "audit.html",
        identity,
        section="audit",
        entries=entries,
        total=total,
        f=f,
        actions=ACTIONS,
        page_no=page_no,
        pages=pages,
        page_links={"prev": f.params(page=page_no - 1), "next": f.params(page=page_no + 1)},
        csv_link=f.params(),
        filtered=bool(f.params()),
        check=check,
    )


@router.get("/audit")
def audit_page(
    request: Request,
    identity: PageUser,
    f: Filters,
    page_no: int = Query(1, alias="page", ge=1, le=10_000_000),
) -> HTMLResponse:
    _auditor(identity)
    return _audit_page(request, identity, f, page_no, None)


@router.get("/audit/verify")
def verify_page(request: Request, identity: PageUser, f: Filters) -> HTMLResponse:
    """Re-walks the whole chain, as ``postfix-archiver audit --verify`` does; changes nothing."""
    _auditor(identity)
    check = context(request).accounts.verify_audit()
    return _audit_page(request, identity, f, 1, check)


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a ``'``."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_rows(request: Request, f: AuditFilters) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL)  # no cell split by a ";" locale
    writer.writerow(CSV_COLUMNS)
    before: int | None = None
    while True:
        # no count: a text filter's count is a scan of the whole log, once a chunk
        _, entries = _query(request, f, limit=CSV_CHUNK, before=before, count=False)
        for e in entries:
            detail = json.dumps(e.detail, ensure_ascii=False, sort_keys=True)
            writer.writerow(
                [csv_cell(str(e.id)), csv_cell(e.time), csv_cell(e.user), csv_cell(e.client),
                 csv_cell(e.action), csv_cell(detail), csv_cell(e.hash)]
            )  # fmt: skip
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(entries) < CSV_CHUNK:
            return
        before = entries[-1].id


@router.get("/audit.csv")
def audit_csv(request: Request, identity: PageUser, f: Filters) -> Response:
    """The entries the filters select, newest first, as CSV (every page, not just one)."""
    _auditor(identity)
    ctx = context(request)
    asked = {"user": f.user, "action": f.action, "text": f.text, "from": f.start, "to": f.end}
    ctx.audit(request, identity, "audit.export", **{k: v for k, v in asked.items() if v})
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(
        _csv_rows(request, f),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-log-{stamp}.csv"'},
    )
