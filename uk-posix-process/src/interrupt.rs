//! Signals for a thread that computes: delivery from the timer interrupt.
//!
//! Without it a signal reaches a thread only on the way back from a system call or in a
//! wait, so a C loop that makes no calls never sees its `alarm`, its `SIGPROF` or its
//! POSIX timer's signal. With a scheduler driven by the board's timer
//! ([`uk_sched::RoundRobin::with_interrupts`]) and interrupts unmasked, the layer asks the
//! scheduler for a timer interrupt at the next deadline of the running process's timers
//! ([`uk_sched::irq::request_timer_interrupt`]; for the CPU-time timers, when the CPU time
//! left would run out if the process kept the CPU), and the interrupt's exit hook
//! ([`uk_sched::irq::set_timer_exit_hook`]) fires the due timers and runs the handlers of
//! the signals now deliverable to the interrupted thread, as Linux does on its way back to
//! user mode from an interrupt.
//!
//! That is only safe where the thread was running *application code*: in a system call it
//! may hold the layer's or the VFS's locks, and a handler calling into the layer would
//! deadlock. Each thread's [`uk_sched::Thread::owner_word`] says where it is:
//! [`NOT_APPLICATION`] for every thread the layer never ran C code on (a Rust thread of the
//! image, which calls the layer directly, is never interrupted this way),
//! [`IN_APPLICATION`] from the moment a C thread enters its code (musl's start routine, a
//! `clone` child's function), and [`IN_KERNEL`] for the length of every system call (the
//! uk-syscall call bracket, [`uk_syscall::set_call_bracket`], and `uk_clone`, musl's
//! direct way in) and of the layer's own work here. A handler the layer runs is application
//! code again (`running_handler`), so a handler that `siglongjmp`s out of a system call or
//! out of this hook leaves its thread correctly marked. An interrupt that finds its thread
//! anywhere else only notes that the next system call return should look at the timers
//! again (a request lasts until the next timer interrupt, whatever it was for).
//!
//! The first `SA_SIGINFO` handler's context reports the interrupted code's general
//! registers in `uc_mcontext` (the board's
//! [`uk_hal::irq::Interrupts::interrupted_registers`]: all of them on both boards, the
//! stack pointer and flags reported only), and what the handler changes there is what the
//! interrupted code resumes with, as after Linux's `sigreturn`: musl's asynchronous
//! cancellation moves the program counter so, and a sampling profiler walks the stack from
//! the reported frame pointer.
//!
//! The interrupted code's registers are kept by the board's interrupt entry; its FPU/SIMD
//! registers, which a C handler uses, are saved here around the delivery (x86 images are
//! soft-float, so the entry does not keep them). Interrupts are unmasked while the handlers
//! run (the interrupt has been ended), so a handler that never returns leaves them on, and
//! a handler may itself be interrupted.
//!
//! Under a preemptive scheduler the same word keeps kernel code from being preempted
//! ([`uk_sched::irq::set_preemption_filter`]: no switch away from an [`IN_KERNEL`] thread),
//! so no thread is switched away from while it holds a lock of the layer or the VFS, and
//! the exit hook delivers any signal pending for an interrupted C thread, another thread's
//! `pthread_kill` or `pthread_cancel` included.
//!
//! A request lasts until the next timer interrupt. One that finds the thread in the layer's
//! code (a system call, or the delivery of an earlier interrupt) cannot fire the timers
//! there and only leaves a note; the thread's way back to application code then asks
//! again (with interrupts masked while it does and changes its state), so a computing
//! thread is interrupted at its timers' next deadline even when the layer's own work takes
//! as long as the interval (a 1 ms `ITIMER_REAL` under an emulator).
//!
//! Limits: a process's interrupt is asked for when a timer is armed or re-armed and when
//! its thread is interrupted or returns from a call after an interrupt; with several
//! processes computing in turn, one's request may be taken by an interrupt another's thread
//! sees, and then waits for its next system call. A signal another thread sends reaches a
//! computing receiver only under a preemptive scheduler (at the next tick, through the same
//! hook); under a cooperative one the sender only runs when the receiver gives up the CPU,
//! and the signal comes at the receiver's next call.

use core::sync::atomic::{AtomicBool, Ordering};

use uk_hal::irq::InterruptedRegisters;

use crate::system::System;

/// Owner word: a thread the layer runs no application code on (every thread starts so).
pub const NOT_APPLICATION: usize = 0;
/// Owner word: the thread runs application code (C), where a signal may be delivered at an
/// interrupt.
pub const IN_APPLICATION: usize = 1;
/// Owner word: the thread is inside a system call or the layer's own code.
pub const IN_KERNEL: usize = 2;

