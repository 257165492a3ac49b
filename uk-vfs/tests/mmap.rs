//! `Vfs::map_file`: Linux's checks of a descriptor for `mmap`, and ramfs's shared mappings
//! (the file's own memory, coherent with `read` and `write`, alive while mapped).

use std::any::Any;
use std::sync::Arc;

use uk_vfs::mmap::MAP_PAGE;
use uk_vfs::{
    DevFs, Errno, FileMap, FileSystem, FileType, MapKind, O_APPEND, O_CREAT, O_DIRECTORY, O_PATH,
    O_RDONLY, O_RDWR, O_WRONLY, RamFs, SharedMap, Stat, Vfs, Vnode, VnodeRef,
};

fn vfs() -> Vfs {
    let vfs = Vfs::new(RamFs::new());
    vfs.mkdir("/dev", 0o755).unwrap();
    vfs.mount("/dev", DevFs::new()).unwrap();
    vfs
}

fn shared(vfs: &Vfs, fd: i32, first_page: u64, pages: usize) -> Result<SharedMap, Errno> {
    match vfs.map_file(fd, first_page * MAP_PAGE as u64, pages, true, true)? {
        FileMap::Shared(m) => Ok(m),
        other => panic!("not a shared mapping: {other:?}"),
    }
}

/// The mapping's bytes `[at, at + len)`.
fn peek(m: &SharedMap, at: usize, len: usize) -> Vec<u8> {
    assert!(at + len <= m.pages() * MAP_PAGE);
    // SAFETY: the range lies in the mapping (checked above), whose memory lives while `m`
    // does; nothing else touches it during the copy.
    unsafe { std::slice::from_raw_parts((m.addr() + at) as *const u8, len).to_vec() }
}

/// Stores `bytes` at `at` through the mapping.
fn poke(m: &SharedMap, at: usize, bytes: &[u8]) {
    assert!(at + bytes.len() <= m.pages() * MAP_PAGE);
    // SAFETY: as in `peek`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (m.addr() + at) as *mut u8, bytes.len())
    };
}

