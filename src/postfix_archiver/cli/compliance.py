"""Retention and legal holds: ``retention set``, ``hold add|list|show|release``. Each change
is recorded in the audit log (``audit``) with who ran it: its intent before, its outcome after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.table import Table

from ..accounts import Accounts
from ..archive import Archive, holds
from ..catalog import HoldRow
from ..config import Config
from ..search import parse_query
from .common import cli_who, config_option, err, load, out, print_json, progress, safe


@contextmanager
def _audit_log(config: Config) -> Iterator[Accounts]:
    from ..accounts import open_accounts

    with open_accounts(config.archive.accounts_url) as accounts:
        yield accounts


def record_audit(config: Config, action: str, detail: dict[str, Any]) -> None:
    """One audit entry. Each change writes ``ACTION.intent`` before it and ``ACTION`` after:
    an audit log that cannot be written stops the change, and a change that fails midway
    still left its intent."""
    with _audit_log(config) as accounts:
        accounts.record(cli_who(), "local", action, detail)


@click.group()
def retention() -> None:
    """How long archived mail is kept."""


@retention.command("set")
@config_option
@click.argument("query")
@click.argument("period")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
@click.option("--dry-run", is_flag=True, help="Count what would change; change nothing.")
def retention_set(
    config_path: str | None, query: str, period: str, reason: str, dry_run: bool
) -> None:
    """Keep the mail matching QUERY for PERIOD (90d, 26w, 6m, 10y, forever) from each
    message's arrival. Applies to mail archived now; a rule's retention decides new mail.
    Quote QUERY: retention set 'from:cfo@example.com' 10y --reason 'records schedule 4.2'"""
    config = load(config_path)
    # what is audited is what was stored: 8-bit argv bytes cleaned the same way
    query, reason = holds.check_text(query), holds.check_reason(reason)
    with Archive(config) as archive:
        if dry_run:
            count = holds.set_retention(archive, query, period, dry_run=True)
            err.print(f"would keep {count} messages {_period(period)} (dry run)", markup=False)
            return
        holds.check_period(period)
        parse_query(query)  # a mistake is one line, not an intent the audit log keeps
        change = {"query": query, "period": period, "reason": reason}
        record_audit(config, "retention.set.intent", change)
        total = archive.search(query, limit=1).total
        with progress(total, "messages", "re-dating") as advance:
            count = holds.set_retention(archive, query, period, progress=advance)
    record_audit(config, "retention.set", {**change, "count": count})
    err.print(f"kept {count} messages {_period(period)}", markup=False)


def _period(period: str) -> str:
    return "forever" if period == "forever" else f"{period} from their arrival"


@click.group()
def hold() -> None:
    """Legal holds: mail that may not be purged or erased."""


@hold.command("add")
@config_option
@click.argument("name")
@click.argument("query")
@click.option("--reason", default="", help="Why (a matter, a case number).")
def hold_add(config_path: str | None, name: str, query: str, reason: str) -> None:
    """Hold the mail matching QUERY now, and matching mail archived while the hold is
    active. NAME: letters, digits and . _ - (like case-2024-17). Quote QUERY."""
    config = load(config_path)
    query, reason = holds.check_text(query), holds.check_reason(reason)
    holds.check_name(name)
    parse_query(query)  # a mistake is one line, not an intent the audit log keeps
    with Archive(config) as archive:
        record_audit(config, "hold.add.intent", {"name": name, "query": query, "reason": reason})
        added = holds.add_hold(archive, name, query, reason, cli_who())
    record_audit(
        config,
        "hold.add",
        {"name": added.name, "query": query, "reason": reason, "count": added.messages},
    )
    err.print(f"hold {added.name} placed: {added.messages} messages held", markup=False)


@hold.command("release")
@config_option
@click.argument("name")
def hold_release(config_path: str | None, name: str) -> None:
    """Release a hold: its mail may be purged again when its retention ends. The hold's
    record stays (hold list shows it released)."""
    config = load(config_path)
    with Archive(config) as archive:
        before = holds.get_hold(archive, name)
        if before.active:
            record_audit(config, "hold.release.intent", {"name": before.name})
        released, changed = holds.release_hold(archive, name, cli_who())
    if not changed:
        err.print(
            f"hold {released.name} was already released by {released.released_by}", markup=False
        )
        return
    record_audit(config, "hold.release", {"name": released.name, "count": released.messages})
    err.print(f"hold {released.name} released ({released.messages} messages)", markup=False)


@hold.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def hold_list(config_path: str | None, as_json: bool) -> None:
    """Every hold, active and released, oldest first."""
    with Archive(load(config_path), readonly=True) as archive:
        rows = holds.list_holds(archive)
    if as_json:
        print_json({"holds": [h.to_json() for h in rows]})
        return
    if not rows:
        err.print("no holds (hold add NAME QUERY places one)", markup=False)
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    # the name, state, count and date whole; the free text gives way on a narrow terminal
    table.add_column("name", no_wrap=True, min_width=max(len(h.name) for h in rows))
    table.add_column("state", no_wrap=True, min_width=8)
    table.add_column("messages", no_wrap=True, justify="right", min_width=8)
    table.add_column("since", no_wrap=True, min_width=10)
    for name in ("by", "query", "reason"):
        table.add_column(name, overflow="ellipsis", no_wrap=True)
    for h in rows:
        table.add_row(
            safe(h.name),
            "active" if h.active else "released",
            str(h.messages),
            f"{h.created_at:%Y-%m-%d}",
            safe(h.created_by),
            safe(h.query)[:60],
            safe(h.reason)[:60],
        )
    out.print(table)


@hold.command("show")
@config_option
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def hold_show(config_path: str | None, name: str, as_json: bool) -> None:
    """One hold: its query, reason, who placed and released it and when, messages held."""
    with Archive(load(config_path), readonly=True) as archive:
        found = holds.get_hold(archive, name)
    if as_json:
        print_json(found.to_json())
        return
    for label, value in _fields(found):
        out.print(f"[bold]{label}:[/] {safe(value)}", markup=True)


def _fields(h: HoldRow) -> list[tuple[str, str]]:
    fields = [
        ("Name", h.name),
        ("State", "active" if h.active else "released"),
        ("Query", h.query),
        ("Reason", h.reason or "(none given)"),
        ("Placed", f"{h.created_at.isoformat()} by {h.created_by}"),
    ]
    if h.released_at is not None:
        fields.append(("Released", f"{h.released_at.isoformat()} by {h.released_by}"))
    fields.append(("Messages", str(h.messages)))
    return fields


COMMANDS = (retention, hold)
