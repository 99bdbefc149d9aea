//! Crawler configuration (TOML). See `docs/examples/crawler.toml` for a
//! commented example; every field except `sources` and `catalogue` has a default.

use std::path::PathBuf;

use serde::Deserialize;

use crate::CrawlError;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to start.
    #[serde(default)]
    pub sources: Sources,
    /// The protected titles looked for.
    #[serde(default)]
    pub catalogue: Vec<CatalogueTitle>,
    /// When `crawl --schedule` runs.
    #[serde(default)]
    pub schedule: Schedule,
    /// Politeness towards the sites crawled.
    #[serde(default)]
    pub politeness: Politeness,
    /// Size, time and trap limits.
    #[serde(default)]
    pub limits: Limits,
    /// Fetching and capture.
    #[serde(default)]
    pub fetch: FetchConfig,
    /// Detection of captured copies.
    #[serde(default)]
    pub detect: DetectConfig,
    /// Revoking the sessions a finding accuses.
    #[serde(default)]
    pub revocation: RevocationConfig,
}

/// What happens to a session a finding accuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RevocationPolicy {
    /// Nothing (default).
    #[default]
    Off,
    /// The finding's report names the sessions that clear the threshold; an operator
    /// revokes them (`leaktrace session revoke`).
    Review,
    /// Sessions that clear the threshold are revoked as soon as the finding is made.
    Auto,
}

impl RevocationPolicy {
    /// The name used in the configuration and the reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationPolicy::Off => "off",
            RevocationPolicy::Review => "review",
            RevocationPolicy::Auto => "auto",
        }
    }
}

/// `[revocation]`: revoking accused sessions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationConfig {
    /// `off`, `review` or `auto`.
    #[serde(default)]
    pub policy: RevocationPolicy,
    /// An accused session is revoked (or proposed) only when its false-accusation probability
    /// over the registry is at most this (1e-15 to `detect.fp`; default 1e-9, stricter than the
    /// takedown gate).
    #[serde(default = "d_revocation_fp")]
    pub fp: f64,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            policy: RevocationPolicy::Off,
            fp: d_revocation_fp(),
        }
    }
}

fn d_revocation_fp() -> f64 {
    1e-9
}

/// Where crawling starts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sources {
    /// Seed pages (depth 0).
    #[serde(default)]
    pub seeds: Vec<String>,
    /// Search URL templates; `{title}` is replaced by each catalogue name and alias (URL-encoded).
    #[serde(default)]
    pub search_templates: Vec<String>,
    /// Sitemaps (`<loc>` entries become pages).
    #[serde(default)]
    pub sitemaps: Vec<String>,
    /// RSS/Atom feeds (`<link>` entries become pages).
    #[serde(default)]
    pub feeds: Vec<String>,
}

/// A protected title.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogueTitle {
    /// The title id in the store (what detect analyses against).
    pub title_id: String,
    /// Names it is published under.
    pub names: Vec<String>,
    /// Other names (translations, abbreviations).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Release year, if any (raises the score when present, lowers it when another year is).
    #[serde(default)]
    pub year: Option<u16>,
    /// The reference index directory (else the title's `reference_path` in the store).
    #[serde(default)]
    pub reference: Option<PathBuf>,
}

/// `crawl --schedule`: a cron expression, else an interval between run starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Seconds between the starts of two runs (60 to 604 800); the first run starts at once.
    /// Ignored when `cron` is set.
    #[serde(default = "d_interval")]
    pub interval_secs: u64,
    /// A cron expression in UTC with 5 fields (minute, hour, day of month, month, day of
    /// week; names, ranges, steps, lists, `L`, `#`, `W`) or a nickname (`@hourly`,
    /// `@daily`, `@weekly`, `@monthly`, `@yearly`): runs start at the times it matches
    /// (a start that falls while a run is still going is skipped).
    #[serde(default)]
    pub cron: Option<String>,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            interval_secs: d_interval(),
            cron: None,
        }
    }
}

