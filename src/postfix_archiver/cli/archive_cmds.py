"""Commands over the archive: import, search, show, export, stats, verify (with a signed
checkpoint: ``archive.checkpoint``)."""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..archive import (
    Archive,
    lag_seconds,
    message_document,
    search_document,
    stats_document,
    verify,
)
from ..archive.checkpoint import CheckpointReport, check_checkpoint
from ..archive.health import record_verify
from ..dates import display, header_note
from ..envelope import clean_text
from ..export import FORMATS, export
from ..importers import ImportItem, ImportSource, open_source, worker_processes
from ..importers.imap_url import is_imap_url, parse_imap_url
from ..integrity.keys import load_public_key
from ..search import ORDERS
from .common import (
    QUERY_ARGS,
    Whole,
    config_option,
    err,
    human,
    load,
    out,
    print_json,
    progress,
    safe,
)
from .imap_login import imap_login_options, imap_password


@click.command("import")
@config_option
@click.argument("source")
@click.option(
    "--workers",
    default=0,
    type=click.IntRange(0, 64),
    help="Parsing processes (default: two per CPU for a large import).",
)
@click.option("--all-folders", is_flag=True, help="IMAP: every folder, not one.")
@imap_login_options
def import_(
    config_path: str | None,
    source: str,
    workers: int,
    all_folders: bool,
    password_stdin: bool,
    password_file: str | None,
    ca_file: str | None,
) -> None:
    """Import an mbox, a Maildir, an .eml file or a folder of .eml files, or an IMAP
    account: imaps://USER@HOST[:PORT]/FOLDER (imap:// uses STARTTLS)."""
    config = load(config_path)
    imap = is_imap_url(source)
    if not imap and (all_folders or password_stdin or password_file or ca_file):
        raise click.UsageError(
            "--all-folders, --password-stdin, --password-file and --ca-file are for "
            "imaps:// and imap:// sources"
        )
    url = parse_imap_url(source) if imap else None
    password = imap_password(password_stdin, password_file) if imap else ""
    src: ImportSource | None = None if imap else open_source(source)
    new = dup = retried = 0
    with Archive(config) as archive:
        catalog = archive.catalog
        if url is not None:
            from ..importers.imap import ImapSource  # the IMAP library only when needed

            imap_src = ImapSource(
                url,
                password,
                all_folders=all_folders,
                ca_file=ca_file,
                cursor=catalog.import_cursor,
            )
            for name in imap_src.skipped_folders:
                err.print(
                    f"{url.account}/{name}: the folder was renumbered (UIDVALIDITY): read again"
                )
            src = imap_src
        assert src is not None
        run = catalog.start_import(clean_text(src.description), datetime.now(UTC))
        # where each new arrival came from, recorded beside its envelope after it is
        # archived (the web's message page says so instead of an empty envelope)
        # (clean_text: a file name's 8-bit bytes that are not UTF-8 are surrogate escapes)
        origins: list[tuple[int, str]] = []
        marks: dict[str, str] = {}  # resume points reached (committed): recorded in bulk
        unrecorded = 0

        def record() -> None:
            nonlocal unrecorded
            catalog.record_import_origins(run, origins)
            catalog.set_import_cursors(list(marks.items()))
            origins.clear()
            marks.clear()
            unrecorded = 0

        with progress(src.total, src.unit, "importing") as advance:
            advances: deque[ImportItem] = deque()

            def items() -> Iterator[tuple[bytes, Any]]:
                for item in src:
                    advances.append(item)
                    yield item.raw, item.envelope

            processes = workers or worker_processes(src)
            try:
                for result in archive.ingest_many(items(), processes=processes):
                    item = advances.popleft()
                    advance(item.advance)
                    if item.mark is not None:
                        marks[item.mark[0]] = item.mark[1]
                    if result.event_seq is not None:
                        origins.append((result.event_seq, clean_text(item.origin)))
                    unrecorded += 1
                    if unrecorded >= 500:
                        record()
                    if result.new_message:
                        new += 1
                    elif result.new_envelope:
                        dup += 1
                    else:
                        retried += 1
            finally:
                # what was committed before a failure is kept, and a re-run resumes after it
                record()
        catalog.finish_import(run, datetime.now(UTC))
        # what was imported is searchable when the command ends: indexed as it was
        # committed, but for what that left queued (an entry that could not be made then; a
        # serve running beside it may index some of it first: each message is indexed once)
        queued = catalog.index_status().queued
        if queued:
            with progress(queued, "messages", "indexing") as advance_index:
                archive.index_pending(advance_index)
        else:
            archive.index_pending()  # merges the index the import filled as it went
    total = new + dup + retried
    err.print(
        f"{escape(src.description)}: {total} messages read, {new} new, "
        f"{dup} already archived (new arrival recorded), "
        f"{retried} already imported (nothing added)"
    )
    failure = getattr(src, "failure", None)
    if failure is not None:
        raise failure


