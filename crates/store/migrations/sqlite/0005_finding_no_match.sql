-- leaktrace store, schema v5 (findings: the 'no match' verdict), SQLite dialect.
--
-- Must define the same columns and indexes as ../postgres/0005_finding_no_match.sql.
--
-- A capture that detection finds is not a copy of its title (another film, no overlap in
-- time) is recorded with the verdict 'no match', so the crawl goes on and the page is not
-- analysed again for the same bytes. SQLite cannot change a CHECK constraint in place: the
-- table is rebuilt with the same columns, rows and indexes (no foreign key refers to it).

CREATE TABLE findings_v5 (
    finding_id     TEXT    NOT NULL PRIMARY KEY CHECK (length(finding_id) > 0),
    media_url      TEXT    NOT NULL,
    page_url       TEXT,
    redirect_chain TEXT    NOT NULL,
    resolved_ip    TEXT,
    kind           TEXT    NOT NULL CHECK (kind IN ('direct', 'hls')),
    file_name      TEXT    NOT NULL,
    content_type   TEXT,
    byte_len       INTEGER NOT NULL CHECK (byte_len >= 0),
    blake3         TEXT    NOT NULL CHECK (length(blake3) = 64),
    sha256         TEXT    NOT NULL CHECK (length(sha256) = 64),
    capture_path   TEXT    NOT NULL,
    title_id       TEXT,
    title_score    INTEGER NOT NULL,
    verdict        TEXT    NOT NULL CHECK (verdict IN ('accused', 'no accusation', 'error', 'no match')),
    accused        TEXT    NOT NULL,
    report         TEXT    NOT NULL,
    capture_started_at  INTEGER NOT NULL,
    capture_finished_at INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    redirect_statuses TEXT NOT NULL DEFAULT '[]'
) STRICT;

INSERT INTO findings_v5 (
    finding_id, media_url, page_url, redirect_chain, resolved_ip, kind, file_name, content_type,
    byte_len, blake3, sha256, capture_path, title_id, title_score, verdict, accused, report,
    capture_started_at, capture_finished_at, created_at, redirect_statuses
)
SELECT
    finding_id, media_url, page_url, redirect_chain, resolved_ip, kind, file_name, content_type,
    byte_len, blake3, sha256, capture_path, title_id, title_score, verdict, accused, report,
    capture_started_at, capture_finished_at, created_at, redirect_statuses
FROM findings;

DROP TABLE findings;
ALTER TABLE findings_v5 RENAME TO findings;

CREATE UNIQUE INDEX findings_media_url_sha256 ON findings (media_url, sha256);
CREATE INDEX findings_sha256 ON findings (sha256);
CREATE INDEX findings_created_at ON findings (created_at, finding_id);