fn parse_cron(expr: &str) -> Result<croner::Cron, CrawlError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| {
            CrawlError::Config(format!(
                "schedule.cron `{expr}`: {e} (expected 5 fields, minute hour day-of-month \
                 month day-of-week, e.g. \"0 */6 * * *\", or @hourly/@daily/@weekly/@monthly)"
            ))
        })
}

impl Schedule {
    /// When the next run starts (UTC unix seconds), given that the previous one started at
    /// `started` and it is now `now`: the first cron match after `now`, or `started +
    /// interval_secs`.
    pub fn next_start(&self, started: i64, now: i64) -> Result<i64, CrawlError> {
        let Some(expr) = &self.cron else {
            let step = i64::try_from(self.interval_secs).unwrap_or(i64::MAX);
            return Ok(started.saturating_add(step));
        };
        let cron = parse_cron(expr)?;
        let t = chrono::DateTime::<chrono::Utc>::from_timestamp(now, 0)
            .ok_or_else(|| CrawlError::Config(format!("time {now} out of range")))?;
        let next = cron
            .find_next_occurrence(&t, false)
            .map_err(|e| CrawlError::Config(format!("schedule.cron `{expr}`: {e}")))?;
        Ok(next.timestamp())
    }
}

/// Politeness.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Politeness {
    /// Obey robots.txt (RFC 9309). Default true.
    #[serde(default = "d_true")]
    pub respect_robots: bool,
    /// Minimum delay between two requests to one host, milliseconds (a robots.txt
    /// Crawl-delay above it wins, capped by `max_crawl_delay_ms`). 0 = politeness off.
    #[serde(default = "d_delay")]
    pub min_delay_ms: u64,
    /// Largest Crawl-delay honoured, milliseconds.
    #[serde(default = "d_max_delay")]
    pub max_crawl_delay_ms: u64,
    /// User-Agent header; its leading name (`a-zA-Z_-`) is the robots.txt product token.
    #[serde(default = "d_agent")]
    pub user_agent: String,
    /// How long a robots.txt is kept, seconds (1 to 86 400; RFC 9309 says at most 24 h).
    /// An unreachable one (5xx, network error: everything disallowed) is retried after at
    /// most 300 s.
    #[serde(default = "d_robots_cache")]
    pub robots_cache_secs: u64,
}

impl Default for Politeness {
    fn default() -> Self {
        Politeness {
            respect_robots: true,
            min_delay_ms: d_delay(),
            max_crawl_delay_ms: d_max_delay(),
            user_agent: d_agent(),
            robots_cache_secs: d_robots_cache(),
        }
    }
}

