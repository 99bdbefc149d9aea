//! Content keys and DRM signalling for a package under Common Encryption (ISO/IEC 23001-7).
//!
//! Keys come the way packagers take them in raw-key mode: a key file with one
//! `label:kid:key` line per key (hexadecimal, 32 digits each; `#` starts a comment), label
//! `video` (required) and optionally `audio` (else audio uses the video key). DRM systems'
//! `pssh` data is passed in as `SYSTEM_ID:BASE64` (Widevine, PlayReady, …); the W3C common
//! `pssh` listing the key IDs is always written, so ClearKey players need nothing else.
//!
//! ```
//! use leaktrace_embed::drm::{KeyFile, parse_pssh};
//! let keys = KeyFile::parse(
//!     "# title 42\nvideo:00112233445566778899aabbccddeeff:0123456789abcdef0123456789abcdef\n",
//! )?;
//! assert!(keys.audio.is_none());
//! let widevine = parse_pssh("edef8ba9-79d6-4ace-a3c8-27dcd51d21ed:CAESEA==")?;
//! assert_eq!(widevine.data, [8, 1, 18, 16]);
//! # Ok::<(), String>(())
//! ```

use base64::Engine as _;
use leaktrace_media::cenc::{ContentKey, Pssh, Scheme, hex16, uuid};

/// Most bytes of a key file read.
pub const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// The keys of a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFile {
    /// The key of every video rendition (A and B alike).
    pub video: ContentKey,
    /// The key of the audio renditions, when not the video key.
    pub audio: Option<ContentKey>,
}

impl KeyFile {
    /// Reads `label:kid:key` lines.
    ///
    /// # Errors
    /// One line naming what is wrong and where: a label other than `video` or `audio`, a
    /// label or key ID given twice, a key ID or key that is not 32 hexadecimal digits, no
    /// `video` key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (mut video, mut audio): (Option<ContentKey>, Option<ContentKey>) = (None, None);
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |msg: String| format!("line {}: {msg}", n + 1);
            let parts: Vec<&str> = line.split(':').map(str::trim).collect();
            let [label, kid, key] = parts.as_slice() else {
                return Err(at(format!(
                    "expected label:kid:key, found {} field(s)",
                    parts.len()
                )));
            };
            let k = ContentKey {
                kid: hex16("key ID", kid).map_err(at)?,
                key: hex16("key", key).map_err(at)?,
            };
            let slot = match *label {
                "video" => &mut video,
                "audio" => &mut audio,
                other => {
                    return Err(at(format!("label {other:?} (expected video or audio)")));
                }
            };
            if slot.is_some() {
                return Err(at(format!("a second {label} key")));
            }
            *slot = Some(k);
        }
        let video = video.ok_or("no video key (expected a line video:KID:KEY)")?;
        if let Some(a) = &audio
            && a.kid == video.kid
        {
            return Err(format!(
                "key ID {} is used twice (audio and video need their own IDs, or leave audio out to use the video key)",
                a.kid_uuid()
            ));
        }
        Ok(Self { video, audio })
    }
}

/// `SYSTEM_ID:BASE64`: a DRM system ID (a UUID, dashes optional) and the `pssh` data its
/// license service issued, base64 (standard alphabet, padding optional).
pub fn parse_pssh(value: &str) -> Result<Pssh, String> {
    let (id, data) = value
        .split_once(':')
        .ok_or_else(|| format!("--pssh {value:?}: expected SYSTEM_ID:BASE64"))?;
    let system_id = hex16("system ID", id).map_err(|e| format!("--pssh: {e}"))?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(data.trim()))
        .map_err(|e| format!("--pssh {}: data is not base64 ({e})", uuid(&system_id)))?;
    if data.len() > 16 * 1024 {
        return Err(format!(
            "--pssh {}: {} bytes of data (at most 16384)",
            uuid(&system_id),
            data.len()
        ));
    }
    Ok(Pssh {
        system_id,
        kids: Vec::new(),
        data,
    })
}

