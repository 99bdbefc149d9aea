//! Common Encryption of HEVC tracks through the public API ([`Protection::init`],
//! [`Protector::protect`]), checked by two independent decrypters: real x265 encodes of the
//! corpus clip (8-bit as `hvc1` through `cmaf::split`, 10-bit as FFmpeg writes it, `hev1`),
//! with several slices per picture, wavefront entry points, B-frames, weighted prediction, SEI,
//! access unit delimiters and the parameter sets repeated in every keyframe sample, are
//! encrypted with `cenc` and `cbcs`; FFmpeg (`-decryption_key`, one init + fragment at a time:
//! FFmpeg 5.1 cannot decrypt several fragments joined) and Shaka Packager (npm
//! `shaka-packager` in `tools/`, whole tracks) decrypt them to the clear frames, and a wrong
//! key does not. Corrupted fragments give errors, never panics.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test code: a panic is a failure report

use leaktrace_media::cenc::{ContentKey, Protection, Pssh, Scheme};
use leaktrace_media::cmaf::{self, Fragment};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use leaktrace_testkit::{corpus, decode_framemd5, frame_hashes, hash_column, shaka_packager};

const KID: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
const KEY: &str = "00112233445566778899aabbccddeeff";
const WRONG_KEY: &str = "0000000000000000000000000000000f";

/// The corpus clip (`$LEAKTRACE_CORPUS`, else `<repo>/corpus/cache`).
fn clip() -> PathBuf {
    corpus("trailer_bbb_20s.mp4")
}

/// The x265 settings of the fixtures: one-second GOPs (one fragment each), B-frames with
/// weighted prediction over a fade, two slices per picture with wavefronts (entry points),
/// AUDs, the info SEI and VPS/SPS/PPS repeated in-band in every keyframe sample.
const X265: &str = "log-level=error:keyint=24:min-keyint=24:scenecut=0:bframes=3:weightp=1:\
                    weightb=1:slices=2:wpp=1:repeat-headers=1:aud=1";

/// The fixtures, encoded once per test binary: (`hvc1` 8-bit file, `hev1` 10-bit file).
fn fixtures() -> &'static (PathBuf, PathBuf) {
    static DIR: OnceLock<(tempfile::TempDir, (PathBuf, PathBuf))> = OnceLock::new();
    &DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let encode = |name: &str, pix_fmt: &str, tag: Option<&str>| {
            let out = dir.path().join(name);
            let mut c = Command::new("ffmpeg");
            c.args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-ss",
                "6",
                "-t",
                "4",
                "-i",
            ])
            .arg(clip())
            .args([
                "-an",
                "-vf",
                "scale=480:-2,fade=t=in:st=0:d=1.5",
                "-pix_fmt",
                pix_fmt,
                "-c:v",
                "libx265",
                "-preset",
                "fast",
                "-x265-params",
                X265,
            ]);
            if let Some(t) = tag {
                c.args(["-tag:v", t]);
            }
            let st = c
                .args([
                    "-movflags",
                    "+frag_keyframe+empty_moov+default_base_moof+cmaf",
                    "-f",
                    "mp4",
                ])
                .arg(&out)
                .status()
                .unwrap();
            assert!(st.success(), "ffmpeg {name}");
            // The samples carry what the protector must leave clear: parameter sets (besides
            // those of the hvcC), AUDs and SEI.
            let o = Command::new("ffmpeg")
                .args(["-hide_banner", "-nostats", "-i"])
                .arg(&out)
                .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
                .output()
                .unwrap();
            let trace = String::from_utf8_lossy(&o.stderr);
            for unit in [
                "] Video Parameter Set",
                "] Sequence Parameter Set",
                "] Picture Parameter Set",
            ] {
                assert!(trace.matches(unit).count() >= 4, "{name}: {unit} in-band");
            }
            assert!(trace.contains("] Access Unit Delimiter"), "{name}: AUD");
            assert!(
                trace.contains("] Prefix Supplemental Enhancement"),
                "{name}: SEI"
            );
            assert!(trace.contains("entry_point_offset_minus1[0]"), "{name}");
            assert!(trace.contains("delta_chroma_weight_l0"), "{name}");
            out
        };
        let a = encode("hvc1-8bit.mp4", "yuv420p", Some("hvc1"));
        let b = encode("hev1-10bit.mp4", "yuv420p10le", None);
        (dir, (a, b))
    })
    .1
}

/// The clear init segment as given to the protector (`split`'s, or the file's own bytes
/// before the first `moof`, sample entry and all) and the clear fragments.
fn track(file: &Path, raw_init: bool) -> (Vec<u8>, Vec<Fragment>) {
    let bytes = std::fs::read(file).unwrap();
    let t = cmaf::split(&bytes).unwrap();
    assert!(t.fragments.len() >= 4, "{} fragments", t.fragments.len());
    assert!(t.codec.starts_with("hvc1."), "{}", t.codec);
    if !raw_init {
        return (t.init, t.fragments);
    }
    let top = cmaf::boxes(&bytes, 0, bytes.len()).unwrap();
    let moof = top.iter().find(|b| &b.kind == b"moof").unwrap();
    let init = bytes[..moof.start].to_vec();
    assert!(init.windows(4).any(|w| w == b"hev1"), "FFmpeg writes hev1");
    (init, t.fragments)
}

