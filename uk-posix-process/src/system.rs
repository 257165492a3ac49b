//! The process layer's state: processes, threads, ids; clone, exit and exit_group.
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::lock::Lock as Mutex;
use uk_sched::{ContextSwitches, Stack, Thread, ThreadRef};

use crate::cputime::CpuClock;
use uk_syscall::Errno;

use crate::flags::{CloneArgs, ClonePlan, Via, flag_names};
use crate::futex::FutexTable;
use crate::host::{self, DataLimitHook, ExitHook, PageSource, ThreadHost};
use crate::ids::{DEFAULT_MAX_ID, IdAllocator, Pid, Tid};
use crate::mm::Mm;
use crate::rlimit::Limits;
use crate::signal::{SIGCHLD, SigProcess, SigThread};
use wait::{ExitKind, Zombie};

pub mod procctl;
pub(crate) mod procfs;
pub mod wait;
use uk_syscall::user::{AddressSpace, UserPtr, UserSlice};

/// State touched only with its lock held, on the one CPU of the image.
pub(crate) struct Cpu<T>(pub(crate) T);

// SAFETY: uk-rs images run their threads on one CPU and `Cpu` values are only reached
// through a `Lock` (a spin lock), so the `!Send` thread handles inside (`Arc<Thread>`) are never
// used by two CPUs; hosted tests give each OS thread its own `System` (or serialise use of
// the global one).
unsafe impl<T> Send for Cpu<T> {}

/// How a cloned child begins to run.
pub enum ChildStart {
    /// Calls `entry(arg)` on the child's stack (the clone stack, or a fresh one of
    /// `RLIMIT_STACK` bytes when none was given); the value it returns is the thread's
    /// exit status. This is musl's `__clone(fn, stack, flags, arg, ...)` as a direct call.
    Call {
        /// The child's first function.
        entry: fn(usize) -> i32,
        /// Its argument.
        arg: usize,
    },
    /// [`ChildStart::Call`] with a C function (musl's `__clone` from C: [`crate::uk_clone`]).
    CallC {
        /// The child's first function.
        entry: extern "C" fn(usize) -> i32,
        /// Its argument.
        arg: usize,
    },
    /// Runs `resume` on a fresh kernel stack of `kernel_stack` bytes. The syscall layer
    /// passes a closure that restores the caller's trap frame with the child's stack
    /// pointer and a return value of 0 (Linux register semantics); if it ever returns, the
    /// thread exits with status 0.
    Resume {
        /// Continues the child in the caller's code.
        resume: Box<dyn FnOnce()>,
        /// Size of the kernel stack it runs on.
        kernel_stack: usize,
    },
}

impl core::fmt::Debug for ChildStart {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Call { entry, arg } => f
                .debug_struct("Call")
                .field("entry", &(*entry as usize as *const ()))
                .field("arg", arg)
                .finish(),
            Self::CallC { entry, arg } => f
                .debug_struct("CallC")
                .field("entry", &(*entry as usize as *const ()))
                .field("arg", arg)
                .finish(),
            Self::Resume { kernel_stack, .. } => f
                .debug_struct("Resume")
                .field("kernel_stack", kernel_stack)
                .finish_non_exhaustive(),
        }
    }
}

/// Bytes of a clone stack below its top that the child's first frame may use when the
/// caller did not say how big the stack is (legacy clone).
const STACK_WINDOW: usize = 512;

/// The size of Linux's `struct robust_list_head` (three words: `list.next`,
/// `futex_offset`, `list_op_pending`): the only length `set_robust_list` accepts, and the
/// one `get_robust_list` reports.
pub const ROBUST_LIST_HEAD_LEN: usize = 3 * core::mem::size_of::<usize>();

struct ThreadEntry {
    tid: Tid,
    pid: Pid,
    clear_child_tid: usize,
    /// The head of the thread's robust-futex list (`set_robust_list`), 0 if none.
    robust_list: usize,
    handle: Option<ThreadRef>,
    /// Created by this layer (its exit callback does the bookkeeping).
    tracked: bool,
    exit_code: u8,
    sig: SigThread,
    /// The thread's name (`prctl(PR_SET_NAME)`), NUL-padded.
    name: [u8; procctl::NAME_LEN],
    /// Its scheduling policy (`sched_setscheduler`): one without priorities.
    policy: i32,
    /// Its nice value (`setpriority`), -20 to 19: kept and reported, not weighed.
    nice: i32,
}

struct Process {
    ppid: Pid,
    threads: Vec<Tid>,
    /// How the process ends, once `exit_group` or a fatal signal decided it.
    group_exit: Option<ExitKind>,
    /// The signal its parent gets when it ends (clone's `CSIGNAL` bits).
    exit_signal: i32,
    /// What its waited-for children (and their own) used.
    children_usage: Usage,
    sig: SigProcess,
    /// CPU time of the process's threads that have ended, in nanoseconds.
    ended_cpu_ns: u64,
    /// Context switches of the process's threads that have ended.
    ended_switches: ContextSwitches,
    /// Process group and session (`setpgid`, `setsid`).
    pgid: Pid,
    sid: Pid,
    /// What `prctl` sets for the process.
    controls: procctl::Controls,
    /// What it was started as (`/proc/<pid>/cmdline` and `exe`): its creator's when
    /// `clone` made it.
    program: Option<alloc::sync::Arc<procfs::Program>>,
}

impl Process {
    /// A process of parent `ppid`, in the group and session `of` (its creator's) or, for
    /// the first, in group and session 0 as Linux's init starts.
    fn new(ppid: Pid, exit_signal: i32, sig: SigProcess, of: Option<&Process>) -> Process {
        Process {
            ppid,
            threads: Vec::new(),
            group_exit: None,
            exit_signal,
            children_usage: Usage::default(),
            sig,
            ended_cpu_ns: 0,
            ended_switches: ContextSwitches::default(),
            pgid: of.map_or(0, |p| p.pgid),
            sid: of.map_or(0, |p| p.sid),
            controls: of.map_or_else(procctl::Controls::default, |p| p.controls.for_child()),
            program: of.and_then(|p| p.program.clone()),
        }
    }
}

