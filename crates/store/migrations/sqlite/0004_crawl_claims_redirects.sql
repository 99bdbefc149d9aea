-- leaktrace store, schema v4 (crawler: claim order, redirect statuses), SQLite dialect.
--
-- Must define the same columns and indexes as ../postgres/0004_crawl_claims_redirects.sql.
--
-- The claim takes the due queued rows shallowest first (ORDER BY depth, not_before LIMIT n).
-- With an index on (state, not_before) every claim sorted all queued rows (a 100 000-URL
-- frontier cost milliseconds per claim); (state, depth, not_before) yields them in claim order,
-- so a claim reads about n index entries. It also serves the sweep of expired leases
-- (state = 'leased'), so the old index goes.

DROP INDEX crawl_jobs_state_not_before;
CREATE INDEX crawl_jobs_claim ON crawl_jobs (state, depth, not_before);

-- The HTTP status of each request of a finding's redirect chain, in chain order, as a JSON
-- array of integers (e.g. [301, 302, 200]); '[]' for findings recorded before this column.
ALTER TABLE findings ADD COLUMN redirect_statuses TEXT NOT NULL DEFAULT '[]';