fn pread(vfs: &Vfs, fd: i32, at: i64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    let n = vfs.pread(fd, &mut buf, at).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn descriptors_are_checked_as_linux_does() {
    let vfs = vfs();
    vfs.write_file("/f", b"data", 0o644).unwrap();
    let ro = vfs.open("/f", O_RDONLY, 0).unwrap();
    let wo = vfs.open("/f", O_WRONLY, 0).unwrap();
    let rw = vfs.open("/f", O_RDWR, 0).unwrap();
    let before = vfs.stat("/f").unwrap();
    assert_eq!(
        vfs.map_file(99, 0, 1, false, false).err(),
        Some(Errno::EBADF)
    );
    assert_eq!(
        vfs.map_file(-1, 0, 1, false, false).err(),
        Some(Errno::EBADF)
    );
    // Not open for reading: EACCES, private or shared; shared and writable needs O_RDWR.
    assert_eq!(
        vfs.map_file(wo, 0, 1, false, false).err(),
        Some(Errno::EACCES)
    );
    assert_eq!(
        vfs.map_file(wo, 0, 1, true, true).err(),
        Some(Errno::EACCES)
    );
    assert_eq!(
        vfs.map_file(ro, 0, 1, true, true).err(),
        Some(Errno::EACCES)
    );
    assert!(matches!(
        vfs.map_file(ro, 0, 1, false, true),
        Ok(FileMap::Private(_))
    ));
    // Past the largest file offset.
    let last = (i64::MAX as u64) & !(MAP_PAGE as u64 - 1);
    assert_eq!(
        vfs.map_file(rw, last, 1, false, false).err(),
        Some(Errno::EOVERFLOW)
    );
    assert_eq!(
        vfs.map_file(rw, 0, usize::MAX, false, false).err(),
        Some(Errno::EOVERFLOW)
    );
    // What has no mmap: directories, pipes, eventfds, epoll sets, devices but /dev/zero.
    let dir = vfs.open("/dev", O_RDONLY | O_DIRECTORY, 0).unwrap();
    assert_eq!(
        vfs.map_file(dir, 0, 1, false, false).err(),
        Some(Errno::ENODEV)
    );
    let [r, w] = vfs.pipe2(0).unwrap();
    assert_eq!(
        vfs.map_file(r, 0, 1, false, false).err(),
        Some(Errno::ENODEV)
    );
    assert_eq!(
        vfs.map_file(w, 0, 1, false, false).err(),
        Some(Errno::EACCES)
    );
    let efd = vfs.eventfd2(0, 0).unwrap();
    assert_eq!(
        vfs.map_file(efd, 0, 1, false, false).err(),
        Some(Errno::ENODEV)
    );
    let ep = vfs.epoll_create1(0).unwrap();
    assert_eq!(
        vfs.map_file(ep, 0, 1, true, false).err(),
        Some(Errno::ENODEV)
    );
    for dev in ["/dev/null", "/dev/urandom", "/dev/console"] {
        let fd = vfs.open(dev, O_RDWR, 0).unwrap();
        assert_eq!(
            vfs.map_file(fd, 0, 1, false, false).err(),
            Some(Errno::ENODEV),
            "{dev}"
        );
    }
    let zero = vfs.open("/dev/zero", O_RDWR, 0).unwrap();
    assert!(matches!(
        vfs.map_file(zero, 0, 4, false, true),
        Ok(FileMap::Zero)
    ));
    assert!(matches!(
        vfs.map_file(zero, 0, 4, true, true),
        Ok(FileMap::Zero)
    ));
    let zero_ro = vfs.open("/dev/zero", O_RDONLY, 0).unwrap();
    assert_eq!(
        vfs.map_file(zero_ro, 0, 1, true, true).err(),
        Some(Errno::EACCES)
    );
    // O_PATH descriptors are not for mapping.
    if let Ok(p) = vfs.open("/f", O_PATH, 0) {
        assert_eq!(
            vfs.map_file(p, 0, 1, false, false).err(),
            Some(Errno::EBADF)
        );
    }
    // O_APPEND does not matter (Linux checks the inode's append-only attribute, which
    // ramfs does not have).
    let app = vfs.open("/f", O_RDWR | O_APPEND, 0).unwrap();
    assert!(shared(&vfs, app, 0, 1).is_ok());
    // The refusals changed nothing (the accepted shared mapping above moved the page but
    // kept its bytes).
    let after = vfs.stat("/f").unwrap();
    assert_eq!((after.size, after.mtime), (before.size, before.mtime));
    assert_eq!(vfs.read_file("/f").unwrap(), b"data");
    assert_eq!(
        vfs.map_check(rw, 0, 1, true, true).map(|(_, k)| k).ok(),
        Some(MapKind::File)
    );
}

#[test]
fn a_shared_mapping_is_the_files_memory() {
    let vfs = vfs();
    let fd = vfs.open("/f", O_CREAT | O_RDWR, 0o644).unwrap();
    vfs.write(fd, b"hello").unwrap();
    let m = shared(&vfs, fd, 0, 2).unwrap();
    assert_eq!(m.addr() % MAP_PAGE, 0, "page-aligned");
    assert_eq!(m.pages(), 2);
    assert_eq!(
        peek(&m, 0, 8),
        b"hello\0\0\0",
        "past the end of file: zeros"
    );
    // A store through the mapping is what read sees, a write what the mapping sees.
    poke(&m, 1, b"E");
    assert_eq!(pread(&vfs, fd, 0, 16), b"hEllo");
    vfs.pwrite(fd, b"WORLD", 0).unwrap();
    assert_eq!(peek(&m, 0, 5), b"WORLD");
    vfs.pwrite(fd, b"second page", MAP_PAGE as i64 + 3).unwrap();
    assert_eq!(peek(&m, MAP_PAGE + 3, 11), b"second page");
    assert_eq!(
        peek(&m, 5, 3),
        b"\0\0\0",
        "the gap a write opens reads as zeros"
    );
    // Mapping the same pages again, or some of them, gives the same memory.
    let again = shared(&vfs, fd, 0, 2).unwrap();
    assert_eq!(again.addr(), m.addr());
    let second = shared(&vfs, fd, 1, 1).unwrap();
    assert_eq!(second.addr(), m.addr() + MAP_PAGE);
    // A range the live run cannot hold: ENOMEM, nothing moves.
    assert_eq!(shared(&vfs, fd, 1, 2).err(), Some(Errno::ENOMEM));
    assert_eq!(peek(&second, 3, 11), b"second page");
    drop((again, second));
    // The file keeps its data after the mapping and the descriptor are gone.
    poke(&m, 0, b"w");
    drop(m);
    vfs.close(fd).unwrap();
    let data = vfs.read_file("/f").unwrap();
    assert_eq!(data.len(), MAP_PAGE + 14);
    assert_eq!(&data[..5], b"wORLD");
    assert_eq!(&data[MAP_PAGE + 3..], b"second page");
    // With no live mapping the pages can move into a differently laid out run.
    let fd = vfs.open("/f", O_RDWR, 0).unwrap();
    let wide = shared(&vfs, fd, 1, 2).unwrap();
    assert_eq!(peek(&wide, 3, 11), b"second page");
    assert_eq!(pread(&vfs, fd, 0, 5), b"wORLD");
}

#[test]
fn truncation_and_unlinking_never_free_mapped_memory() {
    let vfs = vfs();
    let fd = vfs.open("/f", O_CREAT | O_RDWR, 0o644).unwrap();
    vfs.write(fd, &[7u8; 3 * MAP_PAGE]).unwrap();
    let m = shared(&vfs, fd, 0, 3).unwrap();
    // Truncating into the mapping: the tail of the partial page and the pages past the
    // end read as zeros; the memory stays valid.
    vfs.ftruncate(fd, 10).unwrap();
    assert_eq!(peek(&m, 0, 10), [7u8; 10]);
    assert!(peek(&m, 10, 3 * MAP_PAGE - 10).iter().all(|&b| b == 0));
    // Stores past the end are not file data; growing the file zeroes them first.
    poke(&m, 2 * MAP_PAGE, b"lost");
    assert_eq!(vfs.fstat(fd).unwrap().size, 10);
    vfs.ftruncate(fd, 3 * MAP_PAGE as i64).unwrap();
    assert_eq!(peek(&m, 2 * MAP_PAGE, 4), b"\0\0\0\0");
    // After growing, the mapping and the file share the pages again.
    poke(&m, 2 * MAP_PAGE, b"kept");
    assert_eq!(pread(&vfs, fd, 2 * MAP_PAGE as i64, 4), b"kept");
    vfs.pwrite(fd, b"both", MAP_PAGE as i64).unwrap();
    assert_eq!(peek(&m, MAP_PAGE, 4), b"both");
    // Unlinked and closed: the mapping alone keeps the memory.
    vfs.unlink("/f").unwrap();
    vfs.close(fd).unwrap();
    poke(&m, 0, b"still here");
    assert_eq!(peek(&m, 0, 10), b"still here");
    drop(m);
}

#[test]
fn truncation_drops_pages_no_mapping_holds() {
    let vfs = vfs();
    let fd = vfs.open("/f", O_CREAT | O_RDWR, 0o644).unwrap();
    vfs.write(fd, &[1u8; 2 * MAP_PAGE]).unwrap();
    drop(shared(&vfs, fd, 0, 4).unwrap());
    let blocks = |vfs: &Vfs| vfs.fstat(fd).unwrap().blocks;
    assert_eq!(
        blocks(&vfs),
        4 * 8,
        "the mapped pages past the end belong to the file"
    );
    vfs.ftruncate(fd, 0).unwrap();
    assert_eq!(blocks(&vfs), 0);
    vfs.ftruncate(fd, MAP_PAGE as i64).unwrap();
    assert_eq!(pread(&vfs, fd, 0, 4), [0; 4]);
}

/// A filesystem whose one file `/f` reads from a buffer and cannot share pages.
struct Remote(Arc<RemoteDir>);
struct RemoteDir;
struct RemoteFile;

impl FileSystem for Remote {
    fn name(&self) -> &'static str {
        "remote"
    }
    fn root(&self) -> VnodeRef {
        self.0.clone()
    }
}

