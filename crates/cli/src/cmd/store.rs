//! Glue between the CLI and the store (a small tokio runtime per command).

use crate::config::Loaded;
use anyhow::{Context, Result};
use leaktrace_embed::EmbedSummary;
use leaktrace_store::{NewTitle, Store};
use std::path::Path;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The store URL with a relative SQLite path resolved against the config directory.
pub fn resolved_url(loaded: &Loaded) -> Result<String> {
    let url = &loaded.config.store.url;
    if let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if rest.starts_with('/') || rest.starts_with(":memory:") {
            return Ok(url.clone());
        }
        let abs =
            std::path::absolute(loaded.dir.join(rest)).context("resolving the database path")?;
        return Ok(format!("sqlite://{}", abs.display()));
    }
    Ok(url.clone())
}

/// Creates an empty SQLite database (schema applied) at `path`.
pub fn create_empty(path: &Path) -> Result<()> {
    let abs = std::path::absolute(path).context("resolving the database path")?;
    let url = format!("sqlite://{}", abs.display());
    runtime()?.block_on(async {
        let store = Store::open(&url)
            .await
            .with_context(|| format!("creating database {}", path.display()))?;
        store.close().await;
        Ok(())
    })
}

/// Records (or updates) the embedded title in the configured store.
pub fn record_title(loaded: &Loaded, s: &EmbedSummary) -> Result<()> {
    let url = resolved_url(loaded)?;
    let reference = std::path::absolute(s.output.join("reference"))
        .ok()
        .map(|p| p.display().to_string());
    runtime()?.block_on(async {
        let store = Store::open(&url).await.context("opening the store")?;
        store
            .upsert_title(&NewTitle {
                title_id: s.title.clone(),
                name: s.title.clone(),
                segment_duration_ms: u32::try_from(s.segment_ms).unwrap_or(u32::MAX),
                position_count: s.positions,
                key_version: s.key_version,
                reference_path: reference,
            })
            .await
            .context("recording the title")?;
        store.close().await;
        Ok(())
    })
}

/// Records (or updates) a live channel as a title in the configured store: sessions can be
/// issued for it from its first segment on (tokens in indirect mode cover every position).
pub fn record_channel(
    loaded: &Loaded,
    channel: &str,
    segment_ms: u64,
    key_version: u32,
    out: &Path,
) -> Result<()> {
    let url = resolved_url(loaded)?;
    let reference = std::path::absolute(out.join("reference"))
        .ok()
        .map(|p| p.display().to_string());
    runtime()?.block_on(async {
        let store = Store::open(&url).await.context("opening the store")?;
        store
            .upsert_title(&NewTitle {
                title_id: channel.to_owned(),
                name: channel.to_owned(),
                segment_duration_ms: u32::try_from(segment_ms).unwrap_or(u32::MAX),
                position_count: 0,
                key_version,
                reference_path: reference,
            })
            .await
            .context("recording the channel")?;
        store.close().await;
        Ok(())
    })
}
