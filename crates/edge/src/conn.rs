//! Connection limits: the global and per-address connection caps, and the deadlines of one
//! connection (request headers, idle keep-alive, undrained responses); and the zero-copy send
//! of cached files (see [`SendFrom`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::auth::AuthMemo;
use crate::package::FileEntry;

/// Bytes a stalled client must take to restart the write clock (see [`Guarded`]).
pub(crate) const WRITE_PROGRESS: u64 = 1 << 20;

/// What is answered, when possible, on a connection refused for a cap (then it is closed).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nCache-Control: no-store\r\nRetry-After: 1\r\n\r\n";

/// The time limits of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// From the first byte of a request (or the accept) to the end of its headers.
    pub header: Duration,
    /// From the end of a response to the first byte of the next request.
    pub idle: Duration,
    /// How long queued response bytes may wait for the client (see [`Guarded`]).
    pub write: Duration,
}

/// The client key of a peer address: IPv4 as is, IPv6 by its /64 prefix (one subscriber's
/// allocation), IPv4-mapped IPv6 as IPv4.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// Open connections, in total and per client address.
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    max_per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One connection's place in [`Slots`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    slots: Arc<Slots>,
    client: IpAddr,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Every connection slot is taken.
    Global,
    /// This client address has its share.
    Client,
}

impl Slots {
    pub(crate) fn new(max: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max: max.max(1),
            max_per_client: max_per_client.max(1),
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// Takes a slot for a connection from `peer`, unless a cap is reached.
    pub(crate) fn take(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Full> {
        let client = client_key(peer);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_client) = &mut *open;
        if *total >= self.max {
            return Err(Full::Global);
        }
        let mine = per_client.entry(client).or_insert(0);
        if *mine >= self.max_per_client {
            return Err(Full::Client);
        }
        *mine += 1;
        *total += 1;
        Ok(Slot {
            slots: self.clone(),
            client,
        })
    }

    /// Open connections now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.open.lock().map_or(0, |o| o.0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, per_client) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

/// Refuses a connection without reading from it: one non-blocking write of a 503, then close.
pub(crate) fn refuse(stream: TcpStream) {
    let _ = stream.try_write(REFUSAL);
    drop(stream);
}

/// Marks a response whose body is (a slice of) the cached bytes of this entry: the connection
/// may send the parts the edge does not rewrite from the entry's open file (`sendfile`). A
/// response extension, set by the request handling and taken by the server.
#[derive(Debug, Clone)]
pub(crate) struct SendFrom(pub Arc<FileEntry>);

/// Most cached files a connection has queued for a zero-copy send at once (pipelined
/// responses); older ones are then written from memory.
const MAX_SENDS: usize = 4;

/// What the request handling tells the connection's deadlines and writes.
#[derive(Debug)]
pub(crate) struct ConnShared {
    epoch: Instant,
    /// Requests started on this connection.
    requests: AtomicUsize,
    /// A request is being answered (its head is in, its body not finished).
    busy: AtomicBool,
    /// When the last response body finished, in ms since `epoch`.
    idle_since_ms: AtomicU64,
    /// Cached files whose bytes responses have queued (see [`SendFrom`]); cleared when
    /// everything queued is written.
    sends: Mutex<Vec<Arc<FileEntry>>>,
    /// The last token checked on this connection.
    pub(crate) auth: AuthMemo,
}

impl ConnShared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            requests: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            sends: Mutex::new(Vec::new()),
            auth: AuthMemo::default(),
        })
    }

    /// A response's body comes from `entry`'s cached bytes: lets the connection send its
    /// unchanged parts from the open file, if the entry holds one (checked against the disk
    /// before each send from it, see [`Guarded`]).
    pub(crate) fn send_from(&self, entry: Arc<FileEntry>) {
        if entry.origin().is_none() {
            return;
        }
        let mut sends = self
            .sends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sends.len() >= MAX_SENDS {
            sends.remove(0);
        }
        sends.push(entry);
    }

    /// A request's head is complete; returns how many requests this connection has started.
    pub(crate) fn begin_request(&self) -> usize {
        self.busy.store(true, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The response body is finished (or dropped).
    fn end_request(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.idle_since_ms.store(ms, Ordering::Relaxed);
        self.busy.store(false, Ordering::Relaxed);
    }

    fn idle_since(&self) -> Instant {
        self.epoch + Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed))
    }
}

