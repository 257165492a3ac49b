//! Host unit tests of the typed API and the syscall adapters.

use alloc::vec;
use alloc::vec::Vec;
use std::sync::Arc as StdArc;

use crate::*;

fn fresh() -> Vfs {
    let vfs = Vfs::new(RamFs::new());
    vfs.mkdir("/dev", 0o755).unwrap();
    vfs.mount("/dev", DevFs::new()).unwrap();
    vfs
}

fn names(vfs: &Vfs, dir: &str) -> Vec<Vec<u8>> {
    let fd = vfs.open(dir, O_RDONLY | O_DIRECTORY, 0).unwrap();
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = vfs.getdents64(fd, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend(
            parse_dirents(&buf[..n])
                .into_iter()
                .map(|(_, _, name)| name),
        );
    }
    vfs.close(fd).unwrap();
    out
}

/// (d_off, d_reclen, name) of each record; checks the layout.
fn parse_dirents(buf: &[u8]) -> Vec<(u64, usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let off = u64::from_ne_bytes(buf[at + 8..at + 16].try_into().unwrap());
        let reclen = u16::from_ne_bytes(buf[at + 16..at + 18].try_into().unwrap()) as usize;
        assert_eq!(reclen % 8, 0, "d_reclen is 8-byte aligned");
        let name_end = buf[at + 19..at + reclen]
            .iter()
            .position(|&c| c == 0)
            .unwrap();
        let name = buf[at + 19..at + 19 + name_end].to_vec();
        assert_eq!(reclen, dirent_reclen(name.len()), "exact d_reclen");
        out.push((off, reclen, name));
        at += reclen;
    }
    assert_eq!(at, buf.len());
    out
}

#[test]
fn lowest_free_fd_and_emfile() {
    let vfs = fresh();
    vfs.set_max_fds(4).unwrap();
    let a = vfs.open("/dev/null", O_RDONLY, 0).unwrap();
    let b = vfs.open("/dev/null", O_RDONLY, 0).unwrap();
    let c = vfs.open("/dev/null", O_RDONLY, 0).unwrap();
    let d = vfs.open("/dev/null", O_RDONLY, 0).unwrap();
    assert_eq!([a, b, c, d], [0, 1, 2, 3]);
    // Reference §9: a full table gives EMFILE, not ENFILE; O_CREAT creates nothing then.
    assert_eq!(vfs.open("/dev/null", O_RDONLY, 0), Err(Errno::EMFILE));
    assert_eq!(
        vfs.open("/new", O_CREAT | O_RDWR, 0o644),
        Err(Errno::EMFILE)
    );
    assert_eq!(vfs.stat("/new"), Err(Errno::ENOENT));
    // Pipe creation with a full table: EMFILE (0.11 returned 0), nothing leaks.
    assert_eq!(vfs.pipe2(0), Err(Errno::EMFILE));
    vfs.close(b).unwrap();
    assert_eq!(
        vfs.pipe2(0),
        Err(Errno::EMFILE),
        "needs two free descriptors"
    );
    assert_eq!(vfs.open_fds(), 3);
    assert_eq!(vfs.dup(a), Ok(1));
    assert_eq!(vfs.close(1), Ok(()));
    assert_eq!(vfs.close(1), Err(Errno::EBADF));
    assert_eq!(vfs.close(-1), Err(Errno::EBADF));
}

#[test]
fn limit_from_a_source() {
    use core::sync::atomic::{AtomicUsize, Ordering};
    static LIMIT: AtomicUsize = AtomicUsize::new(2);
    fn limit() -> usize {
        LIMIT.load(Ordering::Relaxed)
    }
    let vfs = fresh();
    vfs.set_max_fds_source(limit);
    assert_eq!(vfs.open("/dev/null", O_RDONLY, 0), Ok(0));
    assert_eq!(vfs.open("/dev/null", O_RDONLY, 0), Ok(1));
    assert_eq!(vfs.open("/f", O_CREAT | O_RDWR, 0o644), Err(Errno::EMFILE));
    assert_eq!(vfs.stat("/f"), Err(Errno::ENOENT), "nothing created");
    LIMIT.store(3, Ordering::Relaxed);
    assert_eq!(vfs.open("/f", O_CREAT | O_RDWR, 0o644), Ok(2));
    LIMIT.store(1, Ordering::Relaxed);
    assert_eq!(vfs.dup(0), Err(Errno::EMFILE));
    assert_eq!(vfs.max_fds(), 1);
}

#[test]
fn dup_family_and_fcntl() {
    let vfs = fresh();
    let fd = vfs.open("/f", O_CREAT | O_RDWR, 0o644).unwrap();
    vfs.write(fd, b"abcdef").unwrap();
    let d = vfs.dup(fd).unwrap();
    // Shared offset.
    assert_eq!(vfs.lseek(d, 0, SEEK_CUR), Ok(6));
    vfs.lseek(fd, 2, SEEK_SET).unwrap();
    assert_eq!(vfs.lseek(d, 0, SEEK_CUR), Ok(2));
    assert_eq!(vfs.dup2(fd, fd), Ok(fd));
    assert_eq!(vfs.dup2(77, 77), Err(Errno::EBADF));
    assert_eq!(vfs.dup3(fd, fd, 0), Err(Errno::EINVAL));
    assert_eq!(vfs.dup3(fd, 9, O_NONBLOCK), Err(Errno::EINVAL));
    assert_eq!(vfs.dup3(fd, 9, O_CLOEXEC), Ok(9));
    assert_eq!(vfs.fcntl(9, F_GETFD, 0), Ok(1));
    assert_eq!(vfs.fcntl(fd, F_GETFD, 0), Ok(0));
    assert_eq!(vfs.dup2(fd, 1024), Err(Errno::EBADF));
    assert_eq!(vfs.fcntl(fd, F_DUPFD, 5), Ok(5));
    assert_eq!(vfs.fcntl(fd, F_DUPFD_CLOEXEC, 5), Ok(6));
    assert_eq!(vfs.fcntl(6, F_GETFD, 0), Ok(1));
    assert_eq!(vfs.fcntl(fd, F_DUPFD, 1024), Err(Errno::EINVAL));
    assert_eq!(vfs.fcntl(fd, F_SETFD, 1), Ok(0));
    assert_eq!(vfs.fcntl(fd, F_GETFD, 0), Ok(1));
    assert_eq!(
        vfs.fcntl(fd, F_GETFL, 0),
        Ok((O_RDWR | O_LARGEFILE) as usize)
    );
    vfs.fcntl(
        fd,
        F_SETFL,
        (O_APPEND | O_NONBLOCK | O_TRUNC | O_WRONLY) as usize,
    )
    .unwrap();
    assert_eq!(
        vfs.fcntl(d, F_GETFL, 0),
        Ok((O_RDWR | O_LARGEFILE | O_APPEND | O_NONBLOCK) as usize),
        "status flags are shared by dup; access mode and O_TRUNC are not settable"
    );
    assert_eq!(vfs.fcntl(fd, 999, 0), Err(Errno::EINVAL));
    assert_eq!(vfs.fcntl(55, F_GETFD, 0), Err(Errno::EBADF));
}

