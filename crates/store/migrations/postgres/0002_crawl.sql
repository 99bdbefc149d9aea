-- leaktrace store, schema v2 (crawler), PostgreSQL dialect.
--
-- Must define the same tables, columns, constraints and indexes as
-- ../sqlite/0002_crawl.sql. Timestamps are UTC unix seconds.
--
-- crawl_jobs is the frontier: one row per canonical URL, ever. A worker claims
-- rows by setting state = 'leased' with a lease deadline; a lease that runs out
-- (the worker died) makes the row claimable again. Failures go back to
-- 'queued' with a later not_before (exponential backoff) until max attempts,
-- then 'dead' (the dead-letter state). 'skipped' rows are recorded but never
-- fetched: magnet links, URLs robots.txt forbids, URLs the trap limits refuse.
-- generation: the crawl run that last queued the row; a later run re-queues
-- finished pages (a re-crawl) but never a row it already queued.

CREATE TABLE crawl_jobs (
    url         TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(url) > 0),
    kind        TEXT    NOT NULL CHECK (kind IN ('page', 'media', 'playlist', 'magnet')),
    depth       BIGINT  NOT NULL CHECK (depth >= 0),
    referrer    TEXT,
    title_hint  TEXT,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'leased', 'done', 'dead', 'skipped')),
    attempts    BIGINT  NOT NULL CHECK (attempts >= 0),
    not_before  BIGINT  NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT ,
    last_error  TEXT,
    generation  BIGINT  NOT NULL CHECK (generation >= 0),
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

-- Serves the claim query (state = 'queued' AND not_before <= now, expired leases).
CREATE INDEX crawl_jobs_state_not_before ON crawl_jobs (state, not_before);

-- One row per (location, content): what a takedown notice needs.
CREATE TABLE findings (
    finding_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(finding_id) > 0),
    media_url      TEXT    NOT NULL,
    page_url       TEXT,
    redirect_chain TEXT    NOT NULL,
    resolved_ip    TEXT,
    kind           TEXT    NOT NULL CHECK (kind IN ('direct', 'hls')),
    file_name      TEXT    NOT NULL,
    content_type   TEXT,
    byte_len       BIGINT  NOT NULL CHECK (byte_len >= 0),
    blake3         TEXT    NOT NULL CHECK (length(blake3) = 64),
    sha256         TEXT    NOT NULL CHECK (length(sha256) = 64),
    capture_path   TEXT    NOT NULL,
    title_id       TEXT COLLATE "C",
    title_score    BIGINT  NOT NULL,
    verdict        TEXT    NOT NULL CHECK (verdict IN ('accused', 'no accusation', 'error')),
    accused        TEXT    NOT NULL,
    report         TEXT    NOT NULL,
    capture_started_at  BIGINT  NOT NULL,
    capture_finished_at BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL
);

-- One finding per (location, content): the target of ON CONFLICT in insert_finding.
CREATE UNIQUE INDEX findings_media_url_sha256 ON findings (media_url, sha256);
CREATE INDEX findings_sha256 ON findings (sha256);
CREATE INDEX findings_created_at ON findings (created_at, finding_id);
