//! The attack table: each attack is an ffmpeg filter chain plus encoder arguments, stated in
//! full so the report can print exactly what was run.

use serde::Serialize;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::ForensicError;

/// What an attack stands for in the product targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Target {
    /// "identify within ≤ 64 segments after the 720p re-encode".
    Light,
    /// "≤ 96 segments after each heavy attack" (camcord, 360p CRF 35, crop + scale, 25→30 fps).
    Heavy,
    /// "≥ 99.9 % correct decisions at 1080p CRF 40": only for packages of 1080p and above (a
    /// smaller package's CRF 40 is reported, not judged against it).
    Decisions,
    /// Measured and reported, no target.
    None,
}

impl Target {
    /// The segment budget of the target, if it is one.
    pub fn segments(self) -> Option<usize> {
        match self {
            Target::Light => Some(64),
            Target::Heavy => Some(96),
            Target::Decisions | Target::None => None,
        }
    }
}

/// One attack: `ffmpeg -i IN [-vf FILTERS] -an ENCODER… OUT.mp4`.
#[derive(Clone, Debug, Serialize)]
pub struct Attack {
    /// Short name (table key).
    pub name: String,
    /// What it models.
    pub description: String,
    /// The `-vf` chain (empty: none).
    pub filters: String,
    /// Encoder arguments.
    pub encoder: Vec<String>,
    /// The target it is judged against.
    pub target: Target,
}

