//! Keys by version, the keys detection needs for one title, and the evidence signing key.
//!
//! - A [`Keyring`] holds every [`MasterKey`] still in use, by [`KeyVersion`], and which one is
//!   current. A rotation adds a version: new titles are marked and new tokens MAC'd with the
//!   current key, while titles marked under an older version keep their patterns, biases and
//!   codewords (derived from the title's own version, recorded in the store), and tokens issued
//!   under an older version stay valid until they expire, as long as that version is held.
//! - [`TitleKeys`] are what detection needs for one title at one version (pattern, Tardos bias
//!   and codeword keys) and nothing else: with them one can read and score that title's mark,
//!   but not mint tokens, mark other titles or sign evidence. [`DetectionKeys`] is a set of
//!   them in a JSON file, made by the operator from the keyring for a machine that analyses
//!   hostile files (the crawler), so the master key never sits beside FFmpeg and HTML parsers.
//! - [`EvidenceKey`] is the Ed25519 key (seed derived from a master key) that signs evidence
//!   manifests; its public half is published so anyone can check a bundle.
//!
//! ```
//! use leaktrace_core::{KeyVersion, Keyring, MasterKey, TitleId, TitleKeySource};
//!
//! let mut ring = Keyring::new(MasterKey::from_bytes([2; 32], KeyVersion::new(2)));
//! ring.add(MasterKey::from_bytes([1; 32], KeyVersion::new(1)))?;
//! let title = TitleId::new("marked-before-the-rotation")?;
//! // Detection reads a title with the keys of the version it was marked with.
//! let keys = ring.title_keys(&title, KeyVersion::new(1))?;
//! assert_eq!(keys.version(), KeyVersion::new(1));
//! // A set for the crawler holds only what detection of these titles needs.
//! let set = ring.detection_keys([(title.clone(), KeyVersion::new(1))])?;
//! let back = leaktrace_core::DetectionKeys::from_json(&set.to_json())?;
//! assert_eq!(back.title_keys(&title, KeyVersion::new(1))?.pattern_key(), keys.pattern_key());
//! assert!(ring.title_keys(&title, KeyVersion::new(3)).is_err());
//! # Ok::<(), leaktrace_core::CoreError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};

use crate::key::{parse_hex32, to_hex32};
use crate::{Codebook, CoreError, DerivedKey, KeyVersion, MasterKey, TardosParams, TitleId};

/// The keys of one title at one key version: enough to detect and score its mark.
#[derive(Clone, PartialEq, Eq)]
pub struct TitleKeys {
    title: TitleId,
    version: KeyVersion,
    pattern: DerivedKey,
    bias: DerivedKey,
    codeword: DerivedKey,
}

impl TitleKeys {
    /// Assembles the keys of `title` at `version` ([`MasterKey::title_keys`] derives them).
    pub fn from_parts(
        title: TitleId,
        version: KeyVersion,
        pattern: DerivedKey,
        bias: DerivedKey,
        codeword: DerivedKey,
    ) -> Self {
        Self {
            title,
            version,
            pattern,
            bias,
            codeword,
        }
    }

    /// The title.
    pub fn title(&self) -> &TitleId {
        &self.title
    }

    /// The key version the title was marked with.
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// The title's pattern key ([`MasterKey::pattern_key`]).
    pub fn pattern_key(&self) -> &DerivedKey {
        &self.pattern
    }

    /// The title's Tardos codebook with the default parameters (as [`MasterKey::codebook`]).
    pub fn codebook(&self) -> Codebook {
        self.codebook_with(TardosParams::default())
    }

    /// Like [`TitleKeys::codebook`] with explicit Tardos parameters.
    pub fn codebook_with(&self, params: TardosParams) -> Codebook {
        Codebook::new(self.bias.as_bytes(), self.codeword.as_bytes(), params)
    }
}

impl fmt::Debug for TitleKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TitleKeys({}, version {}, <redacted>)",
            self.title, self.version
        )
    }
}

