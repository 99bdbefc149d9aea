//! `leaktrace cdn export` and `leaktrace cdn keys`: what the CloudFront Function
//! (`cdn/cloudfront/function.js`) needs besides the sessions (`session export --kv
//! cloudfront`) and the revocations (`session revoked --kv cloudfront`).
//!
//! The function rewrites a viewer's `/wmt/<token>/<title>/<rendition>/<file>` to an origin path
//! and CloudFront serves that object as it is: it cannot read a WMPaceInfo sidecar nor rewrite
//! a body. `cdn export` therefore writes a title's package as the function addresses it, each
//! object with the bytes the edge would serve (`crates/edge`):
//!
//! - a file named `seg_NNNNN.m4s` (its position in the name) goes to `<rendition>/a/` and
//!   `<rendition>/b/`: the two variants of a watermarked segment, and the same bytes twice for a
//!   segment every viewer gets alike (an audio track, position -1 in its sidecar);
//! - any other file goes to `<rendition>/<file>`: variant A of a file whose sidecar gives -1
//!   (initialisation segments), else the plain file;
//! - root manifests go to the title's root;
//! - in-band WMPaceInfo (`wmpi` boxes) of every ISOBMFF file is neutralised as the edge's egress
//!   does (a `free` box of the same size filled with 0xFF);
//! - `reference/`, `WMPaceInfo/` and `title.json` stay behind (origin-only data).
//!
//! A package the function cannot serve so is refused: a watermarked file not named by its
//! position, or a name whose position disagrees with its sidecar's.
//!
//! `cdn keys` writes the function's `leaktrace:config` entry: the operator id and, per master key
//! version, the token MAC key, the Tardos bias key and the session codeword key derived from it
//! (not the master key itself), as a KeyValueStore import file.

use crate::config::Loaded;
use crate::exit::{Code, UsageError};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use leaktrace_core::key::Purpose;
use leaktrace_core::wmpaceinfo::{SIDECAR_DIR, Sidecar};
use leaktrace_core::{KeyVersion, Position};
use leaktrace_edge::egress::{is_isobmff, neutralize_wmpi};
use leaktrace_edge::path::{content_type, is_manifest};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The key of the function's configuration in its KeyValueStore.
pub const CONFIG_KEY: &str = "leaktrace:config";
/// CloudFront KeyValueStore's limit on one value, in bytes.
const KVS_VALUE_LIMIT: usize = 1024;

/// `leaktrace cdn ...`.
#[derive(Debug, Subcommand)]
pub enum CdnCommand {
    /// Write a title's package for an object-store origin behind the CloudFront Function:
    /// variants where the function looks for them, in-band WMPaceInfo neutralised.
    Export(CdnExportArgs),
    /// Print the CloudFront Function's `leaktrace:config` KeyValueStore entry (operator id, and
    /// per key version the keys derived for tokens, biases and codewords) as an import file.
    Keys(CdnKeysArgs),
}

/// `leaktrace cdn export`.
#[derive(Debug, Args)]
pub struct CdnExportArgs {
    /// The title's package, as `leaktrace embed` wrote it.
    #[arg(long)]
    pub package: PathBuf,
    /// Output directory (must not exist, or be empty); the objects go under `<out>/<title>/`.
    #[arg(long)]
    pub out: PathBuf,
    /// Print a JSON summary with every object's key, Content-Type and Cache-Control.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace cdn keys`.
#[derive(Debug, Args)]
pub struct CdnKeysArgs {
    /// The CDN (only `cloudfront`: the Worker takes the master key as a secret).
    #[arg(long, value_name = "CDN", default_value = "cloudfront")]
    pub kv: String,
    /// Key versions to include (repeat; default: every version of the keyring). One value holds
    /// at most 1024 bytes: four versions.
    #[arg(long = "key-version", value_name = "N")]
    pub key_versions: Vec<u32>,
}

/// Runs a `cdn` subcommand.
pub fn run(config: Option<&Path>, cmd: &CdnCommand) -> Result<Code> {
    match cmd {
        CdnCommand::Export(a) => export(a),
        CdnCommand::Keys(a) => keys(config, a),
    }
}

/// The `leaktrace:config` value for the keys `keys` and operator `wmopid`: JSON `{"wmopid": N,
/// "keys": {"<version>": "<hex of token MAC key, bias key, codeword key>"}}`.
pub fn config_value<'a>(
    keys: impl IntoIterator<Item = &'a leaktrace_core::MasterKey>,
    wmopid: u64,
) -> String {
    let mut map = serde_json::Map::new();
    for k in keys {
        let hex = format!(
            "{}{}{}",
            k.derive(Purpose::TokenMac).to_hex(),
            k.derive(Purpose::TardosBias).to_hex(),
            k.derive(Purpose::Codeword).to_hex()
        );
        map.insert(k.version().get().to_string(), hex.into());
    }
    serde_json::json!({ "wmopid": wmopid, "keys": map }).to_string()
}

