"""A broken policy is refused with file, line, key and a reason that says what to fix."""

from __future__ import annotations

import pytest

from postfix_archiver.config import parse_config
from postfix_archiver.errors import ConfigError
from postfix_archiver.rules import compile_policy

HEAD = """\
[archive]
default = "archive"
local_domains = ["example.com"]

[[rules]]
name = "system mail"
preset = "system-mail"
action = "skip"

"""
# the rule under test is rules[1]; its lines start here
FIRST = HEAD.count("\n") + 1


def _error(rule: str, head: str = HEAD) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        compile_policy(parse_config(head + rule, "archiver.toml"))
    return info.value


@pytest.mark.parametrize(
    ("rule", "offset", "key", "reason"),
    [
        # unknown keys, with a suggestion for a near miss
        (
            '[[rules]]\nname = "x"\nrecipients = ["a@"]\naction = "skip"\n',
            2,
            "rules[1].recipients",
            "did you mean 'recipient'?",
        ),
        (
            '[[rules]]\nname = "x"\nsender = "a@"\naction = "skip"\ncolour = "red"\n',
            4,
            "rules[1].colour",
            "unknown key (known: name, action",
        ),
        (
            '[[rules]]\nname = "x"\nnot = { sendr = "a@" }\naction = "skip"\n',
            2,
            "rules[1].not.sendr",
            "did you mean 'sender'?",
        ),
        # bad regexes, wherever they are
        (
            '[[rules]]\nname = "x"\naction = "skip"\nheader = { Subject = "([a-z]" }\n',
            3,
            "rules[1].header.Subject",
            "bad regular expression '([a-z]': missing ), unterminated subpattern at position 0",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nsender = [\n  "root@",\n  "re:*x",\n]\n',
            3,
            "rules[1].sender[1]",
            "bad regular expression '*x': nothing to repeat",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nheader = [{ A = "a" }, { B = ["b", "+"] }]\n',
            3,
            "rules[1].header[1].B[1]",
            "bad regular expression '+'",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nnot = { any = [{ recipient = "re:(" }] }\n',
            3,
            "rules[1].not.any[0].recipient",
            "bad regular expression '('",
        ),
        # rules without conditions, names or actions
        (
            '[[rules]]\nname = "catch all"\naction = "skip"\n',
            0,
            "rules[1]",
            "rule 'catch all' has no condition (give a preset or one of sender, recipient,",
        ),
        ('[[rules]]\nsender = "a@"\naction = "skip"\n', 0, "rules[1]", "rule needs a name"),
        (
            '[[rules]]\nname = ""\nsender = "a@"\naction = "skip"\n',
            1,
            "rules[1].name",
            "must be a non-empty string",
        ),
        (
            '[[rules]]\nname = "system mail"\nsender = "a@"\naction = "skip"\n',
            1,
            "rules[1].name",
            "duplicate rule name 'system mail' (also rules[0])",
        ),
        (
            '[[rules]]\nname = "default"\nsender = "a@"\naction = "skip"\n',
            1,
            "rules[1].name",
            "'default' is reserved",
        ),
        (
            '[[rules]]\nname = "two\\nlines"\nsender = "a@"\naction = "skip"\n',
            1,
            "rules[1].name",
            "must not contain control characters",
        ),
        (
            '[[rules]]\nname = "x"\nsender = "a@"\n',
            0,
            "rules[1]",
            'rule \'x\' needs action = "archive" or "skip"',
        ),
        (
            '[[rules]]\nname = "x"\nsender = "a@"\naction = "keep"\n',
            3,
            "rules[1].action",
            'must be "archive" or "skip", not \'keep\'',
        ),
        # archive-only options
        (
            '[[rules]]\nname = "x"\nsender = "a@"\naction = "archive"\nretention = "10 years"\n',
            4,
            "rules[1].retention",
            "must be a period such as",
        ),
        (
            '[[rules]]\nname = "x"\nsender = "a@"\naction = "skip"\nretention = "10y"\n',
            4,
            "rules[1].retention",
            'only an action = "archive" rule keeps mail',
        ),
        (
            '[[rules]]\nname = "x"\nsender = "a@"\naction = "archive"\ntags = "hr"\n',
            4,
            "rules[1].tags",
            "must be a list of non-empty strings",
        ),
        # values
        (
            '[[rules]]\nname = "x"\naction = "skip"\nsender = "root"\n',
            3,
            "rules[1].sender",
            '\'root\' has no "@": write "root@" for that local part at any domain',
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nsender = []\n',
            3,
            "rules[1].sender",
            "must be a string or a non-empty list of strings",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nrecipient = [""]\n',
            3,
            "rules[1].recipient[0]",
            "empty address pattern",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nrecipient = "@"\n',
            3,
            "rules[1].recipient",
            "is not a domain",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nheader = { "Sub ject" = "x" }\n',
            3,
            "rules[1].header.Sub ject",
            "is not a header name",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nheader = "Subject"\n',
            3,
            "rules[1].header",
            "must be a table of header names and regexes",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\ndirection = "incoming"\n',
            3,
            "rules[1].direction",
            "unknown direction 'incoming' (known: inbound, outbound,",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nsize_over = "5 furlongs"\n',
            3,
            "rules[1].size_over",
            "must be a size such as",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nsize_under = -1\n',
            3,
            "rules[1].size_under",
            "must not be negative",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nsize_over = "2M"\nsize_under = "1M"\n',
            4,
            "rules[1].size_under",
            "no size is both over '2M' and under '1M'",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nnull_sender = "yes"\n',
            3,
            "rules[1].null_sender",
            "must be true or false",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nclient = ["10.0.0.0/8", "192.0.2.1/24"]\n',
            3,
            "rules[1].client[1]",
            "'192.0.2.1/24' has host bits set; did you mean 192.0.2.0/24?",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nclient = "mx.example.com"\n',
            3,
            "rules[1].client",
            "is not an IP address or network",
        ),
        ('[[rules]]\nname = "x"\naction = "skip"\nnot = {}\n', 3, "rules[1].not", "empty table"),
        (
            '[[rules]]\nname = "x"\naction = "skip"\nany = { sender = "a@" }\n',
            3,
            "rules[1].any",
            "must be a list of condition tables",
        ),
        (
            '[[rules]]\nname = "x"\naction = "skip"\npreset = "system_mail"\n',
            3,
            "rules[1].preset",
            "unknown preset 'system_mail' (known: auto-replies, bulk,",
        ),
    ],
)
def test_rule_errors(rule: str, offset: int, key: str, reason: str) -> None:
    error = _error(rule)
    assert error.path == "archiver.toml"
    assert error.key == key
    assert error.line == FIRST + offset
    assert reason in error.reason
    assert str(error).startswith(f"archiver.toml:{FIRST + offset}: {key}: ")