/// What a thread or process has used: CPU time and context switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    /// CPU time, in nanoseconds.
    pub(crate) cpu_ns: u64,
    /// Switches away, voluntary and involuntary.
    pub(crate) switches: ContextSwitches,
}

impl Usage {
    fn add(self, other: Usage) -> Usage {
        Usage {
            cpu_ns: self.cpu_ns.saturating_add(other.cpu_ns),
            switches: ContextSwitches {
                voluntary: self
                    .switches
                    .voluntary
                    .saturating_add(other.switches.voluntary),
                involuntary: self
                    .switches
                    .involuntary
                    .saturating_add(other.switches.involuntary),
            },
        }
    }
}

struct State {
    ids: IdAllocator,
    /// By uk-sched thread id (0: the boot context, outside any scheduler).
    threads: BTreeMap<u64, ThreadEntry>,
    procs: BTreeMap<Pid, Process>,
    /// Ended processes their parents have not waited for, by pid.
    zombies: BTreeMap<Pid, Zombie>,
    init: Option<Pid>,
}

impl State {
    /// Frees `tid` unless it still names a live process or a zombie.
    fn release_tid(&mut self, tid: Tid) {
        if !self.procs.contains_key(&tid) && !self.zombies.contains_key(&tid) {
            self.ids.free(tid);
        }
    }
}

struct Hooks {
    exit: ExitHook,
    data_limit: DataLimitHook,
    host: Option<&'static dyn ThreadHost>,
    pages: &'static dyn PageSource,
    clock: Option<&'static dyn uk_hal::Clock>,
    /// The VFS file mappings come from (`None`: the image's, `uk_vfs::global::vfs`).
    #[cfg(feature = "vfs")]
    vfs: Option<&'static uk_vfs::Vfs>,
}

/// The process layer: one instance is the image's ([`crate::system()`]); hosted tests make
/// their own with [`System::new`].
pub struct System {
    state: Mutex<Cpu<State>>,
    hooks: Mutex<Cpu<Hooks>>,
    space: Mutex<Option<AddressSpace>>,
    pub(crate) futex: FutexTable,
    pub(crate) limits: Mutex<Limits>,
    pub(crate) mm: Mutex<Mm>,
    realtime_offset: AtomicU64,
    /// Set once any signal has been sent: until then no wait has signals to look for.
    pub(crate) signals_sent: AtomicBool,
    last_exit: Mutex<Option<u8>>,
}

impl Default for System {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for System {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("System")
            .field("processes", &self.process_count())
            .field("threads", &self.thread_count())
            .finish_non_exhaustive()
    }
}

fn current_key() -> u64 {
    uk_sched::current().map_or(0, |t| t.id())
}

impl System {
    /// A process layer with no processes, no scheduler and the default hooks.
    pub const fn new() -> Self {
        Self::with_max_id(DEFAULT_MAX_ID)
    }

    /// As [`System::new`] with ids `1..=max_id` (small values let tests exhaust ids).
    pub const fn with_max_id(max_id: Pid) -> Self {
        Self {
            state: Mutex::new(Cpu(State {
                ids: IdAllocator::new(max_id),
                threads: BTreeMap::new(),
                procs: BTreeMap::new(),
                zombies: BTreeMap::new(),
                init: None,
            })),
            hooks: Mutex::new(Cpu(Hooks {
                exit: host::default_exit,
                data_limit: host::default_data_limit,
                host: None,
                #[cfg(target_os = "none")]
                pages: &host::ImagePages,
                #[cfg(not(target_os = "none"))]
                pages: &host::HeapPages,
                clock: None,
                #[cfg(feature = "vfs")]
                vfs: None,
            })),
            space: Mutex::new(None),
            futex: FutexTable::new(),
            limits: Mutex::new(Limits::new()),
            mm: Mutex::new(Mm::new()),
            realtime_offset: AtomicU64::new(0),
            signals_sent: AtomicBool::new(false),
            last_exit: Mutex::new(None),
        }
    }

    // -----------------------------------------------------------------------------------
    // Configuration

    /// Installs (or with `None` removes) the scheduler new threads go to.
    pub fn set_host(&self, host: Option<&'static dyn ThreadHost>) {
        self.hooks.lock().0.host = host;
    }

    /// Installs the hook called with the exit status when the last thread has exited.
    pub fn set_exit_hook(&self, hook: ExitHook) {
        self.hooks.lock().0.exit = hook;
    }

    /// Installs the hook `RLIMIT_DATA` is applied through.
    pub fn set_data_limit_hook(&self, hook: DataLimitHook) {
        self.hooks.lock().0.data_limit = hook;
    }

    /// Installs where anonymous memory comes from.
    pub fn set_page_source(&self, pages: &'static dyn PageSource) {
        self.hooks.lock().0.pages = pages;
    }

    /// Installs the clock used outside scheduler threads (a board's clock).
    pub fn set_clock(&self, clock: Option<&'static dyn uk_hal::Clock>) {
        self.hooks.lock().0.clock = clock;
    }

    /// Installs the VFS whose descriptors `mmap` maps (the default is the image's,
    /// `uk_vfs::global::vfs()`); hosted tests give each `System` its own.
    #[cfg(feature = "vfs")]
    pub fn set_vfs(&self, vfs: &'static uk_vfs::Vfs) {
        self.hooks.lock().0.vfs = Some(vfs);
    }

