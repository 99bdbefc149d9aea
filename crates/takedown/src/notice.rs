//! The [`Notice`] model, its validator and the positive-match gate.
//!
//! A notice is built from a [`FindingEvidence`], the complainant's details and a
//! [`Recipient`] by [`Notice::build`], which refuses findings without a positive match
//! ([`gate`]) and notices missing any element of 17 U.S.C. § 512(c)(3)(A)(i)–(vi) or of
//! Art. 16(2)(a)–(d) of Regulation (EU) 2022/2065 ([`Notice::validate`]).

use std::fmt;
use std::net::IpAddr;

use leaktrace_store::NoticeLevel;
use serde::{Deserialize, Serialize};

use crate::{FindingEvidence, TakedownError};

/// A statutory element of a notice. `Display` names the provision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Element {
    /// DMCA (i): signature of a person authorised to act for the owner.
    DmcaSignature,
    /// DMCA (ii): identification of the copyrighted work.
    DmcaWork,
    /// DMCA (iii): identification of the infringing material and where to find it (URL).
    DmcaMaterial,
    /// DMCA (iv): contact information of the complaining party (address, phone or e-mail).
    DmcaContact,
    /// DMCA (v): good-faith statement.
    DmcaGoodFaith,
    /// DMCA (vi): accuracy statement and, under penalty of perjury, authority to act.
    DmcaAccuracy,
    /// DSA (a): substantiated explanation why the content is illegal.
    DsaExplanation,
    /// DSA (b): exact electronic location (URL).
    DsaLocation,
    /// DSA (c): name and e-mail address of the notifier.
    DsaNotifier,
    /// DSA (d): statement of bona fide belief that the notice is accurate and complete.
    DsaBonaFide,
    /// Not statutory but needed to send: the recipient's address.
    Recipient,
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Element::DmcaSignature => {
                "17 U.S.C. 512(c)(3)(A)(i): signature of a person authorized to act for the owner"
            }
            Element::DmcaWork => "17 U.S.C. 512(c)(3)(A)(ii): identification of the copyrighted work",
            Element::DmcaMaterial => {
                "17 U.S.C. 512(c)(3)(A)(iii): infringing material and an absolute http(s) URL locating it"
            }
            Element::DmcaContact => {
                "17 U.S.C. 512(c)(3)(A)(iv): complainant contact (address, telephone or e-mail)"
            }
            Element::DmcaGoodFaith => {
                "17 U.S.C. 512(c)(3)(A)(v): statement of good faith belief that the use is not authorized"
            }
            Element::DmcaAccuracy => {
                "17 U.S.C. 512(c)(3)(A)(vi): statement that the notice is accurate and, under penalty of perjury, that the complainant is authorized"
            }
            Element::DsaExplanation => {
                "DSA Art. 16(2)(a): substantiated explanation why the content is illegal"
            }
            Element::DsaLocation => "DSA Art. 16(2)(b): exact electronic location (URL)",
            Element::DsaNotifier => "DSA Art. 16(2)(c): name and e-mail address of the notifier",
            Element::DsaBonaFide => {
                "DSA Art. 16(2)(d): statement of bona fide belief that the notice is accurate and complete"
            }
            Element::Recipient => "recipient e-mail address or API endpoint",
        })
    }
}

/// The party sending notices (the rights owner or its agent). From configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Complainant {
    /// Natural person signing (the electronic signature is `/name/`).
    pub name: String,
    /// Organisation the person acts for (the agent).
    #[serde(default)]
    pub organization: String,
    /// Rights owner, if different from `organization`.
    #[serde(default)]
    pub principal: Option<String>,
    /// E-mail address.
    pub email: String,
    /// Postal address (one line).
    #[serde(default)]
    pub address: String,
    /// Telephone.
    #[serde(default)]
    pub phone: String,
}

/// The copyrighted work, identified for a title. From configuration (per title id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Work {
    /// Title of the work.
    pub title: String,
    /// Description (kind, year, owner).
    #[serde(default)]
    pub description: String,
    /// Where the authorised copy is offered.
    #[serde(default)]
    pub authorized_url: Option<String>,
    /// SHA-256 (hex) of the work's own files as released (e.g. the studio's screener or
    /// retail file): a capture byte-identical to one of them is a positive match without a
    /// watermark accusation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asset_sha256: Vec<String>,
}