def test_valid_size_spellings_are_accepted() -> None:
    for size in ('"5 MB"', '"5M"', '"5MiB"', '"1.5k"', "0", '"2g"'):
        compile_policy(
            parse_config(
                HEAD + f'[[rules]]\nname = "x"\naction = "skip"\nsize_over = {size}\n', "a.toml"
            )
        )


def test_direction_needs_local_domains() -> None:
    head = '[archive]\ndefault = "archive"\n\n'
    error = _error('[[rules]]\nname = "x"\naction = "skip"\ndirection = "inbound"\n', head)
    assert (error.line, error.key) == (7, "rules[0].direction")
    assert "needs [archive] local_domains" in error.reason


def test_error_in_a_later_rule_of_many_points_at_its_line() -> None:
    rules = "".join(
        f'[[rules]]\nname = "r{i}"\nsender = "u{i}@"\naction = "skip"\n\n' for i in range(10)
    )
    text = HEAD + rules + '[[rules]]\nname = "bad"\naction = "skip"\nheader = { X = "[" }\n'
    with pytest.raises(ConfigError) as info:
        compile_policy(parse_config(text, "big.toml"))
    assert info.value.key == "rules[11].header.X"
    assert info.value.line == text.splitlines().index('header = { X = "[" }') + 1


def test_valid_config_compiles() -> None:
    text = (
        HEAD
        + """\
[[rules]]
name = "finance"
recipient = ["*@finance.example.com"]
action = "archive"
retention = "10y"
tags = ["finance"]

[[rules]]
name = "big inbound from the scanner"
direction = "inbound"
client = ["192.0.2.0/24", "2001:db8::/32"]
size_over = "5M"
not = [{ header = { X-Keep = "" } }]
action = "skip"
"""
    )
    policy = compile_policy(parse_config(text, "ok.toml"))
    assert policy.rules == ("system mail", "finance", "big inbound from the scanner")
    assert policy.default_action == "archive"
    assert policy.local_domains == ("example.com",)
