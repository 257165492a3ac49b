//! The image's VFS: one [`Vfs`] with a ramfs root (or the filesystem given to
//! [`init_root`]), devfs on `/dev` and a ramfs on `/dev/shm`, the target of the syscall
//! handlers.

use alloc::sync::Arc;

use spin::Once;

use crate::cpio;
use crate::{DevFs, Errno, Fd, FileSystem, O_RDWR, RamFs, Vfs};

static GLOBAL: Once<Vfs> = Once::new();

/// The image's VFS, made on first use: an empty ramfs root, `/dev` holding devfs, a ramfs
/// on `/dev/shm` (Linux's tmpfs there: musl's `shm_open` and `sem_open` use it), and
/// descriptors 0, 1 and 2 open on `/dev/console`.
pub fn vfs() -> &'static Vfs {
    GLOBAL.call_once(|| {
        let vfs = Vfs::new(RamFs::new());
        populate(&vfs);
        vfs
    })
}

/// Makes the image's VFS with `root` as its root filesystem instead of a ramfs (Unikraft's
/// root on 9pfs: a host folder from uk-9pfs, say), devfs on `/dev` and descriptors 0-2 on
/// `/dev/console` and a ramfs on `/dev/shm` as [`vfs`] does. `/dev` is created in `root`
/// if it is missing (on a shared host folder, that is a real directory there).
///
/// # Errors
///
/// `EBUSY` if the VFS was already made (by an earlier call or by a first use of [`vfs`]):
/// the root of a running VFS is never swapped, and `root` is dropped.
pub fn init_root(root: Arc<dyn FileSystem>) -> Result<&'static Vfs, Errno> {
    let mut made = false;
    let vfs = GLOBAL.call_once(|| {
        made = true;
        let vfs = Vfs::new(root);
        populate(&vfs);
        vfs
    });
    if made { Ok(vfs) } else { Err(Errno::EBUSY) }
}

fn populate(vfs: &Vfs) {
    let dev = match vfs.mkdir("/dev", 0o755) {
        Ok(()) | Err(Errno::EEXIST) => true,
        Err(_) => false,
    };
    let ok = dev && vfs.mount("/dev", DevFs::new()).is_ok();
    if !ok {
        log::error!("uk-vfs: could not mount devfs on /dev");
        return;
    }
    if vfs.mount("/dev/shm", RamFs::new()).is_err() {
        log::error!("uk-vfs: could not mount a ramfs on /dev/shm");
    }
    for want in 0..3 as Fd {
        match vfs.open("/dev/console", O_RDWR, 0) {
            Ok(fd) if fd == want => {}
            _ => log::error!("uk-vfs: could not open /dev/console as fd {want}"),
        }
    }
}

/// Mounts a procfs answering from `source` on `/proc` of the image's VFS ([`vfs`]),
/// making the directory (mode `0555`) if it is missing: what the process layer does when
/// it connects to the VFS (uk-posix-process's `connect_vfs`).
///
/// # Errors
///
/// `EBUSY` if something is mounted on `/proc` already (a second call), or the error that
/// making the directory gave; nothing is mounted then.
pub fn mount_proc(source: &'static dyn crate::ProcSource) -> Result<(), Errno> {
    let vfs = vfs();
    match vfs.mkdir("/proc", 0o555) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    vfs.mount("/proc", crate::ProcFs::new(source))
}

/// What [`init`] did with the initrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitrdStatus {
    /// No initrd was given.
    None,
    /// The archive was unpacked: this many entries.
    Unpacked(usize),
    /// The archive is malformed (reported in the log); the root stays empty.
    Malformed(cpio::Error),
}

/// Boot-time set-up: unpacks `initrd` (a `newc` CPIO archive, `Platform::initrd()`) into
/// the root ramfs of [`vfs`]. A malformed archive is logged and nothing of it is
/// unpacked; boot goes on with an empty root.
pub fn init(initrd: Option<&[u8]>) -> InitrdStatus {
    let vfs = vfs();
    let Some(archive) = initrd else {
        return InitrdStatus::None;
    };
    match cpio::unpack(vfs, archive) {
        Ok(n) => {
            log::info!(
                "uk-vfs: initrd unpacked: {n} entries, {} bytes",
                archive.len()
            );
            InitrdStatus::Unpacked(n)
        }
        Err(e) => {
            log::error!("uk-vfs: initrd is malformed ({e}); continuing with an empty root");
            InitrdStatus::Malformed(e)
        }
    }
}