/// Where detection gets the keys of a title at the version it was marked with: a [`Keyring`]
/// (the operator's machine) or a [`DetectionKeys`] file (a machine without the master key).
pub trait TitleKeySource: Send + Sync {
    /// The keys of `title` at `version`.
    ///
    /// # Errors
    /// [`CoreError::UnknownKeyVersion`] or [`CoreError::MissingTitleKeys`] when the source does
    /// not hold them.
    fn title_keys(&self, title: &TitleId, version: KeyVersion) -> Result<TitleKeys, CoreError>;
}

/// Every master key still in use, by version, and which one is current.
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<KeyVersion, MasterKey>,
    current: KeyVersion,
}

impl Keyring {
    /// A keyring whose current (and only) key is `current`.
    pub fn new(current: MasterKey) -> Self {
        let v = current.version();
        Self {
            keys: BTreeMap::from([(v, current)]),
            current: v,
        }
    }

    /// Adds an older (retired) key, kept to detect titles marked with it and to accept tokens
    /// issued under it until they expire.
    ///
    /// # Errors
    /// [`CoreError::DuplicateKeyVersion`] when the keyring already holds that version.
    pub fn add(&mut self, key: MasterKey) -> Result<(), CoreError> {
        let v = key.version();
        if self.keys.contains_key(&v) {
            return Err(CoreError::DuplicateKeyVersion(v.get()));
        }
        self.keys.insert(v, key);
        Ok(())
    }

    /// The current key: new titles are marked and new tokens signed with it.
    pub fn current(&self) -> &MasterKey {
        // `current` is always a key of the map (set by `new`, never removed).
        &self.keys[&self.current]
    }

    /// The key of `version`.
    ///
    /// # Errors
    /// [`CoreError::UnknownKeyVersion`] naming the versions held.
    pub fn get(&self, version: KeyVersion) -> Result<&MasterKey, CoreError> {
        self.keys
            .get(&version)
            .ok_or_else(|| CoreError::UnknownKeyVersion {
                version: version.get(),
                held: self.held(),
            })
    }

    /// The versions held, oldest first.
    pub fn versions(&self) -> impl DoubleEndedIterator<Item = KeyVersion> + '_ {
        self.keys.keys().copied()
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &MasterKey> + '_ {
        self.keys.values()
    }

    fn held(&self) -> String {
        let v: Vec<String> = self.keys.keys().map(ToString::to_string).collect();
        v.join(", ")
    }

    /// The detection key set of `titles` (each at the version it was marked with).
    ///
    /// # Errors
    /// [`CoreError::UnknownKeyVersion`] when a title's version is not held.
    pub fn detection_keys(
        &self,
        titles: impl IntoIterator<Item = (TitleId, KeyVersion)>,
    ) -> Result<DetectionKeys, CoreError> {
        let mut set = DetectionKeys::default();
        for (title, version) in titles {
            let keys = self.get(version)?.title_keys(&title);
            set.insert(keys);
        }
        Ok(set)
    }
}

impl TitleKeySource for Keyring {
    fn title_keys(&self, title: &TitleId, version: KeyVersion) -> Result<TitleKeys, CoreError> {
        Ok(self.get(version)?.title_keys(title))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Keyring(<redacted>, versions [{}], current {})",
            self.held(),
            self.current
        )
    }
}

/// The file format id of a detection key set.
pub const DETECTION_KEYS_FORMAT: &str = "leaktrace.detection-keys.v1";

/// The per-title keys of some titles, without any master key: what a machine analysing
/// hostile files holds. Stored as JSON ([`DetectionKeys::to_json`]); the file is as secret as
/// what it lets one do (read and score those titles' marks), so keep it mode 0600.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DetectionKeys {
    titles: BTreeMap<(TitleId, KeyVersion), TitleKeys>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    format: String,
    titles: Vec<TitleEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TitleEntry {
    title: String,
    key_version: u32,
    pattern: String,
    bias: String,
    codeword: String,
}

