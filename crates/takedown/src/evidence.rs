//! Evidence bundle per finding: a directory holding the capture facts, the detector's report
//! and plot, and each notice as sent, with a manifest of BLAKE3 + SHA-256 of every file.
//!
//! Layout:
//!
//! ```text
//! BUNDLE/
//!   MANIFEST.json           schema leaktrace.evidence.v1: every other file, size, blake3, sha256
//!   MANIFEST.sig            Ed25519 signature of MANIFEST.json's exact bytes (key version, public key)
//!   finding.json            the FindingEvidence (URL, resolved IP, UTC times, hashes of the bytes)
//!   chain.json              request/response chain with redirects, statuses, IPs, UTC times
//!   detect.json             `leaktrace detect --json` report (when the detector ran)
//!   plot.<ext>              the detector's plot (when there is one)
//!   notices/<id>.txt        DMCA letter as sent
//!   notices/<id>.acns.xml   ACNS 1.2 XML as sent
//!   notices/<id>.json       the notice record (recipient, channel, Message-ID)
//! ```
//!
//! [`write_archive`] packs the sealed bundle into one tar file beside the directory
//! (`BUNDLE.tar`, members `BUNDLE/MANIFEST.json` and `BUNDLE/<path>` for every manifest
//! entry, in manifest order, with fixed owner, mode and time, so the same bundle gives the
//! same bytes): the form to hand over or archive. [`verify`] takes either form, re-hashes
//! every file and reports modified, missing and added files, and checks the signature.
//!
//! Every seal is signed with the operator's evidence key ([`EvidenceSigner`]: Ed25519, seed
//! derived from the master key, see `leaktrace_core::EvidenceKey`), so a bundle cannot be
//! edited and re-hashed by someone without the key: [`Verification::signature`] says whether
//! the signature holds and by which public key, and [`Verification::is_trusted`] whether that
//! key is one of the operator's. [`add_notice`] verifies the bundle (files and signature, by a
//! trusted key) before it adds anything and signs anew, so a tampered bundle is never
//! re-sealed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use leaktrace_core::EvidenceKey;
use leaktrace_core::keyring::verify_signature;

use crate::{FindingEvidence, Notice, TakedownError, render};

/// Manifest file name.
pub const MANIFEST: &str = "MANIFEST.json";
/// Signature file name.
pub const SIGNATURE: &str = "MANIFEST.sig";
/// Signature schema id.
pub const SIGNATURE_SCHEMA: &str = "leaktrace.evidence-signature.v1";

/// `MANIFEST.sig`: an Ed25519 signature of the manifest's exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// [`SIGNATURE_SCHEMA`].
    pub schema: String,
    /// Always `Ed25519`.
    pub algorithm: String,
    /// The master key version the signing key comes from.
    pub key_version: u32,
    /// The public key (hex, 32 bytes).
    pub public_key: String,
    /// The signature (hex, 64 bytes).
    pub signature: String,
}

/// The key that signs seals, and the public keys whose signatures are trusted (the
/// operator's, every key version held).
#[derive(Debug, Clone)]
pub struct EvidenceSigner {
    key: EvidenceKey,
    trusted: Vec<[u8; 32]>,
}

impl EvidenceSigner {
    /// Signs with `key`; trusts its public key and `also_trusted` (earlier key versions).
    pub fn new(key: EvidenceKey, also_trusted: impl IntoIterator<Item = [u8; 32]>) -> Self {
        let mut trusted = vec![key.public_key()];
        trusted.extend(also_trusted);
        trusted.sort_unstable();
        trusted.dedup();
        Self { key, trusted }
    }

    /// The signing key.
    pub fn key(&self) -> &EvidenceKey {
        &self.key
    }

    /// The trusted public keys.
    pub fn trusted(&self) -> &[[u8; 32]] {
        &self.trusted
    }
}