    /// The VFS whose descriptors `mmap` maps.
    #[cfg(feature = "vfs")]
    pub(crate) fn vfs(&self) -> &'static uk_vfs::Vfs {
        match self.hooks.lock().0.vfs {
            Some(vfs) => vfs,
            None => uk_vfs::global::vfs(),
        }
    }

    /// Replaces, for this `System` only, the memory caller pointers are checked against.
    /// The default is the image's caller memory, [`uk_syscall::user::caller_memory`]: the
    /// board's RAM regions and the image on a booted image, the lower 128 TiB above the
    /// NULL page on a hosted build.
    pub fn set_address_space(&self, space: AddressSpace) {
        *self.space.lock() = Some(space);
    }

    /// The memory caller pointers are checked against.
    pub fn address_space(&self) -> AddressSpace {
        match *self.space.lock() {
            Some(space) => space,
            None => *uk_syscall::user::caller_memory(),
        }
    }

    /// Sets `CLOCK_REALTIME` to `unix_ns` now (no RTC is read: it starts at the epoch).
    /// With the `vfs` feature, uk-vfs's timerfds hear of a change
    /// ([`uk_vfs::timerfd::clock_was_set`]): `TFD_TIMER_CANCEL_ON_SET` timers are
    /// cancelled, and the waiters of real-time ones look again. Setting the time the clock
    /// already shows changes nothing, as on Linux.
    pub fn set_realtime_ns(&self, unix_ns: u64) {
        let offset = unix_ns.wrapping_sub(self.monotonic_ns());
        let before = self.realtime_offset.swap(offset, Ordering::Relaxed);
        // How far the wall clock jumped (the offsets are wall minus monotonic time).
        let moved = i128::from(offset.wrapping_sub(before) as i64);
        if moved == 0 {
            return;
        }
        // Timers set for a wall-clock time follow it (a boot-time setting finds none);
        // every waiter works its deadline out again (waits and sleeps until a wall-clock
        // time, and the timers' deadlines each wait keeps).
        for p in self.state.lock().0.procs.values_mut() {
            crate::timer::follow_wall_clock(&mut p.sig.timers, moved);
        }
        self.futex.nudge_all();
        // Timerfds too: cancelable ones are cancelled, real-time ones' waiters look again.
        #[cfg(feature = "vfs")]
        uk_vfs::timerfd::clock_was_set();
    }

    /// The status the last process ended with, once every thread has exited.
    pub fn last_exit_status(&self) -> Option<u8> {
        *self.last_exit.lock()
    }

    pub(crate) fn host(&self) -> Option<&'static dyn ThreadHost> {
        self.hooks.lock().0.host
    }

    pub(crate) fn pages(&self) -> &'static dyn PageSource {
        self.hooks.lock().0.pages
    }

    pub(crate) fn data_limit_hook(&self) -> DataLimitHook {
        self.hooks.lock().0.data_limit
    }

    /// The monotonic clock in nanoseconds: the caller's scheduler clock inside a thread,
    /// else the installed scheduler's or board's clock, else 0.
    pub fn monotonic_ns(&self) -> u64 {
        if uk_sched::current().is_some() {
            return uk_sched::now();
        }
        let hooks = self.hooks.lock();
        if let Some(host) = hooks.0.host {
            return host.now_ns();
        }
        if let Some(clock) = hooks.0.clock {
            return clock.monotonic_ns();
        }
        #[cfg(target_os = "none")]
        if let Some(platform) = uk_rt::try_platform() {
            return platform.monotonic_ns();
        }
        0
    }

    /// The tick rate of the counter behind [`System::monotonic_ns`]: the installed clock's,
    /// else the board's; `None` where time comes from the host (nanoseconds).
    pub(crate) fn counter_hz(&self) -> Option<u64> {
        let hooks = self.hooks.lock();
        if hooks.0.host.is_some() {
            return None;
        }
        if let Some(clock) = hooks.0.clock {
            return Some(clock.cycles_per_second());
        }
        #[cfg(target_os = "none")]
        if let Some(platform) = uk_rt::try_platform() {
            return Some(platform.cycles_per_second());
        }
        None
    }

    /// The monotonic time at which the wall clock shows `unix_ns`, at its current
    /// setting: 0 for a time it showed before boot. (The wall clock may be behind the
    /// monotonic one, so their difference is signed.)
    pub(crate) fn wall_to_monotonic(&self, unix_ns: u64) -> u64 {
        let wall_minus_monotonic = self.realtime_offset.load(Ordering::Relaxed) as i64;
        let monotonic = i128::from(unix_ns) - i128::from(wall_minus_monotonic);
        monotonic.clamp(0, i128::from(u64::MAX)) as u64
    }

    /// `CLOCK_REALTIME` in nanoseconds since the epoch.
    pub fn realtime_ns(&self) -> u64 {
        self.monotonic_ns()
            .wrapping_add(self.realtime_offset.load(Ordering::Relaxed))
    }

    /// Whether a clock runs for a caller outside any scheduler thread.
    pub(crate) fn has_clock(&self) -> bool {
        let hooks = self.hooks.lock();
        hooks.0.host.is_some() || hooks.0.clock.is_some() || cfg!(target_os = "none")
    }

    // -----------------------------------------------------------------------------------
    // Ids

    /// Number of live processes.
    pub fn process_count(&self) -> usize {
        self.state.lock().0.procs.len()
    }

    /// Whether the calling thread is one the layer knows (created or adopted).
    pub(crate) fn caller_is_known(&self) -> bool {
        self.state.lock().0.threads.contains_key(&current_key())
    }

    /// Number of live threads known to the layer.
    pub fn thread_count(&self) -> usize {
        self.state.lock().0.threads.len()
    }

    /// Whether `pid` names a live process.
    pub fn pid_exists(&self, pid: Pid) -> bool {
        self.state.lock().0.procs.contains_key(&pid)
    }

    /// Whether `tid` names a live thread of some process.
    pub fn tid_exists(&self, tid: Tid) -> bool {
        self.state
            .lock()
            .0
            .procs
            .values()
            .any(|p| p.threads.contains(&tid))
    }

    /// Ids in use (thread ids and the ids of live processes).
    pub fn ids_in_use(&self) -> usize {
        self.state.lock().0.ids.used()
    }

    /// The tids of process `pid`'s live threads.
    pub fn threads_of(&self, pid: Pid) -> Vec<Tid> {
        self.state
            .lock()
            .0
            .procs
            .get(&pid)
            .map(|p| p.threads.clone())
            .unwrap_or_default()
    }

    /// Runs `f` on the caller's entry, adopting the caller first if it is new: a thread
    /// this layer did not create (or the boot context) joins the first process, or starts
    /// one. `Err(EAGAIN)` when no id is left.
    fn with_caller<R>(
        &self,
        f: impl FnOnce(&mut ThreadEntry, &mut Process) -> R,
    ) -> Result<R, Errno> {
        let key = current_key();
        let mut guard = self.state.lock();
        let st = &mut guard.0;
        if !st.threads.contains_key(&key) {
            let tid = st.ids.alloc().ok_or(Errno::EAGAIN)?;
            let pid = match st.init {
                Some(pid) if st.procs.contains_key(&pid) => pid,
                _ => {
                    st.procs
                        .insert(tid, Process::new(0, 0, SigProcess::default(), None));
                    st.init = Some(tid);
                    tid
                }
            };
            if let Some(p) = st.procs.get_mut(&pid) {
                p.threads.push(tid);
            }
            st.threads.insert(
                key,
                ThreadEntry {
                    tid,
                    pid,
                    clear_child_tid: 0,
                    robust_list: 0,
                    handle: uk_sched::current(),
                    tracked: false,
                    exit_code: 0,
                    sig: SigThread::default(),
                    name: procctl::FIRST_NAME,
                    policy: procctl::SCHED_OTHER,
                    nice: 0,
                },
            );
        }
        let State { threads, procs, .. } = st;
        let entry = threads.get_mut(&key).ok_or(Errno::ESRCH)?;
        let process = procs.get_mut(&entry.pid).ok_or(Errno::ESRCH)?;
        Ok(f(entry, process))
    }

    /// The CPU time `clock` measures, in nanoseconds: the caller's thread or process, or
    /// the thread or process a dynamic clock id names (see [`crate::cputime`]).
    ///
    /// # Errors
    ///
    /// As [`System::usage`].
    pub(crate) fn cpu_time_ns(&self, clock: CpuClock) -> Result<u64, Errno> {
        self.usage(clock).map(|u| u.cpu_ns)
    }

    /// What the thread or process `clock` names has used: its CPU time (as
    /// [`System::cpu_time_ns`]) and its context switches; a process's include those of its
    /// ended threads.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a process or thread that does not exist, a thread of another process,
    /// or a thread whose scheduler does not count CPU time.
    pub(crate) fn usage(&self, clock: CpuClock) -> Result<Usage, Errno> {
        let (caller_tid, caller_pid) = self.with_caller(|t, _| (t.tid, t.pid))?;
        let guard = self.state.lock();
        let st = &guard.0;
        let thread_usage = |key: u64, entry: &ThreadEntry| {
            let cpu_ns = self
                .thread_cpu_ns(key, entry.handle.as_ref())
                .ok_or(Errno::EINVAL)?;
            Ok(Usage {
                cpu_ns,
                switches: switches_of(entry.handle.as_ref()),
            })
        };
        match clock {
            CpuClock::Thread(tid) => {
                let tid = if tid == 0 { caller_tid } else { tid };
                let (key, entry) = st
                    .threads
                    .iter()
                    .find(|(_, t)| t.tid == tid && t.pid == caller_pid)
                    .ok_or(Errno::EINVAL)?;
                thread_usage(*key, entry)
            }
            CpuClock::Process(pid) => {
                let pid = if pid == 0 { caller_pid } else { pid };
                let process = st.procs.get(&pid).ok_or(Errno::EINVAL)?;
                let mut total = Usage {
                    cpu_ns: process.ended_cpu_ns,
                    switches: process.ended_switches,
                };
                for (key, entry) in st.threads.iter().filter(|(_, t)| t.pid == pid) {
                    total = total.add(thread_usage(*key, entry)?);
                }
                Ok(total)
            }
        }
    }

    /// The CPU time of the thread registered under `key`: its scheduler's count, or for the
    /// boot context (key 0, which no scheduler runs) the time since boot. `None` when its
    /// scheduler does not count CPU time.
    fn thread_cpu_ns(&self, key: u64, handle: Option<&ThreadRef>) -> Option<u64> {
        match handle {
            Some(thread) => thread.cpu_time_ns(),
            None if key == 0 => Some(self.monotonic_ns()),
            None => None,
        }
    }

    /// Whether the caller is a thread this layer knows (created or adopted) with a pending
    /// signal it does not block. Unlike the system calls, this never adopts an unknown
    /// caller.
    pub(crate) fn known_caller_has_deliverable_signal(&self) -> bool {
        let guard = self.state.lock();
        let st = &guard.0;
        st.threads.get(&current_key()).is_some_and(|t| {
            let process = st.procs.get(&t.pid).map_or(0, |p| p.sig.pending);
            (t.sig.pending | process) & !t.sig.mask != 0
        })
    }

    /// Runs `f` on the caller's signal state, its process's, its tid and its pid (adopting
    /// the caller first, as [`System::gettid`]).
    pub(crate) fn with_caller_signals<R>(
        &self,
        f: impl FnOnce(&mut SigThread, &mut SigProcess, Tid, Pid) -> R,
    ) -> Result<R, Errno> {
        self.with_caller(|t, p| f(&mut t.sig, &mut p.sig, t.tid, t.pid))
    }

    /// Runs `f` on the signal state of process `pid`.
    pub(crate) fn with_process_signals<R>(
        &self,
        pid: Pid,
        f: impl FnOnce(&mut SigProcess) -> R,
    ) -> Result<R, Errno> {
        let mut guard = self.state.lock();
        let p = guard.0.procs.get_mut(&pid).ok_or(Errno::ESRCH)?;
        Ok(f(&mut p.sig))
    }

    /// Runs `f` on the signal state of process `pid` and, with it, of the thread of that
    /// process `thread_of` names (looked up under the same lock; `None` when it names none,
    /// or a thread that has ended), given with its uk-sched id. What the POSIX timers use
    /// to queue or withdraw a signal and update the timer in one step.
    pub(crate) fn with_process_and_thread_signals<R>(
        &self,
        pid: Pid,
        thread_of: impl FnOnce(&SigProcess) -> Option<Tid>,
        f: impl FnOnce(&mut SigProcess, Option<(u64, &mut SigThread)>) -> R,
    ) -> Result<R, Errno> {
        let mut guard = self.state.lock();
        let State { threads, procs, .. } = &mut guard.0;
        let p = procs.get_mut(&pid).ok_or(Errno::ESRCH)?;
        let thread = thread_of(&p.sig).and_then(|tid| {
            threads
                .iter_mut()
                .find(|(_, t)| t.tid == tid && t.pid == pid)
                .map(|(key, t)| (*key, &mut t.sig))
        });
        Ok(f(&mut p.sig, thread))
    }

    /// Runs `f` on the signal state of thread `tid`, which must belong to process `pid`
    /// when one is given; returns the thread's uk-sched id with `f`'s result.
    pub(crate) fn with_thread_signals<R>(
        &self,
        tid: Tid,
        pid: Option<Pid>,
        f: impl FnOnce(&mut SigThread) -> R,
    ) -> Result<(u64, R), Errno> {
        let mut guard = self.state.lock();
        let (key, t) = guard
            .0
            .threads
            .iter_mut()
            .find(|(_, t)| t.tid == tid && pid.is_none_or(|p| p == t.pid))
            .ok_or(Errno::ESRCH)?;
        Ok((*key, f(&mut t.sig)))
    }

    /// The uk-sched ids of the threads of process `pid` whose masks let `bits` through.
    pub(crate) fn threads_letting_through(
        &self,
        pid: Pid,
        bits: crate::signal::SigSet,
    ) -> Vec<u64> {
        let guard = self.state.lock();
        guard
            .0
            .threads
            .iter()
            .filter(|(_, t)| t.pid == pid && t.sig.mask & bits == 0)
            .map(|(key, _)| *key)
            .collect()
    }

    /// The caller's thread id.
    ///
    /// # Errors
    ///
    /// `EAGAIN` when the caller is new to the layer and no id is left to adopt it.
    pub fn gettid(&self) -> Result<Tid, Errno> {
        self.with_caller(|t, _| t.tid)
    }

    /// The caller's process id (the id of its process's first thread).
    ///
    /// # Errors
    ///
    /// As [`System::gettid`].
    pub fn getpid(&self) -> Result<Pid, Errno> {
        self.with_caller(|t, _| t.pid)
    }

    /// The caller's parent process id (0 for the first process).
    ///
    /// # Errors
    ///
    /// As [`System::gettid`].
    pub fn getppid(&self) -> Result<Pid, Errno> {
        self.with_caller(|_, p| p.ppid)
    }

    /// Sets the caller's `clear_child_tid` word (written 0 and futex-woken when it exits);
    /// returns the caller's tid. The pointer is not checked now (as Linux); a bad one is
    /// skipped at exit.
    ///
    /// # Errors
    ///
    /// As [`System::gettid`].
    pub fn set_tid_address(&self, tidptr: usize) -> Result<Tid, Errno> {
        self.with_caller(|t, _| {
            t.clear_child_tid = tidptr;
            t.tid
        })
    }

    /// Registers the head of the caller's robust-futex list (`set_robust_list`). `len` must
    /// be the size of Linux's `struct robust_list_head` ([`ROBUST_LIST_HEAD_LEN`]), as
    /// Linux requires. The pointer is not checked (as Linux). The list is kept for
    /// [`System::get_robust_list`]; it is not walked when the thread ends: musl's
    /// `pthread_exit` releases the robust mutexes the thread still holds itself, and a
    /// process that ends takes every thread of its address space with it.
    ///
    /// # Errors
    ///
    /// `EINVAL` for another `len`; otherwise as [`System::gettid`].
    pub fn set_robust_list(&self, head: usize, len: usize) -> Result<(), Errno> {
        if len != ROBUST_LIST_HEAD_LEN {
            return Err(Errno::EINVAL);
        }
        self.with_caller(|t, _| t.robust_list = head)
    }

    /// The robust-futex list head of thread `tid` (the caller for 0), as `set_robust_list`
    /// registered it (0 if it never did). Any thread may be asked about (every thread of
    /// the image runs as root, whom Linux lets read any thread's list).
    ///
    /// # Errors
    ///
    /// `ESRCH` if no thread has that id; otherwise as
    /// [`System::gettid`].
    pub fn get_robust_list(&self, tid: Tid) -> Result<usize, Errno> {
        let (caller_tid, own) = self.with_caller(|t, _| (t.tid, t.robust_list))?;
        if tid == 0 || tid == caller_tid {
            return Ok(own);
        }
        let guard = self.state.lock();
        guard
            .0
            .threads
            .values()
            .find(|t| t.tid == tid)
            .map(|t| t.robust_list)
            .ok_or(Errno::ESRCH)
    }

    // -----------------------------------------------------------------------------------
    // Threads and processes

    /// Starts a new process whose first thread runs `entry`; its return value is the
    /// thread's exit status. The parent is the caller's process (none for the boot context).
    ///
    /// # Errors
    ///
    /// `ENOSYS` without a [`ThreadHost`], `EAGAIN` without a free id, `ENOMEM`.
    pub fn spawn_process(
        &'static self,
        name: &'static str,
        entry: fn(usize) -> i32,
        arg: usize,
    ) -> Result<Pid, Errno> {
        let ppid = if uk_sched::current().is_some() {
            self.getpid()?
        } else {
            self.state.lock().0.threads.get(&0).map_or(0, |t| t.pid)
        };
        let plan = ClonePlan {
            thread: false,
            sibling: false,
            tls: None,
            pidfd: None,
            parent_settid: None,
            child_settid: None,
            child_cleartid: None,
            stack_top: None,
            stack_size: None,
            // As a `fork`'s child: its parent (if any) gets SIGCHLD and may wait for it.
            exit_signal: SIGCHLD as u64,
        };
        let pid = self.start_thread(name, &plan, ppid, ChildStart::Call { entry, arg })?;
        self.set_program(pid, procfs::Program::named(name));
        Ok(pid)
    }

    /// clone/clone3 after parsing: validates `args`, then creates the child as `start` says.
    ///
    /// Order (nothing changes when an error is returned): the flag table, every pointer the
    /// call writes (`EFAULT`), a tid (`EAGAIN`), the thread (`ENOMEM`); then the tid goes to
    /// `*parent_tid` and `*child_tid`, and only then may the child run.
    ///
    /// # Errors
    ///
    /// `EINVAL`/`ENOSYS` per [`crate::flags::FLAG_TABLE`], `EFAULT`, `EAGAIN`, `ENOMEM`.
    pub fn clone(
        &'static self,
        args: &CloneArgs,
        via: Via,
        start: ChildStart,
    ) -> Result<Tid, Errno> {
        let plan = match args.validate(via) {
            Ok(plan) => plan,
            Err(e) => {
                if e == Errno::ENOSYS {
                    log::warn!(
                        "clone: unsupported flag combination {:#x} ({}): ENOSYS",
                        args.flags,
                        flag_names(args.flags).collect::<Vec<_>>().join("|")
                    );
                }
                return Err(e);
            }
        };
        let me = self.getpid()?;
        let (ppid, plan) = if plan.sibling && !plan.thread {
            // CLONE_PARENT: the caller's parent is the child's, and it is told of the
            // child's end with the caller's own exit signal (Linux ignores the one given).
            let (ppid, exit_signal) = self.sibling_parent()?;
            (
                ppid,
                ClonePlan {
                    exit_signal,
                    ..plan
                },
            )
        } else {
            (me, plan)
        };
        self.start_thread("clone", &plan, ppid, start)
    }

    /// The parent and exit signal of a `CLONE_PARENT` child: the caller's. `EINVAL` from
    /// the image's init, which has no parent to share (Linux refuses its init so too).
    fn sibling_parent(&self) -> Result<(Pid, u64), Errno> {
        let guard = self.state.lock();
        let st = &guard.0;
        let caller = st.threads.get(&current_key()).ok_or(Errno::ESRCH)?;
        if st.init == Some(caller.pid) {
            return Err(Errno::EINVAL);
        }
        let process = st.procs.get(&caller.pid).ok_or(Errno::ESRCH)?;
        Ok((process.ppid, process.exit_signal as u64))
    }

    fn start_thread(
        &'static self,
        name: &'static str,
        plan: &ClonePlan,
        ppid: Pid,
        start: ChildStart,
    ) -> Result<Tid, Errno> {
        let host = self.host().ok_or_else(|| {
            log::warn!(
                "clone: no scheduler installed (uk_posix_process::System::set_host): ENOSYS"
            );
            Errno::ENOSYS
        })?;
        let space = self.address_space();
        if let Some(p) = plan.parent_settid {
            UserPtr::<u32>::new(p).check(&space)?;
        }
        if let Some(p) = plan.pidfd {
            UserPtr::<i32>::new(p).check(&space)?;
        }
        // The child's stack and entry.
        let default_stack = self.limits.lock().stack_default();
        // A child that calls a function runs on the clone stack, or a fresh one.
        let call_stack = || -> Result<_, Errno> {
            let builder = Thread::builder(name);
            Ok(match plan.stack_top {
                Some(top) => {
                    let size = plan.stack_size.unwrap_or(STACK_WINDOW).min(top);
                    builder.stack(user_stack(&space, top, size)?)
                }
                None => builder.stack_size(default_stack),
            })
        };
        let (builder, entry): (_, Box<dyn FnOnce()>) = match start {
            ChildStart::Call { entry, arg } => (
                call_stack()?,
                Box::new(move || self.set_exit_code(entry(arg))),
            ),
            ChildStart::CallC { entry, arg } => (
                call_stack()?,
                Box::new(move || {
                    crate::interrupt::enter_application_code();
                    let code = entry(arg);
                    crate::interrupt::leave_application_code();
                    self.set_exit_code(code);
                }),
            ),
            ChildStart::Resume {
                resume,
                kernel_stack,
            } => {
                // The child will run on the clone stack: it must be memory.
                if let Some(top) = plan.stack_top {
                    let size = plan.stack_size.unwrap_or(STACK_WINDOW).min(top);
                    space.check(top - size, size)?;
                }
                (Thread::builder(name).stack_size(kernel_stack), resume)
            }
        };
        // The thread pointer: the caller's unless CLONE_SETTLS.
        let tp = match plan.tls {
            Some(tls) => tls,
            None => self.caller_thread_pointer(),
        };
        // An id, reserved now, released if anything below fails.
        let tid = self.state.lock().0.ids.alloc().ok_or(Errno::EAGAIN)?;
        let builder = builder
            .ectx(true)
            .on_exit(move |thread: &Thread| self.thread_ended(thread.id()));
        let thread = match host.create(builder, entry) {
            Ok(t) => t,
            Err(e) => {
                self.state.lock().0.ids.free(tid);
                log::warn!("clone: creating the thread failed: {e}");
                return Err(Errno::ENOMEM);
            }
        };
        thread.set_thread_pointer(tp);
        // Register the child before it can run.
        {
            let mut guard = self.state.lock();
            let st = &mut guard.0;
            // A new thread starts with its creator's signal mask; a new process with a
            // copy of its creator's signal actions.
            let creator = st.threads.get(&current_key());
            let sig = creator.map_or_else(SigThread::default, |t| SigThread::inherit(&t.sig));
            let (name, policy, nice) = creator
                .map_or((procctl::FIRST_NAME, procctl::SCHED_OTHER, 0), |t| {
                    (t.name, t.policy, t.nice)
                });
            let actions = creator
                .and_then(|t| st.procs.get(&t.pid))
                .map_or_else(SigProcess::default, |p| p.sig.for_new_process());
            let pid = if plan.thread {
                // The caller's process (it exists: getpid adopted the caller).
                st.threads.get(&current_key()).map_or(ppid, |t| t.pid)
            } else {
                if st.init.is_none_or(|p| !st.procs.contains_key(&p)) {
                    st.init = Some(tid);
                }
                let parent = creator.and_then(|t| st.procs.get(&t.pid));
                let process = Process::new(ppid, plan.exit_signal as i32, actions, parent);
                st.procs.insert(tid, process);
                tid
            };
            if let Some(p) = st.procs.get_mut(&pid) {
                p.threads.push(tid);
            }
            st.threads.insert(
                thread.id(),
                ThreadEntry {
                    tid,
                    pid,
                    clear_child_tid: plan.child_cleartid.unwrap_or(0),
                    robust_list: 0,
                    handle: Some(thread.clone()),
                    tracked: true,
                    exit_code: 0,
                    sig,
                    // A new thread has its creator's name, policy and nice value, as on
                    // Linux.
                    name,
                    policy,
                    nice,
                },
            );
        }
        // CLONE_PIDFD first: its failure (no descriptor left, a bad address) undoes the
        // child before anything else was written.
        let pidfd = match plan.pidfd.map(|at| self.hand_out_pidfd(tid, at, &space)) {
            Some(Err(e)) => {
                self.forget_thread(thread.id());
                return Err(e);
            }
            Some(Ok(fd)) => Some(fd),
            None => None,
        };
        // PARENT_SETTID and CHILD_SETTID before the child runs. A bad child_tid is
        // skipped, as Linux's child does.
        if let Some(p) = plan.parent_settid {
            let _ = UserPtr::<u32>::new(p).write(&space, tid as u32);
        }
        if let Some(c) = plan.child_settid {
            let _ = UserPtr::<u32>::new(c).write(&space, tid as u32);
        }
        if let Err(e) = host.add(&thread) {
            log::warn!("clone: scheduling the thread failed: {e}");
            if let Some(fd) = pidfd {
                self.take_back_pidfd(fd);
            }
            self.forget_thread(thread.id());
            return Err(Errno::ENOMEM);
        }
        Ok(tid)
    }

    /// `CLONE_PIDFD`: opens a pidfd of the new process `pid` and stores its number at
    /// `at` in the caller's memory (closed again if that fails: `EFAULT`).
    #[cfg(feature = "vfs")]
    fn hand_out_pidfd(&self, pid: Pid, at: usize, space: &AddressSpace) -> Result<i32, Errno> {
        let fd = self.vfs().pidfd_open(pid, 0)?;
        if let Err(e) = UserPtr::<i32>::new(at).write(space, fd) {
            self.take_back_pidfd(fd);
            return Err(e);
        }
        Ok(fd)
    }

    /// Closes a pidfd [`System::hand_out_pidfd`] made for a clone that then failed.
    #[cfg(feature = "vfs")]
    fn take_back_pidfd(&self, fd: i32) {
        let _ = self.vfs().close(fd);
    }

    /// Without uk-vfs there are no pidfds: the flag table refuses `CLONE_PIDFD`
    /// ([`crate::flags::FLAG_TABLE`]), so this is never reached with a request.
    #[cfg(not(feature = "vfs"))]
    fn hand_out_pidfd(&self, _pid: Pid, _at: usize, _space: &AddressSpace) -> Result<i32, Errno> {
        Err(Errno::ENOSYS)
    }

    /// Without uk-vfs no pidfd is ever handed out, so none is taken back.
    #[cfg(not(feature = "vfs"))]
    fn take_back_pidfd(&self, _fd: i32) {}

    /// Undoes a registration whose thread never ran.
    fn forget_thread(&self, key: u64) {
        let handle = {
            let mut guard = self.state.lock();
            let st = &mut guard.0;
            let Some(entry) = st.threads.remove(&key) else {
                return;
            };
            if let Some(p) = st.procs.get_mut(&entry.pid) {
                p.threads.retain(|&t| t != entry.tid);
                if p.threads.is_empty() {
                    st.procs.remove(&entry.pid);
                }
            }
            st.release_tid(entry.tid);
            entry.handle
        };
        drop(handle);
    }

    fn set_exit_code(&self, code: i32) {
        let key = current_key();
        if let Some(t) = self.state.lock().0.threads.get_mut(&key) {
            t.exit_code = code as u8;
        }
    }

    /// Bookkeeping when a thread ends (its exit callback, or exit of an adopted thread).
    fn thread_ended(&self, key: u64) {
        let mut machine_exit = None;
        let mut notices = None;
        let (entry, handle) = {
            let mut guard = self.state.lock();
            let st = &mut guard.0;
            let Some(mut entry) = st.threads.remove(&key) else {
                return;
            };
            let handle = entry.handle.take();
            let used = Usage {
                cpu_ns: self.thread_cpu_ns(key, handle.as_ref()).unwrap_or(0),
                switches: switches_of(handle.as_ref()),
            };
            let mut ended = None;
            if let Some(p) = st.procs.get_mut(&entry.pid) {
                let total = Usage {
                    cpu_ns: p.ended_cpu_ns,
                    switches: p.ended_switches,
                }
                .add(used);
                p.ended_cpu_ns = total.cpu_ns;
                p.ended_switches = total.switches;
                p.threads.retain(|&t| t != entry.tid);
                if p.threads.is_empty() {
                    ended = Some(p.group_exit.unwrap_or(ExitKind::Exited(entry.exit_code)));
                }
            }
            if let Some(how) = ended
                && let Some(p) = st.procs.remove(&entry.pid)
            {
                // Its zombie (or its id), its exit signal, its children to init.
                let usage = Usage {
                    cpu_ns: p.ended_cpu_ns,
                    switches: p.ended_switches,
                }
                .add(p.children_usage);
                notices = Some(st.process_ended(entry.pid, &p, how, usage));
                if st.procs.is_empty() {
                    machine_exit = Some(how.machine_status());
                }
            }
            st.release_tid(entry.tid);
            (entry, handle)
        };
        self.clear_child_tid(entry.clear_child_tid);
        self.futex_pi_owner_ended(entry.tid);
        drop(handle);
        if let Some(notices) = notices {
            self.send_notices(notices);
        }
        if let Some(status) = machine_exit {
            *self.last_exit.lock() = Some(status);
            let hook = self.hooks.lock().0.exit;
            hook(status);
        }
    }

    /// CHILD_CLEARTID / set_tid_address at exit: write 0 and wake one futex waiter.
    fn clear_child_tid(&self, addr: usize) {
        if addr == 0 {
            return;
        }
        let space = self.address_space();
        if UserPtr::<u32>::new(addr).write(&space, 0).is_ok() {
            let _ = self.futex_wake(addr, 1, crate::futex::FUTEX_BITSET_MATCH_ANY);
        }
    }

    /// Ends the calling thread with `status` (`exit(2)`). The last thread of a process ends
    /// the process; the last process ends the run through the exit hook.
    ///
    /// # Panics
    ///
    /// Only on a hosted build, when the boot context (no scheduler thread) calls it and the
    /// exit hook returns: there is nothing to return to.
    pub fn exit(&self, status: i32) -> ! {
        self.set_exit_code(status);
        if uk_sched::current().is_none() {
            // The boot context: not a scheduler thread, so ending it ends the run.
            self.adopted_exit(status);
            panic!("exit({status}) from the boot context returned from the exit hook");
        }
        let tracked = self
            .state
            .lock()
            .0
            .threads
            .get(&current_key())
            .is_some_and(|t| t.tracked);
        if !tracked {
            // A thread this layer did not create has no exit callback of ours.
            self.thread_ended(current_key());
        }
        uk_sched::exit()
    }

    fn adopted_exit(&self, status: i32) {
        let _ = self.getpid();
        self.set_exit_code(status);
        self.thread_ended(0);
    }

    /// Ends every thread of the caller's process with `status` (`exit_group(2)`): the
    /// others are taken out of their scheduler (and out of futex waits) at once, their
    /// `clear_child_tid` words cleared, then the caller exits.
    pub fn exit_group(&self, status: i32) -> ! {
        self.end_process(ExitKind::Exited(status as u8))
    }

    /// Ends the caller's process as the default action of `sig` does: as `exit_group`,
    /// with the parent told that `sig` killed it and the run's status 128 + `sig`.
    pub(crate) fn killed_by(&self, sig: i32) -> ! {
        self.end_process(ExitKind::Killed(sig))
    }

    fn end_process(&self, how: ExitKind) -> ! {
        let status = i32::from(how.machine_status());
        let key = current_key();
        let _ = self.getpid();
        let killed: Vec<ThreadEntry> = {
            let mut guard = self.state.lock();
            let st = &mut guard.0;
            let pid = st.threads.get(&key).map(|t| t.pid);
            let mut killed = Vec::new();
            if let Some(pid) = pid {
                if let Some(p) = st.procs.get_mut(&pid) {
                    p.group_exit = Some(how);
                }
                let others: Vec<u64> = st
                    .threads
                    .iter()
                    .filter(|(k, t)| t.pid == pid && **k != key)
                    .map(|(k, _)| *k)
                    .collect();
                for k in others {
                    if let Some(t) = st.threads.remove(&k) {
                        if let Some(p) = st.procs.get_mut(&pid) {
                            p.threads.retain(|&x| x != t.tid);
                        }
                        killed.push(t);
                    }
                }
                for t in &killed {
                    st.release_tid(t.tid);
                }
            }
            killed
        };
        let host = self.host();
        for mut t in killed {
            if let Some(handle) = t.handle.take() {
                self.futex.purge(&handle);
                if let Some(host) = host
                    && !handle.is_exited()
                    && let Err(e) = host.remove(&handle)
                {
                    log::warn!("exit_group: thread {} could not be removed: {e}", t.tid);
                }
                drop(handle);
            }
            self.clear_child_tid(t.clear_child_tid);
        }
        self.exit(status)
    }
}

/// The switches away a thread's scheduler counted (none for the boot context, which no
/// scheduler runs, or when the scheduler does not count them: then its CPU time is not
/// counted either, and that is what fails).
fn switches_of(handle: Option<&ThreadRef>) -> ContextSwitches {
    handle
        .and_then(|h| h.context_switches())
        .unwrap_or_default()
}

/// The caller's clone stack as a uk-sched stack: `size` bytes below `top`.
fn user_stack(space: &AddressSpace, top: usize, size: usize) -> Result<Stack, Errno> {
    let base = top.checked_sub(size).ok_or(Errno::EFAULT)?;
    if size == 0 {
        return Err(Errno::EINVAL);
    }
    // Clone's contract: the caller hands `[base, top)` over as the child's stack for good.
    let memory = UserSlice::new(base, size).hand_over(space)?;
    Ok(Stack::from_static(memory))
}