impl Work {
    /// The catalogue asset a capture with SHA-256 `sha256` is byte-identical to, if any
    /// (`"sha256:<hex>"`).
    pub fn catalogue_match(&self, sha256: &str) -> Option<String> {
        let sha256 = sha256.trim();
        (sha256.len() == 64
            && self
                .asset_sha256
                .iter()
                .any(|a| a.trim().eq_ignore_ascii_case(sha256)))
        .then(|| format!("sha256:{}", sha256.to_ascii_lowercase()))
    }
}

/// Escalation level of a recipient: site → host → CDN → registrar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Level {
    /// The site operator.
    Site,
    /// The hosting provider of the server address (RDAP abuse contact of the IP).
    Host,
    /// The CDN in front of the site.
    Cdn,
    /// The domain's registrar (RDAP abuse contact of the domain).
    Registrar,
}

impl Level {
    /// All levels, in escalation order.
    pub const LADDER: [Level; 4] = [Level::Site, Level::Host, Level::Cdn, Level::Registrar];

    /// Lower-case name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Site => "site",
            Level::Host => "host",
            Level::Cdn => "cdn",
            Level::Registrar => "registrar",
        }
    }

    /// Parses [`Level::as_str`].
    pub fn parse(s: &str) -> Option<Level> {
        Level::LADDER.into_iter().find(|l| l.as_str() == s)
    }

    /// The next level up the ladder, if any.
    pub fn next(self) -> Option<Level> {
        match self {
            Level::Site => Some(Level::Host),
            Level::Host => Some(Level::Cdn),
            Level::Cdn => Some(Level::Registrar),
            Level::Registrar => None,
        }
    }
}

/// The level as the store keeps it.
impl From<Level> for NoticeLevel {
    fn from(level: Level) -> NoticeLevel {
        match level {
            Level::Site => NoticeLevel::Site,
            Level::Host => NoticeLevel::Host,
            Level::Cdn => NoticeLevel::Cdn,
            Level::Registrar => NoticeLevel::Registrar,
        }
    }
}

/// The level of a stored notice.
impl From<NoticeLevel> for Level {
    fn from(level: NoticeLevel) -> Level {
        match level {
            NoticeLevel::Site => Level::Site,
            NoticeLevel::Host => Level::Host,
            NoticeLevel::Cdn => Level::Cdn,
            NoticeLevel::Registrar => Level::Registrar,
        }
    }
}

/// How a notice reaches its recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Channel {
    /// E-mail to an address (DMCA letter with the ACNS XML inline and attached).
    Email {
        /// Recipient address.
        to: String,
    },
    /// HTTP POST of the Cloudflare-format JSON to an endpoint.
    Http {
        /// Endpoint URL.
        endpoint: String,
    },
}

/// Who receives a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Organisation name (from RDAP or the override).
    pub name: String,
    /// Contact e-mail (also the ACNS `Service_Provider/Email`).
    pub email: String,
    /// Where this recipient stands on the escalation ladder.
    pub level: Level,
    /// Delivery channel.
    pub channel: Channel,
}

/// The positive match that allows a notice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PositiveMatch {
    /// The forensic watermark accused a session at or below the configured probability.
    Watermark {
        /// False-accusation probability of the best accusation.
        probability: f64,
        /// Configured maximum.
        fp_max: f64,
        /// Positions the detector used.
        positions_used: Option<u64>,
    },
    /// The captured bytes are identical to a catalogue asset.
    CatalogueHash {
        /// The asset's id.
        asset: String,
    },
}

impl PositiveMatch {
    /// One-line description used in the notice texts.
    pub fn describe(&self) -> String {
        match self {
            PositiveMatch::Watermark {
                probability,
                fp_max,
                positions_used,
            } => {
                let used = positions_used.map_or(String::new(), |n| format!(" over {n} segments"));
                format!(
                    "the forensic A/B watermark of the work was read back from the copy{used}; the probability that a copy not derived from our distribution matches this strongly is {probability:.1e} (threshold {fp_max:.0e})"
                )
            }
            PositiveMatch::CatalogueHash { asset } => {
                format!("the file is byte-identical to catalogue asset {asset}")
            }
        }
    }
}

