//! Raw adapters: Linux's register arguments to the typed functions, registered with
//! `uk_syscall::register!` so that dispatch by number (and the binary trap entry) reaches
//! them. Every pointer goes through [`uk_syscall::user`].
#![allow(unsafe_code)]

use alloc::boxed::Box;

use uk_syscall::user::{AddressSpace, UserPtr, UserSlice};
use uk_syscall::{Args, Errno, SyscallResult};

use crate::cputime::Rusage;
use crate::flags::{CLONE_ARGS_SIZE_VER0, CloneArgs, Via};
use crate::rlimit::Rlimit;
use crate::signal::{SigAction, SigInfo, SigStack};
use crate::system::ChildStart;
use crate::time::Timespec;
use crate::{misc, procctl, system};

/// Stack the child of a trapped clone starts on before it resumes the caller's registers
/// (only `resume_frame` runs there; the child then runs on the clone stack).
pub const RESUME_STACK: usize = 16 * 1024;

fn int(v: usize) -> i32 {
    v as i32
}

fn id(r: Result<crate::Pid, Errno>) -> SyscallResult {
    r.map(|v| v as usize)
}

/// The "new value in, old value out" calls (prlimit64, rt_sigaction, rt_sigprocmask): reads
/// the new value at `new` unless it is NULL, checks that `old` (unless NULL) can be written
/// *before* `change` runs, so that a bad pointer changes nothing, then writes the old value
/// `change` returns there.
fn exchange<N: Copy + uk_syscall::user::Plain, O: Copy>(
    new: usize,
    old: usize,
    change: impl FnOnce(Option<N>) -> Result<O, Errno>,
) -> SyscallResult {
    let space = system().address_space();
    let (new, old) = (UserPtr::<N>::new(new), UserPtr::<O>::new(old));
    let new = if new.is_null() {
        None
    } else {
        Some(new.read(&space)?)
    };
    if !old.is_null() {
        old.check(&space)?;
    }
    let value = change(new)?;
    if !old.is_null() {
        old.write(&space, value)?;
    }
    Ok(0)
}

/// getpid.
pub fn sys_getpid(_: &Args) -> SyscallResult {
    id(system().getpid())
}

/// gettid.
pub fn sys_gettid(_: &Args) -> SyscallResult {
    id(system().gettid())
}

/// getppid.
pub fn sys_getppid(_: &Args) -> SyscallResult {
    id(system().getppid())
}

/// arch_prctl(code, addr) (x86_64).
pub fn sys_arch_prctl(a: &Args) -> SyscallResult {
    system().arch_prctl(a[0] as i32, a[1])
}

/// set_tid_address(tidptr).
pub fn sys_set_tid_address(a: &Args) -> SyscallResult {
    id(system().set_tid_address(a[0]))
}

/// set_robust_list(head, len).
pub fn sys_set_robust_list(a: &Args) -> SyscallResult {
    system().set_robust_list(a[0], a[1])?;
    Ok(0)
}

/// get_robust_list(pid, head_ptr, len_ptr): the list head of thread `pid` (the caller for
/// 0) through `head_ptr`, [`crate::ROBUST_LIST_HEAD_LEN`] through `len_ptr`.
pub fn sys_get_robust_list(a: &Args) -> SyscallResult {
    let head = system().get_robust_list(int(a[0]))?;
    let space = system().address_space();
    UserPtr::<usize>::new(a[1]).write(&space, head)?;
    UserPtr::<usize>::new(a[2]).write(&space, crate::ROBUST_LIST_HEAD_LEN)?;
    Ok(0)
}

fn clone_with(raw: &Args, args: CloneArgs, via: Via) -> SyscallResult {
    // The caller's registers, read before anything that could block.
    let frame = uk_syscall::trap_frame(raw).copied();
    // Invalid flags are reported as such even without a trap frame.
    let plan = args.validate(via).inspect_err(|&e| {
        if e == Errno::ENOSYS {
            log::warn!("clone: unsupported flags {:#x}: ENOSYS", args.flags);
        }
    })?;
    let Some(mut child) = frame else {
        log::warn!(
            "clone by number outside the trap entry: the child would have no registers to resume; \
             call uk_posix_process::clone_call directly: ENOSYS"
        );
        return Err(Errno::ENOSYS);
    };
    // Linux register semantics: the child returns 0 with every other register of the
    // caller, on the clone stack (or the caller's stack pointer when none was given).
    child.set_result(0);
    if let Some(sp) = plan.stack_top {
        child.set_sp(sp);
    }
    let resume: Box<dyn FnOnce()> = Box::new(move || {
        // SAFETY: `child` is a copy of this image's trapped frame with only the result and
        // the stack pointer changed; the stack was checked to be RAM by `System::clone`,
        // and the caller of clone handed it to the child.
        unsafe { uk_syscall::resume_frame(&child) }
    });
    system()
        .clone(
            &args,
            via,
            ChildStart::Resume {
                resume,
                kernel_stack: RESUME_STACK,
            },
        )
        .map(|t| t as usize)
}

/// clone(flags, stack, parent_tid, child_tid, tls) on x86_64; (flags, stack, parent_tid,
/// tls, child_tid) on aarch64.
pub fn sys_clone(a: &Args) -> SyscallResult {
    let (ctid, tls) = if cfg!(target_arch = "aarch64") {
        (a[4], a[3])
    } else {
        (a[3], a[4])
    };
    clone_with(
        a,
        CloneArgs::from_legacy(a[0] as u64, a[1], a[2], ctid, tls),
        Via::Clone,
    )
}

/// clone3(args, size).
pub fn sys_clone3(a: &Args) -> SyscallResult {
    let (ptr, size) = (a[0], a[1]);
    if size < CLONE_ARGS_SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let space = system().address_space();
    let bytes = UserSlice::new(ptr, size).bytes(&space)?.to_vec();
    clone_with(a, CloneArgs::from_clone3(&bytes)?, Via::Clone3)
}

/// futex(uaddr, op, val, timeout/val2, uaddr2, val3).
pub fn sys_futex(a: &Args) -> SyscallResult {
    system().futex(a[0], int(a[1]), a[2] as u32, a[3], a[4], a[5] as u32)
}

/// exit(status): ends the calling thread.
pub fn sys_exit(a: &Args) -> SyscallResult {
    system().exit(int(a[0]))
}

