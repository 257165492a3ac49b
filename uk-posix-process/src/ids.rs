//! Thread and process ids: a bitmap allocator that never hands out 0 and recycles ids.

use alloc::vec::Vec;

/// A process or thread id, as Linux's `pid_t`.
pub type Pid = i32;

/// Thread ids share the number space of process ids (a process's id is the id of its first
/// thread), as in Linux.
pub type Tid = Pid;

/// Largest id handed out by default (Linux's default `pid_max` is 32768: ids 1..=32767).
pub const DEFAULT_MAX_ID: Pid = 32767;

/// Hands out ids in `1..=max`, cyclically: the next search starts after the id handed out
/// last, so a freed id is reused only after the others have been tried (as Linux does, so a
/// stale id held by a caller does not name a new thread at once). 0 is never handed out
/// (Unikraft 0.11 hands out tid 0).
#[derive(Debug)]
pub struct IdAllocator {
    /// One bit per id; bit `i` set = id `i` in use. Grown on first use.
    bits: Vec<u64>,
    max: Pid,
    last: Pid,
    used: usize,
}

impl IdAllocator {
    /// An allocator of ids `1..=max` (`max` is clamped to at least 1).
    pub const fn new(max: Pid) -> Self {
        Self {
            bits: Vec::new(),
            max: if max < 1 { 1 } else { max },
            last: 0,
            used: 0,
        }
    }

    /// The largest id this allocator hands out.
    pub fn max(&self) -> Pid {
        self.max
    }

    /// Ids in use.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Whether `id` is in use.
    pub fn contains(&self, id: Pid) -> bool {
        if id < 1 || id > self.max {
            return false;
        }
        let i = id as usize;
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// The next free id, or `None` when every id is in use (or the bitmap cannot be
    /// allocated). Nothing changes on `None`.
    pub fn alloc(&mut self) -> Option<Pid> {
        let words = (self.max as usize) / 64 + 1;
        if self.bits.len() < words {
            self.bits.try_reserve_exact(words - self.bits.len()).ok()?;
            self.bits.resize(words, 0);
        }
        let max = self.max;
        let mut id = self.last;
        for _ in 0..max {
            id = if id >= max { 1 } else { id + 1 };
            let i = id as usize;
            let word = &mut self.bits[i / 64];
            if *word & (1 << (i % 64)) == 0 {
                *word |= 1 << (i % 64);
                self.last = id;
                self.used += 1;
                return Some(id);
            }
        }
        None
    }

    /// Returns `id` to the pool; `false` (and nothing changes) if it was not in use.
    pub fn free(&mut self, id: Pid) -> bool {
        if !self.contains(id) {
            return false;
        }
        let i = id as usize;
        self.bits[i / 64] &= !(1 << (i % 64));
        self.used -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn zero_is_never_handed_out() {
        let mut ids = IdAllocator::new(5);
        let all: Vec<Pid> = core::iter::from_fn(|| ids.alloc()).collect();
        assert_eq!(all, [1, 2, 3, 4, 5]);
        assert_eq!(ids.alloc(), None);
        assert!(!ids.contains(0));
        assert!(!ids.free(0));
    }

    #[test]
    fn ids_are_recycled_after_wrapping() {
        let mut ids = IdAllocator::new(3);
        assert_eq!(ids.alloc(), Some(1));
        assert_eq!(ids.alloc(), Some(2));
        assert!(ids.free(1));
        // Cyclic: 3 comes first, then the freed 1.
        assert_eq!(ids.alloc(), Some(3));
        assert_eq!(ids.alloc(), Some(1));
        assert_eq!(ids.alloc(), None);
        assert!(ids.free(2));
        assert_eq!(ids.alloc(), Some(2));
    }

    #[test]
    fn double_free_changes_nothing() {
        let mut ids = IdAllocator::new(10);
        let a = ids.alloc().unwrap();
        assert!(ids.free(a));
        assert!(!ids.free(a));
        assert_eq!(ids.used(), 0);
        assert!(!ids.free(11));
        assert!(!ids.free(-1));
    }

    proptest! {
        /// Against a model: ids are unique, in range, never 0; frees of unknown ids refused.
        #[test]
        fn model(ops in proptest::collection::vec((any::<bool>(), -2i32..70), 0..400)) {
            let mut ids = IdAllocator::new(64);
            let mut model = BTreeSet::new();
            for (is_alloc, id) in ops {
                if is_alloc {
                    match ids.alloc() {
                        Some(got) => {
                            prop_assert!((1..=64).contains(&got));
                            prop_assert!(model.insert(got));
                        }
                        None => prop_assert_eq!(model.len(), 64),
                    }
                } else {
                    prop_assert_eq!(ids.free(id), model.remove(&id));
                }
                prop_assert_eq!(ids.used(), model.len());
            }
        }
    }
}