/// A response body that tells the connection when it is finished (dropped by hyper).
pub(crate) struct Tracked<B> {
    inner: B,
    shared: Arc<ConnShared>,
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, shared: Arc<ConnShared>) -> Self {
        Self { inner, shared }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.shared.end_request();
    }
}

impl<B> HttpBody for Tracked<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A stalled write: when the client stopped taking bytes, and how many it took since.
#[derive(Debug, Clone, Copy)]
struct Stall {
    since: Instant,
    taken: u64,
}

/// A client connection with deadlines.
///
/// * Headers: from the accept, or from the first byte of a later request, its line and headers
///   must arrive within `header`.
/// * Idle: after a response, the next request must start within `idle`.
/// * Write: when the socket stops taking bytes, everything queued (a whole cached file, or a
///   chunk of a streamed one) must be taken within `write`, or at least [`WRITE_PROGRESS`] bytes
///   of it, which restarts the clock.
///
/// A missed deadline fails the read or write with [`io::ErrorKind::TimedOut`], and hyper closes
/// the connection.
pub(crate) struct Guarded {
    io: TcpStream,
    shared: Arc<ConnShared>,
    deadlines: Deadlines,
    /// When the current request head started, and the request count then.
    head: Option<(Instant, usize)>,
    /// When the client last took everything queued.
    last_flush: Instant,
    /// Bytes were written since the last flush (a flush of nothing, as on every wake-up of
    /// the connection, does not restart the idle clock).
    unflushed: bool,
    stall: Option<Stall>,
    read_timer: Pin<Box<Sleep>>,
    read_armed: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_armed: Option<Instant>,
}

/// How the next write of queued response bytes is made.
enum Plan {
    /// As given (no bytes of a file held open).
    Plain,
    /// The first `whole` slices, then `part` bytes of the next one, from memory: what comes
    /// before bytes that are sent from a file. Written with `MSG_MORE`, so the head and first
    /// bytes of a response leave in full packets with the file's bytes that follow them.
    Memory { whole: usize, part: usize },
    /// `count` bytes from `offset` of the entry's open file, which are the first queued bytes.
    File {
        entry: Arc<FileEntry>,
        offset: u64,
        count: usize,
    },
}

/// Most slices written at once from memory (hyper queues at most 64).
const MAX_SLICES: usize = 64;

/// Tells whether `deadline` has passed, with `timer` armed so that the task is woken by then.
///
/// The timer moves only when the deadline comes earlier than where it is armed, or when it
/// fires before a deadline that has since moved later. A connection whose idle deadline moves
/// with every request therefore re-arms its timer about once per deadline period, not once per
/// request (each re-arm is a timer-wheel removal and insertion).
fn passed(
    timer: &mut Pin<Box<Sleep>>,
    armed: &mut Option<Instant>,
    deadline: Instant,
    cx: &mut Context<'_>,
) -> bool {
    if !matches!(*armed, Some(at) if at <= deadline) {
        timer.as_mut().reset(deadline);
        *armed = Some(deadline);
    }
    loop {
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        // Fired at the armed instant: the deadline itself, or an earlier one it moved from.
        if *armed == Some(deadline) {
            return true;
        }
        timer.as_mut().reset(deadline);
        *armed = Some(deadline);
    }
}

/// A write that failed because the socket was not writable after all (readiness cleared) or
/// was interrupted: it is tried again.
fn write_again(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} deadline passed"))
}

impl Guarded {
    pub(crate) fn new(io: TcpStream, shared: Arc<ConnShared>, deadlines: Deadlines) -> Self {
        let now = Instant::now();
        Self {
            io,
            shared,
            deadlines,
            head: Some((now, 0)),
            last_flush: now,
            unflushed: false,
            stall: None,
            read_timer: Box::pin(tokio::time::sleep_until(now + deadlines.header)),
            read_armed: None,
            write_timer: Box::pin(tokio::time::sleep_until(now + deadlines.write)),
            write_armed: None,
        }
    }

    /// The head in progress, if it belongs to the request not yet started.
    fn current_head(&mut self) -> Option<Instant> {
        let started = self.shared.requests.load(Ordering::Relaxed);
        match self.head {
            Some((at, n)) if n == started => Some(at),
            _ => {
                self.head = None;
                None
            }
        }
    }