/// exit_group(status): ends every thread of the caller's process.
pub fn sys_exit_group(a: &Args) -> SyscallResult {
    system().exit_group(int(a[0]))
}

/// `EFAULT` unless `ptr` is NULL or lies in `space`.
fn check_unless_null<T: Copy>(ptr: UserPtr<T>, space: &AddressSpace) -> Result<(), Errno> {
    if ptr.is_null() {
        Ok(())
    } else {
        ptr.check(space)
    }
}

/// Writes `value` at `ptr` unless it is NULL.
fn write_unless_null<T: Copy>(
    ptr: UserPtr<T>,
    space: &AddressSpace,
    value: T,
) -> Result<(), Errno> {
    if ptr.is_null() {
        Ok(())
    } else {
        ptr.write(space, value)
    }
}

/// wait4(pid, wstatus, options, rusage): `wstatus` and `rusage` may be NULL; both are
/// checked before a child is reaped, so a bad pointer loses no child.
pub fn sys_wait4(a: &Args) -> SyscallResult {
    let space = system().address_space();
    let status = UserPtr::<i32>::new(a[1]);
    let usage = UserPtr::<Rusage>::new(a[3]);
    check_unless_null(status, &space)?;
    check_unless_null(usage, &space)?;
    let Some(reaped) = system().wait4(int(a[0]), int(a[2]))? else {
        return Ok(0);
    };
    write_unless_null(status, &space, reaped.how.wait_status())?;
    write_unless_null(usage, &space, reaped.usage)?;
    Ok(reaped.pid as usize)
}

/// waitid(idtype, id, infop, options, rusage): `infop` and `rusage` may be NULL. With
/// `WNOHANG` and no child ready, `infop`'s first six fields are zeroed (so `si_pid` is 0),
/// as Linux does, and `rusage` is left alone.
pub fn sys_waitid(a: &Args) -> SyscallResult {
    let space = system().address_space();
    let info = UserPtr::<SigInfo>::new(a[2]);
    let usage = UserPtr::<Rusage>::new(a[4]);
    check_unless_null(info, &space)?;
    check_unless_null(usage, &space)?;
    match system().waitid(int(a[0]), int(a[1]), int(a[3]))? {
        Some(reaped) => {
            write_unless_null(info, &space, reaped.siginfo())?;
            write_unless_null(usage, &space, reaped.usage)?;
        }
        None if !info.is_null() => {
            // si_signo, si_errno, si_code, si_pid, si_uid, si_status: 0.
            UserPtr::<[u32; 7]>::new(a[2]).write(&space, [0; 7])?;
        }
        None => {}
    }
    Ok(0)
}

/// execve: `ENOSYS`.
pub fn sys_execve(_: &Args) -> SyscallResult {
    misc::execve()
}

/// fork: `ENOSYS`.
pub fn sys_fork(_: &Args) -> SyscallResult {
    misc::fork()
}

/// vfork: `ENOSYS`.
pub fn sys_vfork(_: &Args) -> SyscallResult {
    misc::vfork()
}

/// prlimit64(pid, resource, new, old): the new value is read and the old pointer checked
/// before anything changes; the old value is written whenever `old` is given.
pub fn sys_prlimit64(a: &Args) -> SyscallResult {
    exchange(a[2], a[3], |new: Option<[u64; 2]>| {
        system().prlimit(int(a[0]), a[1] as u32, new.map(Rlimit::from))
    })
}

/// getrlimit(resource, rlim).
pub fn sys_getrlimit(a: &Args) -> SyscallResult {
    let value = system().getrlimit(a[0] as u32)?;
    UserPtr::<Rlimit>::new(a[1]).write(&system().address_space(), value)?;
    Ok(0)
}

/// setrlimit(resource, rlim).
pub fn sys_setrlimit(a: &Args) -> SyscallResult {
    let new = Rlimit::from(UserPtr::<[u64; 2]>::new(a[1]).read(&system().address_space())?);
    system().setrlimit(a[0] as u32, new)?;
    Ok(0)
}

/// uname(buf).
pub fn sys_uname(a: &Args) -> SyscallResult {
    UserPtr::new(a[0]).write(&system().address_space(), misc::uname())?;
    Ok(0)
}

/// getpgid(pid).
pub fn sys_getpgid(a: &Args) -> SyscallResult {
    system().getpgid(int(a[0])).map(|p| p as usize)
}

/// getpgrp(): getpgid(0).
#[cfg(target_arch = "x86_64")]
pub fn sys_getpgrp(_: &Args) -> SyscallResult {
    system().getpgid(0).map(|p| p as usize)
}

/// getsid(pid).
pub fn sys_getsid(a: &Args) -> SyscallResult {
    system().getsid(int(a[0])).map(|p| p as usize)
}

/// setpgid(pid, pgid).
pub fn sys_setpgid(a: &Args) -> SyscallResult {
    system().setpgid(int(a[0]), int(a[1])).map(|()| 0)
}

/// setsid().
pub fn sys_setsid(_: &Args) -> SyscallResult {
    system().setsid().map(|p| p as usize)
}

/// The `struct sched_param` at `ptr` (its one `int`, the priority), read after the
/// checks that come first on Linux: `EINVAL` for a NULL pointer or a negative tid.
fn sched_param(tid: usize, ptr: usize) -> Result<i32, Errno> {
    if ptr == 0 || int(tid) < 0 {
        return Err(Errno::EINVAL);
    }
    UserPtr::<i32>::new(ptr).read(&system().address_space())
}

/// sched_getscheduler(pid).
pub fn sys_sched_getscheduler(a: &Args) -> SyscallResult {
    system().sched_getscheduler(int(a[0])).map(|p| p as usize)
}

/// sched_setscheduler(pid, policy, param).
pub fn sys_sched_setscheduler(a: &Args) -> SyscallResult {
    if int(a[1]) < 0 {
        return Err(Errno::EINVAL);
    }
    let priority = sched_param(a[0], a[2])?;
    system()
        .sched_setscheduler(int(a[0]), int(a[1]), priority)
        .map(|()| 0)
}

/// sched_getparam(pid, param).
pub fn sys_sched_getparam(a: &Args) -> SyscallResult {
    if a[1] == 0 || int(a[0]) < 0 {
        return Err(Errno::EINVAL);
    }
    let priority = system().sched_getparam(int(a[0]))?;
    UserPtr::<i32>::new(a[1]).write(&system().address_space(), priority)?;
    Ok(0)
}

