//! `mmap` of files: private copies (contents, zeros past the end of file, privacy, a
//! property test against a model), shared ramfs mappings (coherent both ways, data kept
//! after `munmap` and `close`, counted per mapping), `/dev/zero`, `msync`, `madvise`, and
//! the errors, each leaving everything as it was.

use proptest::prelude::*;
use uk_posix_process::rlimit::RLIMIT_DATA;
use uk_posix_process::*;
use uk_vfs::{DevFs, O_RDONLY, O_RDWR, O_WRONLY, RamFs, Vfs};

const RW: u32 = PROT_READ | PROT_WRITE;

/// A process layer with its own VFS (ramfs root, devfs on /dev).
fn setup() -> (System, &'static Vfs) {
    let vfs: &'static Vfs = Box::leak(Box::new(Vfs::new(RamFs::new())));
    vfs.mkdir("/dev", 0o755).unwrap();
    vfs.mount("/dev", DevFs::new()).unwrap();
    let sys = System::new();
    sys.set_vfs(vfs);
    sys.set_data_limit_hook(|_| {});
    (sys, vfs)
}

fn bytes(addr: usize, len: usize) -> Vec<u8> {
    // SAFETY: the tests read only what `mmap` mapped and has not been unmapped.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len).to_vec() }
}

fn store(addr: usize, data: &[u8]) {
    // SAFETY: as in `bytes`, for writing.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), addr as *mut u8, data.len()) };
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 4096) as u8 | 1).collect()
}

fn file(vfs: &Vfs, path: &str, data: &[u8], flags: u32) -> i32 {
    vfs.write_file(path, data, 0o644).unwrap();
    vfs.open(path, flags, 0).unwrap()
}

#[test]
fn a_private_mapping_is_a_copy() {
    let (sys, vfs) = setup();
    let data = pattern(PAGE_SIZE + 100);
    let fd = file(vfs, "/f", &data, O_RDONLY);
    let p = sys.mmap(0, 2 * PAGE_SIZE, RW, MAP_PRIVATE, fd, 0).unwrap();
    assert_eq!(p % PAGE_SIZE, 0);
    assert_eq!(bytes(p, data.len()), data);
    assert!(
        bytes(p + data.len(), 2 * PAGE_SIZE - data.len())
            .iter()
            .all(|&b| b == 0),
        "past the end of file: zeros"
    );
    // Stores stay private; later changes of the file do not show through.
    store(p, b"private");
    assert_eq!(vfs.read_file("/f").unwrap(), data);
    vfs.write_file("/f", b"changed", 0o644).unwrap();
    assert_eq!(bytes(p, 7), b"private");
    // At an offset; the descriptor may be closed while mapped.
    let q = sys
        .mmap(0, 10, PROT_READ, MAP_PRIVATE, fd, PAGE_SIZE as u64)
        .unwrap();
    vfs.close(fd).unwrap();
    assert!(
        bytes(q, PAGE_SIZE).iter().all(|&b| b == 0),
        "the file shrank to 7 bytes"
    );
    // MADV_DONTNEED reads the file again; munmap/mprotect work as for anonymous memory.
    store(p, b"XXXXXXX");
    sys.madvise(p, PAGE_SIZE, MADV_DONTNEED).unwrap();
    assert_eq!(bytes(p, 8), b"changed\0");
    assert_eq!(sys.mprotect(p, 2 * PAGE_SIZE, PROT_READ), Ok(()));
    assert_eq!(sys.msync(p, 2 * PAGE_SIZE, MS_SYNC), Ok(()));
    sys.munmap(p, 2 * PAGE_SIZE).unwrap();
    sys.munmap(q, PAGE_SIZE).unwrap();
}