#[test]
fn open_flags() {
    let vfs = fresh();
    assert_eq!(vfs.open("/f", O_RDONLY, 0), Err(Errno::ENOENT));
    let fd = vfs.open("/f", O_CREAT | O_WRONLY, 0o666).unwrap();
    assert_eq!(vfs.stat("/f").unwrap().mode, S_IFREG | 0o644, "umask 022");
    vfs.write(fd, b"12345").unwrap();
    assert_eq!(vfs.read(fd, &mut [0; 4]), Err(Errno::EBADF));
    vfs.close(fd).unwrap();
    assert_eq!(vfs.open("/f", O_CREAT | O_EXCL, 0), Err(Errno::EEXIST));
    assert_eq!(vfs.open("/f", O_DIRECTORY, 0), Err(Errno::ENOTDIR));
    assert_eq!(vfs.open("/f/", O_RDONLY, 0), Err(Errno::ENOTDIR));
    assert_eq!(vfs.open("/f/", O_CREAT, 0), Err(Errno::EISDIR));
    assert_eq!(vfs.open("/", O_WRONLY, 0), Err(Errno::EISDIR));
    assert_eq!(vfs.open("/", O_CREAT, 0), Err(Errno::EISDIR));
    assert_eq!(vfs.open("/", O_RDONLY | O_TRUNC, 0), Err(Errno::EISDIR));
    assert_eq!(vfs.open("/x", O_CREAT | O_DIRECTORY, 0), Err(Errno::EINVAL));
    let fd = vfs.open("/f", O_RDONLY, 0).unwrap();
    assert_eq!(vfs.write(fd, b"x"), Err(Errno::EBADF));
    vfs.close(fd).unwrap();
    let fd = vfs.open("/f", O_RDWR | O_TRUNC, 0).unwrap();
    assert_eq!(vfs.fstat(fd).unwrap().size, 0);
    vfs.close(fd).unwrap();
    let fd = vfs.open("/f", O_WRONLY | O_APPEND, 0).unwrap();
    vfs.write(fd, b"ab").unwrap();
    vfs.lseek(fd, 0, SEEK_SET).unwrap();
    vfs.write(fd, b"cd").unwrap();
    assert_eq!(vfs.lseek(fd, 0, SEEK_CUR), Ok(4));
    assert_eq!(
        vfs.pwrite(fd, b"ef", 0),
        Ok(2),
        "pwrite with O_APPEND appends"
    );
    vfs.close(fd).unwrap();
    assert_eq!(vfs.read_file("/f").unwrap(), b"abcdef");
    // O_NOFOLLOW on a link, O_CLOEXEC.
    vfs.symlink("f", "/l").unwrap();
    assert_eq!(vfs.open("/l", O_RDONLY | O_NOFOLLOW, 0), Err(Errno::ELOOP));
    let fd = vfs.open("/l", O_RDONLY | O_CLOEXEC, 0).unwrap();
    assert_eq!(vfs.fcntl(fd, F_GETFD, 0), Ok(1));
    // O_CREAT through a dangling link creates the target.
    vfs.symlink("target", "/dangling").unwrap();
    let fd = vfs.open("/dangling", O_CREAT | O_WRONLY, 0o600).unwrap();
    vfs.close(fd).unwrap();
    assert_eq!(vfs.stat("/target").unwrap().mode, S_IFREG | 0o600);
    assert_eq!(
        vfs.open("/dangling", O_CREAT | O_EXCL | O_WRONLY, 0),
        Err(Errno::EEXIST)
    );
}

#[test]
fn path_lookup() {
    let vfs = fresh();
    vfs.mkdir_all("/a/b/c").unwrap();
    vfs.write_file("/a/b/file", b"x", 0o644).unwrap();
    assert_eq!(vfs.stat("/a/b/c/../file").unwrap().size, 1);
    assert_eq!(
        vfs.stat("/../../a/./b//file").unwrap().size,
        1,
        ".. stops at /"
    );
    vfs.chdir("/a/b").unwrap();
    assert_eq!(vfs.cwd().unwrap(), b"/a/b");
    assert_eq!(vfs.stat("file").unwrap().size, 1);
    assert_eq!(vfs.stat("../../../a/b/file").unwrap().size, 1);
    assert_eq!(vfs.stat("file/x"), Err(Errno::ENOTDIR));
    assert_eq!(vfs.stat("nope/x"), Err(Errno::ENOENT));
    assert_eq!(vfs.stat(""), Err(Errno::ENOENT));
    // NAME_MAX and PATH_MAX.
    let long = "n".repeat(256);
    assert_eq!(vfs.stat(&long), Err(Errno::ENAMETOOLONG));
    assert_eq!(vfs.stat("n".repeat(255)), Err(Errno::ENOENT));
    let deep = "./".repeat(2048);
    assert_eq!(deep.len(), 4096);
    assert_eq!(vfs.stat(&deep), Err(Errno::ENAMETOOLONG));
    assert!(vfs.stat(&deep[2..]).is_ok(), "4094 bytes is fine");
    // Symlinks: relative to their directory, chains, loops.
    vfs.symlink("b/file", "/a/lf").unwrap();
    vfs.symlink("/a/b", "/a/ld").unwrap();
    assert_eq!(vfs.stat("/a/lf").unwrap().size, 1);
    assert_eq!(vfs.stat("/a/ld/c/../file").unwrap().size, 1);
    assert_eq!(vfs.lstat("/a/lf").unwrap().mode & S_IFMT, S_IFLNK);
    vfs.symlink("loop2", "/loop1").unwrap();
    vfs.symlink("loop1", "/loop2").unwrap();
    assert_eq!(vfs.stat("/loop1"), Err(Errno::ELOOP));
    assert_eq!(vfs.lstat("/loop1").map(|s| s.mode & S_IFMT), Ok(S_IFLNK));
    // Exactly 40 links resolve, 41 do not.
    vfs.write_file("/end", b"", 0o644).unwrap();
    let mut prev = std::string::String::from("end");
    for i in 0..41 {
        let name = std::format!("c{i}");
        vfs.symlink(&prev, std::format!("/{name}")).unwrap();
        prev = name;
    }
    assert!(vfs.stat("/c39").is_ok(), "40 links");
    assert_eq!(vfs.stat("/c40"), Err(Errno::ELOOP), "41 links");
    // getcwd on a removed directory.
    vfs.chdir("/a/b/c").unwrap();
    vfs.rmdir("/a/b/c").unwrap();
    assert_eq!(vfs.cwd(), Err(Errno::ENOENT));
    assert_eq!(vfs.open("x", O_CREAT | O_RDWR, 0), Err(Errno::ENOENT));
    let mut small = [0u8; 2];
    vfs.chdir("/a").unwrap();
    assert_eq!(vfs.getcwd(&mut small), Err(Errno::ERANGE));
    let mut buf = [0u8; 8];
    assert_eq!(vfs.getcwd(&mut buf), Ok(3));
    assert_eq!(&buf[..3], b"/a\0");
    vfs.chdir("/dev").unwrap();
    assert_eq!(vfs.cwd().unwrap(), b"/dev", "getcwd crosses mounts");
    assert_eq!(vfs.stat("..").unwrap().ino, vfs.stat("/").unwrap().ino);
}

