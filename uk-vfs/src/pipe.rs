//! Pipes: a 64 KiB byte ring shared by a read end and a write end.
//!
//! Linux's rules: a read returns what is there (at most the request), 0 once every write
//! end is closed, `EAGAIN` when empty with `O_NONBLOCK`, and otherwise waits. A write of
//! at most [`PIPE_BUF`] bytes is atomic (it waits for room for all of it, or fails with
//! `EAGAIN`); a larger one may be split. Writing with no read end left fails with `EPIPE`
//! (there are no signals to send `SIGPIPE` with).
//!
//! A wait ends when a signal runs a handler, if the [`Wait`] in use says so (see
//! [`crate::wait`]): a read fails with `EINTR`, or waits again when the handler has
//! `SA_RESTART`; a write does the same when it has put nothing in, and otherwise returns
//! the count it wrote, as Linux does.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::Errno;
use crate::poll::{POLLERR, POLLHUP, POLLIN, POLLOUT, POLLRDNORM, POLLWRNORM, changed};
use crate::types::{PIPE_BUF, PIPE_CAPACITY, S_IFIFO, Stat};
use crate::wait::{Wait, new_wait};

static NEXT_INO: AtomicU64 = AtomicU64::new(1);
static PIPE_DEV: spin::Once<u64> = spin::Once::new();

struct State {
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
}

/// The shared part of a pipe.
pub struct Pipe {
    state: Mutex<State>,
    readable: Box<dyn Wait>,
    writable: Box<dyn Wait>,
    ino: u64,
    /// Moves at every change of either end (see [`crate::poll`]).
    generation: AtomicU64,
}

/// One end of a pipe; dropping it closes that end.
pub struct PipeEnd {
    pipe: Arc<Pipe>,
    write: bool,
}

/// Makes a pipe: (read end, write end).
pub fn pipe() -> (PipeEnd, PipeEnd) {
    let pipe = Arc::new(Pipe {
        state: Mutex::new(State {
            buf: VecDeque::new(),
            readers: 1,
            writers: 1,
        }),
        readable: new_wait(),
        writable: new_wait(),
        ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
        generation: AtomicU64::new(0),
    });
    (
        PipeEnd {
            pipe: pipe.clone(),
            write: false,
        },
        PipeEnd { pipe, write: true },
    )
}

impl Drop for PipeEnd {
    fn drop(&mut self) {
        let mut s = self.pipe.state.lock();
        if self.write {
            s.writers -= 1;
        } else {
            s.readers -= 1;
        }
        drop(s);
        self.pipe.readable.wake_all();
        self.pipe.writable.wake_all();
        changed(&self.pipe.generation);
    }
}

impl PipeEnd {
    /// Whether this is the write end.
    pub fn is_write_end(&self) -> bool {
        self.write
    }

    /// The `poll` events of this end: the read end is readable while bytes wait
    /// (`POLLIN`) and hung up once no write end is left (`POLLHUP`, a read returns 0); the
    /// write end is writable while `PIPE_BUF` bytes fit (`POLLOUT`) and in error once no
    /// read end is left (`POLLERR`, a write fails with `EPIPE`).
    pub fn poll_events(&self) -> u16 {
        let s = self.pipe.state.lock();
        if self.write {
            let mut events = 0;
            if PIPE_CAPACITY - s.buf.len() >= PIPE_BUF {
                events |= POLLOUT | POLLWRNORM;
            }
            if s.readers == 0 {
                events |= POLLERR;
            }
            events
        } else {
            let mut events = 0;
            if !s.buf.is_empty() {
                events |= POLLIN | POLLRDNORM;
            }
            if s.writers == 0 {
                events |= POLLHUP;
            }
            events
        }
    }

    /// The pipe's generation: moves at every read, write and close of either end.
    pub fn generation(&self) -> u64 {
        self.pipe.generation.load(Ordering::SeqCst)
    }

    /// Bytes waiting in the pipe.
    pub fn len(&self) -> usize {
        self.pipe.state.lock().buf.len()
    }

    /// Whether the pipe holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `fstat` of a pipe.
    pub fn stat(&self) -> Stat {
        Stat {
            dev: *PIPE_DEV.call_once(crate::ramfs::anonymous_dev),
            ino: self.pipe.ino,
            mode: S_IFIFO | 0o600,
            nlink: 1,
            blksize: 4096,
            ..Stat::default()
        }
    }

