//! Every attack of the wild set runs through the ffmpeg CLI as stated, on a clip of its own
//! (a 3-s 320x180 FFmpeg test pattern, no corpus needed), and changes the picture: a filter
//! that ffmpeg rejected, or an overlay that drew nothing, fails here rather than in a
//! half-hour suite run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use leaktrace_forensic::attack::{self, Source, Target};
use leaktrace_media::Decoder;
use leaktrace_testkit::{ffmpeg_command, ok};
use std::path::Path;

/// The luma of every frame, at 160x90.
fn lumas(p: &Path) -> Vec<Vec<u16>> {
    let mut d = Decoder::open(p).unwrap();
    let mut out = Vec::new();
    while let Some(l) = d.next_luma(160, 90).unwrap() {
        out.push(l);
    }
    out
}

/// The share of pixels whose luma differs by more than 12 grey levels.
fn changed(a: &[u16], b: &[u16]) -> f64 {
    let n = a
        .iter()
        .zip(b)
        .filter(|(x, y)| (f64::from(**x) - f64::from(**y)).abs() > 12.0 * 256.0)
        .count();
    n as f64 / a.len() as f64
}

#[test]
fn every_wild_attack_runs_and_changes_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    ok(ffmpeg_command()
        .args(["-f", "lavfi", "-i"])
        .arg("testsrc2=s=320x180:r=24:d=3")
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&input));
    // A font path with a character the filter graph must escape.
    let font = dir.path().join("font, v1.ttf");
    std::fs::write(&font, leaktrace_detect::plot::FONT_TTF).unwrap();

    let plain = dir.path().join("plain.mp4");
    attack::ffmpeg(
        "plain",
        &[
            "-i".into(),
            input.display().to_string(),
            "-an".into(),
            "-c:v".into(),
            "libx264".into(),
            "-preset".into(),
            "veryfast".into(),
            "-crf".into(),
            "23".into(),
            plain.display().to_string(),
        ],
    )
    .unwrap();
    let reference = lumas(&plain);
    assert_eq!(reference.len(), 72);

    let src = Source {
        height: 180,
        fps: 24.0,
        duration_s: 3.0,
    };
    let mut table = attack::wild_table(src, &font);
    table.push(attack::overlaid_innocent(&font));
    let names: Vec<&str> = table.iter().map(|a| a.name.as_str()).collect();
    for want in [
        "logo-tl",
        "logo-tr",
        "logo-bl",
        "logo-br",
        "subtitles",
        "ticker",
        "player-chrome",
        "mirror",
        "pip-right",
        "pip-left",
        "pip-small",
        "speed-1.05",
        "mirror+720p",
        "camcord+subtitles",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for a in &table {
        if a.name != "logo+subtitles+ticker" {
            assert_eq!(a.target, Target::Heavy, "{}", a.name);
        }
        let out = dir.path().join(format!("{}.mp4", a.name.replace('+', "_")));
        a.run(&input, &out)
            .unwrap_or_else(|e| panic!("{}: {e}", a.name));
        let frames = lumas(&out);
        // 3 s at 24 fps (23.976 after the camcorder, 5 % fewer played faster).
        assert!(
            (66..=73).contains(&frames.len()),
            "{}: {} frames",
            a.name,
            frames.len()
        );
        // Every attack changes what is seen (the 720p ones compared after scaling back): at
        // least a fifth of the smallest logo's 1 % of the picture (the test pattern has dark
        // parts of its own, where a dark box changes little).
        let d = changed(&frames[36], &reference[36]);
        eprintln!("{:<32} {:6.2} % of the picture changed", a.name, d * 100.0);
        assert!(d > 0.002, "{}: {:.2} % changed", a.name, d * 100.0);
    }
}
