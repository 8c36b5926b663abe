"""The accounts' PostgreSQL schema: versioned steps, applied in order in one transaction.

Everything lives in the PostgreSQL schema ``accounts``, so the accounts can share a database
with the catalog (whose tables and ``schema_version`` are in ``public``) without a clash.
``accounts.schema_version`` counts the steps applied: append a step, never edit or renumber
one. The tables are SQLite's (``sqlite_schema``): names are unique ignoring ASCII case (a
unique index on ``lower(name)``; names are ASCII, see ``checks``), and times compare as
text under the "C" collation, byte by byte, as SQLite compares them.

The audit table is append-only as on SQLite: no code updates or deletes it, a trigger makes
PostgreSQL refuse any UPDATE, DELETE or TRUNCATE of it (an ``INSERT ... ON CONFLICT DO
UPDATE`` is an UPDATE), and each entry's hash covers the one before.
"""

from __future__ import annotations

SCHEMA = "accounts"

MIGRATIONS: list[str] = [
    # 1: SQLite's steps 1 and 2
    """
    CREATE TABLE accounts.users (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'auditor', 'user')),
        password_hash TEXT NOT NULL,
        addresses TEXT NOT NULL DEFAULT '[]',
        created TEXT NOT NULL,
        last_login TEXT
    );
    CREATE UNIQUE INDEX users_name ON accounts.users (lower(name));
    CREATE TABLE accounts.tokens (
        id BIGSERIAL PRIMARY KEY,
        "user" BIGINT NOT NULL REFERENCES accounts.users(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE INDEX tokens_user ON accounts.tokens ("user");
    CREATE TABLE accounts.sessions (
        sha256 TEXT PRIMARY KEY,
        "user" BIGINT NOT NULL REFERENCES accounts.users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        client TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX sessions_user ON accounts.sessions ("user");
    CREATE INDEX sessions_expires ON accounts.sessions (expires);
    CREATE TABLE accounts.audit (
        id BIGINT PRIMARY KEY,
        time TEXT COLLATE "C" NOT NULL,
        "user" TEXT NOT NULL,
        client TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE
    );
    CREATE INDEX audit_user ON accounts.audit ("user", id);
    CREATE INDEX audit_action ON accounts.audit (action, id);
    CREATE FUNCTION accounts.audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
    END
    $$;
    CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON accounts.audit
    FOR EACH STATEMENT EXECUTE FUNCTION accounts.audit_append_only();
    """,
]
