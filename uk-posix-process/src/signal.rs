//! Signals: per-process actions, per-thread masks and pending sets, and delivery to the
//! calling thread.
//!
//! A libc needs signals even in a program that never handles one: musl blocks them around
//! `pthread_create` and `raise`, `abort` raises `SIGABRT`, and programs install handlers
//! with `signal`/`sigaction` and send themselves signals with `raise`, `kill` and
//! `pthread_kill`. This module gives those calls Linux's semantics where a unikernel can:
//!
//! - **Actions** (`rt_sigaction`) belong to the process: a handler, flags (`SA_SIGINFO`,
//!   `SA_NODEFER`, `SA_RESETHAND`; `SA_RESTART` and `SA_RESTORER` are kept and reported
//!   back) and the mask added while the handler runs. `SIGKILL` and `SIGSTOP` cannot be
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
//! as on Linux for a handler without `SA_RESTART` (libcs retry where they must).
//!
//! A signal for the process that the sender blocks goes to the first waiting thread of the
//! process that lets it through. `rt_sigsuspend` waits with a given mask until a handler
//! has run (then `EINTR`); `rt_sigtimedwait` (`sigwait`, `sigtimedwait`) takes a signal of
//! a set without running a handler, waiting for one with the set let through, up to a
//! timeout (`EAGAIN`).
//!
//! A sleeping thread (`nanosleep`, `clock_nanosleep`) is found the same way: its handler
//! runs and the sleep ends with `EINTR` (the raw calls write the time left to `rem`).
//!
//! A `SA_SIGINFO` handler gets a filled `siginfo_t` and a `ucontext_t` whose `uc_sigmask`
//! holds the mask the thread returns to; what the handler leaves there is restored when it
//! returns, as `sigreturn` does on Linux (musl's thread cancellation relies on it).
//!
//! What is not done: a signal for another thread that is running waits until it makes one
//! of the calls above, waits or sleeps; the rest of the `ucontext_t` is zeroed (there is no
//! interrupted register state to show); there is no `sigaltstack` or `rt_sigreturn`, and no asynchronous
//! signals (faults are the board's to report).
// One unsafe operation: calling the handler the program registered.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use uk_syscall::Errno;

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
/// Abort (`abort()`).
pub const SIGABRT: i32 = 6;
/// Kill: cannot be caught, blocked or ignored.
pub const SIGKILL: i32 = 9;
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
/// Window size change (ignored by default).
pub const SIGWINCH: i32 = 28;

/// Handler value: the default action.
pub const SIG_DFL: usize = 0;
/// Handler value: ignore the signal.
pub const SIG_IGN: usize = 1;

/// `sigaction` flag: the handler takes `(sig, siginfo_t *, ucontext_t *)`.
pub const SA_SIGINFO: u64 = 0x0000_0004;
/// `sigaction` flag: the restorer field is set (kept, not used: handlers return here).
pub const SA_RESTORER: u64 = 0x0400_0000;
/// `sigaction` flag: run the handler on the alternate stack (not supported: ignored).
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `sigaction` flag: restart interrupted calls (kept; calls are never interrupted here).
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
fn check_signal(sig: i32) -> Result<(), Errno> {
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
}

