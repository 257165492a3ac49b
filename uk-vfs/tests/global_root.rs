//! `global::init_root`: the image's VFS over a root filesystem of the caller's (its own
//! process, since the global VFS is made once).

use uk_vfs::{Errno, FileType, RamFs, Vfs, global};

#[test]
fn the_global_vfs_takes_the_given_root_once() {
    // A root that already holds files and its own /dev directory (as a shared host folder
    // may): the files are seen, devfs is mounted over /dev, fds 0-2 are the console.
    let root = RamFs::new();
    let staging = Vfs::new(root.clone());
    staging.mkdir("/etc", 0o755).unwrap();
    staging
        .write_file("/etc/motd", b"from the root fs", 0o644)
        .unwrap();
    staging.mkdir("/dev", 0o755).unwrap();
    let vfs = global::init_root(root).unwrap();
    assert_eq!(vfs.read_file("/etc/motd").unwrap(), b"from the root fs");
    assert_eq!(
        vfs.stat("/dev/null").unwrap().file_type(),
        Some(FileType::CharDevice)
    );
    assert_eq!(vfs.write(1, b"").unwrap(), 0);
    assert!(core::ptr::eq(vfs, global::vfs()));
    // The root of a running VFS is never swapped.
    assert_eq!(global::init_root(RamFs::new()).err(), Some(Errno::EBUSY));
    assert!(global::vfs().read_file("/etc/motd").is_ok());
}