    /// Reads from the read end: what the pipe holds, up to `buf.len()` bytes, waiting
    /// (unless `nonblock`) while it is empty and a writer is left; 0 once it is empty with
    /// no writer.
    ///
    /// # Errors
    ///
    /// `EBADF` on the write end; `EAGAIN` when empty and `nonblock`; from the wait (see
    /// [`crate::wait`]): `EDEADLK`, `EINTR`, or `ERESTARTSYS` when a handler installed with
    /// `SA_RESTART` ran, which asks the caller to make the whole call again ([`Vfs::read`]
    /// does, looking the descriptor up anew).
    ///
    /// [`Vfs::read`]: crate::Vfs::read
    pub fn read(&self, buf: &mut [u8], nonblock: bool) -> Result<usize, Errno> {
        if self.write {
            return Err(Errno::EBADF);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let p = &*self.pipe;
        loop {
            {
                let mut s = p.state.lock();
                if !s.buf.is_empty() {
                    let n = buf.len().min(s.buf.len());
                    let (a, b) = s.buf.as_slices();
                    let from_a = n.min(a.len());
                    buf[..from_a].copy_from_slice(&a[..from_a]);
                    buf[from_a..n].copy_from_slice(&b[..n - from_a]);
                    s.buf.drain(..n);
                    drop(s);
                    p.writable.wake_all();
                    changed(&p.generation);
                    return Ok(n);
                }
                if s.writers == 0 {
                    return Ok(0);
                }
                if nonblock {
                    return Err(Errno::EAGAIN);
                }
            }
            p.readable.wait(&mut || {
                let s = p.state.lock();
                !s.buf.is_empty() || s.writers == 0
            })?;
        }
    }

    /// Writes as much of `buf` as fits now, waiting (unless `nonblock`) only while the
    /// pipe is full, with no `PIPE_BUF` atomicity: how `sendfile` fills a pipe (Linux's
    /// splice into a pipe also moves what fits and returns).
    pub(crate) fn write_some(&self, buf: &[u8], nonblock: bool) -> Result<usize, Errno> {
        if !self.write {
            return Err(Errno::EBADF);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let p = &*self.pipe;
        loop {
            {
                let mut s = p.state.lock();
                if s.readers == 0 {
                    return Err(Errno::EPIPE);
                }
                let take = (PIPE_CAPACITY - s.buf.len()).min(buf.len());
                if take > 0 {
                    if s.buf.capacity() < PIPE_CAPACITY && s.buf.try_reserve(take).is_err() {
                        return Err(Errno::ENOMEM);
                    }
                    s.buf.extend(&buf[..take]);
                    drop(s);
                    p.readable.wake_all();
                    changed(&p.generation);
                    return Ok(take);
                }
                if nonblock {
                    return Err(Errno::EAGAIN);
                }
            }
            p.writable.wait(&mut || {
                let s = p.state.lock();
                s.readers == 0 || s.buf.len() < PIPE_CAPACITY
            })?;
        }
    }

    /// Writes to the write end: all of `buf`, waiting (unless `nonblock`) for room, in one
    /// piece when it is at most `PIPE_BUF` bytes.
    ///
    /// # Errors
    ///
    /// `EBADF` on the read end; `EPIPE` with no reader; `EAGAIN` when full and
    /// `nonblock`; `ENOMEM`; the wait's errors as [`PipeEnd::read`]. An error after part of
    /// `buf` went in is not reported: the count of that part is.
    pub fn write(&self, buf: &[u8], nonblock: bool) -> Result<usize, Errno> {
        if !self.write {
            return Err(Errno::EBADF);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let p = &*self.pipe;
        let atomic = buf.len() <= PIPE_BUF;
        let mut done = 0;
        loop {
            {
                let mut s = p.state.lock();
                if s.readers == 0 {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(Errno::EPIPE)
                    };
                }
                let free = PIPE_CAPACITY - s.buf.len();
                let want = buf.len() - done;
                let take = if atomic {
                    if free >= want { want } else { 0 }
                } else {
                    free.min(want)
                };
                if take > 0 {
                    if s.buf.capacity() < PIPE_CAPACITY && s.buf.try_reserve(take).is_err() {
                        return if done > 0 {
                            Ok(done)
                        } else {
                            Err(Errno::ENOMEM)
                        };
                    }
                    s.buf.extend(&buf[done..done + take]);
                    done += take;
                    drop(s);
                    p.readable.wake_all();
                    changed(&p.generation);
                    if done == buf.len() {
                        return Ok(done);
                    }
                } else if nonblock {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(Errno::EAGAIN)
                    };
                }
            }
            if nonblock {
                continue;
            }
            let need = if atomic { buf.len() } else { 1 };
            if let Err(e) = p.writable.wait(&mut || {
                let s = p.state.lock();
                s.readers == 0 || PIPE_CAPACITY - s.buf.len() >= need
            }) {
                // Part written: its count, whatever ended the wait (a signal with
                // SA_RESTART too). Nothing written: the error, `ERESTARTSYS` included.
                return if done > 0 { Ok(done) } else { Err(e) };
            }
        }
    }
}
