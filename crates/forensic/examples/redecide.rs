//! Re-runs the decision on the kept files of one forensic job, for investigating an attack
//! without re-encoding anything.
//!
//! ```sh
//! leaktrace bench forensic --quick --only camcord --keep /tmp/fq --out /tmp/fq/out --no-vmaf
//! cargo run --release -p leaktrace-forensic --example redecide -- /tmp/fq /tmp/fq/job01-camcord \
//!     [ERASURE_Z [BOUNDARY_FRAMES [OUT.json]]]
//! ```
//!
//! Prints the registration, the sign accuracy against the leak's variants, the |z|
//! distribution, and the segments needed to accuse at 10⁻⁶ among 10⁶ with the given erasure
//! threshold (default: detect's, none) and with none. `BOUNDARY_FRAMES` overrides detect's
//! margin around position boundaries; `OUT.json` receives the decisions.

use leaktrace_core::{KeyVersion, MasterKey, SessionId, TitleId, Variant};
use leaktrace_detect::{DecideOptions, PositionDecision, decide};
use leaktrace_forensic::stats::{Operating, sweep};
use leaktrace_reference::Reference;
use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(work), Some(job)) = (args.get(1), args.get(2)) else {
        return Err(
            "usage: redecide WORK_DIR JOB_DIR [ERASURE_Z [BOUNDARY_FRAMES [OUT.json]]]".into(),
        );
    };
    let defaults = DecideOptions::default();
    let erasure_z: f64 = args.get(3).map_or(Ok(defaults.erasure_z), |s| s.parse())?;
    let boundary_frames: f64 = args
        .get(4)
        .map_or(Ok(defaults.boundary_frames), |s| s.parse())?;
    let (work, job) = (PathBuf::from(work), PathBuf::from(job));
    let key = MasterKey::from_hex(
        std::fs::read_to_string(work.join("key.hex"))?.trim(),
        KeyVersion::new(1),
    )?;
    let title = TitleId::new("forensic")?;
    let reference = Reference::load(&work.join("pkg/reference"))?;
    let suspect = ["attacked.mp4", "averaged.mp4", "stream.mp4"]
        .iter()
        .map(|f| job.join(f))
        .find(|p| p.is_file())
        .ok_or("no attacked.mp4, averaged.mp4 or stream.mp4 in the job directory")?;
    let truth: Vec<Option<Variant>> = std::fs::read_to_string(job.join("truth.txt"))
        .unwrap_or_default()
        .chars()
        .map(|c| match c {
            'A' => Some(Variant::A),
            'B' => Some(Variant::B),
            _ => None,
        })
        .collect();
    let guilty: Vec<SessionId> = std::fs::read_to_string(job.join("guilty.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(SessionId::new)
        .collect::<Result<_, _>>()?;

    let opts = DecideOptions {
        erasure_z,
        boundary_frames,
        ..defaults
    };
    let t = std::time::Instant::now();
    let d = decide(&suspect, &reference, &key.pattern_key(&title), &opts)?;
    if let Some(out) = args.get(5) {
        std::fs::write(out, serde_json::to_vec_pretty(&d)?)?;
    }
    println!(
        "decide {:.1} s; offset {}, registration MAD {:.2}, score {:.3}, visible {:.3}",
        t.elapsed().as_secs_f64(),
        d.offset,
        d.registration_mad,
        d.registration.geometry.score,
        d.registration.geometry.visible
    );
    println!(
        "geometry {:?} radial {:?}",
        d.registration.geometry.h, d.registration.geometry.radial
    );
    let rms = (d.positions.iter().map(|p| p.z * p.z).sum::<f64>()
        / d.positions.len().max(1) as f64)
        .sqrt();
    println!("rms z {rms:.2} over {} positions", d.positions.len());

    let signed: Vec<f64> = d
        .positions
        .iter()
        .filter_map(|p| {
            let t = truth.get(p.position as usize).copied().flatten()?;
            Some(if t == Variant::A { p.z } else { -p.z })
        })
        .collect();
    let n = signed.len().max(1) as f64;
    let right = signed.iter().filter(|&&z| z > 0.0).count();
    let mean = signed.iter().sum::<f64>() / n;
    let mut sorted = signed.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |f: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * f) as usize)
            .copied()
    };
    println!(
        "{} positions with a single truth: sign right {} ({:.2} %), signed z mean {:.2}, \
         quantiles 5/25/50/75 % {:?} {:?} {:?} {:?}, erased {}",
        signed.len(),
        right,
        100.0 * right as f64 / n,
        mean,
        q(0.05),
        q(0.25),
        q(0.5),
        q(0.75),
        d.positions.iter().filter(|p| p.erased).count()
    );
    let book = key.codebook(&title);
    let op = Operating {
        fp: 1e-6,
        registry: 1_000_000,
    };
    for (label, ez) in [("given", erasure_z), ("none", 0.0)] {
        let pos: Vec<PositionDecision> = d
            .positions
            .iter()
            .map(|p| PositionDecision {
                erased: p.z.abs() < ez,
                ..p.clone()
            })
            .collect();
        let s = sweep(&pos, &book, op, &guilty);
        println!(
            "erasure {label} ({ez}): needed {:?}, stable {:?}, p at full capture 1e{:.1}",
            s.needed, s.needed_stable, s.log10_probability
        );
    }
    Ok(())
}
