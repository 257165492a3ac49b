//! The file syscalls, registered with `uk-syscall`: thin adapters from raw arguments to
//! the [`global`](crate::global) [`Vfs`](crate::Vfs).
//!
//! Each handler converts its registers (descriptors are C `int`s, flags `unsigned`),
//! reads paths and buffers through [`uk_syscall::user`] against the image's caller memory
//! (`EFAULT` for `NULL` or memory outside it, `ENAMETOOLONG` for a path without a NUL
//! within `PATH_MAX` bytes) and calls the typed method. aarch64 has only the `*at`
//! forms of the path calls (no `open`, `stat`, `mkdir`, `chown`, `lchown`, ...) and no
//! `eventfd`, `epoll_create` or `signalfd`, so those handlers are registered on x86_64 only (80
//! handlers there, 61 on aarch64); every handler is public so an image can call it
//! directly.
//!
//! Besides the path, descriptor and data calls: `preadv`/`pwritev` and their `2` forms
//! (an offset of -1 is the file position; no `RWF_*` flag is supported: `EOPNOTSUPP`),
//! `sendfile` and `copy_file_range` (the caller's optional `loff_t` offsets are read before
//! anything moves and written back advanced; the data goes through a kernel buffer of at
//! most 64 KiB), `fallocate`, `fadvise64`, `flock` (BSD locks per open file description,
//! see [`flock`](crate::flock)), `sync`/`syncfs`, the `chown` family (`fchownat`,
//! `fchown`; x86_64's `chown`, `lchown`), `eventfd2` and the epoll set calls
//! (`epoll_create1`, `epoll_ctl`; see [`epoll`](crate::epoll): the waits, which must
//! watch for signals, are uk-posix-process's), and `timerfd_create`, `timerfd_settime`,
//! `timerfd_gettime` (see [`timerfd`](crate::timerfd)), `signalfd4` (and x86_64's `signalfd`;
//! see [`signalfd`](crate::signalfd)). Every refusal is a Linux errno, in the order
//! Linux 6.18 checks, and changes nothing (save Linux's own rule that a lock conversion
//! refused with `LOCK_NB` has given up the old lock).

use alloc::vec::Vec;

use uk_syscall::user::{AddressSpace, UserCStr, UserPtr, UserSlice, caller_memory};
use uk_syscall::{Args, Errno, SyscallResult, register};

use crate::global::vfs;
use crate::record_lock::{
    F_GETLK, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_SETLK, F_SETLKW, FLOCK_SIZE, Flock,
};
use crate::transfer::{check_transfer, each_buffer};
use crate::types::*;
use crate::wait::restarting;
use crate::{Fd, devfs};

fn fd(v: usize) -> Fd {
    v as u32 as i32
}

fn dirfd(v: usize) -> Fd {
    v as i32
}

/// `UIO_MAXIOV`.
const UIO_MAXIOV: usize = 1024;

/// The memory caller pointers are checked against.
fn mem() -> &'static AddressSpace {
    caller_memory()
}

/// The caller's path at `ptr` (without its NUL).
fn user_path(ptr: usize) -> Result<&'static [u8], Errno> {
    UserCStr::new(ptr).read(mem(), PATH_MAX)
}

/// The caller's buffer `[ptr, ptr + len)`, to read from.
fn src(ptr: usize, len: usize) -> Result<&'static [u8], Errno> {
    UserSlice::new(ptr, len).bytes(mem())
}

