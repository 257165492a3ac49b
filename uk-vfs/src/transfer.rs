//! Transfers at offsets and between files, and the calls about a file's range: `preadv`,
//! `pwritev` (and their `2` forms), `sendfile`, `copy_file_range`, `fallocate`,
//! `fadvise64`. Each checks what Linux checks, in Linux's order (Linux 6.18 `fs/read_write.c`
//! and `fs/open.c`), before it moves a byte.

use alloc::vec::Vec;

use crate::file::{Fd, Object, OpenFile};
use crate::types::*;
use crate::vnode::VnodeRef;
use crate::wait::restarting;
use crate::{Errno, Vfs};

/// The kernel buffer `sendfile` and `copy_file_range` copy through, at most.
const COPY_CHUNK: usize = 64 * 1024;

/// A zeroed buffer of `len` bytes, or `ENOMEM`.
fn bounce(len: usize) -> Result<Vec<u8>, Errno> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
    v.resize(len, 0);
    Ok(v)
}

/// Linux's `rw_verify_area` on a range: a negative offset, a count above `isize::MAX` or
/// an end past `i64::MAX` is `EINVAL`.
fn verify_area(pos: i64, count: usize) -> Result<(), Errno> {
    let count = i64::try_from(count).map_err(|_| Errno::EINVAL)?;
    if pos < 0 || pos.checked_add(count).is_none() {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The last checks of a vectored transfer of `total` bytes, after the descriptor and the
/// `iovec`s: nothing to move is `Ok(false)` (the call returns 0, whatever the flags, as on
/// Linux); an end past `i64::MAX` is `EINVAL`; any `RWF_*` flag is `EOPNOTSUPP` (none is
/// supported). `offset` is `None` at the file position.
pub(crate) fn check_transfer(offset: Option<i64>, total: usize, flags: u32) -> Result<bool, Errno> {
    if total == 0 {
        return Ok(false);
    }
    if let Some(offset) = offset {
        verify_area(offset, total)?;
    }
    if flags != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(true)
}

/// The bytes of a vector of buffers (saturating: more than `isize::MAX` is refused later).
fn total_len(lens: impl Iterator<Item = usize>) -> usize {
    lens.fold(0, usize::saturating_add)
}

/// Whether `mode` is a mode `fallocate` knows (Linux 6.18's `vfs_fallocate`): one of the
/// exclusive modes, with or without `FALLOC_FL_KEEP_SIZE` as each allows.
fn falloc_mode_known(mode: u32) -> bool {
    const MODES: u32 = FALLOC_FL_PUNCH_HOLE
        | FALLOC_FL_COLLAPSE_RANGE
        | FALLOC_FL_ZERO_RANGE
        | FALLOC_FL_INSERT_RANGE
        | FALLOC_FL_UNSHARE_RANGE
        | FALLOC_FL_WRITE_ZEROES;
    if mode & !(MODES | FALLOC_FL_KEEP_SIZE) != 0 {
        return false;
    }
    let keep = mode & FALLOC_FL_KEEP_SIZE != 0;
    match mode & MODES {
        0 | FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_ZERO_RANGE => true,
        FALLOC_FL_PUNCH_HOLE => keep,
        FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE | FALLOC_FL_WRITE_ZEROES => !keep,
        _ => false,
    }
}

/// Writes `buf` to the output of `sendfile` at `at` (ignored by pipes and devices that
/// ignore offsets). A pipe takes what fits, waiting only while it is full and nothing has
/// moved yet (`more == false`) and the descriptor is blocking.
fn put_out(out: &OpenFile, at: u64, buf: &[u8], more: bool) -> Result<usize, Errno> {
    match &out.object {
        Object::Pipe(p) => p.write_some(buf, out.nonblock() || more),
        Object::Node(n) => n.write_at(if n.seekable() { at } else { 0 }, buf, out.nonblock()),
        _ => Err(Errno::EINVAL),
    }
}

/// The rule of every loop below: an error counts only when nothing moved yet.
fn short<T>(r: Result<T, Errno>, done: usize) -> Result<Option<T>, Errno> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if done == 0 => Err(e),
        Err(_) => Ok(None),
    }
}

