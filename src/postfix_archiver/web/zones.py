"""The reader's time zone: the one chosen on /settings (a cookie), else ``[web] timezone``.

Pages show every time in it with the zone's abbreviation; the API keeps UTC ISO 8601. The
choice is kept in a cookie of the browser rather than with the account: it needs no change
to the accounts schema, and a reader on two devices in two zones gets each device's own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo

from starlette.requests import HTTPConnection

from ..dates import time_zone
from .context import context

ZONE_COOKIE = "pa_tz"


@dataclass(frozen=True, slots=True)
class ReaderZone:
    name: str  # the IANA name, as chosen or configured
    tz: tzinfo
    chosen: bool  # from the reader's own choice, not the server's default


def reader_zone(conn: HTTPConnection) -> ReaderZone:
    """The reader's zone; a cookie naming no zone (stale, edited) falls back to the default."""
    chosen = conn.cookies.get(ZONE_COOKIE, "")
    tz = time_zone(chosen) if chosen else None
    if tz is not None:
        return ReaderZone(chosen, tz, True)
    default = context(conn).config.web.timezone
    # checked when the configuration was read; UTC if the tz database lost it since
    return ReaderZone(default, time_zone(default) or UTC, False)
