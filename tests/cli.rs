//! End-to-end tests of the `leaktrace` binary: init, embed (all codecs, 8- and 10-bit), the
//! package against external checkers (ffprobe, hls-parser strict, xmllint + DASH schema), and
//! bad input. Media comes from the corpus (`corpus/fetch.sh`) or is generated with ffmpeg.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test/bench code: a panic is a failure report

mod common;
use common::*;

use leaktrace_core::wmpaceinfo::{PaceInfo, Sidecar};
use leaktrace_media::cmaf;
use std::path::Path;
use std::process::{Command, Output};

fn embed(ws: &Path, input: &Path, out: &Path, extra: &[&str]) -> Output {
    bin()
        .current_dir(ws)
        .arg("embed")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--title", "test-title"])
        .args(extra)
        .output()
        .unwrap()
}

/// [`embed`], which must succeed (its error output is the failure message otherwise).
fn embed_ok(ws: &Path, input: &Path, out: &Path, extra: &[&str]) -> Output {
    let o = embed(ws, input, out, extra);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn init_writes_config_private_key_and_database() {
    let d = init_workdir();
    for f in ["leaktrace.toml", "master.key", "leaktrace.db"] {
        assert!(d.path().join(f).is_file(), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("master.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    let key = std::fs::read_to_string(d.path().join("master.key")).unwrap();
    assert_eq!(key.trim().len(), 64);
    // A second init refuses, and never overwrites the key.
    let again = bin().arg("init").arg(d.path()).output().unwrap();
    assert_eq!(again.status.code(), Some(5));
    assert_eq!(
        std::fs::read_to_string(d.path().join("master.key")).unwrap(),
        key
    );
}

/// Checks one rendition directory of a package thoroughly.
fn check_rendition(dir: &Path) -> usize {
    let (a, b) = (files(&dir.join("a")), files(&dir.join("b")));
    assert_eq!(a, b, "a/ and b/ must hold the same file names");
    let sidecars = files(&dir.join("WMPaceInfo"));
    assert_eq!(sidecars, a, "one sidecar per file");
    let init =
        Sidecar::from_cbor(&std::fs::read(dir.join("WMPaceInfo/init.mp4")).unwrap()).unwrap();
    assert_eq!(init.segments[0].position, None, "init is position -1");
    let segs: Vec<&String> = a.iter().filter(|f| f.ends_with(".m4s")).collect();
    for (p, name) in segs.iter().enumerate() {
        assert_eq!(**name, format!("seg_{p:05}.m4s"));
        let sidecar =
            Sidecar::from_cbor(&std::fs::read(dir.join("WMPaceInfo").join(name)).unwrap()).unwrap();
        assert_eq!(sidecar.segments[0].position, Some(p as u16));
        let mut durations = Vec::new();
        for (variant, id) in [("a", 0u8), ("b", 1u8)] {
            let seg = std::fs::read(dir.join(variant).join(name)).unwrap();
            let boxes = cmaf::boxes(&seg, 0, seg.len()).unwrap();
            let kinds: Vec<&[u8; 4]> = boxes.iter().map(|b| &b.kind).collect();
            assert_eq!(
                kinds,
                [b"styp", b"wmpi", b"moof", b"mdat"],
                "{variant}/{name}"
            );
            let wmpi = PaceInfo::from_wmpi_box(&seg[boxes[1].start..boxes[1].end]).unwrap();
            assert_eq!(
                (wmpi.variant, wmpi.position),
                (id, Some(p as u16)),
                "{variant}/{name}"
            );
            let mut whole = std::fs::read(dir.join(variant).join("init.mp4")).unwrap();
            whole.extend_from_slice(&seg);
            let track = cmaf::split(&whole).unwrap();
            assert!(
                track.fragments[0].starts_with_sync,
                "{variant}/{name} starts with a keyframe"
            );
            // The keyframe opening a closed group presents first: at the segment's decode
            // time, where its manifest entry and the audio put it (the encoder's reordering
            // delay is not left in the composition offsets).
            assert_eq!(
                track.fragments[0].first_composition_offset().unwrap(),
                0,
                "{variant}/{name} presents from its decode time"
            );
            durations.push(track.fragments[0].duration);
            let joined = dir.join(format!(".probe-{variant}.mp4"));
            std::fs::write(&joined, &whole).unwrap();
            let probe = ffprobe(
                &[
                    "-count_frames",
                    "-select_streams",
                    "v:0",
                    "-show_entries",
                    "stream=nb_read_frames",
                    "-of",
                    "csv=p=0",
                ],
                &joined,
            );
            let n: u32 = probe.trim().parse().unwrap();
            assert_eq!(n, track.fragments[0].samples);
            std::fs::remove_file(joined).unwrap();
        }
        assert_eq!(
            durations[0], durations[1],
            "A and B of position {p} have the same duration"
        );
    }
    segs.len()
}

fn check_external_validators(pkg: &Path) {
    let mut playlists = vec![pkg.join("master.m3u8")];
    for e in std::fs::read_dir(pkg).unwrap() {
        let p = e.unwrap().path().join("playlist.m3u8");
        if p.is_file() {
            playlists.push(p);
        }
    }
    let hls = Command::new("node")
        .arg(repo().join("tools/check-hls.mjs"))
        .args(&playlists)
        .output()
        .unwrap();
    assert!(
        hls.status.success(),
        "hls-parser strict: {} {}",
        String::from_utf8_lossy(&hls.stdout),
        String::from_utf8_lossy(&hls.stderr)
    );
    let schema = repo().join("tests/schemas/dash/DASH-MPD.xsd");
    let mpd = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .arg(pkg.join("manifest.mpd"))
        .output()
        .unwrap();
    assert!(
        mpd.status.success(),
        "xmllint: {}",
        String::from_utf8_lossy(&mpd.stderr)
    );
    for text in [
        std::fs::read_to_string(pkg.join("master.m3u8")).unwrap(),
        std::fs::read_to_string(pkg.join("manifest.mpd")).unwrap(),
    ] {
        for leak in [
            "/a/",
            "/b/",
            "WATERMARKING",
            "WMPACEINFO",
            "watermarking_variant",
        ] {
            assert!(
                !text.contains(leak),
                "neutral manifests must not contain {leak}"
            );
        }
    }
}

#[test]
fn h264_package_is_valid_for_every_external_checker() {
    let ws = init_workdir();
    let pkg = ws.path().join("pkg");
    // One SubRip and one WebVTT track; the SubRip file is named for its language (`:en`).
    let en = ws.path().join("en.srt");
    std::fs::write(
        &en,
        "1\n00:00:00,500 --> 00:00:02,500\nHello <i>there</i>\n\n2\n00:00:04,000 --> 00:00:05,000\nBye\n",
    )
    .unwrap();
    let fr = ws.path().join("fr.vtt");
    std::fs::write(
        &fr,
        "WEBVTT\n\n00:00.500 --> 00:02.500 line:0\nBonjour\n\n00:04.000 --> 00:05.000\nAu revoir\n",
    )
    .unwrap();
    let (en, fr) = (
        format!("{}:en", en.display()),
        format!("{}:fr", fr.display()),
    );
    let out = embed_ok(
        ws.path(),
        &corpus("trailer_bbb_20s.mp4"),
        &pkg,
        &[
            "--ladder",
            "360p,240p",
            "--preset",
            "veryfast",
            "--max-frames",
            "150",
            "--subtitles",
            &en,
            "--subtitles",
            &fr,
            "--json",
        ],
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["positions"], 4); // 150 frames at 24 fps = 6.25 s
    assert_eq!(check_rendition(&pkg.join("360p")), 4);
    assert_eq!(check_rendition(&pkg.join("240p")), 4);
    // Subtitles: a WebVTT segment per position, the whole track, both in the manifests.
    assert_eq!(
        summary["text_renditions"],
        serde_json::json!(["text-en", "text-fr"])
    );
    for (dir, cue) in [("text-en", "Hello"), ("text-fr", "Bonjour")] {
        let segs: Vec<String> = (0..4)
            .map(|p| {
                std::fs::read_to_string(pkg.join(dir).join(format!("seg_{p:05}.vtt"))).unwrap()
            })
            .collect();
        assert!(segs.iter().all(|s| s.starts_with("WEBVTT")));
        assert!(segs[0].contains(cue) && segs[1].contains(cue) && !segs[3].contains(cue));
        let whole = std::fs::read_to_string(pkg.join(dir).join("subtitles.vtt")).unwrap();
        assert!(whole.contains("00:00:00.500 --> 00:00:02.500"), "{whole}");
    }
    let master = std::fs::read_to_string(pkg.join("master.m3u8")).unwrap();
    assert!(master.contains("TYPE=SUBTITLES") && master.contains("LANGUAGE=\"fr\""));
    let mpd = std::fs::read_to_string(pkg.join("manifest.mpd")).unwrap();
    assert!(mpd.contains("<BaseURL>text-en/subtitles.vtt</BaseURL>"));
    check_external_validators(&pkg);
    // The store knows the title now.
    let db = ws.path().join("leaktrace.db");
    let titles = Command::new("sqlite3")
        .arg(&db)
        .arg("select title_id, position_count, key_version from titles")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&titles.stdout).trim(),
        "test-title|4|1"
    );
}

#[test]
fn hevc_ten_bit_h264_eight_bit_and_av1_packages_are_valid() {
    let ws = init_workdir();
    let src10 = ws.path().join("src10.mkv");
    ffmpeg(&[
        "-i",
        corpus("trailer_bbb_20s.mp4").to_str().unwrap(),
        "-frames:v",
        "60",
        "-vf",
        "scale=640:360",
        "-pix_fmt",
        "yuv420p10le",
        "-c:v",
        "ffv1",
        src10.to_str().unwrap(),
    ]);
    let pkg = ws.path().join("hevc");
    embed_ok(
        ws.path(),
        &src10,
        &pkg,
        &[
            "--codec",
            "hevc",
            "--ladder",
            "360p",
            "--preset",
            "ultrafast",
        ],
    );
    assert_eq!(check_rendition(&pkg.join("360p")), 2);
    let master = std::fs::read_to_string(pkg.join("master.m3u8")).unwrap();
    assert!(
        master.contains("CODECS=\"hvc1.2."),
        "10-bit HEVC is Main 10: {master}"
    );
    check_external_validators(&pkg);

    // H.264 of the same 10-bit SDR source is 8-bit High profile, which every player decodes
    // (High 10 only with `--bit-depth 10`); the picture is marked at 8 bits.
    for (depth, codec, profile, pix_fmt) in [
        (None, "avc1.64", "High", "yuv420p"),
        (Some("10"), "avc1.6e", "High 10", "yuv420p10le"),
    ] {
        let pkg = ws.path().join(format!("h264-{}", depth.unwrap_or("auto")));
        let mut args = vec!["--ladder", "360p", "--preset", "veryfast", "--json"];
        if let Some(d) = depth {
            args.extend(["--bit-depth", d]);
        }
        let out = embed_ok(ws.path(), &src10, &pkg, &args);
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let bits = if depth.is_some() { 10 } else { 8 };
        assert_eq!(summary["renditions"][0]["bit_depth"], bits, "{summary}");
        let master = std::fs::read_to_string(pkg.join("master.m3u8")).unwrap();
        assert!(master.contains(&format!("CODECS=\"{codec}")), "{master}");
        let rend = pkg.join("360p");
        let mut stream = std::fs::read(rend.join("a/init.mp4")).unwrap();
        stream.extend(std::fs::read(rend.join("a/seg_00000.m4s")).unwrap());
        let joined = ws.path().join(format!("h264-{bits}.mp4"));
        std::fs::write(&joined, stream).unwrap();
        let shown = ffprobe(
            &[
                "-show_entries",
                "stream=profile,pix_fmt",
                "-of",
                "compact=p=0:nk=1",
            ],
            &joined,
        );
        assert_eq!(shown.trim(), format!("{profile}|{pix_fmt}"));
        assert_eq!(check_rendition(&rend), 2);
    }

    let pkg = ws.path().join("av1");
    embed_ok(
        ws.path(),
        &corpus("trailer_bbb_20s.mp4"),
        &pkg,
        &[
            "--codec",
            "av1",
            "--ladder",
            "240p",
            "--preset",
            "12",
            "--max-frames",
            "72",
        ],
    );
    assert_eq!(check_rendition(&pkg.join("240p")), 2);
    assert!(
        std::fs::read_to_string(pkg.join("master.m3u8"))
            .unwrap()
            .contains("CODECS=\"av01.0.")
    );
    check_external_validators(&pkg);
}

/// Runs a failing embed and checks: the exit code, one line on stderr, no panic, and no
/// output (complete-looking or partial) left behind.
fn assert_clean_failure(
    ws: &Path,
    input: &Path,
    out: &Path,
    extra: &[&str],
    code: i32,
    needle: &str,
) {
    let parent = out.parent().filter(|p| p.is_dir()).unwrap_or(ws);
    let before = files(parent);
    let o = embed(ws, input, out, extra);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{input:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(needle),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    assert!(!out.join("master.m3u8").exists());
    assert_eq!(files(parent), before, "no partial output left behind");
}

#[test]
fn bad_input_gives_one_line_a_distinct_exit_code_and_no_output() {
    let ws = init_workdir();
    let w = ws.path();
    let out = w.join("out");
    assert_clean_failure(w, &w.join("missing.mp4"), &out, &[], 3, "cannot read");
    std::fs::write(w.join("empty.mp4"), b"").unwrap();
    assert_clean_failure(w, &w.join("empty.mp4"), &out, &[], 3, "empty");
    std::fs::write(w.join("notes.txt"), "this is not a video\n".repeat(100)).unwrap();
    assert_clean_failure(
        w,
        &w.join("notes.txt"),
        &out,
        &[],
        3,
        "not a readable media file",
    );
    // Truncated: moov first (faststart), media data cut in half.
    let fast = w.join("fast.mp4");
    ffmpeg(&[
        "-i",
        corpus("trailer_bbb_20s.mp4").to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        fast.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&fast).unwrap();
    std::fs::write(w.join("half.mp4"), &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(
        w,
        &w.join("half.mp4"),
        &out,
        &["--ladder", "240p", "--preset", "ultrafast"],
        3,
        "truncated",
    );
    // Truncated inside the headers.
    std::fs::write(w.join("head.mp4"), &bytes[..2000]).unwrap();
    assert_clean_failure(w, &w.join("head.mp4"), &out, &[], 3, "head.mp4");
    // 12-bit video cannot be marked.
    let deep = w.join("deep.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10",
        "-t",
        "1",
        "-pix_fmt",
        "yuv420p12le",
        "-c:v",
        "ffv1",
        deep.to_str().unwrap(),
    ]);
    assert_clean_failure(w, &deep, &out, &[], 3, "unsupported pixel format");
    let clip = corpus("trailer_bbb_20s.mp4");
    assert_clean_failure(w, &clip, &out, &["--codec", "vp8"], 2, "unknown codec");
    assert_clean_failure(w, &clip, &out, &["--segment", "9s"], 2, "1000 to 6000");
    assert_clean_failure(
        w,
        &clip,
        &out,
        &["--ladder", "1080p"],
        2,
        "does not upscale",
    );
    // Subtitles are checked before anything is encoded.
    std::fs::write(
        w.join("bad.srt"),
        "1\n00:00:01,000 --> 00:00:02,000\nok\n\n2\n00:00:05,000 -> 00:00:06,000\nbad\n",
    )
    .unwrap();
    let bad = format!("{}:en", w.join("bad.srt").display());
    assert_clean_failure(w, &clip, &out, &["--subtitles", &bad], 3, "line 6");
    let missing = format!("{}:en", w.join("none.srt").display());
    assert_clean_failure(w, &clip, &out, &["--subtitles", &missing], 3, "cannot read");
    let tag = format!("{}:en-", w.join("bad.srt").display());
    assert_clean_failure(w, &clip, &out, &["--subtitles", &tag], 3, "BCP 47");
    // Output that cannot be written: its parent is a regular file.
    std::fs::write(w.join("blocker"), b"x").unwrap();
    assert_clean_failure(w, &clip, &w.join("blocker/out"), &[], 4, "blocker");
    // Output that exists and is not empty.
    std::fs::create_dir(w.join("full")).unwrap();
    std::fs::write(w.join("full/keep.txt"), b"precious").unwrap();
    assert_clean_failure(w, &clip, &w.join("full"), &[], 4, "not empty");
    assert_eq!(std::fs::read(w.join("full/keep.txt")).unwrap(), b"precious");
}

#[test]
fn a_failure_mid_encode_leaves_nothing_that_looks_complete() {
    // The half file decodes for a while, then fails: the partial package must vanish.
    let ws = init_workdir();
    let w = ws.path();
    let fast = w.join("fast.mp4");
    ffmpeg(&[
        "-i",
        corpus("trailer_bbb_20s.mp4").to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        fast.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&fast).unwrap();
    std::fs::write(w.join("cut.mp4"), &bytes[..bytes.len() * 3 / 4]).unwrap();
    let out = w.join("pkg");
    let o = embed(
        w,
        &w.join("cut.mp4"),
        &out,
        &["--ladder", "240p", "--preset", "ultrafast"],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
    assert!(
        files(w).iter().all(|f| !f.contains("partial")),
        "{:?}",
        files(w)
    );
}

#[test]
fn the_mezzanines_text_tracks_become_subtitle_renditions() {
    let ws = init_workdir();
    let w = ws.path();
    std::fs::write(
        w.join("fr.srt"),
        "1\n00:00:00,500 --> 00:00:02,000\nBonjour <i>le</i> monde\n\n2\n00:00:03,000 --> 00:00:04,000\nDeux lignes\nici\n",
    )
    .unwrap();
    std::fs::write(
        w.join("en.ass"),
        "[Script Info]\nScriptType: v4.00+\n\n[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\nStyle: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\nDialogue: 0,0:00:01.00,0:00:02.50,Default,,0,0,0,,{\\i1}Hello{\\i0}\\Nthere <&>\n",
    )
    .unwrap();
    // An MP4 with a mov_text track (French) and a Matroska file with SubRip-as-ASS (French)
    // and ASS (English) tracks.
    let (mp4, mkv) = (w.join("mez.mp4"), w.join("mez.mkv"));
    let (fr, en) = (w.join("fr.srt"), w.join("en.ass"));
    let (fr, en) = (fr.to_str().unwrap(), en.to_str().unwrap());
    let video = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=24:duration=5",
    ];
    let tail = ["-c:v", "libx264", "-preset", "ultrafast", "-t", "5"];
    let mut a: Vec<&str> = video.to_vec();
    a.extend(["-i", fr, "-map", "0", "-map", "1", "-c:s", "mov_text"]);
    a.extend(["-metadata:s:s:0", "language=fra"]);
    a.extend(tail);
    a.push(mp4.to_str().unwrap());
    ffmpeg(&a);
    let mut a: Vec<&str> = video.to_vec();
    a.extend([
        "-i", fr, "-i", en, "-map", "0", "-map", "1", "-map", "2", "-c:s", "ass",
    ]);
    a.extend([
        "-metadata:s:s:0",
        "language=fra",
        "-metadata:s:s:1",
        "language=eng",
    ]);
    a.extend(tail);
    a.push(mkv.to_str().unwrap());
    ffmpeg(&a);
    let small = ["--ladder", "240p", "--preset", "ultrafast", "--json"];
    let pkg = w.join("pkg-mp4");
    embed_ok(w, &mp4, &pkg, &small);
    // Container language codes (ISO 639-2 `fra`, `eng`) become BCP 47 tags (`fr`, `en`).
    let vtt = std::fs::read_to_string(pkg.join("text-fr/subtitles.vtt")).unwrap();
    assert!(
        vtt.contains("00:00:00.500 --> 00:00:02.000\nBonjour le monde\n")
            && vtt.contains("00:00:03.000 --> 00:00:04.000\nDeux lignes\nici\n"),
        "{vtt}"
    );
    // With a file in the same language as a mezzanine track: both, the file second.
    let pkg = w.join("pkg-mkv");
    let extra = format!("{}:fra", w.join("fr.srt").display());
    let mut args = small.to_vec();
    args.extend(["--subtitles", &extra]);
    let o = embed_ok(w, &mkv, &pkg, &args);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        summary["text_renditions"],
        serde_json::json!(["text-fr", "text-en", "text-fr-2"])
    );
    let en = std::fs::read_to_string(pkg.join("text-en/subtitles.vtt")).unwrap();
    assert!(
        en.contains("00:00:01.000 --> 00:00:02.500\nHello\nthere &lt;&amp;&gt;\n"),
        "{en}"
    );
    let master = std::fs::read_to_string(pkg.join("master.m3u8")).unwrap();
    assert!(master.contains("NAME=\"fr (2)\""), "{master}");
    assert!(master.contains("LANGUAGE=\"fr\"") && !master.contains("LANGUAGE=\"fra\""));
    check_external_validators(&pkg);
    // Left out on request.
    let pkg = w.join("pkg-none");
    let mut args = small.to_vec();
    args.push("--no-mezzanine-subtitles");
    embed_ok(w, &mkv, &pkg, &args);
    assert!(!pkg.join("text-fr").exists());
    assert!(
        !std::fs::read_to_string(pkg.join("master.m3u8"))
            .unwrap()
            .contains("SUBTITLES")
    );
}

/// The init and media segments of a plain (not A/B) rendition, joined into one file.
fn join_rendition(dir: &Path) -> std::path::PathBuf {
    let out = dir.with_extension("joined.mp4");
    concat(&dir.join("init.mp4"), segments(dir), &out);
    out
}

fn ffprobe_audio(file: &Path) -> serde_json::Value {
    let o = ffprobe(
        &[
            "-of",
            "json",
            "-show_entries",
            "stream=codec_name,profile,sample_rate,channels,duration:stream_tags=language",
        ],
        file,
    );
    serde_json::from_str::<serde_json::Value>(&o).unwrap()["streams"][0].clone()
}

#[test]
fn audio_tracks_become_aac_renditions_that_ffprobe_and_the_validators_accept() {
    let ws = init_workdir();
    let w = ws.path();
    // Eight tracks, as a film with dubs and commentary carries them: AAC-LC 48 kHz stereo
    // (copied), AC-3 5.1 at 44.1 kHz, and mono or stereo PCM at odd rates, some tagged as
    // commentary or description; one with no language.
    let mkv = w.join("mez.mkv");
    let tracks: [(&str, u32, u32, &str, &str); 8] = [
        ("eng", 48_000, 2, "aac", "default"),
        ("fra", 44_100, 6, "ac3", "0"),
        ("eng", 22_050, 1, "pcm_s16le", "comment"),
        ("deu", 11_025, 2, "pcm_s16le", "0"),
        ("spa", 32_000, 1, "pcm_s16le", "0"),
        ("ita", 96_000, 2, "pcm_s16le", "0"),
        ("eng", 8_000, 1, "pcm_s16le", "visual_impaired"),
        ("", 44_100, 2, "pcm_s16le", "0"),
    ];
    let mut args: Vec<String> = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=24:duration=5",
    ]
    .map(String::from)
    .to_vec();
    for (k, (_, rate, ch, _, _)) in tracks.iter().enumerate() {
        args.extend(["-f".into(), "lavfi".into(), "-i".into()]);
        args.push(format!(
            "sine=frequency={}:sample_rate={rate}:duration=5,aformat=channel_layouts={}",
            300 + 100 * k,
            match ch {
                1 => "mono",
                2 => "stereo",
                _ => "5.1",
            }
        ));
    }
    args.extend(["-map", "0"].map(String::from));
    for k in 0..tracks.len() {
        args.extend(["-map".into(), format!("{}", k + 1)]);
    }
    for (k, (lang, _, _, codec, disposition)) in tracks.iter().enumerate() {
        args.extend([format!("-c:a:{k}"), codec.to_string()]);
        if !lang.is_empty() {
            args.extend([format!("-metadata:s:a:{k}"), format!("language={lang}")]);
        }
        args.extend([format!("-disposition:a:{k}"), disposition.to_string()]);
    }
    args.extend(["-c:v", "libx264", "-preset", "ultrafast"].map(String::from));
    args.push(mkv.to_str().unwrap().into());
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let pkg = w.join("pkg");
    let small = ["--ladder", "240p", "--preset", "ultrafast", "--json"];
    let o = embed_ok(w, &mkv, &pkg, &small);
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let audio = summary["audio_renditions"].as_array().unwrap();
    let names: Vec<&str> = audio.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "audio-en",
            "audio-fr",
            "audio-en-2",
            "audio-de",
            "audio-es",
            "audio-it",
            "audio-en-3",
            "audio-und"
        ]
    );
    let copied: Vec<bool> = audio.iter().map(|a| a["copied"] == true).collect();
    assert_eq!(
        copied,
        [true, false, false, false, false, false, false, false]
    );
    let roles: Vec<&str> = audio.iter().map(|a| a["role"].as_str().unwrap()).collect();
    assert_eq!(roles[2], "commentary");
    assert_eq!(roles[6], "description");
    for (a, (lang, _, ch, _, _)) in audio.iter().zip(&tracks) {
        let dir = pkg.join(a["name"].as_str().unwrap());
        let s = ffprobe_audio(&join_rendition(&dir));
        assert_eq!(s["codec_name"], "aac", "{s}");
        assert_eq!(s["profile"], "LC", "{s}");
        assert_eq!(s["sample_rate"], "48000", "{s}");
        assert_eq!(s["channels"], if *ch == 6 { 6 } else { 2 }, "{s}");
        // `mdhd` carries the ISO 639-2 code of the rendition's BCP 47 tag.
        let want = if lang.is_empty() { "und" } else { lang };
        assert_eq!(s["tags"]["language"], want, "{s}");
        let d: f64 = s["duration"].as_str().unwrap().parse().unwrap();
        assert!((d - 5.0).abs() < 0.03, "{}: {d} s", a["name"]);
    }
    let master = std::fs::read_to_string(pkg.join("master.m3u8")).unwrap();
    assert_eq!(
        master.matches("#EXT-X-MEDIA:TYPE=AUDIO").count(),
        8,
        "{master}"
    );
    assert_eq!(master.matches("DEFAULT=YES").count(), 1, "{master}");
    assert!(master.contains("CHANNELS=\"6\""), "{master}");
    assert!(
        master.contains("public.accessibility.describes-video"),
        "{master}"
    );
    assert!(master.contains("CODECS=\"avc1.") && master.contains(",mp4a.40.2\""));
    assert!(master.contains("AUDIO=\"audio\""));
    let mpd = std::fs::read_to_string(pkg.join("manifest.mpd")).unwrap();
    assert_eq!(mpd.matches("contentType=\"audio\"").count(), 8);
    assert!(mpd.contains("value=\"commentary\""));
    check_external_validators(&pkg);

    // Left out on request.
    let pkg = w.join("pkg-silent");
    let mut args = small.to_vec();
    args.push("--no-audio");
    embed_ok(w, &mkv, &pkg, &args);
    assert!(!pkg.join("audio-en").exists());
    let master = std::fs::read_to_string(pkg.join("master.m3u8")).unwrap();
    assert!(!master.contains("TYPE=AUDIO") && !master.contains("mp4a"));
}

#[test]
fn bad_audio_input_gives_one_line_and_no_output() {
    let ws = init_workdir();
    let w = ws.path();
    let out = w.join("out");
    let video = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=24:duration=2",
    ];
    // Sound and no picture.
    let only = w.join("audio-only.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=duration=2",
        "-c:a",
        "aac",
        only.to_str().unwrap(),
    ]);
    assert_clean_failure(w, &only, &out, &[], 3, "has no video stream");
    // A sample rate below what is packaged.
    let low = w.join("low-rate.mkv");
    let mut a: Vec<&str> = video.to_vec();
    a.extend(["-f", "lavfi", "-i", "sine=sample_rate=7350:duration=2"]);
    a.extend([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "pcm_s16le",
    ]);
    a.push(low.to_str().unwrap());
    ffmpeg(&a);
    assert_clean_failure(
        w,
        &low,
        &out,
        &[],
        3,
        "7350 Hz (expected 8000 to 192000 Hz)",
    );
    // ...which --no-audio leaves out.
    let pkg = w.join("pkg-low");
    embed_ok(
        w,
        &low,
        &pkg,
        &["--ladder", "144p", "--preset", "ultrafast", "--no-audio"],
    );
    // More tracks than are packaged.
    let many = w.join("many.mkv");
    let mut a: Vec<String> = video.map(String::from).to_vec();
    a.extend(["-f", "lavfi", "-i", "sine=duration=2"].map(String::from));
    a.extend(["-map".into(), "0".into()]);
    for _ in 0..17 {
        a.extend(["-map".into(), "1".into()]);
    }
    a.extend(
        [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "pcm_s16le",
        ]
        .map(String::from),
    );
    a.push(many.to_str().unwrap().into());
    ffmpeg(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_clean_failure(w, &many, &out, &[], 3, "17 audio tracks (at most 16");
    // Bitrates outside the encoder's range, or not a number.
    let ok = w.join("ok.mkv");
    let mut a: Vec<&str> = video.to_vec();
    a.extend(["-f", "lavfi", "-i", "sine=duration=2"]);
    a.extend([
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "pcm_s16le",
    ]);
    a.push(ok.to_str().unwrap());
    ffmpeg(&a);
    assert_clean_failure(
        w,
        &ok,
        &out,
        &["--audio-bitrate", "8k"],
        2,
        "expected 32000 to 512000",
    );
    assert_clean_failure(
        w,
        &ok,
        &out,
        &["--audio-bitrate", "loud"],
        2,
        "--audio-bitrate",
    );
}

