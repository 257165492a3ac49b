//! Signals: per-process actions, per-thread masks and pending sets, and delivery to the
//! calling thread.
//!
//! A libc needs signals even in a program that never handles one: musl blocks them around
//! `pthread_create` and `raise`, `abort` raises `SIGABRT`, and programs install handlers
//! with `signal`/`sigaction` and send themselves signals with `raise`, `kill` and
//! `pthread_kill`. This module gives those calls Linux's semantics where a unikernel can:
//!
//! - **Actions** (`rt_sigaction`) belong to the process: a handler, flags (`SA_SIGINFO`,
//!   `SA_NODEFER`, `SA_RESETHAND`; `SA_RESTART`, honoured by uk-vfs's waits, and
//!   `SA_RESTORER` are kept and reported back) and the mask added while the handler runs. `SIGKILL` and `SIGSTOP` cannot be
//!   changed. A handler must lie in caller memory (`EFAULT` otherwise): a unikernel cannot
//!   let a wild address be called.
//! - **Masks** (`rt_sigprocmask`) belong to each thread; a new thread starts with its
//!   creator's mask, as on Linux. `SIGKILL` and `SIGSTOP` are never blocked.
//! - **Sending** (`kill`, `tkill`, `tgkill`, and `rt_sigqueueinfo`/`rt_tgsigqueueinfo`,
//!   which carry the sender's `siginfo_t` with its `si_value`) marks the signal pending on
//!   the process or the thread. A standard signal already pending is not sent twice; a
//!   real-time one (32 and up) queues, each instance delivered in order with its own
//!   information, up to [`MAX_QUEUED`] (`EAGAIN`). Signal 0 only checks that the target
//!   exists.
//! - **Delivery** happens to the calling thread, synchronously: at the end of a `kill`,
//!   `tkill`, `tgkill` or `rt_sigprocmask` call, every pending signal the thread does not
//!   block is taken, lowest number first. An ignored signal is dropped; a handler is called
//!   directly, on the thread's stack, with the mask widened as `sigaction` asked, and the
//!   call returns when it does (so `raise` returns after the handler, as POSIX requires);
//!   the default action of a signal that terminates ends the process through `exit_group`
//!   with status 128 + the signal number (what a shell reports for a killed program).
//!   Signals whose default is to be ignored (`SIGCHLD`, `SIGCONT`, `SIGURG`, `SIGWINCH`)
//!   and the stop signals (no job control here) are dropped.
//!
//! A signal sent to *another* thread that does not block it ends that thread's futex wait
//! (or the next one it starts): the thread runs the handler and the wait returns `EINTR`,
//! or, as on Linux, starts again when it has no timeout and the handler has `SA_RESTART`
//! ([`System::futex`](crate::System::futex)). A thread
//! that is runnable rather than waiting (it yielded, or was preempted in a call) runs the
//! handler on the way back from its current system call, whatever the call: the layer's
//! [`install`](crate::install) sets uk-syscall's return hook, which delivers the caller's
//! deliverable pending signals, as Linux does on every return to user space.
//!
//! A signal for the process that the sender blocks goes to the first waiting thread of the
//! process that lets it through. `rt_sigsuspend` waits with a given mask until a handler
//! has run (then `EINTR`); `rt_sigtimedwait` (`sigwait`, `sigtimedwait`) takes a signal of
//! a set without running a handler, waiting for one with the set let through, up to a
//! timeout (`EAGAIN`).
//!
//! A sleeping thread (`nanosleep`, `clock_nanosleep`) is found the same way: its handler
//! runs and the sleep ends with `EINTR` (the raw calls write the time left to `rem`). So is
//! a thread blocked in a pipe or eventfd `read`/`write` or a `flock` (their waits queue in
//! the futex table, feature `vfs`): the call ends with `EINTR`, or goes on when the handler
//! has `SA_RESTART` (see the `vfs_wait` module).
//!
//! A `SA_SIGINFO` handler gets a filled `siginfo_t` and a `ucontext_t` whose `uc_sigmask`
//! holds the mask the thread returns to; what the handler leaves there is restored when it
//! returns, as `sigreturn` does on Linux (musl's thread cancellation relies on it).
//!
//! **Alternate stacks** (`sigaltstack`) belong to each thread; a new thread starts with
//! none (Linux clears it for `CLONE_VM` without `CLONE_VFORK`, the only clone here). A
//! handler installed with `SA_ONSTACK` runs on the thread's alternate stack when it has one
//! and is not already running on it (a signal taken inside such a handler nests on the
//! same stack). The switch is uk-context's: a [`Context`] is laid out on the alternate
//! stack with [`ContextOps::init`] and entered with [`ContextOps::switch`], which comes back
//! once the handler returned; no assembly of this crate's own. `SS_AUTODISARM` disables
//! the stack while a handler runs, and every handler's return puts back the `uc_stack` of
//! its context, as Linux's `sigreturn` does (so a change made inside a handler that does
//! not run on the alternate stack is undone, and one made on it is refused with `EPERM`).
//! A stack that lies outside caller memory is refused with `EFAULT` when it is set (Linux
//! would take it and let the handler crash; here that would be the kernel). Nothing checks
//! that the handler fits: one that overflows the alternate stack writes below it.
//!
//! What is not done: a signal for another thread that is running waits until it makes one
//! of the calls above, waits or sleeps; the rest of the `ucontext_t` is zeroed (there is no
//! interrupted register state to show, only `uc_sigmask` and `uc_stack`); there is no
//! `rt_sigreturn`, and no asynchronous signals (faults are the board's to report).
// Two unsafe operations: calling the handler the program registered, and running it on
// the alternate stack (uk-context's `init` and `switch`).
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use uk_context::{Context, ContextOps, Native};
use uk_hal::irq::{GENERAL_REGISTERS, InterruptedRegisters};
use uk_syscall::Errno;
use uk_syscall::user::AddressSpace;

use crate::system::System;
use crate::{Pid, Tid};

/// Number of signals (1 to 64).
pub const NSIG: usize = 64;
/// A set of signals: bit `n - 1` stands for signal `n` (the kernel's `sigset_t`).
pub type SigSet = u64;

/// Hang-up.
pub const SIGHUP: i32 = 1;
/// Interrupt.
pub const SIGINT: i32 = 2;
/// Illegal instruction: an instruction the CPU does not execute (x86 `#UD`, Arm `UDF`).
pub const SIGILL: i32 = 4;
/// Trace/breakpoint trap: a breakpoint instruction (x86 `int3`, Arm `BRK`).
pub const SIGTRAP: i32 = 5;
/// Abort (`abort()`).
pub const SIGABRT: i32 = 6;
/// Bus error: an access the CPU refuses for its alignment (an Arm alignment fault).
pub const SIGBUS: i32 = 7;
/// Arithmetic exception: an integer division by zero or overflow (x86 `#DE`).
pub const SIGFPE: i32 = 8;
/// Kill: cannot be caught, blocked or ignored.
pub const SIGKILL: i32 = 9;
/// Invalid memory reference: an access against page rights or outside mapped memory
/// (delivered at the fault where the board offers faults; see [`crate::fault`]).
pub const SIGSEGV: i32 = 11;
/// User signal 1.
pub const SIGUSR1: i32 = 10;
/// User signal 2.
pub const SIGUSR2: i32 = 12;
/// Pipe with no reader.
pub const SIGPIPE: i32 = 13;
/// Timer expired (`alarm`, `setitimer(ITIMER_REAL)`).
pub const SIGALRM: i32 = 14;
/// Terminate.
pub const SIGTERM: i32 = 15;
/// Child status changed (ignored by default).
pub const SIGCHLD: i32 = 17;
/// Continue (ignored by default).
pub const SIGCONT: i32 = 18;
/// Stop: cannot be caught, blocked or ignored.
pub const SIGSTOP: i32 = 19;
/// Terminal stop.
pub const SIGTSTP: i32 = 20;
/// Background read from the terminal.
pub const SIGTTIN: i32 = 21;
/// Background write to the terminal.
pub const SIGTTOU: i32 = 22;
/// Urgent data on a socket (ignored by default).
pub const SIGURG: i32 = 23;
/// The virtual (CPU-time) interval timer expired (`setitimer(ITIMER_VIRTUAL)`).
pub const SIGVTALRM: i32 = 26;
/// The profiling interval timer expired (`setitimer(ITIMER_PROF)`).
pub const SIGPROF: i32 = 27;
/// Window size change (ignored by default).
pub const SIGWINCH: i32 = 28;

/// The name of signal `sig` (`"SIGSEGV"`), for log lines; `"SIGRT"` for a real-time signal
/// and `"signal"` for a number that names none.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        3 => "SIGQUIT",
        SIGILL => "SIGILL",
        SIGTRAP => "SIGTRAP",
        SIGABRT => "SIGABRT",
        SIGBUS => "SIGBUS",
        SIGFPE => "SIGFPE",
        SIGKILL => "SIGKILL",
        SIGUSR1 => "SIGUSR1",
        SIGSEGV => "SIGSEGV",
        SIGUSR2 => "SIGUSR2",
        SIGPIPE => "SIGPIPE",
        SIGALRM => "SIGALRM",
        SIGTERM => "SIGTERM",
        SIGCHLD => "SIGCHLD",
        SIGCONT => "SIGCONT",
        SIGSTOP => "SIGSTOP",
        SIGTSTP => "SIGTSTP",
        SIGTTIN => "SIGTTIN",
        SIGTTOU => "SIGTTOU",
        SIGURG => "SIGURG",
        SIGVTALRM => "SIGVTALRM",
        SIGPROF => "SIGPROF",
        SIGWINCH => "SIGWINCH",
        SIGRTMIN_KERNEL..=64 => "SIGRT",
        _ => "signal",
    }
}