/// The loop of every vectored transfer (`readv`, `writev`, `preadv`, `pwritev`, and their
/// system calls): `transfer(i, done)` moves buffer `i`, `done` bytes having moved before
/// it, and gives (bytes moved, buffer length), or (0, 0) without a call for an empty
/// buffer, which is skipped. Buffers go in order until one moves less than its length;
/// an error after some bytes is the end of the transfer, with their count.
pub(crate) fn each_buffer(
    count: usize,
    mut transfer: impl FnMut(usize, usize) -> Result<(usize, usize), Errno>,
) -> Result<usize, Errno> {
    let mut done = 0;
    for i in 0..count {
        let Some((n, len)) = short(transfer(i, done), done)? else {
            break;
        };
        if len == 0 {
            continue;
        }
        done += n;
        if n < len {
            break;
        }
    }
    Ok(done)
}

impl Vfs {
    /// Linux's checks of a positional transfer's descriptor, in its order: a negative
    /// `offset` (`EINVAL`, before the descriptor), `fd` not open (`EBADF`), a pipe
    /// (`ESPIPE`), not open for reading or (`write`) writing (`EBADF`).
    pub(crate) fn check_at(&self, fd: Fd, offset: i64, write: bool) -> Result<(), Errno> {
        if offset < 0 {
            return Err(Errno::EINVAL);
        }
        let f = self.file(fd)?;
        if f.object.node().is_none() {
            return Err(Errno::ESPIPE);
        }
        let ok = if write { f.writable() } else { f.readable() };
        if ok { Ok(()) } else { Err(Errno::EBADF) }
    }

    /// `preadv(fd, bufs, offset)`: reads into the buffers in order from `offset`, without
    /// moving the file position; stops after a short read, and an error counts only when
    /// nothing was read. `EINVAL` for a negative offset or an end past `i64::MAX`, `ESPIPE`
    /// for a pipe, `EBADF`, and [`Vfs::pread`]'s errors (`EISDIR`). Buffers totalling 0
    /// bytes return 0 once the descriptor checks passed.
    pub fn preadv(&self, fd: Fd, bufs: &mut [&mut [u8]], offset: i64) -> Result<usize, Errno> {
        self.preadv_at(fd, bufs, offset, 0)
    }

    /// `pwritev(fd, bufs, offset)`: writes the buffers in order at `offset`, without moving
    /// the file position (at the end with `O_APPEND`, as [`Vfs::pwrite`]); the rules of
    /// [`Vfs::preadv`].
    pub fn pwritev(&self, fd: Fd, bufs: &[&[u8]], offset: i64) -> Result<usize, Errno> {
        self.pwritev_at(fd, bufs, offset, 0)
    }

    /// `preadv2(fd, bufs, offset, flags)`: [`Vfs::preadv`], or with `offset == -1`
    /// [`Vfs::readv`] at (and moving) the file position, as Linux. No `RWF_*` flag is
    /// supported: nonzero `flags` are `EOPNOTSUPP` (after the descriptor checks, and not
    /// when there is nothing to read, as on Linux).
    pub fn preadv2(
        &self,
        fd: Fd,
        bufs: &mut [&mut [u8]],
        offset: i64,
        flags: u32,
    ) -> Result<usize, Errno> {
        if offset == -1 {
            self.check_rw(fd, false)?;
            if !check_transfer(None, total_len(bufs.iter().map(|b| b.len())), flags)? {
                return Ok(0);
            }
            return self.readv(fd, bufs);
        }
        self.preadv_at(fd, bufs, offset, flags)
    }

    fn preadv_at(
        &self,
        fd: Fd,
        bufs: &mut [&mut [u8]],
        offset: i64,
        flags: u32,
    ) -> Result<usize, Errno> {
        let total = total_len(bufs.iter().map(|b| b.len()));
        self.check_at(fd, offset, false)?;
        if !check_transfer(Some(offset), total, flags)? {
            return Ok(0);
        }
        each_buffer(bufs.len(), |i, done| match &mut *bufs[i] {
            [] => Ok((0, 0)),
            b => Ok((self.pread(fd, b, offset + done as i64)?, b.len())),
        })
    }

    /// `pwritev2(fd, bufs, offset, flags)`: [`Vfs::pwritev`], or with `offset == -1`
    /// [`Vfs::writev`] at the file position; flags as [`Vfs::preadv2`].
    pub fn pwritev2(
        &self,
        fd: Fd,
        bufs: &[&[u8]],
        offset: i64,
        flags: u32,
    ) -> Result<usize, Errno> {
        if offset == -1 {
            self.check_rw(fd, true)?;
            if !check_transfer(None, total_len(bufs.iter().map(|b| b.len())), flags)? {
                return Ok(0);
            }
            return self.writev(fd, bufs);
        }
        self.pwritev_at(fd, bufs, offset, flags)
    }