/// What [`verify`] found of the signature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
#[non_exhaustive]
pub enum SignatureStatus {
    /// No `MANIFEST.sig`.
    #[default]
    Unsigned,
    /// A signature that does not verify, or a signature file that is not one.
    Invalid {
        /// Why.
        reason: String,
    },
    /// The manifest is signed by this key.
    Valid {
        /// The master key version named in the signature file.
        key_version: u32,
        /// The public key (hex).
        public_key: String,
    },
}
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
    let f = fs::File::open(path).map_err(|e| TakedownError::io(path, e))?;
    hash_reader(f).map_err(|e| TakedownError::io(path, e))
}

/// Hashes of everything `r` yields: (bytes, BLAKE3 hex, SHA-256 hex).
fn hash_reader(mut r: impl Read) -> std::io::Result<(u64, String, String)> {
    let mut b3 = blake3::Hasher::new();
    let mut s2 = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
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

/// Every regular file under `dir` (relative, `/`-separated), except the manifest and its
/// signature.
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
                if s != MANIFEST && s != SIGNATURE {
                    out.push(s);
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// (Re)writes `MANIFEST.json` over every file in the bundle and signs it (`MANIFEST.sig`).
/// Returns the manifest's BLAKE3 (hex), the bundle hash a notice or a log may cite.
pub fn seal(
    dir: &Path,
    finding_id: &str,
    now: i64,
    signer: &EvidenceSigner,
) -> Result<String, TakedownError> {
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
    let sig = SignatureFile {
        schema: SIGNATURE_SCHEMA.to_owned(),
        algorithm: "Ed25519".to_owned(),
        key_version: signer.key.version().get(),
        public_key: signer.key.public_key_hex(),
        signature: hex(&signer.key.sign(&text)),
    };
    // The signature goes first: a crash between the two writes leaves a signature that does
    // not match the old manifest (reported as invalid), never a new manifest without one.
    write(dir, SIGNATURE, &serde_json::to_vec_pretty(&sig)?)?;
    write(dir, MANIFEST, &text)?;
    Ok(blake3::hash(&text).to_hex().to_string())
}

/// Checks a signature file's text against the manifest's exact bytes.
fn check_signature(manifest: &[u8], sig: Option<&[u8]>) -> SignatureStatus {
    let Some(sig) = sig else {
        return SignatureStatus::Unsigned;
    };
    let invalid = |reason: String| SignatureStatus::Invalid { reason };
    let s: SignatureFile = match serde_json::from_slice(sig) {
        Ok(s) => s,
        Err(e) => return invalid(format!("{SIGNATURE} is not a signature file: {e}")),
    };
    if s.schema != SIGNATURE_SCHEMA || s.algorithm != "Ed25519" {
        return invalid(format!(
            "signature schema {:?} / algorithm {:?}, expected {SIGNATURE_SCHEMA:?} / \"Ed25519\"",
            s.schema, s.algorithm
        ));
    }
    let (Some(public), Some(signature)) = (unhex::<32>(&s.public_key), unhex::<64>(&s.signature))
    else {
        return invalid("public key or signature is not hexadecimal of the right length".into());
    };
    if verify_signature(&public, manifest, &signature) {
        SignatureStatus::Valid {
            key_version: s.key_version,
            public_key: s.public_key.to_ascii_lowercase(),
        }
    } else {
        invalid(format!(
            "the signature does not match {MANIFEST} for public key {}",
            s.public_key
        ))
    }
}

/// `N` bytes from `2N` hexadecimal characters.
fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let b = text.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// Writes the capture part of a bundle for `finding` into `dir` (created if missing) and
/// seals it. Returns the bundle hash.
pub fn write_bundle(
    dir: &Path,
    finding: &FindingEvidence,
    now: i64,
    signer: &EvidenceSigner,
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
    seal(dir, &finding.finding_id, now, signer)
}

/// Why the bundle at `dir` cannot be built on (a notice sent or added): `None` when every file
/// matches its manifest and the manifest carries a valid signature by one of `signer`'s
/// trusted keys.
pub fn refusal(dir: &Path, signer: &EvidenceSigner) -> Option<String> {
    match verify(dir) {
        Err(e) => Some(crate::net::error_chain(&e)),
        Ok(v) if !v.is_intact() => Some(v.problems()),
        Ok(v) if !v.is_trusted(signer.trusted()) => {
            Some("signed by a key that is not one of the operator's".to_owned())
        }
        Ok(_) => None,
    }
}

/// Signs a bundle sealed before manifests were signed: its files must match the manifest and
/// it must carry no signature. The manifest is rewritten (same files, `now` as its time) and
/// signed; returns its BLAKE3.
pub fn sign_unsigned(
    dir: &Path,
    now: i64,
    signer: &EvidenceSigner,
) -> Result<String, TakedownError> {
    let v = verify(dir)?;
    let files_ok = v.modified.is_empty() && v.missing.is_empty() && v.added.is_empty();
    if !files_ok || v.signature != SignatureStatus::Unsigned {
        return Err(TakedownError::InvalidBundle(format!(
            "{}: only an unsigned bundle whose files match its manifest is signed ({})",
            dir.display(),
            v.problems()
        )));
    }
    let text =
        fs::read(dir.join(MANIFEST)).map_err(|e| TakedownError::io(dir.join(MANIFEST), e))?;
    let m = parse_manifest(&text)?;
    seal(dir, &m.finding_id, now, signer)
}

/// Adds a notice as sent (letter, ACNS XML, record with the Message-ID) and re-seals.
///
/// The bundle is verified first: every file must match the manifest and the manifest must
/// carry a valid signature by one of `signer`'s trusted keys; otherwise nothing is written
/// and [`TakedownError::InvalidBundle`] says what was wrong.
pub fn add_notice(
    dir: &Path,
    notice: &Notice,
    now: i64,
    signer: &EvidenceSigner,
) -> Result<String, TakedownError> {
    if let Some(why) = refusal(dir, signer) {
        return Err(TakedownError::InvalidBundle(format!(
            "{}: not re-sealed, the bundle changed since it was sealed ({why})",
            dir.display()
        )));
    }
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
    seal(dir, &notice.finding_id, now, signer)
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
    /// The manifest's signature.
    pub signature: SignatureStatus,
}

impl Verification {
    /// True when nothing was modified, removed or added and the manifest's signature is valid
    /// (by whichever key; see [`Verification::is_trusted`]).
    pub fn is_intact(&self) -> bool {
        self.modified.is_empty()
            && self.missing.is_empty()
            && self.added.is_empty()
            && matches!(self.signature, SignatureStatus::Valid { .. })
    }

    /// True when the signature is valid and made by one of `trusted` (public keys).
    pub fn is_trusted(&self, trusted: &[[u8; 32]]) -> bool {
        match &self.signature {
            SignatureStatus::Valid { public_key, .. } => {
                unhex::<32>(public_key).is_some_and(|k| trusted.contains(&k))
            }
            _ => false,
        }
    }

    /// What is wrong, in one line ("" when intact).
    pub fn problems(&self) -> String {
        let mut p = Vec::new();
        let list = |what: &str, v: &[String]| format!("{what}: {}", v.join(", "));
        if !self.modified.is_empty() {
            p.push(list("modified", &self.modified));
        }
        if !self.missing.is_empty() {
            p.push(list("missing", &self.missing));
        }
        if !self.added.is_empty() {
            p.push(list("added", &self.added));
        }
        match &self.signature {
            SignatureStatus::Unsigned => p.push(format!("no {SIGNATURE}")),
            SignatureStatus::Invalid { reason } => p.push(format!("signature: {reason}")),
            SignatureStatus::Valid { .. } => {}
        }
        p.join("; ")
    }
}

/// (bytes, BLAKE3, SHA-256) of a bundle's files by relative path.
type Hashes = BTreeMap<String, (u64, String, String)>;

/// Parses a manifest's text and checks its schema and paths.
fn parse_manifest(text: &[u8]) -> Result<Manifest, TakedownError> {
    let m: Manifest = serde_json::from_slice(text).map_err(TakedownError::BundleManifest)?;
    if m.schema != SCHEMA {
        return Err(TakedownError::InvalidBundle(format!(
            "manifest schema {:?}, expected {SCHEMA:?}",
            m.schema
        )));
    }
    if let Some(f) = m.files.iter().find(|f| !inside(&f.path)) {
        return Err(TakedownError::InvalidBundle(format!(
            "manifest path {:?} is not a relative path inside the bundle",
            f.path
        )));
    }
    Ok(m)
}

/// A relative, `/`-separated path that stays inside the bundle.
fn inside(rel: &str) -> bool {
    !rel.starts_with('/')
        && !rel
            .split('/')
            .any(|c| c == ".." || c == "." || c.is_empty())
}

/// Compares what was found with the manifest, and checks the signature.
fn compare(m: &Manifest, manifest_text: &[u8], sig: Option<&[u8]>, found: &Hashes) -> Verification {
    let mut v = Verification {
        manifest_blake3: blake3::hash(manifest_text).to_hex().to_string(),
        signature: check_signature(manifest_text, sig),
        ..Verification::default()
    };
    let listed: BTreeMap<&str, &FileEntry> = m.files.iter().map(|f| (f.path.as_str(), f)).collect();
    for (rel, entry) in &listed {
        match found.get(*rel) {
            None => v.missing.push((*rel).to_owned()),
            Some((bytes, b3, s2))
                if *bytes == entry.bytes && *b3 == entry.blake3 && *s2 == entry.sha256 =>
            {
                v.intact.push((*rel).to_owned());
            }
            Some(_) => v.modified.push((*rel).to_owned()),
        }
    }
    v.added = found
        .keys()
        .filter(|rel| !listed.contains_key(rel.as_str()))
        .cloned()
        .collect();
    v
}

/// Re-hashes every file of a bundle against its manifest: `path` is the bundle directory or
/// its tar archive ([`write_archive`]).
///
/// Errors only when the manifest itself is missing or unreadable, or the archive is not a
/// bundle archive (unreadable tar, members outside one top directory, links or devices, a
/// member twice); tampering is reported in the returned [`Verification`].
pub fn verify(path: &Path) -> Result<Verification, TakedownError> {
    if path.is_file() {
        return verify_archive(path);
    }
    let mpath = path.join(MANIFEST);
    let text = fs::read(&mpath).map_err(|e| TakedownError::io(&mpath, e))?;
    let m = parse_manifest(&text)?;
    let spath = path.join(SIGNATURE);
    let sig = match fs::read(&spath) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(TakedownError::io(&spath, e)),
    };
    let mut found = Hashes::new();
    for rel in list_files(path)? {
        let h = hash_file(&path.join(&rel))?;
        found.insert(rel, h);
    }
    Ok(compare(&m, &text, sig.as_deref(), &found))
}

/// The archive of the bundle directory `dir`: `dir` with `.tar` appended.
pub fn archive_path(dir: &Path) -> PathBuf {
    let mut p = dir.as_os_str().to_owned();
    p.push(".tar");
    PathBuf::from(p)
}

/// Packs the sealed bundle at `dir` into [`archive_path`] (written to a temporary name and
/// renamed, so a reader never sees half an archive): the manifest, its signature when there is
/// one, then every file it lists,
/// under the bundle's directory name, as regular files with mode 0644, owner 0, and the
/// manifest's `updated_at` as time. Returns the archive's path.
pub fn write_archive(dir: &Path) -> Result<PathBuf, TakedownError> {
    let mpath = dir.join(MANIFEST);
    let text = fs::read(&mpath).map_err(|e| TakedownError::io(&mpath, e))?;
    let m = parse_manifest(&text)?;
    let root = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| inside(n))
        .ok_or_else(|| {
            TakedownError::InvalidBundle(format!(
                "{}: a bundle directory needs a plain UTF-8 name",
                dir.display()
            ))
        })?
        .to_owned();
    let out = archive_path(dir);
    let tmp = {
        let mut p = out.as_os_str().to_owned();
        p.push(".tmp");
        PathBuf::from(p)
    };
    let file = fs::File::create(&tmp).map_err(|e| TakedownError::io(&tmp, e))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let mtime = u64::try_from(m.updated_at).unwrap_or(0);
    let mut add = |rel: &str, data: &[u8]| -> std::io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, format!("{root}/{rel}"), data)
    };
    add(MANIFEST, &text).map_err(|e| TakedownError::io(&tmp, e))?;
    let spath = dir.join(SIGNATURE);
    match fs::read(&spath) {
        Ok(sig) => add(SIGNATURE, &sig).map_err(|e| TakedownError::io(&tmp, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(TakedownError::io(&spath, e)),
    }
    for f in &m.files {
        let p = dir.join(&f.path);
        let data = fs::read(&p).map_err(|e| TakedownError::io(&p, e))?;
        add(&f.path, &data).map_err(|e| TakedownError::io(&tmp, e))?;
    }
    let w = tar.into_inner().map_err(|e| TakedownError::io(&tmp, e))?;
    let file = w
        .into_inner()
        .map_err(|e| TakedownError::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(|e| TakedownError::io(&tmp, e))?;
    fs::rename(&tmp, &out).map_err(|e| TakedownError::io(&out, e))?;
    Ok(out)
}

/// Largest manifest read from an archive (a bundle's manifest is a few KiB).
const MAX_MANIFEST: u64 = 16 << 20;

fn verify_archive(path: &Path) -> Result<Verification, TakedownError> {
    let bad = |m: String| TakedownError::InvalidBundle(format!("{}: {m}", path.display()));
    let unreadable = |what: &'static str| {
        move |source: std::io::Error| TakedownError::BundleArchive {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let file = fs::File::open(path).map_err(|e| TakedownError::io(path, e))?;
    let mut ar = tar::Archive::new(std::io::BufReader::new(file));
    let mut root: Option<String> = None;
    let mut manifest: Option<Vec<u8>> = None;
    let mut signature: Option<Vec<u8>> = None;
    let mut found = Hashes::new();
    for entry in ar
        .entries()
        .map_err(unreadable("not a readable tar archive"))?
    {
        let entry = entry.map_err(unreadable("not a readable tar archive"))?;
        let name = entry
            .path()
            .map_err(unreadable("a member name is unreadable"))?
            .to_str()
            .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_owned())
            .ok_or_else(|| bad("a member name is not UTF-8".into()))?;
        let ty = entry.header().entry_type();
        if ty.is_dir() {
            continue;
        }
        if !(ty.is_file() || ty == tar::EntryType::Continuous) {
            return Err(bad(format!(
                "member {name:?} is a {ty:?}; a bundle archive holds regular files only"
            )));
        }
        let (top, rel) = name
            .split_once('/')
            .filter(|(t, r)| inside(t) && inside(r))
            .ok_or_else(|| {
                bad(format!(
                    "member {name:?} is not a path inside the bundle's directory"
                ))
            })?;
        match &root {
            Some(r) if r != top => {
                return Err(bad(format!(
                    "members under both {r:?} and {top:?}; one bundle per archive"
                )));
            }
            Some(_) => {}
            None => root = Some(top.to_owned()),
        }
        if found.contains_key(rel)
            || (rel == MANIFEST && manifest.is_some())
            || (rel == SIGNATURE && signature.is_some())
        {
            return Err(bad(format!("member {name:?} appears twice")));
        }
        let rel = rel.to_owned();
        if rel == MANIFEST || rel == SIGNATURE {
            let mut text = Vec::new();
            entry
                .take(MAX_MANIFEST)
                .read_to_end(&mut text)
                .map_err(unreadable("a member is unreadable"))?;
            if rel == MANIFEST {
                manifest = Some(text);
            } else {
                signature = Some(text);
            }
        } else {
            let h = hash_reader(entry).map_err(unreadable("a member is unreadable"))?;
            found.insert(rel, h);
        }
    }
    let text = manifest.ok_or_else(|| bad(format!("no {MANIFEST} in the archive")))?;
    let m = parse_manifest(&text)?;
    Ok(compare(&m, &text, signature.as_deref(), &found))
}
