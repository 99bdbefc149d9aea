//! Neutral HLS and DASH manifests: the same for every viewer, naming no variant.
//!
//! Segment URLs are relative and variant-free (`720p/seg_00003.m4s`); the origin keeps the
//! files under `720p/a/` and `720p/b/`, and the edge picks one per session (TS 104 002
//! server-side sequencing). No `WATERMARKING-VARIANT`, `EXT-X-WMPACEINFO` or watermarking
//! `EssentialProperty` appears: those belong to ingest manifests and are stripped on egress.

use crate::EmbedError;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, Event};
use std::io::Cursor;

/// What the manifests need to know about one rendition.
#[derive(Clone, Debug, PartialEq)]
pub struct RenditionManifest {
    /// Name and directory, e.g. `720p`.
    pub name: String,
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// RFC 6381 codec string.
    pub codec: String,
    /// The colour description its stream declares: the HLS `VIDEO-RANGE` and the DASH
    /// colour properties come from it.
    pub colour: leaktrace_media::Colour,
    /// Peak segment bitrate over both variants, bit/s.
    pub peak_bps: u64,
    /// Average bitrate over the larger variant, bit/s.
    pub average_bps: u64,
    /// Segment durations in the track timescale, in position order.
    pub durations: Vec<u64>,
}

/// What the manifests need to know about one text (subtitle) rendition.
#[derive(Clone, Debug, PartialEq)]
pub struct TextManifest {
    /// Directory, e.g. `text-en`.
    pub name: String,
    /// BCP 47 language tag.
    pub language: String,
    /// The rendition's name for viewers (HLS `NAME`, unique in the group).
    pub label: String,
    /// Segment durations in the video track's timescale, in position order.
    pub durations: Vec<u64>,
}

/// What the manifests say about Common Encryption: the scheme, the key IDs, and each DRM
/// system's `pssh` box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrmSignal {
    /// `cenc` or `cbcs`.
    pub scheme: leaktrace_media::cenc::Scheme,
    /// Key ID of the video renditions.
    pub video_kid: [u8; 16],
    /// Key ID of the audio renditions.
    pub audio_kid: [u8; 16],
    /// (system ID in UUID form, the whole `pssh` box in base64), the common system first.
    pub systems: Vec<(String, String)>,
}

impl DrmSignal {
    /// One `EXT-X-KEY` (or `EXT-X-SESSION-KEY`) per DRM system for a track keyed by `kid`:
    /// `SAMPLE-AES` for `cbcs`, `SAMPLE-AES-CTR` for `cenc`; the system's `pssh` box as a data
    /// URI, except ClearKey's, whose URI is the key ID itself (what hls.js reads).
    fn hls_keys(&self, kid: &[u8; 16]) -> Vec<m3u8_rs::Key> {
        use base64::Engine as _;
        self.systems
            .iter()
            .map(|(id, pssh)| {
                let data = if id == COMMON_SYSTEM {
                    base64::engine::general_purpose::STANDARD.encode(kid)
                } else {
                    pssh.clone()
                };
                (id, data)
            })
            .map(|(id, data)| m3u8_rs::Key {
                method: match self.scheme {
                    leaktrace_media::cenc::Scheme::Cbcs => m3u8_rs::KeyMethod::SampleAES,
                    leaktrace_media::cenc::Scheme::Cenc => {
                        m3u8_rs::KeyMethod::Other("SAMPLE-AES-CTR".into())
                    }
                    // A scheme HLS has no method name for: signalled by its own name.
                    other => m3u8_rs::KeyMethod::Other(other.name().to_ascii_uppercase()),
                },
                uri: Some(format!("data:text/plain;base64,{data}")),
                iv: None,
                keyformat: Some(hls_keyformat(id)),
                keyformatversions: Some("1".into()),
            })
            .collect()
    }
}

/// The W3C common system ID (ClearKey), UUID form.
const COMMON_SYSTEM: &str = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b";

