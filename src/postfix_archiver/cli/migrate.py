"""``migrate --to CONFIG``: the archive copied to other backends (``archive.migration``)."""

from __future__ import annotations

import time

import click

from ..archive.migration import ROWS_PER_BATCH, shown
from ..archive.migration import migrate as copy_archive
from ..config import load_config
from .common import Whole, config_option, err, load, out, print_json, progress


@click.command("migrate")
@config_option
@click.option(
    "--to",
    "target_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The config file naming the new catalog and store (and key file, if encrypted).",
)
@click.option(
    "--batch",
    type=Whole(1, 100_000),
    default=ROWS_PER_BATCH,
    show_default=True,
    help="Catalog rows per transaction at the target (what a resumed run may read again).",
)
@click.option("--json", "as_json", is_flag=True, help="The outcome as one JSON document.")
def migrate(config_path: str | None, target_path: str, batch: int, as_json: bool) -> None:
    """Copy the archive to the catalog and store of --to's config (SQLite + files <->
    PostgreSQL + S3, any mix): rows and blobs as they are, the index built there, then the
    target verified. Resumable: run it again after an interruption, or to catch up with mail
    that arrived meanwhile (serve may run on the source; stop it for the last run)."""
    source = load(config_path)
    target = load_config(target_path)  # its errors name its file: no mix-up with --config
    started = time.monotonic()
    report = copy_archive(
        source, target, phase=progress, say=lambda line: err.print(line), batch=batch
    )
    took = time.monotonic() - started
    head = report.head.hash if report.head else None
    if as_json:
        print_json(
            {
                "messages": report.messages,
                "chain_head": head,
                "events": report.head.seq if report.head else 0,
                "resumed": report.resumed,
                "rows": report.rows,
                "blobs": report.blobs,
                "blob_bytes": report.blob_bytes,
                "indexed": report.indexed,
                "repaired": report.repaired,
                "seconds": {k: round(v, 3) for k, v in report.seconds.items()},
                "notes": report.notes,
            }
        )
        return
    for note in report.notes:
        err.print(f"note: {note}", markup=False)
    rate = report.messages / took if took > 0 else 0.0
    out.print(
        f"OK: {report.messages} messages migrated to {shown(target.archive.catalog_url)} "
        f"+ {shown(target.archive.store_url)} in {took:.1f}s ({rate:.0f} msg/s); "
        f"chain head {head or 'none'}; the target passes verify",
        markup=False,
    )


COMMANDS = (migrate,)