fn keys(config: Option<&Path>, a: &CdnKeysArgs) -> Result<Code> {
    if a.kv != "cloudfront" {
        return Err(UsageError(format!(
            "unknown CDN {:?} for --kv (expected cloudfront; the Worker takes the master key as \
             its LEAKTRACE_MASTER_KEYS secret)",
            a.kv
        ))
        .into());
    }
    let loaded = Loaded::find(config)?;
    let ring = loaded.keyring()?;
    let mut chosen = Vec::new();
    if a.key_versions.is_empty() {
        chosen.extend(ring.keys());
    } else {
        for v in &a.key_versions {
            chosen.push(
                ring.get(KeyVersion::new(*v))
                    .map_err(|e| UsageError(format!("--key-version {v}: {e}")))?,
            );
        }
    }
    let value = config_value(chosen, super::session::policy(&loaded).wmopid);
    if value.len() > KVS_VALUE_LIMIT {
        return Err(UsageError(format!(
            "{} key versions make a {}-byte value; a KeyValueStore value holds at most \
             {KVS_VALUE_LIMIT} bytes: choose at most four with --key-version",
            ring.keys().count(),
            value.len()
        ))
        .into());
    }
    let file = serde_json::json!({ "data": [{ "key": CONFIG_KEY, "value": value }] });
    println!("{file}");
    eprintln!(
        "{CONFIG_KEY} for cloudfront: derived keys of key version(s) {}; keep this file as \
         secret as the master key",
        ring.keys()
            .filter(|k| a.key_versions.is_empty() || a.key_versions.contains(&k.version().get()))
            .map(|k| k.version().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Code::Success)
}

/// The position a `seg_NNNNN.m4s` name carries (5 to 10 digits, a u32), as the function reads it.
fn name_position(file: &str) -> Option<u32> {
    let digits = file.strip_prefix("seg_")?.strip_suffix(".m4s")?;
    if !(5..=10).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether the function serves a file of this name (the edge's path rules).
fn servable(file: &str) -> bool {
    !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b))
        && content_type(file).is_some()
}

fn file_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for e in rd {
        let e = e.with_context(|| format!("reading {}", dir.display()))?;
        if e.file_type()?.is_file()
            && let Some(name) = e.file_name().to_str()
        {
            out.insert(name.to_owned());
        }
    }
    Ok(out)
}

/// The bytes a viewer is served for a package file: in-band WMPaceInfo neutralised.
fn egress(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(is_isobmff)
    {
        neutralize_wmpi(&mut bytes);
    }
    Ok(bytes)
}

/// The position a discrete sidecar gives (`None`: -1), as the edge reads it.
fn sidecar_position(path: &Path) -> Result<Option<u16>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Sidecar::from_cbor(&bytes)
        .and_then(|parsed| parsed.file_position())
        .map_err(|e| UsageError(format!("{}: {e}", path.display())).into())
}

/// One object of the export.
struct Object {
    key: String,
    bytes: usize,
}

struct Writer {
    root: PathBuf,
    objects: Vec<Object>,
}