/// sched_setparam(pid, param).
pub fn sys_sched_setparam(a: &Args) -> SyscallResult {
    let priority = sched_param(a[0], a[1])?;
    system().sched_setparam(int(a[0]), priority).map(|()| 0)
}

/// sched_get_priority_max(policy).
pub fn sys_sched_get_priority_max(a: &Args) -> SyscallResult {
    procctl::sched_get_priority_max(int(a[0])).map(|p| p as usize)
}

/// sched_get_priority_min(policy).
pub fn sys_sched_get_priority_min(a: &Args) -> SyscallResult {
    procctl::sched_get_priority_min(int(a[0])).map(|p| p as usize)
}

/// prctl(option, arg2, arg3, arg4, arg5).
pub fn sys_prctl(a: &Args) -> SyscallResult {
    system().prctl(int(a[0]), [a[1], a[2], a[3], a[4]])
}

/// mlock(addr, len).
pub fn sys_mlock(a: &Args) -> SyscallResult {
    system().mlock(a[0], a[1], 0).map(|()| 0)
}

/// mlock2(addr, len, flags).
pub fn sys_mlock2(a: &Args) -> SyscallResult {
    system().mlock(a[0], a[1], a[2] as u32).map(|()| 0)
}

/// mlockall(flags).
pub fn sys_mlockall(a: &Args) -> SyscallResult {
    system().mlockall(a[0] as u32).map(|()| 0)
}

/// munlockall(): nothing to unlock.
pub fn sys_munlockall(_: &Args) -> SyscallResult {
    Ok(0)
}

/// getpriority(which, who): Linux's raw value, 20 - nice (1 to 40), so that it is never
/// negative.
pub fn sys_getpriority(a: &Args) -> SyscallResult {
    system()
        .getpriority(int(a[0]), int(a[1]))
        .map(|nice| (20 - nice) as usize)
}

/// setpriority(which, who, nice).
pub fn sys_setpriority(a: &Args) -> SyscallResult {
    system()
        .setpriority(int(a[0]), int(a[1]), int(a[2]))
        .map(|()| 0)
}

/// sched_rr_get_interval(pid, interval): no time slices on a cooperative scheduler, 0.
pub fn sys_sched_rr_get_interval(a: &Args) -> SyscallResult {
    system().sched_getscheduler(int(a[0]))?;
    UserPtr::<[i64; 2]>::new(a[1]).write(&system().address_space(), [0, 0])?;
    Ok(0)
}

/// membarrier(cmd, flags, cpu_id).
pub fn sys_membarrier(a: &Args) -> SyscallResult {
    system().membarrier(int(a[0]), a[1] as u32)
}

/// getcpu(cpu, node, cache): CPU 0 and node 0, where the process's threads run; either
/// pointer may be NULL.
pub fn sys_getcpu(a: &Args) -> SyscallResult {
    let space = system().address_space();
    for ptr in [a[0], a[1]] {
        if ptr != 0 {
            UserPtr::<u32>::new(ptr).write(&space, 0)?;
        }
    }
    Ok(0)
}

/// sysinfo(info): `EFAULT` for a bad pointer.
pub fn sys_sysinfo(a: &Args) -> SyscallResult {
    let info = system().sysinfo().to_bytes();
    UserPtr::<[u8; misc::SYSINFO_SIZE]>::new(a[0]).write(&system().address_space(), info)?;
    Ok(0)
}

/// getuid, geteuid, getgid, getegid: [`crate::ROOT_ID`].
pub fn sys_root_id(_: &Args) -> SyscallResult {
    Ok(misc::ROOT_ID as usize)
}

/// getresuid(ruid, euid, suid) and getresgid: [`crate::ROOT_ID`] through each pointer, all
/// three checked before any is written.
pub fn sys_getres_ids(a: &Args) -> SyscallResult {
    let space = system().address_space();
    let ids = [a[0], a[1], a[2]].map(UserPtr::<u32>::new);
    for id in ids {
        id.check(&space)?;
    }
    for id in ids {
        id.write(&space, misc::ROOT_ID)?;
    }
    Ok(0)
}

/// getgroups(size, list): no supplementary groups (`list` is never written).
pub fn sys_getgroups(a: &Args) -> SyscallResult {
    if int(a[0]) < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// sched_getaffinity(pid, len, mask): CPU 0 ([`crate::AFFINITY_MASK`]); returns the bytes
/// written ([`crate::AFFINITY_MASK_SIZE`]), as the raw Linux call does.
pub fn sys_sched_getaffinity(a: &Args) -> SyscallResult {
    let sys = system();
    misc::check_affinity_request(int(a[0]), a[1], |tid| sys.tid_exists(tid as crate::Tid))?;
    UserPtr::new(a[2]).write(&sys.address_space(), misc::AFFINITY_MASK)?;
    Ok(misc::AFFINITY_MASK_SIZE)
}

/// sched_setaffinity(pid, len, mask): accepts a mask holding CPU 0, where the threads run.
pub fn sys_sched_setaffinity(a: &Args) -> SyscallResult {
    let sys = system();
    if a[1] < size_of::<u64>() {
        return Err(Errno::EINVAL);
    }
    let mask = UserPtr::<u64>::new(a[2]).read(&sys.address_space())?;
    if int(a[0]) != 0 && (int(a[0]) < 0 || !sys.tid_exists(int(a[0]) as crate::Tid)) {
        return Err(Errno::ESRCH);
    }
    misc::check_affinity_mask(mask)?;
    Ok(0)
}

/// pause(): waits until a signal runs a handler, then fails with `EINTR`.
pub fn sys_pause(_: &Args) -> SyscallResult {
    system().pause()
}

/// The descriptors a `poll` may name at most: `RLIMIT_NOFILE`'s soft limit.
#[cfg(feature = "vfs")]
fn poll_limit() -> usize {
    system()
        .getrlimit(crate::rlimit::RLIMIT_NOFILE)
        .map_or(uk_vfs::DEFAULT_MAX_FDS, |l| l.rlim_cur as usize)
}

/// Runs `poll` on the caller's `struct pollfd` array at `addr`: read whole (and checked
/// writable) before anything waits, `revents` written back afterwards.
#[cfg(feature = "vfs")]
fn poll_user(addr: usize, nfds: usize, deadline: Option<u64>, mask: Option<u64>) -> SyscallResult {
    if nfds > poll_limit() {
        return Err(Errno::EINVAL);
    }
    let sys = system();
    let space = sys.address_space();
    let array = UserSlice::new(addr, nfds * 8);
    let mut raw = array.bytes(&space)?.to_vec();
    let mut fds: alloc::vec::Vec<uk_vfs::PollFd> = raw
        .chunks_exact(8)
        .map(|e| uk_vfs::PollFd {
            fd: i32::from_ne_bytes([e[0], e[1], e[2], e[3]]),
            events: i16::from_ne_bytes([e[4], e[5]]),
            revents: 0,
        })
        .collect();
    let ready = sys.poll(&mut fds, deadline, mask)?;
    for (e, f) in raw.chunks_exact_mut(8).zip(&fds) {
        e[6..8].copy_from_slice(&f.revents.to_ne_bytes());
    }
    array.write(&space, &raw)?;
    Ok(ready)
}

/// A relative timeout at `addr` (NULL: none) as a deadline on the monotonic clock.
#[cfg(feature = "vfs")]
fn deadline_from_timespec(addr: usize) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let sys = system();
    let t = Timespec::from(UserPtr::<[i64; 2]>::new(addr).read(&sys.address_space())?);
    Ok(Some(sys.monotonic_ns().saturating_add(t.to_ns()?)))
}

