-- leaktrace store, schema v4 (crawler claim order), PostgreSQL dialect.
--
-- Must define the same indexes as ../sqlite/0004_crawl_claim_index.sql.
--
-- The claim takes the due queued rows shallowest first (ORDER BY depth, not_before LIMIT n).
-- With an index on (state, not_before) every claim sorted all queued rows (a 100 000-URL
-- frontier cost milliseconds per claim); (state, depth, not_before) yields them in claim order,
-- so a claim reads about n index entries. It also serves the sweep of expired leases
-- (state = 'leased'), so the old index goes.

DROP INDEX crawl_jobs_state_not_before;
CREATE INDEX crawl_jobs_claim ON crawl_jobs (state, depth, not_before);
