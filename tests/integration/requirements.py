"""Skip-or-fail for integration tests that need a real server, binary or privilege.

On a developer machine an integration test whose server is missing skips and says why. In CI
(`REQUIRE_INTEGRATION=1`, exported by `.ci/run` after it installed everything) the same absence
fails the test instead: there a skip would only hide a broken setup.

The functions work inside a test, inside a fixture and at module level (they pass
`allow_module_level=True`), so a module can guard all of its tests with one call.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import pytest

REQUIRE_ENV = "REQUIRE_INTEGRATION"


def integration_required() -> bool:
    """True when missing integration prerequisites must fail rather than skip."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def unavailable(reason: str) -> NoReturn:
    """Skip the current test (or module) with `reason`, or fail it under REQUIRE_INTEGRATION."""
    if integration_required():
        pytest.fail(
            f"{reason} ({REQUIRE_ENV}=1 is set, so a missing prerequisite is an error; "
            "run .ci/run or install it)",
            pytrace=False,
        )
    pytest.skip(reason, allow_module_level=True)


def require_binary(path: str | os.PathLike[str], what: str) -> Path:
    """Return `path` if it is an executable file; otherwise skip or fail naming `what`.

    `path` may be absolute or a bare command name looked up on PATH.
    """
    text = os.fspath(path)
    found = text if os.sep in text else shutil.which(text)
    if found is None or not (os.path.isfile(found) and os.access(found, os.X_OK)):
        unavailable(f"{what} is not installed ({text} not found or not executable)")
    return Path(found)


def require_any_binary(paths: Iterable[str | os.PathLike[str]], what: str) -> Path:
    """Return the first executable among `paths` (e.g. chromium vs chromium-browser)."""
    candidates = [os.fspath(p) for p in paths]
    for text in candidates:
        found = text if os.sep in text else shutil.which(text)
        if found is not None and os.path.isfile(found) and os.access(found, os.X_OK):
            return Path(found)
    unavailable(f"{what} is not installed (none of {', '.join(candidates)} found)")


def require_root(what: str) -> None:
    """Skip or fail unless running as root (e.g. to start a private Postfix instance)."""
    if os.geteuid() != 0:
        unavailable(f"{what} needs root privileges (running as uid {os.geteuid()})")
