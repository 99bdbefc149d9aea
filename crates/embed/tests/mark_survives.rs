//! The mark is really there: re-encode A and B at x264 CRF 40 and check, on every segment,
//! that the correlation with the position's expected mark has the right sign (the seed of
//! detect). Real content from the corpus: the Big Buck Bunny trailer (720p) and a 1080p pan
//! over a natural photograph.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test/bench code: a panic is a failure report

use leaktrace_core::{KeyVersion, MasterKey, Position, TitleId};
use leaktrace_embed::{PipelineConfig, embed_file};
use leaktrace_reference::Reference;
use leaktrace_reference::position_means;
use leaktrace_testkit::{concat, corpus, ffmpeg, segments};

fn check(clip: &str, ladder: &str, frames: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([0x11; 32], KeyVersion::new(1));
    let title = TitleId::new("survival-test").unwrap();
    let mut cfg = PipelineConfig::new(title.clone());
    cfg.ladder = Some(ladder.into());
    cfg.preset = Some("fast".into());
    cfg.max_frames = Some(frames);
    let out = tmp.path().join("pkg");
    let summary = embed_file(&corpus(clip), &out, &key, &cfg, &mut |_| {}).unwrap();
    let reference = Reference::load(&out.join("reference")).unwrap();
    let pattern_key = key.pattern_key(&title);
    let rendition = &summary.renditions[0].name;
    let mut worst = f64::MAX;
    for (variant, sign) in [("a", 1.0), ("b", -1.0)] {
        let dir = out.join(rendition).join(variant);
        let joined = tmp.path().join(format!("{variant}.mp4"));
        concat(&dir.join("init.mp4"), segments(&dir), &joined);
        let attacked = tmp.path().join(format!("{variant}-crf40.mp4"));
        ffmpeg(&[
            "-i",
            joined.to_str().unwrap(),
            "-c:v",
            "libx264",
            "-preset",
            "medium",
            "-crf",
            "40",
            attacked.to_str().unwrap(),
        ]);
        let means = position_means(&attacked, &reference.meta).unwrap();
        assert_eq!(means.len() as u32, summary.positions);
        for (p, m) in means.iter().enumerate() {
            let c = reference
                .correlate(&pattern_key, Position::new(p as u32), m)
                .unwrap();
            eprintln!("{clip} {variant} position {p}: correlation {c:+.3}");
            assert!(
                c * sign > 0.0,
                "{clip} variant {variant} position {p}: wrong sign ({c:+.3})"
            );
            worst = worst.min(c * sign);
        }
    }
    eprintln!("{clip}: weakest correct-sign correlation after CRF 40: {worst:.3}");
}

#[test]
fn mark_survives_crf40_on_the_bbb_trailer_720p() {
    check("trailer_bbb_20s.mp4", "720p", 288);
}

#[test]
fn mark_survives_crf40_on_a_natural_1080p_pan() {
    check("flower_pan_1080p.mp4", "1080p", 240);
}
