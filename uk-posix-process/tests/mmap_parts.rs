//! Partial `munmap` and shrinking `mremap` give pages back at once, as Linux does, when the
//! page source can free part of a run: exactly the unmapped pages go back, the rest stays
//! mapped with its contents, `RLIMIT_DATA` stops counting them, and the pieces return
//! everything in any order. The page source here is a uk-alloc buddy in checked mode, which
//! refuses (and the test source turns into a failure) any free that is not exactly part of
//! a live run. A source that refuses part frees keeps today's behaviour: the run goes back
//! whole when its last page is unmapped.

use std::ptr::NonNull;
use std::sync::Mutex;

use uk_alloc::{Allocator, Buddy};
use uk_posix_process::rlimit::RLIMIT_DATA;
use uk_posix_process::*;

const RW: u32 = PROT_READ | PROT_WRITE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const P: usize = PAGE_SIZE;

/// Which parts of a run the test source gives back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Parts {
    /// Any part (the buddy's `pfree_part`).
    Any,
    /// Only tails (the parts a TLSF heap frees).
    Tails,
    /// None: whole runs only (the global allocator's `HeapPages`).
    None,
}

/// Pages from a checked buddy over a leaked arena. Every free must be exactly a live run or
/// part of one: anything else panics (fails the test).
struct BuddyPages {
    buddy: Mutex<Buddy>,
    parts: Parts,
}

impl BuddyPages {
    fn new(pages: usize, parts: Parts) -> &'static BuddyPages {
        let arena: &'static mut [u8] = Vec::leak(vec![0xA5u8; (pages + 2) * P]);
        let skip = arena.as_ptr().align_offset(P);
        let mut buddy = Buddy::new_checked();
        // SAFETY: the leaked arena lives forever and serves nothing else.
        unsafe { buddy.add_memory(arena[skip..].as_mut_ptr(), (pages + 1) * P) }.unwrap();
        Box::leak(Box::new(BuddyPages {
            buddy: Mutex::new(buddy),
            parts,
        }))
    }

    fn available(&self) -> usize {
        self.buddy.lock().unwrap().available()
    }

    fn live_bytes(&self) -> usize {
        self.buddy.lock().unwrap().stats().cur_bytes
    }
}

impl PageSource for BuddyPages {
    fn alloc_pages(&self, pages: usize) -> Option<NonNull<u8>> {
        self.buddy.lock().unwrap().palloc(pages).ok()
    }

    unsafe fn free_pages(&self, ptr: NonNull<u8>, pages: usize) {
        // SAFETY: checked mode validates the run.
        let freed = unsafe { self.buddy.lock().unwrap().pfree(ptr, pages) };
        freed.unwrap_or_else(|e| panic!("free_pages({ptr:p}, {pages}): {e}"));
    }

    unsafe fn free_part(
        &self,
        run: NonNull<u8>,
        run_pages: usize,
        part: NonNull<u8>,
        part_pages: usize,
    ) -> bool {
        let tail = part.as_ptr() as usize + part_pages * P == run.as_ptr() as usize + run_pages * P;
        if self.parts == Parts::None || (self.parts == Parts::Tails && !tail) {
            return false;
        }
        // SAFETY: checked mode validates the run and the part.
        let freed = unsafe {
            self.buddy
                .lock()
                .unwrap()
                .pfree_part(run, run_pages, part, part_pages)
        };
        freed.unwrap_or_else(|e| {
            panic!("free_part({run:p}, {run_pages}, {part:p}, {part_pages}): {e}")
        });
        true
    }
}

/// A process layer whose anonymous memory comes from a fresh buddy source of `pages` pages.
fn setup(pages: usize, parts: Parts) -> (System, &'static BuddyPages) {
    let source = BuddyPages::new(pages, parts);
    let sys = System::new();
    sys.set_page_source(source);
    sys.set_data_limit_hook(|_| {});
    (sys, source)
}

/// Writes page `i`'s own byte over each of the `pages` pages at `addr`.
fn stamp(addr: usize, pages: usize) {
    for i in 0..pages {
        // SAFETY: the caller's mapped pages.
        unsafe { ((addr + i * P) as *mut u8).write_bytes(i as u8 + 1, P) };
    }
}

/// Whether pages `from..to` of the mapping at `addr` still hold their stamps, and take a
/// store (written and read back, then stamped again).
fn intact(addr: usize, from: usize, to: usize) -> bool {
    (from..to).all(|i| {
        // SAFETY: the caller's mapped pages.
        let page = unsafe { std::slice::from_raw_parts_mut((addr + i * P) as *mut u8, P) };
        let kept = page.iter().all(|&b| b == i as u8 + 1);
        page.fill(0xEE);
        let writable = page.iter().all(|&b| b == 0xEE);
        page.fill(i as u8 + 1);
        kept && writable
    })
}

/// Whether `pages` pages at `addr` are live pages of one mapping (what `mremap` to the same
/// size accepts).
fn mapped(sys: &System, addr: usize, pages: usize) -> bool {
    sys.mremap(addr, pages * P, pages * P, 0, 0) == Ok(addr)
}

