//! Statements on `findings`.

use super::{Stmt, stored_int, stored_text};
use crate::StoreError;
use crate::findings::{Finding, NewFinding};

/// Columns of `findings`, as in [`FindingRow`].
macro_rules! finding_cols {
    () => {
        "finding_id, media_url, page_url, redirect_chain, resolved_ip, kind, file_name, \
         content_type, byte_len, blake3, sha256, capture_path, title_id, title_score, verdict, \
         accused, report, capture_started_at, capture_finished_at, created_at, redirect_statuses"
    };
}

table_row! {
    /// A row of `findings`.
    struct FindingRow {
        finding_id: String,
        media_url: String,
        page_url: Option<String>,
        redirect_chain: String,
        resolved_ip: Option<String>,
        kind: String,
        file_name: String,
        content_type: Option<String>,
        byte_len: i64,
        blake3: String,
        sha256: String,
        capture_path: String,
        title_id: Option<String>,
        title_score: i64,
        verdict: String,
        accused: String,
        report: String,
        capture_started_at: i64,
        capture_finished_at: i64,
        created_at: i64,
        redirect_statuses: String,
    }
}

/// Insert a finding unless one exists for the same `(media_url, sha256)`. `byte_len` is the
/// finding's, checked to fit.
pub(crate) fn insert(f: &NewFinding, byte_len: i64, now: i64) -> Stmt {
    Stmt::new(concat!(
        "INSERT INTO findings (",
        finding_cols!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
         $18, $19, $20, $21) ON CONFLICT (media_url, sha256) DO NOTHING"
    ))
    .bind(f.finding_id.as_str())
    .bind(f.media_url.as_str())
    .bind(f.page_url.as_deref())
    .bind(encode_chain(&f.redirect_chain))
    .bind(f.resolved_ip.as_deref())
    .bind(f.kind)
    .bind(f.file_name.as_str())
    .bind(f.content_type.as_deref())
    .bind(byte_len)
    .bind(f.blake3.as_str())
    .bind(f.sha256.as_str())
    .bind(f.capture_path.as_str())
    .bind(f.title_id.as_deref())
    .bind(f.title_score)
    .bind(f.verdict)
    .bind(f.accused.as_str())
    .bind(f.report.as_str())
    .bind(f.capture_started_at)
    .bind(f.capture_finished_at)
    .bind(now)
    .bind(encode_statuses(&f.redirect_statuses))
}

/// The first `limit` findings, oldest first.
pub(crate) fn list_first(limit: u32) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        finding_cols!(),
        " FROM findings ORDER BY created_at, finding_id LIMIT $1"
    ))
    .bind(limit)
}

/// The next `limit` findings after the finding `after`, oldest first (keyset pagination on
/// `(created_at, finding_id)`).
pub(crate) fn list_after(after: &str, limit: u32) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        finding_cols!(),
        " FROM findings WHERE (created_at, finding_id) > \
         (SELECT created_at, finding_id FROM findings WHERE finding_id = $1) \
         ORDER BY created_at, finding_id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
}

pub(crate) fn get(finding_id: &str) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        finding_cols!(),
        " FROM findings WHERE finding_id = $1"
    ))
    .bind(finding_id)
}

/// The oldest finding of these bytes.
pub(crate) fn by_sha256(sha256: &str) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        finding_cols!(),
        " FROM findings WHERE sha256 = $1 ORDER BY created_at, finding_id LIMIT 1"
    ))
    .bind(sha256)
}

/// Findings of these bytes and title whose analysis did not fail, newest first, at most 50.
pub(crate) fn for_reuse(sha256: &str, title_id: &str) -> Stmt {
    Stmt::new(concat!(
        "SELECT ",
        finding_cols!(),
        " FROM findings WHERE sha256 = $1 AND title_id = $2 AND verdict <> 'error' \
         ORDER BY created_at DESC, finding_id DESC LIMIT 50"
    ))
    .bind(sha256)
    .bind(title_id)
}

/// One integer: findings of this media URL.
pub(crate) fn count_for_url(media_url: &str) -> Stmt {
    Stmt::new("SELECT COUNT(*) FROM findings WHERE media_url = $1").bind(media_url)
}

/// One integer.
pub(crate) fn count() -> Stmt {
    Stmt::new("SELECT COUNT(*) FROM findings")
}

/// The redirect chain is stored as a JSON array of strings.
fn encode_chain(chain: &[String]) -> String {
    serde_json::to_string(chain).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_chain(s: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        detail: format!("redirect_chain is not a JSON array of strings ({e}): {s:.80}"),
    })
}

/// The statuses are stored as a JSON array of integers.
fn encode_statuses(statuses: &[u16]) -> String {
    serde_json::to_string(statuses).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_statuses(s: &str) -> Result<Vec<u16>, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt {
        detail: format!(
            "redirect_statuses is not a JSON array of integers 0 to 65535 ({e}): {s:.80}"
        ),
    })
}

impl TryFrom<FindingRow> for Finding {
    type Error = StoreError;

    fn try_from(r: FindingRow) -> Result<Finding, StoreError> {
        Ok(Finding {
            record: NewFinding {
                finding_id: r.finding_id,
                media_url: r.media_url,
                page_url: r.page_url,
                redirect_chain: parse_chain(&r.redirect_chain)?,
                redirect_statuses: parse_statuses(&r.redirect_statuses)?,
                resolved_ip: r.resolved_ip,
                kind: stored_text("findings.kind", &r.kind)?,
                file_name: r.file_name,
                content_type: r.content_type,
                byte_len: stored_int("findings.byte_len", r.byte_len)?,
                blake3: r.blake3,
                sha256: r.sha256,
                capture_path: r.capture_path,
                title_id: r.title_id,
                title_score: stored_int("findings.title_score", r.title_score)?,
                verdict: stored_text("findings.verdict", &r.verdict)?,
                accused: r.accused,
                report: r.report,
                capture_started_at: r.capture_started_at,
                capture_finished_at: r.capture_finished_at,
            },
            created_at: r.created_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_list_matches_the_row() {
        assert_eq!(finding_cols!(), FindingRow::COLUMNS.join(", "));
    }

    #[test]
    fn chain_round_trips() {
        let c = vec![
            "http://a/\"x\"".to_owned(),
            "http://b/\\y\n".to_owned(),
            String::new(),
        ];
        assert_eq!(parse_chain(&encode_chain(&c)).unwrap(), c);
        assert_eq!(parse_chain("[]").unwrap(), Vec::<String>::new());
        assert!(parse_chain("{").is_err());
    }

    #[test]
    fn statuses_round_trip() {
        for v in [vec![], vec![200], vec![301, 302, 307, 200]] {
            assert_eq!(parse_statuses(&encode_statuses(&v)).unwrap(), v);
        }
        assert_eq!(parse_statuses(" [ 301 , 200 ] ").unwrap(), [301, 200]);
        assert!(parse_statuses("[70000]").is_err());
        assert!(parse_statuses("301").is_err());
    }
}
