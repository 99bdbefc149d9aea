//! Command-line definitions.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// leaktrace: invisible A/B forensic watermarks for streaming, leak detection and takedown.
#[derive(Debug, Parser)]
#[command(name = "leaktrace", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (default: $LEAKTRACE_CONFIG, then ./leaktrace.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a working directory: config, a new 32-byte master key (mode 0600), an empty database.
    Init(InitArgs),
    /// The keyring: list versions, rotate the master key, export detection key sets.
    #[command(subcommand)]
    Key(crate::cmd::key::KeyCommand),
    /// Encode a mezzanine into watermarked A/B variants (TS 104 002 HLS + DASH package).
    Embed(EmbedArgs),
    /// Mark a live channel in real time: A/B live CMAF, sliding-window HLS, dynamic DASH.
    Live(LiveArgs),
    /// Viewing sessions: issue one (record + token), or write the selector test vectors.
    #[command(subcommand)]
    Session(crate::cmd::session::SessionCommand),
    /// Serve packages with per-session A/B sequencing (TS 104 002 edge).
    Edge(crate::cmd::edge::EdgeArgs),
    /// CDN functions: a package for an object-store origin, the CloudFront Function's keys.
    #[command(subcommand)]
    Cdn(crate::cmd::cdn_export::CdnCommand),
    /// Detect a leak: register a suspect copy, decide each position, accuse sessions.
    Detect(crate::cmd::detect::DetectArgs),
    /// Takedown notices: file, review, approve, send, recheck, mark, list, show.
    #[command(subcommand)]
    Takedown(crate::cmd::takedown::TakedownCommand),
    /// Evidence bundles: verify.
    #[command(subcommand)]
    Evidence(crate::cmd::takedown::EvidenceCommand),
    /// Crawl the configured sources for leaks (`--once` or `--schedule`).
    Crawl(crate::cmd::crawl::CrawlArgs),
    /// An extra crawl worker sharing the store's frontier.
    Worker(crate::cmd::crawl::WorkerArgs),
    /// Findings stored by the crawler.
    #[command(subcommand)]
    Findings(crate::cmd::crawl::FindingsCommand),
    /// Measurements (see docs/BENCHMARKS.md).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `leaktrace init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to initialise (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Shared encoding options.
#[derive(Debug, Args, Clone)]
pub struct EncodeOpts {
    /// Title id (1-128 characters from A-Z a-z 0-9 . _ ~ -).
    #[arg(long)]
    pub title: String,
    #[command(flatten)]
    pub settings: EncoderOpts,
    /// Only the first N frames (for quick trials).
    #[arg(long, value_name = "N")]
    pub max_frames: Option<u64>,
}

/// The ladder, segments, encoder and mark settings every packaging command takes (`embed`,
/// `live`, `bench encode`).
#[derive(Debug, Args, Clone)]
pub struct EncoderOpts {
    /// Renditions, largest first, e.g. 1080p,720p,480p (default: up to three standard rungs not above the source).
    #[arg(long)]
    pub ladder: Option<String>,
    /// Segment (position) duration, 1s to 6s, e.g. 2s or 2000ms.
    #[arg(long, default_value = "2s")]
    pub segment: String,
    /// Codec: h264, hevc or av1.
    #[arg(long, default_value = "h264")]
    pub codec: String,
    /// Constant rate factor (default 20 for h264, 22 for hevc, 30 for av1).
    #[arg(long)]
    pub crf: Option<u8>,
    /// Encoder preset (x264/x265 names, SVT-AV1 0-13; default: the codec's own for files,
    /// veryfast for a live channel).
    #[arg(long)]
    pub preset: Option<String>,
    /// Codec threads per encoder (0 = automatic: an embed shares the cores among its encoders,
    /// which run side by side; an H.264 encoder on one thread writes the same bytes every run).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Bit depth of the renditions, 8 or 10 (default: the source's, except 8 for H.264 from a
    /// deeper SDR source: High profile, which every player decodes; an HDR source keeps 10).
    #[arg(long, value_name = "BITS", value_parser = bit_depth)]
    pub bit_depth: Option<u8>,
    /// Mark strength relative to the default perceptual mask (0.1 to 4.0; 1.0 is the measured
    /// default, see docs/BENCHMARKS.md).
    #[arg(long, default_value_t = 1.0)]
    pub strength: f32,
}

/// A rendition bit depth: 8 or 10.
fn bit_depth(s: &str) -> Result<u8, String> {
    match s {
        "8" => Ok(8),
        "10" => Ok(10),
        _ => Err(format!("bit depth {s:?} out of range (expected 8 or 10)")),
    }
}

