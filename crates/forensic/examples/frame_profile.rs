//! Where in a position the mark sits: the correlation of each suspect frame, minus the plain
//! encode's frame, with its position's keyed pattern, averaged by the frame's place within the
//! position. For leaks without a geometric or temporal attack (re-encodes), whose frames line
//! up one to one with the plain encode's.
//!
//! ```sh
//! leaktrace bench forensic --quick --only crf40-360p --keep /tmp/fq --out /tmp/fq/out --no-vmaf
//! cargo run --release -p leaktrace-forensic --example frame_profile -- /tmp/fq \
//!     /tmp/fq/job01-crf40-360p [attacked.mp4|stream.mp4]
//! ```
//!
//! Prints, for each frame index within a position, the mean signed correlation with the
//! position's own pattern (signed by the leak's variant there), with the previous two
//! positions' patterns (signed by their variants: what the re-encode carried over) and with
//! the next position's, separately for positions that keep the previous variant and positions
//! that switch.

use leaktrace_core::{KeyVersion, MasterKey, Pattern, Position, TitleId};
use leaktrace_detect::correlate::{Grid, HIGHPASS_RADIUS};
use leaktrace_media::Decoder;
use leaktrace_reference::Reference;
use leaktrace_reference::normalised_correlation;
use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(work), Some(job)) = (args.get(1), args.get(2)) else {
        return Err("usage: frame_profile WORK_DIR JOB_DIR [FILE]".into());
    };
    let (work, job) = (PathBuf::from(work), PathBuf::from(job));
    let file = args.get(3).map_or("attacked.mp4", String::as_str);
    let key = MasterKey::from_hex(
        std::fs::read_to_string(work.join("key.hex"))?.trim(),
        KeyVersion::new(1),
    )?;
    let pattern_key = key.pattern_key(&TitleId::new("forensic")?);
    let reference = Reference::load(&work.join("pkg/reference"))?;
    let [w, h] = reference.meta.stats_size;
    let [num, den] = reference.meta.frame_rate;
    let per_position =
        (reference.meta.segment_ms as f64 * f64::from(num) / f64::from(den) / 1000.0).round();
    let per_position = per_position.max(1.0) as usize;
    let truth: Vec<i8> = std::fs::read_to_string(job.join("truth.txt"))?
        .chars()
        .map(|c| match c {
            'A' => 1,
            'B' => -1,
            _ => 0,
        })
        .collect();
    let plain = std::fs::read_dir(work.join("plain"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "mp4"))
        .ok_or("no plain encode in WORK_DIR/plain")?;
    let mut suspect = Decoder::open(&job.join(file))?;
    let mut plain = Decoder::open(&plain)?;
    let grid = Grid::new(w, h, (0..w * h).collect());
    // Every position's pattern, whitened, up to the one after the last: rendered once.
    let patterns: Vec<Vec<f64>> = (0..=truth.len())
        .map(|p| {
            let field: Vec<f64> = Pattern::new(&pattern_key, Position::new(p as u32))
                .render(w, h)
                .into_iter()
                .map(f64::from)
                .collect();
            grid.highpass(&field, HIGHPASS_RADIUS)
        })
        .collect();
    // [switch?][k] → (sums of own, p-1, p-2, p+1; count)
    let mut acc = vec![vec![([0.0f64; 4], 0usize); per_position]; 2];
    let mut i = 0usize;
    while let (Some(s), Some(r)) = (suspect.next_luma(w, h)?, plain.next_luma(w, h)?) {
        let (p, k) = (i / per_position, i % per_position);
        i += 1;
        let (Some(&t), Some(&prev)) = (truth.get(p), p.checked_sub(1).and_then(|q| truth.get(q)))
        else {
            continue;
        };
        if t == 0 || prev == 0 {
            continue;
        }
        let d: Vec<f64> = s
            .iter()
            .zip(&r)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)) / 256.0)
            .collect();
        let d = grid.highpass(&d, HIGHPASS_RADIUS);
        let slot = &mut acc[usize::from(t != prev)][k];
        for (j, q) in [Some(p), Some(p - 1), p.checked_sub(2), Some(p + 1)]
            .into_iter()
            .enumerate()
        {
            let sign = q.and_then(|q| truth.get(q)).copied().unwrap_or(0);
            if let (Some(pattern), true) = (q.and_then(|q| patterns.get(q)), sign != 0) {
                slot.0[j] += normalised_correlation(&d, pattern) * f64::from(sign);
            }
        }
        slot.1 += 1;
    }
    println!("frame  same variant: own / p-1 / p-2 / p+1 (n)   switch: own / p-1 / p-2 / p+1 (n)");
    let f = |s: &([f64; 4], usize)| {
        let n = s.1.max(1) as f64;
        format!(
            "{:+.4} / {:+.4} / {:+.4} / {:+.4} ({:3})",
            s.0[0] / n,
            s.0[1] / n,
            s.0[2] / n,
            s.0[3] / n,
            s.1
        )
    };
    for (k, (same, switch)) in acc[0].iter().zip(&acc[1]).enumerate() {
        println!("{k:5}  {}   {}", f(same), f(switch));
    }
    Ok(())
}