impl DetectionKeys {
    /// Adds (or replaces) the keys of one title at one version.
    pub fn insert(&mut self, keys: TitleKeys) {
        self.titles.insert((keys.title.clone(), keys.version), keys);
    }

    /// How many (title, version) entries the set holds.
    pub fn len(&self) -> usize {
        self.titles.len()
    }

    /// True when the set holds no title.
    pub fn is_empty(&self) -> bool {
        self.titles.is_empty()
    }

    /// The titles and versions held.
    pub fn entries(&self) -> impl Iterator<Item = (&TitleId, KeyVersion)> + '_ {
        self.titles.keys().map(|(t, v)| (t, *v))
    }

    /// The set as JSON text (contains secrets).
    pub fn to_json(&self) -> String {
        let file = KeysFile {
            format: DETECTION_KEYS_FORMAT.to_owned(),
            titles: self
                .titles
                .values()
                .map(|k| TitleEntry {
                    title: k.title.as_str().to_owned(),
                    key_version: k.version.get(),
                    pattern: k.pattern.to_hex(),
                    bias: k.bias.to_hex(),
                    codeword: k.codeword.to_hex(),
                })
                .collect(),
        };
        // Plain strings and integers only: serialisation cannot fail.
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// Parses a set written by [`DetectionKeys::to_json`].
    ///
    /// # Errors
    /// [`CoreError::InvalidKeyFile`] for anything but a well-formed set (unknown fields,
    /// another format id, a (title, version) given twice), [`CoreError::KeyFileField`] for a
    /// bad title id or key.
    pub fn from_json(text: &str) -> Result<Self, CoreError> {
        let file: KeysFile =
            serde_json::from_str(text).map_err(|e| CoreError::InvalidKeyFile(e.to_string()))?;
        if file.format != DETECTION_KEYS_FORMAT {
            return Err(CoreError::InvalidKeyFile(format!(
                "format {:?}, expected {DETECTION_KEYS_FORMAT:?}",
                file.format
            )));
        }
        let bad = |field: &'static str, e: CoreError| CoreError::KeyFileField {
            field,
            source: Box::new(e),
        };
        let mut set = DetectionKeys::default();
        for t in file.titles {
            let title = TitleId::new(&t.title).map_err(|e| bad("title", e))?;
            let version = KeyVersion::new(t.key_version);
            let keys = TitleKeys::from_parts(
                title.clone(),
                version,
                DerivedKey::from_hex(&t.pattern).map_err(|e| bad("pattern", e))?,
                DerivedKey::from_hex(&t.bias).map_err(|e| bad("bias", e))?,
                DerivedKey::from_hex(&t.codeword).map_err(|e| bad("codeword", e))?,
            );
            if set.titles.insert((title, version), keys).is_some() {
                return Err(CoreError::InvalidKeyFile(format!(
                    "title {:?} at key version {} is given twice",
                    t.title, t.key_version
                )));
            }
        }
        Ok(set)
    }
}

impl TitleKeySource for DetectionKeys {
    fn title_keys(&self, title: &TitleId, version: KeyVersion) -> Result<TitleKeys, CoreError> {
        self.titles
            .get(&(title.clone(), version))
            .cloned()
            .ok_or_else(|| CoreError::MissingTitleKeys {
                title: title.as_str().to_owned(),
                version: version.get(),
            })
    }
}

impl fmt::Debug for DetectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DetectionKeys({} titles, <redacted>)", self.titles.len())
    }
}

/// The Ed25519 key that signs evidence manifests, with the master key version it comes from.
#[derive(Clone)]
pub struct EvidenceKey {
    signing: ed25519_dalek::SigningKey,
    version: KeyVersion,
}

impl EvidenceKey {
    /// The key of a 32-byte Ed25519 seed.
    pub fn from_seed(seed: [u8; 32], version: KeyVersion) -> Self {
        Self {
            signing: ed25519_dalek::SigningKey::from_bytes(&seed),
            version,
        }
    }

