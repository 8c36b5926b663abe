"""Test and check the selective archiving rules: rules test, rules check."""

from __future__ import annotations

from pathlib import Path

import click

from .common import config_option, load, out


@click.group()
def rules() -> None:
    """Test and check the selective archiving rules."""


@rules.command("test")
@config_option
@click.argument("message", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-f", "--sender", required=True, help="Envelope sender ('' for the null sender).")
@click.option(
    "-r",
    "--recipient",
    "recipients",
    multiple=True,
    required=True,
    help="Envelope recipient (repeat for several).",
)
@click.option("--client", default=None, help="Client address, as XFORWARD would give it.")
@click.option("--json", "as_json", is_flag=True)
def rules_test(
    config_path: str | None,
    message: Path,
    sender: str,
    recipients: tuple[str, ...],
    client: str | None,
    as_json: bool,
) -> None:
    """Show each recipient's decision for MESSAGE and the rule that made it."""
    from ..rules import compile_policy
    from ..rules.report import evaluate_raw, format_verdict, verdict_json

    policy = compile_policy(load(config_path))
    verdict = evaluate_raw(policy, message.read_bytes(), sender, recipients, client)
    out.print(verdict_json(verdict) if as_json else format_verdict(verdict), markup=False)


@rules.command("check")
@config_option
@click.option("--presets", is_flag=True, help="Also list the shipped presets.")
def rules_check(config_path: str | None, presets: bool) -> None:
    """Validate the config and list the rules in the order they are tried."""
    from ..rules.report import check_rules, format_policy, format_presets

    config = load(config_path)
    policy = check_rules(config)
    out.print(f"{config.source.path or 'built-in defaults'}: OK", markup=False)
    out.print(format_policy(policy), markup=False)
    if presets:
        out.print(format_presets(), markup=False)


COMMANDS = (rules,)
