//! The findings, `findings`: leaks the crawler captured, with everything a takedown notice
//! needs.
//!
//! [`Store::insert_finding`] is idempotent on `(media_url, sha256)`: the same bytes at the
//! same location are one finding, however often they are crawled.

use crate::StoreError;
use crate::sql;
use crate::store::{Store, now_unix};

text_enum! {
    /// What was captured (`findings.kind`).
    #[non_exhaustive]
    pub enum FindingKind ("finding kind") {
        /// One file.
        Direct = "direct",
        /// An HLS playlist and its segments.
        Hls = "hls",
    }
}

text_enum! {
    /// What the detector concluded about a capture (`findings.verdict`).
    #[non_exhaustive]
    pub enum FindingVerdict ("finding verdict") {
        /// It accused one or more sessions.
        Accused = "accused",
        /// It ran and accused no session.
        NoAccusation = "no accusation",
        /// The analysis failed on the job's last attempt (the report says why).
        Error = "error",
        /// The capture is not a copy of its title (another film, or no overlap in time).
        NoMatch = "no match",
    }
}

/// A leak found by the crawler: everything a takedown notice needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinding {
    /// Stable id (the caller derives it from `media_url` and `sha256`).
    pub finding_id: String,
    /// The URL of the media (file or playlist) as first requested.
    pub media_url: String,
    /// The page it was found on.
    pub page_url: Option<String>,
    /// Every URL requested for the media, first to last (redirect hops); stored as a JSON
    /// array.
    pub redirect_chain: Vec<String>,
    /// The HTTP status of each request in `redirect_chain`, in the same order (redirects,
    /// then the final 2xx); empty for findings stored before schema v4.
    pub redirect_statuses: Vec<u16>,
    /// The server address the final hop connected to.
    pub resolved_ip: Option<String>,
    /// One file or an HLS stream.
    pub kind: FindingKind,
    /// A file name for notices (from the URL path).
    pub file_name: String,
    /// Content-Type of the media response.
    pub content_type: Option<String>,
    /// Bytes captured.
    pub byte_len: u64,
    /// BLAKE3 of the captured bytes, lowercase hex.
    pub blake3: String,
    /// SHA-256 of the captured bytes, lowercase hex.
    pub sha256: String,
    /// Where the captured bytes are kept.
    pub capture_path: String,
    /// The catalogue title matched (or analysed against).
    pub title_id: Option<String>,
    /// Title match score, 0 to 100.
    pub title_score: u32,
    /// What the detector concluded.
    pub verdict: FindingVerdict,
    /// Accused sessions as JSON text: `[{"session_id", "account", "score", "probability"}]`.
    pub accused: String,
    /// The detect report (JSON text).
    pub report: String,
    /// Capture start (UTC unix seconds).
    pub capture_started_at: i64,
    /// Capture end (UTC unix seconds).
    pub capture_finished_at: i64,
}

/// A stored finding: [`NewFinding`] plus when it was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The finding as recorded.
    pub record: NewFinding,
    /// When it was stored (UTC unix seconds).
    pub created_at: i64,
}

impl Store {
    /// Stores a finding. Returns `true` if it is new, `false` if a finding for
    /// the same `(media_url, sha256)` exists (nothing is changed then).
    pub async fn insert_finding(&self, f: &NewFinding) -> Result<bool, StoreError> {
        if f.finding_id.is_empty() || f.media_url.is_empty() {
            return Err(StoreError::invalid(
                "finding",
                "finding_id and media_url must not be empty",
            ));
        }
        if f.blake3.len() != 64 || f.sha256.len() != 64 {
            return Err(StoreError::invalid(
                "finding",
                "blake3 and sha256 must be 64 hex digits",
            ));
        }
        let byte_len = i64::try_from(f.byte_len)
            .map_err(|_| StoreError::invalid("byte_len", "must be below 2^63"))?;
        let stmt = sql::findings::insert(f, byte_len, now_unix());
        Ok(self.execute(stmt).await? > 0)
    }

    /// Findings, oldest first, at most `limit`, starting after `after` (a
    /// finding id from the previous page; keyset pagination on `(created_at, finding_id)`).
    pub async fn findings_list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Finding>, StoreError> {
        let stmt = match after {
            None => sql::findings::list_first(limit),
            Some(after) => sql::findings::list_after(after, limit),
        };
        self.findings(stmt).await
    }

    /// The finding with this id.
    pub async fn finding_get(&self, finding_id: &str) -> Result<Option<Finding>, StoreError> {
        self.finding(sql::findings::get(finding_id)).await
    }

    /// Some finding whose captured bytes have this SHA-256 (the oldest).
    pub async fn finding_by_sha256(&self, sha256: &str) -> Result<Option<Finding>, StoreError> {
        self.finding(sql::findings::by_sha256(sha256)).await
    }

    /// Findings whose analysis may serve again for bytes with this SHA-256 analysed for
    /// `title_id`: those of the same bytes and title whose analysis did not fail (verdict
    /// other than [`FindingVerdict::Error`]), newest first, at most 50. The caller checks the
    /// analysis inputs.
    pub async fn findings_for_reuse(
        &self,
        sha256: &str,
        title_id: &str,
    ) -> Result<Vec<Finding>, StoreError> {
        self.findings(sql::findings::for_reuse(sha256, title_id))
            .await
    }

    /// Whether a finding exists for this media URL.
    pub async fn finding_exists_for_url(&self, media_url: &str) -> Result<bool, StoreError> {
        let n: i64 = self
            .fetch_scalar(sql::findings::count_for_url(media_url))
            .await?;
        Ok(n > 0)
    }

    /// Number of findings.
    pub async fn count_findings(&self) -> Result<u64, StoreError> {
        let n: i64 = self.fetch_scalar(sql::findings::count()).await?;
        sql::stored_int("COUNT(*)", n)
    }

    async fn findings(&self, stmt: sql::Stmt) -> Result<Vec<Finding>, StoreError> {
        let rows: Vec<sql::findings::FindingRow> = self.fetch_all(stmt).await?;
        rows.into_iter().map(Finding::try_from).collect()
    }

    async fn finding(&self, stmt: sql::Stmt) -> Result<Option<Finding>, StoreError> {
        let row: Option<sql::findings::FindingRow> = self.fetch_optional(stmt).await?;
        row.map(Finding::try_from).transpose()
    }
}
