//! [`PaceInfo`], the WMPaceInfo data of clause 5.5.2: its range checks and its
//! `WMPaceInfoIngest` JSON header codec.

use super::error::Result;
use super::{
    INGEST_HEADER, MAX_INGEST_JSON_LEN, MAX_POSITION, WMPACEINFO_VERSION, WmPaceInfoError,
};

pub(super) fn check_position(position: Option<u16>) -> Result<()> {
    match position {
        Some(p) if p > MAX_POSITION => {
            Err(WmPaceInfoError::PositionOutOfRange { position: p.into() })
        }
        _ => Ok(()),
    }
}

pub(super) fn position_from_int(value: i128) -> Result<Option<u16>> {
    if value == -1 {
        return Ok(None);
    }
    match u16::try_from(value) {
        Ok(p) if p <= MAX_POSITION => Ok(Some(p)),
        _ => Err(WmPaceInfoError::PositionOutOfRange { position: value }),
    }
}

fn position_to_int(position: Option<u16>) -> i32 {
    position.map_or(-1, i32::from)
}

/// The WMPaceInfo data of one segment or encoder part (clause 5.5.2), as
/// carried in-band (`wmpi` box, SEI, TS descriptor) and in the
/// `WMPaceInfoIngest` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaceInfo {
    /// Format version; must be [`WMPACEINFO_VERSION`] (1).
    pub version: u8,
    /// Which Variant this is: 0 = A, 1 = B, and so on.
    pub variant: u8,
    /// Index into the WM pattern; `None` is -1, "not watermarked".
    /// `Some(p)` requires `p <= 32767` ([`MAX_POSITION`]), and
    /// `p <= 32766` in-band ([`MAX_IN_BAND_POSITION`](super::MAX_IN_BAND_POSITION)).
    pub position: Option<u16>,
    /// First encoder part carrying this position.
    pub first_part: bool,
    /// Last encoder part carrying this position.
    pub last_part: bool,
}

impl PaceInfo {
    /// A version-1 `PaceInfo`.
    pub const fn new(
        variant: u8,
        position: Option<u16>,
        first_part: bool,
        last_part: bool,
    ) -> Self {
        Self {
            version: WMPACEINFO_VERSION,
            variant,
            position,
            first_part,
            last_part,
        }
    }

    /// Checks the version (1) and the position range (-1..=32767).
    pub fn validate(&self) -> Result<()> {
        if self.version != WMPACEINFO_VERSION {
            return Err(WmPaceInfoError::UnsupportedVersion {
                version: self.version.into(),
            });
        }
        check_position(self.position)
    }

    /// The `WMPaceInfoIngest` header value: compact JSON with the members in
    /// the spec's order, e.g.
    /// `{"version":1,"variant":0,"position":33,"firstpart":true,"lastpart":true}`.
    pub fn to_ingest_json(&self) -> Result<String> {
        self.validate()?;
        serde_json::to_string(&IngestJsonOut {
            version: self.version,
            variant: self.variant,
            position: position_to_int(self.position),
            firstpart: self.first_part,
            lastpart: self.last_part,
        })
        .map_err(|e| WmPaceInfoError::IngestJson {
            reason: e.to_string(),
        })
    }

    /// Parses a `WMPaceInfoIngest` header value: one JSON object with exactly
    /// the members `version` (1), `variant` (0..=255), `position`
    /// (-1..=32767), `firstpart` and `lastpart` (booleans); at most
    /// [`MAX_INGEST_JSON_LEN`] bytes.
    pub fn from_ingest_json(value: &str) -> Result<Self> {
        if value.len() > MAX_INGEST_JSON_LEN {
            return Err(WmPaceInfoError::HeaderTooLong {
                header: INGEST_HEADER,
                len: value.len(),
                max: MAX_INGEST_JSON_LEN,
            });
        }
        // serde would also accept a JSON array for a struct: require an object.
        if !value.trim_ascii_start().starts_with('{') {
            return Err(WmPaceInfoError::IngestJson {
                reason: "the value must be a JSON object".into(),
            });
        }
        let raw: IngestJsonIn =
            serde_json::from_str(value).map_err(|e| WmPaceInfoError::IngestJson {
                reason: e.to_string(),
            })?;
        if raw.version != i64::from(WMPACEINFO_VERSION) {
            return Err(WmPaceInfoError::UnsupportedVersion {
                version: raw.version.into(),
            });
        }
        let variant = u8::try_from(raw.variant).map_err(|_| WmPaceInfoError::IngestJson {
            reason: format!(
                "variant {} is out of range: valid variants are 0..=255",
                raw.variant
            ),
        })?;
        Ok(Self {
            version: WMPACEINFO_VERSION,
            variant,
            position: position_from_int(raw.position.into())?,
            first_part: raw.firstpart,
            last_part: raw.lastpart,
        })
    }
}

#[derive(serde::Serialize)]
struct IngestJsonOut {
    version: u8,
    variant: u8,
    position: i32,
    firstpart: bool,
    lastpart: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestJsonIn {
    version: i64,
    variant: i64,
    position: i64,
    firstpart: bool,
    lastpart: bool,
}