/// The positive-match gate: a notice only for a finding the detector accused at or below
/// `fp_max`, or whose bytes match a catalogue asset exactly.
///
/// `fp_max` must be in (0, 1]. The best (lowest-probability) accusation is used.
pub fn gate(finding: &FindingEvidence, fp_max: f64) -> Result<PositiveMatch, TakedownError> {
    if !(fp_max > 0.0 && fp_max <= 1.0) {
        return Err(TakedownError::InvalidConfig(format!(
            "fp_max {fp_max} out of range (0, 1]"
        )));
    }
    if finding.verdict.as_deref() == Some("accused") {
        let best = finding
            .accused
            .iter()
            .map(|a| a.probability)
            .filter(|p| p.is_finite())
            .min_by(f64::total_cmp);
        if let Some(p) = best.filter(|p| *p <= fp_max) {
            return Ok(PositiveMatch::Watermark {
                probability: p,
                fp_max,
                positions_used: finding.positions_used,
            });
        }
    }
    if let Some(asset) = finding
        .catalogue_hash_match
        .as_ref()
        .filter(|a| !a.is_empty())
    {
        return Ok(PositiveMatch::CatalogueHash {
            asset: asset.clone(),
        });
    }
    Err(TakedownError::NoPositiveMatch {
        finding_id: finding.finding_id.clone(),
        fp_max,
    })
}

/// A takedown notice: everything the renderers print, nothing they look up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// Stable id derived from finding, level and recipient (see [`Notice::id_for`]).
    pub notice_id: String,
    /// The finding it is about.
    pub finding_id: String,
    /// UTC unix seconds the notice was made.
    pub created_at: i64,
    /// Sender.
    pub complainant: Complainant,
    /// Electronic signature (`/Name/`).
    pub signature: String,
    /// The work.
    pub work: Work,
    /// Exact infringing URLs (one host).
    pub infringing_urls: Vec<String>,
    /// File name of the item.
    pub file_name: String,
    /// Explanation why the content is illegal (DSA (a)).
    pub explanation: String,
    /// Good-faith statement (DMCA (v)).
    pub good_faith: String,
    /// Accuracy and authority statement under penalty of perjury (DMCA (vi), DSA (d)).
    pub accuracy: String,
    /// Recipient.
    pub recipient: Recipient,
    /// The positive match.
    pub evidence_match: PositiveMatch,
    /// Server address at capture.
    pub ip: IpAddr,
    /// Capture time (UTC unix seconds).
    pub captured_at: i64,
    /// When the finding was first seen (UTC unix seconds).
    pub found_at: i64,
    /// Captured bytes.
    pub byte_len: u64,
    /// SHA-256 of the captured bytes (hex).
    pub sha256: String,
    /// BLAKE3 of the captured bytes (hex).
    pub blake3: String,
}

/// Statement texts. Each contains the words the validator requires.
pub const GOOD_FAITH: &str = "I have a good faith belief that use of the material in the manner complained of is not authorized by the copyright owner, its agent, or the law.";
/// DMCA (vi) and DSA (d) in one statement.
pub const ACCURACY: &str = "The information in this notification is accurate and complete, and I state in the bona fide belief that it is, and under penalty of perjury, that I am authorized to act on behalf of the owner of an exclusive right that is allegedly infringed.";

impl Notice {
    /// The notice id for a finding, level and recipient address: `N-` and 16 hex digits of
    /// BLAKE3. Deterministic, so re-running a pipeline makes the same id (and the same
    /// Message-ID), which the outbox uses to never send twice.
    pub fn id_for(finding_id: &str, level: Level, recipient_email: &str) -> String {
        let mut h = blake3::Hasher::new_derive_key("leaktrace takedown notice id v1");
        for part in [finding_id, level.as_str(), recipient_email] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        let hex = h.finalize().to_hex();
        format!("N-{}", &hex[..16])
    }