/// The HLS `KEYFORMAT` of a DRM system: the names players look for (hls.js, Shaka Player)
/// for ClearKey (the W3C common system) and PlayReady, the system's URN for the others
/// (Widevine's is its URN).
fn hls_keyformat(system_id: &str) -> String {
    match system_id {
        COMMON_SYSTEM => "org.w3.clearkey".to_owned(),
        "9a04f079-9840-4286-ab92-e65be0885f95" => "com.microsoft.playready".to_owned(),
        id => format!("urn:uuid:{id}"),
    }
}

/// What the manifests need to know about one audio rendition.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioManifest {
    /// Directory, e.g. `audio-en`.
    pub name: String,
    /// BCP 47 language tag.
    pub language: String,
    /// The rendition's name for viewers (HLS `NAME`, unique in the group).
    pub label: String,
    /// DASH role value (`main`, `alternate`, `commentary`, `description`, `dub`).
    pub role: &'static str,
    /// Whether players pick it when the viewer has no preference (one per package).
    pub default: bool,
    /// RFC 6381 codec string, e.g. `mp4a.40.2`.
    pub codec: String,
    /// Channels.
    pub channels: u16,
    /// Sample rate and track timescale (Hz).
    pub sample_rate: u32,
    /// Peak segment bitrate, bit/s.
    pub peak_bps: u64,
    /// Average bitrate, bit/s.
    pub average_bps: u64,
    /// Segment durations in `sample_rate` units, in position order.
    pub durations: Vec<u64>,
}

/// The `GROUP-ID` of the audio renditions in the multivariant playlist.
pub const AUDIO_GROUP: &str = "audio";

/// The media playlist of one audio rendition: one CMAF segment per position.
pub fn hls_audio_media(a: &AudioManifest, drm: Option<&DrmSignal>) -> Result<String, EmbedError> {
    let keys = drm.map(|d| d.hls_keys(&d.audio_kid)).unwrap_or_default();
    media_playlist(
        &a.durations,
        a.sample_rate,
        segment_name,
        Some(INIT_NAME),
        &keys,
    )
}

/// MPEG-D CICP `ChannelConfiguration` of the channel layouts leaktrace encodes (ISO/IEC
/// 23091-3 table 8), or `None` for a count it never writes.
fn cicp_channels(channels: u16) -> Option<u8> {
    Some(match channels {
        1..=6 => channels as u8,
        7 => 11,
        8 => 12,
        _ => return None,
    })
}

/// Name of the WebVTT segment of `position`.
pub fn text_segment_name(position: u32) -> String {
    format!("seg_{position:05}.vtt")
}

/// Name of a text rendition's whole-track WebVTT file (the DASH side-loaded form).
pub const TEXT_WHOLE: &str = "subtitles.vtt";

/// The `GROUP-ID` of the subtitle renditions in the multivariant playlist.
pub const SUBTITLE_GROUP: &str = "subs";

/// Name of segment `position`.
pub fn segment_name(position: u32) -> String {
    leaktrace_core::segment_file_name(position)
}

/// Name of the init segment.
pub const INIT_NAME: &str = "init.mp4";
/// Name of each rendition's media playlist.
pub const MEDIA_PLAYLIST: &str = "playlist.m3u8";
/// Name of the multivariant playlist.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// Name of the DASH MPD.
pub const MPD_NAME: &str = "manifest.mpd";

/// The media playlist of one rendition (with its `EXT-X-KEY` tags when encrypted).
pub fn hls_media(
    r: &RenditionManifest,
    timescale: u32,
    drm: Option<&DrmSignal>,
) -> Result<String, EmbedError> {
    let keys = drm.map(|d| d.hls_keys(&d.video_kid)).unwrap_or_default();
    media_playlist(
        &r.durations,
        timescale,
        segment_name,
        Some(INIT_NAME),
        &keys,
    )
}

/// The media playlist of one text rendition: one WebVTT segment per position.
pub fn hls_text_media(t: &TextManifest, timescale: u32) -> Result<String, EmbedError> {
    media_playlist(&t.durations, timescale, text_segment_name, None, &[])
}

