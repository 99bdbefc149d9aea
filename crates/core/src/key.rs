//! The operator's master key and per-purpose key derivation.
//!
//! Every secret leaktrace uses comes from one 32-byte [`MasterKey`] through BLAKE3's
//! `derive_key` with a distinct context string per [`Purpose`], and the key version folded in,
//! so keys for the pattern, the Tardos biases, the session codewords and the token MAC are
//! independent and a rotated key changes all of them.

use crate::{CoreError, TitleId};
use std::fmt;

/// The version of a master key, carried in tokens (`wmkeyver`) and stored with every title so
/// the right key is used after a rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyVersion(u32);

impl KeyVersion {
    /// Wraps a key version number.
    pub const fn new(v: u32) -> Self {
        Self(v)
    }

    /// The version number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a derived key is for. Each purpose has its own BLAKE3 context string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Purpose {
    /// The keyed spatial pattern of each (title, position).
    Pattern,
    /// The Tardos bias of each (title, position).
    TardosBias,
    /// The per-session codeword bits.
    Codeword,
    /// The MAC key of HMAC-signed session tokens.
    TokenMac,
    /// The Ed25519 seed that signs evidence manifests.
    EvidenceSigning,
}

impl Purpose {
    /// The BLAKE3 `derive_key` context string of the purpose. Never change a published one.
    pub const fn context(self) -> &'static str {
        match self {
            Purpose::Pattern => "leaktrace 2026-11-21 pattern v1",
            Purpose::TardosBias => "leaktrace 2026-11-21 tardos bias v1",
            Purpose::Codeword => "leaktrace 2026-11-21 session codeword v1",
            Purpose::TokenMac => "leaktrace 2026-11-21 token mac v1",
            Purpose::EvidenceSigning => "leaktrace 2026-12-05 evidence signing ed25519 v1",
        }
    }
}

/// A 32-byte key derived for one purpose (and possibly one title). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct DerivedKey([u8; 32]);

impl DerivedKey {
    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Narrows the key to one title: `BLAKE3-keyed(key, "title\0" || title id)`.
    pub fn for_title(&self, title: &TitleId) -> DerivedKey {
        let mut h = blake3::Hasher::new_keyed(&self.0);
        h.update(b"title\0");
        h.update(title.as_str().as_bytes());
        DerivedKey(*h.finalize().as_bytes())
    }

    /// Wraps raw bytes (for keys that were derived elsewhere, e.g. test vectors).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hexadecimal characters (surrounding white space ignored).
    pub fn from_hex(hex: &str) -> Result<Self, CoreError> {
        parse_hex32(hex).map(Self)
    }

    /// The key as 64 lowercase hexadecimal characters.
    pub fn to_hex(&self) -> String {
        to_hex32(&self.0)
    }
}

impl fmt::Debug for DerivedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DerivedKey(<redacted>)")
    }
}

/// The operator's 32-byte master key with its version. `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    version: KeyVersion,
}

impl MasterKey {
    /// Wraps 32 secret bytes (from a CSPRNG) with their version.
    pub fn from_bytes(bytes: [u8; 32], version: KeyVersion) -> Self {
        Self { bytes, version }
    }

    /// Parses 64 hexadecimal characters (surrounding white space ignored).
    pub fn from_hex(hex: &str, version: KeyVersion) -> Result<Self, CoreError> {
        Ok(Self::from_bytes(parse_hex32(hex)?, version))
    }

    /// The key as 64 lowercase hexadecimal characters, for writing the key file.
    pub fn to_hex(&self) -> String {
        to_hex32(&self.bytes)
    }

    /// The key's version.
    pub fn version(&self) -> KeyVersion {
        self.version
    }

    /// Derives the key of one purpose: `BLAKE3-derive_key(context, master || version LE)`.
    pub fn derive(&self, purpose: Purpose) -> DerivedKey {
        let mut material = [0u8; 36];
        material[..32].copy_from_slice(&self.bytes);
        material[32..].copy_from_slice(&self.version.get().to_le_bytes());
        DerivedKey(blake3::derive_key(purpose.context(), &material))
    }

    /// The pattern key of one title.
    pub fn pattern_key(&self, title: &TitleId) -> DerivedKey {
        self.derive(Purpose::Pattern).for_title(title)
    }

    /// The Tardos bias key of one title: `derive(TardosBias).for_title(title)`.
    pub fn bias_key(&self, title: &TitleId) -> DerivedKey {
        self.derive(Purpose::TardosBias).for_title(title)
    }

