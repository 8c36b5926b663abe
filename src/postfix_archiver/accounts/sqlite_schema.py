"""The accounts' SQLite schema, one migration a step (``PRAGMA user_version`` counts them).

The audit table is append-only three times over: no code updates or deletes it, triggers make
SQLite refuse any UPDATE or DELETE of a row (and an INSERT that would replace one), and each
entry's hash covers the previous one, so a row edited or removed with the triggers dropped
breaks the chain.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'user')),
        password_hash TEXT NOT NULL,
        addresses TEXT NOT NULL DEFAULT '[]',
        created TEXT NOT NULL
    );
    CREATE TABLE tokens (
        id INTEGER PRIMARY KEY,
        user INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE sessions (
        sha256 TEXT PRIMARY KEY,
        user INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        client TEXT NOT NULL,
        created REAL NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        user TEXT NOT NULL,
        client TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    );
    CREATE INDEX audit_user ON audit(user, id);
    CREATE INDEX audit_action ON audit(action, id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE refused'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE refused'); END;
    CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit
    WHEN EXISTS (SELECT 1 FROM audit WHERE id = NEW.id OR hash = NEW.hash)
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: REPLACE refused'); END;
    """,
    # 2: when each user last logged in (NULL: never, or before this column existed)
    """
    ALTER TABLE users ADD COLUMN last_login TEXT;
    """,
]
