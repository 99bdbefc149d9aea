//! The smoke variant of the forensic suite on the real corpus (CI): an 80 s excerpt of the film
//! at 360p, embedded, sessions issued into a SQLite store, the served stream, two attacks, one
//! collusion and three innocent sources through ffmpeg and detect. Asserts that the report and
//! plots are written and that the pipeline's figures are sane: the unattacked stream is decoded
//! correctly and accuses the right session, and innocents are accused no more often than the
//! stated probability allows.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use leaktrace_forensic::stats::{ALPHAS, consistent_with_at_most};
use leaktrace_forensic::{Config, Mode, run};
use std::path::PathBuf;

/// The corpus directory, which must hold the film (`bbb.mp4`).
fn corpus() -> PathBuf {
    leaktrace_testkit::corpus("bbb.mp4");
    leaktrace_testkit::corpus_dir()
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
    // Innocents, over many trials. The smoke's operating point (1e-2 among 100, so 1e-4 per
    // session) lets a correct bound accuse about 0.8 of 8000 innocents, so the check is that
    // the false accusations and the calibration counts are what the stated probabilities allow
    // (a one-sided binomial test at 1e-6: a correct bound fails it once in a million runs, one
    // stated ten times too small fails nearly always), not a bare zero.
    let inn = &report.innocents_total;
    assert!(inn.trials >= 5000);
    let level = cfg.op.per_session();
    assert!(
        consistent_with_at_most(inn.accused, inn.trials, level, 1e-6),
        "{} false accusations in {} at {level:e} per session",
        inn.accused,
        inn.trials
    );
    for (k, a) in inn.below_alpha.iter().zip(ALPHAS) {
        assert!(
            consistent_with_at_most(*k, inn.trials, a, 1e-6),
            "{k} of {} innocents with tail ≤ {a:e}",
            inn.trials
        );
    }
    // Invisibility figures are real measurements.
    let inv = &report.invisibility;
    assert!(inv.a_vs_plain.frames > 0 && inv.a_vs_plain.psnr_y_mean > 30.0);
    assert!(inv.mark_only.frames > 0 && inv.mark_only.a_mean > 30.0);
}