/// The signal mask of `ppoll`/`pselect6` at `addr` (NULL: none), `size` bytes long.
#[cfg(feature = "vfs")]
fn optional_mask(addr: usize, size: usize) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    Ok(Some(
        UserPtr::<u64>::new(addr).read(&system().address_space())?,
    ))
}

/// ppoll(fds, nfds, timeout, sigmask, sigsetsize).
#[cfg(feature = "vfs")]
pub fn sys_ppoll(a: &Args) -> SyscallResult {
    let deadline = deadline_from_timespec(a[2])?;
    let mask = optional_mask(a[3], a[4])?;
    poll_user(a[0], a[1], deadline, mask)
}

/// poll(fds, nfds, timeout_ms): a negative timeout waits for ever.
#[cfg(feature = "vfs")]
pub fn sys_poll(a: &Args) -> SyscallResult {
    let ms = int(a[2]);
    let deadline = (ms >= 0).then(|| {
        system()
            .monotonic_ns()
            .saturating_add(ms as u64 * 1_000_000)
    });
    poll_user(a[0], a[1], deadline, None)
}

/// Runs `select` on the caller's three sets of `nfds` bits (NULL sets stay NULL), read
/// before anything waits and written back afterwards.
#[cfg(feature = "vfs")]
fn select_user(
    nfds: usize,
    sets: [usize; 3],
    deadline: Option<u64>,
    mask: Option<u64>,
) -> SyscallResult {
    let nfds = nfds.min(poll_limit());
    let words = nfds.div_ceil(64);
    let sys = system();
    let space = sys.address_space();
    let read_set = |addr: usize| -> Result<Option<alloc::vec::Vec<u64>>, Errno> {
        if addr == 0 {
            return Ok(None);
        }
        let raw = UserSlice::new(addr, words * 8).bytes(&space)?;
        Ok(Some(
            raw.chunks_exact(8)
                .map(|w| u64::from_ne_bytes(w.try_into().unwrap_or([0; 8])))
                .collect(),
        ))
    };
    let mut fd_sets = crate::poll::FdSets {
        read: read_set(sets[0])?,
        write: read_set(sets[1])?,
        except: read_set(sets[2])?,
    };
    // Bits past `nfds` in the last word are not descriptors to watch.
    if nfds % 64 != 0 {
        let keep = (1u64 << (nfds % 64)) - 1;
        for set in [&mut fd_sets.read, &mut fd_sets.write, &mut fd_sets.except] {
            if let Some(last) = set.as_mut().and_then(|w| w.last_mut()) {
                *last &= keep;
            }
        }
    }
    let ready = sys.select(nfds, &mut fd_sets, deadline, mask)?;
    for (addr, set) in sets
        .into_iter()
        .zip([fd_sets.read, fd_sets.write, fd_sets.except])
    {
        if let Some(words) = set {
            let raw: alloc::vec::Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
            UserSlice::new(addr, raw.len()).write(&space, &raw)?;
        }
    }
    Ok(ready)
}

/// pselect6(nfds, readfds, writefds, exceptfds, timeout, sigdata): `sigdata` points to
/// `{ const sigset_t *mask; size_t size }` (NULL: no mask).
#[cfg(feature = "vfs")]
pub fn sys_pselect6(a: &Args) -> SyscallResult {
    if int(a[0]) < 0 {
        return Err(Errno::EINVAL);
    }
    let deadline = deadline_from_timespec(a[4])?;
    let mask = match a[5] {
        0 => None,
        data => {
            let [addr, size] = UserPtr::<[usize; 2]>::new(data).read(&system().address_space())?;
            optional_mask(addr, size)?
        }
    };
    select_user(a[0], [a[1], a[2], a[3]], deadline, mask)
}