@click.command(context_settings=QUERY_ARGS)
@config_option
@click.argument("query", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--limit", default=50, show_default=True, type=Whole(1, 100000))
@click.option("--offset", default=0, type=Whole())
@click.option("--order", default=ORDERS[0], show_default=True, type=click.Choice(ORDERS))
def search(
    config_path: str | None,
    query: tuple[str, ...],
    as_json: bool,
    limit: int,
    offset: int,
    order: str,
) -> None:
    """Search the archive (empty query: everything), newest first."""
    config = load(config_path)
    with Archive(config, readonly=True) as archive:
        text = " ".join(query)
        page = archive.search(text, limit=limit, offset=offset, order=order)
        snippets = archive.snippets(page.results, text)
    if as_json:
        print_json(search_document(page, snippets))
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for name in ("id", "date", "from", "to", "subject", "size", "att"):
        table.add_column(
            name,
            overflow="ellipsis",
            no_wrap=True,
            justify="right" if name in ("id", "size", "att") else "left",
        )
    for r, snippet in zip(page.results, snippets, strict=True):
        table.add_row(
            str(r.id),
            display(r.date, zone=False),
            r.from_[:40],
            r.to[:40],
            r.subject[:70],
            human(r.size),
            str(r.attachment_count or ""),
        )
        if snippet is not None and snippet.source != "subject":
            # a dimmed line under the subject, as wide as the subject may be; the terms bold
            short = snippet.shortened(70)
            line = Text(short.text, style="dim")
            for start, end in short.marks:
                line.stylize("bold", start, end)
            table.add_row("", "", "", "", line, "", "")
    out.print(table)
    shown = f"{offset + 1}-{offset + len(page.results)}" if page.results else "0"
    err.print(f"{shown} of {page.total} messages")
    if page.not_indexed:
        err.print(
            f"{page.not_indexed} messages are not indexed yet: results may be incomplete "
            "(`postfix-archiver stats` shows the lag)"
        )


@click.command()
@config_option
@click.argument("ident")
@click.option("--raw", is_flag=True, help="Write the original message bytes to stdout.")
@click.option("--json", "as_json", is_flag=True, help="Metadata as one JSON document.")
def show(config_path: str | None, ident: str, raw: bool, as_json: bool) -> None:
    """Show one archived message (ID from search, or its SHA-256)."""
    config = load(config_path)
    with Archive(config, readonly=True) as archive:
        message = archive.resolve(ident)
        if raw:
            data = archive.raw(message)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        read = archive.read(message)
    view, parsed = read.view, read.parsed
    if as_json:
        print_json(message_document(view, parsed))
        return
    row = view.row
    for name, value in (
        ("Id", str(row.id)),
        ("Date", row.date.isoformat()),
        ("Date header", header_note(parsed.header("Date")) or ""),
        ("From", row.from_),
        ("To", row.to),
        ("Cc", row.cc),
        ("Subject", row.subject),
        ("Message-ID", row.message_id),
        ("Size", f"{row.size} bytes"),
        ("SHA-256", row.sha256),
        ("Retained until", "forever" if row.retain_until is None else row.retain_until.isoformat()),
    ):
        if value:
            out.print(f"[bold]{name}:[/] {safe(value)}", markup=True)
    for e in view.envelopes:
        env = e.envelope
        out.print(
            f"[bold]Envelope:[/] {env.source} {env.received.isoformat()} "
            f"from <{safe(env.sender)}> to "
            f"{', '.join('<' + safe(r) + '>' for r in env.recipients) or '(none)'}"
            + (f" queue {env.queue_id}" if env.queue_id else "")
            + (f" retention {e.retention}" if e.retention else "")
            + (f" tags {safe(', '.join(e.tags))}" if e.tags else ""),
            markup=True,
        )
        imported = view.imports.get(e.id)
        if imported is not None:
            # an import seldom knows an envelope: where the message came from instead
            out.print(
                f"  imported from {safe(imported.origin)} by the import of "
                f"{safe(imported.source)} started {imported.started.isoformat()}",
                markup=True,  # safe() escaped what could read as markup
            )
    for a in view.attachments:
        x = view.extracts.get(a.sha256)
        failed = (
            f" (text not indexed: {x.status}{', ' + safe(x.detail) if x.detail else ''})"
            if x is not None and x.status not in ("ok", "unsupported")
            else ""
        )
        out.print(
            f"[bold]Attachment {a.index}:[/] {safe(a.filename) or '(no name)'} "
            f"{safe(a.content_type)} {human(a.size)}{failed}",
            markup=True,
        )
    if row.defects:
        out.print(f"[bold]Defects:[/] {safe('; '.join(row.defects))}", markup=True)
    out.print()
    out.print(safe(parsed.body_text), markup=False)


@click.command("export", context_settings=QUERY_ARGS)
@config_option
@click.argument("query", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
def export_(
    config_path: str | None, query: tuple[str, ...], fmt: str, output: Path, force: bool
) -> None:
    """Export the messages matching QUERY (empty: all), byte for byte."""
    config = load(config_path)
    with Archive(config, readonly=True) as archive:
        total = archive.search(" ".join(query), limit=1).total
        rows = archive.iter_search(" ".join(query))
        with progress(total, "messages", "exporting") as advance:
            count = export(archive, rows, fmt, output, force=force, progress=advance)
    err.print(f"exported {count} messages to {output} ({fmt})")


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
def stats(config_path: str | None, as_json: bool) -> None:
    """Messages, envelopes, raw and stored bytes."""
    config = load(config_path)
    with Archive(config, readonly=True) as archive:
        s = archive.stats()
    if as_json:
        print_json(stats_document(s))
        return
    out.print(f"messages:      {s.messages}")
    out.print(f"envelopes:     {s.envelopes}")
    out.print(f"raw bytes:     {s.raw_bytes} ({human(s.raw_bytes)})")
    out.print(
        f"stored bytes:  {s.stored_bytes} ({human(s.stored_bytes)}), "
        f"ratio {s.ratio:.3f}, {s.parts} distinct attachments"
    )
    out.print(f"catalog bytes: {s.catalog_bytes} ({human(s.catalog_bytes)})")
    if s.first_date and s.last_date:
        out.print(f"dates:         {s.first_date:%Y-%m-%d} .. {s.last_date:%Y-%m-%d}")
    if s.index is not None:
        lag = f", the oldest queued {lag_seconds(s.index)} s ago" if s.index.queued else ""
        out.print(f"not indexed:   {s.index.queued} messages{lag}")
        if s.index.failures:
            failures = ", ".join(f"{n} {status}" for status, n in s.index.failures.items())
            out.print(f"extraction:    {failures} (attachment text not indexed)")


@click.command("verify")
@config_option
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also check that the archive descends from this signed checkpoint.",
)
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The public key (PEM) that signed --checkpoint.",
)
@click.option(
    "--tsa-ca-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="CA certificate(s) of the time-stamping authority (default: [integrity] tsa_ca_file).",
)
@click.option(
    "--index",
    "check_index",
    is_flag=True,
    help="Also report messages neither indexed nor queued, and index entries of no message.",
)
def verify_(
    config_path: str | None,
    as_json: bool,
    checkpoint_file: Path | None,
    public_key: Path | None,
    tsa_ca_file: Path | None,
    check_index: bool,
) -> None:
    """Re-read every blob and re-walk the integrity chain; exit 1 on any problem. With
    --checkpoint and --public-key, first check that checkpoint's signature, timestamp and
    that the archive still descends from it."""
    if (checkpoint_file is None) != (public_key is None):
        raise click.UsageError("--checkpoint and --public-key go together")
    config = load(config_path)
    with Archive(config, readonly=True) as archive:
        checked = None
        if checkpoint_file is not None and public_key is not None:
            checked = check_checkpoint(
                archive.catalog,
                checkpoint_file,
                load_public_key(public_key),
                tsa_ca_file or config.integrity.tsa_ca_file,
            )
        s = archive.stats()
        with progress(s.messages + s.envelopes, "messages", "verifying") as advance:
            report = verify(archive, advance, index=check_index)
    if checked is not None:
        report.problems[:0] = checked.problems
    # for /metrics: how long ago, and with what result, the archive was last verified
    record_verify(config.archive.home, report.ok, len(report.problems))
    if as_json:
        doc = report.to_json()
        if checked is not None:
            doc["checkpoint"] = checked.to_json()
        print_json(doc)
        sys.exit(0 if report.ok else 1)
    for removed in report.removed:  # not problems: what purge and erase took, and when
        out.print(str(removed), markup=False)
    if report.ok:
        if checked is not None:
            _print_checkpoint(checked)
        out.print(
            f"OK: {report.messages} messages, {report.events} chain events; "
            f"chain head {report.head}"
        )
    else:
        err.print(
            f"[red]FAILED:[/] {len(report.problems)} problem(s); "
            f"the first: {escape(str(report.problems[0]))}",
            markup=True,
        )
        for p in report.problems[1:50]:
            err.print(f"  {p}", markup=False)
    sys.exit(0 if report.ok else 1)


def _print_checkpoint(checked: CheckpointReport) -> None:
    c = checked.checkpoint
    if c is None:
        return
    out.print(
        f"checkpoint {checked.path.name}: signature good (key {c.key}); the archive descends "
        f"from its {c.events} events (head {c.head}, signed {c.time:%Y-%m-%d %H:%M:%S} UTC)",
        markup=False,
    )
    if checked.timestamp is not None:
        out.print(
            f"timestamp: good, the TSA saw it at {checked.timestamp:%Y-%m-%d %H:%M:%S} UTC",
            markup=False,
        )
    else:
        out.print(f"timestamp: {checked.timestamp_note}", markup=False)


COMMANDS = (import_, search, show, export_, stats, verify_)