/// Runs `f` on the caller's buffer `[ptr, ptr + len)`, to write into.
fn dst<R>(ptr: usize, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, Errno> {
    UserSlice::new(ptr, len).with_mut(mem(), f)
}

/// Copies `bytes` to the caller at `ptr` (all of them, or nothing and `EFAULT`).
fn put(ptr: usize, bytes: &[u8]) -> Result<(), Errno> {
    UserSlice::new(ptr, bytes.len())
        .write(mem(), bytes)
        .map(|_| ())
}

/// Checks that `len` bytes at `ptr` are caller memory.
fn check(ptr: usize, len: usize) -> Result<(), Errno> {
    mem().check(ptr, len)
}

/// The `i`-th `struct iovec` (base, length) of the array at `ptr`.
fn iovec(ptr: usize, i: usize) -> Result<(usize, usize), Errno> {
    let at = i
        .checked_mul(size_of::<[u64; 2]>())
        .and_then(|o| ptr.checked_add(o))
        .ok_or(Errno::EFAULT)?;
    let [base, len] = UserPtr::<[u64; 2]>::new(at).read(mem())?;
    Ok((base as usize, len as usize))
}

/// openat(dirfd, path, flags, mode)
pub fn sys_openat(a: &Args) -> SyscallResult {
    let path = user_path(a[1])?;
    vfs()
        .openat(dirfd(a[0]), path, a[2] as u32, a[3] as u32)
        .map(|f| f as usize)
}

/// open(path, flags, mode)
pub fn sys_open(a: &Args) -> SyscallResult {
    sys_openat(&[AT_FDCWD as usize, a[0], a[1], a[2], 0, 0])
}

/// memfd_create(name, flags): the flags first, then the name (a C string of at most
/// `MFD_NAME_MAX` bytes: `EINVAL` past that, `EFAULT` for bad memory), as Linux.
pub fn sys_memfd_create(a: &Args) -> SyscallResult {
    let flags = a[1] as u32;
    crate::memfd::check_flags(flags)?;
    let name = UserCStr::new(a[0])
        .read(mem(), MFD_NAME_MAX + 1)
        .map_err(|e| {
            if e == Errno::ENAMETOOLONG {
                Errno::EINVAL
            } else {
                e
            }
        })?;
    vfs().memfd_create(name, flags).map(|fd| fd as usize)
}

/// close(fd)
pub fn sys_close(a: &Args) -> SyscallResult {
    vfs().close(fd(a[0])).map(|_| 0)
}

/// read(fd, buf, count)
pub fn sys_read(a: &Args) -> SyscallResult {
    vfs().check_rw(fd(a[0]), false)?;
    dst(a[1], a[2], |buf| vfs().read(fd(a[0]), buf))?
}

/// write(fd, buf, count)
pub fn sys_write(a: &Args) -> SyscallResult {
    vfs().check_rw(fd(a[0]), true)?;
    vfs().write(fd(a[0]), src(a[1], a[2])?)
}

/// pread64(fd, buf, count, offset)
pub fn sys_pread64(a: &Args) -> SyscallResult {
    vfs().check_rw(fd(a[0]), false)?;
    dst(a[1], a[2], |buf| vfs().pread(fd(a[0]), buf, a[3] as i64))?
}

/// pwrite64(fd, buf, count, offset)
pub fn sys_pwrite64(a: &Args) -> SyscallResult {
    vfs().check_rw(fd(a[0]), true)?;
    vfs().pwrite(fd(a[0]), src(a[1], a[2])?, a[3] as i64)
}

/// Checks the caller's `count` `iovec`s at `ptr` (`EINVAL` past `UIO_MAXIOV` or a total
/// above `isize::MAX`, `EFAULT`); returns the total length.
fn check_iov(ptr: usize, count: usize) -> Result<usize, Errno> {
    if count > UIO_MAXIOV {
        return Err(Errno::EINVAL);
    }
    let mut total: usize = 0;
    for i in 0..count {
        let (_, len) = iovec(ptr, i)?;
        total = total
            .checked_add(len)
            .filter(|&t| t <= isize::MAX as usize)
            .ok_or(Errno::EINVAL)?;
    }
    Ok(total)
}

/// readv(fd, iov, iovcnt)
pub fn sys_readv(a: &Args) -> SyscallResult {
    let f = fd(a[0]);
    vfs().check_rw(f, false)?;
    read_vectored(f, a)
}

/// writev(fd, iov, iovcnt)
pub fn sys_writev(a: &Args) -> SyscallResult {
    let f = fd(a[0]);
    vfs().check_rw(f, true)?;
    write_vectored(f, a)
}

/// `readv` of the caller's `iovec`s (`a[1]`, `a[2]` of them) at `f`'s position, as
/// [`Vfs::readv`](crate::Vfs::readv): one read, which waits only while nothing came, and
/// restarts from the lookup of `f` after an `SA_RESTART` handler.
fn read_vectored(f: Fd, a: &Args) -> SyscallResult {
    restarting(|| {
        vectored(a, |base, len, done| {
            dst(base, len, |b| vfs().read_once(f, b, done > 0))?
        })
    })
}

/// `writev` of the caller's `iovec`s, as [`Vfs::writev`](crate::Vfs::writev): into a pipe,
/// at most `PIPE_BUF` bytes in all go in as one write.
fn write_vectored(f: Fd, a: &Args) -> SyscallResult {
    restarting(|| {
        let total = check_iov(a[1], a[2])?;
        if vfs().writes_in_one_piece(f, total)? {
            let mut all = Vec::new();
            all.try_reserve_exact(total).map_err(|_| Errno::ENOMEM)?;
            for i in 0..a[2] {
                let (base, len) = iovec(a[1], i)?;
                all.extend_from_slice(src(base, len)?);
            }
            return vfs().write_once(f, &all);
        }
        vectored(a, |base, len, _| {
            src(base, len).and_then(|b| vfs().write_once(f, b))
        })
    })
}

/// The loop of the vectored calls over the caller's `iovec`s (`a[1]`, `a[2]` of them),
/// [`each_buffer`]'s rules: `transfer(base, len, done)` moves one buffer, `done` bytes
/// having moved before it.
fn vectored(
    a: &Args,
    mut transfer: impl FnMut(usize, usize, usize) -> Result<usize, Errno>,
) -> SyscallResult {
    check_iov(a[1], a[2])?;
    each_buffer(a[2], |i, done| match iovec(a[1], i)? {
        (_, 0) => Ok((0, 0)),
        (base, len) => Ok((transfer(base, len, done)?, len)),
    })
}

/// The vectored transfers at an offset (`preadv`, `pwritev`, and the `2` forms with an
/// offset other than -1), in Linux's order: `Vfs::check_at` (a negative offset, the
/// descriptor, a pipe, the access mode), the `iovec`s, then `check_transfer` (nothing to
/// move, the range, `flags`), then buffer by buffer at `offset` plus what moved so far.
fn vectored_at(a: &Args, write: bool, offset: i64, flags: u32) -> SyscallResult {
    let f = fd(a[0]);
    vfs().check_at(f, offset, write)?;
    let total = check_iov(a[1], a[2])?;
    if !check_transfer(Some(offset), total, flags)? {
        return Ok(0);
    }
    vectored(a, |base, len, done| {
        let at = offset + done as i64;
        if write {
            src(base, len).and_then(|b| vfs().pwrite(f, b, at))
        } else {
            dst(base, len, |b| vfs().pread(f, b, at))?
        }
    })
}

/// preadv(fd, iov, iovcnt, offset): `a[4]`, the offset's high half on 32-bit Linux, is
/// ignored (as 64-bit Linux does).
pub fn sys_preadv(a: &Args) -> SyscallResult {
    vectored_at(a, false, a[3] as i64, 0)
}

/// pwritev(fd, iov, iovcnt, offset)
pub fn sys_pwritev(a: &Args) -> SyscallResult {
    vectored_at(a, true, a[3] as i64, 0)
}

/// preadv2(fd, iov, iovcnt, offset, _, flags): an offset of -1 reads at (and moves) the
/// file position, as `readv`; any `RWF_*` flag is `EOPNOTSUPP`.
pub fn sys_preadv2(a: &Args) -> SyscallResult {
    let (offset, flags) = (a[3] as i64, a[5] as u32);
    if offset != -1 {
        return vectored_at(a, false, offset, flags);
    }
    let f = fd(a[0]);
    vfs().check_rw(f, false)?;
    if !check_transfer(None, check_iov(a[1], a[2])?, flags)? {
        return Ok(0);
    }
    read_vectored(f, a)
}

/// pwritev2(fd, iov, iovcnt, offset, _, flags): as `preadv2`, writing.
pub fn sys_pwritev2(a: &Args) -> SyscallResult {
    let (offset, flags) = (a[3] as i64, a[5] as u32);
    if offset != -1 {
        return vectored_at(a, true, offset, flags);
    }
    let f = fd(a[0]);
    vfs().check_rw(f, true)?;
    if !check_transfer(None, check_iov(a[1], a[2])?, flags)? {
        return Ok(0);
    }
    write_vectored(f, a)
}

/// The caller's optional `loff_t` at `ptr` (`None` for NULL), read up front: `EFAULT`
/// before anything moves, and the same check covers writing it back.
fn user_offset(ptr: usize) -> Result<Option<i64>, Errno> {
    match ptr {
        0 => Ok(None),
        ptr => UserPtr::<i64>::new(ptr).read(mem()).map(Some),
    }
}

/// Writes an offset read by [`user_offset`] back (advanced by the call).
fn put_offset(ptr: usize, value: Option<i64>) -> Result<(), Errno> {
    match value {
        Some(v) => UserPtr::<i64>::new(ptr).write(mem(), v),
        None => Ok(()),
    }
}

/// sendfile(out_fd, in_fd, offset, count): `offset` is NULL or the caller's `loff_t`,
/// read first (`EFAULT` before anything else, as Linux) and advanced.
pub fn sys_sendfile(a: &Args) -> SyscallResult {
    let mut offset = user_offset(a[2])?;
    let n = vfs().sendfile(fd(a[0]), fd(a[1]), offset.as_mut(), a[3])?;
    put_offset(a[2], offset)?;
    Ok(n)
}

/// copy_file_range(fd_in, off_in, fd_out, off_out, len, flags): both descriptors are
/// checked (`EBADF`), then the offsets are read (`EFAULT`), as Linux does.
pub fn sys_copy_file_range(a: &Args) -> SyscallResult {
    let (fd_in, fd_out) = (fd(a[0]), fd(a[2]));
    vfs().check_fd(fd_in)?;
    vfs().check_fd(fd_out)?;
    let mut off_in = user_offset(a[1])?;
    let mut off_out = user_offset(a[3])?;
    let n = vfs().copy_file_range(
        fd_in,
        off_in.as_mut(),
        fd_out,
        off_out.as_mut(),
        a[4],
        a[5] as u32,
    )?;
    put_offset(a[1], off_in)?;
    put_offset(a[3], off_out)?;
    Ok(n)
}

/// fallocate(fd, mode, offset, len)
pub fn sys_fallocate(a: &Args) -> SyscallResult {
    vfs()
        .fallocate(fd(a[0]), a[1] as u32, a[2] as i64, a[3] as i64)
        .map(|_| 0)
}

/// fadvise64(fd, offset, len, advice)
pub fn sys_fadvise64(a: &Args) -> SyscallResult {
    vfs()
        .fadvise(fd(a[0]), a[1] as i64, a[2] as i64, a[3] as u32)
        .map(|_| 0)
}

/// flock(fd, op)
pub fn sys_flock(a: &Args) -> SyscallResult {
    vfs().flock(fd(a[0]), a[1] as u32).map(|_| 0)
}

/// sync(): never fails.
pub fn sys_sync(_: &Args) -> SyscallResult {
    vfs().sync();
    Ok(0)
}

/// syncfs(fd)
pub fn sys_syncfs(a: &Args) -> SyscallResult {
    vfs().syncfs(fd(a[0])).map(|_| 0)
}

/// lseek(fd, offset, whence)
pub fn sys_lseek(a: &Args) -> SyscallResult {
    vfs()
        .lseek(fd(a[0]), a[1] as i64, a[2] as u32)
        .map(|v| v as usize)
}

fn put_stat(ptr: usize, st: &Stat) -> SyscallResult {
    put(ptr, &st.to_raw())?;
    Ok(0)
}

/// newfstatat(dirfd, path, statbuf, flags) (`fstatat` on aarch64)
pub fn sys_newfstatat(a: &Args) -> SyscallResult {
    let path = user_path(a[1])?;
    check(a[2], Stat::RAW_SIZE)?;
    let st = vfs().fstatat(dirfd(a[0]), path, a[3] as u32)?;
    put_stat(a[2], &st)
}

/// stat(path, statbuf)
pub fn sys_stat(a: &Args) -> SyscallResult {
    sys_newfstatat(&[AT_FDCWD as usize, a[0], a[1], 0, 0, 0])
}

/// lstat(path, statbuf)
pub fn sys_lstat(a: &Args) -> SyscallResult {
    sys_newfstatat(&[
        AT_FDCWD as usize,
        a[0],
        a[1],
        AT_SYMLINK_NOFOLLOW as usize,
        0,
        0,
    ])
}

/// fstat(fd, statbuf)
pub fn sys_fstat(a: &Args) -> SyscallResult {
    let st = vfs().fstat(fd(a[0]))?;
    put_stat(a[1], &st)
}

/// statx(dirfd, path, flags, mask, statxbuf)
pub fn sys_statx(a: &Args) -> SyscallResult {
    let flags = a[2] as u32;
    if flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE {
        return Err(Errno::EINVAL);
    }
    let path = user_path(a[1])?;
    check(a[4], Stat::STATX_SIZE)?;
    let st = vfs().fstatat(dirfd(a[0]), path, flags)?;
    put(a[4], &st.to_statx())?;
    Ok(0)
}

/// faccessat2(dirfd, path, mode, flags)
pub fn sys_faccessat2(a: &Args) -> SyscallResult {
    let path = user_path(a[1])?;
    vfs()
        .faccessat(dirfd(a[0]), path, a[2] as u32, a[3] as u32)
        .map(|_| 0)
}

/// faccessat(dirfd, path, mode) (no flags argument)
pub fn sys_faccessat(a: &Args) -> SyscallResult {
    sys_faccessat2(&[a[0], a[1], a[2], 0, 0, 0])
}

/// access(path, mode)
pub fn sys_access(a: &Args) -> SyscallResult {
    sys_faccessat2(&[AT_FDCWD as usize, a[0], a[1], 0, 0, 0])
}

/// getdents64(fd, dirp, count)
pub fn sys_getdents64(a: &Args) -> SyscallResult {
    vfs().fstat(fd(a[0]))?;
    dst(a[1], a[2].min(i32::MAX as usize), |buf| {
        vfs().getdents64(fd(a[0]), buf)
    })?
}

/// mkdirat(dirfd, path, mode)
pub fn sys_mkdirat(a: &Args) -> SyscallResult {
    let path = user_path(a[1])?;
    vfs().mkdirat(dirfd(a[0]), path, a[2] as u32).map(|_| 0)
}

/// mkdir(path, mode)
pub fn sys_mkdir(a: &Args) -> SyscallResult {
    sys_mkdirat(&[AT_FDCWD as usize, a[0], a[1], 0, 0, 0])
}

/// unlinkat(dirfd, path, flags)
pub fn sys_unlinkat(a: &Args) -> SyscallResult {
    let path = user_path(a[1])?;
    vfs().unlinkat(dirfd(a[0]), path, a[2] as u32).map(|_| 0)
}

/// unlink(path)
pub fn sys_unlink(a: &Args) -> SyscallResult {
    sys_unlinkat(&[AT_FDCWD as usize, a[0], 0, 0, 0, 0])
}

/// rmdir(path)
pub fn sys_rmdir(a: &Args) -> SyscallResult {
    sys_unlinkat(&[AT_FDCWD as usize, a[0], AT_REMOVEDIR as usize, 0, 0, 0])
}

/// renameat2(olddirfd, old, newdirfd, new, flags)
pub fn sys_renameat2(a: &Args) -> SyscallResult {
    let old = user_path(a[1])?;
    let new = user_path(a[3])?;
    vfs()
        .renameat2(dirfd(a[0]), old, dirfd(a[2]), new, a[4] as u32)
        .map(|_| 0)
}

/// renameat(olddirfd, old, newdirfd, new)
pub fn sys_renameat(a: &Args) -> SyscallResult {
    sys_renameat2(&[a[0], a[1], a[2], a[3], 0, 0])
}

/// rename(old, new)
pub fn sys_rename(a: &Args) -> SyscallResult {
    sys_renameat2(&[AT_FDCWD as usize, a[0], AT_FDCWD as usize, a[1], 0, 0])
}

/// linkat(olddirfd, old, newdirfd, new, flags)
pub fn sys_linkat(a: &Args) -> SyscallResult {
    let old = user_path(a[1])?;
    let new = user_path(a[3])?;
    vfs()
        .linkat(dirfd(a[0]), old, dirfd(a[2]), new, a[4] as u32)
        .map(|_| 0)
}

/// link(old, new)
pub fn sys_link(a: &Args) -> SyscallResult {
    sys_linkat(&[AT_FDCWD as usize, a[0], AT_FDCWD as usize, a[1], 0, 0])
}

/// symlinkat(target, newdirfd, linkpath)
pub fn sys_symlinkat(a: &Args) -> SyscallResult {
    let target = user_path(a[0])?;
    let path = user_path(a[2])?;
    vfs().symlinkat(target, dirfd(a[1]), path).map(|_| 0)
}

/// symlink(target, linkpath)
pub fn sys_symlink(a: &Args) -> SyscallResult {
    sys_symlinkat(&[a[0], AT_FDCWD as usize, a[1], 0, 0, 0])
}

/// readlinkat(dirfd, path, buf, bufsiz)
pub fn sys_readlinkat(a: &Args) -> SyscallResult {
    if a[3] as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    let path = user_path(a[1])?;
    dst(a[2], a[3] as i32 as usize, |buf| {
        vfs().readlinkat(dirfd(a[0]), path, buf)
    })?
}

/// readlink(path, buf, bufsiz)
pub fn sys_readlink(a: &Args) -> SyscallResult {
    sys_readlinkat(&[AT_FDCWD as usize, a[0], a[1], a[2], 0, 0])
}

/// truncate(path, length)
pub fn sys_truncate(a: &Args) -> SyscallResult {
    let path = user_path(a[0])?;
    vfs().truncate(path, a[1] as i64).map(|_| 0)
}

/// ftruncate(fd, length)
pub fn sys_ftruncate(a: &Args) -> SyscallResult {
    vfs().ftruncate(fd(a[0]), a[1] as i64).map(|_| 0)
}

/// getcwd(buf, size): the length including the NUL.
pub fn sys_getcwd(a: &Args) -> SyscallResult {
    let path = vfs().cwd()?;
    if path.len() + 1 > a[1] {
        return Err(Errno::ERANGE);
    }
    dst(a[0], path.len() + 1, |buf| {
        buf[..path.len()].copy_from_slice(&path);
        buf[path.len()] = 0;
    })?;
    Ok(path.len() + 1)
}

/// chdir(path)
pub fn sys_chdir(a: &Args) -> SyscallResult {
    let path = user_path(a[0])?;
    vfs().chdir(path).map(|_| 0)
}

/// fchdir(fd)
pub fn sys_fchdir(a: &Args) -> SyscallResult {
    vfs().fchdir(fd(a[0])).map(|_| 0)
}

/// fchmodat(dirfd, path, mode)
pub fn sys_fchmodat(a: &Args) -> SyscallResult {
    let path = user_path(a[1])?;
    vfs().fchmodat(dirfd(a[0]), path, a[2] as u32).map(|_| 0)
}

/// chmod(path, mode)
pub fn sys_chmod(a: &Args) -> SyscallResult {
    sys_fchmodat(&[AT_FDCWD as usize, a[0], a[1], 0, 0, 0])
}

/// fchmod(fd, mode)
pub fn sys_fchmod(a: &Args) -> SyscallResult {
    vfs().fchmod(fd(a[0]), a[1] as u32).map(|_| 0)
}

/// fchownat(dirfd, path, uid, gid, flags): the flags are checked before the path is read,
/// as Linux does; `uid`/`gid` are C `uid_t`/`gid_t` (32 bits; -1 leaves one unchanged).
pub fn sys_fchownat(a: &Args) -> SyscallResult {
    let flags = a[4] as u32;
    if flags & !FCHOWNAT_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    let path = user_path(a[1])?;
    vfs()
        .fchownat(dirfd(a[0]), path, a[2] as u32, a[3] as u32, flags)
        .map(|_| 0)
}

/// fchown(fd, uid, gid)
pub fn sys_fchown(a: &Args) -> SyscallResult {
    vfs().fchown(fd(a[0]), a[1] as u32, a[2] as u32).map(|_| 0)
}

/// chown(path, uid, gid)
pub fn sys_chown(a: &Args) -> SyscallResult {
    sys_fchownat(&[AT_FDCWD as usize, a[0], a[1], a[2], 0, 0])
}

/// lchown(path, uid, gid)
pub fn sys_lchown(a: &Args) -> SyscallResult {
    sys_fchownat(&[
        AT_FDCWD as usize,
        a[0],
        a[1],
        a[2],
        AT_SYMLINK_NOFOLLOW as usize,
        0,
    ])
}

/// statfs(path, buf)
pub fn sys_statfs(a: &Args) -> SyscallResult {
    let path = user_path(a[0])?;
    check(a[1], StatFs::RAW_SIZE)?;
    put(a[1], &vfs().statfs(path)?.to_raw())?;
    Ok(0)
}

/// fstatfs(fd, buf)
pub fn sys_fstatfs(a: &Args) -> SyscallResult {
    let st = vfs().fstatfs(fd(a[0]))?;
    put(a[1], &st.to_raw())?;
    Ok(0)
}

/// utimensat(dirfd, path, times, flags): `path` may be `NULL` (the file open as `dirfd`,
/// as `futimens` calls it) and `times` may be `NULL` (both times now).
pub fn sys_utimensat(a: &Args) -> SyscallResult {
    let times = match a[2] {
        0 => [TimeChange::Now; 2],
        ptr => {
            let raw = src(ptr, 32)?;
            let word = |i: usize| i64::from_ne_bytes(raw[i * 8..i * 8 + 8].try_into().unwrap());
            [
                TimeChange::from_timespec(word(0), word(1))?,
                TimeChange::from_timespec(word(2), word(3))?,
            ]
        }
    };
    let flags = a[3] as u32;
    if flags & !UTIMENSAT_FLAGS != 0 {
        return Err(Errno::EINVAL);
    }
    let path = match a[1] {
        0 => None,
        ptr => Some(user_path(ptr)?),
    };
    vfs().utimensat(dirfd(a[0]), path, times, flags).map(|_| 0)
}

/// fsync(fd) and fdatasync(fd)
pub fn sys_fsync(a: &Args) -> SyscallResult {
    vfs().fsync(fd(a[0])).map(|_| 0)
}

/// umask(mask): the previous mask.
pub fn sys_umask(a: &Args) -> SyscallResult {
    Ok(vfs().umask(a[0] as u32) as usize)
}

/// pipe2(fds, flags)
pub fn sys_pipe2(a: &Args) -> SyscallResult {
    check(a[0], 8)?;
    let [r, w] = vfs().pipe2(a[1] as u32)?;
    if let Err(e) = UserPtr::<[i32; 2]>::new(a[0]).write(mem(), [r, w]) {
        let _ = vfs().close(r);
        let _ = vfs().close(w);
        return Err(e);
    }
    Ok(0)
}

/// pipe(fds)
pub fn sys_pipe(a: &Args) -> SyscallResult {
    sys_pipe2(&[a[0], 0, 0, 0, 0, 0])
}

/// dup(fd)
pub fn sys_dup(a: &Args) -> SyscallResult {
    vfs().dup(fd(a[0])).map(|f| f as usize)
}

/// dup2(old, new)
pub fn sys_dup2(a: &Args) -> SyscallResult {
    vfs().dup2(fd(a[0]), fd(a[1])).map(|f| f as usize)
}

/// dup3(old, new, flags)
pub fn sys_dup3(a: &Args) -> SyscallResult {
    vfs()
        .dup3(fd(a[0]), fd(a[1]), a[2] as u32)
        .map(|f| f as usize)
}

/// fcntl(fd, cmd, arg)
pub fn sys_fcntl(a: &Args) -> SyscallResult {
    let (f, cmd) = (fd(a[0]), a[1] as u32);
    if !matches!(
        cmd,
        F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW
    ) {
        return vfs().fcntl(f, cmd, a[2]);
    }
    // A record lock command: `a[2]` points to a `struct flock` (read after the
    // descriptor's check, as Linux does; written back by the GETLKs).
    vfs().check_fd(f)?;
    let raw = UserPtr::<[u8; FLOCK_SIZE]>::new(a[2]).read(mem())?;
    let mut lock = Flock::from_bytes(&raw);
    vfs().fcntl_lock(f, cmd, &mut lock)?;
    if matches!(cmd, F_GETLK | F_OFD_GETLK) {
        UserPtr::<[u8; FLOCK_SIZE]>::new(a[2]).write(mem(), lock.to_bytes())?;
    }
    Ok(0)
}

/// ioctl(fd, request, arg): terminal requests on `/dev/console`, `ENOTTY` elsewhere.
pub fn sys_ioctl(a: &Args) -> SyscallResult {
    let (f, request) = (fd(a[0]), a[1] as u32);
    let mut local = [0u8; devfs::TERMIOS_SIZE];
    let Some((len, out)) = devfs::ioctl_arg(request) else {
        return vfs().ioctl(f, request, &mut []);
    };
    let arg = &mut local[..len];
    if out {
        check(a[2], len).or_else(|e| {
            // Not a terminal at all: that error comes first.
            vfs().ioctl(f, devfs::TCGETS, &mut [0; devfs::TERMIOS_SIZE])?;
            Err(e)
        })?;
        let r = vfs().ioctl(f, request, arg)?;
        put(a[2], arg)?;
        Ok(r)
    } else {
        match src(a[2], len) {
            Ok(src) => arg.copy_from_slice(src),
            Err(e) => {
                vfs().ioctl(f, devfs::TCGETS, &mut [0; devfs::TERMIOS_SIZE])?;
                return Err(e);
            }
        }
        vfs().ioctl(f, request, arg)
    }
}

/// eventfd2(initval, flags): a new eventfd (see [`crate::eventfd`]).
pub fn sys_eventfd2(a: &Args) -> SyscallResult {
    vfs().eventfd2(a[0] as u32, a[1] as u32).map(|f| f as usize)
}

/// eventfd(initval) (x86_64): `eventfd2(initval, 0)`.
pub fn sys_eventfd(a: &Args) -> SyscallResult {
    vfs().eventfd2(a[0] as u32, 0).map(|f| f as usize)
}

/// timerfd_create(clockid, flags): a new timerfd (see [`crate::timerfd`]).
pub fn sys_timerfd_create(a: &Args) -> SyscallResult {
    vfs()
        .timerfd_create(a[0] as i32, a[1] as u32)
        .map(|f| f as usize)
}

/// timerfd_settime(fd, flags, new_value, old_value): arms or disarms the timer (see
/// [`crate::timerfd`]); `old_value` (may be `NULL`) receives the previous setting.
/// Refusals come in Linux's order (`EFAULT` for `new_value`, `EINVAL` for the flags or a
/// timespec, `EBADF`, `EINVAL` for a descriptor that is no timerfd), and an `old_value`
/// outside caller memory is `EFAULT` before the timer changes (Linux changes the timer,
/// then fails to write the old setting).
pub fn sys_timerfd_settime(a: &Args) -> SyscallResult {
    use crate::timerfd::{ITIMERSPEC_SIZE, ItimerSpec, TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET};
    let new = ItimerSpec::from_bytes(src(a[2], ITIMERSPEC_SIZE)?).ok_or(Errno::EFAULT)?;
    let (timer, flags, old_at) = (fd(a[0]), a[1] as u32, a[3]);
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    new.check()?;
    vfs().timerfd_gettime(timer)?;
    if old_at != 0 {
        check(old_at, ITIMERSPEC_SIZE)?;
    }
    let old = vfs().timerfd_settime(timer, flags, new)?;
    if old_at != 0 {
        put(old_at, &old.to_bytes())?;
    }
    Ok(0)
}

/// timerfd_gettime(fd, curr_value): the time left and the interval (see
/// [`crate::timerfd`]); `EBADF`, `EINVAL` for a descriptor that is no timerfd, then
/// `EFAULT`.
pub fn sys_timerfd_gettime(a: &Args) -> SyscallResult {
    let current = vfs().timerfd_gettime(fd(a[0]))?;
    put(a[1], &current.to_bytes())?;
    Ok(0)
}

/// signalfd4(fd, mask, sizemask, flags): a new signalfd, or a new mask for `fd`'s (see
/// [`crate::signalfd`]). In Linux's order: `EINVAL` for a `sizemask` other than 8, `EFAULT`
/// for the mask, then [`Vfs::signalfd4`](crate::Vfs::signalfd4)'s errors.
pub fn sys_signalfd4(a: &Args) -> SyscallResult {
    use crate::signalfd::SIGSET_SIZE;
    if a[2] != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let mut mask = [0u8; SIGSET_SIZE];
    mask.copy_from_slice(src(a[1], SIGSET_SIZE)?);
    vfs()
        .signalfd4(a[0] as i32, u64::from_ne_bytes(mask), a[3] as u32)
        .map(|f| f as usize)
}

/// signalfd(fd, mask, sizemask) (x86_64): `signalfd4` without flags.
pub fn sys_signalfd(a: &Args) -> SyscallResult {
    sys_signalfd4(&[a[0], a[1], a[2], 0, 0, 0])
}

/// epoll_create1(flags): a new epoll set (see [`crate::epoll`]).
pub fn sys_epoll_create1(a: &Args) -> SyscallResult {
    vfs().epoll_create1(a[0] as u32).map(|f| f as usize)
}

/// epoll_create(size) (x86_64): `EINVAL` for `size <= 0`, else `epoll_create1(0)`.
pub fn sys_epoll_create(a: &Args) -> SyscallResult {
    vfs().epoll_create(a[0] as i32).map(|f| f as usize)
}

/// epoll_ctl(epfd, op, fd, event): the caller's `struct epoll_event` (12 bytes on x86_64,
/// 16 on aarch64) is read first, unless `op` is `EPOLL_CTL_DEL` (`EFAULT` before any
/// descriptor is looked at, as on Linux).
pub fn sys_epoll_ctl(a: &Args) -> SyscallResult {
    use crate::epoll::{EPOLL_CTL_DEL, EPOLL_EVENT_SIZE, EpollEvent};
    let op = a[1] as i32;
    let event = if op == EPOLL_CTL_DEL {
        EpollEvent::default()
    } else {
        EpollEvent::from_bytes(src(a[3], EPOLL_EVENT_SIZE)?).ok_or(Errno::EFAULT)?
    };
    vfs().epoll_ctl(fd(a[0]), op, fd(a[2]), event).map(|()| 0)
}

register!(openat => sys_openat);
register!(close => sys_close);
register!(memfd_create => sys_memfd_create);
register!(read => sys_read);
register!(write => sys_write);
register!(pread64 => sys_pread64);
register!(pwrite64 => sys_pwrite64);
register!(readv => sys_readv);
register!(writev => sys_writev);
register!(lseek => sys_lseek);
register!(fstat => sys_fstat);
register!(statx => sys_statx);
register!(faccessat => sys_faccessat);
register!(faccessat2 => sys_faccessat2);
register!(getdents64 => sys_getdents64);
register!(mkdirat => sys_mkdirat);
register!(unlinkat => sys_unlinkat);
register!(renameat => sys_renameat);
register!(renameat2 => sys_renameat2);
register!(linkat => sys_linkat);
register!(symlinkat => sys_symlinkat);
register!(readlinkat => sys_readlinkat);
register!(truncate => sys_truncate);
register!(ftruncate => sys_ftruncate);
register!(getcwd => sys_getcwd);
register!(chdir => sys_chdir);
register!(fchdir => sys_fchdir);
register!(fchmodat => sys_fchmodat);
register!(fchmod => sys_fchmod);
register!(utimensat => sys_utimensat);
register!(statfs => sys_statfs);
register!(fstatfs => sys_fstatfs);
register!(fsync => sys_fsync);
register!(fdatasync => sys_fsync);
register!(umask => sys_umask);
register!(pipe2 => sys_pipe2);
register!(dup => sys_dup);
register!(dup3 => sys_dup3);
register!(fcntl => sys_fcntl);
register!(ioctl => sys_ioctl);
register!(preadv => sys_preadv);
register!(pwritev => sys_pwritev);
register!(preadv2 => sys_preadv2);
register!(pwritev2 => sys_pwritev2);
register!(sendfile => sys_sendfile);
register!(copy_file_range => sys_copy_file_range);
register!(fallocate => sys_fallocate);
register!(fadvise64 => sys_fadvise64);
register!(flock => sys_flock);
register!(sync => sys_sync);
register!(syncfs => sys_syncfs);
register!(fchownat => sys_fchownat);
register!(fchown => sys_fchown);
register!(eventfd2 => sys_eventfd2);
register!(epoll_create1 => sys_epoll_create1);
register!(epoll_ctl => sys_epoll_ctl);
register!(timerfd_create => sys_timerfd_create);
register!(timerfd_settime => sys_timerfd_settime);
register!(timerfd_gettime => sys_timerfd_gettime);
register!(signalfd4 => sys_signalfd4);

#[cfg(target_arch = "aarch64")]
register!(fstatat => sys_newfstatat);

#[cfg(target_arch = "x86_64")]
mod x86_64_only {
    use super::*;
    register!(newfstatat => sys_newfstatat);
    register!(open => sys_open);
    register!(stat => sys_stat);
    register!(lstat => sys_lstat);
    register!(access => sys_access);
    register!(mkdir => sys_mkdir);
    register!(rmdir => sys_rmdir);
    register!(unlink => sys_unlink);
    register!(rename => sys_rename);
    register!(link => sys_link);
    register!(symlink => sys_symlink);
    register!(readlink => sys_readlink);
    register!(chmod => sys_chmod);
    register!(chown => sys_chown);
    register!(lchown => sys_lchown);
    register!(pipe => sys_pipe);
    register!(dup2 => sys_dup2);
    register!(eventfd => sys_eventfd);
    register!(signalfd => sys_signalfd);
    register!(epoll_create => sys_epoll_create);
}