/// Register `n` of the interrupted or faulting code a delivery runs on top of.
///
/// The layer holds [`InterruptedRegisters`] only while the interrupt handler or fault hook
/// that got them from the board runs (a delivery at an interrupt, [`crate::fault`]), which
/// is what [`InterruptedRegisters::get`] asks for.
pub(crate) fn saved_register(registers: &InterruptedRegisters, n: usize) -> Option<usize> {
    // SAFETY: see above: the board's frame is live while its handler or hook runs, and
    // the layer keeps no `InterruptedRegisters` beyond that.
    unsafe { registers.get(n) }
}

/// Handler value: the default action.
pub const SIG_DFL: usize = 0;
/// Handler value: ignore the signal.
pub const SIG_IGN: usize = 1;

/// `sigaction` flag for `SIGCHLD`: ended children whose exit signal is `SIGCHLD` leave no
/// zombie (see [`crate::system::wait`]).
pub const SA_NOCLDWAIT: u64 = 0x0000_0002;
/// `sigaction` flag: the handler takes `(sig, siginfo_t *, ucontext_t *)`.
pub const SA_SIGINFO: u64 = 0x0000_0004;
/// `sigaction` flag: the restorer field is set (kept, not used: handlers return here).
pub const SA_RESTORER: u64 = 0x0400_0000;
/// `sigaction` flag: run the handler on the thread's alternate stack ([`System::sigaltstack`])
/// when it has one and is not running on it already.
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `sigaction` flag: restart interrupted calls. Honoured for the waits of uk-vfs (a
/// blocking pipe or eventfd `read`/`write`, `flock`; see the `vfs_wait` module); futex waits,
/// sleeps, `poll`, `select`, `epoll_wait`, `sigsuspend` and `sigtimedwait` end with `EINTR`
/// whatever it says.
pub const SA_RESTART: u64 = 0x1000_0000;
/// `sigaction` flag: do not block the signal while its handler runs.
pub const SA_NODEFER: u64 = 0x4000_0000;
/// `sigaction` flag: reset the action to the default when the handler is entered.
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// `rt_sigprocmask` how: add the set to the mask.
pub const SIG_BLOCK: i32 = 0;
/// `rt_sigprocmask` how: remove the set from the mask.
pub const SIG_UNBLOCK: i32 = 1;
/// `rt_sigprocmask` how: the set becomes the mask.
pub const SIG_SETMASK: i32 = 2;

/// `si_code`: sent by `kill`.
pub const SI_USER: i32 = 0;
/// `si_code`: sent by `tkill` or `tgkill`.
pub const SI_TKILL: i32 = -6;
/// `si_code`: sent by `sigqueue` (`rt_sigqueueinfo`).
pub const SI_QUEUE: i32 = -1;
/// `si_code`: sent by the kernel (an interval timer's `SIGALRM`).
pub const SI_KERNEL: i32 = 0x80;
/// `si_code` of a `SIGSEGV`: no memory is mapped at the address.
pub const SEGV_MAPERR: i32 = 1;
/// `si_code` of a `SIGSEGV`: memory is mapped there, without the right for the access.
pub const SEGV_ACCERR: i32 = 2;
/// `si_code` of a `SIGBUS`: a misaligned address.
pub const BUS_ADRALN: i32 = 1;
/// `si_code` of a `SIGILL`: an illegal opcode.
pub const ILL_ILLOPC: i32 = 1;
/// `si_code` of a `SIGFPE`: an integer division by zero.
pub const FPE_INTDIV: i32 = 1;
/// `si_code` of a `SIGTRAP`: a breakpoint instruction.
pub const TRAP_BRKPT: i32 = 1;

/// The first real-time signal (the kernel's numbering; libcs keep a few for themselves, so
/// their `SIGRTMIN` is higher). Real-time signals queue: each one sent is delivered, in
/// order, with its own `siginfo_t`.
pub const SIGRTMIN_KERNEL: i32 = 32;

/// Signal instances that may wait with information of their own, per thread and per
/// process (Linux's `RLIMIT_SIGPENDING` is in the thousands; a send past this is `EAGAIN`).
pub const MAX_QUEUED: usize = 1024;

/// The set holding only `sig` (1 to 64).
pub const fn sig_bit(sig: i32) -> SigSet {
    1 << (sig - 1)
}

/// `stack_t` flag: the thread runs on its alternate stack (reported by
/// [`System::sigaltstack`]; given, it means the same as 0, as on Linux).
pub const SS_ONSTACK: i32 = 1;
/// `stack_t` flag: no alternate stack (given: remove it; reported: there is none).
pub const SS_DISABLE: i32 = 2;
/// `stack_t` flag (with 0 or `SS_ONSTACK`): disable the alternate stack while a handler
/// runs (it comes back when the handler returns), so that a handler may switch away from
/// it (`swapcontext`) and a nested signal starts it afresh.
pub const SS_AUTODISARM: i32 = i32::MIN;
/// The smallest alternate stack [`System::sigaltstack`] takes (`ENOMEM` below): Linux's
/// `MINSIGSTKSZ`, 2048 bytes on x86_64 and 5120 on aarch64.
pub const MINSIGSTKSZ: usize = if cfg!(target_arch = "aarch64") {
    5120
} else {
    2048
};

/// A size for an alternate stack that leaves room for a handler's calls: Linux's
/// `SIGSTKSZ`, 8192 bytes on x86_64 and 16384 on aarch64. The calls a handler makes run
/// on its stack too (the layer's own code, and for a call through the trap instruction
/// the trap frame, about 1 KiB on x86_64), so a stack of [`MINSIGSTKSZ`] suits only a
/// handler that calls little.
pub const SIGSTKSZ: usize = if cfg!(target_arch = "aarch64") {
    16384
} else {
    8192
};

/// A thread's alternate signal stack: the kernel's `stack_t` (`ss_sp`, `ss_flags`,
/// `ss_size`; 24 bytes on x86_64 and aarch64, the flags in a 32-bit `int` followed by 4
/// bytes of padding). The default is "none" (`SS_DISABLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigStack {
    /// The lowest address of the stack (it grows down from `ss_sp + ss_size`).
    pub ss_sp: usize,
    /// [`SS_ONSTACK`], [`SS_DISABLE`], [`SS_AUTODISARM`].
    pub ss_flags: i32,
    /// Its size in bytes.
    pub ss_size: usize,
}

impl Default for SigStack {
    fn default() -> Self {
        SigStack::DISABLED
    }
}

impl SigStack {
    /// Size of the kernel's `stack_t`.
    pub const RAW_SIZE: usize = 24;

    /// No alternate stack.
    pub const DISABLED: SigStack = SigStack {
        ss_sp: 0,
        ss_flags: SS_DISABLE,
        ss_size: 0,
    };

    /// Decodes the kernel's `stack_t` from its three words (the padding after `ss_flags`
    /// is ignored).
    pub fn from_words(words: [u64; 3]) -> SigStack {
        SigStack {
            ss_sp: words[0] as usize,
            ss_flags: words[1] as u32 as i32,
            ss_size: words[2] as usize,
        }
    }

    /// Encodes the kernel's `stack_t` as its three words (the padding zeroed).
    pub fn to_words(&self) -> [u64; 3] {
        [
            self.ss_sp as u64,
            u64::from(self.ss_flags as u32),
            self.ss_size as u64,
        ]
    }

    /// Whether this describes a stack (not `SS_DISABLE`).
    pub fn is_enabled(&self) -> bool {
        self.ss_flags & SS_DISABLE == 0
    }

    /// Whether a stack pointer `sp` lies in the stack, as Linux counts it: above `ss_sp`
    /// and at most at the top, `ss_sp + ss_size`.
    pub fn contains(&self, sp: usize) -> bool {
        self.is_enabled() && sp > self.ss_sp && sp - self.ss_sp <= self.ss_size
    }
}

/// The caller's stack pointer, near enough: the address of a local in its frame.
#[inline(always)]
pub(crate) fn stack_pointer() -> usize {
    let here = 0u8;
    core::hint::black_box(&here) as *const u8 as usize
}

/// Signals that can never be blocked, caught or ignored.
const UNBLOCKABLE: SigSet = sig_bit(SIGKILL) | sig_bit(SIGSTOP);
/// Signals whose default action does nothing here: ignored by default on Linux, or stop
/// signals (there is no job control).
const DEFAULT_DROPPED: SigSet = sig_bit(SIGCHLD)
    | sig_bit(SIGCONT)
    | sig_bit(SIGURG)
    | sig_bit(SIGWINCH)
    | sig_bit(SIGSTOP)
    | sig_bit(SIGTSTP)
    | sig_bit(SIGTTIN)
    | sig_bit(SIGTTOU);

/// `EINVAL` unless `sig` is a signal number (1 to 64).
pub(crate) fn check_signal(sig: i32) -> Result<(), Errno> {
    if (1..=NSIG as i32).contains(&sig) {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// One signal's action: the kernel's `struct sigaction` (handler, flags, restorer, mask;
/// the same 32-byte layout on x86_64 and aarch64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SigAction {
    /// [`SIG_DFL`], [`SIG_IGN`] or the handler's address.
    pub handler: usize,
    /// `SA_*` flags.
    pub flags: u64,
    /// The libc's return trampoline (kept and reported back).
    pub restorer: usize,
    /// Signals blocked while the handler runs (besides the signal itself).
    pub mask: SigSet,
}

impl SigAction {
    /// Size of the kernel's `struct sigaction`.
    pub const RAW_SIZE: usize = 32;

    /// Decodes the kernel's `struct sigaction`.
    pub fn from_raw(raw: [u8; Self::RAW_SIZE]) -> SigAction {
        let word = |i: usize| u64::from_ne_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap());
        SigAction {
            handler: word(0) as usize,
            flags: word(1),
            restorer: word(2) as usize,
            mask: word(3),
        }
    }

    /// Encodes the kernel's `struct sigaction`.
    pub fn to_raw(&self) -> [u8; Self::RAW_SIZE] {
        let mut raw = [0u8; Self::RAW_SIZE];
        let words = [
            self.handler as u64,
            self.flags,
            self.restorer as u64,
            self.mask,
        ];
        for (chunk, w) in raw.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        raw
    }
}