/// Size, time and trap limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Link depth from a seed (pagination links do not add depth).
    #[serde(default = "d_depth")]
    pub max_depth: u32,
    /// Longest URL, bytes.
    #[serde(default = "d_url_len")]
    pub max_url_len: usize,
    /// Most path segments.
    #[serde(default = "d_segments")]
    pub max_path_segments: usize,
    /// Most repetitions of one path segment (`/a/b/a/b/a/…` traps).
    #[serde(default = "d_repeat")]
    pub max_repeated_segment: usize,
    /// Most query parameters.
    #[serde(default = "d_params")]
    pub max_query_params: usize,
    /// Largest page (HTML, playlist, robots.txt) read, bytes after decompression; the rest is dropped.
    #[serde(default = "d_page_bytes")]
    pub max_page_bytes: u64,
    /// Largest capture (file or HLS stream), bytes after decompression.
    #[serde(default = "d_media_bytes")]
    pub max_media_bytes: u64,
    /// Most HLS segments captured per stream.
    #[serde(default = "d_hls_segments")]
    pub max_hls_segments: u32,
    /// Longest capture, seconds (file or stream, including live-playlist polling).
    #[serde(default = "d_capture_secs")]
    pub max_capture_secs: u64,
    /// Longest single page request, seconds (connect + headers + body).
    #[serde(default = "d_request_secs")]
    pub request_timeout_secs: u64,
    /// Most redirect hops followed.
    #[serde(default = "d_redirects")]
    pub max_redirects: u32,
    /// Most links taken from one page.
    #[serde(default = "d_links")]
    pub max_links_per_page: usize,
    /// Crawl budget: most pages followed along one pagination chain ("Next", `rel=next`, which
    /// add no depth), counted from the first page of the chain (0 to 10 000; 0: pagination
    /// is not followed). Endless listings, calendars and archives stop here.
    #[serde(default = "d_pagination")]
    pub max_pagination: u32,
    /// Crawl budget: most pages queued per host (name and port) in one crawl run, by one
    /// worker (at least 1). Seeds are not counted.
    #[serde(default = "d_pages_per_host")]
    pub max_pages_per_host: u64,
    /// Crawl budget: most pages queued in one crawl run, all hosts together, by one worker
    /// (at least 1). Seeds are not counted.
    #[serde(default = "d_pages_per_run")]
    pub max_pages_per_run: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: d_depth(),
            max_url_len: d_url_len(),
            max_path_segments: d_segments(),
            max_repeated_segment: d_repeat(),
            max_query_params: d_params(),
            max_page_bytes: d_page_bytes(),
            max_media_bytes: d_media_bytes(),
            max_hls_segments: d_hls_segments(),
            max_capture_secs: d_capture_secs(),
            request_timeout_secs: d_request_secs(),
            max_redirects: d_redirects(),
            max_links_per_page: d_links(),
            max_pagination: d_pagination(),
            max_pages_per_host: d_pages_per_host(),
            max_pages_per_run: d_pages_per_run(),
        }
    }
}

/// Fetching, workers and capture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// Allow loopback addresses (127/8, ::1). Off by default; for local tests only.
    #[serde(default)]
    pub allow_loopback: bool,
    /// Jobs processed at once per worker (1 to 256).
    #[serde(default = "d_concurrency")]
    pub concurrency: usize,
    /// Seconds a claimed job stays leased (a crashed worker's jobs return after this).
    #[serde(default = "d_lease")]
    pub lease_secs: u32,
    /// Attempts before a job is dead-lettered.
    #[serde(default = "d_attempts")]
    pub max_attempts: u32,
    /// First retry backoff, seconds (doubles per attempt).
    #[serde(default = "d_backoff")]
    pub backoff_secs: u32,
    /// Directory for captured copies (created if missing).
    #[serde(default = "d_capture_dir")]
    pub capture_dir: PathBuf,
    /// Minimum title match score (0 to 100) for a page's media to be captured.
    #[serde(default = "d_threshold")]
    pub title_threshold: u32,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            allow_loopback: false,
            concurrency: d_concurrency(),
            lease_secs: d_lease(),
            max_attempts: d_attempts(),
            backoff_secs: d_backoff(),
            capture_dir: d_capture_dir(),
            title_threshold: d_threshold(),
        }
    }
}

/// Detection of captures.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// False-accusation probability over all sessions of a title (1e-12 to 0.1).
    #[serde(default = "d_fp")]
    pub fp: f64,
    /// Offset search window, seconds (0 to 3600).
    #[serde(default = "d_offset")]
    pub max_offset_s: f64,
    /// The detection key set (`leaktrace key export`, mode 0600), relative to the directory
    /// of `leaktrace.toml` (as `fetch.capture_dir`): the per-title keys detection needs, so the crawler never reads the
    /// master key. Without it the crawler derives the same set from the keyring at start and
    /// keeps only that.
    #[serde(default)]
    pub keys: Option<PathBuf>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            fp: d_fp(),
            max_offset_s: d_offset(),
            keys: None,
        }
    }
}

