//! Child processes after they end: zombies, their parent's exit signal, and `wait4` /
//! `waitid`, with Linux's rules.
//!
//! A process made by `clone` without `CLONE_THREAD` has a parent, the caller's process.
//! When its last thread ends, it leaves a **zombie**: its pid (still taken, so no new
//! process gets it), its process group, how it ended ([`ExitKind`]: an exit status, or the
//! signal that killed it) and what it used (CPU time and context switches, its own and
//! those of its waited-for descendants). Its parent then gets the child's `exit_signal`
//! (clone's `CSIGNAL` bits, `SIGCHLD` for `fork`-like clones) with `CLD_EXITED` or
//! `CLD_KILLED` information, and any of the parent's threads waiting in `wait4`/`waitid`
//! wakes. The zombie stays until a wait reaps it; reaping adds its usage to the parent's
//! `RUSAGE_CHILDREN` and `times`' children fields.
//!
//! As on Linux:
//!
//! - a parent that ignores `SIGCHLD` (`SIG_IGN`) or set `SA_NOCLDWAIT` keeps no zombies of
//!   children whose exit signal is `SIGCHLD` (they are reaped at once; with `SIG_IGN` no
//!   signal is sent), and its waits end with `ECHILD` once no child is left;
//! - a child whose exit signal is not `SIGCHLD` (0 included) is a "clone" child: plain
//!   waits skip it, `__WCLONE` waits only for such children, `__WALL` for all;
//! - when a process ends, its children (live or zombie) go to the nearest ancestor that set
//!   `PR_SET_CHILD_SUBREAPER`, else to the first process, the image's init, with `SIGCHLD`
//!   as their exit signal; a zombie handed over this way notifies its new parent as if it
//!   had just ended, and a live child that set `PR_SET_PDEATHSIG` gets that signal.
//!   Without a live init they are reaped.
//!
//! Reaping is the last use of a zombie; a wait with `WNOWAIT` (`waitid` only) reports one
//! and leaves it. There are no stopped or continued processes here (no job control), so
//! `WUNTRACED`/`WSTOPPED` and `WCONTINUED` are accepted and never match. A blocking wait
//! is interrupted by a signal whose handler runs: `EINTR`, or a restart when the handler
//! has `SA_RESTART`.
//!
//! The layer's "machine exit" is unchanged by zombies: the run ends when the last live
//! process ends, and [`System::process_count`] counts live processes only.

use alloc::vec::Vec;

use uk_syscall::Errno;

use super::{Process, State, System, Usage};
use crate::cputime::Rusage;
use crate::futex::FUTEX_BITSET_MATCH_ANY;
use crate::ids::Pid;
use crate::signal::{SI_USER, SIGCHLD, SigInfo};

/// `wait4`/`waitid`: return at once when no child is ready.
pub const WNOHANG: i32 = 1;
/// `wait4`: also report stopped children (none ever stop here).
pub const WUNTRACED: i32 = 2;
/// `waitid`: report stopped children (none ever stop here).
pub const WSTOPPED: i32 = 2;
/// `waitid`: report children that ended.
pub const WEXITED: i32 = 4;
/// Report children continued by `SIGCONT` (none here).
pub const WCONTINUED: i32 = 8;
/// `waitid`: leave the reported child waitable.
pub const WNOWAIT: i32 = 0x0100_0000;
/// Only the caller's own children, not those of other threads (every thread of a process
/// shares its children here, as Linux's default; accepted).
pub const WNOTHREAD: i32 = 0x2000_0000;
/// Children of any exit signal.
pub const WALL: i32 = 0x4000_0000;
/// Only "clone" children: those whose exit signal is not `SIGCHLD`.
pub const WCLONE: i32 = 0x8000_0000_u32 as i32;

/// `waitid`'s id type: any child.
pub const P_ALL: i32 = 0;
/// `waitid`'s id type: the child with this pid.
pub const P_PID: i32 = 1;
/// `waitid`'s id type: children in this process group (0: the caller's).
pub const P_PGID: i32 = 2;
/// `waitid`'s id type: the child a pidfd names (`pidfd_open`, feature `vfs`).
pub const P_PIDFD: i32 = 3;

/// `si_code` of `SIGCHLD`: the child called `exit`.
pub const CLD_EXITED: i32 = 1;
/// `si_code` of `SIGCHLD`: a signal killed the child.
pub const CLD_KILLED: i32 = 2;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// It called `exit`/`exit_group` (or its last thread returned) with this status.
    Exited(u8),
    /// The default action of this signal ended it.
    Killed(i32),
}

impl ExitKind {
    /// The `int` status `wait4` stores (what `WIFEXITED`, `WEXITSTATUS`, `WIFSIGNALED` and
    /// `WTERMSIG` decode). No core dumps are written, so the core bit is never set.
    pub fn wait_status(self) -> i32 {
        match self {
            ExitKind::Exited(code) => i32::from(code) << 8,
            ExitKind::Killed(sig) => sig & 0x7f,
        }
    }