impl Vnode for RemoteDir {
    fn stat(&self) -> Stat {
        Stat {
            mode: 0o040755,
            ..Stat::default()
        }
    }
    fn file_type(&self) -> FileType {
        FileType::Directory
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn lookup(&self, name: &[u8]) -> Result<VnodeRef, Errno> {
        if name == b"f" {
            Ok(Arc::new(RemoteFile))
        } else {
            Err(Errno::ENOENT)
        }
    }
}

impl Vnode for RemoteFile {
    fn stat(&self) -> Stat {
        Stat {
            mode: 0o100644,
            size: 3,
            ..Stat::default()
        }
    }
    fn file_type(&self) -> FileType {
        FileType::Regular
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn read_at(&self, offset: u64, buf: &mut [u8], _nonblock: bool) -> Result<usize, Errno> {
        let data: &[u8] = b"abc";
        let from = (offset as usize).min(3);
        let n = buf.len().min(3 - from);
        buf[..n].copy_from_slice(&data[from..from + n]);
        Ok(n)
    }
}

#[test]
fn other_filesystems_map_private_copies_only() {
    let vfs = Vfs::new(Arc::new(Remote(Arc::new(RemoteDir))));
    let fd = vfs.open("/f", O_RDWR, 0).unwrap();
    assert!(matches!(
        vfs.map_file(fd, 0, 1, false, true),
        Ok(FileMap::Private(_))
    ));
    assert_eq!(
        vfs.map_file(fd, 0, 1, true, false).err(),
        Some(Errno::ENODEV)
    );
    assert_eq!(
        vfs.map_check(fd, 0, 1, true, false).map(|(_, k)| k).ok(),
        Some(MapKind::File),
        "the check alone does not ask the filesystem"
    );
}

mod coherence {
    use proptest::prelude::*;

