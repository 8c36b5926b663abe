"""The PostgreSQL catalog's schema: versioned steps, applied in order, each in one transaction.

The tables are the SQLite catalog's (``catalog/sqlite.py``), typed for PostgreSQL; the
full-text index is a ``tsvector`` per message with a GIN index (``postgresql_text``). Append a
step, never edit or renumber one: ``schema_version`` counts the steps applied.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the schema of SQLite's steps 1 to 7 as they stand. Ids are given by the catalog (the
    # next after every id ever used, events included: a removed message's id is never
    # reused), not by a sequence. sha256 is UNIQUE: two writers adding the same bytes at once
    # get one row (INSERT ... ON CONFLICT).
    """
    CREATE TABLE messages (
        id BIGINT PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        size BIGINT NOT NULL,
        stored_size BIGINT NOT NULL,
        date BIGINT NOT NULL,
        received BIGINT NOT NULL,
        message_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        from_text TEXT NOT NULL,
        to_text TEXT NOT NULL,
        cc_text TEXT NOT NULL,
        attachment_count INTEGER NOT NULL,
        defects TEXT NOT NULL,
        retain_until BIGINT,
        indexed_with TEXT,
        thread TEXT
    );
    CREATE INDEX messages_date ON messages(date DESC, id DESC);
    CREATE INDEX messages_message_id ON messages(message_id);
    CREATE INDEX messages_size ON messages(size);
    CREATE INDEX messages_retain_until ON messages(retain_until);
    CREATE INDEX messages_thread ON messages(thread, date, id);
    CREATE TABLE addresses (
        message BIGINT NOT NULL REFERENCES messages(id),
        kind TEXT NOT NULL,
        address TEXT NOT NULL,
        name TEXT NOT NULL,
        UNIQUE (message, kind, address)
    );
    CREATE INDEX addresses_address ON addresses(address, kind);
    CREATE TABLE envelopes (
        id BIGINT PRIMARY KEY,
        message BIGINT NOT NULL REFERENCES messages(id),
        env_key TEXT NOT NULL,
        sender TEXT NOT NULL,
        queue_id TEXT,
        client_address TEXT,
        client_name TEXT,
        helo TEXT,
        received TEXT NOT NULL,
        source TEXT NOT NULL,
        retention TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        UNIQUE (message, env_key)
    );
    CREATE TABLE envelope_recipients (
        envelope BIGINT NOT NULL REFERENCES envelopes(id),
        position INTEGER NOT NULL,
        address TEXT NOT NULL,
        PRIMARY KEY (envelope, position)
    );
    CREATE TABLE attachments (
        message BIGINT NOT NULL REFERENCES messages(id),
        position INTEGER NOT NULL,
        filename TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (message, position)
    );
    CREATE INDEX attachments_filename ON attachments(filename);
    CREATE INDEX attachments_sha256 ON attachments(sha256);
    CREATE TABLE parts (
        sha256 TEXT PRIMARY KEY,
        stored_size BIGINT NOT NULL
    );
    CREATE TABLE message_parts (
        message BIGINT NOT NULL REFERENCES messages(id),
        sha256 TEXT NOT NULL REFERENCES parts(sha256),
        PRIMARY KEY (message, sha256)
    );
    CREATE INDEX message_parts_sha256 ON message_parts(sha256);
    CREATE TABLE events (
        seq BIGINT PRIMARY KEY,
        message BIGINT NOT NULL,
        envelope BIGINT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        tombstone TEXT
    );
    CREATE INDEX events_message ON events(message);
    CREATE INDEX events_envelope ON events(envelope);
    CREATE TABLE holds (
        id BIGSERIAL PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        query TEXT NOT NULL,
        reason TEXT NOT NULL,
        created_by TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        released_by TEXT,
        released_at BIGINT
    );
    CREATE TABLE message_holds (
        hold BIGINT NOT NULL REFERENCES holds(id),
        message BIGINT NOT NULL REFERENCES messages(id),
        PRIMARY KEY (hold, message)
    );
    CREATE INDEX message_holds_message ON message_holds(message);
    CREATE TABLE removed_blobs (
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (kind, sha256)
    );
    CREATE TABLE deleted_blobs (
        seq BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL
    );
    CREATE INDEX deleted_blobs_sha256 ON deleted_blobs(sha256);
    CREATE TABLE index_queue (
        message BIGINT PRIMARY KEY,
        queued_at BIGINT NOT NULL
    );
    CREATE INDEX index_queue_age ON index_queue(queued_at, message);
    CREATE TABLE extracts (
        sha256 TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        status TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE fts (
        message BIGINT PRIMARY KEY,
        doc TSVECTOR NOT NULL
    );
    CREATE INDEX fts_doc ON fts USING GIN (doc);
    CREATE TABLE imports (
        id BIGSERIAL PRIMARY KEY,
        source TEXT NOT NULL,
        started BIGINT NOT NULL,
        finished BIGINT
    );
    CREATE TABLE envelope_imports (
        envelope BIGINT PRIMARY KEY,
        import BIGINT NOT NULL REFERENCES imports(id),
        origin TEXT NOT NULL
    )
    """,
    # 2: where a resumable import stopped (SQLite's step 9)
    """
    CREATE TABLE import_cursors (
        source TEXT PRIMARY KEY,
        cursor TEXT NOT NULL
    )
    """,
    # 3: which host's indexer took a queued message, until when (``queued(claim=True)``):
    # several ``serve`` processes on one catalog index different messages, not the same
    # ones twice; a claim that runs out (its host died) is anyone's again
    """
    ALTER TABLE index_queue ADD COLUMN claimed_by TEXT, ADD COLUMN claimed_until BIGINT
    """,
    # 4: each field's tokens in a column of its own, indexed: ``subject:word`` matched with
    # a weight in ``doc`` was checked again in every document holding the word anywhere (GIN
    # keeps no weights): made by PostgreSQL from ``doc``, so nothing is indexed again
    """
    ALTER TABLE fts
        ADD COLUMN subject_doc TSVECTOR GENERATED ALWAYS AS (ts_filter(doc, '{a}')) STORED,
        ADD COLUMN attachment_doc TSVECTOR GENERATED ALWAYS AS (ts_filter(doc, '{b}')) STORED;
    CREATE INDEX fts_subject_doc ON fts USING GIN (subject_doc);
    CREATE INDEX fts_attachment_doc ON fts USING GIN (attachment_doc)
    """,
]