/// The keys of the encryption tests: a video key and an audio key. The packages they make are
/// also read by FFmpeg (one segment at a time) and Shaka Packager (whole tracks), which decrypt
/// them to the clear package's frames.
const KEYS: &str = "# test keys\nvideo:0f1e2d3c4b5a69788796a5b4c3d2e1f0:00112233445566778899aabbccddeeff\naudio:1f2e3d4c5b6a79889706b5c4d3e2f101:ffeeddccbbaa99887766554433221100\n";

/// The frames (or audio frames) FFmpeg decodes from `init` + one segment, as frame MD5s.
fn framemd5(init: &Path, seg: &Path, key: Option<&str>) -> Output {
    let joined = seg.with_extension("joined.mp4");
    concat(init, [seg], &joined);
    let o = decode_framemd5(&joined, key);
    std::fs::remove_file(joined).unwrap();
    o
}

fn md5_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn encrypted_packages_decrypt_in_ffmpeg_and_shaka_packager_with_the_key_only() {
    let ws = init_workdir();
    let w = ws.path();
    let keys = w.join("keys.txt");
    std::fs::write(&keys, KEYS).unwrap();
    // The same mezzanine, settings and master key, clear and encrypted: the encoder is
    // deterministic, so each decrypted segment decodes to the clear package's frames.
    let mezz = w.join("mezz.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=24:duration=4",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=500:sample_rate=48000:duration=4",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-metadata:s:a:0",
        "language=spa",
        mezz.to_str().unwrap(),
    ]);
    let base = [
        "--ladder",
        "240p",
        "--preset",
        "ultrafast",
        "--threads",
        "1",
        "--json",
    ];
    let clear = w.join("clear");
    embed_ok(w, &mezz, &clear, &base);
    for scheme in ["cenc", "cbcs"] {
        let pkg = w.join(scheme);
        let mut args = base.to_vec();
        args.extend(["--encrypt", scheme, "--key-file", keys.to_str().unwrap()]);
        let o = embed_ok(w, &mezz, &pkg, &args);
        let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(summary["encryption"], scheme);
        for (dir, key) in [
            ("240p/a", "00112233445566778899aabbccddeeff"),
            ("240p/b", "00112233445566778899aabbccddeeff"),
            ("audio-es", "ffeeddccbbaa99887766554433221100"),
        ] {
            let init = pkg.join(dir).join("init.mp4");
            let head = std::fs::read(&init).unwrap();
            let find = |needle: &[u8]| head.windows(needle.len()).any(|w| w == needle);
            assert!(
                find(b"sinf") && find(scheme.as_bytes()) && find(b"pssh"),
                "{dir}"
            );
            for p in 0..2 {
                let seg = pkg.join(dir).join(format!("seg_{p:05}.m4s"));
                let plain = md5_lines(&framemd5(
                    &clear.join(dir).join("init.mp4"),
                    &clear.join(dir).join(format!("seg_{p:05}.m4s")),
                    None,
                ));
                assert!(!plain.is_empty());
                let decrypted = framemd5(&init, &seg, Some(key));
                assert!(
                    decrypted.status.success(),
                    "{scheme} {dir} {p}: {}",
                    String::from_utf8_lossy(&decrypted.stderr)
                );
                assert_eq!(md5_lines(&decrypted), plain, "{scheme} {dir} segment {p}");
                // Without the key (or with another) the samples do not decode to the same.
                let other = framemd5(&init, &seg, Some("0000000000000000000000000000000f"));
                assert!(
                    !other.status.success() || md5_lines(&other) != plain,
                    "{scheme} {dir} {p} decoded with a wrong key"
                );
            }
        }
        // Shaka Packager (npm `shaka-packager`) reads each whole encrypted track, decrypts it
        // with the raw key, and its output decodes to the clear package's frames.
        for (dir, stream, kid, key) in [
            (
                "240p/b",
                "video",
                "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
                "00112233445566778899aabbccddeeff",
            ),
            (
                "audio-es",
                "audio",
                "1f2e3d4c5b6a79889706b5c4d3e2f101",
                "ffeeddccbbaa99887766554433221100",
            ),
        ] {
            let joined = join_rendition(&pkg.join(dir));
            let out = w.join(format!("{scheme}-{stream}-decrypted.mp4"));
            let o = Command::new(shaka_packager())
                .arg(format!(
                    "in={},stream={stream},output={}",
                    joined.display(),
                    out.display()
                ))
                .arg("--enable_raw_key_decryption")
                .arg(format!("--keys=key_id={kid}:key={key}"))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "shaka-packager {scheme} {dir}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(
                frame_hashes(&out),
                frame_hashes(&join_rendition(&clear.join(dir))),
                "{scheme} {dir}: Shaka Packager's decryption"
            );
        }
        let master = std::fs::read_to_string(pkg.join("master.m3u8")).unwrap();
        let method = if scheme == "cbcs" {
            "SAMPLE-AES"
        } else {
            "SAMPLE-AES-CTR"
        };
        assert!(
            master.contains(&format!("#EXT-X-SESSION-KEY:METHOD={method},")),
            "{master}"
        );
        let media = std::fs::read_to_string(pkg.join("240p/playlist.m3u8")).unwrap();
        assert!(media.contains("KEYFORMAT=\"org.w3.clearkey\""), "{media}");
        let mpd = std::fs::read_to_string(pkg.join("manifest.mpd")).unwrap();
        assert!(mpd.contains("cenc:default_KID=\"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\""));
        assert!(mpd.contains("cenc:default_KID=\"1f2e3d4c-5b6a-7988-9706-b5c4d3e2f101\""));
        assert!(mpd.contains("<cenc:pssh>"), "{mpd}");
        check_external_validators(&pkg);
    }
}

