//! memfd_create and seals: fixed cases (the file has no name, shares pages with mappings,
//! and every flag and seal rule), and a differential property test: random sequences of
//! writes, truncations, allocations, seals and mode changes on a memfd give the results,
//! errnos, sizes and contents Linux gives on its own memfd.

use proptest::prelude::*;
use uk_vfs::*;

fn vfs() -> Vfs {
    Vfs::new(RamFs::new())
}

#[test]
fn a_memfd_is_an_unnamed_read_write_file() {
    let v = vfs();
    let fd = v.memfd_create(b"buffer", MFD_CLOEXEC).unwrap();
    assert_eq!(v.fcntl(fd, F_GETFD, 0), Ok(FD_CLOEXEC as usize));
    assert_eq!(
        v.fcntl(fd, F_GETFL, 0).map(|f| f as u32 & O_ACCMODE),
        Ok(O_RDWR)
    );
    assert_eq!(v.write(fd, b"hello"), Ok(5));
    assert_eq!(v.lseek(fd, 0, SEEK_SET), Ok(0));
    let mut buf = [0u8; 5];
    assert_eq!(v.read(fd, &mut buf), Ok(5));
    assert_eq!(&buf, b"hello");
    let st = v.fstat(fd).unwrap();
    assert_eq!(
        (st.mode & S_IFMT, st.mode & 0o777, st.size),
        (S_IFREG, 0o777, 5)
    );
    assert_eq!(st.nlink, 0, "no directory names it");
    // Two memfds of one name are two files.
    let other = v.memfd_create(b"buffer", 0).unwrap();
    assert_eq!(v.fstat(other).unwrap().size, 0);
    assert_ne!(v.fstat(other).unwrap().ino, st.ino);
    assert_eq!(v.fcntl(other, F_GETFD, 0), Ok(0));
    // Without MFD_ALLOW_SEALING it is sealed against seals.
    assert_eq!(v.fcntl(other, F_GET_SEALS, 0), Ok(F_SEAL_SEAL as usize));
    assert_eq!(
        v.fcntl(other, F_ADD_SEALS, F_SEAL_GROW as usize),
        Err(Errno::EPERM)
    );
    // Ordinary files take no seals either (tmpfs's rule), pipes none at all.
    v.write_file("/plain", b"x", 0o644).unwrap();
    let plain = v.open("/plain", O_RDWR, 0).unwrap();
    assert_eq!(v.fcntl(plain, F_GET_SEALS, 0), Ok(F_SEAL_SEAL as usize));
    let [r, w] = v.pipe2(0).unwrap();
    assert_eq!(v.fcntl(r, F_GET_SEALS, 0), Err(Errno::EINVAL));
    for f in [fd, other, plain, r, w] {
        v.close(f).unwrap();
    }
}

#[test]
fn flags_and_names_are_checked() {
    let v = vfs();
    assert_eq!(v.memfd_create(b"x", 0x100), Err(Errno::EINVAL));
    assert_eq!(v.memfd_create(b"x", MFD_HUGETLB), Err(Errno::EINVAL));
    assert_eq!(
        v.memfd_create(b"x", MFD_EXEC | MFD_NOEXEC_SEAL),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        v.memfd_create(&[b'n'; MFD_NAME_MAX + 1], 0),
        Err(Errno::EINVAL)
    );
    let long = v.memfd_create(&[b'n'; MFD_NAME_MAX], 0).unwrap();
    // MFD_NOEXEC_SEAL: 0666 and sealed so, and sealing allowed.
    let noexec = v.memfd_create(b"", MFD_NOEXEC_SEAL).unwrap();
    assert_eq!(v.fstat(noexec).unwrap().mode & 0o777, 0o666);
    assert_eq!(v.fcntl(noexec, F_GET_SEALS, 0), Ok(F_SEAL_EXEC as usize));
    assert_eq!(v.fchmod(noexec, 0o755), Err(Errno::EPERM));
    assert_eq!(
        v.fchmod(noexec, 0o600),
        Ok(()),
        "the execute bits stay as they are"
    );
    assert_eq!(v.fcntl(noexec, F_ADD_SEALS, F_SEAL_SHRINK as usize), Ok(0));
    for f in [long, noexec] {
        v.close(f).unwrap();
    }
}

