//! What a process asks about itself and its threads: process groups and sessions
//! (`setpgid`, `setsid` and the getters), scheduling policies (`sched_setscheduler` and its
//! family), `prctl`, memory locking and `getcpu`, answered as Linux answers a root process
//! on one CPU.
//!
//! - **Groups and sessions** follow Linux's rules exactly (`setpgid` only on the caller or
//!   a child in its session, never on a session leader, into an existing group of the
//!   session; `setsid` refused to a group leader). The first process is the image's init:
//!   like Linux's pid 1 it starts in process group 0 and session 0, so its `setsid`
//!   succeeds; a new process starts in its creator's group and session.
//! - **Scheduling policies**: the scheduler is cooperative and has no priorities, so a
//!   thread may take the policies without one (`SCHED_OTHER`, `SCHED_BATCH`,
//!   `SCHED_IDLE`, with priority 0), which are recorded and reported back, while the
//!   real-time ones (`SCHED_FIFO`, `SCHED_RR`), which the scheduler could not honour, are
//!   refused with `EPERM`, what Linux tells a process without `CAP_SYS_NICE`. Arguments are
//!   checked first, in Linux's order (`EINVAL`, `EFAULT`, `ESRCH`).
//! - **`prctl`**: a thread's name (`PR_SET_NAME`/`PR_GET_NAME`, 15 bytes and a NUL; a new
//!   thread takes its creator's), and the process's parent-death signal (sent when its
//!   parent process ends), dumpable flag, no-new-privileges flag, child-subreaper flag (a
//!   subreaper adopts the orphans of its descendants before init does; see
//!   [`super::wait`]) and timer slack, kept and reported with Linux's argument checks and
//!   inheritance; any other option is `EINVAL`. (On Linux the parent-death signal follows
//!   the parent *thread*; here the parent process, as threads share their children.)
//! - **`kill`'s targets**: a process, the caller's process group (0), another group
//!   (`-pgid`), or every process but init and the caller (-1), as Linux picks them.
//! - **`mlock`** and its family succeed on mapped memory (nothing is ever paged out), with
//!   Linux's checks: `EINVAL` for unknown flags or a range that wraps, `ENOMEM` for a range
//!   that is not mapped.
//! - **Nice values** (`setpriority`/`getpriority`, per thread as on Linux, by thread,
//!   process group or user) are kept, clamped and reported, and a new thread has its
//!   creator's; the cooperative scheduler does not weigh them.
//! - **`membarrier`**: the process's threads share one CPU, so its barriers are a fence on
//!   the caller's (registration rules as Linux's; no rseq commands).
//! - **`getcpu`** says CPU 0, node 0: the process's threads run there (see
//!   `sched_getaffinity`).

use alloc::vec::Vec;

use uk_syscall::Errno;
use uk_syscall::user::{UserPtr, UserSlice};

use super::System;
use crate::ids::{Pid, Tid};

/// Bytes of a thread's name, its terminating NUL included (Linux's `TASK_COMM_LEN`).
pub const NAME_LEN: usize = 16;
/// The name of a thread nobody named: the first thread's, and so every thread's it
/// creates until one is named.
pub(crate) const FIRST_NAME: [u8; NAME_LEN] = *b"uk-rs\0\0\0\0\0\0\0\0\0\0\0";

/// Scheduling policy: time-shared, without priorities (the default).
pub const SCHED_OTHER: i32 = 0;
/// Scheduling policy: real-time first-in first-out (refused: `EPERM`).
pub const SCHED_FIFO: i32 = 1;
/// Scheduling policy: real-time round robin (refused: `EPERM`).
pub const SCHED_RR: i32 = 2;
/// Scheduling policy: batch, without priorities.
pub const SCHED_BATCH: i32 = 3;
/// Scheduling policy: very low priority background work, without priorities.
pub const SCHED_IDLE: i32 = 5;
/// Scheduling policy: deadline (only through `sched_setattr`, which is not offered).
const SCHED_DEADLINE: i32 = 6;
/// `sched_setscheduler` flag: children go back to the default policy.
const SCHED_RESET_ON_FORK: i32 = 0x4000_0000;
/// The highest real-time priority (Linux's `MAX_RT_PRIO - 1`).
const MAX_RT_PRIORITY: i32 = 99;