impl Writer {
    fn put(&mut self, key: String, bytes: &[u8]) -> Result<()> {
        let path = self.root.join(&key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        self.objects.push(Object {
            key,
            bytes: bytes.len(),
        });
        Ok(())
    }
}

fn export(a: &CdnExportArgs) -> Result<Code> {
    let pkg = &a.package;
    let summary: serde_json::Value = std::fs::read_to_string(pkg.join("title.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| {
            UsageError(format!(
                "{}: no title.json (not a package written by leaktrace embed)",
                pkg.display()
            ))
        })?;
    let title = summary["title"]
        .as_str()
        .ok_or_else(|| UsageError(format!("{}: title.json names no title", pkg.display())))?
        .to_owned();
    leaktrace_core::TitleId::new(title.clone()).map_err(|e| UsageError(e.to_string()))?;
    if a.out.exists()
        && std::fs::read_dir(&a.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(UsageError(format!("{} exists and is not empty", a.out.display())).into());
    }
    let mut w = Writer {
        root: a.out.clone(),
        objects: Vec::new(),
    };
    for name in file_names(pkg)? {
        if is_manifest(&name) && servable(&name) {
            w.put(format!("{title}/{name}"), &egress(&pkg.join(&name))?)?;
        }
    }
    let mut renditions: Vec<String> = std::fs::read_dir(pkg)
        .with_context(|| format!("reading {}", pkg.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n != "reference")
        .collect();
    renditions.sort();
    for r in &renditions {
        let lower = r.to_ascii_lowercase();
        if ["a", "b", "wmpaceinfo"].contains(&lower.as_str()) || !servable(&format!("{r}.m4s")) {
            return Err(UsageError(format!(
                "{}: rendition {r:?} cannot be addressed by a viewer",
                pkg.display()
            ))
            .into());
        }
        export_rendition(&mut w, pkg, &title, r)?;
    }
    let bytes: usize = w.objects.iter().map(|o| o.bytes).sum();
    if a.json {
        let objects: Vec<serde_json::Value> = w
            .objects
            .iter()
            .map(|o| {
                let file = o.key.rsplit('/').next().unwrap_or_default();
                serde_json::json!({
                    "key": o.key,
                    "bytes": o.bytes,
                    "content_type": content_type(file).unwrap_or("application/octet-stream"),
                    "cache_control": cache_control(file),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "title": title,
                "out": a.out,
                "objects": objects,
                "bytes": bytes,
            })
        );
    } else {
        println!(
            "{title}: {} objects, {bytes} bytes in {}",
            w.objects.len(),
            a.out.join(&title).display()
        );
    }
    Ok(Code::Success)
}

/// The Cache-Control the edge sends for a file of a finished title.
fn cache_control(file: &str) -> &'static str {
    if is_manifest(file) {
        "private, max-age=300"
    } else {
        "private, max-age=86400"
    }
}

fn export_rendition(w: &mut Writer, pkg: &Path, title: &str, r: &str) -> Result<()> {
    let rdir = pkg.join(r);
    let (adir, bdir, sdir) = (rdir.join("a"), rdir.join("b"), rdir.join(SIDECAR_DIR));
    let mut names = file_names(&rdir)?;
    names.extend(file_names(&adir)?);
    names.extend(file_names(&sdir)?);
    for f in names.iter().filter(|f| servable(f)) {
        let sidecar = sdir.join(f);
        let from_name = name_position(f);
        let (a, b) = if sidecar.is_file() {
            let wire = sidecar_position(&sidecar)?;
            let a = egress(&adir.join(f))?;
            match (wire, from_name) {
                (None, _) => (a.clone(), a),
                (Some(wire), Some(p)) if Position::from_wire_and_name(wire, f).get() == p => {
                    (a, egress(&bdir.join(f))?)
                }
                (Some(wire), _) => {
                    return Err(UsageError(format!(
                        "{r}/{f}: watermarked at position {wire} but not named seg_<position>.m4s \
                         with that position; the CloudFront Function chooses A or B from the name"
                    ))
                    .into());
                }
            }
        } else if adir.join(f).is_file() {
            if bdir.join(f).is_file() {
                return Err(UsageError(format!(
                    "{r}/{f} has variants A and B but no WMPaceInfo sidecar"
                ))
                .into());
            }
            let a = egress(&adir.join(f))?;
            (a.clone(), a)
        } else {
            let plain = egress(&rdir.join(f))?;
            (plain.clone(), plain)
        };
        if from_name.is_some() {
            w.put(format!("{title}/{r}/a/{f}"), &a)?;
            w.put(format!("{title}/{r}/b/{f}"), &b)?;
        } else {
            w.put(format!("{title}/{r}/{f}"), &a)?;
        }
    }
    Ok(())
}
