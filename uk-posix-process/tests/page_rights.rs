//! `mmap`'s and `mprotect`'s rights on a page source that sets them in hardware. The test
//! source hands out pages of a host `mmap` arena and sets their rights with the host's own
//! `mprotect`, so a page this layer wrote or read against its rights would crash the test;
//! it also keeps a model of every page's rights and fails the test when a page goes back
//! to it other than read-write. After every operation the rights uk-syscall's record holds
//! (which system calls check) must equal the hardware's, page for page.

use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use uk_alloc::{Allocator, Buddy};
use uk_posix_process::*;
use uk_syscall::user::{AddressSpace, MAX_PROTECTED_RANGES, PageRights, UserSlice, rights_of};

const P: usize = PAGE_SIZE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const RW: u32 = PROT_READ | PROT_WRITE;

/// Pages of a host mapping, handed out by a checked buddy, with real rights.
struct Protecting {
    buddy: Mutex<Buddy>,
    base: usize,
    pages: usize,
    /// The rights of each page that is not read-write, as set through `set_rights`.
    rights: Mutex<BTreeMap<usize, PageRights>>,
    /// Makes the n-th next `set_rights` that takes rights away fail with `ENOMEM` (0: none).
    fail_in: AtomicUsize,
}

impl Protecting {
    fn new(pages: usize) -> &'static Protecting {
        // The arena starts at a multiple of its power-of-two size, so the buddy lays out its
        // blocks the same way in every run.
        let span = (pages + 1).next_power_of_two() * P;
        // SAFETY: a fresh private anonymous mapping, owned by the test for good.
        let mapped = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(mapped, libc::MAP_FAILED);
        let base = (mapped as usize).next_multiple_of(span) as *mut u8;
        let mut buddy = Buddy::new_checked();
        // SAFETY: the mapping lives forever and serves nothing else.
        unsafe { buddy.add_memory(base.cast(), (pages + 1) * P) }.unwrap();
        Box::leak(Box::new(Protecting {
            buddy: Mutex::new(buddy),
            base: base as usize,
            pages: pages + 1,
            rights: Mutex::new(BTreeMap::new()),
            fail_in: AtomicUsize::new(0),
        }))
    }

    /// Fails the test when a page of `[start, start + pages)` is not read-write.
    fn assert_read_write(&self, start: usize, pages: usize) {
        let rights = self.rights.lock().unwrap();
        if let Some((page, r)) = rights.range(start..start + pages * P).next() {
            panic!("page {page:#x} goes back to the source {r:?}");
        }
    }

    /// Whether the record system calls check agrees with the hardware on every page.
    fn agrees(&self) -> bool {
        let rights = self.rights.lock().unwrap();
        (0..self.pages).all(|i| {
            let page = self.base + i * P;
            rights_of(page) == rights.get(&page).copied().unwrap_or(PageRights::ReadWrite)
        })
    }
}

impl PageSource for Protecting {
    fn alloc_pages(&self, pages: usize) -> Option<NonNull<u8>> {
        self.buddy.lock().unwrap().palloc(pages).ok()
    }

    unsafe fn free_pages(&self, ptr: NonNull<u8>, pages: usize) {
        self.assert_read_write(ptr.as_ptr() as usize, pages);
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
        self.assert_read_write(part.as_ptr() as usize, part_pages);
        // SAFETY: checked mode validates the run and the part.
        let freed = unsafe {
            self.buddy
                .lock()
                .unwrap()
                .pfree_part(run, run_pages, part, part_pages)
        };
        freed.unwrap_or_else(|e| panic!("free_part: {e}"));
        true
    }

    unsafe fn set_rights(
        &self,
        start: NonNull<u8>,
        len: usize,
        rights: PageRights,
    ) -> Result<bool, Errno> {
        let start = start.as_ptr() as usize;
        assert!(start >= self.base && start + len <= self.base + self.pages * P);
        if rights != PageRights::ReadWrite
            && self
                .fail_in
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                == Ok(1)
        {
            return Err(Errno::ENOMEM);
        }
        let prot = match rights {
            PageRights::None => libc::PROT_NONE,
            PageRights::Read => libc::PROT_READ,
            PageRights::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        };
        // SAFETY: pages of the test's own mapping.
        assert_eq!(unsafe { libc::mprotect(start as *mut _, len, prot) }, 0);
        let mut model = self.rights.lock().unwrap();
        for page in (start..start + len).step_by(P) {
            if rights == PageRights::ReadWrite {
                model.remove(&page);
            } else {
                model.insert(page, rights);
            }
        }
        Ok(true)
    }
}