/// `prctl`: the signal the process gets when its parent ends.
pub const PR_SET_PDEATHSIG: i32 = 1;
/// `prctl`: read the parent-death signal into an `int`.
pub const PR_GET_PDEATHSIG: i32 = 2;
/// `prctl`: whether the process may dump core (the return value).
pub const PR_GET_DUMPABLE: i32 = 3;
/// `prctl`: set the dumpable flag (0 or 1).
pub const PR_SET_DUMPABLE: i32 = 4;
/// `prctl`: name the calling thread.
pub const PR_SET_NAME: i32 = 15;
/// `prctl`: read the calling thread's name (16 bytes).
pub const PR_GET_NAME: i32 = 16;
/// `prctl`: set the timer slack, in nanoseconds (0: the default).
const PR_SET_TIMERSLACK: i32 = 29;
/// `prctl`: the timer slack (the return value).
const PR_GET_TIMERSLACK: i32 = 30;
/// `prctl`: make the process a subreaper of its descendants.
pub const PR_SET_CHILD_SUBREAPER: i32 = 36;
/// `prctl`: read the subreaper flag into an `int`.
const PR_GET_CHILD_SUBREAPER: i32 = 37;
/// `prctl`: forbid gaining privileges (argument 1, for good).
pub const PR_SET_NO_NEW_PRIVS: i32 = 38;
/// `prctl`: the no-new-privileges flag (the return value).
pub const PR_GET_NO_NEW_PRIVS: i32 = 39;
/// Linux's default timer slack, in nanoseconds.
const DEFAULT_TIMER_SLACK_NS: usize = 50_000;
/// The highest signal number.
const SIG_MAX: usize = 64;

/// `mlockall`: lock what is mapped now.
pub const MCL_CURRENT: u32 = 1;
/// `mlockall`: lock what will be mapped.
pub const MCL_FUTURE: u32 = 2;
/// `mlockall`: lock pages as they are first touched.
pub const MCL_ONFAULT: u32 = 4;
/// `mlock2`: lock pages as they are first touched.
const MLOCK_ONFAULT: u32 = 1;

/// `getpriority`/`setpriority`: `who` is a thread (0: the caller).
pub const PRIO_PROCESS: i32 = 0;
/// `getpriority`/`setpriority`: `who` is a process group (0: the caller's).
pub const PRIO_PGRP: i32 = 1;
/// `getpriority`/`setpriority`: `who` is a user (0: the caller's, root).
pub const PRIO_USER: i32 = 2;
/// The lowest nice value (the highest priority).
const NICE_MIN: i32 = -20;
/// The highest nice value.
const NICE_MAX: i32 = 19;

/// `membarrier`: the commands offered (the return value).
pub const MEMBARRIER_CMD_QUERY: i32 = 0;
/// `membarrier`: a barrier in every thread of every process.
pub const MEMBARRIER_CMD_GLOBAL: i32 = 1;
/// `membarrier`: a barrier in every thread of the processes registered for it.
pub const MEMBARRIER_CMD_GLOBAL_EXPEDITED: i32 = 2;
/// `membarrier`: register the caller's process for [`MEMBARRIER_CMD_GLOBAL_EXPEDITED`].
pub const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: i32 = 4;
/// `membarrier`: a barrier in every thread of the caller's process (registered first).
pub const MEMBARRIER_CMD_PRIVATE_EXPEDITED: i32 = 8;
/// `membarrier`: register for [`MEMBARRIER_CMD_PRIVATE_EXPEDITED`].
pub const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: i32 = 16;
/// `membarrier`: as [`MEMBARRIER_CMD_PRIVATE_EXPEDITED`], serialising instruction fetch.
pub const MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: i32 = 32;
/// `membarrier`: register for [`MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE`].
pub const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE: i32 = 64;
/// `membarrier`: the caller's process's registrations (the return value).
pub const MEMBARRIER_CMD_GET_REGISTRATIONS: i32 = 512;
/// The commands `membarrier` offers (the rseq ones are not: there is no rseq).
const MEMBARRIER_OFFERED: i32 = MEMBARRIER_CMD_GLOBAL
    | MEMBARRIER_CMD_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
    | MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE
    | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE
    | MEMBARRIER_CMD_GET_REGISTRATIONS;