/// Set by an interrupt that could not look at the timers (its thread was not in
/// application code): the next system call return does.
static RECHECK: AtomicBool = AtomicBool::new(false);

/// The calling thread's owner word, if the caller is a scheduler thread.
pub fn state() -> Option<usize> {
    uk_sched::with_current(|t| t.owner_word().load(Ordering::Relaxed))
}

/// Moves the calling thread of application code to `new` and returns what it was;
/// a thread that never ran application code stays [`NOT_APPLICATION`].
pub(crate) fn switch_state(new: usize) -> usize {
    uk_sched::with_current(|t| {
        let word = t.owner_word();
        let old = word.load(Ordering::Relaxed);
        if old != NOT_APPLICATION {
            word.store(new, Ordering::Relaxed);
        }
        old
    })
    .unwrap_or(NOT_APPLICATION)
}

/// Puts back a state [`switch_state`] returned.
pub(crate) fn restore_state(old: usize) {
    if old != NOT_APPLICATION {
        uk_sched::with_current(|t| t.owner_word().store(old, Ordering::Relaxed));
    }
}

/// The calling thread is about to run application code (a C program's start routine, a
/// `clone` child's C function): from now on an interrupt may deliver signals to it.
pub fn enter_application_code() {
    uk_sched::with_current(|t| t.owner_word().store(IN_APPLICATION, Ordering::Relaxed));
}

/// The calling thread came back from its application code (the C function returned) and
/// runs the layer's code to end.
pub fn leave_application_code() {
    let _ = switch_state(IN_KERNEL);
}

/// The call bracket's first half: the caller enters a system call.
pub fn syscall_entered() -> usize {
    switch_state(IN_KERNEL)
}

/// The call bracket's second half: back to where the call came from.
pub fn syscall_leaving(old: usize) {
    if old == IN_APPLICATION && RECHECK.load(Ordering::Relaxed) {
        crate::system().back_to_application_code(old);
    } else {
        restore_state(old);
    }
}

/// Runs `handler` (a signal handler, application code) marked as application code, and
/// puts the caller's state back afterwards.
pub(crate) fn running_handler<R>(handler: impl FnOnce() -> R) -> R {
    let old = switch_state(IN_APPLICATION);
    let result = handler();
    restore_state(old);
    result
}

/// Whether a preemptive scheduler may switch away from the running thread now: not while
/// it is inside a system call or the layer's own code ([`IN_KERNEL`]).
pub(crate) fn may_be_preempted() -> bool {
    state() != Some(IN_KERNEL)
}

/// The timer interrupt's exit hook for the image's layer ([`System::timer_interrupt_ended`]).
pub(crate) fn timer_interrupt_ends(interrupted: Option<InterruptedRegisters>) {
    crate::system().timer_interrupt_ended(interrupted);
}

impl System {
    /// What the end of a timer interrupt does (the scheduler's exit hook, interrupts
    /// masked, on the interrupted thread's stack): for a thread it caught in application
    /// code, fires its process's due timers and runs the handlers now deliverable to it;
    /// otherwise it only notes that the next system call return looks at the timers.
    /// `interrupted` holds the registers the interrupt saved (when the board says): the
    /// first handler's context reports them, and what a `SA_SIGINFO` handler changes there
    /// (its program counter, say) is what the code resumes with.
    pub fn timer_interrupt_ended(&self, interrupted: Option<InterruptedRegisters>) {
        if state() == Some(IN_APPLICATION) {
            self.interrupted_in_application_code(interrupted);
        } else {
            RECHECK.store(true, Ordering::Relaxed);
        }
    }

    /// What a timer interrupt does for a thread it caught in application code: fires the
    /// process's due timers, asks for the next interrupt, and runs the handlers of the
    /// signals now deliverable to the thread, with interrupts unmasked and its FPU/SIMD
    /// state kept.
    pub(crate) fn interrupted_in_application_code(
        &self,
        interrupted: Option<InterruptedRegisters>,
    ) {
        let old = switch_state(IN_KERNEL);
        let irqs = uk_sched::irq::interrupts();
        if let Some(irqs) = irqs {
            irqs.enable_on_this_cpu();
        }
        self.fire_due_timers();
        self.request_timer_interrupt();
        keeping_extended_state(|| self.deliver_on_return_to(interrupted));
        if let Some(irqs) = irqs {
            irqs.mask();
        }
        self.back_to_application_code(old);
    }

    /// Puts the calling thread's state back to `old` at the end of the layer's work on its
    /// way back to where it came from, renewing the interrupt request first when `old` is
    /// application code and an interrupt used it up meanwhile
    /// ([`System::renew_interrupt_request_and_leave`]).
    pub(crate) fn back_to_application_code(&self, old: usize) {
        if old == IN_APPLICATION && RECHECK.load(Ordering::Relaxed) {
            self.renew_interrupt_request_and_leave(old);
        } else {
            restore_state(old);
        }
    }

