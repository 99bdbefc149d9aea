//! Order-preserving parallel map over the cores, for independent pieces of work whose results
//! are then combined in their original order (so a parallel sum adds in the same order as a
//! sequential one).

use std::sync::atomic::{AtomicUsize, Ordering};

/// `items.map(f)` computed on up to [`crate::score::threads`] threads, results in the order of
/// `items`. Items are handed out one at a time, so uneven costs balance.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = crate::score::threads().min(items.len()).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else {
                return done;
            };
            done.push((i, f(item)));
        }
    };
    let mut all: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for h in handles {
            match h.join() {
                Ok(part) => all.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all
    });
    all.sort_unstable_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_the_order_of_the_items() {
        let items: Vec<u64> = (0..1000).collect();
        let out = super::map(&items, |&v| v * v + 1);
        let expected: Vec<u64> = items.iter().map(|&v| v * v + 1).collect();
        assert_eq!(out, expected);
        assert!(super::map(&[] as &[u64], |&v| v).is_empty());
    }
}