/// `leaktrace embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The mezzanine (any container/codec FFmpeg reads).
    pub mezzanine: PathBuf,
    /// Output directory (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub encode: EncodeOpts,
    /// A subtitle file (SubRip .srt or WebVTT .vtt) and its BCP 47 language, `FILE[:LANG]`
    /// (e.g. `fr.srt:fr`; `und` when no language is given). Repeat for more tracks; each
    /// becomes a WebVTT rendition, the same for every viewer.
    #[arg(long = "subtitles", value_name = "FILE[:LANG]")]
    pub subtitles: Vec<String>,
    /// Leave out the mezzanine's own text subtitle tracks (packaged by default).
    #[arg(long)]
    pub no_mezzanine_subtitles: bool,
    /// Leave out the mezzanine's audio tracks (each becomes an AAC-LC rendition by default).
    #[arg(long)]
    pub no_audio: bool,
    /// AAC bitrate of a stereo rendition, 32k to 512k (e.g. 128k or 128000); layouts with more
    /// channels get it times channels / 2. AAC-LC tracks at 48 kHz are copied, not re-encoded.
    #[arg(long, default_value = "128k", value_name = "RATE")]
    pub audio_bitrate: String,
    /// Common Encryption of video (H.264 or HEVC) and audio: `cenc` (AES-CTR; DASH, Widevine,
    /// PlayReady) or `cbcs` (AES-CBC pattern; HLS and DASH, FairPlay too). Needs --key-file.
    #[arg(long, value_name = "SCHEME", requires = "key_file")]
    pub encrypt: Option<String>,
    /// The content keys, one `label:kid:key` line each (hex): `video`, and optionally `audio`
    /// (else audio uses the video key). A and B of a position share the video key.
    #[arg(long, value_name = "FILE", requires = "encrypt")]
    pub key_file: Option<PathBuf>,
    /// A DRM system's `pssh` data, `SYSTEM_ID:BASE64` (e.g. Widevine
    /// edef8ba9-79d6-4ace-a3c8-27dcd51d21ed, PlayReady 9a04f079-9840-4286-ab92-e65be0885f95);
    /// repeat per system. The W3C common `pssh` (ClearKey) is always written.
    #[arg(long, value_name = "SYSTEM_ID:BASE64", requires = "encrypt")]
    pub pssh: Vec<String>,
    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace live`.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// The live source: `udp://HOST:PORT`, `rtp://…`, `srt://…`, `rtmp://…`, `tcp://…` (MPEG-TS,
    /// FLV or Matroska), or a media file (with --realtime to read it at its own rate).
    pub source: String,
    /// The channel's output directory (created; an existing channel there is resumed).
    #[arg(long)]
    pub out: PathBuf,
    /// The channel's title id (1-128 characters from A-Z a-z 0-9 . _ ~ -).
    #[arg(long)]
    pub title: String,
    #[command(flatten)]
    pub settings: EncoderOpts,
    /// Segments listed in the playlists and the MPD (1 to 1000).
    #[arg(long, default_value_t = 10)]
    pub window: u32,
    /// Segments kept on disk behind the window (0 to 100000).
    #[arg(long, default_value_t = 30)]
    pub keep: u32,
    /// Read a file source at its own frame rate.
    #[arg(long)]
    pub realtime: bool,
    /// Start a file source again at its end.
    #[arg(long = "loop")]
    pub loop_input: bool,
    /// A source silent this long is reopened, e.g. 5s or 500ms (0.1 s to 1 h).
    #[arg(long, default_value = "5s")]
    pub stall: String,
    /// Stop after this many positions (the channel can be resumed later).
    #[arg(long, value_name = "N")]
    pub max_positions: Option<u32>,
    /// Low latency: publish parts of about this duration as soon as they are encoded
    /// (LL-HLS `EXT-X-PART` with blocking playlist reloads, CMAF chunks), e.g. 500ms (0.1 s
    /// to half a segment).
    #[arg(long, value_name = "DURATION")]
    pub part: Option<String>,
    /// Leave out the feed's audio (its first audio stream becomes an AAC-LC 48 kHz rendition
    /// by default, cut at the channel's positions; not with --part).
    #[arg(long)]
    pub no_audio: bool,
    /// AAC bitrate of the stereo audio rendition, 32k to 512k (e.g. 128k or 128000).
    #[arg(long, default_value = "128k", value_name = "RATE")]
    pub audio_bitrate: String,
    /// One JSON object per line on stdout (events, then the summary) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// A/B pair encode time / plain single encode time, same input and settings, one run.
    Encode(BenchEncodeArgs),
    /// Temporal change of the mark at segment boundaries versus inside segments.
    Flicker(BenchFlickerArgs),
    /// Detection time (registration and decisions) / FFmpeg's own decode time, one run.
    Detect(BenchDetectArgs),
    /// The forensic evaluation suite: attacks, collusion, innocents, invisibility (docs/bench/).
    Forensic(crate::cmd::bench_forensic::BenchForensicArgs),
}

/// `leaktrace bench detect`.
#[derive(Debug, Args)]
pub struct BenchDetectArgs {
    /// The suspect copy.
    pub suspect: PathBuf,
    /// Title id.
    #[arg(long)]
    pub title: String,
    /// The reference index directory written at embed time (PKG/reference).
    #[arg(long)]
    pub reference: PathBuf,
    /// The mezzanine, whose FFmpeg decode time is added to the suspect's.
    #[arg(long)]
    pub mezzanine: Option<PathBuf>,
    /// Measured rounds (after one warm-up); the ratio is the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace bench encode`.
#[derive(Debug, Args)]
pub struct BenchEncodeArgs {
    /// Input video.
    pub input: PathBuf,
    #[command(flatten)]
    pub encode: EncodeOpts,
    /// Runs of each (plain and A/B alternate); the ratio reported is the median of the
    /// per-pair ratios.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    /// Encryption of the full package (the third arm, with audio): cenc, cbcs or none.
    #[arg(long, default_value = "cenc", value_name = "SCHEME")]
    pub encrypt: String,
    /// Keep the outputs (plain/RENDITION.mp4 and the ab/ package) in this directory.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `leaktrace bench flicker`.
#[derive(Debug, Args)]
pub struct BenchFlickerArgs {
    /// The marked encode (e.g. variant A's segments joined).
    pub marked: PathBuf,
    /// The plain encode at the same settings.
    pub plain: PathBuf,
    /// Segment duration of the package.
    #[arg(long, default_value = "2s")]
    pub segment: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}
