"""Web users and their API tokens (user add|passwd|token|tokens|revoke|list|remove) and the
web audit log (audit)."""

from __future__ import annotations

import json
import sys

import click
from rich.markup import escape

from ..errors import ArchiverError
from .common import NO_USERS, Whole, cli_who, config_option, err, load, out, print_json, safe


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    value: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password", err=True
    )
    return value


@click.group()
def user() -> None:
    """Web users (admin, auditor, user) and their API tokens."""


@user.command("add")
@config_option
@click.argument("name")
@click.option(
    "--role", type=click.Choice(["admin", "auditor", "user"]), required=True, help="What they see."
)
@click.option(
    "--address",
    "addresses",
    multiple=True,
    help="A mail address of theirs (repeat); a user sees mail to or from these.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(
    config_path: str | None,
    name: str,
    role: str,
    addresses: tuple[str, ...],
    password_stdin: bool,
) -> None:
    """Add a web user; the password is asked for (or read with --password-stdin)."""
    from ..accounts import check_name, open_accounts

    config = load(config_path)
    check_name(name)
    with open_accounts(config.archive.accounts_url) as accounts:
        if accounts.get_user(name) is not None:
            raise ArchiverError(f"user {name!r} exists already (user passwd to reset it)")
        password = _read_password(password_stdin)
        created = accounts.add_user(name, role, password, addresses)
        accounts.record(
            cli_who(), "local", "user.add",
            {"name": created.name, "role": created.role, "addresses": list(created.addresses)},
        )  # fmt: skip
    err.print(
        f"added {created.name} ({created.role}"
        + (f"; {', '.join(created.addresses)}" if created.addresses else "")
        + ")",
        markup=False,
    )


@user.command("passwd")
@config_option
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_passwd(config_path: str | None, name: str, password_stdin: bool) -> None:
    """Set a new password (ends the user's web sessions)."""
    from ..accounts import open_accounts

    config = load(config_path)
    with open_accounts(config.archive.accounts_url, create=False) as accounts:
        accounts.require_user(name)
        accounts.set_password(name, _read_password(password_stdin))
        accounts.record(cli_who(), "local", "user.password", {"name": name})
    err.print(f"new password set for {name}", markup=False)


@user.command("token")
@config_option
@click.argument("name")
@click.option("--label", default="", help="What the token is for (shown by user tokens).")
def user_token(config_path: str | None, name: str, label: str) -> None:
    """Print a new API token for NAME (its last line; shown once, stored only hashed)."""
    from ..accounts import open_accounts

    config = load(config_path)
    with open_accounts(config.archive.accounts_url, create=False) as accounts:
        info, secret = accounts.create_token(name, label)
        accounts.record(
            cli_who(),
            "local",
            "token.create",
            {"name": name, "token": info.id, "label": info.label},
        )
    err.print(
        f"API token {info.id} for {name} ({info.label}); use it as 'Authorization: Bearer TOKEN'. "
        "It is shown only now:",
        markup=False,
    )
    click.echo(secret)


@user.command("tokens")
@config_option
@click.argument("name")
def user_tokens(config_path: str | None, name: str) -> None:
    """List the API tokens of NAME (ids and labels; the secrets are not kept)."""
    from ..accounts import open_accounts

    with open_accounts(load(config_path).archive.accounts_url, create=False) as accounts:
        tokens = accounts.tokens(name)
    for t in tokens:
        click.echo(f"{t.id}\t{t.created[:19]}\t{t.label}")
    if not tokens:
        err.print(f"{name} has no API tokens", markup=False)


@user.command("revoke")
@config_option
@click.argument("name")
@click.argument("token_id", required=False, type=Whole(1))
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every token of NAME.")
def user_revoke(config_path: str | None, name: str, token_id: int | None, revoke_all: bool) -> None:
    """Revoke API token TOKEN_ID of NAME (ids from user tokens), or --all."""
    from ..accounts import open_accounts

    if (token_id is None) == (not revoke_all):
        raise click.UsageError("give a TOKEN_ID or --all")
    with open_accounts(load(config_path).archive.accounts_url, create=False) as accounts:
        count = accounts.revoke_token(name, None if revoke_all else token_id)
        if count == 0:
            raise ArchiverError(f"{name} has no token {token_id} (see: user tokens {name})")
        accounts.record(
            cli_who(), "local", "token.revoke", {"name": name, "token": token_id or "all"}
        )
    err.print(f"revoked {count} token{'s' if count != 1 else ''} of {name}", markup=False)


@user.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True)
def user_list(config_path: str | None, as_json: bool) -> None:
    """The web users, their roles and addresses."""
    from ..accounts import accounts_exist, open_accounts

    config = load(config_path)
    users = []
    if accounts_exist(config.archive.accounts_url):  # listing creates nothing
        with open_accounts(config.archive.accounts_url, create=False) as accounts:
            users = accounts.users()
    if as_json:
        print_json({"users": [u.to_json() for u in users]})
        return
    for u in users:
        click.echo(f"{u.name}\t{u.role}\t{' '.join(u.addresses)}")
    if not users:
        err.print(NO_USERS, markup=False)


@user.command("remove")
@config_option
@click.argument("name")
def user_remove(config_path: str | None, name: str) -> None:
    """Remove a web user with their sessions and tokens (audit entries stay)."""
    from ..accounts import open_accounts

    with open_accounts(load(config_path).archive.accounts_url, create=False) as accounts:
        accounts.remove_user(name)
        accounts.record(cli_who(), "local", "user.remove", {"name": name})
    err.print(f"removed {name}", markup=False)


@click.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.option("--limit", default=50, show_default=True, type=Whole(1, 1_000_000))
@click.option("--user", "user_name", default=None, help="Only this user's entries.")
@click.option("--action", default=None, help="Only this action (login, search, view, ...).")
@click.option("--verify", is_flag=True, help="Check the audit log's hash chain; exit 1 if broken.")
def audit(
    config_path: str | None,
    as_json: bool,
    limit: int,
    user_name: str | None,
    action: str | None,
    verify: bool,
) -> None:
    """The web audit log: the last entries, oldest first (logins, searches, views, ...)."""
    from ..accounts import open_accounts

    with open_accounts(load(config_path).archive.accounts_url, create=False) as accounts:
        if verify:
            check = accounts.verify_audit()
            if as_json:
                print_json(
                    {"ok": check.ok, "entries": check.entries, "head": check.head,
                     "problem": check.problem}
                )  # fmt: skip
            elif check.ok:
                out.print(f"OK: {check.entries} audit entries, chain head {check.head}")
            else:
                err.print(f"[red]FAILED:[/] {escape(str(check.problem))}", markup=True)
            sys.exit(0 if check.ok else 1)
        total, entries = accounts.audit(limit=limit, user=user_name, action=action)
    entries.reverse()
    if as_json:
        print_json({"total": total, "entries": [e.to_json() for e in entries]})
        return
    for e in entries:
        detail = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in e.detail.items())
        out.print(
            safe(f"{e.time[:19].replace('T', ' ')} {e.user} {e.client} {e.action} {detail}"),
            markup=True,
        )
    if total > len(entries):
        err.print(f"(the last {len(entries)} of {total} entries; --limit for more)", markup=False)


COMMANDS = (user, audit)