    fn pwritev_at(&self, fd: Fd, bufs: &[&[u8]], offset: i64, flags: u32) -> Result<usize, Errno> {
        let total = total_len(bufs.iter().map(|b| b.len()));
        self.check_at(fd, offset, true)?;
        if !check_transfer(Some(offset), total, flags)? {
            return Ok(0);
        }
        each_buffer(bufs.len(), |i, done| match bufs[i] {
            [] => Ok((0, 0)),
            b => Ok((self.pwrite(fd, b, offset + done as i64)?, b.len())),
        })
    }

    /// `sendfile(out_fd, in_fd, offset, count)`: copies up to `count` bytes (at most
    /// [`MAX_RW_COUNT`]) from `in_fd` to `out_fd` through a kernel buffer of at most 64 KiB
    /// at a time; returns the bytes copied (0 at the end of the input).
    ///
    /// With `offset` `None` it reads at `in_fd`'s position and moves it; otherwise at
    /// `*offset`, which is advanced instead (the position stays). `in_fd` must be open for
    /// reading and be a regular file or a device (a pipe or directory is `EINVAL`, and a
    /// pipe with an offset `ESPIPE`). `out_fd` is any file open for writing: a pipe takes
    /// what fits (waiting, unless `O_NONBLOCK`, only while it is full and nothing moved),
    /// another file is written at its position, which moves (`O_APPEND` is `EINVAL`, and
    /// so is a pipe as input, as on Linux). Linux 6.18's checks in its order: `EBADF` for
    /// `in_fd`, `ESPIPE`, `EINVAL` for a negative offset or a range past `i64::MAX`, `EBADF`
    /// for `out_fd`, `EINVAL` for `O_APPEND` or a pipe input (into a file), then a `count`
    /// of 0 returns 0, then `EINVAL` for an input that cannot be read this way (a pipe, a
    /// directory). An error after some bytes moved ends the copy with their count.
    ///
    /// Unlike Linux, `/dev/null` as input gives 0 rather than `EINVAL`, `/dev/console` as
    /// input into a file is read rather than refused, and the copy is not page-granular (a
    /// pipe with 100 bytes free takes 100; within one file, what overlapping ranges copy
    /// follows the 64 KiB buffer, where Linux moves page-cache pages by reference).
    /// Interrupted while waiting for room in a pipe before anything moved, by a handler
    /// installed with `SA_RESTART`, it is made again from the lookup of both descriptors.
    pub fn sendfile(
        &self,
        out_fd: Fd,
        in_fd: Fd,
        mut offset: Option<&mut i64>,
        count: usize,
    ) -> Result<usize, Errno> {
        restarting(|| self.sendfile_once(out_fd, in_fd, offset.as_deref_mut(), count))
    }

    /// One attempt of [`Vfs::sendfile`].
    fn sendfile_once(
        &self,
        out_fd: Fd,
        in_fd: Fd,
        offset: Option<&mut i64>,
        count: usize,
    ) -> Result<usize, Errno> {
        let fin = self.file(in_fd)?;
        if !fin.readable() {
            return Err(Errno::EBADF);
        }
        let pos = match &offset {
            Some(_) if fin.object.node().is_none() => return Err(Errno::ESPIPE),
            Some(o) => **o,
            None => *fin.pos.lock() as i64,
        };
        verify_area(pos, count)?;
        let count = count.min(MAX_RW_COUNT);
        let fout = self.file(out_fd)?;
        if !fout.writable() {
            return Err(Errno::EBADF);
        }
        let out_pos = match &fout.object {
            Object::Pipe(_) => 0,
            Object::Node(_) => {
                let at = *fout.pos.lock();
                verify_area(at as i64, count)?;
                if fout.flags() & O_APPEND != 0 {
                    return Err(Errno::EINVAL);
                }
                // Into a file, Linux wants an input it can seek: not a pipe. (Devices here
                // ignore offsets, as /dev/zero does on Linux, and pass.)
                if let Object::Pipe(_) = fin.object {
                    return Err(Errno::EINVAL);
                }
                at
            }
            // Nothing is sent into an anonymous file.
            _ => return Err(Errno::EINVAL),
        };
        if count == 0 {
            return Ok(0);
        }
        let src = match &fin.object {
            Object::Node(n)
                if matches!(n.file_type(), FileType::Regular | FileType::CharDevice) =>
            {
                n.clone()
            }
            _ => return Err(Errno::EINVAL),
        };
        let in_seekable = src.seekable();
        let mut buf = bounce(count.min(COPY_CHUNK))?;
        let mut done = 0;
        while done < count {
            let want = (count - done).min(buf.len());
            let at = if in_seekable {
                pos as u64 + done as u64
            } else {
                0
            };
            let got = match short(src.read_at(at, &mut buf[..want], fin.nonblock()), done)? {
                Some(0) | None => break,
                Some(n) => n,
            };
            let at = out_pos + done as u64;
            let Some(put) = short(put_out(&fout, at, &buf[..got], done > 0), done)? else {
                break;
            };
            done += put;
            if put < got {
                break;
            }
        }
        if done > 0 {
            // Linux's order: the output's position, then the input's (which wins when both
            // are one open file).
            if let Object::Node(n) = &fout.object {
                if n.seekable() {
                    *fout.pos.lock() = out_pos + done as u64;
                }
            }
            match offset {
                Some(o) => *o = pos + done as i64,
                None if in_seekable => *fin.pos.lock() = pos as u64 + done as u64,
                None => {}
            }
        }
        Ok(done)
    }

