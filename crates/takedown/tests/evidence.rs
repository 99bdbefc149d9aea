//! Evidence bundles: written, sealed, verified; a flipped byte, a missing file and an added
//! file are each reported as tampering. The tar archive of a bundle: deterministic, read and
//! written back by GNU tar (a tool no one here wrote), verified like the directory, tampering
//! inside a repacked archive reported, links and garbage refused. Signatures: a bundle
//! re-hashed after an edit, re-signed by another key, or stripped of its signature is not
//! intact or not trusted, and a notice is never added to such a bundle.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::common::*;

use leaktrace_takedown::{FindingEvidence, Notice, evidence};
use std::fs;
use std::path::Path;
use std::process::Command;

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
    evidence::write_bundle(&dir, &f, NOW, &signer()).unwrap();
    let n = Notice::build(&f, &complainant(), &work(), recipient(), 1e-6, NOW).unwrap();
    evidence::add_notice(&dir, &n, NOW + 5, &signer()).unwrap();
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
fn manifest_is_signed_by_the_operator_key() {
    let (_d, dir, _) = bundle();
    let v = evidence::verify(&dir).unwrap();
    let op = signer();
    assert!(v.is_trusted(op.trusted()), "{v:?}");
    match &v.signature {
        evidence::SignatureStatus::Valid {
            key_version,
            public_key,
        } => {
            assert_eq!(*key_version, 1);
            assert_eq!(public_key, &op.key().public_key_hex());
        }
        other => panic!("{other:?}"),
    }
    // Not trusted by anyone else's key list.
    let other = leaktrace_core::MasterKey::from_bytes([7; 32], leaktrace_core::KeyVersion::new(1));
    assert!(!v.is_trusted(&[other.evidence_key().public_key()]));
}