#[test]
fn bad_keys_give_one_line_and_no_output() {
    let ws = init_workdir();
    let w = ws.path();
    let out = w.join("out");
    let clip = w.join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=24:duration=2",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        clip.to_str().unwrap(),
    ]);
    let key_file = |name: &str, text: &str| {
        let p = w.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let short = key_file(
        "short.txt",
        "video:0f1e2d3c4b5a6978:00112233445566778899aabbccddeeff\n",
    );
    let twice = key_file(
        "twice.txt",
        "video:0f1e2d3c4b5a69788796a5b4c3d2e1f0:00112233445566778899aabbccddeeff\naudio:0f1e2d3c4b5a69788796a5b4c3d2e1f0:ffeeddccbbaa99887766554433221100\n",
    );
    let good = key_file("good.txt", KEYS);
    let enc = |file: &str| {
        vec![
            "--encrypt".to_owned(),
            "cenc".into(),
            "--key-file".into(),
            file.into(),
        ]
    };
    let run = |args: Vec<String>, code: i32, needle: &str| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_clean_failure(w, &clip, &out, &refs, code, needle);
    };
    run(
        enc(&short),
        3,
        "line 1: key ID has 16 hex digits (expected 32",
    );
    run(enc(&twice), 3, "is used twice");
    run(
        enc(&w.join("none.txt").display().to_string()),
        3,
        "cannot read",
    );
    let mut av1 = enc(&good);
    av1.extend(["--codec".into(), "av1".into()]);
    run(
        av1,
        2,
        "Common Encryption of av1 video is not implemented (expected --codec h264 or hevc)",
    );
    // HEVC is encrypted: its segments decrypt with the video key to the clear package's
    // frames (same settings, deterministic encoder), and not with another key.
    let hevc = [
        "--codec",
        "hevc",
        "--ladder",
        "240p",
        "--preset",
        "ultrafast",
        "--threads",
        "1",
    ];
    embed_ok(w, &clip, &w.join("hevc-clear"), &hevc);
    let mut args = enc(&good);
    args.extend(hevc.map(String::from));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    embed_ok(w, &clip, &w.join("hevc"), &refs);
    let init = w.join("hevc/240p/a/init.mp4");
    let seg = w.join("hevc/240p/a/seg_00000.m4s");
    let head = std::fs::read(&init).unwrap();
    assert!(head.windows(4).any(|x| x == b"encv") && head.windows(4).any(|x| x == b"hvcC"));
    let plain = md5_lines(&framemd5(
        &w.join("hevc-clear/240p/a/init.mp4"),
        &w.join("hevc-clear/240p/a/seg_00000.m4s"),
        None,
    ));
    assert!(!plain.is_empty());
    let decrypted = framemd5(&init, &seg, Some("00112233445566778899aabbccddeeff"));
    assert_eq!(md5_lines(&decrypted), plain, "hevc cenc");
    let other = framemd5(&init, &seg, Some("0000000000000000000000000000000f"));
    assert!(!other.status.success() || md5_lines(&other) != plain);
    let mut scheme = enc(&good);
    scheme[1] = "cens".into();
    run(scheme, 2, "expected cenc or cbcs");
    let mut pssh = enc(&good);
    pssh.extend([
        "--pssh".into(),
        "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed:%%%".into(),
    ]);
    run(pssh, 2, "not base64");
}

