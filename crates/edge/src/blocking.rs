//! LL-HLS blocking playlist reloads (RFC 8216bis section 6.2.5.2).
//!
//! A live channel with low-latency parts advertises `EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES`.
//! A player then asks for the next playlist ahead of time, `playlist.m3u8?_HLS_msn=M&_HLS_part=P`,
//! and the edge holds the request until the playlist on disk holds segment `M` (part `P` of it),
//! instead of the player polling. [`BlockingRequest::parse`] reads the query,
//! [`PlaylistState::read`] what a playlist holds, and [`BlockingRequest::check`] decides: serve
//! it, wait, or refuse a request too far ahead (400). A request still waiting after three
//! target durations gets 503.
//!
//! ```
//! use leaktrace_edge::blocking::{Availability, BlockingRequest, PlaylistState};
//!
//! let playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:40\n\
//!     #EXTINF:2.0,\nseg_00040.m4s\n\
//!     #EXT-X-PART:DURATION=0.5,URI=\"seg_00041.p0.m4s\",INDEPENDENT=YES\n";
//! let held = PlaylistState::read(playlist).unwrap();
//! let ask = |q| BlockingRequest::parse(q).unwrap().unwrap();
//! assert_eq!(ask("_HLS_msn=41&_HLS_part=0").check(&held), Availability::Ready);
//! assert_eq!(ask("_HLS_msn=41&_HLS_part=1").check(&held), Availability::Wait);
//! assert_eq!(ask("_HLS_msn=41").check(&held), Availability::Wait);
//! assert_eq!(ask("_HLS_msn=90").check(&held), Availability::TooFar);
//! ```

/// Segments past the playlist's last one a request may ask for (RFC 8216bis: two).
const MAX_SEGMENTS_AHEAD: u64 = 2;

/// A blocking playlist reload: the Media Sequence Number and, optionally, the part wanted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockingRequest {
    /// `_HLS_msn`.
    pub msn: u64,
    /// `_HLS_part`.
    pub part: Option<u64>,
}

/// What the playlist on disk holds for the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    /// It holds what was asked for: serve it.
    Ready,
    /// Not yet: hold the request.
    Wait,
    /// Further ahead than a player may ask (400).
    TooFar,
}

/// Why a query is not a valid blocking request (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad blocking playlist reload: {0}")]
pub struct BadBlockingRequest(&'static str);

impl BlockingRequest {
    /// The blocking request in a query string, `None` when it has no `_HLS_msn` (an ordinary
    /// request). `_HLS_part` without `_HLS_msn`, or values that are not decimal integers, are
    /// errors.
    pub fn parse(query: &str) -> Result<Option<Self>, BadBlockingRequest> {
        let (mut msn, mut part) = (None, None);
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match k {
                "_HLS_msn" => &mut msn,
                "_HLS_part" => &mut part,
                _ => continue,
            };
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadBlockingRequest(
                    "_HLS_msn and _HLS_part are decimal integers",
                ));
            }
            *slot = v.parse::<u64>().ok();
        }
        match (msn, part) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(BadBlockingRequest("_HLS_part without _HLS_msn")),
            (Some(msn), part) => Ok(Some(Self { msn, part })),
        }
    }

    /// Whether `held` satisfies the request. A part number past the last part of a complete
    /// segment asks for the next segment's first part.
    pub fn check(&self, held: &PlaylistState) -> Availability {
        if held.ended {
            return Availability::Ready;
        }
        let last = held.next_msn.saturating_sub(1) + u64::from(held.open_parts > 0);
        if self.msn > last.saturating_add(MAX_SEGMENTS_AHEAD) {
            return Availability::TooFar;
        }
        let ready = match self.part {
            None => self.msn < held.next_msn,
            Some(p) => {
                self.msn + 1 < held.next_msn
                    || (self.msn + 1 == held.next_msn
                        && (p < held.last_parts || held.open_parts > 0 || held.last_parts == 0))
                    || (self.msn == held.next_msn && p < held.open_parts)
            }
        };
        if ready {
            Availability::Ready
        } else {
            Availability::Wait
        }
    }
}

/// What an HLS media playlist holds, as far as blocking reloads care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaylistState {
    /// `EXT-X-TARGETDURATION`, seconds.
    pub target_duration: u64,
    /// The Media Sequence Number after the last complete segment.
    pub next_msn: u64,
    /// Parts listed for the last complete segment.
    pub last_parts: u64,
    /// Parts listed after the last complete segment (the segment being published).
    pub open_parts: u64,
    /// `EXT-X-ENDLIST`: nothing more will come.
    pub ended: bool,
}