    /// `si_code` for `SIGCHLD` and `waitid`.
    pub fn si_code(self) -> i32 {
        match self {
            ExitKind::Exited(_) => CLD_EXITED,
            ExitKind::Killed(_) => CLD_KILLED,
        }
    }

    /// `si_status`: the exit status or the signal.
    pub fn si_status(self) -> i32 {
        match self {
            ExitKind::Exited(code) => i32::from(code),
            ExitKind::Killed(sig) => sig,
        }
    }

    /// The run's exit status when this was the last process: a killed one's is
    /// 128 + the signal, as a shell reports it.
    pub(crate) fn machine_status(self) -> u8 {
        match self {
            ExitKind::Exited(code) => code,
            ExitKind::Killed(sig) => (128 + sig) as u8,
        }
    }
}

/// An ended process that its parent has not waited for yet.
pub(super) struct Zombie {
    pub(super) ppid: Pid,
    pub(super) pgid: Pid,
    /// Its session: a zombie still holds its group and session ids (`setsid`, `setpgid`).
    pub(super) sid: Pid,
    exit_signal: i32,
    how: ExitKind,
    /// Its own use and that of its waited-for descendants.
    usage: Usage,
}

/// A child a wait reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reaped {
    /// Its pid.
    pub pid: Pid,
    /// How it ended.
    pub how: ExitKind,
    /// What it and its waited-for descendants used (`wait4`'s and `waitid`'s `rusage`).
    pub usage: Rusage,
}

impl Reaped {
    /// The `siginfo_t` `waitid` stores: `SIGCHLD`, `CLD_EXITED`/`CLD_KILLED`, the pid, uid
    /// 0, the status and the CPU time in clock ticks.
    pub fn siginfo(&self) -> SigInfo {
        let ticks = crate::cputime::timeval_ticks(&self.usage.ru_utime);
        SigInfo::child(self.pid, self.how, ticks)
    }
}

/// Which children a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitFor {
    /// Any child.
    Any,
    /// The child with this pid.
    Pid(Pid),
    /// Children in this process group (0: the caller's).
    Group(Pid),
}

/// What a wait found, under the lock.
enum Found {
    Ready(Reaped),
    /// Eligible children exist, none waitable now.
    NotYet,
    /// No eligible child at all.
    None,
}

/// Signals and wakes owed once a process has ended, sent after the state's lock is let go.
#[derive(Default)]
pub(super) struct Notices {
    /// (process, the information of the signal it gets): exit signals for parents,
    /// parent-death signals for children.
    signals: Vec<(Pid, SigInfo)>,
    /// Parents whose waiting threads should look again.
    wakes: Vec<Pid>,
}

/// The futex-table key a process's waiting threads queue under: `4 * pid + 3`, which no
/// futex word (4-byte aligned) and no other wait of the layer (0, 1 and `4n + 2`) uses.
fn child_wait_key(pid: Pid) -> usize {
    (pid as usize) << 2 | 3
}

/// The CPU time of `usage` in clock ticks (`si_utime`).
fn usage_ticks(usage: &Usage) -> i64 {
    crate::cputime::ticks(usage.cpu_ns)
}

impl State {
    /// Bookkeeping for process `pid` (`ended`, no longer in `procs`), which just ended
    /// `how` after using `usage` (its children's share included): leaves a zombie for its
    /// parent or frees its id, and hands its own children to init. Returns what to send.
    pub(super) fn process_ended(
        &mut self,
        pid: Pid,
        ended: &Process,
        how: ExitKind,
        usage: Usage,
    ) -> Notices {
        let mut notices = Notices::default();
        let ppid = ended.ppid;
        let zombie = Zombie {
            ppid,
            pgid: ended.pgid,
            sid: ended.sid,
            exit_signal: ended.exit_signal,
            how,
            usage,
        };
        if !self.notify_parent(pid, zombie, &mut notices) {
            self.ids.free(pid);
        }
        // Its children go to the nearest subreaper among its ancestors, else to init (or,
        // without a live one, are reaped); those that asked get their parent-death signal.
        let init = self.new_parent_for_children_of(ppid);
        for (child, p) in self.procs.iter_mut().filter(|(_, p)| p.ppid == pid) {
            p.ppid = init.unwrap_or(0);
            p.exit_signal = SIGCHLD;
            let sig = p.controls.parent_death_signal();
            if sig != 0 {
                notices
                    .signals
                    .push((*child, SigInfo::new(sig, SI_USER, pid)));
            }
        }
        let orphans: Vec<Pid> = self
            .zombies
            .iter()
            .filter(|(_, z)| z.ppid == pid)
            .map(|(child, _)| *child)
            .collect();
        for child in orphans {
            let Some(mut z) = self.zombies.remove(&child) else {
                continue;
            };
            let kept = match init {
                Some(init) => {
                    z.ppid = init;
                    z.exit_signal = SIGCHLD;
                    self.notify_parent(child, z, &mut notices)
                }
                None => false,
            };
            if !kept {
                self.ids.free(child);
            }
        }
        notices
    }