/// Taken by every test: the record is one per process, and one test fills it up.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn setup(pages: usize) -> (System, &'static Protecting) {
    let source = Protecting::new(pages);
    let sys = System::new();
    sys.set_page_source(source);
    sys.set_data_limit_hook(|_| {});
    (sys, source)
}

fn space() -> AddressSpace {
    AddressSpace::hosted()
}

fn readable(addr: usize, len: usize) -> bool {
    UserSlice::new(addr, len).bytes(&space()).is_ok()
}

fn writable(addr: usize, len: usize) -> bool {
    UserSlice::new(addr, len).with_mut(&space(), |_| ()).is_ok()
}

#[test]
fn prot_none_and_read_only_pages_are_efault_for_what_they_refuse() {
    let _serial = serial();
    let (sys, source) = setup(64);
    let a = sys.mmap(0, 4 * P, PROT_NONE, ANON, -1, 0).unwrap();
    assert!(!readable(a, 1) && !writable(a + 3 * P, 1));
    sys.mprotect(a + P, 2 * P, PROT_READ).unwrap();
    assert!(readable(a + P, 2 * P) && !writable(a + P, 1));
    assert!(!readable(a + P - 1, 2), "one byte on the PROT_NONE page");
    // SAFETY: the page is readable in hardware now (the host's mprotect).
    assert_eq!(unsafe { ((a + P) as *const u8).read() }, 0);
    sys.mprotect(a, 4 * P, RW).unwrap();
    assert!(writable(a, 4 * P));
    // SAFETY: read-write again.
    unsafe { (a as *mut u8).write(7) };
    assert!(source.agrees());
    sys.munmap(a, 4 * P).unwrap();
    assert!(source.agrees());
}

#[test]
fn musl_thread_stacks_keep_their_guard_until_unmapped() {
    let _serial = serial();
    // musl's pthread_create: map the whole stack PROT_NONE, open all but the guard.
    let (sys, source) = setup(64);
    let a = sys.mmap(0, 8 * P, PROT_NONE, ANON, -1, 0).unwrap();
    sys.mprotect(a + 2 * P, 6 * P, RW).unwrap();
    assert!(!readable(a + 2 * P - 8, 8) && writable(a + 2 * P, 6 * P));
    assert_eq!(rights_of(a), PageRights::None);
    assert!(source.agrees());
    // The thread exits: musl unmaps the stack, and every page goes back read-write (the
    // source fails the test otherwise).
    sys.munmap(a, 8 * P).unwrap();
    assert_eq!(rights_of(a), PageRights::ReadWrite);
    assert!(source.agrees());
}

#[test]
fn partial_unmap_gives_back_only_the_unmapped_pages_read_write() {
    let _serial = serial();
    let (sys, source) = setup(64);
    let a = sys.mmap(0, 6 * P, PROT_READ, ANON, -1, 0).unwrap();
    sys.munmap(a + 2 * P, 2 * P).unwrap();
    assert_eq!(rights_of(a), PageRights::Read);
    assert_eq!(rights_of(a + 2 * P), PageRights::ReadWrite);
    assert_eq!(rights_of(a + 5 * P), PageRights::Read);
    assert!(source.agrees());
    sys.munmap(a, 6 * P).unwrap();
    assert!(source.agrees());
}

#[test]
fn mremap_moves_contents_and_rights_and_the_growth_takes_the_last_pages_rights() {
    let _serial = serial();
    let (sys, source) = setup(128);
    let a = sys.mmap(0, 3 * P, RW, ANON, -1, 0).unwrap();
    // SAFETY: the mapping's own writable pages.
    unsafe { ((a + P) as *mut u8).write_bytes(0x5A, 2 * P) };
    sys.mprotect(a, P, PROT_NONE).unwrap();
    sys.mprotect(a + 2 * P, P, PROT_READ).unwrap();
    let b = sys.mremap(a, 3 * P, 5 * P, MREMAP_MAYMOVE, 0).unwrap();
    assert_ne!(a, b);
    assert_eq!(rights_of(b), PageRights::None);
    assert_eq!(rights_of(b + P), PageRights::ReadWrite);
    assert_eq!(rights_of(b + 2 * P), PageRights::Read);
    assert_eq!(rights_of(b + 4 * P), PageRights::Read);
    // SAFETY: readable pages of the moved mapping.
    let kept = unsafe { std::slice::from_raw_parts((b + P) as *const u8, 2 * P) };
    assert!(kept.iter().all(|&x| x == 0x5A));
    assert!(source.agrees());
    sys.munmap(b, 5 * P).unwrap();
    assert!(source.agrees());
}

