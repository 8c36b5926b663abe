"""contrib/'s alert rules as Prometheus itself reads them (``promtool check rules``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from requirements import require_binary

pytestmark = [pytest.mark.integration]

RULES = Path(__file__).parents[2] / "contrib" / "prometheus" / "postfix-archiver-alerts.yml"


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = require_binary("promtool", "promtool (Debian package prometheus)")
    done = subprocess.run(
        [str(promtool), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