/// A VOD media playlist of one segment per position (`name(position)`), with an
/// `EXT-X-MAP` to `init` when the segments have one (CMAF; WebVTT has none).
fn media_playlist(
    durations: &[u64],
    timescale: u32,
    name: fn(u32) -> String,
    init: Option<&str>,
    keys: &[m3u8_rs::Key],
) -> Result<String, EmbedError> {
    let secs: Vec<f64> = durations
        .iter()
        .map(|&d| d as f64 / f64::from(timescale))
        .collect();
    let target = secs.iter().fold(0f64, |m, &s| m.max(s)).round().max(1.0) as u64;
    let segments = secs
        .iter()
        .enumerate()
        .map(|(p, &s)| m3u8_rs::MediaSegment {
            uri: name(p as u32),
            duration: s as f32,
            map: init.filter(|_| p == 0).map(|uri| m3u8_rs::Map {
                uri: uri.into(),
                ..Default::default()
            }),
            // The keys apply from the first segment on: one tag per DRM system.
            key: keys.first().filter(|_| p == 0).cloned(),
            unknown_tags: if p == 0 {
                keys.iter().skip(1).map(key_tag).collect()
            } else {
                Vec::new()
            },
            ..Default::default()
        })
        .collect();
    let pl = m3u8_rs::MediaPlaylist {
        version: Some(7),
        target_duration: target,
        media_sequence: 0,
        segments,
        end_list: true,
        playlist_type: Some(m3u8_rs::MediaPlaylistType::Vod),
        independent_segments: init.is_some(),
        ..Default::default()
    };
    let mut out = Vec::new();
    pl.write_to(&mut out)
        .map_err(manifest_err("HLS playlist"))?;
    String::from_utf8(out).map_err(|e| manifest_err("HLS playlist")(not_utf8(e)))
}

/// A further `EXT-X-KEY` tag (m3u8-rs writes one per segment itself).
fn key_tag(k: &m3u8_rs::Key) -> m3u8_rs::ExtTag {
    let method = match &k.method {
        m3u8_rs::KeyMethod::SampleAES => "SAMPLE-AES".to_owned(),
        m3u8_rs::KeyMethod::Other(m) => m.clone(),
        m3u8_rs::KeyMethod::AES128 => "AES-128".to_owned(),
        m3u8_rs::KeyMethod::None => "NONE".to_owned(),
    };
    let mut rest = format!("METHOD={method}");
    for (name, value) in [
        ("URI", &k.uri),
        ("KEYFORMAT", &k.keyformat),
        ("KEYFORMATVERSIONS", &k.keyformatversions),
    ] {
        if let Some(v) = value {
            rest.push_str(&format!(",{name}=\"{v}\""));
        }
    }
    m3u8_rs::ExtTag {
        tag: "X-KEY".into(),
        rest: Some(rest),
    }
}