    /// Where the children of a process whose parent was `ppid` go when it ends: the
    /// nearest live ancestor (from `ppid` up) that set `PR_SET_CHILD_SUBREAPER`, else the
    /// live init.
    fn new_parent_for_children_of(&self, ppid: Pid) -> Option<Pid> {
        let mut at = ppid;
        // Each step goes to a parent; the chain is at most as long as there are processes.
        for _ in 0..self.procs.len() {
            let Some(p) = self.procs.get(&at) else {
                break;
            };
            if p.controls.is_child_subreaper() {
                return Some(at);
            }
            at = p.ppid;
        }
        self.init.filter(|p| self.procs.contains_key(p))
    }

    /// Gives `zombie` (process `pid`) to its parent: records the exit signal to send and
    /// the parent's waiters to wake, and keeps the zombie unless the parent has no zombies
    /// of such children. Returns whether it was kept.
    fn notify_parent(&mut self, pid: Pid, zombie: Zombie, notices: &mut Notices) -> bool {
        let Some(parent) = self.procs.get(&zombie.ppid) else {
            return false;
        };
        let (ignored, no_zombies) = if zombie.exit_signal == SIGCHLD {
            parent.sig.child_exit_disposition()
        } else {
            (false, false)
        };
        if zombie.exit_signal != 0 && !ignored {
            let mut info = SigInfo::child(pid, zombie.how, usage_ticks(&zombie.usage));
            info.signo = zombie.exit_signal;
            notices.signals.push((zombie.ppid, info));
        }
        notices.wakes.push(zombie.ppid);
        if no_zombies {
            return false;
        }
        self.zombies.insert(pid, zombie);
        true
    }

    /// Looks for a child of process `me` that `which` and `options` select; reaps it
    /// (unless `WNOWAIT`) when one has ended. `data_peak_kib` is the `ru_maxrss` to report.
    fn find_child(&mut self, me: Pid, which: WaitFor, options: i32, data_peak_kib: i64) -> Found {
        let my_group = self.procs.get(&me).map_or(0, |p| p.pgid);
        let selected = |pid: Pid, pgid: Pid, exit_signal: i32| {
            let wanted = match which {
                WaitFor::Any => true,
                WaitFor::Pid(p) => p == pid,
                WaitFor::Group(0) => pgid == my_group,
                WaitFor::Group(g) => pgid == g,
            };
            // Linux's eligible_child: "clone" children only for __WCLONE, unless __WALL.
            let clone_child = exit_signal != SIGCHLD;
            wanted && (options & WALL != 0 || clone_child == (options & WCLONE != 0))
        };
        let ready = self
            .zombies
            .iter()
            .find(|(pid, z)| z.ppid == me && selected(**pid, z.pgid, z.exit_signal))
            .map(|(pid, _)| *pid);
        if let Some(pid) = ready
            && options & WEXITED != 0
        {
            let z = if options & WNOWAIT != 0 {
                self.zombies.get(&pid).map(|z| (z.how, z.usage))
            } else {
                self.zombies.remove(&pid).map(|z| {
                    self.ids.free(pid);
                    if let Some(parent) = self.procs.get_mut(&me) {
                        parent.children_usage = parent.children_usage.add(z.usage);
                    }
                    (z.how, z.usage)
                })
            };
            if let Some((how, usage)) = z {
                return Found::Ready(Reaped {
                    pid,
                    how,
                    usage: Rusage::of(usage, data_peak_kib),
                });
            }
        }
        let live = self
            .procs
            .iter()
            .any(|(pid, p)| p.ppid == me && selected(*pid, p.pgid, p.exit_signal));
        if live || ready.is_some() {
            Found::NotYet
        } else {
            Found::None
        }
    }
}

impl System {
    /// `wait4(pid, …, options, …)` without the pointers: waits for a child of the caller's
    /// process to end and reaps it. `pid` > 0 names the child, -1 any, 0 any in the
    /// caller's process group, < -1 any in group `-pid`. `Ok(None)` for `WNOHANG` when
    /// children exist but none has ended.
    ///
    /// # Errors
    ///
    /// `EINVAL` for unknown options; `ESRCH` for `pid` = `i32::MIN`; `ECHILD` when no
    /// child matches; `EINTR` when a handler without `SA_RESTART` ran while waiting;
    /// `ENOSYS` for a wait outside a scheduler thread.
    pub fn wait4(&self, pid: i32, options: i32) -> Result<Option<Reaped>, Errno> {
        const KNOWN: i32 = WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WCLONE | WALL;
        if options & !KNOWN != 0 {
            return Err(Errno::EINVAL);
        }
        let which = match pid {
            i32::MIN => return Err(Errno::ESRCH),
            -1 => WaitFor::Any,
            0 => WaitFor::Group(0),
            p if p < 0 => WaitFor::Group(p.unsigned_abs() as Pid),
            p => WaitFor::Pid(p as Pid),
        };
        self.wait_for_child(which, options | WEXITED)
    }