/// Sets `RLIMIT_DATA`'s soft limit to `bytes`.
fn limit_data(sys: &System, bytes: usize) {
    let limit = Rlimit {
        rlim_cur: bytes as u64,
        rlim_max: rlimit::RLIM_INFINITY,
    };
    sys.setrlimit(RLIMIT_DATA, limit).unwrap();
}

#[test]
fn munmap_of_a_middle_a_head_and_a_tail_frees_exactly_those_pages() {
    let (sys, source) = setup(64, Parts::Any);
    let empty = source.available();
    let p = sys.mmap(0, 16 * P, RW, ANON, -1, 0).unwrap();
    stamp(p, 16);
    assert_eq!(source.available(), empty - 16 * P);
    // The middle: pages 5..8 go back, 0..5 and 8..16 stay mapped with their bytes.
    sys.munmap(p + 5 * P, 3 * P).unwrap();
    assert_eq!(source.available(), empty - 13 * P);
    assert_eq!(source.live_bytes(), 13 * P);
    assert!(!mapped(&sys, p + 5 * P, 1) && !mapped(&sys, p + 7 * P, 1));
    assert!(mapped(&sys, p, 5) && mapped(&sys, p + 8 * P, 8));
    assert!(intact(p, 0, 5) && intact(p, 8, 16));
    // The head, then the tail.
    sys.munmap(p, 2 * P).unwrap();
    assert_eq!(source.available(), empty - 11 * P);
    sys.munmap(p + 14 * P, 2 * P).unwrap();
    assert_eq!(source.available(), empty - 9 * P);
    assert!(intact(p, 2, 5) && intact(p, 8, 14));
    assert!(mapped(&sys, p + 2 * P, 3) && mapped(&sys, p + 8 * P, 6));
    // Again: harmless.
    sys.munmap(p + 5 * P, 3 * P).unwrap();
    sys.munmap(p, 2 * P).unwrap();
    assert_eq!(source.available(), empty - 9 * P);
    assert!(intact(p, 2, 5) && intact(p, 8, 14));
    // The pieces, one range over them and the holes.
    sys.munmap(p, 16 * P).unwrap();
    assert_eq!(source.available(), empty);
    assert_eq!(source.live_bytes(), 0);
}

#[test]
fn rlimit_data_stops_counting_unmapped_pages_at_once() {
    let (sys, source) = setup(64, Parts::Any);
    limit_data(&sys, 8 * P);
    let p = sys.mmap(0, 8 * P, RW, ANON, -1, 0).unwrap();
    assert_eq!(sys.mmap(0, 4 * P, RW, ANON, -1, 0), Err(Errno::ENOMEM));
    // Half of it goes: that half may be mapped again (Linux; before, it stayed counted
    // until the other half went too).
    sys.munmap(p + 2 * P, 4 * P).unwrap();
    let q = sys.mmap(0, 4 * P, RW, ANON, -1, 0).unwrap();
    assert_eq!(sys.mmap(0, P, RW, ANON, -1, 0), Err(Errno::ENOMEM));
    // A shrinking mremap frees its tail the same way.
    assert_eq!(sys.mremap(q, 4 * P, P, 0, 0), Ok(q));
    let r = sys.mmap(0, 3 * P, RW, ANON, -1, 0).unwrap();
    for (at, len) in [(p, 8 * P), (q, P), (r, 3 * P)] {
        sys.munmap(at, len).unwrap();
    }
    assert_eq!(source.live_bytes(), 0);
}

#[test]
fn mremap_shrinking_frees_the_tail_and_keeps_the_rest() {
    let (sys, source) = setup(64, Parts::Any);
    let empty = source.available();
    let p = sys.mmap(0, 10 * P, RW, ANON, -1, 0).unwrap();
    stamp(p, 10);
    assert_eq!(sys.mremap(p, 10 * P, 4 * P, 0, 0), Ok(p));
    assert_eq!(source.available(), empty - 4 * P);
    assert!(intact(p, 0, 4));
    assert!(!mapped(&sys, p + 4 * P, 1));
    // It can still move to grow, with its contents.
    let q = sys.mremap(p, 4 * P, 6 * P, MREMAP_MAYMOVE, 0).unwrap();
    assert!(intact(q, 0, 4));
    assert_eq!(source.available(), empty - 6 * P);
    sys.munmap(q, 6 * P).unwrap();
    assert_eq!(source.available(), empty);
}

