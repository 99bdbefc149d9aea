//! `leaktrace detect`: from a suspect copy to the accused session(s).
//!
//! JSON output (`--json`) is versioned (`"schema": "leaktrace.detect.v1"`):
//!
//! - `title`, `verdict` (`"accused"` or `"no accusation"`), `fp` (requested false-accusation
//!   probability over the registry), `sessions` (registered sessions scored);
//! - `registration`: `offset_frames` (suspect frame `i` is reference frame `i + offset`),
//!   `offset_s`, `mad` (mean absolute thumbnail difference, grey levels), `suspect_frames`;
//! - `calibration`: `method`, `exact` (enumerated innocent distribution, or Chernoff bound),
//!   `positions_observed`, `positions_used` (not erased), `erasure_z`, `innocent_sigma`,
//!   `threshold` (score needed, `null` if unreachable), `best_possible` (smallest probability
//!   these positions allow);
//! - `accused`: `[{session_id, account, score, p_single, probability}]` (`p_single` =
//!   `P(one innocent session scores ≥ score)`, probability = union bound `min(1, n · p_single)`), `top`: the best-scoring sessions, accused or not;
//! - `positions`: per position `{position, frames, correlation, sigma0, z, erased}`.

use crate::config::Loaded;
use crate::exit::{Code, NotFoundError, UsageError};
use anyhow::{Context, Result};
use clap::Args;
use leaktrace_core::{SessionId, TitleId};
use leaktrace_detect::accuse::Accuser;
use leaktrace_detect::{DecideOptions, DetectError, decide};
use leaktrace_embed::Reference;
use leaktrace_store::Store;
use std::path::{Path, PathBuf};

/// Sessions fetched from the store per batch.
const BATCH: u32 = 10_000;
/// Best-scoring sessions reported besides the accused.
const TOP: usize = 5;

/// `leaktrace detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The suspect copy (any container/codec FFmpeg reads).
    pub suspect: PathBuf,
    /// Title id.
    #[arg(long)]
    pub title: String,
    /// The reference index directory written at embed time (PKG/reference).
    #[arg(long)]
    pub reference: PathBuf,
    /// Requested false-accusation probability over all registered sessions (1e-12 to 0.1).
    #[arg(long, default_value_t = 1e-6)]
    pub fp: f64,
    /// Search the start offset within ± this many seconds (0 to 3600; 0 = assume aligned).
    #[arg(long, default_value_t = 60.0)]
    pub max_offset: f64,
    /// Positions with |z| below this are erasures (0 to 10).
    #[arg(long, default_value_t = 3.0)]
    pub erasure_z: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
struct Scored {
    session_id: String,
    account: String,
    score: f64,
    /// P(one innocent session scores at least this).
    p_single: f64,
    probability: f64,
}