#[test]
fn ramfs_semantics() {
    let vfs = fresh();
    // Sparse writes.
    let fd = vfs.open("/s", O_CREAT | O_RDWR, 0o644).unwrap();
    assert_eq!(vfs.pwrite(fd, b"end", 1 << 30), Ok(3));
    let st = vfs.fstat(fd).unwrap();
    assert_eq!(st.size, (1 << 30) + 3);
    assert_eq!(st.blocks, 8, "one page allocated");
    let mut buf = [1u8; 16];
    assert_eq!(vfs.pread(fd, &mut buf, 4096), Ok(16));
    assert_eq!(buf, [0; 16]);
    // Truncate down zeroes the tail; up reads zeros.
    vfs.ftruncate(fd, (1 << 30) + 1).unwrap();
    vfs.ftruncate(fd, (1 << 30) + 3).unwrap();
    let mut t = [9u8; 3];
    vfs.pread(fd, &mut t, 1 << 30).unwrap();
    assert_eq!(t, [b'e', 0, 0]);
    assert_eq!(vfs.ftruncate(fd, -1), Err(Errno::EINVAL));
    vfs.close(fd).unwrap();
    // Unlink of an open file keeps its data until the last close.
    vfs.write_file("/u", b"still here", 0o644).unwrap();
    let fd = vfs.open("/u", O_RDONLY, 0).unwrap();
    vfs.unlink("/u").unwrap();
    assert_eq!(vfs.stat("/u"), Err(Errno::ENOENT));
    assert_eq!(vfs.fstat(fd).unwrap().nlink, 0);
    let mut b = [0u8; 10];
    assert_eq!(vfs.read(fd, &mut b), Ok(10));
    assert_eq!(&b, b"still here");
    vfs.close(fd).unwrap();
    // Hard links, nlink, inode numbers.
    vfs.write_file("/h1", b"x", 0o644).unwrap();
    vfs.link("/h1", "/h2").unwrap();
    let (s1, s2) = (vfs.stat("/h1").unwrap(), vfs.stat("/h2").unwrap());
    assert_eq!(s1.ino, s2.ino);
    assert_eq!(s1.nlink, 2);
    assert_eq!(vfs.link("/h1", "/h2"), Err(Errno::EEXIST));
    assert_eq!(vfs.link("/", "/d2"), Err(Errno::EPERM));
    assert_eq!(vfs.link("/nope", "/n2"), Err(Errno::ENOENT));
    assert_eq!(vfs.link("/h1", "/dev/h"), Err(Errno::EXDEV));
    // Directories: nlink, rmdir rules.
    vfs.mkdir("/d", 0o755).unwrap();
    vfs.mkdir("/d/e", 0o755).unwrap();
    assert_eq!(vfs.stat("/d").unwrap().nlink, 3);
    assert_eq!(vfs.mkdir("/d", 0), Err(Errno::EEXIST));
    assert_eq!(vfs.mkdir("/", 0), Err(Errno::EEXIST));
    assert_eq!(vfs.rmdir("/d"), Err(Errno::ENOTEMPTY));
    assert_eq!(vfs.rmdir("/h1"), Err(Errno::ENOTDIR));
    assert_eq!(vfs.rmdir("/d/."), Err(Errno::EINVAL));
    assert_eq!(vfs.rmdir("/d/e/.."), Err(Errno::ENOTEMPTY));
    assert_eq!(vfs.rmdir("/"), Err(Errno::EBUSY));
    assert_eq!(vfs.rmdir("/dev"), Err(Errno::EBUSY));
    assert_eq!(vfs.unlink("/d"), Err(Errno::EISDIR));
    assert_eq!(vfs.unlink("/h1/"), Err(Errno::ENOTDIR));
    vfs.rmdir("/d/e").unwrap();
    assert_eq!(vfs.stat("/d").unwrap().nlink, 2);
    // Modes, timestamps from the clock.
    vfs.chmod("/h1", 0o4711).unwrap();
    assert_eq!(vfs.stat("/h2").unwrap().mode, S_IFREG | 0o4711);
    assert_eq!(vfs.access("/h1", X_OK), Ok(()));
    vfs.chmod("/h1", 0o644).unwrap();
    assert_eq!(vfs.access("/h1", X_OK), Err(Errno::EACCES));
    assert_eq!(vfs.access("/h1", R_OK | W_OK), Ok(()));
    assert_eq!(vfs.access("/h1", 8), Err(Errno::EINVAL));
    assert_eq!(vfs.umask(0o077), 0o022);
    vfs.mkdir("/private", 0o777).unwrap();
    assert_eq!(vfs.stat("/private").unwrap().mode, S_IFDIR | 0o700);
}

#[test]
fn rename_rules() {
    let vfs = fresh();
    vfs.mkdir_all("/a/b/c").unwrap();
    vfs.mkdir("/e", 0o755).unwrap();
    vfs.write_file("/f", b"f", 0o644).unwrap();
    vfs.write_file("/g", b"g", 0o644).unwrap();
    assert_eq!(vfs.rename("/a", "/a/b/c/x"), Err(Errno::EINVAL));
    assert_eq!(vfs.rename("/a", "/a/b"), Err(Errno::EINVAL));
    assert_eq!(vfs.rename("/a/b", "/a"), Err(Errno::ENOTEMPTY));
    assert_eq!(vfs.rename("/a", "/f"), Err(Errno::ENOTDIR));
    assert_eq!(vfs.rename("/f", "/a"), Err(Errno::EISDIR));
    assert_eq!(vfs.rename("/e", "/a"), Err(Errno::ENOTEMPTY));
    assert_eq!(vfs.rename("/nope", "/x"), Err(Errno::ENOENT));
    assert_eq!(vfs.rename("/f/", "/x"), Err(Errno::ENOTDIR));
    assert_eq!(vfs.rename("/f", "/dev/f"), Err(Errno::EXDEV));
    assert_eq!(vfs.rename("/dev", "/d2"), Err(Errno::EBUSY));
    assert_eq!(vfs.rename("/a/.", "/d2"), Err(Errno::EBUSY));
    // Over an existing file: the old one goes away.
    let old = vfs.stat("/g").unwrap();
    let keep = vfs.open("/g", O_RDONLY, 0).unwrap();
    vfs.rename("/f", "/g").unwrap();
    assert_eq!(vfs.read_file("/g").unwrap(), b"f");
    assert_eq!(vfs.stat("/f"), Err(Errno::ENOENT));
    assert_eq!(vfs.fstat(keep).unwrap().nlink, 0);
    assert_ne!(vfs.stat("/g").unwrap().ino, old.ino);
    // Over an empty directory; nlink of both parents.
    vfs.rename("/a/b/c", "/e").unwrap();
    assert_eq!(vfs.stat("/a/b").unwrap().nlink, 2);
    vfs.mkdir("/e/in", 0o755).unwrap();
    vfs.chdir("/e/in").unwrap();
    vfs.rename("/e", "/moved").unwrap();
    assert_eq!(vfs.cwd().unwrap(), b"/moved/in");
    // Hard links of one file: nothing happens.
    vfs.link("/g", "/g2").unwrap();
    vfs.rename("/g", "/g2").unwrap();
    assert!(vfs.stat("/g").is_ok() && vfs.stat("/g2").is_ok());
    assert_eq!(
        vfs.renameat2(AT_FDCWD, "/g", AT_FDCWD, "/moved", RENAME_NOREPLACE),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        vfs.renameat2(AT_FDCWD, "/g", AT_FDCWD, "/z", 4),
        Err(Errno::EINVAL)
    );
}

