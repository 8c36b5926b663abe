"""The full-text index, made after answering: ``index`` drains the queue (for sites that
archive through the pipe filter only, where no ``serve`` runs the indexer), ``reindex``
rebuilds entries from the blobs (audited, as the other changes an admin makes)."""

from __future__ import annotations

import time

import click

from ..archive import Archive
from ..archive.indexer import POLL, requeue
from ..search import parse_query
from .common import QUERY_ARGS, cli_who, config_option, err, load, progress


@click.command("index")
@config_option
@click.option(
    "--follow",
    is_flag=True,
    help="Keep indexing what arrives (for a pipe-only site, as a service) until interrupted.",
)
def index(config_path: str | None, follow: bool) -> None:
    """Index the messages queued for the full-text index (serve and web do it themselves)."""
    config = load(config_path)
    with Archive(config) as archive:
        done = _drain(archive)
        if not follow:
            err.print(f"indexed {done} messages")
            return
        try:
            while True:
                time.sleep(POLL)
                _drain(archive)
        except KeyboardInterrupt:
            err.print("stopped; what is left stays queued")


def _drain(archive: Archive) -> int:
    queued = archive.catalog.index_status().queued
    if not queued:
        return 0
    with progress(queued, "messages", "indexing") as advance:
        return archive.index_pending(advance)


@click.command("reindex", context_settings=QUERY_ARGS)
@config_option
@click.argument("query", nargs=-1)
def reindex(config_path: str | None, query: tuple[str, ...]) -> None:
    """Rebuild the index entries of the messages matching QUERY (all without one) from the
    blobs: after a tokenizer change, or to repair what `verify --index` reports. Safe while
    serve runs: its indexer and this one share the queue."""
    from ..accounts import open_accounts

    config = load(config_path)
    text = " ".join(query)
    if text:
        parse_query(text)  # a mistake is one line, not an intent the audit log keeps
    who = cli_who()
    with open_accounts(config.archive.accounts_url) as accounts, Archive(config) as archive:
        accounts.record(who, "local", "index.rebuild.intent", {"query": text})
        # the matches first, whole: the entries change under the search as they are queued
        rows = list(archive.iter_search(text)) if text else None
        queued, rebuilt = requeue(archive, rows)
        with progress(queued, "messages", "indexing") as advance:
            done = archive.index_pending(advance)
        accounts.record(
            who,
            "local",
            "index.rebuild",
            {"query": text, "matched": None if rows is None else len(rows), "whole": rebuilt},
        )
    what = "the whole index" if rebuilt else f"{0 if rows is None else len(rows)} messages"
    err.print(f"reindexed {what}: {done} messages indexed")


COMMANDS = (index, reindex)