/// What `prctl` and `membarrier` keep for a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Controls {
    /// `membarrier` registrations (`MEMBARRIER_CMD_REGISTER_*` bits).
    membarrier: i32,
    pdeathsig: usize,
    dumpable: bool,
    no_new_privs: bool,
    child_subreaper: bool,
    timer_slack_ns: usize,
}

impl Default for Controls {
    fn default() -> Self {
        Controls {
            membarrier: 0,
            pdeathsig: 0,
            dumpable: true,
            no_new_privs: false,
            child_subreaper: false,
            timer_slack_ns: DEFAULT_TIMER_SLACK_NS,
        }
    }
}

impl Controls {
    /// The signal the process gets when its parent ends (`PR_SET_PDEATHSIG`; 0: none).
    pub(crate) fn parent_death_signal(&self) -> i32 {
        self.pdeathsig as i32
    }

    /// Whether the process adopts its descendants' orphans (`PR_SET_CHILD_SUBREAPER`).
    pub(crate) fn is_child_subreaper(&self) -> bool {
        self.child_subreaper
    }

    /// What a new process gets from its creator, as Linux's `fork`: the parent-death
    /// signal, the subreaper flag and the `membarrier` registrations are not inherited,
    /// the rest is.
    pub(crate) fn for_child(&self) -> Controls {
        Controls {
            membarrier: 0,
            pdeathsig: 0,
            child_subreaper: false,
            ..*self
        }
    }
}

/// `tid` of a scheduling call: 0 is the caller, a negative one `EINVAL`.
fn sched_target(tid: i32) -> Result<Option<Tid>, Errno> {
    match tid {
        0 => Ok(None),
        t if t < 0 => Err(Errno::EINVAL),
        t => Ok(Some(t as Tid)),
    }
}

/// The range `mlock` and `munlock` name: whole pages, or `EINVAL` when it wraps.
fn lock_range(addr: usize, len: usize) -> Result<(usize, usize), Errno> {
    let page = crate::PAGE_SIZE;
    let start = addr & !(page - 1);
    let end = addr
        .checked_add(len)
        .and_then(|e| e.checked_next_multiple_of(page))
        .ok_or(Errno::EINVAL)?;
    Ok((start, end - start))
}