/// select(nfds, readfds, writefds, exceptfds, timeval): a NULL timeval waits for ever.
#[cfg(feature = "vfs")]
pub fn sys_select(a: &Args) -> SyscallResult {
    if int(a[0]) < 0 {
        return Err(Errno::EINVAL);
    }
    let deadline = match a[4] {
        0 => None,
        tv => {
            let [sec, usec] = UserPtr::<[i64; 2]>::new(tv).read(&system().address_space())?;
            if sec < 0 || !(0..1_000_000).contains(&usec) {
                return Err(Errno::EINVAL);
            }
            let ns = (sec as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(usec as u64 * 1000);
            Some(system().monotonic_ns().saturating_add(ns))
        }
    };
    select_user(a[0], [a[1], a[2], a[3]], deadline, None)
}

/// The epoll waits' common part, in Linux's order: `maxevents` (a C `int`, `EINVAL` unless
/// 1..=`EP_MAX_EVENTS`), the caller's event array of `maxevents` entries (`EFAULT`), then
/// the set and the wait ([`System::epoll_wait`](crate::System::epoll_wait)); the events
/// are written back in the caller's `struct epoll_event` layout (12 bytes on x86_64, 16 on
/// aarch64).
#[cfg(feature = "vfs")]
fn epoll_user(
    epfd: usize,
    events: usize,
    maxevents: usize,
    deadline: Option<u64>,
    mask: Option<u64>,
) -> SyscallResult {
    use uk_vfs::epoll::EPOLL_EVENT_SIZE;
    let max = int(maxevents);
    if max <= 0 || max as usize > crate::epoll::EP_MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    let sys = system();
    let space = sys.address_space();
    space.check(events, max as usize * EPOLL_EVENT_SIZE)?;
    let got = sys.epoll_wait(int(epfd), max as usize, deadline, mask)?;
    let raw: alloc::vec::Vec<u8> = got.iter().flat_map(|e| e.to_bytes()).collect();
    UserSlice::new(events, raw.len()).write(&space, &raw)?;
    Ok(got.len())
}

/// A timeout in milliseconds as a deadline on the monotonic clock (negative: none).
#[cfg(feature = "vfs")]
fn deadline_from_ms(ms: i32) -> Option<u64> {
    (ms >= 0).then(|| {
        system()
            .monotonic_ns()
            .saturating_add(ms as u64 * 1_000_000)
    })
}

/// epoll_wait(epfd, events, maxevents, timeout_ms) (x86_64): a negative timeout waits for
/// ever, 0 looks once.
#[cfg(feature = "vfs")]
pub fn sys_epoll_wait(a: &Args) -> SyscallResult {
    epoll_user(a[0], a[1], a[2], deadline_from_ms(int(a[3])), None)
}

/// epoll_pwait(epfd, events, maxevents, timeout_ms, sigmask, sigsetsize): the mask (NULL:
/// none; `EINVAL` unless `sigsetsize` is 8, `EFAULT`) is read first, as Linux does.
#[cfg(feature = "vfs")]
pub fn sys_epoll_pwait(a: &Args) -> SyscallResult {
    let mask = optional_mask(a[4], a[5])?;
    epoll_user(a[0], a[1], a[2], deadline_from_ms(int(a[3])), mask)
}

/// epoll_pwait2(epfd, events, maxevents, timeout, sigmask, sigsetsize): as `epoll_pwait`
/// with a relative `struct timespec` timeout (NULL: none; `EFAULT`, `EINVAL` for a bad
/// one), read before the mask.
#[cfg(feature = "vfs")]
pub fn sys_epoll_pwait2(a: &Args) -> SyscallResult {
    let deadline = deadline_from_timespec(a[3])?;
    let mask = optional_mask(a[4], a[5])?;
    epoll_user(a[0], a[1], a[2], deadline, mask)
}

/// setitimer(which, new, old): a NULL `new` disarms (as Linux takes it); `old`, when
/// given, is checked before anything changes and gets the previous setting.
pub fn sys_setitimer(a: &Args) -> SyscallResult {
    let sys = system();
    let space = sys.address_space();
    let new = match a[1] {
        0 => crate::itimer::Itimerval::default(),
        p => crate::itimer::Itimerval::from(UserPtr::<[i64; 4]>::new(p).read(&space)?),
    };
    let old = (a[2] != 0).then(|| UserPtr::<crate::itimer::Itimerval>::new(a[2]));
    if let Some(old) = old {
        old.check(&space)?;
    }
    let previous = sys.setitimer(int(a[0]), new)?;
    if let Some(old) = old {
        old.write(&space, previous)?;
    }
    Ok(0)
}

/// getitimer(which, value).
pub fn sys_getitimer(a: &Args) -> SyscallResult {
    let sys = system();
    let out = UserPtr::<crate::itimer::Itimerval>::new(a[1]);
    out.check(&sys.address_space())?;
    let value = sys.getitimer(int(a[0]))?;
    out.write(&sys.address_space(), value)?;
    Ok(0)
}

/// alarm(seconds): the seconds the previous alarm had left.
pub fn sys_alarm(a: &Args) -> SyscallResult {
    Ok(system().alarm(a[0] as u32) as usize)
}

/// madvise(addr, len, advice).
pub fn sys_madvise(a: &Args) -> SyscallResult {
    system().madvise(a[0], a[1], int(a[2])).map(|()| 0)
}

/// sched_yield.
pub fn sys_sched_yield(_: &Args) -> SyscallResult {
    system().sched_yield();
    Ok(0)
}

/// nanosleep(req, rem): `rem` is never written (sleeps are not interrupted).
pub fn sys_nanosleep(a: &Args) -> SyscallResult {
    let req = Timespec::from(UserPtr::<[i64; 2]>::new(a[0]).read(&system().address_space())?);
    let start = system().monotonic_ns();
    let slept = system().nanosleep(req);
    write_remaining(slept, start, req, a[1])
}

/// On `EINTR`, writes the time left of a relative sleep of `req` begun at `start_ns` to
/// `rem` (when not NULL), as Linux does.
fn write_remaining(
    slept: Result<(), Errno>,
    start_ns: u64,
    req: Timespec,
    rem: usize,
) -> SyscallResult {
    match slept {
        Ok(()) => Ok(0),
        Err(Errno::EINTR) if rem != 0 => {
            let end = start_ns.saturating_add(req.to_ns()?);
            let left = Timespec::from_ns(end.saturating_sub(system().monotonic_ns()));
            UserPtr::<Timespec>::new(rem).write(&system().address_space(), left)?;
            Err(Errno::EINTR)
        }
        Err(e) => Err(e),
    }
}

/// clock_nanosleep(clock, flags, req, rem).
pub fn sys_clock_nanosleep(a: &Args) -> SyscallResult {
    let req = Timespec::from(UserPtr::<[i64; 2]>::new(a[2]).read(&system().address_space())?);
    let start = system().monotonic_ns();
    let slept = system().clock_nanosleep(int(a[0]), int(a[1]), req);
    // An absolute sleep has no time left to report.
    let rem = if int(a[1]) & crate::time::TIMER_ABSTIME != 0 {
        0
    } else {
        a[3]
    };
    write_remaining(slept, start, req, rem)
}

/// clock_gettime(clock, tp).
pub fn sys_clock_gettime(a: &Args) -> SyscallResult {
    let now = system().clock_gettime(int(a[0]))?;
    UserPtr::new(a[1]).write(&system().address_space(), now)?;
    Ok(0)
}

/// clock_settime(clock, ts).
pub fn sys_clock_settime(a: &Args) -> SyscallResult {
    let ts = Timespec::from(UserPtr::<[i64; 2]>::new(a[1]).read(&system().address_space())?);
    system().clock_settime(int(a[0]), ts).map(|()| 0)
}

/// settimeofday(tv, tz): `tv` NULL sets nothing; `tz` (obsolete) is read and ignored.
#[cfg(target_arch = "x86_64")]
pub fn sys_settimeofday(a: &Args) -> SyscallResult {
    let space = system().address_space();
    let tv = match a[0] {
        0 => None,
        ptr => Some(UserPtr::<[i64; 2]>::new(ptr).read(&space)?),
    };
    if a[1] != 0 {
        UserPtr::<[i32; 2]>::new(a[1]).read(&space)?;
    }
    let Some([sec, usec]) = tv else {
        return Ok(0);
    };
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EINVAL);
    }
    let ts = Timespec {
        tv_sec: sec,
        tv_nsec: usec * 1000,
    };
    system()
        .clock_settime(crate::time::CLOCK_REALTIME, ts)
        .map(|()| 0)
}