    /// `copy_file_range(fd_in, off_in, fd_out, off_out, len, flags)`: copies up to `len`
    /// bytes (at most [`MAX_RW_COUNT`]) between two regular files of one filesystem,
    /// through a kernel buffer; returns the bytes copied (0 at the end of the input).
    /// Each offset `None` means the file's position, which moves; otherwise `*off` is read
    /// and advanced and the position stays.
    ///
    /// Linux 6.18's checks in its order: `EBADF` for either descriptor, `EINVAL` for
    /// nonzero `flags`, `EISDIR` if either is a directory, `EINVAL` if either is not a
    /// regular file (a pipe, a device), `EBADF` unless `fd_in` is open for reading and
    /// `fd_out` for writing without `O_APPEND`, `EXDEV` across filesystems, `EOVERFLOW` if
    /// an offset plus `len` wraps as unsigned, `EFBIG` for an output offset of `i64::MAX`,
    /// `EINVAL` if the ranges overlap within one file (after the copy is shortened to the
    /// input's end), `EINVAL` for a negative offset.
    pub fn copy_file_range(
        &self,
        fd_in: Fd,
        off_in: Option<&mut i64>,
        fd_out: Fd,
        off_out: Option<&mut i64>,
        len: usize,
        flags: u32,
    ) -> Result<usize, Errno> {
        let fin = self.file(fd_in)?;
        let fout = self.file(fd_out)?;
        let pos_in = off_in.as_deref().copied();
        let pos_in = pos_in.unwrap_or_else(|| *fin.pos.lock() as i64);
        let pos_out = off_out.as_deref().copied();
        let pos_out = pos_out.unwrap_or_else(|| *fout.pos.lock() as i64);
        if flags != 0 {
            return Err(Errno::EINVAL);
        }
        let node = |f: &OpenFile| -> Option<VnodeRef> {
            match &f.object {
                Object::Node(n) => Some(n.clone()),
                _ => None,
            }
        };
        let (nin, nout) = (node(&fin), node(&fout));
        let is_dir = |n: &Option<VnodeRef>| {
            n.as_ref()
                .is_some_and(|n| n.file_type() == FileType::Directory)
        };
        if is_dir(&nin) || is_dir(&nout) {
            return Err(Errno::EISDIR);
        }
        let (Some(nin), Some(nout)) = (nin, nout) else {
            return Err(Errno::EINVAL);
        };
        if nin.file_type() != FileType::Regular || nout.file_type() != FileType::Regular {
            return Err(Errno::EINVAL);
        }
        if !fin.readable() || !fout.writable() || fout.flags() & O_APPEND != 0 {
            return Err(Errno::EBADF);
        }
        let (sin, sout) = (nin.stat(), nout.stat());
        if sin.dev != sout.dev {
            return Err(Errno::EXDEV);
        }
        let len = len as u64;
        if (pos_in as u64).checked_add(len).is_none() || (pos_out as u64).checked_add(len).is_none()
        {
            return Err(Errno::EOVERFLOW);
        }
        // Shortened to the input's end (the subtraction wraps for a negative offset, as
        // Linux's unsigned arithmetic does; that offset is refused below).
        let mut count = if pos_in >= sin.size as i64 {
            0
        } else {
            len.min(sin.size.wrapping_sub(pos_in as u64))
        };
        if pos_out == i64::MAX {
            return Err(Errno::EFBIG);
        }
        if pos_out >= 0 {
            count = count.min((i64::MAX - pos_out) as u64);
        }
        if (sin.dev, sin.ino) == (sout.dev, sout.ino) {
            let (a, b, c) = (i128::from(pos_in), i128::from(pos_out), i128::from(count));
            if b + c > a && b < a + c {
                return Err(Errno::EINVAL);
            }
        }
        if pos_in < 0 || pos_out < 0 {
            return Err(Errno::EINVAL);
        }
        let count = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(MAX_RW_COUNT);
        if count == 0 {
            return Ok(0);
        }
        let (pos_in, pos_out) = (pos_in as u64, pos_out as u64);
        let mut buf = bounce(count.min(COPY_CHUNK))?;
        let mut done = 0;
        while done < count {
            let want = (count - done).min(buf.len());
            let got = match short(
                nin.read_at(pos_in + done as u64, &mut buf[..want], false),
                done,
            )? {
                Some(0) | None => break,
                Some(n) => n,
            };
            let w = nout.write_at(pos_out + done as u64, &buf[..got], false);
            let Some(put) = short(w, done)? else {
                break;
            };
            done += put;
            if put < got {
                break;
            }
        }
        if done > 0 {
            // Linux's order: the input's position, then the output's.
            let moved = done as u64;
            match off_in {
                Some(o) => *o = (pos_in + moved) as i64,
                None => *fin.pos.lock() = pos_in + moved,
            }
            match off_out {
                Some(o) => *o = (pos_out + moved) as i64,
                None => *fout.pos.lock() = pos_out + moved,
            }
        }
        Ok(done)
    }