/// A thread's signal state: what it blocks and what is pending for it alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SigThread {
    pub(crate) mask: SigSet,
    pub(crate) pending: SigSet,
    /// Pending instances with information of their own ([`enqueue`]), oldest first.
    pub(crate) queued: Vec<SigInfo>,
    /// The alternate signal stack ([`SigStack::DISABLED`]: none); its flags are 0,
    /// [`SS_AUTODISARM`] or [`SS_DISABLE`].
    pub(crate) altstack: SigStack,
}

/// What entering a handler decided about stacks ([`SigThread::enter_handler`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HandlerStack {
    /// The alternate stack the handler runs on (`None`: the thread's current stack).
    switch_to: Option<SigStack>,
    /// The `uc_stack` of the handler's context: the alternate stack as it was at delivery.
    uc_stack: SigStack,
    /// The stack pointer the handler starts with (where its return is judged from).
    handler_sp: usize,
}

impl SigThread {
    /// A new thread's state: its creator's mask, nothing pending, no alternate stack.
    pub(crate) fn inherit(creator: &SigThread) -> SigThread {
        SigThread {
            mask: creator.mask,
            pending: 0,
            queued: Vec::new(),
            altstack: SigStack::DISABLED,
        }
    }

    /// Whether `sp` is on the alternate stack in the sense that forbids changing it: never
    /// with `SS_AUTODISARM` (as on Linux).
    fn on_altstack(&self, sp: usize) -> bool {
        self.altstack.ss_flags & SS_AUTODISARM == 0 && self.altstack.contains(sp)
    }

    /// The alternate stack as `sigaltstack`'s `old_ss` reports it to a caller at `sp`:
    /// `SS_DISABLE` when there is none, `SS_ONSTACK` when `sp` is on it, with
    /// `SS_AUTODISARM` when it was set so.
    fn altstack_report(&self, sp: usize) -> SigStack {
        let state = if !self.altstack.is_enabled() {
            SS_DISABLE
        } else if self.altstack.contains(sp) {
            SS_ONSTACK
        } else {
            0
        };
        SigStack {
            ss_flags: state | (self.altstack.ss_flags & SS_AUTODISARM),
            ..self.altstack
        }
    }

    /// `sigaltstack`'s change, for a caller at `sp`, as Linux checks it: `EPERM` while
    /// running on the stack, `EINVAL` for unknown flags, `ENOMEM` below [`MINSIGSTKSZ`],
    /// and here `EFAULT` for a stack outside `space`. Nothing changes on an error.
    fn set_altstack(
        &mut self,
        new: SigStack,
        sp: usize,
        space: &AddressSpace,
    ) -> Result<(), Errno> {
        if self.on_altstack(sp) {
            return Err(Errno::EPERM);
        }
        let mode = new.ss_flags & !SS_AUTODISARM;
        if !matches!(mode, 0 | SS_ONSTACK | SS_DISABLE) {
            return Err(Errno::EINVAL);
        }
        if mode == SS_DISABLE {
            self.altstack = SigStack::DISABLED;
            return Ok(());
        }
        if new.ss_size < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        space.check(new.ss_sp, new.ss_size)?;
        self.altstack = SigStack {
            ss_flags: new.ss_flags & SS_AUTODISARM,
            ..new
        };
        Ok(())
    }

    /// Decides where a handler with `flags` delivered to the thread at `sp` runs: on the
    /// alternate stack for `SA_ONSTACK` when the thread has one and is not on it. Saves the
    /// stack for the handler's `uc_stack` and applies `SS_AUTODISARM` (Linux's
    /// `get_sigframe` and `__save_altstack`).
    fn enter_handler(&mut self, flags: u64, sp: usize) -> HandlerStack {
        let uc_stack = self.altstack;
        let switch_to =
            (flags & SA_ONSTACK != 0 && self.altstack.is_enabled() && !self.altstack.contains(sp))
                .then_some(self.altstack);
        if self.altstack.ss_flags & SS_AUTODISARM != 0 {
            self.altstack = SigStack::DISABLED;
        }
        HandlerStack {
            switch_to,
            uc_stack,
            handler_sp: switch_to.map_or(sp, |s| s.ss_sp + s.ss_size),
        }
    }

    /// After the handler: puts back the `uc_stack` it left (Linux's `restore_altstack` at
    /// `sigreturn`, judged from where the handler ran); a refused value is dropped.
    fn leave_handler(&mut self, uc_stack: SigStack, handler_sp: usize, space: &AddressSpace) {
        let _ = self.set_altstack(uc_stack, handler_sp, space);
    }

    /// `rt_sigprocmask`'s change to the mask; returns the previous mask. Without a set the
    /// mask is only read (and `how` not checked, as on Linux).
    fn change_mask(&mut self, how: i32, set: Option<SigSet>) -> Result<SigSet, Errno> {
        let old = self.mask;
        if let Some(set) = set {
            self.mask = match how {
                SIG_BLOCK => old | set,
                SIG_UNBLOCK => old & !set,
                SIG_SETMASK => set,
                _ => return Err(Errno::EINVAL),
            } & !UNBLOCKABLE;
        }
        Ok(old)
    }
}

/// A process's signal state: the actions, and what is pending for the process as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SigProcess {
    // Boxed: 2 KiB would otherwise sit in every process entry, on small thread stacks.
    actions: Box<[SigAction; NSIG]>,
    pub(crate) pending: SigSet,
    /// Pending instances with information of their own ([`enqueue`]), oldest first.
    pub(crate) queued: Vec<SigInfo>,
    /// The process's real-time interval timer (`setitimer(ITIMER_REAL)`, `alarm`).
    pub(crate) alarm: Option<crate::itimer::Alarm>,
    /// The process's CPU-time interval timers (`ITIMER_VIRTUAL`, `ITIMER_PROF`), their
    /// deadlines in process CPU time.
    pub(crate) cpu_alarms: [Option<crate::itimer::Alarm>; 2],
    /// The process's POSIX timers (`timer_create`).
    pub(crate) timers: crate::timer::Timers,
}

impl Default for SigProcess {
    fn default() -> Self {
        SigProcess {
            actions: Box::new([SigAction::default(); NSIG]),
            pending: 0,
            queued: Vec::new(),
            alarm: None,
            cpu_alarms: [None; 2],
            timers: crate::timer::Timers::new(),
        }
    }
}

impl SigProcess {
    /// What the process's `SIGCHLD` action says about children that end with it:
    /// (no signal is sent: `SIG_IGN`; no zombie is kept: `SIG_IGN` or `SA_NOCLDWAIT`).
    pub(crate) fn child_exit_disposition(&self) -> (bool, bool) {
        let action = &self.actions[SIGCHLD as usize - 1];
        let ignored = action.handler == SIG_IGN;
        (ignored, ignored || action.flags & SA_NOCLDWAIT != 0)
    }

    /// The signals the process ignores and those it has handlers for (`/proc`'s `SigIgn`
    /// and `SigCgt`: bit `n - 1` for signal `n`).
    #[cfg(feature = "vfs")]
    pub(crate) fn ignored_and_caught(&self) -> (SigSet, SigSet) {
        let mut ignored = 0;
        let mut caught = 0;
        for (i, a) in self.actions.iter().enumerate() {
            match a.handler {
                SIG_DFL => {}
                SIG_IGN => ignored |= 1 << i,
                _ => caught |= 1 << i,
            }
        }
        (ignored, caught)
    }

    /// A new process's state: a copy of its creator's actions, nothing pending.
    pub(crate) fn for_new_process(&self) -> SigProcess {
        SigProcess {
            actions: self.actions.clone(),
            pending: 0,
            queued: Vec::new(),
            alarm: None,
            cpu_alarms: [None; 2],
            timers: crate::timer::Timers::new(),
        }
    }

    /// `rt_sigaction`'s change: returns the previous action. Setting `SIGKILL`'s or
    /// `SIGSTOP`'s action is `EINVAL` (reading it is fine). An action that ignores the
    /// signal discards it where it is pending for the process.
    fn set_action(&mut self, sig: i32, new: Option<SigAction>) -> Result<SigAction, Errno> {
        check_signal(sig)?;
        let slot = &mut self.actions[sig as usize - 1];
        let old = *slot;
        if let Some(mut action) = new {
            if UNBLOCKABLE & sig_bit(sig) != 0 {
                return Err(Errno::EINVAL);
            }
            action.mask &= !UNBLOCKABLE;
            *slot = action;
            if matches!(disposition(sig, &action), Disposition::Drop) {
                self.pending &= !sig_bit(sig);
                self.queued.retain(|info| info.signo != sig);
            }
        }
        Ok(old)
    }
}

/// What delivering a signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// Nothing.
    Drop,
    /// Ends the process.
    Terminate,
    /// Calls the handler.
    Handle(SigAction),
}

fn disposition(sig: i32, action: &SigAction) -> Disposition {
    match action.handler {
        SIG_IGN => Disposition::Drop,
        SIG_DFL if DEFAULT_DROPPED & sig_bit(sig) != 0 => Disposition::Drop,
        SIG_DFL => Disposition::Terminate,
        _ => Disposition::Handle(*action),
    }
}

/// Marks `info.signo` pending in `pending`/`queued`, as Linux queues it: a real-time
/// signal always queues, with `info`; a standard one that is already pending is not sent
/// again, and otherwise keeps `info` only when it is `own` information (a `sigqueue`'s),
/// the default being made at delivery from where it was pending.
///
/// # Errors
///
/// `EAGAIN` when [`MAX_QUEUED`] instances wait already (nothing changes).
pub(crate) fn enqueue(
    pending: &mut SigSet,
    queued: &mut Vec<SigInfo>,
    info: SigInfo,
    own: bool,
) -> Result<(), Errno> {
    let bit = sig_bit(info.signo);
    let realtime = info.signo >= SIGRTMIN_KERNEL;
    if !realtime && *pending & bit != 0 {
        return Ok(());
    }
    if realtime || own {
        if queued.len() >= MAX_QUEUED {
            return Err(Errno::EAGAIN);
        }
        queued.push(info);
    }
    *pending |= bit;
    Ok(())
}

