//! `leaktrace bench encode`: the cost of the A/B pair against one plain encode.

use crate::cli::BenchEncodeArgs;
use crate::exit::Code;
use anyhow::{Context, Result};
use leaktrace_core::{KeyVersion, MasterKey};
use leaktrace_embed::{embed_file, encode_plain};
use std::path::Path;

pub fn encode(_config: Option<&Path>, a: &BenchEncodeArgs) -> Result<Code> {
    let cfg = super::pipeline_config(&a.encode)?;
    // The key does not change the cost; a fixed bench key keeps the run self-contained.
    let key = MasterKey::from_bytes([0x5a; 32], KeyVersion::new(1));
    let tmp = tempfile::Builder::new().prefix("leaktrace-bench-").tempdir().context("creating a temporary directory")?;
    let plain = encode_plain(&a.input, tmp.path(), &cfg)?;
    let out = tmp.path().join("ab");
    let ab = embed_file(&a.input, &out, &key, &cfg, &mut |_| {})?;
    let ratio = ab.elapsed_seconds / plain.elapsed_seconds.max(1e-9);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "input": a.input, "frames": plain.frames, "renditions": ab.renditions.len(),
                "codec": ab.codec, "plain_seconds": plain.elapsed_seconds, "ab_seconds": ab.elapsed_seconds,
                "mark_seconds": ab.mark_seconds, "ratio": ratio, "target": 2.0,
            })
        );
    } else {
        println!("input        {}", a.input.display());
        println!("frames       {} x {} rendition(s), {}", plain.frames, ab.renditions.len(), ab.codec);
        println!("plain encode {:.2} s", plain.elapsed_seconds);
        println!("A/B package  {:.2} s (of which mask+mark {:.2} s)", ab.elapsed_seconds, ab.mark_seconds);
        println!("ratio        {ratio:.3} (target <= 2.0)");
    }
    Ok(Code::Success)
}
