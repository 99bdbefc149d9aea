-- leaktrace store, schema v5 (findings: the 'no match' verdict), PostgreSQL dialect.
--
-- Must define the same columns and indexes as ../sqlite/0005_finding_no_match.sql.
--
-- A capture that detection finds is not a copy of its title (another film, no overlap in
-- time) is recorded with the verdict 'no match', so the crawl goes on and the page is not
-- analysed again for the same bytes.

ALTER TABLE findings DROP CONSTRAINT findings_verdict_check;
ALTER TABLE findings ADD CONSTRAINT findings_verdict_check
    CHECK (verdict IN ('accused', 'no accusation', 'error', 'no match'));
