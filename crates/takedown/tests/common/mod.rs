//! Shared fixtures for the takedown tests.
#![allow(dead_code)]

use leaktrace_takedown::{
    AccusedSession, Channel, Complainant, FindingEvidence, Hop, Level, Recipient, Work,
};
use std::path::PathBuf;

/// Test crate directory.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The ACNS 1.2 schema (with its imports beside it, for offline validation).
pub fn acns_xsd() -> PathBuf {
    let p = crate_dir().join("../../../shared/schemas/acns/acns-1.2.xsd");
    if p.is_file() {
        return p;
    }
    PathBuf::from("/work/shared/schemas/acns/acns-1.2.xsd")
}

/// A finding on a documentation address (192.0.2.0/24) with a redirect and an accusation.
pub fn finding() -> FindingEvidence {
    FindingEvidence {
        finding_id: "F-2026-000123".into(),
        url: "https://files.example.net/d/abc123/bbb.2026.720p.mp4".into(),
        page_url: Some("https://pirate.example.org/watch/bbb".into()),
        chain: vec![
            Hop {
                url: "https://pirate.example.org/dl/bbb".into(),
                status: 302,
                ip: Some("198.51.100.7".parse().unwrap()),
                at: 1_795_273_440,
                headers: vec![(
                    "location".into(),
                    "https://files.example.net/d/abc123/bbb.2026.720p.mp4".into(),
                )],
            },
            Hop {
                url: "https://files.example.net/d/abc123/bbb.2026.720p.mp4".into(),
                status: 200,
                ip: Some("192.0.2.10".parse().unwrap()),
                at: 1_795_273_441,
                headers: vec![("content-type".into(), "video/mp4".into())],
            },
        ],
        resolved_ip: "192.0.2.10".parse().unwrap(),
        found_at: 1_795_273_000,
        captured_at: 1_795_273_441,
        byte_len: 48_213_772,
        blake3: "6f1c2b7e0c3f4d9aa8d5b1f0e3c2d4b5a6978877665544332211009988776655".into(),
        sha256: "9b2f1a7c3e5d4b6a8c0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c".into(),
        title_id: "bbb".into(),
        catalogue_names: vec!["Big Buck Bunny".into()],
        catalogue_hash_match: None,
        verdict: Some("accused".into()),
        detect_fp: Some(1e-6),
        accused: vec![AccusedSession {
            session_id: "s-0017".into(),
            probability: 2.5e-9,
        }],
        positions_used: Some(60),
        detect_report: None,
        plot_path: None,
    }
}

/// The sender.
pub fn complainant() -> Complainant {
    Complainant {
        name: "Jane Roe".into(),
        organization: "Example Studios Anti-Piracy".into(),
        principal: Some("Blender Foundation".into()),
        email: "antipiracy@studio.example".into(),
        address: "1 Example Way, Springfield, 00000, US".into(),
        phone: "+1 555 0100".into(),
    }
}

/// The work.
pub fn work() -> Work {
    Work {
        title: "Big Buck Bunny".into(),
        description: "Animated short film, 2008, 10 min".into(),
        authorized_url: Some("https://studio.example/films/bbb".into()),
    }
}

/// A hosting provider's abuse desk.
pub fn recipient() -> Recipient {
    Recipient {
        name: "Example Hosting Ltd".into(),
        email: "abuse@hosting.example".into(),
        level: Level::Host,
        channel: Channel::Email {
            to: "abuse@hosting.example".into(),
        },
    }
}

/// Compares `actual` with the golden file `name`; `UPDATE_GOLDEN=1` rewrites it.
pub fn golden(name: &str, actual: &str) {
    let p = crate_dir().join("tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&p, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create)", p.display()));
    assert_eq!(
        actual,
        want,
        "output differs from golden file {}",
        p.display()
    );
}
