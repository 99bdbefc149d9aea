-- leaktrace store, takedown tables, PostgreSQL dialect.
--
-- Same tables, columns, constraints and indexes as ../sqlite/0003_takedown.sql.
-- Findings (the crawler's table) are referenced by id only, without a foreign key.
-- Timestamps are UTC unix seconds.

-- One notice to one recipient about one finding. notice_id is derived from
-- (finding_id, level, recipient), so re-running a pipeline finds the same row.
-- delivery: pending_approval -> approved -> sending -> sent, or dry_run, failed,
-- in_doubt (a send was claimed but never recorded: a crash; never resent automatically).
-- disposition (ACNS NoticeStatus vocabulary): open, closed, rejected, counter_notice.
CREATE TABLE takedown_notices (
    notice_id         TEXT    COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(notice_id) > 0),
    finding_id        TEXT    NOT NULL,
    url               TEXT    NOT NULL,
    host              TEXT    NOT NULL,
    level             TEXT    NOT NULL CHECK (level IN ('site', 'host', 'cdn', 'registrar')),
    recipient         TEXT    NOT NULL,
    channel           TEXT    NOT NULL CHECK (channel IN ('email', 'http')),
    delivery          TEXT    NOT NULL CHECK (delivery IN ('pending_approval', 'approved', 'sending', 'sent', 'dry_run', 'failed', 'in_doubt')),
    disposition       TEXT    NOT NULL CHECK (disposition IN ('open', 'closed', 'rejected', 'counter_notice')),
    notice_json       TEXT    NOT NULL,
    found_at          BIGINT  NOT NULL,
    created_at        BIGINT  NOT NULL,
    approved_at       BIGINT ,
    approved_by       TEXT,
    sent_at           BIGINT ,
    message_id        TEXT,
    attempts          BIGINT  NOT NULL DEFAULT 0,
    last_error        TEXT,
    closed_at         BIGINT ,
    last_check_at     BIGINT ,
    last_check_status BIGINT ,
    next_check_at     BIGINT ,
    escalated_at      BIGINT 
);

CREATE INDEX takedown_notices_finding ON takedown_notices (finding_id);
CREATE INDEX takedown_notices_delivery ON takedown_notices (delivery);
CREATE INDEX takedown_notices_check ON takedown_notices (disposition, next_check_at);

-- Idempotency: a row is inserted (claimed) before a notice is handed to a
-- transport; the primary key makes the claim exclusive, and a claim without
-- sent_at after a crash means "maybe sent": the notice is never sent again.
CREATE TABLE takedown_outbox (
    idem_key   TEXT    COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(idem_key) > 0),
    notice_id  TEXT    NOT NULL REFERENCES takedown_notices (notice_id) ON DELETE CASCADE,
    recipient  TEXT    NOT NULL,
    claimed_at BIGINT  NOT NULL,
    claimed_by TEXT    NOT NULL,
    sent_at    BIGINT ,
    response   TEXT
);

CREATE INDEX takedown_outbox_recipient ON takedown_outbox (recipient, claimed_at);

-- RDAP answers (IP or domain), kept until expires_at.
CREATE TABLE takedown_rdap_cache (
    query      TEXT    COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(query) > 0),
    response   TEXT    NOT NULL,
    fetched_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL
);