/// clock_getres(clock, res): `res` may be NULL (the clock is still checked).
pub fn sys_clock_getres(a: &Args) -> SyscallResult {
    let res = system().clock_getres(int(a[0]))?;
    if a[1] != 0 {
        UserPtr::new(a[1]).write(&system().address_space(), res)?;
    }
    Ok(0)
}

/// getrusage(who, usage).
pub fn sys_getrusage(a: &Args) -> SyscallResult {
    let usage = system().getrusage(int(a[0]))?;
    UserPtr::new(a[1]).write(&system().address_space(), usage)?;
    Ok(0)
}

/// times(buf): the clock in ticks; `buf` may be NULL.
pub fn sys_times(a: &Args) -> SyscallResult {
    let (tms, now) = system().times()?;
    if a[0] != 0 {
        UserPtr::new(a[0]).write(&system().address_space(), tms)?;
    }
    Ok(now as usize)
}

/// timer_create(clock, sevp, timerid): `sevp` may be NULL; `timerid` is checked before the
/// timer is made.
pub fn sys_timer_create(a: &Args) -> SyscallResult {
    let sys = system();
    let space = sys.address_space();
    let event = match a[1] {
        0 => None,
        p => {
            UserSlice::new(p, crate::timer::SigEvent::SIZE).check(&space)?;
            Some(crate::timer::SigEvent::from_words(
                UserPtr::<[u64; 3]>::new(p).read(&space)?,
            ))
        }
    };
    let out = UserPtr::<i32>::new(a[2]);
    out.check(&space)?;
    let id = sys.timer_create(int(a[0]), event)?;
    out.write(&space, id)?;
    Ok(0)
}

/// timer_settime(timerid, flags, new, old): `old` may be NULL.
pub fn sys_timer_settime(a: &Args) -> SyscallResult {
    let sys = system();
    let space = sys.address_space();
    let new = crate::timer::Itimerspec::from(UserPtr::<[i64; 4]>::new(a[2]).read(&space)?);
    let old = (a[3] != 0).then(|| UserPtr::<crate::timer::Itimerspec>::new(a[3]));
    if let Some(old) = old {
        old.check(&space)?;
    }
    let previous = sys.timer_settime(int(a[0]), int(a[1]), new)?;
    if let Some(old) = old {
        old.write(&space, previous)?;
    }
    Ok(0)
}

/// timer_gettime(timerid, curr).
pub fn sys_timer_gettime(a: &Args) -> SyscallResult {
    let sys = system();
    let out = UserPtr::<crate::timer::Itimerspec>::new(a[1]);
    out.check(&sys.address_space())?;
    let now = sys.timer_gettime(int(a[0]))?;
    out.write(&sys.address_space(), now)?;
    Ok(0)
}

/// timer_getoverrun(timerid).
pub fn sys_timer_getoverrun(a: &Args) -> SyscallResult {
    system().timer_getoverrun(int(a[0])).map(|n| n as usize)
}

/// timer_delete(timerid).
pub fn sys_timer_delete(a: &Args) -> SyscallResult {
    system().timer_delete(int(a[0])).map(|()| 0)
}

/// mmap(addr, len, prot, flags, fd, offset).
pub fn sys_mmap(a: &Args) -> SyscallResult {
    system().mmap(a[0], a[1], a[2] as u32, a[3] as u32, int(a[4]), a[5] as u64)
}

/// munmap(addr, len).
pub fn sys_munmap(a: &Args) -> SyscallResult {
    system().munmap(a[0], a[1]).map(|()| 0)
}

/// mremap(old_address, old_size, new_size, flags, new_address).
pub fn sys_mremap(a: &Args) -> SyscallResult {
    system().mremap(a[0], a[1], a[2], a[3] as u32, a[4])
}

/// mprotect(addr, len, prot).
pub fn sys_mprotect(a: &Args) -> SyscallResult {
    system().mprotect(a[0], a[1], a[2] as u32).map(|()| 0)
}

/// msync(addr, len, flags).
pub fn sys_msync(a: &Args) -> SyscallResult {
    system().msync(a[0], a[1], a[2] as u32).map(|()| 0)
}

/// brk(addr): the new break, or the old one.
pub fn sys_brk(a: &Args) -> SyscallResult {
    Ok(system().brk(a[0]))
}

/// getrandom(buf, len, flags).
pub fn sys_getrandom(a: &Args) -> SyscallResult {
    system().getrandom(a[0], a[1], a[2] as u32)
}

/// The only `sigsetsize` accepted: 64 signals, 8 bytes.
const SIGSET_SIZE: usize = 8;

/// rt_sigaction(sig, act, oact, sigsetsize): the new action is read and the old pointer
/// checked before anything changes.
pub fn sys_rt_sigaction(a: &Args) -> SyscallResult {
    if a[3] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    exchange(a[1], a[2], |new: Option<[u8; SigAction::RAW_SIZE]>| {
        let old = system().rt_sigaction(int(a[0]), new.map(SigAction::from_raw))?;
        Ok(old.to_raw())
    })
}

/// rt_sigprocmask(how, set, oset, sigsetsize)
pub fn sys_rt_sigprocmask(a: &Args) -> SyscallResult {
    if a[3] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    exchange(a[1], a[2], |set: Option<u64>| {
        system().rt_sigprocmask(int(a[0]), set)
    })
}

