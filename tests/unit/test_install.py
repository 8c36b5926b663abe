"""``postfix-archiver install``: the dry run's plan, ``--apply`` for real as root into a
staging root with a throw-away system user, idempotence, hostile values, and the units
checked by ``systemd-analyze verify``."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from postfix_archiver.config import load_config
from postfix_archiver.install import UNITS, Install, render_unit

CLI = Path(sys.executable).parent / "postfix-archiver"
ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTFIX_ARCHIVER_")}
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=60, env=env)


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    done = _cli("install", "--user", "mailarch", "--home", "/srv/mailarch", "--root", str(tmp_path))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "useradd --system --user-group --home-dir /srv/mailarch" in text
    assert "install -d -o mailarch -g mailarch -m 750 /srv/mailarch" in text
    assert "/etc/postfix-archiver/archiver.toml" in text
    assert "User=mailarch" in text
    assert "ReadWritePaths=/srv/mailarch" in text
    assert f"ExecStart={CLI.absolute()} serve" in text
    assert "postfix-config --config /etc/postfix-archiver/archiver.toml --apply" in text
    assert "doctor --config /etc/postfix-archiver/archiver.toml" in text
    assert list(tmp_path.iterdir()) == []  # a dry run touches nothing


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--user", "root; rm -rf /"], "--user"),
        (["--user", "-x"], "--user"),
        (["--user", "a" * 40], "--user"),
        (["--user", "\u0663archiver"], "--user"),
        (["--home", "relative/path"], "--home"),
        (["--home", "/var/lib/with space"], "--home"),
        (["--home", "/var/lib/%h"], "--home"),
        (["--home", "/var/lib/a\nExecStartPre=/bin/sh"], "--home"),
        (["--home", "/var/../etc"], "--home"),
        (["--home", "/" + "x" * 5000], "--home"),
    ],
)
def test_hostile_values_are_one_clear_line(args: list[str], fragment: str) -> None:
    done = _cli("install", *args)
    assert done.returncode == 1, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert fragment in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_the_units_in_contrib_are_the_rendered_ones() -> None:
    """contrib/systemd holds what ``install`` writes for the default paths."""
    plan = Install()
    for name, text in plan.units().items():
        assert (ROOT / "contrib" / "systemd" / name).read_text() == text, name


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        reason = "systemd-analyze is not installed (Debian package systemd)"
        if os.environ.get("REQUIRE_INTEGRATION") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    for name in UNITS:
        (tmp_path / name).write_text(
            render_unit(
                name,
                user="root",
                home=tmp_path,
                config=tmp_path / "a.toml",
                exe=str(CLI.absolute()),
            )
        )
    done = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "postfix-archiver" not in done.stderr, done.stderr  # no warning about our units


def test_apply_installs_for_real_and_again_changes_nothing(
    tmp_path: Path, throwaway_user: str
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    home = "/var/lib/pa-test"
    no_postfix = tmp_path / "etc-postfix"  # no main.cf: Postfix's side is skipped, said so
    args = ["install", "--user", throwaway_user, "--home", home, "--root", str(root), "--apply",
            "--config-dir", str(no_postfix)]  # fmt: skip
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    assert f"no Postfix configuration in {no_postfix}" in done.stdout
    assert "postfix-config --config /etc/postfix-archiver/archiver.toml --apply" in done.stdout
    assert f"created user {throwaway_user}" in done.stdout
    entry = pwd.getpwnam(throwaway_user)
    assert entry.pw_shell == "/usr/sbin/nologin"
    assert entry.pw_dir == home

    staged_home = root / "var/lib/pa-test"
    st = staged_home.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (entry.pw_uid, entry.pw_gid, 0o750)
    etc = root / "etc/postfix-archiver"
    st = etc.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, entry.pw_gid, 0o750)
    config = etc / "archiver.toml"
    st = config.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, entry.pw_gid, 0o640)
    # the config is valid as written, and names the home
    assert load_config(config).archive.home == Path(home)
    for name in UNITS:
        unit = (root / "etc/systemd/system" / name).read_text()
        assert f"User={throwaway_user}" in unit
        assert f"ExecStart={CLI.absolute()} " in unit
        assert stat.S_IMODE((root / "etc/systemd/system" / name).stat().st_mode) == 0o644

    # the operator edits the config and breaks a mode; a second run keeps the one, fixes the other
    config.write_text(config.read_text() + "\n# mine\n")
    os.chmod(staged_home, 0o777)
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"kept user {throwaway_user}" in again.stdout
    assert "kept " + str(config) in again.stdout
    assert config.read_text().endswith("# mine\n")
    assert stat.S_IMODE(staged_home.stat().st_mode) == 0o750
    assert "fixed owner/mode of " + str(staged_home) in again.stdout
    assert again.stdout.count("(unchanged)") == 2
    assert "systemctl daemon-reload" in again.stdout


def test_apply_into_a_root_that_cannot_take_the_files_leaves_no_user(
    tmp_path: Path, throwaway_user: str
) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for root in (tmp_path / "missing", Path("/proc/1")):
        done = _cli(
            "install", "--user", throwaway_user, "--root", str(root), "--apply", "--no-postfix"
        )
        assert done.returncode == 1, done
        assert "not a writable directory" in done.stderr
        assert "Traceback" not in done.stderr
    with pytest.raises(KeyError):
        pwd.getpwnam(throwaway_user)
