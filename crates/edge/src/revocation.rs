//! The revoked sessions, followed from the store's audit trail without a database round trip
//! per request.
//!
//! [`Revocations::sync`] reads the events recorded after the highest `seq` it has applied, plus,
//! on PostgreSQL, those of the last [`LOOK_BACK`] (there an event can commit after one with a
//! higher `seq`); each event applies to its session only if it is newer than the last one applied
//! there, so reading an event twice changes nothing. The edge runs it every
//! [`EdgeConfig::revocation_poll`](crate::EdgeConfig::revocation_poll) (1 s by default), so a
//! revocation reaches every request within that interval plus one read.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use leaktrace_store::{Backend, RevocationAction, RevocationEvent, Store, StoreError};

/// How far back in time each read looks for events that committed late.
pub const LOOK_BACK: Duration = Duration::from_secs(30);

/// Events read per query.
const PAGE: u32 = 10_000;

#[derive(Debug, Default)]
struct Inner {
    /// The last event applied per session: its `seq`, and whether it left the session revoked.
    sessions: HashMap<Box<str>, (i64, bool)>,
    /// Whether the current list was loaded.
    loaded: bool,
}

/// The revoked sessions as the edge knows them.
#[derive(Debug, Default)]
pub struct Revocations {
    inner: RwLock<Inner>,
    /// The highest `seq` read.
    watermark: AtomicI64,
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Revocations {
    /// Whether `session` is revoked (as of the last [`Revocations::sync`]).
    pub fn is_revoked(&self, session: &str) -> bool {
        self.inner
            .read()
            .is_ok_and(|i| i.sessions.get(session).is_some_and(|&(_, revoked)| revoked))
    }

    /// How many sessions are revoked now.
    pub fn revoked_count(&self) -> usize {
        self.inner
            .read()
            .map_or(0, |i| i.sessions.values().filter(|&&(_, r)| r).count())
    }

    /// Brings the list up to date with the store: the whole current list the first time, then
    /// the events since. Returns the number of sessions whose state changed.
    ///
    /// # Errors
    /// The store's, when it cannot be read; the list keeps what it had.
    pub async fn sync(&self, store: &Store) -> Result<usize, StoreError> {
        let loaded = self.inner.read().is_ok_and(|i| i.loaded);
        let mut changed = 0;
        if !loaded {
            // The watermark first: an event recorded during the load is read again below.
            let watermark = store.last_revocation_seq().await?;
            let mut current = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store.revoked_sessions(after.as_deref(), PAGE).await?;
                let full = page.len() == PAGE as usize;
                after = page.last().map(|r| r.session_id.clone());
                current.extend(page);
                if !full {
                    break;
                }
            }
            if let Ok(mut inner) = self.inner.write() {
                for r in current {
                    let e = inner
                        .sessions
                        .entry(r.session_id.into())
                        .or_insert((0, false));
                    if r.seq > e.0 {
                        changed += usize::from(!e.1);
                        *e = (r.seq, true);
                    }
                }
                self.watermark.fetch_max(watermark, Ordering::SeqCst);
                inner.loaded = true;
            }
        }
        // What follows the highest seq applied.
        loop {
            let watermark = self.watermark.load(Ordering::SeqCst);
            let events = store.revocation_events(watermark, 0, PAGE).await?;
            let full = events.len() == PAGE as usize;
            changed += self.apply(events);
            if !full {
                break;
            }
        }
        // PostgreSQL only: the last seconds again, from the start of the trail, for events
        // that committed after one with a higher seq. SQLite commits one writer at a time, so
        // seq order is commit order there.
        if store.backend() == Backend::Postgres {
            let since = now_unix().saturating_sub(LOOK_BACK.as_secs() as i64);
            let mut after = 0;
            loop {
                let events = store.revocation_events(after, since, PAGE).await?;
                let full = events.len() == PAGE as usize;
                after = events.last().map_or(after, |e| e.seq);
                changed += self.apply(events);
                if !full {
                    break;
                }
            }
        }
        Ok(changed)
    }

    /// Applies the events that are newer than what their session holds; returns how many
    /// sessions changed state. Events applied already (the look-back re-reads them) leave the
    /// list, and its lock that every request reads, alone.
    fn apply(&self, mut events: Vec<RevocationEvent>) -> usize {
        if let Some(top) = events.iter().map(|e| e.seq).max() {
            self.watermark.fetch_max(top, Ordering::SeqCst);
        }
        if let Ok(inner) = self.inner.read() {
            events.retain(|ev| {
                inner
                    .sessions
                    .get(ev.session_id.as_str())
                    .is_none_or(|&(seq, _)| ev.seq > seq)
            });
        }
        if events.is_empty() {
            return 0;
        }
        let Ok(mut inner) = self.inner.write() else {
            return 0;
        };
        let mut changed = 0;
        for ev in events {
            let revoked = ev.action == RevocationAction::Revoke;
            let e = inner
                .sessions
                .entry(ev.session_id.into())
                .or_insert((0, false));
            if ev.seq > e.0 {
                changed += usize::from(e.1 != revoked);
                *e = (ev.seq, revoked);
            }
        }
        changed
    }
}
