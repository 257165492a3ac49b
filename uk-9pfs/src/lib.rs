//! A 9P2000.L client and a uk-vfs filesystem over it: a host folder inside the unikernel
//! (QEMU's `-virtfs`/virtio-9p, or any 9P2000.L server).
//!
//! # Design
//!
//! Three layers, each usable alone, over one seam:
//!
//! 1. **[`wire`]** encodes and decodes the messages (`size[4] type[1] tag[2] body`,
//!    little-endian): [`wire::Request`] and [`wire::Reply`], both directions, so a test
//!    server uses the same code. Decoding is bounds-checked and never panics: a reply
//!    that is short, has bytes left over, or whose `size` disagrees with what arrived is a
//!    [`wire::WireError`].
//! 2. **[`Client`]** is one session: it offers `msize = min(transport maximum,`
//!    [`client::DEFAULT_MSIZE`]`)` with version `9P2000.L` (another version is refused
//!    with [`Error::UnsupportedVersion`]), attaches, hands out fids (recycling clunked
//!    numbers), and has one typed method per operation: `walk`, `lopen`, `lcreate`,
//!    `read`, `write`, `clunk`, `getattr`, `setattr`, `readdir`, `mkdir`, `unlinkat`,
//!    `renameat`, `symlink`, `readlink`, `link`, `fsync`, `statfs`. Reads and writes larger
//!    than one message are split. It keeps one request and one reply buffer and checks
//!    every reply's tag and type; `Rlerror` becomes [`Error::Server`] with the Linux
//!    `errno` (an unknown number is `EIO`).
//! 3. **[`NinePFs`]** implements uk-vfs's `FileSystem` and `Vnode`. A vnode holds a fid
//!    walked to its file and opens others lazily for I/O; its `Drop` clunks them (errors
//!    are logged, not returned: there is no one to return them to). stat is `Tgetattr`,
//!    lookup a one-name `Twalk`, create `Tlcreate`/`Tmkdir`/`Tsymlink`, unlink and rmdir
//!    `Tunlinkat`, rename `Trenameat`, link `Tlink`, truncate, chmod, chown and times
//!    `Tsetattr`, fsync `Tfsync`, listing `Treaddir`, readlink `Treadlink`, and the
//!    filesystem's `statfs` is `Tstatfs`. Errors reach the VFS as the server's `errno`;
//!    anything wrong with the transport or a reply is `EIO` (and logged).
//!
//! **The transport seam** is [`Transport`]: `round_trip(request, reply)`, synchronous. It
//! returns when the reply is in the buffer, so every 9P operation blocks its caller for a
//! full round trip, and one session carries one request at a time: the filesystem keeps
//! its client behind a spin lock shared by all its vnodes. A transport may let other
//! threads run while it waits (uk-virtio's does), so the locks here, which are held across
//! round trips, wait through `uk_hal::relax` too: under a cooperative uk-sched scheduler a
//! second thread wanting the session yields to the one that holds it instead of spinning
//! forever. virtio-9p (uk-virtio) is one transport; the host tests run a `std::fs` server
//! in-process.
//!
//! **Directory positions.** The VFS owns positions 0 and 1 (`.` and `..`) and needs the
//! rest below `DIR_END` (`i32::MAX`); a server's readdir cookies are opaque 64-bit values
//! (an index on tmpfs, a 63-bit hash on ext4). A cookie below 2^30 − 2 is position
//! cookie + 2; a larger one is given the next position from 2^30 on, remembered by the
//! directory's vnode (directory vnodes are shared, one per directory). Either way a
//! position resumes at exactly the cookie the server gave, so the server's own guarantee
//! about entries that stay while a listing goes on carries over unchanged. The server's
//! own `.` and `..` entries are skipped.
//!
//! Unikraft 0.11's 9pfs silently did nothing for chmod, rename, link and lstat; here each
//! is its 9P message, tested against the host directory.
//!
//! **Supported:** regular files, directories, symbolic links, hard links, rename (with
//! `RENAME_NOREPLACE`, checked before the rename, so not atomic against the host),
//! truncate, chmod, chown, times, statfs. **Not supported:** locks (`Tlock`/`Tgetlock`:
//! uk-vfs's `flock` locks a 9P file within the image only), extended
//! attributes, `Tmknod` (no device or FIFO creation), `Tflush` (nothing is ever
//! cancelled), authentication (`afid` is `NOFID`), `9P2000`/`9P2000.u`. Host devices,
//! FIFOs and sockets look like regular files to `file_type` (a qid only says directory,
//! link or file), though `stat` reports their true mode. A file unlinked while open stays
//! usable only if it was read or written before the unlink (I/O fids are opened on first
//! use) and the server keeps open fids working (QEMU does). Appends are not
//! atomic against other writers of the file.
//!
//! # Features
//!
//! None: the crate is `no_std` + `alloc` and has no `unsafe` code.
//!
//! # Example
//!
//! A transport that answers only what mounting and one failed lookup need:
//!
//! ```
//! use uk_9pfs::wire::{QT_DIR, Qid, Reply, Request, VERSION_9P2000_L};
//! use uk_9pfs::{NinePFs, Transport, TransportError};
//! use uk_vfs::{Errno, O_RDONLY, RamFs, Vfs};
//!
//! struct Tiny;
//!
//! impl Transport for Tiny {
//!     fn max_message_size(&self) -> usize {
//!         8192
//!     }
//!     fn round_trip(&mut self, req: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
//!         let (tag, req) = Request::decode(req).map_err(|_| TransportError::Io)?;
//!         let answer = match req {
//!             Request::Version { msize, .. } => Reply::Version { msize, version: VERSION_9P2000_L },
//!             Request::Attach { .. } => Reply::Attach { qid: Qid { kind: QT_DIR, version: 0, path: 1 } },
//!             Request::Clunk { .. } => Reply::Clunk,
//!             _ => Reply::Lerror { ecode: 2 }, // ENOENT
//!         };
//!         let mut out = Vec::new();
//!         answer.encode(tag, &mut out).map_err(|_| TransportError::Io)?;
//!         reply.get_mut(..out.len()).ok_or(TransportError::TooLarge)?.copy_from_slice(&out);
//!         Ok(out.len())
//!     }
//! }
//!
//! let fs = NinePFs::mount(Tiny, b"")?;
//! assert_eq!(fs.msize(), 8192);
//! let vfs = Vfs::new(RamFs::new());
//! vfs.mkdir("/host", 0o755)?;
//! vfs.mount("/host", fs)?;
//! assert_eq!(vfs.open("/host/missing", O_RDONLY, 0), Err(Errno::ENOENT));
//! # Ok::<(), Errno>(())
//! ```
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod client;
pub mod fs;
pub mod transport;
pub mod wire;

pub use client::{Client, Error, Fid};
pub use fs::NinePFs;
pub use transport::{Transport, TransportError};

#[cfg(test)]
mod tests;
