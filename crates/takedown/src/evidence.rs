//! Evidence bundle per finding: a directory holding the capture facts, the detector's report
//! and plot, and each notice as sent, with a manifest of BLAKE3 + SHA-256 of every file.
//!
//! Layout:
//!
//! ```text
//! BUNDLE/
//!   MANIFEST.json           schema leaktrace.evidence.v1: every other file, size, blake3, sha256
//!   finding.json            the FindingEvidence (URL, resolved IP, UTC times, hashes of the bytes)
//!   chain.json              request/response chain with redirects, statuses, IPs, UTC times
//!   detect.json             `leaktrace detect --json` report (when the detector ran)
//!   plot.<ext>              the detector's plot (when there is one)
//!   notices/<id>.txt        DMCA letter as sent
//!   notices/<id>.acns.xml   ACNS 1.2 XML as sent
//!   notices/<id>.json       the notice record (recipient, channel, Message-ID)
//! ```
//!
//! [`verify`] re-hashes every file and reports modified, missing and added files.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::{FindingEvidence, Notice, TakedownError, render};

/// Manifest file name.
pub const MANIFEST: &str = "MANIFEST.json";
/// Manifest schema id.
pub const SCHEMA: &str = "leaktrace.evidence.v1";

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the bundle, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// BLAKE3 (hex).
    pub blake3: String,
    /// SHA-256 (hex).
    pub sha256: String,
}

/// `MANIFEST.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`SCHEMA`].
    pub schema: String,
    /// The finding.
    pub finding_id: String,
    /// UTC unix seconds of the last update.
    pub updated_at: i64,
    /// Every file but the manifest, sorted by path.
    pub files: Vec<FileEntry>,
}

/// Hashes of one file: (bytes, BLAKE3 hex, SHA-256 hex).
pub fn hash_file(path: &Path) -> Result<(u64, String, String), TakedownError> {
    let mut f = fs::File::open(path).map_err(|e| TakedownError::io(path, e))?;
    let mut b3 = blake3::Hasher::new();
    let mut s2 = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(|e| TakedownError::io(path, e))?;
        if k == 0 {
            break;
        }
        b3.update(&buf[..k]);
        s2.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, b3.finalize().to_hex().to_string(), hex(&s2.finalize())))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn write(dir: &Path, rel: &str, data: &[u8]) -> Result<(), TakedownError> {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(|e| TakedownError::io(parent, e))?;
    }
    fs::write(&p, data).map_err(|e| TakedownError::io(&p, e))
}

