"""The pipe filter's counts in node exporter's textfile: one process per message, many at
once, and not one count lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .capture_helpers import CLI, cli_env, make_message

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def read(path: Path) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def test_concurrent_pipe_filters_lose_no_count(tmp_path: Path) -> None:
    home = tmp_path / "home"
    textfile = tmp_path / "textfile" / "postfix-archiver.prom"
    textfile.parent.mkdir()
    config = tmp_path / "archiver.toml"
    config.write_text(
        f'[archive]\nhome = "{home}"\n\n[metrics]\ntextfile = "{textfile}"\n\n'
        '[[rules]]\nname = "newsletters"\nsender = ["news@*"]\naction = "skip"\n'
    )
    runs = []
    for i in range(8):
        sender = "news@shop.example" if i % 4 == 0 else "alice@example.com"
        content = make_message(f"Piped {i}", sender=sender)
        args = ["filter", "--config", str(config), "--sink", "-f", sender, "--", "bob@example.com"]
        proc = subprocess.Popen(
            [str(CLI), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(home),
        )
        runs.append((proc, content))
    total = 0
    for proc, content in runs:
        _out, err = proc.communicate(content, timeout=120)
        assert proc.returncode == 0, err.decode()
        total += len(content)
    m = read(textfile)
    # a pipe filter with --sink counts as the sink
    assert m[("postfix_archiver_messages_received_total", frozenset({("source", "sink")}))] == 8
    assert m[("postfix_archiver_received_bytes_total", frozenset({("source", "sink")}))] == total
    assert m[("postfix_archiver_messages_archived_total", frozenset({("source", "sink")}))] == 6
    skipped = frozenset({("source", "sink"), ("rule", "newsletters")})
    assert m[("postfix_archiver_messages_skipped_total", skipped)] == 2
    assert m[("postfix_archiver_answer_seconds_count", frozenset({("source", "sink")}))] == 8
    assert m[("postfix_archiver_batch_size_count", frozenset())] == 8
    # node exporter reads *.prom only: the lock file beside it is ignored; no temporary
    # file is left behind
    assert sorted(p.name for p in textfile.parent.iterdir()) == [
        "postfix-archiver.prom",
        "postfix-archiver.prom.lock",
    ]


WRITER = """
import sys
from pathlib import Path
from postfix_archiver import metrics
path = Path(sys.argv[1])
for _ in range(int(sys.argv[2])):
    metrics.RECEIVED.labels("pipe").inc()
    metrics.ANSWER_SECONDS.labels("pipe").observe(0.02)
    metrics.write_textfile(path)
    # the next round adds only what is new: start this process's counts again
    metrics.RECEIVED.clear()
    metrics.ANSWER_SECONDS.clear()
"""


def test_many_writers_at_once_add_up_exactly(tmp_path: Path) -> None:
    path = tmp_path / "pipe.prom"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), "25"]) for _ in range(6)]
    for proc in procs:
        assert proc.wait(120) == 0
    m = read(path)
    pipe = frozenset({("source", "pipe")})
    assert m[("postfix_archiver_messages_received_total", pipe)] == 150
    assert m[("postfix_archiver_answer_seconds_count", pipe)] == 150
    assert m[("postfix_archiver_answer_seconds_bucket", pipe | {("le", "0.025")})] == 150
    assert m[("postfix_archiver_answer_seconds_bucket", pipe | {("le", "0.01")})] == 0
    assert abs(m[("postfix_archiver_answer_seconds_sum", pipe)] - 3.0) < 1e-9


def test_an_unreadable_textfile_starts_the_counts_again(tmp_path: Path) -> None:
    path = tmp_path / "pipe.prom"
    path.write_bytes(b"\xff\xfe garbage {{{ not prometheus\n")
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(path), "1"], capture_output=True, check=False
    )
    assert done.returncode == 0, done.stderr
    m = read(path)
    assert m[("postfix_archiver_messages_received_total", frozenset({("source", "pipe")}))] == 1
