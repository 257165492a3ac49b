//! The image's VFS: one [`Vfs`] with a ramfs root and devfs on `/dev`, the target of the
//! syscall handlers.

use spin::Once;

use crate::cpio;
use crate::{DevFs, Fd, O_RDWR, RamFs, Vfs};

static GLOBAL: Once<Vfs> = Once::new();

/// The image's VFS, made on first use: an empty ramfs root, `/dev` holding devfs, and
/// descriptors 0, 1 and 2 open on `/dev/console`.
pub fn vfs() -> &'static Vfs {
    GLOBAL.call_once(|| {
        let vfs = Vfs::new(RamFs::new());
        populate(&vfs);
        vfs
    })
}

fn populate(vfs: &Vfs) {
    let ok = vfs.mkdir("/dev", 0o755).is_ok() && vfs.mount("/dev", DevFs::new()).is_ok();
    if !ok {
        log::error!("uk-vfs: could not mount devfs on /dev");
        return;
    }
    for want in 0..3 as Fd {
        match vfs.open("/dev/console", O_RDWR, 0) {
            Ok(fd) if fd == want => {}
            _ => log::error!("uk-vfs: could not open /dev/console as fd {want}"),
        }
    }
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
