"""Benchmark: the cost of rule evaluation per message with a 200-rule policy.

Run: ``.venv/bin/python bench/rules_eval.py [--iterations N]``

The policy has 200 rules of mixed kinds (address globs and regexes, header regexes,
direction, size, client networks, not/any, the three presets) that the sample messages do
not match, and a last rule that does, so every rule is evaluated for every recipient.
Each message has 3 envelope recipients. Parsing is timed separately: the message is parsed
once per arrival for the catalog anyway, so the rules' own cost is ``Policy.decide``.
Target: under 1 ms per message.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# runnable from a checkout without installing the package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from postfix_archiver.config import parse_config
from postfix_archiver.envelope import Envelope
from postfix_archiver.message import parse_message
from postfix_archiver.rules import Policy, compile_policy

TARGET_US = 1000.0
RULE_COUNT = 200


def _rule(i: int) -> str:
    kind = i % 10
    body = {
        0: f'sender = ["user{i}@", "*@vendor{i}.example", "re:^bot-{i}-"]',
        1: f'recipient = ["@dept{i}.example.com", "team{i}@example.com"]',
        2: f'header = {{ Subject = "^\\\\[ticket-{i}\\\\]" }}',
        3: f'header = [{{ X-Mailer = "tool{i}" }}, {{ X-Campaign-Id{i} = "" }}]',
        4: f'direction = "outbound"\nrecipient = "@partner{i}.example"',
        5: f'size_over = "{i}M"\nsender = "@example.com"',
        6: f'client = ["198.51.{i}.0/24", "2001:db8:{i:x}::/48"]',
        7: f'not = {{ header = {{ X-Keep = "" }} }}\nrecipient = "@x{i}.example"',
        8: f'any = [{{ sender = "alerts{i}@" }}, {{ header = {{ From = "monitor{i}" }} }}]',
        9: f'header = {{ Subject = "(?:invoice|rechnung) #{i}\\\\b", From = "billing@sup{i}" }}',
    }[kind]
    if i in (50, 100, 150):
        preset = {50: "system-mail", 100: "auto-replies", 150: "bulk"}[i]
        body = f'preset = "{preset}"\nrecipient = "@nowhere{i}.invalid"'
    action = "skip" if i % 2 else "archive"
    return f'[[rules]]\nname = "rule {i}"\n{body}\naction = "{action}"\n'


def build_policy() -> Policy:
    rules = [_rule(i) for i in range(RULE_COUNT - 1)]
    rules.append('[[rules]]\nname = "last"\nheader = { Message-ID = "" }\naction = "archive"\n')
    text = '[archive]\nlocal_domains = ["example.com"]\n\n' + "\n".join(rules)
    return compile_policy(parse_config(text, "bench.toml"))


INBOUND = b"""\
Return-Path: <bob@partner.example>
X-Original-To: jane@hr.example.com
Delivered-To: jane@hr.example.com
Received: from mx1.partner.example (mx1.partner.example [203.0.113.25])
\tby mail.example.com (Postfix) with ESMTPS id 4TqK2x1ZyQz9sWQ
\tfor <jane@hr.example.com>; Mon,  4 Mar 2024 10:15:02 +0100 (CET)
Received: from laptop.partner.example (unknown [10.20.30.40])
\tby mx1.partner.example (Postfix) with ESMTPSA id 9D3F21A0B2
\tMon,  4 Mar 2024 10:14:59 +0100 (CET)
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=partner.example; s=mail;
\tt=1709543699; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
\th=From:To:Cc:Subject:Date; b=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ==
Authentication-Results: mail.example.com; dkim=pass header.d=partner.example;
\tspf=pass smtp.mailfrom=bob@partner.example; dmarc=pass header.from=partner.example
From: Bob Partner <bob@partner.example>
To: Jane HR <jane@hr.example.com>, Alice <alice@example.com>
Cc: Carol <carol@other.example>
Subject: =?utf-8?q?Re=3A_Vertrag_f=C3=BCr_Q3_=E2=80=93_Unterlagen?=
Message-ID: <8b7c6d5e-4f3a-2b1c-0d9e-8f7a6b5c4d3e@partner.example>
In-Reply-To: <a1b2c3d4@example.com>
References: <a1b2c3d4@example.com>
Date: Mon, 4 Mar 2024 10:14:58 +0100
User-Agent: Mozilla Thunderbird
Content-Language: de-DE
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit
X-Spam-Status: No, score=-0.1 required=5.0
X-Virus-Scanned: clamav-milter 1.0.3 at mail.example.com

Hallo Jane,

anbei die Unterlagen.

Gruss
Bob
""".replace(b"\n", b"\r\n")

OUTBOUND = b"""\
From: Alice Example <alice@example.com>
To: Bob Partner <bob@partner.example>, Dave <dave@customer.example>
Cc: Eve <eve@example.com>
Subject: Quarterly figures
Message-ID: <a1b2c3d4@example.com>
Date: Mon, 04 Mar 2024 11:15:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"
X-Mailer: Microsoft Outlook 16.0

--b1
Content-Type: text/plain; charset=utf-8

See attached.
--b1
Content-Type: application/pdf; name="q1.pdf"
Content-Disposition: attachment; filename="q1.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg==
--b1--
""".replace(b"\n", b"\r\n")

CASES = [
    (
        "inbound, 3 recipients",
        INBOUND,
        Envelope(
            "bob@partner.example",
            ("jane@hr.example.com", "alice@example.com", "carol@other.example"),
            client_address="203.0.113.25",
        ),
    ),
    (
        "outbound, 3 recipients",
        OUTBOUND,
        Envelope(
            "alice@example.com",
            ("bob@partner.example", "dave@customer.example", "eve@example.com"),
            client_address="IPv6:2001:db8:ffff::7",
        ),
    ),
]


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description="Rule evaluation cost per message")
    parser.add_argument("--iterations", type=int, default=5000)
    args = parser.parse_args()

    started = time.perf_counter()
    policy = build_policy()
    compile_ms = (time.perf_counter() - started) * 1000
    print(f"policy: {len(policy.rules)} rules, compiled in {compile_ms:.1f} ms")
    print(f"iterations per case: {args.iterations}")
    worst_p99 = 0.0
    for label, raw, envelope in CASES:
        parsed = parse_message(raw)
        verdict = policy.decide(parsed, envelope, count=False)
        assert [d.rule for d in verdict.decisions] == ["last"] * 3, verdict
        for _ in range(200):  # warm up caches and the allocator
            policy.decide(parsed, envelope)
        costs: list[float] = []
        clock = time.perf_counter_ns
        for _ in range(args.iterations):
            t0 = clock()
            policy.decide(parsed, envelope)
            costs.append((clock() - t0) / 1000)
        parse_costs: list[float] = []
        for _ in range(max(1, args.iterations // 10)):
            t0 = clock()
            parse_message(raw)
            parse_costs.append((clock() - t0) / 1000)
        mean = statistics.fmean(costs)
        p50 = _percentile(costs, 0.50)
        p99 = _percentile(costs, 0.99)
        worst_p99 = max(worst_p99, p99)
        print(
            f"{label}: decide mean {mean:.1f} us, p50 {p50:.1f} us, p99 {p99:.1f} us"
            f"; parse_message mean "
            f"{statistics.fmean(parse_costs):.1f} us (not part of the rules' cost)"
        )
    verdict_text = "meets" if worst_p99 < TARGET_US else "MISSES"
    print(
        f"target {TARGET_US:.0f} us per message: worst p99 {worst_p99:.1f} us "
        f"-> {verdict_text} the target ({worst_p99 / TARGET_US:.0%} of it)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
