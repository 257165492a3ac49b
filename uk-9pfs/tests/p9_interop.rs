//! Interoperability: uk-9pfs against an independent 9P2000.L server, crosvm's `p9` crate
//! (the server ChromeOS and crosvm use for virtio-9p), exporting a fresh host directory.
//! Everything goes through `uk_vfs::Vfs` and is checked on the host with `std::fs`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uk_9pfs::{NinePFs, Transport, TransportError};
use uk_vfs::{
    AT_FDCWD, Errno, FileType, O_APPEND, O_CREAT, O_DIRECTORY, O_RDONLY, O_RDWR, O_WRONLY, RamFs,
    TimeChange, Timespec, Vfs, dirents,
};

/// crosvm's server, answering in-process: each request is decoded and answered at once.
struct Crosvm {
    server: p9::Server,
    max: usize,
}

impl Transport for Crosvm {
    fn max_message_size(&self) -> usize {
        self.max
    }

    fn round_trip(&mut self, request: &[u8], reply: &mut [u8]) -> Result<usize, TransportError> {
        let mut out = Vec::new();
        self.server
            .handle_message(&mut &request[..], &mut out)
            .map_err(|_| TransportError::Io)?;
        let target = reply.get_mut(..out.len()).ok_or(TransportError::TooLarge)?;
        target.copy_from_slice(&out);
        Ok(out.len())
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "uk-9pfs-p9-{label}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A VFS with the directory, served by crosvm's server, mounted at `/host`.
fn mount(dir: &TempDir, max: usize) -> (Vfs, Arc<NinePFs>) {
    let server = p9::Server::new(dir.path(), Default::default(), Default::default()).unwrap();
    let fs = NinePFs::mount(Crosvm { server, max }, b"").unwrap();
    let vfs = Vfs::new(RamFs::new());
    vfs.mkdir("/host", 0o755).unwrap();
    vfs.mount("/host", fs.clone()).unwrap();
    (vfs, fs)
}

fn names(vfs: &Vfs, dir: &str, bufsize: usize) -> Vec<String> {
    let fd = vfs.open(dir, O_RDONLY | O_DIRECTORY, 0).unwrap();
    let mut buf = vec![0u8; bufsize];
    let mut out = Vec::new();
    loop {
        let n = vfs.getdents64(fd, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        for d in dirents(&buf[..n]) {
            if d.name != b"." && d.name != b".." {
                out.push(String::from_utf8(d.name.to_vec()).unwrap());
            }
        }
    }
    vfs.close(fd).unwrap();
    out.sort();
    out
}

#[test]
fn files_round_trip_through_crosvm_s_server_in_split_messages() {
    let dir = TempDir::new("io");
    // 8 KiB messages: 100 000 bytes take a dozen writes and reads.
    let (vfs, fs) = mount(&dir, 8192);
    assert_eq!(fs.msize(), 8192);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31 + i / 97) as u8).collect();
    vfs.write_file("/host/big.bin", &data, 0o640).unwrap();
    assert_eq!(fs::read(dir.path().join("big.bin")).unwrap(), data);
    assert_eq!(vfs.read_file("/host/big.bin").unwrap(), data);
    let st = vfs.stat("/host/big.bin").unwrap();
    assert_eq!(st.size, 100_000);
    assert_eq!(st.mode & 0o777, 0o640);
    assert_eq!(st.file_type(), Some(FileType::Regular));
    assert_eq!(
        st.ino,
        fs::metadata(dir.path().join("big.bin")).unwrap().ino()
    );
    // A read across message boundaries at an odd offset, and at the end.
    let fd = vfs.open("/host/big.bin", O_RDONLY, 0).unwrap();
    let mut mid = vec![0u8; 20_000];
    assert_eq!(vfs.pread(fd, &mut mid, 12_345).unwrap(), 20_000);
    assert_eq!(mid, data[12_345..32_345]);
    assert_eq!(vfs.pread(fd, &mut mid, 100_000).unwrap(), 0);
    vfs.close(fd).unwrap();
    // Appends, truncation, and a file the host wrote.
    let fd = vfs
        .open("/host/log", O_CREAT | O_WRONLY | O_APPEND, 0o644)
        .unwrap();
    vfs.write(fd, b"one ").unwrap();
    vfs.write(fd, b"two").unwrap();
    vfs.fsync(fd).unwrap();
    vfs.close(fd).unwrap();
    assert_eq!(fs::read(dir.path().join("log")).unwrap(), b"one two");
    vfs.truncate("/host/log", 3).unwrap();
    assert_eq!(fs::read(dir.path().join("log")).unwrap(), b"one");
    fs::write(dir.path().join("from-host"), b"written on the host").unwrap();
    assert_eq!(
        vfs.read_file("/host/from-host").unwrap(),
        b"written on the host"
    );
}

#[test]
fn directories_links_and_errors_match_the_host() {
    let dir = TempDir::new("tree");
    let (vfs, fs) = mount(&dir, 64 * 1024 + 24);
    let host = dir.path();
    // 150 entries listed through small and large getdents64 buffers.
    vfs.mkdir("/host/many", 0o755).unwrap();
    for i in 0..150 {
        vfs.write_file(format!("/host/many/f{i:03}"), b"x", 0o644)
            .unwrap();
    }
    let expected: Vec<String> = (0..150).map(|i| format!("f{i:03}")).collect();
    assert_eq!(names(&vfs, "/host/many", 128), expected);
    assert_eq!(names(&vfs, "/host/many", 8192), expected);
    assert_eq!(fs::read_dir(host.join("many")).unwrap().count(), 150);
    // Unikraft 0.11's 9pfs ignored chmod, rename, link and lstat (#77).
    vfs.write_file("/host/t", b"target", 0o644).unwrap();
    vfs.chmod("/host/t", 0o600).unwrap();
    assert_eq!(
        fs::metadata(host.join("t")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let when = TimeChange::Set(Timespec {
        sec: 1_234_567,
        nsec: 89,
    });
    vfs.utimensat(AT_FDCWD, Some(b"/host/t"), [TimeChange::Omit, when], 0)
        .unwrap();
    let meta = fs::metadata(host.join("t")).unwrap();
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_234_567, 89));
    vfs.link("/host/t", "/host/hard").unwrap();
    assert_eq!(fs::metadata(host.join("t")).unwrap().nlink(), 2);
    assert_eq!(vfs.stat("/host/hard").unwrap().nlink, 2);
    // crosvm's server refuses to make symbolic links (its policy, EACCES): the refusal
    // reaches the caller and nothing is made. One the host made is read and followed.
    assert_eq!(vfs.symlink("t", "/host/soft"), Err(Errno::EACCES));
    assert!(fs::symlink_metadata(host.join("soft")).is_err());
    std::os::unix::fs::symlink("t", host.join("soft")).unwrap();
    assert_eq!(
        vfs.lstat("/host/soft").unwrap().file_type(),
        Some(FileType::Symlink)
    );
    assert_eq!(vfs.read_file("/host/soft").unwrap(), b"target");
    let mut buf = [0u8; 16];
    let n = vfs.readlink("/host/soft", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"t");
    vfs.rename("/host/t", "/host/many/moved").unwrap();
    assert!(!host.join("t").exists());
    assert_eq!(fs::read(host.join("many/moved")).unwrap(), b"target");
    // The server's errors reach the caller as Linux's.
    assert_eq!(vfs.open("/host/missing", O_RDONLY, 0), Err(Errno::ENOENT));
    assert_eq!(vfs.mkdir("/host/many", 0o755), Err(Errno::EEXIST));
    assert_eq!(vfs.rmdir("/host/many"), Err(Errno::ENOTEMPTY));
    assert_eq!(vfs.open("/host/many", O_RDWR, 0), Err(Errno::EISDIR));
    assert_eq!(vfs.unlink("/host/many"), Err(Errno::EISDIR));
    // Everything removed again through the guest.
    for name in names(&vfs, "/host/many", 4096) {
        vfs.unlink(format!("/host/many/{name}")).unwrap();
    }
    vfs.rmdir("/host/many").unwrap();
    for name in ["hard", "soft"] {
        vfs.unlink(format!("/host/{name}")).unwrap();
    }
    assert_eq!(fs::read_dir(host).unwrap().count(), 0);
    drop(vfs);
    // Every fid the guest took is clunked but the root's (never listed here).
    assert_eq!(fs.open_fids(), 1, "only the root's walked fid");
}
