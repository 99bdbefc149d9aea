//! Detection of copies the way pirates publish them: with a site's logo, burned-in subtitles
//! that come and go, a news-style ticker band with scrolling text, or mirrored left–right or
//! up–down, each re-encoded at 640x360 CRF 28. 80 s of the film at 360p (40 positions), 30
//! sessions; one session's stream as the edge serves it is the pirate's.
//!
//! For each copy the detector must register it (no "does not match"), give the pirate the top
//! score, keep a median decision margin |z| of at least 3 and at most 1 wrong sign in 20 (1 in
//! 10 for a speed change or a picture-in-picture window), and say what it did: the flip it
//! undid, the share of the picture it left out and where. Also: played faster or slower (6 %
//! and 8 %, 1.1× and 0.9×, 5 % with a logo), and picture-in-picture (a window of 65 % of the
//! width, and a small one of 40 % in a corner, whose margin is an eighth of the film's). The
//! same on camera footage (`vtest.avi`, a median margin of at least 2.5) with a small logo box
//! alone, a ticker and a mirror, and a camcorder copy of it registered on the whole picture;
//! and hand-held footage (`tree.avi`) with a logo, a ticker and
//! subtitles at once. Each bound sits outside the spread measured over runs with fresh keys
//! (section 9 of docs/BENCHMARKS.md).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

mod common;
use common::*;

use serde_json::Value;
use std::path::Path;

/// The vendored font for drawn text (`crates/detect/assets`, DejaVu Sans).
fn font() -> String {
    repo()
        .join("crates/detect/assets/DejaVuSans.ttf")
        .display()
        .to_string()
        .replace(':', "\\:")
}

/// The attacks: (name, ffmpeg video filter before the 640x360 re-encode).
fn attacks() -> Vec<(&'static str, String)> {
    let f = font();
    vec![
        ("clean", "null".to_owned()),
        (
            // An opaque corner logo with the site's name, about 2 % of the frame.
            "logo",
            format!(
                "drawbox=x=iw*0.80:y=ih*0.05:w=iw*0.15:h=ih*0.10:color=0x202020@1:t=fill,\
                 drawtext=fontfile={f}:text='PIRATE':fontcolor=white:fontsize=h/22:\
                 x=w*0.815:y=h*0.075"
            ),
        ),
        (
            // Subtitles at the bottom, shown 4 s of every 6, with changing text.
            "subtitles",
            format!(
                "drawtext=fontfile={f}:text='%{{eif\\:floor(t/6)\\:d}} - the rabbit walks into the forest':\
                 fontcolor=white:borderw=2:bordercolor=black:fontsize=h/16:\
                 x=(w-tw)/2:y=h*0.86:enable='lt(mod(t\\,6)\\,4)'"
            ),
        ),
        (
            // A ticker band across the bottom with scrolling text.
            "ticker",
            format!(
                "drawbox=x=0:y=ih*0.88:w=iw:h=ih*0.12:color=0x003080@1:t=fill,\
                 drawtext=fontfile={f}:text='BREAKING +++ live sports free +++ watch now +++ \
                 all channels +++':fontcolor=yellow:fontsize=h/18:x=w-mod(t*90\\,w+tw):y=h*0.905"
            ),
        ),
        ("mirror", "hflip".to_owned()),
        ("upside-down", "vflip".to_owned()),
        // Played 6 % faster, or 8 % slower, the way uploads dodge content matching; and at
        // the ends of the range a copy must be traced over, 1.1× and 0.9×.
        ("faster", "setpts=PTS/1.06".to_owned()),
        ("slower", "setpts=PTS*1.08".to_owned()),
        ("faster-10", "setpts=PTS/1.10".to_owned()),
        ("slower-10", "setpts=PTS*1.1111".to_owned()),
        (
            // Faster and with the site's logo.
            "faster-logo",
            "setpts=PTS/1.05,drawbox=x=iw*0.80:y=ih*0.05:w=iw*0.15:h=ih*0.10:\
             color=0x202020@1:t=fill"
                .to_owned(),
        ),
        (
            // Picture-in-picture: the film as a window of 65 % of the width (42 % of the
            // picture) over another moving picture.
            "pip",
            "scale=iw*0.65:ih*0.65[fg];testsrc2=s=640x360:r=24[bg];\
             [bg][fg]overlay=x=W*0.30:y=H*0.10:shortest=1"
                .to_owned(),
        ),
        (
            // A small window: 40 % of the width (16 % of the picture) in the lower left, which
            // the grid search does not reach (an FFT correlation search finds it) and whose
            // time the whole picture's signature mistakes (registered again on the window).
            "pip-small",
            "scale=iw*0.40:ih*0.40[fg];testsrc2=s=640x360:r=24[bg];\
             [bg][fg]overlay=x=W*0.05:y=H*0.55:shortest=1"
                .to_owned(),
        ),
    ]
}