    /// The master key version the seed was derived from.
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The public key as 64 lowercase hexadecimal characters.
    pub fn public_key_hex(&self) -> String {
        to_hex32(&self.public_key())
    }

    /// Signs `message` (Ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
}

impl PartialEq for EvidenceKey {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && self.public_key() == other.public_key()
    }
}

impl Eq for EvidenceKey {}

impl fmt::Debug for EvidenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EvidenceKey(version {}, public {})",
            self.version,
            self.public_key_hex()
        )
    }
}

/// Checks an Ed25519 signature (RFC 8032, strict: non-canonical encodings and small-order
/// public keys are refused).
pub fn verify_signature(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(message, &sig).is_ok()
}

/// Parses a public key given as 64 hexadecimal characters.
///
/// # Errors
/// [`CoreError::InvalidKey`] when it is not 64 hexadecimal characters.
pub fn parse_public_key(hex: &str) -> Result<[u8; 32], CoreError> {
    parse_hex32(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        let mut r = Keyring::new(MasterKey::from_bytes([2; 32], KeyVersion::new(2)));
        r.add(MasterKey::from_bytes([1; 32], KeyVersion::new(1)))
            .unwrap();
        r
    }

    #[test]
    fn versions_keep_their_own_keys() {
        let r = ring();
        let t = TitleId::new("t").unwrap();
        let k1 = r.title_keys(&t, KeyVersion::new(1)).unwrap();
        let k2 = r.title_keys(&t, KeyVersion::new(2)).unwrap();
        assert_ne!(k1.pattern_key(), k2.pattern_key());
        let m1 = MasterKey::from_bytes([1; 32], KeyVersion::new(1));
        assert_eq!(k1.pattern_key(), &m1.pattern_key(&t));
        assert_eq!(k1.codebook().bias(7), m1.codebook(&t).bias(7));
        assert_eq!(r.current().version(), KeyVersion::new(2));
        let e = r.title_keys(&t, KeyVersion::new(5)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "key version 5 is not in the keyring (it holds 1, 2)"
        );
        let mut r2 = ring();
        assert_eq!(
            r2.add(MasterKey::from_bytes([9; 32], KeyVersion::new(1))),
            Err(CoreError::DuplicateKeyVersion(1))
        );
    }

    #[test]
    fn detection_keys_round_trip_and_refuse_junk() {
        let r = ring();
        let t = TitleId::new("t").unwrap();
        let set = r.detection_keys([(t.clone(), KeyVersion::new(1))]).unwrap();
        let text = set.to_json();
        assert!(
            !text.contains(&"01".repeat(32)),
            "no master key in the file"
        );
        let back = DetectionKeys::from_json(&text).unwrap();
        assert_eq!(back, set);
        assert!(back.title_keys(&t, KeyVersion::new(2)).is_err());
        for junk in [
            "",
            "{}",
            &text.replace(DETECTION_KEYS_FORMAT, "other"),
            &text.replace("\"title\": \"t\"", "\"title\": \"a b\""),
            &text.replace("\"bias\": \"", "\"bias\": \"zz"),
            &text.replace("\"format\"", "\"extra\": 1, \"format\""),
        ] {
            assert!(DetectionKeys::from_json(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn evidence_signatures_verify_and_bind_the_message() {
        let k = ring().current().evidence_key();
        let sig = k.sign(b"manifest");
        assert!(verify_signature(&k.public_key(), b"manifest", &sig));
        assert!(!verify_signature(&k.public_key(), b"manifesT", &sig));
        let other = MasterKey::from_bytes([1; 32], KeyVersion::new(1)).evidence_key();
        assert!(!verify_signature(&other.public_key(), b"manifest", &sig));
        assert!(!format!("{k:?}").contains(&to_hex32(&k.signing.to_bytes())));
    }
}
