//! Real files whose frames do not come one per declared interval: `tree.avi` (Debian
//! `opencv-doc`, Cinepak in AVI) declares 444 frames at 15 fps over 29.6 s but codes 68; the
//! others are AVI "drop" chunks, a picture that repeats and is not coded again.
//!
//! The decoder must read such a file whole (a suspect recorded this way is a copy to detect,
//! not a corrupt file), and the embedder, which counts positions in frames of the declared rate,
//! must refuse it as a variable frame rate with the way out, rather than mark it on a wrong
//! timeline or call it truncated.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use leaktrace_core::{KeyVersion, MasterKey, TitleId};
use leaktrace_embed::{EmbedError, PipelineConfig, embed_file};
use leaktrace_media::Decoder;
use leaktrace_testkit::corpus;

#[test]
fn a_sparse_avi_decodes_whole_and_is_refused_as_variable_rate_by_the_embedder() {
    let tree = corpus("tree.avi");
    let mut d = Decoder::open(&tree).unwrap();
    let mut frames = 0u64;
    while d.next_luma(64, 48).unwrap().is_some() {
        frames += 1;
    }
    assert_eq!(frames, 68);
    assert_eq!(d.declared_frames(), 444);
    let last = d.last_time().unwrap();
    assert!((29.0..29.7).contains(&last), "last frame at {last} s");

    let out = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([7; 32], KeyVersion::new(1));
    let mut cfg = PipelineConfig::new(TitleId::new("tree").unwrap());
    cfg.ladder = Some("240p".into());
    cfg.preset = Some("ultrafast".into());
    let err = embed_file(&tree, &out.path().join("pkg"), &key, &cfg, &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, EmbedError::VariableFrameRate { frame: 1, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("variable frame rate") && msg.contains("fps=15.000"),
        "{msg}"
    );
}