fn median_abs_z(report: &Value) -> f64 {
    let mut z: Vec<f64> = report["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["z"].as_f64().unwrap().abs())
        .collect();
    z.sort_by(f64::total_cmp);
    z[z.len() / 2]
}

fn detect(dir: &Path, title: &str, leak: &Path) -> Value {
    let out = bin()
        .current_dir(dir)
        .arg("detect")
        .arg(leak)
        .args(["--title", title, "--json", "--top", "30"])
        .output()
        .unwrap();
    assert!(
        out.status.success() || out.status.code() == Some(0),
        "{}: {}",
        leak.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each position `report` decided, with its z and whether `bits` holds variant A there.
fn decided<'a>(report: &'a Value, bits: &'a str) -> impl Iterator<Item = (f64, bool)> + 'a {
    report["positions"].as_array().unwrap().iter().map(|pos| {
        let p = pos["position"].as_u64().unwrap() as usize;
        (pos["z"].as_f64().unwrap(), &bits[p..=p] == "A")
    })
}

/// The z of every position `report` decided against the variant `bits` holds there.
fn wrong_signs(report: &Value, bits: &str) -> Vec<f64> {
    decided(report, bits)
        .filter_map(|(z, a)| ((z > 0.0) != a).then_some(z))
        .collect()
}

/// One row of results: (attack, report, median |z|, the z of the wrong signs).
type Row = (&'static str, Value, f64, Vec<f64>);

/// Re-encodes the pirate's stream (`dir/session.mp4`) under each attack and detects each copy
/// against title `title`; prints and returns the figures.
fn run(dir: &Path, title: &str, bits: &str, attacks: Vec<(&'static str, String)>) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, filter) in attacks {
        let leak = dir.join(format!("{name}.mp4"));
        ffmpeg(&[
            "-i",
            dir.join("session.mp4").to_str().unwrap(),
            "-an",
            "-filter_complex",
            &format!("[0:v]{filter},scale=640:360[v]"),
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-crf",
            "28",
            "-preset",
            "veryfast",
            leak.to_str().unwrap(),
        ]);
        let r = detect(dir, title, &leak);
        let reg = &r["registration"]["details"]["registration"];
        let mz = median_abs_z(&r);
        let wrong = wrong_signs(&r, bits);
        eprintln!(
            "{title} {name:<12} median |z| {mz:5.2}  wrong signs {:2}/{}  {} ({})  flip {}  \
             excluded {:.3} (transient {:.3})  regions {}  top {} score {:.1}",
            wrong.len(),
            bits.len(),
            r["verdict"].as_str().unwrap_or_default(),
            r["reason"].as_str().unwrap_or_default(),
            reg["flip"],
            reg["excluded"]["persistent_fraction"]
                .as_f64()
                .unwrap_or(f64::NAN),
            reg["excluded"]["transient_fraction"]
                .as_f64()
                .unwrap_or(f64::NAN),
            reg["excluded"]["regions"],
            r["top"][0]["session_id"],
            r["top"][0]["score"].as_f64().unwrap_or(f64::NAN),
        );
        rows.push((name, r, mz, wrong));
    }
    rows
}

/// The checks every copy must pass: registered the right way round, the pirate on top, few
/// wrong decisions, a healthy median margin (at least `margin` for a copy of the whole
/// picture at the film's rate).
fn check(rows: &[Row], pirate: &str, positions: usize, margin: f64) {
    for (name, r, mz, wrong) in rows {
        assert_eq!(
            r["top"][0]["session_id"].as_str(),
            Some(pirate),
            "{name}: the pirate is not the top score"
        );
        // The keys are drawn fresh each run, and each bound sits well outside the spread
        // measured over runs (section 9 of docs/BENCHMARKS.md). A speed change's time map is
        // fitted, not exact (section 6.7: 0 wrong and median |z| 10–11 measured at 0.9–1.1×):
        // up to one in ten wrong, else one in 20.
        // A window of 65 % of the width keeps 42 % of the picture: median |z| 4.1–4.8 and 0 to
        // 2 wrong of 40 (about 0.7 a run) measured; one in 20 (2) failed about one run in 30,
        // one in ten (4) leaves that tail below 10⁻³.
        // A window of 40 % of the width keeps 16 % of the picture: the margin falls to about
        // an eighth of a full-frame copy's (median |z| 1.2–1.9 measured, a copy without the
        // mark 0.67 ± 0.12), where about one decision in eight is wrong (2 to 7 of 40); a
        // bound of one in three (13, chance is 20 ± 3) leaves that binomial a tail below 10⁻³
        // at the mean rate. Forty positions may not yet accuse at 1e-6 (the forensic suite's
        // 96 do): the pirate must be first, in the right window.
        let (share, least) = match *name {
            "faster" | "slower" | "faster-10" | "slower-10" | "faster-logo" | "pip" => (10, 3.0),
            "pip-small" => (3, 0.9),
            _ => (20, margin),
        };
        assert!(
            wrong.len() * share <= positions,
            "{name}: {} wrong signs of {positions}: z {wrong:?}",
            wrong.len()
        );
        assert!(*mz >= least, "{name}: median |z| {mz:.2}");
        if *name == "pip-small" {
            // Placed at 5 %/55 % of the frame at 40 % of its width (working grid 256 wide).
            let h = &r["registration"]["details"]["registration"]["geometry"]["h"];
            let at = |i: usize| h[i].as_f64().unwrap() / 256.0;
            assert!(
                (at(0) - 0.40).abs() < 0.02 && (at(2) - 0.05).abs() < 0.02,
                "{name}: window {h}"
            );
        }
        let flip = r["registration"]["details"]["registration"]["flip"]
            .as_str()
            .unwrap();
        let want = match *name {
            "mirror" => "horizontal",
            "upside-down" => "vertical",
            _ => "none",
        };
        assert_eq!(flip, want, "{name}");
    }
}

fn excluded<'a>(rows: &'a [Row], name: &str) -> &'a Value {
    &rows.iter().find(|r| r.0 == name).unwrap().1["registration"]["details"]["registration"]["excluded"]
}

#[test]
fn overlays_and_mirrors_are_registered_and_traced() {
    let d = init_workdir();
    let dir = d.path();
    embed_bbb(dir, "1920", &[]);
    let sessions = issue_sessions(dir, "bbb", 30);
    let pirate = &sessions[13];
    let bits = assemble(dir, pirate);
    assert_eq!(bits.len(), 40);
    let rows = run(dir, "bbb", &bits, attacks());
    check(&rows, pirate, bits.len(), 3.0);
    // The logo and the ticker are found where they are; a clean copy loses little.
    assert!(
        excluded(&rows, "clean")["persistent_fraction"]
            .as_f64()
            .unwrap()
            < 0.05
    );
    let logo = excluded(&rows, "logo")["regions"][0].clone();
    assert!(
        logo[0].as_f64().unwrap() > 0.6 && logo[3].as_f64().unwrap() < 0.3,
        "logo region {logo}"
    );
    let band = excluded(&rows, "ticker")["regions"][0].clone();
    assert!(
        band[1].as_f64().unwrap() > 0.75
            && band[2].as_f64().unwrap() - band[0].as_f64().unwrap() > 0.5,
        "ticker region {band}"
    );
}

/// Camera footage (people walking past a fixed camera, 10 fps, 79 s): a small opaque logo box
/// alone, and a ticker, must not bend the geometry.
#[test]
fn natural_footage_with_a_logo_or_a_ticker() {
    let d = init_workdir();
    let dir = d.path();
    embed_clip(dir, &corpus("vtest.avi"), "street");
    let sessions = issue_sessions(dir, "street", 30);
    let pirate = &sessions[5];
    let bits = assemble_title(dir, "street", pirate);
    let all = attacks();
    let pick: Vec<(&'static str, String)> = all
        .into_iter()
        .filter(|(n, _)| ["clean", "ticker", "mirror"].contains(n))
        .chain([(
            "small-logo",
            "drawbox=x=iw*0.04:y=ih*0.05:w=iw*0.08:h=ih*0.07:color=white@1:t=fill".to_owned(),
        )])
        .collect();
    let rows = run(dir, "street", &bits, pick);
    // This footage keeps less of the mark than the film (a fixed camera, 10 fps): over 22 runs
    // with fresh keys the ticker copy's median |z| was 3.2–4.4 (mean 3.7, sd 0.26), the others'
    // 3.7–5.0, with at most 1 wrong sign of 40. The film's bound of 3 failed the ticker copy
    // about one run in 250; 2.5 is more than four standard deviations below its mean.
    check(&rows, pirate, bits.len(), 2.5);
    // The logo (centre 8 %, 8.5 % of the picture) is inside one of the regions left out; on
    // this footage the brick and window texture a CRF 28 re-encode loses is left out too.
    let regions = excluded(&rows, "small-logo")["regions"].clone();
    assert!(
        regions.as_array().unwrap().iter().any(|b| {
            let b: Vec<f64> = b
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            b[0] < 0.08 && b[2] > 0.08 && b[1] < 0.085 && b[3] > 0.085 && b[2] < 0.3
        }),
        "no region covers the logo: {regions}"
    );

    // A camcorder copy of it (the forensic suite's chain: keystone, barrel, vignetting,
    // colour and gamma, blur, sensor noise, 23.976 fps, three quarters of the size, CRF 32).
    // The 4×-reduced means of this picture (grass, a road, a wall) correlate almost as well at
    // any scale, and the coarse grid chose a window of 69 % of the width: the fit from there
    // stayed at a score of 0.72 and the decisions at chance (signed mean z 0.02–0.20 for four
    // pirates). Fitted from the whole picture too, the copy registers at 0.977 and the signed
    // mean z is 0.94–1.39 (section 6.7 of docs/BENCHMARKS.md).
    let camcorder = dir.join("camcorder.mp4");
    ffmpeg(&[
        "-i",
        dir.join("session.mp4").to_str().unwrap(),
        "-an",
        "-vf",
        "perspective=x0=0.04*W:y0=0.03*H:x1=0.97*W:y1=0:x2=0:y2=0.98*H:x3=W:y3=0.95*H:\
         sense=destination:interpolation=cubic,lenscorrection=k1=-0.05:k2=0.01,vignette=PI/5,\
         eq=brightness=0.03:contrast=0.9:saturation=0.9:gamma=1.1,gblur=sigma=1.2,\
         noise=alls=8:allf=t+u,fps=24000/1001,scale=trunc(iw*0.75/2)*2:-2:flags=bicubic",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "32",
        camcorder.to_str().unwrap(),
    ]);
    let r = detect(dir, "street", &camcorder);
    let score = r["registration"]["details"]["registration"]["geometry"]["score"]
        .as_f64()
        .unwrap();
    let signed: Vec<f64> = decided(&r, &bits)
        .map(|(z, a)| if a { z } else { -z })
        .collect();
    let mean = signed.iter().sum::<f64>() / signed.len().max(1) as f64;
    eprintln!(
        "street camcorder: registration score {score:.3}, signed mean z {mean:.2} over {}",
        signed.len()
    );
    assert!(score > 0.9, "camcorder copy: registration score {score:.3}");
    // Each z is about N(μ, 1) with μ near 1 here: over 30 or more positions the mean's spread
    // is under 0.2, so 0.4 sits more than three of them below the lowest mean measured.
    assert!(
        signed.len() >= 30 && mean > 0.4,
        "camcorder copy: signed mean z {mean:.2} over {} positions",
        signed.len()
    );
}

/// Hand-held footage (a tree in wind through a window, 320x240 at 360p, 29.6 s: 15 positions)
/// with a logo, a ticker band and subtitles at once: the geometry search must not take a
/// vertical shift that smears the overlays over the self-similar leaves for the alignment of
/// the rest (it did, with decisions at chance, before the coarse search scored each candidate
/// on its best-fitting 80 % of points), and the copy must be taken as the title although its
/// overlays keep the correlation over the whole picture below 0.8.
#[test]
fn hand_held_footage_with_stacked_overlays() {
    let d = init_workdir();
    let dir = d.path();
    // The file codes 68 pictures over 29.6 s (AVI drop chunks); a packager's mezzanine has a
    // constant rate, made here as it would be, at the package height.
    let mezzanine = dir.join("tree-mezzanine.mp4");
    ffmpeg(&[
        "-i",
        corpus("tree.avi").to_str().unwrap(),
        "-vf",
        "fps=15,scale=-2:360",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-qp",
        "0",
        "-pix_fmt",
        "yuv420p",
        mezzanine.to_str().unwrap(),
    ]);
    embed_clip(dir, &mezzanine, "tree");
    let sessions = issue_sessions(dir, "tree", 30);
    let bits = assemble_title(dir, "tree", &sessions[7]);
    let all = attacks();
    let part = |n: &str| all.iter().find(|(name, _)| *name == n).unwrap().1.clone();
    let stacked = format!("{},{},{}", part("logo"), part("ticker"), part("subtitles"));
    let rows = run(
        dir,
        "tree",
        &bits,
        vec![("clean", "null".to_owned()), ("stacked", stacked)],
    );
    // Fifteen positions among 30 sessions cannot single out a pirate (another codeword may
    // agree as well): what is checked is that the copy is taken as the title and its positions
    // are read far from chance (a copy without the mark: median |z| 0.67, half the signs
    // wrong), with no confident decision wrong. The keys are drawn fresh each run and the
    // stacked copy's margin moves with them: over 139 runs its median |z| was 2.9–5.8 (mean
    // 4.2, sd 0.53; the bound of 3 this test had failed about one run in a hundred), and at
    // most 3 of the 10 or so positions read had the wrong sign, each at |z| below 0.5 where it
    // was printed (60 runs). A median |z| of 2 is four standard deviations below the mean,
    // and a wrong sign at |z| 3 or more would take more than three standard deviations of
    // noise against the mark.
    for (name, r, mz, wrong) in &rows {
        let read = r["positions"].as_array().unwrap().len();
        assert!(read * 2 >= bits.len(), "{name}: {read} positions read");
        assert!(*mz >= 2.0, "{name}: median |z| {mz:.2}");
        assert!(
            wrong.len() * 2 < read,
            "{name}: {} wrong signs of {read}: z {wrong:?}",
            wrong.len()
        );
        let confident: Vec<&f64> = wrong.iter().filter(|z| z.abs() >= 3.0).collect();
        assert!(
            confident.is_empty(),
            "{name}: confident decisions wrong, z {confident:?}"
        );
    }
}