impl PlaylistState {
    /// Reads a media playlist; `None` when it is not one (no `EXT-X-TARGETDURATION`).
    pub fn read(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (mut target, mut sequence, mut segments) = (None, 0u64, 0u64);
        let (mut parts, mut last_parts, mut ended) = (0u64, 0u64, false);
        for line in text.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                target = v.trim().parse::<u64>().ok();
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                sequence = v.trim().parse().unwrap_or(0);
            } else if line.starts_with("#EXT-X-PART:") {
                parts += 1;
            } else if line == "#EXT-X-ENDLIST" {
                ended = true;
            } else if !line.is_empty() && !line.starts_with('#') {
                segments += 1;
                last_parts = parts;
                parts = 0;
            }
        }
        Some(Self {
            target_duration: target?,
            next_msn: sequence.saturating_add(segments),
            last_parts,
            open_parts: parts,
            ended,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playlist(complete: &[(u64, u64)], open: u64) -> Vec<u8> {
        let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n");
        s.push_str(&format!("#EXT-X-MEDIA-SEQUENCE:{}\n", complete[0].0));
        for &(msn, parts) in complete {
            for j in 0..parts {
                s.push_str(&format!(
                    "#EXT-X-PART:DURATION=0.5,URI=\"seg_{msn:05}.p{j}.m4s\"\n"
                ));
            }
            s.push_str(&format!("#EXTINF:2.0,\nseg_{msn:05}.m4s\n"));
        }
        let next = complete.last().map_or(0, |c| c.0 + 1);
        for j in 0..open {
            s.push_str(&format!(
                "#EXT-X-PART:DURATION=0.5,URI=\"seg_{next:05}.p{j}.m4s\"\n"
            ));
        }
        s.into_bytes()
    }

    #[test]
    fn queries_are_parsed_or_refused() {
        assert_eq!(BlockingRequest::parse("wmt=abc"), Ok(None));
        assert_eq!(BlockingRequest::parse(""), Ok(None));
        assert_eq!(
            BlockingRequest::parse("_HLS_msn=12&_HLS_part=3&wmt=x"),
            Ok(Some(BlockingRequest {
                msn: 12,
                part: Some(3)
            }))
        );
        for bad in [
            "_HLS_part=1",
            "_HLS_msn=-1",
            "_HLS_msn=",
            "_HLS_msn=1e3",
            "_HLS_msn=99999999999999999999",
            "_HLS_msn=1&_HLS_part=x",
        ] {
            assert!(BlockingRequest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_wait_for_the_segment_or_part_they_name() {
        // Segments 10..=12 complete with 4 parts each, two parts of 13 out.
        let held = PlaylistState::read(&playlist(&[(10, 4), (11, 4), (12, 4)], 2)).unwrap();
        assert_eq!(
            held,
            PlaylistState {
                target_duration: 2,
                next_msn: 13,
                last_parts: 4,
                open_parts: 2,
                ended: false
            }
        );
        let at = |msn, part| BlockingRequest { msn, part }.check(&held);
        assert_eq!(at(12, None), Availability::Ready);
        assert_eq!(at(13, None), Availability::Wait);
        assert_eq!(at(13, Some(1)), Availability::Ready);
        assert_eq!(at(13, Some(2)), Availability::Wait);
        // Part 4 of a complete 4-part segment is the next one's first: out already.
        assert_eq!(at(12, Some(4)), Availability::Ready);
        assert_eq!(at(15, Some(0)), Availability::Wait);
        assert_eq!(at(16, None), Availability::TooFar);
        // A playlist without parts: a part number asks for the segment.
        let plain = PlaylistState::read(&playlist(&[(3, 0), (4, 0)], 0)).unwrap();
        let at = |msn, part| BlockingRequest { msn, part }.check(&plain);
        assert_eq!(at(4, Some(0)), Availability::Ready);
        assert_eq!(at(5, Some(0)), Availability::Wait);
        // An ended playlist answers at once.
        let mut ended = playlist(&[(3, 0)], 0);
        ended.extend_from_slice(b"#EXT-X-ENDLIST\n");
        let ended = PlaylistState::read(&ended).unwrap();
        assert_eq!(
            BlockingRequest { msn: 4, part: None }.check(&ended),
            Availability::Ready
        );
        assert_eq!(
            PlaylistState::read(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n"),
            None
        );
    }
}