    use super::*;

    const PAGES: usize = 3;
    const SPAN: usize = PAGES * MAP_PAGE;

    #[derive(Debug, Clone)]
    enum Op {
        /// pwrite of `len` bytes of `byte` at `at`.
        Write { at: usize, len: usize, byte: u8 },
        /// A store through the mapping at `at` (past the end of file too).
        Store { at: usize, byte: u8 },
        /// ftruncate.
        Truncate(usize),
        /// Unmap, then map pages `[first, first + PAGES)`.
        Remap(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..SPAN + 100, 1usize..3000, any::<u8>()).prop_map(|(at, len, byte)| Op::Write {
                at,
                len,
                byte
            }),
            (0..SPAN, any::<u8>()).prop_map(|(at, byte)| Op::Store { at, byte }),
            (0..SPAN + 100).prop_map(Op::Truncate),
            (0u64..2).prop_map(Op::Remap),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// A shared mapping and the file agree after any sequence of writes, stores,
        /// truncations and remappings: the mapping shows the file's bytes, and past the
        /// end of file what it stored there since the file last grew over or shrank below
        /// those bytes (else zeros); `pread` and the size are the model's.
        #[test]
        fn the_mapping_and_the_file_agree(ops in proptest::collection::vec(op(), 1..30)) {
            let vfs = vfs();
            let fd = vfs.open("/f", O_CREAT | O_RDWR, 0o644).unwrap();
            let mut model: Vec<u8> = Vec::new();
            // Stores past the end of file, by file offset.
            let mut ghosts = std::collections::BTreeMap::<usize, u8>::new();
            let mut first = 0u64;
            let mut map = shared(&vfs, fd, first, PAGES).unwrap();
            for op in ops {
                match op {
                    Op::Write { at, len, byte } => {
                        prop_assert_eq!(vfs.pwrite(fd, &vec![byte; len], at as i64), Ok(len));
                        if model.len() < at + len {
                            ghosts.retain(|&k, _| k >= at + len);
                            model.resize(at + len, 0);
                        }
                        model[at..at + len].fill(byte);
                    }
                    Op::Store { at, byte } => {
                        let file_at = first as usize * MAP_PAGE + at;
                        poke(&map, at, &[byte]);
                        match model.get_mut(file_at) {
                            Some(b) => *b = byte,
                            None => {
                                ghosts.insert(file_at, byte);
                            }
                        }
                    }
                    Op::Truncate(len) => {
                        vfs.ftruncate(fd, len as i64).unwrap();
                        if len < model.len() {
                            ghosts.clear();
                        } else {
                            ghosts.retain(|&k, _| k >= len);
                        }
                        model.resize(len, 0);
                    }
                    Op::Remap(to) => {
                        drop(map);
                        first = to;
                        map = shared(&vfs, fd, first, PAGES).unwrap();
                    }
                }
                let base = first as usize * MAP_PAGE;
                let seen = peek(&map, 0, SPAN);
                let want: Vec<u8> = (0..SPAN)
                    .map(|i| {
                        let at = base + i;
                        model
                            .get(at)
                            .or_else(|| ghosts.get(&at))
                            .copied()
                            .unwrap_or(0)
                    })
                    .collect();
                prop_assert_eq!(seen, want);
                prop_assert_eq!(pread(&vfs, fd, 0, SPAN + 4000), model.clone());
                prop_assert_eq!(vfs.fstat(fd).unwrap().size, model.len() as u64);
            }
        }
    }
}
