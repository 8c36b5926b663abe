"""The end of a message's life: purge (past retention, not held) and erase (data-subject
erasure). Both audited in the web audit log; both show with --dry-run exactly what would go."""

from __future__ import annotations

import click

from ..archive import Archive
from ..archive.removal import (
    ERASE,
    PURGE,
    Outcome,
    Plan,
    check_reason,
    plan_erase,
    plan_purge,
    remove,
)
from ..config import Config
from ..dates import display
from ..envelope import clean_text
from ..errors import ArchiverError
from .common import (
    QUERY_ARGS,
    cli_who,
    config_option,
    err,
    human,
    load,
    out,
    print_json,
    progress,
)

_SHOWN = 10  # held messages named in an error line


@click.command()
@config_option
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def purge(config_path: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove messages past their retention date, except those under a legal hold."""
    config = load(config_path)
    if dry_run:
        with Archive(config, readonly=True) as archive:
            plan = plan_purge(archive)
        _show_plan(plan, as_json, "purge")
        return
    with Archive(config) as archive:
        plan = plan_purge(archive)
        outcome = _remove(config, archive, plan, PURGE, "retention expired", {})
    _show_outcome(plan, outcome, as_json, "purged")
    _check_logs(outcome, "purge")


@click.command(context_settings=QUERY_ARGS)
@config_option
@click.argument("query", nargs=-1)
@click.option("--reason", required=True, help="Why (kept in each tombstone and the audit log).")
@click.option("--dry-run", is_flag=True, help="Show what would be erased; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def erase(
    config_path: str | None, query: tuple[str, ...], reason: str, dry_run: bool, as_json: bool
) -> None:
    """Erase the messages matching QUERY for good (data-subject erasure); refuses held mail."""
    config = load(config_path)
    # 8-bit bytes in argv arrive as surrogates, which no SQLite text takes
    text = clean_text(" ".join(query)).strip()
    if not text:
        raise ArchiverError("give a query: erase never takes the whole archive by default")
    why = check_reason(reason)
    with Archive(config, readonly=dry_run) as archive:
        # an erasure by words must find the mail not indexed yet too: indexed first
        queued = archive.catalog.index_status().queued
        if queued and dry_run:
            err.print(
                f"{queued} messages are not indexed yet: this dry run may miss some of them "
                "(`postfix-archiver index` indexes them; erase without --dry-run does first)"
            )
        elif queued:
            with progress(queued, "messages", "indexing") as advance:
                archive.index_pending(advance)
        plan = plan_erase(archive, text)
        if plan.held:
            named = ", ".join(
                f"message {row.id} (hold {', '.join(holds)})" for row, holds in plan.held[:_SHOWN]
            )
            more = f" and {len(plan.held) - _SHOWN} more" if len(plan.held) > _SHOWN else ""
            raise ArchiverError(
                f"{len(plan.held)} of the {len(plan.held) + len(plan.remove)} matching messages "
                f"are under a legal hold: {named}{more}; nothing was erased (release the hold "
                "or narrow the query)"
            )
        if dry_run:
            _show_plan(plan, as_json, "erase")
            return
        outcome = _remove(config, archive, plan, ERASE, why, {"query": text})
    _show_outcome(plan, outcome, as_json, "erased")
    _check_logs(outcome, "erasure")


def _remove(
    config: Config, archive: Archive, plan: Plan, why: str, reason: str, detail: dict[str, object]
) -> Outcome:
    from ..accounts import open_accounts

    who = cli_who()
    # the intent (the plan) is written first: if the audit log cannot be written, nothing is
    # removed; if the removal then stops midway, the log still says what was about to go
    with open_accounts(config.archive.accounts_url) as accounts:
        accounts.record(
            who,
            "local",
            f"message.{why}.intent",
            {
                **detail,
                "reason": reason,
                "remove": [{"id": r.id, "sha256": r.sha256} for r in plan.remove],
                "held": [r.id for r, _holds in plan.held],
            },
        )
        with progress(len(plan.remove), "messages", "removing") as advance:
            outcome = remove(
                archive,
                plan.remove,
                why=why,
                reason=reason,
                who=who,
                progress=advance,
                expired_before=plan.expired_before,
            )
        accounts.record(
            who,
            "local",
            f"message.{why}",
            {
                **detail,
                "reason": reason,
                "removed": [{"id": r.id, "sha256": r.sha256, "tombstone": seq}
                            for r, seq in outcome.removed],
                "held": [r.id for r, _holds in plan.held] + [r.id for r in outcome.held],
                "retention_changed": [r.id for r in outcome.retained],
                "logs_not_cleared": outcome.logs_kept,
            },
        )  # fmt: skip
    return outcome


def _show_plan(plan: Plan, as_json: bool, verb: str) -> None:
    if as_json:
        print_json({"dry_run": True, **plan.to_json()})
        return
    for row in plan.remove:
        out.print(
            f"would {verb}: message {row.id}  {display(row.date, zone=False)}  "
            f"{human(row.size)}  {row.sha256}",
            markup=False,
        )
    _show_held(plan)
    size = sum(r.size for r in plan.remove)
    err.print(
        f"dry run: {len(plan.remove)} messages ({human(size)}) would be removed, "
        f"{len(plan.held)} kept because held; nothing was changed",
        markup=False,
    )


def _show_held(plan: Plan) -> None:
    for row, holds in plan.held:
        out.print(
            f"kept (held by {', '.join(holds)}): message {row.id}  {display(row.date, zone=False)}",
            markup=False,
        )


def _show_outcome(plan: Plan, outcome: Outcome, as_json: bool, verb: str) -> None:
    if as_json:
        print_json({"dry_run": False, **outcome.to_json(), "held": plan.to_json()["held"]})
        return
    for row, seq in outcome.removed:
        out.print(f"{verb}: message {row.id} (tombstone event {seq})", markup=False)
    _show_held(plan)
    for row in outcome.held:
        out.print(f"kept (a hold was placed meanwhile): message {row.id}", markup=False)
    for row in outcome.retained:
        out.print(f"kept (retention changed meanwhile): message {row.id}", markup=False)
    err.print(
        f"{verb} {len(outcome.removed)} messages, {len(plan.held) + len(outcome.held)} kept "
        "because held"
        + (f", {len(outcome.retained)} because their retention changed" if outcome.retained else "")
        + f"; {outcome.blobs_deleted} blobs deleted"
        + ("; the full-text index was rebuilt" if outcome.reindexed else ""),
        markup=False,
    )


def _check_logs(outcome: Outcome, what: str) -> None:
    """A log a reader kept from being cut may still hold removed mail: not done yet."""
    if outcome.logs_kept:
        raise ArchiverError(
            f"the {what} is done, but the write-ahead log of {', '.join(outcome.logs_kept)} "
            "could not be cleared yet and may still hold removed data: another process is "
            "reading it (the web server, a backup, a sqlite3 shell); close it, then run "
            "`postfix-archiver purge` again to finish"
        )


COMMANDS = (purge, erase)
