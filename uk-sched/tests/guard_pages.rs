//! Guard pages below stacks ([`uk_sched::set_guard_pages`]), with page rights set by the
//! host's own `mprotect`: the page below every stack this crate allocates is really
//! inaccessible, every stack is freed only after its guard page is writable again (the
//! fake tracks the protected pages and the test checks none is left), a refusal gives a
//! stack without a guard page, and threads run on guarded stacks, pooled ones included.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use uk_context::Native;
use uk_hal::{HostClock, PROTECTION_PAGE, PageAccess, PageProtection, ProtectError};
use uk_sched::idle::Poll;
use uk_sched::{RoundRobin, Scheduler, Stack, StackPool, Thread, set_guard_pages};

/// Page rights through the host's `mprotect`, with the protected pages kept in a set.
struct HostRights {
    protected: Mutex<BTreeSet<usize>>,
    refuse: AtomicBool,
}

impl PageProtection for HostRights {
    unsafe fn set_access(
        &self,
        start: usize,
        len: usize,
        access: PageAccess,
    ) -> Result<(), ProtectError> {
        if start % PROTECTION_PAGE != 0 || len % PROTECTION_PAGE != 0 || len == 0 {
            return Err(ProtectError::Unaligned);
        }
        if access != PageAccess::ReadWrite && self.refuse.load(Ordering::Relaxed) {
            return Err(ProtectError::OutOfTables);
        }
        let prot = match access {
            PageAccess::None => libc::PROT_NONE,
            PageAccess::ReadOnly => libc::PROT_READ,
            PageAccess::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        };
        // SAFETY: the caller owns the pages (the trait's contract): here, a stack's guard.
        assert_eq!(unsafe { libc::mprotect(start as *mut _, len, prot) }, 0);
        let mut protected = self.protected.lock().unwrap();
        for page in (start..start + len).step_by(PROTECTION_PAGE) {
            if access == PageAccess::ReadWrite {
                protected.remove(&page);
            } else {
                protected.insert(page);
            }
        }
        Ok(())
    }

    fn access(&self, addr: usize) -> Option<PageAccess> {
        let page = addr - addr % PROTECTION_PAGE;
        Some(if self.protected.lock().unwrap().contains(&page) {
            PageAccess::None
        } else {
            PageAccess::ReadWrite
        })
    }
}

static RIGHTS: HostRights = HostRights {
    protected: Mutex::new(BTreeSet::new()),
    refuse: AtomicBool::new(false),
};

/// The steps share the one global setting, so they run in order in one test.
#[test]
fn stacks_get_guard_pages_and_give_them_back() {
    assert!(set_guard_pages(&RIGHTS));
    assert!(!set_guard_pages(&RIGHTS), "the first call wins");

    // A heap stack: page-aligned, the page below it inaccessible until it is freed.
    let stack = Stack::alloc(10_000).unwrap();
    let base = stack.base() as usize;
    assert!(stack.has_guard_page());
    assert_eq!(base % PROTECTION_PAGE, 0);
    assert_eq!(stack.size(), 10_000);
    assert_eq!(RIGHTS.access(base - 1), Some(PageAccess::None));
    assert_eq!(RIGHTS.access(base), Some(PageAccess::ReadWrite));
    drop(stack);
    assert!(RIGHTS.protected.lock().unwrap().is_empty());

    // A refusal: the stack comes without a guard page.
    RIGHTS.refuse.store(true, Ordering::Relaxed);
    let plain = Stack::alloc(4096).unwrap();
    assert!(!plain.has_guard_page());
    drop(plain);
    RIGHTS.refuse.store(false, Ordering::Relaxed);

    // Pooled stacks keep their guard while pooled, and give it back when the pool goes.
    let pool = StackPool::new(16 * 1024, 2);
    let a = pool.get().unwrap();
    let b = pool.get().unwrap();
    let c = pool.get().unwrap();
    assert!(a.has_guard_page() && b.has_guard_page() && c.has_guard_page());
    assert_eq!(RIGHTS.protected.lock().unwrap().len(), 3);
    drop((a, b, c)); // two stay pooled, one is freed
    assert_eq!(RIGHTS.protected.lock().unwrap().len(), 2);
    let again = pool.get().unwrap();
    assert!(again.has_guard_page());
    drop(again);

    // Threads run on guarded stacks, from the heap and from the pool.
    let sched = RoundRobin::cooperative(Native::detect(), HostClock::new(), Poll);
    let ran = Rc::new(std::cell::Cell::new(0u32));
    for _ in 0..3 {
        let r = ran.clone();
        sched
            .spawn("guarded", move || {
                let deep = std::hint::black_box([1u8; 2048]);
                r.set(r.get() + u32::from(deep[100]));
            })
            .unwrap();
        let r = ran.clone();
        let pooled = Thread::builder("pooled")
            .stack(pool.get().unwrap())
            .create(sched.ops(), move || r.set(r.get() + 1))
            .unwrap();
        sched.add(&pooled).unwrap();
    }
    sched.run();
    assert_eq!(ran.get(), 6);
    drop(sched);
    drop(pool);
    assert!(RIGHTS.protected.lock().unwrap().is_empty());
}