/// Queues a POSIX timer's signal `info` in `pending`/`queued` as Linux does, where each
/// timer has a queue entry of its own: a timer's instance queues even when a standard
/// signal of its number is pending already (two timers, or a `kill` and a timer, give two
/// deliveries). A standard signal pending without queued information (a `kill`'s, whose
/// information is made at delivery) first gets it now, as `bare` (the information it would
/// be delivered with), so that the two instances stay apart.
///
/// # Errors
///
/// `EAGAIN` when [`MAX_QUEUED`] instances wait already (nothing changes).
pub(crate) fn enqueue_timer(
    pending: &mut SigSet,
    queued: &mut Vec<SigInfo>,
    info: SigInfo,
    bare: SigInfo,
) -> Result<(), Errno> {
    let bit = sig_bit(info.signo);
    let untold = *pending & bit != 0 && !queued.iter().any(|q| q.signo == info.signo);
    if queued.len() + usize::from(untold) >= MAX_QUEUED {
        return Err(Errno::EAGAIN);
    }
    if untold {
        queued.push(bare);
    }
    queued.push(info);
    *pending |= bit;
    Ok(())
}

/// Takes one instance of `sig` from `pending`/`queued`: its queued information if it has
/// some; the bit stays set while more instances of a real-time signal wait.
fn dequeue(pending: &mut SigSet, queued: &mut Vec<SigInfo>, sig: i32) -> Option<SigInfo> {
    let info = queued
        .iter()
        .position(|i| i.signo == sig)
        .map(|at| queued.remove(at));
    if !queued.iter().any(|i| i.signo == sig) {
        *pending &= !sig_bit(sig);
    }
    info
}

/// Takes the queued instance of `signo` that `is_it` picks out of `pending`/`queued`
/// without delivering it (a deleted timer's signal); the bit of `signo` is cleared unless
/// another instance of it still waits. Returns whether one was taken.
///
/// A standard signal that is pending without queued information (a `kill`'s) is never
/// taken by this: when a timer queues its information on such a bit, the bare instance
/// gets information of its own first ([`enqueue_timer`]), and a send while the timer's
/// waits adds nothing, so the bit stands for queued instances alone.
pub(crate) fn withdraw(
    pending: &mut SigSet,
    queued: &mut Vec<SigInfo>,
    signo: i32,
    is_it: impl Fn(&SigInfo) -> bool,
) -> bool {
    let Some(at) = queued.iter().position(|i| i.signo == signo && is_it(i)) else {
        return false;
    };
    queued.remove(at);
    if !queued.iter().any(|i| i.signo == signo) {
        *pending &= !sig_bit(signo);
    }
    true
}

/// A signal taken from a pending set: its number, its queued information if any, and the
/// `si_code` it gets otherwise (`SI_TKILL` for the thread's set, `SI_USER` for the
/// process's).
type Taken = (i32, Option<SigInfo>, i32);

/// Takes the lowest-numbered signal of `allowed` pending for the thread (its own first,
/// then the process's).
fn take_lowest(t: &mut SigThread, p: &mut SigProcess, allowed: SigSet) -> Option<Taken> {
    for (pending, queued, code) in [
        (&mut t.pending, &mut t.queued, SI_TKILL),
        (&mut p.pending, &mut p.queued, SI_USER),
    ] {
        let ready = *pending & allowed;
        if ready != 0 {
            let sig = ready.trailing_zeros() as i32 + 1;
            let info = dequeue(pending, queued, sig);
            return Some((sig, info, code));
        }
    }
    None
}

/// Takes the lowest-numbered pending signal the thread does not block (its own first,
/// then the process's), with what delivering it means; applies `SA_RESETHAND`.
fn take_deliverable(t: &mut SigThread, p: &mut SigProcess) -> Option<(Taken, Disposition)> {
    let (sig, info, code) = take_lowest(t, p, !t.mask)?;
    let action = p.actions[sig as usize - 1];
    let what = disposition(sig, &action);
    if matches!(what, Disposition::Handle(_)) && action.flags & SA_RESETHAND != 0 {
        p.actions[sig as usize - 1] = SigAction::default();
    }
    Some(((sig, info, code), what))
}

/// The kernel's `siginfo_t` (128 bytes) for a signal sent by `kill` or `tkill`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigInfo {
    /// Signal number.
    pub signo: i32,
    /// Always 0.
    pub errno: i32,
    /// [`SI_USER`] or [`SI_TKILL`].
    pub code: i32,
    _pad: i32,
    /// The sender's process id.
    pub pid: i32,
    /// The sender's user id (0).
    pub uid: u32,
    /// The value a `sigqueue` sent (`si_value`); 0 otherwise.
    pub value: u64,
    _rest: [u64; 12],
}

impl SigInfo {
    /// The information of `SIGCHLD` about child `pid`, which ended `how` after `cpu_ticks`
    /// of CPU time (`si_status` where `si_value` lies, `si_utime` after it; `si_stime` 0).
    pub fn child(pid: Pid, how: crate::system::wait::ExitKind, cpu_ticks: i64) -> SigInfo {
        let mut rest = [0; 12];
        rest[0] = cpu_ticks as u64;
        SigInfo {
            value: how.si_status() as u32 as u64,
            _rest: rest,
            ..SigInfo::new(SIGCHLD, how.si_code(), pid)
        }
    }

    /// The `struct signalfd_siginfo` a signalfd read returns for this signal: the fields
    /// Linux copies for its kind (a timer's id, overrun and value; a child's pid, status
    /// and CPU time; a queued signal's sender and value; otherwise the sender).
    pub fn to_signalfd(&self) -> [u8; 128] {
        let mut out = [0u8; 128];
        let mut put = |at: usize, bytes: &[u8]| out[at..at + bytes.len()].copy_from_slice(bytes);
        put(0, &(self.signo as u32).to_ne_bytes());
        put(4, &self.errno.to_ne_bytes());
        put(8, &self.code.to_ne_bytes());
        if self.code == crate::timer::SI_TIMER {
            // si_tid, si_overrun, si_value.
            put(24, &(self.pid as u32).to_ne_bytes());
            put(32, &self.uid.to_ne_bytes());
            put(44, &(self.value as i32).to_ne_bytes());
            put(48, &self.value.to_ne_bytes());
            return out;
        }
        put(12, &(self.pid as u32).to_ne_bytes());
        put(16, &self.uid.to_ne_bytes());
        if self.signo == SIGCHLD && self.code > 0 {
            put(40, &(self.value as i32).to_ne_bytes());
            put(56, &self._rest[0].to_ne_bytes());
            put(64, &self._rest[1].to_ne_bytes());
        } else if self.code < 0 && self.code != SI_TKILL {
            // sigqueue and the other real-time sources: the value.
            put(44, &(self.value as i32).to_ne_bytes());
            put(48, &self.value.to_ne_bytes());
        }
        out
    }

    /// `si_utime` of a `SIGCHLD`'s information: the child's CPU time in clock ticks.
    pub fn child_cpu_ticks(&self) -> i64 {
        self._rest[0] as i64
    }

    /// The information of a fault signal (`SIGSEGV`) with `si_code` `code` at `addr`
    /// (`si_addr`, where a sender's pid and uid lie for other signals).
    pub fn fault(signo: i32, code: i32, addr: usize) -> SigInfo {
        let addr = addr as u64;
        SigInfo {
            pid: addr as u32 as i32,
            uid: (addr >> 32) as u32,
            ..SigInfo::new(signo, code, 0)
        }
    }

    /// The fault address of a [`SigInfo::fault`] (`si_addr`).
    pub fn addr(&self) -> usize {
        (u64::from(self.pid as u32) | u64::from(self.uid) << 32) as usize
    }

    /// The information about signal `signo` sent with `si_code` `code` by process `pid`.
    pub fn new(signo: i32, code: i32, pid: Pid) -> SigInfo {
        SigInfo {
            signo,
            errno: 0,
            code,
            _pad: 0,
            pid,
            uid: 0,
            value: 0,
            _rest: [0; 12],
        }
    }

    /// The `siginfo_t` a caller gave `rt_sigqueueinfo`, as its 16 words: the number,
    /// `si_errno`, `si_code`, the sender's pid and uid, and `si_value`; the rest (fields
    /// of other signal kinds) is kept as given.
    pub fn from_words(words: [u64; 16]) -> SigInfo {
        let mut rest = [0; 12];
        rest.copy_from_slice(&words[4..]);
        SigInfo {
            signo: words[0] as u32 as i32,
            errno: (words[0] >> 32) as u32 as i32,
            code: words[1] as u32 as i32,
            _pad: (words[1] >> 32) as u32 as i32,
            pid: words[2] as u32 as i32,
            uid: (words[2] >> 32) as u32,
            value: words[3],
            _rest: rest,
        }
    }
}

/// Words of the `ucontext_t` a `SA_SIGINFO` handler gets: the C library's `ucontext_t`,
/// which a handler may copy whole (x86_64: 936 bytes with `__fpregs_mem`, 968 in glibc;
/// aarch64: 4.5 KiB with `uc_mcontext`'s 4 KiB `__reserved` area), rounded up.
const UCONTEXT_WORDS: usize = if cfg!(target_arch = "aarch64") {
    576
} else {
    128
};

/// A handler's `ucontext_t`, 16-byte aligned as both architectures' contexts are. It lives
/// in the delivering frame on the thread's stack, as Linux puts its signal frame on the
/// stack: a handler that leaves with `siglongjmp` abandons it with the rest of the frames
/// it jumps over, leaving nothing behind (it was a heap box once, which such a handler
/// leaked).
#[repr(C, align(16))]
struct SignalContext([u64; UCONTEXT_WORDS]);

/// Where `uc_sigmask` lies in the kernel's `ucontext_t`, in words: after `uc_flags`,
/// `uc_link` and `uc_stack` (and, on x86_64, the 256-byte `uc_mcontext`).
const UC_SIGMASK_WORD: usize = if cfg!(target_arch = "aarch64") { 5 } else { 37 };