#[test]
fn map_fixed_with_a_file_fills_a_private_mapping() {
    let (sys, vfs) = setup();
    let fd = file(vfs, "/f", b"fixed", O_RDWR);
    let anon = sys
        .mmap(0, 3 * PAGE_SIZE, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        .unwrap();
    store(anon + PAGE_SIZE, &[9; 16]);
    let at = anon + PAGE_SIZE;
    assert_eq!(
        sys.mmap(at, PAGE_SIZE, RW, MAP_PRIVATE | MAP_FIXED, fd, 0),
        Ok(at)
    );
    assert_eq!(bytes(at, 8), b"fixed\0\0\0");
    // A shared file mapping cannot be placed: ENOMEM, nothing changes.
    store(at, b"mine");
    assert_eq!(
        sys.mmap(at, PAGE_SIZE, RW, MAP_SHARED | MAP_FIXED, fd, 0),
        Err(Errno::ENOMEM)
    );
    assert_eq!(bytes(at, 5), b"mined");
    assert_eq!(vfs.fstat(fd).unwrap().blocks, 8);
    assert_eq!(
        sys.mmap(at, PAGE_SIZE, RW, MAP_SHARED | MAP_FIXED, 77, 0),
        Err(Errno::EBADF),
        "the descriptor is checked first"
    );
}

#[test]
fn a_shared_mapping_is_coherent_with_the_file() {
    let (sys, vfs) = setup();
    let fd = file(vfs, "/shm-like", b"hello", O_RDWR);
    let p = sys.mmap(0, 3 * PAGE_SIZE, RW, MAP_SHARED, fd, 0).unwrap();
    assert_eq!(p % PAGE_SIZE, 0);
    assert_eq!(bytes(p, 6), b"hello\0");
    // From here caller memory is only this layer's mappings, so mprotect and msync tell
    // mapped pages from unmapped ones.
    sys.set_address_space(uk_syscall::user::AddressSpace::empty());
    store(p, b"J");
    let mut buf = [0u8; 5];
    assert_eq!(vfs.pread(fd, &mut buf, 0), Ok(5));
    assert_eq!(&buf, b"Jello");
    vfs.pwrite(fd, b"page two", PAGE_SIZE as i64).unwrap();
    assert_eq!(bytes(p + PAGE_SIZE, 8), b"page two");
    // msync has nothing to write back; madvise keeps shared contents.
    assert_eq!(
        sys.msync(p, 3 * PAGE_SIZE, MS_ASYNC | MS_INVALIDATE),
        Ok(())
    );
    assert_eq!(sys.madvise(p, 3 * PAGE_SIZE, MADV_DONTNEED), Ok(()));
    assert_eq!(bytes(p, 5), b"Jello");
    assert_eq!(sys.mprotect(p, 3 * PAGE_SIZE, PROT_READ), Ok(()));
    // A second mapping of the same pages is the same memory; munmap of one leaves the
    // other mapped.
    let q = sys
        .mmap(0, PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0)
        .unwrap();
    assert_eq!(q, p);
    sys.munmap(q, PAGE_SIZE).unwrap();
    assert_eq!(sys.mprotect(p, 3 * PAGE_SIZE, PROT_READ), Ok(()));
    // Data survives munmap and close.
    store(p + 1, b"ELLO");
    sys.munmap(p, 3 * PAGE_SIZE).unwrap();
    assert_eq!(sys.mprotect(p, PAGE_SIZE, PROT_READ), Err(Errno::ENOMEM));
    assert_eq!(sys.msync(p, PAGE_SIZE, MS_SYNC), Err(Errno::ENOMEM));
    vfs.close(fd).unwrap();
    let data = vfs.read_file("/shm-like").unwrap();
    assert_eq!(&data[..5], b"JELLO");
    assert_eq!(&data[PAGE_SIZE..], b"page two");
}

#[test]
fn shared_file_mappings_are_not_data_but_private_ones_are() {
    let (sys, vfs) = setup();
    sys.setrlimit(
        RLIMIT_DATA,
        Rlimit {
            rlim_cur: 2 * PAGE_SIZE as u64,
            rlim_max: u64::MAX,
        },
    )
    .unwrap();
    let fd = file(vfs, "/f", &pattern(4 * PAGE_SIZE), O_RDWR);
    let s = sys.mmap(0, 4 * PAGE_SIZE, RW, MAP_SHARED, fd, 0).unwrap();
    assert_eq!(
        sys.mmap(0, 3 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, 0),
        Err(Errno::ENOMEM)
    );
    let p = sys
        .mmap(0, 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, 0)
        .unwrap();
    assert_eq!(bytes(p, 2 * PAGE_SIZE), pattern(2 * PAGE_SIZE));
    assert_eq!(
        sys.mmap(0, 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
        Err(Errno::ENOMEM)
    );
    sys.munmap(p, 2 * PAGE_SIZE).unwrap();
    assert!(
        sys.mmap(0, 1, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            .is_ok()
    );
    sys.munmap(s, 4 * PAGE_SIZE).unwrap();
}

#[test]
fn dev_zero_maps_as_anonymous_memory() {
    let (sys, vfs) = setup();
    let fd = vfs.open("/dev/zero", O_RDWR, 0).unwrap();
    for flags in [MAP_PRIVATE, MAP_SHARED] {
        let p = sys.mmap(0, 2 * PAGE_SIZE, RW, flags, fd, 0).unwrap();
        assert!(bytes(p, 2 * PAGE_SIZE).iter().all(|&b| b == 0));
        store(p, b"x");
        sys.munmap(p, 2 * PAGE_SIZE).unwrap();
    }
}

#[test]
fn bad_requests_change_nothing() {
    let (sys, vfs) = setup();
    let rw = file(vfs, "/f", b"content", O_RDWR);
    let ro = vfs.open("/f", O_RDONLY, 0).unwrap();
    let wo = vfs.open("/f", O_WRONLY, 0).unwrap();
    let before = vfs.fstat(rw).unwrap();
    let cases: &[(usize, u32, u32, i32, u64, Errno)] = &[
        (PAGE_SIZE, PROT_READ, MAP_PRIVATE, 42, 0, Errno::EBADF),
        (PAGE_SIZE, PROT_READ, MAP_PRIVATE, -1, 0, Errno::EBADF),
        (PAGE_SIZE, PROT_READ, MAP_PRIVATE, wo, 0, Errno::EACCES),
        (PAGE_SIZE, RW, MAP_SHARED, ro, 0, Errno::EACCES),
        (PAGE_SIZE, PROT_READ, MAP_SHARED, wo, 0, Errno::EACCES),
        (0, PROT_READ, MAP_PRIVATE, rw, 0, Errno::EINVAL),
        (PAGE_SIZE, PROT_READ, MAP_PRIVATE, rw, 100, Errno::EINVAL),
        (
            PAGE_SIZE,
            PROT_READ,
            MAP_SHARED | MAP_PRIVATE | 0x400_0000,
            rw,
            0,
            Errno::EOPNOTSUPP,
        ),
        (
            PAGE_SIZE,
            PROT_READ,
            MAP_PRIVATE,
            rw,
            i64::MAX as u64 & !4095,
            Errno::EOVERFLOW,
        ),
    ];
    for &(len, prot, flags, fd, offset, errno) in cases {
        assert_eq!(
            sys.mmap(0, len, prot, flags, fd, offset),
            Err(errno),
            "len {len} prot {prot} flags {flags:#x} fd {fd} offset {offset}"
        );
    }
    let dir = vfs.open("/dev", O_RDONLY, 0).unwrap();
    let [r, _w] = vfs.pipe2(0).unwrap();
    let null = vfs.open("/dev/null", O_RDWR, 0).unwrap();
    for fd in [dir, r, null] {
        assert_eq!(
            sys.mmap(0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, fd, 0),
            Err(Errno::ENODEV)
        );
    }
    assert_eq!(sys.msync(1, PAGE_SIZE, MS_SYNC), Err(Errno::EINVAL));
    assert_eq!(
        sys.msync(0x1000, PAGE_SIZE, MS_SYNC | MS_ASYNC),
        Err(Errno::EINVAL)
    );
    assert_eq!(sys.msync(0x1000, PAGE_SIZE, 8), Err(Errno::EINVAL));
    let after = vfs.fstat(rw).unwrap();
    assert_eq!(
        (after.size, after.blocks, after.mtime),
        (before.size, before.blocks, before.mtime)
    );
    assert_eq!(vfs.read_file("/f").unwrap(), b"content");
    assert_eq!(sys.data_peak(), 0, "nothing was mapped");
}

#[test]
fn truncating_or_unlinking_a_mapped_file_keeps_the_memory() {
    let (sys, vfs) = setup();
    let fd = file(vfs, "/f", &pattern(2 * PAGE_SIZE), O_RDWR);
    let p = sys.mmap(0, 2 * PAGE_SIZE, RW, MAP_SHARED, fd, 0).unwrap();
    vfs.ftruncate(fd, 0).unwrap();
    assert!(bytes(p, 2 * PAGE_SIZE).iter().all(|&b| b == 0));
    vfs.unlink("/f").unwrap();
    vfs.close(fd).unwrap();
    store(p, b"alive");
    assert_eq!(bytes(p, 5), b"alive");
    sys.munmap(p, 2 * PAGE_SIZE).unwrap();
}

/// What a private mapping of `len` bytes at `offset` of a file holding `data` reads.
fn model(data: &[u8], offset: usize, len: usize) -> Vec<u8> {
    let bytes = len.div_ceil(PAGE_SIZE) * PAGE_SIZE;
    (0..bytes)
        .map(|i| data.get(offset + i).copied().unwrap_or(0))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn private_mappings_match_the_model(
        size in 0usize..4 * PAGE_SIZE + 10,
        offset_pages in 0usize..5,
        len in 1usize..3 * PAGE_SIZE + 10,
        shared_first in any::<bool>(),
    ) {
        let (sys, vfs) = setup();
        let data = pattern(size);
        let fd = file(vfs, "/f", &data, O_RDWR);
        // A shared mapping first moves the file's pages into a run: private copies read
        // through it the same.
        let s = shared_first.then(|| sys.mmap(0, PAGE_SIZE, RW, MAP_SHARED, fd, 0).unwrap());
        let offset = offset_pages * PAGE_SIZE;
        let p = sys.mmap(0, len, RW, MAP_PRIVATE, fd, offset as u64).unwrap();
        let want = model(&data, offset, len);
        prop_assert_eq!(bytes(p, want.len()), want);
        store(p, &[0xEE; 3]);
        prop_assert_eq!(vfs.read_file("/f").unwrap(), data);
        sys.munmap(p, len).unwrap();
        if let Some(s) = s {
            sys.munmap(s, PAGE_SIZE).unwrap();
        }
    }
}

#[test]
fn msync_is_registered() {
    use uk_syscall::{Sysno, dispatch};
    // Checks that touch no mapping: the handler answers (ENOSYS without it).
    let einval = -(Errno::EINVAL.into_raw() as isize);
    assert_eq!(
        dispatch(Sysno::msync as usize, &[1, 4096, 4, 0, 0, 0]),
        einval
    );
    assert_eq!(
        dispatch(Sysno::msync as usize, &[4096, 4096, 5, 0, 0, 0]),
        einval
    );
    assert_eq!(dispatch(Sysno::msync as usize, &[4096, 0, 4, 0, 0, 0]), 0);
}
