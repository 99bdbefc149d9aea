//! The working directory's configuration and master key.

use crate::exit::ConfigError;
use anyhow::{Context, Result};
use leaktrace_core::{DetectionKeys, KeyVersion, Keyring, MasterKey};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Default config file name.
pub const CONFIG_NAME: &str = "leaktrace.toml";

/// `leaktrace.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Master key.
    pub keys: Keys,
    /// Database.
    pub store: Store,
    /// Session tokens (optional section; see `crate::cmd::session`).
    #[serde(default, skip_serializing_if = "TokenCfg::is_default")]
    pub token: TokenCfg,
    /// The edge's admin API (optional section; see `crate::cmd::edge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminCfg>,
}

/// `[admin]`: the edge's admin API (revoke, restore, list sessions over HTTP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminCfg {
    /// The bearer token: a file (relative to the config file, mode 0600) holding it, at least
    /// 32 characters.
    pub token_file: PathBuf,
}

/// `[token]`: how `session new` signs and what `edge` accepts. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCfg {
    /// `wmopid` written into tokens and required by the edge (default 1).
    pub wmopid: Option<u64>,
    /// `wmvnd` written into tokens (default 0: no DASH-IF vendor id).
    pub wmvnd: Option<u64>,
    /// `iss` written into tokens (default none).
    pub issuer: Option<String>,
    /// ES256 signing key: a file (relative to the config file, mode 0600) holding the P-256
    /// secret scalar as 64 hex characters. When set, `session new` signs ES256 and the edge
    /// accepts its public key too. Default: HMAC-256/256 with the master key's token-MAC key.
    pub es256_key_file: Option<PathBuf>,
    /// Further ES256 public keys (SEC1 hex) the edge accepts, for edges without the private key.
    pub es256_public_keys: Option<Vec<String>>,
}

impl TokenCfg {
    fn is_default(&self) -> bool {
        *self == TokenCfg::default()
    }
}

/// `[keys]`: the current master key, and the retired ones still needed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    /// Key file, relative to the config file.
    pub file: PathBuf,
    /// Key version (rotations increment it).
    pub version: u32,
    /// Earlier keys (`[[keys.retired]]`), kept while titles marked with them are detected and
    /// tokens issued under them are still valid. `leaktrace key rotate` appends to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<RetiredKey>,
}

/// `[[keys.retired]]`: an earlier master key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetiredKey {
    /// Key file, relative to the config file.
    pub file: PathBuf,
    /// Its version.
    pub version: u32,
}

/// `[store]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// `sqlite://path` (relative to the config file) or `postgres://...`.
    pub url: String,
}

/// A loaded configuration with the directory it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Parsed config.
    pub config: Config,
    /// Directory of the config file.
    pub dir: PathBuf,
}

impl Loaded {
    /// Finds and parses the configuration.
    pub fn find(explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os("LEAKTRACE_CONFIG") {
                Some(p) => PathBuf::from(p),
                None => PathBuf::from(CONFIG_NAME),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigError(format!(
                "cannot read {} ({e}); run `leaktrace init` or pass --config",
                path.display()
            ))
        })?;
        let config: Config = toml::from_str(&text)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.message())))?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(Self { config, dir })
    }

    /// Loads the current master key, refusing a key file others can read.
    pub fn master_key(&self) -> Result<MasterKey> {
        self.key_file(&self.config.keys.file, self.config.keys.version)
    }

    fn key_file(&self, file: &Path, version: u32) -> Result<MasterKey> {
        let text = self.secret_file(file)?;
        let path = self.dir.join(file);
        MasterKey::from_hex(&text, KeyVersion::new(version))
            .map_err(|e| ConfigError(format!("key file {}: {e}", path.display())).into())
    }

    /// Loads every master key of the configuration: the current one and the retired ones.
    pub fn keyring(&self) -> Result<Keyring> {
        let mut ring = Keyring::new(self.master_key()?);
        for r in &self.config.keys.retired {
            ring.add(self.key_file(&r.file, r.version)?)
                .map_err(|e| ConfigError(format!("[[keys.retired]] {}: {e}", r.file.display())))?;
        }
        Ok(ring)
    }

    /// Reads a secret file (relative to the config file), refusing one others can read.
    pub fn secret_file(&self, file: &Path) -> Result<String> {
        read_secret(&self.dir.join(file))
    }
}

/// Reads a secret file, refusing one others can read.
pub fn read_secret(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError(format!("cannot read key file {} ({e})", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError(format!(
                "key file {} is accessible to others (mode {mode:o}); run chmod 600 on it",
                path.display()
            ))
            .into());
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read key file {} ({e})", path.display())).into())
}

/// Reads a detection key set (`leaktrace key export`), refusing a file others can read.
pub fn read_detection_keys(path: &Path) -> Result<DetectionKeys> {
    let text = read_secret(path)?;
    DetectionKeys::from_json(&text)
        .map_err(|e| ConfigError(format!("{}: {e}", path.display())).into())
}

/// Writes a new secret file with mode 0600, refusing to overwrite an existing one.
pub fn write_new_secret(path: &Path, text: &str) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::Error::new(ConfigError(format!(
                "{} already exists; refusing to overwrite it",
                path.display()
            )))
        } else {
            anyhow::Error::new(e).context(format!("creating {}", path.display()))
        }
    })?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

/// Writes a new key file with mode 0600, refusing to overwrite an existing one.
pub fn write_new_key(path: &Path, key: &MasterKey) -> Result<()> {
    write_new_secret(path, &format!("{}\n", key.to_hex()))
}