/// x86_64's `uc_mcontext.fpregs`, in words (after the 23 `gregs`), and the
/// `__fpregs_mem` area of the C library's `ucontext_t` it points to (after the 128-byte
/// `uc_sigmask`), as Linux points it at the signal frame's saved FPU state. The image does
/// not report the FPU registers there (the area reads 0), but code that follows the
/// pointer, as handlers written for Linux may, reads the context and not address 0.
const UC_FPREGS_WORD: usize = 28;
const UC_FPREGS_MEM_WORD: usize = UC_SIGMASK_WORD + 16;

/// Where `uc_stack` (three words) lies in the kernel's `ucontext_t`, in words: after
/// `uc_flags` and `uc_link`, on both architectures.
const UC_STACK_WORD: usize = 2;

/// Where the general registers begin in the kernel's `ucontext_t`, in words, numbered as
/// [`uk_hal::irq::GENERAL_REGISTERS`]: x86_64's `gregs` after `uc_stack`; aarch64's
/// `regs[31]`, `sp`, `pc` and `pstate` after the 128-byte `uc_sigmask` and the 16-byte
/// aligned `sigcontext`'s `fault_address`.
const UC_REGISTERS_WORD: usize = if cfg!(target_arch = "aarch64") { 23 } else { 5 };

/// Calls the handler `action` names for `sig`, on `stack.switch_to` when given. `restore`
/// is the mask the thread goes back to afterwards; a `SA_SIGINFO` handler finds it in its
/// context's `uc_sigmask` and may change it, as on Linux, where `sigreturn` restores the
/// mask from there (musl's cancellation handler adds its signal this way); the same goes
/// for `uc_stack`. `interrupted`, for a delivery at a timer interrupt (`crate::interrupt`),
/// holds the registers the interrupt saved: the context's `uc_mcontext` reports them, and
/// what the handler changes there the interrupted code resumes with, as after `sigreturn`
/// (musl's asynchronous cancellation sends the thread to its cancellation code by moving
/// the program counter). Returns the mask and the alternate stack to restore.
fn run_handler(
    sig: i32,
    action: &SigAction,
    info: SigInfo,
    restore: SigSet,
    stack: &HandlerStack,
    interrupted: Option<InterruptedRegisters>,
) -> (SigSet, SigStack) {
    if action.flags & SA_SIGINFO != 0 {
        type Handler = extern "C" fn(i32, *mut SigInfo, *mut u64);
        let mut info = info;
        let mut context = SignalContext([0u64; UCONTEXT_WORDS]);
        let context = &mut context.0;
        if cfg!(target_arch = "x86_64") {
            context[UC_FPREGS_WORD] = context[UC_FPREGS_MEM_WORD..].as_ptr() as u64;
        }
        context[UC_SIGMASK_WORD] = restore;
        context[UC_STACK_WORD..UC_STACK_WORD + 3].copy_from_slice(&stack.uc_stack.to_words());
        let mut reported = [0u64; GENERAL_REGISTERS];
        if let Some(registers) = &interrupted {
            for (n, value) in reported.iter_mut().enumerate() {
                *value = saved_register(registers, n).unwrap_or(0) as u64;
            }
            context[UC_REGISTERS_WORD..UC_REGISTERS_WORD + GENERAL_REGISTERS]
                .copy_from_slice(&reported);
        }
        // SAFETY: the program registered this address (checked to lie in caller memory)
        // with `rt_sigaction` as an `SA_SIGINFO` handler, which C declares as
        // `void (*)(int, siginfo_t *, void *)`; the two pointers are to live, writable
        // memory of the sizes Linux gives.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(action.handler) };
        let mut call = || handler(sig, &mut info, context.as_mut_ptr());
        crate::interrupt::running_handler(|| run_on(stack.switch_to, &mut call));
        if let Some(registers) = &interrupted {
            let changed = context[UC_REGISTERS_WORD..UC_REGISTERS_WORD + GENERAL_REGISTERS]
                .iter()
                .zip(reported)
                .enumerate()
                .filter(|(_, (now, before))| **now != *before);
            for (n, (&value, _)) in changed {
                // SAFETY: as above; the interrupted code resumes with what the handler
                // chose, as after `sigreturn` (registers the board reports only are left).
                unsafe { registers.set(n, value as usize) };
            }
        }
        let mut uc_stack = [0u64; 3];
        uc_stack.copy_from_slice(&context[UC_STACK_WORD..UC_STACK_WORD + 3]);
        (context[UC_SIGMASK_WORD], SigStack::from_words(uc_stack))
    } else {
        type Handler = extern "C" fn(i32);
        // SAFETY: as above, a plain handler: `void (*)(int)`.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(action.handler) };
        crate::interrupt::running_handler(|| run_on(stack.switch_to, &mut || handler(sig)));
        (restore, stack.uc_stack)
    }
}

/// A call waiting to run on another stack ([`run_on`]): the body, the context to come back
/// to, the context on that stack, and the switch (detected once: CPUID on x86_64).
struct OnStack<'a> {
    body: &'a mut dyn FnMut(),
    back: Context,
    there: Context,
    ops: Native,
}

/// The entry of the context [`run_on`] lays out on the alternate stack: runs the body,
/// then switches back for good (nothing resumes this context).
extern "C" fn on_stack_entry(call: usize, _: usize) -> ! {
    let call = call as *mut OnStack<'_>;
    // SAFETY: `call` is the `OnStack` of `run_on`, whose frame waits in its switch until
    // the switch below, so it is alive and nothing else uses it meanwhile.
    unsafe { ((*call).body)() };
    // SAFETY: `back` was saved by `run_on`'s switch, on a stack that is alive (its frame
    // waits there); `there` is writable and is never resumed.
    unsafe {
        (*call)
            .ops
            .switch(&raw mut (*call).there, &raw const (*call).back)
    };
    unreachable!("the alternate stack's context is never resumed");
}

/// Runs `body` on `stack` (from its top down) when given, else here. The thread stays
/// the same thread: uk-context's `init` lays out a context on the stack and `switch`
/// enters it and comes back (saving what the ABI asks a call to keep), so a handler that
/// blocks is switched out and back on the alternate stack like any other code.
fn run_on(stack: Option<SigStack>, body: &mut dyn FnMut()) {
    let Some(stack) = stack else {
        body();
        return;
    };
    let mut call = OnStack {
        body,
        back: Context::new(),
        there: Context::new(),
        ops: Native::detect(),
    };
    let call = &raw mut call;
    // SAFETY: the alternate stack lies in caller memory (checked by `sigaltstack`) and the
    // program handed it over for handlers; the thread is not running on it (checked at
    // delivery), so nothing else uses it while the handler runs.
    let laid_out = unsafe {
        (*call).ops.init(
            &mut (*call).there,
            stack.ss_sp as *mut u8,
            stack.ss_size,
            on_stack_entry,
            call as usize,
            0,
        )
    };
    if laid_out.is_err() {
        // A stack too small for the entry frame (not at MINSIGSTKSZ): run here.
        // SAFETY: `call` points to the live local above, used by nothing else.
        unsafe { ((*call).body)() };
        return;
    }
    // SAFETY: `there` was just laid out by `init` on a stack that stays alive and unused
    // for the call; `back` is writable and is resumed by `on_stack_entry` once the body
    // returned, with this frame (and `call`) intact.
    unsafe {
        (*call)
            .ops
            .switch(&raw mut (*call).back, &raw const (*call).there)
    };
}

impl System {
    /// `rt_sigaction(sig, act, oact)`: sets the action of `sig` for the caller's process
    /// when `new` is given, and returns the previous one.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a signal out of 1 to 64, or for setting `SIGKILL`'s or `SIGSTOP`'s
    /// action; `EFAULT` for a handler outside caller memory. Nothing changes on an error.
    pub fn rt_sigaction(&self, sig: i32, new: Option<SigAction>) -> Result<SigAction, Errno> {
        if let Some(a) = new
            && a.handler > SIG_IGN
        {
            self.address_space().check(a.handler, 1)?;
        }
        self.with_caller_signals(|_, p, _, _| p.set_action(sig, new))?
    }

    /// `rt_sigprocmask(how, set, oset)`: changes the calling thread's mask when `set` is
    /// given and returns the previous one; then delivers what the new mask lets through.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown `how` with a set. Nothing changes on an error.
    pub fn rt_sigprocmask(&self, how: i32, set: Option<SigSet>) -> Result<SigSet, Errno> {
        let old = self.with_caller_signals(|t, _, _, _| t.change_mask(how, set))??;
        self.deliver_pending_signals();
        Ok(old)
    }

    /// `rt_sigpending`: the signals pending for the calling thread or its process.
    ///
    /// # Errors
    ///
    /// `EAGAIN` when the caller is new and no id is left to adopt it.
    pub fn sigpending(&self) -> Result<SigSet, Errno> {
        self.with_caller_signals(|t, p, _, _| t.pending | p.pending)
    }

    /// `sigaltstack(ss, old_ss)`: sets the calling thread's alternate signal stack when
    /// `new` is given and returns the previous one as Linux reports it (`ss_flags`:
    /// [`SS_DISABLE`] when there was none, [`SS_ONSTACK`] when the caller runs on it, and
    /// [`SS_AUTODISARM`] when it was set so). `new`'s flags: 0 (or `SS_ONSTACK`, the same),
    /// with [`SS_AUTODISARM`] or not, or [`SS_DISABLE`] to remove it. Handlers installed
    /// with [`SA_ONSTACK`] run there.
    ///
    /// # Errors
    ///
    /// `EPERM` while the caller runs on its alternate stack (unless it was set with
    /// `SS_AUTODISARM`); `EINVAL` for unknown flags; `ENOMEM` for a stack smaller than
    /// [`MINSIGSTKSZ`]; `EFAULT` for a stack outside caller memory. Nothing changes on an
    /// error.
    pub fn sigaltstack(&self, new: Option<SigStack>) -> Result<SigStack, Errno> {
        self.sigaltstack_at(new, stack_pointer())
    }