/// rt_sigpending(set, sigsetsize)
pub fn sys_rt_sigpending(a: &Args) -> SyscallResult {
    if a[1] > SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let pending = system().sigpending()?;
    UserSlice::new(a[0], a[1]).write(&system().address_space(), &pending.to_ne_bytes()[..a[1]])?;
    Ok(0)
}

/// sigaltstack(ss, old_ss): the caller's stack pointer is the trap frame's (else, for a
/// direct dispatch, this call's own stack); `ss` is read and `old_ss` checked before
/// anything changes, and `old_ss` gets the previous stack (`SS_ONSTACK` when the caller
/// runs on it, `SS_DISABLE` when there was none).
pub fn sys_sigaltstack(a: &Args) -> SyscallResult {
    let sp = uk_syscall::trap_frame(a).map_or_else(crate::signal::stack_pointer, |f| f.sp());
    exchange(a[0], a[1], |new: Option<[u64; 3]>| {
        let old = system().sigaltstack_at(new.map(SigStack::from_words), sp)?;
        Ok(old.to_words())
    })
}

/// rt_sigsuspend(mask, sigsetsize): always fails, with `EINTR` once a handler ran.
pub fn sys_rt_sigsuspend(a: &Args) -> SyscallResult {
    if a[1] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mask = UserPtr::<u64>::new(a[0]).read(&system().address_space())?;
    system().rt_sigsuspend(mask)
}

/// rt_sigtimedwait(set, info, timeout, sigsetsize): the signal number, with its
/// `siginfo_t` written through `info` when that is not NULL. Every pointer is checked
/// before anything waits or is taken.
pub fn sys_rt_sigtimedwait(a: &Args) -> SyscallResult {
    if a[3] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let sys = system();
    let space = sys.address_space();
    let set = UserPtr::<u64>::new(a[0]).read(&space)?;
    let info = (a[1] != 0).then(|| UserPtr::<SigInfo>::new(a[1]));
    if let Some(info) = info {
        info.check(&space)?;
    }
    let deadline = match a[2] {
        0 => None,
        t => {
            let timeout = Timespec::from(UserPtr::<[i64; 2]>::new(t).read(&space)?);
            Some(sys.monotonic_ns().saturating_add(timeout.to_ns()?))
        }
    };
    let taken = sys.rt_sigtimedwait(set, deadline)?;
    if let Some(info) = info {
        info.write(&space, taken)?;
    }
    Ok(taken.signo as usize)
}

/// kill(pid, sig)
pub fn sys_kill(a: &Args) -> SyscallResult {
    system().kill(int(a[0]), int(a[1])).map(|()| 0)
}

/// tkill(tid, sig)
pub fn sys_tkill(a: &Args) -> SyscallResult {
    system().tgkill(None, int(a[0]), int(a[1])).map(|()| 0)
}

/// The `siginfo_t` a caller passes to the `*sigqueueinfo` calls.
fn user_siginfo(addr: usize) -> Result<SigInfo, Errno> {
    let words = UserPtr::<[u64; 16]>::new(addr).read(&system().address_space())?;
    Ok(SigInfo::from_words(words))
}

/// pidfd_open(pid, flags) (feature `vfs`).
#[cfg(feature = "vfs")]
pub fn sys_pidfd_open(a: &Args) -> SyscallResult {
    system()
        .pidfd_open(int(a[0]), a[1] as u32)
        .map(|fd| fd as usize)
}

/// pidfd_send_signal(pidfd, sig, info, flags) (feature `vfs`): in Linux's order, `EINVAL`
/// for flags, `EBADF` for a descriptor that is no pidfd, then `EFAULT` for `info` (may be
/// NULL).
#[cfg(feature = "vfs")]
pub fn sys_pidfd_send_signal(a: &Args) -> SyscallResult {
    if a[3] != 0 {
        return Err(Errno::EINVAL);
    }
    uk_vfs::global::vfs().pidfd_target(int(a[0]))?;
    let info = match a[2] {
        0 => None,
        p => Some(user_siginfo(p)?),
    };
    system()
        .pidfd_send_signal(int(a[0]), int(a[1]), info)
        .map(|()| 0)
}

/// pidfd_getfd(pidfd, targetfd, flags) (feature `vfs`).
#[cfg(feature = "vfs")]
pub fn sys_pidfd_getfd(a: &Args) -> SyscallResult {
    system()
        .pidfd_getfd(int(a[0]), int(a[1]), a[2] as u32)
        .map(|fd| fd as usize)
}

/// rt_sigqueueinfo(tgid, sig, info)
pub fn sys_rt_sigqueueinfo(a: &Args) -> SyscallResult {
    let info = user_siginfo(a[2])?;
    system()
        .rt_sigqueueinfo(int(a[0]), int(a[1]), info)
        .map(|()| 0)
}

/// rt_tgsigqueueinfo(tgid, tid, sig, info)
pub fn sys_rt_tgsigqueueinfo(a: &Args) -> SyscallResult {
    let info = user_siginfo(a[3])?;
    system()
        .rt_tgsigqueueinfo(int(a[0]), int(a[1]), int(a[2]), info)
        .map(|()| 0)
}

/// tgkill(tgid, tid, sig)
pub fn sys_tgkill(a: &Args) -> SyscallResult {
    system()
        .tgkill(Some(int(a[0])), int(a[1]), int(a[2]))
        .map(|()| 0)
}

