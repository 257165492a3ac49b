//! `eventfd`: a 64-bit counter behind a descriptor, with Linux's semantics.
//!
//! A write of 8 bytes adds the value to the counter; a read of 8 bytes returns the counter
//! and sets it to 0 (with [`EFD_SEMAPHORE`]: returns 1 and takes 1 away). Buffers shorter
//! than 8 bytes are `EINVAL`, as is writing `u64::MAX`. A read finding 0 and a write that
//! would take the counter past `0xffff_ffff_ffff_fffe` wait (through the [`crate::wait`]
//! seam, as a pipe does) or, on a non-blocking descriptor, fail with `EAGAIN`. A signal
//! that runs a handler ends the wait with `EINTR`, or, for a handler with `SA_RESTART`,
//! lets it go on (the call restarts), when the [`Wait`] in use tells (see [`crate::wait`]).
//!
//! Readiness: `POLLIN` while the counter is above 0, `POLLOUT` while a write of 1 would not
//! wait. Every read and write (a write of 0 too, as Linux wakes its waiters then) moves
//! the eventfd's generation and the [`readiness epoch`](crate::readiness_epoch), so
//! `poll`, `select` and `epoll` waiters look again.
//!
//! An eventfd is an anonymous-inode file as on Linux: `fstat` gives mode `0600` with no
//! file type, the inode and device shared by every eventfd and epoll descriptor;
//! `lseek` succeeds and returns 0 (Linux's `noop_llseek`), `pread`/`pwrite` are `ESPIPE`.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::Errno;
use crate::poll::{POLLIN, POLLOUT, changed};
use crate::types::{O_CLOEXEC, O_NONBLOCK, Stat};
use crate::wait::{Wait, new_wait};

/// `eventfd2` flag: reads return 1 and decrement the counter by 1.
pub const EFD_SEMAPHORE: u32 = 1;
/// `eventfd2` flag: close-on-exec (`O_CLOEXEC`).
pub const EFD_CLOEXEC: u32 = O_CLOEXEC;
/// `eventfd2` flag: non-blocking (`O_NONBLOCK`).
pub const EFD_NONBLOCK: u32 = O_NONBLOCK;

/// The largest value the counter can hold.
pub const EVENTFD_MAX: u64 = u64::MAX - 1;

static ANON_DEV: spin::Once<u64> = spin::Once::new();
/// The inode number of the one anonymous inode (far from ramfs's and pipes' numbers).
const ANON_INO: u64 = 1 << 40;

/// What `fstat` reports for an anonymous-inode file (an eventfd or an epoll set): one inode
/// shared by all of them, mode `0600` without a file type, as Linux's anon inode.
pub(crate) fn anon_stat() -> Stat {
    Stat {
        dev: *ANON_DEV.call_once(crate::ramfs::anonymous_dev),
        ino: ANON_INO,
        mode: 0o600,
        nlink: 1,
        blksize: 4096,
        ..Stat::default()
    }
}

/// An eventfd's counter and its waiters.
pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    readable: Box<dyn Wait>,
    writable: Box<dyn Wait>,
    generation: AtomicU64,
}

impl EventFd {
    /// A counter starting at `initval`; `semaphore` is [`EFD_SEMAPHORE`].
    pub fn new(initval: u64, semaphore: bool) -> EventFd {
        EventFd {
            count: Mutex::new(initval),
            semaphore,
            readable: new_wait(),
            writable: new_wait(),
            generation: AtomicU64::new(0),
        }
    }

    /// The counter now.
    pub fn count(&self) -> u64 {
        *self.count.lock()
    }

    /// The generation: moves at every read and write.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// `POLLIN` while the counter is above 0, `POLLOUT` while a write of 1 would not wait.
    pub fn poll_events(&self) -> u16 {
        let count = *self.count.lock();
        let mut events = 0;
        if count > 0 {
            events |= POLLIN;
        }
        if count < EVENTFD_MAX {
            events |= POLLOUT;
        }
        events
    }

    /// Reads the counter into `buf` (8 bytes, native byte order); returns 8.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a buffer shorter than 8 bytes; `EAGAIN` when the counter is 0 and
    /// `nonblock`; `EDEADLK` when it would wait outside a thread; `EINTR` when a signal's
    /// handler ran while it waited, or `ERESTARTSYS` when that handler had `SA_RESTART`
    /// (the caller makes the call again: [`Vfs::read`](crate::Vfs::read) does).
    pub fn read(&self, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        loop {
            {
                let mut count = self.count.lock();
                if *count > 0 {
                    let value = if self.semaphore { 1 } else { *count };
                    *count -= value;
                    drop(count);
                    buf[..8].copy_from_slice(&value.to_ne_bytes());
                    self.writable.wake_all();
                    changed(&self.generation);
                    return Ok(8);
                }
                if nonblock {
                    return Err(Errno::EAGAIN);
                }
            }
            self.readable.wait(&mut || *self.count.lock() > 0)?;
        }
    }

    /// Adds the first 8 bytes of `buf` (native byte order) to the counter; returns 8.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a buffer shorter than 8 bytes or the value `u64::MAX`; `EAGAIN` when
    /// the sum would pass [`EVENTFD_MAX`] and `nonblock`; `EDEADLK` when it would wait
    /// outside a thread; `EINTR` as [`EventFd::read`].
    pub fn write(&self, buf: &[u8], nonblock: bool) -> Result<usize, Errno> {
        let Some(bytes) = buf.get(..8) else {
            return Err(Errno::EINVAL);
        };
        let mut raw = [0u8; 8];
        raw.copy_from_slice(bytes);
        let value = u64::from_ne_bytes(raw);
        if value == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let fits = |count: u64| EVENTFD_MAX - count >= value;
        loop {
            {
                let mut count = self.count.lock();
                if fits(*count) {
                    *count += value;
                    drop(count);
                    self.readable.wake_all();
                    changed(&self.generation);
                    return Ok(8);
                }
                if nonblock {
                    return Err(Errno::EAGAIN);
                }
            }
            self.writable.wait(&mut || fits(*self.count.lock()))?;
        }
    }
}