/// Rewrites a bundle's manifest over its files as they are now, the way a forger without the
/// key would (hashes recomputed), signed by `by` or left with the old signature.
fn rehash(dir: &Path, by: Option<&evidence::EvidenceSigner>) {
    match by {
        Some(s) => {
            evidence::seal(dir, "F-1", NOW + 9, s).unwrap();
        }
        None => {
            let sig = fs::read(dir.join(evidence::SIGNATURE)).unwrap();
            evidence::seal(dir, "F-1", NOW + 9, &signer()).unwrap();
            // Keep the manifest the forger wrote, with the signature of the old one.
            let mp = dir.join(evidence::MANIFEST);
            let mut m: evidence::Manifest =
                serde_json::from_slice(&fs::read(&mp).unwrap()).unwrap();
            m.updated_at += 1;
            fs::write(&mp, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
            fs::write(dir.join(evidence::SIGNATURE), sig).unwrap();
        }
    }
}

#[test]
fn rehashed_manifest_without_the_key_is_caught() {
    let (_d, dir, f) = bundle();
    fs::write(dir.join("detect.json"), b"{\"verdict\": \"accused\"}").unwrap();
    rehash(&dir, None);
    let v = evidence::verify(&dir).unwrap();
    assert!(v.modified.is_empty() && v.added.is_empty(), "{v:?}");
    assert!(!v.is_intact(), "{v:?}");
    assert!(
        matches!(&v.signature, evidence::SignatureStatus::Invalid { .. }),
        "{v:?}"
    );
    // No notice is added to it, and nothing is written.
    let before = fs::read(dir.join(evidence::MANIFEST)).unwrap();
    let n = Notice::build(&f, &complainant(), &work(), recipient(), 1e-6, NOW).unwrap();
    let e = evidence::add_notice(&dir, &n, NOW + 20, &signer()).unwrap_err();
    assert!(e.to_string().contains("not re-sealed"), "{e}");
    assert_eq!(fs::read(dir.join(evidence::MANIFEST)).unwrap(), before);

    // Re-signed by another key: valid, intact, but not trusted, and refused for notices.
    let forger = evidence::EvidenceSigner::new(
        leaktrace_core::MasterKey::from_bytes([9; 32], leaktrace_core::KeyVersion::new(1))
            .evidence_key(),
        [],
    );
    rehash(&dir, Some(&forger));
    let v = evidence::verify(&dir).unwrap();
    assert!(v.is_intact() && !v.is_trusted(signer().trusted()), "{v:?}");
    assert!(evidence::add_notice(&dir, &n, NOW + 20, &signer()).is_err());

    // Stripped of its signature: not intact.
    fs::remove_file(dir.join(evidence::SIGNATURE)).unwrap();
    let v = evidence::verify(&dir).unwrap();
    assert_eq!(v.signature, evidence::SignatureStatus::Unsigned);
    assert!(!v.is_intact());
    assert!(v.problems().contains("no MANIFEST.sig"), "{}", v.problems());
}

#[test]
fn tampered_file_blocks_adding_a_notice() {
    let (_d, dir, f) = bundle();
    let p = dir.join("chain.json");
    let mut b = fs::read(&p).unwrap();
    b[3] ^= 0x20;
    fs::write(&p, b).unwrap();
    let n = Notice::build(&f, &complainant(), &work(), recipient(), 1e-6, NOW).unwrap();
    let e = evidence::add_notice(&dir, &n, NOW + 20, &signer()).unwrap_err();
    assert!(e.to_string().contains("modified: chain.json"), "{e}");
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

/// `tar ARGS` (GNU tar), which must succeed; its stdout.
fn tar(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new("tar").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// GNU tar packs `root/bundle` into `out` (with its directory members).
fn repack(root: &Path, out: &Path) {
    tar(&[
        "-cf".as_ref(),
        out.as_ref(),
        "-C".as_ref(),
        root.as_ref(),
        "bundle".as_ref(),
    ]);
}

#[test]
fn archive_is_verified_like_the_directory() {
    let (d, dir, _) = bundle();
    let ar = evidence::write_archive(&dir).unwrap();
    assert_eq!(ar, d.path().join("bundle.tar"));
    let v = evidence::verify(&ar).unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v, evidence::verify(&dir).unwrap());
    // The same bundle packs to the same bytes.
    let first = fs::read(&ar).unwrap();
    evidence::write_archive(&dir).unwrap();
    assert_eq!(fs::read(&ar).unwrap(), first);

    // GNU tar lists the manifest first, then every file under the bundle's name, and
    // extracts a copy that verifies.
    let listed: Vec<String> = tar(&["-tf".as_ref(), ar.as_ref()])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(listed[0], "bundle/MANIFEST.json");
    assert_eq!(listed[1], "bundle/MANIFEST.sig");
    assert_eq!(listed.len(), 2 + v.intact.len(), "{listed:?}");
    assert_eq!(
        listed
            .iter()
            .filter(|p| p.starts_with("bundle/notices/"))
            .count(),
        3
    );
    let x = d.path().join("x");
    fs::create_dir(&x).unwrap();
    tar(&["-xf".as_ref(), ar.as_ref(), "-C".as_ref(), x.as_ref()]);
    assert!(evidence::verify(&x.join("bundle")).unwrap().is_intact());
    // Repacked unchanged by GNU tar (directory members and all): intact.
    let same = d.path().join("same.tar");
    repack(&x, &same);
    assert!(evidence::verify(&same).unwrap().is_intact());

    // Tampered inside, repacked: each change named.
    let p = x.join("bundle/chain.json");
    let mut b = fs::read(&p).unwrap();
    b[3] ^= 0x20;
    fs::write(&p, b).unwrap();
    fs::remove_file(x.join("bundle/plot.png")).unwrap();
    fs::write(x.join("bundle/notices/extra.txt"), b"added later").unwrap();
    let bad = d.path().join("bad.tar");
    repack(&x, &bad);
    let v = evidence::verify(&bad).unwrap();
    assert!(!v.is_intact());
    assert_eq!(v.modified, ["chain.json"]);
    assert_eq!(v.missing, ["plot.png"]);
    assert_eq!(v.added, ["notices/extra.txt"]);

    // Not a bundle archive: a link member, or not a tar at all.
    fs::remove_file(x.join("bundle/notices/extra.txt")).unwrap();
    std::os::unix::fs::symlink("chain.json", x.join("bundle/link.json")).unwrap();
    let linked = d.path().join("linked.tar");
    repack(&x, &linked);
    let e = evidence::verify(&linked).unwrap_err().to_string();
    assert!(e.contains("regular files only"), "{e}");
    let junk = d.path().join("junk.tar");
    fs::write(&junk, b"not a tar archive at all").unwrap();
    assert!(evidence::verify(&junk).is_err());
}

#[test]
fn detect_report_of_another_title_or_file_is_refused() {
    let report: serde_json::Value =
        serde_json::from_str(include_str!("data/detect-unmarked-20s.json")).unwrap();
    // Another title.
    let mut other = report.clone();
    other["title"] = "sintel".into();
    let e = finding().with_detect_report(other).unwrap_err().to_string();
    assert!(e.contains("sintel") && e.contains("bbb"), "{e}");
    // No title at all: it cannot be matched.
    let mut untitled = report.clone();
    untitled.as_object_mut().unwrap().remove("title");
    assert!(finding().with_detect_report(untitled).is_err());
    // The digest of another file.
    let mut other_file = report.clone();
    other_file["suspect_sha256"] = "00".repeat(32).into();
    let e = finding()
        .with_detect_report(other_file)
        .unwrap_err()
        .to_string();
    assert!(e.contains("SHA-256"), "{e}");
    // The captured file's own digest (any case): accepted.
    let mut same = report;
    same["suspect_sha256"] = finding().sha256.to_uppercase().into();
    assert!(finding().with_detect_report(same).is_ok());
}

#[test]
fn a_bundle_sealed_before_signing_can_be_signed_once_checked() {
    let (_d, dir, _) = bundle();
    fs::remove_file(dir.join(evidence::SIGNATURE)).unwrap();
    assert!(!evidence::verify(&dir).unwrap().is_intact());
    // A changed file is never signed over.
    let p = dir.join("finding.json");
    let good = fs::read(&p).unwrap();
    fs::write(&p, b"{}").unwrap();
    let e = evidence::sign_unsigned(&dir, NOW + 30, &signer()).unwrap_err();
    assert!(e.to_string().contains("modified: finding.json"), "{e}");
    fs::write(&p, good).unwrap();
    evidence::sign_unsigned(&dir, NOW + 30, &signer()).unwrap();
    let v = evidence::verify(&dir).unwrap();
    assert!(v.is_intact() && v.is_trusted(signer().trusted()), "{v:?}");
    // A signed bundle is not signed again.
    assert!(evidence::sign_unsigned(&dir, NOW + 40, &signer()).is_err());
}