/// How a package is encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    /// `cenc` or `cbcs`.
    pub scheme: Scheme,
    /// The keys.
    pub keys: KeyFile,
    /// `pssh` boxes: the common one first, then those passed in.
    pub pssh: Vec<Pssh>,
}

impl Encryption {
    /// The encryption of a package: the W3C common `pssh` listing every key ID, then `pssh`.
    pub fn new(scheme: Scheme, keys: KeyFile, pssh: Vec<Pssh>) -> Self {
        let mut kids = vec![keys.video.kid];
        if let Some(a) = &keys.audio {
            kids.push(a.kid);
        }
        let mut all = vec![Pssh::common(kids)];
        all.extend(pssh);
        Self {
            scheme,
            keys,
            pssh: all,
        }
    }

    /// The audio key (the video key when the key file has none).
    pub fn audio_key(&self) -> &ContentKey {
        self.keys.audio.as_ref().unwrap_or(&self.keys.video)
    }

    /// What the manifests signal.
    pub fn signal(&self) -> crate::manifest::DrmSignal {
        crate::manifest::DrmSignal {
            scheme: self.scheme,
            video_kid: self.keys.video.kid,
            audio_kid: self.audio_key().kid,
            systems: self
                .pssh
                .iter()
                .map(|p| {
                    (
                        uuid(&p.system_id),
                        base64::engine::general_purpose::STANDARD.encode(p.to_box()),
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "00112233445566778899aabbccddeeff:0123456789abcdef0123456789abcdef";
    const K2: &str = "ffeeddccbbaa99887766554433221100:0123456789abcdef0123456789abcdef";

    #[test]
    fn key_files_name_the_line_and_the_fault() {
        let ok = KeyFile::parse(&format!("video:{K1}\n\n# sound\naudio:{K2}  # en\n")).unwrap();
        assert_eq!(ok.audio.unwrap().kid[0], 0xff);
        let cases = [
            (
                format!("video:{K1}\nvideo:{K2}"),
                "line 2: a second video key",
            ),
            (format!("video:{K1}\naudio:{K1}"), "is used twice"),
            (format!("subs:{K1}"), "line 1: label \"subs\""),
            (
                "video:0011:00".to_owned(),
                "line 1: key ID has 4 hex digits (expected 32",
            ),
            (format!("video:{}", &K1[..60]), "key has 27 hex digits"),
            (format!("audio:{K2}"), "no video key"),
            ("video:a:b:c".to_owned(), "found 4 field(s)"),
        ];
        for (text, want) in cases {
            let e = KeyFile::parse(&text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn pssh_values_are_system_and_base64() {
        let p = parse_pssh("9a04f079-9840-4286-ab92-e65be0885f95:AAEC").unwrap();
        assert_eq!(p.system_id[0], 0x9a);
        assert_eq!(p.data, [0, 1, 2]);
        assert!(
            parse_pssh("9a04f079:AAEC")
                .unwrap_err()
                .contains("hex digits")
        );
        assert!(
            parse_pssh("nodata")
                .unwrap_err()
                .contains("SYSTEM_ID:BASE64")
        );
        let e = parse_pssh("9a04f079-9840-4286-ab92-e65be0885f95:***").unwrap_err();
        assert!(e.contains("not base64"), "{e}");
    }

    #[test]
    fn the_common_pssh_comes_first_with_every_key_id() {
        let keys = KeyFile::parse(&format!("video:{K1}\naudio:{K2}")).unwrap();
        let e = Encryption::new(Scheme::Cenc, keys, vec![]);
        assert_eq!(e.pssh.len(), 1);
        assert_eq!(e.pssh[0].kids.len(), 2);
        assert_eq!(e.audio_key().kid[0], 0xff);
        let s = e.signal();
        assert_eq!(s.systems[0].0, "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b");
        assert_eq!(s.video_kid[..2], [0x00, 0x11]);
    }
}