/// `bench encode --json` reports each arm's wall and CPU time. The A/B package encodes every
/// frame twice, so its CPU time must exceed the plain encode's, whatever the machine's load.
#[test]
fn bench_encode_reports_wall_and_cpu_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .current_dir(dir.path())
        .args(["bench", "encode"])
        .arg(corpus("trailer_bbb_20s.mp4"))
        .args(["--title", "t", "--ladder", "360p", "--max-frames", "48"])
        .args([
            "--preset",
            "veryfast",
            "--repeat",
            "1",
            "--encrypt",
            "none",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let num = |k: &str| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("{k} is not a number: {v}"))
    };
    assert_eq!(v["frames"], 48, "{v}");
    let (plain, ab) = (num("plain_cpu_seconds"), num("ab_cpu_seconds"));
    assert!(
        plain > 0.0 && ab > plain,
        "plain {plain} s, A/B {ab} s of CPU: {v}"
    );
    assert!((num("cpu_ratio") - ab / plain).abs() < 1e-9, "{v}");
    assert!(num("ratio") > 0.0, "{v}");
    assert_eq!(v["cpu_ratios"].as_array().map(Vec::len), Some(1), "{v}");
}

/// Every file of the package under `dir`, relative path and bytes, `title.json` (which
/// records how long the run took) left out.
fn package_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "title.json") {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The same input, key and settings give the same package, byte for byte: segments, sidecars,
/// manifests and the reference index. The encoders run side by side on their own threads; an
/// H.264 encoder on one thread is deterministic, where several frame threads under the
/// standard rungs' peak-rate cap are not (their rate control reads each other's progress).
#[test]
fn an_embed_run_twice_writes_the_same_bytes() {
    let ws = init_workdir();
    let run = |name: &str| {
        let pkg = ws.path().join(name);
        embed_ok(
            ws.path(),
            &corpus("bbb.mp4"),
            &pkg,
            &[
                "--ladder",
                "360p,240p",
                "--preset",
                "veryfast",
                "--max-frames",
                "480",
                "--threads",
                "1",
            ],
        );
        package_files(&pkg)
    };
    let (first, second) = (run("pkg1"), run("pkg2"));
    assert!(first.iter().filter(|(n, _)| n.ends_with(".m4s")).count() >= 40);
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&first), names(&second));
    let differ: Vec<&String> = first
        .iter()
        .zip(&second)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| &a.0)
        .collect();
    assert!(differ.is_empty(), "differ between two runs: {differ:?}");
}

