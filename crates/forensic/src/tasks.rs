//! The run's work as tasks on a fixed number of threads, and what the tasks share: the
//! package's all-A and all-B streams, rendered once and decoded once.
//!
//! A leak that is served bytes unchanged (no attack, collusion by picking whole segments, a
//! random codeword) is, frame for frame, the all-A stream at its A positions and the all-B
//! stream at its B positions: every segment starts with an IDR picture and references nothing
//! before it, so decoding the spliced file gives the same pictures as splicing the decoded
//! streams. Such leaks are therefore decided on frames spliced from the two decodes
//! ([`Uniform::splice`]) instead of each decoding its own file.

use crate::ForensicError;
use crate::error::chain;
use crate::stream::Package;
use leaktrace_core::{Position, Variant};
use leaktrace_detect::frames::SuspectFrames;
use leaktrace_reference::Reference;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// One unit of work.
pub(crate) type Task<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Runs `tasks` on `threads` threads, in the given order: each thread takes the next task
/// when it is free, so the order is the schedule (long tasks first keeps both busy to the end).
pub(crate) fn run(threads: usize, tasks: Vec<Task<'_>>) {
    let queue = Mutex::new(VecDeque::from(tasks));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let next = match queue.lock() {
                        Ok(mut q) => q.pop_front(),
                        Err(_) => None,
                    };
                    let Some(task) = next else { break };
                    task();
                }
            });
        }
    });
}

/// A result kept for whichever task asks first; the error as text (it is shared).
type Once<T> = OnceLock<Result<T, String>>;

/// The package's stream of one variant at every position (all A, all B): rendered once for
/// the invisibility measurements, decoded once for the leaks that are served bytes unchanged.
pub(crate) struct Uniform<'a> {
    pkg: &'a Package,
    work: PathBuf,
    files: [Once<PathBuf>; 2],
    frames: [Once<SuspectFrames>; 2],
}

fn slot(v: Variant) -> usize {
    match v {
        Variant::A => 0,
        Variant::B => 1,
    }
}

fn shared<T>(r: &Result<T, String>) -> Result<&T, ForensicError> {
    r.as_ref().map_err(|e| ForensicError::Invalid(e.clone()))
}

impl<'a> Uniform<'a> {
    /// Nothing rendered or decoded yet; files go into `work`.
    pub(crate) fn new(pkg: &'a Package, work: &Path) -> Self {
        Self {
            pkg,
            work: work.to_path_buf(),
            files: [OnceLock::new(), OnceLock::new()],
            frames: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The stream of `v` at every position (`all-a.mp4`, `all-b.mp4`), rendered on first use.
    pub(crate) fn file(&self, v: Variant) -> Result<&Path, ForensicError> {
        let r = self.files[slot(v)].get_or_init(|| {
            let f = self.work.join(format!("all-{}.mp4", v.dir()));
            let all = vec![v; self.pkg.positions as usize];
            self.pkg.render(&all, &f).map(|()| f).map_err(|e| chain(&e))
        });
        shared(r).map(PathBuf::as_path)
    }

    /// The working frames of [`Uniform::file`], decoded on first use.
    fn frames(&self, v: Variant) -> Result<&SuspectFrames, ForensicError> {
        let r = self.frames[slot(v)].get_or_init(|| {
            let f = self.file(v).map_err(|e| chain(&e))?;
            SuspectFrames::read(f).map_err(|e| chain(&ForensicError::Detect(e)))
        });
        shared(r)
    }

    /// The working frames of the stream that serves `variants[p]` at position `p`, spliced
    /// frame by frame from the decoded all-A and all-B streams; the frames of each position
    /// are counted by the reference index. An error when the counts do not add up to the
    /// decoded streams (the caller then decodes the leak itself).
    pub(crate) fn splice(
        &self,
        variants: &[Variant],
        reference: &Reference,
    ) -> Result<SuspectFrames, ForensicError> {
        let (a, b) = (self.frames(Variant::A)?, self.frames(Variant::B)?);
        let mut pick = Vec::with_capacity(a.len());
        for (p, v) in variants.iter().enumerate() {
            let stats = u32::try_from(p)
                .ok()
                .and_then(|p| reference.position(Position::new(p)))
                .ok_or_else(|| {
                    ForensicError::Invalid(format!("position {p} is not in the reference index"))
                })?;
            pick.extend(std::iter::repeat_n(slot(*v), stats.frames as usize));
        }
        if pick.len() != a.len() {
            return Err(ForensicError::Invalid(format!(
                "the reference index counts {} frames in {} positions, the all-A stream decodes to {}",
                pick.len(),
                variants.len(),
                a.len()
            )));
        }
        SuspectFrames::splice(&[a, b], &pick).map_err(ForensicError::Detect)
    }
}
