//! Evidence bundles: written, sealed, verified; a flipped byte, a missing file and an added
//! file are each reported as tampering.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
use common::*;

use leaktrace_takedown::{FindingEvidence, Notice, evidence};
use std::fs;

const NOW: i64 = 1_795_274_000;

fn bundle() -> (tempfile::TempDir, std::path::PathBuf, FindingEvidence) {
    let d = tempfile::tempdir().unwrap();
    let plot = d.path().join("detect.png");
    fs::write(
        &plot,
        b"\x89PNG\r\n\x1a\nnot really a plot but bytes to hash",
    )
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_str(include_str!("data/detect-unmarked-20s.json")).unwrap();
    let mut f = finding().with_detect_report(report).unwrap();
    // The fixture is a real "no accusation" report; keep the synthetic accusation for the
    // notice part of the bundle.
    f.verdict = Some("accused".into());
    f.accused = finding().accused;
    f.plot_path = Some(plot);
    let dir = d.path().join("bundle");
    evidence::write_bundle(&dir, &f, NOW).unwrap();
    let n = Notice::build(&f, &complainant(), &work(), recipient(), 1e-6, NOW).unwrap();
    evidence::add_notice(&dir, &n, NOW + 5).unwrap();
    (d, dir, f)
}

#[test]
fn bundle_is_complete_and_intact() {
    let (_d, dir, f) = bundle();
    let v = evidence::verify(&dir).unwrap();
    assert!(v.is_intact(), "{v:?}");
    for want in ["finding.json", "chain.json", "detect.json", "plot.png"] {
        assert!(
            v.intact.iter().any(|p| p == want),
            "{want} not in {:?}",
            v.intact
        );
    }
    assert_eq!(
        v.intact
            .iter()
            .filter(|p| p.starts_with("notices/"))
            .count(),
        3
    );
    // The chain keeps redirects, statuses, IPs and UTC times.
    let chain: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("chain.json")).unwrap()).unwrap();
    assert_eq!(chain[0]["status"], 302);
    assert_eq!(chain[1]["ip"], "192.0.2.10");
    let rec: FindingEvidence =
        serde_json::from_slice(&fs::read(dir.join("finding.json")).unwrap()).unwrap();
    assert_eq!(rec.sha256, f.sha256);
    assert_eq!(rec.blake3, f.blake3);
    // The manifest's hashes are real: recompute one independently.
    let m: evidence::Manifest =
        serde_json::from_slice(&fs::read(dir.join(evidence::MANIFEST)).unwrap()).unwrap();
    let e = m.files.iter().find(|e| e.path == "plot.png").unwrap();
    let bytes = fs::read(dir.join("plot.png")).unwrap();
    assert_eq!(e.blake3, blake3::hash(&bytes).to_hex().to_string());
    use sha2::Digest;
    assert_eq!(e.sha256, evidence::hex(&sha2::Sha256::digest(&bytes)));
}

#[test]
fn flipped_byte_is_detected() {
    let (_d, dir, _) = bundle();
    let p = dir.join("detect.json");
    let mut b = fs::read(&p).unwrap();
    let i = b.len() / 2;
    b[i] ^= 0x01;
    fs::write(&p, b).unwrap();
    let v = evidence::verify(&dir).unwrap();
    assert!(!v.is_intact());
    assert_eq!(v.modified, vec!["detect.json".to_owned()]);
    assert!(v.missing.is_empty() && v.added.is_empty());
}

#[test]
fn missing_file_is_detected() {
    let (_d, dir, _) = bundle();
    let notice_txt = fs::read_dir(dir.join("notices"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "txt"))
        .unwrap();
    fs::remove_file(&notice_txt).unwrap();
    let v = evidence::verify(&dir).unwrap();
    assert!(!v.is_intact());
    assert_eq!(v.missing.len(), 1);
    assert!(v.missing[0].starts_with("notices/") && v.missing[0].ends_with(".txt"));
}

#[test]
fn added_file_is_detected() {
    let (_d, dir, _) = bundle();
    fs::write(dir.join("notices/extra.txt"), b"slipped in").unwrap();
    let v = evidence::verify(&dir).unwrap();
    assert!(!v.is_intact());
    assert_eq!(v.added, vec!["notices/extra.txt".to_owned()]);
}

#[test]
fn manifest_path_escaping_the_bundle_is_refused() {
    let (_d, dir, _) = bundle();
    let mp = dir.join(evidence::MANIFEST);
    let text = fs::read_to_string(&mp)
        .unwrap()
        .replace("\"chain.json\"", "\"../chain.json\"");
    fs::write(&mp, text).unwrap();
    assert!(evidence::verify(&dir).is_err());
}

#[test]
fn real_no_accusation_report_passes_no_gate() {
    let report: serde_json::Value =
        serde_json::from_str(include_str!("data/detect-unmarked-20s.json")).unwrap();
    let mut f = finding();
    f.accused.clear();
    let f = f.with_detect_report(report).unwrap();
    assert_eq!(f.verdict.as_deref(), Some("no accusation"));
    let e = Notice::build(&f, &complainant(), &work(), recipient(), 1e-6, NOW).unwrap_err();
    assert!(e.to_string().contains("no positive match"), "{e}");
}
