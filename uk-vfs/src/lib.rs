//! A VFS with Linux's semantics: mounts, path lookup, descriptors, ramfs, devfs, pipes,
//! eventfd, epoll sets, timerfd, signalfd, pidfd, the initrd, and the file syscalls.
//!
//! # Design
//!
//! Three layers, each usable alone:
//!
//! 1. **Filesystems** implement two traits: [`FileSystem`] (a root) and [`Vnode`] (what a
//!    node does with its own data: lookup, create, link, unlink, rename, list, read, write,
//!    truncate). [`RamFs`] keeps everything in memory (sparse files of 4 KiB pages,
//!    directories with stable listing positions); [`DevFs`] holds `null`, `zero`,
//!    `random`, `urandom` and `console`; [`ProcFs`] is a read-only `/proc` with Linux's
//!    formats whose facts about processes come from a [`ProcSource`] the process layer
//!    implements ([`procfs`]), so this crate stays ignorant of processes.
//! 2. **The [`Vfs`]** is one process's view: a mount table, the root, the working
//!    directory, the umask and the descriptor table. It walks paths (absolute, relative,
//!    `.`, `..` stopping at the root and crossing mounts, symbolic links up to 40 per lookup
//!    before `ELOOP`, `ENAMETOOLONG` past `PATH_MAX` 4096 or `NAME_MAX` 255, `ENOTDIR`,
//!    `ENOENT`), keeps open file descriptions (offset and status flags shared by `dup`) and
//!    gives every call Linux's result and `errno`. Its methods are the typed API:
//!    `vfs.open("/etc/motd", O_RDONLY, 0)?` returns an [`Fd`].
//! 3. **Syscalls** ([`syscalls`]) are thin adapters that read their pointer arguments
//!    through [`uk_syscall::user`] (the one module of uk-rs that touches caller memory:
//!    `NULL` and addresses outside the image's declared caller memory give `EFAULT`, a path
//!    without a NUL within `PATH_MAX` bytes `ENAMETOOLONG`, an empty buffer is fine at any
//!    address) and call the [`global`] `Vfs`. They register themselves with `uk-syscall`.
//!    No `unsafe` for caller memory lives in this crate.
//!
//! The descriptor limit is [`Vfs::set_max_fds`], or a function read before every
//! allocation ([`Vfs::set_max_fds_source`], for the process layer's `RLIMIT_NOFILE`).
//!
//! Pipes ([`pipe`]) block through the [`wait::Wait`] seam: the process layer's wait in the
//! image (uk-posix-process registers one that a signal ends, `EINTR` or a restart with
//! `SA_RESTART`), else `uk-sched` wait queues, real threads in host tests; so do
//! [`eventfd`] counters and [`flock`] locks, which belong to open file descriptions as on
//! Linux, and `fcntl`'s [`record_lock`]s (POSIX locks of the process, and open file
//! description locks). Readiness ([`poll`]) is computed
//! when asked; every pipe, eventfd and epoll change moves a global epoch (and the changed
//! object's own generation) and calls a hook, which is how uk-posix-process's `poll`,
//! `select` and `epoll_wait` wait without missing a change. [`epoll`] sets are open files
//! holding weak registrations of open file descriptions (gone with the last close, as on
//! Linux); edge-triggered registrations report once per generation. [`timerfd`]s count
//! their expirations when looked at (a [`timerfd::TimeSource`] gives the clocks) and
//! leave the waking at a deadline to the waiting layer ([`timerfd::next_deadline_ns`],
//! [`timerfd::fire_due`]). [`signalfd`]s take the reading thread's pending signals
//! through a [`signalfd::SignalSource`] the process layer installs, which also tells them
//! when one is queued ([`signalfd::signals_arrived`]). Transfers between files (`sendfile`, `copy_file_range`) go
//! through a kernel buffer of at most 64 KiB at a time. The initrd ([`cpio`]) is a bounds-checked `newc`
//! parser; [`global::init`] unpacks an archive into the root ramfs, and a malformed one is
//! reported and leaves an empty root. The boards hand the archive over as
//! `Platform::initrd()`: x86-pc from the first PVH module (QEMU `-initrd`), qemu-virt from
//! the device tree (`/chosen/linux,initrd-*`, or the `/chosen/module@` node of QEMU's
//! `-device guest-loader,addr=A,initrd=FILE`, since QEMU ignores `-initrd` for an ELF
//! kernel on Arm).
//!
//! Differences from Linux, on purpose: there is one user (root), so permission bits and
//! owners (`chown`) are kept and reported but only `access(X_OK)` checks them; `/dev/console` has no input, so a
//! blocking read returns end of file instead of waiting forever; a pipe read or write that
//! would block with no thread to switch to fails with `EDEADLK` instead of hanging.
//!
//! Unikraft 0.11's defects (reference §9) and how this crate avoids them, each with a test:
//! a `getdents64` buffer of exactly N records returns N records; a buffer too small for
//! one record gives `EINVAL`; records are 8-byte aligned with exact `d_reclen`;
//! `stat(NULL)` gives `EFAULT`; `faccessat` errors are negative; pipe creation with a
//! full table gives `EMFILE`; a full table gives `EMFILE` (not `ENFILE`).
//!
//! # Features
//!
//! - `sched`: pipes block on `uk-sched` wait queues.
//! - `ktest`: in-image test cases (implies `sched`, and `uk-syscall/image` so the cases
//!   check pointers against the image's real caller memory).
//!
//! # Example
//!
//! ```
//! use uk_vfs::{O_CREAT, O_RDWR, RamFs, Vfs};
//!
//! let vfs = Vfs::new(RamFs::new());
//! vfs.mkdir("/etc", 0o755).unwrap();
//! let fd = vfs.open("/etc/motd", O_CREAT | O_RDWR, 0o644).unwrap();
//! assert_eq!(vfs.write(fd, b"hello").unwrap(), 5);
//! assert_eq!(vfs.pread(fd, &mut [0; 8], 0).unwrap(), 5);
//! vfs.close(fd).unwrap();
//! assert_eq!(vfs.stat("/etc/motd").unwrap().size, 5);
//! assert_eq!(vfs.open("/etc/motd/x", 0, 0), Err(uk_vfs::Errno::ENOTDIR));
//! ```
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod cpio;
pub mod devfs;
pub mod epoll;
pub mod eventfd;
mod file;
pub mod flock;
pub mod global;
pub mod memfd;
pub mod mmap;
pub mod pidfd;
pub mod pipe;
pub mod poll;
pub mod procfs;
pub mod ramfs;
pub mod record_lock;
pub mod signalfd;
pub mod syscalls;
pub mod timerfd;
mod transfer;
pub mod types;
mod vfs;
pub mod vnode;
pub mod wait;

#[cfg(all(feature = "ktest", target_os = "none"))]
mod ktest;
#[cfg(test)]
mod tests;

pub use devfs::{DevFs, set_console};
pub use epoll::{EpollEvent, EpollInstance};
pub use file::Fd;
pub use mmap::{FileMap, MapKind, SharedMap};
pub use poll::{PollFd, readiness_epoch, set_readiness_hook};
pub use procfs::{MapEntry, ProcFs, ProcSource, ProcessInfo, SystemInfo, ThreadInfo};
pub use ramfs::{RamFs, anonymous_dev};
pub use types::*;
pub use uk_syscall::Errno;
pub use vfs::{DIR_END, Vfs};
pub use vnode::{DirEntry, FileSystem, NewNode, Vnode, VnodeRef};

static CLOCK: spin::Once<fn() -> Timespec> = spin::Once::new();

/// Sets the clock that stamps file times (first call wins). Without one every time is 0.
pub fn set_clock(clock: fn() -> Timespec) {
    CLOCK.call_once(|| clock);
}

/// The current time of the VFS clock.
pub fn now() -> Timespec {
    match CLOCK.get() {
        Some(clock) => clock(),
        None => Timespec::default(),
    }
}
