//! `leaktrace init`.

use crate::cli::InitArgs;
use crate::config::{CONFIG_NAME, Config, Keys, Store, write_new_key};
use crate::exit::{Code, ConfigError};
use anyhow::{Context, Result};
use leaktrace_core::{KeyVersion, MasterKey};

/// Database file name written by `init`.
pub const DB_NAME: &str = "leaktrace.db";
/// Key file name written by `init`.
pub const KEY_NAME: &str = "master.key";

pub fn run(a: &InitArgs) -> Result<Code> {
    std::fs::create_dir_all(&a.dir).with_context(|| format!("creating {}", a.dir.display()))?;
    let config_path = a.dir.join(CONFIG_NAME);
    if config_path.exists() {
        return Err(ConfigError(format!(
            "{} already exists; this directory is already initialised",
            config_path.display()
        ))
        .into());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the operating system's random source failed: {e}"))?;
    let key = MasterKey::from_bytes(bytes, KeyVersion::new(1));
    let key_path = a.dir.join(KEY_NAME);
    write_new_key(&key_path, &key)?;
    let config = Config {
        keys: Keys {
            file: KEY_NAME.into(),
            version: 1,
            retired: Vec::new(),
        },
        store: Store {
            url: format!("sqlite://{DB_NAME}"),
        },
        token: Default::default(),
        admin: None,
    };
    let db_path = a.dir.join(DB_NAME);
    crate::cmd::store::create_empty(&db_path)?;
    let text = format!(
        "# leaktrace configuration, written by `leaktrace init`.\n# Paths are relative to this file. Keep {KEY_NAME} secret (mode 0600).\n{}",
        toml::to_string_pretty(&config).context("serialising the configuration")?
    );
    std::fs::write(&config_path, text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "config": config_path, "key_file": key_path, "key_version": 1, "database": db_path,
            })
        );
    } else {
        println!("initialised {}", a.dir.display());
        println!("  config    {}", config_path.display());
        println!("  key       {} (version 1, mode 0600)", key_path.display());
        println!("  database  {}", db_path.display());
    }
    Ok(Code::Success)
}