/// Every regular file under `dir` (relative, `/`-separated), except the manifest.
fn list_files(dir: &Path) -> Result<Vec<String>, TakedownError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let abs = dir.join(&rel);
        for e in fs::read_dir(&abs).map_err(|e| TakedownError::io(&abs, e))? {
            let e = e.map_err(|e| TakedownError::io(&abs, e))?;
            let ty = e
                .file_type()
                .map_err(|err| TakedownError::io(e.path(), err))?;
            let r = rel.join(e.file_name());
            if ty.is_dir() {
                stack.push(r);
            } else {
                let s = r
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                if s != MANIFEST {
                    out.push(s);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// (Re)writes `MANIFEST.json` over every file in the bundle. Returns its BLAKE3 (hex), the
/// bundle hash a notice or a log may cite.
pub fn seal(dir: &Path, finding_id: &str, now: i64) -> Result<String, TakedownError> {
    let mut files = Vec::new();
    for rel in list_files(dir)? {
        let (bytes, blake3, sha256) = hash_file(&dir.join(&rel))?;
        files.push(FileEntry {
            path: rel,
            bytes,
            blake3,
            sha256,
        });
    }
    let m = Manifest {
        schema: SCHEMA.to_owned(),
        finding_id: finding_id.to_owned(),
        updated_at: now,
        files,
    };
    let text = serde_json::to_vec_pretty(&m)?;
    write(dir, MANIFEST, &text)?;
    Ok(blake3::hash(&text).to_hex().to_string())
}

/// Writes the capture part of a bundle for `finding` into `dir` (created if missing) and
/// seals it. Returns the bundle hash.
pub fn write_bundle(
    dir: &Path,
    finding: &FindingEvidence,
    now: i64,
) -> Result<String, TakedownError> {
    fs::create_dir_all(dir).map_err(|e| TakedownError::io(dir, e))?;
    let mut record = finding.clone();
    record.detect_report = None; // kept whole in detect.json
    write(dir, "finding.json", &serde_json::to_vec_pretty(&record)?)?;
    write(
        dir,
        "chain.json",
        &serde_json::to_vec_pretty(&finding.chain)?,
    )?;
    if let Some(r) = &finding.detect_report {
        write(dir, "detect.json", &serde_json::to_vec_pretty(r)?)?;
    }
    if let Some(plot) = &finding.plot_path {
        let data = fs::read(plot).map_err(|e| TakedownError::io(plot, e))?;
        let ext = plot.extension().and_then(|e| e.to_str()).unwrap_or("bin");
        write(dir, &format!("plot.{ext}"), &data)?;
    }
    seal(dir, &finding.finding_id, now)
}

/// Adds a notice as sent (letter, ACNS XML, record with the Message-ID) and re-seals.
pub fn add_notice(dir: &Path, notice: &Notice, now: i64) -> Result<String, TakedownError> {
    let id = &notice.notice_id;
    write(
        dir,
        &format!("notices/{id}.txt"),
        render::dmca_letter(notice).as_bytes(),
    )?;
    write(
        dir,
        &format!("notices/{id}.acns.xml"),
        render::acns_xml(notice).as_bytes(),
    )?;
    let record = serde_json::json!({
        "message_id": notice.message_id(),
        "notice": notice,
    });
    write(
        dir,
        &format!("notices/{id}.json"),
        &serde_json::to_vec_pretty(&record)?,
    )?;
    seal(dir, &notice.finding_id, now)
}

/// Result of [`verify`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Files whose size and both hashes match.
    pub intact: Vec<String>,
    /// Files whose content changed.
    pub modified: Vec<String>,
    /// Files listed in the manifest but absent.
    pub missing: Vec<String>,
    /// Files present but not in the manifest.
    pub added: Vec<String>,
    /// BLAKE3 of the manifest as found.
    pub manifest_blake3: String,
}

impl Verification {
    /// True when nothing was modified, removed or added.
    pub fn is_intact(&self) -> bool {
        self.modified.is_empty() && self.missing.is_empty() && self.added.is_empty()
    }
}

/// Re-hashes every file of the bundle at `dir` against its manifest.
///
/// Errors only when the manifest itself is missing or unreadable; tampering is reported in
/// the returned [`Verification`].
pub fn verify(dir: &Path) -> Result<Verification, TakedownError> {
    let mpath = dir.join(MANIFEST);
    let text = fs::read(&mpath).map_err(|e| TakedownError::io(&mpath, e))?;
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| TakedownError::Bundle(format!("{MANIFEST} is not a manifest: {e}")))?;
    if m.schema != SCHEMA {
        return Err(TakedownError::Bundle(format!(
            "manifest schema {:?}, expected {SCHEMA:?}",
            m.schema
        )));
    }
    let mut v = Verification {
        manifest_blake3: blake3::hash(&text).to_hex().to_string(),
        ..Verification::default()
    };
    let listed: BTreeMap<&str, &FileEntry> = m.files.iter().map(|f| (f.path.as_str(), f)).collect();
    for (rel, entry) in &listed {
        if rel.starts_with('/') || rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(TakedownError::Bundle(format!(
                "manifest path {rel:?} is not a relative path inside the bundle"
            )));
        }
        let p = dir.join(rel);
        if !p.is_file() {
            v.missing.push((*rel).to_owned());
            continue;
        }
        let (bytes, b3, s2) = hash_file(&p)?;
        if bytes == entry.bytes && b3 == entry.blake3 && s2 == entry.sha256 {
            v.intact.push((*rel).to_owned());
        } else {
            v.modified.push((*rel).to_owned());
        }
    }
    for rel in list_files(dir)? {
        if !listed.contains_key(rel.as_str()) {
            v.added.push(rel);
        }
    }
    Ok(v)
}
