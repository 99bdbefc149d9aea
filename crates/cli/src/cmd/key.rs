//! `leaktrace key`: the keyring (list, rotate) and detection key sets (export).
//!
//! A rotation writes a new master key (`master-v<N>.key`, mode 0600), makes it current and
//! keeps the previous one under `[[keys.retired]]`: titles marked with it stay detectable and
//! tokens issued under it stay valid until they expire. A retired key is dropped by deleting
//! its entry once no title marked with it is served and its last token has expired.

use crate::config::{Config, Loaded, RetiredKey, write_new_key, write_new_secret};
use crate::exit::{Code, ConfigError, UsageError};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use leaktrace_core::{KeyVersion, MasterKey, TitleId};
use leaktrace_store::Store;
use std::path::{Path, PathBuf};

/// `leaktrace key …`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// The key versions held, the current one, their evidence public keys and titles.
    List(KeyListArgs),
    /// Make a new master key current; the old one is kept as retired.
    Rotate(KeyRotateArgs),
    /// Write a detection key set: the per-title keys detection needs, without the master key
    /// (for the crawler's `[detect] keys` or `leaktrace detect --keys`).
    Export(KeyExportArgs),
}

/// `leaktrace key list`.
#[derive(Debug, Args)]
pub struct KeyListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace key rotate`.
#[derive(Debug, Args)]
pub struct KeyRotateArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace key export`.
#[derive(Debug, Args)]
pub struct KeyExportArgs {
    /// The file to write (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Only these titles (repeatable); default every title in the store.
    #[arg(long = "title", value_name = "TITLE")]
    pub titles: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `leaktrace key …`.
pub fn run(config: Option<&Path>, c: &KeyCommand) -> Result<Code> {
    match c {
        KeyCommand::List(a) => list(config, a),
        KeyCommand::Rotate(a) => rotate(config, a),
        KeyCommand::Export(a) => export(config, a),
    }
}

fn titles(loaded: &Loaded) -> Result<Vec<leaktrace_store::Title>> {
    let url = super::store::resolved_url(loaded)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let store = Store::open(&url).await.context("opening the store")?;
        let t = store.list_titles().await.context("listing titles");
        store.close().await;
        t
    })
}

fn list(config: Option<&Path>, a: &KeyListArgs) -> Result<Code> {
    let loaded = Loaded::find(config)?;
    let ring = loaded.keyring()?;
    let titles = titles(&loaded)?;
    let current = ring.current().version();
    let rows: Vec<serde_json::Value> = ring
        .keys()
        .map(|k| {
            let v = k.version();
            let marked: Vec<&str> = titles
                .iter()
                .filter(|t| t.key_version == v.get())
                .map(|t| t.title_id.as_str())
                .collect();
            serde_json::json!({
                "version": v.get(),
                "current": v == current,
                "evidence_public_key": k.evidence_key().public_key_hex(),
                "titles": marked,
            })
        })
        .collect();
    let orphans: Vec<serde_json::Value> = titles
        .iter()
        .filter(|t| ring.get(KeyVersion::new(t.key_version)).is_err())
        .map(|t| serde_json::json!({"title": t.title_id, "key_version": t.key_version}))
        .collect();
    if a.json {
        println!(
            "{}",
            serde_json::json!({"keys": rows, "titles_without_key": orphans})
        );
    } else {
        for r in &rows {
            println!(
                "version {}{}  evidence public key {}  titles {}",
                r["version"],
                if r["current"] == true {
                    " (current)"
                } else {
                    " (retired)"
                },
                r["evidence_public_key"].as_str().unwrap_or_default(),
                r["titles"].as_array().map_or(0, Vec::len)
            );
        }
        for o in &orphans {
            println!(
                "warning: title {} was marked with key version {}, which the keyring does not hold",
                o["title"], o["key_version"]
            );
        }
    }
    Ok(Code::Success)
}

/// The config file `Loaded::find` read.
fn config_path(config: Option<&Path>) -> PathBuf {
    match config {
        Some(p) => p.to_path_buf(),
        None => std::env::var_os("LEAKTRACE_CONFIG")
            .map_or_else(|| PathBuf::from(crate::config::CONFIG_NAME), PathBuf::from),
    }
}

fn rotate(config: Option<&Path>, a: &KeyRotateArgs) -> Result<Code> {
    let loaded = Loaded::find(config)?;
    // Every key must load before anything is written.
    let ring = loaded.keyring()?;
    let next = ring
        .versions()
        .last()
        .map(KeyVersion::get)
        .unwrap_or(0)
        .checked_add(1)
        .ok_or_else(|| ConfigError("key version overflow".into()))?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
    let key = MasterKey::from_bytes(bytes, KeyVersion::new(next));
    let file = PathBuf::from(format!("master-v{next}.key"));
    let key_path = loaded.dir.join(&file);
    write_new_key(&key_path, &key)?;
    let mut cfg: Config = loaded.config.clone();
    cfg.keys.retired.push(RetiredKey {
        file: cfg.keys.file.clone(),
        version: cfg.keys.version,
    });
    cfg.keys.retired.sort_by_key(|r| r.version);
    cfg.keys.file = file;
    cfg.keys.version = next;
    let path = config_path(config);
    let text = format!(
        "# leaktrace configuration (rewritten by `leaktrace key rotate`).\n# Paths are relative to this file. Keep the key files secret (mode 0600).\n{}",
        toml::to_string_pretty(&cfg).context("serialising the configuration")?
    );
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "version": next, "key_file": key_path, "config": path,
                "retired": cfg.keys.retired.iter().map(|r| r.version).collect::<Vec<_>>(),
                "evidence_public_key": key.evidence_key().public_key_hex(),
            })
        );
    } else {
        println!(
            "key version {next} is current ({}, mode 0600)",
            key_path.display()
        );
        println!(
            "retired versions kept: {}",
            cfg.keys
                .retired
                .iter()
                .map(|r| r.version.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "new titles are marked and new tokens signed with version {next}; re-export detection key sets for titles embedded from now on"
        );
    }
    Ok(Code::Success)
}

fn export(config: Option<&Path>, a: &KeyExportArgs) -> Result<Code> {
    let loaded = Loaded::find(config)?;
    let ring = loaded.keyring()?;
    let stored = titles(&loaded)?;
    let mut wanted = Vec::new();
    if a.titles.is_empty() {
        for t in &stored {
            let id = TitleId::new(t.title_id.clone()).map_err(|e| UsageError(e.to_string()))?;
            wanted.push((id, KeyVersion::new(t.key_version)));
        }
    } else {
        for name in &a.titles {
            let id = TitleId::new(name.clone()).map_err(|e| UsageError(e.to_string()))?;
            let t = stored
                .iter()
                .find(|t| t.title_id == id.as_str())
                .ok_or_else(|| {
                    crate::exit::NotFoundError(format!("unknown title {name:?} (not in the store)"))
                })?;
            wanted.push((id, KeyVersion::new(t.key_version)));
        }
    }
    let set = ring
        .detection_keys(wanted)
        .map_err(|e| ConfigError(e.to_string()))?;
    write_new_secret(&a.out, &set.to_json())?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "out": a.out,
                "titles": set.entries().map(|(t, v)| serde_json::json!({"title": t.as_str(), "key_version": v.get()})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!(
            "wrote {} (mode 0600): detection keys of {} title{}",
            a.out.display(),
            set.len(),
            if set.len() == 1 { "" } else { "s" },
        );
    }
    Ok(Code::Success)
}