    /// `waitid(idtype, id, …, options, …)` without the pointers: as [`System::wait4`], with
    /// `waitid`'s selection ([`P_ALL`], [`P_PID`], [`P_PGID`]) and options (one of
    /// [`WEXITED`], [`WSTOPPED`], [`WCONTINUED`] is required; [`WNOWAIT`] leaves the child
    /// waitable).
    ///
    /// # Errors
    ///
    /// `EINVAL` for unknown options or none of the three, an unknown `idtype`, or a
    /// non-positive pid or negative group; `EBADF` for [`P_PIDFD`] with a descriptor that
    /// is no pidfd, `EAGAIN` through a non-blocking one whose child has not ended;
    /// otherwise as [`System::wait4`].
    pub fn waitid(&self, idtype: i32, id: i32, options: i32) -> Result<Option<Reaped>, Errno> {
        const KNOWN: i32 =
            WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | WNOTHREAD | WCLONE | WALL;
        if options & !KNOWN != 0 || options & (WEXITED | WSTOPPED | WCONTINUED) == 0 {
            return Err(Errno::EINVAL);
        }
        let which = match idtype {
            P_ALL => WaitFor::Any,
            P_PID if id > 0 => WaitFor::Pid(id as Pid),
            P_PGID if id >= 0 => WaitFor::Group(id as Pid),
            #[cfg(feature = "vfs")]
            P_PIDFD if id >= 0 => {
                // A non-blocking pidfd waits as WNOHANG does and says EAGAIN for "not yet".
                let (pid, options, nonblock) = self.pidfd_wait_target(id, options)?;
                return match self.wait_for_child(WaitFor::Pid(pid), options)? {
                    None if nonblock => Err(Errno::EAGAIN),
                    found => Ok(found),
                };
            }
            #[cfg(not(feature = "vfs"))]
            P_PIDFD if id >= 0 => return Err(Errno::EBADF),
            _ => return Err(Errno::EINVAL),
        };
        self.wait_for_child(which, options)
    }

    fn wait_for_child(&self, which: WaitFor, options: i32) -> Result<Option<Reaped>, Errno> {
        let me = self.getpid()?;
        let look = || {
            let peak = self.data_peak_kib();
            self.state.lock().0.find_child(me, which, options, peak)
        };
        loop {
            match look() {
                Found::Ready(reaped) => return Ok(Some(reaped)),
                Found::None => return Err(Errno::ECHILD),
                Found::NotYet if options & WNOHANG != 0 => return Ok(None),
                Found::NotYet => {}
            }
            if self.has_deliverable_signal() {
                let (handled, restart) = self.deliver_pending_signals_noting_restart();
                if handled > 0 && !restart {
                    return Err(Errno::EINTR);
                }
                continue;
            }
            // Asked once queued, so that a child ending in between is not missed: only a
            // look (WNOWAIT), the reaping is the loop's.
            let peek = || {
                let found = self
                    .state
                    .lock()
                    .0
                    .find_child(me, which, options | WNOWAIT, 0);
                !matches!(found, Found::NotYet)
            };
            self.wait_queued(child_wait_key(me), FUTEX_BITSET_MATCH_ANY, None, || {
                self.has_deliverable_signal() || peek()
            })?;
        }
    }

    /// Sends what [`State::process_ended`] owed, once the state's lock is let go.
    pub(super) fn send_notices(&self, notices: Notices) {
        // Pidfds of the ended process turn readable.
        #[cfg(feature = "vfs")]
        uk_vfs::pidfd::process_ended();
        for (parent, info) in notices.signals {
            self.notify_process(parent, info);
        }
        for parent in notices.wakes {
            self.wake_matching(child_wait_key(parent), usize::MAX, FUTEX_BITSET_MATCH_ANY);
        }
    }

    /// Whether `pid` names a zombie: a child that ended and was not waited for yet.
    pub fn is_zombie(&self, pid: Pid) -> bool {
        self.state.lock().0.zombies.contains_key(&pid)
    }

    /// What the caller's process's waited-for children (and their own) used.
    pub(crate) fn children_usage(&self) -> Result<Usage, Errno> {
        self.with_caller(|_, p| p.children_usage)
    }
}
