"""contrib/'s Grafana dashboard and Prometheus alert rules: they load, and every metric they
name is one the archiver exports (a renamed metric would leave a panel empty and an alert
silent, and nobody would notice)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from postfix_archiver.archive import Archive
from postfix_archiver.archive.checkpoint import checkpoint_directory
from postfix_archiver.archive.health import record_verify
from postfix_archiver.web.health import Health

CONTRIB = Path(__file__).parents[2] / "contrib"
DASHBOARD = CONTRIB / "grafana" / "postfix-archiver-dashboard.json"
RULES = CONTRIB / "prometheus" / "postfix-archiver-alerts.yml"
NAME = re.compile(r"\bpostfix_archiver_[a-z_]+\b")
# Prometheus's own series (whether the scrape succeeded), not the archiver's
PROMETHEUS_OWN = {"up"}


def exported(archive: Archive) -> set[str]:
    """Every series name a scrape of the archiver can show: each family's samples by type
    (a counter no message has touched yet has no sample, but it exists)."""
    record_verify(archive.config.archive.home, ok=True, problems=0)
    directory = checkpoint_directory(archive.config)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "20260101T000000Z-1.json").write_text("{}")  # only its time is read
    names: set[str] = set()
    text = Health(archive).exposition().decode()
    for family in text_string_to_metric_families(text):
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_count", "_sum")}
        else:
            names.add(family.name)
    return names


def dashboard_expressions() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    return exprs


def rule_expressions() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [(r["alert"], r["expr"]) for g in doc["groups"] for r in g["rules"]]


def test_dashboard_is_grafana_json_with_a_query_in_every_panel() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "postfix-archiver"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert panel["targets"], panel["title"]
        assert all(NAME.search(t["expr"]) for t in panel["targets"]), panel["title"]


def test_alert_rules_cover_what_the_operator_must_hear_about() -> None:
    alerts = dict(rule_expressions())
    for needed in (
        "PostfixArchiverDown",
        "PostfixArchiverDeferralsRising",
        "PostfixArchiverIndexLag",
        "PostfixArchiverVerifyFailed",
        "PostfixArchiverVerifyOld",
        "PostfixArchiverDiskFilling",
    ):
        assert needed in alerts


def test_every_metric_the_dashboard_and_alerts_use_is_exported(archive: Archive) -> None:
    names = exported(archive)
    used = {n for e in dashboard_expressions() for n in NAME.findall(e)}
    used |= {n for _a, e in rule_expressions() for n in NAME.findall(e)}
    assert used, "no metric found in contrib/"
    assert used - names == set()
    # and the alerts name only those or Prometheus's own
    for alert, expr in rule_expressions():
        bare = re.findall(r"\b([a-z_]+)\{", expr)
        assert set(bare) <= names | PROMETHEUS_OWN, alert
