//! The manifests of a live channel: a sliding-window HLS media playlist per rendition (with
//! `EXT-X-PROGRAM-DATE-TIME` on every segment) and a dynamic DASH MPD with one period per
//! stretch of the channel that runs with the wall clock. Both are neutral: the same for every
//! viewer, naming no variant.

use super::state::{ChannelState, Segment};
use crate::EmbedError;
use crate::manifest::{AudioManifest, INIT_NAME, RenditionManifest, segment_name};
use leaktrace_core::part_file_name;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, Event};
use std::io::Cursor;

fn err(what: &'static str) -> impl Fn(std::io::Error) -> EmbedError {
    move |source| EmbedError::Manifest { what, source }
}

fn utc(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).unwrap_or_default()
}

fn iso_utc(ms: i64) -> String {
    utc(ms).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Complete segments at the end of a low-latency playlist whose parts are listed too (the
/// parts of the last three target durations, RFC 8216bis section 4.4.4.9).
const SEGMENTS_WITH_PARTS: usize = 3;

/// One part as a playlist lists it: its number in the segment, its duration (in the
/// playlist's timescale), and whether it starts with an independent frame.
type PartRef = (u32, u64, bool);

/// The parts of a video segment: numbered in order, the first independent.
fn video_parts(seg: &Segment) -> Vec<PartRef> {
    seg.parts
        .iter()
        .enumerate()
        .map(|(j, &d)| (j as u32, d, j == 0))
        .collect()
}

/// The parts of an audio segment: every AAC frame is a sync sample, so each is independent.
fn audio_parts(seg: &Segment) -> Vec<PartRef> {
    seg.audio_parts
        .iter()
        .map(|p| (p.index, p.duration, true))
        .collect()
}

/// The `EXT-X-PART` lines of `parts` of the segment at `position`.
fn part_tags(position: u32, parts: &[PartRef], ts: f64) -> Vec<m3u8_rs::ExtTag> {
    parts
        .iter()
        .map(|&(j, d, independent)| m3u8_rs::ExtTag {
            tag: "X-PART".into(),
            rest: Some(format!(
                "DURATION={:.5},URI=\"{}\"{}",
                d as f64 / ts,
                part_file_name(position, j),
                if independent { ",INDEPENDENT=YES" } else { "" }
            )),
        })
        .collect()
}

/// The media playlist of one rendition over `listed` (the last segments, in order). On a
/// channel with low-latency parts it is an LL-HLS playlist: `EXT-X-PART-INF`,
/// `EXT-X-SERVER-CONTROL` with blocking reloads (the edge holds a request for a part not yet
/// published), the parts of the last segments and those of the segment being published.
pub fn hls_live_media(state: &ChannelState, listed: &[Segment]) -> Result<String, EmbedError> {
    media_playlist(state, listed, &video_parts)
}

/// A media playlist over `listed`, whose segments have the parts `parts_of` gives.
fn media_playlist(
    state: &ChannelState,
    listed: &[Segment],
    parts_of: &dyn Fn(&Segment) -> Vec<PartRef>,
) -> Result<String, EmbedError> {
    let ts = f64::from(state.timescale);
    // Every EXTINF, rounded to the nearest integer, is at most the target (RFC 8216 section
    // 4.3.3.1): a segment a few milliseconds over its nominal duration (an AAC frame, a
    // 29.97-fps frame) does not raise it.
    let target = listed
        .iter()
        .map(|s| (s.duration as f64 / ts).round())
        .fold((state.segment_ms as f64 / 1000.0).ceil(), f64::max) as u64;
    let first = listed
        .first()
        .or(state.open.as_ref())
        .map_or(0, |s| s.position);
    // Discontinuities among the held segments before the first listed one.
    let before = state.discontinuities_before
        + state
            .segments
            .iter()
            .take_while(|s| s.position < first)
            .filter(|s| s.discontinuity)
            .count() as u64;
    let with_parts = listed.len().saturating_sub(SEGMENTS_WITH_PARTS);
    let segments = listed
        .iter()
        .enumerate()
        .map(|(k, s)| m3u8_rs::MediaSegment {
            unknown_tags: if k >= with_parts {
                part_tags(s.position, &parts_of(s), ts)
            } else {
                Vec::new()
            },
            uri: segment_name(s.position),
            duration: (s.duration as f64 / ts) as f32,
            discontinuity: s.discontinuity && k > 0,
            map: (k == 0 || s.discontinuity).then(|| m3u8_rs::Map {
                uri: INIT_NAME.into(),
                ..Default::default()
            }),
            program_date_time: Some(utc(s.wall_ms).fixed_offset()),
            ..Default::default()
        })
        .collect();
    let pl = m3u8_rs::MediaPlaylist {
        version: Some(if state.part_frames.is_some() { 9 } else { 7 }),
        target_duration: target,
        media_sequence: u64::from(first),
        discontinuity_sequence: before,
        segments,
        end_list: state.ended,
        independent_segments: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    pl.write_to(&mut out).map_err(err("HLS playlist"))?;
    let mut text =
        String::from_utf8(out).map_err(|e| err("HLS playlist")(std::io::Error::other(e)))?;
    let Some(k) = state.part_frames.filter(|_| !state.ended) else {
        return Ok(text);
    };
    // LL-HLS: the part target and the server's promises after the target duration, and the
    // parts of the segment still being published at the end. Every part listed is at most the
    // part target (RFC 8216bis section 4.4.3.7): audio parts hold whole AAC frames and can be
    // a frame longer than the video's, so the target is the longest part when that is more.
    let open_parts = state.open.as_ref().map(parts_of).unwrap_or_default();
    let longest = listed[with_parts..]
        .iter()
        .flat_map(parts_of)
        .chain(open_parts.iter().copied())
        .map(|(_, d, _)| d as f64 / ts)
        .fold(0.0, f64::max);
    let part_target = (f64::from(k) * f64::from(state.frame_rate[1].max(1))
        / f64::from(state.frame_rate[0].max(1)))
    .max(longest);
    // Printed rounded up, so no part's printed duration exceeds it.
    let part_target = (part_target * 1e5).ceil() / 1e5;
    let target_line = format!("#EXT-X-TARGETDURATION:{target}\n");
    let header = format!(
        "{target_line}#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3}\n\
         #EXT-X-PART-INF:PART-TARGET={part_target:.5}\n",
        3.0 * part_target
    );
    text = text.replacen(&target_line, &header, 1);
    if let Some(open) = state.open.as_ref().filter(|_| !open_parts.is_empty()) {
        if listed.is_empty() || open.discontinuity {
            if !listed.is_empty() {
                text.push_str("#EXT-X-DISCONTINUITY\n");
            }
            text.push_str(&format!("#EXT-X-MAP:URI=\"{INIT_NAME}\"\n"));
        }
        if listed.is_empty() || open.discontinuity {
            text.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:{}\n",
                iso_utc(open.wall_ms)
            ));
        }
        for tag in part_tags(open.position, &open_parts, ts) {
            text.push_str(&format!("{tag}\n"));
        }
    }
    // The part that comes next, which the edge holds a request for until it is published.
    let next = match (&state.open, open_parts.last()) {
        (Some(open), Some(&(j, _, _))) => part_file_name(open.position, j.saturating_add(1)),
        (Some(open), None) => part_file_name(open.position, 0),
        (None, _) => part_file_name(listed.last().map_or(0, |s| s.position.saturating_add(1)), 0),
    };
    text.push_str(&format!("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{next}\"\n"));
    Ok(text)
}

/// The media playlist of the audio rendition over `listed` (the last segments, in order):
/// the video's sliding window, media sequence, program date-times and discontinuities, with
/// each segment's audio duration (48 kHz). Segments without audio (published before the
/// channel had it) are left out. On a channel with low-latency parts it is an LL-HLS playlist
/// like the video's (the same part target and server control), listing the audio parts.
pub fn hls_live_audio_media(
    state: &ChannelState,
    listed: &[Segment],
) -> Result<String, EmbedError> {
    let audio_of = |s: &Segment| {
        s.audio.map(|[start, duration]| Segment {
            media_start: start,
            duration,
            parts: Vec::new(),
            ..s.clone()
        })
    };
    let audio_state = ChannelState {
        timescale: leaktrace_media::audio::SAMPLE_RATE,
        open: state.open.as_ref().and_then(|o| {
            audio_of(o).or_else(|| {
                Some(Segment {
                    parts: Vec::new(),
                    audio_parts: Vec::new(),
                    ..o.clone()
                })
            })
        }),
        segments: state.segments.iter().filter_map(audio_of).collect(),
        ..state.clone()
    };
    let listed: Vec<Segment> = listed.iter().filter_map(audio_of).collect();
    media_playlist(&audio_state, &listed, &audio_parts)
}

/// The dynamic MPD over `listed`: one `Period` per period of the listed segments, each with a
/// `SegmentTemplate` (`$Number$` = the position) and its `SegmentTimeline`, for the video and,
/// on a channel with audio, the audio rendition (its own timeline at 48 kHz).
pub fn dash_live_mpd(
    state: &ChannelState,
    listed: &[Segment],
    renditions: &[RenditionManifest],
    audio: Option<&AudioManifest>,
    now_ms: i64,
) -> Result<String, EmbedError> {
    let ser = err("DASH MPD");
    let seg_s = state.segment_ms as f64 / 1000.0;
    let window_s = listed.len() as f64 * seg_s;
    let fr = if state.frame_rate[1] == 1 {
        state.frame_rate[0].to_string()
    } else {
        format!("{}/{}", state.frame_rate[0], state.frame_rate[1])
    };
    let secs = |s: f64| format!("PT{s:.3}S");
    let (ast, publish) = (iso_utc(state.available_ms), iso_utc(now_ms));
    let (update, depth, delay, buffer) = (
        secs(seg_s),
        secs(window_s.max(seg_s)),
        secs(3.0 * seg_s),
        secs(2.0 * seg_s),
    );
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(&ser)?;
    let mut mpd = w
        .create_element("MPD")
        .with_attribute(("xmlns", "urn:mpeg:dash:schema:mpd:2011"))
        .with_attribute(("profiles", "urn:mpeg:dash:profile:isoff-live:2011"))
        .with_attribute(("type", "dynamic"))
        .with_attribute(("availabilityStartTime", ast.as_str()))
        .with_attribute(("publishTime", publish.as_str()));
    // An ended channel's MPD no longer changes: no update period, and its duration.
    let end = listed.last().map_or(0.0, |s| {
        (s.wall_ms - state.available_ms) as f64 / 1000.0
            + s.duration as f64 / f64::from(state.timescale)
    });
    let end = secs(end);
    mpd = if state.ended {
        mpd.with_attribute(("mediaPresentationDuration", end.as_str()))
    } else {
        mpd.with_attribute(("minimumUpdatePeriod", update.as_str()))
    };
    let mpd = mpd
        .with_attribute(("timeShiftBufferDepth", depth.as_str()))
        .with_attribute(("suggestedPresentationDelay", delay.as_str()))
        .with_attribute(("minBufferTime", buffer.as_str()));
    mpd.write_inner_content(|w| {
        let mut periods: Vec<u32> = listed.iter().map(|s| s.period).collect();
        periods.dedup();
        for id in periods {
            let Some(period) = state.periods.iter().find(|p| p.id == id) else {
                continue;
            };
            let segs: Vec<&Segment> = listed.iter().filter(|s| s.period == id).collect();
            let Some(first) = segs.first() else {
                continue;
            };
            let start = secs((period.wall_ms - state.available_ms).max(0) as f64 / 1000.0);
            let pid = format!("p{id}");
            w.create_element("Period")
                .with_attribute(("id", pid.as_str()))
                .with_attribute(("start", start.as_str()))
                .write_inner_content(|w| {
                    let max_w = renditions.iter().map(|r| r.width).max().unwrap_or(0);
                    let max_h = renditions.iter().map(|r| r.height).max().unwrap_or(0);
                    let (mw, mh) = (max_w.to_string(), max_h.to_string());
                    w.create_element("AdaptationSet")
                        .with_attribute(("id", "0"))
                        .with_attribute(("contentType", "video"))
                        .with_attribute(("mimeType", "video/mp4"))
                        .with_attribute(("segmentAlignment", "true"))
                        .with_attribute(("startWithSAP", "1"))
                        .with_attribute(("maxWidth", mw.as_str()))
                        .with_attribute(("maxHeight", mh.as_str()))
                        .with_attribute(("frameRate", fr.as_str()))
                        .write_inner_content(|w| {
                            let ts = state.timescale.to_string();
                            let pto = period.media_start.to_string();
                            let number = first.position.to_string();
                            let timeline = segs.iter().map(|s| (s.media_start, s.duration));
                            segment_template(w, &ts, &pto, &number, timeline)?;
                            for r in renditions {
                                let bw = r.peak_bps.to_string();
                                let (wd, ht) = (r.width.to_string(), r.height.to_string());
                                w.create_element("Representation")
                                    .with_attribute(("id", r.name.as_str()))
                                    .with_attribute(("bandwidth", bw.as_str()))
                                    .with_attribute(("codecs", r.codec.as_str()))
                                    .with_attribute(("width", wd.as_str()))
                                    .with_attribute(("height", ht.as_str()))
                                    .with_attribute(("sar", "1:1"))
                                    .write_empty()?;
                            }
                            Ok(())
                        })?;
                    let Some(a) = audio else {
                        return Ok(());
                    };
                    let timed: Vec<(u32, [u64; 2])> = segs
                        .iter()
                        .filter_map(|s| s.audio.map(|t| (s.position, t)))
                        .collect();
                    let Some(&(number, _)) = timed.first() else {
                        return Ok(());
                    };
                    let (bw, rate) = (a.peak_bps.to_string(), a.sample_rate.to_string());
                    let ts = a.sample_rate;
                    let pto = (u128::from(period.media_start) * u128::from(ts)
                        / u128::from(state.timescale.max(1)))
                    .to_string();
                    let (number, ts) = (number.to_string(), ts.to_string());
                    w.create_element("AdaptationSet")
                        .with_attribute(("id", "1"))
                        .with_attribute(("contentType", "audio"))
                        .with_attribute(("mimeType", "audio/mp4"))
                        .with_attribute(("lang", a.language.as_str()))
                        .with_attribute(("segmentAlignment", "true"))
                        .with_attribute(("startWithSAP", "1"))
                        .write_inner_content(|w| {
                            w.create_element("Role")
                                .with_attribute(("schemeIdUri", "urn:mpeg:dash:role:2011"))
                                .with_attribute(("value", a.role))
                                .write_empty()?;
                            let timeline = timed.iter().map(|&(_, [t, d])| (t, d));
                            segment_template(w, &ts, &pto, &number, timeline)?;
                            w.create_element("Representation")
                                .with_attribute(("id", a.name.as_str()))
                                .with_attribute(("bandwidth", bw.as_str()))
                                .with_attribute(("codecs", a.codec.as_str()))
                                .with_attribute(("audioSamplingRate", rate.as_str()))
                                .write_inner_content(|w| {
                                    let c = a.channels.to_string();
                                    w.create_element("AudioChannelConfiguration")
                                        .with_attribute((
                                            "schemeIdUri",
                                            "urn:mpeg:mpegB:cicp:ChannelConfiguration",
                                        ))
                                        .with_attribute(("value", c.as_str()))
                                        .write_empty()?;
                                    Ok(())
                                })?;
                            Ok(())
                        })?;
                    Ok(())
                })?;
        }
        Ok(())
    })
    .map_err(&ser)?;
    String::from_utf8(w.into_inner().into_inner()).map_err(|e| ser(std::io::Error::other(e)))
}

/// A `SegmentTemplate` with `$Number$` names from `start_number` and a `SegmentTimeline` of
/// `(t, d)` entries in `timescale` units.
fn segment_template<W: std::io::Write>(
    w: &mut Writer<W>,
    timescale: &str,
    presentation_time_offset: &str,
    start_number: &str,
    timeline: impl Iterator<Item = (u64, u64)>,
) -> std::io::Result<()> {
    let init = format!("$RepresentationID$/{INIT_NAME}");
    w.create_element("SegmentTemplate")
        .with_attribute(("timescale", timescale))
        .with_attribute(("presentationTimeOffset", presentation_time_offset))
        .with_attribute(("initialization", init.as_str()))
        .with_attribute(("media", "$RepresentationID$/seg_$Number%05d$.m4s"))
        .with_attribute(("startNumber", start_number))
        .write_inner_content(|w| {
            w.create_element("SegmentTimeline")
                .write_inner_content(|w| {
                    for (t, d) in timeline {
                        let (t, d) = (t.to_string(), d.to_string());
                        w.create_element("S")
                            .with_attribute(("t", t.as_str()))
                            .with_attribute(("d", d.as_str()))
                            .write_empty()?;
                    }
                    Ok::<(), std::io::Error>(())
                })?;
            Ok::<(), std::io::Error>(())
        })?;
    Ok(())
}
