//! In-image test cases (feature `ktest`): the raw switch and the thread pointer on the
//! real machine. The scheduler's suite (`uk-sched`) covers FPU/SIMD and TLS with threads.

use core::cell::UnsafeCell;

use crate::{Context, ContextOps, Native};

/// A small stack for the child context.
#[repr(C, align(16))]
struct ChildStack(UnsafeCell<[u8; 16 * 1024]>);

// SAFETY: used by one test case at a time, on one CPU, only through raw pointers.
unsafe impl Sync for ChildStack {}

static STACK: ChildStack = ChildStack(UnsafeCell::new([0; 16 * 1024]));
static mut MAIN: Context = Context::new();
static mut CHILD: Context = Context::new();
static mut SEEN: (usize, usize) = (0, 0);

extern "C" fn child(a: usize, b: usize) -> ! {
    // SAFETY: single CPU; the test case reads SEEN only after we switched back.
    unsafe { SEEN = (a, b) };
    let ops = Native::detect();
    // SAFETY: MAIN was saved by the switch that started this context.
    unsafe { ops.switch(&raw mut CHILD, &raw const MAIN) };
    unreachable!("the child is never resumed");
}

uk_test::ktest! {
    /// A new context starts at its entry with both arguments and switches back.
    fn raw_context_switch_with_two_arguments() {
        let ops = Native::detect();
        // SAFETY: the static stack is used by nothing else while this case runs; the child
        // ends by switching back to MAIN.
        unsafe {
            let ctx = &raw mut CHILD;
            ops.init(&mut *ctx, STACK.0.get().cast(), 16 * 1024, child, 0xAB, 0xCD).expect("init");
            ops.switch(&raw mut MAIN, &raw const CHILD);
            uk_test::expect_eq!((&raw const SEEN).read(), (0xAB, 0xCD));
        }
    }
}

uk_test::ktest! {
    /// The thread pointer reads back what was installed, and the old one is restored.
    fn thread_pointer_reads_back() {
        let ops = Native::detect();
        let before = ops.thread_pointer();
        let mut block = [0usize; 4];
        let tp = block.as_mut_ptr() as usize + 16;
        // SAFETY: no code reads TLS while the test block is installed; restored below.
        unsafe { ops.set_thread_pointer(tp) };
        uk_test::expect_eq!(ops.thread_pointer(), tp);
        // SAFETY: restores the previous value.
        unsafe { ops.set_thread_pointer(before) };
        uk_test::expect_eq!(ops.thread_pointer(), before);
        core::hint::black_box(&mut block);
    }
}