impl SigThread {
    /// A new thread's state: its creator's mask, nothing pending.
    pub(crate) fn inherit(creator: &SigThread) -> SigThread {
        SigThread {
            mask: creator.mask,
            pending: 0,
            queued: Vec::new(),
        }
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
}

impl Default for SigProcess {
    fn default() -> Self {
        SigProcess {
            actions: Box::new([SigAction::default(); NSIG]),
            pending: 0,
            queued: Vec::new(),
            alarm: None,
        }
    }
}

impl SigProcess {
    /// A new process's state: a copy of its creator's actions, nothing pending.
    pub(crate) fn for_new_process(&self) -> SigProcess {
        SigProcess {
            actions: self.actions.clone(),
            pending: 0,
            queued: Vec::new(),
            alarm: None,
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

/// Words of the `ucontext_t` a `SA_SIGINFO` handler gets (4.5 KiB: aarch64's, the larger
/// of the two).
const UCONTEXT_WORDS: usize = 576;

/// Where `uc_sigmask` lies in the kernel's `ucontext_t`, in words: after `uc_flags`,
/// `uc_link` and `uc_stack` (and, on x86_64, the 256-byte `uc_mcontext`).
const UC_SIGMASK_WORD: usize = if cfg!(target_arch = "aarch64") { 5 } else { 37 };

/// Calls the handler `action` names for `sig`. `restore` is the mask the thread goes back
/// to afterwards; a `SA_SIGINFO` handler finds it in its context's `uc_sigmask` and may
/// change it, as on Linux, where `sigreturn` restores the mask from there (musl's
/// cancellation handler adds its signal this way). Returns the mask to restore.
fn run_handler(sig: i32, action: &SigAction, info: SigInfo, restore: SigSet) -> SigSet {
    if action.flags & SA_SIGINFO != 0 {
        type Handler = extern "C" fn(i32, *mut SigInfo, *mut u64);
        let mut info = info;
        let mut context = Box::new([0u64; UCONTEXT_WORDS]);
        context[UC_SIGMASK_WORD] = restore;
        // SAFETY: the program registered this address (checked to lie in caller memory)
        // with `rt_sigaction` as an `SA_SIGINFO` handler, which C declares as
        // `void (*)(int, siginfo_t *, void *)`; the two pointers are to live, writable
        // memory of the sizes Linux gives.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(action.handler) };
        handler(sig, &mut info, context.as_mut_ptr());
        context[UC_SIGMASK_WORD]
    } else {
        type Handler = extern "C" fn(i32);
        // SAFETY: as above, a plain handler: `void (*)(int)`.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(action.handler) };
        handler(sig);
        restore
    }
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

    /// `kill(pid, sig)`: sends `sig` to a process (`pid` > 0), or to the caller's own
    /// (`pid` 0 or -1, or minus the caller's pid: its process group); signal 0 only checks
    /// that the process exists. A signal for the caller's process is delivered to the
    /// caller before this returns unless it blocks it.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a bad signal; `ESRCH` for no such process.
    pub fn kill(&self, pid: i32, sig: i32) -> Result<(), Errno> {
        if sig != 0 {
            check_signal(sig)?;
        }
        let own = self.getpid()?;
        let target = match pid {
            0 | -1 => own,
            p if p < -1 && p.unsigned_abs() as Pid == own => own,
            p if p > 0 => p as Pid,
            _ => return Err(Errno::ESRCH),
        };
        self.send_to_process(target, SigInfo::new(sig, SI_USER, own), false)
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
    fn send_to_process(&self, target: Pid, info: SigInfo, own: bool) -> Result<(), Errno> {
        let sig = info.signo;
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
        self.signals_sent.store(true, Ordering::Relaxed);
        if target == self.getpid()? {
            self.deliver_pending_signals();
        }
        self.hand_to_a_waiter(target, sig)
    }

    /// Lets the lock-free "no signal was ever sent" check see that one was.
    pub(crate) fn note_signal_sent(&self) {
        self.signals_sent.store(true, Ordering::Relaxed);
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
                self.wait_for_signal(deadline_ns, || self.has_deliverable_signal())
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
            self.signals_sent.store(true, Ordering::Relaxed);
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

    /// Delivers to the caller every pending signal it does not block (also what a futex
    /// wait a signal ended does before returning `EINTR`); returns how many handlers ran.
    pub(crate) fn deliver_pending_signals(&self) -> usize {
        let mut handled = 0;
        loop {
            let Ok(Some(((sig, queued, code), what, pid))) =
                self.with_caller_signals(|t, p, _, pid| {
                    take_deliverable(t, p).map(|(taken, what)| (taken, what, pid))
                })
            else {
                return handled;
            };
            let info = queued.unwrap_or_else(|| SigInfo::new(sig, code, pid));
            match what {
                Disposition::Drop => {}
                Disposition::Terminate => self.exit_group(128 + sig),
                Disposition::Handle(action) => {
                    let widen = action.mask
                        | if action.flags & SA_NODEFER != 0 {
                            0
                        } else {
                            sig_bit(sig)
                        };
                    let Ok(before) = self.with_caller_signals(|t, _, _, _| {
                        let before = t.mask;
                        t.mask = (before | widen) & !UNBLOCKABLE;
                        before
                    }) else {
                        return handled;
                    };
                    let restore = run_handler(sig, &action, info, before);
                    handled += 1;
                    // The handler may have changed the mask itself; sigreturn restores
                    // the one from before the signal (or what a `SA_SIGINFO` handler put
                    // in its context's `uc_sigmask`), and so does this.
                    let _ = self.with_caller_signals(|t, _, _, _| t.mask = restore & !UNBLOCKABLE);
                }
            }
        }
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
            }
        );
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