    /// `fallocate(fd, mode, offset, len)`: mode 0 makes the regular file open for writing
    /// on `fd` at least `offset + len` bytes long (never shorter; the new bytes read as
    /// zeros), `FALLOC_FL_KEEP_SIZE` succeeds and changes nothing
    /// ([`Vnode::allocate`](crate::Vnode::allocate); ramfs reserves no memory). Linux
    /// 6.18's checks in its order: `EBADF` (not open), `EINVAL` for `offset < 0` or
    /// `len <= 0`, `EOPNOTSUPP` for a mode Linux does not know, `EBADF` (not open for
    /// writing), `ESPIPE` for a pipe, `EISDIR`, `ENODEV` for anything but a regular file,
    /// `EFBIG` past `i64::MAX`; then every other known mode (punching holes, zeroing,
    /// collapsing, inserting ranges) is `EOPNOTSUPP`, as on a filesystem without them.
    pub fn fallocate(&self, fd: Fd, mode: u32, offset: i64, len: i64) -> Result<(), Errno> {
        let f = self.file(fd)?;
        if offset < 0 || len <= 0 {
            return Err(Errno::EINVAL);
        }
        if !falloc_mode_known(mode) {
            return Err(Errno::EOPNOTSUPP);
        }
        if !f.writable() {
            return Err(Errno::EBADF);
        }
        let n = match &f.object {
            Object::Pipe(_) => return Err(Errno::ESPIPE),
            Object::Node(n) => n,
            // Anonymous files have no data to allocate.
            _ => return Err(Errno::ENODEV),
        };
        match n.file_type() {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::EISDIR),
            _ => return Err(Errno::ENODEV),
        }
        offset.checked_add(len).ok_or(Errno::EFBIG)?;
        match mode {
            0 => n.allocate(offset as u64, len as u64, false),
            FALLOC_FL_KEEP_SIZE => n.allocate(offset as u64, len as u64, true),
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    /// `fadvise64(fd, offset, len, advice)` (`posix_fadvise`): a hint about how the range
    /// will be used, which changes nothing here. `EBADF`, `ESPIPE` for a pipe, `EINVAL`
    /// for a negative `len` or an advice other than `POSIX_FADV_NORMAL` ...
    /// `POSIX_FADV_NOREUSE` (0..=5); any offset is accepted, as on Linux.
    pub fn fadvise(&self, fd: Fd, offset: i64, len: i64, advice: u32) -> Result<(), Errno> {
        let _ = offset;
        if let Object::Pipe(_) = self.file(fd)?.object {
            return Err(Errno::ESPIPE);
        }
        if len < 0 || advice > POSIX_FADV_NOREUSE {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }
}
