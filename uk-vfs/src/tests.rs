//! Host unit tests of the typed API and the syscall adapters.

use alloc::vec;
use alloc::vec::Vec;
use std::sync::Arc as StdArc;

use crate::*;

mod epoll;
mod procfs;
mod record_lock;
mod timerfd;

pub(crate) fn fresh() -> Vfs {
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
            b"shm",
            b"urandom",
            b"zero"
        ]
    );
}

#[test]
fn dev_shm_is_an_empty_directory_and_the_global_vfs_mounts_a_ramfs_on_it() {
    // Bare devfs: an empty, sticky, world-writable directory that refuses new entries.
    let vfs = fresh();
    let st = vfs.stat("/dev/shm").unwrap();
    assert_eq!(st.mode, S_IFDIR | 0o1777);
    assert_eq!(vfs.stat("/dev").unwrap().nlink, 3, "., .. and shm's ..");
    assert_eq!(names(&vfs, "/dev/shm"), [&b"."[..], b".."]);
    assert_eq!(
        vfs.open("/dev/shm/x", O_RDWR | O_CREAT, 0o600),
        Err(Errno::EPERM)
    );
    assert_eq!(vfs.mkdir("/dev/shm", 0o755), Err(Errno::EEXIST));
    assert_eq!(vfs.rmdir("/dev/shm"), Err(Errno::EPERM));
    assert_eq!(vfs.rmdir("/dev/null"), Err(Errno::ENOTDIR));
    // The image's VFS: what musl's shm_open and sem_open do there works.
    let vfs = global::vfs();
    let fd = vfs
        .open("/dev/shm/sem.uk-test", O_RDWR | O_CREAT | O_EXCL, 0o600)
        .unwrap();
    assert_eq!(vfs.write(fd, b"abcd"), Ok(4));
    vfs.close(fd).unwrap();
    assert_eq!(vfs.stat("/dev/shm/sem.uk-test").unwrap().size, 4);
    assert_eq!(vfs.rmdir("/dev/shm"), Err(Errno::EBUSY), "a mount point");
    vfs.unlink("/dev/shm/sem.uk-test").unwrap();
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

std::thread_local! {
    /// What the calling thread's next wait that finds its condition false ends with, as a
    /// signal layer's wait does when a handler ran (`EINTR`, or `ERESTARTSYS` for one
    /// with `SA_RESTART`).
    static INTERRUPT: core::cell::Cell<Option<Errno>> = const { core::cell::Cell::new(None) };
}

/// Makes the calling thread's next wait end with `errno` (see [`INTERRUPT`]).
fn interrupt_next_wait(errno: Errno) {
    INTERRUPT.with(|i| i.set(Some(errno)));
}

/// Whether the interruption [`interrupt_next_wait`] asked for is still to happen.
fn interrupt_pending() -> bool {
    INTERRUPT.with(|i| i.get().is_some())
}

std::thread_local! {
    /// What "the signal handler" does when the interruption [`interrupt_next_wait`] asked
    /// for happens: it runs before the wait returns, as a real handler does.
    static HANDLER: core::cell::RefCell<Option<alloc::boxed::Box<dyn FnOnce()>>> =
        const { core::cell::RefCell::new(None) };
}

/// Makes the calling thread's next wait end with `errno` after running `handler`.
fn interrupt_next_wait_running(errno: Errno, handler: impl FnOnce() + 'static) {
    HANDLER.with(|h| *h.borrow_mut() = Some(alloc::boxed::Box::new(handler)));
    interrupt_next_wait(errno);
}

impl wait::Wait for ThreadWait {
    fn wait(&self, ready: &mut dyn FnMut() -> bool) -> Result<(), Errno> {
        let mut g = self.lock.lock().unwrap();
        while !ready() {
            if let Some(errno) = INTERRUPT.with(|i| i.take()) {
                drop(g);
                if let Some(handler) = HANDLER.with(|h| h.borrow_mut().take()) {
                    handler();
                }
                return Err(errno);
            }
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

pub(crate) fn thread_wait() -> alloc::boxed::Box<dyn wait::Wait> {
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

/// A wait a signal ends: the blocking calls fail with `EINTR`, wait again after
/// `ERESTARTSYS` (`SA_RESTART`) and then return what came later, and a pipe write that put
/// part of its bytes in returns that count either way. `ERESTARTSYS` never comes out.
#[test]
fn interrupted_waits_fail_with_eintr_restart_or_return_the_part_done() {
    wait::set_wait_factory(thread_wait);
    let vfs = StdArc::new(fresh());
    let later = |f: fn(&Vfs, Fd), vfs: &StdArc<Vfs>, fd: Fd| {
        let vfs = vfs.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            f(&vfs, fd);
        })
    };
    let [r, w] = vfs.pipe2(0).unwrap();
    let mut buf = [0u8; 8];
    // A read of an empty pipe.
    interrupt_next_wait(Errno::EINTR);
    assert_eq!(vfs.read(r, &mut buf), Err(Errno::EINTR));
    interrupt_next_wait(Errno::ERESTARTSYS);
    let writer = later(|vfs, w| assert_eq!(vfs.write(w, b"late"), Ok(4)), &vfs, w);
    assert_eq!(
        vfs.read(r, &mut buf),
        Ok(4),
        "restarted, it gets the later write"
    );
    assert!(
        !interrupt_pending(),
        "the read did wait and was interrupted"
    );
    writer.join().unwrap();
    assert_eq!(&buf[..4], b"late");
    // readv: the same call underneath.
    interrupt_next_wait(Errno::EINTR);
    assert_eq!(vfs.readv(r, &mut [&mut buf[..]]), Err(Errno::EINTR));
    // A write larger than PIPE_BUF into a pipe with 100 bytes of room: it puts 100 in,
    // waits for more, and returns 100 when interrupted, with SA_RESTART or without.
    for errno in [Errno::EINTR, Errno::ERESTARTSYS] {
        assert_eq!(
            vfs.write(w, &vec![1u8; PIPE_CAPACITY - 100]),
            Ok(PIPE_CAPACITY - 100)
        );
        interrupt_next_wait(errno);
        assert_eq!(vfs.write(w, &vec![2u8; PIPE_BUF + 1]), Ok(100), "{errno:?}");
        assert!(!interrupt_pending());
        let mut all = vec![0u8; PIPE_CAPACITY];
        assert_eq!(vfs.read(r, &mut all), Ok(PIPE_CAPACITY));
        assert_eq!(all[PIPE_CAPACITY - 1], 2);
    }
    // A write into a full pipe that put nothing in: EINTR, or waits on after a restart
    // until a reader makes room.
    assert_eq!(vfs.write(w, &vec![1u8; PIPE_CAPACITY]), Ok(PIPE_CAPACITY));
    interrupt_next_wait(Errno::EINTR);
    assert_eq!(vfs.write(w, b"x"), Err(Errno::EINTR));
    interrupt_next_wait(Errno::ERESTARTSYS);
    let reader = later(
        |vfs, r| assert_eq!(vfs.read(r, &mut [0u8; 10]), Ok(10)),
        &vfs,
        r,
    );
    assert_eq!(vfs.write(w, b"x"), Ok(1));
    assert!(!interrupt_pending());
    reader.join().unwrap();
    vfs.close(r).unwrap();
    vfs.close(w).unwrap();
    // An eventfd: a read of 0, a write past the maximum.
    let e = vfs.eventfd2(0, 0).unwrap();
    interrupt_next_wait(Errno::EINTR);
    assert_eq!(vfs.read(e, &mut buf), Err(Errno::EINTR));
    interrupt_next_wait(Errno::ERESTARTSYS);
    let writer = later(
        |vfs, e| assert_eq!(vfs.write(e, &5u64.to_ne_bytes()), Ok(8)),
        &vfs,
        e,
    );
    assert_eq!(vfs.read(e, &mut buf), Ok(8));
    assert!(!interrupt_pending());
    writer.join().unwrap();
    assert_eq!(u64::from_ne_bytes(buf), 5);
    assert_eq!(vfs.write(e, &eventfd::EVENTFD_MAX.to_ne_bytes()), Ok(8));
    interrupt_next_wait(Errno::EINTR);
    assert_eq!(vfs.write(e, &1u64.to_ne_bytes()), Err(Errno::EINTR));
    vfs.close(e).unwrap();
    // flock: a request that conflicts.
    vfs.write_file("/locked", b"x", 0o644).unwrap();
    let a = vfs.open("/locked", O_RDONLY, 0).unwrap();
    let b = vfs.open("/locked", O_RDONLY, 0).unwrap();
    assert_eq!(vfs.flock(a, LOCK_EX), Ok(()));
    interrupt_next_wait(Errno::EINTR);
    assert_eq!(vfs.flock(b, LOCK_SH), Err(Errno::EINTR));
    interrupt_next_wait(Errno::ERESTARTSYS);
    let unlocker = later(|vfs, a| assert_eq!(vfs.flock(a, LOCK_UN), Ok(())), &vfs, a);
    assert_eq!(vfs.flock(b, LOCK_SH), Ok(()));
    assert!(!interrupt_pending());
    unlocker.join().unwrap();
    for fd in [a, b] {
        vfs.close(fd).unwrap();
    }
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

// ----- preadv/pwritev, sendfile, copy_file_range, fallocate, fadvise64, flock, sync,
// ----- chown: the typed API, then the raw adapters

/// What a refused call must leave alone: the file's bytes and status, and the position.
fn file_state(vfs: &Vfs, path: &str, fd: Fd) -> (Vec<u8>, Stat, Result<u64, Errno>) {
    (
        vfs.read_file(path).unwrap(),
        vfs.stat(path).unwrap(),
        vfs.lseek(fd, 0, SEEK_CUR),
    )
}

#[test]
fn preadv_and_pwritev_work_at_an_offset_and_keep_the_position() {
    let vfs = fresh();
    let fd = vfs.open("/f", O_CREAT | O_RDWR, 0o644).unwrap();
    vfs.write(fd, b"0123456789").unwrap();
    vfs.lseek(fd, 3, SEEK_SET).unwrap();
    let (mut a, mut b, mut c) = ([0u8; 2], [0u8; 0], [0u8; 4]);
    assert_eq!(vfs.preadv(fd, &mut [&mut a, &mut b, &mut c], 1), Ok(6));
    assert_eq!((&a, &c), (b"12", b"3456"));
    // Short at the end of the file: stops there.
    assert_eq!(vfs.preadv(fd, &mut [&mut a, &mut c], 7), Ok(3));
    assert_eq!((&a, &c[..1]), (b"78", &b"9"[..]));
    assert_eq!(vfs.pwritev(fd, &[b"ab", b"", b"cd"], 8), Ok(4));
    assert_eq!(vfs.read_file("/f").unwrap(), b"01234567abcd");
    assert_eq!(vfs.lseek(fd, 0, SEEK_CUR), Ok(3), "the position stays");
    // The 2 forms: -1 is the file position, which moves.
    assert_eq!(vfs.preadv2(fd, &mut [&mut a], -1, 0), Ok(2));
    assert_eq!((&a, vfs.lseek(fd, 0, SEEK_CUR)), (b"34", Ok(5)));
    assert_eq!(vfs.pwritev2(fd, &[b"XY"], -1, 0), Ok(2));
    assert_eq!(vfs.lseek(fd, 0, SEEK_CUR), Ok(7));
    assert_eq!(vfs.preadv2(fd, &mut [&mut a], 0, 0), Ok(2));
    assert_eq!(vfs.pwritev2(fd, &[b"z"], 0, 0), Ok(1));
    assert_eq!(vfs.read_file("/f").unwrap(), b"z1234XY7abcd");
    // O_APPEND: pwritev appends, as pwrite does.
    let ap = vfs.open("/f", O_WRONLY | O_APPEND, 0).unwrap();
    assert_eq!(vfs.pwritev(ap, &[b"!"], 0), Ok(1));
    assert_eq!(vfs.read_file("/f").unwrap(), b"z1234XY7abcd!");
    // Refusals, in Linux's order, change nothing.
    let before = file_state(&vfs, "/f", fd);
    let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
    let dir = vfs.open("/", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let ro = vfs.open("/f", O_RDONLY, 0).unwrap();
    assert_eq!(vfs.preadv(999, &mut [&mut a], -1), Err(Errno::EINVAL));
    assert_eq!(vfs.preadv(999, &mut [&mut a], 0), Err(Errno::EBADF));
    assert_eq!(vfs.preadv(r, &mut [&mut a], 0), Err(Errno::ESPIPE));
    assert_eq!(vfs.pwritev(w, &[b"x"], 0), Err(Errno::ESPIPE));
    assert_eq!(vfs.preadv(ap, &mut [&mut a], 0), Err(Errno::EBADF));
    assert_eq!(vfs.pwritev(ro, &[b"x"], 0), Err(Errno::EBADF));
    assert_eq!(vfs.preadv(dir, &mut [&mut a], 0), Err(Errno::EISDIR));
    assert_eq!(vfs.preadv(dir, &mut [], 0), Ok(0), "nothing to read: 0");
    assert_eq!(vfs.pwritev(fd, &[b"x"], i64::MAX), Err(Errno::EINVAL));
    assert_eq!(vfs.preadv2(fd, &mut [&mut a], -2, 0), Err(Errno::EINVAL));
    for flags in [1, 0x1000, u32::MAX] {
        assert_eq!(
            vfs.preadv2(fd, &mut [&mut a], 0, flags),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(vfs.pwritev2(fd, &[b"x"], -1, flags), Err(Errno::EOPNOTSUPP));
        assert_eq!(
            vfs.preadv2(r, &mut [&mut a], -1, flags),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(
            vfs.pwritev2(fd, &[], 0, flags),
            Ok(0),
            "as Linux: nothing moves"
        );
    }
    assert_eq!(file_state(&vfs, "/f", fd), before);
    for f in [fd, ap, r, w, dir, ro] {
        vfs.close(f).unwrap();
    }
}

#[test]
fn vectored_offset_syscalls_check_like_linux_and_refuse_without_changes() {
    use uk_syscall::{Sysno, dispatch};
    let call = |n: Sysno, args: [usize; 6]| dispatch(n as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    vfs.mkdir_all("/preadv_test").unwrap();
    vfs.write_file("/preadv_test/f", b"0123456789", 0o644)
        .unwrap();
    let fd = vfs.open("/preadv_test/f", O_RDWR, 0).unwrap();
    vfs.lseek(fd, 2, SEEK_SET).unwrap();
    let (mut a, mut b) = ([0u8; 3], [0u8; 4]);
    let iov: [usize; 4] = [a.as_mut_ptr() as usize, 3, b.as_mut_ptr() as usize, 4];
    let iov_ptr = iov.as_ptr() as usize;
    let f = fd as usize;
    assert_eq!(call(Sysno::preadv, [f, iov_ptr, 2, 1, 0, 0]), 7);
    assert_eq!((&a, &b), (b"123", b"4567"));
    let data = *b"abcdefg";
    let wiov: [usize; 2] = [data.as_ptr() as usize, 7];
    assert_eq!(
        call(Sysno::pwritev, [f, wiov.as_ptr() as usize, 1, 3, 0, 0]),
        7
    );
    assert_eq!(vfs.read_file("/preadv_test/f").unwrap(), b"012abcdefg");
    assert_eq!(vfs.lseek(fd, 0, SEEK_CUR), Ok(2));
    let minus_one = -1i64 as usize;
    assert_eq!(call(Sysno::preadv2, [f, iov_ptr, 1, minus_one, 0, 0]), 3);
    assert_eq!((&a, vfs.lseek(fd, 0, SEEK_CUR)), (b"2ab", Ok(5)));
    assert_eq!(
        call(
            Sysno::pwritev2,
            [f, wiov.as_ptr() as usize, 1, minus_one, 0, 0]
        ),
        7
    );
    assert_eq!(vfs.lseek(fd, 0, SEEK_CUR), Ok(12));
    // Bad input changes nothing.
    let before = file_state(vfs, "/preadv_test/f", fd);
    let a_before = a;
    let bad_base: [usize; 2] = [8, 3];
    let [r, _w] = vfs.pipe2(O_NONBLOCK).unwrap();
    for (n, args, errno) in [
        (
            Sysno::preadv,
            [999, iov_ptr, 1, minus_one, 0, 0],
            Errno::EINVAL,
        ),
        (Sysno::preadv, [999, iov_ptr, 1, 0, 0, 0], Errno::EBADF),
        (Sysno::preadv, [r as usize, 8, 1, 0, 0, 0], Errno::ESPIPE),
        (Sysno::preadv, [f, 0, 1, 0, 0, 0], Errno::EFAULT),
        (Sysno::preadv, [f, 8, 1, 0, 0, 0], Errno::EFAULT),
        (
            Sysno::preadv,
            [f, bad_base.as_ptr() as usize, 1, 0, 0, 0],
            Errno::EFAULT,
        ),
        (
            Sysno::pwritev,
            [f, bad_base.as_ptr() as usize, 1, 0, 0, 0],
            Errno::EFAULT,
        ),
        (Sysno::preadv, [f, iov_ptr, 1025, 0, 0, 0], Errno::EINVAL),
        (
            Sysno::pwritev,
            [f, wiov.as_ptr() as usize, 1, i64::MAX as usize, 0, 0],
            Errno::EINVAL,
        ),
        (
            Sysno::preadv2,
            [f, iov_ptr, 1, 0, 0, 0x1000],
            Errno::EOPNOTSUPP,
        ),
        (
            Sysno::preadv2,
            [f, iov_ptr, 1, minus_one, 0, 1],
            Errno::EOPNOTSUPP,
        ),
        (
            Sysno::pwritev2,
            [f, wiov.as_ptr() as usize, 1, 0, 0, 8],
            Errno::EOPNOTSUPP,
        ),
        (
            Sysno::pwritev2,
            [f, wiov.as_ptr() as usize, 1, -2i64 as usize, 0, 0],
            Errno::EINVAL,
        ),
        (
            Sysno::preadv2,
            [r as usize, iov_ptr, 1, minus_one, 0, 0],
            Errno::EAGAIN,
        ),
    ] {
        assert_eq!(call(n, args), e(errno), "{n:?} {args:?}");
    }
    assert_eq!(call(Sysno::preadv2, [f, iov_ptr, 0, 0, 0, 0x1000]), 0);
    assert_eq!(
        (file_state(vfs, "/preadv_test/f", fd), a),
        (before, a_before)
    );
    vfs.close(fd).unwrap();
}

#[test]
fn sendfile_copies_from_a_position_or_an_offset() {
    let vfs = fresh();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    vfs.write_file("/in", &data, 0o644).unwrap();
    let input = vfs.open("/in", O_RDONLY, 0).unwrap();
    let out = vfs.open("/out", O_CREAT | O_RDWR, 0o644).unwrap();
    // From the input's position, which moves, to the output's, which moves: in 64 KiB
    // pieces through the kernel buffer.
    vfs.lseek(input, 10, SEEK_SET).unwrap();
    assert_eq!(vfs.sendfile(out, input, None, 150_000), Ok(150_000));
    assert_eq!(vfs.lseek(input, 0, SEEK_CUR), Ok(150_010));
    assert_eq!(vfs.lseek(out, 0, SEEK_CUR), Ok(150_000));
    assert_eq!(vfs.read_file("/out").unwrap(), &data[10..150_010]);
    // At an offset: it advances, the position stays; short at the end, 0 past it.
    let mut off = 199_990;
    assert_eq!(vfs.sendfile(out, input, Some(&mut off), 100), Ok(10));
    assert_eq!((off, vfs.lseek(input, 0, SEEK_CUR)), (200_000, Ok(150_010)));
    assert_eq!(vfs.sendfile(out, input, Some(&mut off), 100), Ok(0));
    assert_eq!(off, 200_000);
    assert_eq!(vfs.sendfile(out, input, None, 0), Ok(0));
    // Devices: /dev/zero reads zeros, /dev/null takes anything.
    let zero = vfs.open("/dev/zero", O_RDONLY, 0).unwrap();
    let null = vfs.open("/dev/null", O_WRONLY, 0).unwrap();
    assert_eq!(vfs.sendfile(null, input, None, 5), Ok(5));
    let z = vfs.open("/z", O_CREAT | O_RDWR, 0o644).unwrap();
    assert_eq!(vfs.sendfile(z, zero, None, 3), Ok(3));
    assert_eq!(vfs.read_file("/z").unwrap(), [0, 0, 0]);
    // Into a pipe: what fits; a full non-blocking pipe is EAGAIN, a blocking one that had
    // room returns once it is full (as Linux: no waiting once bytes moved).
    let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
    let mut off = 0;
    assert_eq!(
        vfs.sendfile(w, input, Some(&mut off), 200_000),
        Ok(PIPE_CAPACITY)
    );
    assert_eq!(
        vfs.sendfile(w, input, Some(&mut off), 1),
        Err(Errno::EAGAIN)
    );
    assert_eq!(off, PIPE_CAPACITY as i64);
    assert_eq!(vfs.read(r, &mut [0; 100]), Ok(100));
    assert_eq!(vfs.sendfile(w, input, Some(&mut off), 1000), Ok(100));
    let [br, bw] = vfs.pipe2(0).unwrap();
    assert_eq!(
        vfs.sendfile(bw, input, Some(&mut 0), 200_000),
        Ok(PIPE_CAPACITY)
    );
    let mut got = vec![0u8; PIPE_CAPACITY];
    assert_eq!(vfs.read(br, &mut got), Ok(PIPE_CAPACITY));
    assert_eq!(got, &data[..PIPE_CAPACITY]);
    vfs.close(br).unwrap();
    assert_eq!(vfs.sendfile(bw, input, Some(&mut 0), 1), Err(Errno::EPIPE));
    // Refusals in Linux's order change nothing.
    let before = (
        file_state(&vfs, "/in", input),
        file_state(&vfs, "/out", out),
    );
    let dir = vfs.open("/", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let ap = vfs.open("/out", O_WRONLY | O_APPEND, 0).unwrap();
    let wo = vfs.open("/in", O_WRONLY, 0).unwrap();
    let mut off = 5;
    for (out_fd, in_fd, offset, count, errno) in [
        (out, 999, None, 1, Errno::EBADF),
        (out, wo, None, 1, Errno::EBADF),
        (out, r, Some(0), 1, Errno::ESPIPE),
        (999, input, Some(-1), 1, Errno::EINVAL),
        (out, input, Some(i64::MAX), 1, Errno::EINVAL),
        (out, input, Some(0), usize::MAX, Errno::EINVAL),
        (999, input, Some(0), 1, Errno::EBADF),
        (input, input, Some(0), 1, Errno::EBADF),
        (dir, input, Some(0), 1, Errno::EBADF),
        (ap, input, Some(0), 1, Errno::EINVAL),
        (out, r, None, 1, Errno::EINVAL),
        (out, r, None, 0, Errno::EINVAL),
        (ap, input, Some(0), 0, Errno::EINVAL),
        (w, r, None, 1, Errno::EINVAL),
        (out, dir, None, 1, Errno::EINVAL),
        (w, dir, None, 1, Errno::EINVAL),
    ] {
        let mut o = offset;
        assert_eq!(
            vfs.sendfile(out_fd, in_fd, o.as_mut(), count),
            Err(errno),
            "{out_fd} {in_fd} {offset:?} {count}"
        );
        assert_eq!(o, offset);
    }
    assert_eq!(
        vfs.sendfile(999, input, Some(&mut off), 0),
        Err(Errno::EBADF)
    );
    assert_eq!(off, 5);
    // Nothing to copy is 0 before the input's kind is looked at, as on Linux.
    assert_eq!(vfs.sendfile(out, dir, None, 0), Ok(0));
    assert_eq!(vfs.sendfile(w, dir, None, 0), Ok(0));
    assert_eq!(vfs.sendfile(w, r, None, 0), Ok(0));
    assert_eq!(
        (
            file_state(&vfs, "/in", input),
            file_state(&vfs, "/out", out)
        ),
        before
    );
}

#[test]
fn sendfile_syscall_reads_and_writes_back_the_callers_offset() {
    use uk_syscall::{Sysno, dispatch};
    let call = |args: [usize; 6]| dispatch(Sysno::sendfile as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    vfs.mkdir_all("/sendfile_test").unwrap();
    vfs.write_file("/sendfile_test/in", b"0123456789", 0o644)
        .unwrap();
    let input = vfs.open("/sendfile_test/in", O_RDONLY, 0).unwrap();
    let out = vfs
        .open("/sendfile_test/out", O_CREAT | O_RDWR, 0o644)
        .unwrap();
    let (i, o) = (input as usize, out as usize);
    let mut off: i64 = 4;
    let off_ptr = &raw mut off as usize;
    assert_eq!(call([o, i, off_ptr, 3, 0, 0]), 3);
    assert_eq!(off, 7);
    assert_eq!(call([o, i, 0, 2, 0, 0]), 2);
    assert_eq!(vfs.lseek(input, 0, SEEK_CUR), Ok(2));
    assert_eq!(vfs.read_file("/sendfile_test/out").unwrap(), b"45601");
    // A bad offset pointer is EFAULT before anything (even a bad descriptor).
    let before = (
        file_state(vfs, "/sendfile_test/in", input),
        file_state(vfs, "/sendfile_test/out", out),
    );
    assert_eq!(call([o, i, 8, 3, 0, 0]), e(Errno::EFAULT));
    assert_eq!(call([999, 999, 8, 3, 0, 0]), e(Errno::EFAULT));
    assert_eq!(call([999, i, off_ptr, 3, 0, 0]), e(Errno::EBADF));
    off = -1;
    assert_eq!(call([o, i, off_ptr, 3, 0, 0]), e(Errno::EINVAL));
    assert_eq!(off, -1);
    assert_eq!(
        (
            file_state(vfs, "/sendfile_test/in", input),
            file_state(vfs, "/sendfile_test/out", out)
        ),
        before
    );
    vfs.close(input).unwrap();
    vfs.close(out).unwrap();
}

#[test]
fn copy_file_range_copies_regular_files_with_linuxs_checks() {
    let vfs = fresh();
    let data: Vec<u8> = (0..100u8).collect();
    vfs.write_file("/f", &data, 0o644).unwrap();
    let f = vfs.open("/f", O_RDWR, 0).unwrap();
    let g = vfs.open("/g", O_CREAT | O_RDWR, 0o644).unwrap();
    let cfr = |fi, oi: Option<i64>, fo, oo: Option<i64>, len, flags| {
        let (mut a, mut b) = (oi, oo);
        let r = vfs.copy_file_range(fi, a.as_mut(), fo, b.as_mut(), len, flags);
        (r, a, b)
    };
    // Offsets advance; positions stay. Without offsets, the positions are used and move.
    assert_eq!(cfr(f, Some(0), g, Some(0), 5, 0), (Ok(5), Some(5), Some(5)));
    assert_eq!(vfs.lseek(f, 0, SEEK_CUR), Ok(0));
    assert_eq!(vfs.lseek(g, 0, SEEK_CUR), Ok(0));
    vfs.lseek(f, 3, SEEK_SET).unwrap();
    assert_eq!(cfr(f, None, g, None, 5, 0), (Ok(5), None, None));
    assert_eq!(
        (vfs.lseek(f, 0, SEEK_CUR), vfs.lseek(g, 0, SEEK_CUR)),
        (Ok(8), Ok(5))
    );
    assert_eq!(vfs.read_file("/g").unwrap(), [3, 4, 5, 6, 7]);
    // Shortened to the input's end; 0 past it; a huge length is fine.
    assert_eq!(cfr(f, Some(95), g, Some(0), 50, 0).0, Ok(5));
    assert_eq!(
        cfr(f, Some(1000), g, Some(0), 5, 0),
        (Ok(0), Some(1000), Some(0))
    );
    assert_eq!(cfr(f, Some(0), g, Some(0), usize::MAX, 0).0, Ok(100));
    assert_eq!(vfs.read_file("/g").unwrap(), data);
    // Within one file: apart is fine, overlapping is EINVAL (after shortening).
    assert_eq!(cfr(f, Some(0), f, Some(50), 10, 0).0, Ok(10));
    assert_eq!(cfr(f, Some(0), f, Some(5), 10, 0).0, Err(Errno::EINVAL));
    assert_eq!(cfr(f, Some(200), f, Some(205), 10, 0).0, Ok(0));
    assert_eq!(cfr(f, None, f, None, 5, 0).0, Err(Errno::EINVAL));
    // Near the largest offset: clamped, then EFBIG.
    assert_eq!(cfr(f, Some(0), g, Some(i64::MAX - 3), 5, 0).0, Ok(3));
    assert_eq!(
        cfr(f, Some(0), g, Some(i64::MAX), 5, 0).0,
        Err(Errno::EFBIG)
    );
    vfs.ftruncate(g, 100).unwrap();
    // Refusals in Linux 6.18's order (each checked on a host) change nothing.
    let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
    let dir = vfs.open("/", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let ro = vfs.open("/g", O_RDONLY, 0).unwrap();
    let wo = vfs.open("/g", O_WRONLY, 0).unwrap();
    let ap = vfs.open("/g", O_WRONLY | O_APPEND, 0).unwrap();
    let null = vfs.open("/dev/null", O_RDWR, 0).unwrap();
    vfs.mkdir("/mnt", 0o755).unwrap();
    vfs.mount("/mnt", RamFs::new()).unwrap();
    let other = vfs.open("/mnt/x", O_CREAT | O_RDWR, 0o644).unwrap();
    let before = (file_state(&vfs, "/f", f), file_state(&vfs, "/g", g));
    for (fi, oi, fo, oo, len, flags, errno) in [
        (999, Some(0), 999, Some(0), 5, 1, Errno::EBADF),
        (f, Some(0), 999, Some(0), 5, 0, Errno::EBADF),
        (f, Some(0), g, Some(0), 5, 1, Errno::EINVAL),
        (r, None, g, Some(0), 5, 1, Errno::EINVAL),
        (dir, Some(0), w, None, 5, 0, Errno::EISDIR),
        (r, None, dir, Some(0), 5, 0, Errno::EISDIR),
        (r, None, g, Some(0), 5, 0, Errno::EINVAL),
        (f, Some(0), w, None, 5, 0, Errno::EINVAL),
        (null, Some(0), g, Some(0), 5, 0, Errno::EINVAL),
        (wo, Some(0), g, Some(0), 5, 0, Errno::EBADF),
        (f, Some(0), ro, Some(0), 5, 0, Errno::EBADF),
        (ro, Some(0), ap, Some(0), 5, 0, Errno::EBADF),
        (f, Some(0), other, Some(0), 5, 0, Errno::EXDEV),
        (f, Some(-1), g, Some(0), 5, 0, Errno::EOVERFLOW),
        (f, Some(-10), g, Some(0), 5, 0, Errno::EINVAL),
        (f, Some(0), g, Some(-1), 5, 0, Errno::EOVERFLOW),
        (f, Some(0), g, Some(-10), 5, 0, Errno::EINVAL),
        (f, Some(-1), g, Some(0), 0, 0, Errno::EINVAL),
        (f, Some(5), g, Some(0), usize::MAX, 0, Errno::EOVERFLOW),
    ] {
        assert_eq!(
            cfr(fi, oi, fo, oo, len, flags),
            (Err(errno), oi, oo),
            "{fi} {oi:?} {fo} {oo:?} {len} {flags}"
        );
    }
    assert_eq!(
        (file_state(&vfs, "/f", f), file_state(&vfs, "/g", g)),
        before
    );
}

#[test]
fn copy_file_range_syscall_checks_descriptors_then_offsets_then_flags() {
    use uk_syscall::{Sysno, dispatch};
    let call = |args: [usize; 6]| dispatch(Sysno::copy_file_range as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    vfs.mkdir_all("/cfr_test").unwrap();
    vfs.write_file("/cfr_test/in", b"0123456789", 0o644)
        .unwrap();
    let input = vfs.open("/cfr_test/in", O_RDONLY, 0).unwrap();
    let out = vfs.open("/cfr_test/out", O_CREAT | O_RDWR, 0o644).unwrap();
    let (i, o) = (input as usize, out as usize);
    let (mut off_in, mut off_out): (i64, i64) = (6, 1);
    let (pi, po) = (&raw mut off_in as usize, &raw mut off_out as usize);
    assert_eq!(call([i, pi, o, po, 3, 0]), 3);
    assert_eq!((off_in, off_out), (9, 4));
    assert_eq!(call([i, 0, o, 0, 2, 0]), 2);
    assert_eq!(vfs.read_file("/cfr_test/out").unwrap(), b"0178");
    let before = (
        file_state(vfs, "/cfr_test/in", input),
        file_state(vfs, "/cfr_test/out", out),
    );
    assert_eq!(call([999, 8, o, 8, 3, 1]), e(Errno::EBADF));
    assert_eq!(call([i, pi, 999, 8, 3, 1]), e(Errno::EBADF));
    assert_eq!(call([i, 8, o, po, 3, 1]), e(Errno::EFAULT));
    assert_eq!(call([i, pi, o, 8, 3, 1]), e(Errno::EFAULT));
    assert_eq!(call([i, pi, o, po, 3, 1]), e(Errno::EINVAL));
    assert_eq!((off_in, off_out), (9, 4));
    assert_eq!(
        (
            file_state(vfs, "/cfr_test/in", input),
            file_state(vfs, "/cfr_test/out", out)
        ),
        before
    );
    vfs.close(input).unwrap();
    vfs.close(out).unwrap();
}

#[test]
fn fallocate_grows_regular_files_and_refuses_in_linuxs_order() {
    let vfs = fresh();
    let fd = vfs.open("/f", O_CREAT | O_RDWR, 0o644).unwrap();
    vfs.write(fd, b"abc").unwrap();
    assert_eq!(vfs.fallocate(fd, 0, 2, 8), Ok(()));
    assert_eq!(vfs.read_file("/f").unwrap(), b"abc\0\0\0\0\0\0\0");
    assert_eq!(vfs.fstat(fd).unwrap().blocks, 8, "nothing reserved");
    assert_eq!(vfs.fallocate(fd, 0, 0, 4), Ok(()), "never shrinks");
    assert_eq!(vfs.fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 100_000), Ok(()));
    assert_eq!(vfs.fstat(fd).unwrap().size, 10);
    let ap = vfs.open("/f", O_WRONLY | O_APPEND, 0).unwrap();
    assert_eq!(vfs.fallocate(ap, 0, 0, 12), Ok(()));
    assert_eq!(vfs.fstat(fd).unwrap().size, 12);
    // Up to the largest size; a sparse file costs nothing.
    let big = vfs.open("/big", O_CREAT | O_RDWR, 0o644).unwrap();
    assert_eq!(vfs.fallocate(big, 0, i64::MAX - 9, 9), Ok(()));
    assert_eq!(vfs.fstat(big).unwrap().size, i64::MAX as u64);
    assert_eq!(vfs.fallocate(big, 0, i64::MAX - 9, 10), Err(Errno::EFBIG));
    // Refusals in Linux 6.18's order (each checked on a host) change nothing.
    let before = file_state(&vfs, "/f", fd);
    let [r, w] = vfs.pipe2(0).unwrap();
    let ro = vfs.open("/f", O_RDONLY, 0).unwrap();
    let dir = vfs.open("/", O_RDONLY | O_DIRECTORY, 0).unwrap();
    let null = vfs.open("/dev/null", O_RDWR, 0).unwrap();
    for (f, mode, offset, len, errno) in [
        (999, 0, -1, 10, Errno::EBADF),
        (fd, 0, -1, 10, Errno::EINVAL),
        (fd, 0, 0, 0, Errno::EINVAL),
        (ro, 0x100, 0, 0, Errno::EINVAL),
        (ro, 0x100, 0, 10, Errno::EOPNOTSUPP),
        (w, FALLOC_FL_PUNCH_HOLE, 0, 10, Errno::EOPNOTSUPP),
        (w, FALLOC_FL_ZERO_RANGE | 0x04, 0, 10, Errno::EOPNOTSUPP),
        (
            w,
            FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE,
            0,
            10,
            Errno::EOPNOTSUPP,
        ),
        (ro, 0, 0, 10, Errno::EBADF),
        (r, 0, 0, 10, Errno::EBADF),
        (w, 0, 0, 10, Errno::ESPIPE),
        (
            w,
            FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            0,
            10,
            Errno::ESPIPE,
        ),
        (dir, 0, 0, 10, Errno::EBADF),
        (null, 0, 0, 10, Errno::ENODEV),
        (fd, 0, 1 << 62, 1 << 62, Errno::EFBIG),
        (
            fd,
            FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            0,
            10,
            Errno::EOPNOTSUPP,
        ),
        (fd, FALLOC_FL_ZERO_RANGE, 0, 10, Errno::EOPNOTSUPP),
        (fd, FALLOC_FL_INSERT_RANGE, 0, 10, Errno::EOPNOTSUPP),
    ] {
        assert_eq!(
            vfs.fallocate(f, mode, offset, len),
            Err(errno),
            "{f} {mode:#x} {offset} {len}"
        );
    }
    assert_eq!(file_state(&vfs, "/f", fd), before);
}

#[test]
fn fadvise_is_a_hint_with_linuxs_errors() {
    use uk_syscall::{Sysno, dispatch};
    let vfs = global::vfs();
    vfs.mkdir_all("/fadvise_test").unwrap();
    vfs.write_file("/fadvise_test/f", b"x", 0o644).unwrap();
    let fd = vfs.open("/fadvise_test/f", O_RDONLY, 0).unwrap();
    let [r, w] = vfs.pipe2(0).unwrap();
    for advice in POSIX_FADV_NORMAL..=POSIX_FADV_NOREUSE {
        assert_eq!(vfs.fadvise(fd, -5, 0, advice), Ok(()));
    }
    assert_eq!(vfs.fadvise(fd, 0, -1, 0), Err(Errno::EINVAL));
    assert_eq!(vfs.fadvise(fd, 0, 0, 6), Err(Errno::EINVAL));
    assert_eq!(vfs.fadvise(r, 0, 0, 9), Err(Errno::ESPIPE));
    assert_eq!(vfs.fadvise(999, 0, 0, 9), Err(Errno::EBADF));
    let call = |args: [usize; 6]| dispatch(Sysno::fadvise64 as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    // The advice is a C int: the high half of the register is not looked at.
    assert_eq!(call([fd as usize, 0, 100, (1 << 32) | 4, 0, 0]), 0);
    assert_eq!(
        call([fd as usize, 0, 0, usize::MAX, 0, 0]),
        e(Errno::EINVAL)
    );
    assert_eq!(call([w as usize, 0, 0, 0, 0, 0]), e(Errno::ESPIPE));
    for f in [fd, r, w] {
        vfs.close(f).unwrap();
    }
}

#[test]
fn flock_locks_open_file_descriptions_shared_by_dup() {
    let root = RamFs::new();
    let vfs = Vfs::new(root.clone());
    vfs.write_file("/f", b"x", 0o644).unwrap();
    let a = vfs.open("/f", O_RDONLY, 0).unwrap();
    let b = vfs.open("/f", O_RDONLY, 0).unwrap();
    // Two opens of one file conflict, also in one process.
    assert_eq!(vfs.flock(a, LOCK_EX | LOCK_NB), Ok(()));
    assert_eq!(vfs.flock(a, LOCK_EX | LOCK_NB), Ok(()), "held already");
    assert_eq!(vfs.flock(b, LOCK_SH | LOCK_NB), Err(Errno::EWOULDBLOCK));
    assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
    // dup shares the lock: the copy holds it, and converts it.
    let a2 = vfs.dup(a).unwrap();
    assert_eq!(vfs.flock(a2, LOCK_EX | LOCK_NB), Ok(()));
    assert_eq!(vfs.flock(a2, LOCK_SH | LOCK_NB), Ok(()));
    assert_eq!(
        vfs.flock(b, LOCK_SH | LOCK_NB),
        Ok(()),
        "shared with shared"
    );
    assert_eq!(vfs.flock(b, LOCK_EX | LOCK_NB), Err(Errno::EWOULDBLOCK));
    // Linux's conversion: the old lock went first, so b now holds none.
    assert_eq!(vfs.flock(a, LOCK_EX | LOCK_NB), Ok(()));
    assert_eq!(vfs.flock(b, LOCK_SH | LOCK_NB), Err(Errno::EWOULDBLOCK));
    // Another process's VFS over the same filesystem sees the lock (it is on the file).
    let other = Vfs::new(root);
    let c = other.open("/f", O_RDONLY, 0).unwrap();
    assert_eq!(other.flock(c, LOCK_SH | LOCK_NB), Err(Errno::EWOULDBLOCK));
    // Closing one of two descriptors keeps the lock; the last close releases it.
    vfs.close(a).unwrap();
    assert_eq!(other.flock(c, LOCK_SH | LOCK_NB), Err(Errno::EWOULDBLOCK));
    vfs.close(a2).unwrap();
    assert_eq!(other.flock(c, LOCK_EX | LOCK_NB), Ok(()));
    assert_eq!(other.flock(c, LOCK_UN), Ok(()));
    assert_eq!(
        other.flock(c, LOCK_UN | LOCK_NB),
        Ok(()),
        "nothing held: fine"
    );
    assert_eq!(vfs.flock(b, LOCK_EX | LOCK_NB), Ok(()));
    // Bad operations are EINVAL before the descriptor is looked at; LOCK_MAND is ignored.
    for op in [
        0,
        LOCK_NB,
        LOCK_SH | LOCK_EX,
        LOCK_UN | LOCK_SH,
        16,
        64,
        128 | 1,
    ] {
        assert_eq!(vfs.flock(999, op), Err(Errno::EINVAL), "op {op}");
        assert_eq!(other.flock(c, op), Err(Errno::EINVAL), "op {op}");
    }
    assert_eq!(vfs.flock(999, LOCK_SH), Err(Errno::EBADF));
    assert_eq!(vfs.flock(999, LOCK_MAND), Ok(()));
    assert_eq!(other.flock(c, LOCK_MAND | LOCK_EX), Ok(()));
    assert_eq!(other.flock(c, LOCK_SH | LOCK_NB), Err(Errno::EWOULDBLOCK));
    // Pipes and directories lock too.
    let [r, w] = vfs.pipe2(0).unwrap();
    let r2 = vfs.open("/", O_RDONLY | O_DIRECTORY, 0).unwrap();
    assert_eq!(vfs.flock(r, LOCK_EX | LOCK_NB), Ok(()));
    assert_eq!(vfs.flock(w, LOCK_SH | LOCK_NB), Err(Errno::EWOULDBLOCK));
    assert_eq!(vfs.flock(r2, LOCK_EX | LOCK_NB), Ok(()));
    for f in [b, r, w, r2] {
        vfs.close(f).unwrap();
    }
    assert_eq!(other.flock(c, LOCK_EX | LOCK_NB), Ok(()), "all released");
}

#[test]
fn flock_waits_until_the_lock_is_released() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    wait::set_wait_factory(thread_wait);
    let vfs = StdArc::new(fresh());
    vfs.write_file("/f", b"x", 0o644).unwrap();
    let holder = vfs.open("/f", O_RDONLY, 0).unwrap();
    vfs.flock(holder, LOCK_EX).unwrap();
    // A waiting exclusive request gets the lock once the holder's last descriptor closes.
    let got = StdArc::new(AtomicBool::new(false));
    let waiter = {
        let (vfs, got) = (vfs.clone(), got.clone());
        std::thread::spawn(move || {
            let fd = vfs.open("/f", O_RDONLY, 0).unwrap();
            vfs.flock(fd, LOCK_EX).unwrap();
            got.store(true, Ordering::SeqCst);
            fd
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(!got.load(Ordering::SeqCst), "still waiting");
    let dup = vfs.dup(holder).unwrap();
    vfs.close(holder).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert!(!got.load(Ordering::SeqCst), "the dup still holds it");
    vfs.close(dup).unwrap();
    let fd = waiter.join().unwrap();
    assert!(got.load(Ordering::SeqCst));
    // Two shared requests wait for an unlock, then both hold the lock.
    let sharers: Vec<_> = (0..2)
        .map(|_| {
            let vfs = vfs.clone();
            std::thread::spawn(move || {
                let f = vfs.open("/f", O_RDONLY, 0).unwrap();
                vfs.flock(f, LOCK_SH).unwrap();
                f
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    assert!(sharers.iter().all(|t| !t.is_finished()));
    vfs.flock(fd, LOCK_UN).unwrap();
    let shared: Vec<Fd> = sharers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(vfs.flock(fd, LOCK_EX | LOCK_NB), Err(Errno::EWOULDBLOCK));
    // A conversion to exclusive waits for the other sharer.
    let converter = {
        let vfs = vfs.clone();
        let f = shared[0];
        std::thread::spawn(move || vfs.flock(f, LOCK_EX))
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(!converter.is_finished());
    vfs.close(shared[1]).unwrap();
    assert_eq!(converter.join().unwrap(), Ok(()));
    assert_eq!(vfs.flock(fd, LOCK_SH | LOCK_NB), Err(Errno::EWOULDBLOCK));
    vfs.close(shared[0]).unwrap();
    assert_eq!(vfs.flock(fd, LOCK_SH | LOCK_NB), Ok(()));
    vfs.close(fd).unwrap();
}

#[test]
fn flock_syscall_refuses_bad_input() {
    use uk_syscall::{Sysno, dispatch};
    let call = |args: [usize; 6]| dispatch(Sysno::flock as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    vfs.mkdir_all("/flock_test").unwrap();
    vfs.write_file("/flock_test/f", b"x", 0o644).unwrap();
    let a = vfs.open("/flock_test/f", O_RDONLY, 0).unwrap() as usize;
    let b = vfs.open("/flock_test/f", O_RDONLY, 0).unwrap() as usize;
    assert_eq!(call([a, LOCK_SH as usize, 0, 0, 0, 0]), 0);
    assert_eq!(
        call([b, (LOCK_EX | LOCK_NB) as usize, 0, 0, 0, 0]),
        e(Errno::EAGAIN)
    );
    assert_eq!(call([999, 9, 0, 0, 0, 0]), e(Errno::EINVAL));
    assert_eq!(call([999, LOCK_SH as usize, 0, 0, 0, 0]), e(Errno::EBADF));
    assert_eq!(
        call([usize::MAX, LOCK_SH as usize, 0, 0, 0, 0]),
        e(Errno::EBADF)
    );
    assert_eq!(call([a, 0, 0, 0, 0, 0]), e(Errno::EINVAL));
    // Refused requests left a's lock: b still cannot lock exclusively.
    assert_eq!(
        call([b, (LOCK_EX | LOCK_NB) as usize, 0, 0, 0, 0]),
        e(Errno::EAGAIN)
    );
    assert_eq!(call([a, LOCK_UN as usize, 0, 0, 0, 0]), 0);
    assert_eq!(call([b, (LOCK_EX | LOCK_NB) as usize, 0, 0, 0, 0]), 0);
    vfs.close(a as Fd).unwrap();
    vfs.close(b as Fd).unwrap();
}

/// A filesystem of one file that counts `Vnode::sync` calls (what `sync` and `syncfs` ask).
mod counting {
    use alloc::sync::Arc;
    use core::any::Any;
    use core::sync::atomic::{AtomicUsize, Ordering};

    use crate::*;

    pub struct Fs {
        root: Arc<Node>,
        pub syncs: Arc<AtomicUsize>,
    }

    pub struct Node {
        dir: bool,
        dev: u64,
        syncs: Arc<AtomicUsize>,
        file: Option<Arc<Node>>,
    }

    impl Fs {
        pub fn new() -> Arc<Fs> {
            let (syncs, dev) = (Arc::new(AtomicUsize::new(0)), anonymous_dev());
            let file = Arc::new(Node {
                dir: false,
                dev,
                syncs: syncs.clone(),
                file: None,
            });
            let root = Arc::new(Node {
                dir: true,
                dev,
                syncs: syncs.clone(),
                file: Some(file),
            });
            Arc::new(Fs { root, syncs })
        }
    }

    impl FileSystem for Fs {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn root(&self) -> VnodeRef {
            self.root.clone()
        }
    }

    impl Vnode for Node {
        fn stat(&self) -> Stat {
            Stat {
                dev: self.dev,
                ino: if self.dir { 1 } else { 2 },
                mode: self.file_type().mode_bits() | 0o644,
                ..Stat::default()
            }
        }
        fn file_type(&self) -> FileType {
            if self.dir {
                FileType::Directory
            } else {
                FileType::Regular
            }
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn lookup(&self, name: &[u8]) -> Result<VnodeRef, Errno> {
            match (&self.file, name) {
                (Some(f), b"f") => Ok(f.clone()),
                (Some(_), _) => Err(Errno::ENOENT),
                (None, _) => Err(Errno::ENOTDIR),
            }
        }
        fn sync(&self) -> Result<(), Errno> {
            self.syncs.fetch_add(1, Ordering::SeqCst);
            if self.dir { Err(Errno::EIO) } else { Ok(()) }
        }
    }
}

#[test]
fn sync_and_syncfs_ask_the_open_files_to_write_back() {
    use core::sync::atomic::Ordering;
    use uk_syscall::{Sysno, dispatch};
    let vfs = fresh();
    let fs = counting::Fs::new();
    vfs.mkdir("/c", 0o755).unwrap();
    vfs.mount("/c", fs.clone()).unwrap();
    let syncs = || fs.syncs.load(Ordering::SeqCst);
    let mem = vfs.open("/m", O_CREAT | O_RDWR, 0o644).unwrap();
    let f = vfs.open("/c/f", O_RDONLY, 0).unwrap();
    let f2 = vfs.dup(f).unwrap();
    let [r, w] = vfs.pipe2(0).unwrap();
    let null = vfs.open("/dev/null", O_RDONLY, 0).unwrap();
    vfs.sync();
    assert_eq!(syncs(), 2, "once per descriptor of the counting file");
    assert_eq!(vfs.syncfs(mem), Ok(()));
    assert_eq!(vfs.syncfs(r), Ok(()));
    assert_eq!(vfs.syncfs(null), Ok(()));
    assert_eq!(syncs(), 2, "other filesystems are not asked");
    assert_eq!(vfs.syncfs(f), Ok(()));
    assert_eq!(syncs(), 4);
    // The first error of the filesystem's files is syncfs's; sync ignores errors.
    let root = vfs.open("/c", O_RDONLY | O_DIRECTORY, 0).unwrap();
    assert_eq!(vfs.syncfs(f), Err(Errno::EIO));
    vfs.sync();
    assert_eq!(syncs(), 10);
    assert_eq!(vfs.syncfs(999), Err(Errno::EBADF));
    for fd in [mem, f, f2, r, w, null, root] {
        vfs.close(fd).unwrap();
    }
    let e = |errno: Errno| -(errno.into_raw() as isize);
    assert_eq!(dispatch(Sysno::sync as usize, &[0; 6]), 0);
    assert_eq!(dispatch(Sysno::syncfs as usize, &[1, 0, 0, 0, 0, 0]), 0);
    assert_eq!(
        dispatch(Sysno::syncfs as usize, &[999, 0, 0, 0, 0, 0]),
        e(Errno::EBADF)
    );
}

#[test]
fn chown_stores_owners_with_linuxs_set_id_rules() {
    set_clock(test_clock);
    let vfs = fresh();
    vfs.write_file("/f", b"x", 0o644).unwrap();
    vfs.symlink("f", "/l").unwrap();
    vfs.mkdir("/d", 0o755).unwrap();
    assert_eq!(vfs.stat("/f").map(|s| (s.uid, s.gid)), Ok((0, 0)), "root's");
    vfs.chown("/l", 1000, 100).unwrap();
    let st = vfs.stat("/f").unwrap();
    assert_eq!((st.uid, st.gid), (1000, 100), "through the link");
    assert_eq!(vfs.lstat("/l").map(|s| (s.uid, s.gid)), Ok((0, 0)));
    vfs.lchown("/l", 7, u32::MAX).unwrap();
    assert_eq!(vfs.lstat("/l").map(|s| (s.uid, s.gid)), Ok((7, 0)));
    // -1 leaves an id alone, but the change time still moves.
    vfs.chown("/f", u32::MAX, 5).unwrap();
    let st2 = vfs.stat("/f").unwrap();
    assert_eq!((st2.uid, st2.gid), (1000, 5));
    vfs.chown("/f", u32::MAX, u32::MAX).unwrap();
    let st3 = vfs.stat("/f").unwrap();
    assert!(st3.ctime > st2.ctime && st3.mtime == st2.mtime);
    // Set-user-ID goes; set-group-ID only with group-execute; a directory keeps both.
    vfs.chmod("/f", 0o6755).unwrap();
    vfs.chown("/f", u32::MAX, u32::MAX).unwrap();
    assert_eq!(vfs.stat("/f").unwrap().mode, S_IFREG | 0o755);
    vfs.chmod("/f", 0o6745).unwrap();
    vfs.chown("/f", 0, 0).unwrap();
    assert_eq!(vfs.stat("/f").unwrap().mode, S_IFREG | 0o2745);
    vfs.chmod("/d", 0o6755).unwrap();
    vfs.chown("/d", 1, 77).unwrap();
    assert_eq!(vfs.stat("/d").unwrap().mode, S_IFDIR | 0o6755);
    // What is made in a set-group-ID directory takes its group.
    vfs.write_file("/d/in", b"", 0o644).unwrap();
    vfs.mkdir("/d/sub", 0o755).unwrap();
    vfs.symlink("in", "/d/ln").unwrap();
    for p in ["/d/in", "/d/sub", "/d/ln"] {
        assert_eq!(vfs.lstat(p).map(|s| (s.uid, s.gid)), Ok((0, 77)), "{p}");
    }
    assert_eq!(vfs.stat("/d/sub").unwrap().mode, S_IFDIR | S_ISGID | 0o755);
    // By descriptor, and an empty path with AT_EMPTY_PATH.
    let fd = vfs.open("/f", O_RDONLY, 0).unwrap();
    vfs.fchown(fd, 3, 4).unwrap();
    assert_eq!(vfs.stat("/f").map(|s| (s.uid, s.gid)), Ok((3, 4)));
    vfs.fchownat(fd, "", 5, 6, AT_EMPTY_PATH).unwrap();
    assert_eq!(vfs.stat("/f").map(|s| (s.uid, s.gid)), Ok((5, 6)));
    vfs.chdir("/d").unwrap();
    vfs.fchownat(AT_FDCWD, "", 8, u32::MAX, AT_EMPTY_PATH)
        .unwrap();
    assert_eq!(vfs.stat("/d").map(|s| (s.uid, s.gid)), Ok((8, 77)));
    vfs.fchownat(AT_FDCWD, "in", 9, 9, 0).unwrap();
    assert_eq!(vfs.stat("/d/in").map(|s| s.uid), Ok(9));
    // Refusals change nothing; a pipe has no owner to change (success, as fchmod).
    let before = [vfs.stat("/f").unwrap(), vfs.lstat("/l").unwrap()];
    assert_eq!(vfs.fchownat(fd, "", 1, 1, 0), Err(Errno::ENOENT));
    assert_eq!(
        vfs.fchownat(fd, "", 1, 1, AT_NO_AUTOMOUNT),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        vfs.fchownat(AT_FDCWD, "/f", 1, 1, AT_REMOVEDIR),
        Err(Errno::EINVAL)
    );
    assert_eq!(vfs.chown("/nope", 1, 1), Err(Errno::ENOENT));
    assert_eq!(vfs.chown("/f/x", 1, 1), Err(Errno::ENOTDIR));
    assert_eq!(vfs.fchown(999, 1, 1), Err(Errno::EBADF));
    assert_eq!(vfs.chown("/dev/null", 1, 1), Err(Errno::EPERM));
    let [r, w] = vfs.pipe2(0).unwrap();
    assert_eq!(vfs.fchown(r, 1, 1), Ok(()));
    assert_eq!([vfs.stat("/f").unwrap(), vfs.lstat("/l").unwrap()], before);
    for f in [fd, r, w] {
        vfs.close(f).unwrap();
    }
}

#[test]
fn chown_syscalls_convert_ids_and_refuse_bad_input() {
    use uk_syscall::{Sysno, dispatch};
    let call = |n: Sysno, args: [usize; 6]| dispatch(n as usize, &args);
    let e = |errno: Errno| -(errno.into_raw() as isize);
    let vfs = global::vfs();
    vfs.mkdir_all("/chown_test").unwrap();
    vfs.write_file("/chown_test/f", b"x", 0o644).unwrap();
    vfs.symlink("f", "/chown_test/l").unwrap();
    let ids = |p: &str| vfs.lstat(p).map(|s| (s.uid, s.gid));
    let cwd = AT_FDCWD as usize;
    let link = b"/chown_test/l\0";
    // uid_t is 32 bits: a register holding a 64-bit -1 is -1 ("unchanged").
    assert_eq!(
        call(
            Sysno::fchownat,
            [cwd, link.as_ptr() as usize, 11, usize::MAX, 0, 0]
        ),
        0
    );
    assert_eq!(ids("/chown_test/f"), Ok((11, 0)));
    let nofollow = AT_SYMLINK_NOFOLLOW as usize;
    assert_eq!(
        call(
            Sysno::fchownat,
            [cwd, link.as_ptr() as usize, 12, 13, nofollow, 0]
        ),
        0
    );
    assert_eq!(ids("/chown_test/l"), Ok((12, 13)));
    let fd = vfs.open("/chown_test/f", O_RDONLY, 0).unwrap();
    assert_eq!(call(Sysno::fchown, [fd as usize, 14, 15, 0, 0, 0]), 0);
    assert_eq!(ids("/chown_test/f"), Ok((14, 15)));
    let empty = b"\0";
    let empty_path = AT_EMPTY_PATH as usize;
    assert_eq!(
        call(
            Sysno::fchownat,
            [fd as usize, empty.as_ptr() as usize, 16, 17, empty_path, 0]
        ),
        0
    );
    assert_eq!(ids("/chown_test/f"), Ok((16, 17)));
    // Refusals change nothing: flags before the path, as Linux.
    let before = [
        vfs.lstat("/chown_test/f").unwrap(),
        vfs.lstat("/chown_test/l").unwrap(),
    ];
    let missing = b"/chown_test/missing\0";
    for (n, args, errno) in [
        (Sysno::fchownat, [cwd, 0, 1, 1, 0x800, 0], Errno::EINVAL),
        (Sysno::fchownat, [cwd, 0, 1, 1, 0, 0], Errno::EFAULT),
        (
            Sysno::fchownat,
            [fd as usize, 0, 1, 1, empty_path, 0],
            Errno::EFAULT,
        ),
        (
            Sysno::fchownat,
            [fd as usize, empty.as_ptr() as usize, 1, 1, 0, 0],
            Errno::ENOENT,
        ),
        (
            Sysno::fchownat,
            [cwd, missing.as_ptr() as usize, 1, 1, 0, 0],
            Errno::ENOENT,
        ),
        (
            Sysno::fchownat,
            [999, c"rel".as_ptr() as usize, 1, 1, 0, 0],
            Errno::EBADF,
        ),
        (Sysno::fchown, [999, 1, 1, 0, 0, 0], Errno::EBADF),
    ] {
        assert_eq!(call(n, args), e(errno), "{n:?} {args:?}");
    }
    assert_eq!(
        [
            vfs.lstat("/chown_test/f").unwrap(),
            vfs.lstat("/chown_test/l").unwrap()
        ],
        before
    );
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(
            call(Sysno::chown, [link.as_ptr() as usize, 20, 21, 0, 0, 0]),
            0
        );
        assert_eq!(ids("/chown_test/f"), Ok((20, 21)));
        assert_eq!(
            call(Sysno::lchown, [link.as_ptr() as usize, 22, 23, 0, 0, 0]),
            0
        );
        assert_eq!(ids("/chown_test/l"), Ok((22, 23)));
        assert_eq!(call(Sysno::chown, [0, 1, 1, 0, 0, 0]), e(Errno::EFAULT));
        assert_eq!(
            call(Sysno::lchown, [missing.as_ptr() as usize, 1, 1, 0, 0, 0]),
            e(Errno::ENOENT)
        );
    }
    vfs.close(fd).unwrap();
}

/// The raw adapters of preadv/pwritev(2), sendfile, copy_file_range, fallocate,
/// fadvise64, flock, sync, syncfs and the chown family, called with random mixes of good
/// and bad descriptors, pointers, offsets, counts, flags and ids: nothing panics, every
/// error is a Linux errno, and a refused call changes nothing (file bytes and status,
/// positions, the caller's offsets and buffers, the pipe's readiness).
mod raw_syscalls_fuzz {
    use alloc::vec::Vec;
    use alloc::{format, vec};
    use core::sync::atomic::{AtomicUsize, Ordering};

    use proptest::prelude::*;
    use uk_syscall::{Sysno, dispatch};

    use crate::*;

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        Desc,
        Iov,
        IovCnt,
        Off,
        Len,
        OffPtr,
        Count,
        Flags,
        FlockOp,
        Path,
        Id,
        Zero,
    }
    use Kind::*;

    const CALLS: &[(Sysno, [Kind; 6])] = &[
        (Sysno::preadv, [Desc, Iov, IovCnt, Off, Zero, Zero]),
        (Sysno::pwritev, [Desc, Iov, IovCnt, Off, Zero, Zero]),
        (Sysno::preadv2, [Desc, Iov, IovCnt, Off, Zero, Flags]),
        (Sysno::pwritev2, [Desc, Iov, IovCnt, Off, Zero, Flags]),
        (Sysno::sendfile, [Desc, Desc, OffPtr, Count, Zero, Zero]),
        (
            Sysno::copy_file_range,
            [Desc, OffPtr, Desc, OffPtr, Count, Flags],
        ),
        (Sysno::fallocate, [Desc, Flags, Off, Len, Zero, Zero]),
        (Sysno::fadvise64, [Desc, Off, Len, Flags, Zero, Zero]),
        (Sysno::flock, [Desc, FlockOp, Zero, Zero, Zero, Zero]),
        (Sysno::sync, [Zero; 6]),
        (Sysno::syncfs, [Desc, Zero, Zero, Zero, Zero, Zero]),
        (Sysno::fchownat, [Desc, Path, Id, Id, Flags, Zero]),
        (Sysno::fchown, [Desc, Id, Id, Zero, Zero, Zero]),
        #[cfg(target_arch = "x86_64")]
        (Sysno::chown, [Path, Id, Id, Zero, Zero, Zero]),
        #[cfg(target_arch = "x86_64")]
        (Sysno::lchown, [Path, Id, Id, Zero, Zero, Zero]),
    ];

    // Offsets and lengths stay small or fail: a success far out would make a file that
    // copies gigabytes of zeros.
    const OFFS: &[i64] = &[-1, -2, i64::MIN, 0, 7, 4096, 70_000, i64::MAX];
    const LENS: &[i64] = &[-1, 0, 1, 4096, 70_000, i64::MIN];
    const COUNTS: &[usize] = &[0, 1, 100, 5000, 70_000, usize::MAX, 1 << 63];
    const FLAGS: &[usize] = &[
        0,
        1,
        2,
        3,
        4,
        5,
        8,
        9,
        0x10,
        0x20,
        0x80,
        0x100,
        0x800,
        0x1000,
        0xffff_ffff,
        usize::MAX,
    ];
    const FLOCK_OPS: &[u32] = &[0, LOCK_SH, LOCK_EX, LOCK_UN, 3, 9, 16, LOCK_MAND, 64];
    const IDS: &[usize] = &[0xffff_ffff, 0, 1000, usize::MAX, (1 << 32) | 5];

    static CASE: AtomicUsize = AtomicUsize::new(0);

    struct World {
        dir: std::string::String,
        fds: Vec<usize>,
        paths: Vec<Vec<u8>>,
        bufs: [Vec<u8>; 2],
        iovs: [[usize; 4]; 3],
        offs: [i64; 2],
        pipe_r: Fd,
    }

    impl World {
        fn new() -> World {
            let vfs = global::vfs();
            let dir = format!("/raw_fuzz/{}", CASE.fetch_add(1, Ordering::Relaxed));
            vfs.mkdir_all(&dir).unwrap();
            let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
            vfs.write_file(format!("{dir}/f"), &data, 0o4755).unwrap();
            vfs.write_file(format!("{dir}/g"), b"short", 0o644).unwrap();
            vfs.symlink("f", format!("{dir}/l")).unwrap();
            let open = |p: &str, flags| vfs.open(format!("{dir}{p}"), flags, 0).unwrap() as usize;
            let [r, w] = vfs.pipe2(O_NONBLOCK).unwrap();
            let null = vfs.open("/dev/null", O_RDWR, 0).unwrap() as usize;
            let fds = vec![
                open("/f", O_RDWR),
                open("/f", O_RDONLY),
                open("/g", O_WRONLY | O_APPEND),
                open("/g", O_RDWR),
                open("", O_RDONLY | O_DIRECTORY),
                r as usize,
                w as usize,
                null,
                usize::MAX,
                1_000_000,
                AT_FDCWD as usize,
            ];
            let paths = ["/f", "/l", "", "/missing", "/f/x"]
                .iter()
                .map(|p| format!("{dir}{p}\0").into_bytes())
                .chain([b"f\0".to_vec(), b"\0".to_vec()])
                .collect();
            World {
                dir,
                fds,
                paths,
                bufs: [vec![0xaa; 16], vec![0xbb; 5000]],
                iovs: [[0; 4]; 3],
                offs: [0; 2],
                pipe_r: r,
            }
        }

        /// The raw value of argument `kind` chosen by `pick`: half of the picks favour a
        /// value that lets the call go through (a file descriptor, no flags, a path that
        /// exists), so that successes are as common as refusals.
        fn arg(&mut self, kind: Kind, pick: usize, slot: &mut usize) -> usize {
            let (favour, pick) = (pick & 1 == 0, pick >> 1);
            match kind {
                Desc if favour => self.fds[pick % 4],
                Desc => self.fds[pick % self.fds.len()],
                Iov => {
                    let [a, b] = &mut self.bufs;
                    let (a, b) = (a.as_mut_ptr() as usize, b.as_mut_ptr() as usize);
                    self.iovs = [
                        [a, 16, b, 5000],
                        [8, 3, a, 16],
                        [a, 16, b, isize::MAX as usize],
                    ];
                    match if favour { 0 } else { pick % 5 } {
                        i @ 0..3 => self.iovs[i].as_ptr() as usize,
                        3 => 0,
                        _ => 8,
                    }
                }
                IovCnt if favour => 2,
                IovCnt => [0, 1, 2, 1025, usize::MAX][pick % 5],
                Off if favour => [0, 7, 4096][pick % 3],
                Off => OFFS[pick % OFFS.len()] as usize,
                Len if favour => [1, 4096, 70_000][pick % 3],
                Len => LENS[pick % LENS.len()] as usize,
                OffPtr => {
                    let i = *slot % 2;
                    *slot += 1;
                    self.offs[i] = if favour {
                        [0, 7, 4096][pick % 3]
                    } else {
                        OFFS[(pick / 3) % OFFS.len()]
                    };
                    match if favour { 1 } else { pick % 3 } {
                        0 => 0,
                        1 => &raw mut self.offs[i] as usize,
                        _ => 8,
                    }
                }
                Count if favour => [1, 100, 5000, 70_000][pick % 4],
                Count => COUNTS[pick % COUNTS.len()],
                Flags if favour => 0,
                Flags => FLAGS[pick % FLAGS.len()],
                // Never wait: no other thread would release the lock.
                FlockOp => (FLOCK_OPS[pick % FLOCK_OPS.len()] | LOCK_NB) as usize,
                Path if favour => self.paths[pick % 2].as_ptr() as usize,
                Path => match pick % (self.paths.len() + 2) {
                    i if i < self.paths.len() => self.paths[i].as_ptr() as usize,
                    i if i == self.paths.len() => 0,
                    _ => 8,
                },
                Id => IDS[pick % IDS.len()],
                Zero => 0,
            }
        }

        /// Everything a refused call must leave as it was.
        fn snapshot(&self) -> impl PartialEq + core::fmt::Debug + use<> {
            let vfs = global::vfs();
            let files: Vec<_> = ["/f", "/g", "/l", ""]
                .iter()
                .map(|p| {
                    let path = format!("{}{p}", self.dir);
                    let bytes = vfs.read_file(&path).ok();
                    (vfs.lstat(&path).unwrap(), bytes)
                })
                .collect();
            let positions: Vec<_> = self.fds[..8]
                .iter()
                .map(|&fd| vfs.lseek(fd as Fd, 0, SEEK_CUR))
                .collect();
            let mut poll = [PollFd {
                fd: self.pipe_r,
                events: poll::POLLIN as i16,
                revents: 0,
            }];
            vfs.poll(&mut poll);
            (
                files,
                positions,
                self.offs,
                self.bufs.clone(),
                poll[0].revents,
            )
        }

        fn close(self) {
            for &fd in &self.fds[..8] {
                global::vfs().close(fd as Fd).unwrap();
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn refusals_change_nothing(
            calls in proptest::collection::vec((any::<prop::sample::Index>(), any::<[u16; 6]>()), 1..12)
        ) {
            let mut w = World::new();
            for (which, picks) in calls {
                let (sysno, kinds) = CALLS[which.index(CALLS.len())];
                let mut slot = 0;
                let mut args = [0usize; 6];
                for i in 0..6 {
                    args[i] = w.arg(kinds[i], picks[i] as usize, &mut slot);
                }
                let before = w.snapshot();
                let r = dispatch(sysno as usize, &args);
                prop_assert!(r >= -4095, "{sysno:?} {args:x?}: {r}");
                if r < 0 {
                    prop_assert_ne!(r, -(Errno::ENOSYS.into_raw() as isize));
                    prop_assert_eq!(&w.snapshot(), &before, "{:?} {:x?}: {}", sysno, args, r);
                }
            }
            w.close();
        }
    }
}

/// Runs `call` on a thread of its own whose first wait is interrupted by a signal whose
/// handler (`handler`) had `SA_RESTART`; its result, or a failure when it still waits
/// after 5 s (the restarted call kept what it had looked up before the handler ran).
fn restarted_after<T: Send + 'static>(
    handler: impl FnOnce() + Send + 'static,
    call: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        interrupt_next_wait_running(Errno::ERESTARTSYS, handler);
        let r = call();
        done.send((r, interrupt_pending())).unwrap();
    });
    let (r, pending) = result
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("the restarted call waits on with what it looked up before the handler");
    assert!(!pending, "the call did wait and was interrupted");
    r
}

/// A call restarted after an `SA_RESTART` handler starts from the lookup of its
/// descriptor, as Linux restarts a system call: a handler that set `O_NONBLOCK` makes the
/// restarted read return `EAGAIN`, one that closed the descriptor `EBADF`, one that put
/// another pipe on it (`dup2`) makes it read that pipe; the same for a write into a full
/// pipe, an eventfd read and `flock`.
#[test]
fn a_restarted_call_looks_its_descriptor_up_again() {
    wait::set_wait_factory(thread_wait);
    let vfs = StdArc::new(fresh());
    let mut buf = [0u8; 8];
    let nonblocking = |vfs: &StdArc<Vfs>, fd: Fd| {
        let vfs = vfs.clone();
        move || {
            vfs.fcntl(fd, F_SETFL, O_NONBLOCK as usize).unwrap();
        }
    };
    let closing = |vfs: &StdArc<Vfs>, fd: Fd| {
        let vfs = vfs.clone();
        move || vfs.close(fd).unwrap()
    };
    let reading = |vfs: &StdArc<Vfs>, fd: Fd| {
        let vfs = vfs.clone();
        move || {
            let mut buf = [0u8; 8];
            vfs.read(fd, &mut buf).map(|n| buf[..n].to_vec())
        }
    };
    // O_NONBLOCK set by the handler.
    let [r, w] = vfs.pipe2(0).unwrap();
    assert_eq!(
        restarted_after(nonblocking(&vfs, r), reading(&vfs, r)),
        Err(Errno::EAGAIN)
    );
    // Without SA_RESTART, the same handler gives EINTR.
    vfs.fcntl(r, F_SETFL, 0).unwrap();
    interrupt_next_wait_running(Errno::EINTR, nonblocking(&vfs, r));
    assert_eq!(vfs.read(r, &mut buf), Err(Errno::EINTR));
    // Closed by the handler.
    vfs.fcntl(r, F_SETFL, 0).unwrap();
    assert_eq!(
        restarted_after(closing(&vfs, r), reading(&vfs, r)),
        Err(Errno::EBADF)
    );
    // Another pipe, holding bytes, put on the descriptor by the handler.
    let [r2, w2] = vfs.pipe2(0).unwrap();
    assert_eq!(vfs.write(w2, b"other"), Ok(5));
    let [r3, w3] = vfs.pipe2(0).unwrap();
    let v = vfs.clone();
    let handler = move || assert_eq!(v.dup2(r2, r3), Ok(r3));
    assert_eq!(
        restarted_after(handler, reading(&vfs, r3)),
        Ok(b"other".to_vec())
    );
    // A write into a full pipe whose descriptor the handler made non-blocking.
    vfs.close(w).unwrap();
    let [r, w] = vfs.pipe2(0).unwrap();
    assert_eq!(vfs.write(w, &vec![0u8; PIPE_CAPACITY]), Ok(PIPE_CAPACITY));
    let v = vfs.clone();
    let write = move || v.writev(w, &[b"x", b"y"]);
    assert_eq!(
        restarted_after(nonblocking(&vfs, w), write),
        Err(Errno::EAGAIN)
    );
    // An eventfd read whose descriptor the handler closed.
    let e = vfs.eventfd2(0, 0).unwrap();
    assert_eq!(
        restarted_after(closing(&vfs, e), reading(&vfs, e)),
        Err(Errno::EBADF)
    );
    // flock: the handler closes the waiting descriptor.
    vfs.write_file("/restart-lock", b"x", 0o644).unwrap();
    let a = vfs.open("/restart-lock", O_RDONLY, 0).unwrap();
    let b = vfs.open("/restart-lock", O_RDONLY, 0).unwrap();
    assert_eq!(vfs.flock(a, LOCK_EX), Ok(()));
    let v = vfs.clone();
    assert_eq!(
        restarted_after(closing(&vfs, b), move || v.flock(b, LOCK_SH)),
        Err(Errno::EBADF)
    );
    for fd in [r, w, r2, w2, r3, w3, a] {
        vfs.close(fd).unwrap();
    }
}

/// `readv` is one read: from a pipe it waits only while nothing came, so a pipe holding
/// exactly the first buffer's bytes gives them (it used to wait for the second buffer),
/// and one holding more than the first gives what it holds. `writev` of at most
/// `PIPE_BUF` bytes in all is one write into a pipe: all of it or, without room and
/// non-blocking, `EAGAIN` (it used to write the first buffer alone).
#[test]
fn readv_and_writev_on_a_pipe_are_one_call() {
    wait::set_wait_factory(thread_wait);
    let vfs = StdArc::new(fresh());
    let [r, w] = vfs.pipe2(0).unwrap();
    let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
    assert_eq!(vfs.write(w, b"abcd"), Ok(4));
    let (done, got) = std::sync::mpsc::channel();
    let reader = {
        let vfs = vfs.clone();
        std::thread::spawn(move || {
            let n = vfs.readv(r, &mut [&mut a[..], &mut b[..]]);
            done.send((n, a)).unwrap();
        })
    };
    let (n, a) = got
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("readv waited for more than the pipe held");
    reader.join().unwrap();
    assert_eq!((n, &a), (Ok(4), b"abcd"));
    assert_eq!(vfs.write(w, b"efghij"), Ok(6));
    let mut a = [0u8; 4];
    assert_eq!(vfs.readv(r, &mut [&mut a[..], &mut b[..]]), Ok(6));
    assert_eq!((&a, &b[..2]), (b"efgh", &b"ij"[..]));
    // writev into a non-blocking pipe with room for the first buffer only.
    vfs.fcntl(w, F_SETFL, O_NONBLOCK as usize).unwrap();
    assert_eq!(
        vfs.write(w, &vec![0u8; PIPE_CAPACITY - 100]),
        Ok(PIPE_CAPACITY - 100)
    );
    let (first, second) = (vec![1u8; 80], vec![2u8; 80]);
    assert_eq!(vfs.writev(w, &[&first, &second]), Err(Errno::EAGAIN));
    assert_eq!(vfs.writev(w, &[&first[..50], &[], &second[..50]]), Ok(100));
    let mut all = vec![0u8; PIPE_CAPACITY];
    assert_eq!(vfs.read(r, &mut all), Ok(PIPE_CAPACITY));
    assert_eq!(&all[PIPE_CAPACITY - 100..PIPE_CAPACITY - 50], &first[..50]);
    assert_eq!(&all[PIPE_CAPACITY - 50..], &second[..50]);
    // Bad descriptors still fail as before, empty vectors included.
    vfs.close(r).unwrap();
    assert_eq!(vfs.readv(r, &mut []), Err(Errno::EBADF));
    assert_eq!(vfs.writev(w, &[b"x", b"y"]), Err(Errno::EPIPE));
    vfs.close(w).unwrap();
    assert_eq!(vfs.writev(w, &[]), Err(Errno::EBADF));
}