/// The multivariant playlist, with the text renditions as `EXT-X-MEDIA TYPE=SUBTITLES` of one
/// group that every video variant names.
pub fn hls_master(
    rs: &[RenditionManifest],
    audios: &[AudioManifest],
    texts: &[TextManifest],
    frame_rate: f64,
    drm: Option<&DrmSignal>,
) -> Result<String, EmbedError> {
    // Every variant plays with any audio rendition: it declares the largest audio bitrate
    // and the audio codec (one codec in the group: leaktrace writes AAC-LC).
    let audio_peak = audios.iter().map(|a| a.peak_bps).max().unwrap_or(0);
    let audio_average = audios.iter().map(|a| a.average_bps).max().unwrap_or(0);
    let mut audio_codecs: Vec<&str> = audios.iter().map(|a| a.codec.as_str()).collect();
    audio_codecs.sort_unstable();
    audio_codecs.dedup();
    let variants = rs
        .iter()
        .map(|r| m3u8_rs::VariantStream {
            uri: format!("{}/{MEDIA_PLAYLIST}", r.name),
            bandwidth: r.peak_bps + audio_peak,
            average_bandwidth: Some(r.average_bps + audio_average),
            codecs: Some(
                std::iter::once(r.codec.as_str())
                    .chain(audio_codecs.iter().copied())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            audio: (!audios.is_empty()).then(|| AUDIO_GROUP.to_owned()),
            resolution: Some(m3u8_rs::Resolution {
                width: r.width as u64,
                height: r.height as u64,
            }),
            frame_rate: Some((frame_rate * 1000.0).round() / 1000.0),
            subtitles: (!texts.is_empty()).then(|| SUBTITLE_GROUP.to_owned()),
            // PQ or HLG: an SDR-only player leaves the variant out. Absent means SDR.
            other_attributes: r.colour.video_range().map(|range| {
                std::collections::HashMap::from([(
                    "VIDEO-RANGE".to_owned(),
                    m3u8_rs::QuotedOrUnquoted::Unquoted(range.to_owned()),
                )])
            }),
            ..Default::default()
        })
        .collect();
    let audio_alternatives = audios.iter().map(|a| m3u8_rs::AlternativeMedia {
        media_type: m3u8_rs::AlternativeMediaType::Audio,
        uri: Some(format!("{}/{MEDIA_PLAYLIST}", a.name)),
        group_id: AUDIO_GROUP.to_owned(),
        language: Some(a.language.clone()),
        name: a.label.clone(),
        default: a.default,
        autoselect: true,
        channels: Some(a.channels.to_string()),
        characteristics: (a.role == "description")
            .then(|| "public.accessibility.describes-video".to_owned()),
        ..Default::default()
    });
    let alternatives = audio_alternatives
        .chain(texts.iter().map(|t| m3u8_rs::AlternativeMedia {
            media_type: m3u8_rs::AlternativeMediaType::Subtitles,
            uri: Some(format!("{}/{MEDIA_PLAYLIST}", t.name)),
            group_id: SUBTITLE_GROUP.to_owned(),
            language: Some(t.language.clone()),
            name: t.label.clone(),
            autoselect: true,
            ..Default::default()
        }))
        .collect();
    let pl = m3u8_rs::MasterPlaylist {
        version: Some(7),
        variants,
        alternatives,
        independent_segments: true,
        session_key: drm
            .map(|d| {
                let mut keys = d.hls_keys(&d.video_kid);
                if audios.is_empty() || d.audio_kid == d.video_kid {
                    return keys;
                }
                // The audio key's ClearKey line (the other systems' lines are the same).
                keys.extend(
                    d.hls_keys(&d.audio_kid)
                        .into_iter()
                        .filter(|k| k.keyformat.as_deref() == Some("org.w3.clearkey")),
                );
                keys
            })
            .unwrap_or_default()
            .into_iter()
            .map(m3u8_rs::SessionKey)
            .collect(),
        ..Default::default()
    };
    let mut out = Vec::new();
    pl.write_to(&mut out)
        .map_err(manifest_err("HLS playlist"))?;
    String::from_utf8(out).map_err(|e| manifest_err("HLS playlist")(not_utf8(e)))
}

/// Maps a writer error of the manifest `what` to [`EmbedError::Manifest`].
fn manifest_err(what: &'static str) -> impl Fn(std::io::Error) -> EmbedError {
    move |source| EmbedError::Manifest { what, source }
}

/// Output that is not UTF-8, as an I/O error (what a text writer reports).
fn not_utf8(e: std::string::FromUtf8Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// ISO 8601 duration with millisecond precision.
fn iso_duration(seconds: f64) -> String {
    format!("PT{:.3}S", seconds.max(0.0))
}

/// The DASH MPD (static, CMAF/live profile, `SegmentTemplate` with `SegmentTimeline`).
pub fn dash_mpd(
    rs: &[RenditionManifest],
    audios: &[AudioManifest],
    texts: &[TextManifest],
    timescale: u32,
    frame_rate: (i32, i32),
    drm: Option<&DrmSignal>,
) -> Result<String, EmbedError> {
    let ser = manifest_err("DASH MPD");
    let total = rs
        .first()
        .map(|r| r.durations.iter().sum::<u64>())
        .unwrap_or(0) as f64
        / f64::from(timescale);
    let max_seg = rs
        .iter()
        .flat_map(|r| r.durations.iter())
        .copied()
        .max()
        .unwrap_or(0) as f64
        / f64::from(timescale);
    let fr = if frame_rate.1 == 1 {
        frame_rate.0.to_string()
    } else {
        format!("{}/{}", frame_rate.0, frame_rate.1)
    };
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(&ser)?;
    let max_w = rs.iter().map(|r| r.width).max().unwrap_or(0).to_string();
    let max_h = rs.iter().map(|r| r.height).max().unwrap_or(0).to_string();
    let mut mpd = w
        .create_element("MPD")
        .with_attribute(("xmlns", "urn:mpeg:dash:schema:mpd:2011"));
    if drm.is_some() {
        mpd = mpd.with_attribute(("xmlns:cenc", "urn:mpeg:cenc:2013"));
    }
    mpd.with_attribute((
        "profiles",
        "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019",
    ))
    .with_attribute(("type", "static"))
    .with_attribute(("mediaPresentationDuration", iso_duration(total).as_str()))
    .with_attribute((
        "minBufferTime",
        iso_duration(max_seg.max(1.0) * 2.0).as_str(),
    ))
    .write_inner_content(|w| {
        w.create_element("Period")
            .with_attribute(("id", "0"))
            .with_attribute(("start", "PT0S"))
            .write_inner_content(|w| {
                w.create_element("AdaptationSet")
                    .with_attribute(("id", "0"))
                    .with_attribute(("contentType", "video"))
                    .with_attribute(("mimeType", "video/mp4"))
                    .with_attribute(("segmentAlignment", "true"))
                    .with_attribute(("startWithSAP", "1"))
                    .with_attribute(("maxWidth", max_w.as_str()))
                    .with_attribute(("maxHeight", max_h.as_str()))
                    .with_attribute(("frameRate", fr.as_str()))
                    .write_inner_content(|w| {
                        if let Some(d) = drm {
                            content_protection(w, d, &d.video_kid)?;
                        }
                        if let Some(r) = rs.first() {
                            colour_properties(w, &r.colour)?;
                        }
                        for r in rs {
                            let bw = r.peak_bps.to_string();
                            let (wd, ht) = (r.width.to_string(), r.height.to_string());
                            w.create_element("Representation")
                                .with_attribute(("id", r.name.as_str()))
                                .with_attribute(("bandwidth", bw.as_str()))
                                .with_attribute(("codecs", r.codec.as_str()))
                                .with_attribute(("width", wd.as_str()))
                                .with_attribute(("height", ht.as_str()))
                                .with_attribute(("sar", "1:1"))
                                .write_inner_content(|w| {
                                    segment_template(w, timescale, &r.durations)
                                })?;
                        }
                        Ok(())
                    })?;
                // Audio: one adaptation set per track (per language and role).
                for (k, a) in audios.iter().enumerate() {
                    let id = (k + 1).to_string();
                    let (bw, rate) = (a.peak_bps.to_string(), a.sample_rate.to_string());
                    w.create_element("AdaptationSet")
                        .with_attribute(("id", id.as_str()))
                        .with_attribute(("contentType", "audio"))
                        .with_attribute(("mimeType", "audio/mp4"))
                        .with_attribute(("lang", a.language.as_str()))
                        .with_attribute(("segmentAlignment", "true"))
                        .with_attribute(("startWithSAP", "1"))
                        .write_inner_content(|w| {
                            if let Some(d) = drm {
                                content_protection(w, d, &d.audio_kid)?;
                            }
                            w.create_element("Role")
                                .with_attribute(("schemeIdUri", "urn:mpeg:dash:role:2011"))
                                .with_attribute(("value", a.role))
                                .write_empty()?;
                            w.create_element("Representation")
                                .with_attribute(("id", a.name.as_str()))
                                .with_attribute(("bandwidth", bw.as_str()))
                                .with_attribute(("codecs", a.codec.as_str()))
                                .with_attribute(("audioSamplingRate", rate.as_str()))
                                .write_inner_content(|w| {
                                    if let Some(c) = cicp_channels(a.channels) {
                                        w.create_element("AudioChannelConfiguration")
                                            .with_attribute((
                                                "schemeIdUri",
                                                "urn:mpeg:mpegB:cicp:ChannelConfiguration",
                                            ))
                                            .with_attribute(("value", c.to_string().as_str()))
                                            .write_empty()?;
                                    }
                                    segment_template(w, a.sample_rate, &a.durations)
                                })?;
                            Ok(())
                        })?;
                }
                // Text: the whole track side-loaded as one WebVTT file per language.
                for (k, t) in texts.iter().enumerate() {
                    let id = (audios.len() + k + 1).to_string();
                    let url = format!("{}/{TEXT_WHOLE}", t.name);
                    w.create_element("AdaptationSet")
                        .with_attribute(("id", id.as_str()))
                        .with_attribute(("contentType", "text"))
                        .with_attribute(("mimeType", "text/vtt"))
                        .with_attribute(("lang", t.language.as_str()))
                        .write_inner_content(|w| {
                            w.create_element("Role")
                                .with_attribute(("schemeIdUri", "urn:mpeg:dash:role:2011"))
                                .with_attribute(("value", "subtitle"))
                                .write_empty()?;
                            w.create_element("Representation")
                                .with_attribute(("id", t.name.as_str()))
                                .with_attribute(("bandwidth", "256"))
                                .write_inner_content(|w| {
                                    w.create_element("BaseURL").write_text_content(
                                        quick_xml::events::BytesText::new(&url),
                                    )?;
                                    Ok(())
                                })?;
                            Ok(())
                        })?;
                }
                Ok(())
            })?;
        Ok(())
    })
    .map_err(&ser)?;
    String::from_utf8(w.into_inner().into_inner()).map_err(|e| ser(not_utf8(e)))
}

/// The `ContentProtection` descriptors of an adaptation set: the scheme with its default key
/// ID, then one per DRM system with its `pssh` box.
/// The video's colour description as DASH-IF's CICP properties (primaries, transfer,
/// matrix), each when declared: how a DASH player tells an HDR10 or HLG adaptation set.
fn colour_properties<W: std::io::Write>(
    w: &mut Writer<W>,
    colour: &leaktrace_media::Colour,
) -> std::io::Result<()> {
    for (scheme, code) in [
        ("urn:mpeg:mpegB:cicp:ColourPrimaries", colour.primaries),
        (
            "urn:mpeg:mpegB:cicp:TransferCharacteristics",
            colour.transfer,
        ),
        ("urn:mpeg:mpegB:cicp:MatrixCoefficients", colour.matrix),
    ] {
        if code != leaktrace_media::Colour::UNSPECIFIED.primaries {
            let value = code.to_string();
            w.create_element("SupplementalProperty")
                .with_attribute(("schemeIdUri", scheme))
                .with_attribute(("value", value.as_str()))
                .write_empty()?;
        }
    }
    Ok(())
}

fn content_protection<W: std::io::Write>(
    w: &mut Writer<W>,
    drm: &DrmSignal,
    kid: &[u8; 16],
) -> std::io::Result<()> {
    let kid = leaktrace_media::cenc::uuid(kid);
    let kid = kid.as_str();
    w.create_element("ContentProtection")
        .with_attribute(("schemeIdUri", "urn:mpeg:dash:mp4protection:2011"))
        .with_attribute(("value", drm.scheme.name()))
        .with_attribute(("cenc:default_KID", kid))
        .write_empty()?;
    for (id, pssh) in &drm.systems {
        let scheme = format!("urn:uuid:{id}");
        w.create_element("ContentProtection")
            .with_attribute(("schemeIdUri", scheme.as_str()))
            .write_inner_content(|w| {
                w.create_element("cenc:pssh")
                    .write_text_content(quick_xml::events::BytesText::new(pssh))?;
                Ok(())
            })?;
    }
    Ok(())
}

/// A `SegmentTemplate` (`$RepresentationID$/seg_$Number%05d$.m4s` from 0, with its init)
/// whose `SegmentTimeline` lists `durations` in `timescale` units.
fn segment_template<W: std::io::Write>(
    w: &mut Writer<W>,
    timescale: u32,
    durations: &[u64],
) -> std::io::Result<()> {
    let ts = timescale.to_string();
    let init = format!("$RepresentationID$/{INIT_NAME}");
    w.create_element("SegmentTemplate")
        .with_attribute(("timescale", ts.as_str()))
        .with_attribute(("initialization", init.as_str()))
        .with_attribute(("media", "$RepresentationID$/seg_$Number%05d$.m4s"))
        .with_attribute(("startNumber", "0"))
        .write_inner_content(|w| {
            w.create_element("SegmentTimeline")
                .write_inner_content(|w| {
                    for (t, d, repeat) in timeline(durations) {
                        let (ts, ds, rs) = (t.to_string(), d.to_string(), repeat.to_string());
                        let mut s = w
                            .create_element("S")
                            .with_attribute(("t", ts.as_str()))
                            .with_attribute(("d", ds.as_str()));
                        if repeat > 0 {
                            s = s.with_attribute(("r", rs.as_str()));
                        }
                        s.write_empty()?;
                    }
                    Ok(())
                })?;
            Ok(())
        })?;
    Ok(())
}

/// Run-length groups of equal durations: (start time, duration, repeat count).
fn timeline(durations: &[u64]) -> Vec<(u64, u64, u64)> {
    let mut out: Vec<(u64, u64, u64)> = Vec::new();
    let mut t = 0u64;
    for &d in durations {
        match out.last_mut() {
            Some((_, ld, r)) if *ld == d => *r += 1,
            _ => out.push((t, d, 0)),
        }
        t += d;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r() -> RenditionManifest {
        RenditionManifest {
            name: "720p".into(),
            width: 1280,
            height: 720,
            codec: "avc1.64001f".into(),
            colour: Default::default(),
            peak_bps: 3_000_000,
            average_bps: 2_000_000,
            durations: vec![180000, 180000, 180000, 90000],
        }
    }

    #[test]
    fn media_playlist_is_neutral_and_complete() {
        let m = hls_media(&r(), 90000, None).unwrap();
        assert!(m.contains("#EXT-X-TARGETDURATION:2"));
        assert!(m.contains("#EXT-X-MAP:URI=\"init.mp4\""));
        assert!(m.contains("seg_00003.m4s"));
        assert!(m.contains("#EXT-X-ENDLIST"));
        for leak in ["a/", "b/", "WATERMARK", "WMPACE"] {
            assert!(!m.contains(leak), "{leak} in {m}");
        }
        let master = hls_master(&[r()], &[], &[], 24.0, None).unwrap();
        assert!(!master.contains("SUBTITLES"));
        assert!(master.contains("720p/playlist.m3u8"));
        assert!(master.contains("CODECS=\"avc1.64001f\""));
    }

    #[test]
    fn subtitles_are_a_group_every_variant_names() {
        let t = TextManifest {
            name: "text-pt-BR".into(),
            language: "pt-BR".into(),
            label: "pt-BR".into(),
            durations: r().durations,
        };
        let master = hls_master(&[r()], &[], std::slice::from_ref(&t), 24.0, None).unwrap();
        assert!(
            master.contains(
                "#EXT-X-MEDIA:TYPE=SUBTITLES,URI=\"text-pt-BR/playlist.m3u8\",GROUP-ID=\"subs\",LANGUAGE=\"pt-BR\",NAME=\"pt-BR\""
            ),
            "{master}"
        );
        assert!(master.contains("SUBTITLES=\"subs\""), "{master}");
        let media = hls_text_media(&t, 90000).unwrap();
        assert!(
            media.contains("seg_00003.vtt") && !media.contains("EXT-X-MAP"),
            "{media}"
        );
        let mpd = dash_mpd(&[r()], &[], &[t], 90000, (24, 1), None).unwrap();
        assert!(
            mpd.contains(r#"contentType="text" mimeType="text/vtt" lang="pt-BR""#),
            "{mpd}"
        );
        assert!(
            mpd.contains("<BaseURL>text-pt-BR/subtitles.vtt</BaseURL>"),
            "{mpd}"
        );
    }

    #[test]
    fn mpd_timeline_run_lengths() {
        assert_eq!(timeline(&[5, 5, 5, 2]), vec![(0, 5, 2), (15, 2, 0)]);
        let mpd = dash_mpd(&[r()], &[], &[], 90000, (24, 1), None).unwrap();
        assert!(mpd.contains(r#"<S t="0" d="180000" r="2"/>"#), "{mpd}");
        assert!(mpd.contains("mediaPresentationDuration=\"PT7.000S\""));
        assert!(!mpd.contains("watermarking"));
    }
}
