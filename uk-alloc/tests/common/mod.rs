//! Shared helpers of the integration tests: mmap'd arenas and a backend factory.
#![allow(dead_code)]

use uk_alloc::{Allocator, Buddy, PAGE_SIZE, Region, Tlsf};

/// An anonymous private mapping, lazily backed: only the pages the allocator touches cost
/// memory, so a test can hand over gigabytes. Optionally followed by an inaccessible guard
/// page, so that reading past the arena faults.
pub struct Arena {
    map: *mut u8,
    map_len: usize,
    /// First byte handed to the allocator.
    pub base: *mut u8,
    /// Bytes handed to the allocator.
    pub len: usize,
}

impl Arena {
    /// `len` bytes starting `offset` bytes into the mapping (to test unaligned regions).
    pub fn new(len: usize, offset: usize) -> Arena {
        Self::build(len, offset, false)
    }

    /// Like [`Arena::new`], with an inaccessible page right after the last byte; `offset +
    /// len` must then be a multiple of the page size.
    pub fn guarded(len: usize, offset: usize) -> Arena {
        assert_eq!((offset + len) % PAGE_SIZE, 0);
        Self::build(len, offset, true)
    }

    fn build(len: usize, offset: usize, guard: bool) -> Arena {
        let data = (offset + len).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let map_len = data + if guard { PAGE_SIZE } else { 0 };
        // SAFETY: a fresh anonymous mapping; the result is checked.
        let map = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED, "mmap of {map_len} bytes failed");
        let map = map.cast::<u8>();
        if guard {
            // SAFETY: the last page belongs to the mapping just made.
            let rc = unsafe { libc::mprotect(map.add(data).cast(), PAGE_SIZE, libc::PROT_NONE) };
            assert_eq!(rc, 0);
        }
        Arena {
            map,
            map_len,
            // SAFETY: `offset` is within the mapping.
            base: unsafe { map.add(offset) },
            len,
        }
    }

    /// Fills the arena with `byte` (for small arenas: the allocator must not rely on zeroed
    /// memory).
    pub fn fill(&self, byte: u8) -> &Self {
        // SAFETY: the arena's bytes are mapped read-write.
        unsafe { self.base.write_bytes(byte, self.len) };
        self
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping `build` made.
        unsafe { libc::munmap(self.map.cast(), self.map_len) };
    }
}

/// The backends and modes under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tlsf,
    TlsfChecked,
    Buddy,
    BuddyChecked,
    Region,
}

pub const ALL: [Kind; 5] = [
    Kind::Tlsf,
    Kind::TlsfChecked,
    Kind::Buddy,
    Kind::BuddyChecked,
    Kind::Region,
];

/// Backends that validate every pointer (the safety precondition of free is lifted).
pub const CHECKED: [Kind; 3] = [Kind::TlsfChecked, Kind::BuddyChecked, Kind::Region];

impl Kind {
    pub fn make(self) -> Box<dyn Allocator> {
        match self {
            Kind::Tlsf => Box::new(Tlsf::new()),
            Kind::TlsfChecked => Box::new(Tlsf::new_checked()),
            Kind::Buddy => Box::new(Buddy::new()),
            Kind::BuddyChecked => Box::new(Buddy::new_checked()),
            Kind::Region => Box::new(Region::new()),
        }
    }

    /// A backend of this kind owning `arena` (returned alongside so it outlives the
    /// allocator: drop the allocator first).
    pub fn with_arena(self, arena: &Arena) -> Box<dyn Allocator> {
        let mut a = self.make();
        // SAFETY: the arena outlives the allocator in every test and serves nothing else.
        unsafe { a.add_memory(arena.base, arena.len).unwrap() };
        a
    }

    pub fn is_region(self) -> bool {
        self == Kind::Region
    }
}