/// Default encoder of an attack that only filters: x264 veryfast CRF 23.
pub fn default_encoder() -> Vec<String> {
    args(&["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"])
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

fn x264(extra: &[&str]) -> Vec<String> {
    let mut v = args(&["-c:v", "libx264"]);
    v.extend(args(extra));
    v
}

/// What the attack table needs to know about the package.
#[derive(Clone, Copy, Debug)]
pub struct Source {
    /// Package (rendition) height.
    pub height: u32,
    /// Frame rate, frames per second.
    pub fps: f64,
    /// Duration in seconds.
    pub duration_s: f64,
}

fn attack(name: &str, description: &str, filters: &str, encoder: Vec<String>, t: Target) -> Attack {
    Attack {
        name: name.to_owned(),
        description: description.to_owned(),
        filters: filters.to_owned(),
        encoder,
        target: t,
    }
}

/// The full attack table for a package of `src`.
pub fn table(src: Source) -> Vec<Attack> {
    let h = src.height;
    // CRF 40/45 at 1080p where the package has it, else at the package height.
    let top = if h >= 1080 { 1080 } else { h };
    let scale_top = if top == h {
        String::new()
    } else {
        format!("scale=-2:{top}")
    };
    let d = src.duration_s;
    let (cut_a, cut_b) = ((d * 0.4).round(), (d * 0.4).round() + 12.0);
    let fps = format!("{:.3}", src.fps);
    vec![
        attack(
            "reencode-720p-1.5M",
            "re-encode at 720p, x264 1.5 Mbit/s (scaled from the package height)",
            "scale=-2:720",
            reencode_720p(),
            Target::Light,
        ),
        attack(
            &format!("crf40-{top}p"),
            &format!("x264 medium CRF 40 at {top}p"),
            &scale_top,
            x264(&["-preset", "medium", "-crf", "40"]),
            if top >= 1080 {
                Target::Decisions
            } else {
                Target::None
            },
        ),
        attack(
            &format!("crf45-{top}p"),
            &format!("x264 medium CRF 45 at {top}p"),
            &scale_top,
            x264(&["-preset", "medium", "-crf", "45"]),
            Target::None,
        ),
        attack(
            "360p-crf35",
            "downscale to 360p, x264 CRF 35",
            if h == 360 { "" } else { "scale=-2:360" },
            x264(&["-preset", "veryfast", "-crf", "35"]),
            Target::Heavy,
        ),
        attack(
            "hevc-crf32",
            "HEVC re-encode, x265 ultrafast CRF 32",
            "",
            args(&[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-crf",
                "32",
                "-x265-params",
                "log-level=none",
            ]),
            Target::None,
        ),
        attack(
            "av1-crf45",
            "AV1 re-encode, SVT-AV1 preset 10 CRF 45",
            "",
            args(&["-c:v", "libsvtav1", "-preset", "10", "-crf", "45"]),
            Target::None,
        ),
        attack(
            "crop25-scale50",
            "crop 25 % of the area off-centre (edge ratio 0.866, offset 10 %/3 %), then scale to 50 %",
            "crop=trunc(iw*0.866/2)*2:trunc(ih*0.866/2)*2:trunc(iw*0.10):trunc(ih*0.03),scale=trunc(iw/4)*2:-2",
            default_encoder(),
            Target::Heavy,
        ),
        attack(
            "letterbox",
            "black bars top and bottom to a 4:3 frame",
            "pad=iw:trunc(ih*4/3/2)*2:0:(oh-ih)/2:black",
            default_encoder(),
            Target::None,
        ),
        attack(
            "rotate2",
            "rotation by 2 degrees, black corners",
            "rotate=2*PI/180:fillcolor=black",
            default_encoder(),
            Target::None,
        ),
        attack(
            "perspective",
            "mild keystone (corners moved by 2-3 %)",
            "perspective=x0=0.03*W:y0=0.02*H:x1=0.98*W:y1=0:x2=0:y2=H:x3=W:y3=0.97*H:sense=destination",
            default_encoder(),
            Target::None,
        ),
        attack(
            "fps25",
            "frame-rate conversion to 25 fps (frames duplicated)",
            "fps=25",
            default_encoder(),
            Target::None,
        ),
        attack(
            "fps30",
            "frame-rate conversion to 30 fps (frames duplicated; the 25→30 fps case)",
            "fps=30",
            default_encoder(),
            Target::Heavy,
        ),
        attack(
            "frame-drop",
            "every 10th frame dropped (the previous one repeated)",
            &format!("select='not(eq(mod(n\\,10)\\,4))',fps={fps}"),
            default_encoder(),
            Target::None,
        ),
        attack(
            "trim-head-tail",
            "first 13.3 s and last 7 s cut",
            &format!("trim=start=13.3:end={:.1},setpts=PTS-STARTPTS", d - 7.0),
            default_encoder(),
            Target::None,
        ),
        attack(
            "middle-cut",
            &format!("{cut_a:.0}-{cut_b:.0} s cut out of the middle"),
            &format!("select='not(between(t\\,{cut_a:.0}\\,{cut_b:.0}))',setpts=N/FRAME_RATE/TB"),
            default_encoder(),
            Target::None,
        ),
        attack(
            "brightness",
            "brightness +0.08 (eq)",
            "eq=brightness=0.08",
            default_encoder(),
            Target::None,
        ),
        attack(
            "contrast",
            "contrast ×1.25 (eq)",
            "eq=contrast=1.25",
            default_encoder(),
            Target::None,
        ),
        attack(
            "gamma",
            "gamma 1.2 (eq)",
            "eq=gamma=1.2",
            default_encoder(),
            Target::None,
        ),
        attack(
            "noise",
            "temporal noise, strength 12",
            "noise=alls=12:allf=t",
            default_encoder(),
            Target::None,
        ),
        attack(
            "blur",
            "Gaussian blur σ = 2",
            "gblur=sigma=2",
            default_encoder(),
            Target::None,
        ),
        attack(
            "camcord",
            "keystone + barrel + vignette + colour/gamma + blur σ 1.2 + sensor noise + 23.976 fps + 75 % downscale + x264 CRF 32 (reference/algorithms.md §5)",
            CAMCORD,
            camcord_encoder(),
            Target::Heavy,
        ),
    ]
}

/// The camcorder chain: keystone, barrel, vignette, colour and gamma, blur, sensor noise,
/// 23.976 fps, 75 % downscale (reference/algorithms.md §5); encoded by [`camcord_encoder`].
const CAMCORD: &str = "perspective=x0=0.04*W:y0=0.03*H:x1=0.97*W:y1=0:x2=0:y2=0.98*H:x3=W:y3=0.95*H:sense=destination:interpolation=cubic,lenscorrection=k1=-0.05:k2=0.01,vignette=PI/5,eq=brightness=0.03:contrast=0.9:saturation=0.9:gamma=1.1,gblur=sigma=1.2,noise=alls=8:allf=t+u,fps=24000/1001,scale=trunc(iw*0.75/2)*2:-2:flags=bicubic";

fn camcord_encoder() -> Vec<String> {
    x264(&["-preset", "veryfast", "-crf", "32"])
}

/// The 720p re-encode of the light target (x264 veryfast, 1.5 Mbit/s).
fn reencode_720p() -> Vec<String> {
    x264(&[
        "-preset", "veryfast", "-b:v", "1500k", "-maxrate", "1500k", "-bufsize", "3000k",
    ])
}

/// A path as a drawtext `fontfile` value (filter-graph escaping of `\`, `:` and `'`).
fn filter_path(p: &Path) -> String {
    let mut out = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, '\\' | ':' | '\'' | ',' | ';' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// What a pirate adds to the picture, as a `-vf` fragment and its stated parameters.
struct Overlay {
    name: String,
    description: String,
    filters: String,
}

fn overlay(name: &str, description: &str, filters: String) -> Overlay {
    Overlay {
        name: name.to_owned(),
        description: description.to_owned(),
        filters,
    }
}

/// A site's logo ("bug"): a box of `w` × `h` (fractions of the frame) in `corner` (`tl`, `tr`,
/// `bl`, `br`; 3 % from the sides, 4 % from top or bottom) with the site's name, drawn at
/// `opacity`.
fn logo(font: &str, corner: &str, w: f64, h: f64, opacity: f64) -> Overlay {
    let x = if corner.ends_with('l') {
        0.03
    } else {
        0.97 - w
    };
    let y = if corner.starts_with('t') {
        0.04
    } else {
        0.96 - h
    };
    let filters = format!(
        "drawbox=x=iw*{x:.3}:y=ih*{y:.3}:w=iw*{w:.3}:h=ih*{h:.3}:color=0x202020@{opacity:.2}:t=fill,\
         drawtext=fontfile={font}:text='PIRATE.TV':fontcolor=white@{opacity:.2}:fontsize=h*{fs:.4}:\
         x=w*{x:.3}+(w*{w:.3}-tw)/2:y=h*{y:.3}+(h*{h:.3}-th)/2",
        fs = h * 0.4
    );
    overlay(
        &format!("logo-{corner}"),
        &format!(
            "a site's logo box with its name, {:.0} % × {:.0} % of the frame ({:.1} % of the area) in the {} corner, opacity {:.0} %",
            w * 100.0,
            h * 100.0,
            w * h * 100.0,
            match corner {
                "tl" => "top-left",
                "tr" => "top-right",
                "bl" => "bottom-left",
                _ => "bottom-right",
            },
            opacity * 100.0
        ),
        filters,
    )
}

/// Burned-in subtitles: a new line every 5 s, shown 3.5 s of the 5, white with a black
/// border, 1/16 of the height, at the bottom; every other one has a second line.
fn subtitles(font: &str) -> Overlay {
    let style = format!(
        "fontfile={font}:fontcolor=white:borderw=2:bordercolor=black:fontsize=h/16:x=(w-tw)/2"
    );
    overlay(
        "subtitles",
        "burned-in subtitles: changing text every 5 s, shown 3.5 s of 5, one or two lines at the bottom (font 1/16 of the height, black border)",
        format!(
            "drawtext={style}:text='%{{eif\\:floor(t/5)\\:d}}. Where were you when the lights went out?':\
             y=h*0.88:enable='lt(mod(t\\,5)\\,3.5)',\
             drawtext={style}:text='I was down by the river, waiting for the boat.':\
             y=h*0.80:enable='lt(mod(t\\,5)\\,3.5)*mod(floor(t/5)\\,2)'"
        ),
    )
}

/// A news-style ticker: an opaque band of 12 % of the height across the bottom with text
/// scrolling right to left at a quarter of the width per second.
fn ticker(font: &str) -> Overlay {
    overlay(
        "ticker",
        "a ticker band across the bottom (12 % of the height, opaque) with text scrolling at ¼ of the width per second",
        format!(
            "drawbox=x=0:y=ih*0.88:w=iw:h=ih*0.12:color=0x003080@1:t=fill,\
             drawtext=fontfile={font}:text='BREAKING +++ live sports free +++ watch now +++ all channels +++':\
             fontcolor=yellow:fontsize=h/18:x=w-mod(t*w/4\\,w+tw):y=h*0.905"
        ),
    )
}

/// The attacks a pirate site's copies show: a logo in each corner at several sizes and
/// opacities, burned-in subtitles, a scrolling ticker, all three together, a screen capture
/// with a player's chrome, a mirror, picture-in-picture over other moving pictures (65 % and
/// 68 % of the width at two places, 40 % at a third), and 5 % faster playback. Each runs alone (x264 veryfast CRF 23 at the package
/// size) and followed by the 720p re-encode; two are also put on a camcorder copy. Every one
/// is judged against the 96-segment budget. `font` is the TrueType file for drawn text.
pub fn wild_table(src: Source, font: &Path) -> Vec<Attack> {
    let f = filter_path(font);
    let fps = format!("{:.3}", src.fps);
    let stack = overlaid(&f);
    let base = vec![
        logo(&f, "tl", 0.12, 0.08, 1.0),
        logo(&f, "tr", 0.16, 0.11, 0.6),
        logo(&f, "bl", 0.20, 0.14, 0.35),
        logo(&f, "br", 0.24, 0.16, 1.0),
        subtitles(&f),
        ticker(&f),
        stack,
        overlay(
            "player-chrome",
            "a screen capture of a web player: the picture at 82 % in a dark page with a title line and a control bar (time code), recaptured at the package size",
            format!(
                "scale=trunc(iw*0.82/2)*2:trunc(ih*0.82/2)*2,\
                 pad=trunc(iw/0.82/2)*2:trunc(ih/0.82/2)*2:(ow-iw)/2:trunc(oh*0.05):color=0x181818,\
                 drawtext=fontfile={f}:text='Watch free HD - full movie':fontcolor=0xc0c0c0:fontsize=h/30:x=w*0.10:y=h*0.012,\
                 drawbox=x=0:y=ih*0.885:w=iw:h=ih*0.115:color=0x303030@1:t=fill,\
                 drawbox=x=iw*0.16:y=ih*0.93:w=iw*0.70:h=ih*0.012:color=0x808080@1:t=fill,\
                 drawtext=fontfile={f}:text='%{{pts\\:hms}}':fontcolor=white:fontsize=h/28:x=w*0.02:y=h*0.92"
            ),
        ),
        overlay("mirror", "mirrored left to right", "hflip".to_owned()),
        overlay(
            "pip-right",
            "picture-in-picture: the film at 65 % of the width (42 % of the area) at 30 %/10 % over another moving picture (ffmpeg testsrc2)",
            format!(
                "testsrc2=s=1280x720:r={fps}[bg0];[bg0][in]scale2ref[bg][fg];\
                 [fg]scale=trunc(iw*0.65/2)*2:-2[win];[bg][win]overlay=x=W*0.30:y=H*0.10:shortest=1"
            ),
        ),
        overlay(
            "pip-left",
            "picture-in-picture: the film at 68 % of the width (46 % of the area) at 3 %/28 % over a moving cellular pattern (ffmpeg life)",
            format!(
                "life=s=320x180:r={fps}:ratio=0.3:mold=10:life_color=0x40a040:death_color=0x101030:mold_color=0x305030,\
                 scale=1280:720:flags=neighbor[bg0];[bg0][in]scale2ref[bg][fg];\
                 [fg]scale=trunc(iw*0.68/2)*2:-2[win];[bg][win]overlay=x=W*0.03:y=H*0.28:shortest=1"
            ),
        ),
        overlay(
            "pip-small",
            "picture-in-picture: the film at 40 % of the width (16 % of the area) at 56 %/50 % over moving colour gradients (ffmpeg gradients)",
            format!(
                "gradients=s=1280x720:r={fps}:speed=0.02[bg0];[bg0][in]scale2ref[bg][fg];\
                 [fg]scale=trunc(iw*0.40/2)*2:-2[win];[bg][win]overlay=x=W*0.56:y=H*0.50:shortest=1"
            ),
        ),
        overlay(
            "speed-1.05",
            "played 5 % faster (timestamps / 1.05, frames dropped to keep the rate)",
            format!("setpts=PTS/1.05,fps={fps}"),
        ),
    ];
    let mut out = Vec::new();
    for o in base {
        out.push(attack(
            &o.name,
            &format!("{}; x264 veryfast CRF 23", o.description),
            &o.filters,
            default_encoder(),
            Target::Heavy,
        ));
        out.push(attack(
            &format!("{}+720p", o.name),
            &format!("{}; then the 720p re-encode (1.5 Mbit/s)", o.description),
            &format!("{},scale=-2:720", o.filters),
            reencode_720p(),
            Target::Heavy,
        ));
    }
    for o in [logo(&f, "tr", 0.16, 0.11, 0.6), subtitles(&f)] {
        out.push(attack(
            &format!("camcord+{}", o.name),
            &format!("the camcorder chain, then {}; x264 CRF 32", o.description),
            &format!("{CAMCORD},{}", o.filters),
            camcord_encoder(),
            Target::Heavy,
        ));
    }
    out
}

/// Logo, ticker and subtitles at once (what an IPTV restream shows); the subtitles are drawn
/// last, over the ticker band.
fn overlaid(font: &str) -> Overlay {
    let (l, s, t) = (
        logo(font, "tr", 0.16, 0.11, 1.0),
        subtitles(font),
        ticker(font),
    );
    overlay(
        "logo+subtitles+ticker",
        &format!(
            "{}, {} and {} (subtitles over the band)",
            l.description, t.description, s.description
        ),
        format!("{},{},{}", l.filters, t.filters, s.filters),
    )
}

/// The overlays of [`wild_table`]'s `logo+subtitles+ticker` as an innocent copy's attack
/// (x264 veryfast CRF 23): an innocent source that carries what the pirates' copies carry.
pub fn overlaid_innocent(font: &Path) -> Attack {
    let o = overlaid(&filter_path(font));
    attack(
        &o.name,
        &o.description,
        &o.filters,
        default_encoder(),
        Target::None,
    )
}

/// The attacks of the smoke run (a CI-sized subset).
pub fn smoke_table(src: Source) -> Vec<Attack> {
    table(src)
        .into_iter()
        .filter(|a| a.name == "360p-crf35" || a.name == "gamma")
        .collect()
}

/// Runs `ffmpeg` with `args`, failing with its stderr.
pub fn ffmpeg(what: &str, args: &[String]) -> Result<(), ForensicError> {
    let out = Command::new("ffmpeg")
        .args(["-y", "-hide_banner", "-loglevel", "error", "-nostdin"])
        .args(args)
        .output()
        .map_err(|e| ForensicError::Ffmpeg {
            what: what.to_owned(),
            stderr: format!("cannot start ffmpeg: {e} (install ffmpeg)"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ForensicError::Ffmpeg {
            what: what.to_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

impl Attack {
    /// The ffmpeg arguments for `input` → `output`.
    pub fn command(&self, input: &Path, output: &Path) -> Vec<String> {
        let mut a = vec!["-i".to_owned(), s(input), "-an".to_owned()];
        if !self.filters.is_empty() {
            a.push("-vf".into());
            a.push(self.filters.clone());
        }
        a.extend(self.encoder.iter().cloned());
        a.extend(args(&["-pix_fmt", "yuv420p"]));
        a.push(s(output));
        a
    }

    /// Runs the attack; returns the wall time in seconds.
    pub fn run(&self, input: &Path, output: &Path) -> Result<f64, ForensicError> {
        let t = Instant::now();
        ffmpeg(&self.name, &self.command(input, output))?;
        Ok(t.elapsed().as_secs_f64())
    }
}

/// Frame averaging of colluders' streams: `mix` of the decoded inputs, then x264 CRF 23.
pub fn average(inputs: &[&Path], output: &Path) -> Result<f64, ForensicError> {
    let t = Instant::now();
    let mut a = Vec::new();
    for i in inputs {
        a.push("-i".to_owned());
        a.push(s(i));
    }
    let labels: String = (0..inputs.len()).map(|i| format!("[{i}:v]")).collect();
    a.push("-filter_complex".into());
    a.push(format!("{labels}mix=inputs={}", inputs.len()));
    a.push("-an".into());
    a.extend(default_encoder());
    a.extend(args(&["-pix_fmt", "yuv420p"]));
    a.push(s(output));
    ffmpeg("frame averaging", &a)?;
    Ok(t.elapsed().as_secs_f64())
}