fn d_true() -> bool {
    true
}
fn d_interval() -> u64 {
    6 * 3600
}
fn d_delay() -> u64 {
    1000
}
fn d_max_delay() -> u64 {
    30_000
}
fn d_agent() -> String {
    concat!("leaktrace-crawler/", env!("CARGO_PKG_VERSION")).to_owned()
}
fn d_robots_cache() -> u64 {
    86_400
}
fn d_depth() -> u32 {
    5
}
fn d_url_len() -> usize {
    2048
}
fn d_segments() -> usize {
    16
}
fn d_repeat() -> usize {
    3
}
fn d_params() -> usize {
    12
}
fn d_page_bytes() -> u64 {
    5 << 20
}
fn d_media_bytes() -> u64 {
    2 << 30
}
fn d_hls_segments() -> u32 {
    2000
}
fn d_capture_secs() -> u64 {
    1800
}
fn d_request_secs() -> u64 {
    30
}
fn d_redirects() -> u32 {
    5
}
fn d_links() -> usize {
    2000
}
fn d_pagination() -> u32 {
    50
}
fn d_pages_per_host() -> u64 {
    5000
}
fn d_pages_per_run() -> u64 {
    20_000
}
fn d_concurrency() -> usize {
    8
}
fn d_lease() -> u32 {
    600
}
fn d_attempts() -> u32 {
    5
}
fn d_backoff() -> u32 {
    30
}
fn d_capture_dir() -> PathBuf {
    PathBuf::from("captures")
}
fn d_threshold() -> u32 {
    70
}
fn d_fp() -> f64 {
    1e-6
}
fn d_offset() -> f64 {
    60.0
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Config, CrawlError> {
        let c: Config = toml::from_str(text).map_err(CrawlError::Toml)?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the ranges documented on each field.
    pub fn validate(&self) -> Result<(), CrawlError> {
        let bad = |m: String| Err(CrawlError::Config(m));
        if !(60..=604_800).contains(&self.schedule.interval_secs) {
            return bad(format!(
                "schedule.interval_secs {} out of range (60 to 604800)",
                self.schedule.interval_secs
            ));
        }
        if let Some(expr) = &self.schedule.cron {
            parse_cron(expr)?;
        }
        if !(1..=86_400).contains(&self.politeness.robots_cache_secs) {
            return bad(format!(
                "politeness.robots_cache_secs {} out of range (1 to 86400)",
                self.politeness.robots_cache_secs
            ));
        }
        if !(1..=256).contains(&self.fetch.concurrency) {
            return bad(format!(
                "fetch.concurrency {} out of range (1 to 256)",
                self.fetch.concurrency
            ));
        }
        if !(1..=100).contains(&self.fetch.max_attempts) {
            return bad(format!(
                "fetch.max_attempts {} out of range (1 to 100)",
                self.fetch.max_attempts
            ));
        }
        if self.fetch.lease_secs < 5 {
            return bad(format!(
                "fetch.lease_secs {} out of range (at least 5)",
                self.fetch.lease_secs
            ));
        }
        if self.fetch.title_threshold > 100 {
            return bad(format!(
                "fetch.title_threshold {} out of range (0 to 100)",
                self.fetch.title_threshold
            ));
        }
        if !(1e-12..=0.1).contains(&self.detect.fp) {
            return bad(format!(
                "detect.fp {} out of range (1e-12 to 0.1)",
                self.detect.fp
            ));
        }
        if !(1e-15..=self.detect.fp).contains(&self.revocation.fp) {
            return bad(format!(
                "revocation.fp {} out of range (1e-15 to detect.fp, {})",
                self.revocation.fp, self.detect.fp
            ));
        }
        if !(0.0..=3600.0).contains(&self.detect.max_offset_s) {
            return bad(format!(
                "detect.max_offset_s {} out of range (0 to 3600)",
                self.detect.max_offset_s
            ));
        }
        if self.limits.max_redirects > 20 {
            return bad(format!(
                "limits.max_redirects {} out of range (0 to 20)",
                self.limits.max_redirects
            ));
        }
        if self.limits.max_pagination > 10_000 {
            return bad(format!(
                "limits.max_pagination {} out of range (0 to 10000)",
                self.limits.max_pagination
            ));
        }
        if self.limits.max_pages_per_host == 0 {
            return bad("limits.max_pages_per_host 0 out of range (at least 1)".into());
        }
        if self.limits.max_pages_per_run == 0 {
            return bad("limits.max_pages_per_run 0 out of range (at least 1)".into());
        }
        for t in &self.catalogue {
            if t.title_id.is_empty() || t.names.is_empty() {
                return bad("catalogue entries need a title_id and at least one name".into());
            }
        }
        for s in self
            .sources
            .seeds
            .iter()
            .chain(&self.sources.sitemaps)
            .chain(&self.sources.feeds)
        {
            url::Url::parse(s).map_err(|e| CrawlError::Config(format!("source `{s}`: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap()
            .and_utc()
            .timestamp()
    }

    fn cron(expr: &str) -> Schedule {
        Schedule {
            interval_secs: 3600,
            cron: Some(expr.to_owned()),
        }
    }

    #[test]
    fn cron_next_start_is_the_next_match_in_utc() {
        // Saturday 2026-11-21 19:50:30 UTC.
        let now = at(2026, 11, 21, 19, 50, 30);
        let next = |e: &str| cron(e).next_start(0, now).unwrap();
        assert_eq!(next("0 */6 * * *"), at(2026, 11, 22, 0, 0, 0));
        assert_eq!(next("*/15 * * * *"), at(2026, 11, 21, 20, 0, 0));
        assert_eq!(next("30 2 * * MON"), at(2026, 11, 23, 2, 30, 0));
        assert_eq!(next("0 3 1 * *"), at(2026, 12, 1, 3, 0, 0));
        assert_eq!(next("@daily"), at(2026, 11, 22, 0, 0, 0));
        assert_eq!(next("@hourly"), at(2026, 11, 21, 20, 0, 0));
        // A start exactly on a match is not repeated: the next one is strictly later.
        let on = at(2026, 11, 22, 0, 0, 0);
        assert_eq!(
            cron("0 0 * * *").next_start(0, on).unwrap(),
            at(2026, 11, 23, 0, 0, 0)
        );
    }

    #[test]
    fn interval_next_start_counts_from_the_previous_start() {
        let s = Schedule {
            interval_secs: 600,
            cron: None,
        };
        assert_eq!(s.next_start(1000, 1300).unwrap(), 1600);
        // An overrunning run: the next start is already due.
        assert_eq!(s.next_start(1000, 5000).unwrap(), 1600);
    }

    #[test]
    fn crawl_budgets_have_defaults_and_ranges() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.limits.max_pagination, 50);
        assert_eq!(c.limits.max_pages_per_host, 5000);
        assert_eq!(c.limits.max_pages_per_run, 20_000);
        let c = Config::from_toml(
            "[limits]\nmax_pagination = 0\nmax_pages_per_host = 1\nmax_pages_per_run = 3\n",
        )
        .unwrap();
        assert_eq!(
            (
                c.limits.max_pagination,
                c.limits.max_pages_per_host,
                c.limits.max_pages_per_run
            ),
            (0, 1, 3)
        );
        for (bad, field) in [
            ("max_pagination = 10001", "max_pagination"),
            ("max_pages_per_host = 0", "max_pages_per_host"),
            ("max_pages_per_run = 0", "max_pages_per_run"),
        ] {
            let e = Config::from_toml(&format!("[limits]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(field) && e.contains("out of range"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn bad_cron_expressions_are_refused_with_the_expected_form() {
        for bad in [
            "61 * * * *",
            "* * * *",
            "0 0 * * * *",
            "0 0 32 * *",
            "every day",
            "",
        ] {
            let toml = format!("[schedule]\ncron = \"{bad}\"\n");
            let e = Config::from_toml(&toml).unwrap_err().to_string();
            assert!(e.contains("expected 5 fields"), "{bad}: {e}");
        }
        assert!(Config::from_toml("[schedule]\ncron = \"0 4 * * SUN\"\n").is_ok());
    }
}
