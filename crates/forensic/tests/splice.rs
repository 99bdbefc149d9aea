//! A served-bytes leak decided on frames spliced from the decoded all-A and all-B streams is
//! decided exactly as its own file decoded: the same pictures, times and decisions.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use leaktrace_core::Position;
use leaktrace_core::{KeyVersion, MasterKey, SegmentDuration, TitleId, Variant};
use leaktrace_detect::frames::SuspectFrames;
use leaktrace_detect::{DecideOptions, decide, decide_frames};
use leaktrace_embed::{PipelineConfig, embed_file};
use leaktrace_forensic::stream::Package;
use leaktrace_reference::Reference;
use leaktrace_testkit::corpus;

/// Every working image of `f`, in order.
fn images(f: &mut SuspectFrames) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    f.for_each(|_, img| out.push(img.to_vec())).unwrap();
    out
}

#[test]
fn spliced_frames_equal_the_decoded_leak() {
    let tmp = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([7; 32], KeyVersion::new(1));
    let title = TitleId::new("splice").unwrap();
    let mut cfg = PipelineConfig::new(title.clone());
    cfg.ladder = Some("240p".into());
    cfg.preset = Some("veryfast".into());
    cfg.segment = SegmentDuration::from_millis(1000).unwrap();
    cfg.max_frames = Some(240);
    let out = tmp.path().join("pkg");
    let summary = embed_file(
        &corpus("trailer_bbb_20s.mp4"),
        &out,
        &key,
        &cfg,
        &mut |_| {},
    )
    .unwrap();
    let pkg = Package::open(&out.join(&summary.renditions[0].name)).unwrap();
    let reference = Reference::load(&out.join("reference")).unwrap();
    let n = pkg.positions as usize;
    assert!(n >= 8, "{n} positions");

    let render = |v: &[Variant], name: &str| {
        let f = tmp.path().join(name);
        pkg.render(v, &f).unwrap();
        SuspectFrames::read(&f).unwrap()
    };
    let a = render(&vec![Variant::A; n], "all-a.mp4");
    let b = render(&vec![Variant::B; n], "all-b.mp4");
    // Runs of both lengths and lone switches.
    let leak: Vec<Variant> = (0..n)
        .map(|p| {
            if [1, 2, 5, 7].contains(&(p % 8)) {
                Variant::B
            } else {
                Variant::A
            }
        })
        .collect();
    let mut pick = Vec::new();
    for (p, v) in leak.iter().enumerate() {
        let frames = reference.position(Position::new(p as u32)).unwrap().frames;
        pick.extend(std::iter::repeat_n(
            usize::from(*v == Variant::B),
            frames as usize,
        ));
    }
    let mut spliced = SuspectFrames::splice(&[&a, &b], &pick).unwrap();
    let mut decoded = render(&leak, "leak.mp4");

    assert_eq!(spliced.len(), decoded.len());
    assert_eq!(spliced.times, decoded.times);
    assert_eq!(spliced.means, decoded.means);
    assert_eq!(spliced.central, decoded.central);
    let (si, di) = (images(&mut spliced), images(&mut decoded));
    assert!(
        si == di,
        "the spliced pictures differ from the decoded leak's"
    );
    // The splice is not trivially one of its sources.
    assert!(si != images(&mut render(&vec![Variant::A; n], "a2.mp4")));

    let pattern_key = key.pattern_key(&title);
    let opts = DecideOptions::default();
    let from_file = decide(
        &tmp.path().join("leak.mp4"),
        &reference,
        &pattern_key,
        &opts,
    )
    .unwrap();
    let from_splice = decide_frames(&mut spliced, &reference, &pattern_key, &opts).unwrap();
    assert_eq!(from_file.positions, from_splice.positions);
    assert_eq!(
        serde_json::to_string(&from_file).unwrap(),
        serde_json::to_string(&from_splice).unwrap()
    );
    let right = from_splice
        .positions
        .iter()
        .filter(|d| (d.z > 0.0) == (leak[d.position as usize] == Variant::A))
        .count();
    assert!(right * 10 >= n * 9, "{right} of {n} positions right");

    // Sources that are not variants of one stream, and picks out of range, are refused.
    let short = render(&vec![Variant::A; n - 1], "short.mp4");
    assert!(SuspectFrames::splice(&[&a, &short], &pick).is_err());
    assert!(SuspectFrames::splice(&[&a, &b], &pick[1..]).is_err());
    let mut bad = pick.clone();
    bad[3] = 2;
    assert!(SuspectFrames::splice(&[&a, &b], &bad).is_err());
}
