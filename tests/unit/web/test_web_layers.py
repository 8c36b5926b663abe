"""The web is protocol code: it reaches storage only through the archive and the accounts."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import postfix_archiver.web

WEB = Path(postfix_archiver.web.__file__).parent
SOURCES = sorted(WEB.glob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_web_holds_no_sql_and_opens_no_database() -> None:
    assert SOURCES
    for path in SOURCES:
        assert not imported(path) & {"sqlite3", "psycopg", "os", "shutil"}, path
        text = path.read_text()
        assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE)\s+\w", text), path


def test_the_web_goes_through_archive_methods_not_its_catalog() -> None:
    for path in SOURCES:
        assert ".catalog." not in path.read_text(), path