/// sched_get_priority_max(2): 99 for the real-time policies, 0 for the others.
///
/// # Errors
///
/// `EINVAL` for an unknown policy.
pub fn sched_get_priority_max(policy: i32) -> Result<i32, Errno> {
    match policy {
        SCHED_FIFO | SCHED_RR => Ok(MAX_RT_PRIORITY),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE | SCHED_DEADLINE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// sched_get_priority_min(2): 1 for the real-time policies, 0 for the others.
///
/// # Errors
///
/// `EINVAL` for an unknown policy.
pub fn sched_get_priority_min(policy: i32) -> Result<i32, Errno> {
    sched_get_priority_max(policy).map(|max| i32::from(max > 0))
}

impl System {
    /// The processes `kill(pid, …)` signals, as Linux picks them: `pid` > 0 that process
    /// (a zombie included), 0 every process of the caller's group, -1 every process but
    /// the first (init) and the caller's own, < -1 every process of group `-pid`. The
    /// caller's own process comes last, so that the others are sent to before a signal
    /// that ends the caller is delivered.
    ///
    /// # Errors
    ///
    /// `ESRCH` when that is no process (`i32::MIN`, whose group cannot be named, too).
    pub(crate) fn kill_targets(&self, pid: i32) -> Result<Vec<Pid>, Errno> {
        let caller = self.getpid()?;
        let guard = self.state.lock();
        let st = &guard.0;
        let group = |pgid: Pid| -> Vec<Pid> {
            let live = st.procs.iter().map(|(pid, p)| (*pid, p.pgid));
            let dead = st.zombies.iter().map(|(pid, z)| (*pid, z.pgid));
            live.chain(dead)
                .filter(|(_, g)| *g == pgid)
                .map(|(pid, _)| pid)
                .collect()
        };
        let mut targets = match pid {
            p if p > 0 => {
                if st.procs.contains_key(&p) || st.zombies.contains_key(&p) {
                    alloc::vec![p]
                } else {
                    Vec::new()
                }
            }
            0 => group(st.procs.get(&caller).map_or(0, |p| p.pgid)),
            -1 => st
                .procs
                .keys()
                .chain(st.zombies.keys())
                .copied()
                .filter(|p| Some(*p) != st.init && *p != caller)
                .collect(),
            i32::MIN => Vec::new(),
            p => group(-p),
        };
        if targets.is_empty() {
            return Err(Errno::ESRCH);
        }
        // The caller's own process last.
        targets.sort_by_key(|p| *p == caller);
        Ok(targets)
    }

    /// The process `pid` names (0: the caller's): its (group, session).
    fn group_and_session(&self, pid: Pid) -> Result<(Pid, Pid), Errno> {
        let caller = self.getpid()?;
        let pid = if pid == 0 { caller } else { pid };
        let guard = self.state.lock();
        let p = guard.0.procs.get(&pid).ok_or(Errno::ESRCH)?;
        Ok((p.pgid, p.sid))
    }

    /// getpgid(2): the process group of process `pid` (0: the caller).
    ///
    /// # Errors
    ///
    /// `ESRCH` when no process has that id; `EAGAIN` as [`System::gettid`].
    pub fn getpgid(&self, pid: Pid) -> Result<Pid, Errno> {
        self.group_and_session(pid).map(|(pgid, _)| pgid)
    }

    /// getsid(2): the session of process `pid` (0: the caller).
    ///
    /// # Errors
    ///
    /// As [`System::getpgid`].
    pub fn getsid(&self, pid: Pid) -> Result<Pid, Errno> {
        self.group_and_session(pid).map(|(_, sid)| sid)
    }

    /// setpgid(2): moves process `pid` (0: the caller) into process group `pgid` (0: the
    /// group whose id is `pid`, made if new), with Linux's rules.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a negative `pgid`; `ESRCH` when `pid` is neither the caller nor a child
    /// of it; `EPERM` for a child in another session, a session leader, or a `pgid` that is
    /// no group of the caller's session. Nothing changes on an error.
    pub fn setpgid(&self, pid: Pid, pgid: Pid) -> Result<(), Errno> {
        let caller = self.getpid()?;
        let pid = if pid == 0 { caller } else { pid };
        let pgid = if pgid == 0 { pid } else { pgid };
        if pgid < 0 {
            return Err(Errno::EINVAL);
        }
        let mut guard = self.state.lock();
        let super::State { procs, zombies, .. } = &mut guard.0;
        let session = procs.get(&caller).ok_or(Errno::ESRCH)?.sid;
        let target = procs.get(&pid).ok_or(Errno::ESRCH)?;
        if pid != caller && target.ppid != caller {
            return Err(Errno::ESRCH);
        }
        if target.sid != session {
            return Err(Errno::EPERM);
        }
        // A session leader: `setsid` made its group and session its own id.
        if target.sid == pid {
            return Err(Errno::EPERM);
        }
        // A group of the session, which a zombie in it still keeps alive (as on Linux).
        let live = procs.values().map(|p| (p.pgid, p.sid));
        let dead = zombies.values().map(|z| (z.pgid, z.sid));
        if pgid != pid && !live.chain(dead).any(|(g, s)| g == pgid && s == session) {
            return Err(Errno::EPERM);
        }
        procs.get_mut(&pid).ok_or(Errno::ESRCH)?.pgid = pgid;
        Ok(())
    }

    /// setsid(2): makes the caller the leader of a new session and process group, both
    /// named by its process id, which it returns.
    ///
    /// # Errors
    ///
    /// `EPERM` when a process group already has the caller's id (it leads one).
    pub fn setsid(&self) -> Result<Pid, Errno> {
        let caller = self.getpid()?;
        let mut guard = self.state.lock();
        let super::State { procs, zombies, .. } = &mut guard.0;
        // A group with the caller's id, a zombie's included (Linux counts them too).
        if procs.values().any(|p| p.pgid == caller) || zombies.values().any(|z| z.pgid == caller) {
            return Err(Errno::EPERM);
        }
        let p = procs.get_mut(&caller).ok_or(Errno::ESRCH)?;
        p.pgid = caller;
        p.sid = caller;
        Ok(caller)
    }

    /// Runs `f` on the scheduling policy of thread `tid` (`None`: the caller).
    fn with_policy<R>(&self, tid: Option<Tid>, f: impl FnOnce(&mut i32) -> R) -> Result<R, Errno> {
        match tid {
            None => self.with_caller(|t, _| f(&mut t.policy)),
            Some(tid) => {
                let mut guard = self.state.lock();
                let t = guard
                    .0
                    .threads
                    .values_mut()
                    .find(|t| t.tid == tid)
                    .ok_or(Errno::ESRCH)?;
                Ok(f(&mut t.policy))
            }
        }
    }

    /// sched_getscheduler(2): the policy of thread `tid` (0: the caller).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a negative `tid`, `ESRCH` for one that does not exist.
    pub fn sched_getscheduler(&self, tid: i32) -> Result<i32, Errno> {
        self.with_policy(sched_target(tid)?, |p| *p)
    }

    /// sched_setscheduler(2) with the priority read: gives thread `tid` (0: the caller)
    /// `policy` (`SCHED_RESET_ON_FORK` may be or-ed in; it changes nothing here).
    ///
    /// # Errors
    ///
    /// `EINVAL` for a negative `tid`, an unknown policy (`SCHED_DEADLINE` included: it
    /// needs `sched_setattr`), or a priority the policy does not allow (1 to 99 for the
    /// real-time ones, 0 for the others); `ESRCH` for a thread that does not exist; `EPERM`
    /// for `SCHED_FIFO` and `SCHED_RR`, which the cooperative scheduler cannot honour.
    pub fn sched_setscheduler(&self, tid: i32, policy: i32, priority: i32) -> Result<(), Errno> {
        let target = sched_target(tid)?;
        let policy = policy & !SCHED_RESET_ON_FORK;
        let realtime = match policy {
            SCHED_FIFO | SCHED_RR => true,
            SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => false,
            _ => return Err(Errno::EINVAL),
        };
        let allowed = if realtime { 1..=MAX_RT_PRIORITY } else { 0..=0 };
        if !allowed.contains(&priority) {
            return Err(Errno::EINVAL);
        }
        self.with_policy(target, |p| {
            if realtime {
                Err(Errno::EPERM)
            } else {
                *p = policy;
                Ok(())
            }
        })?
    }

    /// sched_getparam(2) without the pointer: the priority of thread `tid` (0: the caller):
    /// 0, as for every policy a thread can have here.
    ///
    /// # Errors
    ///
    /// As [`System::sched_getscheduler`].
    pub fn sched_getparam(&self, tid: i32) -> Result<i32, Errno> {
        self.sched_getscheduler(tid).map(|_| 0)
    }

    /// sched_setparam(2) with the priority read: keeps the thread's policy and sets its
    /// priority, which must be 0 (the policies here have none).
    ///
    /// # Errors
    ///
    /// As [`System::sched_getscheduler`]; `EINVAL` for a priority other than 0.
    pub fn sched_setparam(&self, tid: i32, priority: i32) -> Result<(), Errno> {
        let policy = self.sched_getscheduler(tid)?;
        self.sched_setscheduler(tid, policy, priority)
    }

    /// Runs `f` on the nice value of every thread `which` and `who` name (Linux's
    /// `getpriority` targets); `ESRCH` when none, `EINVAL` for an unknown `which`.
    fn with_nice_of(&self, which: i32, who: i32, mut f: impl FnMut(&mut i32)) -> Result<(), Errno> {
        if !(PRIO_PROCESS..=PRIO_USER).contains(&which) {
            return Err(Errno::EINVAL);
        }
        let (caller, group) = self.with_caller(|t, p| (t.tid, p.pgid))?;
        let mut guard = self.state.lock();
        let st = &mut guard.0;
        let mut found = false;
        for t in st.threads.values_mut() {
            let hit = match which {
                PRIO_PROCESS => t.tid == if who == 0 { caller } else { who },
                PRIO_PGRP => {
                    let pgid = if who == 0 { group } else { who };
                    st.procs.get(&t.pid).is_some_and(|p| p.pgid == pgid)
                }
                // Every thread runs as root (uid 0).
                _ => who == 0,
            };
            if hit {
                found = true;
                f(&mut t.nice);
            }
        }
        if found { Ok(()) } else { Err(Errno::ESRCH) }
    }

    /// getpriority(2): the lowest nice value (the highest priority) of the threads `which`
    /// ([`PRIO_PROCESS`], [`PRIO_PGRP`], [`PRIO_USER`]) and `who` (0: the caller's) name.
    /// Nice values are kept and reported; the cooperative scheduler does not weigh them.
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown `which`; `ESRCH` when `who` names no thread.
    pub fn getpriority(&self, which: i32, who: i32) -> Result<i32, Errno> {
        let mut lowest = NICE_MAX;
        self.with_nice_of(which, who, |n| lowest = lowest.min(*n))?;
        Ok(lowest)
    }

    /// setpriority(2): sets the nice value of the threads `which` and `who` name, clamped
    /// to -20..=19 as Linux clamps it (root may lower it).
    ///
    /// # Errors
    ///
    /// As [`System::getpriority`].
    pub fn setpriority(&self, which: i32, who: i32, nice: i32) -> Result<(), Errno> {
        let nice = nice.clamp(NICE_MIN, NICE_MAX);
        self.with_nice_of(which, who, |n| *n = nice)
    }

    /// The caller thread's name, as `PR_GET_NAME` writes it.
    ///
    /// # Errors
    ///
    /// `EAGAIN` as [`System::gettid`].
    pub fn thread_name(&self) -> Result<[u8; NAME_LEN], Errno> {
        self.with_caller(|t, _| t.name)
    }

    /// prctl(2): the options of the [module documentation](self); pointers in `args` are
    /// the caller's (`PR_SET_NAME` reads a string, the `PR_GET_` options that fill an
    /// `int` or a name write one). Returns the call's value (0 for the setters).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an unknown option, a signal past 64, a dumpable value other than 0 or
    /// 1, or `PR_SET_NO_NEW_PRIVS` with an argument other than 1 or extra arguments not 0;
    /// `EFAULT` for a bad pointer. Nothing changes on an error.
    pub fn prctl(&self, option: i32, args: [usize; 4]) -> Result<usize, Errno> {
        let space = self.address_space();
        let put_int = |value: usize| {
            UserPtr::<i32>::new(args[0])
                .write(&space, value as i32)
                .map(|()| 0)
        };
        match option {
            PR_SET_NAME => {
                // Up to 15 bytes, ending early at a NUL, as Linux's `strncpy_from_user`:
                // memory that ends before both is EFAULT.
                let room = space.valid_from(args[0], NAME_LEN - 1);
                let bytes = UserSlice::new(args[0], room).bytes(&space)?;
                let len = bytes.iter().position(|&b| b == 0).unwrap_or(room);
                if len == room && room < NAME_LEN - 1 {
                    return Err(Errno::EFAULT);
                }
                let mut name = [0u8; NAME_LEN];
                name[..len].copy_from_slice(&bytes[..len]);
                self.with_caller(|t, _| t.name = name)?;
                Ok(0)
            }
            PR_GET_NAME => {
                let name = self.thread_name()?;
                UserSlice::new(args[0], NAME_LEN).write(&space, &name)?;
                Ok(0)
            }
            PR_SET_PDEATHSIG if args[0] > SIG_MAX => Err(Errno::EINVAL),
            PR_SET_DUMPABLE if args[0] > 1 => Err(Errno::EINVAL),
            PR_SET_NO_NEW_PRIVS if args != [1, 0, 0, 0] => Err(Errno::EINVAL),
            PR_GET_NO_NEW_PRIVS if args != [0; 4] => Err(Errno::EINVAL),
            PR_SET_PDEATHSIG
            | PR_SET_DUMPABLE
            | PR_SET_NO_NEW_PRIVS
            | PR_SET_CHILD_SUBREAPER
            | PR_SET_TIMERSLACK => self.with_caller(|_, p| {
                let c = &mut p.controls;
                match option {
                    PR_SET_PDEATHSIG => c.pdeathsig = args[0],
                    PR_SET_DUMPABLE => c.dumpable = args[0] == 1,
                    PR_SET_NO_NEW_PRIVS => c.no_new_privs = true,
                    PR_SET_CHILD_SUBREAPER => c.child_subreaper = args[0] != 0,
                    _ if args[0] == 0 => c.timer_slack_ns = DEFAULT_TIMER_SLACK_NS,
                    _ => c.timer_slack_ns = args[0],
                }
                0
            }),
            PR_GET_PDEATHSIG | PR_GET_CHILD_SUBREAPER => {
                let c = self.with_caller(|_, p| p.controls)?;
                put_int(if option == PR_GET_PDEATHSIG {
                    c.pdeathsig
                } else {
                    usize::from(c.child_subreaper)
                })
            }
            PR_GET_DUMPABLE | PR_GET_NO_NEW_PRIVS | PR_GET_TIMERSLACK => {
                let c = self.with_caller(|_, p| p.controls)?;
                Ok(match option {
                    PR_GET_DUMPABLE => usize::from(c.dumpable),
                    PR_GET_NO_NEW_PRIVS => usize::from(c.no_new_privs),
                    _ => c.timer_slack_ns,
                })
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// membarrier(2): every thread of the process runs on one CPU (see `sched_getaffinity`)
    /// and a thread that is not running has passed the full barrier of its last switch,
    /// so a barrier on the calling CPU is one in every thread; the commands offered
    /// ([`MEMBARRIER_CMD_QUERY`] lists them) are that, with Linux's registration rules.
    ///
    /// # Errors
    ///
    /// `EINVAL` for flags other than 0, an unknown command or one not offered (the rseq
    /// ones); `EPERM` for an expedited private command the process did not register for.
    pub fn membarrier(&self, cmd: i32, flags: u32) -> Result<usize, Errno> {
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        let registrations = self.with_caller(|_, p| p.controls.membarrier)?;
        let registered = |register: i32| registrations & register != 0;
        match cmd {
            MEMBARRIER_CMD_QUERY => return Ok(MEMBARRIER_OFFERED as usize),
            MEMBARRIER_CMD_GET_REGISTRATIONS => return Ok(registrations as usize),
            MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED
            | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
            | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE => {
                self.with_caller(|_, p| p.controls.membarrier |= cmd)?;
                return Ok(0);
            }
            MEMBARRIER_CMD_PRIVATE_EXPEDITED
                if !registered(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) =>
            {
                return Err(Errno::EPERM);
            }
            MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE
                if !registered(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE) =>
            {
                return Err(Errno::EPERM);
            }
            MEMBARRIER_CMD_GLOBAL
            | MEMBARRIER_CMD_GLOBAL_EXPEDITED
            | MEMBARRIER_CMD_PRIVATE_EXPEDITED
            | MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE => {}
            _ => return Err(Errno::EINVAL),
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        Ok(0)
    }

    /// mlock2(2) (`mlock` is `flags` 0) and munlock(2) (`flags` 0): memory is never paged
    /// out, so they succeed on mapped memory and change nothing.
    ///
    /// # Errors
    ///
    /// `EINVAL` for flags other than `MLOCK_ONFAULT` or a range that wraps; `ENOMEM` for a
    /// range that is not mapped.
    pub fn mlock(&self, addr: usize, len: usize, flags: u32) -> Result<(), Errno> {
        if flags & !MLOCK_ONFAULT != 0 {
            return Err(Errno::EINVAL);
        }
        let (start, bytes) = lock_range(addr, len)?;
        self.check_mapped(start, bytes)
    }

    /// mlockall(2): succeeds (nothing is ever paged out).
    ///
    /// # Errors
    ///
    /// `EINVAL` for no flags, unknown ones, or `MCL_ONFAULT` alone.
    pub fn mlockall(&self, flags: u32) -> Result<(), Errno> {
        if flags == 0
            || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0
            || flags == MCL_ONFAULT
        {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }
}