#[test]
fn seals_fix_size_and_contents() {
    let v = vfs();
    let fd = v.memfd_create(b"sealed", MFD_ALLOW_SEALING).unwrap();
    assert_eq!(v.fcntl(fd, F_GET_SEALS, 0), Ok(0));
    assert_eq!(v.write(fd, &[1u8; 100]), Ok(100));
    assert_eq!(
        v.fcntl(fd, F_ADD_SEALS, 0x40),
        Err(Errno::EINVAL),
        "unknown seal"
    );
    assert_eq!(
        v.fcntl(fd, F_ADD_SEALS, (F_SEAL_SHRINK | F_SEAL_GROW) as usize),
        Ok(0)
    );
    assert_eq!(v.ftruncate(fd, 50), Err(Errno::EPERM));
    assert_eq!(v.ftruncate(fd, 200), Err(Errno::EPERM));
    assert_eq!(v.ftruncate(fd, 100), Ok(()));
    assert_eq!(v.pwrite(fd, b"ab", 99), Err(Errno::EPERM), "past the end");
    assert_eq!(v.pwrite(fd, b"ab", 10), Ok(2), "inside");
    assert_eq!(v.fallocate(fd, 0, 0, 4096), Err(Errno::EPERM));
    assert_eq!(
        v.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 4096),
        Err(Errno::EPERM),
        "past the end even keeping the size, as Linux"
    );
    assert_eq!(v.fallocate(fd, 0, 0, 100), Ok(()), "inside");
    // A read-only descriptor may not add seals.
    let ro = v.memfd_create(b"ro", MFD_ALLOW_SEALING).unwrap();
    v.fcntl(ro, F_SETFL, 0).unwrap();
    assert_eq!(v.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE as usize), Ok(0));
    assert_eq!(v.write(fd, b"x"), Err(Errno::EPERM));
    assert_eq!(v.pwrite(fd, b"x", 0), Err(Errno::EPERM));
    assert_eq!(v.map_file(fd, 0, 1, true, true).err(), Some(Errno::EPERM));
    assert!(
        v.map_file(fd, 0, 1, true, false).is_ok(),
        "read-only stays allowed"
    );
    assert!(
        v.map_file(fd, 0, 1, false, true).is_ok(),
        "private copies too"
    );
    assert_eq!(v.fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL as usize), Ok(0));
    assert_eq!(v.fcntl(fd, F_ADD_SEALS, 0), Err(Errno::EPERM));
    assert_eq!(
        v.fcntl(fd, F_GET_SEALS, 0),
        Ok((F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) as usize)
    );
    v.close(ro).unwrap();
    v.close(fd).unwrap();
}

#[test]
fn write_seals_and_shared_mappings() {
    let v = vfs();
    let fd = v.memfd_create(b"mapped", MFD_ALLOW_SEALING).unwrap();
    v.ftruncate(fd, 8192).unwrap();
    let map = match v.map_file(fd, 0, 2, true, true).unwrap() {
        uk_vfs::mmap::FileMap::Shared(m) => m,
        _ => panic!("a shared mapping"),
    };
    // The mapping and the file share their pages.
    // SAFETY: the mapping's two pages are live while `map` is.
    unsafe { (map.addr() as *mut u8).write(0x5a) };
    let mut b = [0u8; 1];
    assert_eq!(v.pread(fd, &mut b, 0), Ok(1));
    assert_eq!(b[0], 0x5a);
    // F_SEAL_WRITE waits for the mapping to go; F_SEAL_FUTURE_WRITE does not.
    assert_eq!(
        v.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE as usize),
        Err(Errno::EBUSY)
    );
    assert_eq!(
        v.fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE as usize),
        Ok(0)
    );
    assert_eq!(v.write(fd, b"x"), Err(Errno::EPERM));
    assert_eq!(v.map_file(fd, 0, 1, true, true).err(), Some(Errno::EPERM));
    drop(map);
    assert_eq!(v.fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE as usize), Ok(0));
    v.close(fd).unwrap();
}

#[test]
fn the_raw_call_reads_the_name_after_the_flags() {
    use uk_syscall::{Sysno, dispatch};
    let sys = |args: [usize; 6]| dispatch(Sysno::memfd_create as usize, &args);
    let err = |e: Errno| -(e.into_raw() as isize);
    let name = c"raw";
    let fd = sys([name.as_ptr() as usize, MFD_CLOEXEC as usize, 0, 0, 0, 0]);
    assert!(fd >= 0, "{fd}");
    assert_eq!(
        sys([8, 0x100, 0, 0, 0, 0]),
        err(Errno::EINVAL),
        "flags first"
    );
    assert_eq!(sys([8, 0, 0, 0, 0, 0]), err(Errno::EFAULT));
    let long = [b'n'; 400];
    assert_eq!(
        sys([long.as_ptr() as usize, 0, 0, 0, 0, 0]),
        err(Errno::EINVAL)
    );
    global::vfs().close(fd as Fd).unwrap();
}