    /// Puts the calling thread back in application code (`old`), first renewing the
    /// layer's timer interrupt request if an interrupt that came while the thread was in
    /// the layer's code used it up and could only leave a note ([`RECHECK`]). Without
    /// this, a thread that computes after such a call or delivery would next be
    /// interrupted at the scheduler's tick, not at its timers' next deadline (a 1 ms
    /// `ITIMER_REAL` came about every 10 ms under a slow emulator, where the layer's
    /// own work takes about as long as the interval). The request and the state change
    /// happen with interrupts masked, so no interrupt can use the renewed request up
    /// while the thread is still marked as in the layer; due timers fire at that
    /// interrupt (at once, if one is due already).
    pub(crate) fn renew_interrupt_request_and_leave(&self, old: usize) {
        let Some(irqs) = uk_sched::irq::interrupts() else {
            restore_state(old);
            return;
        };
        // Computed before masking: it takes the layer's locks.
        let deadline = self.next_interrupt_deadline();
        let flags = irqs.mask();
        if RECHECK.swap(false, Ordering::Relaxed) {
            if let Some(deadline) = deadline {
                uk_sched::irq::request_timer_interrupt(deadline);
            }
        }
        restore_state(old);
        irqs.restore(flags);
    }

    /// Asks the scheduler for a timer interrupt at the caller's process's next timer
    /// deadline: the interval timer's and the POSIX timers' (those that notify), and the
    /// CPU-time timers' as they would run out if the process kept the CPU. Nothing without
    /// a process or without an interrupt-driven scheduler.
    pub(crate) fn request_timer_interrupt(&self) {
        if uk_sched::irq::interrupts().is_none() {
            return;
        }
        if let Some(deadline) = self.next_interrupt_deadline() {
            uk_sched::irq::request_timer_interrupt(deadline);
        }
    }

    /// When the caller's process next needs a timer interrupt (see
    /// [`System::request_timer_interrupt`]).
    fn next_interrupt_deadline(&self) -> Option<u64> {
        let now = self.monotonic_ns();
        let cpu = self.cpu_alarm_deadline(now);
        [self.timers_deadline(), cpu].into_iter().flatten().min()
    }

    /// On a system call's return: if an interrupt could not look at the timers, fire the
    /// caller's due ones and ask for the next interrupt.
    /// A caller the layer does not know (a thread of another subsystem) leaves the note for
    /// a thread of a process: looking would adopt it into one.
    pub(crate) fn recheck_timers_after_interrupt(&self) {
        if RECHECK.load(Ordering::Relaxed)
            && self.caller_is_known()
            && RECHECK.swap(false, Ordering::Relaxed)
        {
            self.fire_due_timers();
            self.request_timer_interrupt();
        }
    }
}

/// An FPU/SIMD save area on the stack, large enough for the XSAVE layouts QEMU's CPUs have
/// (x87, SSE, AVX: under 1 KiB; AVX-512 adds 2 KiB) and aarch64's 528 bytes.
#[repr(C, align(64))]
struct ExtendedArea([u8; 4096]);

/// Runs `body` (which runs C handlers) with the caller's FPU/SIMD registers saved before
/// and loaded again after, so the interrupted code finds its own. An area larger than the
/// stack one (a CPU with bigger XSAVE state) is taken from the heap.
#[allow(unsafe_code)]
pub(crate) fn keeping_extended_state(body: impl FnOnce()) {
    use uk_context::{ContextOps, Native};
    let ops = Native::detect();
    let layout = ops.ectx_layout();
    let mut on_stack = ExtendedArea([0; 4096]);
    let mut on_heap = alloc::vec::Vec::new();
    let area: *mut u8 = if layout.size() <= on_stack.0.len() && layout.align() <= 64 {
        on_stack.0.as_mut_ptr()
    } else {
        on_heap.resize(layout.size() + layout.align(), 0u8);
        let base = on_heap.as_mut_ptr();
        // SAFETY: the vector has `align` spare bytes, so the aligned address plus the
        // area's size stays inside it.
        unsafe { base.add(base.align_offset(layout.align())) }
    };
    // SAFETY: `area` is writable for the layout's size and aligned to its alignment (the
    // stack area is 64-byte aligned, which covers every layout of uk-context; the heap one
    // is aligned above); `ectx_init` prepares it and `ectx_save` fills it with the state
    // the interrupted code left.
    unsafe {
        ops.ectx_init(area);
        ops.ectx_save(area);
    }
    body();
    // SAFETY: the area holds what `ectx_save` wrote above, by the same implementation.
    unsafe { ops.ectx_restore(area) };
}