fn protection(scheme: Scheme) -> Protection {
    let key = ContentKey::parse_hex(KID, KEY).unwrap();
    Protection {
        scheme,
        pssh: vec![Pssh::common(vec![key.kid])],
        key,
        constant_iv: *b"\x31\x41\x59\x26\x53\x58\x97\x93\x23\x84\x62\x64\x33\x83\x27\x95",
    }
}

/// `init` + `fragment` as one file, decoded by FFmpeg (with `key`) to frame MD5s.
fn framemd5(dir: &Path, init: &[u8], fragment: &[u8], key: Option<&str>) -> Output {
    let joined = dir.join("joined.mp4");
    let mut bytes = init.to_vec();
    bytes.extend_from_slice(fragment);
    std::fs::write(&joined, bytes).unwrap();
    decode_framemd5(&joined, key)
}

#[test]
fn hevc_tracks_decrypt_in_ffmpeg_and_shaka_packager_with_the_key_only() {
    let (hvc1, hev1) = fixtures();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for (file, raw_init) in [(hvc1, false), (hev1, true)] {
        let (init, fragments) = track(file, raw_init);
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        let clear: Vec<Vec<String>> = fragments
            .iter()
            .map(|f| {
                let o = framemd5(w, &init, &f.bytes, None);
                assert!(o.status.success(), "{name}: clear fragment");
                let h = hash_column(&o);
                assert!(h.len() + 4 >= f.samples as usize, "{name}: clear frames");
                h
            })
            .collect();
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let (enc_init, mut protector) = protection(scheme).init(&init).unwrap();
            let find = |needle: &[u8]| enc_init.windows(needle.len()).any(|x| x == needle);
            assert!(find(b"encv") && find(b"sinf") && find(b"hvcC") && find(b"pssh"));
            assert!(find(scheme.fourcc()) && find(if raw_init { b"hev1" } else { b"hvc1" }));
            let mut whole = enc_init.clone();
            for (p, fragment) in fragments.iter().enumerate() {
                let enc = protector.protect(fragment).unwrap();
                assert_eq!(enc.samples, fragment.samples);
                assert!(
                    enc.bytes.windows(4).any(|x| x == b"senc"),
                    "{name} {scheme:?} {p}: no senc"
                );
                assert_ne!(
                    enc.bytes[enc.bytes.len() - fragment.bytes.len() / 2..],
                    fragment.bytes[fragment.bytes.len() / 2..],
                    "{name} {scheme:?} {p}: the samples are not encrypted"
                );
                whole.extend_from_slice(&enc.bytes);
                let o = framemd5(w, &enc_init, &enc.bytes, Some(KEY));
                assert!(
                    o.status.success(),
                    "{name} {scheme:?} {p}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                assert_eq!(hash_column(&o), clear[p], "{name} {scheme:?} fragment {p}");
                let other = framemd5(w, &enc_init, &enc.bytes, Some(WRONG_KEY));
                assert!(
                    !other.status.success() || hash_column(&other) != clear[p],
                    "{name} {scheme:?} {p}: decoded with a wrong key"
                );
            }
            // Shaka Packager reads the whole encrypted track, decrypts it with the raw key,
            // and its output decodes to the clear file's frames.
            let enc_file = w.join(format!("{name}-{}.mp4", scheme.name()));
            std::fs::write(&enc_file, &whole).unwrap();
            let out = w.join(format!("{name}-{}-decrypted.mp4", scheme.name()));
            let o = Command::new(shaka_packager())
                .arg(format!(
                    "in={},stream=video,output={}",
                    enc_file.display(),
                    out.display()
                ))
                .arg("--enable_raw_key_decryption")
                .arg(format!("--keys=key_id={KID}:key={KEY}"))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "shaka-packager {name} {scheme:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(
                frame_hashes(&out),
                frame_hashes(file),
                "{name} {scheme:?}: Shaka Packager's decryption"
            );
        }
    }
}

/// Every fragment cut short, and with bytes overwritten along its samples, is protected or
/// refused with an error; the protector never panics, and a refused fragment does not stop
/// the next good one from being protected.
#[test]
fn corrupted_hevc_fragments_give_errors_not_panics() {
    let (hvc1, _) = fixtures();
    let (init, fragments) = track(hvc1, false);
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        let (_, mut protector) = protection(scheme).init(&init).unwrap();
        let good = &fragments[0];
        let mut errors = 0;
        let n = good.bytes.len();
        let cuts = (0..n).step_by(97).chain(n.saturating_sub(64)..n);
        for cut in cuts {
            let f = Fragment {
                bytes: good.bytes[..cut].to_vec(),
                ..good.clone()
            };
            errors += usize::from(protector.protect(&f).is_err());
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for at in (0..n).step_by(13) {
            let mut bytes = good.bytes.clone();
            for v in [0x00, 0xff, 0x03] {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes[at] = if v == 0x03 { state as u8 } else { v };
                let f = Fragment {
                    bytes: bytes.clone(),
                    ..good.clone()
                };
                errors += usize::from(protector.protect(&f).is_err());
            }
        }
        assert!(errors > 0, "{scheme:?}: nothing was refused");
        protector.protect(&fragments[1]).unwrap();
    }
}
