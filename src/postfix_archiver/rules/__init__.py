"""The selective archiving policy: which mail is kept, decided per envelope recipient.

Rules are an ordered list of ``[[rules]]`` tables in the config. For each envelope
recipient the first rule whose conditions all hold decides; when none does,
``[archive] default`` applies. A message is archived if any recipient's decision is
``archive``, and only those recipients are recorded with it::

    [archive]
    default = "archive"
    local_domains = ["example.com"]        # needed by `direction`; subdomains count too

    [[rules]]
    name = "system mail"                   # required, unique; shown in X-Archive-Status
    preset = "system-mail"
    action = "skip"                        # required: "archive" or "skip"

    [[rules]]
    name = "finance"
    recipient = ["*@finance.example.com"]
    action = "archive"
    retention = "10y"                      # optional, archive only: Nd Nw Nm Ny or "forever"
    tags = ["finance"]                     # optional, archive only

Conditions. All keys given in one table must hold; a list value means "any of":

``sender``, ``recipient``
    Envelope addresses, a string or a list, case-insensitive (see ``patterns``):
    ``"a@example.com"`` exact; ``"root@"`` that local part at any domain; ``"@example.com"``
    the domain *and its subdomains* (``*@example.com`` for the domain alone); ``*`` and
    ``?`` globs; ``"re:REGEX"`` searched. The null sender never matches ``sender`` (use
    ``null_sender``); without envelope recipients ``recipient`` never matches.
``header``
    ``{ Name = "REGEX" }``: the regex is searched, ignoring case, in each decoded value of
    the header (RFC 2047 words decoded, folding removed); it holds if any value matches.
    ``""`` or ``".*"`` tests only that the header is present. A list of regexes for one
    name means any of them. Several names in one table must all match; a list of tables
    means any table: ``header = [{ List-Id = "" }, { Precedence = "^bulk$" }]``.
``direction``
    ``"inbound"`` (remote sender, local recipient), ``"outbound"`` (local to remote),
    ``"internal"`` (local to local), ``"external"`` (remote to remote), or a list. Local
    means a domain of ``local_domains`` or a subdomain of one, or no domain at all. The null
    sender takes the recipient's side (a bounce to a local user is inbound). Refused
    without ``local_domains``.
``size_over``, ``size_under``
    Message size in bytes, strictly over / under; an integer or ``"500k"``, ``"5M"``,
    ``"1G"`` (powers of 1024).
``null_sender``
    ``true``: the envelope sender is empty (bounces, most auto-replies); ``false``: not.
``client``
    The SMTP client (XFORWARD ADDR or the pipe ``${client_address}``), an address or
    network or a list: ``["192.0.2.0/24", "10.1.2.3", "2001:db8::/32"]``. An unknown
    client matches nothing.
``not``
    A table of conditions that must *not* all hold; a list of tables: none may hold.
``any``
    A list of condition tables, at least one of which must hold.
``preset``
    A shipped named condition: ``"system-mail"``, ``"auto-replies"``, ``"bulk"`` (files in
    ``rules/presets/``); a list means any of them. With other keys, all must hold.

A rule without any condition is refused (set ``[archive] default`` instead), as is an
unknown key, a bad regex, address, network, size or retention; every error names file,
line and key: ``archiver.toml:12: rules[1].header.Subject: bad regular expression ...``.

Decisions are counted per rule name, plus ``default`` (no rule matched) and ``error``
(evaluation failed on odd input, and the recipient was archived to be safe); those two
names are reserved.
"""

from .conditions import Condition
from .facts import DIRECTIONS
from .policy import Policy, Rule, compile_policy
from .presets import PresetInfo, load_preset, preset_info, preset_names
from .report import (
    check_rules,
    evaluate_raw,
    format_policy,
    format_presets,
    format_verdict,
    verdict_json,
)
from .verdict import ACTIONS, DEFAULT_RULE, ERROR_RULE, Action, Decision, Verdict

__all__ = [
    "ACTIONS",
    "DEFAULT_RULE",
    "DIRECTIONS",
    "ERROR_RULE",
    "Action",
    "Condition",
    "Decision",
    "Policy",
    "PresetInfo",
    "Rule",
    "Verdict",
    "check_rules",
    "compile_policy",
    "evaluate_raw",
    "format_policy",
    "format_presets",
    "format_verdict",
    "load_preset",
    "preset_info",
    "preset_names",
    "verdict_json",
]