    /// [`System::sigaltstack`] for a caller whose stack pointer is `sp` (the raw call takes
    /// it from the trap entry's frame).
    ///
    /// # Errors
    ///
    /// As [`System::sigaltstack`].
    pub fn sigaltstack_at(&self, new: Option<SigStack>, sp: usize) -> Result<SigStack, Errno> {
        let space = self.address_space();
        self.with_caller_signals(|t, _, _, _| {
            let old = t.altstack_report(sp);
            if let Some(new) = new {
                t.set_altstack(new, sp, &space)?;
            }
            Ok(old)
        })?
    }

    /// `kill(pid, sig)`: sends `sig` to a process (`pid` > 0), to every process of the
    /// caller's process group (`pid` 0) or of group `-pid` (`pid` < -1), or to every
    /// process but init and the caller's (`pid` -1), as Linux does; signal 0 only checks
    /// that there is such a process. A zombie takes the signal without effect. A signal
    /// for the caller's process is delivered to the caller before this returns unless it
    /// blocks it (after the other processes were sent theirs).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad signal; `ESRCH` for no such process.
    pub fn kill(&self, pid: i32, sig: i32) -> Result<(), Errno> {
        if sig != 0 {
            check_signal(sig)?;
        }
        let own = self.getpid()?;
        let mut result = Err(Errno::ESRCH);
        for target in self.kill_targets(pid)? {
            // Another process keeps the information (its si_pid is the sender's, not the
            // receiver's, which is what a bare instance gets at delivery).
            let info = SigInfo::new(sig, SI_USER, own);
            let sent = self.send_to_process(target, info, target != own);
            // Success when any process got it (Linux's rule for groups).
            if result.is_err() {
                result = sent;
            }
        }
        result
    }

    /// `rt_sigqueueinfo(pid, sig, info)` (`sigqueue`): sends `sig` to process `pid` with the
    /// caller's `siginfo_t`, whose `si_signo` becomes `sig`. A real-time signal queues
    /// behind the others of its number; each is delivered with its own information.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad signal; `EPERM` for information claiming to come from the kernel
    /// or `tkill` (`si_code` ≥ 0 or `SI_TKILL`) sent to another process, as Linux refuses
    /// it; `ESRCH` for no such process; `EAGAIN` when [`MAX_QUEUED`] signals wait already.
    pub fn rt_sigqueueinfo(&self, pid: i32, sig: i32, info: SigInfo) -> Result<(), Errno> {
        if sig != 0 {
            check_signal(sig)?;
        }
        if pid <= 0 {
            return Err(Errno::ESRCH);
        }
        let own = self.getpid()?;
        if (info.code >= 0 || info.code == SI_TKILL) && pid as Pid != own {
            return Err(Errno::EPERM);
        }
        self.send_to_process(pid as Pid, SigInfo { signo: sig, ..info }, true)
    }

    /// Sends `info.signo` to process `target` (0: only checks that it exists), `own`
    /// telling whether the information is the sender's own ([`enqueue`]); delivers it to
    /// the caller when the caller belongs to `target`, else wakes a waiting thread of
    /// `target` that lets it through.
    /// Sends `info` to process `target` as `rt_sigqueueinfo` would (the information kept),
    /// or, with signal 0, checks that it exists.
    #[cfg(feature = "vfs")]
    pub(crate) fn send_signal_to(&self, target: Pid, info: SigInfo) -> Result<(), Errno> {
        let keep = self.getpid()? != target || info.code != SI_USER;
        self.send_to_process(target, info, keep)
    }

    fn send_to_process(&self, target: Pid, info: SigInfo, own: bool) -> Result<(), Errno> {
        let sig = info.signo;
        if self.is_zombie(target) {
            // It exists until it is waited for, and takes no signal (as on Linux).
            return Ok(());
        }
        if sig == 0 {
            return if self.pid_exists(target) {
                Ok(())
            } else {
                Err(Errno::ESRCH)
            };
        }
        self.with_process_signals(target, |p| {
            enqueue(&mut p.pending, &mut p.queued, info, own)
        })??;
        self.note_signal_sent();
        if target == self.getpid()? {
            self.deliver_pending_signals();
        }
        self.hand_to_a_waiter(target, sig)
    }

    /// Sends process `target` a signal the layer itself raised (a child's exit signal),
    /// with `info`, from whatever thread runs: unlike [`System::kill`] this never looks at
    /// (or adopts) the caller. Nothing happens when `target` has ended.
    pub(crate) fn notify_process(&self, target: Pid, info: SigInfo) {
        let sent = self.with_process_signals(target, |p| {
            enqueue(&mut p.pending, &mut p.queued, info, true)
        });
        if matches!(sent, Ok(Ok(()))) {
            self.note_signal_sent();
            let _ = self.hand_to_a_waiter(target, info.signo);
        }
    }

    /// Lets the lock-free "no signal was ever sent" check see that one was, and tells
    /// uk-vfs's signalfds that one became pending (their readers and pollers look again).
    /// Called once the signal is pending.
    pub(crate) fn note_signal_sent(&self) {
        self.signals_sent.store(true, Ordering::Relaxed);
        #[cfg(feature = "vfs")]
        uk_vfs::signalfd::signals_arrived();
    }

    /// Whether a signal of `mask` is pending for the caller or its process (what makes a
    /// signalfd readable for it).
    #[cfg(feature = "vfs")]
    pub(crate) fn caller_has_pending(&self, mask: SigSet) -> bool {
        self.with_caller_signals(|t, p, _, _| (t.pending | p.pending) & mask != 0)
            .unwrap_or(false)
    }

    /// Takes the lowest-numbered signal of `mask` pending for the caller (its own before
    /// its process's), as `sigtimedwait` takes it: consumed, no handler runs.
    #[cfg(feature = "vfs")]
    pub(crate) fn take_pending(&self, mask: SigSet) -> Option<SigInfo> {
        self.with_caller_signals(|t, p, _, pid| {
            take_lowest(t, p, mask & !UNBLOCKABLE)
                .map(|(sig, queued, code)| queued.unwrap_or_else(|| SigInfo::new(sig, code, pid)))
        })
        .ok()
        .flatten()
    }

