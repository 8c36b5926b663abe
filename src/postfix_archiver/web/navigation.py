"""The search a message was opened from: the way back to it and the messages beside it.

A result link carries its search as query parameters (``q``, ``order``, ``per``, ``page``,
``from`` and ``to`` when the search page's date range is set, and ``group`` when the results
are grouped by conversation);
the message page links back to exactly that page of results and to the previous and next
result. They come from the request's query string, so anything can be in them: a value
that is not one the search page itself would make is dropped (the page is shown without
that context, never an error), and the search is re-run only over the page shown and one
result on either side of it (``per + 2`` rows: as cheap as showing the page).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, tzinfo
from urllib.parse import urlencode

from ..archive import Archive
from ..errors import QueryError
from ..search import ORDERS
from .search_dates import DateRangeError, parse_range

PER_PAGE = (25, 50, 100, 200)
DEFAULT_PER = 50
MAX_QUERY = 4000  # as the search page's own limit
MAX_PAGE = 10_000_000
_PAGE = re.compile(r"[0-9]{1,8}")  # ASCII digits only: int() would take "١٢" too


@dataclass(frozen=True, slots=True)
class SearchContext:
    """One page of one search, as the search page's links name it."""

    q: str
    order: str = "-date"
    per: int = DEFAULT_PER
    page: int = 1
    group: bool = False  # the results grouped by conversation (previous/next walk them all)
    first: str = ""  # the search page's date range (``web.search_dates``), as its days
    last: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> SearchContext | None:
        """The context in a message link's parameters; None when there is none, or its
        query is not one the search form could have sent. A bad order, page size or page
        number falls back to the search page's default for it."""
        q = params.get("q")
        if q is None or len(q) > MAX_QUERY or "\x00" in q:
            return None
        order = params.get("order", "")
        per = params.get("per", "")
        page = params.get("page", "")
        return cls(
            q=q,
            order=order if order in ORDERS else "-date",
            per=int(per) if per in {str(n) for n in PER_PAGE} else DEFAULT_PER,
            page=int(page) if _PAGE.fullmatch(page) and 0 < int(page) <= MAX_PAGE else 1,
            group=params.get("group") == "1",
            # checked where used (parse_range): a bad day drops the context there
            first=params.get("from", "")[:100],
            last=params.get("to", "")[:100],
        )

    def params(self) -> str:
        """The query string of the search page shown (and of its result links)."""
        params: dict[str, object] = {
            "q": self.q, "order": self.order, "per": self.per, "page": self.page
        }  # fmt: skip
        if self.first:
            params["from"] = self.first
        if self.last:
            params["to"] = self.last
        if self.group:
            params["group"] = 1
        return urlencode(params)

    def query(self, zone: tzinfo) -> str:
        """The query searched: ``q`` and the date range's terms (raises ``DateRangeError``)."""
        terms = parse_range(self.first, self.last).terms(zone)
        return " ".join(t for t in (self.q.strip(), terms) if t)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per


@dataclass(frozen=True, slots=True)
class Neighbour:
    message: int
    context: SearchContext  # its page of the results


@dataclass(frozen=True, slots=True)
class Position:
    """Where a message stands in its search's results (1-based ``number`` of ``total``)."""

    number: int
    total: int
    prev: Neighbour | None
    next: Neighbour | None


def position(
    archive: Archive,
    context: SearchContext,
    message: int,
    visible_to: Sequence[str] | None,
    zone: tzinfo = UTC,
) -> Position | None:
    """``message``'s place in ``context``'s results and the results on either side, found
    among the page shown and one row on each side of it; None when it is not there (mail
    arrived or was removed since, or the link was edited) or the query does not parse."""
    start = max(0, context.offset - 1)
    try:
        found = archive.search(
            context.query(zone),
            limit=context.per + 2,
            offset=start,
            order=context.order,
            visible_to=visible_to,
        )
    except (QueryError, DateRangeError):
        return None
    ids = [row.id for row in found.results]
    if message not in ids:
        return None
    i = ids.index(message)
    number = start + i + 1

    def neighbour(j: int) -> Neighbour | None:
        if not 0 <= j < len(ids):
            return None
        page = (start + j) // context.per + 1
        return Neighbour(ids[j], replace(context, page=page))

    return Position(number, found.total, neighbour(i - 1), neighbour(i + 1))