#[test]
fn getdents64_stays_at_the_end_until_rewound() {
    let vfs = fresh();
    vfs.mkdir("/d", 0o755).unwrap();
    let fd = vfs.open("/d", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = vfs.getdents64(fd, &mut buf).unwrap();
    assert_eq!(parse_dirents(&buf[..n]).len(), 2, ". and ..");
    assert_eq!(vfs.lseek(fd, 0, SEEK_CUR), Ok(crate::DIR_END));
    // As Linux tmpfs (6.14 and later): an entry created after the end was reached is not
    // listed by the same reader until it seeks back.
    vfs.mkdir("/d/a", 0o755).unwrap();
    assert_eq!(vfs.getdents64(fd, &mut buf), Ok(0));
    vfs.lseek(fd, 0, SEEK_SET).unwrap();
    let n = vfs.getdents64(fd, &mut buf).unwrap();
    let listed: Vec<Vec<u8>> = parse_dirents(&buf[..n]).into_iter().map(|r| r.2).collect();
    assert!(listed.contains(&b"a".to_vec()), "{listed:?}");
}

#[test]
fn getdents64_exact_and_resumable() {
    let vfs = fresh();
    vfs.mkdir("/d", 0o755).unwrap();
    for i in 0..10 {
        vfs.write_file(std::format!("/d/file{i}"), b"", 0o644)
            .unwrap();
    }
    let fd = vfs.open("/d", O_RDONLY | O_DIRECTORY, 0).unwrap();
    // Reference §9: a buffer too small for one record is EINVAL (0.11: 0).
    let one = dirent_reclen(1);
    let mut tiny = vec![0u8; one - 1];
    assert_eq!(vfs.getdents64(fd, &mut tiny), Err(Errno::EINVAL));
    // A buffer of exactly N records returns N records (0.11: N-1).
    let three = dirent_reclen(1) + dirent_reclen(2) + dirent_reclen(5);
    let mut exact = vec![0u8; three];
    assert_eq!(vfs.getdents64(fd, &mut exact), Ok(three));
    let recs = parse_dirents(&exact);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].2, b".");
    assert_eq!(recs[1].2, b"..");
    // Changes between calls: no entry present throughout is lost or repeated.
    vfs.unlink("/d/file5").unwrap();
    vfs.write_file("/d/new", b"", 0o644).unwrap();
    let mut seen: Vec<Vec<u8>> = recs.into_iter().map(|r| r.2).collect();
    let mut buf = vec![0u8; dirent_reclen(5) * 2];
    loop {
        let n = vfs.getdents64(fd, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.extend(parse_dirents(&buf[..n]).into_iter().map(|r| r.2));
    }
    for i in [0, 1, 2, 3, 4, 6, 7, 8, 9] {
        let name = std::format!("file{i}").into_bytes();
        assert_eq!(seen.iter().filter(|n| **n == name).count(), 1, "file{i}");
    }
    // Rewind with lseek(0).
    vfs.lseek(fd, 0, SEEK_SET).unwrap();
    assert_eq!(vfs.lseek(fd, 0, SEEK_END), Err(Errno::EINVAL));
    assert_eq!(names(&vfs, "/d").len(), 12);
    let file = vfs.open("/d/file0", O_RDONLY, 0).unwrap();
    assert_eq!(vfs.getdents64(file, &mut buf), Err(Errno::ENOTDIR));
    assert_eq!(vfs.read(fd, &mut buf), Err(Errno::EISDIR));
    let mut dev = names(&vfs, "/dev");
    dev.sort();
    assert_eq!(
        dev,
        [
            &b"."[..],
            b"..",
            b"console",
            b"null",
            b"random",
            b"urandom",
            b"zero"
        ]
    );
}

#[test]
fn devices() {
    let vfs = fresh();
    let null = vfs.open("/dev/null", O_RDWR, 0).unwrap();
    assert_eq!(vfs.write(null, b"gone"), Ok(4));
    assert_eq!(vfs.read(null, &mut [0; 4]), Ok(0));
    assert_eq!(vfs.lseek(null, 100, SEEK_SET), Ok(0));
    let zero = vfs.open("/dev/zero", O_RDONLY, 0).unwrap();
    let mut b = [7u8; 32];
    assert_eq!(vfs.read(zero, &mut b), Ok(32));
    assert_eq!(b, [0; 32]);
    let st = vfs.stat("/dev/zero").unwrap();
    assert_eq!(
        (st.mode, major(st.rdev), minor(st.rdev)),
        (S_IFCHR | 0o666, 1, 5)
    );
    let con = vfs.open("/dev/console", O_RDWR | O_NONBLOCK, 0).unwrap();
    assert_eq!(vfs.read(con, &mut b), Err(Errno::EAGAIN));
    let mut termios = [0u8; devfs::TERMIOS_SIZE];
    assert_eq!(vfs.ioctl(con, devfs::TCGETS, &mut termios), Ok(0));
    assert_ne!(termios, [0; devfs::TERMIOS_SIZE]);
    let mut ws = [0u8; 8];
    vfs.ioctl(con, devfs::TIOCGWINSZ, &mut ws).unwrap();
    assert_eq!(u16::from_ne_bytes([ws[2], ws[3]]), 80);
    assert_eq!(
        vfs.ioctl(zero, devfs::TCGETS, &mut termios),
        Err(Errno::ENOTTY)
    );
    assert_eq!(vfs.fsync(null), Err(Errno::EINVAL));
    assert_eq!(vfs.unlink("/dev/null"), Err(Errno::EPERM));
    assert_eq!(vfs.open("/dev/new", O_CREAT | O_RDWR, 0), Err(Errno::EPERM));
}

#[test]
fn pipes_without_threads() {
    let vfs = fresh();
    let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
    assert_eq!(vfs.read(r, &mut [0; 8]), Err(Errno::EAGAIN));
    assert_eq!(vfs.write(r, b"x"), Err(Errno::EBADF));
    assert_eq!(vfs.read(w, &mut [0; 1]), Err(Errno::EBADF));
    assert_eq!(vfs.lseek(r, 0, SEEK_CUR), Err(Errno::ESPIPE));
    assert_eq!(vfs.pread(r, &mut [0; 1], 0), Err(Errno::ESPIPE));
    assert_eq!(vfs.fstat(r).unwrap().mode, S_IFIFO | 0o600);
    // Fill to exactly 64 KiB.
    let chunk = [0xabu8; PIPE_BUF];
    let mut total = 0;
    loop {
        match vfs.write(w, &chunk) {
            Ok(n) => total += n,
            Err(e) => {
                assert_eq!(e, Errno::EAGAIN);
                break;
            }
        }
    }
    assert_eq!(total, PIPE_CAPACITY);
    // PIPE_BUF atomicity: a small write with too little room fails whole.
    let mut one = [0u8; 1];
    vfs.read(r, &mut one).unwrap();
    assert_eq!(vfs.write(w, &[1, 2]), Err(Errno::EAGAIN));
    assert_eq!(vfs.write(w, &[1]), Ok(1));
    let mut big = vec![0u8; PIPE_CAPACITY];
    assert_eq!(vfs.read(r, &mut big), Ok(PIPE_CAPACITY));
    // A write larger than PIPE_BUF may be partial.
    let large = vec![5u8; PIPE_CAPACITY + 10];
    assert_eq!(vfs.write(w, &large), Ok(PIPE_CAPACITY));
    vfs.close(w).unwrap();
    assert_eq!(vfs.read(r, &mut big), Ok(PIPE_CAPACITY));
    assert_eq!(vfs.read(r, &mut big), Ok(0), "EOF once every writer closed");
    let [r2, w2] = vfs.pipe2(O_CLOEXEC).unwrap();
    assert_eq!(vfs.fcntl(r2, F_GETFD, 0), Ok(1));
    let w3 = vfs.dup(w2).unwrap();
    vfs.close(r2).unwrap();
    assert_eq!(vfs.write(w3, b"x"), Err(Errno::EPIPE));
    assert_eq!(vfs.write(w3, b""), Ok(0));
    assert_eq!(vfs.pipe2(O_TRUNC), Err(Errno::EINVAL));
}

struct ThreadWait {
    lock: std::sync::Mutex<u64>,
    cv: std::sync::Condvar,
}

impl wait::Wait for ThreadWait {
    fn wait(&self, ready: &mut dyn FnMut() -> bool) -> Result<(), Errno> {
        let mut g = self.lock.lock().unwrap();
        while !ready() {
            g = self
                .cv
                .wait_timeout(g, std::time::Duration::from_millis(5))
                .unwrap()
                .0;
        }
        Ok(())
    }
    fn wake_all(&self) {
        *self.lock.lock().unwrap() += 1;
        self.cv.notify_all();
    }
}

fn thread_wait() -> alloc::boxed::Box<dyn wait::Wait> {
    alloc::boxed::Box::new(ThreadWait {
        lock: std::sync::Mutex::new(0),
        cv: std::sync::Condvar::new(),
    })
}

#[test]
fn pipes_block_across_threads() {
    wait::set_wait_factory(thread_wait);
    let vfs = StdArc::new(fresh());
    let [r, w] = vfs.pipe2(0).unwrap();
    let writer = {
        let vfs = vfs.clone();
        std::thread::spawn(move || {
            let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
            let mut done = 0;
            while done < data.len() {
                done += vfs.write(w, &data[done..]).unwrap();
            }
            vfs.close(w).unwrap();
        })
    };
    let mut got = Vec::new();
    let mut buf = [0u8; 3000];
    loop {
        let n = vfs.read(r, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    writer.join().unwrap();
    assert_eq!(got.len(), 200_000);
    assert!(got.iter().enumerate().all(|(i, &b)| b == i as u8));
    // A blocked writer gets EPIPE when the reader goes.
    let [r, w] = vfs.pipe2(0).unwrap();
    vfs.write(w, &vec![0u8; PIPE_CAPACITY]).unwrap();
    let closer = {
        let vfs = vfs.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            vfs.close(r).unwrap();
        })
    };
    assert_eq!(vfs.write(w, b"more"), Err(Errno::EPIPE));
    closer.join().unwrap();
}