    /// While `sig` is still pending for process `target` (the caller blocks it, or it is
    /// for another process), wakes the first waiting thread of `target` that lets it
    /// through, which takes it, as Linux picks a thread.
    pub(crate) fn hand_to_a_waiter(&self, target: Pid, sig: i32) -> Result<(), Errno> {
        if self.with_process_signals(target, |p| p.pending & sig_bit(sig) != 0)? {
            for thread in self.threads_letting_through(target, sig_bit(sig)) {
                if self.futex.interrupt(thread) {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `rt_sigsuspend(mask)`: replaces the calling thread's mask with `mask` until a signal
    /// runs a handler (or ends the process), then restores it and fails with `EINTR`, as it
    /// always does. Ignored signals do not end the wait.
    ///
    /// # Errors
    ///
    /// `EINTR` after a handler ran; `ENOSYS` outside a scheduler thread (the mask is
    /// restored).
    pub fn rt_sigsuspend(&self, mask: SigSet) -> Result<usize, Errno> {
        self.with_temporary_mask(mask, || {
            loop {
                if self.deliver_pending_signals() > 0 {
                    return Err(Errno::EINTR);
                }
                self.wait_for_signal(None, || self.has_deliverable_signal())?;
            }
        })?
    }

    /// `pause()`: waits, with the calling thread's own mask, until a signal runs a handler
    /// (or ends the process), then fails with `EINTR`, as it always does.
    ///
    /// # Errors
    ///
    /// `EINTR` after a handler ran; `ENOSYS` outside a scheduler thread.
    pub fn pause(&self) -> Result<usize, Errno> {
        loop {
            if self.deliver_pending_signals() > 0 {
                return Err(Errno::EINTR);
            }
            self.wait_for_signal(None, || self.has_deliverable_signal())?;
        }
    }

    /// Runs `f` with the calling thread's mask set to `mask` (never holding `SIGKILL` or
    /// `SIGSTOP`), then puts the previous mask back, whatever `f` did to it.
    pub(crate) fn with_temporary_mask<R>(
        &self,
        mask: SigSet,
        f: impl FnOnce() -> R,
    ) -> Result<R, Errno> {
        let before = self.with_caller_signals(|t, _, _, _| {
            core::mem::replace(&mut t.mask, mask & !UNBLOCKABLE)
        })?;
        let result = f();
        let _ = self.with_caller_signals(|t, _, _, _| t.mask = before);
        Ok(result)
    }

    /// `rt_sigtimedwait(set, info, timeout)`: takes a signal of `set` pending for the
    /// calling thread or its process, waiting for one until `deadline_ns` of the monotonic
    /// clock (`None`: for ever). The signal is taken, not delivered: no handler runs. While
    /// it waits, the signals of `set` are let through, so that a sender finds the thread
    /// (`SIGKILL` and `SIGSTOP` are never taken).
    ///
    /// # Errors
    ///
    /// `EAGAIN` when the deadline passes first; `EINTR` when a signal outside `set` ran its
    /// handler meanwhile; `ENOSYS` outside a scheduler thread.
    pub fn rt_sigtimedwait(&self, set: SigSet, deadline_ns: Option<u64>) -> Result<SigInfo, Errno> {
        let set = set & !UNBLOCKABLE;
        loop {
            let taken = self.with_caller_signals(|t, p, _, pid| {
                take_lowest(t, p, set).map(|(sig, queued, code)| {
                    queued.unwrap_or_else(|| SigInfo::new(sig, code, pid))
                })
            })?;
            if let Some(info) = taken {
                return Ok(info);
            }
            if self.deliver_pending_signals() > 0 {
                return Err(Errno::EINTR);
            }
            if deadline_ns.is_some_and(|d| self.monotonic_ns() >= d) {
                return Err(Errno::EAGAIN);
            }
            let mask = self.with_caller_signals(|t, _, _, _| t.mask)?;
            self.with_temporary_mask(mask & !set, || {
                let deadline = deadline_ns.map(crate::time::Deadline::Monotonic);
                self.wait_for_signal(deadline, || self.has_deliverable_signal())
            })??;
        }
    }

    /// `tgkill(tgid, tid, sig)`; `tgid` `None` is `tkill(tid, sig)`. The signal is pending
    /// for that thread alone; sent to the caller, it is delivered before this returns
    /// unless blocked.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad signal or an id not above 0; `ESRCH` when the thread does not
    /// exist or is not in `tgid`.
    pub fn tgkill(&self, tgid: Option<i32>, tid: i32, sig: i32) -> Result<(), Errno> {
        let own = self.getpid()?;
        self.send_to_thread(tgid, tid, SigInfo::new(sig, SI_TKILL, own), false)
    }

    /// `rt_tgsigqueueinfo(tgid, tid, sig, info)` (`pthread_sigqueue`): as
    /// [`System::rt_sigqueueinfo`], for one thread of process `tgid`.
    ///
    /// # Errors
    ///
    /// As [`System::rt_sigqueueinfo`], and `EINVAL` for a non-positive id.
    pub fn rt_tgsigqueueinfo(
        &self,
        tgid: i32,
        tid: i32,
        sig: i32,
        info: SigInfo,
    ) -> Result<(), Errno> {
        let own = self.getpid()?;
        if tgid > 0 && (info.code >= 0 || info.code == SI_TKILL) && tgid as Pid != own {
            return Err(Errno::EPERM);
        }
        self.send_to_thread(Some(tgid), tid, SigInfo { signo: sig, ..info }, true)
    }

    /// Sends `info.signo` to thread `tid` (of process `tgid` when given); 0 only checks
    /// that the thread exists. Delivered before this returns when the thread is the
    /// caller and does not block it; else a waiting target is woken to take it.
    fn send_to_thread(
        &self,
        tgid: Option<i32>,
        tid: i32,
        info: SigInfo,
        own: bool,
    ) -> Result<(), Errno> {
        let sig = info.signo;
        if sig != 0 {
            check_signal(sig)?;
        }
        if tid <= 0 || tgid.is_some_and(|g| g <= 0) {
            return Err(Errno::EINVAL);
        }
        let me = self.gettid()?;
        let (thread_id, deliverable) =
            self.with_thread_signals(tid as Tid, tgid.map(|g| g as Pid), |t| {
                if sig != 0 {
                    enqueue(&mut t.pending, &mut t.queued, info, own)?;
                }
                Ok::<_, Errno>(sig != 0 && t.mask & sig_bit(sig) == 0)
            })?;
        let deliverable = deliverable?;
        if sig != 0 {
            self.note_signal_sent();
        }
        if tid as Tid == me {
            if sig != 0 {
                self.deliver_pending_signals();
            }
        } else if deliverable {
            // A thread waiting on a futex is woken to take it (EINTR).
            self.futex.interrupt(thread_id);
        }
        Ok(())
    }

    /// Whether a signal is pending for the caller (or its process) that it does not block.
    /// Lock-free `false` while no signal was ever sent (a futex wait asks on every call).
    pub(crate) fn has_deliverable_signal(&self) -> bool {
        self.signals_sent.load(Ordering::Relaxed)
            && self
                .with_caller_signals(|t, p, _, _| (t.pending | p.pending) & !t.mask != 0)
                .unwrap_or(false)
    }

    /// What a system call's return does ([`uk_syscall::set_return_hook`]): delivers the
    /// caller's deliverable pending signals, if any signal was ever sent, and only to a
    /// scheduler thread the layer already knows (a thread of another subsystem that makes
    /// a call is not adopted into a process by it).
    pub(crate) fn deliver_on_return(&self) {
        self.deliver_on_return_to(None);
    }

    /// [`System::deliver_on_return`] on the way back from an interrupt that saved the
    /// `interrupted` code's registers (`None`: a system call's return): the first
    /// `SA_SIGINFO` handler's context reports them and may change them (see `run_handler`).
    pub(crate) fn deliver_on_return_to(&self, interrupted: Option<InterruptedRegisters>) {
        self.fire_due_cpu_alarms();
        if self.signals_sent.load(Ordering::Relaxed)
            && uk_sched::current().is_some()
            && self.known_caller_has_deliverable_signal()
        {
            self.deliver_signals(interrupted);
        }
    }

    /// Delivers to the caller every pending signal it does not block (also what a futex
    /// wait a signal ended does before returning `EINTR`); returns how many handlers ran.
    pub(crate) fn deliver_pending_signals(&self) -> usize {
        self.deliver_pending_signals_noting_restart().0
    }

    /// As [`System::deliver_pending_signals`], also telling whether the first handler that
    /// ran was installed with `SA_RESTART`: Linux decides whether an interrupted call
    /// restarts by the first signal it delivers.
    pub(crate) fn deliver_pending_signals_noting_restart(&self) -> (usize, bool) {
        self.deliver_signals(None)
    }

    /// The delivery loop of [`System::deliver_pending_signals_noting_restart`];
    /// `interrupted` goes to the first handler (see [`System::deliver_on_return_to`]).
    fn deliver_signals(&self, mut interrupted: Option<InterruptedRegisters>) -> (usize, bool) {
        let mut handled = 0;
        let mut restart = false;
        loop {
            let Ok(Some(((sig, queued, code), what, pid))) =
                self.with_caller_signals(|t, p, _, pid| {
                    take_deliverable(t, p).map(|(taken, what)| (taken, what, pid))
                })
            else {
                return (handled, restart);
            };
            let info = queued.unwrap_or_else(|| SigInfo::new(sig, code, pid));
            match what {
                Disposition::Drop => {}
                Disposition::Terminate => self.killed_by(sig),
                Disposition::Handle(action) => {
                    // Only the first handler runs on top of the interrupted code.
                    if !self.handle(sig, &action, info, interrupted.take()) {
                        return (handled, restart);
                    }
                    if handled == 0 {
                        restart = action.flags & SA_RESTART != 0;
                    }
                    handled += 1;
                }
            }
        }
    }

    /// Runs the caller's handler `action` for `sig` with `info`, blocking its mask (and
    /// `sig`, unless `SA_NODEFER`) meanwhile, on the alternate stack when it asks for one;
    /// `interrupted` as in [`System::deliver_on_return_to`]. `false` when the caller is no
    /// thread of a process (nothing ran).
    pub(crate) fn handle(
        &self,
        sig: i32,
        action: &SigAction,
        info: SigInfo,
        interrupted: Option<InterruptedRegisters>,
    ) -> bool {
        let widen = action.mask
            | if action.flags & SA_NODEFER != 0 {
                0
            } else {
                sig_bit(sig)
            };
        let sp = stack_pointer();
        let Ok((before, stack)) = self.with_caller_signals(|t, _, _, _| {
            let before = t.mask;
            t.mask = (before | widen) & !UNBLOCKABLE;
            (before, t.enter_handler(action.flags, sp))
        }) else {
            return false;
        };
        let (restore, uc_stack) = run_handler(sig, action, info, before, &stack, interrupted);
        // The handler may have changed the mask itself; sigreturn restores the one from
        // before the signal (or what a `SA_SIGINFO` handler put in its context's
        // `uc_sigmask`), and so does this; likewise the alternate stack from `uc_stack`.
        let space = self.address_space();
        let _ = self.with_caller_signals(|t, _, _, _| {
            t.mask = restore & !UNBLOCKABLE;
            t.leave_handler(uc_stack, stack.handler_sp, &space);
        });
        true
    }

    /// The caller's action for a fault signal `sig` (Linux's `force_sig_fault`), taken as
    /// delivery takes it (`SA_RESETHAND` resets it): `None` when the signal is blocked, or
    /// ignored or left to its default, which for a fault ends the program.
    pub(crate) fn take_fault_action(&self, sig: i32) -> Option<SigAction> {
        self.with_caller_signals(|t, p, _, _| {
            if t.mask & sig_bit(sig) != 0 {
                return None;
            }
            let action = p.actions[sig as usize - 1];
            let Disposition::Handle(action) = disposition(sig, &action) else {
                return None;
            };
            if action.flags & SA_RESETHAND != 0 {
                p.actions[sig as usize - 1] = SigAction::default();
            }
            Some(action)
        })
        .ok()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigaction_round_trips_and_refuses_kill_and_stop() {
        let mut p = SigProcess::default();
        let a = SigAction {
            handler: 0x1234,
            flags: SA_SIGINFO | SA_RESTART,
            restorer: 0x99,
            mask: sig_bit(SIGUSR2) | sig_bit(SIGKILL),
        };
        assert_eq!(SigAction::from_raw(a.to_raw()), a);
        assert_eq!(p.set_action(SIGUSR1, Some(a)), Ok(SigAction::default()));
        // SIGKILL cannot be in a handler's mask.
        let stored = p.set_action(SIGUSR1, None).unwrap();
        assert_eq!(stored.mask, sig_bit(SIGUSR2));
        for sig in [SIGKILL, SIGSTOP] {
            assert_eq!(p.set_action(sig, Some(a)), Err(Errno::EINVAL));
            assert_eq!(p.set_action(sig, None), Ok(SigAction::default()));
        }
        for bad in [0, -1, 65, i32::MAX] {
            assert_eq!(p.set_action(bad, None), Err(Errno::EINVAL));
        }
    }

    #[test]
    fn masks_change_as_asked_and_never_hold_kill_or_stop() {
        let mut t = SigThread::default();
        assert_eq!(t.change_mask(SIG_BLOCK, Some(u64::MAX)), Ok(0));
        assert_eq!(t.mask, !UNBLOCKABLE);
        assert_eq!(
            t.change_mask(SIG_UNBLOCK, Some(sig_bit(SIGINT))),
            Ok(!UNBLOCKABLE)
        );
        assert_eq!(t.mask & sig_bit(SIGINT), 0);
        assert_eq!(
            t.change_mask(SIG_SETMASK, Some(sig_bit(SIGTERM)))
                .map(|_| t.mask),
            Ok(sig_bit(SIGTERM))
        );
        // A bad `how` with a set changes nothing; without a set it only reads.
        assert_eq!(t.change_mask(7, Some(0)), Err(Errno::EINVAL));
        assert_eq!(t.change_mask(7, None), Ok(sig_bit(SIGTERM)));
        assert_eq!(t.mask, sig_bit(SIGTERM));
        assert_eq!(
            SigThread::inherit(&t),
            SigThread {
                mask: sig_bit(SIGTERM),
                pending: 0,
                queued: Vec::new(),
                altstack: SigStack::DISABLED,
            }
        );
    }

    fn arena() -> (usize, AddressSpace) {
        let mut space = AddressSpace::empty();
        space.add(0x10_0000, 0x10_0000);
        (0x10_0000, space)
    }

    #[test]
    fn stack_t_round_trips_and_ignores_padding() {
        let ss = SigStack {
            ss_sp: 0x1234_5000,
            ss_flags: SS_AUTODISARM | SS_ONSTACK,
            ss_size: 8192,
        };
        assert_eq!(SigStack::from_words(ss.to_words()), ss);
        assert_eq!(ss.to_words()[1], 0x8000_0001);
        let mut words = ss.to_words();
        words[1] |= 0xdead_beef << 32;
        assert_eq!(SigStack::from_words(words), ss);
        assert_eq!(SigStack::default(), SigStack::DISABLED);
        assert!(!SigStack::DISABLED.contains(0));
        // Linux's bounds: above the base, up to and including the top.
        let s = SigStack { ss_flags: 0, ..ss };
        assert!(!s.contains(s.ss_sp));
        assert!(s.contains(s.ss_sp + 1));
        assert!(s.contains(s.ss_sp + s.ss_size));
        assert!(!s.contains(s.ss_sp + s.ss_size + 1));
    }

    #[test]
    fn sigaltstack_checks_flags_size_memory_and_the_stack_in_use() {
        let (base, space) = arena();
        let mut t = SigThread::default();
        let elsewhere = base - 0x1000;
        assert_eq!(t.altstack_report(elsewhere), SigStack::DISABLED);
        let good = SigStack {
            ss_sp: base,
            ss_flags: 0,
            ss_size: MINSIGSTKSZ,
        };
        // Refused: nothing changes.
        for (bad, want) in [
            (
                SigStack {
                    ss_flags: 4,
                    ..good
                },
                Errno::EINVAL,
            ),
            (
                SigStack {
                    ss_flags: SS_ONSTACK | SS_DISABLE,
                    ..good
                },
                Errno::EINVAL,
            ),
            (
                SigStack {
                    ss_flags: 1 << 30,
                    ..good
                },
                Errno::EINVAL,
            ),
            (
                SigStack {
                    ss_size: MINSIGSTKSZ - 1,
                    ..good
                },
                Errno::ENOMEM,
            ),
            (
                SigStack {
                    ss_size: 0,
                    ss_flags: SS_AUTODISARM,
                    ..good
                },
                Errno::ENOMEM,
            ),
            (SigStack { ss_sp: 0, ..good }, Errno::EFAULT),
            (
                SigStack {
                    ss_sp: base + 0x10_0000 - 16,
                    ..good
                },
                Errno::EFAULT,
            ),
            (
                SigStack {
                    ss_sp: usize::MAX - 100,
                    ..good
                },
                Errno::EFAULT,
            ),
        ] {
            assert_eq!(t.set_altstack(bad, elsewhere, &space), Err(want), "{bad:?}");
            assert_eq!(t.altstack, SigStack::DISABLED);
        }
        // SS_ONSTACK given means 0; the report says whether the caller is on it.
        let given = SigStack {
            ss_flags: SS_ONSTACK,
            ..good
        };
        assert_eq!(t.set_altstack(given, elsewhere, &space), Ok(()));
        assert_eq!(t.altstack_report(elsewhere), good);
        let inside = base + 100;
        assert_eq!(
            t.altstack_report(inside),
            SigStack {
                ss_flags: SS_ONSTACK,
                ..good
            }
        );
        // On it: EPERM for any change, even disabling; reading is fine.
        for change in [SigStack::DISABLED, good] {
            assert_eq!(t.set_altstack(change, inside, &space), Err(Errno::EPERM));
        }
        assert_eq!(t.altstack, good);
        // SS_AUTODISARM: reported, and changing it on the stack is allowed.
        let disarm = SigStack {
            ss_flags: SS_AUTODISARM,
            ss_size: 3 * MINSIGSTKSZ,
            ..good
        };
        assert_eq!(t.set_altstack(disarm, elsewhere, &space), Ok(()));
        assert_eq!(
            t.altstack_report(inside).ss_flags,
            SS_ONSTACK | SS_AUTODISARM
        );
        // SS_DISABLE takes no size and forgets the stack.
        let off = SigStack {
            ss_sp: 0x99,
            ss_flags: SS_DISABLE,
            ss_size: 1,
        };
        assert_eq!(t.set_altstack(off, inside, &space), Ok(()));
        assert_eq!(t.altstack, SigStack::DISABLED);
        assert_eq!(t.altstack_report(inside), SigStack::DISABLED);
        // A new thread starts without one.
        t.set_altstack(good, elsewhere, &space).unwrap();
        assert_eq!(SigThread::inherit(&t).altstack, SigStack::DISABLED);
    }

    #[test]
    fn handlers_switch_only_with_sa_onstack_off_the_stack_and_autodisarm_comes_back() {
        let (base, space) = arena();
        let mut t = SigThread::default();
        let sp = base - 0x1000;
        // No alternate stack: nothing switches.
        let h = t.enter_handler(SA_ONSTACK, sp);
        assert_eq!(h.switch_to, None);
        assert_eq!(h.uc_stack, SigStack::DISABLED);
        let alt = SigStack {
            ss_sp: base,
            ss_flags: 0,
            ss_size: 4 * MINSIGSTKSZ,
        };
        t.set_altstack(alt, sp, &space).unwrap();
        assert_eq!(t.enter_handler(0, sp).switch_to, None, "no SA_ONSTACK");
        let h = t.enter_handler(SA_ONSTACK | SA_SIGINFO, sp);
        assert_eq!(h.switch_to, Some(alt));
        assert_eq!(h.uc_stack, alt);
        assert_eq!(h.handler_sp, base + alt.ss_size);
        // Already on it: the handler nests where it is.
        assert_eq!(t.enter_handler(SA_ONSTACK, base + 64).switch_to, None);
        // Returning from a handler on the alternate stack cannot change it (EPERM there);
        // from one elsewhere it puts back uc_stack (undoing the handler's own change).
        t.leave_handler(SigStack::DISABLED, h.handler_sp, &space);
        assert_eq!(t.altstack, alt);
        t.altstack = SigStack::DISABLED;
        t.leave_handler(alt, sp, &space);
        assert_eq!(t.altstack, alt);
        // SS_AUTODISARM: disabled while the handler runs, back afterwards.
        let disarm = SigStack {
            ss_flags: SS_AUTODISARM,
            ..alt
        };
        t.set_altstack(disarm, sp, &space).unwrap();
        let h = t.enter_handler(SA_ONSTACK, sp);
        assert_eq!(h.switch_to, Some(disarm));
        assert_eq!(h.uc_stack, disarm);
        assert_eq!(t.altstack, SigStack::DISABLED);
        assert_eq!(
            t.enter_handler(SA_ONSTACK, h.handler_sp - 64).switch_to,
            None
        );
        t.leave_handler(h.uc_stack, h.handler_sp, &space);
        assert_eq!(t.altstack, disarm);
        // A uc_stack the handler made wild is dropped.
        t.leave_handler(SigStack { ss_sp: 8, ..alt }, sp, &space);
        assert_eq!(t.altstack, disarm);
    }

    #[test]
    fn delivery_order_blocking_and_dispositions() {
        let mut t = SigThread::default();
        let mut p = SigProcess::default();
        let handler = SigAction {
            handler: 0x1000,
            flags: SA_RESETHAND,
            ..SigAction::default()
        };
        p.set_action(SIGUSR1, Some(handler)).unwrap();
        p.set_action(
            SIGHUP,
            Some(SigAction {
                handler: SIG_IGN,
                ..SigAction::default()
            }),
        )
        .unwrap();
        t.pending = sig_bit(SIGUSR1) | sig_bit(SIGTERM) | sig_bit(SIGCHLD);
        p.pending = sig_bit(SIGINT);
        t.mask = sig_bit(SIGTERM);
        // The thread's own first, lowest number first; blocked ones stay.
        assert_eq!(
            take_deliverable(&mut t, &mut p),
            Some(((SIGUSR1, None, SI_TKILL), Disposition::Handle(handler)))
        );
        assert_eq!(
            p.actions[SIGUSR1 as usize - 1],
            SigAction::default(),
            "SA_RESETHAND"
        );
        assert_eq!(
            take_deliverable(&mut t, &mut p),
            Some(((SIGCHLD, None, SI_TKILL), Disposition::Drop))
        );
        assert_eq!(
            take_deliverable(&mut t, &mut p),
            Some(((SIGINT, None, SI_USER), Disposition::Terminate))
        );
        assert_eq!(take_deliverable(&mut t, &mut p), None);
        assert_eq!(t.pending, sig_bit(SIGTERM));
        // Ignoring a signal discards it where it is pending for the process.
        p.pending = sig_bit(SIGHUP) | sig_bit(SIGUSR2);
        p.set_action(
            SIGUSR2,
            Some(SigAction {
                handler: SIG_IGN,
                ..SigAction::default()
            }),
        )
        .unwrap();
        assert_eq!(p.pending, sig_bit(SIGHUP));
        assert_eq!(
            take_deliverable(&mut t, &mut p),
            Some(((SIGHUP, None, SI_USER), Disposition::Drop))
        );
    }
}
