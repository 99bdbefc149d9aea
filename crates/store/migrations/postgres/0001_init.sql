-- leaktrace store, schema v1, PostgreSQL dialect.
--
-- Must define the same tables, columns, constraints and indexes as
-- ../sqlite/0001_init.sql (the test `schema_parity` compares the two).
-- Type mapping: BIGINT (PostgreSQL) <-> INTEGER (SQLite, 64-bit); TEXT <-> TEXT.
-- Timestamps are UTC unix seconds. Key columns use COLLATE "C" (bytewise),
-- matching SQLite's BINARY collation, so keyset pagination returns the same
-- order on both backends whatever the database locale is.
--
-- Reserved for later migrations (not created here): findings, jobs, notices.

CREATE TABLE titles (
    title_id            TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(title_id) > 0),
    name                TEXT   NOT NULL,
    segment_duration_ms BIGINT NOT NULL CHECK (segment_duration_ms > 0),
    position_count      BIGINT NOT NULL CHECK (position_count >= 0),
    key_version         BIGINT NOT NULL CHECK (key_version >= 0),
    created_at          BIGINT NOT NULL,
    reference_path      TEXT
);

CREATE TABLE sessions (
    session_id  TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(session_id) > 0),
    title_id    TEXT COLLATE "C" NOT NULL REFERENCES titles (title_id) ON DELETE RESTRICT,
    account_ref TEXT   NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    key_version BIGINT NOT NULL CHECK (key_version >= 0),
    created_at  BIGINT NOT NULL,
    CHECK (expires_at >= issued_at)
);

-- Serves "all sessions of a title" and its keyset pagination
-- (WHERE title_id = $1 AND session_id > $2 ORDER BY session_id).
CREATE INDEX sessions_title_id_session_id ON sessions (title_id, session_id);