#[test]
fn madv_dontneed_zeroes_protected_pages_and_keeps_their_rights() {
    let _serial = serial();
    let (sys, source) = setup(64);
    let a = sys.mmap(0, 2 * P, RW, ANON, -1, 0).unwrap();
    // SAFETY: the mapping's writable pages.
    unsafe { (a as *mut u8).write_bytes(9, 2 * P) };
    sys.mprotect(a, 2 * P, PROT_READ).unwrap();
    sys.madvise(a, 2 * P, MADV_DONTNEED).unwrap();
    assert_eq!(rights_of(a), PageRights::Read);
    // SAFETY: readable pages.
    let page = unsafe { std::slice::from_raw_parts(a as *const u8, 2 * P) };
    assert!(page.iter().all(|&x| x == 0));
    assert!(source.agrees());
    sys.munmap(a, 2 * P).unwrap();
}

#[test]
fn map_fixed_over_protected_pages_gives_the_new_rights() {
    let _serial = serial();
    let (sys, source) = setup(64);
    let a = sys.mmap(0, 4 * P, PROT_NONE, ANON, -1, 0).unwrap();
    assert_eq!(
        sys.mmap(a + P, 2 * P, PROT_READ, ANON | MAP_FIXED, -1, 0),
        Ok(a + P)
    );
    assert_eq!(rights_of(a), PageRights::None);
    assert_eq!(rights_of(a + P), PageRights::Read);
    assert_eq!(rights_of(a + 3 * P), PageRights::None);
    assert!(source.agrees());
    sys.munmap(a, 4 * P).unwrap();
}