    /// The session-codeword key of one title: `derive(Codeword).for_title(title)`.
    pub fn codeword_key(&self, title: &TitleId) -> DerivedKey {
        self.derive(Purpose::Codeword).for_title(title)
    }

    /// The HMAC-256/256 key of session tokens: `derive(TokenMac)`, the same for every title
    /// (the edge checks a token's title against the store, not through the key).
    pub fn token_mac_key(&self) -> DerivedKey {
        self.derive(Purpose::TokenMac)
    }

    /// The keys detection needs for one title (pattern, biases, codewords) at this key's
    /// version, without the master key: what a crawler or an analyst's machine holds.
    pub fn title_keys(&self, title: &TitleId) -> crate::keyring::TitleKeys {
        crate::keyring::TitleKeys::from_parts(
            title.clone(),
            self.version,
            self.pattern_key(title),
            self.bias_key(title),
            self.codeword_key(title),
        )
    }

    /// The Ed25519 key that signs evidence manifests: seed `derive(EvidenceSigning)`.
    pub fn evidence_key(&self) -> crate::keyring::EvidenceKey {
        crate::keyring::EvidenceKey::from_seed(
            *self.derive(Purpose::EvidenceSigning).as_bytes(),
            self.version,
        )
    }

    /// The Tardos codebook of one title with the default parameters
    /// ([`crate::TardosParams::default`]): bias key [`MasterKey::bias_key`], codeword key
    /// [`MasterKey::codeword_key`]. The edge and the detector must both build it this way.
    pub fn codebook(&self, title: &TitleId) -> crate::Codebook {
        self.codebook_with(title, crate::TardosParams::default())
    }

    /// Like [`MasterKey::codebook`] with explicit Tardos parameters.
    pub fn codebook_with(&self, title: &TitleId, params: crate::TardosParams) -> crate::Codebook {
        crate::Codebook::new(
            self.bias_key(title).as_bytes(),
            self.codeword_key(title).as_bytes(),
            params,
        )
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(<redacted>, version {})", self.version)
    }
}

/// Parses 64 hexadecimal characters (surrounding white space ignored) into 32 bytes.
pub(crate) fn parse_hex32(hex: &str) -> Result<[u8; 32], CoreError> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return Err(CoreError::InvalidKey("expected 64 hexadecimal characters"));
    }
    let mut bytes = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
        let hi = hex_val(pair[0]).ok_or(CoreError::InvalidKey("not hexadecimal"))?;
        let lo = hex_val(pair[1]).ok_or(CoreError::InvalidKey("not hexadecimal"))?;
        bytes[i] = (hi << 4) | lo;
    }
    Ok(bytes)
}

/// 32 bytes as 64 lowercase hexadecimal characters.
pub(crate) fn to_hex32(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let k = MasterKey::from_bytes([0xab; 32], KeyVersion::new(3));
        let back = MasterKey::from_hex(&k.to_hex(), KeyVersion::new(3)).unwrap();
        assert_eq!(back.bytes, k.bytes);
        assert!(MasterKey::from_hex("abc", KeyVersion::new(1)).is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32), KeyVersion::new(1)).is_err());
    }

    #[test]
    fn purposes_titles_and_versions_separate_keys() {
        let k1 = MasterKey::from_bytes([1; 32], KeyVersion::new(1));
        let k2 = MasterKey::from_bytes([1; 32], KeyVersion::new(2));
        let p = [
            Purpose::Pattern,
            Purpose::TardosBias,
            Purpose::Codeword,
            Purpose::TokenMac,
            Purpose::EvidenceSigning,
        ];
        let mut all: Vec<[u8; 32]> = p.iter().map(|&x| *k1.derive(x).as_bytes()).collect();
        all.extend(p.iter().map(|&x| *k2.derive(x).as_bytes()));
        let t1 = TitleId::new("a").unwrap();
        let t2 = TitleId::new("b").unwrap();
        all.push(*k1.pattern_key(&t1).as_bytes());
        all.push(*k1.pattern_key(&t2).as_bytes());
        let mut dedup = all.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), all.len());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = MasterKey::from_bytes([0xcd; 32], KeyVersion::new(1));
        assert!(!format!("{k:?}").contains("cd"));
        assert!(!format!("{:?}", k.derive(Purpose::Pattern)).contains("cd"));
    }
}