/// An anamorphic mezzanine (a 16:9 picture stored in 720x576 pixels of 64:45, as PAL
/// broadcast and DVD masters are) gives square-pixel renditions as wide as the picture is
/// shown: 854x480 and 640x360, not the 600x480 and 450x360 of its stored shape, which every
/// player would show squeezed to 5:4.
#[test]
fn an_anamorphic_mezzanine_gives_renditions_as_wide_as_it_is_shown() {
    let d = init_workdir();
    let dir = d.path();
    let mezzanine = dir.join("pal_16x9.mp4");
    ok(ffmpeg_command()
        .arg("-i")
        .arg(corpus("trailer_bbb_20s.mp4"))
        .args([
            "-frames:v",
            "48",
            "-an",
            "-vf",
            "scale=720:576,setsar=64/45",
        ])
        .args(["-c:v", "libx264", "-crf", "18", "-preset", "veryfast"])
        .arg(&mezzanine));
    let o = embed_ok(
        dir,
        &mezzanine,
        &dir.join("pkg"),
        &["--preset", "veryfast", "--json"],
    );
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sizes: Vec<(u64, u64)> = summary["renditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["width"].as_u64().unwrap(), r["height"].as_u64().unwrap()))
        .collect();
    assert_eq!(sizes, [(854, 480), (640, 360)], "{summary}");
    for (name, w) in [("480p", "854"), ("360p", "640")] {
        let init = dir.join("pkg").join(name).join("a/init.mp4");
        let shown = ffprobe(
            &[
                "-show_entries",
                "stream=width,sample_aspect_ratio",
                "-of",
                "compact=p=0:nk=1",
            ],
            &init,
        );
        // No pixel aspect written: square pixels.
        let fields: Vec<&str> = shown.trim().split('|').collect();
        assert_eq!(fields[0], w, "{name}: {shown}");
        assert!(
            matches!(fields.get(1), Some(&"N/A" | &"1:1") | None),
            "{name}: {shown}"
        );
    }
}

/// An HDR10 master (BT.2020 primaries, the PQ transfer, 10-bit, a mastering display and
/// content light levels in its SEI) stays HDR: every rendition's stream declares its colour
/// description (as ffprobe reads it from the init segment) and carries the master's static
/// metadata (as FFmpeg decodes it from the first picture; for H.264, which FFmpeg 5.1 does not
/// decode it from, as its bitstream tracer reads the SEI), the HLS variants say
/// `VIDEO-RANGE=PQ` and the DASH video adaptation set carries the CICP properties, and both
/// manifests still pass the validators. An untagged source adds none.
#[test]
fn an_hdr_master_stays_hdr_in_every_rendition() {
    let d = init_workdir();
    let dir = d.path();
    let master = dir.join("hdr10.mp4");
    ok(ffmpeg_command()
        .arg("-i")
        .arg(corpus("trailer_bbb_20s.mp4"))
        .args(["-frames:v", "48", "-an", "-vf", "scale=640:360"])
        .args([
            "-pix_fmt",
            "yuv420p10le",
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
        ])
        .args([
            "-x265-params",
            "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:\
             master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)\
             L(10000000,50):max-cll=1000,400",
        ])
        .args(["-color_primaries", "bt2020", "-color_trc", "smpte2084"])
        .args(["-colorspace", "bt2020nc"])
        .arg(&master));
    let pkg = dir.join("pkg");
    embed_ok(
        dir,
        &master,
        &pkg,
        &[
            "--codec",
            "hevc",
            "--ladder",
            "360p,240p",
            "--preset",
            "ultrafast",
        ],
    );
    let colour = |init: &Path| {
        ffprobe(
            &[
                "-show_entries",
                "stream=color_primaries,color_transfer,color_space",
                "-of",
                "compact=p=0:nk=1",
            ],
            init,
        )
    };
    for r in ["360p", "240p"] {
        for v in ["a", "b"] {
            let init = pkg.join(r).join(v).join("init.mp4");
            assert_eq!(colour(&init).trim(), "bt2020nc|smpte2084|bt2020", "{r}/{v}");
            let joined = dir.join(format!("{r}-{v}.mp4"));
            concat(&init, [pkg.join(r).join(v).join("seg_00000.m4s")], &joined);
            let side = ffprobe(
                &[
                    "-show_frames",
                    "-read_intervals",
                    "%+#1",
                    "-show_entries",
                    "frame=side_data_list",
                ],
                &joined,
            );
            for want in [
                "side_data_type=Mastering display metadata",
                "red_x=34000/50000",
                "green_y=34500/50000",
                "white_point_x=15635/50000",
                "max_luminance=10000000/10000",
                "min_luminance=50/10000",
                "max_content=1000",
                "max_average=400",
            ] {
                assert!(side.contains(want), "{r}/{v}: {want} in {side}");
            }
        }
    }
    // H.264 of the same master (10-bit, the PQ transfer kept): the SEI messages of a
    // mastering display (type 137) and of content light levels (144), with the master's values.
    let avc = dir.join("avc");
    embed_ok(
        dir,
        &master,
        &avc,
        &["--ladder", "240p", "--preset", "ultrafast"],
    );
    let joined = dir.join("avc.mp4");
    concat(
        &avc.join("240p/a/init.mp4"),
        [avc.join("240p/a/seg_00000.m4s")],
        &joined,
    );
    let trace = trace_headers(&[], &joined, &["-frames:v", "1"]);
    let field = |name: &str| -> Vec<u64> {
        trace
            .lines()
            .filter(|l| l.contains("trace_headers") && l.contains(name))
            .filter_map(|l| l.rsplit("= ").next()?.trim().parse().ok())
            .collect()
    };
    let types = field("last_payload_type_byte");
    assert!(
        types.contains(&137) && types.contains(&144),
        "SEI payload types {types:?}"
    );
    assert_eq!(field("display_primaries_x[2]").first(), Some(&34000));
    assert_eq!(
        field("max_display_mastering_luminance").first(),
        Some(&10_000_000)
    );
    assert_eq!(field("max_content_light_level").first(), Some(&1000));
    assert_eq!(field("max_pic_average_light_level").first(), Some(&400));
    let hls = std::fs::read_to_string(pkg.join("master.m3u8")).unwrap();
    assert_eq!(hls.matches("VIDEO-RANGE=PQ").count(), 2, "{hls}");
    let mpd = std::fs::read_to_string(pkg.join("manifest.mpd")).unwrap();
    for (scheme, value) in [
        ("ColourPrimaries", 9),
        ("TransferCharacteristics", 16),
        ("MatrixCoefficients", 9),
    ] {
        let want = format!(
            "<SupplementalProperty schemeIdUri=\"urn:mpeg:mpegB:cicp:{scheme}\" value=\"{value}\"/>"
        );
        assert!(mpd.contains(&want), "{want} in {mpd}");
    }
    check_external_validators(&pkg);

    // An untagged source: no description invented.
    let sdr = dir.join("sdr");
    embed_ok(
        dir,
        &corpus("trailer_bbb_20s.mp4"),
        &sdr,
        &[
            "--ladder",
            "240p",
            "--preset",
            "ultrafast",
            "--max-frames",
            "48",
        ],
    );
    assert_eq!(
        colour(&sdr.join("240p/a/init.mp4")).trim(),
        "unknown|unknown|unknown"
    );
    assert!(
        !std::fs::read_to_string(sdr.join("master.m3u8"))
            .unwrap()
            .contains("VIDEO-RANGE")
    );
    assert!(
        !std::fs::read_to_string(sdr.join("manifest.mpd"))
            .unwrap()
            .contains("cicp")
    );
}