uk_syscall::register!(getpid => sys_getpid);
uk_syscall::register!(gettid => sys_gettid);
uk_syscall::register!(getppid => sys_getppid);
uk_syscall::register!(set_tid_address => sys_set_tid_address);
uk_syscall::register!(set_robust_list => sys_set_robust_list);
uk_syscall::register!(get_robust_list => sys_get_robust_list);
#[cfg(target_arch = "x86_64")]
uk_syscall::register!(arch_prctl => sys_arch_prctl);
uk_syscall::register!(clone => sys_clone);
uk_syscall::register!(clone3 => sys_clone3);
uk_syscall::register!(futex => sys_futex);
uk_syscall::register!(exit => sys_exit);
uk_syscall::register!(exit_group => sys_exit_group);
uk_syscall::register!(wait4 => sys_wait4);
uk_syscall::register!(waitid => sys_waitid);
#[cfg(feature = "vfs")]
uk_syscall::register!(pidfd_open => sys_pidfd_open);
#[cfg(feature = "vfs")]
uk_syscall::register!(pidfd_send_signal => sys_pidfd_send_signal);
#[cfg(feature = "vfs")]
uk_syscall::register!(pidfd_getfd => sys_pidfd_getfd);
uk_syscall::register!(execve => sys_execve);
#[cfg(target_arch = "x86_64")]
uk_syscall::register!(fork => sys_fork);
#[cfg(target_arch = "x86_64")]
uk_syscall::register!(vfork => sys_vfork);
uk_syscall::register!(prlimit64 => sys_prlimit64);
uk_syscall::register!(getrlimit => sys_getrlimit);
uk_syscall::register!(setrlimit => sys_setrlimit);
uk_syscall::register!(uname => sys_uname);
uk_syscall::register!(sysinfo => sys_sysinfo);
uk_syscall::register!(getpgid => sys_getpgid);
#[cfg(target_arch = "x86_64")]
uk_syscall::register!(getpgrp => sys_getpgrp);
uk_syscall::register!(getsid => sys_getsid);
uk_syscall::register!(setpgid => sys_setpgid);
uk_syscall::register!(setsid => sys_setsid);
uk_syscall::register!(sched_getscheduler => sys_sched_getscheduler);
uk_syscall::register!(sched_setscheduler => sys_sched_setscheduler);
uk_syscall::register!(sched_getparam => sys_sched_getparam);
uk_syscall::register!(sched_setparam => sys_sched_setparam);
uk_syscall::register!(sched_get_priority_max => sys_sched_get_priority_max);
uk_syscall::register!(sched_get_priority_min => sys_sched_get_priority_min);
uk_syscall::register!(prctl => sys_prctl);
uk_syscall::register!(mlock => sys_mlock);
uk_syscall::register!(mlock2 => sys_mlock2);
uk_syscall::register!(munlock => sys_mlock);
uk_syscall::register!(mlockall => sys_mlockall);
uk_syscall::register!(munlockall => sys_munlockall);
uk_syscall::register!(getcpu => sys_getcpu);
uk_syscall::register!(membarrier => sys_membarrier);
uk_syscall::register!(getpriority => sys_getpriority);
uk_syscall::register!(setpriority => sys_setpriority);
uk_syscall::register!(sched_rr_get_interval => sys_sched_rr_get_interval);
uk_syscall::register!(clock_settime => sys_clock_settime);
#[cfg(target_arch = "x86_64")]
uk_syscall::register!(settimeofday => sys_settimeofday);
uk_syscall::register!(sched_yield => sys_sched_yield);
uk_syscall::register!(getuid => sys_root_id);
uk_syscall::register!(geteuid => sys_root_id);
uk_syscall::register!(getgid => sys_root_id);
uk_syscall::register!(getegid => sys_root_id);
uk_syscall::register!(getresuid => sys_getres_ids);
uk_syscall::register!(getresgid => sys_getres_ids);
uk_syscall::register!(getgroups => sys_getgroups);
uk_syscall::register!(sched_getaffinity => sys_sched_getaffinity);
uk_syscall::register!(sched_setaffinity => sys_sched_setaffinity);
#[cfg(target_arch = "x86_64")]
uk_syscall::register!(pause => sys_pause);
uk_syscall::register!(madvise => sys_madvise);
uk_syscall::register!(setitimer => sys_setitimer);
uk_syscall::register!(getitimer => sys_getitimer);
uk_syscall::register!(timer_create => sys_timer_create);
uk_syscall::register!(timer_settime => sys_timer_settime);
uk_syscall::register!(timer_gettime => sys_timer_gettime);
uk_syscall::register!(timer_getoverrun => sys_timer_getoverrun);
uk_syscall::register!(timer_delete => sys_timer_delete);
#[cfg(target_arch = "x86_64")]
uk_syscall::register!(alarm => sys_alarm);
#[cfg(feature = "vfs")]
uk_syscall::register!(ppoll => sys_ppoll);
#[cfg(feature = "vfs")]
uk_syscall::register!(pselect6 => sys_pselect6);
#[cfg(all(feature = "vfs", target_arch = "x86_64"))]
uk_syscall::register!(poll => sys_poll);
#[cfg(all(feature = "vfs", target_arch = "x86_64"))]
uk_syscall::register!(select => sys_select);
#[cfg(feature = "vfs")]
uk_syscall::register!(epoll_pwait => sys_epoll_pwait);
#[cfg(feature = "vfs")]
uk_syscall::register!(epoll_pwait2 => sys_epoll_pwait2);
#[cfg(all(feature = "vfs", target_arch = "x86_64"))]
uk_syscall::register!(epoll_wait => sys_epoll_wait);
uk_syscall::register!(nanosleep => sys_nanosleep);
uk_syscall::register!(clock_nanosleep => sys_clock_nanosleep);
uk_syscall::register!(clock_gettime => sys_clock_gettime);
uk_syscall::register!(clock_getres => sys_clock_getres);
uk_syscall::register!(getrusage => sys_getrusage);
uk_syscall::register!(times => sys_times);
uk_syscall::register!(mmap => sys_mmap);
uk_syscall::register!(munmap => sys_munmap);
uk_syscall::register!(mremap => sys_mremap);
uk_syscall::register!(mprotect => sys_mprotect);
uk_syscall::register!(msync => sys_msync);
uk_syscall::register!(brk => sys_brk);
uk_syscall::register!(getrandom => sys_getrandom);
uk_syscall::register!(rt_sigaction => sys_rt_sigaction);
uk_syscall::register!(rt_sigprocmask => sys_rt_sigprocmask);
uk_syscall::register!(rt_sigpending => sys_rt_sigpending);
uk_syscall::register!(rt_sigsuspend => sys_rt_sigsuspend);
uk_syscall::register!(sigaltstack => sys_sigaltstack);
uk_syscall::register!(rt_sigtimedwait => sys_rt_sigtimedwait);
uk_syscall::register!(kill => sys_kill);
uk_syscall::register!(tkill => sys_tkill);
uk_syscall::register!(tgkill => sys_tgkill);
uk_syscall::register!(rt_sigqueueinfo => sys_rt_sigqueueinfo);
uk_syscall::register!(rt_tgsigqueueinfo => sys_rt_tgsigqueueinfo);
