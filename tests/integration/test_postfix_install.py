"""``install --apply`` ends with Postfix's side against a real Postfix: the content filter and
the two master.cf services of proxy mode written as ``postfix-config --apply`` writes them,
then doctor's checks printed (the archiver is not started yet: doctor says so, and the
install still succeeds); a second run changes nothing in Postfix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from archiver_process import archiver_cmd
from postfix_harness import PostfixInstance, SmtpSink

pytestmark = [pytest.mark.integration]


def test_install_applies_postfixs_side_and_runs_doctor(
    tmp_path: Path, mta: tuple[PostfixInstance, SmtpSink], throwaway_user: str
) -> None:
    postfix, _ = mta
    root = tmp_path / "root"
    root.mkdir()
    args = [archiver_cmd(), "install", "--user", throwaway_user, "--home", "/var/lib/pa-test",
            "--root", str(root), "--apply", "--config-dir", str(postfix.config_dir)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER")}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert postfix.postconf_get("content_filter") == "postfix-archiver:[127.0.0.1]:10025"
    master = (postfix.config_dir / "master.cf").read_text()
    assert "127.0.0.1:10026 inet" in master  # the reinjection listener
    assert "\npostfix-archiver " in master
    # doctor ran, and says what is left: the archiver is not listening yet
    assert "doctor:" in done.stdout
    assert "FAIL" in done.stdout
    assert "fix:" in done.stdout
    # Postfix's side done: the steps left name doctor, not postfix-config again
    assert "postfix-config --config" not in done.stdout.split("Then:")[1]

    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "Postfix is already configured as planned; nothing changed." in again.stdout