#[test]
fn the_pieces_return_everything_in_any_order() {
    // Ranges over a 12-page mapping, some overlapping earlier ones or holes; every page is
    // unmapped by the end of each list.
    let orders: [&[(usize, usize)]; 5] = [
        &[(3, 2), (9, 3), (0, 1), (5, 4), (1, 2)],
        &[(11, 1), (0, 11)],
        &[(4, 4), (2, 8), (0, 12)],
        &[(6, 1), (5, 3), (0, 2), (10, 2), (2, 3), (8, 2)],
        &[(1, 1), (3, 1), (5, 1), (7, 1), (9, 1), (11, 1), (0, 12)],
    ];
    for parts in [Parts::Any, Parts::Tails, Parts::None] {
        for order in orders {
            let (sys, source) = setup(64, parts);
            let empty = source.available();
            let p = sys.mmap(0, 12 * P, RW, ANON, -1, 0).unwrap();
            stamp(p, 12);
            let mut gone = [false; 12];
            for &(first, n) in order {
                sys.munmap(p + first * P, n * P).unwrap();
                gone[first..first + n].fill(true);
                for (i, &g) in gone.iter().enumerate() {
                    assert_eq!(
                        !g,
                        mapped(&sys, p + i * P, 1),
                        "{parts:?} {order:?} page {i}"
                    );
                    assert!(g || intact(p, i, i + 1), "{parts:?} {order:?} page {i}");
                }
                if parts == Parts::Any {
                    let left = gone.iter().filter(|&&g| !g).count();
                    assert_eq!(source.available(), empty - left * P, "{order:?}");
                }
            }
            assert_eq!(source.available(), empty, "{parts:?} {order:?}");
            assert_eq!(source.live_bytes(), 0);
        }
    }
}

#[test]
fn pages_a_source_kept_go_back_with_a_later_part_next_to_them() {
    // A source that frees tails only (a TLSF heap): an unmapped middle stays in the run,
    // and goes back with the tail once that is unmapped too.
    let (sys, source) = setup(64, Parts::Tails);
    let empty = source.available();
    let p = sys.mmap(0, 8 * P, RW, ANON, -1, 0).unwrap();
    stamp(p, 8);
    sys.munmap(p + 2 * P, 2 * P).unwrap();
    assert_eq!(source.available(), empty - 8 * P, "the middle stays");
    sys.munmap(p + 5 * P, 3 * P).unwrap();
    assert_eq!(source.available(), empty - 5 * P, "the tail goes");
    assert!(intact(p, 0, 2) && intact(p, 4, 5));
    assert!(mapped(&sys, p, 2) && mapped(&sys, p + 4 * P, 1));
    assert!(!mapped(&sys, p + 2 * P, 1) && !mapped(&sys, p + 5 * P, 1));
    // Page 4 makes pages 2..5 the run's tail: they go together.
    sys.munmap(p + 4 * P, P).unwrap();
    assert_eq!(
        source.available(),
        empty - 2 * P,
        "the middle went with the new tail"
    );
    assert!(intact(p, 0, 2));
    sys.munmap(p, 2 * P).unwrap();
    assert_eq!(source.available(), empty);
}

#[test]
fn a_source_that_frees_whole_runs_only_keeps_them_counted_until_the_last_page() {
    let (sys, source) = setup(64, Parts::None);
    let empty = source.available();
    limit_data(&sys, 8 * P);
    let p = sys.mmap(0, 8 * P, RW, ANON, -1, 0).unwrap();
    stamp(p, 8);
    sys.munmap(p + 2 * P, 4 * P).unwrap();
    assert_eq!(source.available(), empty - 8 * P);
    assert_eq!(sys.mmap(0, 4 * P, RW, ANON, -1, 0), Err(Errno::ENOMEM));
    assert!(intact(p, 0, 2) && intact(p, 6, 8));
    sys.munmap(p, 2 * P).unwrap();
    sys.munmap(p + 6 * P, 2 * P).unwrap();
    assert_eq!(source.available(), empty);
    assert!(sys.mmap(0, 8 * P, RW, ANON, -1, 0).is_ok());
}

#[cfg(feature = "vfs")]
#[test]
fn a_private_file_mapping_split_keeps_its_file_offsets() {
    use uk_vfs::{O_RDONLY, RamFs, Vfs};

    let (sys, source) = setup(64, Parts::Any);
    let vfs: &'static Vfs = Box::leak(Box::new(Vfs::new(RamFs::new())));
    sys.set_vfs(vfs);
    let data: Vec<u8> = (0..6 * P).map(|i| (i / P) as u8 + 0x10).collect();
    vfs.write_file("/f", &data, 0o644).unwrap();
    let fd = vfs.open("/f", O_RDONLY, 0).unwrap();
    // Pages 1..6 of the file, at file offset one page.
    let p = sys.mmap(0, 5 * P, RW, MAP_PRIVATE, fd, P as u64).unwrap();
    vfs.close(fd).unwrap();
    let empty_but_this = source.available();
    sys.munmap(p + P, 2 * P).unwrap();
    assert_eq!(source.available(), empty_but_this + 2 * P);
    // Overwrite what is left, then have it read from the file again: each piece reads its
    // own pages of the file (the tail piece starts at file page 4).
    for (at, file_page) in [(p, 1usize), (p + 3 * P, 4), (p + 4 * P, 5)] {
        // SAFETY: a mapped page.
        unsafe { (at as *mut u8).write_bytes(0, P) };
        sys.madvise(at, P, MADV_DONTNEED).unwrap();
        // SAFETY: a mapped page.
        let page = unsafe { std::slice::from_raw_parts(at as *const u8, P) };
        assert!(
            page.iter().all(|&b| b == file_page as u8 + 0x10),
            "file page {file_page}"
        );
    }
    sys.munmap(p, 5 * P).unwrap();
    assert_eq!(source.live_bytes(), 0);
}