#[test]
fn cpio_roundtrip_and_errors() {
    let archive = cpio::build(&[
        (b".", S_IFDIR | 0o755, b""),
        (b"etc", S_IFDIR | 0o755, b""),
        (b"etc/motd", S_IFREG | 0o644, b"hello initrd\n"),
        (b"deep/er/file", S_IFREG | 0o600, b"x"),
        (b"link", S_IFLNK | 0o777, b"etc/motd"),
        (b"dev/fifo", S_IFIFO | 0o644, b""),
    ]);
    let vfs = fresh();
    assert_eq!(cpio::unpack(&vfs, &archive), Ok(4));
    assert_eq!(vfs.read_file("/link").unwrap(), b"hello initrd\n");
    assert_eq!(vfs.stat("/deep/er/file").unwrap().mode, S_IFREG | 0o600);
    // Truncations anywhere are errors, never panics, and unpack nothing.
    for cut in 0..archive.len() {
        let vfs = Vfs::new(RamFs::new());
        let r = cpio::unpack(&vfs, &archive[..cut]);
        assert!(r.is_err(), "cut at {cut}");
        assert_eq!(names(&vfs, "/").len(), 2);
    }
    let mut bad = archive.clone();
    bad[0] = b'1';
    assert_eq!(
        cpio::parse(&bad).unwrap_err().kind,
        cpio::ErrorKind::BadMagic
    );
    let mut bad = archive.clone();
    bad[10] = b'z';
    assert_eq!(
        cpio::parse(&bad).unwrap_err().kind,
        cpio::ErrorKind::BadNumber
    );
}