#[test]
fn a_refused_change_changes_nothing() {
    let _serial = serial();
    let (sys, source) = setup(64);
    let free = source.buddy.lock().unwrap().available();
    source.fail_in.store(1, Ordering::Relaxed);
    assert_eq!(
        sys.mmap(0, 2 * P, PROT_NONE, ANON, -1, 0),
        Err(Errno::ENOMEM)
    );
    assert_eq!(source.buddy.lock().unwrap().available(), free);
    // One mapping with mixed rights: a refused mprotect over it leaves them all.
    let a = sys.mmap(0, 4 * P, RW, ANON, -1, 0).unwrap();
    sys.mprotect(a, P, PROT_READ).unwrap();
    sys.mprotect(a + 2 * P, P, PROT_NONE).unwrap();
    let before: Vec<_> = (0..4).map(|i| rights_of(a + i * P)).collect();
    source.fail_in.store(1, Ordering::Relaxed);
    assert_eq!(sys.mprotect(a, 4 * P, PROT_NONE), Err(Errno::ENOMEM));
    let after: Vec<_> = (0..4).map(|i| rights_of(a + i * P)).collect();
    assert_eq!(before, after);
    assert!(source.agrees());
    // Across two mappings: the second part fails, the first is undone.
    let b = sys.mmap(0, 2 * P, RW, ANON, -1, 0).unwrap();
    let c = sys.mmap(0, 2 * P, RW, ANON, -1, 0).unwrap();
    // One call over both (and whatever lies between: hosted, all of it is caller memory);
    // the second mapping's change fails, so the first one's is undone.
    let (lo, end) = (b.min(c), b.max(c) + 2 * P);
    let before: Vec<_> = (lo..end).step_by(P).map(rights_of).collect();
    source.fail_in.store(2, Ordering::Relaxed);
    assert_eq!(sys.mprotect(lo, end - lo, PROT_READ), Err(Errno::ENOMEM));
    assert_eq!(
        source.fail_in.load(Ordering::Relaxed),
        0,
        "the second change was refused"
    );
    let after: Vec<_> = (lo..end).step_by(P).map(rights_of).collect();
    assert_eq!(before, after);
    assert!(source.agrees());
    // Bad arguments: EINVAL; nothing changes.
    assert_eq!(sys.mprotect(a + 1, P, PROT_NONE), Err(Errno::EINVAL));
    assert_eq!(sys.mprotect(a, P, 0x40), Err(Errno::EINVAL));
    assert_eq!(rights_of(a), PageRights::Read);
    assert!(source.agrees());
    for m in [a, b, c] {
        sys.munmap(m, if m == a { 4 * P } else { 2 * P }).unwrap();
    }
    assert!(source.agrees());
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Op {
    Map(usize, u32),
    Protect(usize, usize, usize, u32),
    Unmap(usize, usize, usize),
    Grow(usize, usize),
    DontNeed(usize, usize, usize),
    FailNext,
}

fn prot() -> impl Strategy<Value = u32> {
    prop_oneof![Just(PROT_NONE), Just(PROT_READ), Just(RW), Just(PROT_EXEC)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..6, prot()).prop_map(|(n, p)| Op::Map(n, p)),
        (0usize..8, 0usize..6, 1usize..4, prot()).prop_map(|(m, o, n, p)| Op::Protect(m, o, n, p)),
        (0usize..8, 0usize..6, 1usize..4).prop_map(|(m, o, n)| Op::Unmap(m, o, n)),
        (0usize..8, 1usize..4).prop_map(|(m, n)| Op::Grow(m, n)),
        (0usize..8, 0usize..6, 1usize..4).prop_map(|(m, o, n)| Op::DontNeed(m, o, n)),
        Just(Op::FailNext),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any sequence of mappings, rights changes, unmaps, moves and drops keeps the record
    /// equal to the hardware, never hands a protected page back to the source (the source
    /// panics), and never writes a page against its rights (the host would kill the test).
    #[test]
    fn record_and_hardware_agree(ops in proptest::collection::vec(op(), 1..40)) {
        let _serial = serial();
        let (sys, source) = setup(256);
        let mut maps: Vec<(usize, usize)> = Vec::new();
        for op in ops {
            match op {
                Op::Map(n, p) => {
                    if let Ok(a) = sys.mmap(0, n * P, p, ANON, -1, 0) {
                        maps.push((a, n));
                    }
                }
                Op::Protect(m, o, n, p) if !maps.is_empty() => {
                    let (a, _) = maps[m % maps.len()];
                    let _ = sys.mprotect(a + o * P, n * P, p);
                }
                Op::Unmap(m, o, n) if !maps.is_empty() => {
                    let (a, _) = maps[m % maps.len()];
                    sys.munmap(a + o * P, n * P).unwrap();
                }
                Op::Grow(m, n) if !maps.is_empty() => {
                    let i = m % maps.len();
                    let (a, len) = maps[i];
                    if let Ok(b) = sys.mremap(a, len * P, (len + n) * P, MREMAP_MAYMOVE, 0) {
                        maps[i] = (b, len + n);
                    }
                }
                Op::DontNeed(m, o, n) if !maps.is_empty() => {
                    let (a, _) = maps[m % maps.len()];
                    let _ = sys.madvise(a + o * P, n * P, MADV_DONTNEED);
                }
                Op::FailNext => source.fail_in.store(1, Ordering::Relaxed),
                _ => {}
            }
            prop_assert!(source.agrees());
        }
        source.fail_in.store(0, Ordering::Relaxed);
        for (a, n) in maps {
            sys.munmap(a, n * P).unwrap();
        }
        prop_assert!(source.agrees());
        prop_assert!(source.rights.lock().unwrap().is_empty());
    }
}

#[test]
fn a_full_record_refuses_protection_and_still_gives_pages_back() {
    let _serial = serial();
    let (sys, source) = setup(8 * MAX_PROTECTED_RANGES);
    let pages = 2 * MAX_PROTECTED_RANGES + 8;
    let a = sys.mmap(0, pages * P, RW, ANON, -1, 0).unwrap();
    // Every other page read-only: one range each, until the record is full. The first
    // range is three pages long.
    sys.mprotect(a, 3 * P, PROT_READ).unwrap();
    let mut next = a + 4 * P;
    for _ in 1..MAX_PROTECTED_RANGES {
        sys.mprotect(next, P, PROT_READ).unwrap();
        next += 2 * P;
    }
    // One more range: ENOMEM, and nothing changed.
    assert_eq!(sys.mprotect(next, P, PROT_READ), Err(Errno::ENOMEM));
    assert_eq!(rights_of(next), PageRights::ReadWrite);
    assert!(source.agrees());
    // Unmapping the middle page of the first range needs a split the full record cannot
    // make: the whole range becomes read-write (its neighbours lose their protection,
    // logged), the page goes back to the source read-write (the source checks), and
    // record and hardware still agree.
    sys.munmap(a + P, P).unwrap();
    assert_eq!(rights_of(a), PageRights::ReadWrite);
    assert_eq!(rights_of(a + 2 * P), PageRights::ReadWrite);
    assert_eq!(rights_of(a + 4 * P), PageRights::Read);
    assert!(source.agrees());
    sys.munmap(a, pages * P).unwrap();
    assert!(source.agrees());
    assert!(source.rights.lock().unwrap().is_empty());
}
