//! `memfd_create`: anonymous memory files, and the seals that fix what may change in them.
//!
//! A memfd is a ramfs file that no directory names: it is made in a ramfs of its own (one
//! for the image, never mounted) and unlinked at once, so it lives exactly as long as
//! descriptors (or shared mappings) of it do, as Linux's memfds do. Everything a ramfs
//! file does works on it: `read`/`write`, `ftruncate`, `fallocate`, and `mmap`, shared
//! mappings included (JIT compilers and zero-copy buffers use this).
//!
//! Seals (`fcntl` `F_ADD_SEALS`, `F_GET_SEALS`) are Linux's: a memfd made with
//! `MFD_ALLOW_SEALING` starts without any, one made without starts sealed with
//! `F_SEAL_SEAL` (no more seals), as every other ramfs file is (Linux's tmpfs files too).
//! `F_SEAL_SHRINK` and `F_SEAL_GROW` refuse a size change (`ftruncate`, a write past the
//! end, `fallocate`), `F_SEAL_WRITE` and `F_SEAL_FUTURE_WRITE` every write and new shared
//! writable mappings, `F_SEAL_EXEC` a change of the execute bits: `EPERM`, changing
//! nothing. `F_SEAL_WRITE` cannot be added while the file is mapped shared (`EBUSY`;
//! Linux refuses only writable shared mappings).

use alloc::format;
use alloc::sync::Arc;

use spin::Once;

use crate::file::OpenFile;
use crate::ramfs::{self, RamFs};
use crate::types::*;
use crate::vnode::{FileSystem, NewNode};
use crate::{Errno, Fd, Vfs};

/// The ramfs that memfds are made in (never mounted: no path reaches it).
static MEMFDS: Once<Arc<RamFs>> = Once::new();

/// Names the files made there, so two memfds of one name never meet.
static NEXT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// `EINVAL` unless `flags` are ones [`Vfs::memfd_create`] takes: checked before the name,
/// as Linux does.
pub(crate) fn check_flags(flags: u32) -> Result<(), Errno> {
    let known = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
    if flags & !known != 0
        || flags & MFD_HUGETLB != 0
        || flags & (MFD_EXEC | MFD_NOEXEC_SEAL) == MFD_EXEC | MFD_NOEXEC_SEAL
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

impl Vfs {
    /// memfd_create(2): a new anonymous file, open for reading and writing on the lowest
    /// free descriptor (close-on-exec with `MFD_CLOEXEC`). `name` (without its NUL) is for
    /// debugging only, as on Linux. Mode 0777, or 0666 and sealed with `F_SEAL_EXEC` with
    /// `MFD_NOEXEC_SEAL` (which, as on Linux, also allows sealing).
    ///
    /// # Errors
    ///
    /// `EINVAL` for unknown flags, `MFD_HUGETLB` (no huge pages here), `MFD_EXEC` with
    /// `MFD_NOEXEC_SEAL`, or a name longer than [`MFD_NAME_MAX`] bytes; `EMFILE` when the
    /// descriptor table is full; `ENOMEM`. Nothing is made on an error.
    pub fn memfd_create(&self, name: &[u8], flags: u32) -> Result<Fd, Errno> {
        check_flags(flags)?;
        if name.len() > MFD_NAME_MAX {
            return Err(Errno::EINVAL);
        }
        let noexec = flags & MFD_NOEXEC_SEAL != 0;
        let fs = MEMFDS.call_once(RamFs::new);
        let root = fs.root();
        let n = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // The name in the hidden directory: unique, and within NAME_MAX whatever `name` is.
        let hidden = format!("memfd-{n}");
        let node = root.create(
            hidden.as_bytes(),
            NewNode::File,
            if noexec { 0o666 } else { 0o777 },
        )?;
        root.unlink(hidden.as_bytes())?;
        if noexec {
            ramfs::allow_sealing(&node, F_SEAL_EXEC);
        } else if flags & MFD_ALLOW_SEALING != 0 {
            ramfs::allow_sealing(&node, 0);
        }
        // What Linux's /proc/<pid>/fd shows for a memfd.
        let mut label = alloc::vec::Vec::from(&b"/memfd:"[..]);
        label.extend_from_slice(name);
        label.extend_from_slice(b" (deleted)");
        let origin = crate::file::Origin::Label(label.into_boxed_slice());
        let file = OpenFile::with_origin(
            crate::file::Object::Node(node),
            O_RDWR | O_LARGEFILE,
            Some(origin),
        );
        self.alloc_fd(file, flags & MFD_CLOEXEC != 0)
    }
}