#[test]
fn syscalls_through_dispatch() {
    use uk_syscall::{Sysno, dispatch};
    let call = |n: Sysno, args: [usize; 6]| dispatch(n as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    let dir = b"/sys_test\0";
    assert_eq!(
        call(
            Sysno::mkdirat,
            [AT_FDCWD as usize, dir.as_ptr() as usize, 0o755, 0, 0, 0]
        ),
        0
    );
    let path = b"/sys_test/f\0";
    let fd = call(
        Sysno::openat,
        [
            AT_FDCWD as usize,
            path.as_ptr() as usize,
            (O_CREAT | O_RDWR) as usize,
            0o644,
            0,
            0,
        ],
    );
    assert!(fd >= 3, "0-2 are the console: {fd}");
    let data = b"hello";
    assert_eq!(
        call(
            Sysno::write,
            [fd as usize, data.as_ptr() as usize, 5, 0, 0, 0]
        ),
        5
    );
    // Reference §9: stat(NULL) is EFAULT (0.11: EINVAL).
    let mut st = [0u8; 256];
    assert_eq!(
        call(
            Sysno::newfstatat,
            [AT_FDCWD as usize, 0, st.as_mut_ptr() as usize, 0, 0, 0]
        ),
        e(Errno::EFAULT)
    );
    assert_eq!(
        call(
            Sysno::newfstatat,
            [AT_FDCWD as usize, path.as_ptr() as usize, 8, 0, 0, 0]
        ),
        e(Errno::EFAULT)
    );
    assert_eq!(
        call(
            Sysno::fstat,
            [fd as usize, st.as_mut_ptr() as usize, 0, 0, 0, 0]
        ),
        0
    );
    let size = u64::from_ne_bytes(st[48..56].try_into().unwrap());
    assert_eq!(size, 5);
    // Reference §9: faccessat errors are negative (0.11 returned a positive EBADF).
    assert_eq!(
        call(
            Sysno::faccessat,
            [12345, c"rel".as_ptr() as usize, 0, 0, 0, 0]
        ),
        e(Errno::EBADF)
    );
    assert_eq!(
        call(Sysno::read, [fd as usize, 0, 5, 0, 0, 0]),
        e(Errno::EFAULT)
    );
    assert_eq!(call(Sysno::read, [999, 0, 5, 0, 0, 0]), e(Errno::EBADF));
    assert_eq!(call(Sysno::read, [fd as usize, 0, 0, 0, 0, 0]), 0);
    // readv / writev.
    let mut a = [0u8; 2];
    let mut b = [0u8; 10];
    let iov: [usize; 4] = [a.as_mut_ptr() as usize, 2, b.as_mut_ptr() as usize, 10];
    assert_eq!(
        call(
            Sysno::pread64,
            [fd as usize, b.as_mut_ptr() as usize, 10, 0, 0, 0]
        ),
        5
    );
    call(Sysno::lseek, [fd as usize, 0, SEEK_SET as usize, 0, 0, 0]);
    assert_eq!(
        call(
            Sysno::readv,
            [fd as usize, iov.as_ptr() as usize, 2, 0, 0, 0]
        ),
        5
    );
    assert_eq!((&a, &b[..3]), (b"he", &b"llo"[..]));
    assert_eq!(
        call(
            Sysno::readv,
            [fd as usize, iov.as_ptr() as usize, 1025, 0, 0, 0]
        ),
        e(Errno::EINVAL)
    );
    // getdents64 through the adapter.
    let dfd = call(
        Sysno::openat,
        [
            AT_FDCWD as usize,
            dir.as_ptr() as usize,
            O_DIRECTORY as usize,
            0,
            0,
            0,
        ],
    );
    let mut dents = [0u8; 512];
    let n = call(
        Sysno::getdents64,
        [dfd as usize, dents.as_mut_ptr() as usize, 512, 0, 0, 0],
    );
    let recs = parse_dirents(&dents[..n as usize]);
    assert_eq!(recs.len(), 3);
    assert_eq!(
        call(
            Sysno::getdents64,
            [dfd as usize, dents.as_mut_ptr() as usize, 8, 0, 0, 0]
        ),
        0
    );
    call(Sysno::lseek, [dfd as usize, 0, 0, 0, 0, 0]);
    assert_eq!(
        call(
            Sysno::getdents64,
            [dfd as usize, dents.as_mut_ptr() as usize, 8, 0, 0, 0]
        ),
        e(Errno::EINVAL)
    );
    // pipe2, ioctl on the console, getcwd.
    let mut fds = [0i32; 2];
    assert_eq!(
        call(
            Sysno::pipe2,
            [fds.as_mut_ptr() as usize, O_NONBLOCK as usize, 0, 0, 0, 0]
        ),
        0
    );
    assert_eq!(call(Sysno::pipe2, [0, 0, 0, 0, 0, 0]), e(Errno::EFAULT));
    let mut termios = [0u8; 36];
    assert_eq!(
        call(
            Sysno::ioctl,
            [
                1,
                devfs::TCGETS as usize,
                termios.as_mut_ptr() as usize,
                0,
                0,
                0
            ]
        ),
        0
    );
    assert_eq!(
        call(
            Sysno::ioctl,
            [
                fd as usize,
                devfs::TCGETS as usize,
                termios.as_mut_ptr() as usize,
                0,
                0,
                0
            ]
        ),
        e(Errno::ENOTTY)
    );
    assert_eq!(
        call(
            Sysno::ioctl,
            [fd as usize, devfs::TCGETS as usize, 0, 0, 0, 0]
        ),
        e(Errno::ENOTTY)
    );
    assert_eq!(
        call(Sysno::ioctl, [1, devfs::TCGETS as usize, 0, 0, 0, 0]),
        e(Errno::EFAULT)
    );
    let mut cwd = [0u8; 64];
    assert!(call(Sysno::getcwd, [cwd.as_mut_ptr() as usize, 64, 0, 0, 0, 0]) >= 2);
    assert_eq!(
        call(Sysno::getcwd, [cwd.as_mut_ptr() as usize, 1, 0, 0, 0, 0]),
        e(Errno::ERANGE)
    );
    let long = vec![b'a'; 5000];
    assert_eq!(
        call(
            Sysno::openat,
            [AT_FDCWD as usize, long.as_ptr() as usize, 0, 0, 0, 0]
        ),
        e(Errno::ENAMETOOLONG)
    );
    for f in [fd, dfd, fds[0] as isize, fds[1] as isize] {
        assert_eq!(call(Sysno::close, [f as usize, 0, 0, 0, 0, 0]), 0);
    }
}

mod cpio_fuzz {
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use crate::*;

    fn sample() -> Vec<u8> {
        cpio::build(&[
            (b".", S_IFDIR | 0o755, b""),
            (b"a", S_IFDIR | 0o755, b""),
            (b"a/f", S_IFREG | 0o644, b"hello"),
            (b"a/l", S_IFLNK | 0o777, b"f"),
            (b"b/c/d", S_IFREG | 0o600, &[0u8; 700]),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Random bytes: the parser and the unpacker return, never panic.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = cpio::parse(&bytes);
            let vfs = Vfs::new(RamFs::new());
            let _ = cpio::unpack(&vfs, &bytes);
        }

        /// Mutated valid archives (byte flips, hex digits set to extremes, cuts): never a
        /// panic; a malformed result leaves the root empty.
        #[test]
        fn mutated_archives_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let mut a = sample();
            for (at, byte) in flips {
                let i = at.index(a.len());
                a[i] = if byte % 3 == 0 { b"0f8"[(byte as usize / 3) % 3] } else { byte };
            }
            if do_cut {
                a.truncate(cut.index(a.len() + 1));
            }
            let vfs = Vfs::new(RamFs::new());
            match cpio::unpack(&vfs, &a) {
                Ok(_) => {}
                Err(_) => {
                    let fd = vfs.open("/", O_RDONLY | O_DIRECTORY, 0).unwrap();
                    let mut buf = [0u8; 256];
                    let n = vfs.getdents64(fd, &mut buf).unwrap();
                    prop_assert_eq!(n, 2 * dirent_reclen(2));
                }
            }
        }

        /// Huge sizes in the header fields are bounds-checked.
        #[test]
        fn huge_fields_are_errors(field in 1usize..13, value in any::<u32>()) {
            let mut a = sample();
            let digits = alloc::format!("{value:08x}");
            a[6 + 8 * field..14 + 8 * field].copy_from_slice(digits.as_bytes());
            let _ = cpio::parse(&a);
        }
    }
}

/// The clock of the tests that look at times (the VFS keeps the first clock set): every
/// reading is one second after the previous one.
fn test_clock() -> Timespec {
    use core::sync::atomic::{AtomicI64, Ordering};
    static TICK: AtomicI64 = AtomicI64::new(1_000);
    Timespec {
        sec: TICK.fetch_add(1, Ordering::Relaxed),
        nsec: 5,
    }
}

#[test]
fn timestamps_follow_the_clock() {
    set_clock(test_clock);
    let vfs = fresh();
    vfs.mkdir("/t", 0o755).unwrap();
    let dir0 = vfs.stat("/t").unwrap();
    vfs.write_file("/t/f", b"a", 0o644).unwrap();
    let dir1 = vfs.stat("/t").unwrap();
    assert!(
        dir1.mtime > dir0.mtime,
        "creating an entry changes the directory"
    );
    let f0 = vfs.stat("/t/f").unwrap();
    assert!(f0.mtime.sec >= 1_000 && f0.mtime.nsec == 5);
    let fd = vfs.open("/t/f", O_WRONLY, 0).unwrap();
    vfs.write(fd, b"b").unwrap();
    let f1 = vfs.fstat(fd).unwrap();
    assert!(f1.mtime > f0.mtime && f1.ctime > f0.ctime);
    assert_eq!(f1.btime, f0.btime, "birth time stays");
    vfs.chmod("/t/f", 0o600).unwrap();
    let f2 = vfs.fstat(fd).unwrap();
    assert!(
        f2.ctime > f1.ctime && f2.mtime == f1.mtime,
        "chmod changes ctime only"
    );
    vfs.link("/t/f", "/t/g").unwrap();
    assert!(
        vfs.stat("/t/g").unwrap().ctime > f2.ctime,
        "link changes ctime"
    );
    vfs.close(fd).unwrap();
}

mod dirents_reader {
    use alloc::vec;
    use alloc::vec::Vec;

    use proptest::prelude::*;

    use crate::*;

    /// A buffer of records for `names`, as `getdents64` writes them.
    fn records(names: &[&[u8]]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let mut rec = vec![0u8; dirent_reclen(name.len())];
            encode_dirent(&mut rec, 100 + i as u64, 2 + i as u64, DT_REG, name);
            buf.extend_from_slice(&rec);
        }
        buf
    }

    #[test]
    fn reads_back_what_getdents64_wrote() {
        let buf = records(&[b"a", b"", b"seven77", b"eight888", &[b'x'; 255]]);
        let got: Vec<Dirent<'_>> = dirents(&buf).collect();
        assert_eq!(got.len(), 5);
        assert_eq!(
            got[2],
            Dirent {
                ino: 102,
                off: 4,
                dtype: DT_REG,
                name: b"seven77"
            }
        );
        assert_eq!(got[3].name, b"eight888");
        assert_eq!(got[4].name.len(), 255);
        // A cut buffer yields the whole records before the cut and stops.
        let cut = dirent_reclen(1) + dirent_reclen(0) + 5;
        assert_eq!(dirents(&buf[..cut]).count(), 2);
        // A d_reclen shorter than the header ends the iteration instead of looping.
        let mut bad = buf.clone();
        bad[16..18].copy_from_slice(&3u16.to_ne_bytes());
        assert_eq!(dirents(&bad).count(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any bytes: the reader returns records within the buffer and never panics.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let total: usize = dirents(&bytes).map(|d| 19 + d.name.len()).sum();
            prop_assert!(total <= bytes.len());
        }
    }
}

#[test]
fn chmod_syscalls_set_permission_bits_and_refuse_bad_input() {
    use uk_syscall::{Sysno, dispatch};
    let call = |n: Sysno, args: [usize; 6]| dispatch(n as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    vfs.mkdir_all("/chmod_test").unwrap();
    vfs.write_file("/chmod_test/f", b"x", 0o644).unwrap();
    vfs.symlink("f", "/chmod_test/l").unwrap();
    let dir = vfs.open("/chmod_test", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let name = b"l\0";
    // Relative to a directory descriptor, through the symbolic link; file-type bits and
    // bits above 0o7777 in `mode` are ignored.
    assert_eq!(
        call(
            Sysno::fchmodat,
            [dir as usize, name.as_ptr() as usize, 0o170_600, 0, 0, 0]
        ),
        0
    );
    assert_eq!(vfs.stat("/chmod_test/f").unwrap().mode, S_IFREG | 0o600);
    assert_eq!(vfs.lstat("/chmod_test/l").unwrap().mode & S_IFMT, S_IFLNK);
    let fd = vfs.open("/chmod_test/f", O_RDONLY, 0).unwrap();
    assert_eq!(call(Sysno::fchmod, [fd as usize, 0o4751, 0, 0, 0, 0]), 0);
    assert_eq!(vfs.fstat(fd).unwrap().mode, S_IFREG | 0o4751);
    // Bad input changes nothing.
    let missing = b"/chmod_test/missing\0";
    assert_eq!(
        call(
            Sysno::fchmodat,
            [AT_FDCWD as usize, missing.as_ptr() as usize, 0o777, 0, 0, 0]
        ),
        e(Errno::ENOENT)
    );
    assert_eq!(
        call(Sysno::fchmodat, [AT_FDCWD as usize, 0, 0o777, 0, 0, 0]),
        e(Errno::EFAULT)
    );
    assert_eq!(
        call(Sysno::fchmod, [999, 0o777, 0, 0, 0, 0]),
        e(Errno::EBADF)
    );
    assert_eq!(vfs.stat("/chmod_test/f").unwrap().mode, S_IFREG | 0o4751);
    // A pipe has no mode of its own to change; the call succeeds, as on Linux.
    let [r, w] = vfs.pipe2(0).unwrap();
    assert_eq!(call(Sysno::fchmod, [r as usize, 0o600, 0, 0, 0, 0]), 0);
    #[cfg(target_arch = "x86_64")]
    {
        let path = b"/chmod_test/f\0";
        assert_eq!(
            call(Sysno::chmod, [path.as_ptr() as usize, 0o640, 0, 0, 0, 0]),
            0
        );
        assert_eq!(vfs.stat("/chmod_test/f").unwrap().mode, S_IFREG | 0o640);
    }
    for fd in [dir, fd, r, w] {
        vfs.close(fd).unwrap();
    }
}

#[test]
fn utimensat_sets_omits_and_refreshes_times() {
    set_clock(test_clock);
    let vfs = fresh();
    let at = |sec, nsec| Timespec { sec, nsec };
    vfs.mkdir("/u", 0o755).unwrap();
    vfs.write_file("/u/f", b"x", 0o644).unwrap();
    vfs.symlink("f", "/u/l").unwrap();
    let set =
        |path: &str, times, flags| vfs.utimensat(AT_FDCWD, Some(path.as_bytes()), times, flags);
    let before = vfs.stat("/u/f").unwrap();
    // Explicit times, including one before the epoch; the change time moves on.
    set(
        "/u/f",
        [
            TimeChange::Set(at(-5, 7)),
            TimeChange::Set(at(42, 999_999_999)),
        ],
        0,
    )
    .unwrap();
    let st = vfs.stat("/u/f").unwrap();
    assert_eq!((st.atime, st.mtime), (at(-5, 7), at(42, 999_999_999)));
    assert!(st.ctime > before.ctime);
    // One time now, the other left alone.
    set("/u/f", [TimeChange::Omit, TimeChange::Now], 0).unwrap();
    let st2 = vfs.stat("/u/f").unwrap();
    assert_eq!(st2.atime, at(-5, 7));
    assert!(st2.mtime > st.ctime && st2.ctime == st2.mtime);
    // Both omitted: nothing changes, not even the change time; the path is still checked.
    set("/u/f", [TimeChange::Omit; 2], 0).unwrap();
    assert_eq!(vfs.stat("/u/f").unwrap(), st2);
    assert_eq!(
        set("/u/missing", [TimeChange::Omit; 2], 0),
        Err(Errno::ENOENT)
    );
    // Through a symbolic link, or on the link itself.
    let link = vfs.lstat("/u/l").unwrap();
    set("/u/l", [TimeChange::Set(at(1, 0)); 2], AT_SYMLINK_NOFOLLOW).unwrap();
    assert_eq!(vfs.lstat("/u/l").unwrap().mtime, at(1, 0));
    assert_eq!(vfs.stat("/u/f").unwrap().mtime, st2.mtime);
    set("/u/l", [TimeChange::Set(at(2, 0)); 2], 0).unwrap();
    assert_eq!(vfs.stat("/u/f").unwrap().mtime, at(2, 0));
    assert!(link.mtime != at(1, 0));
    // On an open file: no path (futimens), or an empty path with AT_EMPTY_PATH.
    let fd = vfs.open("/u/f", O_RDONLY, 0).unwrap();
    vfs.utimensat(fd, None, [TimeChange::Set(at(3, 0)); 2], 0)
        .unwrap();
    assert_eq!(vfs.fstat(fd).unwrap().atime, at(3, 0));
    vfs.utimensat(fd, Some(b""), [TimeChange::Set(at(4, 0)); 2], AT_EMPTY_PATH)
        .unwrap();
    assert_eq!(vfs.fstat(fd).unwrap().mtime, at(4, 0));
    // Bad input changes nothing.
    let now = vfs.stat("/u/f").unwrap();
    let times = [TimeChange::Set(at(9, 9)); 2];
    assert_eq!(vfs.utimensat(fd, Some(b""), times, 0), Err(Errno::ENOENT));
    assert_eq!(
        vfs.utimensat(fd, None, times, AT_SYMLINK_NOFOLLOW),
        Err(Errno::EINVAL)
    );
    assert_eq!(vfs.utimensat(AT_FDCWD, None, times, 0), Err(Errno::EFAULT));
    assert_eq!(vfs.utimensat(999, None, times, 0), Err(Errno::EBADF));
    assert_eq!(set("/u/f", times, AT_REMOVEDIR), Err(Errno::EINVAL));
    assert_eq!(vfs.stat("/u/f").unwrap(), now);
    // A pipe keeps no times; the call succeeds, as on Linux.
    let [r, w] = vfs.pipe2(0).unwrap();
    assert_eq!(vfs.utimensat(r, None, times, 0), Ok(()));
    for fd in [fd, r, w] {
        vfs.close(fd).unwrap();
    }
}

#[test]
fn utimensat_syscall_decodes_times_and_refuses_bad_input() {
    use uk_syscall::{Sysno, dispatch};
    set_clock(test_clock);
    let call = |args: [usize; 6]| dispatch(Sysno::utimensat as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    vfs.mkdir_all("/utimens_test").unwrap();
    vfs.write_file("/utimens_test/f", b"x", 0o644).unwrap();
    let path = b"/utimens_test/f\0";
    // Two C timespecs: atime (10 s 20 ns), mtime omitted.
    let mut t: [i64; 4] = [10, 20, 30, UTIME_OMIT];
    let cwd = AT_FDCWD as usize;
    assert_eq!(
        call([cwd, path.as_ptr() as usize, t.as_ptr() as usize, 0, 0, 0]),
        0
    );
    let st = vfs.stat("/utimens_test/f").unwrap();
    assert_eq!(st.atime, Timespec { sec: 10, nsec: 20 });
    // A NULL times array is "both now"; a NULL path with a descriptor is futimens.
    assert_eq!(call([cwd, path.as_ptr() as usize, 0, 0, 0, 0]), 0);
    let now = vfs.stat("/utimens_test/f").unwrap();
    assert!(now.atime > st.ctime && now.mtime == now.atime);
    let fd = vfs.open("/utimens_test/f", O_RDONLY, 0).unwrap();
    t = [0, UTIME_OMIT, 7, 8];
    assert_eq!(call([fd as usize, 0, t.as_ptr() as usize, 0, 0, 0]), 0);
    assert_eq!(vfs.fstat(fd).unwrap().mtime, Timespec { sec: 7, nsec: 8 });
    // Nanoseconds out of range, unknown flags, missing paths: errors that change nothing.
    let before = vfs.fstat(fd).unwrap();
    for bad in [1_000_000_000, -1, UTIME_NOW + 1, i64::MIN] {
        t = [1, 1, 1, bad];
        let r = call([cwd, path.as_ptr() as usize, t.as_ptr() as usize, 0, 0, 0]);
        assert_eq!(r, e(Errno::EINVAL), "nsec {bad}");
    }
    t = [1, 1, 1, 1];
    assert_eq!(
        call([cwd, path.as_ptr() as usize, t.as_ptr() as usize, 0x2, 0, 0]),
        e(Errno::EINVAL)
    );
    assert_eq!(
        call([cwd, 0, t.as_ptr() as usize, 0, 0, 0]),
        e(Errno::EFAULT)
    );
    let missing = b"/utimens_test/missing\0";
    assert_eq!(
        call([cwd, missing.as_ptr() as usize, t.as_ptr() as usize, 0, 0, 0]),
        e(Errno::ENOENT)
    );
    assert_eq!(vfs.fstat(fd).unwrap(), before);
    vfs.close(fd).unwrap();
}

proptest::proptest! {
    /// Every C timespec decodes to the change `utimensat` makes, or to `EINVAL`.
    #[test]
    fn timespec_decoding_accepts_exactly_the_valid_values(sec in proptest::prelude::any::<i64>(), nsec in proptest::prelude::any::<i64>()) {
        let got = TimeChange::from_timespec(sec, nsec);
        let want = match nsec {
            UTIME_NOW => Ok(TimeChange::Now),
            UTIME_OMIT => Ok(TimeChange::Omit),
            n if (0..1_000_000_000).contains(&n) => Ok(TimeChange::Set(Timespec { sec, nsec: n as u32 })),
            _ => Err(Errno::EINVAL),
        };
        proptest::prop_assert_eq!(got, want);
    }
}

#[test]
fn statfs_names_the_filesystem_of_each_path() {
    let vfs = fresh();
    vfs.write_file("/f", b"x", 0o644).unwrap();
    let root = vfs.statfs("/f").unwrap();
    assert_eq!(root, StatFs::in_memory(RAMFS_MAGIC));
    assert_eq!(
        (root.bsize, root.namelen, root.flags),
        (4096, 255, ST_VALID)
    );
    // Crossing into the devfs mount, by path and by descriptor.
    assert_eq!(vfs.statfs("/dev/null").unwrap().fs_type, TMPFS_MAGIC);
    assert_eq!(vfs.statfs("/dev").unwrap().fs_type, TMPFS_MAGIC);
    let fd = vfs.open("/dev/null", O_RDONLY, 0).unwrap();
    assert_eq!(vfs.fstatfs(fd).unwrap().fs_type, TMPFS_MAGIC);
    let [r, w] = vfs.pipe2(0).unwrap();
    assert_eq!(vfs.fstatfs(r).unwrap().fs_type, PIPEFS_MAGIC);
    assert_eq!(vfs.statfs("/missing"), Err(Errno::ENOENT));
    assert_eq!(vfs.statfs("/f/x"), Err(Errno::ENOTDIR));
    assert_eq!(vfs.fstatfs(999), Err(Errno::EBADF));
    for fd in [fd, r, w] {
        vfs.close(fd).unwrap();
    }
}

#[test]
fn statfs_syscalls_write_struct_statfs() {
    use uk_syscall::{Sysno, dispatch};
    let call = |n: Sysno, args: [usize; 6]| dispatch(n as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    let word = |buf: &[u8], i: usize| u64::from_ne_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap());
    let vfs = global::vfs();
    vfs.mkdir_all("/statfs_test").unwrap();
    let mut buf = [0xffu8; StatFs::RAW_SIZE];
    let path = b"/statfs_test\0";
    let r = call(
        Sysno::statfs,
        [
            path.as_ptr() as usize,
            buf.as_mut_ptr() as usize,
            0,
            0,
            0,
            0,
        ],
    );
    assert_eq!(r, 0);
    // f_type, f_bsize, then the counts, f_fsid, f_namelen, f_frsize, f_flags, f_spare.
    let st = vfs.statfs("/statfs_test").unwrap();
    assert_eq!(word(&buf, 0), st.fs_type);
    assert_eq!(word(&buf, 1), 4096);
    assert_eq!(word(&buf, 8), 255);
    assert_eq!(word(&buf, 9), 4096);
    assert_eq!(word(&buf, 10), ST_VALID);
    assert!(buf[88..].iter().all(|&b| b == 0), "f_spare is zero");
    let fd = vfs.open("/statfs_test", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let mut buf2 = [0u8; StatFs::RAW_SIZE];
    let r = call(
        Sysno::fstatfs,
        [fd as usize, buf2.as_mut_ptr() as usize, 0, 0, 0, 0],
    );
    assert_eq!((r, buf2), (0, buf));
    // Bad input writes nothing.
    let mut untouched = [0x5au8; StatFs::RAW_SIZE];
    let out = untouched.as_mut_ptr() as usize;
    let missing = b"/statfs_test/missing\0";
    assert_eq!(
        call(Sysno::statfs, [missing.as_ptr() as usize, out, 0, 0, 0, 0]),
        e(Errno::ENOENT)
    );
    assert_eq!(call(Sysno::statfs, [0, out, 0, 0, 0, 0]), e(Errno::EFAULT));
    assert_eq!(
        call(Sysno::statfs, [path.as_ptr() as usize, 0, 0, 0, 0, 0]),
        e(Errno::EFAULT)
    );
    assert_eq!(
        call(Sysno::fstatfs, [fd as usize, 0, 0, 0, 0, 0]),
        e(Errno::EFAULT)
    );
    assert_eq!(
        call(Sysno::fstatfs, [999, out, 0, 0, 0, 0]),
        e(Errno::EBADF)
    );
    assert!(untouched.iter().all(|&b| b == 0x5a));
    vfs.close(fd).unwrap();
}

#[test]
fn poll_reports_pipe_ends_files_and_bad_descriptors() {
    use crate::poll::*;
    let vfs = fresh();
    let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
    let file = vfs.open("/f", O_CREAT | O_RDWR, 0o644).unwrap();
    let ask = |fd: Fd, events: u16| PollFd {
        fd,
        events: events as i16,
        revents: -1,
    };
    let both = POLLIN | POLLOUT;
    // An empty pipe: the write end is writable, the read end not readable.
    let mut fds = [
        ask(r, both),
        ask(w, both),
        ask(file, both),
        ask(-1, both),
        ask(99, 0),
    ];
    assert_eq!(vfs.poll(&mut fds), 3);
    let got: Vec<u16> = fds.iter().map(|f| f.revents as u16).collect();
    assert_eq!(got, [0, POLLOUT, POLLIN | POLLOUT, 0, POLLNVAL]);
    // Only what was asked for (and the conditions always reported).
    let mut fds = [ask(file, POLLIN)];
    assert_eq!(vfs.poll(&mut fds), 1);
    assert_eq!(fds[0].revents as u16, POLLIN);

    // Bytes in the pipe: readable; each change moves the epoch.
    let before = readiness_epoch();
    assert_eq!(vfs.write(w, b"x"), Ok(1));
    assert!(readiness_epoch() > before);
    let mut fds = [ask(r, POLLIN | POLLRDNORM)];
    assert_eq!(vfs.poll(&mut fds), 1);
    assert_eq!(fds[0].revents as u16, POLLIN | POLLRDNORM);
    // Full to less than PIPE_BUF free: not writable.
    let chunk = vec![0u8; PIPE_CAPACITY - PIPE_BUF];
    assert_eq!(vfs.write(w, &chunk), Ok(chunk.len()));
    let mut fds = [ask(w, POLLOUT)];
    assert_eq!(vfs.poll(&mut fds), 0);
    let mut sink = vec![0u8; PIPE_CAPACITY];
    let before = readiness_epoch();
    assert_eq!(vfs.read(r, &mut sink), Ok(chunk.len() + 1));
    assert!(readiness_epoch() > before);
    assert_eq!(vfs.poll(&mut fds), 1);

    // The write end closed: the read end hangs up (reported although not asked for).
    let before = readiness_epoch();
    vfs.close(w).unwrap();
    assert!(readiness_epoch() > before);
    let mut fds = [ask(r, POLLIN)];
    assert_eq!(vfs.poll(&mut fds), 1);
    assert_eq!(fds[0].revents as u16, POLLHUP);
    // The read end closed: the write end is in error.
    let [r2, w2] = vfs.pipe2(0).unwrap();
    vfs.close(r2).unwrap();
    let mut fds = [ask(w2, 0)];
    assert_eq!(vfs.poll(&mut fds), 1);
    assert_eq!(fds[0].revents as u16, POLLERR);
}