/// Runs `leaktrace detect`.
pub fn run(config: Option<&Path>, a: &DetectArgs) -> Result<Code> {
    let title = TitleId::new(a.title.clone()).map_err(|e| UsageError(e.to_string()))?;
    if !(1e-12..=0.1).contains(&a.fp) {
        return Err(UsageError(format!(
            "--fp {} out of range (expected 1e-12 to 0.1)",
            a.fp
        ))
        .into());
    }
    let loaded = Loaded::find(config)?;
    let key = loaded.master_key()?;
    let reference = Reference::load(&a.reference)
        .map_err(|e| DetectError::Reference(format!("{}: {e}", a.reference.display())))?;
    if reference.meta.title != title.as_str() {
        return Err(UsageError(format!(
            "reference {} is for title {:?}, not {:?}",
            a.reference.display(),
            reference.meta.title,
            title.as_str()
        ))
        .into());
    }
    let url = super::store::resolved_url(&loaded)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let store = rt
        .block_on(Store::open(&url))
        .context("opening the store")?;
    if rt.block_on(store.get_title(title.as_str()))?.is_none() {
        rt.block_on(store.close());
        return Err(NotFoundError(format!(
            "unknown title {:?} (no such title in the store; embed it first)",
            title.as_str()
        ))
        .into());
    }
    let opts = DecideOptions {
        max_offset_s: a.max_offset,
        erasure_z: a.erasure_z,
        ..DecideOptions::default()
    };
    let decisions =
        decide(&a.suspect, &reference, &key.pattern_key(&title), &opts).map_err(|e| match e {
            DetectError::Invalid(m) => anyhow::Error::from(UsageError(m)),
            e => anyhow::Error::from(e),
        })?;
    let n = rt.block_on(store.count_sessions(title.as_str()))?;
    let codebook = key.codebook(&title);
    let accuser = Accuser::new(&decisions.positions, &codebook, a.fp, n);

    // Score every session, batch by batch (keyset pages), keeping the accused and the top few.
    let mut accused: Vec<Scored> = Vec::new();
    let mut top: Vec<Scored> = Vec::new();
    let mut after: Option<String> = None;
    let mut scored = 0u64;
    loop {
        let page = rt.block_on(store.sessions_page(title.as_str(), after.as_deref(), BATCH))?;
        for s in &page {
            let Ok(id) = SessionId::new(s.session_id.clone()) else {
                continue;
            };
            let score = accuser.score(&id);
            scored += 1;
            let entry = || Scored {
                session_id: s.session_id.clone(),
                account: s.account_ref.clone(),
                score,
                p_single: accuser.innocent_tail(score),
                probability: accuser.probability(score),
            };
            if accuser.accuses(score) {
                accused.push(entry());
            }
            if top.len() < TOP || top.last().is_some_and(|t| score > t.score) {
                top.push(entry());
                top.sort_by(|x, y| y.score.total_cmp(&x.score));
                top.truncate(TOP);
            }
        }
        match page.last() {
            Some(last) if page.len() == BATCH as usize => after = Some(last.session_id.clone()),
            _ => break,
        }
    }
    rt.block_on(store.close());
    accused.sort_by(|x, y| y.score.total_cmp(&x.score));

    let fps = f64::from(reference.meta.frame_rate[0]) / f64::from(reference.meta.frame_rate[1]);
    let used = accuser.used();
    let verdict = if accused.is_empty() {
        "no accusation"
    } else {
        "accused"
    };
    if a.json {
        let v = serde_json::json!({
            "schema": "leaktrace.detect.v1",
            "title": title.as_str(),
            "verdict": verdict,
            "fp": a.fp,
            "sessions": scored,
            "registration": {
                "offset_frames": decisions.offset,
                "offset_s": decisions.offset as f64 / fps,
                "mad": decisions.registration_mad,
                "suspect_frames": decisions.suspect_frames,
            },
            "calibration": {
                "method": "per-position z = correlation / RMS of decoy-pattern correlations; symmetric Tardos score; innocent tail exact (<= 20 positions) or Chernoff bound; union bound over the registry",
                "exact": accuser.is_exact(),
                "positions_observed": decisions.positions.len(),
                "positions_used": used,
                "erasure_z": a.erasure_z,
                "innocent_sigma": accuser.innocent_sigma(),
                "threshold": accuser.threshold(),
                "best_possible": accuser.best_possible(),
            },
            "accused": accused,
            "top": top,
            "positions": decisions.positions,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("title        {}", title.as_str());
        println!(
            "registration offset {} frames ({:.2} s), thumbnail MAD {:.2}",
            decisions.offset,
            decisions.offset as f64 / fps,
            decisions.registration_mad
        );
        println!(
            "positions    {} observed, {} used (|z| >= {})",
            decisions.positions.len(),
            used,
            a.erasure_z
        );
        println!(
            "sessions     {scored} scored; best possible probability with these positions {:.3e}",
            accuser.best_possible()
        );
        if accused.is_empty() {
            println!("verdict      no accusation (nothing clears fp {:e})", a.fp);
        } else {
            println!("verdict      accused");
        }
        for s in &accused {
            println!(
                "accused      session {} account {} score {:.2} probability {:.3e}",
                s.session_id, s.account, s.score, s.probability
            );
        }
        for s in &top {
            println!(
                "top          session {} account {} score {:.2} probability {:.3e}",
                s.session_id, s.account, s.score, s.probability
            );
        }
    }
    Ok(Code::Success)
}