/// One step of the differential test.
#[derive(Clone, Debug)]
enum Op {
    Pwrite(u16, u16),
    Ftruncate(i32),
    /// offset, length, keep size
    Fallocate(u16, u16, bool),
    AddSeals(u32),
    GetSeals,
    Fchmod(u32),
    ReadAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u16..9000, 0u16..5000).prop_map(|(a, b)| Op::Pwrite(a, b)),
        2 => (-5i32..12000).prop_map(Op::Ftruncate),
        1 => (0u16..9000, 0u16..9000, any::<bool>()).prop_map(|(a, b, c)| Op::Fallocate(a, b, c)),
        2 => (0u32..64).prop_map(Op::AddSeals),
        1 => Just(Op::GetSeals),
        1 => prop_oneof![Just(0o777u32), Just(0o666), Just(0o700), Just(0o644)].prop_map(Op::Fchmod),
        1 => Just(Op::ReadAll),
    ]
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A result both sides produce: a value or an errno.
fn host(r: i64) -> Result<i64, i32> {
    if r < 0 { Err(errno()) } else { Ok(r) }
}

fn ours<T: TryInto<i64>>(r: Result<T, Errno>) -> Result<i64, i32> {
    r.map(|v| v.try_into().ok().unwrap_or(-1))
        .map_err(|e| e.into_raw())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn memfd_and_seals_same_as_linux(
        sealing in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..30),
    ) {
        let v = vfs();
        let flags = if sealing { MFD_ALLOW_SEALING } else { 0 };
        let u = v.memfd_create(b"diff", flags).unwrap();
        // SAFETY: a NUL-terminated name; the descriptor is this test's.
        let h = unsafe { libc::memfd_create(c"diff".as_ptr(), flags) };
        prop_assert!(h >= 0);
        for (step, op) in ops.iter().enumerate() {
            // SAFETY: every libc call gets this test's descriptor and buffers that live
            // across the call with the lengths passed.
            let (a, b) = unsafe {
                match *op {
                    Op::Pwrite(at, len) => {
                        let data = vec![(at % 251) as u8; len as usize];
                        (
                            ours(v.pwrite(u, &data, i64::from(at))),
                            host(libc::pwrite(h, data.as_ptr().cast(), data.len(), i64::from(at)) as i64),
                        )
                    }
                    Op::Ftruncate(len) => (
                        ours(v.ftruncate(u, i64::from(len)).map(|()| 0)),
                        host(i64::from(libc::ftruncate(h, i64::from(len)))),
                    ),
                    Op::Fallocate(at, len, keep) => {
                        let mode = if keep { FALLOC_FL_KEEP_SIZE } else { 0 };
                        (
                            ours(v.fallocate(u, mode, i64::from(at), i64::from(len)).map(|()| 0)),
                            host(i64::from(libc::fallocate(h, mode as i32, i64::from(at), i64::from(len)))),
                        )
                    }
                    Op::AddSeals(s) => (
                        ours(v.fcntl(u, F_ADD_SEALS, s as usize)),
                        host(i64::from(libc::fcntl(h, F_ADD_SEALS as i32, s as i32))),
                    ),
                    Op::GetSeals => (
                        ours(v.fcntl(u, F_GET_SEALS, 0)),
                        host(i64::from(libc::fcntl(h, F_GET_SEALS as i32))),
                    ),
                    Op::Fchmod(mode) => (
                        ours(v.fchmod(u, mode).map(|()| 0)),
                        host(i64::from(libc::fchmod(h, mode))),
                    ),
                    Op::ReadAll => {
                        let size = v.fstat(u).unwrap().size as usize;
                        let mut mine = vec![0u8; size];
                        let mut theirs = vec![0u8; size + 1];
                        let n = libc::pread(h, theirs.as_mut_ptr().cast(), theirs.len(), 0);
                        prop_assert_eq!(v.pread(u, &mut mine, 0), Ok(size), "step {}", step);
                        prop_assert_eq!(n, size as isize, "sizes at step {}", step);
                        prop_assert!(mine[..] == theirs[..size], "contents at step {}", step);
                        (Ok(0), Ok(0))
                    }
                }
            };
            prop_assert_eq!(a, b, "step {} {:?}\nops: {:?}", step, op, ops);
        }
        v.close(u).unwrap();
        // SAFETY: the test's own descriptor, closed once.
        unsafe { libc::close(h) };
    }
}
