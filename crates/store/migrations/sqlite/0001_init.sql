-- leaktrace store, schema v1, SQLite dialect.
--
-- Must define the same tables, columns, constraints and indexes as
-- ../postgres/0001_init.sql (the test `schema_parity` compares the two).
-- Type mapping: INTEGER (SQLite, 64-bit) <-> BIGINT (PostgreSQL); TEXT <-> TEXT.
-- Timestamps are UTC unix seconds. Text keys compare bytewise (SQLite's
-- default BINARY collation, COLLATE "C" on PostgreSQL), so keyset pagination
-- returns the same order on both backends.
--
-- STRICT tables (SQLite >= 3.37) reject values of the wrong type, as
-- PostgreSQL does.
--
-- Reserved for later migrations (not created here): findings, jobs, notices.

CREATE TABLE titles (
    title_id            TEXT    NOT NULL PRIMARY KEY CHECK (length(title_id) > 0),
    name                TEXT    NOT NULL,
    segment_duration_ms INTEGER NOT NULL CHECK (segment_duration_ms > 0),
    position_count      INTEGER NOT NULL CHECK (position_count >= 0),
    key_version         INTEGER NOT NULL CHECK (key_version >= 0),
    created_at          INTEGER NOT NULL,
    reference_path      TEXT
) STRICT;

CREATE TABLE sessions (
    session_id  TEXT    NOT NULL PRIMARY KEY CHECK (length(session_id) > 0),
    title_id    TEXT    NOT NULL REFERENCES titles (title_id) ON DELETE RESTRICT,
    account_ref TEXT    NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    key_version INTEGER NOT NULL CHECK (key_version >= 0),
    created_at  INTEGER NOT NULL,
    CHECK (expires_at >= issued_at)
) STRICT;

-- Serves "all sessions of a title" and its keyset pagination
-- (WHERE title_id = ? AND session_id > ? ORDER BY session_id).
CREATE INDEX sessions_title_id_session_id ON sessions (title_id, session_id);