    /// When reading must have made the next step: `None` while a request is being answered or
    /// a response waits for the client (the write deadline covers that).
    fn read_deadline(&mut self) -> Option<Instant> {
        if self.shared.busy.load(Ordering::Relaxed) || self.stall.is_some() {
            return None;
        }
        match self.current_head() {
            Some(at) => Some(at + self.deadlines.header),
            None => Some(self.shared.idle_since().max(self.last_flush) + self.deadlines.idle),
        }
    }

    fn wrote(&mut self, n: usize) {
        self.unflushed = true;
        if let Some(stall) = &mut self.stall {
            stall.taken = stall.taken.saturating_add(n as u64);
            if stall.taken >= WRITE_PROGRESS {
                self.stall = None;
            }
        }
    }

    /// Where the next write of `bufs` comes from: queued bytes that lie in the cached bytes of
    /// an entry registered with [`ConnShared::send_from`] (the same memory, so the same bytes)
    /// are sent from its open file, except rewritten ranges and short runs, while that file has
    /// the size and mtime the cached bytes were read with (one `fstat` before each send from
    /// the file). Anything else, the response head included, is written from memory.
    fn plan(&self, bufs: &[io::IoSlice<'_>]) -> Plan {
        let sends = self
            .shared
            .sends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if sends.is_empty() {
            return Plan::Plain;
        }
        for (i, buf) in bufs.iter().enumerate().take(MAX_SLICES) {
            if buf.is_empty() {
                continue;
            }
            let at = buf.as_ptr().addr();
            let found = sends.iter().find_map(|entry| {
                let cached = entry.bytes.as_deref()?;
                let offset = at.checked_sub(cached.as_ptr().addr())?;
                (offset.checked_add(buf.len())? <= cached.len()).then_some((entry, offset as u64))
            });
            let Some((entry, offset)) = found else {
                continue;
            };
            let Some(origin) = entry.origin() else {
                return Plan::Plain;
            };
            let memory = origin.memory_len(offset, buf.len());
            if memory > 0 {
                if memory < buf.len() {
                    return Plan::Memory {
                        whole: i,
                        part: memory,
                    };
                }
                continue;
            }
            if bufs.iter().take(i).any(|b| !b.is_empty()) {
                return Plan::Memory { whole: i, part: 0 };
            }
            // Checked before every send from the file: a file changed on disk since the
            // response was queued (rewritten in place) no longer holds the cached bytes.
            if entry.unchanged_origin().is_none() {
                return Plan::Plain;
            }
            return Plan::File {
                entry: entry.clone(),
                offset,
                count: origin.run_len(offset, buf.len()),
            };
        }
        Plan::Plain
    }

    /// Sends `count` bytes from `offset` of `entry`'s open file into the socket (`sendfile`,
    /// non-blocking: a partial count, or pending until the socket takes more). Fails if the
    /// file no longer has its size and mtime after the send (see [`Self::plan`]).
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        entry: &FileEntry,
        offset: u64,
        count: usize,
    ) -> Poll<io::Result<usize>> {
        let Some(origin) = entry.origin() else {
            return Poll::Ready(Err(io::Error::other("no open file to send from")));
        };
        loop {
            if let Err(e) = std::task::ready!(self.poll_socket_writable(cx)) {
                return Poll::Ready(Err(e));
            }
            let sock = &self.io;
            let sent = sock.try_io(Interest::WRITABLE, || {
                let mut at = offset;
                rustix::fs::sendfile(sock, origin.file(), Some(&mut at), count)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    )));
                }
                // The file changed during the send: the bytes just sent may be its new ones,
                // which the cached head and ETag do not describe. They cannot be taken back, so
                // the connection is closed and the client sees a body short of its length.
                Ok(_) if entry.unchanged_origin().is_none() => {
                    return Poll::Ready(Err(io::Error::other("file changed while being sent")));
                }
                Ok(n) => {
                    self.wrote(n);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if write_again(&e) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Writes `bufs` from memory.
    fn poll_write_memory(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                self.wrote(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.write_stalled(cx) => {
                tracing::debug!("closing a connection: response not drained in time");
                Poll::Ready(Err(timed_out("write")))
            }
            other => other,
        }
    }

    /// Ready when the socket takes more bytes; pending until then, or failed once the write
    /// deadline has passed (see [`Guarded`]).
    fn poll_socket_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.io.poll_write_ready(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending if self.write_stalled(cx) => {
                tracing::debug!("closing a connection: response not drained in time");
                Poll::Ready(Err(timed_out("write")))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes `bufs` from memory with `MSG_MORE`: bytes from a file follow them at once, so the
    /// kernel holds a partial last packet for them (as `TCP_CORK` would, without its two
    /// `setsockopt` calls per response).
    fn poll_write_more(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Err(e) = std::task::ready!(self.poll_socket_writable(cx)) {
                return Poll::Ready(Err(e));
            }
            let sock = &self.io;
            let sent = sock.try_io(Interest::WRITABLE, || {
                rustix::net::sendmsg(
                    sock,
                    bufs,
                    &mut rustix::net::SendAncillaryBuffer::default(),
                    rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
                )
                .map_err(io::Error::from)
            });
            match sent {
                Ok(n) => {
                    self.wrote(n);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if write_again(&e) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// A write is pending: start the clock (if not running) and tell whether it ran out.
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> bool {
        let since = self
            .stall
            .get_or_insert(Stall {
                since: Instant::now(),
                taken: 0,
            })
            .since;
        let deadline = since + self.deadlines.write;
        passed(&mut self.write_timer, &mut self.write_armed, deadline, cx)
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && !this.shared.busy.load(Ordering::Relaxed)
                    && this.current_head().is_none()
                {
                    let started = this.shared.requests.load(Ordering::Relaxed);
                    this.head = Some((Instant::now(), started));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match this.read_deadline() {
                Some(deadline)
                    if passed(&mut this.read_timer, &mut this.read_armed, deadline, cx) =>
                {
                    let what = if this.head.is_some() {
                        "request header"
                    } else {
                        "idle"
                    };
                    tracing::debug!(deadline = what, "closing a connection");
                    Poll::Ready(Err(timed_out(what)))
                }
                Some(_) => Poll::Pending,
                None => {
                    // No deadline while a request is answered, but hyper may have read for the
                    // last time before the response ends, and would not read again before the
                    // client sends a byte: the timer wakes the connection to look again. No
                    // idle deadline can come sooner than one idle timeout from now.
                    let again = Instant::now() + this.deadlines.idle;
                    passed(&mut this.read_timer, &mut this.read_armed, again, cx);
                    Poll::Pending
                }
            },
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.wrote(n);
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.write_stalled(cx) => {
                tracing::debug!("closing a connection: response not drained in time");
                Poll::Ready(Err(timed_out("write")))
            }
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.plan(bufs) {
            Plan::Plain => this.poll_write_memory(cx, bufs),
            Plan::File {
                entry,
                offset,
                count,
            } => this.poll_send_file(cx, &entry, offset, count),
            Plan::Memory { whole, part } => {
                let mut slices = [io::IoSlice::new(&[]); MAX_SLICES];
                let mut n = 0;
                for (slot, buf) in slices.iter_mut().zip(bufs.iter().take(whole)) {
                    *slot = *buf;
                    n += 1;
                }
                if part > 0
                    && let (Some(slot), Some(cut)) = (
                        slices.get_mut(n),
                        bufs.get(whole).and_then(|b| b.get(..part)),
                    )
                {
                    *slot = io::IoSlice::new(cut);
                    n += 1;
                }
                this.poll_write_more(cx, slices.get(..n).unwrap_or_default())
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    /// hyper flushes once everything it queued is written: the client took it all.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            this.stall = None;
        }
        if matches!(r, Poll::Ready(Ok(()))) && this.unflushed {
            this.unflushed = false;
            this.last_flush = Instant::now();
            // Everything queued is written: no queued bytes lie in a registered file's.
            let mut sends = this
                .shared
                .sends
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sends.clear();
        }
        r
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn clients_are_keyed_by_address_and_ipv6_prefix() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    }

    #[test]
    fn slots_cap_per_client_and_in_total() {
        let slots = Slots::new(5, 2);
        let one = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let two = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let a = slots.take(one).unwrap();
        let _b = slots.take(one).unwrap();
        assert_eq!(slots.take(one).unwrap_err(), Full::Client);
        let c = slots.take(two).unwrap();
        let _d = slots.take(two).unwrap();
        let _e = slots.take(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3))).unwrap();
        assert_eq!(
            slots
                .take(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4)))
                .unwrap_err(),
            Full::Global
        );
        drop(a);
        assert_eq!(slots.open(), 4);
        let _a = slots.take(one).unwrap();
        drop(c);
        assert!(slots.take(two).is_ok());
    }
}
