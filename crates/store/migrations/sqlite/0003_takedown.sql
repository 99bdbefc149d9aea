-- leaktrace store, takedown tables, SQLite dialect.
--
-- Same tables, columns, constraints and indexes as ../postgres/0003_takedown.sql.
-- Findings (the crawler's table) are referenced by id only, without a foreign key.
-- Timestamps are UTC unix seconds.

-- One notice to one recipient about one finding. notice_id is derived from
-- (finding_id, level, recipient), so re-running a pipeline finds the same row.
-- delivery: pending_approval -> approved -> sending -> sent, or dry_run, failed,
-- in_doubt (a send was claimed but never recorded: a crash; never resent automatically).
-- disposition (ACNS NoticeStatus vocabulary): open, closed, rejected, counter_notice.
CREATE TABLE takedown_notices (
    notice_id         TEXT    NOT NULL PRIMARY KEY CHECK (length(notice_id) > 0),
    finding_id        TEXT    NOT NULL,
    url               TEXT    NOT NULL,
    host              TEXT    NOT NULL,
    level             TEXT    NOT NULL CHECK (level IN ('site', 'host', 'cdn', 'registrar')),
    recipient         TEXT    NOT NULL,
    channel           TEXT    NOT NULL CHECK (channel IN ('email', 'http')),
    delivery          TEXT    NOT NULL CHECK (delivery IN ('pending_approval', 'approved', 'sending', 'sent', 'dry_run', 'failed', 'in_doubt')),
    disposition       TEXT    NOT NULL CHECK (disposition IN ('open', 'closed', 'rejected', 'counter_notice')),
    notice_json       TEXT    NOT NULL,
    found_at          INTEGER NOT NULL,
    created_at        INTEGER NOT NULL,
    approved_at       INTEGER,
    approved_by       TEXT,
    sent_at           INTEGER,
    message_id        TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    closed_at         INTEGER,
    last_check_at     INTEGER,
    last_check_status INTEGER,
    next_check_at     INTEGER,
    escalated_at      INTEGER
) STRICT;

CREATE INDEX takedown_notices_finding ON takedown_notices (finding_id);
CREATE INDEX takedown_notices_delivery ON takedown_notices (delivery);
CREATE INDEX takedown_notices_check ON takedown_notices (disposition, next_check_at);

-- Idempotency: a row is inserted (claimed) before a notice is handed to a
-- transport; the primary key makes the claim exclusive, and a claim without
-- sent_at after a crash means "maybe sent": the notice is never sent again.
CREATE TABLE takedown_outbox (
    idem_key   TEXT    NOT NULL PRIMARY KEY CHECK (length(idem_key) > 0),
    notice_id  TEXT    NOT NULL REFERENCES takedown_notices (notice_id) ON DELETE CASCADE,
    recipient  TEXT    NOT NULL,
    claimed_at INTEGER NOT NULL,
    claimed_by TEXT    NOT NULL,
    sent_at    INTEGER,
    response   TEXT
) STRICT;

CREATE INDEX takedown_outbox_recipient ON takedown_outbox (recipient, claimed_at);

-- RDAP answers (IP or domain), kept until expires_at.
CREATE TABLE takedown_rdap_cache (
    query      TEXT    NOT NULL PRIMARY KEY CHECK (length(query) > 0),
    response   TEXT    NOT NULL,
    fetched_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