    /// Builds and validates a notice for `finding`. Refuses without a positive match
    /// ([`gate`]) or with a missing element ([`Notice::validate`]).
    pub fn build(
        finding: &FindingEvidence,
        complainant: &Complainant,
        work: &Work,
        recipient: Recipient,
        fp_max: f64,
        now: i64,
    ) -> Result<Notice, TakedownError> {
        let evidence_match = gate(finding, fp_max)?;
        let work_title = if work.title.is_empty() {
            finding.catalogue_names.first().cloned().unwrap_or_default()
        } else {
            work.title.clone()
        };
        let explanation = format!(
            "The file at the URL below is an unauthorized copy of \"{work_title}\", whose copyright is held by {owner}. It was identified on {when}: {how}. SHA-256 of the copy: {sha}.",
            owner = complainant
                .principal
                .as_deref()
                .unwrap_or(&complainant.organization),
            when = crate::render::rfc3339(finding.captured_at),
            how = evidence_match.describe(),
            sha = finding.sha256,
        );
        let notice = Notice {
            notice_id: Notice::id_for(&finding.finding_id, recipient.level, &recipient.email),
            finding_id: finding.finding_id.clone(),
            created_at: now,
            signature: if complainant.name.trim().is_empty() {
                String::new()
            } else {
                format!("/{}/", complainant.name.trim())
            },
            complainant: complainant.clone(),
            work: Work {
                title: work_title,
                // The catalogue's own file hashes are for the gate, not for recipients.
                asset_sha256: Vec::new(),
                ..work.clone()
            },
            infringing_urls: vec![finding.url.clone()],
            file_name: finding.file_name(),
            explanation,
            good_faith: GOOD_FAITH.to_owned(),
            accuracy: ACCURACY.to_owned(),
            recipient,
            evidence_match,
            ip: finding.resolved_ip,
            captured_at: finding.captured_at,
            found_at: finding.found_at,
            byte_len: finding.byte_len,
            sha256: finding.sha256.clone(),
            blake3: finding.blake3.clone(),
        };
        notice.validate()?;
        Ok(notice)
    }

    /// Checks every DMCA § 512(c)(3)(A) and DSA Art. 16(2) element; the first missing one
    /// is returned as [`TakedownError::Incomplete`].
    pub fn validate(&self) -> Result<(), TakedownError> {
        let missing = |element| Err(TakedownError::Incomplete { element });
        let blank = |s: &str| s.trim().is_empty();
        let c = &self.complainant;
        if blank(&c.name) || self.signature.trim_matches('/').trim().is_empty() {
            return missing(Element::DmcaSignature);
        }
        if blank(&self.work.title) {
            return missing(Element::DmcaWork);
        }
        let urls_ok = !self.infringing_urls.is_empty()
            && self.infringing_urls.iter().all(|u| {
                url::Url::parse(u)
                    .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host().is_some())
            });
        if !urls_ok {
            return missing(Element::DmcaMaterial);
        }
        if blank(&c.address) && blank(&c.phone) && !plausible_email(&c.email) {
            return missing(Element::DmcaContact);
        }
        let lower = |s: &str| s.to_lowercase();
        if !lower(&self.good_faith).contains("good faith") {
            return missing(Element::DmcaGoodFaith);
        }
        let acc = lower(&self.accuracy);
        if !(acc.contains("accurate")
            && acc.contains("penalty of perjury")
            && acc.contains("authorized"))
        {
            return missing(Element::DmcaAccuracy);
        }
        if blank(&self.explanation) {
            return missing(Element::DsaExplanation);
        }
        // DSA (b) is the same URL requirement as DMCA (iii); checked above, kept for naming.
        if !urls_ok {
            return missing(Element::DsaLocation);
        }
        if !plausible_email(&c.email) {
            return missing(Element::DsaNotifier);
        }
        if !(acc.contains("bona fide") && acc.contains("complete")) {
            return missing(Element::DsaBonaFide);
        }
        let to_ok = match &self.recipient.channel {
            Channel::Email { to } => plausible_email(to),
            Channel::Http { endpoint } => url::Url::parse(endpoint).is_ok(),
        };
        if !to_ok || !plausible_email(&self.recipient.email) {
            return missing(Element::Recipient);
        }
        Ok(())
    }

    /// The host of the first infringing URL.
    pub fn host(&self) -> String {
        self.infringing_urls
            .first()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// RFC 5322 Message-ID derived from the notice id: a resend carries the same id.
    pub fn message_id(&self) -> String {
        format!("<{}@takedown.leaktrace>", self.notice_id)
    }
}

/// `local@domain.tld` with no spaces: enough to refuse an empty or mistyped field.
pub fn plausible_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}
