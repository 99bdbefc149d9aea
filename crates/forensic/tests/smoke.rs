//! The smoke variant of the forensic suite on the real corpus (CI): a 100 s excerpt of the film
//! at 360p, embedded, sessions issued into a SQLite store, the served stream, two attacks, one
//! collusion and three innocent sources through ffmpeg and detect. Asserts that the report and
//! plots are written and that the pipeline's figures are sane: the unattacked stream is decoded
//! correctly and accuses the right session at 10⁻⁶ among 10⁶, and no innocent is accused.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use leaktrace_forensic::{Config, Mode, run};
use std::path::PathBuf;

fn corpus() -> PathBuf {
    let dir = std::env::var_os("LEAKTRACE_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../corpus/cache"),
        PathBuf::from,
    );
    assert!(
        dir.join("bbb.mp4").is_file(),
        "corpus missing in {}: run corpus/fetch.sh",
        dir.display()
    );
    dir
}

#[test]
fn smoke_suite_runs_end_to_end() {
    let out = tempfile::tempdir().unwrap();
    let mut cfg = Config::for_mode(Mode::Smoke, corpus(), out.path().to_path_buf());
    cfg.command = "cargo test -p leaktrace-forensic --test smoke".into();
    cfg.commit = "test".into();
    let report = run(&cfg, &|e| eprintln!("{e:?}")).unwrap();
    let written = leaktrace_forensic::report::write(&report).unwrap();
    let md = std::fs::read_to_string(&written.markdown).unwrap();
    eprintln!("{md}");
    assert!(md.contains("## Targets"));
    for p in &written.plots {
        let png = std::fs::read(p).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{}", p.display());
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written.json).unwrap()).unwrap();
    assert_eq!(json["schema"], "leaktrace.forensic.v1");

    // The stream as served: every position observed and decided as served, pirate accused.
    let none = report.attacks.iter().find(|a| a.name == "none").unwrap();
    assert!(none.error.is_none(), "{:?}", none.error);
    let acc = none.accuracy.unwrap();
    assert_eq!(acc.observed as u32, report.package.positions);
    assert_eq!(acc.wrong, 0, "{acc:?}");
    let sweep = none.sweep.as_ref().unwrap();
    assert!(sweep.needed.is_some(), "{sweep:?}");
    assert_eq!(sweep.accused_guilty, 1);
    // Every leak was decided (attacks, collusion, innocents).
    for r in report
        .attacks
        .iter()
        .chain(&report.collusion)
        .chain(&report.innocent_sources)
    {
        assert!(r.error.is_none(), "{}: {:?}", r.name, r.error);
    }
    // No innocent accused, over many trials.
    assert!(report.innocents_total.trials >= 5000);
    assert_eq!(report.innocents_total.accused, 0);
    // Invisibility figures are real measurements.
    let inv = &report.invisibility;
    assert!(inv.a_vs_plain.frames > 0 && inv.a_vs_plain.psnr_y_mean > 30.0);
    assert!(inv.mark_only.frames > 0 && inv.mark_only.a_mean > 30.0);
}
