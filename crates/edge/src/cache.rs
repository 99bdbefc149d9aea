//! A cache bounded by bytes, with CLOCK (second-chance) eviction.
//!
//! Every entry is charged its key's bytes, the bytes its value owns, and a fixed bookkeeping
//! cost (slot, index entry, hash-table control bytes). An insert that would exceed the bound
//! evicts entries first: the clock hand sweeps the slots, clearing the "referenced" mark of
//! entries read since the last sweep and evicting the first unmarked one. New entries start
//! unmarked, so a flood of keys that are never asked for again (random missing names, one-off
//! tokens) evicts its own entries first and cannot push the cache past its bound; entries that
//! are read between sweeps survive it.

use std::collections::HashMap;
use std::hash::Hash;
use std::mem::{size_of, size_of_val};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Bookkeeping charged per entry on top of the slot and index sizes (hash-table control bytes,
/// `Arc` counts, allocator rounding), generously.
const ENTRY_OVERHEAD: usize = 64;

struct Slot<K: ?Sized, V> {
    key: Arc<K>,
    value: V,
    cost: u64,
    referenced: AtomicBool,
}

struct Inner<K: ?Sized, V> {
    index: HashMap<Arc<K>, usize>,
    slots: Vec<Slot<K, V>>,
    hand: usize,
    bytes: u64,
}

/// A map from `K` to `V` holding at most `limit` bytes (as charged, see the module
/// documentation).
pub(crate) struct ByteCache<K: ?Sized, V> {
    inner: RwLock<Inner<K, V>>,
    limit: u64,
    bytes: AtomicU64,
}

impl<K: ?Sized, V> std::fmt::Debug for ByteCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteCache")
            .field("bytes", &self.bytes.load(Ordering::Relaxed))
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<K: ?Sized + Hash + Eq, V: Clone> ByteCache<K, V> {
    /// An empty cache that holds at most `limit` bytes.
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            inner: RwLock::new(Inner {
                index: HashMap::new(),
                slots: Vec::new(),
                hand: 0,
                bytes: 0,
            }),
            limit,
            bytes: AtomicU64::new(0),
        }
    }

    /// Bytes charged now (always at most the limit).
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The value of `key`, marking it as used.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let inner = self.inner.read().ok()?;
        let slot = inner.slots.get(*inner.index.get(key)?)?;
        // Only write the mark when it changes: hits on hot entries stay read-only.
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(slot.value.clone())
    }

    /// What an entry with this key and a value owning `value_heap` bytes is charged.
    fn cost(key: &K, value_heap: usize) -> u64 {
        let bytes = size_of_val(key)
            .saturating_add(value_heap)
            .saturating_add(size_of::<Slot<K, V>>())
            .saturating_add(size_of::<(Arc<K>, usize)>())
            .saturating_add(ENTRY_OVERHEAD);
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }

    /// Inserts or replaces `key`'s value; `value_heap` is what the value owns outside itself
    /// (string and buffer contents). Evicts until the cache is within its bound; an entry
    /// larger than the whole bound is not kept.
    pub(crate) fn insert(&self, key: Arc<K>, value: V, value_heap: usize) {
        let cost = Self::cost(&key, value_heap);
        let Ok(mut inner) = self.inner.write() else {
            return;
        };
        if let Some(&i) = inner.index.get(&*key) {
            let old = inner.slots.get(i).map_or(0, |s| s.cost);
            if let Some(slot) = inner.slots.get_mut(i) {
                slot.value = value;
                slot.cost = cost;
            }
            inner.bytes = inner.bytes.saturating_sub(old).saturating_add(cost);
        } else if cost <= self.limit {
            let at = inner.slots.len();
            inner.slots.push(Slot {
                key: key.clone(),
                value,
                cost,
                referenced: AtomicBool::new(false),
            });
            inner.index.insert(key, at);
            inner.bytes = inner.bytes.saturating_add(cost);
        }
        while inner.bytes > self.limit && inner.evict_one() {}
        self.bytes.store(inner.bytes, Ordering::Relaxed);
    }
}

impl<K: ?Sized + Hash + Eq, V> Inner<K, V> {
    /// Evicts one entry (the first the hand finds unmarked); false if the cache is empty.
    fn evict_one(&mut self) -> bool {
        // One sweep clears every mark, so the second one evicts: at most 2n + 1 steps.
        for _ in 0..=2 * self.slots.len() {
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            let Some(slot) = self.slots.get(self.hand) else {
                return false;
            };
            if slot.referenced.swap(false, Ordering::Relaxed) {
                self.hand += 1;
                continue;
            }
            let gone = self.slots.swap_remove(self.hand);
            self.index.remove(&*gone.key);
            if let Some(moved) = self.slots.get(self.hand)
                && let Some(i) = self.index.get_mut(&*moved.key)
            {
                *i = self.hand;
            }
            self.bytes = self.bytes.saturating_sub(gone.cost);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn stays_within_its_bound_and_charges_keys() {
        let c: ByteCache<str, u32> = ByteCache::new(64 * 1024);
        for i in 0..100_000u32 {
            let k = format!("{i:08}-{}", "x".repeat((i % 500) as usize));
            c.insert(key(&k), i, 0);
            assert!(c.bytes() <= 64 * 1024);
        }
        assert!(c.bytes() > 32 * 1024, "{}", c.bytes());
        // A 1 KiB key costs more than 1 KiB.
        let one: ByteCache<str, u32> = ByteCache::new(1 << 20);
        one.insert(key(&"k".repeat(1024)), 1, 0);
        assert!(one.bytes() > 1024);
        // Larger than the bound: not kept.
        let small: ByteCache<str, u32> = ByteCache::new(100);
        small.insert(key(&"k".repeat(1024)), 1, 0);
        assert_eq!(small.bytes(), 0);
        assert_eq!(small.get(&"k".repeat(1024)), None);
    }

    #[test]
    fn replacing_keeps_one_entry() {
        let c: ByteCache<str, u32> = ByteCache::new(1 << 20);
        c.insert(key("a"), 1, 0);
        let one = c.bytes();
        c.insert(key("a"), 2, 0);
        assert_eq!(c.bytes(), one);
        assert_eq!(c.get("a"), Some(2));
        c.insert(key("a"), 3, 1000);
        assert_eq!(c.bytes(), one + 1000);
    }

    #[test]
    fn entries_in_use_survive_a_flood_of_one_off_keys() {
        let c: ByteCache<str, u32> = ByteCache::new(256 * 1024);
        for i in 0..100 {
            c.insert(key(&format!("hot-{i}")), i, 0);
        }
        for round in 0..2000u32 {
            for i in 0..100 {
                assert_eq!(c.get(&format!("hot-{i}")), Some(i), "round {round}");
            }
            for j in 0..50u32 {
                c.insert(key(&format!("flood-{round}-{j}-{}", "y".repeat(200))), j, 0);
            }
        }
        assert!(c.bytes() <= 256 * 1024);
    }

    #[test]
    fn index_follows_swapped_slots() {
        let c: ByteCache<str, usize> = ByteCache::new(20 * 1024);
        for i in 0..10_000usize {
            c.insert(key(&i.to_string()), i, 0);
            // Whatever is still cached maps to its own value.
            for j in i.saturating_sub(20)..=i {
                if let Some(v) = c.get(&j.to_string()) {
                    assert_eq!(v, j);
                }
            }
        }
    }
}
