-- leaktrace store, schema v6 (session revocation), PostgreSQL dialect.
--
-- Must define the same tables, columns, constraints and indexes as
-- ../sqlite/0006_revocations.sql.
--
-- revocation_events is the audit trail: who revoked or restored which session, when and why.
-- It is append-only (the trigger refuses UPDATE and DELETE), and `seq` orders it, so an edge
-- can follow it incrementally (with a look-back on `at`, since identity values may commit out
-- of order). revoked_sessions holds the current state (one row per revoked session, with the
-- seq of the event that revoked it); its primary key makes a second revocation of the same
-- session fail rather than be recorded twice.

CREATE TABLE revocation_events (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions (session_id) ON DELETE RESTRICT,
    action     TEXT   NOT NULL CHECK (action IN ('revoke', 'restore')),
    actor      TEXT   NOT NULL CHECK (length(actor) > 0),
    reason     TEXT   NOT NULL,
    at         BIGINT NOT NULL
);

-- Serves a session's history, and the edge's incremental read with its look-back on time.
CREATE INDEX revocation_events_session_id ON revocation_events (session_id, seq);
CREATE INDEX revocation_events_at ON revocation_events (at);

CREATE TABLE revoked_sessions (
    session_id TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES sessions (session_id) ON DELETE RESTRICT,
    seq        BIGINT NOT NULL CHECK (seq > 0),
    at         BIGINT NOT NULL
);

-- Serves "the revoked sessions of an account" (sessions.account_ref).
CREATE INDEX sessions_account_ref ON sessions (account_ref);

CREATE FUNCTION revocation_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'revocation_events is append-only';
END
$$;

CREATE TRIGGER revocation_events_append_only BEFORE UPDATE OR DELETE ON revocation_events
    FOR EACH ROW EXECUTE FUNCTION revocation_events_append_only();
